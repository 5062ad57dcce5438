//! One RDMA device and port as sysfs describes it
//! (`/sys/class/infiniband/<dev>`, its port, its PCI parent and its netdev),
//! merged with what the caller knows from verbs (a [`DeviceUse`]).
//! PFC and ECN are read in dcb.rs.

use std::path::Path;

use crate::results::{DeviceConfig, UNKNOWN};

use super::dcb::{read_ecn, read_pfc, EcnPoint};
use super::root::{link_name, number_or_none, read_trimmed, text_or_unknown, HostRoot};
use super::system::DeviceUse;

/// Describes the device and port of `used`; never fails: what cannot be read
/// is "unknown" / `None` with a line in `notes`.
pub fn collect_device(root: &HostRoot, used: &DeviceUse) -> DeviceConfig {
    let mut notes = Vec::new();
    let dev = root.ib_device(&used.device);
    let port = root.ib_port(&used.device, used.port);
    if !dev.exists() {
        notes.push(format!("{}: absent (no such RDMA device)", dev.display()));
    }
    let rate = text_or_unknown(&port.join("rate"), &mut notes);
    let line_rate_gbps = parse_rate_gbps(&rate);
    if line_rate_gbps.is_none() && rate != UNKNOWN {
        notes.push(format!("rate {rate:?}: no Gb/sec figure"));
    }
    let netdev = netdev_of(&dev, &port, used, &mut notes);
    let (netdev_mtu_bytes, netdev_speed_mbps) = match &netdev {
        Some(nd) => {
            let net = root.netdev(nd);
            (
                number_or_none(&net.join("mtu"), &mut notes),
                netdev_speed(&net.join("speed"), &mut notes),
            )
        }
        None => (None, None),
    };
    DeviceConfig {
        name: used.device.clone(),
        port: used.port,
        driver: driver(&dev, &mut notes),
        node_type: text_or_unknown(&dev.join("node_type"), &mut notes),
        fw_ver: text_or_unknown(&dev.join("fw_ver"), &mut notes),
        node_guid: text_or_unknown(&dev.join("node_guid"), &mut notes),
        board_id: text_or_unknown(&dev.join("board_id"), &mut notes),
        hca_type: text_or_unknown(&dev.join("hca_type"), &mut notes),
        port_state: text_or_unknown(&port.join("state"), &mut notes),
        phys_state: text_or_unknown(&port.join("phys_state"), &mut notes),
        rate,
        line_rate_gbps,
        link_layer: text_or_unknown(&port.join("link_layer"), &mut notes),
        active_mtu_bytes: used.active_mtu_bytes,
        gid_index: used.gid_index,
        gid_type: used.gid_type.clone(),
        pfc: read_pfc(root, netdev.as_deref()),
        ecn_np: read_ecn(root, netdev.as_deref(), EcnPoint::Notification),
        ecn_rp: read_ecn(root, netdev.as_deref(), EcnPoint::Reaction),
        netdev,
        netdev_mtu_bytes,
        netdev_speed_mbps,
        numa_node: numa_node(&dev, &mut notes),
        pci_address: pci_address(&dev, &mut notes),
        traffic_class: used.traffic_class,
        dscp: used.traffic_class >> 2,
        notes,
    }
}

/// "100 Gb/sec (4X EDR)" → 100.0; "2.5 Gb/sec (1X SDR)" → 2.5.
pub(crate) fn parse_rate_gbps(rate: &str) -> Option<f64> {
    let mut words = rate.split_whitespace();
    let number: f64 = words.next()?.parse().ok()?;
    let unit = words.next()?;
    (unit.eq_ignore_ascii_case("Gb/sec") && number.is_finite() && number >= 0.0).then_some(number)
}

/// The kernel driver: `device/driver`'s name, or "rdma_rxe" for a device
/// with rxe's `parent` attribute and no PCI device.
fn driver(dev: &Path, notes: &mut Vec<String>) -> String {
    match link_name(&dev.join("device/driver")) {
        Ok(name) => name,
        Err(why) => {
            if !dev.join("device").exists() && dev.join("parent").exists() {
                "rdma_rxe".to_string()
            } else {
                notes.push(why);
                UNKNOWN.to_string()
            }
        }
    }
}

/// The caller's netdev, else the GID's `ndevs` entry, else rxe's `parent`.
fn netdev_of(dev: &Path, port: &Path, used: &DeviceUse, notes: &mut Vec<String>) -> Option<String> {
    if let Some(nd) = &used.netdev {
        return Some(nd.clone());
    }
    let ndevs = port
        .join("gid_attrs/ndevs")
        .join(used.gid_index.to_string());
    let from_gid = read_trimmed(&ndevs);
    if let Ok(nd) = &from_gid {
        if !nd.is_empty() {
            return Some(nd.clone());
        }
    }
    match read_trimmed(&dev.join("parent")) {
        Ok(nd) if !nd.is_empty() => Some(nd),
        _ => {
            notes.push(format!(
                "netdev unknown: none given, {} unreadable and no rxe parent",
                ndevs.display()
            ));
            None
        }
    }
}

/// /sys/class/net/<nd>/speed in Mb/s; -1 (unknown speed) → `None`.
fn netdev_speed(path: &Path, notes: &mut Vec<String>) -> Option<u64> {
    let speed: i64 = number_or_none(path, notes)?;
    if speed < 0 {
        notes.push(format!(
            "{}: {speed} (the driver reports no speed)",
            path.display()
        ));
        return None;
    }
    Some(speed as u64)
}

/// `device/numa_node`; -1 → `None`.
fn numa_node(dev: &Path, notes: &mut Vec<String>) -> Option<u32> {
    let path = dev.join("device/numa_node");
    let node: i64 = number_or_none(&path, notes)?;
    if node < 0 {
        notes.push(format!("{}: {node} (no NUMA affinity)", path.display()));
        return None;
    }
    u32::try_from(node).ok()
}

/// The PCI address the `device` link points at, e.g. "0000:3b:00.0".
fn pci_address(dev: &Path, notes: &mut Vec<String>) -> Option<String> {
    match link_name(&dev.join("device")) {
        Ok(name) if looks_like_pci(&name) => Some(name),
        Ok(name) => {
            notes.push(format!("device link names {name:?}, not a PCI address"));
            None
        }
        Err(why) => {
            notes.push(why);
            None
        }
    }
}

/// "dddd:bb:dd.f" in hex.
fn looks_like_pci(name: &str) -> bool {
    let b = name.as_bytes();
    b.len() == 12
        && b[4] == b':'
        && b[7] == b':'
        && b[10] == b'.'
        && name
            .chars()
            .enumerate()
            .all(|(i, c)| matches!(i, 4 | 7 | 10) || c.is_ascii_hexdigit())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_parse() {
        assert_eq!(parse_rate_gbps("100 Gb/sec (4X EDR)"), Some(100.0));
        assert_eq!(parse_rate_gbps("2.5 Gb/sec (1X SDR)"), Some(2.5));
        assert_eq!(parse_rate_gbps("400 Gb/sec (4X NDR)"), Some(400.0));
        assert_eq!(parse_rate_gbps("unknown"), None);
        assert_eq!(parse_rate_gbps(""), None);
        assert_eq!(parse_rate_gbps("NaN Gb/sec"), None);
    }

    #[test]
    fn pci_addresses() {
        assert!(looks_like_pci("0000:3b:00.0"));
        assert!(looks_like_pci("0000:af:00.1"));
        assert!(!looks_like_pci("virtio0"));
        assert!(!looks_like_pci("0000:3b:00"));
    }
}
