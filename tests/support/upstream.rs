//! A real HTTP/1.1 upstream on loopback, written independently of the proxy's codec. Paths:
//! - `/bytes/N`: N bytes with Content-Length, streamed in 64 KiB writes
//! - `/chunked/N`: N bytes, chunked
//! - `/trailers/N`: N bytes, chunked, ending in trailer fields `X-Sum: <byte sum>` and a
//!   `Content-Length` (which must never reach an HTTP/2 client)
//! - `/text/N`, `/text-chunked/N`, `/text-close/N`: N bytes of [`text_body`] as text/html
//!   with an ETag, by length, chunked or until the close
//! - `/status/N`: an empty response with status N
//! - `/sleep/MS`: waits, then answers like `/`
//! - `/early`: a 103 Early Hints interim response, then 200
//! - `/close`: a body delimited by closing the connection
//! - `/cors`: 200 with the upstream's own `Access-Control-Allow-Origin` and `-Max-Age`
//! - `/ws`: a WebSocket handshake, then echoes each client frame back unmasked
//! - anything else: a text description of the request (method, path, body length and sum,
//!   every header), with `X-Upstream: <name>`.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

pub struct Upstream {
    pub addr: SocketAddr,
    pub name: String,
    /// Requests seen (heads parsed).
    pub hits: Arc<AtomicUsize>,
    /// Connections accepted.
    pub conns: Arc<AtomicUsize>,
}

impl Upstream {
    pub fn start(name: &str) -> Upstream {
        Upstream::start_on(name, "127.0.0.1:0".parse().unwrap())
    }

    /// Listening on `addr` (another loopback address, a chosen port).
    pub fn start_on(name: &str, addr: SocketAddr) -> Upstream {
        Upstream::serve_on(name, TcpListener::bind(addr).unwrap())
    }

    /// Serving on a listener the caller bound.
    pub fn serve_on(name: &str, l: TcpListener) -> Upstream {
        let addr = l.local_addr().unwrap();
        let hits = Arc::new(AtomicUsize::new(0));
        let conns = Arc::new(AtomicUsize::new(0));
        let (h, c, n) = (hits.clone(), conns.clone(), name.to_string());
        std::thread::spawn(move || {
            for s in l.incoming().flatten() {
                c.fetch_add(1, Ordering::SeqCst);
                let (h, n) = (h.clone(), n.clone());
                std::thread::spawn(move || {
                    let _ = serve(s, &n, &h);
                });
            }
        });
        Upstream { addr, name: name.to_string(), hits, conns }
    }

    pub fn hits(&self) -> usize {
        self.hits.load(Ordering::SeqCst)
    }
}

/// The fixed byte pattern `/bytes` and `/chunked` send; clients check it.
/// `n` bytes of text, as `/text/N` sends them.
pub fn text_body(n: usize) -> Vec<u8> {
    let mut s = Vec::with_capacity(n + 64);
    let mut i = 0;
    while s.len() < n {
        s.extend_from_slice(format!("<p>line {i:06} of the page ringress compresses on the way</p>\n").as_bytes());
        i += 1;
    }
    s.truncate(n);
    s
}

pub fn pattern(i: usize) -> u8 {
    (i % 251) as u8
}

fn serve(s: TcpStream, name: &str, hits: &AtomicUsize) -> std::io::Result<()> {
    s.set_nodelay(true)?;
    let mut w = s.try_clone()?;
    let mut r = BufReader::with_capacity(65536, s);
    loop {
        // Head: lines until an empty one.
        let mut head = String::new();
        loop {
            let mut line = String::new();
            if r.read_line(&mut line)? == 0 {
                return Ok(());
            }
            head.push_str(&line);
            if line == "\r\n" {
                break;
            }
        }
        hits.fetch_add(1, Ordering::SeqCst);
        let mut lines = head.split("\r\n");
        let request_line = lines.next().unwrap_or("").to_string();
        let mut parts = request_line.split(' ');
        let method = parts.next().unwrap_or("").to_string();
        let path = parts.next().unwrap_or("").to_string();
        let headers: Vec<(String, String)> = lines
            .filter(|l| !l.is_empty())
            .filter_map(|l| l.split_once(':').map(|(k, v)| (k.to_string(), v.trim().to_string())))
            .collect();
        let get = |n: &str| headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(n)).map(|(_, v)| v.clone());
        let close = get("connection").is_some_and(|v| v.eq_ignore_ascii_case("close"));

        // Body: counted and summed while streaming, never kept whole.
        let (mut len, mut sum) = (0u64, 0u64);
        let mut trailers: Vec<String> = Vec::new();
        let mut buf = vec![0u8; 65536];
        if get("transfer-encoding").is_some_and(|v| v.eq_ignore_ascii_case("chunked")) {
            loop {
                let mut size = String::new();
                r.read_line(&mut size)?;
                let n = u64::from_str_radix(size.trim().split(';').next().unwrap_or(""), 16).unwrap_or(0);
                if n == 0 {
                    loop {
                        let mut t = String::new();
                        r.read_line(&mut t)?;
                        if t == "\r\n" || t.is_empty() {
                            break;
                        }
                        trailers.push(t.trim_end().to_ascii_lowercase());
                    }
                    break;
                }
                if !count_body(&mut r, n, &mut buf, &mut len, &mut sum)? {
                    return Ok(());
                }
                let mut crlf = [0u8; 2];
                r.read_exact(&mut crlf)?;
            }
        } else if let Some(n) = get("content-length").and_then(|v| v.parse::<u64>().ok()) {
            if !count_body(&mut r, n, &mut buf, &mut len, &mut sum)? {
                return Ok(());
            }
        }

        let num = |prefix: &str| path.strip_prefix(prefix).and_then(|v| v.parse::<usize>().ok());
        if let Some(n) = num("/bytes/") {
            write!(w, "HTTP/1.1 200 OK\r\nX-Upstream: {name}\r\nContent-Length: {n}\r\n\r\n")?;
            send_pattern(&mut w, n, false)?;
        } else if let Some(n) = num("/chunked/") {
            write!(w, "HTTP/1.1 200 OK\r\nX-Upstream: {name}\r\nTransfer-Encoding: chunked\r\n\r\n")?;
            send_pattern(&mut w, n, true)?;
            w.write_all(b"0\r\n\r\n")?;
        } else if let Some(n) = num("/trailers/") {
            write!(w, "HTTP/1.1 200 OK\r\nX-Upstream: {name}\r\nTransfer-Encoding: chunked\r\n\r\n")?;
            send_pattern(&mut w, n, true)?;
            let sum: u64 = (0..n).map(|i| pattern(i) as u64).sum();
            write!(w, "0\r\nX-Sum: {sum}\r\nContent-Length: 1\r\n\r\n")?;
        } else if let Some((how, n)) = path.strip_prefix("/text").and_then(|p| p.rsplit_once('/')) {
            let n: usize = n.parse().unwrap_or(0);
            let body = text_body(n);
            let common = format!(
                "HTTP/1.1 200 OK\r\nX-Upstream: {name}\r\nContent-Type: text/html; charset=utf-8\r\nETag: \"v1\"\r\n"
            );
            match how {
                "-chunked" => {
                    write!(w, "{common}Transfer-Encoding: chunked\r\n\r\n")?;
                    for piece in body.chunks(10_000) {
                        write!(w, "{:x}\r\n", piece.len())?;
                        w.write_all(piece)?;
                        w.write_all(b"\r\n")?;
                    }
                    w.write_all(b"0\r\n\r\n")?;
                }
                "-close" => {
                    write!(w, "{common}\r\n")?;
                    w.write_all(&body)?;
                    return Ok(());
                }
                _ => {
                    write!(w, "{common}Content-Length: {n}\r\n\r\n")?;
                    if method != "HEAD" {
                        w.write_all(&body)?;
                    }
                }
            }
        } else if path == "/moved" {
            // What proxy_redirect and proxy_cookie_* rewrite: the upstream's own URLs and cookies.
            let fields = "Location: http://backend.local:8080/login?x=1\r\nRefresh: 3; url=http://backend.local:8080/r\r\nSet-Cookie: id=1; Domain=.Backend.Local; Path=/app/x; HttpOnly\r\nSet-Cookie: other=2; Path=/keep\r\n";
            write!(w, "HTTP/1.1 302 Found\r\nX-Upstream: {name}\r\n{fields}Content-Length: 0\r\n\r\n")?;
        } else if path == "/cors" {
            let cors = "Access-Control-Allow-Origin: https://from-upstream.test\r\nAccess-Control-Max-Age: 5\r\n";
            write!(w, "HTTP/1.1 200 OK\r\nX-Upstream: {name}\r\n{cors}Content-Length: 2\r\n\r\nok")?;
        } else if let Some(code) = num("/status/") {
            write!(w, "HTTP/1.1 {code} Whatever\r\nX-Upstream: {name}\r\nContent-Length: 0\r\n\r\n")?;
        } else if path == "/early" {
            // An interim 103 Early Hints, then the final response (RFC 8297).
            w.write_all(b"HTTP/1.1 103 Early Hints\r\nLink: </style.css>; rel=preload\r\n\r\n")?;
            w.write_all(format!("HTTP/1.1 200 OK\r\nX-Upstream: {name}\r\nContent-Length: 5\r\n\r\nfinal").as_bytes())?;
        } else if path == "/close" {
            w.write_all(format!("HTTP/1.1 200 OK\r\nX-Upstream: {name}\r\n\r\nuntil-close body").as_bytes())?;
            return Ok(());
        } else if path == "/ws" {
            w.write_all(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n")?;
            return websocket_echo(&mut r, &mut w);
        } else {
            if let Some(ms) = num("/sleep/") {
                std::thread::sleep(Duration::from_millis(ms as u64));
            }
            let mut body = format!("upstream={name}\nmethod={method}\npath={path}\nbody-len={len}\nbody-sum={sum}\n");
            for (k, v) in &headers {
                body += &format!("header {}: {v}\n", k.to_ascii_lowercase());
            }
            for t in &trailers {
                body += &format!("trailer {t}\n");
            }
            let mut resp = format!(
                "HTTP/1.1 200 OK\r\nX-Upstream: {name}\r\nContent-Type: text/plain\r\nContent-Length: {}\r\n\r\n",
                body.len()
            );
            // HEAD: the head only; Content-Length still describes what GET would send.
            if method != "HEAD" {
                resp += &body;
            }
            w.write_all(resp.as_bytes())?;
        }
        if close {
            return Ok(());
        }
    }
}

/// Reads `n` body bytes, adding them to `len` and `sum`; false if the client closed first.
fn count_body(r: &mut impl Read, n: u64, buf: &mut [u8], len: &mut u64, sum: &mut u64) -> std::io::Result<bool> {
    let mut left = n;
    while left > 0 {
        let want = left.min(buf.len() as u64) as usize;
        let k = r.read(&mut buf[..want])?;
        if k == 0 {
            return Ok(false);
        }
        *sum = buf[..k].iter().fold(*sum, |a, &b| a.wrapping_add(b as u64));
        left -= k as u64;
        *len += k as u64;
    }
    Ok(true)
}

/// N pattern bytes; chunked, all chunks but the last (the caller ends the body).
fn send_pattern(w: &mut TcpStream, n: usize, chunked: bool) -> std::io::Result<()> {
    let block: Vec<u8> = (0..65536).map(pattern).collect();
    let mut sent = 0;
    while sent < n {
        // Keep the pattern continuous across blocks: 65536 % 251 != 0, so rotate.
        let k = (n - sent).min(65536);
        let start = sent % 251;
        let piece: Vec<u8> = (0..k).map(|i| block[(start + i) % 251]).collect();
        if chunked {
            write!(w, "{k:x}\r\n")?;
            w.write_all(&piece)?;
            w.write_all(b"\r\n")?;
        } else {
            w.write_all(&piece)?;
        }
        sent += k;
    }
    Ok(())
}

/// Echoes WebSocket frames (RFC 6455 §5.2): client frames are masked, echoes are not.
fn websocket_echo(r: &mut BufReader<TcpStream>, w: &mut TcpStream) -> std::io::Result<()> {
    loop {
        let mut h = [0u8; 2];
        if r.read_exact(&mut h).is_err() {
            return Ok(());
        }
        let opcode = h[0] & 0x0f;
        let mut len = (h[1] & 0x7f) as u64;
        if len == 126 {
            let mut b = [0u8; 2];
            r.read_exact(&mut b)?;
            len = u16::from_be_bytes(b) as u64;
        } else if len == 127 {
            let mut b = [0u8; 8];
            r.read_exact(&mut b)?;
            len = u64::from_be_bytes(b);
        }
        let mut mask = [0u8; 4];
        if h[1] & 0x80 != 0 {
            r.read_exact(&mut mask)?;
        }
        let mut payload = vec![0u8; len as usize];
        r.read_exact(&mut payload)?;
        for (i, b) in payload.iter_mut().enumerate() {
            *b ^= mask[i % 4];
        }
        w.write_all(&frame(opcode, &payload, None))?;
        if opcode == 8 {
            return Ok(());
        }
    }
}

/// One final WebSocket frame; `mask` for client frames.
pub fn frame(opcode: u8, payload: &[u8], mask: Option<[u8; 4]>) -> Vec<u8> {
    let mut f = vec![0x80 | opcode];
    let m = if mask.is_some() { 0x80 } else { 0 };
    if payload.len() < 126 {
        f.push(m | payload.len() as u8);
    } else if payload.len() < 65536 {
        f.push(m | 126);
        f.extend_from_slice(&(payload.len() as u16).to_be_bytes());
    } else {
        f.push(m | 127);
        f.extend_from_slice(&(payload.len() as u64).to_be_bytes());
    }
    match mask {
        Some(k) => {
            f.extend_from_slice(&k);
            f.extend(payload.iter().enumerate().map(|(i, b)| b ^ k[i % 4]));
        }
        None => f.extend_from_slice(payload),
    }
    f
}
