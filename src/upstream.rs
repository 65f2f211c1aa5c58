//! Per-worker upstream state: keep-alive pools per endpoint and round-robin balancing.
//! Owned by one worker thread; never shared, never locked.

use std::cell::RefCell;
use std::net::SocketAddr;

use rustc_hash::FxHashMap;

use crate::runtime::deadline::Deadline;
use crate::snapshot::{BackendId, Snapshot};

/// Idle connections per endpoint, newest last.
pub struct Pools<S> {
    /// Each connection with the deadline tick after which it is too old to use.
    idle: RefCell<FxHashMap<SocketAddr, Vec<(S, Deadline)>>>,
}

impl<S> Default for Pools<S> {
    fn default() -> Self {
        Pools { idle: RefCell::default() }
    }
}

impl<S> Pools<S> {
    /// The most recently used idle connection to `addr` that has not expired by `now`.
    pub fn take(&self, addr: SocketAddr, now: Deadline) -> Option<S> {
        let mut idle = self.idle.borrow_mut();
        let list = idle.get_mut(&addr)?;
        while let Some((s, expires)) = list.pop() {
            if expires > now {
                return Some(s);
            }
            // Older ones further down are older still.
            list.clear();
        }
        None
    }

    /// Pools `s` until `expires` (see [`crate::runtime::deadline::Deadlines::after`]),
    /// keeping at most `max_idle` per endpoint (the oldest goes).
    pub fn put(&self, addr: SocketAddr, s: S, expires: Deadline, max_idle: usize) {
        let mut idle = self.idle.borrow_mut();
        let list = idle.entry(addr).or_default();
        if max_idle == 0 {
            return;
        }
        while list.len() >= max_idle {
            list.remove(0);
        }
        list.push((s, expires));
    }

    /// Drops idle connections that expired, and pools of endpoints that left the snapshot.
    pub fn sweep(&self, snap: &Snapshot, now: Deadline) {
        let mut idle = self.idle.borrow_mut();
        idle.retain(|addr, list| {
            list.retain(|(_, expires)| *expires > now);
            !list.is_empty() && snap.has_endpoint(addr)
        });
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
