//! The target side: a receive loop that keeps receives posted, counts and
//! time-stamps them (for SEND and WRITE_WITH_IMM), and the ping-pong
//! responder. A WRITE target is passive: its CPU stays idle, which is the
//! point of one-sided transfers.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use crate::control::{monotonic_ns, BufferKey, Op};
use crate::verbs::{CompletionOp, RegisteredBuffer};

use super::bandwidth::{panic_text, pin};
use super::error::completion_hint;
use super::latency::{pingpong_tag, poll_once, post_message};
use super::{thread_cpu_s, EngineError, Lane, PollMode, WrId, LONGEST_SLEEP};

/// What the receive loop does.
#[derive(Debug, Clone)]
pub struct ReceivePlan {
    /// Message size.
    pub msg_bytes: u64,
    /// Bytes per work request.
    pub wr_bytes: u64,
    /// Record `(imm or index, time)` of each receive (latency mode).
    pub record_times: bool,
    /// Error out after this long without a receive once the end is known.
    pub stall_timeout: Duration,
    /// CPU core to pin to.
    pub core: Option<usize>,
}

/// What the receive loop saw.
#[derive(Debug, Clone, Default)]
pub struct ReceiveTally {
    /// Receive completions.
    pub wrs: u64,
    /// Bytes in receive completions.
    pub bytes: u64,
    /// `(immediate or receive index, CLOCK_MONOTONIC ns)`.
    pub times: Vec<(u32, u64)>,
    /// CPU seconds of the loop thread.
    pub cpu_s: f64,
    /// The failure, if any.
    pub error: Option<String>,
}

/// A running receive loop; owns the lane until [`ReceiveLoop::finish`].
#[derive(Debug)]
pub struct ReceiveLoop {
    handle: JoinHandle<(Lane, ReceiveTally)>,
    expected: Arc<AtomicU64>,
    abort: Arc<AtomicBool>,
}

impl ReceiveLoop {
    /// Starts polling `lane` on a thread of its own.
    pub fn start(mut lane: Lane, buffer: Arc<RegisteredBuffer>, plan: ReceivePlan) -> ReceiveLoop {
        let expected = Arc::new(AtomicU64::new(u64::MAX));
        let abort = Arc::new(AtomicBool::new(false));
        let (exp, stop) = (Arc::clone(&expected), Arc::clone(&abort));
        let handle = std::thread::spawn(move || {
            pin(plan.core);
            let tally = receive_loop(&mut lane, &buffer, &plan, &exp, &stop);
            (lane, tally)
        });
        ReceiveLoop {
            handle,
            expected,
            abort,
        }
    }

    /// Tells the loop how many receives the trial had, waits for them (at
    /// most the stall timeout without progress) and returns the lane.
    pub fn finish(self, expected: u64) -> Result<(Lane, ReceiveTally), EngineError> {
        self.expected.store(expected, Ordering::Release);
        self.handle
            .join()
            .map_err(|p| EngineError::Panic(panic_text(&p)))
    }

    /// Stops the loop at once (the initiator went away).
    pub fn abort(self) -> Option<Lane> {
        self.abort.store(true, Ordering::Release);
        self.handle.join().ok().map(|(lane, _)| lane)
    }
}

fn receive_loop(
    lane: &mut Lane,
    buffer: &RegisteredBuffer,
    plan: &ReceivePlan,
    expected: &AtomicU64,
    abort: &AtomicBool,
) -> ReceiveTally {
    let mut tally = ReceiveTally::default();
    let cpu_start = thread_cpu_s();
    let mut last_progress = monotonic_ns();
    let stall_ns = plan.stall_timeout.as_nanos() as u64;
    let mut index = 0u32;
    loop {
        if tally.wrs >= expected.load(Ordering::Acquire) || abort.load(Ordering::Acquire) {
            break;
        }
        let got = match lane.cq.poll(&mut lane.completions) {
            Ok(got) => got,
            Err(err) => {
                tally.error = Some(err.to_string());
                break;
            }
        };
        let now = monotonic_ns();
        if got == 0 {
            if let Some(reason) = lane.abort.reason() {
                tally.error = Some(format!("stopped: {reason}"));
                break;
            }
            let end_known = expected.load(Ordering::Acquire) != u64::MAX;
            if end_known && now - last_progress > stall_ns {
                tally.error = Some(format!(
                    "the target saw {} of {} receives and nothing more for {:.1} s",
                    tally.wrs,
                    expected.load(Ordering::Acquire),
                    plan.stall_timeout.as_secs_f64()
                ));
                break;
            }
            if let Err(err) = lane.wait_idle(LONGEST_SLEEP) {
                tally.error = Some(err.to_string());
                break;
            }
            continue;
        }
        lane.idle.reset();
        last_progress = now;
        for i in 0..got {
            let c = lane.completions[i];
            if !c.is_ok() {
                tally.error = Some(format!(
                    "QP {}: receive failed with '{}' (status {}){}",
                    c.qp_num,
                    c.status_text(),
                    c.status,
                    completion_hint(c.status)
                ));
                tally.cpu_s = thread_cpu_s() - cpu_start;
                return tally;
            }
            if !matches!(c.op, CompletionOp::Recv | CompletionOp::RecvWithImm) {
                continue;
            }
            tally.wrs += 1;
            tally.bytes += u64::from(c.byte_len);
            if plan.record_times {
                tally.times.push((c.imm.unwrap_or(index), now));
                index = index.wrapping_add(1);
            }
            if let Err(err) = lane.replace_receive(
                WrId(c.wr_id).qp_index(),
                buffer,
                plan.msg_bytes,
                plan.wr_bytes,
            ) {
                tally.error = Some(err.to_string());
                return tally;
            }
        }
    }
    tally.cpu_s = thread_cpu_s() - cpu_start;
    tally
}

/// What the ping-pong responder does.
#[derive(Debug, Clone)]
pub struct PongPlan {
    /// The operation (the reply uses the same).
    pub op: Op,
    /// Message size.
    pub msg_bytes: u64,
    /// Bytes per work request.
    pub wr_bytes: u64,
    /// Messages to answer.
    pub iters: u64,
    /// The initiator's buffer.
    pub remote: BufferKey,
    /// Error out after this long without a message.
    pub stall_timeout: Duration,
}

/// The ping-pong responder: answers `iters` messages on QP 0, each as soon
/// as it lands, into the initiator's buffer `remote`.
pub fn pong(
    lane: &mut Lane,
    buffer: &RegisteredBuffer,
    plan: &PongPlan,
) -> Result<f64, EngineError> {
    let PongPlan {
        op,
        msg_bytes,
        wr_bytes,
        iters,
        ref remote,
        stall_timeout,
    } = *plan;
    let cpu_start = thread_cpu_s();
    let last_byte = (msg_bytes - 1) as usize;
    let stall_ns = stall_timeout.as_nanos() as u64;
    let mut sends_outstanding = 0u64;
    for i in 0..iters {
        // spinning, the clock is read at the first empty poll and then every
        // 1,024th (stall check); yielding or sleeping, after every empty poll
        let mut wait_start = 0u64;
        let mut empty = 0u32;
        loop {
            let polled = poll_once(lane, buffer, msg_bytes, wr_bytes)?;
            sends_outstanding -= polled.sends_done.min(sends_outstanding);
            let arrived = match op {
                Op::Write => buffer.load_volatile(last_byte)? == pingpong_tag(i, false),
                _ => polled.receives > 0,
            };
            if arrived {
                lane.idle.reset();
                break;
            }
            empty = empty.wrapping_add(1);
            if empty == 1 {
                wait_start = monotonic_ns();
            }
            if empty % 1024 == 0 || lane.idle.mode() != PollMode::Spin {
                lane.check_abort()?;
                if monotonic_ns() - wait_start > stall_ns {
                    return Err(EngineError::Stall {
                        what: format!("answering ping-pong message {i} of {iters}"),
                        waited_s: stall_timeout.as_secs_f64(),
                        completed: i,
                        in_flight: sends_outstanding,
                    });
                }
            }
            // a WRITE ping raises no completion here: never sleep on the CQ
            if op != Op::Write {
                lane.wait_idle(LONGEST_SLEEP)?;
            } else if lane.idle.mode() != PollMode::Spin {
                std::thread::yield_now();
            }
        }
        if op == Op::Write {
            buffer.store_volatile(last_byte, pingpong_tag(i, true))?;
        }
        post_message(lane, buffer, op, msg_bytes, wr_bytes, remote, i as u32)?;
        sends_outstanding += 1;
    }
    let drain_start = monotonic_ns();
    while sends_outstanding > 0 {
        let polled = poll_once(lane, buffer, msg_bytes, wr_bytes)?;
        sends_outstanding -= polled.sends_done.min(sends_outstanding);
        if monotonic_ns() - drain_start > stall_ns {
            break;
        }
    }
    Ok(thread_cpu_s() - cpu_start)
}
