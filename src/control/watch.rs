//! Watching a control connection while trials run. Nobody reads the
//! connection during a trial (both ends are driving traffic), so without a
//! watcher a peer that died is noticed only when the engine's stall timeout
//! fires. The watcher sleeps in `poll(2)` for the peer's FIN or a socket
//! error (POLLRDHUP, POLLHUP, POLLERR; pending data does not wake it), and
//! raises the run's [`Abort`] naming the peer: the engine loops stop within
//! one idle poll. TCP keepalive ([`Channel::keep_alive`]) turns a host that
//! vanished without closing into a socket error the watcher sees too.

use std::net::TcpStream;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use rustix::event::{poll, PollFd, PollFlags, Timespec};

use super::{Abort, Channel, ControlError};

/// How often the watcher checks whether it is still wanted.
const WATCH_TICK_MS: u16 = 50;

/// A running watcher; dropping it stops the watch (its thread ends within
/// [`WATCH_TICK_MS`]).
#[derive(Debug)]
pub struct PeerWatch {
    done: Arc<AtomicBool>,
}

impl Drop for PeerWatch {
    fn drop(&mut self) {
        self.done.store(true, Ordering::Release);
    }
}

impl Channel {
    /// Watches the connection until the returned guard is dropped: if the
    /// peer closes it or the socket fails, raises `abort` with a reason that
    /// names the peer and `during` (what the run was doing).
    pub fn watch(&self, abort: &Abort, during: &str) -> Result<PeerWatch, ControlError> {
        let stream = self.try_clone_stream(during)?;
        let done = Arc::new(AtomicBool::new(false));
        let (flag, abort, peer, during) = (
            Arc::clone(&done),
            abort.clone(),
            self.peer().to_string(),
            during.to_string(),
        );
        std::thread::Builder::new()
            .name("infab-peer-watch".into())
            .spawn(move || {
                if let Some(how) = wait_for_close(&stream, &flag) {
                    if !flag.load(Ordering::Acquire) {
                        abort.raise(format!(
                            "the control connection to {peer} {how} {during} (the peer process died or ended the session)"
                        ));
                    }
                }
            })
            .map_err(|cause| ControlError::Io {
                peer: self.peer().to_string(),
                expecting: "to start the connection watcher".into(),
                cause,
            })?;
        Ok(PeerWatch { done })
    }
}

/// Sleeps until the peer closes (`Some(how)`) or `done` is raised (`None`).
fn wait_for_close(stream: &TcpStream, done: &AtomicBool) -> Option<&'static str> {
    while !done.load(Ordering::Acquire) {
        match poll_close(stream, Duration::from_millis(u64::from(WATCH_TICK_MS))) {
            Some(Some(how)) => return Some(how),
            Some(None) => {}
            None => return Some("failed"),
        }
    }
    None
}

/// One `poll(2)` for a close: `Some(Some(how))` closed, `Some(None)` not
/// yet, `None` the poll itself failed.
fn poll_close(stream: &TcpStream, wait: Duration) -> Option<Option<&'static str>> {
    // POLLRDHUP: the peer's FIN, with or without data pending before it
    let mut fds = [PollFd::new(stream, PollFlags::RDHUP)];
    let timeout = Timespec::try_from(wait).unwrap_or(Timespec {
        tv_sec: 1,
        tv_nsec: 0,
    });
    match poll(&mut fds, Some(&timeout)) {
        Ok(0) => Some(None),
        Ok(_) => {
            let got = fds[0].revents();
            if got.contains(PollFlags::ERR) {
                Some(Some("failed"))
            } else if got.intersects(PollFlags::RDHUP | PollFlags::HUP) {
                Some(Some("was closed"))
            } else {
                Some(None)
            }
        }
        Err(rustix::io::Errno::INTR) => Some(None),
        Err(_) => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::TcpListener;
    use std::time::Instant;

    fn pair() -> (Channel, Channel) {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let client = Channel::connect(addr, Duration::from_secs(2)).unwrap();
        let (server, _) = listener.accept().unwrap();
        (client, Channel::new(server))
    }

    #[test]
    fn a_closed_peer_raises_the_abort_within_the_tick() {
        let (client, server) = pair();
        let abort = Abort::new();
        let _watch = client.watch(&abort, "during trial 3").unwrap();
        std::thread::sleep(Duration::from_millis(80));
        assert!(!abort.is_raised(), "an idle live peer is not a close");
        let closed_at = Instant::now();
        drop(server);
        while !abort.is_raised() && closed_at.elapsed() < Duration::from_secs(2) {
            std::thread::sleep(Duration::from_millis(5));
        }
        let reason = abort.reason().expect("raised");
        assert!(closed_at.elapsed() < Duration::from_millis(500));
        assert!(reason.contains("was closed during trial 3"), "{reason}");
    }

    #[test]
    fn pending_data_is_not_a_close_and_a_dropped_watch_raises_nothing() {
        let (client, mut server) = pair();
        let abort = Abort::new();
        let watch = client.watch(&abort, "while testing").unwrap();
        server.send(&"hello").unwrap();
        std::thread::sleep(Duration::from_millis(120));
        assert!(!abort.is_raised());
        drop(watch);
        std::thread::sleep(Duration::from_millis(120));
        drop(server);
        std::thread::sleep(Duration::from_millis(120));
        assert!(!abort.is_raised(), "the watch had ended");
    }
}
