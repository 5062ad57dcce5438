//! Synthetic workloads: what traffic to generate, computed as plain data.
//!
//! [`moe`] turns an MoE model shape, a routing mode and a seed into the bytes
//! each EP rank sends each rank per dispatch (draft §7, Appendix D);
//! [`pacing`] spaces the messages of a rate-paced background stream (§5.2,
//! §7.4, §10.4). Everything here is pure: no I/O, no verbs, no threads, no
//! clocks. The engine posts what these modules compute; this module never
//! posts anything itself.

pub mod error;
pub mod moe;
pub mod pacing;

pub use error::WorkloadError;
pub use pacing::{fraction_of_capacity, paced_burst_bytes, TokenBucket};
