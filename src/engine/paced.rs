//! Rate-paced background streams (draft §5.2 "loaded", §10.4): the
//! bandwidth loop of [`run_bandwidth`](super::run_bandwidth) with a token
//! bucket in front of every message start, stoppable from another thread.
//!
//! The stream posts a message only when the lane's
//! [`TokenBucket`](crate::workload::TokenBucket) holds credit for it; between
//! messages the loop keeps polling its CQ and spinning, never sleeping, so it
//! notices the stop flag within one loop turn and never overshoots a stop
//! time by a sleep. It stops at the first message boundary after the stop
//! flag is raised or the plan's [`StopRule`](super::StopRule) fires,
//! whichever comes first; the rule is the safety cap, the flag is the normal
//! way to end a background stream that must cover a foreground trial of
//! unknown length. This module owns the pacing wiring only: the rate
//! arithmetic lives in `workload::pacing`, the loop in `bandwidth.rs`.
//!
//! With several lanes the rate is split by each lane's share of the QPs, so
//! the set as a whole is paced at `rate_bytes_per_s`.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use crate::control::monotonic_ns;
use crate::verbs::RegisteredBuffer;
use crate::workload::TokenBucket;

use super::bandwidth::{bandwidth_lane, on_lanes, wait_until};
use super::{BandwidthPlan, EngineError, LaneTally, PollMode, QpSet};

/// The pace of a background stream and the flag that ends it.
#[derive(Debug, Clone)]
pub struct Pace {
    /// Average rate of the whole QP set, bytes per second.
    pub rate_bytes_per_s: u64,
    /// Most bytes released at once (the bucket size), whole set.
    pub burst_bytes: u64,
    /// Raised by another thread to end the stream at the next message boundary.
    pub stop: Arc<AtomicBool>,
}

/// One lane's pacer inside the bandwidth loop.
#[derive(Debug)]
pub(crate) struct LanePacer<'a> {
    /// The lane's share of the rate.
    pub(crate) bucket: TokenBucket,
    /// The stream's stop flag.
    pub(crate) stop: &'a AtomicBool,
    /// The lane's poll mode (event: sleep for credit).
    pub(crate) mode: PollMode,
}

impl LanePacer<'_> {
    /// Whether the stop flag is up.
    #[inline]
    pub(crate) fn stop_requested(&self) -> bool {
        self.stop.load(Ordering::Relaxed)
    }

    /// Takes credit for one message now; false: wait and try again. A
    /// refusal yields the CPU (never sleeps): on an idle core the thread
    /// runs on at once, on a busy one (SoftRoCE, where the kernel does the
    /// transport work) the foreground and the transport get the core.
    ///
    /// In event mode a refusal returns at once: the bandwidth loop posts
    /// what it has admitted, then sleeps on the CQ until the next completion
    /// or the credit's due time, so a stream at a fraction of line rate
    /// costs a fraction of a core.
    #[inline]
    pub(crate) fn admit(&mut self, msg_bytes: u64) -> bool {
        let admitted = self.bucket.try_take(monotonic_ns(), msg_bytes);
        if !admitted && self.mode != PollMode::Event {
            std::thread::yield_now();
        }
        admitted
    }
}

/// Runs a paced bandwidth stream on every lane of `set` until `pace.stop`
/// is raised or `plan.stop` fires; returns the lanes' tallies (bytes,
/// messages, first post and last completion times) as [`run_bandwidth`]
/// does.
///
/// [`run_bandwidth`]: super::run_bandwidth
pub fn run_paced(
    set: &mut QpSet,
    buffer: &RegisteredBuffer,
    plan: &BandwidthPlan,
    pace: &Pace,
) -> Result<Vec<LaneTally>, EngineError> {
    let total_qps = set.len().max(1) as u64;
    on_lanes(set, &plan.cores, |i, lane| {
        let remote = plan.lane_remotes.get(i).copied().unwrap_or(plan.remote);
        let qps = lane.qps.len() as u64;
        let share = |v: u64| (u128::from(v) * u128::from(qps) / u128::from(total_qps)) as u64;
        wait_until(plan.start_at_ns);
        let bucket = TokenBucket::starting_at(
            share(pace.rate_bytes_per_s).max(1),
            share(pace.burst_bytes).max(plan.msg_bytes).max(1),
            monotonic_ns(),
        )
        .map_err(|err| EngineError::Invalid(format!("background pacing: {err}")))?;
        let pacer = LanePacer {
            bucket,
            stop: &pace.stop,
            mode: lane.idle.mode(),
        };
        bandwidth_lane(lane, buffer, plan, remote, Some(pacer))
    })
}

/// Raises a stop flag when dropped, so a background stream ends even when
/// the foreground trial beside it fails or panics.
#[derive(Debug)]
pub struct StopOnDrop(pub Arc<AtomicBool>);

impl Drop for StopOnDrop {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Relaxed);
    }
}
