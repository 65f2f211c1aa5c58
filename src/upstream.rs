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

/// Endpoint choice per backend, per worker: round robin, or (`load-balance: ewma`) the
/// better of two endpoints picked at random by a moving average of their response times.
/// Round-robin positions reset when the snapshot changes, since backend ids are only valid
/// within one snapshot; the averages are kept by endpoint address.
pub struct Balancer {
    generation: u64,
    next: Vec<u32>,
    /// Response-time averages (seconds) and when each was last updated.
    ewma: FxHashMap<SocketAddr, (f64, std::time::Instant)>,
    rng: u64,
}

/// How fast an endpoint's average forgets: a sample this old weighs 1/e.
const EWMA_DECAY: f64 = 10.0;
/// What a failed connect counts as, in seconds: enough to send traffic elsewhere for a while.
const EWMA_FAILURE: f64 = 5.0;

impl Default for Balancer {
    fn default() -> Self {
        Balancer { generation: 0, next: Vec::new(), ewma: FxHashMap::default(), rng: 0x9E37_79B9_7F4A_7C15 }
    }
}

impl Balancer {
    /// The index of the endpoint to try for `backend`. `attempt` 0 is the first choice
    /// (by `policy`); later attempts go round robin, so each endpoint is tried once.
    pub fn pick(&mut self, snap: &Snapshot, backend: BackendId, attempt: usize) -> usize {
        let endpoints = &snap.backend(backend).endpoints;
        if attempt > 0 || snap.settings.load_balance != crate::snapshot::LoadBalance::Ewma || endpoints.len() < 2 {
            return self.next(snap, backend);
        }
        let n = endpoints.len();
        let a = (self.random() % n as u64) as usize;
        let b = (a + 1 + (self.random() % (n as u64 - 1)) as usize) % n;
        let now = std::time::Instant::now();
        let score = |e: &SocketAddr| self.ewma.get(e).map_or(0.0, |(v, at)| decayed(*v, now.duration_since(*at)));
        if score(&endpoints[b]) < score(&endpoints[a]) {
            b
        } else {
            a
        }
    }

    /// A response from `addr` took `took`.
    pub fn observe(&mut self, addr: SocketAddr, took: std::time::Duration) {
        self.sample(addr, took.as_secs_f64());
    }

    /// A connect to `addr` failed.
    pub fn failed(&mut self, addr: SocketAddr) {
        self.sample(addr, EWMA_FAILURE);
    }

    fn sample(&mut self, addr: SocketAddr, v: f64) {
        let now = std::time::Instant::now();
        let e = self.ewma.entry(addr).or_insert((v, now));
        let w = (-now.duration_since(e.1).as_secs_f64() / EWMA_DECAY).exp();
        *e = (e.0 * w + v * (1.0 - w), now);
        if self.ewma.len() > 65_536 {
            // Endpoints come and go; forget the stalest half rather than grow forever.
            let mut ages: Vec<std::time::Instant> = self.ewma.values().map(|x| x.1).collect();
            ages.sort();
            let cut = ages[ages.len() / 2];
            self.ewma.retain(|_, x| x.1 >= cut);
        }
    }

    fn random(&mut self) -> u64 {
        let mut x = self.rng;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.rng = x;
        x
    }

    /// Round robin.
    fn next(&mut self, snap: &Snapshot, backend: BackendId) -> usize {
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

/// An average of `age` ago, pulled toward zero: an endpoint not heard from for a while gets
/// tried again (as a new one would be).
fn decayed(v: f64, age: std::time::Duration) -> f64 {
    v * (-age.as_secs_f64() / EWMA_DECAY).exp()
}
