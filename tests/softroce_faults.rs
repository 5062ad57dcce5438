//! Fault tests on the SoftRoCE bed (issue "nothing lost, nothing hung"):
//! every way a peer, the link or the control port can fail, for p2p and
//! for a two-node multi-rank run. Each case asserts the exit code, the time
//! from the fault to the survivor's end, the message, and what the results
//! file kept; each prints its measured time (`--nocapture`).
//! Run: `make softroce-test` (or this binary under tests/softroce/vm.sh).

mod common;

use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc::{channel, Receiver};
use std::time::{Duration, Instant};

use common::*;
use serde_json::Value;

/// The bound the issue sets: a dead peer ends the survivor within 2 s.
const DEAD_PEER_BOUND: Duration = Duration::from_secs(2);

/// `infab serve` with its stderr lines delivered to the test.
struct Serve {
    child: Child,
    lines: Receiver<String>,
}

impl Serve {
    fn start(dev: &str, ip: &str, port: u16, extra: &[&str]) -> Serve {
        let port = port.to_string();
        // -v: serve logs each session's start, which the tests wait for
        let mut args = vec!["-v", "serve", "-d", dev, "--bind", ip, "--port", &port];
        args.extend_from_slice(extra);
        let mut child = Command::new(BIN)
            .args(&args)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let stderr = child.stderr.take().unwrap();
        let (tx, lines) = channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                eprintln!("serve: {line}");
                let _ = tx.send(line);
            }
        });
        let serve = Serve { child, lines };
        serve.wait_line("ready on", Duration::from_secs(60));
        serve
    }

    /// Waits for a stderr line containing `needle`; returns when it came.
    fn wait_line(&self, needle: &str, within: Duration) -> Instant {
        let deadline = Instant::now() + within;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) if line.contains(needle) => return Instant::now(),
                Ok(_) => {}
                Err(_) => panic!("serve did not log '{needle}' within {within:?}"),
            }
        }
    }

    /// SIGKILLs serve; returns the moment the signal was sent.
    fn kill(&mut self) -> Instant {
        let at = Instant::now();
        self.child.kill().unwrap();
        let _ = self.child.wait();
        at
    }
}

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn strings(args: &[&str]) -> Vec<String> {
    args.iter().map(|s| s.to_string()).collect()
}

/// The results file once it parses and holds at least `trials` trials.
fn wait_for_trials(json: &Path, trials: usize, within: Duration) -> Value {
    let deadline = Instant::now() + within;
    loop {
        if let Some(doc) = std::fs::read_to_string(json)
            .ok()
            .and_then(|t| serde_json::from_str::<Value>(&t).ok())
        {
            if trial_count(&doc) >= trials {
                return doc;
            }
        }
        assert!(
            Instant::now() < deadline,
            "{} had fewer than {trials} trials after {within:?}",
            json.display()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Trials in a results file, whatever the test (p2p results or pairs).
fn trial_count(doc: &Value) -> usize {
    let count = |key: &str| -> usize {
        doc[key]
            .as_array()
            .map(|a| {
                a.iter()
                    .map(|c| c["trials"].as_array().map_or(0, |t| t.len()))
                    .sum()
            })
            .unwrap_or(0)
    };
    count("results") + count("pairs")
}

/// Waits for `child` and returns its output with the time it ended.
fn ended(child: Child, what: &str) -> (Output, Instant) {
    let out = wait(child, Duration::from_secs(120), &[what]);
    (out, Instant::now())
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn p2p_client(dev: &str, peer: &str, json: &Path, extra: &[&str]) -> Vec<String> {
    let mut args = strings(&["run", "p2p", "-d", dev, "--peer", peer, "--json"]);
    args.push(json.to_str().unwrap().into());
    args.extend(strings(extra));
    args
}

/// The p2p results a failed run must still hold: valid, partial or failed,
/// the error, and every trial it recorded before the fault.
fn check_kept(json: &Path, at_least: usize) -> Value {
    let doc = check_results(json);
    assert!(
        ["partial", "failed"].contains(&doc["status"].as_str().unwrap()),
        "status {}",
        doc["status"]
    );
    assert!(doc["error"].is_string(), "the file says why it stopped");
    assert!(trial_count(&doc) >= at_least, "completed trials were lost");
    doc
}

#[test]
fn serve_killed_at_connect_mid_trial_and_between_configurations() {
    let Some((dev0, dev1, ip0)) = bed() else {
        return;
    };
    let peer = format!("{ip0}:18811");
    let mut report = Vec::new();
    for phase in ["connect", "mid-trial", "between configurations"] {
        let mut serve = Serve::start(&dev0, &ip0, 18811, &[]);
        let json = out_dir().join(format!("fault-serve-kill-{}.json", phase.replace(' ', "-")));
        let _ = std::fs::remove_file(&json);
        let extra: &[&str] = match phase {
            "between configurations" => {
                &["--sizes", "4K,64K", "--trials", "2", "--duration", "0.2"]
            }
            _ => &[
                "--sizes",
                "64K,1M",
                "--trials",
                "3",
                "--duration",
                "1",
                "--stall-timeout",
                "10",
            ],
        };
        let client = spawn_infab(&p2p_client(&dev1, &peer, &json, extra));
        let killed = match phase {
            "connect" => {
                serve.wait_line("session from", Duration::from_secs(60));
                serve.kill()
            }
            "mid-trial" => {
                // one 1 s trial recorded: the kill lands inside the next one
                wait_for_trials(&json, 1, Duration::from_secs(60));
                std::thread::sleep(Duration::from_millis(300));
                serve.kill()
            }
            _ => {
                // the first configuration complete: the next one is connecting
                wait_for_trials(&json, 2, Duration::from_secs(60));
                serve.kill()
            }
        };
        let (out, end) = ended(client, "p2p initiator");
        let took = end - killed;
        let err = stderr(&out);
        assert!(!out.status.success(), "{phase}: the initiator succeeded");
        assert!(
            took < DEAD_PEER_BOUND,
            "{phase}: the initiator took {took:?} to notice the dead target:\n{err}"
        );
        if phase != "connect" {
            assert!(
                err.contains("198.18.0.1:18811") || err.contains(&peer),
                "{phase}: the error names the target:\n{err}"
            );
            check_kept(&json, if phase == "mid-trial" { 1 } else { 2 });
        }
        report.push(format!(
            "serve SIGKILL {phase}: initiator ended after {took:?}"
        ));
        eprintln!("{}: {}", report.last().unwrap(), err.trim());
    }
    eprintln!("{}", report.join("\n"));
}

#[test]
fn initiator_killed_mid_trial_the_target_serves_the_next_session_at_once() {
    let Some((dev0, dev1, ip0)) = bed() else {
        return;
    };
    let peer = format!("{ip0}:18812");
    let serve = Serve::start(&dev0, &ip0, 18812, &[]);
    let mut report = Vec::new();
    // a bandwidth trial (the target's receive side idle) and a ping-pong
    // (the target's responder polling: once its 15 s case)
    for (what, extra) in [
        (
            "bandwidth",
            &["--sizes", "1M", "--trials", "5", "--duration", "2"][..],
        ),
        (
            "ping-pong",
            &[
                "--latency",
                "--clock",
                "pingpong",
                "--sizes",
                "4K",
                "--trials",
                "3",
                "--iters",
                "2000000",
            ][..],
        ),
    ] {
        let json = out_dir().join(format!("fault-initiator-kill-{what}.json"));
        let _ = std::fs::remove_file(&json);
        let mut client = spawn_infab(&p2p_client(&dev1, &peer, &json, extra));
        serve.wait_line("session from", Duration::from_secs(60));
        std::thread::sleep(Duration::from_secs(if what == "bandwidth" { 3 } else { 4 }));
        let killed = Instant::now();
        client.kill().unwrap();
        let _ = client.wait();
        let dropped = serve.wait_line("failed", Duration::from_secs(30));
        let took = dropped - killed;
        assert!(
            took < DEAD_PEER_BOUND,
            "{what}: serve took {took:?} to drop the dead session"
        );
        // and the next initiator is served at once
        let next = out_dir().join(format!("fault-initiator-kill-{what}-next.json"));
        let started = Instant::now();
        let out = infab(
            &p2p_client(
                &dev1,
                &peer,
                &next,
                &["--sizes", "4K", "--trials", "1", "--iters", "200"],
            )
            .iter()
            .map(String::as_str)
            .collect::<Vec<_>>(),
            Duration::from_secs(60),
        );
        ok(&out, "the next session");
        check_results(&next);
        report.push(format!(
            "initiator SIGKILL mid-trial ({what}): serve dropped the session after {took:?}; the next 4K run took {:?}",
            started.elapsed()
        ));
    }
    eprintln!("{}", report.join("\n"));
}

/// Runs `tc`/`ip` in the VM; panics with its output on failure.
fn sh(args: &[&str]) {
    let out = Command::new(args[0]).args(&args[1..]).output().unwrap();
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Undoes a link impairment when dropped, whatever the test did.
struct Impaired(&'static [&'static str]);

impl Drop for Impaired {
    fn drop(&mut self) {
        let _ = Command::new(self.0[0]).args(&self.0[1..]).output();
    }
}

#[test]
fn blackhole_and_link_down_mid_run_keep_the_completed_trials() {
    let Some((dev0, dev1, ip0)) = bed() else {
        return;
    };
    let peer = format!("{ip0}:18813");
    let mut report = Vec::new();
    let stall = 3.0;
    for fault in ["blackhole", "link down"] {
        let _serve = Serve::start(&dev0, &ip0, 18813, &["--stall-timeout", "3"]);
        let json = out_dir().join(format!("fault-{}.json", fault.replace(' ', "-")));
        let _ = std::fs::remove_file(&json);
        // the link-down run sleeps on its CQs (event mode): a stall must
        // still end at the stall timeout
        let poll = if fault == "link down" {
            "event"
        } else {
            "spin"
        };
        let client = spawn_infab(&p2p_client(
            &dev1,
            &peer,
            &json,
            &[
                "--sizes",
                "64K,1M",
                "--trials",
                "3",
                "--duration",
                "0.5",
                "--stall-timeout",
                "3",
                "--poll",
                poll,
            ],
        ));
        wait_for_trials(&json, 1, Duration::from_secs(60));
        let (start, undo): (&[&str], &'static [&'static str]) = match fault {
            "blackhole" => (
                &[
                    "tc", "qdisc", "add", "dev", "veth1", "root", "netem", "loss", "100%",
                ],
                &["tc", "qdisc", "del", "dev", "veth1", "root"],
            ),
            _ => (
                &["ip", "link", "set", "veth1", "down"],
                &["ip", "link", "set", "veth1", "up"],
            ),
        };
        sh(start);
        let _undo = Impaired(undo);
        let faulted = Instant::now();
        let (out, end) = ended(client, "p2p initiator");
        let took = end - faulted;
        let err = stderr(&out);
        assert!(!out.status.success(), "{fault}: the run succeeded");
        assert!(
            took < Duration::from_secs_f64(stall) + DEAD_PEER_BOUND,
            "{fault}: took {took:?} (stall timeout {stall} s):\n{err}"
        );
        let doc = check_kept(&json, 1);
        assert_eq!(doc["parameters"]["poll"]["mode"], poll);
        report.push(format!(
            "{fault} mid-run (--poll {poll}): error after {took:?}, {} trials kept: {}",
            trial_count(&doc),
            doc["error"].as_str().unwrap_or("")
        ));
    }
    eprintln!("{}", report.join("\n"));
}

#[test]
fn one_percent_loss_completes_and_counts_retransmissions() {
    let Some((dev0, dev1, ip0)) = bed() else {
        return;
    };
    let peer = format!("{ip0}:18814");
    let _serve = Serve::start(&dev0, &ip0, 18814, &[]);
    let json = out_dir().join("fault-loss-1pct.json");
    sh(&[
        "tc", "qdisc", "add", "dev", "veth1", "root", "netem", "loss", "1%",
    ]);
    let _undo = Impaired(&["tc", "qdisc", "del", "dev", "veth1", "root"]);
    let started = Instant::now();
    let out = infab(
        &p2p_client(
            &dev1,
            &peer,
            &json,
            &["--sizes", "1M", "--trials", "2", "--duration", "1"],
        )
        .iter()
        .map(String::as_str)
        .collect::<Vec<_>>(),
        Duration::from_secs(120),
    );
    ok(&out, "p2p at 1 % loss");
    let doc = check_results(&json);
    let retransmissions: u64 = doc["results"][0]["trials"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|t| t["counters"].as_array().unwrap())
        .filter_map(|n| n["deltas"]["kpis"]["retransmissions"].as_u64())
        .sum();
    assert!(
        retransmissions > 0,
        "1 % loss but no retransmission counted"
    );
    eprintln!(
        "1 % loss: completed in {:?}, {retransmissions} retransmissions, {:.3} GB/s",
        started.elapsed(),
        doc["results"][0]["summary"]["gbytes_per_s"]["mean"]
            .as_f64()
            .unwrap_or(0.0)
    );
}

#[test]
fn garbage_and_a_wrong_token_on_the_control_port_leave_serve_serving() {
    let Some((dev0, dev1, ip0)) = bed() else {
        return;
    };
    let peer = format!("{ip0}:18815");
    let mut serve = Serve::start(&dev0, &ip0, 18815, &["--token", "s3cret"]);
    let addr: std::net::SocketAddr = peer.parse().unwrap();
    let payloads: [&[u8]; 3] = [
        b"GET / HTTP/1.1\r\n\r\n",
        &[0xff, 0xff, 0xff, 0xff, b'{'],
        &[0, 0, 0, 4, b'n', b'u', b'l', b'l'],
    ];
    for garbage in payloads {
        let started = Instant::now();
        let mut stream = TcpStream::connect(addr).unwrap();
        stream.write_all(garbage).unwrap();
        serve.wait_line("failed", Duration::from_secs(10));
        eprintln!(
            "garbage {garbage:?}: session refused after {:?}",
            started.elapsed()
        );
    }
    let json = out_dir().join("fault-wrong-token.json");
    let out = infab(
        &p2p_client(&dev1, &peer, &json, &["--token", "wrong", "--sizes", "4K"])
            .iter()
            .map(String::as_str)
            .collect::<Vec<_>>(),
        Duration::from_secs(30),
    );
    assert!(!out.status.success());
    assert!(stderr(&out).contains("token"), "{}", stderr(&out));
    let json = out_dir().join("fault-after-garbage.json");
    let out = infab(
        &p2p_client(
            &dev1,
            &peer,
            &json,
            &[
                "--token", "s3cret", "--sizes", "4K", "--trials", "1", "--iters", "200",
            ],
        )
        .iter()
        .map(String::as_str)
        .collect::<Vec<_>>(),
        Duration::from_secs(60),
    );
    ok(&out, "a run after garbage and a wrong token");
    check_results(&json);
    assert!(serve.child.try_wait().unwrap().is_none(), "serve died");
    serve.kill();
}

#[test]
fn a_node_killed_mid_trial_ends_the_other_within_2s() {
    let Some(_) = bed() else { return };
    let mut report = Vec::new();
    for victim in ["1", "0"] {
        let json = out_dir().join(format!("fault-node{victim}-kill.json"));
        let _ = std::fs::remove_file(&json);
        let node = |rank: &str| {
            let mut args = pairs_node_args(rank);
            args.extend(strings(&[
                "--trials",
                "4",
                "-D",
                "1",
                "--stall-timeout",
                "10",
            ]));
            if rank == "0" {
                args.push("--json".into());
                args.push(json.to_str().unwrap().into());
            }
            spawn_infab(&args)
        };
        let n0 = node("0");
        std::thread::sleep(Duration::from_millis(300));
        let n1 = node("1");
        wait_for_trials(&json, 1, Duration::from_secs(120));
        std::thread::sleep(Duration::from_millis(300));
        let (mut dead, survivor) = if victim == "1" { (n1, n0) } else { (n0, n1) };
        let killed = Instant::now();
        dead.kill().unwrap();
        let _ = dead.wait();
        let (out, end) = ended(survivor, "the surviving node");
        let took = end - killed;
        let err = stderr(&out);
        assert!(
            !out.status.success(),
            "node {victim} killed, the other succeeded"
        );
        assert!(
            took < DEAD_PEER_BOUND,
            "node {victim} killed: the other took {took:?}:\n{err}"
        );
        if victim == "1" {
            let doc = check_results(&json);
            assert!(trial_count(&doc) >= 1, "node 0 lost the completed trial");
            assert!(doc["error"].is_string());
        }
        report.push(format!(
            "node {victim} SIGKILL mid-trial: the other ended after {took:?}: {}",
            err.lines().last().unwrap_or("")
        ));
    }
    eprintln!("{}", report.join("\n"));
}

/// Least privilege: a target registered for remote READ only refuses an
/// RDMA WRITE with a remote access error that names the missing right,
/// while a READ of the same region succeeds.
#[test]
fn a_write_into_a_read_only_region_fails_with_a_remote_access_error() {
    use infab::control::{BufferKey, Op};
    use infab::engine::{run_bandwidth, BandwidthPlan, Endpoint, EngineError, QpSet, StopRule};
    use infab::verbs::{
        DeviceSelector, MemoryKind, QpCaps, QpPathOptions, RdmaDevice, RemoteAccess,
    };
    use std::sync::Arc;

    let Some((dev0, dev1, _)) = bed() else {
        return;
    };
    let open = |name: &str| {
        Arc::new(RdmaDevice::open(Some(&DeviceSelector::parse(name)), 1, None).unwrap())
    };
    let caps = QpCaps {
        max_send_wr: 16,
        max_recv_wr: 16,
        max_inline_bytes: 0,
    };
    let bytes = 64 * 1024;
    // one attempt per op: a fresh pair of QPs (an error leaves a QP unusable)
    let attempt = |op: Op| -> Result<(), EngineError> {
        let target =
            Endpoint::new(open(&dev0), bytes, MemoryKind::Host, RemoteAccess::READ).unwrap();
        let initiator =
            Endpoint::new(open(&dev1), bytes, MemoryKind::Host, RemoteAccess::NONE).unwrap();
        let mut t_set = QpSet::create(&target, 1, 1, caps).unwrap();
        let mut i_set = QpSet::create(&initiator, 1, 1, caps).unwrap();
        let t_ends = t_set.endpoints(&target.device);
        let i_ends = i_set.endpoints(&initiator.device);
        let path = QpPathOptions::default();
        t_set.connect(&target.device, &i_ends, &path).unwrap();
        i_set.connect(&initiator.device, &t_ends, &path).unwrap();
        let plan = BandwidthPlan {
            op,
            msg_bytes: bytes,
            wr_bytes: bytes,
            tx_depth: 1,
            cq_mod: 1,
            stop: StopRule::MessagesPerQp(4),
            remote: BufferKey {
                addr: target.buffer.addr(),
                rkey: target.buffer.rkey(),
                len: bytes,
            },
            lane_remotes: Vec::new(),
            start_at_ns: 0,
            stall_timeout: Duration::from_secs(5),
            cores: Vec::new(),
            series: None,
        };
        run_bandwidth(&mut i_set, &initiator.buffer, &plan).map(|_| ())
    };
    attempt(Op::Read).expect("a READ of a remote-read region succeeds");
    let started = Instant::now();
    let err = attempt(Op::Write).expect_err("a WRITE into a read-only region must fail");
    let text = err.to_string();
    eprintln!(
        "WRITE into a READ-only region, after {:?}: {text}",
        started.elapsed()
    );
    match err {
        EngineError::Completion { status_code, .. } => {
            assert_eq!(status_code, 10, "IBV_WC_REM_ACCESS_ERR: {text}")
        }
        other => panic!("expected a remote access error completion, got: {other}"),
    }
    assert!(text.contains("remote access"), "{text}");
    assert!(
        text.contains("remote write"),
        "the error names the missing right: {text}"
    );
}
