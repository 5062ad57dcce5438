//! Completion queues and the polling hot path.
//!
//! `poll` calls the provider's `ibv_poll_cq` directly into a preallocated
//! array of `ibv_wc` and converts them into plain [`Completion`]s in a
//! caller-owned `Vec`: no allocation per poll.

use std::ffi::CStr;
use std::io;
use std::sync::Arc;

use std::os::fd::AsRawFd;
use std::time::Duration;

use rdma_mummy_sys::{
    ibv_ack_cq_events, ibv_cq, ibv_get_cq_event, ibv_poll_cq, ibv_req_notify_cq, ibv_wc,
    ibv_wc_opcode, ibv_wc_status_str,
};
use sideway::ibverbs::completion::{
    BasicCompletionQueue, CompletionChannel, CompletionQueue as _, GenericCompletionQueue,
};

use super::{RdmaDevice, VerbsError};

/// Completions fetched per `ibv_poll_cq` call.
const POLL_BATCH: usize = 32;

/// What kind of work request completed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CompletionOp {
    /// A SEND left.
    Send,
    /// An RDMA WRITE (with or without immediate) was acknowledged.
    Write,
    /// An RDMA READ returned.
    Read,
    /// A SEND arrived into a posted receive.
    Recv,
    /// A WRITE_WITH_IMM landed; the immediate is in [`Completion::imm`].
    RecvWithImm,
    /// Anything else (atomics, flush); the raw opcode.
    Other(u32),
}

/// One work completion, as plain data.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Completion {
    /// The `wr_id` the work request was posted with.
    pub wr_id: u64,
    /// The local QP number.
    pub qp_num: u32,
    /// The operation.
    pub op: CompletionOp,
    /// Bytes received (receive completions only).
    pub byte_len: u32,
    /// Immediate data, host byte order, when the completion carries one.
    pub imm: Option<u32>,
    /// `ibv_wc_status` (0 = success).
    pub status: u32,
    /// Vendor syndrome, for error completions.
    pub vendor_err: u32,
}

impl Completion {
    /// Whether the work request succeeded.
    pub fn is_ok(&self) -> bool {
        self.status == 0
    }

    /// rdma-core's text for the status, e.g. "transport retry counter exceeded".
    pub fn status_text(&self) -> String {
        // SAFETY: ibv_wc_status_str returns a pointer to a static C string
        // for any value (unknown values map to a fixed string).
        unsafe { CStr::from_ptr(ibv_wc_status_str(self.status)) }
            .to_string_lossy()
            .into_owned()
    }

    fn from_wc(wc: &ibv_wc) -> Completion {
        const WITH_IMM: u32 = 1 << 1; // IBV_WC_WITH_IMM
        let op = match wc.opcode {
            ibv_wc_opcode::IBV_WC_SEND => CompletionOp::Send,
            ibv_wc_opcode::IBV_WC_RDMA_WRITE => CompletionOp::Write,
            ibv_wc_opcode::IBV_WC_RDMA_READ => CompletionOp::Read,
            ibv_wc_opcode::IBV_WC_RECV => CompletionOp::Recv,
            ibv_wc_opcode::IBV_WC_RECV_RDMA_WITH_IMM => CompletionOp::RecvWithImm,
            other => CompletionOp::Other(other),
        };
        let imm = if wc.wc_flags & WITH_IMM != 0 {
            // SAFETY: with IBV_WC_WITH_IMM set, the union holds imm_data
            // (network byte order).
            Some(u32::from_be(unsafe {
                wc.imm_data_invalidated_rkey_union.imm_data
            }))
        } else {
            None
        };
        Completion {
            wr_id: wc.wr_id,
            qp_num: wc.qp_num,
            op,
            byte_len: wc.byte_len,
            imm,
            status: wc.status,
            vendor_err: wc.vendor_err,
        }
    }
}

/// A completion queue, polled by one thread.
pub struct CompletionQueue {
    // declared before `channel`: the CQ is destroyed first, as rdma-core asks
    cq: Arc<BasicCompletionQueue>,
    wcs: Vec<ibv_wc>,
    entries: u32,
    /// Its completion channel (event waits).
    channel: Arc<CompletionChannel>,
}

impl std::fmt::Debug for CompletionQueue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CompletionQueue")
            .field("entries", &self.entries)
            .finish()
    }
}

impl CompletionQueue {
    /// Creates a CQ with room for `entries` completions (checked against
    /// `max_cqe`) and its own completion channel, so its thread can sleep
    /// until a completion arrives ([`CompletionQueue::arm`],
    /// [`CompletionQueue::wait_any`]) instead of spinning on a core the
    /// provider or the NIC's other work needs. Unarmed, the channel costs
    /// nothing on the polling path.
    pub fn new(device: &RdmaDevice, entries: u32) -> Result<CompletionQueue, VerbsError> {
        device.check_limit(
            "completion queue entries (max_cqe)",
            u64::from(entries),
            device.limits().max_cqe,
        )?;
        let channel = CompletionChannel::new(&device.ctx).map_err(|err| {
            VerbsError::call(
                device.name(),
                "ibv_create_comp_channel",
                io::Error::other(err.to_string()),
            )
        })?;
        channel.set_nonblocking(true).map_err(|err| {
            VerbsError::call(
                device.name(),
                "fcntl(O_NONBLOCK) on the completion channel",
                err,
            )
        })?;
        let cq = device
            .ctx
            .create_cq_builder()
            .setup_cqe(entries)
            .setup_comp_channel(&channel, 0)
            .build()
            .map_err(|err| {
                VerbsError::call(
                    device.name(),
                    "ibv_create_cq",
                    io::Error::other(err.to_string()),
                )
            })?;
        // SAFETY: ibv_wc is plain old data; all-zero is a valid value.
        let blank: ibv_wc = unsafe { std::mem::zeroed() };
        Ok(CompletionQueue {
            cq,
            wcs: vec![blank; POLL_BATCH],
            entries,
            channel,
        })
    }

    /// Asks for an event on the next completion (`ibv_req_notify_cq(3)`).
    /// Poll once more after arming: a completion that arrived before the
    /// call raises no event.
    pub fn arm(&mut self) -> Result<(), VerbsError> {
        // SAFETY: the CQ is alive (we hold its Arc); arming only sets a flag
        // in the provider.
        let ret = unsafe { ibv_req_notify_cq(self.cq.cq().as_ptr(), 0) };
        if ret != 0 {
            return Err(VerbsError::Poll { ret: -ret.abs() });
        }
        Ok(())
    }

    /// Sleeps until one of the armed `cqs` raises an event or `timeout`
    /// passes; returns whether an event came (each is acknowledged at once,
    /// so destroying the CQs later never blocks). Arm them first and poll
    /// once more after arming: a completion before the arm raises no event.
    pub fn wait_any(
        cqs: &mut [&mut CompletionQueue],
        timeout: Duration,
    ) -> Result<bool, VerbsError> {
        const MOST: usize = 4;
        let mut fds = [libc::pollfd {
            fd: -1,
            events: libc::POLLIN,
            revents: 0,
        }; MOST];
        let count = cqs.len().min(MOST);
        for (fd, cq) in fds.iter_mut().zip(cqs.iter()) {
            fd.fd = cq.channel.as_raw_fd();
        }
        let timeout = libc::timespec {
            tv_sec: timeout.as_secs().min(i32::MAX as u64) as libc::time_t,
            tv_nsec: libc::c_long::from(timeout.subsec_nanos() as i32),
        };
        // SAFETY: `count` valid pollfds; the channels' fds stay open while we
        // hold the CQs (and so their channels); a valid timespec; no signal mask.
        let ready = unsafe {
            libc::ppoll(
                fds.as_mut_ptr(),
                count as libc::nfds_t,
                &timeout,
                std::ptr::null(),
            )
        };
        if ready <= 0 {
            return Ok(false);
        }
        let mut got = false;
        for (fd, cq) in fds.iter().zip(cqs.iter()) {
            if fd.revents & libc::POLLIN == 0 {
                continue;
            }
            let mut event_cq: *mut ibv_cq = std::ptr::null_mut();
            let mut context: *mut std::ffi::c_void = std::ptr::null_mut();
            // SAFETY: the channel is alive and non-blocking; the out pointers
            // are valid locals. Only this CQ is attached to its channel.
            let ret = unsafe {
                ibv_get_cq_event(
                    cq.channel.comp_channel().as_ptr(),
                    &mut event_cq,
                    &mut context,
                )
            };
            if ret != 0 {
                continue; // nothing there after all (EAGAIN)
            }
            // SAFETY: `event_cq` is the CQ the event was for (this one); one
            // event taken, one acknowledged.
            unsafe { ibv_ack_cq_events(event_cq, 1) };
            got = true;
        }
        Ok(got)
    }

    /// The number of entries the CQ was created with.
    pub fn entries(&self) -> u32 {
        self.entries
    }

    pub(crate) fn generic(&self) -> GenericCompletionQueue {
        GenericCompletionQueue::from(Arc::clone(&self.cq))
    }

    /// Fetches up to a batch of completions into `out` (cleared first) and
    /// returns how many arrived. Never blocks.
    pub fn poll(&mut self, out: &mut Vec<Completion>) -> Result<usize, VerbsError> {
        out.clear();
        // SAFETY: the CQ is alive (we hold its Arc), `wcs` has room for
        // POLL_BATCH entries and this thread is the only poller (&mut self).
        let ret = unsafe {
            ibv_poll_cq(
                self.cq.cq().as_ptr(),
                POLL_BATCH as i32,
                self.wcs.as_mut_ptr(),
            )
        };
        if ret < 0 {
            return Err(VerbsError::Poll { ret });
        }
        let got = ret as usize;
        out.extend(self.wcs[..got].iter().map(Completion::from_wc));
        Ok(got)
    }
}
