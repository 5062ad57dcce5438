//! Latency trials (test 5.2): one message outstanding at a time, on the
//! first QP of the first lane.
//!
//! Three clocks, named in reports:
//! - `initiator`: post of the first WR → the local completion of the last;
//! - `target`: post → the receive completion at the target (WRITE_WITH_IMM
//!   or SEND), from the target's timestamps and the clock offset;
//! - `pingpong`: half the round trip of message + reply, as ib_write_lat.
//!   For WRITE the reply is detected by polling the last byte of the
//!   buffer, for WRITE_WITH_IMM/SEND by its receive completion.

use std::time::Duration;

use crate::control::{monotonic_ns, BufferKey, Op};
use crate::stats::LatencyHistogram;
use crate::verbs::{CompletionOp, RegisteredBuffer, SendOp, WorkRequest};

use super::bandwidth::pin;
use super::{thread_cpu_s, EngineError, Lane, PollMode, WrId, LONGEST_SLEEP};

/// What a latency trial does.
#[derive(Debug, Clone)]
pub struct LatencyPlan {
    /// The operation.
    pub op: Op,
    /// Message size.
    pub msg_bytes: u64,
    /// Bytes per work request.
    pub wr_bytes: u64,
    /// Iterations (the trial may end earlier on `duration`).
    pub iters: u64,
    /// Optional time limit.
    pub duration: Option<Duration>,
    /// The peer's buffer.
    pub remote: BufferKey,
    /// Error out after this long without progress.
    pub stall_timeout: Duration,
    /// CPU core to pin to.
    pub core: Option<usize>,
}

/// The outcome of a latency or ping-pong trial at the initiator.
#[derive(Debug, Clone, Default)]
pub struct LatencyRun {
    /// Initiator-clock (or ping-pong RTT/2) latencies.
    pub histogram: LatencyHistogram,
    /// Post time of each iteration, CLOCK_MONOTONIC ns (index = iteration).
    pub post_ns: Vec<u64>,
    /// Iterations done.
    pub iterations: u64,
    /// CPU seconds of the thread.
    pub cpu_s: f64,
    /// Wall time of the trial, ns.
    pub elapsed_ns: u64,
}

/// Tag written into the last byte by the initiator (even) and target (odd)
/// in iteration `i` of a WRITE ping-pong. Never 0, so a zeroed buffer never
/// matches, and the two sides' tags of one iteration always differ.
pub(crate) fn pingpong_tag(i: u64, from_target: bool) -> u8 {
    ((2 * i + u64::from(from_target)) % 250) as u8 + 1
}

/// Posts every chunk of one message on QP 0; the last one signalled.
pub(crate) fn post_message(
    lane: &mut Lane,
    buffer: &RegisteredBuffer,
    op: Op,
    msg_bytes: u64,
    wr_bytes: u64,
    remote: &BufferKey,
    imm: u32,
) -> Result<(), EngineError> {
    let chunks = msg_bytes.div_ceil(wr_bytes).max(1);
    for chunk in 0..chunks {
        let last = chunk + 1 == chunks;
        let offset = chunk * wr_bytes;
        let len = wr_bytes.min(msg_bytes - offset);
        let send_op = match op {
            Op::Write => SendOp::Write,
            Op::WriteImm if last => SendOp::WriteImm(imm),
            Op::WriteImm => SendOp::Write,
            Op::Send => SendOp::Send,
            Op::Read => SendOp::Read,
        };
        let seq = lane.next_wr[0];
        lane.qps[0].post_send(&WorkRequest {
            wr_id: WrId::new(0, seq).0,
            op: send_op,
            local: buffer,
            local_offset: offset as usize,
            len: len as u32,
            remote_addr: remote.addr + offset,
            rkey: remote.rkey,
            signaled: last,
        })?;
        lane.next_wr[0] += 1;
    }
    lane.next_msg[0] += 1;
    Ok(())
}

/// What one poll of the lane's CQ brought.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct Polled {
    pub sends_done: u64,
    pub receives: u64,
}

/// Polls once; fails on an error completion; reposts consumed receives.
pub(crate) fn poll_once(
    lane: &mut Lane,
    buffer: &RegisteredBuffer,
    msg_bytes: u64,
    wr_bytes: u64,
) -> Result<Polled, EngineError> {
    let mut polled = Polled::default();
    let got = lane.cq.poll(&mut lane.completions)?;
    for i in 0..got {
        let c = lane.completions[i];
        if !c.is_ok() {
            return Err(EngineError::completion(&c, lane.next_msg[0], 1));
        }
        match c.op {
            CompletionOp::Recv | CompletionOp::RecvWithImm => {
                polled.receives += 1;
                lane.replace_receive(WrId(c.wr_id).qp_index(), buffer, msg_bytes, wr_bytes)?;
            }
            _ => polled.sends_done += 1,
        }
    }
    Ok(polled)
}

fn stall(what: &str, plan: &LatencyPlan, done: u64) -> EngineError {
    EngineError::Stall {
        what: what.into(),
        waited_s: plan.stall_timeout.as_secs_f64(),
        completed: done,
        in_flight: 1,
    }
}

/// Empty polls between clock reads in the latency loops when spinning: the
/// stall and abort checks read the clock, the hot path does not. Yielding
/// or sleeping loops check after every empty poll (a yield or a sleep costs
/// far more than the clock read).
const CHECK_EVERY_POLLS: u32 = 1024;

/// Builds the run's histogram after the loop, off the critical path.
fn histogram_of(samples: &[u64]) -> LatencyHistogram {
    let mut histogram = LatencyHistogram::new();
    for &ns in samples {
        histogram.record(ns);
    }
    histogram
}

/// Runs one latency trial (initiator clock; the target time-stamps its
/// receives on its own for the target clock). Per iteration: one post,
/// polls, and two clock reads (post and completion); samples go to a
/// preallocated vector and into the histogram after the loop.
pub fn run_latency(
    lane: &mut Lane,
    buffer: &RegisteredBuffer,
    plan: &LatencyPlan,
) -> Result<LatencyRun, EngineError> {
    pin(plan.core);
    let mut run = LatencyRun {
        post_ns: Vec::with_capacity(plan.iters as usize),
        ..LatencyRun::default()
    };
    let mut samples = Vec::with_capacity(plan.iters as usize);
    let cpu_start = thread_cpu_s();
    let start = monotonic_ns();
    let end = plan
        .duration
        .map(|d| start + d.as_nanos() as u64)
        .unwrap_or(u64::MAX);
    let stall_ns = plan.stall_timeout.as_nanos() as u64;
    for i in 0..plan.iters {
        let t_post = monotonic_ns();
        if t_post >= end {
            break;
        }
        post_message(
            lane,
            buffer,
            plan.op,
            plan.msg_bytes,
            plan.wr_bytes,
            &plan.remote,
            i as u32,
        )?;
        let mut empty = 0u32;
        loop {
            let polled = poll_once(lane, buffer, plan.msg_bytes, plan.wr_bytes)?;
            if polled.sends_done > 0 {
                samples.push(monotonic_ns() - t_post);
                lane.idle.reset();
                break;
            }
            empty = empty.wrapping_add(1);
            if empty % CHECK_EVERY_POLLS == 0 || lane.idle.mode() != PollMode::Spin {
                lane.check_abort()?;
                if monotonic_ns() - t_post > stall_ns {
                    return Err(stall("waiting for a latency message's completion", plan, i));
                }
            }
            lane.wait_idle(LONGEST_SLEEP)?;
        }
        run.post_ns.push(t_post);
        run.iterations += 1;
    }
    run.cpu_s = thread_cpu_s() - cpu_start;
    run.elapsed_ns = monotonic_ns() - start;
    run.histogram = histogram_of(&samples);
    Ok(run)
}

/// Runs one ping-pong trial as the initiator; the target runs [`super::pong`].
/// Like ib_write_lat, one clock read per iteration: the reply's arrival is
/// the next iteration's post time, and RTT/2 is the difference of two
/// successive reads.
pub fn run_pingpong(
    lane: &mut Lane,
    buffer: &RegisteredBuffer,
    plan: &LatencyPlan,
) -> Result<LatencyRun, EngineError> {
    pin(plan.core);
    let last_byte = (plan.msg_bytes - 1) as usize;
    if plan.op == Op::Write {
        buffer.store_volatile(last_byte, 0)?;
    }
    let mut run = LatencyRun {
        post_ns: Vec::with_capacity(plan.iters as usize),
        ..LatencyRun::default()
    };
    let mut samples = Vec::with_capacity(plan.iters as usize);
    let cpu_start = thread_cpu_s();
    let start = monotonic_ns();
    let stall_ns = plan.stall_timeout.as_nanos() as u64;
    let mut sends_outstanding = 0u64;
    let mut t_post = start;
    for i in 0..plan.iters {
        // a fixed count: the target answers exactly `iters` messages
        let reply_tag = pingpong_tag(i, true);
        if plan.op == Op::Write {
            buffer.store_volatile(last_byte, pingpong_tag(i, false))?;
        }
        post_message(
            lane,
            buffer,
            plan.op,
            plan.msg_bytes,
            plan.wr_bytes,
            &plan.remote,
            i as u32,
        )?;
        sends_outstanding += 1;
        let mut empty = 0u32;
        loop {
            let polled = poll_once(lane, buffer, plan.msg_bytes, plan.wr_bytes)?;
            sends_outstanding -= polled.sends_done.min(sends_outstanding);
            let arrived = match plan.op {
                Op::Write => buffer.load_volatile(last_byte)? == reply_tag,
                _ => polled.receives > 0,
            };
            if arrived {
                break;
            }
            if polled.sends_done > 0 {
                lane.idle.reset();
                continue;
            }
            empty = empty.wrapping_add(1);
            if empty % CHECK_EVERY_POLLS == 0 || lane.idle.mode() != PollMode::Spin {
                lane.check_abort()?;
                if monotonic_ns() - t_post > stall_ns {
                    return Err(stall("waiting for the ping-pong reply", plan, i));
                }
            }
            // a WRITE reply raises no completion here: sleeping on the CQ
            // would miss it, so WRITE ping-pong never sleeps
            if plan.op != Op::Write {
                lane.wait_idle(LONGEST_SLEEP)?;
            } else if lane.idle.mode() != PollMode::Spin {
                std::thread::yield_now();
            }
        }
        let now = monotonic_ns();
        samples.push((now - t_post) / 2);
        run.post_ns.push(t_post);
        run.iterations += 1;
        t_post = now;
    }
    // reap the last send completions so the next trial starts clean
    let drain_start = monotonic_ns();
    while sends_outstanding > 0 {
        let polled = poll_once(lane, buffer, plan.msg_bytes, plan.wr_bytes)?;
        sends_outstanding -= polled.sends_done.min(sends_outstanding);
        if monotonic_ns() - drain_start > stall_ns {
            return Err(stall(
                "draining ping-pong send completions",
                plan,
                run.iterations,
            ));
        }
    }
    run.cpu_s = thread_cpu_s() - cpu_start;
    run.elapsed_ns = monotonic_ns() - start;
    run.histogram = histogram_of(&samples);
    Ok(run)
}
