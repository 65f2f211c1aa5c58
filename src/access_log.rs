//! The access log: one line per request, formatted on the worker into the worker's own
//! buffer, written to disk by the logger thread, which also rotates, compresses and keeps the
//! files within a disk budget ([`writer`]).
//!
//! The request path never waits on the disk: a worker appends to its buffer under a lock only
//! the logger thread also takes (to swap the buffer out), and when the buffer is full because
//! the disk is slower than the traffic, the line is dropped and counted.

pub(crate) mod format;
#[cfg(test)]
mod tests;
mod writer;

use std::cell::{Cell, RefCell};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

pub use format::{Template, DEFAULT_TEMPLATE, VARIABLES};

/// Text by the template, or one JSON object per line.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Format {
    #[default]
    Text,
    Json,
}

/// Where and how lines are written; from `--access-log` and the ConfigMap, live with the
/// snapshot.
#[derive(Clone, Debug, PartialEq)]
pub struct Config {
    /// No path: no access log.
    pub path: Option<PathBuf>,
    /// `disable-access-log`.
    pub disabled: bool,
    pub format: Format,
    pub template: Template,
    /// Rotate when the file would grow past this (at most half of `max_total`).
    pub max_size: u64,
    /// Rotate a non-empty file this long after it was opened.
    pub rotate_every: Duration,
    /// Rotated files kept (the oldest go first).
    pub max_files: usize,
    /// The disk budget: the live file plus every rotated file never add up to more.
    pub max_total: u64,
    /// gzip rotated files.
    pub compress: bool,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            path: None,
            disabled: false,
            format: Format::Text,
            template: Template::default(),
            max_size: 100 << 20,
            rotate_every: Duration::from_secs(24 * 3600),
            max_files: 10,
            max_total: 1 << 30,
            compress: true,
        }
    }
}

impl Config {
    pub fn enabled(&self) -> bool {
        self.path.is_some() && !self.disabled
    }

    /// The size at which the live file rotates: `max_size`, but never more than half the
    /// budget, so that one full file and its predecessor always fit.
    pub fn rotate_size(&self) -> u64 {
        self.max_size.min(self.max_total / 2).max(1)
    }
}

/// What is known about one request when its line is written. Owned buffers, reused from one
/// request to the next on an HTTP/1.1 connection.
#[derive(Debug, Default)]
pub struct Record {
    /// The request's metric labels, which also name its Ingress and service.
    pub(crate) key: RouteKey,
    /// The first byte of the request; None: nothing to log (no request started).
    pub start: Option<Instant>,
    /// The status answered; 0: none (logged as 499).
    pub status: u16,
    pub client: Vec<u8>,
    pub method: Vec<u8>,
    pub uri: Vec<u8>,
    pub host: Vec<u8>,
    pub user_agent: Vec<u8>,
    pub referer: Vec<u8>,
    pub request_id: Vec<u8>,
    pub protocol: &'static str,
    /// From the client, head and body; to the client, head and body.
    pub bytes_in: u64,
    pub bytes_out: u64,
    pub upstream: Option<SocketAddr>,
    pub upstream_status: u16,
    /// From the first upstream connect attempt to the end of the response.
    pub upstream_time: Option<Duration>,
}

impl Record {
    /// Frees the request's fields (kept with their capacity by `reset`) while the connection
    /// waits idle; the client address stays.
    pub fn release(&mut self) {
        for v in [&mut self.method, &mut self.uri, &mut self.host, &mut self.user_agent, &mut self.referer] {
            *v = Vec::new();
        }
        self.request_id = Vec::new();
        self.key = Default::default();
    }

    /// Ready for the next request on the same connection (the client address stays).
    pub fn reset(&mut self) {
        self.key.clear();
        self.start = None;
        self.status = 0;
        for v in [&mut self.method, &mut self.uri, &mut self.host, &mut self.user_agent, &mut self.referer] {
            v.clear();
        }
        self.request_id.clear();
        self.bytes_in = 0;
        self.bytes_out = 0;
        self.upstream = None;
        self.upstream_status = 0;
        self.upstream_time = None;
    }
}

/// A worker buffer grows to this much before lines are dropped (the logger thread empties it
/// every [`writer::TICK`], or sooner once it is half full).
const SHARD_CAP: usize = 8 << 20;

/// One worker's pending lines.
#[derive(Debug)]
struct Shard {
    pending: Mutex<Pending>,
    /// The logger thread, woken when a buffer passes half full.
    wake: std::thread::Thread,
    /// Lines dropped because this buffer was full.
    dropped: AtomicU64,
}

#[derive(Debug, Default)]
struct Pending {
    data: Vec<u8>,
    lines: u64,
}

/// What the logger did, for `/metrics`.
#[derive(Debug, Default)]
pub struct LogStats {
    pub lines: AtomicU64,
    pub bytes: AtomicU64,
    /// Lines lost to a failed write (disk full, unwritable directory); buffer overflows are
    /// counted per worker and added by [`Logger::dropped`].
    pub write_dropped: AtomicU64,
    pub write_errors: AtomicU64,
    pub rotations: AtomicU64,
    pub compressed: AtomicU64,
    pub deleted: AtomicU64,
}

#[derive(Debug, Default)]
struct Shared {
    shards: Mutex<Vec<Arc<Shard>>>,
    reopen: AtomicBool,
    stop: AtomicBool,
    stats: LogStats,
}

impl Shared {
    fn dropped(&self) -> u64 {
        let shards = self.shards.lock().unwrap_or_else(|e| e.into_inner());
        shards.iter().map(|s| s.dropped.load(Ordering::Relaxed)).sum::<u64>()
            + self.stats.write_dropped.load(Ordering::Relaxed)
    }
}

/// The logger thread's handle.
#[derive(Debug)]
pub struct Logger {
    shared: Arc<Shared>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Logger {
    /// Starts the logger thread; it follows the access-log configuration of the live
    /// snapshot (nothing is written while there is no path).
    pub fn start(published: &'static crate::Published) -> std::io::Result<Logger> {
        let shared = Arc::new(Shared::default());
        let s = shared.clone();
        let thread = std::thread::Builder::new().name("access-log".into()).spawn(move || writer::run(&s, published))?;
        Ok(Logger { shared, thread: Some(thread) })
    }

    /// A new worker's side of the log.
    pub fn worker(&self, index: usize) -> WorkerLog {
        let wake = self.thread.as_ref().map_or_else(std::thread::current, |t| t.thread().clone());
        let shard = Arc::new(Shard { pending: Mutex::default(), wake, dropped: AtomicU64::new(0) });
        self.shared.shards.lock().unwrap_or_else(|e| e.into_inner()).push(shard.clone());
        let seed = SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).unwrap_or_default().as_nanos() as u64
            ^ (std::process::id() as u64) << 32
            ^ (index as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        WorkerLog { shard, time: RefCell::default(), rng: Cell::new(seed | 1) }
    }

    /// SIGUSR1: close the file and open the path again (after an external logrotate moved it).
    pub fn reopen(&self) {
        self.shared.reopen.store(true, Ordering::Release);
        if let Some(t) = &self.thread {
            t.thread().unpark();
        }
    }

    /// Writes what the workers have buffered, then ends the thread (at exit).
    pub fn stop(mut self) {
        self.shared.stop.store(true, Ordering::Release);
        if let Some(t) = self.thread.take() {
            t.thread().unpark();
            let _ = t.join();
        }
    }

    /// Counters for `/metrics`.
    pub fn stats(&self) -> LogHandle {
        LogHandle(self.shared.clone())
    }
}

/// Read access to the logger's counters.
#[derive(Debug, Clone)]
pub struct LogHandle(Arc<Shared>);

impl LogHandle {
    pub fn stats(&self) -> &LogStats {
        &self.0.stats
    }

    /// Lines dropped: buffers full, or the disk refusing the write.
    pub fn dropped(&self) -> u64 {
        self.0.dropped()
    }
}

/// A worker's side of the log: its buffer, its time cache and its request-id generator.
#[derive(Debug)]
pub struct WorkerLog {
    shard: Arc<Shard>,
    time: RefCell<format::TimeCache>,
    rng: Cell<u64>,
}

impl WorkerLog {
    /// A fresh request id, 32 hex digits (128 random-looking bits, as ingress-nginx's `$req_id`).
    pub fn request_id(&self, out: &mut Vec<u8>) {
        const HEX: &[u8; 16] = b"0123456789abcdef";
        for _ in 0..2 {
            // xorshift64*: plenty for an identifier that only has to be unique in practice.
            let mut x = self.rng.get();
            x ^= x >> 12;
            x ^= x << 25;
            x ^= x >> 27;
            self.rng.set(x);
            let v = x.wrapping_mul(0x2545_F491_4F6C_DD1D);
            for i in (0..16).rev() {
                out.push(HEX[((v >> (i * 4)) & 15) as usize]);
            }
        }
    }

    /// Appends the line of `rec`, or drops and counts it when the buffer is full.
    pub fn write(&self, cfg: &Config, rec: &Record, duration: Duration) {
        let mut time = self.time.borrow_mut();
        time.set(SystemTime::now());
        let line = format::Line { rec, time: &time, duration };
        let mut p = self.shard.pending.lock().unwrap_or_else(|e| e.into_inner());
        let before = p.data.len();
        if before >= SHARD_CAP {
            drop(p);
            let d = &self.shard.dropped;
            d.store(d.load(Ordering::Relaxed) + 1, Ordering::Relaxed);
            return;
        }
        match cfg.format {
            Format::Text => line.text(&cfg.template, &mut p.data),
            Format::Json => line.json(&mut p.data),
        }
        p.lines += 1;
        let after = p.data.len();
        drop(p);
        if before < SHARD_CAP / 2 && after >= SHARD_CAP / 2 {
            self.shard.wake.unpark();
        }
    }
}

/// The labels of one response series, `ingress \0 service \0 method`, written into a
/// reused buffer per request; the table allocates a copy only for a series it has not seen.
/// With them, what the route says about the request after routing: whether it is kept out
/// of the access log (`enable-access-log: "false"`; the metrics still count it), and its
/// `custom-http-errors`.
#[derive(Debug, Default)]
pub(crate) struct RouteKey {
    labels: String,
    unlogged: bool,
    pub(crate) errors: Option<Box<ErrorRoute>>,
}

/// `custom-http-errors` of a request's route: which statuses get an error page and which
/// backend makes it (None: the proxy's own plain page), with the request's Accept field
/// (sent to that backend as X-Format).
#[derive(Debug)]
pub(crate) struct ErrorRoute {
    pub codes: std::sync::Arc<[u16]>,
    /// A `snapshot::BackendId` (named here as its number: the log layer sits below the snapshot).
    pub backend: Option<u32>,
    pub accept: Vec<u8>,
}

impl RouteKey {
    /// No labels: a request that is not counted (it never got as far as routing).
    /// `namespace/name` of the Ingress (empty when no rule matched).
    pub(crate) fn ingress(&self) -> &str {
        self.labels.split('\0').next().unwrap_or("")
    }

    /// The backend's `namespace/service:port` (empty when no rule matched).
    pub(crate) fn service(&self) -> &str {
        self.labels.split('\0').nth(1).unwrap_or("")
    }

    pub(crate) fn clear(&mut self) {
        self.labels.clear();
        self.unlogged = false;
        self.errors = None;
    }

    /// The route's `enable-access-log` (a request routed nowhere is logged).
    pub(crate) fn set_logged(&mut self, logged: bool) {
        self.unlogged = !logged;
    }

    pub(crate) fn logged(&self) -> bool {
        !self.unlogged
    }

    /// Whether the route wants an error page for `status`.
    pub(crate) fn error_page(&self, status: u16) -> Option<&ErrorRoute> {
        self.errors.as_deref().filter(|e| e.codes.contains(&status))
    }

    /// The labels of a request: `route` is the Ingress's namespace and name and the backend's
    /// name, None when no rule matched (the labels are then empty).
    pub(crate) fn set(&mut self, route: Option<(&str, &str, &str)>, method: &str) {
        self.labels.clear();
        self.unlogged = false;
        let l = &mut self.labels;
        if let Some((namespace, name, service)) = route {
            l.push_str(namespace);
            l.push('/');
            l.push_str(name);
            l.push('\0');
            l.push_str(service);
        } else {
            l.push('\0');
        }
        l.push('\0');
        l.push_str(method_class(method));
    }

    /// The whole key, as the metrics table stores it.
    pub(crate) fn as_str(&self) -> &str {
        &self.labels
    }
}

/// Methods as labels: the common ones by name, anything else as `other` (bounded cardinality).
fn method_class(m: &str) -> &'static str {
    match m {
        "GET" => "GET",
        "HEAD" => "HEAD",
        "POST" => "POST",
        "PUT" => "PUT",
        "DELETE" => "DELETE",
        "PATCH" => "PATCH",
        "OPTIONS" => "OPTIONS",
        _ => "other",
    }
}
