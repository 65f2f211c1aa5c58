//! The upstream side of an HTTP/1.1 exchange: picking an endpoint, reusing or opening a
//! connection, and reading the response head.

use std::net::SocketAddr;

use crate::proxy::error::{Kind, ProxyError, Side};
use crate::proxy::{bump, Worker};
use crate::runtime::deadline::Deadline;
use crate::runtime::io::Clock;
use crate::runtime::{Io, Stream};
use crate::snapshot::{BackendId, Snapshot};
use crate::tls::TlsStream;

/// A connection to an upstream: plain, or TLS for `backend-protocol: HTTPS` (boxed: pooled
/// plain connections should not carry a TLS session's size).
pub enum UpStream<S> {
    Plain(S),
    Tls(Box<TlsStream<S>>),
}

impl<S: Stream> Stream for UpStream<S> {
    async fn read(&self, buf: Vec<u8>) -> (std::io::Result<usize>, Vec<u8>) {
        match self {
            UpStream::Plain(s) => s.read(buf).await,
            UpStream::Tls(t) => t.read(buf).await,
        }
    }

    async fn write_all(&self, buf: Vec<u8>) -> (std::io::Result<()>, Vec<u8>) {
        match self {
            UpStream::Plain(s) => s.write_all(buf).await,
            UpStream::Tls(t) => t.write_all(buf).await,
        }
    }

    fn shutdown(&self, how: std::net::Shutdown) {
        match self {
            UpStream::Plain(s) => s.shutdown(how),
            UpStream::Tls(t) => t.shutdown(how),
        }
    }

    fn fd(&self) -> std::os::fd::RawFd {
        match self {
            UpStream::Plain(s) => s.fd(),
            UpStream::Tls(t) => t.fd(),
        }
    }
}

/// An upstream connection and where it goes.
pub struct Upstream<S> {
    pub io: S,
    pub addr: SocketAddr,
    /// Came from the pool: a failure before any response byte may just mean the upstream
    /// closed it while idle.
    pub reused: bool,
}

/// A connection to the next endpoint in round-robin order: pooled when `pooled` allows and one
/// is idle, else new. A refused or failed connect moves on to the next endpoint; every
/// endpoint is tried at most once.
pub async fn acquire<I: Io>(
    w: &Worker<I>,
    snap: &Snapshot,
    backend: BackendId,
    pooled: bool,
    connect_timeout: std::time::Duration,
    tls: bool,
) -> Result<Upstream<UpStream<I::Stream>>, ProxyError> {
    let endpoints = &snap.backend(backend).endpoints;
    let mut last = None;
    for attempt in 0..endpoints.len() {
        let addr = endpoints[w.balancer.borrow_mut().pick(snap, backend, attempt)];
        if pooled {
            // An endpoint's pool holds one kind; one of the other kind is dropped.
            if let Some(io) = w.pools.take(addr, w.deadlines.now()).filter(|io| matches!(io, UpStream::Tls(_)) == tls) {
                return Ok(Upstream { io, addr, reused: true });
            }
        }
        if attempt > 0 {
            bump(&w.stats.upstream_retries);
        }
        bump(&w.stats.upstream_connects);
        let connected = match I::connect(addr, connect_timeout).await {
            Ok(io) if tls => tls_connect::<I>(w, io, addr, connect_timeout).await,
            Ok(io) => Ok(UpStream::Plain(io)),
            Err(e) => Err(e),
        };
        match connected {
            Ok(io) => return Ok(Upstream { io, addr, reused: false }),
            Err(e) => {
                bump(&w.stats.upstream_connect_errors);
                w.balancer.borrow_mut().failed(addr);
                tracing::debug!(worker = w.index, %addr, error = %e, "upstream connect failed; trying next endpoint");
                last = Some(e);
            }
        }
    }
    let e = last.unwrap_or_else(|| std::io::Error::other("no endpoints"));
    Err(ProxyError::io(Kind::UpstreamConnect, Side::Upstream, "no endpoint accepted the connection", e))
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

/// TLS over a fresh upstream connection (ALPN http/1.1), within the connect timeout.
async fn tls_connect<I: Io>(
    w: &Worker<I>,
    io: I::Stream,
    addr: SocketAddr,
    timeout: std::time::Duration,
) -> std::io::Result<UpStream<I::Stream>> {
    use futures::future::{select, Either};
    let name = rustls_pki_types::ServerName::IpAddress(addr.ip().into());
    let s = TlsStream::client(io, w.upstream_tls_h1.clone(), name)?;
    let done = match select(std::pin::pin!(s.handshake()), std::pin::pin!(I::sleep(timeout))).await {
        Either::Left((r, _)) => r,
        Either::Right(_) => Err(crate::runtime::io::timed_out("TLS handshake with the upstream timed out")),
    };
    done.map(|()| UpStream::Tls(Box::new(s)))
}
