//! A disaggregated serving pool on real verbs (draft §3.4.2, tests 6.2,
//! 6.4, 9.4): prefill workers and decode workers, each one thread with its
//! own pool buffer, one CQ and `qps` QPs to every worker of the other role.
//!
//! A **prefill worker** replays its share of the trial's schedule in real
//! time: a request arrives at its intended time, waits FCFS for the worker
//! (T_queue, measured) and for prefill pages, holds the worker for its
//! modelled prefill time, then asks its decode worker for pages. Once
//! granted, the request's KV moves as the layout's descriptors spread round
//! robin over the QPs between the two workers, in one of two directions:
//!
//! - **push** (SGLang / Mooncake): the prefill worker WRITEs, the last WR on
//!   every used QP a WRITE_WITH_IMM; the decode worker counts immediates.
//! - **pull** (vLLM's NixlConnector): the decode worker READs the prefill
//!   worker's pages as soon as it granted its own, then tells the prefill
//!   worker with a zero-byte SEND_WITH_IMM naming the request (NIXL's
//!   notification), which frees the prefill pages.
//!
//! While one request's KV moves, the next prefill already runs.
//!
//! A **decode worker** owns its page pool: it admits a request when its
//! pages (prompt + output tokens) are free, else queues it FIFO
//! (`--admission wait`) or refuses it (`reject`); it declares the request
//! landed when every used QP delivered its immediate, checks the pages
//! (`--verify`), and holds them for the modelled decode (decode-init plus
//! one step per output token, every active request advancing one token per
//! step), then frees them and admits whoever waits.
//!
//! The control plane between the roles (page requests, grants, pull
//! orders) is, by default, in-process shared state: the serving engines'
//! side channels (ZMQ, HTTP) are not the fabric under test. With
//! `--control fabric` ([`control`]) it is messages instead: a prefill
//! worker's ASK and its decode worker's GRANT or REJECT, as SENDs on the
//! first QP of their pair, which is what lets the two pools sit on
//! different hosts. Every byte of KV, and every completion notice
//! (immediate or SEND), crosses the fabric either way.

mod control;

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crossbeam::channel::{Receiver, RecvTimeoutError, Sender};

use crate::control::{monotonic_ns, BufferKey};
use crate::verbs::{Completion, CompletionOp, RegisteredBuffer, SendOp, WorkRequest, MAX_CHAIN};
use crate::workload::kv::{KvPlanner, RequestPlan};
use crate::workload::serving::{least_loaded, Admission, PagePool, PlannedRequest};

use super::bandwidth::{pin, wait_until};
use super::kv::verify_and_clear;
use super::{thread_cpu_s, EngineError, Lane, WrId, LONGEST_SLEEP};

pub use control::ControlLayout;
use control::{Ask, ControlMessage};

/// Receives each worker QP keeps posted: a decode QP's take push's
/// immediates (one per request per QP), a prefill QP's pull's notices.
pub const SERVING_RECV_DEPTH: u32 = 64;

/// Why a prefill worker stopped when a peer failed.
pub const STOPPED_BY_PEER: &str = "another worker of the pool failed";

/// What a worker's error says when the trial outlived its budget: often
/// the echo of another worker's failure (on another node, a silent peer),
/// so a trial's error names it only when nothing else failed.
pub const RAN_PAST_BUDGET: &str = "the trial ran past its time budget";

/// How much a worker's error says of a failed trial: 0 a failure of its
/// own, 1 a budget overrun (maybe a silent peer), 2 stopped because a peer
/// failed. A trial reports the lowest.
pub fn error_rank(text: &str) -> u8 {
    if text.contains(STOPPED_BY_PEER) {
        2
    } else if text.contains(RAN_PAST_BUDGET) {
        1
    } else {
        0
    }
}

/// Longest a worker sleeping on its CQ leaves work that another thread
/// hands it over a channel (a grant, a pull order) unseen: the handoff is
/// in-process, not fabric, and would otherwise count as T_transfer.
const HANDOFF_POLL: Duration = Duration::from_micros(200);

/// Largest QP count per worker pair an immediate can name (8 bits).
pub const SERVING_MAX_QPS: usize = 255;

/// Largest request number an immediate can name (24 bits).
pub const SERVING_MAX_REQUESTS: u32 = 1 << 24;

fn imm_of(request: u32, used_qps: usize) -> u32 {
    (request << 8) | used_qps as u32
}

fn imm_parts(imm: u32) -> (u32, usize) {
    (imm >> 8, (imm & 0xff) as usize)
}

/// Pages granted to a request at its decode worker.
#[derive(Debug, Clone)]
struct Grant {
    request: u32,
    pages: Vec<u32>,
    admit_ns: u64,
}

/// A pulled request the decode worker READs: what the prefill worker
/// knew of it, its prefill pages and the decode pages it was granted.
#[derive(Debug, Clone)]
pub struct PullOrder {
    times: PoolRequestTimes,
    src: Vec<u32>,
    dst: Vec<u32>,
    admit_ns: u64,
    waited: bool,
}

/// A request queued for decode pages that its decode worker grants
/// itself: a pulled one (READ at once), or, under fabric control, a pushed
/// one (granted in a message).
#[derive(Debug, Clone)]
struct PullTicket {
    times: PoolRequestTimes,
    src: Vec<u32>,
}

/// A request queued for pages at a decode worker.
#[derive(Debug, Clone, Copy)]
struct Waiting {
    request: u32,
    prefill_worker: u32,
    pages: u32,
}

/// A decode worker's admission state, shared with the prefill workers.
#[derive(Debug)]
pub struct DecodeShared {
    pool: PagePool,
    /// Pages each admitted request holds until its modelled decode ends.
    granted: HashMap<u32, Vec<u32>>,
    waiting: VecDeque<Waiting>,
    /// Plans of granted requests, for verification at landing.
    plans: HashMap<u32, Arc<RequestPlan>>,
    /// What the decode worker needs of each queued request it grants
    /// itself: a pulled one, or any one under fabric control.
    tickets: HashMap<u32, PullTicket>,
    peak_used: u32,
    peak_waiting: u32,
}

impl DecodeShared {
    fn new(pool: PagePool) -> DecodeShared {
        DecodeShared {
            pool,
            granted: HashMap::new(),
            waiting: VecDeque::new(),
            plans: HashMap::new(),
            tickets: HashMap::new(),
            peak_used: 0,
            peak_waiting: 0,
        }
    }

    /// Takes `pages` for `request`, or `None` when they do not fit.
    fn admit(&mut self, request: u32, pages: u32) -> Option<Vec<u32>> {
        let got = self.pool.allocate(pages)?;
        self.granted.insert(request, got.clone());
        self.peak_used = self.peak_used.max(self.pool.used());
        Some(got)
    }

    /// The load the least-loaded router compares: (requests held or
    /// waiting, pages free).
    fn load(&self) -> (u32, u32) {
        (
            (self.granted.len() + self.waiting.len()) as u32,
            self.pool.free(),
        )
    }
}

/// Everything the workers of one trial share: the decode workers'
/// admission state, the prefill workers' grant channels and the decode
/// workers' pull-order channels.
#[derive(Debug)]
pub struct PoolShared {
    decode: Vec<Mutex<DecodeShared>>,
    grants: Vec<Sender<Grant>>,
    orders: Vec<Sender<PullOrder>>,
    admission: Admission,
}

/// A prefill worker's end of its grant channel.
#[derive(Debug)]
pub struct GrantInbox(Receiver<Grant>);

/// A decode worker's end of its pull-order channel.
#[derive(Debug)]
pub struct OrderInbox(Receiver<PullOrder>);

/// The channels of one trial's pool: each prefill worker's grants and
/// each decode worker's pull orders.
#[derive(Debug)]
pub struct PoolInboxes {
    /// One per prefill worker.
    pub grants: Vec<GrantInbox>,
    /// One per decode worker.
    pub orders: Vec<OrderInbox>,
}

impl PoolShared {
    /// Shared state over `pools` (one per decode worker), and the inboxes
    /// of `prefill_workers` prefill workers and of the decode workers.
    pub fn new(
        pools: Vec<PagePool>,
        prefill_workers: usize,
        admission: Admission,
    ) -> (Arc<PoolShared>, PoolInboxes) {
        let (senders, receivers): (Vec<_>, Vec<_>) = (0..prefill_workers)
            .map(|_| crossbeam::channel::unbounded())
            .unzip();
        let (order_senders, order_receivers): (Vec<_>, Vec<_>) = (0..pools.len())
            .map(|_| crossbeam::channel::unbounded())
            .unzip();
        let shared = PoolShared {
            decode: pools
                .into_iter()
                .map(|p| Mutex::new(DecodeShared::new(p)))
                .collect(),
            grants: senders,
            orders: order_senders,
            admission,
        };
        let inboxes = PoolInboxes {
            grants: receivers.into_iter().map(GrantInbox).collect(),
            orders: order_receivers.into_iter().map(OrderInbox).collect(),
        };
        (Arc::new(shared), inboxes)
    }

    fn decode(&self, worker: u32) -> std::sync::MutexGuard<'_, DecodeShared> {
        // a worker that panicked holding the lock ended the trial anyway
        self.decode[worker as usize]
            .lock()
            .unwrap_or_else(|p| p.into_inner())
    }

    /// `(peak pages used, peak requests waiting)` at decode worker `worker`.
    pub fn peaks(&self, worker: u32) -> (u32, u32) {
        let d = self.decode(worker);
        (d.peak_used, d.peak_waiting)
    }
}

/// The settings every worker of a trial shares.
#[derive(Debug, Clone)]
pub struct PoolRunPlan {
    /// QPs from each prefill worker to each decode worker.
    pub qps: usize,
    /// Outstanding WRs per QP.
    pub tx_depth: u32,
    /// CLOCK_MONOTONIC ns of the trial's start (arrivals count from it).
    pub start_at_ns: u64,
    /// Error out after this long without a completion while WRs are in
    /// flight.
    pub stall_timeout: Duration,
    /// Nothing of the trial runs past this instant.
    pub deadline: Instant,
    /// Check every page where it lands.
    pub verify: bool,
    /// Modelled decode initialisation, ns.
    pub decode_init_ns: u64,
    /// Modelled decode step, ns (one token per active request per step).
    pub decode_step_ns: u64,
    /// Tokens per page.
    pub block_tokens: u32,
    /// Pull (the decode worker READs, then notifies) instead of push.
    pub pull: bool,
}

impl PoolRunPlan {
    /// Pages a request holds at its decode worker: its prompt and every
    /// token it generates.
    pub fn decode_pages(&self, r: &PlannedRequest) -> u32 {
        (r.prompt_tokens + r.output_tokens).div_ceil(u64::from(self.block_tokens.max(1))) as u32
    }

    /// Pages a request holds at its prefill worker (its prompt's KV).
    pub fn prefill_pages(&self, r: &PlannedRequest) -> u32 {
        r.prompt_tokens
            .div_ceil(u64::from(self.block_tokens.max(1))) as u32
    }
}

/// One request's account (CLOCK_MONOTONIC ns), kept by the worker that
/// posts its KV: the prefill worker for push, the decode worker for pull
/// (the landing time is in the decode worker's [`DecodeTally`]).
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct PoolRequestTimes {
    /// The request.
    pub request: u32,
    /// Its intended arrival.
    pub intended_ns: u64,
    /// Prefill worker.
    pub prefill_worker: u32,
    /// Decode worker (as routed).
    pub decode_worker: u32,
    /// Prompt tokens.
    pub prompt_tokens: u64,
    /// Output tokens.
    pub output_tokens: u64,
    /// Its prefill started (after the queue).
    pub prefill_start_ns: u64,
    /// Its (modelled) prefill ended and it asked for decode pages.
    pub prefill_end_ns: u64,
    /// The modelled prefill time.
    pub prefill_modelled_ns: u64,
    /// Decode pages granted (0: rejected).
    pub admit_ns: u64,
    /// It queued for decode pages.
    pub admission_waited: bool,
    /// Refused by the decode worker.
    pub rejected: bool,
    /// First WR posted.
    pub first_post_ns: u64,
    /// Last data completion at the posting worker.
    pub data_done_ns: u64,
    /// Bytes of its transfer.
    pub bytes: u64,
    /// Descriptors of its layout.
    pub descriptors: u64,
    /// Work requests posted.
    pub wrs: u64,
}

/// A prefill worker's account of a trial.
#[derive(Debug, Default)]
pub struct PrefillTally {
    /// Its requests, in completion (or rejection) order.
    pub requests: Vec<PoolRequestTimes>,
    /// Thread CPU seconds.
    pub cpu_s: f64,
}

/// One request landed at a decode worker.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Landing {
    /// The request.
    pub request: u32,
    /// Every used QP delivered its immediate.
    pub landed_ns: u64,
    /// Bytes found wrong (verify only).
    pub verify_mismatches: Option<u64>,
}

/// A decode worker's account of a trial.
#[derive(Debug, Default)]
pub struct DecodeTally {
    /// Landed requests, in landing order.
    pub landed: Vec<Landing>,
    /// Pull: the requests it READ, with their admission and posting times
    /// (push keeps these at the prefill worker).
    pub pulled: Vec<PoolRequestTimes>,
    /// Thread CPU seconds.
    pub cpu_s: f64,
}

/// What a prefill worker needs besides its lane.
#[derive(Debug)]
pub struct PrefillWorker<'a> {
    /// The worker's number.
    pub worker: u32,
    /// Its pool buffer (the KV source).
    pub buffer: &'a RegisteredBuffer,
    /// Each decode worker's pool buffer.
    pub remotes: &'a [BufferKey],
    /// Its share of the schedule, arrival order.
    pub requests: &'a [PlannedRequest],
    /// Lays out a request's descriptors on granted pages.
    pub planner: &'a KvPlanner,
    /// Its own page pool.
    pub pool: PagePool,
    /// Where its grants arrive.
    pub inbox: &'a GrantInbox,
    /// Where its zero-length receives point (pull: the notifications).
    pub notify_offset: u64,
    /// Fabric control: its message slots (`None`: shared state).
    pub control: Option<ControlLayout>,
    /// Core to pin to.
    pub core: Option<usize>,
}

/// One request's transfer in progress at a prefill worker.
struct Transfer {
    times: PoolRequestTimes,
    /// Its plan; `src_blocks` are the prefill pages it holds until done.
    plan: Arc<RequestPlan>,
    base_qp: usize,
    used_qps: usize,
    /// Next WR index per used QP (indices k, k + used, ...).
    cursor: Vec<usize>,
    outstanding: u64,
}

impl Transfer {
    fn new(
        base_qp: usize,
        times: PoolRequestTimes,
        plan: Arc<RequestPlan>,
        qps: usize,
    ) -> Transfer {
        let used_qps = plan.wrs.len().min(qps).max(1);
        Transfer {
            base_qp,
            times,
            plan,
            used_qps,
            cursor: (0..used_qps).collect(),
            outstanding: 0,
        }
    }

    fn done(&self) -> bool {
        self.outstanding == 0 && self.cursor.iter().all(|c| *c >= self.plan.wrs.len())
    }
}

/// Runs a prefill worker over its requests. Completed and rejected
/// requests are in `out` as they end, so a trial stopped by an error keeps
/// them.
pub fn run_prefill_worker(
    w: PrefillWorker<'_>,
    lane: &mut Lane,
    shared: &PoolShared,
    plan: &PoolRunPlan,
    stop: &AtomicBool,
    out: &mut PrefillTally,
) -> Result<(), EngineError> {
    let cpu_start = thread_cpu_s();
    let result = prefill_loop(w, lane, shared, plan, stop, out);
    out.cpu_s = thread_cpu_s() - cpu_start;
    result
}

/// A worker's send queues: WRs in flight per QP and, per QP, its signalled
/// chains oldest first, so that a completion retires its whole chain.
struct SendWindow {
    depth: u64,
    half: u64,
    in_flight: Vec<u64>,
    /// `(request, WRs)`; `None` for a notification.
    chains: Vec<VecDeque<(Option<u32>, u64)>>,
    completed: u64,
}

impl SendWindow {
    fn new(qps: usize, tx_depth: u32) -> SendWindow {
        let depth = u64::from(tx_depth.max(1));
        SendWindow {
            depth,
            half: (depth / 2).max(1),
            in_flight: vec![0; qps],
            chains: vec![VecDeque::new(); qps],
            completed: 0,
        }
    }

    fn total(&self) -> u64 {
        self.in_flight.iter().sum()
    }

    /// Posts what the windows take of `t`'s WRs: push WRITEs `local` into
    /// `remote` (the last WR on each used QP a WRITE_WITH_IMM naming the
    /// request: RC keeps a QP's WRs in order, so the immediate means all its
    /// bytes landed); pull READs `remote` into `local`.
    fn post<'b>(
        &mut self,
        lane: &mut Lane,
        t: &mut Transfer,
        (local, remote): (&'b RegisteredBuffer, BufferKey),
        pull: bool,
        pending: &mut Vec<WorkRequest<'b>>,
    ) -> Result<(), EngineError> {
        let wrs = t.plan.wrs.len();
        for k in 0..t.used_qps {
            let q = t.base_qp + k;
            while t.cursor[k] < wrs && self.in_flight[q] < self.depth {
                let room = (self.depth - self.in_flight[q])
                    .min(self.half)
                    .min(MAX_CHAIN as u64) as usize;
                pending.clear();
                while pending.len() < room && t.cursor[k] < wrs {
                    let i = t.cursor[k];
                    let d = &t.plan.wrs[i];
                    let (op, local_offset, remote_offset) = if pull {
                        (SendOp::Read, d.dst_offset, d.src_offset)
                    } else if i + t.used_qps >= wrs {
                        let imm = imm_of(t.times.request, t.used_qps);
                        (SendOp::WriteImm(imm), d.src_offset, d.dst_offset)
                    } else {
                        (SendOp::Write, d.src_offset, d.dst_offset)
                    };
                    pending.push(WorkRequest {
                        wr_id: WrId::new(q, lane.next_wr[q]).0,
                        op,
                        local,
                        local_offset: local_offset as usize,
                        len: d.bytes as u32,
                        remote_addr: remote.addr + remote_offset,
                        rkey: remote.rkey,
                        signaled: false,
                    });
                    lane.next_wr[q] += 1;
                    t.cursor[k] += t.used_qps;
                }
                if let Some(last) = pending.last_mut() {
                    last.signaled = true;
                }
                let before = monotonic_ns();
                lane.qps[q].post_send_chain(pending)?;
                if t.times.first_post_ns == 0 {
                    t.times.first_post_ns = before;
                }
                let n = pending.len() as u64;
                self.in_flight[q] += n;
                t.outstanding += n;
                self.chains[q].push_back((Some(t.times.request), n));
            }
        }
        Ok(())
    }

    /// Posts a zero-byte SEND_WITH_IMM naming `request` on QP `q`, or says
    /// `false` when that QP is full. A notice may take one slot beyond the
    /// window (the send queue holds the window + 2), so READs that fill the
    /// window never hold a notice back.
    fn notify(
        &mut self,
        lane: &mut Lane,
        q: usize,
        request: u32,
        at: (&RegisteredBuffer, u64),
    ) -> Result<bool, EngineError> {
        if !self.has_room_for_one(q) {
            return Ok(false);
        }
        self.post_one(lane, q, SendOp::SendImm(imm_of(request, 1)), at, 0)?;
        Ok(true)
    }

    /// A notice or control message fits on QP `q`: it may take the slot
    /// beyond the window.
    fn has_room_for_one(&self, q: usize) -> bool {
        self.in_flight[q] <= self.depth
    }

    /// Posts one signalled SEND of `len` bytes from `buffer` at `offset`
    /// on QP `q` (a notice or a control message).
    fn post_one(
        &mut self,
        lane: &mut Lane,
        q: usize,
        op: SendOp,
        (buffer, offset): (&RegisteredBuffer, u64),
        len: u32,
    ) -> Result<(), EngineError> {
        let wr = WorkRequest {
            wr_id: WrId::new(q, lane.next_wr[q]).0,
            op,
            local: buffer,
            local_offset: offset as usize,
            len,
            remote_addr: 0,
            rkey: 0,
            signaled: true,
        };
        lane.next_wr[q] += 1;
        lane.qps[q].post_send_chain(&[wr])?;
        self.in_flight[q] += 1;
        self.chains[q].push_back((None, 1));
        Ok(())
    }

    /// With WRs in flight: waits up to `cap` for a completion, or fails
    /// once none has come for `stall` (`quiet_ns` since the last one).
    fn wait(
        &self,
        lane: &mut Lane,
        cap: Duration,
        quiet_ns: u64,
        stall: Duration,
        what: impl FnOnce() -> String,
    ) -> Result<(), EngineError> {
        if quiet_ns > stall.as_nanos() as u64 {
            return Err(EngineError::Stall {
                what: what(),
                waited_s: stall.as_secs_f64(),
                completed: self.completed,
                in_flight: self.total(),
            });
        }
        lane.wait_idle(cap)
    }

    /// A send completion on QP `q` retires its chain.
    fn retire(&mut self, q: usize, transfers: &mut [Transfer]) -> Result<(), EngineError> {
        let Some((request, n)) = self.chains.get_mut(q).and_then(VecDeque::pop_front) else {
            return Err(EngineError::Invalid(format!(
                "a send completion on QP {q} that no posted work request awaits (a bug in \
                 infab's window bookkeeping; please report it)"
            )));
        };
        self.in_flight[q] -= n;
        self.completed += n;
        if let Some(t) = request.and_then(|r| transfers.iter_mut().find(|t| t.times.request == r)) {
            t.outstanding -= n;
        }
        Ok(())
    }
}

/// A worker's end of the fabric control plane: its slots, what it sent
/// each peer so far, and the messages waiting for send-queue room.
struct ControlEnd {
    layout: ControlLayout,
    /// QPs per worker pair (control goes on the first of each).
    qps: usize,
    sent: Vec<u64>,
    outbox: VecDeque<(usize, ControlMessage)>,
}

impl ControlEnd {
    fn new(layout: ControlLayout, qps: usize) -> ControlEnd {
        ControlEnd {
            layout,
            qps: qps.max(1),
            sent: vec![0; layout.peers],
            outbox: VecDeque::new(),
        }
    }

    /// Queues `message` for peer `peer`; [`ControlEnd::flush`] posts it.
    fn send(&mut self, peer: u32, message: ControlMessage) {
        self.outbox.push_back((peer as usize, message));
    }

    /// Posts every queued message whose QP has room; the rest wait.
    fn flush(
        &mut self,
        window: &mut SendWindow,
        lane: &mut Lane,
        buffer: &RegisteredBuffer,
    ) -> Result<(), EngineError> {
        for _ in 0..self.outbox.len() {
            let Some((peer, message)) = self.outbox.pop_front() else {
                break;
            };
            let q = peer * self.qps;
            if !window.has_room_for_one(q) {
                self.outbox.push_back((peer, message));
                continue;
            }
            let offset = self.layout.send_slot(peer, self.sent[peer]);
            let bytes = message.encode();
            if bytes.len() as u64 > self.layout.slot_bytes {
                return Err(EngineError::Invalid(format!(
                    "a control message of {} B exceeds its {}-byte slot (a bug in infab's \
                     control layout; please report it)",
                    bytes.len(),
                    self.layout.slot_bytes
                )));
            }
            buffer.write_from(offset as usize, &bytes)?;
            window.post_one(lane, q, SendOp::Send, (buffer, offset), bytes.len() as u32)?;
            self.sent[peer] += 1;
        }
        Ok(())
    }

    /// The message a receive completion `c` brought, and its sender.
    fn read(
        &self,
        buffer: &RegisteredBuffer,
        c: &Completion,
    ) -> Result<(u32, ControlMessage), EngineError> {
        let id = WrId(c.wr_id);
        let q = id.qp_index();
        let peer = q / self.qps;
        if q % self.qps != 0 || u64::from(c.byte_len) > self.layout.slot_bytes {
            return Err(EngineError::Invalid(format!(
                "a SEND of {} B on QP {q}, which is not a control QP or too long for its slot \
                 (is the peer an infab of another version?)",
                c.byte_len
            )));
        }
        let mut bytes = vec![0u8; c.byte_len as usize];
        buffer.read_into(self.layout.recv_slot(peer, id.seq()) as usize, &mut bytes)?;
        let message = ControlMessage::decode(&bytes)
            .map_err(|e| EngineError::Invalid(format!("from peer worker {peer}: {e}")))?;
        Ok((peer as u32, message))
    }
}

/// Counts a consumed receive on QP `q` (its slot is posted again by the
/// next top-up).
fn consumed_receive(lane: &mut Lane, q: usize) {
    lane.recv_seq[q] += 1;
    lane.recv_posted[q] = lane.recv_posted[q].saturating_sub(1);
}

fn prefill_loop(
    mut w: PrefillWorker<'_>,
    lane: &mut Lane,
    shared: &PoolShared,
    plan: &PoolRunPlan,
    stop: &AtomicBool,
    out: &mut PrefillTally,
) -> Result<(), EngineError> {
    pin(w.core);
    let worker = w.worker;
    let requests = w.requests;
    let mut window = SendWindow::new(lane.qps.len(), plan.tx_depth);
    let mut next = 0usize;
    // the running prefill: (index, end ns, its prefill pages)
    let mut computing: Option<(usize, u64, Vec<u32>)> = None;
    // asked for decode pages, queued there: request -> (times, prefill pages)
    let mut awaiting: HashMap<u32, (PoolRequestTimes, Vec<u32>)> = HashMap::new();
    // pull: handed to the decode worker, pages held until its notice
    let mut pulled: HashMap<u32, Vec<u32>> = HashMap::new();
    let mut grants: VecDeque<Grant> = VecDeque::new();
    let mut transfers: Vec<Transfer> = Vec::new();
    let mut finished = 0usize;
    let mut pending: Vec<WorkRequest<'_>> = Vec::with_capacity(MAX_CHAIN);
    let mut control = w.control.map(|layout| ControlEnd::new(layout, plan.qps));
    if plan.pull || control.is_some() {
        top_up_pool_receives(lane, w.buffer, w.notify_offset, control.as_ref())?;
    }
    wait_until(plan.start_at_ns);
    let t0 = plan.start_at_ns;
    let mut last_progress = monotonic_ns();
    while finished < requests.len() {
        if stop.load(Ordering::Relaxed) {
            return Err(EngineError::Aborted(STOPPED_BY_PEER.into()));
        }
        lane.check_abort()?;
        if Instant::now() > plan.deadline {
            let open = if plan.pull {
                // fabric control keeps asked pulls in `awaiting`
                format!(
                    "{} handed to decode workers and not yet notified (queued for pages or \
                     being read)",
                    pulled.len() + awaiting.len()
                )
            } else {
                format!(
                    "{} transfers in flight, {} waiting for decode pages",
                    transfers.len(),
                    awaiting.len()
                )
            };
            return Err(EngineError::Invalid(format!(
                "prefill worker {worker}: {RAN_PAST_BUDGET} with {finished} of {} requests done \
                 ({open}); lower the offered rate or --requests{}",
                requests.len(),
                if control.is_some() {
                    " (or a decode worker on another node failed: see its error)"
                } else {
                    ""
                }
            )));
        }
        let now = monotonic_ns();
        // 1. the running prefill ended: ask its decode worker for pages
        if let Some((i, end, src)) = computing.take_if(|c| now >= c.1) {
            let r = &requests[i];
            let decode_worker = match r.decode_worker {
                Some(d) => d,
                None if control.is_some() => {
                    return Err(EngineError::Invalid(
                        "--route least-loaded reads every decode worker's load, which fabric \
                         control does not share; use --route round-robin or random"
                            .into(),
                    ))
                }
                None => least_loaded(
                    &(0..shared.decode.len() as u32)
                        .map(|d| shared.decode(d).load())
                        .collect::<Vec<_>>(),
                ),
            };
            let times = PoolRequestTimes {
                request: r.request,
                intended_ns: t0 + r.intended_ns,
                prefill_worker: worker,
                decode_worker,
                prompt_tokens: r.prompt_tokens,
                output_tokens: r.output_tokens,
                prefill_start_ns: end - r.prefill_ns,
                prefill_end_ns: now,
                prefill_modelled_ns: r.prefill_ns,
                ..PoolRequestTimes::default()
            };
            let pages = plan.decode_pages(r);
            if let Some(ctl) = control.as_mut() {
                // fabric: ask; a GRANT, a REJECT or (pull) a notice answers
                ctl.send(
                    decode_worker,
                    ControlMessage::Ask(Ask {
                        request: r.request,
                        prompt_tokens: r.prompt_tokens,
                        output_tokens: r.output_tokens,
                        pages,
                        intended_ns: r.intended_ns,
                        prefill_start_ns: times.prefill_start_ns.saturating_sub(t0),
                        prefill_end_ns: now.saturating_sub(t0),
                        prefill_modelled_ns: r.prefill_ns,
                        src: src.clone(),
                    }),
                );
                awaiting.insert(r.request, (times, src));
                continue;
            }
            let mut d = shared.decode(decode_worker);
            if let Some(dst) = d.admit(r.request, pages) {
                drop(d);
                if plan.pull {
                    pulled.insert(r.request, src.clone());
                    let order = PullOrder {
                        times,
                        src,
                        dst,
                        admit_ns: now,
                        waited: false,
                    };
                    shared.orders[decode_worker as usize]
                        .send(order)
                        .map_err(|_| ended_early(decode_worker))?;
                } else {
                    let t = start_transfer(
                        times,
                        (src, dst),
                        (now, false),
                        w.planner,
                        Some(shared),
                        plan.qps,
                    )?;
                    transfers.push(t);
                }
            } else if shared.admission == Admission::Reject {
                drop(d);
                w.pool.release(&src);
                out.requests.push(PoolRequestTimes {
                    rejected: true,
                    ..times
                });
                finished += 1;
            } else {
                d.waiting.push_back(Waiting {
                    request: r.request,
                    prefill_worker: worker,
                    pages,
                });
                d.peak_waiting = d.peak_waiting.max(d.waiting.len() as u32);
                if plan.pull {
                    // the decode worker READs it once it grants the pages
                    d.tickets.insert(
                        r.request,
                        PullTicket {
                            times,
                            src: src.clone(),
                        },
                    );
                    drop(d);
                    pulled.insert(r.request, src);
                } else {
                    drop(d);
                    awaiting.insert(r.request, (times, src));
                }
            }
        }
        // 2. grants for requests that queued for decode pages
        grants.extend(w.inbox.0.try_iter());
        while let Some(g) = grants.pop_front() {
            let (times, src) = awaiting.remove(&g.request).ok_or_else(|| {
                EngineError::Invalid(format!(
                    "prefill worker {worker}: a grant for request {}, which it never asked for",
                    g.request
                ))
            })?;
            let t = start_transfer(
                times,
                (src, g.pages),
                (g.admit_ns, true),
                w.planner,
                Some(shared),
                plan.qps,
            )?;
            transfers.push(t);
        }
        if let Some(ctl) = control.as_mut() {
            ctl.flush(&mut window, lane, w.buffer)?;
        }
        // 3. the next prefill: arrived, the worker free, prefill pages free
        if computing.is_none() && next < requests.len() {
            let r = &requests[next];
            if now >= t0 + r.intended_ns {
                if let Some(src) = w.pool.allocate(plan.prefill_pages(r)) {
                    computing = Some((next, monotonic_ns() + r.prefill_ns, src));
                    next += 1;
                    continue; // its end may be due at once (a zero prefill)
                }
            }
        }
        // 4. push: post what the windows take, each chain from one request
        for t in transfers.iter_mut() {
            let remote = w.remotes[t.times.decode_worker as usize];
            window.post(lane, t, (w.buffer, remote), false, &mut pending)?;
        }
        // 5. completions retire whole chains; pull notices free pages
        let got = lane.cq.poll(&mut lane.completions)?;
        let now = monotonic_ns();
        if let Some(c) = lane.completions.iter().find(|c| !c.is_ok()) {
            return Err(EngineError::completion(c, window.completed, window.total()));
        }
        if got > 0 {
            lane.idle.reset();
            last_progress = now;
            let mut notices = false;
            for i in 0..got {
                let c = lane.completions[i];
                let q = WrId(c.wr_id).qp_index();
                if matches!(c.op, CompletionOp::Recv | CompletionOp::RecvWithImm) {
                    consumed_receive(lane, q);
                    notices = true;
                    if let (Some(ctl), None) = (&control, c.imm) {
                        // fabric: a GRANT or a REJECT for a request it asked
                        let (peer, message) = ctl.read(w.buffer, &c)?;
                        let request = match &message {
                            ControlMessage::Grant { request, .. }
                            | ControlMessage::Reject { request } => *request,
                            ControlMessage::Ask(a) => {
                                return Err(EngineError::Invalid(format!(
                                    "prefill worker {worker}: an ASK for request {} from \
                                     worker {peer} (only decode workers take asks)",
                                    a.request
                                )))
                            }
                        };
                        let (times, src) = awaiting.remove(&request).ok_or_else(|| {
                            EngineError::Invalid(format!(
                                "prefill worker {worker}: an answer for request {request}, \
                                 which it is not waiting on"
                            ))
                        })?;
                        match message {
                            ControlMessage::Grant { waited, pages, .. } if !plan.pull => {
                                transfers.push(start_transfer(
                                    times,
                                    (src, pages),
                                    (now, waited),
                                    w.planner,
                                    None,
                                    plan.qps,
                                )?);
                            }
                            ControlMessage::Grant { .. } => {
                                return Err(EngineError::Invalid(format!(
                                    "prefill worker {worker}: a GRANT for pulled request \
                                     {request} (a pull is answered by its notice)"
                                )))
                            }
                            _ => {
                                w.pool.release(&src);
                                out.requests.push(PoolRequestTimes {
                                    rejected: true,
                                    ..times
                                });
                                finished += 1;
                            }
                        }
                        continue;
                    }
                    let request = imm_parts(c.imm.unwrap_or(u32::MAX)).0;
                    // fabric pull: the asked request is still in `awaiting`
                    let src = pulled
                        .remove(&request)
                        .or_else(|| awaiting.remove(&request).map(|(_, src)| src));
                    if let Some(src) = src {
                        w.pool.release(&src);
                        finished += 1;
                    }
                    continue;
                }
                window.retire(q, &mut transfers)?;
            }
            if notices {
                top_up_pool_receives(lane, w.buffer, w.notify_offset, control.as_ref())?;
            }
            let (done, running): (Vec<Transfer>, Vec<Transfer>) =
                transfers.into_iter().partition(Transfer::done);
            transfers = running;
            for mut t in done {
                t.times.data_done_ns = now;
                w.pool.release(&t.plan.src_blocks);
                out.requests.push(t.times);
                finished += 1;
            }
            continue;
        }
        // 6. nothing completed: wait for a completion, the running
        // prefill's end, the next arrival or a grant, whichever is first
        let wake = match &computing {
            Some(c) => Some(c.1),
            None => requests.get(next).map(|r| t0 + r.intended_ns),
        };
        // a due wake that step 3 could not serve waits for pages: they free
        // on a completion, a grant or (pull) a notice, not by spinning
        let cap = wake
            .map(|at| Duration::from_nanos(at.saturating_sub(now)))
            .filter(|d| !d.is_zero())
            .unwrap_or(LONGEST_SLEEP)
            .min(LONGEST_SLEEP);
        if window.total() > 0 {
            // a grant for a queued request comes over a channel (shared
            // state) or on the CQ (fabric)
            let cap = if awaiting.is_empty() || control.is_some() {
                cap
            } else {
                cap.min(HANDOFF_POLL)
            };
            window.wait(
                lane,
                cap,
                now.saturating_sub(last_progress),
                plan.stall_timeout,
                || {
                    format!(
                        "prefill worker {worker}: {} KV transfers in flight",
                        transfers.len()
                    )
                },
            )?;
        } else if plan.pull || control.is_some() {
            // pull posts nothing here: the decode workers' notices arrive
            // on the CQ (grants never come: a pull is granted at its
            // decode worker); fabric grants arrive on the CQ too
            last_progress = now;
            lane.wait_idle(cap)?;
        } else {
            last_progress = now;
            match w.inbox.0.recv_timeout(cap) {
                Ok(g) => grants.push_back(g),
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => {
                    return Err(EngineError::Invalid(
                        "the pool's grant channel closed (a decode worker ended early)".into(),
                    ))
                }
            }
        }
    }
    // fabric: an ASK's send completion may trail its answer; the lane
    // serves the next trial, which must not see it
    drain_sends(lane, &mut window, plan, worker)
}

/// Waits, up to the stall timeout, for every send still in flight on the
/// worker's QPs to complete.
fn drain_sends(
    lane: &mut Lane,
    window: &mut SendWindow,
    plan: &PoolRunPlan,
    worker: u32,
) -> Result<(), EngineError> {
    let mut last_progress = monotonic_ns();
    while window.total() > 0 {
        lane.check_abort()?;
        let got = lane.cq.poll(&mut lane.completions)?;
        let now = monotonic_ns();
        if let Some(c) = lane.completions.iter().find(|c| !c.is_ok()) {
            return Err(EngineError::completion(c, window.completed, window.total()));
        }
        if got == 0 {
            window.wait(
                lane,
                LONGEST_SLEEP,
                now.saturating_sub(last_progress),
                plan.stall_timeout,
                || format!("prefill worker {worker}: its last control messages"),
            )?;
            continue;
        }
        last_progress = now;
        for i in 0..got {
            let c = lane.completions[i];
            let q = WrId(c.wr_id).qp_index();
            if matches!(c.op, CompletionOp::Recv | CompletionOp::RecvWithImm) {
                return Err(EngineError::Invalid(format!(
                    "prefill worker {worker}: a message on QP {q} after its last request ended"
                )));
            }
            window.retire(q, &mut [])?;
        }
    }
    Ok(())
}

fn ended_early(decode_worker: u32) -> EngineError {
    EngineError::Invalid(format!(
        "decode worker {decode_worker} ended before its pull order (the pool's order channel closed)"
    ))
}

/// Lays a granted request out on its prefill pages `src` and decode pages
/// `dst`, and records its admission and sizes in its times.
fn plan_granted(
    mut times: PoolRequestTimes,
    (src, dst): (Vec<u32>, Vec<u32>),
    (admit_ns, waited): (u64, bool),
    planner: &KvPlanner,
) -> Result<(PoolRequestTimes, Arc<RequestPlan>), EngineError> {
    let plan = planner
        .plan_pages(times.request, times.prompt_tokens, src, dst)
        .map_err(|e| EngineError::Invalid(format!("request {}: {e}", times.request)))?;
    times.admit_ns = admit_ns.max(1);
    times.admission_waited = waited;
    times.bytes = plan.bytes;
    times.descriptors = plan.descriptors.len() as u64;
    times.wrs = plan.wrs.len() as u64;
    Ok((times, Arc::new(plan)))
}

/// A pushed request, granted: planned, its plan registered with its
/// decode worker (for verification) before anything is posted; under
/// fabric control (`shared` is `None`) the decode worker planned it itself
/// when it granted the pages.
fn start_transfer(
    times: PoolRequestTimes,
    pages: (Vec<u32>, Vec<u32>),
    admitted: (u64, bool),
    planner: &KvPlanner,
    shared: Option<&PoolShared>,
    qps: usize,
) -> Result<Transfer, EngineError> {
    let (times, plan) = plan_granted(times, pages, admitted, planner)?;
    if let Some(shared) = shared {
        shared
            .decode(times.decode_worker)
            .plans
            .insert(times.request, Arc::clone(&plan));
    }
    Ok(Transfer::new(
        times.decode_worker as usize * qps,
        times,
        plan,
        qps,
    ))
}

/// What a decode worker needs besides its lane.
#[derive(Debug)]
pub struct DecodeWorker<'a> {
    /// The worker's number.
    pub worker: u32,
    /// Its pool buffer (the KV destination).
    pub buffer: &'a RegisteredBuffer,
    /// Where its zero-length receives point (never over KV pages).
    pub notify_offset: u64,
    /// Output tokens of every request of the trial, by request.
    pub outputs: &'a HashMap<u32, u64>,
    /// Core to pin to.
    pub core: Option<usize>,
    /// Raised when a prefill worker failed: leave without draining.
    pub abandon: &'a AtomicBool,
    /// Pull: each prefill worker's pool buffer (the KV source).
    pub remotes: &'a [BufferKey],
    /// Pull: where its orders arrive.
    pub orders: &'a OrderInbox,
    /// Lays out a request on its pages (pull: to READ it; fabric push: to
    /// verify it).
    pub planner: &'a KvPlanner,
    /// Fabric control: its message slots (`None`: shared state).
    pub control: Option<ControlLayout>,
    /// Fabric control: requests the plan routes here; the worker ends once
    /// each has landed or been refused (no shared `stop` across hosts).
    pub routed: u32,
}

/// Runs a decode worker until `stop` (every prefill worker is done) and
/// every request granted here has landed: counts immediates per request,
/// declares requests landed, verifies them, frees their pages after the
/// modelled decode and admits waiting requests.
pub fn run_decode_worker(
    w: DecodeWorker<'_>,
    lane: &mut Lane,
    shared: &PoolShared,
    plan: &PoolRunPlan,
    stop: &AtomicBool,
    out: &mut DecodeTally,
) -> Result<(), EngineError> {
    let cpu_start = thread_cpu_s();
    let result = decode_loop(w, lane, shared, plan, stop, out);
    out.cpu_s = thread_cpu_s() - cpu_start;
    result
}

/// Keeps [`SERVING_RECV_DEPTH`] receives posted on every QP: zero-length
/// ones at `offset` (a WRITE_WITH_IMM or a zero-byte SEND_WITH_IMM consumes
/// one and carries no payload into it), except on the control QPs under
/// fabric control, whose receives point into their slots.
fn top_up_pool_receives(
    lane: &mut Lane,
    buffer: &RegisteredBuffer,
    offset: u64,
    control: Option<&ControlEnd>,
) -> Result<(), EngineError> {
    for q in 0..lane.qps.len() {
        while lane.recv_posted[q] < SERVING_RECV_DEPTH {
            let seq = lane.recv_seq[q] + u64::from(lane.recv_posted[q]);
            let (at, len) = match control {
                Some(c) if q % c.qps == 0 => (
                    c.layout.recv_slot(q / c.qps, seq),
                    c.layout.slot_bytes as u32,
                ),
                _ => (offset, 0),
            };
            lane.qps[q].post_recv(WrId::new(q, seq).0, buffer, at as usize, len)?;
            lane.recv_posted[q] += 1;
        }
    }
    Ok(())
}

fn decode_loop(
    w: DecodeWorker<'_>,
    lane: &mut Lane,
    shared: &PoolShared,
    plan: &PoolRunPlan,
    stop: &AtomicBool,
    out: &mut DecodeTally,
) -> Result<(), EngineError> {
    pin(w.core);
    let worker = w.worker;
    let mut control = w.control.map(|layout| ControlEnd::new(layout, plan.qps));
    top_up_pool_receives(lane, w.buffer, w.notify_offset, control.as_ref())?;
    // fabric: requests refused here (each also answered with a REJECT)
    let mut refused = 0u32;
    let mut imms: HashMap<u32, usize> = HashMap::new();
    // (release at, request): the modelled decode ends
    let mut releases: BinaryHeap<Reverse<(u64, u32)>> = BinaryHeap::new();
    // pull: the READs in progress, and notices waiting for window room
    let mut window = SendWindow::new(lane.qps.len(), plan.tx_depth);
    let mut transfers: Vec<Transfer> = Vec::new();
    let mut orders: VecDeque<PullOrder> = VecDeque::new();
    let mut notices: VecDeque<(usize, u32)> = VecDeque::new();
    let mut pending: Vec<WorkRequest<'_>> = Vec::with_capacity(MAX_CHAIN);
    let mut last_progress = monotonic_ns();
    // after `stop`: the prefill workers saw their last completions, but a
    // landing may not be polled here yet
    let mut drain_until: Option<u64> = None;
    loop {
        if w.abandon.load(Ordering::Relaxed) {
            return Ok(());
        }
        if let Some(ctl) = &control {
            // fabric: done once every request routed here landed or was
            // refused, and every answer and notice left
            let settled = out.landed.len() as u32 + refused;
            if settled >= w.routed
                && ctl.outbox.is_empty()
                && notices.is_empty()
                && window.total() == 0
            {
                return Ok(());
            }
        }
        if stop.load(Ordering::Relaxed) {
            let now = monotonic_ns();
            let until = *drain_until.get_or_insert(now + plan.stall_timeout.as_nanos() as u64);
            // push: granted, immediates not all in; pull: READs running
            let landing = shared.decode(worker).plans.len() + transfers.len();
            if landing == 0 && notices.is_empty() && window.total() == 0 {
                return Ok(());
            }
            if now > until {
                return Err(EngineError::Stall {
                    what: format!(
                        "decode worker {worker}: {landing} granted requests never landed, \
                         {} notices unsent",
                        notices.len()
                    ),
                    waited_s: plan.stall_timeout.as_secs_f64(),
                    completed: out.landed.len() as u64,
                    in_flight: window.total(),
                });
            }
        }
        lane.check_abort()?;
        if Instant::now() > plan.deadline {
            if control.is_some() {
                // fabric: the prefill workers may be on another host
                return Err(EngineError::Invalid(format!(
                    "decode worker {worker}: {RAN_PAST_BUDGET} with {} of the {} requests routed \
                     here landed and {refused} refused; lower the offered rate or --requests (or \
                     a prefill worker on another node failed: see its error)",
                    out.landed.len(),
                    w.routed
                )));
            }
            return Ok(()); // the prefill workers name the overrun
        }
        // pull: new orders become transfers, READs and notices are posted
        orders.extend(w.orders.0.try_iter());
        while let Some(o) = orders.pop_front() {
            transfers.push(pull_transfer(o, w.planner, plan)?);
        }
        // notices first: each frees a prefill worker's pages
        for _ in 0..notices.len() {
            let Some((q, request)) = notices.pop_front() else {
                break;
            };
            if !window.notify(lane, q, request, (w.buffer, w.notify_offset))? {
                notices.push_back((q, request)); // that QP is full: later
            }
        }
        if let Some(ctl) = control.as_mut() {
            ctl.flush(&mut window, lane, w.buffer)?;
        }
        for t in transfers.iter_mut() {
            let remote = w.remotes[t.times.prefill_worker as usize];
            window.post(lane, t, (w.buffer, remote), true, &mut pending)?;
        }
        let got = lane.cq.poll(&mut lane.completions)?;
        let now = monotonic_ns();
        if let Some(c) = lane.completions.iter().find(|c| !c.is_ok()) {
            return Err(EngineError::completion(
                c,
                out.landed.len() as u64,
                window.total(),
            ));
        }
        if got > 0 {
            lane.idle.reset();
            last_progress = now;
            let mut landed: Vec<(u32, Option<Arc<RequestPlan>>)> = Vec::new();
            for i in 0..got {
                let c = lane.completions[i];
                let q = WrId(c.wr_id).qp_index();
                // by opcode: a provider may flag the send side of a
                // SEND_WITH_IMM with its immediate too (rxe does)
                if !matches!(c.op, CompletionOp::Recv | CompletionOp::RecvWithImm) {
                    // pull: a READ chain or a notice left
                    window.retire(q, &mut transfers)?;
                    continue;
                }
                consumed_receive(lane, q);
                let Some(imm) = c.imm else {
                    if let Some(ctl) = control.as_mut() {
                        // fabric: a prefill worker asks for pages
                        let (peer, message) = ctl.read(w.buffer, &c)?;
                        let ControlMessage::Ask(ask) = message else {
                            return Err(EngineError::Invalid(format!(
                                "decode worker {worker}: a {message:?} from prefill worker \
                                 {peer} (decode workers take only asks)"
                            )));
                        };
                        let ask = AskAt {
                            ask,
                            prefill_worker: peer,
                            start_at_ns: plan.start_at_ns,
                        };
                        match answer_ask(shared, worker, ask, now, w.planner, plan)? {
                            Answer::Pull(o) => orders.push_back(o),
                            Answer::Send(m) => {
                                refused += u32::from(matches!(m, ControlMessage::Reject { .. }));
                                ctl.send(peer, m);
                            }
                            Answer::Queued => {}
                        }
                    }
                    continue;
                };
                let (request, used) = imm_parts(imm);
                let seen = imms.entry(request).or_insert(0);
                *seen += 1;
                if *seen < used {
                    continue;
                }
                imms.remove(&request);
                landed.push((request, shared.decode(worker).plans.remove(&request)));
            }
            // pull: a request whose READs all completed has landed here
            let (done, running): (Vec<Transfer>, Vec<Transfer>) =
                transfers.into_iter().partition(Transfer::done);
            transfers = running;
            for mut t in done {
                t.times.data_done_ns = now;
                let request = t.times.request;
                notices.push_back((t.base_qp, request));
                landed.push((request, Some(Arc::clone(&t.plan))));
                out.pulled.push(t.times);
            }
            for (request, request_plan) in landed {
                let verify_mismatches = match (request_plan, plan.verify) {
                    (Some(p), true) => Some(verify_and_clear(w.buffer, &p)?),
                    _ => None,
                };
                out.landed.push(Landing {
                    request,
                    landed_ns: now,
                    verify_mismatches,
                });
                let output = w.outputs.get(&request).copied().unwrap_or(0);
                releases.push(Reverse((
                    now + plan.decode_init_ns + output * plan.decode_step_ns,
                    request,
                )));
            }
            top_up_pool_receives(lane, w.buffer, w.notify_offset, control.as_ref())?;
            continue;
        }
        // modelled decodes that ended: free their pages, admit the FIFO
        let mut freed = false;
        while let Some(&Reverse((at, request))) = releases.peek() {
            if at > now {
                break;
            }
            releases.pop();
            let mut d = shared.decode(worker);
            if let Some(pages) = d.granted.remove(&request) {
                d.pool.release(&pages);
            }
            freed = true;
        }
        if freed {
            let mut answered = false;
            for a in admit_waiting(shared, worker, plan.pull)? {
                match a {
                    Admitted::Pull(o) => orders.push_back(o),
                    Admitted::Push(ticket, grant) => {
                        let ctl = control.as_mut().ok_or_else(|| {
                            EngineError::Invalid(
                                "a queued push request with a ticket under shared control (a \
                                 bug in infab; please report it)"
                                    .into(),
                            )
                        })?;
                        let request_plan = w
                            .planner
                            .plan_pages(
                                grant.request,
                                ticket.times.prompt_tokens,
                                ticket.src,
                                grant.pages.clone(),
                            )
                            .map_err(|e| {
                                EngineError::Invalid(format!("request {}: {e}", grant.request))
                            })?;
                        shared
                            .decode(worker)
                            .plans
                            .insert(grant.request, Arc::new(request_plan));
                        ctl.send(
                            ticket.times.prefill_worker,
                            ControlMessage::Grant {
                                request: grant.request,
                                waited: true,
                                pages: grant.pages,
                            },
                        );
                        answered = true;
                    }
                }
            }
            if !orders.is_empty() || answered {
                continue;
            }
        }
        let cap = releases
            .peek()
            .map(|Reverse((at, _))| Duration::from_nanos(at.saturating_sub(now)))
            .unwrap_or(LONGEST_SLEEP)
            .min(LONGEST_SLEEP)
            .max(Duration::from_micros(1));
        if window.total() > 0 {
            // pull: a new order comes over a channel (fabric: on the CQ)
            let cap = if plan.pull && control.is_none() {
                cap.min(HANDOFF_POLL)
            } else {
                cap
            };
            window.wait(
                lane,
                cap,
                now.saturating_sub(last_progress),
                plan.stall_timeout,
                || {
                    format!(
                        "decode worker {worker}: {} KV pulls in flight",
                        transfers.len()
                    )
                },
            )?;
        } else if plan.pull && control.is_none() {
            // nothing in flight: the next pull order is the next event
            last_progress = now;
            match w.orders.0.recv_timeout(cap) {
                Ok(o) => orders.push_back(o),
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => {
                    return Err(EngineError::Invalid(
                        "the pool's order channel closed (the trial ended early)".into(),
                    ))
                }
            }
        } else {
            last_progress = now;
            lane.wait_idle(cap)?;
        }
    }
}

/// A pull order as a transfer at its decode worker: planned onto the
/// prefill pages it reads and the decode pages it was granted.
fn pull_transfer(
    o: PullOrder,
    planner: &KvPlanner,
    run: &PoolRunPlan,
) -> Result<Transfer, EngineError> {
    let (times, plan) = plan_granted(o.times, (o.src, o.dst), (o.admit_ns, o.waited), planner)?;
    let base_qp = times.prefill_worker as usize * run.qps;
    Ok(Transfer::new(base_qp, times, plan, run.qps))
}

/// A request the decode worker admitted from its FIFO that it answers
/// itself.
#[derive(Debug)]
enum Admitted {
    /// Pulled: READ it now.
    Pull(PullOrder),
    /// Pushed under fabric control: plan it and send its prefill worker
    /// the grant.
    Push(PullTicket, Grant),
}

/// Grants pages to waiting requests in FIFO order while they fit (a head
/// that does not fit holds back the ones behind it, as a FIFO does). A
/// pulled request comes back as an order for this decode worker to READ at
/// once; a pushed one under fabric control as a grant to send; any other
/// pushed one's grant goes to its prefill worker's channel.
fn admit_waiting(
    shared: &PoolShared,
    worker: u32,
    pull: bool,
) -> Result<Vec<Admitted>, EngineError> {
    let mut d = shared.decode(worker);
    let mut admitted = Vec::new();
    while let Some(head) = d.waiting.front().copied() {
        let Some(pages) = d.admit(head.request, head.pages) else {
            break;
        };
        d.waiting.pop_front();
        let admit_ns = monotonic_ns();
        if let Some(ticket) = d.tickets.remove(&head.request) {
            admitted.push(if pull {
                Admitted::Pull(PullOrder {
                    times: ticket.times,
                    src: ticket.src,
                    dst: pages,
                    admit_ns,
                    waited: true,
                })
            } else {
                Admitted::Push(
                    ticket,
                    Grant {
                        request: head.request,
                        pages,
                        admit_ns,
                    },
                )
            });
            continue;
        }
        let grant = Grant {
            request: head.request,
            pages,
            admit_ns,
        };
        shared.grants[head.prefill_worker as usize]
            .send(grant)
            .map_err(|_| {
                EngineError::Invalid(format!(
                    "prefill worker {} ended before its grant",
                    head.prefill_worker
                ))
            })?;
    }
    Ok(admitted)
}

/// An ASK as its decode worker received it: who sent it, and the trial's
/// start on this worker's clock (the ASK's times count from it).
struct AskAt {
    ask: Ask,
    prefill_worker: u32,
    start_at_ns: u64,
}

/// What a decode worker does with an ASK.
#[derive(Debug)]
enum Answer {
    /// Pulled and granted: READ it now.
    Pull(PullOrder),
    /// A GRANT (pushed, planned here for verification) or a REJECT.
    Send(ControlMessage),
    /// Queued for pages (`--admission wait`).
    Queued,
}

/// Fabric control: admits, refuses or queues an asked request at decode
/// worker `worker`, as the shared-state path does at the prefill worker.
fn answer_ask(
    shared: &PoolShared,
    worker: u32,
    at: AskAt,
    now: u64,
    planner: &KvPlanner,
    run: &PoolRunPlan,
) -> Result<Answer, EngineError> {
    let AskAt {
        ask,
        prefill_worker,
        start_at_ns: t0,
    } = at;
    let times = PoolRequestTimes {
        request: ask.request,
        intended_ns: t0 + ask.intended_ns,
        prefill_worker,
        decode_worker: worker,
        prompt_tokens: ask.prompt_tokens,
        output_tokens: ask.output_tokens,
        prefill_start_ns: t0 + ask.prefill_start_ns,
        prefill_end_ns: t0 + ask.prefill_end_ns,
        prefill_modelled_ns: ask.prefill_modelled_ns,
        ..PoolRequestTimes::default()
    };
    let mut d = shared.decode(worker);
    if let Some(dst) = d.admit(ask.request, ask.pages) {
        if run.pull {
            return Ok(Answer::Pull(PullOrder {
                times,
                src: ask.src,
                dst,
                admit_ns: now,
                waited: false,
            }));
        }
        let request_plan = planner
            .plan_pages(ask.request, ask.prompt_tokens, ask.src, dst.clone())
            .map_err(|e| EngineError::Invalid(format!("request {}: {e}", ask.request)))?;
        d.plans.insert(ask.request, Arc::new(request_plan));
        return Ok(Answer::Send(ControlMessage::Grant {
            request: ask.request,
            waited: false,
            pages: dst,
        }));
    }
    if shared.admission == Admission::Reject {
        return Ok(Answer::Send(ControlMessage::Reject {
            request: ask.request,
        }));
    }
    d.waiting.push_back(Waiting {
        request: ask.request,
        prefill_worker,
        pages: ask.pages,
    });
    d.peak_waiting = d.peak_waiting.max(d.waiting.len() as u32);
    d.tickets.insert(
        ask.request,
        PullTicket {
            times,
            src: ask.src,
        },
    );
    Ok(Answer::Queued)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_workers_own_failure_outranks_an_overrun_and_a_peer_stop() {
        let own = "QP 7: a work request failed with 'remote access error'";
        let overrun = format!("decode worker 0: {RAN_PAST_BUDGET} with 3 of 8 landed");
        let mut errors = [
            STOPPED_BY_PEER.to_string(),
            overrun.clone(),
            own.to_string(),
        ];
        errors.sort_by_key(|e| error_rank(e));
        assert_eq!(errors[0], own);
        assert_eq!(errors[1], overrun);
    }

    #[test]
    fn immediates_carry_request_and_qp_count() {
        assert_eq!(imm_parts(imm_of(123_456, 7)), (123_456, 7));
        assert_eq!(
            imm_parts(imm_of(SERVING_MAX_REQUESTS - 1, SERVING_MAX_QPS)),
            (SERVING_MAX_REQUESTS - 1, SERVING_MAX_QPS)
        );
    }

    #[test]
    fn admission_takes_pages_and_queues_fifo() {
        let (shared, inboxes) =
            PoolShared::new(vec![PagePool::new(4, 0.0, 1).unwrap()], 1, Admission::Wait);
        let inboxes = inboxes.grants;
        assert_eq!(shared.decode(0).admit(1, 3), Some(vec![0, 1, 2]));
        assert!(shared.decode(0).admit(2, 2).is_none());
        shared.decode(0).waiting.push_back(Waiting {
            request: 2,
            prefill_worker: 0,
            pages: 2,
        });
        assert!(admit_waiting(&shared, 0, false).unwrap().is_empty());
        assert!(inboxes[0].0.try_recv().is_err(), "still does not fit");
        let pages = shared.decode(0).granted.remove(&1).unwrap();
        shared.decode(0).pool.release(&pages);
        assert!(
            admit_waiting(&shared, 0, false).unwrap().is_empty(),
            "a push grant"
        );
        let g = inboxes[0].0.try_recv().unwrap();
        assert_eq!((g.request, g.pages), (2, vec![3, 0]));
        assert_eq!(shared.decode(0).load(), (1, 2));
    }

    #[test]
    fn a_pulled_request_queued_for_pages_comes_back_as_an_order() {
        let (shared, inboxes) =
            PoolShared::new(vec![PagePool::new(4, 0.0, 1).unwrap()], 1, Admission::Wait);
        assert_eq!(shared.decode(0).admit(1, 3), Some(vec![0, 1, 2]));
        {
            let mut d = shared.decode(0);
            d.waiting.push_back(Waiting {
                request: 2,
                prefill_worker: 0,
                pages: 2,
            });
            let times = PoolRequestTimes {
                request: 2,
                prompt_tokens: 16,
                ..PoolRequestTimes::default()
            };
            d.tickets.insert(
                2,
                PullTicket {
                    times,
                    src: vec![7],
                },
            );
        }
        assert!(
            admit_waiting(&shared, 0, true).unwrap().is_empty(),
            "no room yet"
        );
        let pages = shared.decode(0).granted.remove(&1).unwrap();
        shared.decode(0).pool.release(&pages);
        let orders = admit_waiting(&shared, 0, true).unwrap();
        assert_eq!(orders.len(), 1);
        let Admitted::Pull(o) = &orders[0] else {
            panic!("a pull order: {orders:?}")
        };
        assert_eq!(
            (o.times.request, o.src.clone(), o.dst.clone(), o.waited),
            (2, vec![7], vec![3, 0], true)
        );
        assert!(o.admit_ns > 0);
        assert!(
            inboxes.grants[0].0.try_recv().is_err(),
            "a pull is granted at its decode worker, not sent back"
        );
        assert!(shared.decode(0).tickets.is_empty());
    }

    fn planner() -> KvPlanner {
        KvPlanner::new(crate::workload::kv::KvPlanSpec {
            model: "llama-3.1-8b".parse().unwrap(),
            tp: 1,
            layout: crate::workload::kv::KvLayout::Sglang,
            block_tokens: 16,
            pool_blocks: 4,
            fragmentation: 0.0,
            max_wr_bytes: 1 << 20,
            seed: 1,
        })
        .unwrap()
    }

    fn ask(request: u32, pages: u32) -> AskAt {
        AskAt {
            ask: Ask {
                request,
                prompt_tokens: 16,
                output_tokens: 16 * u64::from(pages - 1),
                pages,
                intended_ns: 5,
                prefill_start_ns: 6,
                prefill_end_ns: 7,
                prefill_modelled_ns: 1,
                src: vec![request],
            },
            prefill_worker: 1,
            start_at_ns: 1000,
        }
    }

    fn run(pull: bool) -> PoolRunPlan {
        PoolRunPlan {
            qps: 1,
            tx_depth: 8,
            start_at_ns: 1000,
            stall_timeout: Duration::from_secs(1),
            deadline: Instant::now(),
            verify: true,
            decode_init_ns: 0,
            decode_step_ns: 0,
            block_tokens: 16,
            pull,
        }
    }

    #[test]
    fn a_fabric_ask_is_granted_queued_or_refused_like_a_shared_one() {
        let planner = planner();
        for admission in [Admission::Wait, Admission::Reject] {
            let (shared, _inboxes) =
                PoolShared::new(vec![PagePool::new(4, 0.0, 1).unwrap()], 2, admission);
            // push: a GRANT with the pages, planned here for --verify
            let a = answer_ask(&shared, 0, ask(1, 3), 50, &planner, &run(false)).unwrap();
            let Answer::Send(ControlMessage::Grant {
                request: 1,
                waited: false,
                pages,
            }) = a
            else {
                panic!("a grant: {a:?}")
            };
            assert_eq!(pages, vec![0, 1, 2]);
            assert!(shared.decode(0).plans.contains_key(&1));
            // no room for 2 pages: queued, or refused
            let a = answer_ask(&shared, 0, ask(2, 2), 60, &planner, &run(false)).unwrap();
            match admission {
                Admission::Wait => {
                    assert!(matches!(a, Answer::Queued), "{a:?}");
                    assert_eq!(shared.peaks(0), (3, 1));
                }
                Admission::Reject => {
                    assert!(
                        matches!(a, Answer::Send(ControlMessage::Reject { request: 2 })),
                        "{a:?}"
                    );
                    continue;
                }
            }
            // its pages free: the FIFO head comes back as a grant to send,
            // with the times the ASK carried, on this worker's clock
            let pages = shared.decode(0).granted.remove(&1).unwrap();
            shared.decode(0).pool.release(&pages);
            let admitted = admit_waiting(&shared, 0, false).unwrap();
            let [Admitted::Push(ticket, grant)] = admitted.as_slice() else {
                panic!("one push grant: {admitted:?}")
            };
            assert_eq!((grant.request, grant.pages.len()), (2, 2));
            assert_eq!(ticket.src, vec![2]);
            let t = &ticket.times;
            assert_eq!(
                (t.intended_ns, t.prefill_start_ns, t.prefill_end_ns),
                (1005, 1006, 1007)
            );
            assert_eq!((t.prefill_worker, t.decode_worker), (1, 0));
        }
    }

    #[test]
    fn a_fabric_ask_for_a_pull_becomes_a_read_order() {
        let planner = planner();
        let (shared, _inboxes) =
            PoolShared::new(vec![PagePool::new(4, 0.0, 1).unwrap()], 2, Admission::Wait);
        let a = answer_ask(&shared, 0, ask(9, 2), 50, &planner, &run(true)).unwrap();
        let Answer::Pull(o) = a else {
            panic!("a pull order: {a:?}")
        };
        assert_eq!(
            (o.src, o.dst, o.admit_ns, o.waited),
            (vec![9], vec![0, 1], 50, false)
        );
        assert!(
            shared.decode(0).plans.is_empty(),
            "a pull is planned as a transfer, not for landing"
        );
    }
}
