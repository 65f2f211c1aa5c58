//! `custom-http-errors` end to end: statuses from the upstream and from the proxy answered by
//! the error backend with ingress-nginx's headers (X-Code, X-Format, X-Original-URI,
//! X-Namespace, X-Ingress-Name, X-Service-Name, X-Service-Port, X-Request-ID), over HTTP/1.1
//! and HTTP/2; the annotation overriding the ConfigMap with its own `default-backend`; and the
//! built-in plain page when there is no error backend or it is down.

mod support;

use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpListener};
use std::process::Command;

use support::*;

/// An error-page server as ingress-nginx's custom-error-pages image is: it answers with the
/// status X-Code names (404 without one) and a body listing the headers it got.
struct ErrorBackend {
    addr: SocketAddr,
}

impl ErrorBackend {
    fn start(name: &'static str) -> ErrorBackend {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap();
        std::thread::spawn(move || {
            for s in l.incoming().flatten() {
                std::thread::spawn(move || {
                    let mut w = s.try_clone().unwrap();
                    let mut r = BufReader::new(s);
                    loop {
                        let mut line = String::new();
                        if r.read_line(&mut line).unwrap_or(0) == 0 {
                            return;
                        }
                        let head_only = line.starts_with("HEAD");
                        let mut body = format!("page={name}\nrequest={}\n", line.trim_end());
                        let mut code = 404;
                        loop {
                            let mut h = String::new();
                            if r.read_line(&mut h).unwrap_or(0) == 0 {
                                return;
                            }
                            if h == "\r\n" {
                                break;
                            }
                            let (k, v) = h.trim_end().split_once(": ").unwrap_or((h.trim_end(), ""));
                            if k.eq_ignore_ascii_case("x-code") {
                                code = v.parse().unwrap_or(404);
                            }
                            body += &format!("{}: {v}\n", k.to_ascii_lowercase());
                        }
                        let mut resp = format!(
                            "HTTP/1.1 {code} Page\r\nContent-Type: text/plain\r\nX-Error-Page: {name}\r\nContent-Length: {}\r\n\r\n",
                            body.len()
                        );
                        if !head_only {
                            resp += &body;
                        }
                        if w.write_all(resp.as_bytes()).is_err() {
                            return;
                        }
                    }
                });
            }
        });
        ErrorBackend { addr }
    }
}

/// curl over h2c with prior knowledge: (status, body).
fn h2c(addr: SocketAddr, host: &str, path: &str) -> (u16, String) {
    let (ok, out, err) = run(Command::new("curl").args([
        "-sS",
        "--http2-prior-knowledge",
        "-H",
        &format!("Host: {host}"),
        "-H",
        "Accept: application/json",
        "-w",
        "\n%{http_code}",
        &format!("http://{addr}{path}"),
    ]));
    assert!(ok, "{err}");
    let (body, code) = out.rsplit_once('\n').unwrap();
    (code.parse().unwrap(), body.to_string())
}

fn config_map(data: &[(&str, &str)]) -> String {
    let mut cm =
        String::from("---\napiVersion: v1\nkind: ConfigMap\nmetadata: {name: ringress, namespace: ringress}\ndata:\n");
    for (k, v) in data {
        cm += &format!("  {k}: \"{v}\"\n");
    }
    cm
}

#[test]
fn listed_statuses_get_the_error_backends_page_with_ingress_nginx_headers() {
    let app = Upstream::start("app");
    let errors = ErrorBackend::start("errors");
    let own = ErrorBackend::start("own-errors");
    let manifests = service("app", &[app.addr])
        + &service("errors", &[errors.addr])
        + &service("own-errors", &[own.addr])
        + &service("empty", &[])
        + &ingress("site", Some("site.test"), &[("/", "app")])
        + &ingress("down", Some("down.test"), &[("/", "empty")])
        + &with_nginx(
            ingress("own", Some("own.test"), &[("/", "app")]),
            &[("custom-http-errors", "500"), ("default-backend", "own-errors")],
        )
        + &config_map(&[("custom-http-errors", "404,503")]);
    let p = Proxy::start("uring", &manifests, &["--default-backend-service", "default/errors"]);

    // HTTP/1.1: the upstream's 404 is replaced by the page, and the connection stays open.
    let mut s = connect(p.http);
    let mut pending = Vec::new();
    s.write_all(b"GET /status/404 HTTP/1.1\r\nHost: site.test\r\nAccept: text/html\r\nX-Request-ID: rid-7\r\n\r\n")
        .unwrap();
    let r = read_response(&mut s, &mut pending, false).expect("a response");
    let body = r.text();
    assert_eq!(r.status, 404, "{body}");
    assert_eq!(r.header("x-error-page"), Some("errors"), "{:?} {body}\n{}", r.headers, p.log_text());
    assert!(r.header("x-upstream").is_none(), "the upstream's answer is dropped");
    for want in [
        "request=GET / HTTP/1.1",
        "x-code: 404",
        "x-format: text/html",
        "x-original-uri: /status/404",
        "x-namespace: default",
        "x-ingress-name: site",
        "x-service-name: app",
        "x-service-port: 80",
        "x-request-id: rid-7",
        "x-forwarded-for: 127.0.0.1",
        "host: site.test",
    ] {
        assert!(body.contains(want), "missing {want:?} in:\n{body}");
    }
    assert_ne!(r.header("connection"), Some("close"));
    s.write_all(b"GET /after HTTP/1.1\r\nHost: site.test\r\n\r\n").unwrap();
    let r = read_response(&mut s, &mut pending, false).expect("the next response on the same connection");
    assert!(r.text().contains("upstream=app"));

    // A status not listed passes as it is; a route with its own list (the annotation) uses
    // that list and its own default-backend.
    assert_eq!(get(p.http, "site.test", "/status/500").header("x-upstream"), Some("app"));
    let r = get(p.http, "own.test", "/status/500");
    assert_eq!((r.status, r.header("x-error-page")), (500, Some("own-errors")));
    assert!(r.text().contains("x-ingress-name: own"));
    let r = get(p.http, "own.test", "/status/404");
    assert_eq!((r.status, r.header("x-upstream")), (404, Some("app")), "404 is not in own's list");

    // The proxy's own 503 (no endpoints) gets the page too.
    let r = get(p.http, "down.test", "/x");
    assert_eq!((r.status, r.header("x-error-page")), (503, Some("errors")));
    assert!(r.text().contains("x-service-name: empty"), "{}", r.text());

    // HTTP/2: the same page.
    let (code, body) = h2c(p.http, "site.test", "/status/404");
    assert_eq!(code, 404);
    assert!(body.contains("page=errors") && body.contains("x-format: application/json"), "{body}\n{}", p.log_text());
    let (code, body) = h2c(p.http, "down.test", "/");
    assert!(code == 503 && body.contains("x-code: 503"), "{code} {body}");

    // HEAD: the page's head only.
    let r = raw(p.http, b"HEAD /status/404 HTTP/1.1\r\nHost: site.test\r\nConnection: close\r\n\r\n").unwrap();
    assert_eq!((r.status, r.header("x-error-page"), r.body.len()), (404, Some("errors"), 0));

    // Requests no rule matches go to the default backend itself (never intercepted in a loop).
    let r = get(p.http, "nowhere.test", "/missing");
    assert_eq!((r.status, r.header("x-error-page")), (404, Some("errors")));
    assert!(!r.text().contains("x-code"), "{}", r.text());
}

#[test]
fn without_an_error_backend_the_proxy_answers_a_plain_page() {
    let app = Upstream::start("app");
    let manifests = service("app", &[app.addr])
        + &service("gone", &[dead_addr()])
        + &ingress("site", Some("site.test"), &[("/", "app")])
        + &with_nginx(
            ingress("broken", Some("broken.test"), &[("/", "app")]),
            &[("custom-http-errors", "404"), ("default-backend", "gone")],
        )
        + &config_map(&[("custom-http-errors", "404,502")]);
    let p = Proxy::start("uring", &manifests, &[]);
    // No default backend: the built-in page, with the upstream's status.
    let r = get(p.http, "site.test", "/status/404");
    assert_eq!((r.status, r.text().as_str(), r.header("x-upstream")), (404, "404 Not Found\n", None));
    let (code, body) = h2c(p.http, "site.test", "/status/404");
    assert_eq!((code, body.trim_end()), (404, "404 Not Found"));
    let head = h2c_response(p.http, "site.test", "/status/404");
    assert!(head.contains("server: ringress"), "the proxy's page names it over HTTP/2 too: {head}");
    // The route's error backend cannot be reached: the plain page, never the upstream's.
    let r = get(p.http, "broken.test", "/status/404");
    assert_eq!((r.status, r.text().as_str()), (404, "404 Not Found\n"));
    // A bad list is a warning naming the Ingress; the ConfigMap's list applies.
    let bad = with_nginx(ingress("bad", Some("bad.test"), &[("/", "app")]), &[("custom-http-errors", "404,abc")]);
    let generation = p.generation();
    p.replace_manifests(&(manifests + &bad));
    p.wait_for(|| p.generation() > generation, "the new snapshot");
    p.wait_for(
        || p.log_text().contains("custom-http-errors: \"404,abc\" is not a comma-separated list of statuses"),
        "custom-http-errors: \"404,abc\" is not a comma-separated list of statuses",
    );
    assert_eq!(get(p.http, "bad.test", "/status/404").text(), "404 Not Found\n");
}
