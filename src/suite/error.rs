//! Suite errors: the engine's, the control channel's, and bad requests.

use crate::cluster::ClusterError;
use crate::control::ControlError;
use crate::engine::EngineError;
use crate::results::JsonError;
use crate::verbs::VerbsError;

/// A failure of a test run.
#[derive(Debug, thiserror::Error)]
pub enum SuiteError {
    /// From the engine.
    #[error(transparent)]
    Engine(#[from] EngineError),
    /// From the multi-rank runtime.
    #[error(transparent)]
    Cluster(#[from] ClusterError),
    /// From the control channel.
    #[error(transparent)]
    Control(#[from] ControlError),
    /// From verbs setup.
    #[error(transparent)]
    Verbs(#[from] VerbsError),
    /// Writing results.
    #[error(transparent)]
    Json(#[from] JsonError),
    /// The peer refused the session.
    #[error("the target refused the session: {0}")]
    Rejected(String),
    /// The peer failed during a trial.
    #[error("the target failed: {0}")]
    Target(String),
    /// A request that cannot run.
    #[error("{0}")]
    Invalid(String),
}
