//! Gateway API, end to end in Kubernetes mode: the official Standard-channel CRDs installed
//! with the real kubectl into the test API server, routes applied with kubectl, ringress
//! (`--gateway-api`) serving them to real backends. Each test mirrors the upstream
//! conformance test it is named after (conformance/tests/*.go of kubernetes-sigs/gateway-api
//! v1.6.1): the same manifests' shape and the same requests and expectations, on one shared
//! Gateway as the conformance suite shares its infrastructure, each test with host names of
//! its own.

mod support;

use std::io::Write;
use std::net::SocketAddr;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use support::cluster::Cluster;
use support::*;

/// Extra request fields.
type Fields<'a> = &'a [(&'a str, &'a str)];

struct Env {
    cluster: Cluster,
    /// infra-backend-v1..v3.
    backends: Vec<&'static Upstream>,
    http: SocketAddr,
    https: SocketAddr,
    admin: SocketAddr,
    ca: String,
}

/// Our GatewayClass, and one of another controller.
const CLASS: &str = concat!(
    support::gateway_class!(),
    "---
apiVersion: gateway.networking.k8s.io/v1
kind: GatewayClass
metadata: {name: someone-else}
spec: {controllerName: example.com/another-controller}
"
);

/// The conformance suite's infrastructure: Gateways `same-namespace` (routes of its own
/// namespace), `all-namespaces`, `secure` (HTTPS for *.secure.test) and one of another
/// controller's class; backends infra-backend-v1..v3 in `default` and web-backend in `web`.
fn env() -> &'static Env {
    static ENV: OnceLock<Env> = OnceLock::new();
    ENV.get_or_init(|| {
        let cluster = Cluster::start();
        let crds = concat!(env!("CARGO_MANIFEST_DIR"), "/deploy/gateway-api-crds/standard-install.yaml");
        cluster.kubectl(&["apply", "--server-side", "-f", crds]);
        cluster.apply("apiVersion: v1\nkind: Namespace\nmetadata: {name: web}\n---\napiVersion: v1\nkind: Namespace\nmetadata: {name: ringress}\n");
        let mut yaml = CLASS.to_string();
        let mut backends = Vec::new();
        for name in ["infra-backend-v1", "infra-backend-v2", "infra-backend-v3"] {
            let up: &'static Upstream = Box::leak(Box::new(Upstream::start(name)));
            yaml += &service(name, &[up.addr]);
            backends.push(up);
        }
        let web = Box::leak(Box::new(Upstream::start("web-backend")));
        yaml += &service("web-backend", &[web.addr]).replace("namespace: default", "namespace: web");
        let ca = support::pki::Ca::new("gateway test CA");
        let (cert, key) = ca.leaf(&["*.secure.test"]);
        yaml += &secret_data("secure-cert", &[("tls.crt", &cert), ("tls.key", &key)]).replace(
            "kind: Secret\n",
            "kind: Secret\ntype: kubernetes.io/tls\n",
        );
        yaml += "
---
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {name: same-namespace, namespace: default}
spec:
  gatewayClassName: ringress
  listeners:
  - {name: http, port: 80, protocol: HTTP, allowedRoutes: {namespaces: {from: Same}}}
---
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {name: all-namespaces, namespace: default}
spec:
  gatewayClassName: ringress
  listeners:
  - {name: http, port: 80, protocol: HTTP, allowedRoutes: {namespaces: {from: All}}}
---
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {name: secure, namespace: default}
spec:
  gatewayClassName: ringress
  listeners:
  - name: https
    port: 443
    protocol: HTTPS
    hostname: '*.secure.test'
    tls: {certificateRefs: [{name: secure-cert}]}
  - {name: plain, port: 80, protocol: HTTP, hostname: plain.secure.test}
---
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {name: not-ours, namespace: default}
spec:
  gatewayClassName: someone-else
  listeners:
  - {name: http, port: 80, protocol: HTTP}
";
        cluster.apply(&yaml);
        // Started by a thread that lives as long as the test process, and killed with it.
        let (tx, rx) = std::sync::mpsc::channel();
        let kubeconfig = cluster.kubeconfig.clone();
        std::thread::spawn(move || {
            let p = Proxy::start_kube_with(
                &kubeconfig,
                &[
                    "--gateway-api",
                    "--publish-address",
                    "192.0.2.80",
                    "--election-lease-seconds",
                    "3",
                    "--lb-address",
                    "127.0.0.1",
                ],
                true,
                |cmd| {
                    use std::os::unix::process::CommandExt;
                    // SAFETY: prctl only, in the child before exec.
                    unsafe {
                        cmd.pre_exec(|| {
                            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
                            Ok(())
                        });
                    }
                },
            );
            tx.send((p.http, p.https, p.admin)).unwrap();
            let _keep = p;
            loop {
                std::thread::park();
            }
        });
        let (http, https, admin) = rx.recv().expect("ringress started");
        Env { cluster, backends, http, https, admin, ca: ca.pem.clone() }
    })
}

/// A request with extra fields; the response.
fn request(method: &str, host: &str, path: &str, fields: &[(&str, &str)]) -> Response {
    let mut r = format!("{method} {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n");
    for (n, v) in fields {
        r += &format!("{n}: {v}\r\n");
    }
    r += "\r\n";
    raw(env().http, r.as_bytes()).expect("a response")
}

/// Which backend answered (the echo's `upstream=` line).
fn backend(r: &Response) -> String {
    r.text().lines().find_map(|l| l.strip_prefix("upstream=")).unwrap_or("").to_string()
}

/// The request the backend saw: its `header name: value` lines.
fn seen(r: &Response, name: &str) -> Option<String> {
    let prefix = format!("header {}: ", name.to_ascii_lowercase());
    r.text().lines().find_map(|l| l.strip_prefix(&prefix).map(str::to_string))
}

fn apply(yaml: &str) {
    env().cluster.apply(yaml);
}

/// Polls until `cond` holds of the response to `host` `path` (10 s).
fn eventually(host: &str, path: &str, cond: impl Fn(&Response) -> bool) -> Response {
    let start = Instant::now();
    loop {
        let r = request("GET", host, path, &[]);
        if cond(&r) {
            return r;
        }
        assert!(start.elapsed() < Duration::from_secs(10), "{host}{path}: still {} {}", r.status, r.text());
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A route is served once its host answers something other than 404.
fn served(host: &str, path: &str) {
    eventually(host, path, |r| r.status != 404);
}

/// `kubectl get` with a JSONPath, polled until it gives `want` (10 s).
fn status_is(kind_name: &str, namespace: &str, jsonpath: &str, want: &str) {
    let start = Instant::now();
    loop {
        let (_, out, _) =
            env().cluster.try_kubectl(&["get", kind_name, "-n", namespace, "-o", &format!("jsonpath={jsonpath}")], "");
        if out.trim() == want {
            return;
        }
        assert!(start.elapsed() < Duration::from_secs(10), "{kind_name} {jsonpath}: {out:?}, want {want:?}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// GETs `https://host/` on `port` of 127.0.0.1 (ringress's HTTPS port, or a Gateway
/// listener's own) with curl, trusting `ca`, until the body contains `want` (10 s).
fn https_until(port: u16, ca: &std::path::Path, host: &str, want: &str) {
    let (resolve, url) = (format!("{host}:{port}:127.0.0.1"), format!("https://{host}:{port}/"));
    let start = Instant::now();
    loop {
        let ca = ca.to_str().unwrap();
        let (ok, out, err) =
            run(std::process::Command::new("curl").args(["-sS", "--cacert", ca, "--resolve", &resolve, &url]));
        if ok && out.contains(want) {
            return;
        }
        assert!(start.elapsed() < Duration::from_secs(10), "{url}: {out} {err}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn condition(type_: &str, field: &str) -> String {
    format!("{{.status.parents[0].conditions[?(@.type==\"{type_}\")].{field}}}")
}

fn route(name: &str, host: &str, rules: &str) -> String {
    format!(
        "---\napiVersion: gateway.networking.k8s.io/v1\nkind: HTTPRoute\nmetadata: {{name: {name}, namespace: default}}\nspec:\n  parentRefs: [{{name: same-namespace}}]\n  hostnames: [{host}]\n  rules:\n{rules}"
    )
}

fn to(backend: &str) -> String {
    format!("    backendRefs: [{{name: {backend}, port: 80}}]\n")
}

#[test]
fn gateway_class_and_gateways_are_accepted_and_programmed() {
    // GatewayObservedGenerationBump / GatewayClassObservedGenerationBump / GatewayWithAttachedRoutes
    let e = env();
    status_is("gatewayclass/ringress", "default", "{.status.conditions[?(@.type==\"Accepted\")].status}", "True");
    status_is("gatewayclass/someone-else", "default", "{.status.conditions}", "");
    status_is("gateway/same-namespace", "default", "{.status.conditions[?(@.type==\"Programmed\")].status}", "True");
    status_is("gateway/same-namespace", "default", "{.status.addresses[0].value}", "192.0.2.80");
    status_is(
        "gateway/secure",
        "default",
        "{.status.listeners[0].conditions[?(@.type==\"ResolvedRefs\")].status}",
        "True",
    );
    status_is(
        "gateway/same-namespace",
        "default",
        "{.status.listeners[0].supportedKinds[*].kind}",
        "HTTPRoute GRPCRoute",
    );
    status_is("gateway/not-ours", "default", "{.status.conditions}", "");
    let gen = e.cluster.kubectl(&["get", "gateway/secure", "-o", "jsonpath={.metadata.generation}"]);
    status_is(
        "gateway/secure",
        "default",
        "{.status.conditions[?(@.type==\"Accepted\")].observedGeneration}",
        gen.trim(),
    );
    assert!(get(e.admin, "x", "/readyz").status == 200);
    e.cluster.assert_rbac_allows(&["deploy/base/rbac.yaml", "deploy/gateway-api/rbac.yaml"]);
}

#[test]
fn httproute_simple_same_namespace() {
    apply(&route("simple", "simple.test", &format!("  - {}", to("infra-backend-v1").trim_start())));
    let r = eventually("simple.test", "/", |r| r.status == 200);
    assert_eq!(backend(&r), "infra-backend-v1");
    status_is("httproute/simple", "default", &condition("Accepted", "status"), "True");
    status_is("httproute/simple", "default", &condition("ResolvedRefs", "status"), "True");
    status_is("httproute/simple", "default", "{.status.parents[0].controllerName}", "ringress.dev/gateway-controller");
}

#[test]
fn httproute_matching() {
    let rules = format!(
        "  - matches: [{{path: {{type: PathPrefix, value: /}}}}]\n{}  - matches: [{{path: {{type: PathPrefix, value: /v2}}}}, {{headers: [{{name: version, value: two}}]}}]\n{}",
        to("infra-backend-v1"),
        to("infra-backend-v2")
    );
    apply(&route("matching", "matching.test", &rules));
    served("matching.test", "/");
    for (path, fields, want) in [
        ("/", &[][..], "infra-backend-v1"),
        ("/example", &[], "infra-backend-v1"),
        ("/v2", &[], "infra-backend-v2"),
        ("/v2/example", &[], "infra-backend-v2"),
        ("/", &[("version", "two")], "infra-backend-v2"),
        ("/v2example", &[], "infra-backend-v1"),
        ("/foo/v2/example", &[], "infra-backend-v1"),
    ] {
        let r = request("GET", "matching.test", path, fields);
        assert_eq!(backend(&r), want, "{path} {fields:?}");
    }
}

#[test]
fn httproute_exact_path_matching() {
    let rules = format!(
        "  - matches: [{{path: {{type: Exact, value: /one}}}}]\n{}  - matches: [{{path: {{type: Exact, value: /two}}}}]\n{}",
        to("infra-backend-v1"),
        to("infra-backend-v2")
    );
    apply(&route("exact", "exact.test", &rules));
    served("exact.test", "/one");
    assert_eq!(backend(&request("GET", "exact.test", "/one", &[])), "infra-backend-v1");
    assert_eq!(backend(&request("GET", "exact.test", "/two", &[])), "infra-backend-v2");
    for miss in ["/", "/one/example", "/two/", "/Two"] {
        assert_eq!(request("GET", "exact.test", miss, &[]).status, 404, "{miss}");
    }
}

#[test]
fn httproute_header_matching() {
    let m = |headers: &str| format!("  - matches: [{{headers: [{headers}]}}]\n");
    let rules = [
        m("{name: version, value: one}") + &to("infra-backend-v1"),
        m("{name: version, value: two}") + &to("infra-backend-v2"),
        m("{name: version, value: two}, {name: color, value: orange}") + &to("infra-backend-v1"),
        m("{name: color, value: blue}") + &to("infra-backend-v1"),
        m("{name: color, value: green}") + &to("infra-backend-v1"),
        m("{name: color, value: red}") + &to("infra-backend-v2"),
        m("{name: color, value: yellow}") + &to("infra-backend-v2"),
        m("{name: x-regex, type: RegularExpression, value: '^[a-z]+-[0-9]+$'}") + &to("infra-backend-v3"),
    ]
    .concat();
    apply(&route("headers", "headers.test", &rules));
    eventually("headers.test", "/", |r| r.status == 404 || r.status == 200);
    std::thread::sleep(Duration::from_millis(300));
    let cases: &[(&[(&str, &str)], &str)] = &[
        (&[("version", "one")], "infra-backend-v1"),
        (&[("version", "two")], "infra-backend-v2"),
        (&[("version", "two"), ("color", "orange")], "infra-backend-v1"),
        (&[("version", "two"), ("color", "blue")], "infra-backend-v2"),
        (&[("color", "blue")], "infra-backend-v1"),
        (&[("color", "red")], "infra-backend-v2"),
        (&[("color", "yellow")], "infra-backend-v2"),
        // Names are not case-sensitive; values are.
        (&[("VERSION", "one")], "infra-backend-v1"),
        (&[("x-regex", "abc-123")], "infra-backend-v3"),
    ];
    for (fields, want) in cases {
        let r = request("GET", "headers.test", "/", fields);
        assert_eq!(backend(&r), *want, "{fields:?}");
    }
    for fields in [&[("version", "ONE")][..], &[("color", "purple")], &[("x-regex", "abc-12x")], &[]] {
        assert_eq!(request("GET", "headers.test", "/", fields).status, 404, "{fields:?}");
    }
}

#[test]
fn httproute_query_param_matching() {
    let q = |params: &str| format!("  - matches: [{{queryParams: [{params}]}}]\n");
    let rules = [
        q("{name: animal, value: whale}") + &to("infra-backend-v1"),
        q("{name: animal, value: dolphin}") + &to("infra-backend-v2"),
        q("{name: animal, value: dolphin}, {name: color, value: blue}") + &to("infra-backend-v3"),
        "  - matches: [{path: {type: PathPrefix, value: /path1}, queryParams: [{name: animal, value: whale}]}]\n"
            .to_string()
            + &to("infra-backend-v1"),
        "  - matches: [{headers: [{name: version, value: one}], queryParams: [{name: animal, value: whale}]}]\n"
            .to_string()
            + &to("infra-backend-v2"),
    ]
    .concat();
    apply(&route("query", "query.test", &rules));
    eventually("query.test", "/?animal=whale", |r| r.status == 200);
    let cases: &[(&str, Fields, &str)] = &[
        ("/?animal=whale", &[], "infra-backend-v1"),
        ("/?animal=dolphin", &[], "infra-backend-v2"),
        ("/?animal=dolphin&color=blue", &[], "infra-backend-v3"),
        ("/?color=blue&animal=dolphin", &[], "infra-backend-v3"),
        ("/path1?animal=whale", &[], "infra-backend-v1"),
        ("/?animal=whale", &[("version", "one")], "infra-backend-v2"),
    ];
    for (path, fields, want) in cases {
        assert_eq!(backend(&request("GET", "query.test", path, fields)), *want, "{path} {fields:?}");
    }
    for miss in ["/?animal=Whale", "/?ANIMAL=whale", "/", "/?animal=shark"] {
        assert_eq!(request("GET", "query.test", miss, &[]).status, 404, "{miss}");
    }
}

#[test]
fn httproute_method_matching() {
    let rules = [
        "  - matches: [{method: POST}]\n".to_string() + &to("infra-backend-v1"),
        "  - matches: [{method: GET}]\n".to_string() + &to("infra-backend-v2"),
        "  - matches: [{path: {type: PathPrefix, value: /path1}, method: GET}]\n".to_string() + &to("infra-backend-v1"),
        "  - matches: [{headers: [{name: version, value: one}], method: PUT}]\n".to_string() + &to("infra-backend-v2"),
        "  - matches: [{headers: [{name: version, value: two}]}]\n".to_string() + &to("infra-backend-v3"),
    ]
    .concat();
    apply(&route("method", "method.test", &rules));
    eventually("method.test", "/", |r| r.status == 200);
    let cases: &[(&str, &str, Fields, &str)] = &[
        ("POST", "/", &[], "infra-backend-v1"),
        ("GET", "/", &[], "infra-backend-v2"),
        ("GET", "/path1", &[], "infra-backend-v1"),
        ("PUT", "/", &[("version", "one")], "infra-backend-v2"),
        // A method match outranks a header match.
        ("GET", "/", &[("version", "two")], "infra-backend-v2"),
        ("DELETE", "/", &[("version", "two")], "infra-backend-v3"),
    ];
    for (method, path, fields, want) in cases {
        assert_eq!(backend(&request(method, "method.test", path, fields)), *want, "{method} {path} {fields:?}");
    }
    assert_eq!(request("HEAD", "method.test", "/", &[]).status, 404);
    assert_eq!(request("PUT", "method.test", "/", &[]).status, 404);
}

#[test]
fn httproute_request_header_modifier() {
    let f = |kind: &str| format!("    filters: [{{type: RequestHeaderModifier, requestHeaderModifier: {kind}}}]\n");
    let rules = [
        "  - matches: [{path: {type: PathPrefix, value: /set}}]\n".to_string()
            + &f("{set: [{name: X-Header-Set, value: set-overwrites-values}]}")
            + &to("infra-backend-v1"),
        "  - matches: [{path: {type: PathPrefix, value: /add}}]\n".to_string()
            + &f("{add: [{name: X-Header-Add, value: add-appends-values}]}")
            + &to("infra-backend-v1"),
        "  - matches: [{path: {type: PathPrefix, value: /remove}}]\n".to_string()
            + &f("{remove: [X-Header-Remove]}")
            + &to("infra-backend-v1"),
    ]
    .concat();
    apply(&route("reqheaders", "reqheaders.test", &rules));
    served("reqheaders.test", "/set");
    let r = request("GET", "reqheaders.test", "/set", &[("Some-Other-Header", "val")]);
    assert_eq!(seen(&r, "x-header-set").as_deref(), Some("set-overwrites-values"));
    assert_eq!(seen(&r, "some-other-header").as_deref(), Some("val"));
    let r = request("GET", "reqheaders.test", "/set", &[("X-Header-Set", "some-other-value")]);
    assert_eq!(seen(&r, "x-header-set").as_deref(), Some("set-overwrites-values"));
    let r = request("GET", "reqheaders.test", "/add", &[]);
    assert_eq!(seen(&r, "x-header-add").as_deref(), Some("add-appends-values"));
    let r = request("GET", "reqheaders.test", "/add", &[("X-Header-Add", "some-value")]);
    assert_eq!(seen(&r, "x-header-add").as_deref(), Some("some-value,add-appends-values"));
    let r = request("GET", "reqheaders.test", "/remove", &[("X-Header-Remove", "val"), ("Keep", "yes")]);
    assert_eq!(seen(&r, "x-header-remove"), None);
    assert_eq!(seen(&r, "keep").as_deref(), Some("yes"));
}

#[test]
fn httproute_response_header_modifier() {
    let rules = "  - filters:\n    - type: ResponseHeaderModifier\n      responseHeaderModifier:\n        set: [{name: X-Upstream, value: replaced}]\n        add: [{name: X-Header-Add, value: added}]\n        remove: [Content-Type]\n".to_string()
        + &to("infra-backend-v1");
    apply(&route("respheaders", "respheaders.test", &rules));
    let r = eventually("respheaders.test", "/", |r| r.status == 200);
    assert_eq!(r.header("x-upstream"), Some("replaced"));
    assert_eq!(r.header("x-header-add"), Some("added"));
    assert_eq!(r.header("content-type"), None);
}

#[test]
fn httproute_redirect_host_and_status() {
    // With HTTPRouteRedirectPath, HTTPRouteRedirectPort, HTTPRouteRedirectScheme and the
    // 303/307/308 tests: each part of the Location, and the status.
    let redirect = |m: &str, r: &str| {
        format!("  - matches: [{{path: {{type: PathPrefix, value: {m}}}}}]\n    filters: [{{type: RequestRedirect, requestRedirect: {r}}}]\n")
    };
    let rules = [
        redirect("/hostname-redirect", "{hostname: example.org}"),
        redirect("/host-and-status", "{hostname: example.org, statusCode: 301}"),
        redirect("/prefix", "{path: {type: ReplacePrefixMatch, replacePrefixMatch: /replacement-prefix}}"),
        redirect("/full", "{path: {type: ReplaceFullPath, replaceFullPath: /replacement-full}}"),
        redirect("/port", "{port: 8083}"),
        redirect("/scheme", "{scheme: https}"),
        redirect("/scheme-and-port", "{scheme: https, port: 8443}"),
        redirect("/see-other", "{statusCode: 303}"),
        redirect("/temporary", "{statusCode: 307}"),
        redirect("/permanent", "{statusCode: 308}"),
    ]
    .concat();
    apply(&route("redirects", "redirect.test", &rules));
    served("redirect.test", "/hostname-redirect");
    for (path, status, location) in [
        ("/hostname-redirect", 302, "http://example.org/hostname-redirect"),
        ("/host-and-status", 301, "http://example.org/host-and-status"),
        ("/prefix/one?x=1", 302, "http://redirect.test/replacement-prefix/one?x=1"),
        ("/full/one/two", 302, "http://redirect.test/replacement-full"),
        ("/port", 302, "http://redirect.test:8083/port"),
        ("/scheme", 302, "https://redirect.test/scheme"),
        ("/scheme-and-port", 302, "https://redirect.test:8443/scheme-and-port"),
        ("/see-other", 303, "http://redirect.test/see-other"),
        ("/temporary", 307, "http://redirect.test/temporary"),
        ("/permanent", 308, "http://redirect.test/permanent"),
    ] {
        let r = request("GET", "redirect.test", path, &[]);
        assert_eq!((r.status, r.header("location")), (status, Some(location)), "{path}");
    }
    // The request's own port stays when the filter sets neither scheme nor port.
    let r = request("GET", "redirect.test:8080", "/hostname-redirect", &[]);
    assert_eq!(r.header("location"), Some("http://example.org:8080/hostname-redirect"));
}

#[test]
fn httproute_rewrite_path() {
    let rewrite = |m: &str, p: &str| {
        format!("  - matches: [{{path: {{type: PathPrefix, value: {m}}}}}]\n    filters: [{{type: URLRewrite, urlRewrite: {{path: {p}}}}}]\n")
            + &to("infra-backend-v1")
    };
    let rules = [
        rewrite("/prefix/one", "{type: ReplacePrefixMatch, replacePrefixMatch: /one}"),
        rewrite("/strip-prefix", "{type: ReplacePrefixMatch, replacePrefixMatch: /}"),
        rewrite("/full/one", "{type: ReplaceFullPath, replaceFullPath: /one}"),
        rewrite("/full/rewrite-path-and-modify-headers", "{type: ReplaceFullPath, replaceFullPath: /test}"),
    ]
    .concat();
    apply(&route("rewrite", "rewrite.test", &rules));
    served("rewrite.test", "/prefix/one");
    let path = |r: &Response| r.text().lines().find_map(|l| l.strip_prefix("path=")).unwrap_or("").to_string();
    for (from, want) in [
        ("/prefix/one/two", "/one/two"),
        ("/prefix/one", "/one"),
        ("/strip-prefix/three", "/three"),
        ("/strip-prefix", "/"),
        ("/full/one/two", "/one"),
        ("/full/one?q=1", "/one?q=1"),
    ] {
        assert_eq!(path(&request("GET", "rewrite.test", from, &[])), want, "{from}");
    }
}

#[test]
fn httproute_rewrite_host() {
    let rules = "  - filters: [{type: URLRewrite, urlRewrite: {hostname: one.example.org}}]\n".to_string()
        + &to("infra-backend-v1");
    apply(&route("rewritehost", "rewritehost.test", &rules));
    let r = eventually("rewritehost.test", "/", |r| r.status == 200);
    assert_eq!(seen(&r, "host").as_deref(), Some("one.example.org"));
}

#[test]
fn httproute_weight() {
    let rules = "  - backendRefs:\n    - {name: infra-backend-v1, port: 80, weight: 70}\n    - {name: infra-backend-v2, port: 80, weight: 30}\n    - {name: infra-backend-v3, port: 80, weight: 0}\n";
    apply(&route("weight", "weight.test", rules));
    served("weight.test", "/");
    // Let a partial first build settle: counted from one published table.
    std::thread::sleep(Duration::from_millis(300));
    let mut counts = std::collections::BTreeMap::new();
    for _ in 0..200 {
        *counts.entry(backend(&request("GET", "weight.test", "/", &[]))).or_insert(0) += 1;
    }
    let v1 = counts.get("infra-backend-v1").copied().unwrap_or(0);
    let v2 = counts.get("infra-backend-v2").copied().unwrap_or(0);
    assert_eq!(v1 + v2, 200, "{counts:?}");
    assert!((130..=150).contains(&v1), "70% of 200 (other tests share nothing with this route): {counts:?}");
}

#[test]
fn httproute_invalid_nonexistent_backendref() {
    let rules = "  - backendRefs: [{name: nonexistent, port: 80}]\n";
    apply(&route("nonexistent", "nonexistent.test", rules));
    status_is("httproute/nonexistent", "default", &condition("ResolvedRefs", "reason"), "BackendNotFound");
    status_is("httproute/nonexistent", "default", &condition("Accepted", "status"), "True");
    assert_eq!(eventually("nonexistent.test", "/", |r| r.status != 404).status, 500);
}

#[test]
fn httproute_invalid_backendref_unknown_kind() {
    let rules = "  - backendRefs: [{group: unknown.example.com, kind: Unknown, name: infra-backend-v1, port: 80}]\n";
    apply(&route("unknownkind", "unknownkind.test", rules));
    status_is("httproute/unknownkind", "default", &condition("ResolvedRefs", "reason"), "InvalidKind");
    assert_eq!(eventually("unknownkind.test", "/", |r| r.status != 404).status, 500);
}

#[test]
fn httproute_invalid_cross_namespace_backend_ref_and_reference_grant() {
    // HTTPRouteInvalidCrossNamespaceBackendRef, then HTTPRouteReferenceGrant once a grant
    // exists; and HTTPRouteInvalidReferenceGrant (a grant for another Service) first.
    let rules = "  - backendRefs: [{name: web-backend, namespace: web, port: 80}]\n";
    apply(&route("crossns", "crossns.test", rules));
    status_is("httproute/crossns", "default", &condition("ResolvedRefs", "reason"), "RefNotPermitted");
    assert_eq!(eventually("crossns.test", "/", |r| r.status != 404).status, 500);
    let grant = |to: &str| {
        format!("apiVersion: gateway.networking.k8s.io/v1beta1\nkind: ReferenceGrant\nmetadata: {{name: from-default, namespace: web}}\nspec:\n  from: [{{group: gateway.networking.k8s.io, kind: HTTPRoute, namespace: default}}]\n  to: [{{group: '', kind: Service, name: {to}}}]\n")
    };
    apply(&grant("another-service"));
    std::thread::sleep(Duration::from_millis(300));
    status_is("httproute/crossns", "default", &condition("ResolvedRefs", "reason"), "RefNotPermitted");
    apply(&grant("web-backend"));
    let r = eventually("crossns.test", "/", |r| r.status == 200);
    assert_eq!(backend(&r), "web-backend");
    status_is("httproute/crossns", "default", &condition("ResolvedRefs", "status"), "True");
}

#[test]
fn httproute_cross_namespace() {
    // A route of namespace `web` on the Gateway that takes routes from all namespaces; the
    // same route on `same-namespace` is NotAllowedByListeners.
    let yaml = "apiVersion: gateway.networking.k8s.io/v1\nkind: HTTPRoute\nmetadata: {name: cross, namespace: web}\nspec:\n  parentRefs: [{name: all-namespaces, namespace: default}, {name: same-namespace, namespace: default}]\n  hostnames: [cross.test]\n  rules:\n  - backendRefs: [{name: web-backend, port: 80}]\n";
    apply(yaml);
    let r = eventually("cross.test", "/", |r| r.status == 200);
    assert_eq!(backend(&r), "web-backend");
    status_is("httproute/cross", "web", &condition("Accepted", "status"), "True");
    status_is(
        "httproute/cross",
        "web",
        "{.status.parents[1].conditions[?(@.type==\"Accepted\")].reason}",
        "NotAllowedByListeners",
    );
}

#[test]
fn httproute_hostname_intersection_and_listener_hostname_matching() {
    // The `secure` Gateway's plain listener is for plain.secure.test only.
    let yaml = "apiVersion: gateway.networking.k8s.io/v1\nkind: HTTPRoute\nmetadata: {name: intersect, namespace: default}\nspec:\n  parentRefs: [{name: secure, sectionName: plain}]\n  hostnames: [plain.secure.test, other.test]\n  rules:\n  - backendRefs: [{name: infra-backend-v2, port: 80}]\n---\napiVersion: gateway.networking.k8s.io/v1\nkind: HTTPRoute\nmetadata: {name: nointersect, namespace: default}\nspec:\n  parentRefs: [{name: secure, sectionName: plain}]\n  hostnames: [nothing.test]\n  rules:\n  - backendRefs: [{name: infra-backend-v2, port: 80}]\n---\napiVersion: gateway.networking.k8s.io/v1\nkind: HTTPRoute\nmetadata: {name: nosection, namespace: default}\nspec:\n  parentRefs: [{name: secure, sectionName: missing}]\n  rules:\n  - backendRefs: [{name: infra-backend-v2, port: 80}]\n";
    apply(yaml);
    let r = eventually("plain.secure.test", "/", |r| r.status == 200);
    assert_eq!(backend(&r), "infra-backend-v2");
    assert_eq!(request("GET", "other.test", "/", &[]).status, 404, "not a name of the listener");
    status_is("httproute/nointersect", "default", &condition("Accepted", "reason"), "NoMatchingListenerHostname");
    status_is("httproute/nosection", "default", &condition("Accepted", "reason"), "NoMatchingParent");
}

#[test]
fn httproute_https_listener() {
    let e = env();
    let yaml = "apiVersion: gateway.networking.k8s.io/v1\nkind: HTTPRoute\nmetadata: {name: secure-route, namespace: default}\nspec:\n  parentRefs: [{name: secure, sectionName: https}]\n  hostnames: [app.secure.test]\n  rules:\n  - backendRefs: [{name: infra-backend-v3, port: 80}]\n";
    apply(yaml);
    let dir = support::proxy::temp_dir();
    let ca = dir.join("ca.pem");
    std::fs::write(&ca, &e.ca).unwrap();
    https_until(env().https.port(), &ca, "app.secure.test", "upstream=infra-backend-v3");
    // Attached to the HTTPS listener only: not served over plain HTTP.
    assert_eq!(request("GET", "app.secure.test", "/", &[]).status, 404);
    status_is("gateway/secure", "default", "{.status.listeners[0].attachedRoutes}", "1");
}

#[test]
fn httproute_timeout_request() {
    let rules = "  - timeouts: {request: 500ms}\n".to_string() + &to("infra-backend-v1");
    apply(&route("timeout", "timeout.test", &rules));
    eventually("timeout.test", "/", |r| r.status == 200);
    assert_eq!(request("GET", "timeout.test", "/sleep/2000", &[]).status, 504);
    assert_eq!(request("GET", "timeout.test", "/sleep/10", &[]).status, 200);
}

#[test]
fn httproute_unsupported_filter_fails_closed() {
    // An ExtensionRef filter ringress does not know: the rule answers 500 (never without its
    // filter), the other rules serve.
    let rules = "  - matches: [{path: {type: PathPrefix, value: /extension}}]\n    filters: [{type: ExtensionRef, extensionRef: {group: example.com, kind: Magic, name: m}}]\n".to_string()
        + &to("infra-backend-v1")
        + "  - matches: [{path: {type: PathPrefix, value: /plain}}]\n"
        + &to("infra-backend-v1")
        + "  - matches: [{path: {type: PathPrefix, value: /per-backend}}]\n    backendRefs: [{name: infra-backend-v1, port: 80, filters: [{type: RequestHeaderModifier, requestHeaderModifier: {set: [{name: x-a, value: b}]}}]}]\n";
    apply(&route("extension", "extension.test", &rules));
    assert_eq!(eventually("extension.test", "/plain", |r| r.status == 200).status, 200);
    assert_eq!(request("GET", "extension.test", "/extension", &[]).status, 500);
    assert_eq!(request("GET", "extension.test", "/per-backend", &[]).status, 500, "per-backend filters refused");
    // HTTPRouteOmittedBackendRefs: a rule with no backendRefs answers 500.
    let omitted = "  - matches: [{path: {type: PathPrefix, value: /}}]\n";
    apply(&route("omitted", "omitted.test", omitted));
    assert_eq!(eventually("omitted.test", "/", |r| r.status != 404).status, 500);
    status_is("httproute/extension", "default", &condition("PartiallyInvalid", "reason"), "UnsupportedValue");
}

#[test]
fn httproute_request_mirror() {
    // Requests to /mirror go to v1, and a copy of each (bodies included, when whole) to a
    // backend of this test's own; the client gets v1's answer.
    let e = env();
    let shadow = Upstream::start("shadow");
    let rules = "  - matches: [{path: {type: PathPrefix, value: /mirror}}]\n    filters: [{type: RequestMirror, requestMirror: {backendRef: {name: shadow, port: 80}}}]\n".to_string()
        + &to("infra-backend-v1");
    apply(&(service("shadow", &[shadow.addr]) + &route("mirror", "mirror.test", &rules)));
    eventually("mirror.test", "/mirror", |r| r.status == 200);
    let v3 = &shadow;
    let before = v3.hits();
    for i in 0..10 {
        let r = raw(
            e.http,
            format!(
                "POST /mirror/{i} HTTP/1.1\r\nHost: mirror.test\r\nContent-Length: 5\r\nConnection: close\r\n\r\nhello"
            )
            .as_bytes(),
        )
        .unwrap();
        assert_eq!((r.status, backend(&r)), (200, "infra-backend-v1".to_string()));
        assert!(r.text().contains("body-len=5"), "{}", r.text());
    }
    assert!(e.backends[0].hits() > 0);
    let start = Instant::now();
    while v3.hits() < before + 10 {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "mirrored {} of 10: {}",
            v3.hits() - before,
            get(e.admin, "x", "/metrics").text().lines().filter(|l| l.contains("mirror")).collect::<Vec<_>>().join(" ")
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    // Over h2c too (the same pipeline, the HTTP/2 to HTTP/1.1 exchange).
    for i in 0..3 {
        assert!(h2c_body(e.http, "mirror.test", &format!("/mirror/h2/{i}")).contains("upstream=infra-backend-v1"));
    }
    while v3.hits() < before + 13 {
        assert!(start.elapsed() < Duration::from_secs(10), "mirrored {} of 13", v3.hits() - before);
        std::thread::sleep(Duration::from_millis(20));
    }
    // The mirror's own answers never reach the client; its copies are counted.
    let m = get(e.admin, "x", "/metrics").text();
    assert!(m.lines().any(|l| l.starts_with("ringress_mirrored_requests_total") && !l.ends_with(" 0")), "{m}");
    status_is("httproute/mirror", "default", &condition("ResolvedRefs", "status"), "True");
}

#[test]
fn httproute_observed_generation_bump_and_live_change_without_failures() {
    let e = env();
    apply(&route("live", "live.test", &format!("  - {}", to("infra-backend-v1").trim_start())));
    eventually("live.test", "/", |r| backend(r) == "infra-backend-v1");
    // Requests all along while the route moves to another backend: none fails.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let flag = stop.clone();
    let http = e.http;
    let load = std::thread::spawn(move || {
        let (mut ok, mut bad) = (0, Vec::new());
        while !flag.load(std::sync::atomic::Ordering::Relaxed) {
            let r = raw(http, b"GET / HTTP/1.1\r\nHost: live.test\r\nConnection: close\r\n\r\n");
            match r {
                Some(r) if r.status == 200 => ok += 1,
                other => bad.push(other.map(|r| r.status)),
            }
        }
        (ok, bad)
    });
    std::thread::sleep(Duration::from_millis(200));
    apply(&route("live", "live.test", &format!("  - {}", to("infra-backend-v2").trim_start())));
    eventually("live.test", "/", |r| backend(r) == "infra-backend-v2");
    std::thread::sleep(Duration::from_millis(200));
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let (ok, bad) = load.join().unwrap();
    assert!(ok > 10 && bad.is_empty(), "{ok} answered, failures: {bad:?}");
    let gen = e.cluster.kubectl(&["get", "httproute/live", "-o", "jsonpath={.metadata.generation}"]);
    assert_eq!(gen.trim(), "2");
    status_is("httproute/live", "default", &condition("Accepted", "observedGeneration"), "2");
}

#[test]
fn ingress_and_httproute_share_one_table_and_the_older_keeps_a_contested_path() {
    let ing =
        ingress("shared-ing", Some("shared.test"), &[("/", "infra-backend-v1"), ("/ingress-only", "infra-backend-v1")]);
    apply(&ing);
    eventually("shared.test", "/", |r| backend(r) == "infra-backend-v1");
    let rules = format!(
        "  - matches: [{{path: {{type: PathPrefix, value: /}}}}]\n{}  - matches: [{{path: {{type: PathPrefix, value: /route-only}}}}]\n{}  - matches: [{{path: {{type: PathPrefix, value: /}}, headers: [{{name: x-canary, value: 'yes'}}]}}]\n{}",
        to("infra-backend-v2"),
        to("infra-backend-v2"),
        to("infra-backend-v3")
    );
    apply(&route("shared-route", "shared.test", &rules));
    eventually("shared.test", "/route-only", |r| backend(r) == "infra-backend-v2");
    assert_eq!(backend(&request("GET", "shared.test", "/ingress-only", &[])), "infra-backend-v1");
    // The same path without conditions: the Ingress is older and keeps it.
    assert_eq!(backend(&request("GET", "shared.test", "/", &[])), "infra-backend-v1");
    // A route with conditions on the path comes first when they are met.
    assert_eq!(backend(&request("GET", "shared.test", "/", &[("x-canary", "yes")])), "infra-backend-v3");
    let routes = get(env().admin, "x", "/debug/routes").text();
    assert!(routes.contains("shared-route") && routes.contains("shared-ing"), "{routes}");
}

#[test]
fn tlsroute_simple_same_namespace() {
    // A TLS listener (Passthrough): connections naming the route's host reach the backend's
    // own TLS (nginx, with a certificate of another CA), untouched.
    let e = env();
    let dir = support::proxy::temp_dir();
    let backend_ca = support::pki::Ca::new("TLS backend CA");
    let (crt, key) = backend_ca.leaf(&["tls.pass.test"]);
    std::fs::write(dir.join("b.crt"), crt).unwrap();
    std::fs::write(dir.join("b.key"), key).unwrap();
    let port = free_port();
    let d = dir.display();
    let http = format!(
        "  server {{ listen 127.0.0.1:{port} ssl; ssl_certificate {d}/b.crt; ssl_certificate_key {d}/b.key;\n    location / {{ return 200 \"backend sni=$ssl_server_name\\n\"; }} }}\n"
    );
    let _nginx = support::nginx::Nginx::start(dir.clone(), &http, &[port]);
    let yaml = service("tls-backend", &[SocketAddr::from(([127, 0, 0, 1], port))])
        + "---\napiVersion: gateway.networking.k8s.io/v1\nkind: Gateway\nmetadata: {name: passthrough, namespace: default}\nspec:\n  gatewayClassName: ringress\n  listeners:\n  - {name: tls, port: 443, protocol: TLS, tls: {mode: Passthrough}}\n---\napiVersion: gateway.networking.k8s.io/v1\nkind: TLSRoute\nmetadata: {name: gateway-conformance-infra-test, namespace: default}\nspec:\n  parentRefs: [{name: passthrough}]\n  hostnames: [tls.pass.test]\n  rules:\n  - backendRefs: [{name: tls-backend, port: 80}]\n";
    apply(&yaml);
    let ca = backend_ca.write(&dir, "backend-ca.pem");
    https_until(env().https.port(), &ca, "tls.pass.test", "backend sni=tls.pass.test");
    status_is("tlsroute/gateway-conformance-infra-test", "default", &condition("Accepted", "status"), "True");
    // Weights split connections too; a share that does not resolve is refused (closed).
    apply("apiVersion: gateway.networking.k8s.io/v1\nkind: TLSRoute\nmetadata: {name: weighted, namespace: default}\nspec:\n  parentRefs: [{name: passthrough}]\n  hostnames: [weighted.pass.test]\n  rules:\n  - backendRefs: [{name: tls-backend, port: 80, weight: 1}, {name: missing, port: 80, weight: 1}]\n");
    status_is("tlsroute/weighted", "default", &condition("ResolvedRefs", "reason"), "BackendNotFound");
    let port = e.https.port();
    let (resolve, url) =
        (format!("weighted.pass.test:{port}:127.0.0.1"), format!("https://weighted.pass.test:{port}/"));
    let attempt = || run(std::process::Command::new("curl").args(["-sSk", "--resolve", &resolve, &url])).1;
    let start = Instant::now();
    while !attempt().contains("backend sni=weighted.pass.test") {
        assert!(start.elapsed() < Duration::from_secs(10), "the weighted TLSRoute is not served");
        std::thread::sleep(Duration::from_millis(50));
    }
    let answered = (0..20).filter(|_| attempt().contains("backend sni=weighted.pass.test")).count();
    assert_eq!(answered, 10, "half the connections to the resolving backend, half refused");
    status_is("gateway/passthrough", "default", "{.status.listeners[0].supportedKinds[*].kind}", "TLSRoute");
    // A TLS listener on a port of its own: its routes are passed through there, and only there.
    let own = free_port();
    apply(&format!("---\napiVersion: gateway.networking.k8s.io/v1\nkind: Gateway\nmetadata: {{name: passthrough-own-port, namespace: default}}\nspec:\n  gatewayClassName: ringress\n  listeners:\n  - {{name: tls, port: {own}, protocol: TLS, tls: {{mode: Passthrough}}}}\n---\napiVersion: gateway.networking.k8s.io/v1\nkind: TLSRoute\nmetadata: {{name: own-port, namespace: default}}\nspec:\n  parentRefs: [{{name: passthrough-own-port}}]\n  hostnames: [own.pass.test]\n  rules:\n  - backendRefs: [{{name: tls-backend, port: 80}}]\n"));
    let on = |port: u16| {
        let (resolve, url) = (format!("own.pass.test:{port}:127.0.0.1"), format!("https://own.pass.test:{port}/"));
        run(std::process::Command::new("curl").args(["-sSk", "--resolve", &resolve, &url])).1
    };
    let start = Instant::now();
    while !on(own).contains("backend sni=own.pass.test") {
        assert!(start.elapsed() < Duration::from_secs(10), "the TLSRoute on port {own} is not passed through");
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(!on(e.https.port()).contains("backend sni="), "not passed through on ringress's own HTTPS port");
}

#[test]
fn tcproute_simple() {
    // A TCP listener: its port forwarded to the route's Service, whatever the bytes.
    let e = env();
    let port = free_port();
    let yaml = format!("---\napiVersion: gateway.networking.k8s.io/v1\nkind: Gateway\nmetadata: {{name: tcp, namespace: default}}\nspec:\n  gatewayClassName: ringress\n  listeners:\n  - {{name: tcp, port: {port}, protocol: TCP}}\n---\napiVersion: gateway.networking.k8s.io/v1\nkind: TCPRoute\nmetadata: {{name: tcp-app, namespace: default}}\nspec:\n  parentRefs: [{{name: tcp}}]\n  rules:\n  - backendRefs: [{{name: infra-backend-v2, port: 80}}]\n");
    apply(&yaml);
    let at = SocketAddr::from(([127, 0, 0, 1], port));
    let start = Instant::now();
    loop {
        let open = std::net::TcpStream::connect(at).is_ok();
        if let Some(r) =
            open.then(|| raw(at, b"GET /over-tcp HTTP/1.1\r\nHost: anything\r\nConnection: close\r\n\r\n")).flatten()
        {
            if r.status == 200 {
                assert_eq!(backend(&r), "infra-backend-v2");
                assert!(r.text().contains("path=/over-tcp"), "{}", r.text());
                break;
            }
        }
        assert!(start.elapsed() < Duration::from_secs(10), "port {port} forwarded");
        std::thread::sleep(Duration::from_millis(100));
    }
    status_is("tcproute/tcp-app", "default", &condition("Accepted", "status"), "True");
    status_is("gateway/tcp", "default", "{.status.listeners[0].attachedRoutes}", "1");
    let _ = e;
}

#[test]
fn httproute_listener_hostname_matching() {
    let yaml = "apiVersion: gateway.networking.k8s.io/v1\nkind: Gateway\nmetadata: {name: httproute-listener-hostname-matching, namespace: default}\nspec:\n  gatewayClassName: ringress\n  listeners:\n  - {name: listener-1, port: 80, protocol: HTTP, hostname: bar.com}\n  - {name: listener-2, port: 80, protocol: HTTP, hostname: foo.bar.com}\n  - {name: listener-3, port: 80, protocol: HTTP, hostname: '*.bar.com'}\n  - {name: listener-4, port: 80, protocol: HTTP, hostname: '*.foo.com'}\n"
        .to_string()
        + &[("backend-v1", "[listener-1]", "infra-backend-v1"), ("backend-v2", "[listener-2]", "infra-backend-v2"), ("backend-v3", "[listener-3, listener-4]", "infra-backend-v3")]
            .iter()
            .map(|(name, sections, backend)| {
                let parents: Vec<String> = sections
                    .trim_matches(|c| c == '[' || c == ']')
                    .split(", ")
                    .map(|s| format!("{{name: httproute-listener-hostname-matching, sectionName: {s}}}"))
                    .collect();
                format!("---\napiVersion: gateway.networking.k8s.io/v1\nkind: HTTPRoute\nmetadata: {{name: {name}, namespace: default}}\nspec:\n  parentRefs: [{}]\n  rules:\n  - backendRefs: [{{name: {backend}, port: 80}}]\n", parents.join(", "))
            })
            .collect::<String>();
    apply(&yaml);
    eventually("multiple.prefixes.foo.com", "/", |r| r.status == 200);
    for (host, want) in [
        ("bar.com", "infra-backend-v1"),
        ("foo.bar.com", "infra-backend-v2"),
        ("baz.bar.com", "infra-backend-v3"),
        ("boo.bar.com", "infra-backend-v3"),
        ("multiple.prefixes.bar.com", "infra-backend-v3"),
        ("multiple.prefixes.foo.com", "infra-backend-v3"),
    ] {
        assert_eq!(backend(&request("GET", host, "/", &[])), want, "{host}");
    }
    for host in ["foo.com", "no.matching.host"] {
        assert_eq!(request("GET", host, "/", &[]).status, 404, "{host}");
    }
    status_is("gateway/httproute-listener-hostname-matching", "default", "{.status.listeners[2].attachedRoutes}", "1");
}

#[test]
fn httproute_path_match_order() {
    let m = |t: &str, v: &str, b: &str| format!("  - matches: [{{path: {{type: {t}, value: {v}}}}}]\n") + &to(b);
    let rules = [
        m("Exact", "/match", "infra-backend-v1"),
        m("Exact", "/match/exact", "infra-backend-v2"),
        m("Exact", "/match/exact/one", "infra-backend-v3"),
        m("PathPrefix", "/match/", "infra-backend-v3"),
        m("PathPrefix", "/match/prefix/", "infra-backend-v1"),
        m("PathPrefix", "/match/prefix/one", "infra-backend-v2"),
    ]
    .concat();
    apply(&route("path-matching-order", "order.test", &rules));
    served("order.test", "/match");
    for (path, want) in [
        ("/match/exact/one", "infra-backend-v3"),
        ("/match/exact", "infra-backend-v2"),
        ("/match", "infra-backend-v1"),
        ("/match/prefix/one/any", "infra-backend-v2"),
        ("/match/prefix/any", "infra-backend-v1"),
        ("/match/any", "infra-backend-v3"),
    ] {
        assert_eq!(backend(&request("GET", "order.test", path, &[])), want, "{path}");
    }
}

#[test]
fn httproute_matching_across_routes() {
    // Two routes for one host name: the rules of both, in one precedence order; the second
    // route's host is only one of the first's.
    let part = |name: &str, hosts: &str, rules: &str| {
        format!("---\napiVersion: gateway.networking.k8s.io/v1\nkind: HTTPRoute\nmetadata: {{name: {name}, namespace: default}}\nspec:\n  parentRefs: [{{name: same-namespace}}]\n  hostnames: [{hosts}]\n  rules:\n{rules}")
    };
    let first = "  - matches: [{path: {type: PathPrefix, value: /}}, {headers: [{name: version, value: one}]}]\n"
        .to_string()
        + &to("infra-backend-v1");
    let second = "  - matches: [{path: {type: PathPrefix, value: /v2}}, {headers: [{name: version, value: two}]}]\n"
        .to_string()
        + &to("infra-backend-v2");
    apply(
        &(part("matching-part1", "across.test, across.net", &first) + &part("matching-part2", "across.test", &second)),
    );
    eventually("across.test", "/v2", |r| backend(r) == "infra-backend-v2");
    for (host, path, fields, want) in [
        ("across.test", "/", &[][..], "infra-backend-v1"),
        ("across.test", "/example", &[], "infra-backend-v1"),
        ("across.net", "/example", &[], "infra-backend-v1"),
        ("across.test", "/example", &[("Version", "one")], "infra-backend-v1"),
        ("across.test", "/v2", &[], "infra-backend-v2"),
        ("across.net", "/v2", &[], "infra-backend-v1"),
        ("across.test", "/v2/example", &[], "infra-backend-v2"),
        ("across.test", "/", &[("Version", "two")], "infra-backend-v2"),
    ] {
        assert_eq!(backend(&request("GET", host, path, fields)), want, "{host}{path} {fields:?}");
    }
}

#[test]
fn gateway_invalid_route_kind_and_httproute_disallowed_kind() {
    // A listener listing only a kind it cannot take: ResolvedRefs False (InvalidRouteKinds),
    // no supported kinds; one taking TLSRoutes only: an HTTPRoute is NotAllowedByListeners.
    let yaml = "apiVersion: gateway.networking.k8s.io/v1\nkind: Gateway\nmetadata: {name: kinds, namespace: default}\nspec:\n  gatewayClassName: ringress\n  listeners:\n  - {name: bad, port: 80, protocol: HTTP, hostname: bad.kinds.test, allowedRoutes: {kinds: [{kind: FooRoute}]}}\n  - {name: tls-only, port: 443, protocol: TLS, tls: {mode: Passthrough}, allowedRoutes: {kinds: [{kind: TLSRoute}]}}\n---\napiVersion: gateway.networking.k8s.io/v1\nkind: HTTPRoute\nmetadata: {name: disallowed-kind, namespace: default}\nspec:\n  parentRefs: [{name: kinds, sectionName: tls-only}]\n  hostnames: [disallowed.kinds.test]\n  rules:\n  - backendRefs: [{name: infra-backend-v1, port: 80}]\n";
    apply(yaml);
    let l = |i: usize, t: &str, f: &str| format!("{{.status.listeners[{i}].conditions[?(@.type==\"{t}\")].{f}}}");
    status_is("gateway/kinds", "default", &l(0, "ResolvedRefs", "reason"), "InvalidRouteKinds");
    status_is("gateway/kinds", "default", "{.status.listeners[0].supportedKinds}", "[]");
    status_is("gateway/kinds", "default", "{.status.listeners[1].supportedKinds[*].kind}", "TLSRoute");
    status_is("httproute/disallowed-kind", "default", &condition("Accepted", "reason"), "NotAllowedByListeners");
    assert_eq!(request("GET", "disallowed.kinds.test", "/", &[]).status, 404);
}

#[test]
fn gateway_secret_missing_and_specific_reference_grant() {
    // A certificateRef to a Secret of another namespace: RefNotPermitted until a
    // ReferenceGrant for that Secret exists in its namespace.
    let ca = support::pki::Ca::new("grant CA");
    let (cert, key) = ca.leaf(&["grant.test"]);
    let secret = secret_data("grant-cert", &[("tls.crt", &cert), ("tls.key", &key)])
        .replace("namespace: default", "namespace: web")
        .replace("kind: Secret\n", "kind: Secret\ntype: kubernetes.io/tls\n");
    let gw = "---\napiVersion: gateway.networking.k8s.io/v1\nkind: Gateway\nmetadata: {name: grant-gw, namespace: default}\nspec:\n  gatewayClassName: ringress\n  listeners:\n  - {name: https, port: 443, protocol: HTTPS, hostname: grant.test, tls: {certificateRefs: [{name: grant-cert, namespace: web}]}}\n";
    apply(&(secret + gw));
    let l = |t: &str, f: &str| format!("{{.status.listeners[0].conditions[?(@.type==\"{t}\")].{f}}}");
    status_is("gateway/grant-gw", "default", &l("ResolvedRefs", "reason"), "RefNotPermitted");
    status_is("gateway/grant-gw", "default", &l("Programmed", "status"), "False");
    apply("apiVersion: gateway.networking.k8s.io/v1beta1\nkind: ReferenceGrant\nmetadata: {name: gateway-secret, namespace: web}\nspec:\n  from: [{group: gateway.networking.k8s.io, kind: Gateway, namespace: default}]\n  to: [{group: '', kind: Secret, name: grant-cert}]\n");
    status_is("gateway/grant-gw", "default", &l("ResolvedRefs", "status"), "True");
    status_is("gateway/grant-gw", "default", &l("Programmed", "status"), "True");
}

#[test]
fn httproute_invalid_parentref_not_matching_listener_port() {
    let yaml = "apiVersion: gateway.networking.k8s.io/v1\nkind: HTTPRoute\nmetadata: {name: wrong-port, namespace: default}\nspec:\n  parentRefs: [{name: same-namespace, port: 81}]\n  hostnames: [wrong-port.test]\n  rules:\n  - backendRefs: [{name: infra-backend-v1, port: 80}]\n";
    apply(yaml);
    status_is("httproute/wrong-port", "default", &condition("Accepted", "reason"), "NoMatchingParent");
    assert_eq!(request("GET", "wrong-port.test", "/", &[]).status, 404);
}

#[test]
fn httproute_cross_namespace_by_namespace_selector() {
    // The conformance infrastructure's `backend-namespaces` Gateway: routes from namespaces
    // labelled gateway-conformance=backend (HTTPRouteCrossNamespace).
    apply("apiVersion: v1\nkind: Namespace\nmetadata: {name: web, labels: {gateway-conformance: backend}}\n---\napiVersion: gateway.networking.k8s.io/v1\nkind: Gateway\nmetadata: {name: backend-namespaces, namespace: default}\nspec:\n  gatewayClassName: ringress\n  listeners:\n  - name: http\n    port: 80\n    protocol: HTTP\n    hostname: selected.test\n    allowedRoutes: {namespaces: {from: Selector, selector: {matchLabels: {gateway-conformance: backend}}}}\n---\napiVersion: gateway.networking.k8s.io/v1\nkind: HTTPRoute\nmetadata: {name: cross-namespace, namespace: web}\nspec:\n  parentRefs: [{name: backend-namespaces, namespace: default}]\n  rules:\n  - backendRefs: [{name: web-backend, port: 80}]\n---\napiVersion: gateway.networking.k8s.io/v1\nkind: HTTPRoute\nmetadata: {name: not-selected, namespace: default}\nspec:\n  parentRefs: [{name: backend-namespaces}]\n  rules:\n  - matches: [{path: {type: PathPrefix, value: /not-selected}}]\n    backendRefs: [{name: infra-backend-v1, port: 80}]\n");
    let r = eventually("selected.test", "/", |r| r.status == 200);
    assert_eq!(backend(&r), "web-backend");
    status_is("httproute/not-selected", "default", &condition("Accepted", "reason"), "NotAllowedByListeners");
    assert_eq!(backend(&request("GET", "selected.test", "/not-selected", &[])), "web-backend");
}

#[test]
fn the_bundled_gateway_api_example_serves_as_its_comments_say() {
    // examples/gateway-api.yaml in file mode (no CRDs), the demo upstream on a free port.
    let port = free_port().to_string();
    let text = std::fs::read_to_string("examples/gateway-api.yaml").unwrap().replace("9091", &port);
    let dir = support::proxy::temp_dir();
    std::fs::write(dir.join("routes.yaml"), text).unwrap();
    let p = Proxy::start_with(dir, "uring", &["--demo-upstream", &format!("127.0.0.1:{port}")], |_| {});
    let r = get(p.http, "demo.example.com", "/hello");
    assert_eq!(r.status, 200, "{}", r.text());
    assert!(r.text().contains("hello from the ringress demo upstream"), "{}", r.text());
    assert_eq!(r.header("x-served-by"), None);
    let raw_get = |fields: &str, path: &str| {
        raw(
            p.http,
            format!("GET {path} HTTP/1.1\r\nHost: demo.example.com\r\n{fields}Connection: close\r\n\r\n").as_bytes(),
        )
        .unwrap()
    };
    assert_eq!(raw_get("X-Version: v2\r\n", "/hello").header("x-served-by"), Some("ringress-v2"));
    let moved = raw_get("", "/old/page?x=1");
    assert_eq!((moved.status, moved.header("location")), (301, Some("http://demo.example.com/new/page?x=1")));
    assert_eq!(get(p.http, "other.test", "/hello").status, 404);
    let (ok, out, err) = run(std::process::Command::new(env!("CARGO_BIN_EXE_ringress")).args([
        "check",
        "--manifests",
        "examples/gateway-api.yaml",
    ]));
    assert!(ok && out.contains("HTTPRoute default/demo") && out.contains("header x-version=v2"), "{out}{err}");
}

#[test]
fn grpcroute_is_accepted_and_listed_in_kubernetes_mode() {
    // The data plane of GRPCRoute is checked with tonic in tests/grpc.rs; here, the kind's
    // watch, status and listing through the API server.
    let e = env();
    apply("apiVersion: gateway.networking.k8s.io/v1\nkind: GRPCRoute\nmetadata: {name: grpc-methods, namespace: default}\nspec:\n  parentRefs: [{name: same-namespace}]\n  hostnames: [grpc.test]\n  rules:\n  - matches: [{method: {service: feed.FeedBack, method: Unary}}]\n    backendRefs: [{name: infra-backend-v1, port: 80}]\n");
    status_is("grpcroute/grpc-methods", "default", &condition("Accepted", "status"), "True");
    status_is("grpcroute/grpc-methods", "default", &condition("ResolvedRefs", "status"), "True");
    let routes = get(e.admin, "x", "/debug/routes").text();
    assert!(routes.contains("\"GRPCRoute\"") && routes.contains("/feed.FeedBack/Unary"), "{routes}");
    // gRPC needs HTTP/2: an HTTP/1.1 request for the method is refused, not forwarded.
    assert_eq!(request("POST", "grpc.test", "/feed.FeedBack/Unary", &[]).status, 502);
}

#[test]
fn a_keep_alive_connection_outlives_route_changes() {
    // One connection, requests all along while its route's backend changes 20 times: every
    // request answered, by the backend the route named when it was sent (or the next).
    let e = env();
    let name = |i: usize| if i % 2 == 0 { "infra-backend-v1" } else { "infra-backend-v2" };
    apply(&route("keepalive", "keepalive.test", &format!("  - {}", to(name(0)).trim_start())));
    eventually("keepalive.test", "/", |r| r.status == 200);
    let mut conn = connect(e.http);
    let mut pending = Vec::new();
    let mut answered = 0;
    for i in 1..=20 {
        apply(&route("keepalive", "keepalive.test", &format!("  - {}", to(name(i)).trim_start())));
        let start = Instant::now();
        loop {
            conn.write_all(b"GET / HTTP/1.1\r\nHost: keepalive.test\r\n\r\n").unwrap();
            let r = read_response(&mut conn, &mut pending, false).expect("an answer on the same connection");
            assert_eq!(r.status, 200);
            answered += 1;
            if backend(&r) == name(i) {
                break;
            }
            assert!(start.elapsed() < Duration::from_secs(10), "change {i} not live");
        }
    }
    assert!(answered >= 20);
}

#[test]
fn httproute_request_percentage_mirror() {
    // percent: 50 mirrors exactly every other request (spread evenly, over every worker).
    env();
    let shadow = Upstream::start("half-shadow");
    let rules = "  - filters: [{type: RequestMirror, requestMirror: {backendRef: {name: half-shadow, port: 80}, percent: 50}}]\n".to_string()
        + &to("infra-backend-v1");
    apply(&(service("half-shadow", &[shadow.addr]) + &route("half-mirror", "half-mirror.test", &rules)));
    eventually("half-mirror.test", "/", |r| r.status == 200);
    // From an even count on: the warm-up requests may have been mirrored or not.
    std::thread::sleep(Duration::from_millis(300));
    if shadow.hits() % 2 == 1 {
        request("GET", "half-mirror.test", "/", &[]);
    }
    let before = shadow.hits();
    for _ in 0..20 {
        assert_eq!(request("GET", "half-mirror.test", "/", &[]).status, 200);
    }
    let start = Instant::now();
    while shadow.hits() < before + 10 {
        assert!(start.elapsed() < Duration::from_secs(10), "mirrored {} of 10", shadow.hits() - before);
        std::thread::sleep(Duration::from_millis(20));
    }
    std::thread::sleep(Duration::from_millis(200));
    assert!(
        shadow.hits() - before <= 11,
        "half of 20 (one more if a warm-up copy was still on its way): {}",
        shadow.hits() - before
    );
}

#[test]
fn gateway_conflicted_listeners() {
    // Two listeners of one Gateway on one port with one host name: HostnameConflict; HTTP and
    // TCP on one port: ProtocolConflict. Conflicted listeners are not programmed.
    apply("apiVersion: gateway.networking.k8s.io/v1\nkind: Gateway\nmetadata: {name: conflicts, namespace: default}\nspec:\n  gatewayClassName: ringress\n  listeners:\n  - {name: a, port: 80, protocol: HTTP, hostname: same.conflict.test}\n  - {name: b, port: 80, protocol: HTTP, hostname: same.conflict.test}\n  - {name: c, port: 9999, protocol: HTTP}\n  - {name: d, port: 9999, protocol: TCP}\n  - {name: e, port: 80, protocol: HTTP, hostname: other.conflict.test}\n");
    let l = |i: usize, t: &str, f: &str| format!("{{.status.listeners[{i}].conditions[?(@.type==\"{t}\")].{f}}}");
    for (i, reason) in
        [(0, "HostnameConflict"), (1, "HostnameConflict"), (2, "ProtocolConflict"), (3, "ProtocolConflict")]
    {
        status_is("gateway/conflicts", "default", &l(i, "Conflicted", "reason"), reason);
        status_is("gateway/conflicts", "default", &l(i, "Programmed", "status"), "False");
    }
    status_is("gateway/conflicts", "default", &l(4, "Conflicted", "status"), "False");
    status_is("gateway/conflicts", "default", &l(4, "Programmed", "status"), "True");
    status_is(
        "gateway/conflicts",
        "default",
        "{.status.conditions[?(@.type==\"Accepted\")].reason}",
        "ListenersNotValid",
    );
}

/// `GET path` to `port` on 127.0.0.1 (a Gateway listener's own port); None: nothing answers.
fn on_port(port: u16, host: &str, path: &str) -> Option<Response> {
    let at = SocketAddr::from(([127, 0, 0, 1], port));
    let request = format!("GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n");
    std::net::TcpStream::connect(at).ok().and_then(|_| raw(at, request.as_bytes()))
}

/// [`on_port`] for `/`, polled until `cond` holds of the answer (10 s).
fn on_port_until(port: u16, host: &str, cond: impl Fn(Option<&Response>) -> bool) -> Option<Response> {
    let start = Instant::now();
    loop {
        let r = on_port(port, host, "/");
        if cond(r.as_ref()) {
            return r;
        }
        let seen = r.map(|r| format!("{} {}", r.status, r.text())).unwrap_or_else(|| "no answer".into());
        assert!(start.elapsed() < Duration::from_secs(10), "{host} on port {port}: still {seen}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn httproute_listener_port_matching() {
    // Conformance HTTPRouteListenerPortMatching, with free ports for its 8080 and 8090: each
    // listener port is a listener of its own, and a route is served only on the ports of the
    // listeners it attached to. Then an HTTPS listener on a port of its own, a newer Gateway
    // that wants one of those ports for another protocol (Conflicted), and the ports closing
    // with the Gateway.
    let e = env();
    let (p1, p2, p3) = (free_port(), free_port(), free_port());
    let listener = |name: &str, port: u16, host: &str| {
        format!("  - {{name: {name}, port: {port}, protocol: HTTP, allowedRoutes: {{namespaces: {{from: Same}}}}, hostname: {host}}}\n")
    };
    let mut yaml = "---\napiVersion: gateway.networking.k8s.io/v1\nkind: Gateway\nmetadata: {name: httproute-listener-port-matching, namespace: default}\nspec:\n  gatewayClassName: ringress\n  listeners:\n".to_string();
    yaml += &listener("listener-1", 80, "foo.ports.test");
    yaml += &listener("listener-2", p1, "foo.ports.test");
    yaml += &listener("listener-3", p1, "bar.ports.test");
    yaml += &listener("listener-4", p2, "foo.ports.test");
    yaml += &listener("listener-5", p2, "bar.ports.test");
    yaml += &format!("  - {{name: secure, port: {p3}, protocol: HTTPS, hostname: ports.secure.test, tls: {{certificateRefs: [{{name: secure-cert}}]}}}}\n");
    let route = |name: &str, parent: &str, backend: &str| {
        format!("---\napiVersion: gateway.networking.k8s.io/v1\nkind: HTTPRoute\nmetadata: {{name: {name}, namespace: default}}\nspec:\n  parentRefs: [{{name: httproute-listener-port-matching, {parent}}}]\n  rules:\n  - backendRefs: [{{name: {backend}, port: 80}}]\n")
    };
    // Route names of this test's own: httproute_listener_hostname_matching, running at the
    // same time, has routes named backend-v1..v3 as the upstream tests do.
    yaml += &route("ports-backend-v1", "port: 80", "infra-backend-v1");
    yaml += &route("ports-backend-v2", &format!("port: {p1}"), "infra-backend-v2");
    yaml += &route("ports-backend-v3", &format!("port: {p2}, sectionName: listener-4"), "infra-backend-v3");
    yaml += &route("backend-secure", &format!("port: {p3}"), "infra-backend-v1");
    apply(&yaml);
    for name in ["ports-backend-v1", "ports-backend-v2", "ports-backend-v3", "backend-secure"] {
        status_is(&format!("httproute/{name}"), "default", &condition("Accepted", "status"), "True");
    }
    let is = |want: &'static str| move |r: Option<&Response>| r.is_some_and(|r| r.status == 200 && backend(r) == want);
    assert_eq!(backend(&eventually("foo.ports.test", "/", |r| r.status == 200)), "infra-backend-v1");
    on_port_until(p1, "foo.ports.test", is("infra-backend-v2"));
    on_port_until(p1, "bar.ports.test:8080", is("infra-backend-v2"));
    on_port_until(p2, "foo.ports.test", is("infra-backend-v3"));
    // bar.ports.test on the third port has a listener but no route.
    on_port_until(p2, "bar.ports.test", |r| r.is_some_and(|r| r.status == 404));
    // No route crosses to another port, and ringress's own listener does not serve them.
    assert_eq!(request("GET", "bar.ports.test", "/", &[]).status, 404, "its routes are on other ports");
    // A host no route of the port names: 404 (neither an Ingress nor the default backend
    // answers on a Gateway listener's own port).
    on_port_until(p1, "elsewhere.test", |r| r.is_some_and(|r| r.status == 404));
    // HTTPS on a port of its own, with the listener's certificate; not on ringress's 443.
    let ca = std::env::temp_dir().join(format!("ringress-gw-ports-ca-{}.pem", std::process::id()));
    std::fs::write(&ca, &e.ca).unwrap();
    https_until(p3, &ca, "ports.secure.test", "upstream=infra-backend-v1");
    on_port_until(p3, "ports.secure.test", |r| r.is_none());
    let main = format!("ports.secure.test:{}:127.0.0.1", e.https.port());
    let (_, out, _) = run(std::process::Command::new("curl").args([
        "-sS",
        "-o",
        "/dev/null",
        "-w",
        "%{http_code}",
        "--cacert",
        ca.to_str().unwrap(),
        "--resolve",
        &main,
        &format!("https://ports.secure.test:{}/", e.https.port()),
    ]));
    assert_eq!(out, "404", "the HTTPS listener's route is not served on ringress's own HTTPS port");
    // A newer Gateway asking for p1 as a TCP port conflicts; p1 keeps serving HTTP.
    apply(&format!("---\napiVersion: gateway.networking.k8s.io/v1\nkind: Gateway\nmetadata: {{name: port-taker, namespace: default}}\nspec:\n  gatewayClassName: ringress\n  listeners:\n  - {{name: tcp, port: {p1}, protocol: TCP}}\n"));
    let conflicted = "{.status.listeners[0].conditions[?(@.type==\"Conflicted\")].reason}";
    status_is("gateway/port-taker", "default", conflicted, "ProtocolConflict");
    on_port_until(p1, "foo.ports.test", is("infra-backend-v2"));
    // The Gateway goes: its ports close.
    e.cluster.kubectl(&["delete", "gateway", "httproute-listener-port-matching", "port-taker", "-n", "default"]);
    on_port_until(p1, "foo.ports.test", |r| r.is_none());
    on_port_until(p2, "foo.ports.test", |r| r.is_none());
    let _ = std::fs::remove_file(&ca);
}

#[test]
fn tcproute_weights_split_connections() {
    // A TCPRoute's backendRefs split the port's connections by weight, over all workers; a
    // share whose backend does not resolve is refused (the connection closes), as for TLSRoute.
    let port = free_port();
    apply(&format!("---\napiVersion: gateway.networking.k8s.io/v1\nkind: Gateway\nmetadata: {{name: tcp-weights, namespace: default}}\nspec:\n  gatewayClassName: ringress\n  listeners:\n  - {{name: tcp, port: {port}, protocol: TCP}}\n---\napiVersion: gateway.networking.k8s.io/v1\nkind: TCPRoute\nmetadata: {{name: tcp-weights, namespace: default}}\nspec:\n  parentRefs: [{{name: tcp-weights}}]\n  rules:\n  - backendRefs:\n    - {{name: infra-backend-v1, port: 80, weight: 2}}\n    - {{name: infra-backend-v2, port: 80, weight: 1}}\n    - {{name: nonexistent, port: 80, weight: 1}}\n"));
    let at = SocketAddr::from(([127, 0, 0, 1], port));
    // One connection at a time, each answered or closed before the next: None while the port
    // is not open, Some(None) for a refused share.
    let attempt = || -> Option<Option<Response>> {
        let mut s = std::net::TcpStream::connect(at).ok()?;
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let _ = s.write_all(b"GET /tcp HTTP/1.1\r\nHost: anything\r\nConnection: close\r\n\r\n");
        Some(read_response(&mut s, &mut Vec::new(), false))
    };
    let start = Instant::now();
    while !matches!(attempt(), Some(Some(r)) if r.status == 200) {
        assert!(start.elapsed() < Duration::from_secs(10), "port {port} forwarded");
        std::thread::sleep(Duration::from_millis(100));
    }
    let mut counts = std::collections::BTreeMap::new();
    for _ in 0..40 {
        let who = match attempt().expect("the port stays open") {
            Some(r) => backend(&r),
            None => "refused".to_string(),
        };
        *counts.entry(who).or_insert(0) += 1;
    }
    let want: std::collections::BTreeMap<String, i32> =
        [("infra-backend-v1".to_string(), 20), ("infra-backend-v2".to_string(), 10), ("refused".to_string(), 10)]
            .into_iter()
            .collect();
    assert_eq!(counts, want, "40 connections split 2:1:1");
    status_is("tcproute/tcp-weights", "default", &condition("ResolvedRefs", "reason"), "BackendNotFound");
}

#[test]
fn gateway_http_listener_isolation() {
    // Conformance GatewayHTTPListenerIsolation, on a port of its own (the shared Gateways'
    // routes without host names would answer on port 80): a request is served only by the
    // routes of the most specific listener its host matches.
    let port = free_port();
    let mut yaml = format!("---\napiVersion: gateway.networking.k8s.io/v1\nkind: Gateway\nmetadata: {{name: http-listener-isolation, namespace: default}}\nspec:\n  gatewayClassName: ringress\n  listeners:\n  - {{name: empty-hostname, port: {port}, protocol: HTTP}}\n");
    let listeners = [
        ("wildcard-example-com", "'*.example.com'"),
        ("wildcard-foo-example-com", "'*.foo.example.com'"),
        ("abc-foo-example-com", "abc.foo.example.com"),
    ];
    for (name, host) in listeners {
        yaml += &format!("  - {{name: {name}, port: {port}, protocol: HTTP, hostname: {host}}}\n");
    }
    let names = ["empty-hostname", "wildcard-example-com", "wildcard-foo-example-com", "abc-foo-example-com"];
    for name in names {
        yaml += &format!("---\napiVersion: gateway.networking.k8s.io/v1\nkind: HTTPRoute\nmetadata: {{name: attaches-to-{name}, namespace: default}}\nspec:\n  parentRefs: [{{name: http-listener-isolation, sectionName: {name}}}]\n  rules:\n  - matches: [{{path: {{type: PathPrefix, value: /{name}}}}}]\n    backendRefs: [{{name: infra-backend-v1, port: 80}}]\n");
    }
    apply(&yaml);
    for name in names {
        status_is(&format!("httproute/attaches-to-{name}"), "default", &condition("Accepted", "status"), "True");
    }
    let start = Instant::now();
    while on_port(port, "abc.foo.example.com", "/abc-foo-example-com").is_none_or(|r| r.status != 200) {
        assert!(start.elapsed() < Duration::from_secs(10), "port {port} serves the isolation Gateway");
        std::thread::sleep(Duration::from_millis(100));
    }
    // Each host reaches its own listener's route and none of the others'.
    for (host, own) in [
        ("bar.com", "empty-hostname"),
        ("bar.example.com", "wildcard-example-com"),
        ("bar.foo.example.com", "wildcard-foo-example-com"),
        ("abc.foo.example.com", "abc-foo-example-com"),
    ] {
        for name in names {
            let r = on_port(port, host, &format!("/{name}")).expect("an answer");
            let want = if name == own { 200 } else { 404 };
            assert_eq!(r.status, want, "{host} /{name}: {}", r.text());
            if want == 200 {
                assert_eq!(backend(&r), "infra-backend-v1");
            }
        }
    }
}

#[test]
fn httproute_https_listener_detect_misdirected_requests() {
    // Conformance HTTPRouteHTTPSListenerDetectMisdirectedRequests, its Gateway's four HTTPS
    // listeners on a port of this test's own: a request on a TLS connection keeps to the
    // listener its ClientHello named, else 421, over HTTP/2 and HTTP/1.1.
    env();
    let port = free_port();
    let listener = |name: &str, host: &str| {
        format!("  - {{name: {name}, port: {port}, protocol: HTTPS, {host}allowedRoutes: {{namespaces: {{from: Same}}}}, tls: {{certificateRefs: [{{name: secure-cert}}]}}}}\n")
    };
    let mut yaml = "---\napiVersion: gateway.networking.k8s.io/v1\nkind: Gateway\nmetadata: {name: misdirected, namespace: default}\nspec:\n  gatewayClassName: ringress\n  listeners:\n".to_string();
    yaml += &listener("https", "");
    yaml += &listener("https-with-hostname", "hostname: second-example.org, ");
    yaml += &listener("https-with-wildcard-hostname", "hostname: \"*.wildcard.org\", ");
    yaml += &listener("https-with-hostname-matching-wildcard", "hostname: fourth-example.wildcard.org, ");
    let routes = [
        ("1", "https", "\n  hostnames: [example.org]", "infra-backend-v1"),
        ("2", "https-with-hostname", "", "infra-backend-v2"),
        ("3", "https-with-wildcard-hostname", "", "infra-backend-v3"),
        ("4", "https-with-hostname-matching-wildcard", "", "infra-backend-v1"),
    ];
    for (n, section, hostnames, backend) in routes {
        yaml += &format!("---\napiVersion: gateway.networking.k8s.io/v1\nkind: HTTPRoute\nmetadata: {{name: misdirected-{n}, namespace: default}}\nspec:\n  parentRefs: [{{name: misdirected, sectionName: {section}}}]{hostnames}\n  rules:\n  - matches: [{{path: {{type: PathPrefix, value: /detect-misdirected-requests}}}}]\n    backendRefs: [{{name: {backend}, port: 80}}]\n");
    }
    apply(&yaml);
    // (ClientHello name, Host, status, backend when 200), as the upstream test lists them.
    let cases = [
        ("example.org", "example.org", 200, "infra-backend-v1"),
        ("example.org", "second-example.org", 421, ""),
        ("example.org", "unknown-example.org", 404, ""),
        ("second-example.org", "second-example.org", 200, "infra-backend-v2"),
        ("second-example.org", "example.org", 421, ""),
        ("second-example.org", "unknown-example.org", 421, ""),
        ("third-example.wildcard.org", "third-example.wildcard.org", 200, "infra-backend-v3"),
        ("third-example.wildcard.org", "fith-example.wildcard.org", 200, "infra-backend-v3"),
        ("third-example.wildcard.org", "fourth-example.wildcard.org", 421, ""),
        ("third-example.wildcard.org", "second-example.org", 421, ""),
        ("third-example.wildcard.org", "unknown-example.org", 421, ""),
        ("fourth-example.wildcard.org", "fourth-example.wildcard.org", 200, "infra-backend-v1"),
        ("fourth-example.wildcard.org", "fith-example.wildcard.org", 421, ""),
        ("unknown-example.org", "example.org", 200, "infra-backend-v1"),
        ("unknown-example.org", "unknown-example.org", 404, ""),
    ];
    // (status, body) of one request on a new TLS connection naming `sni`, for `host`.
    let get = |sni: &str, host: &str, http: &str| {
        let resolve = format!("{sni}:{port}:127.0.0.1");
        let url = format!("https://{sni}:{port}/detect-misdirected-requests");
        let header = format!("Host: {host}");
        let (_, out, err) = run(std::process::Command::new("curl").args([
            "-sSk",
            http,
            "-w",
            "\n%{http_code}",
            "--resolve",
            &resolve,
            "-H",
            &header,
            &url,
        ]));
        let (body, code) = out.rsplit_once('\n').unwrap_or(("", ""));
        (code.parse::<u16>().unwrap_or_else(|_| panic!("{sni} / {host}: {out} {err}")), body.to_string())
    };
    let start = Instant::now();
    while get("fourth-example.wildcard.org", "fourth-example.wildcard.org", "--http2").0 != 200 {
        assert!(start.elapsed() < Duration::from_secs(10), "the Gateway's listeners are not served");
        std::thread::sleep(Duration::from_millis(100));
    }
    for http in ["--http2", "--http1.1"] {
        for (sni, host, status, backend) in cases {
            let (got, body) = get(sni, host, http);
            assert_eq!(got, status, "{http} {sni} / {host}: {body}");
            assert!(status != 200 || body.contains(&format!("upstream={backend}")), "{http} {sni} / {host}: {body}");
        }
    }
    let (_, body) = get("second-example.org", "example.org", "--http2");
    assert!(body.contains("connect naming example.org"), "421 says why: {body}");
    // Host names compare without case.
    assert_eq!(get("second-example.org", "Second-Example.ORG", "--http2").0, 200);
    assert_eq!(get("example.org", "Second-Example.ORG", "--http1.1").0, 421);
    // On one HTTP/2 connection (as a browser reuses it across names its certificate covers):
    // the request for the other listener's host is 421, then the connection serves its own
    // listener's host again (curl's --next keeps the connection).
    let resolve = format!("example.org:{port}:127.0.0.1");
    let url = format!("https://example.org:{port}/detect-misdirected-requests");
    let one = |host: &str| {
        let header = format!("Host: {host}");
        ["-sSk", "--http2", "-o", "/dev/null", "-w", "%{http_code}/%{num_connects} ", "--resolve", &resolve, "-H"]
            .into_iter()
            .chain([header.as_str(), url.as_str()])
            .map(String::from)
            .collect::<Vec<String>>()
    };
    let args = [one("example.org"), one("second-example.org"), one("example.org")].join(&"--next".to_string());
    let (_, out, err) = run(std::process::Command::new("curl").args(&args));
    assert_eq!(out.trim(), "200/1 421/0 200/0", "{err}");
    env().cluster.kubectl(&["delete", "gateway", "misdirected", "-n", "default"]);
}

#[test]
fn route_status_keeps_another_controllers_parents() {
    // A route attached to our Gateway and to another controller's: that controller's entry in
    // status.parents, written as controllers write it (read, add, write with the version
    // read), stays when ringress writes its own entry again.
    let e = env();
    let yaml = route("two-parents", "two-parents.test", &format!("  - {}", to("infra-backend-v1").trim_start()))
        .replace("parentRefs: [{name: same-namespace}]", "parentRefs: [{name: same-namespace}, {name: not-ours}]");
    apply(&yaml);
    let ours = "{.status.parents[0].conditions[?(@.type==\"ResolvedRefs\")].reason}";
    status_is("httproute/two-parents", "default", ours, "ResolvedRefs");
    let current = e.cluster.kubectl(&["get", "httproute/two-parents", "-n", "default", "-o", "json"]);
    let current: serde_json::Value = serde_json::from_str(&current).unwrap();
    let mut parents = current["status"]["parents"].as_array().cloned().unwrap();
    parents.push(serde_json::json!({
        "parentRef": {"group": "gateway.networking.k8s.io", "kind": "Gateway", "name": "not-ours"},
        "controllerName": "example.com/another-controller",
        "conditions": [{"type": "Accepted", "status": "True", "reason": "Accepted", "message": "theirs",
            "observedGeneration": 1, "lastTransitionTime": "2026-12-06T00:00:00Z"}],
    }));
    let patch = |version: &serde_json::Value| {
        let body = serde_json::json!({"metadata": {"resourceVersion": version}, "status": {"parents": parents}});
        let args = ["patch", "httproute/two-parents", "-n", "default", "--subresource=status", "--type=merge", "-p"];
        e.cluster.try_kubectl(&[&args[..], &[body.to_string().as_str()]].concat(), "")
    };
    // The version is a precondition (what ringress's own writes rely on): a stale one is
    // refused.
    let (ok, _, err) = patch(&serde_json::json!("1"));
    assert!(!ok && err.contains("modified"), "a stale resourceVersion must be refused: {err}");
    let (ok, _, err) = patch(&current["metadata"]["resourceVersion"]);
    assert!(ok, "{err}");
    // Our entry changes (its backend goes missing); theirs is kept.
    apply(&yaml.replace("infra-backend-v1", "missing-backend"));
    status_is("httproute/two-parents", "default", ours, "BackendNotFound");
    status_is(
        "httproute/two-parents",
        "default",
        "{.status.parents[1].controllerName}",
        "example.com/another-controller",
    );
    status_is("httproute/two-parents", "default", "{.status.parents[1].conditions[0].message}", "theirs");
    status_is("httproute/two-parents", "default", "{.status.parents[2]}", "");
}
