//! The MoE tests' KPIs as flat records for the CSV export:
//! [`AllToAllRow`] per (file, AllToAll point) of tests 7.1–7.3 and
//! [`ContentionRow`] per (file, KV load) of test 7.4. Column names carry
//! units; an absent value is an empty cell, never 0. Per-rank values and
//! the byte matrix stay in the JSON.

use serde::Serialize;

use crate::results::RunReport;
use crate::stats::TrialInterval;

/// One AllToAll point, across its trials.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct AllToAllRow {
    /// The results file as given.
    pub file: String,
    /// IETF test id.
    pub test_id: String,
    /// DUT label.
    pub dut_id: String,
    /// EP group size n.
    pub ep_ranks: u32,
    /// "normal" or "low-latency".
    pub mode: String,
    /// Routing mode label.
    pub routing: String,
    /// MoE config name (M1..M5).
    pub moe: String,
    /// Experts E.
    pub experts: u32,
    /// Top-k.
    pub top_k: u32,
    /// Hidden dimension H.
    pub hidden: u32,
    /// Bytes per element P.
    pub bytes_per_element: u32,
    /// Tokens per rank B.
    pub batch_tokens: u32,
    /// T_dispatch = B·k·H·P/N, bytes.
    pub t_dispatch_bytes: f64,
    /// Receive slot per peer, bytes.
    pub slot_bytes: u64,
    /// Trials completed.
    pub trials: u32,
    /// Dispatch latency P50, mean across trials, ns.
    pub latency_p50_ns_mean: Option<f64>,
    /// Its CI95 half width.
    pub latency_p50_ns_ci95_half_width: Option<f64>,
    /// Dispatch latency P99, mean across trials, ns.
    pub latency_p99_ns_mean: Option<f64>,
    /// Its CI95 half width.
    pub latency_p99_ns_ci95_half_width: Option<f64>,
    /// algbw mean, GB/s.
    pub algbw_gbytes_per_s_mean: Option<f64>,
    /// Its CI95 half width.
    pub algbw_gbytes_per_s_ci95_half_width: Option<f64>,
    /// busbw mean, GB/s.
    pub busbw_gbytes_per_s_mean: Option<f64>,
    /// Its CI95 half width.
    pub busbw_gbytes_per_s_ci95_half_width: Option<f64>,
    /// Median rank idle time, mean across trials, ns.
    pub idle_p50_ns_mean: Option<f64>,
    /// Combine latency P50, mean across trials, ns (empty without combine).
    pub combine_p50_ns_mean: Option<f64>,
    /// Combine latency P99, mean across trials, ns.
    pub combine_p99_ns_mean: Option<f64>,
    /// Combine busbw mean, GB/s.
    pub combine_busbw_gbytes_per_s_mean: Option<f64>,
    /// Layer (dispatch + combine) latency P50, mean across trials, ns.
    pub layer_p50_ns_mean: Option<f64>,
    /// Layer latency P99, mean across trials, ns.
    pub layer_p99_ns_mean: Option<f64>,
    /// Assignments the router dropped.
    pub dropped_assignments: u64,
    /// Scaling efficiency (empty for the smallest EP).
    pub scaling_efficiency: Option<f64>,
}

/// The contention penalty of test 7.4 at one KV load.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct ContentionRow {
    /// The results file as given.
    pub file: String,
    /// IETF test id.
    pub test_id: String,
    /// DUT label.
    pub dut_id: String,
    /// KV load, percent of capacity.
    pub kv_load_percent: u32,
    /// KV capacity measured in the run, GB/s.
    pub kv_capacity_gbytes_per_s: Option<f64>,
    /// KV P99 isolated, ns.
    pub kv_isolated_p99_ns: Option<f64>,
    /// KV P99 contended, ns.
    pub kv_contended_p99_ns: Option<f64>,
    /// contended / isolated.
    pub kv_penalty: Option<f64>,
    /// EP P99 isolated, ns.
    pub ep_isolated_p99_ns: Option<f64>,
    /// EP P99 contended, ns.
    pub ep_contended_p99_ns: Option<f64>,
    /// contended / isolated.
    pub ep_penalty: Option<f64>,
}

fn mean(iv: Option<&TrialInterval>) -> Option<f64> {
    iv.map(|iv| iv.mean)
}

fn half(iv: Option<&TrialInterval>) -> Option<f64> {
    iv.and_then(|iv| iv.ci95_half_width)
}

/// One [`AllToAllRow`] per point of `report` (none for other tests).
pub fn alltoall_rows(file: &str, report: &RunReport) -> Vec<AllToAllRow> {
    report
        .alltoall
        .iter()
        .map(|p| {
            let s = &p.summary;
            AllToAllRow {
                file: file.into(),
                test_id: report.test_id.clone(),
                dut_id: report.dut_id.clone(),
                ep_ranks: p.ep_ranks,
                mode: p.mode.clone(),
                routing: p.routing.clone(),
                moe: p.moe.name.clone(),
                experts: p.moe.experts,
                top_k: p.moe.top_k,
                hidden: p.moe.hidden,
                bytes_per_element: p.moe.bytes_per_element,
                batch_tokens: p.batch_tokens,
                t_dispatch_bytes: p.t_dispatch_bytes,
                slot_bytes: p.slot_bytes,
                trials: s.trials,
                latency_p50_ns_mean: mean(s.p50_ns.as_ref()),
                latency_p50_ns_ci95_half_width: half(s.p50_ns.as_ref()),
                latency_p99_ns_mean: mean(s.p99_ns.as_ref()),
                latency_p99_ns_ci95_half_width: half(s.p99_ns.as_ref()),
                algbw_gbytes_per_s_mean: mean(s.algbw_gbytes_per_s.as_ref()),
                algbw_gbytes_per_s_ci95_half_width: half(s.algbw_gbytes_per_s.as_ref()),
                busbw_gbytes_per_s_mean: mean(s.busbw_gbytes_per_s.as_ref()),
                busbw_gbytes_per_s_ci95_half_width: half(s.busbw_gbytes_per_s.as_ref()),
                idle_p50_ns_mean: mean(s.idle_p50_ns.as_ref()),
                combine_p50_ns_mean: mean(s.combine_p50_ns.as_ref()),
                combine_p99_ns_mean: mean(s.combine_p99_ns.as_ref()),
                combine_busbw_gbytes_per_s_mean: mean(s.combine_busbw_gbytes_per_s.as_ref()),
                layer_p50_ns_mean: mean(s.layer_p50_ns.as_ref()),
                layer_p99_ns_mean: mean(s.layer_p99_ns.as_ref()),
                dropped_assignments: p.dropped_assignments,
                scaling_efficiency: p.scaling_efficiency,
            }
        })
        .collect()
}

/// One [`ContentionRow`] per KV load of `report` (none for other tests).
pub fn contention_rows(file: &str, report: &RunReport) -> Vec<ContentionRow> {
    let Some(c) = &report.contention else {
        return Vec::new();
    };
    c.penalties
        .iter()
        .map(|p| ContentionRow {
            file: file.into(),
            test_id: report.test_id.clone(),
            dut_id: report.dut_id.clone(),
            kv_load_percent: p.kv_load_percent,
            kv_capacity_gbytes_per_s: c.capacity_gbytes_per_s,
            kv_isolated_p99_ns: p.kv_isolated_p99_ns,
            kv_contended_p99_ns: p.kv_contended_p99_ns,
            kv_penalty: p.kv_penalty,
            ep_isolated_p99_ns: p.ep_isolated_p99_ns,
            ep_contended_p99_ns: p.ep_contended_p99_ns,
            ep_penalty: p.ep_penalty,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_row_per_point_and_per_kv_load() {
        let a: RunReport = serde_json::from_str(include_str!(
            "../../tests/fixtures/results/alltoall-7.2.json"
        ))
        .unwrap();
        let c: RunReport = serde_json::from_str(include_str!(
            "../../tests/fixtures/results/contention-7.4.json"
        ))
        .unwrap();
        let rows = alltoall_rows("a.json", &a);
        assert_eq!(rows.len(), 4);
        assert_eq!(rows[1].routing, "zipf:alpha=1.2");
        assert!(rows[0].busbw_gbytes_per_s_mean.is_some());
        assert_eq!(rows[0].scaling_efficiency, None);
        assert!(alltoall_rows("c.json", &c).is_empty());
        let rows = contention_rows("c.json", &c);
        assert_eq!(rows.len(), 1);
        assert_eq!(rows[0].kv_load_percent, 50);
        assert!(contention_rows("a.json", &a).is_empty());
    }
}
