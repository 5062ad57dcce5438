//! Failures of a multi-node run. Every one names the node concerned.

use crate::control::ControlError;
use crate::engine::EngineError;
use crate::verbs::VerbsError;

/// A failure of the rendezvous or of a node.
#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    /// Node 0 cannot open the rendezvous port.
    #[error("cannot listen for the rendezvous on {addr}: {cause}; another infab (or another program) may hold the port: pick another with --master HOST:PORT, or the address is not this host's")]
    Bind {
        /// The address.
        addr: String,
        /// The errno.
        cause: std::io::Error,
    },
    /// A node never joined.
    #[error("node {nodes} did not join the rendezvous at {master} within {waited_s:.0} s (joined: {joined}); start infab on it with its node rank (--node-rank, NODE_RANK, SLURM_NODEID or OMPI_COMM_WORLD_RANK), the same node count and the same rendezvous address")]
    NodeMissing {
        /// The missing node rank(s), with names.
        nodes: String,
        /// The rendezvous address.
        master: String,
        /// How long node 0 waited.
        waited_s: f64,
        /// The nodes that did join.
        joined: String,
    },
    /// Node 0's rendezvous could not be reached.
    #[error("node 0's rendezvous at {master} did not answer within {waited_s:.0} s: {cause}; start node 0 (node rank 0) there, or fix --master / MASTER_ADDR")]
    MasterUnreachable {
        /// The rendezvous address.
        master: String,
        /// How long this node tried.
        waited_s: f64,
        /// The last error.
        cause: String,
    },
    /// A node's control connection failed or timed out.
    #[error("node {node} ({name}) {during}: {cause}")]
    NodeLost {
        /// The node rank.
        node: u32,
        /// Its name.
        name: String,
        /// What the run was doing.
        during: String,
        /// The channel error.
        cause: ControlError,
    },
    /// A node reported a failure.
    #[error("node {node} ({name}) failed: {message}")]
    NodeFailed {
        /// The node rank.
        node: u32,
        /// Its name.
        name: String,
        /// Its message.
        message: String,
    },
    /// The coordinator refused this node.
    #[error("the rendezvous refused this node: {0}")]
    Rejected(String),
    /// The coordinator stopped the run.
    #[error("the run was stopped by node 0: {0}")]
    Aborted(String),
    /// From the control channel (this node's own connection).
    #[error(transparent)]
    Control(#[from] ControlError),
    /// From the engine.
    #[error(transparent)]
    Engine(#[from] EngineError),
    /// From verbs setup.
    #[error(transparent)]
    Verbs(#[from] VerbsError),
    /// A request that cannot run.
    #[error("{0}")]
    Invalid(String),
}
