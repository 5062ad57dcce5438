//! The results contract: the serde types every test writes and every
//! reader reads, mirroring `results-schema/infab-results.schema.json`
//! field for field ([`RunReport`] is one file), with the file's JSON
//! writer ([`write_json`]) and reader ([`load_report`], which checks the
//! schema version and still reads the older 1.x forms).
//!
//! Plain data only: nothing here measures, renders or knows of verbs.
//! The suite fills these types in, `report` renders them (tables,
//! Markdown, HTML, SVG, CSV) and `compare` judges two of them; the schema
//! test (`tests/schema.rs`) holds the two sides together. Field names carry
//! their units: every latency in nanoseconds, every rate per second,
//! GB = 10⁹ bytes.

mod alltoall;
mod contention;
mod counters;
mod decode;
mod fabric;
mod facts;
mod json;
mod json_format;
mod kv;
mod load;
mod run;
mod series;
mod serving;
mod soak;
mod system;
mod tiers;

pub use alltoall::{
    AllToAllPhase, AllToAllPoint, AllToAllSummary, AllToAllTrial, MoeReport, RankDispatchResult,
};
pub use contention::{ContentionPenalty, ContentionPhase, ContentionReport, ContentionTrial};
pub use counters::{CounterDeltas, CounterKpis};
pub use decode::{DecodeCondition, DecodeStepsReport, DecodeTrial, STALL_NS};
pub use fabric::{
    ClusterReport, DutReport, IncastPoint, IncastSender, IncastSummary, IncastTrial, NodeCounters,
    NodeReport, PairResult, PairSummary, PairsPoint, PairsSummary, PairsTrial, RankReport,
    RoleDevice, TransferResult,
};
pub use facts::{DeviceFacts, DeviceLimits, GidChoice};
pub use json::{write_json, JsonError};
pub use kv::{KvPoint, KvReport, KvRequestResult, KvSummary, KvTrial, TransferShare};
pub use load::{load_report, parse_report, LoadError};
pub use run::{
    BackgroundResult, ClockLatency, ClockReport, ConfigResult, ConfigSummary, CpuUse,
    EndpointsReport, LoadPoint, LoadSweep, MemoryReport, PerClock, PollReport, QpResult,
    RunParameters, RunReport, ToolInfo, TrialResult, SCHEMA_VERSION,
};
pub use series::{
    marking_onset, ClassAcrossTrials, ClassConvergence, ClassSeries, ConvergenceOrder,
    ConvergenceReport, ConvergenceTrial, CounterSeries, MarkingOnset, OnsetSignal, WindowCounters,
};
pub use serving::{
    BurstStats, ServingPoint, ServingReport, ServingRequestResult, ServingSummary, ServingTrial,
    TenantResult, WorkerShare,
};
pub use soak::{ProcessResources, ProcessSample, RdmaResources, SoakReport, SoakSample, SoakTrend};
pub use system::{
    DeviceConfig, GpuConfig, GpuInfo, GpuNicAffinity, HugePages, PrioritySetting, SystemConfig,
    UNKNOWN,
};
pub use tiers::{TierPoint, TierResult, TiersReport, DRAM_DRAM, GPU_GPU};
