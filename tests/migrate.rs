//! `ringress migrate` against the test API server with the real kubectl: an ingress-nginx
//! installation's Ingresses and ConfigMap give the expected verdict per annotation and key and
//! the exit code; it only reads; the manifests give the same report as the cluster; and the
//! Ingresses it emits apply with kubectl and are served by ringress beside the originals.

mod support;

use std::process::Command;

use serde_json::Value;
use support::cluster::Cluster;
use support::*;

const NGINX: &str = r#"
apiVersion: v1
kind: Namespace
metadata: {name: ingress-nginx}
---
apiVersion: v1
kind: ConfigMap
metadata: {name: ingress-nginx-controller, namespace: ingress-nginx}
data:
  proxy-body-size: 16m
  use-forwarded-headers: "true"
  worker-processes: "4"
  enable-opentelemetry: "true"
  keep-alive: forever
  no-such-key: x
---
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata:
  name: shop
  namespace: default
  annotations:
    kubernetes.io/ingress.class: nginx
    nginx.ingress.kubernetes.io/ssl-redirect: "false"
    nginx.ingress.kubernetes.io/proxy-body-size: 8m
    nginx.ingress.kubernetes.io/proxy-buffering: "on"
    nginx.ingress.kubernetes.io/proxy-buffers-number: "8"
    nginx.ingress.kubernetes.io/enable-cors: "true"
    nginx.ingress.kubernetes.io/mirror-target: "https://mirror.test$request_uri"
    nginx.ingress.kubernetes.io/proxy-read-timeout: soon
    nginx.ingress.kubernetes.io/rewrite-targt: /
    cert-manager.io/cluster-issuer: letsencrypt
spec:
  rules:
  - host: shop.test
    http:
      paths:
      - {path: /, pathType: Prefix, backend: {service: {name: shop, port: {number: 80}}}}
---
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata:
  name: admin
  namespace: default
  annotations:
    nginx.ingress.kubernetes.io/configuration-snippet: "deny all;"
    nginx.ingress.kubernetes.io/whitelist-source-range: 10.0.0.0/8
spec:
  ingressClassName: nginx
  rules:
  - host: admin.test
    http:
      paths:
      - {path: /, pathType: Prefix, backend: {service: {name: shop, port: {number: 80}}}}
---
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata:
  name: promo
  namespace: default
  annotations:
    nginx.ingress.kubernetes.io/canary: "true"
    nginx.ingress.kubernetes.io/canary-weight: "20"
spec:
  ingressClassName: nginx
  rules:
  - host: shop.test
    http:
      paths:
      - {path: /, pathType: Prefix, backend: {service: {name: shop, port: {number: 80}}}}
---
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata:
  name: elsewhere
  namespace: default
  annotations:
    nginx.ingress.kubernetes.io/configuration-snippet: "deny all;"
spec:
  ingressClassName: traefik
  rules:
  - host: other.test
    http:
      paths:
      - {path: /, pathType: Prefix, backend: {service: {name: shop, port: {number: 80}}}}
"#;

/// `ringress migrate ARGS`: (exit code, stdout, stderr).
fn migrate(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_ringress")).arg("migrate").args(args).output().unwrap();
    (out.status.code().unwrap_or(-1), String::from_utf8(out.stdout).unwrap(), String::from_utf8(out.stderr).unwrap())
}

/// `status` of `key` in the report's Ingress `name`.
fn status<'a>(report: &'a Value, name: &str, key: &str) -> &'a str {
    let ing = report["ingresses"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["name"] == name)
        .unwrap_or_else(|| panic!("no {name}"));
    let f = ing["annotations"].as_array().unwrap().iter().find(|f| f["key"] == key);
    f.unwrap_or_else(|| panic!("{name}: no {key} in {ing}"))["status"].as_str().unwrap()
}

fn key_status<'a>(report: &'a Value, key: &str) -> &'a str {
    let keys = report["configMap"]["keys"].as_array().unwrap();
    keys.iter().find(|f| f["key"] == key).unwrap_or_else(|| panic!("no {key}"))["status"].as_str().unwrap()
}

#[test]
fn the_report_from_a_cluster_names_each_annotation_and_key_and_emitted_ingresses_serve_beside_the_originals() {
    let c = Cluster::start();
    c.kubectl(&["apply", "-f", "deploy/base/namespace.yaml"]);
    c.apply(NGINX);
    let kubeconfig = c.kubeconfig.to_str().unwrap();
    let before = c.api.requests().len();
    let (code, out, err) = migrate(&["--kubeconfig", kubeconfig, "--output", "json"]);
    assert_eq!(code, 2, "refusals exit 2: {err}");
    // Read-only: lists and gets, nothing written.
    let made = c.api.requests()[before..].to_vec();
    assert!(!made.is_empty() && made.iter().all(|r| r.verb == "list" || r.verb == "get"), "{made:?}");
    let report: Value = serde_json::from_str(&out).unwrap();

    let names: Vec<&str> =
        report["ingresses"].as_array().unwrap().iter().map(|i| i["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["admin", "promo", "shop"], "only class nginx (field or legacy annotation)");
    let p = "nginx.ingress.kubernetes.io/";
    for (name, key, want) in [
        ("shop", "ssl-redirect", "supported"),
        ("shop", "proxy-body-size", "supported"),
        ("shop", "proxy-buffering", "no-op"),
        ("shop", "proxy-buffers-number", "no-op"),
        ("shop", "enable-cors", "supported"),
        ("shop", "mirror-target", "unsupported"),
        ("shop", "proxy-read-timeout", "invalid"),
        ("shop", "rewrite-targt", "unknown"),
        ("admin", "configuration-snippet", "refused"),
        ("admin", "whitelist-source-range", "supported"),
        ("promo", "canary", "supported"),
        ("promo", "canary-weight", "supported"),
    ] {
        assert_eq!(status(&report, name, &format!("{p}{key}")), want, "{name} {key}");
    }
    let verdict =
        |n: &str| report["ingresses"].as_array().unwrap().iter().find(|i| i["name"] == n).unwrap()["verdict"].clone();
    assert_eq!(
        (verdict("shop"), verdict("admin"), verdict("promo")),
        ("differs".into(), "refused".into(), "ready".into())
    );
    // Another controller's annotation is not ours to judge.
    assert!(!out.contains("cert-manager.io"));
    for (key, want) in [
        ("proxy-body-size", "supported"),
        ("use-forwarded-headers", "supported"),
        ("worker-processes", "no-op"),
        ("enable-opentelemetry", "unsupported"),
        ("keep-alive", "invalid"),
        ("no-such-key", "unknown"),
    ] {
        assert_eq!(key_status(&report, key), want, "ConfigMap {key}");
    }
    assert_eq!(report["summary"]["refused"], 1);

    // The text report says the same for people.
    let (code, text, _) = migrate(&["--kubeconfig", kubeconfig]);
    assert_eq!(code, 2);
    assert!(
        text.contains("Ingress default/admin: refused")
            && text.contains("REFUSED      nginx.ingress.kubernetes.io/configuration-snippet"),
        "{text}"
    );
    assert!(text.contains("what to do:"), "{text}");

    // The same objects from files: the same report.
    let dir = support::proxy::temp_dir();
    std::fs::write(dir.join("nginx.yaml"), NGINX).unwrap();
    let (code, from_files, _) = migrate(&["--manifests", dir.to_str().unwrap(), "--output", "json"]);
    assert_eq!(code, 2);
    let mut from_files: Value = serde_json::from_str(&from_files).unwrap();
    from_files["source"] = report["source"].clone();
    assert_eq!(from_files, report);

    // Without the refused Ingresses: exit 0.
    c.kubectl(&["delete", "ingress", "admin", "promo"]);
    let (code, _, err) = migrate(&["--kubeconfig", kubeconfig]);
    assert_eq!(code, 0, "{err}");

    // --emit: the Ingress for class ringress, beside the original, and ringress's ConfigMap;
    // applied with kubectl, ringress serves the copy while the original stays ingress-nginx's.
    let emit = dir.join("emit");
    let (code, _, err) = migrate(&["--kubeconfig", kubeconfig, "--emit", emit.to_str().unwrap()]);
    assert_eq!(code, 0, "{err}");
    let out = c.kubectl(&["apply", "-R", "-f", emit.to_str().unwrap()]);
    assert!(out.contains("ingress.networking.k8s.io/shop-ringress created"), "{out}");
    assert!(out.contains("configmap/ringress created"), "{out}");
    assert_eq!(c.kubectl(&["get", "ingress", "shop-ringress", "-o", "jsonpath={.spec.ingressClassName}"]), "ringress");
    assert_eq!(
        c.kubectl(&[
            "get",
            "ingress",
            "shop",
            "-o",
            "jsonpath={.metadata.annotations.kubernetes\\.io/ingress\\.class}"
        ]),
        "nginx"
    );
    assert_eq!(
        c.kubectl(&["-n", "ringress", "get", "configmap", "ringress", "-o", "jsonpath={.data.proxy-body-size}"]),
        "16m"
    );
    // The no-op annotation went along unchanged (a string, though YAML 1.1 would read `on` as true).
    assert_eq!(
        c.kubectl(&[
            "get",
            "ingress",
            "shop-ringress",
            "-o",
            "jsonpath={.metadata.annotations.nginx\\.ingress\\.kubernetes\\.io/proxy-buffering}"
        ]),
        "on"
    );
    let up = Upstream::start("shop");
    c.apply(&service("shop", &[up.addr]));
    let proxy = c.proxy(&[]);
    let r = get(proxy.http, "shop.test", "/");
    assert_eq!((r.status, r.text().contains("shop")), (200, true), "{}", r.text());
    // Only the copy is ringress's: one route for shop.test, from shop-ringress.
    let routes = get(proxy.admin, "x", "/debug/routes").text();
    assert!(routes.contains("default/shop-ringress") && !routes.contains("\"default/shop\""), "{routes}");

    // Bad input: a clear message, exit 1.
    let (code, _, err) = migrate(&["--kubeconfig", kubeconfig, "--configmap", "nonsense"]);
    assert_eq!(code, 1);
    assert!(err.contains("--configmap \"nonsense\": expected namespace/name"), "{err}");
    let (code, _, err) = migrate(&["--manifests", "/nonexistent/ringress-migrate"]);
    assert_eq!(code, 1);
    assert!(err.contains("/nonexistent/ringress-migrate"), "{err}");
}
