//! The engine: QP sets, the post/poll loops, timing and deadlines.
//!
//! It owns how traffic is driven (windows, selective signalling, message
//! splitting, ping-pong) and how every completion is timed. It does not own
//! what to run (sweeps, trials: `suite/`) or how results are shown
//! (`report/`). Each lane is one pinned thread owning its CQ and QPs, so the
//! engine scales with `--threads` and never shares a CQ between threads.

mod alltoall;
mod bandwidth;
mod burst;
mod cpu;
mod endpoint;
mod error;
mod file_write;
mod kv;
mod latency;
mod leak;
mod paced;
mod pattern;
mod serving;
mod target;
mod wait;
mod wr_id;

pub use alltoall::{
    run_alltoall, AllToAllPlan, DispatchOp, IterationTimes, QpPayload, RankDispatch,
    RankDispatchTally, COMBINE_FLAG, DISPATCH_RECV_DEPTH,
};
pub(crate) use bandwidth::panic_text;
pub use bandwidth::{run_bandwidth, BandwidthPlan, StopRule};
pub use burst::{run_bursts, BurstPlan, BurstTally, TransferTimes};
pub use cpu::thread_cpu_s;
pub use endpoint::{Endpoint, Lane, QpSet};
pub use error::EngineError;
pub use file_write::{
    file_pattern_byte, file_slots, DirectFile, FileTrial, FileWritePlan, DIRECT_ALIGN_BYTES,
};
pub use kv::{
    kv_fill_pattern, kv_qps_used, run_kv_active, run_kv_passive, KvActiveTally, KvDirection,
    KvNotify, KvPassiveTally, KvRequestTimes, KvRunPlan, KvSchedule, KV_NOTIFY_BYTES,
    KV_RECV_DEPTH,
};
pub use latency::{run_latency, run_pingpong, LatencyPlan, LatencyRun};
pub use leak::InjectedLeak;
pub use paced::{run_paced, Pace, StopOnDrop};
pub use pattern::{count_mismatches, fill_pattern, pattern_seed, zero};
pub use serving::{
    error_rank, run_decode_worker, run_prefill_worker, ControlLayout, DecodeTally, DecodeWorker,
    Landing, PoolRequestTimes, PoolRunPlan, PoolShared, PrefillTally, PrefillWorker,
    RAN_PAST_BUDGET, SERVING_MAX_QPS, SERVING_MAX_REQUESTS, SERVING_RECV_DEPTH, STOPPED_BY_PEER,
};
pub use target::{pong, PongPlan, ReceiveLoop, ReceivePlan, ReceiveTally};
pub use wait::{usable_cores, IdleWait, PollChoice, PollMode, LONGEST_SLEEP};
pub use wr_id::WrId;

/// The result of one lane (thread) of a bandwidth trial.
#[derive(Debug, Clone, Default)]
pub struct LaneTally {
    /// Per-QP counts, in the lane's QP order.
    pub per_qp: Vec<QpTally>,
    /// Message completion latencies, nanoseconds.
    pub latency: crate::stats::LatencyHistogram,
    /// CPU seconds of the lane thread.
    pub cpu_s: f64,
    /// First post to last completion, nanoseconds.
    pub elapsed_ns: u64,
    /// First post, CLOCK_MONOTONIC ns.
    pub start_ns: u64,
    /// Last completion, CLOCK_MONOTONIC ns.
    pub end_ns: u64,
    /// Completed bytes and messages per bin, when the plan asked for a series.
    pub series: Option<crate::stats::RateSeries>,
}

/// Counts of one QP in one trial.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct QpTally {
    /// Messages completed.
    pub messages: u64,
    /// Payload bytes completed.
    pub bytes: u64,
    /// Work requests posted (messages × chunks, plus any flush).
    pub wrs_posted: u64,
    /// Receives the target must see for this trial.
    pub target_receives: u64,
}
