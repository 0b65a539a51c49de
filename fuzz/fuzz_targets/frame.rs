//! `FrameDecoder::decode` over arbitrary bytes with a small size limit.
//!
//! Beyond "never panics", checks that every frame is whole and within the limit, that a
//! pending frame consumes nothing, and that feeding the same bytes in chunks (as a socket
//! would) yields exactly the frames and the error that decoding them at once does.
#![no_main]

use bytes::{Bytes, BytesMut};
use libfuzzer_sys::fuzz_target;
use pgtide_wire::{FrameDecoder, FRAME_HEADER_LEN};

/// Small, so that the too-large path is reached often.
const MAX: usize = 256;

/// The frames decoded and whether decoding stopped on an error.
fn all_at_once(decoder: &FrameDecoder, data: &[u8]) -> (Vec<Bytes>, bool) {
    let mut buf = BytesMut::from(data);
    let mut frames = Vec::new();
    loop {
        let before = buf.len();
        match decoder.decode(&mut buf) {
            Ok(Some(frame)) => {
                assert!(frame.len() >= FRAME_HEADER_LEN && frame.len() <= MAX + 1);
                assert_eq!(frame.raw[0], frame.tag);
                assert_eq!(frame.body().len(), frame.len() - FRAME_HEADER_LEN);
                assert_eq!(&frame.body_bytes()[..], frame.body());
                assert_eq!(buf.len(), before - frame.len());
                frames.push(frame.raw);
            }
            Ok(None) => {
                assert_eq!(buf.len(), before, "a pending frame consumes nothing");
                return (frames, false);
            }
            Err(_) => return (frames, true),
        }
    }
}

fn in_chunks(decoder: &FrameDecoder, data: &[u8], chunk: usize) -> (Vec<Bytes>, bool) {
    let mut buf = BytesMut::new();
    let mut frames = Vec::new();
    for piece in data.chunks(chunk) {
        buf.extend_from_slice(piece);
        loop {
            match decoder.decode(&mut buf) {
                Ok(Some(frame)) => frames.push(frame.raw),
                Ok(None) => break,
                Err(_) => return (frames, true),
            }
        }
    }
    (frames, false)
}

fuzz_target!(|data: &[u8]| {
    let decoder = FrameDecoder::new(MAX);
    let whole = all_at_once(&decoder, data);
    let chunk = usize::from(data.first().copied().unwrap_or(1) % 16).max(1);
    assert_eq!(whole, in_chunks(&decoder, data, chunk));

    // The zero-copy variant over `Bytes` agrees with the `BytesMut` one.
    let mut bytes = Bytes::copy_from_slice(data);
    let mut frames = Vec::new();
    let mut failed = false;
    loop {
        match decoder.decode_bytes(&mut bytes) {
            Ok(Some(frame)) => frames.push(frame.raw),
            Ok(None) => break,
            Err(_) => {
                failed = true;
                break;
            }
        }
    }
    assert_eq!(whole, (frames, failed));
});
