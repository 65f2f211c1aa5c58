//! A Gateway API rule as the data plane uses it: the match conditions beyond the path
//! (method, headers, query parameters, the listener), checked by the route table, and the
//! rule's filters and weighted backends, applied by the request pipeline.

use std::sync::atomic::{AtomicU64, Ordering};

use crate::model::gateway::{GatewayPath, HeaderModifier, MatchType, PathModifier, Redirect, ValueMatch};
use crate::snapshot::BackendId;

/// What the route table needs to know of a request to choose among rules with the same path.
pub trait Facts {
    fn method(&self) -> &str;
    /// The first field named `name` (lower case).
    fn header(&self, name: &str) -> Option<&[u8]>;
    /// The query, with its `?` (empty when none).
    fn query(&self) -> &[u8];
    /// The listener the request came in on.
    fn entry(&self) -> Entry;
}

/// The listener a connection came in on. ringress's own `--http` and `--https` listeners
/// (`main`) serve the Gateway listeners of ports 80 and 443 and of their own port; the ports
/// other Gateway listeners name get listeners of their own.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Entry {
    pub tls: bool,
    /// The port it accepted on.
    pub port: u16,
    pub main: bool,
}

impl Entry {
    /// Whether a Gateway listener on `port` (`tls`: HTTPS or TLS) is served here.
    pub fn serves(&self, (port, tls): (u16, bool)) -> bool {
        tls == self.tls && (port == self.port || self.main && port == if tls { 443 } else { 80 })
    }
}

/// The host names of our Gateways' HTTPS listeners, by port (None: a listener without one),
/// sorted. A request on a TLS connection belongs to the listener its ClientHello named: an
/// HTTP/2 client may reuse a connection for any name the certificate covers, and such a
/// request for another listener's host is misdirected (421), as the Gateway API asks.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct HttpsNames(pub Vec<(u16, Option<String>)>);

impl HttpsNames {
    /// The listener served at `entry` that takes `name` (lower case): the one naming it
    /// exactly, else the wildcard with the longest suffix that covers it, else one without a
    /// host name. None: no listener takes it.
    fn listener(&self, entry: Entry, name: &str) -> Option<Option<&str>> {
        let mut best: Option<(usize, Option<&str>)> = None;
        for (port, host) in &self.0 {
            if !entry.serves((*port, true)) {
                continue;
            }
            let rank = match host.as_deref() {
                None => 0,
                Some(h) if h == name => usize::MAX,
                Some(h) if super::covers(h, name) => h.len(),
                Some(_) => continue,
            };
            if best.is_none_or(|(r, _)| rank > r) {
                best = Some((rank, host.as_deref()));
            }
        }
        best.map(|(_, h)| h)
    }

    /// Whether a request for `host` on a TLS connection at `entry` whose ClientHello named
    /// `sni` (both lower case) belongs to another Gateway listener than the one the
    /// ClientHello chose.
    pub fn misdirected(&self, entry: Entry, sni: &str, host: &str) -> bool {
        match (self.listener(entry, sni), self.listener(entry, host)) {
            (Some(by_sni), Some(by_host)) => by_sni != by_host,
            _ => false,
        }
    }
}

/// An exact value or an expression (matched anywhere unless anchored, as RE2 does).
#[derive(Debug)]
pub enum Value {
    Exact(String),
    Regex(regex::Regex),
}

impl Value {
    fn of(m: &ValueMatch) -> Value {
        match m.type_ {
            // Checked when the route was read.
            MatchType::RegularExpression => match regex::Regex::new(&m.value) {
                Ok(re) => Value::Regex(re),
                Err(_) => Value::Exact(m.value.clone()),
            },
            _ => Value::Exact(m.value.clone()),
        }
    }

    fn matches(&self, v: &[u8]) -> bool {
        match self {
            Value::Exact(s) => s.as_bytes() == v,
            Value::Regex(re) => std::str::from_utf8(v).is_ok_and(|v| re.is_match(v)),
        }
    }
}

/// One rule of one match.
#[derive(Debug)]
pub struct GatewayRule {
    pub method: Option<String>,
    pub headers: Vec<(String, Value)>,
    pub query: Vec<(String, Value)>,
    /// The Gateway listeners (port, over TLS) it is attached to; empty: any.
    pub listeners: Vec<(u16, bool)>,
    pub request_headers: Option<HeaderModifier>,
    pub redirect: Option<Redirect>,
    /// URLRewrite's path, and the matched prefix a ReplacePrefixMatch replaces.
    pub rewrite_path: Option<PathModifier>,
    /// The path of a Prefix match (what ReplacePrefixMatch replaces).
    pub prefix: Option<String>,
    /// Weighted backends; `None`: a reference that did not resolve (500).
    pub split: Vec<(Option<BackendId>, u32)>,
    total: u64,
    picked: AtomicU64,
    /// `RequestMirror`: backends a copy of the request goes to, each with the percentage of
    /// requests mirrored.
    pub mirrors: Vec<(BackendId, u32)>,
    mirrored: AtomicU64,
}

impl PartialEq for GatewayRule {
    fn eq(&self, other: &Self) -> bool {
        let same = |a: &[(String, Value)], b: &[(String, Value)]| {
            a.len() == b.len()
                && a.iter().zip(b).all(|((n1, v1), (n2, v2))| {
                    n1 == n2
                        && match (v1, v2) {
                            (Value::Exact(x), Value::Exact(y)) => x == y,
                            (Value::Regex(x), Value::Regex(y)) => x.as_str() == y.as_str(),
                            _ => false,
                        }
                })
        };
        self.method == other.method
            && same(&self.headers, &other.headers)
            && same(&self.query, &other.query)
            && self.listeners == other.listeners
            && self.request_headers == other.request_headers
            && self.redirect == other.redirect
            && self.rewrite_path == other.rewrite_path
            && self.prefix == other.prefix
            && self.split == other.split
            && self.mirrors == other.mirrors
    }
}

impl Eq for GatewayRule {}

impl GatewayRule {
    /// The rule of `g`, with its backends' ids (in `g.backends`' order, `None` where the
    /// reference did not resolve).
    pub fn new(g: &GatewayPath, ids: Vec<Option<BackendId>>) -> GatewayRule {
        use crate::model::gateway::Filter;
        let mut rule = GatewayRule {
            method: g.matched.method.clone(),
            headers: g.matched.headers.iter().map(|m| (m.name.clone(), Value::of(m))).collect(),
            query: g.matched.query.iter().map(|m| (m.name.clone(), Value::of(m))).collect(),
            listeners: g.listeners.clone(),
            request_headers: None,
            redirect: None,
            rewrite_path: None,
            prefix: (g.matched.path.type_ == MatchType::Prefix).then(|| g.matched.path.value.clone()),
            split: ids.into_iter().zip(g.backends.iter().map(|(_, w)| *w)).collect(),
            total: 0,
            picked: AtomicU64::new(0),
            mirrors: Vec::new(),
            mirrored: AtomicU64::new(0),
        };
        rule.total = rule.split.iter().map(|(_, w)| u64::from(*w)).sum();
        for f in &g.filters {
            match f {
                Filter::RequestHeaders(h) => rule.request_headers = Some(h.clone()),
                Filter::Redirect(r) => rule.redirect = Some(r.clone()),
                Filter::Rewrite(r) => rule.rewrite_path = r.path.clone(),
                Filter::ResponseHeaders(_) | Filter::Mirror { .. } | Filter::Unsupported(_) => {}
            }
        }
        rule
    }

    /// The backends this request is mirrored to: each mirror's percentage of the requests,
    /// spread evenly (every request at 100).
    pub fn mirror_to(&self) -> impl Iterator<Item = BackendId> + '_ {
        let n = match self.mirrors.iter().all(|(_, p)| *p >= 100) {
            true => 0,
            false => self.mirrored.fetch_add(1, Ordering::Relaxed) % 100,
        };
        self.mirrors
            .iter()
            .filter(move |(_, p)| (n + 1) * u64::from(*p) / 100 > n * u64::from(*p) / 100)
            .map(|(b, _)| *b)
    }

    /// How specific the match is beyond its path: the specification's precedence after the
    /// path (a method first, then more headers, then more query parameters).
    pub fn rank(&self) -> (bool, usize, usize) {
        (self.method.is_some(), self.headers.len(), self.query.len())
    }

    /// Whether a connection on `entry` may use the rule.
    pub fn serves(&self, entry: Entry) -> bool {
        self.listeners.is_empty() || self.listeners.iter().any(|l| entry.serves(*l))
    }

    /// Whether the request meets every condition.
    pub fn admits(&self, f: &dyn Facts) -> bool {
        self.serves(f.entry())
            && self.method.as_deref().is_none_or(|m| m == f.method())
            && self.headers.iter().all(|(n, v)| f.header(n).is_some_and(|have| v.matches(have)))
            && (self.query.is_empty() || {
                let q = f.query();
                self.query.iter().all(|(n, v)| query_param(q, n).is_some_and(|have| v.matches(have)))
            })
    }

    /// The backend of the next request: `Some(None)` for a share that does not resolve,
    /// `None` when every weight is 0 (the specification: 500 as well). Over each run of
    /// `total` requests, each backend gets exactly its weight, spread out.
    pub fn pick(&self) -> Option<Option<BackendId>> {
        if self.total == 0 {
            return None;
        }
        if self.split.len() == 1 {
            return Some(self.split[0].0);
        }
        let n = self.picked.fetch_add(1, Ordering::Relaxed);
        weighted(n, self.total, self.split.iter().map(|(id, w)| (*id, *w)))
    }
}

impl GatewayRule {
    /// What the rule asks beyond its path, for `ringress check` and `/debug/routes`
    /// (`backend` names a backend id).
    pub fn describe(&self, backend: impl Fn(BackendId) -> String) -> String {
        let mut parts = Vec::new();
        let value = |v: &Value| match v {
            Value::Exact(s) => format!("={s}"),
            Value::Regex(re) => format!("~{}", re.as_str()),
        };
        if let Some(m) = &self.method {
            parts.push(format!("method {m}"));
        }
        for (n, v) in &self.headers {
            parts.push(format!("header {n}{}", value(v)));
        }
        for (n, v) in &self.query {
            parts.push(format!("query {n}{}", value(v)));
        }
        if !self.listeners.is_empty() {
            let on: Vec<String> =
                self.listeners.iter().map(|(p, tls)| format!("{p}/{}", if *tls { "tls" } else { "http" })).collect();
            parts.push(format!("listeners {}", on.join(" ")));
        }
        if let Some(r) = &self.redirect {
            parts.push(format!("redirect {}", r.status));
        }
        if self.rewrite_path.is_some() {
            parts.push("path rewritten".into());
        }
        if let Some(h) = &self.request_headers {
            parts.push(format!(
                "request fields: {} set, {} added, {} removed",
                h.set.len(),
                h.add.len(),
                h.remove.len()
            ));
        }
        if self.split.len() > 1 || self.split.iter().any(|(b, _)| b.is_none()) {
            let shares: Vec<String> = self
                .split
                .iter()
                .map(|(b, w)| format!("{}={w}", b.map(&backend).unwrap_or_else(|| "<unresolved: 500>".into())))
                .collect();
            parts.push(format!("weights {}", shares.join(" ")));
        }
        parts.join(", ")
    }
}

/// The share the `n`th pick lands on among `shares`, whose weights sum to `total` (not 0):
/// over each run of `total` picks each share gets exactly its weight, interleaved (a stride
/// coprime with the total walks every slot once per run).
pub fn weighted<T>(n: u64, total: u64, shares: impl Iterator<Item = (T, u32)>) -> Option<T> {
    const STRIDE: u64 = 7919;
    let n = n % total;
    let slot = if total % STRIDE == 0 { n } else { n * STRIDE % total };
    let mut acc = 0u64;
    for (share, w) in shares {
        acc += u64::from(w);
        if slot < acc {
            return Some(share);
        }
    }
    None
}

/// The first value of the query parameter `name` (as sent; names are case-sensitive).
pub fn query_param<'q>(query: &'q [u8], name: &str) -> Option<&'q [u8]> {
    query.strip_prefix(b"?").unwrap_or(query).split(|&b| b == b'&').find_map(|pair| {
        let (k, v) = match pair.iter().position(|&b| b == b'=') {
            Some(i) => (&pair[..i], &pair[i + 1..]),
            None => (pair, &b""[..]),
        };
        (k == name.as_bytes()).then_some(v)
    })
}

/// `ReplacePrefixMatch`: `path`, which the prefix `prefix` matched element-wise, with that
/// prefix replaced (`/prefix/one` + `/one` turns `/prefix/one/two` into `/one/two`; `/`
/// strips it).
pub fn replace_prefix(path: &str, prefix: &str, with: &str) -> String {
    let prefix = prefix.trim_end_matches('/');
    let rest = path.get(prefix.len()..).unwrap_or("");
    let mut out = format!("{}{rest}", with.trim_end_matches('/'));
    if !out.starts_with('/') {
        out.insert(0, '/');
    }
    out
}

/// The path a redirect or rewrite makes of `path`.
pub fn modified_path(m: &PathModifier, path: &str, prefix: Option<&str>) -> String {
    match m {
        PathModifier::Full(p) => p.clone(),
        PathModifier::Prefix(with) => replace_prefix(path, prefix.unwrap_or("/"), with),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The upstream conformance test HTTPRouteHTTPSListenerDetectMisdirectedRequests, as
    /// (ClientHello name, Host) pairs: its 421 cases, then its others.
    #[test]
    fn a_request_for_another_https_listener_is_misdirected() {
        let names = HttpsNames(vec![
            (443, None),
            (443, Some("fourth-example.wildcard.org".into())),
            (443, Some("*.wildcard.org".into())),
            (443, Some("second-example.org".into())),
            (8443, Some("other.org".into())),
        ]);
        let main = Entry { tls: true, port: 8443, main: true };
        let misdirected = [
            ("example.org", "second-example.org"),
            ("second-example.org", "example.org"),
            ("second-example.org", "unknown-example.org"),
            ("third-example.wildcard.org", "fourth-example.wildcard.org"),
            ("third-example.wildcard.org", "second-example.org"),
            ("fourth-example.wildcard.org", "fith-example.wildcard.org"),
            ("wildcard.org", "a.wildcard.org"),
            // The main listener serves 443's listeners and its own port's.
            ("other.org", "example.org"),
        ];
        let kept = [
            ("example.org", "example.org"),
            ("example.org", "unknown-example.org"),
            ("second-example.org", "second-example.org"),
            ("third-example.wildcard.org", "fith-example.wildcard.org"),
            ("fourth-example.wildcard.org", "fourth-example.wildcard.org"),
            ("a.b.wildcard.org", "c.wildcard.org"),
            ("unknown-example.org", "example.org"),
        ];
        for (sni, host) in misdirected {
            assert!(names.misdirected(main, sni, host), "{sni} / {host}");
        }
        for (sni, host) in kept {
            assert!(!names.misdirected(main, sni, host), "{sni} / {host}");
        }
        // A Gateway listener on a port of its own serves only that port's listeners.
        let own = Entry { tls: true, port: 443, main: false };
        assert!(names.misdirected(own, "second-example.org", "example.org"));
        let other = Entry { tls: true, port: 9443, main: false };
        assert!(!names.misdirected(other, "second-example.org", "example.org"), "no listener there");
        // Only HTTPS listeners without host names, or none: nothing is misdirected.
        let hostless = HttpsNames(vec![(443, None)]);
        assert!(!hostless.misdirected(main, "a.test", "b.test"));
        assert!(!HttpsNames::default().misdirected(main, "a.test", "b.test"));
    }

    #[test]
    fn prefixes_are_replaced_element_wise() {
        assert_eq!(replace_prefix("/prefix/one/two", "/prefix/one", "/one"), "/one/two");
        assert_eq!(replace_prefix("/strip-prefix/three", "/strip-prefix", "/"), "/three");
        assert_eq!(replace_prefix("/strip-prefix", "/strip-prefix", "/"), "/");
        assert_eq!(replace_prefix("/strip-prefix/", "/strip-prefix/", "/"), "/");
        assert_eq!(replace_prefix("/a/b", "/", "/x"), "/x/a/b");
        assert_eq!(replace_prefix("/a", "/a", "/xyz/"), "/xyz");
    }

    #[test]
    fn weights_are_exact_over_each_run_and_interleaved() {
        let g = GatewayPath {
            kind: crate::model::gateway::RouteKind::Http,
            matched: Default::default(),
            filters: vec![],
            backends: vec![(None, 70), (None, 30), (None, 0)],
            mirrors: vec![],
            timeouts: Default::default(),
            listeners: vec![],
        };
        let rule = GatewayRule::new(&g, vec![Some(0), Some(1), Some(2)]);
        let mut counts = [0; 3];
        let mut first = Vec::new();
        for i in 0..100 {
            let b = rule.pick().unwrap().unwrap() as usize;
            counts[b] += 1;
            if i < 10 {
                first.push(b);
            }
        }
        assert_eq!(counts, [70, 30, 0]);
        assert!(first.contains(&1), "the 30% backend is reached early: {first:?}");
    }

    #[test]
    fn mirrors_take_their_percentage_of_the_requests() {
        let g = GatewayPath {
            kind: crate::model::gateway::RouteKind::Http,
            matched: Default::default(),
            filters: vec![],
            backends: vec![(None, 1)],
            mirrors: vec![],
            timeouts: Default::default(),
            listeners: vec![],
        };
        let mut rule = GatewayRule::new(&g, vec![Some(0)]);
        rule.mirrors = vec![(7, 100), (8, 25), (9, 0)];
        let mut counts = [0; 3];
        for _ in 0..200 {
            for b in rule.mirror_to() {
                counts[b as usize - 7] += 1;
            }
        }
        assert_eq!(counts, [200, 50, 0]);
    }

    #[test]
    fn query_parameters_are_found_by_exact_name() {
        assert_eq!(query_param(b"?a=1&animal=whale", "animal"), Some(&b"whale"[..]));
        assert_eq!(query_param(b"?Animal=whale", "animal"), None);
        assert_eq!(query_param(b"", "a"), None);
        assert_eq!(query_param(b"?flag", "flag"), Some(&b""[..]));
    }
}
