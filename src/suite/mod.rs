//! Test procedures: the IETF test ids mapped to sweeps and trials over the
//! engine, and the target session that serves them.
//!
//! - 5.1 point-to-point KV-transfer throughput, 5.2 KV-transfer latency:
//!   [`p2p`] (initiator, `infab run p2p`) and [`serve`] (target, `infab serve`).
//! - 5.2 loaded and 10.4 latency versus load: [`p2p`] with the paced
//!   background stream of `background`.
//! - 5.3 concurrent pairs: [`pairs`]; 8.1/8.2 incast: [`incast`]; both on
//!   the multi-rank driver [`fabric`] (node 0, over `cluster`).

pub mod alltoall;
mod background;
pub mod contention;
pub mod convergence;
pub mod decode_steps;
mod error;
pub mod fabric;
pub mod incast;
pub mod kv;
pub mod p2p;
pub mod pairs;
pub mod serve;
pub mod serving;
pub mod serving_nodes;
pub mod soak;
mod summary;
pub mod tiers;

pub use error::SuiteError;

/// Wall-clock now, RFC 3339 UTC with seconds (results' time stamps).
pub(crate) fn rfc3339_now() -> String {
    humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string()
}

/// Ends a run: sets status ("complete", or "partial"/"failed" by whether
/// anything was `measured`) and error, and writes the results file. Returns
/// the error that stopped the run, or the one writing the file.
pub(crate) fn conclude(
    report: &mut crate::results::RunReport,
    result: Result<(), SuiteError>,
    measured: bool,
    json: Option<&std::path::Path>,
) -> Option<SuiteError> {
    report.updated_at = rfc3339_now();
    let error = match result {
        Ok(()) => {
            report.status = "complete".into();
            None
        }
        Err(err) => {
            report.status = if measured { "partial" } else { "failed" }.into();
            report.error = Some(err.to_string());
            Some(err)
        }
    };
    if let Some(path) = json {
        if let Err(err) = crate::results::write_json(report, path) {
            return Some(error.unwrap_or(err.into()));
        }
    }
    error
}

/// The results' record of a poll choice.
pub(crate) fn poll_report(choice: &crate::engine::PollChoice) -> crate::results::PollReport {
    crate::results::PollReport {
        mode: choice.mode.name().into(),
        forced: choice.forced,
        engine_threads: choice.engine_threads,
        cores: choice.cores,
    }
}

/// The kernel boot id: equal ids mean a shared CLOCK_MONOTONIC.
pub fn boot_id() -> String {
    std::fs::read_to_string("/proc/sys/kernel/random/boot_id")
        .map(|s| s.trim().to_string())
        .unwrap_or_default()
}
