//! What the ConfigMap says about the edge itself: headers added to every proxied response
//! (`add-headers`, HSTS over TLS) and which clients' forwarded headers are believed
//! (`use-forwarded-headers`, `enable-real-ip`, `proxy-real-ip-cidr`). Resolved and rendered
//! once per build; the workers only copy bytes.

use std::net::IpAddr;

use http::{HeaderName, HeaderValue};

use crate::model::{ConfigMap, ObjectKey};

/// An address block (`10.0.0.0/8`, `2001:db8::/32`, or one address).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Cidr {
    addr: IpAddr,
    bits: u8,
}

impl Cidr {
    pub fn parse(v: &str) -> Option<Cidr> {
        let (a, bits) = match v.split_once('/') {
            Some((a, b)) => (a, Some(b.parse::<u8>().ok()?)),
            None => (v, None),
        };
        let addr: IpAddr = a.trim().parse().ok()?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let bits = bits.unwrap_or(max);
        (bits <= max).then_some(Cidr { addr, bits })
    }

    pub fn contains(&self, ip: IpAddr) -> bool {
        match (self.addr, ip.to_canonical()) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                let mask = if self.bits == 0 { 0 } else { u32::MAX << (32 - self.bits) };
                u32::from(net) & mask == u32::from(ip) & mask
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                let mask = if self.bits == 0 { 0 } else { u128::MAX << (128 - self.bits) };
                u128::from(net) & mask == u128::from(ip) & mask
            }
            _ => false,
        }
    }
}

/// A comma-separated list of blocks; None if any does not parse.
pub fn parse_cidrs(v: &str) -> Option<Vec<Cidr>> {
    v.split(',').map(str::trim).filter(|s| !s.is_empty()).map(Cidr::parse).collect()
}

/// `hsts`, `hsts-max-age`, `hsts-include-subdomains` and `hsts-preload`. Sent only over TLS
/// (RFC 6797 §7.2: never over plain HTTP).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Hsts {
    pub enabled: bool,
    pub max_age: u64,
    pub include_subdomains: bool,
    pub preload: bool,
}

impl Default for Hsts {
    /// ingress-nginx's defaults: on, a year, subdomains included, no preload.
    fn default() -> Self {
        Hsts { enabled: true, max_age: 31_536_000, include_subdomains: true, preload: false }
    }
}

impl Hsts {
    /// The Strict-Transport-Security value; None when it is off.
    fn value(&self) -> Option<String> {
        let mut v = format!("max-age={}", self.max_age);
        if self.include_subdomains {
            v.push_str("; includeSubDomains");
        }
        if self.preload {
            v.push_str("; preload");
        }
        self.enabled.then_some(v)
    }
}

/// The ConfigMap's edge keys, and what they resolve to.
#[derive(Clone, Debug, PartialEq)]
pub struct Edge {
    /// `hsts` and its family: Strict-Transport-Security on responses over TLS.
    pub hsts: Hsts,
    /// `add-headers`: the ConfigMap (`namespace/name`) whose data are headers added to every
    /// proxied response.
    pub add_headers: Option<ObjectKey>,
    /// `proxy-set-headers`: the ConfigMap (`namespace/name`) whose data are fields set on
    /// every request to an upstream (in place of the client's of those names).
    pub proxy_set_headers: Option<ObjectKey>,
    /// Resolved from [`Edge::proxy_set_headers`]: (lower-case name, value).
    pub set_headers: Vec<Field>,
    /// `global-allowed-response-headers` (lower case): the only fields a `custom-headers`
    /// ConfigMap may set.
    pub allowed_response_headers: Vec<String>,
    /// `hide-headers` (lower case): fields of upstream responses never passed to clients.
    pub hide_headers: std::sync::Arc<[String]>,
    /// `use-forwarded-headers`: from a trusted peer, X-Forwarded-Proto and X-Forwarded-Host
    /// pass through and the client address is taken from X-Forwarded-For.
    pub use_forwarded_headers: bool,
    /// `enable-real-ip`: from a trusted peer, the client address is taken from
    /// X-Forwarded-For (only that).
    pub enable_real_ip: bool,
    /// `proxy-real-ip-cidr`: the peers trusted for the two above.
    pub trusted: Vec<Cidr>,
    /// `forwarded-for-header` (lower case): where a trusted peer names the client.
    pub forwarded_for_header: String,
    /// `compute-full-forwarded-for`: X-Forwarded-For to the upstream is the client's list with
    /// the peer appended, instead of the client address alone.
    pub compute_full_forwarded_for: bool,
    /// `whitelist-source-range`: only clients in these blocks, on every Ingress that does not
    /// set its own list (None: everyone).
    pub allow: Option<Vec<Cidr>>,
    /// `denylist-source-range`: never clients in these blocks, on every Ingress that does not
    /// set its own list.
    pub deny: Vec<Cidr>,
    /// `block-cidrs`: never clients in these blocks, whatever an Ingress says.
    pub block: Vec<Cidr>,
    /// `block-user-agents`, `block-referers`: never requests whose User-Agent or Referer
    /// matches one of these, whatever an Ingress says.
    pub block_user_agents: Vec<super::access::Pattern>,
    pub block_referers: Vec<super::access::Pattern>,
    /// ConfigMap keys of [`super::access::GLOBAL_UNENFORCED`] that are set: what they
    /// would have protected every Ingress with.
    pub unenforced: Vec<(String, &'static str)>,
    /// Set by the build under `--unsupported-security-annotations=refuse` when
    /// [`Edge::unenforced`] is not empty: why every Ingress that keeps global auth is refused.
    pub refused: Option<std::sync::Arc<str>>,
    /// `global-auth-url` and its family, resolved: the external authentication of every
    /// Ingress that keeps global auth and has no `auth-url` of its own.
    pub global_auth: Option<std::sync::Arc<super::external::ExternalAuth>>,
    /// `allow-snippet-annotations`: the safe subset of `configuration-snippet` and
    /// `server-snippet` is applied (off: snippets are not applied; access directives in one
    /// refuse the routes either way).
    pub allow_snippets: bool,
    /// `proxy-redirect-from`, `proxy-redirect-to` (`off`/`default` in the first: none).
    pub redirect_from: Option<String>,
    pub redirect_to: Option<String>,
    /// `proxy-cookie-domain`, `proxy-cookie-path` (`Some(None)`: `off`).
    pub cookie_domain: Option<Option<super::response_rewrite::Pair>>,
    pub cookie_path: Option<Option<super::response_rewrite::Pair>>,
    /// The four above as [`Edge::resolve`] combines them: rewrites of upstream response
    /// fields for Ingresses that do not set their own.
    pub rewrites: std::sync::Arc<super::response_rewrite::ResponseRewrites>,
    /// `ssl-protocols` and the rest of the HTTPS listener's TLS.
    pub tls: super::listener_tls::ListenerTls,
    /// `use-gzip`, `enable-brotli` and their families.
    pub compression: super::compression::Compression,
    /// Rendered by [`Edge::resolve`]: the header lines for HTTP/1.1 (plain, and over TLS
    /// with HSTS), and the same fields for HTTP/2.
    h1_plain: Vec<u8>,
    h1_tls: Vec<u8>,
    h2_plain: Vec<(HeaderName, HeaderValue)>,
    h2_tls: Vec<(HeaderName, HeaderValue)>,
}

impl Default for Edge {
    fn default() -> Self {
        let mut e = Edge {
            hsts: Hsts::default(),
            add_headers: None,
            proxy_set_headers: None,
            set_headers: Vec::new(),
            allowed_response_headers: Vec::new(),
            hide_headers: std::sync::Arc::from(Vec::new()),
            use_forwarded_headers: false,
            enable_real_ip: false,
            trusted: vec![Cidr::parse("0.0.0.0/0").expect("valid"), Cidr::parse("::/0").expect("valid")],
            forwarded_for_header: "x-forwarded-for".to_string(),
            compute_full_forwarded_for: false,
            allow: None,
            deny: Vec::new(),
            block: Vec::new(),
            block_user_agents: Vec::new(),
            block_referers: Vec::new(),
            unenforced: Vec::new(),
            refused: None,
            global_auth: None,
            allow_snippets: false,
            redirect_from: None,
            redirect_to: None,
            cookie_domain: None,
            cookie_path: None,
            rewrites: Default::default(),
            tls: Default::default(),
            compression: Default::default(),
            h1_plain: Vec::new(),
            h1_tls: Vec::new(),
            h2_plain: Vec::new(),
            h2_tls: Vec::new(),
        };
        e.render(&[]);
        e
    }
}

/// A header field the proxy sets: (lower-case name, value).
pub type Field = (String, Vec<u8>);

/// Fields that frame a message or route it: the proxy writes them itself, and no ConfigMap
/// may set or hide them (a hidden Content-Length would leave a body unframed).
pub const FRAMING_FIELDS: [&str; 9] = [
    "content-length",
    "transfer-encoding",
    "connection",
    "keep-alive",
    "proxy-connection",
    "upgrade",
    "te",
    "trailer",
    "host",
];

/// A ConfigMap's data as header fields ((lower-case name, value)): names that are tokens,
/// values of visible characters and spaces. A name `allowed` refuses is an error naming it; a
/// value with an nginx variable (`$`), which ringress does not expand, is skipped with a
/// warning.
pub fn header_fields(cm: &ConfigMap, allowed: impl Fn(&str) -> bool) -> Result<(Vec<Field>, Vec<String>), String> {
    let mut out = Vec::with_capacity(cm.data.len());
    let mut skipped = Vec::new();
    for (name, value) in &cm.data {
        let value = value.trim();
        let lower = name.to_ascii_lowercase();
        if HeaderName::from_bytes(name.as_bytes()).is_err() || HeaderValue::from_str(value).is_err() {
            return Err(format!("ConfigMap {}: {name:?}: {value:?} is not a valid header field", cm.key));
        }
        if FRAMING_FIELDS.contains(&lower.as_str()) {
            return Err(format!(
                "ConfigMap {}: {name} frames or routes the message; the proxy writes it itself",
                cm.key
            ));
        }
        if !allowed(&lower) {
            return Err(format!(
                "ConfigMap {}: {name} is not listed in the ConfigMap key global-allowed-response-headers",
                cm.key
            ));
        }
        if value.contains('$') {
            skipped.push(format!(
                "ConfigMap {}: {name}: {value:?} has an nginx variable, which ringress does not expand; skipped",
                cm.key
            ));
            continue;
        }
        out.push((lower, value.as_bytes().to_vec()));
    }
    Ok((out, skipped))
}

impl Edge {
    /// Looks up the `add-headers` ConfigMap among `config_maps` and renders the headers.
    /// A missing ConfigMap or a field that is not a valid header is a warning naming it. A
    /// `proxy-redirect-from` that cannot be used (without `proxy-redirect-to`) keeps `prev`'s
    /// pair (the live snapshot's), as a key that does not parse does.
    pub fn resolve(
        &mut self,
        config_maps: &[&ConfigMap],
        warnings: &mut Vec<String>,
        (from, prev): (&ObjectKey, Option<&Edge>),
    ) {
        let mut rewrites = super::response_rewrite::ResponseRewrites {
            redirect: None,
            cookie_domain: self.cookie_domain.clone(),
            cookie_path: self.cookie_path.clone(),
        };
        if let Some(f) = &self.redirect_from {
            match super::response_rewrite::parse_redirect(f, self.redirect_to.as_deref()) {
                Ok(r) => rewrites.redirect = Some(r),
                Err(why) => {
                    let kept = prev.and_then(|p| p.rewrites.redirect.clone());
                    let what = if kept.is_some() { "its previous value stays" } else { "ignored" };
                    warnings.push(format!("ConfigMap {from}: key proxy-redirect-from {why}; {what}"));
                    rewrites.redirect = kept;
                }
            }
        }
        self.rewrites = std::sync::Arc::new(rewrites);
        let mut added = Vec::new();
        if let Some(key) = &self.add_headers {
            match config_maps.iter().find(|c| &c.key == key) {
                None => warnings.push(format!(
                    "ConfigMap {from}: key add-headers: ConfigMap {key} not found; no headers are added"
                )),
                Some(cm) => {
                    for (name, value) in &cm.data {
                        match (HeaderName::from_bytes(name.as_bytes()), HeaderValue::from_str(value.trim())) {
                            (Ok(n), Ok(v)) => added.push((n, v)),
                            _ => warnings
                                .push(format!("ConfigMap {key}: {name:?}: {value:?} is not a valid header; skipped")),
                        }
                    }
                }
            }
        }
        self.render(&added);
        self.set_headers.clear();
        if let Some(key) = self.proxy_set_headers.clone() {
            match config_maps.iter().find(|c| c.key == key) {
                None => warnings.push(format!(
                    "ConfigMap {from}: key proxy-set-headers: ConfigMap {key} not found; no fields are set"
                )),
                Some(cm) => match header_fields(cm, |_| true) {
                    Ok((fields, skipped)) => {
                        warnings.extend(skipped);
                        self.set_headers = fields;
                    }
                    Err(why) => warnings.push(format!("{why}; no fields are set")),
                },
            }
        }
    }

    fn render(&mut self, added: &[(HeaderName, HeaderValue)]) {
        self.h1_plain.clear();
        self.h2_plain = added.to_vec();
        for (n, v) in added {
            self.h1_plain.extend_from_slice(n.as_str().as_bytes());
            self.h1_plain.extend_from_slice(b": ");
            self.h1_plain.extend_from_slice(v.as_bytes());
            self.h1_plain.extend_from_slice(b"\r\n");
        }
        self.h1_tls = self.h1_plain.clone();
        self.h2_tls = self.h2_plain.clone();
        if let Some(v) = self.hsts.value() {
            self.h1_tls.extend_from_slice(format!("Strict-Transport-Security: {v}\r\n").as_bytes());
            if let Ok(v) = HeaderValue::from_str(&v) {
                self.h2_tls.push((http::header::STRICT_TRANSPORT_SECURITY, v));
            }
        }
    }

    /// Header lines to add to a proxied HTTP/1.1 response (each ending in CRLF).
    pub fn h1(&self, tls: bool) -> &[u8] {
        if tls {
            &self.h1_tls
        } else {
            &self.h1_plain
        }
    }

    /// Fields to add to a proxied HTTP/2 response.
    pub fn h2(&self, tls: bool) -> &[(HeaderName, HeaderValue)] {
        if tls {
            &self.h2_tls
        } else {
            &self.h2_plain
        }
    }

    /// Whether the client address may be taken from X-Forwarded-For on a connection from `peer`.
    pub fn real_ip_from(&self, peer: IpAddr) -> bool {
        (self.use_forwarded_headers || self.enable_real_ip) && self.trusted.iter().any(|c| c.contains(peer))
    }

    /// Whether X-Forwarded-Proto and X-Forwarded-Host from `peer` pass through.
    pub fn forwarded_from(&self, peer: IpAddr) -> bool {
        self.use_forwarded_headers && self.trusted.iter().any(|c| c.contains(peer))
    }
}

impl Edge {
    /// The client a connection from `peer` speaks for, as nginx's realip module finds it with
    /// `real_ip_recursive on` (ingress-nginx's setting): `fields` are the values of
    /// `forwarded-for-header` in order; from the right, each address replaces the client until
    /// one is not a trusted proxy (or all were: the leftmost). An entry that is not an address
    /// ends the walk. Only from a trusted peer with `use-forwarded-headers` or
    /// `enable-real-ip`; otherwise the peer. Behind the PROXY protocol (`proxied`: `peer` is
    /// the address its header named), that address is the client, as ingress-nginx's
    /// `real_ip_header proxy_protocol` makes it: no header field is consulted.
    pub fn real_client<'v>(
        &self,
        peer: IpAddr,
        proxied: bool,
        fields: impl DoubleEndedIterator<Item = &'v [u8]>,
    ) -> IpAddr {
        let peer = peer.to_canonical();
        if proxied || !self.real_ip_from(peer) {
            return peer;
        }
        let mut client = peer;
        for field in fields.rev() {
            for entry in field.rsplit(|&b| b == b',').map(<[u8]>::trim_ascii).filter(|e| !e.is_empty()) {
                let Some(addr) = std::str::from_utf8(entry).ok().and_then(|e| e.parse::<IpAddr>().ok()) else {
                    return client;
                };
                client = addr.to_canonical();
                if !self.trusted.iter().any(|c| c.contains(client)) {
                    return client;
                }
            }
        }
        client
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cidrs_match_by_prefix() {
        let c = Cidr::parse("10.1.0.0/16").unwrap();
        assert!(c.contains("10.1.200.3".parse().unwrap()));
        assert!(!c.contains("10.2.0.1".parse().unwrap()));
        assert!(c.contains("::ffff:10.1.0.9".parse().unwrap()), "IPv4-mapped IPv6 peers");
        let v6 = Cidr::parse("2001:db8::/32").unwrap();
        assert!(v6.contains("2001:db8:1::1".parse().unwrap()) && !v6.contains("2001:db9::1".parse().unwrap()));
        assert!(Cidr::parse("10.0.0.1").unwrap().contains("10.0.0.1".parse().unwrap()));
        assert_eq!(parse_cidrs("10.0.0.0/8, 192.168.0.0/33"), None);
        assert_eq!(parse_cidrs("10.0.0.0/8,").map(|v| v.len()), Some(1));
    }

    #[test]
    fn hsts_only_over_tls() {
        let e = Edge::default();
        assert_eq!(e.h1(false), b"");
        assert_eq!(e.h1(true), b"Strict-Transport-Security: max-age=31536000; includeSubDomains\r\n");
        let hsts = Hsts { preload: true, include_subdomains: false, max_age: 60, ..Hsts::default() };
        let e2 = Edge { hsts, ..Edge::default() };
        let mut e2 = e2;
        e2.render(&[]);
        assert_eq!(e2.h2(true)[0].1, "max-age=60; preload");
    }

    #[test]
    fn the_client_is_the_first_untrusted_address_from_the_right() {
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        let fields = |v: &'static [&'static str]| v.iter().map(|s| s.as_bytes());
        let mut e = Edge::default();
        let peer = ip("10.0.0.9");
        assert_eq!(e.real_client(peer, false, fields(&["1.2.3.4"])), peer, "neither setting: the peer");
        e.use_forwarded_headers = true;
        // Every address trusted (the default 0.0.0.0/0): the leftmost, as nginx finds it.
        assert_eq!(e.real_client(peer, false, fields(&["1.2.3.4, 5.6.7.8", "10.0.0.1"])), ip("1.2.3.4"));
        e.trusted = parse_cidrs("10.0.0.0/8").unwrap();
        assert_eq!(e.real_client(peer, false, fields(&["1.2.3.4, 5.6.7.8", "10.0.0.1"])), ip("5.6.7.8"));
        assert_eq!(
            e.real_client(peer, false, fields(&["1.2.3.4, junk, 10.0.0.2"])),
            ip("10.0.0.2"),
            "junk ends the walk"
        );
        assert_eq!(e.real_client(peer, false, fields(&[])), peer);
        assert_eq!(e.real_client(ip("192.0.2.1"), false, fields(&["1.2.3.4"])), ip("192.0.2.1"), "an untrusted peer");
        assert_eq!(e.real_client(peer, false, fields(&["::ffff:5.6.7.8"])), ip("5.6.7.8"), "IPv4-mapped, canonical");
        assert_eq!(e.real_client(peer, true, fields(&["5.6.7.8"])), peer, "the PROXY header's address wins");
    }
}
