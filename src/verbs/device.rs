//! Device discovery and selection, port facts and device limits.
//!
//! A device is chosen by name (`rxe0`, `mlx5_0`), by the netdev it sits on
//! (`veth0`, `eth2`) or by one of its IP addresses (`198.18.0.1`), all through
//! one `-d` flag. Opening also allocates the protection domain every other
//! resource of the run hangs from.

use std::fmt;
use std::io;
use std::net::IpAddr;
use std::sync::Arc;

use serde::Serialize;
use sideway::ibverbs::device::{DeviceInfo, DeviceList};
use sideway::ibverbs::device_context::{DeviceContext, Mtu};
use sideway::ibverbs::protection_domain::ProtectionDomain;

use super::gid::{self, GidRow};
use super::VerbsError;
pub use crate::results::{DeviceFacts, DeviceLimits};

/// How the user named the device.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DeviceSelector {
    /// Whatever `-d` said: a device name, a netdev name or an IP address.
    Any(String),
}

impl DeviceSelector {
    /// Builds a selector from the `-d` value.
    pub fn parse(text: &str) -> DeviceSelector {
        DeviceSelector::Any(text.trim().to_string())
    }

    fn text(&self) -> &str {
        match self {
            DeviceSelector::Any(text) => text,
        }
    }
}

impl fmt::Display for DeviceSelector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.text())
    }
}

/// One GID row as `infab devices` lists it.
#[derive(Debug, Clone, Serialize)]
pub struct GidSummary {
    /// Port number.
    pub port: u8,
    /// GID index.
    pub index: u8,
    /// GID in IPv6 notation.
    pub gid: String,
    /// "RoCEv2" etc.
    pub gid_type: String,
    /// Netdev, when known.
    pub netdev: Option<String>,
}

/// A device as `infab devices` lists it.
#[derive(Debug, Clone, Serialize)]
pub struct DeviceSummary {
    /// Device name.
    pub name: String,
    /// State of port 1.
    pub port_state: String,
    /// Active MTU of port 1, bytes.
    pub active_mtu_bytes: u32,
    /// Every non-empty GID.
    pub gids: Vec<GidSummary>,
}

/// An opened device, its chosen port and GID, and its protection domain.
pub struct RdmaDevice {
    pub(crate) ctx: Arc<DeviceContext>,
    pub(crate) pd: Arc<ProtectionDomain>,
    facts: DeviceFacts,
    mtu: Mtu,
}

impl fmt::Debug for RdmaDevice {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RdmaDevice")
            .field("facts", &self.facts)
            .finish()
    }
}

fn device_list() -> Result<DeviceList, VerbsError> {
    let list = DeviceList::new().map_err(|err| {
        let source = match err.0 {
            sideway::ibverbs::device::GetDeviceListErrorKind::Ibverbs(io) => io,
            #[allow(unreachable_patterns)]
            other => io::Error::other(other.to_string()),
        };
        VerbsError::NoRdmaKernel { cause: source }
    })?;
    if list.is_empty() {
        return Err(VerbsError::NoDevice);
    }
    Ok(list)
}

fn gid_rows(ctx: &DeviceContext, port: u8) -> Vec<GidRow> {
    ctx.query_gid_table()
        .map(|entries| {
            entries
                .iter()
                .filter(|entry| entry.port_num() == u32::from(port))
                .filter_map(GidRow::from_entry)
                .filter(|row| !row.gid.is_zero())
                .collect()
        })
        .unwrap_or_default()
}

fn mtu_bytes(mtu: Mtu) -> u32 {
    match mtu {
        Mtu::Mtu256 => 256,
        Mtu::Mtu512 => 512,
        Mtu::Mtu1024 => 1024,
        Mtu::Mtu2048 => 2048,
        Mtu::Mtu4096 => 4096,
    }
}

fn port_state_name(state: u32) -> &'static str {
    match state {
        1 => "DOWN",
        2 => "INIT",
        3 => "ARMED",
        4 => "ACTIVE",
        5 => "ACTIVE_DEFER",
        _ => "NOP",
    }
}

/// Width code (ibv_port_attr.active_width) to lane count.
fn width_lanes(code: u8) -> Option<u32> {
    match code {
        1 => Some(1),
        2 => Some(4),
        4 => Some(8),
        8 => Some(12),
        16 => Some(2),
        _ => None,
    }
}

/// Speed code (ibv_port_attr.active_speed) to name and data rate per lane, Gb/s.
fn speed_lane(code: u32) -> Option<(&'static str, f64)> {
    match code {
        1 => Some(("SDR", 2.0)),
        2 => Some(("DDR", 4.0)),
        4 => Some(("QDR", 8.0)),
        8 => Some(("FDR10", 10.0)),
        16 => Some(("FDR", 13.64)),
        32 => Some(("EDR", 25.0)),
        64 => Some(("HDR", 50.0)),
        128 => Some(("NDR", 100.0)),
        256 => Some(("XDR", 200.0)),
        _ => None,
    }
}

/// Lists every device with its port-1 state and GID table (`infab devices`).
pub fn list_devices() -> Result<Vec<DeviceSummary>, VerbsError> {
    let list = device_list()?;
    let mut out = Vec::new();
    for device in list.iter() {
        let name = device.name();
        let ctx = device.open().map_err(|err| {
            VerbsError::call(&name, "ibv_open_device", io::Error::other(err.to_string()))
        })?;
        let (state, mtu) = match ctx.query_port(1) {
            Ok(port) => (
                port_state_name(port.attr.state),
                mtu_bytes(port.active_mtu()),
            ),
            Err(_) => ("unknown", 0),
        };
        let gids = gid_rows(&ctx, 1)
            .into_iter()
            .map(|row| GidSummary {
                port: 1,
                index: row.index,
                gid: std::net::Ipv6Addr::from(row.gid).to_string(),
                gid_type: gid::type_name(row.gid_type).to_string(),
                netdev: row.netdev.clone(),
            })
            .collect();
        out.push(DeviceSummary {
            name,
            port_state: state.to_string(),
            active_mtu_bytes: mtu,
            gids,
        });
    }
    Ok(out)
}

fn describe(summaries: &[(String, Vec<GidRow>)]) -> String {
    summaries
        .iter()
        .map(|(name, rows)| {
            let mut extras: Vec<String> = Vec::new();
            for row in rows {
                if let Some(netdev) = &row.netdev {
                    if !extras.contains(netdev) {
                        extras.push(netdev.clone());
                    }
                }
                if let Some(ip) = row.ipv4() {
                    let ip = ip.to_string();
                    if !extras.contains(&ip) {
                        extras.push(ip);
                    }
                }
            }
            if extras.is_empty() {
                name.clone()
            } else {
                format!("{name} [{}]", extras.join(" "))
            }
        })
        .collect::<Vec<_>>()
        .join(", ")
}

impl RdmaDevice {
    /// Opens the device the selector names (or the only device when `None`),
    /// checks that `port` is ACTIVE, picks the GID (`gid_index` = `-x`) and
    /// allocates the protection domain.
    pub fn open(
        selector: Option<&DeviceSelector>,
        port: u8,
        gid_index: Option<u8>,
    ) -> Result<RdmaDevice, VerbsError> {
        let list = device_list()?;
        let mut seen: Vec<(String, Vec<GidRow>)> = Vec::new();
        let mut chosen = None;
        for device in list.iter() {
            let name = device.name();
            let ctx = device.open().map_err(|err| {
                VerbsError::call(&name, "ibv_open_device", io::Error::other(err.to_string()))
            })?;
            let rows = gid_rows(&ctx, port);
            let matches = match selector {
                None => true,
                Some(sel) => {
                    let text = sel.text();
                    let by_ip = text.parse::<IpAddr>().ok();
                    name == text
                        || rows.iter().any(|row| row.netdev.as_deref() == Some(text))
                        || by_ip.is_some_and(|ip| rows.iter().any(|row| row.ip() == ip))
                }
            };
            if matches && chosen.is_none() {
                let local_ip = selector.and_then(|sel| sel.text().parse::<IpAddr>().ok());
                chosen = Some((name.clone(), ctx, rows.clone(), local_ip));
            }
            seen.push((name, rows));
        }
        if selector.is_none() && seen.len() > 1 {
            return Err(VerbsError::AmbiguousDevice {
                count: seen.len(),
                present: describe(&seen),
            });
        }
        let (name, ctx, rows, local_ip) = chosen.ok_or_else(|| VerbsError::DeviceNotFound {
            wanted: selector.map(|s| s.to_string()).unwrap_or_default(),
            present: describe(&seen),
        })?;
        Self::open_context(name, ctx, port, &rows, gid_index, local_ip)
    }

    fn open_context(
        name: String,
        ctx: Arc<DeviceContext>,
        port: u8,
        rows: &[GidRow],
        gid_index: Option<u8>,
        local_ip: Option<IpAddr>,
    ) -> Result<RdmaDevice, VerbsError> {
        let dev_attr = ctx.query_device().map_err(|err| {
            VerbsError::call(&name, "ibv_query_device", io::Error::other(err.to_string()))
        })?;
        if port == 0 || port > dev_attr.phys_port_cnt() {
            return Err(VerbsError::Limit {
                device: name,
                what: "port number",
                requested: u64::from(port),
                limit: u64::from(dev_attr.phys_port_cnt()),
            });
        }
        let port_attr = ctx.query_port(port).map_err(|err| {
            VerbsError::call(&name, "ibv_query_port", io::Error::other(err.to_string()))
        })?;
        let state = port_state_name(port_attr.attr.state);
        if state != "ACTIVE" {
            return Err(VerbsError::PortNotActive {
                device: name,
                port,
                state: state.to_string(),
            });
        }
        let gid = gid::choose(&name, port, rows, gid_index, local_ip)?;
        let mtu = port_attr.active_mtu();
        let lanes = width_lanes(port_attr.attr.active_width);
        let speed = speed_lane(u32::from(port_attr.attr.active_speed));
        let line_rate_gbps = match (lanes, speed) {
            (Some(lanes), Some((_, per_lane))) => Some(per_lane * f64::from(lanes)),
            _ => None,
        };
        let link_layer = if port_attr.attr.link_layer == 2 {
            "Ethernet"
        } else {
            "InfiniBand"
        };
        let limits = DeviceLimits {
            max_qp: dev_attr.max_qp().max(0) as u64,
            max_qp_wr: dev_attr.max_qp_wr().max(0) as u64,
            max_sge: dev_attr.max_sge().max(0) as u64,
            max_cqe: dev_attr.max_cqe().max(0) as u64,
            max_mr_size: dev_attr.max_mr_size(),
            max_msg_bytes: u64::from(port_attr.attr.max_msg_sz),
            max_qp_rd_atom: dev_attr.max_qp_rd_atom().max(0) as u64,
        };
        let facts = DeviceFacts {
            name: name.clone(),
            port,
            node_guid: dev_attr.node_guid().to_string(),
            fw_ver: dev_attr.firmware_version(),
            vendor_id: dev_attr.vendor_id(),
            vendor_part_id: dev_attr.vendor_part_id(),
            link_layer: link_layer.to_string(),
            port_state: state.to_string(),
            active_mtu_bytes: mtu_bytes(mtu),
            active_width: lanes
                .map(|l| format!("{l}X"))
                .unwrap_or_else(|| "unknown".into()),
            active_speed: speed
                .map(|(n, r)| format!("{n} ({r} Gb/s)"))
                .unwrap_or_else(|| format!("unknown (code {})", port_attr.attr.active_speed)),
            line_rate_gbps,
            gid,
            limits,
        };
        let pd = ctx.alloc_pd().map_err(|err| {
            VerbsError::call(&name, "ibv_alloc_pd", io::Error::other(err.to_string()))
        })?;
        Ok(RdmaDevice {
            ctx,
            pd,
            facts,
            mtu,
        })
    }

    /// The facts a report records about this device, port and GID.
    pub fn facts(&self) -> &DeviceFacts {
        &self.facts
    }

    /// The device name.
    pub fn name(&self) -> &str {
        &self.facts.name
    }

    /// The device limits.
    pub fn limits(&self) -> &DeviceLimits {
        &self.facts.limits
    }

    pub(crate) fn active_mtu(&self) -> Mtu {
        self.mtu
    }

    /// Fails with a clear message when `requested` exceeds `limit`.
    pub fn check_limit(
        &self,
        what: &'static str,
        requested: u64,
        limit: u64,
    ) -> Result<(), VerbsError> {
        if requested > limit {
            return Err(VerbsError::Limit {
                device: self.facts.name.clone(),
                what,
                requested,
                limit,
            });
        }
        Ok(())
    }
}
