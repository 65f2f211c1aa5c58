//! Failures and limits on both I/O backends: dead endpoints, timeouts (upstream, slowloris,
//! idle keep-alive), the per-worker connection cap, and fd hygiene under 10,000 abandoned
//! connections.

mod support;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use support::*;

per_backend!(fn dead_endpoints_are_skipped_and_all_dead_gives_502(io) {
    let live = Upstream::start("live");
    let m = service("mixed", &[dead_addr(), live.addr, dead_addr()])
        + &service("dead", &[dead_addr(), dead_addr()])
        + &ingress("i", Some("mixed.test"), &[("/", "mixed")])
        + &ingress("j", Some("dead.test"), &[("/", "dead")]);
    let p = Proxy::start(io, &m, &[]);
    for i in 0..30 {
        let r = get(p.http, "mixed.test", &format!("/{i}"));
        assert_eq!((r.status, r.header("x-upstream")), (200, Some("live")), "{io}: request {i}");
    }
    // POST with a body: nothing was sent on a refused connect, so it is retried too.
    let r = raw(p.http, b"POST /p HTTP/1.1\r\nHost: mixed.test\r\nContent-Length: 3\r\n\r\nabc").unwrap();
    assert_eq!(r.status, 200, "{io}");
    let r = get(p.http, "dead.test", "/");
    assert_eq!(r.status, 502, "{io}");
    let metrics = get(p.admin, "x", "/metrics").text();
    assert!(!metrics.contains("ringress_upstream_connect_errors_total 0\n"), "{io}: {metrics}");
});

per_backend!(fn upstream_restart_is_survived_by_retrying_idempotent_requests(io) {
    // An upstream that closes every keep-alive connection after one response, without
    // saying so: pooled connections go stale, and GETs must be retried transparently.
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    std::thread::spawn(move || {
        for mut s in l.incoming().flatten() {
            std::thread::spawn(move || {
                let mut b = [0u8; 4096];
                let _ = s.read(&mut b);
                let _ = s.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok");
                std::thread::sleep(Duration::from_millis(20));
            });
        }
    });
    let m = service("flaky", &[addr]) + &ingress("i", None, &[("/", "flaky")]);
    let p = Proxy::start(io, &m, &["--workers", "1"]);
    let mut s = connect(p.http);
    let mut pending = Vec::new();
    for i in 0..20 {
        s.write_all(b"GET / HTTP/1.1\r\nHost: a.test\r\n\r\n").unwrap();
        let r = read_response(&mut s, &mut pending, false).expect("response");
        assert_eq!((r.status, r.text().as_str()), (200, "ok"), "{io}: request {i}");
        std::thread::sleep(Duration::from_millis(40));
    }
});

per_backend!(fn timeouts_408_504_and_idle_close(io) {
    let up = Upstream::start("u");
    let m = service("svc", &[up.addr]) + &ingress("i", None, &[("/", "svc")]);
    let p = Proxy::start(io, &m, &["--header-timeout", "1", "--idle-timeout", "1.5", "--upstream-timeout", "1"]);
    // Slowloris: a head that never completes gets 408 and a close.
    let mut s = connect(p.http);
    s.write_all(b"GET / HTTP/1.1\r\nHost: a.test\r\nX-Slow: ").unwrap();
    let r = read_response(&mut s, &mut Vec::new(), false).expect("408");
    assert_eq!(r.status, 408, "{io}");
    assert!(closed_within(&mut s, Duration::from_secs(3)), "{io}");
    // Trickling bytes does not extend the head deadline.
    let mut s = TcpStream::connect(p.http).unwrap();
    let started = Instant::now();
    for b in b"GET / HTTP/1.1\r\nHost: a.test\r\n".iter() {
        if s.write_all(&[*b]).is_err() {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
        if started.elapsed() > Duration::from_secs(2) {
            break;
        }
    }
    assert!(closed_within(&mut s, Duration::from_secs(3)), "{io}: trickled head kept the connection open");
    // A slow upstream: 504.
    let r = get(p.http, "a.test", "/sleep/3000");
    assert_eq!(r.status, 504, "{io}");
    // Idle keep-alive connection: closed after the idle timeout.
    let mut s = connect(p.http);
    s.write_all(b"GET / HTTP/1.1\r\nHost: a.test\r\n\r\n").unwrap();
    assert_eq!(read_response(&mut s, &mut Vec::new(), false).unwrap().status, 200, "{io}");
    assert!(closed_within(&mut s, Duration::from_secs(5)), "{io}: idle connection not closed");
    // A connection that never sends anything is closed silently (accept is deferred for
    // up to the header timeout, then the header timeout runs).
    let mut s = TcpStream::connect(p.http).unwrap();
    assert!(closed_within(&mut s, Duration::from_secs(15)), "{io}");
});

per_backend!(fn per_worker_connection_cap(io) {
    let up = Upstream::start("u");
    let m = service("svc", &[up.addr]) + &ingress("i", None, &[("/", "svc")]);
    let p = Proxy::start(io, &m, &["--workers", "1", "--max-connections", "2"]);
    let mut a = TcpStream::connect(p.http).unwrap();
    let mut b = TcpStream::connect(p.http).unwrap();
    let mut pending = Vec::new();
    for s in [&mut a, &mut b] {
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        s.write_all(b"GET / HTTP/1.1\r\nHost: a.test\r\n\r\n").unwrap();
        assert_eq!(read_response(s, &mut pending, false).unwrap().status, 200, "{io}");
    }
    let mut c = TcpStream::connect(p.http).unwrap();
    let _ = c.write_all(b"GET / HTTP/1.1\r\nHost: a.test\r\n\r\n");
    assert!(closed_within(&mut c, Duration::from_secs(5)), "{io}: third connection served over the cap");
    drop(a);
    std::thread::sleep(Duration::from_millis(200));
    let r = get(p.http, "a.test", "/");
    assert_eq!(r.status, 200, "{io}: a slot freed up");
});

/// The backends' 10,000-connection runs take turns: together they would pass the test
/// process's own file limit.
static TEN_THOUSAND: std::sync::Mutex<()> = std::sync::Mutex::new(());

per_backend!(fn ten_thousand_abandoned_connections_leak_no_fds(io) {
    let _turn = TEN_THOUSAND.lock().unwrap_or_else(|e| e.into_inner());
    support::raise_fd_limit();
    let up = Upstream::start("u");
    let m = service("svc", &[up.addr]) + &ingress("i", None, &[("/", "svc")]);
    let p = Proxy::start(
        io,
        &m,
        &[
            "--header-timeout",
            "1",
            "--idle-timeout",
            "1",
            "--upstream-keepalive-timeout",
            "1",
            "--max-connections",
            "100000",
        ],
    );
    assert_eq!(get(p.http, "a.test", "/").status, 200);
    std::thread::sleep(Duration::from_millis(300));
    let baseline = p.open_fds();
    let mut conns = Vec::with_capacity(10_000);
    for i in 0..10_000 {
        let mut s = TcpStream::connect(p.http).unwrap_or_else(|e| panic!("{io}: connect {i}: {e}"));
        match i % 3 {
            0 => {}                                                               // idle, nothing sent
            1 => s.write_all(b"GET / HTTP/1.1\r\nHost: a.t").unwrap(),            // half a head
            _ => s.write_all(b"GET / HTTP/1.1\r\nHost: a.test\r\n\r\n").unwrap(), // a full request, never read
        }
        conns.push(s);
    }
    let peak = p.open_fds();
    assert!(peak > baseline + 1000, "{io}: connections were not held open (peak {peak}, baseline {baseline})");
    // The proxy times every one of them out by itself, while the client still holds them.
    p.wait_for(|| p.open_fds() <= baseline + 4, "fds to return to baseline after timeouts");
    drop(conns);
    std::thread::sleep(Duration::from_millis(300));
    let after = p.open_fds();
    assert!(after <= baseline + 4, "{io}: {after} fds open, baseline {baseline}");
    assert_eq!(get(p.http, "a.test", "/").status, 200, "{io}: still serving");
});
