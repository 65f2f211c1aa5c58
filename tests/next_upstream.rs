//! `proxy-next-upstream` and its `-tries` and `-timeout`, as ingress-nginx users set them:
//! which failures move a request to another endpoint (refused connections, timeouts, named
//! statuses), how many endpoints are tried, and that a request that is not idempotent is
//! never sent twice unless `non_idempotent` is named. Real upstreams on loopback.

mod support;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use support::*;

/// An upstream that answers every request with `status` (keep-alive), counting requests by
/// method: (address, GETs, POSTs).
fn answering(status: u16) -> (SocketAddr, Arc<AtomicUsize>, Arc<AtomicUsize>) {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    let (gets, posts) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let (g, p) = (gets.clone(), posts.clone());
    std::thread::spawn(move || {
        for s in l.incoming().flatten() {
            let (g, p) = (g.clone(), p.clone());
            std::thread::spawn(move || {
                let mut w = s.try_clone().unwrap();
                let mut r = BufReader::new(s);
                loop {
                    let (mut line, mut len) = (String::new(), 0usize);
                    if r.read_line(&mut line).unwrap_or(0) == 0 {
                        return;
                    }
                    let post = line.starts_with("POST");
                    loop {
                        let mut h = String::new();
                        if r.read_line(&mut h).unwrap_or(0) == 0 {
                            return;
                        }
                        if let Some(v) = h.to_ascii_lowercase().strip_prefix("content-length:") {
                            len = v.trim().parse().unwrap_or(0);
                        }
                        if h == "\r\n" {
                            break;
                        }
                    }
                    let mut body = vec![0u8; len];
                    if r.read_exact(&mut body).is_err() {
                        return;
                    }
                    (if post { &p } else { &g }).fetch_add(1, Ordering::SeqCst);
                    let reply = format!("HTTP/1.1 {status} Refusing\r\nContent-Length: 7\r\n\r\nrefused");
                    if w.write_all(reply.as_bytes()).is_err() {
                        return;
                    }
                }
            });
        }
    });
    (addr, gets, posts)
}

/// An upstream that accepts and reads, and never answers.
fn silent() -> SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for s in l.incoming().flatten() {
            held.push(s);
        }
    });
    addr
}

fn send(addr: SocketAddr, host: &str, method: &str) -> u16 {
    let body = if method == "POST" { "Content-Length: 4\r\n\r\nbody" } else { "\r\n" };
    let req = format!("{method} / HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n{body}");
    raw(addr, req.as_bytes()).map_or(0, |r| r.status)
}

fn h2_status(addr: SocketAddr, host: &str) -> u16 {
    let (_, out, _) = run(std::process::Command::new("curl").args([
        "-s",
        "-o",
        "/dev/null",
        "-w",
        "%{http_code}",
        "--http2-prior-knowledge",
        "-H",
        &format!("Host: {host}"),
        &format!("http://{addr}/"),
    ]));
    out.trim().parse().unwrap_or(0)
}

#[test]
fn refused_connections_move_on_within_the_tries() {
    let live = Upstream::start("live");
    let mut five: Vec<SocketAddr> = (0..5).map(|_| dead_addr()).collect();
    five.push(live.addr);
    let m = service("two-dead", &[dead_addr(), dead_addr(), live.addr])
        + &service("five-dead", &five)
        + &ingress("default", Some("default.test"), &[("/", "two-dead")])
        + &with_nginx(ingress("off", Some("off.test"), &[("/", "two-dead")]), &[("proxy-next-upstream", "off")])
        + &ingress("three", Some("three.test"), &[("/", "five-dead")])
        + &with_nginx(ingress("all", Some("all.test"), &[("/", "five-dead")]), &[("proxy-next-upstream-tries", "0")]);
    let p = Proxy::start("uring", &m, &[]);
    // ingress-nginx's default, `error timeout` with three tries: two refusing endpoints and a
    // live one always answer, over HTTP/1.1 and HTTP/2.
    for i in 0..12 {
        assert_eq!(send(p.http, "default.test", "GET"), 200, "request {i}");
        assert_eq!(h2_status(p.http, "default.test"), 200, "HTTP/2 request {i}");
    }
    // `off`: a refused connection is the client's 502.
    let off: Vec<u16> = (0..12).map(|_| send(p.http, "off.test", "GET")).collect();
    assert!(off.contains(&502) && off.contains(&200), "{off:?}");
    // Five refusing endpoints of six: three tries are not always enough; unlimited tries are.
    let three: Vec<u16> = (0..18).map(|_| send(p.http, "three.test", "GET")).collect();
    assert!(three.contains(&502), "{three:?}");
    assert!((0..18).all(|_| send(p.http, "all.test", "GET") == 200));
}

#[test]
fn named_statuses_move_on_and_a_post_is_never_sent_twice_unless_asked() {
    let good = Upstream::start("good");
    let (bad, bad_gets, bad_posts) = answering(503);
    let m = service("mixed", &[bad, good.addr])
        + &with_nginx(
            ingress("statuses", Some("statuses.test"), &[("/", "mixed")]),
            &[("proxy-next-upstream", "error timeout http_503")],
        )
        + &with_nginx(
            ingress("resend", Some("resend.test"), &[("/", "mixed")]),
            &[("proxy-next-upstream", "error http_503 non_idempotent")],
        )
        + &ingress("plain", Some("plain.test"), &[("/", "mixed")]);
    let p = Proxy::start("uring", &m, &["--workers", "1"]);

    // GET: the 503 is dropped and the other endpoint answers, every time.
    for _ in 0..10 {
        assert_eq!(send(p.http, "statuses.test", "GET"), 200);
        assert_eq!(h2_status(p.http, "statuses.test"), 200);
    }
    assert!(bad_gets.load(Ordering::SeqCst) > 0, "round robin reached the refusing endpoint");

    // POST without non_idempotent: the 503 is the client's; no POST reaches two endpoints.
    let (good_before, bad_before) = (good.hits(), bad_posts.load(Ordering::SeqCst));
    let posts: Vec<u16> = (0..10).map(|_| send(p.http, "statuses.test", "POST")).collect();
    let sent = (good.hits() - good_before) + (bad_posts.load(Ordering::SeqCst) - bad_before);
    assert_eq!(sent, 10, "each POST reached one endpoint: {posts:?}");
    assert!(posts.contains(&503) && posts.contains(&200), "{posts:?}");

    // With non_idempotent it moves on like a GET.
    let bad_before = bad_posts.load(Ordering::SeqCst);
    assert!((0..10).all(|_| send(p.http, "resend.test", "POST") == 200));
    assert!(bad_posts.load(Ordering::SeqCst) > bad_before, "some POSTs were tried on the refusing endpoint first");

    // Without http_503 in the list a 503 is an answer like any other.
    let plain: Vec<u16> = (0..10).map(|_| send(p.http, "plain.test", "GET")).collect();
    assert!(plain.contains(&503), "{plain:?}");
}

#[test]
fn a_timeout_moves_on_only_when_named() {
    let good = Upstream::start("good");
    let m = service("slow", &[silent(), good.addr])
        + &with_nginx(
            ingress("timeout", Some("timeout.test"), &[("/", "slow")]),
            &[("proxy-read-timeout", "1"), ("proxy-next-upstream", "timeout")],
        )
        + &with_nginx(
            ingress("error", Some("error.test"), &[("/", "slow")]),
            &[("proxy-read-timeout", "1"), ("proxy-next-upstream", "error")],
        );
    let p = Proxy::start("uring", &m, &["--workers", "1"]);
    // Round robin over the two endpoints: two requests reach the silent one once each.
    assert!((0..2).all(|_| send(p.http, "timeout.test", "GET") == 200));
    let error: Vec<u16> = (0..2).map(|_| send(p.http, "error.test", "GET")).collect();
    assert!(error.contains(&504) && error.contains(&200), "{error:?}");
}
