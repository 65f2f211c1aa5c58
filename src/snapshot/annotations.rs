//! The ingress-nginx annotations ringress honours, under both prefixes
//! (`nginx.ingress.kubernetes.io/` and the older `ingress.kubernetes.io/`), parsed once per
//! Ingress into the options its routes carry. A malformed value is a warning naming the
//! Ingress and the key, and that one setting keeps its default; the rest of the Ingress is
//! served.

use std::sync::Arc;
use std::time::Duration;

use super::access::{unenforced, Access, UnsupportedPolicy};
use super::auth::BasicSpec;
use super::client_cert::{self, ClientCert, ClientCertSpec};
use super::config::{key, whole, Key};
use super::edge::{parse_cidrs, Cidr};
use super::external::{self, ExternalAuth};
use crate::model::{Ingress, ObjectKey};

mod notes;
mod refs;
mod values;

pub use notes::{Note, NO_OP};
pub use refs::{
    auth_config_map, auth_secret, auth_service, auth_tls_secret, custom_headers_map, default_backend, full_key,
    proxy_ssl_secret, wants_regex,
};
use refs::{basic_spec, secret_key};
use values::compile_path;
pub use values::Rewrite;
pub use values::{
    literal_prefix, parse_bool, parse_on_off, parse_seconds_or_zero, parse_size, HeaderPattern, PathRegex,
};
pub(crate) use values::{parse_codes, parse_seconds};

/// The annotation prefixes read: ingress-nginx's current one (which wins), then the older one.
pub const PREFIXES: [&str; 2] = ["nginx.ingress.kubernetes.io/", "ingress.kubernetes.io/"];

/// How the proxy talks to the backend.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum BackendProtocol {
    #[default]
    Http,
    Https,
    Grpc,
    Grpcs,
    /// `AUTO_HTTP`: HTTP/1.1, over TLS when the client's request came over TLS (ingress-nginx
    /// proxies to `$scheme://`).
    AutoHttp,
}

impl BackendProtocol {
    pub fn is_grpc(self) -> bool {
        matches!(self, BackendProtocol::Grpc | BackendProtocol::Grpcs)
    }

    /// Whether the upstream may be spoken to over TLS (`proxy-ssl-*` apply).
    pub fn speaks_tls(self) -> bool {
        matches!(self, BackendProtocol::Https | BackendProtocol::Grpcs | BackendProtocol::AutoHttp)
    }
}

/// A route's upstream timeouts; `None`: the ConfigMap's.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ProxyTimeouts {
    pub connect: Option<Duration>,
    pub read: Option<Duration>,
    pub send: Option<Duration>,
}

/// What an Ingress's annotations ask of its routes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RouteOptions {
    /// Redirect plain HTTP to HTTPS when the host is in the Ingress's `spec.tls`; `None`: the
    /// ConfigMap's `ssl-redirect` (default on).
    pub ssl_redirect: Option<bool>,
    /// Redirect plain HTTP to HTTPS even without TLS configured for the host; `None`: the
    /// ConfigMap's `force-ssl-redirect` (default off).
    pub force_ssl_redirect: Option<bool>,
    pub use_regex: bool,
    /// The raw `rewrite-target`; compiled per path into [`Rewrite`].
    pub rewrite_target: Option<String>,
    /// `proxy-body-size`: request body limit (0: none); `None`: the global setting.
    pub max_body_bytes: Option<u64>,
    /// `proxy-connect-timeout`, `proxy-read-timeout` and `proxy-send-timeout`.
    pub timeouts: ProxyTimeouts,
    /// `proxy-request-buffering` (`on`/`off`); `None`: the ConfigMap's.
    pub request_buffering: Option<bool>,
    pub protocol: BackendProtocol,
    /// Client-address lists, and whether the routes are refused (fail closed).
    pub access: Access,
    /// `auth-type: basic` and its Secret, read by the builder into [`Access::basic`].
    pub basic_auth: Option<BasicSpec>,
    /// `enable-global-auth` (default true): the ConfigMap's global auth applies.
    pub global_auth: bool,
    /// `auth-url` and its family; the builder resolves where the auth service is.
    pub external: Option<Arc<ExternalAuth>>,
    /// `auth-tls-secret` and its family, read by the builder into `client_cert`.
    pub client_cert_spec: Option<ClientCertSpec>,
    pub client_cert: Option<Arc<ClientCert>>,
    /// `ssl-passthrough` (with `--enable-ssl-passthrough`): TLS connections naming the host
    /// go to the backend of its `/` path untouched; with `ringress.dev/proxy-protocol`, after
    /// a PROXY header naming the client.
    pub ssl_passthrough: Option<Option<super::l4::ProxyVersion>>,
    /// `proxy-ssl-*`, read by the builder into `upstream_tls`.
    pub upstream_tls_spec: Option<super::upstream_tls::UpstreamTlsSpec>,
    /// TLS to the upstream when the backend speaks it; `None`: [`UpstreamTls::DEFAULT`].
    ///
    /// [`UpstreamTls::DEFAULT`]: super::upstream_tls::UpstreamTls::DEFAULT
    pub upstream_tls: Option<Arc<super::upstream_tls::UpstreamTls>>,
    /// `canary: "true"` and its rules: this Ingress's routes are alternatives for the main
    /// Ingress's same host and path, not routes of their own.
    pub canary: Option<Arc<CanaryRules>>,
    /// How the endpoint is chosen (`load-balance`, `upstream-hash-by`, `affinity`).
    pub balance: super::traffic::Balance,
    /// `enable-cors` and its family.
    pub cors: Option<Arc<super::traffic::Cors>>,
    /// `limit-*`.
    pub limits: Option<Arc<super::traffic::Limits>>,
    /// `proxy-next-upstream`, `-tries`, `-timeout`; `None`: the ConfigMap's.
    pub next_upstream: Option<super::NextWhen>,
    pub next_upstream_tries: Option<u32>,
    pub next_upstream_timeout: Option<Duration>,
    /// `default-backend`: a Service of the Ingress's namespace answering when a route's own
    /// has no endpoints.
    pub default_backend: Option<String>,
    /// `proxy-redirect-*`, `proxy-cookie-domain`, `proxy-cookie-path`: rewrites of upstream
    /// response fields (each, when not set, the ConfigMap's).
    pub rewrites: Option<Arc<super::response_rewrite::ResponseRewrites>>,
    /// `server-snippet` and `configuration-snippet`, read as [`super::snippet`] says; the
    /// builder drops it unless the ConfigMap allows snippets.
    pub snippet: Option<Arc<super::snippet::Snippet>>,
    /// `proxy-buffer-size`: the largest upstream response head; `None`: the ConfigMap's.
    pub response_head: Option<usize>,
    /// `custom-http-errors`; `None`: the ConfigMap's.
    pub custom_http_errors: Option<Arc<[u16]>>,
    /// `service-upstream`: requests go to the Service's cluster IP and port (kube-proxy
    /// balances), not to its endpoints.
    pub service_upstream: bool,
    /// `permanent-redirect`, `temporal-redirect`, `app-root`, `preserve-trailing-slash`,
    /// `from-to-www-redirect`, `server-alias`.
    pub redirects: Option<Arc<super::redirect::Redirects>>,
    /// `upstream-vhost`: the Host the upstream gets (X-Forwarded-Host keeps the client's).
    pub upstream_vhost: Option<String>,
    /// `x-forwarded-prefix`: sent as X-Forwarded-Prefix, in place of the client's.
    pub forwarded_prefix: Option<String>,
    /// `enable-access-log` (default true): false keeps the routes' requests out of the
    /// access log (they are still counted in the metrics).
    pub access_log: bool,
    /// `custom-headers`: the ConfigMap whose data are set on the responses (the builder reads
    /// it into `custom_headers`).
    pub custom_headers_from: Option<ObjectKey>,
    /// (lower-case name, value): set on every response of the routes, replacing the
    /// upstream's fields of those names.
    pub custom_headers: Option<Arc<[super::edge::Field]>>,
}

impl Default for RouteOptions {
    fn default() -> Self {
        RouteOptions {
            ssl_redirect: None,
            force_ssl_redirect: None,
            use_regex: false,
            rewrite_target: None,
            max_body_bytes: None,
            timeouts: ProxyTimeouts::default(),
            request_buffering: None,
            protocol: BackendProtocol::Http,
            access: Access::default(),
            basic_auth: None,
            global_auth: true,
            external: None,
            client_cert_spec: None,
            client_cert: None,
            upstream_tls_spec: None,
            upstream_tls: None,
            ssl_passthrough: None,
            canary: None,
            balance: super::traffic::Balance::Global,
            cors: None,
            limits: None,
            next_upstream: None,
            next_upstream_tries: None,
            next_upstream_timeout: None,
            default_backend: None,
            service_upstream: false,
            redirects: None,
            upstream_vhost: None,
            forwarded_prefix: None,
            access_log: true,
            custom_http_errors: None,
            rewrites: None,
            snippet: None,
            response_head: None,
            custom_headers_from: None,
            custom_headers: None,
        }
    }
}

/// What ringress says about an Ingress's annotations (see [`Note`]), under `policy`.
pub fn notes(ing: &Ingress, policy: UnsupportedPolicy) -> Vec<Note> {
    RouteOptions::read(ing, policy).1
}

/// The annotations that set one option to what their value parses to; a value that does not
/// parse is a warning and leaves the option as it was.
const PLAIN: &[Key<RouteOptions>] = &[
    key!("ssl-redirect", "true or false", ssl_redirect, |v| parse_bool(v).map(Some)),
    key!("force-ssl-redirect", "true or false", force_ssl_redirect, |v| parse_bool(v).map(Some)),
    key!("use-regex", "true or false", use_regex, parse_bool),
    key!("proxy-body-size", "a size (e.g. 8m, 512k, 1g, 0 for no limit)", max_body_bytes, |v| parse_size(v).map(Some)),
    key!("proxy-buffer-size", "a size from 1k to 1m", response_head, |v| parse_size(v)
        .filter(|n| (1024..=1 << 20).contains(n))
        .map(|n| Some(n as usize))),
    key!("custom-http-errors", "a comma-separated list of statuses from 400 to 599", custom_http_errors, |v| {
        values::parse_codes(v).filter(|c| !c.is_empty()).map(Some)
    }),
    key!("enable-access-log", "true or false", access_log, parse_bool),
    key!("service-upstream", "true or false", service_upstream, parse_bool),
    key!("proxy-next-upstream", NEXT_WHEN, next_upstream, |v| super::NextWhen::parse(v).map(Some)),
    key!("proxy-next-upstream-tries", "a whole number (0: every endpoint)", next_upstream_tries, |v| whole::<u32>(v)
        .map(Some)),
    key!("proxy-next-upstream-timeout", "a number of seconds (0: no limit)", next_upstream_timeout, |v| {
        parse_seconds_or_zero(v).map(Some)
    }),
    key!("proxy-request-buffering", "on or off", request_buffering, |v| parse_on_off(v).map(Some)),
    key!("proxy-connect-timeout", "a number of seconds", timeouts.connect, |v| parse_seconds(v).map(Some)),
    key!("proxy-read-timeout", "a number of seconds", timeouts.read, |v| parse_seconds(v).map(Some)),
    key!("proxy-send-timeout", "a number of seconds", timeouts.send, |v| parse_seconds(v).map(Some)),
];

const NEXT_WHEN: &str = "off or a list of error, timeout, invalid_header, http_500, http_502, http_503, http_504, \
                         http_403, http_404, http_429, non_idempotent";

impl RouteOptions {
    /// Options from an Ingress's annotations, and a warning for each value not understood.
    /// With both prefixes present for one key, the `nginx.ingress.kubernetes.io/` one wins.
    /// A security annotation that is not enforced, or whose value does not parse, refuses the
    /// routes (see [`super::access`]) under `policy`.
    pub fn of(ing: &Ingress, policy: UnsupportedPolicy) -> (RouteOptions, Vec<String>) {
        let (o, notes) = Self::read(ing, policy);
        (o, notes.into_iter().map(|n| format!("Ingress {}: {}", ing.key, n.message)).collect())
    }

    /// [`RouteOptions::of`], with what it says about each annotation kept apart.
    pub fn read(ing: &Ingress, policy: UnsupportedPolicy) -> (RouteOptions, Vec<Note>) {
        let mut o = RouteOptions::default();
        let mut warnings: Vec<Note> = Vec::new();
        // `allowlist-source-range` is the current name of `whitelist-source-range`: it wins.
        let mut allow_new: Option<Arc<[Cidr]>> = None;
        let mut allow_old: Option<Arc<[Cidr]>> = None;
        // auth-type, auth-secret, auth-secret-type, auth-realm: read together after the loop.
        let mut auth: [Option<(&str, &str)>; 4] = [None; 4];
        // auth-url and its family: (key, annotation, value), the current prefix last.
        let mut ext: Vec<(&str, &str, &str)> = Vec::new();
        // canary and canary-*: (annotation, rules so far); applied when canary is true.
        let mut canary: Option<bool> = None;
        let mut rules = CanaryRules { weight_total: 100, ..CanaryRules::default() };
        let mut canary_keys: Vec<&str> = Vec::new();
        let mut bad_canary = false;
        // server-snippet, configuration-snippet, as read.
        let mut snippets: [Option<Arc<super::snippet::Snippet>>; 2] = [None, None];
        // proxy-redirect-from (annotation, value) and -to: read together after the loop.
        let mut redirect: (Option<(&str, &str)>, Option<&str>) = (None, None);
        // Affinity, hashing, balancing and CORS: (key, annotation, value), read after the loop.
        let mut traffic: Vec<(&str, &str, &str)> = Vec::new();
        // Older prefix first, so the current one overrides it.
        for prefix in PREFIXES.iter().rev() {
            for (full, value) in ing.annotations.range(prefix.to_string()..) {
                let Some(key) = full.strip_prefix(prefix) else { break };
                if *prefix == PREFIXES[1] && full.starts_with(PREFIXES[0]) {
                    continue;
                }
                let mut bad =
                    |what: &str| warnings.push(Note::ignored(full, format!("annotation {full}: {value:?} {what}")));
                let v = value.trim();
                if let Some(k) = PLAIN.iter().find(|k| k.name == key) {
                    if !(k.set)(&mut o, v) {
                        bad(&format!("is not {}", k.expects));
                    }
                    continue;
                }
                match key {
                    "ssl-passthrough" => match parse_bool(v) {
                        Some(true) => match super::l4::ProxyVersion::from_annotation(&ing.annotations) {
                            Ok(v) => o.ssl_passthrough = Some(v),
                            Err(v) => {
                                let key = super::l4::PROXY_PROTOCOL_ANNOTATION;
                                bad(&format!("asks for a PROXY header, but {key}: {v:?} is not v1 or v2"));
                            }
                        },
                        Some(false) => o.ssl_passthrough = None,
                        None => bad("is not true or false"),
                    },
                    "grpc-backend" => match parse_bool(v) {
                        Some(true) => o.protocol = BackendProtocol::Grpc,
                        Some(false) => {}
                        None => bad("is not true or false"),
                    },
                    "secure-backends" => match parse_bool(v) {
                        Some(true) => o.protocol = BackendProtocol::Https,
                        Some(false) => {}
                        None => bad("is not true or false"),
                    },
                    "backend-protocol" => match v.to_ascii_uppercase().as_str() {
                        "HTTP" => o.protocol = BackendProtocol::Http,
                        "HTTPS" => o.protocol = BackendProtocol::Https,
                        "GRPC" => o.protocol = BackendProtocol::Grpc,
                        "GRPCS" => o.protocol = BackendProtocol::Grpcs,
                        "AUTO_HTTP" => o.protocol = BackendProtocol::AutoHttp,
                        // Served over HTTP, a FastCGI server would answer garbage: refused.
                        "FCGI" => {
                            let why = format!("annotation {full}: FastCGI backends are not supported by ringress");
                            warnings.push(Note::refused(full, &why));
                            o.access.refuse(why);
                        }
                        _ => bad("is not one of HTTP, HTTPS, GRPC, GRPCS, AUTO_HTTP"),
                    },
                    "rewrite-target" if v.is_empty() => bad("is empty"),
                    "rewrite-target" => o.rewrite_target = Some(v.to_string()),
                    "upstream-vhost" => match v {
                        // A host, optionally with a port: what a Host field may carry.
                        _ if !v.is_empty()
                            && v.len() <= 255
                            && v.bytes().all(|b| b.is_ascii_alphanumeric() || b"-.:[]_".contains(&b)) =>
                        {
                            o.upstream_vhost = Some(v.to_ascii_lowercase())
                        }
                        _ => bad("is not a host name (with an optional port)"),
                    },
                    "custom-headers" => match secret_key(ing, v) {
                        Some(k) => o.custom_headers_from = Some(k),
                        None => bad("is not a ConfigMap name or namespace/name"),
                    },
                    "x-forwarded-prefix" => match v {
                        _ if !v.is_empty() && v.len() <= 1024 && v.bytes().all(|b| b.is_ascii_graphic()) => {
                            o.forwarded_prefix = Some(v.to_string())
                        }
                        _ => bad("is not a field value of visible characters"),
                    },
                    "proxy-cookie-domain" | "proxy-cookie-path" => match super::response_rewrite::parse_pair(v) {
                        Some(p) => {
                            let r = Arc::make_mut(o.rewrites.get_or_insert_with(Default::default));
                            *match key {
                                "proxy-cookie-domain" => &mut r.cookie_domain,
                                _ => &mut r.cookie_path,
                            } = Some(p);
                        }
                        None => bad("is not off or two words (from to) of URL characters"),
                    },
                    "server-snippet" | "configuration-snippet" => match super::snippet::parse(value) {
                        Ok(sn) => snippets[usize::from(key == "configuration-snippet")] = Some(Arc::new(sn)),
                        Err(super::snippet::Problem::Access(d)) => {
                            let why = format!("annotation {full} has the access directive {d}, which ringress does not run");
                            match policy {
                                UnsupportedPolicy::Refuse => {
                                    warnings.push(Note::refused(full, &why));
                                    o.access.refuse(why);
                                }
                                UnsupportedPolicy::Warn => warnings.push(Note::ignored(
                                    full,
                                    format!("{why}; served WITHOUT it (--unsupported-security-annotations=warn)"),
                                )),
                            }
                        }
                        Err(super::snippet::Problem::Unsupported(d)) => warnings.push(Note::ignored(
                            full,
                            format!("annotation {full}: {d} is not in the snippet subset ringress understands; the snippet is not applied"),
                        )),
                        Err(super::snippet::Problem::Malformed(d)) => {
                            warnings.push(Note::ignored(full, format!("annotation {full}: {d}; the snippet is not applied")))
                        }
                    },
                    "proxy-redirect-from" => redirect.0 = Some((full, v)),
                    "proxy-redirect-to" => redirect.1 = Some(v),
                    "default-backend" => match v {
                        _ if v.is_empty() || v.len() > 63 => bad("is not a Service name"),
                        _ if !v.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-') => {
                            bad("is not a Service name (of the Ingress's namespace)")
                        }
                        _ => o.default_backend = Some(v.to_string()),
                    },
                    "allowlist-source-range" | "whitelist-source-range" | "denylist-source-range" => {
                        match parse_cidrs(v).filter(|c| !c.is_empty()) {
                            Some(c) => {
                                let c: Arc<[Cidr]> = c.into();
                                match key {
                                    "denylist-source-range" => o.access.deny = Some(c),
                                    "allowlist-source-range" => allow_new = Some(c),
                                    _ => allow_old = Some(c),
                                }
                            }
                            None => {
                                let why = format!(
                                    "annotation {full}: {value:?} is not a comma-separated list of address blocks"
                                );
                                warnings.push(Note::refused(full, &why));
                                o.access.refuse(why);
                            }
                        }
                    }
                    "auth-type" => auth[0] = Some((full, v)),
                    "auth-secret" => auth[1] = Some((full, v)),
                    "auth-secret-type" => auth[2] = Some((full, v)),
                    "auth-realm" => auth[3] = Some((full, value)),
                    k if external::KEYS.contains(&k)
                        || client_cert::KEYS.contains(&k)
                        || super::upstream_tls::KEYS.contains(&k) =>
                    {
                        ext.push((k, full, value))
                    }
                    "enable-global-auth" => match parse_bool(v) {
                        Some(b) => o.global_auth = b,
                        None => bad("is not true or false"),
                    },
                    "satisfy" => match v {
                        "any" => o.access.satisfy_any = true,
                        "all" => o.access.satisfy_any = false,
                        _ => {
                            let why = format!("annotation {full}: {value:?} is not any or all");
                            warnings.push(Note::refused(full, &why));
                            o.access.refuse(why);
                        }
                    },
                    k if NO_OP.iter().any(|(n, _)| *n == k) => {}
                    k if super::traffic::KEYS.contains(&k) || super::redirect::KEYS.contains(&k) => {
                        traffic.push((k, full, value))
                    }
                    "canary" => match parse_bool(v) {
                        Some(b) => canary = Some(b),
                        // Served as an ordinary Ingress, a mistyped canary could take its
                        // host and path from the main Ingress: it stays a canary that takes
                        // no request instead.
                        None => {
                            bad_canary = true;
                            warnings.push(Note::ignored(
                                full,
                                format!("annotation {full}: {value:?} is not true or false; the Ingress is kept as a canary that takes no request"),
                            ));
                        }
                    },
                    "canary-by-header" | "canary-by-cookie" if v.is_empty() => bad("is empty"),
                    "canary-by-header" if !v.bytes().all(|c| c.is_ascii_alphanumeric() || c == b'-' || c == b'_') => {
                        bad("is not a header field name")
                    }
                    "canary-by-header" => {
                        rules.header = Some(v.to_ascii_lowercase());
                        canary_keys.push(full);
                    }
                    "canary-by-header-value" => {
                        rules.header_value = (!v.is_empty()).then(|| v.to_string());
                        canary_keys.push(full);
                    }
                    "canary-by-header-pattern" => match regex::Regex::new(v) {
                        Ok(re) => {
                            rules.header_pattern = (!v.is_empty()).then_some(HeaderPattern(re));
                            canary_keys.push(full);
                        }
                        Err(_) => bad("is not a regular expression"),
                    },
                    "canary-by-cookie" => {
                        rules.cookie = Some(v.to_string());
                        canary_keys.push(full);
                    }
                    "canary-weight" | "canary-weight-total" => match v.parse::<u32>() {
                        Ok(n) if key == "canary-weight" => {
                            rules.weight = n;
                            canary_keys.push(full);
                        }
                        Ok(n) if n > 0 => {
                            rules.weight_total = n;
                            canary_keys.push(full);
                        }
                        _ => bad("is not a whole number (canary-weight-total: above 0)"),
                    },
                    _ => match unenforced(key) {
                        Some(what) => {
                            let why = format!("annotation {full} asks for {what}, which ringress does not enforce");
                            match policy {
                                UnsupportedPolicy::Refuse => {
                                    warnings.push(Note::refused(full, &why));
                                    o.access.refuse(why);
                                }
                                UnsupportedPolicy::Warn => warnings.push(Note {
                                    annotation: full.clone(),
                                    message: format!(
                                        "{why}; served WITHOUT it (--unsupported-security-annotations=warn)"
                                    ),
                                    refused: false,
                                    unsupported: false,
                                }),
                            }
                        }
                        None => warnings.push(Note::unsupported(full)),
                    },
                }
            }
        }
        o.access.allow = allow_new.or(allow_old);
        let [server, location] = snippets;
        o.snippet = super::snippet::combined(server, location);
        match redirect {
            (Some((full, from)), to) => match super::response_rewrite::parse_redirect(from, to) {
                Ok(r) => Arc::make_mut(o.rewrites.get_or_insert_with(Default::default)).redirect = Some(r),
                Err(why) => warnings.push(Note::ignored(full, format!("annotation {full}: {from:?} {why}"))),
            },
            (None, Some(_)) => {
                let full = format!("{}proxy-redirect-to", PREFIXES[0]);
                let message = format!("annotation {full} has no effect without proxy-redirect-from");
                warnings.push(Note::ignored(&full, message));
            }
            (None, None) => {}
        }
        let tget = |k: &str| traffic.iter().rev().find(|(key, ..)| *key == k).map(|&(_, full, v)| (full, v));
        let super::traffic::Read { balance, cors, limits, bad } = super::traffic::read(tget);
        (o.balance, o.cors) = (balance, cors);
        o.limits = limits.map(|l| {
            use std::hash::{Hash, Hasher};
            let mut h = rustc_hash::FxHasher::default();
            ing.key.hash(&mut h);
            Arc::new(super::traffic::Limits { zone: h.finish(), ..(*l).clone() })
        });
        let super::redirect::Read { redirects, bad: bad_redirects } = super::redirect::read(tget);
        o.redirects = redirects.map(Arc::new);
        for (full, message) in bad.into_iter().chain(bad_redirects) {
            warnings.push(Note::ignored(&full, message));
        }
        if bad_canary {
            o.canary = Some(Arc::new(CanaryRules { weight_total: 100, ..CanaryRules::default() }));
        } else if canary == Some(true) {
            if rules.weight > rules.weight_total {
                // Above the total would send everything to the canary: no traffic moves.
                let full = full_key(ing, "canary-weight").unwrap_or("canary-weight");
                warnings.push(Note::ignored(
                    full,
                    format!("annotation {full}: {} is above canary-weight-total {}", rules.weight, rules.weight_total),
                ));
                rules.weight = 0;
            }
            o.canary = Some(Arc::new(rules));
        } else {
            for full in canary_keys {
                warnings.push(Note::ignored(full, format!("annotation {full} has no effect without canary: \"true\"")));
            }
        }
        match basic_spec(ing, auth) {
            Ok(spec) => o.basic_auth = spec,
            Err(why) => {
                warnings.push(Note::refused(auth[0].map_or("", |a| a.0), &why));
                o.access.refuse(why);
            }
        }
        if o.basic_auth.is_none() {
            for (full, _) in auth.iter().skip(1).flatten() {
                warnings.push(Note::ignored(full, format!("annotation {full} has no effect without auth-type")));
            }
        }
        let get = |k: &str| ext.iter().rev().find(|(key, ..)| *key == k).map(|&(_, full, v)| (full, v));
        match ClientCertSpec::parse(&ing.key.namespace, get) {
            Ok(spec) => o.client_cert_spec = spec,
            Err(why) => {
                let annotation = get("auth-tls-secret").map_or("", |(full, _)| full);
                let why = format!("annotation {why}");
                warnings.push(Note::refused(annotation, &why));
                o.access.refuse(why);
            }
        }
        if get("auth-tls-secret").is_none() {
            for (_, full, _) in ext.iter().filter(|(k, ..)| client_cert::KEYS.contains(k)) {
                warnings.push(Note::ignored(full, format!("annotation {full} has no effect without auth-tls-secret")));
            }
        }
        match super::upstream_tls::UpstreamTlsSpec::parse(&ing.key.namespace, get) {
            Ok(spec) if spec.is_some() && !o.protocol.speaks_tls() => {
                for (_, full, _) in ext.iter().filter(|(k, ..)| super::upstream_tls::KEYS.contains(k)) {
                    let what =
                        format!("annotation {full} has no effect unless backend-protocol is HTTPS, GRPCS or AUTO_HTTP");
                    warnings.push(Note::ignored(full, what));
                }
            }
            Ok(spec) => o.upstream_tls_spec = spec,
            Err(why) => {
                let annotation = why.split(':').next().unwrap_or_default().to_string();
                let why = format!("annotation {why}");
                warnings.push(Note::refused(&annotation, &why));
                o.access.refuse(why);
            }
        }
        match ExternalAuth::parse(format!("Ingress {}", ing.key), &ing.key.namespace, get) {
            Ok(Some(spec)) => o.external = Some(Arc::new(spec)),
            Ok(None) => {
                for (_, full, _) in ext.iter().filter(|(k, ..)| external::KEYS.contains(k)) {
                    warnings.push(Note::ignored(full, format!("annotation {full} has no effect without auth-url")));
                }
            }
            Err(why) => {
                let annotation = get("auth-url").map_or("", |(full, _)| full);
                let why = format!("annotation {why}");
                warnings.push(Note::refused(annotation, &why));
                o.access.refuse(why);
            }
        }
        (o, warnings)
    }

    /// The rewrite for one of the Ingress's paths, or a warning when the path is not a
    /// valid regular expression.
    pub fn rewrite_for(&self, ing: &Ingress, path: &str) -> Result<Option<Rewrite>, String> {
        let Some(target) = &self.rewrite_target else { return Ok(None) };
        let pattern = compile_path(path).map_err(|e| {
            format!("Ingress {}: path {path:?} is not a regular expression ({e}); not rewritten", ing.key)
        })?;
        Ok(Some(Rewrite { pattern, target: target.clone() }))
    }
}

/// [`RouteOptions::read`], where an annotation value that does not parse but parsed when the
/// Ingress was last read (`prev`: the annotations kept then) keeps that previous value, as
/// ConfigMap keys do; its note says so. Also returns the annotations to keep for next time:
/// this read's, less the values that never parsed.
pub fn read_keeping(
    ing: &Ingress,
    policy: UnsupportedPolicy,
    prev: Option<&std::collections::BTreeMap<String, String>>,
) -> (RouteOptions, Vec<Note>, std::collections::BTreeMap<String, String>) {
    let (mut o, mut notes) = RouteOptions::read(ing, policy);
    let mut kept = ing.annotations.clone();
    let mut restored: Vec<(String, String)> = Vec::new();
    for n in notes.iter().filter(|n| !n.refused && !n.unsupported) {
        let Some(now) = ing.annotations.get(&n.annotation) else { continue };
        match prev.and_then(|p| p.get(&n.annotation)) {
            Some(v) if v != now => {
                kept.insert(n.annotation.clone(), v.clone());
                restored.push((n.annotation.clone(), v.clone()));
            }
            Some(_) => {}
            // A value that never parsed is not kept.
            None => drop(kept.remove(&n.annotation)),
        }
    }
    if !restored.is_empty() {
        let mut patched = ing.clone();
        patched.annotations = kept.clone();
        o = RouteOptions::read(&patched, policy).0;
        for n in notes.iter_mut() {
            if let Some((_, v)) = restored.iter().find(|(a, _)| *a == n.annotation) {
                let what = n.message.strip_suffix("; ignored").unwrap_or(&n.message).to_string();
                n.message = format!("{what}; its previous value {v:?} stays");
            }
        }
    }
    (o, notes, kept)
}

/// A canary Ingress's rules (`canary: "true"` and `canary-*`), in ingress-nginx's precedence:
/// the header, then the cookie, then the weight. Everything else about the requests it takes
/// (access control, timeouts, rewrites) is the main Ingress's, as in ingress-nginx.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CanaryRules {
    /// `canary-by-header`: the field's name.
    pub header: Option<String>,
    /// `canary-by-header-value`: the value that selects the canary (then `always`/`never` mean
    /// nothing special).
    pub header_value: Option<String>,
    /// `canary-by-header-pattern`: a regular expression the value must match (when no
    /// `canary-by-header-value`).
    pub header_pattern: Option<HeaderPattern>,
    /// `canary-by-cookie`: the cookie's name; `always` and `never` decide.
    pub cookie: Option<String>,
    /// `canary-weight` out of `canary-weight-total` (default 100).
    pub weight: u32,
    pub weight_total: u32,
}

#[cfg(test)]
mod tests;
