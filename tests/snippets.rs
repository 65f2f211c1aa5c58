//! `configuration-snippet` and `server-snippet` read safely: with `allow-snippet-annotations`
//! on, the safe subset is applied over HTTP/1.1 and HTTP/2; any other directive leaves the
//! snippet unapplied with a warning naming it; an access directive refuses the routes (fail
//! closed), whether snippets are allowed or not.

mod support;

use support::*;

fn manifests(a: &Upstream, allow: bool) -> String {
    let cm = format!(
        "---\napiVersion: v1\nkind: ConfigMap\nmetadata: {{name: ringress, namespace: ringress}}\ndata: {{allow-snippet-annotations: \"{allow}\"}}\n"
    );
    let snippet = "more_set_headers \\\"X-Frame-Options: DENY\\\"; more_clear_headers X-Upstream; add_header X-Added yes; add_header X-Always on always; proxy_set_header X-From-Snippet 1; rewrite ^/old/(.*)$ /new/$1 permanent;";
    service("app", &[a.addr])
        + &cm
        + &with_nginx(ingress("snip", Some("snip.test"), &[("/", "app")]), &[("configuration-snippet", snippet)])
        + &with_nginx(
            ingress("maint", Some("maint.test"), &[("/", "app")]),
            &[("server-snippet", "return 503 'down for maintenance';")],
        )
        + &with_nginx(
            ingress("denied", Some("denied.test"), &[("/", "app")]),
            &[("configuration-snippet", "deny all;")],
        )
        + &with_nginx(
            ingress("odd", Some("odd.test"), &[("/", "app")]),
            &[("configuration-snippet", "proxy_cache_bypass 1; more_set_headers 'X-A: b';")],
        )
}

#[test]
fn the_safe_subset_applies_when_allowed_and_access_directives_fail_closed() {
    let a = Upstream::start("app");
    let p = Proxy::start("uring", &manifests(&a, true), &[]);

    let r = get(p.http, "snip.test", "/");
    assert_eq!(r.status, 200);
    assert_eq!(
        (r.header("x-frame-options"), r.header("x-added"), r.header("x-upstream")),
        (Some("DENY"), Some("yes"), None)
    );
    assert!(r.text().contains("header x-from-snippet: 1"), "{}", r.text());
    let head = h2c_response(p.http, "snip.test", "/");
    assert!(head.contains("x-frame-options: DENY") && head.contains("x-added: yes"), "{head}");
    assert!(!head.contains("x-upstream:") && head.contains("header x-from-snippet: 1"), "{head}");
    // add_header as nginx adds it: 2xx/3xx only, unless `always`.
    let r = get(p.http, "snip.test", "/status/404");
    assert_eq!((r.status, r.header("x-added"), r.header("x-always")), (404, None, Some("on")));
    let head = h2c_response(p.http, "snip.test", "/status/500");
    assert!(head.contains("x-always: on") && !head.contains("x-added"), "{head}");
    let r = get(p.http, "snip.test", "/old/a/b");
    assert_eq!((r.status, r.header("location")), (301, Some("/new/a/b")));

    let r = get(p.http, "maint.test", "/anything");
    assert_eq!((r.status, r.text().as_str()), (503, "down for maintenance"));
    assert_eq!(h2c_body(p.http, "maint.test", "/"), "down for maintenance");

    let r = get(p.http, "denied.test", "/");
    assert_eq!(r.status, 503, "an access directive refuses the routes");
    assert!(r.text().contains("deny"), "{}", r.text());

    let r = get(p.http, "odd.test", "/");
    assert_eq!((r.status, r.header("x-a")), (200, None), "the snippet is not applied at all");
    p.wait_for(
        || p.log_text().contains("proxy_cache_bypass is not in the snippet subset ringress understands"),
        "proxy_cache_bypass is not in the snippet subset ringress understands",
    );

    // Snippets switched off: none is applied (a warning says so); the access directive still refuses.
    let g = p.generation();
    p.replace_manifests(&manifests(&a, false));
    p.wait_for(|| p.generation() > g, "the new snapshot");
    let r = get(p.http, "snip.test", "/");
    assert_eq!((r.status, r.header("x-frame-options"), r.header("x-upstream")), (200, None, Some("app")));
    assert_eq!(get(p.http, "maint.test", "/").status, 200);
    assert_eq!(get(p.http, "denied.test", "/").status, 503);
    assert!(p.log_text().contains(
        "Ingress default/snip: its snippet is not applied: the ConfigMap's allow-snippet-annotations is off"
    ));
}
