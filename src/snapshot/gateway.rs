//! Gateway API as a second source of routes: our GatewayClasses' Gateways, and the HTTPRoutes
//! and GRPCRoutes attached to their listeners, are lowered into [`Ingress`] terms (a rule per
//! host a route gets, a path per match, the rest of the match and the rule's filters and
//! weighted backends carried by [`GatewayPath`]), so the one builder makes one routing table of
//! both. The lowering also decides every status condition the specification defines; the
//! provider's status writer only writes them.

mod listener;
mod lowering;
mod rule;
mod status;

use std::collections::BTreeMap;
use std::sync::Arc;

use crate::model::gateway::{
    Filter, Gateway, GatewayClass, GatewayPath, HttpRoute, Listener, MatchType, ObjectRef, ReferenceGrant, RouteKind,
    GROUP,
};
use crate::model::{
    Ingress, IngressPath, IngressRule, IngressTls, ObjectKey, Origin, PathType, PortRef, Secret, Service,
    ServiceBackend,
};

use listener::{certificates, kinds_for, listener_kinds, PortUse};
pub use lowering::Lowering;
pub use rule::{modified_path, query_param, weighted, Entry, Facts, GatewayRule, HttpsNames};
use status::cond;
pub use status::{Condition, GatewayStatus, ListenerStatus, ParentStatus, RouteStatus, Statuses};

/// The `spec.controllerName` of the GatewayClasses ringress serves.
pub const CONTROLLER: &str = "ringress.dev/gateway-controller";

/// What the lowering reads.
#[derive(Default)]
pub struct GatewayInputs<'a> {
    pub classes: Vec<&'a GatewayClass>,
    pub gateways: Vec<&'a Gateway>,
    pub routes: Vec<&'a HttpRoute>,
    pub grants: Vec<&'a ReferenceGrant>,
    pub services: Vec<&'a Service>,
    pub secrets: Vec<&'a Secret>,
    /// Namespaces' labels, for listeners that select the namespaces of their routes.
    pub namespaces: Vec<&'a crate::model::Namespace>,
}

/// The lowering's result.
#[derive(Debug, Default)]
pub struct Lowered {
    pub ingresses: Vec<Ingress>,
    /// TCPRoutes: the ports forwarded.
    pub l4: Vec<crate::model::gateway::L4Route>,
    /// The ports of HTTP, HTTPS and TLS listeners other than 80 and 443 (which ringress's own
    /// listeners serve), and whether each is over TLS: the listeners to open.
    pub ports: Vec<(u16, bool)>,
    /// Every valid HTTPS listener's port and host name.
    pub https_names: HttpsNames,
    pub statuses: Statuses,
}

/// What the lowering looks up for every route: (namespace, name) of every Service, and each
/// Namespace's labels.
struct Index<'a> {
    services: rustc_hash::FxHashSet<(&'a str, &'a str)>,
    namespaces: rustc_hash::FxHashMap<&'a str, &'a BTreeMap<String, String>>,
}

/// A listener ready to take routes.
struct Live<'a> {
    gateway: &'a Gateway,
    /// Its Gateway's place in the statuses.
    gw_at: usize,
    listener: &'a Listener,
    index: usize,
    https: bool,
    kinds: Vec<RouteKind>,
}

/// Whether a ReferenceGrant in `to_ns` lets `from` (group, kind, namespace) name `to`.
fn granted(grants: &[&ReferenceGrant], from: (&str, &str, &str), to_ns: &str, to: (&str, &str, &str)) -> bool {
    from.2 == to_ns || grants.iter().any(|g| g.metadata.key().namespace == to_ns && g.permits(from, to))
}

/// Whether a route in `ns` may attach to the listener (allowedRoutes.namespaces).
fn namespace_allowed(live: &Live, ns: &str, index: &Index) -> bool {
    let from = live.listener.allowed_routes.as_ref().and_then(|a| a.namespaces.as_ref());
    match from.and_then(|f| f.from.as_deref()).unwrap_or("Same") {
        "All" => true,
        "Selector" => {
            // The Namespace's labels, and the one every namespace has (also when Namespaces
            // are not watched: with --namespace).
            let mut labels = index.namespaces.get(ns).map(|l| (*l).clone()).unwrap_or_default();
            labels.insert("kubernetes.io/metadata.name".to_string(), ns.to_string());
            from.and_then(|f| f.selector.as_ref()).is_some_and(|s| s.matches(&labels))
        }
        _ => live.gateway.metadata.namespace.as_deref().unwrap_or("default") == ns,
    }
}

/// Whether the wildcard host name `wild` (`*.suffix`) covers `name`: a name under the suffix,
/// at any depth (the specification's suffix match), never the suffix itself. Both lower case.
pub(super) fn covers(wild: &str, name: &str) -> bool {
    wild.strip_prefix('*')
        .and_then(|dot_suffix| name.strip_suffix(dot_suffix).filter(|_| dot_suffix.starts_with('.')))
        .is_some_and(|label| !label.is_empty())
}

/// The host names a route gets on a listener: the intersection of the listener's name and
/// the route's (`None` in the result: any host). Empty: none in common.
pub fn intersect(listener: Option<&str>, route: &[String]) -> Vec<Option<String>> {
    if route.is_empty() {
        return vec![listener.map(str::to_string)];
    }
    let Some(l) = listener else { return route.iter().map(|h| Some(h.clone())).collect() };
    let mut out = Vec::new();
    for r in route {
        let got = if r == l || covers(l, r) {
            Some(r.clone())
        } else if covers(r, l) {
            Some(l.to_string())
        } else {
            None
        };
        if let Some(h) = got.filter(|h| !out.contains(&Some(h.clone()))) {
            out.push(Some(h));
        }
    }
    out
}

impl<'a> GatewayInputs<'a> {
    pub fn of(o: &'a crate::model::Objects) -> GatewayInputs<'a> {
        GatewayInputs {
            classes: o.gateway_classes.iter().collect(),
            gateways: o.gateways.iter().collect(),
            routes: o.http_routes.iter().collect(),
            grants: o.reference_grants.iter().collect(),
            services: o.services.iter().collect(),
            secrets: o.secrets.iter().collect(),
            namespaces: o.namespaces.iter().collect(),
        }
    }
}

/// Lowers the Gateway API objects among `objects` into Ingresses added to them; the statuses.
pub fn lower_objects(objects: &mut crate::model::Objects) -> Statuses {
    let Lowered { ingresses, l4, ports, https_names, statuses } = lower(&GatewayInputs::of(objects));
    objects.ingresses.extend(ingresses);
    objects.l4_routes.extend(l4);
    objects.listener_ports.extend(ports);
    objects.https_names.extend(https_names.0);
    statuses
}

/// Lowers our Gateways and the routes attached to them. (The specification's tie-breaker
/// between routes, the oldest first, then namespace and name, is the builder's order of
/// Ingresses.)
pub fn lower(inputs: &GatewayInputs) -> Lowered {
    Lowering::all(inputs).into_lowered()
}

/// What every route is lowered against: the live listeners, their certificates, and the
/// index of Services and Namespaces.
pub(super) struct Frame<'a> {
    index: Index<'a>,
    live: Vec<Live<'a>>,
    /// Certificates of each live HTTPS listener (by index into `live`).
    certs: Vec<Vec<ObjectKey>>,
    /// The Gateways' statuses, before routes are counted (to find a parentRef's Gateway).
    gateways: Vec<GatewayStatus>,
}

/// One route lowered: its status, its rules as an Ingress, its forwarded ports, and what it
/// adds to its listeners.
#[derive(Clone, Debug)]
pub struct RouteLowered {
    pub status: Arc<RouteStatus>,
    pub ingress: Option<Ingress>,
    pub l4: Vec<crate::model::gateway::L4Route>,
    /// The live listeners (by index) it attached to, once per attachment.
    attached: Vec<usize>,
    /// The host names it gets on HTTPS listeners (live index, name): the certificates of a
    /// listener with no host name of its own are for these.
    https_hosts: Vec<(usize, String)>,
}

/// Counts the routes attached to each listener into `gateways` (statuses); the Ingresses that
/// carry each HTTPS listener's certificates, for its host name or, without one, for the names
/// of the routes attached to it.
pub(super) fn finish<'r>(
    frame: &Frame,
    gateways: &mut [GatewayStatus],
    routes: impl Iterator<Item = &'r RouteLowered>,
) -> Vec<Ingress> {
    let live = &frame.live;
    let mut hosts_of_listener: Vec<std::collections::BTreeSet<&str>> = vec![Default::default(); live.len()];
    for r in routes {
        for &i in &r.attached {
            gateways[live[i].gw_at].listeners[live[i].index].attached_routes += 1;
        }
        for (i, h) in &r.https_hosts {
            hosts_of_listener[*i].insert(h);
        }
    }
    let mut out = Vec::new();
    for (i, l) in live.iter().enumerate().filter(|(_, l)| l.https) {
        let mut hosts: Vec<String> = l.listener.hostname.iter().cloned().collect();
        if hosts.is_empty() {
            hosts = hosts_of_listener[i].iter().map(|h| h.to_string()).collect();
        }
        for key in &frame.certs[i] {
            out.push(Ingress {
                key: ObjectKey {
                    namespace: key.namespace.clone(),
                    name: format!("{}/{}", l.gateway.metadata.name, l.listener.name),
                },
                uid: None,
                creation_timestamp: l.gateway.metadata.creation_timestamp.clone(),
                annotations: BTreeMap::new(),
                class_name: None,
                default_backend: None,
                rules: Vec::new(),
                tls: vec![IngressTls { hosts: hosts.clone(), secret_name: Some(key.name.clone()) }],
                origin: Origin::Gateway,
            });
        }
    }
    out
}

/// Our GatewayClasses and Gateways: their statuses (no route counted yet) and listener ports
/// in `Lowered`, and the frame routes are lowered against.
pub(super) fn gateways<'a>(inputs: &'a GatewayInputs) -> (Lowered, Frame<'a>) {
    let index = Index {
        services: inputs.services.iter().map(|s| (s.key.namespace.as_str(), s.key.name.as_str())).collect(),
        namespaces: inputs.namespaces.iter().map(|n| (n.name.as_str(), &n.labels)).collect(),
    };
    let mut out = Lowered::default();
    let classes: Vec<&GatewayClass> =
        inputs.classes.iter().copied().filter(|c| c.spec.controller_name == CONTROLLER).collect();
    out.statuses.classes = classes.iter().map(|c| (c.metadata.name.clone(), c.metadata.generation)).collect();
    let mut gateways: Vec<&Gateway> = inputs
        .gateways
        .iter()
        .copied()
        .filter(|g| classes.iter().any(|c| c.metadata.name == g.spec.gateway_class_name))
        .collect();
    gateways.sort_by(|a, b| {
        (&a.metadata.creation_timestamp, a.metadata.key()).cmp(&(&b.metadata.creation_timestamp, b.metadata.key()))
    });
    let mut live: Vec<Live> = Vec::new();
    // Certificates of each live HTTPS listener (by index into `live`).
    let mut certs: Vec<Vec<ObjectKey>> = Vec::new();
    // Every Gateway listens on the node's addresses: a port serves one protocol, claimed by
    // the oldest Gateway with a valid listener on it (80 and 443 are ringress's own).
    let mut claims: rustc_hash::FxHashMap<u16, (PortUse, Option<ObjectKey>)> =
        [(80, (PortUse::Plain, None)), (443, (PortUse::Tls, None))].into_iter().collect();
    for gw in &gateways {
        let mut listeners = Vec::new();
        for (i, l) in gw.spec.listeners.iter().enumerate() {
            let (kinds, bad_kinds) = listener_kinds(l);
            let mut conditions = Vec::new();
            let conflict = gw.spec.listeners.iter().enumerate().find_map(|(j, o)| {
                if j == i || o.port != l.port {
                    return None;
                }
                // HTTPS and TLS (passthrough) share a port: the ClientHello's name decides.
                let tls_pair = |a: &str, b: &str| a == "HTTPS" && b == "TLS";
                if o.protocol != l.protocol
                    && !tls_pair(&o.protocol, &l.protocol)
                    && !tls_pair(&l.protocol, &o.protocol)
                {
                    Some("ProtocolConflict")
                } else if o.hostname == l.hostname {
                    Some("HostnameConflict")
                } else {
                    None
                }
            });
            let mut ok = true;
            let mut keys = Vec::new();
            let supported = kinds_for(&l.protocol).is_some();
            let mode = l.tls.as_ref().and_then(|t| t.mode.as_deref()).unwrap_or("Terminate");
            match l.protocol.as_str() {
                _ if !supported => {
                    ok = false;
                    let m = format!("protocol {} is not supported by ringress on a Gateway", l.protocol);
                    conditions.push(cond("Accepted", false, "UnsupportedProtocol", m));
                }
                "HTTPS" => match certificates(gw, l, inputs) {
                    Ok(k) => keys = k,
                    Err(c) => {
                        ok = false;
                        conditions.push(c)
                    }
                },
                "TLS" if mode != "Passthrough" => {
                    ok = false;
                    let m = "TLS listeners pass connections through (tls.mode Passthrough); Terminate is not supported";
                    conditions.push(cond("Accepted", false, "UnsupportedValue", m));
                }
                _ => {}
            }
            let https = l.protocol == "HTTPS";
            if !conditions.iter().any(|c| c.type_ == "Accepted") {
                conditions.push(cond("Accepted", true, "Accepted", "listener accepted"));
            }
            if bad_kinds {
                ok = ok && !kinds.is_empty();
                conditions.push(cond(
                    "ResolvedRefs",
                    false,
                    "InvalidRouteKinds",
                    "allowedRoutes.kinds lists a kind ringress cannot serve here",
                ));
            } else if !conditions.iter().any(|c| c.type_ == "ResolvedRefs") {
                conditions.push(cond("ResolvedRefs", true, "ResolvedRefs", "references resolved"));
            }
            let used = PortUse::of(&l.protocol);
            let claimed = claims.get(&l.port).filter(|(u, by)| *u != used && by.as_ref() != Some(&gw.metadata.key()));
            match (conflict, claimed) {
                (Some(reason), _) => {
                    ok = false;
                    conditions.push(cond("Conflicted", true, reason, "another listener has this port"));
                }
                (None, Some((_, by))) => {
                    ok = false;
                    let m = match by {
                        Some(g) => format!("Gateway {g} has an older listener of another protocol on port {}", l.port),
                        None => format!(
                            "port {} is ringress's own {} listener",
                            l.port,
                            if l.port == 80 { "HTTP" } else { "HTTPS" }
                        ),
                    };
                    conditions.push(cond("Conflicted", true, "ProtocolConflict", m));
                }
                (None, None) => conditions.push(cond("Conflicted", false, "NoConflicts", "no conflicts")),
            }
            if ok && supported {
                claims.entry(l.port).or_insert((used, Some(gw.metadata.key())));
            }
            conditions.push(match ok {
                true => cond("Programmed", true, "Programmed", "listener programmed"),
                false => cond("Programmed", false, "Invalid", "listener not programmed"),
            });
            let supported_kinds = kinds.iter().map(|k| k.name()).collect();
            listeners.push(ListenerStatus { name: l.name.clone(), supported_kinds, attached_routes: 0, conditions });
            if ok {
                let gw_at = out.statuses.gateways.len();
                live.push(Live { gateway: gw, gw_at, listener: l, index: i, https, kinds });
                certs.push(keys);
            }
        }
        let all_ok = listeners.iter().all(|l| l.conditions.iter().any(|c| c.type_ == "Programmed" && c.status));
        let accepted = match all_ok {
            true => cond("Accepted", true, "Accepted", "accepted by ringress"),
            false => cond("Accepted", true, "ListenersNotValid", "some listeners are not valid"),
        };
        out.statuses.gateways.push(GatewayStatus {
            key: gw.metadata.key(),
            generation: gw.metadata.generation,
            conditions: vec![accepted, cond("Programmed", true, "Programmed", "served by ringress")],
            listeners,
        });
    }
    for l in &live {
        let port = (l.listener.port, PortUse::of(&l.listener.protocol) == PortUse::Tls);
        let own = port.0 == 80 || port.0 == 443;
        if l.kinds.iter().any(|k| *k != RouteKind::Tcp) && !own && !out.ports.contains(&port) {
            out.ports.push(port);
        }
    }
    out.ports.sort_unstable();
    let mut names: Vec<(u16, Option<String>)> =
        live.iter().filter(|l| l.https).map(|l| (l.listener.port, l.listener.hostname.clone())).collect();
    names.sort_unstable();
    names.dedup();
    out.https_names = HttpsNames(names);
    let gateways = out.statuses.gateways.clone();
    (out, Frame { index, live, certs, gateways })
}

/// The listeners of one parentRef of a route (by gateway, sectionName and port), or the
/// reason none is.
fn parent_listeners<'l, 'a>(
    route: &HttpRoute,
    parent: &ObjectRef,
    live: &'l [Live<'a>],
    index: &Index,
) -> Result<Vec<(usize, &'l Live<'a>)>, Condition> {
    let ns = route.metadata.namespace.as_deref().unwrap_or("default");
    let gw_ns = parent.namespace_or(ns);
    let of_gateway: Vec<(usize, &Live)> = live
        .iter()
        .enumerate()
        .filter(|(_, l)| {
            l.gateway.metadata.name == parent.name
                && l.gateway.metadata.namespace.as_deref().unwrap_or("default") == gw_ns
        })
        .filter(|(_, l)| parent.section_name.as_ref().is_none_or(|s| *s == l.listener.name))
        .filter(|(_, l)| parent.port.is_none_or(|p| p == l.listener.port))
        .collect();
    if of_gateway.is_empty() {
        return Err(cond(
            "Accepted",
            false,
            "NoMatchingParent",
            "no listener of the Gateway matches sectionName and port",
        ));
    }
    let allowed: Vec<(usize, &Live)> = of_gateway
        .into_iter()
        .filter(|(_, l)| namespace_allowed(l, ns, index) && l.kinds.contains(&route.kind))
        .collect();
    if allowed.is_empty() {
        return Err(cond("Accepted", false, "NotAllowedByListeners", "no listener of the Gateway allows this route"));
    }
    Ok(allowed)
}

/// A route's backends resolved, and the ResolvedRefs condition.
fn resolve_backends(
    route: &HttpRoute,
    refs: &[crate::model::gateway::BackendRef],
    (inputs, services): (&GatewayInputs, &rustc_hash::FxHashSet<(&str, &str)>),
    problem: &mut Option<Condition>,
) -> Vec<(Option<(String, ServiceBackend)>, u32)> {
    let ns = route.key().namespace;
    refs.iter()
        .map(|b| {
            let t = &b.target;
            let target_ns = t.namespace_or(&ns);
            let fail = |problem: &mut Option<Condition>, reason, message: String| {
                problem.get_or_insert_with(|| cond("ResolvedRefs", false, reason, message));
                (None, b.weight)
            };
            if !t.group_or("").is_empty() || t.kind_or("Service") != "Service" {
                let m = format!("backendRef {} is a {}, not a Service", t.name, t.kind_or("Service"));
                return fail(problem, "InvalidKind", m);
            }
            if !granted(&inputs.grants, (GROUP, route.kind.name(), &ns), target_ns, ("", "Service", &t.name)) {
                let m = format!(
                    "no ReferenceGrant in {target_ns} lets {}s of {ns} use Service {}",
                    route.kind.name(),
                    t.name
                );
                return fail(problem, "RefNotPermitted", m);
            }
            let found = services.contains(&(target_ns, t.name.as_str()));
            let Some(port) = t.port.filter(|_| found) else {
                let m = match found {
                    true => format!("backendRef {} has no port", t.name),
                    false => format!("Service {target_ns}/{} not found", t.name),
                };
                return fail(problem, "BackendNotFound", m);
            };
            let sb = ServiceBackend { service: t.name.clone(), port: PortRef::Number(port) };
            (Some((target_ns.to_string(), sb)), b.weight)
        })
        .collect()
}

/// Attaches a route to the listeners its parentRefs name: its status, and its rules as an
/// Ingress (none when it attaches nowhere). None: no parentRef names one of our Gateways.
pub(super) fn lower_route(route: &HttpRoute, frame: &Frame, inputs: &GatewayInputs) -> Option<RouteLowered> {
    let (live, index, gateways) = (&frame.live, &frame.index, &frame.gateways);
    let mut forwards = Vec::new();
    let mut attachments = Vec::new();
    let mut https_hosts = Vec::new();
    let key = route.key();
    let mut ports: Vec<u16> = Vec::new();
    let mut parents = Vec::new();
    // host -> the listeners (port, over TLS) it is served on
    let mut hosts: BTreeMap<Option<String>, std::collections::BTreeSet<(u16, bool)>> = BTreeMap::new();
    for parent in &route.parent_refs {
        if parent.group_or(GROUP) != GROUP || parent.kind_or("Gateway") != "Gateway" {
            continue;
        }
        let gw_ns = parent.namespace_or(&key.namespace).to_string();
        let ours = gateways.iter().position(|g| g.key.name == parent.name && g.key.namespace == gw_ns);
        if ours.is_none() {
            continue;
        }
        let listeners = match parent_listeners(route, parent, live, index) {
            Ok(l) => l,
            Err(c) => {
                parents.push(ParentStatus { parent: parent.clone(), conditions: vec![c] });
                continue;
            }
        };
        let mut attached = false;
        for (i, l) in listeners {
            let names = intersect(l.listener.hostname.as_deref(), &route.hostnames);
            if names.is_empty() {
                continue;
            }
            attached = true;
            attachments.push(i);
            if route.kind == RouteKind::Tcp {
                ports.push(l.listener.port);
                continue;
            }
            for h in names {
                if let Some(h) = h.as_ref().filter(|_| l.https) {
                    https_hosts.push((i, h.clone()));
                }
                let tls = l.https || route.kind == RouteKind::Tls;
                hosts.entry(h).or_default().insert((l.listener.port, tls));
            }
        }
        let c = match attached {
            true => cond("Accepted", true, "Accepted", "attached"),
            false => cond("Accepted", false, "NoMatchingListenerHostname", "no listener host name matches the route's"),
        };
        parents.push(ParentStatus { parent: parent.clone(), conditions: vec![c] });
    }
    if parents.is_empty() {
        return None;
    }
    let mut problem = None;
    let mut unsupported: Vec<String> = Vec::new();
    let mut paths = Vec::new();
    for (r, rule) in route.rules.iter().enumerate() {
        let mut backends = resolve_backends(route, &rule.backend_refs, (inputs, &index.services), &mut problem);
        let mut filters = rule.filters.clone();
        let unknown = filters.iter().find_map(|f| match f {
            Filter::Unsupported(name) => Some(format!("spec.rules[{r}] filter {name}")),
            _ => None,
        });
        // Filters on one backendRef (per-backend header changes) are not applied: refused too.
        let per_backend = rule.backend_refs.iter().position(|b| !b.filters.is_empty());
        let per_backend = per_backend.map(|j| format!("spec.rules[{r}].backendRefs[{j}] filters"));
        if let Some(what) = unknown.or(per_backend) {
            unsupported.push(what);
            // Fail closed: the rule's requests get 500, never the rule without its filter.
            backends = vec![(None, 1)];
            filters.clear();
        }
        // RequestMirror's backends resolve like backendRefs (a problem shows in ResolvedRefs);
        // one that does not resolve is not mirrored to.
        let mut mirrors = Vec::new();
        for f in &filters {
            if let Filter::Mirror { target, percent } = f {
                let b = crate::model::gateway::BackendRef { target: target.clone(), weight: 1, filters: Vec::new() };
                let resolved =
                    resolve_backends(route, std::slice::from_ref(&b), (inputs, &index.services), &mut problem);
                mirrors.extend(resolved.into_iter().filter_map(|(r, _)| r).map(|r| (r, *percent)));
            }
        }
        let first = backends.iter().find_map(|(b, _)| b.clone());
        let backend =
            first.map(|(_, sb)| sb).unwrap_or(ServiceBackend { service: String::new(), port: PortRef::Number(0) });
        for m in &rule.matches {
            let (path, path_type) = match m.path.type_ {
                MatchType::Exact => (m.path.value.clone(), PathType::Exact),
                MatchType::Prefix => (m.path.value.clone(), PathType::Prefix),
                MatchType::RegularExpression => (m.path.value.clone(), PathType::ImplementationSpecific),
            };
            let gp = GatewayPath {
                kind: route.kind,
                matched: m.clone(),
                filters: filters.clone(),
                backends: backends.clone(),
                mirrors: mirrors.clone(),
                timeouts: rule.timeouts,
                listeners: Vec::new(),
            };
            paths.push(IngressPath { path, path_type, backend: backend.clone(), gateway: Some(Arc::new(gp)) });
        }
    }
    let resolved = problem.unwrap_or_else(|| cond("ResolvedRefs", true, "ResolvedRefs", "references resolved"));
    let accepted_anywhere = parents.iter().any(|p| p.conditions[0].status);
    for p in &mut parents {
        if p.conditions[0].status && !unsupported.is_empty() {
            let m = format!("not served (their requests get 500): {}", unsupported.join(", "));
            if unsupported.len() == route.rules.len() {
                p.conditions[0] = cond("Accepted", false, "UnsupportedValue", m);
            } else {
                p.conditions.push(cond("PartiallyInvalid", true, "UnsupportedValue", m));
            }
        }
        p.conditions.insert(1, resolved.clone());
    }
    let status =
        Arc::new(RouteStatus { kind: route.kind, key: key.clone(), generation: route.metadata.generation, parents });
    let lowered = |ingress| RouteLowered {
        status: status.clone(),
        ingress,
        l4: Vec::new(),
        attached: attachments.clone(),
        https_hosts: https_hosts.clone(),
    };
    if !accepted_anywhere {
        return Some(lowered(None));
    }
    if route.kind == RouteKind::Tcp {
        // The first rule's backends split the port's connections by weight; the first that
        // resolves names the port (its Service's annotations apply).
        let backends = paths.first().and_then(|p| p.gateway.as_ref()).map(|g| &g.backends[..]).unwrap_or_default();
        let of = |(namespace, sb): &(String, ServiceBackend)| {
            let port = match sb.port {
                PortRef::Number(n) => n,
                PortRef::Name(_) => 0,
            };
            (ObjectKey { namespace: namespace.clone(), name: sb.service.clone() }, port)
        };
        let shares: Vec<(Option<(ObjectKey, u16)>, u32)> =
            backends.iter().map(|(b, w)| (b.as_ref().map(of), *w)).collect();
        if let Some((service, service_port)) = backends.iter().find_map(|(b, _)| b.as_ref().map(of)) {
            for port in ports {
                forwards.push(crate::model::gateway::L4Route {
                    port,
                    service: service.clone(),
                    service_port,
                    shares: if shares.len() > 1 { shares.clone() } else { Vec::new() },
                    source: format!("TCPRoute {key}"),
                    created: route.metadata.creation_timestamp.clone(),
                });
            }
        }
        return Some(RouteLowered { l4: forwards, ..lowered(None) });
    }
    let rules = hosts
        .into_iter()
        .map(|(host, listeners)| {
            let listeners: Vec<(u16, bool)> = listeners.into_iter().collect();
            let paths = paths
                .iter()
                .map(|p| {
                    let mut p = p.clone();
                    if let Some(g) = p.gateway.as_mut() {
                        Arc::make_mut(g).listeners = listeners.clone();
                    }
                    p
                })
                .collect();
            IngressRule { host, paths }
        })
        .collect();
    let ingress = Ingress {
        key,
        uid: route.metadata.uid.clone(),
        creation_timestamp: route.metadata.creation_timestamp.clone(),
        annotations: BTreeMap::new(),
        class_name: None,
        default_backend: None,
        rules,
        tls: Vec::new(),
        origin: Origin::Route(route.kind),
    };
    Some(lowered(Some(ingress)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(v: &[&str]) -> Vec<String> {
        v.iter().map(|x| x.to_string()).collect()
    }

    #[test]
    fn host_names_intersect_as_the_specification_says() {
        assert_eq!(intersect(None, &[]), vec![None]);
        assert_eq!(intersect(Some("a.com"), &[]), vec![Some("a.com".into())]);
        assert_eq!(intersect(None, &s(&["x.com"])), vec![Some("x.com".into())]);
        assert_eq!(
            intersect(Some("*.a.com"), &s(&["x.a.com", "y.b.com", "z.y.a.com"])),
            vec![Some("x.a.com".into()), Some("z.y.a.com".into())]
        );
        assert_eq!(intersect(Some("x.a.com"), &s(&["*.a.com"])), vec![Some("x.a.com".into())]);
        assert_eq!(intersect(Some("*.a.com"), &s(&["*.b.a.com"])), vec![Some("*.b.a.com".into())]);
        assert!(
            intersect(Some("a.com"), &s(&["*.a.com", "b.com"])).is_empty(),
            "a wildcard never covers its own suffix"
        );
    }
}
