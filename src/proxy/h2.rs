//! Downstream HTTP/2 (over TLS by ALPN, or h2c with prior knowledge on the plain port),
//! proxied to HTTP/1.1 upstreams through the same per-worker pools, or to HTTP/2 upstreams
//! (h2c) for gRPC backends with trailers passed through. The h2 crate runs over the I/O trait
//! through [`IoBridge`]; each stream is a task on the worker.

use std::cell::Cell;
use std::net::{Shutdown, SocketAddr};
use std::rc::Rc;

use bytes::Bytes;
use futures::future::{select, Either};
use h2::server::SendResponse;
use h2::{Reason, RecvStream, SendStream};
use http::{HeaderMap, HeaderName, HeaderValue, Request, Response};

use super::bridge::IoBridge;
use super::error::{Kind, ProxyError, Side};
use super::h1::body::{Body, Pace};
use super::h1::client;
use super::h1::codec::{self, Framing};
use super::{bump, LocalSnapshot, RouteKey, Worker};
use crate::access_log::Record;
use crate::runtime::deadline::Watch;
use crate::runtime::io::Clock;
use crate::runtime::{Io, Stream};
use crate::snapshot::annotations::BackendProtocol;
use crate::snapshot::{normalize_host, Route, Settings};

/// Upstream HTTP/1.1 exchanges one HTTP/2 client connection may have at once (its other
/// streams wait): what a single connection can hold of upstream connections and buffers.
pub const MAX_UPSTREAM_PER_CONNECTION: usize = 32;

/// The client connection preface (RFC 9113 §3.4).
pub const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// Whether the first bytes of a plain connection are (the start of) the HTTP/2 preface.
pub fn is_preface(first: &[u8]) -> bool {
    let n = first.len().min(PREFACE.len());
    n >= 3 && first[..n] == PREFACE[..n]
}

/// Serves one HTTP/2 connection: `initial` holds bytes already read from it (h2c).
pub async fn serve<I: Io, S: Stream>(w: Rc<Worker<I>>, io: S, initial: Vec<u8>, peer: SocketAddr, https: bool) {
    let settings = w.snapshot().settings.clone();
    let flood = Rc::new(Cell::new(false));
    let bridge = IoBridge::server(io, initial, flood.clone());
    let stream = bridge.stream().clone();
    let mut b = h2::server::Builder::new();
    b.max_concurrent_streams(settings.h2_max_concurrent_streams)
        .initial_window_size(256 * 1024)
        .initial_connection_window_size(1 << 20)
        .max_header_list_size(settings.max_header_bytes as u32)
        .max_send_buffer_size(256 * 1024)
        // Rapid reset (CVE-2023-44487): streams the client opens and resets before we
        // accept them, and streams we had to reset, are bounded; past that, GOAWAY.
        .max_pending_accept_reset_streams(64)
        .max_local_error_reset_streams(Some(256));
    let watch = w.deadlines.register();
    let armed = w.deadlines.arm(&watch, stream.fd(), Shutdown::Both, w.deadlines.after(settings.header_timeout));
    let handshake = b.handshake::<_, Bytes>(bridge).await;
    drop(armed);
    w.deadlines.unregister(&watch);
    let mut conn = match handshake {
        Ok(c) if !watch.expired() => c,
        Ok(_) => return,
        Err(e) => {
            tracing::debug!(worker = w.index, %peer, error = %e, "HTTP/2 handshake failed");
            return;
        }
    };
    let active = Rc::new(Cell::new(0usize));
    let slots = Rc::new(tokio::sync::Semaphore::new(MAX_UPSTREAM_PER_CONNECTION));
    let client_ip: Rc<str> = peer.ip().to_canonical().to_string().into();
    let mut closing = false;
    // One idle timer at a time (not one per accepted stream): when it fires, the connection
    // closes gracefully if no stream was opened since the previous firing and none is open.
    let idle = w.snapshot().settings.idle_timeout;
    let mut timer = Box::pin(I::sleep(idle));
    let (mut opened, mut opened_at_last_check) = (0u64, 0u64);
    // A drain (SIGTERM) ends the connection like idleness does, at once: GOAWAY, open streams
    // finish, no new ones.
    // Fused: once it has fired, it stays pending.
    let mut drain = std::pin::pin!(futures::FutureExt::fuse(w.drain_started()));
    loop {
        let event = {
            let accept = std::pin::pin!(conn.accept());
            match select(select(accept, timer.as_mut()), drain.as_mut()).await {
                Either::Left((Either::Left((next, _)), _)) => Event::Next(next),
                Either::Left((Either::Right(_), _)) => Event::Tick,
                Either::Right(_) => Event::Drain,
            }
        };
        let event = match event {
            Event::Next(next) => Some(next),
            Event::Tick => None,
            Event::Drain => {
                if !closing {
                    closing = true;
                    conn.graceful_shutdown();
                }
                continue;
            }
        };
        match event {
            Some(Some(Ok((req, respond)))) => {
                opened += 1;
                active.set(active.get() + 1);
                let (w, active, ip, slots) = (w.clone(), active.clone(), client_ip.clone(), slots.clone());
                I::spawn(async move {
                    handle_stream(&w, req, respond, (&ip, peer.ip()), https, &slots).await;
                    active.set(active.get() - 1);
                });
            }
            Some(Some(Err(e))) => {
                // Errors we detected (not the client's own GOAWAY, not I/O): counted by code.
                if let (Some(reason), false) = (e.reason(), e.is_remote()) {
                    let code = u32::from(reason) as usize;
                    if let Some(c) = w.stats.h2_errors.get(code) {
                        bump(c);
                    }
                }
                tracing::debug!(worker = w.index, %peer, error = %e, "HTTP/2 connection error");
                break;
            }
            Some(None) => break,
            None => {
                if active.get() == 0 && opened == opened_at_last_check && !closing {
                    // Idle: a graceful GOAWAY, then the connection drains and ends.
                    closing = true;
                    conn.graceful_shutdown();
                }
                opened_at_last_check = opened;
                timer = Box::pin(I::sleep(idle));
            }
        }
    }
    if flood.get() {
        bump(&w.stats.h2_errors[u32::from(Reason::ENHANCE_YOUR_CALM) as usize]);
        tracing::debug!(worker = w.index, %peer, "HTTP/2 SETTINGS/PING flood: GOAWAY ENHANCE_YOUR_CALM");
    }
}

/// What woke an HTTP/2 connection's loop.
enum Event<T> {
    /// A new stream, the end of the connection, or its error.
    Next(T),
    /// The idle timer.
    Tick,
    /// The drain started.
    Drain,
}

/// Whether a request is a gRPC call (its errors are then answered in gRPC terms).
fn is_grpc(headers: &HeaderMap) -> bool {
    headers.get(http::header::CONTENT_TYPE).is_some_and(|v| v.as_bytes().starts_with(b"application/grpc"))
}

async fn handle_stream<I: Io>(
    w: &Worker<I>,
    req: Request<RecvStream>,
    mut respond: SendResponse<Bytes>,
    (peer_ip, peer): (&str, std::net::IpAddr),
    https: bool,
    slots: &tokio::sync::Semaphore,
) {
    bump(&w.stats.requests);
    let mut rec = Record { start: Some(std::time::Instant::now()), ..Record::default() };
    let grpc = is_grpc(req.headers());
    let watch = w.deadlines.register();
    let progress = Progress::default();
    // The request body lives until the answer is sent: dropping it first would reset the
    // stream before an error response (413 while the client still sends) got out.
    let (mut parts, mut body) = req.into_parts();
    let real = real_ip(w, &parts.headers, peer);
    let client_ip = real.as_deref().unwrap_or(peer_ip);
    capture(w, &mut parts, client_ip, &mut rec);
    let ips = (peer_ip, peer, client_ip);
    let r = exchange(w, &watch, parts, &mut body, &mut respond, &progress, ips, https, &mut rec.key, slots).await;
    w.deadlines.unregister(&watch);
    let status = &progress.status;
    if let Err(e) = r {
        tracing::debug!(worker = w.index, error = %e, "HTTP/2 request failed");
        if status.get() != 0 {
            // The client side gave up or stalled: CANCEL; anything else mid-response is ours.
            let reason = if e.side == Side::Downstream { Reason::CANCEL } else { Reason::INTERNAL_ERROR };
            respond.send_reset(reason);
        } else {
            bump(&w.stats.responses_proxy_error);
            status.set(send_error(&mut respond, &e, grpc, w.snapshot().settings.server_name()));
        }
    }
    rec.status = status.get();
    rec.bytes_in = progress.bytes_in.get();
    rec.bytes_out = progress.bytes_out.get();
    rec.upstream = progress.upstream.get();
    rec.upstream_status = progress.upstream_status.get();
    rec.upstream_time = progress.upstream_time.get();
    w.finish(&rec);
}

/// What a stream's forwarding learns as it goes, for its metrics and access-log line.
#[derive(Debug, Default)]
pub(super) struct Progress {
    /// The status of the response once its head is sent (0: not yet).
    pub status: Cell<u16>,
    /// Request and response DATA bytes.
    pub bytes_in: Cell<u64>,
    pub bytes_out: Cell<u64>,
    pub upstream: Cell<Option<std::net::SocketAddr>>,
    pub upstream_status: Cell<u16>,
    pub upstream_time: Cell<Option<std::time::Duration>>,
}

impl Progress {
    pub(super) fn add_in(&self, n: usize) {
        self.bytes_in.set(self.bytes_in.get() + n as u64);
    }

    pub(super) fn add_out(&self, n: usize) {
        self.bytes_out.set(self.bytes_out.get() + n as u64);
    }

    /// The upstream's response head arrived with `status`.
    pub(super) fn upstream_answered(&self, status: u16) {
        self.status.set(status);
        self.upstream_status.set(status);
    }
}

/// `enable-real-ip` / `use-forwarded-headers` from a trusted peer: the client named last in
/// X-Forwarded-For.
fn real_ip<I: Io>(w: &Worker<I>, h: &HeaderMap, peer: std::net::IpAddr) -> Option<String> {
    if !w.snapshot().edge.real_ip_from(peer) {
        return None;
    }
    let xff = h.get_all("x-forwarded-for").iter().next_back()?;
    crate::snapshot::edge::last_forwarded(xff.as_bytes()).map(|ip| ip.to_canonical().to_string())
}

/// Fills the access-log fields of a stream's request, and gives it an X-Request-ID (sent
/// upstream) unless the client sent one.
fn capture<I: Io>(w: &Worker<I>, parts: &mut http::request::Parts, client_ip: &str, rec: &mut Record) {
    rec.client.extend_from_slice(client_ip.as_bytes());
    rec.method.extend_from_slice(parts.method.as_str().as_bytes());
    rec.uri.extend_from_slice(parts.uri.path_and_query().map_or("/", |p| p.as_str()).as_bytes());
    let host = match parts.uri.authority() {
        Some(a) => a.as_str().as_bytes(),
        None => parts.headers.get(http::header::HOST).map_or(&b""[..], |v| v.as_bytes()),
    };
    rec.host.extend_from_slice(host);
    rec.protocol = "HTTP/2.0";
    let h = &parts.headers;
    if let Some(v) = h.get(http::header::USER_AGENT) {
        rec.user_agent.extend_from_slice(v.as_bytes());
    }
    if let Some(v) = h.get(http::header::REFERER) {
        rec.referer.extend_from_slice(v.as_bytes());
    }
    match h.get("x-request-id") {
        Some(v) => rec.request_id.extend_from_slice(v.as_bytes()),
        None => {
            w.log.request_id(&mut rec.request_id);
            if let Ok(v) = HeaderValue::from_bytes(&rec.request_id) {
                parts.headers.insert("x-request-id", v);
            }
        }
    }
}

/// An answer from the proxy itself: an HTTP status with a short text, or for gRPC calls a
/// trailers-only response with the matching `grpc-status`. Returns the HTTP status sent.
fn send_error(respond: &mut SendResponse<Bytes>, e: &ProxyError, grpc: bool, server: &str) -> u16 {
    let (code, reason) = e.status().unwrap_or((500, "Internal Server Error"));
    if grpc {
        let grpc_status = match code {
            404 => 12,      // UNIMPLEMENTED
            413 | 431 => 8, // RESOURCE_EXHAUSTED
            408 | 504 => 4, // DEADLINE_EXCEEDED
            400 => 13,      // INTERNAL
            _ => 14,        // UNAVAILABLE: 502, 503
        };
        let resp = Response::builder()
            .status(200)
            .header("content-type", "application/grpc")
            .header("grpc-status", grpc_status)
            .header("grpc-message", format!("ringress: {reason}: {}", e.context).replace(' ', "%20"))
            .body(())
            .expect("static response parts");
        let _ = respond.send_response(resp, true);
        return 200;
    }
    let body = Bytes::from(format!("{reason}: {}\n", e.context));
    let mut resp = Response::builder().status(code);
    if code == 405 {
        resp = resp.header("allow", super::error::ALLOW);
    }
    let resp = resp
        .header("server", server)
        .header("content-type", "text/plain; charset=utf-8")
        .header("content-length", body.len())
        .body(())
        .expect("static response parts");
    if let Ok(mut s) = respond.send_response(resp, false) {
        let _ = s.send_data(body, true);
    }
    code
}

/// Routes one request and carries it through.
#[allow(clippy::too_many_arguments)]
async fn exchange<I: Io>(
    w: &Worker<I>,
    watch: &Watch,
    parts: http::request::Parts,
    body: &mut RecvStream,
    respond: &mut SendResponse<Bytes>,
    progress: &Progress,
    (peer_ip, peer, client_ip): (&str, std::net::IpAddr, &str),
    https: bool,
    key: &mut RouteKey,
    slots: &tokio::sync::Semaphore,
) -> Result<(), ProxyError> {
    let snap = w.snapshot();
    // The same method rules as HTTP/1.1: CONNECT is not proxied (not even as `CONNECT /`),
    // TRACE is refused.
    match parts.method {
        http::Method::CONNECT => return Err(ProxyError::downstream(Kind::NotImplemented, "CONNECT is not supported")),
        http::Method::TRACE => return Err(ProxyError::downstream(Kind::MethodNotAllowed, "TRACE is not allowed")),
        _ => {}
    }
    let authority = match parts.uri.authority() {
        Some(a) => a.as_str(),
        None => parts.headers.get(http::header::HOST).and_then(|v| v.to_str().ok()).unwrap_or(""),
    };
    if !authority.is_empty() && !codec::valid_host(authority.as_bytes()) {
        return Err(ProxyError::downstream(Kind::BadHost, "invalid Host"));
    }
    let mut hbuf = [0u8; 256];
    let host = normalize_host(authority.as_bytes(), &mut hbuf);
    // Routed, rewritten and sent upstream in its normal form (`proxy::path`).
    let path = super::path::normalize(parts.uri.path())?;
    let route = host.and_then(|h| snap.table.lookup(h, &path));
    key.set(&snap, route, parts.method.as_str());
    let route =
        route.ok_or_else(|| ProxyError::downstream(Kind::NoRoute, "no Ingress rule matches this host and path"))?;
    let o = &route.options;
    if snap.settings.redirects_to_https(route, https) {
        let s = &snap.settings;
        let mut location = Vec::with_capacity(128);
        let pq = parts.uri.path_and_query().map_or("/", |p| p.as_str());
        s.write_https_location(&mut location, host.unwrap_or_default(), pq.as_bytes());
        let resp = Response::builder()
            .status(s.redirect_code)
            .header("location", location)
            .body(())
            .map_err(|_| ProxyError::downstream(Kind::BadRequest, "cannot build the redirect"))?;
        let _ = respond.send_response(resp, true);
        progress.status.set(s.redirect_code);
        return Ok(());
    }
    let settings = snap.settings.for_route(o);
    let length = content_length(&parts.headers)?;
    if settings.max_body_bytes != 0 && length.is_some_and(|n| n > settings.max_body_bytes) {
        return Err(ProxyError::downstream(Kind::BodyTooLarge, "request body too large"));
    }
    if snap.backend(route.backend).endpoints.is_empty() {
        return Err(ProxyError::downstream(Kind::NoEndpoints, "the backend Service has no ready endpoints"));
    }
    let target = rewritten(route, path, &parts.uri);
    let scheme = if https { "https" } else { "http" };
    let trust = snap.edge.forwarded_from(peer);
    let underscores = settings.underscores_in_headers;
    let fwd = Forwarded { peer_ip, client_ip, scheme, authority, trust, underscores };
    match o.protocol {
        BackendProtocol::Grpc | BackendProtocol::Grpcs => {
            let tls = o.protocol == BackendProtocol::Grpcs;
            Box::pin(super::grpc::forward::<I>(
                w, &snap, &settings, route, &parts, body, respond, progress, &target, &fwd, tls,
            ))
            .await
        }
        BackendProtocol::Http | BackendProtocol::Https => {
            let clock = Clock { deadlines: &w.deadlines, watch };
            // At most MAX_UPSTREAM_PER_CONNECTION upstream exchanges per client connection;
            // further streams wait for one to finish.
            let _slot = slots
                .acquire()
                .await
                .map_err(|_| ProxyError::new(Kind::UpstreamConnect, Side::Internal, "connection closing"))?;
            // Boxed, like the gRPC exchange: a stream waiting for its slot (or answered by the
            // proxy) holds only this small frame, not room for the whole exchange.
            Box::pin(to_http1(
                w, clock, &snap, &settings, route, &parts, body, length, respond, progress, &target, &fwd,
            ))
            .await
        }
    }
}

/// What the forwarded headers say about the client.
pub(super) struct Forwarded<'a> {
    /// The connection's peer (appended to X-Forwarded-For) and the client as believed
    /// (X-Real-IP; see [`real_ip`]).
    pub peer_ip: &'a str,
    pub client_ip: &'a str,
    pub scheme: &'a str,
    pub authority: &'a str,
    /// `use-forwarded-headers` from a trusted peer.
    pub trust: bool,
    /// `enable-underscores-in-headers`: request fields with `_` in their names pass.
    pub underscores: bool,
}

impl Forwarded<'_> {
    /// X-Forwarded-Proto: the client's, passed through from a trusted peer, else the scheme.
    pub fn proto<'h>(&'h self, h: &'h HeaderMap) -> &'h str {
        self.trusted(h, "x-forwarded-proto").unwrap_or(self.scheme)
    }

    /// X-Forwarded-Host: likewise, else the authority.
    pub fn host<'h>(&'h self, h: &'h HeaderMap) -> &'h str {
        self.trusted(h, "x-forwarded-host").unwrap_or(self.authority)
    }

    fn trusted<'h>(&self, h: &'h HeaderMap, name: &str) -> Option<&'h str> {
        self.trust.then(|| h.get(name)?.to_str().ok()).flatten()
    }
}

/// The path and query sent upstream: the normal path with `rewrite-target` applied; the
/// request's own when neither changed it (no allocation).
fn rewritten<'a>(route: &Route, path: std::borrow::Cow<'_, str>, uri: &'a http::Uri) -> std::borrow::Cow<'a, str> {
    let mut p = match (route.rewrite.as_ref().and_then(|r| r.apply(&path)), path) {
        (Some(p), _) => p,
        (None, std::borrow::Cow::Owned(p)) => p,
        (None, std::borrow::Cow::Borrowed(_)) => return uri.path_and_query().map_or("/", |p| p.as_str()).into(),
    };
    if let Some(q) = uri.query() {
        p.push('?');
        p.push_str(q);
    }
    p.into()
}

fn content_length(h: &HeaderMap) -> Result<Option<u64>, ProxyError> {
    match h.get(http::header::CONTENT_LENGTH) {
        None => Ok(None),
        Some(v) => v
            .to_str()
            .ok()
            .and_then(|s| s.trim().parse().ok())
            .map(Some)
            .ok_or_else(|| ProxyError::downstream(Kind::BadRequest, "invalid content-length")),
    }
}

/// Connection-specific fields, which HTTP/2 forbids and which never cross the proxy (RFC 9113
/// §8.2.2), plus those the proxy writes itself.
pub(super) fn skip_request_header(name: &HeaderName) -> bool {
    matches!(
        name.as_str(),
        "connection"
            | "keep-alive"
            | "proxy-connection"
            | "transfer-encoding"
            | "upgrade"
            | "host"
            | "content-length"
            | "x-forwarded-for"
            | "x-real-ip"
            | "x-forwarded-proto"
            | "x-forwarded-host"
    )
}

/// The fields of an HTTP/1.1 trailer section (`lines`, each ending in CRLF) that may travel
/// as HTTP/2 trailers: not framing, routing or connection fields (RFC 9110 §6.5.1). None when
/// there are none, or the section does not parse (it is then dropped, as a proxy may).
fn trailer_fields(lines: &[u8]) -> Option<HeaderMap> {
    if lines.is_empty() {
        return None;
    }
    let section = [lines, b"\r\n"].concat();
    let mut hs = [httparse::EMPTY_HEADER; 64];
    let httparse::Status::Complete((_, fields)) = httparse::parse_headers(&section, &mut hs).ok()? else {
        return None;
    };
    let mut map = HeaderMap::with_capacity(fields.len());
    for f in fields.iter() {
        let Ok(name) = HeaderName::from_bytes(f.name.as_bytes()) else { continue };
        if !forwardable_trailer(&name) {
            continue;
        }
        if let Ok(v) = HeaderValue::from_bytes(f.value) {
            map.append(name, v);
        }
    }
    (!map.is_empty()).then_some(map)
}

/// Whether a trailer field may be forwarded: [`codec::may_trail`], and none the proxy writes
/// itself or that is connection-specific.
pub(super) fn forwardable_trailer(name: &HeaderName) -> bool {
    codec::may_trail(name.as_ref()) && !skip_request_header(name)
}

/// The X-Forwarded-For value: the client's list, then the client.
pub(super) fn forwarded_for(h: &HeaderMap, client_ip: &str) -> String {
    let prev: Vec<&str> = h
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|v| !v.is_empty())
        .collect();
    if prev.is_empty() {
        client_ip.to_string()
    } else {
        format!("{}, {client_ip}", prev.join(", "))
    }
}

/// The HTTP/1.1 request head for an HTTP/2 request.
fn write_h1_head(out: &mut Vec<u8>, parts: &http::request::Parts, target: &str, fwd: &Forwarded, framing: Framing) {
    use std::io::Write;
    let _ = write!(out, "{} {target} HTTP/1.1\r\nHost: {}\r\n", parts.method, fwd.authority);
    let mut cookies: Vec<&[u8]> = Vec::new();
    for (name, value) in &parts.headers {
        if skip_request_header(name) || name == "te" || (!fwd.underscores && codec::has_underscore(name.as_ref())) {
            continue;
        }
        // HTTP/2 may split Cookie into several fields; HTTP/1.1 wants one (RFC 9113 §8.2.3).
        if name == http::header::COOKIE {
            cookies.push(value.as_bytes());
            continue;
        }
        out.extend_from_slice(name.as_str().as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(value.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    if !cookies.is_empty() {
        out.extend_from_slice(b"Cookie: ");
        out.extend_from_slice(&cookies.join(&b"; "[..]));
        out.extend_from_slice(b"\r\n");
    }
    let _ = write!(
        out,
        "X-Forwarded-For: {}\r\nX-Real-IP: {}\r\nX-Forwarded-Proto: {}\r\nX-Forwarded-Host: {}\r\n",
        forwarded_for(&parts.headers, fwd.peer_ip),
        fwd.client_ip,
        fwd.proto(&parts.headers),
        fwd.host(&parts.headers)
    );
    let length = if let Framing::Length(n) = framing { Some(n) } else { None };
    codec::write_framing(out, framing, length);
    out.extend_from_slice(b"\r\n");
}

/// Sends `data` on an HTTP/2 stream as the peer's flow control allows.
///
/// A peer that grants no flow-control credit within `stalled()` (a client that stops
/// reading, or one that reads slower than the minimum rate the caller counts in bytes) has
/// the stream cancelled, so it cannot hold the stream and its upstream forever. The timer is
/// armed only when the credit is not already there.
pub(super) async fn send_all<I: Io>(
    send: &mut SendStream<Bytes>,
    mut data: Bytes,
    stalled: impl Fn() -> std::time::Duration,
) -> Result<(), h2::Error> {
    while !data.is_empty() {
        send.reserve_capacity(data.len());
        let capacity = {
            let mut wait = std::pin::pin!(std::future::poll_fn(|cx| send.poll_capacity(cx)));
            match futures::poll!(wait.as_mut()) {
                std::task::Poll::Ready(c) => c,
                std::task::Poll::Pending => match select(wait, std::pin::pin!(I::sleep(stalled()))).await {
                    Either::Left((c, _)) => c,
                    Either::Right(_) => return Err(h2::Error::from(Reason::CANCEL)),
                },
            }
        };
        let cap = match capacity {
            Some(r) => r?,
            None => return Err(h2::Error::from(Reason::CANCEL)),
        };
        if cap > 0 {
            send.send_data(data.split_to(cap.min(data.len())), false)?;
        }
    }
    Ok(())
}

/// A share of the worker's budget for response bytes waiting on client credit, or the
/// stream ends (reset) because the budget is spent.
pub(super) fn hold_response_chunk<I: Io>(w: &Worker<I>, n: usize) -> Result<super::Reserved, ProxyError> {
    w.reserve_response_chunk(n as u64).ok_or_else(|| {
        bump(&w.stats.h2_response_budget_resets);
        ProxyError::downstream(Kind::Closed, "the worker's budget for HTTP/2 responses waiting on clients is spent")
    })
}

fn h2_down(e: h2::Error) -> ProxyError {
    ProxyError::io(Kind::Closed, Side::Downstream, "HTTP/2 stream", std::io::Error::other(e))
}

/// HTTP/2 request -> HTTP/1.1 upstream (pooled) -> HTTP/2 response.
#[allow(clippy::too_many_arguments)]
async fn to_http1<I: Io>(
    w: &Worker<I>,
    clock: Clock<'_>,
    snap: &LocalSnapshot,
    settings: &Settings,
    route: &Route,
    parts: &http::request::Parts,
    body: &mut RecvStream,
    length: Option<u64>,
    respond: &mut SendResponse<Bytes>,
    progress: &Progress,
    target: &str,
    fwd: &Forwarded<'_>,
) -> Result<(), ProxyError> {
    let started = std::time::Instant::now();
    let mut pace = Pace::new();
    // `proxy-request-buffering`: the body (if it fits) is read whole before an upstream
    // connection is taken.
    let buffered = match settings.request_buffering && !body.is_end_stream() {
        true => buffer_body::<I>(w, body, length, settings, &mut pace).await?,
        false => None,
    };
    let body_done = body.is_end_stream() || buffered.as_ref().is_some_and(|b| b.complete);
    let framing = match &buffered {
        Some(b) if b.complete => Framing::Length(b.data.len() as u64),
        _ if body.is_end_stream() => {
            if matches!(parts.method, http::Method::POST | http::Method::PUT | http::Method::PATCH) {
                Framing::Length(0)
            } else {
                Framing::None
            }
        }
        _ => length.map_or(Framing::Chunked, Framing::Length),
    };
    let mut out = Vec::with_capacity(1024);
    write_h1_head(&mut out, parts, target, fwd, framing);
    let mut sent_body = 0u64;
    if let Some(b) = &buffered {
        if framing == Framing::Chunked {
            super::h1::body::write_chunk(&mut out, &b.data);
        } else {
            out.extend_from_slice(&b.data);
        }
        sent_body = b.data.len() as u64;
        progress.add_in(b.data.len());
    }
    drop(buffered);
    let is_head = parts.method == http::Method::HEAD;
    // A request whose body is all in `out` can be sent again if a pooled connection turns
    // out closed: when nothing was sent, or when the method is idempotent (RFC 9110 §9.2.2).
    let replayable = body_done;
    let idempotent = parts.method.is_idempotent();
    let mut pooled = true;
    let mut ubuf = Vec::with_capacity(16 * 1024);
    let up = loop {
        let tls = route.options.protocol == BackendProtocol::Https;
        let up = client::acquire(w, snap, route.backend, pooled, settings.connect_timeout, tls).await?;
        progress.upstream.set(Some(up.addr));
        let (r, o) = clock.write_for(&up.io, out, settings.upstream_send_timeout).await;
        out = o;
        let retry = |sent: bool| up.reused && replayable && (idempotent || !sent);
        match r {
            Ok(()) => {
                if !body_done {
                    let sent = (sent_body, &mut pace);
                    send_h1_body::<I, _>(clock, &up.io, body, framing, settings, progress, sent).await?;
                }
                ubuf.clear();
                let deadline = clock.after(settings.upstream_timeout);
                if client::read_head_bytes(&up.io, &mut ubuf, clock, deadline, 64 * 1024).await? {
                    break up;
                }
                if !retry(true) {
                    return Err(ProxyError::upstream(Kind::UpstreamProtocol, "upstream closed without a response"));
                }
            }
            Err(_) if retry(false) => {}
            Err(e) => return Err(ProxyError::io(Kind::UpstreamConnect, Side::Upstream, "sending the request", e)),
        }
        bump(&w.stats.upstream_retries);
        pooled = false;
    };

    // The response head (interim responses skipped).
    let (info, headers) = loop {
        let mut hs = [httparse::EMPTY_HEADER; 128];
        let mut resp = httparse::Response::new(&mut hs);
        match resp.parse(&ubuf) {
            Ok(httparse::Status::Complete(n)) => {
                let info = codec::analyze_response(&resp, n, is_head)?;
                if (100..200).contains(&info.status) {
                    if info.status == 101 {
                        return Err(ProxyError::upstream(Kind::UpstreamProtocol, "101 over HTTP/2"));
                    }
                    ubuf.drain(..n);
                    continue;
                }
                // The same rule as for HTTP/1.1 clients: hop-by-hop fields, what the upstream's
                // Connection names, and the framing, which the proxy states itself (the length
                // it parsed, canonical).
                let mut tokens = [&[][..]; 16];
                let n = codec::connection_tokens(resp.headers, &mut tokens);
                let mut headers = HeaderMap::with_capacity(resp.headers.len());
                for h in resp.headers.iter() {
                    if codec::is_response_hop_by_hop(h.name.as_bytes(), &tokens[..n]) {
                        continue;
                    }
                    let Ok(name) = HeaderName::from_bytes(h.name.as_bytes()) else { continue };
                    if let Ok(v) = HeaderValue::from_bytes(h.value) {
                        headers.append(name, v);
                    }
                }
                if let Some(len) = info.length {
                    headers.insert(http::header::CONTENT_LENGTH, HeaderValue::from(len));
                }
                break (info, headers);
            }
            Ok(httparse::Status::Partial) => {
                let deadline = clock.after(settings.upstream_timeout);
                if !client::read_head_bytes(&up.io, &mut ubuf, clock, deadline, 64 * 1024).await? {
                    return Err(ProxyError::upstream(
                        Kind::UpstreamProtocol,
                        "upstream closed inside the response head",
                    ));
                }
            }
            Err(_) => return Err(ProxyError::upstream(Kind::UpstreamProtocol, "malformed response head")),
        }
    };
    let mut response = Response::new(());
    *response.status_mut() = http::StatusCode::from_u16(info.status)
        .map_err(|_| ProxyError::upstream(Kind::UpstreamProtocol, "invalid status"))?;
    *response.headers_mut() = headers;
    add_fields(response.headers_mut(), snap.edge.h2(fwd.scheme == "https"));
    let mut rbody = Body::new(info.framing);
    rbody.keep_trailers();
    let end = rbody.is_done();
    let mut send = respond.send_response(response, end).map_err(h2_down)?;
    let answered = std::time::Instant::now();
    progress.upstream_answered(info.status);
    // The head's buffer goes on as the body's: one 16 KiB buffer per stream.
    ubuf.drain(..info.head_len);
    let mut rest = ubuf;
    let mut clean = true;
    loop {
        // A body framed by length (or by the close) is the bytes read, handed to the client
        // as they are (no copy; the next read gets a new buffer once this one is sent). A
        // chunked one is decoded into its own buffer.
        let plain = matches!(rbody, Body::Length(_) | Body::UntilClose);
        let mut decoded = Vec::new();
        let k = rbody
            .consume(&rest, &mut |d| {
                if !plain {
                    decoded.extend_from_slice(d)
                }
            })
            .map_err(|_| ProxyError::upstream(Kind::Closed, "invalid chunked response body"))?;
        if k != rest.len() {
            clean = false;
        }
        if plain {
            rest.truncate(k);
            decoded = std::mem::take(&mut rest);
        }
        if !decoded.is_empty() {
            progress.add_out(decoded.len());
            // The client must take the response at the minimum rate, counted in bytes (a
            // WINDOW_UPDATE of one byte now and then does not keep a stream alive).
            let out = progress.bytes_out.get();
            let wait = || settings.body_wait(answered, out).min(settings.idle_timeout);
            let _held = hold_response_chunk(w, decoded.len())?;
            send_all::<I>(&mut send, Bytes::from(decoded), wait).await.map_err(h2_down)?;
        }
        if rbody.is_done() {
            break;
        }
        rest.clear();
        // 16 KiB per read: with up to MAX_UPSTREAM_PER_CONNECTION streams of a connection
        // reading, what one client connection can pin stays near 1 MiB.
        rest.reserve(16 * 1024);
        let (r, b) = clock.read_for(&up.io, rest, settings.upstream_timeout).await;
        rest = b;
        match r {
            Ok(0) if matches!(rbody, Body::UntilClose) => {
                clean = false;
                break;
            }
            Ok(0) => return Err(ProxyError::upstream(Kind::Closed, "upstream closed inside the response body")),
            Ok(_) => {}
            Err(e) => return Err(ProxyError::io(Kind::Closed, Side::Upstream, "reading the response body", e)),
        }
    }
    if !end {
        // A chunked response's trailer fields end the stream as an HTTP/2 trailers frame.
        match trailer_fields(&rbody.take_trailers()) {
            Some(trailers) => send.send_trailers(trailers).map_err(h2_down)?,
            None => send.send_data(Bytes::new(), true).map_err(h2_down)?,
        }
    }
    if info.reusable && clean {
        let expires = w.deadlines.after(settings.upstream_idle_timeout);
        w.pools.put(up.addr, up.io, expires, settings.upstream_keepalive_connections);
    }
    progress.upstream_time.set(Some(started.elapsed()));
    Ok(())
}

/// Fields the ConfigMap adds to every proxied response (`add-headers`, HSTS over TLS).
pub(super) fn add_fields(h: &mut HeaderMap, extra: &[(HeaderName, HeaderValue)]) {
    for (n, v) in extra {
        h.insert(n.clone(), v.clone());
    }
}

/// A request body read ahead of the upstream exchange (`proxy-request-buffering`).
struct Buffered {
    data: Vec<u8>,
    /// The stream ended: `data` is the whole body.
    complete: bool,
    _reserved: super::Reserved,
}

/// Reads the request body into memory, up to `client-body-buffer-size` and while the worker's
/// budget allows. None: not buffered (too large by its content-length, or no budget left).
async fn buffer_body<I: Io>(
    w: &Worker<I>,
    body: &mut RecvStream,
    length: Option<u64>,
    settings: &Settings,
    pace: &mut Pace,
) -> Result<Option<Buffered>, ProxyError> {
    let limit = settings.body_buffer_size;
    if length.is_some_and(|n| n > limit) {
        return Ok(None);
    }
    let Some(reserved) = w.reserve_body_buffer(length.unwrap_or(limit)) else { return Ok(None) };
    let mut data = Vec::new();
    while (data.len() as u64) < limit {
        let Some(chunk) = next_body_data::<I>(body, settings, pace).await? else {
            if length.is_some_and(|n| n != data.len() as u64) {
                return Err(ProxyError::downstream(Kind::BadRequest, "body length differs from its content-length"));
            }
            return Ok(Some(Buffered { data, complete: true, _reserved: reserved }));
        };
        data.extend_from_slice(&chunk);
        check_body_size(data.len() as u64, length, settings)?;
    }
    Ok(Some(Buffered { data, complete: false, _reserved: reserved }))
}

/// The body limit, and a body longer than its content-length (400).
fn check_body_size(total: u64, length: Option<u64>, settings: &Settings) -> Result<(), ProxyError> {
    if settings.max_body_bytes != 0 && total > settings.max_body_bytes {
        return Err(ProxyError::downstream(Kind::BodyTooLarge, "request body too large"));
    }
    if length.is_some_and(|n| total > n) {
        return Err(ProxyError::downstream(Kind::BadRequest, "body longer than its content-length"));
    }
    Ok(())
}

/// The next DATA of a request body, with its flow-control credit given back, as long as the
/// body keeps `client-body-min-rate` and `client-body-timeout` (408 otherwise). None: the
/// body ended.
async fn next_body_data<I: Io>(
    body: &mut RecvStream,
    settings: &Settings,
    pace: &mut Pace,
) -> Result<Option<Bytes>, ProxyError> {
    let wait = settings.body_wait(pace.start, pace.received);
    let next = match select(std::pin::pin!(body.data()), std::pin::pin!(I::sleep(wait))).await {
        Either::Left((next, _)) => next,
        Either::Right(_) => {
            return Err(ProxyError::downstream(
                Kind::RequestTimeout,
                "request body too slow (client-body-min-rate) or stalled (client-body-timeout)",
            ))
        }
    };
    let Some(chunk) = next else { return Ok(None) };
    let chunk = chunk.map_err(h2_down)?;
    let _ = body.flow_control().release_capacity(chunk.len());
    pace.received += chunk.len() as u64;
    Ok(Some(chunk))
}

/// Streams an HTTP/2 request body to an HTTP/1.1 upstream (chunk-framed when its length is
/// unknown), releasing flow-control credit as it goes and enforcing the body limit and the
/// minimum rate. `(sent, pace)`: body bytes already sent with the head, and the body's pace.
async fn send_h1_body<I: Io, U: Stream>(
    clock: Clock<'_>,
    up: &U,
    body: &mut RecvStream,
    framing: Framing,
    settings: &Settings,
    progress: &Progress,
    (sent, pace): (u64, &mut Pace),
) -> Result<(), ProxyError> {
    let mut total = sent;
    let mut buf = Vec::with_capacity(16 * 1024);
    while let Some(chunk) = next_body_data::<I>(body, settings, pace).await? {
        total += chunk.len() as u64;
        progress.add_in(chunk.len());
        let declared = if let Framing::Length(n) = framing { Some(n) } else { None };
        check_body_size(total, declared, settings)?;
        buf.clear();
        if framing == Framing::Chunked {
            super::h1::body::write_chunk(&mut buf, &chunk);
        } else {
            buf.extend_from_slice(&chunk);
        }
        let (r, b) = clock.write_for(up, buf, settings.upstream_send_timeout).await;
        buf = b;
        r.map_err(|e| ProxyError::io(Kind::UpstreamProtocol, Side::Upstream, "sending the request body", e))?;
    }
    if let Framing::Length(n) = framing {
        if total != n {
            return Err(ProxyError::downstream(Kind::BadRequest, "body shorter than its content-length"));
        }
    }
    if framing == Framing::Chunked {
        // The last chunk. The request's trailers are not forwarded: an HTTP/1.1 upstream
        // does not need them, and a trailer field may not frame or route (RFC 9110 §6.5.1).
        buf.clear();
        buf.extend_from_slice(b"0\r\n\r\n");
        let (r, _) = clock.write_for(up, buf, settings.upstream_send_timeout).await;
        r.map_err(|e| ProxyError::io(Kind::UpstreamProtocol, Side::Upstream, "sending the request body", e))?;
    }
    Ok(())
}
