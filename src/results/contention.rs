//! Result types of the KV/EP contention test (IETF 7.4): the same KV
//! stream and AllToAll measured isolated and together, and the contention
//! penalty (contended P99 / isolated P99) of each traffic class.

use serde::{Deserialize, Serialize};

use crate::stats::{LatencySummary, TrialInterval};

use super::{MoeReport, NodeCounters};

/// One trial of one phase.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ContentionTrial {
    /// Trial number.
    pub trial: u32,
    /// KV message completion latency (phases with the KV stream).
    pub kv_latency: Option<LatencySummary>,
    /// KV GB/s achieved (all pairs over the common window).
    pub kv_gbytes_per_s: Option<f64>,
    /// AllToAll dispatch latency, slowest rank per dispatch (phases with EP).
    pub ep_latency: Option<LatencySummary>,
    /// Counter deltas of every device (ECN/PFC events during the phase).
    pub counters: Vec<NodeCounters>,
}

/// One phase: capacity, kv-isolated, ep-isolated or contended.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ContentionPhase {
    /// "capacity", "kv-isolated", "ep-isolated" or "contended".
    pub phase: String,
    /// KV load, percent of the measured capacity (null: unpaced or no KV).
    pub kv_load_percent: Option<u32>,
    /// KV target rate, GB/s (null: unpaced or no KV).
    pub kv_target_gbytes_per_s: Option<f64>,
    /// Every trial.
    pub trials: Vec<ContentionTrial>,
    /// KV P99 across trials (ns).
    pub kv_p99_ns: Option<TrialInterval>,
    /// EP P99 across trials (ns).
    pub ep_p99_ns: Option<TrialInterval>,
    /// KV GB/s across trials.
    pub kv_gbytes_per_s: Option<TrialInterval>,
}

/// The contention penalty at one KV load.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ContentionPenalty {
    /// KV load, percent of capacity.
    pub kv_load_percent: u32,
    /// KV P99 isolated (mean over trials, ns).
    pub kv_isolated_p99_ns: Option<f64>,
    /// KV P99 contended (ns).
    pub kv_contended_p99_ns: Option<f64>,
    /// contended / isolated.
    pub kv_penalty: Option<f64>,
    /// EP P99 isolated (ns).
    pub ep_isolated_p99_ns: Option<f64>,
    /// EP P99 contended (ns).
    pub ep_contended_p99_ns: Option<f64>,
    /// contended / isolated.
    pub ep_penalty: Option<f64>,
}

/// The whole 7.4 run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ContentionReport {
    /// KV prefill→decode pairs.
    pub kv_pairs: u32,
    /// KV message size.
    pub kv_msg_bytes: u64,
    /// KV trial length, s.
    pub kv_duration_s: f64,
    /// EP group size.
    pub ep_ranks: u32,
    /// The MoE configuration.
    pub moe: MoeReport,
    /// Tokens per rank.
    pub batch_tokens: u32,
    /// "normal" or "low-latency".
    pub mode: String,
    /// Routing mode.
    pub routing: String,
    /// One dispatch every this many ns (one per MoE layer forward pass).
    pub period_ns: u64,
    /// Dispatches per trial.
    pub iterations: u32,
    /// KV capacity measured in this run (unpaced, isolated), GB/s.
    pub capacity_gbytes_per_s: Option<f64>,
    /// Every phase, in run order.
    pub phases: Vec<ContentionPhase>,
    /// Per KV load: isolated vs contended P99 of each class.
    pub penalties: Vec<ContentionPenalty>,
    /// Test 8.3: convergence of both classes after the other joins
    /// (absent for 7.4).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub convergence: Option<super::ConvergenceReport>,
}
