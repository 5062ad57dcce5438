//! Result types of the KV-cache transfer test (IETF 10.1, and the fabric
//! part of 6.1): the model and layout, and per prompt length the TTFT
//! decomposition. Fields whose value infab models rather than measures
//! (prefill compute, decode initialisation) carry `modelled` in their name.

use serde::{Deserialize, Serialize};

use crate::stats::{LatencySummary, TrialInterval};
use crate::workload::kv::KvModel;

use super::NodeCounters;

/// The run-level description of a KV test: what 10.1's reporting format
/// MUST state (configuration id or L, H_kv, D, P_bytes) and how the
/// transfer was shaped.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct KvReport {
    /// The model's KV shape (name, L, H_kv, D, P_bytes, MLA) and its source.
    pub model: KvModel,
    /// Tensor parallelism: this rank pair moves 1/tp of the KV heads.
    pub tp: u32,
    /// KV heads this rank pair moves (H_kv / tp, at least 1).
    pub kv_heads_per_rank: u32,
    /// Bytes of one token of one layer of one tensor on this rank pair.
    pub token_bytes: u64,
    /// "vllm", "sglang", "contiguous" or "mla".
    pub layout: String,
    /// Tokens per page.
    pub block_tokens: u32,
    /// Pages in each side's pool.
    pub pool_blocks: u32,
    /// Free-list fragmentation, 0 (consecutive) ..= 1 (shuffled).
    pub fragmentation: f64,
    /// "push" (prefill WRITEs) or "pull" (decode READs).
    pub direction: String,
    /// "imm", "send" or "none".
    pub notify: String,
    /// "request" or "layer:K".
    pub pipeline: String,
    /// Largest work request, bytes (descriptors are sliced to it).
    pub max_wr_bytes: u64,
    /// The prefill model (modelled, not measured), e.g. "rate 20000 tokens/s".
    pub prefill_modelled: String,
    /// The modelled decode initialisation, ns.
    pub decode_init_modelled_ns: u64,
    /// Requests per prompt length per trial.
    pub requests_per_trial: u32,
    /// How the waiting end waited: "spin" or "event" (sleep on the CQ's
    /// completion channel after 50 µs idle).
    pub poll: String,
    /// Why: the default rule (cores the process may use) or the flag.
    pub poll_reason: String,
    /// How requests arrived: "closed" (back to back) or an open-loop
    /// process ("poisson:RATE", "bursty:RATE,cv=X", "constant:RATE",
    /// "trace:FILE (N arrivals)"); open loop measures TTFT from each
    /// request's intended arrival.
    #[serde(default = "closed_loop")]
    pub arrival: String,
    /// The open-loop process's mean rate, requests/s (null: closed loop).
    #[serde(default)]
    pub offered_rate_per_s: Option<f64>,
    /// A prompt mix (`--prompt-dist`): the distribution every request's
    /// prompt length was drawn from, e.g. "zipf:alpha=1,128..4096"; the run
    /// then has one point whose lengths and sizes are means over its
    /// requests. Null: the `--prompt` sweep, one point per length.
    #[serde(default)]
    pub prompt_dist: Option<String>,
    /// One entry per prompt length, in run order.
    pub points: Vec<KvPoint>,
}

/// One prompt length (or, with a prompt mix, the one point of the mix).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct KvPoint {
    /// Prompt tokens (C); with a prompt mix, the mean over its requests
    /// (each request's own is in `requests[].prompt_tokens`), and so are
    /// the sizes below.
    pub prompt_tokens: u64,
    /// S_KV of one request on this rank pair, from the formula.
    pub kv_bytes: u64,
    /// Bytes one request actually moves (whole pages for vllm).
    pub bytes_per_request: u64,
    /// Descriptors one request lists.
    pub descriptors_per_request: u64,
    /// Work requests one request posts (descriptors after slicing).
    pub wrs_per_request: u64,
    /// QPs the transfer is spread over.
    pub qps: u32,
    /// Outstanding WRs per QP.
    pub tx_depth: u32,
    /// The modelled prefill time of this prompt length, ns.
    pub t_prefill_modelled_ns: u64,
    /// Per trial.
    pub trials: Vec<KvTrial>,
    /// Over every request of every trial.
    pub summary: KvSummary,
    /// Every request's raw values.
    pub requests: Vec<KvRequestResult>,
}

/// One request's values, ns.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct KvRequestResult {
    /// Trial number.
    pub trial: u32,
    /// Request number within the trial.
    pub request: u32,
    /// Its prompt tokens (0 when read from a file before 1.4: the point's
    /// `prompt_tokens`).
    #[serde(default)]
    pub prompt_tokens: u64,
    /// Modelled prefill compute.
    pub t_prefill_modelled_ns: u64,
    /// Measured: first post → the decode side has the request (push with a
    /// notification: the notification is complete there; pull: the last
    /// READ completed; no notification: the last completion).
    pub t_transfer_ns: u64,
    /// The part of `t_transfer_ns` that outlasts the prefill (equal to it
    /// without layer pipelining).
    pub t_transfer_exposed_ns: u64,
    /// Modelled decode initialisation.
    pub t_decode_init_modelled_ns: u64,
    /// Open loop: intended arrival → prefill start (waiting for the request
    /// before it); 0 in closed loop.
    #[serde(default)]
    pub t_queue_ns: u64,
    /// T_queue + T_prefill + exposed T_transfer + T_decode_init (open loop:
    /// from the intended arrival).
    pub ttft_ns: u64,
    /// Wall time inside `ibv_post_send` for the data WRs.
    pub post_ns: u64,
    /// Post calls (one doorbell each) for the data WRs.
    pub doorbells: u64,
    /// Last data completion at the posting side → the notification is
    /// complete at the other side (null without a notification). With
    /// `imm` on push the notification rides on the last data, so it is
    /// about 0 (clamped at 0 when the target saw it before the initiator's
    /// completion).
    pub notify_lag_ns: Option<u64>,
    /// Descriptors.
    pub descriptors: u64,
    /// Work requests.
    pub wrs: u64,
    /// Bytes.
    pub bytes: u64,
    /// Bytes found wrong at the destination (`--verify` only).
    pub verify_mismatches: Option<u64>,
}

/// One trial of a prompt length.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct KvTrial {
    /// Trial number.
    pub trial: u32,
    /// Requests completed.
    pub requests: u32,
    /// Median T_transfer, ns.
    pub t_transfer_p50_ns: u64,
    /// Median TTFT, ns.
    pub ttft_p50_ns: u64,
    /// Bytes per request / median T_transfer, GB/s (10^9).
    pub gbytes_per_s: f64,
    /// CPU seconds of the posting side's thread over the trial.
    pub cpu_s: f64,
    /// Counter deltas of every device of the run.
    pub counters: Vec<NodeCounters>,
}

/// A prompt length over all its requests.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct KvSummary {
    /// Requests measured.
    pub requests: u64,
    /// Modelled prefill.
    pub t_prefill_modelled: LatencySummary,
    /// Open loop: queueing before the prefill (null in closed loop).
    #[serde(default)]
    pub t_queue: Option<LatencySummary>,
    /// Measured transfer (TTFT_fabric).
    pub t_transfer: LatencySummary,
    /// Measured transfer beyond the prefill.
    pub t_transfer_exposed: LatencySummary,
    /// Modelled decode initialisation.
    pub t_decode_init_modelled: LatencySummary,
    /// TTFT.
    pub ttft: LatencySummary,
    /// Exposed T_transfer / TTFT at P50, P95 and P99 (each the ratio of the
    /// two percentiles): the fabric's share of TTFT; without layer
    /// pipelining the exposed part is all of T_transfer.
    pub transfer_share: TransferShare,
    /// Posting time per descriptor, ns (mean over requests).
    pub post_ns_per_descriptor: f64,
    /// Posting time per work request, ns (mean over requests).
    pub post_ns_per_wr: f64,
    /// Posting time / T_transfer (mean over requests).
    pub post_share: f64,
    /// Notification lag (null without a notification).
    pub notify_lag: Option<LatencySummary>,
    /// Median T_transfer across trials (95 % CI).
    pub t_transfer_p50_ns: Option<TrialInterval>,
    /// Transfer throughput across trials (95 % CI), GB/s.
    pub gbytes_per_s: Option<TrialInterval>,
    /// Total mismatched bytes (`--verify` only).
    pub verify_mismatches: Option<u64>,
}

/// T_transfer / TTFT at three percentiles.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct TransferShare {
    /// At P50.
    pub p50: f64,
    /// At P95.
    pub p95: f64,
    /// At P99.
    pub p99: f64,
}

fn closed_loop() -> String {
    "closed".into()
}
