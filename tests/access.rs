//! Access control that never fails open: client-address lists enforced before anything reaches
//! the upstream, over HTTP/1.1, HTTP/2 (cleartext and TLS) and gRPC alike; every security
//! annotation ringress does not enforce stops its Ingress (503 naming it, `ringress check`
//! fails), unless the operator chose `--unsupported-security-annotations=warn`.

mod support;

use std::net::SocketAddr;

use support::*;

/// The status (and body) an HTTP/2 client gets over h2c, and the grpc-status when `grpc`.
fn h2c(addr: SocketAddr, host: &str, grpc: bool) -> (u16, Option<String>, String) {
    h2c_call(addr, host, grpc, &[])
}

/// The status and body curl gets over HTTP/2 with TLS (ALPN h2), with `extra` arguments.
fn h2_tls_with(p: &Proxy, host: &str, extra: &[&str]) -> (u16, String) {
    let port = p.https.port();
    let (ok, out, err) = run(std::process::Command::new("curl").args(extra).args([
        "-sk",
        "--http2",
        "-w",
        "\n%{http_code} %{http_version}",
        "--resolve",
        &format!("{host}:{port}:127.0.0.1"),
        &format!("https://{host}:{port}/"),
    ]));
    assert!(ok, "curl: {err}");
    let (body, tail) = out.rsplit_once('\n').unwrap();
    let (code, version) = tail.split_once(' ').unwrap();
    assert_eq!(version, "2", "{out}");
    (code.parse().unwrap(), body.to_string())
}

fn h2_tls(p: &Proxy, host: &str) -> (u16, String) {
    h2_tls_with(p, host, &[])
}

fn site(a: &Upstream, name: &str, annotations: &[(&str, &str)]) -> String {
    service(&format!("svc-{name}"), &[a.addr])
        + &annotated(ingress(name, Some(&format!("{name}.test")), &[("/", &format!("svc-{name}"))]), annotations)
}

#[test]
fn source_ranges_answer_403_on_every_protocol_before_the_upstream_sees_anything() {
    let (shut, open, denied) = (Upstream::start("shut"), Upstream::start("open"), Upstream::start("denied"));
    let m = site(&shut, "shut", &[("nginx.ingress.kubernetes.io/allowlist-source-range", "10.0.0.0/8, 2001:db8::/32")])
        + &site(&open, "open", &[("ingress.kubernetes.io/whitelist-source-range", "192.0.2.0/24,127.0.0.0/8")])
        + &site(&denied, "denied", &[("nginx.ingress.kubernetes.io/denylist-source-range", "127.0.0.1/32")]);
    let p = Proxy::start("uring", &m, &[]);
    for host in ["shut.test", "denied.test"] {
        let r = get(p.http, host, "/");
        assert_eq!(r.status, 403, "HTTP/1.1 {host}: {}", r.text());
        assert_eq!(h2c(p.http, host, false).0, 403, "h2c {host}");
        assert_eq!(h2_tls(&p, host).0, 403, "h2 over TLS {host}");
        // A gRPC call is refused in gRPC terms: PERMISSION_DENIED in a trailers-only answer.
        assert_eq!(h2c(p.http, host, true).1.as_deref(), Some("7"), "gRPC {host}");
    }
    assert_eq!((shut.hits(), denied.hits()), (0, 0), "a refused request reached its upstream");
    assert_eq!(get(p.http, "open.test", "/").status, 200, "the older prefix and the older name");
    assert_eq!(h2c(p.http, "open.test", false).0, 200);
    assert_eq!(h2_tls(&p, "open.test").0, 200);
    // A keep-alive connection survives a 403 (the refusal is framed like any answer).
    let mut s = connect(p.http);
    std::io::Write::write_all(
        &mut s,
        b"GET / HTTP/1.1\r\nHost: shut.test\r\n\r\nGET / HTTP/1.1\r\nHost: open.test\r\n\r\n",
    )
    .unwrap();
    let mut pending = Vec::new();
    assert_eq!(read_response(&mut s, &mut pending, false).unwrap().status, 403);
    assert_eq!(read_response(&mut s, &mut pending, false).unwrap().status, 200);
}

#[test]
fn an_unenforced_or_unparsable_security_annotation_fails_closed_and_check_names_it() {
    let (a, b, c) = (Upstream::start("a"), Upstream::start("b"), Upstream::start("c"));
    let m = site(
        &a,
        "basic",
        &[
            ("nginx.ingress.kubernetes.io/auth-snippet", "return 200;"),
            ("nginx.ingress.kubernetes.io/enable-modsecurity", "true"),
        ],
    ) + &site(&b, "typo", &[("nginx.ingress.kubernetes.io/whitelist-source-range", "10.0.0.0/33")])
        + &site(&c, "plain", &[]);
    let p = Proxy::start("uring", &m, &[]);
    let r = get(p.http, "basic.test", "/");
    assert_eq!(r.status, 503, "{}", r.text());
    // Every reason is named: both annotations.
    let text = r.text();
    assert!(text.contains("nginx.ingress.kubernetes.io/auth-snippet") && text.contains("enable-modsecurity"), "{text}");
    assert!(text.contains("web application firewall, which ringress does not enforce"), "{text}");
    let (code, _, body) = h2c(p.http, "basic.test", false);
    assert!(code == 503 && body.contains("auth-snippet"), "h2c: {code} {body}");
    let (code, body) = h2_tls(&p, "basic.test");
    assert!(code == 503 && body.contains("auth-snippet"), "h2 over TLS: {code} {body}");
    assert_eq!(h2c(p.http, "basic.test", true).1.as_deref(), Some("14"), "gRPC: UNAVAILABLE");
    let r = get(p.http, "typo.test", "/");
    assert!(r.status == 503 && r.text().contains("10.0.0.0/33"), "a list that does not parse: {}", r.text());
    assert_eq!((a.hits(), b.hits()), (0, 0), "a refused Ingress reached its upstream");
    assert_eq!(get(p.http, "plain.test", "/").status, 200, "other Ingresses are served");
    // Counted by annotation, for a dashboard or an alert.
    let metric =
        |a: &str| p.metric(&format!("ringress_ignored_annotations{{annotation=\"nginx.ingress.kubernetes.io/{a}\"}}"));
    assert_eq!((metric("enable-modsecurity"), metric("whitelist-source-range")), (Some(1.0), Some(1.0)));

    // `ringress check` fails, naming each Ingress, the annotation and why.
    let file = p.dir.join("check.yaml");
    std::fs::write(&file, &m).unwrap();
    let (ok, out, err) =
        run(std::process::Command::new(env!("CARGO_BIN_EXE_ringress")).args(["check", "--manifests"]).arg(&file));
    assert!(!ok, "check passed: {out}");
    assert!(
        out.contains("error: Ingress default/basic is not served: annotation nginx.ingress.kubernetes.io/auth-"),
        "{out}"
    );
    assert!(
        out.contains(
            "error: Ingress default/typo is not served: annotation nginx.ingress.kubernetes.io/whitelist-source-range"
        ),
        "{out}"
    );
    assert!(err.contains("2 Ingress(es) refused"), "{err}");

    // An operator who insists: served without the protection, loudly; a value that does
    // not parse still refuses.
    let w = Proxy::start("uring", &m, &["--unsupported-security-annotations", "warn"]);
    assert_eq!(get(w.http, "basic.test", "/").status, 200);
    assert_eq!(get(w.http, "typo.test", "/").status, 503);
    w.wait_for(|| w.log_text().contains("served WITHOUT it"), "served WITHOUT it");
    let (ok, out, _) = run(std::process::Command::new(env!("CARGO_BIN_EXE_ringress"))
        .args(["check", "--unsupported-security-annotations", "warn", "--manifests"])
        .arg(&file));
    assert!(!ok && !out.contains("default/basic is not served") && out.contains("default/typo is not served"), "{out}");
}

fn config_map(data: &[(&str, &str)]) -> String {
    let mut cm =
        String::from("---\napiVersion: v1\nkind: ConfigMap\nmetadata: {name: ringress, namespace: ringress}\ndata:\n");
    for (k, v) in data {
        cm += &format!("  {k}: \"{v}\"\n");
    }
    cm
}

/// A request from 127.0.0.1 that claims to come from `xff`.
fn get_as(p: &Proxy, host: &str, xff: &str) -> u16 {
    let req = format!("GET / HTTP/1.1\r\nHost: {host}\r\nX-Forwarded-For: {xff}\r\nConnection: close\r\n\r\n");
    raw(p.http, req.as_bytes()).map_or(0, |r| r.status)
}

#[test]
fn configmap_lists_cover_every_ingress_and_the_real_client_address_decides() {
    let (a, b) = (Upstream::start("a"), Upstream::start("b"));
    let sites = site(&a, "any", &[])
        + &site(&b, "own", &[("nginx.ingress.kubernetes.io/allowlist-source-range", "127.0.0.0/8,10.1.0.0/16")]);
    let p = Proxy::start("uring", &(sites.clone() + &config_map(&[("whitelist-source-range", "10.0.0.0/8")])), &[]);
    assert_eq!(get(p.http, "any.test", "/").status, 403, "the global list");
    assert_eq!(get(p.http, "own.test", "/").status, 200, "an Ingress's own list replaces it");
    // The claimed address counts only from a trusted peer, with enable-real-ip.
    assert_eq!(get_as(&p, "any.test", "10.1.2.3"), 403, "an untrusted claim");
    let publish = |data: &[(&str, &str)]| {
        let generation = p.generation();
        p.replace_manifests(&(sites.clone() + &config_map(data)));
        p.wait_for(|| p.generation() > generation, "the new snapshot");
    };
    let trusted =
        [("whitelist-source-range", "10.0.0.0/8"), ("enable-real-ip", "true"), ("proxy-real-ip-cidr", "127.0.0.1/32")];
    publish(&trusted);
    assert_eq!(get_as(&p, "any.test", "192.0.2.7, 10.1.2.3"), 200, "the last address of a trusted peer's list");
    assert_eq!(get_as(&p, "any.test", "10.1.2.3, 192.0.2.7"), 403);
    assert_eq!(get_as(&p, "own.test", "10.2.0.1"), 403, "the Ingress's list, on the real address");
    // block-cidrs holds whatever an Ingress allows; denylist-source-range applies globally.
    publish(&[trusted[0], trusted[1], trusted[2], ("block-cidrs", "10.1.2.3")]);
    assert_eq!(get_as(&p, "own.test", "10.1.2.3"), 403);
    assert_eq!(get_as(&p, "own.test", "10.1.2.4"), 200);
    publish(&[("denylist-source-range", "127.0.0.0/8")]);
    // An Ingress that sets only an allow list is still covered by the global deny list.
    assert_eq!((get(p.http, "any.test", "/").status, get(p.http, "own.test", "/").status), (403, 403));
    // A global list that does not parse is a warning, and the previous value stays.
    publish(&[("denylist-source-range", "127.0.0.0/8"), ("whitelist-source-range", "not-a-cidr")]);
    assert_eq!(get(p.http, "any.test", "/").status, 403);
    p.wait_for(|| p.log_text().contains("whitelist-source-range"), "whitelist-source-range");
    assert_eq!(a.hits(), 1, "any.test's upstream saw only the one request that was allowed");
}

#[test]
fn blocked_user_agents_and_referers_are_refused_on_every_protocol() {
    let a = Upstream::start("a");
    let cm =
        config_map(&[("block-user-agents", "~*bot, BadClient/1.0"), ("block-referers", "~^https?://spam[.]test/")]);
    let p = Proxy::start("uring", &(site(&a, "site", &[]) + &cm), &[]);
    let ask = |extra: &str| {
        let req = format!("GET / HTTP/1.1\r\nHost: site.test\r\n{extra}Connection: close\r\n\r\n");
        raw(p.http, req.as_bytes()).map_or(0, |r| r.status)
    };
    assert_eq!(ask("User-Agent: SomeBOT/2\r\n"), 403, "~* is case-insensitive");
    assert_eq!(ask("User-Agent: BadClient/1.0\r\n"), 403, "an exact string");
    assert_eq!(ask("User-Agent: BadClient/1.01\r\n"), 200, "an exact string matches the whole value only");
    assert_eq!(ask("Referer: http://spam.test/page\r\n"), 403);
    assert_eq!(ask("Referer: http://ham.test/?r=http://spam.test/\r\n"), 200);
    assert_eq!(ask(""), 200);
    // HTTP/2 over TLS, as curl sends it.
    assert_eq!(h2_tls_with(&p, "site.test", &["-A", "crawlerbot"]).0, 403);
    assert_eq!(a.hits(), 3, "only the three allowed requests reached the upstream");
}

/// One htpasswd line written by Apache's `htpasswd` tool with `format` (-B, -m, -s, -2, -5, -d).
fn htpasswd(format: &str, user: &str, password: &str) -> String {
    let (ok, out, err) = run(std::process::Command::new("htpasswd").args(["-nb", format, user, password]));
    assert!(ok, "htpasswd (Debian apache2-utils; scripts/test.sh installs it): {err}");
    out.trim().to_string()
}

/// A Secret holding `data` base64-encoded, as `kubectl create secret generic --from-file` writes it.
fn opaque_secret(namespace: &str, name: &str, data: &[(&str, &str)]) -> String {
    use base64::Engine as _;
    let mut y = format!(
        "---\napiVersion: v1\nkind: Secret\nmetadata: {{name: {name}, namespace: {namespace}}}\ntype: Opaque\ndata:\n"
    );
    for (k, v) in data {
        y += &format!("  {k}: {}\n", base64::engine::general_purpose::STANDARD.encode(v));
    }
    y
}

/// The status and WWW-Authenticate of an HTTP/1.1 request with `user:password` (if any).
fn basic_get(addr: SocketAddr, host: &str, credentials: Option<&str>) -> (u16, Option<String>) {
    use base64::Engine as _;
    let auth = credentials.map_or(String::new(), |c| {
        format!("Authorization: Basic {}\r\n", base64::engine::general_purpose::STANDARD.encode(c))
    });
    let req = format!("GET / HTTP/1.1\r\nHost: {host}\r\n{auth}Connection: close\r\n\r\n");
    let r = raw(addr, req.as_bytes()).expect("a response");
    (r.status, r.header("www-authenticate").map(str::to_string))
}

const BASIC: [(&str, &str); 3] = [
    ("nginx.ingress.kubernetes.io/auth-type", "basic"),
    ("nginx.ingress.kubernetes.io/auth-secret", "users"),
    ("nginx.ingress.kubernetes.io/auth-realm", "Staff only"),
];

#[test]
fn basic_auth_checks_every_htpasswd_format_on_every_protocol_and_follows_the_secret() {
    let (a, b) = (Upstream::start("a"), Upstream::start("b"));
    let formats = ["-B", "-m", "-s", "-2", "-5"];
    let mut file: Vec<String> = formats.iter().map(|f| htpasswd(f, &format!("user{f}"), &format!("pw{f}:x"))).collect();
    file.push(htpasswd("-d", "old", "password"));
    let file = file.join("\n") + "\n";
    // One Ingress reads an htpasswd file, the other a map of users in another namespace.
    let map = [("carol", htpasswd("-B", "carol", "s3cret")), ("dave", htpasswd("-m", "dave", "hunter2"))];
    let map: Vec<(&str, &str)> = map.iter().map(|(u, l)| (*u, l.split_once(':').unwrap().1)).collect();
    let sites = site(&a, "file", &BASIC)
        + &site(
            &b,
            "map",
            &[
                ("ingress.kubernetes.io/auth-type", "basic"),
                ("ingress.kubernetes.io/auth-secret", "shared/team"),
                ("ingress.kubernetes.io/auth-secret-type", "auth-map"),
            ],
        );
    let m =
        sites.clone() + &opaque_secret("default", "users", &[("auth", &file)]) + &opaque_secret("shared", "team", &map);
    let p = Proxy::start("uring", &m, &[]);

    // No credentials: 401 with the challenge, on every protocol; the upstream sees nothing.
    let (code, challenge) = basic_get(p.http, "file.test", None);
    assert_eq!((code, challenge.as_deref()), (401, Some("Basic realm=\"Staff only\"")));
    assert_eq!(h2c(p.http, "file.test", false).0, 401, "h2c");
    assert_eq!(h2_tls(&p, "file.test").0, 401, "h2 over TLS");
    assert_eq!(h2c(p.http, "file.test", true).1.as_deref(), Some("16"), "gRPC: UNAUTHENTICATED");
    let (code, head) = h2_tls_with(&p, "file.test", &["-D", "-"]);
    assert!(code == 401 && head.contains("www-authenticate: Basic realm=\"Staff only\""), "{head}");
    assert_eq!(a.hits(), 0);

    // Every format htpasswd writes: the right password passes, over HTTP/1.1 and HTTP/2.
    for f in formats {
        let (user, pw) = (format!("user{f}"), format!("pw{f}:x"));
        assert_eq!(basic_get(p.http, "file.test", Some(&format!("{user}:{pw}"))).0, 200, "{user}");
        assert_eq!(basic_get(p.http, "file.test", Some(&format!("{user}:{pw}y"))).0, 401, "{user}, wrong password");
        assert_eq!(h2_tls_with(&p, "file.test", &["-u", &format!("{user}:{pw}")]).0, 200, "{user} over h2");
    }
    assert_eq!(a.hits(), 10, "only the admitted requests reached the upstream");
    // A hash ringress cannot verify (DES crypt) never admits, and the log names the user.
    assert_eq!(basic_get(p.http, "file.test", Some("old:password")).0, 401);
    let log = p.log_text();
    assert!(log.contains("Secret default/users: user \"old\"") && log.contains("DES"), "{log}");
    assert_eq!(basic_get(p.http, "map.test", Some("carol:s3cret")).0, 200, "auth-map, namespace/name");
    assert_eq!(basic_get(p.http, "map.test", Some("dave:hunter2")).0, 200);
    assert_eq!(basic_get(p.http, "map.test", Some("dave:s3cret")).0, 401);
    assert_eq!(basic_get(p.http, "map.test", Some("userB:pw-B:x")).0, 401, "another Secret's user");

    // A keep-alive connection survives a 401.
    let mut s = connect(p.http);
    std::io::Write::write_all(&mut s, b"GET / HTTP/1.1\r\nHost: file.test\r\n\r\nGET / HTTP/1.1\r\nHost: file.test\r\nAuthorization: Basic dXNlci1zOnB3LXM6eA==\r\n\r\n").unwrap();
    let mut pending = Vec::new();
    assert_eq!(read_response(&mut s, &mut pending, false).unwrap().status, 401);
    assert_eq!(read_response(&mut s, &mut pending, false).unwrap().status, 200);

    // The Secret changes: the next request sees the new password, and the old one fails.
    let generation = p.generation();
    let changed = htpasswd("-B", "user-B", "rotated") + "\n";
    p.replace_manifests(
        &(sites.clone()
            + &opaque_secret("default", "users", &[("auth", &changed)])
            + &opaque_secret("shared", "team", &map)),
    );
    p.wait_for(|| p.generation() > generation, "the new snapshot");
    assert_eq!(basic_get(p.http, "file.test", Some("user-B:pw-B:x")).0, 401);
    assert_eq!(basic_get(p.http, "file.test", Some("user-B:rotated")).0, 200);

    // The Secret loses its key, then goes: the route fails closed (503 naming it), never open.
    let generation = p.generation();
    p.replace_manifests(&(sites.clone() + &opaque_secret("default", "users", &[("htpasswd", &changed)])));
    p.wait_for(|| p.generation() > generation, "the new snapshot");
    let r = get(p.http, "file.test", "/");
    assert!(r.status == 503 && r.text().contains("Secret default/users has no key \"auth\""), "{}", r.text());
    let r = get(p.http, "map.test", "/");
    assert!(r.status == 503 && r.text().contains("auth-secret shared/team does not exist"), "{}", r.text());
    assert_eq!(h2_tls_with(&p, "map.test", &["-u", "carol:s3cret"]).0, 503);
    let before = (a.hits(), b.hits());
    assert_eq!(basic_get(p.http, "file.test", Some("user-B:rotated")).0, 503);
    assert_eq!((a.hits(), b.hits()), before, "a refused route reached its upstream");
}

#[test]
fn satisfy_any_admits_a_listed_address_or_a_user_and_all_needs_both() {
    let (a, b, c) = (Upstream::start("a"), Upstream::start("b"), Upstream::start("c"));
    let users = opaque_secret("default", "users", &[("auth", &(htpasswd("-B", "ann", "pw") + "\n"))]);
    fn with(list: &'static str, satisfy: Option<&'static str>) -> Vec<(&'static str, &'static str)> {
        let mut v = BASIC.to_vec();
        v.push(("nginx.ingress.kubernetes.io/whitelist-source-range", list));
        v.extend(satisfy.map(|s| ("nginx.ingress.kubernetes.io/satisfy", s)));
        v
    }
    let m = site(&a, "anyout", &with("10.0.0.0/8", Some("any")))
        + &site(&b, "anyin", &with("127.0.0.0/8", Some("any")))
        + &site(&c, "all", &with("127.0.0.0/8", None))
        + &site(&c, "allout", &with("10.0.0.0/8", Some("all")))
        + &site(&c, "nolist", &[&BASIC[..], &[("nginx.ingress.kubernetes.io/satisfy", "any")]].concat())
        + &users;
    let p = Proxy::start("uring", &m, &[]);
    // any: the address is not listed, so the credentials decide (401 with the challenge).
    assert_eq!(basic_get(p.http, "anyout.test", None), (401, Some("Basic realm=\"Staff only\"".into())));
    assert_eq!(basic_get(p.http, "anyout.test", Some("ann:pw")).0, 200);
    assert_eq!(h2_tls_with(&p, "anyout.test", &["-u", "ann:pw"]).0, 200);
    // any: a listed address needs no credentials.
    assert_eq!(basic_get(p.http, "anyin.test", None).0, 200);
    assert_eq!(h2c(p.http, "anyin.test", false).0, 200);
    // all (the default): both.
    assert_eq!(basic_get(p.http, "all.test", None).0, 401);
    assert_eq!(basic_get(p.http, "all.test", Some("ann:pw")).0, 200);
    assert_eq!(basic_get(p.http, "allout.test", Some("ann:pw")).0, 403, "credentials do not open a list");
    // any, with no allow list: nothing lets the address in, so the credentials decide.
    assert_eq!(basic_get(p.http, "nolist.test", None).0, 401);
    assert_eq!(h2c(p.http, "nolist.test", false).0, 401);
    assert_eq!((a.hits(), b.hits(), c.hits()), (2, 2, 1));
}

#[test]
fn a_configmap_global_auth_url_that_cannot_be_enforced_fails_closed_except_where_an_ingress_opts_out() {
    let (a, b) = (Upstream::start("a"), Upstream::start("b"));
    let sites =
        site(&a, "kept", &[]) + &site(&b, "optout", &[("nginx.ingress.kubernetes.io/enable-global-auth", "false")]);
    let m = sites.clone() + &config_map(&[("global-auth-url", "ftp://auth.test/verify")]);
    let p = Proxy::start("uring", &m, &[]);
    let r = get(p.http, "kept.test", "/");
    assert!(
        r.status == 503
            && r.text().contains("global-auth-url: \"ftp://auth.test/verify\" is not an http:// or https:// URL"),
        "{}",
        r.text()
    );
    assert_eq!(h2c(p.http, "kept.test", false).0, 503);
    assert_eq!(h2c(p.http, "kept.test", true).1.as_deref(), Some("14"), "gRPC: UNAVAILABLE");
    assert_eq!(a.hits(), 0, "a refused route reached its upstream");
    assert_eq!(get(p.http, "optout.test", "/").status, 200, "enable-global-auth: false opts out");
    // ringress check names the Ingress and the key, and fails (its file is not among the
    // manifests the proxy reads).
    let file = support::proxy::temp_dir().join("check.yaml");
    std::fs::write(&file, &m).unwrap();
    let (ok, out, _) =
        run(std::process::Command::new(env!("CARGO_BIN_EXE_ringress")).args(["check", "--manifests"]).arg(&file));
    assert!(
        !ok && out
            .contains("error: Ingress default/kept is not served: ConfigMap ringress/ringress key global-auth-url"),
        "{out}"
    );
    assert!(!out.contains("default/optout is not served"), "{out}");
    // The key removed: served again.
    let generation = p.generation();
    p.replace_manifests(&(sites + &config_map(&[])));
    p.wait_for(|| p.generation() > generation, "the new snapshot");
    assert_eq!(get(p.http, "kept.test", "/").status, 200, "{}", p.log_text());
}
