//! The one pure function from objects to a snapshot. The file provider and the kube watcher
//! both call [`build`]; nothing here can fail half-way, so a snapshot is complete or absent.

use rustc_hash::{FxHashMap, FxHashSet};
use std::net::SocketAddr;
use std::sync::Arc;

use super::annotations;
use super::external::ExternalAuth;
use super::table::{HostRoutes, RouteTable};
use super::{Backend, BackendId, Route, Settings, Snapshot};
use crate::model::{ConfigMap, EndpointSlice, Ingress, IngressClass, ObjectKey, Objects, PathType, Secret, Service};
pub(super) use builder::slice_endpoints;
use builder::{resolver, Builder};

mod builder;
mod gateway;
mod insert;
use insert::insert;

/// What the build needs besides the objects.
#[derive(Clone, Debug)]
pub struct BuildOptions {
    /// The ingress class we serve (`--ingress-class`).
    pub class: String,
    /// Serve Ingresses that name no class at all.
    pub watch_without_class: bool,
    pub settings: Settings,
    /// `--access-log` and the access-log defaults, under the ConfigMap's keys.
    pub log: crate::access_log::Config,
    /// `--default-ssl-certificate`: the Secret served to unknown SNI names.
    pub default_certificate: Option<ObjectKey>,
    /// `--configmap`: the ConfigMap whose data overrides `settings` (ingress-nginx keys).
    pub config_map: ObjectKey,
    /// The L4 load balancer: which Services, which ports are ours.
    pub l4: super::l4::L4Options,
    /// `--unsupported-security-annotations`: refuse (default) or warn.
    pub unsupported_security: super::access::UnsupportedPolicy,
    /// `--default-backend-service`: where requests no rule matches go (its first port), when
    /// no Ingress sets `spec.defaultBackend`; None: 404.
    pub default_backend_service: Option<ObjectKey>,
    /// `--enable-ssl-passthrough`: the `ssl-passthrough` annotation applies.
    pub ssl_passthrough: bool,
}

impl Default for BuildOptions {
    fn default() -> Self {
        BuildOptions {
            class: "ringress".to_string(),
            watch_without_class: false,
            settings: Settings::default(),
            log: crate::access_log::Config::default(),
            default_certificate: None,
            config_map: ObjectKey { namespace: "ringress".to_string(), name: "ringress".to_string() },
            l4: super::l4::L4Options::default(),
            unsupported_security: Default::default(),
            default_backend_service: None,
            ssl_passthrough: false,
        }
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
    pub secrets: Vec<&'a Secret>,
    pub config_maps: Vec<&'a ConfigMap>,
    /// TCPRoutes' forwarded ports.
    pub l4_routes: Vec<&'a crate::model::gateway::L4Route>,
    /// Gateway listeners' ports to open (port, over TLS).
    pub listener_ports: Vec<(u16, bool)>,
    /// Gateway HTTPS listeners' ports and host names.
    pub https_names: Vec<(u16, Option<String>)>,
    /// ExternalName Services' DNS answers and policy (the provider's resolver fills it).
    pub dns: Arc<super::external_name::ExternalNames>,
}

impl<'a> Inputs<'a> {
    pub fn of(o: &'a Objects) -> Inputs<'a> {
        Inputs {
            ingresses: o.ingresses.iter().collect(),
            ingress_classes: o.ingress_classes.iter().collect(),
            services: o.services.iter().collect(),
            endpoint_slices: o.endpoint_slices.iter().collect(),
            secrets: o.secrets.iter().collect(),
            config_maps: o.config_maps.iter().collect(),
            l4_routes: o.l4_routes.iter().collect(),
            listener_ports: o.listener_ports.clone(),
            https_names: o.https_names.clone(),
            dns: Arc::default(),
        }
    }
}

/// Builds a complete snapshot (generation 0: the publisher numbers it).
pub fn build(objects: &Objects, opts: &BuildOptions) -> Snapshot {
    build_from(&Inputs::of(objects), opts)
}

/// Where an Ingress rule's routes live in the table.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum HostKey {
    /// `spec.defaultBackend`: the table's fallback.
    Default,
    /// Rules without a host.
    Any,
    Exact(String),
    /// `*.suffix`, keyed by the suffix.
    Wildcard(String),
}

impl HostKey {
    pub fn of_rule(host: Option<&str>) -> HostKey {
        match host {
            None => HostKey::Any,
            Some(h) => match h.strip_prefix("*.") {
                Some(suffix) => HostKey::Wildcard(suffix.to_string()),
                None => HostKey::Exact(h.to_string()),
            },
        }
    }

    /// Every place an Ingress puts routes (whatever its class).
    pub fn of_ingress(ing: &Ingress) -> Vec<HostKey> {
        let mut keys: Vec<HostKey> = ing.rules.iter().map(|r| HostKey::of_rule(r.host.as_deref())).collect();
        if ing.default_backend.is_some() {
            keys.push(HostKey::Default);
        }
        keys.sort();
        keys.dedup();
        keys
    }
}

/// Served Ingresses, oldest first (on a conflict the first claimant keeps the route); a key
/// defined twice (e.g. in two files) keeps its first definition, loudly.
fn served<'a>(
    ingresses: &[&'a Ingress],
    classes: &[&IngressClass],
    opts: &BuildOptions,
) -> (Vec<&'a Ingress>, Vec<String>) {
    let mut warnings = Vec::new();
    let mut out: Vec<&Ingress> = ingresses.iter().copied().filter(|i| serves(i, classes, opts)).collect();
    out.sort_by(|a, b| (&a.creation_timestamp, &a.key, a.origin).cmp(&(&b.creation_timestamp, &b.key, b.origin)));
    out.dedup_by(|later, first| {
        // An HTTPRoute may share its namespace and name with an Ingress or a GRPCRoute.
        let dup = later.key == first.key && later.origin == first.origin;
        if dup {
            warnings.push(format!("Ingress {} is defined twice; using the first definition", later.key));
        }
        dup
    });
    (out, warnings)
}

/// Builds a complete snapshot from borrowed inputs.
pub fn build_from(inputs: &Inputs, opts: &BuildOptions) -> Snapshot {
    build_after(inputs, opts, &Snapshot::default())
}

/// A complete build that reuses `prev`'s parsed certificates (and keeps the last good one of
/// a Secret that no longer parses).
pub fn build_after(inputs: &Inputs, opts: &BuildOptions, prev: &Snapshot) -> Snapshot {
    let mut b = resolver(inputs, None);
    b.policy = opts.unsupported_security;
    b.default_service = opts.default_backend_service.clone();
    b.prev_good = prev.annotations.clone();
    let (ingresses, mut build_warnings) = served(&inputs.ingresses, &inputs.ingress_classes, opts);
    let config_map = inputs.config_maps.iter().find(|c| c.key == opts.config_map).copied();
    let live = (prev.generation > 0).then(|| super::config::Global::of(prev));
    let flags = super::config::Global {
        settings: opts.settings.clone(),
        log: opts.log.clone(),
        edge: super::edge::Edge::default(),
    };
    let (mut global, config_warnings) = super::config::apply(&flags, live.as_ref(), config_map);
    let prev_edge = (prev.generation > 0).then_some(&*prev.edge);
    global.edge.resolve(&inputs.config_maps, &mut build_warnings, (&opts.config_map, prev_edge));
    global_auth(&mut b, &mut global.edge, config_map, &mut build_warnings);
    b.allowed_response_headers = global.edge.allowed_response_headers.clone();
    b.allow_snippets = global.edge.allow_snippets;
    b.ssl_passthrough = opts.ssl_passthrough;
    refuse_globally(&mut global.edge, opts, &mut build_warnings);
    let super::l4::Built { table: l4, warnings: l4_warnings, .. } = super::l4::build(inputs, &opts.l4);
    build_warnings.extend(l4_warnings);
    build_warnings.extend(config_warnings);
    // Group by host, keeping the age order within each host.
    let mut by_host: FxHashMap<HostKey, Vec<&Ingress>> = FxHashMap::default();
    if opts.default_backend_service.is_some() {
        by_host.insert(HostKey::Default, Vec::new());
    }
    for ing in &ingresses {
        for key in HostKey::of_ingress(ing) {
            by_host.entry(key).or_default().push(ing);
        }
    }
    let mut table = RouteTable::default();
    for (key, list) in &by_host {
        set_host(&mut table, key, host_routes(&mut b, key, list));
    }
    let annotations = Arc::new(std::mem::take(&mut b.good));
    let backends = &b.backends;
    let mut by_service: FxHashMap<Arc<ObjectKey>, Arc<[BackendId]>> = FxHashMap::default();
    for ids in b.by_service.into_values().chain(b.auth_services.into_values()) {
        let key = Arc::new(backends[ids[0] as usize].service.clone());
        let all = by_service.get(&key).into_iter().flat_map(|v| v.iter().copied()).chain(ids).collect();
        by_service.insert(key, all);
    }
    let snap = Snapshot {
        generation: 0,
        table: Arc::new(table),
        endpoint_set: endpoint_set(&b.backends),
        backends: b.backends,
        by_service: Arc::new(by_service),
        settings: global.settings,
        log: Arc::new(global.log),
        edge: Arc::new(global.edge),
        l4: Arc::new(l4),
        build_warnings: Arc::new(build_warnings),
        annotations,
        certs: Arc::new(crate::snapshot::certs::build_certs(
            &ingresses,
            &inputs.secrets,
            opts.default_certificate.as_ref(),
            &prev.certs,
        )),
    };
    log_warnings(&snap.warnings());
    snap
}

/// The ConfigMap's `global-auth-url` and its family, resolved into [`super::edge::Edge::global_auth`].
/// Settings that cannot be enforced refuse every Ingress that keeps global auth.
fn global_auth(b: &mut Builder<'_>, edge: &mut super::edge::Edge, cm: Option<&ConfigMap>, warnings: &mut Vec<String>) {
    let Some(cm) = cm else { return };
    let get = |k: &str| {
        let (key, v) = cm.data.get_key_value(&format!("global-{k}"))?;
        Some((key.as_str(), v.as_str())).filter(|(_, v)| !v.trim().is_empty())
    };
    let parsed = ExternalAuth::parse(format!("ConfigMap {}", cm.key), &cm.key.namespace, get);
    let why = match parsed.and_then(|spec| spec.map(|s| b.external(s)).transpose()) {
        Ok(resolved) => {
            edge.global_auth = resolved;
            return;
        }
        Err(why) => format!("ConfigMap {} key {why}", cm.key),
    };
    warnings.push(format!("{why}; every Ingress without enable-global-auth: \"false\" answers 503"));
    edge.refused = Some(why.into());
}

/// The ConfigMap asks for a protection of every Ingress that ringress does not enforce:
/// under `refuse`, every Ingress that keeps global auth is refused (its routes answer 503);
/// under `warn`, a warning.
fn refuse_globally(edge: &mut super::edge::Edge, opts: &BuildOptions, warnings: &mut Vec<String>) {
    if edge.unenforced.is_empty() {
        return;
    }
    let keys: Vec<String> = edge.unenforced.iter().map(|(k, what)| format!("{k} ({what})")).collect();
    let why = format!(
        "ConfigMap {} key {} asks it for every Ingress, which ringress does not enforce",
        opts.config_map,
        keys.join(", ")
    );
    match opts.unsupported_security {
        super::access::UnsupportedPolicy::Refuse => {
            warnings.push(format!("{why}; every Ingress without enable-global-auth: \"false\" answers 503"));
            edge.refused = Some(why.into());
        }
        super::access::UnsupportedPolicy::Warn => {
            warnings.push(format!("{why}; served WITHOUT it (--unsupported-security-annotations=warn)"))
        }
    }
}

/// What a host's rules become: its routes (or, for [`HostKey::Default`], the default route),
/// and the conflicts found on the way.
enum Built {
    Host(HostRoutes),
    Default(Option<Route>, Vec<String>),
}

/// Builds one host from the served Ingresses that have rules for it, oldest first.
fn host_routes<'a>(b: &mut Builder<'a>, key: &HostKey, ingresses: &[&'a Ingress]) -> Built {
    if *key == HostKey::Default {
        let mut route: Option<Route> = None;
        let mut warnings = Vec::new();
        for ing in ingresses {
            let Some(db) = &ing.default_backend else { continue };
            match &route {
                Some(first) => warnings.push(format!(
                    "Ingress {} sets a defaultBackend, but {} already set one (older wins); ignored",
                    ing.key, first.ingress
                )),
                None => {
                    let backend = b.backend_id(&ing.key.namespace, db);
                    route = Some(catch_all(backend, ing.key.clone(), Arc::new(b.route_options(ing).0)));
                }
            }
        }
        if route.is_none() {
            if let Some(key) = b.default_service.clone() {
                match b.first_port_backend(&key.namespace, &key.name) {
                    Ok(backend) => {
                        let by =
                            ObjectKey { namespace: key.namespace.clone(), name: "--default-backend-service".into() };
                        route = Some(catch_all(backend, by, Arc::default()));
                    }
                    Err(why) => warnings.push(format!("--default-backend-service: {why}; unmatched requests get 404")),
                }
            }
        }
        return Built::Default(route, warnings);
    }
    let mut hr = HostRoutes::default();
    let mut canaries = Vec::new();
    // As ingress-nginx: `use-regex` (or a `rewrite-target`) on any Ingress of the host makes
    // every path of the host a regular expression, matched without regard to case.
    let host_regex = ingresses.iter().any(|ing| annotations::wants_regex(ing));
    for ing in ingresses {
        let ingress = Arc::new(ing.key.clone());
        let (options, warnings) = b.route_options(ing);
        hr.warnings.extend(warnings);
        if let Some(rules) = &options.canary {
            canaries.push((*ing, ingress, rules.clone()));
            continue;
        }
        // `default-backend`: the Service that answers when a route's own has no endpoints.
        let fallback = match options.default_backend.as_deref() {
            Some(name) => match b.first_port_backend(&ing.key.namespace, name) {
                Ok(id) => Some(id),
                Err(why) => {
                    hr.warnings.push(format!("Ingress {}: annotation default-backend: {why}; ignored", ing.key));
                    None
                }
            },
            None => None,
        };
        let options = Arc::new(options);
        // With use-regex or rewrite-target (here or on another Ingress of the host), paths are
        // regular expressions (as in ingress-nginx), matched case-insensitively from the start.
        let regex = host_regex || options.use_regex || options.rewrite_target.is_some();
        for rule in ing.rules.iter().filter(|r| HostKey::of_rule(r.host.as_deref()) == *key) {
            for p in &rule.paths {
                if let Some(g) = &p.gateway {
                    let route =
                        gateway::route(b, ing, (&ingress, rule.host.as_ref()), (p, g), &options, &mut hr.warnings);
                    insert(&mut hr, route);
                    continue;
                }
                let rewrite = match options.rewrite_for(ing, &p.path) {
                    Ok(r) => r.map(Arc::new),
                    Err(w) => {
                        hr.warnings.push(w);
                        None
                    }
                };
                // A regular-expression path is matched by the expression; one that does not
                // compile, by its literal start.
                let (path, path_type, compiled) = if regex && p.path_type != PathType::Exact {
                    match annotations::PathRegex::new(ing, &p.path) {
                        Ok(re) => (p.path.clone(), PathType::Prefix, Some(Arc::new(re))),
                        Err(w) => {
                            hr.warnings.push(w);
                            (annotations::literal_prefix(&p.path).to_string(), PathType::Prefix, None)
                        }
                    }
                } else {
                    (p.path.clone(), p.path_type, None)
                };
                let backend = match options.service_upstream {
                    false => b.backend_id(&ing.key.namespace, &p.backend),
                    true => b.cluster_ip_backend(&ing.key.namespace, &p.backend).unwrap_or_else(|why| {
                        hr.warnings.push(format!(
                            "Ingress {}: annotation service-upstream: {why}; its endpoints are used",
                            ing.key
                        ));
                        b.backend_id(&ing.key.namespace, &p.backend)
                    }),
                };
                let route = Route {
                    backend,
                    ingress: ingress.clone(),
                    host: rule.host.clone(),
                    path,
                    path_type,
                    tls: tls_covers(ing, rule.host.as_deref()),
                    options: options.clone(),
                    rewrite,
                    regex: compiled,
                    canary: None,
                    fallback,
                    gateway: None,
                    next: None,
                    origin: ing.origin,
                };
                insert(&mut hr, route);
            }
        }
    }
    for (ing, ingress, rules) in canaries {
        attach_canaries(b, key, &mut hr, ing, ingress, rules);
    }
    Built::Host(hr)
}

/// The default route: every host, every path, to `backend`.
fn catch_all(backend: BackendId, by: ObjectKey, options: Arc<annotations::RouteOptions>) -> Route {
    Route {
        backend,
        ingress: Arc::new(by),
        host: None,
        path: "/".to_string(),
        path_type: PathType::Prefix,
        tls: false,
        options,
        rewrite: None,
        regex: None,
        canary: None,
        fallback: None,
        gateway: None,
        next: None,
        origin: crate::model::Origin::Ingress,
    }
}

/// A canary Ingress's paths become the alternative backends of the main Ingress's routes with
/// the same host, path and path type (the oldest canary of a route wins); a canary path with
/// no main route is not served, as in ingress-nginx.
fn attach_canaries<'a>(
    b: &mut Builder<'a>,
    key: &HostKey,
    hr: &mut HostRoutes,
    ing: &'a Ingress,
    ingress: Arc<ObjectKey>,
    rules: Arc<annotations::CanaryRules>,
) {
    for rule in ing.rules.iter().filter(|r| HostKey::of_rule(r.host.as_deref()) == *key) {
        for p in &rule.paths {
            let main = hr.routes.iter_mut().find(|r| {
                r.path == p.path && (r.regex.is_some() || r.path_type == p.path_type) && r.ingress != ingress
            });
            let host = rule.host.as_deref().unwrap_or("*");
            match main {
                None => hr.warnings.push(format!(
                    "Ingress {ingress}: canary for {host}{}, where no main Ingress has that path; not served",
                    p.path
                )),
                Some(r) if r.canary.is_some() => hr.warnings.push(format!(
                    "Ingress {ingress}: canary for {host}{}, which already has one ({}; older wins); ignored",
                    p.path,
                    r.canary.as_ref().map(|c| c.ingress.to_string()).unwrap_or_default()
                )),
                Some(r) => {
                    let backend = b.backend_id(&ing.key.namespace, &p.backend);
                    r.canary = Some(Arc::new(super::Canary::new(backend, ingress.clone(), rules.clone())));
                }
            }
        }
    }
}

/// Whether an Ingress's `spec.tls` lists a rule's host (exactly, or by the same wildcard).
fn tls_covers(ing: &Ingress, host: Option<&str>) -> bool {
    let Some(host) = host else { return false };
    ing.tls.iter().flat_map(|t| t.hosts.iter()).any(|h| {
        h.eq_ignore_ascii_case(host)
            || h.strip_prefix("*.")
                .is_some_and(|s| host.split_once('.').is_some_and(|(_, rest)| rest.eq_ignore_ascii_case(s)))
    })
}

/// Puts a built host into the table (an empty one removes the host).
fn set_host(table: &mut RouteTable, key: &HostKey, built: Built) {
    let (map, name) = match (key, built) {
        (_, Built::Default(route, warnings)) => {
            table.default_route = route;
            table.default_warnings = warnings;
            return;
        }
        (HostKey::Any, Built::Host(hr)) => {
            table.len = table.len - table.any_host.routes.len() + hr.routes.len();
            table.client_cert_hosts =
                table.client_cert_hosts - table.any_host.wants_client_cert() as usize + hr.wants_client_cert() as usize;
            table.passthrough_hosts =
                table.passthrough_hosts - table.any_host.passes_through() as usize + hr.passes_through() as usize;
            table.any_host = Arc::new(hr);
            return;
        }
        (HostKey::Exact(h), Built::Host(mut hr)) => {
            let names = table.names.set(h, &hr.routes);
            hr.warnings.extend(names);
            ((&mut table.exact_hosts, h.as_str()), hr)
        }
        (HostKey::Wildcard(h), Built::Host(hr)) => {
            let was = table.wildcard_hosts.get(h.as_str()).is_some_and(|o| o.deep()) as usize;
            table.deep_wildcards = table.deep_wildcards - was + hr.deep() as usize;
            ((&mut table.wildcard_hosts, h.as_str()), hr)
        }
        (HostKey::Default, Built::Host(_)) => unreachable!("the default is built as Built::Default"),
    };
    let (map, host) = map;
    let old = map.get(host).map(|h| h.routes.len()).unwrap_or(0);
    table.len = table.len - old + name.routes.len();
    let old_certs = map.get(host).is_some_and(|h| h.wants_client_cert()) as usize;
    table.client_cert_hosts = table.client_cert_hosts - old_certs + name.wants_client_cert() as usize;
    let old_passed = map.get(host).is_some_and(|h| h.passes_through()) as usize;
    table.passthrough_hosts = table.passthrough_hosts - old_passed + name.passes_through() as usize;
    if name.routes.is_empty() {
        map.remove(host);
    } else {
        map.insert(Arc::from(host), Arc::new(name));
    }
}

/// Logged once per publish; at most a handful verbatim, so a cluster with thousands of broken
/// backends does not flood the log on every change.
fn log_warnings(all: &[String]) {
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
/// Endpoints that left stay in [`Snapshot::endpoint_set`] until the next full build (pools
/// keep idle connections to them until those expire).
pub fn update_endpoints(prev: &Snapshot, inputs: &Inputs, changed: &[ObjectKey]) -> Snapshot {
    let only: FxHashSet<(&str, &str)> = changed.iter().map(|k| (k.namespace.as_str(), k.name.as_str())).collect();
    let b = resolver(inputs, Some(&only));
    let mut backends = prev.backends.clone();
    let mut endpoints = prev.endpoint_set.clone();
    let mut problems = Vec::new();
    for key in changed {
        for &id in prev.by_service.get(key).map(|ids| &ids[..]).unwrap_or_default() {
            let old = &backends[id as usize];
            let (eps, problem, dns_name) = b.endpoints_of(&old.service.namespace, &old.service.name, &old.port);
            if eps != old.endpoints || problem != old.problem || dns_name != old.dns_name {
                endpoints.extend(eps.iter().copied());
                if let Some(p) = &problem {
                    problems.push(format!("backend {}: {p}; requests get 503", old.name));
                }
                backends[id as usize] = Arc::new(Backend { endpoints: eps, problem, dns_name, ..Backend::clone(old) });
            }
        }
    }
    log_warnings(&problems);
    Snapshot { backends, endpoint_set: endpoints, ..derived(prev) }
}

/// A copy of `prev` sharing everything (generation 0: the publisher numbers it).
fn derived(prev: &Snapshot) -> Snapshot {
    Snapshot {
        generation: 0,
        table: prev.table.clone(),
        backends: prev.backends.clone(),
        by_service: prev.by_service.clone(),
        endpoint_set: prev.endpoint_set.clone(),
        settings: prev.settings.clone(),
        log: prev.log.clone(),
        edge: prev.edge.clone(),
        l4: prev.l4.clone(),
        build_warnings: prev.build_warnings.clone(),
        annotations: prev.annotations.clone(),
        certs: prev.certs.clone(),
    }
}

/// A snapshot that differs from `prev` only in the given hosts, each rebuilt from the
/// Ingresses (any class; filtered here) that have rules for it: the rest of the table is
/// shared. Backends keep their ids; new ones are appended (and ones no longer used linger
/// until the next full build). Equal in routing to a full [`build_from`] whenever only these
/// hosts' Ingresses changed since `prev` (the provider tracks which hosts an Ingress touches,
/// before and after its change; class and settings changes take a full build).
pub fn update_hosts<'a>(
    prev: &Snapshot,
    inputs: &Inputs<'a>,
    hosts: &[(HostKey, Vec<&'a Ingress>)],
    opts: &BuildOptions,
) -> Snapshot {
    let mut auth_services: Vec<(String, String)> =
        hosts.iter().flat_map(|(_, list)| list.iter()).filter_map(|ing| annotations::auth_service(ing)).collect();
    // `default-backend` and `--default-backend-service` Services are resolved like `auth-url`'s.
    auth_services
        .extend(hosts.iter().flat_map(|(_, list)| list.iter()).filter_map(|ing| annotations::default_backend(ing)));
    auth_services.extend(opts.default_backend_service.iter().map(|k| (k.namespace.clone(), k.name.clone())));
    let mut referenced: FxHashSet<(&str, &str)> = hosts
        .iter()
        .flat_map(|(_, list)| list.iter())
        .flat_map(|ing| {
            let ns = ing.key.namespace.as_str();
            let paths = ing.rules.iter().flat_map(|r| r.paths.iter().map(|p| &p.backend));
            paths.chain(ing.default_backend.iter()).map(move |sb| (ns, sb.service.as_str()))
        })
        .collect();
    // A Gateway API rule's weighted backends and mirrors, in their own namespaces.
    let gateway = hosts.iter().flat_map(|(_, list)| list.iter()).flat_map(|ing| ing.rules.iter()).flat_map(|r| {
        r.paths.iter().filter_map(|p| p.gateway.as_deref()).flat_map(|g| {
            let split = g.backends.iter().filter_map(|(b, _)| b.as_ref());
            split.chain(g.mirrors.iter().map(|(b, _)| b)).map(|(ns, sb)| (ns.as_str(), sb.service.as_str()))
        })
    });
    referenced.extend(gateway);
    referenced.extend(auth_services.iter().map(|(ns, name)| (ns.as_str(), name.as_str())));
    let mut b = resolver(inputs, Some(&referenced));
    b.policy = opts.unsupported_security;
    b.default_service = opts.default_backend_service.clone();
    b.allowed_response_headers = prev.edge.allowed_response_headers.clone();
    b.allow_snippets = prev.edge.allow_snippets;
    b.ssl_passthrough = opts.ssl_passthrough;
    b.prev_good = prev.annotations.clone();
    b.seed(prev);
    let mut table = RouteTable::clone(&prev.table);
    let mut warnings = Vec::new();
    for (key, list) in hosts {
        let (list, _) = served(list, &inputs.ingress_classes, opts);
        let built = host_routes(&mut b, key, &list);
        match &built {
            Built::Host(hr) => warnings.extend(hr.warnings.iter().cloned()),
            Built::Default(_, w) => warnings.extend(w.iter().cloned()),
        }
        set_host(&mut table, key, built);
    }
    let mut snap = derived(prev);
    snap.table = Arc::new(table);
    if !b.good.is_empty() {
        let mut all = super::GoodAnnotations::clone(&prev.annotations);
        all.extend(std::mem::take(&mut b.good));
        snap.annotations = Arc::new(all);
    }
    if !b.fresh.is_empty() {
        let mut by_service = FxHashMap::clone(&prev.by_service);
        for &id in &b.fresh {
            let be = &b.backends[id as usize];
            warnings.extend(be.problem.as_ref().map(|p| format!("backend {}: {p}; requests get 503", be.name)));
            snap.endpoint_set.extend(be.endpoints.iter().copied());
            if be.service.name.is_empty() || b.unwatched.contains(&id) {
                // A fixed address (`auth-url` with an IP, a cluster IP): nothing to follow.
                continue;
            }
            let ids = by_service.entry(Arc::new(be.service.clone())).or_insert_with(|| Arc::from(Vec::new()));
            *ids = ids.iter().copied().chain(std::iter::once(id)).collect();
        }
        snap.by_service = Arc::new(by_service);
        snap.backends = b.backends;
    }
    log_warnings(&warnings);
    snap
}

/// Whether an Ingress belongs to our class: named by the legacy annotation or by
/// `spec.ingressClassName`; with no class, only when our IngressClass is the cluster default
/// or `watch_without_class` is set.
pub fn serves(ing: &Ingress, classes: &[&IngressClass], opts: &BuildOptions) -> bool {
    if ing.origin != crate::model::Origin::Ingress {
        // Lowered from our GatewayClasses' objects: chosen by class already.
        return true;
    }
    match ing.requested_class() {
        Some(c) => c == opts.class,
        None => opts.watch_without_class || classes.iter().any(|c| c.name == opts.class && c.is_default),
    }
}
