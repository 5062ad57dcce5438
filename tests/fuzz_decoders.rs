//! Property tests (a fixed-length fuzz run in every `make test`) of the two
//! decoders that read bytes from the network: the p2p control protocol and
//! the multi-rank rendezvous protocol. Whatever arrives, a decoder returns
//! a message or an error: never a panic, never an allocation past the frame
//! limit; and every message it encodes decodes back to itself.

use infab::cluster::ClusterMessage;
use infab::control::{decode_frame, encode_frame, Message, MAX_MESSAGE_BYTES};
use proptest::prelude::*;

proptest! {
    #![proptest_config(ProptestConfig { cases: 2048, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        let _ = decode_frame::<Message>(&bytes);
        let _ = decode_frame::<ClusterMessage>(&bytes);
    }

    #[test]
    fn json_shaped_noise_never_panics(
        tag in "(hello|welcome|connect|setup|go|done|join|abort|error|kv|prepare)",
        body in "[\\{\\}\\[\\]\":,0-9a-z_ -]{0,200}",
    ) {
        let text = format!("{{\"type\":\"{tag}\",{body}");
        let mut frame = (text.len() as u32).to_be_bytes().to_vec();
        frame.extend_from_slice(text.as_bytes());
        let _ = decode_frame::<Message>(&frame);
        let _ = decode_frame::<ClusterMessage>(&frame);
    }

    #[test]
    fn announced_lengths_beyond_the_limit_are_refused(extra in 1u32..1000) {
        let len = MAX_MESSAGE_BYTES as u32 + extra;
        let err = decode_frame::<Message>(&len.to_be_bytes()).unwrap_err();
        prop_assert!(err.contains("limit"), "{}", err);
    }

    #[test]
    fn truncated_frames_are_errors(cut in 0usize..40) {
        let frame = encode_frame(&ClusterMessage::Abort { reason: "a node died".into() }).unwrap();
        let cut = cut.min(frame.len() - 1);
        prop_assert!(decode_frame::<ClusterMessage>(&frame[..cut]).is_err());
    }

    #[test]
    fn rendezvous_messages_round_trip(reason in ".{0,64}", t in any::<u64>()) {
        for message in [
            ClusterMessage::Abort { reason: reason.clone() },
            ClusterMessage::Error { message: reason.clone() },
            ClusterMessage::ClockProbe { t_coordinator_ns: t },
            ClusterMessage::Go { trial: (t % 1000) as u32, start_at_ns: t },
        ] {
            let frame = encode_frame(&message).unwrap();
            prop_assert_eq!(decode_frame::<ClusterMessage>(&frame).unwrap(), message);
        }
    }
}
