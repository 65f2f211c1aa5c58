//! External authentication, for every downstream protocol: before a request that asks for it
//! goes anywhere, a request with its method, URI, host and fields (no body) goes to the auth
//! service, as ingress-nginx's `auth_request` sends it. A 2xx lets the request through, with
//! the `auth-response-headers` copied onto it; 401 and 403 are the client's answer (or a
//! redirect to `auth-signin` for 401); anything else, or no answer in time, is a 500, and the
//! request never reaches its upstream.
//!
//! The auth request goes through the worker's upstream pools like any other HTTP/1.1 request.
//! With `auth-cache-key`, each worker remembers verdicts for `auth-cache-duration`.

use std::cell::RefCell;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rustc_hash::FxHashMap;
use sha2::Digest as _;

use super::error::{Kind, ProxyError, Side};
use super::h1::body::Body;
use super::h1::client::{self, Attempt, NoBody};
use super::h1::codec::write_field;
use super::pipeline::Request;
use super::Worker;
use crate::runtime::io::Clock;
use crate::runtime::Io;
use crate::snapshot::annotations::BackendProtocol;
use crate::snapshot::external::{ExternalAuth, Target, Var, Vars};
use crate::snapshot::{BackendId, Settings, Snapshot};

/// What the auth service said yes with.
#[derive(Clone, Debug, Default)]
pub(crate) struct Granted {
    /// The `auth-response-headers` (lower-case names), with the values the auth service gave
    /// (none: the field is not sent, whatever the client sent under that name).
    names: Arc<[String]>,
    pub upstream: Vec<(String, Vec<u8>)>,
    /// The auth service's `Set-Cookie` values, for the client's answer.
    pub cookies: Vec<Vec<u8>>,
    /// `auth-always-set-cookie`.
    pub always: bool,
}

impl Granted {
    /// Fields for the upstream request, in place of the client's of `names`.
    pub fn fields(names: &[&str], upstream: Vec<(String, Vec<u8>)>) -> Granted {
        Granted { names: names.iter().map(|n| n.to_string()).collect(), upstream, ..Granted::default() }
    }

    /// Both sets of fields (and `other`'s cookies).
    pub fn and(self, other: Granted) -> Granted {
        Granted {
            names: self.names.iter().chain(other.names.iter()).cloned().collect(),
            upstream: self.upstream.into_iter().chain(other.upstream).collect(),
            cookies: other.cookies,
            always: other.always,
        }
    }

    /// Whether the client's field of this name gives way to the auth service's.
    pub fn replaces(&self, name: &[u8]) -> bool {
        self.names.iter().any(|n| name.eq_ignore_ascii_case(n.as_bytes()))
    }

    /// Whether the answer with this status carries the auth service's cookies: the statuses
    /// nginx's `add_header` applies to, or all with `auth-always-set-cookie`.
    pub fn cookies_for(&self, status: u16) -> &[Vec<u8>] {
        let success = matches!(status, 200 | 201 | 204 | 206 | 301 | 302 | 303 | 304 | 307 | 308);
        if success || self.always {
            &self.cookies
        } else {
            &[]
        }
    }

    /// Adds the auth service's cookies to an HTTP/2 answer with this status.
    pub fn add_cookies(&self, h: &mut http::HeaderMap, status: u16) {
        for c in self.cookies_for(status) {
            if let Ok(v) = http::HeaderValue::from_bytes(c) {
                h.append(http::header::SET_COOKIE, v);
            }
        }
    }

    /// The auth service's fields, in place of the client's of those names, on an HTTP/2
    /// request's fields.
    pub fn apply_to_fields(&self, h: &mut http::HeaderMap) {
        for n in self.names.iter() {
            h.remove(n.as_str());
        }
        for (n, v) in &self.upstream {
            if let (Ok(n), Ok(v)) = (http::HeaderName::from_bytes(n.as_bytes()), http::HeaderValue::from_bytes(v)) {
                h.append(n, v);
            }
        }
    }

    /// Rewrites an HTTP/1.1 request head (request line to the blank line) with these fields in
    /// place of the client's of those names; bytes after the head (a body) stay after it.
    pub fn apply_to_head(&self, head: &mut Vec<u8>) {
        if self.names.is_empty() {
            return;
        }
        let mut out = Vec::with_capacity(head.len() + 256);
        let mut lines = head.split_inclusive(|&b| b == b'\n');
        out.extend_from_slice(lines.next().unwrap_or_default());
        let mut taken = out.len();
        for line in lines {
            taken += line.len();
            if line == b"\r\n" {
                break;
            }
            let name = &line[..line.iter().position(|&b| b == b':').unwrap_or(0)];
            if !self.replaces(name) {
                out.extend_from_slice(line);
            }
        }
        for (n, v) in &self.upstream {
            write_field(&mut out, n.as_bytes(), &[v]);
        }
        out.extend_from_slice(b"\r\n");
        out.extend_from_slice(&head[taken.min(head.len())..]);
        *head = out;
    }
}

/// A request as the auth request needs it: the pipeline's view, all its fields, and what the
/// proxy knows of it.
pub(crate) struct Origin<'a> {
    pub req: &'a Request<'a>,
    /// Every request field, as sent (names in any case).
    pub fields: &'a [(&'a [u8], &'a [u8])],
    /// The client's address as text.
    pub client_ip: &'a [u8],
    /// The connection's peer address as text (appended to the client's X-Forwarded-For when
    /// the ConfigMap asks for the full list).
    pub peer_ip: &'a [u8],
    pub request_id: &'a [u8],
}

impl Origin<'_> {
    fn field(&self, name: &str) -> Option<&[u8]> {
        self.fields.iter().find(|(n, _)| n.eq_ignore_ascii_case(name.as_bytes())).map(|(_, v)| *v)
    }
}

impl Vars for Origin<'_> {
    fn expand(&self, v: &Var, out: &mut Vec<u8>) {
        let r = self.req;
        match v {
            Var::Host => {
                let mut buf = [0u8; 256];
                let host = crate::snapshot::normalize_host(r.authority, &mut buf).unwrap_or_default();
                out.extend_from_slice(host.as_bytes());
            }
            Var::HttpHost => out.extend_from_slice(r.authority),
            Var::Scheme => out.extend_from_slice(if r.entry.tls { b"https" } else { b"http" }),
            Var::RequestUri => out.extend_from_slice(r.path_and_query),
            Var::EscapedRequestUri => escape(r.path_and_query, out),
            Var::Uri => out.extend_from_slice(split_query(r.path_and_query).0),
            Var::Args => out.extend_from_slice(split_query(r.path_and_query).1),
            Var::RemoteAddr => out.extend_from_slice(self.client_ip),
            Var::Method => out.extend_from_slice(r.method.as_bytes()),
            Var::RequestId => out.extend_from_slice(self.request_id),
            Var::Field(name) => out.extend_from_slice(self.field(name).unwrap_or_default()),
            Var::Cookie(name) => {
                let cookies = self.fields.iter().filter(|(n, _)| n.eq_ignore_ascii_case(b"cookie"));
                let mut pairs = cookies.flat_map(|(_, v)| v.split(|&b| b == b';')).map(<[u8]>::trim_ascii);
                let found = pairs.find_map(|p| p.strip_prefix(name.as_bytes())?.strip_prefix(b"="));
                out.extend_from_slice(found.unwrap_or_default());
            }
            Var::Arg(name) => {
                let mut pairs = split_query(r.path_and_query).1.split(|&b| b == b'&');
                let found = pairs.find_map(|p| p.strip_prefix(name.as_bytes())?.strip_prefix(b"="));
                out.extend_from_slice(found.unwrap_or_default());
            }
        }
    }
}

fn split_query(pq: &[u8]) -> (&[u8], &[u8]) {
    match pq.iter().position(|&b| b == b'?') {
        Some(i) => (&pq[..i], &pq[i + 1..]),
        None => (pq, b""),
    }
}

/// Percent-encodes all but unreserved bytes (nginx's `set_escape_uri`).
fn escape(s: &[u8], out: &mut Vec<u8>) {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    for &b in s {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b);
        } else {
            out.extend_from_slice(&[b'%', HEX[(b >> 4) as usize], HEX[(b & 15) as usize]]);
        }
    }
}

/// One auth request, ready to send.
pub(crate) struct Call {
    spec: Arc<ExternalAuth>,
    head: Vec<u8>,
    backend: BackendId,
    tls: bool,
    /// The `auth-signin` location for this request.
    signin: Option<Vec<u8>>,
    /// The verdict cache's key, with `auth-cache-key`.
    cache_key: Option<[u8; 32]>,
}

/// Fields of the client's request the auth request does not copy: the ones it writes
/// itself (ingress-nginx's `proxy_set_header`s in its auth location), and framing (no body is
/// sent).
const WRITTEN: &[&str] = &[
    "host",
    "content-length",
    "x-forwarded-proto",
    "x-forwarded-for",
    "x-forwarded-host",
    "x-request-id",
    "x-original-url",
    "x-original-method",
    "x-original-uri",
    "x-scheme",
    "x-sent-from",
    "x-real-ip",
    "x-auth-request-redirect",
];

/// Builds the auth request for a request and finds where it goes. Err: the auth service
/// cannot be reached from this snapshot (a 500, as nginx answers a failed auth request).
pub(crate) fn prepare(snap: &Snapshot, spec: &Arc<ExternalAuth>, o: &Origin<'_>) -> Result<Call, ProxyError> {
    let mut authority = Vec::with_capacity(64);
    spec.authority.expand(o, &mut authority);
    let mut path = Vec::with_capacity(128);
    spec.path.expand(o, &mut path);
    let (backend, tls) = match spec.target {
        Target::Backend(id) => (id, spec.tls),
        Target::Routed | Target::Unresolved => routed(snap, &authority, &path)?,
    };
    let mut head = Vec::with_capacity(1024);
    head.extend_from_slice(spec.method.as_deref().unwrap_or("GET").as_bytes());
    head.push(b' ');
    head.extend_from_slice(&path);
    head.extend_from_slice(b" HTTP/1.1\r\n");
    write_field(&mut head, b"Host", &[&authority]);
    let mut conn = [&b""[..]; 16];
    let n = super::fields::connection_tokens(o.fields.iter().copied(), &mut conn);
    let set_by_config = |name: &[u8]| spec.set_headers.iter().any(|(n, _)| name.eq_ignore_ascii_case(n.as_bytes()));
    for &(name, value) in o.fields {
        let written = WRITTEN.iter().any(|w| name.eq_ignore_ascii_case(w.as_bytes()));
        if written || super::fields::request_drops(name, &conn[..n]) || set_by_config(name) {
            continue;
        }
        write_field(&mut head, name, &[value]);
    }
    let r = o.req;
    let scheme: &[u8] = if r.entry.tls { b"https" } else { b"http" };
    write_field(&mut head, b"X-Request-ID", &[o.request_id]);
    write_field(&mut head, b"X-Original-URL", &[scheme, b"://", r.authority, r.path_and_query]);
    write_field(&mut head, b"X-Original-Method", &[r.method.as_bytes()]);
    if spec.method.is_some() {
        write_field(&mut head, b"X-Original-URI", &[r.path_and_query]);
        write_field(&mut head, b"X-Scheme", &[scheme]);
    }
    write_field(&mut head, b"X-Sent-From", &[b"nginx-ingress-controller"]);
    write_field(&mut head, b"X-Real-IP", &[o.client_ip]);
    // As ingress-nginx's auth location: the client's list with the peer appended when
    // `use-forwarded-headers` and `compute-full-forwarded-for` are both on, else the address.
    let full_list = snap.edge.use_forwarded_headers && snap.edge.compute_full_forwarded_for;
    let xff = |(n, _): &&(&[u8], &[u8])| full_list && n.eq_ignore_ascii_case(b"x-forwarded-for");
    let listed: Vec<&[u8]> = o.fields.iter().filter(xff).map(|(_, v)| *v).collect();
    if !listed.is_empty() {
        let mut full = listed.join(&b", "[..]);
        full.extend_from_slice(b", ");
        full.extend_from_slice(o.peer_ip);
        write_field(&mut head, b"X-Forwarded-For", &[&full]);
    } else {
        write_field(&mut head, b"X-Forwarded-For", &[o.client_ip]);
    }
    write_field(&mut head, b"X-Forwarded-Host", &[r.authority]);
    let mut redirect = Vec::new();
    match &spec.request_redirect {
        Some(t) => t.expand(o, &mut redirect),
        None => redirect.extend_from_slice(r.path_and_query),
    }
    write_field(&mut head, b"X-Auth-Request-Redirect", &[&redirect]);
    let mut value = Vec::new();
    for (name, t) in &spec.set_headers {
        value.clear();
        t.expand(o, &mut value);
        if !value.is_empty() && !value.iter().any(|&b| b == b'\r' || b == b'\n') {
            write_field(&mut head, name.as_bytes(), &[&value]);
        }
    }
    head.extend_from_slice(b"\r\n");
    let signin = spec.signin.as_ref().map(|t| {
        let mut l = Vec::with_capacity(128);
        t.expand(o, &mut l);
        l.retain(|&b| b != b'\r' && b != b'\n');
        l
    });
    let cache_key = spec.cache_key.as_ref().map(|t| {
        let mut k = Vec::with_capacity(128);
        t.expand(o, &mut k);
        let mut h = sha2::Sha256::new();
        h.update(spec.id.to_le_bytes());
        h.update(&authority);
        h.update(&path);
        h.update(&k);
        h.finalize().into()
    });
    Ok(Call { spec: spec.clone(), head, backend, tls, signin, cache_key })
}

/// An auth URL on a host ringress routes: the matched route's backend. A route that is itself
/// protected is not a way around its protection: refused.
fn routed(snap: &Snapshot, authority: &[u8], path: &[u8]) -> Result<(BackendId, bool), ProxyError> {
    let unreachable = |why: &'static str| ProxyError::new(Kind::AuthFailed, Side::Upstream, why);
    let mut buf = [0u8; 256];
    let host = crate::snapshot::normalize_host(authority, &mut buf).ok_or(unreachable("auth-url has no valid host"))?;
    let path = std::str::from_utf8(split_query(path).0).map_err(|_| unreachable("auth-url path is not UTF-8"))?;
    let route = snap.table.lookup(host, path).ok_or(unreachable("no Ingress rule routes the auth-url"))?;
    let a = &route.options.access;
    if a.refused.is_some() || a.basic.is_some() || route.options.external.is_some() {
        return Err(unreachable("the auth-url routes to a protected route"));
    }
    match route.options.protocol {
        BackendProtocol::Http => Ok((route.backend, false)),
        BackendProtocol::Https => Ok((route.backend, true)),
        _ => Err(unreachable("the auth-url routes to a gRPC backend")),
    }
}

/// The largest auth response body read (and dropped) to keep its connection pooled; a longer
/// one closes the connection instead.
const MAX_DRAINED: usize = 64 * 1024;

/// What the auth service answered, as cached.
#[derive(Clone)]
enum Verdict {
    Granted(Granted),
    /// 401 or 403, with the fields the client gets (WWW-Authenticate, and the cookies).
    Denied {
        status: u16,
        challenge: Vec<Vec<u8>>,
        cookies: Vec<Vec<u8>>,
    },
}

/// Verdicts per worker, by [`Call::cache_key`], with when they expire.
const CACHE_ENTRIES: usize = 4096;

thread_local! {
    static CACHE: RefCell<FxHashMap<[u8; 32], (Instant, Verdict)>> = RefCell::new(FxHashMap::default());
}

/// Runs an auth request. Ok: the request may go on. Err: the client's answer (401, 403, a
/// sign-in redirect, or 500 when the auth service failed).
pub(crate) async fn check<I: Io>(
    w: &Worker<I>,
    snap: &Snapshot,
    clock: Clock<'_>,
    settings: &Settings,
    call: Call,
) -> Result<Granted, ProxyError> {
    let now = Instant::now();
    let cached = call.cache_key.and_then(|k| {
        CACHE.with_borrow_mut(|c| match c.get(&k) {
            Some((until, v)) if *until > now => Some(v.clone()),
            Some(_) => c.remove(&k).map(|_| None).unwrap_or_default(),
            None => None,
        })
    });
    let verdict = match cached {
        Some(v) => v,
        None => {
            let (verdict, ttl) = ask(w, snap, clock, settings, &call).await?;
            if let (Some(k), Some(ttl)) = (call.cache_key, ttl) {
                remember(k, now + ttl, verdict.clone());
            }
            verdict
        }
    };
    match verdict {
        Verdict::Granted(g) => Ok(g),
        Verdict::Denied { status, challenge, cookies } => Err(denied(&call, status, challenge, cookies)),
    }
}

fn remember(key: [u8; 32], until: Instant, v: Verdict) {
    CACHE.with_borrow_mut(|c| {
        if c.len() >= CACHE_ENTRIES {
            let now = Instant::now();
            c.retain(|_, (t, _)| *t > now);
            if c.len() >= CACHE_ENTRIES {
                c.clear();
            }
        }
        c.insert(key, (until, v));
    })
}

/// The client's answer to a 401 or 403 of the auth service.
fn denied(call: &Call, status: u16, challenge: Vec<Vec<u8>>, cookies: Vec<Vec<u8>>) -> ProxyError {
    let always = call.spec.always_set_cookie;
    let mut e = match (&call.signin, status) {
        (Some(location), 401) => {
            let mut e = ProxyError::downstream(Kind::SignIn, "sign in first");
            e.fields.push(("Location", location.clone()));
            // The sign-in redirect carries the auth service's cookies (nginx's add_header
            // applies to a 302).
            e.fields.extend(cookies.into_iter().map(|c| ("Set-Cookie", c)));
            return e;
        }
        (_, 401) => {
            let mut e = ProxyError::downstream(Kind::Unauthorized, "the authentication service refused the request");
            e.fields.extend(challenge.into_iter().map(|c| ("WWW-Authenticate", c)));
            e
        }
        _ => ProxyError::downstream(Kind::Forbidden, "the authentication service refused the request"),
    };
    if always {
        e.fields.extend(cookies.into_iter().map(|c| ("Set-Cookie", c)));
    }
    e
}

/// What the auth service's response head says.
struct Answer {
    status: u16,
    upstream: Vec<(String, Vec<u8>)>,
    cookies: Vec<Vec<u8>>,
    challenge: Vec<Vec<u8>>,
    info: super::h1::codec::ResponseInfo,
}

/// Sends the auth request and reads the verdict, with how long it may be cached.
async fn ask<I: Io>(
    w: &Worker<I>,
    snap: &Snapshot,
    clock: Clock<'_>,
    settings: &Settings,
    call: &Call,
) -> Result<(Verdict, Option<Duration>), ProxyError> {
    let failed = |e: ProxyError| {
        tracing::warn!(worker = w.index, url = %call.spec.url, source = %call.spec.source, error = %e, "external authentication failed");
        let mut f = ProxyError::new(Kind::AuthFailed, Side::Upstream, "the authentication service did not answer");
        f.source = e.source;
        f
    };
    if snap.backend(call.backend).endpoints.is_empty() {
        return Err(failed(ProxyError::upstream(Kind::NoEndpoints, "the auth-url Service has no ready endpoints")));
    }
    bump_auth(w);
    let pick = crate::upstream::Pick::Policy(snap.settings.load_balance);
    let tls = call.tls.then(|| &**crate::snapshot::upstream_tls::default_profile());
    let to = Attempt { snap, backend: call.backend, tls, settings, idempotent: true, pick };
    let mut ubuf = Vec::with_capacity(4096);
    let (up, _) =
        client::send(w, clock, &to, call.head.clone(), &mut NoBody, &mut ubuf, |_| {}).await.map_err(failed)?;
    let is_head = call.spec.method.as_deref() == Some("HEAD");
    let names = &call.spec.response_headers;
    let answer = client::response_head(&up.io, &mut ubuf, clock, settings, is_head, |resp, info| {
        let mut a = Answer {
            status: info.status,
            upstream: Vec::new(),
            cookies: Vec::new(),
            challenge: Vec::new(),
            info: *info,
        };
        for h in resp.headers.iter() {
            let n = h.name.to_ascii_lowercase();
            if names.contains(&n) {
                a.upstream.push((n, h.value.to_vec()));
            } else if n == "set-cookie" {
                a.cookies.push(h.value.to_vec());
            } else if n == "www-authenticate" {
                a.challenge.push(h.value.to_vec());
            }
        }
        Ok(a)
    })
    .await
    .map_err(failed)?;
    if (100..200).contains(&answer.status) {
        return Err(failed(ProxyError::upstream(Kind::UpstreamProtocol, "an interim response")));
    }
    drain(w, clock, settings, up, ubuf, &answer.info).await;
    let ttl = call.spec.ttl(answer.status);
    let verdict = match answer.status {
        200..=299 => Verdict::Granted(Granted {
            names: call.spec.response_headers.clone().into(),
            upstream: answer.upstream,
            cookies: answer.cookies,
            always: call.spec.always_set_cookie,
        }),
        401 | 403 => Verdict::Denied { status: answer.status, challenge: answer.challenge, cookies: answer.cookies },
        other => {
            tracing::warn!(worker = w.index, url = %call.spec.url, source = %call.spec.source, status = other, "the authentication service answered neither 2xx, 401 nor 403");
            return Err(ProxyError::new(Kind::AuthFailed, Side::Upstream, "the authentication service failed"));
        }
    };
    Ok((verdict, ttl))
}

fn bump_auth<I: Io>(w: &Worker<I>) {
    super::bump(&w.stats.auth_requests);
}

/// Reads the rest of the auth response (its body is not used) and pools the connection when
/// it ends within [`MAX_DRAINED`] bytes; otherwise the connection is dropped.
async fn drain<I: Io>(
    w: &Worker<I>,
    clock: Clock<'_>,
    settings: &Settings,
    up: client::UpstreamConn<client::Transport<I::Stream>>,
    mut ubuf: Vec<u8>,
    info: &super::h1::codec::ResponseInfo,
) {
    let mut body = Body::new(info.framing);
    let mut rest = ubuf.split_off(info.head_len.min(ubuf.len()));
    let mut total = 0usize;
    loop {
        let Ok(n) = body.consume(&rest, &mut |_| {}) else { return };
        total += n;
        if body.is_done() {
            let clean = n == rest.len();
            client::release(w, up, info.reusable && clean, settings);
            return;
        }
        if total > MAX_DRAINED || matches!(body, Body::UntilClose) {
            return;
        }
        match client::read_body(&up.io, &mut rest, clock, settings.upstream_timeout, &body, 16 * 1024).await {
            Ok(true) => {}
            _ => return,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn granted(names: &[&str], upstream: &[(&str, &str)]) -> Granted {
        Granted {
            names: names.iter().map(|n| n.to_string()).collect::<Vec<_>>().into(),
            upstream: upstream.iter().map(|(n, v)| (n.to_string(), v.as_bytes().to_vec())).collect(),
            cookies: vec![b"s=1".to_vec()],
            always: false,
        }
    }

    #[test]
    fn the_auth_services_fields_replace_the_clients() {
        let g = granted(&["x-user", "x-email"], &[("x-user", "alice")]);
        let mut head =
            b"POST / HTTP/1.1\r\nHost: a\r\nX-User: mallory\r\nx-email: m@x\r\nAccept: */*\r\n\r\nX-User: body"
                .to_vec();
        g.apply_to_head(&mut head);
        assert_eq!(head, b"POST / HTTP/1.1\r\nHost: a\r\nAccept: */*\r\nx-user: alice\r\n\r\nX-User: body");
        assert_eq!(g.cookies_for(200).len(), 1);
        assert_eq!(g.cookies_for(500).len(), 0, "only on successful answers unless always");
    }

    #[test]
    fn escaped_request_uri_as_set_escape_uri_writes_it() {
        let mut out = Vec::new();
        escape(b"/a b/c?d=e&f", &mut out);
        assert_eq!(out, b"%2Fa%20b%2Fc%3Fd%3De%26f");
    }
}
