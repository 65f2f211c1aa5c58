//! Where Kubernetes objects come from, on the control thread: manifest files ([`file`]) or the
//! API server ([`kube`]). Every provider feeds the same pure [`crate::snapshot::build`] and
//! publishes only complete, valid snapshots; both count their work in [`ControlStats`].

pub mod file;
pub mod kube;

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// A latency histogram: cumulative counts per upper bound, plus sum and count, readable while
/// being written (single writer, the control thread; any reader).
#[derive(Debug, Default)]
pub struct Histogram {
    counts: [AtomicU64; BUCKETS.len()],
    sum_micros: AtomicU64,
    count: AtomicU64,
}

/// Upper bounds in seconds, from sub-millisecond builds to multi-second initial syncs.
pub const BUCKETS: [f64; 14] = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0];

impl Histogram {
    pub fn observe(&self, d: Duration) {
        let s = d.as_secs_f64();
        for (bound, c) in BUCKETS.iter().zip(&self.counts) {
            if s <= *bound {
                c.fetch_add(1, Ordering::Relaxed);
            }
        }
        self.sum_micros.fetch_add(d.as_micros() as u64, Ordering::Relaxed);
        self.count.fetch_add(1, Ordering::Relaxed);
    }

    /// Prometheus text lines for a histogram named `name` (HELP/TYPE written by the caller).
    pub fn render(&self, name: &str, out: &mut String) {
        use std::fmt::Write;
        for (bound, c) in BUCKETS.iter().zip(&self.counts) {
            let _ = writeln!(out, "{name}_bucket{{le=\"{bound}\"}} {}", c.load(Ordering::Relaxed));
        }
        let count = self.count.load(Ordering::Relaxed);
        let _ = writeln!(out, "{name}_bucket{{le=\"+Inf\"}} {count}");
        let _ = writeln!(out, "{name}_sum {}", self.sum_micros.load(Ordering::Relaxed) as f64 / 1e6);
        let _ = writeln!(out, "{name}_count {count}");
    }
}

/// The kinds a provider reads, in metric label order.
pub const KINDS: [&str; 6] = ["Ingress", "IngressClass", "Service", "EndpointSlice", "Secret", "ConfigMap"];

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
}

impl ControlStats {
    pub fn render(&self, out: &mut String) {
        use std::fmt::Write;
        let g = |v: &AtomicU64| v.load(Ordering::Relaxed);
        let _ = writeln!(
            out,
            "# TYPE ringress_snapshot_builds_total counter\nringress_snapshot_builds_total {}",
            g(&self.builds)
        );
        let _ = writeln!(
            out,
            "# TYPE ringress_snapshot_host_updates_total counter\nringress_snapshot_host_updates_total {}",
            g(&self.host_updates)
        );
        let _ = writeln!(
            out,
            "# TYPE ringress_snapshot_endpoint_updates_total counter\nringress_snapshot_endpoint_updates_total {}",
            g(&self.endpoint_updates)
        );
        let _ = writeln!(out, "# HELP ringress_snapshot_build_seconds Time to build (or endpoint-update) a snapshot.");
        let _ = writeln!(out, "# TYPE ringress_snapshot_build_seconds histogram");
        self.build_seconds.render("ringress_snapshot_build_seconds", out);
        let _ = writeln!(
            out,
            "# HELP ringress_config_propagation_seconds From an event's arrival to its snapshot being live."
        );
        let _ = writeln!(out, "# TYPE ringress_config_propagation_seconds histogram");
        self.propagation_seconds.render("ringress_config_propagation_seconds", out);
        let _ = writeln!(out, "# TYPE ringress_objects gauge");
        for (kind, v) in KINDS.iter().zip(&self.objects) {
            let _ = writeln!(out, "ringress_objects{{kind=\"{kind}\"}} {}", g(v));
        }
        let _ = writeln!(out, "# TYPE ringress_watch_restarts_total counter");
        for (kind, v) in KINDS.iter().zip(&self.watch_restarts) {
            let _ = writeln!(out, "ringress_watch_restarts_total{{kind=\"{kind}\"}} {}", g(v));
        }
        let _ = writeln!(out, "# TYPE ringress_watch_errors_total counter");
        for (kind, v) in KINDS.iter().zip(&self.watch_errors) {
            let _ = writeln!(out, "ringress_watch_errors_total{{kind=\"{kind}\"}} {}", g(v));
        }
        let _ = writeln!(out, "# TYPE ringress_status_leader gauge\nringress_status_leader {}", g(&self.leader));
        let _ = writeln!(
            out,
            "# TYPE ringress_status_updates_total counter\nringress_status_updates_total {}\n# TYPE ringress_status_errors_total counter\nringress_status_errors_total {}",
            g(&self.status_updates),
            g(&self.status_errors)
        );
    }
}
