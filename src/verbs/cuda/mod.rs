//! GPU memory through the CUDA driver API, loaded at run time: the GPU, its
//! allocations, host↔device copies and dma-buf export. Registration with
//! the NIC lives in `verbs::memory`; this module knows nothing of verbs.

mod align;
mod driver;

pub use align::{dmabuf_range, gpu_alloc_bytes, DmabufRange, GPU_PAGE_BYTES};
pub use driver::{
    cufile_library, driver, host_page_bytes, CudaDriver, CudaError, CudaGpu, DeviceMemory,
    GpuFacts, LIBCUDA_NAMES, LIBCUFILE_NAMES,
};
