//! The admin console: clients connect to database `pgtide` as a user with `admin = true` and
//! speak simple queries (psql works); the commands are in `command::COMMANDS` and
//! docs/reference/admin.md. Results are ordinary RowDescription / DataRow sets of text columns.

mod command;
mod show;

use std::sync::Arc;

use bytes::BytesMut;
use pgtide_wire::{encode, frontend as ftag, FrameDecoder};
use tokio::io::AsyncReadExt;
use tokio::sync::{mpsc, oneshot};

use crate::error::ProxyError;
use crate::net::Stream;
use crate::server::shared::{Phase, Shared};
use crate::upstream::pool::lock;
use command::Command;

/// What the console asks of whoever runs the process.
#[derive(Debug)]
pub enum Control {
    /// Re-read the configuration; the answer says what changed or why it was refused.
    Reload(oneshot::Sender<Result<String, String>>),
    /// Drain and exit, as on SIGTERM.
    Shutdown,
}

/// The way to the process owner (the binary listens; an embedding may not).
#[derive(Debug, Default)]
pub struct ControlChannel {
    tx: std::sync::Mutex<Option<mpsc::UnboundedSender<Control>>>,
}

impl ControlChannel {
    /// Starts listening (the binary, once).
    pub fn listen(&self) -> mpsc::UnboundedReceiver<Control> {
        let (tx, rx) = mpsc::unbounded_channel();
        *lock(&self.tx) = Some(tx);
        rx
    }

    /// False when nobody listens.
    fn send(&self, c: Control) -> bool {
        lock(&self.tx).as_ref().is_some_and(|tx| tx.send(c).is_ok())
    }
}

/// One command's answer.
pub(crate) enum Reply {
    Rows {
        columns: Vec<&'static str>,
        rows: Vec<Vec<Option<String>>>,
    },
    Done(String),
    Error(ProxyError),
}

/// Runs the console on a client that has authenticated as an admin.
pub(crate) async fn run(
    mut stream: Stream,
    mut buf: BytesMut,
    shared: Arc<Shared>,
    max_message: usize,
) {
    let mut out = BytesMut::with_capacity(1024);
    encode::authentication_ok(&mut out);
    for (k, v) in [
        (
            "server_version",
            concat!("15.0 (pgtide ", env!("CARGO_PKG_VERSION"), ")"),
        ),
        ("server_encoding", "UTF8"),
        ("client_encoding", "UTF8"),
        ("DateStyle", "ISO, MDY"),
        ("integer_datetimes", "on"),
        ("standard_conforming_strings", "on"),
        ("application_name", "pgtide admin"),
    ] {
        encode::parameter_status(&mut out, k, v);
    }
    encode::backend_key_data(&mut out, 0, 0);
    encode::ready_for_query(&mut out, pgtide_wire::status::IDLE);
    let decoder = FrameDecoder::new(max_message);
    let mut skip_until_sync = false;
    let mut phase = shared.phase.subscribe();
    loop {
        if !out.is_empty() {
            if crate::net::send_all(&mut stream, &out).await.is_err() {
                return;
            }
            out.clear();
        }
        let frame = loop {
            match decoder.decode(&mut buf) {
                Ok(Some(f)) => break Some(f),
                Ok(None) => {}
                Err(e) => {
                    ProxyError::ClientProtocol(e).write_to(&mut out);
                    break None;
                }
            }
            if shared.phase() != Phase::Running {
                // Draining or stopping: the console goes too (it must not hold up the drain).
                ProxyError::ShuttingDown.write_to(&mut out);
                let _ = crate::net::send_all(&mut stream, &out).await;
                return;
            }
            tokio::select! {
                read = stream.read_buf(&mut buf) => match read {
                    Ok(0) | Err(_) => return,
                    Ok(_) => {}
                },
                _ = phase.changed() => {}
            }
        };
        let Some(frame) = frame else {
            let _ = crate::net::send_all(&mut stream, &out).await;
            return;
        };
        match frame.tag {
            ftag::TERMINATE => return,
            ftag::QUERY => {
                let sql = pgtide_wire::query_text(frame.body()).unwrap_or_default();
                for reply in execute(&shared, sql).await {
                    write_reply(&mut out, reply);
                }
                encode::ready_for_query(&mut out, pgtide_wire::status::IDLE);
            }
            ftag::SYNC => {
                skip_until_sync = false;
                encode::ready_for_query(&mut out, pgtide_wire::status::IDLE);
            }
            _ if skip_until_sync => {}
            _ => {
                ProxyError::AdminSimpleQueryOnly.write_to(&mut out);
                skip_until_sync = true;
            }
        }
    }
}

fn write_reply(out: &mut BytesMut, reply: Reply) {
    match reply {
        Reply::Rows { columns, rows } => {
            let start = out.len();
            let written = encode::row_description(out, &columns)
                .and_then(|()| rows.iter().try_for_each(|row| encode::data_row(out, row)));
            match written {
                Ok(()) => encode::command_complete(out, "SHOW"),
                Err(e) => {
                    out.truncate(start);
                    encode::error_response(out, "ERROR", e.sqlstate(), &e.to_string());
                }
            }
        }
        Reply::Done(tag) => encode::command_complete(out, &tag),
        Reply::Error(e) => e.write_to(out),
    }
}

/// Runs every statement of a console query string.
async fn execute(shared: &Arc<Shared>, sql: &str) -> Vec<Reply> {
    let statements = pgtide_sql::split_statements(sql);
    if statements.is_empty() {
        return vec![Reply::Done("EMPTY".into())];
    }
    let mut replies = Vec::new();
    for stmt in statements {
        let reply = command(shared, stmt).await;
        let failed = matches!(reply, Reply::Error(..));
        replies.push(reply);
        if failed {
            break;
        }
    }
    replies
}

async fn command(shared: &Arc<Shared>, stmt: &str) -> Reply {
    let words: Vec<String> = pgtide_sql::tokens(stmt)
        .filter_map(|t| t.ident().map(|w| w.to_string()))
        .collect();
    let command = match command::parse(&words, stmt) {
        Ok(c) => c,
        Err(e) => return Reply::Error(e),
    };
    match command {
        Command::Show(topic) => show::show(shared, topic),
        Command::Pause(db) => {
            for db in databases(shared, db.as_deref()) {
                shared.pause.pause(&db);
            }
            Reply::Done("PAUSE".into())
        }
        Command::Resume(db) => {
            shared.pause.resume(db.as_deref());
            Reply::Done("RESUME".into())
        }
        Command::Reconnect(db) => {
            let dbs = databases(shared, db.as_deref());
            for pool in shared.pools.all() {
                if dbs.contains(&pool.database) {
                    pool.reconnect();
                }
            }
            Reply::Done("RECONNECT".into())
        }
        Command::Reload => {
            let (tx, rx) = oneshot::channel();
            if !shared.control.send(Control::Reload(tx)) {
                return Reply::Error(ProxyError::ReloadUnavailable);
            }
            match rx.await {
                Ok(Ok(_)) => Reply::Done("RELOAD".into()),
                Ok(Err(why)) => Reply::Error(ProxyError::ReloadRefused(why)),
                Err(_) => Reply::Error(ProxyError::ReloadUnanswered),
            }
        }
        Command::Shutdown => {
            if !shared.control.send(Control::Shutdown) {
                shared.set_phase(Phase::Draining);
            }
            Reply::Done("SHUTDOWN".into())
        }
        Command::ResetQueries => show::reset_queries(shared),
        Command::CacheClear(table) => show::cache_clear(shared, table.as_ref()),
    }
}

/// The named database, or every configured one.
fn databases(shared: &Shared, name: Option<&str>) -> Vec<String> {
    let config = shared.config.load();
    match name {
        Some(n) => vec![n.to_string()],
        None => config.databases.iter().map(|d| d.name.clone()).collect(),
    }
}
