//! The ExternalName resolver, on a thread of its own: looks up the DNS names the published
//! snapshot's ExternalName backends use, again when each answer's TTL runs out, and tells the
//! provider when an answer changed; the provider then re-resolves those Services' backends
//! ([`crate::snapshot::update_endpoints`]), as it does for an EndpointSlice change.
//!
//! A small stub resolver of its own (the system's `getaddrinfo` does not say how long an
//! answer may be kept): the name servers, `search` list and `ndots` of `/etc/resolv.conf`
//! (or `--dns-server`), A records (AAAA when there are none, as ingress-nginx asks), UDP with
//! TCP when a reply is truncated, random ids and ports, replies checked against the question.
//!
//! Answers are kept for their TTL (at least [`MIN_TTL`], at most [`MAX_TTL`]). A lookup that
//! fails (timeouts, SERVFAIL, REFUSED) is retried with backoff up to [`MAX_BACKOFF`] and the
//! last good answer stays in use meanwhile; a name that does not exist or has no address
//! (NXDOMAIN, no data) is an answer: its backends have no endpoints and answer 503, and it
//! is asked again every [`NEGATIVE_RECHECK`]. Every
//! failure is logged with the name and the server's reply, counted, and shown on the backend
//! (`/debug/routes`) until a lookup succeeds.

pub mod wire;

use std::collections::hash_map::RandomState;
use std::hash::BuildHasher;
use std::io::{Read, Write};
use std::net::{IpAddr, SocketAddr, TcpStream, UdpSocket};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use rustc_hash::{FxHashMap, FxHashSet};

use crate::model::{ObjectKey, Service};
use crate::snapshot::external_name::{self, ExternalNames};
use crate::snapshot::{update_endpoints, Inputs, Snapshot};

/// The shortest time an answer is kept (a TTL of 0 would have the resolver spin).
pub const MIN_TTL: Duration = Duration::from_secs(1);
/// The longest: a name is looked up again at least this often, whatever its TTL.
pub const MAX_TTL: Duration = Duration::from_secs(3600);
/// The longest wait before a failed lookup is tried again.
pub const MAX_BACKOFF: Duration = Duration::from_secs(30);
/// How soon a name that does not exist (or has no address) is looked up again.
pub const NEGATIVE_RECHECK: Duration = Duration::from_secs(5);
/// How long a build waits for the first answer for a name it has just met, so a new
/// ExternalName backend does not answer 503 while its name is being looked up.
pub const FIRST_ANSWER_WAIT: Duration = Duration::from_secs(2);

/// Where and how names are looked up.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Conf {
    pub servers: Vec<SocketAddr>,
    pub search: Vec<String>,
    pub ndots: usize,
    /// Per server and attempt.
    pub timeout: Duration,
    pub attempts: u32,
}

impl Default for Conf {
    fn default() -> Self {
        Conf {
            servers: vec![SocketAddr::from(([127, 0, 0, 1], 53))],
            search: Vec::new(),
            ndots: 1,
            timeout: Duration::from_secs(2),
            attempts: 2,
        }
    }
}

impl Conf {
    /// `/etc/resolv.conf` (missing: the defaults), its name servers replaced by `servers`
    /// when any are given (`--dns-server`).
    pub fn system(servers: &[SocketAddr]) -> Conf {
        let mut conf = Conf::parse(&std::fs::read_to_string("/etc/resolv.conf").unwrap_or_default());
        if !servers.is_empty() {
            conf.servers = servers.to_vec();
        }
        conf
    }

    /// resolv.conf(5): `nameserver`, `search`/`domain` (the last wins), `options ndots: timeout:
    /// attempts:`. Lines it does not know are skipped, as the C library does.
    pub fn parse(text: &str) -> Conf {
        let mut conf = Conf { servers: Vec::new(), ..Conf::default() };
        for line in text.lines() {
            let line = line.split(['#', ';']).next().unwrap_or_default();
            let mut words = line.split_whitespace();
            match words.next() {
                Some("nameserver") => {
                    if let Some(ip) = words.next().and_then(|w| w.parse::<IpAddr>().ok()) {
                        conf.servers.push(SocketAddr::new(ip, 53));
                    }
                }
                Some("search") => conf.search = words.map(|w| w.trim_end_matches('.').to_string()).collect(),
                Some("domain") => {
                    conf.search = words.next().map(|w| w.trim_end_matches('.').to_string()).into_iter().collect()
                }
                Some("options") => {
                    for opt in words {
                        let num = |prefix: &str| opt.strip_prefix(prefix).and_then(|v| v.parse::<u32>().ok());
                        if let Some(n) = num("ndots:") {
                            conf.ndots = n.min(15) as usize;
                        } else if let Some(n) = num("timeout:") {
                            conf.timeout = Duration::from_secs(n.clamp(1, 30) as u64);
                        } else if let Some(n) = num("attempts:") {
                            conf.attempts = n.clamp(1, 5);
                        }
                    }
                }
                _ => {}
            }
        }
        if conf.servers.is_empty() {
            conf.servers = Conf::default().servers;
        }
        conf
    }

    /// The names tried for `name`, in order (resolv.conf(5) `ndots`): an absolute name (a
    /// trailing dot) only itself; one with at least `ndots` dots first as it is, then with each
    /// search domain; one with fewer, the search domains first.
    pub fn candidates(&self, name: &str) -> Vec<String> {
        if name.ends_with('.') {
            return vec![name.to_string()];
        }
        let searched = self.search.iter().map(|d| format!("{name}.{d}"));
        if name.matches('.').count() >= self.ndots {
            std::iter::once(name.to_string()).chain(searched).collect()
        } else {
            searched.chain(std::iter::once(name.to_string())).collect()
        }
    }
}

/// What one lookup of a name found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Addresses (sorted, unique) and how long they may be kept.
    Found(Vec<IpAddr>, Duration),
    /// The name does not exist or has no address: an answer, not a failure.
    NoAddress(String),
    /// No server answered usefully (timeouts, SERVFAIL, REFUSED, malformed replies).
    Failed(String),
}

/// Looks `name` up: each candidate name ([`Conf::candidates`]), A then AAAA.
pub fn lookup(conf: &Conf, name: &str) -> Outcome {
    let mut failure = None;
    let mut negative = Vec::new();
    for candidate in conf.candidates(name) {
        match addresses(conf, &candidate) {
            Ok(Some((mut addrs, ttl))) => {
                addrs.sort();
                addrs.dedup();
                return Outcome::Found(addrs, Duration::from_secs(ttl as u64).clamp(MIN_TTL, MAX_TTL));
            }
            Ok(None) => negative.push(candidate),
            Err(why) => failure = Some(format!("{candidate}: {why}")),
        }
    }
    match failure {
        Some(why) => Outcome::Failed(why),
        None => Outcome::NoAddress(format!("no such name, or no A or AAAA record ({})", negative.join(", "))),
    }
}

/// One candidate's A records, else its AAAA records. `Ok(None)`: it has neither.
fn addresses(conf: &Conf, name: &str) -> Result<Option<(Vec<IpAddr>, u32)>, String> {
    for qtype in [wire::TYPE_A, wire::TYPE_AAAA] {
        let reply = ask(conf, name, qtype)?;
        if reply.rcode == wire::NXDOMAIN {
            return Ok(None);
        }
        if !reply.addrs.is_empty() {
            return Ok(Some((reply.addrs, reply.ttl)));
        }
    }
    Ok(None)
}

/// A NOERROR or NXDOMAIN reply from the first server that gives one; each server is asked
/// in turn, `attempts` rounds. Err: the last server's failure.
fn ask(conf: &Conf, name: &str, qtype: u16) -> Result<wire::Reply, String> {
    let mut last = String::from("no name server");
    for _ in 0..conf.attempts {
        for &server in &conf.servers {
            let id = RandomState::new().hash_one(Instant::now()) as u16;
            match exchange(server, id, name, qtype, conf.timeout) {
                Ok(r) if r.rcode == wire::NOERROR || r.rcode == wire::NXDOMAIN => return Ok(r),
                Ok(r) => last = format!("{server} answered {}", rcode_name(r.rcode)),
                Err(e) => last = format!("{server}: {e}"),
            }
        }
    }
    Err(last)
}

fn rcode_name(rcode: u8) -> String {
    match rcode {
        1 => "FORMERR".into(),
        2 => "SERVFAIL".into(),
        4 => "NOTIMP".into(),
        5 => "REFUSED".into(),
        n => format!("RCODE {n}"),
    }
}

/// One query over UDP from a fresh ephemeral port (TCP when the reply is truncated). Datagrams
/// that are not a reply to it are skipped until the timeout.
fn exchange(server: SocketAddr, id: u16, name: &str, qtype: u16, timeout: Duration) -> Result<wire::Reply, String> {
    let query = wire::query(id, name, qtype).map_err(|e| e.to_string())?;
    let local: SocketAddr =
        if server.is_ipv4() { ([0, 0, 0, 0], 0).into() } else { (std::net::Ipv6Addr::UNSPECIFIED, 0).into() };
    let sock = UdpSocket::bind(local).map_err(|e| e.to_string())?;
    sock.connect(server).map_err(|e| e.to_string())?;
    sock.send(&query).map_err(|e| e.to_string())?;
    let deadline = Instant::now() + timeout;
    let mut buf = vec![0u8; 4096];
    let mut malformed = None;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(malformed.unwrap_or_else(|| format!("no reply within {timeout:?}")));
        }
        sock.set_read_timeout(Some(left)).map_err(|e| e.to_string())?;
        let n = match sock.recv(&mut buf) {
            Ok(n) => n,
            Err(e) if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) => continue,
            Err(e) => return Err(e.to_string()),
        };
        match wire::parse(&buf[..n], id, name, qtype) {
            Ok(Some(r)) if r.truncated => return over_tcp(server, &query, id, name, qtype, timeout),
            Ok(Some(r)) => return Ok(r),
            Ok(None) => {}
            Err(e) => malformed = Some(e.to_string()),
        }
    }
}

/// RFC 1035 §4.2.2: the same query with a two-byte length in front.
fn over_tcp(
    server: SocketAddr,
    query: &[u8],
    id: u16,
    name: &str,
    qtype: u16,
    timeout: Duration,
) -> Result<wire::Reply, String> {
    let tcp = |e: std::io::Error| format!("over TCP: {e}");
    let mut s = TcpStream::connect_timeout(&server, timeout).map_err(tcp)?;
    s.set_read_timeout(Some(timeout)).map_err(tcp)?;
    s.set_write_timeout(Some(timeout)).map_err(tcp)?;
    let mut framed = (query.len() as u16).to_be_bytes().to_vec();
    framed.extend_from_slice(query);
    s.write_all(&framed).map_err(tcp)?;
    let mut len = [0u8; 2];
    s.read_exact(&mut len).map_err(tcp)?;
    let mut msg = vec![0u8; u16::from_be_bytes(len) as usize];
    s.read_exact(&mut msg).map_err(tcp)?;
    match wire::parse(&msg, id, name, qtype) {
        Ok(Some(r)) => Ok(r),
        Ok(None) => Err("over TCP: a reply to another question".into()),
        Err(e) => Err(format!("over TCP: {e}")),
    }
}

// === impl Resolver ===

/// The resolver thread's handle (cheap to clone).
#[derive(Clone)]
pub struct Resolver {
    inner: Arc<Inner>,
}

struct Inner {
    conf: Conf,
    state: Mutex<State>,
    /// Wakes the resolver thread (a new name) and build threads waiting for first answers.
    cv: Condvar,
    /// Told when an answer changed (the kube provider's loop waits on it).
    changed: tokio::sync::Notify,
    stats: &'static crate::provider::ControlStats,
}

struct State {
    /// When each wanted name is looked up next, and how many lookups in a row failed.
    due: FxHashMap<String, (Instant, u32)>,
    /// Bumped on every change of `names`.
    version: u64,
    names: Arc<ExternalNames>,
}

impl Resolver {
    /// Starts the resolver thread. `disabled` and `loopback` are the ExternalName policy
    /// flags, passed on to every build with the answers.
    pub fn start(
        conf: Conf,
        disabled: bool,
        loopback: bool,
        stats: &'static crate::provider::ControlStats,
    ) -> Resolver {
        let names = Arc::new(ExternalNames { disabled, loopback, answers: FxHashMap::default() });
        let inner = Arc::new(Inner {
            conf,
            state: Mutex::new(State { due: FxHashMap::default(), version: 0, names }),
            cv: Condvar::new(),
            changed: tokio::sync::Notify::new(),
            stats,
        });
        let thread = inner.clone();
        std::thread::Builder::new()
            .name("ringress-dns".into())
            .spawn(move || thread.run())
            .expect("spawning the DNS resolver thread");
        Resolver { inner }
    }

    /// The answers and policy a build reads.
    pub fn names(&self) -> Arc<ExternalNames> {
        self.inner.lock().names.clone()
    }

    /// Bumped whenever [`Resolver::names`] changes.
    pub fn version(&self) -> u64 {
        self.inner.lock().version
    }

    /// Notified when an answer changed.
    pub fn changed(&self) -> &tokio::sync::Notify {
        &self.inner.changed
    }

    /// Makes the names `snap`'s backends use the ones looked up (new ones at once) and forgets
    /// the others. Returns the names with no answer yet.
    pub fn follow(&self, snap: &Snapshot) -> Vec<String> {
        let wanted: FxHashSet<&str> = snap.backends.iter().filter_map(|b| b.dns_name.as_deref()).collect();
        let mut st = self.inner.lock();
        st.due.retain(|name, _| wanted.contains(name.as_str()));
        if st.names.answers.keys().any(|n| !wanted.contains(n.as_str())) {
            Arc::make_mut(&mut st.names).answers.retain(|n, _| wanted.contains(n.as_str()));
            st.version += 1;
        }
        let now = Instant::now();
        let mut new = Vec::new();
        for name in wanted {
            if !st.due.contains_key(name) {
                st.due.insert(name.to_string(), (now, 0));
            }
            if !st.names.answers.contains_key(name) {
                new.push(name.to_string());
            }
        }
        // A name new to `due` has no answer, so it is in `new`: the thread must look.
        if !new.is_empty() {
            self.inner.cv.notify_all();
        }
        new
    }

    /// Waits until each of `names` has an answer (or failed once), at most `timeout`.
    pub fn wait(&self, names: &[String], timeout: Duration) {
        let deadline = Instant::now() + timeout;
        let mut st = self.inner.lock();
        while names.iter().any(|n| st.due.contains_key(n) && !st.names.answers.contains_key(n)) {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return;
            }
            st = self.inner.cv.wait_timeout(st, left).unwrap_or_else(|e| e.into_inner()).0;
        }
    }

    /// After a build: follows `snap`'s names, and when some are new waits for their first
    /// answers ([`FIRST_ANSWER_WAIT`] at most) and re-resolves the backends of the Services
    /// using them, so a new ExternalName backend is published with its endpoints.
    /// `inputs.dns` ends as the answers the returned snapshot was built with (the provider
    /// compares later answers with them).
    pub fn settle(&self, snap: Snapshot, inputs: &mut Inputs) -> Snapshot {
        let new = self.follow(&snap);
        if new.is_empty() {
            return snap;
        }
        self.wait(&new, FIRST_ANSWER_WAIT);
        let fresh = self.names();
        // The new names' Services, and those of any name whose answer changed meanwhile.
        let keys = {
            let mut names = changed_names(&inputs.dns, &fresh);
            names.extend(new.iter().map(String::as_str));
            services_named(inputs.services.iter().copied(), &names)
        };
        inputs.dns = fresh;
        update_endpoints(&snap, inputs, &keys)
    }
}

/// Of `services`, those whose ExternalName is one of `names`.
pub fn services_named<'s>(services: impl Iterator<Item = &'s Service>, names: &FxHashSet<&str>) -> Vec<ObjectKey> {
    services
        .filter(|s| external_name::host(s).is_some_and(|h| names.contains(h.as_str())))
        .map(|s| s.key.clone())
        .collect()
}

/// The names whose answers differ between two sets of answers.
pub fn changed_names<'a>(old: &'a ExternalNames, new: &'a ExternalNames) -> FxHashSet<&'a str> {
    let differs = |n: &&String| old.answers.get(*n) != new.answers.get(*n);
    old.answers.keys().chain(new.answers.keys()).filter(differs).map(String::as_str).collect()
}

impl Inner {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn run(&self) {
        let mut st = self.lock();
        loop {
            let now = Instant::now();
            let due: Vec<String> = st.due.iter().filter(|(_, (t, _))| *t <= now).map(|(n, _)| n.clone()).collect();
            if due.is_empty() {
                st = match st.due.values().map(|(t, _)| *t).min() {
                    Some(t) => self.cv.wait_timeout(st, t - now).unwrap_or_else(|e| e.into_inner()).0,
                    None => self.cv.wait(st).unwrap_or_else(|e| e.into_inner()),
                };
                continue;
            }
            drop(st);
            let found: Vec<(String, Outcome)> = due
                .into_iter()
                .map(|n| {
                    let o = lookup(&self.conf, &n);
                    (n, o)
                })
                .collect();
            st = self.lock();
            let mut changed = false;
            for (name, outcome) in found {
                changed |= self.record(&mut st, name, outcome);
            }
            if changed {
                st.version += 1;
                self.changed.notify_one();
            }
            // Waiters for first answers look again, changed or not.
            self.cv.notify_all();
        }
    }

    /// Applies one lookup's outcome; true when the answers changed.
    fn record(&self, st: &mut State, name: String, outcome: Outcome) -> bool {
        let Some(&(_, failures)) = st.due.get(&name) else { return false }; // no longer wanted
        let now = Instant::now();
        self.stats.dns_lookups.fetch_add(1, Ordering::Relaxed);
        let backoff = |n: u32| MAX_BACKOFF.min(Duration::from_secs(1 << n.min(5)));
        let answer = match outcome {
            Outcome::Found(addrs, ttl) => {
                st.due.insert(name.clone(), (now + ttl, 0));
                Ok(addrs)
            }
            Outcome::NoAddress(why) => {
                self.stats.dns_failures.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(name, reason = %why, "ExternalName lookup: no address; its backends answer 503");
                st.due.insert(name.clone(), (now + NEGATIVE_RECHECK, 0));
                Err(why)
            }
            Outcome::Failed(why) => {
                self.stats.dns_failures.fetch_add(1, Ordering::Relaxed);
                st.due.insert(name.clone(), (now + backoff(failures), failures + 1));
                if let Some(Ok(last)) = st.names.answers.get(&name) {
                    tracing::warn!(name, error = %why, last = ?last, "ExternalName lookup failed; its last answer stays in use");
                    return false;
                }
                tracing::warn!(name, error = %why, "ExternalName lookup failed; its backends answer 503");
                Err(why)
            }
        };
        if st.names.answers.get(&name) == Some(&answer) {
            return false;
        }
        if let Ok(addrs) = &answer {
            tracing::info!(name, addresses = ?addrs, "ExternalName resolved");
        }
        Arc::make_mut(&mut st.names).answers.insert(name, answer);
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolv_conf_is_read_as_the_c_library_reads_it() {
        let c = Conf::parse(
            "# comment\nnameserver 10.96.0.10\nnameserver fd00::a ; trailing\nnameserver bogus\n\
             domain old.example\nsearch ns.svc.cluster.local svc.cluster.local.\noptions ndots:5 timeout:1 attempts:3 rotate\n",
        );
        assert_eq!(c.servers, vec!["10.96.0.10:53".parse().unwrap(), "[fd00::a]:53".parse().unwrap()]);
        assert_eq!(c.search, vec!["ns.svc.cluster.local", "svc.cluster.local"]);
        assert_eq!((c.ndots, c.timeout, c.attempts), (5, Duration::from_secs(1), 3));
        assert_eq!(Conf::parse("").servers, Conf::default().servers, "no server: the local one");
    }

    #[test]
    fn search_order_follows_ndots() {
        let c = Conf { search: vec!["a.example".into(), "b.example".into()], ndots: 2, ..Conf::default() };
        assert_eq!(c.candidates("db"), ["db.a.example", "db.b.example", "db"]);
        assert_eq!(c.candidates("db.x"), ["db.x.a.example", "db.x.b.example", "db.x"]);
        assert_eq!(
            c.candidates("api.example.com"),
            ["api.example.com", "api.example.com.a.example", "api.example.com.b.example"]
        );
        assert_eq!(c.candidates("api.example.com."), ["api.example.com."]);
    }

    #[test]
    fn changed_names_are_those_whose_answers_differ() {
        let mut a = ExternalNames::default();
        a.answers.insert("x".into(), Ok(vec![IpAddr::from([192, 0, 2, 1])]));
        a.answers.insert("y".into(), Err("nx".into()));
        let mut b = a.clone();
        b.answers.insert("x".into(), Ok(vec![IpAddr::from([192, 0, 2, 2])]));
        b.answers.insert("z".into(), Err("nx".into()));
        let mut got: Vec<&str> = changed_names(&a, &b).into_iter().collect();
        got.sort();
        assert_eq!(got, ["x", "z"]);
    }
}
