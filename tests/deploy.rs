//! The manifests under deploy/: each object parses into its typed k8s-openapi struct with no
//! field lost, both kustomizations apply to the test API server with the real kubectl, and
//! ringress starts with the DaemonSet's own arguments against what they created.

mod support;

use std::path::{Path, PathBuf};

use k8s_openapi::api::apps::v1::DaemonSet;
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Service, ServiceAccount};
use k8s_openapi::api::networking::v1::{IngressClass, NetworkPolicy};
use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding, Role, RoleBinding};
use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::Value;
use support::*;

fn yaml_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        let p = e.path();
        // The Gateway API CRDs as their project publishes them, vendored unchanged.
        if p.is_dir() && !p.ends_with("gateway-api-crds") {
            yaml_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "yaml") && p.file_name().unwrap() != "kustomization.yaml" {
            out.push(p);
        }
    }
}

/// Parses `doc` as `T` and checks that serializing it back gives the same document: a field
/// the type does not have (a typo, a wrong level) would be dropped and fail here.
fn typed<T: DeserializeOwned + Serialize>(doc: &Value, file: &Path) {
    let t: T = serde_json::from_value(doc.clone()).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
    let back = serde_json::to_value(&t).unwrap();
    assert_eq!(&back, doc, "{}: fields lost in the typed round trip", file.display());
}

/// Every overlay under deploy/ (each directory with a kustomization.yaml), rendered by the
/// real kubectl's kustomize, as (overlay, YAML).
fn rendered_overlays() -> Vec<(PathBuf, String)> {
    let mut dirs = vec![PathBuf::from("deploy")];
    let mut out = Vec::new();
    while let Some(d) = dirs.pop() {
        for e in std::fs::read_dir(&d).unwrap().flatten() {
            if e.path().is_dir() {
                dirs.push(e.path());
            }
        }
        if d.join("kustomization.yaml").exists() {
            let o =
                std::process::Command::new(support::cluster::kubectl_path()).arg("kustomize").arg(&d).output().unwrap();
            assert!(o.status.success(), "kubectl kustomize {}: {}", d.display(), String::from_utf8_lossy(&o.stderr));
            out.push((d, String::from_utf8(o.stdout).unwrap()));
        }
    }
    out.sort();
    out
}

/// The files themselves and every overlay as kustomize renders it: each object must be the
/// Kubernetes type of its kind, as k8s-openapi (the API version we target) defines it, with
/// its required fields and no unknown one.
#[test]
fn every_manifest_and_every_rendered_overlay_parses_into_its_typed_object() {
    let mut files = Vec::new();
    yaml_files(Path::new("deploy"), &mut files);
    let mut sources: Vec<(PathBuf, String)> =
        files.iter().map(|f| (f.clone(), std::fs::read_to_string(f).unwrap())).collect();
    let overlays = rendered_overlays();
    let names: Vec<String> = overlays.iter().map(|(d, _)| d.display().to_string()).collect();
    for o in ["deploy", "deploy/base", "deploy/nodeport", "deploy/runtime-default", "deploy/gateway-api"] {
        assert!(names.iter().any(|n| n == o), "overlay {o} not rendered: {names:?}");
    }
    sources.extend(overlays.into_iter().map(|(d, y)| (d.join("(rendered)"), y)));
    let mut kinds = Vec::new();
    for (f, text) in &sources {
        let f = f.as_path();
        for doc in serde_yaml_ng::Deserializer::from_str(text) {
            let v: Value = serde::Deserialize::deserialize(doc).unwrap_or_else(|e| panic!("{}: {e}", f.display()));
            if v.is_null() {
                continue;
            }
            let kind = v["kind"].as_str().unwrap_or_else(|| panic!("{}: no kind", f.display())).to_string();
            match kind.as_str() {
                "Namespace" => typed::<Namespace>(&v, f),
                "ServiceAccount" => typed::<ServiceAccount>(&v, f),
                "ClusterRole" => typed::<ClusterRole>(&v, f),
                "ClusterRoleBinding" => typed::<ClusterRoleBinding>(&v, f),
                "Role" => typed::<Role>(&v, f),
                "RoleBinding" => typed::<RoleBinding>(&v, f),
                "IngressClass" => typed::<IngressClass>(&v, f),
                "ConfigMap" => typed::<ConfigMap>(&v, f),
                "DaemonSet" => typed::<DaemonSet>(&v, f),
                "Service" => typed::<Service>(&v, f),
                "NetworkPolicy" => typed::<NetworkPolicy>(&v, f),
                // No k8s-openapi type: checked by ringress's own reading of it.
                "GatewayClass" => {
                    let parsed = ringress::model::parse_documents(&serde_yaml_ng::to_string(&v).unwrap())
                        .unwrap_or_else(|e| panic!("{}: {e}", f.display()));
                    assert_eq!(parsed.gateway_classes.len(), 1, "{}", f.display());
                    assert_eq!(parsed.gateway_classes[0].spec.controller_name, "ringress.dev/gateway-controller");
                }
                other => panic!("{}: no typed check for kind {other}", f.display()),
            }
            if f.ends_with("(rendered)") {
                // Rendered: the image is the one kustomization's, the same for every overlay.
                for c in v.pointer("/spec/template/spec/containers").into_iter().flat_map(|c| c.as_array().unwrap()) {
                    assert_eq!(c["image"], format!("ringress:{}", env!("CARGO_PKG_VERSION")), "{}", f.display());
                }
                for c in v.pointer("/spec/template/spec/initContainers").into_iter().flat_map(|c| c.as_array().unwrap())
                {
                    assert_eq!(c["image"], format!("ringress:{}", env!("CARGO_PKG_VERSION")), "{}", f.display());
                }
            } else if let Some(cs) = v.pointer("/spec/template/spec/containers") {
                // In the files, no tag: it is set in deploy/base/kustomization.yaml alone.
                for c in cs.as_array().unwrap() {
                    assert_eq!(c["image"], "ringress", "{}: the tag belongs in the kustomization", f.display());
                }
            }
            kinds.push(kind);
        }
    }
    for k in [
        "Namespace",
        "ServiceAccount",
        "ClusterRole",
        "ClusterRoleBinding",
        "IngressClass",
        "ConfigMap",
        "DaemonSet",
        "Service",
    ] {
        assert!(kinds.iter().any(|x| x == k), "deploy/ has no {k}");
    }

    // The DaemonSet: what the issue and operators require of it.
    let ds: DaemonSet =
        serde_yaml_ng::from_str(&std::fs::read_to_string("deploy/base/daemonset.yaml").unwrap()).unwrap();
    let pod = ds.spec.unwrap().template.spec.unwrap();
    assert_eq!(pod.host_network, Some(true));
    assert_eq!(pod.dns_policy.as_deref(), Some("ClusterFirstWithHostNet"));
    assert!(pod.node_selector.is_some() && pod.tolerations.is_some());
    let c = &pod.containers[0];
    assert!(c.liveness_probe.is_some() && c.readiness_probe.is_some() && c.resources.is_some());
    // Non-root, NET_BIND_SERVICE alone, io_uring through the Localhost profile.
    let sc = c.security_context.as_ref().unwrap();
    assert_eq!((sc.run_as_user, sc.run_as_group, sc.run_as_non_root), (Some(65532), Some(65532), Some(true)));
    assert_eq!((sc.allow_privilege_escalation, sc.read_only_root_filesystem), (Some(false), Some(true)));
    let caps = sc.capabilities.as_ref().unwrap();
    assert_eq!(caps.drop.as_deref(), Some(&["ALL".to_string()][..]));
    assert_eq!(caps.add.as_deref(), Some(&["NET_BIND_SERVICE".to_string()][..]));
    let seccomp = sc.seccomp_profile.as_ref().unwrap();
    assert_eq!(
        (seccomp.type_.as_str(), seccomp.localhost_profile.as_deref()),
        ("Localhost", Some("seccomp-ringress.json"))
    );
    // The admin port on loopback; /metrics on the node's address, closed to all but a block.
    let args = c.args.as_ref().unwrap();
    assert!(args.iter().any(|a| a == "--admin=127.0.0.1:10254"), "{args:?}");
    assert!(args.iter().any(|a| a == "--metrics=$(HOST_IP):10253"), "{args:?}");
    assert!(args.iter().any(|a| a.starts_with("--metrics-allow=")), "{args:?}");
    // The init container that installs the profile: root with CHOWN and FOWNER, nothing more.
    let init = &pod.init_containers.as_ref().unwrap()[0];
    let isc = init.security_context.as_ref().unwrap();
    assert_eq!((isc.run_as_user, isc.allow_privilege_escalation), (Some(0), Some(false)));
    let icaps = isc.capabilities.as_ref().unwrap();
    assert_eq!(icaps.drop.as_deref(), Some(&["ALL".to_string()][..]));
    assert_eq!(icaps.add.as_deref(), Some(&["CHOWN".to_string(), "FOWNER".to_string()][..]));
    assert!(init.args.as_ref().unwrap().iter().any(|a| a == "--seccomp-dir=/host/seccomp"));

    // The seccomp profile keeps io_uring allowed.
    let prof: Value = serde_json::from_str(&std::fs::read_to_string("deploy/seccomp-ringress.json").unwrap()).unwrap();
    let denied: Vec<&str> = prof["syscalls"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|r| r["names"].as_array().unwrap())
        .filter_map(Value::as_str)
        .collect();
    assert!(denied.contains(&"kexec_load") && denied.iter().all(|s| !s.starts_with("io_uring")));
}

#[test]
fn kustomizations_apply_with_kubectl_and_ringress_runs_with_the_daemonset_args() {
    let c = Cluster::start();
    let out = c.kubectl(&["apply", "-k", "deploy/"]);
    assert!(out.contains("daemonset.apps/ringress created"), "{out}");
    assert_eq!(
        c.kubectl(&["-n", "ringress", "get", "ds", "ringress", "-o", "jsonpath={.spec.template.spec.hostNetwork}"]),
        "true"
    );
    assert_eq!(
        c.kubectl(&["get", "ingressclass", "ringress", "-o", "jsonpath={.spec.controller}"]),
        "ringress.dev/ingress-controller"
    );
    let out = c.kubectl(&["apply", "-k", "deploy/nodeport"]);
    assert!(out.contains("service/ringress created"), "{out}");
    assert_eq!(c.kubectl(&["-n", "ringress", "get", "svc", "ringress", "-o", "jsonpath={.spec.type}"]), "NodePort");
    assert_eq!(
        c.kubectl(&["-n", "ringress", "get", "ds", "ringress", "-o", "jsonpath={.spec.template.spec.hostNetwork}"]),
        "false"
    );
    // Off the host network the kubelet probes the pod IP: admin binds it, the probes name no
    // host (127.0.0.1 would be the node's loopback), and only the proxy ports are open.
    let field = |path: &str| c.kubectl(&["-n", "ringress", "get", "ds", "ringress", "-o", &format!("jsonpath={path}")]);
    assert!(field("{.spec.template.spec.containers[0].args}").contains("--admin=$(POD_IP):10254"));
    assert_eq!(
        field("{.spec.template.spec.containers[0].env[?(@.name==\"POD_IP\")].valueFrom.fieldRef.fieldPath}"),
        "status.podIP"
    );
    assert_eq!(field("{.spec.template.spec.containers[0].livenessProbe.httpGet.host}"), "");
    assert_eq!(field("{.spec.template.spec.containers[0].readinessProbe.httpGet.host}"), "");
    assert_eq!(field("{.spec.template.spec.containers[0].livenessProbe.httpGet.port}"), "10254");
    let ports = c.kubectl(&[
        "-n",
        "ringress",
        "get",
        "networkpolicy",
        "ringress",
        "-o",
        "jsonpath={.spec.ingress[*].ports[*].port}",
    ]);
    assert_eq!(ports, "8080 8443 10253");
    assert!(field("{.spec.template.spec.containers[0].args}").contains("--metrics=$(POD_IP):10253"));

    // The DaemonSet's arguments, as the container would get them (listeners moved to
    // loopback test ports), against the objects the kustomization created.
    let ds: DaemonSet =
        serde_yaml_ng::from_str(&std::fs::read_to_string("deploy/base/daemonset.yaml").unwrap()).unwrap();
    let args = ds.spec.unwrap().template.spec.unwrap().containers[0].args.clone().unwrap();
    assert_eq!(args[0], "run");
    let listeners = |a: &&str| ["--http=", "--https=", "--admin=", "--metrics="].iter().any(|p| a.starts_with(p));
    assert_eq!(args.iter().map(String::as_str).filter(listeners).count(), 4, "{args:?}");
    let mut all: Vec<&str> = args[1..].iter().map(String::as_str).filter(|a| !listeners(a)).collect();
    all.extend(["--publish-address", "192.0.2.7", "--election-identity", "node-a", "--metrics", "127.0.0.1:0"]);
    let a = Upstream::start("a");
    c.apply(&(service("a", &[a.addr]) + &ingress("site", Some("app.test"), &[("/", "a")])));
    let p = c.proxy(&all);
    assert_eq!(get(p.http, "app.test", "/").status, 200);
    p.wait_for(
        || c.kubectl(&["get", "ingress", "site", "-o", "jsonpath={.status.loadBalancer.ingress[0].ip}"]) == "192.0.2.7",
        "status through the deploy/ Lease namespace",
    );
    c.assert_rbac_allows_what_ringress_did();
}

#[test]
fn the_gateway_api_overlay_applies_once_the_crds_are_installed() {
    let c = Cluster::start();
    c.kubectl(&["apply", "--server-side", "-f", "deploy/gateway-api-crds/standard-install.yaml"]);
    let out = c.kubectl(&["apply", "-k", "deploy/gateway-api"]);
    assert!(out.contains("gatewayclass.gateway.networking.k8s.io/ringress created"), "{out}");
    assert!(out.contains("clusterrole.rbac.authorization.k8s.io/ringress-gateway-api created"), "{out}");
    let args = c.kubectl(&[
        "-n",
        "ringress",
        "get",
        "ds",
        "ringress",
        "-o",
        "jsonpath={.spec.template.spec.containers[0].args}",
    ]);
    assert!(args.contains("--gateway-api"), "{args}");
}
