//! The node agent's part of a KV-transfer point (test 10.1): pool buffers
//! sized by the KV model, QPs that both post and receive, and a trial that
//! runs each local flow end as its own pinned thread, the active end (the
//! one that posts) or the passive end (the one that waits for the
//! notification). Both ends plan the same requests from the same spec and
//! seed, so neither needs the other's descriptor list.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::control::BufferKey;
use crate::engine::{
    kv_fill_pattern, run_kv_active, run_kv_passive, Endpoint, EngineError, KvActiveTally,
    KvDirection, KvNotify, KvPassiveTally, KvRunPlan, QpSet, KV_NOTIFY_BYTES, KV_RECV_DEPTH,
};
use crate::verbs::{QpCaps, RdmaDevice, RemoteAccess};
use crate::workload::kv::{KvPlanSpec, KvPlanner, PoolGeometry};

use super::node::{PointState, SideSet};
use super::protocol::{Flow, KvPointSpec, KvSideTrial, Side, TrialWork};
use super::ClusterError;

/// Outstanding WRs per QP when `--tx-depth` is not given.
const KV_TX_DEPTH: u32 = 128;

/// The pool geometry both ends share.
pub(crate) fn kv_geometry(kv: &KvPointSpec) -> Result<PoolGeometry, ClusterError> {
    PoolGeometry::new(&kv.model, kv.tp, kv.block_tokens, kv.pool_blocks)
        .map_err(|e| ClusterError::Invalid(e.to_string()))
}

/// A planner for one trial: the same on both ends.
fn kv_planner(kv: &KvPointSpec, trial_seed: u64) -> Result<KvPlanner, ClusterError> {
    KvPlanner::new(KvPlanSpec {
        model: kv.model.clone(),
        tp: kv.tp,
        layout: kv.layout,
        block_tokens: kv.block_tokens,
        pool_blocks: kv.pool_blocks,
        fragmentation: kv.fragmentation,
        max_wr_bytes: kv.max_wr_bytes,
        seed: kv.seed ^ trial_seed.wrapping_mul(0x9e37_79b9_7f4a_7c15),
    })
    .map_err(|e| ClusterError::Invalid(e.to_string()))
}

/// One side's QPs and pool for a KV point: the pool holds every page of
/// the model's layout plus a notification area; QPs can post (either end
/// may be the active one) and receive notifications.
pub(super) fn kv_side_set(
    spec: &super::protocol::PointSpec,
    kv: &KvPointSpec,
    device: Arc<RdmaDevice>,
    lane_flows: Vec<Vec<Flow>>,
    side: Side,
    memory: crate::verbs::MemoryKind,
) -> Result<SideSet, ClusterError> {
    let geometry = kv_geometry(kv)?;
    let limits = *device.limits();
    if kv.max_wr_bytes > limits.max_msg_bytes {
        return Err(ClusterError::Invalid(format!(
            "--max-wr-bytes {} exceeds {}'s largest message ({} B); lower it",
            kv.max_wr_bytes,
            device.name(),
            limits.max_msg_bytes
        )));
    }
    let tx_depth = spec
        .tx_depth
        .unwrap_or(KV_TX_DEPTH)
        .min(limits.max_qp_wr.saturating_sub(2).max(1) as u32);
    let caps = QpCaps {
        max_send_wr: tx_depth + 2,
        max_recv_wr: KV_RECV_DEPTH + 1,
        max_inline_bytes: 0,
    };
    // the passive end's pool is the only one the peer touches: push
    // WRITEs the decode pool, pull READs the prefill pool (a zero-byte
    // WRITE_WITH_IMM notification needs no remote right)
    let remote = match (kv.direction, side) {
        (KvDirection::Push, Side::Receiver) => RemoteAccess::WRITE,
        (KvDirection::Pull, Side::Sender) => RemoteAccess::READ,
        _ => RemoteAccess::NONE,
    };
    let endpoint = Endpoint::new(
        Arc::clone(&device),
        geometry.total_bytes() + KV_NOTIFY_BYTES,
        memory,
        remote,
    )?;
    let counts: Vec<usize> = lane_flows
        .iter()
        .map(|flows| flows.iter().map(|f| f.qps as usize).sum())
        .collect();
    let mut set = QpSet::create_lanes(&endpoint, &counts, caps)?;
    set.set_poll(kv.poll);
    Ok(SideSet {
        device,
        endpoint,
        set,
        lane_flows,
        wr_bytes: kv.max_wr_bytes,
        tx_depth,
        slots: Default::default(),
        slotted: false,
    })
}

/// Fills the prefill side's pools with the verify pattern (once per point).
pub(crate) fn kv_fill_sources(point: &PointState) -> Result<(), ClusterError> {
    let Some(kv) = &point.spec.kv else {
        return Ok(());
    };
    if kv.verify {
        let bytes = kv_geometry(kv)?.total_bytes();
        for side in &point.senders {
            kv_fill_pattern(&side.endpoint.buffer, bytes).map_err(EngineError::from)?;
        }
    }
    Ok(())
}

/// Runs a KV trial: every local flow end in its own thread.
pub(super) fn run_kv(
    point: &mut PointState,
    work: &TrialWork,
    start_at_ns: u64,
    cores: &[usize],
) -> Result<Vec<KvSideTrial>, ClusterError> {
    let TrialWork::Kv {
        requests,
        trial_seed,
        budget_ns,
        ref arrivals_ns,
        ref prompts,
        ref schedules,
    } = *work
    else {
        return Err(ClusterError::Invalid(
            "a non-KV trial reached the KV runner".into(),
        ));
    };
    let PointState {
        spec,
        senders,
        receivers,
        remotes,
        sender_buffers,
    } = point;
    let kv = spec
        .kv
        .clone()
        .ok_or_else(|| ClusterError::Invalid("a KV trial on a point set up without KV".into()))?;
    let geometry = kv_geometry(&kv)?;
    let stall_timeout = Duration::from_secs_f64(spec.stall_timeout_s);
    let deadline = Instant::now() + Duration::from_nanos(budget_ns) + stall_timeout;
    let stop = AtomicBool::new(false);
    let mut ends = Vec::new();
    for (sets, is_sender) in [(senders, true), (receivers, false)] {
        for side in sets.iter_mut() {
            let buffer = Arc::clone(&side.endpoint.buffer);
            let tx_depth = side.tx_depth;
            for (lane, flows) in side.set.lanes.iter_mut().zip(&side.lane_flows) {
                let flow = flows[0];
                let active = (kv.direction == KvDirection::Push) == is_sender;
                if !active && kv.notify == KvNotify::None {
                    continue; // nothing to wait for
                }
                let peer: BufferKey = if is_sender {
                    remotes.get(&flow.id)
                } else {
                    sender_buffers.get(&flow.id)
                }
                .copied()
                .ok_or_else(|| {
                    ClusterError::Invalid(format!("no peer buffer known for KV flow {}", flow.id))
                })?;
                ends.push((lane, Arc::clone(&buffer), flow, active, tx_depth, peer));
            }
        }
    }
    let results = std::thread::scope(|scope| {
        let handles: Vec<_> = ends
            .into_iter()
            .enumerate()
            .map(|(i, (lane, buffer, flow, active, tx_depth, peer))| {
                let kv = &kv;
                let stop = &stop;
                let core = (!cores.is_empty()).then(|| cores[i % cores.len()]);
                scope.spawn(move || -> Result<KvSideTrial, ClusterError> {
                    let plan = KvRunPlan {
                        direction: kv.direction,
                        notify: kv.notify,
                        requests,
                        schedules: if schedules.is_empty() {
                            vec![kv.schedule.clone()]
                        } else {
                            schedules.clone()
                        },
                        remote: peer,
                        notify_offset: geometry.total_bytes(),
                        tx_depth,
                        start_at_ns,
                        stall_timeout,
                        deadline,
                        // open loop: the waiting end may also sit out the
                        // longest silence between two arrivals
                        request_budget: Duration::from_nanos(
                            budget_ns / u64::from(requests.max(1)) + longest_gap_ns(arrivals_ns),
                        ),
                        verify: kv.verify,
                        core,
                        gap_ns: kv.gap_ns,
                        poll: kv.poll,
                        arrivals_ns: arrivals_ns.clone(),
                    };
                    let mut planner = kv_planner(kv, trial_seed)?;
                    let mut next = |r: u32| {
                        planner
                            .plan(
                                r,
                                prompts.get(r as usize).copied().unwrap_or(kv.prompt_tokens),
                            )
                            .map_err(|e| EngineError::Invalid(e.to_string()))
                    };
                    let mut trial = KvSideTrial {
                        flow: flow.id,
                        active,
                        requests: Vec::new(),
                        seen: Vec::new(),
                        cpu_s: 0.0,
                        error: None,
                    };
                    let result = if active {
                        let mut tally = KvActiveTally::default();
                        let r = run_kv_active(lane, &buffer, &plan, &mut next, stop, &mut tally);
                        trial.requests = tally.requests;
                        trial.cpu_s = tally.cpu_s;
                        r
                    } else {
                        let mut tally = KvPassiveTally::default();
                        let r = run_kv_passive(lane, &buffer, &plan, &mut next, stop, &mut tally);
                        trial.seen = tally.seen;
                        trial.cpu_s = tally.cpu_s;
                        r
                    };
                    if let Err(err) = result {
                        // the other end in this process stops waiting; the
                        // requests completed so far go back to node 0
                        stop.store(true, Ordering::Relaxed);
                        trial.error = Some(err.to_string());
                    }
                    Ok(trial)
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| {
                h.join()
                    .map_err(|_| ClusterError::Invalid("a KV transfer thread panicked".into()))?
            })
            .collect::<Result<Vec<_>, _>>()
    });
    results
}

/// The longest gap between consecutive intended arrivals (0 for none).
fn longest_gap_ns(arrivals_ns: &[u64]) -> u64 {
    arrivals_ns
        .windows(2)
        .map(|w| w[1].saturating_sub(w[0]))
        .max()
        .unwrap_or(0)
}
