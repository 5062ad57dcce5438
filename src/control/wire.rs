//! Framing: a 4-byte big-endian length, then that many bytes of JSON.

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use serde::de::DeserializeOwned;
use serde::Serialize;

/// The largest frame accepted (per-trial timestamp lists can be large).
pub const MAX_MESSAGE_BYTES: usize = 256 * 1024 * 1024;

/// TCP keepalive of a [`Channel::keep_alive`] connection: the first probe
/// after this many idle seconds, then one every [`KEEPALIVE_INTERVAL_S`],
/// and the peer counts as dead after [`KEEPALIVE_PROBES`] unanswered ones.
/// A host that vanishes without closing (power loss, a cut link) then fails
/// the next read within about 3 s, not at the read's own timeout.
pub const KEEPALIVE_IDLE_S: u32 = 1;
/// Seconds between keepalive probes.
pub const KEEPALIVE_INTERVAL_S: u32 = 1;
/// Unanswered keepalive probes before the kernel drops the connection.
pub const KEEPALIVE_PROBES: u32 = 2;
/// TCP_USER_TIMEOUT: keepalive probes only an idle connection; one with
/// sent data unacknowledged this long (a message to a vanished host) is
/// dropped too, instead of after minutes of retransmissions.
pub const UNACKED_TIMEOUT_MS: u32 = 3000;

/// What an ETIMEDOUT read means on a keepalive connection.
const KEEPALIVE_GAVE_UP: &str =
    "the peer stopped acknowledging TCP (keepalive probes or data); its host is gone or unreachable";

/// A control-channel failure: names the peer and what was expected.
#[derive(Debug, thiserror::Error)]
pub enum ControlError {
    /// Connecting failed.
    #[error("cannot reach the infab target at {addr}: {cause}; is `infab serve` running there, and is the port open?")]
    Connect {
        /// The peer.
        addr: String,
        /// The errno.
        cause: io::Error,
    },
    /// The peer did not answer in time.
    #[error("the peer {peer} sent nothing for {waited_s:.0} s while infab waited for {expecting}; it may be stuck or dead")]
    Timeout {
        /// The peer.
        peer: String,
        /// What we waited for.
        expecting: String,
        /// How long.
        waited_s: f64,
    },
    /// The peer closed the connection or the socket failed.
    #[error("the control connection to {peer} failed while infab waited for {expecting}: {}", io_cause(.cause))]
    Io {
        /// The peer.
        peer: String,
        /// What we waited for.
        expecting: String,
        /// The error.
        cause: io::Error,
    },
    /// A frame was malformed or not the expected message.
    #[error("the peer {peer} broke the protocol: {detail}")]
    Protocol {
        /// The peer.
        peer: String,
        /// What went wrong.
        detail: String,
    },
    /// The peer reported an error.
    #[error("the peer {peer} reported: {message}")]
    Remote {
        /// The peer.
        peer: String,
        /// Its message.
        message: String,
    },
}

/// An I/O error on the control connection, in words a user can act on:
/// the peer closing or resetting the socket means its process ended.
fn io_cause(cause: &io::Error) -> String {
    match cause.kind() {
        io::ErrorKind::UnexpectedEof => {
            "the peer closed the connection (its process ended or died)".into()
        }
        io::ErrorKind::ConnectionReset | io::ErrorKind::BrokenPipe => {
            format!("{cause} (the peer's process died or closed the session)")
        }
        _ => cause.to_string(),
    }
}

/// One framed, timed connection.
#[derive(Debug)]
pub struct Channel {
    stream: TcpStream,
    peer: String,
}

impl Channel {
    /// Wraps an accepted or connected stream.
    pub fn new(stream: TcpStream) -> Channel {
        let peer = stream
            .peer_addr()
            .map(|a| a.to_string())
            .unwrap_or_else(|_| "unknown peer".into());
        let _ = stream.set_nodelay(true);
        Channel { stream, peer }
    }

    /// Connects to `addr` within `timeout`.
    pub fn connect(addr: SocketAddr, timeout: Duration) -> Result<Channel, ControlError> {
        let stream =
            TcpStream::connect_timeout(&addr, timeout).map_err(|cause| ControlError::Connect {
                addr: addr.to_string(),
                cause,
            })?;
        Ok(Channel::new(stream))
    }

    /// A second handle on the socket (for a watcher thread).
    pub(crate) fn try_clone_stream(&self, during: &str) -> Result<TcpStream, ControlError> {
        self.stream.try_clone().map_err(|cause| ControlError::Io {
            peer: self.peer.clone(),
            expecting: format!("to duplicate the socket {during}"),
            cause,
        })
    }

    /// Ends this side's sending (a FIN): the peer's watcher sees the close
    /// at once, and can still read what was sent before it.
    pub fn shutdown_send(&self) {
        let _ = self.stream.shutdown(std::net::Shutdown::Write);
    }

    /// The socket, for waiting on several channels at once (`poll(2)`).
    pub fn as_fd(&self) -> std::os::fd::BorrowedFd<'_> {
        use std::os::fd::AsFd;
        self.stream.as_fd()
    }

    /// The peer's address, for messages.
    pub fn peer(&self) -> &str {
        &self.peer
    }

    /// Turns on TCP keepalive with short timers ([`KEEPALIVE_IDLE_S`],
    /// [`KEEPALIVE_INTERVAL_S`], [`KEEPALIVE_PROBES`]) and a user timeout
    /// ([`UNACKED_TIMEOUT_MS`]), so a peer host that vanished is noticed in
    /// seconds, idle or not. See tcp(7).
    pub fn keep_alive(&self) -> Result<(), ControlError> {
        use nix::sys::socket::{setsockopt, sockopt};
        let fail = |errno: nix::errno::Errno| ControlError::Io {
            peer: self.peer.clone(),
            expecting: "to turn on TCP keepalive".into(),
            cause: io::Error::from(errno),
        };
        setsockopt(&self.stream, sockopt::KeepAlive, &true).map_err(fail)?;
        setsockopt(&self.stream, sockopt::TcpKeepIdle, &KEEPALIVE_IDLE_S).map_err(fail)?;
        setsockopt(
            &self.stream,
            sockopt::TcpKeepInterval,
            &KEEPALIVE_INTERVAL_S,
        )
        .map_err(fail)?;
        setsockopt(&self.stream, sockopt::TcpKeepCount, &KEEPALIVE_PROBES).map_err(fail)?;
        setsockopt(&self.stream, sockopt::TcpUserTimeout, &UNACKED_TIMEOUT_MS).map_err(fail)
    }

    /// Sends one message.
    pub fn send<T: Serialize>(&mut self, message: &T) -> Result<(), ControlError> {
        let frame = encode_frame(message).map_err(|detail| ControlError::Protocol {
            peer: self.peer.clone(),
            detail,
        })?;
        self.stream
            .write_all(&frame)
            .map_err(|cause| ControlError::Io {
                peer: self.peer.clone(),
                expecting: "to send".into(),
                cause,
            })
    }

    /// Receives one message, waiting at most `timeout` for it to begin.
    pub fn recv<T: DeserializeOwned>(
        &mut self,
        timeout: Duration,
        expecting: &str,
    ) -> Result<T, ControlError> {
        self.stream
            .set_read_timeout(Some(timeout.max(Duration::from_millis(1))))
            .map_err(|cause| ControlError::Io {
                peer: self.peer.clone(),
                expecting: expecting.into(),
                cause,
            })?;
        let mut header = [0u8; 4];
        self.read_exact(&mut header, timeout, expecting)?;
        let len = frame_len(header).map_err(|detail| ControlError::Protocol {
            peer: self.peer.clone(),
            detail,
        })?;
        let mut body = vec![0u8; len];
        self.read_exact(&mut body, timeout, expecting)?;
        decode_body(&body, expecting).map_err(|detail| ControlError::Protocol {
            peer: self.peer.clone(),
            detail,
        })
    }

    fn read_exact(
        &mut self,
        buf: &mut [u8],
        timeout: Duration,
        expecting: &str,
    ) -> Result<(), ControlError> {
        self.stream
            .read_exact(buf)
            .map_err(|cause| match cause.kind() {
                // an expired read timeout is EAGAIN on Linux; ETIMEDOUT is
                // the kernel giving up on the peer (keepalive, retransmits)
                io::ErrorKind::TimedOut => ControlError::Io {
                    peer: self.peer.clone(),
                    expecting: expecting.into(),
                    cause: io::Error::new(cause.kind(), format!("{cause}: {KEEPALIVE_GAVE_UP}")),
                },
                io::ErrorKind::WouldBlock => ControlError::Timeout {
                    peer: self.peer.clone(),
                    expecting: expecting.into(),
                    waited_s: timeout.as_secs_f64(),
                },
                _ => ControlError::Io {
                    peer: self.peer.clone(),
                    expecting: expecting.into(),
                    cause,
                },
            })
    }
}

/// The body length a frame header announces, refused above
/// [`MAX_MESSAGE_BYTES`] before anything is allocated.
fn frame_len(header: [u8; 4]) -> Result<usize, String> {
    let len = u32::from_be_bytes(header) as usize;
    if len > MAX_MESSAGE_BYTES {
        return Err(format!(
            "frame of {len} bytes announced (limit {MAX_MESSAGE_BYTES}); not an infab peer?"
        ));
    }
    Ok(len)
}

fn decode_body<T: DeserializeOwned>(body: &[u8], expecting: &str) -> Result<T, String> {
    serde_json::from_slice(body).map_err(|err| format!("cannot decode {expecting}: {err}"))
}

/// Decodes one whole frame (length prefix and body) held in memory: what
/// [`Channel::recv`] does with what it reads, for fuzzing and tests. Any
/// input gives a message or an error, never a panic or an allocation above
/// [`MAX_MESSAGE_BYTES`].
pub fn decode_frame<T: DeserializeOwned>(frame: &[u8]) -> Result<T, String> {
    let header: [u8; 4] = frame
        .get(..4)
        .and_then(|h| h.try_into().ok())
        .ok_or_else(|| format!("a frame of {} bytes has no 4-byte header", frame.len()))?;
    let len = frame_len(header)?;
    let body = &frame[4..];
    if body.len() != len {
        return Err(format!(
            "the header announces {len} bytes but {} follow",
            body.len()
        ));
    }
    decode_body(body, "a message")
}

/// Encodes one message as a frame (length prefix and JSON body).
pub fn encode_frame<T: Serialize>(message: &T) -> Result<Vec<u8>, String> {
    let body = serde_json::to_vec(message).map_err(|err| format!("cannot encode: {err}"))?;
    let len = u32::try_from(body.len())
        .ok()
        .filter(|&l| (l as usize) <= MAX_MESSAGE_BYTES)
        .ok_or_else(|| format!("message of {} bytes is too large", body.len()))?;
    let mut frame = len.to_be_bytes().to_vec();
    frame.extend_from_slice(&body);
    Ok(frame)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::TcpListener;

    #[test]
    fn frames_round_trip_and_time_out() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let server = std::thread::spawn(move || {
            let (stream, _) = listener.accept().unwrap();
            let mut channel = Channel::new(stream);
            let got: Vec<u32> = channel.recv(Duration::from_secs(5), "numbers").unwrap();
            channel.send(&got.iter().sum::<u32>()).unwrap();
            // then stay silent so the client times out
            std::thread::sleep(Duration::from_millis(400));
        });
        let mut client = Channel::connect(addr, Duration::from_secs(5)).unwrap();
        client.send(&vec![1u32, 2, 3]).unwrap();
        let sum: u32 = client.recv(Duration::from_secs(5), "sum").unwrap();
        assert_eq!(sum, 6);
        let err = client
            .recv::<u32>(Duration::from_millis(100), "nothing")
            .unwrap_err();
        assert!(matches!(err, ControlError::Timeout { .. }), "{err}");
        server.join().unwrap();
    }

    #[test]
    fn keep_alive_sets_short_timers() {
        use nix::sys::socket::{getsockopt, sockopt};
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let client = Channel::connect(addr, Duration::from_secs(5)).unwrap();
        let _server = listener.accept().unwrap();
        assert!(!getsockopt(&client.stream, sockopt::KeepAlive).unwrap());
        client.keep_alive().unwrap();
        assert!(getsockopt(&client.stream, sockopt::KeepAlive).unwrap());
        let idle = getsockopt(&client.stream, sockopt::TcpKeepIdle).unwrap();
        let interval = getsockopt(&client.stream, sockopt::TcpKeepInterval).unwrap();
        let probes = getsockopt(&client.stream, sockopt::TcpKeepCount).unwrap();
        let unacked_ms = getsockopt(&client.stream, sockopt::TcpUserTimeout).unwrap();
        assert_eq!((idle, interval, probes, unacked_ms), (1, 1, 2, 3000));
    }
}
