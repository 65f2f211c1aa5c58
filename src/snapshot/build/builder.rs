//! The build's resolver of references: Services and their slices indexed once, backends
//! created (or found again) per Service port with their endpoints, and the Secrets,
//! ConfigMaps and Services the annotations name, read once per build.

use rustc_hash::{FxHashMap, FxHashSet};
use std::net::SocketAddr;
use std::sync::Arc;

use super::Inputs;
use crate::model::{
    ConfigMap, EndpointSlice, Ingress, ObjectKey, PortRef, Secret, Service, ServiceBackend, TargetPort,
};
use crate::snapshot::annotations::{self, RouteOptions};
use crate::snapshot::auth::{BasicAuth, BasicSpec};
use crate::snapshot::external::{ExternalAuth, Target};
use crate::snapshot::{Backend, BackendId, ServiceIndex, Snapshot};

/// Indexes Services and slices once, so resolving a backend does not scan every object.
/// With `only`, just the Services named there.
pub(super) fn resolver<'a>(inputs: &Inputs<'a>, only: Option<&FxHashSet<(&str, &str)>>) -> Builder<'a> {
    let wanted = |ns: &str, name: &str| only.is_none_or(|set| set.contains(&(ns, name)));
    let mut services = FxHashMap::default();
    for svc in inputs.services.iter().filter(|s| wanted(&s.key.namespace, &s.key.name)) {
        services.entry((svc.key.namespace.as_str(), svc.key.name.as_str())).or_insert(*svc);
    }
    let mut slices: FxHashMap<(&str, &str), Vec<&EndpointSlice>> = FxHashMap::default();
    for slice in inputs.endpoint_slices.iter().filter(|s| wanted(&s.key.namespace, &s.service)) {
        slices.entry((slice.key.namespace.as_str(), slice.service.as_str())).or_default().push(slice);
    }
    Builder {
        services,
        slices,
        names: inputs.dns.clone(),
        backends: Vec::new(),
        by_service: FxHashMap::default(),
        fresh: Vec::new(),
        seeded: None,
        policy: Default::default(),
        secrets: inputs.secrets.clone(),
        secret_index: None,
        basic_auth: FxHashMap::default(),
        config_maps: inputs.config_maps.clone(),
        auth_services: FxHashMap::default(),
        default_service: None,
        allowed_response_headers: Vec::new(),
        allow_snippets: false,
        ssl_passthrough: false,
        unwatched: FxHashSet::default(),
        prev_good: Arc::default(),
        good: FxHashMap::default(),
    }
}

/// The name of [`Builder::unresolved`]'s backend.
const UNRESOLVED: &str = "<unresolved: 500>";

pub(super) struct Builder<'a> {
    /// Services by (namespace, name); the first definition wins.
    pub(super) services: FxHashMap<(&'a str, &'a str), &'a Service>,
    /// EndpointSlices by (namespace, service name).
    pub(super) slices: FxHashMap<(&'a str, &'a str), Vec<&'a EndpointSlice>>,
    /// ExternalName Services' answers.
    pub(super) names: Arc<crate::snapshot::external_name::ExternalNames>,
    pub(super) backends: Vec<Arc<Backend>>,
    /// Backend ids by Service (namespace, name) created by this builder; a Service has one
    /// backend per port the Ingresses name. Borrowed keys: a lookup allocates nothing.
    pub(super) by_service: FxHashMap<(&'a str, &'a str), Vec<BackendId>>,
    /// Backends created since [`Builder::seed`].
    pub(super) fresh: Vec<BackendId>,
    /// The seeding snapshot's index, consulted before creating a backend.
    pub(super) seeded: Option<Arc<ServiceIndex>>,
    /// `--unsupported-security-annotations`.
    pub(super) policy: crate::snapshot::access::UnsupportedPolicy,
    /// Every Secret, for `auth-secret`; indexed on first use.
    pub(super) secrets: Vec<&'a Secret>,
    pub(super) secret_index: Option<FxHashMap<(&'a str, &'a str), &'a Secret>>,
    /// The users read from each `auth-secret` this build, shared by the Ingresses naming it.
    pub(super) basic_auth: FxHashMap<BasicSpec, Result<Arc<BasicAuth>, String>>,
    /// Every ConfigMap, for `auth-proxy-set-headers`.
    pub(super) config_maps: Vec<&'a ConfigMap>,
    /// Backends of the Services `auth-url`s name, by (namespace, name), created by this
    /// builder (the names are not borrowed from the inputs, unlike [`Builder::by_service`]).
    pub(super) auth_services: FxHashMap<(String, String), Vec<BackendId>>,
    /// The ConfigMap's `global-allowed-response-headers`, for `custom-headers`.
    pub(super) allowed_response_headers: Vec<String>,
    /// The ConfigMap's `allow-snippet-annotations`.
    pub(super) allow_snippets: bool,
    /// `--enable-ssl-passthrough`.
    pub(super) ssl_passthrough: bool,
    /// `--default-backend-service`.
    pub(super) default_service: Option<ObjectKey>,
    /// Backends that follow no EndpointSlice (`service-upstream`'s cluster IP).
    pub(super) unwatched: FxHashSet<BackendId>,
    /// The annotations each Ingress was last built with where they parsed (the previous
    /// snapshot's), and this build's.
    pub(super) prev_good: Arc<crate::snapshot::GoodAnnotations>,
    pub(super) good: crate::snapshot::GoodAnnotations,
}

impl<'a> Builder<'a> {
    /// An Ingress's route options, with its `auth-secret` read: a Secret that is missing or
    /// unusable refuses the routes (fail closed).
    pub(super) fn route_options(&mut self, ing: &Ingress) -> (RouteOptions, Vec<String>) {
        let (mut o, mut warnings) = self.options_keeping_good(ing);
        if o.snippet.is_some() && !self.allow_snippets {
            o.snippet = None;
            warnings.push(format!(
                "Ingress {}: its snippet is not applied: the ConfigMap's allow-snippet-annotations is off",
                ing.key
            ));
        }
        if o.ssl_passthrough.is_some() {
            if !self.ssl_passthrough {
                o.ssl_passthrough = None;
                let why = "its ssl-passthrough has no effect without --enable-ssl-passthrough; TLS is terminated";
                warnings.push(format!("Ingress {}: {why}", ing.key));
            }
            for p in ing.rules.iter().flat_map(|r| r.paths.iter()).filter(|p| p.path != "/") {
                let why = "ssl-passthrough applies to path / alone; it is routed as usual";
                warnings.push(format!("Ingress {}: path {:?}: {why}", ing.key, p.path));
            }
        }
        if let Some(spec) = o.external.take() {
            match self.external(ExternalAuth::clone(&spec)) {
                Ok(resolved) => o.external = Some(resolved),
                Err(why) => {
                    warnings.push(format!("Ingress {}: {why}; its routes answer 503", ing.key));
                    o.access.refuse(why);
                }
            }
        }
        if let Some(key) = o.custom_headers_from.clone() {
            // As ingress-nginx: a ConfigMap that is missing, or sets a field that is not valid
            // or not allowed, denies the routes.
            let allowed = &self.allowed_response_headers;
            let read = match self.config_maps.iter().find(|c| c.key == key) {
                None => Err(format!("annotation custom-headers: ConfigMap {key} not found")),
                Some(cm) => crate::snapshot::edge::header_fields(cm, |n| allowed.iter().any(|a| a == n))
                    .map_err(|why| format!("annotation custom-headers: {why}")),
            };
            match read {
                Ok((fields, skipped)) => {
                    warnings.extend(skipped.into_iter().map(|w| format!("Ingress {}: {w}", ing.key)));
                    o.custom_headers = Some(fields.into());
                }
                Err(why) => {
                    warnings.push(format!("Ingress {}: {why}; its routes answer 503", ing.key));
                    o.access.refuse(why);
                }
            }
        }
        if let Some(spec) = o.client_cert_spec.clone() {
            let secret = self.secret(&spec.secret);
            match crate::snapshot::client_cert::ClientCert::from_secret(&spec, secret) {
                Ok(cc) => o.client_cert = Some(Arc::new(cc)),
                Err(why) => {
                    warnings.push(format!("Ingress {}: {why}; its routes answer 503", ing.key));
                    o.access.refuse(why);
                }
            }
        }
        if let Some(spec) = o.upstream_tls_spec.clone() {
            let secret = spec.secret.as_ref().and_then(|k| self.secret(k));
            match crate::snapshot::upstream_tls::UpstreamTls::from_secret(&spec, secret) {
                Ok(t) => o.upstream_tls = Some(Arc::new(t)),
                Err(why) => {
                    warnings.push(format!("Ingress {}: {why}; its routes answer 503", ing.key));
                    o.access.refuse(why);
                }
            }
        }
        let Some(spec) = o.basic_auth.clone() else { return (o, warnings) };
        let read = match self.basic_auth.get(&spec) {
            Some(r) => r.clone(),
            None => {
                let r = match self.secret(&spec.secret) {
                    None => Err(crate::snapshot::auth::unusable(&spec, None).expect("a missing Secret is unusable")),
                    Some(secret) => BasicAuth::from_secret(&spec, secret).map(|(auth, secret_warnings)| {
                        warnings.extend(secret_warnings);
                        Arc::new(auth)
                    }),
                };
                self.basic_auth.insert(spec.clone(), r.clone());
                r
            }
        };
        match read {
            Ok(auth) => o.access.basic = Some(auth),
            Err(why) => {
                warnings.push(format!("Ingress {}: {why}; its routes answer 503", ing.key));
                o.access.refuse(why);
            }
        }
        (o, warnings)
    }

    /// An Ingress's options, a value that stops parsing keeping the one it was last built
    /// with ([`annotations::read_keeping`]); records the annotations this build used.
    pub(super) fn options_keeping_good(&mut self, ing: &Ingress) -> (RouteOptions, Vec<String>) {
        let prev = self.prev_good.get(&ing.key).cloned();
        let (o, notes, kept) = annotations::read_keeping(ing, self.policy, prev.as_deref());
        self.good.insert(ing.key.clone(), Arc::new(kept));
        (o, notes.into_iter().map(|n| format!("Ingress {}: {}", ing.key, n.message)).collect())
    }

    /// A Secret by namespace and name (the index is made on first use).
    pub(super) fn secret(&mut self, key: &ObjectKey) -> Option<&'a Secret> {
        let index = self.secret_index.get_or_insert_with(|| {
            self.secrets.iter().map(|s| ((s.key.namespace.as_str(), s.key.name.as_str()), *s)).collect()
        });
        index.get(&(key.namespace.as_str(), key.name.as_str())).copied()
    }

    /// External authentication with where its requests go resolved: a Service's backend, a
    /// fixed address, or a routed host (looked up per request). Err: what is missing.
    pub(super) fn external(&mut self, mut spec: ExternalAuth) -> Result<Arc<ExternalAuth>, String> {
        spec.resolve_set_headers(&self.config_maps)?;
        spec.target = if let Some((namespace, name)) = spec.service() {
            let port = PortRef::Number(spec.port);
            let id = match self.existing(namespace, name, &port) {
                Some(id) => id,
                None => {
                    let id = self.new_backend(namespace, name, &port);
                    self.auth_services.entry((namespace.to_string(), name.to_string())).or_default().push(id);
                    id
                }
            };
            Target::Backend(id)
        } else if let Some(ip) = spec.ip() {
            let addr = SocketAddr::new(ip, spec.port);
            let id = self.backends.len() as BackendId;
            self.backends.push(Arc::new(Backend {
                name: format!("auth-url {addr}"),
                service: ObjectKey::default(),
                port: PortRef::Number(spec.port),
                endpoints: vec![addr],
                problem: None,
                dns_name: None,
            }));
            self.fresh.push(id);
            Target::Backend(id)
        } else {
            Target::Routed
        };
        Ok(Arc::new(spec))
    }

    /// The backend of a Service's first port (`default-backend`, `--default-backend-service`,
    /// as ingress-nginx picks the port), kept up to date with its endpoints like an
    /// `auth-url` Service's. Err: the Service is missing or has no port.
    pub(super) fn first_port_backend(&mut self, namespace: &str, name: &str) -> Result<BackendId, String> {
        let svc =
            self.services.get(&(namespace, name)).ok_or_else(|| format!("Service {namespace}/{name} not found"))?;
        let port =
            PortRef::Number(svc.ports.first().ok_or_else(|| format!("Service {namespace}/{name} has no port"))?.port);
        Ok(match self.existing(namespace, name, &port) {
            Some(id) => id,
            None => {
                let id = self.new_backend(namespace, name, &port);
                self.auth_services.entry((namespace.to_string(), name.to_string())).or_default().push(id);
                id
            }
        })
    }

    /// `service-upstream`: a backend whose one endpoint is the Service's cluster IP and port.
    /// It follows no EndpointSlice (kube-proxy balances behind the address); a Service change
    /// rebuilds it. Err: the Service is missing, headless or has no such port.
    pub(super) fn cluster_ip_backend(&mut self, namespace: &str, sb: &ServiceBackend) -> Result<BackendId, String> {
        let key = (namespace, sb.service.as_str());
        let svc = self.services.get(&key).ok_or_else(|| format!("Service {namespace}/{} not found", sb.service))?;
        let ip = svc.cluster_ip.ok_or_else(|| format!("Service {} has no cluster IP (headless)", svc.key))?;
        let port = svc
            .ports
            .iter()
            .find(|p| match &sb.port {
                PortRef::Number(n) => p.port == *n,
                PortRef::Name(name) => p.name.as_deref() == Some(name.as_str()),
            })
            .ok_or_else(|| format!("Service {} has no port {}", svc.key, sb.port))?
            .port;
        let addr = SocketAddr::new(ip, port);
        let id = self.backends.len() as BackendId;
        self.backends.push(Arc::new(Backend {
            name: format!("{namespace}/{}:{} via {addr}", sb.service, sb.port),
            service: svc.key.clone(),
            port: sb.port.clone(),
            endpoints: vec![addr],
            problem: None,
            dns_name: None,
        }));
        self.fresh.push(id);
        self.unwatched.insert(id);
        Ok(id)
    }

    /// Starts from `prev`'s backends, so existing ones keep their ids.
    pub(super) fn seed(&mut self, prev: &Snapshot) {
        self.backends = prev.backends.clone();
        self.seeded = Some(prev.by_service.clone());
    }

    pub(super) fn existing(&self, namespace: &str, service: &str, port: &PortRef) -> Option<BackendId> {
        let is_port = |&id: &BackendId| self.backends[id as usize].port == *port;
        let mine = self.by_service.get(&(namespace, service)).map(Vec::as_slice).unwrap_or_default();
        if let Some(id) = mine.iter().copied().find(is_port) {
            return Some(id);
        }
        let auth = self.auth_services.get(&(namespace.to_string(), service.to_string()));
        if let Some(id) = auth.into_iter().flatten().copied().find(is_port) {
            return Some(id);
        }
        let seeded = self.seeded.as_ref()?;
        let key = ObjectKey { namespace: namespace.to_string(), name: service.to_string() };
        seeded.get(&key)?.iter().copied().find(is_port)
    }

    pub(super) fn backend_id(&mut self, namespace: &'a str, sb: &'a ServiceBackend) -> BackendId {
        if let Some(id) = self.existing(namespace, &sb.service, &sb.port) {
            return id;
        }
        let id = self.new_backend(namespace, &sb.service, &sb.port);
        self.by_service.entry((namespace, sb.service.as_str())).or_default().push(id);
        id
    }

    /// The backend of a Gateway API rule none of whose backendRefs resolves (or that has none):
    /// never sent to (the rule answers 500), so it has no endpoints and no problem to warn of.
    pub(super) fn unresolved(&mut self) -> BackendId {
        if let Some(id) = self.backends.iter().position(|b| b.name == UNRESOLVED) {
            return id as BackendId;
        }
        let id = self.backends.len() as BackendId;
        self.backends.push(Arc::new(Backend {
            name: UNRESOLVED.to_string(),
            service: ObjectKey::default(),
            port: PortRef::Number(0),
            endpoints: Vec::new(),
            problem: None,
            dns_name: None,
        }));
        self.fresh.push(id);
        id
    }

    /// A new backend for a Service port, with its endpoints resolved.
    pub(super) fn new_backend(&mut self, namespace: &str, service: &str, port: &PortRef) -> BackendId {
        let key = ObjectKey { namespace: namespace.to_string(), name: service.to_string() };
        let name = format!("{namespace}/{service}:{port}");
        let (endpoints, problem, dns_name) = self.endpoints_of(namespace, service, port);
        let id = self.backends.len() as BackendId;
        self.backends.push(Arc::new(Backend { name, service: key, port: port.clone(), endpoints, problem, dns_name }));
        self.fresh.push(id);
        id
    }

    /// A backend's endpoints, why there are none, and the DNS name they come from (an
    /// ExternalName Service's).
    pub(super) fn endpoints_of(
        &self,
        namespace: &str,
        service: &str,
        port: &PortRef,
    ) -> (Vec<SocketAddr>, Option<String>, Option<String>) {
        let dns_name =
            self.services.get(&(namespace, service)).and_then(|svc| crate::snapshot::external_name::host(svc));
        match self.resolve(namespace, service, port) {
            Ok(eps) => (eps, None, dns_name),
            Err(why) => (Vec::new(), Some(why), dns_name),
        }
    }

    /// Service port -> target port -> ready endpoint addresses from the Service's slices
    /// (an ExternalName Service's: from its DNS answers).
    pub(super) fn resolve(&self, namespace: &str, service: &str, port: &PortRef) -> Result<Vec<SocketAddr>, String> {
        let svc = self
            .services
            .get(&(namespace, service))
            .ok_or_else(|| format!("Service {namespace}/{service} not found"))?;
        if svc.external_name.is_some() {
            return crate::snapshot::external_name::endpoints(svc, port, &self.names);
        }
        let sp = svc
            .ports
            .iter()
            .find(|p| match port {
                PortRef::Number(n) => p.port == *n,
                PortRef::Name(name) => p.name.as_deref() == Some(name.as_str()),
            })
            .ok_or_else(|| format!("Service {} has no port {port}", svc.key))?;
        let slices = self.slices.get(&(namespace, service)).map(Vec::as_slice).unwrap_or_default();
        let out = slice_endpoints(sp, slices);
        if out.is_empty() {
            return Err(format!("Service {} port {port} has no ready endpoints", svc.key));
        }
        Ok(out)
    }
}

/// The ready endpoints of one Service port, from the Service's slices: sorted, no duplicates.
pub(in crate::snapshot) fn slice_endpoints(
    sp: &crate::model::ServicePort,
    slices: &[&EndpointSlice],
) -> Vec<SocketAddr> {
    let mut out = Vec::new();
    for slice in slices {
        // Slices name their ports after the Service port; the number there is the target.
        let by_name = slice.ports.iter().find(|p| p.name == sp.name).map(|p| p.port);
        let port = match (&sp.target_port, by_name) {
            (_, Some(p)) => p,
            (TargetPort::Number(n), None) if slice.ports.is_empty() => *n,
            _ => continue,
        };
        out.extend(slice.ready.iter().map(|ip| SocketAddr::new(*ip, port)));
    }
    out.sort();
    out.dedup();
    out
}
