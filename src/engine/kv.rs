//! KV-cache transfers as serving engines post them (IETF 10.1, 6.1): one
//! request at a time, thousands of page descriptors spread over the QPs,
//! posted as WR chains (one doorbell per chain), released layer group by
//! layer group as the (modelled) prefill finishes them, then a notification
//! the other side waits for.
//!
//! Two roles per transfer. The **active** side posts: the prefill side
//! WRITEs (push, as SGLang's Mooncake backend does) or the decode side
//! READs (pull, as vLLM's NixlConnector does). The **passive** side only
//! watches its receive queue for the notification and, with `--verify`,
//! checks every page where the plan says it lands.
//!
//! Notifications never overtake data, whatever the QP count:
//! - `imm` (push): the last WR of the request on *each* QP is a
//!   WRITE_WITH_IMM carrying the request id. RC delivers a QP's WRs in
//!   order, so that QP's receive completion means all its bytes landed; the
//!   passive side declares the request complete when every QP that carried
//!   data has delivered its immediate (draft Appendix C's PUT-with-signal).
//! - `send` (NIXL-style notification): after every data WR has completed at
//!   the active side, one SEND with the request id.
//! - pull: the data is at the decode side when its READs complete; the
//!   notification (imm: a zero-byte WRITE_WITH_IMM, send: a SEND) tells the
//!   prefill side it may free its pages, and its lag is measured there.
//!
//! Time stamps are CLOCK_MONOTONIC ns of the node that takes them; the
//! driver translates them. Planning and verification happen outside the
//! timed window of each request.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::control::{monotonic_ns, BufferKey};
use crate::verbs::{
    Completion, CompletionOp, RegisteredBuffer, SendOp, VerbsError, WorkRequest, MAX_CHAIN,
};
use crate::workload::kv::{Descriptor, RequestPlan};

use super::bandwidth::{pin, wait_until};
use super::{thread_cpu_s, EngineError, Lane, PollMode, WrId, LONGEST_SLEEP};

/// Bytes at the end of each side's pool buffer that carry notification
/// messages (a SEND's payload lands there, never over KV pages).
pub const KV_NOTIFY_BYTES: u64 = 4096;

/// Size of one notification SEND's payload (the request id, padded).
const NOTIFY_MSG_BYTES: u32 = 64;

/// Receives each passive (and, for verify acks, active) QP keeps posted.
pub const KV_RECV_DEPTH: u32 = 16;

/// Which side moves the bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum KvDirection {
    /// The prefill side WRITEs into the decode side's pages.
    Push,
    /// The decode side READs from the prefill side's pages.
    Pull,
}

/// How the waiting side learns a request is complete.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum KvNotify {
    /// WRITE_WITH_IMM (push: the last WR of each QP; pull: a zero-byte one).
    Imm,
    /// A SEND carrying the request id after the data completed.
    Send,
    /// No notification: the transfer ends at the active side's last
    /// completion.
    None,
}

impl KvDirection {
    /// The flag's word: "push" or "pull".
    pub fn name(self) -> &'static str {
        match self {
            KvDirection::Push => "push",
            KvDirection::Pull => "pull",
        }
    }
}

impl KvNotify {
    /// The flag's word: "imm", "send" or "none".
    pub fn name(self) -> &'static str {
        match self {
            KvNotify::Imm => "imm",
            KvNotify::Send => "send",
            KvNotify::None => "none",
        }
    }
}

/// When each layer group of a request may be posted: `(end layer
/// exclusive, ns after the request's prefill start)`, in layer order. A
/// single group `(L, 0)` posts everything at once.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KvSchedule {
    /// The groups.
    pub groups: Vec<(u32, u64)>,
}

/// What one side of a KV trial does.
#[derive(Debug, Clone)]
pub struct KvRunPlan {
    /// Push or pull.
    pub direction: KvDirection,
    /// The notification.
    pub notify: KvNotify,
    /// Requests in the trial (run one at a time).
    pub requests: u32,
    /// Layer-group release times: one for every request, or one per
    /// request (request `r` uses `schedules[r]`, a prompt mix).
    pub schedules: Vec<KvSchedule>,
    /// The peer's pool buffer.
    pub remote: BufferKey,
    /// Offset of the notification area in both pool buffers.
    pub notify_offset: u64,
    /// Outstanding WRs per QP.
    pub tx_depth: u32,
    /// CLOCK_MONOTONIC ns of the agreed start.
    pub start_at_ns: u64,
    /// Error out after this long without a completion while waiting on one.
    pub stall_timeout: Duration,
    /// The passive side gives up at this instant (the trial's budget).
    pub deadline: Instant,
    /// What one request may take (the trial's budget over its requests):
    /// the passive side waits this long plus `stall_timeout` for each
    /// notification before it declares the posting end stalled or dead.
    pub request_budget: Duration,
    /// Check every page at its destination (and zero it for the next use).
    pub verify: bool,
    /// Core to pin to.
    pub core: Option<usize>,
    /// Gap between requests at the active side, ns (0: back to back).
    pub gap_ns: u64,
    /// Open loop: each request's intended start, ns after the trial's
    /// start; a request starts then, or when the one before it ended if
    /// that is later (it queued). Empty: closed loop (back to back).
    pub arrivals_ns: Vec<u64>,
    /// How the passive end waits.
    pub poll: PollMode,
}

impl KvRunPlan {
    /// Request `request`'s layer-group release times (no groups, which
    /// releases everything at once, when none is given for it).
    pub fn schedule(&self, request: u32) -> &KvSchedule {
        static ALL_AT_ONCE: KvSchedule = KvSchedule { groups: Vec::new() };
        match self.schedules.as_slice() {
            [one] => one,
            many => many.get(request as usize).unwrap_or(&ALL_AT_ONCE),
        }
    }

    /// The longest modelled layer wait of any request (how long the
    /// passive end may see nothing while the posting end computes).
    pub fn longest_layer_wait_ns(&self) -> u64 {
        self.schedules
            .iter()
            .filter_map(|s| s.groups.last().map(|g| g.1))
            .max()
            .unwrap_or(0)
    }
}

/// The times and counts of one request at the active side.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct KvRequestTimes {
    /// The request.
    pub request: u32,
    /// Its (modelled) prefill start.
    pub start_ns: u64,
    /// Open loop: from its intended arrival to `start_ns` (it waited for
    /// the request before it); 0 in closed loop.
    #[serde(default)]
    pub queue_ns: u64,
    /// First WR posted.
    pub first_post_ns: u64,
    /// Last WR posted.
    pub last_post_ns: u64,
    /// Last data completion seen at the active side.
    pub data_done_ns: u64,
    /// The notification's own completion at the active side (0: none).
    pub notify_done_ns: u64,
    /// Wall time spent inside `ibv_post_send` for the request's data WRs.
    pub post_ns: u64,
    /// Doorbells (post calls) for the data WRs.
    pub doorbells: u64,
    /// Descriptors of the plan.
    pub descriptors: u64,
    /// Work requests posted (descriptors after slicing).
    pub wrs: u64,
    /// Bytes moved.
    pub bytes: u64,
    /// Bytes found wrong at the destination (verify only).
    pub verify_mismatches: Option<u64>,
}

/// The active side's account of a trial.
#[derive(Debug, Clone, Default)]
pub struct KvActiveTally {
    /// Completed requests, in order.
    pub requests: Vec<KvRequestTimes>,
    /// CPU seconds of the thread.
    pub cpu_s: f64,
}

/// The passive side's account of a trial.
#[derive(Debug, Clone, Default)]
pub struct KvPassiveTally {
    /// `(request, when its notification was complete)`, in arrival order.
    pub seen: Vec<(u32, u64)>,
    /// CPU seconds of the thread.
    pub cpu_s: f64,
}

/// Which pool offset of a descriptor is this side's own.
fn local_offset(d: &Descriptor, direction: KvDirection, active: bool) -> u64 {
    // push: active = prefill (src); pull: active = decode (dst)
    let local_is_src = (direction == KvDirection::Push) == active;
    if local_is_src {
        d.src_offset
    } else {
        d.dst_offset
    }
}

/// QPs that carry at least one WR of a request of `wrs` WRs over `qps` QPs.
pub fn kv_qps_used(wrs: usize, qps: usize) -> usize {
    wrs.min(qps)
}

/// The `--verify` byte at offset `i` of the prefill side's pool.
#[inline]
fn kv_pattern_byte(i: u64) -> u8 {
    // 251 is prime: pages at power-of-two strides get different bytes
    ((i % 251) as u8).wrapping_mul(13).wrapping_add(0x3c)
}

/// Fills the first `len` bytes of the prefill side's pool with the verify
/// pattern (keyed by offset, so a page landing at the wrong place shows).
pub fn kv_fill_pattern(buffer: &RegisteredBuffer, len: u64) -> Result<(), VerbsError> {
    const CHUNK: u64 = 1 << 20;
    let mut scratch = vec![0u8; CHUNK.min(len) as usize];
    let mut offset = 0;
    while offset < len {
        let n = CHUNK.min(len - offset);
        for (i, b) in scratch[..n as usize].iter_mut().enumerate() {
            *b = kv_pattern_byte(offset + i as u64);
        }
        buffer.write_from(offset as usize, &scratch[..n as usize])?;
        offset += n;
    }
    Ok(())
}

/// Counts the bytes of the request's destination pages that differ from
/// the source pattern, then zeroes them (so the next request that uses the
/// same pages cannot pass on stale bytes).
pub(crate) fn verify_and_clear(
    buffer: &RegisteredBuffer,
    plan: &RequestPlan,
) -> Result<u64, VerbsError> {
    let mut mismatches = 0;
    let mut scratch = Vec::new();
    for d in &plan.wrs {
        scratch.resize(d.bytes as usize, 0);
        buffer.read_into(d.dst_offset as usize, &mut scratch)?;
        mismatches += scratch
            .iter()
            .enumerate()
            .filter(|(i, &b)| b != kv_pattern_byte(d.src_offset + *i as u64))
            .count() as u64;
        scratch.fill(0);
        buffer.write_from(d.dst_offset as usize, &scratch)?;
    }
    Ok(mismatches)
}

/// Per QP: WRs in flight and the sizes of its signalled chains, oldest
/// first (a chain's last WR is signalled; its completion retires the chain).
struct Window {
    in_flight: Vec<u64>,
    chains: Vec<VecDeque<u64>>,
    depth: u64,
    completed: u64,
}

impl Window {
    fn new(qps: usize, depth: u32) -> Window {
        Window {
            in_flight: vec![0; qps],
            chains: vec![VecDeque::new(); qps],
            depth: u64::from(depth.max(1)),
            completed: 0,
        }
    }

    fn free(&self, q: usize) -> u64 {
        self.depth.saturating_sub(self.in_flight[q])
    }

    fn posted(&mut self, q: usize, wrs: u64) {
        self.in_flight[q] += wrs;
        self.chains[q].push_back(wrs);
    }

    fn retire(&mut self, q: usize) {
        if let Some(n) = self.chains[q].pop_front() {
            self.in_flight[q] -= n;
            self.completed += n;
        }
    }

    fn total_in_flight(&self) -> u64 {
        self.in_flight.iter().sum()
    }
}

/// Polls the lane's CQ once into `lane.completions`, failing on an error
/// completion; returns how many arrived.
fn poll_ok(lane: &mut Lane, window: &Window) -> Result<usize, EngineError> {
    let got = lane.cq.poll(&mut lane.completions)?;
    if let Some(c) = lane.completions.iter().find(|c| !c.is_ok()) {
        return Err(EngineError::completion(
            c,
            window.completed,
            window.total_in_flight(),
        ));
    }
    Ok(got)
}

fn stall(what: String, timeout: Duration, window: &Window) -> EngineError {
    EngineError::Stall {
        what,
        waited_s: timeout.as_secs_f64(),
        completed: window.completed,
        in_flight: window.total_in_flight(),
    }
}

/// Keeps [`KV_RECV_DEPTH`] notification receives posted on every QP of
/// the lane (receives stay posted between trials: only the missing ones
/// are added).
fn top_up_notify_recvs(
    lane: &mut Lane,
    buffer: &RegisteredBuffer,
    notify_offset: u64,
) -> Result<(), EngineError> {
    for q in 0..lane.qps.len() {
        while lane.recv_posted[q] < KV_RECV_DEPTH {
            let seq = lane.recv_seq[q] + u64::from(lane.recv_posted[q]);
            lane.qps[q].post_recv(
                WrId::new(q, seq).0,
                buffer,
                notify_offset as usize,
                NOTIFY_MSG_BYTES,
            )?;
            lane.recv_posted[q] += 1;
        }
    }
    Ok(())
}

/// Accounts one consumed notification receive on QP `q` and replaces it.
fn replace_notify_recv(
    lane: &mut Lane,
    q: usize,
    buffer: &RegisteredBuffer,
    notify_offset: u64,
) -> Result<(), EngineError> {
    lane.recv_seq[q] += 1;
    lane.recv_posted[q] = lane.recv_posted[q].saturating_sub(1);
    top_up_notify_recvs(lane, buffer, notify_offset)
}

/// The active side: runs `plan.requests` requests one at a time, each
/// planned by `next_plan` before its timed window starts. Every completed
/// request is in `out` as soon as it completes, so a trial stopped by an
/// error keeps them.
pub fn run_kv_active(
    lane: &mut Lane,
    buffer: &RegisteredBuffer,
    plan: &KvRunPlan,
    next_plan: &mut dyn FnMut(u32) -> Result<RequestPlan, EngineError>,
    stop: &AtomicBool,
    out: &mut KvActiveTally,
) -> Result<(), EngineError> {
    let cpu_start = thread_cpu_s();
    let result = active_requests(lane, buffer, plan, next_plan, stop, out);
    out.cpu_s = thread_cpu_s() - cpu_start;
    result
}

fn active_requests(
    lane: &mut Lane,
    buffer: &RegisteredBuffer,
    plan: &KvRunPlan,
    next_plan: &mut dyn FnMut(u32) -> Result<RequestPlan, EngineError>,
    stop: &AtomicBool,
    out: &mut KvActiveTally,
) -> Result<(), EngineError> {
    pin(plan.core);
    let qps = lane.qps.len();
    if qps == 0 {
        return Err(EngineError::Invalid(
            "a KV transfer needs at least one QP".into(),
        ));
    }
    // push with verify: the decode side answers every request with its verdict
    let wants_verdict = plan.verify && plan.direction == KvDirection::Push;
    if wants_verdict {
        top_up_notify_recvs(lane, buffer, plan.notify_offset)?;
    }
    let mut window = Window::new(qps, plan.tx_depth);
    let mut stash: Vec<Completion> = Vec::new();
    let mut pending: Vec<WorkRequest<'_>> = Vec::with_capacity(MAX_CHAIN);
    wait_until(plan.start_at_ns);
    let mut next_start = monotonic_ns();
    // open loop: arrivals count from the end of the first request's planning
    let mut t0 = next_start;
    for request in 0..plan.requests {
        if stop.load(Ordering::Relaxed) {
            break;
        }
        let request_plan = next_plan(request)?;
        if request == 0 {
            t0 = monotonic_ns();
        }
        let wrs = &request_plan.wrs;
        let schedule = plan.schedule(request);
        if plan.verify && plan.direction == KvDirection::Pull {
            // the decode side's pages start zeroed for this request
            let zero = vec![0u8; wrs.iter().map(|d| d.bytes).max().unwrap_or(0) as usize];
            for d in wrs {
                buffer.write_from(d.dst_offset as usize, &zero[..d.bytes as usize])?;
            }
        }
        // the last WR of each QP (round robin: WR i goes to QP i % qps)
        let used = kv_qps_used(wrs.len(), qps);
        let last_of_qp: Vec<usize> = (0..used)
            .map(|q| q + (wrs.len() - 1 - q) / qps * qps)
            .collect();
        let imm_on_data = plan.notify == KvNotify::Imm && plan.direction == KvDirection::Push;
        // open loop: the intended arrival, fixed before the trial; a late
        // start is queueing, measured (no coordinated omission)
        let intended = match plan.arrivals_ns.get(request as usize) {
            Some(offset) => t0 + offset,
            None => next_start,
        };
        wait_until(intended.max(next_start));
        let start_ns = monotonic_ns();
        let mut times = KvRequestTimes {
            request,
            start_ns,
            queue_ns: if plan.arrivals_ns.is_empty() {
                0
            } else {
                start_ns.saturating_sub(intended)
            },
            descriptors: request_plan.descriptors.len() as u64,
            wrs: wrs.len() as u64,
            bytes: request_plan.bytes,
            ..KvRequestTimes::default()
        };
        // next WR index per QP (indices q, q+qps, q+2·qps, ...)
        let mut cursor: Vec<usize> = (0..qps).collect();
        let mut released = 0usize; // WRs whose layer group is done
        let mut group = 0usize;
        let mut posted_wrs = 0usize;
        let mut last_progress = monotonic_ns();
        loop {
            let now = monotonic_ns();
            while group < schedule.groups.len() && start_ns + schedule.groups[group].1 <= now {
                let end_layer = schedule.groups[group].0;
                released += wrs[released..]
                    .iter()
                    .take_while(|d| d.layer < end_layer)
                    .count();
                group += 1;
            }
            if group == schedule.groups.len() {
                released = wrs.len();
            }
            for q in 0..qps {
                while cursor[q] < released && window.free(q) > 0 {
                    // a chain fills at most half the window, so the NIC
                    // always has WRs queued while the next chain is built
                    let half = (window.depth / 2).max(1);
                    let room = window.free(q).min(half).min(MAX_CHAIN as u64) as usize;
                    pending.clear();
                    while pending.len() < room && cursor[q] < released {
                        let i = cursor[q];
                        let d = &wrs[i];
                        let op = match plan.direction {
                            KvDirection::Pull => SendOp::Read,
                            KvDirection::Push if imm_on_data && last_of_qp[q] == i => {
                                SendOp::WriteImm(request)
                            }
                            KvDirection::Push => SendOp::Write,
                        };
                        let remote_offset = local_offset(d, plan.direction, false);
                        pending.push(WorkRequest {
                            wr_id: WrId::new(q, lane.next_wr[q]).0,
                            op,
                            local: buffer,
                            local_offset: local_offset(d, plan.direction, true) as usize,
                            len: d.bytes as u32,
                            remote_addr: plan.remote.addr + remote_offset,
                            rkey: plan.remote.rkey,
                            signaled: false,
                        });
                        lane.next_wr[q] += 1;
                        cursor[q] += qps;
                        posted_wrs += 1;
                    }
                    if let Some(last) = pending.last_mut() {
                        last.signaled = true;
                    }
                    let before = monotonic_ns();
                    lane.qps[q].post_send_chain(&pending)?;
                    let after = monotonic_ns();
                    if times.first_post_ns == 0 {
                        times.first_post_ns = before;
                    }
                    times.last_post_ns = after;
                    times.post_ns += after - before;
                    times.doorbells += pending.len().div_ceil(MAX_CHAIN) as u64;
                    window.posted(q, pending.len() as u64);
                }
            }
            let all_posted = (0..qps).all(|q| cursor[q] >= wrs.len());
            if all_posted && window.total_in_flight() == 0 {
                break;
            }
            let got = poll_ok(lane, &window)?;
            let now = monotonic_ns();
            if got == 0 {
                lane.check_abort()?;
                if window.total_in_flight() > 0
                    && now.saturating_sub(last_progress) > plan.stall_timeout.as_nanos() as u64
                {
                    return Err(stall(
                        format!(
                            "request {request}: {posted_wrs} of {} KV work requests posted",
                            wrs.len()
                        ),
                        plan.stall_timeout,
                        &window,
                    ));
                }
                if window.total_in_flight() == 0 {
                    // waiting for a layer group's (modelled) compute
                    last_progress = now;
                    std::thread::yield_now();
                } else {
                    lane.wait_idle(LONGEST_SLEEP)?;
                }
                continue;
            }
            lane.idle.reset();
            last_progress = now;
            for i in 0..lane.completions.len() {
                let c = lane.completions[i];
                if is_receive(&c) {
                    // a verdict (of this request's predecessor, polled late,
                    // or an early one): wait_verdict takes it from the stash
                    stash.push(c);
                    continue;
                }
                window.retire(WrId(c.wr_id).qp_index());
            }
            times.data_done_ns = now;
        }
        // the notification, after every byte of the request has landed
        let notify_op = match (plan.direction, plan.notify) {
            (_, KvNotify::None) | (KvDirection::Push, KvNotify::Imm) => None,
            (KvDirection::Push, KvNotify::Send) | (KvDirection::Pull, KvNotify::Send) => {
                Some((SendOp::SendImm(request), NOTIFY_MSG_BYTES))
            }
            (KvDirection::Pull, KvNotify::Imm) => Some((SendOp::WriteImm(request), 0)),
        };
        if let Some((op, len)) = notify_op {
            let q = 0;
            buffer.write_from(plan.notify_offset as usize, &request.to_le_bytes())?;
            lane.qps[q].post_send(&WorkRequest {
                wr_id: WrId::new(q, lane.next_wr[q]).0,
                op,
                local: buffer,
                local_offset: plan.notify_offset as usize,
                len,
                remote_addr: plan.remote.addr + plan.notify_offset,
                rkey: plan.remote.rkey,
                signaled: true,
            })?;
            lane.next_wr[q] += 1;
            window.posted(q, 1);
            times.notify_done_ns = wait_sends(
                lane,
                &mut window,
                plan.stall_timeout,
                request,
                "notification",
                &mut stash,
            )?;
        }
        if wants_verdict {
            let mismatches = wait_verdict(lane, &mut window, buffer, plan, request, &mut stash)?;
            times.verify_mismatches = Some(mismatches);
        } else if plan.verify {
            times.verify_mismatches = Some(verify_and_clear(buffer, &request_plan)?);
        }
        out.requests.push(times);
        next_start = monotonic_ns() + plan.gap_ns;
    }
    Ok(())
}

/// Waits until every send WR in flight completed; returns when. Receive
/// completions that arrive meanwhile (the peer may answer before our own
/// send's completion is polled) go to `stash`, never lost.
fn wait_sends(
    lane: &mut Lane,
    window: &mut Window,
    timeout: Duration,
    request: u32,
    what: &str,
    stash: &mut Vec<Completion>,
) -> Result<u64, EngineError> {
    let mut last_progress = monotonic_ns();
    while window.total_in_flight() > 0 {
        let got = poll_ok(lane, window)?;
        let now = monotonic_ns();
        if got == 0 {
            lane.check_abort()?;
            if now.saturating_sub(last_progress) > timeout.as_nanos() as u64 {
                return Err(stall(
                    format!("request {request}: waiting for the {what} to complete"),
                    timeout,
                    window,
                ));
            }
            lane.wait_idle(LONGEST_SLEEP)?;
            continue;
        }
        lane.idle.reset();
        last_progress = now;
        for c in &lane.completions {
            if is_receive(c) {
                stash.push(*c);
            } else {
                window.retire(WrId(c.wr_id).qp_index());
            }
        }
    }
    Ok(monotonic_ns())
}

fn is_receive(c: &Completion) -> bool {
    matches!(c.op, CompletionOp::Recv | CompletionOp::RecvWithImm)
}

/// Waits for the decode side's verify verdict of `request` (push with
/// `--verify`): a SEND whose immediate is the mismatch count.
fn wait_verdict(
    lane: &mut Lane,
    window: &mut Window,
    buffer: &RegisteredBuffer,
    plan: &KvRunPlan,
    request: u32,
    stash: &mut Vec<Completion>,
) -> Result<u64, EngineError> {
    let mut last_progress = monotonic_ns();
    loop {
        if let Some(c) = stash.pop() {
            replace_notify_recv(lane, WrId(c.wr_id).qp_index(), buffer, plan.notify_offset)?;
            return Ok(u64::from(c.imm.unwrap_or(u32::MAX)));
        }
        let got = poll_ok(lane, window)?;
        let now = monotonic_ns();
        if got == 0 {
            lane.check_abort()?;
            if now.saturating_sub(last_progress) > plan.stall_timeout.as_nanos() as u64 {
                return Err(stall(
                    format!("request {request}: waiting for the decode side's verify verdict"),
                    plan.stall_timeout,
                    window,
                ));
            }
            lane.wait_idle(LONGEST_SLEEP)?;
            continue;
        }
        lane.idle.reset();
        last_progress = now;
        for c in &lane.completions {
            if is_receive(c) {
                stash.push(*c);
            } else {
                window.retire(WrId(c.wr_id).qp_index());
            }
        }
    }
}

/// The passive side: keeps receives posted, records when each request's
/// notification is complete and, with verify (push), checks the request's
/// pages and answers with the mismatch count. Planning goes through
/// `next_plan` in request order, as on the active side.
pub fn run_kv_passive(
    lane: &mut Lane,
    buffer: &RegisteredBuffer,
    plan: &KvRunPlan,
    next_plan: &mut dyn FnMut(u32) -> Result<RequestPlan, EngineError>,
    stop: &AtomicBool,
    out: &mut KvPassiveTally,
) -> Result<(), EngineError> {
    let cpu_start = thread_cpu_s();
    let result = passive_requests(lane, buffer, plan, next_plan, stop, out);
    out.cpu_s = thread_cpu_s() - cpu_start;
    result
}

fn passive_requests(
    lane: &mut Lane,
    buffer: &RegisteredBuffer,
    plan: &KvRunPlan,
    next_plan: &mut dyn FnMut(u32) -> Result<RequestPlan, EngineError>,
    stop: &AtomicBool,
    out: &mut KvPassiveTally,
) -> Result<(), EngineError> {
    pin(plan.core);
    let qps = lane.qps.len();
    top_up_notify_recvs(lane, buffer, plan.notify_offset)?;
    let mut window = Window::new(qps, plan.tx_depth);
    let mut stash: Vec<Completion> = Vec::new();
    let mut request = 0u32;
    // no notification for this long while one is due: the posting end
    // stalled or died (its own stall timeout, plus one request's modelled
    // layer waits)
    let layer_waits_ns = plan.longest_layer_wait_ns();
    let quiet_limit_ns = plan.stall_timeout.as_nanos() as u64
        + layer_waits_ns.max(plan.request_budget.as_nanos() as u64);
    let started = Instant::now();
    let mut last_notification = monotonic_ns();
    let mut current = if plan.requests > 0 {
        Some(next_plan(0)?)
    } else {
        None
    };
    let expected = |p: &RequestPlan| match (plan.direction, plan.notify) {
        (KvDirection::Push, KvNotify::Imm) => kv_qps_used(p.wrs.len(), qps),
        _ => 1,
    };
    // notifications per request id: the next request's may arrive in the
    // same poll as this one's last
    let mut arrived: std::collections::BTreeMap<u32, usize> = Default::default();
    while request < plan.requests {
        if monotonic_ns().saturating_sub(last_notification) > quiet_limit_ns {
            return Err(EngineError::Stall {
                what: format!(
                    "waiting for the notification of KV request {request} of {} (the posting end stalled or died)",
                    plan.requests
                ),
                waited_s: quiet_limit_ns as f64 / 1e9,
                completed: u64::from(request),
                in_flight: 0,
            });
        }
        if Instant::now() > plan.deadline {
            return Err(EngineError::Stall {
                what: format!(
                    "waiting for the notification of KV request {request} of {} (the trial's time budget is spent)",
                    plan.requests
                ),
                waited_s: started.elapsed().as_secs_f64(),
                completed: u64::from(request),
                in_flight: 0,
            });
        }
        if stop.load(Ordering::Relaxed) {
            break;
        }
        lane.check_abort()?;
        let mut batch = std::mem::take(&mut stash);
        if batch.is_empty() {
            let got = poll_ok(lane, &window)?;
            if got == 0 {
                lane.wait_idle(LONGEST_SLEEP)?;
                continue;
            }
            lane.idle.reset();
            batch.extend_from_slice(&lane.completions);
        }
        let now = monotonic_ns();
        for c in batch {
            let q = WrId(c.wr_id).qp_index();
            match c.op {
                CompletionOp::Recv | CompletionOp::RecvWithImm => {
                    replace_notify_recv(lane, q, buffer, plan.notify_offset)?;
                    let id = c.imm.unwrap_or(u32::MAX);
                    if id < request || id >= plan.requests {
                        return Err(EngineError::Invalid(format!(
                            "a notification for KV request {id} arrived while waiting for request {request} of {}",
                            plan.requests
                        )));
                    }
                    *arrived.entry(id).or_default() += 1;
                }
                _ => window.retire(q),
            }
        }
        while let Some(p) = current.as_ref() {
            if arrived.get(&request).copied().unwrap_or(0) < expected(p) {
                break;
            }
            arrived.remove(&request);
            out.seen.push((request, now));
            last_notification = now;
            if plan.verify && plan.direction == KvDirection::Push {
                let mismatches = verify_and_clear(buffer, p)?;
                let verdict = u32::try_from(mismatches).unwrap_or(u32::MAX - 1);
                lane.qps[0].post_send(&WorkRequest {
                    wr_id: WrId::new(0, lane.next_wr[0]).0,
                    op: SendOp::SendImm(verdict),
                    local: buffer,
                    local_offset: plan.notify_offset as usize,
                    len: NOTIFY_MSG_BYTES,
                    remote_addr: 0,
                    rkey: 0,
                    signaled: true,
                })?;
                lane.next_wr[0] += 1;
                window.posted(0, 1);
                wait_sends(
                    lane,
                    &mut window,
                    plan.stall_timeout,
                    request,
                    "verify verdict",
                    &mut stash,
                )?;
            }
            request += 1;
            current = if request < plan.requests {
                Some(next_plan(request)?)
            } else {
                None
            };
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn qps_used_is_bounded_by_wrs() {
        assert_eq!(kv_qps_used(1, 8), 1);
        assert_eq!(kv_qps_used(4096, 8), 8);
    }

    #[test]
    fn pattern_differs_between_pages() {
        // 32 KiB pages: neighbouring pages start with different bytes
        assert_ne!(kv_pattern_byte(0), kv_pattern_byte(32 << 10));
    }

    #[test]
    fn window_retires_whole_chains() {
        let mut w = Window::new(2, 8);
        w.posted(0, 5);
        w.posted(0, 3);
        assert_eq!(w.free(0), 0);
        w.retire(0);
        assert_eq!(w.free(0), 5);
        assert_eq!(w.completed, 5);
        assert_eq!(w.total_in_flight(), 3);
    }

    #[test]
    fn local_offsets_follow_the_direction() {
        let d = Descriptor {
            layer: 0,
            tensor: 0,
            src_offset: 10,
            dst_offset: 20,
            bytes: 1,
        };
        assert_eq!(local_offset(&d, KvDirection::Push, true), 10);
        assert_eq!(local_offset(&d, KvDirection::Push, false), 20);
        assert_eq!(local_offset(&d, KvDirection::Pull, true), 20);
        assert_eq!(local_offset(&d, KvDirection::Pull, false), 10);
    }
}
