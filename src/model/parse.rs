//! YAML documents -> [`Objects`]: multi-document streams, `kind: List`, legacy Ingress shapes.
//! Every error names the document (and list item), the object and the field.

use std::fmt;
use std::net::IpAddr;

use serde::de::DeserializeOwned;
use serde_yaml_ng::Value;

use super::wire::{self, IntOrString};
use super::*;

/// Where an object came from: `document 2` or `document 2, item 5` of a file, or the API
/// server (document 0).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Location {
    pub document: usize,
    pub item: Option<usize>,
}

impl Location {
    pub const API_SERVER: Location = Location { document: 0, item: None };
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if *self == Location::API_SERVER {
            return f.write_str("from the API server");
        }
        write!(f, "document {}", self.document)?;
        if let Some(i) = self.item {
            write!(f, ", item {i}")?;
        }
        Ok(())
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ParseError {
    #[error("document {document}: invalid YAML: {error}")]
    Yaml { document: usize, error: serde_yaml_ng::Error },
    #[error("{at}: {kind} {object}: field `{field}`: {message}")]
    Field { at: Location, kind: String, object: String, field: String, message: String },
}

/// Parses a multi-document YAML (or JSON) text into objects. Kinds ringress does not read are
/// skipped with a debug log; the first invalid object fails the whole text.
pub fn parse_documents(text: &str) -> Result<Objects, ParseError> {
    let mut out = Objects::default();
    for (i, doc) in serde_yaml_ng::Deserializer::from_str(text).enumerate() {
        let document = i + 1;
        let value = Value::deserialize(doc).map_err(|error| ParseError::Yaml { document, error })?;
        if value.is_null() {
            continue;
        }
        let at = Location { document, item: None };
        if kind_of(&value) == Some("List") {
            let items = match value.get("items") {
                Some(Value::Sequence(items)) => items.clone(),
                None | Some(Value::Null) => Vec::new(),
                Some(_) => return Err(field_error(at, "List", "", "items", "must be a list")),
            };
            for (j, item) in items.into_iter().enumerate() {
                let at = Location { document, item: Some(j) };
                read_object(item, at, &mut out)?;
            }
        } else {
            read_object(value, at, &mut out)?;
        }
    }
    Ok(out)
}

/// One object as the API server sent it (any serializable shape, e.g. a k8s-openapi type),
/// read with the same rules and error messages as a manifest file.
pub fn parse_object<T: serde::Serialize>(object: &T) -> Result<Objects, ParseError> {
    let value = serde_yaml_ng::to_value(object).map_err(|error| ParseError::Yaml { document: 0, error })?;
    let mut out = Objects::default();
    read_object(value, Location::API_SERVER, &mut out)?;
    Ok(out)
}

use serde::Deserialize;

fn kind_of(v: &Value) -> Option<&str> {
    v.get("kind").and_then(Value::as_str)
}

fn field_error(at: Location, kind: &str, object: &str, field: &str, message: impl Into<String>) -> ParseError {
    ParseError::Field {
        at,
        kind: kind.to_string(),
        object: object.to_string(),
        field: field.to_string(),
        message: message.into(),
    }
}

/// `namespace/name` from raw metadata, for error messages before the object is validated.
fn display_name(v: &Value) -> String {
    let meta = v.get("metadata");
    let name = meta.and_then(|m| m.get("name")).and_then(Value::as_str).unwrap_or("<unnamed>");
    let ns = meta.and_then(|m| m.get("namespace")).and_then(Value::as_str).unwrap_or("default");
    format!("{ns}/{name}")
}

fn read_object(value: Value, at: Location, out: &mut Objects) -> Result<(), ParseError> {
    let object = display_name(&value);
    let Some(kind) = kind_of(&value).map(str::to_owned) else {
        return Err(field_error(at, "object", &object, "kind", "missing: not a Kubernetes object"));
    };
    let api_version = value.get("apiVersion").and_then(Value::as_str).unwrap_or("").to_owned();
    let cx = Cx { at, kind: &kind, object: &object };
    match (kind.as_str(), api_version.as_str()) {
        ("Ingress", "networking.k8s.io/v1") => out.ingresses.push(ingress(cx.de(value)?, cx, false)?),
        ("Ingress", "networking.k8s.io/v1beta1" | "extensions/v1beta1") => {
            out.ingresses.push(ingress(cx.de(value)?, cx, true)?)
        }
        ("IngressClass", _) => out.ingress_classes.push(ingress_class(cx.de(value)?, cx)?),
        ("Service", "v1") => out.services.push(service(cx.de(value)?, cx)?),
        ("EndpointSlice", _) => {
            if let Some(slice) = endpoint_slice(cx.de(value)?, cx)? {
                out.endpoint_slices.push(slice)
            }
        }
        ("Endpoints", "v1") => out.endpoint_slices.extend(endpoints(cx.de(value)?, cx)?),
        ("Secret", "v1") => out.secrets.push(secret(cx.de(value)?, cx)?),
        ("ConfigMap", "v1") => out.config_maps.push(config_map(cx.de(value)?, cx)?),
        ("Namespace", "v1") => {
            let m: super::gateway::Meta = cx.de(value.get("metadata").cloned().unwrap_or(Value::Null))?;
            if m.name.is_empty() {
                return Err(cx.err("metadata.name", "missing"));
            }
            out.namespaces.push(Namespace { name: m.name, labels: m.labels })
        }
        (k, v) if v.starts_with("gateway.networking.k8s.io/") => gateway(k, v, value, cx, out)?,
        ("Ingress" | "Service", v) => return Err(cx.err("apiVersion", format!("unsupported version {v:?} for {kind}"))),
        _ => {
            tracing::debug!(%at, %kind, %object, "ignoring object of a kind ringress does not read")
        }
    }
    Ok(())
}

/// A Gateway API object (`gateway.networking.k8s.io`, v1 or v1beta1; ReferenceGrant also
/// v1beta1). Kinds ringress does not serve are skipped like other unknown kinds.
fn gateway(kind: &str, api_version: &str, value: Value, cx: Cx, out: &mut Objects) -> Result<(), ParseError> {
    use super::gateway as gw;
    let version = api_version.rsplit('/').next().unwrap_or("");
    if !["v1", "v1beta1"].contains(&version) {
        if ["GatewayClass", "Gateway", "HTTPRoute", "GRPCRoute", "TLSRoute", "TCPRoute", "ReferenceGrant"]
            .contains(&kind)
        {
            return Err(cx.err("apiVersion", format!("unsupported version {api_version:?} for {kind} (v1 is read)")));
        }
        return Ok(());
    }
    let field = |(f, m): gw::FieldError| cx.err(&f, m);
    match kind {
        "GatewayClass" => out.gateway_classes.push(cx.de(value)?),
        "Gateway" => {
            let mut g: gw::Gateway = cx.de(value)?;
            gw::check_gateway(&mut g).map_err(field)?;
            out.gateways.push(g)
        }
        "HTTPRoute" | "GRPCRoute" | "TLSRoute" | "TCPRoute" => {
            let w: gw::RouteWire = cx.de(value)?;
            let kind = gw::RouteKind::of(kind).expect("a route kind");
            out.http_routes.push(gw::route(w, kind).map_err(field)?)
        }
        "ReferenceGrant" => out.reference_grants.push(cx.de(value)?),
        _ => {
            tracing::debug!(at = %cx.at, %kind, object = %cx.object, "ignoring a Gateway API kind ringress does not read")
        }
    }
    Ok(())
}

/// What an error needs to say where it is.
#[derive(Clone, Copy)]
struct Cx<'a> {
    at: Location,
    kind: &'a str,
    object: &'a str,
}

impl Cx<'_> {
    fn err(&self, field: &str, message: impl Into<String>) -> ParseError {
        field_error(self.at, self.kind, self.object, field, message)
    }

    fn de<T: DeserializeOwned>(&self, value: Value) -> Result<T, ParseError> {
        serde_path_to_error::deserialize(value).map_err(|e| {
            let path = e.path().to_string();
            self.err(&path, e.into_inner().to_string())
        })
    }

    fn key(&self, meta: &wire::Meta) -> Result<ObjectKey, ParseError> {
        let name = meta.name.clone().filter(|n| !n.is_empty());
        let name = name.ok_or_else(|| self.err("metadata.name", "missing"))?;
        let namespace = meta.namespace.clone().unwrap_or_else(|| "default".to_string());
        Ok(ObjectKey { namespace, name })
    }

    fn port(&self, field: &str, n: i64) -> Result<u16, ParseError> {
        match u16::try_from(n) {
            Ok(p) if p != 0 => Ok(p),
            _ => Err(self.err(field, format!("port {n} is outside 1-65535"))),
        }
    }
}

fn ingress(w: wire::Ingress, cx: Cx, legacy: bool) -> Result<Ingress, ParseError> {
    let key = cx.key(&w.metadata)?;
    let default_backend = match (w.spec.default_backend, w.spec.backend) {
        (Some(b), _) => Some(backend(b, cx, "spec.defaultBackend")?),
        (None, Some(b)) => Some(backend(b, cx, "spec.backend")?),
        (None, None) => None,
    };
    let mut rules = Vec::with_capacity(w.spec.rules.len());
    for (i, r) in w.spec.rules.into_iter().enumerate() {
        let host = match r.host.as_deref() {
            None | Some("") => None,
            Some(h) => Some(validate_host(h).map_err(|m| cx.err(&format!("spec.rules[{i}].host"), m))?),
        };
        let mut paths = Vec::new();
        for (j, p) in r.http.unwrap_or_default().paths.into_iter().enumerate() {
            let field = format!("spec.rules[{i}].http.paths[{j}]");
            paths.push(ingress_path(p, cx, &field, legacy)?);
        }
        rules.push(IngressRule { host, paths });
    }
    let tls = w
        .spec
        .tls
        .into_iter()
        .map(|t| IngressTls {
            hosts: t.hosts.into_iter().map(|h| h.to_ascii_lowercase()).collect(),
            secret_name: t.secret_name,
        })
        .collect();
    Ok(Ingress {
        key,
        uid: w.metadata.uid,
        creation_timestamp: w.metadata.creation_timestamp,
        annotations: w.metadata.annotations,
        class_name: w.spec.ingress_class_name,
        default_backend,
        rules,
        tls,
        origin: Origin::Ingress,
    })
}

fn ingress_path(p: wire::Path, cx: Cx, field: &str, legacy: bool) -> Result<IngressPath, ParseError> {
    let path_type = match p.path_type.as_deref() {
        Some("Exact") => PathType::Exact,
        Some("Prefix") => PathType::Prefix,
        Some("ImplementationSpecific") => PathType::ImplementationSpecific,
        None if legacy => PathType::ImplementationSpecific,
        None => return Err(cx.err(&format!("{field}.pathType"), "missing (Exact, Prefix or ImplementationSpecific)")),
        Some(other) => {
            return Err(cx.err(
                &format!("{field}.pathType"),
                format!("unknown path type {other:?} (Exact, Prefix or ImplementationSpecific)"),
            ))
        }
    };
    let path = match p.path {
        Some(s) if !s.is_empty() => s,
        _ if path_type == PathType::ImplementationSpecific => "/".to_string(),
        _ => return Err(cx.err(&format!("{field}.path"), "missing (required for Exact and Prefix)")),
    };
    if !path.starts_with('/') {
        return Err(cx.err(&format!("{field}.path"), format!("{path:?} must start with '/'")));
    }
    if path.bytes().any(|b| b.is_ascii_control() || b == b' ' || b == b'?' || b == b'#') {
        return Err(cx.err(&format!("{field}.path"), format!("{path:?} contains a character not allowed in a path")));
    }
    let Some(b) = p.backend else {
        return Err(cx.err(&format!("{field}.backend"), "missing"));
    };
    let backend = backend(b, cx, &format!("{field}.backend"))?;
    Ok(IngressPath { path, path_type, backend, gateway: None })
}

fn backend(b: wire::Backend, cx: Cx, field: &str) -> Result<ServiceBackend, ParseError> {
    if b.resource.is_some() {
        return Err(cx.err(&format!("{field}.resource"), "resource backends are not supported; use a Service"));
    }
    if let Some(svc) = b.service {
        let name = svc.name.filter(|n| !n.is_empty());
        let name = name.ok_or_else(|| cx.err(&format!("{field}.service.name"), "missing"))?;
        let port = svc.port.unwrap_or_default();
        let port = match (port.number, port.name) {
            (Some(n), None) => PortRef::Number(cx.port(&format!("{field}.service.port.number"), n)?),
            (None, Some(s)) if !s.is_empty() => PortRef::Name(s),
            (Some(_), Some(_)) => {
                return Err(cx.err(&format!("{field}.service.port"), "set either number or name, not both"))
            }
            _ => return Err(cx.err(&format!("{field}.service.port"), "missing number or name")),
        };
        return Ok(ServiceBackend { service: name, port });
    }
    let name = b.service_name.filter(|n| !n.is_empty());
    let name = name.ok_or_else(|| cx.err(&format!("{field}.service"), "missing"))?;
    let port = match b.service_port {
        Some(IntOrString::Int(n)) => PortRef::Number(cx.port(&format!("{field}.servicePort"), n)?),
        Some(IntOrString::Str(s)) => match s.parse::<i64>() {
            Ok(n) => PortRef::Number(cx.port(&format!("{field}.servicePort"), n)?),
            Err(_) if !s.is_empty() => PortRef::Name(s),
            Err(_) => return Err(cx.err(&format!("{field}.servicePort"), "empty")),
        },
        None => return Err(cx.err(&format!("{field}.servicePort"), "missing")),
    };
    Ok(ServiceBackend { service: name, port })
}

/// A rule host: a DNS name, optionally `*.` followed by one, never an IP address; lower-cased.
pub fn validate_host(host: &str) -> Result<String, String> {
    let h = host.to_ascii_lowercase();
    if h.parse::<IpAddr>().is_ok() {
        return Err(format!("{host:?} is an IP address; Ingress hosts must be DNS names"));
    }
    let name = h.strip_prefix("*.").unwrap_or(&h);
    let ok_label = |l: &str| {
        !l.is_empty()
            && l.len() <= 63
            && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
            && !l.starts_with('-')
            && !l.ends_with('-')
    };
    if name.is_empty() || name.len() > 253 || !name.split('.').all(ok_label) {
        return Err(format!(
            "{host:?} is not a valid host (a DNS name, optionally with a leading \"*.\" wildcard label)"
        ));
    }
    Ok(h)
}

fn ingress_class(w: wire::IngressClass, cx: Cx) -> Result<IngressClass, ParseError> {
    let key = cx.key(&w.metadata)?;
    let is_default = w.metadata.annotations.get(DEFAULT_CLASS_ANNOTATION).map(String::as_str) == Some("true");
    Ok(IngressClass { name: key.name, controller: w.spec.controller, is_default })
}

fn service(w: wire::Service, cx: Cx) -> Result<Service, ParseError> {
    let key = cx.key(&w.metadata)?;
    let mut ports = Vec::with_capacity(w.spec.ports.len());
    for (i, p) in w.spec.ports.into_iter().enumerate() {
        let field = format!("spec.ports[{i}]");
        let Some(n) = p.port else {
            return Err(cx.err(&format!("{field}.port"), "missing"));
        };
        let port = cx.port(&format!("{field}.port"), n)?;
        let target_port = match p.target_port {
            None => TargetPort::Number(port),
            Some(IntOrString::Int(t)) => TargetPort::Number(cx.port(&format!("{field}.targetPort"), t)?),
            Some(IntOrString::Str(s)) => match s.parse::<i64>() {
                Ok(t) => TargetPort::Number(cx.port(&format!("{field}.targetPort"), t)?),
                Err(_) => TargetPort::Name(s),
            },
        };
        ports.push(ServicePort {
            name: p.name.filter(|n| !n.is_empty()),
            port,
            target_port,
            protocol: p.protocol.unwrap_or_else(|| "TCP".to_string()),
        });
    }
    let annotations = w.metadata.annotations.into_iter().filter(|(k, _)| k.starts_with("ringress.dev/")).collect();
    let external_name = match w.spec.type_.as_deref() {
        Some("ExternalName") => Some(w.spec.external_name.unwrap_or_default()),
        _ => None,
    };
    Ok(Service {
        key,
        ports,
        type_: w.spec.type_,
        external_name,
        load_balancer_class: w.spec.load_balancer_class,
        cluster_ip: w.spec.cluster_ip.and_then(|ip| ip.parse().ok()),
        annotations,
        created: w.metadata.creation_timestamp,
        uid: w.metadata.uid,
        status_addresses: w.status.load_balancer.ingress.into_iter().filter_map(|i| i.ip.or(i.hostname)).collect(),
        port_conflict: w
            .status
            .conditions
            .into_iter()
            .find(|c| c.type_ == crate::model::PORT_CONFLICT_CONDITION)
            .map(|c| c.message),
    })
}

fn endpoint_ports(ports: Vec<wire::EndpointPort>, cx: Cx, field: &str) -> Result<Vec<EndpointPort>, ParseError> {
    let mut out = Vec::with_capacity(ports.len());
    for (i, p) in ports.into_iter().enumerate() {
        let Some(n) = p.port else {
            return Err(cx.err(&format!("{field}[{i}].port"), "missing"));
        };
        let port = cx.port(&format!("{field}[{i}].port"), n)?;
        out.push(EndpointPort { name: p.name.filter(|n| !n.is_empty()), port });
    }
    Ok(out)
}

fn ip(s: &str, cx: Cx, field: &str) -> Result<IpAddr, ParseError> {
    s.parse().map_err(|_| cx.err(field, format!("{s:?} is not an IP address")))
}

/// `None` for slices of an address type ringress does not dial (FQDN).
fn endpoint_slice(w: wire::EndpointSlice, cx: Cx) -> Result<Option<EndpointSlice>, ParseError> {
    let key = cx.key(&w.metadata)?;
    match w.address_type.as_deref() {
        Some("IPv4" | "IPv6") => {}
        Some("FQDN") => {
            tracing::debug!(slice = %key, "ignoring FQDN EndpointSlice");
            return Ok(None);
        }
        other => return Err(cx.err("addressType", format!("{other:?}: expected IPv4 or IPv6"))),
    }
    let Some(service) = w.metadata.labels.get(SERVICE_NAME_LABEL).cloned() else {
        return Err(cx.err(&format!("metadata.labels[{SERVICE_NAME_LABEL}]"), "missing"));
    };
    let mut ready = Vec::new();
    for (i, e) in w.endpoints.iter().enumerate() {
        if e.conditions.ready == Some(false) {
            continue;
        }
        for (j, a) in e.addresses.iter().enumerate() {
            ready.push(ip(a, cx, &format!("endpoints[{i}].addresses[{j}]"))?);
        }
    }
    let ports = endpoint_ports(w.ports, cx, "ports")?;
    Ok(Some(EndpointSlice { key, service, ready, ports }))
}

/// Legacy `v1` Endpoints: one slice per subset, named after the object.
fn endpoints(w: wire::Endpoints, cx: Cx) -> Result<Vec<EndpointSlice>, ParseError> {
    let key = cx.key(&w.metadata)?;
    let mut out = Vec::with_capacity(w.subsets.len());
    for (i, s) in w.subsets.into_iter().enumerate() {
        let mut ready = Vec::with_capacity(s.addresses.len());
        for (j, a) in s.addresses.iter().enumerate() {
            let field = format!("subsets[{i}].addresses[{j}].ip");
            let addr = a.ip.as_deref().ok_or_else(|| cx.err(&field, "missing"))?;
            ready.push(ip(addr, cx, &field)?);
        }
        let ports = endpoint_ports(s.ports, cx, &format!("subsets[{i}].ports"))?;
        out.push(EndpointSlice {
            key: ObjectKey { namespace: key.namespace.clone(), name: format!("{}#{i}", key.name) },
            service: key.name.clone(),
            ready,
            ports,
        });
    }
    Ok(out)
}

fn secret(w: wire::Secret, cx: Cx) -> Result<Secret, ParseError> {
    use base64::Engine;
    let mut data = BTreeMap::new();
    for (k, v) in w.data {
        // The API server never wraps, but hand-written manifests often do (base64 -w 76).
        let compact: String = v.split_ascii_whitespace().collect();
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(compact)
            .map_err(|e| cx.err(&format!("data.{k}"), format!("not valid base64: {e}")))?;
        data.insert(k, bytes);
    }
    for (k, v) in w.string_data {
        data.insert(k, v.into_bytes());
    }
    Ok(Secret { key: cx.key(&w.metadata)?, type_: w.type_, data })
}

fn config_map(w: wire::ConfigMap, cx: Cx) -> Result<ConfigMap, ParseError> {
    Ok(ConfigMap { key: cx.key(&w.metadata)?, data: w.data })
}
