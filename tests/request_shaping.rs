//! Upstream request shaping through the real binary: `upstream-vhost` (the Host the upstream
//! gets; X-Forwarded-Host keeps the client's) and `x-forwarded-prefix` (in place of the
//! client's own field), over HTTP/1.1 and HTTP/2, with a bad value keeping the previous one.

mod support;

use support::*;

/// The values of `name` the upstream saw (its echo lists every field it received).
fn seen(body: &str, name: &str) -> Vec<String> {
    let prefix = format!("header {name}: ");
    body.lines().filter_map(|l| l.strip_prefix(&prefix)).map(str::to_string).collect()
}

#[test]
fn the_upstream_gets_the_vhost_and_the_prefix_over_http1_and_http2() {
    let up = Upstream::start("app");
    let m = |vhost: &str| {
        service("app", &[up.addr])
            + &with_nginx(
                ingress("api", Some("app.test"), &[("/", "app")]),
                &[("upstream-vhost", vhost), ("x-forwarded-prefix", "/api")],
            )
            + &ingress("plain", Some("plain.test"), &[("/", "app")])
    };
    let p = Proxy::start("uring", &m("internal.svc.local"), &[]);
    let r = raw(p.http, b"GET /x HTTP/1.1\r\nHost: app.test\r\nX-Forwarded-Prefix: /evil\r\nConnection: close\r\n\r\n")
        .unwrap();
    let body = r.text();
    assert_eq!(seen(&body, "host"), ["internal.svc.local"], "{body}");
    assert_eq!(seen(&body, "x-forwarded-host"), ["app.test"], "{body}");
    assert_eq!(seen(&body, "x-forwarded-prefix"), ["/api"], "the client's own is replaced: {body}");
    // HTTP/2 to an HTTP/1.1 upstream: the same.
    let out = h2c_body(p.http, "app.test", "/x");
    assert_eq!(seen(&out, "host"), ["internal.svc.local"], "{out}");
    assert_eq!(seen(&out, "x-forwarded-prefix"), ["/api"], "{out}");
    // Without the annotations: the client's Host, and its own X-Forwarded-Prefix passes.
    let r =
        raw(p.http, b"GET / HTTP/1.1\r\nHost: plain.test\r\nX-Forwarded-Prefix: /mine\r\nConnection: close\r\n\r\n")
            .unwrap();
    assert_eq!(seen(&r.text(), "host"), ["plain.test"]);
    assert_eq!(seen(&r.text(), "x-forwarded-prefix"), ["/mine"]);

    // A value that is not a host keeps the previous one, with a warning.
    let g = p.generation();
    p.replace_manifests(&m("bad host\\r\\nX: y"));
    p.wait_for(|| p.generation() > g, "the new snapshot");
    let body = get(p.http, "app.test", "/").text();
    assert_eq!(seen(&body, "host"), ["internal.svc.local"], "{body}");
    assert!(p.log_text().contains("upstream-vhost"), "{}", p.log_text());
}
