//! Reliable-connected queue pairs: creation, the INIT→RTR→RTS ladder, and
//! the posting hot path.
//!
//! Posting builds one `ibv_send_wr` on the stack and calls the provider's
//! `ibv_post_send` directly (see `ibv_post_send(3)`): no allocation, no
//! lock. Local memory is always named through a [`RegisteredBuffer`] and
//! bounds-checked, so even an inline send (which the CPU copies at post time)
//! cannot read outside registered memory.

use std::io;
use std::net::Ipv6Addr;
use std::ptr::null_mut;

use rdma_mummy_sys::{
    ibv_post_recv, ibv_post_send, ibv_recv_wr, ibv_send_wr, ibv_sge, ibv_wr_opcode,
};
use serde::{Deserialize, Serialize};
use sideway::ibverbs::address::{AddressHandleAttribute, Gid};
use sideway::ibverbs::queue_pair::{
    BasicQueuePair, QueuePair, QueuePairAttribute, QueuePairState, QueuePairType,
};
use sideway::ibverbs::AccessFlags;

use super::{CompletionQueue, RdmaDevice, RegisteredBuffer, VerbsError};

const IBV_SEND_SIGNALED: u32 = 1 << 1;
const IBV_SEND_INLINE: u32 = 1 << 3;

/// Most work requests one `ibv_post_send` call carries (one doorbell).
pub const MAX_CHAIN: usize = 64;

/// Queue sizes of a QP.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QpCaps {
    /// Send queue depth (outstanding send WRs).
    pub max_send_wr: u32,
    /// Receive queue depth (posted receives).
    pub max_recv_wr: u32,
    /// Largest payload posted inline; 0 disables inline. Dropped to 0 when
    /// the provider refuses it.
    pub max_inline_bytes: u32,
}

/// What a peer needs to connect to one of our QPs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct QpEndpoint {
    /// QP number.
    pub qpn: u32,
    /// Initial packet sequence number of our send queue.
    pub psn: u32,
    /// Our GID (IPv6 notation).
    pub gid: String,
    /// Our LID (InfiniBand only; 0 on RoCE).
    pub lid: u16,
}

/// Transport knobs used for RTR/RTS.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct QpPathOptions {
    /// IP traffic class (DSCP << 2 | ECN) of the GRH.
    pub traffic_class: u8,
    /// Service level (PFC priority on many RoCE setups).
    pub service_level: u8,
    /// GRH hop limit.
    pub hop_limit: u8,
    /// Local ACK timeout exponent: 4.096 µs × 2^timeout per retry.
    pub timeout: u8,
    /// Transport retries before a "retry exceeded" error.
    pub retry_cnt: u8,
    /// RNR retries (7 = infinite).
    pub rnr_retry: u8,
    /// Minimum RNR NAK timer code.
    pub min_rnr_timer: u8,
    /// Outstanding RDMA READs per QP, both directions.
    pub max_rd_atomic: u8,
}

impl Default for QpPathOptions {
    /// timeout 14 (≈ 67 ms) × 7 retries: a dead peer surfaces as an error
    /// completion in about half a second, yet a congested lab fabric does not
    /// trip it.
    fn default() -> Self {
        QpPathOptions {
            traffic_class: 0,
            service_level: 0,
            hop_limit: 64,
            timeout: 14,
            retry_cnt: 7,
            rnr_retry: 7,
            min_rnr_timer: 12,
            max_rd_atomic: 16,
        }
    }
}

/// A QP's state, as the report names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum QpState {
    /// RESET.
    Reset,
    /// INIT.
    Init,
    /// Ready to receive.
    Rtr,
    /// Ready to send.
    Rts,
    /// Error (or SQ error / drain).
    Error,
    /// Anything else.
    Unknown,
}

/// The send-side operation of a work request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SendOp {
    /// RDMA WRITE (one-sided PUT).
    Write,
    /// RDMA WRITE with immediate (PUT with signal): completes at the target.
    WriteImm(u32),
    /// SEND into a posted receive.
    Send,
    /// SEND with immediate.
    SendImm(u32),
    /// RDMA READ (GET).
    Read,
}

/// One send-queue work request. Local memory is named by buffer + offset so
/// it can be bounds-checked.
#[derive(Debug, Clone, Copy)]
pub struct WorkRequest<'a> {
    /// Returned in the completion.
    pub wr_id: u64,
    /// The operation.
    pub op: SendOp,
    /// Local source (or READ destination).
    pub local: &'a RegisteredBuffer,
    /// Offset into `local`.
    pub local_offset: usize,
    /// Bytes to move.
    pub len: u32,
    /// Remote address (WRITE/READ; ignored for SEND).
    pub remote_addr: u64,
    /// Remote key (WRITE/READ; ignored for SEND).
    pub rkey: u32,
    /// Ask for a completion (selective signalling when false).
    pub signaled: bool,
}

/// A reliable-connected QP.
pub struct RcQueuePair {
    qp: BasicQueuePair,
    qpn: u32,
    psn: u32,
    device: String,
    port: u8,
    max_inline_bytes: u32,
    caps: QpCaps,
}

impl std::fmt::Debug for RcQueuePair {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RcQueuePair")
            .field("qpn", &self.qpn)
            .field("device", &self.device)
            .finish()
    }
}

fn psn_seed() -> u32 {
    fastrand::u32(..) & 0x00ff_ffff
}

impl RcQueuePair {
    /// Creates an RC QP on the device's PD, with `send_cq` and `recv_cq`.
    pub fn new(
        device: &RdmaDevice,
        send_cq: &CompletionQueue,
        recv_cq: &CompletionQueue,
        caps: QpCaps,
    ) -> Result<RcQueuePair, VerbsError> {
        let limits = device.limits();
        device.check_limit(
            "send queue depth (max_qp_wr)",
            u64::from(caps.max_send_wr),
            limits.max_qp_wr,
        )?;
        device.check_limit(
            "receive queue depth (max_qp_wr)",
            u64::from(caps.max_recv_wr),
            limits.max_qp_wr,
        )?;
        let build = |inline: u32| {
            device
                .pd
                .create_qp_builder()
                .setup_qp_type(QueuePairType::ReliableConnection)
                .setup_max_send_wr(caps.max_send_wr)
                .setup_max_recv_wr(caps.max_recv_wr.max(1))
                .setup_max_send_sge(1)
                .setup_max_recv_sge(1)
                .setup_max_inline_data(inline)
                .setup_send_cq(send_cq.generic())
                .setup_recv_cq(recv_cq.generic())
                .build()
        };
        let (qp, max_inline_bytes) = match build(caps.max_inline_bytes) {
            Ok(qp) => (qp, caps.max_inline_bytes),
            Err(_) if caps.max_inline_bytes > 0 => (
                build(0).map_err(|err| qp_create_error(device, err.to_string()))?,
                0,
            ),
            Err(err) => return Err(qp_create_error(device, err.to_string())),
        };
        let qpn = qp.qp_number();
        Ok(RcQueuePair {
            qp,
            qpn,
            psn: psn_seed(),
            device: device.name().to_string(),
            port: device.facts().port,
            max_inline_bytes,
            caps,
        })
    }

    /// The local QP number.
    pub fn qpn(&self) -> u32 {
        self.qpn
    }

    /// The queue sizes.
    pub fn caps(&self) -> QpCaps {
        QpCaps {
            max_inline_bytes: self.max_inline_bytes,
            ..self.caps
        }
    }

    /// What the peer needs to connect to this QP.
    pub fn endpoint(&self, device: &RdmaDevice) -> QpEndpoint {
        QpEndpoint {
            qpn: self.qpn,
            psn: self.psn,
            gid: device.facts().gid.gid.clone(),
            lid: 0,
        }
    }

    /// The QP state as last set (`qp->state`).
    pub fn state(&self) -> QpState {
        match self.qp.state() {
            QueuePairState::Reset => QpState::Reset,
            QueuePairState::Init => QpState::Init,
            QueuePairState::ReadyToReceive => QpState::Rtr,
            QueuePairState::ReadyToSend => QpState::Rts,
            QueuePairState::Error
            | QueuePairState::SendQueueError
            | QueuePairState::SendQueueDrain => QpState::Error,
            QueuePairState::Unknown => QpState::Unknown,
        }
    }

    fn modify(&mut self, attr: &QueuePairAttribute, state: &'static str) -> Result<(), VerbsError> {
        self.qp.modify(attr).map_err(|err| VerbsError::ModifyQp {
            device: self.device.clone(),
            qpn: self.qpn,
            state,
            detail: error_chain(&err),
        })
    }

    /// Moves the QP RESET→INIT→RTR→RTS towards `remote`.
    pub fn connect(
        &mut self,
        device: &RdmaDevice,
        remote: &QpEndpoint,
        path: &QpPathOptions,
    ) -> Result<(), VerbsError> {
        let access = AccessFlags::LocalWrite | AccessFlags::RemoteWrite | AccessFlags::RemoteRead;
        let mut init = QueuePairAttribute::new();
        init.setup_state(QueuePairState::Init)
            .setup_pkey_index(0)
            .setup_port(self.port)
            .setup_access_flags(access);
        self.modify(&init, "INIT")?;

        let remote_gid: Ipv6Addr = remote.gid.parse().map_err(|_| VerbsError::ModifyQp {
            device: self.device.clone(),
            qpn: self.qpn,
            state: "RTR",
            detail: format!("peer sent an unparsable GID '{}'", remote.gid),
        })?;
        let rd_atomic = path
            .max_rd_atomic
            .min(device.limits().max_qp_rd_atom.min(255) as u8)
            .max(1);
        let mut av = AddressHandleAttribute::new();
        av.setup_port(self.port)
            .setup_dest_lid(remote.lid)
            .setup_service_level(path.service_level)
            .setup_grh(
                &Gid::from(remote_gid),
                0,
                device.facts().gid.index,
                path.hop_limit,
                path.traffic_class,
            );
        let mut rtr = QueuePairAttribute::new();
        rtr.setup_state(QueuePairState::ReadyToReceive)
            .setup_path_mtu(device.active_mtu())
            .setup_dest_qp_num(remote.qpn)
            .setup_rq_psn(remote.psn)
            .setup_max_dest_read_atomic(rd_atomic)
            .setup_min_rnr_timer(path.min_rnr_timer)
            .setup_address_vector(&av);
        self.modify(&rtr, "RTR")?;

        let mut rts = QueuePairAttribute::new();
        rts.setup_state(QueuePairState::ReadyToSend)
            .setup_sq_psn(self.psn)
            .setup_timeout(path.timeout)
            .setup_retry_cnt(path.retry_cnt)
            .setup_rnr_retry(path.rnr_retry)
            .setup_max_read_atomic(rd_atomic);
        self.modify(&rts, "RTS")
    }

    /// Posts one send-queue work request.
    #[inline]
    pub fn post_send(&mut self, wr: &WorkRequest<'_>) -> Result<(), VerbsError> {
        // a one-entry chain: no 64-entry arrays to build for a single post
        self.post_chunk::<1>(std::slice::from_ref(wr))
    }

    /// Posts `wrs` as linked chains of up to [`MAX_CHAIN`] work requests:
    /// one `ibv_post_send` call (one doorbell) per chain, which is what a
    /// KV connector posting thousands of page descriptors needs. On error,
    /// the WRs before the failing one in its chain were posted (see
    /// `ibv_post_send(3)`, `bad_wr`).
    #[inline]
    pub fn post_send_chain(&mut self, wrs: &[WorkRequest<'_>]) -> Result<(), VerbsError> {
        for chunk in wrs.chunks(MAX_CHAIN) {
            match chunk.len() {
                1 => self.post_chunk::<1>(chunk)?,
                2..=8 => self.post_chunk::<8>(chunk)?,
                _ => self.post_chunk::<MAX_CHAIN>(chunk)?,
            }
        }
        Ok(())
    }

    /// Posts up to `N` WRs as one linked chain (arrays of `N` on the stack,
    /// so a single post builds one entry, not [`MAX_CHAIN`]).
    fn post_chunk<const N: usize>(&mut self, wrs: &[WorkRequest<'_>]) -> Result<(), VerbsError> {
        assert!(wrs.len() <= N, "a chain of {} WRs exceeds {N}", wrs.len());
        let zero_sge = ibv_sge {
            addr: 0,
            length: 0,
            lkey: 0,
        };
        let mut sges = [zero_sge; N];
        // SAFETY: ibv_send_wr is plain old data (pointers, integers, unions
        // of them); all-zero is a valid "empty" request.
        let mut raws: [ibv_send_wr; N] = unsafe { std::mem::zeroed() };
        for (i, wr) in wrs.iter().enumerate() {
            let end = wr.local_offset.checked_add(wr.len as usize);
            assert!(
                end.is_some_and(|end| end <= wr.local.len()),
                "work request {}+{} outside the {}-byte buffer",
                wr.local_offset,
                wr.len,
                wr.local.len()
            );
            sges[i] = ibv_sge {
                addr: wr.local.addr() + wr.local_offset as u64,
                length: wr.len,
                lkey: wr.local.lkey(),
            };
            let raw = &mut raws[i];
            raw.wr_id = wr.wr_id;
            raw.num_sge = 1;
            let (opcode, imm) = match wr.op {
                SendOp::Write => (ibv_wr_opcode::IBV_WR_RDMA_WRITE, None),
                SendOp::WriteImm(imm) => (ibv_wr_opcode::IBV_WR_RDMA_WRITE_WITH_IMM, Some(imm)),
                SendOp::Send => (ibv_wr_opcode::IBV_WR_SEND, None),
                SendOp::SendImm(imm) => (ibv_wr_opcode::IBV_WR_SEND_WITH_IMM, Some(imm)),
                SendOp::Read => (ibv_wr_opcode::IBV_WR_RDMA_READ, None),
            };
            raw.opcode = opcode;
            if let Some(imm) = imm {
                raw.imm_data_invalidated_rkey_union.imm_data = imm.to_be();
            }
            if !matches!(wr.op, SendOp::Send | SendOp::SendImm(_)) {
                raw.wr.rdma = rdma_mummy_sys::rdma_t {
                    remote_addr: wr.remote_addr,
                    rkey: wr.rkey,
                };
            }
            if wr.signaled {
                raw.send_flags |= IBV_SEND_SIGNALED;
            }
            if wr.len > 0 && wr.len <= self.max_inline_bytes && wr.op != SendOp::Read {
                raw.send_flags |= IBV_SEND_INLINE;
            }
        }
        // link the chain and its scatter entries only now, every pointer
        // derived from one base pointer per array (no reference to an
        // element outlives the next write)
        let raw_base = raws.as_mut_ptr();
        let sge_base = sges.as_mut_ptr();
        for i in 0..wrs.len() {
            // SAFETY: i < wrs.len() <= N, so both offsets stay inside their
            // arrays, which live (unmoved) on this frame until the post.
            unsafe {
                (*raw_base.add(i)).sg_list = sge_base.add(i);
                if i + 1 < wrs.len() {
                    (*raw_base.add(i)).next = raw_base.add(i + 1);
                }
            }
        }
        let mut bad: *mut ibv_send_wr = null_mut();
        // SAFETY: the QP is alive (owned); `raws` and `sges` live on this
        // stack frame across the call and are linked only to each other, the
        // chain ends with a null `next`, and every local range lies inside a
        // registered buffer (asserted above), so an inline copy reads only
        // that buffer.
        let ret = unsafe { ibv_post_send(self.qp.qp().as_ptr(), raw_base, &mut bad) };
        if ret != 0 {
            return Err(post_error(self.qpn, ret, "send"));
        }
        Ok(())
    }

    /// Posts one receive of `len` bytes at `offset` of `buffer`.
    #[inline]
    pub fn post_recv(
        &mut self,
        wr_id: u64,
        buffer: &RegisteredBuffer,
        offset: usize,
        len: u32,
    ) -> Result<(), VerbsError> {
        assert!(
            offset
                .checked_add(len as usize)
                .is_some_and(|end| end <= buffer.len()),
            "receive {offset}+{len} outside the {}-byte buffer",
            buffer.len()
        );
        let mut sge = ibv_sge {
            addr: buffer.addr() + offset as u64,
            length: len,
            lkey: buffer.lkey(),
        };
        let mut raw = ibv_recv_wr {
            wr_id,
            next: null_mut(),
            sg_list: &mut sge,
            num_sge: 1,
        };
        let mut bad: *mut ibv_recv_wr = null_mut();
        // SAFETY: the QP is alive, `raw`/`sge` outlive the call, the range is
        // inside registered memory (asserted above).
        let ret = unsafe { ibv_post_recv(self.qp.qp().as_ptr(), &mut raw, &mut bad) };
        if ret != 0 {
            return Err(post_error(self.qpn, ret, "receive"));
        }
        Ok(())
    }
}

fn post_error(qpn: u32, ret: i32, queue: &'static str) -> VerbsError {
    let hint = match (ret, queue) {
        (libc::ENOMEM, "send") | (libc::ENOSPC, "send") => {
            "; the send queue is full: more work requests outstanding than the QP was sized for (an infab bug: please report it)"
        }
        (libc::ENOMEM, _) | (libc::ENOSPC, _) => "; the receive queue is full",
        (libc::EINVAL, _) => "; the work request is invalid, or the QP is not in RTS/error state",
        _ => "",
    };
    VerbsError::Post {
        qpn,
        cause: io::Error::from_raw_os_error(ret),
        hint,
    }
}

fn qp_create_error(device: &RdmaDevice, detail: String) -> VerbsError {
    VerbsError::Call {
        device: device.name().to_string(),
        call: "ibv_create_qp",
        cause: io::Error::other(detail),
        hint:
            "; lower --qps or --tx-depth, or check the device's max_qp/max_qp_wr (`ibv_devinfo -v`)",
    }
}

fn error_chain(err: &dyn std::error::Error) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(inner) = source {
        text.push_str(": ");
        text.push_str(&inner.to_string());
        source = inner.source();
    }
    text
}
