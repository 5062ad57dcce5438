//! Point-to-point KV-cache transfer: IETF test 5.1 (throughput vs message
//! size and QP count) and 5.2 (latency under three clocks, unloaded or
//! beside a paced background stream, and 10.4's load sweep), as the
//! initiator.
//!
//! For each message size × QP count: connect the QPs, warm up, run the
//! trials, summarise (mean ± 95 % CI across trials, merged percentiles, JFI
//! across QPs) and rewrite the results file after every trial, so an error
//! later loses nothing measured before it: a configuration an error stops
//! keeps its completed trials, marked "partial" with the failed trial and
//! the error.

use std::collections::BTreeMap;
use std::net::{SocketAddr, TcpListener};
use std::path::PathBuf;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use crate::control::{
    estimate_offset, monotonic_ns, Abort, Channel, ClockOffset, Connect, Hello, Message, Mode, Op,
    TrialReport, TrialStart, Welcome, PROTOCOL_VERSION,
};
use crate::engine::{
    fill_pattern, pattern_seed, run_bandwidth, run_latency, run_paced, run_pingpong, BandwidthPlan,
    Endpoint, EngineError, LatencyPlan, LatencyRun, PollChoice, PollMode, QpSet, StopOnDrop,
    StopRule,
};
use crate::results::{
    write_json, ClockLatency, ClockReport, ConfigResult, CpuUse, EndpointsReport, MemoryReport,
    RunParameters, RunReport, ToolInfo, TrialResult, SCHEMA_VERSION,
};
use crate::results::{NodeCounters, ProcessResources, ProcessSample};
use crate::stats::{jain_index, max_min_ratio, LatencyHistogram, Throughput};
use crate::sysinfo::CounterSnapshot;
use crate::verbs::{MemoryKind, QpCaps, QpPathOptions, RdmaDevice, RemoteAccess};

use super::background::{
    background_msg_bytes, background_result, cpu_percent_over, load_sweeps, rate_over, target_rate,
    BackgroundStream, StreamShape, CAPACITY_TRIAL,
};
use super::serve::{serve, ServeOptions};
use super::soak::{soak_deviations, this_process, SampleMetrics, Soak, SoakOptions};
use super::summary::{per_qp_results, summarize};
use super::{boot_id, poll_report, rfc3339_now, SuiteError};

/// Which latency clocks to measure.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Clock {
    /// Post → local completion.
    Initiator,
    /// Post → receive completion at the target.
    Target,
    /// Round trip / 2.
    PingPong,
}

impl Clock {
    /// The name in reports.
    pub fn name(self) -> &'static str {
        match self {
            Clock::Initiator => "initiator",
            Clock::Target => "target",
            Clock::PingPong => "pingpong",
        }
    }
}

/// Everything a p2p run needs, validated by the CLI.
#[derive(Debug, Clone)]
pub struct P2pOptions {
    /// Operation.
    pub op: Op,
    /// Bandwidth (5.1) or latency (5.2).
    pub latency_mode: bool,
    /// Clocks for latency mode.
    pub clocks: Vec<Clock>,
    /// Message sizes.
    pub sizes: Vec<u64>,
    /// QP counts.
    pub qps: Vec<u32>,
    /// Trials per configuration.
    pub trials: u32,
    /// Trial length when timed.
    pub duration: Option<Duration>,
    /// Messages per QP (bandwidth) or iterations (latency) when counted.
    pub iters: Option<u64>,
    /// Warmup messages per QP.
    pub warmup_iters: u64,
    /// Outstanding WRs per QP (None = automatic).
    pub tx_depth: Option<u32>,
    /// Receives posted per QP at the target.
    pub rx_depth: u32,
    /// Completion every n messages.
    pub cq_mod: u32,
    /// Engine threads.
    pub threads: u32,
    /// Verify payloads.
    pub verify: bool,
    /// Where the initiator's buffer lives (`--mem`).
    pub memory: MemoryKind,
    /// Where the target's buffer lives (`--target-mem`; None: the
    /// target's own `--mem`).
    pub target_memory: Option<MemoryKind>,
    /// Cap on bytes per WR (None = the port's max message size).
    pub max_wr_bytes: Option<u64>,
    /// Stall timeout.
    pub stall_timeout: Duration,
    /// Transport knobs.
    pub path: QpPathOptions,
    /// Shared token.
    pub token: Option<String>,
    /// Results file.
    pub json: Option<PathBuf>,
    /// DUT label.
    pub dut_id: String,
    /// Cores for engine threads (latency: the foreground on the first, the
    /// background on the rest).
    pub cores: Vec<usize>,
    /// The in-process target's device (single-host runs): its counters are
    /// snapshotted per trial too.
    pub local_target: Option<crate::results::DeviceFacts>,
    /// Background load levels, percent of capacity, in run order (empty:
    /// no background; latency mode only).
    pub background_levels: Vec<u32>,
    /// The levels are test 10.4's sweep (0..95 % in 5 % steps).
    pub background_sweep: bool,
    /// QPs of the background stream.
    pub background_qps: u32,
    /// Soak mode (IETF 13.x): one size and QP count, `trials` samples of
    /// `duration` each (the CLI derives both from the soak).
    pub soak: Option<SoakOptions>,
    /// `--poll`: how engine threads wait (None: chosen from threads and cores).
    pub poll: Option<PollMode>,
}

impl P2pOptions {
    /// The poll mode of this process's engine threads: the initiator's
    /// lanes, the background stream's, and the in-process target's worker.
    pub fn poll_choice(&self) -> PollChoice {
        // the background stream runs on one lane (BackgroundStream::create)
        let background = u32::from(!self.background_levels.is_empty());
        let target = u32::from(self.local_target.is_some());
        let threads = self.threads.max(1) + background + target;
        PollChoice::resolve_for(self.poll, threads as usize, self.latency_mode)
    }
}

fn control_timeout(options: &P2pOptions) -> Duration {
    options.stall_timeout + Duration::from_secs(30)
}

/// Runs the sweep against the target at `peer`. Always returns the report
/// (status "complete", or "partial"/"failed" with the error inside), plus
/// the error that stopped it, if any.
pub fn run_p2p(
    device: Arc<RdmaDevice>,
    peer: SocketAddr,
    options: &P2pOptions,
    on_config: &mut dyn FnMut(&RunReport),
) -> (RunReport, Option<SuiteError>) {
    let mut report = blank_report(&device, options);
    let result = drive(&device, peer, options, &mut report, on_config);
    let measured = !report.results.is_empty();
    let error = super::conclude(&mut report, result, measured, options.json.as_deref());
    (report, error)
}

pub(crate) fn blank_report(device: &RdmaDevice, options: &P2pOptions) -> RunReport {
    blank_report_on(Some(device), options)
}

/// [`blank_report`] for a run that may have no RDMA device (5.4's file
/// tiers): no endpoints, a system report without devices.
pub(crate) fn blank_report_on(device: Option<&RdmaDevice>, options: &P2pOptions) -> RunReport {
    let (test_id, test_name) = if options.background_sweep {
        ("10.4", "Latency Sensitivity to Fabric Congestion")
    } else if options.latency_mode {
        ("5.2", "KV Cache Transfer Latency")
    } else {
        ("5.1", "Point-to-Point KV Cache Transfer Throughput")
    };
    let mut deviations = Vec::new();
    let min_s = if options.latency_mode { 120.0 } else { 60.0 };
    if let Some(soak) = &options.soak {
        deviations.extend(soak_deviations(soak));
    }
    match options.duration {
        _ if options.soak.is_some() => {}
        Some(d) if d.as_secs_f64() >= min_s => {}
        Some(d) => deviations.push(format!(
            "trials last {:.1} s; the draft asks for at least {min_s} s",
            d.as_secs_f64()
        )),
        None => deviations.push(format!(
            "trials are counted in messages, not timed; the draft asks for at least {min_s} s"
        )),
    }
    if options.trials < 20 && options.soak.is_none() {
        deviations.push(format!(
            "{} trials per configuration; the draft asks for at least 20",
            options.trials
        ));
    }
    deviations.extend(background_deviations(options));
    deviations.extend(options.poll_choice().deviation());
    RunReport {
        schema_version: SCHEMA_VERSION.into(),
        tool: ToolInfo::this_build(),
        test_id: test_id.into(),
        test_name: test_name.into(),
        dut_id: options.dut_id.clone(),
        started_at: rfc3339_now(),
        updated_at: rfc3339_now(),
        status: "running".into(),
        error: None,
        deviations,
        parameters: RunParameters {
            op: options.op.name().into(),
            mode: if options.latency_mode {
                "latency"
            } else {
                "bandwidth"
            }
            .into(),
            clocks: if options.latency_mode {
                options
                    .clocks
                    .iter()
                    .map(|c| c.name().to_string())
                    .collect()
            } else {
                vec!["message-completion".into()]
            },
            sizes_bytes: options.sizes.clone(),
            qps: options.qps.clone(),
            trials: options.trials,
            duration_s: options.duration.map(|d| d.as_secs_f64()),
            iters: options.iters,
            warmup_iters: options.warmup_iters,
            tx_depth: options.tx_depth.unwrap_or(0),
            rx_depth: options.rx_depth,
            cq_mod: options.cq_mod,
            threads: options.threads,
            verify: options.verify,
            huge_pages: options.memory == MemoryKind::Huge
                || options.target_memory == Some(MemoryKind::Huge),
            max_wr_bytes: options
                .max_wr_bytes
                .or(device.map(|d| d.limits().max_msg_bytes))
                .unwrap_or(0),
            stall_timeout_s: options.stall_timeout.as_secs_f64(),
            traffic_class: options.path.traffic_class,
            poll: Some(poll_report(&options.poll_choice())),
            memory: None,
        },
        endpoints: device.map(|device| EndpointsReport {
            initiator: device.facts().clone(),
            target: device.facts().clone(),
            same_host: true,
        }),
        clock: None,
        load_sweep: Vec::new(),
        results: Vec::new(),
        system: Some(crate::sysinfo::collect_system(
            &crate::sysinfo::HostRoot::live(),
            &device
                .map(|device| {
                    crate::sysinfo::DeviceUse::from_facts(
                        device.facts(),
                        options.path.traffic_class,
                    )
                })
                .into_iter()
                .collect::<Vec<_>>(),
        )),
        cluster: None,
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

/// The in-process target of a single-host run: `infab serve` for one
/// session on `target`, in a thread, on a free loopback port, with the
/// run's token, target memory and stall timeout. Returns its address and
/// the thread (the session's result).
pub fn spawn_local_target(
    target: Arc<RdmaDevice>,
    options: &P2pOptions,
) -> std::io::Result<(SocketAddr, JoinHandle<Result<(), SuiteError>>)> {
    let listener = TcpListener::bind("127.0.0.1:0")?;
    let addr = listener.local_addr()?;
    let serve_options = ServeOptions {
        token: options.token.clone(),
        once: true,
        memory: options.target_memory.unwrap_or_default(),
        idle_timeout: options.stall_timeout + Duration::from_secs(30),
        stall_timeout: options.stall_timeout,
        core: None,
    };
    let handle = std::thread::spawn(move || serve(listener, target, &serve_options));
    Ok((addr, handle))
}

/// How a loaded run departs from the draft: what the load is, and which
/// levels are missing.
fn background_deviations(options: &P2pOptions) -> Vec<String> {
    let levels = &options.background_levels;
    if levels.is_empty() {
        return Vec::new();
    }
    let list = levels
        .iter()
        .map(|l| l.to_string())
        .collect::<Vec<_>>()
        .join(", ");
    let mut notes = vec![format!(
        "loaded: background is an RDMA WRITE stream on {} extra QPs between the same two \
         endpoints, paced at {list} % of the WRITE capacity those QPs measure per size \
         ({} s unpaced trial), not a separate load generator on the fabric",
        options.background_qps,
        CAPACITY_TRIAL.as_secs_f64()
    )];
    if options.background_sweep {
        notes.push(
            "10.4 asks for TTFT and ITL P99 of inference requests; infab reports the 5.2 \
             foreground transfer latency per clock as their fabric-level proxy"
                .into(),
        );
    } else if ![0, 25, 50, 75, 90].iter().all(|l| levels.contains(l)) {
        notes.push(format!(
            "background levels {list} %; the draft asks for unloaded (0) and 25, 50, 75, 90 %"
        ));
    }
    notes
}

fn expect_reply(
    channel: &mut Channel,
    timeout: Duration,
    what: &str,
) -> Result<Message, SuiteError> {
    match channel.recv::<Message>(timeout, what)? {
        Message::Error { message } => Err(SuiteError::Target(message)),
        Message::Reject { reason } => Err(SuiteError::Rejected(reason)),
        message => Ok(message),
    }
}

struct Run<'a> {
    device: &'a Arc<RdmaDevice>,
    options: &'a P2pOptions,
    /// Raised when the control connection closes; every lane watches it.
    abort: Abort,
    channel: Channel,
    endpoint: Endpoint,
    welcome: Welcome,
    offset: ClockOffset,
    /// Devices on this host whose counters each trial records.
    counter_devices: Vec<crate::results::DeviceFacts>,
    /// Where the background region starts in both buffers.
    background_offset: u64,
    /// The target's footprint from the last TrialReport (soak runs).
    target_resources: Option<ProcessResources>,
}

/// Puts a configuration with one more trial into `results[slot]` (the
/// first trial appends it) and rewrites the results file, so a failure or a
/// kill later keeps every trial measured. While `running` (trials still to
/// come) the entry says so and counts its trials.
fn record_trial(
    report: &mut RunReport,
    options: &P2pOptions,
    slot: usize,
    config: ConfigResult,
    running: bool,
) -> Result<(), SuiteError> {
    put_trial(report, slot, config, running, options.background_sweep);
    report.updated_at = rfc3339_now();
    if let Some(path) = &options.json {
        write_json(report, path)?;
    }
    Ok(())
}

/// The in-memory half of [`record_trial`].
fn put_trial(
    report: &mut RunReport,
    slot: usize,
    mut config: ConfigResult,
    running: bool,
    background_sweep: bool,
) {
    if running {
        config.status = Some("running".into());
        config.trials_completed = Some(config.trials.len() as u32);
    }
    if slot < report.results.len() {
        report.results[slot] = config;
    } else {
        report.results.push(config);
    }
    if background_sweep && !running {
        // the curves use whole configurations only
        let complete: Vec<ConfigResult> = report
            .results
            .iter()
            .filter(|c| c.status.is_none())
            .cloned()
            .collect();
        report.load_sweep = load_sweeps(&complete);
    }
}

/// Marks the configuration at `slot`, if a trial of it completed, as
/// stopped by `err` at `trial`; the run's end (`conclude`) writes the file.
fn mark_stopped(report: &mut RunReport, slot: usize, trial: u32, err: &SuiteError) {
    if let Some(config) = report.results.get_mut(slot) {
        config.status = Some("partial".into());
        config.trials_completed = Some(config.trials.len() as u32);
        config.failed_trial = Some(trial);
        config.error = Some(err.to_string());
    }
}

/// One foreground trial's results and histograms.
type TrialOutcome = (TrialResult, Vec<(String, LatencyHistogram)>);

fn drive(
    device: &Arc<RdmaDevice>,
    peer: SocketAddr,
    options: &P2pOptions,
    report: &mut RunReport,
    on_config: &mut dyn FnMut(&RunReport),
) -> Result<(), SuiteError> {
    let largest = options.sizes.iter().copied().max().unwrap_or(0);
    // the background stream writes into its own region past the largest message
    let background_region = if options.background_levels.is_empty() {
        0
    } else {
        background_msg_bytes(largest)
    };
    let buffer_bytes = largest + background_region;
    let mut channel = Channel::connect(peer, Duration::from_secs(10))?;
    // a vanished target host then fails the next control read in seconds
    if let Err(err) = channel.keep_alive() {
        log::warn!("{err}; a vanished target is noticed only at the control timeout");
    }
    let trial_s = options.duration.map(|d| d.as_secs_f64()).unwrap_or(0.0) + 5.0;
    let (initiator_access, target_access) = remote_rights(options);
    channel.send(&Message::Hello(Box::new(Hello {
        version: PROTOCOL_VERSION,
        token: options.token.clone(),
        op: options.op,
        buffer_bytes,
        verify: options.verify,
        boot_id: boot_id(),
        initiator: device.facts().clone(),
        max_trial_s: trial_s,
        target_access,
        target_memory: options.target_memory,
        // an in-process target shares this process's cores: it waits as we do
        poll: if options.local_target.is_some() {
            Some(options.poll_choice().mode)
        } else {
            options.poll
        },
    })))?;
    let welcome = match expect_reply(&mut channel, control_timeout(options), "Welcome")? {
        Message::Welcome(welcome) => *welcome,
        other => {
            return Err(SuiteError::Invalid(format!(
                "expected Welcome, got {}",
                other.name()
            )))
        }
    };
    let same_host = !welcome.boot_id.is_empty() && welcome.boot_id == boot_id();
    report.endpoints = Some(EndpointsReport {
        initiator: device.facts().clone(),
        target: welcome.target.clone(),
        same_host,
    });
    let endpoint = Endpoint::new(
        Arc::clone(device),
        buffer_bytes,
        options.memory,
        initiator_access,
    )?;
    report.parameters.memory = Some(MemoryReport {
        initiator: options.memory.to_string(),
        target: welcome
            .target_memory
            .or(options.target_memory)
            .map(|m| m.to_string())
            .unwrap_or_else(|| "unknown".into()),
        initiator_registration: Some(endpoint.buffer.registration().name().into()),
        target_registration: welcome.target_registration.clone(),
    });
    let offset = if same_host {
        ClockOffset::same_host()
    } else {
        probe_clock(&mut channel, options)?
    };
    if options.latency_mode && options.clocks.contains(&Clock::Target) {
        report.clock = Some(ClockReport {
            offset_ns: offset.offset_ns,
            error_bound_ns: offset.error_bound_ns,
            method: offset.method.clone(),
        });
    }
    // the target gone mid-trial (killed, crashed): the engine stops at once
    let abort = Abort::new();
    let _watch = channel.watch(&abort, "during the run")?;
    let mut run = Run {
        device,
        options,
        abort,
        channel,
        endpoint,
        welcome,
        offset,
        counter_devices: std::iter::once(device.facts().clone())
            .chain(options.local_target.clone())
            .collect(),
        background_offset: largest,
        target_resources: None,
    };
    for &msg_bytes in &options.sizes {
        for &qps in &options.qps {
            run.config(msg_bytes, qps, report, on_config)?;
        }
    }
    run.channel.send(&Message::Bye)?;
    Ok(())
}

/// What each end's buffer must let the other do (least privilege):
/// `(initiator, target)`. The target takes WRITEs (and the background
/// stream's) or serves READs; the initiator is written only by a WRITE
/// ping-pong's replies.
fn remote_rights(options: &P2pOptions) -> (RemoteAccess, RemoteAccess) {
    let writes = matches!(options.op, Op::Write | Op::WriteImm);
    let target = RemoteAccess {
        write: writes || !options.background_levels.is_empty(),
        read: options.op == Op::Read,
    };
    let pingpong_writes =
        writes && options.latency_mode && options.clocks.contains(&Clock::PingPong);
    let initiator = if pingpong_writes {
        RemoteAccess::WRITE
    } else {
        RemoteAccess::NONE
    };
    (initiator, target)
}

fn probe_clock(channel: &mut Channel, options: &P2pOptions) -> Result<ClockOffset, SuiteError> {
    let mut probes = Vec::with_capacity(64);
    for _ in 0..64 {
        let sent = monotonic_ns();
        channel.send(&Message::ClockProbe {
            t_initiator_ns: sent,
        })?;
        match expect_reply(channel, control_timeout(options), "ClockReply")? {
            Message::ClockReply { t_target_ns, .. } => {
                probes.push((sent, t_target_ns, monotonic_ns()))
            }
            other => {
                return Err(SuiteError::Invalid(format!(
                    "expected ClockReply, got {}",
                    other.name()
                )))
            }
        }
    }
    estimate_offset(&probes).ok_or_else(|| SuiteError::Invalid("no usable clock probe".into()))
}

impl Run<'_> {
    /// Runs one (size, QPs) configuration: one result, or one per
    /// background level, each published as soon as it is measured.
    fn config(
        &mut self,
        msg_bytes: u64,
        qps: u32,
        report: &mut RunReport,
        on_config: &mut dyn FnMut(&RunReport),
    ) -> Result<(), SuiteError> {
        let options = self.options;
        let max_msg = self
            .device
            .limits()
            .max_msg_bytes
            .min(self.welcome.target.limits.max_msg_bytes)
            .max(1);
        let wr_bytes = msg_bytes
            .min(options.max_wr_bytes.unwrap_or(max_msg))
            .min(max_msg);
        let chunks = msg_bytes.div_ceil(wr_bytes);
        let threads = options.threads.clamp(1, qps) as usize;
        let qps_per_lane = u64::from(qps).div_ceil(threads as u64);
        let tx_depth = self.tx_depth(chunks, wr_bytes, qps_per_lane, report);
        let pingpong_receives =
            options.clocks.contains(&Clock::PingPong) && options.op.target_receives();
        let caps = QpCaps {
            max_send_wr: tx_depth + 2,
            max_recv_wr: if pingpong_receives { 16 } else { 1 },
            max_inline_bytes: if options.latency_mode { 220 } else { 0 },
        };
        let mut set = QpSet::create(&self.endpoint, qps as usize, threads, caps)?;
        set.set_abort(&self.abort);
        let poll = options.poll_choice().mode;
        set.set_poll(poll);
        let mut background = self.background_stream(msg_bytes, max_msg, report)?;
        if let Some(stream) = background.as_mut() {
            stream.set.set_abort(&self.abort);
            // a paced stream: the cheapest wait that holds its rate, unless forced
            stream.set.set_poll(options.poll.unwrap_or(PollMode::Event));
        }
        let connect = Connect {
            qps: set.endpoints(self.device),
            msg_bytes,
            wr_bytes,
            rx_depth: options.rx_depth,
            path: options.path,
            background_qps: background
                .as_ref()
                .map(|b| b.set.endpoints(self.device))
                .unwrap_or_default(),
        };
        self.channel.send(&Message::Connect(connect))?;
        let connected =
            match expect_reply(&mut self.channel, control_timeout(options), "Connected")? {
                Message::Connected(connected) => connected,
                other => {
                    return Err(SuiteError::Invalid(format!(
                        "expected Connected, got {}",
                        other.name()
                    )))
                }
            };
        set.connect(self.device, &connected.qps, &options.path)?;
        if let Some(stream) = background.as_mut() {
            stream
                .set
                .connect(self.device, &connected.background_qps, &options.path)?;
        }
        if options.verify {
            fill_pattern(
                &self.endpoint.buffer,
                msg_bytes as usize,
                pattern_seed(msg_bytes),
            )
            .map_err(EngineError::from)?;
        }
        if pingpong_receives {
            set.lanes[0].top_up_receives(&self.endpoint.buffer, 16, msg_bytes, wr_bytes)?;
        }
        let shape = Shape {
            msg_bytes,
            wr_bytes,
            tx_depth,
        };
        if options.warmup_iters > 0 {
            self.trial(&mut set, &shape, u32::MAX, true)?;
        }
        let capacity = match background.as_mut() {
            Some(stream) => {
                let capacity =
                    self.tell_peer_suite(stream.measure_capacity(&self.endpoint.buffer))?;
                log::info!(
                    "background capacity at {msg_bytes} B: {:.3} GB/s on {} QPs of {} B writes",
                    capacity / 1e9,
                    stream.qps(),
                    stream.msg_bytes()
                );
                capacity
            }
            None => 0.0,
        };
        let levels: Vec<Option<u32>> = if background.is_some() {
            options.background_levels.iter().map(|&l| Some(l)).collect()
        } else {
            vec![None]
        };
        for level in levels {
            let mut trials = Vec::new();
            let mut achieved = Vec::new();
            let mut bg_cpu = Vec::new();
            let mut merged: BTreeMap<String, LatencyHistogram> = BTreeMap::new();
            let target = match level {
                Some(l) if l > 0 => target_rate(l, capacity)?,
                _ => 0,
            };
            // this configuration's entry in `results`, once its first trial is in
            let slot = report.results.len();
            let mut soak = options.soak.map(Soak::new);
            for trial in 0..options.trials {
                let outcome = match background.as_mut() {
                    Some(stream) if target > 0 => {
                        self.loaded_trial(&mut set, &shape, trial, stream, target)
                    }
                    _ => self
                        .trial(&mut set, &shape, trial, false)
                        .map(|o| (o, 0.0, 0.0)),
                };
                let ((result, histograms), rate, cpu) = match outcome {
                    Ok(outcome) => outcome,
                    Err(err) => {
                        mark_stopped(report, slot, trial, &err);
                        return Err(err);
                    }
                };
                for (clock, histogram) in histograms {
                    merged.entry(clock).or_default().merge(&histogram);
                }
                if let Some(soak) = soak.as_mut() {
                    self.sample_soak(soak, &result)?;
                    report.soak = Some(soak.report());
                }
                trials.push(result);
                achieved.push(rate);
                bg_cpu.push(cpu);
                let config = ConfigResult {
                    msg_bytes,
                    qps,
                    wr_bytes,
                    wrs_per_msg: chunks,
                    summary: summarize(&trials, &merged),
                    background: level.zip(background.as_ref()).map(|(l, stream)| {
                        background_result(l, stream, capacity, target, &achieved, &bg_cpu)
                    }),
                    status: None,
                    trials_completed: None,
                    failed_trial: None,
                    error: None,
                    trials: trials.clone(),
                };
                let running = trial + 1 < options.trials;
                record_trial(report, options, slot, config, running)?;
            }
            if let Some(result) = report.results[slot].background.as_ref() {
                log::info!(
                    "background {}% at {msg_bytes} B: target {:.3} GB/s, achieved {:.3} GB/s (worst trial {:+.1}%)",
                    result.level_percent,
                    result.target_gbytes_per_s,
                    result.achieved_mean_gbytes_per_s,
                    result.worst_deviation_percent
                );
            }
            on_config(report);
        }
        self.channel.send(&Message::Release)?;
        match expect_reply(&mut self.channel, control_timeout(options), "Released")? {
            Message::Released => {}
            other => {
                return Err(SuiteError::Invalid(format!(
                    "expected Released, got {}",
                    other.name()
                )))
            }
        }
        Ok(())
    }

    /// The background QPs of a loaded latency configuration (unconnected),
    /// or `None` without background levels.
    fn background_stream(
        &self,
        msg_bytes: u64,
        max_msg: u64,
        report: &mut RunReport,
    ) -> Result<Option<BackgroundStream>, SuiteError> {
        let options = self.options;
        if options.background_levels.is_empty() {
            return Ok(None);
        }
        let bg_msg = background_msg_bytes(msg_bytes);
        let wr_bytes = bg_msg
            .min(options.max_wr_bytes.unwrap_or(max_msg))
            .min(max_msg);
        let chunks = bg_msg.div_ceil(wr_bytes);
        let qps = u64::from(options.background_qps);
        let tx_depth = self.tx_depth(chunks, wr_bytes, qps, report);
        let mut remote = self.welcome.buffer;
        remote.addr += self.background_offset;
        remote.len = remote.len.saturating_sub(self.background_offset);
        let shape = StreamShape {
            msg_bytes: bg_msg,
            wr_bytes,
            tx_depth,
            remote,
            // the foreground latency thread pins to the first core
            cores: options.cores.get(1..).unwrap_or_default().to_vec(),
            stall_timeout: options.stall_timeout,
        };
        Ok(Some(BackgroundStream::create(
            &self.endpoint,
            options.background_qps,
            shape,
        )?))
    }

    /// One foreground trial beside the background paced at
    /// `target_bytes_per_s`; returns it with the achieved background rate
    /// (bytes/s) over the window covering both.
    fn loaded_trial(
        &mut self,
        set: &mut QpSet,
        shape: &Shape,
        trial: u32,
        stream: &mut BackgroundStream,
        target_bytes_per_s: u64,
    ) -> Result<(TrialOutcome, f64, f64), SuiteError> {
        let stop = Arc::new(AtomicBool::new(false));
        // the flag ends the stream; the cap only guards against a lost flag
        let cap = self.options.duration.unwrap_or_default()
            + self.options.stall_timeout
            + Duration::from_secs(3600);
        let (plan, pace) = stream.paced(target_bytes_per_s, &stop, cap);
        let buffer = Arc::clone(&self.endpoint.buffer);
        let (foreground, lanes, window) = std::thread::scope(|scope| {
            let guard = StopOnDrop(Arc::clone(&stop));
            let set_bg = &mut stream.set;
            let handle = scope.spawn(move || run_paced(set_bg, &buffer, &plan, &pace));
            let fg_start = monotonic_ns();
            let foreground = self.trial(set, shape, trial, false);
            let fg_end = monotonic_ns();
            drop(guard);
            let lanes = handle
                .join()
                .unwrap_or_else(|_| Err(EngineError::Panic("the background thread".into())));
            (foreground, lanes, (fg_start, fg_end))
        });
        let foreground = foreground?;
        let lanes = self.tell_peer(lanes)?;
        Ok((
            foreground,
            rate_over(&lanes, Some(window)),
            cpu_percent_over(&lanes, Some(window)),
        ))
    }

    /// As [`Self::tell_peer`], for suite errors.
    fn tell_peer_suite<T>(&mut self, result: Result<T, SuiteError>) -> Result<T, SuiteError> {
        result.inspect_err(|err| {
            let _ = self.channel.send(&Message::Error {
                message: err.to_string(),
            });
        })
    }

    /// The window: the user's, or automatic (128, bounded by the CQ), never
    /// below one message's WRs; any change is logged and recorded.
    fn tx_depth(
        &self,
        chunks: u64,
        wr_bytes: u64,
        qps_per_lane: u64,
        report: &mut RunReport,
    ) -> u32 {
        let max_cqe = self.device.limits().max_cqe;
        let max_wr = self.device.limits().max_qp_wr.saturating_sub(2);
        let wanted = match self.options.tx_depth {
            Some(depth) => u64::from(depth),
            // 128 WRs (perftest's default) for small messages, but at most
            // ~32 MiB in flight per QP (never fewer than 2 WRs): a duration
            // trial drains what it posted, and 128 × 16 MiB would take longer
            // to drain than the trial itself while adding no bandwidth.
            None => {
                let cq_room = (max_cqe / qps_per_lane.max(1)).saturating_sub(4).max(1);
                128u64
                    .min((32u64 << 20).div_ceil(wr_bytes.max(1)).max(2))
                    .min(cq_room)
            }
        };
        let depth = wanted.max(chunks).min(max_wr);
        if depth != wanted && self.options.tx_depth.is_some() {
            let note = format!(
                "tx-depth raised from {wanted} to {depth}: one message needs {chunks} work requests in flight"
            );
            log::warn!("{note}");
            if !report.deviations.contains(&note) {
                report.deviations.push(note);
            }
        }
        report.parameters.tx_depth = report.parameters.tx_depth.max(depth as u32);
        depth as u32
    }

    fn trial(
        &mut self,
        set: &mut QpSet,
        shape: &Shape,
        trial: u32,
        warmup: bool,
    ) -> Result<TrialOutcome, SuiteError> {
        let before: Vec<CounterSnapshot> = self
            .counter_devices
            .iter()
            .map(CounterSnapshot::of_device)
            .collect();
        let (mut result, histograms) = if self.options.latency_mode {
            self.latency_trial(set, shape, trial, warmup)?
        } else {
            self.bandwidth_trial(set, shape, trial, warmup)?
        };
        result.counters = before
            .iter()
            .zip(&self.counter_devices)
            .map(|(b, facts)| NodeCounters {
                node: 0,
                deltas: b.delta(&CounterSnapshot::of_device(facts)),
            })
            .collect();
        Ok((result, histograms))
    }

    /// Adds `result` as the soak's next sample, with both processes'
    /// footprints; then the test-only injected leak, if asked for.
    fn sample_soak(&mut self, soak: &mut Soak, result: &TrialResult) -> Result<(), SuiteError> {
        let latency = result.latency.first().map(|l| &l.summary);
        let metrics = SampleMetrics {
            throughput_gbytes_per_s: result.throughput.gbytes_per_s,
            latency_p50_ns: latency.map(|l| l.p50_ns as f64),
            latency_p99_ns: latency.map(|l| l.p99_ns as f64),
            ..SampleMetrics::default()
        }
        .with_counters(&result.counters);
        let mut processes = vec![this_process("initiator")];
        // an in-process target (single-host runs) is the initiator's process
        if let Some(resources) = self.target_resources.take() {
            processes.push(ProcessSample {
                process: "target".into(),
                resources,
            });
        }
        soak.record(result.trial, metrics, processes);
        soak.maybe_leak(self.device)
    }

    /// Passes an engine failure on to the target (so it stops waiting) and up.
    fn tell_peer<T>(&mut self, result: Result<T, EngineError>) -> Result<T, SuiteError> {
        result.map_err(|err| {
            let _ = self.channel.send(&Message::Error {
                message: err.to_string(),
            });
            err.into()
        })
    }

    fn start(&mut self, trial: u32, mode: Mode, pingpong_iters: u64) -> Result<(), SuiteError> {
        let initiator_buffer = Some(self.endpoint.key());
        self.channel.send(&Message::TrialStart(TrialStart {
            trial,
            mode,
            pingpong_iters,
            initiator_buffer,
            sample_resources: self.options.soak.is_some()
                && self.options.local_target.is_none()
                && trial != u32::MAX,
        }))?;
        match expect_reply(
            &mut self.channel,
            control_timeout(self.options),
            "TrialReady",
        )? {
            Message::TrialReady => Ok(()),
            other => Err(SuiteError::Invalid(format!(
                "expected TrialReady, got {}",
                other.name()
            ))),
        }
    }

    fn end(&mut self, receives_per_qp: Vec<u64>) -> Result<TrialReport, SuiteError> {
        self.channel.send(&Message::TrialEnd { receives_per_qp })?;
        match expect_reply(
            &mut self.channel,
            control_timeout(self.options),
            "TrialReport",
        )? {
            Message::TrialReport(report) => match &report.error {
                Some(err) => Err(SuiteError::Target(err.clone())),
                None => {
                    self.target_resources = report.resources.clone();
                    Ok(report)
                }
            },
            other => Err(SuiteError::Invalid(format!(
                "expected TrialReport, got {}",
                other.name()
            ))),
        }
    }

    fn bandwidth_trial(
        &mut self,
        set: &mut QpSet,
        shape: &Shape,
        trial: u32,
        warmup: bool,
    ) -> Result<TrialOutcome, SuiteError> {
        let options = self.options;
        let stop = match (warmup, options.iters, options.duration) {
            (true, _, _) => StopRule::MessagesPerQp(options.warmup_iters),
            (false, Some(iters), _) => StopRule::MessagesPerQp(iters),
            (false, None, Some(d)) => StopRule::Duration(d),
            (false, None, None) => StopRule::Duration(Duration::from_secs(2)),
        };
        let plan = BandwidthPlan {
            op: options.op,
            msg_bytes: shape.msg_bytes,
            wr_bytes: shape.wr_bytes,
            tx_depth: shape.tx_depth,
            cq_mod: if options.op.target_receives() {
                1
            } else {
                options.cq_mod
            },
            stop,
            remote: self.welcome.buffer,
            lane_remotes: Vec::new(),
            start_at_ns: 0,
            stall_timeout: options.stall_timeout,
            cores: options.cores.clone(),
            series: None,
        };
        self.start(trial, Mode::Bandwidth, 0)?;
        let lanes = run_bandwidth(set, &self.endpoint.buffer, &plan);
        let lanes = self.tell_peer(lanes)?;
        let per_qp: Vec<_> = lanes
            .iter()
            .flat_map(|l| l.per_qp.iter().copied())
            .collect();
        let target = self.end(per_qp.iter().map(|t| t.target_receives).collect())?;
        let start_ns = lanes.iter().map(|l| l.start_ns).min().unwrap_or(0);
        let end_ns = lanes.iter().map(|l| l.end_ns).max().unwrap_or(start_ns);
        let seconds = (end_ns - start_ns) as f64 / 1e9;
        let bytes: u64 = per_qp.iter().map(|t| t.bytes).sum();
        let messages: u64 = per_qp.iter().map(|t| t.messages).sum();
        let per_qp_bytes: Vec<f64> = per_qp.iter().map(|t| t.bytes as f64).collect();
        let mut histogram = LatencyHistogram::new();
        for lane in &lanes {
            histogram.merge(&lane.latency);
        }
        let cpu_s: f64 = lanes.iter().map(|l| l.cpu_s).sum();
        let result = TrialResult {
            trial,
            throughput: Throughput::from_counts(bytes, messages, seconds),
            latency: vec![ClockLatency {
                clock: "message-completion".into(),
                summary: histogram.summary(),
            }],
            per_qp: per_qp_results(
                &per_qp
                    .iter()
                    .map(|t| (t.bytes, t.messages))
                    .collect::<Vec<_>>(),
                seconds,
            ),
            jain_index: if per_qp.len() > 1 {
                jain_index(&per_qp_bytes)
            } else {
                None
            },
            max_min_ratio: if per_qp.len() > 1 {
                max_min_ratio(&per_qp_bytes)
            } else {
                None
            },
            cpu: cpu_use(cpu_s, target.cpu_s, seconds),
            target_receives: target.recv_wrs,
            verify_mismatches: target.verify_mismatches,
            counters: Vec::new(),
        };
        Ok((result, vec![("message-completion".into(), histogram)]))
    }

    fn latency_trial(
        &mut self,
        set: &mut QpSet,
        shape: &Shape,
        trial: u32,
        warmup: bool,
    ) -> Result<TrialOutcome, SuiteError> {
        let options = self.options;
        let iters = if warmup {
            options.warmup_iters
        } else {
            options.iters.unwrap_or(1000)
        };
        let plan = LatencyPlan {
            op: options.op,
            msg_bytes: shape.msg_bytes,
            wr_bytes: shape.wr_bytes,
            iters,
            duration: if warmup || options.iters.is_some() {
                None
            } else {
                options.duration
            },
            remote: self.welcome.buffer,
            stall_timeout: options.stall_timeout,
            core: options.cores.first().copied(),
        };
        let lane = &mut set.lanes[0];
        let mut histograms: Vec<(String, LatencyHistogram)> = Vec::new();
        let mut first_run: Option<(LatencyRun, TrialReport)> = None;
        let wants_one_way = options
            .clocks
            .iter()
            .any(|c| matches!(c, Clock::Initiator | Clock::Target));
        if wants_one_way {
            if options.verify && options.clocks.contains(&Clock::PingPong) {
                // ping-pong replies overwrite the initiator's buffer: restore the pattern
                fill_pattern(
                    &self.endpoint.buffer,
                    shape.msg_bytes as usize,
                    pattern_seed(shape.msg_bytes),
                )
                .map_err(EngineError::from)?;
            }
            self.start(trial, Mode::Latency, 0)?;
            let run = self.tell_peer(run_latency(lane, &self.endpoint.buffer, &plan))?;
            let receives = if options.op.target_receives() {
                run.iterations * wrs_received(options.op, shape)
            } else {
                0
            };
            let mut counts = vec![0u64; set.len()];
            counts[0] = receives;
            let target = self.end(counts)?;
            if options.clocks.contains(&Clock::Initiator) {
                histograms.push(("initiator".into(), run.histogram.clone()));
            }
            if options.clocks.contains(&Clock::Target) {
                histograms.push(("target".into(), self.target_histogram(&run, &target)));
            }
            first_run = Some((run, target));
        }
        if options.clocks.contains(&Clock::PingPong) {
            let pp_plan = LatencyPlan {
                duration: None,
                iters: plan.iters,
                ..plan.clone()
            };
            self.start(trial, Mode::PingPong, pp_plan.iters)?;
            let lane = &mut set.lanes[0];
            let run = self.tell_peer(run_pingpong(lane, &self.endpoint.buffer, &pp_plan))?;
            let counts = vec![0u64; set.len()];
            let target = self.end(counts)?;
            histograms.push(("pingpong".into(), run.histogram.clone()));
            if first_run.is_none() {
                first_run = Some((run, target));
            }
        }
        let (run, target) = first_run.expect("at least one clock is measured");
        let seconds = run.elapsed_ns as f64 / 1e9;
        let bytes = run.iterations * shape.msg_bytes;
        let result = TrialResult {
            trial,
            throughput: Throughput::from_counts(bytes, run.iterations, seconds),
            latency: histograms
                .iter()
                .map(|(clock, h)| ClockLatency {
                    clock: clock.clone(),
                    summary: h.summary(),
                })
                .collect(),
            per_qp: per_qp_results(&[(bytes, run.iterations)], seconds),
            jain_index: None,
            max_min_ratio: None,
            cpu: cpu_use(run.cpu_s, target.cpu_s, seconds),
            target_receives: target.recv_wrs,
            verify_mismatches: target.verify_mismatches,
            counters: Vec::new(),
        };
        Ok((result, histograms))
    }

    /// Target-clock latencies: target receive time − offset − initiator post time.
    fn target_histogram(&self, run: &LatencyRun, target: &TrialReport) -> LatencyHistogram {
        let mut histogram = LatencyHistogram::new();
        for &(imm, t_target) in &target.target_times {
            if let Some(&t_post) = run.post_ns.get(imm as usize) {
                let lat = t_target as i128 - self.offset.offset_ns as i128 - t_post as i128;
                histogram.record(lat.max(0) as u64);
            }
        }
        histogram
    }
}

/// Receive completions one message causes at the target.
fn wrs_received(op: Op, shape: &Shape) -> u64 {
    match op {
        Op::Send => shape.msg_bytes.div_ceil(shape.wr_bytes),
        Op::WriteImm => 1,
        _ => 0,
    }
}

fn cpu_use(initiator_s: f64, target_s: f64, seconds: f64) -> CpuUse {
    let pct = |s: f64| {
        if seconds > 0.0 {
            s / seconds * 100.0
        } else {
            0.0
        }
    };
    CpuUse {
        initiator_percent: pct(initiator_s),
        target_percent: pct(target_s),
    }
}

/// The fixed shape of one configuration.
struct Shape {
    msg_bytes: u64,
    wr_bytes: u64,
    tx_depth: u32,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report() -> RunReport {
        let text = include_str!("../../tests/fixtures/results/bw-write.json");
        serde_json::from_str(text).unwrap()
    }

    #[test]
    fn each_trial_is_kept_and_an_interrupted_configuration_says_why() {
        let mut report = report();
        let config = report.results[0].clone();
        report.results.clear();
        let trial_count = config.trials.len();
        assert!(trial_count >= 2, "the fixture has trials to drop");
        let with = |n: usize| ConfigResult {
            trials: config.trials[..n].to_vec(),
            ..config.clone()
        };
        // the first trial appends the entry, the second replaces it
        put_trial(&mut report, 0, with(1), true, false);
        assert_eq!(report.results.len(), 1);
        assert_eq!(report.results[0].status.as_deref(), Some("running"));
        assert_eq!(report.results[0].trials_completed, Some(1));
        put_trial(&mut report, 0, with(2), true, false);
        assert_eq!(report.results.len(), 1);
        assert_eq!(report.results[0].trials_completed, Some(2));
        // an error in the third trial keeps the two
        let err = SuiteError::Invalid("QP 0x11 stalled".into());
        mark_stopped(&mut report, 0, 2, &err);
        let stopped = &report.results[0];
        assert_eq!(stopped.status.as_deref(), Some("partial"));
        assert_eq!(stopped.trials.len(), 2);
        assert_eq!(stopped.trials_completed, Some(2));
        assert_eq!(stopped.failed_trial, Some(2));
        assert_eq!(stopped.error.as_deref(), Some("QP 0x11 stalled"));
        // an error before a configuration's first trial adds nothing
        mark_stopped(&mut report, 1, 0, &err);
        assert_eq!(report.results.len(), 1);
        // a configuration whose last trial ran carries none of the fields
        put_trial(&mut report, 1, with(trial_count), false, false);
        let done = &report.results[1];
        assert!(done.status.is_none() && done.trials_completed.is_none());
        assert!(done.failed_trial.is_none() && done.error.is_none());
    }
}
