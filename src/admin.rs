//! The admin listener, on its own thread: `/healthz`, `/readyz` (200 once the first routing
//! table is live, 503 again once a drain starts), `/debug/routes` (the live table as JSON), `/metrics` (OpenMetrics text, [`crate::metrics`]).
//! Optionally a second listener, for a metrics scraper elsewhere in the cluster, that answers
//! `/metrics` alone and only to the address blocks it is given (`--metrics`,
//! `--metrics-allow`): on the host network no NetworkPolicy applies, so the listener itself
//! closes every other connection at accept.
//!
//! Probes must answer whatever else happens on the node: connections are served concurrently
//! (a tokio current-thread runtime on the admin thread), each has [`HEAD_TIMEOUT`] to send its
//! request head and as long to take the answer, and at most [`MAX_CONNECTIONS`] are open at
//! once; a new connection past that closes the oldest, so half-sent requests cannot keep a
//! probe out (a probe's whole exchange takes microseconds once its bytes are in).

use std::collections::VecDeque;
use std::rc::Rc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use crate::snapshot::Cidr;
use crate::Published;

/// Time for a request head to arrive, and again for the answer to be taken. Kubelet probes
/// default to a 1 s timeout.
pub const HEAD_TIMEOUT: Duration = Duration::from_secs(2);
/// Open admin connections; a new one past this closes the oldest.
pub const MAX_CONNECTIONS: usize = 256;

pub struct Admin {
    pub published: &'static Published,
    /// Encoded on every scrape of `/metrics` (see [`crate::metrics`]).
    pub registry: prometheus_client::registry::Registry,
}

/// The metrics-only listener and who may connect to it.
pub struct MetricsListener {
    pub listener: std::net::TcpListener,
    pub allow: Vec<Cidr>,
}

impl Admin {
    /// Serves forever on `listener` (everything) and `metrics` (`/metrics` alone).
    pub fn serve(self, listener: std::net::TcpListener, metrics: Option<MetricsListener>) -> std::io::Result<()> {
        listener.set_nonblocking(true)?;
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
        let local = tokio::task::LocalSet::new();
        let this = Rc::new(self);
        local.block_on(&rt, async move {
            if let Some(m) = metrics {
                m.listener.set_nonblocking(true)?;
                let l = TcpListener::from_std(m.listener)?;
                tokio::task::spawn_local(this.clone().accept_loop(l, Some(m.allow)));
            }
            this.accept_loop(TcpListener::from_std(listener)?, None).await
        })
    }

    /// `allow`: Some for the metrics-only listener.
    async fn accept_loop(self: Rc<Self>, listener: TcpListener, allow: Option<Vec<Cidr>>) -> std::io::Result<()> {
        let mut open: VecDeque<tokio::task::AbortHandle> = VecDeque::new();
        loop {
            let Ok((conn, peer)) = listener.accept().await else {
                // EMFILE and the like: back off instead of spinning.
                tokio::time::sleep(Duration::from_millis(10)).await;
                continue;
            };
            let metrics_only = allow.is_some();
            if allow.as_ref().is_some_and(|a| !a.iter().any(|c| c.contains(peer.ip()))) {
                tracing::debug!(%peer, "metrics listener: connection from outside --metrics-allow closed");
                continue;
            }
            open.retain(|h| !h.is_finished());
            if open.len() >= MAX_CONNECTIONS {
                if let Some(oldest) = open.pop_front() {
                    oldest.abort();
                }
            }
            let this = self.clone();
            let task = tokio::task::spawn_local(async move {
                let _ = this.handle(conn, metrics_only).await;
            });
            open.push_back(task.abort_handle());
        }
    }

    async fn handle(&self, mut conn: TcpStream, metrics_only: bool) -> std::io::Result<()> {
        let mut buf = vec![0u8; 8192];
        let mut n = 0;
        let head = async {
            loop {
                let r = conn.read(&mut buf[n..]).await?;
                if r == 0 {
                    return Ok::<bool, std::io::Error>(false);
                }
                n += r;
                if buf[..n].windows(4).any(|w| w == b"\r\n\r\n") || n == buf.len() {
                    return Ok(true);
                }
            }
        };
        match tokio::time::timeout(HEAD_TIMEOUT, head).await {
            Ok(Ok(true)) => {}
            _ => return Ok(()),
        }
        let answer = self.answer(&buf[..n], metrics_only);
        let _ = tokio::time::timeout(HEAD_TIMEOUT, conn.write_all(answer.as_bytes())).await;
        Ok(())
    }

    /// The whole response to a request head.
    fn answer(&self, head: &[u8], metrics_only: bool) -> String {
        let mut headers = [httparse::EMPTY_HEADER; 32];
        let mut req = httparse::Request::new(&mut headers);
        let path = match req.parse(head) {
            Ok(_) => req.path.unwrap_or("/").split('?').next().unwrap_or("/").to_string(),
            Err(_) => return respond(400, "text/plain", "bad request\n"),
        };
        if metrics_only && path != "/metrics" {
            return respond(404, "text/plain", "not found\n");
        }
        match path.as_str() {
            "/healthz" => respond(200, "text/plain", "ok\n"),
            "/readyz" if self.published.is_draining() => respond(503, "text/plain", "draining\n"),
            "/readyz" if self.published.is_ready() => respond(200, "text/plain", "ready\n"),
            "/readyz" => respond(503, "text/plain", "no routing table yet\n"),
            "/debug/routes" => {
                let body = serde_json::to_string_pretty(&self.published.load().to_json()).unwrap_or_default();
                respond(200, "application/json", &body)
            }
            "/metrics" => respond(200, crate::metrics::CONTENT_TYPE, &crate::metrics::render(&self.registry)),
            _ => respond(404, "text/plain", "not found\n"),
        }
    }
}

fn respond(code: u16, ctype: &str, body: &str) -> String {
    let reason = match code {
        200 => "OK",
        400 => "Bad Request",
        404 => "Not Found",
        _ => "Service Unavailable",
    };
    format!(
        "HTTP/1.1 {code} {reason}\r\nContent-Type: {ctype}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
}
