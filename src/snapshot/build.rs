//! The one pure function from objects to a snapshot. The file provider and the kube watcher
//! both call [`build`]; nothing here can fail half-way, so a snapshot is complete or absent.

use rustc_hash::FxHashMap;
use std::net::SocketAddr;
use std::sync::Arc;

use super::table::{prefix_key, HostRoutes, RouteTable};
use super::{Backend, BackendId, Route, Settings, Snapshot};
use crate::model::{EndpointSlice, Ingress, Objects, PathType, PortRef, Service, ServiceBackend, TargetPort};

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

/// Builds a complete snapshot (generation 0: the publisher numbers it).
pub fn build(objects: &Objects, opts: &BuildOptions) -> Snapshot {
    // Indexed once, so resolving a backend does not scan every Service and slice.
    let mut services = FxHashMap::default();
    for svc in &objects.services {
        services.entry((svc.key.namespace.as_str(), svc.key.name.as_str())).or_insert(svc);
    }
    let mut slices: FxHashMap<(&str, &str), Vec<&EndpointSlice>> = FxHashMap::default();
    for slice in &objects.endpoint_slices {
        slices.entry((slice.key.namespace.as_str(), slice.service.as_str())).or_default().push(slice);
    }
    let mut b =
        Builder { services, slices, backends: Vec::new(), backend_ids: FxHashMap::default(), warnings: Vec::new() };
    let mut table = RouteTable::default();

    let mut ingresses: Vec<&Ingress> = objects.ingresses.iter().filter(|i| serves(i, objects, opts)).collect();
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
    for w in &b.warnings {
        tracing::warn!("{w}");
    }
    Snapshot { generation: 0, table, backends: b.backends, settings: opts.settings.clone(), warnings: b.warnings }
}

/// Whether an Ingress belongs to our class: named by the legacy annotation or by
/// `spec.ingressClassName`; with no class, only when our IngressClass is the cluster default
/// or `watch_without_class` is set.
fn serves(ing: &Ingress, objects: &Objects, opts: &BuildOptions) -> bool {
    match ing.requested_class() {
        Some(c) => c == opts.class,
        None => {
            opts.watch_without_class || objects.ingress_classes.iter().any(|c| c.name == opts.class && c.is_default)
        }
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
    backends: Vec<Backend>,
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
        let endpoints = self.resolve(namespace, sb).unwrap_or_else(|why| {
            self.warnings.push(format!("backend {name}: {why}; requests get 503"));
            Vec::new()
        });
        let id = self.backends.len() as BackendId;
        self.backends.push(Backend { name, endpoints });
        self.backend_ids.insert(k, id);
        id
    }

    /// Service port -> target port -> ready endpoint addresses from the Service's slices.
    fn resolve(&self, namespace: &str, sb: &ServiceBackend) -> Result<Vec<SocketAddr>, String> {
        let svc = self
            .services
            .get(&(namespace, sb.service.as_str()))
            .ok_or_else(|| format!("Service {namespace}/{} not found", sb.service))?;
        let sp = svc
            .ports
            .iter()
            .find(|p| match &sb.port {
                PortRef::Number(n) => p.port == *n,
                PortRef::Name(name) => p.name.as_deref() == Some(name.as_str()),
            })
            .ok_or_else(|| format!("Service {} has no port {}", svc.key, sb.port))?;
        let mut out = Vec::new();
        let slices = self.slices.get(&(namespace, sb.service.as_str())).map(Vec::as_slice).unwrap_or_default();
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
            return Err(format!("Service {} port {} has no ready endpoints", svc.key, sb.port));
        }
        Ok(out)
    }
}
