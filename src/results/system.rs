//! The system configuration report (draft section 14, "System Configuration
//! Report"): the host, the RDMA software and each device and port a run used.
//! Plain data only; `crate::sysinfo` fills it in from /sys, /proc and a few
//! commands, and this module knows nothing of where the values came from.
//!
//! How "unknown" is written, once for every field here:
//!
//! - a text field that could not be read holds the string `"unknown"`;
//! - a number that could not be read is `None` (JSON `null`), never 0;
//! - either way, `notes` holds one line saying what was missing and why
//!   (file absent, unreadable, garbage, command not installed, ...).
//!
//! PFC and ECN are the exception: they get a [`PrioritySetting`] each, whose
//! `source` says where the value was read or, when it is null, why it is
//! unknown. infab never guesses a QoS setting.

use serde::{Deserialize, Serialize};

/// The text written where a value could not be read.
pub const UNKNOWN: &str = "unknown";

/// The host and the RDMA software stack a run used.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SystemConfig {
    /// `uname -r`, e.g. "6.1.0-18-amd64" (/proc/sys/kernel/osrelease).
    pub kernel_release: String,
    /// `uname -v`, the build string (/proc/sys/kernel/version).
    pub kernel_version: String,
    /// PRETTY_NAME from /etc/os-release, e.g. "Debian GNU/Linux 12 (bookworm)".
    pub os_name: String,
    /// Host name (/proc/sys/kernel/hostname).
    pub hostname: String,
    /// CPU model name (first "model name" in /proc/cpuinfo).
    pub cpu_model: String,
    /// Logical CPUs online (/sys/devices/system/cpu/online).
    pub cpu_logical_count: Option<u32>,
    /// NUMA nodes online (/sys/devices/system/node/online).
    pub numa_node_count: Option<u32>,
    /// Huge page pools and the transparent huge page mode.
    pub huge_pages: HugePages,
    /// rdma-core (libibverbs) version, e.g. "44.0", or "unknown".
    pub rdma_core_version: String,
    /// Where `rdma_core_version` came from, e.g. "dpkg-query libibverbs1".
    pub rdma_core_source: String,
    /// infab's crate version.
    pub infab_version: String,
    /// Git commit infab was built from (INFAB_GIT_COMMIT at build time).
    pub infab_git_commit: Option<String>,
    /// One entry per device and port the run used.
    pub devices: Vec<DeviceConfig>,
    /// What could not be read about the host, and why; one line each.
    pub notes: Vec<String>,
    /// The GPUs, their driver and which NIC sits near which GPU; absent in
    /// files written before it was recorded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gpu: Option<GpuConfig>,
}

/// The host's GPUs: where the facts came from, the driver, each GPU, and
/// its PCIe/NUMA relation to each RDMA device.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GpuConfig {
    /// "libcuda" (the CUDA driver API), "nvidia-smi", or "none" (no GPU
    /// found; `notes` says why).
    pub source: String,
    /// The NVIDIA kernel driver version (/sys/module/nvidia/version), or
    /// "unknown".
    pub driver_version: String,
    /// The CUDA version the driver supports ("12.4"), or "unknown".
    pub cuda_version: String,
    /// One entry per GPU.
    pub gpus: Vec<GpuInfo>,
    /// One entry per GPU × RDMA device.
    pub affinity: Vec<GpuNicAffinity>,
    /// What could not be read, and why; one line each.
    pub notes: Vec<String>,
}

/// One GPU.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GpuInfo {
    /// CUDA ordinal (nvidia-smi index).
    pub index: u32,
    /// Model, e.g. "NVIDIA H100 80GB HBM3".
    pub name: String,
    /// PCI address, "0000:3b:00.0".
    pub pci_address: Option<String>,
    /// Device memory, bytes.
    pub memory_bytes: Option<u64>,
    /// BAR1 size, bytes (sysfs `resource`, region 1): the window a NIC
    /// reads GPU memory through with GPUDirect RDMA.
    pub bar1_bytes: Option<u64>,
    /// NUMA node of the GPU; `None` when the kernel reports -1.
    pub numa_node: Option<u32>,
    /// CU_DEVICE_ATTRIBUTE_DMA_BUF_SUPPORTED (libcuda only).
    pub dmabuf_supported: Option<bool>,
    /// CU_DEVICE_ATTRIBUTE_GPU_DIRECT_RDMA_SUPPORTED (libcuda only).
    pub gpudirect_rdma_supported: Option<bool>,
}

/// How close one GPU and one RDMA device sit, from their sysfs PCI paths.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GpuNicAffinity {
    /// The GPU's index.
    pub gpu: u32,
    /// The RDMA device.
    pub device: String,
    /// "pcie-switch" (a PCIe bridge above both: peer-to-peer stays under
    /// it, nvidia-smi's PIX/PXB), "host-bridge" (same root complex, PHB),
    /// "numa-node" (different root complexes, same NUMA node, NODE),
    /// "cross-numa" (SYS), or "unknown".
    pub relation: String,
    /// The deepest PCI bridge above both, for "pcie-switch".
    pub common_bridge: Option<String>,
    /// Whether both report the same NUMA node (`None`: either unknown).
    pub same_numa_node: Option<bool>,
}

/// Huge page pools (/sys/kernel/mm/hugepages) and THP
/// (/sys/kernel/mm/transparent_hugepage/enabled).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HugePages {
    /// 2 MiB pages reserved (`nr_hugepages`).
    pub pages_2mib_total: Option<u64>,
    /// 2 MiB pages free.
    pub pages_2mib_free: Option<u64>,
    /// 1 GiB pages reserved.
    pub pages_1gib_total: Option<u64>,
    /// 1 GiB pages free.
    pub pages_1gib_free: Option<u64>,
    /// Transparent huge pages mode: "always", "madvise", "never" or "unknown".
    pub transparent_mode: String,
}

/// PFC or ECN state per priority, with where it was read.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PrioritySetting {
    /// Priorities (0..=7) on which the feature is enabled, ascending; empty
    /// when it is off on all; `None` when unknown.
    pub enabled_prios: Option<Vec<u8>>,
    /// Where the value was read (a path or a command line); when
    /// `enabled_prios` is `None`, why it is unknown.
    pub source: String,
}

impl PrioritySetting {
    /// An unknown setting, with the reason.
    pub fn unknown(reason: impl Into<String>) -> Self {
        Self {
            enabled_prios: None,
            source: reason.into(),
        }
    }
}

/// One RDMA device and port as configured on the host, plus the QoS a run
/// asked for on it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeviceConfig {
    /// Device name, e.g. `mlx5_0`, `rxe0`.
    pub name: String,
    /// Port number (1-based).
    pub port: u8,
    /// Kernel driver: the name of the `device/driver` link (e.g. "mlx5_core"),
    /// "rdma_rxe" for a SoftRoCE device (it has a `parent` attribute and no
    /// PCI device), else "unknown".
    pub driver: String,
    /// `node_type`, e.g. "1: CA".
    pub node_type: String,
    /// Firmware version (`fw_ver`).
    pub fw_ver: String,
    /// Node GUID (`node_guid`).
    pub node_guid: String,
    /// Board id (`board_id`), e.g. "MT_0000000222"; "unknown" where absent (rxe).
    pub board_id: String,
    /// HCA type (`hca_type`), e.g. "MT4125"; "unknown" where absent.
    pub hca_type: String,
    /// Port state (`ports/<p>/state`), e.g. "4: ACTIVE".
    pub port_state: String,
    /// Physical state (`ports/<p>/phys_state`), e.g. "5: LinkUp".
    pub phys_state: String,
    /// Link rate as the port reports it (`ports/<p>/rate`), e.g.
    /// "100 Gb/sec (4X EDR)".
    pub rate: String,
    /// The line rate `rate` states, Gb/s; `None` when it cannot be parsed.
    pub line_rate_gbps: Option<f64>,
    /// Link layer (`ports/<p>/link_layer`): "Ethernet" or "InfiniBand".
    pub link_layer: String,
    /// Active (path) MTU in bytes, as the caller queried it from verbs.
    pub active_mtu_bytes: Option<u32>,
    /// GID index the run used.
    pub gid_index: u8,
    /// GID type the run used, e.g. "RoCEv2".
    pub gid_type: String,
    /// The netdev under the port: given by the caller, else the GID's
    /// `gid_attrs/ndevs/<index>`, else rxe's `parent`.
    pub netdev: Option<String>,
    /// The netdev's MTU in bytes (`/sys/class/net/<nd>/mtu`).
    pub netdev_mtu_bytes: Option<u32>,
    /// The netdev's speed in Mb/s (`/sys/class/net/<nd>/speed`); `None` when
    /// unknown (the kernel reports -1 for virtual links).
    pub netdev_speed_mbps: Option<u64>,
    /// NUMA node of the NIC (`device/numa_node`); `None` when the kernel
    /// reports -1 or the device has no PCI parent.
    pub numa_node: Option<u32>,
    /// PCI address, e.g. "0000:3b:00.0"; `None` for software devices.
    pub pci_address: Option<String>,
    /// GRH traffic class the run set (DSCP << 2 | ECN).
    pub traffic_class: u8,
    /// DSCP implied by `traffic_class` (its upper six bits).
    pub dscp: u8,
    /// Priority flow control on the netdev.
    pub pfc: PrioritySetting,
    /// ECN notification point (receiver marks → CNPs), e.g. mlx5
    /// `ecn/roce_np/enable/<prio>`.
    pub ecn_np: PrioritySetting,
    /// ECN reaction point (sender slows on CNPs), e.g. mlx5
    /// `ecn/roce_rp/enable/<prio>`.
    pub ecn_rp: PrioritySetting,
    /// What could not be read about this device, and why; one line each.
    pub notes: Vec<String>,
}
