//! Who is connected, for the admin console's SHOW CLIENTS / SHOW SERVERS: each session
//! registers itself and keeps a small live record (state, backend, pins) up to date at the few
//! points where they change (lease, release, pin), never per message.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Instant, SystemTime};

use crate::upstream::pool::lock;

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Live {
    /// "idle" (no backend), "active" (holds a backend).
    pub state: &'static str,
    /// host:port and connection id of the backend it holds.
    pub backend: Option<(Arc<str>, u64)>,
    /// Why it keeps its backend between transactions.
    pub pins: Vec<&'static str>,
    /// Transactions run so far.
    pub transactions: u64,
}

#[derive(Debug)]
pub struct ClientInfo {
    pub id: u64,
    pub addr: Option<SocketAddr>,
    pub user: String,
    pub database: String,
    pub application_name: String,
    pub connected_at: SystemTime,
    pub connected: Instant,
    live: Mutex<Live>,
    /// Wakes the session when the server's phase changes.
    pub phase_signal: crate::server::phase_signal::PhaseSignal,
}

impl ClientInfo {
    pub fn live(&self) -> Live {
        lock(&self.live).clone()
    }

    pub fn update(&self, f: impl FnOnce(&mut Live)) {
        f(&mut lock(&self.live));
    }
}

#[derive(Debug, Default)]
pub struct ClientRegistry {
    map: Mutex<HashMap<u64, Arc<ClientInfo>>>,
}

/// Keeps a client listed until dropped (the session ended).
#[derive(Debug)]
pub struct Registered {
    registry: Arc<ClientRegistry>,
    pub info: Arc<ClientInfo>,
}

impl Drop for Registered {
    fn drop(&mut self) {
        lock(&self.registry.map).remove(&self.info.id);
    }
}

/// What a session says about itself when it registers.
#[derive(Debug, Clone)]
pub struct Identity {
    pub addr: Option<SocketAddr>,
    pub user: String,
    pub database: String,
    pub application_name: String,
}

impl ClientRegistry {
    pub fn register(self: &Arc<Self>, id: u64, who: Identity) -> Registered {
        let info = Arc::new(ClientInfo {
            id,
            addr: who.addr,
            user: who.user,
            database: who.database,
            application_name: who.application_name,
            connected_at: SystemTime::now(),
            connected: Instant::now(),
            live: Mutex::new(Live {
                state: "idle",
                ..Live::default()
            }),
            phase_signal: Default::default(),
        });
        lock(&self.map).insert(id, info.clone());
        Registered {
            registry: self.clone(),
            info,
        }
    }

    /// The server's phase changed: every session hears it.
    pub fn phase_changed(&self) {
        for info in lock(&self.map).values() {
            info.phase_signal.notify();
        }
    }

    /// Asks every session that may hold idle memory to give it back if it is idle. The
    /// sessions are woken after the registry's lock is let go: connects and disconnects need it.
    pub fn trim_idle(&self) {
        let sessions: Vec<Arc<ClientInfo>> = lock(&self.map).values().cloned().collect();
        for info in sessions {
            info.phase_signal.request_trim();
        }
    }

    /// Every connected client, oldest first.
    pub fn all(&self) -> Vec<Arc<ClientInfo>> {
        let mut all: Vec<_> = lock(&self.map).values().cloned().collect();
        all.sort_by_key(|c| c.id);
        all
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registered_until_dropped() {
        let registry = Arc::new(ClientRegistry::default());
        let who = Identity {
            addr: None,
            user: "app".into(),
            database: "app".into(),
            application_name: "web".into(),
        };
        let a = registry.register(1, who.clone());
        let b = registry.register(2, who);
        a.info.update(|l| l.pins.push("listen"));
        assert_eq!(registry.all().len(), 2);
        assert_eq!(registry.all()[0].live().pins, vec!["listen"]);
        drop(a);
        assert_eq!(registry.all().len(), 1);
        drop(b);
        assert!(registry.all().is_empty());
    }
}
