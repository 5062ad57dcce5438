//! The result types. Field names carry their units; every latency is in
//! nanoseconds, every rate per second, GB = 1e9 bytes.

use std::collections::BTreeMap;
use std::fmt;
use std::marker::PhantomData;

use serde::de::{self, MapAccess, SeqAccess, Visitor};
use serde::{Deserialize, Deserializer, Serialize};

use crate::stats::{LatencySummary, Throughput, TrialInterval};

use super::{AllToAllPoint, ClusterReport, DeviceFacts, IncastPoint, PairsPoint, SystemConfig};

/// Version of the results format, `MAJOR.MINOR`: the major changes when a
/// reader of the old format cannot read the new one, the minor on every
/// change of what is written (1.2: per-clock values are objects keyed by
/// clock name; 1.3: endpoints may be null; 1.4: a KV prompt mix). This infab reads every 1.x file up to its own minor.
pub const SCHEMA_VERSION: &str = "1.5";

/// One value per latency clock, keyed by clock name (sorted). Written as a
/// JSON object, `{"initiator": ..., "target": ...}` (schema 1.2); files of
/// schema 1.0 and 1.1 wrote a list of `[name, value]` pairs, which reads
/// the same.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(transparent)]
pub struct PerClock<T>(BTreeMap<String, T>);

impl<T> PerClock<T> {
    /// No clock.
    pub fn new() -> Self {
        PerClock(BTreeMap::new())
    }

    /// The value of `clock`.
    pub fn get(&self, clock: &str) -> Option<&T> {
        self.0.get(clock)
    }

    /// Sets the value of `clock`.
    pub fn insert(&mut self, clock: impl Into<String>, value: T) {
        self.0.insert(clock.into(), value);
    }

    /// (clock, value) in clock-name order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &T)> {
        self.0.iter().map(|(k, v)| (k.as_str(), v))
    }

    /// Clocks held.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// No clock held.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl<T> Default for PerClock<T> {
    fn default() -> Self {
        PerClock::new()
    }
}

impl<T, K: Into<String>> FromIterator<(K, T)> for PerClock<T> {
    fn from_iter<I: IntoIterator<Item = (K, T)>>(iter: I) -> Self {
        PerClock(iter.into_iter().map(|(k, v)| (k.into(), v)).collect())
    }
}

impl<'de, T: Deserialize<'de>> Deserialize<'de> for PerClock<T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Either<T>(PhantomData<T>);

        impl<'de, T: Deserialize<'de>> Visitor<'de> for Either<T> {
            type Value = PerClock<T>;

            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("an object keyed by clock name (or, schema 1.0/1.1, a list of [clock, value] pairs)")
            }

            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                let mut out = BTreeMap::new();
                while let Some((clock, value)) = map.next_entry::<String, T>()? {
                    if out.contains_key(&clock) {
                        return Err(de::Error::custom(format!("clock \"{clock}\" twice")));
                    }
                    out.insert(clock, value);
                }
                Ok(PerClock(out))
            }

            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
                let mut out = BTreeMap::new();
                while let Some((clock, value)) = seq.next_element::<(String, T)>()? {
                    if out.contains_key(&clock) {
                        return Err(de::Error::custom(format!("clock \"{clock}\" twice")));
                    }
                    out.insert(clock, value);
                }
                Ok(PerClock(out))
            }
        }

        deserializer.deserialize_any(Either(PhantomData))
    }
}

/// The tool that wrote the file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ToolInfo {
    /// "infab".
    pub name: String,
    /// Crate version.
    pub version: String,
    /// Git commit the binary was built from, when known.
    pub git_commit: Option<String>,
}

impl ToolInfo {
    /// This binary: crate version and the commit `make` built it from.
    pub fn this_build() -> ToolInfo {
        ToolInfo {
            name: "infab".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            git_commit: option_env!("INFAB_GIT_COMMIT").map(str::to_string),
        }
    }
}

/// How a process's engine threads waited for completions.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PollReport {
    /// "spin", "yield" or "event".
    pub mode: String,
    /// Set by `--poll` (false: the default for the threads and cores).
    pub forced: bool,
    /// Engine threads the process ran at once.
    pub engine_threads: u32,
    /// Cores the process could use.
    pub cores: u32,
}

/// Everything the user asked for, after defaults and validation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunParameters {
    /// "write", "write-imm", "send" or "read".
    pub op: String,
    /// "bandwidth" or "latency".
    pub mode: String,
    /// Latency clocks measured: "initiator", "target", "pingpong".
    pub clocks: Vec<String>,
    /// Message sizes swept, bytes.
    pub sizes_bytes: Vec<u64>,
    /// QP counts swept.
    pub qps: Vec<u32>,
    /// Trials per configuration.
    pub trials: u32,
    /// Seconds per trial, when trials are timed.
    pub duration_s: Option<f64>,
    /// Messages per QP per trial, when trials are counted.
    pub iters: Option<u64>,
    /// Warmup messages per QP before the first trial of a configuration.
    pub warmup_iters: u64,
    /// Outstanding work requests per QP.
    pub tx_depth: u32,
    /// Receives kept posted per QP at the target.
    pub rx_depth: u32,
    /// A completion is requested every `cq_mod` messages.
    pub cq_mod: u32,
    /// Engine threads (lanes) at the initiator.
    pub threads: u32,
    /// Payload verification on.
    pub verify: bool,
    /// Buffers on huge pages.
    pub huge_pages: bool,
    /// Largest bytes per work request (messages above are split).
    pub max_wr_bytes: u64,
    /// Seconds without a completion before a run fails.
    pub stall_timeout_s: f64,
    /// GRH traffic class.
    pub traffic_class: u8,
    /// How the engine threads waited for completions (`--poll`); absent in
    /// files written before it was recorded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub poll: Option<PollReport>,
    /// Where each end's buffers lived and how they were registered
    /// (`--mem`, `--target-mem`); absent in files written before it was
    /// recorded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory: Option<MemoryReport>,
}

/// Where the buffers of each end lived (`host`, `huge`, `cuda:N`) and
/// how the NIC registered them (`host`: ibv_reg_mr on host memory,
/// `dmabuf`: ibv_reg_dmabuf_mr on a GPU dma-buf, `peermem`: ibv_reg_mr on
/// a device pointer through nvidia-peermem).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MemoryReport {
    /// The initiator's (sending, prefill) memory.
    pub initiator: String,
    /// The target's (receiving, decode) memory ("unknown" when an older
    /// target did not say).
    pub target: String,
    /// How the initiator's buffer was registered (absent when not known
    /// to the process that wrote the file).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub initiator_registration: Option<String>,
    /// How the target's buffer was registered.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_registration: Option<String>,
}

/// The two ends of the test.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EndpointsReport {
    /// The sending (prefill) side.
    pub initiator: DeviceFacts,
    /// The receiving (decode) side.
    pub target: DeviceFacts,
    /// Both ends ran under one kernel.
    pub same_host: bool,
}

/// How target-side times relate to initiator times.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClockReport {
    /// target − initiator, nanoseconds.
    pub offset_ns: i64,
    /// ± bound on the offset's error, nanoseconds.
    pub error_bound_ns: u64,
    /// "same-host" or "estimated".
    pub method: String,
}

/// Counts of one QP in one trial.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct QpResult {
    /// QP index in the configuration (0-based).
    pub qp: u32,
    /// Messages completed.
    pub messages: u64,
    /// Bytes completed.
    pub bytes: u64,
    /// Rate over the trial's duration, GB/s.
    pub gbytes_per_s: f64,
}

/// CPU use during a trial.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CpuUse {
    /// Initiator engine threads, percent of one core (may exceed 100).
    pub initiator_percent: f64,
    /// Target worker thread, percent of one core (0: passive target).
    pub target_percent: f64,
}

/// A latency summary under one named clock.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClockLatency {
    /// "initiator", "target", "pingpong" or "message-completion" (bandwidth mode).
    pub clock: String,
    /// The percentiles.
    pub summary: LatencySummary,
}

/// One trial.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrialResult {
    /// Trial number (0-based).
    pub trial: u32,
    /// Aggregate over all QPs.
    pub throughput: Throughput,
    /// Latency per clock.
    pub latency: Vec<ClockLatency>,
    /// Per-QP counts.
    pub per_qp: Vec<QpResult>,
    /// Jain fairness index across QPs' bytes ((Σx)²/(n·Σx²)); null for one QP.
    pub jain_index: Option<f64>,
    /// Largest / smallest per-QP bytes.
    pub max_min_ratio: Option<f64>,
    /// CPU use.
    pub cpu: CpuUse,
    /// Receive completions at the target.
    pub target_receives: u64,
    /// Mismatching payload bytes (null without --verify).
    pub verify_mismatches: Option<u64>,
    /// Counter deltas of the devices on the initiator's host (the initiator's,
    /// and the in-process target's on single-host runs).
    #[serde(default)]
    pub counters: Vec<super::NodeCounters>,
}

/// Mean ± 95 % CI across trials, and the merged latency distribution.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ConfigSummary {
    /// Trials completed.
    pub trials: u32,
    /// GB/s across trials.
    pub gbytes_per_s: Option<TrialInterval>,
    /// Gb/s across trials.
    pub gbits_per_s: Option<TrialInterval>,
    /// Messages/s across trials.
    pub msgs_per_s: Option<TrialInterval>,
    /// Per clock: all trials merged.
    pub latency: Vec<ClockLatency>,
    /// Per clock: P50 across trials (ns).
    pub p50_ns: PerClock<TrialInterval>,
    /// Per clock: P99 across trials (ns).
    pub p99_ns: PerClock<TrialInterval>,
    /// JFI across trials.
    pub jain_index: Option<TrialInterval>,
    /// Total verify mismatches (null without --verify).
    pub verify_mismatches: Option<u64>,
}

/// One (size, QP count) configuration.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ConfigResult {
    /// Message size.
    pub msg_bytes: u64,
    /// QP count.
    pub qps: u32,
    /// Bytes per work request.
    pub wr_bytes: u64,
    /// Work requests per message.
    pub wrs_per_msg: u64,
    /// Every trial.
    pub trials: Vec<TrialResult>,
    /// Across trials.
    pub summary: ConfigSummary,
    /// The background load beside this latency configuration (5.2 loaded,
    /// 10.4); null for unloaded runs and bandwidth runs.
    #[serde(default)]
    pub background: Option<BackgroundResult>,
    /// Absent when every trial ran; "running" while trials are still to come
    /// (the file is rewritten after every trial); "partial" when an error
    /// stopped this configuration after `trials_completed` trials.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<String>,
    /// Trials completed (= `trials.len()`); written with `status`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trials_completed: Option<u32>,
    /// The trial (0-based, as `trials[].trial`) an error stopped ("partial").
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failed_trial: Option<u32>,
    /// The error that stopped this configuration ("partial").
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// The rate-paced background WRITE stream of one loaded latency
/// configuration, and how well it held its target rate.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BackgroundResult {
    /// Load level, percent of `capacity_gbytes_per_s` (0: no stream ran).
    pub level_percent: u32,
    /// Background QPs (their own QPs between the same two endpoints).
    pub qps: u32,
    /// Background message size (the foreground size, at most 1 MiB).
    pub msg_bytes: u64,
    /// Unpaced WRITE rate of the background QPs measured just before this
    /// size's levels, GB/s.
    pub capacity_gbytes_per_s: f64,
    /// `level_percent` × capacity, GB/s.
    pub target_gbytes_per_s: f64,
    /// Achieved background rate per foreground trial, GB/s.
    pub achieved_gbytes_per_s: Vec<f64>,
    /// Mean of `achieved_gbytes_per_s`.
    pub achieved_mean_gbytes_per_s: f64,
    /// Largest |achieved / target − 1| over the trials, percent (0 at level 0).
    pub worst_deviation_percent: f64,
    /// Every trial's achieved rate is within ±5 % of the target.
    pub within_5_percent: bool,
    /// How the stream's threads waited ("event" unless `--poll` forced a
    /// mode: the cheapest that holds a paced rate); absent in older files.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub poll: Option<String>,
    /// CPU of the stream's threads per trial, percent of one core over the
    /// trial's window.
    #[serde(default)]
    pub cpu_percent: Vec<f64>,
    /// Mean of `cpu_percent`.
    #[serde(default)]
    pub cpu_mean_percent: f64,
}

/// One load level of a latency-versus-load curve.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LoadPoint {
    /// Background level, percent of capacity.
    pub level_percent: u32,
    /// Mean achieved background rate, GB/s.
    pub achieved_gbytes_per_s: f64,
    /// Merged P50 at this level, ns.
    pub p50_ns: u64,
    /// Merged P99 at this level, ns.
    pub p99_ns: u64,
    /// `p99_ns` / the unloaded P99 (null without an unloaded point).
    pub degradation_factor: Option<f64>,
}

/// Test 10.4's curve for one message size and clock: P50/P99 versus
/// background load and the inflection point (see `stats::inflection`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LoadSweep {
    /// Foreground message size.
    pub msg_bytes: u64,
    /// Latency clock the curve is read from.
    pub clock: String,
    /// P99 at 0 % load, ns (null when the sweep has no 0 % point).
    pub unloaded_p99_ns: Option<u64>,
    /// A load "degrades significantly" above this factor × the unloaded P99.
    pub threshold_factor: f64,
    /// Lowest level whose P99 exceeds `threshold_factor` × the unloaded P99;
    /// null when none does.
    pub inflection_percent: Option<u32>,
    /// The curve, in level order.
    pub points: Vec<LoadPoint>,
}

/// A whole results file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunReport {
    /// [`SCHEMA_VERSION`].
    pub schema_version: String,
    /// The writer.
    pub tool: ToolInfo,
    /// IETF test id, e.g. "5.1".
    pub test_id: String,
    /// Its title.
    pub test_name: String,
    /// The user's DUT label.
    pub dut_id: String,
    /// RFC 3339 start time.
    pub started_at: String,
    /// RFC 3339 time of the last write.
    pub updated_at: String,
    /// "running", "complete", "partial" (stopped by an error) or "failed".
    pub status: String,
    /// The error that stopped the run.
    pub error: Option<String>,
    /// Ways the run departs from the draft's procedure (short trials, ...).
    pub deviations: Vec<String>,
    /// The parameters.
    pub parameters: RunParameters,
    /// Both ends; None when the run used no RDMA device (a 5.4 run of the
    /// file tiers alone).
    pub endpoints: Option<EndpointsReport>,
    /// Clock relation (latency mode with the target clock).
    pub clock: Option<ClockReport>,
    /// One entry per configuration, in run order (p2p tests 5.1, 5.2).
    pub results: Vec<ConfigResult>,
    /// This host's system configuration (draft section 14): node 0's in a
    /// multi-rank run (each node's is under `cluster.nodes`).
    #[serde(default)]
    pub system: Option<SystemConfig>,
    /// Nodes and ranks (multi-rank tests; null for p2p).
    #[serde(default)]
    pub cluster: Option<ClusterReport>,
    /// Concurrent-pairs points (test 5.3).
    #[serde(default)]
    pub pairs: Vec<PairsPoint>,
    /// Incast points (tests 8.1, 8.2).
    #[serde(default)]
    pub incast: Vec<IncastPoint>,
    /// AllToAll points (tests 7.1–7.3).
    #[serde(default)]
    pub alltoall: Vec<AllToAllPoint>,
    /// KV/EP contention (test 7.4).
    #[serde(default)]
    pub contention: Option<super::ContentionReport>,
    /// KV-cache transfers shaped like a serving engine's (tests 10.1, 6.1).
    #[serde(default)]
    pub kv: Option<super::KvReport>,
    /// Soak samples and trends (`--soak`, IETF 13.1–13.3).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub soak: Option<super::SoakReport>,
    /// Decode-step ITL_fabric per load condition (test 10.2).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub decode_steps: Option<super::DecodeStepsReport>,
    /// Serving pools: open-loop requests through prefill/decode worker
    /// pools (tests 6.2, 6.4, 9.4, 10.3, Request_Rate).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub serving: Option<super::ServingReport>,
    /// Test 5.4: transfers across memory tiers; absent otherwise.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tiers: Option<super::TiersReport>,
    /// Latency-versus-load curves with their inflection points (test 10.4),
    /// one per (size, clock); empty for other tests.
    #[serde(default)]
    pub load_sweep: Vec<LoadSweep>,
}

impl RunReport {
    /// "rxe1 → rxe0" for headers, or "no RDMA device" for a run without one.
    pub fn ends_text(&self) -> String {
        match &self.endpoints {
            Some(e) => format!("{} → {}", e.initiator.name, e.target.name),
            None => "no RDMA device".into(),
        }
    }

    /// Whether the initiator is SoftRoCE (rxe): its numbers are CPU-bound.
    pub fn is_softroce(&self) -> bool {
        self.endpoints
            .as_ref()
            .is_some_and(|e| e.initiator.vendor_id == 0x00ff_ffff)
    }
}
