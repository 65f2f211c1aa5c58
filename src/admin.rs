//! The admin listener, on its own thread: `/healthz`, `/readyz` (200 once the first routing
//! table is live, 503 again once a drain starts), `/debug/routes` (the live table as JSON), `/metrics` (worker counters).

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use crate::proxy::WorkerStats;
use crate::Published;

pub struct Admin {
    pub published: &'static Published,
    pub stats: Vec<Arc<WorkerStats>>,
    pub backend: &'static str,
}

impl Admin {
    /// Serves forever on `listener`, one connection at a time (the admin port is low-traffic).
    pub fn serve(self, listener: TcpListener) {
        for conn in listener.incoming().flatten() {
            let _ = self.handle(conn);
        }
    }

    fn handle(&self, mut conn: TcpStream) -> std::io::Result<()> {
        conn.set_read_timeout(Some(Duration::from_secs(5)))?;
        let mut buf = vec![0u8; 8192];
        let mut n = 0;
        loop {
            let r = conn.read(&mut buf[n..])?;
            if r == 0 {
                return Ok(());
            }
            n += r;
            if buf[..n].windows(4).any(|w| w == b"\r\n\r\n") || n == buf.len() {
                break;
            }
        }
        let mut headers = [httparse::EMPTY_HEADER; 32];
        let mut req = httparse::Request::new(&mut headers);
        let path = match req.parse(&buf[..n]) {
            Ok(_) => req.path.unwrap_or("/").split('?').next().unwrap_or("/").to_string(),
            Err(_) => return respond(&mut conn, 400, "text/plain", "bad request\n"),
        };
        match path.as_str() {
            "/healthz" => respond(&mut conn, 200, "text/plain", "ok\n"),
            "/readyz" if self.published.is_draining() => respond(&mut conn, 503, "text/plain", "draining\n"),
            "/readyz" if self.published.is_ready() => respond(&mut conn, 200, "text/plain", "ready\n"),
            "/readyz" => respond(&mut conn, 503, "text/plain", "no routing table yet\n"),
            "/debug/routes" => {
                let body = serde_json::to_string_pretty(&self.published.load().to_json()).unwrap_or_default();
                respond(&mut conn, 200, "application/json", &body)
            }
            "/metrics" => respond(&mut conn, 200, "text/plain; version=0.0.4", &self.metrics()),
            _ => respond(&mut conn, 404, "text/plain", "not found\n"),
        }
    }

    fn metrics(&self) -> String {
        use std::fmt::Write;
        let sum = |f: fn(&WorkerStats) -> u64| self.stats.iter().map(|s| f(s)).sum::<u64>();
        let mut out = String::new();
        let rows: [(&str, &str, u64); 10] = [
            ("ringress_requests_total", "counter", sum(|s| s.requests.load(Ordering::Relaxed))),
            ("ringress_connections_total", "counter", sum(|s| s.connections_total.load(Ordering::Relaxed))),
            ("ringress_connections_active", "gauge", sum(|s| s.connections_active.load(Ordering::Relaxed))),
            ("ringress_upstream_connects_total", "counter", sum(|s| s.upstream_connects.load(Ordering::Relaxed))),
            (
                "ringress_upstream_connect_errors_total",
                "counter",
                sum(|s| s.upstream_connect_errors.load(Ordering::Relaxed)),
            ),
            ("ringress_upstream_retries_total", "counter", sum(|s| s.upstream_retries.load(Ordering::Relaxed))),
            ("ringress_tls_handshakes_total", "counter", sum(|s| s.tls_handshakes.load(Ordering::Relaxed))),
            ("ringress_tls_handshake_errors_total", "counter", sum(|s| s.tls_handshake_errors.load(Ordering::Relaxed))),
            ("ringress_tls_resumed_total", "counter", sum(|s| s.tls_resumed.load(Ordering::Relaxed))),
            (
                "ringress_proxy_error_responses_total",
                "counter",
                sum(|s| s.responses_proxy_error.load(Ordering::Relaxed)),
            ),
        ];
        for (name, kind, v) in rows {
            let _ = writeln!(out, "# TYPE {name} {kind}\n{name} {v}");
        }
        let _ = writeln!(out, "# TYPE ringress_h2_connection_errors_total counter");
        for (i, name) in crate::proxy::H2_ERROR_NAMES.iter().enumerate() {
            let v = sum_at(&self.stats, i);
            if v > 0 {
                let _ = writeln!(out, "ringress_h2_connection_errors_total{{code=\"{name}\"}} {v}");
            }
        }
        let _ = writeln!(
            out,
            "# TYPE ringress_snapshot_generation gauge\nringress_snapshot_generation {}",
            self.published.load().generation
        );
        let _ =
            writeln!(out, "# TYPE ringress_io_backend gauge\nringress_io_backend{{backend=\"{}\"}} 1", self.backend);
        self.published.control.render(&mut out);
        out
    }
}

fn sum_at(stats: &[std::sync::Arc<WorkerStats>], i: usize) -> u64 {
    stats.iter().map(|s| s.h2_errors[i].load(Ordering::Relaxed)).sum()
}

fn respond(conn: &mut TcpStream, code: u16, ctype: &str, body: &str) -> std::io::Result<()> {
    let reason = match code {
        200 => "OK",
        400 => "Bad Request",
        404 => "Not Found",
        _ => "Service Unavailable",
    };
    write!(
        conn,
        "HTTP/1.1 {code} {reason}\r\nContent-Type: {ctype}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
}
