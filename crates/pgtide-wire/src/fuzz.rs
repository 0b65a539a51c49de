//! One entry point that runs every decoder over arbitrary bytes, for cargo-fuzz and for the
//! no-panic property tests below.

use bytes::{Bytes, BytesMut};

use crate::*;

/// Runs every decoder of this crate on `data` and discards the results. Must never panic; a
/// message that decodes must also encode back to the same bytes (a panic here is a bug found).
pub fn fuzz_decode_all(data: &[u8]) {
    views_on(data);
    frames_on(data);

    let decoder = FrameDecoder::new(1 << 16);
    let mut buf = BytesMut::from(data);
    while let Ok(Some(frame)) = decoder.decode(&mut buf) {
        let _ = (frame.len(), frame.body_bytes());
        views_on(frame.body());
    }
    let mut bytes = Bytes::copy_from_slice(data);
    while let Ok(Some(frame)) = decoder.decode_bytes(&mut bytes) {
        views_on(frame.body());
    }

    let mut buf = BytesMut::from(data);
    while let Ok(Some(packet)) = decode_startup(&mut buf) {
        let _ = packet.param("user");
    }
}

/// The borrowed iterator agrees with the decoder: the same frames, then a partial rest exactly
/// when the decoder waits for more bytes.
fn frames_on(data: &[u8]) {
    let decoder = FrameDecoder::new(usize::MAX);
    let mut bytes = Bytes::copy_from_slice(data);
    let mut frames = Frames::new(data);
    for (tag, body) in frames.by_ref() {
        let frame = decoder.decode_bytes(&mut bytes);
        assert!(matches!(frame, Ok(Some(ref f)) if f.tag == tag && f.body() == body));
        views_on(body);
        round_trip(tag, body);
    }
    assert_eq!(frames.rest(), &bytes[..]);
    let waits = matches!(decoder.decode_bytes(&mut bytes), Ok(None)) && !bytes.is_empty();
    assert_eq!(frames.partial(), waits);
    assert_eq!(frames.offset() + frames.rest().len(), data.len());
}

/// A frontend message that decodes re-encodes byte for byte (a DataRow too, under its own tag).
fn round_trip(tag: u8, body: &[u8]) {
    use crate::encode as enc;
    let mut out = bytes::BytesMut::new();
    let encoded = match tag {
        frontend::QUERY => query_text(body).map(|q| enc::query(&mut out, q)),
        frontend::PARSE => {
            parse_message(body).map(|p| enc::parse(&mut out, p.statement, p.query, &p.param_types))
        }
        frontend::BIND => bind_message(body).map(|b| enc::bind(&mut out, &b)),
        frontend::EXECUTE => {
            execute_message(body).map(|e| enc::execute(&mut out, e.portal, e.max_rows))
        }
        frontend::CLOSE => close_or_describe(body).map(|t| enc::close(&mut out, t.kind, t.name)),
        frontend::DESCRIBE => {
            close_or_describe(body).map(|t| enc::describe(&mut out, t.kind, t.name))
        }
        _ => return,
    };
    if let Ok(result) = encoded {
        assert!(result.is_ok());
        assert_eq!(Frames::new(&out).next(), Some((tag, body)));
    }
    if tag == frontend::BIND {
        if let Ok(names) = bind_names(body) {
            let mut out = bytes::BytesMut::new();
            assert!(enc::bind_renamed(&mut out, names.portal, names.statement, names.rest).is_ok());
            assert_eq!(Frames::new(&out).next(), Some((tag, body)));
        }
    }
    if let Ok(row) = data_row(body) {
        let mut out = bytes::BytesMut::new();
        assert!(enc::data_row(&mut out, &row.columns).is_ok());
        assert_eq!(Frames::new(&out).next(), Some((backend::DATA_ROW, body)));
    }
}

fn views_on(body: &[u8]) {
    let _ = ready_for_query_status(body);
    let _ = error_fields(body);
    let _ = parameter_status(body);
    let _ = backend_key_data(body);
    let _ = command_complete_tag(body);
    let _ = query_text(body);
    let _ = parse_message(body);
    let _ = bind_message(body);
    let _ = bind_names(body);
    let _ = data_row(body);
    let _ = notification_response(body);
    let _ = execute_message(body);
    let _ = close_or_describe(body);
    let _ = authentication(body);
    let _ = sasl_initial_response(body);
    let _ = password_text(body);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::encode as enc;

    /// Deterministic xorshift64 so failures reproduce without a seed crate.
    struct Rng(u64);

    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0
        }
        fn below(&mut self, n: usize) -> usize {
            (self.next() % n as u64) as usize
        }
        /// Bytes biased toward the values that steer parsers: NUL, small counts, 0xff, tags.
        fn byte(&mut self) -> u8 {
            const INTERESTING: &[u8] = b"\0\0\0\x01\x02\x04\x05\x08\xff\xff\x7f\x80SPBQEZRpC";
            match self.below(3) {
                0 => INTERESTING[self.below(INTERESTING.len())],
                _ => self.next() as u8,
            }
        }
    }

    type Encoder = Box<dyn Fn(&mut BytesMut)>;

    fn raw(buf: &mut BytesMut, tag: u8, body: &[u8]) {
        buf.extend_from_slice(&[tag]);
        buf.extend_from_slice(&(body.len() as i32 + 4).to_be_bytes());
        buf.extend_from_slice(body);
    }

    /// Valid messages of every kind, to mutate and truncate.
    fn corpus() -> Vec<Vec<u8>> {
        let encoders: Vec<Encoder> = vec![
            Box::new(|b| enc::error_response(b, "ERROR", "42P01", "no such table")),
            Box::new(|b| enc::authentication_md5(b, *b"salt")),
            Box::new(|b| enc::authentication_sasl(b, &["SCRAM-SHA-256"]).unwrap()),
            Box::new(|b| enc::authentication_sasl_continue(b, b"r=abc,s=def,i=4096")),
            Box::new(|b| enc::parameter_status(b, "server_version", "17.0")),
            Box::new(|b| enc::backend_key_data(b, 1, 2)),
            Box::new(|b| enc::ready_for_query(b, b'I')),
            Box::new(|b| enc::row_description(b, &["a", "b"]).unwrap()),
            Box::new(|b| enc::data_row(b, &[Some("x"), None]).unwrap()),
            Box::new(|b| enc::command_complete(b, "SELECT 1")),
            Box::new(|b| enc::startup_message(b, &[("user", "u"), ("database", "d")]).unwrap()),
            Box::new(enc::ssl_request),
            Box::new(|b| enc::cancel_request(b, 3, 4)),
            Box::new(|b| enc::password_message(b, b"pw").unwrap()),
            Box::new(|b| enc::sasl_initial_response(b, "SCRAM-SHA-256", b"n,,n=,r=x").unwrap()),
            Box::new(|b| enc::query(b, "select 1").unwrap()),
            // Client messages written by hand, independently of the encoders.
            Box::new(|b| {
                raw(
                    b,
                    b'B',
                    b"p\0s\0\0\x02\0\0\0\x01\0\x02\0\0\0\x01x\xff\xff\xff\xff\0\x01\0\x01",
                )
            }),
            Box::new(|b| raw(b, b'P', b"s\0select $1\0\0\x01\0\0\0\x17")),
            Box::new(|b| raw(b, b'E', b"p\0\0\0\0\0")),
            Box::new(|b| raw(b, b'D', b"Sst\0")),
            Box::new(|b| enc::parse(b, "s", "select $1", &[23, 0]).unwrap()),
            Box::new(|b| enc::close(b, b'P', "p").unwrap()),
            Box::new(|b| enc::notification_response(b, 7, "c", "{}").unwrap()),
        ];
        encoders
            .iter()
            .map(|f| {
                let mut b = BytesMut::new();
                f(&mut b);
                b.to_vec()
            })
            .collect()
    }

    #[test]
    fn corpus_is_valid() {
        // Guards the hand-written entries: each is one whole frame or startup packet.
        let d = FrameDecoder::new(1 << 16);
        for msg in corpus() {
            let mut tagged = BytesMut::from(&msg[..]);
            let mut untagged = BytesMut::from(&msg[..]);
            let ok = matches!(d.decode(&mut tagged), Ok(Some(_))) && tagged.is_empty()
                || matches!(decode_startup(&mut untagged), Ok(Some(_))) && untagged.is_empty();
            assert!(ok, "{msg:?}");
        }
        let bind = &corpus()[16];
        assert_eq!(bind_message(&bind[5..]).unwrap().params.len(), 2);
        assert_eq!(
            parse_message(&corpus()[17][5..]).unwrap().param_types,
            vec![23]
        );
        assert_eq!(execute_message(&corpus()[18][5..]).unwrap().portal, "p");
        assert_eq!(close_or_describe(&corpus()[19][5..]).unwrap().name, "st");
    }

    #[test]
    fn random_bytes_never_panic() {
        let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
        for i in 0..20_000 {
            let len = if i % 10 == 0 {
                rng.below(400)
            } else {
                rng.below(40)
            };
            let data: Vec<u8> = (0..len).map(|_| rng.byte()).collect();
            fuzz_decode_all(&data);
        }
    }

    #[test]
    fn truncated_and_mutated_messages_never_panic() {
        let mut rng = Rng(0x2545_f491_4f6c_dd1d);
        let corpus = corpus();
        for msg in &corpus {
            for cut in 0..=msg.len() {
                fuzz_decode_all(&msg[..cut]);
                fuzz_decode_all(msg.get(5..cut).unwrap_or_default());
            }
        }
        for _ in 0..20_000 {
            let mut msg = corpus[rng.below(corpus.len())].clone();
            for _ in 0..=rng.below(4) {
                let at = rng.below(msg.len());
                match rng.below(4) {
                    0 => msg[at] = rng.byte(),
                    1 => msg.truncate(at),
                    2 => msg.insert(at, rng.byte()),
                    _ => {
                        let more = corpus[rng.below(corpus.len())].clone();
                        msg.extend(more);
                    }
                }
                if msg.is_empty() {
                    break;
                }
            }
            fuzz_decode_all(&msg);
            fuzz_decode_all(msg.get(5..).unwrap_or_default());
        }
    }

    #[test]
    fn decoders_respect_limits_on_any_input() {
        // Whatever the bytes, a decoded frame is whole and within the limit.
        let mut rng = Rng(7);
        let d = FrameDecoder::new(64);
        for _ in 0..5_000 {
            let len = rng.below(200);
            let data: Vec<u8> = (0..len).map(|_| rng.byte()).collect();
            let mut buf = BytesMut::from(&data[..]);
            while let Ok(Some(f)) = d.decode(&mut buf) {
                assert!(f.len() >= 5 && f.len() <= 65);
                assert_eq!(f.raw[0], f.tag);
            }
        }
    }
}
