//! ExternalName Services, the pure half: the resolver's answers as the build reads them, and
//! the rules that turn an ExternalName Service port into endpoints. The resolver itself
//! (DNS over the network, with the answers' TTLs) is the provider's `dns` module.
//!
//! As ingress-nginx does: the port is the matching Service port's target port (its number
//! when the Ingress names a port the Service does not list), and `localhost` or a loopback
//! address is refused. ringress goes further and refuses what a name *resolves* to when that
//! is loopback, link-local, unspecified, multicast or broadcast: an edge proxy on the host
//! network would otherwise let anyone who can create a Service reach the node's own ports
//! (its admin port, the kubelet) or a cloud metadata address. `--external-name-loopback`
//! lifts that for tests and single-node setups.

use std::net::{IpAddr, SocketAddr};

use rustc_hash::FxHashMap;

use crate::model::{PortRef, Service, TargetPort};

/// What the build knows of ExternalName Services: the policy flags and the resolver's answers.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ExternalNames {
    /// `--disable-svc-external-name`: every ExternalName backend answers 503.
    pub disabled: bool,
    /// `--external-name-loopback`: loopback and link-local answers (and literals) are allowed.
    pub loopback: bool,
    /// Each name ([`host`]'s form) the resolver has answered for: its addresses (A records,
    /// else AAAA), or why it has none. A name not here has not been answered yet.
    pub answers: FxHashMap<String, Result<Vec<IpAddr>, String>>,
}

/// The DNS name an ExternalName Service sends to, as the resolver looks it up (lower case; a
/// trailing dot, which makes it absolute, kept). None for other Services, for an address and
/// for a value that is not a DNS name.
pub fn host(svc: &Service) -> Option<String> {
    let name = svc.external_name.as_deref()?.trim();
    if name.parse::<IpAddr>().is_ok() || !valid_name(name) {
        return None;
    }
    Some(name.to_ascii_lowercase())
}

/// A DNS-1123 subdomain (what Kubernetes validates `externalName` against), with an optional
/// trailing dot.
fn valid_name(name: &str) -> bool {
    let name = name.strip_suffix('.').unwrap_or(name);
    let label = |l: &str| {
        let b = l.as_bytes();
        !b.is_empty()
            && b.len() <= 63
            && b.iter().all(|c| c.is_ascii_alphanumeric() || *c == b'-')
            && b[0] != b'-'
            && b[b.len() - 1] != b'-'
    };
    !name.is_empty() && name.len() <= 253 && name.split('.').all(label)
}

/// Addresses an ExternalName may not lead to (unless `--external-name-loopback`): the node
/// itself, link-local (cloud metadata), and what is not one host.
pub fn internal(ip: IpAddr) -> bool {
    let ip = match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    };
    match ip {
        IpAddr::V4(a) => {
            a.is_loopback() || a.is_unspecified() || a.is_link_local() || a.is_multicast() || a.is_broadcast()
        }
        IpAddr::V6(a) => {
            a.is_loopback() || a.is_unspecified() || a.is_multicast() || (a.segments()[0] & 0xffc0) == 0xfe80
        }
    }
}

/// The endpoints of an ExternalName Service's port: each address of the name (or the
/// literal address) with the target port. Err: why there are none, naming the Service.
pub fn endpoints(svc: &Service, port: &PortRef, names: &ExternalNames) -> Result<Vec<SocketAddr>, String> {
    let key = &svc.key;
    if names.disabled {
        return Err(format!("Service {key} is of type ExternalName, which --disable-svc-external-name refuses"));
    }
    let target = target_port(svc, port)?;
    let value = svc.external_name.as_deref().unwrap_or_default().trim();
    if value.is_empty() {
        return Err(format!("Service {key} is of type ExternalName but has no spec.externalName"));
    }
    let found: Vec<IpAddr> = if let Ok(ip) = value.parse::<IpAddr>() {
        vec![ip]
    } else if value.trim_end_matches('.').eq_ignore_ascii_case("localhost") && !names.loopback {
        return Err(format!("Service {key}: spec.externalName {value} names this node, which is refused"));
    } else {
        let Some(name) = host(svc) else {
            return Err(format!("Service {key}: spec.externalName {value:?} is not a DNS name"));
        };
        match names.answers.get(&name) {
            None => return Err(format!("Service {key}: the DNS lookup of {name} has no answer yet")),
            Some(Err(why)) => return Err(format!("Service {key}: the DNS lookup of {name} failed: {why}")),
            Some(Ok(ips)) => ips.clone(),
        }
    };
    let mut out: Vec<SocketAddr> =
        found.iter().filter(|ip| names.loopback || !internal(**ip)).map(|ip| SocketAddr::new(*ip, target)).collect();
    if out.is_empty() {
        let list: Vec<String> = found.iter().map(IpAddr::to_string).collect();
        return Err(format!(
            "Service {key}: spec.externalName {value} leads only to this node's, link-local or non-unicast \
             addresses ({}), which are refused",
            list.join(", ")
        ));
    }
    out.sort();
    out.dedup();
    Ok(out)
}

/// ingress-nginx's choice: the Service port the Ingress names (by number or name) gives its
/// numeric target port (its port when the target is a name); a number the Service does not
/// list is used as it is; a name it does not list is an error.
fn target_port(svc: &Service, port: &PortRef) -> Result<u16, String> {
    let listed = svc.ports.iter().find(|p| match port {
        PortRef::Number(n) => p.port == *n,
        PortRef::Name(name) => p.name.as_deref() == Some(name.as_str()),
    });
    match (listed, port) {
        (Some(p), _) => Ok(match p.target_port {
            TargetPort::Number(n) => n,
            TargetPort::Name(_) => p.port,
        }),
        (None, PortRef::Number(n)) => Ok(*n),
        (None, PortRef::Name(name)) => Err(format!("Service {} has no port {name}", svc.key)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{ObjectKey, ServicePort};

    fn svc(name: &str, ports: Vec<ServicePort>) -> Service {
        Service {
            key: ObjectKey { namespace: "default".into(), name: "ext".into() },
            type_: Some("ExternalName".into()),
            external_name: Some(name.into()),
            ports,
            ..Default::default()
        }
    }

    fn answers(name: &str, ips: &[&str]) -> ExternalNames {
        let mut n = ExternalNames::default();
        n.answers.insert(name.into(), Ok(ips.iter().map(|i| i.parse().unwrap()).collect()));
        n
    }

    #[test]
    fn port_follows_ingress_nginx() {
        let ports = vec![
            ServicePort {
                name: Some("web".into()),
                port: 80,
                target_port: TargetPort::Number(8080),
                protocol: "TCP".into(),
            },
            ServicePort {
                name: Some("alt".into()),
                port: 81,
                target_port: TargetPort::Name("http".into()),
                protocol: "TCP".into(),
            },
        ];
        let s = svc("api.example.com", ports);
        let n = answers("api.example.com", &["192.0.2.7"]);
        let at = |p: PortRef| endpoints(&s, &p, &n).map(|e| e[0].port());
        assert_eq!(at(PortRef::Number(80)), Ok(8080), "a listed port: its target");
        assert_eq!(at(PortRef::Name("web".into())), Ok(8080));
        assert_eq!(at(PortRef::Number(81)), Ok(81), "a named target: the port itself");
        assert_eq!(at(PortRef::Number(9443)), Ok(9443), "an unlisted number: used as is");
        assert!(at(PortRef::Name("grpc".into())).unwrap_err().contains("no port grpc"));
    }

    #[test]
    fn names_are_validated_and_answers_used() {
        let n = answers("api.example.com.", &["192.0.2.9", "192.0.2.7", "192.0.2.9"]);
        let s = svc("API.example.com.", vec![]);
        assert_eq!(host(&s).as_deref(), Some("api.example.com."));
        let eps = endpoints(&s, &PortRef::Number(443), &n).unwrap();
        assert_eq!(eps, vec!["192.0.2.7:443".parse().unwrap(), "192.0.2.9:443".parse().unwrap()]);
        for bad in ["-bad.example.com", "a..b", "under_score.example", "", "x".repeat(64).as_str()] {
            let e = endpoints(&svc(bad, vec![]), &PortRef::Number(80), &n).unwrap_err();
            assert!(e.contains("not a DNS name") || e.contains("no spec.externalName"), "{bad}: {e}");
        }
        let pending = endpoints(&svc("other.example.com", vec![]), &PortRef::Number(80), &n).unwrap_err();
        assert!(pending.contains("no answer yet"), "{pending}");
        let literal = endpoints(&svc("192.0.2.1", vec![]), &PortRef::Number(80), &n).unwrap();
        assert_eq!(literal, vec!["192.0.2.1:80".parse().unwrap()]);
    }

    #[test]
    fn the_node_itself_is_refused_unless_allowed() {
        let mut n = answers("sneaky.example.com", &["127.0.0.1", "169.254.169.254", "::ffff:127.0.0.1"]);
        for value in ["sneaky.example.com", "localhost", "127.0.0.1", "::1", "169.254.169.254", "0.0.0.0"] {
            let e = endpoints(&svc(value, vec![]), &PortRef::Number(80), &n).unwrap_err();
            assert!(e.contains("refused"), "{value}: {e}");
        }
        n.answers
            .insert("mixed.example.com".into(), Ok(vec!["127.0.0.1".parse().unwrap(), "192.0.2.3".parse().unwrap()]));
        let mixed = endpoints(&svc("mixed.example.com", vec![]), &PortRef::Number(80), &n).unwrap();
        assert_eq!(mixed, vec!["192.0.2.3:80".parse().unwrap()], "only the outside address");
        n.loopback = true;
        assert_eq!(endpoints(&svc("sneaky.example.com", vec![]), &PortRef::Number(80), &n).unwrap().len(), 3);
        n.disabled = true;
        assert!(endpoints(&svc("sneaky.example.com", vec![]), &PortRef::Number(80), &n)
            .unwrap_err()
            .contains("refuses"));
    }
}
