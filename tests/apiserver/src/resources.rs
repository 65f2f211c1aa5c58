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
    /// The resource whose objects these are: itself, or for another served version of a
    /// CustomResourceDefinition, the storage version's (objects are kept once, in that
    /// version, and shown in the version asked for).
    pub storage: ResId,
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
    Resource { group, version, kind, plural, singular, namespaced, status, short_names, storage: usize::MAX }
}

static BUILTIN: &[Resource] = &[
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
    r(
        "apiextensions.k8s.io",
        "v1",
        "CustomResourceDefinition",
        "customresourcedefinitions",
        "customresourcedefinition",
        false,
        true,
        &["crd", "crds"],
    ),
    r(
        "admissionregistration.k8s.io",
        "v1",
        "ValidatingAdmissionPolicy",
        "validatingadmissionpolicies",
        "validatingadmissionpolicy",
        false,
        true,
        &[],
    ),
    r(
        "admissionregistration.k8s.io",
        "v1",
        "ValidatingAdmissionPolicyBinding",
        "validatingadmissionpolicybindings",
        "validatingadmissionpolicybinding",
        false,
        false,
        &[],
    ),
];

pub type ResId = usize;

/// Every resource: the built-in ones, then those CustomResourceDefinitions added, one per
/// served version. Never shrinks (a deleted CRD's resources stay served), so an id stays
/// valid for the life of the process.
static REGISTRY: std::sync::RwLock<Vec<&'static Resource>> = std::sync::RwLock::new(Vec::new());

fn registry() -> std::sync::RwLockReadGuard<'static, Vec<&'static Resource>> {
    {
        let r = REGISTRY.read().unwrap_or_else(|e| e.into_inner());
        if !r.is_empty() {
            return r;
        }
    }
    {
        let mut w = REGISTRY.write().unwrap_or_else(|e| e.into_inner());
        if w.is_empty() {
            for (i, b) in BUILTIN.iter().enumerate() {
                w.push(Box::leak(Box::new(Resource { storage: i, short_names: b.short_names, ..*b })));
            }
        }
    }
    REGISTRY.read().unwrap_or_else(|e| e.into_inner())
}

/// The resource of an id ([`by_path`], [`by_kind`]).
pub fn res(id: ResId) -> &'static Resource {
    registry()[id]
}

/// Every resource, in id order.
pub fn all() -> Vec<&'static Resource> {
    registry().clone()
}

pub fn by_path(group: &str, version: &str, plural: &str) -> Option<ResId> {
    registry().iter().position(|r| r.group == group && r.version == version && r.plural == plural)
}

pub fn by_kind(api_version: &str, kind: &str) -> Option<ResId> {
    registry().iter().position(|r| r.api_version() == api_version && r.kind == kind)
}

/// Whether `api_version` is one of the served versions of `id`'s kind.
pub fn same_kind(id: ResId, api_version: &str) -> bool {
    let r = res(id);
    by_kind(api_version, r.kind).is_some_and(|other| res(other).storage == r.storage)
}

fn leak(s: &str) -> &'static str {
    Box::leak(s.to_string().into_boxed_str())
}

/// Serves the resources a CustomResourceDefinition (`apiextensions.k8s.io/v1`) defines: one
/// per served version, sharing the storage version's objects. A definition seen before (by
/// group and plural) changes nothing.
pub fn register_crd(crd: &Value) -> Result<(), String> {
    let spec = crd.get("spec").ok_or("spec: required")?;
    let text = |v: Option<&Value>, field: &str| -> Result<&'static str, String> {
        v.and_then(Value::as_str).filter(|s| !s.is_empty()).map(leak).ok_or(format!("{field}: required"))
    };
    let group = text(spec.get("group"), "spec.group")?;
    let names = spec.get("names").ok_or("spec.names: required")?;
    let kind = text(names.get("kind"), "spec.names.kind")?;
    let plural = text(names.get("plural"), "spec.names.plural")?;
    let singular = text(names.get("singular"), "spec.names.singular").unwrap_or_else(|_| leak(&kind.to_lowercase()));
    let short: Vec<&'static str> = names
        .get("shortNames")
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(Value::as_str).map(leak).collect())
        .unwrap_or_default();
    let short_names: &'static [&'static str] = Box::leak(short.into_boxed_slice());
    let namespaced = match spec.get("scope").and_then(Value::as_str) {
        Some("Namespaced") => true,
        Some("Cluster") => false,
        other => return Err(format!("spec.scope: must be Namespaced or Cluster, not {other:?}")),
    };
    let versions = spec.get("versions").and_then(Value::as_array).ok_or("spec.versions: required")?;
    let served: Vec<&Value> =
        versions.iter().filter(|v| v.get("served").and_then(Value::as_bool) == Some(true)).collect();
    let storage_count = versions.iter().filter(|v| v.get("storage").and_then(Value::as_bool) == Some(true)).count();
    if storage_count != 1 {
        return Err(format!("spec.versions: exactly one version must be the storage version ({storage_count} are)"));
    }
    let mut w = {
        drop(registry());
        REGISTRY.write().unwrap_or_else(|e| e.into_inner())
    };
    if w.iter().any(|r| r.group == group && r.plural == plural) {
        return Ok(());
    }
    let first = w.len();
    let storage_at = served.iter().position(|v| v.get("storage").and_then(Value::as_bool) == Some(true));
    let storage = first + storage_at.ok_or("spec.versions: the storage version must be served")?;
    for v in served {
        let version = text(v.get("name"), "spec.versions[].name")?;
        let status = v.pointer("/subresources/status").is_some();
        w.push(Box::leak(Box::new(Resource {
            group,
            version,
            kind,
            plural,
            singular,
            namespaced,
            status,
            short_names,
            storage,
        })));
    }
    Ok(())
}

/// Named groups and their versions, in the order they were first registered.
fn groups() -> Vec<(&'static str, Vec<&'static str>)> {
    let mut g: Vec<(&str, Vec<&str>)> = Vec::new();
    for r in all() {
        if r.group.is_empty() {
            continue;
        }
        match g.iter_mut().find(|(name, _)| *name == r.group) {
            Some((_, versions)) if !versions.contains(&r.version) => versions.push(r.version),
            Some(_) => {}
            None => g.push((r.group, vec![r.version])),
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
        .map(|(g, versions)| {
            let gvs: Vec<Value> =
                versions.iter().map(|v| json!({"groupVersion": format!("{g}/{v}"), "version": v})).collect();
            json!({"name": g, "versions": gvs, "preferredVersion": gvs[0]})
        })
        .collect();
    json!({"kind": "APIGroupList", "apiVersion": "v1", "groups": groups})
}

/// `GET /api/v1` or `/apis/group/v1`: the resources of one group version, if it exists.
pub fn resource_list(group: &str, version: &str) -> Option<Value> {
    let mut resources = Vec::new();
    for r in all().into_iter().filter(|r| r.group == group && r.version == version) {
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
    let names: Vec<(&str, Vec<&str>)> = if core { vec![("", vec!["v1"])] } else { groups() };
    let items: Vec<Value> = names
        .into_iter()
        .map(|(g, versions)| {
            let versions: Vec<Value> = versions.into_iter().map(|v| {
            let resources: Vec<Value> = all()
                .into_iter()
                .filter(|r| r.group == g && r.version == v)
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
            json!({"version": v, "resources": resources, "freshness": "Current"})
            }).collect();
            json!({"metadata": {"name": g}, "versions": versions})
        })
        .collect();
    json!({"kind": "APIGroupDiscoveryList", "apiVersion": "apidiscovery.k8s.io/v2", "metadata": {}, "items": items})
}

/// `GET /openapi/v3`: one document per group version.
pub fn openapi_root() -> Value {
    let mut paths = serde_json::Map::new();
    let mut gvs = vec![String::from("api/v1")];
    for (g, versions) in groups() {
        gvs.extend(versions.into_iter().map(|v| format!("apis/{g}/{v}")));
    }
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
    for r in all().into_iter().filter(|r| r.group == group && r.version == version) {
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
