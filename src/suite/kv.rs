//! KV-cache transfers shaped like a serving engine's (IETF 10.1, and the
//! fabric part of 6.1): for each prompt length, requests one at a time from
//! a prefill rank to a decode rank, each moving the model's KV cache as the
//! layout's page descriptors, pushed or pulled, notified, optionally
//! pipelined layer by layer with the (modelled) prefill. TTFT is decomposed
//! into T_prefill (modelled), T_transfer (measured) and T_decode_init
//! (modelled).
//!
//! Runs on the multi-rank runtime: one host with two devices, two hosts,
//! and (later) xPyD pools are the same code.

use std::time::Duration;

use crate::cluster::{Flow, KvPointSpec, KvSideTrial, RankInfo, TrialWork};
use crate::engine::{KvDirection, KvNotify, KvSchedule, PollMode};
use crate::patterns::pairs::pair_flows;
use crate::results::{
    KvPoint, KvReport, KvRequestResult, KvSummary, KvTrial, RunReport, TransferShare,
};
use crate::stats::{across_trials, LatencyHistogram};
use crate::workload::kv::{
    default_prompts, KvLayout, KvModel, KvPlanSpec, KvPlanner, PoolGeometry, PrefillModel,
};
use crate::workload::{Arrival, LengthDist};

use super::fabric::{trials_deviation, FabricOptions, FabricTest, PointShape, TrialOutcome};

/// When a request's descriptors are posted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KvPipeline {
    /// Everything once the (modelled) prefill has ended.
    Request,
    /// Each group of this many layers as soon as its (modelled) compute ends.
    Layers(u32),
}

impl KvPipeline {
    /// The flag's form: "request" or "layer:K".
    pub fn name(&self) -> String {
        match self {
            KvPipeline::Request => "request".into(),
            KvPipeline::Layers(k) => format!("layer:{k}"),
        }
    }
}

/// Everything `infab run kv` was asked for, validated.
#[derive(Debug, Clone)]
pub struct KvParams {
    /// The model's KV shape.
    pub model: KvModel,
    /// Tensor parallelism.
    pub tp: u32,
    /// Page layout.
    pub layout: KvLayout,
    /// Tokens per page.
    pub block_tokens: u32,
    /// Pages per side's pool.
    pub pool_blocks: u32,
    /// Free-list fragmentation.
    pub fragmentation: f64,
    /// Largest WR, bytes (None: the smallest largest-message size of the
    /// run's devices, chosen by node 0).
    pub max_wr_bytes: Option<u64>,
    /// Seed of the pools.
    pub seed: u64,
    /// Push or pull.
    pub direction: KvDirection,
    /// Notification.
    pub notify: KvNotify,
    /// Posting schedule.
    pub pipeline: KvPipeline,
    /// Prompt lengths, tokens (the sweep; unused with `prompt_dist`).
    pub prompts: Vec<u64>,
    /// A prompt mix instead of the sweep: one point, every request's
    /// prompt drawn from it (seeded per trial), clipped at the pool.
    pub prompt_dist: Option<LengthDist>,
    /// Requests per prompt length per trial.
    pub requests: u32,
    /// The modelled prefill.
    pub prefill: PrefillModel,
    /// The modelled decode initialisation, ns.
    pub decode_init_ns: u64,
    /// Check every page.
    pub verify: bool,
    /// How the waiting end waits.
    pub poll: PollMode,
    /// Why that wait was chosen (default rule or the flag).
    pub poll_reason: String,
    /// How requests arrive (closed loop, or an open-loop process).
    pub arrival: Arrival,
    /// Trials per point (bounds the open-loop arrival span).
    pub trials: u32,
}

/// The 10.1 sweep.
#[derive(Debug)]
pub struct KvTest {
    params: KvParams,
    geometry: PoolGeometry,
}

impl KvTest {
    /// Checks the parameters against each other (a prompt that does not fit
    /// the pool, a layer group larger than L, verify without a
    /// notification to wait for) before anything runs.
    pub fn new(params: KvParams) -> Result<KvTest, String> {
        let geometry = PoolGeometry::new(
            &params.model,
            params.tp,
            params.block_tokens,
            params.pool_blocks,
        )
        .map_err(|e| e.to_string())?;
        if let KvPipeline::Layers(k) = params.pipeline {
            if k == 0 || k > params.model.layers {
                return Err(format!(
                    "--pipeline layer:{k}: a layer group must hold 1 ..= {} layers (the model's L)",
                    params.model.layers
                ));
            }
        }
        if params.verify && params.direction == KvDirection::Push && params.notify == KvNotify::None
        {
            return Err(
                "--verify with --direction push needs a notification to know when a request has landed: use --notify imm or send"
                    .into(),
            );
        }
        if params.prompts.is_empty() && params.prompt_dist.is_none() {
            return Err("--prompt needs at least one prompt length".into());
        }
        let test = KvTest { params, geometry };
        for tokens in (0..test.points()).map(|p| test.point_tokens(p)) {
            // plans one request of every length: a prompt that cannot be
            // planned fails here, before any traffic
            test.planner(test.params.seed)?
                .plan(0, tokens)
                .map_err(|e| format!("--prompt {tokens}: {e}"))?;
        }
        Ok(test)
    }

    /// The longest prompt a request may draw: what the pool holds.
    fn prompt_cap(&self) -> u64 {
        u64::from(self.params.pool_blocks) * u64::from(self.params.block_tokens)
    }

    /// Point `point`'s prompt tokens: its sweep length, or for a prompt
    /// mix the longest a request may draw (what sizes buffers and bounds).
    fn point_tokens(&self, point: usize) -> u64 {
        match &self.params.prompt_dist {
            Some(dist) => dist.max().unwrap_or(u64::MAX).min(self.prompt_cap()),
            None => self.params.prompts[point],
        }
    }

    /// A prompt mix's draw for trial `trial` (warmup: `u32::MAX`) of
    /// `requests` requests, clipped at the pool; empty without a mix. Both
    /// the trial's work and its accounting draw it, alike.
    fn trial_prompts(&self, trial: u32, requests: u32) -> Vec<u64> {
        let Some(dist) = &self.params.prompt_dist else {
            return Vec::new();
        };
        let seed = self.params.seed ^ (u64::from(trial) << 32 | 0x9209_7e05);
        dist.draw(requests as usize, seed, Some(self.prompt_cap()))
    }

    /// Requests of the warmup trial.
    fn warmup_requests(&self) -> u32 {
        self.params.requests.min(1)
    }

    fn planner(&self, seed: u64) -> Result<KvPlanner, String> {
        self.planner_with(seed, self.params.max_wr_bytes.unwrap_or(1 << 30))
    }

    fn planner_with(&self, seed: u64, max_wr_bytes: u64) -> Result<KvPlanner, String> {
        KvPlanner::new(KvPlanSpec {
            model: self.params.model.clone(),
            tp: self.params.tp,
            layout: self.params.layout,
            block_tokens: self.params.block_tokens,
            pool_blocks: self.params.pool_blocks,
            fragmentation: self.params.fragmentation,
            max_wr_bytes,
            seed,
        })
        .map_err(|e| e.to_string())
    }

    fn schedule(&self, tokens: u64) -> KvSchedule {
        let layers = self.params.model.layers;
        let groups = match self.params.pipeline {
            KvPipeline::Request => vec![(layers, 0)],
            KvPipeline::Layers(k) => (0..layers.div_ceil(k))
                .map(|g| {
                    let end = ((g + 1) * k).min(layers);
                    (
                        end,
                        self.params.prefill.layer_done_ns(tokens, end - 1, layers),
                    )
                })
                .collect(),
        };
        KvSchedule { groups }
    }

    /// A prompt mix's point: its lengths and sizes are the means over the
    /// requests measured so far (each request keeps its own).
    fn mix_means(&self, point: &mut KvPoint) {
        let n = point.requests.len() as u64;
        if n == 0 {
            return;
        }
        let mean = |f: &dyn Fn(&KvRequestResult) -> u64| {
            (point
                .requests
                .iter()
                .map(|r| u128::from(f(r)))
                .sum::<u128>()
                / u128::from(n)) as u64
        };
        let p = &self.params;
        point.prompt_tokens = mean(&|r| r.prompt_tokens);
        point.kv_bytes = mean(&|r| p.model.kv_bytes(r.prompt_tokens, p.tp).unwrap_or(0));
        point.bytes_per_request = mean(&|r| r.bytes);
        point.descriptors_per_request = mean(&|r| r.descriptors);
        point.wrs_per_request = mean(&|r| r.wrs);
        point.t_prefill_modelled_ns = mean(&|r| r.t_prefill_modelled_ns);
    }

    fn report_header(&self) -> KvReport {
        let p = &self.params;
        KvReport {
            model: p.model.clone(),
            tp: p.tp,
            kv_heads_per_rank: p.model.heads_per_rank(p.tp).unwrap_or(1),
            token_bytes: self.geometry.token_bytes,
            layout: p.layout.name().into(),
            block_tokens: p.block_tokens,
            pool_blocks: p.pool_blocks,
            fragmentation: p.fragmentation,
            direction: p.direction.name().into(),
            notify: p.notify.name().into(),
            pipeline: p.pipeline.name(),
            max_wr_bytes: p.max_wr_bytes.unwrap_or(0),
            prefill_modelled: p.prefill.describe(),
            decode_init_modelled_ns: p.decode_init_ns,
            requests_per_trial: p.requests,
            poll: p.poll.name().into(),
            poll_reason: p.poll_reason.clone(),
            arrival: p.arrival.describe(),
            offered_rate_per_s: p.arrival.rate(),
            prompt_dist: p.prompt_dist.as_ref().map(LengthDist::describe),
            points: Vec::new(),
        }
    }

    /// Trial `trial`'s intended arrivals of `requests` requests (empty in
    /// closed loop), seeded by the run's seed and the trial.
    fn arrivals(&self, trial: u32, requests: u32) -> Vec<u64> {
        let seed = self.params.seed ^ (u64::from(trial) << 32 | 0x5eed);
        self.params.arrival.offsets_ns(requests, seed)
    }

    /// Whether the decode side's notification ends a request (push with a
    /// notification).
    fn decode_waits(&self) -> bool {
        self.params.direction == KvDirection::Push && self.params.notify != KvNotify::None
    }

    /// One request's values from its two ends.
    fn request_result(
        &self,
        trial: u32,
        r: &crate::engine::KvRequestTimes,
        seen_ns: Option<u64>,
        tokens: u64,
    ) -> KvRequestResult {
        let p = &self.params;
        let prefill_ns = p.prefill.prefill_ns(tokens);
        // the decode side has the request: push waits for the notification
        let end_ns = match (p.direction, p.notify, seen_ns) {
            (KvDirection::Push, KvNotify::Imm | KvNotify::Send, Some(seen)) => seen,
            _ => r.data_done_ns,
        };
        let t_transfer = end_ns.saturating_sub(r.first_post_ns);
        let exposed = match p.pipeline {
            KvPipeline::Request => t_transfer,
            // the prefill started at start_ns and ended prefill_ns later
            KvPipeline::Layers(_) => end_ns.saturating_sub(r.start_ns + prefill_ns),
        };
        KvRequestResult {
            trial,
            request: r.request,
            prompt_tokens: tokens,
            t_prefill_modelled_ns: prefill_ns,
            t_transfer_ns: t_transfer,
            t_transfer_exposed_ns: exposed,
            t_decode_init_modelled_ns: p.decode_init_ns,
            t_queue_ns: r.queue_ns,
            ttft_ns: r.queue_ns + prefill_ns + exposed + p.decode_init_ns,
            post_ns: r.post_ns,
            doorbells: r.doorbells,
            notify_lag_ns: seen_ns
                .filter(|_| p.notify != KvNotify::None)
                .map(|seen| seen.saturating_sub(r.data_done_ns)),
            descriptors: r.descriptors,
            wrs: r.wrs,
            bytes: r.bytes,
            verify_mismatches: r.verify_mismatches,
        }
    }
}

fn hist_of(values: impl Iterator<Item = u64>) -> LatencyHistogram {
    let mut h = LatencyHistogram::new();
    for v in values {
        h.record(v);
    }
    h
}

fn ratio(a: u64, b: u64) -> f64 {
    if b == 0 {
        0.0
    } else {
        a as f64 / b as f64
    }
}

/// The summary of a prompt length over every request of every trial.
pub fn summarize_kv(requests: &[KvRequestResult], trials: &[KvTrial]) -> KvSummary {
    let summary = |f: fn(&KvRequestResult) -> u64| hist_of(requests.iter().map(f)).summary();
    let transfer = summary(|r| r.t_transfer_ns);
    let exposed = summary(|r| r.t_transfer_exposed_ns);
    let ttft = summary(|r| r.ttft_ns);
    // the fabric's share of TTFT: the part of T_transfer that delays the
    // first token (all of it without layer pipelining)
    let transfer_share = TransferShare {
        p50: ratio(exposed.p50_ns, ttft.p50_ns),
        p95: ratio(exposed.p95_ns, ttft.p95_ns),
        p99: ratio(exposed.p99_ns, ttft.p99_ns),
    };
    let mean = |f: &dyn Fn(&KvRequestResult) -> f64| {
        if requests.is_empty() {
            0.0
        } else {
            requests.iter().map(f).sum::<f64>() / requests.len() as f64
        }
    };
    let lags: Vec<u64> = requests.iter().filter_map(|r| r.notify_lag_ns).collect();
    let verified: Vec<u64> = requests
        .iter()
        .filter_map(|r| r.verify_mismatches)
        .collect();
    KvSummary {
        requests: requests.len() as u64,
        t_prefill_modelled: summary(|r| r.t_prefill_modelled_ns),
        t_queue: requests
            .iter()
            .any(|r| r.t_queue_ns > 0)
            .then(|| summary(|r| r.t_queue_ns)),
        t_transfer_exposed: exposed,
        transfer_share,
        t_decode_init_modelled: summary(|r| r.t_decode_init_modelled_ns),
        t_transfer: transfer,
        ttft,
        post_ns_per_descriptor: mean(&|r| ratio(r.post_ns, r.descriptors)),
        post_ns_per_wr: mean(&|r| ratio(r.post_ns, r.wrs)),
        post_share: mean(&|r| ratio(r.post_ns, r.t_transfer_ns)),
        notify_lag: (!lags.is_empty()).then(|| hist_of(lags.into_iter()).summary()),
        t_transfer_p50_ns: across_trials(
            &trials
                .iter()
                .map(|t| t.t_transfer_p50_ns as f64)
                .collect::<Vec<_>>(),
        ),
        gbytes_per_s: across_trials(&trials.iter().map(|t| t.gbytes_per_s).collect::<Vec<_>>()),
        verify_mismatches: (!verified.is_empty()).then(|| verified.iter().sum()),
    }
}

/// The active and passive ends of the trial's one KV flow.
fn ends(kv: &[KvSideTrial]) -> (Option<&KvSideTrial>, Option<&KvSideTrial>) {
    (kv.iter().find(|e| e.active), kv.iter().find(|e| !e.active))
}

impl FabricTest for KvTest {
    fn test_id(&self) -> &'static str {
        "10.1"
    }

    fn test_name(&self) -> &'static str {
        "TTFT Under Varying Prompt Lengths (KV-cache transfer)"
    }

    fn deviations(&self, options: &FabricOptions) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        if self.params.requests < 100 {
            out.push(format!(
                "{} requests per prompt length per trial; the draft requires at least 100",
                self.params.requests
            ));
        }
        match &self.params.prompt_dist {
            Some(dist) => out.push(format!(
                "a prompt mix ({}, clipped at the pool's {} tokens) instead of the draft's 128 ..= 16384 sweep: one point, each request its own length",
                dist.describe(),
                self.prompt_cap()
            )),
            None if self.params.prompts != default_prompts() => {
                out.push("prompt lengths differ from the draft's 128 ..= 16384 sweep".into())
            }
            None => {}
        }
        out.extend(trials_deviation(options, "prompt length").filter(|_| options.trials > 1));
        out.push(format!(
            "T_prefill ({}) and T_decode_init ({} ns) are modelled, not measured",
            self.params.prefill.describe(),
            self.params.decode_init_ns
        ));
        if self.params.arrival.is_open() {
            out.push(format!(
                "open-loop arrivals ({}): one KV flow serves its requests one at a time (a single FCFS prefill worker that starts the next prefill once the previous request's KV has landed); T_queue and TTFT are measured from each intended arrival",
                self.params.arrival.describe()
            ));
        }
        out
    }

    fn duration_s(&self) -> Option<f64> {
        None
    }

    fn points(&self) -> usize {
        if self.params.prompt_dist.is_some() {
            1
        } else {
            self.params.prompts.len()
        }
    }

    fn flows(&self, _point: usize, ranks: &[RankInfo], qps: u32) -> Result<Vec<Flow>, String> {
        pair_flows(ranks, 1, qps)
    }

    fn work(&self, point: usize, _flows: &[Flow], trial: u32) -> TrialWork {
        let requests = if trial == u32::MAX {
            self.warmup_requests()
        } else {
            self.params.requests
        };
        // the warmup runs closed loop; every trial its own arrival draw
        let arrivals_ns = if trial == u32::MAX {
            Vec::new()
        } else {
            self.arrivals(trial, requests)
        };
        let prompts = self.trial_prompts(trial, requests);
        // pipelined, each prompt length its own layer times
        let schedules = match self.params.pipeline {
            KvPipeline::Layers(_) => prompts.iter().map(|&t| self.schedule(t)).collect(),
            KvPipeline::Request => Vec::new(),
        };
        TrialWork::Kv {
            requests,
            trial_seed: u64::from(trial),
            budget_ns: self.trial_time(point).as_nanos() as u64,
            arrivals_ns,
            prompts,
            schedules,
        }
    }

    fn msg_bytes(&self, point: usize) -> Option<u64> {
        self.params
            .model
            .kv_bytes(self.point_tokens(point), self.params.tp)
            .ok()
    }

    fn kv(&self, point: usize) -> Option<KvPointSpec> {
        let p = &self.params;
        let tokens = self.point_tokens(point);
        Some(KvPointSpec {
            model: p.model.clone(),
            tp: p.tp,
            layout: p.layout,
            block_tokens: p.block_tokens,
            pool_blocks: p.pool_blocks,
            fragmentation: p.fragmentation,
            max_wr_bytes: p.max_wr_bytes.unwrap_or(0),
            seed: p.seed,
            direction: p.direction,
            notify: p.notify,
            prompt_tokens: tokens,
            schedule: self.schedule(tokens),
            verify: p.verify,
            gap_ns: 0,
            poll: p.poll,
        })
    }

    fn trial_time(&self, point: usize) -> Duration {
        // a generous bound: every request at 50 MB/s (a slow SoftRoCE
        // guest), plus its modelled prefill when pipelined, plus 20 ms (a
        // prompt mix: as if every request drew the longest)
        let tokens = self.point_tokens(point);
        let bytes = self.msg_bytes(point).unwrap_or(0);
        let prefill = match self.params.pipeline {
            KvPipeline::Request => 0,
            KvPipeline::Layers(_) => self.params.prefill.prefill_ns(tokens),
        };
        // 50 MB/s is 20 ns per byte
        let per_request = bytes.saturating_mul(20) + prefill + 20_000_000;
        // open loop: plus the latest last arrival of any trial
        let span = (0..self.params.trials.max(1))
            .filter_map(|t| self.arrivals(t, self.params.requests).last().copied())
            .max()
            .unwrap_or(0);
        Duration::from_nanos(
            per_request
                .saturating_mul(u64::from(self.params.requests))
                .saturating_add(span),
        )
    }

    fn begin_point(
        &mut self,
        point: usize,
        flows: &[Flow],
        shape: PointShape,
        report: &mut RunReport,
    ) {
        let tokens = self.point_tokens(point);
        if report.kv.is_none() {
            report.kv = Some(self.report_header());
            report.parameters.op = match self.params.direction {
                KvDirection::Push => "write".into(),
                KvDirection::Pull => "read".into(),
            };
            report.parameters.mode = "kv".into();
            report.parameters.verify = self.params.verify;
            report.parameters.max_wr_bytes = shape.wr_bytes;
            report.parameters.sizes_bytes = (0..self.points())
                .filter_map(|p| self.msg_bytes(p))
                .collect();
        }
        // what node 0 chose for every device of the run
        let kv = report.kv.as_mut().expect("set above");
        kv.max_wr_bytes = shape.wr_bytes;
        let first = self
            .planner_with(self.params.seed, shape.wr_bytes)
            .and_then(|mut p| p.plan(0, tokens).map_err(|e| e.to_string()));
        let (descriptors, wrs, bytes) = first
            .map(|p| (p.descriptors.len() as u64, p.wrs.len() as u64, p.bytes))
            .unwrap_or_default();
        // a prompt mix's sizes are means over its requests: none yet
        let (tokens, descriptors, wrs, bytes) = if self.params.prompt_dist.is_some() {
            (0, 0, 0, 0)
        } else {
            (tokens, descriptors, wrs, bytes)
        };
        let kv = report.kv.as_mut().expect("set above");
        kv.points.push(KvPoint {
            prompt_tokens: tokens,
            kv_bytes: self
                .params
                .model
                .kv_bytes(tokens, self.params.tp)
                .unwrap_or(0),
            bytes_per_request: bytes,
            descriptors_per_request: descriptors,
            wrs_per_request: wrs,
            qps: flows.first().map_or(1, |f| f.qps),
            tx_depth: shape.tx_depth,
            t_prefill_modelled_ns: self.params.prefill.prefill_ns(tokens),
            trials: Vec::new(),
            summary: summarize_kv(&[], &[]),
            requests: Vec::new(),
        });
    }

    fn add_trial(&mut self, _ranks: &[RankInfo], outcome: &TrialOutcome, report: &mut RunReport) {
        let Some(kv) = report.kv.as_mut() else {
            return;
        };
        let fixed = self.point_tokens(kv.points.len().saturating_sub(1));
        let Some(point) = kv.points.last_mut() else {
            return;
        };
        let mix = self.trial_prompts(outcome.trial, self.params.requests);
        let tokens_of = |request: u32| mix.get(request as usize).copied().unwrap_or(fixed);
        let (active, passive) = ends(&outcome.kv);
        let seen = |request: u32| {
            passive.and_then(|p| p.seen.iter().find(|(r, _)| *r == request).map(|(_, t)| *t))
        };
        let results: Vec<KvRequestResult> = active
            .map(|a| {
                a.requests
                    .iter()
                    // pushed with a notification, a request is complete only
                    // once the decode side saw it (a trial cut short may end
                    // between the two)
                    .filter(|r| !self.decode_waits() || seen(r.request).is_some())
                    .map(|r| {
                        self.request_result(outcome.trial, r, seen(r.request), tokens_of(r.request))
                    })
                    .collect()
            })
            .unwrap_or_default();
        let p50 = |f: fn(&KvRequestResult) -> u64| hist_of(results.iter().map(f)).summary().p50_ns;
        let t_transfer_p50 = p50(|r| r.t_transfer_ns);
        // a prompt mix moves different sizes: its rate is bytes over time
        // summed over the requests, not one size over the median time
        let gbytes_per_s = if self.params.prompt_dist.is_some() {
            ratio(
                results.iter().map(|r| r.bytes).sum(),
                results.iter().map(|r| r.t_transfer_ns).sum(),
            )
        } else {
            ratio(point.bytes_per_request, t_transfer_p50)
        };
        point.trials.push(KvTrial {
            trial: outcome.trial,
            requests: results.len() as u32,
            t_transfer_p50_ns: t_transfer_p50,
            ttft_p50_ns: p50(|r| r.ttft_ns),
            gbytes_per_s,
            cpu_s: active.map_or(0.0, |a| a.cpu_s),
            counters: outcome.counters.clone(),
        });
        point.requests.extend(results);
        point.summary = summarize_kv(&point.requests, &point.trials);
        if self.params.prompt_dist.is_some() {
            self.mix_means(point);
        }
    }

    fn progress(&self, report: &RunReport) -> String {
        let Some(point) = report.kv.as_ref().and_then(|k| k.points.last()) else {
            return String::new();
        };
        let s = &point.summary;
        let prompt = match self.params.prompt_dist {
            Some(_) => format!("prompt mix, mean {} tokens", point.prompt_tokens),
            None => format!("{} tokens", point.prompt_tokens),
        };
        format!(
            "{prompt}: {} requests, T_transfer P50 {:.3} ms, TTFT P50 {:.3} ms (T_transfer share {:.0} %), post {:.0} ns/descriptor",
            s.requests,
            s.t_transfer.p50_ns as f64 / 1e6,
            s.ttft.p50_ns as f64 / 1e6,
            s.transfer_share.p50 * 100.0,
            s.post_ns_per_descriptor
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn result(t_transfer_ns: u64, ttft_ns: u64) -> KvRequestResult {
        KvRequestResult {
            trial: 0,
            request: 0,
            prompt_tokens: 128,
            t_prefill_modelled_ns: ttft_ns - t_transfer_ns,
            t_transfer_ns,
            t_transfer_exposed_ns: t_transfer_ns,
            t_decode_init_modelled_ns: 0,
            t_queue_ns: 0,
            ttft_ns,
            post_ns: 100,
            doorbells: 1,
            notify_lag_ns: None,
            descriptors: 10,
            wrs: 20,
            bytes: 1000,
            verify_mismatches: Some(0),
        }
    }

    #[test]
    fn summary_shares_and_posting_costs() {
        let requests = vec![result(1000, 4000), result(1000, 4000)];
        let s = summarize_kv(&requests, &[]);
        assert_eq!(s.requests, 2);
        assert_eq!(s.t_transfer.p50_ns, 1000);
        assert!((s.transfer_share.p50 - 0.25).abs() < 1e-3);
        assert!((s.post_ns_per_descriptor - 10.0).abs() < 1e-9);
        assert!((s.post_ns_per_wr - 5.0).abs() < 1e-9);
        assert_eq!(s.verify_mismatches, Some(0));
        assert!(s.notify_lag.is_none());
    }
}
