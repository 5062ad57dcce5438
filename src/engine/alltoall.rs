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
//!
//! With combine (DeepEP's second timed phase), each iteration goes on once
//! the dispatch is done: every rank returns the expert outputs of the
//! tokens it received to their source ranks — the transposed matrix — on
//! the same QPs, immediates flagged with [`COMBINE_FLAG`]. A rank's
//! messages of a phase are posted as one WR chain per QP (one doorbell).

use std::time::Duration;

use crate::control::{monotonic_ns, BufferKey};
use crate::stats::{RateSeries, SeriesClock};
use crate::verbs::{CompletionOp, RegisteredBuffer, SendOp, WorkRequest};

use super::bandwidth::{panic_text, pin, wait_until};
use super::{thread_cpu_s, EngineError, Lane, PollMode, WrId, LONGEST_SLEEP};

/// Receives kept posted per receiving QP: a peer can be at most a couple of
/// iterations ahead of this rank.
pub const DISPATCH_RECV_DEPTH: u32 = 8;

/// Set in the immediate of a combine message (the low bits: the iteration).
pub const COMBINE_FLAG: u32 = 1 << 31;

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
    /// Dispatch bytes per iteration on this QP.
    pub bytes: u64,
    /// Combine bytes per iteration on this QP (what the peer dispatched to
    /// this rank on the reverse flow; 0 without combine).
    pub combine_bytes: u64,
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
    /// Each iteration also runs the combine phase.
    pub combine: bool,
    /// Modelled compute after every iteration (a decode step's per-layer
    /// work), ns: the rank waits this long after its iteration is done
    /// before it starts the next; 0: none.
    pub gap_ns: u64,
    /// Bin every send completion (a QP's part of a phase) on this clock;
    /// None: no series.
    pub series: Option<SeriesClock>,
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
    /// The combine phase: started posting (0 without combine).
    pub combine_start_ns: u64,
    /// The combine phase: every send completed and every output landed.
    pub combine_done_ns: u64,
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
    /// Bytes and messages of the rank's sends per bin (when asked).
    pub series: Option<RateSeries>,
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

/// Posts one phase of iteration `iteration` on every sending QP, one chain
/// per QP; returns the signalled WRs to wait for.
fn post_phase(
    rank: &mut RankDispatch<'_>,
    plan: &AllToAllPlan,
    imm: u32,
    combine: bool,
) -> Result<u64, EngineError> {
    let send_buffer: &RegisteredBuffer = rank.send_buffer;
    let mut signalled = 0;
    let mut chain: Vec<WorkRequest<'_>> = Vec::with_capacity(4);
    for q in 0..rank.payloads.len() {
        let payload = rank.payloads[q];
        let bytes = if combine {
            payload.combine_bytes
        } else {
            payload.bytes
        };
        let chunks = bytes.div_ceil(plan.wr_bytes).max(1);
        chain.clear();
        for chunk in 0..chunks {
            let offset = chunk * plan.wr_bytes;
            let len = plan.wr_bytes.min(bytes - offset.min(bytes));
            let last = chunk + 1 == chunks;
            let op = match (plan.op, last) {
                (DispatchOp::WriteImm, true) => SendOp::WriteImm(imm),
                (DispatchOp::WriteImm, false) => SendOp::Write,
                (DispatchOp::Send, _) => SendOp::SendImm(imm),
            };
            chain.push(WorkRequest {
                wr_id: WrId::new(q, rank.send.next_wr[q] + chunk).0,
                op,
                local: send_buffer,
                local_offset: 0,
                len: len as u32,
                remote_addr: payload.remote.addr + offset,
                rkey: payload.remote.rkey,
                signaled: last,
            });
        }
        rank.send.qps[q].post_send_chain(&chain)?;
        rank.send.next_wr[q] += chunks;
        signalled += 1;
    }
    Ok(signalled)
}

/// Phases a rank may have arrivals for at once: its own and the next one
/// (a peer cannot finish a phase without this rank's messages of it).
const PHASE_RING: usize = 4;

/// Where a rank stands between phases.
struct PhaseState {
    /// Receive completions per phase, indexed by phase % [`PHASE_RING`].
    arrived: [usize; PHASE_RING],
    /// Per receiving QP: messages received, to name a silent peer.
    received_on: Vec<u64>,
}

/// The global index of a phase: iteration·phases + (combine as 1).
fn phase_index(imm: u32, combine_on: bool) -> u64 {
    let iteration = u64::from(imm & !COMBINE_FLAG);
    if combine_on {
        2 * iteration + u64::from(imm & COMBINE_FLAG != 0)
    } else {
        iteration
    }
}

/// Runs one phase: posts, then waits until every send completed and every
/// incoming message of the phase landed; returns `(start, posted, done)`.
fn run_phase(
    rank: &mut RankDispatch<'_>,
    plan: &AllToAllPlan,
    iteration: u32,
    combine: bool,
    state: &mut PhaseState,
    tally: &mut RankDispatchTally,
) -> Result<(u64, u64, u64), EngineError> {
    let recv_qps = rank.recv.qps.len();
    let imm = if combine {
        iteration | COMBINE_FLAG
    } else {
        iteration
    };
    let phase = phase_index(imm, plan.combine);
    let slot = (phase % PHASE_RING as u64) as usize;
    let stall_ns = plan.stall_timeout.as_nanos() as u64;
    let start_ns = monotonic_ns();
    let mut sends_left = post_phase(rank, plan, imm, combine)?;
    let posted_ns = monotonic_ns();
    let mut last_progress = posted_ns;
    loop {
        let have = state.arrived[slot];
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
                if let Some(series) = tally.series.as_mut() {
                    let payload = rank.payloads[WrId(c.wr_id).qp_index()];
                    let bytes = if combine {
                        payload.combine_bytes
                    } else {
                        payload.bytes
                    };
                    series.record(monotonic_ns(), bytes, 1);
                }
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
                let theirs = c.imm.map_or(phase, |imm| phase_index(imm, plan.combine));
                state.arrived[(theirs % PHASE_RING as u64) as usize] += 1;
                state.received_on[q] += 1;
                tally.messages_received += 1;
                rank.recv.recv_seq[q] += 1;
                rank.recv.recv_posted[q] -= 1;
                post_receive(rank, q)?;
            }
        }
        if progress {
            rank.send.idle.reset();
            last_progress = monotonic_ns();
            continue;
        }
        if rank.recv.abort.is_raised() {
            rank.recv.check_abort()?;
        }
        let now = monotonic_ns();
        if now - last_progress > stall_ns {
            let mut silent: Vec<u32> = (0..recv_qps)
                .filter(|&q| state.received_on[q] <= phase)
                .filter_map(|q| rank.recv_peers.get(q).copied())
                .collect();
            silent.dedup();
            let what = if combine { "combine" } else { "dispatch" };
            return Err(EngineError::Stall {
                what: format!(
                    "rank {}: AllToAll iteration {iteration} ({what}): {have} of {recv_qps} incoming payloads (nothing yet from rank(s) {silent:?}), {sends_left} sends unfinished",
                    rank.rank
                ),
                waited_s: plan.stall_timeout.as_secs_f64(),
                completed: u64::from(iteration),
                in_flight: sends_left,
            });
        }
        // both CQs: a send completion or an arrival wakes the rank
        let send = &mut *rank.send;
        send.idle
            .wait(&mut [&mut send.cq, &mut rank.recv.cq], LONGEST_SLEEP)?;
    }
    state.arrived[slot] = 0;
    Ok((start_ns, posted_ns, monotonic_ns()))
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
        series: plan.series.map(RateSeries::new),
        ..RankDispatchTally::default()
    };
    let mut state = PhaseState {
        arrived: [0; PHASE_RING],
        received_on: vec![0; recv_qps],
    };
    let bytes_per_iteration: u64 = rank
        .payloads
        .iter()
        .map(|p| p.bytes + if plan.combine { p.combine_bytes } else { 0 })
        .sum();
    let cpu_start = thread_cpu_s();
    wait_until(plan.start_at_ns);
    for iteration in 0..plan.iterations {
        if plan.period_ns > 0 {
            wait_until(plan.start_at_ns + u64::from(iteration) * plan.period_ns);
        }
        let (start_ns, posted_ns, done_ns) =
            run_phase(&mut rank, plan, iteration, false, &mut state, &mut tally)?;
        let (combine_start_ns, combine_done_ns) = if plan.combine {
            let (start, _, done) =
                run_phase(&mut rank, plan, iteration, true, &mut state, &mut tally)?;
            (start, done)
        } else {
            (0, 0)
        };
        tally.bytes_sent += bytes_per_iteration;
        if plan.gap_ns > 0 {
            let done = if plan.combine {
                combine_done_ns
            } else {
                done_ns
            };
            model_compute(done + plan.gap_ns, rank.send.idle.mode());
        }
        tally.iterations.push(IterationTimes {
            start_ns,
            posted_ns,
            done_ns,
            combine_start_ns,
            combine_done_ns,
        });
    }
    tally.cpu_s = thread_cpu_s() - cpu_start;
    Ok(tally)
}

/// Waits until `until_ns` as a modelled compute step: spinning in spin
/// mode (a busy accelerator's host thread), else sleeping for longer waits
/// and yielding for short ones, so the core stays with the other ranks.
fn model_compute(until_ns: u64, mode: PollMode) {
    loop {
        let now = monotonic_ns();
        if now >= until_ns {
            return;
        }
        let left = until_ns - now;
        match mode {
            PollMode::Spin => std::hint::spin_loop(),
            _ if left > 200_000 => std::thread::sleep(Duration::from_nanos(left - 100_000)),
            _ => std::thread::yield_now(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn phases_interleave_dispatch_and_combine() {
        assert_eq!(phase_index(0, true), 0);
        assert_eq!(phase_index(COMBINE_FLAG, true), 1);
        assert_eq!(phase_index(7, true), 14);
        assert_eq!(phase_index(7 | COMBINE_FLAG, true), 15);
        assert_eq!(phase_index(7, false), 7);
    }
}
