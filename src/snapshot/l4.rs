//! The L4 table: which node ports forward TCP to which Service endpoints. From Services of
//! type LoadBalancer of our class (`spec.loadBalancerClass: ringress.dev/lb`, or no class with
//! `--lb-default-class`), and from the ingress-nginx style `tcp-services` ConfigMap
//! (`"9000": "namespace/service:port[:PROXY[:PROXY]]"`). Pure, like the rest of the snapshot.

use std::net::SocketAddr;
use std::time::Duration;

use rustc_hash::FxHashMap;

use super::build::slice_endpoints;
use super::Inputs;
use crate::model::{ConfigMap, EndpointSlice, ObjectKey, Service, ServicePort};

/// `spec.loadBalancerClass` of the Services we serve.
pub const LB_CLASS: &str = "ringress.dev/lb";
pub const PROXY_PROTOCOL_ANNOTATION: &str = "ringress.dev/proxy-protocol";
pub const BALANCE_ANNOTATION: &str = "ringress.dev/load-balance";
pub const MAX_CONNECTIONS_ANNOTATION: &str = "ringress.dev/max-connections";
pub const IDLE_TIMEOUT_ANNOTATION: &str = "ringress.dev/idle-timeout";

/// The PROXY protocol header sent to a backend.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ProxyVersion {
    V1,
    V2,
}

impl ProxyVersion {
    /// The version [`PROXY_PROTOCOL_ANNOTATION`] asks for among `annotations`; Err: its value,
    /// which is neither `v1` nor `v2`.
    pub fn from_annotation(
        annotations: &std::collections::BTreeMap<String, String>,
    ) -> Result<Option<ProxyVersion>, String> {
        match annotations.get(PROXY_PROTOCOL_ANNOTATION).map(|v| v.trim()) {
            None => Ok(None),
            Some("v1") => Ok(Some(ProxyVersion::V1)),
            Some("v2") => Ok(Some(ProxyVersion::V2)),
            Some(v) => Err(v.to_string()),
        }
    }
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum L4Balance {
    #[default]
    RoundRobin,
    /// The endpoint with the fewest connections open from this worker.
    LeastConnections,
}

/// One forwarded port.
#[derive(Clone, Debug, PartialEq)]
pub struct L4Port {
    pub port: u16,
    /// `namespace/service:port`, as metrics and logs name it.
    pub name: String,
    pub service: ObjectKey,
    /// The port is the LoadBalancer Service's own (not a tcp-services entry naming it): the
    /// Service gets our address in its status.
    pub load_balancer: bool,
    pub endpoints: Vec<SocketAddr>,
    /// Sent to the backend before the client's bytes.
    pub send_proxy: Option<ProxyVersion>,
    /// A PROXY header is expected from the client (tcp-services `:PROXY`).
    pub accept_proxy: bool,
    pub balance: L4Balance,
    /// Connections at once for this Service (0: no limit), over all workers.
    pub max_connections: usize,
    pub idle_timeout: Duration,
    /// A TCPRoute's weighted backends, when it has more than one: each connection goes to one
    /// share, by weight. Empty: every connection to `endpoints`.
    pub shares: Vec<L4Share>,
    /// Connections split so far, over all workers.
    pub picked: Picked,
}

/// A count of connections shared by every worker; no part of what a port is (two tables
/// that differ only in it are equal).
#[derive(Clone, Debug, Default)]
pub struct Picked(std::sync::Arc<std::sync::atomic::AtomicU64>);

impl PartialEq for Picked {
    fn eq(&self, _: &Picked) -> bool {
        true
    }
}

/// One weighted backend of a forwarded port.
#[derive(Clone, Debug, PartialEq)]
pub struct L4Share {
    /// `namespace/service:port`; empty for a reference that does not resolve (its
    /// connections are refused).
    pub name: String,
    pub endpoints: Vec<SocketAddr>,
    pub weight: u32,
}

impl L4Port {
    /// The share of the next connection: over each run of the total weight, each share gets
    /// exactly its weight, interleaved. None: every weight is 0.
    pub fn share(&self) -> Option<&L4Share> {
        let total: u64 = self.shares.iter().map(|s| u64::from(s.weight)).sum();
        if total == 0 {
            return None;
        }
        let n = self.picked.0.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        super::gateway::weighted(n, total, self.shares.iter().map(|s| (s, s.weight)))
    }
}

/// What the L4 build needs from the options.
#[derive(Clone, Debug, PartialEq)]
pub struct L4Options {
    /// Serve LoadBalancer Services that name no class.
    pub default_class: bool,
    /// `--tcp-services-configmap`.
    pub tcp_services: Option<ObjectKey>,
    /// Ports ringress listens on itself (HTTP, HTTPS, admin): never given to a Service.
    pub reserved: Vec<u16>,
    /// `--accept-proxy-protocol`: every L4 port expects a PROXY header.
    pub accept_proxy: bool,
    pub idle_timeout: Duration,
    /// `--lb-address`: where the ports listen.
    pub address: std::net::IpAddr,
}

impl Default for L4Options {
    fn default() -> Self {
        L4Options {
            address: std::net::IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED),
            default_class: false,
            tcp_services: None,
            reserved: Vec::new(),
            accept_proxy: false,
            idle_timeout: Duration::from_secs(3600),
        }
    }
}

/// The forwarded ports, by port number.
#[derive(Clone, Debug, PartialEq)]
pub struct L4Table {
    pub ports: Vec<L4Port>,
    /// Gateway HTTP, HTTPS and TLS listeners' own ports (port, over TLS): HTTP listeners
    /// opened on the same address.
    pub http: Vec<(u16, bool)>,
    /// Gateway HTTPS listeners' host names, which the requests of a TLS connection keep to.
    pub https_names: super::gateway::HttpsNames,
    pub address: std::net::IpAddr,
}

impl Default for L4Table {
    fn default() -> Self {
        L4Table {
            ports: Vec::new(),
            http: Vec::new(),
            https_names: Default::default(),
            address: std::net::IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED),
        }
    }
}

impl L4Table {
    pub fn get(&self, port: u16) -> Option<&L4Port> {
        self.ports.binary_search_by_key(&port, |p| p.port).ok().map(|i| &self.ports[i])
    }
}

/// What the build made of the inputs.
#[derive(Debug, Default)]
pub struct Built {
    pub table: L4Table,
    /// Every problem, naming the Service (or ConfigMap key) and field.
    pub warnings: Vec<String>,
    /// LoadBalancer Services that lost a port: what to say in their condition.
    pub conflicts: std::collections::BTreeMap<ObjectKey, String>,
}

/// A port asked for, before conflicts are settled.
struct Claim<'a> {
    port: u16,
    service: &'a Service,
    /// A LoadBalancer Service's own port (not a tcp-services entry naming the Service).
    lb: bool,
    sp: &'a ServicePort,
    /// A TCPRoute's weighted backends (empty: `service` alone).
    shares: Vec<(Option<(&'a Service, &'a ServicePort)>, u32)>,
    send_proxy: Option<ProxyVersion>,
    accept_proxy: bool,
    /// Who asked, for conflict messages.
    source: String,
    /// Sort key: the oldest claimant wins.
    order: (u8, String, String),
}

/// Builds the table; every problem is a warning naming the Service (or ConfigMap key) and field.
pub fn build(inputs: &Inputs, opts: &L4Options) -> Built {
    let mut warnings = Vec::new();
    let mut conflicts: std::collections::BTreeMap<ObjectKey, Vec<String>> = Default::default();
    let services: FxHashMap<(&str, &str), &Service> =
        inputs.services.iter().map(|s| ((s.key.namespace.as_str(), s.key.name.as_str()), *s)).collect();
    let mut claims: Vec<Claim> = Vec::new();
    for s in &inputs.services {
        if !s.is_load_balancer() {
            continue;
        }
        let ours = match s.load_balancer_class.as_deref() {
            Some(c) => c == LB_CLASS,
            None => opts.default_class,
        };
        if !ours {
            continue;
        }
        let send_proxy = ProxyVersion::from_annotation(&s.annotations).unwrap_or_else(|v| {
            warnings.push(format!(
                "Service {}: annotation {PROXY_PROTOCOL_ANNOTATION}: {v:?} is not v1 or v2; no PROXY header is sent",
                s.key
            ));
            None
        });
        for (i, sp) in s.ports.iter().enumerate() {
            if !sp.protocol.eq_ignore_ascii_case("TCP") {
                warnings.push(format!(
                    "Service {}: spec.ports[{i}]: protocol {} is not forwarded (TCP only)",
                    s.key, sp.protocol
                ));
                continue;
            }
            claims.push(Claim {
                port: sp.port,
                service: s,
                lb: true,
                sp,
                shares: Vec::new(),
                send_proxy,
                accept_proxy: opts.accept_proxy,
                source: format!("Service {}", s.key),
                order: (0, s.created.clone().unwrap_or_default(), s.key.to_string()),
            });
        }
    }
    // TCPRoutes: after the LoadBalancer Services (which keep a port they hold), the oldest first.
    for r in &inputs.l4_routes {
        let found = services.get(&(r.service.namespace.as_str(), r.service.name.as_str()));
        match found.and_then(|s| s.ports.iter().find(|sp| sp.port == r.service_port).map(|sp| (*s, sp))) {
            Some((service, sp)) => claims.push(Claim {
                port: r.port,
                service,
                lb: false,
                sp,
                shares: r
                    .shares
                    .iter()
                    .map(|(b, w)| {
                        let found = b.as_ref().and_then(|(key, port)| {
                            let s = services.get(&(key.namespace.as_str(), key.name.as_str()))?;
                            s.ports.iter().find(|sp| sp.port == *port).map(|sp| (*s, sp))
                        });
                        (found, *w)
                    })
                    .collect(),
                send_proxy: None,
                accept_proxy: opts.accept_proxy,
                source: r.source.clone(),
                order: (1, r.created.clone().unwrap_or_default(), r.source.clone()),
            }),
            None => warnings.push(format!(
                "{}: Service {} has no port {}; port {} not served",
                r.source, r.service, r.service_port, r.port
            )),
        }
    }
    if let Some(key) = &opts.tcp_services {
        if let Some(cm) = inputs.config_maps.iter().find(|c| &c.key == key) {
            tcp_services(cm, &services, opts, &mut claims, &mut warnings);
        }
    }
    claims.sort_by(|a, b| (a.port, &a.order).cmp(&(b.port, &b.order)));

    let mut slices: FxHashMap<(&str, &str), Vec<&EndpointSlice>> = FxHashMap::default();
    for c in &claims {
        let shared = c.shares.iter().filter_map(|(b, _)| b.map(|(s, _)| s));
        for s in std::iter::once(c.service).chain(shared) {
            slices.entry((s.key.namespace.as_str(), s.key.name.as_str())).or_default();
        }
    }
    for sl in &inputs.endpoint_slices {
        if let Some(v) = slices.get_mut(&(sl.key.namespace.as_str(), sl.service.as_str())) {
            v.push(sl);
        }
    }
    let mut table = L4Table { address: opts.address, ..L4Table::default() };
    let mut i = 0;
    while i < claims.len() {
        let c = &claims[i];
        let mut j = i + 1;
        let reserved = opts.reserved.contains(&c.port);
        while j < claims.len() && claims[j].port == c.port {
            let loser = &claims[j];
            let held =
                if reserved { "ringress's own port (HTTP, HTTPS or admin)".to_string() } else { c.source.clone() };
            warnings.push(format!("{}: port {} is already claimed by {held}; not served", loser.source, c.port));
            if loser.lb {
                conflicts
                    .entry(loser.service.key.clone())
                    .or_default()
                    .push(format!("port {} is already claimed by {held}", c.port));
            }
            j += 1;
        }
        i = j;
        if reserved {
            warnings
                .push(format!("{}: port {} is ringress's own (HTTP, HTTPS or admin); not served", c.source, c.port));
            if c.lb {
                conflicts
                    .entry(c.service.key.clone())
                    .or_default()
                    .push(format!("port {} is ringress's own (HTTP, HTTPS or admin)", c.port));
            }
            continue;
        }
        let s = c.service;
        let endpoints_of = |s: &Service, sp: &ServicePort| {
            slice_endpoints(
                sp,
                slices.get(&(s.key.namespace.as_str(), s.key.name.as_str())).map_or(&[][..], Vec::as_slice),
            )
        };
        let endpoints = endpoints_of(s, c.sp);
        let shares = c
            .shares
            .iter()
            .map(|(b, weight)| match b {
                Some((s, sp)) => {
                    L4Share { name: format!("{}:{}", s.key, sp.port), endpoints: endpoints_of(s, sp), weight: *weight }
                }
                None => L4Share { name: String::new(), endpoints: Vec::new(), weight: *weight },
            })
            .collect();
        if endpoints.is_empty() {
            warnings.push(format!("{}: port {} has no ready endpoints (connections are refused)", c.source, c.port));
        }
        let balance = match s.annotations.get(BALANCE_ANNOTATION).map(|v| v.trim()) {
            None | Some("round_robin") => L4Balance::RoundRobin,
            Some("least_conn") => L4Balance::LeastConnections,
            Some(v) => {
                warnings.push(format!(
                    "Service {}: annotation {BALANCE_ANNOTATION}: {v:?} is not round_robin or least_conn",
                    s.key
                ));
                L4Balance::RoundRobin
            }
        };
        let max_connections = match s.annotations.get(MAX_CONNECTIONS_ANNOTATION) {
            None => 0,
            Some(v) => v.trim().parse().unwrap_or_else(|_| {
                warnings.push(format!(
                    "Service {}: annotation {MAX_CONNECTIONS_ANNOTATION}: {v:?} is not a whole number",
                    s.key
                ));
                0
            }),
        };
        let idle_timeout = match s.annotations.get(IDLE_TIMEOUT_ANNOTATION) {
            None => opts.idle_timeout,
            Some(v) => match v.trim().parse::<u64>() {
                Ok(n) if n > 0 => Duration::from_secs(n),
                _ => {
                    warnings.push(format!(
                        "Service {}: annotation {IDLE_TIMEOUT_ANNOTATION}: {v:?} is not a number of seconds",
                        s.key
                    ));
                    opts.idle_timeout
                }
            },
        };
        table.ports.push(L4Port {
            port: c.port,
            name: format!("{}:{}", s.key, c.sp.port),
            service: s.key.clone(),
            load_balancer: c.lb,
            endpoints,
            send_proxy: c.send_proxy,
            accept_proxy: c.accept_proxy,
            balance,
            max_connections,
            idle_timeout,
            shares,
            picked: Picked::default(),
        });
    }
    // Gateway listeners' ports: ringress's own ports serve them already (when the protocol
    // agrees); a forwarded port keeps its Service.
    for &(port, tls) in &inputs.listener_ports {
        if let Some(p) = table.get(port) {
            let kind = if tls { "HTTPS/TLS" } else { "HTTP" };
            warnings.push(format!("Gateway {kind} listener port {port} is forwarded to {}; not served", p.name));
        } else if !opts.reserved.contains(&port) {
            table.http.push((port, tls));
        }
    }
    let mut names = inputs.https_names.clone();
    names.sort_unstable();
    names.dedup();
    table.https_names = super::gateway::HttpsNames(names);
    let conflicts = conflicts.into_iter().map(|(k, v)| (k, format!("{}; not served", v.join("; ")))).collect();
    Built { table, warnings, conflicts }
}

/// `"9000": "namespace/service:port[:PROXY[:PROXY]]"`: the first PROXY expects a header from
/// the client, the second sends one (v1) to the backend, as ingress-nginx reads them.
fn tcp_services<'a>(
    cm: &ConfigMap,
    services: &FxHashMap<(&str, &str), &'a Service>,
    opts: &L4Options,
    claims: &mut Vec<Claim<'a>>,
    warnings: &mut Vec<String>,
) {
    for (key, value) in &cm.data {
        let source = format!("ConfigMap {} key {key:?}", cm.key);
        let Some(port) = key.trim().parse::<u16>().ok().filter(|p| *p != 0) else {
            warnings.push(format!("{source}: not a port number; ignored"));
            continue;
        };
        let mut parts = value.trim().split(':');
        let target = parts.next().unwrap_or("");
        let svc_port = parts.next();
        let flags: Vec<&str> = parts.collect();
        let Some((ns, name)) = target.split_once('/') else {
            warnings.push(format!("{source}: {value:?} is not namespace/service:port; ignored"));
            continue;
        };
        let Some(svc) = services.get(&(ns, name)) else {
            warnings.push(format!("{source}: Service {ns}/{name} not found; port {port} not served"));
            continue;
        };
        let sp = svc_port.and_then(|p| {
            svc.ports.iter().find(|sp| match p.parse::<u16>() {
                Ok(n) => sp.port == n,
                Err(_) => sp.name.as_deref() == Some(p),
            })
        });
        let Some(sp) = sp else {
            warnings.push(format!(
                "{source}: Service {ns}/{name} has no port {}; not served",
                svc_port.unwrap_or("(none)")
            ));
            continue;
        };
        if flags.iter().any(|f| *f != "PROXY") || flags.len() > 2 {
            warnings.push(format!("{source}: {value:?}: only :PROXY and :PROXY:PROXY may follow the port; ignored"));
            continue;
        }
        claims.push(Claim {
            port,
            service: svc,
            lb: false,
            sp,
            shares: Vec::new(),
            send_proxy: (flags.len() == 2).then_some(ProxyVersion::V1),
            accept_proxy: opts.accept_proxy || !flags.is_empty(),
            source,
            // After every Service: a LoadBalancer Service claiming the port keeps it.
            order: (1, String::new(), key.clone()),
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::parse_documents;

    fn table(yaml: &str, opts: &L4Options) -> (L4Table, Vec<String>) {
        let b = built(yaml, opts);
        (b.table, b.warnings)
    }

    fn built(yaml: &str, opts: &L4Options) -> Built {
        let objects = parse_documents(yaml).unwrap();
        let inputs = Inputs::of(&objects);
        build(&inputs, opts)
    }

    fn svc(name: &str, created: &str, class: Option<&str>, port: u16, extra: &str) -> String {
        let class = class.map(|c| format!("  loadBalancerClass: {c}\n")).unwrap_or_default();
        format!(
            "---\napiVersion: v1\nkind: Service\nmetadata:\n  name: {name}\n  namespace: db\n  creationTimestamp: \"{created}\"\n{extra}spec:\n  type: LoadBalancer\n{class}  ports: [{{name: tcp, port: {port}, targetPort: tcp}}]\n---\napiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\nmetadata: {{name: {name}-1, namespace: db, labels: {{kubernetes.io/service-name: {name}}}}}\naddressType: IPv4\nendpoints: [{{addresses: [10.0.0.1]}}, {{addresses: [10.0.0.2], conditions: {{ready: false}}}}]\nports: [{{name: tcp, port: 6379}}]\n"
        )
    }

    #[test]
    fn services_of_our_class_are_forwarded_and_the_oldest_keeps_a_port() {
        let yaml = svc("redis", "2026-01-01T00:00:00Z", Some(LB_CLASS), 6379, "")
            + &svc("newer", "2026-02-01T00:00:00Z", Some(LB_CLASS), 6379, "")
            + &svc("other", "2026-01-01T00:00:00Z", Some("example.com/lb"), 7000, "")
            + &svc("noclass", "2026-01-01T00:00:00Z", None, 7001, "")
            + &svc("mine", "2026-01-01T00:00:00Z", Some(LB_CLASS), 80, "");
        let opts = L4Options { reserved: vec![80, 443], ..Default::default() };
        let (t, w) = table(&yaml, &opts);
        assert_eq!(t.ports.len(), 1, "{t:?}");
        let p = &t.ports[0];
        assert_eq!((p.port, p.name.as_str()), (6379, "db/redis:6379"));
        assert_eq!(p.endpoints, vec!["10.0.0.1:6379".parse().unwrap()], "ready endpoints, target port by name");
        assert!(
            w.contains(&"Service db/newer: port 6379 is already claimed by Service db/redis; not served".into()),
            "{w:?}"
        );
        assert!(w.iter().any(|w| w.starts_with("Service db/mine: port 80 is ringress's own")), "{w:?}");
        // The losers' conditions: the Services that lost, and why.
        let c = built(&yaml, &opts).conflicts;
        let key = |n: &str| ObjectKey { namespace: "db".into(), name: n.into() };
        assert_eq!(c.len(), 2, "{c:?}");
        assert_eq!(c[&key("newer")], "port 6379 is already claimed by Service db/redis; not served");
        assert_eq!(c[&key("mine")], "port 80 is ringress's own (HTTP, HTTPS or admin); not served");
        // Without a class: only with --lb-default-class.
        let (t, _) = table(&yaml, &L4Options { default_class: true, reserved: vec![80], ..Default::default() });
        assert_eq!(t.ports.iter().map(|p| p.port).collect::<Vec<_>>(), vec![6379, 7001]);
    }

    #[test]
    fn annotations_and_tcp_services() {
        let ann = "  annotations:\n    ringress.dev/proxy-protocol: v2\n    ringress.dev/load-balance: least_conn\n    ringress.dev/max-connections: \"100\"\n";
        let yaml = svc("redis", "2026-01-01T00:00:00Z", Some(LB_CLASS), 6379, ann)
            + &svc("plain", "2026-01-01T00:00:00Z", Some("x"), 5432, "")
            + "---\napiVersion: v1\nkind: ConfigMap\nmetadata: {name: tcp-services, namespace: ringress}\ndata:\n  \"9000\": \"db/plain:5432:PROXY:PROXY\"\n  \"6379\": \"db/plain:5432\"\n  \"9001\": \"db/absent:1\"\n  \"x\": \"db/plain:5432\"\n";
        let key = ObjectKey { namespace: "ringress".into(), name: "tcp-services".into() };
        let (t, w) = table(&yaml, &L4Options { tcp_services: Some(key), ..Default::default() });
        let r = t.get(6379).unwrap();
        assert_eq!(
            (r.send_proxy, r.balance, r.max_connections),
            (Some(ProxyVersion::V2), L4Balance::LeastConnections, 100)
        );
        let p = t.get(9000).unwrap();
        assert_eq!((p.name.as_str(), p.send_proxy, p.accept_proxy), ("db/plain:5432", Some(ProxyVersion::V1), true));
        for want in [
            "ConfigMap ringress/tcp-services key \"6379\": port 6379 is already claimed by Service db/redis; not served",
            "ConfigMap ringress/tcp-services key \"9001\": Service db/absent not found; port 9001 not served",
            "ConfigMap ringress/tcp-services key \"x\": not a port number; ignored",
        ] {
            assert!(w.iter().any(|x| x == want), "missing {want:?} in {w:?}");
        }
    }
}
