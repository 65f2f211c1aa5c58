//! The kube store's Gateway API side: the kinds skipped without `--gateway-api`, the routes
//! lowered again, and which hosts a route change touches.

use super::{Change, HostKey, Kind, ObjectKey, Store};

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

    /// Lowers the changed HTTPRoutes and GRPCRoutes again (the others are kept): the hosts
    /// to rebuild (the changed routes' before and after), or `None` when a full build is
    /// needed (a Gateway's certificates follow the host names of its routes).
    pub fn route_hosts(&mut self) -> Option<Vec<HostKey>> {
        if self.changed_routes.is_empty() {
            return Some(Vec::new());
        }
        let keys = std::mem::take(&mut self.changed_routes);
        let changed: Vec<&crate::model::gateway::HttpRoute> =
            keys.iter().flat_map(|k| [self.http_routes.get(k), self.grpc_routes.get(k)]).flatten().collect();
        let mut lowered = std::mem::take(&mut self.lowered);
        let hosts = lowered.update(&self.gateway_inputs(), &keys, &changed);
        self.lowered = lowered;
        hosts
    }

    fn gateway_inputs(&self) -> crate::snapshot::gateway::GatewayInputs<'_> {
        crate::snapshot::gateway::GatewayInputs {
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
        }
    }

    /// Lowers the Gateway API objects again (before a full build): their Ingresses and
    /// statuses.
    pub fn lower(&mut self) {
        self.changed_routes.clear();
        self.lowered = crate::snapshot::gateway::Lowering::all(&self.gateway_inputs());
    }
}
