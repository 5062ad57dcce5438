//! MoE AllToAll dispatch, IETF 7.1 (throughput), 7.2 (dispatch and routing
//! modes) and 7.3 (wide-EP scaling): for every (EP size, dispatch mode,
//! routing mode, batch), a seeded router gives the rank→rank byte matrix
//! and every EP rank dispatches it to every other rank, iteration after
//! iteration; a dispatch ends for a rank when its sends completed and every
//! incoming payload landed, and the layer's latency is the slowest rank's.
//!
//! algbw = mean per-rank dispatch bytes (the rank's row, local share
//! included, as nccl-tests counts its send buffer) / mean dispatch latency;
//! busbw = algbw · (n−1)/n, nccl-tests' AllToAll bus factor.

use std::time::Duration;

use crate::cluster::{Flow, RankInfo, TrialWork};
use crate::patterns::alltoall::{alltoall_flows, flow_pair};
use crate::report::{
    AllToAllPhase, AllToAllPoint, AllToAllSummary, AllToAllTrial, MoeReport, RankDispatchResult,
    RunReport,
};
use crate::stats::{across_trials, LatencyHistogram, TrialInterval};
use crate::workload::moe::{
    alltoall_busbw_factor, t_dispatch_bytes, DispatchCopies, DispatchMatrix, MoeConfig, Router,
    RoutingMode,
};
use crate::workload::WorkloadError;

use super::fabric::{
    combine_latencies, layer_latencies, trials_deviation, whole_layer_latencies, FabricOptions,
    FabricTest, PointShape, TrialOutcome,
};

/// Normal (prefill) or low-latency (decode) dispatch, Appendix D.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DispatchMode {
    /// Variable per-pair payloads from the router.
    Normal,
    /// Every pair padded to the largest (static shapes).
    LowLatency,
}

impl DispatchMode {
    /// The name in reports and on the command line.
    pub fn name(self) -> &'static str {
        match self {
            DispatchMode::Normal => "normal",
            DispatchMode::LowLatency => "low-latency",
        }
    }
}

/// What the user asked for.
#[derive(Debug, Clone)]
pub struct AllToAllParams {
    /// "7.1", "7.2" or "7.3".
    pub test_id: &'static str,
    /// The MoE configuration.
    pub moe: MoeConfig,
    /// EP sizes to sweep.
    pub ep_sizes: Vec<u32>,
    /// Dispatch modes.
    pub modes: Vec<DispatchMode>,
    /// Routing modes.
    pub routings: Vec<RoutingMode>,
    /// Tokens per rank.
    pub batches: Vec<u32>,
    /// Dispatches per trial.
    pub iterations: u32,
    /// SEND/RECV instead of WRITE_WITH_IMM.
    pub send: bool,
    /// One copy per expert or per rank.
    pub copies: DispatchCopies,
    /// Router seed.
    pub seed: u64,
    /// Time the combine phase after every dispatch (the transposed matrix).
    pub combine: bool,
}

/// One planned point.
#[derive(Debug, Clone)]
struct PointPlan {
    ep: u32,
    mode: DispatchMode,
    routing: RoutingMode,
    batch: u32,
    matrix: DispatchMatrix,
    slot_bytes: u64,
}

/// The 7.x sweep.
#[derive(Debug)]
pub struct AllToAllTest {
    params: AllToAllParams,
    plans: Vec<PointPlan>,
    merged: LatencyHistogram,
}

impl AllToAllTest {
    /// Plans every point (routing every batch); fails on impossible input.
    pub fn new(params: AllToAllParams) -> Result<AllToAllTest, WorkloadError> {
        let mut plans = Vec::new();
        for &ep in &params.ep_sizes {
            for &mode in &params.modes {
                for &routing in &params.routings {
                    for &batch in &params.batches {
                        let routed =
                            Router::new(routing, params.seed).route(&params.moe, ep, batch)?;
                        let mut matrix =
                            DispatchMatrix::build(&params.moe, &routed, params.copies)?;
                        if mode == DispatchMode::LowLatency {
                            matrix = matrix.padded();
                        }
                        let slot_bytes = matrix.max_network_pair_bytes().max(1);
                        plans.push(PointPlan {
                            ep,
                            mode,
                            routing,
                            batch,
                            matrix,
                            slot_bytes,
                        });
                    }
                }
            }
        }
        Ok(AllToAllTest {
            params,
            plans,
            merged: LatencyHistogram::new(),
        })
    }

    /// The largest EP size (ranks needed).
    pub fn max_ep(&self) -> u32 {
        self.params.ep_sizes.iter().copied().max().unwrap_or(2)
    }
}

fn median(mut v: Vec<u64>) -> u64 {
    v.sort_unstable();
    v.get(v.len() / 2).copied().unwrap_or(0)
}

impl FabricTest for AllToAllTest {
    fn test_id(&self) -> &'static str {
        self.params.test_id
    }

    fn test_name(&self) -> &'static str {
        match self.params.test_id {
            "7.2" => "Routing Mode and Dispatch Mode Comparison",
            "7.3" => "Wide Expert Parallelism Scaling",
            _ => "AllToAll Dispatch Throughput",
        }
    }

    fn deviations(&self, options: &FabricOptions) -> Vec<String> {
        let mut out: Vec<String> = trials_deviation(options, "configuration")
            .into_iter()
            .collect();
        out.push(
            "host-memory buffers and CPU-initiated posts: GPU-initiated (GIN) dispatch is not modelled"
                .into(),
        );
        out
    }

    fn duration_s(&self) -> Option<f64> {
        None
    }

    fn points(&self) -> usize {
        self.plans.len()
    }

    fn msg_bytes(&self, point: usize) -> Option<u64> {
        Some(self.plans[point].slot_bytes)
    }

    fn slot_per_flow(&self) -> bool {
        true
    }

    fn flows(&self, point: usize, ranks: &[RankInfo], qps: u32) -> Result<Vec<Flow>, String> {
        alltoall_flows(ranks, self.plans[point].ep, qps).map(|(flows, _)| flows)
    }

    fn work(&self, point: usize, flows: &[Flow], trial: u32) -> TrialWork {
        let plan = &self.plans[point];
        let flow_bytes = flows
            .iter()
            .map(|f| {
                let (i, j) = flow_pair(f.id, plan.ep);
                (f.id, plan.matrix.bytes(i, j))
            })
            .collect();
        TrialWork::AllToAll {
            iterations: if trial == u32::MAX {
                self.params.iterations.min(10)
            } else {
                self.params.iterations
            },
            send: self.params.send,
            flow_bytes,
            period_ns: 0,
            gap_ns: 0,
            combine_bytes: if self.params.combine {
                // flow i→j returns what j dispatched to i
                flows
                    .iter()
                    .map(|f| {
                        let (i, j) = flow_pair(f.id, plan.ep);
                        (f.id, plan.matrix.bytes(j, i))
                    })
                    .collect()
            } else {
                Vec::new()
            },
        }
    }

    fn trial_time(&self, _point: usize) -> Duration {
        Duration::from_secs(5) + Duration::from_millis(20) * self.params.iterations
    }

    fn begin_point(
        &mut self,
        point: usize,
        flows: &[Flow],
        _shape: PointShape,
        report: &mut RunReport,
    ) {
        let plan = &self.plans[point];
        self.merged = LatencyHistogram::new();
        let n = plan.ep;
        let mut ranks = vec![0u32; n as usize];
        for f in flows {
            ranks[flow_pair(f.id, n).0 as usize] = f.sender;
        }
        let moe = &self.params.moe;
        report.alltoall.push(AllToAllPoint {
            ep_ranks: n,
            mode: plan.mode.name().into(),
            routing: plan.routing.to_string(),
            moe: MoeReport {
                name: moe.name.clone(),
                experts: moe.experts,
                top_k: moe.top_k,
                hidden: moe.hidden,
                bytes_per_element: moe.bytes_per_element,
            },
            batch_tokens: plan.batch,
            qps_per_peer: flows.first().map_or(1, |f| f.qps),
            op: if self.params.send {
                "send"
            } else {
                "write-imm"
            }
            .into(),
            copies: self.params.copies.to_string(),
            seed: self.params.seed,
            ranks,
            t_dispatch_bytes: t_dispatch_bytes(
                u64::from(plan.batch),
                moe.top_k,
                moe.hidden,
                moe.bytes_per_element,
                n,
            ),
            pair_bytes: (0..n).map(|i| plan.matrix.row_bytes(i).to_vec()).collect(),
            dropped_assignments: plan.matrix.dropped_assignments(),
            slot_bytes: plan.slot_bytes,
            trials: Vec::new(),
            summary: summarize(&[], &LatencyHistogram::new()),
            scaling_efficiency: None,
        });
    }

    fn add_trial(&mut self, ranks: &[RankInfo], outcome: &TrialOutcome, report: &mut RunReport) {
        let point = report
            .alltoall
            .last_mut()
            .expect("begin_point added the point");
        let n = point.ep_ranks as usize;
        let layers = layer_latencies(&outcome.dispatch);
        let iterations = layers.len();
        let mut layer = LatencyHistogram::new();
        let mut layer_sum_ns = 0u128;
        for &slowest in &layers {
            layer.record(slowest);
            layer_sum_ns += u128::from(slowest);
        }
        self.merged.merge(&layer);
        let mut per_rank = Vec::new();
        for r in &outcome.dispatch {
            let ep_index = point.ranks.iter().position(|&x| x == r.rank).unwrap_or(0);
            let mut lat = LatencyHistogram::new();
            let mut idle = LatencyHistogram::new();
            let mut wall_ns = 0u64;
            for &(start, posted, done) in &r.iterations {
                lat.record(done.saturating_sub(start));
                idle.record(done.saturating_sub(posted));
                wall_ns += done.saturating_sub(start);
            }
            let row: u64 = (0..n)
                .filter(|&j| j != ep_index)
                .map(|j| point.pair_bytes[ep_index][j])
                .sum();
            let col: u64 = (0..n)
                .filter(|&i| i != ep_index)
                .map(|i| point.pair_bytes[i][ep_index])
                .sum();
            per_rank.push(RankDispatchResult {
                ep_index: ep_index as u32,
                rank: r.rank,
                node: ranks.get(r.rank as usize).map_or(0, |x| x.node),
                send_bytes_per_dispatch: row,
                recv_bytes_per_dispatch: col,
                latency: lat.summary(),
                idle: idle.summary(),
                bytes_sent: r.bytes_sent,
                cpu_percent: if wall_ns > 0 {
                    r.cpu_s / (wall_ns as f64 / 1e9) * 100.0
                } else {
                    0.0
                },
            });
        }
        let mean_latency_s = if iterations > 0 {
            layer_sum_ns as f64 / iterations as f64 / 1e9
        } else {
            0.0
        };
        let rank_bytes = point
            .pair_bytes
            .iter()
            .map(|row| row.iter().sum::<u64>())
            .sum::<u64>() as f64
            / n.max(1) as f64;
        let network_bytes: u64 = (0..n)
            .flat_map(|i| (0..n).filter(move |&j| j != i).map(move |j| (i, j)))
            .map(|(i, j)| point.pair_bytes[i][j])
            .sum();
        let rate = |bytes: f64| {
            if mean_latency_s > 0.0 {
                bytes / mean_latency_s / 1e9
            } else {
                0.0
            }
        };
        let algbw = rate(rank_bytes);
        let bus = alltoall_busbw_factor(n as u32);
        let phase = |latencies: &[u64], bytes: f64| {
            let mut histogram = LatencyHistogram::new();
            let mut sum = 0u128;
            for &ns in latencies {
                histogram.record(ns);
                sum += u128::from(ns);
            }
            let mean_s = sum as f64 / latencies.len().max(1) as f64 / 1e9;
            let algbw = if mean_s > 0.0 {
                bytes / mean_s / 1e9
            } else {
                0.0
            };
            AllToAllPhase {
                latency: histogram.summary(),
                algbw_gbytes_per_s: algbw,
                busbw_gbytes_per_s: algbw * bus,
            }
        };
        let combined = outcome.dispatch.iter().all(|r| !r.combine.is_empty());
        // the combine moves the transposed matrix: the same total, so the
        // same mean per-rank bytes; the layer moves both
        let (combine, layer_phase) = if combined && !outcome.dispatch.is_empty() {
            (
                Some(phase(&combine_latencies(&outcome.dispatch), rank_bytes)),
                Some(phase(
                    &whole_layer_latencies(&outcome.dispatch),
                    2.0 * rank_bytes,
                )),
            )
        } else {
            (None, None)
        };
        point.trials.push(AllToAllTrial {
            trial: outcome.trial,
            iterations: iterations as u32,
            latency: layer.summary(),
            algbw_gbytes_per_s: algbw,
            busbw_gbytes_per_s: algbw * bus,
            network_gbytes_per_s: rate(network_bytes as f64),
            per_rank,
            counters: outcome.counters.clone(),
            combine,
            layer: layer_phase,
        });
        point.summary = summarize(&point.trials, &self.merged);
        // scaling efficiency against the smallest EP of the same mode/routing/batch
        let key = (
            point.mode.clone(),
            point.routing.clone(),
            point.batch_tokens,
        );
        let this_n = point.ep_ranks;
        let this_p50 = point.summary.p50_ns.as_ref().map(|v| v.mean);
        let base = report
            .alltoall
            .iter()
            .filter(|p| (p.mode.clone(), p.routing.clone(), p.batch_tokens) == key)
            .min_by_key(|p| p.ep_ranks)
            .and_then(|p| Some((p.ep_ranks, p.summary.p50_ns.as_ref()?.mean)));
        let point = report.alltoall.last_mut().expect("the point exists");
        point.scaling_efficiency = match (base, this_p50) {
            (Some((base_n, base_p50)), Some(p50)) if base_n < this_n && p50 > 0.0 => {
                Some(base_p50 / p50 * (f64::from(this_n) / f64::from(base_n)))
            }
            _ => None,
        };
    }

    fn progress(&self, report: &RunReport) -> String {
        let Some(p) = report.alltoall.last() else {
            return String::new();
        };
        let p50 = p.summary.p50_ns.as_ref().map_or(0.0, |v| v.mean);
        let p99 = p.summary.p99_ns.as_ref().map_or(0.0, |v| v.mean);
        let bus = p
            .summary
            .busbw_gbytes_per_s
            .as_ref()
            .map_or(0.0, |v| v.mean);
        format!(
            "AllToAll EP={} {} {} B={}: {} trials, P50 {:.1} µs, P99 {:.1} µs, busbw {bus:.3} GB/s",
            p.ep_ranks,
            p.mode,
            p.routing,
            p.batch_tokens,
            p.summary.trials,
            p50 / 1e3,
            p99 / 1e3
        )
    }
}

fn summarize(trials: &[AllToAllTrial], merged: &LatencyHistogram) -> AllToAllSummary {
    let pick = |f: &dyn Fn(&AllToAllTrial) -> f64| {
        across_trials(&trials.iter().map(f).collect::<Vec<_>>())
    };
    AllToAllSummary {
        trials: trials.len() as u32,
        p50_ns: pick(&|t| t.latency.p50_ns as f64),
        p99_ns: pick(&|t| t.latency.p99_ns as f64),
        algbw_gbytes_per_s: pick(&|t| t.algbw_gbytes_per_s),
        busbw_gbytes_per_s: pick(&|t| t.busbw_gbytes_per_s),
        idle_p50_ns: pick(&|t| median(t.per_rank.iter().map(|r| r.idle.p50_ns).collect()) as f64),
        latency: merged.summary(),
        combine_p50_ns: pick_phase(trials, |t| t.combine.as_ref(), |p| p.latency.p50_ns as f64),
        combine_p99_ns: pick_phase(trials, |t| t.combine.as_ref(), |p| p.latency.p99_ns as f64),
        combine_busbw_gbytes_per_s: pick_phase(
            trials,
            |t| t.combine.as_ref(),
            |p| p.busbw_gbytes_per_s,
        ),
        layer_p50_ns: pick_phase(trials, |t| t.layer.as_ref(), |p| p.latency.p50_ns as f64),
        layer_p99_ns: pick_phase(trials, |t| t.layer.as_ref(), |p| p.latency.p99_ns as f64),
    }
}

/// A phase's value across the trials that timed it (None when none did).
fn pick_phase(
    trials: &[AllToAllTrial],
    phase: impl Fn(&AllToAllTrial) -> Option<&AllToAllPhase>,
    value: impl Fn(&AllToAllPhase) -> f64,
) -> Option<TrialInterval> {
    let values: Vec<f64> = trials.iter().filter_map(&phase).map(value).collect();
    across_trials(&values)
}
