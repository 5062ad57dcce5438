//! Scheduled transfers (incast, IETF 8.1/8.2): each lane (a sender rank)
//! starts its transfers at given offsets from an agreed start time and
//! times each one from its scheduled start to the completion of its last
//! work request.
//!
//! Transfers of a lane take its QPs in turn. Every WR is signalled:
//! transfers are large (MBs), so a completion per WR costs nothing, and it
//! gives each transfer an exact end. A transfer whose QP window is full
//! when it is due starts late; its `post_ns` shows by how much.

use std::collections::VecDeque;
use std::time::Duration;

use crate::control::{monotonic_ns, BufferKey};
use crate::verbs::{RegisteredBuffer, SendOp, WorkRequest, MAX_CHAIN};

use super::bandwidth::{on_lanes, wait_until};
use super::{thread_cpu_s, EngineError, Lane, QpSet, WrId, LONGEST_SLEEP};

/// What a burst trial does.
#[derive(Debug, Clone)]
pub struct BurstPlan {
    /// Bytes per transfer.
    pub msg_bytes: u64,
    /// Bytes per work request.
    pub wr_bytes: u64,
    /// Outstanding WRs per QP.
    pub tx_depth: u32,
    /// CLOCK_MONOTONIC ns of the common start.
    pub start_at_ns: u64,
    /// Per lane: offsets (ns after the start) of its transfers, ascending.
    pub offsets_ns: Vec<Vec<u64>>,
    /// Per lane: the receiver's buffer.
    pub lane_remotes: Vec<BufferKey>,
    /// Error out after this long without a completion.
    pub stall_timeout: Duration,
    /// CPU cores (lane i → cores[i % len]); empty = no pinning.
    pub cores: Vec<usize>,
}

/// The times of one transfer, CLOCK_MONOTONIC ns.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TransferTimes {
    /// When it was due.
    pub scheduled_ns: u64,
    /// When its first WR was posted.
    pub post_ns: u64,
    /// When its last WR completed.
    pub done_ns: u64,
}

/// One lane's account of a burst trial.
#[derive(Debug, Clone, Default)]
pub struct BurstTally {
    /// Every transfer, in schedule order.
    pub transfers: Vec<TransferTimes>,
    /// Payload bytes completed.
    pub bytes: u64,
    /// CPU seconds of the lane thread.
    pub cpu_s: f64,
}

/// Runs the scheduled transfers of every lane, one pinned thread per lane.
pub fn run_bursts(
    set: &mut QpSet,
    buffer: &RegisteredBuffer,
    plan: &BurstPlan,
) -> Result<Vec<BurstTally>, EngineError> {
    if plan.offsets_ns.len() != set.lanes.len() || plan.lane_remotes.len() != set.lanes.len() {
        return Err(EngineError::Invalid(format!(
            "burst plan for {} lanes given to {} lanes",
            plan.offsets_ns.len(),
            set.lanes.len()
        )));
    }
    on_lanes(set, &plan.cores, |i, lane| {
        burst_lane(lane, buffer, plan, i)
    })
}

fn burst_lane(
    lane: &mut Lane,
    buffer: &RegisteredBuffer,
    plan: &BurstPlan,
    lane_index: usize,
) -> Result<BurstTally, EngineError> {
    let offsets = &plan.offsets_ns[lane_index];
    let remote = plan.lane_remotes[lane_index];
    let qps = lane.qps.len();
    if qps == 0 || offsets.is_empty() {
        return Ok(BurstTally::default());
    }
    let chunks = plan.msg_bytes.div_ceil(plan.wr_bytes).max(1);
    let tx_depth = u64::from(plan.tx_depth.max(1));
    let mut times: Vec<TransferTimes> = offsets
        .iter()
        .map(|&o| TransferTimes {
            scheduled_ns: plan.start_at_ns + o,
            ..TransferTimes::default()
        })
        .collect();
    let mut posted_chunks = vec![0u64; times.len()];
    let mut done_chunks = vec![0u64; times.len()];
    // per QP: the transfer index of each WR in flight, in post order
    let mut inflight: Vec<VecDeque<usize>> = vec![VecDeque::new(); qps];
    let mut next_due = 0usize; // transfers below this are due (in schedule order)
    let mut finished = 0usize;
    let mut bytes = 0u64;
    let cpu_start = thread_cpu_s();
    wait_until(plan.start_at_ns);
    let mut last_progress_ns = monotonic_ns();
    let mut chain: Vec<WorkRequest<'_>> = Vec::with_capacity(MAX_CHAIN);
    while finished < times.len() {
        let now = monotonic_ns();
        while next_due < times.len() && times[next_due].scheduled_ns <= now {
            next_due += 1;
        }
        for t in 0..next_due {
            if posted_chunks[t] == chunks {
                continue;
            }
            let q = t % qps;
            // the transfer's WRs the window has room for: one chain, one doorbell
            chain.clear();
            while posted_chunks[t] < chunks
                && (inflight[q].len() + chain.len()) < tx_depth as usize
                && chain.len() < MAX_CHAIN
            {
                let chunk = posted_chunks[t];
                let offset = chunk * plan.wr_bytes;
                let len = plan.wr_bytes.min(plan.msg_bytes - offset);
                chain.push(WorkRequest {
                    wr_id: WrId::new(q, lane.next_wr[q] + chain.len() as u64).0,
                    op: SendOp::Write,
                    local: buffer,
                    local_offset: offset as usize,
                    len: len as u32,
                    remote_addr: remote.addr + offset,
                    rkey: remote.rkey,
                    signaled: true,
                });
                posted_chunks[t] += 1;
            }
            if chain.is_empty() {
                continue;
            }
            let first = chain.len() as u64 == posted_chunks[t];
            lane.qps[q].post_send_chain(&chain)?;
            if first {
                times[t].post_ns = monotonic_ns();
            }
            lane.next_wr[q] += chain.len() as u64;
            inflight[q].extend(std::iter::repeat_n(t, chain.len()));
        }
        let got = lane.cq.poll(&mut lane.completions)?;
        let now = monotonic_ns();
        if got == 0 {
            lane.check_abort()?;
            let waiting = inflight.iter().any(|f| !f.is_empty());
            if waiting
                && now.saturating_sub(last_progress_ns) > plan.stall_timeout.as_nanos() as u64
            {
                return Err(EngineError::Stall {
                    what: format!("incast transfers of {} B", plan.msg_bytes),
                    waited_s: plan.stall_timeout.as_secs_f64(),
                    completed: finished as u64,
                    in_flight: inflight.iter().map(|f| f.len() as u64).sum(),
                });
            }
            if !waiting {
                last_progress_ns = now;
            }
            // never sleep past the next transfer's due time
            let cap = times.get(next_due).map_or(LONGEST_SLEEP, |t| {
                Duration::from_nanos(t.scheduled_ns.saturating_sub(now))
            });
            lane.wait_idle(cap)?;
            continue;
        }
        lane.idle.reset();
        last_progress_ns = now;
        for c in lane.completions.iter() {
            let q = WrId(c.wr_id).qp_index();
            if !c.is_ok() {
                return Err(EngineError::completion(
                    c,
                    finished as u64,
                    inflight[q].len() as u64,
                ));
            }
            let Some(t) = inflight[q].pop_front() else {
                continue;
            };
            done_chunks[t] += 1;
            if done_chunks[t] == chunks {
                times[t].done_ns = now;
                bytes += plan.msg_bytes;
                finished += 1;
            }
        }
    }
    Ok(BurstTally {
        transfers: times,
        bytes,
        cpu_s: thread_cpu_s() - cpu_start,
    })
}
