//! The multi-rank test driver, run by node 0 on top of the
//! [`Coordinator`]: for each sweep point of a [`FabricTest`], set up and
//! connect the flows on every node, warm up, run the trials with a common
//! start time, and hand each trial's tallies (in node 0's clock) to the
//! test, which turns them into results. The results file is rewritten after
//! every trial, so a node that dies mid-run loses nothing completed.

use std::path::PathBuf;
use std::time::Duration;

use crate::cluster::{
    ClusterError, ClusterMessage, Coordinator, Flow, FlowEnd, FlowTrial, KvPointSpec, KvSideTrial,
    PointSpec, RankDispatchTrial, RankInfo, SeriesRequest, ServingPointSpec, ServingWorkerTrial,
    Side, TrialWork,
};
use crate::control::monotonic_ns;
use crate::engine::{error_rank, PollChoice, PollMode};
use crate::results::{
    write_json, ClusterReport, CounterSeries, DutReport, EndpointsReport, MemoryReport,
    NodeCounters, NodeReport, ProcessSample, RankReport, RoleDevice, RunParameters, RunReport,
    ToolInfo, SCHEMA_VERSION,
};
use crate::topology::Role;
use crate::verbs::{MemoryKind, QpPathOptions};

use super::soak::{SampleMetrics, Soak, SoakOptions};
use super::{poll_report, rfc3339_now, SuiteError};

/// How long before the agreed start node 0 sends Go: covers the control
/// round trip and a scheduler hiccup on every node.
const START_LEAD: Duration = Duration::from_millis(250);

/// Settings every multi-rank test shares.
#[derive(Debug, Clone)]
pub struct FabricOptions {
    /// Trials per point.
    pub trials: u32,
    /// Bytes per message / transfer.
    pub msg_bytes: u64,
    /// QPs per flow.
    pub qps_per_flow: u32,
    /// Outstanding WRs per QP (None: automatic).
    pub tx_depth: Option<u32>,
    /// Cap on bytes per WR.
    pub max_wr_bytes: Option<u64>,
    /// Transport knobs.
    pub path: QpPathOptions,
    /// Seconds without a completion before a trial fails.
    pub stall_timeout: Duration,
    /// `--poll`: how every node's engine threads wait (None: each node
    /// chooses from its threads and cores).
    pub poll: Option<PollMode>,
    /// Results file.
    pub json: Option<PathBuf>,
    /// DUT label.
    pub dut_id: String,
    /// Launcher, rendezvous, topology file and DUT, for the report.
    pub launcher: String,
    /// The rendezvous address.
    pub rendezvous: String,
    /// The topology file.
    pub topology_file: Option<String>,
    /// The DUT description.
    pub dut: DutReport,
    /// Where the sending side's buffers live (`--mem`).
    pub memory: MemoryKind,
    /// Where the receiving side's buffers live (`--target-mem`).
    pub target_memory: MemoryKind,
    /// Soak mode (IETF 13.x): `trials` samples of the test's trial length.
    pub soak: Option<SoakOptions>,
}

/// A flow's tallies in one trial, times in node 0's clock.
#[derive(Debug, Clone)]
pub struct FlowOutcome {
    /// The flow.
    pub flow: Flow,
    /// Its tallies (times translated to node 0's clock).
    pub tally: FlowTrial,
}

/// A trial's tallies.
#[derive(Debug, Clone, Default)]
pub struct TrialOutcome {
    /// Trial number.
    pub trial: u32,
    /// The agreed start, node 0's CLOCK_MONOTONIC ns.
    pub start_ns: u64,
    /// Every flow, in flow order.
    pub flows: Vec<FlowOutcome>,
    /// Counter deltas of every node's devices.
    pub counters: Vec<NodeCounters>,
    /// AllToAll ranks (times in node 0's clock), by rank.
    pub dispatch: Vec<RankDispatchTrial>,
    /// KV flow ends (times in node 0's clock).
    pub kv: Vec<KvSideTrial>,
    /// Serving workers (times in node 0's clock).
    pub serving: Vec<ServingWorkerTrial>,
    /// Every node process's footprint after the trial (soak runs).
    pub resources: Vec<ProcessSample>,
    /// Every node's counter series (when the test asked for them).
    pub counter_series: Vec<CounterSeries>,
}

/// How the point's flows were set up.
#[derive(Debug, Clone, Copy)]
pub struct PointShape {
    /// Bytes per WR at the senders.
    pub wr_bytes: u64,
    /// Outstanding WRs per QP at the senders.
    pub tx_depth: u32,
}

/// The deviation note for fewer than the draft's 20 trials per `unit`
/// ("configuration", "pair count", "phase"), if any. A soak's trials are
/// its samples: the rule does not apply to them (the soak has its own
/// deviations).
pub fn trials_deviation(options: &FabricOptions, unit: &str) -> Option<String> {
    if options.soak.is_some() {
        return None;
    }
    trial_count_deviation(options.trials, unit)
}

fn trial_count_deviation(trials: u32, unit: &str) -> Option<String> {
    (trials < 20).then(|| format!("{trials} trials per {unit}; the draft requires at least 20"))
}

/// Per AllToAll iteration, the slowest rank's dispatch latency (the layer
/// waits for it), over the iterations every rank completed.
pub fn layer_latencies(dispatch: &[RankDispatchTrial]) -> Vec<u64> {
    let iterations = dispatch
        .iter()
        .map(|r| r.iterations.len())
        .min()
        .unwrap_or(0);
    (0..iterations)
        .map(|t| {
            dispatch
                .iter()
                .map(|r| r.iterations[t].2.saturating_sub(r.iterations[t].0))
                .max()
                .unwrap_or(0)
        })
        .collect()
}

/// Node 0's poll choice: one engine thread per rank it hosts; a KV test's
/// ends wait as its spec says (its own default rule).
fn node0_poll(
    options: &FabricOptions,
    coordinator: &Coordinator,
    test: &dyn FabricTest,
) -> PollChoice {
    let threads = coordinator.ranks.iter().filter(|r| r.node == 0).count();
    let mut choice = PollChoice::resolve(options.poll, threads.max(1));
    if let Some(kv) = test.kv(0) {
        choice.mode = kv.poll;
    }
    choice
}

/// Per AllToAll iteration, the slowest rank's combine latency, over the
/// iterations every rank combined.
pub fn combine_latencies(dispatch: &[RankDispatchTrial]) -> Vec<u64> {
    slowest_per_iteration(dispatch, |r, t| {
        let (start, done) = r.combine[t];
        done.saturating_sub(start)
    })
}

/// Per AllToAll iteration, the slowest rank's whole layer: dispatch start
/// to combine done.
pub fn whole_layer_latencies(dispatch: &[RankDispatchTrial]) -> Vec<u64> {
    slowest_per_iteration(dispatch, |r, t| {
        r.combine[t].1.saturating_sub(r.iterations[t].0)
    })
}

fn slowest_per_iteration(
    dispatch: &[RankDispatchTrial],
    time: impl Fn(&RankDispatchTrial, usize) -> u64,
) -> Vec<u64> {
    let iterations = dispatch
        .iter()
        .map(|r| r.combine.len().min(r.iterations.len()))
        .min()
        .unwrap_or(0);
    (0..iterations)
        .map(|t| dispatch.iter().map(|r| time(r, t)).max().unwrap_or(0))
        .collect()
}

/// Progress of a run, for a progress bar or a log.
#[derive(Debug, Clone, Copy)]
pub enum FabricEvent<'a> {
    /// A trial finished.
    TrialDone {
        /// Sweep point (0-based).
        point: usize,
        /// Sweep points in all.
        points: usize,
        /// Trial (0-based).
        trial: u32,
        /// Trials per point.
        trials: u32,
    },
    /// A point finished: its one-line summary.
    PointDone(&'a str),
}

/// A multi-rank test: its sweep points, their flows and trial work, and
/// how tallies become results.
pub trait FabricTest {
    /// IETF test id.
    fn test_id(&self) -> &'static str;
    /// Its title.
    fn test_name(&self) -> &'static str;
    /// Ways the run departs from the draft's procedure.
    fn deviations(&self, options: &FabricOptions) -> Vec<String>;
    /// Trial length in seconds (for the parameters block), if timed.
    fn duration_s(&self) -> Option<f64>;
    /// Number of sweep points.
    fn points(&self) -> usize;
    /// The flows of point `point`.
    fn flows(&self, point: usize, ranks: &[RankInfo], qps: u32) -> Result<Vec<Flow>, String>;
    /// What senders do in trial `trial` (warmup: `u32::MAX`).
    fn work(&self, point: usize, flows: &[Flow], trial: u32) -> TrialWork;
    /// Bytes per message (or per-flow slot) of point `point`, when the
    /// test sizes its points itself (AllToAll); None: `--size`.
    fn msg_bytes(&self, _point: usize) -> Option<u64> {
        None
    }
    /// Slot size of the point's slotted flows when they differ from the
    /// message size (a stream beside an AllToAll).
    fn slot_bytes(&self, _point: usize) -> Option<u64> {
        None
    }
    /// Whether each flow gets its own receive slot (AllToAll).
    fn slot_per_flow(&self) -> bool {
        false
    }
    /// The KV-transfer spec of point `point` (test 10.1), if a KV test.
    fn kv(&self, _point: usize) -> Option<KvPointSpec> {
        None
    }
    /// The serving-pool spec of point `point` (6.2, 6.4), if a serving
    /// test.
    fn serving(&self, _point: usize) -> Option<ServingPointSpec> {
        None
    }
    /// Longest a trial may take before its tallies are due.
    fn trial_time(&self, point: usize) -> Duration;

    /// The series the point's measured trials record (rate bins, counter
    /// samples); None: totals only.
    fn series(&self, _point: usize) -> Option<SeriesRequest> {
        None
    }
    /// Adds the point's (empty) result to the report.
    fn begin_point(
        &mut self,
        point: usize,
        flows: &[Flow],
        shape: PointShape,
        report: &mut RunReport,
    );
    /// Adds a trial to the point's result and refreshes its summary.
    fn add_trial(&mut self, ranks: &[RankInfo], outcome: &TrialOutcome, report: &mut RunReport);
    /// A one-line progress note on the last point.
    fn progress(&self, report: &RunReport) -> String;
    /// The last trial's numbers for a soak sample; `None` for tests that
    /// have no soak mode.
    fn soak_metrics(&self, _report: &RunReport) -> Option<SampleMetrics> {
        None
    }
}

/// Runs `test` over the joined nodes. Always returns the report (status
/// "complete", or "partial"/"failed" with the error inside), plus the error
/// that stopped it, if any. Tells every node to finish or abort.
pub fn run_fabric(
    coordinator: &mut Coordinator,
    test: &mut dyn FabricTest,
    options: &FabricOptions,
    on_progress: &mut dyn FnMut(FabricEvent<'_>),
) -> (RunReport, Option<SuiteError>) {
    let mut report = blank_report(coordinator, test, options);
    let result = drive(coordinator, test, options, &mut report, on_progress);
    match &result {
        Ok(()) => coordinator.finish(),
        Err(err) => coordinator.abort(&err.to_string()),
    }
    let measured = report
        .pairs
        .iter()
        .map(|p| p.trials.len())
        .chain(report.incast.iter().map(|p| p.trials.len()))
        .chain(report.alltoall.iter().map(|p| p.trials.len()))
        .chain(
            report
                .contention
                .iter()
                .flat_map(|c| c.phases.iter().map(|p| p.trials.len())),
        )
        .chain(
            report
                .kv
                .iter()
                .flat_map(|k| k.points.iter().map(|p| p.requests.len())),
        )
        .chain(
            report
                .serving
                .iter()
                .flat_map(|s| s.points.iter().map(|p| p.trials.len())),
        )
        .any(|n| n > 0);
    let error = super::conclude(&mut report, result, measured, options.json.as_deref());
    (report, error)
}

fn drive(
    coordinator: &mut Coordinator,
    test: &mut dyn FabricTest,
    options: &FabricOptions,
    report: &mut RunReport,
    on_progress: &mut dyn FnMut(FabricEvent<'_>),
) -> Result<(), SuiteError> {
    let control = options.stall_timeout + Duration::from_secs(30);
    for point in 0..test.points() {
        let flows = test
            .flows(point, &coordinator.ranks, options.qps_per_flow)
            .map_err(SuiteError::Invalid)?;
        let spec = PointSpec {
            point: point as u32,
            msg_bytes: test.msg_bytes(point).unwrap_or(options.msg_bytes),
            flows: flows.clone(),
            tx_depth: options.tx_depth,
            max_wr_bytes: options.max_wr_bytes,
            path: options.path,
            stall_timeout_s: options.stall_timeout.as_secs_f64(),
            slot_per_flow: test.slot_per_flow(),
            slot_bytes: test.slot_bytes(point).unwrap_or(0),
            poll: options.poll,
            kv: test.kv(point).map(|mut kv| {
                if kv.max_wr_bytes == 0 {
                    // "as large as every device of the run takes": both ends
                    // must slice alike, so node 0 picks for all
                    kv.max_wr_bytes = smallest_max_msg(coordinator);
                }
                kv
            }),
            serving: test.serving(point).map(|mut s| {
                if s.max_wr_bytes == 0 {
                    s.max_wr_bytes = smallest_max_msg(coordinator);
                }
                s
            }),
        };
        let replies =
            coordinator.round_trip(ClusterMessage::Setup(Box::new(spec)), "SetupDone", control)?;
        let ends: Vec<FlowEnd> = replies
            .into_iter()
            .flat_map(|reply| match reply {
                ClusterMessage::SetupDone { ends } => ends,
                _ => Vec::new(),
            })
            .collect();
        let shape = ends
            .iter()
            .find(|e| e.side == Side::Sender)
            .map(|e| PointShape {
                wr_bytes: e.wr_bytes,
                tx_depth: e.tx_depth,
            })
            .ok_or_else(|| SuiteError::Invalid("no node set up a sending end".into()))?;
        coordinator.round_trip(ClusterMessage::Connect { ends }, "Connected", control)?;
        test.begin_point(point, &flows, shape, report);
        let trial_wait = test.trial_time(point) + control;
        // slotted (AllToAll) and KV flows are not reported per stream
        let per_rank =
            test.slot_per_flow() || test.kv(point).is_some() || test.serving(point).is_some();
        let warmup = run_trial(
            coordinator,
            &flows,
            per_rank,
            TrialAsk {
                work: test.work(point, &flows, u32::MAX),
                series: None,
            },
            u32::MAX,
            trial_wait,
            None,
        )?;
        if let Some(err) = warmup
            .kv
            .iter()
            .find_map(|end| end.error.clone())
            .or_else(|| {
                warmup
                    .serving
                    .iter()
                    .filter_map(|w| w.error.clone())
                    .min_by_key(|e| error_rank(e))
            })
        {
            return Err(SuiteError::Invalid(format!(
                "the warmup of point {point} failed: {err}"
            )));
        }
        let mut soak = options.soak.map(Soak::new);
        for trial in 0..options.trials {
            let work = test.work(point, &flows, trial);
            let outcome = run_trial(
                coordinator,
                &flows,
                per_rank,
                TrialAsk {
                    work,
                    series: test.series(point),
                },
                trial,
                trial_wait,
                options.soak.as_ref(),
            )?;
            test.add_trial(&coordinator.ranks, &outcome, report);
            if let Some(soak) = soak.as_mut() {
                let metrics = test.soak_metrics(report).unwrap_or_default();
                soak.record(
                    trial,
                    metrics.with_counters(&outcome.counters),
                    outcome.resources.clone(),
                );
                report.soak = Some(soak.report());
            }
            // a KV end that failed mid-trial sent what it completed: keep
            // it, then stop the run
            // (the posting end's error says more than "no notification")
            let failed = outcome
                .kv
                .iter()
                .filter(|end| end.error.is_some())
                .max_by_key(|end| end.active)
                .and_then(|end| end.error.clone().map(|e| (end.flow, end.active, e)));
            on_progress(FabricEvent::TrialDone {
                point,
                points: test.points(),
                trial,
                trials: options.trials,
            });
            report.updated_at = rfc3339_now();
            if let Some(path) = &options.json {
                write_json(report, path)?;
            }
            if let Some((flow, active, err)) = failed {
                let end = if active { "posting" } else { "waiting" };
                return Err(SuiteError::Invalid(format!(
                    "trial {trial}: the {end} end of KV flow {flow} failed: {err} (its completed requests are kept)"
                )));
            }
            // a serving worker that failed: one that failed on its own
            // before one that outlived the budget (maybe a silent peer on
            // another node) before one stopped by a peer of its node
            if let Some((w, err)) = outcome
                .serving
                .iter()
                .filter_map(|w| w.error.as_ref().map(|e| (w, e)))
                .min_by_key(|(_, e)| error_rank(e))
            {
                let role = if w.prefill { "prefill" } else { "decode" };
                return Err(SuiteError::Invalid(format!(
                    "trial {trial}: {role} worker {} failed: {err} (the trial's completed requests are kept)",
                    w.worker
                )));
            }
        }
        on_progress(FabricEvent::PointDone(&test.progress(report)));
        coordinator.round_trip(ClusterMessage::Teardown, "TornDown", control)?;
    }
    Ok(())
}

/// The smallest largest-message size over every device of the run.
fn smallest_max_msg(coordinator: &Coordinator) -> u64 {
    coordinator
        .nodes
        .iter()
        .flat_map(|n| n.join.roles.iter())
        .map(|r| r.device.limits.max_msg_bytes)
        .min()
        .unwrap_or(1 << 30)
        .max(1)
}

/// What one trial asks of every node: its work and the series to record.
struct TrialAsk {
    work: TrialWork,
    series: Option<SeriesRequest>,
}

fn run_trial(
    coordinator: &mut Coordinator,
    flows: &[Flow],
    slot_per_flow: bool,
    TrialAsk { work, series }: TrialAsk,
    trial: u32,
    wait: Duration,
    soak: Option<&SoakOptions>,
) -> Result<TrialOutcome, ClusterError> {
    coordinator.round_trip(
        ClusterMessage::Prepare {
            trial,
            work,
            series,
        },
        "Ready",
        Duration::from_secs(30),
    )?;
    let start_ns = monotonic_ns() + START_LEAD.as_nanos() as u64;
    coordinator.broadcast("could not be sent Go", |link| ClusterMessage::Go {
        trial,
        start_at_ns: (start_ns as i128 + i128::from(link.offset.offset_ns)) as u64,
    })?;
    let replies = coordinator.collect("Done", wait + START_LEAD)?;
    let mut by_flow = std::collections::BTreeMap::new();
    let mut counters = Vec::new();
    let mut dispatch = Vec::new();
    let mut kv = Vec::new();
    let mut serving = Vec::new();
    for (link, reply) in coordinator.nodes.iter().zip(replies) {
        let ClusterMessage::Done(node_trial) = reply else {
            return Err(ClusterError::NodeFailed {
                node: link.node,
                name: link.join.name.clone(),
                message: format!("sent {} instead of Done", reply.name()),
            });
        };
        let shift = |t: u64| (t as i128 - i128::from(link.offset.offset_ns)).max(0) as u64;
        for mut rank in node_trial.dispatch {
            for (start, posted, done) in &mut rank.iterations {
                *start = shift(*start);
                *posted = shift(*posted);
                *done = shift(*done);
            }
            for (start, done) in &mut rank.combine {
                *start = shift(*start);
                *done = shift(*done);
            }
            dispatch.push(rank);
        }
        for mut end in node_trial.kv {
            for r in &mut end.requests {
                for t in [
                    &mut r.start_ns,
                    &mut r.first_post_ns,
                    &mut r.last_post_ns,
                    &mut r.data_done_ns,
                ] {
                    *t = shift(*t);
                }
                if r.notify_done_ns != 0 {
                    r.notify_done_ns = shift(r.notify_done_ns);
                }
            }
            for (_, seen) in &mut end.seen {
                *seen = shift(*seen);
            }
            kv.push(end);
        }
        // 0 is "never" (not admitted, not posted): it stays 0
        let shift_set = |t: u64| if t == 0 { 0 } else { shift(t).max(1) };
        for mut w in node_trial.serving {
            for r in &mut w.requests {
                for t in [
                    &mut r.intended_ns,
                    &mut r.prefill_start_ns,
                    &mut r.prefill_end_ns,
                    &mut r.admit_ns,
                    &mut r.first_post_ns,
                    &mut r.data_done_ns,
                ] {
                    *t = shift_set(*t);
                }
            }
            for l in &mut w.landed {
                l.landed_ns = shift_set(l.landed_ns);
            }
            serving.push(w);
        }
        for mut tally in node_trial.flows {
            tally.start_ns = shift(tally.start_ns);
            tally.end_ns = shift(tally.end_ns);
            for t in &mut tally.transfers {
                t.scheduled_ns = shift(t.scheduled_ns);
                t.post_ns = shift(t.post_ns);
                t.done_ns = shift(t.done_ns);
            }
            by_flow.insert(tally.flow, tally);
        }
    }
    let sample = soak.filter(|_| trial != u32::MAX);
    let replies = coordinator.round_trip(
        ClusterMessage::CountersAfter {
            sample_resources: sample.is_some(),
            inject_leak: sample.is_some_and(|s| s.inject_leak),
        },
        "Counters",
        Duration::from_secs(30),
    )?;
    let mut resources = Vec::new();
    let mut counter_series = Vec::new();
    for (link, reply) in coordinator.nodes.iter().zip(replies) {
        if let ClusterMessage::Counters {
            deltas,
            resources: footprint,
            series,
        } = reply
        {
            // sampled relative to the node's own view of the common start
            counter_series.extend(series.into_iter().map(|s| CounterSeries {
                node: link.node,
                ..s
            }));
            counters.extend(deltas.into_iter().map(|deltas| NodeCounters {
                node: link.node,
                deltas,
            }));
            if let Some(footprint) = footprint {
                resources.push(ProcessSample {
                    process: format!("node {} ({})", link.node, link.join.name),
                    resources: footprint,
                });
            }
        }
    }
    // streams report per flow; AllToAll (slotted) flows report per rank
    let flows = flows
        .iter()
        .filter(|f| !(slot_per_flow || f.slot))
        .map(|flow| {
            by_flow
                .remove(&flow.id)
                .map(|tally| FlowOutcome { flow: *flow, tally })
                .ok_or_else(|| {
                    ClusterError::Invalid(format!(
                        "no node reported flow {} of trial {trial}",
                        flow.id
                    ))
                })
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok(TrialOutcome {
        trial,
        start_ns,
        flows,
        counters,
        dispatch: {
            dispatch.sort_by_key(|r| r.rank);
            dispatch
        },
        kv,
        serving,
        resources,
        counter_series,
    })
}

fn blank_report(
    coordinator: &Coordinator,
    test: &dyn FabricTest,
    options: &FabricOptions,
) -> RunReport {
    let device_of = |role: Role| {
        coordinator
            .nodes
            .iter()
            .flat_map(|n| n.join.roles.iter())
            .find(|r| r.role == role)
            .or_else(|| coordinator.nodes[0].join.roles.first())
            .map(|r| r.device.clone())
            .expect("every node declares a role")
    };
    let initiator = device_of(Role::Prefill);
    let target = device_of(Role::Decode);
    let nodes = coordinator
        .nodes
        .iter()
        .map(|link| NodeReport {
            node: link.node,
            name: link.join.name.clone(),
            hostname: link.join.hostname.clone(),
            devices: link
                .join
                .roles
                .iter()
                .map(|r| RoleDevice {
                    role: r.role.name().into(),
                    ranks: r.ranks,
                    device: r.device.clone(),
                })
                .collect(),
            clock_offset_ns: link.offset.offset_ns,
            clock_error_bound_ns: link.offset.error_bound_ns,
            clock_method: link.offset.method.clone(),
            system: link.join.system.clone(),
        })
        .collect();
    let ranks = coordinator
        .ranks
        .iter()
        .map(|r| RankReport {
            rank: r.rank,
            node: r.node,
            local: r.local,
            role: r.role.name().into(),
            device: r.device.clone(),
        })
        .collect();
    let same_host = coordinator
        .nodes
        .iter()
        .all(|n| n.offset.method == "same-host");
    RunReport {
        schema_version: SCHEMA_VERSION.into(),
        tool: ToolInfo::this_build(),
        test_id: test.test_id().into(),
        test_name: test.test_name().into(),
        dut_id: options.dut_id.clone(),
        started_at: rfc3339_now(),
        updated_at: rfc3339_now(),
        status: "running".into(),
        error: None,
        deviations: options
            .soak
            .iter()
            .flat_map(super::soak::soak_deviations)
            .chain(test.deviations(options))
            .chain(node0_poll(options, coordinator, test).deviation())
            .collect(),
        parameters: RunParameters {
            op: "write".into(),
            mode: "bandwidth".into(),
            clocks: vec!["message-completion".into()],
            sizes_bytes: vec![options.msg_bytes],
            qps: vec![options.qps_per_flow],
            trials: options.trials,
            duration_s: test.duration_s(),
            iters: None,
            warmup_iters: 0,
            tx_depth: options.tx_depth.unwrap_or(0),
            rx_depth: 0,
            cq_mod: 1,
            threads: coordinator.ranks.len() as u32,
            verify: false,
            huge_pages: options.memory == MemoryKind::Huge
                || options.target_memory == MemoryKind::Huge,
            max_wr_bytes: options
                .max_wr_bytes
                .unwrap_or(initiator.limits.max_msg_bytes),
            stall_timeout_s: options.stall_timeout.as_secs_f64(),
            traffic_class: options.path.traffic_class,
            poll: Some(poll_report(&node0_poll(options, coordinator, test))),
            memory: Some(memory_kinds(options.memory, options.target_memory)),
        },
        endpoints: Some(EndpointsReport {
            initiator,
            target,
            same_host,
        }),
        clock: None,
        load_sweep: Vec::new(),
        results: Vec::new(),
        system: Some(coordinator.nodes[0].join.system.clone()),
        cluster: Some(ClusterReport {
            launcher: options.launcher.clone(),
            rendezvous: options.rendezvous.clone(),
            topology_file: options.topology_file.clone(),
            dut: options.dut.clone(),
            nodes,
            ranks,
        }),
        pairs: Vec::new(),
        incast: Vec::new(),
        alltoall: Vec::new(),
        contention: None,
        kv: None,
        soak: None,
        decode_steps: None,
        serving: None,
        tiers: None,
    }
}

/// The memory of both ends as the options name it. Registrations are
/// recorded only where they follow from the kind (host memory is always
/// `ibv_reg_mr`); a GPU buffer's path is known to the node that registered
/// it, and its log says which.
fn memory_kinds(initiator: MemoryKind, target: MemoryKind) -> MemoryReport {
    let known = |m: MemoryKind| (!m.is_gpu()).then(|| "host".to_string());
    MemoryReport {
        initiator: initiator.to_string(),
        target: target.to_string(),
        initiator_registration: known(initiator),
        target_registration: known(target),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_slowest_rank_sets_each_layer() {
        let rank = |rank, iterations: Vec<(u64, u64, u64)>| RankDispatchTrial {
            rank,
            iterations,
            bytes_sent: 0,
            messages_received: 0,
            cpu_s: 0.0,
            series: None,
            combine: Vec::new(),
        };
        let dispatch = [
            rank(0, vec![(0, 5, 10), (10, 12, 30), (30, 31, 35)]),
            rank(1, vec![(2, 4, 20), (20, 21, 25)]),
        ];
        // rank 1 completed two iterations: only those count
        assert_eq!(layer_latencies(&dispatch), vec![18, 20]);
        assert!(layer_latencies(&[]).is_empty());
    }

    #[test]
    fn combine_and_layer_take_the_slowest_rank() {
        let rank = |rank, iterations: Vec<(u64, u64, u64)>, combine| RankDispatchTrial {
            rank,
            iterations,
            bytes_sent: 0,
            messages_received: 0,
            cpu_s: 0.0,
            series: None,
            combine,
        };
        let dispatch = [
            rank(0, vec![(0, 1, 10), (40, 41, 50)], vec![(10, 30), (50, 55)]),
            rank(1, vec![(2, 3, 12), (42, 43, 52)], vec![(12, 20), (52, 70)]),
        ];
        assert_eq!(combine_latencies(&dispatch), vec![20, 18]);
        assert_eq!(whole_layer_latencies(&dispatch), vec![30, 28]);
        // a rank that did not combine: no combine iterations at all
        let partial = [dispatch[0].clone(), rank(1, vec![(2, 3, 12)], Vec::new())];
        assert!(combine_latencies(&partial).is_empty());
    }

    #[test]
    fn fewer_than_twenty_trials_is_a_deviation() {
        assert_eq!(trial_count_deviation(20, "phase"), None);
        assert!(trial_count_deviation(3, "phase")
            .unwrap()
            .starts_with("3 trials per phase"));
    }
}
