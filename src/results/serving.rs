//! Result types of the serving-pool tests (IETF 6.2 xPyD ratio, 6.4
//! prefill oversubscription, 9.4 decode-worker fairness, and the
//! Request_Rate capacity knee of §4.2): open-loop requests through
//! prefill and decode worker pools, every request's KV moved over RDMA.
//! Fields whose value infab models rather than measures (prefill compute,
//! decode initialisation and steps) carry `modelled` in their name.

use serde::{Deserialize, Serialize};

use crate::stats::bursts::Burst;
use crate::stats::{LatencySummary, TrialInterval};
use crate::workload::kv::KvModel;

use super::NodeCounters;

/// The run-level description of a serving-pool test.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ServingReport {
    /// The model's KV shape.
    pub model: KvModel,
    /// Tensor parallelism of each worker pair.
    pub tp: u32,
    /// "vllm", "sglang", "contiguous" or "mla".
    pub layout: String,
    /// Tokens per page.
    pub block_tokens: u32,
    /// Pages in each decode worker's pool.
    pub decode_pool_blocks: u32,
    /// Pages in each prefill worker's pool.
    pub prefill_pool_blocks: u32,
    /// "push": prefill workers WRITE into the decode worker's pages, the
    /// last WR on every used QP a WRITE_WITH_IMM; "pull": decode workers
    /// READ the prefill pages, then notify with a zero-byte SEND_WITH_IMM.
    pub direction: String,
    /// QPs from each prefill worker to each decode worker.
    pub qps_per_pair: u32,
    /// Largest work request, bytes.
    pub max_wr_bytes: u64,
    /// The base arrival process (a sweep replaces its rate per point).
    pub arrival: String,
    /// Prompt length distribution.
    pub prompt_dist: String,
    /// Output length distribution.
    pub output_dist: String,
    /// Requests offered per point per trial.
    pub requests_per_trial: u32,
    /// "round-robin", "least-loaded" or "random".
    pub route: String,
    /// "wait" or "reject".
    pub admission: String,
    /// "shared": asks and grants through in-process state; "fabric": an
    /// ASK and a GRANT or REJECT as RDMA SENDs (files before 1.5: shared).
    #[serde(default = "shared_control")]
    pub control: String,
    /// The prefill model (modelled, not measured).
    pub prefill_modelled: String,
    /// Modelled decode initialisation, ns.
    pub decode_init_modelled_ns: u64,
    /// Modelled decode step, ns: every active request gains one token per
    /// step, so the inter-token latency is this step.
    pub decode_step_modelled_ns: u64,
    /// TTFT SLO, ns (null: none given).
    pub slo_ttft_ns: Option<u64>,
    /// ITL SLO, ns (null: none given).
    pub slo_itl_ns: Option<u64>,
    /// Bin of the fabric rate series, ns.
    pub bin_ns: u64,
    /// "points" (one per ratio), "oversubscribe" (6.4), "rate-sweep" or
    /// "tenants" (10.3).
    pub sweep: String,
    /// How the engine threads waited.
    pub poll: String,
    /// The points in run order.
    pub points: Vec<ServingPoint>,
    /// xPyD ratios on the Pareto front of (TTFT P99, goodput per worker)
    /// (6.2); empty with one ratio.
    #[serde(default)]
    pub pareto_ratios: Vec<String>,
    /// Rate sweep: the highest offered rate whose TTFT P99 met the SLO
    /// (null: none did, or no sweep).
    #[serde(default)]
    pub knee_rate_per_s: Option<f64>,
    /// 10.3: per tenant, its latencies alone and sharing the fabric and
    /// the interference penalty (empty for other tests).
    #[serde(default)]
    pub tenants: Vec<TenantResult>,
}

/// One tenant of a 10.3 run: its TTFT and KV-transfer P99 run alone and
/// sharing the fabric with the others (the same seeded requests both
/// times), and the draft's interference penalty, (shared − alone) / alone
/// × 100 %.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TenantResult {
    /// "A", "B", ... in the order of the --tenant flags.
    pub tenant: String,
    /// Its model.
    pub model: String,
    /// Its pools, "1P1D".
    pub ratio: String,
    /// Its arrival process.
    pub arrival: String,
    /// Its modelled prefill (from its model).
    pub prefill_modelled: String,
    /// Mean over trials of the TTFT P99, run alone, ns.
    pub ttft_p99_alone_ns: Option<f64>,
    /// The same, sharing the fabric, ns.
    pub ttft_p99_shared_ns: Option<f64>,
    /// Interference penalty on TTFT P99, percent.
    pub ttft_p99_penalty_pct: Option<f64>,
    /// Mean over trials of the KV-transfer P99, run alone, ns.
    pub t_transfer_p99_alone_ns: Option<f64>,
    /// The same, sharing the fabric, ns.
    pub t_transfer_p99_shared_ns: Option<f64>,
    /// Interference penalty on the KV-transfer P99, percent.
    pub t_transfer_p99_penalty_pct: Option<f64>,
    /// ITL P99: the modelled decode step, the same alone and shared (the
    /// emulation's decode does not use the fabric, so its penalty is not
    /// measured).
    pub itl_p99_modelled_ns: u64,
}

/// One point: an xPyD ratio at one offered rate.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ServingPoint {
    /// "1P1D", "2P6D", ...
    pub ratio: String,
    /// 10.3: the tenant ("A", "B", ...); null for other tests.
    #[serde(default)]
    pub tenant: Option<String>,
    /// 10.3: "alone" or "shared"; null for other tests.
    #[serde(default)]
    pub phase: Option<String>,
    /// Prefill workers.
    pub prefill_workers: u32,
    /// Decode workers.
    pub decode_workers: u32,
    /// The arrival process at this point.
    pub arrival: String,
    /// Offered rate, requests/s.
    pub offered_rate_per_s: f64,
    /// The offered rate over the modelled prefill pool's capacity
    /// (workers / mean modelled prefill time of the drawn prompts).
    pub load_multiple: f64,
    /// That capacity, requests/s (modelled).
    pub prefill_capacity_modelled_per_s: f64,
    /// Each trial.
    pub trials: Vec<ServingTrial>,
    /// Across trials (95 % Student-t intervals of the per-trial values).
    pub summary: ServingSummary,
}

/// One trial of a point.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ServingTrial {
    /// Trial number.
    pub trial: u32,
    /// "complete" or "partial" (stopped by an error; what completed is kept).
    pub status: String,
    /// The error that stopped it.
    #[serde(default)]
    pub error: Option<String>,
    /// Requests offered (arrived).
    pub offered: u32,
    /// Admitted by a decode worker (granted pages).
    pub admitted: u32,
    /// Refused by a decode worker (`--admission reject`).
    pub rejected: u32,
    /// Admitted after queueing for decode pages.
    pub admission_waits: u32,
    /// KV landed at the decode worker.
    pub completed: u32,
    /// Offered but neither rejected nor completed when the trial ended.
    pub unfinished: u32,
    /// From the first intended arrival to the last modelled decode end, ns.
    pub span_ns: u64,
    /// T_queue: intended arrival → prefill start (measured).
    pub t_queue: LatencySummary,
    /// T_admission: prefill end → decode pages granted (measured).
    pub t_admission: LatencySummary,
    /// T_transfer: pages granted → the KV landed at the decode worker
    /// (push: every used QP's immediate arrived; pull: its last READ
    /// completed), with descriptor planning, posting and the fabric.
    pub t_transfer: LatencySummary,
    /// TTFT = intended arrival → KV landed, plus the modelled decode
    /// initialisation (the prefill compute inside it is modelled).
    pub ttft: LatencySummary,
    /// Output tokens per second of completed requests over the span
    /// (decode modelled).
    pub tps_output_modelled: f64,
    /// Completed requests meeting the TTFT and ITL SLOs, per second of span.
    pub goodput_per_s: Option<f64>,
    /// Completed requests meeting the SLOs, share of offered.
    pub slo_attainment: Option<f64>,
    /// Per decode worker.
    pub decode_workers: Vec<WorkerShare>,
    /// Per prefill worker.
    pub prefill_workers: Vec<WorkerShare>,
    /// Jain index of the decode workers' KV bytes received (9.4).
    pub jfi_decode_bytes: Option<f64>,
    /// Jain index of the decode workers' requests served (9.4).
    pub jfi_decode_requests: Option<f64>,
    /// Fabric bursts (6.4).
    pub bursts: BurstStats,
    /// Bytes landed per bin from the first intended arrival (6.4 series).
    pub rate_series_bytes: Vec<f64>,
    /// Counter deltas of both devices over the trial.
    pub counters: Vec<NodeCounters>,
    /// Pages found wrong at the decode workers (`--verify`; null: off).
    pub verify_mismatches: Option<u64>,
    /// Every request.
    pub requests: Vec<ServingRequestResult>,
}

/// One worker's share of a trial.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WorkerShare {
    /// Worker number within its role.
    pub worker: u32,
    /// Requests it served to completion.
    pub requests: u32,
    /// KV bytes it sent (prefill) or received (decode).
    pub bytes: u64,
    /// Most pages in use at once (decode workers).
    #[serde(default)]
    pub peak_pages_used: Option<u32>,
    /// Most requests queued for pages at once (decode workers).
    #[serde(default)]
    pub peak_waiting: Option<u32>,
    /// Thread CPU seconds.
    pub cpu_s: f64,
}

/// Burst statistics of a trial (6.4): transfers overlapping in time form a
/// burst.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BurstStats {
    /// Bursts.
    pub count: u32,
    /// Burst size (bytes) P50.
    pub size_p50_bytes: u64,
    /// Burst size P99.
    pub size_p99_bytes: u64,
    /// Largest burst.
    pub size_max_bytes: u64,
    /// Burst duration P50, ns.
    pub duration_p50_ns: u64,
    /// Burst duration P99, ns.
    pub duration_p99_ns: u64,
    /// Inter-burst gap P50, ns.
    pub gap_p50_ns: u64,
    /// Inter-burst gap P99, ns.
    pub gap_p99_ns: u64,
    /// Highest binned fabric rate, GB/s.
    pub peak_gbytes_per_s: f64,
    /// Mean binned fabric rate over the active span, GB/s.
    pub mean_gbytes_per_s: f64,
    /// The largest bursts (at most 16), for the report.
    pub largest: Vec<Burst>,
}

/// One request's account. Times are ns from its intended arrival, or
/// durations.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ServingRequestResult {
    /// Its number (arrival order).
    pub request: u32,
    /// Intended arrival, ns after the trial's start.
    pub intended_start_ns: u64,
    /// Prefill worker.
    pub prefill_worker: u32,
    /// Decode worker.
    pub decode_worker: u32,
    /// Prompt tokens.
    pub prompt_tokens: u64,
    /// Output tokens.
    pub output_tokens: u64,
    /// "completed", "rejected" or "unfinished".
    pub status: String,
    /// T_queue, ns.
    pub t_queue_ns: u64,
    /// Modelled prefill, ns.
    pub t_prefill_modelled_ns: u64,
    /// Prefill start → the worker asked for decode pages, ns: the modelled
    /// prefill plus the worker's lateness in noticing its end (busy
    /// posting another request's KV). TTFT = T_queue + this + T_admission +
    /// T_transfer + T_decode_init, exactly.
    pub t_prefill_elapsed_ns: u64,
    /// T_admission, ns.
    pub t_admission_ns: Option<u64>,
    /// T_transfer, ns.
    pub t_transfer_ns: Option<u64>,
    /// Modelled decode initialisation, ns.
    pub t_decode_init_modelled_ns: u64,
    /// TTFT, ns (completed only).
    pub ttft_ns: Option<u64>,
    /// KV bytes.
    pub bytes: u64,
    /// Descriptors of its layout.
    pub descriptors: u64,
}

/// Per-trial values summarised across trials.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ServingSummary {
    /// TTFT P50 per trial, ns.
    pub ttft_p50_ns: Option<TrialInterval>,
    /// TTFT P99 per trial, ns.
    pub ttft_p99_ns: Option<TrialInterval>,
    /// T_queue P99 per trial, ns.
    pub t_queue_p99_ns: Option<TrialInterval>,
    /// T_transfer P99 per trial, ns (the KV transfer P99 of 6.4).
    pub t_transfer_p99_ns: Option<TrialInterval>,
    /// ITL P99, ns (modelled: the decode step).
    pub itl_p99_modelled_ns: u64,
    /// TPS_output per trial (decode modelled).
    pub tps_output_modelled: Option<TrialInterval>,
    /// Goodput per trial, requests/s.
    pub goodput_per_s: Option<TrialInterval>,
    /// Rejected share of offered, per trial.
    pub reject_ratio: Option<TrialInterval>,
    /// JFI of decode bytes per trial.
    pub jfi_decode_bytes: Option<TrialInterval>,
    /// Peak binned fabric rate per trial, GB/s.
    pub peak_gbytes_per_s: Option<TrialInterval>,
    /// Mean binned fabric rate per trial, GB/s.
    pub mean_gbytes_per_s: Option<TrialInterval>,
    /// Whether the TTFT P99 (mean over trials) met the SLO (null: no SLO).
    pub meets_slo: Option<bool>,
}

fn shared_control() -> String {
    "shared".into()
}
