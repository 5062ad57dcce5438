//! The pool's control plane on the fabric (`--control fabric`): a prefill
//! worker asks its decode worker for pages, and the decode worker grants or
//! refuses them, as RDMA SENDs on the first QP of each worker pair, so
//! that the pools can sit on different hosts (Mooncake's and SGLang's
//! decode side sends its page list to the prefill side the same way, over
//! their own side channel).
//!
//! A message is a 64-byte header and a page list, little-endian. Each
//! worker keeps, after its KV pages, a ring of receive slots and a ring of
//! send slots per peer ([`ControlLayout`]).

use super::SERVING_RECV_DEPTH;

/// Bytes of a message before its page list.
pub const CONTROL_HEADER_BYTES: u64 = 64;

const ASK: u32 = 1;
const GRANT: u32 = 2;
const REJECT: u32 = 3;

/// A prefill worker's request for decode pages, sent when its modelled
/// prefill ended. Times count from the trial's start, so that the two
/// workers' clocks need not agree on an origin.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ask {
    /// The request.
    pub request: u32,
    /// Prompt tokens (its KV).
    pub prompt_tokens: u64,
    /// Output tokens (its decode).
    pub output_tokens: u64,
    /// Decode pages it needs.
    pub pages: u32,
    /// Intended arrival, ns after the trial's start.
    pub intended_ns: u64,
    /// Prefill started, ns after the trial's start.
    pub prefill_start_ns: u64,
    /// Prefill ended, ns after the trial's start.
    pub prefill_end_ns: u64,
    /// The modelled prefill time, ns.
    pub prefill_modelled_ns: u64,
    /// The prefill pages holding its KV (pull READs them; push plans with
    /// them at the decode side for `--verify`).
    pub src: Vec<u32>,
}

/// One message of the pool's control plane.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ControlMessage {
    /// Prefill → decode: pages, please.
    Ask(Ask),
    /// Decode → prefill (push): the pages granted, where to WRITE.
    Grant {
        /// The request.
        request: u32,
        /// It queued for the pages first.
        waited: bool,
        /// The decode pages.
        pages: Vec<u32>,
    },
    /// Decode → prefill: refused (`--admission reject`, pool full).
    Reject {
        /// The request.
        request: u32,
    },
}

impl ControlMessage {
    /// Bytes of the encoded message.
    pub fn encoded_len(&self) -> u64 {
        let pages = match self {
            ControlMessage::Ask(a) => a.src.len(),
            ControlMessage::Grant { pages, .. } => pages.len(),
            ControlMessage::Reject { .. } => 0,
        };
        CONTROL_HEADER_BYTES + 4 * pages as u64
    }

    /// The message as bytes: kind, request, six u64 fields, a page count
    /// field, the list's length, then the list.
    pub fn encode(&self) -> Vec<u8> {
        let (kind, request, words, count, pages): (u32, u32, [u64; 6], u32, &[u32]) = match self {
            ControlMessage::Ask(a) => (
                ASK,
                a.request,
                [
                    a.prompt_tokens,
                    a.output_tokens,
                    a.intended_ns,
                    a.prefill_start_ns,
                    a.prefill_end_ns,
                    a.prefill_modelled_ns,
                ],
                a.pages,
                &a.src,
            ),
            ControlMessage::Grant {
                request,
                waited,
                pages,
            } => (
                GRANT,
                *request,
                [u64::from(*waited), 0, 0, 0, 0, 0],
                pages.len() as u32,
                pages,
            ),
            ControlMessage::Reject { request } => (REJECT, *request, [0; 6], 0, &[]),
        };
        let mut out = Vec::with_capacity(self.encoded_len() as usize);
        out.extend_from_slice(&kind.to_le_bytes());
        out.extend_from_slice(&request.to_le_bytes());
        for w in words {
            out.extend_from_slice(&w.to_le_bytes());
        }
        out.extend_from_slice(&count.to_le_bytes());
        out.extend_from_slice(&(pages.len() as u32).to_le_bytes());
        for p in pages {
            out.extend_from_slice(&p.to_le_bytes());
        }
        out
    }

    /// Reads a message received as `bytes`; the error says what is wrong.
    pub fn decode(bytes: &[u8]) -> Result<ControlMessage, String> {
        if (bytes.len() as u64) < CONTROL_HEADER_BYTES {
            return Err(format!(
                "a control message of {} B, shorter than its {CONTROL_HEADER_BYTES}-byte header",
                bytes.len()
            ));
        }
        let u32_at = |i: usize| u32::from_le_bytes(bytes[i..i + 4].try_into().unwrap_or([0; 4]));
        let u64_at = |i: usize| u64::from_le_bytes(bytes[i..i + 8].try_into().unwrap_or([0; 8]));
        let (kind, request) = (u32_at(0), u32_at(4));
        let word = |k: usize| u64_at(8 + 8 * k);
        let (count, n) = (u32_at(56), u32_at(60) as usize);
        let end = CONTROL_HEADER_BYTES as usize + 4 * n;
        if bytes.len() < end {
            return Err(format!(
                "a control message naming {n} pages in {} B (needs {end} B)",
                bytes.len()
            ));
        }
        let pages: Vec<u32> = (0..n).map(|i| u32_at(64 + 4 * i)).collect();
        match kind {
            ASK => Ok(ControlMessage::Ask(Ask {
                request,
                prompt_tokens: word(0),
                output_tokens: word(1),
                intended_ns: word(2),
                prefill_start_ns: word(3),
                prefill_end_ns: word(4),
                prefill_modelled_ns: word(5),
                pages: count,
                src: pages,
            })),
            GRANT => Ok(ControlMessage::Grant {
                request,
                waited: word(0) != 0,
                pages,
            }),
            REJECT => Ok(ControlMessage::Reject { request }),
            other => Err(format!("a control message of unknown kind {other}")),
        }
    }
}

/// Where a worker's control messages live in its pool buffer, from
/// `base`: a ring of [`SERVING_RECV_DEPTH`] receive slots per peer, then a
/// ring of send slots per peer (as many as its send queue holds, so a slot
/// is reused only after the SEND that read it completed).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ControlLayout {
    /// First byte of the receive slots.
    pub base: u64,
    /// Workers of the other role.
    pub peers: usize,
    /// Bytes of one slot: the header and the longest page list.
    pub slot_bytes: u64,
    /// Send slots per peer.
    pub send_slots: u64,
}

impl ControlLayout {
    /// A layout at `base` for `peers` peers, page lists up to `max_pages`
    /// and send queues of `tx_depth` WRs (plus the 2 spare).
    pub fn new(base: u64, peers: usize, max_pages: u32, tx_depth: u32) -> ControlLayout {
        let slot = CONTROL_HEADER_BYTES + 4 * u64::from(max_pages);
        ControlLayout {
            base,
            peers,
            slot_bytes: slot.div_ceil(64) * 64,
            send_slots: u64::from(tx_depth) + 2,
        }
    }

    /// Bytes of the whole area.
    pub fn bytes(&self) -> u64 {
        self.peers as u64 * (u64::from(SERVING_RECV_DEPTH) + self.send_slots) * self.slot_bytes
    }

    /// Offset of peer `peer`'s receive slot for its `seq`-th receive.
    pub fn recv_slot(&self, peer: usize, seq: u64) -> u64 {
        let depth = u64::from(SERVING_RECV_DEPTH);
        self.base + (peer as u64 * depth + seq % depth) * self.slot_bytes
    }

    /// Offset of peer `peer`'s send slot for its `n`-th message.
    pub fn send_slot(&self, peer: usize, n: u64) -> u64 {
        let recv = self.peers as u64 * u64::from(SERVING_RECV_DEPTH) * self.slot_bytes;
        self.base + recv + (peer as u64 * self.send_slots + n % self.send_slots) * self.slot_bytes
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_round_trip() {
        let ask = ControlMessage::Ask(Ask {
            request: 77,
            prompt_tokens: 4096,
            output_tokens: 128,
            pages: 264,
            intended_ns: 1,
            prefill_start_ns: 2,
            prefill_end_ns: 3,
            prefill_modelled_ns: u64::MAX,
            src: vec![5, 9, 1, 0],
        });
        let grant = ControlMessage::Grant {
            request: 78,
            waited: true,
            pages: vec![3, 2, 1],
        };
        let reject = ControlMessage::Reject { request: 79 };
        for m in [ask, grant, reject] {
            let bytes = m.encode();
            assert_eq!(bytes.len() as u64, m.encoded_len());
            assert_eq!(ControlMessage::decode(&bytes).unwrap(), m);
            // a receive slot is longer than the message: the rest is ignored
            let mut padded = bytes.clone();
            padded.extend_from_slice(&[0xee; 40]);
            assert_eq!(ControlMessage::decode(&padded).unwrap(), m);
        }
    }

    #[test]
    fn bad_messages_are_named() {
        assert!(ControlMessage::decode(&[0; 10])
            .unwrap_err()
            .contains("shorter than its 64-byte header"));
        let mut bytes = ControlMessage::Reject { request: 1 }.encode();
        bytes[0] = 9;
        assert!(ControlMessage::decode(&bytes)
            .unwrap_err()
            .contains("unknown kind 9"));
        let mut bytes = ControlMessage::Reject { request: 1 }.encode();
        bytes[60] = 3;
        assert!(ControlMessage::decode(&bytes)
            .unwrap_err()
            .contains("naming 3 pages in 64 B"));
    }

    #[test]
    fn slots_never_overlap() {
        let l = ControlLayout::new(1000, 3, 100, 6);
        assert_eq!(l.slot_bytes, 512, "64 + 400 rounded up to 64");
        assert_eq!(l.send_slots, 8);
        let mut offsets: Vec<u64> = (0..3)
            .flat_map(|p| {
                (0..u64::from(SERVING_RECV_DEPTH))
                    .map(move |s| l.recv_slot(p, s))
                    .chain((0..8).map(move |n| l.send_slot(p, n)))
            })
            .collect();
        assert_eq!(
            l.recv_slot(1, 0),
            l.recv_slot(1, u64::from(SERVING_RECV_DEPTH))
        );
        assert_eq!(l.send_slot(2, 1), l.send_slot(2, 9));
        offsets.sort_unstable();
        offsets.dedup();
        assert_eq!(offsets.len() as u64 * l.slot_bytes, l.bytes());
        assert_eq!(offsets[0], 1000);
        assert_eq!(*offsets.last().unwrap() + l.slot_bytes, 1000 + l.bytes());
    }
}
