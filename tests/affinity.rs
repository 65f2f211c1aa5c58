//! How a route's endpoint is chosen, per Ingress, as ingress-nginx users set it: cookie
//! affinity (persistent and balanced, with the `session-cookie-*` attributes), consistent
//! hashing (`upstream-hash-by`, with subsets), over HTTP/1.1 and HTTP/2 alike, through the
//! real binary with real upstreams, and live endpoint changes.

mod support;

use std::collections::BTreeMap;
use std::net::SocketAddr;

use support::*;

/// One request over a new connection (HTTP/1.1, or HTTP/2 with prior knowledge through curl):
/// (the upstream that answered, the Set-Cookie field if any).
fn ask(addr: SocketAddr, host: &str, path: &str, h2: bool, headers: &[&str]) -> (String, Option<String>) {
    if h2 {
        let mut cmd = std::process::Command::new("curl");
        cmd.args(["-sS", "-i", "--http2-prior-knowledge", "-H", &format!("Host: {host}")]);
        for h in headers {
            cmd.args(["-H", h]);
        }
        let (ok, out, err) = run(cmd.arg(format!("http://{addr}{path}")));
        assert!(ok, "curl: {err}");
        let (head, body) = out.split_once("\r\n\r\n").expect("a response");
        assert!(head.starts_with("HTTP/2 200"), "{head}");
        let cookie = head.lines().find_map(|l| l.strip_prefix("set-cookie: ")).map(|c| c.trim_end().to_string());
        return (upstream_of(body), cookie);
    }
    let extra: String = headers.iter().map(|h| format!("{h}\r\n")).collect();
    let req = format!("GET {path} HTTP/1.1\r\nHost: {host}\r\n{extra}Connection: close\r\n\r\n");
    let r = raw(addr, req.as_bytes()).expect("a response");
    assert_eq!(r.status, 200, "{}", r.text());
    (upstream_of(&r.text()), r.header("set-cookie").map(str::to_string))
}

fn upstream_of(body: &str) -> String {
    body.lines().find_map(|l| l.strip_prefix("upstream=")).expect("an upstream's answer").to_string()
}

/// `name=value` of a Set-Cookie field.
fn pair(set_cookie: &str) -> String {
    set_cookie.split(';').next().unwrap().to_string()
}

fn wait_generation(p: &Proxy, after: u64) {
    p.wait_for(|| p.generation() > after, "the new endpoints");
}

#[test]
fn persistent_affinity_sticks_on_every_worker_and_protocol_and_moves_when_its_endpoint_leaves() {
    let ups: Vec<Upstream> = ["a", "b", "c"].iter().map(|n| Upstream::start(n)).collect();
    let addrs: Vec<SocketAddr> = ups.iter().map(|u| u.addr).collect();
    let sticky = |endpoints: &[SocketAddr]| {
        service("web", endpoints)
            + &with_nginx(
                ingress("web", Some("sticky.test"), &[("/", "web")]),
                &[
                    ("affinity", "cookie"),
                    ("affinity-mode", "persistent"),
                    ("session-cookie-name", "route"),
                    ("session-cookie-max-age", "3600"),
                    ("session-cookie-samesite", "Lax"),
                ],
            )
    };
    let p = Proxy::start("uring", &sticky(&addrs), &["--workers", "2"]);
    // What an operator sees of it: /debug/routes.
    let routes = get(p.admin, "localhost", "/debug/routes").text();
    assert!(routes.contains("\"traffic\": \"affinity cookie route (persistent)\""), "{routes}");

    // No cookie: balanced as usual, and every answer pins the client.
    let mut first = BTreeMap::new();
    for _ in 0..9 {
        let (up, cookie) = ask(p.http, "sticky.test", "/", false, &[]);
        let cookie = cookie.expect("a first answer sets the cookie");
        let rest = cookie.split_once(';').unwrap().1;
        assert_eq!(rest, " Path=/; Max-Age=3600; SameSite=Lax; HttpOnly", "{cookie}");
        let value = pair(&cookie)["route=".len()..].to_string();
        assert!(value.len() == 16 && value.bytes().all(|b| b.is_ascii_hexdigit()), "{cookie}");
        first.insert(up, pair(&cookie));
    }
    assert_eq!(first.len(), 3, "round robin reached every endpoint: {first:?}");

    // With its cookie, a client stays, whatever connection, worker or protocol carries it.
    for (up, cookie) in &first {
        let header = format!("Cookie: other=1; {cookie}");
        for i in 0..12 {
            let (got, set) = ask(p.http, "sticky.test", &format!("/x{i}"), i % 3 == 0, &[&header]);
            assert_eq!((&got, set), (up, None), "{cookie}");
        }
    }

    // Its endpoint leaves: the client is balanced anew and gets a new cookie, which sticks.
    let (gone, cookie) = first.iter().next().map(|(u, c)| (u.clone(), c.clone())).unwrap();
    let staying: Vec<SocketAddr> = ups.iter().filter(|u| u.name != gone).map(|u| u.addr).collect();
    let g = p.generation();
    p.replace_manifests(&sticky(&staying));
    wait_generation(&p, g);
    let (moved, set) = ask(p.http, "sticky.test", "/", false, &[&format!("Cookie: {cookie}")]);
    assert_ne!(moved, gone);
    let new = pair(&set.expect("a new cookie for the new endpoint"));
    assert_ne!(new, cookie);
    assert_eq!(first[&moved], new, "the cookie names the endpoint, the same on every worker");
    for h2 in [false, true, false] {
        assert_eq!(ask(p.http, "sticky.test", "/", h2, &[&format!("Cookie: {new}")]), (moved.clone(), None));
    }
    // The others were not disturbed.
    for (up, cookie) in first.iter().filter(|(u, _)| **u != gone) {
        assert_eq!(ask(p.http, "sticky.test", "/", false, &[&format!("Cookie: {cookie}")]), (up.clone(), None));
    }
}

#[test]
fn balanced_affinity_keeps_sessions_and_moves_about_a_quarter_to_a_new_endpoint() {
    let ups: Vec<Upstream> = ["a", "b", "c", "d"].iter().map(|n| Upstream::start(n)).collect();
    let three: Vec<SocketAddr> = ups[..3].iter().map(|u| u.addr).collect();
    let all: Vec<SocketAddr> = ups.iter().map(|u| u.addr).collect();
    let m = |endpoints: &[SocketAddr]| {
        service("web", endpoints)
            + &with_nginx(
                ingress("web", Some("balanced.test"), &[("/shop", "web")]),
                &[("affinity", "cookie"), ("session-cookie-secure", "true"), ("session-cookie-path", "/shop")],
            )
    };
    let p = Proxy::start("uring", &m(&three), &[]);
    let mut sessions = Vec::new();
    for _ in 0..80 {
        let (up, cookie) = ask(p.http, "balanced.test", "/shop", false, &[]);
        let cookie = cookie.expect("a cookie");
        assert!(cookie.starts_with("INGRESSCOOKIE=") && cookie.ends_with("; Path=/shop; Secure; HttpOnly"), "{cookie}");
        sessions.push((pair(&cookie), up));
    }
    let mut per = BTreeMap::new();
    for (_, up) in &sessions {
        *per.entry(up.clone()).or_insert(0) += 1;
    }
    assert_eq!(per.len(), 3, "sessions spread over the endpoints: {per:?}");
    for (cookie, up) in sessions.iter().take(20) {
        assert_eq!(ask(p.http, "balanced.test", "/shop", true, &[&format!("Cookie: {cookie}")]), (up.clone(), None));
    }

    // A fourth endpoint joins: the sessions that move all move to it, about a quarter of them,
    // and no cookie changes.
    let g = p.generation();
    p.replace_manifests(&m(&all));
    wait_generation(&p, g);
    let mut moved = 0;
    for (cookie, up) in &sessions {
        let (now, set) = ask(p.http, "balanced.test", "/shop", false, &[&format!("Cookie: {cookie}")]);
        assert_eq!(set, None);
        if &now != up {
            assert_eq!(now, "d", "a session moves only to the new endpoint");
            moved += 1;
        }
    }
    assert!((6..=40).contains(&moved), "about 20 of 80 sessions move to the new endpoint: {moved}");
}

#[test]
fn upstream_hash_by_is_consistent_and_only_the_keys_of_a_departed_endpoint_move() {
    let ups: Vec<Upstream> = ["a", "b", "c", "d"].iter().map(|n| Upstream::start(n)).collect();
    let three: Vec<SocketAddr> = ups[..3].iter().map(|u| u.addr).collect();
    let all: Vec<SocketAddr> = ups.iter().map(|u| u.addr).collect();
    let m = |endpoints: &[SocketAddr]| {
        service("web", endpoints)
            + &service("all", &all)
            + &with_nginx(ingress("uri", Some("uri.test"), &[("/", "web")]), &[("upstream-hash-by", "$request_uri")])
            + &with_nginx(
                ingress("user", Some("user.test"), &[("/", "all")]),
                &[("upstream-hash-by", "${http_x_user}-$cookie_team")],
            )
            + &with_nginx(
                ingress("subset", Some("subset.test"), &[("/", "all")]),
                &[
                    ("upstream-hash-by", "$arg_tenant"),
                    ("upstream-hash-by-subset", "true"),
                    ("upstream-hash-by-subset-size", "2"),
                ],
            )
            // An unknown variable: a warning, and the route keeps ordinary balancing.
            + &with_nginx(ingress("bad", Some("bad.test"), &[("/", "all")]), &[("upstream-hash-by", "$nope")])
    };
    let p = Proxy::start("uring", &m(&three), &[]);

    let uris: Vec<String> = (0..90).map(|i| format!("/item/{i}?page={}", i % 7)).collect();
    let before: Vec<String> = uris.iter().map(|u| ask(p.http, "uri.test", u, false, &[]).0).collect();
    for (i, u) in uris.iter().enumerate().step_by(9) {
        assert_eq!(ask(p.http, "uri.test", u, true, &[]).0, before[i], "HTTP/2 hashes the same: {u}");
    }
    let mut per = BTreeMap::new();
    for up in &before {
        *per.entry(up.clone()).or_insert(0) += 1;
    }
    assert!(per.len() == 3 && per.values().all(|&n| n >= 12), "keys spread over the endpoints: {per:?}");

    // Combinations of fields and cookies.
    let key = ["X-User: alice", "Cookie: team=blue"];
    let alice = ask(p.http, "user.test", "/a", false, &key).0;
    for i in 0..10 {
        assert_eq!(ask(p.http, "user.test", &format!("/b{i}"), i % 2 == 1, &key).0, alice);
    }
    let users: std::collections::BTreeSet<String> = (0..40)
        .map(|i| ask(p.http, "user.test", "/", false, &[&format!("X-User: u{i}"), "Cookie: team=blue"]).0)
        .collect();
    assert!(users.len() >= 3, "{users:?}");

    // A subset of two: one tenant's requests spread over exactly two endpoints.
    let seen: std::collections::BTreeSet<String> =
        (0..40).map(|_| ask(p.http, "subset.test", "/?tenant=t1", false, &[]).0).collect();
    assert_eq!(seen.len(), 2, "{seen:?}");
    let bad: std::collections::BTreeSet<String> = (0..8).map(|_| ask(p.http, "bad.test", "/", false, &[]).0).collect();
    assert_eq!(bad.len(), 4, "round robin on the route with a bad key: {bad:?}");
    let log = p.log_text();
    assert!(log.contains("upstream-hash-by") && log.contains("$nope is not a variable"), "{log}");

    // Endpoint c leaves: exactly the keys it held move, and nothing else.
    let g = p.generation();
    p.replace_manifests(&m(&[three[0], three[1]]));
    wait_generation(&p, g);
    for (u, was) in uris.iter().zip(&before) {
        let now = ask(p.http, "uri.test", u, false, &[]).0;
        if was == "c" {
            assert_ne!(now, "c");
        } else {
            assert_eq!(&now, was, "{u} moved though its endpoint stayed");
        }
    }
}

#[test]
fn in_kubernetes_mode_a_session_follows_its_endpoint_through_endpoint_slice_changes() {
    let c = support::cluster::Cluster::start();
    let ups: Vec<Upstream> = ["a", "b"].iter().map(|n| Upstream::start(n)).collect();
    c.apply(&service("web", &[ups[0].addr, ups[1].addr]));
    c.apply(&with_nginx(
        ingress("web", Some("sticky.test"), &[("/", "web")]),
        &[("affinity", "cookie"), ("affinity-mode", "persistent")],
    ));
    let p = c.proxy(&[]);
    p.wait_for(|| get(p.http, "sticky.test", "/").status == 200, "the route");
    let (up, cookie) = ask(p.http, "sticky.test", "/", false, &[]);
    let cookie = pair(&cookie.expect("a cookie"));
    for _ in 0..5 {
        assert_eq!(ask(p.http, "sticky.test", "/", false, &[&format!("Cookie: {cookie}")]), (up.clone(), None));
    }
    // The endpoint's EndpointSlice is deleted: the session moves, with a new cookie.
    let other = ups.iter().find(|u| u.name != up).unwrap();
    let slice = if up == "a" { "web-0" } else { "web-1" };
    c.kubectl(&["delete", "endpointslice", slice]);
    p.wait_for(
        || ask(p.http, "sticky.test", "/", false, &[&format!("Cookie: {cookie}")]).0 == other.name,
        "the session to move",
    );
    let (moved, set) = ask(p.http, "sticky.test", "/", false, &[&format!("Cookie: {cookie}")]);
    assert_eq!(moved, other.name);
    let new = pair(&set.expect("a new cookie"));
    assert_ne!(new, cookie);
    assert_eq!(ask(p.http, "sticky.test", "/", true, &[&format!("Cookie: {new}")]), (other.name.clone(), None));
}
