//! `limit-rps`, `limit-rpm` and `limit-connections`: counters per (Ingress, client address),
//! shared by every worker of the process, so a limit holds for the node as a whole, not per
//! worker. Kept outside the snapshot: a configuration change resets no client's count.
//!
//! Request rates follow nginx's `limit_req ... nodelay` (the leaky bucket ingress-nginx
//! configures): each client's excess drains at the rate; a request that would take the excess
//! above the burst is refused, the others pass at once. The first `burst + 1` requests of an
//! idle client pass together.
//!
//! Memory is bounded: [`SHARDS`] maps of at most [`PER_SHARD`] clients each. A full shard first
//! forgets clients whose excess has drained (they are indistinguishable from new ones), then
//! the one closest to drained, as nginx evicts its least recently used states. Concurrent
//! requests cannot be forgotten; a client that finds its shard full of them is refused.

use std::net::IpAddr;
use std::sync::{Mutex, OnceLock};
use std::time::Instant;

use rustc_hash::FxHashMap;

/// Shards (a worker locks one for a few hundred nanoseconds per limited request).
const SHARDS: usize = 64;
/// Clients per shard and kind: 64 x 8,192 = 524,288 per kind, about 24 MiB at most.
const PER_SHARD: usize = 8192;

/// Which counter: the per-second rate, the per-minute rate, requests in progress.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum Counter {
    PerSecond,
    PerMinute,
    InProgress,
}

type Key = (u64, Counter, IpAddr);

/// A client's leaky bucket: the excess over the rate, in thousandths of a request, as of
/// `at` (milliseconds since the process's epoch).
#[derive(Clone, Copy, Debug)]
struct Bucket {
    excess: u64,
    at: u64,
    /// When the excess will have drained (ms): from then on the state says nothing.
    drained: u64,
}

#[derive(Default)]
struct Shard {
    buckets: FxHashMap<Key, Bucket>,
    active: FxHashMap<Key, u32>,
}

struct Limiter {
    epoch: Instant,
    shards: Box<[Mutex<Shard>]>,
}

fn limiter() -> &'static Limiter {
    static L: OnceLock<Limiter> = OnceLock::new();
    L.get_or_init(|| Limiter { epoch: Instant::now(), shards: (0..SHARDS).map(|_| Mutex::default()).collect() })
}

fn shard_of(key: &Key) -> usize {
    use std::hash::{Hash, Hasher};
    let mut h = rustc_hash::FxHasher::default();
    key.hash(&mut h);
    (crate::upstream::mix(h.finish()) % SHARDS as u64) as usize
}

fn shard(key: &Key) -> &'static Mutex<Shard> {
    &limiter().shards[shard_of(key)]
}

fn lock(m: &Mutex<Shard>) -> std::sync::MutexGuard<'_, Shard> {
    // A worker that panicked holding the lock left whole counters behind: keep using them.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// Whether one more request of `client` on the Ingress `zone` passes its request-rate
/// limits (`per_second`, `per_minute`: (rate, burst)); when it passes, it is counted. Both
/// limits are checked and counted under their shards' locks (taken in index order), so two
/// workers never count from the same stale state, and a refusal by one counts against neither.
pub(crate) fn admit(zone: u64, client: IpAddr, per_second: Option<(u32, u32)>, per_minute: Option<(u32, u32)>) -> bool {
    let now = limiter().epoch.elapsed().as_millis() as u64;
    let limits = [(Counter::PerSecond, per_second, 1_000u64), (Counter::PerMinute, per_minute, 60_000)];
    let todo: Vec<(Key, u32, u32, u64)> = limits
        .into_iter()
        .filter_map(|(counter, limit, window)| {
            limit.map(|(rate, burst)| ((zone, counter, client), rate, burst, window))
        })
        .collect();
    let mut order: Vec<usize> = todo.iter().map(|t| shard_of(&t.0)).collect();
    order.sort_unstable();
    order.dedup();
    let mut guards: Vec<(usize, std::sync::MutexGuard<'_, Shard>)> =
        order.into_iter().map(|i| (i, lock(&limiter().shards[i]))).collect();
    let mut next: Vec<(usize, Key, Bucket)> = Vec::with_capacity(2);
    for &(key, rate, burst, window) in &todo {
        let g = guards.iter().position(|(i, _)| *i == shard_of(&key)).expect("locked above");
        // Thousandths of a request drained in `ms`: ms * rate / window * 1000.
        let drained = |ms: u64| ms.saturating_mul(u64::from(rate)) * 1000 / window;
        let excess = match guards[g].1.buckets.get(&key) {
            None => 0,
            Some(b) => (b.excess + 1000).saturating_sub(drained(now.saturating_sub(b.at))),
        };
        if excess > u64::from(burst) * 1000 {
            return false;
        }
        let until = now + excess.saturating_mul(window) / (u64::from(rate) * 1000).max(1);
        next.push((g, key, Bucket { excess, at: now, drained: until }));
    }
    for (g, key, bucket) in next {
        let s = &mut guards[g].1;
        if !s.buckets.contains_key(&key) && s.buckets.len() >= PER_SHARD {
            make_room(&mut s.buckets, now);
        }
        s.buckets.insert(key, bucket);
    }
    true
}

/// Frees one place in a full map: clients whose excess drained, else the nearest to drained.
fn make_room(buckets: &mut FxHashMap<Key, Bucket>, now: u64) {
    buckets.retain(|_, b| b.drained > now);
    if buckets.len() >= PER_SHARD {
        if let Some(k) = buckets.iter().min_by_key(|(_, b)| b.drained).map(|(k, _)| *k) {
            buckets.remove(&k);
        }
    }
}

/// A request in progress under `limit-connections`; the count drops when it is dropped.
#[derive(Debug)]
pub(crate) struct Permit {
    key: Key,
}

/// A permit for one more request of `client` on the Ingress `zone`, if fewer than `max` are
/// in progress.
pub(crate) fn enter(zone: u64, client: IpAddr, max: u32) -> Option<Permit> {
    let key = (zone, Counter::InProgress, client);
    let mut s = lock(shard(&key));
    let full = s.active.len() >= PER_SHARD;
    match s.active.get_mut(&key) {
        Some(n) if *n >= max => None,
        Some(n) => {
            *n += 1;
            Some(Permit { key })
        }
        None if full => None,
        None => {
            s.active.insert(key, 1);
            Some(Permit { key })
        }
    }
}

impl Drop for Permit {
    fn drop(&mut self) {
        let mut s = lock(shard(&self.key));
        if let Some(n) = s.active.get_mut(&self.key) {
            *n -= 1;
            if *n == 0 {
                s.active.remove(&self.key);
            }
        }
    }
}

/// `limit-rate` on one response body, as nginx's `limit_rate` counts: by `t` seconds after
/// the response began, at most `after + rate * (t + 1)` bytes have gone out.
#[derive(Debug)]
pub(crate) struct Throttle {
    rate: u64,
    after: u64,
    start: Instant,
}

impl Throttle {
    /// For a response starting now; None when `pace` is None or its rate 0.
    pub fn new(pace: Option<(u64, u64)>) -> Option<Throttle> {
        let (rate, after) = pace.filter(|p| p.0 > 0)?;
        Some(Throttle { rate, after, start: Instant::now() })
    }

    /// How long to wait, once `sent` bytes in all went out, before sending more.
    pub fn delay(&self, sent: u64) -> std::time::Duration {
        let over = sent.saturating_sub(self.after);
        let due = std::time::Duration::from_secs_f64(over as f64 / self.rate as f64);
        (due.saturating_sub(std::time::Duration::from_secs(1))).saturating_sub(self.start.elapsed())
    }

    /// Waits as [`Throttle::delay`] says, if there is a throttle.
    pub async fn pause<I: crate::runtime::Io>(t: &Option<Throttle>, sent: u64) {
        if let Some(d) = t.as_ref().map(|t| t.delay(sent)).filter(|d| !d.is_zero()) {
            I::sleep(d).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_burst_passes_then_the_rate_holds() {
        let ip: IpAddr = "192.0.2.1".parse().unwrap();
        // 1 per minute, burst 2: three pass at once, then nothing for a minute.
        let passed = (0..10).filter(|_| admit(1, ip, None, Some((1, 2)))).count();
        assert_eq!(passed, 3);
        // Another client and another Ingress have their own buckets.
        assert!(admit(1, "192.0.2.2".parse().unwrap(), None, Some((1, 2))));
        assert!(admit(2, ip, None, Some((1, 2))));
        // Both limits must pass: a refusal by one does not count against the other.
        let ip3: IpAddr = "192.0.2.3".parse().unwrap();
        let passed = (0..10).filter(|_| admit(3, ip3, Some((1000, 1000)), Some((1, 0)))).count();
        assert_eq!(passed, 1);
    }

    #[test]
    fn a_throttle_lets_the_first_bytes_and_one_second_through_then_holds_the_rate() {
        let t = Throttle::new(Some((1000, 500))).unwrap();
        assert!(t.delay(1500).is_zero(), "500 free bytes, then a second's worth");
        let d = t.delay(3500);
        assert!(d > std::time::Duration::from_millis(1900) && d <= std::time::Duration::from_secs(2), "{d:?}");
        assert!(Throttle::new(Some((0, 0))).is_none() && Throttle::new(None).is_none());
    }

    #[test]
    fn in_progress_requests_are_counted_until_they_end() {
        let ip: IpAddr = "198.51.100.7".parse().unwrap();
        let a = enter(9, ip, 2).expect("first");
        let b = enter(9, ip, 2).expect("second");
        assert!(enter(9, ip, 2).is_none());
        drop(a);
        let c = enter(9, ip, 2).expect("a place freed");
        drop((b, c));
        let shard = lock(shard(&(9, Counter::InProgress, ip)));
        assert!(!shard.active.contains_key(&(9, Counter::InProgress, ip)), "no state left behind");
    }

    #[test]
    fn a_full_shard_forgets_drained_clients_first() {
        let mut m = FxHashMap::default();
        for i in 0..PER_SHARD as u32 {
            let ip = IpAddr::from(i.to_be_bytes());
            m.insert((0, Counter::PerSecond, ip), Bucket { excess: 0, at: 0, drained: if i == 5 { 500 } else { 50 } });
        }
        make_room(&mut m, 100);
        assert_eq!(m.len(), 1, "every drained client is forgotten");
        let mut m: FxHashMap<Key, Bucket> = (0..PER_SHARD as u32)
            .map(|i| {
                (
                    (0, Counter::PerSecond, IpAddr::from(i.to_be_bytes())),
                    Bucket { excess: 1, at: 0, drained: 1000 + u64::from(i) },
                )
            })
            .collect();
        make_room(&mut m, 100);
        assert_eq!(m.len(), PER_SHARD - 1);
        assert!(
            !m.contains_key(&(0, Counter::PerSecond, IpAddr::from(0u32.to_be_bytes()))),
            "the nearest to drained goes"
        );
    }
}
