//! Result types of multi-tier KV transfers, IETF 5.4: one entry per tier
//! pair (GPU HBM, host DRAM, a file on NVMe), throughput and transfer
//! latency per message size, and each tier's throughput ratio to GPU→GPU
//! RDMA (to DRAM→DRAM RDMA, labelled so, on a host without a GPU). Tiers
//! the host lacks say why they did not run. Rendering is `report::tiers`';
//! measuring is `suite::tiers`'.

use serde::{Deserialize, Serialize};

use crate::stats::{LatencySummary, TrialInterval};

use super::MemoryReport;

/// The draft's baseline tier.
pub const GPU_GPU: &str = "gpu-gpu";
/// The baseline on a host without GPU→GPU.
pub const DRAM_DRAM: &str = "dram-dram";

/// Every tier pair of a 5.4 run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TiersReport {
    /// The tier the ratios divide by: "gpu-gpu" (the draft's), else
    /// "dram-dram"; None when neither ran.
    pub baseline: Option<String>,
    /// How the ratio column reads, e.g. "ratio to GPU→GPU".
    pub ratio_label: String,
    /// The GPU of the GPU tiers ("cuda:0 (NVIDIA H100 80GB HBM3)"), or
    /// None when the host has none.
    pub gpu: Option<String>,
    /// One entry per tier pair, in the draft's order.
    pub tiers: Vec<TierResult>,
}

/// One tier pair.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TierResult {
    /// Its id: gpu-gpu, gpu-dram, dram-gpu, dram-dram, dram-file, gpu-file.
    pub tier: String,
    /// For people: "GPU HBM → remote CPU DRAM (offload)".
    pub label: String,
    /// How bytes move: "rdma-write" (the p2p engine, one QP),
    /// "o-direct-write" (pwrite on an O_DIRECT file), "gds" (cuFile).
    pub transport: String,
    /// "complete", "not-run" (the host lacks the tier) or "failed".
    pub status: String,
    /// Why it did not run, or the error that stopped it.
    pub reason: Option<String>,
    /// RDMA tiers: each end's memory and how it was registered.
    pub memory: Option<MemoryReport>,
    /// File tiers: the file written.
    pub file: Option<String>,
    /// One point per message size measured.
    pub points: Vec<TierPoint>,
}

/// One message size of one tier.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TierPoint {
    /// Message (KV block) size, bytes.
    pub msg_bytes: u64,
    /// Throughput trials completed.
    pub trials: u32,
    /// Throughput across trials, GB/s (1e9 bytes/s).
    pub gbytes_per_s: Option<TrialInterval>,
    /// Transfer latency, one message at a time, every trial merged.
    pub latency: Option<LatencySummary>,
    /// What the latency times: "initiator" (post → local completion of an
    /// RDMA WRITE) or "pwrite" (the O_DIRECT write call).
    pub latency_clock: String,
    /// Mean throughput ÷ the baseline tier's at the same size.
    pub ratio_to_baseline: Option<f64>,
}

fn tier_gbps(tier: &TierResult, msg_bytes: u64) -> Option<f64> {
    tier.points
        .iter()
        .find(|p| p.msg_bytes == msg_bytes)
        .and_then(|p| p.gbytes_per_s.as_ref())
        .map(|g| g.mean)
        .filter(|g| *g > 0.0)
}

impl TiersReport {
    /// Chooses the baseline (GPU→GPU when it measured anything, else
    /// DRAM→DRAM) and fills every point's ratio to it at the same size.
    pub fn apply_ratios(&mut self) {
        let measured = |id: &str| {
            self.tiers
                .iter()
                .any(|t| t.tier == id && t.points.iter().any(|p| p.gbytes_per_s.is_some()))
        };
        let baseline = [GPU_GPU, DRAM_DRAM].into_iter().find(|id| measured(id));
        self.ratio_label = match baseline {
            Some(GPU_GPU) => "ratio to GPU→GPU".into(),
            Some(_) => "ratio to DRAM→DRAM (no GPU→GPU on this host)".into(),
            None => "no ratio (neither GPU→GPU nor DRAM→DRAM ran)".into(),
        };
        self.baseline = baseline.map(str::to_string);
        let Some(base) = baseline else {
            return;
        };
        let base = self.tiers.iter().find(|t| t.tier == base).cloned();
        for tier in &mut self.tiers {
            for point in &mut tier.points {
                let mine = point.gbytes_per_s.as_ref().map(|g| g.mean);
                let theirs = base.as_ref().and_then(|b| tier_gbps(b, point.msg_bytes));
                point.ratio_to_baseline = mine.zip(theirs).map(|(m, b)| m / b);
            }
        }
    }

    /// Every message size of any tier, ascending.
    pub fn sizes(&self) -> Vec<u64> {
        let mut sizes: Vec<u64> = self
            .tiers
            .iter()
            .flat_map(|t| t.points.iter().map(|p| p.msg_bytes))
            .collect();
        sizes.sort_unstable();
        sizes.dedup();
        sizes
    }
}
