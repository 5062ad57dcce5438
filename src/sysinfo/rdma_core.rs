//! The rdma-core version: from the package manager when one knows it
//! (Debian/Ubuntu split rdma-core into libibverbs1, ibverbs-providers, ...;
//! RHEL/SUSE ship `rdma-core` or `libibverbs`), else from the file name of
//! `libibverbs.so.1.<abi>.<rdma-core version>`, else "unknown".

use std::fs;

use crate::results::UNKNOWN;

use super::command::{run_with_timeout, COMMAND_TIMEOUT};
use super::root::HostRoot;

/// (version, where it came from); "unknown" with the reasons tried.
pub(crate) fn rdma_core_version(root: &HostRoot, notes: &mut Vec<String>) -> (String, String) {
    let mut tried = Vec::new();
    if root.run_commands {
        for package in ["rdma-core", "libibverbs1", "libibverbs"] {
            let dpkg = run_with_timeout(
                "dpkg-query",
                &["-W", "-f", "${Version}", package],
                COMMAND_TIMEOUT,
            );
            match dpkg {
                Ok(v) if !v.trim().is_empty() => {
                    return (
                        debian_upstream(v.trim()),
                        format!("dpkg-query -W {package}"),
                    );
                }
                Ok(_) => tried.push(format!("dpkg-query {package}: empty")),
                Err(why) => tried.push(why),
            }
        }
        for package in ["rdma-core", "libibverbs"] {
            match run_with_timeout(
                "rpm",
                &["-q", "--qf", "%{VERSION}", package],
                COMMAND_TIMEOUT,
            ) {
                Ok(v) if !v.trim().is_empty() => {
                    return (v.trim().to_string(), format!("rpm -q {package}"));
                }
                Ok(_) => tried.push(format!("rpm {package}: empty")),
                Err(why) => tried.push(why),
            }
        }
    } else {
        tried.push("package managers not asked (commands off)".to_string());
    }
    for dir in &root.lib_dirs {
        let Ok(entries) = fs::read_dir(dir) else {
            continue;
        };
        let mut found: Vec<String> = entries
            .filter_map(|e| e.ok())
            .filter_map(|e| version_from_soname(&e.file_name().to_string_lossy()))
            .collect();
        found.sort();
        if let Some(v) = found.pop() {
            return (v, format!("libibverbs.so file name in {}", dir.display()));
        }
    }
    tried.push("no libibverbs.so.1.<abi>.<version> in the library folders".to_string());
    notes.push(format!("rdma-core version: {}", tried.join("; ")));
    (UNKNOWN.to_string(), tried.join("; "))
}

/// "44.0-2" → "44.0"; "1:50.0-1ubuntu1" → "50.0".
fn debian_upstream(version: &str) -> String {
    let no_epoch = version.split_once(':').map_or(version, |(_, v)| v);
    no_epoch
        .rsplit_once('-')
        .map_or(no_epoch, |(v, _)| v)
        .to_string()
}

/// "libibverbs.so.1.14.44.0" → "44.0" (the soname's last two parts are the
/// rdma-core release).
fn version_from_soname(name: &str) -> Option<String> {
    let rest = name.strip_prefix("libibverbs.so.1.")?;
    let parts: Vec<&str> = rest.split('.').collect();
    if parts.len() != 3 || !parts.iter().all(|p| p.parse::<u32>().is_ok()) {
        return None;
    }
    Some(format!("{}.{}", parts[1], parts[2]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_parse() {
        assert_eq!(debian_upstream("44.0-2"), "44.0");
        assert_eq!(debian_upstream("1:50.0-1ubuntu1"), "50.0");
        assert_eq!(debian_upstream("39.0"), "39.0");
        assert_eq!(
            version_from_soname("libibverbs.so.1.14.44.0").as_deref(),
            Some("44.0")
        );
        assert_eq!(version_from_soname("libibverbs.so.1"), None);
        assert_eq!(version_from_soname("libibverbs.so.1.14.x.0"), None);
    }
}
