//! Matching: host (exact, then `*.` wildcard, then rules with no host), then path (Exact, then
//! the longest Prefix). Each lookup costs a few hash probes per path segment, whatever the
//! number of Ingresses.

use rustc_hash::FxHashMap;

use super::Route;

/// Routes of one host. Prefix keys are stored without their trailing slash (`/` stays `/`), so
/// that `/foo` and `/foo/` are the same prefix as the Kubernetes docs ask.
#[derive(Debug, Default)]
pub(super) struct HostRoutes {
    pub(super) exact: FxHashMap<Box<str>, u32>,
    pub(super) prefix: FxHashMap<Box<str>, u32>,
}

impl HostRoutes {
    fn lookup(&self, path: &str) -> Option<u32> {
        if let Some(&r) = self.exact.get(path) {
            return Some(r);
        }
        if self.prefix.is_empty() {
            return None;
        }
        // Element-wise prefix match: try the whole path, then cut one segment at a time.
        let mut candidate = path.trim_end_matches('/');
        loop {
            let key = if candidate.is_empty() { "/" } else { candidate };
            if let Some(&r) = self.prefix.get(key) {
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

#[derive(Debug, Default)]
pub struct RouteTable {
    pub(super) exact_hosts: FxHashMap<Box<str>, HostRoutes>,
    /// Keyed by the part after `*.`.
    pub(super) wildcard_hosts: FxHashMap<Box<str>, HostRoutes>,
    pub(super) any_host: HostRoutes,
    pub(super) default_route: Option<u32>,
    pub(super) routes: Vec<Route>,
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
        let hr = self.host_routes(host);
        let id = hr.and_then(|h| h.lookup(path)).or(self.default_route)?;
        Some(&self.routes[id as usize])
    }

    fn host_routes(&self, host: &str) -> Option<&HostRoutes> {
        if let Some(h) = self.exact_hosts.get(host) {
            return Some(h);
        }
        // `*.foo.com` covers exactly one label: `bar.foo.com`, not `foo.com` or `a.b.foo.com`.
        if let Some(dot) = host.find('.') {
            if let Some(h) = self.wildcard_hosts.get(&host[dot + 1..]) {
                return Some(h);
            }
        }
        Some(&self.any_host)
    }

    pub fn routes(&self) -> impl Iterator<Item = &Route> {
        let default = self.default_route;
        self.routes.iter().enumerate().filter(move |(i, _)| Some(*i as u32) != default).map(|(_, r)| r)
    }

    pub fn default_route(&self) -> Option<&Route> {
        self.default_route.map(|i| &self.routes[i as usize])
    }

    pub fn len(&self) -> usize {
        self.routes.len()
    }

    pub fn is_empty(&self) -> bool {
        self.routes.is_empty()
    }
}
