//! ExternalName Services through the real binary, against a DNS server on loopback that the
//! tests drive: resolved before the route is published, looked up again as the TTL runs out,
//! answer changes followed live, the last answer kept while the server fails, NXDOMAIN shown
//! as the backend's problem, CNAMEs and truncated (TCP) replies; the node's own addresses
//! refused unless allowed; and the same in Kubernetes mode, including a Service switching
//! between ExternalName and endpoints.

mod support;

use std::net::{Ipv4Addr, SocketAddr, TcpListener};
use std::time::{Duration, Instant};

use support::dns::{Answer, Dns};
use support::*;

fn upstream_of(r: &Response) -> String {
    r.text().lines().find_map(|l| l.strip_prefix("upstream=")).unwrap_or("").to_string()
}

/// An ExternalName Service whose port 80 targets `target`.
fn external(name: &str, value: &str, target: u16) -> String {
    format!(
        "---\napiVersion: v1\nkind: Service\nmetadata: {{name: {name}, namespace: default}}\nspec:\n  type: ExternalName\n  externalName: \"{value}\"\n  ports: [{{name: http, port: 80, targetPort: {target}}}]\n"
    )
}

/// Two upstreams on the same port of two loopback addresses (127.0.0.2 and .3): what one
/// name resolving to either address reaches.
fn pair() -> (Upstream, Upstream, u16) {
    loop {
        // Both listeners held from the start, so no other test can take the port between.
        let first = TcpListener::bind("127.0.0.2:0").unwrap();
        let port = first.local_addr().unwrap().port();
        let second: SocketAddr = (Ipv4Addr::new(127, 0, 0, 3), port).into();
        if let Ok(second) = TcpListener::bind(second) {
            return (Upstream::serve_on("first", first), Upstream::serve_on("second", second), port);
        }
    }
}

/// Polls `cond` for up to `secs` (answers follow TTLs and retry backoffs).
fn eventually(p: &Proxy, secs: u64, what: &str, mut cond: impl FnMut() -> bool) {
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(secs) {
        if cond() {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("timed out waiting for {what}; proxy log:\n{}", p.log_text());
}

const LOCAL: [u8; 4] = [127, 0, 0, 2];

#[test]
fn names_are_resolved_with_their_ttl_and_changes_and_failures_followed() {
    let (_first, _second, port) = pair();
    let dns = Dns::start();
    let ip = |last: u8| Ipv4Addr::new(127, 0, 0, last);
    dns.set("api.ext.test", Answer::A(vec![ip(2)], 1));
    dns.set("cached.ext.test", Answer::A(vec![ip(2)], 300));
    dns.set("alias.ext.test", Answer::Cname("edge.cdn.test".into(), 1, vec![ip(3)], 1));
    dns.set("big.ext.test", Answer::Truncated(vec![ip(3)], 300));
    let mut m = String::new();
    for name in ["api", "cached", "alias", "big"] {
        m += &external(name, &format!("{name}.ext.test"), port);
        m += &ingress(name, Some(&format!("{name}.test")), &[("/", name)]);
    }
    let server = dns.addr.to_string();
    let p = Proxy::start("uring", &m, &["--dns-server", &server, "--external-name-loopback"]);

    // Published with its first answers: no 503 while the names were looked up.
    assert_eq!(upstream_of(&get(p.http, "api.test", "/")), "first");
    assert_eq!(upstream_of(&get(p.http, "cached.test", "/")), "first");
    assert_eq!(upstream_of(&get(p.http, "alias.test", "/")), "second", "through the CNAME");
    assert_eq!(upstream_of(&get(p.http, "big.test", "/")), "second", "the truncated reply asked again over TCP");
    assert!(dns.tcp_queries() >= 1);
    let out = h2c_body(p.http, "api.test", "/");
    assert!(out.contains("upstream=first"), "over HTTP/2: {out}");

    // A TTL of 1 s is looked up again every second; a TTL of 300 s is not.
    let asked = dns.queries("api.ext.test");
    eventually(&p, 15, "api.ext.test looked up again as its TTL runs out", || dns.queries("api.ext.test") >= asked + 3);
    assert_eq!(dns.queries("cached.ext.test"), 1, "a 300 s answer is kept");

    // The answer changes: the route follows, without a reload of anything else.
    dns.set("api.ext.test", Answer::A(vec![ip(3)], 1));
    eventually(&p, 10, "the new address", || upstream_of(&get(p.http, "api.test", "/")) == "second");

    // The server fails: the last answer stays in use, and the failures are reported.
    dns.set("api.ext.test", Answer::ServFail);
    let asked = dns.queries("api.ext.test");
    eventually(&p, 15, "two failed lookups", || dns.queries("api.ext.test") >= asked + 4);
    assert_eq!(upstream_of(&get(p.http, "api.test", "/")), "second");
    eventually(&p, 5, "the failure logged", || {
        p.log_text().contains("ExternalName lookup failed; its last answer stays in use")
    });
    p.wait_for(|| p.log_text().contains("answered SERVFAIL"), "answered SERVFAIL");
    assert!(p.metric("ringress_dns_lookup_failures_total").unwrap_or(0.0) >= 2.0);

    // The name goes away (NXDOMAIN is an answer): 503, and the reason shown to operators.
    dns.set("api.ext.test", Answer::NxDomain);
    eventually(&p, 20, "503 for a name that does not exist", || get(p.http, "api.test", "/").status == 503);
    let routes = get(p.admin, "x", "/debug/routes").text();
    assert!(routes.contains("the DNS lookup of api.ext.test failed: no such name"), "{routes}");

    // It comes back.
    dns.set("api.ext.test", Answer::A(vec![ip(2)], 1));
    eventually(&p, 15, "the name back", || upstream_of(&get(p.http, "api.test", "/")) == "first");
    // The other names were never disturbed.
    assert_eq!(upstream_of(&get(p.http, "cached.test", "/")), "first");
}

#[test]
fn the_node_itself_is_refused_unless_allowed_and_the_flag_disables_them_all() {
    let (_first, _second, port) = pair();
    let dns = Dns::start();
    dns.set("inside.ext.test", Answer::A(vec![LOCAL.into()], 300));
    let mut m = String::new();
    for (name, value) in
        [("inside", "inside.ext.test"), ("local", "localhost"), ("literal", "127.0.0.2"), ("bad", "not_a.name")]
    {
        m += &external(name, value, port);
        m += &ingress(name, Some(&format!("{name}.test")), &[("/", name)]);
    }
    let server = dns.addr.to_string();
    let p = Proxy::start("uring", &m, &["--dns-server", &server]);
    for host in ["inside.test", "local.test", "literal.test", "bad.test"] {
        assert_eq!(get(p.http, host, "/").status, 503, "{host}");
    }
    let log = p.log_text();
    for says in [
        "spec.externalName inside.ext.test leads only to this node's, link-local or non-unicast addresses (127.0.0.2), which are refused",
        "spec.externalName localhost names this node, which is refused",
        "spec.externalName 127.0.0.2 leads only to this node's",
        "spec.externalName \"not_a.name\" is not a DNS name",
    ] {
        assert!(log.contains(says), "{says}\n{log}");
    }

    // Allowed, they serve; with --disable-svc-external-name, none does.
    let allowed = Proxy::start("uring", &m, &["--dns-server", &server, "--external-name-loopback"]);
    assert_eq!(upstream_of(&get(allowed.http, "inside.test", "/")), "first");
    assert_eq!(upstream_of(&get(allowed.http, "literal.test", "/")), "first");
    let off = Proxy::start(
        "uring",
        &m,
        &["--dns-server", &server, "--external-name-loopback", "--disable-svc-external-name"],
    );
    assert_eq!(get(off.http, "inside.test", "/").status, 503);
    assert!(
        off.log_text().contains("is of type ExternalName, which --disable-svc-external-name refuses"),
        "{}",
        off.log_text()
    );
}

#[test]
fn in_kubernetes_mode_answers_and_service_type_changes_are_followed() {
    let c = Cluster::start();
    let (_first, _second, port) = pair();
    let pod = Upstream::start("pod");
    let dns = Dns::start();
    dns.set("api.ext.test", Answer::A(vec![LOCAL.into()], 1));
    c.apply(&(external("api", "api.ext.test", port) + &ingress("api", Some("api.test"), &[("/", "api")])));
    let server = dns.addr.to_string();
    let p = c.proxy(&["--dns-server", &server, "--external-name-loopback"]);
    assert_eq!(upstream_of(&get(p.http, "api.test", "/")), "first");

    dns.set("api.ext.test", Answer::A(vec![Ipv4Addr::new(127, 0, 0, 3)], 1));
    eventually(&p, 10, "the new address", || upstream_of(&get(p.http, "api.test", "/")) == "second");

    // Failover the other way round: the Service becomes an ordinary one with endpoints...
    c.apply(&service("api", &[pod.addr]));
    eventually(&p, 10, "the Service's endpoints", || upstream_of(&get(p.http, "api.test", "/")) == "pod");
    // ...and back to the external name.
    c.apply(&external("api", "api.ext.test", port));
    eventually(&p, 10, "the external name again", || upstream_of(&get(p.http, "api.test", "/")) == "second");
}
