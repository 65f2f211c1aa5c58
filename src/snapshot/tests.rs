use super::*;
use crate::model::{parse_documents, PathType::*};

/// A Service `svc` with one port 80 named `http`, and a slice with one ready endpoint per
/// service at 10.0.0.N:8080 (never dialled: these tests do not touch the network).
fn service_yaml(ns: &str, svc: &str, n: u8) -> String {
    format!(
        r#"
apiVersion: v1
kind: Service
metadata: {{name: {svc}, namespace: {ns}}}
spec:
  ports: [{{name: http, port: 80, targetPort: web}}]
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata:
  name: {svc}-abc
  namespace: {ns}
  labels: {{kubernetes.io/service-name: {svc}}}
addressType: IPv4
endpoints:
- addresses: [10.0.0.{n}]
  conditions: {{ready: true}}
ports: [{{name: http, port: 8080}}]
"#
    )
}

fn ingress_yaml(name: &str, created: &str, host: Option<&str>, paths: &[(PathType, &str, &str)]) -> String {
    let mut s = format!(
        "apiVersion: networking.k8s.io/v1\nkind: Ingress\nmetadata:\n  name: {name}\n  namespace: default\n  creationTimestamp: \"{created}\"\nspec:\n  ingressClassName: ringress\n  rules:\n  - "
    );
    if let Some(h) = host {
        s += &format!("host: \"{h}\"\n    ");
    }
    s += "http:\n      paths:\n";
    for (t, p, svc) in paths {
        s += &format!(
            "      - path: {p}\n        pathType: {}\n        backend: {{service: {{name: {svc}, port: {{number: 80}}}}}}\n",
            match t {
                Exact => "Exact",
                Prefix => "Prefix",
                ImplementationSpecific => "ImplementationSpecific",
            }
        );
    }
    s
}

fn snapshot(yaml: &str) -> Snapshot {
    build(&parse_documents(yaml).expect("test YAML parses"), &BuildOptions::default())
}

fn lookup<'a>(s: &'a Snapshot, host: &str, path: &str) -> Option<&'a Route> {
    let mut buf = [0u8; 256];
    let h = normalize_host(host.as_bytes(), &mut buf).expect("host fits");
    s.table.lookup(h, path)
}

/// Paths of one host, a request path, and the path that must match it.
type PathRow = (&'static [(PathType, &'static str)], &'static str, Option<(PathType, &'static str)>);

/// Every row of the path table in the Kubernetes Ingress docs ("Examples" under "Path types"),
/// plus the rows the issue spells out.
#[test]
fn kubernetes_docs_path_table() {
    #[rustfmt::skip]
    let rows: &[PathRow] = &[
        (&[(Prefix, "/")], "/anything/at/all", Some((Prefix, "/"))),
        (&[(Prefix, "/")], "/", Some((Prefix, "/"))),
        (&[(Exact, "/foo")], "/foo", Some((Exact, "/foo"))),
        (&[(Exact, "/foo")], "/bar", None),
        (&[(Exact, "/foo")], "/foo/", None),
        (&[(Exact, "/foo/")], "/foo", None),
        (&[(Prefix, "/foo")], "/foo", Some((Prefix, "/foo"))),
        (&[(Prefix, "/foo")], "/foo/", Some((Prefix, "/foo"))),
        (&[(Prefix, "/foo/")], "/foo", Some((Prefix, "/foo/"))),
        (&[(Prefix, "/foo/")], "/foo/", Some((Prefix, "/foo/"))),
        (&[(Prefix, "/aaa/bb")], "/aaa/bbb", None),
        (&[(Prefix, "/aaa/bbb")], "/aaa/bbb", Some((Prefix, "/aaa/bbb"))),
        (&[(Prefix, "/aaa/bbb/")], "/aaa/bbb", Some((Prefix, "/aaa/bbb/"))),
        (&[(Prefix, "/aaa/bbb")], "/aaa/bbb/", Some((Prefix, "/aaa/bbb"))),
        (&[(Prefix, "/aaa/bbb")], "/aaa/bbb/ccc", Some((Prefix, "/aaa/bbb"))),
        (&[(Prefix, "/aaa/bbb")], "/aaa/bbbxyz", None),
        (&[(Prefix, "/"), (Prefix, "/aaa")], "/aaa/ccc", Some((Prefix, "/aaa"))),
        (&[(Prefix, "/"), (Prefix, "/aaa"), (Prefix, "/aaa/bbb")], "/aaa/bbb", Some((Prefix, "/aaa/bbb"))),
        (&[(Prefix, "/"), (Prefix, "/aaa"), (Prefix, "/aaa/bbb")], "/ccc", Some((Prefix, "/"))),
        (&[(Prefix, "/aaa")], "/ccc", None),
        (&[(Prefix, "/foo"), (Exact, "/foo")], "/foo", Some((Exact, "/foo"))),
        (&[(Exact, "/foo"), (Prefix, "/foo")], "/foo/", Some((Prefix, "/foo"))),
        // Case-sensitive paths.
        (&[(Exact, "/Foo")], "/foo", None),
        (&[(Prefix, "/Foo")], "/foo/bar", None),
        // ImplementationSpecific is treated as Prefix.
        (&[(ImplementationSpecific, "/api")], "/api/v1", Some((ImplementationSpecific, "/api"))),
        (&[(ImplementationSpecific, "/api")], "/apiv1", None),
        // Longest wins across types; Exact only on the whole path.
        (&[(Exact, "/a/b"), (Prefix, "/a")], "/a/b/c", Some((Prefix, "/a"))),
    ];
    for (i, (paths, request, want)) in rows.iter().enumerate() {
        let mut yaml = service_yaml("default", "svc", 1);
        let ps: Vec<(PathType, &str, &str)> = paths.iter().map(|(t, p)| (*t, *p, "svc")).collect();
        yaml += "---\n";
        yaml += &ingress_yaml("ing", "2024-01-01T00:00:00Z", Some("foo.com"), &ps);
        let s = snapshot(&yaml);
        let got = lookup(&s, "foo.com", request).map(|r| (r.path_type, r.path.as_str()));
        assert_eq!(got, *want, "row {i}: paths {paths:?}, request {request}");
    }
}

#[test]
fn kubernetes_docs_host_table() {
    #[rustfmt::skip]
    let rows: &[(&str, &str, bool)] = &[
        ("*.foo.com", "bar.foo.com", true),
        ("*.foo.com", "baz.bar.foo.com", false),
        ("*.foo.com", "foo.com", false),
        ("foo.bar.com", "foo.bar.com", true),
        ("foo.bar.com", "FOO.Bar.COM", true),
        ("foo.bar.com", "foo.bar.com:8080", true),
        ("foo.bar.com", "foo.bar.com.", true),
        ("foo.bar.com", "bar.com", false),
        ("*.foo.com", "BAR.foo.com:443", true),
    ];
    for (rule, request, want) in rows {
        let yaml = service_yaml("default", "svc", 1)
            + "---\n"
            + &ingress_yaml("ing", "2024-01-01T00:00:00Z", Some(rule), &[(Prefix, "/", "svc")]);
        let s = snapshot(&yaml);
        assert_eq!(lookup(&s, request, "/").is_some(), *want, "rule host {rule}, request host {request}");
    }
}

#[test]
fn exact_host_beats_wildcard_beats_no_host() {
    let mut yaml = String::new();
    for (i, svc) in ["exact", "wild", "any"].iter().enumerate() {
        yaml += &service_yaml("default", svc, i as u8 + 1);
        yaml += "---\n";
    }
    yaml += &ingress_yaml("a", "2024-01-01T00:00:00Z", Some("www.foo.com"), &[(Prefix, "/", "exact")]);
    yaml += "---\n";
    yaml += &ingress_yaml("b", "2024-01-01T00:00:00Z", Some("*.foo.com"), &[(Prefix, "/", "wild")]);
    yaml += "---\n";
    yaml += &ingress_yaml("c", "2024-01-01T00:00:00Z", None, &[(Prefix, "/", "any")]);
    let s = snapshot(&yaml);
    let backend = |host: &str| lookup(&s, host, "/x").map(|r| s.backend(r.backend).name.clone());
    assert_eq!(backend("www.foo.com").as_deref(), Some("default/exact:80"));
    assert_eq!(backend("api.foo.com").as_deref(), Some("default/wild:80"));
    assert_eq!(backend("other.org").as_deref(), Some("default/any:80"));
    assert_eq!(backend("10.1.2.3").as_deref(), Some("default/any:80"));
}

#[test]
fn rules_merge_across_ingresses_and_oldest_wins_conflicts() {
    let mut yaml = service_yaml("default", "old", 1) + "---\n" + &service_yaml("default", "new", 2);
    yaml += "---\n";
    yaml += &ingress_yaml(
        "newer",
        "2024-06-01T00:00:00Z",
        Some("foo.com"),
        &[(Prefix, "/api", "new"), (Prefix, "/web", "new")],
    );
    yaml += "---\n";
    yaml += &ingress_yaml("older", "2023-01-01T00:00:00Z", Some("foo.com"), &[(Prefix, "/api/", "old")]);
    let s = snapshot(&yaml);
    let backend = |path: &str| lookup(&s, "foo.com", path).map(|r| s.backend(r.backend).name.clone());
    assert_eq!(backend("/api/x").as_deref(), Some("default/old:80"), "older Ingress keeps /api");
    assert_eq!(backend("/web").as_deref(), Some("default/new:80"), "rules of both Ingresses merge");
    assert_eq!(s.warnings().len(), 1, "{:?}", s.warnings());
    assert!(
        s.warnings()[0].contains("default/older") && s.warnings()[0].contains("default/newer"),
        "{:?}",
        s.warnings()
    );
}

#[test]
fn conflict_tie_on_timestamp_is_broken_by_namespace_and_name() {
    let mut yaml = service_yaml("default", "a", 1) + "---\n" + &service_yaml("default", "b", 2);
    yaml += "---\n";
    yaml += &ingress_yaml("zzz", "2024-01-01T00:00:00Z", Some("foo.com"), &[(Exact, "/x", "b")]);
    yaml += "---\n";
    yaml += &ingress_yaml("aaa", "2024-01-01T00:00:00Z", Some("foo.com"), &[(Exact, "/x", "a")]);
    let s = snapshot(&yaml);
    let r = lookup(&s, "foo.com", "/x").expect("routed");
    assert_eq!(*r.ingress, crate::model::ObjectKey { namespace: "default".into(), name: "aaa".into() });
}

#[test]
fn class_filtering() {
    let base = service_yaml("default", "svc", 1);
    let ing = |meta_extra: &str, spec_extra: &str| {
        format!(
            "---\napiVersion: networking.k8s.io/v1\nkind: Ingress\nmetadata:\n  name: i\n{meta_extra}spec:\n{spec_extra}  defaultBackend: {{service: {{name: svc, port: {{number: 80}}}}}}\n"
        )
    };
    let cases: &[(&str, String, bool)] = &[
        ("field names our class", ing("", "  ingressClassName: ringress\n"), true),
        ("field names another class", ing("", "  ingressClassName: nginx\n"), false),
        ("annotation names our class", ing("  annotations: {kubernetes.io/ingress.class: ringress}\n", ""), true),
        ("annotation names another class", ing("  annotations: {kubernetes.io/ingress.class: nginx}\n", ""), false),
        (
            "annotation wins over field",
            ing("  annotations: {kubernetes.io/ingress.class: nginx}\n", "  ingressClassName: ringress\n"),
            false,
        ),
        ("no class at all", ing("", ""), false),
        (
            "no class, our IngressClass is the default",
            ing("", "")
                + "---\napiVersion: networking.k8s.io/v1\nkind: IngressClass\nmetadata:\n  name: ringress\n  annotations: {ingressclass.kubernetes.io/is-default-class: \"true\"}\nspec: {controller: ringress.dev/ingress-controller}\n",
            true,
        ),
    ];
    for (what, yaml, served) in cases {
        let s = snapshot(&(base.clone() + yaml));
        assert_eq!(lookup(&s, "any.host", "/").is_some(), *served, "{what}");
    }
}

#[test]
fn named_ports_resolve_through_service_and_slice() {
    let yaml = r#"
apiVersion: v1
kind: Service
metadata: {name: web, namespace: shop}
spec:
  ports:
  - {name: http, port: 80, targetPort: web}
  - {name: metrics, port: 9090, targetPort: 9100}
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {name: web-1, namespace: shop, labels: {kubernetes.io/service-name: web}}
addressType: IPv4
endpoints:
- {addresses: [10.1.0.1], conditions: {ready: true}}
- {addresses: [10.1.0.2], conditions: {ready: false}}
- {addresses: [10.1.0.3]}
ports: [{name: http, port: 8080}, {name: metrics, port: 9100}]
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {name: web-2, namespace: shop, labels: {kubernetes.io/service-name: web}}
addressType: IPv4
endpoints: [{addresses: [10.1.0.4]}]
ports: [{name: http, port: 8081}]
---
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata: {name: web, namespace: shop}
spec:
  ingressClassName: ringress
  rules:
  - host: shop.example
    http:
      paths:
      - {path: /, pathType: Prefix, backend: {service: {name: web, port: {name: http}}}}
      - {path: /metrics, pathType: Exact, backend: {service: {name: web, port: {number: 9090}}}}
"#;
    let s = snapshot(yaml);
    let eps = |path: &str| {
        let r = lookup(&s, "shop.example", path).expect("routed");
        s.backend(r.backend).endpoints.iter().map(|e| e.to_string()).collect::<Vec<_>>()
    };
    assert_eq!(eps("/"), ["10.1.0.1:8080", "10.1.0.3:8080", "10.1.0.4:8081"]);
    assert_eq!(eps("/metrics"), ["10.1.0.1:9100", "10.1.0.3:9100"]);
}

#[test]
fn legacy_v1beta1_ingress_and_v1_endpoints() {
    let yaml = r#"
apiVersion: extensions/v1beta1
kind: Ingress
metadata:
  name: audio-callback-api
  annotations: {kubernetes.io/ingress.class: ringress}
spec:
  rules:
  - host: cl-k8s.example.com
    http:
      paths:
      - path: /audio
        backend: {serviceName: audio-callback-api, servicePort: http}
---
apiVersion: v1
kind: Service
metadata: {name: audio-callback-api}
spec:
  ports: [{name: http, port: 80, targetPort: 8080}]
---
apiVersion: v1
kind: Endpoints
metadata: {name: audio-callback-api}
subsets:
- addresses: [{ip: 10.2.0.7}]
  notReadyAddresses: [{ip: 10.2.0.8}]
  ports: [{name: http, port: 8080}]
"#;
    let s = snapshot(yaml);
    let r = lookup(&s, "cl-k8s.example.com", "/audio/x").expect("routed");
    assert_eq!(r.path_type, ImplementationSpecific);
    assert_eq!(s.backend(r.backend).endpoints, ["10.2.0.7:8080".parse().unwrap()]);
}

#[test]
fn dangling_references_give_an_empty_backend_and_a_warning() {
    let yaml = ingress_yaml("i", "2024-01-01T00:00:00Z", Some("a.com"), &[(Prefix, "/", "missing")]);
    let s = snapshot(&yaml);
    let r = lookup(&s, "a.com", "/").expect("route exists");
    assert!(s.backend(r.backend).endpoints.is_empty());
    assert!(
        s.warnings().iter().any(|w| w.contains("default/missing") && w.contains("not found")),
        "{:?}",
        s.warnings()
    );
}

#[test]
fn default_backend_catches_unmatched_requests() {
    let yaml = service_yaml("default", "fallback", 1)
        + "---\n"
        + &service_yaml("default", "svc", 2)
        + "---\n"
        + &ingress_yaml("i", "2024-01-01T00:00:00Z", Some("a.com"), &[(Exact, "/only", "svc")])
        + "  defaultBackend: {service: {name: fallback, port: {number: 80}}}\n";
    let s = snapshot(&yaml);
    let name = |h: &str, p: &str| lookup(&s, h, p).map(|r| s.backend(r.backend).name.clone());
    assert_eq!(name("a.com", "/only").as_deref(), Some("default/svc:80"));
    assert_eq!(name("a.com", "/other").as_deref(), Some("default/fallback:80"));
    assert_eq!(name("b.com", "/").as_deref(), Some("default/fallback:80"));
}

#[test]
fn lookup_cost_does_not_depend_on_ingress_count() {
    // Counted in probes (hash lookups and expression matches), not time: the same request
    // costs the same against 1 Ingress and 1,000 (500 hosts, and 500 paths on one host).
    let table = |n: usize| {
        let mut yaml = service_yaml("default", "svc", 1);
        for i in 0..n {
            yaml += "---\n";
            let host = format!("h{i}.example.com");
            yaml += &ingress_yaml(&format!("i{i}"), "2024-01-01T00:00:00Z", Some(&host), &[(Prefix, "/", "svc")]);
            yaml += "---\n";
            let path = format!("/p{i}/deep");
            yaml += &ingress_yaml(
                &format!("j{i}"),
                "2024-01-01T00:00:00Z",
                Some("shared.example"),
                &[(Prefix, &path, "svc")],
            );
        }
        snapshot(&yaml)
    };
    let cost = |s: &Snapshot, host: &str, path: &str| {
        super::table::probes::take();
        let found = lookup(s, host, path).is_some();
        (found, super::table::probes::take())
    };
    let (small, large) = (table(1), table(500));
    assert_eq!(large.table.len(), 1000);
    for (host, path) in [
        ("h0.example.com", "/a/b/c"),
        ("shared.example", "/p0/deep/x"),
        ("unknown.example", "/a/b"),
        ("shared.example", "/nowhere/at/all"),
    ] {
        let (a, b) = (cost(&small, host, path), cost(&large, host, path));
        assert_eq!(a, b, "{host}{path}: (found, probes) with 1 vs 500 Ingresses per kind");
        assert!(a.1 <= 6, "{host}{path}: {} probes", a.1);
    }
}

#[test]
fn endpoint_only_update_equals_a_full_build_and_shares_the_table() {
    let ingresses =
        ingress_yaml("shop", "2024-01-01T00:00:00Z", Some("shop.example"), &[(Prefix, "/", "a"), (Prefix, "/b", "b")]);
    let before = format!("{ingresses}---{}---{}", service_yaml("default", "a", 1), service_yaml("default", "b", 2));
    // `a` scales to a new address, `b` loses its Service, `c` (unreferenced) appears.
    let after = format!(
        "{ingresses}---{}---{}",
        service_yaml("default", "a", 9),
        service_yaml("default", "c", 3).split("---").nth(1).expect("the slice half")
    );
    let opts = BuildOptions::default();
    let prev = snapshot(&before);
    let objects = parse_documents(&after).expect("parses");
    let inputs = Inputs::of(&objects);
    let changed = ["a", "b", "c"].map(|n| ObjectKey { namespace: "default".into(), name: n.into() });
    let updated = update_endpoints(&prev, &inputs, &changed);
    let full = build_from(&inputs, &opts);
    assert!(Arc::ptr_eq(&prev.table, &updated.table), "the route table is shared, not rebuilt");
    let view = |s: &Snapshot| {
        s.backends.iter().map(|b| (b.name.clone(), b.endpoints.clone(), b.problem.clone())).collect::<Vec<_>>()
    };
    assert_eq!(view(&updated), view(&full));
    assert_eq!(updated.warnings(), full.warnings());
    assert!(updated.has_endpoint(&"10.0.0.9:8080".parse().unwrap()));
    // The departed endpoint lingers in the set until a full build (documented).
    // An unchanged backend is the same allocation.
    let unchanged = update_endpoints(&prev, &Inputs::of(&parse_documents(&before).unwrap()), &changed[..1]);
    assert!(Arc::ptr_eq(&prev.backends[0], &unchanged.backends[0]));
}

/// A small deterministic generator (no external crates): xorshift.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }
}

/// What a user can observe of a snapshot: the backend (by name) and Ingress each probe
/// routes to, and the warnings.
fn observe(s: &Snapshot) -> (Vec<Option<(String, String)>>, Vec<String>) {
    let hosts = ["a.test", "b.test", "x.wild.test", "c.test", "other"];
    let paths = ["/", "/api", "/api/v1", "/static", "/x"];
    let mut out = Vec::new();
    for h in hosts {
        for p in paths {
            out.push(lookup(s, h, p).map(|r| (s.backend(r.backend).name.clone(), r.ingress.to_string())));
        }
    }
    (out, s.warnings())
}

#[test]
fn incremental_host_updates_route_exactly_like_a_full_build() {
    // Random Ingress edits (hosts, wildcards, no-host rules, default backends, conflicts,
    // other classes, deletions), each applied incrementally to the previous snapshot and
    // compared with a full build of the same objects.
    let mut rng = Rng(0x2545F4914F6CDD1D);
    let services: String =
        ["s0", "s1", "s2"].iter().enumerate().map(|(i, s)| service_yaml("default", s, i as u8 + 1) + "---\n").collect();
    let base = parse_documents(&services).unwrap();
    let opts = BuildOptions::default();
    let mut ingresses: Vec<crate::model::Ingress> = Vec::new();
    let mut snap = build(&base, &opts);
    for step in 0..300 {
        let before: Vec<crate::model::Ingress> = ingresses.clone();
        let name = format!("i{}", rng.below(6));
        let existing = ingresses.iter().position(|i| i.key.name == name);
        if rng.below(5) == 0 {
            if let Some(i) = existing {
                ingresses.remove(i);
            }
        } else {
            let host = ["a.test", "b.test", "*.wild.test", ""][rng.below(4) as usize];
            let paths: Vec<(PathType, &str, &str)> = (0..1 + rng.below(2))
                .map(|_| {
                    let t = if rng.below(3) == 0 { Exact } else { Prefix };
                    (
                        t,
                        ["/", "/api", "/static"][rng.below(3) as usize],
                        ["s0", "s1", "s2", "gone"][rng.below(4) as usize],
                    )
                })
                .collect();
            let created = format!("2024-01-0{}T00:00:00Z", 1 + rng.below(3));
            let mut y = ingress_yaml(&name, &created, (!host.is_empty()).then_some(host), &paths);
            if rng.below(4) == 0 {
                y = y.replace("  ingressClassName: ringress\n", &format!("  defaultBackend: {{service: {{name: s{}, port: {{number: 80}}}}}}\n  ingressClassName: ringress\n", rng.below(3)));
            }
            if rng.below(6) == 0 {
                y = y.replace("ingressClassName: ringress", "ingressClassName: nginx");
            }
            let ing = parse_documents(&y).unwrap().ingresses.pop().unwrap();
            match existing {
                Some(i) => ingresses[i] = ing,
                None => ingresses.push(ing),
            }
        }
        // The hosts touched: the changed Ingress's before and after.
        let touched = |list: &[crate::model::Ingress]| -> Vec<HostKey> {
            list.iter().filter(|i| i.key.name == name).flat_map(HostKey::of_ingress).collect()
        };
        let mut keys = touched(&before);
        keys.extend(touched(&ingresses));
        keys.sort();
        keys.dedup();
        let mut objects = base.clone();
        objects.ingresses = ingresses.clone();
        let inputs = Inputs::of(&objects);
        let hosts: Vec<(HostKey, Vec<&crate::model::Ingress>)> = keys
            .into_iter()
            .map(|k| {
                let list = inputs.ingresses.iter().copied().filter(|i| HostKey::of_ingress(i).contains(&k)).collect();
                (k, list)
            })
            .collect();
        snap = update_hosts(&snap, &inputs, &hosts, &opts);
        let full = build_from(&inputs, &opts);
        assert_eq!(observe(&snap), observe(&full), "step {step}: incremental and full builds differ");
        assert_eq!(snap.table.len(), full.table.len(), "step {step}");
    }
}

/// `use-regex` paths: matched as case-insensitive expressions anchored at the start, longest
/// expression first, before Prefix paths; two expressions sharing a literal start do not
/// conflict; one that does not compile falls back to its literal start with a warning.
#[test]
fn regex_paths_match_by_expression() {
    let regex_ingress = ingress_yaml(
        "re",
        "2024-01-01T00:00:00Z",
        Some("re.test"),
        &[
            (ImplementationSpecific, "/api/v(1|2)/.*", "v12"),
            (ImplementationSpecific, "/api/v3", "v3"),
            (Prefix, "/bad(", "bad"),
        ],
    )
    .replace(
        "  namespace: default\n",
        "  namespace: default\n  annotations: {nginx.ingress.kubernetes.io/use-regex: \"true\"}\n",
    );
    let plain = ingress_yaml("plain", "2024-01-02T00:00:00Z", Some("re.test"), &[(Prefix, "/api", "plain")]);
    let yaml = [
        service_yaml("default", "v12", 1),
        service_yaml("default", "v3", 2),
        service_yaml("default", "bad", 3),
        service_yaml("default", "plain", 4),
        regex_ingress,
        plain,
    ]
    .join("---\n");
    let s = snapshot(&yaml);
    let svc = |path: &str| lookup(&s, "re.test", path).map(|r| s.backend(r.backend).service.name.clone());
    assert_eq!(svc("/api/v1/users").as_deref(), Some("v12"));
    assert_eq!(svc("/API/V2/x").as_deref(), Some("v12"), "case-insensitive, as nginx's ~*");
    assert_eq!(svc("/api/v3/x").as_deref(), Some("v3"));
    assert_eq!(svc("/api/v4").as_deref(), Some("plain"), "no expression matches: the Prefix path");
    assert_eq!(svc("/api/v1").as_deref(), Some("plain"), "`/api/v(1|2)/.*` needs the slash");
    assert_eq!(svc("/bad/x").as_deref(), Some("bad"), "an invalid expression routes by its literal start");
    let warnings = s.warnings();
    assert!(warnings.iter().any(|w| w.contains("\"/bad(\" is not a regular expression")), "{warnings:?}");
    assert!(!warnings.iter().any(|w| w.contains("conflict")), "{warnings:?}");
}

/// An HTTPRoute's host rebuilt alone (the kube provider's incremental update) resolves every
/// backend its rule names, weighted or mirrored, as a full build does.
#[test]
fn an_httproute_rebuilt_alone_resolves_every_backend_it_names() {
    let base = ["a", "b", "c"].iter().enumerate().map(|(i, s)| service_yaml("default", s, i as u8 + 1)).collect::<Vec<_>>().join("---\n")
        + "---\napiVersion: gateway.networking.k8s.io/v1\nkind: GatewayClass\nmetadata: {name: r}\nspec: {controllerName: ringress.dev/gateway-controller}\n---\napiVersion: gateway.networking.k8s.io/v1\nkind: Gateway\nmetadata: {name: g, namespace: default}\nspec:\n  gatewayClassName: r\n  listeners: [{name: http, port: 80, protocol: HTTP}]\n";
    let route = "---\napiVersion: gateway.networking.k8s.io/v1\nkind: HTTPRoute\nmetadata: {name: r, namespace: default}\nspec:\n  parentRefs: [{name: g}]\n  hostnames: [h.test]\n  rules:\n  - backendRefs: [{name: a, port: 80, weight: 1}, {name: b, port: 80, weight: 1}]\n    filters: [{type: RequestMirror, requestMirror: {backendRef: {name: c, port: 80}}}]\n";
    let mut before = parse_documents(&base).unwrap();
    gateway::lower_objects(&mut before);
    let prev = build(&before, &BuildOptions::default());
    let mut after = parse_documents(&(base.clone() + route)).unwrap();
    gateway::lower_objects(&mut after);
    let inputs = Inputs::of(&after);
    let lowered: Vec<&crate::model::Ingress> = inputs.ingresses.clone();
    let hosts = vec![(HostKey::Exact("h.test".into()), lowered)];
    let incremental = update_hosts(&prev, &inputs, &hosts, &BuildOptions::default());
    let full = build(&after, &BuildOptions::default());
    for s in [&incremental, &full] {
        let r = lookup(s, "h.test", "/").expect("routed");
        let g = r.gateway.as_deref().expect("a Gateway API rule");
        let names = |ids: Vec<BackendId>| -> Vec<(String, bool)> {
            ids.into_iter().map(|id| (s.backend(id).name.clone(), s.backend(id).endpoints.is_empty())).collect()
        };
        let split: Vec<BackendId> = g.split.iter().map(|(b, _)| b.expect("resolved")).collect();
        assert_eq!(names(split), vec![("default/a:80".into(), false), ("default/b:80".into(), false)]);
        assert_eq!(names(g.mirrors.iter().map(|(b, _)| *b).collect()), vec![("default/c:80".into(), false)]);
    }
}

/// Every Gateway listens on the same node addresses: the oldest valid listener claims a port
/// for its protocol, 80 and 443 are ringress's own, and the other HTTP, HTTPS and TLS ports
/// become listeners of their own (unless a forwarded port holds them).
#[test]
fn gateway_listener_ports_are_claimed_once_across_gateways() {
    let gw = |name: &str, created: &str, listeners: &str| {
        format!("---\napiVersion: gateway.networking.k8s.io/v1\nkind: Gateway\nmetadata: {{name: {name}, namespace: default, creationTimestamp: \"{created}\"}}\nspec:\n  gatewayClassName: r\n  listeners:\n{listeners}")
    };
    let yaml = "apiVersion: gateway.networking.k8s.io/v1\nkind: GatewayClass\nmetadata: {name: r}\nspec: {controllerName: ringress.dev/gateway-controller}\n".to_string()
        + &gw("old", "2026-01-01T00:00:00Z", "  - {name: a, port: 8080, protocol: HTTP}\n  - {name: b, port: 80, protocol: HTTP}\n  - {name: c, port: 9443, protocol: TLS, tls: {mode: Passthrough}}\n")
        + &gw("new", "2026-02-01T00:00:00Z", "  - {name: b, port: 443, protocol: HTTP}\n  - {name: c, port: 8080, protocol: HTTP, hostname: x.test}\n  - {name: d, port: 9443, protocol: TLS, hostname: y.test, tls: {mode: Passthrough}}\n")
        + &gw("tcp", "2026-03-01T00:00:00Z", "  - {name: a, port: 8080, protocol: TCP}\n");
    let mut objects = parse_documents(&yaml).unwrap();
    let statuses = gateway::lower_objects(&mut objects);
    assert_eq!(objects.listener_ports, vec![(8080, false), (9443, true)]);
    let conflicted = |gateway: &str, i: usize| {
        let g = statuses.gateways.iter().find(|g| g.key.name == gateway).unwrap();
        let c = g.listeners[i].conditions.iter().find(|c| c.type_ == "Conflicted").unwrap();
        (c.status, c.reason)
    };
    assert_eq!(conflicted("tcp", 0), (true, "ProtocolConflict"), "TCP on an older Gateway's HTTP port");
    assert_eq!(conflicted("new", 0), (true, "ProtocolConflict"), "HTTP on ringress's HTTPS port");
    assert_eq!(conflicted("new", 1), (false, "NoConflicts"), "HTTP shares the older Gateway's HTTP port");
    assert_eq!(conflicted("new", 2), (false, "NoConflicts"), "TLS shares the older Gateway's TLS port");
    // The ports ringress listens on itself are not opened again.
    objects.l4_routes.clear();
    let opts = BuildOptions {
        l4: crate::snapshot::l4::L4Options { reserved: vec![9443], ..Default::default() },
        ..Default::default()
    };
    let s = build(&objects, &opts);
    assert_eq!(s.l4.http, vec![(8080, false)], "ringress's own ports are not opened again");
}
