//! External authentication (`auth-url` and its family, the ConfigMap's `global-auth-url`)
//! through the real binary: a real auth service on loopback that counts its calls and keeps
//! every request head it received, real upstreams that count theirs, and real clients (raw
//! HTTP/1.1, curl over HTTP/2 with TLS, an h2c client, a gRPC-shaped call).

mod support;

use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use support::*;

/// An auth service in the manner of oauth2-proxy's `/oauth2/auth`: the credentials decide
/// (`Authorization: Bearer <word>` or the cookie `_oauth2_proxy=ok`).
/// - `good` or the cookie: 200, `X-Auth-Request-User: alice`, a Set-Cookie, a short body
/// - `forbid`: 403; `boom`: 502; `slow`: 200 after 3 s
/// - anything else: 401 with `WWW-Authenticate: Bearer realm="test"` and a cookie `tried=1`
struct AuthService {
    addr: SocketAddr,
    heads: Arc<Mutex<Vec<String>>>,
}

impl AuthService {
    fn start() -> AuthService {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap();
        let heads = Arc::new(Mutex::new(Vec::new()));
        let h = heads.clone();
        std::thread::spawn(move || {
            for s in l.incoming().flatten() {
                let h = h.clone();
                std::thread::spawn(move || {
                    let _ = serve(s, &h);
                });
            }
        });
        AuthService { addr, heads }
    }

    fn calls(&self) -> usize {
        self.heads.lock().unwrap().len()
    }

    fn last(&self) -> String {
        self.heads.lock().unwrap().last().cloned().unwrap_or_default()
    }
}

fn serve(s: TcpStream, heads: &Mutex<Vec<String>>) -> std::io::Result<()> {
    let mut w = s.try_clone()?;
    let mut r = BufReader::new(s);
    loop {
        let mut head = String::new();
        loop {
            let mut line = String::new();
            if r.read_line(&mut line)? == 0 {
                return Ok(());
            }
            head.push_str(&line);
            if line == "\r\n" {
                break;
            }
        }
        heads.lock().unwrap().push(head.clone());
        let lower = head.to_ascii_lowercase();
        let word =
            lower.lines().find_map(|l| l.strip_prefix("authorization: bearer ")).unwrap_or("").trim().to_string();
        let cookie = lower.lines().any(|l| l.starts_with("cookie:") && l.contains("_oauth2_proxy=ok"));
        let answer = match word.as_str() {
            _ if cookie => {
                "200 OK\r\nX-Auth-Request-User: alice\r\nSet-Cookie: refreshed=1; Path=/\r\nContent-Length: 2\r\n\r\nok"
                    .to_string()
            }
            "good" => {
                "200 OK\r\nX-Auth-Request-User: alice\r\nSet-Cookie: refreshed=1; Path=/\r\nContent-Length: 2\r\n\r\nok"
                    .to_string()
            }
            "forbid" => "403 Forbidden\r\nContent-Length: 0\r\n\r\n".to_string(),
            "boom" => "502 Bad Gateway\r\nContent-Length: 0\r\n\r\n".to_string(),
            "slow" => {
                std::thread::sleep(Duration::from_secs(3));
                "200 OK\r\nContent-Length: 0\r\n\r\n".to_string()
            }
            _ => "401 Unauthorized\r\nWWW-Authenticate: Bearer realm=\"test\"\r\nSet-Cookie: tried=1\r\nContent-Length: 4\r\n\r\nnope"
                .to_string(),
        };
        w.write_all(format!("HTTP/1.1 {answer}").as_bytes())?;
    }
}

fn site(a: &Upstream, name: &str, annotations: &[(&str, &str)]) -> String {
    service(&format!("svc-{name}"), &[a.addr])
        + &annotated(ingress(name, Some(&format!("{name}.test")), &[("/", &format!("svc-{name}"))]), annotations)
}

/// One HTTP/1.1 request with extra header lines.
fn request(p: &Proxy, method: &str, host: &str, path: &str, extra: &str) -> Response {
    let body = if method == "POST" { "Content-Length: 5\r\n\r\nhello" } else { "\r\n" };
    let req = format!("{method} {path} HTTP/1.1\r\nHost: {host}\r\n{extra}Connection: close\r\n{body}");
    raw(p.http, req.as_bytes()).expect("a response")
}

fn bearer(word: &str) -> String {
    format!("Authorization: Bearer {word}\r\n")
}

/// The status, grpc-status and body over h2c, with an Authorization field when `token`.
fn h2c(addr: SocketAddr, host: &str, grpc: bool, token: Option<&str>) -> (u16, Option<String>, String) {
    let auth = token.map(|t| format!("Bearer {t}"));
    let headers: Vec<(&str, &str)> = auth.iter().map(|a| ("authorization", a.as_str())).collect();
    h2c_call(addr, host, grpc, &headers)
}

/// curl over HTTP/2 with TLS: the status, the response head and the body.
fn h2_tls(p: &Proxy, host: &str, token: Option<&str>) -> (u16, String, String) {
    let port = p.https.port();
    let auth = token.map(|t| format!("Authorization: Bearer {t}"));
    let mut cmd = std::process::Command::new("curl");
    cmd.args(["-sk", "--http2", "-D", "-", "-w", "\n%{http_code} %{http_version}"]);
    if let Some(a) = &auth {
        cmd.args(["-H", a]);
    }
    cmd.args(["--resolve", &format!("{host}:{port}:127.0.0.1"), &format!("https://{host}:{port}/")]);
    let (ok, out, err) = run(&mut cmd);
    assert!(ok, "curl: {err}");
    let (all, tail) = out.rsplit_once('\n').unwrap();
    let (code, version) = tail.split_once(' ').unwrap();
    assert_eq!(version, "2", "{out}");
    let (head, body) = all.split_once("\r\n\r\n").unwrap_or((all, ""));
    (code.parse().unwrap(), head.to_string(), body.to_string())
}

#[test]
fn the_auth_service_decides_on_every_protocol_and_the_upstream_sees_only_what_it_granted() {
    let auth = AuthService::start();
    let (a, b) = (Upstream::start("a"), Upstream::start("b"));
    let url = format!("http://{}/check?host=$host", auth.addr);
    let m = site(
        &a,
        "ext",
        &[
            ("nginx.ingress.kubernetes.io/auth-url", &url),
            ("nginx.ingress.kubernetes.io/auth-response-headers", "X-Auth-Request-User"),
            ("nginx.ingress.kubernetes.io/proxy-read-timeout", "1"),
            ("nginx.ingress.kubernetes.io/auth-proxy-set-headers", "auth-headers"),
            ("nginx.ingress.kubernetes.io/auth-request-redirect", "https://$host/landing"),
        ],
    ) + "---\napiVersion: v1\nkind: ConfigMap\nmetadata: {name: auth-headers, namespace: default}\ndata: {X-Tenant: \"$host-tenant\", X-Real-IP: \"1.2.3.4\"}\n"
        + &site(&b, "down", &[("ingress.kubernetes.io/auth-url", &format!("http://{}/check", dead_addr()))]);
    let p = Proxy::start("uring", &m, &["--workers", "1"]);

    // Granted: the upstream gets the auth service's user, never the one the client claims.
    let spoof = "X-Auth-Request-User: mallory\r\nX-Original-URL: http://evil/\r\n";
    let r = request(&p, "GET", "ext.test", "/some/path?q=1", &(bearer("good") + spoof));
    assert_eq!(r.status, 200, "{}", r.text());
    let seen = r.text();
    assert!(seen.contains("header x-auth-request-user: alice") && !seen.contains("mallory"), "{seen}");
    assert_eq!(r.header("set-cookie"), Some("refreshed=1; Path=/"), "the auth service's cookie");
    // What the auth service received: the original request's method, URI, host and fields,
    // the ones ingress-nginx sets, and no body.
    let head = auth.last();
    for line in [
        "GET /check?host=ext.test HTTP/1.1\r\n",
        "Authorization: Bearer good\r\n",
        "X-Original-URL: http://ext.test/some/path?q=1\r\n",
        "X-Original-Method: GET\r\n",
        "X-Sent-From: nginx-ingress-controller\r\n",
        "X-Real-IP: 127.0.0.1\r\n",
        "X-Forwarded-For: 127.0.0.1\r\n",
        "X-Auth-Request-Redirect: https://ext.test/landing\r\n",
        // auth-proxy-set-headers, with its variables.
        "x-tenant: ext.test-tenant\r\n",
    ] {
        assert!(head.contains(line), "{line:?} missing from:\n{head}");
    }
    assert!(!head.contains("evil") && !head.to_ascii_lowercase().contains("content-length"), "{head}");
    // A POST: its body goes to the upstream only, after the verdict.
    let r = request(&p, "POST", "ext.test", "/form", &bearer("good"));
    assert!(r.status == 200 && r.text().contains("body-len=5"), "{}", r.text());
    assert!(auth.last().starts_with("GET /check") && !auth.last().contains("hello"));
    let granted = a.hits();
    assert_eq!(granted, 2);

    // Refused: 401 with the auth service's challenge, 403, and 500 for anything else, for
    // a slow service, or for one that is down. The upstream sees none of them.
    let r = request(&p, "GET", "ext.test", "/", "");
    assert_eq!((r.status, r.header("www-authenticate")), (401, Some("Bearer realm=\"test\"")));
    assert_eq!(r.header("set-cookie"), None, "no cookie on a refusal without auth-always-set-cookie");
    assert_eq!(request(&p, "GET", "ext.test", "/", &bearer("forbid")).status, 403);
    assert_eq!(request(&p, "GET", "ext.test", "/", &bearer("boom")).status, 500);
    assert_eq!(request(&p, "GET", "ext.test", "/", &bearer("slow")).status, 500, "past proxy-read-timeout");
    let r = request(&p, "GET", "down.test", "/", &bearer("good"));
    assert_eq!(r.status, 500, "{}", r.text());
    // The log line may follow the answer by a moment.
    p.wait_for(|| p.log_text().contains("external authentication failed"), "the failure logged, naming the URL");

    // HTTP/2 over TLS, h2c and gRPC: the same verdicts.
    let (code, head, body) = h2_tls(&p, "ext.test", Some("good"));
    assert!(code == 200 && body.contains("x-auth-request-user: alice"), "{code} {body}");
    assert!(head.contains("set-cookie: refreshed=1"), "{head}");
    let (code, head, _) = h2_tls(&p, "ext.test", None);
    assert!(code == 401 && head.contains("www-authenticate: Bearer realm=\"test\""), "{code} {head}");
    assert_eq!(h2_tls(&p, "ext.test", Some("forbid")).0, 403);
    assert_eq!(h2c(p.http, "ext.test", false, None).0, 401);
    assert_eq!(h2c(p.http, "ext.test", false, Some("boom")).0, 500);
    assert_eq!(h2c(p.http, "ext.test", true, None).1.as_deref(), Some("16"), "gRPC: UNAUTHENTICATED");
    assert_eq!(h2c(p.http, "ext.test", true, Some("forbid")).1.as_deref(), Some("7"), "gRPC: PERMISSION_DENIED");
    assert_eq!(h2c(p.http, "ext.test", false, Some("good")).0, 200);
    assert_eq!((a.hits(), b.hits()), (granted + 2, 0), "a refused request reached its upstream");
    assert!(p.metric("ringress_auth_requests_total").unwrap_or(0.0) >= 15.0);
}

#[test]
fn oauth2_proxy_as_its_documentation_sets_it_up_with_sign_in_and_a_verdict_cache() {
    let auth = AuthService::start();
    let app = Upstream::start("app");
    // oauth2-proxy's documented annotations; its own Ingress serves /oauth2 on the same host.
    let m = service("oauth2-proxy", &[auth.addr])
        + &ingress("oauth2-proxy", Some("app.test"), &[("/oauth2", "oauth2-proxy")])
        + &site(
            &app,
            "app",
            &[
                ("nginx.ingress.kubernetes.io/auth-url", "http://$host/oauth2/auth"),
                ("nginx.ingress.kubernetes.io/auth-signin", "http://$host/oauth2/start?rd=$escaped_request_uri"),
                ("nginx.ingress.kubernetes.io/auth-response-headers", "x-auth-request-user"),
                ("nginx.ingress.kubernetes.io/auth-cache-key", "$cookie__oauth2_proxy"),
                ("nginx.ingress.kubernetes.io/auth-cache-duration", "200 10m"),
            ],
        );
    let p = Proxy::start("uring", &m, &["--workers", "1"]);
    // Not signed in: off to sign in, with where to come back to.
    let r = request(&p, "GET", "app.test", "/page?x=1", "");
    assert_eq!(r.status, 302, "{}", r.text());
    assert_eq!(r.header("location"), Some("http://app.test/oauth2/start?rd=%2Fpage%3Fx%3D1"));
    assert_eq!(r.header("set-cookie"), Some("tried=1"), "the sign-in redirect carries the auth service's cookie");
    assert_eq!(app.hits(), 0);
    assert!(auth.last().starts_with("GET /oauth2/auth HTTP/1.1\r\nHost: app.test\r\n"), "{}", auth.last());
    assert!(auth.last().contains("X-Auth-Request-Redirect: /page?x=1\r\n"), "the default: $request_uri");
    // gRPC cannot follow a redirect: UNAUTHENTICATED.
    assert_eq!(h2c(p.http, "app.test", true, None).1.as_deref(), Some("16"));
    // Signed in: through, and the verdict is cached by the cookie.
    let calls = auth.calls();
    for _ in 0..3 {
        let r = request(&p, "GET", "app.test", "/page", "Cookie: _oauth2_proxy=ok\r\n");
        assert!(r.status == 200 && r.text().contains("header x-auth-request-user: alice"), "{}", r.text());
    }
    assert_eq!(auth.calls(), calls + 1, "two of three answered from the cache");
    // Another cookie is another key; a 401 is not cached under `200 10m`.
    for _ in 0..2 {
        assert_eq!(request(&p, "GET", "app.test", "/page", "Cookie: _oauth2_proxy=stolen\r\n").status, 302);
    }
    assert_eq!(auth.calls(), calls + 3);
    assert_eq!(app.hits(), 3);
}

#[test]
fn the_configmaps_global_auth_covers_every_ingress_unless_it_opts_out_or_has_its_own() {
    let (global, own) = (AuthService::start(), AuthService::start());
    let (a, b, c) = (Upstream::start("a"), Upstream::start("b"), Upstream::start("c"));
    let cm = format!(
        "---\napiVersion: v1\nkind: ConfigMap\nmetadata: {{name: ringress, namespace: ringress}}\ndata:\n  global-auth-url: \"http://{}/global\"\n  global-auth-response-headers: \"X-Auth-Request-User\"\n  global-auth-always-set-cookie: \"true\"\n  use-forwarded-headers: \"true\"\n  compute-full-forwarded-for: \"true\"\n",
        global.addr
    );
    let m = site(&a, "kept", &[])
        + &site(&b, "optout", &[("nginx.ingress.kubernetes.io/enable-global-auth", "false")])
        + &site(&c, "own", &[("nginx.ingress.kubernetes.io/auth-url", &format!("http://{}/own", own.addr))])
        + &cm;
    let p = Proxy::start("uring", &m, &[]);
    let r = request(&p, "GET", "kept.test", "/", "");
    assert_eq!((r.status, r.header("set-cookie")), (401, Some("tried=1")), "global-auth-always-set-cookie");
    let r = request(&p, "GET", "kept.test", "/", &bearer("good"));
    assert!(r.status == 200 && r.text().contains("header x-auth-request-user: alice"), "{}", r.text());
    assert!(global.last().starts_with("GET /global HTTP/1.1"), "{}", global.last());
    // With use-forwarded-headers and compute-full-forwarded-for, the full list, as
    // ingress-nginx's auth location sends it.
    request(&p, "GET", "kept.test", "/", &(bearer("good") + "X-Forwarded-For: 192.0.2.7\r\n"));
    let head = global.last();
    assert!(head.contains("X-Forwarded-For: 192.0.2.7, 127.0.0.1\r\n"), "{head}");
    assert!(head.contains("X-Real-IP: 192.0.2.7\r\n"), "the client address, trusted from the peer: {head}");
    assert_eq!(request(&p, "GET", "optout.test", "/", "").status, 200, "enable-global-auth: false");
    // The Ingress's own auth-url replaces the global one.
    let before = global.calls();
    assert_eq!(request(&p, "GET", "own.test", "/", &bearer("forbid")).status, 403);
    assert!(own.last().starts_with("GET /own HTTP/1.1"), "{}", own.last());
    assert_eq!(global.calls(), before);
    assert_eq!((a.hits(), b.hits(), c.hits()), (2, 1, 0));
}

#[test]
fn settings_that_cannot_be_enforced_refuse_the_route_and_say_why() {
    let a = Upstream::start("a");
    let bad = |name: &str, annotations: &[(&str, &str)]| site(&a, name, annotations);
    let m = bad("scheme", &[("nginx.ingress.kubernetes.io/auth-url", "ftp://auth/")])
        + &bad("var", &[("nginx.ingress.kubernetes.io/auth-url", "http://auth/$nonsense")])
        + &bad(
            "headers",
            &[
                ("nginx.ingress.kubernetes.io/auth-url", "http://127.0.0.1:9/"),
                ("nginx.ingress.kubernetes.io/auth-proxy-set-headers", "missing"),
            ],
        )
        + &bad("snippet", &[("nginx.ingress.kubernetes.io/auth-snippet", "return 200;")]);
    let p = Proxy::start("uring", &m, &[]);
    for (host, why) in [
        ("scheme.test", "is not an http:// or https:// URL"),
        ("var.test", "$nonsense is not one ringress knows"),
        ("headers.test", "ConfigMap default/missing not found"),
        ("snippet.test", "auth-snippet asks for external authentication (nginx configuration)"),
    ] {
        let r = get(p.http, host, "/");
        assert!(r.status == 503 && r.text().contains(why), "{host}: {} {}", r.status, r.text());
    }
    assert_eq!(a.hits(), 0);
}

#[test]
fn an_https_auth_url_is_reached_over_tls() {
    // A second ringress terminates TLS in front of the auth service.
    let auth = AuthService::start();
    let front = Proxy::start("uring", &(service("auth", &[auth.addr]) + &ingress("auth", None, &[("/", "auth")])), &[]);
    let a = Upstream::start("a");
    let url = format!("https://{}/check", front.https);
    let p = Proxy::start("uring", &site(&a, "ext", &[("nginx.ingress.kubernetes.io/auth-url", &url)]), &[]);
    assert_eq!(request(&p, "GET", "ext.test", "/", &bearer("good")).status, 200);
    assert_eq!(request(&p, "GET", "ext.test", "/", "").status, 401);
    // The auth service heard it through the TLS front.
    assert!(auth.last().to_ascii_lowercase().contains("x-forwarded-proto: https\r\n"), "{}", auth.last());
    assert_eq!(a.hits(), 1);
}
