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

#[test]
fn log_level_sets_the_filter_and_a_bad_one_is_refused() {
    let bin = env!("CARGO_BIN_EXE_ringress");
    let bad = run(Command::new(bin)
        .args(["--log-level", "debug[", "check", "--manifests", "examples/demo.yaml"])
        .env_remove("RUST_LOG"));
    assert!(!bad.0 && bad.2.contains("--log-level \"debug[\": not a log filter"), "{bad:?}");
    // A running proxy at debug level logs its debug lines (the file provider's load).
    let a = support::Upstream::start("a");
    let dir = support::proxy::temp_dir();
    std::fs::write(dir.join("routes.yaml"), support::service("s", &[a.addr])).unwrap();
    let p = support::Proxy::start_with(dir, "epoll", &["--log-level", "ringress=debug"], |c| {
        c.env_remove("RUST_LOG");
    });
    // A malformed request is logged at debug level ("request failed").
    assert_eq!(support::raw(p.http, b"GET / HTTP/1.1\r\nHost: a\r\nBad Header\r\n\r\n").map(|r| r.status), Some(400));
    p.wait_for(|| p.log_text().contains("DEBUG") && p.log_text().contains("request failed"), "a debug line");
}
