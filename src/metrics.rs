//! `/metrics` in the OpenMetrics text format, written by the prometheus-client crate. Workers
//! keep plain per-thread counters (single-writer atomics, never a read-modify-write shared
//! across cores); one [`Collector`] sums them at scrape time, together with the control
//! thread's counters and histograms.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric, NoLabelSet};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::Registry;

use crate::provider::{ControlStats, KINDS};
pub mod worker;

use crate::Published;
use worker::{WorkerStats, H2_ERROR_NAMES, LATENCY_BUCKETS, PROTOCOLS};

/// What a scrape reads.
#[derive(Debug)]
struct Sources {
    published: &'static Published,
    workers: Vec<Arc<WorkerStats>>,
    /// The I/O backend the workers run (`io_uring`, `epoll`, `tokio-uring`).
    backend: &'static str,
    log: crate::access_log::LogHandle,
}

/// The registry the admin thread encodes on every scrape.
pub fn registry(
    published: &'static Published,
    workers: Vec<Arc<WorkerStats>>,
    backend: &'static str,
    log: crate::access_log::LogHandle,
) -> Registry {
    let mut r = Registry::default();
    r.register_collector(Box::new(Sources { published, workers, backend, log }));
    r
}

/// The registry as OpenMetrics text.
pub fn render(r: &Registry) -> String {
    let mut out = String::with_capacity(8 * 1024);
    let _ = prometheus_client::encoding::text::encode(&mut out, r);
    out
}

/// The content type of [`render`]'s output.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

type Fmt = Result<(), std::fmt::Error>;

/// One counter of [`WorkerStats`].
type Field = fn(&WorkerStats) -> &AtomicU64;
/// One bucket of a per-worker latency histogram.
type Bucket = fn(&WorkerStats, usize) -> &AtomicU64;

fn counter(e: &mut DescriptorEncoder, name: &str, help: &str, v: u64) -> Fmt {
    ConstCounter::new(v).encode(e.encode_descriptor(name, help, None, MetricType::Counter)?)
}

fn gauge(e: &mut DescriptorEncoder, name: &str, help: &str, v: u64) -> Fmt {
    ConstGauge::new(v as i64).encode(e.encode_descriptor(name, help, None, MetricType::Gauge)?)
}

fn histogram(e: &mut DescriptorEncoder, name: &str, help: &str, h: &crate::provider::Histogram) -> Fmt {
    h.0.encode(e.encode_descriptor(name, help, None, h.0.metric_type())?)
}

/// A counter or gauge family with one label, one series per `(label value, value)`.
fn family<'a>(
    e: &mut DescriptorEncoder,
    (name, help, kind): (&str, &str, MetricType),
    label: &str,
    series: impl Iterator<Item = (&'a str, u64)>,
) -> Fmt {
    let mut m = e.encode_descriptor(name, help, None, kind)?;
    for (value, v) in series {
        let labels = [(label, value)];
        let s = m.encode_family(&labels)?;
        match kind {
            MetricType::Gauge => ConstGauge::new(v as i64).encode(s)?,
            _ => ConstCounter::new(v).encode(s)?,
        }
    }
    Ok(())
}

impl Sources {
    fn sum(&self, f: impl Fn(&WorkerStats) -> &AtomicU64) -> u64 {
        self.workers.iter().map(|w| f(w).load(Ordering::Relaxed)).sum()
    }

    fn workers(&self, e: &mut DescriptorEncoder) -> Fmt {
        #[rustfmt::skip]
        let counters: [(&str, &str, Field); 16] = [
            ("ringress_requests", "Requests received (HTTP/1.1 requests and HTTP/2 streams).", |s| &s.requests),
            ("ringress_connections", "Client connections accepted.", |s| &s.connections_total),
            ("ringress_upstream_connects", "Connections opened to upstream endpoints.", |s| &s.upstream_connects),
            ("ringress_upstream_connect_errors", "Upstream connects refused or timed out.", |s| &s.upstream_connect_errors),
            ("ringress_upstream_retries", "Requests sent again on a fresh upstream connection.", |s| &s.upstream_retries),
            ("ringress_auth_requests", "Requests sent to external authentication services (auth-url).", |s| &s.auth_requests),
            ("ringress_mirrored_requests", "Copies of requests sent by Gateway API RequestMirror filters.", |s| &s.mirrors),
            ("ringress_mirror_skipped_requests", "RequestMirror copies not sent: a body still streaming, too many in flight, or no endpoint.", |s| &s.mirrors_skipped),
            ("ringress_tls_handshakes", "TLS handshakes started.", |s| &s.tls_handshakes),
            ("ringress_tls_handshake_errors", "TLS handshakes that failed.", |s| &s.tls_handshake_errors),
            ("ringress_tls_resumed", "TLS handshakes that resumed a session.", |s| &s.tls_resumed),
            ("ringress_proxy_error_responses", "Error responses made by the proxy itself.", |s| &s.responses_proxy_error),
            ("ringress_proxy_protocol_errors", "HTTP connections closed for a missing or bad PROXY header.", |s| &s.proxy_header_errors),
            (
                "ringress_h2_response_budget_resets",
                "HTTP/2 streams reset because the worker's budget for response bytes waiting on clients was spent.",
                |s| &s.h2_response_budget_resets,
            ),
            ("ringress_received_bytes", "Request bytes read from clients (HTTP/1.1 heads and bodies, HTTP/2 DATA).", |s| &s.bytes_in),
            ("ringress_sent_bytes", "Response bytes written to clients (HTTP/1.1 heads and bodies, HTTP/2 DATA).", |s| &s.bytes_out),
        ];
        for (name, help, f) in counters {
            counter(e, name, help, self.sum(f))?;
        }
        gauge(e, "ringress_connections_active", "Client connections open.", self.sum(|s| &s.connections_active))?;
        let by_protocol = |f: fn(&WorkerStats, usize) -> &AtomicU64| {
            PROTOCOLS.iter().enumerate().map(move |(i, p)| (*p, self.sum(|s| f(s, i))))
        };
        family(
            e,
            ("ringress_protocol_connections", "Client connections served, by protocol.", MetricType::Counter),
            "protocol",
            by_protocol(|s, i| &s.protocol_total[i]),
        )?;
        family(
            e,
            ("ringress_protocol_connections_active", "Client connections open, by protocol.", MetricType::Gauge),
            "protocol",
            by_protocol(|s, i| &s.protocol_active[i]),
        )?;
        let h2: Vec<(&str, u64)> = H2_ERROR_NAMES
            .iter()
            .enumerate()
            .map(|(i, name)| (*name, self.sum(|s| &s.h2_errors[i])))
            .filter(|(_, v)| *v > 0)
            .collect();
        family(
            e,
            (
                "ringress_h2_connection_errors",
                "HTTP/2 connections closed by the proxy for a protocol violation or abuse, by error code.",
                MetricType::Counter,
            ),
            "code",
            h2.into_iter(),
        )?;
        self.by_route(e)?;
        #[rustfmt::skip]
        let histograms: [(&str, &str, Bucket, Field); 2] = [
            ("ringress_request_duration_seconds", "Request duration, from its first byte to the end of the response.",
                |s, i| &s.latency[i], |s| &s.latency_sum_us),
            ("ringress_upstream_duration_seconds", "Upstream response time, from the first connect attempt to the end of the response.",
                |s, i| &s.upstream_latency[i], |s| &s.upstream_latency_sum_us),
        ];
        for (name, help, bucket, sum_us) in histograms {
            self.latency(e, name, help, bucket, sum_us)?;
        }
        self.access_log(e)?;
        self.l4(e)?;
        gauge(
            e,
            "ringress_snapshot_generation",
            "Generation of the live routing snapshot.",
            self.published.load().generation,
        )?;
        family(
            e,
            ("ringress_io_backend", "The I/O backend the workers run.", MetricType::Gauge),
            "backend",
            std::iter::once((self.backend, 1)),
        )
    }
}

impl Sources {
    /// Responses by Ingress, service, method and status class, summed over the workers.
    fn by_route(&self, e: &mut DescriptorEncoder) -> Fmt {
        let mut all: std::collections::BTreeMap<Box<str>, [u64; 5]> = Default::default();
        for w in &self.workers {
            let table = w.by_route.lock().unwrap_or_else(|p| p.into_inner());
            for (key, counts) in table.iter() {
                let sum = all.entry(key.clone()).or_default();
                for (s, c) in sum.iter_mut().zip(counts) {
                    *s += c;
                }
            }
        }
        let mut m = e.encode_descriptor(
            "ringress_http_responses",
            "Responses by Ingress, service (namespace/name:port), method and status class.",
            None,
            MetricType::Counter,
        )?;
        for (key, counts) in &all {
            let mut parts = key.splitn(3, '\0');
            let (ingress, service, method) =
                (parts.next().unwrap_or(""), parts.next().unwrap_or(""), parts.next().unwrap_or(""));
            for (class, n) in ["1xx", "2xx", "3xx", "4xx", "5xx"].iter().zip(counts) {
                if *n > 0 {
                    let labels = [("ingress", ingress), ("service", service), ("method", method), ("status", class)];
                    ConstCounter::new(*n).encode(m.encode_family(&labels)?)?;
                }
            }
        }
        Ok(())
    }

    /// A duration histogram of every worker's buckets (counts per [`LATENCY_BUCKETS`] bound,
    /// then +Inf) and sum of microseconds.
    fn latency(&self, e: &mut DescriptorEncoder, name: &str, help: &str, bucket: Bucket, sum_us: Field) -> Fmt {
        let mut buckets: Vec<(f64, u64)> =
            LATENCY_BUCKETS.iter().copied().chain(std::iter::once(f64::MAX)).map(|b| (b, 0)).collect();
        for (i, b) in buckets.iter_mut().enumerate() {
            b.1 = self.sum(|s| bucket(s, i));
        }
        let count = buckets.iter().map(|b| b.1).sum();
        let sum = self.sum(sum_us) as f64 / 1e6;
        e.encode_descriptor(name, help, None, MetricType::Histogram)?
            .encode_histogram::<NoLabelSet>(sum, count, &buckets, None)
    }

    /// L4 connections per Service, summed over the workers.
    fn l4(&self, e: &mut DescriptorEncoder) -> Fmt {
        let mut all: std::collections::BTreeMap<Box<str>, worker::L4Counters> = Default::default();
        for w in &self.workers {
            let t = w.l4.lock().unwrap_or_else(|p| p.into_inner());
            for (k, c) in t.iter() {
                let s = all.entry(k.clone()).or_default();
                s.active += c.active;
                s.total += c.total;
                s.bytes_in += c.bytes_in;
                s.bytes_out += c.bytes_out;
                s.bytes_spliced += c.bytes_spliced;
                s.connect_failures += c.connect_failures;
                s.endpoint_down += c.endpoint_down;
                s.rejected += c.rejected;
            }
        }
        type Get = fn(&worker::L4Counters) -> u64;
        #[rustfmt::skip]
        let families: [(&str, &str, MetricType, Get); 8] = [
            ("ringress_l4_connections_active", "L4 connections open, by Service.", MetricType::Gauge, |c| c.active),
            ("ringress_l4_connections", "L4 connections accepted, by Service.", MetricType::Counter, |c| c.total),
            ("ringress_l4_connect_failures", "L4 connects to endpoints refused or timed out, by Service.", MetricType::Counter, |c| c.connect_failures),
            ("ringress_l4_endpoint_down", "Times an endpoint was marked down after a failed connect, by Service.", MetricType::Counter, |c| c.endpoint_down),
            ("ringress_l4_rejected", "L4 connections closed at once: connection limit, bad PROXY header, or no endpoint accepting.", MetricType::Counter, |c| c.rejected),
            ("ringress_l4_received_bytes", "Bytes from L4 clients to backends, by Service.", MetricType::Counter, |c| c.bytes_in),
            ("ringress_l4_sent_bytes", "Bytes from L4 backends to clients, by Service.", MetricType::Counter, |c| c.bytes_out),
            ("ringress_l4_spliced_bytes", "Of the L4 bytes both ways, those moved by splice(2), never copied through user space, by Service.", MetricType::Counter, |c| c.bytes_spliced),
        ];
        for (name, help, kind, get) in families {
            family(e, (name, help, kind), "service", all.iter().map(|(k, c)| (&**k, get(c))))?;
        }
        Ok(())
    }

    /// What the logger thread did.
    fn access_log(&self, e: &mut DescriptorEncoder) -> Fmt {
        let l = self.log.stats();
        let g = |v: &AtomicU64| v.load(Ordering::Relaxed);
        #[rustfmt::skip]
        let counters = [
            ("ringress_access_log_lines", "Access-log lines written.", g(&l.lines)),
            ("ringress_access_log_written_bytes", "Access-log bytes written.", g(&l.bytes)),
            ("ringress_access_log_dropped_lines",
                "Access-log lines dropped: a worker's buffer was full, or the disk refused the write.", self.log.dropped()),
            ("ringress_access_log_write_errors", "Access-log open, write or rotation failures.", g(&l.write_errors)),
            ("ringress_access_log_rotations", "Access-log files rotated.", g(&l.rotations)),
            ("ringress_access_log_compressed_files", "Rotated access-log files gzipped.", g(&l.compressed)),
            ("ringress_access_log_deleted_files",
                "Rotated access-log files deleted to keep the file count and the disk budget.", g(&l.deleted)),
        ];
        counters.into_iter().try_for_each(|(name, help, v)| counter(e, name, help, v))
    }
}

fn control(e: &mut DescriptorEncoder, c: &ControlStats) -> Fmt {
    let g = |v: &AtomicU64| v.load(Ordering::Relaxed);
    #[rustfmt::skip]
    let counters = [
        ("ringress_snapshot_builds", "Full builds of the routing table.", g(&c.builds)),
        ("ringress_snapshot_host_updates", "Updates that rebuilt only the changed hosts.", g(&c.host_updates)),
        ("ringress_snapshot_endpoint_updates", "Updates that replaced only the changed backends.", g(&c.endpoint_updates)),
        ("ringress_dns_lookups", "DNS lookups of ExternalName Services' names.", g(&c.dns_lookups)),
        ("ringress_dns_lookup_failures", "ExternalName lookups that failed or found no address.", g(&c.dns_failures)),
    ];
    counters.into_iter().try_for_each(|(name, help, v)| counter(e, name, help, v))?;
    #[rustfmt::skip]
    let histograms = [
        ("ringress_snapshot_build_seconds", "Time to build (or endpoint-update) a snapshot.", &c.build_seconds),
        ("ringress_config_propagation_seconds", "From an event's arrival to its snapshot being live.", &c.propagation_seconds),
    ];
    histograms.into_iter().try_for_each(|(name, help, h)| histogram(e, name, help, h))?;
    let by_kind = |a: &[AtomicU64; KINDS.len()]| KINDS.iter().copied().zip(a.iter().map(g)).collect::<Vec<_>>();
    #[rustfmt::skip]
    let families = [
        ("ringress_objects", "Objects held, by kind.", MetricType::Gauge, &c.objects),
        ("ringress_watch_restarts", "Watches that started over with a full list.", MetricType::Counter, &c.watch_restarts),
        ("ringress_watch_errors", "Errors from the API server, retried with backoff.", MetricType::Counter, &c.watch_errors),
    ];
    for (name, help, kind, values) in families {
        family(e, (name, help, kind), "kind", by_kind(values).into_iter())?;
    }
    gauge(e, "ringress_status_leader", "1 while this replica writes Ingress status.", g(&c.leader))?;
    counter(e, "ringress_status_updates", "Ingress status patches written.", g(&c.status_updates))?;
    counter(e, "ringress_status_errors", "Ingress status patches that failed.", g(&c.status_errors))?;
    counter(
        e,
        "ringress_status_rounds",
        "Rounds of the status writer (a Lease renewal and, when leading, a pass over every object).",
        g(&c.status_rounds),
    )?;
    let annotations = c.annotations.lock().unwrap_or_else(|e| e.into_inner()).clone();
    family(
        e,
        (
            "ringress_ignored_annotations",
            "Served Ingresses carrying an annotation ringress ignores (or refuses their routes for), by annotation.",
            MetricType::Gauge,
        ),
        "annotation",
        annotations.iter().map(|(k, v)| (k.as_str(), *v)),
    )
}

impl Collector for Sources {
    fn encode(&self, mut e: DescriptorEncoder) -> Fmt {
        self.workers(&mut e)?;
        control(&mut e, &self.published.control)
    }
}
