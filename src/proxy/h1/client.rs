//! The upstream side of an HTTP/1.1 exchange: picking an endpoint, reusing or opening a
//! connection, and reading the response head.

use std::net::SocketAddr;

use crate::proxy::error::{Kind, ProxyError, Side};
use crate::proxy::{bump, Worker};
use crate::runtime::deadline::Deadline;
use crate::runtime::io::Clock;
use crate::runtime::{Io, Stream};
use crate::snapshot::upstream_tls::UpstreamTls;
use crate::snapshot::{BackendId, Snapshot};
use crate::tls::TlsStream;

/// A connection to an upstream: plain, or TLS for `backend-protocol: HTTPS` (boxed: pooled
/// plain connections should not carry a TLS session's size).
pub enum Transport<S> {
    Plain(S),
    Tls(Box<TlsStream<S>>),
}

impl<S: Stream> Stream for Transport<S> {
    async fn read(&self, buf: Vec<u8>) -> (std::io::Result<usize>, Vec<u8>) {
        match self {
            Transport::Plain(s) => s.read(buf).await,
            Transport::Tls(t) => t.read(buf).await,
        }
    }

    async fn write_all(&self, buf: Vec<u8>) -> (std::io::Result<()>, Vec<u8>) {
        match self {
            Transport::Plain(s) => s.write_all(buf).await,
            Transport::Tls(t) => t.write_all(buf).await,
        }
    }

    fn shutdown(&self, how: std::net::Shutdown) {
        match self {
            Transport::Plain(s) => s.shutdown(how),
            Transport::Tls(t) => t.shutdown(how),
        }
    }

    fn fd(&self) -> std::os::fd::RawFd {
        match self {
            Transport::Plain(s) => s.fd(),
            Transport::Tls(t) => t.fd(),
        }
    }
}

/// An upstream connection and where it goes.
pub struct UpstreamConn<S> {
    pub io: S,
    pub addr: SocketAddr,
    /// The TLS profile it was made with (0: plain), for the pool it goes back to.
    pub tls_id: u64,
    /// Came from the pool: a failure before any response byte may just mean the upstream
    /// closed it while idle.
    pub reused: bool,
}

/// A connection to an endpoint not tried yet for this request: the pick's first choice, then
/// round robin; pooled when `pooled` allows and one is idle, else new. A failed connect moves
/// on to another endpoint while `proxy-next-upstream` allows (`error` or `timeout`, within
/// its tries and time). Every endpoint tried is added to `tried`.
pub async fn acquire<I: Io>(
    w: &Worker<I>,
    to: &Attempt<'_>,
    pooled: bool,
    tried: &mut Tried,
    started: std::time::Instant,
) -> Result<UpstreamConn<Transport<I::Stream>>, ProxyError> {
    let next = to.settings.next_upstream;
    let mut last = None;
    while let Some(addr) = untried(w, to, tried) {
        if !tried.is_empty() {
            bump(&w.stats.upstream_retries);
        }
        tried.push(addr);
        let key = crate::upstream::pool_key(addr, to.tls);
        if pooled {
            if let Some(io) = w.pools.take(key, w.deadlines.now()) {
                return Ok(UpstreamConn { io, addr, tls_id: key.1, reused: true });
            }
        }
        bump(&w.stats.upstream_connects);
        let timeout = to.settings.connect_timeout;
        let connected = match (I::connect(addr, timeout).await, to.tls) {
            (Ok(io), Some(profile)) => {
                let backend = to.snap.backend(to.backend);
                tls_connect::<I>(w, io, (profile, backend, addr), timeout, false)
                    .await
                    .map(|s| Transport::Tls(Box::new(s)))
            }
            (Ok(io), None) => Ok(Transport::Plain(io)),
            (Err(e), _) => Err(e),
        };
        match connected {
            Ok(io) => return Ok(UpstreamConn { io, addr, tls_id: key.1, reused: false }),
            Err(e) => {
                bump(&w.stats.upstream_connect_errors);
                w.balancer.borrow_mut().failed(addr);
                tracing::debug!(worker = w.index, %addr, error = %e, "upstream connect failed");
                let timed_out = e.kind() == std::io::ErrorKind::TimedOut;
                let moves_on = if timed_out { next.when.timeout } else { next.when.error };
                let kind = if timed_out { Kind::UpstreamTimeout } else { Kind::UpstreamConnect };
                last = Some(ProxyError::io(kind, Side::Upstream, "no endpoint accepted the connection", e));
                if !moves_on || !next.allows_another(tried.len(), started) {
                    break;
                }
            }
        }
    }
    Err(last.unwrap_or_else(|| {
        let e = std::io::Error::other("no endpoints");
        ProxyError::io(Kind::UpstreamConnect, Side::Upstream, "no endpoint accepted the connection", e)
    }))
}

/// The next endpoint to try: the pick's choice first, then round robin, skipping those
/// `tried` already. None: every endpoint was tried.
fn untried<I: Io>(w: &Worker<I>, to: &Attempt<'_>, tried: &Tried) -> Option<SocketAddr> {
    let endpoints = &to.snap.backend(to.backend).endpoints;
    let mut b = w.balancer.borrow_mut();
    (0..endpoints.len())
        .map(|i| endpoints[b.pick(to.snap, to.backend, tried.len() + i, to.pick)])
        .find(|a| !tried.contains(a))
}

/// The endpoints a request was tried on, in order; no allocation for the first one, which
/// is usually the only one.
#[derive(Default)]
pub struct Tried {
    first: Option<SocketAddr>,
    more: Vec<SocketAddr>,
}

impl Tried {
    pub fn len(&self) -> usize {
        self.first.is_some() as usize + self.more.len()
    }

    pub fn is_empty(&self) -> bool {
        self.first.is_none()
    }

    fn contains(&self, a: &SocketAddr) -> bool {
        self.first.as_ref() == Some(a) || self.more.contains(a)
    }

    fn push(&mut self, a: SocketAddr) {
        match self.first {
            None => self.first = Some(a),
            Some(_) => self.more.push(a),
        }
    }

    fn pop(&mut self) {
        if self.more.pop().is_none() {
            self.first = None;
        }
    }
}

/// Reads more of a response head from the upstream into `buf` (the caller parses it and calls
/// again while it is incomplete). Returns `Ok(false)` if the upstream closed or reset before
/// sending anything.
pub async fn read_head_bytes<S: crate::runtime::Stream>(
    up: &S,
    buf: &mut Vec<u8>,
    clock: Clock<'_>,
    deadline: Deadline,
    max: usize,
) -> Result<bool, ProxyError> {
    if buf.len() >= max {
        return Err(ProxyError::upstream(Kind::UpstreamProtocol, "response head too large"));
    }
    if buf.capacity() - buf.len() < 4096 {
        buf.reserve(16 * 1024);
    }
    let (r, b) = clock.read(up, std::mem::take(buf), deadline).await;
    *buf = b;
    match r {
        Ok(0) if buf.is_empty() => Ok(false),
        Ok(0) => Err(ProxyError::upstream(Kind::UpstreamProtocol, "upstream closed inside the response head")),
        Ok(_) => Ok(true),
        Err(e) if e.kind() == std::io::ErrorKind::TimedOut => {
            Err(ProxyError::io(Kind::UpstreamTimeout, Side::Upstream, "waiting for the response", e))
        }
        Err(_) if buf.is_empty() => Ok(false),
        Err(e) => Err(ProxyError::io(Kind::UpstreamProtocol, Side::Upstream, "reading the response", e)),
    }
}

/// The status of the response starting in `buf`, reading on until its status line is there
/// (an upstream may send the head in pieces). `None`: not a status line.
pub(crate) async fn read_status<S: crate::runtime::Stream>(
    up: &S,
    buf: &mut Vec<u8>,
    clock: Clock<'_>,
    deadline: Deadline,
) -> Result<Option<u16>, ProxyError> {
    while buf.len() < 12 && !buf.contains(&b'\n') {
        if !read_head_bytes(up, buf, clock, deadline, MAX_RESPONSE_HEAD).await? {
            break;
        }
    }
    Ok(status_of(buf))
}

/// TLS over a fresh upstream connection to `addr`, an endpoint of `backend`, by the route's
/// profile (`h2`: ALPN h2 for gRPC, else http/1.1), within the connect timeout. A handshake
/// that fails (a certificate that does not verify, say) is logged with the reason.
pub(crate) async fn tls_connect<I: Io>(
    w: &Worker<I>,
    io: I::Stream,
    (profile, backend, addr): (&UpstreamTls, &crate::snapshot::Backend, SocketAddr),
    timeout: std::time::Duration,
    h2: bool,
) -> std::io::Result<TlsStream<I::Stream>> {
    use futures::future::{select, Either};
    use rustls_pki_types::ServerName;
    let name = match profile.names_the_server() {
        true => {
            let name = profile.name_for(backend);
            ServerName::try_from(name.clone()).map_err(|_| {
                let why = format!("{name:?} is not a name to verify the upstream's certificate against");
                std::io::Error::new(std::io::ErrorKind::InvalidInput, why)
            })?
        }
        false => ServerName::IpAddress(addr.ip().into()),
    };
    let s = TlsStream::client(io, w.upstream_tls(profile, h2)?, name)?;
    let done = match select(std::pin::pin!(s.handshake()), std::pin::pin!(I::sleep(timeout))).await {
        Either::Left((r, _)) => r,
        Either::Right(_) => Err(crate::runtime::io::timed_out("TLS handshake with the upstream timed out")),
    };
    if let Err(e) = &done {
        if e.kind() != std::io::ErrorKind::TimedOut {
            tracing::warn!(worker = w.index, backend = %backend.name, %addr, error = %e, "TLS handshake with the upstream failed");
        }
    }
    done.map(|()| s)
}

/// The request side of an exchange, for [`send`]: what is left of the body after the head.
pub(crate) trait RequestBody {
    /// The whole request is in the head buffer: it can be sent again on another connection.
    fn is_done(&self) -> bool;

    /// Sends the rest of the body to the upstream.
    async fn send_rest<U: Stream>(&mut self, clock: Clock<'_>, up: &U) -> Result<(), ProxyError>;
}

/// No body: a request whole in its head (the proxy's own subrequests).
pub(crate) struct NoBody;

impl RequestBody for NoBody {
    fn is_done(&self) -> bool {
        true
    }

    async fn send_rest<U: Stream>(&mut self, _: Clock<'_>, _: &U) -> Result<(), ProxyError> {
        Ok(())
    }
}

/// Where a request goes and how it is sent, for [`send`].
pub(crate) struct Attempt<'a> {
    pub snap: &'a Snapshot,
    pub backend: BackendId,
    /// Over TLS, with this profile (`backend-protocol: HTTPS`, `proxy-ssl-*`).
    pub tls: Option<&'a UpstreamTls>,
    pub settings: &'a crate::snapshot::Settings,
    /// The request's method is idempotent (RFC 9110 §9.2.2).
    pub idempotent: bool,
    /// How the endpoint is chosen.
    pub pick: crate::upstream::Pick,
}

/// Largest response head the status line is looked for in.
const MAX_RESPONSE_HEAD: usize = 64 * 1024;

/// Sends a request (its head in `head`, returned with the connection, then the body) to the
/// backend until the first bytes of a response are in `ubuf`.
///
/// A pooled connection the upstream had closed fails on the write or answers nothing: the
/// request is sent again on a fresh connection if it is whole in `head` and either nothing
/// was sent or the method is idempotent (that is the pool's doing, not the endpoint's). Other
/// failures move on to another endpoint as `proxy-next-upstream` says, and only for a request
/// whole in `head` whose method is idempotent, or with `non_idempotent`: an error or a
/// timeout before the response head, a malformed head, or one of the named statuses (whose
/// response is dropped; the last endpoint's answer is the client's, whatever its status).
/// `on_connect` hears each endpoint tried.
pub(crate) async fn send<I: Io, B: RequestBody>(
    w: &Worker<I>,
    clock: Clock<'_>,
    to: &Attempt<'_>,
    mut head: Vec<u8>,
    body: &mut B,
    ubuf: &mut Vec<u8>,
    mut on_connect: impl FnMut(SocketAddr),
) -> Result<(UpstreamConn<Transport<I::Stream>>, Vec<u8>), ProxyError> {
    let settings = to.settings;
    let next = settings.next_upstream;
    let replayable = body.is_done();
    let may_resend = replayable && (to.idempotent || next.when.non_idempotent);
    let started = std::time::Instant::now();
    let endpoints = to.snap.backend(to.backend).endpoints.len();
    let mut tried = Tried::default();
    let mut pooled = true;
    loop {
        let up = acquire(w, to, pooled, &mut tried, started).await?;
        on_connect(up.addr);
        let (r, h) = clock.write_for(&up.io, head, settings.upstream_send_timeout).await;
        head = h;
        let stale = |sent: bool| up.reused && replayable && (to.idempotent || !sent);
        let another =
            |tried: &Tried| may_resend && tried.len() < endpoints && next.allows_another(tried.len(), started);
        let failed = match r {
            Ok(()) => {
                if !body.is_done() {
                    body.send_rest(clock, &up.io).await?;
                }
                ubuf.clear();
                let deadline = clock.after(settings.upstream_timeout);
                match read_head_bytes(&up.io, ubuf, clock, deadline, settings.max_response_head).await {
                    Ok(true) if next.when.invalid_header && malformed(ubuf) && another(&tried) => {
                        tracing::debug!(worker = w.index, addr = %up.addr, "proxy-next-upstream: invalid header");
                        ubuf.clear();
                        continue;
                    }
                    Ok(true) if next.when.statuses == 0 => return Ok((up, head)),
                    Ok(true) => match read_status(&up.io, ubuf, clock, deadline).await? {
                        Some(code) if next.when.on_status(code) && another(&tried) => {
                            tracing::debug!(worker = w.index, addr = %up.addr, code, "proxy-next-upstream: status");
                            ubuf.clear();
                            continue;
                        }
                        _ => return Ok((up, head)),
                    },
                    Ok(false) if stale(true) => None,
                    Ok(false) => Some(ProxyError::upstream(
                        Kind::UpstreamProtocol,
                        "upstream closed the connection without a response",
                    )),
                    Err(e) => Some(e),
                }
            }
            Err(_) if stale(false) => None,
            Err(e) => Some(ProxyError::io(Kind::UpstreamConnect, Side::Upstream, "sending the request", e)),
        };
        match failed {
            // The pool's connection had gone stale: the same request on a fresh connection,
            // which the endpoint has not failed.
            None => {
                tried.pop();
                bump(&w.stats.upstream_retries);
                pooled = false;
            }
            Some(e) => {
                let moves_on = if e.kind == Kind::UpstreamTimeout { next.when.timeout } else { next.when.error };
                if !moves_on || !another(&tried) {
                    return Err(e);
                }
                tracing::debug!(worker = w.index, addr = %up.addr, error = %e, "proxy-next-upstream");
                pooled = true;
            }
        }
    }
}

/// Whether the start of a response in `buf` is already not a valid response head.
fn malformed(buf: &[u8]) -> bool {
    use std::mem::MaybeUninit;
    let mut headers = [const { MaybeUninit::<httparse::Header>::uninit() }; super::server::MAX_HEADERS];
    let mut resp = httparse::Response::new(&mut []);
    httparse::ParserConfig::default().parse_response_with_uninit_headers(&mut resp, buf, &mut headers).is_err()
}

/// The status of a response whose status line is in `buf` (`HTTP/1.x NNN`).
fn status_of(buf: &[u8]) -> Option<u16> {
    let line = buf.get(..12)?;
    if !line.starts_with(b"HTTP/1.") || line[8] != b' ' {
        return None;
    }
    std::str::from_utf8(&line[9..12]).ok()?.parse().ok()
}

/// Parses the response head at the start of `ubuf`, reading more while it is incomplete, and
/// hands it to `f` with what the proxy needs to know of it. Interim heads (1xx) are handed
/// over the same way; the caller drains them (`info.head_len`) and asks again.
pub(crate) async fn response_head<U: Stream, T>(
    up: &U,
    ubuf: &mut Vec<u8>,
    clock: Clock<'_>,
    settings: &crate::snapshot::Settings,
    is_head: bool,
    f: impl FnOnce(&httparse::Response<'_, '_>, &super::codec::ResponseInfo) -> Result<T, ProxyError>,
) -> Result<T, ProxyError> {
    let mut f = Some(f);
    loop {
        if let Some(t) = parse_head(ubuf, is_head, settings.max_response_head, &mut f)? {
            return Ok(t);
        }
        let deadline = clock.after(settings.upstream_timeout);
        if !read_head_bytes(up, ubuf, clock, deadline, settings.max_response_head).await? {
            return Err(ProxyError::upstream(Kind::UpstreamProtocol, "upstream closed inside the response head"));
        }
    }
}

/// One parse of [`response_head`]: `f`'s answer once the head is complete (None: not yet).
/// Kept out of the async function so the parser's header slots (4 KiB) never live across an
/// await, which would put them in every request's future.
fn parse_head<T>(
    ubuf: &[u8],
    is_head: bool,
    max: usize,
    f: &mut Option<impl FnOnce(&httparse::Response<'_, '_>, &super::codec::ResponseInfo) -> Result<T, ProxyError>>,
) -> Result<Option<T>, ProxyError> {
    use std::mem::MaybeUninit;
    let mut headers = [const { MaybeUninit::<httparse::Header>::uninit() }; super::server::MAX_HEADERS];
    let mut resp = httparse::Response::new(&mut []);
    match httparse::ParserConfig::default().parse_response_with_uninit_headers(&mut resp, ubuf, &mut headers) {
        // `proxy-buffer-size`, however the head arrived (one read may bring it all).
        Ok(httparse::Status::Complete(n)) if n > max => {
            Err(ProxyError::upstream(Kind::UpstreamProtocol, "response head too large (proxy-buffer-size)"))
        }
        Ok(httparse::Status::Complete(n)) => {
            let info = super::codec::analyze_response(&resp, n, is_head)?;
            let f = f.take().expect("called until it answers");
            f(&resp, &info).map(Some)
        }
        Ok(httparse::Status::Partial) => Ok(None),
        Err(e) => {
            let head = String::from_utf8_lossy(&ubuf[..ubuf.len().min(256)]);
            tracing::debug!(error = %e, %head, "malformed response head");
            Err(ProxyError::upstream(Kind::UpstreamProtocol, "malformed response head"))
        }
    }
}

/// Reads the next bytes of a response body into `ubuf` (cleared first; at least `chunk` of
/// room). `Ok(false)`: the upstream closed, which ends a body delimited by the close.
pub(crate) async fn read_body<U: Stream>(
    up: &U,
    ubuf: &mut Vec<u8>,
    clock: Clock<'_>,
    timeout: std::time::Duration,
    body: &super::body::Body,
    chunk: usize,
) -> Result<bool, ProxyError> {
    ubuf.clear();
    if ubuf.capacity() < chunk {
        ubuf.reserve(chunk);
    }
    let (r, b) = clock.read_for(up, std::mem::take(ubuf), timeout).await;
    *ubuf = b;
    match r {
        Ok(0) if matches!(body, super::body::Body::UntilClose) => Ok(false),
        Ok(0) => Err(ProxyError::upstream(Kind::Closed, "upstream closed inside the response body")),
        Ok(_) => Ok(true),
        Err(e) => Err(ProxyError::io(Kind::Closed, Side::Upstream, "reading the response body", e)),
    }
}

/// The end of an exchange: the connection goes back to the worker's pool when the response
/// allows another request on it and nothing is left unread or unsent.
pub(crate) fn release<I: Io>(
    w: &Worker<I>,
    up: UpstreamConn<Transport<I::Stream>>,
    reusable: bool,
    settings: &crate::snapshot::Settings,
) {
    if reusable {
        let expires = w.deadlines.after(settings.upstream_idle_timeout);
        w.pools.put((up.addr, up.tls_id), up.io, expires, settings.upstream_keepalive_connections);
    }
}
