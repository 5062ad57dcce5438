//! NIC counter deltas over a trial, and the congestion KPIs of the draft
//! (sections 4.3, 8, 13.1) derived from them. Plain data only;
//! `crate::sysinfo` reads the counters and maps names to KPIs (see
//! docs/counters.md for the mapping table).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// How every counter of one device port moved between two snapshots.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CounterDeltas {
    /// RDMA device name.
    pub device: String,
    /// Port number (1-based).
    pub port: u8,
    /// Netdev whose `ethtool -S` counters were read; `None` when skipped.
    pub netdev: Option<String>,
    /// Time between the two snapshots, nanoseconds.
    pub elapsed_ns: u64,
    /// after − before for every counter read in both snapshots, keyed by
    /// source and name: "counters/port_xmit_data", "hw_counters/np_cnp_sent",
    /// "ethtool/rx_prio3_pause". A counter that went backwards is left out
    /// (and named in `unavailable`).
    pub raw: BTreeMap<String, i64>,
    /// What could not be read or subtracted, and why; one line each.
    pub unavailable: Vec<String>,
    /// The draft's KPIs, from `raw`.
    pub kpis: CounterKpis,
}

/// Congestion and error KPIs over one trial.
///
/// Each is the sum of the deltas of the counters the driver exposes for it,
/// or `None` when the device has no known counter for it (which is not the
/// same as 0), or when one of those counters went backwards.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct CounterKpis {
    /// RoCE packets that arrived ECN-CE marked (notification point).
    pub ecn_marked_packets: Option<i64>,
    /// CNPs sent by the notification point.
    pub cnp_sent: Option<i64>,
    /// CNPs received and acted on by the reaction point.
    pub cnp_handled: Option<i64>,
    /// PAUSE frames received: PFC frames summed over priorities, else
    /// link-level pause frames.
    pub pfc_rx_pause: Option<i64>,
    /// PAUSE frames sent, as `pfc_rx_pause`.
    pub pfc_tx_pause: Option<i64>,
    /// Retransmission events at the requester (timeouts, retry sequences).
    pub retransmissions: Option<i64>,
    /// Out-of-sequence requests seen at the responder.
    pub out_of_sequence: Option<i64>,
    /// Sequence-error NAKs received at the requester.
    pub packet_seq_errors: Option<i64>,
    /// Link and port errors (receive errors, symbol errors, link downs,
    /// discards).
    pub port_errors: Option<i64>,
    /// Work requests that completed in error or moved a QP to the error
    /// state (retries exceeded, remote access errors, ...).
    pub qp_errors: Option<i64>,
}
