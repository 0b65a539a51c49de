//! The session's wait for its next event (client or backend readable or writable, a shutdown
//! phase change), and the eager write that saves most turns of that wait.

use super::*;

pub(super) enum Event {
    ClientRead(std::io::Result<usize>),
    ClientWrote(std::io::Result<usize>),
    BackendRead(std::io::Result<usize>),
    BackendWrote(std::io::Result<usize>),
    /// The server's phase changed, or a trim was asked (see server/phase_signal.rs).
    Signal(crate::server::phase_signal::Wake),
}

impl Session {
    /// The periodic trim found this session: if the client is idle (nothing owed either way),
    /// its queues' room goes back until it sends again (and any buffer still held). Between
    /// transactions of a busy client the queues keep their room: nothing is allocated again
    /// per transaction.
    pub(super) fn trim_if_idle(&mut self) {
        if !self.replies.is_empty() || self.unsynced {
            return;
        }
        // The buffers went back already: next_event releases them whenever nothing is owed.
        self.replies.release_idle();
        self.state.release_idle();
        self.insights.release_idle();
        self.parse_facts = Default::default();
        // It may hold a slice of the read buffer (a Query answered here keeps its analysis).
        self.query_analysis = Default::default();
        let all_given_back = [&self.crbuf, &self.to_client, &self.to_backend]
            .iter()
            .all(|b| b.capacity() == 0);
        self.registered
            .info
            .phase_signal
            .set_trimmed(all_given_back);
    }

    /// Writes what is queued for the client and the backend without waiting, as far as their
    /// sockets take it: the common case needs no turn of the event loop to send a message on.
    /// An error is left to the loop's own write, which meets it again and ends or re-routes.
    pub(super) fn write_now(&mut self) {
        if !self.to_client.is_empty() && self.intake != Intake::Terminated {
            if let Ok(n) = self.client_w.try_write(&self.to_client) {
                self.to_client.advance(n);
            }
        }
        if let Some(lease) = &self.lease {
            if !self.to_backend.is_empty() {
                if let Ok(n) = lease.conn.writer.try_write(&self.to_backend) {
                    self.to_backend.advance(n);
                }
            }
        }
    }

    /// Everything written for the client has left pgtide (TLS records included).
    pub(super) fn client_caught_up(&self) -> bool {
        self.to_client.is_empty() && !self.client_w.flush_owed()
    }

    pub(super) async fn next_event(&mut self) -> Event {
        if self.replies.is_empty() && !self.unsynced {
            // Idle: empty buffers go to the spare list until the client sends again
            // (net/buffer.rs): kept, a burst of clients would leave its peak behind in the
            // allocator's free lists.
            buffer::release_read(&mut self.crbuf);
            buffer::release(&mut self.to_client);
            buffer::release(&mut self.to_backend);
        }
        let backend = self
            .lease
            .as_mut()
            .map(|l| (&mut l.conn.reader, &mut l.conn.writer, &mut l.conn.rbuf));
        let (b_reader, b_writer, b_rbuf) = match backend {
            Some((r, w, b)) => (Some(r), Some(w), Some(b)),
            None => (None, None, None),
        };
        let has_backend = b_reader.is_some();
        let backend_flush = b_writer.as_ref().is_some_and(|w| w.flush_owed());
        // A client that left (Terminated) is written nothing more, flushes included.
        let client_flush = self.client_w.flush_owed() && self.intake != Intake::Terminated;
        let client_reads = self.intake.reads()
            && self.to_backend.len() < HIGH_WATER
            && crate::session::backlog::queued(&self.to_client, &self.replies) < HIGH_WATER
            && !((self.router.held() || self.statements.held()) && self.crbuf.len() >= HIGH_WATER);
        tokio::select! {
            biased;
            wake = self.registered.info.phase_signal.changed() => Event::Signal(wake),
            r = write_or_flush(&mut self.client_w, &self.to_client), if !self.to_client.is_empty() || client_flush => Event::ClientWrote(r),
            r = write_opt(b_writer, &self.to_backend), if has_backend && (!self.to_backend.is_empty() || backend_flush) => Event::BackendWrote(r),
            r = read_opt(b_reader, b_rbuf), if has_backend && self.to_client.len() < HIGH_WATER => Event::BackendRead(r),
            r = buffer::read_lazy(&mut self.client_r, &mut self.crbuf), if client_reads => Event::ClientRead(r),
        }
    }
}

async fn read_opt(r: Option<&mut ReadHalf>, buf: Option<&mut BytesMut>) -> std::io::Result<usize> {
    match (r, buf) {
        (Some(r), Some(buf)) => r.read_buf(buf).await,
        _ => std::future::pending().await,
    }
}

async fn write_opt(w: Option<&mut WriteHalf>, data: &[u8]) -> std::io::Result<usize> {
    match w {
        Some(w) => write_or_flush(w, data).await,
        None => std::future::pending().await,
    }
}

/// Writes what is queued, or with nothing queued flushes what the transport still holds
/// (TLS records the socket had no room for): Ok(0) then.
async fn write_or_flush(w: &mut WriteHalf, data: &[u8]) -> std::io::Result<usize> {
    if data.is_empty() {
        w.flush().await.map(|()| 0)
    } else {
        w.write(data).await
    }
}
