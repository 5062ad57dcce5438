//! `infab validate`: pre-rollout checks an operator puts in a pipeline. A
//! profile (TOML) names the devices, what their ports must look like, and
//! short test runs with the operator's own thresholds; every check ends
//! PASS, FAIL, WARN, SKIP or ERROR with what was expected, what was seen
//! and the likely fix. Exit 0: all passed; 1: a check failed; 2: could not
//! run. docs/validate.md is the reference.
//!
//! The thresholds are deployment SLOs, never a vendor comparison: the draft
//! forbids pass/fail thresholds in vendor evaluations (section 4).
//!
//! Owns the profile, the preflight checks, judging results files and the
//! JUnit/JSON/table output. Runs traffic through `infab run` subprocesses
//! (runs.rs says why); does not touch the engine or verbs directly beyond
//! opening a device to read its port facts.

mod check;
mod junit;
mod preflight;
mod profile;
mod runs;
mod table;
mod thresholds;

pub use check::{exit_code, Check, Status, EXIT_ERROR, EXIT_FAIL, EXIT_PASS};
pub use junit::{junit_xml, write_junit, JunitError};
pub use preflight::{judge_device, preflight, selects, DeviceWanted, PreflightOutcome};
pub use profile::{
    BandwidthTest, ClockName, LatencyTest, OpName, PairsTest, PreflightSpec, Profile, ProfileError,
    TargetSpec, TestSpec,
};
pub use runs::{reach_args, run_traffic, test_args, RunOutcome, Runner};
pub use table::render_checks;
pub use thresholds::{judge, qp_errors};

use serde::Serialize;

/// What `--json` writes: the profile, the verdict and every check.
#[derive(Debug, Clone, Serialize)]
pub struct ValidateReport {
    /// The profile file.
    pub profile: String,
    /// The exit code (0 pass, 1 fail, 2 could not run).
    pub exit_code: i32,
    /// "pass", "fail" or "error".
    pub verdict: String,
    /// Every check, in order.
    pub checks: Vec<Check>,
}

impl ValidateReport {
    /// The report of `checks` for `profile`.
    pub fn new(profile: &str, checks: Vec<Check>) -> ValidateReport {
        let code = exit_code(&checks);
        ValidateReport {
            profile: profile.into(),
            exit_code: code,
            verdict: match code {
                EXIT_PASS => "pass",
                EXIT_FAIL => "fail",
                _ => "error",
            }
            .into(),
            checks,
        }
    }
}

/// The local devices a profile names (the target device too on one host).
pub fn wanted_devices(profile: &Profile) -> Vec<DeviceWanted> {
    let t = &profile.target;
    let mut out = vec![DeviceWanted {
        field: "device",
        selector: t.device.clone(),
        ib_port: t.ib_port,
        gid_index: t.gid_index,
    }];
    if let (None, Some(target)) = (&t.peer, &t.target_device) {
        out.push(DeviceWanted {
            field: "target_device",
            selector: target.clone(),
            ib_port: t.ib_port,
            gid_index: t.target_gid_index,
        });
    }
    out
}

/// Runs every check of `profile`: preflight, then the connection check and
/// the test runs through `runner`, then the QP-error check.
pub fn validate(profile: &Profile, runner: &Runner, progress: &mut dyn FnMut(&str)) -> Vec<Check> {
    progress("preflight: devices, ports, GIDs, MTU, link speed, PFC/ECN");
    let pre = preflight(
        &wanted_devices(profile),
        &profile.preflight,
        profile.target.tclass,
    );
    let mut checks = pre.checks;
    checks.extend(run_traffic(
        profile,
        runner,
        &pre.opened,
        pre.usable,
        progress,
    ));
    checks
}
