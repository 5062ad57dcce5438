//! Rendering results: the human table a run prints, and `infab report`'s
//! charts, Markdown, HTML and CSV from results files (document.rs builds
//! the format-neutral document, plot/ draws each test's charts, markdown.rs
//! and html.rs format it, report_files.rs writes the folder). The result
//! types themselves are [`crate::results`], re-exported here so
//! `infab::report::RunReport` and friends keep working. Plain data only:
//! nothing here knows of verbs.

mod blocks;
mod document;
mod fabric_kpi;
pub(crate) mod html;
mod kpi;
mod kpi_csv;
mod kv_kpi;
mod markdown;
mod moe_kpi;
mod overview;
pub mod plot;
mod report_files;
mod system_report;
mod table;
mod tiers;
pub(crate) mod units;
mod workload;

pub use crate::results::{
    load_report, marking_onset, parse_report, write_json, AllToAllPhase, AllToAllPoint,
    AllToAllSummary, AllToAllTrial, BackgroundResult, BurstStats, ClockLatency, ClockReport,
    ClusterReport, ConfigResult, ConfigSummary, ContentionPenalty, ContentionPhase,
    ContentionReport, ContentionTrial, CounterDeltas, CounterKpis, CpuUse, DecodeCondition,
    DecodeStepsReport, DecodeTrial, DeviceConfig, DeviceFacts, DeviceLimits, DutReport,
    EndpointsReport, GidChoice, HugePages, IncastPoint, IncastSender, IncastSummary, IncastTrial,
    JsonError, KvPoint, KvReport, KvRequestResult, KvSummary, KvTrial, LoadError, LoadPoint,
    LoadSweep, MoeReport, NodeCounters, NodeReport, PairResult, PairSummary, PairsPoint,
    PairsSummary, PairsTrial, PerClock, PollReport, PrioritySetting, ProcessResources,
    ProcessSample, QpResult, RankDispatchResult, RankReport, RdmaResources, RoleDevice,
    RunParameters, RunReport, ServingPoint, ServingReport, ServingRequestResult, ServingSummary,
    ServingTrial, SoakReport, SoakSample, SoakTrend, SystemConfig, ToolInfo, TransferResult,
    TransferShare, TrialResult, WorkerShare, SCHEMA_VERSION, STALL_NS, UNKNOWN,
};
pub(crate) use units::{human_bytes, human_ns, human_rate, qp_count};

pub use crate::results::{
    GpuConfig, GpuInfo, GpuNicAffinity, MemoryReport, TierPoint, TierResult, TiersReport,
    DRAM_DRAM, GPU_GPU,
};
pub use blocks::{Block, Chart, Table};
pub use document::{build_document, chart_file_name, FileSection, ReportDocument};
pub use fabric_kpi::{counter_rows, incast_rows, pairs_rows, CounterRow, IncastRow, PairsRow};
pub use html::render_html;
pub use kpi::{kpi_rows, trial_rows, KpiRow, TrialRow};
pub use kpi_csv::{
    write_alltoall_csv, write_contention_csv, write_counters_csv, write_incast_csv, write_kpis_csv,
    write_kv_csv, write_pairs_csv, write_trials_csv,
};
pub use kv_kpi::{kv_rows, KvRow};
pub use markdown::render_markdown;
pub use moe_kpi::{alltoall_rows, contention_rows, AllToAllRow, ContentionRow};
pub use report_files::{write_report, ReportError, ReportFormat};
pub use table::{render_fabric_table, render_table};
pub use tiers::{render_tiers_table, tiers_table};
