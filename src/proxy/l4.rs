//! The L4 load balancer on a worker: listeners that follow the snapshot's L4 table (opened
//! and closed on the worker's tick), and per connection: an optional PROXY header from the
//! client, an endpoint (round robin or least connections; one that refused or timed out is
//! skipped for a while), an optional PROXY header to it, then bytes both ways with half-close
//! passed on, until both sides are done or the connection stays silent past its idle timeout.
//!
//! A configuration change never touches an established connection: it holds its own sockets
//! and reads nothing from later snapshots.

use std::cell::{Cell, RefCell};
use std::net::{Shutdown, SocketAddr};
use std::os::fd::RawFd;
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::future::{select, Either};
use rustc_hash::{FxHashMap, FxHashSet};

use super::{proxy_protocol, Worker};
use crate::metrics::worker::L4Counters;
use crate::runtime::{Io, Stream};
use crate::snapshot::l4::{L4Balance, L4Port, L4Table, ProxyVersion};

/// How long an endpoint that refused or timed out is skipped.
const DOWN_FOR: Duration = Duration::from_secs(10);
/// A client's PROXY header must arrive within this.
const PROXY_HEADER_TIMEOUT: Duration = Duration::from_secs(5);
/// A direction's copy buffer: it starts at SMALL_BUF and doubles, up to BUF, each time a read
/// fills it, so an idle or chatty connection holds 2 x 1 KiB rather than 2 x 64 KiB (measured:
/// 130 KiB of RSS per idle connection with 64 KiB from the start, 4.3 KiB now).
const BUF: usize = 64 * 1024;
const SMALL_BUF: usize = 1024;
/// A direction that has moved this much switches to splice (a pipe per direction: only bulk
/// transfers get one, so idle and chatty connections cost no extra descriptors).
const SPLICE_AFTER: u64 = 256 * 1024;
/// Pipes a worker may have at once (two descriptors each); beyond, bytes are copied.
const MAX_PIPES: usize = 1024;

/// L4 connections open per port, over all workers: what the per-Service connection limit
/// counts. The one piece of mutable state the workers share: a lock per connection opened and
/// closed, uncontended next to the TCP work around it.
#[derive(Debug, Default)]
pub struct OpenConnections(std::sync::Mutex<FxHashMap<u16, usize>>);

impl OpenConnections {
    /// Counts a new connection on `port` unless `max` are open already (0: no limit). False:
    /// refused, not counted.
    fn try_open(&self, port: u16, max: usize) -> bool {
        let mut open = self.0.lock().unwrap_or_else(|e| e.into_inner());
        let n = open.entry(port).or_default();
        if max != 0 && *n >= max {
            return false;
        }
        *n += 1;
        true
    }

    /// A connection counted by [`OpenConnections::try_open`] closed.
    fn close(&self, port: u16) {
        if let Some(n) = self.0.lock().unwrap_or_else(|e| e.into_inner()).get_mut(&port) {
            *n -= 1;
        }
    }
}

/// What a listener the table asks for serves: a forwarded port, or a Gateway listener's own
/// port (HTTP, or TLS: HTTPS and passthrough).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) enum Serves {
    Forward,
    Http { tls: bool },
}

/// One worker's L4 state.
#[derive(Default)]
pub(crate) struct L4State {
    /// The table the listeners were last opened for.
    synced: RefCell<Option<Arc<L4Table>>>,
    /// Open listeners by port and use.
    listeners: RefCell<FxHashMap<(u16, Serves), RawFd>>,
    /// Ports whose bind failed (warned once per table).
    failed: RefCell<FxHashSet<u16>>,
    rr: RefCell<FxHashMap<u16, usize>>,
    /// Connections open per endpoint from this worker (least connections).
    per_endpoint: RefCell<FxHashMap<SocketAddr, usize>>,
    down: RefCell<FxHashMap<SocketAddr, Instant>>,
    /// Splice pipes in use.
    pipes: Cell<usize>,
}

impl<I: Io> Worker<I> {
    /// Opens and closes listeners to match the live L4 table, forwarded ports and Gateway
    /// listeners' own ports (on every tick; a pointer compare when nothing changed).
    pub(crate) fn sync_l4(self: &Rc<Self>) {
        let snap = self.snapshot();
        if self.draining() {
            return;
        }
        let same = self.l4.synced.borrow().as_ref().is_some_and(|t| Arc::ptr_eq(t, &snap.l4));
        if same {
            return;
        }
        *self.l4.synced.borrow_mut() = Some(snap.l4.clone());
        self.l4.failed.borrow_mut().clear();
        let forwarded = snap.l4.ports.iter().map(|p| ((p.port, Serves::Forward), p.name.as_str()));
        let gateway = snap.l4.http.iter().map(|&(port, tls)| ((port, Serves::Http { tls }), "Gateway listener"));
        let wanted: Vec<((u16, Serves), &str)> = forwarded.chain(gateway).collect();
        let gone: Vec<((u16, Serves), RawFd)> = self
            .l4
            .listeners
            .borrow()
            .iter()
            .filter(|(k, _)| !wanted.iter().any(|(w, _)| w == *k))
            .map(|(k, fd)| (*k, *fd))
            .collect();
        for (key, fd) in gone {
            self.l4.listeners.borrow_mut().remove(&key);
            crate::runtime::stop_listening(fd);
            tracing::info!(worker = self.index, port = key.0, "port closed");
        }
        for (key, name) in wanted {
            if self.l4.listeners.borrow().contains_key(&key) {
                continue;
            }
            let (port, serves) = key;
            let addr = SocketAddr::new(snap.l4.address, port);
            let opened = crate::runtime::bind_reuseport(addr, 1, Duration::ZERO)
                .and_then(|mut v| v.pop().ok_or_else(|| std::io::Error::other("no listener")))
                .and_then(|l| {
                    use std::os::fd::AsRawFd;
                    let fd = l.as_raw_fd();
                    I::listener(l).map(|l| (fd, l))
                });
            match opened {
                Ok((fd, listener)) => {
                    self.l4.listeners.borrow_mut().insert(key, fd);
                    tracing::info!(worker = self.index, port, to = %name, "port open");
                    let w = self.clone();
                    match serves {
                        Serves::Forward => I::spawn(async move { accept_loop(w, listener, port, fd).await }),
                        Serves::Http { tls } => {
                            let entry = crate::snapshot::gateway::Entry { tls, port, main: false };
                            I::spawn(super::accept_loop(w, listener, entry, fd))
                        }
                    }
                }
                Err(e) => {
                    if self.l4.failed.borrow_mut().insert(port) {
                        tracing::error!(worker = self.index, port, to = %name, error = %e, "cannot listen");
                    }
                }
            }
        }
    }

    /// Whether `fd` is still the listener of `key` (a listener the table no longer asks for
    /// is closed, and its accept loop ends).
    pub(crate) fn listening(&self, key: (u16, Serves), fd: RawFd) -> bool {
        self.l4.listeners.borrow().get(&key) == Some(&fd)
    }

    /// The drain: stop the L4 listeners too.
    pub(crate) fn stop_l4(&self) {
        for (_, fd) in self.l4.listeners.borrow_mut().drain() {
            crate::runtime::stop_listening(fd);
        }
    }

    fn l4_count(&self, name: &str, f: impl FnOnce(&mut L4Counters)) {
        let mut t = self.stats.l4.lock().unwrap_or_else(|e| e.into_inner());
        match t.get_mut(name) {
            Some(c) => f(c),
            None => {
                let mut c = L4Counters::default();
                f(&mut c);
                t.insert(name.into(), c);
            }
        }
    }
}

async fn accept_loop<I: Io>(w: Rc<Worker<I>>, listener: I::Listener, port: u16, fd: RawFd) {
    loop {
        let (stream, peer) = match I::accept(&listener).await {
            Ok(x) => x,
            Err(e) => {
                // Closed by sync_l4 (port gone) or the drain: this listener's fd is no longer
                // the registered one.
                if !w.listening((port, Serves::Forward), fd) {
                    return;
                }
                tracing::warn!(worker = w.index, port, error = %e, "L4 accept failed");
                I::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let w = w.clone();
        I::spawn(async move { serve(&w, stream, peer, port).await });
    }
}

/// One forwarded connection, start to end.
async fn serve<I: Io>(w: &Worker<I>, client: I::Stream, peer: SocketAddr, port: u16) {
    let snap = w.snapshot();
    let Some(p) = snap.l4.get(port) else { return };
    if !w.l4_open.try_open(port, p.max_connections) {
        w.l4_count(&p.name, |c| c.rejected += 1);
        tracing::debug!(worker = w.index, service = %p.name, %peer, "L4 connection limit reached; closed");
        return;
    }
    w.l4_count(&p.name, |c| {
        c.active += 1;
        c.total += 1;
    });
    let moved = forward(w, p, &client, peer).await;
    w.l4_count(&p.name, |c| {
        c.active -= 1;
        c.bytes_in += moved.up;
        c.bytes_out += moved.down;
        c.bytes_spliced += moved.spliced;
    });
    w.l4_open.close(port);
}

/// Bytes one connection moved.
#[derive(Default)]
struct Moved {
    /// Client to backend.
    up: u64,
    down: u64,
    /// Of both, by splice.
    spliced: u64,
}

async fn forward<I: Io>(w: &Worker<I>, p: &L4Port, client: &I::Stream, peer: SocketAddr) -> Moved {
    let mut first = Vec::with_capacity(SMALL_BUF);
    let mut source = peer;
    if p.accept_proxy {
        match read_proxy_header(w, client, &mut first).await {
            Ok(Some(s)) => source = s,
            Ok(None) => {}
            Err(why) => {
                w.l4_count(&p.name, |c| c.rejected += 1);
                tracing::debug!(worker = w.index, service = %p.name, %peer, why, "bad PROXY header; closed");
                return Moved::default();
            }
        }
    }
    // A TCPRoute's weights: this connection's share (one whose backend does not resolve is
    // refused, as the specification asks).
    let (name, endpoints) = match p.shares.is_empty() {
        true => (&p.name, &p.endpoints),
        false => match p.share().filter(|s| !s.name.is_empty()) {
            Some(s) => (&s.name, &s.endpoints),
            None => {
                w.l4_count(&p.name, |c| c.rejected += 1);
                tracing::debug!(worker = w.index, service = %p.name, %peer, "TCPRoute share does not resolve; closed");
                return Moved::default();
            }
        },
    };
    let Some((up, addr)) = connect(w, name, p.port, endpoints, p.balance).await else {
        w.l4_count(&p.name, |c| c.rejected += 1);
        return Moved::default();
    };
    relay::<I>(w, client, (up, addr), (first, source, p.send_proxy), p.idle_timeout).await
}

/// Bytes both ways between `client` and `up` (the endpoint at `addr`, counted as one of its
/// connections while this lasts): `first` goes to the backend before the client's bytes,
/// after a PROXY header naming `source` when `proxy` asks for one.
async fn relay<I: Io>(
    w: &Worker<I>,
    client: &I::Stream,
    (up, addr): (I::Stream, SocketAddr),
    (first, source, proxy): (Vec<u8>, SocketAddr, Option<ProxyVersion>),
    idle: Duration,
) -> Moved {
    let head = match proxy {
        None => first,
        Some(v) => {
            let dst = client.local_addr().unwrap_or(source);
            let mut h = Vec::with_capacity(64 + first.len());
            match v {
                ProxyVersion::V1 => proxy_protocol::write_v1(&mut h, source, dst),
                ProxyVersion::V2 => proxy_protocol::write_v2(&mut h, source, dst),
            }
            h.extend_from_slice(&first);
            h
        }
    };
    *w.l4.per_endpoint.borrow_mut().entry(addr).or_default() += 1;
    let moved = pipe_both::<I>(client, &up, head, idle, &w.l4.pipes).await;
    if let Some(n) = w.l4.per_endpoint.borrow_mut().get_mut(&addr) {
        *n -= 1;
    }
    moved
}

/// How long a passed-through connection may stay silent both ways (nginx's stream
/// `proxy_timeout` default).
const PASSTHROUGH_IDLE: Duration = Duration::from_secs(600);

/// `ssl-passthrough`: a TLS connection whose ClientHello (`hello`, read but not yet sent on)
/// names a passed-through host, to an endpoint of `backend` untouched, as an L4 connection
/// (counted under the backend's name, spliced once bulk flows). `proxy`: a PROXY header
/// naming `source` (the client, or who the incoming PROXY header named) goes first.
pub(crate) async fn pass_through<I: Io>(
    w: &Worker<I>,
    client: &I::Stream,
    (hello, source): (Vec<u8>, SocketAddr),
    backend: &crate::snapshot::Backend,
    proxy: Option<ProxyVersion>,
) {
    let name = backend.name.as_str();
    w.l4_count(name, |c| c.total += 1);
    let Some((up, addr)) = connect(w, name, 0, &backend.endpoints, L4Balance::RoundRobin).await else {
        w.l4_count(name, |c| c.rejected += 1);
        tracing::debug!(worker = w.index, backend = name, %source, "ssl-passthrough: no endpoint accepted; closed");
        return;
    };
    w.l4_count(name, |c| c.active += 1);
    let moved = relay::<I>(w, client, (up, addr), (hello, source, proxy), PASSTHROUGH_IDLE).await;
    w.l4_count(name, |c| {
        c.active -= 1;
        c.bytes_in += moved.up;
        c.bytes_out += moved.down;
        c.bytes_spliced += moved.spliced;
    });
}

/// Reads the client's PROXY header into `buf`, leaving any bytes after it there. The
/// client's address, or None when the header names none (v1 UNKNOWN, v2 LOCAL).
pub(crate) async fn read_proxy_header<I: Io>(
    w: &Worker<I>,
    client: &I::Stream,
    buf: &mut Vec<u8>,
) -> Result<Option<SocketAddr>, &'static str> {
    let watch = w.deadlines.register();
    let clock = crate::runtime::io::Clock { deadlines: &w.deadlines, watch: &watch };
    let deadline = clock.after(PROXY_HEADER_TIMEOUT);
    let r = loop {
        match proxy_protocol::parse(buf) {
            Ok(Some(h)) => {
                buf.drain(..h.len);
                break Ok(h.source);
            }
            Err(e) => break Err(e),
            Ok(None) => {}
        }
        if buf.capacity() - buf.len() < 512 {
            buf.reserve(SMALL_BUF);
        }
        let (r, b) = clock.read(client, std::mem::take(buf), deadline).await;
        *buf = b;
        match r {
            Ok(0) => break Err("closed before a PROXY header"),
            Ok(_) => {}
            Err(_) => break Err("no PROXY header in time"),
        }
    };
    w.deadlines.unregister(&watch);
    r
}

/// An endpoint of `endpoints` (those of `name`, its round robin kept under `key`) that
/// accepts: the first by the policy, then the others in turn, skipping those marked down
/// unless every one is.
async fn connect<I: Io>(
    w: &Worker<I>,
    name: &str,
    key: u16,
    endpoints: &[SocketAddr],
    balance: L4Balance,
) -> Option<(I::Stream, SocketAddr)> {
    let n = endpoints.len();
    if n == 0 {
        return None;
    }
    let now = Instant::now();
    let start = match balance {
        L4Balance::RoundRobin => {
            let mut rr = w.l4.rr.borrow_mut();
            let next = rr.entry(key).or_default();
            *next = next.wrapping_add(1);
            *next % n
        }
        L4Balance::LeastConnections => {
            let per = w.l4.per_endpoint.borrow();
            let down = w.l4.down.borrow();
            (0..n)
                .min_by_key(|&i| {
                    let e = &endpoints[i];
                    (down.get(e).is_some_and(|t| *t > now), per.get(e).copied().unwrap_or(0))
                })
                .unwrap_or(0)
        }
    };
    let order: Vec<SocketAddr> = (0..n).map(|i| endpoints[(start + i) % n]).collect();
    let is_down = |e: &SocketAddr| w.l4.down.borrow().get(e).is_some_and(|t| *t > now);
    // Endpoints up first (in order), then the ones marked down as a last resort.
    let tries: Vec<SocketAddr> =
        order.iter().filter(|e| !is_down(e)).chain(order.iter().filter(|e| is_down(e))).copied().collect();
    let timeout = w.snapshot().settings.connect_timeout;
    for addr in tries {
        match I::connect(addr, timeout).await {
            Ok(s) => {
                w.l4.down.borrow_mut().remove(&addr);
                return Some((s, addr));
            }
            Err(e) => {
                let newly = w.l4.down.borrow_mut().insert(addr, Instant::now() + DOWN_FOR).is_none_or(|t| t <= now);
                w.l4_count(name, |c| {
                    c.connect_failures += 1;
                    c.endpoint_down += u64::from(newly);
                });
                tracing::debug!(worker = w.index, service = %name, %addr, error = %e, "L4 connect failed; next endpoint");
            }
        }
    }
    None
}

/// Both directions until each has seen its end (a FIN is passed on as a shutdown of writing,
/// and the other direction keeps flowing), or until nothing moved either way for `idle`.
/// `first`: bytes for the backend before the client's (a PROXY header, bytes read with one).
async fn pipe_both<I: Io>(
    client: &I::Stream,
    up: &I::Stream,
    first: Vec<u8>,
    idle: Duration,
    pipes: &Cell<usize>,
) -> Moved {
    let last = Cell::new(Instant::now());
    let (to_up, to_client, spliced) = (Cell::new(0u64), Cell::new(0u64), Cell::new(0u64));
    let both = futures::future::join(
        pipe(client, up, first, &last, &to_up, &spliced, pipes),
        pipe(up, client, Vec::new(), &last, &to_client, &spliced, pipes),
    );
    let watchdog = async {
        loop {
            let since = last.get().elapsed();
            if since >= idle {
                return;
            }
            I::sleep(idle - since).await;
        }
    };
    if let Either::Right(_) = select(std::pin::pin!(both), std::pin::pin!(watchdog)).await {
        // Silent too long: both sockets shut, the pipes' reads end, the sockets close.
        client.shutdown(Shutdown::Both);
        up.shutdown(Shutdown::Both);
    }
    Moved { up: to_up.get(), down: to_client.get(), spliced: spliced.get() }
}

/// How a splice run ended.
enum Spliced {
    /// EOF or a read error: the direction is done.
    Done,
    /// The backend does not splice (nothing was moved): copy instead.
    Unsupported,
    /// Writing failed: bytes in the pipe are lost, the direction is broken.
    Failed,
}

/// `from` -> `to` through `pipe` by splice until EOF.
async fn splice_run<A: Stream, B: Stream>(
    from: &A,
    to: &B,
    pipe: &crate::runtime::io::Pipe,
    last: &Cell<Instant>,
    moved: &Cell<u64>,
    spliced: &Cell<u64>,
) -> Spliced {
    loop {
        let n = match from.splice_in(pipe, crate::runtime::io::PIPE_CAPACITY).await {
            None => return Spliced::Unsupported,
            Some(Ok(0)) | Some(Err(_)) => return Spliced::Done,
            Some(Ok(n)) => n,
        };
        last.set(Instant::now());
        let mut left = n;
        while left > 0 {
            match to.splice_out(pipe, left).await {
                Some(Ok(m)) if m > 0 => left -= m,
                _ => return Spliced::Failed,
            }
        }
        moved.set(moved.get() + n as u64);
        spliced.set(spliced.get() + n as u64);
        last.set(Instant::now());
    }
}

/// `from` -> `to` until EOF or an error, then a shutdown of writing on `to`. Copies through
/// `buf`; once [`SPLICE_AFTER`] bytes have moved, splices through a pipe where the backend
/// can (and the worker has a pipe to spare).
async fn pipe<A: Stream, B: Stream>(
    from: &A,
    to: &B,
    mut buf: Vec<u8>,
    last: &Cell<Instant>,
    moved: &Cell<u64>,
    spliced: &Cell<u64>,
    pipes: &Cell<usize>,
) {
    let mut tried_splice = false;
    let mut size = SMALL_BUF;
    if !buf.is_empty() {
        let (r, b) = to.write_all(buf).await;
        buf = b;
        if r.is_err() {
            from.shutdown(Shutdown::Read);
            to.shutdown(Shutdown::Write);
            return;
        }
    }
    loop {
        if !tried_splice && moved.get() >= SPLICE_AFTER && pipes.get() < MAX_PIPES {
            tried_splice = true;
            if let Ok(p) = crate::runtime::io::Pipe::new() {
                pipes.set(pipes.get() + 1);
                let r = splice_run(from, to, &p, last, moved, spliced).await;
                pipes.set(pipes.get() - 1);
                match r {
                    Spliced::Unsupported => {}
                    Spliced::Done => break,
                    Spliced::Failed => {
                        from.shutdown(Shutdown::Read);
                        break;
                    }
                }
            }
        }
        buf.clear();
        if buf.capacity() < size {
            buf.reserve_exact(size);
        }
        let (r, b) = from.read(buf).await;
        buf = b;
        let n = match r {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        if n >= size {
            size = (size * 2).min(BUF);
        }
        last.set(Instant::now());
        let (r, b) = to.write_all(buf).await;
        buf = b;
        if r.is_err() {
            from.shutdown(Shutdown::Read);
            break;
        }
        moved.set(moved.get() + n as u64);
        last.set(Instant::now());
    }
    to.shutdown(Shutdown::Write);
}
