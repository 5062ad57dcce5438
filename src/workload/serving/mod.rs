//! Serving traffic as plain data (draft §3.4.2, tests 6.2, 6.4, 9.4, 10.3):
//! the per-trial schedule of a disaggregated prefill/decode pool (which
//! worker serves which request, its modelled prefill time), routing and
//! admission rules, and the page pools decode workers admit requests into
//! (prompt and output lengths come from [`crate::workload::lengths`]). Seeded and pure; the engine
//! replays the schedule in real time and moves every request's KV over
//! RDMA.

pub mod pages;
pub mod plan;
pub mod tenants;

pub use pages::PagePool;
pub use plan::{
    least_loaded, pareto_optimal, parse_multiples, plan_requests, prefill_capacity_per_s,
    Admission, PlannedRequest, PoolRatio, Route, ServingControl,
};
pub use tenants::{interference_penalty_pct, tenant_name, Tenant, MAX_TENANTS};
