//! The downstream HTTP/1.1 loop: read a request head, route it, forward it and its body,
//! relay the response, repeat while the connection stays keep-alive. Pipelined requests wait
//! in the read buffer and are answered in order.

use std::mem::MaybeUninit;
use std::net::{Shutdown, SocketAddr};

mod exchange;

use super::body::Body;
use super::codec::{self, Framing, RequestInfo};
use crate::access_log::{Record, WorkerLog};
use crate::proxy::client_cert::TlsInfo;
use crate::proxy::error::{write_error_response, Kind, ProxyError, Side, Stamp};
use crate::proxy::fields::Forwarded;
use crate::proxy::pipeline::{self, Decision};
use crate::proxy::{bump, Worker};
use crate::proxy::{error_page, external};
use crate::runtime::deadline::Watch;
use crate::runtime::io::Clock;
use crate::runtime::{Io, Stream};
use crate::snapshot::gateway::Entry;
use crate::snapshot::{BackendId, Snapshot};
use exchange::forward;

pub(crate) const MAX_HEADERS: usize = 128;
const READ_CHUNK: usize = 64 * 1024;

/// One downstream connection and its reusable buffers.
struct Conn<S> {
    /// The client address as text, written into forwarded headers.
    client_ip: ClientIp,
    /// Registered in the worker's deadlines for the life of the connection.
    watch: std::rc::Rc<Watch>,
    io: S,
    peer: SocketAddr,
    /// The listener it came to; over TLS: `X-Forwarded-Proto: https`, and never redirected to
    /// HTTPS.
    entry: Entry,
    /// Bytes read from the client and not yet consumed (the start of the next request).
    buf: Vec<u8>,
    /// What is written next, to either side.
    out: Vec<u8>,
    /// Bytes read from the upstream.
    ubuf: Vec<u8>,
    /// Some bytes of the current response reached the client: errors can only close.
    response_started: bool,
    /// Requests read on this connection (`keep-alive-requests` closes it after the last).
    requests: u64,
    /// The current request: its metric labels and everything its access-log line says.
    rec: Record,
    /// What a handshake that asked for a client certificate learned.
    tls: Option<std::rc::Rc<TlsInfo>>,
    /// What the external authentication service granted the current request (its cookies go
    /// on the answer).
    granted: Option<Box<external::Granted>>,
}

/// `initial`: bytes already read from the connection.
/// `entry`: the listener; `tls`: what a handshake that asked for a client certificate learned.
pub(crate) fn serve<'w, I: Io, S: Stream>(
    w: &'w Worker<I>,
    io: S,
    initial: Vec<u8>,
    peer: SocketAddr,
    (entry, tls): (Entry, Option<std::rc::Rc<TlsInfo>>),
) -> impl std::future::Future<Output = ()> + 'w {
    // Built outside the future, which then holds the connection once (an async fn would also
    // keep room for its moved-from arguments for as long as the connection lives).
    let mut c = Conn {
        client_ip: ClientIp::new(peer),
        watch: w.deadlines.register(),
        io,
        peer,
        entry,
        buf: if initial.is_empty() { Vec::with_capacity(HEAD_BUF) } else { initial },
        out: Vec::with_capacity(4 * 1024),
        ubuf: Vec::new(),
        response_started: false,
        requests: 0,
        rec: Record::default(),
        tls,
        granted: None,
    };
    c.rec.client.extend_from_slice(c.client_ip.as_bytes());
    // The connection is captured, not rebound: a `let` inside would hold it twice.
    async move {
        let mut first = true;
        loop {
            // An idle keep-alive connection waits here, in this small loop, holding no buffer at
            // all (the backend hands one over when bytes arrive); the per-request state below is
            // boxed and exists only while a request is in progress.
            if !first && c.buf.is_empty() && (w.draining() || !wait_for_bytes(w, &mut c).await) {
                break;
            }
            c.response_started = false;
            let keep = match Box::pin(request(w, &mut c, first)).await {
                Ok(keep) => keep,
                Err(e) => {
                    Box::pin(fail(w, &mut c, e)).await;
                    false
                }
            };
            w.finish(&c.rec);
            c.rec.start = None;
            if !keep {
                break;
            }
            first = false;
            if c.buf.is_empty() {
                c.release_for_idle();
            }
        }
        w.deadlines.unregister(&c.watch);
    }
}

/// Waits up to the idle timeout for the first bytes of a keep-alive connection's next
/// request. False: the client closed, stayed idle too long, or a drain started (closed
/// silently).
async fn wait_for_bytes<I: Io, S: Stream>(w: &Worker<I>, c: &mut Conn<S>) -> bool {
    let idle = w.snapshot().settings.idle_timeout;
    let watch = c.watch.clone();
    let clock = Clock { deadlines: &w.deadlines, watch: &watch };
    // Idle: a drain ends this wait at once.
    watch.set_idle(true);
    let (r, b) = clock.read_fresh(&c.io, HEAD_BUF, clock.after(idle)).await;
    watch.set_idle(false);
    c.buf = b;
    matches!(r, Ok(n) if n > 0)
}

/// Answers a failed request with its status when the response has not started, then closes
/// (with a lingering close, so the answer is not lost to a reset).
async fn fail<I: Io, S: Stream>(w: &Worker<I>, c: &mut Conn<S>, e: ProxyError) {
    tracing::debug!(worker = w.index, peer = %c.peer, error = %e, "request failed");
    if let (Some((code, _)), false) = (e.status(), c.response_started) {
        bump(&w.stats.responses_proxy_error);
        let mut out = std::mem::take(&mut c.out);
        out.clear();
        let watch = c.watch.clone();
        let clock = Clock { deadlines: &w.deadlines, watch: &watch };
        let snap = w.snapshot();
        c.rec.status = code;
        match error_page::page(w, &snap, clock, &c.rec, code, false).await {
            Some(page) => {
                c.rec.status = page.status;
                let head_only = c.rec.method == b"HEAD";
                write_page(&mut out, &page, &e.fields, true, head_only, Stamp::of(&snap, &snap.settings, c.entry.tls));
            }
            None => write_error_response(&mut out, &e, true, Stamp::of(&snap, &snap.settings, c.entry.tls)),
        }
        c.rec.bytes_out += out.len() as u64;
        if clock.write_for(&c.io, out, LINGER).await.0.is_ok() {
            linger(clock, &c.io, std::mem::take(&mut c.buf)).await;
        }
    }
}

/// An IP address formatted once per connection (at most 45 bytes for IPv6).
struct ClientIp {
    buf: [u8; 48],
    len: u8,
}

impl ClientIp {
    fn new(peer: SocketAddr) -> Self {
        use std::io::Write;
        let mut buf = [0u8; 48];
        let mut cur = std::io::Cursor::new(&mut buf[..]);
        let _ = write!(cur, "{}", peer.ip().to_canonical());
        let len = cur.position() as u8;
        ClientIp { buf, len }
    }

    fn as_bytes(&self) -> &[u8] {
        &self.buf[..self.len as usize]
    }
}

/// The read buffer a request head starts in: most fit, a longer one grows it.
const HEAD_BUF: usize = 4 * 1024;

impl<S> Conn<S> {
    /// An idle keep-alive connection keeps no buffer: the read, write and upstream buffers
    /// and the access-log fields are allocated again by the next request. What stays is this
    /// struct and its task (bench/idle_memory.sh measures it).
    fn release_for_idle(&mut self) {
        self.buf = Vec::new();
        self.out = Vec::new();
        self.ubuf = Vec::new();
        self.rec.release();
    }
}

/// How long a connection closed after an error response keeps draining client bytes.
const LINGER: std::time::Duration = std::time::Duration::from_secs(2);

/// Lingering close (as nginx does) after an error response: unread request bytes in the
/// receive queue would make `close` send a reset, which can destroy the response before the
/// client reads it. Stop writing, read and discard for a bounded time, then close.
pub(super) async fn linger<S: Stream>(clock: Clock<'_>, io: &S, mut buf: Vec<u8>) {
    io.shutdown(Shutdown::Write);
    let deadline = clock.after(LINGER);
    let mut drained = 0usize;
    while drained < 1 << 20 {
        buf.clear();
        if buf.capacity() < 16 * 1024 {
            buf.reserve(16 * 1024);
        }
        let (r, b) = clock.read(io, buf, deadline).await;
        buf = b;
        match r {
            Ok(n) if n > 0 => drained += n,
            _ => return,
        }
    }
}

/// What to do with a parsed request. Not boxed: forwarding is the common case, and the action
/// lives on the stack for one request.
#[allow(clippy::large_enum_variant)]
enum Action {
    /// To the backend, with the route's settings; `tls`: `backend-protocol: HTTPS`; `auth`:
    /// the external authentication to pass first.
    Forward {
        backend: BackendId,
        settings: crate::snapshot::Settings,
        tls: Option<std::sync::Arc<crate::snapshot::upstream_tls::UpstreamTls>>,
        auth: Option<Box<external::Call>>,
        pick: crate::upstream::Pick,
        reply: Option<Box<pipeline::Reply>>,
        /// Held until the request ends (`limit-connections`).
        permit: Option<crate::proxy::limits::Permit>,
        pace: Option<(u64, u64)>,
        accepts: crate::snapshot::compression::Accepts,
        mirror: Vec<BackendId>,
    },
    /// The answer (a redirect, with this status) is in `out`.
    Answer(u16),
    /// Answer from the proxy (a refusal of a well-framed request: 403, 404, 503...), framing
    /// intact.
    Respond(ProxyError),
}

/// Handles one request. `Ok(true)`: the connection stays open for the next one.
async fn request<I: Io, S: Stream>(w: &Worker<I>, c: &mut Conn<S>, first: bool) -> Result<bool, ProxyError> {
    // The snapshot is taken again once request bytes are here: a keep-alive connection that
    // waited through a reload must route its next request on the new table.
    let watch = c.watch.clone();
    let clock = Clock { deadlines: &w.deadlines, watch: &watch };
    let mut snap = w.snapshot();
    let (header_timeout, idle_timeout) = (snap.settings.header_timeout, snap.settings.idle_timeout);

    // --- the request head ---
    let mut started = !c.buf.is_empty();
    c.rec.reset();
    c.rec.start = started.then(std::time::Instant::now);
    let wait = if first || started { header_timeout } else { idle_timeout };
    let mut deadline = clock.after(wait);
    let (mut info, action) = loop {
        if !c.buf.is_empty() {
            if !started {
                started = true;
                deadline = clock.after(header_timeout);
                c.rec.start = Some(std::time::Instant::now());
            }
            c.out.clear();
            c.out.reserve(2048);
            snap = w.snapshot();
            let peer = (c.client_ip.as_bytes(), c.peer.ip());
            let tls = (c.entry, c.tls.as_deref());
            if let Some(p) = prepare(&snap, &w.log, &c.buf, &mut c.out, peer, tls, &mut c.rec)? {
                break p;
            }
            if c.buf.len() >= snap.settings.max_header_bytes {
                return Err(ProxyError::downstream(Kind::HeadersTooLarge, "header section too large"));
            }
        }
        if c.buf.capacity() - c.buf.len() < 512 {
            c.buf.reserve(8 * 1024);
        }
        let (r, b) = clock.read(&c.io, std::mem::take(&mut c.buf), deadline).await;
        c.buf = b;
        match r {
            Ok(0) if !started => return Ok(false),
            Ok(0) => return Err(ProxyError::downstream(Kind::Closed, "client closed inside the request head")),
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::TimedOut && started => {
                return Err(ProxyError::io(
                    Kind::RequestTimeout,
                    Side::Downstream,
                    "request head not received in time",
                    e,
                ))
            }
            Err(_) => return Ok(false),
        }
    };
    c.requests += 1;
    if w.draining() || c.requests >= snap.settings.keepalive_requests {
        // The response says `Connection: close`, and the connection ends after it.
        info.keep_alive = false;
    }
    bump(&w.stats.requests);
    c.rec.bytes_in = info.head_len as u64;
    let overridden;
    let tls;
    let settings = &snap.settings;

    c.granted = None;
    let (backend, auth, pick, reply, _permit, pace, accepts, mirror) = match action {
        Action::Forward {
            backend,
            settings: route_settings,
            tls: to_tls,
            auth,
            pick,
            reply,
            permit,
            pace,
            accepts,
            mirror,
        } => {
            overridden = route_settings;
            tls = to_tls;
            (backend, auth, pick, reply, permit, pace, accepts, mirror)
        }
        Action::Answer(code) => {
            c.rec.status = code;
            let close = !info.keep_alive || info.framing != Framing::None;
            c.buf.drain(..info.head_len);
            c.response_started = true;
            write_client(clock, c, settings.idle_timeout).await?;
            if close {
                linger(clock, &c.io, std::mem::take(&mut c.buf)).await;
            }
            return Ok(!close);
        }
        Action::Respond(e) => return respond(w, clock, c, &info, &e, settings).await,
    };
    if let Some(call) = auth {
        match external::check(w, &snap, clock, &overridden, *call).await {
            Ok(granted) => {
                granted.apply_to_head(&mut c.out);
                c.granted = Some(Box::new(granted));
            }
            Err(e) => return respond(w, clock, c, &info, &e, settings).await,
        }
    }

    // --- the part of the body that came with the head ---
    let mut body = Body::new(info.framing);
    let head_len = info.head_len;
    let taken = {
        let Conn { buf, out, .. } = &mut *c;
        body.forward(&buf[head_len..], out)
            .map_err(|_| ProxyError::downstream(Kind::BadRequest, "invalid chunked body"))?
    };
    c.buf.drain(..head_len + taken);
    c.rec.bytes_in += taken as u64;
    let settings = &overridden;
    if body.over_limit(settings.max_body_bytes) {
        return Err(ProxyError::downstream(Kind::BodyTooLarge, "request body too large"));
    }

    let reply = reply.as_deref();
    let to = exchange::To {
        snap: &snap,
        settings,
        backend,
        tls: tls.as_deref(),
        pick,
        reply,
        pace,
        accepts,
        mirror: &mirror,
    };
    match forward(w, c, &to, &info, body).await {
        Err(e) if matches!(e.kind, Kind::Intercepted(_)) => {
            let code = e.status().map_or(502, |s| s.0);
            let page = error_page::page(w, &snap, clock, &c.rec, code, true).await;
            let page = page.unwrap_or_else(|| error_page::Page::plain(code));
            let close = !info.keep_alive;
            c.out.clear();
            write_page(&mut c.out, &page, &[], close, info.is_head, Stamp::of(&snap, settings, c.entry.tls));
            c.response_started = true;
            c.rec.status = page.status;
            write_client(clock, c, settings.idle_timeout).await?;
            Ok(!close)
        }
        r => r,
    }
}

/// Answers a well-framed request from the proxy (a refusal: 403, 404, 503...). The body, if
/// any, is not read: the connection closes after the answer.
async fn respond<I: Io, S: Stream>(
    w: &Worker<I>,
    clock: Clock<'_>,
    c: &mut Conn<S>,
    info: &RequestInfo,
    e: &ProxyError,
    settings: &crate::snapshot::Settings,
) -> Result<bool, ProxyError> {
    let close = !info.keep_alive || info.framing != Framing::None;
    c.rec.status = e.status().map_or(500, |s| s.0);
    c.buf.drain(..info.head_len);
    c.out.clear();
    let snap = w.snapshot();
    match error_page::page(w, &snap, clock, &c.rec, c.rec.status, false).await {
        Some(page) => {
            c.rec.status = page.status;
            write_page(&mut c.out, &page, &e.fields, close, info.is_head, Stamp::of(&snap, settings, c.entry.tls));
        }
        None => write_error_response(&mut c.out, e, close, Stamp::of(&snap, settings, c.entry.tls)),
    }
    bump(&w.stats.responses_proxy_error);
    c.response_started = true;
    write_client(clock, c, settings.idle_timeout).await?;
    if info.framing != Framing::None {
        // An unread body follows: drain it before closing, or the close resets.
        linger(clock, &c.io, std::mem::take(&mut c.buf)).await;
    }
    Ok(!close)
}

/// Parses and checks a request head in `buf`, routes it, and writes the upstream head into
/// `out`. `Ok(None)`: the head is not complete yet.
fn prepare(
    snap: &Snapshot,
    log: &WorkerLog,
    buf: &[u8],
    out: &mut Vec<u8>,
    (peer_ip, peer): (&[u8], std::net::IpAddr),
    (entry, tls): (Entry, Option<&TlsInfo>),
    rec: &mut Record,
) -> Result<Option<(RequestInfo, Action)>, ProxyError> {
    let s = &snap.settings;
    let https = entry.tls;
    // Uninitialised header slots: no 4 KiB of zeroing per parse.
    let mut headers = [const { MaybeUninit::<httparse::Header>::uninit() }; MAX_HEADERS];
    let mut req = httparse::Request::new(&mut []);
    let slots = &mut headers[..s.max_headers.clamp(1, MAX_HEADERS)];
    let head_len = match req.parse_with_uninit_headers(buf, slots) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(httparse::Error::TooManyHeaders) => {
            return Err(ProxyError::downstream(Kind::HeadersTooLarge, "too many header fields"))
        }
        Err(httparse::Error::Version) => {
            return Err(ProxyError::downstream(Kind::BadRequest, "unsupported HTTP version"))
        }
        Err(_) => return Err(ProxyError::downstream(Kind::BadRequest, "malformed request head")),
    };
    // httparse accepts a bare LF as a line end (RFC 9112 §2.2 allows it); a proxy that
    // re-frames with CRLF must not let `a\nX-Injected: b` become a second field: reject.
    if codec::has_bare_lf(&buf[..head_len]) {
        return Err(ProxyError::downstream(Kind::BadRequest, "bare LF in the request head"));
    }
    if head_len > s.max_header_bytes {
        return Err(ProxyError::downstream(Kind::HeadersTooLarge, "header section too large"));
    }
    let method = req.method.unwrap_or("");
    // Before the target is parsed: CONNECT's authority-form target is not a parse error.
    pipeline::check_method(method)?;
    let target = codec::parse_target(method, req.path.unwrap_or(""))?;
    let mut host: &[u8] = b"";
    let info = codec::analyze_request(&req, head_len, &target, &mut host)?;
    let header = snap.edge.forwarded_for_header.as_str();
    let named = req.headers.iter().filter(|h| codec::eq_ignore_case(h.name.as_bytes(), header));
    let client = snap.edge.real_client(peer, snap.settings.accept_proxy, named.map(|h| h.value));
    let real = (client != peer.to_canonical()).then(|| ClientIp::new(SocketAddr::new(client, 0)));
    let client_ip = real.as_ref().map_or(peer_ip, ClientIp::as_bytes);
    let generated_id = capture(log, &req, &info, host, client_ip, rec);
    let fields: &[httparse::Header<'_>] = req.headers;
    let view = pipeline::Request {
        method,
        authority: host,
        path_and_query: target.path_and_query,
        length: info.length,
        entry,
        http2: false,
        http10: info.http10,
        client,
        user_agent: (!rec.user_agent.is_empty()).then_some(&rec.user_agent[..]),
        referer: (!rec.referer.is_empty()).then_some(&rec.referer[..]),
        authorization: codec::only_field(&req, "authorization"),
        tls,
        fields: &fields,
    };
    let forward = match pipeline::decide(snap, &view, &mut rec.key) {
        Ok(Decision::Forward(f)) => f,
        Ok(Decision::Answer { code, fields }) => {
            write_answer(out, code, &fields, Stamp::of(snap, s, https), &info);
            return Ok(Some((info, Action::Answer(code))));
        }
        Ok(Decision::Text { code, body }) => {
            let close = !info.keep_alive || info.framing != Framing::None;
            let mut page = error_page::Page::plain(code);
            page.body = body.as_bytes().to_vec();
            write_page(out, &page, &[], close, info.is_head, Stamp::of(snap, s, https));
            return Ok(Some((info, Action::Answer(code))));
        }
        // A refusal of a well-framed request is answered in place.
        Err(e) if !e.kind.closes() => return Ok(Some((info, Action::Respond(e)))),
        Err(e) => return Err(e),
    };
    let fwd = Forwarded {
        peer_ip,
        client_ip,
        scheme: if https { "https" } else { "http" },
        authority: host,
        trust: snap.edge.forwarded_from(peer),
        full: snap.edge.compute_full_forwarded_for,
        request_id: generated_id.then_some(&rec.request_id[..]),
    };
    let underscores = s.underscores_in_headers;
    let upstream_host = forward.vhost.map_or(host, str::as_bytes);
    match &forward.target {
        Some(p) => {
            let target = codec::Target { authority: target.authority, path_and_query: p.as_bytes() };
            codec::write_request_head(out, &req, &info, &target, upstream_host, &fwd, underscores);
        }
        None => codec::write_request_head(out, &req, &info, &target, upstream_host, &fwd, underscores),
    }
    if let Some(fields) = &forward.fields {
        fields.apply_to_head(out);
    }
    let tls = match forward.exchange {
        pipeline::Exchange::Http1 { tls } => tls.cloned(),
        pipeline::Exchange::Grpc { .. } => None,
    };
    let auth = match forward.external {
        None => None,
        Some(spec) => {
            let fields: Vec<(&[u8], &[u8])> = req.headers.iter().map(|h| (h.name.as_bytes(), h.value)).collect();
            let request_id = &rec.request_id;
            let origin = external::Origin { req: &view, fields: &fields, client_ip, peer_ip, request_id };
            match external::prepare(snap, spec, &origin) {
                Ok(call) => Some(Box::new(call)),
                Err(e) => return Ok(Some((info, Action::Respond(e)))),
            }
        }
    };
    let pipeline::Forward { backend, settings, pick, reply, permit, pace, accepts, mirror, .. } = forward;
    Ok(Some((info, Action::Forward { backend, settings, tls, auth, pick, reply, permit, pace, accepts, mirror })))
}

/// Copies what the access log says about a request into `rec`, and takes its request id from
/// X-Request-ID or makes one. True when the id was made here (it is then sent upstream).
fn capture(
    log: &WorkerLog,
    req: &httparse::Request<'_, '_>,
    info: &RequestInfo,
    host: &[u8],
    client_ip: &[u8],
    rec: &mut Record,
) -> bool {
    rec.client.clear();
    rec.client.extend_from_slice(client_ip);
    rec.method.extend_from_slice(req.method.unwrap_or("").as_bytes());
    rec.uri.extend_from_slice(req.path.unwrap_or("").as_bytes());
    rec.host.extend_from_slice(host);
    rec.protocol = if info.http10 { "HTTP/1.0" } else { "HTTP/1.1" };
    let mut has_id = false;
    for h in req.headers.iter() {
        let n = h.name.as_bytes();
        let field = match n.len() {
            7 if codec::eq_ignore_case(n, "referer") => &mut rec.referer,
            10 if codec::eq_ignore_case(n, "user-agent") => &mut rec.user_agent,
            12 if codec::eq_ignore_case(n, "x-request-id") && !has_id => {
                has_id = true;
                &mut rec.request_id
            }
            _ => continue,
        };
        field.clear();
        field.extend_from_slice(h.value);
    }
    if !has_id {
        log.request_id(&mut rec.request_id);
    }
    !has_id
}

/// An answer from the proxy with no body: a redirect (`ssl-redirect`), a CORS preflight (204,
/// which has no Content-Length: RFC 9110 §8.6).
fn write_answer(out: &mut Vec<u8>, code: u16, fields: &[(&str, Vec<u8>)], stamp: Stamp<'_>, info: &RequestInfo) {
    use std::io::Write;
    let reason = match code {
        204 => "No Content",
        301 => "Moved Permanently",
        302 => "Found",
        307 => "Temporary Redirect",
        _ => "Permanent Redirect",
    };
    let close = !info.keep_alive || info.framing != Framing::None;
    let _ = write!(out, "HTTP/1.1 {code} {reason}\r\nServer: {}\r\n", stamp.server);
    out.extend_from_slice(stamp.fields);
    for (name, value) in fields {
        codec::write_field(out, name.as_bytes(), &[value]);
    }
    if code != 204 {
        out.extend_from_slice(b"Content-Length: 0\r\n");
    }
    if close {
        out.extend_from_slice(b"Connection: close\r\n");
    }
    out.extend_from_slice(b"\r\n");
}

/// An error page (`custom-http-errors`) with the error's own fields (a 401's challenge).
fn write_page(
    out: &mut Vec<u8>,
    page: &error_page::Page,
    extra: &[(&'static str, Vec<u8>)],
    close: bool,
    head_only: bool,
    stamp: Stamp<'_>,
) {
    use std::io::Write;
    let reason = crate::proxy::error::reason_phrase(page.status);
    let _ = write!(out, "HTTP/1.1 {} {reason}\r\n", page.status);
    if !page.fields.iter().any(|(n, _)| n == "server") {
        let _ = write!(out, "Server: {}\r\n", stamp.server);
    }
    out.extend_from_slice(stamp.fields);
    for (name, value) in page.fields.iter().map(|(n, v)| (n.as_str(), v)).chain(extra.iter().map(|(n, v)| (*n, v))) {
        codec::write_field(out, name.as_bytes(), &[value]);
    }
    let bodiless = head_only || matches!(page.status, 204 | 304);
    if page.status != 204 {
        let _ = write!(out, "Content-Length: {}\r\n", page.body.len());
    }
    if close {
        out.extend_from_slice(b"Connection: close\r\n");
    }
    out.extend_from_slice(b"\r\n");
    if !bodiless {
        out.extend_from_slice(&page.body);
    }
}

async fn write_client<S: Stream>(
    clock: Clock<'_>,
    c: &mut Conn<S>,
    limit: std::time::Duration,
) -> Result<(), ProxyError> {
    c.rec.bytes_out += c.out.len() as u64;
    let (r, out) = clock.write_for(&c.io, std::mem::take(&mut c.out), limit).await;
    c.out = out;
    r.map_err(|e| ProxyError::io(Kind::Closed, Side::Downstream, "writing to the client", e))
}
