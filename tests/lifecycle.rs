//! The drain on SIGTERM, with real clients: readiness turns 503, the listeners close, idle
//! keep-alive connections close, a request in progress on HTTP/1.1 finishes with
//! `Connection: close`, an HTTP/2 stream in progress finishes after a GOAWAY, and the process
//! exits 0; with a short drain timeout it exits 0 without waiting for a slow request.

mod support;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use support::*;

fn site(io: &str, args: &[&str]) -> (Upstream, Proxy) {
    let a = Upstream::start("a");
    let m = service("svc-a", &[a.addr]) + &ingress("site", Some("drain.test"), &[("/", "svc-a")]);
    (a, Proxy::start(io, &m, args))
}

fn sigterm(p: &Proxy) {
    // SAFETY: kill(2) with a child's pid and a valid signal number.
    assert_eq!(unsafe { libc::kill(p.pid() as i32, libc::SIGTERM) }, 0);
}

/// The exit status once the process ends (None: still running after `within`).
fn exit_code(p: &mut Proxy, within: Duration) -> Option<i32> {
    let start = Instant::now();
    while start.elapsed() < within {
        if let Some(status) = p.child.try_wait().unwrap() {
            return Some(status.code().unwrap_or(-1));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    None
}

per_backend!(fn sigterm_drains_http1_and_http2_then_exits_zero(io) {
    let (_a, mut p) = site(io, &[]);
    // An idle keep-alive connection (one request answered).
    let mut idle = connect(p.http);
    idle.write_all(b"GET / HTTP/1.1\r\nHost: drain.test\r\n\r\n").unwrap();
    let mut pending = Vec::new();
    assert_eq!(read_response(&mut idle, &mut pending, false).expect("a response").status, 200);
    // An HTTP/1.1 request in progress (the upstream answers after 1.5 s).
    let mut busy = connect(p.http);
    busy.write_all(b"GET /sleep/1500 HTTP/1.1\r\nHost: drain.test\r\n\r\n").unwrap();
    // An HTTP/2 stream in progress, on a connection of its own.
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let h2_addr = p.http;
    let h2_call = std::thread::spawn(move || {
        rt.block_on(async {
            let tcp = tokio::net::TcpStream::connect(h2_addr).await.unwrap();
            let (client, conn) = h2::client::handshake(tcp).await.unwrap();
            let conn = tokio::spawn(conn);
            let mut client = client.ready().await.unwrap();
            let req = http::Request::get("http://drain.test/sleep/1500").body(()).unwrap();
            let (resp, _) = client.send_request(req, true).unwrap();
            let resp = resp.await.unwrap();
            let status = resp.status().as_u16();
            let mut body = resp.into_body();
            while let Some(chunk) = body.data().await {
                let _ = body.flow_control().release_capacity(chunk.unwrap().len());
            }
            drop(client);
            // The server ends the connection (GOAWAY) without the client closing it.
            let ended = tokio::time::timeout(Duration::from_secs(10), conn).await.is_ok();
            (status, ended)
        })
    });
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(get(p.admin, "x", "/readyz").status, 200);

    sigterm(&p);
    p.wait_for(|| get(p.admin, "x", "/readyz").status == 503, "/readyz to turn 503");
    // The idle connection is closed by the proxy, without waiting for its idle timeout.
    assert!(closed_within(&mut idle, Duration::from_secs(5)), "{io}: the idle connection stayed open");
    // Nothing new is accepted.
    p.wait_for(|| TcpStream::connect(p.http).is_err(), "the listener to close");
    // The request in progress completes, and says the connection closes.
    let mut pending = Vec::new();
    let r = read_response(&mut busy, &mut pending, false).expect("the response to the request in progress");
    assert_eq!((r.status, r.header("connection")), (200, Some("close")), "{io}");
    assert!(closed_within(&mut busy, Duration::from_secs(5)), "{io}: closed after the response");
    let (status, ended) = h2_call.join().unwrap();
    assert_eq!(status, 200, "{io}: the HTTP/2 stream in progress completes");
    assert!(ended, "{io}: the HTTP/2 connection is ended by the proxy after its last stream");
    assert_eq!(exit_code(&mut p, Duration::from_secs(10)), Some(0), "{io}: {}", p.log_text());
    p.wait_for(|| p.log_text().contains("drained; exiting"), "drained; exiting");
});

#[test]
fn drain_timeout_bounds_the_wait_for_slow_requests() {
    let (_a, mut p) = site("uring", &["--drain-timeout", "0.5"]);
    let mut slow = connect(p.http);
    slow.write_all(b"GET /sleep/20000 HTTP/1.1\r\nHost: drain.test\r\n\r\n").unwrap();
    std::thread::sleep(Duration::from_millis(300));
    sigterm(&p);
    // Well before the request would finish: exit 0 with the connection cut.
    assert_eq!(exit_code(&mut p, Duration::from_secs(10)), Some(0), "{}", p.log_text());
    p.wait_for(|| p.log_text().contains("drain timeout"), "drain timeout");
    let mut b = [0u8; 64];
    slow.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    assert!(matches!(slow.read(&mut b), Ok(0) | Err(_)), "the cut connection is closed");
}
