//! The control channel between the initiator (`infab run`) and the target
//! (`infab serve`): a small versioned TCP protocol of length-prefixed JSON
//! messages. It exchanges QP endpoints, buffer keys, run parameters, clock
//! probes and per-trial reports. It carries no benchmark traffic.
//!
//! Every read has a deadline; an optional shared token rejects unknown
//! clients; the server binds only to the address it is given.

mod abort;
mod clock;
mod protocol;
mod watch;
mod wire;

pub use abort::Abort;
pub use clock::{estimate_offset, monotonic_ns, ClockOffset};
pub use protocol::{
    BufferKey, Connect, Connected, Hello, Message, Mode, Op, TrialReport, TrialStart, Welcome,
    PROTOCOL_VERSION,
};
pub use watch::PeerWatch;
pub use wire::{decode_frame, encode_frame, Channel, ControlError, MAX_MESSAGE_BYTES};
