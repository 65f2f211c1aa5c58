//! Pure: Kubernetes objects -> an immutable [`Snapshot`] (route table, backends, settings).
//! Built on the control thread, read by every worker through arc-swap; no I/O here.

pub mod access;
pub mod annotations;
pub mod auth;
mod build;
pub(crate) mod certs;
pub mod client_cert;
pub mod compression;
pub mod config;
pub(crate) mod edge;
pub mod external;
pub mod external_name;
pub mod gateway;
pub mod l4;
pub mod listener_tls;
pub mod redirect;
pub mod response_rewrite;
pub mod snippet;
mod table;
pub mod traffic;
pub mod upstream_tls;

#[cfg(test)]
mod tests;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

pub use build::{
    build, build_after, build_from, serves, update_endpoints, update_hosts, BuildOptions, HostKey, Inputs,
};
pub use edge::{parse_cidrs, Cidr};
pub use table::{normalize_host, HostRoutes, RouteTable};

use rustc_hash::{FxHashMap, FxHashSet};

use crate::model::{ObjectKey, PathType, PortRef};

/// Index of a backend in [`Snapshot::backends`]. Stable across endpoint-only updates (which
/// share the route table), renumbered by a full build.
pub type BackendId = u32;

/// One Service port of one namespace, resolved to the endpoints that serve it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Backend {
    /// `namespace/service:port`, for logs and errors.
    pub name: String,
    /// The Service (namespace, name) and the port the Ingress names.
    pub service: ObjectKey,
    pub port: PortRef,
    /// Ready endpoints, sorted and unique. Empty means the proxy answers 503.
    pub endpoints: Vec<SocketAddr>,
    /// Why there are no endpoints (Service missing, no such port, nothing ready).
    pub problem: Option<String>,
    /// The DNS name the endpoints come from (an ExternalName Service), which the provider's
    /// resolver keeps looking up.
    pub dns_name: Option<String>,
}

/// What a matched request is sent to, and which Ingress asked for it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Route {
    pub backend: BackendId,
    pub ingress: Arc<ObjectKey>,
    pub host: Option<String>,
    pub path: String,
    pub path_type: PathType,
    /// The Ingress lists this route's host under `spec.tls` (what `ssl-redirect` needs).
    pub tls: bool,
    /// The Ingress's annotations, shared by all its routes.
    pub options: Arc<annotations::RouteOptions>,
    /// `rewrite-target` compiled for this route's path.
    pub rewrite: Option<Arc<annotations::Rewrite>>,
    /// A regular-expression path (not Exact): matched by this, tried before Prefix paths.
    pub regex: Option<Arc<annotations::PathRegex>>,
    /// A canary Ingress's alternative backend for this host and path, and when it is taken.
    pub canary: Option<Arc<Canary>>,
    /// `default-backend`: the backend that answers when this route's has no endpoints.
    pub fallback: Option<BackendId>,
    /// A Gateway API rule: its conditions beyond the path, its filters and backends.
    pub gateway: Option<Arc<gateway::GatewayRule>>,
    /// The next route with the same path, tried when this one's conditions are not met
    /// (most specific first, as Gateway API orders rules).
    pub next: Option<u32>,
    /// What kind of object asked for the route (Ingress, HTTPRoute, GRPCRoute).
    pub origin: crate::model::Origin,
}

/// The canary of a route: another Ingress's backend for the same host and path, taken by
/// the canary's rules ([`annotations::CanaryRules`]).
#[derive(Debug)]
pub struct Canary {
    pub backend: BackendId,
    pub ingress: Arc<ObjectKey>,
    pub rules: Arc<annotations::CanaryRules>,
    /// Requests decided by weight so far, over every worker: exactly `weight` of each
    /// `weight-total` of them go to the canary, spread evenly (a fresh count per build).
    weighed: std::sync::atomic::AtomicU64,
}

impl Canary {
    pub fn new(backend: BackendId, ingress: Arc<ObjectKey>, rules: Arc<annotations::CanaryRules>) -> Canary {
        Canary { backend, ingress, rules, weighed: std::sync::atomic::AtomicU64::new(0) }
    }

    /// Whether the next request decided by weight goes to the canary.
    pub fn by_weight(&self) -> bool {
        let (w, total) = (u64::from(self.rules.weight), u64::from(self.rules.weight_total));
        if w == 0 {
            return false;
        }
        if w >= total {
            return true;
        }
        let p = self.weighed.fetch_add(1, std::sync::atomic::Ordering::Relaxed) % total;
        (p + 1) * w / total > p * w / total
    }
}

impl PartialEq for Canary {
    fn eq(&self, other: &Self) -> bool {
        (self.backend, &self.ingress, &self.rules) == (other.backend, &other.ingress, &other.rules)
    }
}

impl Eq for Canary {}

/// Data-plane limits and timeouts. They travel in the snapshot so that a settings change is
/// applied exactly like a route change.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Settings {
    pub max_header_bytes: usize,
    /// The largest response head taken from an upstream (`proxy-buffer-size`); a larger one
    /// is a 502, as nginx's "upstream sent too big header".
    pub max_response_head: usize,
    pub max_headers: usize,
    /// 0 means no limit.
    pub max_body_bytes: u64,
    pub header_timeout: Duration,
    pub idle_timeout: Duration,
    pub connect_timeout: Duration,
    pub upstream_timeout: Duration,
    /// Sending to the upstream (`proxy-send-timeout`).
    pub upstream_send_timeout: Duration,
    /// How long an idle upstream keep-alive connection is kept in a worker's pool.
    pub upstream_idle_timeout: Duration,
    pub max_connections_per_worker: usize,
    /// Concurrent streams per HTTP/2 connection (more are refused with REFUSED_STREAM).
    pub h2_max_concurrent_streams: u32,
    /// The HTTPS listener's port, for redirects (omitted from the Location when 443).
    pub https_port: u16,
    /// Status of the redirects to HTTPS (`http-redirect-code`): 301, 302, 307 or 308.
    pub redirect_code: u16,
    /// How long a drain (SIGTERM) waits for requests in progress before exiting.
    pub drain_timeout: Duration,
    /// Requests served on one HTTP/1.1 connection before it is closed (`keep-alive-requests`).
    pub keepalive_requests: u64,
    /// `ssl-redirect` for Ingresses that do not set the annotation.
    pub ssl_redirect: bool,
    /// `force-ssl-redirect` for Ingresses that do not set the annotation.
    pub force_ssl_redirect: bool,
    /// Between two reads of a request body (`client-body-timeout`), 408 after.
    pub body_timeout: Duration,
    /// `server-tokens`: the proxy's own responses say `Server: ringress/<version>` instead
    /// of `Server: ringress`.
    pub server_tokens: bool,
    /// How a worker picks an endpoint (`load-balance`).
    pub load_balance: LoadBalance,
    /// HTTP and HTTPS connections start with a PROXY protocol header (`use-proxy-protocol`,
    /// `--accept-proxy-protocol`): its client address is the client.
    pub accept_proxy: bool,
    /// Idle connections kept per upstream endpoint per worker (ingress-nginx's
    /// `upstream-keepalive-connections` default is 320): enough for an HTTP/2 client's
    /// hundreds of concurrent streams to reuse connections instead of churning new ones.
    pub upstream_keepalive_connections: usize,
    /// `enable-underscores-in-headers`: request fields with `_` in their names are passed on
    /// (default off: dropped, as nginx's `underscores_in_headers off` does).
    pub underscores_in_headers: bool,
    /// `proxy-request-buffering`: a request body up to `body_buffer_size` is read whole before
    /// an upstream connection is taken (a slow client then holds no upstream); larger bodies
    /// are streamed, under `body_min_rate`.
    pub request_buffering: bool,
    /// `client-body-buffer-size`: the most one request buffers (bytes).
    pub body_buffer_size: u64,
    /// `client-body-min-rate`: bytes per second a request body must average once
    /// [`BODY_RATE_GRACE`] has passed (0: no minimum); 408 below it.
    pub body_min_rate: u64,
    /// `limit-req-status-code`, `limit-conn-status-code`: the status of a refusal by a
    /// request-rate or a connection limit.
    pub limit_req_status: u16,
    pub limit_conn_status: u16,
    /// `custom-http-errors`: statuses (from upstreams or the proxy) answered by the default
    /// backend's error page instead, for routes without the annotation.
    pub custom_http_errors: Arc<[u16]>,
    /// `limit-rate`, `limit-rate-after` (bytes per second after bytes) for every response of
    /// a route without its own `limit-rate` (0: none).
    pub limit_rate: u64,
    pub limit_rate_after: u64,
    /// `proxy-next-upstream`, `-tries`, `-timeout`: when a failed attempt moves on to another
    /// endpoint.
    pub next_upstream: NextUpstream,
}

/// `proxy-next-upstream` and its `-tries` and `-timeout`, as nginx's `proxy_next_upstream`
/// reads them: which failures of an attempt send the request to another endpoint, how many
/// endpoints are tried in all (0: every one), and for how long (zero: no limit).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NextUpstream {
    pub when: NextWhen,
    pub tries: u32,
    pub timeout: Duration,
}

/// The failures `proxy-next-upstream` names. A request whose body was sent, with a method
/// that is not idempotent (RFC 9110 §9.2.2), moves on only with `non_idempotent`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct NextWhen {
    /// `error`: the connection failed or broke before a response head.
    pub error: bool,
    /// `timeout`: connecting, sending or waiting for the response head timed out.
    pub timeout: bool,
    /// `invalid_header`: the response head was empty or malformed.
    pub invalid_header: bool,
    /// `http_500` .. `http_429`: the response had one of these statuses (bit i for
    /// [`NEXT_STATUSES`]`[i]`).
    pub statuses: u8,
    pub non_idempotent: bool,
}

/// The statuses `proxy-next-upstream` may name.
pub const NEXT_STATUSES: [u16; 7] = [500, 502, 503, 504, 403, 404, 429];

impl NextWhen {
    /// Parses `proxy-next-upstream`: tokens separated by spaces, or `off`.
    pub fn parse(v: &str) -> Option<NextWhen> {
        let mut w = NextWhen::default();
        let mut off = false;
        for t in v.split_ascii_whitespace() {
            match t {
                "off" => off = true,
                "error" => w.error = true,
                "timeout" => w.timeout = true,
                "invalid_header" => w.invalid_header = true,
                "non_idempotent" => w.non_idempotent = true,
                _ => {
                    let code: u16 = t.strip_prefix("http_")?.parse().ok()?;
                    let i = NEXT_STATUSES.iter().position(|&c| c == code)?;
                    w.statuses |= 1 << i;
                }
            }
        }
        match (off, w == NextWhen::default()) {
            (true, true) => Some(w),
            (true, false) | (false, true) => None,
            (false, false) => Some(w),
        }
    }

    /// Whether a response with this status moves on.
    pub fn on_status(&self, status: u16) -> bool {
        NEXT_STATUSES.iter().position(|&c| c == status).is_some_and(|i| self.statuses & (1 << i) != 0)
    }
}

impl NextUpstream {
    /// Whether another endpoint may be tried after `tried` endpoints, the first at `started`.
    pub fn allows_another(&self, tried: usize, started: std::time::Instant) -> bool {
        (self.tries == 0 || tried < self.tries as usize) && (self.timeout.is_zero() || started.elapsed() < self.timeout)
    }
}

impl Default for NextUpstream {
    /// ingress-nginx's defaults: `error timeout`, 3 tries, no time limit.
    fn default() -> Self {
        NextUpstream {
            when: NextWhen { error: true, timeout: true, ..NextWhen::default() },
            tries: 3,
            timeout: Duration::ZERO,
        }
    }
}

/// How long a request body may arrive at any pace before `client-body-min-rate` applies.
pub const BODY_RATE_GRACE: Duration = Duration::from_secs(10);

impl Settings {
    /// How long the next read of a request body may wait, for a body that started at `start`
    /// and has delivered `received` bytes: until the average would fall below
    /// `body_min_rate` (after [`BODY_RATE_GRACE`]), and never longer than `body_timeout`.
    /// Zero: the body is already too slow.
    pub fn body_wait(&self, start: std::time::Instant, received: u64) -> Duration {
        if self.body_min_rate == 0 {
            return self.body_timeout;
        }
        let earned = Duration::from_secs_f64(received as f64 / self.body_min_rate as f64);
        let until = (start + BODY_RATE_GRACE + earned).saturating_duration_since(std::time::Instant::now());
        until.min(self.body_timeout)
    }
}

/// `load-balance`: round robin, or the endpoint with the lowest moving average of response
/// time weighted by requests in flight, between two picked at random (per worker).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum LoadBalance {
    #[default]
    RoundRobin,
    Ewma,
}

impl Settings {
    /// The `Server` field of the proxy's own responses.
    pub fn server_name(&self) -> &'static str {
        if self.server_tokens {
            concat!("ringress/", env!("CARGO_PKG_VERSION"))
        } else {
            "ringress"
        }
    }

    /// These settings with a route's annotations applied (`proxy-body-size` and the
    /// `proxy-*-timeout`s).
    pub fn for_route(&self, o: &annotations::RouteOptions) -> Settings {
        Settings {
            max_body_bytes: o.max_body_bytes.unwrap_or(self.max_body_bytes),
            max_response_head: o.response_head.unwrap_or(self.max_response_head),
            connect_timeout: o.timeouts.connect.unwrap_or(self.connect_timeout),
            upstream_timeout: o.timeouts.read.unwrap_or(self.upstream_timeout),
            upstream_send_timeout: o.timeouts.send.unwrap_or(self.upstream_send_timeout),
            request_buffering: o.request_buffering.unwrap_or(self.request_buffering),
            next_upstream: NextUpstream {
                when: o.next_upstream.unwrap_or(self.next_upstream.when),
                tries: o.next_upstream_tries.unwrap_or(self.next_upstream.tries),
                timeout: o.next_upstream_timeout.unwrap_or(self.next_upstream.timeout),
            },
            ..self.clone()
        }
    }

    /// Whether a plain-HTTP request on `route` is redirected to HTTPS: `force-ssl-redirect`,
    /// or `ssl-redirect` (the annotation, else the ConfigMap's default) for a host with TLS.
    pub fn redirects_to_https(&self, route: &Route, https: bool) -> bool {
        let o = &route.options;
        !https
            && (o.force_ssl_redirect.unwrap_or(self.force_ssl_redirect)
                || (o.ssl_redirect.unwrap_or(self.ssl_redirect) && route.tls))
    }

    /// `ssl-redirect` / `force-ssl-redirect`: the Location of the same host, path and query
    /// over HTTPS (the port only when not 443).
    pub fn write_https_location(&self, out: &mut Vec<u8>, host: &str, path_and_query: &[u8]) {
        out.extend_from_slice(b"https://");
        out.extend_from_slice(host.as_bytes());
        if self.https_port != 443 {
            out.push(b':');
            out.extend_from_slice(self.https_port.to_string().as_bytes());
        }
        out.extend_from_slice(path_and_query);
    }
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            max_header_bytes: 32 * 1024,
            max_response_head: 64 * 1024,
            max_headers: 100,
            max_body_bytes: 1 << 30,
            header_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(60),
            connect_timeout: Duration::from_secs(5),
            upstream_timeout: Duration::from_secs(60),
            upstream_send_timeout: Duration::from_secs(60),
            upstream_idle_timeout: Duration::from_secs(30),
            max_connections_per_worker: 16384,
            h2_max_concurrent_streams: 128,
            https_port: 443,
            redirect_code: 308,
            drain_timeout: Duration::from_secs(30),
            keepalive_requests: 1000,
            ssl_redirect: true,
            force_ssl_redirect: false,
            upstream_keepalive_connections: 320,
            body_timeout: Duration::from_secs(60),
            server_tokens: false,
            load_balance: LoadBalance::RoundRobin,
            accept_proxy: false,
            underscores_in_headers: false,
            request_buffering: true,
            body_buffer_size: 1 << 20,
            body_min_rate: 500,
            limit_req_status: 503,
            limit_conn_status: 503,
            custom_http_errors: Arc::from(Vec::new()),
            limit_rate: 0,
            limit_rate_after: 0,
            next_upstream: NextUpstream::default(),
        }
    }
}

/// Backends by Service (namespace, name).
pub type ServiceIndex = FxHashMap<Arc<ObjectKey>, Arc<[BackendId]>>;

/// The immutable routing state every worker reads. Once published, never mutated.
///
/// The route table and the per-Service index are shared (`Arc`) between a snapshot and the
/// ones derived from it by [`update_endpoints`], so an endpoint change costs a copy of the
/// backend pointers, not a rebuild of the table.
#[derive(Debug, Default)]
pub struct Snapshot {
    /// Increases by one with every publish; 0 is the empty table before the first build.
    pub generation: u64,
    pub table: Arc<RouteTable>,
    pub backends: Vec<Arc<Backend>>,
    /// Backends by Service (namespace, name): what an endpoint change of that Service touches.
    pub by_service: Arc<ServiceIndex>,
    /// Every endpoint of every backend, for pools to drop connections to departed ones.
    pub endpoint_set: FxHashSet<SocketAddr>,
    pub settings: Settings,
    /// The access log's path, format, rotation and budget (read per request: whether and how
    /// to log; by the logger thread: where).
    pub log: Arc<crate::access_log::Config>,
    /// Headers added to proxied responses, and which peers' forwarded headers are believed.
    pub edge: Arc<edge::Edge>,
    /// TCP ports forwarded to Services (LoadBalancer Services of our class, `tcp-services`).
    pub l4: Arc<l4::L4Table>,
    /// Objects defined twice (file provider). Route conflicts are on the table's hosts and
    /// backend problems on the backends; [`Snapshot::warnings`] lists all three.
    pub build_warnings: Arc<Vec<String>>,
    /// Certificates by SNI name, from the served Ingresses' `spec.tls` Secrets.
    pub certs: Arc<certs::CertStore>,
    /// The annotations each served Ingress was built with, where they parsed: a value that
    /// stops parsing keeps this one (see `build`).
    pub annotations: Arc<GoodAnnotations>,
}

/// Per Ingress, its annotations as last built where they parsed.
pub type GoodAnnotations = FxHashMap<ObjectKey, Arc<std::collections::BTreeMap<String, String>>>;

impl Snapshot {
    pub fn backend(&self, id: BackendId) -> &Backend {
        &self.backends[id as usize]
    }

    pub fn has_endpoint(&self, addr: &SocketAddr) -> bool {
        self.endpoint_set.contains(addr)
    }

    /// Route conflicts, then backends without endpoints.
    pub fn warnings(&self) -> Vec<String> {
        let mut out: Vec<String> = self.build_warnings.to_vec();
        out.extend(self.table.warnings());
        // Backends the table uses (incremental updates may leave unused ones behind).
        let mut used: Vec<BackendId> = self.table.backend_ids().collect();
        used.sort_unstable();
        used.dedup();
        let mut problems: Vec<String> = used
            .into_iter()
            .filter_map(|id| {
                let b = self.backend(id);
                b.problem.as_ref().map(|p| format!("backend {}: {p}; requests get 503", b.name))
            })
            .collect();
        problems.sort();
        out.extend(problems);
        out.extend(self.certs.warnings.iter().cloned());
        // An Ingress with rules for several hosts repeats its annotation warnings per host.
        let mut seen = rustc_hash::FxHashSet::default();
        out.retain(|w| seen.insert(w.clone()));
        out
    }

    /// The routing table as text, one route per line, as `ringress check` prints it.
    pub fn describe(&self) -> String {
        use std::fmt::Write;
        let mut out = String::new();
        let _ =
            writeln!(out, "{:<32} {:<28} {:<8} {:<36} {:<24} ENDPOINTS", "HOST", "PATH", "TYPE", "BACKEND", "INGRESS");
        for r in self.table.routes() {
            let b = self.backend(r.backend);
            let eps: Vec<String> = b.endpoints.iter().map(|e| e.to_string()).collect();
            let eps = match (eps.is_empty(), b.service.name.is_empty() && r.gateway.is_some()) {
                (true, true) => "<none: 500>".to_string(),
                (true, false) => "<none: 503>".to_string(),
                (false, _) => eps.join(","),
            };
            let _ = writeln!(
                out,
                "{:<32} {:<28} {:<8} {:<36} {:<24} {}",
                r.host.as_deref().unwrap_or("*"),
                r.path,
                path_type_name(r.path_type),
                b.name,
                match r.origin {
                    crate::model::Origin::Ingress => r.ingress.to_string(),
                    o => format!("{} {}", o.name(), r.ingress),
                },
                eps
            );
            if let Some(g) = r.gateway.as_deref().map(|g| g.describe(|id| self.backend(id).name.clone())) {
                if !g.is_empty() {
                    let _ = writeln!(out, "{:<32} {:<28} {:<8} when: {g}", "", "", "");
                }
            }
            if let Some(t) = traffic_rules(self, r) {
                let _ = writeln!(out, "{:<32} {:<28} {:<8} traffic: {t}", "", "", "");
            }
            if let Some(c) = &r.canary {
                let cb = self.backend(c.backend);
                let _ = writeln!(
                    out,
                    "{:<32} {:<28} {:<8} {:<36} {:<24} canary: {}",
                    "",
                    "",
                    "",
                    cb.name,
                    c.ingress.to_string(),
                    canary_rules(&c.rules)
                );
            }
        }
        if let Some(r) = self.table.default_route() {
            let b = self.backend(r.backend);
            let _ = writeln!(out, "default backend: {} (from {})", b.name, r.ingress);
        }
        out
    }

    /// The routing table as JSON, for `/debug/routes`.
    pub fn to_json(&self) -> serde_json::Value {
        let route = |r: &Route| {
            let b = self.backend(r.backend);
            serde_json::json!({
                "host": r.host,
                "path": r.path,
                "pathType": path_type_name(r.path_type),
                "ingress": r.ingress.to_string(),
                "kind": r.origin.name(),
                "gateway": r.gateway.as_deref().map(|g| g.describe(|id| self.backend(id).name.clone())),
                "backend": b.name,
                "endpoints": b.endpoints.iter().map(|e| e.to_string()).collect::<Vec<_>>(),
                "problem": b.problem,
                "dnsName": b.dns_name,
                "traffic": traffic_rules(self, r),
                "canary": r.canary.as_ref().map(|c| serde_json::json!({
                    "ingress": c.ingress.to_string(),
                    "backend": self.backend(c.backend).name,
                    "rules": canary_rules(&c.rules),
                })),
            })
        };
        serde_json::json!({
            "generation": self.generation,
            "routes": self.table.routes().into_iter().map(route).collect::<Vec<_>>(),
            "defaultBackend": self.table.default_route().map(route),
            "warnings": self.warnings(),
        })
    }
}

/// A route's traffic rules in one line (affinity, hashing, balancing, limits, CORS, default
/// backend, service-upstream), or None when it has none of them.
fn traffic_rules(snap: &Snapshot, r: &Route) -> Option<String> {
    use traffic::Balance;
    let o = &r.options;
    let mut out = Vec::new();
    match &o.balance {
        Balance::Global => {}
        Balance::RoundRobin => out.push("load-balance round_robin".to_string()),
        Balance::Ewma => out.push("load-balance ewma".to_string()),
        Balance::Hash(h) if h.subset > 0 => out.push(format!("hash {} (subset {})", h.source, h.subset)),
        Balance::Hash(h) => out.push(format!("hash {}", h.source)),
        Balance::Sticky(a) => {
            let mode = if a.mode == traffic::AffinityMode::Persistent { "persistent" } else { "balanced" };
            out.push(format!("affinity cookie {} ({mode})", a.name))
        }
    }
    if let Some(l) = &o.limits {
        let mut parts = Vec::new();
        if let Some((n, b)) = l.per_second {
            parts.push(format!("{n}/s burst {b}"));
        }
        if let Some((n, b)) = l.per_minute {
            parts.push(format!("{n}/min burst {b}"));
        }
        if let Some(n) = l.connections {
            parts.push(format!("{n} in progress"));
        }
        if let Some((rate, after)) = l.rate {
            parts.push(format!("{rate} B/s after {after} B"));
        }
        out.push(format!("limits {}", parts.join(", ")));
    }
    if let Some(c) = &o.cors {
        out.push(format!("cors {}", if c.origins.is_some() { "listed origins" } else { "*" }));
    }
    if let Some(f) = r.fallback {
        out.push(format!("default-backend {}", snap.backend(f).name));
    }
    if o.service_upstream {
        out.push("service-upstream".to_string());
    }
    if let Some(rd) = o.redirects.as_deref() {
        if let Some((code, url)) = &rd.to {
            out.push(format!("redirect {code} {url}"));
        }
        if let Some(root) = &rd.app_root {
            out.push(format!("app-root {root}"));
        }
        if !rd.aliases.is_empty() {
            out.push(format!("server-alias {}", rd.aliases.join(",")));
        }
        if rd.from_to_www {
            out.push("from-to-www-redirect".to_string());
        }
    }
    (!out.is_empty()).then(|| out.join("; "))
}

/// A canary's rules in one line, in the order they are tried.
fn canary_rules(r: &annotations::CanaryRules) -> String {
    let mut out = Vec::new();
    if let Some(h) = &r.header {
        match (&r.header_value, &r.header_pattern) {
            (Some(v), _) => out.push(format!("header {h}: {v}")),
            (None, Some(p)) => out.push(format!("header {h} ~ {}", p.as_str())),
            (None, None) => out.push(format!("header {h}: always|never")),
        }
    }
    if let Some(c) = &r.cookie {
        out.push(format!("cookie {c}: always|never"));
    }
    out.push(format!("weight {}/{}", r.weight, r.weight_total));
    out.join(", ")
}

pub fn path_type_name(t: PathType) -> &'static str {
    match t {
        PathType::Exact => "Exact",
        PathType::Prefix => "Prefix",
        PathType::ImplementationSpecific => "ImplSpec",
    }
}
