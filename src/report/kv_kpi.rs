//! The KV-transfer test's KPIs (IETF 10.1, 6.1) as flat records for the CSV
//! export: one [`KvRow`] per (file, prompt length), in base units (ns,
//! bytes, GB/s, shares as fractions). Column names carry units and say
//! which values are modelled; an absent value is an empty cell, never 0.
//! Per-trial and per-request values stay in the JSON.

use serde::Serialize;

use crate::results::RunReport;
use crate::stats::TrialInterval;

/// One prompt length of a KV run, over every request of every trial.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct KvRow {
    /// The results file as given.
    pub file: String,
    /// IETF test id.
    pub test_id: String,
    /// DUT label.
    pub dut_id: String,
    /// Run status of the file.
    pub status: String,
    /// Model name.
    pub model: String,
    /// L, layers.
    pub layers: u32,
    /// H_kv, KV heads of the model.
    pub kv_heads: u32,
    /// D, elements per head.
    pub head_dim: u32,
    /// P_bytes, bytes per element.
    pub dtype_bytes: u32,
    /// Tensor parallelism.
    pub tp: u32,
    /// Page layout.
    pub layout: String,
    /// "push" or "pull".
    pub direction: String,
    /// "imm", "send" or "none".
    pub notify: String,
    /// "request" or "layer:K".
    pub pipeline: String,
    /// Prompt tokens C.
    pub prompt_tokens: u64,
    /// S_KV on this rank pair from the formula, bytes.
    pub kv_bytes: u64,
    /// Bytes one request moves.
    pub bytes_per_request: u64,
    /// Descriptors per request.
    pub descriptors_per_request: u64,
    /// Work requests per request.
    pub wrs_per_request: u64,
    /// QPs.
    pub qps: u32,
    /// Outstanding WRs per QP.
    pub tx_depth: u32,
    /// Trials.
    pub trials: u32,
    /// Requests measured, all trials.
    pub requests: u64,
    /// Modelled prefill time, ns.
    pub t_prefill_modelled_ns: u64,
    /// Modelled decode initialisation, ns.
    pub t_decode_init_modelled_ns: u64,
    /// Measured T_transfer P50, ns.
    pub t_transfer_p50_ns: u64,
    /// Measured T_transfer P95, ns.
    pub t_transfer_p95_ns: u64,
    /// Measured T_transfer P99, ns.
    pub t_transfer_p99_ns: u64,
    /// Exposed T_transfer (after the prefill's end) P50, ns.
    pub t_transfer_exposed_p50_ns: u64,
    /// Exposed T_transfer P95, ns.
    pub t_transfer_exposed_p95_ns: u64,
    /// Exposed T_transfer P99, ns.
    pub t_transfer_exposed_p99_ns: u64,
    /// TTFT P50, ns.
    pub ttft_p50_ns: u64,
    /// TTFT P95, ns.
    pub ttft_p95_ns: u64,
    /// TTFT P99, ns.
    pub ttft_p99_ns: u64,
    /// T_transfer P50 / TTFT P50.
    pub transfer_share_p50: f64,
    /// T_transfer P95 / TTFT P95.
    pub transfer_share_p95: f64,
    /// T_transfer P99 / TTFT P99.
    pub transfer_share_p99: f64,
    /// Posting time per descriptor, ns (mean over requests).
    pub post_ns_per_descriptor: f64,
    /// Posting time per WR, ns (mean over requests).
    pub post_ns_per_wr: f64,
    /// Posting time / T_transfer (mean over requests).
    pub post_share: f64,
    /// Notification lag P50, ns (empty without a notification).
    pub notify_lag_p50_ns: Option<u64>,
    /// Notification lag P99, ns.
    pub notify_lag_p99_ns: Option<u64>,
    /// Per-trial median T_transfer, mean across trials, ns.
    pub t_transfer_p50_ns_trials_mean: Option<f64>,
    /// Its CI95 half width (empty with one trial).
    pub t_transfer_p50_ns_trials_ci95_half_width: Option<f64>,
    /// GB/s (10⁹ bytes/s), mean across trials.
    pub gbytes_per_s_mean: Option<f64>,
    /// Its CI95 half width (empty with one trial).
    pub gbytes_per_s_ci95_half_width: Option<f64>,
    /// Mismatched bytes (empty without --verify).
    pub verify_mismatches: Option<u64>,
}

fn mean(iv: Option<&TrialInterval>) -> Option<f64> {
    iv.map(|iv| iv.mean)
}

fn half(iv: Option<&TrialInterval>) -> Option<f64> {
    iv.and_then(|iv| iv.ci95_half_width)
}

/// One [`KvRow`] per prompt length of `report` (none for other tests).
pub fn kv_rows(file: &str, report: &RunReport) -> Vec<KvRow> {
    let Some(kv) = &report.kv else {
        return Vec::new();
    };
    kv.points
        .iter()
        .map(|p| {
            let s = &p.summary;
            KvRow {
                file: file.into(),
                test_id: report.test_id.clone(),
                dut_id: report.dut_id.clone(),
                status: report.status.clone(),
                model: kv.model.name.clone(),
                layers: kv.model.layers,
                kv_heads: kv.model.kv_heads,
                head_dim: kv.model.head_dim,
                dtype_bytes: kv.model.dtype_bytes,
                tp: kv.tp,
                layout: kv.layout.clone(),
                direction: kv.direction.clone(),
                notify: kv.notify.clone(),
                pipeline: kv.pipeline.clone(),
                prompt_tokens: p.prompt_tokens,
                kv_bytes: p.kv_bytes,
                bytes_per_request: p.bytes_per_request,
                descriptors_per_request: p.descriptors_per_request,
                wrs_per_request: p.wrs_per_request,
                qps: p.qps,
                tx_depth: p.tx_depth,
                trials: p.trials.len() as u32,
                requests: s.requests,
                t_prefill_modelled_ns: p.t_prefill_modelled_ns,
                t_decode_init_modelled_ns: kv.decode_init_modelled_ns,
                t_transfer_p50_ns: s.t_transfer.p50_ns,
                t_transfer_p95_ns: s.t_transfer.p95_ns,
                t_transfer_p99_ns: s.t_transfer.p99_ns,
                t_transfer_exposed_p50_ns: s.t_transfer_exposed.p50_ns,
                t_transfer_exposed_p95_ns: s.t_transfer_exposed.p95_ns,
                t_transfer_exposed_p99_ns: s.t_transfer_exposed.p99_ns,
                ttft_p50_ns: s.ttft.p50_ns,
                ttft_p95_ns: s.ttft.p95_ns,
                ttft_p99_ns: s.ttft.p99_ns,
                transfer_share_p50: s.transfer_share.p50,
                transfer_share_p95: s.transfer_share.p95,
                transfer_share_p99: s.transfer_share.p99,
                post_ns_per_descriptor: s.post_ns_per_descriptor,
                post_ns_per_wr: s.post_ns_per_wr,
                post_share: s.post_share,
                notify_lag_p50_ns: s.notify_lag.as_ref().map(|l| l.p50_ns),
                notify_lag_p99_ns: s.notify_lag.as_ref().map(|l| l.p99_ns),
                t_transfer_p50_ns_trials_mean: mean(s.t_transfer_p50_ns.as_ref()),
                t_transfer_p50_ns_trials_ci95_half_width: half(s.t_transfer_p50_ns.as_ref()),
                gbytes_per_s_mean: mean(s.gbytes_per_s.as_ref()),
                gbytes_per_s_ci95_half_width: half(s.gbytes_per_s.as_ref()),
                verify_mismatches: s.verify_mismatches,
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_row_per_prompt_length_in_base_units() {
        let kv: RunReport =
            serde_json::from_str(include_str!("../../tests/fixtures/results/kv-10.1.json"))
                .unwrap();
        let rows = kv_rows("kv.json", &kv);
        let points = &kv.kv.as_ref().unwrap().points;
        assert_eq!(rows.len(), points.len());
        let (row, point) = (&rows[1], &points[1]);
        assert_eq!(row.prompt_tokens, point.prompt_tokens);
        assert_eq!(row.ttft_p99_ns, point.summary.ttft.p99_ns);
        assert_eq!(
            row.t_transfer_exposed_p50_ns,
            point.summary.t_transfer_exposed.p50_ns
        );
        assert_eq!(row.trials, 2);
        assert!(row.gbytes_per_s_ci95_half_width.is_some());
        assert_eq!(row.model, "llama-3.1-8b");
        let other: RunReport =
            serde_json::from_str(include_str!("../../tests/fixtures/results/pairs-5.3.json"))
                .unwrap();
        assert!(kv_rows("p.json", &other).is_empty());
    }
}
