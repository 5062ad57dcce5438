//! The whole system configuration report: host facts, rdma-core, infab's
//! own version and one [`DeviceConfig`](crate::results::DeviceConfig) per
//! device and port a run used.

use crate::results::SystemConfig;

use super::device::collect_device;
use super::gpu::collect_gpus;
use super::host::read_host;
use super::rdma_core::rdma_core_version;
use super::root::HostRoot;

/// What the caller knows about a device and port it uses (from verbs and
/// its own flags); sysfs does not tell these.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceUse {
    /// RDMA device name, e.g. "mlx5_0".
    pub device: String,
    /// Port number (1-based).
    pub port: u8,
    /// GID index used.
    pub gid_index: u8,
    /// GID type used, e.g. "RoCEv2".
    pub gid_type: String,
    /// The GID's netdev when verbs told it; `None` to look it up in sysfs.
    pub netdev: Option<String>,
    /// GRH traffic class set on the QPs.
    pub traffic_class: u8,
    /// Active MTU in bytes from `ibv_query_port`, when queried.
    pub active_mtu_bytes: Option<u32>,
}

impl DeviceUse {
    /// What a run knows of a device it opened (the facts verbs recorded).
    pub fn from_facts(facts: &crate::results::DeviceFacts, traffic_class: u8) -> DeviceUse {
        DeviceUse {
            device: facts.name.clone(),
            port: facts.port,
            gid_index: facts.gid.index,
            gid_type: facts.gid.gid_type.clone(),
            netdev: facts.gid.netdev.clone(),
            traffic_class,
            active_mtu_bytes: Some(facts.active_mtu_bytes),
        }
    }
}

/// The system configuration report for the devices in `uses`; never fails.
///
/// Runs `dpkg-query`/`rpm` (for the rdma-core version) and `dcb` (for PFC)
/// when `root.run_commands`, each bounded by a 2 s timeout; call it once per
/// run, not per trial.
pub fn collect_system(root: &HostRoot, uses: &[DeviceUse]) -> SystemConfig {
    let mut notes = Vec::new();
    let host = read_host(root, &mut notes);
    let (rdma_core_version, rdma_core_source) = rdma_core_version(root, &mut notes);
    SystemConfig {
        kernel_release: host.kernel_release,
        kernel_version: host.kernel_version,
        os_name: host.os_name,
        hostname: host.hostname,
        cpu_model: host.cpu_model,
        cpu_logical_count: host.cpu_logical_count,
        numa_node_count: host.numa_node_count,
        huge_pages: host.huge_pages,
        rdma_core_version,
        rdma_core_source,
        infab_version: env!("CARGO_PKG_VERSION").to_string(),
        infab_git_commit: option_env!("INFAB_GIT_COMMIT").map(str::to_string),
        devices: uses.iter().map(|u| collect_device(root, u)).collect(),
        notes,
        gpu: Some(collect_gpus(
            root,
            &uses.iter().map(|u| u.device.clone()).collect::<Vec<_>>(),
        )),
    }
}
