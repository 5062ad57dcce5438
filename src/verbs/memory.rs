//! Host memory for RDMA: page-aligned anonymous mappings (optionally huge
//! pages), registered as one memory region.
//!
//! A buffer is shared by every QP of an endpoint: a 1 GiB message needs one
//! 1 GiB region per side, never one per QP. The NIC reads and writes this
//! memory behind the program's back, like any DMA buffer, so the API hands out
//! copies (`read_into`, `write_from`) and single volatile bytes, never Rust
//! references into it.

use std::io;
use std::mem::ManuallyDrop;
use std::ptr::NonNull;
use std::sync::Arc;

use sideway::ibverbs::memory_region::MemoryRegion;
use sideway::ibverbs::AccessFlags;

use super::{RdmaDevice, VerbsError};

const PAGE_BYTES: usize = 4096;
const HUGE_PAGE_BYTES: usize = 2 * 1024 * 1024;

/// How to allocate a buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BufferOptions {
    /// Usable size in bytes (rounded up to whole pages when mapped).
    pub bytes: usize,
    /// Back the buffer with 2 MiB huge pages (needs `vm.nr_hugepages`).
    pub huge_pages: bool,
    /// What the peer may do through the buffer's rkey.
    pub remote: RemoteAccess,
}

/// What a peer may do to a buffer through its rkey. Each role registers
/// only what its test needs (least privilege): a WRITE target allows
/// remote write, a READ source remote read, an initiator's buffer neither.
/// Local write is always allowed (receives and READ responses land there).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
pub struct RemoteAccess {
    /// The peer may RDMA WRITE into the buffer.
    pub write: bool,
    /// The peer may RDMA READ from the buffer.
    pub read: bool,
}

impl RemoteAccess {
    /// Local access only.
    pub const NONE: RemoteAccess = RemoteAccess {
        write: false,
        read: false,
    };
    /// The peer writes into the buffer.
    pub const WRITE: RemoteAccess = RemoteAccess {
        write: true,
        read: false,
    };
    /// The peer reads from the buffer.
    pub const READ: RemoteAccess = RemoteAccess {
        write: false,
        read: true,
    };

    /// The ibv access flags: local write, plus the remote rights asked for.
    fn flags(self) -> AccessFlags {
        let mut flags = AccessFlags::LocalWrite;
        if self.write {
            flags |= AccessFlags::RemoteWrite;
        }
        if self.read {
            flags |= AccessFlags::RemoteRead;
        }
        flags
    }
}

/// A mapped, registered buffer: local key for posting, remote key and
/// address for the peer.
pub struct RegisteredBuffer {
    ptr: NonNull<u8>,
    bytes: usize,
    mapped_bytes: usize,
    /// Deregistered in Drop before the unmap, hence ManuallyDrop.
    mr: ManuallyDrop<Arc<MemoryRegion>>,
}

// SAFETY: the mapping is owned by this value alone and lives until Drop; all
// access goes through raw-pointer copies of plain bytes (u8 has no invalid
// values), which is what the NIC does concurrently anyway. Sharing the handle
// across threads can therefore race only on byte contents, never on memory
// validity.
unsafe impl Send for RegisteredBuffer {}
// SAFETY: see Send above; no method hands out a reference into the mapping.
unsafe impl Sync for RegisteredBuffer {}

impl std::fmt::Debug for RegisteredBuffer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RegisteredBuffer")
            .field("addr", &self.addr())
            .field("bytes", &self.bytes)
            .field("lkey", &self.lkey())
            .field("rkey", &self.rkey())
            .finish()
    }
}

/// `MemAvailable` from /proc/meminfo, in bytes, when readable.
pub(crate) fn mem_available_bytes() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = text.lines().find(|l| l.starts_with("MemAvailable:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

impl RegisteredBuffer {
    /// Maps `options.bytes` of zeroed memory and registers it on the
    /// device's protection domain for local write and `options.remote`.
    pub fn new(
        device: &RdmaDevice,
        options: BufferOptions,
    ) -> Result<RegisteredBuffer, VerbsError> {
        let bytes = options.bytes.max(1);
        device.check_limit(
            "memory region bytes (max_mr_size)",
            bytes as u64,
            device.limits().max_mr_size,
        )?;
        let kind = if options.huge_pages {
            "huge-page"
        } else {
            "host"
        };
        if let Some(available) = mem_available_bytes() {
            if !options.huge_pages && bytes as u64 > available {
                return Err(VerbsError::Alloc {
                    bytes,
                    kind,
                    cause: io::Error::from_raw_os_error(libc::ENOMEM),
                    hint: "; the machine has less available memory (MemAvailable) than that: use smaller --size",
                });
            }
        }
        let granule = if options.huge_pages {
            HUGE_PAGE_BYTES
        } else {
            PAGE_BYTES
        };
        let mapped_bytes = bytes.div_ceil(granule) * granule;
        let mut flags = libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_POPULATE;
        if options.huge_pages {
            flags |= libc::MAP_HUGETLB;
        }
        // SAFETY: an anonymous private mapping at an address of the kernel's
        // choice touches no existing memory; the result is checked below.
        let raw = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                mapped_bytes,
                libc::PROT_READ | libc::PROT_WRITE,
                flags,
                -1,
                0,
            )
        };
        if raw == libc::MAP_FAILED {
            let hint = if options.huge_pages {
                "; reserve huge pages first (echo N > /proc/sys/vm/nr_hugepages) or drop --huge-pages"
            } else {
                "; use a smaller --size"
            };
            return Err(VerbsError::Alloc {
                bytes,
                kind,
                cause: io::Error::last_os_error(),
                hint,
            });
        }
        let ptr = NonNull::new(raw.cast::<u8>())
            .expect("mmap returned a null pointer without MAP_FAILED");
        let access = options.remote.flags();
        // SAFETY: ptr..ptr+mapped_bytes is a live mapping owned by the value
        // built below, which drops the MR (field order) before unmapping.
        let mr = unsafe {
            device
                .pd
                .reg_mr(ptr.as_ptr() as usize, mapped_bytes, access)
        };
        let mr = match mr {
            Ok(mr) => mr,
            Err(err) => {
                // SAFETY: unmapping the mapping made above, not yet shared.
                unsafe { libc::munmap(raw, mapped_bytes) };
                return Err(VerbsError::Call {
                    device: device.name().to_string(),
                    call: "ibv_reg_mr",
                    cause: io::Error::other(format!("{err} ({mapped_bytes} bytes)")),
                    hint: "; raise the locked-memory limit (`ulimit -l unlimited`, or memlock in limits.conf)",
                });
            }
        };
        Ok(RegisteredBuffer {
            ptr,
            bytes,
            mapped_bytes,
            mr: ManuallyDrop::new(mr),
        })
    }

    /// Start address, as the peer uses it in RDMA WRITE/READ.
    pub fn addr(&self) -> u64 {
        self.ptr.as_ptr() as u64
    }

    /// Usable size in bytes.
    pub fn len(&self) -> usize {
        self.bytes
    }

    /// Whether the buffer is empty (never, in practice).
    pub fn is_empty(&self) -> bool {
        self.bytes == 0
    }

    /// Local key, for scatter/gather entries.
    pub fn lkey(&self) -> u32 {
        self.mr.lkey()
    }

    /// Remote key, for the peer's RDMA WRITE/READ.
    pub fn rkey(&self) -> u32 {
        self.mr.rkey()
    }

    fn check_range(&self, offset: usize, len: usize) {
        assert!(
            offset.checked_add(len).is_some_and(|end| end <= self.bytes),
            "buffer access {offset}+{len} outside {} bytes",
            self.bytes
        );
    }

    /// Copies `dst.len()` bytes starting at `offset` out of the buffer.
    /// Panics when the range is outside the buffer.
    pub fn read_into(&self, offset: usize, dst: &mut [u8]) {
        self.check_range(offset, dst.len());
        // SAFETY: the range is inside the live mapping (checked above) and
        // `dst` is a distinct Rust slice; bytes have no invalid values.
        unsafe {
            std::ptr::copy_nonoverlapping(
                self.ptr.as_ptr().add(offset),
                dst.as_mut_ptr(),
                dst.len(),
            )
        }
    }

    /// Copies `src` into the buffer at `offset`. Panics when the range is
    /// outside the buffer.
    pub fn write_from(&self, offset: usize, src: &[u8]) {
        self.check_range(offset, src.len());
        // SAFETY: the range is inside the live mapping (checked above) and
        // `src` is a distinct Rust slice.
        unsafe {
            std::ptr::copy_nonoverlapping(src.as_ptr(), self.ptr.as_ptr().add(offset), src.len())
        }
    }

    /// Reads one byte with a volatile load: the way to watch for a remote
    /// RDMA WRITE landing (ping-pong latency polls the last byte).
    pub fn load_volatile(&self, offset: usize) -> u8 {
        self.check_range(offset, 1);
        // SAFETY: in bounds (checked); volatile so the compiler re-reads the
        // memory the NIC writes.
        unsafe { std::ptr::read_volatile(self.ptr.as_ptr().add(offset)) }
    }

    /// Writes one byte with a volatile store.
    pub fn store_volatile(&self, offset: usize, value: u8) {
        self.check_range(offset, 1);
        // SAFETY: in bounds (checked).
        unsafe { std::ptr::write_volatile(self.ptr.as_ptr().add(offset), value) }
    }
}

impl Drop for RegisteredBuffer {
    fn drop(&mut self) {
        // SAFETY: `mr` is dropped exactly once, here, and never used again;
        // the MR is deregistered before the memory under it is unmapped.
        unsafe { ManuallyDrop::drop(&mut self.mr) };
        // SAFETY: the mapping made in `new`, no longer registered and
        // referenced by nothing else.
        unsafe { libc::munmap(self.ptr.as_ptr().cast(), self.mapped_bytes) };
    }
}
