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

/// A ConfigMap manifest with `data`.
fn config_map(ns: &str, name: &str, data: &[(&str, &str)]) -> String {
    let list: Vec<String> = data.iter().map(|(k, v)| format!("{k}: \"{v}\"")).collect();
    format!(
        "---\napiVersion: v1\nkind: ConfigMap\nmetadata: {{name: {name}, namespace: {ns}}}\ndata: {{{}}}\n",
        list.join(", ")
    )
}

#[test]
fn configmap_fields_go_upstream_and_custom_headers_onto_answers_or_the_route_is_denied() {
    let up = Upstream::start("app");
    let m = |allowed: &str| {
        service("app", &[up.addr])
            + &config_map(
                "ringress",
                "ringress",
                &[("proxy-set-headers", "ringress/upstream-fields"), ("global-allowed-response-headers", allowed)],
            )
            + &config_map("ringress", "upstream-fields", &[("X-Team", "edge"), ("X-Start", "t=${msec}")])
            + &config_map("default", "answer-fields", &[("X-Frame-Options", "DENY"), ("X-Upstream", "hidden")])
            + &with_nginx(
                ingress("site", Some("site.test"), &[("/", "app")]),
                &[("custom-headers", "default/answer-fields")],
            )
            + &with_nginx(ingress("typo", Some("typo.test"), &[("/", "app")]), &[("custom-headers", "default/nope")])
    };
    let p = Proxy::start("uring", &m("X-Frame-Options, x-upstream"), &[]);
    // Upstream: the ConfigMap's field replaces the client's; one with an nginx variable is
    // skipped with a warning.
    let r = raw(p.http, b"GET / HTTP/1.1\r\nHost: site.test\r\nX-Team: spoofed\r\nConnection: close\r\n\r\n").unwrap();
    let body = r.text();
    assert_eq!(seen(&body, "x-team"), ["edge"], "{body}");
    assert!(seen(&body, "x-start").is_empty(), "{body}");
    assert!(
        p.log_text().contains("has an nginx variable, which ringress does not expand; skipped"),
        "{}",
        p.log_text()
    );
    // Answers: the custom headers, replacing the upstream's field of the same name.
    assert_eq!(r.header("x-frame-options"), Some("DENY"));
    assert_eq!(r.header("x-upstream"), Some("hidden"));
    let (ok, out, _) = run(std::process::Command::new("curl").args([
        "-sS",
        "-i",
        "--http2-prior-knowledge",
        "-H",
        "Host: site.test",
        &format!("http://{}/", p.http),
    ]));
    assert!(ok && out.contains("x-frame-options: DENY") && out.contains("x-upstream: hidden"), "{out}");
    assert!(!out.contains("x-upstream: app"), "the upstream's field is replaced over HTTP/2: {out}");
    // A missing ConfigMap denies the routes, as ingress-nginx does.
    let r = get(p.http, "typo.test", "/");
    assert_eq!(r.status, 503);
    assert!(p.log_text().contains("annotation custom-headers: ConfigMap default/nope not found"), "{}", p.log_text());

    // A field the ConfigMap does not allow denies them too.
    let g = p.generation();
    p.replace_manifests(&m("X-Frame-Options"));
    p.wait_for(|| p.generation() > g, "the new snapshot");
    assert_eq!(get(p.http, "site.test", "/").status, 503);
    assert!(
        p.log_text().contains("X-Upstream is not listed in the ConfigMap key global-allowed-response-headers"),
        "{}",
        p.log_text()
    );
}
