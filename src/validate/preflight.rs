//! Preflight: what each local device and port must look like before any
//! traffic. Device present, port ACTIVE, a RoCEv2 GID, active MTU, line
//! rate, and PFC/ECN on the profile's priority where the system shows them.
//!
//! Owns reading those facts (verbs for the port, `sysinfo` for sysfs rate,
//! PFC and ECN) and judging them. Whether QPs reach RTS to the peer needs
//! traffic and lives in runs.rs. A setting the system does not expose is a
//! WARN, never a guess, unless the profile says `require_visible`.

use std::net::{IpAddr, Ipv6Addr};

use crate::results::{DeviceConfig, DeviceFacts, PrioritySetting};
use crate::sysinfo::{collect_system, DeviceUse, HostRoot};
use crate::verbs::{list_devices, DeviceSelector, DeviceSummary, RdmaDevice, VerbsError};

use super::check::{Check, Status};
use super::profile::PreflightSpec;

const GROUP: &str = "preflight";

/// One local device the profile names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceWanted {
    /// "device" or "target_device": the profile field, for messages.
    pub field: &'static str,
    /// What the profile says: name, netdev or IP.
    pub selector: String,
    /// Port number.
    pub ib_port: u8,
    /// GID index, when fixed.
    pub gid_index: Option<u8>,
}

/// What preflight found: the checks, and the facts of every device it
/// could open (for counter snapshots around the test runs).
#[derive(Debug, Clone)]
pub struct PreflightOutcome {
    /// The checks, in order.
    pub checks: Vec<Check>,
    /// Facts of each device opened.
    pub opened: Vec<DeviceFacts>,
    /// Every wanted device was present, ACTIVE and opened (traffic can be tried).
    pub usable: bool,
}

/// Checks every wanted device against `spec`.
pub fn preflight(wanted: &[DeviceWanted], spec: &PreflightSpec, tclass: u8) -> PreflightOutcome {
    let mut out = PreflightOutcome {
        checks: Vec::new(),
        opened: Vec::new(),
        usable: true,
    };
    let list = match list_devices() {
        Ok(list) => list,
        Err(err) => {
            out.checks.push(Check::new(
                GROUP,
                "RDMA devices",
                Status::Error,
                "at least one RDMA device",
                err.to_string(),
                "load the NIC driver (or rdma_rxe and `rdma link add`), and check `ibv_devices`",
            ));
            out.usable = false;
            return out;
        }
    };
    for want in wanted {
        match check_device(want, &list, spec, tclass, &mut out.checks) {
            Some(facts) => out.opened.push(facts),
            None => out.usable = false,
        }
    }
    out
}

/// Whether a listed device is the one `selector` names (name, netdev or IP
/// of one of its GIDs), as `RdmaDevice::open` decides.
pub fn selects(selector: &str, device: &DeviceSummary) -> bool {
    let ip = selector.parse::<IpAddr>().ok();
    device.name == selector
        || device.gids.iter().any(|g| {
            g.netdev.as_deref() == Some(selector) || ip.is_some_and(|ip| gid_ip(&g.gid) == Some(ip))
        })
}

/// The IP address a GID stands for (IPv4-mapped GIDs as IPv4).
fn gid_ip(gid: &str) -> Option<IpAddr> {
    let v6: Ipv6Addr = gid.parse().ok()?;
    Some(match v6.to_ipv4_mapped() {
        Some(v4) => IpAddr::V4(v4),
        None => IpAddr::V6(v6),
    })
}

fn check_device(
    want: &DeviceWanted,
    list: &[DeviceSummary],
    spec: &PreflightSpec,
    tclass: u8,
    checks: &mut Vec<Check>,
) -> Option<DeviceFacts> {
    let sel = &want.selector;
    let Some(summary) = list.iter().find(|d| selects(sel, d)) else {
        let present: Vec<&str> = list.iter().map(|d| d.name.as_str()).collect();
        checks.push(Check::new(
            GROUP,
            format!("device {sel} present"),
            Status::Error,
            format!("an RDMA device named by {} = {sel:?}", want.field),
            format!("absent (devices: {})", present.join(", ")),
            format!("fix target.{} (a device name, its netdev or an IP of it; see `infab devices`), or load the driver", want.field),
        ));
        return None;
    };
    checks.push(Check::new(
        GROUP,
        format!("device {sel} present"),
        Status::Pass,
        format!("an RDMA device named by {} = {sel:?}", want.field),
        summary.name.clone(),
        "",
    ));
    let name = summary.name.clone();
    let port_name = format!("port {name}/{} ACTIVE", want.ib_port);
    let port_fix = "bring the link up (`ip link set dev <netdev> up`), check the cable and the switch port, and `rdma link`";
    if want.ib_port == 1 && summary.port_state != "ACTIVE" {
        checks.push(Check::new(
            GROUP,
            port_name,
            Status::Fail,
            "ACTIVE",
            summary.port_state.clone(),
            port_fix,
        ));
        return None;
    }
    let device = match RdmaDevice::open(
        Some(&DeviceSelector::parse(&name)),
        want.ib_port,
        want.gid_index,
    ) {
        Ok(device) => device,
        Err(VerbsError::PortNotActive { state, .. }) => {
            checks.push(Check::new(
                GROUP,
                port_name,
                Status::Fail,
                "ACTIVE",
                state,
                port_fix,
            ));
            return None;
        }
        Err(err) => {
            checks.push(Check::new(
                GROUP,
                format!("open {name}"),
                Status::Error,
                "the device opens with a usable GID",
                err.to_string(),
                "the message above names the fix; `infab devices` lists ports and GIDs",
            ));
            return None;
        }
    };
    let facts = device.facts().clone();
    drop(device);
    checks.push(Check::new(
        GROUP,
        port_name,
        Status::Pass,
        "ACTIVE",
        facts.port_state.clone(),
        "",
    ));
    let system = collect_system(&HostRoot::live(), &[DeviceUse::from_facts(&facts, tclass)]);
    let config = system.devices.into_iter().next();
    checks.extend(judge_device(&facts, config.as_ref(), spec));
    Some(facts)
}

/// The checks of one opened device against `spec` (pure: facts in, checks out).
pub fn judge_device(
    facts: &DeviceFacts,
    config: Option<&DeviceConfig>,
    spec: &PreflightSpec,
) -> Vec<Check> {
    let name = &facts.name;
    let netdev = facts
        .gid
        .netdev
        .clone()
        .or_else(|| config.and_then(|c| c.netdev.clone()))
        .unwrap_or_else(|| "<netdev>".into());
    let mut checks = Vec::new();
    if spec.require_rocev2_gid {
        checks.push(Check::new(
            GROUP,
            format!("RoCEv2 GID {name}"),
            if facts.gid.gid_type == "RoCEv2" { Status::Pass } else { Status::Fail },
            "a RoCEv2 GID",
            format!("index {} {} ({}, {})", facts.gid.index, facts.gid.gid, facts.gid.gid_type, facts.gid.chosen_by),
            format!("give {netdev} an IP address so the kernel adds a RoCEv2 GID, or pick a RoCEv2 row with gid_index (`infab devices`); check the RoCE mode (`cma_roce_mode -d {name}`)"),
        ));
    }
    if let Some(min) = spec.min_mtu_bytes {
        let mtu = facts.active_mtu_bytes;
        checks.push(Check::new(
            GROUP,
            format!("active MTU {name}"),
            if mtu >= min { Status::Pass } else { Status::Fail },
            format!("≥ {min} bytes"),
            format!("{mtu} bytes"),
            format!(
                "active MTU {mtu} < profile's {min}: set the netdev MTU to ≥ {} (ip link set dev {netdev} mtu 9000) and check the switch port MTU",
                min + 104
            ),
        ));
    }
    if let Some(expected) = spec.link_speed_gbps {
        checks.push(speed_check(facts, config, expected, spec));
    }
    if let Some(prio) = spec.pfc_priority {
        checks.push(priority_check(
            &format!("PFC prio {prio} {name}"),
            config.map(|c| &c.pfc),
            prio,
            spec.require_visible,
            &format!("enable PFC on priority {prio}: `dcb pfc set dev {netdev} prio-pfc {prio}:on` (or the vendor tool, e.g. mlnx_qos -i {netdev} --pfc), and on the switch port"),
        ));
    }
    if spec.ecn {
        if let Some(prio) = spec.ecn_priority() {
            for (point, setting) in [
                ("notification point", config.map(|c| &c.ecn_np)),
                ("reaction point", config.map(|c| &c.ecn_rp)),
            ] {
                checks.push(priority_check(
                    &format!("ECN {point} prio {prio} {name}"),
                    setting,
                    prio,
                    spec.require_visible,
                    &format!("enable DCQCN on priority {prio}: echo 1 > /sys/class/net/{netdev}/ecn/roce_{}/enable/{prio} (mlx5), and ECN marking on the switch queue", if point.starts_with('n') { "np" } else { "rp" }),
                ));
            }
        }
    }
    checks
}

fn speed_check(
    facts: &DeviceFacts,
    config: Option<&DeviceConfig>,
    expected: f64,
    spec: &PreflightSpec,
) -> Check {
    let name = &facts.name;
    let tol = spec.link_speed_tolerance_pct;
    let sysfs = config.map(|c| (c.rate.clone(), c.line_rate_gbps));
    let seen_rate = facts
        .line_rate_gbps
        .or_else(|| sysfs.as_ref().and_then(|s| s.1));
    let described = format!(
        "verbs {} × {} = {}; sysfs rate {:?}",
        facts.active_width,
        facts.active_speed,
        facts
            .line_rate_gbps
            .map_or("unknown".into(), |g| format!("{g} Gb/s")),
        sysfs.as_ref().map_or("unknown", |s| s.0.as_str()),
    );
    let expected_text = format!("{expected} Gb/s ± {tol} %");
    let check_name = format!("link speed {name}");
    let Some(gbps) = seen_rate else {
        return Check::new(
            GROUP,
            check_name,
            if spec.require_visible { Status::Fail } else { Status::Warn },
            expected_text,
            format!("unknown ({described})"),
            "the port reports no line rate (software devices such as rxe do not); check `ethtool <netdev>` by hand",
        );
    };
    let ok = (gbps - expected).abs() <= expected * tol / 100.0;
    Check::new(
        GROUP,
        check_name,
        if ok { Status::Pass } else { Status::Fail },
        expected_text,
        format!("{gbps} Gb/s ({described})"),
        "the link trained at another speed: check the cable/optic, the switch port speed and FEC, and `ethtool <netdev>`; or fix link_speed_gbps",
    )
}

fn priority_check(
    name: &str,
    setting: Option<&PrioritySetting>,
    prio: u8,
    require_visible: bool,
    fix: &str,
) -> Check {
    let expected = format!("enabled on priority {prio}");
    match setting.and_then(|s| s.enabled_prios.as_ref().map(|p| (p, &s.source))) {
        Some((prios, source)) => Check::new(
            GROUP,
            name,
            if prios.contains(&prio) { Status::Pass } else { Status::Fail },
            expected,
            format!("enabled on {prios:?} ({source})"),
            fix,
        ),
        None => Check::new(
            GROUP,
            name,
            if require_visible { Status::Fail } else { Status::Warn },
            expected,
            format!(
                "unknown: {}",
                setting.map_or("no system report for this device", |s| s.source.as_str())
            ),
            "the system does not expose this setting; confirm it with the vendor tool, or set require_visible = false to accept it unseen",
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::verbs::GidSummary;

    fn summary() -> DeviceSummary {
        DeviceSummary {
            name: "rxe1".into(),
            port_state: "ACTIVE".into(),
            active_mtu_bytes: 4096,
            gids: vec![GidSummary {
                port: 1,
                index: 1,
                gid: "::ffff:198.18.0.2".into(),
                gid_type: "RoCEv2".into(),
                netdev: Some("veth1".into()),
            }],
        }
    }

    #[test]
    fn devices_are_selected_by_name_netdev_or_ip() {
        let d = summary();
        assert!(selects("rxe1", &d));
        assert!(selects("veth1", &d));
        assert!(selects("198.18.0.2", &d));
        assert!(!selects("198.18.0.1", &d));
        assert!(!selects("rxe0", &d));
    }

    fn facts() -> DeviceFacts {
        let report: crate::results::RunReport =
            serde_json::from_str(include_str!("../../tests/fixtures/results/bw-write.json"))
                .unwrap();
        report.endpoints.unwrap().initiator
    }

    fn spec(text: &str) -> PreflightSpec {
        toml::from_str(text).unwrap()
    }

    fn find<'a>(checks: &'a [Check], prefix: &str) -> &'a Check {
        checks.iter().find(|c| c.name.starts_with(prefix)).unwrap()
    }

    #[test]
    fn mtu_below_the_profile_fails_with_the_fix() {
        let mut f = facts();
        f.active_mtu_bytes = 1024;
        f.gid.netdev = Some("eth2".into());
        let checks = judge_device(&f, None, &spec("min_mtu_bytes = 4096"));
        let mtu = find(&checks, "active MTU");
        assert_eq!(mtu.status, Status::Fail);
        assert!(
            mtu.fix.contains("active MTU 1024 < profile's 4096"),
            "{}",
            mtu.fix
        );
        assert!(
            mtu.fix.contains("ip link set dev eth2 mtu 9000"),
            "{}",
            mtu.fix
        );
        f.active_mtu_bytes = 4096;
        let checks = judge_device(&f, None, &spec("min_mtu_bytes = 4096"));
        assert_eq!(find(&checks, "active MTU").status, Status::Pass);
    }

    #[test]
    fn link_speed_uses_the_tolerance_and_warns_when_unknown() {
        let mut f = facts();
        f.line_rate_gbps = Some(390.0);
        let s = spec("link_speed_gbps = 400");
        assert_eq!(
            find(&judge_device(&f, None, &s), "link speed").status,
            Status::Pass
        );
        f.line_rate_gbps = Some(200.0);
        assert_eq!(
            find(&judge_device(&f, None, &s), "link speed").status,
            Status::Fail
        );
        f.line_rate_gbps = None;
        assert_eq!(
            find(&judge_device(&f, None, &s), "link speed").status,
            Status::Warn
        );
        let strict = spec("link_speed_gbps = 400\nrequire_visible = true");
        assert_eq!(
            find(&judge_device(&f, None, &strict), "link speed").status,
            Status::Fail
        );
    }

    #[test]
    fn pfc_and_ecn_fail_when_off_and_warn_when_unknown() {
        let on = PrioritySetting {
            enabled_prios: Some(vec![3]),
            source: "dcb".into(),
        };
        let off = PrioritySetting {
            enabled_prios: Some(vec![]),
            source: "dcb".into(),
        };
        let unknown = PrioritySetting::unknown("dcb not installed");
        let s = spec("pfc_priority = 3");
        assert_eq!(
            priority_check("p", Some(&on), 3, false, "f").status,
            Status::Pass
        );
        assert_eq!(
            priority_check("p", Some(&off), 3, false, "f").status,
            Status::Fail
        );
        let warn = priority_check("p", Some(&unknown), 3, false, "f");
        assert_eq!(warn.status, Status::Warn);
        assert!(warn.seen.contains("dcb not installed"));
        assert_eq!(
            priority_check("p", Some(&unknown), 3, true, "f").status,
            Status::Fail
        );
        let checks = judge_device(&facts(), None, &s);
        assert_eq!(find(&checks, "PFC prio 3").status, Status::Warn);
        let checks = judge_device(&facts(), None, &spec("pfc_priority = 3\necn = true"));
        assert_eq!(
            checks.iter().filter(|c| c.name.starts_with("ECN")).count(),
            2
        );
    }

    #[test]
    fn a_rocev1_gid_fails_unless_allowed() {
        let mut f = facts();
        f.gid.gid_type = "RoCEv1".into();
        assert_eq!(
            find(&judge_device(&f, None, &spec("")), "RoCEv2").status,
            Status::Fail
        );
        assert!(judge_device(&f, None, &spec("require_rocev2_gid = false")).is_empty());
    }
}
