//! The human table: one row per (size, QPs), mean ± CI across trials, with
//! percentiles of the merged distribution.

use tabled::builder::Builder;
use tabled::settings::Style;

use super::units::{human_bytes, human_ns, human_rate, mean_ci, rate_ci, si_ci, time_ci};
use crate::results::{ConfigResult, RunReport};

/// A duration cell in the unit that reads best (ns, µs, ms, s).
fn time(ns: u64) -> String {
    human_ns(ns as f64)
}

/// Renders the run as a table (bandwidth or latency columns by mode).
pub fn render_table(report: &RunReport) -> String {
    let mut builder = Builder::default();
    let latency_mode = report.parameters.mode == "latency";
    if latency_mode {
        builder.push_record([
            "size", "QPs", "clock", "trials", "n", "P50", "P95", "P99", "P99.9", "max", "P99-P50",
        ]);
    } else {
        builder.push_record([
            "size",
            "QPs",
            "trials",
            "throughput (mean ± 95% CI)",
            "bits/s",
            "MiB/s (perftest's unit)",
            "msg/s",
            "P50",
            "P99",
            "JFI",
        ]);
    }
    for config in &report.results {
        if latency_mode {
            latency_rows(&mut builder, config);
        } else {
            let lat = config.summary.latency.first().map(|c| &c.summary);
            builder.push_record([
                human_bytes(config.msg_bytes),
                config.qps.to_string(),
                config.summary.trials.to_string(),
                rate_ci(config.summary.gbytes_per_s.as_ref()),
                si_ci(config.summary.gbits_per_s.as_ref(), 1e9, "b/s"),
                mean_ci(
                    config.summary.gbytes_per_s.as_ref(),
                    1e9 / (1 << 20) as f64,
                    1,
                ),
                si_ci(config.summary.msgs_per_s.as_ref(), 1.0, "msg/s"),
                lat.map(|l| time(l.p50_ns)).unwrap_or_else(|| "-".into()),
                lat.map(|l| time(l.p99_ns)).unwrap_or_else(|| "-".into()),
                config
                    .summary
                    .jain_index
                    .as_ref()
                    .map(|j| format!("{:.4}", j.mean))
                    .unwrap_or_else(|| "-".into()),
            ]);
        }
    }
    let mut table = builder.build();
    table.with(Style::rounded());
    table.to_string()
}

fn latency_rows(builder: &mut Builder, config: &ConfigResult) {
    // a loaded configuration names its background level next to the size
    let size = match &config.background {
        Some(bg) => format!(
            "{} @{}% bg",
            human_bytes(config.msg_bytes),
            bg.level_percent
        ),
        None => human_bytes(config.msg_bytes),
    };
    for clock in &config.summary.latency {
        let s = &clock.summary;
        let p999 = if s.p999_reliable {
            time(s.p999_ns)
        } else {
            format!("{}*", time(s.p999_ns))
        };
        builder.push_record([
            size.clone(),
            config.qps.to_string(),
            clock.clock.clone(),
            config.summary.trials.to_string(),
            s.count.to_string(),
            time(s.p50_ns),
            time(s.p95_ns),
            time(s.p99_ns),
            p999,
            time(s.max_ns),
            time(s.p99_minus_p50_ns),
        ]);
    }
}

/// Renders a multi-rank run (pairs or incast) as a table, one row per point.
pub fn render_fabric_table(report: &RunReport) -> String {
    let mut builder = Builder::default();
    if let Some(d) = &report.decode_steps {
        builder.push_record([
            "condition",
            "load %",
            "trials",
            "steps",
            "ITL_fabric P50",
            "P95",
            "P99",
            "P99.9",
            "max",
            "stalls > 100 ms",
        ]);
        for c in &d.conditions {
            let s = &c.itl_fabric;
            builder.push_record([
                format!("({})", c.condition),
                c.load_percent.to_string(),
                c.trials.len().to_string(),
                s.count.to_string(),
                human_ns(s.p50_ns as f64),
                human_ns(s.p95_ns as f64),
                human_ns(s.p99_ns as f64),
                human_ns(s.p999_ns as f64),
                human_ns(s.max_ns as f64),
                c.stalls.to_string(),
            ]);
        }
        if let Some(c) = d.capacity_gbytes_per_s {
            builder.push_record([
                "capacity".to_string(),
                human_rate(c),
                String::new(),
                String::new(),
                String::new(),
                String::new(),
                String::new(),
                String::new(),
                String::new(),
                String::new(),
            ]);
        }
    } else if let Some(kv) = &report.kv {
        builder.push_record([
            "prompt",
            "KV bytes",
            "descs",
            "WRs",
            "reqs",
            "T_prefill (modelled)",
            "T_transfer P50 / P99",
            "TTFT P50 / P99",
            "share P50",
            "post / desc",
            "notify lag P50",
            "rate",
        ]);
        for p in &kv.points {
            let s = &p.summary;
            builder.push_record([
                p.prompt_tokens.to_string(),
                human_bytes(p.bytes_per_request),
                p.descriptors_per_request.to_string(),
                p.wrs_per_request.to_string(),
                s.requests.to_string(),
                time(p.t_prefill_modelled_ns),
                format!(
                    "{} / {}",
                    time(s.t_transfer.p50_ns),
                    time(s.t_transfer.p99_ns)
                ),
                format!("{} / {}", time(s.ttft.p50_ns), time(s.ttft.p99_ns)),
                format!("{:.1} %", s.transfer_share.p50 * 100.0),
                human_ns(s.post_ns_per_descriptor),
                s.notify_lag.as_ref().map_or("-".into(), |l| time(l.p50_ns)),
                rate_ci(s.gbytes_per_s.as_ref()),
            ]);
        }
    } else if let Some(c) = &report.contention {
        builder.push_record(["phase", "KV load", "trials", "KV rate", "KV P99", "EP P99"]);
        for p in &c.phases {
            builder.push_record([
                p.phase.clone(),
                p.kv_load_percent.map_or("-".into(), |l| format!("{l}%")),
                p.trials.len().to_string(),
                rate_ci(p.kv_gbytes_per_s.as_ref()),
                time_ci(p.kv_p99_ns.as_ref()),
                time_ci(p.ep_p99_ns.as_ref()),
            ]);
        }
        for pen in &c.penalties {
            let x = |v: Option<f64>| v.map_or("-".into(), |v| format!("{v:.2}×"));
            builder.push_record([
                "penalty".into(),
                format!("{}%", pen.kv_load_percent),
                String::new(),
                String::new(),
                x(pen.kv_penalty),
                x(pen.ep_penalty),
            ]);
        }
    } else if !report.alltoall.is_empty() {
        let combined = report
            .alltoall
            .iter()
            .any(|p| p.summary.combine_p50_ns.is_some());
        let mut header: Vec<&str> = vec![
            "EP",
            "mode",
            "routing",
            "B",
            "slot",
            "trials",
            "dispatch P50",
            "dispatch P99",
            "algbw",
            "busbw",
        ];
        if combined {
            header.extend(["combine P50", "combine P99", "layer P50", "layer P99"]);
        }
        header.extend(["idle P50", "scaling eff."]);
        builder.push_record(header);
        for p in &report.alltoall {
            let s = &p.summary;
            let mut row = vec![
                p.ep_ranks.to_string(),
                p.mode.clone(),
                p.routing.clone(),
                p.batch_tokens.to_string(),
                human_bytes(p.slot_bytes),
                s.trials.to_string(),
                time_ci(s.p50_ns.as_ref()),
                time_ci(s.p99_ns.as_ref()),
                rate_ci(s.algbw_gbytes_per_s.as_ref()),
                rate_ci(s.busbw_gbytes_per_s.as_ref()),
            ];
            if combined {
                row.extend([
                    time_ci(s.combine_p50_ns.as_ref()),
                    time_ci(s.combine_p99_ns.as_ref()),
                    time_ci(s.layer_p50_ns.as_ref()),
                    time_ci(s.layer_p99_ns.as_ref()),
                ]);
            }
            row.extend([
                time_ci(s.idle_p50_ns.as_ref()),
                p.scaling_efficiency
                    .map_or("-".into(), |e| format!("{e:.2}")),
            ]);
            builder.push_record(row);
        }
    } else if !report.pairs.is_empty() {
        builder.push_record([
            "pairs",
            "size",
            "trials",
            "aggregate",
            "per pair",
            "P50",
            "P99",
            "JFI",
            "max/min",
        ]);
        for p in &report.pairs {
            let s = &p.summary;
            builder.push_record([
                p.pairs.to_string(),
                human_bytes(p.msg_bytes),
                s.trials.to_string(),
                rate_ci(s.aggregate_gbytes_per_s.as_ref()),
                rate_ci(s.per_pair_gbytes_per_s.as_ref()),
                time_ci(s.p50_ns.as_ref()),
                time_ci(s.p99_ns.as_ref()),
                mean_ci(s.jain_index.as_ref(), 1.0, 3),
                mean_ci(s.max_min_ratio.as_ref(), 1.0, 2),
            ]);
        }
    } else {
        builder.push_record([
            "senders",
            "bursts",
            "window",
            "trials",
            "FCT P50",
            "FCT P99",
            "last byte",
            "rx rate",
            "JFI",
        ]);
        for p in &report.incast {
            let s = &p.summary;
            builder.push_record([
                p.senders.to_string(),
                p.bursts_per_sender.to_string(),
                if p.arrival_window_ns == 0 {
                    "0 (simultaneous)".into()
                } else {
                    time(p.arrival_window_ns)
                },
                s.trials.to_string(),
                time_ci(s.fct_p50_ns.as_ref()),
                time_ci(s.fct_p99_ns.as_ref()),
                time_ci(s.last_byte_ns.as_ref()),
                rate_ci(s.aggregate_rx_gbytes_per_s.as_ref()),
                mean_ci(s.jain_index.as_ref(), 1.0, 3),
            ]);
        }
    }
    builder.build().with(Style::rounded()).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::results::RunReport;

    fn fixture(name: &str) -> RunReport {
        let path = format!(
            "{}/tests/fixtures/results/{name}",
            env!("CARGO_MANIFEST_DIR")
        );
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
    }

    #[test]
    fn terminal_tables_read_in_human_units() {
        // p2p bandwidth: rates in the unit that keeps 3–4 digits, times in
        // theirs (SoftRoCE: MB/s and ms)
        let bw = render_table(&fixture("bw-write.json"));
        assert!(bw.contains(" MB/s"), "{bw}");
        assert!(bw.contains(" ± "), "{bw}");
        assert!(bw.contains(" ms"), "{bw}");
        assert!(bw.contains(" msg/s"), "{bw}");
        for (name, units) in [
            ("pairs-5.3.json", [" MB/s", " ms"]),
            ("incast-8.2.json", [" MB/s", " ms"]),
            ("incast-single-host.json", ["0 (simultaneous)", " ms"]),
            ("alltoall-7.2.json", ["B/s", "s"]),
            ("contention-7.4.json", [" MB/s", " ms"]),
            ("kv-10.1.json", [" ms / ", "B/s"]),
        ] {
            let table = render_fabric_table(&fixture(name));
            for unit in units {
                assert!(table.contains(unit), "{name}: no '{unit}' in\n{table}");
            }
            // no header names a unit its cells then repeat
            let header = table.lines().nth(1).unwrap();
            assert!(
                !header.contains(" µs") && !header.contains("GB/s"),
                "{name}: {header}"
            );
        }
    }

    #[test]
    fn sizes_read_like_the_cli() {
        assert_eq!(human_bytes(65536), "64K");
        assert_eq!(human_bytes(1 << 30), "1G");
        assert_eq!(human_bytes(1000), "1000");
    }
}
