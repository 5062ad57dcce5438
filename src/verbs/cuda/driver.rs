//! The CUDA driver API, loaded at run time: no CUDA at build time, and a
//! host without the NVIDIA driver gets an error that says so, never a
//! failure to start.
//!
//! Only the driver API (libcuda, shipped with the kernel driver) is used,
//! never the runtime (libcudart, shipped with the toolkit): a benchmark host
//! has the driver, not always a toolkit. The `_v2` entry points are the
//! 64-bit ones every driver since CUDA 4 exports under those names.
//! Reference: the CUDA Driver API, <https://docs.nvidia.com/cuda/cuda-driver-api/>.

use std::ffi::{c_char, c_int, c_uint, c_void, CStr};
use std::os::fd::{FromRawFd, OwnedFd};
use std::sync::{Arc, Mutex, OnceLock};

use libloading::Library;

use super::align::{dmabuf_range, gpu_alloc_bytes, DmabufRange};

/// The names tried, in order: the versioned soname the driver installs,
/// then the development link some containers have instead.
pub const LIBCUDA_NAMES: [&str; 2] = ["libcuda.so.1", "libcuda.so"];

type CuResult = c_int;
type CuDevice = c_int;
type CuContext = *mut c_void;
type CuDevicePtr = u64;

const CUDA_SUCCESS: CuResult = 0;
const CUDA_ERROR_NO_DEVICE: CuResult = 100;
const CU_DEVICE_ATTRIBUTE_INTEGRATED: c_int = 18;
const CU_DEVICE_ATTRIBUTE_GPU_DIRECT_RDMA_SUPPORTED: c_int = 116;
const CU_DEVICE_ATTRIBUTE_DMA_BUF_SUPPORTED: c_int = 124;
const CU_MEM_RANGE_HANDLE_TYPE_DMA_BUF_FD: c_int = 1;
const CU_POINTER_ATTRIBUTE_SYNC_MEMOPS: c_int = 6;

/// A CUDA driver failure. Each names the library, symbol or call, and the fix.
#[derive(Debug, thiserror::Error)]
pub enum CudaError {
    /// No libcuda could be loaded.
    #[error(
        "cannot load the CUDA driver library libcuda (tried {tried}): {cause}; install the \
         NVIDIA driver (libcuda.so.1 ships with it, `nvidia-smi` should work) or use --mem host"
    )]
    Load {
        /// The names or paths tried, comma separated.
        tried: String,
        /// The loader's message for the last one.
        cause: String,
    },
    /// The library lacks an entry point infab needs.
    #[error(
        "the CUDA driver library {library} has no {symbol} ({cause}); the NVIDIA driver is too \
         old: dma-buf export needs driver 515 / CUDA 11.7 or newer"
    )]
    Symbol {
        /// The library loaded.
        library: String,
        /// The missing entry point.
        symbol: &'static str,
        /// The loader's message.
        cause: String,
    },
    /// A driver call returned an error.
    #[error("{call} failed: {name} ({code}): {description}{hint}")]
    Call {
        /// The entry point.
        call: &'static str,
        /// The CUresult.
        code: i32,
        /// Its name (cuGetErrorName), e.g. CUDA_ERROR_OUT_OF_MEMORY.
        name: String,
        /// Its description (cuGetErrorString).
        description: String,
        /// A hint at the fix, starting with "; " (may be empty).
        hint: String,
    },
    /// The GPU asked for does not exist.
    #[error(
        "no GPU cuda:{index}: the CUDA driver sees {count} GPU(s); check `nvidia-smi -L` and \
         CUDA_VISIBLE_DEVICES, or use --mem host"
    )]
    NoDevice {
        /// The ordinal asked for.
        index: u32,
        /// How many the driver sees.
        count: i32,
    },
    /// The GPU or driver cannot do what a buffer needs.
    #[error("{gpu}: {what}; {fix}")]
    Unsupported {
        /// The GPU, e.g. "cuda:0 (NVIDIA H100)".
        gpu: String,
        /// What is missing.
        what: String,
        /// How to get it.
        fix: String,
    },
    /// No cuFile (GPUDirect Storage) library could be loaded.
    #[error(
        "cannot load GPUDirect Storage's cuFile (tried {tried}): {cause}; install nvidia-gds \
         (libcufile ships with it) for the GPU → file tier"
    )]
    CuFileLoad {
        /// The names or paths tried, comma separated.
        tried: String,
        /// The loader's message for the last one.
        cause: String,
    },
    /// A copy outside the allocation (a bug in the caller).
    #[error("GPU copy of {len} bytes at offset {offset} is outside the {bytes}-byte buffer")]
    Range {
        /// Offset asked for.
        offset: usize,
        /// Length asked for.
        len: usize,
        /// The buffer's usable size.
        bytes: u64,
    },
}

/// The entry points, copied out of the library (valid while it is loaded).
struct Entry {
    init: unsafe extern "C" fn(c_uint) -> CuResult,
    driver_get_version: unsafe extern "C" fn(*mut c_int) -> CuResult,
    device_get_count: unsafe extern "C" fn(*mut c_int) -> CuResult,
    device_get: unsafe extern "C" fn(*mut CuDevice, c_int) -> CuResult,
    device_get_name: unsafe extern "C" fn(*mut c_char, c_int, CuDevice) -> CuResult,
    device_get_attribute: unsafe extern "C" fn(*mut c_int, c_int, CuDevice) -> CuResult,
    device_get_pci_bus_id: unsafe extern "C" fn(*mut c_char, c_int, CuDevice) -> CuResult,
    device_total_mem: unsafe extern "C" fn(*mut usize, CuDevice) -> CuResult,
    primary_ctx_retain: unsafe extern "C" fn(*mut CuContext, CuDevice) -> CuResult,
    primary_ctx_release: unsafe extern "C" fn(CuDevice) -> CuResult,
    ctx_set_current: unsafe extern "C" fn(CuContext) -> CuResult,
    mem_alloc: unsafe extern "C" fn(*mut CuDevicePtr, usize) -> CuResult,
    mem_free: unsafe extern "C" fn(CuDevicePtr) -> CuResult,
    memcpy_htod: unsafe extern "C" fn(CuDevicePtr, *const c_void, usize) -> CuResult,
    memcpy_dtoh: unsafe extern "C" fn(*mut c_void, CuDevicePtr, usize) -> CuResult,
    pointer_set_attribute: unsafe extern "C" fn(*const c_void, c_int, CuDevicePtr) -> CuResult,
    get_error_string: unsafe extern "C" fn(CuResult, *mut *const c_char) -> CuResult,
    get_error_name: unsafe extern "C" fn(CuResult, *mut *const c_char) -> CuResult,
    /// CUDA 11.7+; absent on older drivers (checked when exporting).
    get_handle_for_address_range:
        Option<unsafe extern "C" fn(*mut c_void, CuDevicePtr, usize, c_int, u64) -> CuResult>,
}

/// A loaded, initialised CUDA driver.
pub struct CudaDriver {
    library: String,
    entry: Entry,
    version: i32,
    /// Keeps the entry points valid; dropped last.
    _lib: Library,
}

impl std::fmt::Debug for CudaDriver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CudaDriver")
            .field("library", &self.library)
            .field("version", &self.version)
            .finish()
    }
}

/// The first of `names` (sonames or paths) that loads, with its name, or
/// the loader's message for the last one tried.
pub(super) fn open_first<'a>(names: &[&'a str]) -> Result<(Library, &'a str), String> {
    let mut last = String::from("no library name given");
    for &name in names {
        // SAFETY: loading a shared object runs its initialisers; NVIDIA's
        // libcuda and libcufile expect exactly this (dlopen is how every
        // CUDA program reaches them).
        match unsafe { Library::new(name) } {
            Ok(lib) => return Ok((lib, name)),
            Err(err) => last = err.to_string(),
        }
    }
    Err(last)
}

/// The process's driver, loaded once on success (a failure is retried, and
/// reported, on every call).
static DRIVER: OnceLock<CudaDriver> = OnceLock::new();
/// Serialises the first load (cuInit must not race itself).
static LOADING: Mutex<()> = Mutex::new(());

/// The process's CUDA driver: libcuda.so.1, then libcuda.so, loaded and
/// initialised on first use.
pub fn driver() -> Result<&'static CudaDriver, CudaError> {
    if let Some(driver) = DRIVER.get() {
        return Ok(driver);
    }
    let _guard = LOADING
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    if let Some(driver) = DRIVER.get() {
        return Ok(driver);
    }
    let driver = CudaDriver::load_from(&LIBCUDA_NAMES)?;
    Ok(DRIVER.get_or_init(|| driver))
}

impl CudaDriver {
    /// Loads the first of `names` (sonames or paths) that loads, resolves
    /// every entry point and calls `cuInit(0)`.
    pub fn load_from(names: &[&str]) -> Result<CudaDriver, CudaError> {
        match open_first(names) {
            Ok((lib, name)) => CudaDriver::resolve(lib, name),
            Err(cause) => Err(CudaError::Load {
                tried: names.join(", "),
                cause,
            }),
        }
    }

    fn resolve(lib: Library, name: &str) -> Result<CudaDriver, CudaError> {
        macro_rules! symbol {
            ($name:literal) => {{
                // SAFETY: the Rust type given to the symbol (the field it is
                // stored in) is the C prototype of the CUDA Driver API's entry
                // point of that name, with CUresult as c_int and
                // CUdeviceptr as u64 (the `_v2` ABI).
                match unsafe { lib.get(concat!($name, "\0").as_bytes()) } {
                    Ok(symbol) => *symbol,
                    Err(err) => {
                        return Err(CudaError::Symbol {
                            library: name.to_string(),
                            symbol: $name,
                            cause: err.to_string(),
                        })
                    }
                }
            }};
        }
        let entry = Entry {
            init: symbol!("cuInit"),
            driver_get_version: symbol!("cuDriverGetVersion"),
            device_get_count: symbol!("cuDeviceGetCount"),
            device_get: symbol!("cuDeviceGet"),
            device_get_name: symbol!("cuDeviceGetName"),
            device_get_attribute: symbol!("cuDeviceGetAttribute"),
            device_get_pci_bus_id: symbol!("cuDeviceGetPCIBusId"),
            device_total_mem: symbol!("cuDeviceTotalMem_v2"),
            primary_ctx_retain: symbol!("cuDevicePrimaryCtxRetain"),
            primary_ctx_release: symbol!("cuDevicePrimaryCtxRelease_v2"),
            ctx_set_current: symbol!("cuCtxSetCurrent"),
            mem_alloc: symbol!("cuMemAlloc_v2"),
            mem_free: symbol!("cuMemFree_v2"),
            memcpy_htod: symbol!("cuMemcpyHtoD_v2"),
            memcpy_dtoh: symbol!("cuMemcpyDtoH_v2"),
            pointer_set_attribute: symbol!("cuPointerSetAttribute"),
            get_error_string: symbol!("cuGetErrorString"),
            get_error_name: symbol!("cuGetErrorName"),
            // SAFETY: as in `symbol!`: the prototype of
            // cuMemGetHandleForAddressRange (handle out, dptr, size, type, flags).
            get_handle_for_address_range: unsafe {
                lib.get(b"cuMemGetHandleForAddressRange\0").ok().map(|s| *s)
            },
        };
        let mut driver = CudaDriver {
            library: name.to_string(),
            entry,
            version: 0,
            _lib: lib,
        };
        // SAFETY: cuInit takes flags by value (0 is the only valid value).
        let code = unsafe { (driver.entry.init)(0) };
        if code == CUDA_ERROR_NO_DEVICE {
            return Err(CudaError::NoDevice { index: 0, count: 0 });
        }
        driver.check("cuInit", code, "; check `nvidia-smi` (is the kernel module loaded, the device node /dev/nvidia0 readable?)")?;
        let mut version: c_int = 0;
        // SAFETY: one out-parameter, a live c_int.
        let code = unsafe { (driver.entry.driver_get_version)(&mut version) };
        driver.check("cuDriverGetVersion", code, "")?;
        driver.version = version;
        Ok(driver)
    }

    /// The library that was loaded (e.g. "libcuda.so.1").
    pub fn library(&self) -> &str {
        &self.library
    }

    /// The CUDA version the driver supports, as "12.4".
    pub fn cuda_version(&self) -> String {
        format!("{}.{}", self.version / 1000, (self.version % 1000) / 10)
    }

    /// How many GPUs the driver sees.
    pub fn device_count(&self) -> Result<i32, CudaError> {
        let mut count: c_int = 0;
        // SAFETY: one out-parameter, a live c_int.
        let code = unsafe { (self.entry.device_get_count)(&mut count) };
        self.check("cuDeviceGetCount", code, "")?;
        Ok(count)
    }

    /// What the driver says of GPU `ordinal`, without creating a context
    /// (no GPU memory is taken): model, PCI address, memory, dma-buf and
    /// GPUDirect RDMA support.
    pub fn describe(&self, ordinal: u32) -> Result<GpuFacts, CudaError> {
        self.describe_device(ordinal).map(|(_, facts)| facts)
    }

    fn describe_device(&self, ordinal: u32) -> Result<(CuDevice, GpuFacts), CudaError> {
        let count = self.device_count()?;
        if i64::from(ordinal) >= i64::from(count) {
            return Err(CudaError::NoDevice {
                index: ordinal,
                count,
            });
        }
        let mut device: CuDevice = 0;
        // SAFETY: one out-parameter; the ordinal is below the device count.
        let code = unsafe { (self.entry.device_get)(&mut device, ordinal as c_int) };
        self.check("cuDeviceGet", code, "")?;
        let mut memory: usize = 0;
        // SAFETY: one out-parameter, a live usize (size_t).
        let code = unsafe { (self.entry.device_total_mem)(&mut memory, device) };
        self.check("cuDeviceTotalMem_v2", code, "")?;
        let facts = GpuFacts {
            ordinal,
            name: self.text(device, "cuDeviceGetName", self.entry.device_get_name)?,
            pci_bus_id: self
                .text(
                    device,
                    "cuDeviceGetPCIBusId",
                    self.entry.device_get_pci_bus_id,
                )?
                .to_ascii_lowercase(),
            memory_bytes: memory as u64,
            dmabuf_supported: self.attribute(device, CU_DEVICE_ATTRIBUTE_DMA_BUF_SUPPORTED)? != 0,
            gpudirect_rdma_supported: self
                .attribute(device, CU_DEVICE_ATTRIBUTE_GPU_DIRECT_RDMA_SUPPORTED)?
                != 0,
            integrated: self.attribute(device, CU_DEVICE_ATTRIBUTE_INTEGRATED)? != 0,
            library: self.library.clone(),
            cuda_version: self.cuda_version(),
        };
        Ok((device, facts))
    }

    fn attribute(&self, device: CuDevice, attribute: c_int) -> Result<i32, CudaError> {
        let mut value: c_int = 0;
        // SAFETY: one out-parameter; an unknown attribute is an error code,
        // not undefined behaviour.
        let code = unsafe { (self.entry.device_get_attribute)(&mut value, attribute, device) };
        match code {
            CUDA_SUCCESS => Ok(value),
            // an attribute newer than the driver reads as unsupported
            _ if attribute >= CU_DEVICE_ATTRIBUTE_GPU_DIRECT_RDMA_SUPPORTED => Ok(0),
            _ => {
                self.check("cuDeviceGetAttribute", code, "")?;
                Ok(value)
            }
        }
    }

    fn text(
        &self,
        device: CuDevice,
        call: &'static str,
        f: unsafe extern "C" fn(*mut c_char, c_int, CuDevice) -> CuResult,
    ) -> Result<String, CudaError> {
        let mut buf = [0 as c_char; 256];
        // SAFETY: the driver writes at most `len` bytes, NUL included; one
        // byte less keeps the last one 0 as a guard.
        let code = unsafe { f(buf.as_mut_ptr(), (buf.len() - 1) as c_int, device) };
        self.check(call, code, "")?;
        // SAFETY: NUL-terminated within the buffer (see above).
        let text = unsafe { CStr::from_ptr(buf.as_ptr()) };
        Ok(text.to_string_lossy().into_owned())
    }

    fn error_text(&self, code: CuResult) -> (String, String) {
        let read = |f: unsafe extern "C" fn(CuResult, *mut *const c_char) -> CuResult| {
            let mut text: *const c_char = std::ptr::null();
            // SAFETY: the driver stores a pointer to a static string (or
            // leaves null for an unknown code); nothing is freed.
            let ok = unsafe { f(code, &mut text) } == CUDA_SUCCESS && !text.is_null();
            if ok {
                // SAFETY: non-null, NUL-terminated, static in the driver.
                unsafe { CStr::from_ptr(text) }
                    .to_string_lossy()
                    .into_owned()
            } else {
                "unknown CUDA error".to_string()
            }
        };
        (
            read(self.entry.get_error_name),
            read(self.entry.get_error_string),
        )
    }

    fn check(&self, call: &'static str, code: CuResult, hint: &str) -> Result<(), CudaError> {
        if code == CUDA_SUCCESS {
            return Ok(());
        }
        let (name, description) = self.error_text(code);
        Err(CudaError::Call {
            call,
            code,
            name,
            description,
            hint: hint.to_string(),
        })
    }
}

/// What infab knows of one GPU.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GpuFacts {
    /// The CUDA ordinal.
    pub ordinal: u32,
    /// The model, e.g. "NVIDIA H100 80GB HBM3".
    pub name: String,
    /// Its PCI address in sysfs form, lower case ("0000:3b:00.0").
    pub pci_bus_id: String,
    /// Device memory in bytes.
    pub memory_bytes: u64,
    /// CU_DEVICE_ATTRIBUTE_DMA_BUF_SUPPORTED.
    pub dmabuf_supported: bool,
    /// CU_DEVICE_ATTRIBUTE_GPU_DIRECT_RDMA_SUPPORTED.
    pub gpudirect_rdma_supported: bool,
    /// An integrated GPU (Tegra): its "device" memory is host memory.
    pub integrated: bool,
    /// The loaded driver library.
    pub library: String,
    /// The CUDA version the driver supports, "12.4".
    pub cuda_version: String,
}

/// One GPU with its primary context retained.
pub struct CudaGpu {
    driver: &'static CudaDriver,
    device: CuDevice,
    ctx: CuContext,
    facts: GpuFacts,
}

// SAFETY: a CUDA context is not bound to a thread: any thread may make it
// current (cuCtxSetCurrent), which every method here does before its driver
// call. The handle is only passed to the driver, never dereferenced.
unsafe impl Send for CudaGpu {}
// SAFETY: see Send; the driver API is thread-safe for calls on one context.
unsafe impl Sync for CudaGpu {}

impl std::fmt::Debug for CudaGpu {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CudaGpu")
            .field("facts", &self.facts)
            .finish()
    }
}

impl CudaGpu {
    /// Opens GPU `ordinal` (`cuda:N`): loads the driver, retains the
    /// device's primary context (the one the CUDA runtime and NCCL share)
    /// and reads its attributes.
    pub fn open(ordinal: u32) -> Result<Arc<CudaGpu>, CudaError> {
        let driver = driver()?;
        let (device, facts) = driver.describe_device(ordinal)?;
        let mut ctx: CuContext = std::ptr::null_mut();
        // SAFETY: one out-parameter, for a device handle the driver gave.
        let code = unsafe { (driver.entry.primary_ctx_retain)(&mut ctx, device) };
        driver.check(
            "cuDevicePrimaryCtxRetain",
            code,
            "; is the GPU in exclusive-process compute mode and taken by another process (`nvidia-smi -q -d COMPUTE`)?",
        )?;
        Ok(Arc::new(CudaGpu {
            driver,
            device,
            ctx,
            facts,
        }))
    }

    /// What infab knows of the GPU.
    pub fn facts(&self) -> &GpuFacts {
        &self.facts
    }

    /// "cuda:0 (NVIDIA H100 80GB HBM3)", for messages.
    pub fn label(&self) -> String {
        format!("cuda:{} ({})", self.facts.ordinal, self.facts.name)
    }

    /// Makes the GPU's context current on the calling thread.
    pub(super) fn make_current(&self) -> Result<(), CudaError> {
        // SAFETY: a context retained in `open` and released only in Drop.
        let code = unsafe { (self.driver.entry.ctx_set_current)(self.ctx) };
        self.driver.check("cuCtxSetCurrent", code, "")
    }
}

impl Drop for CudaGpu {
    fn drop(&mut self) {
        // SAFETY: releases the retain of `open`, once; every DeviceMemory
        // holds an Arc to this value, so none outlives the context.
        let code = unsafe { (self.driver.entry.primary_ctx_release)(self.device) };
        if code != CUDA_SUCCESS {
            log::warn!(
                "cuDevicePrimaryCtxRelease_v2 on {} returned {code}",
                self.label()
            );
        }
    }
}

/// Device memory from `cuMemAlloc`, rounded up to whole 64 KiB GPU pages.
pub struct DeviceMemory {
    gpu: Arc<CudaGpu>,
    ptr: CuDevicePtr,
    bytes: u64,
    alloc_bytes: u64,
}

impl std::fmt::Debug for DeviceMemory {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DeviceMemory")
            .field("gpu", &self.gpu.facts.ordinal)
            .field("ptr", &format_args!("{:#x}", self.ptr))
            .field("bytes", &self.bytes)
            .field("alloc_bytes", &self.alloc_bytes)
            .finish()
    }
}

impl DeviceMemory {
    /// Allocates `bytes` (rounded up to 64 KiB) on `gpu`. Integrated GPUs
    /// are refused: their memory is host memory, `--mem host` measures it.
    pub fn alloc(gpu: &Arc<CudaGpu>, bytes: u64) -> Result<DeviceMemory, CudaError> {
        if gpu.facts.integrated {
            return Err(CudaError::Unsupported {
                gpu: gpu.label(),
                what: "an integrated GPU has no device memory of its own".into(),
                fix: "use --mem host (its memory is the host's)".into(),
            });
        }
        let alloc_bytes = gpu_alloc_bytes(bytes).ok_or(CudaError::Range {
            offset: 0,
            len: usize::MAX,
            bytes,
        })?;
        gpu.make_current()?;
        let mut ptr: CuDevicePtr = 0;
        // SAFETY: one out-parameter; the context is current on this thread.
        let code = unsafe { (gpu.driver.entry.mem_alloc)(&mut ptr, alloc_bytes as usize) };
        gpu.driver.check(
            "cuMemAlloc_v2",
            code,
            &format!(
                "; {} has {} bytes in all: use smaller --sizes",
                gpu.label(),
                gpu.facts.memory_bytes
            ),
        )?;
        let memory = DeviceMemory {
            gpu: Arc::clone(gpu),
            ptr,
            bytes: bytes.max(1),
            alloc_bytes,
        };
        // Memory operations on a buffer the NIC also writes must be
        // synchronous (what perftest and NCCL ask of GPUDirect buffers).
        let flag: c_uint = 1;
        // SAFETY: the attribute's value is a live unsigned int; ptr is ours.
        let code = unsafe {
            (gpu.driver.entry.pointer_set_attribute)(
                (&flag as *const c_uint).cast(),
                CU_POINTER_ATTRIBUTE_SYNC_MEMOPS,
                ptr,
            )
        };
        gpu.driver
            .check("cuPointerSetAttribute(SYNC_MEMOPS)", code, "")?;
        Ok(memory)
    }

    /// The device address (also the iova the NIC uses).
    pub fn ptr(&self) -> u64 {
        self.ptr
    }

    /// Bytes asked for.
    pub fn len(&self) -> u64 {
        self.bytes
    }

    /// Whether no bytes were asked for (never: at least one is allocated).
    pub fn is_empty(&self) -> bool {
        self.bytes == 0
    }

    /// Bytes allocated (whole GPU pages).
    pub fn alloc_bytes(&self) -> u64 {
        self.alloc_bytes
    }

    /// The GPU.
    pub fn gpu(&self) -> &Arc<CudaGpu> {
        &self.gpu
    }

    fn check_range(&self, offset: usize, len: usize) -> Result<(), CudaError> {
        match offset.checked_add(len) {
            Some(end) if end as u64 <= self.bytes => Ok(()),
            _ => Err(CudaError::Range {
                offset,
                len,
                bytes: self.bytes,
            }),
        }
    }

    /// Copies `src` to the device at `offset` (cuMemcpyHtoD, synchronous).
    pub fn copy_from_host(&self, offset: usize, src: &[u8]) -> Result<(), CudaError> {
        self.check_range(offset, src.len())?;
        if src.is_empty() {
            return Ok(());
        }
        self.gpu.make_current()?;
        // SAFETY: the device range is inside the allocation (checked) and
        // `src` is a live slice of that length.
        let code = unsafe {
            (self.gpu.driver.entry.memcpy_htod)(
                self.ptr + offset as u64,
                src.as_ptr().cast(),
                src.len(),
            )
        };
        self.gpu.driver.check("cuMemcpyHtoD_v2", code, "")
    }

    /// Copies `dst.len()` bytes from the device at `offset` (cuMemcpyDtoH).
    pub fn copy_to_host(&self, offset: usize, dst: &mut [u8]) -> Result<(), CudaError> {
        self.check_range(offset, dst.len())?;
        if dst.is_empty() {
            return Ok(());
        }
        self.gpu.make_current()?;
        // SAFETY: the device range is inside the allocation (checked) and
        // `dst` is a live, exclusive slice of that length.
        let code = unsafe {
            (self.gpu.driver.entry.memcpy_dtoh)(
                dst.as_mut_ptr().cast(),
                self.ptr + offset as u64,
                dst.len(),
            )
        };
        self.gpu.driver.check("cuMemcpyDtoH_v2", code, "")
    }

    /// Exports the allocation as a dma-buf over its host-page-aligned
    /// range: the fd (closed on drop) and the range, whose `offset` is
    /// where the buffer starts in it.
    pub fn export_dmabuf(&self) -> Result<(OwnedFd, DmabufRange), CudaError> {
        let label = self.gpu.label();
        if !self.gpu.facts.dmabuf_supported {
            return Err(CudaError::Unsupported {
                gpu: label,
                what: "the driver reports no dma-buf support (CU_DEVICE_ATTRIBUTE_DMA_BUF_SUPPORTED = 0)".into(),
                fix: "use the open GPU kernel modules (driver 515+) on Linux 5.12+, or load nvidia_peermem".into(),
            });
        }
        let export = self
            .gpu
            .driver
            .entry
            .get_handle_for_address_range
            .ok_or_else(|| CudaError::Symbol {
                library: self.gpu.driver.library.clone(),
                symbol: "cuMemGetHandleForAddressRange",
                cause: "not exported".into(),
            })?;
        let page = host_page_bytes();
        let range = dmabuf_range(self.ptr, self.alloc_bytes, page).ok_or(CudaError::Range {
            offset: 0,
            len: self.alloc_bytes as usize,
            bytes: self.alloc_bytes,
        })?;
        self.gpu.make_current()?;
        let mut fd: c_int = -1;
        // SAFETY: the handle out-parameter of a DMA_BUF_FD export is an int;
        // the range lies inside our allocation's pages (64 KiB-aligned
        // allocations make it the allocation itself).
        let code = unsafe {
            export(
                (&mut fd as *mut c_int).cast(),
                range.base,
                range.len as usize,
                CU_MEM_RANGE_HANDLE_TYPE_DMA_BUF_FD,
                0,
            )
        };
        self.gpu.driver.check(
            "cuMemGetHandleForAddressRange(DMA_BUF_FD)",
            code,
            "; dma-buf export needs the open GPU kernel modules and Linux 5.12+, else load nvidia_peermem",
        )?;
        if fd < 0 {
            return Err(CudaError::Unsupported {
                gpu: label,
                what: format!("cuMemGetHandleForAddressRange returned fd {fd}"),
                fix: "update the NVIDIA driver".into(),
            });
        }
        // SAFETY: a fresh fd the driver just opened for us, owned by no one else.
        Ok((unsafe { OwnedFd::from_raw_fd(fd) }, range))
    }
}

impl Drop for DeviceMemory {
    fn drop(&mut self) {
        if let Err(err) = self.gpu.make_current() {
            log::warn!("freeing GPU memory: {err}");
        }
        // SAFETY: frees the allocation of `alloc`, once; any MR over it was
        // deregistered first (RegisteredBuffer drops its MR before this).
        let code = unsafe { (self.gpu.driver.entry.mem_free)(self.ptr) };
        if code != CUDA_SUCCESS {
            log::warn!("cuMemFree_v2 on {} returned {code}", self.gpu.label());
        }
    }
}

/// The host page size (sysconf), 4096 when unreadable.
pub fn host_page_bytes() -> u64 {
    // SAFETY: sysconf reads a constant of the running system.
    let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    if page > 0 {
        page as u64
    } else {
        4096
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_library_names_libcuda_and_the_fix() {
        let err = CudaDriver::load_from(&["/nonexistent/libcuda.so.1"]).unwrap_err();
        let text = err.to_string();
        assert!(matches!(err, CudaError::Load { .. }), "{text}");
        assert!(text.contains("libcuda"), "{text}");
        assert!(text.contains("/nonexistent/libcuda.so.1"), "{text}");
        assert!(text.contains("install the NVIDIA driver"), "{text}");
        assert!(text.contains("--mem host"), "{text}");
    }

    #[test]
    fn a_library_without_the_driver_api_names_the_symbol() {
        // libc loads everywhere and has no cuInit
        let err = CudaDriver::load_from(&["libc.so.6"]).unwrap_err();
        let text = err.to_string();
        assert!(
            matches!(
                err,
                CudaError::Symbol {
                    symbol: "cuInit",
                    ..
                }
            ),
            "{text}"
        );
        assert!(text.contains("libc.so.6 has no cuInit"), "{text}");
    }

    #[test]
    fn every_name_tried_is_listed() {
        let err = CudaDriver::load_from(&["/nope/a.so", "/nope/b.so"]).unwrap_err();
        assert!(err.to_string().contains("/nope/a.so, /nope/b.so"), "{err}");
    }

    #[test]
    fn the_host_page_is_a_power_of_two() {
        assert!(host_page_bytes().is_power_of_two());
    }
}
