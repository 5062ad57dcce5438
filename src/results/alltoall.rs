//! Result types of the MoE AllToAll tests (IETF 7.1–7.3): one point per
//! (EP size, dispatch mode, routing mode, batch), with the router's byte
//! matrix, per-rank values and per-trial dispatch latencies.

use serde::{Deserialize, Serialize};

use crate::stats::{LatencySummary, TrialInterval};

use super::NodeCounters;

/// The MoE configuration a point used (Table 6 row, or M5's parameters).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MoeReport {
    /// "M1".."M4", or "M5" for user-defined.
    pub name: String,
    /// Experts E.
    pub experts: u32,
    /// Top-k.
    pub top_k: u32,
    /// Hidden dimension H_model.
    pub hidden: u32,
    /// Bytes per element P_bytes.
    pub bytes_per_element: u32,
}

/// One rank in one trial.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RankDispatchResult {
    /// Index in the EP group (row/column of `pair_bytes`).
    pub ep_index: u32,
    /// Global rank.
    pub rank: u32,
    /// Node.
    pub node: u32,
    /// Network bytes this rank sends per dispatch (its row, local excluded).
    pub send_bytes_per_dispatch: u64,
    /// Network bytes this rank receives per dispatch (its column, local excluded).
    pub recv_bytes_per_dispatch: u64,
    /// This rank's dispatch latency (its start → its sends done and every payload in).
    pub latency: LatencySummary,
    /// Time waiting for dispatch: last send posted → done.
    pub idle: LatencySummary,
    /// CPU of the rank's thread, percent of one core.
    pub cpu_percent: f64,
    /// Payload bytes the rank's engine posted over the trial (dispatch and
    /// combine), as counted on the wire side: iterations · (row + column)
    /// with combine, iterations · row without.
    #[serde(default)]
    pub bytes_sent: u64,
}

/// One trial of an AllToAll point.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AllToAllTrial {
    /// Trial number.
    pub trial: u32,
    /// Dispatches in the trial.
    pub iterations: u32,
    /// Per dispatch, the slowest rank's latency (the layer waits for it).
    pub latency: LatencySummary,
    /// Mean per-rank dispatch bytes (row total, local share included, as
    /// nccl-tests counts) / mean dispatch latency, GB/s.
    pub algbw_gbytes_per_s: f64,
    /// algbw · (n−1)/n, GB/s.
    pub busbw_gbytes_per_s: f64,
    /// All network bytes of a dispatch / mean dispatch latency, GB/s.
    pub network_gbytes_per_s: f64,
    /// Every rank.
    pub per_rank: Vec<RankDispatchResult>,
    /// Counter deltas of every device of the run.
    pub counters: Vec<NodeCounters>,
    /// The combine phase (every rank returns the expert outputs to the
    /// tokens' source ranks, the transposed matrix); absent when the run
    /// timed the dispatch only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub combine: Option<AllToAllPhase>,
    /// The whole layer, dispatch start to combine done, per iteration the
    /// slowest rank; absent without combine.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub layer: Option<AllToAllPhase>,
}

/// One timed phase of an AllToAll trial beyond the dispatch.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AllToAllPhase {
    /// Per iteration, the slowest rank's time in the phase.
    pub latency: LatencySummary,
    /// Mean per-rank bytes of the phase / its mean latency, GB/s.
    pub algbw_gbytes_per_s: f64,
    /// algbw · (n−1)/n, GB/s.
    pub busbw_gbytes_per_s: f64,
}

/// An AllToAll point across trials.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AllToAllSummary {
    /// Trials completed.
    pub trials: u32,
    /// Dispatch latency P50 across trials (ns).
    pub p50_ns: Option<TrialInterval>,
    /// Dispatch latency P99 across trials (ns).
    pub p99_ns: Option<TrialInterval>,
    /// algbw across trials.
    pub algbw_gbytes_per_s: Option<TrialInterval>,
    /// busbw across trials.
    pub busbw_gbytes_per_s: Option<TrialInterval>,
    /// Median idle time (waiting for dispatch) of the ranks, across trials (ns).
    pub idle_p50_ns: Option<TrialInterval>,
    /// Every dispatch of every trial merged.
    pub latency: LatencySummary,
    /// Combine latency P50 across trials (ns); absent without combine.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub combine_p50_ns: Option<TrialInterval>,
    /// Combine latency P99 across trials (ns).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub combine_p99_ns: Option<TrialInterval>,
    /// Combine busbw across trials.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub combine_busbw_gbytes_per_s: Option<TrialInterval>,
    /// Layer (dispatch + combine) latency P50 across trials (ns).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub layer_p50_ns: Option<TrialInterval>,
    /// Layer latency P99 across trials (ns).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub layer_p99_ns: Option<TrialInterval>,
}

/// One point of the AllToAll sweep.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AllToAllPoint {
    /// EP group size n.
    pub ep_ranks: u32,
    /// "normal" (prefill) or "low-latency" (decode).
    pub mode: String,
    /// Routing mode label (Table 7).
    pub routing: String,
    /// The MoE configuration.
    pub moe: MoeReport,
    /// Tokens per rank B.
    pub batch_tokens: u32,
    /// QPs per peer.
    pub qps_per_peer: u32,
    /// "write-imm" or "send".
    pub op: String,
    /// "per-expert" or "per-rank" copies of a token.
    pub copies: String,
    /// Router seed.
    pub seed: u64,
    /// Global rank of each EP index.
    pub ranks: Vec<u32>,
    /// The draft's T_dispatch = B·k·H·P/N, bytes.
    pub t_dispatch_bytes: f64,
    /// Bytes rank i sends rank j per dispatch (diagonal: local, not sent);
    /// padded to the slot in low-latency mode.
    pub pair_bytes: Vec<Vec<u64>>,
    /// Token–expert assignments the router dropped (token drop).
    pub dropped_assignments: u64,
    /// Receive slot per peer, bytes.
    pub slot_bytes: u64,
    /// Every trial.
    pub trials: Vec<AllToAllTrial>,
    /// Across trials.
    pub summary: AllToAllSummary,
    /// (smallest EP's P50)/(this P50) · (n/smallest n), for the same mode,
    /// routing and batch; null for the smallest EP.
    pub scaling_efficiency: Option<f64>,
}
