//! The part of a report every results file gets, whatever its test: the
//! header (test, DUT, status, error, deviations, tool, times), the
//! parameters and the endpoints (draft §14's "System Configuration" and
//! "Workload Parameters" as far as a verbs benchmark knows them). KPI
//! tables live in kpi.rs, test-specific charts in plot/.

use std::path::Path;

use super::blocks::{Block, Table};
use super::plot;
use super::units::{human_bytes, human_ns, human_rate, optional, qp_count};
use crate::results::{DeviceFacts, RunReport};

fn key_values(title: &str, pairs: Vec<(&str, String)>) -> Table {
    Table {
        title: title.into(),
        columns: vec!["field".into(), "value".into()],
        rows: pairs
            .into_iter()
            .map(|(k, v)| vec![k.to_string(), v])
            .collect(),
        notes: Vec::new(),
    }
}

fn list<T: ToString>(items: &[T]) -> String {
    items
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

fn header(path: &Path, report: &RunReport) -> Table {
    let tool = &report.tool;
    let mut pairs = vec![
        ("file", path.display().to_string()),
        ("test", format!("{} ({})", report.test_id, report.test_name)),
        ("DUT", report.dut_id.clone()),
        ("status", report.status.clone()),
    ];
    if let Some(error) = &report.error {
        pairs.push(("error", error.clone()));
    }
    pairs.extend([
        (
            "tool",
            format!(
                "{} {} (commit {})",
                tool.name,
                tool.version,
                tool.git_commit.as_deref().unwrap_or("unknown")
            ),
        ),
        ("started at", report.started_at.clone()),
        ("updated at", report.updated_at.clone()),
        ("schema version", report.schema_version.clone()),
        ("configurations", report.results.len().to_string()),
    ]);
    // The KV tests (10.1, 6.1) have no (size, QP) configurations: their
    // headline is TTFT at the longest prompt, or over the prompt mix.
    if let Some(headline) = report.kv.as_ref().and_then(plot::kv_headline) {
        pairs.push(("headline", headline));
    }
    key_values("Run", pairs)
}

/// The one number the index shows for a file: the best throughput of a
/// 5.1 sweep, the lowest P50 of a latency run, the aggregate of the largest
/// pair count, TTFT at the longest prompt (or over a prompt mix); `None`
/// when nothing completed.
pub(crate) fn headline_number(report: &RunReport) -> Option<String> {
    if let Some(kv) = &report.kv {
        if let Some(dist) = &kv.prompt_dist {
            let p = kv.points.iter().find(|p| p.summary.requests > 0)?;
            return Some(format!(
                "TTFT P50 {} over prompt mix {dist}",
                human_ns(p.summary.ttft.p50_ns as f64)
            ));
        }
        let p = kv
            .points
            .iter()
            .filter(|p| p.summary.requests > 0)
            .max_by_key(|p| p.prompt_tokens)?;
        return Some(format!(
            "TTFT P50 {} at {} prompt tokens",
            human_ns(p.summary.ttft.p50_ns as f64),
            p.prompt_tokens
        ));
    }
    if let Some(p) = report
        .pairs
        .iter()
        .filter(|p| !p.trials.is_empty())
        .max_by_key(|p| p.pairs)
    {
        let gbps = p.summary.aggregate_gbytes_per_s.as_ref()?.mean;
        return Some(format!(
            "{} aggregate over {} pairs",
            human_rate(gbps),
            p.pairs
        ));
    }
    if report.parameters.mode == "latency" {
        let (config, clock) = report
            .results
            .iter()
            .filter_map(|c| c.summary.latency.first().map(|l| (c, l)))
            .min_by_key(|(_, l)| l.summary.p50_ns)?;
        return Some(format!(
            "P50 {} ({} clock) at {}",
            human_ns(clock.summary.p50_ns as f64),
            clock.clock,
            human_bytes(config.msg_bytes)
        ));
    }
    let (config, gbps) = report
        .results
        .iter()
        .filter_map(|c| c.summary.gbytes_per_s.as_ref().map(|g| (c, g.mean)))
        .max_by(|a, b| a.1.total_cmp(&b.1))?;
    Some(format!(
        "{} at {} × {}",
        human_rate(gbps),
        human_bytes(config.msg_bytes),
        qp_count(config.qps)
    ))
}

fn parameters(report: &RunReport) -> Table {
    let p = &report.parameters;
    let sizes: Vec<String> = p.sizes_bytes.iter().map(|&b| human_bytes(b)).collect();
    key_values(
        "Parameters",
        vec![
            ("op", p.op.clone()),
            ("mode", p.mode.clone()),
            ("clocks", list(&p.clocks)),
            ("message sizes", list(&sizes)),
            ("QP counts", list(&p.qps)),
            ("trials per configuration", p.trials.to_string()),
            ("trial duration s", optional(p.duration_s, 1)),
            (
                "messages per QP per trial",
                p.iters.map_or("-".into(), |n| n.to_string()),
            ),
            ("warmup messages per QP", p.warmup_iters.to_string()),
            ("tx depth (WRs per QP)", p.tx_depth.to_string()),
            ("rx depth", p.rx_depth.to_string()),
            ("cq mod", p.cq_mod.to_string()),
            ("threads", p.threads.to_string()),
            ("verify", p.verify.to_string()),
            ("huge pages", p.huge_pages.to_string()),
            ("max WR bytes", p.max_wr_bytes.to_string()),
            ("stall timeout s", format!("{}", p.stall_timeout_s)),
            ("traffic class", p.traffic_class.to_string()),
        ],
    )
}

/// The parameters that mean something in a multi-rank run: the p2p ones
/// (op, mode, sizes, QP counts, depths, threads) are placeholders there,
/// e.g. tx depth 0 and threads = ranks, so they are left out.
fn cluster_parameters(report: &RunReport, ranks: usize, nodes: usize) -> Table {
    let p = &report.parameters;
    let mut table = key_values(
        "Parameters (multi-rank run)",
        vec![
            ("nodes", nodes.to_string()),
            ("ranks", ranks.to_string()),
            ("trials per point", p.trials.to_string()),
            ("trial duration s", optional(p.duration_s, 1)),
            ("verify", p.verify.to_string()),
            ("huge pages", p.huge_pages.to_string()),
            ("max WR bytes", p.max_wr_bytes.to_string()),
            ("stall timeout s", format!("{}", p.stall_timeout_s)),
            ("traffic class", p.traffic_class.to_string()),
        ],
    );
    table.notes.push(
        "The point-to-point fields (op, mode, clocks, sizes, QP counts, depths, threads) do not apply to a multi-rank test and are not shown: each point's op, sizes and QPs are in the workload and test tables below, each rank's device in Nodes and ranks and Devices and ports.".into(),
    );
    table
}

fn endpoint_row(role: &str, d: &DeviceFacts) -> Vec<String> {
    vec![
        role.into(),
        format!("{} port {}", d.name, d.port),
        d.fw_ver.clone(),
        format!("{} [{}] {}", d.gid.gid, d.gid.index, d.gid.gid_type),
        d.gid.netdev.clone().unwrap_or_else(|| "-".into()),
        d.link_layer.clone(),
        d.active_mtu_bytes.to_string(),
        format!("{} {}", d.active_width, d.active_speed),
        optional(d.line_rate_gbps, 1),
    ]
}

fn endpoints(report: &RunReport) -> Option<Table> {
    let e = report.endpoints.as_ref()?;
    let mut notes = vec![if e.same_host {
        "Both ends ran under one kernel (same host).".to_string()
    } else {
        "The ends ran on different hosts.".to_string()
    }];
    if let Some(clock) = &report.clock {
        notes.push(format!(
            "Target clock offset {} ns ± {} ns ({}).",
            clock.offset_ns, clock.error_bound_ns, clock.method
        ));
    }
    Some(Table {
        title: "Endpoints".into(),
        columns: [
            "role",
            "device",
            "firmware",
            "GID [index] type",
            "netdev",
            "link layer",
            "MTU bytes",
            "width speed",
            "line rate Gb/s",
        ]
        .map(String::from)
        .to_vec(),
        rows: vec![
            endpoint_row("initiator (prefill)", &e.initiator),
            endpoint_row("target (decode)", &e.target),
        ],
        notes,
    })
}

/// The header, deviations, parameters and endpoints of one file; a
/// multi-rank file (with `cluster`) gets its run-wide parameters only, its
/// ranks and devices being in the §14 tables (system_report.rs).
pub(crate) fn blocks(path: &Path, report: &RunReport) -> Vec<Block> {
    let mut blocks = vec![Block::Table(header(path, report))];
    if report.deviations.is_empty() {
        blocks.push(Block::Note(
            "Deviations from the draft's procedure: none.".into(),
        ));
    } else {
        blocks.push(Block::Table(Table {
            title: "Deviations from the draft's procedure".into(),
            columns: vec!["deviation".into()],
            rows: report.deviations.iter().map(|d| vec![d.clone()]).collect(),
            notes: Vec::new(),
        }));
    }
    if report.is_softroce() {
        blocks.push(Block::Note(
            "SoftRoCE (rxe) numbers are CPU-bound and functional only, never a NIC performance claim."
                .into(),
        ));
    }
    match &report.cluster {
        Some(cluster) => blocks.push(Block::Table(cluster_parameters(
            report,
            cluster.ranks.len(),
            cluster.nodes.len(),
        ))),
        None => {
            blocks.push(Block::Table(parameters(report)));
            match endpoints(report) {
                Some(table) => blocks.push(Block::Table(table)),
                None => blocks.push(Block::Note(
                    "Endpoints: none, the run used no RDMA device.".into(),
                )),
            }
        }
    }
    blocks
}

#[cfg(test)]
mod tests {
    use super::*;

    fn titles(text: &str) -> Vec<String> {
        let report: RunReport = serde_json::from_str(text).unwrap();
        blocks(Path::new("x.json"), &report)
            .into_iter()
            .filter_map(|b| match b {
                Block::Table(t) => Some(t.title),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn the_index_gets_one_headline_number_per_file() {
        let number = |text: &str| {
            let report: RunReport = serde_json::from_str(text).unwrap();
            headline_number(&report).unwrap()
        };
        let bw = number(include_str!("../../tests/fixtures/results/bw-write.json"));
        assert!(bw.contains("B/s at ") && bw.contains("QP"), "{bw}");
        let lat = number(include_str!(
            "../../tests/fixtures/results/lat-write-imm.json"
        ));
        assert!(lat.starts_with("P50 ") && lat.contains("clock"), "{lat}");
        let pairs = number(include_str!("../../tests/fixtures/results/pairs-5.3.json"));
        assert!(pairs.contains("aggregate over"), "{pairs}");
        let kv = number(include_str!("../../tests/fixtures/results/kv-10.1.json"));
        assert!(
            kv.starts_with("TTFT P50 ") && kv.contains("prompt tokens"),
            "{kv}"
        );
        let mix = number(include_str!(
            "../../tests/fixtures/results/kv-10.1-mix.json"
        ));
        assert_eq!(mix, "TTFT P50 1.049 s over prompt mix uniform:16..128");
        let mut empty: RunReport =
            serde_json::from_str(include_str!("../../tests/fixtures/results/bw-write.json"))
                .unwrap();
        empty.results.clear();
        assert!(headline_number(&empty).is_none());
    }

    #[test]
    fn a_kv_file_gets_its_ttft_headline() {
        let report: RunReport =
            serde_json::from_str(include_str!("../../tests/fixtures/results/kv-10.1.json"))
                .unwrap();
        let run = header(Path::new("kv.json"), &report);
        let headline = run.rows.iter().find(|r| r[0] == "headline").unwrap();
        assert!(headline[1].starts_with("TTFT P50 "), "{headline:?}");
        assert!(
            headline[1].contains("at 2048 prompt tokens"),
            "{headline:?}"
        );
        let p2p: RunReport =
            serde_json::from_str(include_str!("../../tests/fixtures/results/bw-write.json"))
                .unwrap();
        let run = header(Path::new("bw.json"), &p2p);
        assert!(run.rows.iter().all(|r| r[0] != "headline"));
    }

    #[test]
    fn multi_rank_files_skip_the_p2p_parameters_and_endpoints() {
        let p2p = titles(include_str!(
            "../../tests/fixtures/results/lat-write-imm.json"
        ));
        assert!(p2p.contains(&"Parameters".to_string()));
        assert!(p2p.contains(&"Endpoints".to_string()));
        let ep = titles(include_str!(
            "../../tests/fixtures/results/alltoall-7.2.json"
        ));
        assert!(ep.contains(&"Parameters (multi-rank run)".to_string()));
        assert!(!ep.contains(&"Endpoints".to_string()), "{ep:?}");
        assert!(!ep.contains(&"Parameters".to_string()));
    }
}
