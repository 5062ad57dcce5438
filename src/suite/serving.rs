//! Serving pools on one host (IETF 6.2, 6.4, 9.4 and the Request_Rate knee
//! of §4.2): prefill workers on one device, decode workers on another,
//! each a thread with its own pool buffer and QPs to every worker of the
//! other role. Requests arrive open loop; the schedule (who prefills what,
//! modelled prefill times, static routes) is planned as data
//! ([`crate::workload::serving`]) and replayed in real time by the engine
//! ([`crate::engine::run_prefill_worker`]); every latency counts from the
//! intended arrival. Points: one per xPyD ratio at the given rate
//! (`--xpyd`), multiples of the modelled prefill capacity
//! (`--oversubscribe`, 6.4), or rising rates until the TTFT P99 SLO fails
//! (`--rate-sweep`). The results file is rewritten after every trial.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Barrier, OnceLock};
use std::time::{Duration, Instant};

use crate::control::{monotonic_ns, BufferKey};
use crate::engine::{
    kv_fill_pattern, run_decode_worker, run_prefill_worker, ControlLayout, DecodeTally,
    DecodeWorker, Endpoint, EngineError, PollMode, PoolRunPlan, PoolShared, PrefillTally,
    PrefillWorker, QpSet, SERVING_RECV_DEPTH,
};
use crate::report::{
    BurstStats, EndpointsReport, NodeCounters, RunParameters, RunReport, ServingPoint,
    ServingReport, ServingRequestResult, ServingSummary, ServingTrial, ToolInfo, WorkerShare,
    SCHEMA_VERSION,
};
use crate::stats::bursts::{
    binned_bytes, bursts, gaps_ns, peak_and_mean_gbytes_per_s, TransferSpan,
};
use crate::stats::{across_trials, jain_index, nearest_rank, LatencyHistogram, LatencySummary};
use crate::sysinfo::CounterSnapshot;
use crate::verbs::{QpCaps, QpPathOptions, RdmaDevice, RemoteAccess};
use crate::workload::kv::{KvLayout, KvModel, KvPlanSpec, KvPlanner, PoolGeometry, PrefillModel};
use crate::workload::serving::{
    interference_penalty_pct, pareto_optimal, plan_requests, prefill_capacity_per_s, Admission,
    PagePool, PlannedRequest, PoolRatio, Route, ServingControl, Tenant,
};
use crate::workload::{Arrival, LengthDist};

use super::{conclude, rfc3339_now, SuiteError};
use crate::engine::{error_rank, panic_text, KvDirection};

/// Bytes after the KV pages of every pool buffer where zero-length
/// receives point.
const NOTIFY_BYTES: u64 = 4096;

/// From fixing a trial's start to the start: the worker threads spawn,
/// pin and post their receives.
const START_LEAD: Duration = Duration::from_millis(50);

/// Slowest rate the trial budget assumes KV moves at (a TCG SoftRoCE bed
/// moves ~100 MB/s; anything slower is a stall, reported as such).
pub(super) const BUDGET_BYTES_PER_S: f64 = 10e6;

/// How the run's points are chosen.
#[derive(Debug, Clone, PartialEq)]
pub enum ServingSweep {
    /// One point per ratio at the given arrival process.
    Points,
    /// 6.4: the arrival rate as these multiples of the modelled prefill
    /// capacity.
    Oversubscribe(Vec<f64>),
    /// Request_Rate: these rates (requests/s), ascending, until the TTFT
    /// P99 SLO fails.
    RateSweep(Vec<f64>),
    /// 10.3: these model instances, each on its own pools, run alone and
    /// then all at once on the shared fabric.
    Tenants(Vec<TenantRun>),
}

/// One tenant of a 10.3 run with its modelled prefill (from its model).
#[derive(Debug, Clone, PartialEq)]
pub struct TenantRun {
    /// Its model, pools and rate.
    pub tenant: Tenant,
    /// Its modelled prefill.
    pub prefill: PrefillModel,
}

impl ServingSweep {
    fn name(&self) -> &'static str {
        match self {
            ServingSweep::Points => "points",
            ServingSweep::Oversubscribe(_) => "oversubscribe",
            ServingSweep::RateSweep(_) => "rate-sweep",
            ServingSweep::Tenants(_) => "tenants",
        }
    }
}

/// Validated settings of a serving run.
#[derive(Debug, Clone)]
pub struct ServingParams {
    /// The model's KV shape.
    pub model: KvModel,
    /// Tensor parallelism.
    pub tp: u32,
    /// Page layout.
    pub layout: KvLayout,
    /// Push (prefill workers WRITE) or pull (decode workers READ, then
    /// notify).
    pub direction: KvDirection,
    /// Tokens per page.
    pub block_tokens: u32,
    /// Pages in each worker's pool.
    pub pool_blocks: u32,
    /// Free-list fragmentation.
    pub fragmentation: f64,
    /// Largest WR (None: the smaller device maximum).
    pub max_wr_bytes: Option<u64>,
    /// QPs per prefill→decode worker pair.
    pub qps: u32,
    /// Outstanding WRs per QP.
    pub tx_depth: u32,
    /// xPyD ratios.
    pub ratios: Vec<PoolRatio>,
    /// Arrival process (its rate is replaced by sweeps).
    pub arrival: Arrival,
    /// Prompt lengths.
    pub prompt_dist: LengthDist,
    /// Output lengths.
    pub output_dist: LengthDist,
    /// Requests offered per point per trial.
    pub requests: u32,
    /// Modelled prefill.
    pub prefill: PrefillModel,
    /// Modelled decode initialisation, ns.
    pub decode_init_ns: u64,
    /// Modelled decode step, ns.
    pub decode_step_ns: u64,
    /// Decode routing.
    pub route: Route,
    /// Decode admission.
    pub admission: Admission,
    /// How prefill workers ask for decode pages: shared state or messages
    /// on the fabric.
    pub control: ServingControl,
    /// Which points.
    pub sweep: ServingSweep,
    /// TTFT SLO, ns.
    pub slo_ttft_ns: Option<u64>,
    /// ITL SLO, ns.
    pub slo_itl_ns: Option<u64>,
    /// Rate series bin, ns.
    pub bin_ns: u64,
    /// Check every page.
    pub verify: bool,
    /// Seed of arrivals, lengths, routes and pools.
    pub seed: u64,
    /// Trials per point.
    pub trials: u32,
    /// Stall timeout.
    pub stall_timeout: Duration,
    /// How the workers wait.
    pub poll: PollMode,
    /// Buffers on huge pages.
    pub huge_pages: bool,
    /// Transport knobs.
    pub path: QpPathOptions,
    /// Results file.
    pub json: Option<PathBuf>,
    /// DUT label.
    pub dut_id: String,
}

impl ServingParams {
    /// The test id the run reports: 6.4 for an oversubscription sweep,
    /// else 6.2.
    pub fn test_id(&self) -> &'static str {
        match self.sweep {
            ServingSweep::Oversubscribe(_) => "6.4",
            ServingSweep::Tenants(_) => "10.3",
            _ => "6.2",
        }
    }

    pub(super) fn test_name(&self) -> &'static str {
        match self.sweep {
            ServingSweep::Tenants(_) => {
                "End-to-End Latency Under Multi-Tenant Load (serving pools, open-loop arrivals)"
            }
            ServingSweep::Oversubscribe(_) => {
                "Prefill Oversubscription (serving pools, open-loop arrivals)"
            }
            ServingSweep::RateSweep(_) => {
                "Request Rate capacity knee (serving pools, open-loop arrivals)"
            }
            ServingSweep::Points => "xPyD Ratio (serving pools, open-loop arrivals)",
        }
    }

    /// The length caps a draw is clipped to: a request's prompt and output
    /// together must fit one decode pool.
    fn caps(&self) -> (u64, u64) {
        let tokens = u64::from(self.pool_blocks) * u64::from(self.block_tokens);
        let prompt = self.prompt_dist.max().unwrap_or(tokens / 2).min(tokens);
        (prompt, tokens.saturating_sub(prompt).max(1))
    }

    /// The trial's requests: arrivals, prompt and output lengths.
    pub(super) fn draws(&self, arrival: &Arrival, trial: u32) -> (Vec<u64>, Vec<u64>, Vec<u64>) {
        let seed = self.seed ^ u64::from(trial).wrapping_mul(0x9e37_79b9_7f4a_7c15);
        let (prompt_cap, output_cap) = self.caps();
        let n = self.requests as usize;
        (
            arrival.offsets_ns(self.requests, seed),
            self.prompt_dist.draw(n, seed, Some(prompt_cap)),
            // outputs from another stream than the prompts
            self.output_dist.draw(n, !seed, Some(output_cap)),
        )
    }

    /// The modelled prefill capacity (requests/s) of `ratio`'s prefill
    /// workers over the prompts of the run's first draw.
    pub(super) fn prefill_capacity(&self, ratio: PoolRatio) -> f64 {
        let (_, prompts, _) = self.draws(&self.arrival, 0);
        prefill_capacity_per_s(&prompts, &|t| self.prefill.prefill_ns(t), ratio.prefill)
    }

    /// The settings of tenant `index` run on its own: its model, pools,
    /// prefill model and rate, and a seed of its own (the same requests
    /// alone and shared).
    fn tenant_params(&self, run: &TenantRun, index: usize) -> ServingParams {
        let mut p = self.clone();
        p.model = run.tenant.model.clone();
        p.ratios = vec![run.tenant.ratio];
        p.prefill = run.prefill.clone();
        if let Some(rate) = run.tenant.rate {
            p.arrival = with_rate(&self.arrival, rate);
        }
        p.seed = self.seed ^ (index as u64 + 1).wrapping_mul(0x5851_f42d_4c95_7f2d);
        p.sweep = ServingSweep::Points;
        p.json = None;
        p
    }

    /// Checks what can be checked before any device is opened: a request
    /// of the longest prompt and output fits one pool, the layout pushes.
    pub fn check(&self) -> Result<(), String> {
        if let ServingSweep::Tenants(tenants) = &self.sweep {
            for (i, t) in tenants.iter().enumerate() {
                self.tenant_params(t, i)
                    .check()
                    .map_err(|e| format!("tenant {}: {e}", t.tenant.name))?;
            }
        }
        let tokens = u64::from(self.pool_blocks) * u64::from(self.block_tokens);
        if let (Some(p), Some(o)) = (self.prompt_dist.max(), self.output_dist.max()) {
            if p + o > tokens {
                return Err(format!(
                    "a request of {p} prompt + {o} output tokens needs {} pages, but --pool-blocks is {} \
                     ({} tokens per page); raise --pool-blocks to at least {}",
                    (p + o).div_ceil(u64::from(self.block_tokens)),
                    self.pool_blocks,
                    self.block_tokens,
                    (p + o).div_ceil(u64::from(self.block_tokens))
                ));
            }
        }
        if matches!(self.arrival, Arrival::Closed) {
            return Err(
                "--arrival closed: serving pools need an open-loop arrival process \
                        (poisson:RATE, bursty:RATE,cv=X, constant:RATE or trace:FILE)"
                    .into(),
            );
        }
        if self.control == ServingControl::Fabric && self.route == Route::LeastLoaded {
            return Err(
                "--route least-loaded reads every decode worker's load, which --control fabric \
                 does not share; use --route round-robin or random"
                    .into(),
            );
        }
        if let ServingSweep::RateSweep(_) = self.sweep {
            if self.slo_ttft_ns.is_none() {
                return Err(
                    "--rate-sweep needs --slo-ttft (the knee is the highest rate that meets it)"
                        .into(),
                );
            }
        }
        if self.requests >= crate::engine::SERVING_MAX_REQUESTS {
            return Err(format!(
                "--requests {} is above {}",
                self.requests,
                crate::engine::SERVING_MAX_REQUESTS - 1
            ));
        }
        Ok(())
    }
}

/// The workers of one ratio, set up and connected.
struct Pools {
    prefill: Vec<(Endpoint, QpSet)>,
    decode: Vec<(Endpoint, QpSet)>,
    max_wr_bytes: u64,
    /// Fabric control: the prefill and the decode workers' message slots.
    prefill_control: Option<ControlLayout>,
    decode_control: Option<ControlLayout>,
}

fn set_up(
    params: &ServingParams,
    ratio: PoolRatio,
    prefill_dev: &Arc<RdmaDevice>,
    decode_dev: &Arc<RdmaDevice>,
) -> Result<Pools, SuiteError> {
    let geometry = PoolGeometry::new(
        &params.model,
        params.tp,
        params.block_tokens,
        params.pool_blocks,
    )
    .map_err(|e| SuiteError::Invalid(e.to_string()))?;
    let max_msg = prefill_dev
        .limits()
        .max_msg_bytes
        .min(decode_dev.limits().max_msg_bytes);
    let max_wr_bytes = params.max_wr_bytes.unwrap_or(max_msg);
    if max_wr_bytes > max_msg {
        return Err(SuiteError::Invalid(format!(
            "--max-wr-bytes {max_wr_bytes} exceeds the devices' largest message ({max_msg} B); lower it"
        )));
    }
    let qps = params.qps as usize;
    let depth_cap = prefill_dev
        .limits()
        .max_qp_wr
        .min(decode_dev.limits().max_qp_wr)
        .saturating_sub(2)
        .max(2) as u32;
    // the workers' windows are --tx-depth: the send queues must hold it
    if params.tx_depth > depth_cap {
        return Err(SuiteError::Invalid(format!(
            "--tx-depth {} exceeds what the devices' QPs hold ({depth_cap} WRs plus 2); lower it",
            params.tx_depth
        )));
    }
    let caps = QpCaps {
        max_send_wr: params.tx_depth + 2,
        max_recv_wr: SERVING_RECV_DEPTH + 1,
        max_inline_bytes: 0,
    };
    let control = |peers: u32| {
        (params.control == ServingControl::Fabric).then(|| {
            ControlLayout::new(
                geometry.total_bytes(),
                peers as usize,
                params.pool_blocks,
                params.tx_depth,
            )
        })
    };
    let (prefill_control, decode_control) = (control(ratio.decode), control(ratio.prefill));
    let bytes = |c: Option<ControlLayout>| {
        geometry.total_bytes() + c.map_or(0, |c| c.bytes()) + NOTIFY_BYTES
    };
    let mut prefill = Vec::new();
    for _ in 0..ratio.prefill {
        // pull: the decode workers READ the prefill pools
        let access = match params.direction {
            KvDirection::Pull => RemoteAccess::READ,
            KvDirection::Push => RemoteAccess::NONE,
        };
        let ep = Endpoint::new(
            Arc::clone(prefill_dev),
            bytes(prefill_control),
            crate::verbs::MemoryKind::host(params.huge_pages),
            access,
        )?;
        let mut set = QpSet::create_lanes(&ep, &[ratio.decode as usize * qps], caps)?;
        set.set_poll(params.poll);
        if params.verify {
            kv_fill_pattern(&ep.buffer, geometry.total_bytes())?;
        }
        prefill.push((ep, set));
    }
    let mut decode = Vec::new();
    for _ in 0..ratio.decode {
        let ep = Endpoint::new(
            Arc::clone(decode_dev),
            bytes(decode_control),
            crate::verbs::MemoryKind::host(params.huge_pages),
            RemoteAccess::WRITE,
        )?;
        let mut set = QpSet::create_lanes(&ep, &[ratio.prefill as usize * qps], caps)?;
        set.set_poll(params.poll);
        decode.push((ep, set));
    }
    let prefill_ends: Vec<_> = prefill
        .iter()
        .map(|(_, s)| s.endpoints(prefill_dev))
        .collect();
    let decode_ends: Vec<_> = decode
        .iter()
        .map(|(_, s)| s.endpoints(decode_dev))
        .collect();
    for (p, (_, set)) in prefill.iter_mut().enumerate() {
        let remote: Vec<_> = (0..ratio.decode as usize)
            .flat_map(|d| (0..qps).map(move |k| (d, p * qps + k)))
            .map(|(d, i)| decode_ends[d][i].clone())
            .collect();
        set.connect(prefill_dev, &remote, &params.path)?;
    }
    for (d, (_, set)) in decode.iter_mut().enumerate() {
        let remote: Vec<_> = (0..ratio.prefill as usize)
            .flat_map(|p| (0..qps).map(move |k| (p, d * qps + k)))
            .map(|(p, i)| prefill_ends[p][i].clone())
            .collect();
        set.connect(decode_dev, &remote, &params.path)?;
    }
    Ok(Pools {
        prefill,
        decode,
        max_wr_bytes,
        prefill_control,
        decode_control,
    })
}

/// Runs every point; the report (also written to `--json` after every
/// trial) keeps what completed when an error stops the run.
pub fn run_serving(
    params: &ServingParams,
    prefill_dev: Arc<RdmaDevice>,
    decode_dev: Arc<RdmaDevice>,
) -> (RunReport, Option<SuiteError>) {
    let mut report = blank_report(params, &prefill_dev, &decode_dev);
    let json = params.json.as_deref();
    let result = run_points(params, &prefill_dev, &decode_dev, &mut report);
    let measured = report
        .serving
        .as_ref()
        .is_some_and(|s| s.points.iter().any(|p| !p.trials.is_empty()));
    let err = conclude(&mut report, result, measured, json);
    (report, err)
}

fn run_points(
    params: &ServingParams,
    prefill_dev: &Arc<RdmaDevice>,
    decode_dev: &Arc<RdmaDevice>,
    report: &mut RunReport,
) -> Result<(), SuiteError> {
    if let ServingSweep::Tenants(tenants) = &params.sweep {
        return run_tenants(params, tenants, prefill_dev, decode_dev, report);
    }
    for &ratio in &params.ratios {
        let mut pools = set_up(params, ratio, prefill_dev, decode_dev)?;
        if let Some(s) = report.serving.as_mut() {
            s.max_wr_bytes = pools.max_wr_bytes;
        }
        let capacity = params.prefill_capacity(ratio);
        let arrivals: Vec<Arrival> = match &params.sweep {
            ServingSweep::Points | ServingSweep::Tenants(_) => vec![params.arrival.clone()],
            ServingSweep::Oversubscribe(ms) => ms
                .iter()
                .map(|m| with_rate(&params.arrival, m * capacity))
                .collect(),
            ServingSweep::RateSweep(rates) => rates
                .iter()
                .map(|r| with_rate(&params.arrival, *r))
                .collect(),
        };
        for arrival in arrivals {
            let rate = arrival.rate().unwrap_or(0.0);
            let mut point = blank_point(params, ratio, &arrival, capacity, None);
            let mut stopped = None;
            for trial in 0..params.trials {
                let (outcome, err) = run_trial(
                    params,
                    &mut pools,
                    ratio,
                    &arrival,
                    trial,
                    (prefill_dev, decode_dev),
                    TrialStart::Own,
                );
                point.trials.push(outcome);
                point.summary = summarize(params, &point.trials);
                push_point(report, &point);
                save(params, report)?;
                if let Some(e) = err {
                    stopped = Some(e);
                    break;
                }
            }
            print_point(&point);
            if let Some(e) = stopped {
                return Err(e);
            }
            if let (ServingSweep::RateSweep(_), Some(false)) =
                (&params.sweep, point.summary.meets_slo)
            {
                println!("rate sweep: {rate:.1} requests/s missed the TTFT P99 SLO; the sweep stops here");
                break;
            }
        }
    }
    finish(params, report);
    Ok(())
}

/// 10.3: rounds of each tenant alone, then all tenants at once from one
/// start; the penalties after every trial. The alone and shared trials of
/// a tenant replay the same seeded requests.
fn run_tenants(
    params: &ServingParams,
    tenants: &[TenantRun],
    prefill_dev: &Arc<RdmaDevice>,
    decode_dev: &Arc<RdmaDevice>,
    report: &mut RunReport,
) -> Result<(), SuiteError> {
    let devs = (prefill_dev, decode_dev);
    let each: Vec<ServingParams> = tenants
        .iter()
        .enumerate()
        .map(|(i, t)| params.tenant_params(t, i))
        .collect();
    let mut pools = Vec::new();
    for (p, t) in each.iter().zip(tenants) {
        pools.push(set_up(p, t.tenant.ratio, prefill_dev, decode_dev)?);
    }
    if let Some(s) = report.serving.as_mut() {
        s.max_wr_bytes = pools.iter().map(|p| p.max_wr_bytes).min().unwrap_or(0);
    }
    let point_of = |p: &ServingParams, t: &TenantRun, phase: &str| {
        let ratio = t.tenant.ratio;
        let capacity = p.prefill_capacity(ratio);
        blank_point(
            p,
            ratio,
            &p.arrival,
            capacity,
            Some((&t.tenant.name, phase)),
        )
    };
    // a tenant's error names the tenant, the phase and the trial
    let named = |t: &TenantRun, phase: &str, trial: u32, e: SuiteError| {
        SuiteError::Invalid(format!(
            "tenant {} ({} {}, {phase}), trial {}: {e}",
            t.tenant.name,
            t.tenant.model.name,
            t.tenant.ratio,
            trial + 1
        ))
    };
    let points = |phase: &str| -> Vec<ServingPoint> {
        each.iter()
            .zip(tenants)
            .map(|(p, t)| point_of(p, t, phase))
            .collect()
    };
    let (mut alone, mut shared) = (points("alone"), points("shared"));
    // interleaved rounds: each tenant alone, then every tenant at once, so
    // drift over the run (a warming host, another job) falls on both
    // phases alike instead of showing as interference
    for trial in 0..params.trials {
        for (((p, t), pool), point) in each
            .iter()
            .zip(tenants)
            .zip(pools.iter_mut())
            .zip(alone.iter_mut())
        {
            let (outcome, err) = run_trial(
                p,
                pool,
                t.tenant.ratio,
                &p.arrival,
                trial,
                devs,
                TrialStart::Own,
            );
            point.trials.push(outcome);
            point.summary = summarize(p, &point.trials);
            push_point(report, point);
            tenant_penalties(params, tenants, report);
            save(params, report)?;
            if let Some(e) = err {
                return Err(named(t, "alone", trial, e));
            }
        }
        // shared: every tenant at once, from one start fixed once all are ready
        let barrier = Barrier::new(tenants.len());
        let start_at = OnceLock::new();
        let (barrier, start_at) = (&barrier, &start_at);
        let outcomes: Vec<(ServingTrial, Option<SuiteError>)> = std::thread::scope(|scope| {
            let handles: Vec<_> = each
                .iter()
                .zip(tenants)
                .zip(pools.iter_mut())
                .map(|((p, t), pool)| {
                    scope.spawn(move || {
                        run_trial(
                            p,
                            pool,
                            t.tenant.ratio,
                            &p.arrival,
                            trial,
                            devs,
                            TrialStart::Shared(barrier, start_at),
                        )
                    })
                })
                .collect();
            handles
                .into_iter()
                .map(|h| {
                    h.join().unwrap_or_else(|panic| {
                        let text = panic_text(&panic);
                        (
                            ServingTrial {
                                status: "failed".into(),
                                error: Some(text.clone()),
                                ..empty_trial(trial, &[])
                            },
                            Some(SuiteError::Engine(EngineError::Panic(text))),
                        )
                    })
                })
                .collect()
        });
        let mut first_error = None;
        for (((point, p), t), (outcome, err)) in
            shared.iter_mut().zip(&each).zip(tenants).zip(outcomes)
        {
            point.trials.push(outcome);
            point.summary = summarize(p, &point.trials);
            push_point(report, point);
            if first_error.is_none() {
                first_error = err.map(|e| named(t, "shared", trial, e));
            }
        }
        tenant_penalties(params, tenants, report);
        save(params, report)?;
        if let Some(e) = first_error {
            return Err(e);
        }
    }
    for point in alone.iter().chain(&shared) {
        print_point(point);
    }
    print_penalties(report);
    Ok(())
}

/// One line per tenant: its P99s alone → shared and the penalties.
fn print_penalties(report: &RunReport) {
    let Some(s) = &report.serving else {
        return;
    };
    let h = |ns: Option<f64>| ns.map_or("-".to_string(), crate::report::human_ns);
    let pct = |p: Option<f64>| p.map_or("-".to_string(), |p| format!("{p:+.1} %"));
    for t in &s.tenants {
        println!(
            "10.3 tenant {} ({} {}): TTFT P99 {} alone → {} shared, penalty {}; T_transfer P99 {} → {}, penalty {}",
            t.tenant,
            t.model,
            t.ratio,
            h(t.ttft_p99_alone_ns),
            h(t.ttft_p99_shared_ns),
            pct(t.ttft_p99_penalty_pct),
            h(t.t_transfer_p99_alone_ns),
            h(t.t_transfer_p99_shared_ns),
            pct(t.t_transfer_p99_penalty_pct),
        );
    }
}

/// Per tenant, its alone and shared P99s and the interference penalties.
fn tenant_penalties(params: &ServingParams, tenants: &[TenantRun], report: &mut RunReport) {
    let Some(s) = report.serving.as_mut() else {
        return;
    };
    let find = |name: &str, phase: &str| {
        s.points
            .iter()
            .find(|p| p.tenant.as_deref() == Some(name) && p.phase.as_deref() == Some(phase))
    };
    let mean = |i: &Option<crate::stats::TrialInterval>| i.as_ref().map(|i| i.mean);
    let results = tenants
        .iter()
        .map(|t| {
            let name = t.tenant.name.as_str();
            let (alone, shared) = (find(name, "alone"), find(name, "shared"));
            let ttft = |p: Option<&ServingPoint>| p.and_then(|p| mean(&p.summary.ttft_p99_ns));
            let xfer =
                |p: Option<&ServingPoint>| p.and_then(|p| mean(&p.summary.t_transfer_p99_ns));
            let penalty = |a: Option<f64>, b: Option<f64>| {
                a.zip(b).and_then(|(a, b)| interference_penalty_pct(a, b))
            };
            crate::results::TenantResult {
                tenant: name.into(),
                model: t.tenant.model.name.clone(),
                ratio: t.tenant.ratio.to_string(),
                arrival: alone
                    .or(shared)
                    .map_or(String::new(), |p| p.arrival.clone()),
                prefill_modelled: t.prefill.describe(),
                ttft_p99_alone_ns: ttft(alone),
                ttft_p99_shared_ns: ttft(shared),
                ttft_p99_penalty_pct: penalty(ttft(alone), ttft(shared)),
                t_transfer_p99_alone_ns: xfer(alone),
                t_transfer_p99_shared_ns: xfer(shared),
                t_transfer_p99_penalty_pct: penalty(xfer(alone), xfer(shared)),
                itl_p99_modelled_ns: params.decode_step_ns,
            }
        })
        .collect();
    s.tenants = results;
}

/// A point before its first trial: `ratio` at `arrival`, its load against
/// the modelled prefill `capacity`, and for 10.3 its (tenant, phase).
pub(super) fn blank_point(
    params: &ServingParams,
    ratio: PoolRatio,
    arrival: &Arrival,
    capacity: f64,
    tenant: Option<(&str, &str)>,
) -> ServingPoint {
    let rate = arrival.rate().unwrap_or(0.0);
    ServingPoint {
        ratio: ratio.to_string(),
        tenant: tenant.map(|(t, _)| t.to_string()),
        phase: tenant.map(|(_, phase)| phase.to_string()),
        prefill_workers: ratio.prefill,
        decode_workers: ratio.decode,
        arrival: arrival.describe(),
        offered_rate_per_s: rate,
        load_multiple: if capacity > 0.0 { rate / capacity } else { 0.0 },
        prefill_capacity_modelled_per_s: capacity,
        trials: Vec::new(),
        summary: summarize(params, &[]),
    }
}

/// Rewrites `--json`, if given, with the report as it stands.
fn save(params: &ServingParams, report: &mut RunReport) -> Result<(), SuiteError> {
    if let Some(path) = params.json.as_deref() {
        report.updated_at = rfc3339_now();
        crate::report::write_json(report, path)?;
    }
    Ok(())
}

/// The arrival process with its rate replaced (a trace or closed loop
/// becomes Poisson at `rate`).
pub(super) fn with_rate(arrival: &Arrival, rate: f64) -> Arrival {
    match arrival {
        Arrival::Constant { .. } => Arrival::Constant { rate },
        Arrival::Bursty { cv, .. } => Arrival::Bursty { rate, cv: *cv },
        _ => Arrival::Poisson { rate },
    }
}

pub(super) fn push_point(report: &mut RunReport, point: &ServingPoint) {
    let Some(s) = report.serving.as_mut() else {
        return;
    };
    match s.points.iter_mut().find(|p| {
        p.ratio == point.ratio
            && p.arrival == point.arrival
            && p.tenant == point.tenant
            && p.phase == point.phase
    }) {
        Some(p) => *p = point.clone(),
        None => s.points.push(point.clone()),
    }
}

/// Pareto ratios (6.2) and the rate knee, once every point ran.
pub(super) fn finish(params: &ServingParams, report: &mut RunReport) {
    let Some(s) = report.serving.as_mut() else {
        return;
    };
    if params.ratios.len() > 1 {
        let pts: Vec<(f64, f64)> = s
            .points
            .iter()
            .map(|p| {
                let ttft = p
                    .summary
                    .ttft_p99_ns
                    .as_ref()
                    .map_or(f64::INFINITY, |i| i.mean);
                let good = p
                    .summary
                    .goodput_per_s
                    .as_ref()
                    .or(p.summary.tps_output_modelled.as_ref())
                    .map_or(0.0, |i| i.mean);
                (ttft, good / f64::from(p.prefill_workers + p.decode_workers))
            })
            .collect();
        s.pareto_ratios = s
            .points
            .iter()
            .zip(pareto_optimal(&pts))
            .filter(|(_, on)| *on)
            .map(|(p, _)| p.ratio.clone())
            .collect();
    }
    if let ServingSweep::RateSweep(_) = params.sweep {
        s.knee_rate_per_s = s
            .points
            .iter()
            .filter(|p| p.summary.meets_slo == Some(true))
            .map(|p| p.offered_rate_per_s)
            .fold(None, |best: Option<f64>, r| {
                Some(best.map_or(r, |b| b.max(r)))
            });
    }
}

/// How a trial's start is fixed.
#[derive(Clone, Copy)]
enum TrialStart<'a> {
    /// [`START_LEAD`] after this trial read its counters.
    Own,
    /// 10.3: once every tenant's trial is ready (counters read), the first
    /// through the barrier fixes one start, [`START_LEAD`] ahead, for all.
    Shared(&'a Barrier, &'a OnceLock<u64>),
}

impl TrialStart<'_> {
    /// The start, after waiting for every sharer (each trial calls this
    /// exactly once, also on its error paths, so no sharer waits forever).
    fn fix(self) -> u64 {
        let ahead = || monotonic_ns() + START_LEAD.as_nanos() as u64;
        match self {
            TrialStart::Own => ahead(),
            TrialStart::Shared(barrier, start) => {
                barrier.wait();
                *start.get_or_init(ahead)
            }
        }
    }
}

/// One trial of one pool set.
fn run_trial(
    params: &ServingParams,
    pools: &mut Pools,
    ratio: PoolRatio,
    arrival: &Arrival,
    trial: u32,
    (prefill_dev, decode_dev): (&Arc<RdmaDevice>, &Arc<RdmaDevice>),
    start: TrialStart<'_>,
) -> (ServingTrial, Option<SuiteError>) {
    let (plan, seed) = trial_plan(params, ratio, arrival, trial);
    let planner = match KvPlanner::new(KvPlanSpec {
        model: params.model.clone(),
        tp: params.tp,
        layout: params.layout,
        block_tokens: params.block_tokens,
        pool_blocks: params.pool_blocks,
        fragmentation: params.fragmentation,
        max_wr_bytes: pools.max_wr_bytes,
        seed,
    }) {
        Ok(p) => p,
        Err(e) => {
            start.fix();
            return (
                empty_trial(trial, &plan),
                Some(SuiteError::Invalid(e.to_string())),
            );
        }
    };
    let page_pools = |n: u32, salt: u64| -> Result<Vec<PagePool>, SuiteError> {
        (0..n)
            .map(|w| {
                PagePool::new(
                    params.pool_blocks,
                    params.fragmentation,
                    seed ^ salt ^ u64::from(w),
                )
                .map_err(|e| SuiteError::Invalid(e.to_string()))
            })
            .collect()
    };
    let (decode_pools, prefill_pools) = match (
        page_pools(ratio.decode, 0xd),
        page_pools(ratio.prefill, 0x9),
    ) {
        (Ok(d), Ok(p)) => (d, p),
        (Err(e), _) | (_, Err(e)) => {
            start.fix();
            return (empty_trial(trial, &plan), Some(e));
        }
    };
    let (shared, inboxes) = PoolShared::new(decode_pools, ratio.prefill as usize, params.admission);
    let prefill_keys: Vec<BufferKey> = pools.prefill.iter().map(|(ep, _)| ep.key()).collect();
    let outputs_of: HashMap<u32, u64> = plan.iter().map(|r| (r.request, r.output_tokens)).collect();
    let budget = trial_budget(params, &plan);
    // the counters are read before the start is fixed: reading sysfs can
    // take longer than the lead
    let before = snapshots(prefill_dev, decode_dev);
    let start_at_ns = start.fix();
    let now = monotonic_ns();
    let run = PoolRunPlan {
        qps: params.qps as usize,
        tx_depth: params.tx_depth,
        start_at_ns,
        stall_timeout: params.stall_timeout,
        deadline: Instant::now() + Duration::from_nanos(start_at_ns.saturating_sub(now)) + budget,
        verify: params.verify,
        decode_init_ns: params.decode_init_ns,
        decode_step_ns: params.decode_step_ns,
        block_tokens: params.block_tokens,
        pull: params.direction == KvDirection::Pull,
    };
    let remotes: Vec<BufferKey> = pools.decode.iter().map(|(ep, _)| ep.key()).collect();
    let shares: Vec<Vec<PlannedRequest>> = (0..ratio.prefill)
        .map(|w| {
            plan.iter()
                .filter(|r| r.prefill_worker == w)
                .copied()
                .collect()
        })
        .collect();
    let routed: Vec<u32> = (0..ratio.decode)
        .map(|d| plan.iter().filter(|r| r.decode_worker == Some(d)).count() as u32)
        .collect();
    let (prefill_control, decode_control) = (pools.prefill_control, pools.decode_control);
    let stop = AtomicBool::new(false);
    let abandon = AtomicBool::new(false);
    let (prefill_out, decode_out) = std::thread::scope(|scope| {
        let prefill_handles: Vec<_> = pools
            .prefill
            .iter_mut()
            .zip(prefill_pools)
            .zip(&inboxes.grants)
            .zip(&shares)
            .enumerate()
            .map(|(w, ((((ep, set), pool), inbox), share))| {
                let (shared, run, remotes, planner, abandon) =
                    (&shared, &run, &remotes, &planner, &abandon);
                let control = prefill_control;
                let buffer = Arc::clone(&ep.buffer);
                let lane = &mut set.lanes[0];
                scope.spawn(move || {
                    let mut tally = PrefillTally::default();
                    let worker = PrefillWorker {
                        worker: w as u32,
                        buffer: &buffer,
                        remotes,
                        requests: share,
                        planner,
                        pool,
                        inbox,
                        notify_offset: ep.buffer.len() as u64 - NOTIFY_BYTES,
                        control,
                        core: None,
                    };
                    // a failed worker stops its peers at once
                    let r = run_prefill_worker(worker, lane, shared, run, abandon, &mut tally);
                    if r.is_err() {
                        abandon.store(true, Ordering::Relaxed);
                    }
                    (tally, r)
                })
            })
            .collect();
        let decode_handles: Vec<_> = pools
            .decode
            .iter_mut()
            .enumerate()
            .zip(&inboxes.orders)
            .map(|((w, (ep, set)), orders)| {
                let (shared, run, stop, outputs, abandon) =
                    (&shared, &run, &stop, &outputs_of, &abandon);
                let (remotes, planner) = (&prefill_keys, &planner);
                let (control, routed) = (decode_control, routed[w]);
                let buffer = Arc::clone(&ep.buffer);
                let notify_offset = ep.buffer.len() as u64 - NOTIFY_BYTES;
                let lane = &mut set.lanes[0];
                scope.spawn(move || {
                    let mut tally = DecodeTally::default();
                    let worker = DecodeWorker {
                        worker: w as u32,
                        buffer: &buffer,
                        notify_offset,
                        outputs,
                        core: None,
                        abandon,
                        remotes,
                        orders,
                        planner,
                        control,
                        routed,
                    };
                    let r = run_decode_worker(worker, lane, shared, run, stop, &mut tally);
                    // pull: the prefill workers wait for its notices
                    if r.is_err() {
                        abandon.store(true, Ordering::Relaxed);
                    }
                    (tally, r)
                })
            })
            .collect();
        let prefill_out: Vec<_> = prefill_handles.into_iter().map(join).collect();
        // done: the decode workers drain what landed; a failed prefill
        // worker ends the trial at once
        stop.store(true, Ordering::Relaxed);
        let decode_out: Vec<_> = decode_handles.into_iter().map(join).collect();
        (prefill_out, decode_out)
    });
    let counters = deltas(&before, prefill_dev, decode_dev);
    let error = prefill_out
        .iter()
        .map(|(_, r)| r)
        .chain(decode_out.iter().map(|(_, r)| r))
        .filter_map(|r| r.as_ref().err())
        // a worker stopped because a peer failed names nothing new; a
        // budget overrun says less than a failure of a worker's own
        .filter(|e| error_rank(&e.to_string()) < 2)
        .min_by_key(|e| error_rank(&e.to_string()))
        .map(|e| SuiteError::Engine(EngineError::Invalid(e.to_string())));
    let peaks: Vec<(u32, u32)> = (0..ratio.decode).map(|d| shared.peaks(d)).collect();
    let outcome = account(
        params,
        trial,
        &plan,
        run.start_at_ns,
        &prefill_out.iter().map(|(t, _)| t).collect::<Vec<_>>(),
        &decode_out.iter().map(|(t, _)| t).collect::<Vec<_>>(),
        &peaks,
        counters,
        error.as_ref(),
    );
    (outcome, error)
}

/// Trial `trial`'s requests at `ratio` and `arrival` (seeded: the same
/// on every call), and the seed of its pools and planner.
pub(super) fn trial_plan(
    params: &ServingParams,
    ratio: PoolRatio,
    arrival: &Arrival,
    trial: u32,
) -> (Vec<PlannedRequest>, u64) {
    let (arrivals, prompts, outputs) = params.draws(arrival, trial.wrapping_add(1));
    let seed = params.seed ^ u64::from(trial.wrapping_add(1));
    let plan = plan_requests(
        &arrivals,
        &prompts,
        &outputs,
        &|t| params.prefill.prefill_ns(t),
        ratio,
        params.route,
        seed,
    );
    (plan, seed)
}

/// Longest a trial of `plan` may take: its arrivals and modelled
/// prefills, its bytes at a slow 10 MB/s, the stall timeout and 5 s.
pub(super) fn trial_budget(params: &ServingParams, plan: &[PlannedRequest]) -> Duration {
    let span_ns = plan.iter().map(|r| r.intended_ns).max().unwrap_or(0);
    let total_prefill: u64 = plan.iter().map(|r| r.prefill_ns).sum();
    let total_bytes: u64 = plan
        .iter()
        .map(|r| {
            params
                .model
                .kv_bytes(r.prompt_tokens, params.tp)
                .unwrap_or(0)
        })
        .sum();
    Duration::from_nanos(span_ns + total_prefill)
        + Duration::from_secs_f64(total_bytes as f64 / BUDGET_BYTES_PER_S)
        + params.stall_timeout
        + Duration::from_secs(5)
}

fn join<T: Default>(
    h: std::thread::ScopedJoinHandle<'_, (T, Result<(), EngineError>)>,
) -> (T, Result<(), EngineError>) {
    h.join()
        .unwrap_or_else(|p| (T::default(), Err(EngineError::Panic(panic_text(&p)))))
}

fn snapshots(a: &RdmaDevice, b: &RdmaDevice) -> Vec<CounterSnapshot> {
    let mut out = vec![CounterSnapshot::of_device(a.facts())];
    if a.name() != b.name() {
        out.push(CounterSnapshot::of_device(b.facts()));
    }
    out
}

fn deltas(before: &[CounterSnapshot], a: &RdmaDevice, b: &RdmaDevice) -> Vec<NodeCounters> {
    before
        .iter()
        .zip([a, b])
        .map(|(s, dev)| NodeCounters {
            node: 0,
            deltas: s.delta(&CounterSnapshot::of_device(dev.facts())),
        })
        .collect()
}

fn empty_trial(trial: u32, plan: &[PlannedRequest]) -> ServingTrial {
    ServingTrial {
        trial,
        status: "partial".into(),
        error: None,
        offered: plan.len() as u32,
        admitted: 0,
        rejected: 0,
        admission_waits: 0,
        completed: 0,
        unfinished: plan.len() as u32,
        span_ns: 0,
        t_queue: LatencySummary::empty(),
        t_admission: LatencySummary::empty(),
        t_transfer: LatencySummary::empty(),
        ttft: LatencySummary::empty(),
        tps_output_modelled: 0.0,
        goodput_per_s: None,
        slo_attainment: None,
        decode_workers: Vec::new(),
        prefill_workers: Vec::new(),
        jfi_decode_bytes: None,
        jfi_decode_requests: None,
        bursts: burst_stats(&[], 0, 1).0,
        rate_series_bytes: Vec::new(),
        counters: Vec::new(),
        verify_mismatches: None,
        requests: Vec::new(),
    }
}

/// Turns both roles' tallies into the trial's results.
#[allow(clippy::too_many_arguments)]
pub(super) fn account(
    params: &ServingParams,
    trial: u32,
    plan: &[PlannedRequest],
    start_ns: u64,
    prefill: &[&PrefillTally],
    decode: &[&DecodeTally],
    peaks: &[(u32, u32)],
    counters: Vec<NodeCounters>,
    error: Option<&SuiteError>,
) -> ServingTrial {
    let mut out = empty_trial(trial, plan);
    out.status = if error.is_some() {
        "partial"
    } else {
        "complete"
    }
    .into();
    out.error = error.map(|e| e.to_string());
    out.counters = counters;
    out.unfinished = 0;
    let landed: HashMap<u32, (u64, Option<u64>)> = decode
        .iter()
        .flat_map(|d| {
            d.landed
                .iter()
                .map(|l| (l.request, (l.landed_ns, l.verify_mismatches)))
        })
        .collect();
    // push: the prefill workers hold each request's times; pull: the decode
    // workers that READ it (the prefill workers hold only rejections)
    let seen: HashMap<u32, &crate::engine::PoolRequestTimes> = prefill
        .iter()
        .flat_map(|p| p.requests.iter())
        .chain(decode.iter().flat_map(|d| d.pulled.iter()))
        .map(|t| (t.request, t))
        .collect();
    let (mut queue, mut admission, mut transfer, mut ttft) = (
        LatencyHistogram::new(),
        LatencyHistogram::new(),
        LatencyHistogram::new(),
        LatencyHistogram::new(),
    );
    let mut spans = Vec::new();
    let mut decode_share = vec![(0u32, 0u64); decode.len()];
    let mut prefill_share = vec![(0u32, 0u64); prefill.len()];
    let (mut tokens_out, mut last_end, mut good) = (0u64, start_ns, 0u32);
    let mut mismatches: Option<u64> = None;
    for r in plan {
        let intended = start_ns + r.intended_ns;
        let t = seen.get(&r.request);
        let land = landed.get(&r.request);
        let status = match (t, land) {
            (Some(t), _) if t.rejected => "rejected",
            (Some(_), Some(_)) => "completed",
            _ => "unfinished",
        };
        let mut row = ServingRequestResult {
            request: r.request,
            intended_start_ns: r.intended_ns,
            prefill_worker: r.prefill_worker,
            decode_worker: t.map_or(r.decode_worker.unwrap_or(0), |t| t.decode_worker),
            prompt_tokens: r.prompt_tokens,
            output_tokens: r.output_tokens,
            status: status.into(),
            t_queue_ns: t.map_or(0, |t| t.prefill_start_ns.saturating_sub(intended)),
            t_prefill_modelled_ns: r.prefill_ns,
            t_prefill_elapsed_ns: t
                .map_or(0, |t| t.prefill_end_ns.saturating_sub(t.prefill_start_ns)),
            t_admission_ns: None,
            t_transfer_ns: None,
            t_decode_init_modelled_ns: params.decode_init_ns,
            ttft_ns: None,
            bytes: t.map_or(0, |t| t.bytes),
            descriptors: t.map_or(0, |t| t.descriptors),
        };
        match status {
            "rejected" => out.rejected += 1,
            "unfinished" => out.unfinished += 1,
            _ => {}
        }
        if let Some(t) = t.filter(|t| t.admit_ns > 0) {
            out.admitted += 1;
            out.admission_waits += u32::from(t.admission_waited);
            row.t_admission_ns = Some(t.admit_ns.saturating_sub(t.prefill_end_ns));
            admission.record(row.t_admission_ns.unwrap_or(0));
            queue.record(row.t_queue_ns);
        }
        if let (Some(t), Some(&(land_ns, bad))) = (t, land) {
            out.completed += 1;
            let tt = land_ns.saturating_sub(t.admit_ns);
            let first = land_ns.saturating_sub(intended) + params.decode_init_ns;
            row.t_transfer_ns = Some(tt);
            row.ttft_ns = Some(first);
            transfer.record(tt);
            ttft.record(first);
            spans.push(TransferSpan {
                start_ns: t.first_post_ns.max(start_ns),
                end_ns: land_ns,
                bytes: t.bytes,
            });
            let d = t.decode_worker as usize;
            if d < decode_share.len() {
                decode_share[d].0 += 1;
                decode_share[d].1 += t.bytes;
            }
            let p = t.prefill_worker as usize;
            if p < prefill_share.len() {
                prefill_share[p].0 += 1;
                prefill_share[p].1 += t.bytes;
            }
            tokens_out += r.output_tokens;
            last_end = last_end
                .max(land_ns + params.decode_init_ns + r.output_tokens * params.decode_step_ns);
            let itl_ok = params.slo_itl_ns.is_none_or(|s| params.decode_step_ns <= s);
            if params.slo_ttft_ns.is_none_or(|s| first <= s) && itl_ok {
                good += 1;
            }
            if let Some(b) = bad {
                *mismatches.get_or_insert(0) += b;
            }
        }
        out.requests.push(row);
    }
    let first_arrival = start_ns + plan.first().map_or(0, |r| r.intended_ns);
    out.span_ns = last_end.saturating_sub(first_arrival);
    let span_s = out.span_ns as f64 / 1e9;
    out.t_queue = queue.summary();
    out.t_admission = admission.summary();
    out.t_transfer = transfer.summary();
    out.ttft = ttft.summary();
    out.tps_output_modelled = if span_s > 0.0 {
        tokens_out as f64 / span_s
    } else {
        0.0
    };
    if params.slo_ttft_ns.is_some() || params.slo_itl_ns.is_some() {
        out.goodput_per_s = Some(if span_s > 0.0 {
            f64::from(good) / span_s
        } else {
            0.0
        });
        out.slo_attainment = Some(f64::from(good) / out.offered.max(1) as f64);
    }
    let decode_workers = decode.len();
    out.decode_workers = (0..decode_workers)
        .map(|d| WorkerShare {
            worker: d as u32,
            requests: decode_share[d].0,
            bytes: decode_share[d].1,
            peak_pages_used: peaks.get(d).map(|p| p.0),
            peak_waiting: peaks.get(d).map(|p| p.1),
            cpu_s: decode[d].cpu_s,
        })
        .collect();
    out.prefill_workers = (0..prefill.len())
        .map(|p| WorkerShare {
            worker: p as u32,
            requests: prefill_share[p].0,
            bytes: prefill_share[p].1,
            peak_pages_used: None,
            peak_waiting: None,
            cpu_s: prefill[p].cpu_s,
        })
        .collect();
    if decode_workers > 1 {
        let bytes: Vec<f64> = out.decode_workers.iter().map(|w| w.bytes as f64).collect();
        let reqs: Vec<f64> = out
            .decode_workers
            .iter()
            .map(|w| f64::from(w.requests))
            .collect();
        out.jfi_decode_bytes = jain_index(&bytes);
        out.jfi_decode_requests = jain_index(&reqs);
    }
    let (stats, series) = burst_stats(&spans, start_ns, params.bin_ns);
    out.bursts = stats;
    out.rate_series_bytes = series;
    out.verify_mismatches = if params.verify {
        Some(mismatches.unwrap_or(0))
    } else {
        None
    };
    out
}

/// Burst statistics and the binned series of a trial's transfers.
fn burst_stats(spans: &[TransferSpan], origin_ns: u64, bin_ns: u64) -> (BurstStats, Vec<f64>) {
    let b = bursts(spans);
    let pick = |mut v: Vec<u64>, q: f64| {
        v.sort_unstable();
        nearest_rank(&v, q).unwrap_or(0)
    };
    let sizes: Vec<u64> = b.iter().map(|x| x.bytes).collect();
    let durations: Vec<u64> = b.iter().map(|x| x.end_ns - x.start_ns).collect();
    let gaps = gaps_ns(&b);
    let series = if spans.is_empty() {
        Vec::new()
    } else {
        binned_bytes(spans, origin_ns, bin_ns)
    };
    let (peak, mean) = peak_and_mean_gbytes_per_s(&series, bin_ns);
    let mut largest = b.clone();
    largest.sort_by_key(|x| std::cmp::Reverse(x.bytes));
    largest.truncate(16);
    (
        BurstStats {
            count: b.len() as u32,
            size_p50_bytes: pick(sizes.clone(), 0.50),
            size_p99_bytes: pick(sizes.clone(), 0.99),
            size_max_bytes: sizes.iter().copied().max().unwrap_or(0),
            duration_p50_ns: pick(durations.clone(), 0.50),
            duration_p99_ns: pick(durations, 0.99),
            gap_p50_ns: pick(gaps.clone(), 0.50),
            gap_p99_ns: pick(gaps, 0.99),
            peak_gbytes_per_s: peak,
            mean_gbytes_per_s: mean,
            largest,
        },
        series,
    )
}

/// Across-trial intervals of a point's per-trial values.
pub(super) fn summarize(params: &ServingParams, trials: &[ServingTrial]) -> ServingSummary {
    let of = |f: &dyn Fn(&ServingTrial) -> Option<f64>| {
        let v: Vec<f64> = trials.iter().filter_map(f).collect();
        across_trials(&v)
    };
    let done = |t: &ServingTrial| t.completed > 0;
    let ttft_p99 = of(&|t| done(t).then_some(t.ttft.p99_ns as f64));
    ServingSummary {
        ttft_p50_ns: of(&|t| done(t).then_some(t.ttft.p50_ns as f64)),
        meets_slo: params
            .slo_ttft_ns
            .zip(ttft_p99.as_ref())
            .map(|(slo, p99)| p99.mean <= slo as f64),
        ttft_p99_ns: ttft_p99,
        t_queue_p99_ns: of(&|t| (t.admitted > 0).then_some(t.t_queue.p99_ns as f64)),
        t_transfer_p99_ns: of(&|t| done(t).then_some(t.t_transfer.p99_ns as f64)),
        itl_p99_modelled_ns: params.decode_step_ns,
        tps_output_modelled: of(&|t| Some(t.tps_output_modelled)),
        goodput_per_s: of(&|t| t.goodput_per_s),
        reject_ratio: of(&|t| Some(f64::from(t.rejected) / f64::from(t.offered.max(1)))),
        jfi_decode_bytes: of(&|t| t.jfi_decode_bytes),
        peak_gbytes_per_s: of(&|t| done(t).then_some(t.bursts.peak_gbytes_per_s)),
        mean_gbytes_per_s: of(&|t| done(t).then_some(t.bursts.mean_gbytes_per_s)),
    }
}

pub(super) fn print_point(p: &ServingPoint) {
    let h = |ns: Option<f64>| ns.map_or("-".to_string(), crate::report::human_ns);
    let m = |i: &Option<crate::stats::TrialInterval>| i.as_ref().map(|i| i.mean);
    let (mut offered, mut admitted, mut rejected, mut waits, mut completed) = (0, 0, 0, 0, 0);
    for t in &p.trials {
        offered += t.offered;
        admitted += t.admitted;
        rejected += t.rejected;
        waits += t.admission_waits;
        completed += t.completed;
    }
    let who = match (&p.tenant, &p.phase) {
        (Some(t), Some(phase)) => format!("tenant {t} ({phase}): "),
        _ => String::new(),
    };
    println!(
        "{who}{} at {:.1} req/s ({:.2}× modelled prefill capacity), {} trials: offered {offered}, admitted {admitted} \
         ({waits} waited), rejected {rejected}, completed {completed}; TTFT P50 {} P99 {}; T_queue P99 {}; \
         T_transfer P99 {}; goodput {}; JFI(decode bytes) {}; fabric peak {} / mean {} GB/s",
        p.ratio,
        p.offered_rate_per_s,
        p.load_multiple,
        p.trials.len(),
        h(m(&p.summary.ttft_p50_ns)),
        h(m(&p.summary.ttft_p99_ns)),
        h(m(&p.summary.t_queue_p99_ns)),
        h(m(&p.summary.t_transfer_p99_ns)),
        m(&p.summary.goodput_per_s).map_or("-".into(), |g| format!("{g:.1}/s")),
        m(&p.summary.jfi_decode_bytes).map_or("-".into(), |j| format!("{j:.4}")),
        m(&p.summary.peak_gbytes_per_s).map_or("-".into(), |g| format!("{g:.3}")),
        m(&p.summary.mean_gbytes_per_s).map_or("-".into(), |g| format!("{g:.3}")),
    );
}

fn blank_report(
    params: &ServingParams,
    prefill_dev: &RdmaDevice,
    decode_dev: &RdmaDevice,
) -> RunReport {
    let control = match params.control {
        ServingControl::Shared => {
            "the control plane between them (page requests and grants) is in-process, the KV moves over RDMA"
        }
        ServingControl::Fabric => {
            "page requests and grants go as RDMA SENDs between them (--control fabric), as the KV does"
        }
    };
    let mut deviations = vec![
        format!(
            "serving pools run on one host: prefill workers on one device, decode workers on another, one \
             thread each; {control}"
        ),
        "prefill compute, decode initialisation and decode steps are modelled (the workers wait that long); \
         ITL is the modelled decode step"
            .to_string(),
    ];
    if params.trials < 20 {
        deviations.push(format!(
            "{} trials per point; the draft requires at least 20",
            params.trials
        ));
    }
    let mut threads = params.ratios.iter().map(|r| r.workers()).max().unwrap_or(2);
    if let ServingSweep::Tenants(tenants) = &params.sweep {
        threads = tenants.iter().map(|t| t.tenant.ratio.workers()).sum();
        deviations.push(
            "10.3: the tenants' pools share one host and its two devices (their own buffers, QPs and \
             threads); NIC counters of the shared trials hold every tenant's traffic; ITL is the modelled \
             decode step, so only TTFT and KV-transfer penalties are measured"
                .into(),
        );
    }
    let mut uses = vec![crate::sysinfo::DeviceUse::from_facts(
        prefill_dev.facts(),
        params.path.traffic_class,
    )];
    if prefill_dev.name() != decode_dev.name() {
        uses.push(crate::sysinfo::DeviceUse::from_facts(
            decode_dev.facts(),
            params.path.traffic_class,
        ));
    }
    RunReport {
        schema_version: SCHEMA_VERSION.into(),
        tool: ToolInfo::this_build(),
        test_id: params.test_id().into(),
        test_name: params.test_name().into(),
        dut_id: params.dut_id.clone(),
        started_at: rfc3339_now(),
        updated_at: rfc3339_now(),
        status: "running".into(),
        error: None,
        deviations,
        parameters: RunParameters {
            op: "write-imm".into(),
            mode: "serving".into(),
            clocks: vec!["intended-arrival".into()],
            sizes_bytes: Vec::new(),
            qps: vec![params.qps],
            trials: params.trials,
            duration_s: None,
            iters: None,
            warmup_iters: 0,
            tx_depth: params.tx_depth,
            rx_depth: SERVING_RECV_DEPTH,
            cq_mod: 1,
            threads,
            verify: params.verify,
            huge_pages: params.huge_pages,
            max_wr_bytes: params.max_wr_bytes.unwrap_or(0),
            stall_timeout_s: params.stall_timeout.as_secs_f64(),
            traffic_class: params.path.traffic_class,
            poll: None,
            memory: Some(crate::results::MemoryReport {
                initiator: crate::verbs::MemoryKind::host(params.huge_pages).to_string(),
                target: crate::verbs::MemoryKind::host(params.huge_pages).to_string(),
                initiator_registration: Some("host".into()),
                target_registration: Some("host".into()),
            }),
        },
        endpoints: Some(EndpointsReport {
            initiator: prefill_dev.facts().clone(),
            target: decode_dev.facts().clone(),
            same_host: true,
        }),
        clock: None,
        load_sweep: Vec::new(),
        results: Vec::new(),
        system: Some(crate::sysinfo::collect_system(
            &crate::sysinfo::HostRoot::live(),
            &uses,
        )),
        cluster: None,
        pairs: Vec::new(),
        incast: Vec::new(),
        alltoall: Vec::new(),
        contention: None,
        kv: None,
        soak: None,
        decode_steps: None,
        tiers: None,
        serving: Some(serving_header(params)),
    }
}

/// The serving section before its first point.
pub(super) fn serving_header(params: &ServingParams) -> ServingReport {
    ServingReport {
        model: params.model.clone(),
        tp: params.tp,
        layout: params.layout.name().into(),
        block_tokens: params.block_tokens,
        decode_pool_blocks: params.pool_blocks,
        prefill_pool_blocks: params.pool_blocks,
        direction: params.direction.name().into(),
        qps_per_pair: params.qps,
        max_wr_bytes: params.max_wr_bytes.unwrap_or(0),
        arrival: params.arrival.describe(),
        prompt_dist: params.prompt_dist.describe(),
        output_dist: params.output_dist.describe(),
        requests_per_trial: params.requests,
        route: params.route.name().into(),
        admission: params.admission.name().into(),
        control: params.control.name().into(),
        prefill_modelled: params.prefill.describe(),
        decode_init_modelled_ns: params.decode_init_ns,
        decode_step_modelled_ns: params.decode_step_ns,
        slo_ttft_ns: params.slo_ttft_ns,
        slo_itl_ns: params.slo_itl_ns,
        bin_ns: params.bin_ns,
        sweep: params.sweep.name().into(),
        poll: params.poll.name().into(),
        points: Vec::new(),
        pareto_ratios: Vec::new(),
        knee_rate_per_s: None,
        tenants: Vec::new(),
    }
}
