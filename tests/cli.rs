//! `ringress check`: prints the routing table, or fails with a precise error.

mod support;

use std::process::Command;

use support::run;

fn check(yaml: &str) -> (bool, String, String) {
    let dir = support::proxy::temp_dir();
    let f = dir.join("m.yaml");
    std::fs::write(&f, yaml).unwrap();
    run(Command::new(env!("CARGO_BIN_EXE_ringress")).args(["check", "--manifests"]).arg(&f))
}

#[test]
fn check_prints_the_table_for_the_bundled_example() {
    let (ok, out, err) =
        run(Command::new(env!("CARGO_BIN_EXE_ringress")).args(["check", "--manifests", "examples/demo.yaml"]));
    assert!(ok, "{err}");
    assert!(
        out.contains("demo.example.com") && out.contains("default/demo:http") && out.contains("127.0.0.1:9091"),
        "{out}"
    );
}

#[test]
fn check_fails_with_file_document_object_and_field() {
    let yaml = "apiVersion: v1\nkind: Service\nmetadata: {name: ok}\n---\napiVersion: networking.k8s.io/v1\nkind: Ingress\nmetadata: {name: web, namespace: shop}\nspec:\n  rules:\n  - host: shop.test\n    http:\n      paths:\n      - {path: /, pathType: Prefixx, backend: {service: {name: s, port: {number: 80}}}}\n";
    let (ok, _out, err) = check(yaml);
    assert!(!ok, "bad input accepted");
    for want in ["m.yaml", "document 2", "Ingress shop/web", "spec.rules[0].http.paths[0].pathType", "Prefixx"] {
        assert!(err.contains(want), "error does not name {want:?}: {err}");
    }
}

#[test]
fn check_reports_conflicts_as_warnings() {
    let mut yaml = support::service("s", &["127.0.0.1:9".parse().unwrap()]);
    yaml += &support::ingress("first", Some("a.test"), &[("/x", "s")])
        .replace("namespace: default}", "namespace: default, creationTimestamp: \"2020-01-01T00:00:00Z\"}");
    yaml += &support::ingress("second", Some("a.test"), &[("/x", "s")])
        .replace("namespace: default}", "namespace: default, creationTimestamp: \"2021-01-01T00:00:00Z\"}");
    let (ok, out, err) = check(&yaml);
    assert!(ok, "{err}");
    assert!(out.contains("warning: conflict") && out.contains("default/first (the older) keeps it"), "{out}");
}
