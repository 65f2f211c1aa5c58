//! Per-connection entry on the worker threads: the accept loop, the per-worker context, and
//! HTTP/1 proxying ([`h1`]). Written once against [`crate::runtime::Io`].

pub mod affinity;
mod bridge;
mod client_cert;
mod compress;
pub(crate) mod error;
mod error_page;
mod external;
pub mod fields;
mod gateway;
mod grpc;
pub mod h1;
mod h2;
pub mod l4;
mod limits;
mod mirror;
pub mod path;
pub(crate) mod pipeline;
pub(crate) mod proxy_protocol;
pub mod sni;
mod tunnel;

use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use arc_swap::{ArcSwap, Cache};

use crate::access_log::RouteKey;
use crate::metrics::worker::observe;
pub(crate) use crate::metrics::worker::{add, bump, drop_one, WorkerStats, H2, H2C, HTTP1, HTTPS1};
use crate::runtime::deadline::{Deadlines, TICK};
use crate::runtime::Io;
use crate::snapshot::gateway::Entry;
use crate::snapshot::Snapshot;
use crate::tls::TlsStream;
use crate::upstream::{Balancer, Pools};

/// Counts a connection under its protocol for as long as it is served.
struct ProtocolGuard<'a>(&'a WorkerStats, usize);

impl<'a> ProtocolGuard<'a> {
    fn new(stats: &'a WorkerStats, protocol: usize) -> Self {
        bump(&stats.protocol_total[protocol]);
        bump(&stats.protocol_active[protocol]);
        ProtocolGuard(stats, protocol)
    }
}

impl Drop for ProtocolGuard<'_> {
    fn drop(&mut self) {
        drop_one(&self.0.protocol_active[self.1]);
    }
}

impl<I: Io> Worker<I> {
    /// The client configuration of a TLS profile (`h2`: offering h2 for gRPC, else
    /// http/1.1), built on first use. Err: what rustls refused in the profile.
    pub(crate) fn upstream_tls(
        &self,
        profile: &crate::snapshot::upstream_tls::UpstreamTls,
        h2: bool,
    ) -> std::io::Result<Arc<rustls::ClientConfig>> {
        let mut configs = self.upstream_tls.borrow_mut();
        if let Some(c) = configs.get(&(profile.id, h2)) {
            return Ok(c.clone());
        }
        let alpn: &[&[u8]] = if h2 { &[b"h2"] } else { &[b"http/1.1"] };
        let config = crate::tls::upstream_client_config(profile, alpn).map_err(std::io::Error::other)?;
        // Profiles change with Secrets and annotations: the ones no longer used are dropped
        // now and then rather than tracked.
        if configs.len() >= 256 {
            configs.clear();
        }
        configs.insert((profile.id, h2), config.clone());
        Ok(config)
    }

    /// The end of a request: its metrics, and its access-log line when the log is on.
    pub(crate) fn finish(&self, rec: &crate::access_log::Record) {
        let Some(t0) = rec.start else { return };
        let elapsed = t0.elapsed();
        let s = &self.stats;
        s.record(&rec.key, rec.status, elapsed);
        add(&s.bytes_in, rec.bytes_in);
        add(&s.bytes_out, rec.bytes_out);
        let snap = self.snapshot();
        if let Some(u) = rec.upstream_time {
            observe(&s.upstream_latency, &s.upstream_latency_sum_us, u);
            if let (Some(addr), crate::snapshot::LoadBalance::Ewma) = (rec.upstream, snap.settings.load_balance) {
                self.balancer.borrow_mut().observe(addr, u);
            }
        }
        if snap.log.enabled() && rec.key.logged() {
            self.log.write(&snap.log, rec, elapsed);
        }
    }
}

/// A worker-local handle on the published snapshot: cloning it per request bumps a plain
/// counter on this thread instead of the atomic one every worker shares.
#[allow(clippy::redundant_allocation)]
pub type LocalSnapshot = Rc<Arc<Snapshot>>;

/// The snapshot as this worker sees it: arc-swap's cache (a pointer compare per request), and
/// a worker-local `Rc` so requests do not touch the shared reference count.
struct SnapshotCache {
    cache: Cache<&'static ArcSwap<Snapshot>, Arc<Snapshot>>,
    current: LocalSnapshot,
}

impl SnapshotCache {
    fn get(&mut self) -> LocalSnapshot {
        let latest = self.cache.load();
        if !Arc::ptr_eq(latest, &self.current) {
            self.current = Rc::new(latest.clone());
        }
        self.current.clone()
    }
}

/// Everything one worker owns.
pub struct Worker<I: Io> {
    snapshots: RefCell<SnapshotCache>,
    pub(crate) pools: Pools<h1::client::Transport<I::Stream>>,
    pub(crate) balancer: RefCell<Balancer>,
    active: Cell<usize>,
    pub(crate) deadlines: Deadlines,
    pub(crate) stats: Arc<WorkerStats>,
    /// This worker's access-log buffer and request-id generator.
    pub(crate) log: crate::access_log::WorkerLog,
    pub(crate) index: usize,
    /// Listeners and balancing state of the L4 load balancer.
    pub(crate) l4: l4::L4State,
    /// HTTP/2 connections to gRPC endpoints, shared by this worker's streams.
    /// Keyed by endpoint and TLS profile ([`crate::upstream::pool_key`]).
    #[allow(clippy::type_complexity)]
    pub(crate) h2_upstreams:
        RefCell<rustc_hash::FxHashMap<(std::net::SocketAddr, u64), ::h2::client::SendRequest<bytes::Bytes>>>,
    /// TLS to upstreams: the client configuration of each TLS profile this worker used, by
    /// profile id and whether it offers h2 (GRPCS) or http/1.1 (HTTPS).
    upstream_tls: RefCell<rustc_hash::FxHashMap<(u64, bool), Arc<rustls::ClientConfig>>>,
    published: &'static crate::Published,
    pub(crate) l4_open: &'static l4::OpenConnections,
    /// The drain reached this worker (it saw it on a tick).
    draining: Cell<bool>,
    /// Bytes of request bodies reserved for buffering (`proxy-request-buffering`).
    buffered_bodies: Rc<Cell<u64>>,
    /// Bytes of HTTP/2 responses held while their streams wait for the client's credit.
    held_responses: Rc<Cell<u64>>,
    /// This worker's share of each process-wide memory budget ([`budget_share`]).
    budget: u64,
    /// Wakes the tasks waiting for the drain (HTTP/2 connections, to send GOAWAY); a
    /// waiter that goes away unregisters itself.
    drain_notify: tokio::sync::Notify,
    /// The plain and TLS listeners, stopped when the drain starts.
    listener_fds: [std::os::fd::RawFd; 2],
    /// The TLS configurations, for Gateway HTTPS and TLS listeners' own ports too.
    tls: Arc<crate::tls::ServerConfigs>,
    /// Itself, for tasks a request starts that outlive it (RequestMirror).
    me: std::rc::Weak<Worker<I>>,
    /// RequestMirror copies in flight ([`mirror::MAX_IN_FLIGHT`]).
    mirrors: Cell<usize>,
}

impl<I: Io> Worker<I> {
    pub(crate) fn snapshot(&self) -> LocalSnapshot {
        self.snapshots.borrow_mut().get()
    }

    /// Reserves `n` bytes of this worker's share of [`BUFFERED_BODIES_PER_PROCESS`] for
    /// buffering a request body; the reservation ends when the returned guard drops. None: the
    /// budget is spent (the body is then streamed, under the minimum rate, instead of buffered).
    pub(crate) fn reserve_body_buffer(&self, n: u64) -> Option<Reserved> {
        Reserved::take(&self.buffered_bodies, n, self.budget)
    }

    /// Reserves `n` bytes of this worker's share of [`HELD_RESPONSES_PER_PROCESS`] for a chunk of an
    /// HTTP/2 response on its way to the client (held until the client grants the credit to
    /// send it). None: the budget is spent, and the stream is reset instead of waiting, so
    /// slow readers cannot add up past it.
    pub(crate) fn reserve_response_chunk(&self, n: u64) -> Option<Reserved> {
        Reserved::take(&self.held_responses, n, self.budget)
    }

    /// Draining: no new connections, no new keep-alive requests.
    pub(crate) fn draining(&self) -> bool {
        self.draining.get()
    }

    /// Completes when the drain starts (at once if it has).
    pub(crate) async fn drain_started(&self) {
        let notified = std::pin::pin!(self.drain_notify.notified());
        if !self.draining.get() {
            notified.await;
        }
    }

    /// The drain reaches this worker: stop both listeners (their accept loops end), close
    /// the connections waiting idle, and wake the HTTP/2 connections so they send GOAWAY.
    /// Connections in the middle of a request finish it and close.
    fn begin_drain(&self) {
        self.draining.set(true);
        for fd in self.listener_fds {
            crate::runtime::stop_listening(fd);
        }
        // Forwarded ports and Gateway listeners' own ports.
        self.stop_l4();
        self.deadlines.close_idle();
        self.drain_notify.notify_waiters();
    }
}

/// Bytes of request bodies all connections may hold in buffers at once (each worker gets an
/// equal share).
pub const BUFFERED_BODIES_PER_PROCESS: u64 = 128 << 20;

/// A worker's share of a process-wide budget (both budgets are the same size): at least 4 MiB,
/// so a process with many workers still buffers a few bodies per worker.
pub fn budget_share(workers: usize) -> u64 {
    (BUFFERED_BODIES_PER_PROCESS / workers.max(1) as u64).max(4 << 20)
}

/// Bytes of HTTP/2 response chunks all streams may hold at once while they wait for
/// flow-control credit (each holds at most one 16 KiB read, and a client connection at most
/// [`h2::MAX_UPSTREAM_PER_CONNECTION`] such streams); each worker gets an equal share.
pub const HELD_RESPONSES_PER_PROCESS: u64 = BUFFERED_BODIES_PER_PROCESS;

/// A share of one of a worker's memory budgets, given back on drop.
pub(crate) struct Reserved {
    cell: Rc<Cell<u64>>,
    n: u64,
}

impl Reserved {
    fn take(cell: &Rc<Cell<u64>>, n: u64, limit: u64) -> Option<Reserved> {
        let used = cell.get();
        (used + n <= limit).then(|| {
            cell.set(used + n);
            Reserved { cell: cell.clone(), n }
        })
    }
}

impl Drop for Reserved {
    fn drop(&mut self) {
        self.cell.set(self.cell.get() - self.n);
    }
}

/// Shared, read-only context every worker gets at start.
pub struct WorkerSpec {
    pub index: usize,
    /// How many workers there are (per-Service L4 connection limits are shared out).
    pub workers: usize,
    pub cpu: Option<usize>,
    pub listener: std::net::TcpListener,
    /// The HTTPS listener and the TLS configuration every worker shares.
    pub tls_listener: std::net::TcpListener,
    pub tls: Arc<crate::tls::ServerConfigs>,
    pub published: &'static crate::Published,
    /// L4 connections open, counted over all workers.
    pub l4_open: &'static l4::OpenConnections,
    pub backend: crate::runtime::Backend,
    pub stats: Arc<crate::proxy::WorkerStats>,
    pub log: crate::access_log::WorkerLog,
}
/// Runs one worker until the process exits: accept on both listeners, then one task per
/// connection; after a drain starts, only the open connections.
pub async fn run_worker<I: Io>(spec: WorkerSpec) {
    use std::os::fd::AsRawFd;
    let listener_fds = [spec.listener.as_raw_fd(), spec.tls_listener.as_raw_fd()];
    let port_of = |l: &std::net::TcpListener| l.local_addr().map(|a| a.port()).unwrap_or(0);
    let plain_entry = Entry { tls: false, port: port_of(&spec.listener), main: true };
    let tls_entry = Entry { tls: true, port: port_of(&spec.tls_listener), main: true };
    let (plain, tls) = match (I::listener(spec.listener), I::listener(spec.tls_listener)) {
        (Ok(p), Ok(t)) => (p, t),
        (Err(e), _) | (_, Err(e)) => {
            tracing::error!(worker = spec.index, error = %e, "cannot register listener");
            return;
        }
    };
    let swap = spec.published.swap();
    let current = Rc::new(swap.load_full());
    let worker = Rc::new_cyclic(|me| Worker::<I> {
        snapshots: RefCell::new(SnapshotCache { cache: Cache::new(swap), current }),
        pools: Pools::default(),
        balancer: RefCell::default(),
        active: Cell::new(0),
        deadlines: Deadlines::default(),
        stats: spec.stats,
        log: spec.log,
        index: spec.index,
        l4: l4::L4State::default(),
        h2_upstreams: RefCell::default(),
        upstream_tls: RefCell::default(),
        published: spec.published,
        l4_open: spec.l4_open,
        draining: Cell::new(false),
        buffered_bodies: Rc::new(Cell::new(0)),
        held_responses: Rc::new(Cell::new(0)),
        budget: budget_share(spec.workers),
        drain_notify: tokio::sync::Notify::new(),
        listener_fds,
        tls: spec.tls,
        me: me.clone(),
        mirrors: Cell::new(0),
    });
    spawn_sweeper(worker.clone());
    spawn_ticker(worker.clone());
    let w = worker.clone();
    I::spawn(accept_loop(w, tls, tls_entry, listener_fds[1]));
    accept_loop(worker.clone(), plain, plain_entry, listener_fds[0]).await;
    // Draining: the connections still open finish on their own (the main thread exits the
    // process when all are closed, or at the drain timeout).
    std::future::pending::<()>().await;
}

/// Accepts on one listener (`fd`) until the drain, or, for a Gateway listener's own port,
/// until the table no longer has it; over TLS, each connection starts with a handshake
/// (bounded by the header timeout).
async fn accept_loop<I: Io>(worker: Rc<Worker<I>>, listener: I::Listener, entry: Entry, fd: std::os::fd::RawFd) {
    loop {
        let (stream, peer) = match I::accept(&listener).await {
            Ok(x) => x,
            // The drain stopped the listener.
            Err(_) if worker.draining() => return,
            Err(_) if !entry.main && !worker.listening((entry.port, l4::Serves::Http { tls: entry.tls }), fd) => return,
            Err(e) => {
                // EMFILE and friends: back off instead of spinning.
                tracing::warn!(worker = worker.index, error = %e, "accept failed");
                I::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let cap = worker.snapshot().settings.max_connections_per_worker;
        if worker.active.get() >= cap {
            tracing::debug!(worker = worker.index, %peer, "connection cap reached; closing");
            drop(stream);
            continue;
        }
        let w = worker.clone();
        w.active.set(w.active.get() + 1);
        bump(&w.stats.connections_total);
        bump(&w.stats.connections_active);
        I::spawn(connection(w, stream, peer, entry));
    }
}

/// One accepted connection, from its first byte to its close. Every stage is boxed to its own
/// size, so a connection holds only the state of the stage it is in: an idle HTTP/1.1
/// keep-alive connection holds its small loop, not room for a TLS handshake or an HTTP/2
/// session (this task's future would otherwise be the largest of them all, ~7.5 KiB). The
/// arguments are captured, not rebound, so the task holds them once.
fn connection<I: Io>(
    w: Rc<Worker<I>>,
    stream: I::Stream,
    peer: std::net::SocketAddr,
    entry: Entry,
) -> impl std::future::Future<Output = ()> {
    let (mut peer, mut initial) = (peer, Vec::new());
    async move {
        'conn: {
            // Behind a load balancer speaking the PROXY protocol: its header names the
            // client, and what followed it is the start of the connection's own bytes.
            if w.snapshot().settings.accept_proxy {
                match Box::pin(l4::read_proxy_header(&w, &stream, &mut initial)).await {
                    Ok(source) => peer = source.unwrap_or(peer),
                    Err(why) => {
                        bump(&w.stats.proxy_header_errors);
                        tracing::debug!(worker = w.index, %peer, why, "bad PROXY header; closed");
                        break 'conn;
                    }
                }
            }
            if !entry.tls {
                // h2c with prior knowledge, or HTTP/1.1: the first bytes tell.
                let first = if initial.is_empty() {
                    Box::pin(first_bytes(&w, &stream)).await
                } else {
                    Some(std::mem::take(&mut initial))
                };
                let Some(first) = first else { break 'conn };
                if h2::is_preface(&first) {
                    let _p = ProtocolGuard::new(&w.stats, H2C);
                    Box::pin(h2::serve(w.clone(), stream, first, peer, (entry, None))).await;
                } else {
                    let _p = ProtocolGuard::new(&w.stats, HTTP1);
                    Box::pin(h1::server::serve(&w, stream, first, peer, (entry, None))).await;
                }
                break 'conn;
            }
            // Its own box: a TLS session is large, and a plain connection should not make
            // room for one.
            Box::pin(secure(&w, stream, peer, entry, std::mem::take(&mut initial))).await;
        }
        w.closed();
    }
}

/// A TLS connection: the handshake, then HTTP/2 or HTTP/1.1 by ALPN.
async fn secure<I: Io>(
    w: &Rc<Worker<I>>,
    stream: I::Stream,
    peer: std::net::SocketAddr,
    entry: Entry,
    mut initial: Vec<u8>,
) {
    // `ssl-passthrough`: the ClientHello's SNI says whether this connection is ours to
    // terminate or a backend's to receive untouched.
    if w.snapshot().table.has_passthrough() {
        let Some(hello) = Box::pin(client_hello(w, &stream, &mut initial)).await else { return };
        let snap = w.snapshot();
        let mut buf = [0u8; 256];
        let host = hello.as_deref().and_then(|h| crate::snapshot::normalize_host(h.as_bytes(), &mut buf));
        if let Some(route) = host.and_then(|h| snap.table.passthrough(h, entry)) {
            let proxy = route.options.ssl_passthrough.flatten();
            // A TLSRoute's weighted backends; a share that does not resolve is refused (the
            // connection closes: TLS has no 500).
            let picked = match route.gateway.as_deref() {
                Some(g) => g.pick().flatten(),
                None => Some(route.backend),
            };
            let Some(id) = picked else {
                tracing::debug!(worker = w.index, %peer, "TLSRoute: the backend does not resolve; closed");
                return;
            };
            Box::pin(l4::pass_through(w, &stream, (initial, peer), snap.backend(id), proxy)).await;
            return;
        }
    }
    let Some((s, tls)) = Box::pin(handshake(w, stream, peer, w.tls.clone(), initial)).await else { return };
    if s.alpn().as_deref() == Some(b"h2") {
        let _p = ProtocolGuard::new(&w.stats, H2);
        Box::pin(h2::serve(w.clone(), s, Vec::new(), peer, (entry, tls))).await;
    } else {
        let _p = ProtocolGuard::new(&w.stats, HTTPS1);
        Box::pin(h1::server::serve(w, s, Vec::new(), peer, (entry, tls))).await;
    }
}

impl<I: Io> Worker<I> {
    /// A connection task ends.
    fn closed(&self) {
        self.active.set(self.active.get() - 1);
        drop_one(&self.stats.connections_active);
    }
}

/// The first bytes of a plain connection (usually there at accept: accepts are deferred
/// until data arrives), within the header timeout. None: closed or silent.
async fn first_bytes<I: Io>(w: &Worker<I>, s: &I::Stream) -> Option<Vec<u8>> {
    let watch = w.deadlines.register();
    watch.set_idle(true);
    let clock = crate::runtime::io::Clock { deadlines: &w.deadlines, watch: &watch };
    let (r, buf) = clock.read_for(s, Vec::with_capacity(8 * 1024), w.snapshot().settings.header_timeout).await;
    w.deadlines.unregister(&watch);
    matches!(r, Ok(n) if n > 0).then_some(buf)
}

/// Reads a new TLS connection's ClientHello into `buf` (which may hold its start), within
/// the header timeout: the server name it asks for. Some(None): no name, or not a
/// ClientHello (the handshake deals with it); None: closed or silent.
async fn client_hello<I: Io>(w: &Worker<I>, s: &I::Stream, buf: &mut Vec<u8>) -> Option<Option<String>> {
    let watch = w.deadlines.register();
    let clock = crate::runtime::io::Clock { deadlines: &w.deadlines, watch: &watch };
    let deadline = clock.after(w.snapshot().settings.header_timeout);
    let r = loop {
        match sni::server_name(buf) {
            sni::Sni::Name(name) => break Some(name),
            sni::Sni::NotHello => break Some(None),
            sni::Sni::More if buf.len() > sni::MAX_HELLO + 1024 => break Some(None),
            sni::Sni::More => {}
        }
        if buf.capacity() - buf.len() < 4096 {
            buf.reserve(8 * 1024);
        }
        let (r, b) = clock.read(s, std::mem::take(buf), deadline).await;
        *buf = b;
        if !matches!(r, Ok(n) if n > 0) {
            break None;
        }
    };
    w.deadlines.unregister(&watch);
    r
}

/// The TLS handshake of a new connection, within the header timeout. Failures are counted
/// and logged at debug level (scanners and clients that distrust the default certificate
/// make plenty of them). While some host asks for client certificates, the ClientHello is
/// read first and its SNI picks the configuration; the connection then also says what the
/// client sent.
async fn handshake<I: Io>(
    w: &Worker<I>,
    stream: I::Stream,
    peer: std::net::SocketAddr,
    cfg: Arc<crate::tls::ServerConfigs>,
    initial: Vec<u8>,
) -> Option<(TlsStream<I::Stream>, Option<Rc<client_cert::TlsInfo>>)> {
    use crate::runtime::Stream;
    let snap = w.snapshot();
    let cfg = cfg.current(&snap.edge.tls);
    let watch = w.deadlines.register();
    let at = w.deadlines.after(snap.settings.header_timeout);
    let armed = w.deadlines.arm(&watch, stream.fd(), std::net::Shutdown::Both, at);
    let asked = Cell::new(false);
    let r = async {
        let s = if snap.table.has_client_certs() {
            let pick = |sni: Option<&str>| {
                let mut buf = [0u8; 256];
                let host = sni.and_then(|n| crate::snapshot::normalize_host(n.as_bytes(), &mut buf));
                asked.set(host.is_some_and(|h| snap.table.wants_client_cert(h)));
                if asked.get() {
                    cfg.client_certs.clone()
                } else {
                    cfg.plain.clone()
                }
            };
            TlsStream::accept(stream, initial, pick).await?
        } else {
            TlsStream::new(stream, cfg.plain.clone())?.with_initial(initial)
        };
        s.handshake().await.map(|()| s)
    }
    .await;
    drop(armed);
    w.deadlines.unregister(&watch);
    bump(&w.stats.tls_handshakes);
    match r {
        Ok(s) if !watch.expired() => {
            if s.resumed() {
                bump(&w.stats.tls_resumed);
            }
            let asked = asked.get();
            let info = (asked || !snap.l4.https_names.0.is_empty()).then(|| {
                let chain = if asked { s.peer_certificates() } else { None };
                Rc::new(client_cert::TlsInfo { asked, chain, sni: s.server_name() })
            });
            Some((s, info))
        }
        Ok(_) => None,
        Err(e) => {
            bump(&w.stats.tls_handshake_errors);
            tracing::debug!(worker = w.index, %peer, error = %e, "TLS handshake failed");
            None
        }
    }
}

/// Advances the worker's deadlines; the only timer the request path depends on.
fn spawn_ticker<I: Io>(w: Rc<Worker<I>>) {
    I::spawn(async move {
        loop {
            I::sleep(TICK).await;
            w.deadlines.advance();
            if !w.draining() && w.published.is_draining() {
                w.begin_drain();
            }
            w.sync_l4();
        }
    });
}

/// Closes idle upstream connections that timed out or whose endpoint left the table.
fn spawn_sweeper<I: Io>(w: Rc<Worker<I>>) {
    I::spawn(async move {
        loop {
            let every = (w.snapshot().settings.upstream_idle_timeout / 2)
                .clamp(Duration::from_millis(100), Duration::from_secs(5));
            I::sleep(every).await;
            let snap = w.snapshot();
            w.pools.sweep(&snap, w.deadlines.now());
        }
    });
}
