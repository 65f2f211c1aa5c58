//! Per-worker upstream state: keep-alive pools per endpoint and round-robin balancing.
//! Owned by one worker thread; never shared, never locked.

use std::cell::RefCell;
use std::net::SocketAddr;
use std::time::Duration;

use rustc_hash::FxHashMap;
use tokio::time::Instant;

use crate::snapshot::{BackendId, Snapshot};

/// Idle connections per endpoint, newest last.
pub struct Pools<S> {
    idle: RefCell<FxHashMap<SocketAddr, Vec<(S, Instant)>>>,
    max_idle_per_endpoint: usize,
}

impl<S> Pools<S> {
    pub fn new(max_idle_per_endpoint: usize) -> Self {
        Pools { idle: RefCell::default(), max_idle_per_endpoint }
    }

    /// The most recently used idle connection to `addr` that has not idled too long.
    pub fn take(&self, addr: SocketAddr, idle_timeout: Duration) -> Option<S> {
        let mut idle = self.idle.borrow_mut();
        let list = idle.get_mut(&addr)?;
        let now = Instant::now();
        while let Some((s, since)) = list.pop() {
            if now.duration_since(since) < idle_timeout {
                return Some(s);
            }
            // Older ones further down are older still.
            list.clear();
        }
        None
    }

    pub fn put(&self, addr: SocketAddr, s: S) {
        let mut idle = self.idle.borrow_mut();
        let list = idle.entry(addr).or_default();
        if list.len() >= self.max_idle_per_endpoint {
            list.remove(0);
        }
        list.push((s, Instant::now()));
    }

    /// Drops idle connections that timed out, and pools of endpoints that left the snapshot.
    pub fn sweep(&self, snap: &Snapshot) {
        let now = Instant::now();
        let timeout = snap.settings.upstream_idle_timeout;
        let mut idle = self.idle.borrow_mut();
        idle.retain(|addr, list| {
            list.retain(|(_, since)| now.duration_since(*since) < timeout);
            !list.is_empty() && snap.backends.iter().any(|b| b.endpoints.contains(addr))
        });
    }

    pub fn idle_count(&self) -> usize {
        self.idle.borrow().values().map(Vec::len).sum()
    }
}

/// Round robin per backend, per worker. Reset when the snapshot changes, since backend ids
/// are only valid within one snapshot.
#[derive(Default)]
pub struct RoundRobin {
    generation: u64,
    next: Vec<u32>,
}

impl RoundRobin {
    /// The index of the endpoint to try next for `backend`.
    pub fn next(&mut self, snap: &Snapshot, backend: BackendId) -> usize {
        if self.generation != snap.generation || self.next.len() != snap.backends.len() {
            self.generation = snap.generation;
            self.next.clear();
            self.next.resize(snap.backends.len(), 0);
        }
        let n = snap.backend(backend).endpoints.len().max(1);
        let slot = &mut self.next[backend as usize];
        let i = *slot as usize % n;
        *slot = slot.wrapping_add(1);
        i
    }
}
