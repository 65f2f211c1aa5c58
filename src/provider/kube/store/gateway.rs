//! The kube store's Gateway API side: the kinds skipped without `--gateway-api`, the routes
//! lowered again, and which hosts a route change touches.

use super::{Change, HostKey, Ingress, Kind, ObjectKey, Store};

impl Store {
    /// Without `--gateway-api` the Gateway API kinds are not watched: nothing to wait for.
    pub fn skip_gateway_api(&mut self) {
        for k in Kind::GATEWAY_API {
            self.skip(k);
        }
    }

    /// A kind that is not watched: nothing to wait for.
    pub fn skip(&mut self, kind: Kind) {
        self.synced[kind as usize] = true;
    }

    /// An HTTPRoute or GRPCRoute changed: its hosts are found when the routes are lowered
    /// again at the next publish ([`Store::route_hosts`]).
    pub(super) fn route_changed(&mut self, changed: bool, key: ObjectKey) -> Change {
        if !changed {
            return Change::None;
        }
        self.changed_routes.insert(key);
        Change::Routes
    }

    /// Lowers the routes again after HTTPRoute or GRPCRoute changes: the hosts to rebuild
    /// (the changed routes' before and after), or `None` when a full build is needed (a
    /// Gateway's certificates follow the host names of its routes).
    pub fn route_hosts(&mut self) -> Option<Vec<HostKey>> {
        if self.changed_routes.is_empty() {
            return Some(Vec::new());
        }
        let changed = std::mem::take(&mut self.changed_routes);
        let hosts_of = |lowered: &[Ingress]| -> (Vec<HostKey>, Vec<Ingress>) {
            let hosts = lowered
                .iter()
                .filter(|i| matches!(i.origin, crate::model::Origin::Route(_)) && changed.contains(&i.key))
                .flat_map(HostKey::of_ingress)
                .collect();
            let certs = lowered.iter().filter(|i| i.origin == crate::model::Origin::Gateway).cloned().collect();
            (hosts, certs)
        };
        let (mut hosts, certs_before) = hosts_of(&self.lowered);
        self.lower();
        let (after, certs_after) = hosts_of(&self.lowered);
        if certs_before != certs_after {
            return None;
        }
        hosts.extend(after);
        hosts.sort();
        hosts.dedup();
        Some(hosts)
    }

    /// Lowers the Gateway API objects again (before a full build): their Ingresses and
    /// statuses.
    pub fn lower(&mut self) {
        self.changed_routes.clear();
        let inputs = crate::snapshot::gateway::GatewayInputs {
            classes: self.gw_classes.values().collect(),
            gateways: self.gateways.values().collect(),
            routes: [&self.http_routes, &self.grpc_routes, &self.tls_routes, &self.tcp_routes]
                .into_iter()
                .flat_map(|m| m.values())
                .collect(),
            grants: self.grants.values().collect(),
            services: self.services.values().collect(),
            secrets: self.secrets.values().collect(),
            namespaces: self.namespaces.values().collect(),
        };
        let lowered = crate::snapshot::gateway::lower(&inputs);
        self.lowered = lowered.ingresses;
        self.lowered_l4 = lowered.l4;
        self.lowered_ports = lowered.ports;
        self.gateway_statuses = lowered.statuses;
    }
}
