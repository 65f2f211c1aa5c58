//! Request and response shaping through the real binary: `upstream-vhost` (the Host the
//! upstream gets; X-Forwarded-Host keeps the client's), `x-forwarded-prefix`, the ConfigMap's
//! `proxy-set-headers` (all in place of the client's own fields), `custom-headers` (with
//! `global-allowed-response-headers`, denying the routes when unusable) and `hide-headers`,
//! over HTTP/1.1 and HTTP/2, with bad values keeping the previous ones.

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
    p.wait_for(|| p.log_text().contains("upstream-vhost"), "upstream-vhost");
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
    let out = h2c_response(p.http, "site.test", "/");
    assert!(out.contains("x-frame-options: DENY") && out.contains("x-upstream: hidden"), "{out}");
    assert!(!out.contains("x-upstream: app"), "the upstream's field is replaced over HTTP/2: {out}");
    // A missing ConfigMap denies the routes, as ingress-nginx does.
    let r = get(p.http, "typo.test", "/");
    assert_eq!(r.status, 503);
    p.wait_for(
        || p.log_text().contains("annotation custom-headers: ConfigMap default/nope not found"),
        "annotation custom-headers: ConfigMap default/nope not found",
    );

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

#[test]
fn hide_headers_drop_upstream_fields_but_never_framing_ones() {
    let up = Upstream::start("app");
    let m = |hide: &str| {
        service("app", &[up.addr])
            + &config_map("ringress", "ringress", &[("hide-headers", hide)])
            + &ingress("site", Some("site.test"), &[("/", "app")])
    };
    let p = Proxy::start("uring", &m("X-Upstream"), &[]);
    let r = get(p.http, "site.test", "/");
    assert_eq!((r.status, r.header("x-upstream")), (200, None));
    assert!(r.text().contains("upstream=app"));
    let out = h2c_response(p.http, "site.test", "/");
    assert!(out.contains("upstream=app") && !out.contains("x-upstream:"), "{out}");
    // A framing field in the list: refused whole, the previous list stays, with a warning.
    let g = p.generation();
    p.replace_manifests(&m("X-Upstream, Content-Length"));
    p.wait_for(|| p.generation() > g, "the new snapshot");
    let r = get(p.http, "site.test", "/");
    assert_eq!((r.status, r.header("x-upstream")), (200, None));
    assert!(r.header("content-length").is_some());
    p.wait_for(|| p.log_text().contains("hide-headers"), "hide-headers");
}

/// Every value of field `name` (lower case) in an HTTP/1.1 or HTTP/2 head printed by curl -i.
fn values(head: &str, name: &str) -> Vec<String> {
    let prefix = format!("{name}: ");
    head.lines()
        .filter(|l| l.to_ascii_lowercase().starts_with(&prefix))
        .map(|l| l[prefix.len()..].trim_end().to_string())
        .collect()
}

#[test]
fn proxy_redirect_and_cookie_rewrites_apply_from_the_ingress_or_the_configmap() {
    let up = Upstream::start("app");
    let m = |cm: &[(&str, &str)]| {
        service("app", &[up.addr])
            + &config_map("ringress", "ringress", cm)
            + &with_nginx(
                ingress("site", Some("site.test"), &[("/", "app")]),
                &[
                    ("proxy-redirect-from", "http://backend.local:8080/"),
                    ("proxy-redirect-to", "https://site.test/"),
                    ("proxy-cookie-domain", "backend.local site.test"),
                    ("proxy-cookie-path", "/app/ /"),
                ],
            )
            + &ingress("plain", Some("plain.test"), &[("/", "app")])
            + &with_nginx(
                ingress("off", Some("off.test"), &[("/", "app")]),
                &[("proxy-cookie-domain", "off"), ("proxy-redirect-from", "off")],
            )
    };
    let p = Proxy::start("uring", &m(&[]), &[]);
    let raw_head = |host: &str| {
        let r = raw(p.http, format!("GET /moved HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n").as_bytes());
        let r = r.expect("a response");
        let mut head = String::new();
        for (k, v) in &r.headers {
            head += &format!("{}: {v}\n", k.to_ascii_lowercase());
        }
        head
    };
    // HTTP/1.1 and HTTP/2 alike: the Ingress's rewrites.
    for head in [raw_head("site.test"), h2c_response(p.http, "site.test", "/moved")] {
        assert_eq!(values(&head, "location"), ["https://site.test/login?x=1"], "{head}");
        assert_eq!(values(&head, "refresh"), ["3; url=https://site.test/r"], "{head}");
        let mut cookies = values(&head, "set-cookie");
        cookies.sort();
        assert_eq!(cookies, ["id=1; Domain=site.test; Path=/x; HttpOnly", "other=2; Path=/keep"], "{head}");
    }
    // Without the annotations: the upstream's fields as they are.
    let head = raw_head("plain.test");
    assert_eq!(values(&head, "location"), ["http://backend.local:8080/login?x=1"], "{head}");

    // The ConfigMap's keys for every Ingress without its own; `off` in an annotation wins.
    let g = p.generation();
    p.replace_manifests(&m(&[
        ("proxy-redirect-from", "http://backend.local:8080/"),
        ("proxy-redirect-to", "/"),
        ("proxy-cookie-domain", "backend.local example.org"),
    ]));
    p.wait_for(|| p.generation() > g, "the new snapshot");
    let head = raw_head("plain.test");
    assert_eq!(values(&head, "location"), ["/login?x=1"], "{head}");
    assert!(values(&head, "set-cookie").contains(&"id=1; Domain=example.org; Path=/app/x; HttpOnly".to_string()));
    let head = raw_head("off.test");
    assert_eq!(values(&head, "location"), ["http://backend.local:8080/login?x=1"], "{head}");
    assert!(values(&head, "set-cookie").iter().any(|c| c.contains("Domain=.Backend.Local")), "{head}");

    // A pair that cannot be used (proxy-redirect-to removed): a warning, the previous pair stays.
    let g = p.generation();
    p.replace_manifests(&m(&[("proxy-redirect-from", "http://backend.local:8080/")]));
    p.wait_for(|| p.generation() > g, "the new snapshot");
    assert_eq!(values(&raw_head("plain.test"), "location"), ["/login?x=1"]);
    let log = p.log_text();
    assert!(log.contains("key proxy-redirect-from needs proxy-redirect-to; its previous value stays"), "{log}");
}

#[test]
fn use_regex_on_one_ingress_makes_every_path_of_its_host_a_regular_expression() {
    let (a, b) = (Upstream::start("a"), Upstream::start("b"));
    let m = service("svc-a", &[a.addr])
        + &service("svc-b", &[b.addr])
        + &ingress("plain-paths", Some("r.test"), &[("/api", "svc-a")])
        + &with_nginx(ingress("regex-paths", Some("r.test"), &[("/v[0-9]+/items", "svc-b")]), &[("use-regex", "true")])
        + &ingress("other-host", Some("plain.test"), &[("/api", "svc-a")]);
    let p = Proxy::start("uring", &m, &[]);
    let upstream = |host: &str, path: &str| {
        let r = get(p.http, host, path);
        r.text().lines().find_map(|l| l.strip_prefix("upstream=")).map_or(r.status.to_string(), str::to_string)
    };
    assert_eq!(upstream("r.test", "/V2/items"), "b");
    // The other Ingress's /api on the same host is now `~* ^/api`, as ingress-nginx makes it:
    // any case, and not bound to a path segment.
    assert_eq!(upstream("r.test", "/API/x"), "a");
    assert_eq!(upstream("r.test", "/apiary"), "a");
    // Another host keeps Prefix matching.
    assert_eq!(upstream("plain.test", "/API/x"), "404");
    assert_eq!(upstream("plain.test", "/apiary"), "404");
    assert_eq!(upstream("plain.test", "/api/x"), "a");
}
