//! Ingress and Service status: one replica of the DaemonSet, elected through a
//! coordination.k8s.io Lease, writes `status.loadBalancer.ingress` on the Ingresses of our
//! class and on the LoadBalancer Services the L4 load balancer serves (and only those: an
//! object of another class is never given an address). The others stand by and take over
//! when the holder stops renewing.
//!
//! On Services it also takes our address away again when a Service stops being served (its
//! class or type changed, or it lost every port), and keeps the `ringress.dev/PortConflict`
//! condition in `status.conditions` true while the Service has lost a port to an older one.
//! An Ingress's address is left when it changes class: the new class's controller writes its
//! own, and two deployments may publish one host name.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::networking::v1::Ingress;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use k8s_openapi::jiff::Timestamp;
use kube::api::{Patch, PatchParams, PostParams};
use kube::{Api, Client};
use tokio::sync::watch;

use super::store::{StatusItem, StatusOf, StatusView};
use crate::model::ObjectKey;
use crate::Published;

#[derive(Clone, Debug)]
pub struct StatusOptions {
    /// What `kubectl get ingress` shows as ADDRESS: an IP, or a host name.
    pub address: String,
    /// The Lease (namespace/name) replicas compete for.
    pub lease: ObjectKey,
    /// This replica's name in the Lease (the pod name in a cluster).
    pub identity: String,
    pub lease_duration: Duration,
}

/// How long a status write is given to come back through the watch before it is retried.
const SETTLE: Duration = Duration::from_secs(3);

/// Starts the elector and writer; returns where the control loop sends each new view.
pub fn spawn(client: Client, opts: StatusOptions, published: &'static Published) -> watch::Sender<StatusView> {
    let (tx, rx) = watch::channel(StatusView::default());
    tokio::spawn(run(client, opts, published, rx));
    tx
}

async fn run(
    client: Client,
    opts: StatusOptions,
    published: &'static Published,
    mut views: watch::Receiver<StatusView>,
) {
    let stats = &published.control;
    let leases: Api<Lease> = Api::namespaced(client.clone(), &opts.lease.namespace);
    let renew_every = opts.lease_duration / 3;
    let mut leader = false;
    // When we last wrote each Ingress's status: not written again until the write has had
    // time to come back through the watch (an overwrite by someone else is corrected after).
    let mut pending: HashMap<ObjectKey, Instant> = HashMap::new();
    // The annotation notes recorded as Events, by Ingress: recorded again only when they change.
    let mut noted: HashMap<ObjectKey, Vec<crate::snapshot::annotations::Note>> = HashMap::new();
    // The Gateway API statuses written, by object: written again only when they change.
    let mut gateway_written = super::gateway_status::Written::default();
    loop {
        let now_leader = match try_lead(&leases, &opts).await {
            Ok(l) => l,
            Err(e) => {
                tracing::warn!(lease = %opts.lease, error = %e, "leader election: cannot reach the Lease");
                false
            }
        };
        if now_leader != leader {
            leader = now_leader;
            pending.clear();
            gateway_written.clear();
            stats.leader.store(u64::from(leader), Ordering::Relaxed);
            tracing::info!(lease = %opts.lease, identity = %opts.identity, leader, "status writer leadership changed");
        }
        if leader {
            let view = views.borrow_and_update().clone();
            write_all(&client, &opts, &view, &mut pending, published).await;
            super::gateway_status::write(&client, &opts.address, &view.gateway, &mut gateway_written, published).await;
            let with_notes: Vec<&StatusItem> = view.items.iter().filter(|i| !i.notes.is_empty()).collect();
            let keys: std::collections::HashSet<&ObjectKey> = with_notes.iter().map(|i| &i.key).collect();
            noted.retain(|k, _| keys.contains(k));
            for item in with_notes {
                if noted.get(&item.key) != Some(&item.notes) && note_events(&client, &opts, item).await {
                    noted.insert(item.key.clone(), item.notes.clone());
                }
            }
        }
        stats.status_rounds.fetch_add(1, Ordering::Relaxed);
        // Renew on schedule; a new view (when leading) is acted on at once.
        let _ = tokio::time::timeout(renew_every, views.changed()).await;
    }
}

fn address_entry(address: &str) -> serde_json::Value {
    if address.parse::<IpAddr>().is_ok() {
        serde_json::json!({"ip": address})
    } else {
        serde_json::json!({"hostname": address})
    }
}

async fn write_all(
    client: &Client,
    opts: &StatusOptions,
    view: &StatusView,
    pending: &mut HashMap<ObjectKey, Instant>,
    published: &'static Published,
) {
    pending.retain(|_, at| at.elapsed() < SETTLE);
    for item in &view.items {
        let (kind, key) = (item.kind, &item.key);
        let Some(patch) = status_patch(item, &opts.address) else { continue };
        if pending.contains_key(key) {
            continue;
        }
        let pp = PatchParams::default();
        let r = match kind {
            StatusOf::Ingress => Api::<Ingress>::namespaced(client.clone(), &key.namespace)
                .patch_status(&key.name, &pp, &Patch::Merge(&patch))
                .await
                .map(drop),
            // Strategic: `status.conditions` merges by type, so other controllers' conditions stay.
            StatusOf::Service => Api::<Service>::namespaced(client.clone(), &key.namespace)
                .patch_status(&key.name, &pp, &Patch::Strategic(&patch))
                .await
                .map(drop),
        };
        match r {
            Ok(_) => {
                pending.insert(key.clone(), Instant::now());
                published.control.status_updates.fetch_add(1, Ordering::Relaxed);
                if let Some(message) = item.want_conflict.as_ref().filter(|m| item.conflict.as_ref() != Some(*m)) {
                    conflict_event(client, opts, item, message).await;
                }
            }
            Err(e) => {
                published.control.status_errors.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(kind = ?kind, object = %key, error = %e, "cannot write status; will retry");
            }
        }
    }
}

/// A Warning Event on a Service whose port-conflict condition was just set or changed, so
/// `kubectl describe service` shows it too. Best effort: the condition is the record.
async fn conflict_event(client: &Client, opts: &StatusOptions, item: &StatusItem, message: &str) {
    let name = format!("{}.{:x}", item.key.name, Timestamp::now().as_nanosecond());
    let about = ("v1", "Service", item);
    if let Err(e) = warning_event(client, opts, about, &name, "PortConflict", message).await {
        tracing::warn!(object = %item.key, error = %e, "cannot record the port-conflict Event");
    }
}

/// The Warning Events for an Ingress's annotation notes that were not recorded yet. Each is
/// named after the Ingress's uid, the annotation and the message, so it is created once:
/// again (after a restart, or by a new leader) the API server answers AlreadyExists.
async fn note_events(client: &Client, opts: &StatusOptions, item: &StatusItem) -> bool {
    use sha2::Digest as _;
    let mut all_recorded = true;
    for note in &item.notes {
        let mut h = sha2::Sha256::new();
        for part in [item.uid.as_deref().unwrap_or(""), &note.annotation, &note.message] {
            h.update(part.as_bytes());
            h.update([0]);
        }
        let digest = h.finalize();
        let short: String = item.key.name.chars().take(200).collect();
        let name = format!("{short}.{:016x}", u64::from_be_bytes(digest[..8].try_into().expect("8 bytes")));
        let reason = if note.refused { "RouteRefused" } else { "UnsupportedAnnotation" };
        match warning_event(client, opts, ("networking.k8s.io/v1", "Ingress", item), &name, reason, &note.message).await
        {
            Ok(()) => {}
            Err(kube::Error::Api(e)) if e.code == 409 => {}
            Err(e) => {
                all_recorded = false;
                tracing::warn!(object = %item.key, error = %e, "cannot record an annotation Event; will retry");
            }
        }
    }
    all_recorded
}

/// Creates a Warning Event named `name` about `item` (of `api_version` and `kind`).
async fn warning_event(
    client: &Client,
    opts: &StatusOptions,
    (api_version, kind, item): (&str, &str, &StatusItem),
    name: &str,
    reason: &str,
    message: &str,
) -> Result<(), kube::Error> {
    use k8s_openapi::api::core::v1::{Event, EventSource, ObjectReference};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
    let now = Timestamp::now();
    let event = Event {
        metadata: ObjectMeta {
            name: Some(name.to_string()),
            namespace: Some(item.key.namespace.clone()),
            ..Default::default()
        },
        involved_object: ObjectReference {
            api_version: Some(api_version.into()),
            kind: Some(kind.into()),
            name: Some(item.key.name.clone()),
            namespace: Some(item.key.namespace.clone()),
            uid: item.uid.clone(),
            ..Default::default()
        },
        reason: Some(reason.into()),
        message: Some(message.to_string()),
        type_: Some("Warning".into()),
        source: Some(EventSource { component: Some("ringress".into()), host: None }),
        reporting_component: Some("ringress".into()),
        reporting_instance: Some(opts.identity.clone()),
        first_timestamp: Some(Time(now)),
        last_timestamp: Some(Time(now)),
        count: Some(1),
        ..Default::default()
    };
    Api::<Event>::namespaced(client.clone(), &item.key.namespace).create(&PostParams::default(), &event).await.map(drop)
}

/// The status patch `item` needs, if any.
fn status_patch(item: &StatusItem, address: &str) -> Option<serde_json::Value> {
    use serde_json::{json, Map, Value};
    let mut status = Map::new();
    let ours = item.addresses.len() == 1 && item.addresses[0] == address;
    if item.served && !ours {
        status.insert("loadBalancer".into(), json!({"ingress": [address_entry(address)]}));
    } else if !item.served && ours {
        status.insert("loadBalancer".into(), json!({"ingress": null}));
    }
    if item.conflict != item.want_conflict {
        let condition = match &item.want_conflict {
            Some(message) => {
                let mut c = json!({
                    "type": crate::model::PORT_CONFLICT_CONDITION,
                    "status": "True",
                    "reason": "PortInUse",
                    "message": message,
                });
                // A new condition starts now; a changed message keeps the time it became true.
                if item.conflict.is_none() {
                    c["lastTransitionTime"] = json!(Timestamp::now().strftime("%Y-%m-%dT%H:%M:%SZ").to_string());
                }
                c
            }
            None => json!({"type": crate::model::PORT_CONFLICT_CONDITION, "$patch": "delete"}),
        };
        status.insert("conditions".into(), json!([condition]));
    }
    (!status.is_empty()).then(|| json!({ "status": Value::Object(status) }))
}

/// One election round: create, renew or take over the Lease. `Ok(true)` while we hold it.
async fn try_lead(leases: &Api<Lease>, opts: &StatusOptions) -> Result<bool, kube::Error> {
    let now = MicroTime(Timestamp::now());
    let secs = opts.lease_duration.as_secs().max(1) as i32;
    let Some(mut lease) = leases.get_opt(&opts.lease.name).await? else {
        let fresh = Lease {
            metadata: ObjectMeta { name: Some(opts.lease.name.clone()), ..Default::default() },
            spec: Some(LeaseSpec {
                holder_identity: Some(opts.identity.clone()),
                lease_duration_seconds: Some(secs),
                acquire_time: Some(now.clone()),
                renew_time: Some(now),
                lease_transitions: Some(0),
                ..Default::default()
            }),
        };
        return match leases.create(&PostParams::default(), &fresh).await {
            Ok(_) => Ok(true),
            Err(kube::Error::Api(s)) if s.code == 409 => Ok(false),
            Err(e) => Err(e),
        };
    };
    let spec = lease.spec.get_or_insert_with(Default::default);
    let mine = spec.holder_identity.as_deref() == Some(opts.identity.as_str());
    if !mine {
        let duration = Duration::from_secs(spec.lease_duration_seconds.unwrap_or(secs).max(1) as u64);
        let renewed = spec.renew_time.as_ref().map(|t| t.0);
        let expired = match renewed {
            Some(t) => Timestamp::now().duration_since(t).unsigned_abs() > duration && Timestamp::now() > t,
            None => true,
        };
        if !expired {
            return Ok(false);
        }
        spec.holder_identity = Some(opts.identity.clone());
        spec.acquire_time = Some(now.clone());
        spec.lease_transitions = Some(spec.lease_transitions.unwrap_or(0) + 1);
    }
    spec.renew_time = Some(now);
    spec.lease_duration_seconds = Some(secs);
    // The replace carries the resourceVersion we read: if another replica got there first,
    // the API server answers 409 and we are not the leader this round.
    match leases.replace(&opts.lease.name, &PostParams::default(), &lease).await {
        Ok(_) => Ok(true),
        Err(kube::Error::Api(s)) if s.code == 409 => Ok(false),
        Err(e) => Err(e),
    }
}
