//! A Gateway's listeners: the route kinds each takes, its certificates, and the one protocol
//! each port serves.

use super::status::cond;
use super::{granted, Condition, GatewayInputs};
use crate::model::gateway::{Gateway, Listener, RouteKind, GROUP};
use crate::model::ObjectKey;

/// What a port serves, for the one claim each port has over all our Gateways.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum PortUse {
    Plain,
    Tls,
    Tcp,
}

impl PortUse {
    pub(super) fn of(protocol: &str) -> PortUse {
        match protocol {
            "HTTP" => PortUse::Plain,
            "HTTPS" | "TLS" => PortUse::Tls,
            _ => PortUse::Tcp,
        }
    }
}

/// The route kinds a listener of this protocol takes; none: a protocol ringress does not
/// serve on a Gateway.
pub(super) fn kinds_for(protocol: &str) -> Option<&'static [RouteKind]> {
    match protocol {
        "HTTP" | "HTTPS" => Some(&[RouteKind::Http, RouteKind::Grpc]),
        "TLS" => Some(&[RouteKind::Tls]),
        "TCP" => Some(&[RouteKind::Tcp]),
        _ => None,
    }
}

/// The listener's certificate Secrets, or the condition that says why it has none usable.
pub(super) fn certificates(gw: &Gateway, l: &Listener, inputs: &GatewayInputs) -> Result<Vec<ObjectKey>, Condition> {
    let tls = l.tls.as_ref();
    let mode = tls.and_then(|t| t.mode.as_deref()).unwrap_or("Terminate");
    if mode != "Terminate" {
        return Err(cond("Accepted", false, "UnsupportedValue", format!("tls.mode {mode} is not supported on HTTPS")));
    }
    let refs = tls.map(|t| &t.certificate_refs[..]).unwrap_or_default();
    if refs.is_empty() {
        return Err(cond("ResolvedRefs", false, "InvalidCertificateRef", "an HTTPS listener needs certificateRefs"));
    }
    let gw_ns = gw.metadata.key().namespace;
    let mut out = Vec::new();
    for r in refs {
        if !r.group_or("").is_empty() || r.kind_or("Secret") != "Secret" {
            let m = format!("certificateRef {} is not a core Secret", r.name);
            return Err(cond("ResolvedRefs", false, "InvalidCertificateRef", m));
        }
        let ns = r.namespace_or(&gw_ns);
        if !granted(&inputs.grants, (GROUP, "Gateway", &gw_ns), ns, ("", "Secret", &r.name)) {
            let m = format!("no ReferenceGrant in {ns} lets Gateways of {gw_ns} use Secret {}", r.name);
            return Err(cond("ResolvedRefs", false, "RefNotPermitted", m));
        }
        let key = ObjectKey { namespace: ns.to_string(), name: r.name.clone() };
        let secret = inputs.secrets.iter().find(|s| s.key == key);
        match secret.map(|s| crate::snapshot::certs::parse_tls_secret(s)) {
            Some(Ok(_)) => out.push(key),
            Some(Err(why)) => {
                return Err(cond("ResolvedRefs", false, "InvalidCertificateRef", format!("Secret {key}: {why}")))
            }
            None => {
                return Err(cond("ResolvedRefs", false, "InvalidCertificateRef", format!("Secret {key} not found")))
            }
        }
    }
    Ok(out)
}

/// The route kinds a listener takes, and whether it listed kinds it cannot take.
pub(super) fn listener_kinds(l: &Listener) -> (Vec<RouteKind>, bool) {
    let listed = l.allowed_routes.as_ref().map(|a| &a.kinds[..]).unwrap_or_default();
    let served = kinds_for(&l.protocol).unwrap_or_default();
    if listed.is_empty() {
        return (served.to_vec(), false);
    }
    let mut kinds = Vec::new();
    let mut invalid = false;
    for k in listed {
        let group_ok = k.group.as_deref().unwrap_or(GROUP) == GROUP;
        match served.iter().find(|rk| rk.name() == k.kind) {
            Some(rk) if group_ok => {
                if !kinds.contains(rk) {
                    kinds.push(*rk)
                }
            }
            _ => invalid = true,
        }
    }
    (kinds, invalid)
}
