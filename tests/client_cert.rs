//! Client certificates (`auth-tls-secret` and its family) through the real binary, with curl
//! presenting certificates made by rcgen: required, optional and optional_no_ca, the fields
//! the upstream gets (and never the client's own), auth-tls-match-cn, the error page, a Host
//! that differs from the SNI (421), over HTTP/1.1 and HTTP/2.

mod support;

use std::path::{Path, PathBuf};

use support::pki::Ca;
use support::*;

fn indent(pem: &str) -> String {
    pem.lines().map(|l| format!("    {l}\n")).collect()
}

fn secret(name: &str, data: &[(&str, &str)]) -> String {
    let mut s =
        format!("---\napiVersion: v1\nkind: Secret\nmetadata: {{name: {name}, namespace: default}}\nstringData:\n");
    for (k, v) in data {
        s += &format!("  {k}: |\n{}", indent(v));
    }
    s
}

fn tls_ingress(name: &str, host: &str, annotations: &[(&str, &str)]) -> String {
    support::tls_ingress(name, host, Some("server"), "a", annotations)
}

/// Writes a (certificate, key) pair for curl: the paths.
fn files(dir: &Path, name: &str, (crt, key): &(String, String)) -> (PathBuf, PathBuf) {
    let (c, k) = (dir.join(format!("{name}.crt")), dir.join(format!("{name}.key")));
    std::fs::write(&c, crt).unwrap();
    std::fs::write(&k, key).unwrap();
    (c, k)
}

/// curl over HTTPS: the status and the body. `sni`: the name connected to; `host`: the Host.
fn curl(p: &Proxy, sni: &str, host: &str, cert: Option<&(PathBuf, PathBuf)>, extra: &[&str]) -> (u16, String) {
    let port = p.https.port();
    let mut cmd = std::process::Command::new("curl");
    cmd.args(["-sk", "--max-time", "10", "-w", "\n%{http_code}", "--resolve", &format!("{sni}:{port}:127.0.0.1")]);
    if let Some((c, k)) = cert {
        cmd.arg("--cert").arg(c).arg("--key").arg(k);
    }
    cmd.args(["-H", &format!("Host: {host}")]).args(extra).arg(format!("https://{sni}:{port}/"));
    let (_, out, _) = run(&mut cmd);
    let (body, code) = out.rsplit_once('\n').unwrap_or(("", "0"));
    (code.trim().parse().unwrap_or(0), body.to_string())
}

#[test]
fn client_certificates_are_required_verified_and_passed_on_as_ingress_nginx_does() {
    let (ca, rogue_ca) = (Ca::new("Client CA"), Ca::new("Rogue CA"));
    let server =
        Ca::new("Server CA").leaf(&["mtls.test", "opt.test", "nocheck.test", "page.test", "open.test", "deep.test"]);
    let a = Upstream::start("a");
    let dir = support::proxy::temp_dir();
    let good = files(&dir, "good", &ca.client("client"));
    let other = files(&dir, "other", &ca.client("intruder"));
    let rogue = files(&dir, "rogue", &rogue_ca.client("client"));
    // Signed by an intermediate CA, sent with it: a chain of two.
    let sub = ca.intermediate("Sub CA");
    let (crt, key) = sub.client("client");
    let chained = files(&dir, "chained", &(crt + &sub.pem, key));
    let p = |k: &str| format!("nginx.ingress.kubernetes.io/{k}");
    let m = service("a", &[a.addr])
        + &secret("server", &[("tls.crt", &server.0), ("tls.key", &server.1)])
            .replace("stringData", "type: kubernetes.io/tls\nstringData")
        + &secret("ca", &[("ca.crt", &ca.pem)])
        + &tls_ingress(
            "mtls",
            "mtls.test",
            &[(&p("auth-tls-secret"), "default/ca"), (&p("auth-tls-pass-certificate-to-upstream"), "true")],
        )
        + &tls_ingress(
            "opt",
            "opt.test",
            &[
                (&p("auth-tls-secret"), "ca"),
                (&p("auth-tls-verify-client"), "optional"),
                (&p("auth-tls-match-cn"), "CN=client"),
            ],
        )
        + &tls_ingress(
            "nocheck",
            "nocheck.test",
            &[(&p("auth-tls-secret"), "ca"), (&p("auth-tls-verify-client"), "optional_no_ca")],
        )
        + &tls_ingress(
            "page",
            "page.test",
            &[(&p("auth-tls-secret"), "ca"), (&p("auth-tls-error-page"), "https://login.test/certificate")],
        )
        + &tls_ingress("deep", "deep.test", &[(&p("auth-tls-secret"), "ca"), (&p("auth-tls-verify-depth"), "2")])
        + &tls_ingress("open", "open.test", &[]);
    let px = Proxy::start("uring", &m, &[]);

    // Required: a certificate the CA signed gets through, with what ingress-nginx sends.
    let (code, body) = curl(&px, "mtls.test", "mtls.test", Some(&good), &["-H", "ssl-client-subject-dn: CN=admin"]);
    assert_eq!(code, 200, "{body}");
    assert!(body.contains("header ssl-client-verify: SUCCESS"), "{body}");
    assert!(body.contains("header ssl-client-subject-dn: CN=client,O=Example"), "{body}");
    assert!(body.contains("header ssl-client-issuer-dn: CN=Client CA"), "{body}");
    assert!(body.contains("header ssl-client-cert: -----BEGIN%20CERTIFICATE-----%0A"), "{body}");
    assert!(!body.contains("CN=admin"), "the client's own field passed: {body}");
    let (code, body) = curl(&px, "mtls.test", "mtls.test", Some(&good), &["--http2"]);
    assert!(code == 200 && body.contains("header ssl-client-verify: SUCCESS"), "HTTP/2: {code} {body}");
    let hits = a.hits();
    // None, or one from another CA: 400, whatever the client claims; the upstream sees nothing.
    for (cert, http2) in [(None, false), (None, true), (Some(&rogue), false), (Some(&rogue), true)] {
        let extra: &[&str] = if http2 {
            &["--http2", "-H", "ssl-client-verify: SUCCESS"]
        } else {
            &["-H", "ssl-client-verify: SUCCESS"]
        };
        let (code, body) = curl(&px, "mtls.test", "mtls.test", cert, extra);
        assert_eq!(code, 400, "cert {:?} http2 {http2}: {body}", cert.map(|c| &c.0));
    }
    // auth-tls-verify-depth: 1 (the default) takes no intermediate; 2 takes one.
    assert_eq!(curl(&px, "mtls.test", "mtls.test", Some(&chained), &[]).0, 400);
    let (code, body) = curl(&px, "deep.test", "deep.test", Some(&chained), &[]);
    assert!(code == 200 && body.contains("header ssl-client-issuer-dn: CN=Sub CA"), "{code} {body}");
    // A connection made for another host (no certificate asked for) cannot reach this one.
    let (code, body) = curl(&px, "open.test", "mtls.test", Some(&good), &[]);
    assert_eq!(code, 421, "{body}");
    assert_eq!(curl(&px, "open.test", "open.test", None, &[]).0, 200, "hosts without client certificates");
    assert_eq!(a.hits(), hits + 2);

    // Optional: none is fine (NONE), a bad one is not; auth-tls-match-cn on the subject.
    let (code, body) = curl(&px, "opt.test", "opt.test", None, &[]);
    assert!(code == 200 && body.contains("header ssl-client-verify: NONE"), "{code} {body}");
    assert_eq!(curl(&px, "opt.test", "opt.test", Some(&good), &[]).0, 200);
    assert_eq!(curl(&px, "opt.test", "opt.test", Some(&rogue), &[]).0, 400);
    assert_eq!(curl(&px, "opt.test", "opt.test", Some(&other), &[]).0, 403, "CN=intruder does not match");
    // optional_no_ca: passed on, with the verdict.
    let (code, body) = curl(&px, "nocheck.test", "nocheck.test", Some(&rogue), &[]);
    assert!(code == 200 && body.contains("header ssl-client-verify: FAILED:"), "{code} {body}");
    // The error page instead of 400.
    let (code, _) = curl(&px, "page.test", "page.test", None, &["-D", "/dev/stderr"]);
    assert_eq!(code, 302);
    let out = run(std::process::Command::new("curl").args([
        "-sk",
        "-o",
        "/dev/null",
        "-w",
        "%{redirect_url}",
        "--resolve",
        &format!("page.test:{}:127.0.0.1", px.https.port()),
        &format!("https://page.test:{}/", px.https.port()),
    ]));
    assert_eq!(out.1, "https://login.test/certificate");

    // A hostile ClientHello (one handshake message claiming 16 MiB, sent as fast as it goes)
    // while the hello is read before the handshake: the connection ends, and the worker goes on
    // serving.
    use std::io::Write as _;
    let mut s = connect(px.https);
    let mut hello = vec![0x16, 0x03, 0x01, 0x40, 0x00, 0x01, 0xff, 0xff, 0xff];
    hello.resize(5 + 16384, 0);
    let mut sent = s.write_all(&hello).is_ok();
    let mut more = vec![0x16, 0x03, 0x01, 0x40, 0x00];
    more.resize(5 + 16384, 0);
    for _ in 0..16 {
        sent = sent && s.write_all(&more).is_ok();
    }
    assert!(!sent || closed_within(&mut s, std::time::Duration::from_secs(5)), "the hostile hello is still open");
    assert_eq!(curl(&px, "mtls.test", "mtls.test", Some(&good), &[]).0, 200);
}

#[test]
fn a_ca_secret_that_cannot_be_used_refuses_the_route() {
    let a = Upstream::start("a");
    let server = Ca::new("Server CA").leaf(&["x.test", "y.test"]);
    let p = |k: &str| format!("nginx.ingress.kubernetes.io/{k}");
    let m = service("a", &[a.addr])
        + &secret("server", &[("tls.crt", &server.0), ("tls.key", &server.1)])
            .replace("stringData", "type: kubernetes.io/tls\nstringData")
        + &secret("empty", &[("other", "x")])
        + &tls_ingress("x", "x.test", &[(&p("auth-tls-secret"), "default/missing")])
        + &tls_ingress("y", "y.test", &[(&p("auth-tls-secret"), "default/empty")]);
    let px = Proxy::start("uring", &m, &[]);
    let (code, body) = curl(&px, "x.test", "x.test", None, &[]);
    assert!(code == 503 && body.contains("auth-tls-secret default/missing does not exist"), "{code} {body}");
    let (code, body) = curl(&px, "y.test", "y.test", None, &[]);
    assert!(code == 503 && body.contains("auth-tls-secret default/empty has no key ca.crt"), "{code} {body}");
    assert_eq!(a.hits(), 0);
}

#[test]
fn a_certificate_the_ca_crl_revokes_is_refused() {
    let ca = Ca::new("Revoking CA");
    let server = Ca::new("Server CA").leaf(&["revoke.test"]);
    let a = Upstream::start("a");
    let dir = support::proxy::temp_dir();
    let (revoked, kept) =
        (files(&dir, "revoked", &ca.client_serial("lost", 7)), files(&dir, "kept", &ca.client_serial("kept", 8)));
    let m = service("a", &[a.addr])
        + &secret("server", &[("tls.crt", &server.0), ("tls.key", &server.1)])
            .replace("stringData", "type: kubernetes.io/tls\nstringData")
        + &secret("ca", &[("ca.crt", &ca.pem), ("ca.crl", &ca.crl(&[7]))])
        + &tls_ingress("revoke", "revoke.test", &[("nginx.ingress.kubernetes.io/auth-tls-secret", "ca")]);
    let px = Proxy::start("uring", &m, &[]);
    let (code, body) = curl(&px, "revoke.test", "revoke.test", Some(&kept), &[]);
    assert!(code == 200 && body.contains("header ssl-client-verify: SUCCESS"), "{code} {body}");
    assert_eq!(curl(&px, "revoke.test", "revoke.test", Some(&revoked), &[]).0, 400, "revoked by ca.crl");
    assert_eq!(a.hits(), 1);
}
