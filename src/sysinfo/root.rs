//! Where the host's files are: the roots of /sys, /proc, /etc and the
//! library folders, and whether commands may run. Also the small file
//! readers every other reader uses; each turns a failure into a reason
//! string instead of an error.

use std::fs;
use std::path::{Path, PathBuf};

/// The file-system roots the readers use, so tests can point them at a
/// fixture tree.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostRoot {
    /// sysfs, normally `/sys`.
    pub sys: PathBuf,
    /// procfs, normally `/proc`.
    pub proc: PathBuf,
    /// The configuration folder holding `os-release`, normally `/etc`.
    pub etc: PathBuf,
    /// Folders searched for `libibverbs.so.*` when no package manager knows
    /// the rdma-core version.
    pub lib_dirs: Vec<PathBuf>,
    /// Whether external commands (`ethtool`, `dcb`, `dpkg-query`, `rpm`) may
    /// run. Off for fixture trees: their output would describe the real host.
    pub run_commands: bool,
}

impl HostRoot {
    /// The running host: `/sys`, `/proc`, `/etc`, the usual library folders,
    /// commands allowed.
    pub fn live() -> Self {
        Self {
            sys: PathBuf::from("/sys"),
            proc: PathBuf::from("/proc"),
            etc: PathBuf::from("/etc"),
            lib_dirs: [
                "/usr/lib/x86_64-linux-gnu",
                "/usr/lib/aarch64-linux-gnu",
                "/usr/lib64",
                "/usr/lib",
            ]
            .iter()
            .map(PathBuf::from)
            .collect(),
            run_commands: true,
        }
    }

    /// A fixture tree: `<dir>/sys`, `<dir>/proc`, `<dir>/etc`,
    /// `<dir>/usr/lib`; commands off.
    pub fn under(dir: &Path) -> Self {
        Self {
            sys: dir.join("sys"),
            proc: dir.join("proc"),
            etc: dir.join("etc"),
            lib_dirs: vec![dir.join("usr/lib")],
            run_commands: false,
        }
    }

    /// `<sys>/class/infiniband/<device>`.
    pub(crate) fn ib_device(&self, device: &str) -> PathBuf {
        self.sys.join("class/infiniband").join(device)
    }

    /// `<sys>/class/infiniband/<device>/ports/<port>`.
    pub(crate) fn ib_port(&self, device: &str, port: u8) -> PathBuf {
        self.ib_device(device).join("ports").join(port.to_string())
    }

    /// `<sys>/class/net/<netdev>`.
    pub(crate) fn netdev(&self, netdev: &str) -> PathBuf {
        self.sys.join("class/net").join(netdev)
    }
}

/// The file's content with surrounding whitespace trimmed, or why not.
pub(crate) fn read_trimmed(path: &Path) -> Result<String, String> {
    match fs::read(path) {
        Ok(bytes) => Ok(String::from_utf8_lossy(&bytes).trim().to_string()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            Err(format!("{}: absent", path.display()))
        }
        Err(e) => Err(format!("{}: unreadable ({e})", path.display())),
    }
}

/// The file parsed as `T`, or why not.
pub(crate) fn read_parsed<T: std::str::FromStr>(path: &Path) -> Result<T, String> {
    let text = read_trimmed(path)?;
    text.parse()
        .map_err(|_| format!("{}: not a number ({text:?})", path.display()))
}

/// Reads a text field: the value, or "unknown" with the reason pushed to
/// `notes`.
pub(crate) fn text_or_unknown(path: &Path, notes: &mut Vec<String>) -> String {
    match read_trimmed(path) {
        Ok(v) if !v.is_empty() => v,
        Ok(_) => {
            notes.push(format!("{}: empty", path.display()));
            crate::results::UNKNOWN.to_string()
        }
        Err(why) => {
            notes.push(why);
            crate::results::UNKNOWN.to_string()
        }
    }
}

/// Reads a number: the value, or `None` with the reason pushed to `notes`.
pub(crate) fn number_or_none<T: std::str::FromStr>(
    path: &Path,
    notes: &mut Vec<String>,
) -> Option<T> {
    read_parsed(path).map_err(|why| notes.push(why)).ok()
}

/// The last path component of a symlink's target (`device/driver` →
/// "mlx5_core", `device` → "0000:3b:00.0"), or why not.
pub(crate) fn link_name(path: &Path) -> Result<String, String> {
    let target = fs::read_link(path).map_err(|e| {
        if e.kind() == std::io::ErrorKind::NotFound {
            format!("{}: absent", path.display())
        } else {
            format!("{}: not a readable link ({e})", path.display())
        }
    })?;
    target
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .ok_or_else(|| {
            format!(
                "{}: link to {} has no name",
                path.display(),
                target.display()
            )
        })
}

/// A CPU or node list such as "0-3,8,10-11" → how many ids it names.
pub(crate) fn count_id_list(list: &str) -> Option<u32> {
    let mut n = 0u32;
    for part in list.trim().split(',').filter(|p| !p.is_empty()) {
        match part.split_once('-') {
            Some((a, b)) => {
                let (a, b): (u32, u32) = (a.trim().parse().ok()?, b.trim().parse().ok()?);
                n = n.checked_add(b.checked_sub(a)?.checked_add(1)?)?;
            }
            None => {
                part.trim().parse::<u32>().ok()?;
                n = n.checked_add(1)?;
            }
        }
    }
    Some(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn id_lists_count() {
        assert_eq!(count_id_list("0"), Some(1));
        assert_eq!(count_id_list("0-3\n"), Some(4));
        assert_eq!(count_id_list("0-3,8,10-11"), Some(7));
        assert_eq!(count_id_list(""), Some(0));
        assert_eq!(count_id_list("3-1"), None);
        assert_eq!(count_id_list("x"), None);
    }

    #[test]
    fn missing_and_garbage_files_give_reasons() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("nope");
        assert!(read_trimmed(&missing).unwrap_err().contains("absent"));
        let garbage = dir.path().join("garbage");
        fs::write(&garbage, "12abc\n").unwrap();
        assert!(read_parsed::<u64>(&garbage)
            .unwrap_err()
            .contains("not a number"));
        let mut notes = Vec::new();
        assert_eq!(text_or_unknown(&missing, &mut notes), "unknown");
        assert_eq!(number_or_none::<u32>(&garbage, &mut notes), None);
        assert_eq!(notes.len(), 2);
        // A directory where a file is expected: unreadable, not a panic.
        assert!(read_trimmed(dir.path()).unwrap_err().contains("unreadable"));
    }
}
