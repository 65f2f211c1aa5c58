//! External authentication (`auth-url` and its family, the ConfigMap's `global-auth-*`): what
//! an Ingress asks for, parsed once per build. Each request is first sent to the auth service
//! (the proxy's `external` module runs that exchange); this module only holds the settings,
//! nginx variables included, and where the auth service is.
//!
//! Where the auth request goes is decided here, never by DNS on the data path: a Service
//! (`name.namespace.svc` or `name.namespace.svc.cluster.local`, resolved to its endpoints like
//! any backend), an IP address (`localhost` included), or else a host ringress itself routes
//! (`$host`, as oauth2-proxy's documentation writes it, or a literal name): the request then
//! goes straight to that route's backend.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use crate::model::ObjectKey;

/// One nginx variable ringress can expand.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Var {
    /// `$host`, `$best_http_host`, `$server_name`: the request's host, without its port.
    Host,
    /// `$http_host`: the Host (or `:authority`) as sent.
    HttpHost,
    /// `$scheme`, `$pass_access_scheme`: http or https.
    Scheme,
    /// `$request_uri`: the path and query as sent.
    RequestUri,
    /// `$escaped_request_uri`: `$request_uri` percent-encoded (all but unreserved bytes).
    EscapedRequestUri,
    /// `$uri`: the path without the query.
    Uri,
    /// `$args`, `$query_string`: the query without its `?`.
    Args,
    /// `$remote_addr`: the client's address, as every access decision sees it.
    RemoteAddr,
    /// `$request_method`.
    Method,
    /// `$request_id`, `$req_id`.
    RequestId,
    /// `$http_NAME`: a request field (`_` stands for `-`), lowercase.
    Field(String),
    /// `$cookie_NAME`: a cookie of the request.
    Cookie(String),
    /// `$arg_NAME`: a query parameter.
    Arg(String),
}

impl Var {
    fn named(name: &str) -> Option<Var> {
        Some(match name {
            "host" | "best_http_host" | "server_name" => Var::Host,
            "http_host" => Var::HttpHost,
            "scheme" | "pass_access_scheme" => Var::Scheme,
            "request_uri" => Var::RequestUri,
            "escaped_request_uri" => Var::EscapedRequestUri,
            "uri" | "document_uri" => Var::Uri,
            "args" | "query_string" => Var::Args,
            "remote_addr" => Var::RemoteAddr,
            "request_method" => Var::Method,
            "request_id" | "req_id" => Var::RequestId,
            _ => {
                let (kind, rest) = name.split_once('_')?;
                if rest.is_empty() {
                    return None;
                }
                match kind {
                    "http" => Var::Field(rest.replace('_', "-").to_ascii_lowercase()),
                    "cookie" => Var::Cookie(rest.to_string()),
                    "arg" => Var::Arg(rest.to_string()),
                    _ => return None,
                }
            }
        })
    }
}

/// A string with nginx variables (`$name` or `${name}`) in it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Template(Vec<Piece>);

#[derive(Clone, Debug, PartialEq, Eq)]
enum Piece {
    Text(String),
    Var(Var),
}

/// What a request gives a [`Template`]: the proxy implements it per request.
pub trait Vars {
    /// Appends the value of `v` to `out` (nothing when the request has none).
    fn expand(&self, v: &Var, out: &mut Vec<u8>);
}

impl Template {
    /// Err names the variable ringress does not know.
    pub fn parse(s: &str) -> Result<Template, String> {
        let mut pieces = Vec::new();
        let mut text = String::new();
        let mut rest = s;
        while let Some(i) = rest.find('$') {
            text.push_str(&rest[..i]);
            let after = &rest[i + 1..];
            let (name, next) = match after.strip_prefix('{') {
                Some(braced) => {
                    let end = braced.find('}').ok_or_else(|| format!("unclosed ${{ in {s:?}"))?;
                    (&braced[..end], &braced[end + 1..])
                }
                None => {
                    let end = after.find(|c: char| !(c.is_ascii_alphanumeric() || c == '_')).unwrap_or(after.len());
                    (&after[..end], &after[end..])
                }
            };
            if name.is_empty() {
                text.push('$');
                rest = next;
                continue;
            }
            let var =
                Var::named(name).ok_or_else(|| format!("the nginx variable ${name} is not one ringress knows"))?;
            if !text.is_empty() {
                pieces.push(Piece::Text(std::mem::take(&mut text)));
            }
            pieces.push(Piece::Var(var));
            rest = next;
        }
        text.push_str(rest);
        if !text.is_empty() {
            pieces.push(Piece::Text(text));
        }
        Ok(Template(pieces))
    }

    pub fn is_literal(&self) -> bool {
        self.0.iter().all(|p| matches!(p, Piece::Text(_)))
    }

    pub fn expand(&self, vars: &dyn Vars, out: &mut Vec<u8>) {
        for p in &self.0 {
            match p {
                Piece::Text(t) => out.extend_from_slice(t.as_bytes()),
                Piece::Var(v) => vars.expand(v, out),
            }
        }
    }
}

/// Where the auth request goes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Target {
    /// Not resolved yet (the builder resolves every parsed spec).
    Unresolved,
    /// A Service's endpoints, or an IP address: a backend of the snapshot.
    Backend(super::BackendId),
    /// A host ringress routes (the expanded host of the URL, and its path): the matched route's
    /// backend.
    Routed,
}

/// How long an auth verdict is kept (`auth-cache-duration`), by the auth service's status.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CacheRule {
    /// Statuses this lifetime applies to.
    pub statuses: Vec<u16>,
    pub ttl: Duration,
}

/// External authentication, as one Ingress (or the ConfigMap) asks for it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ExternalAuth {
    /// Where the setting came from, for messages: `Ingress ns/name` or `ConfigMap ns/name`.
    pub source: String,
    /// `auth-url` as written.
    pub url: String,
    /// `https`: the auth request goes over TLS.
    pub tls: bool,
    /// The URL's host (and port, if written), with its variables.
    pub authority: Template,
    /// The host as written, when it has no variables.
    pub literal_host: Option<String>,
    pub port: u16,
    /// The URL's path and query.
    pub path: Template,
    pub target: Target,
    /// `auth-method` (GET when unset).
    pub method: Option<String>,
    /// `auth-signin`, with the redirect parameter added unless it is there.
    pub signin: Option<Template>,
    /// `auth-response-headers`, lowercase: copied from the auth response to the upstream
    /// request, replacing what the client sent under those names.
    pub response_headers: Vec<String>,
    /// `auth-request-redirect` (X-Auth-Request-Redirect; `$request_uri` when unset).
    pub request_redirect: Option<Template>,
    /// `auth-proxy-set-headers`: the ConfigMap it names; read by the builder into `set_headers`.
    pub set_headers_from: Option<ObjectKey>,
    pub set_headers: Vec<(String, Template)>,
    /// `auth-cache-key`, and how long verdicts are kept.
    pub cache_key: Option<Template>,
    pub cache: Vec<CacheRule>,
    /// `auth-always-set-cookie`: the auth service's Set-Cookie goes on every answer, not only
    /// on successful ones.
    pub always_set_cookie: bool,
    /// Distinct per parsed spec: keeps cached verdicts of one Ingress (or one build) from
    /// answering another.
    pub id: u64,
}

/// The annotation (or ConfigMap) keys of external authentication, without prefix.
pub const KEYS: &[&str] = &[
    "auth-url",
    "auth-method",
    "auth-signin",
    "auth-signin-redirect-param",
    "auth-response-headers",
    "auth-request-redirect",
    "auth-proxy-set-headers",
    "auth-cache-key",
    "auth-cache-duration",
    "auth-always-set-cookie",
    "auth-keepalive",
    "auth-keepalive-share-vars",
    "auth-keepalive-requests",
    "auth-keepalive-timeout",
];

static NEXT_ID: AtomicU64 = AtomicU64::new(1);

impl ExternalAuth {
    /// Parses the settings `get` finds (by key without prefix: the value, and the full key or
    /// name to put in messages). `namespace`: where a bare ConfigMap name of
    /// `auth-proxy-set-headers` lives. Ok(None): no `auth-url`. Err: what makes the settings
    /// unenforceable (the routes are refused).
    pub fn parse<'v>(
        source: String,
        namespace: &str,
        get: impl Fn(&str) -> Option<(&'v str, &'v str)>,
    ) -> Result<Option<ExternalAuth>, String> {
        let Some((url_key, url)) = get("auth-url") else { return Ok(None) };
        let url = url.trim();
        let bad = |key: &str, what: &str| -> String {
            let (full, v) = get(key).unwrap_or((key, ""));
            format!("{full}: {v:?} {what}")
        };
        let (tls, rest) = match (url.strip_prefix("http://"), url.strip_prefix("https://")) {
            (Some(r), _) => (false, r),
            (_, Some(r)) => (true, r),
            _ => return Err(format!("{url_key}: {url:?} is not an http:// or https:// URL")),
        };
        let end = rest.find(['/', '?']).unwrap_or(rest.len());
        let (authority, path) = (&rest[..end], &rest[end..]);
        if authority.is_empty() || authority.contains(['@', ' ', '#']) || path.contains([' ', '#']) {
            return Err(format!("{url_key}: {url:?} is not a URL ringress can send to"));
        }
        let path = if path.starts_with('/') { path.to_string() } else { format!("/{path}") };
        let authority_t = Template::parse(authority).map_err(|e| format!("{url_key}: {e}"))?;
        let (literal_host, port) = if authority_t.is_literal() {
            let (host, port) = split_port(authority).ok_or_else(|| format!("{url_key}: {url:?} has a bad port"))?;
            (Some(host.to_ascii_lowercase()), port.unwrap_or(if tls { 443 } else { 80 }))
        } else {
            (None, if tls { 443 } else { 80 })
        };
        let mut spec = ExternalAuth {
            source,
            url: url.to_string(),
            tls,
            authority: authority_t,
            literal_host,
            port,
            path: Template::parse(&path).map_err(|e| format!("{url_key}: {e}"))?,
            target: Target::Unresolved,
            method: None,
            signin: None,
            response_headers: Vec::new(),
            request_redirect: None,
            set_headers_from: None,
            set_headers: Vec::new(),
            cache_key: None,
            cache: Vec::new(),
            always_set_cookie: false,
            id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
        };
        if let Some((_, m)) = get("auth-method") {
            const METHODS: [&str; 7] = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"];
            let m = m.trim();
            if !METHODS.contains(&m) {
                return Err(bad("auth-method", "is not one of GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS"));
            }
            spec.method = Some(m.to_string());
        }
        if let Some((key, signin)) = get("auth-signin").filter(|(_, v)| !v.trim().is_empty()) {
            let param = get("auth-signin-redirect-param").map_or("rd", |(_, v)| v.trim());
            if param.is_empty() || !param.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b)) {
                return Err(bad("auth-signin-redirect-param", "is not a query parameter name"));
            }
            let s = signin.trim();
            if !(s.starts_with("http://") || s.starts_with("https://") || s.starts_with('/'))
                || s.contains([' ', '\r', '\n'])
            {
                return Err(format!("{key}: {s:?} is not a URL"));
            }
            let with_rd = sign_in_url(s, param);
            spec.signin = Some(Template::parse(&with_rd).map_err(|e| format!("{key}: {e}"))?);
        }
        if let Some((_, list)) = get("auth-response-headers") {
            for h in list.split(',').map(str::trim).filter(|h| !h.is_empty()) {
                if !h.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_') {
                    return Err(bad("auth-response-headers", "is not a comma-separated list of header names"));
                }
                spec.response_headers.push(h.to_ascii_lowercase());
            }
        }
        if let Some((key, v)) = get("auth-request-redirect").filter(|(_, v)| !v.trim().is_empty()) {
            let t = Template::parse(v.trim()).map_err(|e| format!("{key}: {e}"))?;
            spec.request_redirect = Some(t);
        }
        if let Some((_, v)) = get("auth-proxy-set-headers").filter(|(_, v)| !v.trim().is_empty()) {
            let v = v.trim();
            let key = match v.split_once('/') {
                None => ObjectKey { namespace: namespace.to_string(), name: v.to_string() },
                Some((ns, name)) if !ns.is_empty() && !name.is_empty() && !name.contains('/') => {
                    ObjectKey { namespace: ns.to_string(), name: name.to_string() }
                }
                _ => return Err(bad("auth-proxy-set-headers", "is not a ConfigMap name or namespace/name")),
            };
            spec.set_headers_from = Some(key);
        }
        if let Some((key, v)) = get("auth-cache-key").filter(|(_, v)| !v.trim().is_empty()) {
            spec.cache_key = Some(Template::parse(v.trim()).map_err(|e| format!("{key}: {e}"))?);
            let durations = get("auth-cache-duration").map_or("", |(_, v)| v);
            spec.cache = parse_cache_durations(durations).ok_or_else(|| {
                bad("auth-cache-duration", "is not a list of [status ...] duration (e.g. 200 202 10m, 401 1m)")
            })?;
        }
        if let Some((_, v)) = get("auth-always-set-cookie") {
            spec.always_set_cookie = super::annotations::parse_bool(v.trim())
                .ok_or_else(|| bad("auth-always-set-cookie", "is not true or false"))?;
        }
        Ok(Some(spec))
    }

    /// How long a verdict with this status is kept (None: not cached).
    pub fn ttl(&self, status: u16) -> Option<Duration> {
        self.cache.iter().find(|r| r.statuses.contains(&status)).map(|r| r.ttl)
    }

    /// The Service the URL's host names (`name.namespace.svc[.cluster.local]`), if it does.
    pub fn service(&self) -> Option<(&str, &str)> {
        service_host(self.literal_host.as_deref()?)
    }

    /// The URL's host as an IP address (`localhost` is 127.0.0.1).
    pub fn ip(&self) -> Option<std::net::IpAddr> {
        let h = self.literal_host.as_deref()?;
        if h == "localhost" {
            return Some(std::net::Ipv4Addr::LOCALHOST.into());
        }
        h.trim_start_matches('[').trim_end_matches(']').parse().ok()
    }

    /// Reads `auth-proxy-set-headers` from the ConfigMaps; Err names what is missing or wrong.
    pub fn resolve_set_headers(&mut self, config_maps: &[&crate::model::ConfigMap]) -> Result<(), String> {
        let Some(key) = &self.set_headers_from else { return Ok(()) };
        let cm = config_maps
            .iter()
            .find(|c| &c.key == key)
            .ok_or_else(|| format!("auth-proxy-set-headers: ConfigMap {key} not found"))?;
        let mut out = Vec::new();
        for (name, value) in &cm.data {
            let valid = !name.is_empty() && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
            if !valid || value.bytes().any(|b| b.is_ascii_control()) {
                return Err(format!(
                    "auth-proxy-set-headers: ConfigMap {key}: {name:?}: {value:?} is not a valid header"
                ));
            }
            let t =
                Template::parse(value.trim()).map_err(|e| format!("auth-proxy-set-headers: ConfigMap {key}: {e}"))?;
            out.push((name.to_ascii_lowercase(), t));
        }
        self.set_headers = out;
        Ok(())
    }
}

/// `host[:port]` (or `[v6][:port]`): the host and the port, if any. None: a bad port.
fn split_port(authority: &str) -> Option<(&str, Option<u16>)> {
    let colon = if authority.starts_with('[') {
        authority.find(']').map(|e| e + 1).filter(|&e| e < authority.len())
    } else {
        authority.rfind(':')
    };
    match colon {
        Some(i) if authority.as_bytes().get(i) == Some(&b':') => {
            Some((&authority[..i], Some(authority[i + 1..].parse().ok().filter(|&p| p != 0)?)))
        }
        Some(_) => None,
        None => Some((authority, None)),
    }
}

/// `name.namespace.svc` or `name.namespace.svc.cluster.local`.
fn service_host(host: &str) -> Option<(&str, &str)> {
    let base = host.strip_suffix(".cluster.local").unwrap_or(host).strip_suffix(".svc")?;
    let (name, ns) = base.split_once('.')?;
    (!name.is_empty() && !ns.is_empty() && !ns.contains('.')).then_some((ns, name))
}

/// The sign-in URL with `param=$scheme://$http_host$escaped_request_uri` added, unless its
/// query already sets `param` (as ingress-nginx builds it).
fn sign_in_url(url: &str, param: &str) -> String {
    let query = url.split_once('?').map(|(_, q)| q);
    let has = query.is_some_and(|q| q.split('&').any(|kv| kv.split('=').next() == Some(param)));
    if has {
        return url.to_string();
    }
    let sep = match query {
        None => "?",
        Some("") => "",
        Some(_) => "&",
    };
    format!("{url}{sep}{param}=$pass_access_scheme://$http_host$escaped_request_uri")
}

/// `auth-cache-duration`: comma-separated `[status ...] duration ...` (nginx's
/// `proxy_cache_valid`; without statuses, 200, 301 and 302). Empty: ingress-nginx's default,
/// `200 202 401 5m`. None: malformed.
fn parse_cache_durations(v: &str) -> Option<Vec<CacheRule>> {
    let v = if v.trim().is_empty() { "200 202 401 5m" } else { v };
    let mut rules = Vec::new();
    for entry in v.split(',').map(str::trim).filter(|e| !e.is_empty()) {
        let mut statuses = Vec::new();
        let mut ttl = Duration::ZERO;
        let mut timed = false;
        for word in entry.split_whitespace() {
            if word.len() == 3 && word.bytes().all(|b| b.is_ascii_digit()) && !timed {
                statuses.push(word.parse().ok()?);
            } else {
                ttl += parse_nginx_time(word)?;
                timed = true;
            }
        }
        if !timed {
            return None;
        }
        if statuses.is_empty() {
            statuses = vec![200, 301, 302];
        }
        rules.push(CacheRule { statuses, ttl });
    }
    Some(rules)
}

/// One nginx time (`500ms`, `30s`, `10m`, `1h`, `2d`, `1w`, `1M`, `1y`).
fn parse_nginx_time(w: &str) -> Option<Duration> {
    let split = w.find(|c: char| !c.is_ascii_digit())?;
    let n: u64 = w[..split].parse().ok()?;
    let secs = match &w[split..] {
        "ms" => return Some(Duration::from_millis(n)),
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        "w" => 7 * 86_400,
        "M" => 30 * 86_400,
        "y" => 365 * 86_400,
        _ => return None,
    };
    Some(Duration::from_secs(n.checked_mul(secs)?))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(pairs: &[(&str, &str)]) -> Result<Option<ExternalAuth>, String> {
        ExternalAuth::parse("Ingress t/t".into(), "t", |k| pairs.iter().find(|(n, _)| *n == k).map(|(n, v)| (*n, *v)))
    }

    struct Fixed;

    impl Vars for Fixed {
        fn expand(&self, v: &Var, out: &mut Vec<u8>) {
            out.extend_from_slice(match v {
                Var::Host => b"a.test",
                Var::HttpHost => b"a.test:8080",
                Var::Scheme => b"https",
                Var::EscapedRequestUri => b"%2Fx%3Fy%3D1",
                Var::Cookie(c) if c == "session" => b"s1",
                _ => b"?",
            })
        }
    }

    fn expand(t: &Template) -> String {
        let mut out = Vec::new();
        t.expand(&Fixed, &mut out);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn oauth2_proxy_annotations_as_its_documentation_writes_them() {
        let spec = parse(&[
            ("auth-url", "https://$host/oauth2/auth"),
            ("auth-signin", "https://$host/oauth2/start?rd=$escaped_request_uri"),
            ("auth-response-headers", "X-Auth-Request-User, x-auth-request-email"),
        ])
        .unwrap()
        .unwrap();
        assert!(spec.tls && spec.literal_host.is_none());
        assert_eq!(expand(&spec.authority), "a.test");
        assert_eq!(expand(&spec.path), "/oauth2/auth");
        // `rd` is in the query already: nothing is added.
        assert_eq!(expand(spec.signin.as_ref().unwrap()), "https://a.test/oauth2/start?rd=%2Fx%3Fy%3D1");
        assert_eq!(spec.response_headers, ["x-auth-request-user", "x-auth-request-email"]);
    }

    #[test]
    fn the_redirect_parameter_is_added_as_ingress_nginx_adds_it() {
        let s = |signin: &str, param: Option<&str>| {
            let mut pairs = vec![("auth-url", "http://10.0.0.1:9000/check"), ("auth-signin", signin)];
            pairs.extend(param.map(|p| ("auth-signin-redirect-param", p)));
            expand(parse(&pairs).unwrap().unwrap().signin.as_ref().unwrap())
        };
        assert_eq!(s("https://login.test/start", None), "https://login.test/start?rd=https://a.test:8080%2Fx%3Fy%3D1");
        assert_eq!(
            s("https://login.test/start?x=1", Some("next")),
            "https://login.test/start?x=1&next=https://a.test:8080%2Fx%3Fy%3D1"
        );
    }

    #[test]
    fn where_the_auth_service_is() {
        let spec = |url: &str| parse(&[("auth-url", url)]).unwrap().unwrap();
        let s = spec("http://oauth.auth.svc.cluster.local:4180/check?x=$cookie_session");
        assert_eq!((s.service(), s.port, expand(&s.path)), (Some(("auth", "oauth")), 4180, "/check?x=s1".into()));
        assert_eq!(spec("https://oauth.auth.svc").service(), Some(("auth", "oauth")));
        assert_eq!(spec("https://oauth.auth.svc").port, 443);
        assert_eq!(spec("http://127.0.0.1:9000").ip(), Some("127.0.0.1".parse().unwrap()));
        assert_eq!(spec("http://[::1]:9000/a").ip(), Some("::1".parse().unwrap()));
        assert_eq!(spec("http://localhost/a").ip(), Some("127.0.0.1".parse().unwrap()));
        let routed = spec("http://auth.example.com/a");
        assert_eq!((routed.service(), routed.ip()), (None, None));
    }

    #[test]
    fn what_cannot_be_enforced_is_an_error_naming_the_key() {
        for (pairs, needle) in [
            (vec![("auth-url", "ftp://x/")], "auth-url"),
            (vec![("auth-url", "http://x:99999/")], "port"),
            (vec![("auth-url", "http://$nope/")], "$nope"),
            (vec![("auth-url", "http://x/"), ("auth-method", "BREW")], "auth-method"),
            (vec![("auth-url", "http://x/"), ("auth-response-headers", "a b")], "auth-response-headers"),
            (
                vec![("auth-url", "http://x/"), ("auth-cache-key", "$host"), ("auth-cache-duration", "200")],
                "auth-cache-duration",
            ),
            (vec![("auth-url", "http://x/"), ("auth-always-set-cookie", "yes")], "auth-always-set-cookie"),
            (vec![("auth-url", "http://x/"), ("auth-proxy-set-headers", "a/b/c")], "auth-proxy-set-headers"),
        ] {
            let e = parse(&pairs).unwrap_err();
            assert!(e.contains(needle), "{pairs:?}: {e}");
        }
        assert_eq!(parse(&[("auth-method", "GET")]).unwrap(), None, "no auth-url: nothing to do");
    }

    #[test]
    fn cache_durations_as_proxy_cache_valid_reads_them() {
        let spec = parse(&[
            ("auth-url", "http://x/"),
            ("auth-cache-key", "$remote_addr$http_authorization"),
            ("auth-cache-duration", "200 202 10m, 401 1m 30s"),
        ])
        .unwrap()
        .unwrap();
        assert_eq!(spec.ttl(202), Some(Duration::from_secs(600)));
        assert_eq!(spec.ttl(401), Some(Duration::from_secs(90)));
        assert_eq!(spec.ttl(403), None);
        let default = parse(&[("auth-url", "http://x/"), ("auth-cache-key", "$host")]).unwrap().unwrap();
        assert_eq!((default.ttl(401), default.ttl(403)), (Some(Duration::from_secs(300)), None));
        assert_eq!(parse_cache_durations("1h").unwrap()[0].statuses, [200, 301, 302]);
    }
}
