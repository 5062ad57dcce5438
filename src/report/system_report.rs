//! The draft's §14 "System Configuration" tables of a rendered report: the
//! host and RDMA software of every node, each device and port with its QoS,
//! and the DUT and nodes of a multi-rank run (from the topology file). One
//! column per node (or per node and device), so nodes that differ show it.
//! It only formats the [`SystemConfig`] the results carry; reading /sys is
//! crate::sysinfo's job, and the workload table is workload.rs's.

use super::blocks::{Block, Table};
use crate::results::{
    ClusterReport, DeviceConfig, PrioritySetting, RunReport, SystemConfig, UNKNOWN,
};

/// A number, or `unknown` when it could not be read (never 0).
fn known<T: ToString>(value: Option<T>) -> String {
    value.map_or_else(|| UNKNOWN.into(), |v| v.to_string())
}

/// A text field; an empty one reads `unknown` too.
fn text(value: &str) -> String {
    if value.is_empty() {
        UNKNOWN.into()
    } else {
        value.into()
    }
}

/// A PFC or ECN setting: `on prio 3`, `off`, or `unknown (why)`.
pub(crate) fn priorities(setting: &PrioritySetting) -> String {
    match &setting.enabled_prios {
        None => format!("{UNKNOWN} ({})", setting.source),
        Some(prios) if prios.is_empty() => format!("off ({})", setting.source),
        Some(prios) => {
            let list: Vec<String> = prios.iter().map(u8::to_string).collect();
            format!("on prio {} ({})", list.join(","), setting.source)
        }
    }
}

/// The systems of the file: (column heading, config), one per node.
fn systems(report: &RunReport) -> Vec<(String, &SystemConfig)> {
    match &report.cluster {
        Some(cluster) if !cluster.nodes.is_empty() => cluster
            .nodes
            .iter()
            .map(|n| (format!("node {} ({})", n.node, n.name), &n.system))
            .collect(),
        _ => report
            .system
            .iter()
            .map(|s| ("this host".to_string(), s))
            .collect(),
    }
}

/// A row of a [`by_column`] table: the field's name and how to read it.
type Field<T> = (&'static str, fn(&T) -> String);

/// A table whose first column names a field and the others hold one value
/// per `heads`.
fn by_column<T>(
    title: &str,
    heads: &[(String, &T)],
    fields: &[Field<T>],
    notes: Vec<String>,
) -> Table {
    let mut columns = vec!["field".to_string()];
    columns.extend(heads.iter().map(|(h, _)| h.clone()));
    Table {
        title: title.into(),
        columns,
        rows: fields
            .iter()
            .map(|(name, get)| {
                let mut row = vec![name.to_string()];
                row.extend(heads.iter().map(|(_, t)| get(t)));
                row
            })
            .collect(),
        notes,
    }
}

fn host_table(systems: &[(String, &SystemConfig)]) -> Table {
    let hp = |s: &SystemConfig| {
        let h = &s.huge_pages;
        format!(
            "2 MiB: {} total, {} free; 1 GiB: {} total, {} free; THP {}",
            known(h.pages_2mib_total),
            known(h.pages_2mib_free),
            known(h.pages_1gib_total),
            known(h.pages_1gib_free),
            text(&h.transparent_mode)
        )
    };
    let fields: [Field<SystemConfig>; 10] = [
        ("host name", |s| text(&s.hostname)),
        ("OS", |s| text(&s.os_name)),
        ("kernel", |s| {
            format!("{} {}", text(&s.kernel_release), s.kernel_version)
        }),
        ("CPU model", |s| text(&s.cpu_model)),
        ("logical CPUs", |s| known(s.cpu_logical_count)),
        ("NUMA nodes", |s| known(s.numa_node_count)),
        ("huge pages", hp),
        ("rdma-core", |s| {
            format!("{} ({})", text(&s.rdma_core_version), s.rdma_core_source)
        }),
        ("infab", |s| {
            format!(
                "{} (commit {})",
                text(&s.infab_version),
                s.infab_git_commit.as_deref().unwrap_or(UNKNOWN)
            )
        }),
        ("RDMA devices used", |s| {
            let names: Vec<String> = s
                .devices
                .iter()
                .map(|d| format!("{}:{}", d.name, d.port))
                .collect();
            if names.is_empty() {
                "none recorded".into()
            } else {
                names.join(", ")
            }
        }),
    ];
    let mut notes = vec!["\"unknown\": the value could not be read on that host (the notes below say why); never a guess.".to_string()];
    for (head, system) in systems {
        if !system.notes.is_empty() {
            notes.push(format!("{head}: {}.", system.notes.join("; ")));
        }
    }
    by_column("System configuration (draft §14)", systems, &fields, notes)
}

fn device_table(systems: &[(String, &SystemConfig)]) -> Option<Table> {
    let devices: Vec<(String, &DeviceConfig)> = systems
        .iter()
        .flat_map(|(head, s)| {
            s.devices
                .iter()
                .map(move |d| (format!("{head} {}:{}", d.name, d.port), d))
        })
        .collect();
    if devices.is_empty() {
        return None;
    }
    let fields: [Field<DeviceConfig>; 19] = [
        ("driver", |d| text(&d.driver)),
        ("node type", |d| text(&d.node_type)),
        ("firmware", |d| text(&d.fw_ver)),
        ("board id / HCA type", |d| {
            format!("{} / {}", text(&d.board_id), text(&d.hca_type))
        }),
        ("node GUID", |d| text(&d.node_guid)),
        ("port state / physical", |d| {
            format!("{} / {}", text(&d.port_state), text(&d.phys_state))
        }),
        ("link rate", |d| text(&d.rate)),
        ("line rate Gb/s", |d| known(d.line_rate_gbps)),
        ("link layer", |d| text(&d.link_layer)),
        ("active MTU bytes", |d| known(d.active_mtu_bytes)),
        ("GID index / type", |d| {
            format!("{} / {}", d.gid_index, text(&d.gid_type))
        }),
        ("netdev", |d| {
            d.netdev.clone().unwrap_or_else(|| UNKNOWN.into())
        }),
        ("netdev MTU bytes / speed Mb/s", |d| {
            format!(
                "{} / {}",
                known(d.netdev_mtu_bytes),
                known(d.netdev_speed_mbps)
            )
        }),
        ("NIC NUMA node", |d| known(d.numa_node)),
        ("PCI address", |d| {
            d.pci_address
                .clone()
                .unwrap_or_else(|| "none (software device)".into())
        }),
        ("traffic class / DSCP", |d| {
            format!("{} / {}", d.traffic_class, d.dscp)
        }),
        ("PFC", |d| priorities(&d.pfc)),
        ("ECN notification point", |d| priorities(&d.ecn_np)),
        ("ECN reaction point", |d| priorities(&d.ecn_rp)),
    ];
    let mut notes = Vec::new();
    for (head, device) in &devices {
        if !device.notes.is_empty() {
            notes.push(format!("{head}: {}.", device.notes.join("; ")));
        }
    }
    Some(by_column(
        "Devices and ports (draft §14: NIC type, firmware, link speed, QoS)",
        &devices,
        &fields,
        notes,
    ))
}

fn or_not_given(value: &str) -> String {
    if value.trim().is_empty() {
        "not given".into()
    } else {
        value.into()
    }
}

fn dut_table(cluster: &ClusterReport) -> Table {
    let dut = &cluster.dut;
    Table {
        title: "Device under test (from the topology file)".into(),
        columns: vec!["field".into(), "value".into()],
        rows: [
            ("description", or_not_given(&dut.description)),
            ("fabric topology", or_not_given(&dut.topology)),
            ("link speeds", or_not_given(&dut.link_speed)),
            ("switch ASIC and software", or_not_given(&dut.switch)),
            ("notes", or_not_given(&dut.notes)),
            (
                "topology file",
                cluster
                    .topology_file
                    .clone()
                    .unwrap_or_else(|| "none (flags)".into()),
            ),
            ("launcher", cluster.launcher.clone()),
            ("rendezvous", cluster.rendezvous.clone()),
        ]
        .into_iter()
        .map(|(k, v)| vec![k.to_string(), v])
        .collect(),
        notes: vec!["\"not given\": the topology file leaves the field empty; the draft requires the switch ASIC and software version, fabric topology and link speeds.".into()],
    }
}

fn nodes_table(cluster: &ClusterReport) -> Table {
    let rows = cluster
        .nodes
        .iter()
        .map(|n| {
            let roles: Vec<String> = n
                .devices
                .iter()
                .map(|d| {
                    format!(
                        "{} × {} on {}:{}",
                        d.ranks, d.role, d.device.name, d.device.port
                    )
                })
                .collect();
            let ranks: Vec<String> = cluster
                .ranks
                .iter()
                .filter(|r| r.node == n.node)
                .map(|r| r.rank.to_string())
                .collect();
            vec![
                n.node.to_string(),
                n.name.clone(),
                text(&n.hostname),
                roles.join("; "),
                ranks.join(", "),
                format!(
                    "{} ± {} ({})",
                    n.clock_offset_ns, n.clock_error_bound_ns, n.clock_method
                ),
            ]
        })
        .collect();
    Table {
        title: "Nodes and ranks".into(),
        columns: [
            "node",
            "name",
            "host name",
            "ranks per role and device",
            "global ranks",
            "clock offset ns (to node 0)",
        ]
        .map(String::from)
        .to_vec(),
        rows,
        notes: Vec::new(),
    }
}

/// The §14 system configuration blocks of one file.
/// One row per GPU of every node: model, memory, BAR1, NUMA node, dma-buf
/// and GPUDirect RDMA support, and the RDMA devices near it; `None` when no
/// node recorded GPUs (a file from before GPUs were recorded).
fn gpu_table(systems: &[(String, &SystemConfig)]) -> Option<Table> {
    let with_gpu: Vec<_> = systems
        .iter()
        .filter_map(|(head, s)| s.gpu.as_ref().map(|g| (head, g)))
        .collect();
    if with_gpu.is_empty() {
        return None;
    }
    let gib = |b: Option<u64>| {
        b.map_or_else(
            || UNKNOWN.into(),
            |b| format!("{:.1} GiB", b as f64 / (1u64 << 30) as f64),
        )
    };
    let flag = |f: Option<bool>| {
        f.map_or_else(
            || UNKNOWN.into(),
            |f| if f { "yes" } else { "no" }.to_string(),
        )
    };
    let mut rows = Vec::new();
    let mut notes = Vec::new();
    for (head, g) in with_gpu {
        if g.gpus.is_empty() {
            let why = g.notes.first().cloned().unwrap_or_default();
            notes.push(format!("{head}: no GPU ({why})"));
        }
        for gpu in &g.gpus {
            let near: Vec<String> = g
                .affinity
                .iter()
                .filter(|a| a.gpu == gpu.index)
                .map(|a| match &a.common_bridge {
                    Some(bridge) => format!("{} {} ({bridge})", a.device, a.relation),
                    None => format!("{} {}", a.device, a.relation),
                })
                .collect();
            rows.push(vec![
                head.to_string(),
                format!("cuda:{} {}", gpu.index, gpu.name),
                format!(
                    "driver {}, CUDA {} ({})",
                    g.driver_version, g.cuda_version, g.source
                ),
                gpu.pci_address.clone().unwrap_or_else(|| UNKNOWN.into()),
                gib(gpu.memory_bytes),
                gib(gpu.bar1_bytes),
                known(gpu.numa_node),
                flag(gpu.dmabuf_supported),
                flag(gpu.gpudirect_rdma_supported),
                if near.is_empty() {
                    "-".into()
                } else {
                    near.join("; ")
                },
            ]);
        }
    }
    Some(Table {
        title: "GPUs and their distance to the RDMA devices".into(),
        columns: [
            "host",
            "GPU",
            "driver",
            "PCI",
            "memory",
            "BAR1",
            "NUMA",
            "dma-buf",
            "GPUDirect RDMA",
            "RDMA devices (relation)",
        ]
        .iter()
        .map(|c| c.to_string())
        .collect(),
        rows,
        notes,
    })
}

pub(crate) fn blocks(report: &RunReport) -> Vec<Block> {
    let systems = systems(report);
    let mut blocks = Vec::new();
    if systems.is_empty() {
        blocks.push(Block::Note(format!(
            "System configuration: not recorded (schema {} predates 1.1, which added it); the Endpoints table above is what this file knows of the devices.",
            report.schema_version
        )));
    } else {
        blocks.push(Block::Table(host_table(&systems)));
        blocks.extend(device_table(&systems).map(Block::Table));
        blocks.extend(gpu_table(&systems).map(Block::Table));
    }
    if let Some(cluster) = &report.cluster {
        blocks.push(Block::Table(dut_table(cluster)));
        if !cluster.nodes.is_empty() {
            blocks.push(Block::Table(nodes_table(cluster)));
        }
    }
    blocks
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::blocks::tables;

    fn parse(text: &str) -> RunReport {
        serde_json::from_str(text).unwrap()
    }

    #[test]
    fn one_column_per_node_and_unknown_said() {
        let report = parse(include_str!("../../tests/fixtures/results/incast-8.2.json"));
        let blocks = blocks(&report);
        let t = tables(&blocks);
        let titles: Vec<&str> = t.iter().map(|t| t.title.as_str()).collect();
        assert_eq!(titles.len(), 4, "{titles:?}");
        let host = t[0];
        assert_eq!(host.columns.len(), 3, "field + two nodes");
        assert!(host.columns[1].starts_with("node 0"));
        let devices = t[1];
        assert!(devices.columns[1].contains("rxe0:1"));
        let row = |t: &Table, name: &str| t.rows.iter().find(|r| r[0] == name).unwrap().clone();
        // rxe: no firmware, no NUMA node, no PCI, PFC unknown with its reason.
        assert_eq!(row(devices, "firmware")[1], "unknown");
        assert_eq!(row(devices, "NIC NUMA node")[1], "unknown");
        assert!(row(devices, "PFC")[1].starts_with("unknown (`dcb pfc show"));
        assert_eq!(
            row(host, "rdma-core")[1],
            "44.0 (dpkg-query -W libibverbs1)"
        );
        assert!(
            t[2].rows.iter().any(|r| r[1] == "not given"),
            "empty switch"
        );
    }

    #[test]
    fn files_before_schema_1_1_still_render() {
        let report = parse(include_str!("../../tests/fixtures/results/bw-write.json"));
        assert!(report.system.is_none());
        let blocks = blocks(&report);
        assert!(matches!(&blocks[..], [Block::Note(n)] if n.contains("predates 1.1")));
    }

    #[test]
    fn priorities_read_as_on_off_unknown() {
        let on = PrioritySetting {
            enabled_prios: Some(vec![3, 4]),
            source: "dcb".into(),
        };
        assert_eq!(priorities(&on), "on prio 3,4 (dcb)");
        let off = PrioritySetting {
            enabled_prios: Some(vec![]),
            source: "dcb".into(),
        };
        assert_eq!(priorities(&off), "off (dcb)");
        assert_eq!(
            priorities(&PrioritySetting::unknown("no dcb")),
            "unknown (no dcb)"
        );
    }
}
