//! `infab::sysinfo` against fake /sys, /proc and /etc trees modelled on real
//! hosts: a SoftRoCE device (rxe0 on veth0: hw_counters only, no PCI
//! parent) and a ConnectX-6 Dx (mlx5_0 on ens1f0np0: IB port counters,
//! driver counters, PCI parent, mlx5 ECN knobs). No RDMA device is needed.
//!
//! Also validates what the readers produce against the `SystemConfig` and
//! `CounterDeltas` definitions of results-schema/, and checks that
//! docs/counters.md names every counter the KPI table uses.

use std::fs;
use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};

use infab::results::{CounterDeltas, SystemConfig};
use infab::sysinfo::{collect_system, kpi_counter_keys, CounterSnapshot, DeviceUse, HostRoot};
use serde_json::{json, Value};

// ---------------------------------------------------------------------------
// Fixture trees
// ---------------------------------------------------------------------------

fn write(path: &Path, text: &str) {
    fs::create_dir_all(path.parent().unwrap()).unwrap();
    fs::write(path, text).unwrap();
}

/// rxe's counter names (drivers/infiniband/sw/rxe/rxe_hw_counters.c).
const RXE_COUNTERS: &[&str] = &[
    "sent_pkts",
    "rcvd_pkts",
    "duplicate_request",
    "out_of_seq_request",
    "rcvd_rnr_err",
    "send_rnr_err",
    "rcvd_seq_err",
    "ack_deferred",
    "retry_exceeded_err",
    "retry_rnr_exceeded_err",
    "completer_retry_err",
    "send_err",
    "link_downed",
    "rdma_sends",
    "rdma_recvs",
];

/// A subset of mlx5's driver counters (drivers/infiniband/hw/mlx5/counters.c).
const MLX5_HW_COUNTERS: &[&str] = &[
    "rx_write_requests",
    "rx_read_requests",
    "out_of_buffer",
    "out_of_sequence",
    "duplicate_request",
    "rnr_nak_retry_err",
    "packet_seq_err",
    "implied_nak_seq_err",
    "local_ack_timeout_err",
    "req_cqe_error",
    "resp_cqe_error",
    "req_cqe_flush_error",
    "roce_adp_retrans",
    "rp_cnp_ignored",
    "rp_cnp_handled",
    "np_ecn_marked_roce_packets",
    "np_cnp_sent",
];

/// IB port counters mlx5 exposes under ports/<p>/counters.
const MLX5_PORT_COUNTERS: &[&str] = &[
    "port_rcv_errors",
    "symbol_error",
    "link_downed",
    "link_error_recovery",
    "port_xmit_discards",
    "port_xmit_data",
    "port_rcv_data",
];

/// A host with rxe0 (on veth0) and mlx5_0 (on ens1f0np0).
fn host_fixture(dir: &Path) -> HostRoot {
    let root = HostRoot::under(dir);
    // /proc and /etc
    write(&root.proc.join("sys/kernel/osrelease"), "6.1.0-18-amd64\n");
    write(
        &root.proc.join("sys/kernel/version"),
        "#1 SMP PREEMPT_DYNAMIC Debian 6.1.76-1 (2024-02-01)\n",
    );
    write(&root.proc.join("sys/kernel/hostname"), "prefill-0\n");
    write(
        &root.proc.join("cpuinfo"),
        "processor\t: 0\nvendor_id\t: GenuineIntel\nmodel name\t: Intel(R) Xeon(R) Gold 6338 CPU @ 2.00GHz\n\nprocessor\t: 1\nmodel name\t: Intel(R) Xeon(R) Gold 6338 CPU @ 2.00GHz\n",
    );
    write(
        &root.etc.join("os-release"),
        "PRETTY_NAME=\"Debian GNU/Linux 12 (bookworm)\"\nNAME=\"Debian GNU/Linux\"\nVERSION_ID=\"12\"\n",
    );
    write(&dir.join("usr/lib/libibverbs.so.1.14.50.0"), "");
    // /sys host facts; no 1 GiB pool.
    let sys = &root.sys;
    write(&sys.join("devices/system/cpu/online"), "0-63\n");
    write(&sys.join("devices/system/node/online"), "0-1\n");
    let hp = sys.join("kernel/mm/hugepages/hugepages-2048kB");
    write(&hp.join("nr_hugepages"), "1024\n");
    write(&hp.join("free_hugepages"), "1000\n");
    write(
        &sys.join("kernel/mm/transparent_hugepage/enabled"),
        "always [madvise] never\n",
    );

    // rxe0: no `device` link, a `parent`, hw_counters only.
    let rxe = sys.join("class/infiniband/rxe0");
    write(&rxe.join("node_type"), "1: CA\n");
    write(&rxe.join("fw_ver"), "0.0.0\n");
    write(&rxe.join("node_guid"), "5054:00ff:fe12:3456\n");
    write(&rxe.join("parent"), "veth0\n");
    let p = rxe.join("ports/1");
    write(&p.join("state"), "4: ACTIVE\n");
    write(&p.join("phys_state"), "5: LinkUp\n");
    write(&p.join("rate"), "100 Gb/sec (4X EDR)\n");
    write(&p.join("link_layer"), "Ethernet\n");
    write(&p.join("gid_attrs/ndevs/1"), "veth0\n");
    for name in RXE_COUNTERS {
        write(&p.join("hw_counters").join(name), "0\n");
    }
    write(&p.join("hw_counters/lifespan"), "10\n");
    write(&sys.join("class/net/veth0/mtu"), "1500\n");
    write(&sys.join("class/net/veth0/speed"), "-1\n");

    // mlx5_0: a PCI function with a driver, port and driver counters.
    let pci = sys.join("devices/pci0000:3a/0000:3a:00.0/0000:3b:00.0");
    write(&pci.join("numa_node"), "1\n");
    fs::create_dir_all(sys.join("bus/pci/drivers/mlx5_core")).unwrap();
    symlink(sys.join("bus/pci/drivers/mlx5_core"), pci.join("driver")).unwrap();
    let mlx = sys.join("class/infiniband/mlx5_0");
    fs::create_dir_all(&mlx).unwrap();
    symlink(&pci, mlx.join("device")).unwrap();
    write(&mlx.join("node_type"), "1: CA\n");
    write(&mlx.join("fw_ver"), "22.36.1010\n");
    write(&mlx.join("node_guid"), "b859:9f03:00d4:1234\n");
    write(&mlx.join("board_id"), "MT_0000000436\n");
    write(&mlx.join("hca_type"), "MT4125\n");
    let p = mlx.join("ports/1");
    write(&p.join("state"), "4: ACTIVE\n");
    write(&p.join("phys_state"), "5: LinkUp\n");
    write(&p.join("rate"), "100 Gb/sec (2X HDR)\n");
    write(&p.join("link_layer"), "Ethernet\n");
    write(&p.join("gid_attrs/ndevs/3"), "ens1f0np0\n");
    for name in MLX5_PORT_COUNTERS {
        write(&p.join("counters").join(name), "0\n");
    }
    for name in MLX5_HW_COUNTERS {
        write(&p.join("hw_counters").join(name), "0\n");
    }
    write(&p.join("hw_counters/lifespan"), "10\n");
    let nd = sys.join("class/net/ens1f0np0");
    write(&nd.join("mtu"), "4200\n");
    write(&nd.join("speed"), "100000\n");
    for prio in 0..8 {
        let on = if prio == 3 { "1\n" } else { "0\n" };
        write(&nd.join(format!("ecn/roce_np/enable/{prio}")), on);
        write(&nd.join(format!("ecn/roce_rp/enable/{prio}")), on);
    }
    root
}

fn rxe_use() -> DeviceUse {
    DeviceUse {
        device: "rxe0".into(),
        port: 1,
        gid_index: 1,
        gid_type: "RoCEv2".into(),
        netdev: None,
        traffic_class: 106,
        active_mtu_bytes: Some(1024),
    }
}

fn mlx5_use() -> DeviceUse {
    DeviceUse {
        device: "mlx5_0".into(),
        port: 1,
        gid_index: 3,
        gid_type: "RoCEv2".into(),
        netdev: Some("ens1f0np0".into()),
        traffic_class: 106,
        active_mtu_bytes: Some(4096),
    }
}

fn hw(root: &HostRoot, device: &str, rel: &str) -> PathBuf {
    root.sys
        .join("class/infiniband")
        .join(device)
        .join("ports/1")
        .join(rel)
}

fn set(root: &HostRoot, device: &str, rel: &str, value: &str) {
    fs::write(hw(root, device, rel), value).unwrap();
}

// ---------------------------------------------------------------------------
// System configuration
// ---------------------------------------------------------------------------

#[test]
fn system_config_from_fixture() {
    let dir = tempfile::tempdir().unwrap();
    let root = host_fixture(dir.path());
    let s = collect_system(&root, &[rxe_use(), mlx5_use()]);

    assert_eq!(s.kernel_release, "6.1.0-18-amd64");
    assert!(s.kernel_version.starts_with("#1 SMP"));
    assert_eq!(s.os_name, "Debian GNU/Linux 12 (bookworm)");
    assert_eq!(s.hostname, "prefill-0");
    assert_eq!(s.cpu_model, "Intel(R) Xeon(R) Gold 6338 CPU @ 2.00GHz");
    assert_eq!(s.cpu_logical_count, Some(64));
    assert_eq!(s.numa_node_count, Some(2));
    assert_eq!(s.huge_pages.pages_2mib_total, Some(1024));
    assert_eq!(s.huge_pages.pages_2mib_free, Some(1000));
    assert_eq!(s.huge_pages.pages_1gib_total, None);
    assert_eq!(s.huge_pages.transparent_mode, "madvise");
    assert_eq!(s.rdma_core_version, "50.0");
    assert_eq!(s.infab_version, env!("CARGO_PKG_VERSION"));
    assert!(
        s.notes.iter().any(|n| n.contains("hugepages-1048576kB")),
        "{:#?}",
        s.notes
    );

    let rxe = &s.devices[0];
    assert_eq!(rxe.driver, "rdma_rxe");
    assert_eq!(rxe.fw_ver, "0.0.0");
    assert_eq!(rxe.board_id, "unknown");
    assert_eq!(rxe.port_state, "4: ACTIVE");
    assert_eq!(rxe.line_rate_gbps, Some(100.0));
    assert_eq!(rxe.netdev.as_deref(), Some("veth0"));
    assert_eq!(rxe.netdev_mtu_bytes, Some(1500));
    assert_eq!(rxe.netdev_speed_mbps, None, "speed -1 is unknown");
    assert_eq!(rxe.numa_node, None);
    assert_eq!(rxe.pci_address, None);
    assert_eq!(rxe.active_mtu_bytes, Some(1024));
    assert_eq!((rxe.traffic_class, rxe.dscp), (106, 26));
    assert_eq!(rxe.pfc.enabled_prios, None);
    assert_eq!(rxe.ecn_np.enabled_prios, None);
    assert!(
        rxe.ecn_np.source.contains("absent"),
        "{}",
        rxe.ecn_np.source
    );
    assert!(rxe.notes.iter().any(|n| n.contains("board_id")));

    let mlx = &s.devices[1];
    assert_eq!(mlx.driver, "mlx5_core");
    assert_eq!(mlx.fw_ver, "22.36.1010");
    assert_eq!(mlx.board_id, "MT_0000000436");
    assert_eq!(mlx.hca_type, "MT4125");
    assert_eq!(mlx.rate, "100 Gb/sec (2X HDR)");
    assert_eq!(mlx.line_rate_gbps, Some(100.0));
    assert_eq!(mlx.link_layer, "Ethernet");
    assert_eq!(mlx.netdev.as_deref(), Some("ens1f0np0"));
    assert_eq!(mlx.netdev_mtu_bytes, Some(4200));
    assert_eq!(mlx.netdev_speed_mbps, Some(100_000));
    assert_eq!(mlx.numa_node, Some(1));
    assert_eq!(mlx.pci_address.as_deref(), Some("0000:3b:00.0"));
    assert_eq!(mlx.ecn_np.enabled_prios, Some(vec![3]));
    assert_eq!(mlx.ecn_rp.enabled_prios, Some(vec![3]));
    assert_eq!(mlx.pfc.enabled_prios, None, "dcb is not run on fixtures");
    assert!(mlx.notes.is_empty(), "{:#?}", mlx.notes);
}

#[test]
fn netdev_comes_from_the_gid_table_when_not_given() {
    let dir = tempfile::tempdir().unwrap();
    let root = host_fixture(dir.path());
    let mut used = mlx5_use();
    used.netdev = None;
    let s = collect_system(&root, &[used]);
    assert_eq!(s.devices[0].netdev.as_deref(), Some("ens1f0np0"));
}

#[test]
fn empty_host_is_all_unknown_with_reasons() {
    let dir = tempfile::tempdir().unwrap();
    let root = HostRoot::under(dir.path());
    let s = collect_system(&root, &[mlx5_use()]);
    for text in [
        &s.kernel_release,
        &s.kernel_version,
        &s.os_name,
        &s.hostname,
        &s.cpu_model,
        &s.huge_pages.transparent_mode,
        &s.rdma_core_version,
    ] {
        assert_eq!(text, "unknown");
    }
    assert_eq!(s.cpu_logical_count, None);
    assert_eq!(s.numa_node_count, None);
    assert_eq!(s.huge_pages.pages_2mib_total, None);
    assert!(s.notes.len() >= 10, "{:#?}", s.notes);
    let d = &s.devices[0];
    assert_eq!(d.driver, "unknown");
    assert_eq!(d.fw_ver, "unknown");
    assert_eq!(d.line_rate_gbps, None);
    assert_eq!(
        d.netdev.as_deref(),
        Some("ens1f0np0"),
        "the caller's netdev is kept"
    );
    assert_eq!(d.netdev_mtu_bytes, None);
    assert_eq!(d.numa_node, None);
    assert!(d.notes.iter().any(|n| n.contains("no such RDMA device")));
}

#[test]
fn unreadable_and_garbage_files_are_tolerated() {
    let dir = tempfile::tempdir().unwrap();
    let root = host_fixture(dir.path());
    let mlx = root.sys.join("class/infiniband/mlx5_0");
    // A folder where a file should be cannot be read (even as root).
    fs::remove_file(mlx.join("fw_ver")).unwrap();
    fs::create_dir(mlx.join("fw_ver")).unwrap();
    fs::write(root.sys.join("class/net/ens1f0np0/mtu"), "lots\n").unwrap();
    fs::write(mlx.join("ports/1/rate"), "fast\n").unwrap();
    fs::write(root.sys.join("devices/system/cpu/online"), "0-x\n").unwrap();
    fs::write(
        root.sys.join("kernel/mm/transparent_hugepage/enabled"),
        "always madvise never\n",
    )
    .unwrap();
    let s = collect_system(&root, &[mlx5_use()]);
    assert_eq!(s.cpu_logical_count, None);
    assert_eq!(s.huge_pages.transparent_mode, "unknown");
    let d = &s.devices[0];
    assert_eq!(d.fw_ver, "unknown");
    assert_eq!(d.netdev_mtu_bytes, None);
    assert_eq!(d.rate, "fast");
    assert_eq!(d.line_rate_gbps, None);
    assert!(
        d.notes.iter().any(|n| n.contains("unreadable")),
        "{:#?}",
        d.notes
    );
    assert!(
        d.notes.iter().any(|n| n.contains("not a number")),
        "{:#?}",
        d.notes
    );
}

#[test]
fn live_host_does_not_panic() {
    let s = collect_system(&HostRoot::live(), &[]);
    eprintln!(
        "live host: kernel {} / {} / {} CPUs / rdma-core {} ({})",
        s.kernel_release,
        s.os_name,
        s.cpu_logical_count.map_or("?".into(), |n| n.to_string()),
        s.rdma_core_version,
        s.rdma_core_source
    );
    for note in &s.notes {
        eprintln!("  note: {note}");
    }
    // And a device that does not exist, with commands on.
    let s = collect_system(&HostRoot::live(), &[rxe_use()]);
    assert_eq!(s.devices.len(), 1);
    let snap = CounterSnapshot::take(&HostRoot::live(), "rxe0", 1, Some("lo"));
    let d = snap.delta(&CounterSnapshot::take(
        &HostRoot::live(),
        "rxe0",
        1,
        Some("lo"),
    ));
    assert!(!d.unavailable.is_empty());
}

// ---------------------------------------------------------------------------
// Counters
// ---------------------------------------------------------------------------

#[test]
fn rxe_deltas_and_kpis() {
    let dir = tempfile::tempdir().unwrap();
    let root = host_fixture(dir.path());
    set(&root, "rxe0", "hw_counters/sent_pkts", "1000\n");
    let before = CounterSnapshot::take(&root, "rxe0", 1, None);
    assert_eq!(
        before.values().len(),
        RXE_COUNTERS.len(),
        "lifespan is not a counter"
    );

    set(&root, "rxe0", "hw_counters/sent_pkts", "5000\n");
    set(&root, "rxe0", "hw_counters/out_of_seq_request", "3\n");
    set(&root, "rxe0", "hw_counters/rcvd_seq_err", "2\n");
    set(&root, "rxe0", "hw_counters/completer_retry_err", "4\n");
    set(&root, "rxe0", "hw_counters/retry_exceeded_err", "1\n");
    set(&root, "rxe0", "hw_counters/send_err", "6\n");
    let after = CounterSnapshot::take(&root, "rxe0", 1, None);
    let d = before.delta(&after);

    assert_eq!(d.device, "rxe0");
    assert_eq!(d.raw["hw_counters/sent_pkts"], 4000);
    assert_eq!(d.raw["hw_counters/rdma_sends"], 0);
    assert_eq!(d.raw.len(), RXE_COUNTERS.len());
    let k = &d.kpis;
    assert_eq!(k.out_of_sequence, Some(3));
    assert_eq!(k.packet_seq_errors, Some(2));
    assert_eq!(k.retransmissions, Some(4));
    assert_eq!(k.qp_errors, Some(1));
    assert_eq!(k.port_errors, Some(6), "send_err + link_downed");
    // rxe has no ECN, CNP or PFC counters: unknown, not zero.
    assert_eq!(k.ecn_marked_packets, None);
    assert_eq!(k.cnp_sent, None);
    assert_eq!(k.cnp_handled, None);
    assert_eq!(k.pfc_rx_pause, None);
    assert_eq!(k.pfc_tx_pause, None);
    // rxe has no IB port counters folder; ethtool was skipped.
    assert!(
        d.unavailable
            .iter()
            .any(|u| u.starts_with("counters:") && u.contains("absent")),
        "{:#?}",
        d.unavailable
    );
    assert!(d.unavailable.iter().any(|u| u.contains("ethtool: skipped")));
    assert_eq!(
        d.unavailable.len(),
        2,
        "before and after say the same: listed once\n{:#?}",
        d.unavailable
    );
}

#[test]
fn mlx5_deltas_and_kpis() {
    let dir = tempfile::tempdir().unwrap();
    let root = host_fixture(dir.path());
    set(
        &root,
        "mlx5_0",
        "hw_counters/np_ecn_marked_roce_packets",
        "100\n",
    );
    let before = CounterSnapshot::take(&root, "mlx5_0", 1, Some("ens1f0np0"));
    set(
        &root,
        "mlx5_0",
        "hw_counters/np_ecn_marked_roce_packets",
        "1100\n",
    );
    set(&root, "mlx5_0", "hw_counters/np_cnp_sent", "250\n");
    set(&root, "mlx5_0", "hw_counters/rp_cnp_handled", "240\n");
    set(&root, "mlx5_0", "hw_counters/out_of_sequence", "7\n");
    set(&root, "mlx5_0", "hw_counters/packet_seq_err", "5\n");
    set(&root, "mlx5_0", "hw_counters/local_ack_timeout_err", "2\n");
    set(&root, "mlx5_0", "hw_counters/roce_adp_retrans", "1\n");
    set(&root, "mlx5_0", "counters/port_rcv_errors", "3\n");
    set(&root, "mlx5_0", "counters/port_xmit_data", "123456789\n");
    let after = CounterSnapshot::take(&root, "mlx5_0", 1, Some("ens1f0np0"));
    let d = before.delta(&after);

    assert_eq!(d.netdev.as_deref(), Some("ens1f0np0"));
    assert_eq!(
        d.raw.len(),
        MLX5_HW_COUNTERS.len() + MLX5_PORT_COUNTERS.len()
    );
    assert_eq!(d.raw["counters/port_xmit_data"], 123_456_789);
    let k = &d.kpis;
    assert_eq!(k.ecn_marked_packets, Some(1000));
    assert_eq!(k.cnp_sent, Some(250));
    assert_eq!(k.cnp_handled, Some(240));
    assert_eq!(k.out_of_sequence, Some(7));
    assert_eq!(k.packet_seq_errors, Some(5));
    assert_eq!(k.retransmissions, Some(3));
    assert_eq!(k.port_errors, Some(3));
    assert_eq!(k.qp_errors, Some(0), "counters exist and did not move: 0");
    assert_eq!(k.pfc_rx_pause, None, "ethtool not run on fixtures");
    assert!(d.unavailable.iter().any(|u| u.contains("commands off")));
}

#[test]
fn counters_going_backwards_are_not_guessed() {
    let dir = tempfile::tempdir().unwrap();
    let root = host_fixture(dir.path());
    set(
        &root,
        "mlx5_0",
        "hw_counters/rp_cnp_handled",
        "4294967290\n",
    );
    set(&root, "mlx5_0", "hw_counters/np_cnp_sent", "10\n");
    let before = CounterSnapshot::take(&root, "mlx5_0", 1, None);
    // A 32-bit wrap (or a reset: they look the same).
    set(&root, "mlx5_0", "hw_counters/rp_cnp_handled", "5\n");
    set(&root, "mlx5_0", "hw_counters/np_cnp_sent", "15\n");
    let d = before.delta(&CounterSnapshot::take(&root, "mlx5_0", 1, None));
    assert!(!d.raw.contains_key("hw_counters/rp_cnp_handled"));
    assert_eq!(d.kpis.cnp_handled, None);
    assert_eq!(d.kpis.cnp_sent, Some(5));
    assert!(
        d.unavailable
            .iter()
            .any(|u| u.contains("rp_cnp_handled") && u.contains("went backwards")),
        "{:#?}",
        d.unavailable
    );
}

#[test]
fn garbage_and_vanishing_counters_are_listed() {
    let dir = tempfile::tempdir().unwrap();
    let root = host_fixture(dir.path());
    set(&root, "mlx5_0", "counters/symbol_error", "N/A\n");
    let before = CounterSnapshot::take(&root, "mlx5_0", 1, None);
    assert!(before
        .unavailable()
        .iter()
        .any(|u| u.starts_with("counters/symbol_error") && u.contains("not a number")));
    // np_cnp_sent disappears, a new counter appears.
    fs::remove_file(hw(&root, "mlx5_0", "hw_counters/np_cnp_sent")).unwrap();
    set(&root, "mlx5_0", "hw_counters/roce_slow_restart", "1\n");
    let d = before.delta(&CounterSnapshot::take(&root, "mlx5_0", 1, None));
    assert_eq!(d.kpis.cnp_sent, None);
    assert!(!d.raw.contains_key("hw_counters/roce_slow_restart"));
    assert!(d
        .unavailable
        .iter()
        .any(|u| u.contains("np_cnp_sent") && u.contains("not after")));
    assert!(d
        .unavailable
        .iter()
        .any(|u| u.contains("roce_slow_restart") && u.contains("not before")));
    // port_rcv_errors and the others still count: symbol_error was never read.
    assert_eq!(d.kpis.port_errors, Some(0));
}

#[test]
fn missing_device_gives_empty_deltas_and_reasons() {
    let dir = tempfile::tempdir().unwrap();
    let root = HostRoot::under(dir.path());
    let before = CounterSnapshot::take(&root, "mlx5_9", 2, None);
    let d = before.delta(&CounterSnapshot::take(&root, "mlx5_9", 2, None));
    assert!(d.raw.is_empty());
    assert_eq!(d.kpis, Default::default());
    assert!(d.unavailable.iter().any(|u| u.starts_with("counters:")));
    assert!(d.unavailable.iter().any(|u| u.starts_with("hw_counters:")));
}

#[test]
fn snapshots_of_different_ports_do_not_subtract() {
    let dir = tempfile::tempdir().unwrap();
    let root = host_fixture(dir.path());
    let a = CounterSnapshot::take(&root, "mlx5_0", 1, None);
    let b = CounterSnapshot::take(&root, "rxe0", 1, None);
    let d = a.delta(&b);
    assert!(d.raw.is_empty());
    assert!(d.unavailable.iter().any(|u| u.contains("different ports")));
}

// ---------------------------------------------------------------------------
// Schema
// ---------------------------------------------------------------------------

/// A validator for one `$defs` entry of the results schema.
fn def_validator(def: &str) -> jsonschema::Validator {
    let path =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("results-schema/infab-results.schema.json");
    let full: Value = serde_json::from_str(&fs::read_to_string(path).unwrap()).unwrap();
    let schema = json!({
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$ref": format!("#/$defs/{def}"),
        "$defs": full["$defs"].clone(),
    });
    jsonschema::draft202012::options()
        .should_validate_formats(true)
        .build(&schema)
        .unwrap()
}

fn errors(v: &jsonschema::Validator, instance: &Value) -> Vec<String> {
    v.iter_errors(instance)
        .map(|e| format!("{}: {e}", e.instance_path))
        .collect()
}

#[test]
fn system_config_validates() {
    let v = def_validator("SystemConfig");
    let dir = tempfile::tempdir().unwrap();
    let root = host_fixture(dir.path());
    for s in [
        collect_system(&root, &[rxe_use(), mlx5_use()]),
        collect_system(&HostRoot::under(&dir.path().join("empty")), &[mlx5_use()]),
        collect_system(&HostRoot::live(), &[rxe_use()]),
    ] {
        let value = serde_json::to_value(&s).unwrap();
        let errs = errors(&v, &value);
        assert!(errs.is_empty(), "{}", errs.join("\n"));
        let back: SystemConfig = serde_json::from_value(value).unwrap();
        assert_eq!(back, s);
    }
}

#[test]
fn counter_deltas_validate() {
    let v = def_validator("CounterDeltas");
    let dir = tempfile::tempdir().unwrap();
    let root = host_fixture(dir.path());
    for device in ["rxe0", "mlx5_0"] {
        let before = CounterSnapshot::take(&root, device, 1, None);
        set(&root, device, "hw_counters/out_of_sequence", "9\n");
        let d = before.delta(&CounterSnapshot::take(&root, device, 1, None));
        let value = serde_json::to_value(&d).unwrap();
        let errs = errors(&v, &value);
        assert!(errs.is_empty(), "{device}: {}", errs.join("\n"));
        let back: CounterDeltas = serde_json::from_value(value).unwrap();
        assert_eq!(back, d);
    }
}

#[test]
fn schema_rejects_drifted_objects() {
    let dir = tempfile::tempdir().unwrap();
    let root = host_fixture(dir.path());
    let s = serde_json::to_value(collect_system(&root, &[mlx5_use()])).unwrap();
    let v = def_validator("SystemConfig");
    let mut bad = s.clone();
    bad["devices"][0]["pfc"]["enabled_prios"] = json!([9]);
    assert!(!errors(&v, &bad).is_empty(), "priority 9 accepted");
    let mut bad = s.clone();
    bad.as_object_mut().unwrap().remove("notes");
    assert!(!errors(&v, &bad).is_empty(), "missing notes accepted");
    let mut bad = s;
    bad["huge_pages"]["transparent_mode"] = json!("sometimes");
    assert!(!errors(&v, &bad).is_empty(), "bad THP mode accepted");

    let before = CounterSnapshot::take(&root, "mlx5_0", 1, None);
    let d = serde_json::to_value(before.delta(&before)).unwrap();
    let v = def_validator("CounterDeltas");
    let mut bad = d.clone();
    bad["raw"]["np_cnp_sent"] = json!(1);
    assert!(!errors(&v, &bad).is_empty(), "unprefixed key accepted");
    let mut bad = d;
    bad["kpis"]["cnp_sent"] = json!(-1);
    assert!(!errors(&v, &bad).is_empty(), "negative KPI accepted");
}

// ---------------------------------------------------------------------------
// Docs
// ---------------------------------------------------------------------------

#[test]
fn docs_counters_md_names_every_mapped_counter() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/counters.md");
    let doc = fs::read_to_string(&path).unwrap();
    let mut missing = Vec::new();
    for (kpi, _, key) in kpi_counter_keys() {
        let name = key.split_once('/').unwrap().1;
        // Per-priority names are documented once with N for the digit.
        let generic: String = name
            .chars()
            .map(|c| if c.is_ascii_digit() { 'N' } else { c })
            .collect();
        if !doc.contains(kpi) || !(doc.contains(name) || doc.contains(&generic)) {
            missing.push(format!("{kpi}: {key}"));
        }
    }
    assert!(
        missing.is_empty(),
        "docs/counters.md does not name:\n  {}",
        missing.join("\n  ")
    );
}
