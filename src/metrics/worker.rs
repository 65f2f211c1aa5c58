//! The counters each worker keeps (single writer: a relaxed load and store on its own cache
//! lines, never a locked read-modify-write shared across cores), summed by the admin thread
//! when scraped.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use crate::access_log::RouteKey;

/// HTTP/2 error codes 0x0..=0xd by name (RFC 9113 §7).
pub const H2_ERROR_NAMES: [&str; 14] = [
    "NO_ERROR",
    "PROTOCOL_ERROR",
    "INTERNAL_ERROR",
    "FLOW_CONTROL_ERROR",
    "SETTINGS_TIMEOUT",
    "STREAM_CLOSED",
    "FRAME_SIZE_ERROR",
    "REFUSED_STREAM",
    "CANCEL",
    "COMPRESSION_ERROR",
    "CONNECT_ERROR",
    "ENHANCE_YOUR_CALM",
    "INADEQUATE_SECURITY",
    "HTTP_1_1_REQUIRED",
];

/// Counters of one worker. Written only by that worker (relaxed stores on its own cache
/// lines), summed by the admin thread when scraped.
#[derive(Debug, Default)]
pub struct WorkerStats {
    pub requests: AtomicU64,
    pub connections_total: AtomicU64,
    pub connections_active: AtomicU64,
    /// Connections by protocol once it is known (see [`PROTOCOLS`]): total, and open now.
    pub protocol_total: [AtomicU64; PROTOCOLS.len()],
    pub protocol_active: [AtomicU64; PROTOCOLS.len()],
    pub upstream_connects: AtomicU64,
    pub upstream_connect_errors: AtomicU64,
    pub upstream_retries: AtomicU64,
    /// Requests sent to an external authentication service (cached verdicts not counted).
    pub auth_requests: AtomicU64,
    /// Gateway API RequestMirror copies sent, and those skipped (body streaming, too many in
    /// flight, no endpoint).
    pub mirrors: AtomicU64,
    pub mirrors_skipped: AtomicU64,
    pub responses_proxy_error: AtomicU64,
    pub tls_handshakes: AtomicU64,
    pub tls_handshake_errors: AtomicU64,
    /// Handshakes that resumed a session (ticket or cache) instead of a full key exchange.
    pub tls_resumed: AtomicU64,
    /// HTTP/2 connections we closed for a protocol violation or abuse (GOAWAY sent), by the
    /// error code (RFC 9113 §7): rapid reset and floods end in ENHANCE_YOUR_CALM, header
    /// bombs in COMPRESSION_ERROR or PROTOCOL_ERROR.
    pub h2_errors: [AtomicU64; H2_ERROR_NAMES.len()],
    /// Responses by route and status class (see [`RouteKey`]). Each worker locks only its
    /// own table, once per response; the scrape takes it briefly.
    pub by_route: std::sync::Mutex<rustc_hash::FxHashMap<Box<str>, [u64; 5]>>,
    /// Request durations: counts per [`LATENCY_BUCKETS`] bound (the last one is +Inf), and
    /// their sum in microseconds.
    pub latency: [AtomicU64; LATENCY_BUCKETS.len() + 1],
    pub latency_sum_us: AtomicU64,
    /// Upstream response times (first connect attempt to the end of the response), in the
    /// same buckets.
    pub upstream_latency: [AtomicU64; LATENCY_BUCKETS.len() + 1],
    pub upstream_latency_sum_us: AtomicU64,
    /// Request bytes read from clients and response bytes written to them (heads and bodies
    /// for HTTP/1.1, DATA for HTTP/2).
    pub bytes_in: AtomicU64,
    pub bytes_out: AtomicU64,
    /// HTTP connections closed for a missing or bad PROXY header (`use-proxy-protocol`).
    pub proxy_header_errors: AtomicU64,
    /// HTTP/2 streams reset because the worker's budget for held response bytes was spent.
    pub h2_response_budget_resets: AtomicU64,
    /// L4 connections by Service (`namespace/name:port`).
    pub l4: std::sync::Mutex<rustc_hash::FxHashMap<Box<str>, L4Counters>>,
}

/// Client connection protocols, as metric labels: HTTP/1.x over TCP and over TLS, HTTP/2 over
/// TLS (ALPN) and cleartext (prior knowledge).
pub const PROTOCOLS: [&str; 4] = ["http1", "https1", "h2", "h2c"];
pub(crate) const HTTP1: usize = 0;
pub(crate) const HTTPS1: usize = 1;
pub(crate) const H2: usize = 2;
pub(crate) const H2C: usize = 3;

/// Upper bounds (seconds) of the request duration histogram.
pub const LATENCY_BUCKETS: [f64; 12] = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0];

impl WorkerStats {
    /// One response: counted under its route and status class, its duration in the histogram.
    pub(crate) fn record(&self, key: &RouteKey, status: u16, elapsed: Duration) {
        if !(100..600).contains(&status) || key.as_str().is_empty() {
            return;
        }
        let class = (status / 100 - 1) as usize;
        {
            let mut table = self.by_route.lock().unwrap_or_else(|e| e.into_inner());
            match table.get_mut(key.as_str()) {
                Some(counts) => counts[class] += 1,
                None => {
                    let mut counts = [0u64; 5];
                    counts[class] = 1;
                    table.insert(key.as_str().into(), counts);
                }
            }
        }
        observe(&self.latency, &self.latency_sum_us, elapsed);
    }
}

/// One duration into a histogram of [`LATENCY_BUCKETS`].
pub(crate) fn observe(buckets: &[AtomicU64; LATENCY_BUCKETS.len() + 1], sum: &AtomicU64, d: Duration) {
    let secs = d.as_secs_f64();
    let bucket = LATENCY_BUCKETS.iter().position(|b| secs <= *b).unwrap_or(LATENCY_BUCKETS.len());
    bump(&buckets[bucket]);
    add(sum, d.as_micros() as u64);
}

pub(crate) fn add(c: &AtomicU64, n: u64) {
    c.store(c.load(Ordering::Relaxed) + n, Ordering::Relaxed);
}

pub(crate) fn bump(c: &AtomicU64) {
    // Single writer: a load and a store, no locked read-modify-write across cores.
    c.store(c.load(Ordering::Relaxed) + 1, Ordering::Relaxed);
}

pub(crate) fn drop_one(c: &AtomicU64) {
    c.store(c.load(Ordering::Relaxed).saturating_sub(1), Ordering::Relaxed);
}

/// Per-Service counters of one worker, summed at scrape.
#[derive(Debug, Default, Clone, Copy)]
pub struct L4Counters {
    pub active: u64,
    pub total: u64,
    /// Client to backend, and back.
    pub bytes_in: u64,
    pub bytes_out: u64,
    /// Of those, moved by splice (never copied through user space).
    pub bytes_spliced: u64,
    pub connect_failures: u64,
    pub endpoint_down: u64,
    /// Refused: the Service's connection limit, a bad PROXY header, or no endpoint at all.
    pub rejected: u64,
}
