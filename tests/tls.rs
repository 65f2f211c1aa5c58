//! TLS at the edge, end to end with curl: certificates from kubernetes.io/tls Secrets chosen
//! by SNI, the default certificate, TLS 1.2 and 1.3, session resumption, HTTPS redirects,
//! rewrite-target and proxy-body-size (both annotation prefixes), certificate rotation under
//! load, and a bad Secret that leaves the previous certificate live. On both I/O backends.

mod support;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use support::pki::Ca;
use support::*;

fn indent(pem: &str) -> String {
    pem.lines().map(|l| format!("    {l}\n")).collect()
}

/// A kubernetes.io/tls Secret with the PEMs as stringData.
fn tls_secret(name: &str, (crt, key): &(String, String)) -> String {
    format!(
        "---\napiVersion: v1\nkind: Secret\nmetadata: {{name: {name}, namespace: default}}\ntype: kubernetes.io/tls\nstringData:\n  tls.crt: |\n{}  tls.key: |\n{}",
        indent(crt),
        indent(key)
    )
}

/// curl over HTTPS to `host` (resolved to the proxy): (success, HTTP status, body, stderr).
fn curl_https(p: SocketAddr, host: &str, path: &str, extra: &[&str]) -> (bool, u16, String, String) {
    let url = format!("https://{host}:{}{path}", p.port());
    let resolve = format!("{host}:{}:127.0.0.1", p.port());
    let mut cmd = std::process::Command::new("curl");
    cmd.args(["-sS", "--max-time", "10", "--resolve", &resolve, "-w", "\n%{http_code}"]).args(extra).arg(&url);
    let (ok, out, err) = run(&mut cmd);
    let (body, code) = out.rsplit_once('\n').unwrap_or(("", "0"));
    (ok, code.trim().parse().unwrap_or(0), body.to_string(), err)
}

struct Site {
    _a: Upstream,
    ca: Ca,
    dir: PathBuf,
    manifests: String,
}

/// a.test (its own certificate) and *.wild.test (a wildcard one), both from one CA.
fn site() -> Site {
    let a = Upstream::start("a");
    let ca = Ca::new("ringress test CA");
    let manifests = service("svc-a", &[a.addr])
        + &tls_secret("a-tls", &ca.leaf(&["a.test"]))
        + &tls_secret("wild-tls", &ca.leaf(&["*.wild.test"]))
        + &tls_ingress("a", "a.test", Some("a-tls"), "svc-a", &[])
        + &tls_ingress("wild", "*.wild.test", Some("wild-tls"), "svc-a", &[]);
    let dir = support::proxy::temp_dir();
    Site { _a: a, ca, dir, manifests }
}

per_backend!(fn sni_selects_certificates_and_other_names_get_the_default(io) {
    let s = site();
    let p = Proxy::start(io, &s.manifests, &[]);
    let ca = s.ca.write(&s.dir, "ca.pem");
    let ca = ca.to_str().unwrap();

    let (ok, code, body, err) = curl_https(p.https, "a.test", "/x?y=1", &["--cacert", ca]);
    assert!(ok && code == 200, "{io}: {err}");
    assert!(body.contains("path=/x?y=1") && body.contains("header x-forwarded-proto: https"), "{io}: {body}");
    let (ok, code, _, err) = curl_https(p.https, "b.wild.test", "/", &["--cacert", ca]);
    assert!(ok && code == 200, "{io}: wildcard: {err}");
    // A wildcard covers exactly one label: two labels get the default certificate.
    let (ok, _, _, err) = curl_https(p.https, "c.b.wild.test", "/", &["--cacert", ca]);
    assert!(!ok, "{io}: the default certificate is not trusted, so verification must fail");
    assert!(err.contains("SSL") || err.contains("certificate"), "{io}: {err}");
    let (ok, code, _, err) = curl_https(p.https, "unknown.test", "/", &["-k"]);
    assert!(ok && code == 404, "{io}: default certificate, then no route: {err}");
    // No SNI at all (an IP address): the default certificate.
    let (ok, _, err) = run(std::process::Command::new("curl").args([
        "-sSk",
        "-o",
        "/dev/null",
        &format!("https://127.0.0.1:{}/", p.https.port()),
    ]));
    assert!(ok, "{io}: {err}");

    // TLS 1.2 and 1.3 both; HTTP/1.1 or HTTP/2 by ALPN.
    for (flags, label) in [
        (&["--tlsv1.2", "--tls-max", "1.2", "--http1.1"][..], "1.1 200"),
        (&["--tlsv1.3", "--http1.1"][..], "1.1 200"),
        (&["--tlsv1.2", "--tls-max", "1.2", "--http2"][..], "2 200"),
        (&["--tlsv1.3", "--http2"][..], "2 200"),
    ] {
        let (ok, out, err) = run(std::process::Command::new("curl").args(flags).args([
            "-sS",
            "--resolve",
            &format!("a.test:{}:127.0.0.1", p.https.port()),
            "--cacert",
            ca,
            "-o",
            "/dev/null",
            "-w",
            "%{http_version} %{http_code}",
            &format!("https://a.test:{}/", p.https.port()),
        ]));
        assert!(ok && out == label, "{io}: {flags:?}: {out} {err}");
    }
});

#[test]
fn sessions_resume_on_a_new_connection() {
    let s = site();
    let p = Proxy::start("uring", &s.manifests, &[]);
    let ca = s.ca.write(&s.dir, "ca.pem");
    // One curl, two transfers on two connections (the server closes the first): the second
    // handshake resumes the session from the first (a TLS 1.3 ticket).
    let url = format!("https://a.test:{}/", p.https.port());
    let (ok, _, err) = run(std::process::Command::new("curl").args([
        "-sS",
        "--http1.1",
        "--resolve",
        &format!("a.test:{}:127.0.0.1", p.https.port()),
        "--cacert",
        ca.to_str().unwrap(),
        "-H",
        "Connection: close",
        "-o",
        "/dev/null",
        &url,
        "-o",
        "/dev/null",
        &url,
    ]));
    assert!(ok, "{err}");
    let metrics = get(p.admin, "x", "/metrics").text();
    let value = |name: &str| -> u64 {
        let line = metrics.lines().find(|l| l.starts_with(&format!("{name} "))).unwrap_or_else(|| panic!("{metrics}"));
        line.split_whitespace().nth(1).unwrap().parse().unwrap()
    };
    assert_eq!(value("ringress_tls_handshakes_total"), 2, "{metrics}");
    assert_eq!(value("ringress_tls_resumed_total"), 1, "{metrics}");
}

#[test]
fn https_redirects_follow_ssl_redirect_and_force_ssl_redirect() {
    let a = Upstream::start("a");
    let ca = Ca::new("ca");
    let m = service("svc-a", &[a.addr])
        + &tls_secret("t", &ca.leaf(&["tls.test", "off.test"]))
        + &tls_ingress("tls", "tls.test", Some("t"), "svc-a", &[])
        + &tls_ingress("off", "off.test", Some("t"), "svc-a", &[("nginx.ingress.kubernetes.io/ssl-redirect", "false")])
        + &tls_ingress("forced", "forced.test", None, "svc-a", &[("ingress.kubernetes.io/force-ssl-redirect", "true")])
        + &tls_ingress("plain", "plain.test", None, "svc-a", &[]);
    let p = Proxy::start("uring", &m, &[]);
    let port = p.https.port();
    let r = get(p.http, "tls.test", "/a/b?c=1&d=2");
    assert_eq!(r.status, 308);
    assert_eq!(r.header("location"), Some(format!("https://tls.test:{port}/a/b?c=1&d=2").as_str()));
    assert_eq!(a.hits(), 0, "a redirect never reaches the upstream");
    assert_eq!(get(p.http, "off.test", "/").status, 200, "ssl-redirect: false");
    let r = get(p.http, "forced.test", "/x");
    assert_eq!(r.status, 308, "force-ssl-redirect without TLS");
    assert_eq!(r.header("location"), Some(format!("https://forced.test:{port}/x").as_str()));
    assert_eq!(get(p.http, "plain.test", "/").status, 200, "no TLS, no redirect");
    // A POST keeps its method and body across a 308: curl follows it to HTTPS.
    let cafile = ca.write(&support::proxy::temp_dir(), "ca.pem");
    let (ok, code, body, err) = run_curl_follow(p.http, port, &cafile);
    assert!(ok && code == 200, "{err}");
    assert!(body.contains("method=POST") && body.contains("body-len=5"), "{body}");
}

fn run_curl_follow(http: SocketAddr, https_port: u16, ca: &Path) -> (bool, u16, String, String) {
    let mut cmd = std::process::Command::new("curl");
    cmd.args([
        "-sS",
        "-L",
        "--resolve",
        &format!("tls.test:{}:127.0.0.1", http.port()),
        "--resolve",
        &format!("tls.test:{https_port}:127.0.0.1"),
        "--cacert",
        ca.to_str().unwrap(),
        "-d",
        "hello",
        "-w",
        "\n%{http_code}",
        &format!("http://tls.test:{}/post", http.port()),
    ]);
    let (ok, out, err) = run(&mut cmd);
    let (body, code) = out.rsplit_once('\n').unwrap_or(("", "0"));
    (ok, code.trim().parse().unwrap_or(0), body.to_string(), err)
}

#[test]
fn ingress_nginx_audio_manifest_redirects_then_rewrites() {
    let audio = Upstream::start("audio");
    let m = service("audio-callback-api", &[audio.addr]) + AUDIO_CALLBACK + COMPETE_FEEDBACK;
    let p = Proxy::start("uring", &m, &["--ingress-class", "nginx"]);
    let host = "cl-k8s.yidianzixun.com";
    let r = get(p.http, host, "/audio?id=7");
    assert_eq!(r.status, 308, "force-ssl-redirect: {}", r.text());
    assert_eq!(r.header("location"), Some(format!("https://{host}:{}/audio?id=7", p.https.port()).as_str()));
    // Over HTTPS (no certificate for this host: the default one, so -k), /audio is rewritten
    // to / upstream, the query kept.
    for path in ["/audio", "/audio/callback"] {
        let (ok, code, body, err) = curl_https(p.https, host, &format!("{path}?id=7"), &["-k"]);
        assert!(ok && code == 200, "{path}: {err}");
        assert!(body.contains("upstream=audio\n") && body.contains("path=/?id=7\n"), "{path}: {body}");
    }
    assert_eq!(curl_https(p.https, host, "/other", &["-k"]).1, 404);
}

per_backend!(fn proxy_body_size_limits_each_ingress(io) {
    let a = Upstream::start("a");
    let m = service("svc-a", &[a.addr])
        + &tls_ingress(
            "small",
            "small.test",
            None,
            "svc-a",
            &[("nginx.ingress.kubernetes.io/proxy-body-size", "1k")],
        )
        + &tls_ingress("big", "big.test", None, "svc-a", &[("ingress.kubernetes.io/proxy-body-size", "0")]);
    let p = Proxy::start(io, &m, &["--max-body-size", "4k"]);
    let post = |host: &str, n: usize, chunked: bool| {
        let body = "x".repeat(n);
        let req = if chunked {
            format!("POST / HTTP/1.1\r\nHost: {host}\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n{n:x}\r\n{body}\r\n0\r\n\r\n")
        } else {
            format!("POST / HTTP/1.1\r\nHost: {host}\r\nContent-Length: {n}\r\nConnection: close\r\n\r\n{body}")
        };
        raw(p.http, req.as_bytes()).map(|r| r.status).unwrap_or(0)
    };
    assert_eq!(post("small.test", 1000, false), 200, "{io}");
    assert_eq!(post("small.test", 2000, false), 413, "{io}");
    assert_eq!(post("small.test", 2000, true), 413, "{io}: chunked");
    assert_eq!(post("big.test", 10_000, false), 200, "{io}: 0 lifts the global 4k limit");
    assert_eq!(post("big.test", 10_000, true), 200, "{io}");
});

#[test]
fn certificate_rotation_under_load_fails_no_handshake_and_a_bad_secret_keeps_the_last_good() {
    let a = Upstream::start("a");
    let (ca1, ca2) = (Ca::new("old CA"), Ca::new("new CA"));
    let dir = support::proxy::temp_dir();
    let both = dir.join("both.pem");
    std::fs::write(&both, format!("{}{}", ca1.pem, ca2.pem)).unwrap();
    let (ca1_file, ca2_file) = (ca1.write(&dir, "ca1.pem"), ca2.write(&dir, "ca2.pem"));
    let routes = service("svc-a", &[a.addr]) + &tls_ingress("a", "a.test", Some("a-tls"), "svc-a", &[]);
    let mdir = support::proxy::temp_dir();
    std::fs::write(mdir.join("routes.yaml"), &routes).unwrap();
    std::fs::write(mdir.join("secret.yaml"), tls_secret("a-tls", &ca1.leaf(&["a.test"]))).unwrap();
    let p = Proxy::start_in(mdir.clone(), "uring", &[]);
    assert!(curl_https(p.https, "a.test", "/", &["--cacert", ca1_file.to_str().unwrap()]).0);

    // Four clients, each a new TLS connection per request, verifying against both CAs.
    let stop = Arc::new(AtomicBool::new(false));
    let (done, failed) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let clients: Vec<_> = (0..4)
        .map(|_| {
            let (stop, done, failed, both) = (stop.clone(), done.clone(), failed.clone(), both.clone());
            let https = p.https;
            std::thread::spawn(move || {
                while !stop.load(Ordering::SeqCst) {
                    let (ok, code, _, err) = curl_https(https, "a.test", "/", &["--cacert", both.to_str().unwrap()]);
                    if ok && code == 200 {
                        done.fetch_add(1, Ordering::SeqCst);
                    } else {
                        eprintln!("failed: {code} {err}");
                        failed.fetch_add(1, Ordering::SeqCst);
                    }
                }
            })
        })
        .collect();
    std::thread::sleep(Duration::from_millis(800));
    let tmp = mdir.join(".secret.tmp");
    std::fs::write(&tmp, tls_secret("a-tls", &ca2.leaf(&["a.test"]))).unwrap();
    std::fs::rename(&tmp, mdir.join("secret.yaml")).unwrap();
    p.wait_for(|| curl_https(p.https, "a.test", "/", &["--cacert", ca2_file.to_str().unwrap()]).0, "new certificate");
    std::thread::sleep(Duration::from_millis(800));
    stop.store(true, Ordering::SeqCst);
    for c in clients {
        c.join().unwrap();
    }
    assert_eq!(failed.load(Ordering::SeqCst), 0, "handshakes failed during the rotation");
    assert!(done.load(Ordering::SeqCst) > 20, "too little load: {}", done.load(Ordering::SeqCst));
    assert!(!curl_https(p.https, "a.test", "/", &["--cacert", ca1_file.to_str().unwrap()]).0, "old certificate gone");

    // A Secret whose certificate is not PEM: named in the log, the last good one stays.
    let bad = "---\napiVersion: v1\nkind: Secret\nmetadata: {name: a-tls, namespace: default}\ntype: kubernetes.io/tls\nstringData:\n  tls.crt: not a certificate\n  tls.key: nor a key\n";
    std::fs::write(&tmp, bad).unwrap();
    std::fs::rename(&tmp, mdir.join("secret.yaml")).unwrap();
    p.wait_for(|| p.log_text().contains("Secret default/a-tls: data.tls.crt"), "the bad Secret reported");
    assert!(curl_https(p.https, "a.test", "/", &["--cacert", ca2_file.to_str().unwrap()]).0, "last good certificate");
}

per_backend!(fn https_backends_are_reached_over_tls_and_pooled(io) {
    // B terminates TLS in front of the upstream; A proxies to B's HTTPS port with
    // backend-protocol: HTTPS, for HTTP/1.1 and HTTP/2 clients alike.
    let up = Upstream::start("up");
    let b = Proxy::start(
        "uring",
        &(service("svc-up", &[up.addr]) + &tls_ingress("hop", "hop.test", None, "svc-up", &[])),
        &[],
    );
    let a_routes = service("svc-b", &[b.https])
        + &tls_ingress("hop", "hop.test", None, "svc-b", &[("nginx.ingress.kubernetes.io/backend-protocol", "HTTPS")]);
    let a = Proxy::start(io, &a_routes, &[]);
    for _ in 0..10 {
        let r = get(a.http, "hop.test", "/p?q=1");
        assert_eq!(r.status, 200, "{io}: {}", r.text());
        // B saw the request arrive over TLS.
        assert!(
            r.text().contains("path=/p?q=1") && r.text().contains("header x-forwarded-proto: https\n"),
            "{io}: {}",
            r.text()
        );
    }
    let (ok, out, err) = run(std::process::Command::new("curl").args([
        "-sS",
        "--http2-prior-knowledge",
        "-H",
        "Host: hop.test",
        &format!("http://127.0.0.1:{}/h2", a.http.port()),
    ]));
    assert!(ok && out.contains("path=/h2"), "{io}: {out} {err}");
    // Pooled: far fewer TLS handshakes at B than requests through A.
    let metrics = get(b.admin, "x", "/metrics").text();
    let handshakes: u64 = metrics
        .lines()
        .find(|l| l.starts_with("ringress_tls_handshakes_total "))
        .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        .unwrap();
    assert!((1..=6).contains(&handshakes), "{io}: {handshakes} handshakes for 11 requests: {metrics}");
});

#[test]
fn proxy_timeouts_from_annotations_apply_per_ingress() {
    let a = Upstream::start("a");
    let m = service("svc-a", &[a.addr])
        + &tls_ingress(
            "quick",
            "quick.test",
            None,
            "svc-a",
            &[("nginx.ingress.kubernetes.io/proxy-read-timeout", "1")],
        )
        + &tls_ingress("patient", "patient.test", None, "svc-a", &[]);
    let p = Proxy::start("uring", &m, &[]);
    // The upstream answers after 2.5 s: past quick.test's 1 s read timeout, within the default.
    let r = get(p.http, "quick.test", "/sleep/2500");
    assert_eq!(r.status, 504, "{}", r.text());
    assert_eq!(get(p.http, "patient.test", "/sleep/2500").status, 200);
    // HTTP/2 clients get the same per-Ingress timeout.
    let (ok, out, err) = run(std::process::Command::new("curl").args([
        "-sS",
        "--http2-prior-knowledge",
        "-H",
        "Host: quick.test",
        "-o",
        "/dev/null",
        "-w",
        "%{http_code}",
        &format!("http://127.0.0.1:{}/sleep/2500", p.http.port()),
    ]));
    assert!(ok && out == "504", "{out} {err}");
}
