//! `decode_startup` over arbitrary bytes: never panics, a pending packet consumes nothing,
//! and a decoded StartupMessage always has a non-empty user.
#![no_main]

use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;
use pgtide_wire::{decode_startup, StartupPacket, MAX_STARTUP_PACKET};

fuzz_target!(|data: &[u8]| {
    let mut buf = BytesMut::from(data);
    loop {
        let before = buf.len();
        match decode_startup(&mut buf) {
            Ok(Some(packet)) => {
                let used = before - buf.len();
                assert!((8..=MAX_STARTUP_PACKET).contains(&used));
                if let StartupPacket::Startup { major, .. } = &packet {
                    assert_eq!(*major, 3);
                    assert!(packet.user().is_some_and(|u| !u.is_empty()));
                }
            }
            Ok(None) => {
                assert_eq!(buf.len(), before, "a pending packet consumes nothing");
                break;
            }
            Err(_) => break,
        }
    }
});
