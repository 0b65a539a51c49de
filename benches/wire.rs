//! Micro-benchmarks of the wire layer on the proxy's hot path.
//!
//! Every reported time is **per message** (or per packet / per view): each benchmark decodes a
//! whole realistic buffer, untimed set-up excluded, and divides the elapsed time by the number of
//! messages in it.
//!
//! - `client_stream/*`: `FrameDecoder::decode` splitting a pipelined client stream off the read
//!   buffer, as the session does with everything a client sends.
//! - `startup/*`: `decode_startup` on a libpq-like StartupMessage, an SSLRequest and a CancelRequest.
//! - `bind_view/*`: the `bind_message` view (1 and 10 parameters).
//! - `backend_stream/*`: a reply of RowDescription + 1,000 DataRows + CommandComplete +
//!   ReadyForQuery; `frames` only splits frames, `relay` does what the session does per backend
//!   message (split, check the state-changing tags, the reply queue, copy into the client buffer).
//!
//! Run: `cargo bench --bench wire` (quick: `cargo bench --bench wire -- --quick`).

use std::hint::black_box;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use criterion::{criterion_group, criterion_main, BatchSize, Criterion};
use pgtide::internals::{Completion, ReplyQueue, Verdict};
use pgtide_wire::{
    backend as btag, encode, frontend as ftag, target, BindView, FrameDecoder, Frames,
};

const MAX_MESSAGE: usize = 64 << 20;
const PGBENCH_SELECT: &str = "SELECT abalance FROM pgbench_accounts WHERE aid = $1;";

/// A Bind with text parameters and text results, as libpq sends it.
fn bind(buf: &mut BytesMut, statement: &str, params: &[&str]) {
    let view = BindView {
        portal: "",
        statement,
        param_formats: Vec::new(), // all parameters in text format
        params: params.iter().map(|p| Some(p.as_bytes())).collect(),
        result_formats: Vec::new(), // all results in text format
    };
    encode::bind(buf, &view).expect("small message");
}

/// The body of the one message in `buf`.
fn body_of(buf: &[u8]) -> Vec<u8> {
    Frames::new(buf).next().expect("one message").1.to_vec()
}

/// What `pgbench -M extended` and `-M simple` clients pipeline at a proxy, interleaved:
/// `rounds` x (Parse, Bind, Describe portal, Execute, Sync, Query). Returns the bytes and the
/// number of messages.
fn client_stream(rounds: usize) -> (BytesMut, usize) {
    let mut buf = BytesMut::new();
    for i in 0..rounds {
        let aid = (i * 7919 % 1_000_000 + 1).to_string();
        encode::parse(&mut buf, "", PGBENCH_SELECT, &[23]).expect("small message");
        bind(&mut buf, "", &[&aid]);
        encode::describe(&mut buf, target::PORTAL, "").expect("small message");
        encode::execute(&mut buf, "", 0).expect("small message");
        encode::sync(&mut buf);
        encode::query(
            &mut buf,
            &format!("SELECT abalance FROM pgbench_accounts WHERE aid = {aid};"),
        )
        .expect("small message");
    }
    (buf, rounds * 6)
}

/// RowDescription + `rows` DataRows shaped like pgbench_accounts (aid, bid, abalance,
/// filler char(84)) + CommandComplete + ReadyForQuery. Returns the bytes and the message count.
fn backend_reply(rows: usize) -> (BytesMut, usize) {
    let mut buf = BytesMut::new();
    encode::row_description(&mut buf, &["aid", "bid", "abalance", "filler"]).expect("small");
    let filler = " ".repeat(84);
    for i in 0..rows {
        let aid = (i + 1).to_string();
        let bid = (i / 100_000 + 1).to_string();
        encode::data_row(
            &mut buf,
            &[Some(aid.as_str()), Some(&bid), Some("0"), Some(&filler)],
        )
        .expect("small message");
    }
    encode::command_complete(&mut buf, &format!("SELECT {rows}"));
    encode::ready_for_query(&mut buf, b'I');
    (buf, rows + 3)
}

/// Times `run` on a fresh copy of `template` per iteration (the copy is not timed) and reports
/// the time per message.
fn per_message<F>(iters: u64, template: &BytesMut, messages: usize, mut run: F) -> Duration
where
    F: FnMut(&mut BytesMut),
{
    let mut total = Duration::ZERO;
    for _ in 0..iters {
        let mut buf = template.clone();
        let start = Instant::now();
        run(&mut buf);
        total += start.elapsed();
        assert!(buf.is_empty(), "every message decoded");
    }
    total / u32::try_from(messages).expect("few messages")
}

fn bench_client_stream(c: &mut Criterion) {
    let decoder = FrameDecoder::new(MAX_MESSAGE);
    let (stream, messages) = client_stream(100);
    let mut g = c.benchmark_group("client_stream");
    g.bench_function("decode_per_msg", |b| {
        b.iter_custom(|iters| {
            per_message(iters, &stream, messages, |buf| {
                while let Ok(Some(frame)) = decoder.decode(buf) {
                    black_box(frame);
                }
            })
        })
    });
    // The session also reads the SQL of Query and Parse and the statement of Bind.
    g.bench_function("decode_and_view_per_msg", |b| {
        b.iter_custom(|iters| {
            per_message(iters, &stream, messages, |buf| {
                while let Ok(Some(frame)) = decoder.decode(buf) {
                    match frame.tag {
                        ftag::QUERY => {
                            let _ = black_box(pgtide_wire::query_text(frame.body()));
                        }
                        ftag::PARSE => {
                            let _ = black_box(pgtide_wire::parse_message(frame.body()));
                        }
                        ftag::BIND => {
                            let _ = black_box(pgtide_wire::bind_message(frame.body()));
                        }
                        ftag::EXECUTE => {
                            let _ = black_box(pgtide_wire::execute_message(frame.body()));
                        }
                        _ => {}
                    }
                    black_box(frame);
                }
            })
        })
    });
    g.finish();
}

fn bench_startup(c: &mut Criterion) {
    let mut startup = BytesMut::new();
    encode::startup_message(
        &mut startup,
        &[
            ("user", "app"),
            ("database", "app"),
            ("application_name", "pgbench"),
            ("client_encoding", "UTF8"),
            ("DateStyle", "ISO"),
        ],
    )
    .expect("small packet");
    let mut ssl = BytesMut::new();
    encode::ssl_request(&mut ssl);
    let mut cancel = BytesMut::new();
    encode::cancel_request(&mut cancel, 4242, 0x5eed);

    let mut g = c.benchmark_group("startup");
    for (name, packet) in [
        ("startup_message", &startup),
        ("ssl_request", &ssl),
        ("cancel_request", &cancel),
    ] {
        g.bench_function(name, |b| {
            b.iter_batched_ref(
                || packet.clone(),
                |buf| {
                    let p = pgtide_wire::decode_startup(buf);
                    assert!(matches!(p, Ok(Some(_))));
                    black_box(p)
                },
                BatchSize::SmallInput,
            )
        });
    }
    g.finish();
}

fn bench_bind_view(c: &mut Criterion) {
    let mut buf = BytesMut::new();
    bind(&mut buf, "pgtide_s12", &["48213"]);
    let one = body_of(&buf);
    let ten_values: Vec<String> = (0..10).map(|i| format!("value-{i}-{}", i * 31)).collect();
    let ten_refs: Vec<&str> = ten_values.iter().map(String::as_str).collect();
    let mut buf = BytesMut::new();
    bind(&mut buf, "pgtide_s12", &ten_refs);
    let ten = body_of(&buf);

    let mut g = c.benchmark_group("bind_view");
    for (name, body) in [("1_param", &one), ("10_params", &ten)] {
        g.bench_function(name, |b| {
            b.iter(|| {
                let v = pgtide_wire::bind_message(black_box(body));
                assert!(v.is_ok());
                black_box(v)
            })
        });
    }
    g.finish();
}

fn bench_backend_stream(c: &mut Criterion) {
    let decoder = FrameDecoder::new(MAX_MESSAGE);
    let (reply, messages) = backend_reply(1_000);
    let mut g = c.benchmark_group("backend_stream_1000_rows");
    g.bench_function("frames_per_msg", |b| {
        b.iter_custom(|iters| {
            per_message(iters, &reply, messages, |buf| {
                while let Ok(Some(frame)) = decoder.decode(buf) {
                    black_box(frame);
                }
            })
        })
    });
    g.bench_function("relay_per_msg", |b| {
        let mut to_client = BytesMut::with_capacity(reply.len());
        let mut queue = ReplyQueue::default();
        let mut forgotten = Vec::new();
        b.iter_custom(|iters| {
            per_message(iters, &reply, messages, |buf| {
                to_client.clear();
                queue.expect(Completion::Ready);
                let mut status = 0u8;
                while let Ok(Some(frame)) = decoder.decode(buf) {
                    match frame.tag {
                        btag::READY_FOR_QUERY => {
                            status = pgtide_wire::ready_for_query_status(frame.body())
                                .unwrap_or_default();
                        }
                        btag::PARAMETER_STATUS => {
                            let _ = black_box(pgtide_wire::parameter_status(frame.body()));
                        }
                        _ => {}
                    }
                    if queue.on_backend_message(frame.tag, &mut forgotten) == Verdict::Forward {
                        to_client.extend_from_slice(&frame.raw);
                    }
                }
                assert_eq!(status, b'I');
                assert!(queue.is_empty());
                black_box(&to_client);
            })
        })
    });
    g.finish();
}

criterion_group!(
    benches,
    bench_client_stream,
    bench_startup,
    bench_bind_view,
    bench_backend_stream
);
criterion_main!(benches);
