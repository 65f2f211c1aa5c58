//! The HTTPS listener's TLS from the ConfigMap (`ssl-protocols`, `ssl-ciphers`,
//! `ssl-ecdh-curve`, `ssl-session-tickets`, `ssl-session-timeout`), checked with
//! `openssl s_client`: each applies live to the next handshake, and a value ringress cannot
//! offer is a warning that keeps the previous setting.

mod support;

use std::io::Write;
use std::process::{Command, Stdio};

use support::*;

fn manifests(a: &Upstream, data: &[(&str, &str)]) -> String {
    let mut cm =
        String::from("---\napiVersion: v1\nkind: ConfigMap\nmetadata: {name: ringress, namespace: ringress}\ndata:\n");
    for (k, v) in data {
        cm += &format!("  {k}: \"{v}\"\n");
    }
    service("svc-a", &[a.addr]) + &tls_ingress("site", "tls.test", None, "svc-a", &[]) + &cm
}

fn publish(p: &Proxy, m: &str) {
    let generation = p.generation();
    p.replace_manifests(m);
    p.wait_for(|| p.generation() > generation, "the new snapshot");
}

/// One `openssl s_client` connection sending a request (so the session tickets that follow
/// the handshake arrive): (whether a cipher was agreed, everything it printed).
fn s_client(p: &Proxy, args: &[&str]) -> (bool, String) {
    let port = p.https.port().to_string();
    let mut child = Command::new("openssl")
        .args(["s_client", "-connect", &format!("127.0.0.1:{port}"), "-servername", "tls.test", "-ign_eof"])
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("openssl");
    let _ = child.stdin.take().unwrap().write_all(b"GET / HTTP/1.1\r\nHost: tls.test\r\nConnection: close\r\n\r\n");
    let out = child.wait_with_output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    let agreed = text.contains(", Cipher is ") && !text.contains("Cipher is (NONE)");
    (agreed, text)
}

#[test]
fn listener_tls_settings_apply_live_and_unusable_values_keep_the_previous_ones() {
    let a = Upstream::start("a");
    let dir = support::proxy::temp_dir();
    let p = Proxy::start("uring", &manifests(&a, &[]), &[]);

    // Defaults: TLS 1.2 and 1.3, tickets lasting ingress-nginx's 10 minutes.
    let (ok, out) = s_client(&p, &["-tls1_2"]);
    assert!(ok && out.contains("upstream=a"), "{out}");
    let (ok, out) = s_client(&p, &["-tls1_3"]);
    assert!(ok && out.contains("TLS session ticket lifetime hint: 600 (seconds)"), "{out}");

    // TLS 1.3 only, P-384 only, tickets lasting two hours.
    publish(
        &p,
        &manifests(
            &a,
            &[("ssl-protocols", "TLSv1.3"), ("ssl-ecdh-curve", "secp384r1:secp521r1"), ("ssl-session-timeout", "2h")],
        ),
    );
    let (ok, out) = s_client(&p, &["-tls1_2"]);
    assert!(!ok, "TLS 1.2 is off: {out}");
    let (ok, out) = s_client(&p, &["-tls1_3", "-groups", "P-256:X25519"]);
    assert!(!ok, "only P-384 is offered: {out}");
    let (ok, out) = s_client(&p, &["-tls1_3"]);
    assert!(ok && out.contains("secp384r1"), "{out}");
    assert!(out.contains("TLS session ticket lifetime hint: 7200 (seconds)"), "{out}");
    assert!(out.contains("upstream=a"), "{out}");

    // TLS 1.2 only with one suite (the DHE one in the list is not offered, and skipped), no
    // tickets: resumption by session id from the server's cache.
    publish(
        &p,
        &manifests(
            &a,
            &[
                ("ssl-protocols", "TLSv1.2"),
                ("ssl-ciphers", "ECDHE-ECDSA-AES256-GCM-SHA384:DHE-RSA-AES128-GCM-SHA256"),
                ("ssl-session-tickets", "false"),
            ],
        ),
    );
    let (ok, out) = s_client(&p, &["-tls1_3"]);
    assert!(!ok, "TLS 1.3 is off: {out}");
    let (ok, out) = s_client(&p, &["-tls1_2", "-cipher", "ECDHE-ECDSA-AES128-GCM-SHA256"]);
    assert!(!ok, "that suite is not offered: {out}");
    let sess = dir.join("session.pem");
    let sess = sess.to_str().unwrap();
    let (ok, out) = s_client(&p, &["-tls1_2", "-sess_out", sess]);
    assert!(ok && out.contains("Cipher is ECDHE-ECDSA-AES256-GCM-SHA384"), "{out}");
    assert!(!out.contains("TLS session ticket lifetime hint"), "no ticket is issued: {out}");
    let (ok, out) = s_client(&p, &["-tls1_2", "-sess_in", sess]);
    assert!(ok && out.contains("Reused, TLSv1.2"), "resumed from the cache: {out}");

    // Values ringress cannot offer: a warning each, and the previous settings stay.
    publish(
        &p,
        &manifests(
            &a,
            &[
                ("ssl-protocols", "TLSv1 TLSv1.1 TLSv1.2 TLSv1.3"),
                ("ssl-ciphers", "ECDHE-ECDSA-AES256-GCM-SHA384:DHE-RSA-AES128-GCM-SHA256"),
                ("ssl-ecdh-curve", "X448"),
                ("ssl-session-tickets", "false"),
            ],
        ),
    );
    p.wait_for(
        || {
            let log = p.log_text();
            log.contains("key ssl-protocols: \"TLSv1 TLSv1.1 TLSv1.2 TLSv1.3\" is not TLSv1.2 and/or TLSv1.3")
                && log.contains("key ssl-ecdh-curve: \"X448\" is not auto or a colon-separated list")
        },
        "the warnings",
    );
    let (ok, out) = s_client(&p, &["-tls1_3"]);
    assert!(!ok, "TLS 1.2 only stays: {out}");

    // A session older than ssl-session-timeout is not resumed.
    publish(&p, &manifests(&a, &[("ssl-session-timeout", "1s")]));
    let (ok, out) = s_client(&p, &["-tls1_3", "-sess_out", sess]);
    assert!(ok && out.contains("TLS session ticket lifetime hint: 1 (seconds)"), "{out}");
    let (ok, out) = s_client(&p, &["-tls1_3", "-sess_in", sess]);
    assert!(ok, "{out}");
    // The ticket is at most 1 s old only when the second handshake came quickly: either way,
    // after 2 s it is stale.
    std::thread::sleep(std::time::Duration::from_millis(2100));
    let (ok, out) = s_client(&p, &["-tls1_3", "-sess_in", sess]);
    assert!(ok && out.contains("New, TLSv1.3"), "a stale ticket gives a full handshake: {out}");
}
