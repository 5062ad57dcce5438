//! GPU memory through the CUDA driver API, loaded at run time: the GPU, its
//! allocations, host↔device copies, dma-buf export, and GPUDirect Storage
//! (cuFile) writes to files. Registration with
//! the NIC lives in `verbs::memory`; this module knows nothing of verbs.

mod align;
mod cufile;
mod driver;

pub use align::{dmabuf_range, gpu_alloc_bytes, DmabufRange, GPU_PAGE_BYTES};
pub use cufile::{
    cufile, cufile_status_name, nvidia_fs_writes, CuFile, GdsBuffer, GdsHandle, LIBCUFILE_NAMES,
};
pub use driver::{
    driver, host_page_bytes, CudaDriver, CudaError, CudaGpu, DeviceMemory, GpuFacts, LIBCUDA_NAMES,
};
