//! The size and address arithmetic of GPU buffers, apart from any driver so
//! it tests on any host.
//!
//! Two granules matter. The CUDA driver hands out device memory in 64 KiB
//! pages (GPUDirect RDMA pins whole GPU pages, and perftest rounds every
//! allocation to them), so an allocation is rounded up to 64 KiB. A dma-buf
//! is exported over host pages: `cuMemGetHandleForAddressRange` wants a
//! range that starts and ends on a host page, and `ibv_reg_dmabuf_mr` then
//! takes the buffer's offset inside that range.

/// The GPU page GPUDirect RDMA pins: allocations are whole multiples of it.
pub const GPU_PAGE_BYTES: u64 = 64 * 1024;

/// `bytes` rounded up to whole GPU pages (at least one page); `None` when
/// the result overflows.
pub fn gpu_alloc_bytes(bytes: u64) -> Option<u64> {
    let bytes = bytes.max(1);
    bytes
        .checked_add(GPU_PAGE_BYTES - 1)
        .map(|b| b / GPU_PAGE_BYTES * GPU_PAGE_BYTES)
}

/// The host-page-aligned range a dma-buf is exported over, for a buffer of
/// `len` bytes at device address `ptr`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DmabufRange {
    /// `ptr` rounded down to a host page.
    pub base: u64,
    /// Bytes from `base` to the end of the buffer, rounded up to a host page.
    pub len: u64,
    /// Where the buffer starts inside the range (`ptr - base`): the dma-buf
    /// offset `ibv_reg_dmabuf_mr` takes.
    pub offset: u64,
}

/// The dma-buf range of `len` bytes at `ptr` for host pages of `page`
/// bytes (a power of two); `None` when `page` is not one or the end
/// overflows.
pub fn dmabuf_range(ptr: u64, len: u64, page: u64) -> Option<DmabufRange> {
    if page == 0 || !page.is_power_of_two() {
        return None;
    }
    let base = ptr & !(page - 1);
    let offset = ptr - base;
    let end = offset.checked_add(len)?.checked_add(page - 1)?;
    Some(DmabufRange {
        base,
        len: end & !(page - 1),
        offset,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn allocations_round_up_to_64_kib() {
        assert_eq!(gpu_alloc_bytes(0), Some(65_536));
        assert_eq!(gpu_alloc_bytes(1), Some(65_536));
        assert_eq!(gpu_alloc_bytes(65_535), Some(65_536));
        assert_eq!(gpu_alloc_bytes(65_536), Some(65_536));
        assert_eq!(gpu_alloc_bytes(65_537), Some(131_072));
        // 1 MB (decimal) is 15.26 GPU pages
        assert_eq!(gpu_alloc_bytes(1_000_000), Some(16 * 65_536));
        assert_eq!(gpu_alloc_bytes(u64::MAX), None);
    }

    #[test]
    fn an_aligned_pointer_exports_from_itself() {
        let r = dmabuf_range(0x7f00_0020_0000, 1_000_000, 4096).unwrap();
        assert_eq!(r.base, 0x7f00_0020_0000);
        assert_eq!(r.offset, 0);
        // 1_000_000 / 4096 = 244.14 → 245 pages
        assert_eq!(r.len, 245 * 4096);
    }

    #[test]
    fn an_unaligned_pointer_keeps_its_offset() {
        let r = dmabuf_range(0x1000_0100, 4096, 4096).unwrap();
        assert_eq!(r.base, 0x1000_0000);
        assert_eq!(r.offset, 0x100);
        // 0x100 + 4096 spills into a second page
        assert_eq!(r.len, 8192);
        let r = dmabuf_range(0x1_0000 + 65_535, 1, 65_536).unwrap();
        assert_eq!((r.base, r.offset, r.len), (0x1_0000, 65_535, 65_536));
    }

    #[test]
    fn bad_pages_and_overflow_are_refused() {
        assert_eq!(dmabuf_range(0, 1, 0), None);
        assert_eq!(dmabuf_range(0, 1, 3000), None);
        assert_eq!(dmabuf_range(0x1001, u64::MAX, 4096), None);
    }
}
