//! Results: the one serde structure every test writes (mirroring
//! `results-schema/infab-results.schema.json`), and its exporters (JSON
//! file, human table), and `infab report`'s reading of results files back
//! into charts, Markdown, HTML and CSV (load.rs, document.rs, plot/,
//! report_files.rs). Plain data only: nothing here knows of verbs.

mod alltoall;
mod contention;
mod counters;
mod decode;
mod document;
mod fabric;
mod fabric_kpi;
mod facts;
mod html;
mod json;
mod json_format;
mod kpi;
mod kpi_csv;
mod kv;
mod kv_kpi;
mod load;
mod markdown;
mod moe_kpi;
mod overview;
pub mod plot;
mod report_files;
mod result;
mod series;
mod soak;
mod system;
mod system_report;
mod table;
mod units;
mod workload;

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
pub use result::{
    BackgroundResult, ClockLatency, ClockReport, ConfigResult, ConfigSummary, CpuUse,
    EndpointsReport, LoadPoint, LoadSweep, PollReport, QpResult, RunParameters, RunReport,
    ToolInfo, TrialResult, SCHEMA_VERSION,
};
pub use series::{
    marking_onset, ClassAcrossTrials, ClassConvergence, ClassSeries, ConvergenceOrder,
    ConvergenceReport, ConvergenceTrial, CounterSeries, MarkingOnset, OnsetSignal, WindowCounters,
};
pub use soak::{ProcessResources, ProcessSample, RdmaResources, SoakReport, SoakSample, SoakTrend};
pub use system::{DeviceConfig, HugePages, PrioritySetting, SystemConfig, UNKNOWN};
pub(crate) use units::{human_bytes, human_ns, qp_count};

pub use document::{
    build_document, chart_file_name, Block, Chart, FileSection, ReportDocument, Table,
};
pub use fabric_kpi::{counter_rows, incast_rows, pairs_rows, CounterRow, IncastRow, PairsRow};
pub use html::render_html;
pub use kpi::{kpi_rows, trial_rows, KpiRow, TrialRow};
pub use kpi_csv::{
    write_alltoall_csv, write_contention_csv, write_counters_csv, write_incast_csv, write_kpis_csv,
    write_kv_csv, write_pairs_csv, write_trials_csv,
};
pub use kv_kpi::{kv_rows, KvRow};
pub use load::{load_report, parse_report, LoadError};
pub use markdown::render_markdown;
pub use moe_kpi::{alltoall_rows, contention_rows, AllToAllRow, ContentionRow};
pub use report_files::{write_report, ReportError, ReportFormat};
pub use table::{render_fabric_table, render_table};
