//! Multi-tier KV transfers, IETF 5.4: one row per tier pair (GPU HBM, host
//! DRAM, a file on NVMe), throughput and transfer latency per message size,
//! and each tier's throughput ratio to GPU→GPU RDMA (to DRAM→DRAM RDMA,
//! labelled so, on a host without a GPU). Tiers the host lacks are rows
//! that say why they did not run.
//!
//! Renders the `tiers` entry (types in `results::tiers`) as the draft's
//! table; measuring is `suite::tiers`'.

use tabled::builder::Builder;

use crate::results::TiersReport;

use super::blocks::Table;
use super::units::{human_bytes, human_ns, mean_ci};

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
         (RDMA: post → local completion; file: the O_DIRECT pwrite or cuFileWrite call)",
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
        if tier.transport == "gds-compat" {
            notes.push(format!(
                "{}: gds-compat is cuFile's compatibility mode (nvidia-fs not loaded): the bytes \
                 are staged through host memory, so this is not a GPUDirect Storage number",
                tier.label
            ));
        }
        if tier.transport == "gds-unverified" {
            notes.push(format!(
                "{}: gds-unverified: nvidia-fs is loaded but its write counters did not move \
                 (rw_stats_enabled off, or cuFile fell back to compatibility mode for the file), \
                 so GPUDirect Storage is not confirmed",
                tier.label
            ));
        }
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
    use crate::results::{TierPoint, TierResult, DRAM_DRAM, GPU_GPU};
    use crate::stats::TrialInterval;

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
