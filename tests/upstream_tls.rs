//! TLS to upstreams as ingress-nginx's `proxy-ssl-*` annotations ask, end to end: nginx
//! serves the upstreams (valid, expired, other CA, chained through an intermediate, TLS 1.2
//! only, requiring a client certificate), and the proxy verifies, presents its client
//! certificate, sends SNI, limits protocols and ciphers, and refuses routes it cannot protect.

mod support;

use std::net::SocketAddr;

use support::nginx::Nginx;
use support::pki::Ca;
use support::*;

const A: &str = "nginx.ingress.kubernetes.io/";

/// One nginx server block on its own port: `cert` (chain PEM) and `key`, `extra` directives,
/// answering with what it saw of the TLS connection.
fn server(dir: &std::path::Path, name: &str, port: u16, (cert, key): &(String, String), extra: &str) -> String {
    std::fs::write(dir.join(format!("{name}.crt")), cert).unwrap();
    std::fs::write(dir.join(format!("{name}.key")), key).unwrap();
    let d = dir.display();
    format!(
        "  server {{\n    listen 127.0.0.1:{port} ssl;\n    ssl_certificate {d}/{name}.crt;\n    ssl_certificate_key {d}/{name}.key;\n    ssl_client_certificate {d}/client-ca.pem;\n    {extra}\n    location / {{ return 200 \"server={name} sni=$ssl_server_name client=$ssl_client_s_dn cipher=$ssl_cipher protocol=$ssl_protocol\\n\"; }}\n  }}\n"
    )
}

struct Upstreams {
    _nginx: Nginx,
    ports: Vec<(&'static str, u16)>,
    ca: Ca,
}

/// The upstreams, each a Service `svc-<name>`: good, expired, other (another CA), chain
/// (through an intermediate), mtls (client certificate required), tls12 (TLS 1.2 only).
fn upstreams() -> Upstreams {
    let dir = support::proxy::temp_dir();
    let ca = Ca::new("upstream CA");
    let other = Ca::new("someone else's CA");
    let inter = ca.intermediate("upstream intermediate");
    std::fs::write(dir.join("client-ca.pem"), &ca.pem).unwrap();
    let names = |svc: &str| vec!["secure.test".to_string(), format!("svc-{svc}.default.svc")];
    let leaf = |c: &Ca, svc: &str| c.leaf(&names(svc).iter().map(String::as_str).collect::<Vec<_>>());
    let (chain_crt, chain_key) = leaf(&inter, "chain");
    let certs = [
        ("good", leaf(&ca, "good"), "ssl_verify_client optional;"),
        ("expired", ca.expired_leaf(&["secure.test", "svc-expired.default.svc"]), ""),
        ("other", leaf(&other, "other"), ""),
        ("chain", (chain_crt + &inter.pem, chain_key), ""),
        ("mtls", leaf(&ca, "mtls"), "ssl_verify_client on;"),
        ("tls12", leaf(&ca, "tls12"), "ssl_protocols TLSv1.2;"),
    ];
    let mut http = String::new();
    let mut ports = Vec::new();
    for (name, pair, extra) in &certs {
        let port = free_port();
        http += &server(&dir, name, port, pair, extra);
        ports.push((*name, port));
    }
    let all: Vec<u16> = ports.iter().map(|p| p.1).collect();
    Upstreams { _nginx: Nginx::start(dir, &http, &all), ports, ca }
}

impl Upstreams {
    fn services(&self) -> String {
        self.ports
            .iter()
            .map(|(name, port)| service(&format!("svc-{name}"), &[SocketAddr::from(([127, 0, 0, 1], *port))]))
            .collect()
    }
}

/// An Ingress for `host` to `svc-<svc>` over HTTPS, with `proxy-ssl-*` annotations (keys
/// without prefix; `prefix` picks which).
fn route(host: &str, svc: &str, prefix: &str, annotations: &[(&str, &str)]) -> String {
    let mut full: Vec<(String, &str)> = vec![(format!("{prefix}backend-protocol"), "HTTPS")];
    full.extend(annotations.iter().map(|(k, v)| (format!("{prefix}{k}"), *v)));
    let refs: Vec<(&str, &str)> = full.iter().map(|(k, v)| (k.as_str(), *v)).collect();
    tls_ingress(host.split('.').next().unwrap(), host, None, &format!("svc-{svc}"), &refs)
}

const VERIFY: [(&str, &str); 2] = [("proxy-ssl-secret", "upstream-ca"), ("proxy-ssl-verify", "on")];

fn with(extra: &[(&'static str, &'static str)]) -> Vec<(&'static str, &'static str)> {
    VERIFY.iter().chain(extra).copied().collect()
}

fn manifests(u: &Upstreams, unverified_verifies: bool) -> String {
    let client = u.ca.client("ringress");
    let secrets = secret_data("upstream-ca", &[("ca.crt", &u.ca.pem)])
        + &secret_data("upstream-client", &[("ca.crt", &u.ca.pem), ("tls.crt", &client.0), ("tls.key", &client.1)])
        + &secret_data("client-only", &[("tls.crt", &client.0), ("tls.key", &client.1)]);
    let unverified = match unverified_verifies {
        false => route("unverified.test", "expired", A, &[]),
        true => route("unverified.test", "expired", A, &VERIFY),
    };
    let legacy = "ingress.kubernetes.io/";
    [
        u.services(),
        secrets,
        unverified,
        route("verified.test", "good", A, &VERIFY),
        route("expired.test", "expired", A, &VERIFY),
        route("otherca.test", "other", legacy, &VERIFY),
        route("wrongname.test", "good", A, &with(&[("proxy-ssl-name", "other.test")])),
        route("depth1.test", "chain", A, &VERIFY),
        route("depth2.test", "chain", A, &with(&[("proxy-ssl-verify-depth", "2")])),
        route("mtls.test", "mtls", A, &[("proxy-ssl-secret", "default/upstream-client"), ("proxy-ssl-verify", "on")]),
        route("nomtls.test", "mtls", A, &[]),
        route("sni.test", "good", A, &with(&[("proxy-ssl-server-name", "on"), ("proxy-ssl-name", "secure.test")])),
        route("tls13.test", "tls12", A, &[("proxy-ssl-protocols", "TLSv1.3")]),
        route("cipher.test", "tls12", A, &[("proxy-ssl-ciphers", "ECDHE-ECDSA-AES256-GCM-SHA384:!aNULL")]),
        route("nosecret.test", "good", A, &[("proxy-ssl-secret", "missing"), ("proxy-ssl-verify", "on")]),
        route("noca.test", "good", A, &[("proxy-ssl-secret", "client-only"), ("proxy-ssl-verify", "on")]),
        route("plainverify.test", "good", A, &[("proxy-ssl-verify", "on")]),
    ]
    .concat()
}

per_backend!(fn proxy_ssl_annotations_verify_present_and_fail_closed(io) {
    let u = upstreams();
    let p = Proxy::start(io, &manifests(&u, false), &[]);
    let body = |host: &str| {
        let r = get(p.http, host, "/");
        (r.status, r.text())
    };
    // Verification off (the default): even an expired certificate is accepted; no SNI.
    let (code, text) = body("unverified.test");
    assert_eq!(code, 200, "{io}: {text}");
    assert!(text.contains("server=expired sni= client= "), "{io}: {text}");
    // The pooled unverified connection to that endpoint is not reused for a route that
    // verifies: its handshake is made (and refused) anew.
    assert_eq!(body("unverified.test").0, 200);
    let (code, text) = body("expired.test");
    assert_eq!(code, 502, "{io}: an expired certificate fails verification: {text}");
    // Verified against ca.crt, by the Service's name (svc-good.default.svc) without SNI.
    let (code, text) = body("verified.test");
    assert_eq!(code, 200, "{io}: {text}");
    assert!(text.contains("server=good sni= "), "{io}: {text}");
    assert_eq!(body("otherca.test").0, 502, "{io}: another CA's certificate (legacy prefix)");
    assert_eq!(body("wrongname.test").0, 502, "{io}: the certificate does not name proxy-ssl-name");
    assert_eq!(body("depth1.test").0, 502, "{io}: an intermediate is deeper than depth 1 allows");
    assert_eq!(body("depth2.test").0, 200, "{io}: depth 2 allows the intermediate");
    // The Secret's tls.crt is presented to an upstream that requires a client certificate.
    let (code, text) = body("mtls.test");
    assert_eq!(code, 200, "{io}: {text}");
    assert!(text.contains("CN=ringress"), "{io}: {text}");
    assert_eq!(body("nomtls.test").0, 400, "{io}: nginx refuses a connection without one");
    let (code, text) = body("sni.test");
    assert!(code == 200 && text.contains("sni=secure.test "), "{io}: {code} {text}");
    assert_eq!(body("tls13.test").0, 502, "{io}: TLS 1.3 only, against a TLS 1.2 upstream");
    let (code, text) = body("cipher.test");
    assert!(code == 200 && text.contains("cipher=ECDHE-ECDSA-AES256-GCM-SHA384 protocol=TLSv1.2"), "{io}: {text}");
    // Verification that cannot be done refuses the routes (fail closed), with the reason.
    for host in ["nosecret.test", "noca.test", "plainverify.test"] {
        assert_eq!(body(host).0, 503, "{io}: {host}");
    }
    let log = p.log_text();
    for why in [
        "proxy-ssl-secret default/missing does not exist",
        "proxy-ssl-verify is on, but proxy-ssl-secret default/client-only has no key ca.crt",
        "proxy-ssl-verify is on, but no proxy-ssl-secret holds the CA",
    ] {
        assert!(log.contains(why), "{io}: {why:?} not in the log: {log}");
    }
    // A failed verification is logged with its reason.
    assert!(log.contains("TLS handshake with the upstream failed"), "{io}: {log}");
    assert!(log.to_lowercase().contains("expired"), "{io}: {log}");
    // HTTP/2 clients get the same verification.
    assert!(h2c_body(p.http, "verified.test", "/").contains("server=good"), "{io}");
    assert!(h2c_response(p.http, "expired.test", "/").contains("502"), "{io}");
    // Turning verification on applies live: the pooled unverified connections are not used.
    let generation = p.generation();
    p.replace_manifests(&manifests(&u, true));
    p.wait_for(|| p.generation() > generation, "the new manifests");
    assert_eq!(body("unverified.test").0, 502, "{io}");
    assert_eq!(body("verified.test").0, 200, "{io}");
});
