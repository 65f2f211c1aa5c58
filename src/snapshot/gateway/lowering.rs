//! The lowering the kube provider keeps between publishes: each route's result by kind and
//! key, so an HTTPRoute or GRPCRoute change lowers that route alone (the Gateways, a few, are
//! looked at again; the other routes are not), and says which hosts to rebuild.

use std::collections::{BTreeMap, BTreeSet};

use super::{finish, gateways, lower_route, Frame, GatewayInputs, RouteLowered, Statuses};
use crate::model::gateway::{HttpRoute, L4Route, RouteKind};
use crate::model::{Ingress, ObjectKey};
use crate::snapshot::HostKey;

/// Every route's lowering, and what the Gateways make of them together.
#[derive(Debug, Default)]
pub struct Lowering {
    routes: BTreeMap<(RouteKind, ObjectKey), Kept>,
    /// The Ingresses that carry the HTTPS listeners' certificates.
    certs: Vec<Ingress>,
    /// TCPRoutes' forwarded ports.
    pub l4: Vec<L4Route>,
    /// Gateway listeners' own ports ([`super::Lowered::ports`]).
    pub ports: Vec<(u16, bool)>,
    /// Gateway HTTPS listeners' host names ([`super::Lowered::https_names`]).
    pub https_names: super::HttpsNames,
    pub statuses: Statuses,
}

/// One route's lowering, and the hosts its Ingress has rules on.
#[derive(Debug)]
struct Kept {
    route: RouteLowered,
    hosts: Vec<HostKey>,
}

impl Kept {
    fn of(route: RouteLowered) -> Kept {
        let hosts = route.ingress.as_ref().map(HostKey::of_ingress).unwrap_or_default();
        Kept { route, hosts }
    }
}

impl Lowering {
    /// Lowers every Gateway and route.
    pub fn all(inputs: &GatewayInputs) -> Lowering {
        let (base, frame) = gateways(inputs);
        let routes = inputs
            .routes
            .iter()
            .filter_map(|r| Some(((r.kind, r.key()), Kept::of(lower_route(r, &frame, inputs)?))))
            .collect();
        let mut l = Lowering {
            routes,
            ports: base.ports,
            https_names: base.https_names,
            statuses: base.statuses,
            ..Lowering::default()
        };
        l.l4 = l.routes.values().flat_map(|r| r.route.l4.iter().cloned()).collect();
        l.certs = l.assemble(&frame);
        l
    }

    /// Lowers again the routes `changed` (HTTPRoutes and GRPCRoutes, which forward no port)
    /// and forgets those of `keys` that are gone; the others are kept. The hosts the changed
    /// routes had and have, or None when the Gateways' certificates changed with them (their
    /// host names follow the routes'): a full build.
    pub fn update(
        &mut self,
        inputs: &GatewayInputs,
        keys: &BTreeSet<ObjectKey>,
        changed: &[&HttpRoute],
    ) -> Option<Vec<HostKey>> {
        let (_, frame) = gateways(inputs);
        let mut hosts = Vec::new();
        for key in keys {
            for kind in [RouteKind::Http, RouteKind::Grpc] {
                if let Some(old) = self.routes.remove(&(kind, key.clone())) {
                    hosts.extend(old.hosts);
                }
            }
        }
        for r in changed {
            if let Some(l) = lower_route(r, &frame, inputs) {
                let l = Kept::of(l);
                hosts.extend(l.hosts.iter().cloned());
                self.routes.insert((r.kind, r.key()), l);
            }
        }
        let certs = self.assemble(&frame);
        if certs != self.certs {
            self.certs = certs;
            return None;
        }
        hosts.sort();
        hosts.dedup();
        Some(hosts)
    }

    /// The routes counted into the Gateways' statuses, the routes' statuses; the certificates'
    /// Ingresses.
    fn assemble(&mut self, frame: &Frame) -> Vec<Ingress> {
        let mut gateways = frame.gateways.clone();
        let certs = finish(frame, &mut gateways, self.routes.values().map(|r| &r.route));
        self.statuses.gateways = gateways;
        self.statuses.routes = self.routes.values().map(|r| r.route.status.clone()).collect();
        certs
    }

    /// Every Ingress the lowering made: the routes', then the certificates'.
    pub fn ingresses(&self) -> impl Iterator<Item = &Ingress> {
        self.routes.values().filter_map(|r| r.route.ingress.as_ref()).chain(&self.certs)
    }

    /// The whole lowering as [`super::lower`] gives it.
    pub fn into_lowered(self) -> super::Lowered {
        let certs = self.certs;
        let ingresses = self.routes.into_values().filter_map(|r| r.route.ingress).chain(certs).collect();
        super::Lowered {
            ingresses,
            l4: self.l4,
            ports: self.ports,
            https_names: self.https_names,
            statuses: self.statuses,
        }
    }

    /// The routes' Ingresses with rules on `host`.
    pub fn on_host(&self, host: &HostKey) -> Vec<&Ingress> {
        self.routes.values().filter(|r| r.hosts.contains(host)).filter_map(|r| r.route.ingress.as_ref()).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const BASE: &str = "apiVersion: gateway.networking.k8s.io/v1\nkind: GatewayClass\nmetadata: {name: r}\nspec: {controllerName: ringress.dev/gateway-controller}\n---\napiVersion: gateway.networking.k8s.io/v1\nkind: Gateway\nmetadata: {name: g, namespace: default}\nspec:\n  gatewayClassName: r\n  listeners:\n  - {name: http, port: 80, protocol: HTTP}\n  - {name: https, port: 443, protocol: HTTPS, tls: {certificateRefs: [{name: c}]}}\n---\napiVersion: v1\nkind: Service\nmetadata: {name: s, namespace: default}\nspec: {ports: [{port: 80}]}\n";

    fn route(name: &str, section: &str, host: &str, path: &str) -> String {
        format!("---\napiVersion: gateway.networking.k8s.io/v1\nkind: HTTPRoute\nmetadata: {{name: {name}, namespace: default}}\nspec:\n  parentRefs: [{{name: g, sectionName: {section}}}]\n  hostnames: [{host}]\n  rules:\n  - matches: [{{path: {{type: PathPrefix, value: {path}}}}}]\n    backendRefs: [{{name: s, port: 80}}]\n")
    }

    /// The objects of `yaml`, and the HTTPS listener's certificate.
    fn parsed(yaml: &str) -> crate::model::Objects {
        let mut o = crate::model::parse_documents(yaml).unwrap();
        let made = rcgen::generate_simple_self_signed(vec!["d.test".to_string()]).unwrap();
        let data = [("tls.crt", made.cert.pem()), ("tls.key", made.signing_key.serialize_pem())];
        o.secrets.push(crate::model::Secret {
            key: ObjectKey { namespace: "default".into(), name: "c".into() },
            type_: Some("kubernetes.io/tls".into()),
            data: data.into_iter().map(|(k, v)| (k.to_string(), v.into_bytes())).collect(),
        });
        o
    }

    /// The lowering kept by the kube provider, after one route changed, is what lowering
    /// everything again makes.
    fn same_as_all(l: &Lowering, objects: &crate::model::Objects) {
        let all = Lowering::all(&GatewayInputs::of(objects));
        let keys = |l: &Lowering| l.ingresses().map(|i| format!("{i:?}")).collect::<BTreeSet<_>>();
        assert_eq!(keys(l), keys(&all));
        assert_eq!(format!("{:?}", l.statuses), format!("{:?}", all.statuses));
    }

    #[test]
    fn a_route_lowered_again_alone_gives_what_lowering_everything_gives() {
        let before = BASE.to_string() + &route("a", "http", "a.test", "/") + &route("b", "http", "b.test", "/x");
        let objects = parsed(&before);
        let mut l = Lowering::all(&GatewayInputs::of(&objects));
        // b moves to another host and path.
        let after = BASE.to_string() + &route("a", "http", "a.test", "/") + &route("b", "http", "c.test", "/y");
        let objects = parsed(&after);
        let inputs = GatewayInputs::of(&objects);
        let b: Vec<&HttpRoute> = inputs.routes.iter().copied().filter(|r| r.metadata.name == "b").collect();
        let keys: BTreeSet<ObjectKey> = b.iter().map(|r| r.key()).collect();
        let hosts = l.update(&inputs, &keys, &b).expect("no certificate changed");
        assert_eq!(hosts, vec![HostKey::Exact("b.test".into()), HostKey::Exact("c.test".into())]);
        same_as_all(&l, &objects);
        // b goes: its host only.
        let gone = BASE.to_string() + &route("a", "http", "a.test", "/");
        let objects = parsed(&gone);
        assert_eq!(l.update(&GatewayInputs::of(&objects), &keys, &[]), Some(vec![HostKey::Exact("c.test".into())]));
        same_as_all(&l, &objects);
        // A route on the HTTPS listener with no host name of its own: the listener's
        // certificate follows its host name, so a full build is asked for.
        let secure = gone + &route("d", "https", "d.test", "/");
        let objects = parsed(&secure);
        let inputs = GatewayInputs::of(&objects);
        let d: Vec<&HttpRoute> = inputs.routes.iter().copied().filter(|r| r.metadata.name == "d").collect();
        let keys: BTreeSet<ObjectKey> = d.iter().map(|r| r.key()).collect();
        assert_eq!(l.update(&inputs, &keys, &d), None);
        same_as_all(&l, &objects);
    }
}
