//! An endpoint (device + one registered buffer) and its QP set, split into
//! lanes: one CQ and a slice of the QPs per thread.

use std::sync::Arc;

use crate::control::{Abort, BufferKey};
use crate::verbs::{
    BufferOptions, Completion, CompletionQueue, MemoryKind, QpCaps, QpEndpoint, QpPathOptions,
    RcQueuePair, RdmaDevice, RegisteredBuffer, RemoteAccess,
};

use super::{EngineError, IdleWait, PollMode, WrId};

/// A device and the buffer every QP of the run shares.
#[derive(Debug)]
pub struct Endpoint {
    /// The opened device.
    pub device: Arc<RdmaDevice>,
    /// The one registered buffer (largest message; never one per QP).
    pub buffer: Arc<RegisteredBuffer>,
}

impl Endpoint {
    /// Allocates `buffer_bytes` in `memory` and registers it on `device`,
    /// with only the remote rights `remote` the endpoint's role needs.
    pub fn new(
        device: Arc<RdmaDevice>,
        buffer_bytes: u64,
        memory: MemoryKind,
        remote: RemoteAccess,
    ) -> Result<Endpoint, EngineError> {
        let bytes = usize::try_from(buffer_bytes).map_err(|_| {
            EngineError::Invalid(format!(
                "buffer of {buffer_bytes} bytes does not fit this machine"
            ))
        })?;
        let buffer = RegisteredBuffer::new(
            &device,
            BufferOptions {
                bytes,
                memory,
                remote,
            },
        )?;
        Ok(Endpoint {
            device,
            buffer: Arc::new(buffer),
        })
    }

    /// What a peer needs to reach the buffer: its address, rkey and length.
    pub fn key(&self) -> BufferKey {
        BufferKey {
            addr: self.buffer.addr(),
            rkey: self.buffer.rkey(),
            len: self.buffer.len() as u64,
        }
    }
}

/// One thread's share of a QP set.
#[derive(Debug)]
pub struct Lane {
    /// The lane's completion queue (send and receive).
    pub cq: CompletionQueue,
    /// The lane's QPs.
    pub qps: Vec<RcQueuePair>,
    /// Index of the lane's first QP in the whole set.
    pub first_qp: usize,
    /// Per QP: sequence number of the next send WR.
    pub next_wr: Vec<u64>,
    /// Per QP: sequence number of the next message.
    pub next_msg: Vec<u64>,
    /// Per QP: receives consumed so far (drives receive offsets).
    pub recv_seq: Vec<u64>,
    /// Per QP: receives currently posted.
    pub recv_posted: Vec<u32>,
    /// Scratch for polling.
    pub(crate) completions: Vec<Completion>,
    /// The run's abort flag: every wait loop on the lane stops with
    /// [`EngineError::Aborted`] once it is raised (see [`QpSet::set_abort`]).
    pub abort: Abort,
    /// How the lane's thread waits on an empty poll (see [`QpSet::set_poll`]).
    pub idle: IdleWait,
}

impl Lane {
    /// Fails with [`EngineError::Aborted`] once the run's abort is raised.
    #[inline]
    pub fn check_abort(&self) -> Result<(), EngineError> {
        match self.abort.is_raised() {
            false => Ok(()),
            true => Err(EngineError::Aborted(
                self.abort.reason().unwrap_or_default(),
            )),
        }
    }

    /// After a poll found nothing: waits as the lane's poll mode says (for
    /// at most `cap` in event mode).
    #[inline]
    pub fn wait_idle(&mut self, cap: std::time::Duration) -> Result<(), EngineError> {
        self.idle.wait(&mut [&mut self.cq], cap)?;
        Ok(())
    }

    /// Posts receives on every QP until `depth` are outstanding. Receive k
    /// of a QP lands at chunk `k % chunks` of the message, so split SENDs
    /// reassemble in place and `--verify` can check them.
    pub fn top_up_receives(
        &mut self,
        buffer: &RegisteredBuffer,
        depth: u32,
        msg_bytes: u64,
        wr_bytes: u64,
    ) -> Result<(), EngineError> {
        for q in 0..self.qps.len() {
            while self.recv_posted[q] < depth {
                let posted_seq = self.recv_seq[q] + u64::from(self.recv_posted[q]);
                self.post_one_receive(q, posted_seq, buffer, msg_bytes, wr_bytes)?;
                self.recv_posted[q] += 1;
            }
        }
        Ok(())
    }

    /// Accounts one consumed receive on QP `q` and posts its replacement.
    pub fn replace_receive(
        &mut self,
        q: usize,
        buffer: &RegisteredBuffer,
        msg_bytes: u64,
        wr_bytes: u64,
    ) -> Result<(), EngineError> {
        self.recv_seq[q] += 1;
        let posted_seq = self.recv_seq[q] + u64::from(self.recv_posted[q]) - 1;
        self.post_one_receive(q, posted_seq, buffer, msg_bytes, wr_bytes)
    }

    fn post_one_receive(
        &mut self,
        q: usize,
        seq: u64,
        buffer: &RegisteredBuffer,
        msg_bytes: u64,
        wr_bytes: u64,
    ) -> Result<(), EngineError> {
        let chunks = msg_bytes.div_ceil(wr_bytes).max(1);
        let offset = (seq % chunks) * wr_bytes;
        let len = wr_bytes.min(msg_bytes - offset) as u32;
        self.qps[q].post_recv(WrId::new(q, seq).0, buffer, offset as usize, len)?;
        Ok(())
    }
}

/// All QPs of one configuration, in lanes.
#[derive(Debug)]
pub struct QpSet {
    /// The lanes, one per thread.
    pub lanes: Vec<Lane>,
}

impl QpSet {
    /// Creates `qps` QPs spread contiguously over `lanes` lanes, each lane
    /// with a CQ sized for its QPs' queues.
    pub fn create(
        endpoint: &Endpoint,
        qps: usize,
        lanes: usize,
        caps: QpCaps,
    ) -> Result<QpSet, EngineError> {
        let lanes = lanes.clamp(1, qps.max(1));
        let counts: Vec<usize> = (0..lanes)
            .map(|i| qps / lanes + usize::from(i < qps % lanes))
            .collect();
        QpSet::create_lanes(endpoint, &counts, caps)
    }

    /// Creates one lane per entry of `qps_per_lane` (a rank's thread), each
    /// with its own CQ and that many QPs.
    pub fn create_lanes(
        endpoint: &Endpoint,
        qps_per_lane: &[usize],
        caps: QpCaps,
    ) -> Result<QpSet, EngineError> {
        let device = &endpoint.device;
        let qps: usize = qps_per_lane.iter().sum();
        device.check_limit("QPs (max_qp)", qps as u64, device.limits().max_qp)?;
        let mut out = Vec::with_capacity(qps_per_lane.len());
        let mut first = 0;
        for &count in qps_per_lane {
            let per_qp = u64::from(caps.max_send_wr) + u64::from(caps.max_recv_wr);
            let entries = (per_qp * count as u64).max(16);
            if entries > device.limits().max_cqe {
                return Err(EngineError::Invalid(format!(
                    "{count} QPs on one thread need {entries} completion-queue entries but {} allows {}; \
                     raise --threads or lower --tx-depth/--rx-depth",
                    device.name(),
                    device.limits().max_cqe
                )));
            }
            let cq = CompletionQueue::new(device, entries as u32)?;
            let mut lane_qps = Vec::with_capacity(count);
            for _ in 0..count {
                lane_qps.push(RcQueuePair::new(device, &cq, &cq, caps)?);
            }
            out.push(Lane {
                cq,
                qps: lane_qps,
                first_qp: first,
                next_wr: vec![0; count],
                next_msg: vec![0; count],
                recv_seq: vec![0; count],
                recv_posted: vec![0; count],
                completions: Vec::with_capacity(64),
                abort: Abort::new(),
                idle: IdleWait::new(PollMode::Spin),
            });
            first += count;
        }
        Ok(QpSet { lanes: out })
    }

    /// Makes every lane's wait loops stop when `abort` is raised.
    pub fn set_abort(&mut self, abort: &Abort) {
        for lane in &mut self.lanes {
            lane.abort = abort.clone();
        }
    }

    /// Makes every lane's threads wait for completions in `mode`.
    pub fn set_poll(&mut self, mode: PollMode) {
        for lane in &mut self.lanes {
            lane.idle = IdleWait::new(mode);
        }
    }

    /// The endpoints of every QP, in set order.
    pub fn endpoints(&self, device: &RdmaDevice) -> Vec<QpEndpoint> {
        self.lanes
            .iter()
            .flat_map(|lane| lane.qps.iter().map(|qp| qp.endpoint(device)))
            .collect()
    }

    /// Connects QP i to `remote[i]`.
    pub fn connect(
        &mut self,
        device: &RdmaDevice,
        remote: &[QpEndpoint],
        path: &QpPathOptions,
    ) -> Result<(), EngineError> {
        let total: usize = self.lanes.iter().map(|lane| lane.qps.len()).sum();
        if remote.len() != total {
            return Err(EngineError::Invalid(format!(
                "the peer offered {} QPs for {total} local ones (a peer of another infab version?)",
                remote.len()
            )));
        }
        for lane in &mut self.lanes {
            for (i, qp) in lane.qps.iter_mut().enumerate() {
                qp.connect(device, &remote[lane.first_qp + i], path)?;
            }
        }
        Ok(())
    }

    /// Total number of QPs.
    pub fn len(&self) -> usize {
        self.lanes.iter().map(|lane| lane.qps.len()).sum()
    }

    /// Whether the set has no QPs.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}
