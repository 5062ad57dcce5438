//! GPUDirect Storage through cuFile (libcufile), loaded at run time like
//! the driver: GPU memory written straight to a file opened with
//! `O_DIRECT`. Without the nvidia-fs kernel module cuFile runs in its
//! compatibility mode (POSIX I/O through host bounce buffers, when
//! `allow_compat_mode` is on in cufile.json); [`CuFile::compat`] says so,
//! and with nvidia-fs loaded its write counters ([`nvidia_fs_writes`])
//! tell whether the writes really went through it, so results never call
//! a staged copy GPUDirect.
//! Reference: the cuFile API, <https://docs.nvidia.com/gpudirect-storage/api-reference-guide/>.

use std::ffi::{c_int, c_void};
use std::fs::File;
use std::os::fd::AsRawFd;
use std::sync::{Mutex, OnceLock};

use libloading::Library;

use super::driver::{open_first, CudaError, DeviceMemory};

/// The GPUDirect Storage (cuFile) library names, in the order tried.
pub const LIBCUFILE_NAMES: [&str; 2] = ["libcufile.so.0", "libcufile.so"];

/// Where the nvidia-fs kernel module shows itself when loaded.
const NVIDIA_FS_PROC: &str = "/proc/driver/nvidia-fs";

/// Writes nvidia-fs has completed (the `ok=` of its "Writes" statistics
/// line), or None: no nvidia-fs, or its statistics unreadable. The counts
/// grow only with `rw_stats_enabled=1`; a GPUDirect write moves them, a
/// write cuFile staged through host memory does not.
pub fn nvidia_fs_writes() -> Option<u64> {
    let text = std::fs::read_to_string(format!("{NVIDIA_FS_PROC}/stats")).ok()?;
    parse_nvidia_fs_writes(&text)
}

fn parse_nvidia_fs_writes(text: &str) -> Option<u64> {
    let line = text
        .lines()
        .find(|l| l.trim_start().starts_with("Writes"))?;
    line.split_whitespace()
        .find_map(|cell| cell.strip_prefix("ok="))
        .and_then(|n| n.parse().ok())
}

/// `CUfileError_t`: the cuFile status and, for CU_FILE_CUDA_DRIVER_ERROR,
/// the CUresult. Two ints, returned by value (in a register on x86-64).
#[repr(C)]
#[derive(Debug, Clone, Copy)]
struct CuFileStatus {
    err: c_int,
    cu_err: c_int,
}

/// `CUfileDescr_t` for a Linux fd: the handle type, a union of an int fd
/// and a pointer (so 8 bytes, 8-aligned), and the file-system ops table
/// (NULL: the kernel's).
#[repr(C)]
struct CuFileDescr {
    handle_type: c_int,
    handle: CuFileHandleUnion,
    fs_ops: *const c_void,
}

#[repr(C)]
union CuFileHandleUnion {
    fd: c_int,
    pointer: *mut c_void,
}

/// CU_FILE_HANDLE_TYPE_OPAQUE_FD.
const CU_FILE_HANDLE_TYPE_OPAQUE_FD: c_int = 1;
/// CU_FILE_SUCCESS.
const CU_FILE_SUCCESS: c_int = 0;
/// CU_FILE_CUDA_DRIVER_ERROR: the CUresult is in `cu_err`.
const CU_FILE_CUDA_DRIVER_ERROR: c_int = 5011;

type CuFileHandle = *mut c_void;

struct Entry {
    driver_open: unsafe extern "C" fn() -> CuFileStatus,
    handle_register: unsafe extern "C" fn(*mut CuFileHandle, *mut CuFileDescr) -> CuFileStatus,
    handle_deregister: unsafe extern "C" fn(CuFileHandle),
    buf_register: unsafe extern "C" fn(*const c_void, usize, c_int) -> CuFileStatus,
    buf_deregister: unsafe extern "C" fn(*const c_void) -> CuFileStatus,
    write: unsafe extern "C" fn(CuFileHandle, *const c_void, usize, i64, i64) -> isize,
    read: unsafe extern "C" fn(CuFileHandle, *mut c_void, usize, i64, i64) -> isize,
}

/// The loaded cuFile library with its driver opened (once per process;
/// closed when the process exits, as cuFile allows).
pub struct CuFile {
    library: String,
    entry: Entry,
    compat: bool,
    _lib: Library,
}

impl std::fmt::Debug for CuFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CuFile")
            .field("library", &self.library)
            .field("compat", &self.compat)
            .finish()
    }
}

static CUFILE: OnceLock<CuFile> = OnceLock::new();
static LOADING: Mutex<()> = Mutex::new(());

/// The process's cuFile: libcufile.so.0, then libcufile.so, loaded and its
/// driver opened on first use. Needs the CUDA driver (a GPU opened first).
pub fn cufile() -> Result<&'static CuFile, CudaError> {
    if let Some(cufile) = CUFILE.get() {
        return Ok(cufile);
    }
    let _guard = LOADING
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    if let Some(cufile) = CUFILE.get() {
        return Ok(cufile);
    }
    let cufile = CuFile::load_from(&LIBCUFILE_NAMES)?;
    Ok(CUFILE.get_or_init(|| cufile))
}

/// The name of a cuFile status code, where cufile.h's `CUfileOpError`
/// names it.
pub fn cufile_status_name(code: i32) -> &'static str {
    match code {
        0 => "CU_FILE_SUCCESS",
        5001 => "CU_FILE_DRIVER_NOT_INITIALIZED",
        5002 => "CU_FILE_DRIVER_INVALID_PROPS",
        5003 => "CU_FILE_DRIVER_UNSUPPORTED_LIMIT",
        5004 => "CU_FILE_DRIVER_VERSION_MISMATCH",
        5005 => "CU_FILE_DRIVER_VERSION_READ_ERROR",
        5006 => "CU_FILE_DRIVER_CLOSING",
        5007 => "CU_FILE_PLATFORM_NOT_SUPPORTED",
        5008 => "CU_FILE_IO_NOT_SUPPORTED",
        5009 => "CU_FILE_DEVICE_NOT_SUPPORTED",
        5010 => "CU_FILE_NVFS_DRIVER_ERROR",
        5011 => "CU_FILE_CUDA_DRIVER_ERROR",
        5012 => "CU_FILE_CUDA_POINTER_INVALID",
        5013 => "CU_FILE_CUDA_MEMORY_TYPE_INVALID",
        5014 => "CU_FILE_CUDA_POINTER_RANGE_ERROR",
        5015 => "CU_FILE_CUDA_CONTEXT_MISMATCH",
        5016 => "CU_FILE_INVALID_MAPPING_SIZE",
        5017 => "CU_FILE_INVALID_MAPPING_RANGE",
        5018 => "CU_FILE_INVALID_FILE_TYPE",
        5019 => "CU_FILE_INVALID_FILE_OPEN_FLAG",
        5020 => "CU_FILE_DIO_NOT_SET",
        5022 => "CU_FILE_INVALID_VALUE",
        5023 => "CU_FILE_MEMORY_ALREADY_REGISTERED",
        5024 => "CU_FILE_MEMORY_NOT_REGISTERED",
        5025 => "CU_FILE_PERMISSION_DENIED",
        5026 => "CU_FILE_DRIVER_ALREADY_OPEN",
        5027 => "CU_FILE_HANDLE_NOT_REGISTERED",
        5028 => "CU_FILE_HANDLE_ALREADY_REGISTERED",
        5029 => "CU_FILE_DEVICE_NOT_FOUND",
        5030 => "CU_FILE_INTERNAL_ERROR",
        5031 => "CU_FILE_GETNEWFD_FAILED",
        5033 => "CU_FILE_NVFS_SETUP_ERROR",
        5034 => "CU_FILE_IO_DISABLED",
        5035 => "CU_FILE_BATCH_SUBMIT_FAILED",
        5036 => "CU_FILE_GPU_MEMORY_PINNING_FAILED",
        5037 => "CU_FILE_BATCH_FULL",
        5038 => "CU_FILE_ASYNC_NOT_SUPPORTED",
        5039 => "CU_FILE_IO_MAX_ERROR",
        _ => "a cuFile error (see CUfileOpError in cufile.h)",
    }
}

impl CuFile {
    /// Loads the first of `names` that loads, resolves the entry points and
    /// opens the cuFile driver.
    pub fn load_from(names: &[&str]) -> Result<CuFile, CudaError> {
        match open_first(names) {
            Ok((lib, name)) => CuFile::resolve(lib, name),
            Err(cause) => Err(CudaError::CuFileLoad {
                tried: names.join(", "),
                cause,
            }),
        }
    }

    fn resolve(lib: Library, name: &str) -> Result<CuFile, CudaError> {
        macro_rules! symbol {
            ($name:literal) => {{
                // SAFETY: the Rust type given to the symbol (the field it is
                // stored in) is the C prototype of cufile.h's function of
                // that name: CUfileError_t as CuFileStatus, off_t as i64,
                // ssize_t as isize, CUfileHandle_t as a pointer.
                match unsafe { lib.get(concat!($name, "\0").as_bytes()) } {
                    Ok(symbol) => *symbol,
                    Err(err) => {
                        return Err(CudaError::CuFileLoad {
                            tried: name.to_string(),
                            cause: format!(
                                "{name} has no {} ({err}): not cuFile, or one too old",
                                $name
                            ),
                        })
                    }
                }
            }};
        }
        let entry = Entry {
            driver_open: symbol!("cuFileDriverOpen"),
            handle_register: symbol!("cuFileHandleRegister"),
            handle_deregister: symbol!("cuFileHandleDeregister"),
            buf_register: symbol!("cuFileBufRegister"),
            buf_deregister: symbol!("cuFileBufDeregister"),
            write: symbol!("cuFileWrite"),
            read: symbol!("cuFileRead"),
        };
        let cufile = CuFile {
            library: name.to_string(),
            entry,
            compat: !std::path::Path::new(NVIDIA_FS_PROC).exists(),
            _lib: lib,
        };
        // SAFETY: takes no arguments; opening twice is an error code, not UB.
        let status = unsafe { (cufile.entry.driver_open)() };
        cufile.check(
            "cuFileDriverOpen",
            status,
            "; without nvidia-fs cuFile needs \"allow_compat_mode\": true in cufile.json \
             (CUFILE_ENV_PATH_JSON names another one)",
        )?;
        Ok(cufile)
    }

    /// The library loaded.
    pub fn library(&self) -> &str {
        &self.library
    }

    /// Whether cuFile must run in compatibility mode (nvidia-fs not
    /// loaded): I/O is staged through host memory, not GPUDirect. (False
    /// does not prove GPUDirect: cuFile may still fall back per file;
    /// [`nvidia_fs_writes`] tells.)
    pub fn compat(&self) -> bool {
        self.compat
    }

    fn check(&self, call: &'static str, status: CuFileStatus, hint: &str) -> Result<(), CudaError> {
        if status.err == CU_FILE_SUCCESS {
            return Ok(());
        }
        let detail = if status.err == CU_FILE_CUDA_DRIVER_ERROR {
            format!("CUresult {}", status.cu_err)
        } else {
            format!("{} of {}", call, self.library)
        };
        Err(CudaError::Call {
            call,
            code: status.err,
            name: cufile_status_name(status.err).to_string(),
            description: detail,
            hint: hint.to_string(),
        })
    }

    /// Registers `file` (opened with `O_DIRECT`) with cuFile; the handle
    /// owns it.
    pub fn register_file(&'static self, file: File) -> Result<GdsHandle, CudaError> {
        let mut descr = CuFileDescr {
            handle_type: CU_FILE_HANDLE_TYPE_OPAQUE_FD,
            handle: CuFileHandleUnion {
                fd: file.as_raw_fd(),
            },
            fs_ops: std::ptr::null(),
        };
        let mut handle: CuFileHandle = std::ptr::null_mut();
        // SAFETY: both out/in parameters are live locals of the prototype's
        // types; the fd stays open for the handle's life (it owns `file`).
        let status = unsafe { (self.entry.handle_register)(&mut handle, &mut descr) };
        self.check(
            "cuFileHandleRegister",
            status,
            "; cuFile could not take the file: it must be on a local file system cuFile \
             supports (ext4, xfs) and udev must describe its block device (cuFile reads \
             ID_FS_USAGE/ID_FS_TYPE); cufile.log in the working directory says which",
        )?;
        Ok(GdsHandle {
            cufile: self,
            handle,
            file,
        })
    }

    /// Registers `memory` with cuFile (the GPU buffer pinned for DMA); the
    /// registration owns it.
    pub fn register_buffer(&'static self, memory: DeviceMemory) -> Result<GdsBuffer, CudaError> {
        memory.gpu().make_current()?;
        let base = memory.ptr() as *const c_void;
        // SAFETY: the range is our live allocation; flags 0 is the only
        // documented value.
        let status = unsafe { (self.entry.buf_register)(base, memory.alloc_bytes() as usize, 0) };
        self.check(
            "cuFileBufRegister",
            status,
            "; the GPU's BAR1 may be too small for the buffer (`nvidia-smi -q -d MEMORY`)",
        )?;
        Ok(GdsBuffer {
            cufile: self,
            memory,
        })
    }
}

/// A file registered with cuFile; deregistered on drop, then closed.
pub struct GdsHandle {
    cufile: &'static CuFile,
    handle: CuFileHandle,
    file: File,
}

// SAFETY: a cuFile handle may be used from any thread (cuFile's API is
// thread-safe); it is only passed to the library, never dereferenced.
unsafe impl Send for GdsHandle {}

impl std::fmt::Debug for GdsHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GdsHandle").finish_non_exhaustive()
    }
}

impl GdsHandle {
    /// The registered file.
    pub fn file(&self) -> &File {
        &self.file
    }

    /// Writes `len` bytes of `buffer` from `buffer_offset` to the file at
    /// `file_offset` (cuFileWrite, synchronous). Returns the bytes written.
    pub fn write(
        &self,
        buffer: &GdsBuffer,
        len: usize,
        file_offset: u64,
        buffer_offset: u64,
    ) -> Result<usize, CudaError> {
        self.io(
            "cuFileWrite",
            buffer,
            len,
            file_offset,
            buffer_offset,
            |h, p, n, f, b| {
                // SAFETY: the handle is registered, `p` is the registered base of
                // a live allocation and [b, b + n) lies inside it (checked).
                unsafe { (self.cufile.entry.write)(h, p, n, f, b) }
            },
        )
    }

    /// Reads `len` bytes of the file at `file_offset` into `buffer` at
    /// `buffer_offset` (cuFileRead, synchronous). Returns the bytes read.
    pub fn read(
        &self,
        buffer: &GdsBuffer,
        len: usize,
        file_offset: u64,
        buffer_offset: u64,
    ) -> Result<usize, CudaError> {
        self.io(
            "cuFileRead",
            buffer,
            len,
            file_offset,
            buffer_offset,
            |h, p, n, f, b| {
                // SAFETY: as in `write`; the device range is ours to overwrite.
                unsafe { (self.cufile.entry.read)(h, p as *mut c_void, n, f, b) }
            },
        )
    }

    fn io(
        &self,
        call: &'static str,
        buffer: &GdsBuffer,
        len: usize,
        file_offset: u64,
        buffer_offset: u64,
        op: impl FnOnce(CuFileHandle, *const c_void, usize, i64, i64) -> isize,
    ) -> Result<usize, CudaError> {
        let memory = &buffer.memory;
        if buffer_offset.saturating_add(len as u64) > memory.alloc_bytes() {
            return Err(CudaError::Range {
                offset: buffer_offset as usize,
                len,
                bytes: memory.alloc_bytes(),
            });
        }
        memory.gpu().make_current()?;
        let done = op(
            self.handle,
            memory.ptr() as *const c_void,
            len,
            file_offset as i64,
            buffer_offset as i64,
        );
        match done {
            n if n >= 0 => Ok(n as usize),
            -1 => {
                let err = std::io::Error::last_os_error();
                Err(CudaError::Call {
                    call,
                    code: err.raw_os_error().unwrap_or(-1),
                    name: "errno".into(),
                    description: err.to_string(),
                    hint: "; check free space and that the file system supports O_DIRECT".into(),
                })
            }
            n if -n < 5000 => {
                let err = std::io::Error::from_raw_os_error((-n) as i32);
                Err(CudaError::Call {
                    call,
                    code: (-n) as i32,
                    name: "errno".into(),
                    description: err.to_string(),
                    hint: "; check free space and that the file system supports O_DIRECT".into(),
                })
            }
            n => {
                let code = (-n) as i32;
                Err(CudaError::Call {
                    call,
                    code,
                    name: cufile_status_name(code).to_string(),
                    description: format!("{call} of {}", self.cufile.library),
                    hint: String::new(),
                })
            }
        }
    }
}

impl Drop for GdsHandle {
    fn drop(&mut self) {
        // SAFETY: the handle registered in `register_file`, deregistered once,
        // while its fd is still open (the File field closes after this).
        unsafe { (self.cufile.entry.handle_deregister)(self.handle) };
    }
}

/// A GPU buffer registered with cuFile; deregistered on drop, then freed.
pub struct GdsBuffer {
    cufile: &'static CuFile,
    memory: DeviceMemory,
}

impl std::fmt::Debug for GdsBuffer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GdsBuffer")
            .field("memory", &self.memory)
            .finish()
    }
}

impl GdsBuffer {
    /// The registered GPU memory.
    pub fn memory(&self) -> &DeviceMemory {
        &self.memory
    }
}

impl Drop for GdsBuffer {
    fn drop(&mut self) {
        if let Err(err) = self.memory.gpu().make_current() {
            log::warn!("deregistering a cuFile buffer: {err}");
        }
        // SAFETY: the base registered in `register_buffer`, once, while the
        // allocation is alive (the memory field is freed after this).
        let status =
            unsafe { (self.cufile.entry.buf_deregister)(self.memory.ptr() as *const c_void) };
        if status.err != CU_FILE_SUCCESS {
            log::warn!(
                "cuFileBufDeregister returned {} ({})",
                status.err,
                cufile_status_name(status.err)
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_descriptor_has_cufile_h_layout() {
        // type (4) + padding (4) + union of int and pointer (8) + ops (8)
        assert_eq!(std::mem::size_of::<CuFileDescr>(), 24);
        assert_eq!(std::mem::align_of::<CuFileDescr>(), 8);
        assert_eq!(std::mem::size_of::<CuFileStatus>(), 8);
    }

    #[test]
    fn a_missing_library_names_cufile_and_the_fix() {
        let err = CuFile::load_from(&["/nonexistent/libcufile.so.0"]).unwrap_err();
        let text = err.to_string();
        assert!(text.contains("/nonexistent/libcufile.so.0"), "{text}");
        assert!(text.contains("nvidia-gds"), "{text}");
    }

    #[test]
    fn a_library_without_cufile_names_the_symbol() {
        let err = CuFile::load_from(&["libc.so.6"]).unwrap_err();
        assert!(
            err.to_string()
                .contains("libc.so.6 has no cuFileDriverOpen"),
            "{err}"
        );
    }

    #[test]
    fn nvidia_fs_write_counts_are_read_from_its_stats() {
        let text = "NVFS statistics(ver: 4.0)\nReads\t\t\t: n=5 ok=5 err=0 readMiB=1\n\
                    Writes\t\t\t: n=12 ok=11 err=1 writeMiB=44 io_state_err=0\n";
        assert_eq!(parse_nvidia_fs_writes(text), Some(11));
        assert_eq!(parse_nvidia_fs_writes("no such line"), None);
    }

    #[test]
    fn status_codes_have_names() {
        assert_eq!(cufile_status_name(5011), "CU_FILE_CUDA_DRIVER_ERROR");
        assert!(cufile_status_name(5999).contains("cufile.h"));
    }
}
