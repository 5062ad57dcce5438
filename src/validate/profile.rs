//! The validation profile: a TOML file naming the devices to check, the
//! preflight expectations and the short test runs with their thresholds
//! (docs/validate.md is the reference).
//!
//! Owns parsing (unknown fields are errors) and the checks that need no
//! device: ranges, and fields that contradict each other. It does not run
//! anything, and it does not parse message sizes ("16M"): the CLI checks
//! those with the same parser `infab run` uses.
//!
//! The thresholds are the operator's own SLOs. The draft forbids using its
//! reference values as pass/fail thresholds in vendor evaluations (section
//! 4, the note before 4.1), so a profile is a deployment gate, never a
//! vendor comparison.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// Loading a profile failed; each variant names the file.
#[derive(Debug, thiserror::Error)]
pub enum ProfileError {
    /// The file could not be read.
    #[error("cannot read profile {path}: {cause}; check the path (profiles/ has examples)")]
    Read {
        /// The file.
        path: PathBuf,
        /// The cause.
        cause: std::io::Error,
    },
    /// The TOML does not parse or has an unknown or mistyped field.
    #[error("profile {path}: {detail}; see docs/validate.md for the fields")]
    Parse {
        /// The file.
        path: PathBuf,
        /// The parser's message (line, column and field).
        detail: String,
    },
    /// A value is out of range or contradicts another.
    #[error("profile {path}: field `{field}`: {detail}")]
    Invalid {
        /// The file.
        path: PathBuf,
        /// The field, e.g. `tests[1].max_p99_us`.
        field: String,
        /// What is wrong and what to write instead.
        detail: String,
    },
}

/// A whole profile file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Profile {
    /// Most QP errors (counter deltas plus runs stopped by an error) allowed
    /// over all test runs.
    #[serde(default)]
    pub max_qp_errors: u64,
    /// Where the traffic goes.
    pub target: TargetSpec,
    /// Device and port expectations checked before any traffic.
    #[serde(default)]
    pub preflight: PreflightSpec,
    /// The short runs and their thresholds, in order.
    #[serde(default)]
    pub tests: Vec<TestSpec>,
}

/// `[target]`: the local device and where its peer is.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TargetSpec {
    /// The initiator (local) device: a name, netdev or IP address.
    pub device: String,
    /// Single-host runs: the target device, served in the same process.
    #[serde(default)]
    pub target_device: Option<String>,
    /// Where `infab serve` runs, HOST or HOST:PORT.
    #[serde(default)]
    pub peer: Option<String>,
    /// Control port when `peer` has none.
    #[serde(default = "default_control_port")]
    pub port: u16,
    /// Device port number.
    #[serde(default = "default_ib_port")]
    pub ib_port: u8,
    /// GID index of `device` (default: automatic RoCEv2 choice).
    #[serde(default)]
    pub gid_index: Option<u8>,
    /// GID index of `target_device` (default: automatic).
    #[serde(default)]
    pub target_gid_index: Option<u8>,
    /// GRH traffic class of the test traffic (DSCP << 2).
    #[serde(default)]
    pub tclass: u8,
}

fn default_control_port() -> u16 {
    18711
}

fn default_ib_port() -> u8 {
    1
}

fn default_true() -> bool {
    true
}

fn default_tolerance_pct() -> f64 {
    5.0
}

/// `[preflight]`: what the devices and ports must look like.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PreflightSpec {
    /// Smallest acceptable active (RoCE path) MTU, bytes.
    #[serde(default)]
    pub min_mtu_bytes: Option<u32>,
    /// Expected line rate, Gb/s.
    #[serde(default)]
    pub link_speed_gbps: Option<f64>,
    /// Allowed deviation from `link_speed_gbps`, percent.
    #[serde(default = "default_tolerance_pct")]
    pub link_speed_tolerance_pct: f64,
    /// The lossless priority: PFC must be enabled on it (where visible).
    #[serde(default)]
    pub pfc_priority: Option<u8>,
    /// Require ECN (both DCQCN points) on the priority, where visible.
    #[serde(default)]
    pub ecn: bool,
    /// Priority for the ECN check (default: `pfc_priority`).
    #[serde(default)]
    pub ecn_priority: Option<u8>,
    /// Fail, rather than warn, when a setting cannot be read.
    #[serde(default)]
    pub require_visible: bool,
    /// The GID used must be RoCEv2.
    #[serde(default = "default_true")]
    pub require_rocev2_gid: bool,
}

impl Default for PreflightSpec {
    fn default() -> Self {
        Self {
            min_mtu_bytes: None,
            link_speed_gbps: None,
            link_speed_tolerance_pct: default_tolerance_pct(),
            pfc_priority: None,
            ecn: false,
            ecn_priority: None,
            require_visible: false,
            require_rocev2_gid: true,
        }
    }
}

impl PreflightSpec {
    /// The priority the ECN check looks at, when ECN is required.
    pub fn ecn_priority(&self) -> Option<u8> {
        self.ecn_priority.or(self.pfc_priority)
    }
}

/// The p2p operation of a test.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum OpName {
    /// RDMA WRITE.
    #[default]
    Write,
    /// RDMA WRITE with immediate.
    WriteImm,
    /// SEND/RECV.
    Send,
    /// RDMA READ.
    Read,
}

impl OpName {
    /// The `--op` value.
    pub fn flag(self) -> &'static str {
        match self {
            OpName::Write => "write",
            OpName::WriteImm => "write-imm",
            OpName::Send => "send",
            OpName::Read => "read",
        }
    }
}

/// The latency clock a latency test judges.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ClockName {
    /// Post → local completion.
    #[default]
    Initiator,
    /// Post → receive completion at the target (write-imm, send).
    Target,
    /// Round trip / 2.
    Pingpong,
}

impl ClockName {
    /// The `--clock` value, also the clock's name in results files.
    pub fn flag(self) -> &'static str {
        match self {
            ClockName::Initiator => "initiator",
            ClockName::Target => "target",
            ClockName::Pingpong => "pingpong",
        }
    }
}

/// One `[[tests]]` entry.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case", deny_unknown_fields)]
pub enum TestSpec {
    /// IETF 5.1 short run: GB/s at one size and QP count.
    P2pBandwidth(BandwidthTest),
    /// IETF 5.2 short run: latency percentiles at one size.
    P2pLatency(LatencyTest),
    /// IETF 5.3 short run: N concurrent pairs on this host.
    Pairs(PairsTest),
}

/// `kind = "p2p-bandwidth"`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BandwidthTest {
    /// A label for the report (default: kind and size).
    #[serde(default)]
    pub name: Option<String>,
    /// Message size, e.g. "16M".
    pub size: String,
    /// QPs.
    #[serde(default = "one")]
    pub qps: u32,
    /// Operation.
    #[serde(default)]
    pub op: OpName,
    /// Trials.
    #[serde(default = "three")]
    pub trials: u32,
    /// Seconds per trial.
    #[serde(default = "one_second")]
    pub duration_s: f64,
    /// Hard limit on the whole run, seconds (default from trials × duration).
    #[serde(default)]
    pub timeout_s: Option<f64>,
    /// Smallest acceptable mean GB/s across trials.
    pub min_gbytes_per_s: f64,
}

/// `kind = "p2p-latency"`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LatencyTest {
    /// A label for the report (default: kind and size).
    #[serde(default)]
    pub name: Option<String>,
    /// Message size, e.g. "64K".
    pub size: String,
    /// Operation.
    #[serde(default)]
    pub op: OpName,
    /// The clock judged.
    #[serde(default)]
    pub clock: ClockName,
    /// Trials.
    #[serde(default = "three")]
    pub trials: u32,
    /// Seconds per trial (default: `iters` messages per trial).
    #[serde(default)]
    pub duration_s: Option<f64>,
    /// Messages per trial when `duration_s` is absent.
    #[serde(default = "thousand")]
    pub iters: u64,
    /// Hard limit on the whole run, seconds.
    #[serde(default)]
    pub timeout_s: Option<f64>,
    /// Largest acceptable median of all trials merged, µs.
    #[serde(default)]
    pub max_p50_us: Option<f64>,
    /// Largest acceptable P99 of all trials merged, µs.
    #[serde(default)]
    pub max_p99_us: Option<f64>,
}

/// `kind = "pairs"`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PairsTest {
    /// A label for the report (default: kind and pair count).
    #[serde(default)]
    pub name: Option<String>,
    /// Concurrent prefill→decode pairs.
    pub pairs: u32,
    /// Bytes per transfer.
    #[serde(default = "sixteen_mib")]
    pub size: String,
    /// QPs per pair.
    #[serde(default = "one")]
    pub qps: u32,
    /// Trials.
    #[serde(default = "three")]
    pub trials: u32,
    /// Seconds per trial.
    #[serde(default = "one_second")]
    pub duration_s: f64,
    /// Hard limit on the whole run, seconds.
    #[serde(default)]
    pub timeout_s: Option<f64>,
    /// Smallest acceptable mean Jain index across pairs.
    #[serde(default)]
    pub min_jain_index: Option<f64>,
    /// Smallest acceptable mean aggregate GB/s.
    #[serde(default)]
    pub min_aggregate_gbytes_per_s: Option<f64>,
}

fn one() -> u32 {
    1
}

fn three() -> u32 {
    3
}

fn thousand() -> u64 {
    1000
}

fn one_second() -> f64 {
    1.0
}

fn sixteen_mib() -> String {
    "16M".into()
}

impl TestSpec {
    /// The `kind` value.
    pub fn kind(&self) -> &'static str {
        match self {
            TestSpec::P2pBandwidth(_) => "p2p-bandwidth",
            TestSpec::P2pLatency(_) => "p2p-latency",
            TestSpec::Pairs(_) => "pairs",
        }
    }

    /// The label in reports: `name`, or kind and size.
    pub fn label(&self) -> String {
        match self {
            TestSpec::P2pBandwidth(t) => t.name.clone().unwrap_or_else(|| {
                format!("p2p-bandwidth {} x{} QP {}", t.size, t.qps, t.op.flag())
            }),
            TestSpec::P2pLatency(t) => t.name.clone().unwrap_or_else(|| {
                format!(
                    "p2p-latency {} {} ({} clock)",
                    t.size,
                    t.op.flag(),
                    t.clock.flag()
                )
            }),
            TestSpec::Pairs(t) => t
                .name
                .clone()
                .unwrap_or_else(|| format!("pairs {} x {}", t.pairs, t.size)),
        }
    }

    /// The message size text.
    pub fn size(&self) -> &str {
        match self {
            TestSpec::P2pBandwidth(t) => &t.size,
            TestSpec::P2pLatency(t) => &t.size,
            TestSpec::Pairs(t) => &t.size,
        }
    }

    /// How long the run may take before it is killed.
    pub fn timeout_s(&self) -> f64 {
        // setup on an emulated CPU (the SoftRoCE VM) takes seconds per device open
        const SETUP_S: f64 = 120.0;
        let (explicit, trials, per_trial_s) = match self {
            TestSpec::P2pBandwidth(t) => (t.timeout_s, t.trials, t.duration_s),
            TestSpec::P2pLatency(t) => (t.timeout_s, t.trials, t.duration_s.unwrap_or(10.0)),
            TestSpec::Pairs(t) => (t.timeout_s, t.trials, t.duration_s),
        };
        explicit.unwrap_or(SETUP_S + 3.0 * f64::from(trials) * per_trial_s)
    }
}

impl Profile {
    /// Reads and checks a profile file.
    pub fn load(path: &Path) -> Result<Profile, ProfileError> {
        let text = std::fs::read_to_string(path).map_err(|cause| ProfileError::Read {
            path: path.to_path_buf(),
            cause,
        })?;
        Profile::parse(&text, path)
    }

    /// Parses and checks profile text; `path` names it in errors.
    pub fn parse(text: &str, path: &Path) -> Result<Profile, ProfileError> {
        let profile: Profile = toml::from_str(text).map_err(|err| ProfileError::Parse {
            path: path.to_path_buf(),
            detail: err.to_string().trim().replace('\n', " "),
        })?;
        profile
            .check()
            .map_err(|(field, detail)| ProfileError::Invalid {
                path: path.to_path_buf(),
                field,
                detail,
            })?;
        Ok(profile)
    }

    /// Whether the target runs in this process (no `peer`).
    pub fn single_host(&self) -> bool {
        self.target.peer.is_none()
    }

    fn check(&self) -> Result<(), (String, String)> {
        let bad = |field: &str, detail: String| Err((field.to_string(), detail));
        let t = &self.target;
        if t.device.trim().is_empty() {
            return bad(
                "target.device",
                "empty: name the RDMA device, its netdev or an IP address".into(),
            );
        }
        if t.peer.is_some() && t.target_device.is_some() {
            return bad(
                "target.peer",
                "give either peer (a host running `infab serve`) or target_device (single host), not both".into(),
            );
        }
        if t.ib_port == 0 {
            return bad("target.ib_port", "port numbers start at 1".into());
        }
        let p = &self.preflight;
        if let Some(mtu) = p.min_mtu_bytes {
            if ![256, 512, 1024, 2048, 4096].contains(&mtu) {
                return bad(
                    "preflight.min_mtu_bytes",
                    format!("{mtu} is not a RoCE MTU: use 256, 512, 1024, 2048 or 4096"),
                );
            }
        }
        if let Some(speed) = p.link_speed_gbps {
            if !speed.is_finite() || speed <= 0.0 {
                return bad(
                    "preflight.link_speed_gbps",
                    format!("{speed} must be a positive rate in Gb/s, e.g. 400"),
                );
            }
        }
        if !p.link_speed_tolerance_pct.is_finite()
            || !(0.0..100.0).contains(&p.link_speed_tolerance_pct)
        {
            return bad(
                "preflight.link_speed_tolerance_pct",
                format!(
                    "{} must be between 0 and 100 percent",
                    p.link_speed_tolerance_pct
                ),
            );
        }
        for (field, prio) in [
            ("preflight.pfc_priority", p.pfc_priority),
            ("preflight.ecn_priority", p.ecn_priority),
        ] {
            if prio.is_some_and(|x| x > 7) {
                return bad(
                    field,
                    format!("{} is not a priority: use 0..=7", prio.unwrap_or(0)),
                );
            }
        }
        if p.ecn && p.ecn_priority().is_none() {
            return bad(
                "preflight.ecn",
                "ecn = true needs a priority: set pfc_priority or ecn_priority".into(),
            );
        }
        for (i, test) in self.tests.iter().enumerate() {
            check_test(test).map_err(|(field, detail)| (format!("tests[{i}].{field}"), detail))?;
        }
        Ok(())
    }
}

fn positive(field: &str, value: f64) -> Result<(), (String, String)> {
    if value.is_finite() && value > 0.0 {
        Ok(())
    } else {
        Err((field.into(), format!("{value} must be a positive number")))
    }
}

fn check_common(
    trials: u32,
    duration_s: Option<f64>,
    timeout_s: Option<f64>,
) -> Result<(), (String, String)> {
    if trials == 0 || trials > 1000 {
        return Err((
            "trials".into(),
            format!("{trials} must be between 1 and 1000"),
        ));
    }
    if let Some(d) = duration_s {
        positive("duration_s", d)?;
        if d > 3600.0 {
            return Err((
                "duration_s".into(),
                format!("{d} s is longer than a pre-rollout check should take (at most 3600)"),
            ));
        }
    }
    if let Some(t) = timeout_s {
        positive("timeout_s", t)?;
    }
    Ok(())
}

fn check_test(test: &TestSpec) -> Result<(), (String, String)> {
    match test {
        TestSpec::P2pBandwidth(t) => {
            check_common(t.trials, Some(t.duration_s), t.timeout_s)?;
            if t.qps == 0 || t.qps > 256 {
                return Err(("qps".into(), format!("{} must be between 1 and 256", t.qps)));
            }
            positive("min_gbytes_per_s", t.min_gbytes_per_s)
        }
        TestSpec::P2pLatency(t) => {
            check_common(t.trials, t.duration_s, t.timeout_s)?;
            if t.iters == 0 {
                return Err(("iters".into(), "must be at least 1".into()));
            }
            if t.max_p50_us.is_none() && t.max_p99_us.is_none() {
                return Err((
                    "max_p99_us".into(),
                    "a latency test needs a threshold: set max_p99_us and/or max_p50_us".into(),
                ));
            }
            for (field, v) in [("max_p50_us", t.max_p50_us), ("max_p99_us", t.max_p99_us)] {
                if let Some(v) = v {
                    positive(field, v)?;
                }
            }
            if t.clock == ClockName::Target && !matches!(t.op, OpName::WriteImm | OpName::Send) {
                return Err((
                    "clock".into(),
                    "the target clock needs a completion at the target: set op = \"write-imm\" or \"send\"".into(),
                ));
            }
            if t.clock == ClockName::Pingpong && t.op == OpName::Read {
                return Err((
                    "clock".into(),
                    "pingpong does not apply to op = \"read\"".into(),
                ));
            }
            Ok(())
        }
        TestSpec::Pairs(t) => {
            check_common(t.trials, Some(t.duration_s), t.timeout_s)?;
            if t.pairs == 0 || t.pairs > 256 {
                return Err((
                    "pairs".into(),
                    format!("{} must be between 1 and 256", t.pairs),
                ));
            }
            if t.qps == 0 || t.qps > 256 {
                return Err(("qps".into(), format!("{} must be between 1 and 256", t.qps)));
            }
            if t.min_jain_index.is_none() && t.min_aggregate_gbytes_per_s.is_none() {
                return Err((
                    "min_aggregate_gbytes_per_s".into(),
                    "a pairs test needs a threshold: set min_aggregate_gbytes_per_s and/or min_jain_index".into(),
                ));
            }
            if let Some(j) = t.min_jain_index {
                if !(j > 0.0 && j <= 1.0) {
                    return Err((
                        "min_jain_index".into(),
                        format!("{j} must be in (0, 1]: Jain's index lies between 1/n and 1"),
                    ));
                }
            }
            if let Some(g) = t.min_aggregate_gbytes_per_s {
                positive("min_aggregate_gbytes_per_s", g)?;
            }
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Profile, ProfileError> {
        Profile::parse(text, Path::new("p.toml"))
    }

    const MINIMAL: &str = "[target]\ndevice = \"rxe1\"\ntarget_device = \"rxe0\"\n";

    #[test]
    fn minimal_profile_has_defaults() {
        let p = parse(MINIMAL).unwrap();
        assert_eq!(p.max_qp_errors, 0);
        assert!(p.preflight.require_rocev2_gid);
        assert_eq!(p.preflight.link_speed_tolerance_pct, 5.0);
        assert_eq!(p.target.port, 18711);
        assert!(p.single_host());
        assert!(p.tests.is_empty());
    }

    #[test]
    fn tests_parse_by_kind() {
        let text = format!(
            "{MINIMAL}[[tests]]\nkind = \"p2p-bandwidth\"\nsize = \"16M\"\nmin_gbytes_per_s = 0.05\n\
             [[tests]]\nkind = \"p2p-latency\"\nsize = \"64K\"\nmax_p99_us = 100\n\
             [[tests]]\nkind = \"pairs\"\npairs = 2\nmin_jain_index = 0.9\n"
        );
        let p = parse(&text).unwrap();
        assert_eq!(p.tests.len(), 3);
        assert_eq!(p.tests[0].kind(), "p2p-bandwidth");
        match &p.tests[1] {
            TestSpec::P2pLatency(t) => {
                assert_eq!(t.max_p99_us, Some(100.0));
                assert_eq!(t.clock, ClockName::Initiator);
                assert_eq!(t.iters, 1000);
            }
            other => panic!("{other:?}"),
        }
        match &p.tests[2] {
            TestSpec::Pairs(t) => assert_eq!(t.size, "16M"),
            other => panic!("{other:?}"),
        }
    }

    fn error(text: &str) -> String {
        parse(text).unwrap_err().to_string()
    }

    #[test]
    fn unknown_fields_are_named() {
        let e = error("[target]\ndevice = \"rxe1\"\ndevcie = \"x\"\n");
        assert!(e.contains("p.toml") && e.contains("devcie"), "{e}");
        let e = error(&format!("{MINIMAL}[preflight]\nmin_mtu = 4096\n"));
        assert!(e.contains("min_mtu"), "{e}");
        let e = error(&format!(
            "{MINIMAL}[[tests]]\nkind = \"p2p-bandwidth\"\nsize = \"1M\"\nmin_gbytes_per_s = 1\nmax_p99_us = 3\n"
        ));
        assert!(e.contains("max_p99_us"), "{e}");
        let e = error(&format!("{MINIMAL}[[tests]]\nkind = \"alltoall\"\n"));
        assert!(e.contains("alltoall"), "{e}");
        let e = error("[preflight]\nmin_mtu_bytes = 4096\n");
        assert!(e.contains("target"), "{e}");
    }

    #[test]
    fn bad_values_name_the_field() {
        let e = error(&format!("{MINIMAL}[preflight]\nmin_mtu_bytes = 9000\n"));
        assert!(
            e.contains("preflight.min_mtu_bytes") && e.contains("4096"),
            "{e}"
        );
        let e = error(&format!("{MINIMAL}[preflight]\necn = true\n"));
        assert!(e.contains("preflight.ecn"), "{e}");
        let e = error(&format!("{MINIMAL}[preflight]\npfc_priority = 9\n"));
        assert!(e.contains("pfc_priority"), "{e}");
        let e = error(&format!(
            "{MINIMAL}[[tests]]\nkind = \"p2p-latency\"\nsize = \"1M\"\n"
        ));
        assert!(e.contains("tests[0].max_p99_us"), "{e}");
        let e = error(&format!(
            "{MINIMAL}[[tests]]\nkind = \"pairs\"\npairs = 2\nmin_jain_index = 1.5\n"
        ));
        assert!(e.contains("tests[0].min_jain_index"), "{e}");
        let e = error(&format!(
            "{MINIMAL}[[tests]]\nkind = \"p2p-bandwidth\"\nsize = \"1M\"\ntrials = 0\nmin_gbytes_per_s = 1\n"
        ));
        assert!(e.contains("tests[0].trials"), "{e}");
        let e = error(&format!(
            "{MINIMAL}[[tests]]\nkind = \"p2p-latency\"\nsize = \"1M\"\nclock = \"target\"\nmax_p99_us = 5\n"
        ));
        assert!(e.contains("write-imm"), "{e}");
        let e = error("[target]\ndevice = \"a\"\npeer = \"h\"\ntarget_device = \"b\"\n");
        assert!(e.contains("target.peer"), "{e}");
    }

    #[test]
    fn timeouts_follow_the_run_length() {
        let p = parse(&format!(
            "{MINIMAL}[[tests]]\nkind = \"p2p-bandwidth\"\nsize = \"1M\"\ntrials = 2\nduration_s = 5\nmin_gbytes_per_s = 1\n\
             [[tests]]\nkind = \"pairs\"\npairs = 1\ntimeout_s = 7\nmin_jain_index = 0.5\n"
        ))
        .unwrap();
        assert_eq!(p.tests[0].timeout_s(), 150.0);
        assert_eq!(p.tests[1].timeout_s(), 7.0);
    }
}
