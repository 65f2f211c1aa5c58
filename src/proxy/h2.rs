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
use super::client_cert::TlsInfo;
use super::error::{Kind, ProxyError, Side};
use super::external;
use super::fields::Forwarded;
use super::pipeline::{self, Decision, Exchange};
use super::{bump, LocalSnapshot, RouteKey, Worker};
use crate::access_log::Record;
use crate::runtime::deadline::Watch;
use crate::runtime::io::Clock;
use crate::runtime::{Io, Stream};
use crate::snapshot::gateway::Entry;

mod to_h1;

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
/// `entry`: the listener; `tls`: what a handshake that asked for a client certificate learned.
pub(crate) async fn serve<I: Io, S: Stream>(
    w: Rc<Worker<I>>,
    io: S,
    initial: Vec<u8>,
    peer: SocketAddr,
    (entry, tls): (Entry, Option<Rc<TlsInfo>>),
) {
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
                let tls = tls.clone();
                I::spawn(async move {
                    handle_stream(&w, req, respond, (&ip, peer.ip()), (entry, tls.as_deref()), &slots).await;
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
    (entry, tls): (Entry, Option<&TlsInfo>),
    slots: &tokio::sync::Semaphore,
) {
    let https = entry.tls;
    bump(&w.stats.requests);
    let mut rec = Record { start: Some(std::time::Instant::now()), ..Record::default() };
    let grpc = is_grpc(req.headers());
    let watch = w.deadlines.register();
    let progress = Progress::default();
    // The request body lives until the answer is sent: dropping it first would reset the
    // stream before an error response (413 while the client still sends) got out.
    let (parts, mut body) = req.into_parts();
    let snap = w.snapshot();
    let named = parts.headers.get_all(snap.edge.forwarded_for_header.as_str());
    let client = snap.edge.real_client(peer, snap.settings.accept_proxy, named.iter().map(|v| v.as_bytes()));
    let client_ip: std::borrow::Cow<str> =
        if client == peer.to_canonical() { peer_ip.into() } else { client.to_string().into() };
    let generated_id = capture(w, &parts, &client_ip, &mut rec);
    let Record { key, request_id, .. } = &mut rec;
    let fwd = Forwarded {
        peer_ip: peer_ip.as_bytes(),
        client_ip: client_ip.as_bytes(),
        scheme: if https { "https" } else { "http" },
        authority: authority(&parts).as_bytes(),
        trust: snap.edge.forwarded_from(peer),
        full: snap.edge.compute_full_forwarded_for,
        request_id: generated_id.then_some(&request_id[..]),
    };
    let stream = ReqStream {
        parts: &parts,
        body: &mut body,
        respond: &mut respond,
        progress: &progress,
        client,
        request_id: &request_id[..],
        tls,
        entry,
    };
    let r = exchange(w, snap.clone(), &watch, stream, &fwd, key, slots).await;
    let status = &progress.status;
    if let Err(e) = r {
        tracing::debug!(worker = w.index, error = %e, "HTTP/2 request failed");
        if status.get() != 0 {
            // The client side gave up or stalled: CANCEL; anything else mid-response is ours.
            let reason = if e.side == Side::Downstream { Reason::CANCEL } else { Reason::INTERNAL_ERROR };
            respond.send_reset(reason);
        } else {
            bump(&w.stats.responses_proxy_error);
            let clock = Clock { deadlines: &w.deadlines, watch: &watch };
            let code = e.status().map_or(500, |s| s.0);
            let intercepted = matches!(e.kind, Kind::Intercepted(_));
            let page = match grpc {
                true => None,
                false => super::error_page::page(w, &snap, clock, &rec, code, intercepted).await,
            };
            status.set(match page {
                Some(page) => {
                    let stamp = (snap.settings.server_name(), snap.edge.h2(https));
                    send_page(&mut respond, &page, &e.fields, parts.method == http::Method::HEAD, stamp)
                }
                None => send_error(&mut respond, &e, grpc, (snap.settings.server_name(), snap.edge.h2(https))),
            });
        }
    }
    w.deadlines.unregister(&watch);
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

/// Fills the access-log fields of a stream's request, and takes its request id from
/// X-Request-ID or makes one. True when the id was made here (it is then sent upstream).
fn capture<I: Io>(w: &Worker<I>, parts: &http::request::Parts, client_ip: &str, rec: &mut Record) -> bool {
    rec.client.extend_from_slice(client_ip.as_bytes());
    rec.method.extend_from_slice(parts.method.as_str().as_bytes());
    rec.uri.extend_from_slice(parts.uri.path_and_query().map_or("/", |p| p.as_str()).as_bytes());
    rec.host.extend_from_slice(authority(parts).as_bytes());
    rec.protocol = "HTTP/2.0";
    let h = &parts.headers;
    if let Some(v) = h.get(http::header::USER_AGENT) {
        rec.user_agent.extend_from_slice(v.as_bytes());
    }
    if let Some(v) = h.get(http::header::REFERER) {
        rec.referer.extend_from_slice(v.as_bytes());
    }
    match h.get("x-request-id") {
        Some(v) => {
            rec.request_id.extend_from_slice(v.as_bytes());
            false
        }
        None => {
            w.log.request_id(&mut rec.request_id);
            true
        }
    }
}

/// The request's authority: `:authority`, else Host (an HTTP/2 request may carry either).
fn authority(parts: &http::request::Parts) -> &str {
    match parts.uri.authority() {
        Some(a) => a.as_str(),
        None => parts.headers.get(http::header::HOST).and_then(|v| v.to_str().ok()).unwrap_or(""),
    }
}

/// An answer from the proxy itself: an HTTP status with a short text, or for gRPC calls a
/// trailers-only response with the matching `grpc-status`. Returns the HTTP status sent.
fn send_error(respond: &mut SendResponse<Bytes>, e: &ProxyError, grpc: bool, (server, edge): Stamp<'_>) -> u16 {
    let (code, reason) = e.status().unwrap_or((500, "Internal Server Error"));
    if grpc {
        let grpc_status = e.kind.grpc_status();
        let resp = Response::builder()
            .status(200)
            .header("content-type", "application/grpc")
            .header("grpc-status", u16::from(grpc_status))
            .header("grpc-message", format!("ringress: {reason}: {}", e.message()).replace(' ', "%20"))
            .body(())
            .expect("static response parts");
        let _ = respond.send_response(resp, true);
        return 200;
    }
    let body = Bytes::from(format!("{reason}: {}\n", e.message()));
    let mut resp = Response::builder().status(code);
    if code == 405 {
        resp = resp.header("allow", super::error::ALLOW);
    }
    for (name, value) in &e.fields {
        if let Ok(v) = HeaderValue::from_bytes(value) {
            resp = resp.header(*name, v);
        }
    }
    let mut resp = resp
        .header("server", server)
        .header("content-type", "text/plain; charset=utf-8")
        .header("content-length", body.len())
        .body(())
        .expect("static response parts");
    add_fields(resp.headers_mut(), edge);
    if let Ok(mut s) = respond.send_response(resp, false) {
        let _ = s.send_data(body, true);
    }
    code
}

/// What every HTTP/2 response the proxy makes itself carries: its Server field, and the
/// ConfigMap's fields (`add-headers`, HSTS over TLS).
type Stamp<'a> = (&'a str, &'a [(HeaderName, HeaderValue)]);

/// An error page (`custom-http-errors`), with the error's own fields (a 401's challenge).
fn send_page(
    respond: &mut SendResponse<Bytes>,
    page: &super::error_page::Page,
    extra: &[(&'static str, Vec<u8>)],
    head_only: bool,
    (server, edge): Stamp<'_>,
) -> u16 {
    let mut resp = Response::builder().status(page.status);
    if !page.fields.iter().any(|(n, _)| n == "server") {
        resp = resp.header("server", server);
    }
    let fields = page.fields.iter().map(|(n, v)| (n.as_str(), v)).chain(extra.iter().map(|(n, v)| (*n, v)));
    for (name, value) in fields {
        if let (Ok(n), Ok(v)) = (HeaderName::from_bytes(name.as_bytes()), HeaderValue::from_bytes(value)) {
            resp = resp.header(n, v);
        }
    }
    let Ok(mut resp) = resp.header("content-length", page.body.len()).body(()) else { return page.status };
    add_fields(resp.headers_mut(), edge);
    let end = head_only || page.body.is_empty();
    if let Ok(mut s) = respond.send_response(resp, end) {
        if !end {
            let _ = s.send_data(Bytes::copy_from_slice(&page.body), true);
        }
    }
    page.status
}

/// Where the request goes, as the pipeline decided.
pub(super) struct Route<'a> {
    pub snap: &'a LocalSnapshot,
    pub forward: &'a pipeline::Forward<'a>,
    /// Over TLS (`backend-protocol: HTTPS`, GRPCS), with the route's profile.
    pub tls: Option<&'a std::sync::Arc<crate::snapshot::upstream_tls::UpstreamTls>>,
    /// The path and query sent upstream.
    pub target: &'a str,
    /// The request's declared Content-Length.
    pub length: Option<u64>,
    /// What external authentication granted, if the route asks for it.
    pub granted: Option<&'a crate::proxy::external::Granted>,
    /// `custom-http-errors`: upstream statuses answered by an error page instead.
    pub intercept: &'a [u16],
}

/// One HTTP/2 request stream, as the exchange uses it.
pub(super) struct ReqStream<'a> {
    pub parts: &'a http::request::Parts,
    /// The request body (DATA and trailers).
    pub body: &'a mut RecvStream,
    pub respond: &'a mut SendResponse<Bytes>,
    pub progress: &'a Progress,
    /// The client's address as the proxy believes it.
    pub client: std::net::IpAddr,
    /// The request's id (X-Request-ID, sent or made here).
    pub request_id: &'a [u8],
    /// What a handshake that asked for a client certificate learned.
    pub tls: Option<&'a TlsInfo>,
    /// The listener it came to.
    pub entry: Entry,
}

/// Runs the request through the pipeline, then the upstream exchange by the backend's
/// protocol.
async fn exchange<I: Io>(
    w: &Worker<I>,
    snap: LocalSnapshot,
    watch: &Watch,
    s: ReqStream<'_>,
    fwd: &Forwarded<'_>,
    key: &mut RouteKey,
    slots: &tokio::sync::Semaphore,
) -> Result<(), ProxyError> {
    let parts = s.parts;
    let length = content_length(&parts.headers)?;
    let pq = parts.uri.path_and_query().map_or("/", |p| p.as_str());
    let request = pipeline::Request {
        method: parts.method.as_str(),
        authority: fwd.authority,
        path_and_query: pq.as_bytes(),
        length,
        entry: s.entry,
        http2: true,
        http10: false,
        client: s.client,
        user_agent: parts.headers.get(http::header::USER_AGENT).map(|v| v.as_bytes()),
        referer: parts.headers.get(http::header::REFERER).map(|v| v.as_bytes()),
        authorization: only_field(&parts.headers, http::header::AUTHORIZATION),
        tls: s.tls,
        fields: &parts.headers,
    };
    let f = match pipeline::decide(&snap, &request, key)? {
        Decision::Forward(f) => f,
        Decision::Answer { code, fields } => {
            let mut resp = Response::builder().status(code);
            for (name, value) in fields {
                resp = resp.header(name, value);
            }
            let mut resp =
                resp.body(()).map_err(|_| ProxyError::downstream(Kind::BadRequest, "cannot build the answer"))?;
            add_fields(resp.headers_mut(), snap.edge.h2(fwd.scheme == "https"));
            let _ = s.respond.send_response(resp, true);
            s.progress.status.set(code);
            return Ok(());
        }
        Decision::Text { code, body } => {
            let mut page = super::error_page::Page::plain(code);
            page.body = body.as_bytes().to_vec();
            let head_only = parts.method == http::Method::HEAD;
            let stamp = (snap.settings.server_name(), snap.edge.h2(fwd.scheme == "https"));
            s.progress.status.set(send_page(s.respond, &page, &[], head_only, stamp));
            return Ok(());
        }
    };
    let target = f.target.as_deref().unwrap_or(pq);
    let granted = match f.external {
        None => f.fields.clone(),
        Some(spec) => {
            let fields: Vec<(&[u8], &[u8])> =
                parts.headers.iter().map(|(n, v)| (n.as_str().as_bytes(), v.as_bytes())).collect();
            let origin = external::Origin {
                req: &request,
                fields: &fields,
                client_ip: fwd.client_ip,
                peer_ip: fwd.peer_ip,
                request_id: s.request_id,
            };
            let call = external::prepare(&snap, spec, &origin)?;
            let clock = Clock { deadlines: &w.deadlines, watch };
            // The auth request is an upstream exchange too: it takes one of the connection's
            // slots (released before the request's own exchange takes one).
            let slot = slots
                .acquire()
                .await
                .map_err(|_| ProxyError::new(Kind::UpstreamConnect, Side::Internal, "connection closing"))?;
            let granted = Box::pin(external::check(w, &snap, clock, &f.settings, call)).await?;
            drop(slot);
            Some(match f.fields.clone() {
                Some(cert) => cert.and(granted),
                None => granted,
            })
        }
    };
    let granted = granted.as_ref();
    let intercept = key.errors.as_ref().map_or(&[][..], |e| &e.codes[..]);
    match f.exchange {
        Exchange::Grpc { tls } => {
            let to = Route { snap: &snap, forward: &f, tls, target, length, granted, intercept };
            Box::pin(super::grpc::forward::<I>(w, &to, s, fwd)).await
        }
        Exchange::Http1 { tls } => {
            let clock = Clock { deadlines: &w.deadlines, watch };
            // At most MAX_UPSTREAM_PER_CONNECTION upstream exchanges per client connection;
            // further streams wait for one to finish.
            let _slot = slots
                .acquire()
                .await
                .map_err(|_| ProxyError::new(Kind::UpstreamConnect, Side::Internal, "connection closing"))?;
            // Boxed, like the gRPC exchange: a stream waiting for its slot (or answered by the
            // proxy) holds only this small frame, not room for the whole exchange.
            let to = Route { snap: &snap, forward: &f, tls, target, length, granted, intercept };
            Box::pin(to_h1::forward(w, clock, &to, s, fwd)).await
        }
    }
}

/// A field's value when it is sent exactly once (twice is never a credential).
fn only_field(h: &HeaderMap, name: http::header::HeaderName) -> Option<&[u8]> {
    let mut all = h.get_all(name).iter();
    match (all.next(), all.next()) {
        (Some(v), None) => Some(v.as_bytes()),
        _ => None,
    }
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

/// Fields the ConfigMap adds to every proxied response (`add-headers`, HSTS over TLS).
/// Adds what the pipeline asked for to a response head (for an answer from `used`): CORS
/// fields in place of the upstream's, the affinity cookie.
pub(super) fn add_reply(h: &mut HeaderMap, reply: Option<&pipeline::Reply>, used: (Option<std::net::SocketAddr>, u16)) {
    let Some(reply) = reply else { return };
    for name in reply.replaced_names() {
        h.remove(name);
    }
    // `proxy-redirect-*`, `proxy-cookie-*`: the upstream's fields rewritten where they match.
    for name in [http::header::LOCATION, http::header::REFRESH, http::header::SET_COOKIE] {
        if !reply.rewrites(name.as_str().as_bytes()) {
            continue;
        }
        let mut values = match h.entry(&name) {
            http::header::Entry::Occupied(e) => e.remove_entry_mult().1.collect::<Vec<_>>(),
            http::header::Entry::Vacant(_) => continue,
        };
        for v in &mut values {
            if let Some(new) = reply.rewritten(name.as_str().as_bytes(), v.as_bytes()) {
                *v = HeaderValue::from_bytes(&new).unwrap_or_else(|_| v.clone());
            }
        }
        for v in values {
            h.append(name.clone(), v);
        }
    }
    reply.each(used, |name, value| {
        if let (Ok(n), Ok(v)) = (HeaderName::from_bytes(name.as_bytes()), HeaderValue::from_bytes(value)) {
            h.append(n, v);
        }
    });
}

pub(super) fn add_fields(h: &mut HeaderMap, extra: &[(HeaderName, HeaderValue)]) {
    for (n, v) in extra {
        h.insert(n.clone(), v.clone());
    }
}
