//! The host's GPUs for the system report: model, driver and CUDA versions,
//! memory, BAR1, NUMA node, and which RDMA device shares a PCIe switch or
//! NUMA node with which GPU, from their sysfs PCI paths (what `nvidia-smi
//! topo -m` shows as PIX/PXB, PHB, NODE, SYS).
//!
//! The facts come from the CUDA driver API when libcuda loads (without
//! creating a context: no GPU memory is taken), else from `nvidia-smi`
//! when installed, else the report says "none" and why. Never fails.

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::report::{GpuConfig, GpuInfo, GpuNicAffinity, UNKNOWN};

use super::command::run_with_timeout;
use super::root::{read_parsed, read_trimmed, HostRoot};

/// GPUs and their relation to `rdma_devices`; never fails.
pub fn collect_gpus(root: &HostRoot, rdma_devices: &[String]) -> GpuConfig {
    let mut notes = Vec::new();
    let (source, cuda_version, mut gpus) = match gpus_from_sources(root, &mut notes) {
        Some(found) => found,
        None => ("none".to_string(), UNKNOWN.to_string(), Vec::new()),
    };
    let driver_version =
        read_trimmed(&root.sys.join("module/nvidia/version")).unwrap_or_else(|why| {
            if source != "none" {
                notes.push(why);
            }
            UNKNOWN.to_string()
        });
    for gpu in &mut gpus {
        if let Some(addr) = &gpu.pci_address {
            let dev = root.sys.join("bus/pci/devices").join(addr);
            gpu.numa_node = numa_node(&dev);
            gpu.bar1_bytes = bar_bytes(&dev, 1);
        }
    }
    if root.run_commands && gpus.iter().any(|g| g.bar1_bytes.is_none()) {
        // a VM may hide the GPU's sysfs resource file; the driver knows
        match run_with_timeout(
            "nvidia-smi",
            &["-q", "-d", "MEMORY"],
            Duration::from_secs(5),
        ) {
            Ok(text) => {
                let sizes = parse_bar1_totals(&text);
                for gpu in gpus.iter_mut().filter(|g| g.bar1_bytes.is_none()) {
                    gpu.bar1_bytes = gpu
                        .pci_address
                        .as_ref()
                        .and_then(|a| sizes.iter().find(|(bus, _)| bus == a))
                        .map(|(_, bytes)| *bytes);
                }
            }
            Err(why) => notes.push(format!("BAR1 size: nvidia-smi -q -d MEMORY: {why}")),
        }
    }
    let mut affinity = Vec::new();
    for gpu in &gpus {
        for device in rdma_devices {
            affinity.push(relate(root, gpu, device));
        }
    }
    GpuConfig {
        source,
        driver_version,
        cuda_version,
        gpus,
        affinity,
        notes,
    }
}

/// (source, CUDA version, GPUs) from libcuda, else nvidia-smi; None when
/// neither answers (the reasons go to `notes`).
fn gpus_from_sources(
    root: &HostRoot,
    notes: &mut Vec<String>,
) -> Option<(String, String, Vec<GpuInfo>)> {
    if !root.run_commands {
        // a fixture tree: the loader and nvidia-smi would describe this host
        notes.push("GPUs not probed: a fixture tree, not the live host".into());
        return None;
    }
    match crate::verbs::cuda::driver() {
        Ok(driver) => {
            let count = driver.device_count().unwrap_or_else(|e| {
                notes.push(format!("cuDeviceGetCount: {e}"));
                0
            });
            let gpus = (0..count.max(0) as u32)
                .filter_map(|i| match driver.describe(i) {
                    Ok(f) => Some(GpuInfo {
                        index: i,
                        name: f.name,
                        pci_address: Some(pci_sysfs_form(&f.pci_bus_id)),
                        memory_bytes: Some(f.memory_bytes),
                        bar1_bytes: None,
                        numa_node: None,
                        dmabuf_supported: Some(f.dmabuf_supported),
                        gpudirect_rdma_supported: Some(f.gpudirect_rdma_supported),
                    }),
                    Err(e) => {
                        notes.push(format!("cuda:{i}: {e}"));
                        None
                    }
                })
                .collect();
            return Some(("libcuda".into(), driver.cuda_version(), gpus));
        }
        Err(e) => notes.push(format!("no CUDA driver: {e}")),
    }
    match run_with_timeout(
        "nvidia-smi",
        &[
            "--query-gpu=index,name,pci.bus_id,memory.total",
            "--format=csv,noheader,nounits",
        ],
        Duration::from_secs(5),
    ) {
        Ok(text) => Some((
            "nvidia-smi".into(),
            UNKNOWN.into(),
            parse_nvidia_smi(&text, notes),
        )),
        Err(why) => {
            notes.push(format!("nvidia-smi: {why}"));
            None
        }
    }
}

/// Rows of `nvidia-smi --query-gpu=index,name,pci.bus_id,memory.total
/// --format=csv,noheader,nounits` (memory in MiB).
fn parse_nvidia_smi(text: &str, notes: &mut Vec<String>) -> Vec<GpuInfo> {
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .filter_map(|line| {
            let cells: Vec<&str> = line.split(',').map(str::trim).collect();
            let index = cells.first().and_then(|c| c.parse().ok());
            let (Some(index), 4) = (index, cells.len()) else {
                notes.push(format!("nvidia-smi: unreadable row {line:?}"));
                return None;
            };
            Some(GpuInfo {
                index,
                name: cells[1].to_string(),
                pci_address: Some(pci_sysfs_form(cells[2])),
                memory_bytes: cells[3].parse::<u64>().ok().map(|mib| mib << 20),
                bar1_bytes: None,
                numa_node: None,
                dmabuf_supported: None,
                gpudirect_rdma_supported: None,
            })
        })
        .collect()
}

/// (PCI address in sysfs form, BAR1 bytes) per GPU from `nvidia-smi -q -d
/// MEMORY`: a "GPU 00000000:3B:00.0" header, then a "BAR1 Memory Usage"
/// block whose "Total : N MiB" line is the size.
fn parse_bar1_totals(text: &str) -> Vec<(String, u64)> {
    let mut found = Vec::new();
    let mut gpu: Option<String> = None;
    let mut in_bar1 = false;
    for line in text.lines() {
        let trimmed = line.trim();
        if let Some(bus) = trimmed.strip_prefix("GPU ") {
            gpu = Some(pci_sysfs_form(bus));
            in_bar1 = false;
        } else if trimmed.starts_with("BAR1 Memory Usage") {
            in_bar1 = true;
        } else if in_bar1 {
            if let Some((key, value)) = trimmed.split_once(':') {
                if key.trim() == "Total" {
                    let mib = value.trim().trim_end_matches("MiB").trim().parse::<u64>();
                    if let (Some(bus), Ok(mib)) = (&gpu, mib) {
                        found.push((bus.clone(), mib << 20));
                    }
                    in_bar1 = false;
                }
            } else {
                in_bar1 = false;
            }
        }
    }
    found
}

/// "00000000:3B:00.0" (nvidia-smi) or "0000:3B:00.0" (CUDA) →
/// "0000:3b:00.0" (sysfs).
fn pci_sysfs_form(bus_id: &str) -> String {
    let lower = bus_id.trim().to_ascii_lowercase();
    match lower.split_once(':') {
        Some((domain, rest)) if domain.len() > 4 => {
            format!("{}:{rest}", &domain[domain.len() - 4..])
        }
        _ => lower,
    }
}

fn numa_node(dev: &Path) -> Option<u32> {
    let node: i64 = read_parsed(&dev.join("numa_node")).ok()?;
    u32::try_from(node).ok()
}

/// The size of the GPU's BAR `index` as NVIDIA numbers them (BAR0
/// registers, BAR1 the framebuffer aperture, ...): the `index`-th populated
/// region of sysfs `resource` ("start end flags" per line). A 64-bit BAR
/// takes two register slots, the second an all-zero line, and whether BAR0
/// is 64-bit varies (a VM's often is), so empty lines are skipped rather
/// than counted.
fn bar_bytes(dev: &Path, index: usize) -> Option<u64> {
    let text = read_trimmed(&dev.join("resource")).ok()?;
    let hex = |s: Option<&str>| u64::from_str_radix(s?.trim_start_matches("0x"), 16).ok();
    text.lines()
        .filter_map(|line| {
            let mut cells = line.split_whitespace();
            let (start, end) = (hex(cells.next())?, hex(cells.next())?);
            (end > start).then(|| end - start + 1)
        })
        .nth(index)
}

fn relate(root: &HostRoot, gpu: &GpuInfo, device: &str) -> GpuNicAffinity {
    let gpu_path = gpu
        .pci_address
        .as_ref()
        .and_then(|a| resolve(&root.sys.join("bus/pci/devices").join(a)));
    let nic_path = resolve(&root.ib_device(device).join("device"));
    let gpu_numa = gpu.numa_node;
    let nic_numa = nic_path.as_ref().and_then(|p| numa_node(p));
    let same_numa_node = gpu_numa.zip(nic_numa).map(|(a, b)| a == b);
    let (relation, common_bridge) = match (&gpu_path, &nic_path) {
        (Some(g), Some(n)) => {
            let (relation, bridge) = pci_relation(&g.to_string_lossy(), &n.to_string_lossy());
            match relation {
                "cross-root" if same_numa_node == Some(true) => ("numa-node", None),
                "cross-root" if same_numa_node == Some(false) => ("cross-numa", None),
                "cross-root" => ("unknown", None),
                other => (other, bridge),
            }
        }
        _ => ("unknown", None),
    };
    GpuNicAffinity {
        gpu: gpu.index,
        device: device.to_string(),
        relation: relation.into(),
        common_bridge,
        same_numa_node,
    }
}

fn resolve(path: &Path) -> Option<PathBuf> {
    std::fs::canonicalize(path).ok()
}

/// How two devices relate, from their resolved sysfs paths
/// (`/sys/devices/pci0000:00/0000:00:01.0/0000:01:00.0/…/0000:3b:00.0`):
/// "pcie-switch" with the deepest common bridge when a PCI device sits
/// above both, "host-bridge" when they share only the root complex,
/// "cross-root" otherwise (the caller tells NUMA nodes apart).
pub fn pci_relation(a: &str, b: &str) -> (&'static str, Option<String>) {
    let parts = |p: &str| -> Vec<String> {
        p.split('/')
            .filter(|c| c.starts_with("pci") || c.len() == 12 && c.as_bytes()[4] == b':')
            .map(str::to_string)
            .collect()
    };
    let (pa, pb) = (parts(a), parts(b));
    let (Some(root_a), Some(root_b)) = (pa.first(), pb.first()) else {
        return ("cross-root", None);
    };
    if root_a != root_b {
        return ("cross-root", None);
    }
    // common PCI devices below the root, excluding either device itself
    let common: Vec<&String> = pa[1..pa.len().saturating_sub(1)]
        .iter()
        .zip(pb[1..pb.len().saturating_sub(1)].iter())
        .take_while(|(x, y)| x == y)
        .map(|(x, _)| x)
        .collect();
    match common.last() {
        Some(bridge) => ("pcie-switch", Some((*bridge).clone())),
        None => ("host-bridge", None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ROOT: &str = "/sys/devices/pci0000:16";

    #[test]
    fn a_switch_above_both_is_named() {
        let gpu = format!("{ROOT}/0000:16:01.0/0000:17:00.0/0000:18:00.0/0000:19:00.0");
        let nic = format!("{ROOT}/0000:16:01.0/0000:17:00.0/0000:18:04.0/0000:1a:00.0");
        assert_eq!(
            pci_relation(&gpu, &nic),
            ("pcie-switch", Some("0000:17:00.0".to_string()))
        );
    }

    #[test]
    fn same_root_port_only_is_the_host_bridge() {
        let gpu = format!("{ROOT}/0000:16:01.0/0000:17:00.0");
        let nic = format!("{ROOT}/0000:16:02.0/0000:18:00.0");
        assert_eq!(pci_relation(&gpu, &nic), ("host-bridge", None));
    }

    #[test]
    fn different_roots_are_left_to_numa() {
        let gpu = "/sys/devices/pci0000:16/0000:16:01.0/0000:17:00.0";
        let nic = "/sys/devices/pci0000:97/0000:97:01.0/0000:98:00.0";
        assert_eq!(pci_relation(gpu, nic), ("cross-root", None));
        // a software device (rxe on a virtual netdev) has no PCI path
        assert_eq!(
            pci_relation(gpu, "/sys/devices/virtual/net/veth0"),
            ("cross-root", None)
        );
    }

    #[test]
    fn bus_ids_take_the_sysfs_form() {
        assert_eq!(pci_sysfs_form("00000000:3B:00.0"), "0000:3b:00.0");
        assert_eq!(pci_sysfs_form("0000:AF:00.1"), "0000:af:00.1");
    }

    #[test]
    fn nvidia_smi_rows_parse() {
        let mut notes = Vec::new();
        let gpus = parse_nvidia_smi(
            "0, NVIDIA H100 80GB HBM3, 00000000:19:00.0, 81559\ngarbage\n",
            &mut notes,
        );
        assert_eq!(gpus.len(), 1);
        assert_eq!(gpus[0].name, "NVIDIA H100 80GB HBM3");
        assert_eq!(gpus[0].pci_address.as_deref(), Some("0000:19:00.0"));
        assert_eq!(gpus[0].memory_bytes, Some(81559 << 20));
        assert_eq!(notes.len(), 1);
    }

    #[test]
    fn a_fixture_tree_reports_no_gpu_and_says_why() {
        let root = HostRoot::under(Path::new("/nonexistent"));
        let gpu = collect_gpus(&root, &["rxe0".to_string()]);
        assert_eq!(gpu.source, "none");
        assert!(gpu.gpus.is_empty() && gpu.affinity.is_empty());
        assert_eq!(gpu.driver_version, UNKNOWN);
        assert!(gpu.notes[0].contains("fixture"), "{:?}", gpu.notes);
    }

    #[test]
    fn bar1_totals_come_from_nvidia_smi_memory() {
        let text = "==============NVSMI LOG==============\n\nAttached GPUs : 2\nGPU 00000000:3B:00.0\n    FB Memory Usage\n        Total : 81559 MiB\n    BAR1 Memory Usage\n        Total : 131072 MiB\n        Used : 1 MiB\n\nGPU 00000000:86:00.0\n    BAR1 Memory Usage\n        Total : 256 MiB\n";
        assert_eq!(
            parse_bar1_totals(text),
            vec![
                ("0000:3b:00.0".to_string(), 131072u64 << 20),
                ("0000:86:00.0".to_string(), 256u64 << 20)
            ]
        );
        assert!(parse_bar1_totals("no GPUs").is_empty());
    }

    #[test]
    fn bar_sizes_come_from_sysfs_resource() {
        let dir = std::env::temp_dir().join(format!("infab-bar-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(
            dir.join("resource"),
            "0x00000000a0000000 0x00000000a0ffffff 0x0000000000040200\n\
             0x0000038000000000 0x0000039fffffffff 0x000000000014220c\n",
        )
        .unwrap();
        assert_eq!(bar_bytes(&dir, 0), Some(16 << 20));
        assert_eq!(bar_bytes(&dir, 1), Some(128 << 30));
        assert_eq!(bar_bytes(&dir, 5), None);
        // a VM's 64-bit BAR0 leaves an empty slot before BAR1 (H200 guest)
        std::fs::write(
            dir.join("resource"),
            "0x0000104002000000 0x0000104002ffffff 0x000000000014220c\n\
             0x0000000000000000 0x0000000000000000 0x0000000000000000\n\
             0x0000100000000000 0x0000103fffffffff 0x000000000014220c\n",
        )
        .unwrap();
        assert_eq!(bar_bytes(&dir, 0), Some(16 << 20));
        assert_eq!(bar_bytes(&dir, 1), Some(256 << 30));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
