//! Where this process stands in a multi-node run: its node rank, the node
//! count and the rendezvous address, from flags or from the environment an
//! existing launcher sets. infab never starts processes on other hosts; it
//! is started once per node by torchrun-style wrappers, Slurm's `srun` or
//! Open MPI's `mpirun`.
//!
//! Precedence: flags, then `NODE_RANK`/`NNODES`/`MASTER_ADDR`/`MASTER_PORT`
//! (torchrun style), then Slurm (`SLURM_NODEID`, `SLURM_NNODES`, first host
//! of `SLURM_JOB_NODELIST`), then Open MPI (`OMPI_COMM_WORLD_RANK`/`SIZE`,
//! one process per node), else a single node.

mod slurm;

use std::fmt;

pub use slurm::first_host;

/// The default rendezvous port on node 0.
pub const DEFAULT_MASTER_PORT: u16 = 18712;

/// Which source gave the node's identity.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LaunchSource {
    /// `--node-rank`/`--nnodes` flags.
    Flags,
    /// torchrun-style environment.
    Torchrun,
    /// Slurm environment.
    Slurm,
    /// Open MPI environment.
    OpenMpi,
    /// Nothing: one node.
    SingleNode,
}

impl fmt::Display for LaunchSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            LaunchSource::Flags => "flags",
            LaunchSource::Torchrun => "torchrun-style env (NODE_RANK/NNODES)",
            LaunchSource::Slurm => "Slurm env (SLURM_NODEID/SLURM_NNODES)",
            LaunchSource::OpenMpi => "Open MPI env (OMPI_COMM_WORLD_RANK/SIZE)",
            LaunchSource::SingleNode => "single node",
        })
    }
}

/// What the flags say (None = not given).
#[derive(Debug, Clone, Default)]
pub struct LaunchFlags {
    /// `--node-rank`.
    pub node_rank: Option<u32>,
    /// `--nnodes`.
    pub nnodes: Option<u32>,
    /// `--master HOST[:PORT]`.
    pub master: Option<String>,
}

/// This process's place in the run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LaunchInfo {
    /// 0-based node index.
    pub node_rank: u32,
    /// Number of nodes.
    pub nnodes: u32,
    /// Rendezvous host (None: take node 0's topology address, or local).
    pub master_host: Option<String>,
    /// Rendezvous port.
    pub master_port: u16,
    /// Where the identity came from.
    pub source: LaunchSource,
}

/// Identity that cannot be worked out, with the fix.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct LaunchError(pub String);

fn number(env: &dyn Fn(&str) -> Option<String>, name: &str) -> Result<Option<u32>, LaunchError> {
    match env(name) {
        None => Ok(None),
        Some(text) => text.trim().parse::<u32>().map(Some).map_err(|_| {
            LaunchError(format!(
                "environment variable {name}={text:?} is not a node number"
            ))
        }),
    }
}

fn split_host_port(text: &str) -> Result<(String, Option<u16>), LaunchError> {
    let text = text.trim();
    if let Some(rest) = text.strip_prefix('[') {
        // [v6]:port
        let (host, tail) = rest
            .split_once(']')
            .ok_or_else(|| LaunchError(format!("master address {text:?}: unclosed '['")))?;
        let port = match tail.strip_prefix(':') {
            Some(p) => Some(parse_port(p, text)?),
            None => None,
        };
        return Ok((host.to_string(), port));
    }
    match text.rsplit_once(':') {
        Some((host, port)) if !host.contains(':') => {
            Ok((host.to_string(), Some(parse_port(port, text)?)))
        }
        _ => Ok((text.to_string(), None)),
    }
}

fn parse_port(text: &str, whole: &str) -> Result<u16, LaunchError> {
    text.parse::<u16>()
        .ok()
        .filter(|&p| p != 0)
        .ok_or_else(|| LaunchError(format!("master address {whole:?}: bad port {text:?}")))
}

/// Works out the node's identity from `flags` and the environment `env`.
pub fn resolve(
    flags: &LaunchFlags,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<LaunchInfo, LaunchError> {
    let (mut host, mut port) = match &flags.master {
        Some(m) => {
            let (h, p) = split_host_port(m)?;
            (Some(h), p)
        }
        None => (None, None),
    };
    let env_port = match env("MASTER_PORT") {
        Some(p) => Some(parse_port(p.trim(), &p)?),
        None => None,
    };
    let (node_rank, nnodes, source) = if flags.node_rank.is_some() || flags.nnodes.is_some() {
        (flags.node_rank, flags.nnodes, LaunchSource::Flags)
    } else if env("NODE_RANK").is_some() || env("NNODES").is_some() {
        (
            number(env, "NODE_RANK")?,
            number(env, "NNODES")?,
            LaunchSource::Torchrun,
        )
    } else if env("SLURM_NODEID").is_some() {
        if host.is_none() && env("MASTER_ADDR").is_none() {
            host = env("SLURM_JOB_NODELIST")
                .or_else(|| env("SLURM_NODELIST"))
                .and_then(|list| first_host(&list));
        }
        (
            number(env, "SLURM_NODEID")?,
            number(env, "SLURM_NNODES")?,
            LaunchSource::Slurm,
        )
    } else if env("OMPI_COMM_WORLD_RANK").is_some() {
        (
            number(env, "OMPI_COMM_WORLD_RANK")?,
            number(env, "OMPI_COMM_WORLD_SIZE")?,
            LaunchSource::OpenMpi,
        )
    } else {
        (Some(0), Some(1), LaunchSource::SingleNode)
    };
    if host.is_none() {
        host = env("MASTER_ADDR").map(|h| h.trim().to_string());
    }
    port = port.or(env_port);
    let node_rank = node_rank.unwrap_or(0);
    let nnodes = match nnodes {
        Some(n) => n,
        None if node_rank == 0 && source == LaunchSource::Flags => 1,
        None => {
            return Err(LaunchError(format!(
                "the node count is unknown ({source} gave a node rank only); pass --nnodes N"
            )))
        }
    };
    if nnodes == 0 {
        return Err(LaunchError("--nnodes must be at least 1".into()));
    }
    if node_rank >= nnodes {
        return Err(LaunchError(format!(
            "node rank {node_rank} is not below the node count {nnodes} (from {source})"
        )));
    }
    Ok(LaunchInfo {
        node_rank,
        nnodes,
        master_host: host.filter(|h| !h.is_empty()),
        master_port: port.unwrap_or(DEFAULT_MASTER_PORT),
        source,
    })
}

/// [`resolve`] against the process environment.
pub fn resolve_from_process(flags: &LaunchFlags) -> Result<LaunchInfo, LaunchError> {
    resolve(flags, &|name| std::env::var(name).ok())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn with_env(vars: &[(&str, &str)], flags: &LaunchFlags) -> Result<LaunchInfo, LaunchError> {
        let map: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        resolve(flags, &move |name| map.get(name).cloned())
    }

    #[test]
    fn single_node_by_default() {
        let info = with_env(&[], &LaunchFlags::default()).unwrap();
        assert_eq!((info.node_rank, info.nnodes), (0, 1));
        assert_eq!(info.source, LaunchSource::SingleNode);
        assert_eq!(info.master_port, DEFAULT_MASTER_PORT);
    }

    #[test]
    fn flags_win_over_env() {
        let flags = LaunchFlags {
            node_rank: Some(1),
            nnodes: Some(2),
            master: Some("198.18.0.1:19000".into()),
        };
        let info = with_env(&[("NODE_RANK", "5"), ("NNODES", "9")], &flags).unwrap();
        assert_eq!((info.node_rank, info.nnodes), (1, 2));
        assert_eq!(info.master_host.as_deref(), Some("198.18.0.1"));
        assert_eq!(info.master_port, 19000);
        assert_eq!(info.source, LaunchSource::Flags);
    }

    #[test]
    fn torchrun_slurm_and_openmpi() {
        let t = with_env(
            &[
                ("NODE_RANK", "1"),
                ("NNODES", "2"),
                ("MASTER_ADDR", "198.18.0.1"),
                ("MASTER_PORT", "29500"),
            ],
            &LaunchFlags::default(),
        )
        .unwrap();
        assert_eq!((t.node_rank, t.nnodes, t.master_port), (1, 2, 29500));
        assert_eq!(t.source, LaunchSource::Torchrun);
        let s = with_env(
            &[
                ("SLURM_NODEID", "2"),
                ("SLURM_NNODES", "4"),
                ("SLURM_JOB_NODELIST", "gpu[07-10],login1"),
            ],
            &LaunchFlags::default(),
        )
        .unwrap();
        assert_eq!((s.node_rank, s.nnodes), (2, 4));
        assert_eq!(s.master_host.as_deref(), Some("gpu07"));
        let o = with_env(
            &[("OMPI_COMM_WORLD_RANK", "0"), ("OMPI_COMM_WORLD_SIZE", "3")],
            &LaunchFlags::default(),
        )
        .unwrap();
        assert_eq!((o.node_rank, o.nnodes), (0, 3));
        assert_eq!(o.master_host, None);
    }

    #[test]
    fn bad_identity_is_explained() {
        let err = with_env(&[("NODE_RANK", "x")], &LaunchFlags::default()).unwrap_err();
        assert!(err.0.contains("NODE_RANK"));
        let err = with_env(&[("NODE_RANK", "1")], &LaunchFlags::default()).unwrap_err();
        assert!(err.0.contains("--nnodes"));
        let flags = LaunchFlags {
            node_rank: Some(2),
            nnodes: Some(2),
            master: None,
        };
        assert!(with_env(&[], &flags).unwrap_err().0.contains("not below"));
        let flags = LaunchFlags {
            master: Some("h:0".into()),
            ..LaunchFlags::default()
        };
        assert!(with_env(&[], &flags).is_err());
    }
}
