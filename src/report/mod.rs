//! Results: the one serde structure every test writes (mirroring
//! `results-schema/infab-results.schema.json`), and its exporters (JSON
//! file, human table). Plain data only: nothing here knows of verbs.

mod fabric;
mod facts;
mod json;
mod result;
mod table;

pub use fabric::{
    ClusterReport, DutReport, IncastPoint, IncastSender, IncastSummary, IncastTrial, NodeReport,
    PairResult, PairSummary, PairsPoint, PairsSummary, PairsTrial, RankReport, RawCounterDeltas,
    RoleDevice, TransferResult,
};
pub use facts::{DeviceFacts, DeviceLimits, GidChoice};
pub use json::{write_json, JsonError};
pub use result::{
    ClockLatency, ClockReport, ConfigResult, ConfigSummary, CpuUse, EndpointsReport, QpResult,
    RunParameters, RunReport, ToolInfo, TrialResult, SCHEMA_VERSION,
};
pub use table::{render_fabric_table, render_table};
