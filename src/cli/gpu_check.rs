//! `infab devices --gpu`: a self-check of the GPU path that needs no RDMA
//! NIC. The CUDA driver loads; each GPU's attributes; allocations at odd
//! sizes round to 64 KiB; a dma-buf exports over the page-aligned range; a
//! pattern survives host → device → host; and which RDMA device sits near
//! which GPU. Without a GPU it ends with one line saying why, exit 1.

use anyhow::{Context, Result};

use crate::sysinfo::{collect_gpus, HostRoot};
use crate::verbs::cuda::{driver, gpu_alloc_bytes, CudaGpu, DeviceMemory};

/// Sizes that are not multiples of anything: each must round to 64 KiB.
const ODD_SIZES: [u64; 4] = [1, 4097, 65_537, 1_000_003];

struct Checks {
    failed: u32,
}

impl Checks {
    fn report<T>(
        &mut self,
        what: &str,
        result: Result<T, String>,
        show: impl Fn(&T) -> String,
    ) -> Option<T> {
        match result {
            Ok(value) => {
                println!("ok    {what}: {}", show(&value));
                Some(value)
            }
            Err(why) => {
                println!("FAIL  {what}: {why}");
                self.failed += 1;
                None
            }
        }
    }
}

pub(super) fn gpu_check() -> Result<i32> {
    let driver = driver().context("devices --gpu")?;
    let count = driver.device_count().context("devices --gpu")?;
    if count == 0 {
        anyhow::bail!("devices --gpu: the CUDA driver loads ({}) but sees no GPU; check `nvidia-smi -L` and CUDA_VISIBLE_DEVICES", driver.library());
    }
    let mut checks = Checks { failed: 0 };
    println!(
        "ok    driver: {} (CUDA {}), {count} GPU(s)",
        driver.library(),
        driver.cuda_version()
    );
    let peermem = std::path::Path::new("/sys/module/nvidia_peermem").exists();
    println!(
        "info  nvidia_peermem: {}",
        if peermem {
            "loaded (fallback registration available)"
        } else {
            "not loaded (dma-buf is the only registration path)"
        }
    );
    for ordinal in 0..count as u32 {
        check_gpu(&mut checks, ordinal);
    }
    let devices: Vec<String> = std::fs::read_dir("/sys/class/infiniband")
        .map(|dir| {
            dir.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    let topo = collect_gpus(&HostRoot::live(), &devices);
    println!(
        "info  NVIDIA driver {}, facts from {}",
        topo.driver_version, topo.source
    );
    for gpu in &topo.gpus {
        println!(
            "info  cuda:{} {}: PCI {}, NUMA node {}, BAR1 {}",
            gpu.index,
            gpu.name,
            gpu.pci_address.as_deref().unwrap_or("unknown"),
            gpu.numa_node.map_or("unknown".into(), |n| n.to_string()),
            gpu.bar1_bytes.map_or("unknown".into(), |b| format!(
                "{:.1} GiB",
                b as f64 / (1u64 << 30) as f64
            )),
        );
    }
    if devices.is_empty() {
        println!("info  no RDMA device on this host: GPU↔NIC distances not shown");
    }
    for a in &topo.affinity {
        println!(
            "info  cuda:{} ↔ {}: {}{}",
            a.gpu,
            a.device,
            a.relation,
            a.common_bridge
                .as_ref()
                .map_or(String::new(), |b| format!(" (under {b})"))
        );
    }
    if checks.failed > 0 {
        println!("{} check(s) failed", checks.failed);
        return Ok(1);
    }
    println!("all GPU checks passed");
    Ok(0)
}

fn check_gpu(checks: &mut Checks, ordinal: u32) {
    let what = format!("cuda:{ordinal}");
    let Some(gpu) = checks.report(
        &format!("{what} context"),
        CudaGpu::open(ordinal).map_err(|e| e.to_string()),
        |g| {
            let f = g.facts();
            format!(
                "{} at {}, {:.1} GiB, dma-buf {}, GPUDirect RDMA {}",
                f.name,
                f.pci_bus_id,
                f.memory_bytes as f64 / (1u64 << 30) as f64,
                yes_no(f.dmabuf_supported),
                yes_no(f.gpudirect_rdma_supported)
            )
        },
    ) else {
        return;
    };
    let mut kept = Vec::new();
    for bytes in ODD_SIZES {
        let alloc = DeviceMemory::alloc(&gpu, bytes)
            .map_err(|e| e.to_string())
            .and_then(|m| {
                let want = gpu_alloc_bytes(bytes).unwrap_or(0);
                if m.alloc_bytes() != want {
                    Err(format!(
                        "allocated {} bytes, expected {want}",
                        m.alloc_bytes()
                    ))
                } else if m.ptr() % 256 != 0 {
                    Err(format!(
                        "device pointer {:#x} not 256-byte aligned",
                        m.ptr()
                    ))
                } else {
                    Ok(m)
                }
            });
        if let Some(m) = checks.report(&format!("{what} alloc {bytes} B"), alloc, |m| {
            format!("{} B at {:#x}", m.alloc_bytes(), m.ptr())
        }) {
            kept.push(m);
        }
    }
    let Some(largest) = kept.last() else {
        return;
    };
    if gpu.facts().dmabuf_supported {
        let export = largest
            .export_dmabuf()
            .map_err(|e| e.to_string())
            .and_then(|(fd, range)| {
                let covers = range.base <= largest.ptr()
                    && range.base + range.len >= largest.ptr() + largest.alloc_bytes();
                if covers {
                    Ok((fd, range))
                } else {
                    Err(format!("range {range:?} does not cover the allocation"))
                }
            });
        checks.report(&format!("{what} dma-buf export"), export, |(fd, range)| {
            use std::os::fd::AsRawFd;
            format!(
                "fd {} over {:#x}+{} (offset {})",
                fd.as_raw_fd(),
                range.base,
                range.len,
                range.offset
            )
        });
    } else {
        println!("info  {what} dma-buf export: skipped, the driver reports no dma-buf support (needs the open kernel modules, Linux 5.12+); registration would need nvidia_peermem");
    }
    let round_trip = round_trip(largest);
    checks.report(&format!("{what} host→device→host"), round_trip, |n| {
        format!("{n} bytes at offsets 0 and 4097 came back intact")
    });
}

/// Writes a pattern at offset 0 and an odd offset, reads both back.
fn round_trip(memory: &DeviceMemory) -> Result<usize, String> {
    let len = memory.len() as usize;
    let pattern: Vec<u8> = (0..len).map(|i| (i % 251) as u8 ^ 0x3c).collect();
    memory
        .copy_from_host(0, &pattern)
        .map_err(|e| e.to_string())?;
    let mut back = vec![0u8; len];
    memory
        .copy_to_host(0, &mut back)
        .map_err(|e| e.to_string())?;
    if back != pattern {
        let at = back
            .iter()
            .zip(&pattern)
            .position(|(a, b)| a != b)
            .unwrap_or(0);
        return Err(format!("byte {at} differs after the round trip"));
    }
    let tail = &pattern[..len.saturating_sub(4097).min(65_536)];
    memory
        .copy_from_host(4097, tail)
        .map_err(|e| e.to_string())?;
    let mut back = vec![0u8; tail.len()];
    memory
        .copy_to_host(4097, &mut back)
        .map_err(|e| e.to_string())?;
    if back != tail {
        return Err("bytes at offset 4097 differ after the round trip".into());
    }
    Ok(len)
}

fn yes_no(flag: bool) -> &'static str {
    if flag {
        "yes"
    } else {
        "no"
    }
}
