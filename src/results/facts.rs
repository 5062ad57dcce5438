//! Plain facts about a device, port and GID, as results record them. The
//! verbs layer fills them in; this module knows nothing of verbs.

use std::net::Ipv4Addr;

use serde::{Deserialize, Serialize};

/// The GID a run uses, and why.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GidChoice {
    /// Index in the port's GID table (`-x`).
    pub index: u8,
    /// The GID in IPv6 notation.
    pub gid: String,
    /// "RoCEv2", "RoCEv1" or "IB".
    pub gid_type: String,
    /// The netdev the GID belongs to, when the kernel tells.
    pub netdev: Option<String>,
    /// The IPv4 address for an IPv4-mapped GID.
    pub ipv4: Option<Ipv4Addr>,
    /// How the GID was chosen: "auto (...)" with the rule that matched, or "user (-x)".
    pub chosen_by: String,
}

/// The limits infab checks before asking for resources.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct DeviceLimits {
    /// Maximum number of QPs.
    pub max_qp: u64,
    /// Maximum outstanding work requests per queue.
    pub max_qp_wr: u64,
    /// Maximum scatter/gather entries per work request.
    pub max_sge: u64,
    /// Maximum completion queue entries.
    pub max_cqe: u64,
    /// Largest memory region in bytes.
    pub max_mr_size: u64,
    /// Largest message one work request may carry (port `max_msg_sz`).
    pub max_msg_bytes: u64,
    /// Maximum outstanding RDMA READs a QP may initiate.
    pub max_qp_rd_atom: u64,
}

/// What a report says about a device and its port.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeviceFacts {
    /// Device name, e.g. `rxe0`.
    pub name: String,
    /// Port number (1-based).
    pub port: u8,
    /// Node GUID.
    pub node_guid: String,
    /// Firmware version (`fw_ver`).
    pub fw_ver: String,
    /// PCI vendor id.
    pub vendor_id: u32,
    /// PCI vendor part id.
    pub vendor_part_id: u32,
    /// "Ethernet" or "InfiniBand".
    pub link_layer: String,
    /// Port state, e.g. "ACTIVE".
    pub port_state: String,
    /// Active MTU in bytes (the RoCE path MTU).
    pub active_mtu_bytes: u32,
    /// Active link width as the port reports it, e.g. "4X".
    pub active_width: String,
    /// Active per-lane speed, e.g. "EDR (25 Gb/s)".
    pub active_speed: String,
    /// Line rate implied by speed × width, in Gb/s, when both are known.
    pub line_rate_gbps: Option<f64>,
    /// The GID used.
    pub gid: GidChoice,
    /// The checked limits.
    pub limits: DeviceLimits,
}
