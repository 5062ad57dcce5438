//! Expert parallelism and KV-cache transfer contention, IETF 7.4: KV pairs
//! stream PUTs at 50 % / 75 % of the capacity measured in the same run while
//! EP ranks run periodic AllToAll dispatches (one per MoE layer), on their
//! own QPs over the same links. Each class is measured isolated and
//! contended; the contention penalty is contended P99 / isolated P99.
//!
//! Phases, in run order: capacity (KV unpaced, isolated), ep-isolated, then
//! per load: kv-isolated, contended. Counter deltas (ECN marks, CNPs,
//! pauses) are kept per trial of every phase.
//!
//! IETF 8.3 (`--test 8.3`) reuses the classes: after the capacity phase,
//! "kv-first" runs the KV stream at the load from the start and EP joins
//! a third into the trial (t0), "ep-first" the reverse; every trial
//! records rate series and counter series, analysed in
//! [`super::convergence`].

use std::time::Duration;

use crate::cluster::{Flow, RankInfo, SeriesRequest, TrialWork};
use crate::patterns::alltoall::{alltoall_flows, flow_pair};
use crate::patterns::pairs::pair_flows;
use crate::results::{
    ContentionPenalty, ContentionPhase, ContentionReport, ContentionTrial, ConvergenceOrder,
    ConvergenceReport, MoeReport, RunReport,
};
use crate::stats::{
    across_trials, ConvergenceRule, LatencyHistogram, CONVERGENCE_TOLERANCE, STEADY_FRACTION,
};
use crate::workload::moe::{DispatchCopies, DispatchMatrix, MoeConfig, Router, RoutingMode};
use crate::workload::WorkloadError;

use super::alltoall::DispatchMode;
use super::convergence::{analyse_trial, summarise_order, JoinOrder};
use super::fabric::{
    layer_latencies, trials_deviation, FabricOptions, FabricTest, PointShape, TrialOutcome,
};

/// AllToAll flow ids start here, above the KV flows'.
const EP_FLOW_BASE: u32 = 1 << 20;

/// What the user asked for.
#[derive(Debug, Clone)]
pub struct ContentionParams {
    /// KV pairs.
    pub kv_pairs: u32,
    /// KV loads, percent of capacity.
    pub loads: Vec<u32>,
    /// Length of each trial.
    pub duration: Duration,
    /// The MoE configuration.
    pub moe: MoeConfig,
    /// EP group size.
    pub ep: u32,
    /// Tokens per rank.
    pub batch: u32,
    /// Dispatch mode.
    pub mode: DispatchMode,
    /// Routing mode.
    pub routing: RoutingMode,
    /// One dispatch every this long.
    pub period: Duration,
    /// Router seed.
    pub seed: u64,
    /// 8.3 (convergence) instead of 7.4 (contention penalty).
    pub convergence: Option<ConvergenceParams>,
}

/// The 8.3 knobs.
#[derive(Debug, Clone, Copy)]
pub struct ConvergenceParams {
    /// Rate-series bin.
    pub bin: Duration,
    /// Counter sampling interval.
    pub counter_interval: Duration,
    /// Centred moving-mean window for judging convergence.
    pub smooth: Duration,
}

impl ConvergenceParams {
    fn rule(&self) -> ConvergenceRule {
        ConvergenceRule {
            tolerance: CONVERGENCE_TOLERANCE,
            smooth_bins: self.smooth_bins() as usize,
        }
    }

    fn smooth_bins(&self) -> u32 {
        (self.smooth.as_nanos() / self.bin.as_nanos().max(1)).clamp(1, u128::from(u32::MAX)) as u32
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Capacity,
    EpIsolated,
    KvIsolated(u32),
    Contended(u32),
    Join(JoinOrder, u32),
}

impl Phase {
    fn name(self) -> &'static str {
        match self {
            Phase::Capacity => "capacity",
            Phase::EpIsolated => "ep-isolated",
            Phase::KvIsolated(_) => "kv-isolated",
            Phase::Contended(_) => "contended",
            Phase::Join(order, _) => order.name(),
        }
    }

    fn load(self) -> Option<u32> {
        match self {
            Phase::KvIsolated(l) | Phase::Contended(l) | Phase::Join(_, l) => Some(l),
            _ => None,
        }
    }
}

/// The 7.4 test.
#[derive(Debug)]
pub struct ContentionTest {
    params: ContentionParams,
    phases: Vec<Phase>,
    matrix: DispatchMatrix,
    slot_bytes: u64,
    iterations: u32,
    capacity_bytes_per_s: Option<f64>,
    /// The phase of the point running.
    current: Option<Phase>,
    kv_merged: LatencyHistogram,
    ep_merged: LatencyHistogram,
}

impl ContentionTest {
    /// Plans the phases and routes the dispatch; fails on impossible input.
    pub fn new(params: ContentionParams) -> Result<ContentionTest, WorkloadError> {
        let routed =
            Router::new(params.routing, params.seed).route(&params.moe, params.ep, params.batch)?;
        let mut matrix = DispatchMatrix::build(&params.moe, &routed, DispatchCopies::PerExpert)?;
        if params.mode == DispatchMode::LowLatency {
            matrix = matrix.padded();
        }
        let slot_bytes = matrix.max_network_pair_bytes().max(1);
        let period_ns = params.period.as_nanos().max(1);
        let iterations = (params.duration.as_nanos() / period_ns).clamp(10, 5000) as u32;
        let mut phases = vec![Phase::Capacity];
        if params.convergence.is_some() {
            for &load in &params.loads {
                phases.push(Phase::Join(JoinOrder::KvFirst, load));
                phases.push(Phase::Join(JoinOrder::EpFirst, load));
            }
        } else {
            phases.push(Phase::EpIsolated);
            for &load in &params.loads {
                phases.push(Phase::KvIsolated(load));
                phases.push(Phase::Contended(load));
            }
        }
        Ok(ContentionTest {
            params,
            phases,
            matrix,
            slot_bytes,
            iterations,
            capacity_bytes_per_s: None,
            current: None,
            kv_merged: LatencyHistogram::new(),
            ep_merged: LatencyHistogram::new(),
        })
    }

    /// The joining class is scheduled this far into an 8.3 trial.
    fn join_after(&self) -> Duration {
        self.params.duration / 3
    }

    fn stream(&self, phase: Phase, warmup: bool) -> TrialWork {
        self.stream_for(phase, warmup, Duration::ZERO)
    }

    /// The KV stream, starting `offset` into the trial (it ends with it).
    fn stream_for(&self, phase: Phase, warmup: bool, offset: Duration) -> TrialWork {
        let duration = if warmup {
            self.params.duration.min(Duration::from_millis(300))
        } else {
            self.params.duration.saturating_sub(offset)
        };
        let rate = phase.load().and_then(|load| {
            self.capacity_bytes_per_s
                .map(|c| (c * f64::from(load) / 100.0).max(1.0) as u64)
        });
        TrialWork::Stream {
            duration_ns: duration.as_nanos() as u64,
            rate_bytes_per_s: rate,
        }
    }

    fn dispatch(&self, flows: &[Flow], warmup: bool) -> TrialWork {
        self.dispatch_for(flows, warmup, None)
    }

    /// The AllToAll; `window`: `(offset, end)` into the trial: one
    /// dispatch per period from the offset until the end (8.3). The count
    /// is fixed before the trial, so every rank runs the same dispatches
    /// (a rank stopping on its own clock would leave its peers waiting);
    /// dispatches slower than the period run late, past the end.
    fn dispatch_for(
        &self,
        flows: &[Flow],
        warmup: bool,
        window: Option<(Duration, Duration)>,
    ) -> TrialWork {
        let n = self.params.ep;
        let period_ns = self.params.period.as_nanos().max(1);
        let iterations = match window {
            _ if warmup => 5,
            None => self.iterations,
            Some((offset, end)) => (end.saturating_sub(offset).as_nanos().div_ceil(period_ns))
                .clamp(1, u128::from(MAX_JOIN_ITERATIONS))
                as u32,
        };
        TrialWork::AllToAll {
            iterations,
            send: false,
            combine_bytes: Vec::new(),
            gap_ns: 0,
            flow_bytes: flows
                .iter()
                .filter(|f| f.slot)
                .map(|f| {
                    let (i, j) = flow_pair(f.id - EP_FLOW_BASE, n);
                    (f.id, self.matrix.bytes(i, j))
                })
                .collect(),
            period_ns: self.params.period.as_nanos() as u64,
        }
    }
}

/// Most dispatches of one 8.3 trial (their times are kept per rank).
const MAX_JOIN_ITERATIONS: u32 = 600_000;

fn mean(interval: &Option<crate::stats::TrialInterval>) -> Option<f64> {
    interval.as_ref().map(|i| i.mean)
}

impl FabricTest for ContentionTest {
    fn test_id(&self) -> &'static str {
        if self.params.convergence.is_some() {
            "8.3"
        } else {
            "7.4"
        }
    }

    fn test_name(&self) -> &'static str {
        if self.params.convergence.is_some() {
            "Congestion Control Convergence"
        } else {
            "Expert Parallelism and KV Cache Transfer Contention"
        }
    }

    fn deviations(&self, options: &FabricOptions) -> Vec<String> {
        let mut out: Vec<String> = trials_deviation(options, "phase").into_iter().collect();
        out.push("the KV load is a fraction of the KV capacity measured in this run, not of the fabric's line rate".into());
        if self.params.convergence.is_some() {
            out.push(format!(
                "the EP class is the periodic AllToAll dispatch (one per {:?}), not an unpaced flow",
                self.params.period
            ));
        }
        out
    }

    fn series(&self, point: usize) -> Option<SeriesRequest> {
        let c = self.params.convergence?;
        matches!(self.phases[point], Phase::Join(..)).then(|| SeriesRequest {
            bin_ns: Some(c.bin.as_nanos() as u64),
            counter_interval_ns: Some(c.counter_interval.as_nanos() as u64),
            span_ns: (self.params.duration + Duration::from_secs(1)).as_nanos() as u64,
        })
    }

    fn duration_s(&self) -> Option<f64> {
        Some(self.params.duration.as_secs_f64())
    }

    fn points(&self) -> usize {
        self.phases.len()
    }

    fn slot_bytes(&self, _point: usize) -> Option<u64> {
        Some(self.slot_bytes)
    }

    fn flows(&self, point: usize, ranks: &[RankInfo], qps: u32) -> Result<Vec<Flow>, String> {
        let phase = self.phases[point];
        let mut flows = Vec::new();
        if phase != Phase::EpIsolated {
            flows.extend(pair_flows(ranks, self.params.kv_pairs, qps)?);
        }
        if matches!(
            phase,
            Phase::EpIsolated | Phase::Contended(_) | Phase::Join(..)
        ) {
            let (ep, _) = alltoall_flows(ranks, self.params.ep, qps)?;
            flows.extend(ep.into_iter().map(|f| Flow {
                id: f.id + EP_FLOW_BASE,
                slot: true,
                ..f
            }));
        }
        Ok(flows)
    }

    fn work(&self, point: usize, flows: &[Flow], trial: u32) -> TrialWork {
        let phase = self.phases[point];
        let warmup = trial == u32::MAX;
        match phase {
            Phase::Capacity | Phase::KvIsolated(_) => self.stream(phase, warmup),
            Phase::EpIsolated => self.dispatch(flows, warmup),
            Phase::Contended(_) => TrialWork::Contended {
                stream: Box::new(self.stream(phase, warmup)),
                alltoall: Box::new(self.dispatch(flows, warmup)),
                stream_offset_ns: 0,
                alltoall_offset_ns: 0,
            },
            Phase::Join(_, _) if warmup => TrialWork::Contended {
                stream: Box::new(self.stream(phase, true)),
                alltoall: Box::new(self.dispatch(flows, true)),
                stream_offset_ns: 0,
                alltoall_offset_ns: 0,
            },
            Phase::Join(order, _) => {
                let join = self.join_after();
                let end = self.params.duration;
                let (stream_offset, alltoall_offset) = match order {
                    JoinOrder::KvFirst => (Duration::ZERO, join),
                    JoinOrder::EpFirst => (join, Duration::ZERO),
                };
                TrialWork::Contended {
                    stream: Box::new(self.stream_for(phase, false, stream_offset)),
                    alltoall: Box::new(self.dispatch_for(
                        flows,
                        false,
                        Some((alltoall_offset, end)),
                    )),
                    stream_offset_ns: stream_offset.as_nanos() as u64,
                    alltoall_offset_ns: alltoall_offset.as_nanos() as u64,
                }
            }
        }
    }

    fn trial_time(&self, point: usize) -> Duration {
        match self.phases[point] {
            // as many dispatches as periods fit, each allowed to run late
            Phase::Join(..) => {
                let periods = (self.params.duration.as_nanos()
                    / self.params.period.as_nanos().max(1))
                .min(u128::from(MAX_JOIN_ITERATIONS)) as u32;
                self.params.duration * 2 + self.params.period * periods + Duration::from_secs(5)
            }
            _ => {
                self.params.duration + self.params.period * self.iterations + Duration::from_secs(5)
            }
        }
    }

    fn begin_point(
        &mut self,
        point: usize,
        _flows: &[Flow],
        _shape: PointShape,
        report: &mut RunReport,
    ) {
        let phase = self.phases[point];
        self.current = Some(phase);
        self.kv_merged = LatencyHistogram::new();
        self.ep_merged = LatencyHistogram::new();
        let moe = &self.params.moe;
        let contention = report.contention.get_or_insert_with(|| ContentionReport {
            kv_pairs: self.params.kv_pairs,
            kv_msg_bytes: report.parameters.sizes_bytes[0],
            kv_duration_s: self.params.duration.as_secs_f64(),
            ep_ranks: self.params.ep,
            moe: MoeReport {
                name: moe.name.clone(),
                experts: moe.experts,
                top_k: moe.top_k,
                hidden: moe.hidden,
                bytes_per_element: moe.bytes_per_element,
            },
            batch_tokens: self.params.batch,
            mode: self.params.mode.name().into(),
            routing: self.params.routing.to_string(),
            period_ns: self.params.period.as_nanos() as u64,
            iterations: self.iterations,
            capacity_gbytes_per_s: None,
            phases: Vec::new(),
            penalties: Vec::new(),
            convergence: None,
        });
        if let (Phase::Join(order, load), Some(c)) = (phase, self.params.convergence) {
            let report = contention
                .convergence
                .get_or_insert_with(|| ConvergenceReport {
                    kv_load_percent: load,
                    kv_target_gbytes_per_s: None,
                    bin_ns: c.bin.as_nanos() as u64,
                    smooth_bins: c.smooth_bins(),
                    tolerance: CONVERGENCE_TOLERANCE,
                    steady_fraction: STEADY_FRACTION,
                    join_after_ns: self.join_after().as_nanos() as u64,
                    counter_interval_ns: Some(c.counter_interval.as_nanos() as u64),
                    orders: Vec::new(),
                });
            report.kv_target_gbytes_per_s = self
                .capacity_bytes_per_s
                .map(|cap| cap * f64::from(load) / 100.0 / 1e9);
            let (first, joining) = order.classes();
            report.orders.push(ConvergenceOrder {
                order: order.name().into(),
                first_class: first.into(),
                joining_class: joining.into(),
                ..ConvergenceOrder::default()
            });
        }
        contention.phases.push(ContentionPhase {
            phase: phase.name().into(),
            kv_load_percent: phase.load(),
            kv_target_gbytes_per_s: phase.load().and_then(|l| {
                self.capacity_bytes_per_s
                    .map(|c| c * f64::from(l) / 100.0 / 1e9)
            }),
            trials: Vec::new(),
            kv_p99_ns: None,
            ep_p99_ns: None,
            kv_gbytes_per_s: None,
        });
    }

    fn add_trial(&mut self, _ranks: &[RankInfo], outcome: &TrialOutcome, report: &mut RunReport) {
        if let (Some(Phase::Join(order, _)), Some(c), Some(contention)) = (
            self.current,
            self.params.convergence,
            report.contention.as_mut(),
        ) {
            if let Some(o) = contention
                .convergence
                .as_mut()
                .and_then(|r| r.orders.last_mut())
            {
                o.trials.push(analyse_trial(
                    outcome,
                    order,
                    c.bin.as_nanos() as u64,
                    c.rule(),
                    self.params.duration.as_nanos() as u64,
                ));
                summarise_order(o);
            }
        }
        let mut kv = LatencyHistogram::new();
        let (mut bytes, mut start, mut end) = (0u64, u64::MAX, 0u64);
        for f in &outcome.flows {
            kv.merge(&LatencyHistogram::decode(&f.tally.latency).unwrap_or_default());
            bytes += f.tally.bytes;
            start = start.min(f.tally.start_ns);
            end = end.max(f.tally.end_ns);
        }
        let mut ep = LatencyHistogram::new();
        for slowest in layer_latencies(&outcome.dispatch) {
            ep.record(slowest);
        }
        self.kv_merged.merge(&kv);
        self.ep_merged.merge(&ep);
        let seconds = end.saturating_sub(start) as f64 / 1e9;
        let has_kv = !outcome.flows.is_empty();
        let trial = ContentionTrial {
            trial: outcome.trial,
            kv_latency: has_kv.then(|| kv.summary()),
            kv_gbytes_per_s: (has_kv && seconds > 0.0).then(|| bytes as f64 / seconds / 1e9),
            ep_latency: (!outcome.dispatch.is_empty()).then(|| ep.summary()),
            counters: outcome.counters.clone(),
        };
        let contention = report
            .contention
            .as_mut()
            .expect("begin_point created the report");
        let phase = contention
            .phases
            .last_mut()
            .expect("begin_point added the phase");
        phase.trials.push(trial);
        let pick = |f: &dyn Fn(&ContentionTrial) -> Option<f64>| {
            across_trials(&phase.trials.iter().filter_map(f).collect::<Vec<_>>())
        };
        phase.kv_p99_ns = pick(&|t| t.kv_latency.as_ref().map(|l| l.p99_ns as f64));
        phase.ep_p99_ns = pick(&|t| t.ep_latency.as_ref().map(|l| l.p99_ns as f64));
        phase.kv_gbytes_per_s = pick(&|t| t.kv_gbytes_per_s);
        if phase.phase == "capacity" {
            self.capacity_bytes_per_s = mean(&phase.kv_gbytes_per_s).map(|g| g * 1e9);
            contention.capacity_gbytes_per_s = mean(&phase.kv_gbytes_per_s);
        }
        contention.penalties = penalties(contention);
    }

    fn progress(&self, report: &RunReport) -> String {
        let Some(c) = &report.contention else {
            return String::new();
        };
        let Some(p) = c.phases.last() else {
            return String::new();
        };
        let us = |v: Option<f64>| v.map_or_else(|| "-".into(), crate::report::human_ns);
        if let Some(order) = c
            .convergence
            .as_ref()
            .and_then(|r| r.orders.last())
            .filter(|o| o.order == p.phase)
        {
            let class =
                |name: &str| {
                    order
                        .classes
                        .iter()
                        .find(|k| k.class == name)
                        .map_or("-".to_string(), |k| {
                            format!(
                                "{} ({}/{} converged), steady {} GB/s",
                                k.convergence_ns.as_ref().map_or(
                                    "not converged".into(),
                                    |i| format!("{:.1} ms", i.mean / 1e6)
                                ),
                                k.converged_trials,
                                k.trials,
                                k.steady_gbytes_per_s
                                    .as_ref()
                                    .map_or("-".into(), |i| format!("{:.3}", i.mean))
                            )
                        })
                };
            return format!(
                "8.3 {} @{}%: KV {}; EP {}; JFI {}",
                order.order,
                p.kv_load_percent.unwrap_or(0),
                class("kv"),
                class("ep"),
                order
                    .jfi
                    .as_ref()
                    .map_or("-".into(), |i| format!("{:.3}", i.mean))
            );
        }
        format!(
            "{} {}{}: {} trials, KV P99 {}, EP P99 {}",
            self.test_id(),
            p.phase,
            p.kv_load_percent
                .map_or(String::new(), |l| format!(" @{l}%")),
            p.trials.len(),
            us(mean(&p.kv_p99_ns)),
            us(mean(&p.ep_p99_ns))
        )
    }
}

/// Contended / isolated P99 for each KV load that has both phases.
fn penalties(c: &ContentionReport) -> Vec<ContentionPenalty> {
    let find = |name: &str, load: Option<u32>| {
        c.phases
            .iter()
            .find(|p| p.phase == name && (load.is_none() || p.kv_load_percent == load))
    };
    let ep_isolated = find("ep-isolated", None).and_then(|p| mean(&p.ep_p99_ns));
    let ratio = |a: Option<f64>, b: Option<f64>| match (a, b) {
        (Some(contended), Some(isolated)) if isolated > 0.0 => Some(contended / isolated),
        _ => None,
    };
    c.phases
        .iter()
        .filter(|p| p.phase == "contended")
        .filter_map(|p| {
            let load = p.kv_load_percent?;
            let kv_isolated = find("kv-isolated", Some(load)).and_then(|k| mean(&k.kv_p99_ns));
            let kv_contended = mean(&p.kv_p99_ns);
            let ep_contended = mean(&p.ep_p99_ns);
            Some(ContentionPenalty {
                kv_load_percent: load,
                kv_isolated_p99_ns: kv_isolated,
                kv_contended_p99_ns: kv_contended,
                kv_penalty: ratio(kv_contended, kv_isolated),
                ep_isolated_p99_ns: ep_isolated,
                ep_contended_p99_ns: ep_contended,
                ep_penalty: ratio(ep_contended, ep_isolated),
            })
        })
        .collect()
}
