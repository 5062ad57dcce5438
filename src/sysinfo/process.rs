//! This process's footprint, for soak samples (IETF 13.2): resident, pinned
//! and locked memory from `/proc/self/status`, and the RDMA objects the
//! kernel holds for this process (PDs, CQs, QPs, MRs and their bytes) from
//! one batched `rdma -j resource show` call, filtered by our pid.
//!
//! The kernel's view is the one that matters for leak detection: it counts
//! what is really registered and pinned, whatever infab believes it freed.

use serde_json::Value;

use super::command::{run_with_input, COMMAND_TIMEOUT};
use crate::results::{ProcessResources, RdmaResources};

/// The `rdma` batch that lists every object kind a soak tracks.
const RDMA_BATCH: &str = "resource show pd\nresource show cq\nresource show qp\nresource show mr\n";

/// Samples this process; `with_rdma` adds the `rdma` tool's object counts
/// (one exec, up to the command timeout). Never fails: what cannot be read
/// is named in `unavailable`.
pub fn sample_process(with_rdma: bool) -> ProcessResources {
    let mut out = ProcessResources::default();
    match std::fs::read_to_string("/proc/self/status") {
        Ok(text) => {
            out.rss_bytes = status_kib(&text, "VmRSS").map(|k| k * 1024);
            out.pinned_bytes = status_kib(&text, "VmPin").map(|k| k * 1024);
            out.locked_bytes = status_kib(&text, "VmLck").map(|k| k * 1024);
        }
        Err(err) => out
            .unavailable
            .push(format!("memory: /proc/self/status: {err}")),
    }
    if with_rdma {
        match run_with_input(
            "rdma",
            &["-j", "-b", "-"],
            Some(RDMA_BATCH),
            COMMAND_TIMEOUT,
        )
        .and_then(|text| rdma_resources(&text, std::process::id()))
        {
            Ok(rdma) => out.rdma = Some(rdma),
            Err(why) => out.unavailable.push(format!("rdma objects: {why}")),
        }
    }
    out
}

/// A `Key:   1234 kB` line of /proc/PID/status, in KiB.
fn status_kib(text: &str, key: &str) -> Option<u64> {
    text.lines().find_map(|line| {
        let rest = line.strip_prefix(key)?.strip_prefix(':')?;
        rest.split_whitespace().next()?.parse().ok()
    })
}

/// Counts the objects of `pid` in the output of the batch (one JSON array
/// per command, back to back). An object's kind is told by its key: `pdn`
/// for a PD with no other key of the others, `cqn`, `lqpn`, `mrn`.
fn rdma_resources(text: &str, pid: u32) -> Result<RdmaResources, String> {
    let mut out = RdmaResources::default();
    let mut arrays = 0;
    for value in serde_json::Deserializer::from_str(text).into_iter::<Value>() {
        let value = value.map_err(|e| format!("`rdma -j resource show` printed bad JSON: {e}"))?;
        arrays += 1;
        for object in value.as_array().into_iter().flatten() {
            if object.get("pid").and_then(Value::as_u64) != Some(u64::from(pid)) {
                continue;
            }
            if object.get("lqpn").is_some() {
                out.qps += 1;
                let state = object.get("state").and_then(Value::as_str).unwrap_or("");
                if matches!(state, "ERR" | "SQE") {
                    out.qps_in_error += 1;
                }
            } else if object.get("mrn").is_some() || object.get("mrlen").is_some() {
                out.mrs += 1;
                out.mr_bytes += object.get("mrlen").and_then(Value::as_u64).unwrap_or(0);
            } else if object.get("cqn").is_some() || object.get("cqe").is_some() {
                out.cqs += 1;
            } else if object.get("pdn").is_some() {
                out.pds += 1;
            }
        }
    }
    if arrays == 0 {
        return Err("`rdma -j resource show` printed nothing (no RDMA device?)".into());
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_lines_in_kib() {
        let text = "Name:\tinfab\nVmPin:\t    2048 kB\nVmRSS:\t   10240 kB\nVmLck:\t       0 kB\n";
        assert_eq!(status_kib(text, "VmRSS"), Some(10240));
        assert_eq!(status_kib(text, "VmPin"), Some(2048));
        assert_eq!(status_kib(text, "VmLck"), Some(0));
        assert_eq!(status_kib(text, "VmSwap"), None);
    }

    #[test]
    fn objects_of_our_pid_are_counted_by_kind() {
        // the shape iproute2 prints: one array per batch command
        let text = r#"[{"ifindex":3,"ifname":"rxe0","pdn":1,"local_dma_lkey":0,"users":3,"pid":7,"comm":"infab"},{"ifindex":3,"ifname":"rxe0","pdn":2,"users":1,"pid":8,"comm":"other"}]
[{"ifindex":3,"ifname":"rxe0","cqe":64,"users":2,"adaptive-moderation":"on","cqn":1,"pid":7,"comm":"infab"}]
[{"ifindex":3,"ifname":"rxe0","port":1,"lqpn":17,"rqpn":18,"type":"RC","state":"RTS","pdn":1,"pid":7,"comm":"infab"},{"ifindex":3,"ifname":"rxe0","port":1,"lqpn":19,"type":"RC","state":"ERR","pdn":1,"pid":7,"comm":"infab"},{"ifindex":3,"ifname":"rxe0","port":1,"lqpn":1,"type":"GSI","state":"RTS","comm":"[ib_core]"}]
[{"ifindex":3,"ifname":"rxe0","mrn":4,"mrlen":65536,"pdn":1,"pid":7,"comm":"infab"},{"ifindex":3,"ifname":"rxe0","mrn":5,"mrlen":4096,"pdn":1,"pid":7,"comm":"infab"}]
"#;
        let r = rdma_resources(text, 7).unwrap();
        assert_eq!(
            r,
            RdmaResources {
                pds: 1,
                cqs: 1,
                qps: 2,
                qps_in_error: 1,
                mrs: 2,
                mr_bytes: 69632,
            }
        );
    }

    #[test]
    fn bad_or_empty_output_is_a_reason() {
        assert!(rdma_resources("", 1).is_err());
        assert!(rdma_resources("[{", 1).unwrap_err().contains("bad JSON"));
    }

    #[test]
    fn this_process_has_a_resident_size() {
        let r = sample_process(false);
        assert!(r.rss_bytes.unwrap() > 0);
        assert!(r.rdma.is_none());
    }
}
