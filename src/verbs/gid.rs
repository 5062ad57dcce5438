//! RoCEv2 GID choice. The GID table of a RoCE port holds one entry per netdev
//! address and RoCE version; picking the wrong index is the classic cause of
//! "QP stuck in RTR" between hosts, so the choice is automatic, explained and
//! recorded: RoCE v2, IPv4-mapped, matching the local address when one is given.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use sideway::ibverbs::address::{Gid, GidEntry, GidType};

use super::VerbsError;

pub use crate::results::GidChoice;

/// One row of the GID table, in plain data.
#[derive(Debug, Clone)]
pub(crate) struct GidRow {
    pub index: u8,
    pub gid: Gid,
    pub gid_type: GidType,
    pub netdev: Option<String>,
}

impl GidRow {
    pub(crate) fn from_entry(entry: &GidEntry) -> Option<GidRow> {
        let index = u8::try_from(entry.gid_index()).ok()?;
        Some(GidRow {
            index,
            gid: entry.gid(),
            gid_type: entry.gid_type(),
            netdev: entry.netdev_name().ok(),
        })
    }

    pub(crate) fn ip(&self) -> IpAddr {
        let v6 = Ipv6Addr::from(self.gid);
        match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => IpAddr::V6(v6),
        }
    }

    pub(crate) fn ipv4(&self) -> Option<Ipv4Addr> {
        Ipv6Addr::from(self.gid).to_ipv4_mapped()
    }

    pub(crate) fn to_choice(&self, chosen_by: &str) -> GidChoice {
        GidChoice {
            index: self.index,
            gid: Ipv6Addr::from(self.gid).to_string(),
            gid_type: type_name(self.gid_type).to_string(),
            netdev: self.netdev.clone(),
            ipv4: self.ipv4(),
            chosen_by: chosen_by.to_string(),
        }
    }
}

/// A short name of a GID type, as `show_gids` prints it.
pub(crate) fn type_name(gid_type: GidType) -> &'static str {
    match gid_type {
        GidType::RoceV2 => "RoCEv2",
        GidType::RoceV1 => "RoCEv1",
        GidType::InfiniBand => "IB",
    }
}

/// Picks the GID: the user's index if given (it must exist), else the first
/// RoCE v2 IPv4-mapped GID (matching `local_ip` when given), else the first
/// RoCE v2 GID of any kind, else for InfiniBand the first non-zero GID.
pub(crate) fn choose(
    device: &str,
    port: u8,
    rows: &[GidRow],
    user_index: Option<u8>,
    local_ip: Option<IpAddr>,
) -> Result<GidChoice, VerbsError> {
    if let Some(index) = user_index {
        return rows
            .iter()
            .find(|row| row.index == index && !row.gid.is_zero())
            .map(|row| row.to_choice("user (-x)"))
            .ok_or_else(|| VerbsError::NoGid {
                device: device.to_string(),
                port,
                detail: format!("GID index {index} is empty or does not exist"),
            });
    }
    let usable = |row: &&GidRow| !row.gid.is_zero();
    let v2 = |row: &&GidRow| row.gid_type == GidType::RoceV2;
    if let Some(ip) = local_ip {
        return rows
            .iter()
            .filter(usable)
            .filter(v2)
            .find(|row| row.ip() == ip)
            .map(|row| row.to_choice("auto (matches local address)"))
            .ok_or_else(|| VerbsError::NoGid {
                device: device.to_string(),
                port,
                detail: format!("no RoCE v2 GID carries the address {ip}"),
            });
    }
    let pick = rows
        .iter()
        .filter(usable)
        .filter(v2)
        .find(|row| row.ipv4().is_some())
        .or_else(|| rows.iter().filter(usable).find(v2))
        .or_else(|| {
            rows.iter()
                .filter(usable)
                .find(|row| row.gid_type == GidType::InfiniBand)
        });
    pick.map(|row| row.to_choice("auto (first RoCE v2 IPv4 GID)"))
        .ok_or_else(|| VerbsError::NoGid {
            device: device.to_string(),
            port,
            detail: "no RoCE v2 GID in the table (does the netdev have an IP address?)".to_string(),
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(index: u8, ip: &str, gid_type: GidType) -> GidRow {
        let v6: Ipv6Addr = match ip.parse::<IpAddr>().unwrap() {
            IpAddr::V4(v4) => v4.to_ipv6_mapped(),
            IpAddr::V6(v6) => v6,
        };
        GidRow {
            index,
            gid: Gid::from(v6),
            gid_type,
            netdev: Some("veth0".into()),
        }
    }

    fn table() -> Vec<GidRow> {
        vec![
            row(0, "fe80::1", GidType::RoceV2),
            row(1, "198.18.0.1", GidType::RoceV1),
            row(2, "198.18.0.1", GidType::RoceV2),
            row(3, "198.18.1.1", GidType::RoceV2),
        ]
    }

    #[test]
    fn auto_prefers_roce_v2_ipv4() {
        let choice = choose("d", 1, &table(), None, None).unwrap();
        assert_eq!(choice.index, 2);
        assert_eq!(choice.ipv4, Some("198.18.0.1".parse().unwrap()));
    }

    #[test]
    fn local_ip_selects_matching_gid() {
        let ip = "198.18.1.1".parse().ok();
        assert_eq!(choose("d", 1, &table(), None, ip).unwrap().index, 3);
        let missing = "10.0.0.1".parse().ok();
        assert!(choose("d", 1, &table(), None, missing).is_err());
    }

    #[test]
    fn user_index_wins_and_must_exist() {
        assert_eq!(
            choose("d", 1, &table(), Some(1), None).unwrap().gid_type,
            "RoCEv1"
        );
        assert!(choose("d", 1, &table(), Some(9), None).is_err());
    }
}
