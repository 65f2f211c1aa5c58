//! Cookie session affinity (`affinity: cookie`): which endpoint a request's cookie asks for,
//! and the Set-Cookie that pins a client once the upstream has answered. Runs on a worker,
//! inside one request; the only shared state is the process's key, fixed at start-up.
//!
//! - **persistent**: the cookie names its endpoint by a keyed hash (SipHash-2-4) of the
//!   backend and the endpoint's address, so it reveals no address and stays valid while the
//!   endpoint exists, whatever else joins or leaves. When the endpoint leaves, the client is
//!   balanced anew and gets a new cookie.
//! - **balanced**: the cookie holds a random session key that consistent hashing
//!   ([`crate::upstream::rendezvous`]) maps to an endpoint: when one of N endpoints leaves,
//!   only its sessions move; when one joins, about 1/(N+1) of them move to it.
//!
//! Every worker uses the same key and the same hashing, so a client sticks whichever worker
//! takes its connection. The key comes from `--affinity-key-file` (a Secret shared by every
//! node keeps cookies valid across nodes and restarts), else it is random per process.

use std::net::SocketAddr;
use std::sync::{Arc, OnceLock};

use crate::snapshot::traffic::{Affinity, AffinityMode};
use crate::snapshot::Backend;
use crate::upstream::Pick;

static KEY: OnceLock<(u64, u64)> = OnceLock::new();

/// Sets the affinity key from a file's bytes (any length; hashed down to 128 bits). Called
/// once, before the workers start; later calls change nothing.
pub fn set_key(secret: &[u8]) {
    use sha2::Digest;
    let d = sha2::Sha256::digest(secret);
    let k0 = u64::from_le_bytes(d[..8].try_into().expect("32 bytes"));
    let k1 = u64::from_le_bytes(d[8..16].try_into().expect("32 bytes"));
    let _ = KEY.set((k0, k1));
}

fn key() -> (u64, u64) {
    *KEY.get_or_init(|| {
        use std::hash::{BuildHasher, Hasher};
        let r = std::collections::hash_map::RandomState::new();
        let mut a = r.build_hasher();
        a.write_u64(0x5eed);
        let mut b = r.build_hasher();
        b.write_u64(std::process::id().into());
        (a.finish(), b.finish())
    })
}

/// The cookie value naming `addr` of `backend` (16 hex digits).
fn tag(backend: &str, addr: SocketAddr) -> u64 {
    use std::hash::{Hash, Hasher};
    let (k0, k1) = key();
    #[allow(deprecated)] // SipHash-2-4 with a key: the std type is deprecated only as a HashMap default.
    let mut h = std::hash::SipHasher::new_with_keys(k0, k1);
    backend.hash(&mut h);
    addr.hash(&mut h);
    h.finish()
}

/// A fresh random session key, from the worker's generator.
fn fresh_key() -> u64 {
    use std::cell::Cell;
    thread_local!(static STATE: Cell<u64> = Cell::new({
        use std::hash::{BuildHasher, Hasher};
        let mut h = std::collections::hash_map::RandomState::new().build_hasher();
        h.write_u64(0x51ced);
        h.finish() | 1
    }));
    STATE.with(|s| {
        let mut x = s.get();
        let next = crate::upstream::xorshift(&mut x);
        s.set(x);
        crate::upstream::mix(next)
    })
}

fn parse_hex(v: &[u8]) -> Option<u64> {
    if v.len() != 16 {
        return None;
    }
    u64::from_str_radix(std::str::from_utf8(v).ok()?, 16).ok()
}

/// What affinity decided for one request: the endpoint choice, and what the answer's
/// Set-Cookie must say once it is known which endpoint answered.
#[derive(Debug)]
pub(crate) struct Sticky {
    rules: Arc<Affinity>,
    backend: Arc<Backend>,
    /// The endpoint the cookie asked for (persistent) or the session key (balanced).
    wanted: Option<SocketAddr>,
    key: u64,
    /// The request had no usable cookie: the answer sets one.
    fresh: bool,
    /// Cookie attributes that depend on the request.
    path: String,
    https: bool,
    samesite_ok: bool,
}

/// Reads the cookie a request sent for `rules` and decides the endpoint choice. `default`:
/// the route's policy for a client without a usable cookie.
pub(crate) fn steer(
    rules: &Arc<Affinity>,
    backend: &Arc<Backend>,
    cookie: Option<&[u8]>,
    default: Pick,
    (route_path, https, user_agent): (&str, bool, Option<&[u8]>),
) -> (Pick, Sticky) {
    let value = cookie.and_then(parse_hex);
    let (pick, wanted, key, fresh) = match rules.mode {
        AffinityMode::Persistent => {
            let found = value.and_then(|v| backend.endpoints.iter().copied().find(|&a| tag(&backend.name, a) == v));
            match found {
                Some(addr) => (Pick::Endpoint(addr), Some(addr), 0, false),
                None => (default, None, 0, true),
            }
        }
        AffinityMode::Balanced => match value {
            Some(k) => (Pick::Hash { key: k, subset: 0 }, None, k, false),
            None => {
                let k = fresh_key();
                (Pick::Hash { key: k, subset: 0 }, None, k, true)
            }
        },
    };
    let path = rules.path.clone().unwrap_or_else(|| route_path.to_string());
    let samesite_ok =
        !rules.conditional_samesite_none || crate::snapshot::traffic::samesite_none_compatible(user_agent);
    (pick, Sticky { rules: rules.clone(), backend: backend.clone(), wanted, key, fresh, path, https, samesite_ok })
}

impl Sticky {
    /// The Set-Cookie value for an answer from `used` (the endpoint that answered), if the
    /// client's cookie must be set or changed.
    pub fn cookie(&self, used: Option<SocketAddr>) -> Option<Vec<u8>> {
        let r = &self.rules;
        let value = match r.mode {
            AffinityMode::Persistent => {
                let used = used?;
                let moved = self.wanted.is_some_and(|w| w != used);
                if !(self.fresh || (moved && r.change_on_failure)) {
                    return None;
                }
                tag(&self.backend.name, used)
            }
            AffinityMode::Balanced => {
                let eps = &self.backend.endpoints;
                let mapped = crate::upstream::rendezvous(eps, self.key).map(|i| eps[i]);
                let moved = used.is_some() && mapped.is_some() && used != mapped;
                if moved && r.change_on_failure {
                    // A key that maps to the endpoint that answered: a few random draws,
                    // each a 1/N chance.
                    let used = used?;
                    (0..64 * eps.len().max(1))
                        .map(|_| fresh_key())
                        .find(|&k| crate::upstream::rendezvous(eps, k).map(|i| eps[i]) == Some(used))?
                } else if self.fresh {
                    self.key
                } else {
                    return None;
                }
            }
        };
        Some(self.write(value))
    }

    fn write(&self, value: u64) -> Vec<u8> {
        use std::io::Write;
        let r = &self.rules;
        let mut out = Vec::with_capacity(128);
        let _ = write!(out, "{}={value:016x}; Path={}", r.name, self.path);
        if let Some(d) = &r.domain {
            let _ = write!(out, "; Domain={d}");
        }
        if let Some(secs) = r.expires {
            let at = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap_or_default()
                .as_secs()
                .saturating_add(secs);
            out.extend_from_slice(b"; Expires=");
            http_date(&mut out, at);
        }
        if let Some(secs) = r.max_age {
            let _ = write!(out, "; Max-Age={secs}");
        }
        match r.samesite {
            Some("None") if !self.samesite_ok => {}
            Some(s) => {
                let _ = write!(out, "; SameSite={s}");
            }
            None => {}
        }
        if r.secure.unwrap_or(self.https) {
            out.extend_from_slice(b"; Secure");
        }
        out.extend_from_slice(b"; HttpOnly");
        out
    }
}

/// An IMF-fixdate (RFC 9110 §5.6.7): `Sun, 06 Nov 1994 08:49:37 GMT`.
fn http_date(out: &mut Vec<u8>, secs: u64) {
    use std::io::Write;
    const DAYS: [&str; 7] = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"];
    const MONTHS: [&str; 12] = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];
    let (y, mo, d, h, mi, s) = crate::access_log::format::civil(secs);
    let day = DAYS[(secs / 86_400 % 7) as usize];
    let _ = write!(out, "{day}, {d:02} {} {y} {h:02}:{mi:02}:{s:02} GMT", MONTHS[(mo - 1) as usize]);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn backend(n: u8) -> Arc<Backend> {
        Arc::new(Backend {
            name: "default/web:80".into(),
            service: crate::model::ObjectKey { namespace: "default".into(), name: "web".into() },
            port: crate::model::PortRef::Number(80),
            endpoints: (1..=n).map(|i| SocketAddr::from(([10, 0, 0, i], 8080))).collect(),
            problem: None,
            dns_name: None,
        })
    }

    fn value(set_cookie: &[u8]) -> Vec<u8> {
        let s = std::str::from_utf8(set_cookie).unwrap();
        s.split(';').next().unwrap().split_once('=').unwrap().1.as_bytes().to_vec()
    }

    #[test]
    fn a_persistent_cookie_names_its_endpoint_without_its_address() {
        let rules = Arc::new(Affinity { mode: AffinityMode::Persistent, ..Affinity::default() });
        let b = backend(3);
        let rr = Pick::Policy(crate::snapshot::LoadBalance::RoundRobin);
        let (pick, s) = steer(&rules, &b, None, rr, ("/app", false, None));
        assert_eq!(pick, rr);
        let set = s.cookie(Some(b.endpoints[1])).expect("a first answer sets the cookie");
        let text = String::from_utf8(set.clone()).unwrap();
        assert!(text.starts_with("INGRESSCOOKIE=") && text.ends_with("; Path=/app; HttpOnly"), "{text}");
        assert!(!text.contains("10.0.0"), "{text}");
        let v = value(&set);
        let (pick, s) = steer(&rules, &b, Some(&v), rr, ("/app", true, None));
        assert_eq!(pick, Pick::Endpoint(b.endpoints[1]));
        assert_eq!(s.cookie(Some(b.endpoints[1])), None, "an affine answer sets nothing");
        assert_eq!(s.cookie(Some(b.endpoints[2])), None, "a failover keeps the cookie by default");
        // The endpoint leaves: balanced anew, and a new cookie.
        let fewer = Arc::new(Backend { endpoints: vec![b.endpoints[0], b.endpoints[2]], ..(*b).clone() });
        let (pick, s) = steer(&rules, &fewer, Some(&v), rr, ("/app", true, None));
        assert_eq!(pick, rr);
        let set = String::from_utf8(s.cookie(Some(fewer.endpoints[0])).unwrap()).unwrap();
        assert!(set.ends_with("; Secure; HttpOnly"), "over HTTPS: {set}");
    }

    #[test]
    fn change_on_failure_moves_the_cookie_to_the_endpoint_that_answered() {
        for mode in [AffinityMode::Persistent, AffinityMode::Balanced] {
            let rules = Arc::new(Affinity { mode, change_on_failure: true, ..Affinity::default() });
            let b = backend(4);
            let rr = Pick::Policy(crate::snapshot::LoadBalance::RoundRobin);
            let (_, s) = steer(&rules, &b, None, rr, ("/", false, None));
            let first = match mode {
                AffinityMode::Persistent => b.endpoints[0],
                AffinityMode::Balanced => b.endpoints[crate::upstream::rendezvous(&b.endpoints, s.key).unwrap()],
            };
            let v = value(&s.cookie(Some(first)).unwrap());
            let (_, s) = steer(&rules, &b, Some(&v), rr, ("/", false, None));
            let other = *b.endpoints.iter().find(|&&a| a != first).unwrap();
            let moved = value(&s.cookie(Some(other)).expect("moved"));
            let (pick, _) = steer(&rules, &b, Some(&moved), rr, ("/", false, None));
            let lands = match pick {
                Pick::Endpoint(a) => a,
                Pick::Hash { key, .. } => b.endpoints[crate::upstream::rendezvous(&b.endpoints, key).unwrap()],
                _ => panic!("{pick:?}"),
            };
            assert_eq!(lands, other, "{mode:?}");
        }
    }

    #[test]
    fn attributes_follow_the_annotations() {
        let rules = Arc::new(Affinity {
            name: "route".into(),
            path: Some("/shop".into()),
            domain: Some("example.test".into()),
            max_age: Some(3600),
            expires: Some(60),
            samesite: Some("None"),
            conditional_samesite_none: true,
            secure: Some(true),
            ..Affinity::default()
        });
        let b = backend(2);
        let rr = Pick::Policy(crate::snapshot::LoadBalance::RoundRobin);
        let (_, s) = steer(&rules, &b, None, rr, ("/ignored", false, Some(b"Mozilla/5.0 Chrome/120")));
        let set = String::from_utf8(s.cookie(Some(b.endpoints[0])).unwrap()).unwrap();
        assert!(set.starts_with("route="), "{set}");
        assert!(set.contains("; Path=/shop; Domain=example.test; Expires="), "{set}");
        assert!(set.contains(" GMT; Max-Age=3600; SameSite=None; Secure; HttpOnly"), "{set}");
        let (_, s) = steer(&rules, &b, None, rr, ("/", false, Some(b"Mozilla/5.0 Chrome/65.0")));
        let set = String::from_utf8(s.cookie(Some(b.endpoints[0])).unwrap()).unwrap();
        assert!(!set.contains("SameSite"), "an incompatible browser: {set}");
        let mut d = Vec::new();
        http_date(&mut d, 784_111_777);
        assert_eq!(d, b"Sun, 06 Nov 1994 08:49:37 GMT");
    }
}
