//! What `infab compare` compares: every configuration of a results file,
//! named by the knobs that define it (size, QPs, pairs, senders, EP ranks,
//! prompt length, background level...), with each KPI as its per-trial
//! values. One extractor per results section; a file may hold several.

use crate::report::qp_count;
use crate::results::RunReport;
use crate::stats::{nearest_rank, LatencySummary};

/// Which way is better for a KPI.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Better {
    /// Throughput, fairness.
    Higher,
    /// Latencies, completion times.
    Lower,
}

/// How the per-trial values are tested.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Statistic {
    /// A per-trial mean or rate: Welch's t-test.
    Mean,
    /// A per-trial percentile: Mann-Whitney U.
    Percentile,
}

/// One KPI of one configuration: its values, trial by trial.
#[derive(Debug, Clone, PartialEq)]
pub struct KpiSamples {
    /// Name, e.g. "throughput" or "P99 initiator".
    pub kpi: String,
    /// Unit of the values (base units: GB/s, ns, or "" for indices).
    pub unit: &'static str,
    /// Which way is better.
    pub better: Better,
    /// How it is tested.
    pub statistic: Statistic,
    /// One value per trial.
    pub values: Vec<f64>,
}

/// One configuration of a file.
#[derive(Debug, Clone, PartialEq)]
pub struct ConfigSamples {
    /// What identifies it across files, e.g. "64K × 8 QPs".
    pub key: String,
    /// Its KPIs.
    pub kpis: Vec<KpiSamples>,
}

fn kpi(
    name: &str,
    unit: &'static str,
    better: Better,
    statistic: Statistic,
    values: Vec<f64>,
) -> KpiSamples {
    KpiSamples {
        kpi: name.to_string(),
        unit,
        better,
        statistic,
        values,
    }
}

fn latency_kpis(label: &str, per_trial: &[&LatencySummary]) -> Vec<KpiSamples> {
    let take = |f: fn(&LatencySummary) -> u64| per_trial.iter().map(|l| f(l) as f64).collect();
    vec![
        kpi(
            &format!("P50 {label}"),
            "ns",
            Better::Lower,
            Statistic::Percentile,
            take(|l| l.p50_ns),
        ),
        kpi(
            &format!("P99 {label}"),
            "ns",
            Better::Lower,
            Statistic::Percentile,
            take(|l| l.p99_ns),
        ),
    ]
}

/// Every configuration of `report`, in file order.
pub fn configurations(report: &RunReport) -> Vec<ConfigSamples> {
    let mut out = Vec::new();
    for c in &report.results {
        let mut key = format!(
            "{} × {}",
            crate::report::human_bytes(c.msg_bytes),
            qp_count(c.qps)
        );
        if let Some(bg) = &c.background {
            key.push_str(&format!(", background {} %", bg.level_percent));
        }
        let mut kpis = vec![kpi(
            "throughput",
            "GB/s",
            Better::Higher,
            Statistic::Mean,
            c.trials.iter().map(|t| t.throughput.gbytes_per_s).collect(),
        )];
        let clocks: Vec<String> = c
            .trials
            .first()
            .map(|t| t.latency.iter().map(|l| l.clock.clone()).collect())
            .unwrap_or_default();
        for clock in clocks {
            let per_trial: Vec<&LatencySummary> = c
                .trials
                .iter()
                .filter_map(|t| {
                    t.latency
                        .iter()
                        .find(|l| l.clock == clock)
                        .map(|l| &l.summary)
                })
                .collect();
            if per_trial.len() == c.trials.len() {
                kpis.extend(latency_kpis(&clock, &per_trial));
            }
        }
        out.push(ConfigSamples { key, kpis });
    }
    for p in &report.pairs {
        let per_trial: Vec<&LatencySummary> = p.trials.iter().map(|t| &t.latency).collect();
        let mut kpis = vec![
            kpi(
                "aggregate throughput",
                "GB/s",
                Better::Higher,
                Statistic::Mean,
                p.trials.iter().map(|t| t.aggregate.gbytes_per_s).collect(),
            ),
            kpi(
                "JFI",
                "",
                Better::Higher,
                Statistic::Mean,
                p.trials
                    .iter()
                    .map(|t| t.jain_index.unwrap_or(1.0))
                    .collect(),
            ),
        ];
        kpis.extend(latency_kpis("message completion", &per_trial));
        out.push(ConfigSamples {
            key: format!(
                "{} pairs, {} × {}",
                p.pairs,
                crate::report::human_bytes(p.msg_bytes),
                qp_count(p.qps_per_pair)
            ),
            kpis,
        });
    }
    for p in &report.incast {
        let per_trial: Vec<&LatencySummary> = p.trials.iter().map(|t| &t.fct).collect();
        let mut kpis = vec![
            kpi(
                "receiver throughput",
                "GB/s",
                Better::Higher,
                Statistic::Mean,
                p.trials
                    .iter()
                    .map(|t| t.aggregate_rx_gbytes_per_s)
                    .collect(),
            ),
            kpi(
                "last byte",
                "ns",
                Better::Lower,
                Statistic::Mean,
                p.trials.iter().map(|t| t.last_byte_ns as f64).collect(),
            ),
        ];
        kpis.extend(latency_kpis("FCT", &per_trial));
        out.push(ConfigSamples {
            key: format!(
                "{} senders × {} bursts of {}, window {} ns",
                p.senders,
                p.bursts_per_sender,
                crate::report::human_bytes(p.msg_bytes),
                p.arrival_window_ns
            ),
            kpis,
        });
    }
    for p in &report.alltoall {
        let per_trial: Vec<&LatencySummary> = p.trials.iter().map(|t| &t.latency).collect();
        let mut kpis = latency_kpis("dispatch", &per_trial);
        let combine: Vec<&LatencySummary> = p
            .trials
            .iter()
            .filter_map(|t| t.combine.as_ref().map(|c| &c.latency))
            .collect();
        if combine.len() == p.trials.len() && !combine.is_empty() {
            kpis.extend(latency_kpis("combine", &combine));
        }
        kpis.push(kpi(
            "busbw",
            "GB/s",
            Better::Higher,
            Statistic::Mean,
            p.trials.iter().map(|t| t.busbw_gbytes_per_s).collect(),
        ));
        out.push(ConfigSamples {
            key: format!(
                "EP {} {} ({}), batch {}",
                p.ep_ranks, p.mode, p.routing, p.batch_tokens
            ),
            kpis,
        });
    }
    if let Some(d) = &report.decode_steps {
        for c in &d.conditions {
            let per_trial: Vec<&LatencySummary> = c.trials.iter().map(|t| &t.itl_fabric).collect();
            let mut kpis = latency_kpis("ITL_fabric", &per_trial);
            kpis.push(kpi(
                "stalls > 100 ms",
                "steps",
                Better::Lower,
                Statistic::Mean,
                c.trials.iter().map(|t| t.stalls as f64).collect(),
            ));
            out.push(ConfigSamples {
                key: format!("decode steps ({}) {} % load", c.condition, c.load_percent),
                kpis,
            });
        }
    }
    if let Some(kv) = &report.kv {
        for p in &kv.points {
            let trials: Vec<u32> = p.trials.iter().map(|t| t.trial).collect();
            let p99_of = |f: fn(&crate::results::KvRequestResult) -> u64| -> Vec<f64> {
                trials
                    .iter()
                    .map(|&trial| {
                        let mut v: Vec<u64> = p
                            .requests
                            .iter()
                            .filter(|r| r.trial == trial)
                            .map(f)
                            .collect();
                        v.sort_unstable();
                        nearest_rank(&v, 0.99).unwrap_or(0) as f64
                    })
                    .collect()
            };
            let kpis = vec![
                kpi(
                    "KV throughput",
                    "GB/s",
                    Better::Higher,
                    Statistic::Mean,
                    p.trials.iter().map(|t| t.gbytes_per_s).collect(),
                ),
                kpi(
                    "P50 T_transfer",
                    "ns",
                    Better::Lower,
                    Statistic::Percentile,
                    p.trials
                        .iter()
                        .map(|t| t.t_transfer_p50_ns as f64)
                        .collect(),
                ),
                kpi(
                    "P99 T_transfer",
                    "ns",
                    Better::Lower,
                    Statistic::Percentile,
                    p99_of(|r| r.t_transfer_ns),
                ),
                kpi(
                    "P50 TTFT",
                    "ns",
                    Better::Lower,
                    Statistic::Percentile,
                    p.trials.iter().map(|t| t.ttft_p50_ns as f64).collect(),
                ),
                kpi(
                    "P99 TTFT",
                    "ns",
                    Better::Lower,
                    Statistic::Percentile,
                    p99_of(|r| r.ttft_ns),
                ),
            ];
            out.push(ConfigSamples {
                key: format!("{} prompt tokens × {}", p.prompt_tokens, qp_count(p.qps)),
                kpis,
            });
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn p2p_configurations_carry_throughput_and_per_clock_percentiles() {
        let report: RunReport =
            serde_json::from_str(include_str!("../../tests/fixtures/results/bw-write.json"))
                .unwrap();
        let configs = configurations(&report);
        assert_eq!(configs.len(), report.results.len());
        let first = &configs[0];
        assert!(first.key.contains("QP"), "{}", first.key);
        let throughput = &first.kpis[0];
        assert_eq!(throughput.kpi, "throughput");
        assert_eq!(throughput.values.len(), report.results[0].trials.len());
        assert_eq!(throughput.better, Better::Higher);
    }

    #[test]
    fn nearest_rank_percentiles() {
        assert_eq!(nearest_rank(&[1, 2, 3, 4], 0.5), Some(2));
        assert_eq!(nearest_rank(&[1, 2, 3, 4], 0.99), Some(4));
        assert_eq!(nearest_rank(&[], 0.99), None);
    }
}
