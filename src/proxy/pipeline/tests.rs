use super::*;

/// Three Ingresses: plain HTTP with `rewrite-target`, gRPC, and a TLS host (ssl-redirect),
/// each on a Service with one endpoint (never dialled), plus one Service without endpoints.
fn snapshot() -> Snapshot {
    let mut yaml = String::new();
    for (name, host, annotations, endpoint) in [
        ("web", "web.test", "nginx.ingress.kubernetes.io/rewrite-target: /v2/$1", true),
        ("rpc", "rpc.test", "nginx.ingress.kubernetes.io/backend-protocol: GRPC", true),
        ("sec", "sec.test", "x: y", true),
        ("empty", "empty.test", "x: y", false),
    ] {
        let path = if name == "web" { "/api/(.*)" } else { "/" };
        let tls = if name == "sec" { "\n  tls: [{hosts: [sec.test], secretName: none}]" } else { "" };
        let eps = if endpoint { "[{addresses: [10.0.0.1], conditions: {ready: true}}]" } else { "[]" };
        yaml += &format!(
            r#"---
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata: {{name: {name}, namespace: default, annotations: {{{annotations}}}}}
spec:
  ingressClassName: ringress{tls}
  rules: [{{host: {host}, http: {{paths: [{{path: "{path}", pathType: ImplementationSpecific, backend: {{service: {{name: {name}, port: {{number: 80}}}}}}}}]}}}}]
---
apiVersion: v1
kind: Service
metadata: {{name: {name}, namespace: default}}
spec: {{ports: [{{port: 80, targetPort: 8080}}]}}
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {{name: {name}-1, namespace: default, labels: {{kubernetes.io/service-name: {name}}}}}
addressType: IPv4
endpoints: {eps}
ports: [{{port: 8080}}]
"#
        );
    }
    crate::snapshot::build(&crate::model::parse_documents(&yaml).expect("test YAML"), &Default::default())
}

fn request<'a>(method: &'a str, authority: &'a str, pq: &'a str, http2: bool) -> Request<'a> {
    Request {
        method,
        authority: authority.as_bytes(),
        path_and_query: pq.as_bytes(),
        length: None,
        entry: crate::snapshot::gateway::Entry { tls: false, port: 80, main: true },
        http2,
        http10: false,
        client: "127.0.0.1".parse().unwrap(),
        user_agent: None,
        referer: None,
        authorization: None,
        tls: None,
        fields: &NO_FIELDS,
    }
}

const NO_FIELDS: &[httparse::Header<'static>] = &[];

#[test]
fn a_cookie_is_found_in_any_cookie_field_and_pair() {
    let mut h = http::HeaderMap::new();
    h.append(http::header::COOKIE, "a=1; canary = always ;b=2".parse().unwrap());
    h.append(http::header::COOKIE, "other=x".parse().unwrap());
    assert_eq!(cookie(&h, "canary"), Some(&b"always"[..]));
    assert_eq!(cookie(&h, "other"), Some(&b"x"[..]));
    assert_eq!(cookie(&h, "b"), Some(&b"2"[..]));
    assert_eq!(cookie(&h, "can"), None);
    let fields = [httparse::Header { name: "Cookie", value: b"canary=never" }];
    assert_eq!(cookie(&&fields[..], "canary"), Some(&b"never"[..]));
}

#[test]
fn the_weight_is_exact_and_evenly_spread() {
    use crate::snapshot::annotations::CanaryRules;
    let rules = |weight, weight_total| Arc::new(CanaryRules { weight, weight_total, ..CanaryRules::default() });
    let key = Arc::new(crate::model::ObjectKey { namespace: "default".into(), name: "c".into() });
    let c = crate::snapshot::Canary::new(0, key.clone(), rules(3, 10));
    let picks: Vec<bool> = (0..10).map(|_| c.by_weight()).collect();
    assert_eq!(picks.iter().filter(|&&p| p).count(), 3);
    // Never two in a row at 30%.
    assert!(!picks.windows(2).any(|w| w[0] && w[1]), "{picks:?}");
    let none = crate::snapshot::Canary::new(0, key.clone(), rules(0, 100));
    let all = crate::snapshot::Canary::new(0, key, rules(100, 100));
    assert!((0..100).all(|_| !none.by_weight() && all.by_weight()));
}

fn kind(snap: &Snapshot, r: &Request<'_>) -> Option<Kind> {
    decide(snap, r, &mut RouteKey::default()).err().map(|e| e.kind)
}

#[test]
fn the_same_decision_for_every_protocol() {
    let snap = snapshot();
    for http2 in [false, true] {
        let r = request("GET", "Web.Test:80", "/api/a/../b?q=1", http2);
        let mut key = RouteKey::default();
        let Ok(Decision::Forward(f)) = decide(&snap, &r, &mut key) else { panic!("not forwarded") };
        assert_eq!(f.target.as_deref(), Some("/v2/b?q=1"), "normalised, rewritten, query kept");
        assert_eq!(f.exchange, Exchange::Http1 { tls: None });
        assert_eq!((key.ingress(), key.service()), ("default/web", "default/web:80"));
        assert_eq!(kind(&snap, &request("TRACE", "web.test", "/api/x", http2)), Some(Kind::MethodNotAllowed));
        assert_eq!(kind(&snap, &request("CONNECT", "web.test", "/", http2)), Some(Kind::NotImplemented));
        assert_eq!(kind(&snap, &request("GET", "web.test/x", "/api/x", http2)), Some(Kind::BadHost));
        assert_eq!(kind(&snap, &request("GET", "nope.test", "/", http2)), Some(Kind::NoRoute));
        assert_eq!(kind(&snap, &request("GET", "empty.test", "/", http2)), Some(Kind::NoEndpoints));
        // Routed by its normal form, `/x`, which no rule matches.
        assert_eq!(kind(&snap, &request("GET", "web.test", "/api/%2e%2e/%2e%2e/x", http2)), Some(Kind::NoRoute));
    }
}

#[test]
fn grpc_needs_http2_and_tls_hosts_redirect() {
    let snap = snapshot();
    assert_eq!(kind(&snap, &request("POST", "rpc.test", "/pkg.Svc/Call", false)), Some(Kind::NeedsHttp2));
    let r = request("POST", "rpc.test", "/pkg.Svc/Call", true);
    let Ok(Decision::Forward(f)) = decide(&snap, &r, &mut RouteKey::default()) else { panic!("not forwarded") };
    assert_eq!((f.exchange, f.target), (Exchange::Grpc { tls: None }, None));
    let r = request("GET", "sec.test", "/a?b=1", false);
    let Ok(Decision::Answer { code, fields }) = decide(&snap, &r, &mut RouteKey::default()) else {
        panic!("not redirected")
    };
    assert_eq!((code, fields), (308, vec![("Location", b"https://sec.test/a?b=1".to_vec())]));
    let r = Request {
        entry: crate::snapshot::gateway::Entry { tls: true, port: 443, main: true },
        ..request("GET", "sec.test", "/a", false)
    };
    assert!(matches!(decide(&snap, &r, &mut RouteKey::default()), Ok(Decision::Forward(_))));
}

#[test]
fn a_declared_body_over_the_limit_is_refused_before_anything_is_read() {
    let snap = snapshot();
    let r = Request { length: Some(2 << 30), ..request("POST", "web.test", "/api/x", false) };
    assert_eq!(kind(&snap, &r), Some(Kind::BodyTooLarge));
}
