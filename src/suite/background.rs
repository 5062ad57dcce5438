//! Background load for latency trials (draft §5.2 "loaded", §10.4 sweep):
//! a rate-paced RDMA WRITE stream on its own QPs between the same two
//! endpoints as the foreground latency trial.
//!
//! Procedure per message size (driven by `p2p.rs`):
//! 1. **Capacity**: an unpaced WRITE trial on the background QPs (a few
//!    warmup messages, then [`CAPACITY_TRIAL`]) with no foreground traffic.
//! 2. **Per level**: for every foreground trial, start the stream paced at
//!    `level × capacity`, run the foreground trial, raise the stop flag, and
//!    take the achieved rate over the window covering both (from the first
//!    background post to the later of the last background completion and the
//!    foreground's end), so a stream that fell behind or stopped early shows.
//!    A trial holds its target when `|achieved / target − 1| ≤ 5 %`.
//!
//! The background message is the foreground size capped at
//! [`MAX_BACKGROUND_MSG_BYTES`] (1 MiB): the same size as the foreground for
//! KV-block-sized messages, while a 256 MiB foreground still gets a stream
//! fine-grained enough to pace. It lands in its own region of the target's
//! buffer, past the largest foreground message, so it never disturbs
//! `--verify`. WRITE keeps the target passive: it only connects the QPs.
//!
//! This module owns the stream's setup, the capacity trial and the result
//! arithmetic; the pacing loop is `engine::run_paced`, the rate arithmetic
//! `workload::pacing`.

use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Duration;

use crate::control::{BufferKey, Op};
use crate::engine::{run_bandwidth, BandwidthPlan, Endpoint, LaneTally, Pace, QpSet, StopRule};
use crate::results::{BackgroundResult, ConfigResult, LoadPoint, LoadSweep};
use crate::stats::{degradation_factor, inflection_level, INFLECTION_FACTOR};
use crate::verbs::{QpCaps, RegisteredBuffer};
use crate::workload::{fraction_of_capacity, paced_burst_bytes};

use super::SuiteError;

/// Largest background message; larger foreground sizes get 1 MiB background messages.
pub const MAX_BACKGROUND_MSG_BYTES: u64 = 1 << 20;

/// Length of the unpaced capacity trial, per message size.
pub const CAPACITY_TRIAL: Duration = Duration::from_secs(1);

/// A level holds its target when every trial is within this fraction of it.
pub const RATE_TOLERANCE: f64 = 0.05;

/// Warmup messages per QP before the capacity trial.
const CAPACITY_WARMUP_MSGS: u64 = 4;

/// The background message size for a foreground size.
pub fn background_msg_bytes(msg_bytes: u64) -> u64 {
    msg_bytes.clamp(1, MAX_BACKGROUND_MSG_BYTES)
}

/// The background stream of one configuration: its QPs and its fixed shape.
#[derive(Debug)]
pub struct BackgroundStream {
    /// The background QPs (one lane: one thread paces them all).
    pub set: QpSet,
    /// The unpaced shape; `stop` is set per use.
    plan: BandwidthPlan,
}

/// What a background stream needs besides its QPs.
#[derive(Debug, Clone)]
pub struct StreamShape {
    /// Background message size.
    pub msg_bytes: u64,
    /// Bytes per WR.
    pub wr_bytes: u64,
    /// Outstanding WRs per QP.
    pub tx_depth: u32,
    /// Where the stream writes at the target (its own region).
    pub remote: BufferKey,
    /// Cores for the stream's thread (empty: unpinned).
    pub cores: Vec<usize>,
    /// Error out after this long without a completion.
    pub stall_timeout: Duration,
}

impl BackgroundStream {
    /// Creates `qps` unconnected background QPs on `endpoint`, one lane.
    pub fn create(
        endpoint: &Endpoint,
        qps: u32,
        shape: StreamShape,
    ) -> Result<BackgroundStream, SuiteError> {
        let caps = QpCaps {
            max_send_wr: shape.tx_depth + 2,
            max_recv_wr: 1,
            max_inline_bytes: 0,
        };
        let set = QpSet::create(endpoint, qps as usize, 1, caps)?;
        let plan = BandwidthPlan {
            op: Op::Write,
            msg_bytes: shape.msg_bytes,
            wr_bytes: shape.wr_bytes,
            tx_depth: shape.tx_depth,
            cq_mod: 1,
            stop: StopRule::MessagesPerQp(CAPACITY_WARMUP_MSGS),
            remote: shape.remote,
            lane_remotes: Vec::new(),
            start_at_ns: 0,
            stall_timeout: shape.stall_timeout,
            cores: shape.cores,
            series: None,
        };
        Ok(BackgroundStream { set, plan })
    }

    /// Background message size.
    pub fn msg_bytes(&self) -> u64 {
        self.plan.msg_bytes
    }

    /// Background QP count.
    pub fn qps(&self) -> u32 {
        self.set.len() as u32
    }

    /// Unpaced WRITE capacity of the background QPs, bytes/s: a short
    /// warmup, then [`CAPACITY_TRIAL`].
    pub fn measure_capacity(&mut self, buffer: &RegisteredBuffer) -> Result<f64, SuiteError> {
        let warmup = BandwidthPlan {
            stop: StopRule::MessagesPerQp(CAPACITY_WARMUP_MSGS),
            ..self.plan.clone()
        };
        run_bandwidth(&mut self.set, buffer, &warmup)?;
        let trial = BandwidthPlan {
            stop: StopRule::Duration(CAPACITY_TRIAL),
            ..self.plan.clone()
        };
        let lanes = run_bandwidth(&mut self.set, buffer, &trial)?;
        let rate = rate_over(&lanes, None);
        if rate < 1.0 {
            return Err(SuiteError::Invalid(format!(
                "the background QPs moved no data in the {} s capacity trial; check the link \
                 (`rdma link`, `ibv_devinfo`) or run without --background",
                CAPACITY_TRIAL.as_secs_f64()
            )));
        }
        Ok(rate)
    }

    /// The paced plan and its pace at `rate_bytes_per_s`, stopped by `stop`
    /// or, as a safety cap, after `cap`.
    pub fn paced(
        &self,
        rate_bytes_per_s: u64,
        stop: &Arc<AtomicBool>,
        cap: Duration,
    ) -> (BandwidthPlan, Pace) {
        let plan = BandwidthPlan {
            stop: StopRule::Duration(cap),
            ..self.plan.clone()
        };
        let pace = Pace {
            rate_bytes_per_s,
            burst_bytes: paced_burst_bytes(rate_bytes_per_s, self.msg_bytes(), self.qps()),
            stop: Arc::clone(stop),
        };
        (plan, pace)
    }
}

/// The pacing rate for `level_percent` of `capacity_bytes_per_s`.
pub fn target_rate(level_percent: u32, capacity_bytes_per_s: f64) -> Result<u64, SuiteError> {
    fraction_of_capacity(f64::from(level_percent) / 100.0, capacity_bytes_per_s)
        .map_err(|err| SuiteError::Invalid(format!("background level {level_percent}%: {err}")))
}

/// Bytes completed by `lanes` per second over the window from the first
/// post to the last completion, widened to `foreground` (start, end) ns when
/// given.
pub fn rate_over(lanes: &[LaneTally], foreground: Option<(u64, u64)>) -> f64 {
    let bytes: u64 = lanes
        .iter()
        .flat_map(|l| l.per_qp.iter().map(|q| q.bytes))
        .sum();
    let mut start = lanes.iter().map(|l| l.start_ns).min().unwrap_or(0);
    let mut end = lanes.iter().map(|l| l.end_ns).max().unwrap_or(start);
    if let Some((fg_start, fg_end)) = foreground {
        start = start.min(fg_start);
        end = end.max(fg_end);
    }
    let seconds = end.saturating_sub(start) as f64 / 1e9;
    if seconds > 0.0 {
        bytes as f64 / seconds
    } else {
        0.0
    }
}

/// CPU of `lanes`' threads over the window `foreground` widens, percent of
/// one core.
pub fn cpu_percent_over(lanes: &[LaneTally], foreground: Option<(u64, u64)>) -> f64 {
    let cpu_s: f64 = lanes.iter().map(|l| l.cpu_s).sum();
    let mut start = lanes.iter().map(|l| l.start_ns).min().unwrap_or(0);
    let mut end = lanes.iter().map(|l| l.end_ns).max().unwrap_or(start);
    if let Some((fg_start, fg_end)) = foreground {
        start = start.min(fg_start);
        end = end.max(fg_end);
    }
    let seconds = end.saturating_sub(start) as f64 / 1e9;
    if seconds > 0.0 {
        cpu_s / seconds * 100.0
    } else {
        0.0
    }
}

/// The JSON record of one level: `achieved_bytes_per_s` and the stream's
/// CPU percent per trial.
pub fn background_result(
    level_percent: u32,
    stream: &BackgroundStream,
    capacity_bytes_per_s: f64,
    target_bytes_per_s: u64,
    achieved_bytes_per_s: &[f64],
    cpu_percent: &[f64],
) -> BackgroundResult {
    let mut result = summarize_background(
        level_percent,
        stream.qps(),
        stream.msg_bytes(),
        capacity_bytes_per_s,
        target_bytes_per_s,
        achieved_bytes_per_s,
    );
    result.poll = stream
        .set
        .lanes
        .first()
        .map(|l| l.idle.mode().name().to_string());
    result.cpu_mean_percent = cpu_percent.iter().sum::<f64>() / cpu_percent.len().max(1) as f64;
    result.cpu_percent = cpu_percent.to_vec();
    result
}

fn summarize_background(
    level_percent: u32,
    qps: u32,
    msg_bytes: u64,
    capacity_bytes_per_s: f64,
    target_bytes_per_s: u64,
    achieved_bytes_per_s: &[f64],
) -> BackgroundResult {
    let target = target_bytes_per_s as f64;
    let worst = achieved_bytes_per_s
        .iter()
        .map(|&a| {
            if target > 0.0 {
                (a / target - 1.0).abs()
            } else {
                0.0
            }
        })
        .fold(0.0, f64::max);
    let n = achieved_bytes_per_s.len().max(1) as f64;
    BackgroundResult {
        level_percent,
        qps,
        msg_bytes,
        capacity_gbytes_per_s: capacity_bytes_per_s / 1e9,
        target_gbytes_per_s: target / 1e9,
        achieved_gbytes_per_s: achieved_bytes_per_s.iter().map(|a| a / 1e9).collect(),
        achieved_mean_gbytes_per_s: achieved_bytes_per_s.iter().sum::<f64>() / n / 1e9,
        worst_deviation_percent: worst * 100.0,
        within_5_percent: worst <= RATE_TOLERANCE,
        poll: None,
        cpu_percent: Vec::new(),
        cpu_mean_percent: 0.0,
    }
}

/// Test 10.4's curves: for every message size and clock among `results`
/// that carry a background level, P50/P99 per level and the inflection point.
pub fn load_sweeps(results: &[ConfigResult]) -> Vec<LoadSweep> {
    let mut sizes: Vec<u64> = Vec::new();
    for config in results.iter().filter(|c| c.background.is_some()) {
        if !sizes.contains(&config.msg_bytes) {
            sizes.push(config.msg_bytes);
        }
    }
    let mut sweeps = Vec::new();
    for msg_bytes in sizes {
        let configs: Vec<&ConfigResult> = results
            .iter()
            .filter(|c| c.msg_bytes == msg_bytes && c.background.is_some())
            .collect();
        let clocks: Vec<String> = configs[0]
            .summary
            .latency
            .iter()
            .map(|l| l.clock.clone())
            .collect();
        for clock in clocks {
            let mut points: Vec<(u32, f64, u64, u64)> = configs
                .iter()
                .filter_map(|c| {
                    let background = c.background.as_ref()?;
                    let latency = c.summary.latency.iter().find(|l| l.clock == clock)?;
                    Some((
                        background.level_percent,
                        background.achieved_mean_gbytes_per_s,
                        latency.summary.p50_ns,
                        latency.summary.p99_ns,
                    ))
                })
                .collect();
            points.sort_by_key(|p| p.0);
            let unloaded = points.iter().find(|p| p.0 == 0).map(|p| p.3);
            let p99s: Vec<(u32, u64)> = points.iter().map(|p| (p.0, p.3)).collect();
            sweeps.push(LoadSweep {
                msg_bytes,
                clock,
                unloaded_p99_ns: unloaded,
                threshold_factor: INFLECTION_FACTOR,
                inflection_percent: inflection_level(&p99s, INFLECTION_FACTOR),
                points: points
                    .iter()
                    .map(|&(level, achieved, p50, p99)| LoadPoint {
                        level_percent: level,
                        achieved_gbytes_per_s: achieved,
                        p50_ns: p50,
                        p99_ns: p99,
                        degradation_factor: unloaded.and_then(|u| degradation_factor(p99, u)),
                    })
                    .collect(),
            });
        }
    }
    sweeps
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::results::{ClockLatency, ConfigSummary};
    use crate::stats::LatencyHistogram;

    #[test]
    fn background_messages_are_capped_at_one_mebibyte() {
        assert_eq!(background_msg_bytes(65_536), 65_536);
        assert_eq!(background_msg_bytes(1 << 20), 1 << 20);
        assert_eq!(background_msg_bytes(256 << 20), 1 << 20);
    }

    #[test]
    fn target_rate_is_the_level_of_capacity() {
        assert_eq!(target_rate(50, 2e9).unwrap(), 1_000_000_000);
        assert!(target_rate(0, 2e9).is_err());
        assert!(target_rate(101, 2e9).is_err());
    }

    #[test]
    fn within_five_percent_uses_the_worst_trial() {
        let held = summarize_background(50, 4, 65_536, 2e9, 1_000_000_000, &[0.97e9, 1.04e9]);
        assert!(held.within_5_percent);
        assert!((held.worst_deviation_percent - 4.0).abs() < 1e-9);
        assert!((held.achieved_mean_gbytes_per_s - 1.005).abs() < 1e-12);
        assert_eq!(held.target_gbytes_per_s, 1.0);
        assert_eq!(held.capacity_gbytes_per_s, 2.0);
        let missed = summarize_background(50, 4, 65_536, 2e9, 1_000_000_000, &[1.0e9, 0.93e9]);
        assert!(!missed.within_5_percent);
        assert!((missed.worst_deviation_percent - 7.0).abs() < 1e-9);
        let unloaded = summarize_background(0, 4, 65_536, 2e9, 0, &[0.0, 0.0]);
        assert!(unloaded.within_5_percent);
        assert_eq!(unloaded.worst_deviation_percent, 0.0);
    }

    #[test]
    fn rate_over_widens_to_the_foreground_window() {
        let lane = LaneTally {
            per_qp: vec![crate::engine::QpTally {
                messages: 1000,
                bytes: 1_000_000_000,
                wrs_posted: 1000,
                target_receives: 0,
            }],
            start_ns: 1_000_000_000,
            end_ns: 2_000_000_000,
            ..LaneTally::default()
        };
        assert_eq!(rate_over(std::slice::from_ref(&lane), None), 1e9);
        // the stream stopped half-way through a 2 s foreground trial
        let rate = rate_over(&[lane], Some((1_000_000_000, 3_000_000_000)));
        assert_eq!(rate, 0.5e9);
    }

    fn config(msg_bytes: u64, level: u32, p99_ns: u64) -> ConfigResult {
        let mut h = LatencyHistogram::new();
        for _ in 0..100 {
            h.record(p99_ns);
        }
        ConfigResult {
            msg_bytes,
            qps: 1,
            wr_bytes: msg_bytes,
            wrs_per_msg: 1,
            trials: Vec::new(),
            summary: ConfigSummary {
                trials: 1,
                gbytes_per_s: None,
                gbits_per_s: None,
                msgs_per_s: None,
                latency: vec![ClockLatency {
                    clock: "initiator".into(),
                    summary: h.summary(),
                }],
                p50_ns: crate::results::PerClock::new(),
                p99_ns: crate::results::PerClock::new(),
                jain_index: None,
                verify_mismatches: None,
            },
            background: Some(summarize_background(
                level,
                4,
                msg_bytes,
                2e9,
                (f64::from(level) / 100.0 * 2e9) as u64,
                &[f64::from(level) / 100.0 * 2e9],
            )),
            status: None,
            trials_completed: None,
            failed_trial: None,
            error: None,
        }
    }

    #[test]
    fn load_sweep_per_size_with_inflection() {
        let results = vec![
            config(65_536, 0, 10_000),
            config(65_536, 50, 15_000),
            config(65_536, 75, 25_000),
            config(65_536, 90, 60_000),
            config(1 << 20, 0, 100_000),
            config(1 << 20, 90, 150_000),
        ];
        let sweeps = load_sweeps(&results);
        assert_eq!(sweeps.len(), 2);
        let small = &sweeps[0];
        assert_eq!(small.msg_bytes, 65_536);
        assert_eq!(small.clock, "initiator");
        assert_eq!(small.inflection_percent, Some(75));
        assert_eq!(small.points.len(), 4);
        let unloaded = small.unloaded_p99_ns.unwrap();
        let at_90 = &small.points[3];
        assert_eq!(at_90.level_percent, 90);
        assert!(
            (at_90.degradation_factor.unwrap() - at_90.p99_ns as f64 / unloaded as f64).abs()
                < 1e-12
        );
        assert!((at_90.achieved_gbytes_per_s - 1.8).abs() < 1e-9);
        assert_eq!(sweeps[1].inflection_percent, None);
    }
}
