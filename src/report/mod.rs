//! Results: the one serde structure every test writes (mirroring
//! `results-schema/infab-results.schema.json`), and its exporters (JSON
//! file, human table). Plain data only: nothing here knows of verbs.

mod counters;
mod facts;
mod json;
mod result;
mod system;
mod table;

pub use counters::{CounterDeltas, CounterKpis};
pub use facts::{DeviceFacts, DeviceLimits, GidChoice};
pub use json::{write_json, JsonError};
pub use result::{
    ClockLatency, ClockReport, ConfigResult, ConfigSummary, CpuUse, EndpointsReport, QpResult,
    RunParameters, RunReport, ToolInfo, TrialResult, SCHEMA_VERSION,
};
pub use system::{DeviceConfig, HugePages, PrioritySetting, SystemConfig, UNKNOWN};
pub use table::render_table;
