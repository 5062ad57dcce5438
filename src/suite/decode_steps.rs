//! Decode-step inter-token latency, IETF 10.2: each decode step is L MoE
//! layers, each a low-latency AllToAll dispatch and its combine among the
//! EP ranks, with a modelled compute gap after every layer; ITL_fabric of a
//! step is its wall time (first dispatch start → last combine done, over
//! every rank) less the modelled gaps inside it: the part of the
//! inter-token gap the fabric owns. Conditions, in run order: (a) unloaded,
//! then beside a KV stream paced at (b) 50 % and (c) 90 % of the capacity
//! measured first (`capacity`), on their own QPs over the same links.
//!
//! The stream of a loaded condition runs for twice the unloaded
//! condition's trial time plus a second, so it covers every step; a trial
//! whose stream ended before its last step says so (`background_covered`).

use std::time::Duration;

use crate::cluster::{Flow, RankInfo, TrialWork};
use crate::patterns::alltoall::{alltoall_flows, flow_pair};
use crate::patterns::pairs::pair_flows;
use crate::results::{
    DecodeCondition, DecodeStepsReport, DecodeTrial, MoeReport, RunReport, STALL_NS,
};
use crate::stats::{across_trials, LatencyHistogram};
use crate::workload::moe::{DispatchCopies, DispatchMatrix, MoeConfig, Router, RoutingMode};
use crate::workload::WorkloadError;

use super::fabric::{trials_deviation, FabricOptions, FabricTest, PointShape, TrialOutcome};

/// AllToAll flow ids start here, above the KV flows'.
const EP_FLOW_BASE: u32 = 1 << 20;

/// Points of the CDF kept per condition.
const CDF_POINTS: usize = 200;

/// What the user asked for.
#[derive(Debug, Clone)]
pub struct DecodeStepsParams {
    /// The MoE configuration.
    pub moe: MoeConfig,
    /// EP group size.
    pub ep: u32,
    /// Decode tokens per rank per step.
    pub batch: u32,
    /// MoE layers per step.
    pub layers: u32,
    /// Modelled compute after every layer.
    pub compute_gap: Duration,
    /// Steps per trial.
    pub steps: u32,
    /// Background loads, percent of capacity, in run order (0: unloaded).
    pub loads: Vec<u32>,
    /// Background KV pairs.
    pub kv_pairs: u32,
    /// Routing mode.
    pub routing: RoutingMode,
    /// Router seed.
    pub seed: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Capacity,
    Condition(u32),
}

/// The 10.2 run.
#[derive(Debug)]
pub struct DecodeStepsTest {
    params: DecodeStepsParams,
    phases: Vec<Phase>,
    matrix: DispatchMatrix,
    slot_bytes: u64,
    capacity_bytes_per_s: Option<f64>,
    /// Every capacity trial's rate (their mean is the capacity).
    capacity_trials: Vec<f64>,
    /// Longest unloaded trial so far (sizes the loaded conditions' stream).
    unloaded_trial_ns: u64,
    merged: LatencyHistogram,
}

/// The draft's name of a load condition.
fn condition_name(load: u32) -> String {
    match load {
        0 => "a".into(),
        50 => "b".into(),
        90 => "c".into(),
        other => format!("load-{other}"),
    }
}

impl DecodeStepsTest {
    /// Routes the (padded, low-latency) dispatch and plans the phases;
    /// fails on impossible input.
    pub fn new(params: DecodeStepsParams) -> Result<DecodeStepsTest, WorkloadError> {
        let routed =
            Router::new(params.routing, params.seed).route(&params.moe, params.ep, params.batch)?;
        let matrix =
            DispatchMatrix::build(&params.moe, &routed, DispatchCopies::PerExpert)?.padded();
        let slot_bytes = matrix.max_network_pair_bytes().max(1);
        let mut phases = Vec::new();
        if params.loads.iter().any(|&l| l > 0) {
            phases.push(Phase::Capacity);
        }
        // the unloaded condition first, always: it sizes the loaded ones'
        // stream (and the draft asks for it as (a))
        let mut loads = params.loads.clone();
        loads.push(0);
        loads.sort_unstable();
        loads.dedup();
        phases.extend(loads.into_iter().map(Phase::Condition));
        Ok(DecodeStepsTest {
            params,
            phases,
            matrix,
            slot_bytes,
            capacity_bytes_per_s: None,
            capacity_trials: Vec::new(),
            unloaded_trial_ns: 0,
            merged: LatencyHistogram::new(),
        })
    }

    fn iterations(&self, warmup: bool) -> u32 {
        let steps = if warmup {
            self.params.steps.min(5)
        } else {
            self.params.steps
        };
        steps.saturating_mul(self.params.layers.max(1))
    }

    fn dispatch(&self, flows: &[Flow], warmup: bool) -> TrialWork {
        let n = self.params.ep;
        let pair = |f: &Flow| flow_pair(f.id - EP_FLOW_BASE, n);
        let slotted = || flows.iter().filter(|f| f.slot);
        TrialWork::AllToAll {
            iterations: self.iterations(warmup),
            send: false,
            flow_bytes: slotted()
                .map(|f| {
                    let (i, j) = pair(f);
                    (f.id, self.matrix.bytes(i, j))
                })
                .collect(),
            period_ns: 0,
            combine_bytes: slotted()
                .map(|f| {
                    let (i, j) = pair(f);
                    (f.id, self.matrix.bytes(j, i))
                })
                .collect(),
            gap_ns: self.params.compute_gap.as_nanos() as u64,
        }
    }

    fn stream(&self, load: Option<u32>, warmup: bool) -> TrialWork {
        let duration_ns = match load {
            None if warmup => 300_000_000,
            None => 2_000_000_000,
            // twice the unloaded trial and a second, so it outlasts every step
            Some(_) => 2 * self.unloaded_trial_ns.max(1_000_000_000) + 1_000_000_000,
        };
        TrialWork::Stream {
            duration_ns,
            rate_bytes_per_s: load.and_then(|l| {
                self.capacity_bytes_per_s
                    .map(|c| (c * f64::from(l) / 100.0).max(1.0) as u64)
            }),
        }
    }
}

impl FabricTest for DecodeStepsTest {
    fn test_id(&self) -> &'static str {
        "10.2"
    }

    fn test_name(&self) -> &'static str {
        "ITL Characterization and Tail Latency"
    }

    fn deviations(&self, options: &FabricOptions) -> Vec<String> {
        let mut out: Vec<String> = trials_deviation(options, "condition").into_iter().collect();
        if self.params.steps < 10_000 {
            out.push(format!(
                "{} decode steps per trial; the draft requires at least 10,000 ITL samples per condition",
                self.params.steps
            ));
        }
        out.push(format!(
            "decode steps are emulated: {} MoE layers of low-latency AllToAll dispatch + combine per step with {} µs of modelled compute after each layer, not a model's emitted tokens; (c) is 90 % background with the decode's own EP dispatches as the concurrent EP traffic",
            self.params.layers,
            self.params.compute_gap.as_micros()
        ));
        out
    }

    fn duration_s(&self) -> Option<f64> {
        None
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
        if phase != Phase::Condition(0) {
            flows.extend(pair_flows(ranks, self.params.kv_pairs, qps)?);
        }
        if phase != Phase::Capacity {
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
        let warmup = trial == u32::MAX;
        match self.phases[point] {
            Phase::Capacity => self.stream(None, warmup),
            Phase::Condition(0) => self.dispatch(flows, warmup),
            Phase::Condition(load) => TrialWork::Contended {
                stream: Box::new(self.stream(Some(load), warmup)),
                alltoall: Box::new(self.dispatch(flows, warmup)),
                stream_offset_ns: 0,
                alltoall_offset_ns: 0,
            },
        }
    }

    fn trial_time(&self, point: usize) -> Duration {
        // a layer is two phases (AllToAll allows 20 ms per phase) and a gap
        let per_step = (Duration::from_millis(40) + self.params.compute_gap) * self.params.layers;
        let steps = per_step * self.params.steps;
        match self.phases[point] {
            Phase::Capacity => Duration::from_secs(10),
            Phase::Condition(0) => steps + Duration::from_secs(5),
            Phase::Condition(_) => {
                steps + Duration::from_nanos(3 * self.unloaded_trial_ns) + Duration::from_secs(5)
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
        self.merged = LatencyHistogram::new();
        let moe = &self.params.moe;
        let n = self.params.ep;
        let decode = report
            .decode_steps
            .get_or_insert_with(|| DecodeStepsReport {
                moe: MoeReport {
                    name: moe.name.clone(),
                    experts: moe.experts,
                    top_k: moe.top_k,
                    hidden: moe.hidden,
                    bytes_per_element: moe.bytes_per_element,
                },
                ep_ranks: n,
                batch_tokens: self.params.batch,
                layers: self.params.layers,
                modelled_compute_gap_ns: self.params.compute_gap.as_nanos() as u64,
                steps: self.params.steps,
                pair_bytes: (0..n).map(|i| self.matrix.row_bytes(i).to_vec()).collect(),
                kv_pairs: self.params.kv_pairs,
                capacity_gbytes_per_s: None,
                conditions: Vec::new(),
            });
        if let Phase::Condition(load) = self.phases[point] {
            decode.conditions.push(DecodeCondition {
                condition: condition_name(load),
                load_percent: load,
                target_gbytes_per_s: (load > 0)
                    .then(|| {
                        self.capacity_bytes_per_s
                            .map(|c| c * f64::from(load) / 100.0 / 1e9)
                    })
                    .flatten(),
                trials: Vec::new(),
                p50_ns: None,
                p99_ns: None,
                p999_ns: None,
                itl_fabric: LatencyHistogram::new().summary(),
                stalls: 0,
                cdf: Vec::new(),
            });
        }
    }

    fn add_trial(&mut self, _ranks: &[RankInfo], outcome: &TrialOutcome, report: &mut RunReport) {
        let (mut bytes, mut start, mut end) = (0u64, u64::MAX, 0u64);
        for f in &outcome.flows {
            bytes += f.tally.bytes;
            start = start.min(f.tally.start_ns);
            end = end.max(f.tally.end_ns);
        }
        let seconds = end.saturating_sub(start) as f64 / 1e9;
        let stream_rate =
            (!outcome.flows.is_empty() && seconds > 0.0).then(|| bytes as f64 / seconds);
        let decode = report
            .decode_steps
            .as_mut()
            .expect("begin_point created the report");
        if outcome.dispatch.is_empty() {
            // the capacity phase: the mean over its trials
            self.capacity_trials.extend(stream_rate);
            let n = self.capacity_trials.len();
            self.capacity_bytes_per_s =
                (n > 0).then(|| self.capacity_trials.iter().sum::<f64>() / n as f64);
            decode.capacity_gbytes_per_s = self.capacity_bytes_per_s.map(|r| r / 1e9);
            return;
        }
        let layers = self.params.layers.max(1) as usize;
        let gap_ns = self.params.compute_gap.as_nanos() as u64;
        let (itl, step_wall) = step_latencies(outcome, layers, gap_ns);
        let mut fabric = LatencyHistogram::new();
        let mut wall = LatencyHistogram::new();
        for &ns in &itl {
            fabric.record(ns);
        }
        for &ns in &step_wall {
            wall.record(ns);
        }
        self.merged.merge(&fabric);
        let last_done = outcome
            .dispatch
            .iter()
            .filter_map(|r| r.combine.last().map(|c| c.1))
            .max()
            .unwrap_or(0);
        let first_start = outcome
            .dispatch
            .iter()
            .filter_map(|r| r.iterations.first().map(|i| i.0))
            .min()
            .unwrap_or(0);
        let Some(condition) = decode.conditions.last_mut() else {
            return;
        };
        if condition.load_percent == 0 {
            self.unloaded_trial_ns = self
                .unloaded_trial_ns
                .max(last_done.saturating_sub(first_start));
        }
        let loaded = condition.load_percent > 0;
        condition.trials.push(DecodeTrial {
            trial: outcome.trial,
            steps: itl.len() as u32,
            itl_fabric: fabric.summary(),
            itl_step: wall.summary(),
            stalls: itl.iter().filter(|&&ns| ns > STALL_NS).count() as u64,
            background_gbytes_per_s: if loaded {
                stream_rate.map(|r| r / 1e9)
            } else {
                None
            },
            background_covered: !loaded || end >= last_done,
            counters: outcome.counters.clone(),
        });
        let pick = |f: &dyn Fn(&DecodeTrial) -> f64| {
            across_trials(&condition.trials.iter().map(f).collect::<Vec<_>>())
        };
        condition.p50_ns = pick(&|t| t.itl_fabric.p50_ns as f64);
        condition.p99_ns = pick(&|t| t.itl_fabric.p99_ns as f64);
        condition.p999_ns = pick(&|t| t.itl_fabric.p999_ns as f64);
        condition.stalls = condition.trials.iter().map(|t| t.stalls).sum();
        condition.itl_fabric = self.merged.summary();
        condition.cdf = self.merged.cdf_points(CDF_POINTS);
    }

    fn progress(&self, report: &RunReport) -> String {
        let Some(c) = report
            .decode_steps
            .as_ref()
            .and_then(|d| d.conditions.last())
        else {
            return "10.2 capacity measured".into();
        };
        let ms = |v: Option<f64>| v.map_or("-".into(), |ns| format!("{:.3} ms", ns / 1e6));
        format!(
            "10.2 ({}) load {} %: {} trials, ITL_fabric P50 {}, P99 {}, P99.9 {}, {} stalls",
            c.condition,
            c.load_percent,
            c.trials.len(),
            ms(c.p50_ns.as_ref().map(|i| i.mean)),
            ms(c.p99_ns.as_ref().map(|i| i.mean)),
            ms(c.p999_ns.as_ref().map(|i| i.mean)),
            c.stalls
        )
    }
}

/// Per decode step (each `layers` consecutive iterations): ITL_fabric, the
/// step's wall time less the `layers − 1` modelled gaps inside it, and the
/// wall time itself (first dispatch start → last combine done over every
/// rank). A trailing partial step is dropped.
fn step_latencies(outcome: &TrialOutcome, layers: usize, gap_ns: u64) -> (Vec<u64>, Vec<u64>) {
    let layers = layers.max(1);
    let iterations = outcome
        .dispatch
        .iter()
        .map(|r| r.iterations.len().min(r.combine.len()))
        .min()
        .unwrap_or(0);
    let steps = iterations / layers;
    let wall: Vec<u64> = (0..steps)
        .map(|s| {
            let (first, last) = (s * layers, (s + 1) * layers - 1);
            let start = outcome
                .dispatch
                .iter()
                .map(|r| r.iterations[first].0)
                .min()
                .unwrap_or(0);
            let done = outcome
                .dispatch
                .iter()
                .map(|r| r.combine[last].1)
                .max()
                .unwrap_or(0);
            done.saturating_sub(start)
        })
        .collect();
    let inside = gap_ns * (layers as u64 - 1);
    let itl = wall.iter().map(|w| w.saturating_sub(inside)).collect();
    (itl, wall)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cluster::RankDispatchTrial;

    fn outcome(ranks: Vec<RankDispatchTrial>) -> TrialOutcome {
        TrialOutcome {
            dispatch: ranks,
            ..TrialOutcome::default()
        }
    }

    #[test]
    fn a_step_is_its_wall_time_less_the_modelled_gaps_inside() {
        let rank = |iterations: Vec<(u64, u64, u64)>, combine: Vec<(u64, u64)>| RankDispatchTrial {
            rank: 0,
            iterations,
            bytes_sent: 0,
            messages_received: 0,
            cpu_s: 0.0,
            series: None,
            combine,
        };
        // two layers per step, 5 iterations: two steps, the fifth dropped
        let r0 = rank(
            vec![
                (0, 1, 5),
                (20, 21, 25),
                (40, 41, 45),
                (60, 61, 65),
                (80, 81, 85),
            ],
            vec![(5, 10), (25, 30), (45, 52), (65, 70), (85, 90)],
        );
        let r1 = rank(
            vec![
                (1, 2, 6),
                (21, 22, 26),
                (41, 42, 46),
                (61, 62, 66),
                (81, 82, 86),
            ],
            vec![(6, 12), (26, 31), (46, 50), (66, 75), (86, 91)],
        );
        let (itl, wall) = step_latencies(&outcome(vec![r0.clone(), r1.clone()]), 2, 8);
        // step walls: 0 → 31, 40 → 75; one modelled gap of 8 inside each
        assert_eq!(wall, vec![31, 35]);
        assert_eq!(itl, vec![23, 27]);
        // a rank with fewer iterations bounds the steps (no indexing past it)
        let mut short = r1;
        short.iterations.truncate(3);
        short.combine.truncate(3);
        let (itl, _) = step_latencies(&outcome(vec![r0, short]), 2, 0);
        assert_eq!(itl, vec![31]);
    }

    #[test]
    fn conditions_run_unloaded_first_after_the_capacity() {
        let params = DecodeStepsParams {
            moe: "M1".parse().unwrap(),
            ep: 2,
            batch: 8,
            layers: 4,
            compute_gap: Duration::from_micros(20),
            steps: 100,
            loads: vec![90, 50],
            kv_pairs: 1,
            routing: RoutingMode::TopK,
            seed: 1,
        };
        let test = DecodeStepsTest::new(params).unwrap();
        assert_eq!(
            test.phases,
            vec![
                Phase::Capacity,
                Phase::Condition(0),
                Phase::Condition(50),
                Phase::Condition(90)
            ]
        );
        assert_eq!(test.iterations(false), 400);
        assert_eq!(condition_name(90), "c");
        assert_eq!(condition_name(75), "load-75");
    }
}
