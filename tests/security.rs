//! Attacks on the proxy itself, through the real binary with real upstreams: request smuggling
//! through `Connection` naming a framing field (both directions), framing normalisation,
//! chunk sizes past the body limit, underscore header names, TRACE and HTTP/2 CONNECT, bad
//! Host ports, and dot-segments that would get past an Ingress path to a backend that
//! normalises paths itself (Python's http.server).

mod support;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener};
use std::time::Duration;

use support::*;

fn site() -> (Upstream, String) {
    let a = Upstream::start("a");
    let m = service("svc-a", &[a.addr])
        + &ingress("site", Some("sec.test"), &[("/", "svc-a")])
        + "---\napiVersion: networking.k8s.io/v1\nkind: Ingress\nmetadata:\n  name: small\n  namespace: default\n  annotations: {nginx.ingress.kubernetes.io/proxy-body-size: 1k}\nspec:\n  ingressClassName: ringress\n  rules:\n  - host: small.test\n    http:\n      paths:\n      - {path: /, pathType: Prefix, backend: {service: {name: svc-a, port: {number: 80}}}}\n";
    (a, m)
}

/// A request whose body is itself a request to a path no Ingress exposes.
fn smuggling_payload(method: &str, version: &str, connection: &str) -> Vec<u8> {
    let inner = b"GET /admin/secret HTTP/1.1\r\nHost: sec.test\r\n\r\n";
    let mut req = format!(
        "{method} /submit {version}\r\nHost: sec.test\r\nContent-Length: {}\r\nConnection: {connection}\r\n\r\n",
        inner.len()
    )
    .into_bytes();
    req.extend_from_slice(inner);
    req
}

per_backend!(fn connection_naming_a_framing_field_never_smuggles_a_request(io) {
    let (a, m) = site();
    let p = Proxy::start(io, &m, &[]);
    let variants = [
        ("POST", "HTTP/1.1", "Content-Length"),
        ("POST", "HTTP/1.1", "content-length"),
        ("POST", "HTTP/1.1", "keep-alive, Content-Length"),
        ("GET", "HTTP/1.1", "Content-Length"),
        ("POST", "HTTP/1.0", "keep-alive, Content-Length"),
        ("POST", "HTTP/1.1", "Host, Transfer-Encoding"),
    ];
    for (method, version, connection) in variants {
        let before = a.hits();
        let mut s = connect(p.http);
        s.write_all(&smuggling_payload(method, version, connection)).unwrap();
        let r = read_response(&mut s, &mut Vec::new(), false).expect("a response");
        let text = r.text();
        assert_eq!(r.status, 200, "{io} {method} {version} {connection}: {text}");
        assert!(text.contains("path=/submit\n") && text.contains("body-len=46\n"), "{io} {connection}: {text}");
        assert!(text.contains("header content-length: 46\n"), "{io} {connection}: {text}");
        // Another client right after gets its own answer from the same pooled upstream.
        let next = get(p.http, "sec.test", "/victim");
        assert!(next.text().contains("path=/victim\n"), "{io} {connection}: {}", next.text());
        std::thread::sleep(Duration::from_millis(50));
        assert_eq!(
            a.hits() - before,
            2,
            "{io} {method} {version} {connection}: the upstream saw a smuggled request"
        );
    }
});

/// The same payload over TLS (openssl s_client as the client, the proxy's default
/// certificate): one request upstream with its body framed, and the next client's answer is
/// its own.
#[test]
fn the_smuggling_payload_over_tls_is_one_request() {
    let (a, m) = site();
    let p = Proxy::start("uring", &m, &[]);
    let mut child = std::process::Command::new("openssl")
        .args(["s_client", "-quiet", "-connect", &p.https.to_string(), "-servername", "sec.test"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("openssl s_client");
    child.stdin.as_mut().unwrap().write_all(&smuggling_payload("POST", "HTTP/1.1", "Content-Length")).unwrap();
    let mut out = child.stdout.take().unwrap();
    let reader = std::thread::spawn(move || {
        let mut text = Vec::new();
        let mut chunk = [0u8; 4096];
        while !String::from_utf8_lossy(&text).contains("body-len=") {
            match out.read(&mut chunk) {
                Ok(0) | Err(_) => break,
                Ok(n) => text.extend_from_slice(&chunk[..n]),
            }
        }
        String::from_utf8_lossy(&text).into_owned()
    });
    let start = std::time::Instant::now();
    while !reader.is_finished() && start.elapsed() < Duration::from_secs(10) {
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = child.kill();
    let _ = child.wait();
    let text = reader.join().unwrap();
    assert!(text.starts_with("HTTP/1.1 200"), "{text}");
    assert!(text.contains("path=/submit\n") && text.contains("header content-length: 46\n"), "{text}");
    let next = get(p.http, "sec.test", "/victim");
    assert!(next.text().contains("path=/victim\n"), "{}", next.text());
    std::thread::sleep(Duration::from_millis(50));
    assert_eq!(a.hits(), 2, "the upstream saw a smuggled request");
}

#[test]
fn framing_fields_go_upstream_canonical() {
    let (_a, m) = site();
    let p = Proxy::start("uring", &m, &[]);
    let post = |head: &str, body: &[u8]| {
        let mut req = head.as_bytes().to_vec();
        req.extend_from_slice(body);
        raw(p.http, &req).expect("a response")
    };
    // Leading zeros and a repeated identical length: one canonical value.
    let r = post("POST /cl HTTP/1.1\r\nHost: sec.test\r\nContent-Length: 0005\r\nConnection: close\r\n\r\n", b"hello");
    assert!(r.text().contains("header content-length: 5\n") && r.text().contains("body-len=5\n"), "{}", r.text());
    let r = post(
        "POST /cl HTTP/1.1\r\nHost: sec.test\r\nContent-Length: 5\r\nContent-Length: 5\r\nConnection: close\r\n\r\n",
        b"hello",
    );
    assert_eq!(r.text().matches("header content-length:").count(), 1, "{}", r.text());
    // Different lengths: refused.
    let r = post(
        "POST /cl HTTP/1.1\r\nHost: sec.test\r\nContent-Length: 5\r\nContent-Length: 6\r\nConnection: close\r\n\r\n",
        b"hello!",
    );
    assert_eq!(r.status, 400);
    // Chunked with extensions and a trailer section naming framing and routing fields: the
    // upstream gets the payload in chunks the proxy framed, and no trailer.
    let r = post(
        "POST /te HTTP/1.1\r\nHost: sec.test\r\nTransfer-Encoding: chunked\r\nTrailer: Host\r\nConnection: close\r\n\r\n",
        b"3;ext=\"x\"\r\nabc\r\n2\r\nde\r\n0\r\nHost: evil.test\r\nContent-Length: 9\r\nX-Checksum: 1\r\n\r\n",
    );
    let t = r.text();
    assert!(t.contains("body-len=5\n"), "{t}");
    assert!(!t.contains("trailer "), "request trailers reached the upstream: {t}");
    assert!(!t.contains("header trailer:"), "{t}");
}

/// An upstream whose every response carries `Connection: Content-Length` (and a padded
/// length), answered on a keep-alive connection.
fn hostile_upstream() -> SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    std::thread::spawn(move || {
        for mut s in l.incoming().flatten() {
            std::thread::spawn(move || {
                let mut buf = Vec::new();
                let mut tmp = [0u8; 4096];
                loop {
                    while let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                        buf.drain(..i + 4);
                        let resp = b"HTTP/1.1 200 OK\r\nContent-Length: 005\r\nConnection: Content-Length, X-Secret\r\nX-Secret: hop\r\n\r\nhello";
                        if s.write_all(resp).is_err() {
                            return;
                        }
                    }
                    match s.read(&mut tmp) {
                        Ok(0) | Err(_) => return,
                        Ok(n) => buf.extend_from_slice(&tmp[..n]),
                    }
                }
            });
        }
    });
    addr
}

#[test]
fn an_upstream_connection_header_naming_content_length_does_not_unframe_the_response() {
    let up = hostile_upstream();
    let m = service("svc-h", &[up]) + &ingress("h", Some("hostile.test"), &[("/", "svc-h")]);
    let p = Proxy::start("uring", &m, &[]);
    let mut s = connect(p.http);
    s.write_all(b"GET /1 HTTP/1.1\r\nHost: hostile.test\r\n\r\nGET /2 HTTP/1.1\r\nHost: hostile.test\r\n\r\n").unwrap();
    let mut pending = Vec::new();
    for i in 0..2 {
        let r = read_response(&mut s, &mut pending, false).expect("a response");
        assert_eq!(r.header("content-length"), Some("5"), "response {i}: {:?}", r.headers);
        assert_eq!(r.header("x-secret"), None, "response {i}: a field Connection names passed");
        assert_eq!(r.text(), "hello", "response {i}");
    }
    // The same to HTTP/2 clients: the field the upstream's Connection names is dropped, and
    // the length is the proxy's own, canonical.
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let (secret, length, body) = rt.block_on(async {
        let client = h2c_client(p.http).await;
        let mut client = client.ready().await.unwrap();
        let req = http::Request::get("http://hostile.test/h2").body(()).unwrap();
        let (resp, _) = client.send_request(req, true).unwrap();
        let resp = resp.await.unwrap();
        let secret = resp.headers().get("x-secret").map(|v| v.to_str().unwrap().to_string());
        let length = resp.headers().get("content-length").map(|v| v.to_str().unwrap().to_string());
        let mut body = resp.into_body();
        let mut text = Vec::new();
        while let Some(d) = body.data().await {
            text.extend_from_slice(&d.unwrap());
        }
        (secret, length, String::from_utf8(text).unwrap())
    });
    assert_eq!(secret, None, "HTTP/2: a field the upstream's Connection names passed");
    assert_eq!((length.as_deref(), body.as_str()), (Some("5"), "hello"), "HTTP/2");
    // And to HTTP/2 over TLS (ALPN h2), as curl sees it.
    let port = p.https.port();
    let (ok, out, err) = run(std::process::Command::new("curl").args([
        "-sk",
        "--http2",
        "-D",
        "-",
        "--resolve",
        &format!("hostile.test:{port}:127.0.0.1"),
        &format!("https://hostile.test:{port}/tls"),
    ]));
    assert!(ok && out.starts_with("HTTP/2 200"), "{out} {err}");
    let head = out.to_ascii_lowercase();
    assert!(!head.contains("x-secret"), "HTTP/2 over TLS: a field the upstream's Connection names passed: {out}");
    assert!(head.contains("content-length: 5\r\n") && out.ends_with("hello"), "{out}");
}

#[test]
fn a_chunk_size_over_the_body_limit_is_refused_at_once() {
    let (a, m) = site();
    let p = Proxy::start("uring", &m, &[]);
    let mut s = connect(p.http);
    s.write_all(b"POST /big HTTP/1.1\r\nHost: small.test\r\nTransfer-Encoding: chunked\r\n\r\nfffff\r\nabc").unwrap();
    let r = read_response(&mut s, &mut Vec::new(), false).expect("an answer before the chunk's data");
    assert_eq!(r.status, 413);
    assert_eq!(a.hits(), 0, "nothing of it reached the upstream");
}

#[test]
fn underscore_header_names_are_dropped_unless_enabled() {
    let (_a, m) = site();
    let req = b"GET /u HTTP/1.1\r\nHost: sec.test\r\nX_Forwarded_For: 6.6.6.6\r\nX_Real_IP: 6.6.6.6\r\nTransfer_Encoding: chunked\r\nMy_Header: kept\r\nConnection: close\r\n\r\n";
    let p = Proxy::start("uring", &m, &[]);
    let t = raw(p.http, req).unwrap().text();
    assert!(!t.contains("6.6.6.6") && !t.contains("my_header") && !t.contains("transfer_encoding"), "{t}");
    // The same over HTTP/2.
    let (ok, out, err) = run(std::process::Command::new("curl").args([
        "-sS",
        "--http2-prior-knowledge",
        "-H",
        "X_Real_IP: 6.6.6.6",
        "-H",
        "My_Header: kept",
        &format!("http://sec.test:{}/u", p.http.port()),
        "--connect-to",
        &format!("sec.test:{0}:127.0.0.1:{0}", p.http.port()),
    ]));
    assert!(ok, "{err}");
    assert!(out.contains("path=/u\n") && !out.contains("6.6.6.6") && !out.contains("my_header"), "{out}");
    drop(p);

    let cm = "---\napiVersion: v1\nkind: ConfigMap\nmetadata: {name: ringress, namespace: ringress}\ndata: {enable-underscores-in-headers: \"true\"}\n";
    let p = Proxy::start("uring", &(m + cm), &[]);
    let t = raw(p.http, req).unwrap().text();
    assert!(t.contains("header my_header: kept\n"), "{t}");
}

#[test]
fn trace_connect_and_bad_host_ports_are_refused() {
    let (a, m) = site();
    let p = Proxy::start("uring", &m, &[]);
    let r = raw(p.http, b"TRACE / HTTP/1.1\r\nHost: sec.test\r\nConnection: close\r\n\r\n").unwrap();
    assert_eq!(r.status, 405);
    let allow = r.header("allow").unwrap_or_default();
    assert!(allow.contains("GET") && !allow.contains("TRACE"), "Allow: {allow}");
    let r = raw(p.http, b"CONNECT sec.test:443 HTTP/1.1\r\nHost: sec.test:443\r\n\r\n").unwrap();
    assert_eq!(r.status, 501);
    for host in ["sec.test:abc", "sec.test:80x", "sec.test:123456", "[::1]x", "[zz]:80"] {
        let r = raw(p.http, format!("GET / HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n").as_bytes()).unwrap();
        assert_eq!(r.status, 400, "Host: {host}");
    }
    let r = get(p.http, "sec.test:8080", "/ok");
    assert_eq!(r.status, 200);

    // HTTP/2: CONNECT is 501 and TRACE 405, never forwarded.
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let statuses = rt.block_on(async {
        let client = h2c_client(p.http).await;
        let mut out = Vec::new();
        for (method, uri) in [("CONNECT", "sec.test:443"), ("TRACE", "http://sec.test/")] {
            let mut client = client.clone().ready().await.unwrap();
            let req = http::Request::builder().method(method).uri(uri).body(()).unwrap();
            let (resp, _) = client.send_request(req, true).unwrap();
            out.push(resp.await.map_or((0, false), |r| (r.status().as_u16(), r.headers().contains_key("allow"))));
        }
        out
    });
    assert_eq!(statuses, [(501, false), (405, true)], "HTTP/2 CONNECT, TRACE (with Allow)");
    assert_eq!(a.hits(), 1, "only the one good request reached the upstream");
}

// ---- dot-segments ------------------------------------------------------------------------

/// Python's http.server serving `root` (it normalises `..` and `%2e%2e` itself, as many
/// backends do), on a free port. Killed on drop.
struct PyServer {
    child: std::process::Child,
    addr: SocketAddr,
}

impl Drop for PyServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn python_backend() -> (PyServer, std::path::PathBuf) {
    let root = support::proxy::temp_dir();
    std::fs::create_dir_all(root.join("public")).unwrap();
    std::fs::create_dir_all(root.join("admin")).unwrap();
    std::fs::write(root.join("public/index.txt"), "public page\n").unwrap();
    std::fs::write(root.join("admin/secret.txt"), "TOP-SECRET\n").unwrap();
    std::fs::write(root.join("exact"), "the exact route's file\n").unwrap();
    let port = free_port();
    let child = std::process::Command::new("python3")
        .args(["-m", "http.server", "--bind", "127.0.0.1", &port.to_string(), "--directory"])
        .arg(&root)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("python3 (scripts/test.sh installs it)");
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let start = std::time::Instant::now();
    while std::net::TcpStream::connect(addr).is_err() {
        assert!(start.elapsed() < Duration::from_secs(10), "http.server did not start");
        std::thread::sleep(Duration::from_millis(50));
    }
    (PyServer { child, addr }, root)
}

/// curl with `--path-as-is` (it sends the dots untouched): (status, body).
fn curl_as_is(p: &Proxy, path: &str, h2: bool) -> (u16, String) {
    let url = format!("http://files.test:{}{path}", p.http.port());
    let mut cmd = std::process::Command::new("curl");
    cmd.args(["-sS", "--path-as-is", "--max-time", "10", "-w", "\n%{http_code}"])
        .args(["--connect-to", &format!("files.test:{0}:127.0.0.1:{0}", p.http.port())]);
    if h2 {
        cmd.arg("--http2-prior-knowledge");
    }
    let (ok, out, err) = run(cmd.arg(&url));
    assert!(ok, "curl {url}: {err}");
    let (body, code) = out.rsplit_once('\n').unwrap();
    (code.trim().parse().unwrap(), body.to_string())
}

per_backend!(fn dot_segments_never_get_past_an_ingress_path(io) {
    let (py, _root) = python_backend();
    let m = service("files", &[py.addr])
        + "---\napiVersion: networking.k8s.io/v1\nkind: Ingress\nmetadata: {name: files, namespace: default}\nspec:\n  ingressClassName: ringress\n  rules:\n  - host: files.test\n    http:\n      paths:\n      - {path: /public, pathType: Prefix, backend: {service: {name: files, port: {number: 80}}}}\n      - {path: /exact, pathType: Exact, backend: {service: {name: files, port: {number: 80}}}}\n";
    let p = Proxy::start(io, &m, &[]);
    for h2 in [false, true] {
        let proto = if h2 { "h2c" } else { "HTTP/1.1" };
        assert_eq!(curl_as_is(&p, "/public/index.txt", h2), (200, "public page\n".into()), "{io} {proto}");
        for (attack, want) in [
            // Routed by the normalised path: /admin has no route.
            ("/public/../admin/secret.txt", 404),
            ("/public/%2e%2e/admin/secret.txt", 404),
            ("/public/%2E%2E/admin/secret.txt", 404),
            ("/public/./../admin/secret.txt", 404),
            ("/public//..//admin/secret.txt", 404),
            ("/public/..;/admin/secret.txt", 404),
            // Dot-segments hidden behind encoded slashes cannot be normalised safely: 400.
            ("/public/..%2fadmin/secret.txt", 400),
            ("/public/%2e%2e%2fadmin%2fsecret.txt", 400),
            ("/public/..%5cadmin/secret.txt", 400),
            ("/public/..\\admin/secret.txt", 400),
        ] {
            let (code, body) = curl_as_is(&p, attack, h2);
            assert!(!body.contains("TOP-SECRET"), "{io} {proto} {attack}: the secret leaked");
            assert_eq!(code, want, "{io} {proto} {attack}: {body}");
        }
        // The Exact route matches the normalised path, and the upstream gets that path.
        let (code, body) = curl_as_is(&p, "/public/x/../../exact", h2);
        assert_eq!((code, body.as_str()), (200, "the exact route's file\n"), "{io} {proto}");
        let (code, _) = curl_as_is(&p, "/public/%zz", h2);
        assert_eq!(code, 400, "{io} {proto}: bad percent-encoding");
    }
});

#[test]
fn the_upstream_receives_the_normalised_path() {
    let (_a, m) = site();
    let p = Proxy::start("uring", &m, &[]);
    let r = raw(
        p.http,
        b"GET /a/./b/../c//d/%7euser/%2e%2e/%41?q=/../x HTTP/1.1\r\nHost: sec.test\r\nConnection: close\r\n\r\n",
    )
    .unwrap();
    assert!(r.text().contains("path=/a/c/d/A?q=/../x\n"), "{}", r.text());
}

// ---- slow bodies -------------------------------------------------------------------------

/// An upstream with `workers` threads, each serving one connection at a time (like a small
/// pre-forked server): one slow request ties up one worker.
fn small_upstream(workers: usize) -> SocketAddr {
    let l = std::sync::Arc::new(TcpListener::bind("127.0.0.1:0").unwrap());
    let addr = l.local_addr().unwrap();
    for _ in 0..workers {
        let l = l.clone();
        std::thread::spawn(move || {
            for s in l.incoming().flatten() {
                let _ = serve_simple(s);
            }
        });
    }
    addr
}

/// Reads requests with Content-Length bodies and answers each `ok`, until the peer closes.
fn serve_simple(mut s: std::net::TcpStream) -> std::io::Result<()> {
    let mut buf = Vec::new();
    let mut tmp = [0u8; 4096];
    loop {
        let head_end = loop {
            if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                break i + 4;
            }
            let n = s.read(&mut tmp)?;
            if n == 0 {
                return Ok(());
            }
            buf.extend_from_slice(&tmp[..n]);
        };
        let head = String::from_utf8_lossy(&buf[..head_end]).to_ascii_lowercase();
        let len: usize = head
            .lines()
            .find_map(|l| l.strip_prefix("content-length:"))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(0);
        while buf.len() < head_end + len {
            let n = s.read(&mut tmp)?;
            if n == 0 {
                return Ok(());
            }
            buf.extend_from_slice(&tmp[..n]);
        }
        buf.drain(..head_end + len);
        s.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")?;
    }
}

#[test]
fn slow_request_bodies_do_not_tie_up_a_small_upstream() {
    let up = small_upstream(4);
    let m = service("svc-s", &[up]) + &ingress("s", Some("slow.test"), &[("/", "svc-s")]);
    let p = Proxy::start("uring", &m, &[]);
    // Four clients send a 100-byte body at one byte a second, two over HTTP/1.1 and two over
    // h2c (curl reading its body from a slow pipe).
    let mut slow = Vec::new();
    for _ in 0..2 {
        let mut s = connect(p.http);
        s.write_all(b"POST /slow HTTP/1.1\r\nHost: slow.test\r\nContent-Length: 100\r\n\r\n").unwrap();
        slow.push(std::thread::spawn(move || {
            for _ in 0..30 {
                if s.write_all(b"x").is_err() {
                    break;
                }
                std::thread::sleep(Duration::from_secs(1));
            }
        }));
    }
    let mut h2_slow = Vec::new();
    for _ in 0..2 {
        let addr = p.http;
        h2_slow.push(std::thread::spawn(move || slow_h2_post(addr)));
    }
    std::thread::sleep(Duration::from_secs(2));
    // Normal requests get through at once: no slow body holds an upstream worker.
    for i in 0..7 {
        let mut s = connect(p.http);
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        s.write_all(
            format!("POST /n{i} HTTP/1.1\r\nHost: slow.test\r\nContent-Length: 2\r\nConnection: close\r\n\r\nhi")
                .as_bytes(),
        )
        .unwrap();
        let r = read_response(&mut s, &mut Vec::new(), false).unwrap_or_else(|| panic!("request {i} not answered"));
        assert_eq!((r.status, r.text().as_str()), (200, "ok"), "request {i}");
    }
    // The slow bodies themselves fall below client-body-min-rate (500 B/s after 10 s): 408.
    for t in h2_slow {
        assert_eq!(t.join().unwrap(), 408, "h2c slow body");
    }
}

/// An h2c POST of 100 bytes sent one a second: the response status (0: none).
fn slow_h2_post(addr: SocketAddr) -> u16 {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    rt.block_on(async move {
        let client = h2c_client(addr).await;
        let mut client = client.ready().await.unwrap();
        let req = http::Request::post("http://slow.test/slow-h2").header("content-length", "100").body(()).unwrap();
        let (resp, mut send) = client.send_request(req, false).unwrap();
        let sender = tokio::spawn(async move {
            for _ in 0..30 {
                if send.send_data(bytes::Bytes::from_static(b"x"), false).is_err() {
                    break;
                }
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        });
        let status = tokio::time::timeout(Duration::from_secs(40), resp).await;
        sender.abort();
        match status {
            Ok(Ok(r)) => r.status().as_u16(),
            _ => 0,
        }
    })
}

// ---- the admin listener ------------------------------------------------------------------

#[test]
fn probes_answer_while_half_sent_requests_hold_admin_connections() {
    let (_a, m) = site();
    let p = Proxy::start("uring", &m, &[]);
    // Eight (and then three hundred) connections that send half a request and wait.
    let mut held = Vec::new();
    for n in [8, 300] {
        while held.len() < n {
            let mut s = std::net::TcpStream::connect(p.admin).unwrap();
            s.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n").unwrap();
            held.push(s);
        }
        // A kubelet-style probe: 1 s timeout, four in a row.
        for i in 0..4 {
            let mut s = std::net::TcpStream::connect(p.admin).unwrap();
            s.set_read_timeout(Some(Duration::from_secs(1))).unwrap();
            s.write_all(b"GET /readyz HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
            let r = read_response(&mut s, &mut Vec::new(), false);
            assert_eq!(r.map(|r| r.status), Some(200), "probe {i} with {n} half-open connections");
        }
    }
    // The half-sent ones are closed after the head timeout (2 s), not held forever.
    let mut first = held.swap_remove(0);
    let _ = held;
    assert!(closed_within(&mut first, Duration::from_secs(5)), "a half-sent admin request was kept open");
}

#[test]
fn a_second_process_cannot_take_the_same_ports() {
    let (_a, m) = site();
    let p = Proxy::start("uring", &m, &[]);
    let dir = support::proxy::temp_dir();
    std::fs::write(dir.join("routes.yaml"), &m).unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_ringress"))
        .args(["run", "--manifests", dir.to_str().unwrap()])
        .args(["--http", &p.http.to_string(), "--https", "127.0.0.1:0", "--admin", "127.0.0.1:0"])
        .output()
        .unwrap();
    assert!(!out.status.success(), "a second ringress started on the same HTTP port");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("another process already listens"), "{err}");
    // The first one still serves everything.
    assert_eq!(get(p.http, "sec.test", "/still").status, 200);
}

// ---- HTTP/2 slow readers -----------------------------------------------------------------

/// What one slow-reading HTTP/2 client saw: streams reset by the proxy, and bytes received.
struct SlowReader {
    resets: std::sync::Arc<std::sync::atomic::AtomicUsize>,
    bytes: std::sync::Arc<std::sync::atomic::AtomicUsize>,
}

/// An h2c client that opens `streams` requests for a 4 MiB response each with a stream window
/// of one byte, and then takes one byte per stream every 8 seconds (each byte credited back
/// at once, so WINDOW_UPDATE frames keep coming), for `secs` seconds.
fn slow_reader(addr: SocketAddr, streams: usize, secs: u64) -> SlowReader {
    use std::sync::atomic::{AtomicUsize, Ordering};
    let resets = std::sync::Arc::new(AtomicUsize::new(0));
    let bytes = std::sync::Arc::new(AtomicUsize::new(0));
    let (r, b) = (resets.clone(), bytes.clone());
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        rt.block_on(async move {
            let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
            let (client, conn) =
                h2::client::Builder::new().initial_window_size(1).handshake::<_, bytes::Bytes>(tcp).await.unwrap();
            tokio::spawn(async move {
                let _ = conn.await;
            });
            let mut tasks = Vec::new();
            for i in 0..streams {
                let mut client = client.clone().ready().await.unwrap();
                let req = http::Request::get(format!("http://slow.test/bytes/4194304?s={i}")).body(()).unwrap();
                let (resp, _) = client.send_request(req, true).unwrap();
                let (r, b) = (r.clone(), b.clone());
                tasks.push(tokio::spawn(async move {
                    let Ok(resp) = resp.await else {
                        r.fetch_add(1, Ordering::SeqCst);
                        return;
                    };
                    let mut body = resp.into_body();
                    loop {
                        match body.data().await {
                            Some(Ok(d)) => {
                                b.fetch_add(d.len(), Ordering::SeqCst);
                                let _ = body.flow_control().release_capacity(d.len());
                                tokio::time::sleep(Duration::from_secs(8)).await;
                            }
                            Some(Err(_)) => {
                                r.fetch_add(1, Ordering::SeqCst);
                                return;
                            }
                            None => return,
                        }
                    }
                }));
            }
            tokio::time::sleep(Duration::from_secs(secs)).await;
            for t in tasks {
                t.abort();
            }
        });
    });
    SlowReader { resets, bytes }
}

#[test]
fn http2_slow_readers_pin_bounded_memory_and_upstreams() {
    use std::sync::atomic::Ordering;
    let a = Upstream::start("a");
    // A response rate of 64 KiB/s (after the 10 s grace), so the test sees the cancel soon;
    // the default of 500 B/s cancels the same streams after ~40 s.
    let cm = "---\napiVersion: v1\nkind: ConfigMap\nmetadata: {name: ringress, namespace: ringress}\ndata: {client-body-min-rate: \"65536\"}\n";
    let m = service("svc-a", &[a.addr]) + &ingress("slow", Some("slow.test"), &[("/", "svc-a")]) + cm;
    let p = Proxy::start("uring", &m, &["--workers", "1"]);
    let _ = get(p.http, "slow.test", "/bytes/10");
    let before = p.rss_kib();
    let clients: Vec<SlowReader> = (0..8).map(|_| slow_reader(p.http, 128, 40)).collect();
    // Each client connection gets at most 32 upstream exchanges at a time: 8 x 32 = 256
    // upstream connections, not 8 x 128. Wait until they are all open and stalled.
    p.wait_for(|| a.conns.load(Ordering::SeqCst) >= 8 * 32, "256 upstream connections");
    std::thread::sleep(Duration::from_secs(2));
    let conns = a.conns.load(Ordering::SeqCst);
    let grown = p.rss_kib().saturating_sub(before);
    eprintln!("8 slow readers x 128 streams: {conns} upstream connections, RSS +{grown} KiB");
    assert!(conns <= 8 * 32 + 1, "upstream connections per client connection not capped: {conns}");
    // Before the fix each such client pinned ~8 MiB (every stream's upstream read and the
    // response data queued past the window); now at most 32 streams hold one 16 KiB chunk.
    assert!(grown < 8 * 3 * 1024, "RSS grew by {grown} KiB for 8 slow readers");
    // The byte-counted minimum rate resets the stalled streams although their WINDOW_UPDATE
    // frames keep coming (a timer on credit alone would never fire).
    let start = std::time::Instant::now();
    while !clients.iter().all(|c| c.resets.load(Ordering::SeqCst) >= 32) {
        assert!(start.elapsed() < Duration::from_secs(60), "stalled streams were not reset");
        std::thread::sleep(Duration::from_millis(100));
    }
    let got: usize = clients.iter().map(|c| c.bytes.load(Ordering::SeqCst)).sum();
    assert!(got < 8 * 128 * 64, "the slow readers were sent {got} bytes");
}
