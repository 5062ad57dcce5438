//! Decode-step inter-token latency, IETF 10.2: the fabric's share of every
//! decode step (L MoE layers of low-latency AllToAll dispatch + combine),
//! unloaded and beside a paced KV stream.

use serde::{Deserialize, Serialize};

use crate::stats::{CdfPoint, LatencySummary, TrialInterval};

use super::{MoeReport, NodeCounters};

/// A step's ITL above this is a stall (the draft's 100 ms).
pub const STALL_NS: u64 = 100_000_000;

/// One trial of one condition.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DecodeTrial {
    /// Trial number.
    pub trial: u32,
    /// Decode steps completed.
    pub steps: u32,
    /// ITL_fabric per step: its wall time less the modelled compute gaps
    /// inside it (the layers − 1 between its layers).
    pub itl_fabric: LatencySummary,
    /// Each step's wall time, first dispatch start → last combine done,
    /// modelled compute gaps included.
    pub itl_step: LatencySummary,
    /// Steps whose ITL_fabric exceeded 100 ms.
    pub stalls: u64,
    /// Background KV rate achieved over the trial, GB/s (loaded conditions).
    pub background_gbytes_per_s: Option<f64>,
    /// False when the background stream ended before the last step (the
    /// tail of the trial ran unloaded).
    pub background_covered: bool,
    /// Counter deltas of every device of the run.
    pub counters: Vec<NodeCounters>,
}

/// One load condition: (a) unloaded, (b) 50 %, (c) 90 % of capacity.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DecodeCondition {
    /// "a", "b", "c" for the draft's loads, else "load-N".
    pub condition: String,
    /// Background load, percent of the measured capacity (0: unloaded).
    pub load_percent: u32,
    /// The paced background rate, GB/s (None unloaded).
    pub target_gbytes_per_s: Option<f64>,
    /// Every trial.
    pub trials: Vec<DecodeTrial>,
    /// ITL_fabric P50 across trials, ns.
    pub p50_ns: Option<TrialInterval>,
    /// ITL_fabric P99 across trials, ns.
    pub p99_ns: Option<TrialInterval>,
    /// ITL_fabric P99.9 across trials, ns.
    pub p999_ns: Option<TrialInterval>,
    /// Every step of every trial merged.
    pub itl_fabric: LatencySummary,
    /// Stalls over all trials.
    pub stalls: u64,
    /// The merged ITL_fabric CDF (at most 200 points).
    pub cdf: Vec<CdfPoint>,
}

/// Test 10.2's results.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DecodeStepsReport {
    /// The MoE configuration.
    pub moe: MoeReport,
    /// EP group size.
    pub ep_ranks: u32,
    /// Decode tokens per rank per step (low-latency dispatch, padded).
    pub batch_tokens: u32,
    /// MoE layers per decode step.
    pub layers: u32,
    /// Modelled compute after every layer, ns (not measured: the
    /// accelerator's attention and expert work between AllToAlls).
    pub modelled_compute_gap_ns: u64,
    /// Steps per trial.
    pub steps: u32,
    /// Bytes rank i sends rank j per dispatch (padded; combine: transposed).
    pub pair_bytes: Vec<Vec<u64>>,
    /// Background KV pairs.
    pub kv_pairs: u32,
    /// Unpaced background capacity measured first, GB/s (None when no
    /// condition is loaded).
    pub capacity_gbytes_per_s: Option<f64>,
    /// The conditions, in run order.
    pub conditions: Vec<DecodeCondition>,
}
