//! Session resumption bounded by `ssl-session-timeout`: tickets and cached sessions carry
//! the time they were made, and one older than the timeout is not resumed (a full
//! handshake follows). The timeout is shared with the configurations' builder, so a
//! ConfigMap change applies to sessions already issued.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use rustls::server::{ProducesTickets, StoresServerSessions};

fn now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

/// `value` stamped with the time it was made.
fn stamp(value: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(8 + value.len());
    out.extend_from_slice(&now().to_be_bytes());
    out.extend_from_slice(value);
    out
}

/// The value of a stamped one made less than `lifetime` seconds ago (and not in the future:
/// the clock stepped back or the stamp is not ours).
fn fresh(stamped: Vec<u8>, lifetime: &AtomicU32) -> Option<Vec<u8>> {
    let made = u64::from_be_bytes(stamped.get(..8)?.try_into().ok()?);
    let now = now();
    (made <= now + 60 && now - made.min(now) < u64::from(lifetime.load(Ordering::Relaxed)))
        .then(|| stamped[8..].to_vec())
}

/// The ticket key (rustls' rotating aws-lc-rs ticketer) with the issue time sealed inside
/// each ticket, so a client cannot extend its ticket's life.
#[derive(Debug)]
pub(super) struct Tickets {
    pub inner: Arc<dyn ProducesTickets>,
    pub lifetime: Arc<AtomicU32>,
}

impl ProducesTickets for Tickets {
    fn enabled(&self) -> bool {
        self.inner.enabled()
    }

    fn lifetime(&self) -> u32 {
        self.lifetime.load(Ordering::Relaxed)
    }

    fn encrypt(&self, plain: &[u8]) -> Option<Vec<u8>> {
        self.inner.encrypt(&stamp(plain))
    }

    fn decrypt(&self, cipher: &[u8]) -> Option<Vec<u8>> {
        fresh(self.inner.decrypt(cipher)?, &self.lifetime)
    }
}

/// The server's session cache, for clients resuming by session id (and by stateful TLS 1.3
/// tickets when `ssl-session-tickets` is off).
#[derive(Debug)]
pub(super) struct Cache {
    pub inner: Arc<dyn StoresServerSessions>,
    pub lifetime: Arc<AtomicU32>,
}

impl StoresServerSessions for Cache {
    fn put(&self, key: Vec<u8>, value: Vec<u8>) -> bool {
        self.inner.put(key, stamp(&value))
    }

    fn get(&self, key: &[u8]) -> Option<Vec<u8>> {
        fresh(self.inner.get(key)?, &self.lifetime)
    }

    fn take(&self, key: &[u8]) -> Option<Vec<u8>> {
        fresh(self.inner.take(key)?, &self.lifetime)
    }

    fn can_cache(&self) -> bool {
        self.inner.can_cache()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stamped_values_expire_with_the_shared_lifetime() {
        let lifetime = Arc::new(AtomicU32::new(600));
        let cache = Cache { inner: rustls::server::ServerSessionMemoryCache::new(16), lifetime: lifetime.clone() };
        assert!(cache.put(b"k".to_vec(), b"session".to_vec()));
        assert_eq!(cache.get(b"k").as_deref(), Some(&b"session"[..]));
        lifetime.store(0, Ordering::Relaxed);
        assert_eq!(cache.get(b"k"), None);
        // A stamp from an hour ago is stale at 10 minutes, fresh at 2 hours.
        let mut old = (now() - 3600).to_be_bytes().to_vec();
        old.extend_from_slice(b"v");
        lifetime.store(600, Ordering::Relaxed);
        assert_eq!(fresh(old.clone(), &lifetime), None);
        lifetime.store(7200, Ordering::Relaxed);
        assert_eq!(fresh(old, &lifetime).as_deref(), Some(&b"v"[..]));
        assert_eq!(fresh(vec![1, 2, 3], &lifetime), None);
    }
}
