use super::*;

fn err(yaml: &str) -> String {
    parse_documents(yaml).expect_err("must be rejected").to_string()
}

#[test]
fn multi_document_and_list() {
    let yaml = r#"
apiVersion: v1
kind: List
items:
- apiVersion: v1
  kind: Service
  metadata: {name: a}
  spec: {ports: [{port: 80}]}
- apiVersion: apps/v1
  kind: Deployment
  metadata: {name: ignored}
---
---
apiVersion: v1
kind: Service
metadata: {name: b, namespace: x}
spec: {ports: [{port: 81, targetPort: "8081"}]}
"#;
    let o = parse_documents(yaml).unwrap();
    assert_eq!(o.services.len(), 2);
    assert_eq!(o.services[0].key.to_string(), "default/a");
    assert_eq!(o.services[0].ports[0].target_port, TargetPort::Number(80));
    assert_eq!(o.services[1].ports[0].target_port, TargetPort::Number(8081));
}

/// Each bad input names the document, the object and the field.
#[test]
fn errors_name_document_object_and_field() {
    #[rustfmt::skip]
    let cases: &[(&str, &[&str])] = &[
        ("kind: Service\napiVersion: v1\nmetadata: {name: s}\nspec: {ports: [{port: 70000}]}",
         &["document 1", "Service default/s", "spec.ports[0].port", "70000"]),
        ("---\napiVersion: v1\nkind: Service\nmetadata: {name: s}\nspec: {ports: [{}]}\n---\napiVersion: networking.k8s.io/v1\nkind: Ingress\nmetadata: {name: i, namespace: n}\nspec:\n  rules:\n  - http:\n      paths:\n      - {path: /, backend: {service: {name: s, port: {number: 80}}}}",
         &["document 1", "spec.ports[0].port", "missing"]),
        ("apiVersion: networking.k8s.io/v1\nkind: Ingress\nmetadata: {name: i, namespace: n}\nspec:\n  rules:\n  - http:\n      paths:\n      - {path: /, backend: {service: {name: s, port: {number: 80}}}}",
         &["document 1", "Ingress n/i", "spec.rules[0].http.paths[0].pathType", "missing"]),
        ("apiVersion: networking.k8s.io/v1\nkind: Ingress\nmetadata: {name: i}\nspec:\n  rules:\n  - http:\n      paths:\n      - {path: foo, pathType: Prefix, backend: {service: {name: s, port: {number: 80}}}}",
         &["spec.rules[0].http.paths[0].path", "must start with '/'"]),
        ("apiVersion: networking.k8s.io/v1\nkind: Ingress\nmetadata: {name: i}\nspec:\n  rules:\n  - host: \"foo..com\"\n    http: {paths: []}",
         &["spec.rules[0].host", "not a valid host"]),
        ("apiVersion: networking.k8s.io/v1\nkind: Ingress\nmetadata: {name: i}\nspec:\n  rules:\n  - host: \"10.0.0.1\"",
         &["spec.rules[0].host", "IP address"]),
        ("apiVersion: networking.k8s.io/v1\nkind: Ingress\nmetadata: {name: i}\nspec:\n  rules:\n  - http:\n      paths:\n      - {path: /, pathType: Regex, backend: {service: {name: s, port: {number: 80}}}}",
         &["pathType", "Regex"]),
        ("apiVersion: networking.k8s.io/v1\nkind: Ingress\nmetadata: {name: i}\nspec:\n  rules:\n  - http:\n      paths:\n      - {path: /, pathType: Exact, backend: {service: {name: s}}}",
         &["spec.rules[0].http.paths[0].backend.service.port", "missing number or name"]),
        ("apiVersion: networking.k8s.io/v1\nkind: Ingress\nmetadata: {name: i}\nspec:\n  rules: {not: a list}",
         &["Ingress default/i", "spec.rules"]),
        ("apiVersion: networking.k8s.io/v1\nkind: Ingress\nmetadata: {namespace: x}\nspec: {}",
         &["metadata.name", "missing"]),
        ("apiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\nmetadata: {name: e, labels: {kubernetes.io/service-name: s}}\naddressType: IPv4\nendpoints: [{addresses: [not-an-ip]}]",
         &["EndpointSlice default/e", "endpoints[0].addresses[0]", "not-an-ip"]),
        ("apiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\nmetadata: {name: e}\naddressType: IPv4",
         &["kubernetes.io/service-name", "missing"]),
        ("a: [b\n", &["document 1", "invalid YAML"]),
        ("apiVersion: v1\nkind: Service\nmetadata: {name: ok}\n---\nfoo: bar\n", &["document 2", "kind", "missing"]),
        ("apiVersion: v1\nkind: List\nitems:\n- apiVersion: v1\n  kind: Service\n  metadata: {name: s}\n  spec: {ports: [{port: 0}]}",
         &["document 1, item 0", "spec.ports[0].port"]),
        ("apiVersion: networking.k8s.io/v2\nkind: Ingress\nmetadata: {name: i}", &["apiVersion", "unsupported"]),
    ];
    for (yaml, wants) in cases {
        let e = err(yaml);
        for w in *wants {
            assert!(e.contains(w), "error {e:?} should mention {w:?} (input {yaml:?})");
        }
    }
}

#[test]
fn legacy_backend_shapes() {
    let yaml = r#"
apiVersion: networking.k8s.io/v1beta1
kind: Ingress
metadata: {name: i, namespace: n}
spec:
  backend: {serviceName: dflt, servicePort: 8080}
  rules:
  - host: A.Example.COM
    http:
      paths:
      - backend: {serviceName: s, servicePort: "http"}
      - path: /x
        backend: {serviceName: s, servicePort: "81"}
"#;
    let o = parse_documents(yaml).unwrap();
    let i = &o.ingresses[0];
    assert_eq!(i.default_backend, Some(ServiceBackend { service: "dflt".into(), port: PortRef::Number(8080) }));
    assert_eq!(i.rules[0].host.as_deref(), Some("a.example.com"));
    let p = &i.rules[0].paths;
    assert_eq!((p[0].path.as_str(), p[0].path_type), ("/", PathType::ImplementationSpecific));
    assert_eq!(p[0].backend.port, PortRef::Name("http".into()));
    assert_eq!(p[1].backend.port, PortRef::Number(81));
}

#[test]
fn objects_defined_twice_keep_their_last_definition_with_a_warning() {
    let yaml = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: ringress, namespace: ringress}\ndata: {keep-alive: \"5\"}\n---\napiVersion: v1\nkind: ConfigMap\nmetadata: {name: other, namespace: ringress}\n---\napiVersion: v1\nkind: ConfigMap\nmetadata: {name: ringress, namespace: ringress}\ndata: {use-gzip: \"true\"}\n";
    let mut o = parse_documents(yaml).unwrap();
    let w = o.keep_last_definitions();
    assert_eq!(
        w,
        ["ConfigMap ringress/ringress is defined more than once in the manifests; the last definition is used"]
    );
    assert_eq!(o.config_maps.len(), 2);
    let ours = o.config_maps.iter().find(|c| c.key.name == "ringress").unwrap();
    assert_eq!(ours.data.get("use-gzip").map(String::as_str), Some("true"));
    assert_eq!(o.config_maps[0].key.name, "other", "order otherwise kept");
    assert!(o.keep_last_definitions().is_empty());
}

#[test]
fn gateway_api_objects_that_their_crds_refuse_are_refused_naming_the_field() {
    let route = |rules: &str| {
        format!("apiVersion: gateway.networking.k8s.io/v1\nkind: HTTPRoute\nmetadata: {{name: r, namespace: web}}\nspec:\n  rules:\n{rules}")
    };
    let cases = [
        (
            route("  - filters: [{type: RequestRedirect, requestRedirect: {statusCode: 404}}]\n"),
            "document 1: HTTPRoute web/r: field `spec.rules[0].filters[0].requestRedirect.statusCode`: 404 is not a redirect status",
        ),
        (
            route("  - matches: [{path: {type: PathPrefix, value: relative}}]\n"),
            "field `spec.rules[0].matches[0].path.value`: must be an absolute path",
        ),
        (
            route("  - matches: [{headers: [{type: RegularExpression, name: x, value: '(['}]}]\n"),
            "field `spec.rules[0].matches[0].headers[0].value`",
        ),
        (route("  - matches: [{method: FETCH}]\n"), "field `spec.rules[0].matches[0].method`"),
        (
            route("  - filters: [{type: RequestHeaderModifier, requestHeaderModifier: {set: [{name: 'X: y', value: v}]}}]\n"),
            "field `spec.rules[0].filters[0].requestHeaderModifier.set[0].name`",
        ),
        (
            route("  - filters: [{type: ResponseHeaderModifier, responseHeaderModifier: {add: [{name: X, value: \"a\\r\\nB: c\"}]}}]\n"),
            "field `spec.rules[0].filters[0].responseHeaderModifier.add[0].value`: must not contain CR, LF or NUL",
        ),
        (
            route("  - filters: [{type: RequestRedirect, requestRedirect: {hostname: \"a.test\\r\\nX: y\"}}]\n"),
            "field `spec.rules[0].filters[0].requestRedirect.hostname`",
        ),
        (
            route("  - filters: [{type: URLRewrite, urlRewrite: {path: {type: ReplaceFullPath, replaceFullPath: \"/a b\"}}}]\n"),
            "field `spec.rules[0].filters[0].urlRewrite.path.replaceFullPath`: must be a path",
        ),
        (route("  - timeouts: {request: 10x}\n"), "field `spec.rules[0].timeouts.request`: \"10x\" is not a duration"),
        (
            route("  - timeouts: {request: 1s, backendRequest: 2s}\n"),
            "backendRequest must not be longer than request",
        ),
        (
            route("  - filters: [{type: URLRewrite, urlRewrite: {}}, {type: RequestRedirect, requestRedirect: {}}]\n"),
            "RequestRedirect and URLRewrite cannot both be set",
        ),
        (
            "apiVersion: gateway.networking.k8s.io/v1\nkind: Gateway\nmetadata: {name: g}\nspec:\n  gatewayClassName: c\n  listeners: [{name: a, port: 80, protocol: HTTP}, {name: a, port: 81, protocol: HTTP}]\n".to_string(),
            "Gateway default/g: field `spec.listeners[1].name`: \"a\" is used by another listener",
        ),
        (
            "apiVersion: gateway.networking.k8s.io/v1\nkind: Gateway\nmetadata: {name: g}\nspec:\n  gatewayClassName: c\n  listeners: [{name: a, port: 80, protocol: HTTP, hostname: 10.0.0.1}]\n".to_string(),
            "field `spec.listeners[0].hostname`: \"10.0.0.1\" is an address",
        ),
        (
            "apiVersion: gateway.networking.k8s.io/v1alpha1\nkind: HTTPRoute\nmetadata: {name: r}\nspec: {}\n".to_string(),
            "unsupported version \"gateway.networking.k8s.io/v1alpha1\" for HTTPRoute",
        ),
    ];
    for (yaml, want) in cases {
        let e = err(&yaml);
        assert!(e.contains(want), "{e}\nwanted: {want}");
    }
}

#[test]
fn grpc_methods_become_paths() {
    let o = parse_documents("apiVersion: gateway.networking.k8s.io/v1\nkind: GRPCRoute\nmetadata: {name: g}\nspec:\n  rules:\n  - matches:\n    - method: {service: pkg.Svc, method: Get}\n    - method: {service: pkg.Svc}\n    - method: {method: Get}\n    - method: {type: RegularExpression, service: 'pkg\\..*'}\n").unwrap();
    let paths: Vec<(String, gateway::MatchType)> =
        o.http_routes[0].rules[0].matches.iter().map(|m| (m.path.value.clone(), m.path.type_)).collect();
    use gateway::MatchType::*;
    assert_eq!(
        paths,
        vec![
            ("/pkg.Svc/Get".to_string(), Exact),
            ("/pkg.Svc".to_string(), Prefix),
            ("/[^/]+/Get".to_string(), RegularExpression),
            ("/(?:pkg\\..*)/[^/]+".to_string(), RegularExpression),
        ]
    );
}
