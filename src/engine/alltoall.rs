//! AllToAll dispatch (IETF 7.1–7.3): every rank sends a payload to every
//! other rank and waits until it has every incoming payload and its own
//! sends completed — one MoE layer's dispatch. Then the next iteration.
//!
//! Each rank is one thread owning two lanes: its sending QPs (one or more
//! per peer) and its receiving QPs. A payload to a peer is split over the
//! peer's QPs; on each QP the iteration's last WR carries an immediate (the
//! iteration number): WRITE_WITH_IMM into the peer's pre-registered slot, or
//! SEND_WITH_IMM into a posted receive. A receiver therefore knows, per
//! iteration, when every QP's part has landed, without polling memory.
//! Zero-byte payloads are still sent, so every iteration has the same
//! completion count whatever the routing gave each pair.

use std::collections::BTreeMap;
use std::time::Duration;

use crate::control::{monotonic_ns, BufferKey};
use crate::verbs::{CompletionOp, RegisteredBuffer, SendOp, WorkRequest};

use super::bandwidth::{panic_text, pin, wait_until};
use super::{thread_cpu_s, EngineError, Lane, WrId};

/// Receives kept posted per receiving QP: a peer can be at most a couple of
/// iterations ahead of this rank.
pub const DISPATCH_RECV_DEPTH: u32 = 8;

/// The dispatch primitive.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DispatchOp {
    /// One-sided PUT with immediate into the peer's slot.
    WriteImm,
    /// Two-sided SEND with immediate into a posted receive.
    Send,
}

/// One sending QP's share of every iteration.
#[derive(Debug, Clone, Copy)]
pub struct QpPayload {
    /// Bytes per iteration on this QP.
    pub bytes: u64,
    /// Where they land at the peer (its slot, this QP's part).
    pub remote: BufferKey,
}

/// One rank's thread: its two lanes, buffers and payloads.
#[derive(Debug)]
pub struct RankDispatch<'a> {
    /// The rank's sending QPs.
    pub send: &'a mut Lane,
    /// The rank's receiving QPs.
    pub recv: &'a mut Lane,
    /// Source of every payload.
    pub send_buffer: &'a RegisteredBuffer,
    /// Receive buffer (SEND lands here).
    pub recv_buffer: &'a RegisteredBuffer,
    /// Per sending QP, in lane order.
    pub payloads: Vec<QpPayload>,
    /// Per receiving QP: `(offset, len)` in `recv_buffer` for SEND receives.
    pub recv_slots: Vec<(usize, u32)>,
    /// This rank's global number (named in errors).
    pub rank: u32,
    /// Per receiving QP: the rank that sends on it (named when it stalls).
    pub recv_peers: Vec<u32>,
    /// CPU core to pin to.
    pub core: Option<usize>,
}

/// What an AllToAll trial does.
#[derive(Debug, Clone)]
pub struct AllToAllPlan {
    /// The primitive.
    pub op: DispatchOp,
    /// Iterations (dispatches) in the trial.
    pub iterations: u32,
    /// Largest bytes per WR (WRITE payloads above are split; SEND must fit).
    pub wr_bytes: u64,
    /// CLOCK_MONOTONIC ns of the common start of iteration 0.
    pub start_at_ns: u64,
    /// Error out after this long without progress.
    pub stall_timeout: Duration,
    /// Iteration t starts no earlier than start + t·period (0: back to back):
    /// periodic dispatches, one per MoE layer, beside other traffic (7.4).
    pub period_ns: u64,
}

/// One iteration of one rank, CLOCK_MONOTONIC ns.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct IterationTimes {
    /// The rank started posting.
    pub start_ns: u64,
    /// Its last send was posted.
    pub posted_ns: u64,
    /// Every send completed and every incoming payload landed.
    pub done_ns: u64,
}

/// One rank's account of a trial.
#[derive(Debug, Clone, Default)]
pub struct RankDispatchTally {
    /// Every iteration.
    pub iterations: Vec<IterationTimes>,
    /// Payload bytes sent (all iterations).
    pub bytes_sent: u64,
    /// Receive completions counted (all iterations).
    pub messages_received: u64,
    /// CPU seconds of the rank's thread.
    pub cpu_s: f64,
}

/// Runs the trial on every rank, one pinned thread per rank.
pub fn run_alltoall(
    ranks: Vec<RankDispatch<'_>>,
    plan: &AllToAllPlan,
) -> Result<Vec<RankDispatchTally>, EngineError> {
    std::thread::scope(|scope| {
        let handles: Vec<_> = ranks
            .into_iter()
            .map(|rank| {
                scope.spawn(move || {
                    pin(rank.core);
                    rank_loop(rank, plan)
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().map_err(|p| EngineError::Panic(panic_text(&p)))?)
            .collect()
    })
}

fn post_receive(rank: &mut RankDispatch<'_>, q: usize) -> Result<(), EngineError> {
    let (offset, len) = rank.recv_slots.get(q).copied().unwrap_or((0, 0));
    let seq = rank.recv.recv_seq[q] + u64::from(rank.recv.recv_posted[q]);
    rank.recv.qps[q].post_recv(WrId::new(q, seq).0, rank.recv_buffer, offset, len)?;
    rank.recv.recv_posted[q] += 1;
    Ok(())
}

/// Posts iteration `iteration` on every sending QP; returns the signalled
/// WRs to wait for.
fn post_iteration(
    rank: &mut RankDispatch<'_>,
    plan: &AllToAllPlan,
    iteration: u32,
) -> Result<u64, EngineError> {
    let mut signalled = 0;
    for q in 0..rank.payloads.len() {
        let payload = rank.payloads[q];
        let chunks = payload.bytes.div_ceil(plan.wr_bytes).max(1);
        for chunk in 0..chunks {
            let offset = chunk * plan.wr_bytes;
            let len = plan.wr_bytes.min(payload.bytes - offset.min(payload.bytes));
            let last = chunk + 1 == chunks;
            let op = match (plan.op, last) {
                (DispatchOp::WriteImm, true) => SendOp::WriteImm(iteration),
                (DispatchOp::WriteImm, false) => SendOp::Write,
                (DispatchOp::Send, _) => SendOp::SendImm(iteration),
            };
            let seq = rank.send.next_wr[q];
            rank.send.qps[q].post_send(&WorkRequest {
                wr_id: WrId::new(q, seq).0,
                op,
                local: rank.send_buffer,
                local_offset: 0,
                len: len as u32,
                remote_addr: payload.remote.addr + offset,
                rkey: payload.remote.rkey,
                signaled: last,
            })?;
            rank.send.next_wr[q] += 1;
        }
        signalled += 1;
    }
    Ok(signalled)
}

fn rank_loop(
    mut rank: RankDispatch<'_>,
    plan: &AllToAllPlan,
) -> Result<RankDispatchTally, EngineError> {
    let recv_qps = rank.recv.qps.len();
    for q in 0..recv_qps {
        while rank.recv.recv_posted[q] < DISPATCH_RECV_DEPTH {
            post_receive(&mut rank, q)?;
        }
    }
    let mut tally = RankDispatchTally {
        iterations: Vec::with_capacity(plan.iterations as usize),
        ..RankDispatchTally::default()
    };
    // receive completions per iteration (peers may run one or two ahead)
    let mut arrived: BTreeMap<u32, usize> = BTreeMap::new();
    // per receiving QP: iterations received, to name a silent peer
    let mut received_on = vec![0u64; recv_qps];
    let bytes_per_iteration: u64 = rank.payloads.iter().map(|p| p.bytes).sum();
    let cpu_start = thread_cpu_s();
    let stall_ns = plan.stall_timeout.as_nanos() as u64;
    wait_until(plan.start_at_ns);
    for iteration in 0..plan.iterations {
        if plan.period_ns > 0 {
            wait_until(plan.start_at_ns + u64::from(iteration) * plan.period_ns);
        }
        let start_ns = monotonic_ns();
        let mut sends_left = post_iteration(&mut rank, plan, iteration)?;
        tally.bytes_sent += bytes_per_iteration;
        let posted_ns = monotonic_ns();
        let mut last_progress = posted_ns;
        loop {
            let have = arrived.get(&iteration).copied().unwrap_or(0);
            if sends_left == 0 && have >= recv_qps {
                break;
            }
            let mut progress = false;
            if sends_left > 0 && rank.send.cq.poll(&mut rank.send.completions)? > 0 {
                progress = true;
                for c in &rank.send.completions {
                    if !c.is_ok() {
                        return Err(EngineError::completion(c, u64::from(iteration), sends_left));
                    }
                    sends_left = sends_left.saturating_sub(1);
                }
            }
            if rank.recv.cq.poll(&mut rank.recv.completions)? > 0 {
                progress = true;
                for i in 0..rank.recv.completions.len() {
                    let c = rank.recv.completions[i];
                    if !c.is_ok() {
                        return Err(EngineError::completion(&c, u64::from(iteration), 0));
                    }
                    if !matches!(c.op, CompletionOp::Recv | CompletionOp::RecvWithImm) {
                        continue;
                    }
                    let q = WrId(c.wr_id).qp_index();
                    *arrived.entry(c.imm.unwrap_or(iteration)).or_default() += 1;
                    received_on[q] += 1;
                    tally.messages_received += 1;
                    rank.recv.recv_seq[q] += 1;
                    rank.recv.recv_posted[q] -= 1;
                    post_receive(&mut rank, q)?;
                }
            }
            let now = monotonic_ns();
            if progress {
                last_progress = now;
            } else if rank.recv.abort.is_raised() {
                rank.recv.check_abort()?;
            } else if now - last_progress > stall_ns {
                let mut silent: Vec<u32> = (0..recv_qps)
                    .filter(|&q| received_on[q] <= u64::from(iteration))
                    .filter_map(|q| rank.recv_peers.get(q).copied())
                    .collect();
                silent.dedup();
                return Err(EngineError::Stall {
                    what: format!(
                        "rank {}: AllToAll iteration {iteration}: {have} of {recv_qps} incoming payloads (nothing yet from rank(s) {silent:?}), {sends_left} sends unfinished",
                        rank.rank
                    ),
                    waited_s: plan.stall_timeout.as_secs_f64(),
                    completed: u64::from(iteration),
                    in_flight: sends_left,
                });
            }
        }
        arrived.remove(&iteration);
        tally.iterations.push(IterationTimes {
            start_ns,
            posted_ns,
            done_ns: monotonic_ns(),
        });
    }
    tally.cpu_s = thread_cpu_s() - cpu_start;
    Ok(tally)
}
