//! MoE expert-parallelism dispatch workloads (draft §7, Appendix D): model
//! shapes, the T_dispatch formula, routing modes, a seeded router, expert
//! placement and the per-pair dispatch matrix.
//!
//! The usual path: parse a [`MoeConfig`] and a [`RoutingMode`], call
//! [`Router::route`] for N ranks of B tokens, then [`DispatchMatrix::build`];
//! take [`DispatchMatrix::combine`] for the return direction and
//! [`DispatchMatrix::padded`] for low-latency dispatch. Posting the bytes is
//! the engine's job, not this module's.

pub mod config;
pub mod formula;
pub mod matrix;
pub mod placement;
pub mod router;
pub mod routing;

pub use config::MoeConfig;
pub use formula::{alltoall_busbw_factor, rank_dispatch_bytes, t_dispatch_bytes};
pub use matrix::{static_slot_bytes, DispatchCopies, DispatchMatrix};
pub use placement::ExpertPlacement;
pub use router::{Router, Routing};
pub use routing::RoutingMode;
