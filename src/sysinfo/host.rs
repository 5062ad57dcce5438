//! Host facts: kernel, OS, host name, CPUs, NUMA nodes and huge pages, read
//! from /proc, /sys and /etc/os-release. Not the RDMA devices (device.rs)
//! nor rdma-core (rdma_core.rs).

use crate::results::{HugePages, UNKNOWN};

use super::root::{count_id_list, number_or_none, read_trimmed, text_or_unknown, HostRoot};

/// Kernel, OS and CPU facts of the host.
pub(crate) struct HostFacts {
    pub kernel_release: String,
    pub kernel_version: String,
    pub os_name: String,
    pub hostname: String,
    pub cpu_model: String,
    pub cpu_logical_count: Option<u32>,
    pub numa_node_count: Option<u32>,
    pub huge_pages: HugePages,
}

/// Reads every host fact; what is missing lands in `notes`.
pub(crate) fn read_host(root: &HostRoot, notes: &mut Vec<String>) -> HostFacts {
    let kernel = root.proc.join("sys/kernel");
    HostFacts {
        kernel_release: text_or_unknown(&kernel.join("osrelease"), notes),
        kernel_version: text_or_unknown(&kernel.join("version"), notes),
        os_name: os_name(root, notes),
        hostname: text_or_unknown(&kernel.join("hostname"), notes),
        cpu_model: cpu_model(root, notes),
        cpu_logical_count: id_list_count(root, "devices/system/cpu/online", notes),
        numa_node_count: id_list_count(root, "devices/system/node/online", notes),
        huge_pages: huge_pages(root, notes),
    }
}

/// PRETTY_NAME from os-release (falling back to NAME VERSION_ID).
fn os_name(root: &HostRoot, notes: &mut Vec<String>) -> String {
    let path = root.etc.join("os-release");
    let text = match read_trimmed(&path) {
        Ok(t) => t,
        Err(why) => {
            notes.push(why);
            return UNKNOWN.to_string();
        }
    };
    let field = |key: &str| {
        text.lines().find_map(|l| {
            let value = l.strip_prefix(key)?.strip_prefix('=')?;
            Some(value.trim().trim_matches('"').to_string())
        })
    };
    if let Some(pretty) = field("PRETTY_NAME").filter(|v| !v.is_empty()) {
        return pretty;
    }
    match (field("NAME"), field("VERSION_ID")) {
        (Some(n), Some(v)) => format!("{n} {v}"),
        (Some(n), None) => n,
        _ => {
            notes.push(format!("{}: no PRETTY_NAME or NAME", path.display()));
            UNKNOWN.to_string()
        }
    }
}

/// The first "model name" of /proc/cpuinfo (x86), else "Model" or
/// "Processor" (some arm64 kernels), else "unknown".
fn cpu_model(root: &HostRoot, notes: &mut Vec<String>) -> String {
    let path = root.proc.join("cpuinfo");
    let text = match read_trimmed(&path) {
        Ok(t) => t,
        Err(why) => {
            notes.push(why);
            return UNKNOWN.to_string();
        }
    };
    for key in ["model name", "Model", "Processor"] {
        let found = text.lines().find_map(|l| {
            let (k, v) = l.split_once(':')?;
            (k.trim() == key && !v.trim().is_empty()).then(|| v.trim().to_string())
        });
        if let Some(model) = found {
            return model;
        }
    }
    notes.push(format!("{}: no \"model name\" line", path.display()));
    UNKNOWN.to_string()
}

/// How many ids a sysfs list file ("0-3,8") names.
fn id_list_count(root: &HostRoot, rel: &str, notes: &mut Vec<String>) -> Option<u32> {
    let path = root.sys.join(rel);
    let text = read_trimmed(&path).map_err(|why| notes.push(why)).ok()?;
    let n = count_id_list(&text);
    if n.is_none() {
        notes.push(format!("{}: not an id list ({text:?})", path.display()));
    }
    n
}

/// The 2 MiB and 1 GiB pools and the THP mode.
fn huge_pages(root: &HostRoot, notes: &mut Vec<String>) -> HugePages {
    let pools = root.sys.join("kernel/mm/hugepages");
    let two = pools.join("hugepages-2048kB");
    let one = pools.join("hugepages-1048576kB");
    HugePages {
        pages_2mib_total: number_or_none(&two.join("nr_hugepages"), notes),
        pages_2mib_free: number_or_none(&two.join("free_hugepages"), notes),
        pages_1gib_total: number_or_none(&one.join("nr_hugepages"), notes),
        pages_1gib_free: number_or_none(&one.join("free_hugepages"), notes),
        transparent_mode: thp_mode(root, notes),
    }
}

/// The bracketed word of "always [madvise] never".
fn thp_mode(root: &HostRoot, notes: &mut Vec<String>) -> String {
    let path = root.sys.join("kernel/mm/transparent_hugepage/enabled");
    let text = match read_trimmed(&path) {
        Ok(t) => t,
        Err(why) => {
            notes.push(why);
            return UNKNOWN.to_string();
        }
    };
    let chosen = text
        .split_whitespace()
        .find_map(|w| w.strip_prefix('[')?.strip_suffix(']'));
    match chosen {
        Some(mode) => mode.to_string(),
        None => {
            notes.push(format!("{}: no [mode] in {text:?}", path.display()));
            UNKNOWN.to_string()
        }
    }
}
