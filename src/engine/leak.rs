//! The deliberate leak of soak tests (the hidden `--soak-inject-leak`):
//! registered memory that grows by [`INJECTED_LEAK_BYTES`] per sample and
//! is freed only when the run ends, so the soak's trend test has a real
//! leak (RSS, pinned pages, MRs) to find. One piece for the p2p initiator
//! and every multi-rank node.

use crate::verbs::{BufferOptions, RdmaDevice, RegisteredBuffer, RemoteAccess, VerbsError};

/// What one step of the leak registers (and keeps).
pub const INJECTED_LEAK_BYTES: usize = 1 << 20;

/// The regions leaked so far.
#[derive(Debug, Default)]
pub struct InjectedLeak {
    regions: Vec<RegisteredBuffer>,
}

impl InjectedLeak {
    /// Registers [`INJECTED_LEAK_BYTES`] more on `device` and keeps them.
    pub fn grow(&mut self, device: &RdmaDevice) -> Result<(), VerbsError> {
        self.regions.push(RegisteredBuffer::new(
            device,
            BufferOptions {
                bytes: INJECTED_LEAK_BYTES,
                memory: crate::verbs::MemoryKind::Host,
                remote: RemoteAccess::NONE,
            },
        )?);
        Ok(())
    }
}
