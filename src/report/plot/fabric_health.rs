//! The draft's Fabric Health Indicators table (§4.4, required by §14) as far
//! as NIC counters tell it, for any test whose trials carry counter deltas
//! (today the multi-rank tests 5.3, 8.1, 8.2): one column per node and
//! device, the congestion and error KPIs summed over every trial, the "NIC
//! QP State" row from the QP error count, and the raw non-zero deltas.
//! Reading counters and mapping names to KPIs is not here (crate::sysinfo,
//! docs/counters.md); switch-side indicators (CPU, memory, FEC, BGP) are
//! outside what a host can measure and are listed as such.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use super::{PlotError, Section};
use crate::report::blocks::{Block, Table};
use crate::results::{CounterKpis, NodeCounters, RunReport};

/// The counters section, for every test id.
pub(super) const SECTION: Section = Section {
    test_id: "*",
    title: "Fabric Health Indicators from NIC counter deltas, per node and device, and the raw non-zero deltas",
    build,
};

/// One KPI summed over trials.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum KpiTotal {
    /// No trial had the counter (the NIC does not expose it): never 0.
    Unavailable,
    /// Every trial had it: the sum.
    Sum(i64),
    /// Only `trials` of `of` trials had it (a counter went backwards or
    /// could not be read in the others): the sum of those.
    Partial {
        /// The sum over the trials that had it.
        sum: i64,
        /// Trials that had it.
        trials: usize,
        /// Trials in all.
        of: usize,
    },
}

impl fmt::Display for KpiTotal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            KpiTotal::Unavailable => f.write_str("n/a"),
            KpiTotal::Sum(sum) => write!(f, "{sum}"),
            KpiTotal::Partial { sum, trials, of } => write!(f, "{sum} ({trials} of {of} trials)"),
        }
    }
}

/// Sums one KPI over trials; `None` values are counted as missing, never as 0.
pub(super) fn kpi_total(values: impl IntoIterator<Item = Option<i64>>) -> KpiTotal {
    let (mut sum, mut present, mut all) = (0i64, 0usize, 0usize);
    for value in values {
        all += 1;
        if let Some(v) = value {
            sum = sum.saturating_add(v);
            present += 1;
        }
    }
    match present {
        0 => KpiTotal::Unavailable,
        n if n == all => KpiTotal::Sum(sum),
        n => KpiTotal::Partial {
            sum,
            trials: n,
            of: all,
        },
    }
}

/// The "NIC QP State" cell from the QP error total (draft §4.4 threshold:
/// 100 % of QPs active, no error or reset).
pub(super) fn qp_state(total: KpiTotal) -> String {
    match total {
        KpiTotal::Unavailable => "n/a".into(),
        KpiTotal::Sum(0) => "all active (0 QP errors)".into(),
        KpiTotal::Partial { sum: 0, .. } => format!("all active ({total} QP errors)"),
        KpiTotal::Sum(_) | KpiTotal::Partial { .. } => {
            format!("NOT all active: {total} QP errors")
        }
    }
}

/// Every counter delta of the file: pairs, incast, AllToAll, contention
/// (7.4, every phase) and p2p trials.
pub(super) fn all_counters(report: &RunReport) -> Vec<&NodeCounters> {
    let pairs = report
        .pairs
        .iter()
        .flat_map(|p| &p.trials)
        .flat_map(|t| &t.counters);
    let incast = report
        .incast
        .iter()
        .flat_map(|p| &p.trials)
        .flat_map(|t| &t.counters);
    let alltoall = report
        .alltoall
        .iter()
        .flat_map(|p| &p.trials)
        .flat_map(|t| &t.counters);
    let p2p = report
        .results
        .iter()
        .flat_map(|c| &c.trials)
        .flat_map(|t| &t.counters);
    let contention = report
        .contention
        .iter()
        .flat_map(|c| &c.phases)
        .flat_map(|p| &p.trials)
        .flat_map(|t| &t.counters);
    let kv = report
        .kv
        .iter()
        .flat_map(|k| &k.points)
        .flat_map(|p| &p.trials)
        .flat_map(|t| &t.counters);
    pairs
        .chain(incast)
        .chain(alltoall)
        .chain(contention)
        .chain(p2p)
        .chain(kv)
        .collect()
}

/// The deltas of one (node, device, port), across trials.
#[derive(Default)]
struct Column<'a> {
    kpis: Vec<&'a CounterKpis>,
    raw: BTreeMap<&'a str, i64>,
    elapsed_ns: u64,
    unavailable: BTreeSet<&'a str>,
}

/// A KPI row: label, the draft's threshold, how to read it.
type KpiRow = (&'static str, &'static str, fn(&CounterKpis) -> Option<i64>);

const KPI_ROWS: [KpiRow; 9] = [
    (
        "ECN-CE marked packets received",
        "report (§4.3 ECN_marking_rate)",
        |k| k.ecn_marked_packets,
    ),
    ("CNPs sent (notification point)", "report", |k| k.cnp_sent),
    ("CNPs handled (reaction point)", "report", |k| k.cnp_handled),
    (
        "PFC PAUSE frames received",
        "report (§4.3 PFC_frame_count)",
        |k| k.pfc_rx_pause,
    ),
    (
        "PFC PAUSE frames sent",
        "report (§4.3 PFC_frame_count)",
        |k| k.pfc_tx_pause,
    ),
    ("retransmissions", "report", |k| k.retransmissions),
    ("out-of-sequence requests", "report", |k| k.out_of_sequence),
    ("PSN sequence error NAKs", "report", |k| k.packet_seq_errors),
    (
        "port errors (CRC, symbol, link down, discards)",
        "0 (§4.4 CRC Error Count)",
        |k| k.port_errors,
    ),
];

fn build(report: &RunReport) -> Result<Vec<Block>, PlotError> {
    let counters = all_counters(report);
    if counters.is_empty() {
        return Ok(Vec::new());
    }
    let mut columns: BTreeMap<(u32, &str, u8), Column> = BTreeMap::new();
    for c in &counters {
        let d = &c.deltas;
        let column = columns.entry((c.node, &d.device, d.port)).or_default();
        column.kpis.push(&d.kpis);
        column.elapsed_ns += d.elapsed_ns;
        for (name, delta) in &d.raw {
            *column.raw.entry(name).or_default() += delta;
        }
        column
            .unavailable
            .extend(d.unavailable.iter().map(String::as_str));
    }
    let mut headers = vec!["indicator".to_string(), "draft threshold".to_string()];
    headers.extend(
        columns
            .keys()
            .map(|(node, device, port)| format!("node {node} {device}:{port}")),
    );
    let row = |label: &str, threshold: &str, cell: &dyn Fn(&Column) -> String| {
        let mut row = vec![label.to_string(), threshold.to_string()];
        row.extend(columns.values().map(cell));
        row
    };
    let mut rows = vec![
        row("trials counted", "-", &|c| c.kpis.len().to_string()),
        row("time counted", "-", &|c| {
            crate::report::units::human_ns(c.elapsed_ns as f64)
        }),
    ];
    for (label, threshold, kpi) in KPI_ROWS {
        rows.push(row(label, threshold, &|c| {
            kpi_total(c.kpis.iter().map(|k| kpi(k))).to_string()
        }));
    }
    rows.push(row("NIC QP State", "100 % active (no error/reset)", &|c| {
        qp_state(kpi_total(c.kpis.iter().map(|k| k.qp_errors)))
    }));
    let health = Table {
        title: "Fabric Health Indicators (NIC counters, draft §4.4)".into(),
        columns: headers.clone(),
        rows,
        notes: vec![
            "Counter deltas over each trial (snapshot before the trial's traffic, after every node's traffic), summed over all trials and points of this file. n/a: the NIC exposes no counter for that indicator (not 0); \"k of n trials\": the counter could not be subtracted in the others (see docs/counters.md). NIC QP State reads the work requests that completed in error or moved a QP to the error state.".into(),
            "Switch-side indicators of §4.4 (switch CPU and memory, FEC error rate, BGP/OSPF stability) and GPU-NIC PCIe bandwidth are not visible from the hosts: read them from the DUT.".into(),
        ],
    };

    let names: BTreeSet<&str> = columns
        .values()
        .flat_map(|c| c.raw.iter().filter(|(_, v)| **v != 0).map(|(k, _)| *k))
        .collect();
    let raw_rows = names
        .iter()
        .map(|name| {
            let mut row = vec![name.to_string()];
            row.extend(
                columns
                    .values()
                    .map(|c| c.raw.get(name).map_or("-".into(), |v| v.to_string())),
            );
            row
        })
        .collect::<Vec<_>>();
    let mut raw_headers = vec!["counter".to_string()];
    raw_headers.extend(headers.into_iter().skip(2));
    let mut notes = vec![if raw_rows.is_empty() {
        "Every counter read stayed at 0 over every trial.".to_string()
    } else {
        "Sums over all trials of every counter that moved; counters that stayed at 0 are left out; - : not read on that device.".to_string()
    }];
    for ((node, device, port), column) in &columns {
        if !column.unavailable.is_empty() {
            let lines: Vec<&str> = column.unavailable.iter().copied().collect();
            notes.push(format!(
                "Not read on node {node} {device}:{port}: {}.",
                lines.join("; ")
            ));
        }
    }
    let raw = Table {
        title: "NIC counters: raw non-zero deltas".into(),
        columns: raw_headers,
        rows: raw_rows,
        notes,
    };
    Ok(vec![Block::Table(health), Block::Table(raw)])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixture() -> RunReport {
        serde_json::from_str(include_str!(
            "../../../tests/fixtures/results/incast-8.2.json"
        ))
        .unwrap()
    }

    #[test]
    fn missing_counters_are_na_never_zero() {
        assert_eq!(kpi_total([None, None]).to_string(), "n/a");
        assert_eq!(kpi_total([Some(2), Some(3)]), KpiTotal::Sum(5));
        assert_eq!(kpi_total([Some(2), None]).to_string(), "2 (1 of 2 trials)");
        assert_eq!(qp_state(KpiTotal::Unavailable), "n/a");
        assert_eq!(qp_state(KpiTotal::Sum(0)), "all active (0 QP errors)");
        assert!(qp_state(KpiTotal::Sum(3)).starts_with("NOT all active"));
    }

    #[test]
    fn health_table_per_node_with_qp_state() {
        let report = fixture();
        let blocks = build(&report).unwrap();
        let [Block::Table(health), Block::Table(raw)] = &blocks[..] else {
            panic!("{blocks:?}")
        };
        assert!(health.title.contains("Fabric Health Indicators"));
        assert_eq!(health.columns.len(), 2 + 2, "two nodes, one device each");
        let row = |label: &str| {
            health
                .rows
                .iter()
                .find(|r| r[0].starts_with(label))
                .unwrap_or_else(|| panic!("no row {label}"))
        };
        // rxe has no ECN or PFC counters; it counts retransmissions.
        assert_eq!(row("ECN-CE")[2], "n/a");
        assert_eq!(row("PFC PAUSE frames received")[3], "n/a");
        assert_eq!(row("retransmissions")[2], "0");
        assert_eq!(row("NIC QP State")[2], "all active (0 QP errors)");
        assert_eq!(row("trials counted")[2], "6", "2 points × 3 trials");
        assert!(raw.rows.iter().any(|r| r[0] == "hw_counters/rcvd_pkts"));
        assert!(raw.rows.iter().all(|r| r[0] != "hw_counters/link_downed"));
        assert!(raw
            .notes
            .iter()
            .any(|n| n.contains("ethtool not installed")));
    }

    #[test]
    fn no_counters_no_blocks() {
        let report: RunReport = serde_json::from_str(include_str!(
            "../../../tests/fixtures/results/bw-write.json"
        ))
        .unwrap();
        assert!(build(&report).unwrap().is_empty());
    }
}
