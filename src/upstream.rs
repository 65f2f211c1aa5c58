//! Per-worker upstream state: keep-alive pools per endpoint and round-robin balancing.
//! Owned by one worker thread; never shared, never locked.

use std::cell::RefCell;
use std::net::SocketAddr;

use rustc_hash::FxHashMap;

use crate::runtime::deadline::Deadline;
use crate::snapshot::{BackendId, Snapshot};

/// Where a pooled connection goes and how it was secured: the endpoint, and 0 for plain
/// connections or the id of the TLS profile it was made (and its certificate verified) with.
pub type PoolKey = (SocketAddr, u64);

/// The pool key of connections to `addr` under `tls`.
pub fn pool_key(addr: SocketAddr, tls: Option<&crate::snapshot::upstream_tls::UpstreamTls>) -> PoolKey {
    (addr, tls.map_or(0, |t| t.id))
}

/// Idle connections per endpoint and TLS profile, newest last.
pub struct Pools<S> {
    /// Each connection with the deadline tick after which it is too old to use.
    idle: RefCell<FxHashMap<PoolKey, Vec<(S, Deadline)>>>,
}

impl<S> Default for Pools<S> {
    fn default() -> Self {
        Pools { idle: RefCell::default() }
    }
}

impl<S> Pools<S> {
    /// The most recently used idle connection of `key` that has not expired by `now`.
    pub fn take(&self, key: PoolKey, now: Deadline) -> Option<S> {
        let mut idle = self.idle.borrow_mut();
        let list = idle.get_mut(&key)?;
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
    pub fn put(&self, key: PoolKey, s: S, expires: Deadline, max_idle: usize) {
        let mut idle = self.idle.borrow_mut();
        let list = idle.entry(key).or_default();
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
        idle.retain(|(addr, _), list| {
            list.retain(|(_, expires)| *expires > now);
            !list.is_empty() && snap.has_endpoint(addr)
        });
    }
}

/// How a request's endpoint is chosen, as the request pipeline decided it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Pick {
    /// Round robin or EWMA (`load-balance`, the ConfigMap's or the Ingress's).
    Policy(crate::snapshot::LoadBalance),
    /// Consistent hashing of a key (`upstream-hash-by`, balanced affinity): the endpoint
    /// [`rendezvous`] gives, or with `subset` > 0 one of the `subset` endpoints that rank
    /// highest for the key, in turn.
    Hash { key: u64, subset: u32 },
    /// This endpoint (persistent affinity), while it is one of the backend's.
    Endpoint(SocketAddr),
}

/// The next number of a xorshift64 generator (`state` must not be 0).
pub fn xorshift(state: &mut u64) -> u64 {
    let mut x = *state;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    *state = x;
    x
}

/// A 64-bit finaliser (splitmix64's): every input bit moves every output bit.
pub fn mix(mut x: u64) -> u64 {
    x ^= x >> 30;
    x = x.wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x ^= x >> 27;
    x = x.wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^ (x >> 31)
}

/// How endpoint `addr` ranks for `key` in rendezvous (highest random weight) hashing.
fn weight(key: u64, addr: &SocketAddr) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut h = rustc_hash::FxHasher::default();
    addr.hash(&mut h);
    mix(key ^ mix(h.finish()))
}

/// The endpoint a key maps to by rendezvous hashing: the one that ranks highest for it. When
/// an endpoint leaves, only the keys it held move (each to its own next best); when one
/// joins, it takes about 1/(N+1) of the keys. None: no endpoints.
pub fn rendezvous(endpoints: &[SocketAddr], key: u64) -> Option<usize> {
    (0..endpoints.len()).max_by_key(|&i| weight(key, &endpoints[i]))
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
    /// (by `pick`); later attempts go round robin, so each endpoint is tried once.
    pub fn pick(&mut self, snap: &Snapshot, backend: BackendId, attempt: usize, pick: Pick) -> usize {
        let endpoints = &snap.backend(backend).endpoints;
        if attempt > 0 || endpoints.len() < 2 {
            return self.next(snap, backend);
        }
        match pick {
            Pick::Policy(crate::snapshot::LoadBalance::Ewma) => {}
            Pick::Policy(_) => return self.next(snap, backend),
            Pick::Hash { key, subset: 0 } => return rendezvous(endpoints, key).unwrap_or(0),
            Pick::Hash { key, subset } => {
                // The `subset` best-ranked endpoints for the key, one of them at random.
                let mut ranked: Vec<(u64, usize)> =
                    (0..endpoints.len()).map(|i| (weight(key, &endpoints[i]), i)).collect();
                let k = (subset as usize).min(ranked.len());
                ranked.select_nth_unstable_by(k - 1, |a, b| b.0.cmp(&a.0));
                return ranked[(self.random() % k as u64) as usize].1;
            }
            Pick::Endpoint(addr) => {
                return endpoints.binary_search(&addr).unwrap_or_else(|_| self.next(snap, backend));
            }
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

    /// A connect to `addr` failed: its average becomes at least [`EWMA_FAILURE`] at once (a
    /// blended sample would barely move an average updated a moment ago, since samples weigh
    /// by the time between them), and fades from there like any other.
    pub fn failed(&mut self, addr: SocketAddr) {
        let now = std::time::Instant::now();
        let current = self.ewma.get(&addr).map_or(0.0, |(v, at)| decayed(*v, now.duration_since(*at)));
        self.ewma.insert(addr, (current.max(EWMA_FAILURE), now));
    }

    fn sample(&mut self, addr: SocketAddr, v: f64) {
        let now = std::time::Instant::now();
        let e = self.ewma.entry(addr).or_insert((v, now));
        let w = (-now.duration_since(e.1).as_secs_f64() / EWMA_DECAY).exp();
        // Peak-sensitive: a slower response than the average takes over at once (a blend
        // would weigh it by the time since the last sample, next to nothing under load);
        // faster ones pull the average down gradually.
        let blended = e.0 * w + v * (1.0 - w);
        *e = (if v > blended { v } else { blended }, now);
        if self.ewma.len() > 65_536 {
            // Endpoints come and go; forget the stalest half rather than grow forever.
            let mut ages: Vec<std::time::Instant> = self.ewma.values().map(|x| x.1).collect();
            ages.sort();
            let cut = ages[ages.len() / 2];
            self.ewma.retain(|_, x| x.1 >= cut);
        }
    }

    fn random(&mut self) -> u64 {
        xorshift(&mut self.rng)
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::snapshot::LoadBalance;
    use std::time::Duration;

    /// A snapshot with one backend of `n` ready endpoints (10.0.0.1..n:8080; never dialled).
    fn snapshot(n: u8, lb: LoadBalance) -> Snapshot {
        let addresses: Vec<String> = (1..=n).map(|i| format!("10.0.0.{i}")).collect();
        let yaml = format!(
            r#"
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata: {{name: i, namespace: default}}
spec:
  ingressClassName: ringress
  rules: [{{http: {{paths: [{{path: /, pathType: Prefix, backend: {{service: {{name: s, port: {{number: 80}}}}}}}}]}}}}]
---
apiVersion: v1
kind: Service
metadata: {{name: s, namespace: default}}
spec: {{ports: [{{port: 80, targetPort: 8080}}]}}
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {{name: s-1, namespace: default, labels: {{kubernetes.io/service-name: s}}}}
addressType: IPv4
endpoints: [{{addresses: [{}], conditions: {{ready: true}}}}]
ports: [{{port: 8080}}]
"#,
            addresses.join(", ")
        );
        let objects = crate::model::parse_documents(&yaml).expect("test YAML parses");
        let mut snap = crate::snapshot::build(&objects, &Default::default());
        snap.settings.load_balance = lb;
        snap.generation = 1;
        snap
    }

    fn policy(snap: &Snapshot) -> Pick {
        Pick::Policy(snap.settings.load_balance)
    }

    #[test]
    fn consistent_hashing_moves_only_the_keys_of_the_endpoint_that_left() {
        let all: Vec<SocketAddr> = (1..=10).map(|i| SocketAddr::from(([10, 0, 0, i], 8080))).collect();
        let fewer: Vec<SocketAddr> = all.iter().copied().filter(|a| a.ip().to_string() != "10.0.0.4").collect();
        let (mut moved, mut held, mut counts) = (0, 0, [0usize; 10]);
        for key in 0..20_000u64 {
            let before = all[rendezvous(&all, mix(key)).unwrap()];
            counts[rendezvous(&all, mix(key)).unwrap()] += 1;
            let after = fewer[rendezvous(&fewer, mix(key)).unwrap()];
            held += (before.ip().to_string() == "10.0.0.4") as usize;
            moved += (before != after) as usize;
        }
        assert_eq!(moved, held, "only the keys the departed endpoint held move");
        assert!((1_600..2_400).contains(&held), "about 1/10 of keys: {held}");
        assert!(counts.iter().all(|&c| (1_600..2_400).contains(&c)), "evenly spread: {counts:?}");
    }

    #[test]
    fn a_subset_spreads_one_key_over_its_best_endpoints() {
        let snap = snapshot(6, LoadBalance::RoundRobin);
        let (mut b, id) = (Balancer::default(), backend(&snap));
        let mut seen: Vec<usize> = (0..200).map(|_| b.pick(&snap, id, 0, Pick::Hash { key: 42, subset: 3 })).collect();
        seen.sort();
        seen.dedup();
        assert_eq!(seen.len(), 3, "{seen:?}");
        let one = b.pick(&snap, id, 0, Pick::Hash { key: 42, subset: 0 });
        assert!(seen.contains(&one), "the best endpoint is in the subset");
        let eps = &snap.backend(id).endpoints;
        assert_eq!(b.pick(&snap, id, 0, Pick::Endpoint(eps[4])), 4);
    }

    fn backend(snap: &Snapshot) -> BackendId {
        snap.table.lookup("any", "/").expect("the route").backend
    }

    #[test]
    fn round_robin_visits_every_endpoint_in_turn() {
        let snap = snapshot(3, LoadBalance::RoundRobin);
        let (mut b, id) = (Balancer::default(), backend(&snap));
        assert_eq!(snap.backend(id).endpoints.len(), 3);
        let picks: Vec<usize> = (0..6).map(|_| b.pick(&snap, id, 0, policy(&snap))).collect();
        assert_eq!(picks, [0, 1, 2, 0, 1, 2]);
    }

    #[test]
    fn ewma_avoids_the_slow_and_the_failing_endpoint() {
        let snap = snapshot(3, LoadBalance::Ewma);
        let (mut b, id) = (Balancer::default(), backend(&snap));
        let eps = snap.backend(id).endpoints.clone();
        b.observe(eps[0], Duration::from_millis(900));
        b.observe(eps[1], Duration::from_millis(2));
        b.observe(eps[2], Duration::from_millis(3));
        let mut counts = [0usize; 3];
        for _ in 0..3000 {
            counts[b.pick(&snap, id, 0, policy(&snap))] += 1;
        }
        // Two distinct endpoints are compared: the slowest can never win a comparison.
        assert_eq!(counts[0], 0, "{counts:?}");
        assert!(counts[1] > counts[2], "the fastest wins every pair it is in: {counts:?}");
        // A failed connect makes the endpoint the worst at once, however good its average
        // was a moment ago: it loses every comparison, even to the slow one.
        b.failed(eps[1]);
        let picks: Vec<usize> = (0..1000).map(|_| b.pick(&snap, id, 0, policy(&snap))).collect();
        assert!(!picks.contains(&1), "the failing endpoint gets nothing");
        assert!(picks.iter().filter(|&&i| i == 2).count() > 600, "the healthy one wins both its pairs");
    }

    #[test]
    fn a_slow_response_counts_at_once_and_fast_ones_pull_it_down_over_time() {
        let mut b = Balancer::default();
        let a: SocketAddr = "10.0.0.1:80".parse().unwrap();
        b.observe(a, Duration::from_millis(2));
        b.observe(a, Duration::from_millis(400));
        assert!((b.ewma[&a].0 - 0.4).abs() < 1e-9, "the peak is taken: {}", b.ewma[&a].0);
        b.observe(a, Duration::from_millis(2));
        assert!(b.ewma[&a].0 > 0.39, "one fast answer a moment later barely moves it");
    }

    #[test]
    fn ewma_retries_go_round_robin_and_old_averages_fade() {
        let snap = snapshot(4, LoadBalance::Ewma);
        let (mut b, id) = (Balancer::default(), backend(&snap));
        let mut seen: Vec<usize> = (1..=4).map(|attempt| b.pick(&snap, id, attempt, policy(&snap))).collect();
        seen.sort();
        assert_eq!(seen, [0, 1, 2, 3], "later attempts try each endpoint once");
        // A sample ten seconds old weighs 1/e: a slow endpoint gets traffic again in time.
        let faded = decayed(1.0, Duration::from_secs(10));
        assert!((faded - (-1.0f64).exp()).abs() < 1e-9);
        assert!(decayed(1.0, Duration::from_secs(120)) < 1e-5);
    }

    #[test]
    fn a_new_snapshot_restarts_the_rotation() {
        let mut snap = snapshot(2, LoadBalance::RoundRobin);
        let (mut b, id) = (Balancer::default(), backend(&snap));
        assert_eq!(b.pick(&snap, id, 0, policy(&snap)), 0);
        snap.generation += 1;
        assert_eq!(b.pick(&snap, id, 0, policy(&snap)), 0, "backend ids are valid within one snapshot only");
    }
}
