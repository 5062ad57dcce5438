//! Counter names → the draft's congestion and error KPIs (sections 4.3,
//! 8.1, 8.2, 13.1, 13.3). One table, [`KPI_COUNTERS`], documented in
//! docs/counters.md; the sources are the kernel drivers' counter name
//! tables (rxe_hw_counters.c, mlx5 counters.c, bnxt_re hw_counters.c, irdma
//! verbs.c) and the Ethernet drivers' `ethtool -S` names (mlx5e, bnxt_en,
//! ice).
//!
//! Rules:
//!
//! - A KPI is the sum of the deltas of its counters that the device exposes.
//! - Some KPIs have tiers: the lowest tier with any counter present wins and
//!   the others are ignored, so that e.g. per-priority PFC frames and the
//!   link-level pause counter are not added together.
//! - No counter of the KPI present → `None` (unknown), not 0.
//! - A counter of the winning tier whose delta is unknown (it went
//!   backwards, or was read only once) → `None`.
//!
//! Keys carry their source: "counters/" (IB port counters), "hw_counters/"
//! (driver counters), "ethtool/" (netdev statistics).

use std::collections::{BTreeMap, BTreeSet};

use crate::results::CounterKpis;

/// One KPI of [`CounterKpis`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Kpi {
    EcnMarked,
    CnpSent,
    CnpHandled,
    PfcRxPause,
    PfcTxPause,
    Retransmissions,
    OutOfSequence,
    PacketSeqErrors,
    PortErrors,
    QpErrors,
}

/// (KPI, tier, counter key). Driver names in the comments.
const KPI_COUNTERS: &[(Kpi, u8, &str)] = &[
    // ECN-CE marked RoCE packets received (notification point).
    (Kpi::EcnMarked, 0, "hw_counters/np_ecn_marked_roce_packets"), // mlx5, bnxt_re (new)
    (Kpi::EcnMarked, 0, "hw_counters/rx_ecn_marked_pkts"),         // bnxt_re (old)
    (Kpi::EcnMarked, 0, "hw_counters/RxECNMrkd"),                  // irdma
    // CNPs sent (notification point).
    (Kpi::CnpSent, 0, "hw_counters/np_cnp_sent"), // mlx5
    (Kpi::CnpSent, 0, "hw_counters/np_cnp_pkts"), // bnxt_re (new)
    (Kpi::CnpSent, 0, "hw_counters/tx_cnp_pkts"), // bnxt_re (old)
    (Kpi::CnpSent, 0, "hw_counters/cnpSent"),     // irdma
    // CNPs handled (reaction point).
    (Kpi::CnpHandled, 0, "hw_counters/rp_cnp_handled"), // mlx5, bnxt_re (new)
    (Kpi::CnpHandled, 0, "hw_counters/rx_cnp_pkts"),    // bnxt_re (old)
    (Kpi::CnpHandled, 0, "hw_counters/cnpHandled"),     // irdma
    // PFC PAUSE frames received: per priority (tier 0), else link pause (tier 1).
    (Kpi::PfcRxPause, 0, "ethtool/rx_prio0_pause"), // mlx5e
    (Kpi::PfcRxPause, 0, "ethtool/rx_prio1_pause"),
    (Kpi::PfcRxPause, 0, "ethtool/rx_prio2_pause"),
    (Kpi::PfcRxPause, 0, "ethtool/rx_prio3_pause"),
    (Kpi::PfcRxPause, 0, "ethtool/rx_prio4_pause"),
    (Kpi::PfcRxPause, 0, "ethtool/rx_prio5_pause"),
    (Kpi::PfcRxPause, 0, "ethtool/rx_prio6_pause"),
    (Kpi::PfcRxPause, 0, "ethtool/rx_prio7_pause"),
    (Kpi::PfcRxPause, 0, "ethtool/rx_pfc_ena_frames_pri0"), // bnxt_en
    (Kpi::PfcRxPause, 0, "ethtool/rx_pfc_ena_frames_pri1"),
    (Kpi::PfcRxPause, 0, "ethtool/rx_pfc_ena_frames_pri2"),
    (Kpi::PfcRxPause, 0, "ethtool/rx_pfc_ena_frames_pri3"),
    (Kpi::PfcRxPause, 0, "ethtool/rx_pfc_ena_frames_pri4"),
    (Kpi::PfcRxPause, 0, "ethtool/rx_pfc_ena_frames_pri5"),
    (Kpi::PfcRxPause, 0, "ethtool/rx_pfc_ena_frames_pri6"),
    (Kpi::PfcRxPause, 0, "ethtool/rx_pfc_ena_frames_pri7"),
    (Kpi::PfcRxPause, 0, "ethtool/rx_priority_0_xoff.nic"), // ice
    (Kpi::PfcRxPause, 0, "ethtool/rx_priority_1_xoff.nic"),
    (Kpi::PfcRxPause, 0, "ethtool/rx_priority_2_xoff.nic"),
    (Kpi::PfcRxPause, 0, "ethtool/rx_priority_3_xoff.nic"),
    (Kpi::PfcRxPause, 0, "ethtool/rx_priority_4_xoff.nic"),
    (Kpi::PfcRxPause, 0, "ethtool/rx_priority_5_xoff.nic"),
    (Kpi::PfcRxPause, 0, "ethtool/rx_priority_6_xoff.nic"),
    (Kpi::PfcRxPause, 0, "ethtool/rx_priority_7_xoff.nic"),
    (Kpi::PfcRxPause, 1, "ethtool/rx_pause_ctrl_phy"), // mlx5e
    (Kpi::PfcRxPause, 1, "ethtool/rx_pause_frames"),   // bnxt_en
    (Kpi::PfcRxPause, 1, "ethtool/link_xoff_rx"),      // ice
    // PFC PAUSE frames sent, likewise.
    (Kpi::PfcTxPause, 0, "ethtool/tx_prio0_pause"),
    (Kpi::PfcTxPause, 0, "ethtool/tx_prio1_pause"),
    (Kpi::PfcTxPause, 0, "ethtool/tx_prio2_pause"),
    (Kpi::PfcTxPause, 0, "ethtool/tx_prio3_pause"),
    (Kpi::PfcTxPause, 0, "ethtool/tx_prio4_pause"),
    (Kpi::PfcTxPause, 0, "ethtool/tx_prio5_pause"),
    (Kpi::PfcTxPause, 0, "ethtool/tx_prio6_pause"),
    (Kpi::PfcTxPause, 0, "ethtool/tx_prio7_pause"),
    (Kpi::PfcTxPause, 0, "ethtool/tx_pfc_ena_frames_pri0"),
    (Kpi::PfcTxPause, 0, "ethtool/tx_pfc_ena_frames_pri1"),
    (Kpi::PfcTxPause, 0, "ethtool/tx_pfc_ena_frames_pri2"),
    (Kpi::PfcTxPause, 0, "ethtool/tx_pfc_ena_frames_pri3"),
    (Kpi::PfcTxPause, 0, "ethtool/tx_pfc_ena_frames_pri4"),
    (Kpi::PfcTxPause, 0, "ethtool/tx_pfc_ena_frames_pri5"),
    (Kpi::PfcTxPause, 0, "ethtool/tx_pfc_ena_frames_pri6"),
    (Kpi::PfcTxPause, 0, "ethtool/tx_pfc_ena_frames_pri7"),
    (Kpi::PfcTxPause, 0, "ethtool/tx_priority_0_xoff.nic"),
    (Kpi::PfcTxPause, 0, "ethtool/tx_priority_1_xoff.nic"),
    (Kpi::PfcTxPause, 0, "ethtool/tx_priority_2_xoff.nic"),
    (Kpi::PfcTxPause, 0, "ethtool/tx_priority_3_xoff.nic"),
    (Kpi::PfcTxPause, 0, "ethtool/tx_priority_4_xoff.nic"),
    (Kpi::PfcTxPause, 0, "ethtool/tx_priority_5_xoff.nic"),
    (Kpi::PfcTxPause, 0, "ethtool/tx_priority_6_xoff.nic"),
    (Kpi::PfcTxPause, 0, "ethtool/tx_priority_7_xoff.nic"),
    (Kpi::PfcTxPause, 1, "ethtool/tx_pause_ctrl_phy"),
    (Kpi::PfcTxPause, 1, "ethtool/tx_pause_frames"),
    (Kpi::PfcTxPause, 1, "ethtool/link_xoff_tx"),
    // Retransmission events at the requester.
    (Kpi::Retransmissions, 0, "hw_counters/completer_retry_err"), // rxe: retry sequences started
    (Kpi::Retransmissions, 0, "hw_counters/local_ack_timeout_err"), // mlx5: ACK timer expiries
    (Kpi::Retransmissions, 0, "hw_counters/roce_adp_retrans"),    // mlx5: adaptive retransmissions
    (Kpi::Retransmissions, 0, "hw_counters/to_retransmits"),      // bnxt_re: timeout retransmits
    // Out-of-sequence requests at the responder.
    (Kpi::OutOfSequence, 0, "hw_counters/out_of_sequence"), // mlx5
    (Kpi::OutOfSequence, 0, "hw_counters/out_of_seq_request"), // rxe
    (Kpi::OutOfSequence, 0, "hw_counters/oos_drop_count"),  // bnxt_re
    // Sequence-error NAKs received at the requester.
    (Kpi::PacketSeqErrors, 0, "hw_counters/packet_seq_err"), // mlx5
    (Kpi::PacketSeqErrors, 0, "hw_counters/rcvd_seq_err"),   // rxe
    (Kpi::PacketSeqErrors, 0, "hw_counters/seq_err_naks_rcvd"), // bnxt_re
    (Kpi::PacketSeqErrors, 0, "hw_counters/Nak Sequence Error"), // irdma gen3
    // Port and link errors.
    (Kpi::PortErrors, 0, "counters/port_rcv_errors"),
    (Kpi::PortErrors, 0, "counters/symbol_error"),
    (Kpi::PortErrors, 0, "counters/link_downed"),
    (Kpi::PortErrors, 0, "counters/link_error_recovery"),
    (Kpi::PortErrors, 0, "counters/port_xmit_discards"),
    (
        Kpi::PortErrors,
        0,
        "counters/port_rcv_remote_physical_errors",
    ),
    (Kpi::PortErrors, 0, "counters/local_link_integrity_errors"),
    (
        Kpi::PortErrors,
        0,
        "counters/excessive_buffer_overrun_errors",
    ),
    (Kpi::PortErrors, 0, "hw_counters/link_downed"), // rxe
    (Kpi::PortErrors, 0, "hw_counters/send_err"),    // rxe: packets the netdev refused
    (Kpi::PortErrors, 0, "hw_counters/rx_roce_errors"), // bnxt_re
    (Kpi::PortErrors, 0, "hw_counters/rx_roce_discards"), // bnxt_re
    // Completions in error / QPs moved to the error state.
    (Kpi::QpErrors, 0, "hw_counters/retry_exceeded_err"), // rxe
    (Kpi::QpErrors, 0, "hw_counters/retry_rnr_exceeded_err"), // rxe
    (Kpi::QpErrors, 0, "hw_counters/req_cqe_error"),      // mlx5, bnxt_re (new)
    (Kpi::QpErrors, 0, "hw_counters/resp_cqe_error"),     // mlx5, bnxt_re (new)
    (Kpi::QpErrors, 0, "hw_counters/max_retry_exceeded"), // bnxt_re (old)
    (Kpi::QpErrors, 0, "hw_counters/unrecoverable_err"),  // bnxt_re (old)
];

/// Every counter key some KPI is built from, with the KPI's field name and
/// tier, in table order (for docs and tests).
pub fn kpi_counter_keys() -> Vec<(&'static str, u8, &'static str)> {
    KPI_COUNTERS
        .iter()
        .map(|&(kpi, tier, key)| (field_name(kpi), tier, key))
        .collect()
}

/// The [`CounterKpis`] field a KPI fills.
fn field_name(kpi: Kpi) -> &'static str {
    match kpi {
        Kpi::EcnMarked => "ecn_marked_packets",
        Kpi::CnpSent => "cnp_sent",
        Kpi::CnpHandled => "cnp_handled",
        Kpi::PfcRxPause => "pfc_rx_pause",
        Kpi::PfcTxPause => "pfc_tx_pause",
        Kpi::Retransmissions => "retransmissions",
        Kpi::OutOfSequence => "out_of_sequence",
        Kpi::PacketSeqErrors => "packet_seq_errors",
        Kpi::PortErrors => "port_errors",
        Kpi::QpErrors => "qp_errors",
    }
}

/// The KPIs from counter deltas. `raw` holds the known deltas; `unknown`
/// the keys that were read but whose delta is unknown (see module docs).
pub fn map_kpis(raw: &BTreeMap<String, i64>, unknown: &BTreeSet<String>) -> CounterKpis {
    let value = |kpi: Kpi| -> Option<i64> {
        let present = |key: &str| raw.contains_key(key) || unknown.contains(key);
        let tier = KPI_COUNTERS
            .iter()
            .filter(|&&(k, _, key)| k == kpi && present(key))
            .map(|&(_, tier, _)| tier)
            .min()?;
        let mut sum = 0i64;
        for &(_, _, key) in KPI_COUNTERS
            .iter()
            .filter(|&&(k, t, key)| k == kpi && t == tier && present(key))
        {
            sum = sum.saturating_add(*raw.get(key)?);
        }
        Some(sum)
    };
    CounterKpis {
        ecn_marked_packets: value(Kpi::EcnMarked),
        cnp_sent: value(Kpi::CnpSent),
        cnp_handled: value(Kpi::CnpHandled),
        pfc_rx_pause: value(Kpi::PfcRxPause),
        pfc_tx_pause: value(Kpi::PfcTxPause),
        retransmissions: value(Kpi::Retransmissions),
        out_of_sequence: value(Kpi::OutOfSequence),
        packet_seq_errors: value(Kpi::PacketSeqErrors),
        port_errors: value(Kpi::PortErrors),
        qp_errors: value(Kpi::QpErrors),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn deltas(pairs: &[(&str, i64)]) -> BTreeMap<String, i64> {
        pairs.iter().map(|&(k, v)| (k.to_string(), v)).collect()
    }

    #[test]
    fn no_counters_means_unknown_not_zero() {
        let k = map_kpis(&BTreeMap::new(), &BTreeSet::new());
        assert_eq!(k, CounterKpis::default());
        assert_eq!(k.ecn_marked_packets, None);
    }

    #[test]
    fn sums_present_counters() {
        let raw = deltas(&[
            ("hw_counters/np_ecn_marked_roce_packets", 40),
            ("hw_counters/np_cnp_sent", 0),
            ("hw_counters/local_ack_timeout_err", 2),
            ("hw_counters/roce_adp_retrans", 3),
            ("counters/port_rcv_errors", 1),
            ("counters/symbol_error", 0),
        ]);
        let k = map_kpis(&raw, &BTreeSet::new());
        assert_eq!(k.ecn_marked_packets, Some(40));
        assert_eq!(k.cnp_sent, Some(0));
        assert_eq!(k.cnp_handled, None);
        assert_eq!(k.retransmissions, Some(5));
        assert_eq!(k.port_errors, Some(1));
    }

    #[test]
    fn lower_tier_wins() {
        let raw = deltas(&[
            ("ethtool/rx_prio3_pause", 7),
            ("ethtool/rx_prio4_pause", 1),
            ("ethtool/rx_pause_ctrl_phy", 100),
            ("ethtool/tx_pause_ctrl_phy", 9),
        ]);
        let k = map_kpis(&raw, &BTreeSet::new());
        assert_eq!(k.pfc_rx_pause, Some(8));
        assert_eq!(k.pfc_tx_pause, Some(9));
    }

    #[test]
    fn an_unknown_delta_makes_the_kpi_unknown() {
        let raw = deltas(&[("hw_counters/np_cnp_sent", 4)]);
        let unknown: BTreeSet<String> = ["hw_counters/rp_cnp_handled".to_string()].into();
        let k = map_kpis(&raw, &unknown);
        assert_eq!(k.cnp_sent, Some(4));
        assert_eq!(k.cnp_handled, None);
    }

    #[test]
    fn keys_are_unique_and_prefixed() {
        let mut seen = BTreeSet::new();
        for (_, _, key) in kpi_counter_keys() {
            assert!(seen.insert(key), "{key} twice");
            assert!(
                key.starts_with("counters/")
                    || key.starts_with("hw_counters/")
                    || key.starts_with("ethtool/"),
                "{key}"
            );
        }
    }
}
