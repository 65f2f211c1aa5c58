//! End-to-end HTTP/1.1 proxying over real loopback sockets, on both I/O backends: routing,
//! keep-alive, pipelining, streamed bodies, WebSocket, forwarded headers, HTTP/1.0, HEAD.

mod support;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use support::*;

fn two_upstreams() -> (Upstream, Upstream, String) {
    let a = Upstream::start("a");
    let b = Upstream::start("b");
    let m = service("svc-a", &[a.addr])
        + &service("svc-b", &[b.addr])
        + &service("svc-empty", &[])
        + &ingress("site", Some("www.example.com"), &[("/", "svc-a"), ("/api", "svc-b"), ("/down", "svc-empty")])
        + &ingress("wild", Some("*.example.org"), &[("/", "svc-b")]);
    (a, b, m)
}

per_backend!(smoke fn routes_by_host_and_path(io) {
    let (_a, _b, m) = two_upstreams();
    let p = Proxy::start(io, &m, &[]);
    let who = |host: &str, path: &str| {
        let r = get(p.http, host, path);
        (r.status, r.header("x-upstream").unwrap_or("-").to_string())
    };
    assert_eq!(who("www.example.com", "/"), (200, "a".into()), "{io}");
    assert_eq!(who("WWW.Example.com:8080", "/index.html"), (200, "a".into()), "{io}");
    assert_eq!(who("www.example.com", "/api"), (200, "b".into()), "{io}");
    assert_eq!(who("www.example.com", "/api/v1/x?q=1"), (200, "b".into()), "{io}");
    assert_eq!(who("www.example.com", "/apix"), (200, "a".into()), "{io}: /apix is not under /api");
    assert_eq!(who("shop.example.org", "/"), (200, "b".into()), "{io}");
    assert_eq!(who("a.shop.example.org", "/").0, 404, "{io}: wildcard covers one label");
    assert_eq!(who("other.net", "/").0, 404, "{io}");
    assert_eq!(who("www.example.com", "/down").0, 503, "{io}");
    // The query string reaches the upstream untouched.
    let r = get(p.http, "www.example.com", "/api/q?x=1&y=%20");
    assert!(r.text().contains("path=/api/q?x=1&y=%20"), "{io}: {}", r.text());
});

per_backend!(fn keep_alive_and_pipelining_answer_in_order(io) {
    let (a, _b, m) = two_upstreams();
    let p = Proxy::start(io, &m, &[]);
    let mut s = connect(p.http);
    let mut pending = Vec::new();
    // Sequential requests on one connection.
    for i in 0..5 {
        write!(s, "GET /seq/{i} HTTP/1.1\r\nHost: www.example.com\r\n\r\n").unwrap();
        let r = read_response(&mut s, &mut pending, false).expect("response");
        assert!(r.text().contains(&format!("path=/seq/{i}\n")), "{io}: {}", r.text());
    }
    // Pipelined: all requests in one write, answers in order.
    let mut batch = Vec::new();
    for i in 0..10 {
        let host = if i % 2 == 0 { "www.example.com" } else { "x.example.org" };
        batch.extend_from_slice(format!("GET /pipe/{i} HTTP/1.1\r\nHost: {host}\r\n\r\n").as_bytes());
    }
    batch.extend_from_slice(b"POST /pipe/body HTTP/1.1\r\nHost: www.example.com\r\nContent-Length: 5\r\n\r\nhello");
    batch.extend_from_slice(b"GET /pipe/last HTTP/1.1\r\nHost: www.example.com\r\n\r\n");
    s.write_all(&batch).unwrap();
    for i in 0..10 {
        let r = read_response(&mut s, &mut pending, false).expect("pipelined response");
        let want = if i % 2 == 0 { "a" } else { "b" };
        assert_eq!(r.header("x-upstream"), Some(want), "{io}");
        assert!(r.text().contains(&format!("path=/pipe/{i}\n")), "{io}: {}", r.text());
    }
    let r = read_response(&mut s, &mut pending, false).unwrap();
    assert!(r.text().contains("body-len=5\n"), "{io}: {}", r.text());
    let r = read_response(&mut s, &mut pending, false).unwrap();
    assert!(r.text().contains("path=/pipe/last\n"), "{io}: {}", r.text());
    // Upstream connections were reused, not opened per request.
    assert!(a.conns.load(std::sync::atomic::Ordering::SeqCst) <= 3, "{io}: upstream keep-alive not reused");
});

per_backend!(fn forwarded_headers_set_and_hop_by_hop_removed(io) {
    let (_a, _b, m) = two_upstreams();
    let p = Proxy::start(io, &m, &[]);
    let r = raw(
        p.http,
        b"GET /h HTTP/1.1\r\nHost: www.example.com\r\nX-Forwarded-For: 203.0.113.9\r\nX-Real-IP: 1.2.3.4\r\nConnection: keep-alive, X-Secret\r\nX-Secret: hop\r\nKeep-Alive: timeout=5\r\nTE: trailers\r\nProxy-Connection: keep-alive\r\nX-End-To-End: kept\r\n\r\n",
    )
    .unwrap();
    let t = r.text();
    // As ingress-nginx by default: the client's claim is not appended to, it travels apart.
    assert!(t.contains("header x-forwarded-for: 127.0.0.1\n"), "{io}: {t}");
    assert!(t.contains("header x-original-forwarded-for: 203.0.113.9\n"), "{io}: {t}");
    assert!(t.contains("header x-real-ip: 127.0.0.1\n"), "{io}: {t}");
    assert!(t.contains("header x-forwarded-proto: http\n"), "{io}: {t}");
    assert!(t.contains("header x-forwarded-host: www.example.com\n"), "{io}: {t}");
    assert!(t.contains("header host: www.example.com\n"), "{io}: {t}");
    assert!(t.contains("header x-end-to-end: kept\n"), "{io}: {t}");
    for gone in ["x-secret", "keep-alive", "te:", "proxy-connection", "header connection"] {
        assert!(!t.contains(&format!("header {gone}")) && !t.contains(gone), "{io}: {gone} leaked upstream: {t}");
    }
});

/// The three backends' 350 MB runs take turns: each measures its proxy's memory, and three at
/// once on two cores would measure the machine's contention as much as the proxy.
static STREAMING: std::sync::Mutex<()> = std::sync::Mutex::new(());

per_backend!(smoke fn large_bodies_stream_both_ways_without_buffering(io) {
    let _turn = STREAMING.lock().unwrap_or_else(|e| e.into_inner());
    const SIZE: usize = 100 << 20;
    let (_a, _b, m) = two_upstreams();
    let p = Proxy::start(io, &m, &["--workers", "1"]);
    // A few MB each way first, so what the first streams allocate once (buffers, the
    // allocator's pages) is in the baseline: what is measured is what 350 MB more cost.
    let url = format!("http://{}/upload", p.http);
    let warm = p.dir.join("warm.bin");
    std::fs::write(&warm, vec![7u8; 4 << 20]).unwrap();
    for framing in ["Content-Type: application/octet-stream", "Transfer-Encoding: chunked"] {
        let (ok, _, err) = run(std::process::Command::new("curl")
            .args(["-sS", "-o", "/dev/null", "-H", "Host: www.example.com", "-H", framing, "--data-binary"])
            .arg(format!("@{}", warm.display()))
            .arg(&url));
        assert!(ok, "{io}: warm-up upload: {err}");
    }
    let mut s = TcpStream::connect(p.http).unwrap();
    for path in [format!("/bytes/{}", 4 << 20), format!("/chunked/{}", 4 << 20)] {
        write!(s, "GET {path} HTTP/1.1\r\nHost: www.example.com\r\n\r\n").unwrap();
        assert_eq!(read_response(&mut s, &mut Vec::new(), false).unwrap().body.len(), 4 << 20, "{io}: warm-up");
    }
    let rss_before = p.rss_kib();

    // 100 MB download, Content-Length.
    write!(s, "GET /bytes/{SIZE} HTTP/1.1\r\nHost: www.example.com\r\n\r\n").unwrap();
    let r = read_response(&mut s, &mut Vec::new(), false).unwrap();
    assert_eq!(r.body.len(), SIZE, "{io}");
    assert!(r.body.iter().enumerate().all(|(i, &b)| b == upstream::pattern(i)), "{io}: corrupted download");
    drop(r);

    // 100 MB download, chunked.
    write!(s, "GET /chunked/{} HTTP/1.1\r\nHost: www.example.com\r\n\r\n", SIZE / 4).unwrap();
    let r = read_response(&mut s, &mut Vec::new(), false).unwrap();
    assert_eq!(r.body.len(), SIZE / 4, "{io}");
    assert!(r.body.iter().enumerate().all(|(i, &b)| b == upstream::pattern(i)), "{io}: corrupted chunked download");

    // 100 MB uploads, streamed from curl.
    let file = p.dir.join("upload.bin");
    let data: Vec<u8> = (0..SIZE).map(|i| (i * 7 % 256) as u8).collect();
    let sum = data.iter().fold(0u64, |a, &b| a.wrapping_add(b as u64));
    std::fs::write(&file, &data).unwrap();
    drop(data);
    // With Content-Length, then the same upload chunked.
    for framing in ["Content-Type: application/octet-stream", "Transfer-Encoding: chunked"] {
        let (ok, out, err) = run(std::process::Command::new("curl")
            .args(["-sS", "-H", "Host: www.example.com", "-H", framing, "--data-binary"])
            .arg(format!("@{}", file.display()))
            .arg(&url));
        assert!(ok, "{io} {framing}: curl failed: {err}");
        assert!(
            out.contains(&format!("body-len={SIZE}\n")) && out.contains(&format!("body-sum={sum}\n")),
            "{io} {framing}: {out}"
        );
    }

    let grown = p.rss_kib().saturating_sub(rss_before);
    eprintln!("{io}: proxy RSS grew by {grown} KiB while streaming 350 MB (before: {rss_before} KiB)");
    assert!(grown < 8 * 1024, "{io}: proxy RSS grew by {grown} KiB while streaming 350 MB");
});

per_backend!(smoke fn websocket_upgrade_tunnels_both_ways(io) {
    let (_a, _b, m) = two_upstreams();
    let p = Proxy::start(io, &m, &[]);
    let mut s = connect(p.http);
    s.write_all(b"GET /ws HTTP/1.1\r\nHost: www.example.com\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n").unwrap();
    let mut pending = Vec::new();
    let r = read_response(&mut s, &mut pending, false).unwrap();
    assert_eq!(r.status, 101, "{io}");
    assert_eq!(r.header("upgrade"), Some("websocket"), "{io}");
    assert_eq!(r.header("sec-websocket-accept"), Some("s3pPLMBiTxaQ9kYGzzhZRbK+xOo="), "{io}");
    for msg in [&b"hello"[..], &[7u8; 70_000][..], b"bye"] {
        s.write_all(&upstream::frame(1, msg, Some([1, 2, 3, 4]))).unwrap();
        let want = upstream::frame(1, msg, None);
        let mut got = std::mem::take(&mut pending);
        while got.len() < want.len() {
            let mut b = vec![0u8; 65536];
            let n = s.read(&mut b).unwrap();
            assert!(n > 0, "{io}: tunnel closed");
            got.extend_from_slice(&b[..n]);
        }
        assert_eq!(got, want, "{io}: echoed frame differs");
    }
    // Close frame: the upstream answers and closes; the tunnel passes the close on.
    s.write_all(&upstream::frame(8, b"", Some([9, 9, 9, 9]))).unwrap();
    let mut rest = Vec::new();
    let _ = s.read_to_end(&mut rest);
    assert_eq!(rest, upstream::frame(8, b"", None), "{io}");
});

per_backend!(fn http10_head_close_and_expect_continue(io) {
    let (_a, _b, m) = two_upstreams();
    let p = Proxy::start(io, &m, &[]);
    // HTTP/1.0 without keep-alive: answered, then closed.
    let mut s = TcpStream::connect(p.http).unwrap();
    s.write_all(b"GET /ten HTTP/1.0\r\nHost: www.example.com\r\n\r\n").unwrap();
    let mut all = Vec::new();
    s.read_to_end(&mut all).unwrap();
    let text = String::from_utf8_lossy(&all);
    assert!(text.starts_with("HTTP/1.1 200") && text.contains("path=/ten\n"), "{io}: {text}");
    // HTTP/1.0 without Host is routed by the any-host rules (none here): 404, not 400.
    assert_eq!(raw(p.http, b"GET / HTTP/1.0\r\n\r\n").unwrap().status, 404, "{io}");
    // HTTP/1.0 client, chunked upstream response: decoded, delimited by close.
    let mut s = TcpStream::connect(p.http).unwrap();
    s.write_all(b"GET /chunked/100000 HTTP/1.0\r\nHost: www.example.com\r\nConnection: keep-alive\r\n\r\n")
        .unwrap();
    let r = read_response(&mut s, &mut Vec::new(), false).unwrap();
    assert!(r.header("transfer-encoding").is_none(), "{io}");
    assert_eq!(r.body.len(), 100000, "{io}");
    // HEAD: Content-Length kept, no body waited for; keep-alive continues.
    let mut s = connect(p.http);
    let mut pending = Vec::new();
    s.write_all(
        b"HEAD /head HTTP/1.1\r\nHost: www.example.com\r\n\r\nGET /after HTTP/1.1\r\nHost: www.example.com\r\n\r\n",
    )
    .unwrap();
    let r = read_response(&mut s, &mut pending, true).unwrap();
    assert_eq!(r.status, 200, "{io}");
    assert!(r.header("content-length").unwrap().parse::<usize>().unwrap() > 0, "{io}");
    let r = read_response(&mut s, &mut pending, false).unwrap();
    assert!(r.text().contains("path=/after\n"), "{io}: {}", r.text());
    // Connection: close is honoured.
    let mut s = TcpStream::connect(p.http).unwrap();
    s.write_all(b"GET / HTTP/1.1\r\nHost: www.example.com\r\nConnection: close\r\n\r\n").unwrap();
    let r = read_response(&mut s, &mut Vec::new(), false).unwrap();
    assert_eq!(r.header("connection"), Some("close"), "{io}");
    assert!(closed_within(&mut s, Duration::from_secs(5)), "{io}");
    // A close-delimited upstream body reaches the client, and the client is closed after.
    let r = get(p.http, "www.example.com", "/close");
    assert_eq!(r.text(), "until-close body", "{io}");
    // Expect: 100-continue, with curl waiting for the 100 before sending the body.
    let url = format!("http://{}/expect", p.http);
    let (ok, out, err) = run(std::process::Command::new("curl").args([
        "-sS",
        "-v",
        "-H",
        "Host: www.example.com",
        "-H",
        "Expect: 100-continue",
        "--expect100-timeout",
        "30",
        "--data-binary",
        "0123456789",
        &url,
    ]));
    assert!(ok, "{io}: {err}");
    assert!(err.contains("HTTP/1.1 100 Continue"), "{io}: no 100 Continue: {err}");
    assert!(out.contains("body-len=10\n"), "{io}: {out}");
    assert!(!out.contains("header expect"), "{io}: Expect forwarded: {out}");
    // Upstream status codes pass through.
    assert_eq!(get(p.http, "www.example.com", "/status/418").status, 418, "{io}");
    assert_eq!(get(p.http, "www.example.com", "/status/204").status, 204, "{io}");
});

per_backend!(fn interim_responses_reach_http11_clients_only(io) {
    let (_a, _b, m) = two_upstreams();
    let p = Proxy::start(io, &m, &[]);
    let mut s = connect(p.http);
    let mut pending = Vec::new();
    s.write_all(b"GET /early HTTP/1.1\r\nHost: www.example.com\r\n\r\n").unwrap();
    let r = read_response(&mut s, &mut pending, false).unwrap();
    assert_eq!(r.status, 103, "{io}");
    assert_eq!(r.header("link"), Some("</style.css>; rel=preload"), "{io}");
    let r = read_response(&mut s, &mut pending, false).unwrap();
    assert_eq!((r.status, r.text().as_str()), (200, "final"), "{io}");
    // HTTP/1.0 has no interim responses (RFC 9110 §15.2): only the final one arrives.
    let mut s = connect(p.http);
    s.write_all(b"GET /early HTTP/1.0\r\nHost: www.example.com\r\n\r\n").unwrap();
    let r = read_response(&mut s, &mut Vec::new(), false).unwrap();
    assert_eq!((r.status, r.text().as_str()), (200, "final"), "{io}");
});

/// Idle keep-alive connections hold no read buffer: with io_uring the kernel fills one from
/// the worker's pool of provided buffers when bytes arrive, and when the pool is used up in
/// one turn (shrunk to 2 buffers here) the read falls back to a buffer of its own. Many
/// connections speaking at once, with heads longer than a pool buffer among them, are all
/// answered, round after round.
#[test]
fn idle_connections_that_speak_at_once_are_all_answered() {
    for (io, pool) in [("uring", None), ("uring", Some("2")), ("epoll", None), ("tokio-uring", None)] {
        let (_a, _b, m) = two_upstreams();
        let dir = proxy::temp_dir();
        std::fs::write(dir.join("routes.yaml"), &m).unwrap();
        let p = Proxy::start_with(dir, io, &["--workers", "1"], |c| {
            if let Some(n) = pool {
                c.env("RINGRESS_TEST_READ_POOL", n);
            }
        });
        let mut conns: Vec<(TcpStream, Vec<u8>)> = (0..200).map(|_| (connect(p.http), Vec::new())).collect();
        let pad = "p".repeat(3000);
        for round in 0..4 {
            for (i, (s, _)) in conns.iter_mut().enumerate() {
                let extra = if i % 7 == 0 { format!("X-Pad: {pad}\r\n") } else { String::new() };
                write!(s, "GET /r{round}/c{i} HTTP/1.1\r\nHost: www.example.com\r\n{extra}\r\n").unwrap();
            }
            for (i, (s, pending)) in conns.iter_mut().enumerate() {
                let r = read_response(s, pending, false).unwrap_or_else(|| panic!("{io} {pool:?}: no answer on {i}"));
                assert_eq!(r.status, 200, "{io} {pool:?}: round {round}, connection {i}");
                assert!(r.text().contains(&format!("path=/r{round}/c{i}\n")), "{io} {pool:?}: {}", r.text());
            }
        }
    }
}
