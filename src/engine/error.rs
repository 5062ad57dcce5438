//! Engine errors: each says what failed, the counts so far, and the fix.

use crate::control::ControlError;
use crate::verbs::VerbsError;

/// A failure while driving traffic.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    /// A verbs call failed.
    #[error(transparent)]
    Verbs(#[from] VerbsError),
    /// The control channel failed.
    #[error(transparent)]
    Control(#[from] ControlError),
    /// A work request completed with an error status.
    #[error(
        "QP {qpn}: a work request failed with '{status}' (status {status_code}, vendor error {vendor_err:#x}) \
         after {completed} completions with {in_flight} in flight{hint}"
    )]
    Completion {
        /// Local QP number.
        qpn: u32,
        /// rdma-core's status text.
        status: String,
        /// The status code.
        status_code: u32,
        /// Vendor syndrome.
        vendor_err: u32,
        /// Completions seen so far on this QP.
        completed: u64,
        /// WRs still outstanding on this QP.
        in_flight: u64,
        /// The likely fix.
        hint: &'static str,
    },
    /// No completion arrived for too long.
    #[error(
        "no completion for {waited_s:.1} s while {what}: {completed} completed, {in_flight} in flight; \
         the peer may be dead or unreachable (check its GID/route and that it still runs), or raise --stall-timeout"
    )]
    Stall {
        /// What the engine was doing.
        what: String,
        /// Seconds without progress.
        waited_s: f64,
        /// Completions so far.
        completed: u64,
        /// Outstanding WRs.
        in_flight: u64,
    },
    /// The run's abort was raised (a peer died, the coordinator stopped
    /// the run): the loop stopped at once instead of at its stall timeout.
    #[error("stopped: {0}")]
    Aborted(String),
    /// A lane thread panicked (a bug).
    #[error("an engine thread panicked: {0}")]
    Panic(String),
    /// The request cannot be run as asked.
    #[error("{0}")]
    Invalid(String),
}

impl EngineError {
    /// The error for a failed work completion, with the QP's counts so far.
    pub(crate) fn completion(
        c: &crate::verbs::Completion,
        completed: u64,
        in_flight: u64,
    ) -> EngineError {
        EngineError::Completion {
            qpn: c.qp_num,
            status: c.status_text(),
            status_code: c.status,
            vendor_err: c.vendor_err,
            completed,
            in_flight,
            hint: completion_hint(c.status),
        }
    }
}

/// The fix most likely to help for a completion status.
pub(crate) fn completion_hint(status: u32) -> &'static str {
    match status {
        12 => "; the peer stopped answering: it died, or the path is wrong (GID index -x, routes, MTU)",
        13 => "; the target had no receive posted (RNR): raise --rx-depth",
        10 => "; the target refused the access: its memory region does not grant the remote right this operation needs \
               (remote write for WRITE/WRITE_IMM, remote read for READ), or its key or address is wrong (a peer of another infab version)",
        4 | 11 => "; a memory key or address was rejected: an infab bug or a peer from another version",
        5 => "; the QP was flushed after an earlier error",
        2 => "; the local device could not execute the work request: its port or link may be down (check `ip link` and `rdma link`)",
        _ => "",
    }
}
