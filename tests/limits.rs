//! Rate and connection limits as ingress-nginx's `limit-*` annotations set them: per real
//! client address, across every worker of the process, over HTTP/1.1 and HTTP/2, with the
//! ConfigMap's status codes; `limit-whitelist` exempts; `limit-rate` paces response bodies;
//! counters survive a configuration change.

mod support;

use std::net::SocketAddr;

use support::*;

fn config_map(data: &[(&str, &str)]) -> String {
    let mut cm =
        String::from("---\napiVersion: v1\nkind: ConfigMap\nmetadata: {name: ringress, namespace: ringress}\ndata:\n");
    for (k, v) in data {
        cm += &format!("  {k}: \"{v}\"\n");
    }
    cm
}

/// The status of one request on a new connection (HTTP/1.1 raw, or HTTP/2 through curl).
fn status(addr: SocketAddr, host: &str, path: &str, h2: bool, headers: &[&str]) -> u16 {
    if h2 {
        let mut cmd = std::process::Command::new("curl");
        cmd.args(["-s", "-o", "/dev/null", "-w", "%{http_code}", "--http2-prior-knowledge"]);
        cmd.args(["-H", &format!("Host: {host}")]);
        for h in headers {
            cmd.args(["-H", h]);
        }
        let (_, out, _) = run(cmd.arg(format!("http://{addr}{path}")));
        return out.trim().parse().unwrap_or(0);
    }
    let extra: String = headers.iter().map(|h| format!("{h}\r\n")).collect();
    let req = format!("GET {path} HTTP/1.1\r\nHost: {host}\r\n{extra}Connection: close\r\n\r\n");
    raw(addr, req.as_bytes()).map_or(0, |r| r.status)
}

#[test]
fn request_rates_hold_across_workers_and_protocols_per_real_client() {
    let up = Upstream::start("api");
    let m = |burst: &str| {
        service("api", &[up.addr])
            // One a minute with a burst of 2: three requests pass, the rest are refused for
            // the length of the test, whatever the machine's speed.
            + &with_nginx(
                ingress("rated", Some("rated.test"), &[("/", "api")]),
                &[("limit-rpm", "1"), ("limit-burst-multiplier", burst)],
            )
            + &with_nginx(
                ingress("exempt", Some("exempt.test"), &[("/", "api")]),
                &[("limit-rpm", "1"), ("limit-burst-multiplier", "1"), ("limit-whitelist", "127.0.0.0/8")],
            )
            + &with_nginx(ingress("bad", Some("bad.test"), &[("/", "api")]), &[("limit-rps", "-1")])
            + &config_map(&[
                ("limit-req-status-code", "429"),
                ("use-forwarded-headers", "true"),
                ("proxy-real-ip-cidr", "127.0.0.0/8"),
            ])
    };
    let p = Proxy::start("uring", &m("2"), &["--workers", "2"]);

    // Twelve requests from one client on new connections, so both workers take some, over
    // both protocols: exactly three pass.
    let xff = "X-Forwarded-For: 203.0.113.1";
    let statuses: Vec<u16> = (0..12).map(|i| status(p.http, "rated.test", "/", i % 2 == 1, &[xff])).collect();
    assert_eq!(statuses.iter().filter(|&&s| s == 200).count(), 3, "{statuses:?}");
    assert_eq!(statuses.iter().filter(|&&s| s == 429).count(), 9, "limit-req-status-code: {statuses:?}");
    assert_eq!(&statuses[..3], &[200, 200, 200], "the burst passes first");

    // Keyed by the real client address: other clients have their own allowance.
    for i in 2..6 {
        let other = format!("X-Forwarded-For: 203.0.113.{i}");
        assert_eq!(status(p.http, "rated.test", "/", false, &[&other]), 200, "{other}");
    }
    // limit-whitelist: the loopback client is never limited.
    assert!((0..10).all(|i| status(p.http, "exempt.test", "/", i % 2 == 0, &[]) == 200));
    // A negative limit is named, and that route is not limited.
    assert!((0..10).all(|_| status(p.http, "bad.test", "/", false, &[]) == 200));
    let log = p.log_text();
    assert!(log.contains("limit-rps") && log.contains("\"-1\" is not a whole number"), "{log}");

    // A configuration change (here the burst) keeps the counts: the client stays refused.
    let g = p.generation();
    p.replace_manifests(&m("3"));
    p.wait_for(|| p.generation() > g, "the new snapshot");
    let after: Vec<u16> = (0..4).map(|_| status(p.http, "rated.test", "/", false, &[xff])).collect();
    assert_eq!(after.iter().filter(|&&s| s == 200).count(), 1, "one more for the larger burst: {after:?}");
}

#[test]
fn concurrent_requests_are_limited_per_client_until_they_end() {
    let up = Upstream::start("api");
    let m = service("api", &[up.addr])
        + &with_nginx(ingress("conns", Some("conns.test"), &[("/", "api")]), &[("limit-connections", "2")]);
    let p = Proxy::start("uring", &m, &["--workers", "2"]);
    let slow: Vec<_> = (0..2)
        .map(|_| {
            let addr = p.http;
            std::thread::spawn(move || status(addr, "conns.test", "/sleep/3000", false, &[]))
        })
        .collect();
    p.wait_for(|| up.hits() >= 2, "two requests in progress");
    assert_eq!(status(p.http, "conns.test", "/", false, &[]), 503, "a third one, HTTP/1.1");
    assert_eq!(status(p.http, "conns.test", "/", true, &[]), 503, "a third one, HTTP/2");
    for t in slow {
        assert_eq!(t.join().unwrap(), 200);
    }
    assert_eq!(status(p.http, "conns.test", "/", true, &[]), 200, "the count fell when they ended");
    assert_eq!(status(p.http, "conns.test", "/", false, &[]), 200);
}

#[test]
fn limit_rate_paces_response_bodies() {
    let up = Upstream::start("api");
    let m = service("api", &[up.addr])
        + &with_nginx(
            ingress("paced", Some("paced.test"), &[("/", "api")]),
            &[("limit-rate", "100"), ("limit-rate-after", "100")],
        )
        + &ingress("free", Some("free.test"), &[("/", "api")]);
    let p = Proxy::start("uring", &m, &[]);
    // 400 KiB at 100 KiB/s after 100 KiB: nginx's rule lets the first 100 KiB and one
    // second's worth through at once, so the rest takes at least two seconds. Only a lower
    // bound is asserted: a slow machine can only make it longer.
    for proto in ["--http1.1", "--http2-prior-knowledge"] {
        for (host, paced) in [("paced.test", true), ("free.test", false)] {
            let (ok, out, err) = run(std::process::Command::new("curl").args([
                "-s",
                "-o",
                "/dev/null",
                "-w",
                "%{http_code} %{size_download} %{time_total}",
                proto,
                "-H",
                &format!("Host: {host}"),
                &format!("http://{}/bytes/409600", p.http),
            ]));
            assert!(ok, "{err}");
            let f: Vec<&str> = out.split_whitespace().collect();
            assert_eq!((f[0], f[1]), ("200", "409600"), "{proto} {host}");
            let secs: f64 = f[2].parse().unwrap();
            if paced {
                assert!(secs >= 1.9, "{proto}: 400 KiB in {secs} s");
            }
        }
    }
}
