//! Safe wrappers over rdma-core verbs: the only module of infab with `unsafe`.
//!
//! It owns device discovery and selection (by name, netdev or IP), RoCEv2 GID
//! choice, protection domain, host memory and its registration, completion
//! queues, RC queue pairs (create, INIT→RTR→RTS) and the posting/polling hot
//! path. It does not own timing, loops, deadlines or statistics: those live in
//! `engine/`.
//!
//! Resource setup goes through the `sideway` crate (RAII, parent `Arc`s keep a
//! PD alive while its MRs and QPs exist). The hot path (post send/recv, poll)
//! calls the raw inline verbs of `rdma-mummy-sys` (sideway's own binding, so
//! exactly one verbs binding is linked), because sideway's basic post/poll
//! allocate a `Vec` per call. See `docs/design/verbs-binding.md`.
//!
//! References: RDMAmojo (<https://www.rdmamojo.com/>) and the rdma-core man
//! pages `ibv_post_send(3)`, `ibv_poll_cq(3)`, `ibv_modify_qp(3)`.
#![allow(unsafe_code)]

mod completion;
pub mod cuda;
mod device;
mod error;
mod gid;
mod memory;
mod queue_pair;

pub use completion::{Completion, CompletionOp, CompletionQueue};
pub use device::{
    list_devices, DeviceFacts, DeviceLimits, DeviceSelector, DeviceSummary, GidSummary, RdmaDevice,
};
pub use error::VerbsError;
pub use gid::GidChoice;
pub use memory::{BufferOptions, MemoryKind, RegisteredBuffer, Registration, RemoteAccess};
pub use queue_pair::{
    QpCaps, QpEndpoint, QpPathOptions, QpState, RcQueuePair, SendOp, WorkRequest, MAX_CHAIN,
};
