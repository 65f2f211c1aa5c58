//! Downstream HTTP/2 with real clients (curl, h2load) and raw frames: h2c with prior
//! knowledge and h2 over TLS (ALPN) on both I/O backends, streamed bodies both ways through
//! the HTTP/1.1 pools, the body limit, the concurrent-stream limit, and the known HTTP/2
//! attacks (rapid reset, CONTINUATION flood, SETTINGS and PING floods, HPACK bomb) each
//! ending in a bounded way.

mod support;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use support::*;

fn curl(args: &[&str]) -> (bool, String, String) {
    run(std::process::Command::new("curl").args(["-sS", "--max-time", "20"]).args(args))
}

fn site(io: &str) -> (Upstream, Proxy) {
    let a = Upstream::start("a");
    let m = service("svc-a", &[a.addr])
        + &ingress("site", Some("h2.test"), &[("/", "svc-a")])
        + "---\napiVersion: networking.k8s.io/v1\nkind: Ingress\nmetadata:\n  name: small\n  namespace: default\n  annotations: {nginx.ingress.kubernetes.io/proxy-body-size: 64k}\nspec:\n  ingressClassName: ringress\n  rules:\n  - host: small.test\n    http:\n      paths:\n      - {path: /, pathType: Prefix, backend: {service: {name: svc-a, port: {number: 80}}}}\n";
    let p = Proxy::start(io, &m, &["--h2-max-concurrent-streams", "32"]);
    (a, p)
}

per_backend!(fn curl_over_h2c_and_h2_over_tls_streams_bodies_both_ways(io) {
    let (_a, p) = site(io);
    let plain = format!("http://h2.test:{}", p.http.port());
    let tls = format!("https://h2.test:{}", p.https.port());
    let r1 = format!("h2.test:{}:127.0.0.1", p.http.port());
    let r2 = format!("h2.test:{}:127.0.0.1", p.https.port());
    let (ok, out, err) =
        curl(&["--http2-prior-knowledge", "--resolve", &r1, "-w", "\n%{http_version}", &format!("{plain}/x?q=1")]);
    assert!(ok && out.ends_with("\n2"), "{io}: {out} {err}");
    assert!(out.contains("path=/x?q=1") && out.contains("header x-forwarded-proto: http\n"), "{io}: {out}");
    let (ok, out, err) = curl(&["--http2", "-k", "--resolve", &r2, "-w", "\n%{http_version}", &format!("{tls}/y")]);
    assert!(ok && out.ends_with("\n2"), "{io}: ALPN h2: {out} {err}");
    assert!(out.contains("header x-forwarded-proto: https\n"), "{io}: {out}");

    // 8 MB down (Content-Length upstream) and 8 MB down chunked, byte-exact.
    for kind in ["bytes", "chunked"] {
        let (ok, out, err) = curl(&[
            "--http2",
            "-k",
            "--resolve",
            &r2,
            "-o",
            "/dev/null",
            "-w",
            "%{size_download} %{http_code}",
            &format!("{tls}/{kind}/8000000"),
        ]);
        assert!(ok && out == "8000000 200", "{io}: {kind}: {out} {err}");
    }
    // 5 MB up, with and without a content-length: the upstream sees every byte.
    let file = support::proxy::temp_dir().join("up.bin");
    std::fs::write(&file, (0..5_000_000u32).map(|i| (i % 251) as u8).collect::<Vec<_>>()).unwrap();
    let expect_sum: u64 = (0..5_000_000u64).map(|i| i % 251).sum();
    let data = format!("@{}", file.display());
    for extra in [&[][..], &["-H", "Transfer-Encoding: chunked"][..]] {
        let mut args = vec!["--http2-prior-knowledge", "--resolve", &r1, "--data-binary", &data];
        args.extend_from_slice(extra);
        let url = format!("{plain}/upload");
        args.push(&url);
        let (ok, out, err) = curl(&args);
        assert!(ok, "{io}: {err}");
        assert!(
            out.contains("body-len=5000000\n") && out.contains(&format!("body-sum={expect_sum}\n")),
            "{io}: {out}"
        );
    }
    // proxy-body-size over HTTP/2: 413 before the body (content-length) or while it
    // streams (none). curl 7.88 reports the RST_STREAM(NO_ERROR) that follows the
    // answer as an error, so this uses the h2 crate as the client.
    for declared in [true, false] {
        assert_eq!(h2_post(p.http, "small.test", 5_000_000, declared), 413, "{io}: declared={declared}");
        assert_eq!(h2_post(p.http, "small.test", 60_000, declared), 200, "{io}: declared={declared}");
    }
});

/// POSTs `n` bytes over h2c with the h2 crate; the response status.
fn h2_post(addr: std::net::SocketAddr, host: &str, n: usize, declare_length: bool) -> u16 {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    rt.block_on(async {
        let client = h2c_client(addr).await;
        let mut client = client.ready().await.unwrap();
        let mut req = http::Request::post(format!("http://{host}/upload"));
        if declare_length {
            req = req.header("content-length", n);
        }
        let (resp, mut send) = client.send_request(req.body(()).unwrap(), false).unwrap();
        let sender = tokio::spawn(async move {
            let mut left = n;
            while left > 0 {
                let k = left.min(16 * 1024);
                send.reserve_capacity(k);
                match std::future::poll_fn(|cx| send.poll_capacity(cx)).await {
                    Some(Ok(cap)) if cap > 0 => {
                        let k = k.min(cap);
                        if send.send_data(bytes::Bytes::from(vec![b'x'; k]), k == left).is_err() {
                            return;
                        }
                        left -= k;
                    }
                    Some(Ok(_)) => {}
                    _ => return,
                }
            }
        });
        let status = resp.await.unwrap().status().as_u16();
        sender.abort();
        status
    })
}

per_backend!(fn h2load_sixteen_by_sixteen_has_no_failures(io) {
    let (a, p) = site(io);
    for (url, label) in [
        (format!("http://127.0.0.1:{}/", p.http.port()), "h2c"),
        (format!("https://127.0.0.1:{}/", p.https.port()), "h2"),
    ] {
        let (ok, out, err) = run(std::process::Command::new("h2load").args([
            "-n",
            "4000",
            "-c",
            "16",
            "-m",
            "16",
            "-H",
            ":authority: h2.test",
            &url,
        ]));
        assert!(ok, "{io} {label}: {err}");
        assert!(out.contains("4000 succeeded, 0 failed, 0 errored"), "{io} {label}: {out}");
    }
    // The HTTP/1.1 upstream connections were pooled, not one per request.
    // (256 streams in flight against a pool that keeps 64 idle per endpoint.)
    let conns = a.conns.load(std::sync::atomic::Ordering::SeqCst);
    assert!(conns < 2000, "{io}: {conns} upstream connections for 8000 requests");
});

// ---- raw frames -----------------------------------------------------------------------

fn frame(kind: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
    let n = payload.len();
    let mut f = vec![(n >> 16) as u8, (n >> 8) as u8, n as u8, kind, flags];
    f.extend_from_slice(&stream.to_be_bytes());
    f.extend_from_slice(payload);
    f
}

const HEADERS: u8 = 1;
const RST_STREAM: u8 = 3;
const SETTINGS: u8 = 4;
const PING: u8 = 6;
const GOAWAY: u8 = 7;
const CONTINUATION: u8 = 9;
const END_STREAM: u8 = 1;
const END_HEADERS: u8 = 4;

/// GET / for h2.test, HPACK-encoded: static-table :method GET, :scheme http, :path /, and a
/// literal :authority.
fn get_block() -> Vec<u8> {
    let mut b = vec![0x82, 0x86, 0x84, 0x41, 7];
    b.extend_from_slice(b"h2.test");
    b
}

/// An h2c connection past the preface and our SETTINGS.
fn h2c(p: &Proxy) -> TcpStream {
    let mut s = TcpStream::connect(p.http).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n").unwrap();
    s.write_all(&frame(SETTINGS, 0, 0, &[])).unwrap();
    s
}

/// Reads frames until GOAWAY or close: the GOAWAY error code, if one came.
fn goaway(s: &mut TcpStream) -> Option<u32> {
    let start = Instant::now();
    let mut buf = Vec::new();
    let mut tmp = vec![0u8; 65536];
    while start.elapsed() < Duration::from_secs(15) {
        while buf.len() >= 9 {
            let len = (buf[0] as usize) << 16 | (buf[1] as usize) << 8 | buf[2] as usize;
            if buf.len() < 9 + len {
                break;
            }
            if buf[3] == GOAWAY {
                return Some(u32::from_be_bytes(buf[9 + 4..9 + 8].try_into().unwrap()));
            }
            buf.drain(..9 + len);
        }
        match s.read(&mut tmp) {
            Ok(0) | Err(_) => return None,
            Ok(n) => buf.extend_from_slice(&tmp[..n]),
        }
    }
    None
}

/// An HPACK string length (7-bit prefix integer, no Huffman).
fn hpack_len(n: usize) -> Vec<u8> {
    if n < 127 {
        return vec![n as u8];
    }
    let mut out = vec![0x7f];
    let mut rest = n - 127;
    while rest >= 128 {
        out.push((rest % 128) as u8 | 0x80);
        rest /= 128;
    }
    out.push(rest as u8);
    out
}

const ENHANCE_YOUR_CALM: u32 = 0xb;
const PROTOCOL_ERROR: u32 = 0x1;
const COMPRESSION_ERROR: u32 = 0x9;

#[test]
fn rapid_reset_is_bounded_and_answered_with_enhance_your_calm() {
    let (a, p) = site("uring");
    let mut s = h2c(&p);
    let mut burst = Vec::new();
    for i in 0..5000u32 {
        let id = 2 * i + 1;
        burst.extend(frame(HEADERS, END_STREAM | END_HEADERS, id, &get_block()));
        burst.extend(frame(RST_STREAM, 0, id, &8u32.to_be_bytes()));
    }
    let _ = s.write_all(&burst);
    assert_eq!(goaway(&mut s), Some(ENHANCE_YOUR_CALM));
    assert!(a.hits() < 1000, "{} requests reached the upstream", a.hits());
    // The proxy is fine for everyone else.
    assert_eq!(get(p.http, "h2.test", "/").status, 200);
    let line = "ringress_h2_connection_errors_total{code=\"ENHANCE_YOUR_CALM\"} 1\n";
    let metrics = metrics_when(p.admin, |m| m.contains(line));
    assert!(metrics.contains(line), "{metrics}");
}

#[test]
fn continuation_flood_and_hpack_bomb_close_the_connection() {
    let (_a, p) = site("uring");
    // HEADERS without END_HEADERS, then CONTINUATION frames without end.
    let mut s = h2c(&p);
    let _ = s.write_all(&frame(HEADERS, END_STREAM, 1, &get_block()));
    let filler = {
        // Literal header without indexing, new name: x-a: 1000 x 'a'.
        let mut b = vec![0x00, 3, b'x', b'-', b'a'];
        b.extend(hpack_len(1000));
        b.extend(std::iter::repeat_n(b'a', 1000));
        b
    };
    let mut sent = 0usize;
    let mut closed = false;
    for _ in 0..10_000 {
        if s.write_all(&frame(CONTINUATION, 0, 1, &filler)).is_err() {
            closed = true;
            break;
        }
        sent += filler.len();
    }
    // The header block passed the 32 KiB limit after ~33 frames: the connection ends (a
    // GOAWAY, or a close that cut our writes short) long before 10 MB went in.
    let code = if closed { None } else { goaway(&mut s) };
    eprintln!("continuation flood: sent {sent} bytes, closed while writing: {closed}, GOAWAY {code:?}");
    assert!(closed || code.is_some(), "the connection stayed open through a 10 MB header block");
    assert!(
        code.is_none()
            || code == Some(PROTOCOL_ERROR)
            || code == Some(ENHANCE_YOUR_CALM)
            || code == Some(COMPRESSION_ERROR),
        "{code:?}"
    );

    // HPACK bomb: one large header inserted into the dynamic table, then referenced
    // thousands of times (each reference is one byte on the wire).
    let mut s = h2c(&p);
    let mut block = get_block();
    block.extend([0x40, 3, b'x', b'-', b'b']); // literal with indexing, 4000 bytes
    block.extend(hpack_len(4000));
    block.extend(std::iter::repeat_n(b'b', 4000));
    block.extend(std::iter::repeat_n(0xbe, 8000)); // index 62: the entry just added
    let _ = s.write_all(&frame(HEADERS, END_STREAM | END_HEADERS, 1, &block));
    // Refused: the decoded list is far over the header limit. The stream (or connection)
    // is reset; the proxy does not decode 32 MB and carries on.
    let mut tmp = [0u8; 4096];
    let _ = s.read(&mut tmp);
    assert_eq!(get(p.http, "h2.test", "/").status, 200);
    // Both connections were closed by the proxy, and counted by error code.
    let closed = |metrics: &str| -> u64 {
        metrics
            .lines()
            .filter(|l| l.starts_with("ringress_h2_connection_errors_total{"))
            .map(|l| l.split_whitespace().nth(1).unwrap().parse::<u64>().unwrap())
            .sum()
    };
    let metrics = metrics_when(p.admin, |m| closed(m) >= 2);
    assert!(closed(&metrics) >= 2, "{metrics}");
}

#[test]
fn settings_and_ping_floods_are_cut_off_with_enhance_your_calm() {
    let (_a, p) = site("uring");
    // The client never reads, so each acknowledgement would queue up: past a burst of 1,000
    // control frames (refilled at 100/s) the proxy answers GOAWAY ENHANCE_YOUR_CALM and
    // closes, and counts it.
    for (kind, payload) in [(PING, &[1u8; 8][..]), (SETTINGS, &[0, 3, 0, 0, 0, 100][..])] {
        let mut s = h2c(&p);
        s.set_write_timeout(Some(Duration::from_secs(5))).unwrap();
        let flood: Vec<u8> = (0..5000).flat_map(|_| frame(kind, 0, 0, payload)).collect();
        let _ = s.write_all(&flood);
        let code = goaway(&mut s);
        assert!(code.is_none() || code == Some(ENHANCE_YOUR_CALM), "frame type {kind}: {code:?}");
    }
    let line = "ringress_h2_connection_errors_total{code=\"ENHANCE_YOUR_CALM\"} 2\n";
    let metrics = metrics_when(p.admin, |m| m.contains(line));
    assert!(metrics.contains(line), "{metrics}");
    // A client that pings now and then is not affected.
    let mut s = h2c(&p);
    for _ in 0..50 {
        s.write_all(&frame(PING, 0, 0, &[2; 8])).unwrap();
    }
    s.write_all(&frame(HEADERS, END_STREAM | END_HEADERS, 1, &get_block())).unwrap();
    let mut buf = vec![0u8; 65536];
    let mut seen = Vec::new();
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(5) {
        let n = s.read(&mut buf).unwrap();
        assert!(n > 0, "closed");
        seen.extend_from_slice(&buf[..n]);
        // A DATA frame with END_STREAM on stream 1 ends the response.
        if find_frame(&seen, 0, 1, 1) {
            break;
        }
    }
    assert!(find_frame(&seen, 0, 1, 1), "the response to a well-behaved client");
    let rss = std::fs::read_to_string(format!("/proc/{}/status", p.child.id())).unwrap();
    let kb: u64 =
        rss.lines().find(|l| l.starts_with("VmRSS:")).unwrap().split_whitespace().nth(1).unwrap().parse().unwrap();
    assert!(kb < 200 * 1024, "RSS {kb} kB after the floods");
}

/// Whether `buf` holds a frame of `kind` on `stream` with `flags` set.
fn find_frame(buf: &[u8], kind: u8, flags: u8, stream: u32) -> bool {
    let mut i = 0;
    while i + 9 <= buf.len() {
        let len = (buf[i] as usize) << 16 | (buf[i + 1] as usize) << 8 | buf[i + 2] as usize;
        let id = u32::from_be_bytes(buf[i + 5..i + 9].try_into().unwrap()) & 0x7fff_ffff;
        if buf[i + 3] == kind && buf[i + 4] & flags == flags && id == stream {
            return true;
        }
        i += 9 + len;
    }
    false
}

#[test]
fn streams_over_the_limit_are_refused() {
    let (_a, p) = site("uring");
    let mut s = h2c(&p);
    // 40 requests whose bodies never finish: 32 are accepted, the rest refused.
    let mut burst = Vec::new();
    for i in 0..40u32 {
        burst.extend(frame(HEADERS, END_HEADERS, 2 * i + 1, &get_block()));
    }
    s.write_all(&burst).unwrap();
    let start = Instant::now();
    let mut refused = 0;
    let mut buf = Vec::new();
    let mut tmp = vec![0u8; 65536];
    while refused < 8 && start.elapsed() < Duration::from_secs(10) {
        let n = s.read(&mut tmp).unwrap();
        assert!(n > 0, "closed");
        buf.extend_from_slice(&tmp[..n]);
        while buf.len() >= 9 {
            let len = (buf[0] as usize) << 16 | (buf[1] as usize) << 8 | buf[2] as usize;
            if buf.len() < 9 + len {
                break;
            }
            if buf[3] == RST_STREAM && u32::from_be_bytes(buf[9..13].try_into().unwrap()) == 0x7 {
                refused += 1;
            }
            buf.drain(..9 + len);
        }
    }
    assert_eq!(refused, 8, "REFUSED_STREAM for each stream over 32");
}

#[test]
fn request_trailers_are_not_sent_to_an_http1_upstream() {
    let (_a, p) = site("uring");
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let body = rt.block_on(async {
        let client = h2c_client(p.http).await;
        let mut client = client.ready().await.unwrap();
        let req = http::Request::post("http://h2.test/trailers").body(()).unwrap();
        let (resp, mut send) = client.send_request(req, false).unwrap();
        send.send_data(bytes::Bytes::from_static(b"hello"), false).unwrap();
        let mut t = http::HeaderMap::new();
        t.insert("x-checksum", "abc123".parse().unwrap());
        send.send_trailers(t).unwrap();
        let mut body = resp.await.unwrap().into_body();
        let mut out = Vec::new();
        while let Some(chunk) = body.data().await {
            let chunk = chunk.unwrap();
            let _ = body.flow_control().release_capacity(chunk.len());
            out.extend_from_slice(&chunk);
        }
        String::from_utf8(out).unwrap()
    });
    // An HTTP/1.1 upstream does not need them (SECURITY.md): the body arrives, the trailer
    // section does not.
    assert!(body.contains("body-len=5\n") && !body.contains("trailer "), "{body}");
}

#[test]
fn response_trailers_from_an_http1_upstream_end_the_http2_stream() {
    let (_a, p) = site("uring");
    let n = 100_000usize;
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let (len, sum, trailers) = rt.block_on(async {
        let client = h2c_client(p.http).await;
        let mut client = client.ready().await.unwrap();
        let req = http::Request::get(format!("http://h2.test/trailers/{n}")).body(()).unwrap();
        let (resp, _) = client.send_request(req, true).unwrap();
        let mut body = resp.await.unwrap().into_body();
        let (mut len, mut sum) = (0usize, 0u64);
        while let Some(chunk) = body.data().await {
            let chunk = chunk.unwrap();
            let _ = body.flow_control().release_capacity(chunk.len());
            len += chunk.len();
            sum += chunk.iter().map(|&b| b as u64).sum::<u64>();
        }
        (len, sum, body.trailers().await.unwrap())
    });
    assert_eq!(len, n);
    let trailers = trailers.expect("trailers on the HTTP/2 stream");
    assert_eq!(trailers.get("x-sum").unwrap().to_str().unwrap(), sum.to_string());
    assert!(trailers.get("content-length").is_none(), "{trailers:?}");
    // An HTTP/1.1 client gets the chunked body with its trailer section as sent.
    let r = raw(p.http, format!("GET /trailers/{n} HTTP/1.1\r\nHost: h2.test\r\nConnection: close\r\n\r\n").as_bytes());
    assert_eq!(r.expect("a response").body.len(), n);
}

/// A client that stops reading a response (grants no flow-control credit) has the stream
/// cancelled (RST_STREAM CANCEL) after the idle timeout, so it cannot hold the stream and its
/// upstream connection forever.
#[test]
fn a_stalled_reader_has_its_stream_cancelled() {
    let a = Upstream::start("a");
    let p = Proxy::start(
        "uring",
        &(service("svc-a", &[a.addr]) + &ingress("site", Some("h2.test"), &[("/", "svc-a")])),
        &["--idle-timeout", "1"],
    );
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    rt.block_on(async {
        let client = h2c_client(p.http).await;
        let mut client = client.ready().await.unwrap();
        let req = http::Request::get("http://h2.test/bytes/20000000").body(()).unwrap();
        let (resp, _) = client.send_request(req, true).unwrap();
        let mut body = resp.await.unwrap().into_body();
        // Read nothing for a while: the proxy's send window runs out.
        tokio::time::sleep(Duration::from_secs(4)).await;
        let mut got = 0usize;
        let reason = loop {
            match body.data().await {
                Some(Ok(chunk)) => {
                    got += chunk.len();
                    let _ = body.flow_control().release_capacity(chunk.len());
                }
                Some(Err(e)) => break e.reason(),
                None => break None,
            }
        };
        assert_eq!(reason, Some(h2::Reason::CANCEL), "{got} bytes, then the stream ended without a reset");
        assert!(got < 20_000_000, "the whole body arrived");
        drop(client);
    });
}

/// An upstream that answers the first request on each connection and, on the second, reads
/// it, counts it and closes without answering (a keep-alive connection closing under the
/// proxy). Returns its address and the POSTs it read.
fn closing_upstream() -> (std::net::SocketAddr, std::sync::Arc<std::sync::atomic::AtomicUsize>) {
    use std::sync::atomic::{AtomicUsize, Ordering};
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    let posts = std::sync::Arc::new(AtomicUsize::new(0));
    let counted = posts.clone();
    std::thread::spawn(move || {
        for mut s in l.incoming().flatten() {
            let posts = counted.clone();
            std::thread::spawn(move || {
                let (mut buf, mut tmp, mut seen) = (Vec::new(), [0u8; 4096], 0);
                loop {
                    while let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                        if buf.starts_with(b"POST ") {
                            posts.fetch_add(1, Ordering::SeqCst);
                        }
                        buf.drain(..i + 4);
                        seen += 1;
                        if seen == 2 {
                            return;
                        }
                        let _ = s.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok");
                    }
                    match s.read(&mut tmp) {
                        Ok(0) | Err(_) => return,
                        Ok(n) => buf.extend_from_slice(&tmp[..n]),
                    }
                }
            });
        }
    });
    (addr, posts)
}

/// A POST is never sent twice (RFC 9110 §9.2.2): when a pooled upstream connection closes
/// after reading it, the client gets 502 instead of a second POST on a fresh connection. The
/// same over HTTP/1.1 and h2 over TLS (curl, 20 body-less POSTs reusing its connection) and
/// h2c (the h2 crate: curl 7.88 cannot reuse an h2c prior-knowledge connection, against
/// nginx either).
#[test]
fn a_post_reaches_the_upstream_once_even_when_its_connection_closes() {
    use std::sync::atomic::Ordering;
    for mode in ["--http1.1", "h2c", "--http2"] {
        let (up, posts) = closing_upstream();
        let m = service("svc-c", &[up]) + &ingress("c", Some("close.test"), &[("/", "svc-c")]);
        let p = Proxy::start("uring", &m, &["--workers", "1"]);
        let codes: Vec<String> = if mode == "h2c" {
            h2c_posts(p.http, 20)
        } else {
            let (scheme, port) = if mode == "--http2" { ("https", p.https.port()) } else { ("http", p.http.port()) };
            let resolve = format!("close.test:{port}:127.0.0.1");
            let mut args = vec![mode, "-k", "--resolve", &resolve, "-X", "POST", "-w", "%{http_code}\n"];
            let urls: Vec<String> = (0..20).map(|i| format!("{scheme}://close.test:{port}/p{i}")).collect();
            for url in &urls {
                args.extend(["-o", "/dev/null", url.as_str()]);
            }
            let (_, out, err) = curl(&args);
            assert_eq!(out.lines().count(), 20, "{mode}: {out} {err}");
            out.lines().map(str::to_string).collect()
        };
        assert!(codes.iter().all(|c| c == "200" || c == "502"), "{mode}: {codes:?}");
        assert!(codes.iter().any(|c| c == "502"), "{mode}: no pooled connection closed under a POST: {codes:?}");
        assert_eq!(posts.load(Ordering::SeqCst), 20, "{mode}: the upstream read a POST twice ({codes:?})");
    }
}

/// `n` body-less POSTs one after another on one h2c connection: their statuses.
fn h2c_posts(addr: std::net::SocketAddr, n: usize) -> Vec<String> {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    rt.block_on(async move {
        let client = h2c_client(addr).await;
        let mut codes = Vec::new();
        for i in 0..n {
            let mut client = client.clone().ready().await.unwrap();
            let req = http::Request::post(format!("http://close.test/p{i}")).body(()).unwrap();
            let (resp, _) = client.send_request(req, true).unwrap();
            codes.push(resp.await.map_or("000".to_string(), |r| r.status().as_u16().to_string()));
        }
        codes
    })
}
