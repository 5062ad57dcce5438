//! The draft's §14 "Workload Parameters" table of a rendered report: what
//! traffic the test offered (test id, operation, message sizes, QPs,
//! trials, duration, and for multi-rank tests the pairs or senders swept,
//! bursts, arrival windows and seeds), read from whichever part of the
//! results file the test fills. The raw `parameters` dump stays in
//! overview.rs; the system configuration is system_report.rs's.

use super::blocks::{Block, Table};
use super::units::{human_bytes, human_ns, optional};
use crate::results::RunReport;

/// Distinct values in first-seen order, joined with ", ".
fn distinct<T: PartialEq + Copy>(
    values: impl IntoIterator<Item = T>,
    show: fn(T) -> String,
) -> String {
    let mut seen: Vec<T> = Vec::new();
    for v in values {
        if !seen.contains(&v) {
            seen.push(v);
        }
    }
    if seen.is_empty() {
        "-".into()
    } else {
        seen.into_iter().map(show).collect::<Vec<_>>().join(", ")
    }
}

/// An arrival window: `0 (simultaneous)`, else in the unit that reads best.
fn window_us(ns: u64) -> String {
    if ns == 0 {
        "0 (simultaneous)".into()
    } else {
        human_ns(ns as f64)
    }
}

/// The workload table of one file.
pub(crate) fn table(report: &RunReport) -> Table {
    let p = &report.parameters;
    let mut rows: Vec<(&str, String)> = vec![
        (
            "test id",
            format!("{} ({})", report.test_id, report.test_name),
        ),
        ("operation", p.op.clone()),
    ];
    if !report.pairs.is_empty() {
        let pairs = &report.pairs;
        rows.extend([
            (
                "pattern",
                "N concurrent prefill → decode pairs, continuous transfers".into(),
            ),
            (
                "pairs N swept",
                distinct(pairs.iter().map(|x| x.pairs), |n| n.to_string()),
            ),
            (
                "message sizes",
                distinct(pairs.iter().map(|x| x.msg_bytes), human_bytes),
            ),
            (
                "QPs per pair",
                distinct(pairs.iter().map(|x| x.qps_per_pair), |n| n.to_string()),
            ),
            (
                "bytes per WR",
                distinct(pairs.iter().map(|x| x.wr_bytes), human_bytes),
            ),
            (
                "outstanding WRs per QP",
                distinct(pairs.iter().map(|x| x.tx_depth), |n| n.to_string()),
            ),
        ]);
    } else if !report.incast.is_empty() {
        let incast = &report.incast;
        rows.extend([
            ("pattern", "M senders → one receiver port, N_burst transfers each, start times spread over T_arrival".into()),
            ("senders M swept", distinct(incast.iter().map(|x| x.senders), |n| n.to_string())),
            ("bursts per sender N_burst", distinct(incast.iter().map(|x| x.bursts_per_sender), |n| n.to_string())),
            ("message sizes", distinct(incast.iter().map(|x| x.msg_bytes), human_bytes)),
            ("arrival windows T_arrival", distinct(incast.iter().map(|x| x.arrival_window_ns), window_us)),
            ("start-time seeds", distinct(incast.iter().map(|x| x.seed), |n| n.to_string())),
            ("receiver ranks", distinct(incast.iter().map(|x| x.receiver_rank), |n| n.to_string())),
        ]);
    } else {
        rows.extend([
            ("pattern", "point to point, initiator → target".into()),
            ("mode", p.mode.clone()),
            (
                "message sizes",
                distinct(p.sizes_bytes.iter().copied(), human_bytes),
            ),
            (
                "QP counts",
                distinct(p.qps.iter().copied(), |n| n.to_string()),
            ),
            ("outstanding WRs per QP", p.tx_depth.to_string()),
        ]);
    }
    rows.extend([
        ("trials per point", p.trials.to_string()),
        ("trial duration s", optional(p.duration_s, 1)),
        (
            "messages per QP per trial",
            p.iters.map_or("-".into(), |n| n.to_string()),
        ),
        ("traffic class", p.traffic_class.to_string()),
        ("payload verification", p.verify.to_string()),
    ]);
    Table {
        title: "Workload parameters (draft §14)".into(),
        columns: vec!["parameter".into(), "value".into()],
        rows: rows
            .into_iter()
            .map(|(k, v)| vec![k.to_string(), v])
            .collect(),
        notes: vec!["Synthetic verbs traffic: the draft's model, prompt-length and request-arrival fields do not apply to a fabric benchmark without a serving stack.".into()],
    }
}

/// The workload table as a block.
pub(crate) fn blocks(report: &RunReport) -> Vec<Block> {
    vec![Block::Table(table(report))]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn value(t: &Table, name: &str) -> String {
        t.rows
            .iter()
            .find(|r| r[0] == name)
            .unwrap_or_else(|| panic!("no row {name}: {:?}", t.rows))[1]
            .clone()
    }

    #[test]
    fn sweeps_come_from_the_points() {
        let pairs: RunReport =
            serde_json::from_str(include_str!("../../tests/fixtures/results/pairs-5.3.json"))
                .unwrap();
        let t = table(&pairs);
        assert_eq!(value(&t, "pairs N swept"), "1, 2, 4");
        assert_eq!(value(&t, "message sizes"), "1M");
        let incast: RunReport =
            serde_json::from_str(include_str!("../../tests/fixtures/results/incast-8.2.json"))
                .unwrap();
        let t = table(&incast);
        assert_eq!(value(&t, "senders M swept"), "2, 3");
        assert_eq!(value(&t, "arrival windows T_arrival"), "1.00 ms");
        let p2p: RunReport =
            serde_json::from_str(include_str!("../../tests/fixtures/results/bw-write.json"))
                .unwrap();
        assert!(value(&table(&p2p), "QP counts").contains('8'));
        assert_eq!(window_us(0), "0 (simultaneous)");
    }
}
