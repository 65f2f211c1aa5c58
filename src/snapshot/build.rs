//! The one pure function from objects to a snapshot. The file provider and the kube watcher
//! both call [`build`]; nothing here can fail half-way, so a snapshot is complete or absent.

use rustc_hash::{FxHashMap, FxHashSet};
use std::net::SocketAddr;
use std::sync::Arc;

use super::table::{prefix_key, HostRoutes, RouteTable};
use super::{Backend, BackendId, Route, Settings, Snapshot};
use crate::model::{
    EndpointSlice, Ingress, IngressClass, ObjectKey, Objects, PathType, PortRef, Service, ServiceBackend, TargetPort,
};

/// What the build needs besides the objects.
#[derive(Clone, Debug)]
pub struct BuildOptions {
    /// The ingress class we serve (`--ingress-class`).
    pub class: String,
    /// Serve Ingresses that name no class at all.
    pub watch_without_class: bool,
    pub settings: Settings,
}

impl Default for BuildOptions {
    fn default() -> Self {
        BuildOptions { class: "ringress".to_string(), watch_without_class: false, settings: Settings::default() }
    }
}

/// The objects a build reads, by reference: the file provider's [`Objects`] or the kube
/// provider's per-kind stores, without copying either.
#[derive(Debug, Default)]
pub struct Inputs<'a> {
    pub ingresses: Vec<&'a Ingress>,
    pub ingress_classes: Vec<&'a IngressClass>,
    pub services: Vec<&'a Service>,
    pub endpoint_slices: Vec<&'a EndpointSlice>,
}

impl<'a> Inputs<'a> {
    pub fn of(o: &'a Objects) -> Inputs<'a> {
        Inputs {
            ingresses: o.ingresses.iter().collect(),
            ingress_classes: o.ingress_classes.iter().collect(),
            services: o.services.iter().collect(),
            endpoint_slices: o.endpoint_slices.iter().collect(),
        }
    }
}

/// Builds a complete snapshot (generation 0: the publisher numbers it).
pub fn build(objects: &Objects, opts: &BuildOptions) -> Snapshot {
    build_from(&Inputs::of(objects), opts)
}

/// Indexes Services and slices once, so resolving a backend does not scan every object.
/// With `only`, just the Services named there.
fn resolver<'a>(inputs: &Inputs<'a>, only: Option<&FxHashSet<(&str, &str)>>) -> Builder<'a> {
    let wanted = |ns: &str, name: &str| only.is_none_or(|set| set.contains(&(ns, name)));
    let mut services = FxHashMap::default();
    for svc in inputs.services.iter().filter(|s| wanted(&s.key.namespace, &s.key.name)) {
        services.entry((svc.key.namespace.as_str(), svc.key.name.as_str())).or_insert(*svc);
    }
    let mut slices: FxHashMap<(&str, &str), Vec<&EndpointSlice>> = FxHashMap::default();
    for slice in inputs.endpoint_slices.iter().filter(|s| wanted(&s.key.namespace, &s.service)) {
        slices.entry((slice.key.namespace.as_str(), slice.service.as_str())).or_default().push(slice);
    }
    Builder { services, slices, backends: Vec::new(), backend_ids: FxHashMap::default(), warnings: Vec::new() }
}

/// Builds a complete snapshot from borrowed inputs.
pub fn build_from(inputs: &Inputs, opts: &BuildOptions) -> Snapshot {
    let mut b = resolver(inputs, None);
    let mut table = RouteTable::default();

    let mut ingresses: Vec<&Ingress> =
        inputs.ingresses.iter().copied().filter(|i| serves(i, &inputs.ingress_classes, opts)).collect();
    // Oldest first: on a conflict the first claimant keeps the route.
    ingresses.sort_by(|a, b| (&a.creation_timestamp, &a.key).cmp(&(&b.creation_timestamp, &b.key)));
    // Two objects with the same key (e.g. in two files): the later one is ignored, loudly.
    ingresses.dedup_by(|later, first| {
        let dup = later.key == first.key;
        if dup {
            b.warnings.push(format!("Ingress {} is defined twice; using the first definition", later.key));
        }
        dup
    });

    for ing in &ingresses {
        let key = Arc::new(ing.key.clone());
        for rule in &ing.rules {
            for p in &rule.paths {
                let backend = b.backend_id(&ing.key.namespace, &p.backend);
                let route = Route {
                    backend,
                    ingress: key.clone(),
                    host: rule.host.clone(),
                    path: p.path.clone(),
                    path_type: p.path_type,
                };
                insert(&mut table, route, &mut b.warnings);
            }
        }
        if let Some(db) = &ing.default_backend {
            let backend = b.backend_id(&ing.key.namespace, db);
            match table.default_route {
                Some(existing) => b.warnings.push(format!(
                    "Ingress {} sets a defaultBackend, but {} already set one (older wins); ignored",
                    ing.key, table.routes[existing as usize].ingress
                )),
                None => {
                    table.routes.push(Route {
                        backend,
                        ingress: key.clone(),
                        host: None,
                        path: "/".to_string(),
                        path_type: PathType::Prefix,
                    });
                    table.default_route = Some(table.routes.len() as u32 - 1);
                }
            }
        }
    }
    let mut by_service: FxHashMap<ObjectKey, Vec<BackendId>> = FxHashMap::default();
    for (id, be) in b.backends.iter().enumerate() {
        by_service.entry(be.service.clone()).or_default().push(id as BackendId);
    }
    let snap = Snapshot {
        generation: 0,
        table: Arc::new(table),
        endpoint_set: endpoint_set(&b.backends),
        backends: b.backends,
        by_service: Arc::new(by_service),
        settings: opts.settings.clone(),
        route_warnings: Arc::new(b.warnings),
    };
    log_warnings(&snap);
    snap
}

/// Logged once per build; at most a handful verbatim, so a cluster with thousands of broken
/// backends does not flood the log on every change.
fn log_warnings(snap: &Snapshot) {
    let all = snap.warnings();
    for w in all.iter().take(20) {
        tracing::warn!("{w}");
    }
    if all.len() > 20 {
        tracing::warn!(more = all.len() - 20, "further warnings not logged (see /debug/routes)");
    }
}

fn endpoint_set(backends: &[Arc<Backend>]) -> FxHashSet<SocketAddr> {
    backends.iter().flat_map(|b| b.endpoints.iter().copied()).collect()
}

/// A snapshot that differs from `prev` only in the endpoints of the backends of `changed`
/// Services: the route table, the backend ids and every other backend are shared, not
/// rebuilt. Equal to a full [`build_from`] of the same inputs whenever only Services and
/// EndpointSlices changed since `prev` was built (the provider decides when that holds).
pub fn update_endpoints(prev: &Snapshot, inputs: &Inputs, changed: &[ObjectKey]) -> Snapshot {
    let only: FxHashSet<(&str, &str)> = changed.iter().map(|k| (k.namespace.as_str(), k.name.as_str())).collect();
    let b = resolver(inputs, Some(&only));
    let mut backends = prev.backends.clone();
    for key in changed {
        for &id in prev.by_service.get(key).map(Vec::as_slice).unwrap_or_default() {
            let old = &backends[id as usize];
            let (endpoints, problem) = match b.resolve(&old.service.namespace, &old.service.name, &old.port) {
                Ok(eps) => (eps, None),
                Err(why) => (Vec::new(), Some(why)),
            };
            if endpoints != old.endpoints || problem != old.problem {
                backends[id as usize] = Arc::new(Backend { endpoints, problem, ..Backend::clone(old) });
            }
        }
    }
    let snap = Snapshot {
        generation: 0,
        table: prev.table.clone(),
        endpoint_set: endpoint_set(&backends),
        backends,
        by_service: prev.by_service.clone(),
        settings: prev.settings.clone(),
        route_warnings: prev.route_warnings.clone(),
    };
    log_warnings(&snap);
    snap
}

/// Whether an Ingress belongs to our class: named by the legacy annotation or by
/// `spec.ingressClassName`; with no class, only when our IngressClass is the cluster default
/// or `watch_without_class` is set.
pub fn serves(ing: &Ingress, classes: &[&IngressClass], opts: &BuildOptions) -> bool {
    match ing.requested_class() {
        Some(c) => c == opts.class,
        None => opts.watch_without_class || classes.iter().any(|c| c.name == opts.class && c.is_default),
    }
}

/// The routes of `host`, created if new (without allocating a key when it exists).
fn host_entry<'m>(map: &'m mut FxHashMap<Box<str>, HostRoutes>, host: &str) -> &'m mut HostRoutes {
    if !map.contains_key(host) {
        map.insert(host.into(), HostRoutes::default());
    }
    map.get_mut(host).expect("inserted above")
}

fn insert(table: &mut RouteTable, route: Route, warnings: &mut Vec<String>) {
    let hr: &mut HostRoutes = match route.host.as_deref() {
        None => &mut table.any_host,
        Some(h) => match h.strip_prefix("*.") {
            Some(suffix) => host_entry(&mut table.wildcard_hosts, suffix),
            None => host_entry(&mut table.exact_hosts, h),
        },
    };
    let (map, key) = match route.path_type {
        PathType::Exact => (&mut hr.exact, route.path.as_str()),
        PathType::Prefix | PathType::ImplementationSpecific => (&mut hr.prefix, prefix_key(&route.path)),
    };
    if let Some(&existing) = map.get(key) {
        let first = &table.routes[existing as usize];
        warnings.push(format!(
            "conflict: host {} path {} is claimed by Ingress {} and Ingress {}; {} (the older) keeps it",
            route.host.as_deref().unwrap_or("*"),
            route.path,
            first.ingress,
            route.ingress,
            first.ingress
        ));
        return;
    }
    map.insert(key.into(), table.routes.len() as u32);
    table.routes.push(route);
}

struct Builder<'a> {
    /// Services by (namespace, name); the first definition wins.
    services: FxHashMap<(&'a str, &'a str), &'a Service>,
    /// EndpointSlices by (namespace, service name).
    slices: FxHashMap<(&'a str, &'a str), Vec<&'a EndpointSlice>>,
    backends: Vec<Arc<Backend>>,
    backend_ids: FxHashMap<(&'a str, &'a str, &'a PortRef), BackendId>,
    warnings: Vec<String>,
}

impl<'a> Builder<'a> {
    fn backend_id(&mut self, namespace: &'a str, sb: &'a ServiceBackend) -> BackendId {
        let k = (namespace, sb.service.as_str(), &sb.port);
        if let Some(&id) = self.backend_ids.get(&k) {
            return id;
        }
        let name = format!("{namespace}/{}:{}", sb.service, sb.port);
        let (endpoints, problem) = match self.resolve(namespace, &sb.service, &sb.port) {
            Ok(eps) => (eps, None),
            Err(why) => (Vec::new(), Some(why)),
        };
        let id = self.backends.len() as BackendId;
        let service = ObjectKey { namespace: namespace.to_string(), name: sb.service.clone() };
        self.backends.push(Arc::new(Backend { name, service, port: sb.port.clone(), endpoints, problem }));
        self.backend_ids.insert(k, id);
        id
    }

    /// Service port -> target port -> ready endpoint addresses from the Service's slices.
    fn resolve(&self, namespace: &str, service: &str, port: &PortRef) -> Result<Vec<SocketAddr>, String> {
        let svc = self
            .services
            .get(&(namespace, service))
            .ok_or_else(|| format!("Service {namespace}/{service} not found"))?;
        let sp = svc
            .ports
            .iter()
            .find(|p| match port {
                PortRef::Number(n) => p.port == *n,
                PortRef::Name(name) => p.name.as_deref() == Some(name.as_str()),
            })
            .ok_or_else(|| format!("Service {} has no port {port}", svc.key))?;
        let mut out = Vec::new();
        let slices = self.slices.get(&(namespace, service)).map(Vec::as_slice).unwrap_or_default();
        for slice in slices {
            // Slices name their ports after the Service port; the number there is the target.
            let by_name = slice.ports.iter().find(|p| p.name == sp.name).map(|p| p.port);
            let port = match (&sp.target_port, by_name) {
                (_, Some(p)) => p,
                (TargetPort::Number(n), None) if slice.ports.is_empty() => *n,
                _ => continue,
            };
            out.extend(slice.ready.iter().map(|ip| SocketAddr::new(*ip, port)));
        }
        out.sort();
        out.dedup();
        if out.is_empty() {
            return Err(format!("Service {} port {port} has no ready endpoints", svc.key));
        }
        Ok(out)
    }
}
