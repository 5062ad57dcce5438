//! The serde shape of a topology file.

use serde::{Deserialize, Serialize};

use super::Role;

/// A whole topology file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Topology {
    /// The device under test, for the report.
    #[serde(default)]
    pub dut: DutInfo,
    /// The nodes; index = node rank.
    #[serde(default)]
    pub nodes: Vec<NodeSpec>,
}

/// What the report says about the device under test (draft section 14).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DutInfo {
    /// Free text: what is being tested.
    #[serde(default)]
    pub description: String,
    /// Fabric topology, e.g. "2-tier Clos", "back-to-back".
    #[serde(default)]
    pub topology: String,
    /// Link speeds, e.g. "400GbE host links, 800GbE spine links".
    #[serde(default)]
    pub link_speed: String,
    /// Switch ASIC and software, when a switch is in the path.
    #[serde(default)]
    pub switch: String,
    /// Anything else the operator wants on record.
    #[serde(default)]
    pub notes: String,
}

/// One node (one infab process).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NodeSpec {
    /// A unique name, used in errors ("node 1 (prefill0) did not join").
    pub name: String,
    /// A single role (shorthand for `roles = [role]`).
    #[serde(default)]
    pub role: Option<Role>,
    /// The node's roles.
    #[serde(default)]
    pub roles: Vec<Role>,
    /// Control-plane address: host name or IP (node 0's hosts the rendezvous).
    pub address: String,
    /// RDMA device: name, netdev or IP address.
    pub device: String,
    /// Device port (default 1).
    #[serde(default)]
    pub port: Option<u8>,
    /// GID index (default: automatic RoCEv2 IPv4 choice).
    #[serde(default)]
    pub gid_index: Option<u8>,
    /// Ranks on this node (default: what the test needs).
    #[serde(default)]
    pub ranks: Option<u32>,
}

impl NodeSpec {
    /// The node's roles, `role` and `roles` combined, sorted, deduplicated.
    pub fn roles(&self) -> Vec<Role> {
        let mut roles: Vec<Role> = self.roles.iter().copied().chain(self.role).collect();
        roles.sort();
        roles.dedup();
        roles
    }
}
