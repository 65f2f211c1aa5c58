//! The kube provider's objects, parsed once per event and kept by kind; what each event
//! changes (nothing, the whole table, or some Services' endpoints).

use std::collections::{BTreeMap, BTreeSet};

use crate::model::gateway::{Gateway, GatewayClass, HttpRoute, ReferenceGrant};
use crate::model::{ConfigMap, EndpointSlice, Ingress, IngressClass, ObjectKey, Objects, Secret, Service};
use crate::snapshot::annotations::Note;
use crate::snapshot::auth::BasicSpec;
use crate::snapshot::{serves, BuildOptions, HostKey, Inputs};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Ingress,
    IngressClass,
    Service,
    EndpointSlice,
    Secret,
    ConfigMap,
    GatewayClass,
    Gateway,
    HttpRoute,
    GrpcRoute,
    ReferenceGrant,
    TlsRoute,
    TcpRoute,
    /// Watched with `--gateway-api` (their labels select routes' namespaces).
    Namespace,
}

impl Kind {
    /// The Gateway API kinds, watched only with `--gateway-api`.
    pub const GATEWAY_API: [Kind; 8] = [
        Kind::GatewayClass,
        Kind::Gateway,
        Kind::HttpRoute,
        Kind::GrpcRoute,
        Kind::ReferenceGrant,
        Kind::TlsRoute,
        Kind::TcpRoute,
        Kind::Namespace,
    ];

    pub fn name(self) -> &'static str {
        crate::provider::KINDS[self as usize]
    }
}

/// One object from a watch event, already parsed (or the reason it could not be).
#[derive(Debug)]
pub struct Item {
    pub key: ObjectKey,
    pub parsed: Result<Objects, String>,
    /// For Ingresses: the addresses in `status.loadBalancer.ingress`.
    pub addresses: Vec<String>,
}

/// What an event means for the routing table.
#[derive(Debug, PartialEq)]
pub enum Change {
    None,
    /// Classes, Secrets or the ConfigMap changed, or a relist: rebuild the table.
    Full,
    /// Ingresses changed: rebuild these hosts (the changed Ingresses' hosts before and after).
    Hosts(Vec<HostKey>),
    /// Only these Services' endpoints (Service ports or slices) changed.
    Services(Vec<ObjectKey>),
    /// Only an Ingress's status changed: nothing to route differently, but the status writer
    /// should look again.
    Status,
    /// HTTPRoutes or GRPCRoutes changed: their hosts are known once they are lowered again.
    Routes,
}

/// The objects whose status the writer may touch, with what it says now and what it should;
/// and the Gateway API statuses the last lowering decided.
#[derive(Clone, Debug, Default)]
pub struct StatusView {
    pub items: Vec<StatusItem>,
    pub gateway: std::sync::Arc<crate::snapshot::gateway::Statuses>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct StatusItem {
    pub kind: StatusOf,
    pub key: ObjectKey,
    /// `status.loadBalancer.ingress` now.
    pub addresses: Vec<String>,
    /// Served: the address should be there. Not served (a Service that left our class or
    /// type, or lost every port): the address is taken away if it is ours.
    pub served: bool,
    /// Services: our port-conflict condition's message now, and what it should be.
    pub conflict: Option<String>,
    pub want_conflict: Option<String>,
    /// `metadata.uid`, for the Events about the object.
    pub uid: Option<String>,
    /// Ingresses: what ringress says about their annotations (a Warning Event each).
    pub notes: Vec<Note>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StatusOf {
    Ingress,
    /// A LoadBalancer Service the L4 load balancer serves.
    Service,
}

#[derive(Default)]
pub struct Store {
    ingresses: BTreeMap<ObjectKey, Ingress>,
    classes: BTreeMap<ObjectKey, IngressClass>,
    services: BTreeMap<ObjectKey, Service>,
    slices: BTreeMap<ObjectKey, EndpointSlice>,
    secrets: BTreeMap<ObjectKey, Secret>,
    /// What ringress says about each Ingress's annotations (only Ingresses it has something
    /// to say about), read once per change of the Ingress: the Events and the metric.
    notes: BTreeMap<ObjectKey, Vec<Note>>,
    /// Per Ingress, the annotations last read where they parsed (for the notes, as the
    /// build keeps them for the routes).
    good: BTreeMap<ObjectKey, BTreeMap<String, String>>,
    /// Each Ingress's `auth-type: basic`, with the key its `auth-secret` is under: whether
    /// the Secret can serve it is a note too, asked whenever the status view is made.
    auth: BTreeMap<ObjectKey, (String, BasicSpec)>,
    /// Each Ingress's other references that can leave a route refused: the Secret its
    /// `auth-tls-secret` names and the ConfigMap its `auth-proxy-set-headers` names, with the
    /// annotation naming each.
    refs: BTreeMap<ObjectKey, Vec<(String, Ref)>>,
    /// `--unsupported-security-annotations`, for the notes.
    pub policy: crate::snapshot::access::UnsupportedPolicy,
    config_maps: BTreeMap<ObjectKey, ConfigMap>,
    /// `--configmap`: ours (a change of it, or of the ConfigMaps it and the Ingresses name,
    /// rebuilds the table; others do not).
    pub config_map: ObjectKey,
    /// `--default-backend-service`.
    pub default_service: Option<ObjectKey>,
    /// The Ingresses naming each Service in their `default-backend` annotation.
    fallbacks: BTreeMap<ObjectKey, BTreeSet<ObjectKey>>,
    /// The ExternalName answers the last publish used (the resolver's, then).
    pub dns: std::sync::Arc<crate::snapshot::external_name::ExternalNames>,
    addresses: BTreeMap<ObjectKey, Vec<String>>,
    /// Which Ingresses put routes on each host (whatever their class).
    by_host: BTreeMap<HostKey, BTreeSet<ObjectKey>>,
    /// Kinds whose first list completed.
    synced: [bool; KINDS],
    /// Kinds in the middle of a (re)list: the items so far.
    listing: [Option<Vec<Item>>; KINDS],
    /// Gateway API objects (every class: ours are picked when they are lowered).
    gw_classes: BTreeMap<ObjectKey, GatewayClass>,
    gateways: BTreeMap<ObjectKey, Gateway>,
    http_routes: BTreeMap<ObjectKey, HttpRoute>,
    grpc_routes: BTreeMap<ObjectKey, HttpRoute>,
    tls_routes: BTreeMap<ObjectKey, HttpRoute>,
    tcp_routes: BTreeMap<ObjectKey, HttpRoute>,
    namespaces: BTreeMap<ObjectKey, crate::model::Namespace>,
    grants: BTreeMap<ObjectKey, ReferenceGrant>,
    /// The Gateway API objects in Ingress terms, forwarded ports and statuses, as last
    /// lowered ([`Store::lower`], [`Store::route_hosts`]).
    lowered: crate::snapshot::gateway::Lowering,
    /// HTTPRoutes and GRPCRoutes changed since the last lowering.
    changed_routes: BTreeSet<ObjectKey>,
}

const KINDS: usize = crate::provider::KINDS.len();

mod gateway;

/// An object an annotation names.
#[derive(Clone, Debug)]
enum Ref {
    /// A CA bundle (`ca.crt`).
    CaSecret(ObjectKey),
    /// `proxy-ssl-secret`, and whether verification needs its `ca.crt`.
    UpstreamSecret(ObjectKey, bool),
    ConfigMap(ObjectKey),
}

/// The one object of `kind` in a parse result (a slice of an unsupported address type parses
/// to nothing).
enum One {
    Ingress(Ingress),
    IngressClass(IngressClass),
    Service(Service),
    EndpointSlice(EndpointSlice),
    Secret(Secret),
    ConfigMap(ConfigMap),
    GatewayClass(GatewayClass),
    Gateway(Gateway),
    Route(HttpRoute),
    ReferenceGrant(ReferenceGrant),
    Namespace(crate::model::Namespace),
}

fn one(kind: Kind, mut o: Objects) -> Option<One> {
    Some(match kind {
        Kind::Ingress => One::Ingress(o.ingresses.pop()?),
        Kind::IngressClass => One::IngressClass(o.ingress_classes.pop()?),
        Kind::Service => One::Service(o.services.pop()?),
        Kind::EndpointSlice => One::EndpointSlice(o.endpoint_slices.pop()?),
        Kind::Secret => One::Secret(o.secrets.pop()?),
        Kind::ConfigMap => One::ConfigMap(o.config_maps.pop()?),
        Kind::GatewayClass => One::GatewayClass(o.gateway_classes.pop()?),
        Kind::Gateway => One::Gateway(o.gateways.pop()?),
        Kind::HttpRoute | Kind::GrpcRoute | Kind::TlsRoute | Kind::TcpRoute => One::Route(o.http_routes.pop()?),
        Kind::ReferenceGrant => One::ReferenceGrant(o.reference_grants.pop()?),
        Kind::Namespace => One::Namespace(o.namespaces.pop()?),
    })
}

/// Inserts `v` under `key`; whether anything changed.
fn put<T: PartialEq>(map: &mut BTreeMap<ObjectKey, T>, key: ObjectKey, v: T) -> bool {
    match map.get(&key) {
        Some(old) if *old == v => false,
        _ => {
            map.insert(key, v);
            true
        }
    }
}

impl Store {
    pub fn synced(&self) -> bool {
        self.synced.iter().all(|s| *s)
    }

    /// A (re)list starts. Returns whether this is a restart (the kind had synced before).
    pub fn begin_list(&mut self, kind: Kind) -> bool {
        self.listing[kind as usize] = Some(Vec::new());
        self.synced[kind as usize]
    }

    pub fn listed(&mut self, kind: Kind, item: Item) {
        match &mut self.listing[kind as usize] {
            Some(items) => items.push(item),
            None => {
                let _ = self.apply(kind, item);
            }
        }
    }

    /// The list is complete: it replaces everything held of this kind (objects missing from
    /// it were deleted while we were not watching).
    pub fn end_list(&mut self, kind: Kind) -> Change {
        let items = self.listing[kind as usize].take().unwrap_or_default();
        let listed: std::collections::BTreeSet<ObjectKey> = items.iter().map(|i| i.key.clone()).collect();
        let gone: Vec<ObjectKey> = self.keys(kind).into_iter().filter(|k| !listed.contains(k)).collect();
        let mut changes = Vec::new();
        for k in gone {
            changes.push(self.delete(kind, &k));
        }
        for it in items {
            changes.push(self.apply(kind, it));
        }
        let first = !self.synced[kind as usize];
        self.synced[kind as usize] = true;
        let merged = merge(changes);
        if first {
            Change::Full
        } else {
            merged
        }
    }

    fn keys(&self, kind: Kind) -> Vec<ObjectKey> {
        match kind {
            Kind::Ingress => self.ingresses.keys().cloned().collect(),
            Kind::IngressClass => self.classes.keys().cloned().collect(),
            Kind::Service => self.services.keys().cloned().collect(),
            Kind::EndpointSlice => self.slices.keys().cloned().collect(),
            Kind::Secret => self.secrets.keys().cloned().collect(),
            Kind::ConfigMap => self.config_maps.keys().cloned().collect(),
            Kind::GatewayClass => self.gw_classes.keys().cloned().collect(),
            Kind::Gateway => self.gateways.keys().cloned().collect(),
            Kind::HttpRoute => self.http_routes.keys().cloned().collect(),
            Kind::GrpcRoute => self.grpc_routes.keys().cloned().collect(),
            Kind::TlsRoute => self.tls_routes.keys().cloned().collect(),
            Kind::TcpRoute => self.tcp_routes.keys().cloned().collect(),
            Kind::ReferenceGrant => self.grants.keys().cloned().collect(),
            Kind::Namespace => self.namespaces.keys().cloned().collect(),
        }
    }

    /// An added or modified object. One that does not parse is reported and its previous
    /// version (if any) stays in force, so a bad edit never takes a route away half-way.
    pub fn apply(&mut self, kind: Kind, item: Item) -> Change {
        let Item { key, parsed, addresses } = item;
        let status_changed = kind == Kind::Ingress && self.addresses.get(&key) != Some(&addresses);
        if kind == Kind::Ingress {
            self.addresses.insert(key.clone(), addresses);
        }
        let objects = match parsed {
            Ok(o) => o,
            Err(e) => {
                tracing::error!(kind = kind.name(), object = %key, error = %e, "object rejected; its previous version (if any) stays in force");
                return Change::None;
            }
        };
        let Some(obj) = one(kind, objects) else { return self.delete(kind, &key) };
        match obj {
            One::Ingress(v) => {
                if self.ingresses.get(&key) == Some(&v) {
                    return if status_changed { Change::Status } else { Change::None };
                }
                // Certificates come from every TLS Ingress at once: a TLS change is a full build.
                let tls = !v.tls.is_empty() || self.ingresses.get(&key).is_some_and(|o| !o.tls.is_empty());
                let mut hosts = self.unindex(&key);
                let new = HostKey::of_ingress(&v);
                for h in &new {
                    self.by_host.entry(h.clone()).or_default().insert(key.clone());
                }
                hosts.extend(new);
                // The same reading as the build's: a value that stops parsing keeps the one
                // last read, and the note (and so the Event) says which.
                let prev = self.good.get(&key).cloned();
                let (options, notes, kept) = crate::snapshot::annotations::read_keeping(&v, self.policy, prev.as_ref());
                self.good.insert(key.clone(), kept);
                if notes.is_empty() {
                    self.notes.remove(&key);
                } else {
                    self.notes.insert(key.clone(), notes);
                }
                let secret_key = crate::snapshot::annotations::full_key(&v, "auth-secret");
                let full = |k: &str| crate::snapshot::annotations::full_key(&v, k).map(str::to_string);
                let refs: Vec<(String, Ref)> = [
                    full("auth-tls-secret")
                        .zip(options.client_cert_spec.as_ref().map(|c| Ref::CaSecret(c.secret.clone()))),
                    full("proxy-ssl-secret").zip(
                        options
                            .upstream_tls_spec
                            .as_ref()
                            .and_then(|t| Some(Ref::UpstreamSecret(t.secret.clone()?, t.verify))),
                    ),
                    full("auth-proxy-set-headers")
                        .zip(options.external.as_ref().and_then(|e| e.set_headers_from.clone()).map(Ref::ConfigMap)),
                ]
                .into_iter()
                .flatten()
                .collect();
                match refs.is_empty() {
                    true => self.refs.remove(&key),
                    false => self.refs.insert(key.clone(), refs),
                };
                match options.basic_auth.zip(secret_key) {
                    Some((spec, k)) => self.auth.insert(key.clone(), (k.to_string(), spec)),
                    None => self.auth.remove(&key),
                };
                self.unindex_fallback(&key);
                if let Some((namespace, name)) = crate::snapshot::annotations::default_backend(&v) {
                    self.fallbacks.entry(ObjectKey { namespace, name }).or_default().insert(key.clone());
                }
                self.ingresses.insert(key, v);
                if tls {
                    Change::Full
                } else {
                    Change::Hosts(hosts)
                }
            }
            One::IngressClass(v) => full_if(put(&mut self.classes, key, v)),
            One::GatewayClass(v) => full_if(put(&mut self.gw_classes, key, v)),
            One::Gateway(v) => full_if(put(&mut self.gateways, key, v)),
            One::Route(v) if kind == Kind::GrpcRoute => {
                let changed = put(&mut self.grpc_routes, key.clone(), v);
                self.route_changed(changed, key)
            }
            One::Route(v) if kind == Kind::TlsRoute => full_if(put(&mut self.tls_routes, key, v)),
            One::Route(v) if kind == Kind::TcpRoute => full_if(put(&mut self.tcp_routes, key, v)),
            One::Route(v) => {
                let changed = put(&mut self.http_routes, key.clone(), v);
                self.route_changed(changed, key)
            }
            One::ReferenceGrant(v) => full_if(put(&mut self.grants, key, v)),
            // Labels matter only to Gateways' route selectors.
            One::Namespace(v) => full_if(put(&mut self.namespaces, key, v) && !self.gateways.is_empty()),
            One::Secret(v) => {
                let matters = self.secret_matters(&key, Some(&v));
                full_if(put(&mut self.secrets, key, v) && matters)
            }
            One::ConfigMap(v) => {
                let matters = self.config_map_matters(&key);
                full_if(put(&mut self.config_maps, key, v) && matters)
            }
            One::Service(v) => {
                let svc = key.clone();
                let changed = put(&mut self.services, key, v);
                self.service_change(changed, svc)
            }
            One::EndpointSlice(v) => {
                let mut touched = vec![ObjectKey { namespace: key.namespace.clone(), name: v.service.clone() }];
                if let Some(old) = self.slices.get(&key).filter(|o| o.service != v.service) {
                    touched.push(ObjectKey { namespace: key.namespace.clone(), name: old.service.clone() });
                }
                services_if(put(&mut self.slices, key, v), touched)
            }
        }
    }

    pub fn delete(&mut self, kind: Kind, key: &ObjectKey) -> Change {
        match kind {
            Kind::Ingress => {
                self.addresses.remove(key);
                self.notes.remove(key);
                self.good.remove(key);
                self.auth.remove(key);
                self.refs.remove(key);
                self.unindex_fallback(key);
                let hosts = self.unindex(key);
                match self.ingresses.remove(key) {
                    Some(old) if !old.tls.is_empty() => Change::Full,
                    Some(_) => Change::Hosts(hosts),
                    None => Change::None,
                }
            }
            Kind::IngressClass => full_if(self.classes.remove(key).is_some()),
            Kind::GatewayClass => full_if(self.gw_classes.remove(key).is_some()),
            Kind::Gateway => full_if(self.gateways.remove(key).is_some()),
            Kind::HttpRoute => {
                let changed = self.http_routes.remove(key).is_some();
                self.route_changed(changed, key.clone())
            }
            Kind::GrpcRoute => {
                let changed = self.grpc_routes.remove(key).is_some();
                self.route_changed(changed, key.clone())
            }
            Kind::TlsRoute => full_if(self.tls_routes.remove(key).is_some()),
            Kind::TcpRoute => full_if(self.tcp_routes.remove(key).is_some()),
            Kind::Namespace => full_if(self.namespaces.remove(key).is_some() && !self.gateways.is_empty()),
            Kind::ReferenceGrant => full_if(self.grants.remove(key).is_some()),
            Kind::Secret => {
                let matters = self.secret_matters(key, None);
                full_if(self.secrets.remove(key).is_some() && matters)
            }
            Kind::ConfigMap => {
                let matters = self.config_map_matters(key);
                full_if(self.config_maps.remove(key).is_some() && matters)
            }
            Kind::Service => {
                let changed = self.services.remove(key).is_some();
                self.service_change(changed, key.clone())
            }
            Kind::EndpointSlice => match self.slices.remove(key) {
                Some(old) => Change::Services(vec![ObjectKey { namespace: key.namespace.clone(), name: old.service }]),
                None => Change::None,
            },
        }
    }

    /// Whether a Secret's change (to `new`, or its deletion) concerns any route: a TLS Secret
    /// (before or after), or one an Ingress's `auth-secret` names. Other Secrets are kept
    /// (an Ingress may name them later) without a rebuild.
    fn secret_matters(&self, key: &ObjectKey, new: Option<&Secret>) -> bool {
        let tls = |s: Option<&Secret>| s.is_some_and(|s| s.type_.as_deref() == Some("kubernetes.io/tls"));
        tls(new)
            || tls(self.secrets.get(key))
            || self.ingresses.values().any(|i| {
                use crate::snapshot::annotations::{auth_secret, auth_tls_secret, proxy_ssl_secret};
                [auth_secret(i), auth_tls_secret(i), proxy_ssl_secret(i)].iter().any(|s| s.as_ref() == Some(key))
            })
    }

    /// Whether a ConfigMap's change concerns the table: ours, the ones its `add-headers` and
    /// `proxy-set-headers` name, or one an Ingress's `auth-proxy-set-headers` or
    /// `custom-headers` names.
    fn config_map_matters(&self, key: &ObjectKey) -> bool {
        let ours_names = |k: &str| {
            let ours = self.config_maps.get(&self.config_map)?;
            let (ns, name) = ours.data.get(k)?.trim().split_once('/')?;
            Some(key.namespace == ns && key.name == name)
        };
        *key == self.config_map
            || ours_names("add-headers").unwrap_or(false)
            || ours_names("proxy-set-headers").unwrap_or(false)
            || self.ingresses.values().any(|i| {
                use crate::snapshot::annotations::{auth_config_map, custom_headers_map};
                auth_config_map(i).as_ref() == Some(key) || custom_headers_map(i).as_ref() == Some(key)
            })
    }

    /// A Service's change: its backends' endpoints re-resolved; a full build when it is a
    /// fallback (`default-backend`, `--default-backend-service`), whose backend exists only
    /// while the Service does (its first port picks it).
    fn service_change(&self, changed: bool, key: ObjectKey) -> Change {
        // Gateway API routes resolve their Services when lowered (a missing one answers 500
        // and shows in the route's status): any Service change lowers them again.
        let gateway =
            [&self.http_routes, &self.grpc_routes, &self.tls_routes, &self.tcp_routes].iter().any(|m| !m.is_empty());
        let fallback = gateway || self.default_service.as_ref() == Some(&key) || self.fallbacks.contains_key(&key);
        match changed && fallback {
            true => Change::Full,
            false => services_if(changed, vec![key]),
        }
    }

    /// Removes an Ingress from the `default-backend` index.
    fn unindex_fallback(&mut self, key: &ObjectKey) {
        let Some((namespace, name)) = self.ingresses.get(key).and_then(crate::snapshot::annotations::default_backend)
        else {
            return;
        };
        let svc = ObjectKey { namespace, name };
        if let Some(set) = self.fallbacks.get_mut(&svc) {
            set.remove(key);
            if set.is_empty() {
                self.fallbacks.remove(&svc);
            }
        }
    }

    /// Removes an Ingress from the host index; the hosts it was on.
    fn unindex(&mut self, key: &ObjectKey) -> Vec<HostKey> {
        let Some(old) = self.ingresses.get(key) else { return Vec::new() };
        let hosts = HostKey::of_ingress(old);
        for h in &hosts {
            if let Some(set) = self.by_host.get_mut(h) {
                set.remove(key);
                if set.is_empty() {
                    self.by_host.remove(h);
                }
            }
        }
        hosts
    }

    /// The Ingresses with rules on each of `hosts`, for [`crate::snapshot::update_hosts`].
    pub fn host_ingresses<'s>(&'s self, hosts: &BTreeSet<HostKey>) -> Vec<(HostKey, Vec<&'s Ingress>)> {
        hosts
            .iter()
            .map(|h| {
                let keys = self.by_host.get(h).into_iter().flatten();
                (h.clone(), keys.filter_map(|k| self.ingresses.get(k)).chain(self.lowered.on_host(h)).collect())
            })
            .collect()
    }

    pub fn counts(&self) -> [usize; KINDS] {
        [
            self.ingresses.len(),
            self.classes.len(),
            self.services.len(),
            self.slices.len(),
            self.secrets.len(),
            self.config_maps.len(),
            self.gw_classes.len(),
            self.gateways.len(),
            self.http_routes.len(),
            self.grpc_routes.len(),
            self.grants.len(),
            self.tls_routes.len(),
            self.tcp_routes.len(),
            self.namespaces.len(),
        ]
    }

    /// Every Service held.
    pub fn services(&self) -> impl Iterator<Item = &Service> {
        self.services.values()
    }

    pub fn total(&self) -> usize {
        self.counts().iter().sum()
    }

    pub fn inputs(&self) -> Inputs<'_> {
        Inputs {
            ingresses: self.ingresses.values().chain(self.lowered.ingresses()).collect(),
            ingress_classes: self.classes.values().collect(),
            services: self.services.values().collect(),
            endpoint_slices: self.slices.values().collect(),
            secrets: self.secrets.values().collect(),
            config_maps: self.config_maps.values().collect(),
            l4_routes: self.lowered.l4.iter().collect(),
            listener_ports: self.lowered.ports.clone(),
            https_names: self.lowered.https_names.0.clone(),
            dns: self.dns.clone(),
        }
    }

    /// The Ingresses of our class, with the addresses their status shows now.
    /// How many served Ingresses carry each annotation ringress ignores or refuses on (the
    /// metric), by annotation.
    pub fn annotation_counts(&self, inputs: &Inputs, opts: &BuildOptions) -> Vec<(String, u64)> {
        let served = self
            .notes
            .iter()
            .filter(|(k, _)| self.ingresses.get(*k).is_some_and(|i| serves(i, &inputs.ingress_classes, opts)));
        crate::provider::count_notes(served.flat_map(|(_, n)| n))
    }

    /// What is said about an Ingress: its annotation notes, and whether its `auth-secret`
    /// can serve it now.
    fn notes_of(&self, key: &ObjectKey) -> Vec<Note> {
        let mut notes = self.notes.get(key).cloned().unwrap_or_default();
        if let Some((annotation, spec)) = self.auth.get(key) {
            if let Some(why) = crate::snapshot::auth::unusable(spec, self.secrets.get(&spec.secret)) {
                let message = format!("annotation {annotation}: {why}; its routes answer 503");
                notes.push(Note { annotation: annotation.clone(), message, refused: true, unsupported: false });
            }
        }
        for (annotation, r) in self.refs.get(key).into_iter().flatten() {
            let why = match r {
                Ref::CaSecret(s) => match self.secrets.get(s) {
                    None => Some(format!("auth-tls-secret {s} does not exist")),
                    Some(secret) if !secret.data.contains_key("ca.crt") => {
                        Some(format!("auth-tls-secret {s} has no key ca.crt"))
                    }
                    Some(_) => None,
                },
                Ref::UpstreamSecret(s, verify) => match self.secrets.get(s) {
                    None => Some(format!("proxy-ssl-secret {s} does not exist")),
                    Some(secret) if *verify && !secret.data.contains_key("ca.crt") => {
                        Some(format!("proxy-ssl-verify is on, but proxy-ssl-secret {s} has no key ca.crt"))
                    }
                    Some(_) => None,
                },
                Ref::ConfigMap(c) => (!self.config_maps.contains_key(c)).then(|| format!("ConfigMap {c} not found")),
            };
            if let Some(why) = why {
                let message = format!("annotation {annotation}: {why}; its routes answer 503");
                notes.push(Note { annotation: annotation.clone(), message, refused: true, unsupported: false });
            }
        }
        notes
    }

    pub fn status_view(&self, inputs: &Inputs, opts: &BuildOptions) -> StatusView {
        let mut view: Vec<StatusItem> = inputs
            .ingresses
            .iter()
            .filter(|i| i.origin == crate::model::Origin::Ingress && serves(i, &inputs.ingress_classes, opts))
            .map(|i| StatusItem {
                kind: StatusOf::Ingress,
                key: i.key.clone(),
                addresses: self.addresses.get(&i.key).cloned().unwrap_or_default(),
                served: true,
                conflict: None,
                want_conflict: None,
                uid: i.uid.clone(),
                notes: self.notes_of(&i.key),
            })
            .collect();
        // LoadBalancer Services with a port forwarded; and those that lost ports, or may still
        // show our address from when they were served.
        let l4 = crate::snapshot::l4::build(inputs, &opts.l4);
        // Only a Service's own LoadBalancer ports count: a tcp-services entry may name a
        // LoadBalancer Service of another class, which must not get our address.
        let served: std::collections::BTreeSet<&ObjectKey> =
            l4.table.ports.iter().filter(|p| p.load_balancer).map(|p| &p.service).collect();
        for s in &inputs.services {
            let served = served.contains(&s.key) && s.is_load_balancer();
            let want_conflict = l4.conflicts.get(&s.key).cloned();
            if served || !s.status_addresses.is_empty() || s.port_conflict.is_some() || want_conflict.is_some() {
                view.push(StatusItem {
                    kind: StatusOf::Service,
                    key: s.key.clone(),
                    addresses: s.status_addresses.clone(),
                    served,
                    conflict: s.port_conflict.clone(),
                    want_conflict,
                    uid: s.uid.clone(),
                    notes: Vec::new(),
                });
            }
        }
        StatusView { items: view, gateway: std::sync::Arc::new(self.lowered.statuses.clone()) }
    }
}

fn full_if(changed: bool) -> Change {
    if changed {
        Change::Full
    } else {
        Change::None
    }
}

fn services_if(changed: bool, keys: Vec<ObjectKey>) -> Change {
    if changed {
        Change::Services(keys)
    } else {
        Change::None
    }
}

fn merge(changes: Vec<Change>) -> Change {
    let mut keys = Vec::new();
    for c in changes {
        match c {
            Change::None | Change::Status => {}
            Change::Full | Change::Hosts(_) | Change::Routes => return Change::Full,
            Change::Services(k) => keys.extend(k),
        }
    }
    if keys.is_empty() {
        Change::None
    } else {
        Change::Services(keys)
    }
}
