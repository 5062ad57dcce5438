//! Multi-tier KV transfers, IETF 5.4: one row per tier pair (GPU HBM, host
//! DRAM, a file on NVMe), throughput and transfer latency per message size,
//! and each tier's throughput ratio to GPU→GPU RDMA (to DRAM→DRAM RDMA,
//! labelled so, on a host without a GPU). Tiers the host lacks are rows
//! that say why they did not run.
//!
//! Owns the serde types of the `tiers` entry and their table; measuring is
//! `suite::tiers`'.

use serde::{Deserialize, Serialize};
use tabled::builder::Builder;

use crate::stats::{LatencySummary, TrialInterval};

use super::document::Table;
use super::units::{human_bytes, human_ns, mean_ci};
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

/// The draft's reporting format: a row per tier pair, columns for
/// throughput, latency P50/P99 and the ratio at each message size; tiers
/// that did not run say why in the notes.
pub fn tiers_table(t: &TiersReport) -> Table {
    let sizes = t.sizes();
    let mut columns = vec!["tier".to_string(), "transport".to_string()];
    for &size in &sizes {
        let s = human_bytes(size);
        columns.push(format!("{s} GB/s"));
        columns.push(format!("{s} P50"));
        columns.push(format!("{s} P99"));
        columns.push(format!("{s} ratio"));
    }
    let mut rows = Vec::new();
    let mut notes = vec![format!(
        "ratio: mean throughput ÷ the {} tier's at the same size ({}); latency: one transfer at a time \
         (RDMA: post → local completion; file: the O_DIRECT pwrite call)",
        t.baseline.as_deref().unwrap_or("baseline"),
        t.ratio_label
    )];
    for tier in &t.tiers {
        let mut row = vec![tier.label.clone(), tier.transport.clone()];
        for &size in &sizes {
            match tier.points.iter().find(|p| p.msg_bytes == size) {
                Some(p) => {
                    row.push(mean_ci(p.gbytes_per_s.as_ref(), 1.0, 3));
                    row.push(
                        p.latency
                            .as_ref()
                            .map_or("-".into(), |l| human_ns(l.p50_ns as f64)),
                    );
                    row.push(
                        p.latency
                            .as_ref()
                            .map_or("-".into(), |l| human_ns(l.p99_ns as f64)),
                    );
                    row.push(
                        p.ratio_to_baseline
                            .map_or("-".into(), |r| format!("{r:.2}")),
                    );
                }
                None => {
                    let mark = if tier.status == "not-run" {
                        "not run"
                    } else {
                        "-"
                    };
                    row.extend(std::iter::repeat_n(mark.to_string(), 4));
                }
            }
        }
        rows.push(row);
        if let Some(reason) = &tier.reason {
            notes.push(format!(
                "{} {}: {reason}",
                tier.label,
                tier.status.replace('-', " ")
            ));
        }
    }
    Table {
        title: "KV transfer across memory tiers (IETF 5.4)".into(),
        columns,
        rows,
        notes,
    }
}

/// [`tiers_table`] as text for the terminal, its notes under it.
pub fn render_tiers_table(t: &TiersReport) -> String {
    let table = tiers_table(t);
    let mut builder = Builder::default();
    builder.push_record(table.columns.clone());
    for row in &table.rows {
        builder.push_record(row.clone());
    }
    let mut out = builder.build().to_string();
    for note in &table.notes {
        out.push_str("\nnote: ");
        out.push_str(note);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn interval(mean: f64) -> TrialInterval {
        TrialInterval {
            n: 1,
            mean,
            stdev: None,
            ci95_half_width: None,
            ci95_low: None,
            ci95_high: None,
        }
    }

    fn tier(id: &str, status: &str, gbps: &[(u64, f64)]) -> TierResult {
        TierResult {
            tier: id.into(),
            label: id.into(),
            transport: "rdma-write".into(),
            status: status.into(),
            reason: (status == "not-run").then(|| "no GPU".to_string()),
            memory: None,
            file: None,
            points: gbps
                .iter()
                .map(|&(msg_bytes, g)| TierPoint {
                    msg_bytes,
                    trials: 1,
                    gbytes_per_s: Some(interval(g)),
                    latency: None,
                    latency_clock: "initiator".into(),
                    ratio_to_baseline: None,
                })
                .collect(),
        }
    }

    fn report(tiers: Vec<TierResult>) -> TiersReport {
        TiersReport {
            baseline: None,
            ratio_label: String::new(),
            gpu: None,
            tiers,
        }
    }

    #[test]
    fn without_a_gpu_dram_to_dram_is_the_labelled_baseline() {
        let mut r = report(vec![
            tier(GPU_GPU, "not-run", &[]),
            tier(DRAM_DRAM, "complete", &[(1 << 20, 4.0), (16 << 20, 5.0)]),
            tier("dram-file", "complete", &[(1 << 20, 1.0), (16 << 20, 2.5)]),
        ]);
        r.apply_ratios();
        assert_eq!(r.baseline.as_deref(), Some(DRAM_DRAM));
        assert!(r.ratio_label.contains("no GPU→GPU"), "{}", r.ratio_label);
        let file = &r.tiers[2].points;
        assert_eq!(file[0].ratio_to_baseline, Some(0.25));
        assert_eq!(file[1].ratio_to_baseline, Some(0.5));
        assert_eq!(r.tiers[1].points[0].ratio_to_baseline, Some(1.0));
    }

    #[test]
    fn gpu_to_gpu_is_the_baseline_when_it_ran() {
        let mut r = report(vec![
            tier(GPU_GPU, "complete", &[(1 << 20, 20.0)]),
            tier(DRAM_DRAM, "complete", &[(1 << 20, 10.0)]),
        ]);
        r.apply_ratios();
        assert_eq!(r.baseline.as_deref(), Some(GPU_GPU));
        assert_eq!(r.ratio_label, "ratio to GPU→GPU");
        assert_eq!(r.tiers[1].points[0].ratio_to_baseline, Some(0.5));
    }

    #[test]
    fn a_size_the_baseline_lacks_has_no_ratio_and_not_run_rows_say_why() {
        let mut r = report(vec![
            tier(DRAM_DRAM, "complete", &[(1 << 20, 4.0)]),
            tier("dram-file", "complete", &[(16 << 20, 1.0)]),
            tier("gpu-file", "not-run", &[]),
        ]);
        r.apply_ratios();
        assert_eq!(r.tiers[1].points[0].ratio_to_baseline, None);
        let table = tiers_table(&r);
        assert_eq!(table.columns.len(), 2 + 2 * 4);
        assert_eq!(table.rows[2][2], "not run");
        assert!(
            table.notes.iter().any(|n| n == "gpu-file not run: no GPU"),
            "{:?}",
            table.notes
        );
        let text = render_tiers_table(&r);
        assert!(
            text.contains("1M GB/s") && text.contains("16M ratio"),
            "{text}"
        );
    }

    #[test]
    fn nothing_to_divide_by_says_so() {
        let mut r = report(vec![tier(GPU_GPU, "not-run", &[])]);
        r.apply_ratios();
        assert_eq!(r.baseline, None);
        assert!(r.ratio_label.starts_with("no ratio"));
    }
}
