//! The node agent's part of a serving-pool point (6.2, 6.4) across hosts:
//! every local prefill or decode rank is one worker with its own pool
//! buffer and one lane holding its QPs to every worker of the other role
//! (flow `p · decode + d`, in flow order, so a prefill worker's QP
//! `d · qps + k` and a decode worker's QP `p · qps + k` are the two ends of
//! one pair). The control plane is the fabric's: asks, grants and refusals
//! are SENDs on each pair's first QP, as `engine::serving` runs them with
//! `--control fabric`; nothing is shared between the nodes but the plan.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::control::{monotonic_ns, BufferKey};
use crate::engine::{
    kv_fill_pattern, panic_text, run_decode_worker, run_prefill_worker, ControlLayout, DecodeTally,
    DecodeWorker, Endpoint, EngineError, KvDirection, PoolRunPlan, PoolShared, PrefillTally,
    PrefillWorker, QpSet, SERVING_RECV_DEPTH,
};
use crate::verbs::{MemoryKind, QpCaps, RdmaDevice, RemoteAccess};
use crate::workload::kv::{KvPlanSpec, KvPlanner, PoolGeometry};
use crate::workload::serving::{PagePool, PlannedRequest};

use super::node::{PointState, SideSet};
use super::protocol::{Flow, PointSpec, ServingPointSpec, ServingWorkerTrial, Side, TrialWork};
use super::ClusterError;

/// Bytes after the control slots where zero-length receives point.
const NOTIFY_BYTES: u64 = 4096;

fn geometry(s: &ServingPointSpec) -> Result<PoolGeometry, ClusterError> {
    PoolGeometry::new(&s.model, s.tp, s.block_tokens, s.pool_blocks)
        .map_err(|e| ClusterError::Invalid(e.to_string()))
}

/// A worker's message slots: after its KV pages, one ring per peer.
fn control(s: &ServingPointSpec, side: Side) -> Result<ControlLayout, ClusterError> {
    let peers = match side {
        Side::Sender => s.decode,
        Side::Receiver => s.prefill,
    };
    Ok(ControlLayout::new(
        geometry(s)?.total_bytes(),
        peers as usize,
        s.pool_blocks,
        s.tx_depth,
    ))
}

/// This node's workers of a serving point, one side set (one buffer, one
/// lane) per rank: prefill ranks send, decode ranks receive.
pub(super) fn serving_point(
    spec: PointSpec,
    device_of: impl Fn(u32) -> Result<Option<Arc<RdmaDevice>>, ClusterError>,
) -> Result<PointState, ClusterError> {
    let s = spec
        .serving
        .clone()
        .ok_or_else(|| ClusterError::Invalid("a serving setup without its spec".into()))?;
    let mut by_rank: BTreeMap<(u32, bool), (Arc<RdmaDevice>, Vec<Flow>)> = BTreeMap::new();
    for flow in &spec.flows {
        for (rank, sender) in [(flow.sender, true), (flow.receiver, false)] {
            if let Some(device) = device_of(rank)? {
                by_rank
                    .entry((rank, sender))
                    .or_insert_with(|| (device, Vec::new()))
                    .1
                    .push(*flow);
            }
        }
    }
    let mut senders = Vec::new();
    let mut receivers = Vec::new();
    for ((_, sender), (device, mut flows)) in by_rank {
        flows.sort_by_key(|f| f.id);
        let side = if sender { Side::Sender } else { Side::Receiver };
        let set = worker_set(&s, device, flows, side)?;
        if sender {
            senders.push(set);
        } else {
            receivers.push(set);
        }
    }
    Ok(PointState {
        spec,
        senders,
        receivers,
        remotes: BTreeMap::new(),
        sender_buffers: BTreeMap::new(),
    })
}

/// One worker: its pool (KV pages, message slots, the notice area) and a
/// lane with `qps` QPs to each peer.
fn worker_set(
    s: &ServingPointSpec,
    device: Arc<RdmaDevice>,
    flows: Vec<Flow>,
    side: Side,
) -> Result<SideSet, ClusterError> {
    let limits = *device.limits();
    if s.max_wr_bytes > limits.max_msg_bytes {
        return Err(ClusterError::Invalid(format!(
            "--max-wr-bytes {} exceeds {}'s largest message ({} B); lower it",
            s.max_wr_bytes,
            device.name(),
            limits.max_msg_bytes
        )));
    }
    let cap = limits.max_qp_wr.saturating_sub(2).max(2) as u32;
    if s.tx_depth > cap {
        return Err(ClusterError::Invalid(format!(
            "--tx-depth {} exceeds what {}'s QPs hold ({cap} WRs plus 2); lower it",
            s.tx_depth,
            device.name()
        )));
    }
    let caps = QpCaps {
        max_send_wr: s.tx_depth + 2,
        max_recv_wr: SERVING_RECV_DEPTH + 1,
        max_inline_bytes: 0,
    };
    let geometry = geometry(s)?;
    let bytes = geometry.total_bytes() + control(s, side)?.bytes() + NOTIFY_BYTES;
    // push WRITEs the decode pools, pull READs the prefill pools
    let access = match (s.direction, side) {
        (KvDirection::Push, Side::Receiver) => RemoteAccess::WRITE,
        (KvDirection::Pull, Side::Sender) => RemoteAccess::READ,
        _ => RemoteAccess::NONE,
    };
    let endpoint = Endpoint::new(
        Arc::clone(&device),
        bytes,
        MemoryKind::host(s.huge_pages),
        access,
    )?;
    if s.verify && side == Side::Sender {
        kv_fill_pattern(&endpoint.buffer, geometry.total_bytes()).map_err(EngineError::from)?;
    }
    let qps: usize = flows.iter().map(|f| f.qps as usize).sum();
    let mut set = QpSet::create_lanes(&endpoint, &[qps], caps)?;
    set.set_poll(s.poll);
    Ok(SideSet {
        device,
        endpoint,
        set,
        lane_flows: vec![flows],
        wr_bytes: s.max_wr_bytes,
        tx_depth: s.tx_depth,
        slots: Default::default(),
        slotted: false,
    })
}

/// Runs this node's workers through one trial, each in its own thread;
/// their times are in this node's clock.
pub(super) fn run_serving(
    point: &mut PointState,
    work: &TrialWork,
    start_at_ns: u64,
    cores: &[usize],
) -> Result<Vec<ServingWorkerTrial>, ClusterError> {
    let TrialWork::Serving {
        ref plan,
        seed,
        budget_ns,
    } = *work
    else {
        return Err(ClusterError::Invalid(
            "a non-serving trial reached the serving runner".into(),
        ));
    };
    let PointState {
        spec,
        senders,
        receivers,
        remotes,
        sender_buffers,
    } = point;
    let s = spec.serving.clone().ok_or_else(|| {
        ClusterError::Invalid("a serving trial on a point set up without it".into())
    })?;
    let (prefill_n, decode_n) = (s.prefill as usize, s.decode as usize);
    let flow_id = |p: usize, d: usize| (p * decode_n + d) as u32;
    let buffer_of = |map: &BTreeMap<u32, BufferKey>, flow: u32| {
        map.get(&flow).copied().ok_or_else(|| {
            ClusterError::Invalid(format!("no peer buffer known for serving flow {flow}"))
        })
    };
    let decode_keys: Vec<BufferKey> = (0..decode_n)
        .map(|d| buffer_of(remotes, flow_id(0, d)))
        .collect::<Result<_, _>>()?;
    let prefill_keys: Vec<BufferKey> = (0..prefill_n)
        .map(|p| buffer_of(sender_buffers, flow_id(p, 0)))
        .collect::<Result<_, _>>()?;
    let pools = |n: usize, salt: u64| -> Result<Vec<PagePool>, ClusterError> {
        (0..n)
            .map(|w| {
                PagePool::new(s.pool_blocks, s.fragmentation, seed ^ salt ^ w as u64)
                    .map_err(|e| ClusterError::Invalid(e.to_string()))
            })
            .collect()
    };
    // every decode worker's admission state lives with it; the prefill
    // workers here never read it (fabric control)
    let (shared, inboxes) = PoolShared::new(pools(decode_n, 0xd)?, prefill_n, s.admission);
    let mut prefill_pools: Vec<Option<PagePool>> =
        pools(prefill_n, 0x9)?.into_iter().map(Some).collect();
    let planner = KvPlanner::new(KvPlanSpec {
        model: s.model.clone(),
        tp: s.tp,
        layout: s.layout,
        block_tokens: s.block_tokens,
        pool_blocks: s.pool_blocks,
        fragmentation: s.fragmentation,
        max_wr_bytes: s.max_wr_bytes,
        seed,
    })
    .map_err(|e| ClusterError::Invalid(e.to_string()))?;
    let stall_timeout = Duration::from_secs_f64(spec.stall_timeout_s);
    let now = monotonic_ns();
    let run = PoolRunPlan {
        qps: s.qps as usize,
        tx_depth: s.tx_depth,
        start_at_ns,
        stall_timeout,
        deadline: Instant::now()
            + Duration::from_nanos(start_at_ns.saturating_sub(now) + budget_ns),
        verify: s.verify,
        decode_init_ns: s.decode_init_ns,
        decode_step_ns: s.decode_step_ns,
        block_tokens: s.block_tokens,
        pull: s.direction == KvDirection::Pull,
    };
    let shares: Vec<Vec<PlannedRequest>> = (0..prefill_n as u32)
        .map(|w| {
            plan.iter()
                .filter(|r| r.prefill_worker == w)
                .copied()
                .collect()
        })
        .collect();
    let outputs: HashMap<u32, u64> = plan.iter().map(|r| (r.request, r.output_tokens)).collect();
    let routed: Vec<u32> = (0..decode_n as u32)
        .map(|d| plan.iter().filter(|r| r.decode_worker == Some(d)).count() as u32)
        .collect();
    let (prefill_control, decode_control) =
        (control(&s, Side::Sender)?, control(&s, Side::Receiver)?);
    let worker_of = |set: &SideSet, sender: bool| {
        let first = set.lane_flows[0][0].id as usize;
        if sender {
            first / decode_n
        } else {
            first % decode_n
        }
    };
    let mut prefill_sets = Vec::new();
    for set in senders.iter_mut() {
        let w = worker_of(set, true);
        let pool = prefill_pools[w]
            .take()
            .ok_or_else(|| ClusterError::Invalid(format!("prefill worker {w} set up twice")))?;
        prefill_sets.push((w, set, pool));
    }
    let decode_sets: Vec<(usize, &mut SideSet)> = receivers
        .iter_mut()
        .map(|set| (worker_of(set, false), set))
        .collect();
    // a local failure stops this node's other workers; a remote one shows
    // here as a silent peer, bounded by the trial's deadline
    let abandon = AtomicBool::new(false);
    let never = AtomicBool::new(false);
    let core = |i: usize| (!cores.is_empty()).then(|| cores[i % cores.len()]);
    let trials = std::thread::scope(|scope| {
        let mut handles = Vec::new();
        for (i, (w, set, pool)) in prefill_sets.into_iter().enumerate() {
            let (shared, run, planner, abandon) = (&shared, &run, &planner, &abandon);
            let (keys, share, inbox) = (&decode_keys, &shares[w], &inboxes.grants[w]);
            let core = core(i);
            handles.push(scope.spawn(move || {
                let buffer = Arc::clone(&set.endpoint.buffer);
                let lane = &mut set.set.lanes[0];
                let worker = PrefillWorker {
                    worker: w as u32,
                    buffer: &buffer,
                    remotes: keys,
                    requests: share,
                    planner,
                    pool,
                    inbox,
                    notify_offset: buffer.len() as u64 - NOTIFY_BYTES,
                    control: Some(prefill_control),
                    core,
                };
                let mut tally = PrefillTally::default();
                let r = run_prefill_worker(worker, lane, shared, run, abandon, &mut tally);
                if r.is_err() {
                    abandon.store(true, Ordering::Relaxed);
                }
                ServingWorkerTrial {
                    prefill: true,
                    worker: w as u32,
                    requests: tally.requests,
                    landed: Vec::new(),
                    peaks: (0, 0),
                    cpu_s: tally.cpu_s,
                    error: r.err().map(|e| e.to_string()),
                }
            }));
        }
        let offset = handles.len();
        for (i, (w, set)) in decode_sets.into_iter().enumerate() {
            let (shared, run, planner, abandon, never) =
                (&shared, &run, &planner, &abandon, &never);
            let (keys, outputs, orders) = (&prefill_keys, &outputs, &inboxes.orders[w]);
            let (core, routed) = (core(offset + i), routed[w]);
            handles.push(scope.spawn(move || {
                let buffer = Arc::clone(&set.endpoint.buffer);
                let lane = &mut set.set.lanes[0];
                let worker = DecodeWorker {
                    worker: w as u32,
                    buffer: &buffer,
                    notify_offset: buffer.len() as u64 - NOTIFY_BYTES,
                    outputs,
                    core,
                    abandon,
                    remotes: keys,
                    orders,
                    planner,
                    control: Some(decode_control),
                    routed,
                };
                let mut tally = DecodeTally::default();
                // it ends once every request routed to it settled
                let r = run_decode_worker(worker, lane, shared, run, never, &mut tally);
                if r.is_err() {
                    abandon.store(true, Ordering::Relaxed);
                }
                ServingWorkerTrial {
                    prefill: false,
                    worker: w as u32,
                    requests: tally.pulled,
                    landed: tally.landed,
                    peaks: shared.peaks(w as u32),
                    cpu_s: tally.cpu_s,
                    error: r.err().map(|e| e.to_string()),
                }
            }));
        }
        handles
            .into_iter()
            .map(|h| {
                h.join().map_err(|p| {
                    ClusterError::Invalid(format!(
                        "a serving worker thread panicked: {}",
                        panic_text(&p)
                    ))
                })
            })
            .collect::<Result<Vec<_>, _>>()
    });
    trials
}
