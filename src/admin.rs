//! The admin listener, on its own thread: `/healthz`, `/readyz` (200 once the first routing
//! table is live, 503 again once a drain starts), `/debug/routes` (the live table as JSON), `/metrics` (OpenMetrics text, [`crate::metrics`]).

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::time::Duration;

use crate::Published;

pub struct Admin {
    pub published: &'static Published,
    /// Encoded on every scrape of `/metrics` (see [`crate::metrics`]).
    pub registry: prometheus_client::registry::Registry,
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
            "/metrics" => {
                respond(&mut conn, 200, crate::metrics::CONTENT_TYPE, &crate::metrics::render(&self.registry))
            }
            _ => respond(&mut conn, 404, "text/plain", "not found\n"),
        }
    }
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
