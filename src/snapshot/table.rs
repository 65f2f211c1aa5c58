//! Matching: host (exact, then `*.` wildcard, then rules with no host), then path (Exact, then
//! regular expressions in order, then the longest Prefix). Each lookup costs a few hash probes
//! per path segment (plus one match per regular-expression route of its host), whatever the
//! number of Ingresses.

use std::sync::Arc;

use rustc_hash::FxHashMap;

use super::gateway::{Entry, Facts};
use super::Route;

/// A request known by its host and path only: a GET, no fields, plain HTTP on port 80.
struct PathOnly;

impl Facts for PathOnly {
    fn method(&self) -> &str {
        "GET"
    }

    fn header(&self, _: &str) -> Option<&[u8]> {
        None
    }

    fn query(&self) -> &[u8] {
        b""
    }

    fn entry(&self) -> Entry {
        Entry { tls: false, port: 80, main: true }
    }
}

/// Whether the request may take `r`: a Gateway API route's conditions, or, for an Ingress's
/// route, that it came to ringress's own listeners (a Gateway listener's own port serves its
/// routes only).
fn open_to(r: &Route, facts: &dyn Facts) -> bool {
    match &r.gateway {
        Some(g) => g.admits(facts),
        None => facts.entry().main,
    }
}

/// Counts the hash probes and expression matches of lookups on this thread, in tests only:
/// the cost a lookup has, measured without a clock.
#[cfg(test)]
pub(super) mod probes {
    thread_local!(static N: std::cell::Cell<usize> = const { std::cell::Cell::new(0) });

    pub fn hit() {
        N.with(|n| n.set(n.get() + 1));
    }

    /// Probes since the last call.
    pub fn take() -> usize {
        N.with(|n| n.replace(0))
    }
}

/// One probe of a lookup (a no-op outside tests).
#[inline(always)]
fn probe() {
    #[cfg(test)]
    probes::hit();
}

/// Routes of one host: self-contained (its own routes and conflict warnings), so one host can
/// be rebuilt and swapped in without touching the others. Prefix keys are stored without
/// their trailing slash (`/` stays `/`), so that `/foo` and `/foo/` are the same prefix as the
/// Kubernetes docs ask.
#[derive(Debug, Default, Clone)]
pub struct HostRoutes {
    pub(super) exact: FxHashMap<Box<str>, u32>,
    pub(super) prefix: FxHashMap<Box<str>, u32>,
    /// Regular-expression routes, longest expression first: tried after Exact, before
    /// Prefix (nginx checks `~*` locations before it settles on a prefix one).
    pub(super) regex: Vec<u32>,
    pub(super) routes: Vec<Route>,
    /// Conflicts on this host (two Ingresses claiming one path; the older keeps it).
    pub(super) warnings: Vec<String>,
}

impl HostRoutes {
    /// A Gateway API route is here: under a wildcard, the host is matched at any depth
    /// (`*.example.com` covers `a.b.example.com`, as the Gateway API specifies; an Ingress
    /// wildcard covers one label).
    pub(super) fn deep(&self) -> bool {
        self.routes.iter().any(|r| r.gateway.is_some())
    }
}

impl HostRoutes {
    /// Whether a route of this host asks for a client certificate (`auth-tls-secret`).
    pub(super) fn wants_client_cert(&self) -> bool {
        self.routes.iter().any(|r| r.options.client_cert.is_some())
    }

    /// Whether TLS connections naming this host are passed through (`ssl-passthrough`,
    /// TLSRoutes): by its `/` path.
    pub(super) fn passes_through(&self) -> bool {
        self.routes.iter().any(|r| r.path == "/" && r.options.ssl_passthrough.is_some())
    }

    /// The one of those routes a connection on `entry` is passed through to.
    pub(super) fn passthrough(&self, entry: Entry) -> Option<&Route> {
        self.routes.iter().find(|r| {
            r.path == "/"
                && r.options.ssl_passthrough.is_some()
                && r.gateway.as_ref().map_or(entry.main, |g| g.serves(entry))
        })
    }

    /// The first route of the chain from `i` whose conditions the request meets.
    fn admitted(&self, mut i: u32, facts: &dyn Facts) -> Option<u32> {
        loop {
            let r = &self.routes[i as usize];
            if open_to(r, facts) {
                return Some(i);
            }
            i = r.next?;
        }
    }

    fn lookup(&self, path: &str, facts: &dyn Facts) -> Option<u32> {
        probe();
        if let Some(r) = self.exact.get(path).and_then(|&r| self.admitted(r, facts)) {
            return Some(r);
        }
        for &r in &self.regex {
            probe();
            let route = &self.routes[r as usize];
            if route.regex.as_ref().is_some_and(|re| re.is_match(path)) && open_to(route, facts) {
                return Some(r);
            }
        }
        if self.prefix.is_empty() {
            return None;
        }
        // Element-wise prefix match: try the whole path, then cut one segment at a time.
        let mut candidate = path.trim_end_matches('/');
        loop {
            let key = if candidate.is_empty() { "/" } else { candidate };
            probe();
            if let Some(r) = self.prefix.get(key).and_then(|&r| self.admitted(r, facts)) {
                return Some(r);
            }
            if candidate.is_empty() {
                return None;
            }
            candidate = &candidate[..candidate.rfind('/').unwrap_or(0)];
        }
    }
}

/// Normalises a prefix path for storage: trailing slashes dropped, the root kept as `/`.
pub(super) fn prefix_key(path: &str) -> &str {
    let t = path.trim_end_matches('/');
    if t.is_empty() {
        "/"
    } else {
        t
    }
}

/// Hosts map to shared [`HostRoutes`]: copying the table for an incremental update copies
/// pointers, and only the changed hosts are rebuilt.
#[derive(Debug, Default, Clone)]
pub struct RouteTable {
    pub(super) exact_hosts: FxHashMap<Arc<str>, Arc<HostRoutes>>,
    /// Keyed by the part after `*.`.
    pub(super) wildcard_hosts: FxHashMap<Arc<str>, Arc<HostRoutes>>,
    pub(super) any_host: Arc<HostRoutes>,
    pub(super) default_route: Option<Route>,
    /// Conflicts between Ingresses that set a defaultBackend.
    pub(super) default_warnings: Vec<String>,
    /// Routes in all hosts (the default route not counted).
    pub(super) len: usize,
    /// Hosts with a route that asks for client certificates: while there are none, TLS
    /// handshakes take the plain path.
    pub(super) client_cert_hosts: usize,
    /// Hosts passed through (`ssl-passthrough`): while there are none, the HTTPS port does not
    /// look at ClientHellos itself.
    pub(super) passthrough_hosts: usize,
    /// `server-alias` and `from-to-www-redirect` names.
    pub(super) names: Names,
    /// Wildcard hosts with Gateway API routes (matched at any depth): while there are none,
    /// a lookup tries one wildcard suffix only.
    pub(super) deep_wildcards: usize,
}

/// Names that are not a rule's host: `server-alias` (served as the host that names them) and
/// the counterparts of `from-to-www-redirect` (redirected to it). A rule's own host always
/// wins over either, as ingress-nginx documents.
#[derive(Clone, Debug, Default)]
pub(super) struct Names {
    /// Exact aliases -> the rule host.
    alias: FxHashMap<Arc<str>, Arc<str>>,
    /// `*.suffix` aliases by suffix -> the rule host; any number of labels, longest suffix
    /// first (nginx's `server_name` wildcards).
    wildcard: FxHashMap<Arc<str>, Arc<str>>,
    /// `www.` counterparts (or the name without `www.`) -> the rule host they redirect to.
    www: FxHashMap<Arc<str>, Arc<str>>,
}

impl Names {
    /// Forgets what `host` named; then names what its routes' annotations ask for. Returns a
    /// warning for each name another host had already taken (it keeps it).
    pub(super) fn set(&mut self, host: &str, routes: &[Route]) -> Vec<String> {
        for map in [&mut self.alias, &mut self.wildcard, &mut self.www] {
            map.retain(|_, to| &**to != host);
        }
        let mut warnings = Vec::new();
        let target: Arc<str> = Arc::from(host);
        for r in routes {
            let Some(rd) = r.options.redirects.as_deref() else { continue };
            for a in &rd.aliases {
                let (map, name) = match a.strip_prefix("*.") {
                    Some(suffix) => (&mut self.wildcard, suffix),
                    None => (&mut self.alias, a.as_str()),
                };
                match map.get(name) {
                    Some(other) if **other != *host => warnings.push(format!(
                        "Ingress {}: server-alias {a} is already an alias of {other}; ignored here",
                        r.ingress
                    )),
                    _ => {
                        map.insert(Arc::from(name), target.clone());
                    }
                }
            }
            if rd.from_to_www {
                let other = match host.strip_prefix("www.") {
                    Some(bare) => bare.to_string(),
                    None => format!("www.{host}"),
                };
                self.www.entry(Arc::from(other)).or_insert_with(|| target.clone());
            }
        }
        warnings
    }

    fn is_empty(&self) -> bool {
        self.alias.is_empty() && self.wildcard.is_empty() && self.www.is_empty()
    }

    /// The rule host `host` is an alias of.
    fn alias_of(&self, host: &str) -> Option<&str> {
        if let Some(to) = self.alias.get(host) {
            return Some(to);
        }
        if self.wildcard.is_empty() {
            return None;
        }
        host.match_indices('.').find_map(|(i, _)| self.wildcard.get(&host[i + 1..])).map(|to| &**to)
    }
}

/// Lower-cases a Host header value and drops its port (`Example.COM:8080` -> `example.com`,
/// `[::1]:80` -> `[::1]`) into `buf`. Returns `None` for a host that cannot be a name
/// (too long for `buf`).
pub fn normalize_host<'b>(host: &[u8], buf: &'b mut [u8; 256]) -> Option<&'b str> {
    let end = if host.first() == Some(&b'[') {
        host.iter().position(|&b| b == b']').map(|i| i + 1).unwrap_or(host.len())
    } else {
        host.iter().position(|&b| b == b':').unwrap_or(host.len())
    };
    let mut h = &host[..end];
    if h.last() == Some(&b'.') {
        h = &h[..h.len() - 1]; // a fully qualified name means the same host
    }
    if h.len() > buf.len() {
        return None;
    }
    let out = &mut buf[..h.len()];
    for (o, &b) in out.iter_mut().zip(h) {
        *o = b.to_ascii_lowercase();
    }
    std::str::from_utf8(out).ok()
}

impl RouteTable {
    /// The route for a normalised host (see [`normalize_host`]) and a request path without
    /// its query. Falls back to the default backend; `None` means 404.
    pub fn lookup(&self, host: &str, path: &str) -> Option<&Route> {
        self.lookup_for(host, path, &PathOnly)
    }

    /// The route for a request: among routes of the same host and path, the first whose
    /// Gateway API conditions (method, fields, query, scheme) `facts` meets.
    pub fn lookup_for(&self, host: &str, path: &str, facts: &dyn Facts) -> Option<&Route> {
        let hr = self.host_routes(host);
        match hr.lookup(path, facts) {
            Some(i) => Some(&hr.routes[i as usize]),
            // The default backend answers on ringress's own listeners only.
            None => self.default_route.as_ref().filter(|_| facts.entry().main),
        }
    }

    /// Whether a TLS client naming `host` (SNI, normalised) is asked for a certificate.
    pub fn wants_client_cert(&self, host: &str) -> bool {
        self.client_cert_hosts > 0 && self.host_routes(host).wants_client_cert()
    }

    /// `ssl-passthrough`: the route a TLS connection naming `host` (SNI, normalised) is passed
    /// through to, untouched, on the listener `entry`.
    pub fn passthrough(&self, host: &str, entry: Entry) -> Option<&Route> {
        if self.passthrough_hosts == 0 {
            return None;
        }
        self.host_routes(host).passthrough(entry)
    }

    /// Whether any host is passed through.
    pub fn has_passthrough(&self) -> bool {
        self.passthrough_hosts > 0
    }

    /// Whether any host asks for client certificates.
    pub fn has_client_certs(&self) -> bool {
        self.client_cert_hosts > 0
    }

    /// `from-to-www-redirect`: the host a request for `host` is redirected to, when `host` is
    /// not a rule's host or an alias itself.
    pub fn www_redirect(&self, host: &str) -> Option<&str> {
        if self.names.www.is_empty() || self.exact_hosts.contains_key(host) || self.names.alias_of(host).is_some() {
            return None;
        }
        self.names.www.get(host).map(|to| &**to)
    }

    fn host_routes(&self, host: &str) -> &HostRoutes {
        probe();
        if let Some(h) = self.exact_hosts.get(host) {
            return h;
        }
        if !self.names.is_empty() {
            if let Some(h) = self.names.alias_of(host).and_then(|to| self.exact_hosts.get(to)) {
                return h;
            }
        }
        // `*.foo.com` covers exactly one label: `bar.foo.com`, not `foo.com` or `a.b.foo.com`.
        if let Some(dot) = host.find('.') {
            probe();
            if let Some(h) = self.wildcard_hosts.get(&host[dot + 1..]) {
                return h;
            }
            // A Gateway API wildcard covers any number of labels, the longest suffix first.
            if self.deep_wildcards > 0 {
                let rest = &host[dot + 1..];
                for (i, _) in rest.match_indices('.') {
                    probe();
                    if let Some(h) = self.wildcard_hosts.get(&rest[i + 1..]).filter(|h| h.deep()) {
                        return h;
                    }
                }
            }
        }
        &self.any_host
    }

    /// Every route but the default one, ordered by host (no host first), then path.
    pub fn routes(&self) -> Vec<&Route> {
        let hosts =
            self.exact_hosts.values().chain(self.wildcard_hosts.values()).chain(std::iter::once(&self.any_host));
        let mut all: Vec<&Route> = hosts.flat_map(|h| h.routes.iter()).collect();
        all.sort_by(|a, b| (&a.host, &a.path, a.path_type).cmp(&(&b.host, &b.path, b.path_type)));
        all
    }

    /// The backend of every route, the default one included (with repeats, unordered).
    pub fn backend_ids(&self) -> impl Iterator<Item = super::BackendId> + '_ {
        let hosts =
            self.exact_hosts.values().chain(self.wildcard_hosts.values()).chain(std::iter::once(&self.any_host));
        hosts.flat_map(|h| h.routes.iter().map(|r| r.backend)).chain(self.default_route.iter().map(|r| r.backend))
    }

    pub fn default_route(&self) -> Option<&Route> {
        self.default_route.as_ref()
    }

    /// Conflicts, sorted.
    pub fn warnings(&self) -> Vec<String> {
        let hosts =
            self.exact_hosts.values().chain(self.wildcard_hosts.values()).chain(std::iter::once(&self.any_host));
        let mut all: Vec<String> = hosts.flat_map(|h| h.warnings.iter().cloned()).collect();
        all.extend(self.default_warnings.iter().cloned());
        all.sort();
        all
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}
