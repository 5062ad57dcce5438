//! The target side of p2p tests (`infab serve`): accepts initiators on the
//! address it is given, one session at a time, and follows their lead
//! through the control protocol (see `control::protocol`).

use std::net::TcpListener;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::control::{
    monotonic_ns, Abort, Channel, Connect, Connected, Hello, Message, Mode, Op, TrialReport,
    TrialStart, Welcome, PROTOCOL_VERSION,
};
use crate::engine::{
    count_mismatches, pattern_seed, pong, zero, Endpoint, EngineError, Lane, PollChoice, PongPlan,
    QpSet, ReceiveLoop, ReceivePlan,
};
use crate::verbs::{MemoryKind, QpCaps, RdmaDevice};

use super::{boot_id, SuiteError};

/// How the target behaves.
#[derive(Debug, Clone)]
pub struct ServeOptions {
    /// Shared secret initiators must present.
    pub token: Option<String>,
    /// Serve one session, then return its result.
    pub once: bool,
    /// Where buffers live unless the initiator asks otherwise (`--mem`).
    pub memory: MemoryKind,
    /// How long to wait for an initiator's next message outside trials.
    pub idle_timeout: Duration,
    /// Error out after this long without a completion.
    pub stall_timeout: Duration,
    /// Core for the target's worker thread.
    pub core: Option<usize>,
}

/// Accepts sessions on `listener` forever (or once).
pub fn serve(
    listener: TcpListener,
    device: Arc<RdmaDevice>,
    options: &ServeOptions,
) -> Result<(), SuiteError> {
    loop {
        let (stream, addr) = listener
            .accept()
            .map_err(|err| SuiteError::Invalid(format!("accepting a connection failed: {err}")))?;
        log::info!("session from {addr}");
        let mut channel = Channel::new(stream);
        // a vanished initiator host then fails the session's next read in
        // seconds, and the next initiator is served
        if let Err(err) = channel.keep_alive() {
            log::warn!("{err}; a vanished initiator is noticed only at --idle-timeout");
        }
        let result = session(&mut channel, &device, options);
        match &result {
            Ok(()) => log::info!("session from {addr} ended"),
            Err(err) => {
                log::error!("session from {addr} failed: {err}");
                let _ = channel.send(&Message::Error {
                    message: err.to_string(),
                });
            }
        }
        if options.once {
            return result;
        }
    }
}

/// Where the target's lane is during a trial.
enum Running {
    Idle,
    Receiving(ReceiveLoop),
    Ponging(std::thread::JoinHandle<(Lane, Result<f64, EngineError>)>),
}

struct Session<'a> {
    device: &'a Arc<RdmaDevice>,
    options: &'a ServeOptions,
    hello: Hello,
    endpoint: Endpoint,
    qps: Option<QpSet>,
    /// Background QPs of the configuration: connected, never polled.
    background: Option<QpSet>,
    connect: Option<Connect>,
    trial: Option<(TrialStart, Instant)>,
    running: Running,
    /// Raised when the initiator's connection closes (or the session ends
    /// otherwise): the target's loops stop at once.
    abort: Abort,
}

fn session(
    channel: &mut Channel,
    device: &Arc<RdmaDevice>,
    options: &ServeOptions,
) -> Result<(), SuiteError> {
    let hello = match channel.recv::<Message>(options.idle_timeout, "Hello")? {
        Message::Hello(hello) => *hello,
        other => {
            return Err(SuiteError::Invalid(format!(
                "expected Hello, got {}",
                other.name()
            )))
        }
    };
    if hello.version != PROTOCOL_VERSION {
        let reason = format!(
            "protocol version {} but this target speaks {PROTOCOL_VERSION}; run the same infab version on both hosts",
            hello.version
        );
        channel.send(&Message::Reject {
            reason: reason.clone(),
        })?;
        return Err(SuiteError::Rejected(reason));
    }
    if options.token.is_some() && hello.token != options.token {
        let reason =
            "wrong or missing token; pass the target's --token (or INFAB_TOKEN)".to_string();
        channel.send(&Message::Reject {
            reason: reason.clone(),
        })?;
        return Err(SuiteError::Rejected(reason));
    }
    let endpoint = match Endpoint::new(
        Arc::clone(device),
        hello.buffer_bytes,
        hello.target_memory.unwrap_or(options.memory),
        hello.target_access,
    ) {
        Ok(endpoint) => endpoint,
        Err(err) => {
            channel.send(&Message::Reject {
                reason: format!("target: {err}"),
            })?;
            return Err(err.into());
        }
    };
    channel.send(&Message::Welcome(Box::new(Welcome {
        version: PROTOCOL_VERSION,
        boot_id: boot_id(),
        target: device.facts().clone(),
        buffer: endpoint.key(),
        target_memory: Some(endpoint.buffer.memory()),
        target_registration: Some(endpoint.buffer.registration().name().into()),
    })))?;
    // the initiator gone mid-trial: the pong or receive loop stops at once
    let abort = Abort::new();
    let _watch = channel.watch(&abort, "during the session")?;
    let mut state = Session {
        abort,
        device,
        options,
        hello,
        endpoint,
        qps: None,
        background: None,
        connect: None,
        trial: None,
        running: Running::Idle,
    };
    let trial_wait = Duration::from_secs_f64(state.hello.max_trial_s)
        + options.stall_timeout
        + options.idle_timeout;
    loop {
        let wait = if state.trial.is_some() {
            trial_wait
        } else {
            options.idle_timeout
        };
        let message = match channel.recv::<Message>(wait, "the initiator's next message") {
            Ok(message) => message,
            Err(err) => {
                state.abort();
                return Err(err.into());
            }
        };
        let reply = match message {
            Message::ClockProbe { t_initiator_ns } => Message::ClockReply {
                t_initiator_ns,
                t_target_ns: monotonic_ns(),
            },
            Message::Connect(connect) => Message::Connected(state.connect(connect)?),
            Message::TrialStart(start) => {
                state.start_trial(start)?;
                Message::TrialReady
            }
            Message::TrialEnd { receives_per_qp } => {
                Message::TrialReport(state.end_trial(&receives_per_qp)?)
            }
            Message::Release => {
                state.stop_running();
                state.qps = None;
                state.background = None;
                state.connect = None;
                Message::Released
            }
            Message::Bye => return Ok(()),
            Message::Error { message } => {
                return Err(SuiteError::Target(format!("initiator reported: {message}")))
            }
            other => {
                return Err(SuiteError::Invalid(format!(
                    "unexpected {} from the initiator",
                    other.name()
                )))
            }
        };
        channel.send(&reply)?;
    }
}

impl Session<'_> {
    fn connect(&mut self, connect: Connect) -> Result<Connected, SuiteError> {
        self.qps = None;
        self.background = None;
        let op = self.hello.op;
        let caps = QpCaps {
            max_send_wr: 8 + connect.msg_bytes.div_ceil(connect.wr_bytes.max(1)) as u32,
            max_recv_wr: if op.target_receives() {
                connect.rx_depth
            } else {
                1
            },
            max_inline_bytes: 0,
        };
        let mut set = QpSet::create(&self.endpoint, connect.qps.len(), 1, caps)?;
        set.set_abort(&self.abort);
        // the worker (a WRITE background stream needs no thread here)
        let threads = 1;
        set.set_poll(PollChoice::resolve(self.hello.poll, threads).mode);
        set.connect(self.device, &connect.qps, &connect.path)?;
        if op.target_receives() {
            set.lanes[0].top_up_receives(
                &self.endpoint.buffer,
                connect.rx_depth,
                connect.msg_bytes,
                connect.wr_bytes,
            )?;
        }
        let endpoints = set.endpoints(self.device);
        let background_qps = if connect.background_qps.is_empty() {
            Vec::new()
        } else {
            // passive WRITE targets: one send and one receive slot each
            let caps = QpCaps {
                max_send_wr: 1,
                max_recv_wr: 1,
                max_inline_bytes: 0,
            };
            let mut background =
                QpSet::create(&self.endpoint, connect.background_qps.len(), 1, caps)?;
            background.connect(self.device, &connect.background_qps, &connect.path)?;
            let endpoints = background.endpoints(self.device);
            self.background = Some(background);
            endpoints
        };
        self.qps = Some(set);
        self.connect = Some(connect);
        Ok(Connected {
            qps: endpoints,
            background_qps,
            note: None,
        })
    }

    fn take_lane(&mut self) -> Result<Lane, SuiteError> {
        let set = self
            .qps
            .as_mut()
            .ok_or_else(|| SuiteError::Invalid("TrialStart before Connect".into()))?;
        set.lanes.pop().ok_or_else(|| {
            SuiteError::Invalid("the target's lane is busy (two trials at once?)".into())
        })
    }

    fn put_lane(&mut self, lane: Lane) {
        if let Some(set) = self.qps.as_mut() {
            set.lanes.push(lane);
        }
    }

    fn start_trial(&mut self, start: TrialStart) -> Result<(), SuiteError> {
        let connect = self
            .connect
            .clone()
            .ok_or_else(|| SuiteError::Invalid("TrialStart before Connect".into()))?;
        let op = self.hello.op;
        let buffer = Arc::clone(&self.endpoint.buffer);
        if self.hello.verify && start.mode != Mode::PingPong && op != Op::Read {
            zero(&buffer, connect.msg_bytes as usize).map_err(EngineError::from)?;
        }
        let lane = self.take_lane()?;
        self.running = match start.mode {
            Mode::PingPong => {
                let remote = start.initiator_buffer.ok_or_else(|| {
                    SuiteError::Invalid("ping-pong without the initiator's buffer".into())
                })?;
                if op == Op::Write {
                    buffer
                        .store_volatile((connect.msg_bytes - 1) as usize, 0)
                        .map_err(EngineError::from)?;
                }
                let plan = PongPlan {
                    op,
                    msg_bytes: connect.msg_bytes,
                    wr_bytes: connect.wr_bytes,
                    iters: start.pingpong_iters,
                    remote,
                    stall_timeout: self.options.stall_timeout,
                };
                let core = self.options.core;
                Running::Ponging(std::thread::spawn(move || {
                    let mut lane = lane;
                    if let Some(id) = core {
                        core_affinity::set_for_current(core_affinity::CoreId { id });
                    }
                    let result = pong(&mut lane, &buffer, &plan);
                    (lane, result)
                }))
            }
            _ if op.target_receives() => Running::Receiving(ReceiveLoop::start(
                lane,
                buffer,
                ReceivePlan {
                    msg_bytes: connect.msg_bytes,
                    wr_bytes: connect.wr_bytes,
                    record_times: start.mode == Mode::Latency,
                    stall_timeout: self.options.stall_timeout,
                    core: self.options.core,
                },
            )),
            _ => {
                self.put_lane(lane);
                Running::Idle
            }
        };
        self.trial = Some((start, Instant::now()));
        Ok(())
    }

    fn end_trial(&mut self, receives_per_qp: &[u64]) -> Result<TrialReport, SuiteError> {
        let (start, started) = self
            .trial
            .take()
            .ok_or_else(|| SuiteError::Invalid("TrialEnd without TrialStart".into()))?;
        let mut report = TrialReport::default();
        match std::mem::replace(&mut self.running, Running::Idle) {
            Running::Idle => {}
            Running::Receiving(receive) => {
                let (lane, tally) = receive.finish(receives_per_qp.iter().sum())?;
                self.put_lane(lane);
                report.recv_wrs = tally.wrs;
                report.recv_bytes = tally.bytes;
                report.target_times = tally.times;
                report.cpu_s = tally.cpu_s;
                report.error = tally.error;
            }
            Running::Ponging(handle) => {
                let (lane, result) = handle
                    .join()
                    .map_err(|_| SuiteError::Invalid("the ping-pong thread panicked".into()))?;
                self.put_lane(lane);
                match result {
                    Ok(cpu_s) => report.cpu_s = cpu_s,
                    Err(err) => report.error = Some(err.to_string()),
                }
            }
        }
        report.wall_s = started.elapsed().as_secs_f64();
        if start.sample_resources {
            report.resources = Some(crate::sysinfo::sample_process(true));
        }
        let msg_bytes = self.connect.as_ref().map(|c| c.msg_bytes).unwrap_or(0);
        if self.hello.verify && start.mode != Mode::PingPong && self.hello.op != Op::Read {
            report.verify_mismatches = Some(
                count_mismatches(
                    &self.endpoint.buffer,
                    msg_bytes as usize,
                    pattern_seed(msg_bytes),
                )
                .map_err(EngineError::from)?,
            );
        }
        Ok(report)
    }

    /// Stops whatever runs (the initiator is gone), keeping the lane; the
    /// raised abort stays raised, so the session's sets stop at once.
    fn abort(&mut self) {
        self.abort.raise("the initiator's session ended");
        self.stop_running();
    }

    /// Ends a running trial's worker, if any, and keeps its lane (on
    /// Release the session goes on; a responder still answering ends at its
    /// stall timeout).
    fn stop_running(&mut self) {
        match std::mem::replace(&mut self.running, Running::Idle) {
            Running::Idle => {}
            Running::Receiving(receive) => {
                if let Some(lane) = receive.abort() {
                    self.put_lane(lane);
                }
            }
            // the responder sees the raised abort in its next idle poll
            Running::Ponging(handle) => {
                if let Ok((lane, _)) = handle.join() {
                    self.put_lane(lane);
                }
            }
        }
        self.trial = None;
    }
}
