//! The node agent: what every node (node 0 included) runs. It joins the
//! rendezvous, creates and connects the QPs of the flows its ranks take
//! part in, and runs its sender ranks' trials at the agreed start time,
//! one pinned thread per flow. Receivers of one-sided PUTs are passive.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::kv_node::{kv_fill_sources, kv_side_set, run_kv};
use super::serving_node::{run_serving, serving_point};
use crate::control::{monotonic_ns, Abort, BufferKey, Channel, ControlError, Op};
use crate::engine::{
    run_alltoall, run_bandwidth, run_bursts, run_paced, AllToAllPlan, BandwidthPlan, BurstPlan,
    DispatchOp, Endpoint, InjectedLeak, Lane, Pace, PollChoice, QpPayload, QpSet, RankDispatch,
    StopRule, DISPATCH_RECV_DEPTH,
};
use crate::results::SystemConfig;
use crate::stats::SeriesClock;
use crate::sysinfo::{collect_system, CounterSampler, CounterSnapshot, DeviceUse, HostRoot};
use crate::topology::Role;
use crate::verbs::{QpCaps, QpEndpoint, RdmaDevice, RegisteredBuffer, RemoteAccess};
use crate::workload::paced_burst_bytes;

use super::protocol::{
    ClusterMessage, Flow, FlowEnd, FlowTrial, Join, NodeTrial, PointSpec, RankDispatchTrial,
    RankInfo, RoleRanks, SeriesRequest, Side, TransferRecord, TrialWork, CLUSTER_PROTOCOL_VERSION,
};
use super::ClusterError;

/// In-flight bytes the automatic window aims for per QP.
const WINDOW_BYTES: u64 = 32 << 20;

/// A node's ranks of one role.
#[derive(Debug, Clone)]
pub struct NodeRole {
    /// The role.
    pub role: Role,
    /// Its device.
    pub device: Arc<RdmaDevice>,
    /// Ranks (threads) of this role.
    pub ranks: u32,
}

/// Everything a node agent needs.
#[derive(Debug, Clone)]
pub struct NodeOptions {
    /// This node's rank.
    pub node_rank: u32,
    /// Node count.
    pub nnodes: u32,
    /// The node's name (topology or host name).
    pub name: String,
    /// The test ("5.3", "8.1").
    pub test_id: String,
    /// The rendezvous.
    pub master: SocketAddr,
    /// Shared token.
    pub token: Option<String>,
    /// The node's roles.
    pub roles: Vec<NodeRole>,
    /// How long to wait for node 0 and for the other nodes to join.
    pub join_timeout: Duration,
    /// How long to wait for node 0's next command.
    pub idle_timeout: Duration,
    /// Cores for flow threads (round robin); empty = no pinning.
    pub cores: Vec<usize>,
    /// Where the sending side's buffers live (`--mem`).
    pub memory: crate::verbs::MemoryKind,
    /// Where the receiving side's buffers live (`--target-mem`).
    pub target_memory: crate::verbs::MemoryKind,
    /// GRH traffic class (for the configuration report).
    pub traffic_class: u8,
}

/// The node's devices, each once.
fn node_devices(options: &NodeOptions) -> Vec<Arc<RdmaDevice>> {
    let mut out: Vec<Arc<RdmaDevice>> = Vec::new();
    for role in &options.roles {
        if !out.iter().any(|d| d.name() == role.device.name()) {
            out.push(Arc::clone(&role.device));
        }
    }
    out
}

/// This node's system configuration report.
pub fn node_system(options: &NodeOptions) -> SystemConfig {
    let uses: Vec<DeviceUse> = node_devices(options)
        .iter()
        .map(|d| DeviceUse::from_facts(d.facts(), options.traffic_class))
        .collect();
    collect_system(&HostRoot::live(), &uses)
}

fn snapshots(devices: &[Arc<RdmaDevice>]) -> Vec<CounterSnapshot> {
    devices
        .iter()
        .map(|d| CounterSnapshot::of_device(d.facts()))
        .collect()
}

/// Connects to the rendezvous (retrying until `join_timeout`), joins, and
/// serves node 0's commands until it says Finish (Ok) or Abort (Err).
pub fn run_node(options: &NodeOptions) -> Result<(), ClusterError> {
    let mut channel = connect(options)?;
    // a vanished node 0 host fails the link in seconds
    if let Err(err) = channel.keep_alive() {
        log::warn!("{err}; a vanished node 0 is noticed only at --idle-timeout");
    }
    let hostname = host_name();
    channel.send(&ClusterMessage::Join(Box::new(Join {
        version: CLUSTER_PROTOCOL_VERSION,
        token: options.token.clone(),
        node_rank: options.node_rank,
        nnodes: options.nnodes,
        test_id: options.test_id.clone(),
        name: options.name.clone(),
        hostname,
        boot_id: crate::suite::boot_id(),
        roles: options
            .roles
            .iter()
            .map(|r| RoleRanks {
                role: r.role,
                ranks: r.ranks,
                device: r.device.facts().clone(),
            })
            .collect(),
        system: node_system(options),
    })))?;
    let wait = options.join_timeout + Duration::from_secs(15);
    let ranks = match channel.recv::<ClusterMessage>(wait, "the rank table (Welcome)")? {
        ClusterMessage::Welcome { ranks } => ranks,
        ClusterMessage::Reject { reason } => return Err(ClusterError::Rejected(reason)),
        ClusterMessage::Abort { reason } => return Err(ClusterError::Aborted(reason)),
        other => {
            return Err(ClusterError::Invalid(format!(
                "node 0 sent {} instead of Welcome",
                other.name()
            )))
        }
    };
    // node 0 gone (or aborting) mid-trial: the engines stop at once
    let abort = Abort::new();
    let _watch = channel.watch(&abort, "during the run")?;
    let mut agent = Agent {
        options,
        ranks,
        point: None,
        work: None,
        devices: node_devices(options),
        before: Vec::new(),
        series: None,
        sampler: None,
        abort,
        leak: InjectedLeak::default(),
    };
    loop {
        let message =
            match channel.recv::<ClusterMessage>(options.idle_timeout, "node 0's next command") {
                Ok(message) => message,
                Err(err) => {
                    let _ = channel.send(&ClusterMessage::Error {
                        message: err.to_string(),
                    });
                    return Err(err.into());
                }
            };
        let reply = match agent.handle(message) {
            Ok(Some(reply)) => reply,
            Ok(None) => return Ok(()),
            Err(AgentStop::Aborted(reason)) => return Err(ClusterError::Aborted(reason)),
            Err(AgentStop::Failed(err)) => {
                let _ = channel.send(&ClusterMessage::Error {
                    message: err.to_string(),
                });
                return Err(err);
            }
        };
        channel.send(&reply)?;
    }
}

/// The host name, or "unknown" (a bare VM reports "(none)").
pub fn host_name() -> String {
    nix::unistd::gethostname()
        .map(|h| h.to_string_lossy().into_owned())
        .ok()
        .filter(|h| !h.is_empty() && h != "(none)")
        .unwrap_or_else(|| "unknown".into())
}

fn connect(options: &NodeOptions) -> Result<Channel, ClusterError> {
    let deadline = Instant::now() + options.join_timeout;
    loop {
        match Channel::connect(options.master, Duration::from_secs(2)) {
            Ok(channel) => return Ok(channel),
            Err(ControlError::Connect { cause, .. }) if Instant::now() < deadline => {
                log::debug!("rendezvous {} not there yet: {cause}", options.master);
                std::thread::sleep(Duration::from_millis(200));
            }
            Err(err) => {
                return Err(ClusterError::MasterUnreachable {
                    master: options.master.to_string(),
                    waited_s: options.join_timeout.as_secs_f64(),
                    cause: err.to_string(),
                })
            }
        }
    }
}

enum AgentStop {
    Aborted(String),
    Failed(ClusterError),
}

impl<E: Into<ClusterError>> From<E> for AgentStop {
    fn from(err: E) -> AgentStop {
        AgentStop::Failed(err.into())
    }
}

/// One device's QPs for one side of the point's flows.
pub(super) struct SideSet {
    pub(super) device: Arc<RdmaDevice>,
    pub(super) endpoint: Endpoint,
    pub(super) set: QpSet,
    /// Per lane (one rank), its flows in QP order.
    pub(super) lane_flows: Vec<Vec<Flow>>,
    pub(super) wr_bytes: u64,
    pub(super) tx_depth: u32,
    /// Receiving side with a slot per flow: flow → (offset, length) of its
    /// slot in the buffer (each QP's part is `part_bytes(msg, qps)` long).
    pub(super) slots: BTreeMap<u32, (u64, u64)>,
    /// Its flows are slotted (AllToAll) ones.
    pub(super) slotted: bool,
}

/// Bytes of one QP's part of a flow's slot.
pub(crate) fn part_bytes(msg_bytes: u64, qps: u32) -> u64 {
    msg_bytes.div_ceil(u64::from(qps.max(1)))
}

/// A device's receiving ranks and the flows into each.
type FlowsByRank = BTreeMap<u32, Vec<Flow>>;

pub(super) struct PointState {
    pub(super) spec: PointSpec,
    pub(super) senders: Vec<SideSet>,
    pub(super) receivers: Vec<SideSet>,
    /// The receiving end's buffer of each flow (known after Connect).
    pub(super) remotes: BTreeMap<u32, BufferKey>,
    /// The sending end's buffer of each flow (a pulling receiver READs it).
    pub(super) sender_buffers: BTreeMap<u32, BufferKey>,
}

struct Agent<'a> {
    options: &'a NodeOptions,
    ranks: Vec<RankInfo>,
    point: Option<PointState>,
    work: Option<TrialWork>,
    devices: Vec<Arc<RdmaDevice>>,
    /// Counter snapshots taken at Prepare.
    before: Vec<CounterSnapshot>,
    /// The series the prepared trial records.
    series: Option<SeriesRequest>,
    /// Samples the counters from Go until CountersAfter (when asked).
    sampler: Option<CounterSampler>,
    /// Raised when the link to node 0 closes; every lane watches it.
    abort: Abort,
    /// The test-only soak leak (`--soak-inject-leak`): kept until the run ends.
    leak: InjectedLeak,
}

impl Agent<'_> {
    /// Where a side's buffers live: senders on `--mem`, receivers on
    /// `--target-mem`.
    fn side_memory(&self, side: Side) -> crate::verbs::MemoryKind {
        match side {
            Side::Sender => self.options.memory,
            Side::Receiver => self.options.target_memory,
        }
    }

    fn handle(&mut self, message: ClusterMessage) -> Result<Option<ClusterMessage>, AgentStop> {
        Ok(Some(match message {
            ClusterMessage::ClockProbe { t_coordinator_ns } => ClusterMessage::ClockReply {
                t_coordinator_ns,
                t_node_ns: monotonic_ns(),
            },
            ClusterMessage::Setup(spec) => {
                self.point = None;
                let mut point = self.setup(*spec)?;
                // one engine thread per sending lane (a rank, or a stream's
                // lane); a KV point's ends wait as its spec says
                let threads: usize = point.senders.iter().map(|s| s.set.lanes.len()).sum();
                let poll = PollChoice::resolve(point.spec.poll, threads.max(1)).mode;
                // KV and serving points wait as their spec says
                let own_poll = point.spec.kv.is_some() || point.spec.serving.is_some();
                for side in point.senders.iter_mut().chain(point.receivers.iter_mut()) {
                    side.set.set_abort(&self.abort);
                    if !own_poll {
                        side.set.set_poll(poll);
                    }
                }
                kv_fill_sources(&point)?;
                let ends = point
                    .senders
                    .iter()
                    .flat_map(|s| side_ends(s, Side::Sender))
                    .chain(
                        point
                            .receivers
                            .iter()
                            .flat_map(|s| side_ends(s, Side::Receiver)),
                    )
                    .collect();
                self.point = Some(point);
                ClusterMessage::SetupDone { ends }
            }
            ClusterMessage::Connect { ends } => {
                let point = self.point_mut()?;
                connect_all(point, &ends)?;
                ClusterMessage::Connected
            }
            ClusterMessage::Prepare { work, series, .. } => {
                self.work = Some(work);
                self.series = series;
                self.before = snapshots(&self.devices);
                ClusterMessage::Ready
            }
            ClusterMessage::Go { start_at_ns, .. } => {
                let work = self.work.take().ok_or_else(|| {
                    ClusterError::Invalid("node 0 sent Go without Prepare".into())
                })?;
                let cores = self.options.cores.clone();
                let series = self.series.take();
                self.sampler = series
                    .and_then(|s| s.counter_interval_ns)
                    .map(|interval_ns| {
                        CounterSampler::start(
                            self.options.node_rank,
                            self.devices.iter().map(|d| d.facts().clone()).collect(),
                            start_at_ns,
                            Duration::from_nanos(interval_ns),
                        )
                    });
                let clock = series.and_then(|s| {
                    s.bin_ns
                        .map(|bin_ns| SeriesClock::covering(start_at_ns, bin_ns, s.span_ns))
                });
                let node = self.options.node_rank;
                let point = self.point_mut()?;
                let mut trial = NodeTrial {
                    node,
                    flows: Vec::new(),
                    dispatch: Vec::new(),
                    kv: Vec::new(),
                    serving: Vec::new(),
                };
                match work {
                    TrialWork::Kv { .. } => {
                        trial.kv = run_kv(point, &work, start_at_ns, &cores)?;
                    }
                    TrialWork::Serving { .. } => {
                        trial.serving = run_serving(point, &work, start_at_ns, &cores)?;
                    }
                    _ => {
                        (trial.flows, trial.dispatch) =
                            run_work(point, &work, start_at_ns, &cores, clock)?;
                    }
                }
                ClusterMessage::Done(Box::new(trial))
            }
            ClusterMessage::CountersAfter {
                sample_resources,
                inject_leak,
            } => {
                // after every node's Done: the receivers' counters are complete too
                let deltas = self
                    .before
                    .iter()
                    .zip(snapshots(&self.devices))
                    .map(|(before, after)| before.delta(&after))
                    .collect();
                // the deliberate leak a soak's trend test must find
                if let (true, Some(device)) = (inject_leak, self.devices.first()) {
                    self.leak.grow(device)?;
                }
                ClusterMessage::Counters {
                    deltas,
                    resources: sample_resources.then(|| crate::sysinfo::sample_process(true)),
                    series: self
                        .sampler
                        .take()
                        .map(CounterSampler::finish)
                        .unwrap_or_default(),
                }
            }
            ClusterMessage::Teardown => {
                self.point = None;
                ClusterMessage::TornDown
            }
            ClusterMessage::Finish => return Ok(None),
            ClusterMessage::Abort { reason } => return Err(AgentStop::Aborted(reason)),
            other => {
                return Err(AgentStop::Failed(ClusterError::Invalid(format!(
                    "node 0 sent an unexpected {}",
                    other.name()
                ))))
            }
        }))
    }

    fn point_mut(&mut self) -> Result<&mut PointState, ClusterError> {
        self.point
            .as_mut()
            .ok_or_else(|| ClusterError::Invalid("node 0 skipped Setup".into()))
    }

    fn device_of(&self, rank: u32) -> Result<Option<Arc<RdmaDevice>>, ClusterError> {
        let info = self
            .ranks
            .get(rank as usize)
            .ok_or_else(|| ClusterError::Invalid(format!("flow names unknown rank {rank}")))?;
        if info.node != self.options.node_rank {
            return Ok(None);
        }
        let role = self
            .options
            .roles
            .iter()
            .find(|r| r.role == info.role && r.device.name() == info.device)
            .ok_or_else(|| {
                ClusterError::Invalid(format!(
                    "rank {rank} has role {} which this node does not have",
                    info.role
                ))
            })?;
        Ok(Some(Arc::clone(&role.device)))
    }

    fn setup(&self, spec: PointSpec) -> Result<PointState, ClusterError> {
        if spec.serving.is_some() {
            // a buffer and a lane per worker, not per device
            return serving_point(spec, |rank| self.device_of(rank));
        }
        // group this node's flow ends by (device, rank)
        let mut send_groups: BTreeMap<(String, bool), (Arc<RdmaDevice>, FlowsByRank)> =
            BTreeMap::new();
        let mut recv_groups: BTreeMap<(String, bool), (Arc<RdmaDevice>, FlowsByRank)> =
            BTreeMap::new();
        for flow in &spec.flows {
            let slotted = spec.slotted(flow);
            if let Some(device) = self.device_of(flow.sender)? {
                send_groups
                    .entry((device.name().to_string(), slotted))
                    .or_insert_with(|| (Arc::clone(&device), BTreeMap::new()))
                    .1
                    .entry(flow.sender)
                    .or_default()
                    .push(*flow);
            }
            if let Some(device) = self.device_of(flow.receiver)? {
                recv_groups
                    .entry((device.name().to_string(), slotted))
                    .or_insert_with(|| (Arc::clone(&device), BTreeMap::new()))
                    .1
                    .entry(flow.receiver)
                    .or_default()
                    .push(*flow);
            }
        }
        let mut senders = Vec::new();
        for ((_, slotted), (device, by_rank)) in send_groups {
            let lanes = by_rank.into_values().collect();
            senders.push(self.side_set(&spec, device, lanes, Side::Sender, slotted)?);
        }
        let mut receivers = Vec::new();
        for ((_, slotted), (device, by_rank)) in recv_groups {
            let lanes = by_rank.into_values().collect();
            receivers.push(self.side_set(&spec, device, lanes, Side::Receiver, slotted)?);
        }
        Ok(PointState {
            spec,
            senders,
            receivers,
            remotes: BTreeMap::new(),
            sender_buffers: BTreeMap::new(),
        })
    }

    fn side_set(
        &self,
        spec: &PointSpec,
        device: Arc<RdmaDevice>,
        lane_flows: Vec<Vec<Flow>>,
        side: Side,
        slotted: bool,
    ) -> Result<SideSet, ClusterError> {
        if let Some(kv) = &spec.kv {
            let memory = self.side_memory(side);
            return kv_side_set(spec, kv, device, lane_flows, side, memory);
        }
        // slotted (AllToAll) flows carry slot-sized payloads, streams messages
        let size = if slotted {
            spec.slot_size()
        } else {
            spec.msg_bytes
        };
        let limits = *device.limits();
        let max_msg = limits.max_msg_bytes.max(1);
        let wr_bytes = size
            .min(spec.max_wr_bytes.unwrap_or(max_msg))
            .min(max_msg)
            .max(1);
        let chunks = size.div_ceil(wr_bytes).max(1);
        let auto = (WINDOW_BYTES / wr_bytes).clamp(2, 128).max(chunks.min(128));
        let tx_depth = spec
            .tx_depth
            .map(u64::from)
            .unwrap_or(auto)
            .min(limits.max_qp_wr.saturating_sub(2).max(1)) as u32;
        let caps = match side {
            Side::Sender => QpCaps {
                max_send_wr: tx_depth + 2,
                max_recv_wr: 1,
                max_inline_bytes: 0,
            },
            Side::Receiver => QpCaps {
                max_send_wr: 1,
                max_recv_wr: if slotted { DISPATCH_RECV_DEPTH + 1 } else { 1 },
                max_inline_bytes: 0,
            },
        };
        if slotted && side == Side::Sender {
            if let Some(flow) = lane_flows.iter().flatten().find(|f| {
                let chunks = part_bytes(size, f.qps).div_ceil(wr_bytes);
                chunks + 1 > u64::from(tx_depth)
            }) {
                return Err(ClusterError::Invalid(format!(
                    "flow {} needs more WRs per QP than --tx-depth {tx_depth} allows; raise --tx-depth or --max-wr-bytes",
                    flow.id
                )));
            }
        }
        let mut slots = BTreeMap::new();
        let mut buffer_bytes = size.max(1);
        if slotted && side == Side::Receiver {
            let mut next = 0u64;
            for flow in lane_flows.iter().flatten() {
                let len = part_bytes(size, flow.qps) * u64::from(flow.qps);
                slots.insert(flow.id, (next, len));
                next += len;
            }
            buffer_bytes = next.max(1);
        }
        // senders only post; receivers take PUTs (WRITE, WRITE_WITH_IMM)
        let remote = match side {
            Side::Sender => RemoteAccess::NONE,
            Side::Receiver => RemoteAccess::WRITE,
        };
        let endpoint = Endpoint::new(
            Arc::clone(&device),
            buffer_bytes,
            self.side_memory(side),
            remote,
        )?;
        let counts: Vec<usize> = lane_flows
            .iter()
            .map(|flows| flows.iter().map(|f| f.qps as usize).sum())
            .collect();
        let set = QpSet::create_lanes(&endpoint, &counts, caps)?;
        Ok(SideSet {
            device,
            endpoint,
            set,
            lane_flows,
            wr_bytes,
            tx_depth: if side == Side::Sender { tx_depth } else { 0 },
            slots,
            slotted,
        })
    }
}

/// The flow ends of one side set, flow by flow.
fn side_ends(side_set: &SideSet, side: Side) -> Vec<FlowEnd> {
    let all = side_set.set.endpoints(&side_set.device);
    let mut next = 0;
    let mut ends = Vec::new();
    for flows in &side_set.lane_flows {
        for flow in flows {
            let qps = all[next..next + flow.qps as usize].to_vec();
            next += flow.qps as usize;
            let mut buffer = side_set.endpoint.key();
            if let Some(&(offset, len)) = side_set.slots.get(&flow.id) {
                buffer.addr += offset;
                buffer.len = len;
            }
            ends.push(FlowEnd {
                flow: flow.id,
                side,
                qps,
                buffer,
                wr_bytes: if side == Side::Sender {
                    side_set.wr_bytes
                } else {
                    0
                },
                tx_depth: side_set.tx_depth,
            });
        }
    }
    ends
}

fn connect_all(point: &mut PointState, ends: &[FlowEnd]) -> Result<(), ClusterError> {
    let find = |flow: u32, side: Side| -> Result<&FlowEnd, ClusterError> {
        ends.iter()
            .find(|e| e.flow == flow && e.side == side)
            .ok_or_else(|| {
                ClusterError::Invalid(format!("no node offered the {side:?} end of flow {flow}"))
            })
    };
    let path = point.spec.path;
    for end in ends {
        match end.side {
            Side::Receiver => point.remotes.insert(end.flow, end.buffer),
            Side::Sender => point.sender_buffers.insert(end.flow, end.buffer),
        };
    }
    for (sets, other) in [
        (&mut point.senders, Side::Receiver),
        (&mut point.receivers, Side::Sender),
    ] {
        for side_set in sets.iter_mut() {
            let mut remote: Vec<QpEndpoint> = Vec::new();
            for flows in &side_set.lane_flows {
                for flow in flows {
                    let end = find(flow.id, other)?;
                    if end.qps.len() != flow.qps as usize {
                        return Err(ClusterError::Invalid(format!(
                            "flow {} has {} QPs at one end and {} at the other",
                            flow.id,
                            flow.qps,
                            end.qps.len()
                        )));
                    }
                    remote.extend(end.qps.iter().cloned());
                }
            }
            side_set.set.connect(&side_set.device, &remote, &path)?;
        }
    }
    Ok(())
}

/// The point's parts one kind of trial work uses: sending and receiving
/// side sets, the receivers' buffers, the spec.
struct PointParts<'a> {
    senders: Vec<&'a mut SideSet>,
    receivers: Vec<&'a mut SideSet>,
    remotes: &'a BTreeMap<u32, BufferKey>,
    spec: &'a PointSpec,
}

/// Splits the point into its stream part and its slotted (AllToAll) part.
fn split_point(point: &mut PointState) -> (PointParts<'_>, PointParts<'_>) {
    let (slot_send, stream_send): (Vec<_>, Vec<_>) =
        point.senders.iter_mut().partition(|s| s.slotted);
    let (slot_recv, stream_recv): (Vec<_>, Vec<_>) =
        point.receivers.iter_mut().partition(|s| s.slotted);
    (
        PointParts {
            senders: stream_send,
            receivers: stream_recv,
            remotes: &point.remotes,
            spec: &point.spec,
        },
        PointParts {
            senders: slot_send,
            receivers: slot_recv,
            remotes: &point.remotes,
            spec: &point.spec,
        },
    )
}

/// Runs a trial's work on the point: streams, bursts, AllToAll, or a
/// stream and an AllToAll at once (each on its own QPs and threads).
fn run_work(
    point: &mut PointState,
    work: &TrialWork,
    start_at_ns: u64,
    cores: &[usize],
    clock: Option<SeriesClock>,
) -> Result<(Vec<FlowTrial>, Vec<RankDispatchTrial>), ClusterError> {
    let (stream, slotted) = split_point(point);
    let at = |offset_ns: u64| Start {
        at_ns: start_at_ns + offset_ns,
        clock,
    };
    match work {
        TrialWork::AllToAll { .. } => Ok((Vec::new(), run_dispatch(slotted, work, at(0), cores)?)),
        TrialWork::Contended {
            stream: s,
            alltoall,
            stream_offset_ns,
            alltoall_offset_ns,
        } => std::thread::scope(|scope| {
            let a2a =
                scope.spawn(|| run_dispatch(slotted, alltoall, at(*alltoall_offset_ns), cores));
            let flows = run_trial(stream, s, at(*stream_offset_ns), cores);
            let dispatch = a2a
                .join()
                .map_err(|_| ClusterError::Invalid("the AllToAll thread panicked".into()))?;
            Ok((flows?, dispatch?))
        }),
        _ => Ok((run_trial(stream, work, at(0), cores)?, Vec::new())),
    }
}

/// When a part of a trial starts, and the trial's series clock.
#[derive(Debug, Clone, Copy)]
struct Start {
    /// This part's start (the common start plus its offset), this node's
    /// clock; the series clock keeps the common start.
    at_ns: u64,
    /// Bins every completion on the trial's clock (None: no series).
    clock: Option<SeriesClock>,
}

fn run_trial(
    parts: PointParts<'_>,
    work: &TrialWork,
    start: Start,
    cores: &[usize],
) -> Result<Vec<FlowTrial>, ClusterError> {
    let start_at_ns = start.at_ns;
    let stall = Duration::from_secs_f64(parts.spec.stall_timeout_s);
    let msg_bytes = parts.spec.msg_bytes;
    let total_qps: usize = parts.senders.iter().map(|s| s.set.len()).sum();
    let mut out = Vec::new();
    for side_set in parts.senders {
        let flows: Vec<Flow> = side_set.lane_flows.iter().map(|f| f[0]).collect();
        let remotes = flows
            .iter()
            .map(|f| {
                parts.remotes.get(&f.id).copied().ok_or_else(|| {
                    ClusterError::Invalid(format!("no receiver buffer known for flow {}", f.id))
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        match work {
            TrialWork::Stream {
                duration_ns,
                rate_bytes_per_s,
            } => {
                let plan = BandwidthPlan {
                    op: Op::Write,
                    msg_bytes,
                    wr_bytes: side_set.wr_bytes,
                    tx_depth: side_set.tx_depth,
                    cq_mod: 1,
                    stop: StopRule::Duration(Duration::from_nanos(*duration_ns)),
                    remote: remotes[0],
                    lane_remotes: remotes,
                    start_at_ns,
                    stall_timeout: stall,
                    cores: cores.to_vec(),
                    series: start.clock,
                };
                let tallies = match rate_bytes_per_s {
                    None => run_bandwidth(&mut side_set.set, &side_set.endpoint.buffer, &plan)?,
                    Some(rate) => {
                        // this side set's share of the node's rate
                        let share = (u128::from(*rate) * side_set.set.len() as u128
                            / total_qps.max(1) as u128) as u64;
                        let pace = Pace {
                            rate_bytes_per_s: share.max(1),
                            // one message per lane is the bucket floor run_paced keeps
                            burst_bytes: paced_burst_bytes(share, msg_bytes, 1),
                            stop: Arc::new(AtomicBool::new(false)),
                        };
                        run_paced(&mut side_set.set, &side_set.endpoint.buffer, &plan, &pace)?
                    }
                };
                for (flow, tally) in flows.iter().zip(tallies) {
                    out.push(FlowTrial {
                        flow: flow.id,
                        messages: tally.per_qp.iter().map(|q| q.messages).sum(),
                        bytes: tally.per_qp.iter().map(|q| q.bytes).sum(),
                        start_ns: tally.start_ns,
                        end_ns: tally.end_ns,
                        latency: tally.latency.encode(),
                        transfers: Vec::new(),
                        cpu_s: tally.cpu_s,
                        series: tally.series,
                    });
                }
            }
            TrialWork::AllToAll { .. }
            | TrialWork::Contended { .. }
            | TrialWork::Kv { .. }
            | TrialWork::Serving { .. } => {
                return Err(ClusterError::Invalid(
                    "an AllToAll or KV trial reached the stream runner".into(),
                ))
            }
            TrialWork::Bursts { offsets_ns } => {
                let plan = BurstPlan {
                    msg_bytes,
                    wr_bytes: side_set.wr_bytes,
                    tx_depth: side_set.tx_depth,
                    start_at_ns,
                    offsets_ns: flows
                        .iter()
                        .map(|f| {
                            offsets_ns
                                .iter()
                                .find(|(id, _)| *id == f.id)
                                .map(|(_, o)| o.clone())
                                .unwrap_or_default()
                        })
                        .collect(),
                    lane_remotes: remotes,
                    stall_timeout: stall,
                    cores: cores.to_vec(),
                };
                let tallies = run_bursts(&mut side_set.set, &side_set.endpoint.buffer, &plan)?;
                for (flow, tally) in flows.iter().zip(tallies) {
                    let mut latency = crate::stats::LatencyHistogram::new();
                    for t in &tally.transfers {
                        latency.record(t.done_ns.saturating_sub(t.scheduled_ns));
                    }
                    out.push(FlowTrial {
                        flow: flow.id,
                        messages: tally.transfers.len() as u64,
                        bytes: tally.bytes,
                        start_ns: tally.transfers.iter().map(|t| t.post_ns).min().unwrap_or(0),
                        end_ns: tally.transfers.iter().map(|t| t.done_ns).max().unwrap_or(0),
                        latency: latency.encode(),
                        transfers: tally
                            .transfers
                            .iter()
                            .map(|t| TransferRecord {
                                scheduled_ns: t.scheduled_ns,
                                post_ns: t.post_ns,
                                done_ns: t.done_ns,
                            })
                            .collect(),
                        cpu_s: tally.cpu_s,
                        series: None,
                    });
                }
            }
        }
    }
    Ok(out)
}

/// A rank's receiving lane, its buffer and the receive slot of each QP.
struct RecvSide<'a> {
    lane: &'a mut Lane,
    buffer: &'a RegisteredBuffer,
    slots: Vec<(usize, u32)>,
    /// The sending rank of each receiving QP.
    peers: Vec<u32>,
}

/// What an AllToAll trial asks of this node.
struct DispatchShape<'a> {
    iterations: u32,
    send: bool,
    flow_bytes: &'a [(u32, u64)],
    period_ns: u64,
    combine_bytes: &'a [(u32, u64)],
    gap_ns: u64,
}

/// Runs an AllToAll trial: every local rank drives its sending lane and
/// its receiving lane in one thread.
fn run_dispatch(
    parts: PointParts<'_>,
    work: &TrialWork,
    start: Start,
    cores: &[usize],
) -> Result<Vec<RankDispatchTrial>, ClusterError> {
    let start_at_ns = start.at_ns;
    let TrialWork::AllToAll {
        iterations,
        send,
        flow_bytes,
        period_ns,
        combine_bytes,
        gap_ns,
    } = work
    else {
        return Err(ClusterError::Invalid(
            "a stream trial reached the AllToAll runner".into(),
        ));
    };
    let shape = DispatchShape {
        iterations: *iterations,
        send: *send,
        flow_bytes,
        period_ns: *period_ns,
        combine_bytes,
        gap_ns: *gap_ns,
    };
    let msg_bytes = parts.spec.slot_size();
    let bytes_in =
        |list: &[(u32, u64)], id: u32| list.iter().find(|(f, _)| *f == id).map_or(0, |(_, b)| *b);
    let mut receivers: BTreeMap<u32, RecvSide<'_>> = BTreeMap::new();
    for side in parts.receivers {
        let SideSet {
            set,
            endpoint,
            lane_flows,
            slots,
            ..
        } = side;
        for (lane, flows) in set.lanes.iter_mut().zip(lane_flows.iter()) {
            let mut recv_slots = Vec::new();
            let mut recv_peers = Vec::new();
            for flow in flows {
                let (offset, _) = slots.get(&flow.id).copied().unwrap_or((0, 0));
                let part = part_bytes(msg_bytes, flow.qps);
                for k in 0..u64::from(flow.qps) {
                    recv_slots.push(((offset + k * part) as usize, part as u32));
                    recv_peers.push(flow.sender);
                }
            }
            receivers.insert(
                flows[0].receiver,
                RecvSide {
                    lane,
                    buffer: &endpoint.buffer,
                    slots: recv_slots,
                    peers: recv_peers,
                },
            );
        }
    }
    let mut ranks = Vec::new();
    let mut rank_ids = Vec::new();
    let mut wr_bytes = u64::MAX;
    for side in parts.senders {
        let SideSet {
            set,
            endpoint,
            lane_flows,
            wr_bytes: side_wr_bytes,
            ..
        } = side;
        wr_bytes = wr_bytes.min(*side_wr_bytes);
        for (lane, flows) in set.lanes.iter_mut().zip(lane_flows.iter()) {
            let rank = flows[0].sender;
            let RecvSide {
                lane: recv,
                buffer: recv_buffer,
                slots: recv_slots,
                peers: recv_peers,
            } = receivers.remove(&rank).ok_or_else(|| {
                ClusterError::Invalid(format!(
                    "rank {rank} sends but receives nothing in this AllToAll"
                ))
            })?;
            let mut payloads = Vec::new();
            for flow in flows {
                let remote = parts.remotes.get(&flow.id).copied().ok_or_else(|| {
                    ClusterError::Invalid(format!("no receiver slot known for flow {}", flow.id))
                })?;
                let part = part_bytes(msg_bytes, flow.qps);
                if shape.send && part > *side_wr_bytes {
                    return Err(ClusterError::Invalid(format!(
                        "SEND dispatch needs each QP's part ({part} B) in one work request (max {side_wr_bytes} B): use more --qps or --op write-imm"
                    )));
                }
                let mut left = bytes_in(shape.flow_bytes, flow.id);
                let mut combine_left = bytes_in(shape.combine_bytes, flow.id);
                for k in 0..u64::from(flow.qps) {
                    let bytes = left.min(part);
                    left -= bytes;
                    let combine_bytes = combine_left.min(part);
                    combine_left -= combine_bytes;
                    payloads.push(QpPayload {
                        bytes,
                        combine_bytes,
                        remote: BufferKey {
                            addr: remote.addr + k * part,
                            rkey: remote.rkey,
                            len: part,
                        },
                    });
                }
            }
            let core = (!cores.is_empty()).then(|| cores[ranks.len() % cores.len()]);
            ranks.push(RankDispatch {
                send: lane,
                recv,
                send_buffer: &endpoint.buffer,
                recv_buffer,
                payloads,
                recv_slots,
                rank,
                recv_peers,
                core,
            });
            rank_ids.push(rank);
        }
    }
    if let Some(rank) = receivers.keys().next() {
        return Err(ClusterError::Invalid(format!(
            "rank {rank} receives but sends nothing in this AllToAll"
        )));
    }
    let plan = AllToAllPlan {
        op: if shape.send {
            DispatchOp::Send
        } else {
            DispatchOp::WriteImm
        },
        iterations: shape.iterations,
        wr_bytes: wr_bytes.max(1),
        start_at_ns,
        stall_timeout: Duration::from_secs_f64(parts.spec.stall_timeout_s),
        period_ns: shape.period_ns,
        combine: !shape.combine_bytes.is_empty(),
        gap_ns: shape.gap_ns,
        series: start.clock,
    };
    let tallies = run_alltoall(ranks, &plan)?;
    Ok(rank_ids
        .into_iter()
        .zip(tallies)
        .map(|(rank, t)| RankDispatchTrial {
            rank,
            iterations: t
                .iterations
                .iter()
                .map(|i| (i.start_ns, i.posted_ns, i.done_ns))
                .collect(),
            combine: if plan.combine {
                t.iterations
                    .iter()
                    .map(|i| (i.combine_start_ns, i.combine_done_ns))
                    .collect()
            } else {
                Vec::new()
            },
            bytes_sent: t.bytes_sent,
            messages_received: t.messages_received,
            cpu_s: t.cpu_s,
            series: t.series,
        })
        .collect())
}
