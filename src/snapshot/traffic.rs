//! Per-Ingress traffic rules read from ingress-nginx's annotations: how an endpoint is chosen
//! (`load-balance`, `upstream-hash-by`, cookie affinity) and CORS. Pure data, parsed once per
//! Ingress; the request pipeline ([`crate::proxy::pipeline`]) acts on it.

use std::sync::Arc;

/// How a route's endpoint is chosen. Affinity wins over hashing, hashing over `load-balance`,
/// as in ingress-nginx.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum Balance {
    /// The ConfigMap's `load-balance`.
    #[default]
    Global,
    RoundRobin,
    Ewma,
    /// `upstream-hash-by`: consistent hashing of the expanded key.
    Hash(Arc<HashBy>),
    /// `affinity: cookie`.
    Sticky(Arc<Affinity>),
}

/// `upstream-hash-by`: a key made of text and nginx variables, and (`upstream-hash-by-subset`)
/// the size of the group of endpoints a key maps to (0: one endpoint).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HashBy {
    pub parts: Vec<Part>,
    pub subset: u32,
    /// The annotation's value, for `ringress check`.
    pub source: String,
}

/// A piece of an `upstream-hash-by` key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Part {
    Text(String),
    Var(Var),
}

/// The nginx variables a hash key may use.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Var {
    /// `$request_uri`: the path and query as the client sent them.
    RequestUri,
    /// `$uri`: the normalised path, without the query.
    Uri,
    /// `$args` / `$query_string`.
    Args,
    /// `$remote_addr` / `$binary_remote_addr`: the real client address.
    RemoteAddr,
    /// `$host` / `$http_host` / `$server_name`.
    Host,
    /// `$scheme`.
    Scheme,
    /// `$request_method`.
    Method,
    /// `$http_NAME`: a request field (lowercase, `-` for `_`).
    Header(String),
    /// `$cookie_NAME`.
    Cookie(String),
    /// `$arg_NAME`: a query parameter.
    Arg(String),
}

impl HashBy {
    /// Parses `upstream-hash-by`: text with `$name` or `${name}` variables. Err: the first
    /// variable ringress does not know, or an empty key.
    pub fn parse(v: &str, subset: u32) -> Result<HashBy, String> {
        let mut parts = Vec::new();
        let mut rest = v;
        while let Some(i) = rest.find('$') {
            if i > 0 {
                parts.push(Part::Text(rest[..i].to_string()));
            }
            let after = &rest[i + 1..];
            let (name, tail) = match after.strip_prefix('{') {
                Some(b) => b.split_once('}').ok_or_else(|| format!("{v:?} has an unclosed ${{"))?,
                None => {
                    let end = after.find(|c: char| !(c.is_ascii_alphanumeric() || c == '_')).unwrap_or(after.len());
                    (&after[..end], &after[end..])
                }
            };
            let var = Var::named(name).ok_or_else(|| format!("${name} is not a variable ringress knows"))?;
            parts.push(Part::Var(var));
            rest = tail;
        }
        if !rest.is_empty() {
            parts.push(Part::Text(rest.to_string()));
        }
        if !parts.iter().any(|p| matches!(p, Part::Var(_))) {
            return Err(format!("{v:?} names no variable: every request would go to one endpoint"));
        }
        Ok(HashBy { parts, subset, source: v.to_string() })
    }
}

impl Var {
    fn named(name: &str) -> Option<Var> {
        let field = |s: &str| (!s.is_empty()).then(|| s.to_ascii_lowercase().replace('_', "-"));
        Some(match name {
            "request_uri" => Var::RequestUri,
            "uri" | "document_uri" => Var::Uri,
            "args" | "query_string" => Var::Args,
            "remote_addr" | "binary_remote_addr" => Var::RemoteAddr,
            "host" | "http_host" | "server_name" => Var::Host,
            "scheme" => Var::Scheme,
            "request_method" => Var::Method,
            _ => {
                if let Some(h) = name.strip_prefix("http_") {
                    Var::Header(field(h)?)
                } else if let Some(c) = name.strip_prefix("cookie_") {
                    Var::Cookie((!c.is_empty()).then(|| c.to_string())?)
                } else if let Some(a) = name.strip_prefix("arg_") {
                    Var::Arg((!a.is_empty()).then(|| a.to_string())?)
                } else {
                    return None;
                }
            }
        })
    }
}

/// `affinity: cookie` and the `session-cookie-*` family.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Affinity {
    /// `session-cookie-name` (default `INGRESSCOOKIE`).
    pub name: String,
    pub mode: AffinityMode,
    /// `session-cookie-path`; default: the route's path (`/` for a regular-expression path).
    pub path: Option<String>,
    pub domain: Option<String>,
    /// `session-cookie-max-age` (seconds).
    pub max_age: Option<u64>,
    /// `session-cookie-expires` (seconds from the response).
    pub expires: Option<u64>,
    /// `session-cookie-samesite`: `None`, `Lax` or `Strict`, as written.
    pub samesite: Option<&'static str>,
    /// `session-cookie-conditional-samesite-none`: no `SameSite=None` for browsers known to
    /// reject such cookies.
    pub conditional_samesite_none: bool,
    /// `session-cookie-secure`; default: Secure when the request came over HTTPS.
    pub secure: Option<bool>,
    /// `session-cookie-change-on-failure`: when the cookie's endpoint fails, the cookie moves
    /// to the endpoint that answered (default: the cookie is kept).
    pub change_on_failure: bool,
}

/// `affinity-mode`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum AffinityMode {
    /// The cookie holds a session key mapped to an endpoint by consistent hashing: when
    /// endpoints are added, about 1/N of sessions move to the new ones.
    #[default]
    Balanced,
    /// The cookie names its endpoint: a session stays there as long as the endpoint exists.
    Persistent,
}

impl Default for Affinity {
    fn default() -> Self {
        Affinity {
            name: "INGRESSCOOKIE".to_string(),
            mode: AffinityMode::Balanced,
            path: None,
            domain: None,
            max_age: None,
            expires: None,
            samesite: None,
            conditional_samesite_none: false,
            secure: None,
            change_on_failure: false,
        }
    }
}

/// Whether a browser accepts `SameSite=None` cookies: the user agents Chromium lists as
/// rejecting them (Chrome 51 to 66 and older, iOS 12, Safari on macOS 10.14) do not.
pub fn samesite_none_compatible(user_agent: Option<&[u8]>) -> bool {
    let Some(ua) = user_agent else { return true };
    let has = |s: &str| ua.windows(s.len()).any(|w| w == s.as_bytes());
    !(has("Chrome/4")
        || has("Chrome/5")
        || has("Chrome/6")
        || has("CPU iPhone OS 12")
        || has("iPad; CPU OS 12")
        || (has("Macintosh") && has("Intel Mac OS X 10_14") && has("Safari") && !has("Chrome")))
}

/// `enable-cors` and the `cors-*` family, with ingress-nginx's defaults.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Cors {
    /// None: `*` (every origin; the answer says `*`).
    pub origins: Option<Vec<Origin>>,
    pub methods: String,
    pub headers: String,
    pub credentials: bool,
    pub max_age: u64,
    pub expose: Option<String>,
}

impl Default for Cors {
    fn default() -> Self {
        Cors {
            origins: None,
            methods: "GET, PUT, POST, DELETE, PATCH, OPTIONS".to_string(),
            headers: "DNT,Keep-Alive,User-Agent,X-Requested-With,If-Modified-Since,Cache-Control,Content-Type,Range,Authorization"
                .to_string(),
            credentials: true,
            max_age: 1_728_000,
            expose: None,
        }
    }
}

/// One allowed origin: `scheme://host[:port]`, the host's first label possibly `*` (any one
/// label), or `null`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Origin {
    /// Lowercase, as `scheme://host[:port]`; for a wildcard, what follows `*`.
    scheme: String,
    wildcard: bool,
    rest: String,
}

impl Origin {
    /// Parses one origin of `cors-allow-origin`.
    pub fn parse(v: &str) -> Option<Origin> {
        let v = v.to_ascii_lowercase();
        if v == "null" {
            return Some(Origin { scheme: String::new(), wildcard: false, rest: v });
        }
        let (scheme, authority) = v.split_once("://")?;
        if scheme.is_empty() || !scheme.bytes().all(|b| b.is_ascii_lowercase()) {
            return None;
        }
        let (wildcard, host_port) = match authority.strip_prefix("*.") {
            Some(r) => (true, r),
            None => (false, authority),
        };
        let (host, port) = match host_port.rsplit_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (host_port, None),
        };
        let host_ok = !host.is_empty() && host.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.');
        let port_ok = port.is_none_or(|p| !p.is_empty() && p.len() <= 5 && p.bytes().all(|b| b.is_ascii_digit()));
        (host_ok && port_ok).then(|| Origin { scheme: scheme.to_string(), wildcard, rest: host_port.to_string() })
    }

    /// Whether an Origin field's value is this origin (ASCII case-insensitively).
    pub fn matches(&self, origin: &[u8]) -> bool {
        if self.scheme.is_empty() {
            return origin.eq_ignore_ascii_case(b"null");
        }
        let Some(after) = strip_prefix_ci(origin, self.scheme.as_bytes()).and_then(|r| r.strip_prefix(b"://")) else {
            return false;
        };
        if !self.wildcard {
            return after.eq_ignore_ascii_case(self.rest.as_bytes());
        }
        // `*.` stands for exactly one label of letters, digits and `-`.
        let Some(dot) = after.iter().position(|&b| b == b'.') else { return false };
        let label = &after[..dot];
        !label.is_empty()
            && label.iter().all(|&b| b.is_ascii_alphanumeric() || b == b'-')
            && after[dot + 1..].eq_ignore_ascii_case(self.rest.as_bytes())
    }
}

fn strip_prefix_ci<'a>(s: &'a [u8], prefix: &[u8]) -> Option<&'a [u8]> {
    (s.len() >= prefix.len() && s[..prefix.len()].eq_ignore_ascii_case(prefix)).then(|| &s[prefix.len()..])
}

impl Cors {
    /// The value of Access-Control-Allow-Origin for a request with this Origin field, or None
    /// when the origin is not allowed (no CORS fields then).
    pub fn allow_origin<'o>(&self, origin: Option<&'o [u8]>) -> Option<&'o [u8]> {
        match &self.origins {
            None => Some(b"*"),
            Some(list) => origin.filter(|o| list.iter().any(|p| p.matches(o))),
        }
    }
}

/// Traffic annotations (key without prefix) this module reads.
pub const KEYS: &[&str] = &[
    "affinity",
    "affinity-mode",
    "session-cookie-name",
    "session-cookie-path",
    "session-cookie-domain",
    "session-cookie-max-age",
    "session-cookie-expires",
    "session-cookie-samesite",
    "session-cookie-conditional-samesite-none",
    "session-cookie-secure",
    "session-cookie-change-on-failure",
    "upstream-hash-by",
    "upstream-hash-by-subset",
    "upstream-hash-by-subset-size",
    "load-balance",
    "enable-cors",
    "cors-allow-origin",
    "cors-allow-methods",
    "cors-allow-headers",
    "cors-allow-credentials",
    "cors-max-age",
    "cors-expose-headers",
    "limit-rps",
    "limit-rpm",
    "limit-burst-multiplier",
    "limit-connections",
    "limit-rate",
    "limit-rate-after",
    "limit-whitelist",
];

/// `limit-*`: request rates and concurrent requests per client address, and the response
/// bandwidth per request.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Limits {
    /// Which Ingress the counters belong to (a hash of its namespace and name): the state is
    /// kept by the proxy across snapshots, so a configuration change resets no client.
    pub zone: u64,
    /// `limit-rps`, `limit-rpm`: (requests per minute, burst) each; the burst is the rate
    /// times `limit-burst-multiplier` (default 5), as ingress-nginx sets nginx's `burst`.
    pub per_second: Option<(u32, u32)>,
    pub per_minute: Option<(u32, u32)>,
    /// `limit-connections`: requests in progress per client (each HTTP/2 stream counts).
    pub connections: Option<u32>,
    /// `limit-rate` (KiB/s in the annotation) after `limit-rate-after` (KiB): bytes per
    /// second of each response body; None: not limited.
    pub rate: Option<(u64, u64)>,
    /// `limit-whitelist`: clients the limits do not apply to.
    pub whitelist: Option<Arc<[super::Cidr]>>,
}

impl Limits {
    /// Whether the request-rate or connection limits apply to `client`.
    pub fn applies_to(&self, client: std::net::IpAddr) -> bool {
        !self.whitelist.as_ref().is_some_and(|w| w.iter().any(|c| c.contains(client)))
    }
}

/// The value of an annotation (full key, value) read as a `T`; one that does not read is
/// added to `bad` as not being `what`.
fn parsed<T: std::str::FromStr>(got: Option<(&str, &str)>, what: &str, bad: &mut Vec<(String, String)>) -> Option<T> {
    let (full, v) = got?;
    let n = v.trim().parse().ok();
    if n.is_none() {
        bad.push((full.to_string(), format!("annotation {full}: {v:?} is not {what}")));
    }
    n
}

/// What the traffic annotations of one Ingress ask for, and what is wrong with them.
pub fn read<'a>(get: impl Fn(&str) -> Option<(&'a str, &'a str)>) -> Read {
    let mut bad: Vec<(String, String)> = Vec::new();
    let flag = |key: &str, default: bool, bad: &mut Vec<(String, String)>| match get(key) {
        None => default,
        Some((full, v)) => match super::annotations::parse_bool(v.trim()) {
            Some(b) => b,
            None => {
                bad.push((full.to_string(), format!("annotation {full}: {v:?} is not true or false")));
                default
            }
        },
    };
    let number = |key: &str, bad: &mut Vec<(String, String)>| parsed::<u64>(get(key), "a whole number of seconds", bad);

    // --- balancing: affinity, then hashing, then load-balance ---
    let mut balance = Balance::Global;
    match get("load-balance") {
        Some((_, v)) if v.trim() == "round_robin" => balance = Balance::RoundRobin,
        Some((_, v)) if v.trim() == "ewma" => balance = Balance::Ewma,
        Some((full, v)) => bad.push((full.to_string(), format!("annotation {full}: {v:?} is not round_robin or ewma"))),
        None => {}
    }
    if let Some((full, v)) = get("upstream-hash-by").filter(|(_, v)| !v.trim().is_empty()) {
        let subset = flag("upstream-hash-by-subset", false, &mut bad);
        let size = match get("upstream-hash-by-subset-size") {
            None => 3,
            Some((sfull, s)) => match s.trim().parse::<u32>() {
                Ok(n) if n > 0 => n,
                _ => {
                    bad.push((sfull.to_string(), format!("annotation {sfull}: {s:?} is not a whole number above 0")));
                    3
                }
            },
        };
        match HashBy::parse(v.trim(), if subset { size } else { 0 }) {
            Ok(h) => balance = Balance::Hash(Arc::new(h)),
            Err(why) => bad.push((full.to_string(), format!("annotation {full}: {why}"))),
        }
    }
    match get("affinity") {
        Some((_, v)) if v.trim() == "cookie" => {
            let mut a = Affinity::default();
            match get("affinity-mode").map(|(f, v)| (f, v.trim())) {
                None | Some((_, "balanced")) => {}
                Some((_, "persistent")) => a.mode = AffinityMode::Persistent,
                Some((full, v)) => {
                    bad.push((full.to_string(), format!("annotation {full}: {v:?} is not balanced or persistent")))
                }
            }
            if let Some((full, v)) = get("session-cookie-name") {
                if !v.is_empty() && v.bytes().all(|b| b.is_ascii_graphic() && !b"()<>@,;:\\\"/[]?={}".contains(&b)) {
                    a.name = v.to_string();
                } else {
                    bad.push((full.to_string(), format!("annotation {full}: {v:?} is not a cookie name")));
                }
            }
            let attribute = |key: &str, bad: &mut Vec<(String, String)>| {
                let (full, v) = get(key)?;
                let v = v.trim();
                if !v.is_empty() && v.bytes().all(|b| b.is_ascii_graphic() && b != b';' && b != b',') {
                    Some(v.to_string())
                } else {
                    bad.push((full.to_string(), format!("annotation {full}: {v:?} is not a cookie attribute value")));
                    None
                }
            };
            a.path = attribute("session-cookie-path", &mut bad);
            a.domain = attribute("session-cookie-domain", &mut bad);
            a.max_age = number("session-cookie-max-age", &mut bad);
            a.expires = number("session-cookie-expires", &mut bad);
            match get("session-cookie-samesite").map(|(f, v)| (f, v.trim())) {
                None => {}
                Some((full, v)) => match v.to_ascii_lowercase().as_str() {
                    "none" => a.samesite = Some("None"),
                    "lax" => a.samesite = Some("Lax"),
                    "strict" => a.samesite = Some("Strict"),
                    _ => bad.push((full.to_string(), format!("annotation {full}: {v:?} is not None, Lax or Strict"))),
                },
            }
            a.conditional_samesite_none = flag("session-cookie-conditional-samesite-none", false, &mut bad);
            a.secure = get("session-cookie-secure").map(|_| flag("session-cookie-secure", false, &mut bad));
            a.change_on_failure = flag("session-cookie-change-on-failure", false, &mut bad);
            balance = Balance::Sticky(Arc::new(a));
        }
        Some((full, v)) => bad.push((full.to_string(), format!("annotation {full}: {v:?} is not cookie"))),
        None => {}
    }

    // --- CORS ---
    let cors = flag("enable-cors", false, &mut bad).then(|| {
        let mut c = Cors::default();
        if let Some((full, v)) = get("cors-allow-origin") {
            let mut list = Vec::new();
            let mut any = false;
            for o in v.split(',').map(str::trim).filter(|o| !o.is_empty()) {
                if o == "*" {
                    any = true;
                } else {
                    match Origin::parse(o) {
                        Some(p) => list.push(p),
                        None => bad.push((
                            full.to_string(),
                            format!("annotation {full}: {o:?} is not an origin (scheme://host[:port], *.host, *, null); that origin is not allowed"),
                        )),
                    }
                }
            }
            c.origins = (!any).then_some(list);
        }
        let listed = |key: &str, ok: fn(u8) -> bool, what: &str, bad: &mut Vec<(String, String)>| {
            let (full, v) = get(key)?;
            let v = v.trim();
            if !v.is_empty() && v.bytes().all(ok) {
                Some(v.to_string())
            } else {
                bad.push((full.to_string(), format!("annotation {full}: {v:?} is not {what}; the default is used")));
                None
            }
        };
        let token = |b: u8| b.is_ascii_alphanumeric() || b"-_, *".contains(&b);
        if let Some(m) = listed("cors-allow-methods", |b| b.is_ascii_alphabetic() || b", ".contains(&b), "a list of methods", &mut bad) {
            c.methods = m;
        }
        if let Some(h) = listed("cors-allow-headers", token, "a list of field names", &mut bad) {
            c.headers = h;
        }
        c.expose = listed("cors-expose-headers", token, "a list of field names", &mut bad);
        c.credentials = flag("cors-allow-credentials", true, &mut bad);
        if let Some(n) = number("cors-max-age", &mut bad) {
            c.max_age = n;
        }
        Arc::new(c)
    });

    // --- limits ---
    let whole = |key: &str, bad: &mut Vec<(String, String)>| parsed::<u32>(get(key), "a whole number (0 or more)", bad);
    let multiplier = whole("limit-burst-multiplier", &mut bad).filter(|&m| m > 0).unwrap_or(5);
    let mut l = Limits {
        per_second: whole("limit-rps", &mut bad).filter(|&n| n > 0).map(|n| (n, n.saturating_mul(multiplier))),
        per_minute: whole("limit-rpm", &mut bad).filter(|&n| n > 0).map(|n| (n, n.saturating_mul(multiplier))),
        connections: whole("limit-connections", &mut bad).filter(|&n| n > 0),
        ..Limits::default()
    };
    if let Some(kib) = whole("limit-rate", &mut bad).filter(|&n| n > 0) {
        let after = whole("limit-rate-after", &mut bad).unwrap_or(0);
        l.rate = Some((u64::from(kib) * 1024, u64::from(after) * 1024));
    }
    if let Some((full, v)) = get("limit-whitelist") {
        match super::parse_cidrs(v) {
            Some(c) => l.whitelist = Some(c.into()),
            None => bad.push((
                full.to_string(),
                format!("annotation {full}: {v:?} is not a comma-separated list of address blocks; nobody is exempt"),
            )),
        }
    }
    let limited = l.per_second.is_some() || l.per_minute.is_some() || l.connections.is_some() || l.rate.is_some();
    let limits = limited.then(|| Arc::new(l));
    Read { balance, cors, limits, bad }
}

/// What [`read`] found in one Ingress's traffic annotations.
pub struct Read {
    pub balance: Balance,
    pub cors: Option<Arc<Cors>>,
    pub limits: Option<Arc<Limits>>,
    /// (annotation, message) for each value not used.
    pub bad: Vec<(String, String)>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hash_keys_parse_variables_and_refuse_unknown_ones() {
        let h = HashBy::parse("$request_uri", 0).unwrap();
        assert_eq!(h.parts, [Part::Var(Var::RequestUri)]);
        let h = HashBy::parse("u-${http_x_user}:$cookie_sid$arg_id", 3).unwrap();
        assert_eq!(
            h.parts,
            [
                Part::Text("u-".into()),
                Part::Var(Var::Header("x-user".into())),
                Part::Text(":".into()),
                Part::Var(Var::Cookie("sid".into())),
                Part::Var(Var::Arg("id".into())),
            ]
        );
        assert_eq!(h.subset, 3);
        assert!(HashBy::parse("$remote_port", 0).unwrap_err().contains("$remote_port"));
        assert!(HashBy::parse("static", 0).is_err());
        assert!(HashBy::parse("${host", 0).is_err());
    }

    #[test]
    fn origins_match_exactly_and_wildcards_take_one_label() {
        let o = Origin::parse("https://*.Example.com").unwrap();
        assert!(o.matches(b"https://a.example.com"));
        assert!(o.matches(b"HTTPS://app-1.EXAMPLE.com"));
        assert!(!o.matches(b"https://a.b.example.com"));
        assert!(!o.matches(b"https://example.com"));
        assert!(!o.matches(b"http://a.example.com"));
        assert!(!o.matches(b"https://a.example.com:8443"));
        assert!(!o.matches(b"https://evil.com/.example.com"));
        let p = Origin::parse("http://origin.test:4443").unwrap();
        assert!(p.matches(b"http://origin.test:4443") && !p.matches(b"http://origin.test"));
        assert!(!p.matches(b"http://origin.test:44430"));
        assert!(Origin::parse("null").unwrap().matches(b"null"));
        for bad in ["origin.test", "https://", "https://a b", "https://a.test:port", "ftp1://x", "https://a/"] {
            assert_eq!(Origin::parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn incompatible_browsers_get_no_samesite_none() {
        assert!(samesite_none_compatible(None));
        assert!(samesite_none_compatible(Some(b"Mozilla/5.0 Chrome/120.0 Safari/537.36")));
        assert!(!samesite_none_compatible(Some(b"Mozilla/5.0 Chrome/65.0.3325 Safari/537.36")));
        assert!(!samesite_none_compatible(Some(b"Mozilla/5.0 (iPhone; CPU iPhone OS 12_1 like Mac OS X)")));
        let mac = b"Mozilla/5.0 (Macintosh; Intel Mac OS X 10_14_6) AppleWebKit/605 Version/12 Safari/605";
        assert!(!samesite_none_compatible(Some(mac)));
    }

    fn read_from(pairs: &[(&'static str, &'static str)]) -> (Balance, Option<Arc<Cors>>, Vec<(String, String)>) {
        let r = read(|k| pairs.iter().find(|(key, _)| *key == k).map(|&(key, v)| (key, v)));
        (r.balance, r.cors, r.bad)
    }

    #[test]
    fn limits_take_ingress_nginx_bursts_and_refuse_negative_values() {
        let get = |pairs: &'static [(&'static str, &'static str)]| {
            read(|k| pairs.iter().find(|(key, _)| *key == k).map(|&(key, v)| (key, v)))
        };
        let r =
            get(&[("limit-rps", "10"), ("limit-rpm", "300"), ("limit-burst-multiplier", "2"), ("limit-rate", "64")]);
        let l = r.limits.unwrap();
        assert_eq!((l.per_second, l.per_minute, l.rate), (Some((10, 20)), Some((300, 600)), Some((65_536, 0))));
        let r = get(&[("limit-rps", "-1"), ("limit-connections", "x"), ("limit-whitelist", "10.0.0.0/33")]);
        assert!(r.limits.is_none());
        assert_eq!(r.bad.len(), 3, "{:?}", r.bad);
        assert!(r.bad[0].1.contains("limit-rps") && r.bad[0].1.contains("-1"));
        let r = get(&[("limit-connections", "3"), ("limit-whitelist", "127.0.0.1/32")]);
        let l = r.limits.unwrap();
        assert!(!l.applies_to("127.0.0.1".parse().unwrap()) && l.applies_to("127.0.0.2".parse().unwrap()));
    }

    #[test]
    fn affinity_wins_over_hashing_and_bad_values_are_named() {
        let (b, _, bad) = read_from(&[
            ("affinity", "cookie"),
            ("affinity-mode", "persistent"),
            ("session-cookie-name", "route"),
            ("session-cookie-max-age", "-5"),
            ("upstream-hash-by", "$request_uri"),
        ]);
        let Balance::Sticky(a) = b else { panic!("{b:?}") };
        assert_eq!((a.name.as_str(), a.mode, a.max_age), ("route", AffinityMode::Persistent, None));
        assert_eq!(bad.len(), 1, "{bad:?}");
        assert!(bad[0].1.contains("session-cookie-max-age") && bad[0].1.contains("-5"));
        let (b, _, bad) = read_from(&[("upstream-hash-by", "$nope"), ("load-balance", "ewma")]);
        assert_eq!(b, Balance::Ewma, "an unknown variable leaves the rest");
        assert!(bad[0].1.contains("$nope"));
    }

    #[test]
    fn cors_defaults_and_origin_lists() {
        let (_, c, bad) = read_from(&[("enable-cors", "true")]);
        let c = c.unwrap();
        assert_eq!((c.origins.clone(), c.credentials, c.max_age), (None, true, 1_728_000));
        assert_eq!(c.allow_origin(None), Some(&b"*"[..]));
        assert!(bad.is_empty());
        let (_, c, bad) = read_from(&[
            ("enable-cors", "true"),
            ("cors-allow-origin", "https://a.test, not an origin, https://*.b.test:8443"),
            ("cors-allow-methods", "GET; rm -rf"),
        ]);
        let c = c.unwrap();
        assert_eq!(c.origins.as_ref().map(Vec::len), Some(2));
        assert_eq!(c.allow_origin(Some(b"https://x.b.test:8443")), Some(&b"https://x.b.test:8443"[..]));
        assert_eq!(c.allow_origin(Some(b"https://evil.test")), None);
        assert_eq!(c.allow_origin(None), None);
        assert_eq!(c.methods, Cors::default().methods);
        assert_eq!(bad.len(), 2, "{bad:?}");
        let (_, c, _) = read_from(&[("cors-allow-origin", "*")]);
        assert!(c.is_none(), "nothing without enable-cors");
    }
}
