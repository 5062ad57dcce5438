//! Bandwidth trials (test 5.1): every QP keeps a window of outstanding work
//! requests; every message's completion is timed.
//!
//! Signalling: the last WR of every `cq_mod`-th message asks for a
//! completion. On RC a completion also covers every earlier WR of its QP,
//! so each message's latency is "post of its first WR → the completion that
//! covers its last WR" (exact with `cq_mod` 1, an upper bound above it).
//! Stopping happens only between messages; when the last message posted was
//! unsignalled, a zero-byte signalled WR flushes the tail so the drain ends.

use std::collections::VecDeque;
use std::time::Duration;

use crate::control::{monotonic_ns, BufferKey, Op};
use crate::stats::{LatencyHistogram, RateSeries, SeriesClock};
use crate::verbs::{CompletionOp, RegisteredBuffer, SendOp, WorkRequest, MAX_CHAIN};

use super::paced::LanePacer;
use super::{
    thread_cpu_s, EngineError, Lane, LaneTally, PollMode, QpSet, QpTally, WrId, LONGEST_SLEEP,
};

/// When a trial stops posting.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum StopRule {
    /// After this long (messages in flight then drain).
    Duration(Duration),
    /// After this many messages per QP.
    MessagesPerQp(u64),
}

/// What a bandwidth trial does.
#[derive(Debug, Clone)]
pub struct BandwidthPlan {
    /// The operation.
    pub op: Op,
    /// Message size.
    pub msg_bytes: u64,
    /// Bytes per work request (≤ the port's max message size).
    pub wr_bytes: u64,
    /// Outstanding WRs per QP.
    pub tx_depth: u32,
    /// Signal every n-th message (1 for ops the target receives).
    pub cq_mod: u32,
    /// When to stop.
    pub stop: StopRule,
    /// The target's buffer.
    pub remote: BufferKey,
    /// Per lane, its own target buffer (multi-rank patterns); empty = `remote` for all.
    pub lane_remotes: Vec<BufferKey>,
    /// CLOCK_MONOTONIC ns at which every lane starts posting (0 = at once):
    /// the agreed start time of a multi-rank trial.
    pub start_at_ns: u64,
    /// Error out after this long without a completion.
    pub stall_timeout: Duration,
    /// CPU cores to pin lane threads to (lane i → cores[i % len]); empty = no pinning.
    pub cores: Vec<usize>,
    /// Bin every message completion on this clock (rate series, 8.3);
    /// None: no series.
    pub series: Option<SeriesClock>,
}

/// Runs one bandwidth trial on every lane of `set`, one pinned thread per lane.
pub fn run_bandwidth(
    set: &mut QpSet,
    buffer: &RegisteredBuffer,
    plan: &BandwidthPlan,
) -> Result<Vec<LaneTally>, EngineError> {
    on_lanes(set, &plan.cores, |i, lane| {
        let remote = plan.lane_remotes.get(i).copied().unwrap_or(plan.remote);
        wait_until(plan.start_at_ns);
        bandwidth_lane(lane, buffer, plan, remote, None)
    })
}

/// Runs `work(lane index, lane)` on every lane of `set`, one thread per
/// lane, pinned to `cores[i % len]` (no pinning when `cores` is empty);
/// returns the lanes' results in lane order.
pub(crate) fn on_lanes<T: Send>(
    set: &mut QpSet,
    cores: &[usize],
    work: impl Fn(usize, &mut Lane) -> Result<T, EngineError> + Sync,
) -> Result<Vec<T>, EngineError> {
    let work = &work;
    std::thread::scope(|scope| {
        let handles: Vec<_> = set
            .lanes
            .iter_mut()
            .enumerate()
            .map(|(i, lane)| {
                let core = (!cores.is_empty()).then(|| cores[i % cores.len()]);
                scope.spawn(move || {
                    pin(core);
                    work(i, lane)
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().map_err(|p| EngineError::Panic(panic_text(&p)))?)
            .collect()
    })
}

/// Sleeps, then spins, until CLOCK_MONOTONIC reaches `at_ns` (0: no wait).
pub(crate) fn wait_until(at_ns: u64) {
    loop {
        let now = monotonic_ns();
        if now >= at_ns {
            return;
        }
        let left = at_ns - now;
        // sleep until 5 ms before, then spin: a coarse timer (VMs) can
        // overshoot a sleep by milliseconds
        if left > 6_000_000 {
            std::thread::sleep(Duration::from_nanos(left - 5_000_000));
        } else {
            std::hint::spin_loop();
        }
    }
}

pub(crate) fn pin(core: Option<usize>) {
    if let Some(id) = core {
        core_affinity::set_for_current(core_affinity::CoreId { id });
    }
}

pub(crate) fn panic_text(payload: &Box<dyn std::any::Any + Send>) -> String {
    payload
        .downcast_ref::<String>()
        .cloned()
        .or_else(|| payload.downcast_ref::<&str>().map(|s| s.to_string()))
        .unwrap_or_else(|| "unknown panic".into())
}

/// Per-QP progress inside a trial.
#[derive(Debug, Default)]
struct QpStream {
    /// WRs completed (covered by a completion), as a sequence number.
    done_wr: u64,
    /// Chunk index of the next WR within its message (0 = between messages).
    chunk: u64,
    /// Post time of the message being posted.
    msg_post_ns: u64,
    /// Messages started this trial.
    started: u64,
    /// The last message posted had no completion requested.
    unsignaled_tail: bool,
    /// No more messages will be posted this trial.
    stopped: bool,
    /// `(sequence of its last WR, post time)` of messages in flight.
    inflight: VecDeque<(u64, u64)>,
    tally: QpTally,
}

/// One lane's loop; `pacer` (background streams, `paced.rs`) gates every
/// message start and adds a stop flag; `None` is the unpaced stream.
pub(crate) fn bandwidth_lane(
    lane: &mut Lane,
    buffer: &RegisteredBuffer,
    plan: &BandwidthPlan,
    remote: BufferKey,
    mut pacer: Option<LanePacer<'_>>,
) -> Result<LaneTally, EngineError> {
    let chunks = plan.msg_bytes.div_ceil(plan.wr_bytes).max(1);
    let tx_depth = u64::from(plan.tx_depth);
    // a signalled WR must fit in the window, or the window never opens:
    // at most tx_depth / chunks messages between completions (perftest
    // clamps its cq-mod to the tx-depth alike)
    let cq_mod = u64::from(plan.cq_mod.max(1)).min((tx_depth / chunks).max(1));
    let mut streams: Vec<QpStream> = lane
        .next_wr
        .iter()
        .map(|&next| QpStream {
            done_wr: next,
            inflight: VecDeque::with_capacity(plan.tx_depth as usize + 1),
            ..QpStream::default()
        })
        .collect();
    let mut histogram = LatencyHistogram::new();
    let mut series = plan.series.map(RateSeries::new);
    let cpu_start = thread_cpu_s();
    let start_ns = monotonic_ns();
    let stop_at_ns = match plan.stop {
        StopRule::Duration(d) => start_ns + d.as_nanos() as u64,
        StopRule::MessagesPerQp(_) => u64::MAX,
    };
    let mut last_progress_ns = start_ns;
    let mut end_ns = start_ns;
    let mut chain = Vec::with_capacity(MAX_CHAIN);
    loop {
        let now = monotonic_ns();
        let time_up = now >= stop_at_ns || pacer.as_ref().is_some_and(|p| p.stop_requested());
        let mut all_done = true;
        for (q, stream) in streams.iter_mut().enumerate() {
            post_window(
                lane,
                q,
                stream,
                buffer,
                plan,
                &remote,
                (chunks, tx_depth, cq_mod),
                time_up,
                &mut pacer,
                &mut chain,
            )?;
            if !stream.stopped || lane.next_wr[q] != stream.done_wr {
                all_done = false;
            }
        }
        if all_done {
            break;
        }
        let got = lane.cq.poll(&mut lane.completions)?;
        let now = monotonic_ns();
        if got == 0 {
            lane.check_abort()?;
            if now.saturating_sub(last_progress_ns) > plan.stall_timeout.as_nanos() as u64 {
                let completed: u64 = streams.iter().map(|s| s.tally.messages).sum();
                let in_flight: u64 = streams
                    .iter()
                    .enumerate()
                    .map(|(q, s)| lane.next_wr[q] - s.done_wr)
                    .sum();
                if in_flight == 0 {
                    // a paced stream waiting for credit: nothing is owed
                    last_progress_ns = now;
                    continue;
                }
                return Err(EngineError::Stall {
                    what: format!("streaming {} B {} messages", plan.msg_bytes, plan.op.name()),
                    waited_s: plan.stall_timeout.as_secs_f64(),
                    completed,
                    in_flight,
                });
            }
            // a paced stream with window room never sleeps past its next
            // credit; with a full window (or stopped) only a completion helps
            let room = streams
                .iter()
                .enumerate()
                .any(|(q, s)| !s.stopped && lane.next_wr[q] - s.done_wr < tx_depth);
            let cap = match pacer.as_mut() {
                Some(p) if room => Duration::from_nanos(p.bucket.wait_ns(now, plan.msg_bytes)),
                _ => LONGEST_SLEEP,
            };
            // event mode, window room, credit far enough off for a timer:
            // sleep straight to it (completions only free window slots)
            if pacer.is_some()
                && room
                && lane.idle.mode() == PollMode::Event
                && cap >= Duration::from_micros(100)
            {
                std::thread::sleep(cap.min(LONGEST_SLEEP) - Duration::from_micros(50));
                continue;
            }
            lane.wait_idle(cap)?;
            continue;
        }
        lane.idle.reset();
        last_progress_ns = now;
        end_ns = now;
        for c in lane.completions.iter() {
            let id = WrId(c.wr_id);
            let q = id.qp_index();
            let stream = &mut streams[q];
            if !c.is_ok() {
                return Err(EngineError::completion(
                    c,
                    stream.tally.messages,
                    lane.next_wr[q] - stream.done_wr,
                ));
            }
            if matches!(c.op, CompletionOp::Recv | CompletionOp::RecvWithImm) {
                continue; // the initiator posts no receives in bandwidth mode
            }
            stream.done_wr = id.seq() + 1;
            while let Some(&(last_seq, post_ns)) = stream.inflight.front() {
                if last_seq > id.seq() {
                    break;
                }
                stream.inflight.pop_front();
                histogram.record(now - post_ns);
                if let Some(series) = series.as_mut() {
                    series.record(now, plan.msg_bytes, 1);
                }
                stream.tally.messages += 1;
                stream.tally.bytes += plan.msg_bytes;
            }
        }
    }
    Ok(LaneTally {
        per_qp: streams.iter().map(|s| s.tally).collect(),
        latency: histogram,
        cpu_s: thread_cpu_s() - cpu_start,
        elapsed_ns: end_ns - start_ns,
        start_ns,
        end_ns,
        series,
    })
}

/// Posts WRs on QP `q` while its window has room (and, paced, while the
/// bucket has credit). `time_up`: the duration ran out or the stop flag is up.
#[allow(clippy::too_many_arguments)]
#[inline]
fn post_window<'a>(
    lane: &mut Lane,
    q: usize,
    stream: &mut QpStream,
    buffer: &'a RegisteredBuffer,
    plan: &BandwidthPlan,
    remote: &BufferKey,
    (chunks, tx_depth, cq_mod): (u64, u64, u64),
    time_up: bool,
    pacer: &mut Option<LanePacer<'_>>,
    chain: &mut Vec<WorkRequest<'a>>,
) -> Result<(), EngineError> {
    // every WR the window has room for goes out in chains: one doorbell each
    chain.clear();
    while !stream.stopped && lane.next_wr[q] - stream.done_wr < tx_depth {
        if stream.chunk == 0 {
            let enough =
                time_up || matches!(plan.stop, StopRule::MessagesPerQp(n) if stream.started >= n);
            if enough {
                stream.stopped = true;
                lane.qps[q].post_send_chain(chain)?;
                chain.clear();
                if stream.unsignaled_tail {
                    post_flush(lane, q, buffer, plan.op, remote)?;
                    stream.tally.wrs_posted += 1;
                }
                break;
            }
            if let Some(pacer) = pacer.as_mut() {
                if !pacer.admit(plan.msg_bytes) {
                    std::hint::spin_loop();
                    break;
                }
            }
            stream.msg_post_ns = monotonic_ns();
            stream.started += 1;
        }
        let last = stream.chunk + 1 == chunks;
        let msg_seq = lane.next_msg[q];
        let signaled = last && msg_seq % cq_mod == cq_mod - 1;
        let offset = stream.chunk * plan.wr_bytes;
        let len = plan.wr_bytes.min(plan.msg_bytes - offset);
        let op = match plan.op {
            Op::Write => SendOp::Write,
            Op::WriteImm if last => SendOp::WriteImm(msg_seq as u32),
            Op::WriteImm => SendOp::Write,
            Op::Send => SendOp::Send,
            Op::Read => SendOp::Read,
        };
        let seq = lane.next_wr[q];
        chain.push(WorkRequest {
            wr_id: WrId::new(q, seq).0,
            op,
            local: buffer,
            local_offset: offset as usize,
            len: len as u32,
            remote_addr: remote.addr + offset,
            rkey: remote.rkey,
            signaled,
        });
        if chain.len() == MAX_CHAIN {
            lane.qps[q].post_send_chain(chain)?;
            chain.clear();
        }
        lane.next_wr[q] += 1;
        stream.tally.wrs_posted += 1;
        if plan.op == Op::Send {
            stream.tally.target_receives += 1;
        }
        if last {
            if plan.op == Op::WriteImm {
                stream.tally.target_receives += 1;
            }
            stream.inflight.push_back((seq, stream.msg_post_ns));
            stream.unsignaled_tail = !signaled;
            stream.chunk = 0;
            lane.next_msg[q] += 1;
        } else {
            stream.chunk += 1;
        }
    }
    lane.qps[q].post_send_chain(chain)?;
    chain.clear();
    Ok(())
}

/// A zero-byte signalled WRITE/READ whose completion covers an unsignalled tail.
fn post_flush(
    lane: &mut Lane,
    q: usize,
    buffer: &RegisteredBuffer,
    op: Op,
    remote: &BufferKey,
) -> Result<(), EngineError> {
    let op = if op == Op::Read {
        SendOp::Read
    } else {
        SendOp::Write
    };
    let seq = lane.next_wr[q];
    lane.qps[q].post_send(&WorkRequest {
        wr_id: WrId::new(q, seq).0,
        op,
        local: buffer,
        local_offset: 0,
        len: 0,
        remote_addr: remote.addr,
        rkey: remote.rkey,
        signaled: true,
    })?;
    lane.next_wr[q] += 1;
    Ok(())
}
