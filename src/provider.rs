//! Where Kubernetes objects come from, on the control thread: manifest files ([`file`]) or the
//! API server ([`kube`]). Every provider feeds the same pure [`crate::snapshot::build`] and
//! publishes only complete, valid snapshots; both count their work in [`ControlStats`].

pub mod dns;
pub mod file;
pub mod kube;

use std::sync::atomic::AtomicU64;
use std::time::Duration;

/// A latency histogram (prometheus-client's; observed by the control thread, encoded by the
/// admin thread's scrape).
#[derive(Debug)]
pub struct Histogram(pub prometheus_client::metrics::histogram::Histogram);

/// Upper bounds in seconds, from sub-millisecond builds to multi-second initial syncs.
pub const BUCKETS: [f64; 14] = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0];

impl Default for Histogram {
    fn default() -> Self {
        Histogram(prometheus_client::metrics::histogram::Histogram::new(BUCKETS))
    }
}

impl Histogram {
    pub fn observe(&self, d: Duration) {
        self.0.observe(d.as_secs_f64());
    }
}

/// The kinds a provider reads, in metric label order.
pub const KINDS: [&str; 14] = [
    "Ingress",
    "IngressClass",
    "Service",
    "EndpointSlice",
    "Secret",
    "ConfigMap",
    "GatewayClass",
    "Gateway",
    "HTTPRoute",
    "GRPCRoute",
    "ReferenceGrant",
    "TLSRoute",
    "TCPRoute",
    "Namespace",
];

/// What the control thread did: builds, propagation, watch health, status writing.
#[derive(Debug, Default)]
pub struct ControlStats {
    /// Full rebuilds of the route table.
    pub builds: AtomicU64,
    /// Host updates: the changed Ingresses' hosts rebuilt, the rest of the table shared.
    pub host_updates: AtomicU64,
    /// Endpoint-only updates (the table shared, the changed backends replaced).
    pub endpoint_updates: AtomicU64,
    pub build_seconds: Histogram,
    /// From the first event of a burst arriving to the snapshot that includes it being live.
    pub propagation_seconds: Histogram,
    /// Objects held, by kind (see [`KINDS`]).
    pub objects: [AtomicU64; KINDS.len()],
    /// Watches that had to start over with a full list (410 Expired, relists).
    pub watch_restarts: [AtomicU64; KINDS.len()],
    /// Errors from the API server (connection refused, 5xx, cut streams), retried with backoff.
    pub watch_errors: [AtomicU64; KINDS.len()],
    /// 1 while this replica holds the status-writer Lease.
    pub leader: AtomicU64,
    pub status_updates: AtomicU64,
    pub status_errors: AtomicU64,
    /// Rounds of the status writer: a Lease renewal (or attempt) and, when leading, one pass
    /// over every object. What a test waits on to know the writer has looked again.
    pub status_rounds: AtomicU64,
    /// ExternalName lookups done, and those that failed or found no address.
    pub dns_lookups: AtomicU64,
    pub dns_failures: AtomicU64,
    /// Served Ingresses carrying each annotation ringress ignores or refuses on, by
    /// annotation (see [`count_notes`]).
    pub annotations: std::sync::Mutex<Vec<(String, u64)>>,
}

/// Annotation label values the metric keeps at most; the rest are counted under `other`, so
/// Ingresses with made-up keys cannot grow the scrape without bound.
const ANNOTATION_LABELS: usize = 200;

/// How many notes name each annotation.
pub fn count_notes<'a>(notes: impl Iterator<Item = &'a crate::snapshot::annotations::Note>) -> Vec<(String, u64)> {
    // A label value of the characters annotation keys are made of (a file-mode key may hold
    // anything).
    let label = |k: &str| -> String {
        k.chars().map(|c| if c.is_ascii_alphanumeric() || "./_-".contains(c) { c } else { '_' }).collect()
    };
    let mut counts: std::collections::BTreeMap<String, u64> = std::collections::BTreeMap::new();
    for n in notes {
        *counts.entry(label(&n.annotation)).or_default() += 1;
    }
    let mut out: Vec<(String, u64)> = Vec::with_capacity(counts.len().min(ANNOTATION_LABELS + 1));
    let mut other = 0;
    for (k, v) in counts {
        if out.len() < ANNOTATION_LABELS {
            out.push((k, v));
        } else {
            other += v;
        }
    }
    if other > 0 {
        out.push(("other".to_string(), other));
    }
    out
}
