//! The rendezvous protocol, version [`CLUSTER_PROTOCOL_VERSION`], between
//! the coordinator (on node 0) and the node agent of every node (node 0's
//! own agent included). Length-prefixed JSON over TCP ([`Channel`]).
//!
//! ```text
//! N: Join               C: Welcome (rank table) | Reject
//! C: ClockProbe ×n      N: ClockReply ×n        (nodes on another kernel)
//! per sweep point:
//!   C: Setup            N: SetupDone            QPs created, endpoints out
//!   C: Connect          N: Connected            only the QPs the pattern needs
//!   per trial:
//!     C: Prepare        N: Ready                barrier: every node is set
//!     C: Go(start_at)   N: Done                 traffic starts together
//!     C: CountersAfter  N: Counters             NIC counter deltas of the trial
//!                                               (and their series, when asked)
//!   C: Teardown         N: TornDown
//! C: Finish
//! ```
//! The coordinator may send `Abort` at any time; a node answers `Error`
//! instead of a reply when it fails.
//!
//! [`Channel`]: crate::control::Channel

use serde::{Deserialize, Serialize};

use crate::control::BufferKey;
use crate::engine::{
    KvDirection, KvNotify, KvRequestTimes, KvSchedule, Landing, PollMode, PoolRequestTimes,
};
use crate::results::{CounterDeltas, CounterSeries, SystemConfig};
use crate::stats::RateSeries;
use crate::topology::Role;
use crate::verbs::{DeviceFacts, QpEndpoint, QpPathOptions};
use crate::workload::kv::{KvLayout, KvModel};
use crate::workload::serving::{Admission, PlannedRequest};

/// Bumped on any incompatible change; nodes must match exactly. 2: trials
/// record rate and counter series (`Prepare.series`), and a contended
/// trial's classes may start apart (8.3); a node of version 1 would run
/// them without either. 3: a KV trial may carry each request's prompt
/// length and schedule (a prompt mix); a node of version 2 would plan
/// every request at the point's one length. 4: serving pools
/// (`PointSpec.serving`, `TrialWork::Serving`, `NodeTrial.serving`).
pub const CLUSTER_PROTOCOL_VERSION: u32 = 4;

/// A node's ranks of one role, on one device.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RoleRanks {
    /// The role.
    pub role: Role,
    /// How many ranks (threads) of it.
    pub ranks: u32,
    /// The device they use.
    pub device: DeviceFacts,
}

/// A node asks to take part.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Join {
    /// Must equal [`CLUSTER_PROTOCOL_VERSION`].
    pub version: u32,
    /// Shared secret, when the coordinator requires one.
    pub token: Option<String>,
    /// The node's rank.
    pub node_rank: u32,
    /// The node count the node was started with.
    pub nnodes: u32,
    /// The test the node was started for ("5.3", "8.1", ...).
    pub test_id: String,
    /// The node's name (topology name or host name).
    pub name: String,
    /// Its host name.
    pub hostname: String,
    /// Its kernel boot id (equal ids share CLOCK_MONOTONIC).
    pub boot_id: String,
    /// Its ranks.
    pub roles: Vec<RoleRanks>,
    /// Its system configuration.
    pub system: SystemConfig,
}

/// One rank of the run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RankInfo {
    /// Global rank number.
    pub rank: u32,
    /// Node rank.
    pub node: u32,
    /// Index among the node's ranks of this role.
    pub local: u32,
    /// Its role.
    pub role: Role,
    /// Its device name.
    pub device: String,
}

/// A one-way stream of the pattern: one sender rank to one receiver rank.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Flow {
    /// Flow number within the sweep point.
    pub id: u32,
    /// Sending rank.
    pub sender: u32,
    /// Receiving rank.
    pub receiver: u32,
    /// QPs the flow uses.
    pub qps: u32,
    /// The flow is AllToAll traffic: it gets its own receive slot of
    /// `PointSpec::slot_bytes` (a point may mix it with one-sided streams).
    #[serde(default)]
    pub slot: bool,
}

/// What every node sets up for one sweep point.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PointSpec {
    /// Point number.
    pub point: u32,
    /// Bytes per message (transfer).
    pub msg_bytes: u64,
    /// The flows.
    pub flows: Vec<Flow>,
    /// Outstanding WRs per QP (None: automatic, ~32 MiB in flight).
    pub tx_depth: Option<u32>,
    /// Cap on bytes per work request (None: the port's max message size).
    pub max_wr_bytes: Option<u64>,
    /// Transport knobs.
    pub path: QpPathOptions,
    /// Seconds without a completion before a trial fails.
    pub stall_timeout_s: f64,
    /// Each flow gets its own slot of `msg_bytes` at the receiver, split
    /// evenly over the flow's QPs (AllToAll); otherwise all flows into a
    /// receiver share one message-sized region (one-sided streams).
    #[serde(default)]
    pub slot_per_flow: bool,
    /// Slot size of slotted flows (0: `msg_bytes`).
    #[serde(default)]
    pub slot_bytes: u64,
    /// A KV-transfer point (test 10.1): both ends plan the same requests
    /// from it and size their pools by it.
    #[serde(default)]
    pub kv: Option<KvPointSpec>,
    /// `--poll` on node 0 (None: each node chooses from its own threads
    /// and cores).
    #[serde(default)]
    pub poll: Option<PollMode>,
    /// A serving-pool point (6.2, 6.4): every rank is one worker; flow
    /// `p · decode + d` joins prefill worker p to decode worker d.
    #[serde(default)]
    pub serving: Option<ServingPointSpec>,
}

/// What every node of a serving-pool point knows: the pools, the KV model
/// and layout (each end plans the same descriptors), the modelled decode.
/// The control plane is always the fabric (ASK, GRANT, REJECT as SENDs).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ServingPointSpec {
    /// Prefill workers (ranks).
    pub prefill: u32,
    /// Decode workers (ranks).
    pub decode: u32,
    /// The model's KV shape.
    pub model: KvModel,
    /// Tensor parallelism of each worker.
    pub tp: u32,
    /// The page layout.
    pub layout: KvLayout,
    /// Tokens per page.
    pub block_tokens: u32,
    /// Pages in each worker's pool.
    pub pool_blocks: u32,
    /// Free-list fragmentation, 0..=1.
    pub fragmentation: f64,
    /// Largest work request, bytes (node 0 picks for all).
    pub max_wr_bytes: u64,
    /// Push (prefill workers WRITE) or pull (decode workers READ).
    pub direction: KvDirection,
    /// What a full decode pool does.
    pub admission: Admission,
    /// QPs per worker pair.
    pub qps: u32,
    /// Outstanding WRs per QP.
    pub tx_depth: u32,
    /// Check every page where it lands.
    pub verify: bool,
    /// Modelled decode initialisation, ns.
    pub decode_init_ns: u64,
    /// Modelled decode step, ns.
    pub decode_step_ns: u64,
    /// How the workers wait.
    pub poll: PollMode,
    /// Buffers on 2 MiB huge pages.
    pub huge_pages: bool,
}

/// What both ends of a KV-transfer point know: the model, the layout and
/// pools (so each side plans the very same descriptors), and how the
/// transfer runs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct KvPointSpec {
    /// The model's KV shape.
    pub model: KvModel,
    /// Tensor parallelism (each rank pair moves its share of the heads).
    pub tp: u32,
    /// The page layout.
    pub layout: KvLayout,
    /// Tokens per page.
    pub block_tokens: u32,
    /// Pages in each side's pool.
    pub pool_blocks: u32,
    /// Free-list fragmentation, 0..=1.
    pub fragmentation: f64,
    /// Largest work request, bytes.
    pub max_wr_bytes: u64,
    /// Seed of the pools' free lists.
    pub seed: u64,
    /// Push (prefill WRITEs) or pull (decode READs).
    pub direction: KvDirection,
    /// How the waiting side learns a request is complete.
    pub notify: KvNotify,
    /// Prompt tokens of every request of the point.
    pub prompt_tokens: u64,
    /// Layer-group release times of every request.
    pub schedule: KvSchedule,
    /// Check every page at its destination.
    pub verify: bool,
    /// Gap between requests, ns.
    #[serde(default)]
    pub gap_ns: u64,
    /// How the waiting end waits for its notification.
    pub poll: PollMode,
}

impl PointSpec {
    /// Whether `flow` gets its own receive slot.
    pub fn slotted(&self, flow: &Flow) -> bool {
        self.slot_per_flow || flow.slot
    }

    /// The per-flow slot size of slotted flows.
    pub fn slot_size(&self) -> u64 {
        if self.slot_bytes > 0 {
            self.slot_bytes
        } else {
            self.msg_bytes
        }
    }
}

/// Which end of a flow.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Side {
    /// The sending end.
    Sender,
    /// The receiving end.
    Receiver,
}

/// One end of a flow, as its node created it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FlowEnd {
    /// The flow.
    pub flow: u32,
    /// Which end.
    pub side: Side,
    /// Its QPs, in order.
    pub qps: Vec<QpEndpoint>,
    /// Its buffer (the receiver's is written into).
    pub buffer: BufferKey,
    /// Bytes per WR the sender will use (0 at the receiver).
    pub wr_bytes: u64,
    /// Outstanding WRs per QP at the sender (0 at the receiver).
    pub tx_depth: u32,
}

/// What senders do in a trial.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum TrialWork {
    /// Stream messages back to back for a duration (concurrent pairs).
    Stream {
        /// Trial length.
        duration_ns: u64,
        /// Paced to this many bytes/s over all the node's stream flows
        /// (None: as fast as the window allows).
        #[serde(default)]
        rate_bytes_per_s: Option<u64>,
    },
    /// AllToAll dispatch iterations (every rank to every rank).
    AllToAll {
        /// Iterations in the trial.
        iterations: u32,
        /// SEND instead of WRITE_WITH_IMM.
        send: bool,
        /// Per flow: `(flow id, payload bytes per iteration)`.
        flow_bytes: Vec<(u32, u64)>,
        /// Iteration t starts no earlier than start + t·period (0: back to back).
        #[serde(default)]
        period_ns: u64,
        /// Each iteration also combines: per flow `(flow id, bytes)` the
        /// rank returns on it (the reverse flow's dispatch bytes). Empty:
        /// dispatch only.
        #[serde(default)]
        combine_bytes: Vec<(u32, u64)>,
        /// Modelled compute after every iteration, ns (decode steps, 10.2).
        #[serde(default)]
        gap_ns: u64,
    },
    /// A stream and an AllToAll at once, on separate QPs (contention, 7.4).
    Contended {
        /// The one-sided stream (a `Stream`).
        stream: Box<TrialWork>,
        /// The dispatch (an `AllToAll`).
        alltoall: Box<TrialWork>,
        /// The stream starts this long after the common start, ns (8.3:
        /// the KV class joins a running EP class).
        #[serde(default)]
        stream_offset_ns: u64,
        /// The dispatch starts this long after the common start, ns (8.3:
        /// EP joins a running KV stream).
        #[serde(default)]
        alltoall_offset_ns: u64,
    },
    /// KV-cache transfers, one request at a time (test 10.1).
    Kv {
        /// Requests in the trial.
        requests: u32,
        /// Seeds the trial's pool draws (both ends plan the same requests).
        trial_seed: u64,
        /// Longest the trial may take, ns (the passive side's deadline).
        budget_ns: u64,
        /// Open loop: each request's intended start, ns after the trial's
        /// start (empty: closed loop, back to back).
        #[serde(default)]
        arrivals_ns: Vec<u64>,
        /// A prompt mix: each request's prompt tokens (empty: every
        /// request has the point's `prompt_tokens`).
        #[serde(default)]
        prompts: Vec<u64>,
        /// With `prompts`: each request's layer-group release times
        /// (empty: the point's `schedule` for all).
        #[serde(default)]
        schedules: Vec<KvSchedule>,
    },
    /// A serving-pool trial (6.2, 6.4): the whole plan, which every node
    /// filters for its own workers.
    Serving {
        /// Every request, arrival order, with its workers.
        plan: Vec<PlannedRequest>,
        /// Seeds the pools' free lists and the planner (same on every node).
        seed: u64,
        /// Longest the trial may take, ns.
        budget_ns: u64,
    },
    /// Transfers at scheduled offsets from the common start (incast).
    Bursts {
        /// Per flow: `(flow id, start offsets in ns, ascending)`. (A list,
        /// not a map: JSON map keys are strings, which an internally tagged
        /// enum cannot turn back into numbers.)
        offsets_ns: Vec<(u32, Vec<u64>)>,
    },
}

/// One transfer's times, in the reporting node's clock.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct TransferRecord {
    /// When it was due.
    pub scheduled_ns: u64,
    /// First WR posted.
    pub post_ns: u64,
    /// Last WR completed.
    pub done_ns: u64,
}

/// A flow's account of a trial, from its sending node, in that node's clock.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FlowTrial {
    /// The flow.
    pub flow: u32,
    /// Messages completed.
    pub messages: u64,
    /// Bytes completed.
    pub bytes: u64,
    /// First post, ns.
    pub start_ns: u64,
    /// Last completion, ns.
    pub end_ns: u64,
    /// Message completion latencies (encoded histogram).
    pub latency: Vec<u8>,
    /// Scheduled transfers (bursts only).
    pub transfers: Vec<TransferRecord>,
    /// CPU seconds of the flow's thread.
    pub cpu_s: f64,
    /// Completed bytes and messages per bin on the trial's clock (when
    /// the trial asked for a rate series).
    #[serde(default)]
    pub series: Option<RateSeries>,
}

/// What a trial records over time besides its totals: a rate series of
/// every sending lane and the NIC counters sampled while it runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct SeriesRequest {
    /// Rate-series bin, ns (None: no rate series).
    pub bin_ns: Option<u64>,
    /// Counter sampling interval, ns (None: only the trial's deltas).
    pub counter_interval_ns: Option<u64>,
    /// How long the trial runs at most, ns (sizes the series' bound).
    pub span_ns: u64,
}

/// One rank's AllToAll trial, in its node's clock.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RankDispatchTrial {
    /// The rank.
    pub rank: u32,
    /// Per iteration: `(start, last send posted, done)` ns of the dispatch.
    pub iterations: Vec<(u64, u64, u64)>,
    /// Per iteration: `(start, done)` ns of the combine (empty without).
    #[serde(default)]
    pub combine: Vec<(u64, u64)>,
    /// Payload bytes sent.
    pub bytes_sent: u64,
    /// Receive completions counted.
    pub messages_received: u64,
    /// CPU seconds of the rank's thread.
    pub cpu_s: f64,
    /// The rank's send completions per bin (when asked).
    #[serde(default)]
    pub series: Option<RateSeries>,
}

/// A node's account of a trial.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NodeTrial {
    /// The node.
    pub node: u32,
    /// Every flow it sent (streams and bursts).
    pub flows: Vec<FlowTrial>,
    /// Every rank's dispatch iterations (AllToAll).
    #[serde(default)]
    pub dispatch: Vec<RankDispatchTrial>,
    /// Every KV flow end it ran (test 10.1).
    #[serde(default)]
    pub kv: Vec<KvSideTrial>,
    /// Every serving worker it ran (6.2, 6.4).
    #[serde(default)]
    pub serving: Vec<ServingWorkerTrial>,
}

/// One serving worker's account of a trial, in its node's clock.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ServingWorkerTrial {
    /// A prefill worker (else a decode worker).
    pub prefill: bool,
    /// Its number among the workers of its role.
    pub worker: u32,
    /// A prefill worker's requests (pushed, or refused); a decode
    /// worker's pulled requests.
    pub requests: Vec<PoolRequestTimes>,
    /// A decode worker's landings.
    pub landed: Vec<Landing>,
    /// A decode worker's (peak pages used, peak requests waiting).
    pub peaks: (u32, u32),
    /// CPU seconds of its thread.
    pub cpu_s: f64,
    /// The error that stopped it (what it completed is above).
    pub error: Option<String>,
}

/// One end's account of a KV trial, in its node's clock.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct KvSideTrial {
    /// The flow.
    pub flow: u32,
    /// This end posted the data (the prefill side pushing, or the decode
    /// side pulling).
    pub active: bool,
    /// The active end's requests (empty at the passive end).
    pub requests: Vec<KvRequestTimes>,
    /// The passive end's `(request, notification complete)` times.
    pub seen: Vec<(u32, u64)>,
    /// CPU seconds of the end's thread.
    pub cpu_s: f64,
    /// The error that stopped this end before the trial's last request
    /// (its completed requests are still above).
    #[serde(default)]
    pub error: Option<String>,
}

/// Every message of the protocol.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ClusterMessage {
    /// N→C: take part.
    Join(Box<Join>),
    /// C→N: accepted; the rank table.
    Welcome {
        /// Every rank of the run.
        ranks: Vec<RankInfo>,
    },
    /// C→N: refused.
    Reject {
        /// Why, and the fix.
        reason: String,
    },
    /// C→N: a clock probe.
    ClockProbe {
        /// Coordinator clock at send.
        t_coordinator_ns: u64,
    },
    /// N→C: the answer.
    ClockReply {
        /// Echo.
        t_coordinator_ns: u64,
        /// Node clock at receipt.
        t_node_ns: u64,
    },
    /// C→N: set up a sweep point.
    Setup(Box<PointSpec>),
    /// N→C: the node's flow ends.
    SetupDone {
        /// Its ends of the flows it takes part in.
        ends: Vec<FlowEnd>,
    },
    /// C→N: every flow end, to connect to.
    Connect {
        /// All ends of all flows.
        ends: Vec<FlowEnd>,
    },
    /// N→C: QPs connected.
    Connected,
    /// C→N: get ready for a trial.
    Prepare {
        /// Trial number (warmup: `u32::MAX`).
        trial: u32,
        /// What senders do.
        work: TrialWork,
        /// Series to record (None: totals only).
        #[serde(default)]
        series: Option<SeriesRequest>,
    },
    /// N→C: ready.
    Ready,
    /// C→N: start at this time of the node's own clock.
    Go {
        /// Trial number.
        trial: u32,
        /// CLOCK_MONOTONIC ns of the node.
        start_at_ns: u64,
    },
    /// N→C: the trial's account.
    Done(Box<NodeTrial>),
    /// C→N: every node's traffic is done; snapshot the counters.
    CountersAfter {
        /// Soak runs: sample the node process's footprint too.
        #[serde(default)]
        sample_resources: bool,
        /// Test only (`--soak-inject-leak`): register and keep 1 MiB more first.
        #[serde(default)]
        inject_leak: bool,
    },
    /// N→C: counter deltas of the node's devices since Prepare.
    Counters {
        /// One per device.
        deltas: Vec<CounterDeltas>,
        /// The node process's footprint (soak runs).
        #[serde(default)]
        resources: Option<crate::results::ProcessResources>,
        /// One counter series per device (when the trial asked).
        #[serde(default)]
        series: Vec<CounterSeries>,
    },
    /// C→N: destroy the point's QPs.
    Teardown,
    /// N→C: done.
    TornDown,
    /// C→N: the run is over; exit 0.
    Finish,
    /// C→N: the run stops; exit non-zero with this reason.
    Abort {
        /// Why.
        reason: String,
    },
    /// N→C: the node failed.
    Error {
        /// What went wrong, and the fix.
        message: String,
    },
}

impl ClusterMessage {
    /// The message's name, for "expected X, got Y" errors.
    pub fn name(&self) -> &'static str {
        match self {
            ClusterMessage::Join(_) => "Join",
            ClusterMessage::Welcome { .. } => "Welcome",
            ClusterMessage::Reject { .. } => "Reject",
            ClusterMessage::ClockProbe { .. } => "ClockProbe",
            ClusterMessage::ClockReply { .. } => "ClockReply",
            ClusterMessage::Setup(_) => "Setup",
            ClusterMessage::SetupDone { .. } => "SetupDone",
            ClusterMessage::Connect { .. } => "Connect",
            ClusterMessage::Connected => "Connected",
            ClusterMessage::Prepare { .. } => "Prepare",
            ClusterMessage::Ready => "Ready",
            ClusterMessage::Go { .. } => "Go",
            ClusterMessage::Done(_) => "Done",
            ClusterMessage::CountersAfter { .. } => "CountersAfter",
            ClusterMessage::Counters { .. } => "Counters",
            ClusterMessage::Teardown => "Teardown",
            ClusterMessage::TornDown => "TornDown",
            ClusterMessage::Finish => "Finish",
            ClusterMessage::Abort { .. } => "Abort",
            ClusterMessage::Error { .. } => "Error",
        }
    }
}
