//! Every decoder and message view of pgtide-wire over arbitrary bytes (framed and bare).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    pgtide_wire::fuzz_decode_all(data);
});
