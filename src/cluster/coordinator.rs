//! The coordinator: node 0's side of the rendezvous. It waits for every
//! node to join (naming the ones that do not), hands out the rank table,
//! measures each node's clock offset, and then drives the nodes in lock
//! step: broadcast a command, gather every node's reply within a deadline.

use std::net::TcpListener;
use std::time::{Duration, Instant};

use crate::control::{estimate_offset, monotonic_ns, Channel, ClockOffset, ControlError};

use super::protocol::{ClusterMessage, Join, RankInfo, RoleRanks, CLUSTER_PROTOCOL_VERSION};
use super::ClusterError;

/// What the coordinator expects of the nodes.
#[derive(Debug, Clone)]
pub struct Expectation {
    /// Node count.
    pub nnodes: u32,
    /// Token nodes must present.
    pub token: Option<String>,
    /// The test every node must run.
    pub test_id: String,
    /// How long to wait for every node to join.
    pub join_timeout: Duration,
    /// Node names from the topology (index = node rank), for messages.
    pub names: Vec<String>,
    /// The rendezvous address, for messages.
    pub master: String,
}

/// One joined node.
#[derive(Debug)]
pub struct NodeLink {
    /// Its node rank.
    pub node: u32,
    /// What it said when it joined.
    pub join: Join,
    /// Its clock minus the coordinator's.
    pub offset: ClockOffset,
    channel: Channel,
}

/// The coordinator of a run.
#[derive(Debug)]
pub struct Coordinator {
    /// The nodes, by node rank.
    pub nodes: Vec<NodeLink>,
    /// Every rank of the run.
    pub ranks: Vec<RankInfo>,
}

fn node_list(nodes: &[u32], names: &[String]) -> String {
    if nodes.is_empty() {
        return "none".into();
    }
    nodes
        .iter()
        .map(|&n| match names.get(n as usize) {
            Some(name) => format!("{n} ({name})"),
            None => n.to_string(),
        })
        .collect::<Vec<_>>()
        .join(", ")
}

impl Coordinator {
    /// Accepts joins on `listener` until all `expect.nnodes` nodes are in,
    /// then sends the rank table and measures clock offsets.
    pub fn gather(
        listener: TcpListener,
        expect: &Expectation,
    ) -> Result<Coordinator, ClusterError> {
        let deadline = Instant::now() + expect.join_timeout;
        listener
            .set_nonblocking(true)
            .map_err(|cause| ClusterError::Bind {
                addr: expect.master.clone(),
                cause,
            })?;
        let mut links: Vec<NodeLink> = Vec::new();
        while links.len() < expect.nnodes as usize {
            let stream = match listener.accept() {
                Ok((stream, _)) => stream,
                Err(err) if err.kind() == std::io::ErrorKind::WouldBlock => {
                    if Instant::now() >= deadline {
                        let joined: Vec<u32> = links.iter().map(|l| l.node).collect();
                        let missing: Vec<u32> =
                            (0..expect.nnodes).filter(|n| !joined.contains(n)).collect();
                        let error = ClusterError::NodeMissing {
                            nodes: node_list(&missing, &expect.names),
                            master: expect.master.clone(),
                            waited_s: expect.join_timeout.as_secs_f64(),
                            joined: node_list(&joined, &expect.names),
                        };
                        abort_all(&mut links, &error.to_string());
                        return Err(error);
                    }
                    std::thread::sleep(Duration::from_millis(20));
                    continue;
                }
                Err(cause) => {
                    return Err(ClusterError::Bind {
                        addr: expect.master.clone(),
                        cause,
                    })
                }
            };
            let _ = stream.set_nonblocking(false);
            let mut channel = Channel::new(stream);
            // a node host that vanishes fails its link in seconds
            if let Err(err) = channel.keep_alive() {
                log::warn!("{err}; a vanished node is noticed only at the reply deadline");
            }
            let join = match channel.recv::<ClusterMessage>(Duration::from_secs(10), "Join") {
                Ok(ClusterMessage::Join(join)) => *join,
                Ok(other) => {
                    log::warn!(
                        "ignored a connection from {} that sent {} instead of Join",
                        channel.peer(),
                        other.name()
                    );
                    continue;
                }
                Err(err) => {
                    log::warn!("ignored a connection that sent no Join: {err}");
                    continue;
                }
            };
            if let Err(reason) = check_join(&join, expect, &links) {
                let _ = channel.send(&ClusterMessage::Reject {
                    reason: reason.clone(),
                });
                let error = ClusterError::NodeFailed {
                    node: join.node_rank,
                    name: join.name.clone(),
                    message: format!("refused at the rendezvous: {reason}"),
                };
                abort_all(&mut links, &error.to_string());
                return Err(error);
            }
            log::info!(
                "rendezvous: node {} ({}, {}) joined from {}",
                join.node_rank,
                join.name,
                join.hostname,
                channel.peer()
            );
            links.push(NodeLink {
                node: join.node_rank,
                join,
                offset: ClockOffset::same_host(),
                channel,
            });
        }
        links.sort_by_key(|l| l.node);
        let ranks = rank_table(&links);
        let mut coordinator = Coordinator {
            nodes: links,
            ranks,
        };
        let table = coordinator.ranks.clone();
        coordinator.broadcast("sending the rank table", |_| ClusterMessage::Welcome {
            ranks: table.clone(),
        })?;
        coordinator.measure_clocks()?;
        Ok(coordinator)
    }

    fn measure_clocks(&mut self) -> Result<(), ClusterError> {
        let own_boot = crate::suite::boot_id();
        for link in &mut self.nodes {
            if !own_boot.is_empty() && link.join.boot_id == own_boot {
                link.offset = ClockOffset::same_host();
                continue;
            }
            let mut probes = Vec::with_capacity(32);
            for _ in 0..32 {
                let sent = monotonic_ns();
                let reply = link
                    .channel
                    .send(&ClusterMessage::ClockProbe {
                        t_coordinator_ns: sent,
                    })
                    .and_then(|_| {
                        link.channel
                            .recv::<ClusterMessage>(Duration::from_secs(10), "ClockReply")
                    })
                    .map_err(|cause| lost(link, "did not answer clock probes", cause))?;
                match reply {
                    ClusterMessage::ClockReply { t_node_ns, .. } => {
                        probes.push((sent, t_node_ns, monotonic_ns()))
                    }
                    other => return Err(unexpected(link, "ClockReply", &other)),
                }
            }
            link.offset = estimate_offset(&probes).ok_or_else(|| {
                ClusterError::Invalid(format!("node {}: no usable clock probe", link.node))
            })?;
        }
        Ok(())
    }

    /// Sends each node the message `make` builds for it.
    pub fn broadcast(
        &mut self,
        during: &str,
        make: impl Fn(&NodeLink) -> ClusterMessage,
    ) -> Result<(), ClusterError> {
        for i in 0..self.nodes.len() {
            let message = make(&self.nodes[i]);
            let link = &mut self.nodes[i];
            if let Err(cause) = link.channel.send(&message) {
                return Err(lost(link, during, cause));
            }
        }
        Ok(())
    }

    /// Collects one reply per node within `timeout` (in total), in node
    /// order. Replies are read as they arrive, from whichever node speaks
    /// first, so a node that reports an error or closes its connection
    /// fails the call at once, not after the nodes before it answered; a
    /// node that stays silent fails it at the deadline.
    pub fn collect(
        &mut self,
        expecting: &str,
        timeout: Duration,
    ) -> Result<Vec<ClusterMessage>, ClusterError> {
        let deadline = Instant::now() + timeout;
        let during = format!("while node 0 waited for {expecting}");
        let mut replies: Vec<Option<ClusterMessage>> = self.nodes.iter().map(|_| None).collect();
        while replies.iter().any(Option::is_none) {
            let left = deadline.saturating_duration_since(Instant::now());
            let waiting: Vec<usize> = (0..self.nodes.len())
                .filter(|&i| replies[i].is_none())
                .collect();
            let ready = {
                let channels: Vec<&Channel> =
                    waiting.iter().map(|&i| &self.nodes[i].channel).collect();
                readable(&channels, left)
            };
            // nothing ready by the deadline: the first silent node times out
            let ready: Vec<usize> = if ready.is_empty() {
                vec![waiting[0]]
            } else {
                ready.into_iter().map(|k| waiting[k]).collect()
            };
            for i in ready {
                let link = &mut self.nodes[i];
                let left = deadline.saturating_duration_since(Instant::now());
                match link.channel.recv::<ClusterMessage>(left, expecting) {
                    Ok(ClusterMessage::Error { message }) => {
                        return Err(ClusterError::NodeFailed {
                            node: link.node,
                            name: link.join.name.clone(),
                            message,
                        })
                    }
                    Ok(message) => replies[i] = Some(message),
                    Err(cause) => return Err(lost(link, &during, cause)),
                }
            }
        }
        Ok(replies.into_iter().flatten().collect())
    }

    /// Broadcasts `message` and expects `reply` (by name) from every node.
    pub fn round_trip(
        &mut self,
        message: ClusterMessage,
        reply: &'static str,
        timeout: Duration,
    ) -> Result<Vec<ClusterMessage>, ClusterError> {
        let during = format!("could not be sent {}", message.name());
        self.broadcast(&during, |_| message.clone())?;
        let replies = self.collect(reply, timeout)?;
        for (link, got) in self.nodes.iter().zip(&replies) {
            if got.name() != reply {
                return Err(unexpected(link, reply, got));
            }
        }
        Ok(replies)
    }

    /// Tells every node the run stopped (best effort).
    pub fn abort(&mut self, reason: &str) {
        abort_all(&mut self.nodes, reason);
    }

    /// Tells every node the run is over.
    pub fn finish(&mut self) {
        for link in &mut self.nodes {
            let _ = link.channel.send(&ClusterMessage::Finish);
        }
    }
}

/// Sends every node Abort, then ends node 0's sending on each link: a
/// node in the middle of a trial sees the close at once (its watcher
/// raises its abort) and reads the reason afterwards.
fn abort_all(links: &mut [NodeLink], reason: &str) {
    for link in links {
        let _ = link.channel.send(&ClusterMessage::Abort {
            reason: reason.to_string(),
        });
        link.channel.shutdown_send();
    }
}

/// The indices of `channels` with something to read (a message, a close or
/// an error) within `timeout`; empty when none.
fn readable(channels: &[&Channel], timeout: Duration) -> Vec<usize> {
    use rustix::event::{poll, PollFd, PollFlags, Timespec};
    let mut fds: Vec<PollFd<'_>> = channels
        .iter()
        .map(|c| PollFd::from_borrowed_fd(c.as_fd(), PollFlags::IN))
        .collect();
    let timeout = Timespec::try_from(timeout).unwrap_or(Timespec {
        tv_sec: i64::from(u32::MAX),
        tv_nsec: 0,
    });
    match poll(&mut fds, Some(&timeout)) {
        Ok(0) => Vec::new(),
        Ok(_) => (0..fds.len())
            .filter(|&i| !fds[i].revents().is_empty())
            .collect(),
        // EINTR and the like: let every waiting link try its own read
        Err(_) => (0..channels.len()).collect(),
    }
}

fn lost(link: &NodeLink, during: &str, cause: ControlError) -> ClusterError {
    ClusterError::NodeLost {
        node: link.node,
        name: link.join.name.clone(),
        during: during.to_string(),
        cause,
    }
}

fn unexpected(link: &NodeLink, expected: &str, got: &ClusterMessage) -> ClusterError {
    ClusterError::NodeFailed {
        node: link.node,
        name: link.join.name.clone(),
        message: format!(
            "broke the protocol: expected {expected}, got {}",
            got.name()
        ),
    }
}

fn check_join(join: &Join, expect: &Expectation, links: &[NodeLink]) -> Result<(), String> {
    if join.version != CLUSTER_PROTOCOL_VERSION {
        return Err(format!(
            "rendezvous protocol {} against node 0's {CLUSTER_PROTOCOL_VERSION}: run the same infab version on every node",
            join.version
        ));
    }
    if expect.token.is_some() && join.token != expect.token {
        return Err("wrong or missing --token (INFAB_TOKEN)".into());
    }
    if join.nnodes != expect.nnodes {
        return Err(format!(
            "node {} was started with {} nodes, node 0 with {}: give every node the same --nnodes",
            join.node_rank, join.nnodes, expect.nnodes
        ));
    }
    if join.node_rank >= expect.nnodes {
        return Err(format!(
            "node rank {} is not below the node count {}",
            join.node_rank, expect.nnodes
        ));
    }
    if links.iter().any(|l| l.node == join.node_rank) {
        return Err(format!(
            "two nodes claim node rank {} (the second from host {}): give each node its own rank",
            join.node_rank, join.hostname
        ));
    }
    if join.test_id != expect.test_id {
        return Err(format!(
            "node {} runs test {}, node 0 runs test {}: start every node with the same command",
            join.node_rank, join.test_id, expect.test_id
        ));
    }
    Ok(())
}

/// Numbers ranks node by node, role by role, in join order.
fn rank_table(links: &[NodeLink]) -> Vec<RankInfo> {
    let mut ranks = Vec::new();
    for link in links {
        for RoleRanks {
            role,
            ranks: count,
            device,
        } in &link.join.roles
        {
            for local in 0..*count {
                ranks.push(RankInfo {
                    rank: ranks.len() as u32,
                    node: link.node,
                    local,
                    role: *role,
                    device: device.name.clone(),
                });
            }
        }
    }
    ranks
}
