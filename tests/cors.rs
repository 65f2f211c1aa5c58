//! CORS as ingress-nginx's `enable-cors` family sets it: preflights answered by the proxy
//! (204, upstream never reached), the CORS fields on forwarded responses in place of the
//! upstream's, origin lists with wildcards, over HTTP/1.1 and HTTP/2, and the route's address
//! rules still in force.

mod support;

use support::*;

/// curl with `Host: host`: (status, response head in lower case, body).
fn curl(addr: std::net::SocketAddr, host: &str, h2: bool, args: &[&str], path: &str) -> (u16, String, String) {
    let proto = if h2 { "--http2-prior-knowledge" } else { "--http1.1" };
    let mut cmd = std::process::Command::new("curl");
    cmd.args(["-sS", "-i", proto, "-H", &format!("Host: {host}")]).args(args);
    let (ok, out, err) = run(cmd.arg(format!("http://{addr}{path}")));
    assert!(ok, "curl: {err}");
    let (head, body) = out.split_once("\r\n\r\n").unwrap_or((&out, ""));
    let status = head.split_whitespace().nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
    (status, head.to_ascii_lowercase(), body.to_string())
}

/// The value of field `name` (lower case) in a lower-cased head; None if absent.
fn field<'h>(head: &'h str, name: &str) -> Option<&'h str> {
    head.lines().find_map(|l| l.strip_prefix(name).and_then(|r| r.strip_prefix(": "))).map(str::trim_end)
}

fn count(head: &str, name: &str) -> usize {
    head.lines().filter(|l| l.starts_with(&format!("{name}:"))).count()
}

#[test]
fn preflights_are_answered_by_the_proxy_and_responses_carry_the_route_fields() {
    let up = Upstream::start("api");
    let m = service("api", &[up.addr])
        + &with_nginx(ingress("open", Some("open.test"), &[("/", "api")]), &[("enable-cors", "true")])
        + &with_nginx(
            ingress("listed", Some("listed.test"), &[("/", "api")]),
            &[
                ("enable-cors", "true"),
                ("cors-allow-origin", "https://app.test, https://*.corp.test:8443, not-an-origin"),
                ("cors-allow-methods", "GET, POST"),
                ("cors-allow-headers", "X-Token, Content-Type"),
                ("cors-expose-headers", "X-Total"),
                ("cors-allow-credentials", "false"),
                ("cors-max-age", "600"),
            ],
        );
    let p = Proxy::start("uring", &m, &[]);
    let preflight = ["-X", "OPTIONS", "-H", "Access-Control-Request-Method: PUT"];

    for h2 in [false, true] {
        // `*`: every origin, the proxy answers the preflight with ingress-nginx's defaults.
        let hits = up.hits();
        let (status, head, body) =
            curl(p.http, "open.test", h2, &[&preflight[..], &["-H", "Origin: https://any.test"]].concat(), "/x");
        assert_eq!((status, body.as_str()), (204, ""), "{head}");
        assert_eq!(field(&head, "access-control-allow-origin"), Some("*"));
        assert_eq!(field(&head, "access-control-allow-credentials"), Some("true"));
        assert_eq!(field(&head, "access-control-allow-methods"), Some("get, put, post, delete, patch, options"));
        assert_eq!(
            field(&head, "access-control-allow-headers"),
            Some("dnt,keep-alive,user-agent,x-requested-with,if-modified-since,cache-control,content-type,range,authorization")
        );
        assert_eq!(field(&head, "access-control-max-age"), Some("1728000"));
        assert_eq!(field(&head, "content-type"), Some("text/plain charset=utf-8"));
        assert_eq!(field(&head, "content-length"), None, "204 has no Content-Length: {head}");
        assert_eq!(field(&head, "access-control-expose-headers"), None);
        assert_eq!(up.hits(), hits, "the upstream never sees a preflight");

        // A forwarded response: the route's fields replace the upstream's own.
        let (status, head, body) = curl(p.http, "open.test", h2, &["-H", "Origin: https://any.test"], "/cors");
        assert_eq!((status, body.as_str()), (200, "ok"));
        assert_eq!(count(&head, "access-control-allow-origin"), 1, "{head}");
        assert_eq!(field(&head, "access-control-allow-origin"), Some("*"));
        assert_eq!(field(&head, "access-control-max-age"), Some("1728000"), "{head}");

        // A list: an allowed origin is echoed (with Vary), a wildcard takes one label.
        let origin = "Origin: https://eu.corp.test:8443";
        let (status, head, _) = curl(p.http, "listed.test", h2, &[&preflight[..], &["-H", origin]].concat(), "/");
        assert_eq!(status, 204, "{head}");
        assert_eq!(field(&head, "access-control-allow-origin"), Some("https://eu.corp.test:8443"));
        assert_eq!(field(&head, "vary"), Some("origin"));
        assert_eq!(field(&head, "access-control-allow-credentials"), None, "credentials off");
        assert_eq!(field(&head, "access-control-allow-methods"), Some("get, post"));
        assert_eq!(field(&head, "access-control-allow-headers"), Some("x-token, content-type"));
        assert_eq!(field(&head, "access-control-expose-headers"), Some("x-total"));
        assert_eq!(field(&head, "access-control-max-age"), Some("600"));
        let (_, head, _) = curl(p.http, "listed.test", h2, &["-H", "Origin: https://app.test"], "/cors");
        assert_eq!(field(&head, "access-control-allow-origin"), Some("https://app.test"));

        // Origins not listed get no CORS fields from the proxy: the preflight goes to the
        // upstream like any OPTIONS request, and responses keep what the upstream says.
        for denied in ["https://evil.test", "https://a.b.corp.test:8443", "https://corp.test:8443", "http://app.test"] {
            let origin = format!("Origin: {denied}");
            let (status, head, body) =
                curl(p.http, "listed.test", h2, &[&preflight[..], &["-H", &origin]].concat(), "/");
            assert_eq!(status, 200, "{denied}: {head}");
            assert!(body.contains("method=OPTIONS"), "{denied}: the upstream answered");
            assert_eq!(field(&head, "access-control-allow-origin"), None, "{denied}: {head}");
            let (_, head, _) = curl(p.http, "listed.test", h2, &["-H", &origin], "/cors");
            assert_eq!(field(&head, "access-control-allow-origin"), Some("https://from-upstream.test"));
        }
    }
    let log = p.log_text();
    assert!(log.contains("cors-allow-origin") && log.contains("\"not-an-origin\" is not an origin"), "{log}");
}

#[test]
fn address_rules_still_apply_to_preflights_and_authentication_does_not() {
    let up = Upstream::start("api");
    let dir = support::proxy::temp_dir();
    let (ok, _, err) = run(std::process::Command::new("htpasswd").args(["-bc"]).arg(dir.join("auth")).args(["u", "p"]));
    assert!(ok, "htpasswd: {err}");
    let htpasswd = std::fs::read_to_string(dir.join("auth")).unwrap();
    let secret = format!(
        "---\napiVersion: v1\nkind: Secret\nmetadata: {{name: users, namespace: default}}\nstringData:\n  auth: \"{}\"\n",
        htpasswd.trim()
    );
    let m = service("api", &[up.addr])
        + &secret
        + &with_nginx(
            ingress("walled", Some("walled.test"), &[("/", "api")]),
            &[("enable-cors", "true"), ("whitelist-source-range", "10.0.0.0/8")],
        )
        + &with_nginx(
            ingress("login", Some("login.test"), &[("/", "api")]),
            &[("enable-cors", "true"), ("auth-type", "basic"), ("auth-secret", "users")],
        );
    let p = Proxy::start("uring", &m, &[]);
    let preflight = ["-X", "OPTIONS", "-H", "Origin: https://app.test", "-H", "Access-Control-Request-Method: GET"];
    for h2 in [false, true] {
        assert_eq!(curl(p.http, "walled.test", h2, &preflight, "/").0, 403, "a client the route does not admit");
        let (status, head, _) = curl(p.http, "login.test", h2, &preflight, "/");
        assert_eq!((status, field(&head, "access-control-allow-origin")), (204, Some("*")));
        assert_eq!(curl(p.http, "login.test", h2, &["-H", "Origin: https://app.test"], "/").0, 401);
        let (status, head, _) = curl(p.http, "login.test", h2, &["-u", "u:p", "-H", "Origin: https://app.test"], "/");
        assert_eq!((status, field(&head, "access-control-allow-origin")), (200, Some("*")));
    }
    assert_eq!(up.hits(), 2, "only the authenticated requests reached the upstream");
}
