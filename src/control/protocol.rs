//! The messages of the control protocol, version [`PROTOCOL_VERSION`].
//!
//! A session, initiator (I) to target (T):
//! ```text
//! I: Hello            T: Welcome | Reject       version, token, op, buffer size
//! I: ClockProbe ×N    T: ClockReply ×N          (only across hosts)
//! per (size, QPs):
//!   I: Connect        T: Connected              QP endpoints both ways (plus
//!                                               any background QPs, which the
//!                                               target connects and never polls)
//!   per trial:
//!     I: TrialStart   T: TrialReady             target zeroes, posts receives
//!     ... RDMA traffic ...
//!     I: TrialEnd     T: TrialReport            counts, target times, verify
//!   I: Release        T: Released               QPs destroyed
//! I: Bye
//! ```
//! Either side may send `Error { message }` instead of a reply.

use serde::{Deserialize, Serialize};

use crate::verbs::{DeviceFacts, QpEndpoint, QpPathOptions, RemoteAccess};

/// Bumped on any incompatible change; peers must match exactly.
/// 2: `Connect`/`Connected` carry background QPs (5.2 loaded, 10.4).
pub const PROTOCOL_VERSION: u32 = 3;

/// The transfer operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Op {
    /// RDMA WRITE (one-sided PUT).
    Write,
    /// RDMA WRITE with immediate (PUT with signal).
    WriteImm,
    /// SEND/RECV (two-sided).
    Send,
    /// RDMA READ (GET).
    Read,
}

impl Op {
    /// Whether each message consumes a receive at the target.
    pub fn target_receives(self) -> bool {
        matches!(self, Op::WriteImm | Op::Send)
    }

    /// The name used on the command line and in reports.
    pub fn name(self) -> &'static str {
        match self {
            Op::Write => "write",
            Op::WriteImm => "write-imm",
            Op::Send => "send",
            Op::Read => "read",
        }
    }
}

/// What a trial measures.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Mode {
    /// Streaming with a window of outstanding messages (test 5.1).
    Bandwidth,
    /// One outstanding message; the target time-stamps its receive
    /// completions (initiator and target clocks, test 5.2).
    Latency,
    /// Ping-pong: the target answers each message (RTT/2 clock).
    PingPong,
}

/// Where the peer may write/read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct BufferKey {
    /// Start address.
    pub addr: u64,
    /// Remote key.
    pub rkey: u32,
    /// Length in bytes.
    pub len: u64,
}

/// Opens a session.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Hello {
    /// Must equal [`PROTOCOL_VERSION`].
    pub version: u32,
    /// Shared secret, when the target requires one.
    pub token: Option<String>,
    /// The operation of the whole session.
    pub op: Op,
    /// Bytes the target must register (largest message).
    pub buffer_bytes: u64,
    /// Whether to fill/verify payloads.
    pub verify: bool,
    /// The initiator's kernel boot id (equal boot ids share CLOCK_MONOTONIC).
    pub boot_id: String,
    /// The initiator's device.
    pub initiator: DeviceFacts,
    /// Longest trial, seconds: the target's read deadline derives from it.
    pub max_trial_s: f64,
    /// What the target's buffer must let the initiator do (least
    /// privilege: the target registers only these remote rights).
    pub target_access: RemoteAccess,
    /// How the target's worker waits for completions (None: the target
    /// chooses from its own threads and cores).
    #[serde(default)]
    pub poll: Option<crate::engine::PollMode>,
    /// Where the target's buffer must live (`--target-mem`; None: the
    /// target's own `--mem`).
    #[serde(default)]
    pub target_memory: Option<crate::verbs::MemoryKind>,
}

/// Accepts a session.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Welcome {
    /// The target's protocol version.
    pub version: u32,
    /// The target's boot id.
    pub boot_id: String,
    /// The target's device.
    pub target: DeviceFacts,
    /// The target's buffer.
    pub buffer: BufferKey,
    /// Where the target's buffer lives (absent from older targets).
    #[serde(default)]
    pub target_memory: Option<crate::verbs::MemoryKind>,
    /// How it was registered: "host", "dmabuf" or "peermem".
    #[serde(default)]
    pub target_registration: Option<String>,
}

/// Creates the QPs of one configuration.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Connect {
    /// The initiator's QPs, in order.
    pub qps: Vec<QpEndpoint>,
    /// Message size.
    pub msg_bytes: u64,
    /// Bytes per work request (messages above the per-WR limit are split).
    pub wr_bytes: u64,
    /// Receives kept posted per QP.
    pub rx_depth: u32,
    /// Transport knobs.
    pub path: QpPathOptions,
    /// The initiator's background QPs (empty: none). The background stream
    /// is RDMA WRITE into the target's buffer past the largest message, so
    /// the target only connects these QPs: it posts and polls nothing on them.
    pub background_qps: Vec<QpEndpoint>,
}

/// The target's QPs for a [`Connect`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Connected {
    /// The target's QPs, in the same order.
    pub qps: Vec<QpEndpoint>,
    /// The target's background QPs, in the order of `Connect::background_qps`.
    pub background_qps: Vec<QpEndpoint>,
    /// The initiator's buffer is needed for ping-pong; the target sends
    /// nothing else here.
    pub note: Option<String>,
}

/// Starts a trial.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrialStart {
    /// Trial number (0-based; warmup is `u32::MAX`).
    pub trial: u32,
    /// What the trial measures.
    pub mode: Mode,
    /// Ping-pong iterations the target must answer.
    pub pingpong_iters: u64,
    /// The initiator's buffer (ping-pong writes back into it).
    pub initiator_buffer: Option<BufferKey>,
    /// Soak runs: the target samples its process footprint at TrialEnd.
    #[serde(default)]
    pub sample_resources: bool,
}

/// The target's account of a trial.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct TrialReport {
    /// Receive completions (work requests) seen, all QPs.
    pub recv_wrs: u64,
    /// Bytes received through receive completions.
    pub recv_bytes: u64,
    /// `(immediate, target CLOCK_MONOTONIC ns)` of each timed receive (latency mode).
    pub target_times: Vec<(u32, u64)>,
    /// Payload bytes that differ from the pattern (`None` without --verify).
    pub verify_mismatches: Option<u64>,
    /// CPU seconds the target's worker thread used (0 when the target is passive).
    pub cpu_s: f64,
    /// Wall seconds between TrialReady and TrialEnd at the target.
    pub wall_s: f64,
    /// A failure at the target (error completion, timeout).
    pub error: Option<String>,
    /// The target process's footprint at TrialEnd (soak runs only).
    #[serde(default)]
    pub resources: Option<crate::results::ProcessResources>,
}

/// Every message of the protocol.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Message {
    /// I→T: open a session.
    Hello(Box<Hello>),
    /// T→I: session accepted.
    Welcome(Box<Welcome>),
    /// T→I: session refused.
    Reject {
        /// Why.
        reason: String,
    },
    /// I→T: a clock probe.
    ClockProbe {
        /// Initiator's clock at send.
        t_initiator_ns: u64,
    },
    /// T→I: the answer.
    ClockReply {
        /// Echo.
        t_initiator_ns: u64,
        /// Target's clock at receipt.
        t_target_ns: u64,
    },
    /// I→T: set up QPs.
    Connect(Connect),
    /// T→I: QPs ready.
    Connected(Connected),
    /// I→T: a trial begins.
    TrialStart(TrialStart),
    /// T→I: receives posted, ready.
    TrialReady,
    /// I→T: the trial's traffic is done.
    TrialEnd {
        /// Receive completions the target must see, per QP (SEND: one per
        /// WR; WRITE_WITH_IMM: one per message; WRITE/READ: none).
        receives_per_qp: Vec<u64>,
    },
    /// T→I: the trial's account.
    TrialReport(TrialReport),
    /// I→T: tear the QPs down.
    Release,
    /// T→I: done.
    Released,
    /// I→T: end of session.
    Bye,
    /// Either way: a failure, in words.
    Error {
        /// What went wrong, and the fix.
        message: String,
    },
}

impl Message {
    /// The message's name, for "expected X, got Y" errors.
    pub fn name(&self) -> &'static str {
        match self {
            Message::Hello(_) => "Hello",
            Message::Welcome(_) => "Welcome",
            Message::Reject { .. } => "Reject",
            Message::ClockProbe { .. } => "ClockProbe",
            Message::ClockReply { .. } => "ClockReply",
            Message::Connect(_) => "Connect",
            Message::Connected(_) => "Connected",
            Message::TrialStart(_) => "TrialStart",
            Message::TrialReady => "TrialReady",
            Message::TrialEnd { .. } => "TrialEnd",
            Message::TrialReport(_) => "TrialReport",
            Message::Release => "Release",
            Message::Released => "Released",
            Message::Bye => "Bye",
            Message::Error { .. } => "Error",
        }
    }
}
