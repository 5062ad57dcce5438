//! The multi-rank runtime: one infab process per node, each running its
//! ranks as pinned threads; node 0 also hosts the rendezvous (the
//! [`Coordinator`]). Nodes register their ranks' devices, receive the rank
//! table, set up and connect only the QPs a pattern's flows need, and start
//! every trial together at an agreed time (barrier, then start-at on each
//! node's own clock, corrected by the measured offset).
//!
//! This module moves control messages and runs the engine on each node. It
//! does not decide who sends to whom (`patterns`) or how trials become
//! results (`suite`). Every wait has a deadline and every failure names the
//! node.

mod coordinator;
mod error;
mod kv_node;
mod node;
mod protocol;
mod serving_node;

pub use coordinator::{Coordinator, Expectation, NodeLink};
pub use error::ClusterError;
pub use node::{host_name, node_system, run_node, NodeOptions, NodeRole};
pub use protocol::{
    ClusterMessage, Flow, FlowEnd, FlowTrial, Join, KvPointSpec, KvSideTrial, NodeTrial, PointSpec,
    RankDispatchTrial, RankInfo, RoleRanks, SeriesRequest, ServingPointSpec, ServingWorkerTrial,
    Side, TransferRecord, TrialWork, CLUSTER_PROTOCOL_VERSION,
};
