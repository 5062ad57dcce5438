//! The `soak` section of a results file (IETF 13.1–13.3): one sample per
//! interval of a long run, with each process's footprint, and the trend
//! analysis that flags growth (13.2 leak detection) and instability (13.3).

use serde::{Deserialize, Serialize};

/// A soak run: its samples as they came, and what they show.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
pub struct SoakReport {
    /// The soak length asked for (`--soak`), seconds.
    pub duration_s: f64,
    /// The sampling interval (`--sample-interval`), seconds: each sample is
    /// one trial of this length.
    pub sample_interval_s: f64,
    /// Seconds from the first sample's start to the last sample's end.
    pub elapsed_s: f64,
    /// Every sample, in order (appended as each completes).
    pub samples: Vec<SoakSample>,
    /// Leading samples left out of the trend fits (allocator and page-cache
    /// warm-up): the first 10 %, at least one when there are ≥ 10.
    pub warmup_samples: usize,
    /// One trend per process and footprint metric.
    pub trends: Vec<SoakTrend>,
    /// Coefficient of variation of the per-sample throughput, percent (13.3).
    pub throughput_cv_percent: Option<f64>,
    /// (max − min) / median of the per-sample P99 latency, percent (13.1
    /// asks < 1 % variation of the P99 over the run).
    pub latency_p99_variation_percent: Option<f64>,
    /// QP errors over the whole soak (13.1: there SHOULD be none).
    pub qp_errors: u64,
    /// RDMA retransmissions over the whole soak (13.3).
    pub retransmissions: u64,
    /// Whether any footprint trend is flagged as a potential leak.
    pub leak_suspected: bool,
    /// The test-only `--soak-inject-leak` flag was on: the growth is deliberate.
    pub injected_leak: bool,
    /// One line per finding, for people.
    pub findings: Vec<String>,
}

/// One interval of a soak: the trial it ran and each process's footprint
/// at its end.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
pub struct SoakSample {
    /// Sample number (0-based).
    pub index: u32,
    /// The trial this sample is (its index in the configuration's trials,
    /// or the point's trials for multi-rank tests).
    pub trial: u32,
    /// Seconds from the soak's start to this sample's end.
    pub t_s: f64,
    /// The trial's throughput, GB/s (10⁹ B/s).
    pub throughput_gbytes_per_s: f64,
    /// The trial's P50 latency, ns (bandwidth tests: per-message completion time).
    pub latency_p50_ns: Option<f64>,
    /// The trial's P99 latency, ns.
    pub latency_p99_ns: Option<f64>,
    /// Retransmissions the NIC counters saw during the trial (all devices).
    pub retransmissions: Option<u64>,
    /// QP errors the NIC counters saw during the trial (all devices).
    pub qp_errors: Option<u64>,
    /// Each process's footprint at the sample's end.
    pub processes: Vec<ProcessSample>,
}

/// One process's footprint in a sample.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
pub struct ProcessSample {
    /// Which process: "initiator", "target", or "node N (name)".
    pub process: String,
    /// What it held.
    pub resources: ProcessResources,
}

/// A process's memory and the RDMA objects the kernel holds for it.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
pub struct ProcessResources {
    /// Resident set size (VmRSS), bytes.
    pub rss_bytes: Option<u64>,
    /// Pinned memory (VmPin: pages RDMA registrations pin), bytes.
    pub pinned_bytes: Option<u64>,
    /// Locked memory (VmLck), bytes.
    pub locked_bytes: Option<u64>,
    /// RDMA objects of this process, from `rdma -j resource show`.
    pub rdma: Option<RdmaResources>,
    /// What could not be read, and why.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub unavailable: Vec<String>,
}

/// The RDMA objects the kernel holds for one process, all devices.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
pub struct RdmaResources {
    /// Protection domains.
    pub pds: u64,
    /// Completion queues.
    pub cqs: u64,
    /// Queue pairs.
    pub qps: u64,
    /// Queue pairs in the error state (ERR or SQE).
    pub qps_in_error: u64,
    /// Memory regions.
    pub mrs: u64,
    /// Bytes registered in those regions.
    pub mr_bytes: u64,
}

/// The least-squares trend of one footprint metric of one process.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct SoakTrend {
    /// The process.
    pub process: String,
    /// The metric: "rss_bytes", "pinned_bytes", "rdma_mrs", "rdma_mr_bytes",
    /// "rdma_qps", "rdma_cqs" or "rdma_pds".
    pub metric: String,
    /// Samples fitted (after the warm-up).
    pub n: usize,
    /// Slope, metric units per hour.
    pub slope_per_hour: f64,
    /// Lower bound of the slope's 95 % interval, per hour.
    pub ci95_low_per_hour: f64,
    /// Upper bound of the slope's 95 % interval, per hour.
    pub ci95_high_per_hour: f64,
    /// The metric at the first fitted sample.
    pub first: f64,
    /// The metric at the last sample (13.2: usage at the end).
    pub last: f64,
    /// The largest value seen (13.2: maximum usage).
    pub max: f64,
    /// Flagged as a potential leak: the slope's whole 95 % interval is above
    /// zero and the fitted growth over the run exceeds the metric's
    /// tolerance (1 object for counts; 1 MiB and 1 % for bytes).
    pub leak_suspected: bool,
}
