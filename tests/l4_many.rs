//! The L4 load balancer holding 10,000 idle connections. In a test binary of its own: it
//! needs nearly every descriptor the process may open.

mod support;

use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex};

use support::*;

/// 10,000 connections need 20,000 descriptors in the proxy (client and backend side) and as
/// many here: where the hard limit is lower (20,000 in some sandboxes, and only root may raise
/// it), the test holds as many as fit and says so.
#[test]
fn ten_thousand_idle_connections() {
    let limit = support::raise_fd_limit();
    let n = 10_000usize.min((limit as usize).saturating_sub(1000) / 2);
    if n < 10_000 {
        eprintln!("open-file limit {limit}: holding {n} connections instead of 10,000");
    }
    // A deep accept queue: the proxy's 10,000 connects arrive in a burst.
    let sock = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    sock.bind(&"127.0.0.1:0".parse::<std::net::SocketAddr>().unwrap().into()).unwrap();
    sock.listen(8192).unwrap();
    let l: TcpListener = sock.into();
    let addr = l.local_addr().unwrap();
    let held = Arc::new(Mutex::new(Vec::new()));
    let h = held.clone();
    std::thread::spawn(move || {
        for s in l.incoming().flatten() {
            h.lock().unwrap().push(s);
        }
    });
    let port = free_port();
    let p = Proxy::start("uring", &lb_service("idle", port, &[addr], &[]), &["--lb-address", "127.0.0.1"]);
    p.wait_for(|| TcpStream::connect(("127.0.0.1", port)).is_ok(), "the port open");
    let rss_before = p.rss_kib();
    let clients: Vec<TcpStream> = (0..n).map(|_| TcpStream::connect(("127.0.0.1", port)).unwrap()).collect();
    let active = || -> f64 {
        let m = get(p.admin, "x", "/metrics").text();
        m.lines()
            .find(|l| l.starts_with("ringress_l4_connections_active{service=\"default/idle:"))
            .and_then(|l| l.rsplit(' ').next()?.parse().ok())
            .unwrap_or(0.0)
    };
    // Plus the readiness probe's connection, half-closed by the client: it lives until the
    // backend closes too.
    p.wait_for(|| active() == (n + 1) as f64, "every connection open through the proxy");
    p.wait_for(|| held.lock().unwrap().len() == n + 1, "every connection at the backend");
    // For the record (not asserted): what an idle connection costs the proxy in memory.
    let per = (p.rss_kib().saturating_sub(rss_before)) as f64 / n as f64;
    eprintln!("proxy RSS: {rss_before} KiB before, {:.2} KiB more per idle connection", per);
    drop(clients);
    held.lock().unwrap().clear();
    p.wait_for(|| active() == 0.0, "all closed once both sides closed");
}
