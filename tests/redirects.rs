//! Redirect annotations through the real binary, with curl and raw clients: `permanent-redirect`
//! and `temporal-redirect` (+ codes, precedence), `app-root`, `preserve-trailing-slash` and the
//! ConfigMap's `force-ssl-redirect`, `server-alias` (exact and wildcard) and
//! `from-to-www-redirect` both ways; a rule's own host always wins; bad values keep the
//! previous one; aliases follow live changes in Kubernetes mode.

mod support;

use support::*;

fn upstream_of(r: &Response) -> String {
    r.text().lines().find_map(|l| l.strip_prefix("upstream=")).unwrap_or("").to_string()
}

fn answer(r: &Response) -> (u16, Option<String>) {
    (r.status, r.header("location").map(str::to_string))
}

fn redirected(status: u16, to: &str) -> (u16, Option<String>) {
    (status, Some(to.to_string()))
}

/// curl over h2c (prior knowledge): "HTTP-VERSION STATUS LOCATION".
fn h2c_answer(addr: std::net::SocketAddr, host: &str, path: &str) -> String {
    let (ok, out, err) = run(std::process::Command::new("curl").args([
        "-sS",
        "-o",
        "/dev/null",
        "-w",
        "%{http_version} %{http_code} %{redirect_url}",
        "--http2-prior-knowledge",
        "-H",
        &format!("Host: {host}"),
        &format!("http://{addr}{path}"),
    ]));
    assert!(ok, "{err}");
    out
}

#[test]
fn redirect_annotations_answer_for_their_routes_over_http1_and_http2() {
    let up = Upstream::start("app");
    let m = |perm: &str| {
        service("app", &[up.addr])
            + &with_nginx(ingress("perm", Some("perm.test"), &[("/", "app")]), &[("permanent-redirect", perm)])
            + &with_nginx(
                ingress("p308", Some("p308.test"), &[("/", "app")]),
                &[("permanent-redirect", "https://new.example/"), ("permanent-redirect-code", "308")],
            )
            + &with_nginx(
                ingress("temp", Some("temp.test"), &[("/", "app")]),
                &[("temporal-redirect", "https://tmp.example/x"), ("permanent-redirect", "https://not.example/")],
            )
            + &with_nginx(ingress("root", Some("root.test"), &[("/", "app")]), &[("app-root", "/app1")])
            + &with_nginx(
                ingress("bad", Some("bad.test"), &[("/", "app")]),
                &[("permanent-redirect", "https://x.example$request_uri")],
            )
    };
    let p = Proxy::start("uring", &m("https://new.example/landing?from=perm"), &[]);
    assert_eq!(
        answer(&get(p.http, "perm.test", "/any/path?x=1")),
        redirected(301, "https://new.example/landing?from=perm")
    );
    assert_eq!(answer(&get(p.http, "p308.test", "/")), redirected(308, "https://new.example/"));
    assert_eq!(answer(&get(p.http, "temp.test", "/")), redirected(302, "https://tmp.example/x"), "temporal wins");
    assert_eq!(answer(&get(p.http, "root.test", "/")), redirected(302, "http://root.test/app1"));
    assert_eq!(upstream_of(&get(p.http, "root.test", "/app1")), "app", "only / is redirected");
    assert_eq!(upstream_of(&get(p.http, "bad.test", "/")), "app", "a URL with a variable is not used");
    assert!(
        p.log_text().contains("is not an http or https URL of the characters ingress-nginx allows"),
        "{}",
        p.log_text()
    );
    // HTTP/2: the same answers.
    assert_eq!(h2c_answer(p.http, "perm.test", "/x"), "2 301 https://new.example/landing?from=perm");
    assert_eq!(up.hits(), 2, "redirected requests never reach the upstream");

    // A URL that stops parsing keeps the previous one.
    let g = p.generation();
    p.replace_manifests(&m("javascript:alert(1)"));
    p.wait_for(|| p.generation() > g, "the new snapshot");
    assert_eq!(answer(&get(p.http, "perm.test", "/")), redirected(301, "https://new.example/landing?from=perm"));
    p.wait_for(|| p.log_text().contains("its previous value"), "its previous value");
}

#[test]
fn https_redirects_drop_the_trailing_slash_unless_preserved_and_the_configmap_forces_them() {
    let up = Upstream::start("app");
    let cm = "---\napiVersion: v1\nkind: ConfigMap\nmetadata: {name: ringress, namespace: ringress}\ndata: {force-ssl-redirect: \"true\"}\n";
    let m = service("app", &[up.addr])
        + cm
        + &ingress("plain", Some("plain.test"), &[("/", "app")])
        + &with_nginx(ingress("keep", Some("keep.test"), &[("/", "app")]), &[("preserve-trailing-slash", "true")])
        + &with_nginx(ingress("optout", Some("optout.test"), &[("/", "app")]), &[("force-ssl-redirect", "false")]);
    let p = Proxy::start("uring", &m, &[]);
    let port = p.https.port();
    assert_eq!(
        answer(&get(p.http, "plain.test", "/docs/")),
        redirected(308, &format!("https://plain.test:{port}/docs"))
    );
    assert_eq!(answer(&get(p.http, "plain.test", "/")), redirected(308, &format!("https://plain.test:{port}")));
    assert_eq!(
        answer(&get(p.http, "keep.test", "/docs/")),
        redirected(308, &format!("https://keep.test:{port}/docs/"))
    );
    assert_eq!(upstream_of(&get(p.http, "optout.test", "/")), "app", "the annotation overrides the ConfigMap");
}

#[test]
fn server_aliases_serve_and_www_counterparts_redirect_but_real_hosts_win() {
    let (a, b) = (Upstream::start("a"), Upstream::start("b"));
    let m = service("a", &[a.addr])
        + &service("b", &[b.addr])
        + &with_nginx(
            ingress("site", Some("example.test"), &[("/", "a")]),
            &[("server-alias", "alias.test, *.wild.test, taken.test"), ("from-to-www-redirect", "true")],
        )
        + &ingress("taken", Some("taken.test"), &[("/", "b")])
        + &with_nginx(ingress("shop", Some("www.shop.test"), &[("/", "a")]), &[("from-to-www-redirect", "true")])
        + &with_nginx(ingress("real", Some("real.test"), &[("/", "a")]), &[("from-to-www-redirect", "true")])
        + &ingress("www-real", Some("www.real.test"), &[("/", "b")]);
    let p = Proxy::start("uring", &m, &[]);
    assert_eq!(upstream_of(&get(p.http, "alias.test", "/")), "a");
    assert_eq!(upstream_of(&get(p.http, "deep.er.wild.test", "/")), "a", "a wildcard alias takes any depth");
    assert_eq!(upstream_of(&get(p.http, "taken.test", "/")), "b", "a rule's own host wins over an alias");
    assert_eq!(answer(&get(p.http, "www.example.test", "/docs/")), redirected(308, "http://example.test/docs"));
    assert_eq!(answer(&get(p.http, "shop.test", "/cart?id=1")), redirected(308, "http://www.shop.test/cart?id=1"));
    assert_eq!(upstream_of(&get(p.http, "www.real.test", "/")), "b", "a rule's own host is never redirected");
    assert_eq!(get(p.http, "other.test", "/").status, 404);
    // With the port the client used, and over HTTP/2.
    assert_eq!(h2c_answer(p.http, "www.example.test:8080", "/a"), "2 308 http://example.test:8080/a");
    let routes = get(p.admin, "x", "/debug/routes").text();
    assert!(routes.contains("server-alias alias.test,*.wild.test,taken.test; from-to-www-redirect"), "{routes}");
}

#[test]
fn in_kubernetes_mode_aliases_follow_annotation_changes() {
    let c = Cluster::start();
    let a = Upstream::start("a");
    c.apply(&service("a", &[a.addr]));
    c.apply(&with_nginx(ingress("site", Some("example.test"), &[("/", "a")]), &[("server-alias", "one.test")]));
    let p = c.proxy(&[]);
    assert_eq!(upstream_of(&get(p.http, "one.test", "/")), "a");
    c.kubectl(&["annotate", "--overwrite", "ingress", "site", "nginx.ingress.kubernetes.io/server-alias=two.test"]);
    p.wait_for(|| upstream_of(&get(p.http, "two.test", "/")) == "a", "the new alias");
    assert_eq!(get(p.http, "one.test", "/").status, 404, "the old alias is gone");
    c.kubectl(&["delete", "ingress", "site"]);
    p.wait_for(|| get(p.http, "two.test", "/").status == 404, "the Ingress gone, its alias too");
}
