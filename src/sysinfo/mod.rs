//! Reads what the host says about itself: the system configuration report
//! (kernel, OS, CPUs, huge pages, rdma-core, each RDMA device and port with
//! its netdev, PFC and ECN) and NIC counter snapshots taken around trials.
//!
//! Owns: reading /sys, /proc, /etc/os-release and a few commands (`ethtool`,
//! `dcb`, `dpkg-query`/`rpm`) with short timeouts. Does not own: the result
//! types (they live in `crate::report`), anything that opens a verbs device
//! (the caller passes what verbs told it in a [`DeviceUse`]).
//!
//! Nothing here fails: a file that is missing, unreadable or garbage becomes
//! "unknown" / `None` with a note saying why, never an error or a panic, so a
//! run never stops for want of a report detail. Every path is taken relative
//! to a [`HostRoot`], so tests point it at a fixture tree.

mod command;
mod counter_series;
mod counters;
mod dcb;
mod device;
mod ethtool;
mod gpu;
mod host;
mod kpi;
mod process;
mod rdma_core;
mod root;
mod system;

pub use counter_series::{CounterSampler, ETHTOOL_MIN_INTERVAL, MIN_COUNTER_INTERVAL};
pub use counters::CounterSnapshot;
pub use device::collect_device;
pub use gpu::{collect_gpus, pci_relation};
pub use kpi::{kpi_counter_keys, map_kpis};
pub use process::sample_process;
pub use root::HostRoot;
pub use system::{collect_system, DeviceUse};
