//! `ssl-passthrough` with `--enable-ssl-passthrough`, end to end: the HTTPS port reads each
//! ClientHello's SNI; connections for passed-through hosts reach their backend (nginx,
//! terminating TLS with its own certificate) untouched, with a PROXY header naming the real
//! client when asked; other hosts are terminated by ringress as before. Checked with openssl
//! s_client, curl, and a rustls client that sends its own PROXY header.

mod support;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;

use support::nginx::Nginx;
use support::pki::Ca;
use support::*;

fn tls_secret(name: &str, (crt, key): &(String, String)) -> String {
    secret_data(name, &[("tls.crt", crt), ("tls.key", key)])
        .replace("\nstringData:", "\ntype: kubernetes.io/tls\nstringData:")
}

/// The backends: nginx with the backend CA's certificate for pass.test and pp.test, one port
/// plain TLS (answering with the SNI it saw, and a 4 MiB file at /big), one expecting a
/// PROXY header (answering with the address it names).
fn backends(ca: &Ca) -> (Nginx, u16, u16) {
    let dir = support::proxy::temp_dir();
    let (crt, key) = ca.leaf(&["pass.test", "pp.test"]);
    std::fs::write(dir.join("b.crt"), crt).unwrap();
    std::fs::write(dir.join("b.key"), key).unwrap();
    std::fs::write(dir.join("big"), vec![b'z'; 4 << 20]).unwrap();
    let (plain, pp) = (free_port(), free_port());
    let d = dir.display();
    let tls = format!("ssl_certificate {d}/b.crt; ssl_certificate_key {d}/b.key;");
    let http = format!(
        "  server {{ listen 127.0.0.1:{plain} ssl; {tls}\n    location / {{ return 200 \"backend sni=$ssl_server_name\\n\"; }}\n    location = /big {{ alias {d}/big; }} }}\n  server {{ listen 127.0.0.1:{pp} ssl proxy_protocol; {tls}\n    location / {{ return 200 \"backend client=$proxy_protocol_addr\\n\"; }} }}\n"
    );
    (Nginx::start(dir, &http, &[plain, pp]), plain, pp)
}

fn manifests(plain: u16, pp: u16, a: &Upstream, ours: &Ca, passthrough: bool, config: &str) -> String {
    let at = |port| SocketAddr::from(([127, 0, 0, 1], port));
    let on = if passthrough { "true" } else { "false" };
    let pass = format!("---\napiVersion: networking.k8s.io/v1\nkind: Ingress\nmetadata:\n  name: pass\n  namespace: default\n  annotations: {{nginx.ingress.kubernetes.io/ssl-passthrough: \"{on}\"}}\nspec:\n  ingressClassName: ringress\n  rules:\n  - host: pass.test\n    http:\n      paths:\n      - {{path: /, pathType: Prefix, backend: {{service: {{name: svc-pass, port: {{number: 80}}}}}}}}\n      - {{path: /other, pathType: Prefix, backend: {{service: {{name: svc-a, port: {{number: 80}}}}}}}}\n");
    let pp_ingress = tls_ingress(
        "pp",
        "pp.test",
        None,
        "svc-pp",
        &[("ingress.kubernetes.io/ssl-passthrough", "true"), ("ringress.dev/proxy-protocol", "v1")],
    );
    service("svc-pass", &[at(plain)])
        + &service("svc-pp", &[at(pp)])
        + &service("svc-a", &[a.addr])
        + &pass
        + &pp_ingress
        + &tls_secret("term-tls", &ours.leaf(&["term.test"]))
        + &tls_ingress("term", "term.test", Some("term-tls"), "svc-a", &[])
        + config
}

/// openssl s_client to the HTTPS port naming `sni`, verifying against `ca`: its output.
fn s_client(p: &Proxy, sni: &str, ca: &std::path::Path) -> String {
    let mut cmd = std::process::Command::new("openssl");
    cmd.args(["s_client", "-connect", &format!("127.0.0.1:{}", p.https.port()), "-servername", sni]);
    cmd.args(["-CAfile", ca.to_str().unwrap(), "-verify_return_error"]);
    cmd.stdin(std::process::Stdio::null());
    let out = cmd.output().unwrap();
    String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr)
}

fn curl_https(p: &Proxy, host: &str, path: &str, ca: &std::path::Path) -> (bool, String) {
    let (ok, out, err) = run(std::process::Command::new("curl").args([
        "-sS",
        "--resolve",
        &format!("{host}:{}:127.0.0.1", p.https.port()),
        "--cacert",
        ca.to_str().unwrap(),
        &format!("https://{host}:{}{path}", p.https.port()),
    ]));
    (ok, if ok { out } else { err })
}

/// A GET over TLS (verified against `ca`, naming `sni`) after `preamble` on the raw socket.
fn rustls_get(addr: SocketAddr, preamble: &[u8], sni: &str, ca: &Ca) -> String {
    rustls_get_split(addr, preamble, sni, ca, 1)
}

/// [`rustls_get`], the ClientHello sent in `pieces` writes (TCP segments apart).
fn rustls_get_split(addr: SocketAddr, preamble: &[u8], sni: &str, ca: &Ca, pieces: usize) -> String {
    use rustls_pki_types::pem::PemObject as _;
    let mut roots = rustls::RootCertStore::empty();
    roots.add(rustls_pki_types::CertificateDer::from_pem_slice(ca.pem.as_bytes()).unwrap()).unwrap();
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let cfg = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let mut tcp = TcpStream::connect(addr).unwrap();
    tcp.set_read_timeout(Some(std::time::Duration::from_secs(10))).unwrap();
    tcp.write_all(preamble).unwrap();
    let name = rustls_pki_types::ServerName::try_from(sni.to_string()).unwrap();
    let mut conn = rustls::ClientConnection::new(Arc::new(cfg), name).unwrap();
    let mut hello = Vec::new();
    conn.write_tls(&mut hello).unwrap();
    tcp.set_nodelay(true).unwrap();
    for piece in hello.chunks(hello.len().div_ceil(pieces)) {
        tcp.write_all(piece).unwrap();
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let mut tls = rustls::StreamOwned::new(conn, tcp);
    tls.write_all(format!("GET / HTTP/1.1\r\nHost: {sni}\r\nConnection: close\r\n\r\n").as_bytes()).unwrap();
    let mut out = Vec::new();
    let _ = tls.read_to_end(&mut out);
    String::from_utf8_lossy(&out).to_string()
}

#[test]
fn passthrough_hosts_reach_their_backend_untouched_and_others_are_terminated() {
    let backend_ca = Ca::new("backend CA");
    let ours = Ca::new("ringress CA");
    let (_nginx, plain, pp) = backends(&backend_ca);
    let a = Upstream::start("a");
    let dir = support::proxy::temp_dir();
    let (backend_pem, ours_pem) = (backend_ca.write(&dir, "backend.pem"), ours.write(&dir, "ours.pem"));
    let p = Proxy::start("uring", &manifests(plain, pp, &a, &ours, true, ""), &["--enable-ssl-passthrough"]);

    // pass.test: the backend's own certificate, and the backend's answer.
    let out = s_client(&p, "pass.test", &backend_pem);
    assert!(out.contains("Verify return code: 0 (ok)") && out.contains("backend CA"), "{out}");
    let (ok, body) = curl_https(&p, "pass.test", "/", &backend_pem);
    assert!(ok && body == "backend sni=pass.test\n", "{body}");
    // term.test: ringress terminates, as before, and routes to its upstream.
    let (ok, body) = curl_https(&p, "term.test", "/x", &ours_pem);
    assert!(ok && body.contains("upstream=a") && body.contains("path=/x"), "{body}");
    // A 4 MiB body through the passthrough is spliced, and arrives whole.
    let (ok, big) = curl_https(&p, "pass.test", "/big", &backend_pem);
    assert!(ok && big.len() == 4 << 20 && big.bytes().all(|b| b == b'z'), "{}", big.len());
    let metrics = get(p.admin, "x", "/metrics").text();
    let spliced: f64 = metrics
        .lines()
        .find(|l| l.starts_with("ringress_l4_spliced_bytes") && l.contains("svc-pass"))
        .and_then(|l| l.rsplit(' ').next()?.parse().ok())
        .unwrap_or(0.0);
    assert!(spliced > 1e6, "spliced {spliced}: {metrics}");
    // A PROXY header to the backend names the client (here, the connection's own address).
    assert!(rustls_get(p.https, b"", "pp.test", &backend_ca).ends_with("backend client=127.0.0.1\n"));
    // A ClientHello that arrives in pieces is read whole before the choice is made.
    let body = rustls_get_split(p.https, b"", "pass.test", &backend_ca, 7);
    assert!(body.ends_with("backend sni=pass.test\n"), "{body}");
    let body = rustls_get_split(p.https, b"", "term.test", &ours, 7);
    assert!(body.contains("upstream=a"), "{body}");
    // Bytes that are not TLS: the connection is closed, and the port keeps serving.
    let mut s = TcpStream::connect(p.https).unwrap();
    s.set_read_timeout(Some(std::time::Duration::from_secs(10))).unwrap();
    s.write_all(b"GET / HTTP/1.1\r\nHost: pass.test\r\n\r\n").unwrap();
    let mut junk = Vec::new();
    let _ = s.read_to_end(&mut junk);
    assert!(!String::from_utf8_lossy(&junk).contains("backend"), "never passed on");
    assert!(curl_https(&p, "pass.test", "/", &backend_pem).0);
    // Only path / is passed through; the warning names the other path.
    p.wait_for(
        || p.log_text().contains("path \"/other\": ssl-passthrough applies to path / alone"),
        "path \"/other\": ssl-passthrough applies to path / alone",
    );

    // Behind a load balancer speaking PROXY: the client it names is the one the backend gets.
    let config = "---\napiVersion: v1\nkind: ConfigMap\nmetadata: {name: ringress, namespace: ringress}\ndata: {use-proxy-protocol: \"true\"}\n";
    let generation = p.generation();
    p.replace_manifests(&manifests(plain, pp, &a, &ours, true, config));
    p.wait_for(|| p.generation() > generation, "use-proxy-protocol");
    let header = b"PROXY TCP4 203.0.113.7 127.0.0.1 40000 443\r\n";
    let body = rustls_get(p.https, header, "pp.test", &backend_ca);
    assert!(body.ends_with("backend client=203.0.113.7\n"), "{body}");
    let body = rustls_get(p.https, header, "pass.test", &backend_ca);
    assert!(body.ends_with("backend sni=pass.test\n"), "{body}");
    let body = rustls_get(p.https, header, "term.test", &ours);
    assert!(body.contains("upstream=a") && body.contains("x-forwarded-for: 203.0.113.7"), "{body}");

    // The annotation off, live: pass.test is terminated by ringress (its default certificate).
    let generation = p.generation();
    p.replace_manifests(&manifests(plain, pp, &a, &ours, false, ""));
    p.wait_for(|| p.generation() > generation, "the annotation off");
    let out = s_client(&p, "pass.test", &backend_pem);
    assert!(!out.contains("Verify return code: 0 (ok)") && !out.contains("CN = backend CA"), "{out}");
}

#[test]
fn without_the_flag_the_annotation_warns_and_tls_is_terminated() {
    let backend_ca = Ca::new("backend CA");
    let ours = Ca::new("ringress CA");
    let (_nginx, plain, pp) = backends(&backend_ca);
    let a = Upstream::start("a");
    let dir = support::proxy::temp_dir();
    let backend_pem = backend_ca.write(&dir, "backend.pem");
    let p = Proxy::start("epoll", &manifests(plain, pp, &a, &ours, true, ""), &[]);
    let out = s_client(&p, "pass.test", &backend_pem);
    assert!(!out.contains("Verify return code: 0 (ok)"), "{out}");
    assert!(
        p.log_text().contains("its ssl-passthrough has no effect without --enable-ssl-passthrough"),
        "{}",
        p.log_text()
    );
}
