//! Synthetic workloads: what traffic to generate, computed as plain data.
//!
//! [`moe`] turns an MoE model shape, a routing mode and a seed into the bytes
//! each EP rank sends each rank per dispatch (draft §7, Appendix D); [`kv`]
//! turns a KV-cache model shape, a page layout and a seed into the copy
//! descriptors of each prefill-to-decode transfer, with the modelled prefill
//! time (§10.1, Table 8, Appendix E); [`lengths`] draws prompt and output
//! lengths (fixed, uniform, Zipf, log-normal, trace replay); [`pacing`] spaces the messages of a
//! rate-paced background stream (§5.2, §7.4, §10.4). Everything here is
//! pure: no verbs, no threads, no clocks, and no I/O except reading a
//! prefill table file in [`kv::prefill`]. The engine posts what these
//! modules compute; this module never posts anything itself.

pub mod arrivals;
pub mod error;
pub mod kv;
pub mod lengths;
pub mod moe;
pub mod pacing;
pub mod serving;

pub use arrivals::Arrival;
pub use error::WorkloadError;
pub use lengths::{LengthDist, TraceField};
pub use pacing::{fraction_of_capacity, paced_burst_bytes, TokenBucket};
