//! The Kubernetes objects ringress reads, normalised from their wire shapes; pure data, used by
//! the control thread only.
//!
//! Parsing accepts the current `networking.k8s.io/v1` Ingress and the legacy
//! `extensions/v1beta1` / `networking.k8s.io/v1beta1` shape (`serviceName`/`servicePort`), and
//! reports every problem with the object and the field it was found in.

pub mod gateway;
mod parse;
mod wire;

#[cfg(test)]
mod tests;

use std::collections::BTreeMap;
use std::net::IpAddr;

pub use parse::{parse_documents, parse_object, Location, ParseError};

/// Identity of a namespaced object: `namespace/name`.
#[derive(Clone, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ObjectKey {
    pub namespace: String,
    pub name: String,
}

impl ObjectKey {
    /// An object an annotation names: `name` (in `namespace`) or `namespace/name`.
    pub fn named_in(namespace: &str, v: &str) -> Option<ObjectKey> {
        match v.split_once('/') {
            None if !v.is_empty() => Some(ObjectKey { namespace: namespace.to_string(), name: v.to_string() }),
            Some((ns, name)) if !ns.is_empty() && !name.is_empty() && !name.contains('/') => {
                Some(ObjectKey { namespace: ns.to_string(), name: name.to_string() })
            }
            _ => None,
        }
    }
}

impl std::fmt::Display for ObjectKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.namespace, self.name)
    }
}

/// A Service port as an Ingress names it: by number or by name.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum PortRef {
    Number(u16),
    Name(String),
}

impl std::fmt::Display for PortRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PortRef::Number(n) => write!(f, "{n}"),
            PortRef::Name(s) => f.write_str(s),
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServiceBackend {
    pub service: String,
    pub port: PortRef,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum PathType {
    Exact,
    Prefix,
    ImplementationSpecific,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IngressPath {
    pub path: String,
    pub path_type: PathType,
    pub backend: ServiceBackend,
    /// A Gateway API route's match and rule (what an Ingress path cannot say); None for an
    /// Ingress's own paths.
    pub gateway: Option<std::sync::Arc<gateway::GatewayPath>>,
}

/// Where an [`Ingress`] came from: an Ingress object, or a Gateway API object the
/// [`gateway`] lowering turned into Ingress terms.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Origin {
    #[default]
    Ingress,
    /// A Gateway's HTTPS listener: its certificates (no rules).
    Gateway,
    Route(gateway::RouteKind),
}

impl Origin {
    pub fn name(self) -> &'static str {
        match self {
            Origin::Ingress => "Ingress",
            Origin::Gateway => "Gateway",
            Origin::Route(k) => k.name(),
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IngressRule {
    /// Lower-cased; `None` matches every host. May start with `*.`.
    pub host: Option<String>,
    pub paths: Vec<IngressPath>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IngressTls {
    pub hosts: Vec<String>,
    pub secret_name: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Ingress {
    pub key: ObjectKey,
    /// `metadata.uid`, which an Event about the Ingress names.
    pub uid: Option<String>,
    /// RFC 3339 as written by the API server; compared as text, which orders correctly.
    pub creation_timestamp: Option<String>,
    pub annotations: BTreeMap<String, String>,
    pub class_name: Option<String>,
    pub default_backend: Option<ServiceBackend>,
    pub rules: Vec<IngressRule>,
    pub tls: Vec<IngressTls>,
    pub origin: Origin,
}

impl Ingress {
    /// The class this Ingress asks for. The legacy annotation wins over the field when both are
    /// set, as ingress-nginx does.
    pub fn requested_class(&self) -> Option<&str> {
        self.annotations.get(LEGACY_CLASS_ANNOTATION).map(String::as_str).or(self.class_name.as_deref())
    }
}

pub const LEGACY_CLASS_ANNOTATION: &str = "kubernetes.io/ingress.class";
pub const DEFAULT_CLASS_ANNOTATION: &str = "ingressclass.kubernetes.io/is-default-class";
pub const SERVICE_NAME_LABEL: &str = "kubernetes.io/service-name";
/// The `status.conditions` type set on a Service that lost a port (to an older Service, or to
/// a port ringress uses itself); removed when every port is served again.
pub const PORT_CONFLICT_CONDITION: &str = "ringress.dev/PortConflict";

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IngressClass {
    pub name: String,
    pub controller: Option<String>,
    pub is_default: bool,
}

/// A Service's target port: a number, or the name of a container port.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TargetPort {
    Number(u16),
    Name(String),
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServicePort {
    pub name: Option<String>,
    pub port: u16,
    pub target_port: TargetPort,
    pub protocol: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct Service {
    pub key: ObjectKey,
    pub ports: Vec<ServicePort>,
    /// `spec.type` (`ClusterIP` when absent).
    pub type_: Option<String>,
    pub load_balancer_class: Option<String>,
    /// `spec.externalName` of a `type: ExternalName` Service (as written: a DNS name or an
    /// address; empty when missing). None for every other type.
    pub external_name: Option<String>,
    /// `spec.clusterIP`, when it is an address (not `None`: headless).
    pub cluster_ip: Option<std::net::IpAddr>,
    /// `ringress.dev/*` annotations (the L4 load balancer's per-Service settings).
    pub annotations: std::collections::BTreeMap<String, String>,
    /// `metadata.creationTimestamp` (RFC 3339, so it sorts): the first claimant of a port wins.
    pub created: Option<String>,
    /// `status.loadBalancer.ingress` as it is (IPs or host names), for the status writer.
    pub status_addresses: Vec<String>,
    /// The message of our port-conflict condition in `status.conditions`, if there is one.
    pub port_conflict: Option<String>,
    /// `metadata.uid`, which an Event about the Service names.
    pub uid: Option<String>,
}

impl Service {
    pub fn is_load_balancer(&self) -> bool {
        self.type_.as_deref() == Some("LoadBalancer")
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EndpointPort {
    pub name: Option<String>,
    pub port: u16,
}

/// One EndpointSlice (or one legacy `v1` Endpoints object turned into the same shape).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EndpointSlice {
    pub key: ObjectKey,
    /// From the `kubernetes.io/service-name` label.
    pub service: String,
    /// Only endpoints whose `ready` condition is not false.
    pub ready: Vec<IpAddr>,
    pub ports: Vec<EndpointPort>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Secret {
    pub key: ObjectKey,
    pub type_: Option<String>,
    /// Decoded values (`data` base64-decoded, `stringData` as is).
    pub data: BTreeMap<String, Vec<u8>>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfigMap {
    pub key: ObjectKey,
    pub data: BTreeMap<String, String>,
}

/// A Namespace's labels (what a Gateway's `allowedRoutes.namespaces.selector` matches).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Namespace {
    pub name: String,
    pub labels: BTreeMap<String, String>,
}

/// Everything the snapshot builder reads. Providers fill it; the builder never sees YAML.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Objects {
    pub ingresses: Vec<Ingress>,
    pub ingress_classes: Vec<IngressClass>,
    pub services: Vec<Service>,
    pub endpoint_slices: Vec<EndpointSlice>,
    pub secrets: Vec<Secret>,
    pub config_maps: Vec<ConfigMap>,
    pub gateway_classes: Vec<gateway::GatewayClass>,
    pub gateways: Vec<gateway::Gateway>,
    /// HTTPRoutes, GRPCRoutes, TLSRoutes and TCPRoutes.
    pub http_routes: Vec<gateway::HttpRoute>,
    pub reference_grants: Vec<gateway::ReferenceGrant>,
    /// TCPRoutes lowered into forwarded ports ([`gateway::L4Route`]).
    pub l4_routes: Vec<gateway::L4Route>,
    /// The ports of Gateway HTTP, HTTPS and TLS listeners to open (port, over TLS).
    pub listener_ports: Vec<(u16, bool)>,
    /// Gateway HTTPS listeners' ports and host names (None: a listener without one), which
    /// the Gateway lowering adds.
    pub https_names: Vec<(u16, Option<String>)>,
    pub namespaces: Vec<Namespace>,
}

/// Keeps the last of the items of `v` with the same key, in place; a warning per key defined
/// more than once.
fn keep_last<T>(v: &mut Vec<T>, kind: &str, key: impl Fn(&T) -> String, warnings: &mut Vec<String>) {
    let mut last: std::collections::HashMap<String, usize> = std::collections::HashMap::new();
    for (i, item) in v.iter().enumerate() {
        if last.insert(key(item), i).is_some() {
            let k = key(item);
            let w = format!("{kind} {k} is defined more than once in the manifests; the last definition is used");
            if !warnings.contains(&w) {
                warnings.push(w);
            }
        }
    }
    if last.len() == v.len() {
        return;
    }
    let mut i = 0;
    v.retain(|item| {
        i += 1;
        last.get(&key(item)) == Some(&(i - 1))
    });
}

impl Objects {
    /// Objects defined more than once (by kind and name) keep their last definition, as
    /// `kubectl apply` of the same files in order would leave them. Returns a warning for each.
    pub fn keep_last_definitions(&mut self) -> Vec<String> {
        let mut w = Vec::new();
        keep_last(&mut self.ingresses, "Ingress", |o| o.key.to_string(), &mut w);
        keep_last(&mut self.ingress_classes, "IngressClass", |o| o.name.clone(), &mut w);
        keep_last(&mut self.services, "Service", |o| o.key.to_string(), &mut w);
        keep_last(&mut self.endpoint_slices, "EndpointSlice", |o| o.key.to_string(), &mut w);
        keep_last(&mut self.secrets, "Secret", |o| o.key.to_string(), &mut w);
        keep_last(&mut self.config_maps, "ConfigMap", |o| o.key.to_string(), &mut w);
        keep_last(&mut self.gateway_classes, "GatewayClass", |o| o.metadata.name.clone(), &mut w);
        keep_last(&mut self.gateways, "Gateway", |o| o.metadata.key().to_string(), &mut w);
        keep_last(&mut self.http_routes, "Route", |o| format!("{} {}", o.kind.name(), o.key()), &mut w);
        keep_last(&mut self.reference_grants, "ReferenceGrant", |o| o.metadata.key().to_string(), &mut w);
        keep_last(&mut self.namespaces, "Namespace", |o| o.name.clone(), &mut w);
        w
    }

    pub fn extend(&mut self, other: Objects) {
        self.ingresses.extend(other.ingresses);
        self.ingress_classes.extend(other.ingress_classes);
        self.services.extend(other.services);
        self.endpoint_slices.extend(other.endpoint_slices);
        self.secrets.extend(other.secrets);
        self.config_maps.extend(other.config_maps);
        self.gateway_classes.extend(other.gateway_classes);
        self.gateways.extend(other.gateways);
        self.http_routes.extend(other.http_routes);
        self.reference_grants.extend(other.reference_grants);
        self.l4_routes.extend(other.l4_routes);
        self.listener_ports.extend(other.listener_ports);
        self.https_names.extend(other.https_names);
        self.namespaces.extend(other.namespaces);
    }

    pub fn len(&self) -> usize {
        self.ingresses.len()
            + self.ingress_classes.len()
            + self.services.len()
            + self.endpoint_slices.len()
            + self.secrets.len()
            + self.config_maps.len()
            + self.gateway_classes.len()
            + self.gateways.len()
            + self.http_routes.len()
            + self.reference_grants.len()
            + self.namespaces.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}
