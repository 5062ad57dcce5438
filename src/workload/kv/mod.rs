//! KV-cache transfer workloads (draft §10.1, Table 8, Appendix E): model
//! shapes and the S_KV formula, engine page layouts, seeded free lists with
//! fragmentation, per-request descriptor plans and the modelled prefill
//! time.
//!
//! The usual path: parse a [`KvModel`] and a [`KvLayout`], build a
//! [`KvPlanner`] from a [`KvPlanSpec`], call [`KvPlanner::plan`] once per
//! request and post its `wrs`, layer group by layer group as
//! [`PrefillModel::layer_done_ns`] releases them. All plain data: no verbs,
//! no threads, no clocks; the only I/O is reading a prefill table file.
//! docs/workloads/kv.md describes the formulas and what each layout mimics.

pub mod error;
pub mod layout;
pub mod model;
pub mod plan;
pub mod pool;
pub mod prefill;
pub mod prompts;

pub use error::KvError;
pub use layout::{KvLayout, PoolGeometry};
pub use model::KvModel;
pub use plan::{descriptor_formula, Descriptor, KvPlanSpec, KvPlanner, RequestPlan};
pub use pool::BlockPool;
pub use prefill::PrefillModel;
pub use prompts::default_prompts;
