//! Every decoder takes arbitrary bytes without panicking, and whatever decodes survives
//! re-encoding: a control message decodes back to itself, and a media object or pose datagram
//! re-encodes to the same bytes after one trip through the codec.
//!
//! The first input byte picks the chunk size the stream decoders are fed in, so the fuzzer
//! also explores message boundaries that fall inside a read.

#![no_main]

use farsight_protocol::{
    ControlDecoder, ControlMessage, MediaDecoder, MediaEvent, Object, PoseDatagram, StreamHeader,
};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let (chunk, body) = match data.split_first() {
        Some((first, rest)) => (usize::from(*first).max(1), rest),
        None => (1, data),
    };
    control_stream(body, chunk);
    control_payload(body);
    media_stream(body, chunk);
    pose_datagram(body);
    let _ = StreamHeader::decode(body);
    let _ = StreamHeader::decode(&body[..body.len().min(21)]);
});

fn control_stream(data: &[u8], chunk: usize) {
    let mut decoder = ControlDecoder::new();
    for piece in data.chunks(chunk) {
        decoder.push(piece);
        // An error ends the stream for a real reader; stop draining but keep pushing, which
        // must keep returning an error or more messages, never panic or spin.
        while let Ok(Some(msg)) = decoder.poll() {
            assert_round_trip(&msg);
        }
    }
}

/// The payload decoder on its own, with the type code taken from the input.
fn control_payload(data: &[u8]) {
    let [hi, lo, payload @ ..] = data else {
        return;
    };
    let ty = u16::from_be_bytes([*hi, *lo]);
    if let Ok(Some(msg)) = ControlMessage::decode_payload(ty, payload) {
        assert_eq!(msg.type_code(), ty);
        // Decoding is canonical: the message re-encodes to exactly the payload it came from.
        assert_eq!(&msg.to_bytes()[6..], payload);
        assert_round_trip(&msg);
    }
}

fn assert_round_trip(msg: &ControlMessage) {
    let bytes = msg.to_bytes();
    let mut decoder = ControlDecoder::new();
    decoder.push(&bytes);
    assert_eq!(decoder.poll(), Ok(Some(msg.clone())));
    assert_eq!(decoder.buffered(), 0);
}

fn media_stream(data: &[u8], chunk: usize) {
    let mut decoder = MediaDecoder::new();
    for piece in data.chunks(chunk) {
        decoder.push(piece);
        loop {
            match decoder.poll() {
                Ok(Some(MediaEvent::Header(header))) => {
                    let mut wire = Vec::new();
                    header.encode(&mut wire);
                    assert_eq!(StreamHeader::decode(&wire), Ok(header));
                }
                Ok(Some(MediaEvent::Object(object))) => assert_object_round_trip(&object),
                Ok(None) => break,
                // A media decoder error is final: the relay stops the stream.
                Err(_) => return,
            }
        }
    }
}

fn assert_object_round_trip(object: &Object) {
    let once = object.to_bytes();
    let mut decoder = MediaDecoder::new();
    decoder.push(&[0x4d; 1]);
    decoder.push(&[0; 20]);
    decoder.push(&once);
    assert!(matches!(decoder.poll(), Ok(Some(MediaEvent::Header(_)))));
    let Ok(Some(MediaEvent::Object(back))) = decoder.poll() else {
        panic!("a re-encoded object must decode");
    };
    assert_eq!(back.to_bytes(), once);
    assert!(decoder.is_idle());
}

fn pose_datagram(data: &[u8]) {
    if let Ok(d) = PoseDatagram::decode(data) {
        let once = d.to_bytes();
        let back = PoseDatagram::decode(&once).expect("a re-encoded datagram must decode");
        assert_eq!(back.session, d.session);
        assert_eq!(back.at, d.at);
        assert_eq!(back.to_bytes(), once);
    }
    // Also the same bytes with the datagram type forced, to get past the first check.
    if data.len() == 45 {
        let mut typed = data.to_vec();
        typed[0] = 0x50;
        let _ = PoseDatagram::decode(&typed);
    }
}
