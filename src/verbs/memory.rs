//! Memory for RDMA, registered as one memory region: page-aligned anonymous
//! host mappings (optionally huge pages), or GPU memory (`cuda:N`) exported
//! as a dma-buf (`ibv_reg_dmabuf_mr`), or, where the provider cannot import
//! dma-bufs, registered by address through nvidia-peermem.
//!
//! A buffer is shared by every QP of an endpoint: a 1 GiB message needs one
//! 1 GiB region per side, never one per QP. The NIC reads and writes this
//! memory behind the program's back, like any DMA buffer, so the API hands out
//! copies (`read_into`, `write_from`) and single volatile bytes, never Rust
//! references into it.

use std::fmt;
use std::io;
use std::mem::ManuallyDrop;
use std::os::fd::AsRawFd;
use std::ptr::NonNull;
use std::sync::Arc;

use sideway::ibverbs::memory_region::{MemoryRegion, RegisterMemoryRegionErrorKind};
use sideway::ibverbs::AccessFlags;

use super::cuda::{CudaGpu, DeviceMemory};
use super::{RdmaDevice, VerbsError};

const PAGE_BYTES: usize = 4096;
const HUGE_PAGE_BYTES: usize = 2 * 1024 * 1024;

/// Where a buffer lives (`--mem`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum MemoryKind {
    /// Anonymous host memory on 4 KiB pages.
    #[default]
    Host,
    /// Host memory on 2 MiB huge pages (needs `vm.nr_hugepages`).
    Huge,
    /// Device memory of CUDA GPU N.
    Cuda(u32),
}

impl MemoryKind {
    /// `Huge` when `huge_pages`, else `Host` (the `--huge-pages` flag).
    pub fn host(huge_pages: bool) -> MemoryKind {
        if huge_pages {
            MemoryKind::Huge
        } else {
            MemoryKind::Host
        }
    }

    /// Parses `host`, `huge` or `cuda:N`.
    pub fn parse(text: &str) -> Result<MemoryKind, String> {
        match text.trim() {
            "host" => Ok(MemoryKind::Host),
            "huge" => Ok(MemoryKind::Huge),
            other => match other.strip_prefix("cuda:").map(str::parse::<u32>) {
                Some(Ok(n)) => Ok(MemoryKind::Cuda(n)),
                Some(Err(_)) => Err(format!(
                    "'{other}': the GPU is cuda:N with N a CUDA ordinal (cuda:0, cuda:1, ...)"
                )),
                None => Err(format!(
                    "'{other}' is no memory kind; use host, huge or cuda:N"
                )),
            },
        }
    }

    /// GPU memory.
    pub fn is_gpu(self) -> bool {
        matches!(self, MemoryKind::Cuda(_))
    }
}

impl fmt::Display for MemoryKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            MemoryKind::Host => f.write_str("host"),
            MemoryKind::Huge => f.write_str("huge"),
            MemoryKind::Cuda(n) => write!(f, "cuda:{n}"),
        }
    }
}

impl std::str::FromStr for MemoryKind {
    type Err = String;
    fn from_str(text: &str) -> Result<Self, String> {
        MemoryKind::parse(text)
    }
}

impl serde::Serialize for MemoryKind {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for MemoryKind {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        MemoryKind::parse(&text).map_err(serde::de::Error::custom)
    }
}

/// How a buffer was registered with the NIC.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Registration {
    /// `ibv_reg_mr` on host memory.
    Host,
    /// `ibv_reg_dmabuf_mr` on a dma-buf exported by the CUDA driver.
    Dmabuf,
    /// `ibv_reg_mr` on the device pointer, resolved by nvidia-peermem.
    Peermem,
}

impl Registration {
    /// The name in results: "host", "dmabuf" or "peermem".
    pub fn name(self) -> &'static str {
        match self {
            Registration::Host => "host",
            Registration::Dmabuf => "dmabuf",
            Registration::Peermem => "peermem",
        }
    }
}

/// How to allocate a buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BufferOptions {
    /// Usable size in bytes (rounded up to whole pages when mapped, to
    /// whole 64 KiB GPU pages on a GPU).
    pub bytes: usize,
    /// Where the buffer lives.
    pub memory: MemoryKind,
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

/// What a buffer's bytes are.
enum Backing {
    /// An anonymous mapping owned by the buffer.
    Host {
        ptr: NonNull<u8>,
        mapped_bytes: usize,
    },
    /// GPU memory; the CPU reaches it only through cuMemcpy.
    Device(DeviceMemory),
}

/// A mapped, registered buffer: local key for posting, remote key and
/// address for the peer.
pub struct RegisteredBuffer {
    backing: Backing,
    bytes: usize,
    memory: MemoryKind,
    registration: Registration,
    /// Deregistered in Drop before the memory is freed, hence ManuallyDrop.
    mr: ManuallyDrop<Arc<MemoryRegion>>,
}

// SAFETY: the mapping (or device allocation) is owned by this value alone
// and lives until Drop; all access goes through raw-pointer copies of plain
// bytes (u8 has no invalid values) or cuMemcpy, which is what the NIC does
// concurrently anyway. Sharing the handle across threads can therefore race
// only on byte contents, never on memory validity.
unsafe impl Send for RegisteredBuffer {}
// SAFETY: see Send above; no method hands out a reference into the mapping.
unsafe impl Sync for RegisteredBuffer {}

impl std::fmt::Debug for RegisteredBuffer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RegisteredBuffer")
            .field("addr", &self.addr())
            .field("bytes", &self.bytes)
            .field("memory", &self.memory)
            .field("registration", &self.registration)
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
    /// Allocates `options.bytes` of zeroed memory where `options.memory`
    /// says and registers it on the device's protection domain for local
    /// write and `options.remote`.
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
        match options.memory {
            MemoryKind::Cuda(ordinal) => {
                let gpu = CudaGpu::open(ordinal)?;
                RegisteredBuffer::on_gpu(device, &gpu, bytes, options)
            }
            MemoryKind::Host | MemoryKind::Huge => {
                RegisteredBuffer::on_host(device, bytes, options)
            }
        }
    }

    /// Allocates `bytes` on `gpu` (zeroed through cuMemcpy) and registers
    /// it: as a dma-buf where the GPU exports one and the provider imports
    /// it, else by address where nvidia-peermem is loaded.
    pub fn on_gpu(
        device: &RdmaDevice,
        gpu: &Arc<CudaGpu>,
        bytes: usize,
        options: BufferOptions,
    ) -> Result<RegisteredBuffer, VerbsError> {
        let memory = DeviceMemory::alloc(gpu, bytes as u64)?;
        let zero = vec![0u8; bytes.min(1 << 20)];
        let mut at = 0;
        while at < bytes {
            let n = zero.len().min(bytes - at);
            memory.copy_from_host(at, &zero[..n])?;
            at += n;
        }
        let access = options.remote.flags();
        let (mr, registration) = register_device_memory(device, &memory, access)?;
        log::info!(
            "{} bytes on {} registered on {} by {} (iova {:#x})",
            memory.alloc_bytes(),
            gpu.label(),
            device.name(),
            registration.name(),
            memory.ptr()
        );
        Ok(RegisteredBuffer {
            backing: Backing::Device(memory),
            bytes,
            memory: MemoryKind::Cuda(gpu.facts().ordinal),
            registration,
            mr: ManuallyDrop::new(mr),
        })
    }

    fn on_host(
        device: &RdmaDevice,
        bytes: usize,
        options: BufferOptions,
    ) -> Result<RegisteredBuffer, VerbsError> {
        let huge_pages = options.memory == MemoryKind::Huge;
        let kind = if huge_pages { "huge-page" } else { "host" };
        if let Some(available) = mem_available_bytes() {
            if !huge_pages && bytes as u64 > available {
                return Err(VerbsError::Alloc {
                    bytes,
                    kind,
                    cause: io::Error::from_raw_os_error(libc::ENOMEM),
                    hint: "; the machine has less available memory (MemAvailable) than that: use smaller --size",
                });
            }
        }
        let granule = if huge_pages {
            HUGE_PAGE_BYTES
        } else {
            PAGE_BYTES
        };
        let mapped_bytes = bytes.div_ceil(granule) * granule;
        let mut flags = libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_POPULATE;
        if huge_pages {
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
            let hint = if huge_pages {
                "; reserve huge pages first (echo N > /proc/sys/vm/nr_hugepages), or drop --huge-pages / --mem huge"
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
            backing: Backing::Host { ptr, mapped_bytes },
            bytes,
            memory: options.memory,
            registration: Registration::Host,
            mr: ManuallyDrop::new(mr),
        })
    }

    /// Start address, as the peer uses it in RDMA WRITE/READ (for GPU
    /// memory the device pointer, which is also the MR's iova).
    pub fn addr(&self) -> u64 {
        match &self.backing {
            Backing::Host { ptr, .. } => ptr.as_ptr() as u64,
            Backing::Device(memory) => memory.ptr(),
        }
    }

    /// Where the buffer lives.
    pub fn memory(&self) -> MemoryKind {
        self.memory
    }

    /// How it was registered.
    pub fn registration(&self) -> Registration {
        self.registration
    }

    /// The host mapping, or why the CPU cannot touch the buffer directly.
    fn host_ptr(&self, what: &'static str) -> Result<NonNull<u8>, VerbsError> {
        match &self.backing {
            Backing::Host { ptr, .. } => Ok(*ptr),
            Backing::Device(_) => Err(VerbsError::NotHostMemory {
                what,
                memory: self.memory.to_string(),
                fix: "the CPU cannot poll GPU memory: measure latency with --clock initiator or target, or use --mem host",
            }),
        }
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

    /// Copies `dst.len()` bytes starting at `offset` out of the buffer
    /// (from GPU memory through cuMemcpyDtoH). Panics when the range is
    /// outside the buffer.
    pub fn read_into(&self, offset: usize, dst: &mut [u8]) -> Result<(), VerbsError> {
        self.check_range(offset, dst.len());
        match &self.backing {
            // SAFETY: the range is inside the live mapping (checked above)
            // and `dst` is a distinct Rust slice; bytes have no invalid values.
            Backing::Host { ptr, .. } => unsafe {
                std::ptr::copy_nonoverlapping(ptr.as_ptr().add(offset), dst.as_mut_ptr(), dst.len())
            },
            Backing::Device(memory) => memory.copy_to_host(offset, dst)?,
        }
        Ok(())
    }

    /// Copies `src` into the buffer at `offset` (into GPU memory through
    /// cuMemcpyHtoD). Panics when the range is outside the buffer.
    pub fn write_from(&self, offset: usize, src: &[u8]) -> Result<(), VerbsError> {
        self.check_range(offset, src.len());
        match &self.backing {
            // SAFETY: the range is inside the live mapping (checked above)
            // and `src` is a distinct Rust slice.
            Backing::Host { ptr, .. } => unsafe {
                std::ptr::copy_nonoverlapping(src.as_ptr(), ptr.as_ptr().add(offset), src.len())
            },
            Backing::Device(memory) => memory.copy_from_host(offset, src)?,
        }
        Ok(())
    }

    /// Reads one byte with a volatile load: the way to watch for a remote
    /// RDMA WRITE landing (ping-pong latency polls the last byte). Host
    /// memory only.
    pub fn load_volatile(&self, offset: usize) -> Result<u8, VerbsError> {
        self.check_range(offset, 1);
        let ptr = self.host_ptr("polling the buffer's last byte (ping-pong)")?;
        // SAFETY: in bounds (checked); volatile so the compiler re-reads the
        // memory the NIC writes.
        Ok(unsafe { std::ptr::read_volatile(ptr.as_ptr().add(offset)) })
    }

    /// Writes one byte with a volatile store. Host memory only.
    pub fn store_volatile(&self, offset: usize, value: u8) -> Result<(), VerbsError> {
        self.check_range(offset, 1);
        let ptr = self.host_ptr("tagging the buffer's last byte (ping-pong)")?;
        // SAFETY: in bounds (checked).
        unsafe { std::ptr::write_volatile(ptr.as_ptr().add(offset), value) };
        Ok(())
    }
}

impl Drop for RegisteredBuffer {
    fn drop(&mut self) {
        // SAFETY: `mr` is dropped exactly once, here, and never used again;
        // the MR is deregistered before the memory under it is freed.
        unsafe { ManuallyDrop::drop(&mut self.mr) };
        if let Backing::Host { ptr, mapped_bytes } = &self.backing {
            // SAFETY: the mapping made in `on_host`, no longer registered and
            // referenced by nothing else.
            unsafe { libc::munmap(ptr.as_ptr().cast(), *mapped_bytes) };
        }
        // device memory is freed when `backing` drops, after this body
    }
}

/// Where nvidia-peermem shows that it is loaded.
const PEERMEM_MODULE: &str = "/sys/module/nvidia_peermem";

/// Registers GPU memory: `ibv_reg_dmabuf_mr` on the exported dma-buf (iova =
/// the device pointer, so the peer's addresses are device addresses; the fd
/// is closed once registered), else, when the provider answers EOPNOTSUPP or
/// the GPU exports none, `ibv_reg_mr` on the device pointer if
/// nvidia-peermem is loaded.
fn register_device_memory(
    device: &RdmaDevice,
    memory: &DeviceMemory,
    access: AccessFlags,
) -> Result<(Arc<MemoryRegion>, Registration), VerbsError> {
    let len = memory.alloc_bytes() as usize;
    let dmabuf_answer = match memory.export_dmabuf() {
        Ok((fd, range)) => {
            // SAFETY: `fd` is a live dma-buf of `range.len` bytes covering
            // the allocation, which outlives the MR (RegisteredBuffer drops
            // the MR first); offset + len lie inside the dma-buf.
            let mr = unsafe {
                device
                    .pd
                    .reg_dmabuf_mr(range.offset, len, memory.ptr(), fd.as_raw_fd(), access)
            };
            drop(fd);
            match mr {
                Ok(mr) => return Ok((mr, Registration::Dmabuf)),
                Err(err) => match &err.0 {
                    RegisterMemoryRegionErrorKind::Ibverbs(io)
                        if io.raw_os_error() == Some(libc::EOPNOTSUPP) =>
                    {
                        format!("ibv_reg_dmabuf_mr: {io} (the provider imports no dma-buf)")
                    }
                    _ => {
                        return Err(VerbsError::Call {
                            device: device.name().to_string(),
                            call: "ibv_reg_dmabuf_mr",
                            cause: io::Error::other(format!("{err} ({len} bytes of GPU memory)")),
                            hint: "; check `ulimit -l` and that the kernel (5.12+) and rdma-core (34+) support dma-buf",
                        })
                    }
                },
            }
        }
        Err(err) => format!("dma-buf export: {err}"),
    };
    let gpu = memory.gpu().label();
    if !std::path::Path::new(PEERMEM_MODULE).exists() {
        return Err(VerbsError::GpuRegistration {
            device: device.name().to_string(),
            gpu,
            detail: format!("{dmabuf_answer}; and nvidia_peermem is not loaded"),
            fix: "`modprobe nvidia_peermem`, or use a NIC and kernel that import dma-bufs (mlx5, Linux 5.12+, rdma-core 34+)",
        });
    }
    log::info!("{dmabuf_answer}; registering {gpu} by address through nvidia-peermem");
    // SAFETY: the device allocation of `len` bytes outlives the MR; with
    // nvidia-peermem loaded the kernel resolves the device pointer.
    let mr = unsafe { device.pd.reg_mr(memory.ptr() as usize, len, access) };
    match mr {
        Ok(mr) => Ok((mr, Registration::Peermem)),
        Err(err) => Err(VerbsError::GpuRegistration {
            device: device.name().to_string(),
            gpu,
            detail: format!("{dmabuf_answer}; ibv_reg_mr through nvidia-peermem: {err}"),
            fix: "check `dmesg` for nvidia_peermem errors and that the GPU and NIC share a PCIe root (see `infab devices --gpu`)",
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn memory_kinds_parse_and_print() {
        for text in ["host", "huge", "cuda:0", "cuda:7"] {
            assert_eq!(MemoryKind::parse(text).unwrap().to_string(), text);
        }
        assert!(MemoryKind::parse("cuda:x").unwrap_err().contains("cuda:N"));
        assert!(MemoryKind::parse("gpu")
            .unwrap_err()
            .contains("host, huge or cuda:N"));
        assert!(MemoryKind::Cuda(1).is_gpu() && !MemoryKind::Huge.is_gpu());
        let json = serde_json::to_string(&MemoryKind::Cuda(3)).unwrap();
        assert_eq!(json, "\"cuda:3\"");
        assert_eq!(
            serde_json::from_str::<MemoryKind>(&json).unwrap(),
            MemoryKind::Cuda(3)
        );
    }
}
