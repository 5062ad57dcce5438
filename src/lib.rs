//! infab: a verbs-level benchmark suite for RDMA/RoCEv2 fabrics that carry
//! LLM-inference traffic (KV-cache transfers, incast, MoE AllToAll).
//!
//! Layers, each calling only the one below it:
//! `cli` → `suite` → `engine` (+ `control`) → `verbs`. `stats` and `report`
//! are leaves that take plain data and know nothing of verbs. `sysinfo`
//! reads the host's configuration and NIC counters from /sys, /proc and a
//! few commands, into `report` types.
//!
//! `unsafe` is denied everywhere but in [`verbs`], the only module that calls
//! the raw rdma-core bindings.
#![deny(unsafe_code)]
#![warn(missing_docs)]

pub mod cli;
pub mod cluster;
pub mod compare;
pub mod control;
pub mod engine;
pub mod launch;
pub mod patterns;
pub mod report;
pub mod results;
pub mod stats;
pub mod suite;
pub mod sysinfo;
pub mod topology;
pub mod validate;
pub mod verbs;
pub mod workload;
