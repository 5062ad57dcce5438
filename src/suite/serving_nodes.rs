//! `infab run serving` across hosts (6.2, 6.4): the serving pools on the
//! multi-rank runtime. Every prefill and decode rank is one worker; node 0
//! plans each trial (arrivals, lengths, prefill workers, static routes) and
//! sends the whole plan to every node, whose workers ask, grant and move
//! KV over the fabric (`--control fabric`). Node 0 shifts every node's
//! times into its own clock and accounts the trial as a one-host run does.

use std::time::Duration;

use crate::cluster::{Flow, RankInfo, ServingPointSpec, TrialWork};
use crate::engine::{error_rank, DecodeTally, PrefillTally};
use crate::report::{RunReport, ServingPoint};
use crate::topology::Role;
use crate::workload::serving::{PoolRatio, ServingControl};
use crate::workload::Arrival;

use super::fabric::{FabricOptions, FabricTest, PointShape, TrialOutcome};
use super::serving::{
    account, blank_point, finish, print_point, push_point, serving_header, summarize, trial_budget,
    trial_plan, with_rate, ServingParams, ServingSweep,
};
use super::SuiteError;

/// Requests of the warmup trial (it sets up nothing a measured trial
/// keeps; it only warms the paths).
const WARMUP_REQUESTS: u32 = 4;

/// The serving points as a [`FabricTest`].
pub struct ServingNodesTest {
    params: ServingParams,
    /// Every point: its ratio, arrival process and modelled prefill
    /// capacity.
    points: Vec<(PoolRatio, Arrival, f64)>,
    /// The point running now (its index), as reported.
    current: Option<(usize, ServingPoint)>,
}

impl ServingNodesTest {
    /// The run's points; a 10.3 tenant run, a rate sweep or shared-state
    /// control are refused (one line each).
    pub fn new(params: ServingParams) -> Result<ServingNodesTest, String> {
        if params.control != ServingControl::Fabric {
            return Err(
                "serving pools on several nodes need --control fabric (they share no memory)"
                    .into(),
            );
        }
        let points =
            match &params.sweep {
                ServingSweep::Tenants(_) => return Err(
                    "--tenant (10.3) runs its pools on one host for now; drop --nnodes/--topology"
                        .into(),
                ),
                ServingSweep::RateSweep(_) => return Err(
                    "--rate-sweep stops at the first rate that misses the SLO, which runs on one \
                     host for now; use --oversubscribe or one --arrival rate per run across nodes"
                        .into(),
                ),
                ServingSweep::Points => params
                    .ratios
                    .iter()
                    .map(|&r| (r, params.arrival.clone(), params.prefill_capacity(r)))
                    .collect(),
                ServingSweep::Oversubscribe(multiples) => params
                    .ratios
                    .iter()
                    .flat_map(|&r| {
                        let (params, capacity) = (&params, params.prefill_capacity(r));
                        multiples
                            .iter()
                            .map(move |m| (r, with_rate(&params.arrival, m * capacity), capacity))
                    })
                    .collect(),
            };
        Ok(ServingNodesTest {
            params,
            points,
            current: None,
        })
    }

    /// The most prefill and decode workers any point needs.
    pub fn ranks_needed(&self) -> (u32, u32) {
        let most = |f: fn(&PoolRatio) -> u32| self.params.ratios.iter().map(f).max().unwrap_or(1);
        (most(|r| r.prefill), most(|r| r.decode))
    }

    fn plan(
        &self,
        point: usize,
        trial: u32,
    ) -> (Vec<crate::workload::serving::PlannedRequest>, u64) {
        let (ratio, arrival, _) = &self.points[point];
        if trial == u32::MAX {
            let mut warm = self.params.clone();
            warm.requests = warm.requests.min(WARMUP_REQUESTS);
            return trial_plan(&warm, *ratio, arrival, trial);
        }
        trial_plan(&self.params, *ratio, arrival, trial)
    }
}

impl FabricTest for ServingNodesTest {
    fn test_id(&self) -> &'static str {
        self.params.test_id()
    }

    fn test_name(&self) -> &'static str {
        self.params.test_name()
    }

    fn deviations(&self, options: &FabricOptions) -> Vec<String> {
        let mut d = vec![
            "serving pools on the multi-rank runtime: every prefill and decode worker is one rank (one \
             thread); page requests, grants and refusals are RDMA SENDs on each worker pair's first QP \
             (--control fabric), so T_admission includes the ASK/GRANT round trip (push) or the ASK's \
             one-way trip (pull)"
                .to_string(),
            "prefill compute, decode initialisation and decode steps are modelled (the workers wait that \
             long); ITL is the modelled decode step"
                .to_string(),
            "a request's times come from two nodes: each node's are shifted into node 0's clock by the \
             measured offset, so TTFT, a pushed request's T_transfer (GRANT received at the prefill \
             node to landed at the decode node) and a pulled request's T_admission (prefill end to \
             ASK received) carry that offset's error bound (cluster.nodes[].clock_error_bound_ns)"
                .to_string(),
        ];
        if options.trials < 20 {
            d.push(format!(
                "{} trials per point; the draft requires at least 20",
                options.trials
            ));
        }
        d
    }

    fn duration_s(&self) -> Option<f64> {
        None
    }

    fn points(&self) -> usize {
        self.points.len()
    }

    fn flows(&self, point: usize, ranks: &[RankInfo], _qps: u32) -> Result<Vec<Flow>, String> {
        let (ratio, _, _) = self.points[point];
        let of = |role: Role| -> Vec<u32> {
            ranks
                .iter()
                .filter(|r| r.role == role)
                .map(|r| r.rank)
                .collect()
        };
        let (prefill, decode) = (of(Role::Prefill), of(Role::Decode));
        if prefill.len() < ratio.prefill as usize || decode.len() < ratio.decode as usize {
            return Err(format!(
                "{ratio} needs {} prefill and {} decode ranks; the run has {} and {}: add nodes, \
                 --ranks-per-node or ranks in the topology",
                ratio.prefill,
                ratio.decode,
                prefill.len(),
                decode.len()
            ));
        }
        let d_n = ratio.decode as usize;
        Ok((0..ratio.prefill as usize)
            .flat_map(|p| (0..d_n).map(move |d| (p, d)))
            .map(|(p, d)| Flow {
                id: (p * d_n + d) as u32,
                sender: prefill[p],
                receiver: decode[d],
                qps: self.params.qps,
                slot: false,
            })
            .collect())
    }

    fn work(&self, point: usize, _flows: &[Flow], trial: u32) -> TrialWork {
        let (plan, seed) = self.plan(point, trial);
        let budget = trial_budget(&self.params, &plan);
        TrialWork::Serving {
            plan,
            seed,
            budget_ns: budget.as_nanos() as u64,
        }
    }

    fn serving(&self, point: usize) -> Option<ServingPointSpec> {
        let (ratio, _, _) = self.points[point];
        let p = &self.params;
        Some(ServingPointSpec {
            prefill: ratio.prefill,
            decode: ratio.decode,
            model: p.model.clone(),
            tp: p.tp,
            layout: p.layout,
            block_tokens: p.block_tokens,
            pool_blocks: p.pool_blocks,
            fragmentation: p.fragmentation,
            max_wr_bytes: p.max_wr_bytes.unwrap_or(0),
            direction: p.direction,
            admission: p.admission,
            qps: p.qps,
            tx_depth: p.tx_depth,
            verify: p.verify,
            decode_init_ns: p.decode_init_ns,
            decode_step_ns: p.decode_step_ns,
            poll: p.poll,
            huge_pages: p.huge_pages,
        })
    }

    fn trial_time(&self, point: usize) -> Duration {
        // every trial draws its own plan: node 0 waits for the longest
        (0..self.params.trials)
            .map(|t| trial_budget(&self.params, &self.plan(point, t).0))
            .max()
            .unwrap_or_default()
    }

    fn begin_point(
        &mut self,
        point: usize,
        _flows: &[Flow],
        shape: PointShape,
        report: &mut RunReport,
    ) {
        if report.serving.is_none() {
            let mut header = serving_header(&self.params);
            header.max_wr_bytes = shape.wr_bytes;
            report.serving = Some(header);
            report.parameters.op = "write-imm".into();
            report.parameters.mode = "serving".into();
            report.parameters.clocks = vec!["intended-arrival".into()];
            report.parameters.verify = self.params.verify;
            report.parameters.max_wr_bytes = shape.wr_bytes;
            report.parameters.tx_depth = self.params.tx_depth;
        }
        let (ratio, arrival, capacity) = &self.points[point];
        let blank = blank_point(&self.params, *ratio, arrival, *capacity, None);
        push_point(report, &blank);
        self.current = Some((point, blank));
    }

    fn add_trial(&mut self, _ranks: &[RankInfo], outcome: &TrialOutcome, report: &mut RunReport) {
        let Some((index, point)) = self.current.as_mut() else {
            return;
        };
        let (ratio, arrival, _) = &self.points[*index];
        let (ratio, arrival) = (*ratio, arrival.clone());
        let (plan, _) = trial_plan(&self.params, ratio, &arrival, outcome.trial);
        let mut prefill: Vec<PrefillTally> = (0..ratio.prefill)
            .map(|_| PrefillTally::default())
            .collect();
        let mut decode: Vec<DecodeTally> =
            (0..ratio.decode).map(|_| DecodeTally::default()).collect();
        let mut peaks = vec![(0, 0); ratio.decode as usize];
        for w in &outcome.serving {
            let i = w.worker as usize;
            if w.prefill {
                if let Some(t) = prefill.get_mut(i) {
                    t.requests = w.requests.clone();
                    t.cpu_s = w.cpu_s;
                }
            } else if let Some(t) = decode.get_mut(i) {
                t.landed = w.landed.clone();
                t.pulled = w.requests.clone();
                t.cpu_s = w.cpu_s;
                peaks[i] = w.peaks;
            }
        }
        // the most telling worker error names the trial's (see error_rank)
        let error = outcome
            .serving
            .iter()
            .filter_map(|w| w.error.as_ref())
            .min_by_key(|e| error_rank(e))
            .map(|e| SuiteError::Invalid(e.clone()));
        let trial = account(
            &self.params,
            outcome.trial,
            &plan,
            outcome.start_ns,
            &prefill.iter().collect::<Vec<_>>(),
            &decode.iter().collect::<Vec<_>>(),
            &peaks,
            outcome.counters.clone(),
            error.as_ref(),
        );
        point.trials.push(trial);
        point.summary = summarize(&self.params, &point.trials);
        push_point(report, point);
        finish(&self.params, report);
        if point.trials.len() as u32 == self.params.trials {
            print_point(point);
        }
    }

    fn progress(&self, report: &RunReport) -> String {
        let Some(p) = report.serving.as_ref().and_then(|s| s.points.last()) else {
            return String::new();
        };
        let ms = |v: Option<f64>| v.map_or("-".into(), |ns| format!("{:.2} ms", ns / 1e6));
        format!(
            "{} at {:.1} req/s: TTFT P99 {}, T_transfer P99 {}",
            p.ratio,
            p.offered_rate_per_s,
            ms(p.summary.ttft_p99_ns.as_ref().map(|i| i.mean)),
            ms(p.summary.t_transfer_p99_ns.as_ref().map(|i| i.mean)),
        )
    }
}
