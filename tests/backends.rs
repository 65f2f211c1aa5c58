//! Backends ingress-nginx users have: the `default-backend` annotation (a Service of the
//! Ingress's namespace answering when a route's own Service has no endpoints),
//! `--default-backend-service` (answering requests no rule matches), and `service-upstream`
//! (the Service's cluster IP instead of its endpoints), through the real binary, following
//! endpoint changes live (in Kubernetes mode too, with the fallback Services created after
//! the Ingress).

mod support;

use std::net::SocketAddr;

use support::*;

fn upstream_of(r: &Response) -> String {
    r.text().lines().find_map(|l| l.strip_prefix("upstream=")).unwrap_or("").to_string()
}

#[test]
fn the_annotation_answers_for_a_service_without_endpoints_and_the_flag_for_unmatched_requests() {
    let (app, spare, catch) = (Upstream::start("app"), Upstream::start("spare"), Upstream::start("catch"));
    let m = |app_endpoints: &[SocketAddr]| {
        service("app", app_endpoints)
            + &service("spare", &[spare.addr])
            + &service("catch", &[catch.addr])
            + &with_nginx(ingress("shop", Some("shop.test"), &[("/", "app")]), &[("default-backend", "spare")])
            + &ingress("plain", Some("plain.test"), &[("/", "app")])
            + &with_nginx(ingress("typo", Some("typo.test"), &[("/", "app")]), &[("default-backend", "nope")])
    };
    let p = Proxy::start("uring", &m(&[]), &["--default-backend-service", "default/catch"]);
    let r = get(p.http, "shop.test", "/cart");
    assert_eq!((r.status, upstream_of(&r)), (200, "spare".to_string()), "{}", r.text());
    assert_eq!(get(p.http, "plain.test", "/").status, 503, "no annotation: the usual 503");
    assert_eq!(get(p.http, "typo.test", "/").status, 503, "a missing Service is no fallback");
    p.wait_for(
        || p.log_text().contains("default-backend: Service default/nope not found"),
        "default-backend: Service default/nope not found",
    );
    // Requests no rule matches go to --default-backend-service, over HTTP/2 too.
    let r = get(p.http, "unknown.test", "/anything");
    assert_eq!((r.status, upstream_of(&r)), (200, "catch".to_string()));
    let out = h2c_body(p.http, "other.test", "/");
    assert!(out.contains("upstream=catch"), "{out}");

    // The Service gets an endpoint: its own route answers again.
    let g = p.generation();
    p.replace_manifests(&m(&[app.addr]));
    p.wait_for(|| p.generation() > g, "the new endpoints");
    assert_eq!(upstream_of(&get(p.http, "shop.test", "/")), "app");
}

#[test]
fn service_upstream_sends_to_the_cluster_ip_and_port() {
    // The "cluster IP" is a loopback address where a test upstream listens on the Service's
    // port; the EndpointSlice names another upstream, which service-upstream must not reach.
    let (virtual_ip, pod) = (Upstream::start("cluster-ip"), Upstream::start("pod"));
    let svc = format!(
        "---\napiVersion: v1\nkind: Service\nmetadata: {{name: web, namespace: default}}\nspec:\n  clusterIP: {}\n  ports: [{{name: http, port: {}, targetPort: http}}]\n",
        virtual_ip.addr.ip(),
        virtual_ip.addr.port()
    );
    // The EndpointSlices of a Service made by `service`, without its Service.
    let slices = |name: &str| {
        let all = service(name, &[pod.addr]);
        all[all.find("---\napiVersion: discovery").unwrap()..].to_string()
    };
    let port = virtual_ip.addr.port().to_string();
    let ing = |name: &str, host: &str| {
        ingress(name, Some(host), &[("/", "web")]).replace("number: 80", &format!("number: {port}"))
    };
    let headless = "---\napiVersion: v1\nkind: Service\nmetadata: {name: headless, namespace: default}\nspec:\n  clusterIP: None\n  ports: [{name: http, port: 80, targetPort: http}]\n";
    let m = svc.clone()
        + &slices("web")
        + &with_nginx(ing("via-ip", "ip.test"), &[("service-upstream", "true")])
        + &ing("direct", "direct.test")
        + headless
        + &slices("headless")
        + &with_nginx(ingress("hl", Some("hl.test"), &[("/", "headless")]), &[("service-upstream", "true")]);
    let p = Proxy::start("uring", &m, &[]);
    for _ in 0..5 {
        assert_eq!(upstream_of(&get(p.http, "ip.test", "/")), "cluster-ip");
        assert_eq!(upstream_of(&get(p.http, "direct.test", "/")), "pod");
    }
    // A headless Service has no cluster IP: a warning, and its endpoints serve.
    assert_eq!(upstream_of(&get(p.http, "hl.test", "/")), "pod");
    p.wait_for(
        || p.log_text().contains("service-upstream: Service default/headless has no cluster IP"),
        "service-upstream: Service default/headless has no cluster IP",
    );
}

#[test]
fn in_kubernetes_mode_fallback_services_created_after_the_ingress_are_used() {
    let c = Cluster::start();
    let (spare, catch) = (Upstream::start("spare"), Upstream::start("catch"));
    // The Ingress first, its Service without endpoints, and neither fallback Service yet.
    c.apply(
        &(service("app", &[])
            + &with_nginx(ingress("shop", Some("shop.test"), &[("/", "app")]), &[("default-backend", "spare")])),
    );
    let p = c.proxy(&["--default-backend-service", "default/catch"]);
    assert_eq!(get(p.http, "shop.test", "/").status, 503);
    assert_eq!(get(p.http, "unknown.test", "/").status, 404);
    // The fallbacks appear: both are used from then on.
    c.apply(&(service("spare", &[spare.addr]) + &service("catch", &[catch.addr])));
    p.wait_for(|| upstream_of(&get(p.http, "shop.test", "/")) == "spare", "the default-backend Service");
    p.wait_for(|| upstream_of(&get(p.http, "unknown.test", "/")) == "catch", "the --default-backend-service Service");
    // And removed again: the usual answers.
    c.kubectl(&["delete", "service", "spare", "catch"]);
    p.wait_for(|| get(p.http, "shop.test", "/").status == 503, "the fallback gone");
    p.wait_for(|| get(p.http, "unknown.test", "/").status == 404, "no default backend");
}

/// An upstream whose response head carries a `bytes`-long field.
fn big_head_upstream(bytes: usize) -> SocketAddr {
    use std::io::{Read, Write};
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    std::thread::spawn(move || {
        for mut s in l.incoming().flatten() {
            let mut buf = [0u8; 4096];
            let _ = s.read(&mut buf);
            let big = "v".repeat(bytes);
            // One write: the whole head arrives in one read, and must still be refused.
            let resp = format!("HTTP/1.1 200 OK\r\nX-Big: {big}\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok");
            let _ = s.write_all(resp.as_bytes());
        }
    });
    addr
}

#[test]
fn backend_protocols_auto_http_and_fcgi_and_the_response_head_limit() {
    // B terminates TLS in front of the upstream; A's AUTO_HTTP route to B's HTTPS port speaks
    // TLS to it only for requests that came to A over TLS, as ingress-nginx's `$scheme://`.
    let up = Upstream::start("up");
    let b = Proxy::start(
        "uring",
        &(service("svc-up", &[up.addr]) + &tls_ingress("hop", "hop.test", None, "svc-up", &[])),
        &[],
    );
    let big = big_head_upstream(3000);
    let routes = service("svc-b", &[b.https])
        + &service("big", &[big])
        + &tls_ingress(
            "hop",
            "hop.test",
            None,
            "svc-b",
            &[("nginx.ingress.kubernetes.io/backend-protocol", "AUTO_HTTP")],
        )
        + &with_nginx(ingress("fcgi", Some("fcgi.test"), &[("/", "svc-b")]), &[("backend-protocol", "FCGI")])
        + &with_nginx(ingress("small", Some("small.test"), &[("/", "big")]), &[("proxy-buffer-size", "2k")])
        + &ingress("large", Some("large.test"), &[("/", "big")]);
    let a = Proxy::start("uring", &routes, &[]);
    let (ok, out, err) = run(std::process::Command::new("curl").args([
        "-sSk",
        "--resolve",
        &format!("hop.test:{}:127.0.0.1", a.https.port()),
        &format!("https://hop.test:{}/auto", a.https.port()),
    ]));
    assert!(ok && out.contains("path=/auto") && out.contains("header x-forwarded-proto: https"), "{out} {err}");
    // HTTP/2 over TLS too (the same exchange from the HTTP/2 session).
    let (ok, out, err) = run(std::process::Command::new("curl").args([
        "-sSk",
        "--http2",
        "--resolve",
        &format!("hop.test:{}:127.0.0.1", a.https.port()),
        &format!("https://hop.test:{}/auto-h2", a.https.port()),
    ]));
    assert!(ok && out.contains("path=/auto-h2") && out.contains("header x-forwarded-proto: https"), "{out} {err}");
    assert_eq!(get(a.http, "hop.test", "/auto").status, 502, "plain HTTP to B's TLS port");
    assert!(h2c_response(a.http, "hop.test", "/auto").starts_with("HTTP/2 502"), "h2c: plain to B's TLS port");
    // FCGI: refused with its reason, never sent to the backend as HTTP.
    let r = get(a.http, "fcgi.test", "/");
    assert_eq!(r.status, 503);
    assert!(r.text().contains("FastCGI backends are not supported"), "{}", r.text());
    // proxy-buffer-size bounds the upstream's response head (nginx's "too big header").
    assert_eq!(get(a.http, "small.test", "/").status, 502);
    assert!(h2c_response(a.http, "small.test", "/").starts_with("HTTP/2 502"), "the same limit over HTTP/2");
    assert!(h2c_response(a.http, "large.test", "/").starts_with("HTTP/2 200"));
    let r = get(a.http, "large.test", "/");
    assert_eq!((r.status, r.text().as_str()), (200, "ok"));
}
