//! The upstream side of an HTTP/1.1 exchange: picking an endpoint, reusing or opening a
//! connection, and reading the response head.

use std::net::SocketAddr;

use crate::proxy::error::{Kind, ProxyError, Side};
use crate::proxy::{bump, Worker};
use crate::runtime::deadline::Deadline;
use crate::runtime::io::Clock;
use crate::runtime::Io;
use crate::snapshot::{BackendId, Snapshot};

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
) -> Result<Upstream<I::Stream>, ProxyError> {
    let endpoints = &snap.backend(backend).endpoints;
    let mut last = None;
    for attempt in 0..endpoints.len() {
        let addr = endpoints[w.balancer.borrow_mut().next(snap, backend)];
        if pooled {
            if let Some(io) = w.pools.take(addr, w.deadlines.now()) {
                return Ok(Upstream { io, addr, reused: true });
            }
        }
        if attempt > 0 {
            bump(&w.stats.upstream_retries);
        }
        bump(&w.stats.upstream_connects);
        match I::connect(addr, connect_timeout).await {
            Ok(io) => return Ok(Upstream { io, addr, reused: false }),
            Err(e) => {
                bump(&w.stats.upstream_connect_errors);
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
