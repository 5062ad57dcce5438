//! Topology files (`topologies/*.toml`): which nodes take part in a
//! multi-rank test, their addresses, devices and roles, and the description
//! of the device under test (DUT) that goes into every report.
//!
//! This module parses and validates; it opens no device and sends no
//! packet. Node order is the node rank: `nodes[0]` is node 0 and hosts the
//! rendezvous unless `--master` says otherwise.
//!
//! ```toml
//! [dut]
//! description = "2-tier Clos, 400G, ..."
//!
//! [[nodes]]
//! name = "decode0"
//! roles = ["decode"]         # or role = "decode"; roles: prefill, decode, ep
//! address = "198.18.0.1"     # control address (the rendezvous binds here on node 0)
//! device = "rxe0"            # RDMA device: name, netdev or IP
//! ```

mod file;

use std::collections::BTreeSet;
use std::fmt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

pub use file::{DutInfo, NodeSpec, Topology};

/// What a node's ranks do in a test.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Sends KV blocks (pairs and incast senders).
    Prefill,
    /// Receives KV blocks (pairs receivers, the incast target).
    Decode,
    /// Expert-parallel ranks (AllToAll): send and receive.
    Ep,
}

impl Role {
    /// The name in files and reports.
    pub fn name(self) -> &'static str {
        match self {
            Role::Prefill => "prefill",
            Role::Decode => "decode",
            Role::Ep => "ep",
        }
    }

    /// Parses a role name.
    pub fn parse(text: &str) -> Option<Role> {
        match text.trim().to_ascii_lowercase().as_str() {
            "prefill" | "p" => Some(Role::Prefill),
            "decode" | "d" => Some(Role::Decode),
            "ep" => Some(Role::Ep),
            _ => None,
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A topology file that cannot be used, with the fix.
#[derive(Debug, thiserror::Error)]
pub enum TopologyError {
    /// The file cannot be read.
    #[error("cannot read topology file {path}: {cause}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        cause: std::io::Error,
    },
    /// The file is not valid TOML or has unknown/mistyped fields.
    #[error("topology file {path} is not valid: {detail}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// The parser's message (line, column, field).
        detail: String,
    },
    /// The file parses but describes an impossible topology.
    #[error("topology file {path}: {detail}")]
    Invalid {
        /// The file.
        path: PathBuf,
        /// What is wrong and how to fix it.
        detail: String,
    },
}

impl Topology {
    /// Reads and validates a topology file.
    pub fn load(path: &Path) -> Result<Topology, TopologyError> {
        let text = std::fs::read_to_string(path).map_err(|cause| TopologyError::Read {
            path: path.to_path_buf(),
            cause,
        })?;
        Topology::parse(&text, path)
    }

    /// Parses and validates topology text; `path` names it in errors.
    pub fn parse(text: &str, path: &Path) -> Result<Topology, TopologyError> {
        let topology: Topology = toml::from_str(text).map_err(|err| TopologyError::Parse {
            path: path.to_path_buf(),
            detail: err.to_string().trim().replace('\n', " "),
        })?;
        topology
            .validate()
            .map_err(|detail| TopologyError::Invalid {
                path: path.to_path_buf(),
                detail,
            })?;
        Ok(topology)
    }

    fn validate(&self) -> Result<(), String> {
        if self.nodes.is_empty() {
            return Err(
                "no [[nodes]]: list at least one node (name, roles, address, device)".into(),
            );
        }
        let mut names = BTreeSet::new();
        let mut ends = BTreeSet::new();
        for (index, node) in self.nodes.iter().enumerate() {
            let label = format!("node {index} ({})", node.name);
            if node.name.trim().is_empty() {
                return Err(format!("node {index} has an empty name"));
            }
            if !names.insert(node.name.as_str()) {
                return Err(format!(
                    "two nodes are named '{}'; names must be unique",
                    node.name
                ));
            }
            if node.roles().is_empty() {
                return Err(format!(
                    "{label} has no role: add `roles = [\"prefill\"]` (or decode, ep)"
                ));
            }
            if node.address.trim().is_empty() {
                return Err(format!("{label} has no address"));
            }
            if node.device.trim().is_empty() {
                return Err(format!("{label} has no device (e.g. device = \"mlx5_0\")"));
            }
            if node.ranks == Some(0) {
                return Err(format!("{label}: ranks must be at least 1"));
            }
            if node.port == Some(0) {
                return Err(format!("{label}: ports are numbered from 1"));
            }
            if !ends.insert((node.address.as_str(), node.device.as_str())) {
                return Err(format!(
                    "{label} duplicates another node's address {} and device {}: each node's ranks must be distinct",
                    node.address, node.device
                ));
            }
        }
        Ok(())
    }

    /// Node ranks holding `role`, in node order.
    pub fn nodes_with(&self, role: Role) -> Vec<usize> {
        (0..self.nodes.len())
            .filter(|&i| self.nodes[i].roles().contains(&role))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Topology, TopologyError> {
        Topology::parse(text, Path::new("t.toml"))
    }

    #[test]
    fn the_shipped_topologies_are_valid() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("topologies");
        let mut seen = 0;
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.extension().is_some_and(|e| e == "toml") {
                Topology::load(&path).unwrap_or_else(|e| panic!("{e}"));
                seen += 1;
            }
        }
        assert!(seen >= 4, "expected the bed and the reference topologies");
    }

    #[test]
    fn roles_and_defaults() {
        let t = parse(
            r#"
            [dut]
            description = "bed"
            [[nodes]]
            name = "a"
            role = "decode"
            address = "198.18.0.1"
            device = "rxe0"
            [[nodes]]
            name = "b"
            roles = ["prefill", "ep"]
            address = "198.18.0.2"
            device = "rxe1"
            ranks = 4
            "#,
        )
        .unwrap();
        assert_eq!(t.nodes_with(Role::Prefill), vec![1]);
        assert_eq!(t.nodes_with(Role::Decode), vec![0]);
        assert_eq!(t.nodes[1].roles(), vec![Role::Prefill, Role::Ep]);
        assert_eq!(t.dut.description, "bed");
    }

    #[test]
    fn bad_files_say_what_is_wrong() {
        let err = |text: &str| parse(text).unwrap_err().to_string();
        assert!(err("").contains("no [[nodes]]"));
        assert!(err("[[nodes]]\nname='a'\naddress='x'\ndevice='d'").contains("no role"));
        assert!(err("[[nodes]]\nname='a'\nrole='boss'\naddress='x'\ndevice='d'").contains("boss"));
        assert!(err(
            "[[nodes]]\nname='a'\nrole='decode'\naddress='x'\ndevice='d'\n\
             [[nodes]]\nname='a'\nrole='prefill'\naddress='y'\ndevice='d'"
        )
        .contains("unique"));
        assert!(err(
            "[[nodes]]\nname='a'\nrole='decode'\naddress='x'\ndevice='d'\n\
             [[nodes]]\nname='b'\nrole='prefill'\naddress='x'\ndevice='d'"
        )
        .contains("duplicates"));
        assert!(
            err("[[nodes]]\nname='a'\nrole='decode'\naddress='x'\ndevice='d'\ncolour=1")
                .contains("colour")
        );
    }
}
