//! Response compression from the ConfigMap (`use-gzip`, `gzip-level`, `gzip-min-length`,
//! `gzip-types`, `gzip-disable`, `enable-brotli`, `brotli-level`, `brotli-min-length`,
//! `brotli-types`), end to end with curl and real decoders (gzip(1), curl's brotli and zlib,
//! flate2 for a stream read as it arrives), over HTTP/1.1 and HTTP/2.

mod support;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener};
use std::path::PathBuf;
use std::process::Command;

use support::upstream::text_body;
use support::*;

fn manifests(a: &Upstream, held: SocketAddr, data: &[(&str, &str)]) -> String {
    let mut cm =
        String::from("---\napiVersion: v1\nkind: ConfigMap\nmetadata: {name: ringress, namespace: ringress}\ndata:\n");
    for (k, v) in data {
        cm += &format!("  {k}: \"{v}\"\n");
    }
    service("svc-a", &[a.addr])
        + &service("svc-held", &[held])
        + &ingress("site", Some("zip.test"), &[("/", "svc-a")])
        + &ingress("held", Some("held.test"), &[("/", "svc-held")])
        + &cm
}

const ON: &[(&str, &str)] = &[
    ("use-gzip", "true"),
    ("gzip-level", "6"),
    ("gzip-min-length", "1000"),
    ("enable-brotli", "true"),
    ("brotli-types", "text/html text/plain"),
    ("gzip-disable", "msie6"),
];

/// A response fetched with curl, not decoded: its head (lowercase) and body bytes.
struct Fetched {
    head: String,
    body: Vec<u8>,
}

impl Fetched {
    fn has(&self, line: &str) -> bool {
        self.head.lines().any(|l| l.trim_end() == line)
    }
}

fn fetch(p: &Proxy, path: &str, extra: &[&str]) -> Fetched {
    let dir = support::proxy::temp_dir();
    let (head, body) = (dir.join("head"), dir.join("body"));
    let url = format!("http://127.0.0.1:{}{path}", p.http.port());
    let mut cmd = Command::new("curl");
    cmd.args(["-sS", "-H", "Host: zip.test", "-D", head.to_str().unwrap(), "-o", body.to_str().unwrap()])
        .args(extra)
        .arg(url);
    let (ok, _, err) = run(&mut cmd);
    assert!(ok, "curl: {err}");
    Fetched { head: std::fs::read_to_string(&head).unwrap().to_ascii_lowercase(), body: std::fs::read(&body).unwrap() }
}

/// gzip(1) decodes `data`.
fn gunzip(data: &[u8]) -> Vec<u8> {
    let dir = support::proxy::temp_dir();
    let f: PathBuf = dir.join("x.gz");
    std::fs::write(&f, data).unwrap();
    let out = Command::new("gzip").arg("-dc").arg(&f).output().unwrap();
    assert!(out.status.success(), "gzip -dc: {}", String::from_utf8_lossy(&out.stderr));
    out.stdout
}

/// An upstream that answers one chunked text/plain response in two pieces: the first at
/// once, the second only once `release` is sent something.
fn held_upstream() -> (SocketAddr, std::sync::mpsc::Sender<()>) {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    let (tx, rx) = std::sync::mpsc::channel::<()>();
    std::thread::spawn(move || {
        for s in l.incoming() {
            let Ok(mut s) = s else { return };
            let mut head = Vec::new();
            let mut b = [0u8; 1];
            while !head.ends_with(b"\r\n\r\n") && s.read(&mut b).unwrap_or(0) == 1 {
                head.push(b[0]);
            }
            let first = "first piece of a slow stream\n".repeat(40);
            let _ = write!(
                s,
                "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nTransfer-Encoding: chunked\r\n\r\n{:x}\r\n{first}\r\n",
                first.len()
            );
            if rx.recv().is_err() {
                return;
            }
            let _ = write!(s, "7\r\nsecond\n\r\n0\r\n\r\n");
        }
    });
    (addr, tx)
}

#[test]
fn configmap_compression_gzips_and_brotlis_responses_as_nginx_would() {
    let a = Upstream::start("a");
    let (held, release) = held_upstream();
    let p = Proxy::start("uring", &manifests(&a, held, &[]), &[]);
    let want = text_body(65536);

    // Off by default (ingress-nginx's use-gzip: false).
    let r = fetch(&p, "/text/65536", &["-H", "Accept-Encoding: gzip, br"]);
    assert!(!r.head.contains("content-encoding") && r.body == want, "{}", r.head);

    let generation = p.generation();
    p.replace_manifests(&manifests(&a, held, ON));
    p.wait_for(|| p.generation() > generation, "the ConfigMap");

    // gzip, by length, chunked and close-delimited upstream bodies, HTTP/1.1.
    for path in ["/text/65536", "/text-chunked/65536", "/text-close/65536"] {
        let r = fetch(&p, path, &["-H", "Accept-Encoding: gzip"]);
        assert!(r.has("content-encoding: gzip") && r.has("vary: accept-encoding"), "{path}: {}", r.head);
        assert!(!r.head.contains("content-length") && r.has("transfer-encoding: chunked"), "{path}: {}", r.head);
        assert!(r.has("etag: w/\"v1\""), "{path}: the ETag is weak: {}", r.head);
        assert!(r.body.len() < want.len() / 5, "{path}: {} bytes", r.body.len());
        assert_eq!(gunzip(&r.body), want, "{path}");
    }
    // Brotli first when the client takes both (text/html is in this brotli-types); curl
    // decodes it.
    let r = fetch(&p, "/text/65536", &["-H", "Accept-Encoding: gzip, br"]);
    assert!(r.has("content-encoding: br") && r.body.len() < want.len() / 5, "{}", r.head);
    let dir = support::proxy::temp_dir();
    let out = dir.join("decoded");
    let (ok, _, err) = run(Command::new("curl").args([
        "-sS",
        "--compressed",
        "-H",
        "Host: zip.test",
        "-o",
        out.to_str().unwrap(),
        &format!("http://127.0.0.1:{}/text-chunked/65536", p.http.port()),
    ]));
    assert!(ok, "{err}");
    assert_eq!(std::fs::read(&out).unwrap(), want, "curl --compressed (br)");

    // Not compressed: refused by q=0 (but it varies), under gzip-min-length, a type not
    // listed, HEAD, an HTTP/1.0 request, and MSIE 6 (gzip-disable: msie6).
    let r = fetch(&p, "/text/65536", &["-H", "Accept-Encoding: gzip;q=0"]);
    assert!(!r.head.contains("content-encoding") && r.has("vary: accept-encoding") && r.body == want, "{}", r.head);
    let r = fetch(&p, "/text/900", &["-H", "Accept-Encoding: gzip"]);
    assert!(!r.head.contains("content-encoding") && r.has("content-length: 900"), "{}", r.head);
    let r = fetch(&p, "/bytes/65536", &["-H", "Accept-Encoding: gzip"]);
    assert!(!r.head.contains("content-encoding") && r.body.len() == 65536, "{}", r.head);
    let r = fetch(&p, "/text/65536", &["-I", "-H", "Accept-Encoding: gzip"]);
    assert!(!r.head.contains("content-encoding") && r.has("content-length: 65536"), "{}", r.head);
    let r = fetch(&p, "/text/65536", &["--http1.0", "-H", "Accept-Encoding: gzip"]);
    assert!(!r.head.contains("content-encoding") && r.body == want, "{}", r.head);
    let r = fetch(&p, "/text/65536", &["-H", "Accept-Encoding: gzip", "-A", "Mozilla/4.0 (compatible; MSIE 6.0)"]);
    assert!(!r.head.contains("content-encoding"), "{}", r.head);

    // Keep-alive: two compressed responses on one connection, each decoded whole.
    let (ok, out, err) = run(Command::new("curl").args([
        "-sS",
        "--compressed",
        "-H",
        "Host: zip.test",
        "-w",
        "\n%{num_connects}\n",
        &format!("http://127.0.0.1:{}/text/5000", p.http.port()),
        &format!("http://127.0.0.1:{}/text-chunked/7000", p.http.port()),
    ]));
    assert!(ok, "{err}");
    let text = String::from_utf8_lossy(&text_body(5000)).to_string();
    let text2 = String::from_utf8_lossy(&text_body(7000)).to_string();
    assert_eq!(out, format!("{text}\n1\n{text2}\n0\n"), "the second request reused the connection");

    // HTTP/2: the same rules, decoded by curl.
    let dir = support::proxy::temp_dir();
    let (head, body) = (dir.join("h"), dir.join("b"));
    let (ok, _, err) = run(Command::new("curl").args([
        "-sS",
        "--http2-prior-knowledge",
        "--compressed",
        "-H",
        "Host: zip.test",
        "-D",
        head.to_str().unwrap(),
        "-o",
        body.to_str().unwrap(),
        &format!("http://127.0.0.1:{}/text-chunked/65536", p.http.port()),
    ]));
    assert!(ok, "{err}");
    let h = std::fs::read_to_string(&head).unwrap();
    assert!(h.starts_with("HTTP/2 200") && h.contains("content-encoding: br") && !h.contains("content-length"), "{h}");
    assert_eq!(std::fs::read(&body).unwrap(), want, "h2");

    // A slow stream is flushed as it goes: the first piece decodes before the upstream
    // sends the rest.
    let mut s = connect(p.http);
    s.write_all(b"GET /events HTTP/1.1\r\nHost: held.test\r\nAccept-Encoding: gzip\r\n\r\n").unwrap();
    // (A stream that is not flushed would block here: the read timeout fails the test.)
    s.set_read_timeout(Some(std::time::Duration::from_secs(20))).unwrap();
    let mut got = Vec::new();
    let mut plain = Vec::with_capacity(1 << 16);
    let mut buf = [0u8; 4096];
    while !String::from_utf8_lossy(&plain).contains("first piece") {
        let n = s.read(&mut buf).expect("the first piece, flushed");
        assert!(n > 0, "closed before the first piece: {}", String::from_utf8_lossy(&got));
        got.extend_from_slice(&buf[..n]);
        // The chunked body: strip the framing, skip gzip's 10-byte header, inflate the rest.
        let Some(at) = got.windows(4).position(|w| w == b"\r\n\r\n") else { continue };
        let gz = dechunk(&got[at + 4..]);
        if gz.len() > 10 {
            plain.clear();
            let mut inflate = flate2::Decompress::new(false);
            let _ = inflate.decompress_vec(&gz[10..], &mut plain, flate2::FlushDecompress::Sync);
        }
    }
    assert!(String::from_utf8_lossy(&got).to_ascii_lowercase().contains("content-encoding: gzip"));
    release.send(()).unwrap();
}

/// The data of complete chunks in a chunked body so far.
fn dechunk(mut b: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    while let Some(eol) = b.windows(2).position(|w| w == b"\r\n") {
        let Ok(n) = usize::from_str_radix(std::str::from_utf8(&b[..eol]).unwrap_or("x"), 16) else { break };
        if n == 0 || b.len() < eol + 2 + n + 2 {
            break;
        }
        out.extend_from_slice(&b[eol + 2..eol + 2 + n]);
        b = &b[eol + 2 + n + 2..];
    }
    out
}
