//! Gateway API status, written by the status leader: GatewayClass Accepted; Gateway Accepted
//! and Programmed with its address and each listener's conditions, supported kinds and
//! attached routes; each route's `status.parents` entries for our Gateways (other
//! controllers' entries are kept). Every condition carries the object's generation as
//! `observedGeneration`. The conditions themselves are decided by the lowering
//! ([`crate::snapshot::gateway`]); an object is written again only when they change.

use std::collections::HashMap;
use std::sync::atomic::Ordering;

use k8s_openapi::jiff::Timestamp;
use kube::api::{ApiResource, DynamicObject, GroupVersionKind, Patch, PatchParams};
use kube::{Api, Client};
use serde_json::{json, Value};

use crate::model::gateway::{RouteKind, GROUP};
use crate::model::ObjectKey;
use crate::snapshot::gateway::{Condition, GatewayStatus, RouteStatus, Statuses, CONTROLLER};
use crate::Published;

/// What was last written, by object: an object is written again only when what the lowering
/// decided for it changed (compared as decided, before any JSON is made).
#[derive(Default)]
pub struct Written {
    classes: HashMap<String, i64>,
    gateways: HashMap<ObjectKey, GatewayStatus>,
    routes: HashMap<(RouteKind, ObjectKey), std::sync::Arc<RouteStatus>>,
}

impl Written {
    pub fn clear(&mut self) {
        *self = Written::default();
    }
}

fn api(client: &Client, kind: &str, plural: &str, namespace: Option<&str>) -> Api<DynamicObject> {
    let ar = ApiResource::from_gvk_with_plural(&GroupVersionKind::gvk(GROUP, "v1", kind), plural);
    match namespace {
        Some(ns) => Api::namespaced_with(client.clone(), ns, &ar),
        None => Api::all_with(client.clone(), &ar),
    }
}

fn conditions(list: &[Condition], generation: i64, now: &str) -> Value {
    Value::Array(
        list.iter()
            .map(|c| {
                json!({
                    "type": c.type_,
                    "status": if c.status { "True" } else { "False" },
                    "reason": c.reason,
                    "message": c.message,
                    "observedGeneration": generation,
                    "lastTransitionTime": now,
                })
            })
            .collect(),
    )
}

/// One patch of `status` of the object `name`; whether it was written.
async fn patch(
    api: &Api<DynamicObject>,
    (what, name): (&str, &str),
    status: Value,
    published: &'static Published,
) -> bool {
    patch_at(api, (what, name), status, None, published).await == Ok(())
}

/// Merge-patches an object's status. With `version`, the patch carries it as
/// `metadata.resourceVersion`, a precondition: if the object changed since it was read, the
/// API server refuses it (409) and `Err(true)` says to read it again. `Err(false)`: another
/// failure, logged (the next round tries again).
async fn patch_at(
    api: &Api<DynamicObject>,
    (what, name): (&str, &str),
    status: Value,
    version: Option<String>,
    published: &'static Published,
) -> Result<(), bool> {
    let mut body = json!({ "status": status });
    if let Some(v) = version {
        body["metadata"] = json!({ "resourceVersion": v });
    }
    match api.patch_status(name, &PatchParams::default(), &Patch::Merge(&body)).await {
        Ok(_) => {
            published.control.status_updates.fetch_add(1, Ordering::Relaxed);
            Ok(())
        }
        Err(kube::Error::Api(s)) if s.code == 409 => {
            tracing::debug!(object = %format!("{what} {name}"), "status changed under us; reading it again");
            Err(true)
        }
        Err(e) => {
            published.control.status_errors.fetch_add(1, Ordering::Relaxed);
            tracing::warn!(object = %format!("{what} {name}"), error = %e, "cannot write Gateway API status; will retry");
            Err(false)
        }
    }
}

pub async fn write(
    client: &Client,
    address: &str,
    st: &Statuses,
    written: &mut Written,
    published: &'static Published,
) {
    let now = Timestamp::now().strftime("%Y-%m-%dT%H:%M:%SZ").to_string();
    let classes = api(client, "GatewayClass", "gatewayclasses", None);
    for (name, generation) in &st.classes {
        if written.classes.get(name) == Some(generation) {
            continue;
        }
        let accepted =
            Condition { type_: "Accepted", status: true, reason: "Accepted", message: "served by ringress".into() };
        let status = json!({ "conditions": conditions(&[accepted], *generation, &now) });
        if patch(&classes, ("GatewayClass", name), status, published).await {
            written.classes.insert(name.clone(), *generation);
        }
    }
    let address_type = if address.parse::<std::net::IpAddr>().is_ok() { "IPAddress" } else { "Hostname" };
    for g in &st.gateways {
        if written.gateways.get(&g.key) == Some(g) {
            continue;
        }
        let listeners: Vec<Value> = g
            .listeners
            .iter()
            .map(|l| {
                json!({
                    "name": l.name,
                    "supportedKinds": l.supported_kinds.iter().map(|k| json!({"group": GROUP, "kind": k})).collect::<Vec<_>>(),
                    "attachedRoutes": l.attached_routes,
                    "conditions": conditions(&l.conditions, g.generation, &now),
                })
            })
            .collect();
        let status = json!({
            "addresses": [{"type": address_type, "value": address}],
            "conditions": conditions(&g.conditions, g.generation, &now),
            "listeners": listeners,
        });
        let gateways = api(client, "Gateway", "gateways", Some(&g.key.namespace));
        if patch(&gateways, ("Gateway", &g.key.name), status, published).await {
            written.gateways.insert(g.key.clone(), g.clone());
        }
    }
    for r in &st.routes {
        let id = (r.kind, r.key.clone());
        if written.routes.get(&id) == Some(r) {
            continue;
        }
        let (kind, plural) = (r.kind.name(), r.kind.plural());
        let routes = api(client, kind, plural, Some(&r.key.namespace));
        let ours: Vec<Value> = r
            .parents
            .iter()
            .map(|p| {
                let mut parent = json!({"group": GROUP, "kind": "Gateway", "name": p.parent.name});
                if let Some(ns) = &p.parent.namespace {
                    parent["namespace"] = json!(ns);
                }
                if let Some(s) = &p.parent.section_name {
                    parent["sectionName"] = json!(s);
                }
                if let Some(port) = p.parent.port {
                    parent["port"] = json!(port);
                }
                json!({
                    "parentRef": parent,
                    "controllerName": CONTROLLER,
                    "conditions": conditions(&p.conditions, r.generation, &now),
                })
            })
            .collect();
        // Other controllers' entries stay as they are: read, merged, and written only if the
        // route did not change in between (another controller writing its entries); else
        // read again, a few times, then left to the next round.
        for _ in 0..3 {
            let mut parents = ours.clone();
            let mut version = None;
            if let Ok(current) = routes.get(&r.key.name).await {
                let theirs = current.data.pointer("/status/parents").and_then(Value::as_array).cloned();
                parents.extend(
                    theirs
                        .unwrap_or_default()
                        .into_iter()
                        .filter(|p| p.get("controllerName").and_then(Value::as_str) != Some(CONTROLLER)),
                );
                version = current.metadata.resource_version;
            }
            let status = json!({ "parents": parents });
            match patch_at(&routes, (kind, &r.key.name), status, version, published).await {
                Ok(()) => {
                    written.routes.insert(id, r.clone());
                    break;
                }
                Err(true) => continue,
                Err(false) => break,
            }
        }
    }
}
