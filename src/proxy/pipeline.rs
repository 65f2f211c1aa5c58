//! The request pipeline: every per-route decision, made once for every downstream protocol.
//!
//! A downstream session (HTTP/1.1 in [`super::h1::server`], HTTP/2 and gRPC in
//! [`super::h2`]) parses its framing, presents the request as a [`Request`], and gets back a
//! [`Decision`]: answer from the proxy (an error kind, or a redirect), or forward to a route's
//! backend with the route's settings and the target to send. Nothing here knows about h1 or
//! h2 framing; a feature that acts on a request (access control, limits, header rules,
//! redirects, the upstream choice) is written here once and behaves alike over HTTP/1.1,
//! HTTP/2 and gRPC. The upstream exchange then runs by the backend's protocol
//! ([`super::exchange`] for HTTP/1.1 upstreams, [`super::grpc`] for HTTP/2 ones).

use std::net::IpAddr;
use std::sync::Arc;

use super::error::{Kind, ProxyError};
use super::external::Granted;
use crate::access_log::RouteKey;
use crate::snapshot::annotations::BackendProtocol;
use crate::snapshot::external::ExternalAuth;
use crate::snapshot::traffic::{Balance, HashBy, Part, Var};
use crate::snapshot::upstream_tls::UpstreamTls;
use crate::snapshot::{normalize_host, LoadBalance, Route, Settings, Snapshot};
use crate::upstream::Pick;

mod reply;
use reply::cors_fields;
pub(crate) use reply::Reply;

/// A request as every downstream protocol presents it.
pub(crate) struct Request<'a> {
    pub method: &'a str,
    /// The authority (HTTP/2 `:authority`, an absolute-form target's, or Host), as sent.
    pub authority: &'a [u8],
    /// The target's path and query as sent (`*` for `OPTIONS *`).
    pub path_and_query: &'a [u8],
    /// The declared body length (Content-Length), when there is one.
    pub length: Option<u64>,
    /// The listener it came to (`entry.tls`: over TLS).
    pub entry: crate::snapshot::gateway::Entry,
    /// The downstream connection is HTTP/2 (a gRPC backend needs it).
    pub http2: bool,
    /// An HTTP/1.0 request (not compressed for, as nginx's `gzip_http_version 1.1`).
    pub http10: bool,
    /// The client's address as the proxy believes it ([`crate::snapshot::edge::Edge::real_client`]): what every access
    /// decision uses.
    pub client: IpAddr,
    /// The User-Agent and Referer fields, if sent (`block-user-agents`, `block-referers`).
    pub user_agent: Option<&'a [u8]>,
    pub referer: Option<&'a [u8]>,
    /// The Authorization field, if sent once (basic authentication).
    pub authorization: Option<&'a [u8]>,
    /// What a TLS handshake that asked for a client certificate learned (None: it did not
    /// ask, or plain HTTP).
    pub tls: Option<&'a super::client_cert::TlsInfo>,
    /// The request's header fields, by name (what the canary rules read).
    pub fields: &'a dyn Fields,
}

/// A request's header fields as each downstream protocol holds them.
pub(crate) trait Fields {
    /// The first field named `name` (lowercase), if any.
    fn field(&self, name: &str) -> Option<&[u8]>;
    /// Every Cookie field's value, in order.
    fn cookies(&self) -> Vec<&[u8]>;
}

impl Fields for &[httparse::Header<'_>] {
    fn field(&self, name: &str) -> Option<&[u8]> {
        self.iter().find(|h| h.name.eq_ignore_ascii_case(name)).map(|h| h.value)
    }

    fn cookies(&self) -> Vec<&[u8]> {
        self.iter().filter(|h| h.name.eq_ignore_ascii_case("cookie")).map(|h| h.value).collect()
    }
}

impl Fields for http::HeaderMap {
    fn field(&self, name: &str) -> Option<&[u8]> {
        self.get(name).map(|v| v.as_bytes())
    }

    fn cookies(&self) -> Vec<&[u8]> {
        self.get_all(http::header::COOKIE).iter().map(|v| v.as_bytes()).collect()
    }
}

/// The value of cookie `name` in the Cookie fields (`a=1; b=2`), if sent.
fn cookie<'f>(fields: &'f dyn Fields, name: &str) -> Option<&'f [u8]> {
    fields.cookies().into_iter().flat_map(|v| v.split(|&b| b == b';')).find_map(|pair| {
        let pair = pair.trim_ascii();
        let eq = pair.iter().position(|&b| b == b'=')?;
        (pair[..eq].trim_ascii() == name.as_bytes()).then(|| pair[eq + 1..].trim_ascii())
    })
}

/// Whether a request goes to the route's canary, in ingress-nginx's precedence: the header
/// (`always`, `never`, or the configured value or pattern; any other value is ignored), then
/// the cookie (`always` or `never`), then the weight.
fn to_canary(c: &crate::snapshot::Canary, req: &Request<'_>) -> bool {
    let r = &c.rules;
    if let Some(v) = r.header.as_deref().and_then(|h| req.fields.field(h)) {
        if let Some(want) = &r.header_value {
            if v == want.as_bytes() {
                return true;
            }
        } else if let Some(p) = &r.header_pattern {
            if p.is_match(v) {
                return true;
            }
        } else if v == b"always" {
            return true;
        } else if v == b"never" {
            return false;
        }
    }
    match r.cookie.as_deref().and_then(|name| cookie(req.fields, name)) {
        Some(b"always") => return true,
        Some(b"never") => return false,
        _ => {}
    }
    c.by_weight()
}

impl crate::snapshot::gateway::Facts for Request<'_> {
    fn method(&self) -> &str {
        self.method
    }

    fn header(&self, name: &str) -> Option<&[u8]> {
        self.fields.field(name)
    }

    fn query(&self) -> &[u8] {
        Request::query(self)
    }

    fn entry(&self) -> crate::snapshot::gateway::Entry {
        self.entry
    }
}

impl Request<'_> {
    /// `http://` or `https://`, as the request came: what a redirect to this proxy starts with.
    fn scheme_prefix(&self) -> &'static [u8] {
        if self.entry.tls {
            b"https://"
        } else {
            b"http://"
        }
    }

    /// The authority's `:port`, if it names one (`[::1]:8080` gives `:8080`).
    pub(crate) fn port_part(&self) -> &[u8] {
        let a = self.authority;
        let colon = a.iter().rposition(|&b| b == b':').filter(|_| !a.ends_with(b"]"));
        colon.map_or(&b""[..], |i| &a[i..])
    }

    fn path(&self) -> &[u8] {
        let p = self.path_and_query;
        &p[..p.iter().position(|&b| b == b'?').unwrap_or(p.len())]
    }

    fn query(&self) -> &[u8] {
        let p = self.path_and_query;
        &p[p.iter().position(|&b| b == b'?').unwrap_or(p.len())..]
    }
}

/// What the pipeline decided for a request that it does not refuse (a refusal is a
/// [`ProxyError`], answered with the status of its kind). Not boxed: forwarding is the common
/// case, and the decision lives on the stack for one request.
#[allow(clippy::large_enum_variant)]
pub(crate) enum Decision<'s> {
    /// Answer from the proxy with this status, these fields and no body: a redirect
    /// (`ssl-redirect`: Location), a CORS preflight (204).
    Answer { code: u16, fields: Vec<(&'static str, Vec<u8>)> },
    /// Answer from the proxy with this status and a text/plain body (a snippet's `return`).
    Text { code: u16, body: &'s str },
    /// Send the request to the route's backend.
    Forward(Forward<'s>),
}

/// A request on its way to a backend.
pub(crate) struct Forward<'s> {
    /// The matched route's backend, or its canary's.
    pub backend: crate::snapshot::BackendId,
    /// The global settings with the route's annotations applied.
    pub settings: Settings,
    /// How the backend is spoken to.
    pub exchange: Exchange<'s>,
    /// The path and query sent upstream when they are not the request's own: the normal form
    /// of the path (`proxy::path`) with `rewrite-target` applied, and the query.
    pub target: Option<String>,
    /// External authentication to run before the request goes on (`auth-url`, or the
    /// ConfigMap's `global-auth-url`): [`super::external`].
    pub external: Option<&'s Arc<ExternalAuth>>,
    /// Fields the upstream gets in place of the client's (the client certificate's).
    pub fields: Option<super::external::Granted>,
    /// How the endpoint is chosen (`load-balance`, `upstream-hash-by`, affinity).
    pub pick: Pick,
    /// What the proxy adds to the response (CORS, the affinity cookie); None for most routes.
    pub reply: Option<Box<Reply>>,
    /// This request's place under `limit-connections`, held until it ends.
    pub permit: Option<super::limits::Permit>,
    /// `limit-rate`: (bytes per second, after how many bytes) of the response body.
    pub pace: Option<(u64, u64)>,
    /// `upstream-vhost`: the Host (HTTP/1.1) or `:authority` (gRPC) the upstream gets.
    pub vhost: Option<&'s str>,
    /// The content codings the client accepts that the ConfigMap enables (`use-gzip`,
    /// `enable-brotli`); the response decides ([`crate::snapshot::compression`]).
    pub accepts: crate::snapshot::compression::Accepts,
    /// Gateway API `RequestMirror`: backends a copy of the request goes to ([`super::mirror`]).
    pub mirror: Vec<crate::snapshot::BackendId>,
}

/// The request-rate and connection limits of a route for one request: a refusal with the
/// ConfigMap's status, or the request's place among those in progress (if limited).
fn limit(
    l: &crate::snapshot::traffic::Limits,
    client: IpAddr,
    s: &Settings,
) -> Result<Option<super::limits::Permit>, ProxyError> {
    let refused = |code, why| ProxyError::downstream(Kind::Limited(code), why);
    if (l.per_second.is_some() || l.per_minute.is_some())
        && !super::limits::admit(l.zone, client, l.per_second, l.per_minute)
    {
        return Err(refused(s.limit_req_status, "too many requests from this client"));
    }
    match l.connections {
        Some(max) => super::limits::enter(l.zone, client, max)
            .map(Some)
            .ok_or_else(|| refused(s.limit_conn_status, "too many requests in progress from this client")),
        None => Ok(None),
    }
}

/// The `upstream-hash-by` key of a request: its variables expanded and hashed.
fn hash_key(h: &HashBy, req: &Request<'_>, uri: Option<&str>, host: Option<&str>) -> u64 {
    use std::hash::Hasher;
    let mut x = rustc_hash::FxHasher::default();
    for p in &h.parts {
        match p {
            Part::Text(t) => x.write(t.as_bytes()),
            Part::Var(v) => match v {
                Var::RequestUri => x.write(req.path_and_query),
                Var::Uri => x.write(uri.map_or(req.path(), str::as_bytes)),
                Var::Args => x.write(req.query().strip_prefix(b"?").unwrap_or_default()),
                Var::RemoteAddr => match req.client.to_canonical() {
                    IpAddr::V4(a) => x.write(&a.octets()),
                    IpAddr::V6(a) => x.write(&a.octets()),
                },
                Var::Host => x.write(host.unwrap_or_default().as_bytes()),
                Var::Scheme => x.write(if req.entry.tls { b"https" } else { b"http" }),
                Var::Method => x.write(req.method.as_bytes()),
                Var::Header(n) => x.write(req.fields.field(n).unwrap_or_default()),
                Var::Cookie(n) => x.write(cookie(req.fields, n).unwrap_or_default()),
                Var::Arg(n) => x.write(crate::snapshot::gateway::query_param(req.query(), n).unwrap_or_default()),
            },
        }
        // A separator, so that parts cannot run into each other.
        x.write_u8(0xff);
    }
    crate::upstream::mix(x.finish())
}

/// How the upstream exchange runs: the backend's protocol, and over TLS (`HTTPS`, `GRPCS`)
/// the route's TLS profile (`proxy-ssl-*`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Exchange<'s> {
    /// HTTP/1.1 through the worker's pools.
    Http1 { tls: Option<&'s Arc<UpstreamTls>> },
    /// HTTP/2 (gRPC).
    Grpc { tls: Option<&'s Arc<UpstreamTls>> },
}

/// The method rules for every protocol: CONNECT is not proxied (501), TRACE is refused
/// (405: it would reflect the forwarded request, credentials included, to the client; nginx
/// refuses it too).
pub(crate) fn check_method(method: &str) -> Result<(), ProxyError> {
    match method {
        "CONNECT" => Err(ProxyError::downstream(Kind::NotImplemented, "CONNECT is not supported")),
        "TRACE" => Err(ProxyError::downstream(Kind::MethodNotAllowed, "TRACE is not allowed")),
        _ => Ok(()),
    }
}

/// Routes a request and makes every per-route decision. `key` gets the request's metric
/// labels (empty route labels when no rule matches).
pub(crate) fn decide<'s>(
    snap: &'s Snapshot,
    req: &Request<'_>,
    key: &mut RouteKey,
) -> Result<Decision<'s>, ProxyError> {
    check_method(req.method)?;
    if !req.authority.is_empty() && !valid_host(req.authority) {
        key.set(None, req.method);
        return Err(ProxyError::downstream(Kind::BadHost, "invalid Host"));
    }
    let mut hbuf = [0u8; 256];
    let host = normalize_host(req.authority, &mut hbuf);
    // Over TLS, a request keeps to the Gateway HTTPS listener its connection's ClientHello
    // named (an HTTP/2 client may reuse a connection for another name its certificate covers).
    let sni = req.tls.and_then(|t| t.sni.as_deref());
    if let Some((sni, h)) = sni.zip(host).filter(|(s, h)| snap.l4.https_names.misdirected(req.entry, s, h)) {
        key.set(None, req.method);
        let mut e = ProxyError::downstream(Kind::Misdirected, "this host is not served on this TLS connection");
        e.detail =
            Some(format!("the connection named {sni}, a listener that does not take {h}: connect naming {h}").into());
        return Err(e);
    }
    // Routed, rewritten and sent upstream in its normal form; `OPTIONS *` has no path.
    let raw = std::str::from_utf8(req.path()).ok();
    let normal = match raw {
        Some(p) if p.starts_with('/') => Some(super::path::normalize(p)?),
        _ => raw.map(std::borrow::Cow::Borrowed),
    };
    // `from-to-www-redirect`: the counterpart name goes to the rule's host (same scheme and
    // port, the trailing slash dropped as ingress-nginx does).
    if let Some(to) = host.and_then(|h| snap.table.www_redirect(h)) {
        key.set(None, req.method);
        let port = req.port_part();
        let path = crate::snapshot::redirect::trim_slash(req.path_and_query, false);
        let location = [req.scheme_prefix(), to.as_bytes(), port, path].concat();
        return Ok(Decision::Answer { code: snap.settings.redirect_code, fields: vec![("Location", location)] });
    }
    let route = host.zip(normal.as_deref()).and_then(|(h, p)| snap.table.lookup_for(h, p, req));
    key.set(route.map(|r| (&*r.ingress.namespace, &*r.ingress.name, &*snap.backend(r.backend).name)), req.method);
    let route =
        route.ok_or_else(|| ProxyError::downstream(Kind::NoRoute, "no Ingress rule matches this host and path"))?;
    key.set_logged(route.options.access_log);
    let codes = route.options.custom_http_errors.as_ref().unwrap_or(&snap.settings.custom_http_errors);
    let default = snap.table.default_route();
    // The default backend's own answers are never intercepted (it makes the pages).
    if !codes.is_empty() && !default.is_some_and(|d| std::ptr::eq(d, route)) {
        // The Ingress's `default-backend`, else the default backend; none: the proxy's page.
        let backend = route.fallback.or(default.map(|d| d.backend));
        let accept = req.fields.field("accept").unwrap_or_default().to_vec();
        key.errors = Some(Box::new(crate::access_log::ErrorRoute { codes: codes.clone(), backend, accept }));
    }
    let access = &route.options.access;
    // Fail closed: a protection this route (or the ConfigMap, for every Ingress that keeps
    // global auth) asks for cannot be enforced.
    let global = snap.edge.refused.as_ref().filter(|_| route.options.global_auth);
    if let Some(why) = access.refused.as_ref().or(global) {
        let mut e = ProxyError::downstream(Kind::Refused, "a protection this route asks for is not enforced");
        e.detail = Some(format!("ringress does not serve this route: {why}").into());
        return Err(e);
    }
    let s = &snap.settings;
    let o = &route.options;
    // Redirects answer before the access rules, as nginx's rewrite phase comes before its
    // access phase (they reveal nothing of the upstream).
    if s.redirects_to_https(route, req.entry.tls) {
        let keep = o.redirects.as_ref().is_some_and(|r| r.preserve_trailing_slash);
        let mut location = Vec::with_capacity(128);
        let path = crate::snapshot::redirect::trim_slash(req.path_and_query, keep);
        s.write_https_location(&mut location, host.unwrap_or_default(), path);
        return Ok(Decision::Answer { code: s.redirect_code, fields: vec![("Location", location)] });
    }
    let gw = route.gateway.as_deref();
    if let Some(r) = gw.and_then(|g| g.redirect.as_ref().map(|r| (g, r))) {
        let location = super::gateway::location(r, req, host.unwrap_or_default(), normal.as_deref().unwrap_or("/"));
        return Ok(Decision::Answer { code: r.1.status, fields: vec![("Location", location)] });
    }
    if let Some(r) = o.redirects.as_deref() {
        if let Some((code, url)) = &r.to {
            return Ok(Decision::Answer { code: *code, fields: vec![("Location", url.as_bytes().to_vec())] });
        }
        if let Some(root) = r.app_root.as_deref().filter(|_| normal.as_deref() == Some("/")) {
            let location = [req.scheme_prefix(), req.authority, root.as_bytes()].concat();
            return Ok(Decision::Answer { code: 302, fields: vec![("Location", location)] });
        }
    }
    // A snippet's `rewrite ... redirect|permanent` and `return`, in nginx's order.
    if let Some(sn) = o.snippet.as_deref() {
        use crate::snapshot::snippet::redirect_of;
        if let Some((code, url)) = normal.as_deref().and_then(|p| redirect_of(&sn.redirects, p)) {
            return Ok(Decision::Answer { code, fields: vec![("Location", url.into_bytes())] });
        }
        match &sn.answer {
            Some(a) if a.location.is_some() => {
                let location = a.location.as_deref().unwrap_or_default().as_bytes().to_vec();
                return Ok(Decision::Answer { code: a.code, fields: vec![("Location", location)] });
            }
            Some(a) => return Ok(Decision::Text { code: a.code, body: &a.body }),
            None => {}
        }
    }
    // CORS: an allowed origin's preflight is answered here, after the address rules (a
    // preflight carries no credentials, so authentication does not apply to it).
    let cors = o.cors.as_deref().and_then(|c| Some((c, c.allow_origin(req.fields.field("origin"))?)));
    if let Some((c, allow)) = cors.filter(|_| req.method == "OPTIONS") {
        use crate::snapshot::access::{blocked, listed};
        if blocked(&snap.edge, req.client, (req.user_agent, req.referer))
            || (!o.access.satisfy_any && !listed(&o.access, &snap.edge, req.client))
        {
            return Err(ProxyError::downstream(Kind::Forbidden, "the client's address is not allowed here"));
        }
        return Ok(Decision::Answer { code: 204, fields: cors_fields(c, allow, true) });
    }
    // Limits count before access control, as nginx's preaccess phase does.
    let permit = match o.limits.as_deref().filter(|l| l.applies_to(req.client)) {
        Some(l) => limit(l, req.client, s)?,
        None => None,
    };
    let fields = match &o.client_cert {
        Some(cc) => Some(super::client_cert::check(cc, req.entry.tls, req.tls)?),
        None => None,
    };
    let external = check_access(snap, route, req)?;
    let settings = s.for_route(o);
    if settings.max_body_bytes != 0 && req.length.is_some_and(|n| n > settings.max_body_bytes) {
        return Err(ProxyError::downstream(Kind::BodyTooLarge, "request body too large"));
    }
    // A Gateway API rule's weighted backends; the canary's, when its rules take the request
    // (everything else stays the main route's).
    let backend = match gw.map(|g| g.pick()) {
        Some(Some(Some(id))) => {
            key.set(Some((&route.ingress.namespace, &route.ingress.name, &snap.backend(id).name)), req.method);
            key.set_logged(route.options.access_log);
            Some(id)
        }
        Some(_) => return Err(ProxyError::downstream(Kind::InvalidBackend, "the rule's backend does not resolve")),
        None => None,
    };
    let backend = match backend {
        Some(id) => id,
        None => match route.canary.as_deref().filter(|c| to_canary(c, req)) {
            Some(c) => {
                key.set(Some((&c.ingress.namespace, &c.ingress.name, &snap.backend(c.backend).name)), req.method);
                key.set_logged(route.options.access_log);
                c.backend
            }
            None => route.backend,
        },
    };
    // `default-backend`: a route whose Service has no endpoints is answered by that one.
    let backend = match route.fallback {
        Some(f) if snap.backend(backend).endpoints.is_empty() && !snap.backend(f).endpoints.is_empty() => f,
        _ => backend,
    };
    if snap.backend(backend).endpoints.is_empty() {
        return Err(ProxyError::downstream(Kind::NoEndpoints, "the backend Service has no ready endpoints"));
    }
    let global = Pick::Policy(s.load_balance);
    let (pick, sticky) = match &o.balance {
        Balance::Global => (global, None),
        Balance::RoundRobin => (Pick::Policy(LoadBalance::RoundRobin), None),
        Balance::Ewma => (Pick::Policy(LoadBalance::Ewma), None),
        Balance::Hash(h) => (Pick::Hash { key: hash_key(h, req, normal.as_deref(), host), subset: h.subset }, None),
        Balance::Sticky(a) => {
            let path = if route.regex.is_some() { "/" } else { route.path.as_str() };
            let found = cookie(req.fields, &a.name);
            let b = &snap.backends[backend as usize];
            let (pick, sticky) = super::affinity::steer(a, b, found, global, (path, req.entry.tls, req.user_agent));
            (pick, Some(sticky))
        }
    };
    let cors = cors.map(|(c, allow)| cors_fields(c, allow, false)).unwrap_or_default();
    let set = o.custom_headers.clone();
    let hide = (!snap.edge.hide_headers.is_empty()).then(|| snap.edge.hide_headers.clone());
    let global = &snap.edge.rewrites;
    let rewrites = (o.rewrites.is_some() || !global.is_empty()).then(|| (o.rewrites.clone(), global.clone()));
    let snippet = o.snippet.clone().filter(|s| {
        !(s.set_response.is_empty()
            && s.add_response.is_empty()
            && s.add_always.is_empty()
            && s.clear_response.is_empty())
    });
    let reply = (sticky.is_some()
        || !cors.is_empty()
        || set.is_some()
        || hide.is_some()
        || rewrites.is_some()
        || snippet.is_some())
    .then(|| Box::new(Reply { cors, sticky, set, hide, snippet, rewrites }));
    let profile = Some(o.upstream_tls.as_ref().unwrap_or(crate::snapshot::upstream_tls::default_profile()));
    let exchange = match o.protocol {
        BackendProtocol::Http => Exchange::Http1 { tls: None },
        BackendProtocol::Https => Exchange::Http1 { tls: profile },
        BackendProtocol::AutoHttp => Exchange::Http1 { tls: profile.filter(|_| req.entry.tls) },
        BackendProtocol::Grpc | BackendProtocol::Grpcs if !req.http2 => {
            return Err(ProxyError::downstream(Kind::NeedsHttp2, "this backend speaks gRPC, which needs HTTP/2"))
        }
        BackendProtocol::Grpc => Exchange::Grpc { tls: None },
        BackendProtocol::Grpcs => Exchange::Grpc { tls: profile },
    };
    let path = normal.as_deref();
    let rewritten = match gw.and_then(|g| g.rewrite_path.as_ref().map(|m| (g, m))) {
        Some((g, m)) => path.map(|p| crate::snapshot::gateway::modified_path(m, p, g.prefix.as_deref())),
        None => route.rewrite.as_ref().zip(path).and_then(|(r, p)| r.apply(p)),
    };
    let target = match (rewritten, normal) {
        (Some(mut p), _) | (None, Some(std::borrow::Cow::Owned(mut p))) => {
            p.push_str(std::str::from_utf8(req.query()).unwrap_or_default());
            Some(p)
        }
        _ => None,
    };
    let pace = match o.limits.as_ref().and_then(|l| l.rate) {
        Some(rate) => Some(rate),
        None => (s.limit_rate > 0).then_some((s.limit_rate, s.limit_rate_after)),
    };
    // `x-forwarded-prefix` and the ConfigMap's `proxy-set-headers` replace the client's
    // fields of those names, like the client certificate's fields.
    let mut fields = fields;
    let mut add = |g: Granted| {
        fields = Some(match fields.take() {
            Some(f) => f.and(g),
            None => g,
        })
    };
    if let Some(p) = o.forwarded_prefix.as_deref() {
        add(Granted::fields(&["x-forwarded-prefix"], vec![("X-Forwarded-Prefix".into(), p.as_bytes().to_vec())]));
    }
    if let Some(h) = gw.and_then(|g| g.request_headers.as_ref()) {
        add(super::gateway::request_fields(h, req.fields));
    }
    let snippet = o.snippet.as_deref().map_or(&[][..], |s| &s.set_upstream[..]);
    for set in [&snap.edge.set_headers[..], snippet] {
        if !set.is_empty() {
            let names: Vec<&str> = set.iter().map(|(n, _)| n.as_str()).collect();
            add(Granted::fields(&names, set.to_vec()));
        }
    }
    let vhost = o.upstream_vhost.as_deref();
    let accepts = snap.edge.compression.accepts(req.fields.field("accept-encoding"), req.user_agent, req.http10);
    Ok(Decision::Forward(Forward {
        backend,
        settings,
        exchange,
        target,
        external,
        fields,
        pick,
        reply,
        permit,
        pace,
        vhost,
        accepts,
        mirror: gw.map(|g| g.mirror_to().collect()).unwrap_or_default(),
    }))
}

/// The access rules of a route, as ingress-nginx applies them: the ConfigMap's block lists
/// always (403); then the address lists (403), basic authentication (401 with its challenge)
/// and external authentication, all required; with `satisfy: any`, any one of them (an allow
/// list that lets the client in, or credentials). Ok: the external authentication still to
/// run (its verdict decides), if any.
fn check_access<'s>(
    snap: &'s Snapshot,
    route: &'s Route,
    req: &Request<'_>,
) -> Result<Option<&'s Arc<ExternalAuth>>, ProxyError> {
    use crate::snapshot::access::{allowed_by_list, blocked, listed};
    let forbidden = || ProxyError::downstream(Kind::Forbidden, "the client's address is not allowed here");
    let unauthorized = |basic: &crate::snapshot::auth::BasicAuth| {
        let mut e = ProxyError::downstream(Kind::Unauthorized, "this route needs a user name and password");
        e.fields.push(("WWW-Authenticate", basic.challenge.as_bytes().to_vec()));
        e
    };
    if blocked(&snap.edge, req.client, (req.user_agent, req.referer)) {
        return Err(forbidden());
    }
    let (o, access) = (&route.options, &route.options.access);
    let global = snap.edge.global_auth.as_ref().filter(|_| o.global_auth);
    let external = o.external.as_ref().or(global);
    if access.satisfy_any && (access.basic.is_some() || external.is_some()) {
        if allowed_by_list(access, &snap.edge, req.client) {
            return Ok(None);
        }
        return match (&access.basic, external) {
            (Some(b), _) if b.admits(req.authorization) => Ok(None),
            (Some(b), None) => Err(unauthorized(b)),
            (_, external) => Ok(external),
        };
    }
    if !listed(access, &snap.edge, req.client) {
        return Err(forbidden());
    }
    match &access.basic {
        Some(b) if !b.admits(req.authorization) => Err(unauthorized(b)),
        _ => Ok(external),
    }
}

/// A Host value: reg-name or IP literal with an optional port of digits, nothing else (RFC
/// 9110 §7.2, RFC 3986 §3.2.2-3.2.3).
pub(crate) fn valid_host(h: &[u8]) -> bool {
    if h.is_empty() || h.len() > 255 {
        return false;
    }
    let (name, port) = if h[0] == b'[' {
        let Some(end) = h.iter().position(|&b| b == b']') else { return false };
        let literal = &h[1..end];
        if literal.is_empty() || !literal.iter().all(|&b| b.is_ascii_hexdigit() || b":.".contains(&b)) {
            return false;
        }
        match &h[end + 1..] {
            [] => return true,
            [b':', port @ ..] => (&b""[..], port),
            _ => return false,
        }
    } else {
        match h.iter().position(|&b| b == b':') {
            Some(i) => (&h[..i], &h[i + 1..]),
            None => (h, &b""[..]),
        }
    };
    name.iter().all(|&b| b.is_ascii_alphanumeric() || b"-._~!$&'()*+,;=%".contains(&b))
        && port.len() <= 5
        && port.iter().all(u8::is_ascii_digit)
}

#[cfg(test)]
mod tests;
