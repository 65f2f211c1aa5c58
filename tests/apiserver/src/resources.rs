//! The kinds this API server knows, and everything derived from that table: discovery (legacy and
//! aggregated), APIResourceLists, and the minimal OpenAPI v3 documents kubectl reads.

use serde_json::{json, Value};

/// One REST resource.
#[derive(Debug)]
pub struct Resource {
    pub group: &'static str,
    pub version: &'static str,
    pub kind: &'static str,
    pub plural: &'static str,
    pub singular: &'static str,
    pub namespaced: bool,
    /// Has a `/status` subresource: the main resource ignores `.status`, the subresource only
    /// changes `.status`.
    pub status: bool,
    pub short_names: &'static [&'static str],
}

impl Resource {
    pub fn api_version(&self) -> String {
        if self.group.is_empty() {
            self.version.to_string()
        } else {
            format!("{}/{}", self.group, self.version)
        }
    }

    /// `/api/v1` or `/apis/group/version`.
    pub fn prefix(&self) -> String {
        if self.group.is_empty() {
            format!("/api/{}", self.version)
        } else {
            format!("/apis/{}/{}", self.group, self.version)
        }
    }
}

#[allow(clippy::too_many_arguments)]
const fn r(
    group: &'static str,
    version: &'static str,
    kind: &'static str,
    plural: &'static str,
    singular: &'static str,
    namespaced: bool,
    status: bool,
    short_names: &'static [&'static str],
) -> Resource {
    Resource { group, version, kind, plural, singular, namespaced, status, short_names }
}

pub static RESOURCES: &[Resource] = &[
    r("", "v1", "Namespace", "namespaces", "namespace", false, true, &["ns"]),
    r("", "v1", "Service", "services", "service", true, true, &["svc"]),
    r("", "v1", "Endpoints", "endpoints", "endpoints", true, false, &["ep"]),
    r("", "v1", "Secret", "secrets", "secret", true, false, &[]),
    r("", "v1", "ConfigMap", "configmaps", "configmap", true, false, &["cm"]),
    r("", "v1", "ServiceAccount", "serviceaccounts", "serviceaccount", true, false, &["sa"]),
    r("", "v1", "Pod", "pods", "pod", true, true, &["po"]),
    r("", "v1", "Event", "events", "event", true, false, &["ev"]),
    r("networking.k8s.io", "v1", "Ingress", "ingresses", "ingress", true, true, &["ing"]),
    r("networking.k8s.io", "v1", "IngressClass", "ingressclasses", "ingressclass", false, false, &[]),
    r("networking.k8s.io", "v1", "NetworkPolicy", "networkpolicies", "networkpolicy", true, false, &["netpol"]),
    r("discovery.k8s.io", "v1", "EndpointSlice", "endpointslices", "endpointslice", true, false, &[]),
    r("coordination.k8s.io", "v1", "Lease", "leases", "lease", true, false, &[]),
    r("apps", "v1", "DaemonSet", "daemonsets", "daemonset", true, true, &["ds"]),
    r("apps", "v1", "Deployment", "deployments", "deployment", true, true, &["deploy"]),
    r("rbac.authorization.k8s.io", "v1", "ClusterRole", "clusterroles", "clusterrole", false, false, &[]),
    r(
        "rbac.authorization.k8s.io",
        "v1",
        "ClusterRoleBinding",
        "clusterrolebindings",
        "clusterrolebinding",
        false,
        false,
        &[],
    ),
    r("rbac.authorization.k8s.io", "v1", "Role", "roles", "role", true, false, &[]),
    r("rbac.authorization.k8s.io", "v1", "RoleBinding", "rolebindings", "rolebinding", true, false, &[]),
];

pub type ResId = usize;

pub fn by_path(group: &str, version: &str, plural: &str) -> Option<ResId> {
    RESOURCES.iter().position(|r| r.group == group && r.version == version && r.plural == plural)
}

pub fn by_kind(api_version: &str, kind: &str) -> Option<ResId> {
    RESOURCES.iter().position(|r| r.api_version() == api_version && r.kind == kind)
}

fn groups() -> Vec<&'static str> {
    let mut g: Vec<&str> = Vec::new();
    for r in RESOURCES {
        if !r.group.is_empty() && !g.contains(&r.group) {
            g.push(r.group);
        }
    }
    g
}

const VERBS: [&str; 8] = ["create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"];

pub fn version() -> Value {
    json!({
        "major": "1", "minor": "32", "gitVersion": "v1.32.0-ringress-fixture",
        "gitCommit": "0000000000000000000000000000000000000000", "gitTreeState": "clean",
        "buildDate": "2026-01-01T00:00:00Z", "goVersion": "go1.23", "compiler": "gc", "platform": "linux/amd64"
    })
}

/// `GET /api` (legacy shape).
pub fn core_versions() -> Value {
    json!({"kind": "APIVersions", "versions": ["v1"],
           "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": "127.0.0.1"}]})
}

/// `GET /apis` (legacy shape).
pub fn group_list() -> Value {
    let groups: Vec<Value> = groups()
        .into_iter()
        .map(|g| {
            let gv = json!({"groupVersion": format!("{g}/v1"), "version": "v1"});
            json!({"name": g, "versions": [gv.clone()], "preferredVersion": gv})
        })
        .collect();
    json!({"kind": "APIGroupList", "apiVersion": "v1", "groups": groups})
}

/// `GET /api/v1` or `/apis/group/v1`: the resources of one group version, if it exists.
pub fn resource_list(group: &str, version: &str) -> Option<Value> {
    let mut resources = Vec::new();
    for r in RESOURCES.iter().filter(|r| r.group == group && r.version == version) {
        resources.push(json!({
            "name": r.plural, "singularName": r.singular, "namespaced": r.namespaced, "kind": r.kind,
            "verbs": VERBS, "shortNames": r.short_names,
        }));
        if r.status {
            resources.push(json!({
                "name": format!("{}/status", r.plural), "singularName": "", "namespaced": r.namespaced,
                "kind": r.kind, "verbs": ["get", "patch", "update"],
            }));
        }
    }
    if resources.is_empty() {
        return None;
    }
    let gv = if group.is_empty() { version.to_string() } else { format!("{group}/{version}") };
    Some(json!({"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": gv, "resources": resources}))
}

pub const AGGREGATED: &str = "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList";

/// Aggregated discovery (apidiscovery.k8s.io/v2) for the core group (`core == true`, `/api`) or
/// for every named group (`/apis`).
pub fn aggregated(core: bool) -> Value {
    let names: Vec<&str> = if core { vec![""] } else { groups() };
    let items: Vec<Value> = names
        .into_iter()
        .map(|g| {
            let resources: Vec<Value> = RESOURCES
                .iter()
                .filter(|r| r.group == g)
                .map(|r| {
                    let kind = json!({"group": r.group, "version": r.version, "kind": r.kind});
                    let sub: Vec<Value> = if r.status {
                        vec![json!({"subresource": "status", "responseKind": kind, "verbs": ["get", "patch", "update"]})]
                    } else {
                        Vec::new()
                    };
                    json!({
                        "resource": r.plural, "responseKind": kind,
                        "scope": if r.namespaced { "Namespaced" } else { "Cluster" },
                        "singularResource": r.singular, "verbs": VERBS, "shortNames": r.short_names,
                        "subresources": sub,
                    })
                })
                .collect();
            json!({"metadata": {"name": g}, "versions": [{"version": "v1", "resources": resources, "freshness": "Current"}]})
        })
        .collect();
    json!({"kind": "APIGroupDiscoveryList", "apiVersion": "apidiscovery.k8s.io/v2", "metadata": {}, "items": items})
}

/// `GET /openapi/v3`: one document per group version.
pub fn openapi_root() -> Value {
    let mut paths = serde_json::Map::new();
    let mut gvs = vec![String::from("api/v1")];
    gvs.extend(groups().into_iter().map(|g| format!("apis/{g}/v1")));
    for gv in gvs {
        paths.insert(gv.clone(), json!({"serverRelativeURL": format!("/openapi/v3/{gv}?hash=ringress-fixture-1")}));
    }
    json!({"paths": paths})
}

/// `GET /openapi/v3/api/v1` etc.: a schema per kind (open: any fields are accepted) and, for
/// every resource path, operations that declare the `fieldValidation` parameter, which is how
/// kubectl learns that the server validates fields itself.
pub fn openapi_doc(gv_path: &str) -> Option<Value> {
    let (group, version) = match gv_path.split('/').collect::<Vec<_>>().as_slice() {
        ["api", v] => ("", *v),
        ["apis", g, v] => (*g, *v),
        _ => return None,
    };
    let mut schemas = serde_json::Map::new();
    let mut paths = serde_json::Map::new();
    let params = json!([
        {"name": "fieldValidation", "in": "query", "schema": {"type": "string", "uniqueItems": true}},
        {"name": "fieldManager", "in": "query", "schema": {"type": "string", "uniqueItems": true}},
        {"name": "dryRun", "in": "query", "schema": {"type": "string", "uniqueItems": true}},
    ]);
    let mut found = false;
    for r in RESOURCES.iter().filter(|r| r.group == group && r.version == version) {
        found = true;
        let gvk = json!({"group": r.group, "version": r.version, "kind": r.kind});
        let schema_name = format!("io.ringress.fixture.{}.{}", r.api_version().replace('/', "."), r.kind);
        let reference = json!({"$ref": format!("#/components/schemas/{schema_name}")});
        schemas.insert(
            schema_name,
            json!({
                "type": "object",
                "x-kubernetes-group-version-kind": [gvk],
                "x-kubernetes-preserve-unknown-fields": true,
                "properties": {
                    "apiVersion": {"type": "string"}, "kind": {"type": "string"},
                    "metadata": {"type": "object", "x-kubernetes-preserve-unknown-fields": true},
                },
            }),
        );
        let op = |action: &str| {
            json!({
                "parameters": params, "x-kubernetes-action": action, "x-kubernetes-group-version-kind": gvk,
                "requestBody": {"content": {"application/json": {"schema": reference}}},
                "responses": {"200": {"content": {"application/json": {"schema": reference}}}},
            })
        };
        let base = r.prefix();
        let collection = if r.namespaced {
            format!("{base}/namespaces/{{namespace}}/{}", r.plural)
        } else {
            format!("{base}/{}", r.plural)
        };
        paths.insert(collection.clone(), json!({"post": op("post"), "get": op("list")}));
        paths.insert(
            format!("{collection}/{{name}}"),
            json!({"put": op("put"), "patch": op("patch"), "get": op("get"), "delete": op("delete")}),
        );
    }
    if !found {
        return None;
    }
    Some(json!({
        "openapi": "3.0.0",
        "info": {"title": "Kubernetes", "version": "v1.32.0"},
        "paths": paths,
        "components": {"schemas": schemas},
    }))
}
