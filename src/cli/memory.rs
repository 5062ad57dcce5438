//! `--mem` / `--target-mem` / `--huge-pages` into memory kinds, and the
//! GPU check that runs before any NIC is opened (so a host without the
//! NVIDIA driver hears about libcuda, not about its RDMA devices).

use anyhow::{bail, Context, Result};

use crate::verbs::cuda::CudaGpu;
use crate::verbs::MemoryKind;

use super::args::MemArgs;

/// The memory of both sides, validated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Memory {
    /// The initiator's (sending) side.
    pub initiator: MemoryKind,
    /// The target's (receiving) side, when given (`--target-mem`, or
    /// `--huge-pages`).
    pub target: Option<MemoryKind>,
}

impl Memory {
    /// The target's memory where no flag names it: host.
    pub fn target_or_host(&self) -> MemoryKind {
        self.target.unwrap_or(MemoryKind::Host)
    }

    /// Either side in GPU memory.
    pub fn any_gpu(&self) -> bool {
        self.initiator.is_gpu() || self.target.is_some_and(MemoryKind::is_gpu)
    }
}

fn parse(flag: &str, text: Option<&str>) -> Result<Option<MemoryKind>> {
    text.map(|t| MemoryKind::parse(t).map_err(|e| anyhow::anyhow!("{flag}: {e}")))
        .transpose()
}

/// Reads `--mem`, `--target-mem` and `--huge-pages` (the latter is `--mem
/// huge --target-mem huge`; a contradiction is rejected, never resolved).
pub fn memory_options(args: &MemArgs, huge_pages: bool) -> Result<Memory> {
    let initiator = parse("--mem", args.mem.as_deref())?;
    let target = parse("--target-mem", args.target_mem.as_deref())?;
    if huge_pages {
        for (flag, kind) in [("--mem", initiator), ("--target-mem", target)] {
            if let Some(kind) = kind.filter(|k| *k != MemoryKind::Huge) {
                bail!("--huge-pages asks for huge pages but {flag} {kind} for something else; give one of them");
            }
        }
        return Ok(Memory {
            initiator: MemoryKind::Huge,
            target: Some(MemoryKind::Huge),
        });
    }
    Ok(Memory {
        initiator: initiator.unwrap_or_default(),
        target,
    })
}

/// Opens every GPU `kinds` names on this host, so that a missing driver or
/// GPU fails the command at once, naming the flag.
pub fn check_local_gpus(kinds: &[(&str, MemoryKind)]) -> Result<()> {
    for (flag, kind) in kinds {
        if let MemoryKind::Cuda(n) = kind {
            let gpu = CudaGpu::open(*n).with_context(|| format!("{flag} cuda:{n}"))?;
            log::info!(
                "{flag}: {} (CUDA {}, dma-buf {}, GPUDirect RDMA {})",
                gpu.label(),
                gpu.facts().cuda_version,
                gpu.facts().dmabuf_supported,
                gpu.facts().gpudirect_rdma_supported
            );
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(mem: Option<&str>, target: Option<&str>) -> MemArgs {
        MemArgs {
            mem: mem.map(str::to_string),
            target_mem: target.map(str::to_string),
        }
    }

    #[test]
    fn defaults_are_host_and_the_targets_own() {
        let m = memory_options(&args(None, None), false).unwrap();
        assert_eq!(m.initiator, MemoryKind::Host);
        assert_eq!(m.target, None);
        assert!(!m.any_gpu());
    }

    #[test]
    fn huge_pages_is_huge_on_both_sides() {
        let m = memory_options(&args(None, None), true).unwrap();
        assert_eq!(
            (m.initiator, m.target),
            (MemoryKind::Huge, Some(MemoryKind::Huge))
        );
        let err = memory_options(&args(Some("cuda:0"), None), true).unwrap_err();
        assert!(err.to_string().contains("give one of them"), "{err}");
    }

    #[test]
    fn gpu_kinds_parse_and_bad_ones_name_the_flag() {
        let m = memory_options(&args(Some("cuda:1"), Some("host")), false).unwrap();
        assert_eq!(m.initiator, MemoryKind::Cuda(1));
        assert!(m.any_gpu());
        let err = memory_options(&args(None, Some("gpu0")), false).unwrap_err();
        assert!(err.to_string().starts_with("--target-mem:"), "{err}");
    }
}
