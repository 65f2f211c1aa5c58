//! Global settings from the ConfigMap (here in the manifests, as `--configmap` names it):
//! applied live with the snapshot, a bad value or unknown key is a warning naming it and the
//! previous value stays.

mod support;

use std::io::Write;

use support::*;

fn manifests(a: &Upstream, data: &[(&str, &str)]) -> String {
    let mut cm =
        String::from("---\napiVersion: v1\nkind: ConfigMap\nmetadata: {name: ringress, namespace: ringress}\ndata:\n");
    for (k, v) in data {
        cm += &format!("  {k}: \"{v}\"\n");
    }
    service("svc-a", &[a.addr])
        + &ingress("site", Some("cm.test"), &[("/", "svc-a")])
        + "---\napiVersion: networking.k8s.io/v1\nkind: Ingress\nmetadata:\n  name: forced\n  namespace: default\n  annotations: {nginx.ingress.kubernetes.io/force-ssl-redirect: \"true\"}\nspec:\n  ingressClassName: ringress\n  rules:\n  - host: forced.test\n    http:\n      paths:\n      - {path: /, pathType: Prefix, backend: {service: {name: svc-a, port: {number: 80}}}}\n"
        + &cm
}

fn post(p: &Proxy, len: usize) -> u16 {
    let head = format!("POST /upload HTTP/1.1\r\nHost: cm.test\r\nContent-Length: {len}\r\nConnection: close\r\n\r\n");
    let mut req = head.into_bytes();
    req.extend(std::iter::repeat_n(b'x', len));
    raw(p.http, &req).map_or(0, |r| r.status)
}

fn publish(p: &Proxy, m: &str) {
    let generation = p.generation();
    p.replace_manifests(m);
    p.wait_for(|| p.generation() > generation, "the new snapshot");
}

#[test]
fn configmap_settings_apply_live_and_bad_values_keep_the_previous_one() {
    let a = Upstream::start("a");
    let p = Proxy::start("uring", &manifests(&a, &[("proxy-body-size", "1k")]), &[]);
    assert_eq!((post(&p, 2000), post(&p, 500)), (413, 200), "proxy-body-size 1k");
    assert_eq!(get(p.http, "forced.test", "/x?y=1").status, 308, "http-redirect-code default");

    publish(
        &p,
        &manifests(&a, &[("proxy-body-size", "4k"), ("http-redirect-code", "301"), ("keep-alive-requests", "2")]),
    );
    assert_eq!((post(&p, 2000), post(&p, 5000)), (200, 413), "proxy-body-size 4k, live");
    let r = get(p.http, "forced.test", "/x?y=1");
    assert_eq!(
        (r.status, r.header("location")),
        (301, Some(format!("https://forced.test:{}/x?y=1", p.https.port()).as_str()))
    );
    // keep-alive-requests 2: the second response on a connection closes it.
    let mut s = connect(p.http);
    let mut pending = Vec::new();
    s.write_all(b"GET / HTTP/1.1\r\nHost: cm.test\r\n\r\nGET / HTTP/1.1\r\nHost: cm.test\r\n\r\n").unwrap();
    let first = read_response(&mut s, &mut pending, false).expect("first response");
    let second = read_response(&mut s, &mut pending, false).expect("second response");
    assert_eq!((first.header("connection"), second.header("connection")), (None, Some("close")));

    // A bad value and an unknown key: warnings that name them; 4k and 301 stay.
    publish(
        &p,
        &manifests(&a, &[("proxy-body-size", "lots"), ("http-redirect-code", "303"), ("enable-opentelemetry", "true")]),
    );
    assert_eq!((post(&p, 2000), post(&p, 5000)), (200, 413), "the previous proxy-body-size stays");
    assert_eq!(get(p.http, "forced.test", "/").status, 301, "the previous http-redirect-code stays");
    let log = p.log_text();
    for want in [
        "ConfigMap ringress/ringress: key proxy-body-size: \"lots\" is not a size",
        "ConfigMap ringress/ringress: key http-redirect-code: \"303\" is not 301, 302, 307 or 308; its previous value stays",
        "ConfigMap ringress/ringress: key enable-opentelemetry is not supported by ringress; ignored",
    ] {
        assert!(log.contains(want), "missing {want:?} in:\n{log}");
    }

    // The key removed: back to the flag's value.
    publish(&p, &manifests(&a, &[]));
    assert_eq!(get(p.http, "forced.test", "/").status, 308);
}

/// A ConfigMap document (namespace ringress) with `data`.
fn config_map(name: &str, data: &[(&str, &str)]) -> String {
    let mut cm =
        format!("---\napiVersion: v1\nkind: ConfigMap\nmetadata: {{name: {name}, namespace: ringress}}\ndata:\n");
    for (k, v) in data {
        cm += &format!("  {k}: \"{v}\"\n");
    }
    cm
}

/// curl against the proxy with `Host: cm.test`: (response headers in lower case, body).
fn curl(url: &str, extra: &[&str]) -> (String, String) {
    let (ok, out, err) =
        run(std::process::Command::new("curl").args(["-sS", "-k", "-i", "-H", "Host: cm.test"]).args(extra).arg(url));
    assert!(ok, "curl {url}: {err}");
    let (head, body) = out.split_once("\r\n\r\n").unwrap_or((&out, ""));
    (head.to_ascii_lowercase(), body.to_string())
}

#[test]
fn edge_keys_add_headers_hsts_server_tokens_and_forwarded_headers() {
    let a = Upstream::start("a");
    let data = [
        ("add-headers", "ringress/custom-headers"),
        ("server-tokens", "true"),
        ("use-forwarded-headers", "true"),
        ("proxy-real-ip-cidr", "127.0.0.0/8"),
        ("hsts-max-age", "600"),
    ];
    let extra = config_map("custom-headers", &[("X-Frame-Options", "DENY"), ("X-Edge", "ringress")]);
    let p = Proxy::start("uring", &(manifests(&a, &data) + &extra), &[]);

    // add-headers on every proxied response; HSTS only over TLS (HTTP/1.1 and HTTP/2).
    let (plain, _) = curl(&format!("http://{}/", p.http), &[]);
    assert!(plain.contains("x-frame-options: deny") && plain.contains("x-edge: ringress"), "{plain}");
    assert!(!plain.contains("strict-transport-security"), "{plain}");
    for flags in [&["--http1.1"][..], &["--http2"][..]] {
        let (tls, _) = curl(&format!("https://{}/", p.https), flags);
        assert!(tls.contains("strict-transport-security: max-age=600; includesubdomains"), "{flags:?}: {tls}");
        assert!(tls.contains("x-frame-options: deny"), "{flags:?}: {tls}");
    }
    // server-tokens: the proxy's own answers carry the version.
    let r = get(p.http, "nowhere.test", "/");
    assert_eq!((r.status, r.header("server")), (404, Some(concat!("ringress/", env!("CARGO_PKG_VERSION")))));
    // The proxy's own answers (a 404 here, a redirect) carry add-headers and, over TLS, HSTS,
    // as ingress-nginx's more_set_headers puts them on every status.
    assert_eq!(r.header("x-edge"), Some("ringress"));
    let redirect = get(p.http, "forced.test", "/");
    assert_eq!((redirect.status, redirect.header("x-edge")), (308, Some("ringress")));
    for flag in ["--http1.1", "--http2"] {
        let url = format!("https://nowhere.test:{}/", p.https.port());
        let resolve = format!("nowhere.test:{}:127.0.0.1", p.https.port());
        let (ok, tls, err) =
            run(std::process::Command::new("curl").args(["-sS", "-k", "-i", flag, "--resolve", &resolve, &url]));
        let tls = tls.to_ascii_lowercase();
        assert!(
            ok && tls.contains(" 404") && tls.contains("strict-transport-security: max-age=600"),
            "{flag}: {tls} {err}"
        );
        assert!(tls.contains("x-frame-options: deny"), "{flag}: {tls}");
    }

    // use-forwarded-headers from a trusted peer (loopback): the client is X-Forwarded-For's last
    // untrusted address, and X-Forwarded-Proto passes through; over HTTP/2 too. As ingress-nginx
    // does by default, X-Forwarded-For upstream is that client alone, and what the client sent
    // travels as X-Original-Forwarded-For.
    let fwd = ["-H", "X-Forwarded-For: 198.51.100.1, 203.0.113.9", "-H", "X-Forwarded-Proto: https"];
    for proto in ["--http1.1", "--http2-prior-knowledge"] {
        let (_, body) = curl(&format!("http://{}/", p.http), &[&fwd[..], &[proto]].concat());
        assert!(body.contains("header x-real-ip: 203.0.113.9"), "{proto}: {body}");
        assert!(body.contains("header x-forwarded-proto: https"), "{proto}: {body}");
        assert!(body.contains("header x-forwarded-for: 203.0.113.9\n"), "{proto}: {body}");
        assert!(body.contains("header x-original-forwarded-for: 198.51.100.1, 203.0.113.9\n"), "{proto}: {body}");
    }
    // A chain of trusted proxies is walked from the right (real_ip_recursive), and
    // compute-full-forwarded-for sends the whole list with the peer appended.
    let mut full = data.to_vec();
    full[3] = ("proxy-real-ip-cidr", "127.0.0.0/8, 203.0.113.0/24");
    full.push(("compute-full-forwarded-for", "true"));
    publish(&p, &(manifests(&a, &full) + &extra));
    for proto in ["--http1.1", "--http2-prior-knowledge"] {
        let (_, body) = curl(&format!("http://{}/", p.http), &[&fwd[..], &[proto]].concat());
        assert!(body.contains("header x-real-ip: 198.51.100.1"), "{proto}: {body}");
        assert!(body.contains("header x-forwarded-for: 198.51.100.1, 203.0.113.9, 127.0.0.1\n"), "{proto}: {body}");
    }
    // forwarded-for-header: the client is named by another field (a CDN's).
    full.push(("forwarded-for-header", "CF-Connecting-IP"));
    publish(&p, &(manifests(&a, &full) + &extra));
    for proto in ["--http1.1", "--http2-prior-knowledge"] {
        let cdn = ["-H", "CF-Connecting-IP: 192.0.2.44", proto];
        let (_, body) = curl(&format!("http://{}/", p.http), &[&fwd[..], &cdn].concat());
        assert!(body.contains("header x-real-ip: 192.0.2.44"), "{proto}: {body}");
    }
    // Loopback no longer trusted: the peer is the client and the scheme is ours.
    let mut data2 = data.to_vec();
    data2[3] = ("proxy-real-ip-cidr", "10.0.0.0/8");
    publish(&p, &(manifests(&a, &data2) + &extra));
    let (_, body) = curl(&format!("http://{}/", p.http), &fwd);
    assert!(
        body.contains("header x-real-ip: 127.0.0.1") && body.contains("header x-forwarded-proto: http\n"),
        "{body}"
    );

    // The headers ConfigMap missing: a warning naming it, nothing added.
    let mut data3 = data2.clone();
    data3[0] = ("add-headers", "ringress/absent");
    publish(&p, &manifests(&a, &data3));
    let (plain, _) = curl(&format!("http://{}/", p.http), &[]);
    assert!(!plain.contains("x-frame-options"), "{plain}");
    assert!(p.log_text().contains(
        "ConfigMap ringress/ringress: key add-headers: ConfigMap ringress/absent not found; no headers are added"
    ));
}

#[test]
fn client_body_timeout_answers_408() {
    let a = Upstream::start("a");
    let p = Proxy::start("epoll", &manifests(&a, &[("client-body-timeout", "1")]), &[]);
    let mut s = connect(p.http);
    s.write_all(b"POST /up HTTP/1.1\r\nHost: cm.test\r\nContent-Length: 100\r\n\r\nonly-this").unwrap();
    let r = read_response(&mut s, &mut Vec::new(), false).expect("a response");
    assert_eq!(r.status, 408);
}

#[test]
fn ewma_stops_sending_first_attempts_to_an_endpoint_that_refuses() {
    let a = Upstream::start("a");
    let dead = dead_addr();
    let m = |policy: &str| {
        service("svc-a", &[a.addr, dead])
            + &ingress("site", Some("cm.test"), &[("/", "svc-a")])
            + &config_map("ringress", &[("load-balance", policy)])
    };
    let errors = |p: &Proxy| p.metric("ringress_upstream_connect_errors_total").unwrap_or(0.0);
    // Round robin: every other request tries the refusing endpoint first (then retries).
    let p = Proxy::start("uring", &m("round_robin"), &["--workers", "1"]);
    for _ in 0..40 {
        assert_eq!(get(p.http, "cm.test", "/").status, 200);
    }
    assert!(errors(&p) >= 15.0, "round robin: {} connect errors", errors(&p));
    // EWMA: after the first refusal, the live endpoint wins every pick.
    publish(&p, &m("ewma"));
    let before = errors(&p);
    for _ in 0..40 {
        assert_eq!(get(p.http, "cm.test", "/").status, 200);
    }
    assert!(errors(&p) - before <= 2.0, "ewma: {} connect errors", errors(&p) - before);
}

/// ingress-nginx's ConfigMap as its documentation's examples write it (the custom
/// configuration, custom headers, client response headers, DH parameters and legacy TLS
/// examples, the ConfigMap page's `map-hash-bucket-size`), with the nginx tuning keys
/// operators carry over: applied under its own name with no warning about any key, and the
/// settings in force.
#[test]
fn an_ingress_nginx_configmap_from_its_docs_applies_with_no_warning() {
    let a = Upstream::start("a");
    let ssl_ciphers = "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305:DHE-RSA-AES256-GCM-SHA384:DHE-RSA-AES128-GCM-SHA256:DHE-RSA-CHACHA20-POLY1305:ECDHE-ECDSA-AES128-SHA256:ECDHE-RSA-AES128-SHA256:ECDHE-ECDSA-AES128-SHA:ECDHE-RSA-AES128-SHA:ECDHE-ECDSA-AES256-SHA384:ECDHE-RSA-AES256-SHA384:ECDHE-ECDSA-AES256-SHA:ECDHE-RSA-AES256-SHA:DHE-RSA-AES128-SHA256:DHE-RSA-AES256-SHA256:AES128-GCM-SHA256:AES256-GCM-SHA384:AES128-SHA256:AES256-SHA256:AES128-SHA:AES256-SHA:DES-CBC3-SHA";
    let data = [
        ("proxy-connect-timeout", "10"),
        ("proxy-read-timeout", "120"),
        ("proxy-send-timeout", "120"),
        ("proxy-set-headers", "ingress-nginx/custom-headers"),
        ("add-headers", "ingress-nginx/custom-response-headers"),
        ("ssl-dh-param", "ingress-nginx/lb-dhparam"),
        ("map-hash-bucket-size", "128"),
        ("ssl-ciphers", ssl_ciphers),
        ("ssl-protocols", "TLSv1.2 TLSv1.3"),
        ("worker-processes", "auto"),
        ("worker-cpu-affinity", "auto"),
        ("max-worker-connections", "16384"),
        ("reuse-port", "true"),
        ("server-name-hash-bucket-size", "64"),
        ("proxy-headers-hash-max-size", "1024"),
        ("large-client-header-buffers", "4 16k"),
        ("proxy-buffer-size", "16k"),
        ("allow-snippet-annotations", "false"),
    ];
    let mut cm = String::from(
        "---\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: ingress-nginx-controller\n  namespace: ingress-nginx\n  labels:\n    app.kubernetes.io/name: ingress-nginx\ndata:\n",
    );
    for (k, v) in data {
        cm += &format!("  {k}: \"{v}\"\n");
    }
    // The docs' custom-headers.yaml, whose X-Request-Start uses an nginx variable.
    cm += "---\napiVersion: v1\ndata:\n  X-Different-Name: \"true\"\n  X-Request-Start: t=${msec}\n  X-Using-Nginx-Controller: \"true\"\nkind: ConfigMap\nmetadata:\n  name: custom-headers\n  namespace: ingress-nginx\n";
    cm += "---\napiVersion: v1\ndata:\n  X-Served-By: ringress\nkind: ConfigMap\nmetadata:\n  name: custom-response-headers\n  namespace: ingress-nginx\n";
    let manifests = service("svc-a", &[a.addr]) + &ingress("site", Some("cm.test"), &[("/", "svc-a")]) + &cm;
    let p = Proxy::start("uring", &manifests, &["--configmap", "ingress-nginx/ingress-nginx-controller"]);

    let r = get(p.http, "cm.test", "/");
    assert_eq!(r.status, 200);
    let body = r.text();
    assert!(body.contains("header x-different-name: true") && body.contains("header x-using-nginx-controller: true"));
    assert_eq!(r.header("x-served-by"), Some("ringress"));
    let (tls, _) = curl(&format!("https://{}/", p.https), &["--http1.1", "--tlsv1.2", "--tls-max", "1.2"]);
    assert!(tls.starts_with("http/1.1 200"), "TLS 1.2 with the docs' cipher list: {tls}");

    let log = p.log_text();
    let about_keys: Vec<&str> =
        log.lines().filter(|l| l.contains("ConfigMap ingress-nginx/ingress-nginx-controller")).collect();
    assert!(about_keys.is_empty(), "warnings about the ConfigMap's keys: {about_keys:#?}");
    // The one thing ringress cannot do is said: it does not expand nginx variables.
    assert!(
        log.contains("ConfigMap ingress-nginx/custom-headers: X-Request-Start: \"t=${msec}\" has an nginx variable"),
        "{log}"
    );
}
