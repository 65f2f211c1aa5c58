//! The L4 load balancer end to end: LoadBalancer Services and tcp-services ports forwarded to
//! real TCP peers (our own test servers, and redis), 1 GB each way with checksums, half-close
//! both ways, endpoint and Service changes under load, PROXY v1/v2 byte for byte, bad PROXY
//! headers refused, 10,000 idle connections, limits and idle timeouts.

mod support;

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use support::*;
use support::{free_port, lb_service};

/// The proxy with the L4 ports on loopback.
fn proxy(manifests: &str, extra: &[&str]) -> Proxy {
    proxy_on("uring", manifests, extra)
}

fn proxy_on(io: &str, manifests: &str, extra: &[&str]) -> Proxy {
    let mut args = vec!["--lb-address", "127.0.0.1"];
    args.extend_from_slice(extra);
    Proxy::start(io, manifests, &args)
}

fn connect_port(port: u16) -> TcpStream {
    let s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    s
}

/// Waits until `port` forwards (a connection gets the backend's greeting byte or echo).
fn wait_open(p: &Proxy, port: u16) {
    p.wait_for(|| TcpStream::connect(("127.0.0.1", port)).is_ok(), &format!("port {port} open"));
}

/// An order-dependent checksum of a byte stream, the same however the stream is cut into
/// reads: 8-byte words at their stream offsets (a partial word waits in `pending`).
#[derive(Default)]
struct Sum {
    acc: u64,
    pending: Vec<u8>,
}

impl Sum {
    fn add(&mut self, mut data: &[u8]) {
        if !self.pending.is_empty() {
            let take = (8 - self.pending.len()).min(data.len());
            self.pending.extend_from_slice(&data[..take]);
            data = &data[take..];
            if self.pending.len() < 8 {
                return;
            }
            let w = u64::from_le_bytes(self.pending[..].try_into().unwrap());
            self.word(w);
            self.pending.clear();
        }
        let mut words = data.chunks_exact(8);
        for w in &mut words {
            self.word(u64::from_le_bytes(w.try_into().unwrap()));
        }
        self.pending.extend_from_slice(words.remainder());
    }

    fn word(&mut self, w: u64) {
        self.acc = self.acc.wrapping_mul(0x0000_0100_0000_01B3).wrapping_add(w);
    }

    fn finish(&self) -> u64 {
        self.pending.iter().fold(self.acc, |a, b| a.wrapping_mul(31).wrapping_add(u64::from(*b)))
    }
}

/// The transfer server. A connection starts with one command byte and an 8-byte length:
/// `U`: read that many bytes (to the client's FIN), answer their checksum, close.
/// `D`: send that many bytes, shut down writing, then read the client's last words and record
/// them. `E`: echo until EOF. `H`: record the first 256 bytes seen (a PROXY header), answer
/// with the server's name, echo after.
struct Backend {
    addr: SocketAddr,
    name: &'static str,
    conns: Arc<AtomicUsize>,
    last_words: Arc<Mutex<Vec<String>>>,
    heads: Arc<Mutex<Vec<Vec<u8>>>>,
}

impl Backend {
    fn start(name: &'static str) -> Backend {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap();
        let conns = Arc::new(AtomicUsize::new(0));
        let last_words = Arc::new(Mutex::new(Vec::new()));
        let heads = Arc::new(Mutex::new(Vec::new()));
        let (c, lw, h) = (conns.clone(), last_words.clone(), heads.clone());
        std::thread::spawn(move || {
            for s in l.incoming().flatten() {
                c.fetch_add(1, Ordering::SeqCst);
                let (lw, h) = (lw.clone(), h.clone());
                std::thread::spawn(move || {
                    let _ = serve(s, name, &lw, &h);
                });
            }
        });
        Backend { addr, name, conns, last_words, heads }
    }
}

fn serve(
    mut s: TcpStream,
    name: &str,
    last_words: &Mutex<Vec<String>>,
    heads: &Mutex<Vec<Vec<u8>>>,
) -> std::io::Result<()> {
    let mut cmd = [0u8; 1];
    s.read_exact(&mut cmd)?;
    match cmd[0] {
        b'U' | b'D' | b'E' => {}
        first => {
            // A PROXY header, then the command byte `h`: v1 up to its CRLF, v2 by its length.
            let mut head = vec![first];
            let mut b = [0u8; 1];
            if first == b'P' {
                while !head.ends_with(b"\r\n") {
                    s.read_exact(&mut b)?;
                    head.push(b[0]);
                }
            } else {
                let mut fixed = [0u8; 15];
                s.read_exact(&mut fixed)?;
                head.extend_from_slice(&fixed);
                let mut body = vec![0u8; u16::from_be_bytes([head[14], head[15]]) as usize];
                s.read_exact(&mut body)?;
                head.extend_from_slice(&body);
            }
            s.read_exact(&mut b)?;
            assert_eq!(b[0], b'h', "the command after the PROXY header");
            heads.lock().unwrap().push(head);
            s.write_all(name.as_bytes())?;
            return std::io::copy(&mut s.try_clone()?, &mut s).map(|_| ());
        }
    }
    let mut len = [0u8; 8];
    if cmd[0] != b'E' {
        s.read_exact(&mut len)?;
    }
    let len = u64::from_le_bytes(len);
    let mut buf = vec![0u8; 256 * 1024];
    match cmd[0] {
        b'U' => {
            let (mut sum, mut got) = (Sum::default(), 0u64);
            loop {
                let n = s.read(&mut buf)?;
                if n == 0 {
                    break;
                }
                sum.add(&buf[..n]);
                got += n as u64;
            }
            s.write_all(&sum.finish().to_le_bytes())?;
            s.write_all(&got.to_le_bytes())?;
        }
        b'D' => {
            let mut left = len;
            fill(&mut buf);
            while left > 0 {
                let n = left.min(buf.len() as u64) as usize;
                s.write_all(&buf[..n])?;
                left -= n as u64;
            }
            s.shutdown(Shutdown::Write)?;
            let mut words = String::new();
            s.read_to_string(&mut words)?;
            last_words.lock().unwrap().push(words);
        }
        _ => {
            s.write_all(name.as_bytes())?;
            std::io::copy(&mut s.try_clone()?, &mut s)?;
        }
    }
    Ok(())
}

fn fill(buf: &mut [u8]) {
    for (i, b) in buf.iter_mut().enumerate() {
        *b = (i % 251) as u8;
    }
}

const GB: u64 = 1 << 30;

// On io_uring (copied through a buffer) and on epoll (spliced after the first 256 KiB).
per_backend!(fn a_gigabyte_each_way_with_checksums_and_half_close_both_ways(io) {
    gigabyte_each_way(io);
});

fn gigabyte_each_way(io: &str) {
    let b = Backend::start("b");
    let port = free_port();
    let p = proxy_on(io, &lb_service("bulk", port, &[b.addr], &[]), &[]);
    wait_open(&p, port);

    // Upload: 1 GB, then our FIN; the backend still answers with the checksum (half-close
    // from the client passed on, the other direction still open).
    let mut s = connect_port(port);
    s.write_all(b"U").unwrap();
    s.write_all(&GB.to_le_bytes()).unwrap();
    let mut buf = vec![0u8; 256 * 1024];
    fill(&mut buf);
    let (mut sum, mut left) = (Sum::default(), GB);
    while left > 0 {
        let n = left.min(buf.len() as u64) as usize;
        s.write_all(&buf[..n]).unwrap();
        sum.add(&buf[..n]);
        left -= n as u64;
    }
    s.shutdown(Shutdown::Write).unwrap();
    let mut answer = [0u8; 16];
    s.read_exact(&mut answer).unwrap();
    assert_eq!(u64::from_le_bytes(answer[8..].try_into().unwrap()), GB, "bytes the backend got");
    assert_eq!(u64::from_le_bytes(answer[..8].try_into().unwrap()), sum.finish(), "checksum");

    // Download: 1 GB, then the backend's FIN; we still send our last words after it.
    let mut s = connect_port(port);
    s.write_all(b"D").unwrap();
    s.write_all(&GB.to_le_bytes()).unwrap();
    let mut got = 0u64;
    let mut pattern = vec![0u8; 256 * 1024];
    fill(&mut pattern);
    let mut pos = 0usize; // position within the backend's repeating 256 KiB buffer
    loop {
        let n = s.read(&mut buf).unwrap();
        if n == 0 {
            break;
        }
        // The backend sends whole 256 KiB buffers of the pattern; reads may split anywhere.
        let mut k = 0;
        while k < n {
            let take = (n - k).min(pattern.len() - pos);
            assert_eq!(&buf[k..k + take], &pattern[pos..pos + take], "byte {}", got + k as u64);
            pos = (pos + take) % pattern.len();
            k += take;
        }
        got += n as u64;
    }
    assert_eq!(got, GB);
    s.write_all(b"thank you").unwrap();
    s.shutdown(Shutdown::Write).unwrap();
    p.wait_for(|| b.last_words.lock().unwrap().contains(&"thank you".to_string()), "the client's words after the FIN");
    let m = metrics_when(p.admin, |m| {
        m.contains("ringress_l4_connections_active{service=\"default/bulk:") && m.contains("} 0")
    });
    let bytes = |name: &str| -> f64 {
        m.lines()
            .find(|l| l.starts_with(name) && l.contains("default/bulk:"))
            .and_then(|l| l.rsplit(' ').next()?.parse().ok())
            .unwrap_or(0.0)
    };
    assert!(bytes("ringress_l4_received_bytes_total") >= GB as f64, "{m}");
    assert!(bytes("ringress_l4_sent_bytes_total") >= GB as f64, "{m}");
    // Both backends splice bulk transfers once 256 KiB have moved: nearly all of the 2 GB.
    assert!(bytes("ringress_l4_spliced_bytes_total") >= 1.9 * GB as f64, "{io}: {m}");
}

/// Opens a connection that echoes (`E`) and returns it with the backend's name.
fn echo_conn(port: u16) -> (TcpStream, String) {
    let mut s = connect_port(port);
    s.write_all(b"E").unwrap();
    let mut name = [0u8; 1];
    s.read_exact(&mut name).unwrap();
    (s, String::from_utf8_lossy(&name).into_owned())
}

fn echo_ok(s: &mut TcpStream) -> bool {
    if s.write_all(b"ping").is_err() {
        return false;
    }
    let mut b = [0u8; 4];
    s.read_exact(&mut b).is_ok() && &b == b"ping"
}

#[test]
fn endpoint_and_service_changes_never_cut_established_connections() {
    let (a, b, c) = (Backend::start("a"), Backend::start("b"), Backend::start("c"));
    let port = free_port();
    let p = proxy(&lb_service("svc", port, &[a.addr, b.addr], &[]), &["--workers", "1"]);
    wait_open(&p, port);
    // New connections spread over both endpoints.
    let mut open: Vec<(TcpStream, String)> = (0..6).map(|_| echo_conn(port)).collect();
    let names: std::collections::BTreeSet<&str> = open.iter().map(|(_, n)| n.as_str()).collect();
    assert_eq!(names.into_iter().collect::<Vec<_>>(), ["a", "b"]);

    // Two long downloads (64 MiB each, read slowly) run through the change.
    let downloads: Vec<_> = (0..2)
        .map(|_| {
            std::thread::spawn(move || {
                let mut s = connect_port(port);
                s.write_all(b"D").unwrap();
                s.write_all(&(64u64 << 20).to_le_bytes()).unwrap();
                let (mut got, mut buf) = (0u64, vec![0u8; 64 * 1024]);
                loop {
                    match s.read(&mut buf) {
                        Ok(0) | Err(_) => break,
                        Ok(n) => got += n as u64,
                    }
                    if got < 8 << 20 {
                        std::thread::sleep(Duration::from_millis(20));
                    }
                }
                got
            })
        })
        .collect();
    std::thread::sleep(Duration::from_millis(300));

    // Scale: a leaves, c joins. Connections to a keep working; new ones go to b and c.
    let generation = p.generation();
    p.replace_manifests(&lb_service("svc", port, &[b.addr, c.addr], &[]));
    p.wait_for(|| p.generation() > generation, "the new snapshot");
    for d in downloads {
        assert_eq!(d.join().unwrap(), 64 << 20, "a long transfer was cut by the endpoint change");
    }
    for (s, n) in &mut open {
        assert!(echo_ok(s), "an established connection to {n} broke");
    }
    let fresh: std::collections::BTreeSet<String> = (0..6).map(|_| echo_conn(port).1).collect();
    assert_eq!(fresh.into_iter().collect::<Vec<_>>(), ["b", "c"]);

    // The Service deleted: the port closes, established connections live on.
    let generation = p.generation();
    p.replace_manifests("");
    p.wait_for(|| p.generation() > generation, "the empty snapshot");
    p.wait_for(|| TcpStream::connect(("127.0.0.1", port)).is_err(), "the port closed");
    for (s, n) in &mut open {
        assert!(echo_ok(s), "a connection to {n} broke when its Service went away");
    }
    // Re-created: served again.
    p.replace_manifests(&lb_service("svc", port, &[c.addr], &[]));
    wait_open(&p, port);
    assert_eq!(echo_conn(port).1, "c");
    for (s, _) in &mut open {
        assert!(echo_ok(s));
    }
    assert!(a.conns.load(Ordering::SeqCst) >= 1 && a.name == "a");
}

#[test]
fn proxy_protocol_headers_byte_for_byte_and_bad_ones_refused() {
    let (v1, v2) = (Backend::start("1"), Backend::start("2"));
    let (p1, p2, p3) = (free_port(), free_port(), free_port());
    let m = lb_service("v1", p1, &[v1.addr], &[("ringress.dev/proxy-protocol", "v1")])
        + &lb_service("v2", p2, &[v2.addr], &[("ringress.dev/proxy-protocol", "v2")]);
    let p = proxy(&m, &[]);
    wait_open(&p, p1);
    wait_open(&p, p2);
    for (port, backend) in [(p1, &v1), (p2, &v2)] {
        let mut s = connect_port(port);
        let client = s.local_addr().unwrap();
        s.write_all(b"h").unwrap();
        let mut name = [0u8; 1];
        s.read_exact(&mut name).unwrap();
        let head = backend.heads.lock().unwrap().last().cloned().unwrap();
        let mut want = Vec::new();
        let dst: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
        if backend.name == "1" {
            want.extend_from_slice(format!("PROXY TCP4 127.0.0.1 127.0.0.1 {} {port}\r\n", client.port()).as_bytes());
        } else {
            want.extend_from_slice(&[
                0x0D, 0x0A, 0x0D, 0x0A, 0x00, 0x0D, 0x0A, 0x51, 0x55, 0x49, 0x54, 0x0A, 0x21, 0x11, 0, 12,
            ]);
            want.extend_from_slice(&[127, 0, 0, 1, 127, 0, 0, 1]);
            want.extend_from_slice(&client.port().to_be_bytes());
            want.extend_from_slice(&dst.port().to_be_bytes());
        }
        assert_eq!(head, want, "the {} header", backend.name);
    }
    drop(p);

    // --accept-proxy-protocol: a client's header names the client passed on; a bad one closes.
    let p = proxy(
        &lb_service("v1", p3, &[v1.addr], &[("ringress.dev/proxy-protocol", "v1")]),
        &["--accept-proxy-protocol"],
    );
    wait_open(&p, p3);
    let mut s = connect_port(p3);
    s.write_all(b"PROXY TCP4 203.0.113.7 10.0.0.1 40000 6379\r\nh").unwrap();
    let mut name = [0u8; 1];
    s.read_exact(&mut name).unwrap();
    let head = v1.heads.lock().unwrap().last().cloned().unwrap();
    assert_eq!(String::from_utf8_lossy(&head), format!("PROXY TCP4 203.0.113.7 127.0.0.1 40000 {p3}\r\n"));
    let before = v1.conns.load(Ordering::SeqCst);
    // The readiness probe (wait_open) closed without a header: already one rejection.
    for bad in [&b"GET / HTTP/1.1\r\n\r\n"[..], b"PROXY TCP4 1.2.3.4 5.6.7.8 99999 1\r\n", b"PROXY nonsense\r\n"] {
        let mut s = connect_port(p3);
        s.write_all(bad).unwrap();
        assert!(closed_within(&mut s, Duration::from_secs(5)), "{:?} was not refused", String::from_utf8_lossy(bad));
    }
    assert_eq!(v1.conns.load(Ordering::SeqCst), before, "a bad header never reaches the backend");
    let m = metrics_when(p.admin, |m| m.contains("ringress_l4_rejected_total{service=\"default/v1:"));
    assert!(
        m.lines().any(|l| l.starts_with("ringress_l4_rejected_total{service=\"default/v1:") && l.ends_with(" 4")),
        "{m}"
    );
}

/// The limit holds for the Service as a whole, whichever workers the kernel hands the
/// connections to (it was once split evenly, ceil(3 / 2) = 2 per worker, which let a fourth in).
#[test]
fn the_connection_limit_counts_over_all_workers() {
    let a = Backend::start("a");
    let port = free_port();
    let p =
        proxy(&lb_service("limited", port, &[a.addr], &[("ringress.dev/max-connections", "3")]), &["--workers", "2"]);
    wait_open(&p, port);
    let active = || {
        let m = get(p.admin, "x", "/metrics").text();
        m.lines()
            .find(|l| l.starts_with("ringress_l4_connections_active{service=\"default/limited:"))
            .and_then(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    p.wait_for(|| active() == 0.0, "the probe connections closed");
    let mut kept: Vec<TcpStream> = (0..3).map(|_| echo_conn(port).0).collect();
    // Each new connection lands on either worker (SO_REUSEPORT hashes the client's port).
    for _ in 0..8 {
        let mut extra = connect_port(port);
        let _ = extra.write_all(b"E");
        assert!(closed_within(&mut extra, Duration::from_secs(5)), "a fourth connection was let in");
    }
    for s in &mut kept {
        assert!(echo_ok(s));
    }
    // One closes: there is room for one more.
    drop(kept.pop());
    p.wait_for(|| active() == 2.0, "the closed one counted out");
    kept.push(echo_conn(port).0);
    assert!(kept.iter_mut().all(echo_ok));
}

#[test]
fn limits_idle_timeout_least_connections_and_a_refusing_endpoint() {
    let (a, b, c) = (Backend::start("a"), Backend::start("b"), Backend::start("c"));
    let dead = dead_addr();
    let (limited, idle, lc) = (free_port(), free_port(), free_port());
    let m = lb_service("limited", limited, &[a.addr], &[("ringress.dev/max-connections", "2")])
        + &lb_service("idle", idle, &[a.addr], &[("ringress.dev/idle-timeout", "1")])
        + &lb_service("lc", lc, &[dead, b.addr, c.addr], &[("ringress.dev/load-balance", "least_conn")]);
    let p = proxy(&m, &["--workers", "1"]);
    for port in [limited, idle, lc] {
        wait_open(&p, port);
    }
    // The readiness probes' connections are gone before the limit is tried.
    p.wait_for(
        || {
            let m = get(p.admin, "x", "/metrics").text();
            !m.lines().any(|l| {
                l.starts_with("ringress_l4_connections_active{service=\"default/limited:") && !l.ends_with(" 0")
            })
        },
        "the probe connections closed",
    );
    // Two connections at most: the third is closed at once.
    let mut kept: Vec<TcpStream> = (0..2).map(|_| echo_conn(limited).0).collect();
    let mut third = connect_port(limited);
    let _ = third.write_all(b"E");
    assert!(closed_within(&mut third, Duration::from_secs(5)), "the third connection was not refused");
    for s in &mut kept {
        assert!(echo_ok(s));
    }
    // Silent for the idle timeout (1 s): closed. Talking keeps it open.
    let (mut quiet, _) = echo_conn(idle);
    let (mut chatty, _) = echo_conn(idle);
    for _ in 0..4 {
        std::thread::sleep(Duration::from_millis(400));
        assert!(echo_ok(&mut chatty), "a busy connection was closed");
    }
    assert!(closed_within(&mut quiet, Duration::from_secs(3)), "the silent connection stayed open");
    // Least connections over a refusing endpoint: every connection lands on a live one, and the
    // dead endpoint is marked down once, not tried for every connection.
    let held: Vec<(TcpStream, String)> = (0..6).map(|_| echo_conn(lc)).collect();
    let on_b = held.iter().filter(|(_, n)| n == "b").count();
    assert_eq!((on_b, held.len() - on_b), (3, 3), "least connections balances b and c");
    let m = metrics_when(p.admin, |m| m.contains("ringress_l4_endpoint_down_total{service=\"default/lc:"));
    let failures = m
        .lines()
        .find(|l| l.starts_with("ringress_l4_connect_failures_total{service=\"default/lc:"))
        .and_then(|l| l.rsplit(' ').next()?.parse::<f64>().ok());
    assert_eq!(failures, Some(1.0), "{m}");
}

#[test]
fn redis_through_the_l4_load_balancer() {
    let port_redis = free_port();
    let mut redis = std::process::Command::new("redis-server")
        .args(["--port", &port_redis.to_string(), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
        .stdout(std::process::Stdio::null())
        .spawn()
        .expect("redis-server (Debian redis-server; scripts/test.sh installs it)");
    let backend: SocketAddr = format!("127.0.0.1:{port_redis}").parse().unwrap();
    let port = free_port();
    let p = proxy(&lb_service("redis", port, &[backend], &[]), &[]);
    wait_open(&p, port);
    let cli = |args: &[&str]| run(std::process::Command::new("redis-cli").args(["-p", &port.to_string()]).args(args));
    p.wait_for(|| cli(&["PING"]).1.trim() == "PONG", "redis answering through ringress");
    assert_eq!(cli(&["SET", "edge", "ringress"]).1.trim(), "OK");
    assert_eq!(cli(&["GET", "edge"]).1.trim(), "ringress");
    let (ok, out, err) = run(std::process::Command::new("redis-benchmark").args([
        "-p",
        &port.to_string(),
        "-n",
        "20000",
        "-c",
        "20",
        "-t",
        "set,get",
        "-q",
    ]));
    assert!(ok && out.contains("SET:") && out.contains("GET:"), "{out}{err}");
    let _ = redis.kill();
    let _ = redis.wait();
}

#[test]
fn http_listeners_take_the_client_from_a_proxy_header_with_use_proxy_protocol() {
    let a = Upstream::start("a");
    let m = service("svc-a", &[a.addr])
        + &ingress("site", Some("pp.test"), &[("/", "svc-a")])
        + "---\napiVersion: v1\nkind: ConfigMap\nmetadata: {name: ringress, namespace: ringress}\ndata: {use-proxy-protocol: \"true\", use-forwarded-headers: \"true\"}\n";
    let p = Proxy::start("uring", &m, &[]);
    // A v1 header, then the request in the same segment. The header's address is the client
    // (ingress-nginx's real_ip_header proxy_protocol): an X-Forwarded-For claim is not, even
    // with use-forwarded-headers from a trusted peer.
    let r = raw(
        p.http,
        b"PROXY TCP4 203.0.113.9 10.0.0.1 5555 80\r\nGET / HTTP/1.1\r\nHost: pp.test\r\nX-Forwarded-For: 198.51.100.4\r\nConnection: close\r\n\r\n",
    )
    .expect("a response");
    assert_eq!(r.status, 200);
    assert!(r.text().contains("header x-real-ip: 203.0.113.9"), "{}", r.text());
    assert!(r.text().contains("header x-forwarded-for: 203.0.113.9\n"), "{}", r.text());
    // curl sends one (v1, its own addresses) before TLS and before h2c: both still work.
    for (url, flag) in
        [(format!("https://{}/", p.https), "-k"), (format!("http://{}/", p.http), "--http2-prior-knowledge")]
    {
        let (ok, out, err) = run(std::process::Command::new("curl").args([
            "-sS",
            "--haproxy-protocol",
            flag,
            "-H",
            "Host: pp.test",
            &url,
        ]));
        assert!(ok && out.contains("upstream=a"), "{url}: {out}{err}");
    }
    // Without a header: closed, counted.
    let mut s = connect(p.http);
    s.write_all(b"GET / HTTP/1.1\r\nHost: pp.test\r\n\r\n").unwrap();
    assert!(closed_within(&mut s, Duration::from_secs(5)));
    let m = metrics_when(p.admin, |m| m.contains("ringress_proxy_protocol_errors_total 1"));
    assert!(m.contains("ringress_proxy_protocol_errors_total 1"), "{m}");
}
