//! The kube provider: Kubernetes mode, on the control thread (a tokio runtime of its own).
//!
//! kube-runtime watchers for Ingress, IngressClass, Service, EndpointSlice, Secret (TLS and auth)
//! and our ConfigMap feed one store of parsed objects ([`store`]); the watchers' initial lists
//! are buffered and swapped in whole, as a reflector does. Every change marks the state dirty,
//! and at most one snapshot is published per `debounce` window (an isolated change goes out at
//! once, a burst is coalesced): a full build when classes, Secrets or the ConfigMap changed or
//! a watch relisted; otherwise the changed Ingresses' hosts are rebuilt
//! ([`crate::snapshot::update_hosts`]) and the changed Services' endpoints re-resolved
//! ([`crate::snapshot::update_endpoints`]), sharing the rest of the table. Nothing is published before every watched kind has finished its first list, so
//! `/readyz` never turns 200 on a half-synced table. When the API server goes away the
//! watchers retry with backoff and the last snapshot keeps serving. A Lease-elected replica
//! writes the Ingresses' `status.loadBalancer` ([`status`]).

mod gateway_status;
mod status;
mod store;

use std::collections::BTreeSet;
use std::fmt::Debug;
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use anyhow::Context;
use futures::{Stream, StreamExt};
use k8s_openapi::api::core::v1::{ConfigMap, Secret, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use k8s_openapi::api::networking::v1::{Ingress, IngressClass};
use kube::runtime::watcher::{self, Event};
use kube::runtime::WatchStreamExt;
use kube::{Api, Client, Resource, ResourceExt};
use serde::de::DeserializeOwned;

use crate::model::{parse_object, ObjectKey};
use crate::provider::dns::Resolver;
use crate::snapshot::{build_after, update_endpoints, update_hosts, BuildOptions, HostKey};
use crate::Published;

pub use status::StatusOptions;
use store::{Change, Item, Kind, Store};

/// How Kubernetes mode is set up (the `run` flags without `--manifests`).
#[derive(Clone, Debug)]
pub struct KubeOptions {
    /// `--kubeconfig`; otherwise `KUBECONFIG`, `~/.kube/config`, then the in-cluster config.
    pub kubeconfig: Option<PathBuf>,
    /// `--namespace`: watch Ingresses, Services, slices and Secrets of this namespace only.
    pub namespace: Option<String>,
    /// `--configmap namespace/name`: our ConfigMap (the others of its namespace are read for
    /// `add-headers`).
    pub config_map: ObjectKey,
    /// `--sync-debounce-ms`: at most one publish per this window; a burst is coalesced.
    pub debounce: Duration,
    /// Where and as whom Ingress status is written; `None` never writes it.
    pub status: Option<StatusOptions>,
    /// `--gateway-api`: watch and serve the Gateway API kinds too.
    pub gateway_api: bool,
}

/// Connects (fails fast on configuration errors, e.g. no kubeconfig at all), then runs the
/// watchers and the publisher on the calling thread forever. `started` is told when the
/// client is configured, or why it could not be.
pub fn run(
    opts: KubeOptions,
    build: BuildOptions,
    published: &'static Published,
    started: std::sync::mpsc::Sender<anyhow::Result<()>>,
    dns: Resolver,
) {
    let rt = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            let _ = started.send(Err(e.into()));
            return;
        }
    };
    rt.block_on(async move {
        let client = match client(opts.kubeconfig.as_deref()).await {
            Ok(c) => c,
            Err(e) => {
                let _ = started.send(Err(e));
                return;
            }
        };
        let _ = started.send(Ok(()));
        control(client, opts, build, published, dns).await
    });
}

/// A client from `kubeconfig`, else `KUBECONFIG`, `~/.kube/config`, then the in-cluster config.
pub async fn client(kubeconfig: Option<&std::path::Path>) -> anyhow::Result<Client> {
    let config = match kubeconfig {
        Some(path) => {
            let kc = kube::config::Kubeconfig::read_from(path).with_context(|| format!("--kubeconfig {}", path.display()))?;
            kube::Config::from_custom_kubeconfig(kc, &kube::config::KubeConfigOptions::default())
                .await
                .with_context(|| format!("--kubeconfig {}", path.display()))?
        }
        None => kube::Config::infer().await.context(
            "no Kubernetes configuration found (KUBECONFIG, ~/.kube/config, in-cluster); pass --kubeconfig, or --manifests to run from files",
        )?,
    };
    tracing::info!(server = %config.cluster_url, "Kubernetes mode");
    Client::try_from(config).context("building the Kubernetes client")
}

/// One watcher's events, parsed into the store's terms.
fn events<K>(api: Api<K>, config: watcher::Config, kind: Kind) -> impl Stream<Item = (Kind, Msg)> + Send
where
    K: Resource<DynamicType = ()> + Clone + DeserializeOwned + serde::Serialize + Debug + Send + 'static,
{
    watcher::watcher(api, config).default_backoff().map(move |r| (kind, msg(kind, r)))
}

/// A watcher's result in the store's terms.
fn msg<K: Resource + serde::Serialize>(kind: Kind, r: Result<Event<K>, watcher::Error>) -> Msg {
    match r {
        Ok(Event::Init) => Msg::Init,
        Ok(Event::InitApply(o)) => Msg::InitApply(item(kind, &o)),
        Ok(Event::InitDone) => Msg::InitDone,
        Ok(Event::Apply(o)) => Msg::Apply(item(kind, &o)),
        Ok(Event::Delete(o)) => Msg::Delete(key(&o)),
        Err(e) => Msg::Error(e.to_string()),
    }
}

/// One Gateway API kind's events (no compiled types for them: read as dynamic objects).
fn gateway_events(client: &Client, ns: &Option<String>, kind: Kind) -> impl Stream<Item = (Kind, Msg)> + Send {
    use kube::api::{ApiResource, DynamicObject, GroupVersionKind};
    let (name, plural, namespaced, version) = match kind {
        Kind::GatewayClass => ("GatewayClass", "gatewayclasses", false, "v1"),
        Kind::Gateway => ("Gateway", "gateways", true, "v1"),
        Kind::HttpRoute => ("HTTPRoute", "httproutes", true, "v1"),
        Kind::GrpcRoute => ("GRPCRoute", "grpcroutes", true, "v1"),
        Kind::TlsRoute => ("TLSRoute", "tlsroutes", true, "v1"),
        Kind::TcpRoute => ("TCPRoute", "tcproutes", true, "v1"),
        _ => ("ReferenceGrant", "referencegrants", true, "v1beta1"),
    };
    let gvk = GroupVersionKind::gvk(crate::model::gateway::GROUP, version, name);
    let ar = ApiResource::from_gvk_with_plural(&gvk, plural);
    let api: Api<DynamicObject> = match (namespaced, ns) {
        (true, Some(ns)) => Api::namespaced_with(client.clone(), ns, &ar),
        _ => Api::all_with(client.clone(), &ar),
    };
    watcher::watcher(api, watcher::Config::default()).default_backoff().map(move |r| (kind, msg(kind, r)))
}

#[derive(Debug)]
enum Msg {
    Init,
    InitApply(Item),
    InitDone,
    Apply(Item),
    Delete(ObjectKey),
    Error(String),
}

fn key<K: Resource>(o: &K) -> ObjectKey {
    ObjectKey { namespace: o.namespace().unwrap_or_default(), name: o.name_any() }
}

fn item<K: Resource + serde::Serialize>(kind: Kind, o: &K) -> Item {
    let parsed = parse_object(o).map_err(|e| e.to_string());
    // An Ingress's current `status.loadBalancer`, for the status writer to compare with.
    let addresses = if kind == Kind::Ingress {
        serde_json::to_value(o)
            .ok()
            .and_then(|v| v.pointer("/status/loadBalancer/ingress").cloned())
            .and_then(|v| v.as_array().cloned())
            .map(|a| {
                a.iter()
                    .filter_map(|e| {
                        e.get("ip").or_else(|| e.get("hostname")).and_then(|v| v.as_str()).map(str::to_string)
                    })
                    .collect()
            })
            .unwrap_or_default()
    } else {
        Vec::new()
    };
    Item { key: key(o), parsed, addresses }
}

/// Where ConfigMaps are watched: the watched namespace when it is ours, else all of them.
fn config_map_api(client: &Client, ns: &Option<String>, ours: &str) -> Api<ConfigMap> {
    match ns {
        Some(ns) if ns == ours => Api::namespaced(client.clone(), ns),
        _ => Api::all(client.clone()),
    }
}

fn namespaced<K>(client: &Client, ns: &Option<String>) -> Api<K>
where
    K: Resource<DynamicType = (), Scope = k8s_openapi::NamespaceResourceScope>,
{
    match ns {
        Some(ns) => Api::namespaced(client.clone(), ns),
        None => Api::all(client.clone()),
    }
}

/// The Secrets watched: all but those no Ingress can use.
const SECRET_FIELDS: &str =
    "type!=kubernetes.io/service-account-token,type!=helm.sh/release.v1,type!=bootstrap.kubernetes.io/token";

async fn control(client: Client, opts: KubeOptions, build: BuildOptions, published: &'static Published, dns: Resolver) {
    let stats = &published.control;
    let ns = &opts.namespace;
    let cfg = watcher::Config::default;
    let mut streams = futures::stream::select_all(vec![
        events::<Ingress>(namespaced(&client, ns), cfg(), Kind::Ingress).boxed(),
        events::<IngressClass>(Api::all(client.clone()), cfg(), Kind::IngressClass).boxed(),
        events::<Service>(namespaced(&client, ns), cfg(), Kind::Service).boxed(),
        events::<EndpointSlice>(namespaced(&client, ns), cfg(), Kind::EndpointSlice).boxed(),
        // TLS Secrets and those `auth-secret` names (usually Opaque); not the kinds that are
        // never either and can be many (service-account tokens, Helm releases).
        events::<Secret>(namespaced(&client, ns), cfg().fields(SECRET_FIELDS), Kind::Secret).boxed(),
        // ConfigMaps: ours, the one its `add-headers` names, and those `auth-proxy-set-headers`
        // names (in the Ingresses' namespaces; all namespaces when ours is not among them).
        events::<ConfigMap>(config_map_api(&client, ns, &opts.config_map.namespace), cfg(), Kind::ConfigMap).boxed(),
    ]);

    if opts.gateway_api {
        for kind in Kind::GATEWAY_API.into_iter().filter(|k| *k != Kind::Namespace) {
            streams.push(gateway_events(&client, ns, kind).boxed());
        }
        // Namespaces' labels, for Gateways selecting the namespaces of their routes (not with
        // --namespace: a selector then sees the name label only).
        if ns.is_none() {
            let api: Api<k8s_openapi::api::core::v1::Namespace> = Api::all(client.clone());
            streams.push(events(api, cfg(), Kind::Namespace).boxed());
        }
    }
    let status_tx = opts.status.clone().map(|s| status::spawn(client.clone(), s, published));
    let mut store = Store::default();
    if !opts.gateway_api {
        store.skip_gateway_api();
    } else if ns.is_some() {
        store.skip(Kind::Namespace);
    }
    store.policy = build.unsupported_security;
    store.config_map = opts.config_map.clone();
    store.dns = dns.names();
    store.default_service = build.default_backend_service.clone();
    let mut full = true;
    let mut services: BTreeSet<ObjectKey> = BTreeSet::new();
    let mut hosts: BTreeSet<HostKey> = BTreeSet::new();
    // The first unpublished change. It is published at once if nothing was published in the
    // last `debounce`, otherwise when that window ends: at most one publish per window, so a
    // burst is coalesced and an isolated change does not wait.
    let mut first_change: Option<Instant> = None;
    let mut last_publish: Option<Instant> = None;
    // Status-only changes refresh the status writer's view at most once per STATUS_WINDOW.
    let mut status_due: Option<Instant> = None;
    let mut initial_sync = true;

    loop {
        let publish_at =
            first_change.filter(|_| store.synced()).map(|t| last_publish.map_or(t, |p| t.max(p + opts.debounce)));
        let wake = tokio::select! {
            Some((kind, msg)) = streams.next() => Wake::Event(kind, Box::new(msg)),
            _ = sleep_until(publish_at), if publish_at.is_some() => Wake::Publish,
            _ = sleep_until(status_due), if status_due.is_some() => Wake::Status,
            _ = dns.changed().notified() => Wake::Dns,
        };
        if let Wake::Dns = wake {
            // An ExternalName answer changed: re-resolve the backends of the Services using
            // that name, like an EndpointSlice change.
            let fresh = dns.names();
            let keys = {
                let changed = crate::provider::dns::changed_names(&store.dns, &fresh);
                crate::provider::dns::services_named(store.services(), &changed)
            };
            store.dns = fresh;
            if !keys.is_empty() {
                services.extend(keys);
                first_change.get_or_insert_with(Instant::now);
            }
            continue;
        }
        if let Wake::Status = wake {
            status_due = None;
            if let Some(tx) = &status_tx {
                let _ = tx.send(store.status_view(&store.inputs(), &build));
            }
            continue;
        }
        if let Wake::Event(kind, msg) = wake {
            let change = match *msg {
                Msg::Init => {
                    if store.begin_list(kind) {
                        stats.watch_restarts[kind as usize].fetch_add(1, Ordering::Relaxed);
                        tracing::info!(kind = kind.name(), "watch restarted with a full list");
                    }
                    Change::None
                }
                Msg::InitApply(it) => {
                    store.listed(kind, it);
                    Change::None
                }
                Msg::InitDone => store.end_list(kind),
                Msg::Apply(it) => store.apply(kind, it),
                Msg::Delete(key) => store.delete(kind, &key),
                Msg::Error(e) => {
                    stats.watch_errors[kind as usize].fetch_add(1, Ordering::Relaxed);
                    tracing::warn!(kind = kind.name(), error = %e, "watch failed; retrying with backoff, the last routing table stays live");
                    Change::None
                }
            };
            for (i, n) in store.counts().into_iter().enumerate() {
                stats.objects[i].store(n as u64, Ordering::Relaxed);
            }
            match change {
                Change::None => continue,
                Change::Status => {
                    status_due.get_or_insert_with(|| Instant::now() + STATUS_WINDOW);
                    continue;
                }
                Change::Full => full = true,
                Change::Hosts(keys) => hosts.extend(keys),
                Change::Routes => {}
                Change::Services(keys) => services.extend(keys),
            }
            first_change.get_or_insert_with(Instant::now);
            // Until every kind has listed, nothing is published; the moment the last one
            // has, publish at once.
            if !(initial_sync && store.synced()) {
                continue;
            }
            initial_sync = false;
            tracing::info!(objects = store.total(), "initial sync complete");
        }
        // The window closed (or the initial sync completed): publish one snapshot.
        let started = Instant::now();
        let first = published.load().generation == 0;
        if !full && !first {
            match store.route_hosts() {
                Some(keys) => hosts.extend(keys),
                None => full = true,
            }
            // A route that changed nowhere in the table (attached nowhere, before and after)
            // still has its status: a full build publishes it like any other.
            full |= hosts.is_empty() && services.is_empty();
        }
        if full || first {
            store.lower();
        }
        let mut inputs = store.inputs();
        let prev = published.load();
        let snap = if full || prev.generation == 0 {
            stats.builds.fetch_add(1, Ordering::Relaxed);
            build_after(&inputs, &build, &prev)
        } else {
            // Hosts first (new backends resolve against the current Services), then the
            // endpoints of changed Services, each sharing everything else with `prev`.
            let mut snap = None;
            if !hosts.is_empty() {
                stats.host_updates.fetch_add(1, Ordering::Relaxed);
                snap = Some(update_hosts(&prev, &inputs, &store.host_ingresses(&hosts), &build));
            }
            if !services.is_empty() {
                stats.endpoint_updates.fetch_add(1, Ordering::Relaxed);
                let base = snap.as_ref().unwrap_or(&prev);
                let mut s = update_endpoints(base, &inputs, &services.iter().cloned().collect::<Vec<_>>());
                // Services and their slices also drive the L4 table (a few LoadBalancer
                // Services: rebuilt whole).
                refresh_l4(&mut s, &inputs, &build);
                snap = Some(s);
            }
            snap.expect("a publish follows a change")
        };
        let snap = dns.settle(snap, &mut inputs);
        let built = started.elapsed();
        let routes = snap.table.len();
        let generation = published.publish(snap);
        last_publish = Some(Instant::now());
        *stats.annotations.lock().unwrap_or_else(|e| e.into_inner()) = store.annotation_counts(&inputs, &build);
        stats.build_seconds.observe(built);
        if let Some(t) = first_change.take() {
            stats.propagation_seconds.observe(t.elapsed());
        }
        tracing::info!(
            generation,
            routes,
            full,
            hosts = hosts.len(),
            services = services.len(),
            build_ms = built.as_secs_f64() * 1e3,
            "routing table published"
        );
        if let Some(tx) = &status_tx {
            status_due = None;
            let _ = tx.send(store.status_view(&inputs, &build));
        }
        let used = inputs.dns.clone();
        drop(inputs);
        store.dns = used;
        full = false;
        hosts.clear();
        services.clear();
    }
}

enum Wake {
    Event(Kind, Box<Msg>),
    Publish,
    Status,
    /// The resolver has new answers.
    Dns,
}

/// How often status-only changes (our own writes coming back, mostly) refresh the status
/// writer's view.
const STATUS_WINDOW: Duration = Duration::from_secs(1);

async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d.into()).await,
        None => std::future::pending().await,
    }
}

/// Rebuilds the L4 table of `snap` from `inputs`, logging its warnings when it changed.
fn refresh_l4(snap: &mut crate::snapshot::Snapshot, inputs: &crate::snapshot::Inputs, opts: &BuildOptions) {
    let crate::snapshot::l4::Built { table: l4, warnings, .. } = crate::snapshot::l4::build(inputs, &opts.l4);
    if *snap.l4 != l4 {
        for w in &warnings {
            tracing::warn!("{w}");
        }
        snap.l4 = std::sync::Arc::new(l4);
    }
}
