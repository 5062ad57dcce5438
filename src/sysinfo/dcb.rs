//! PFC and ECN settings of a netdev, where the system exposes them:
//!
//! - PFC: iproute2's `dcb pfc show dev <nd> prio-pfc` (DCB netlink, any
//!   driver that implements it).
//! - ECN: mlx5's sysfs knobs `/sys/class/net/<nd>/ecn/roce_np/enable/<prio>`
//!   (notification point) and `.../roce_rp/enable/<prio>` (reaction point).
//!
//! Anything else is "unknown" with the reason. Vendor tools (mlnx_qos,
//! niccli) and MLNX_OFED's `qos/` sysfs folder are not parsed: their
//! formats differ by release, and a wrong PFC answer is worse than none.

use std::fs;

use crate::results::PrioritySetting;

use super::command::{run_with_timeout, COMMAND_TIMEOUT};
use super::root::{read_trimmed, HostRoot};

/// The priorities with PFC enabled on `netdev`.
pub(crate) fn read_pfc(root: &HostRoot, netdev: Option<&str>) -> PrioritySetting {
    let Some(nd) = netdev else {
        return PrioritySetting::unknown("no netdev for this port");
    };
    if !root.run_commands {
        return PrioritySetting::unknown("`dcb pfc show` not run (commands off)");
    }
    let args = ["pfc", "show", "dev", nd, "prio-pfc"];
    match run_with_timeout("dcb", &args, COMMAND_TIMEOUT) {
        Ok(text) => match parse_prio_pfc(&text) {
            Some(prios) => PrioritySetting {
                enabled_prios: Some(prios),
                source: format!("dcb {}", args.join(" ")),
            },
            None => PrioritySetting::unknown(format!(
                "`dcb {}`: no prio-pfc line in {:?}",
                args.join(" "),
                text.trim()
            )),
        },
        Err(why) => PrioritySetting::unknown(why),
    }
}

/// "prio-pfc 0:off 1:on 2:off 3:on ..." → [1, 3].
fn parse_prio_pfc(text: &str) -> Option<Vec<u8>> {
    let line = text
        .lines()
        .find_map(|l| l.trim().strip_prefix("prio-pfc"))?;
    let mut on = Vec::new();
    for item in line.split_whitespace() {
        let (prio, state) = item.split_once(':')?;
        let prio: u8 = prio.parse().ok()?;
        match state {
            "on" => on.push(prio),
            "off" => {}
            _ => return None,
        }
    }
    on.sort_unstable();
    Some(on)
}

/// Which side of DCQCN an ECN knob belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum EcnPoint {
    /// The receiver, which turns CE marks into CNPs (`roce_np`).
    Notification,
    /// The sender, which slows down on CNPs (`roce_rp`).
    Reaction,
}

/// The priorities with ECN enabled at `point` on `netdev` (mlx5 sysfs).
pub(crate) fn read_ecn(root: &HostRoot, netdev: Option<&str>, point: EcnPoint) -> PrioritySetting {
    let Some(nd) = netdev else {
        return PrioritySetting::unknown("no netdev for this port");
    };
    let dir = root.netdev(nd).join("ecn").join(match point {
        EcnPoint::Notification => "roce_np",
        EcnPoint::Reaction => "roce_rp",
    });
    let enable = dir.join("enable");
    let entries = match fs::read_dir(&enable) {
        Ok(e) => e,
        Err(_) => {
            return PrioritySetting::unknown(format!(
                "{} absent: the driver exposes no per-priority ECN knobs in sysfs (mlx5 does)",
                enable.display()
            ))
        }
    };
    let mut on = Vec::new();
    let mut read_any = false;
    for entry in entries.filter_map(|e| e.ok()) {
        let Ok(prio) = entry.file_name().to_string_lossy().parse::<u8>() else {
            continue;
        };
        match read_trimmed(&entry.path()).as_deref() {
            Ok("1") => on.push(prio),
            Ok("0") => {}
            Ok(other) => {
                return PrioritySetting::unknown(format!(
                    "{}: expected 0 or 1, read {other:?}",
                    entry.path().display()
                ))
            }
            Err(why) => return PrioritySetting::unknown(why.clone()),
        }
        read_any = true;
    }
    if !read_any {
        return PrioritySetting::unknown(format!("{}: no priority files", enable.display()));
    }
    on.sort_unstable();
    PrioritySetting {
        enabled_prios: Some(on),
        source: format!("{}/<prio>", enable.display()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dcb_prio_pfc_parses() {
        let text = "prio-pfc 0:off 1:off 2:off 3:on 4:off 5:off 6:off 7:off\n";
        assert_eq!(parse_prio_pfc(text), Some(vec![3]));
        let full = "pfc-cap 8 macsec-bypass off delay 4096\nprio-pfc 0:on 1:off 2:off 3:on 4:off 5:off 6:off 7:off\n";
        assert_eq!(parse_prio_pfc(full), Some(vec![0, 3]));
        assert_eq!(parse_prio_pfc("prio-pfc 0:off 1:off"), Some(vec![]));
        assert_eq!(parse_prio_pfc("prio-pfc 0:maybe"), None);
        assert_eq!(parse_prio_pfc("Attribute not supported"), None);
    }

    #[test]
    fn ecn_knobs_from_sysfs() {
        let dir = tempfile::tempdir().unwrap();
        let root = HostRoot::under(dir.path());
        let np = root.netdev("eth2").join("ecn/roce_np/enable");
        fs::create_dir_all(&np).unwrap();
        for p in 0..8 {
            fs::write(np.join(p.to_string()), if p == 3 { "1\n" } else { "0\n" }).unwrap();
        }
        let got = read_ecn(&root, Some("eth2"), EcnPoint::Notification);
        assert_eq!(got.enabled_prios, Some(vec![3]));
        assert!(
            got.source.ends_with("roce_np/enable/<prio>"),
            "{}",
            got.source
        );

        let rp = read_ecn(&root, Some("eth2"), EcnPoint::Reaction);
        assert_eq!(rp.enabled_prios, None);
        assert!(rp.source.contains("absent"), "{}", rp.source);

        fs::write(np.join("5"), "yes").unwrap();
        let bad = read_ecn(&root, Some("eth2"), EcnPoint::Notification);
        assert_eq!(bad.enabled_prios, None);
        assert!(bad.source.contains("expected 0 or 1"), "{}", bad.source);

        let none = read_ecn(&root, None, EcnPoint::Notification);
        assert_eq!(none.enabled_prios, None);
        let pfc = read_pfc(&root, Some("eth2"));
        assert_eq!(pfc.enabled_prios, None);
        assert!(pfc.source.contains("commands off"));
    }
}
