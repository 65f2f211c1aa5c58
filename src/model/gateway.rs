//! Gateway API objects (`gateway.networking.k8s.io`, Standard channel): GatewayClass, Gateway,
//! HTTPRoute, GRPCRoute and ReferenceGrant, read from their wire shapes with serde (the field
//! names are the specification's) and checked where the CRDs' own validation would refuse a
//! value, so a manifest file gets the same answer as the API server would give.

mod wire;

use serde::Deserialize;

use super::ObjectKey;
pub use wire::{gateway_hostname, route, FieldError, RouteWire};

pub const GROUP: &str = "gateway.networking.k8s.io";

/// The parts of `metadata` the Gateway API reads.
#[derive(Clone, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(default, rename_all = "camelCase")]
pub struct Meta {
    pub name: String,
    pub namespace: Option<String>,
    pub generation: i64,
    pub creation_timestamp: Option<String>,
    pub uid: Option<String>,
    pub labels: std::collections::BTreeMap<String, String>,
}

impl Meta {
    pub fn key(&self) -> ObjectKey {
        ObjectKey { namespace: self.namespace.clone().unwrap_or_else(|| "default".into()), name: self.name.clone() }
    }
}

#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct GatewayClass {
    pub metadata: Meta,
    pub spec: GatewayClassSpec,
}

#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct GatewayClassSpec {
    pub controller_name: String,
}

#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct Gateway {
    pub metadata: Meta,
    pub spec: GatewaySpec,
}

#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct GatewaySpec {
    pub gateway_class_name: String,
    #[serde(default)]
    pub listeners: Vec<Listener>,
}

#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct Listener {
    pub name: String,
    pub hostname: Option<String>,
    pub port: u16,
    pub protocol: String,
    pub tls: Option<ListenerTls>,
    pub allowed_routes: Option<AllowedRoutes>,
}

#[derive(Clone, Debug, Deserialize, PartialEq, Eq, Default)]
#[serde(default, rename_all = "camelCase")]
pub struct ListenerTls {
    pub mode: Option<String>,
    pub certificate_refs: Vec<ObjectRef>,
}

/// A reference to another object: `certificateRefs`, `parentRefs`, `backendRefs`.
#[derive(Clone, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct ObjectRef {
    pub group: Option<String>,
    pub kind: Option<String>,
    pub name: String,
    pub namespace: Option<String>,
    pub section_name: Option<String>,
    pub port: Option<u16>,
}

impl ObjectRef {
    /// The group, `""` for the core group (how the specification spells it).
    pub fn group_or(&self, default: &'static str) -> &str {
        self.group.as_deref().unwrap_or(default)
    }

    pub fn kind_or<'a>(&'a self, default: &'a str) -> &'a str {
        self.kind.as_deref().unwrap_or(default)
    }

    /// The namespace it names, else `own`.
    pub fn namespace_or<'a>(&'a self, own: &'a str) -> &'a str {
        self.namespace.as_deref().unwrap_or(own)
    }
}

#[derive(Clone, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(default, rename_all = "camelCase")]
pub struct AllowedRoutes {
    pub namespaces: Option<RouteNamespaces>,
    pub kinds: Vec<RouteGroupKind>,
}

#[derive(Clone, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(default, rename_all = "camelCase")]
pub struct RouteNamespaces {
    pub from: Option<String>,
    pub selector: Option<LabelSelector>,
}

#[derive(Clone, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(default, rename_all = "camelCase")]
pub struct LabelSelector {
    pub match_labels: std::collections::BTreeMap<String, String>,
    pub match_expressions: Vec<LabelExpression>,
}

#[derive(Clone, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct LabelExpression {
    pub key: String,
    pub operator: String,
    #[serde(default)]
    pub values: Vec<String>,
}

impl LabelSelector {
    /// Whether labels satisfy the selector (`In`, `NotIn`, `Exists`, `DoesNotExist`).
    pub fn matches(&self, labels: &std::collections::BTreeMap<String, String>) -> bool {
        self.match_labels.iter().all(|(k, v)| labels.get(k) == Some(v))
            && self.match_expressions.iter().all(|e| {
                let have = labels.get(&e.key);
                match e.operator.as_str() {
                    "In" => have.is_some_and(|v| e.values.contains(v)),
                    "NotIn" => !have.is_some_and(|v| e.values.contains(v)),
                    "Exists" => have.is_some(),
                    "DoesNotExist" => have.is_none(),
                    _ => false,
                }
            })
    }
}

#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct RouteGroupKind {
    pub group: Option<String>,
    pub kind: String,
}

/// Which route kind an [`HttpRoute`] was read from: GRPCRoutes are read into the same shape
/// (their matches become paths of the `/service/method` form).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum RouteKind {
    Http,
    Grpc,
    /// TLSRoute: TLS connections passed through by SNI.
    Tls,
    /// TCPRoute: a listener's port forwarded.
    Tcp,
}

impl RouteKind {
    pub fn name(self) -> &'static str {
        match self {
            RouteKind::Http => "HTTPRoute",
            RouteKind::Grpc => "GRPCRoute",
            RouteKind::Tls => "TLSRoute",
            RouteKind::Tcp => "TCPRoute",
        }
    }

    /// The resource's plural (its REST path).
    pub fn plural(self) -> &'static str {
        match self {
            RouteKind::Http => "httproutes",
            RouteKind::Grpc => "grpcroutes",
            RouteKind::Tls => "tlsroutes",
            RouteKind::Tcp => "tcproutes",
        }
    }

    pub fn of(kind: &str) -> Option<RouteKind> {
        [RouteKind::Http, RouteKind::Grpc, RouteKind::Tls, RouteKind::Tcp].into_iter().find(|k| k.name() == kind)
    }
}

/// A TCPRoute in forwarding terms: a Gateway listener's port to a Service port.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct L4Route {
    pub port: u16,
    pub service: ObjectKey,
    pub service_port: u16,
    /// Weighted backends (Service, port; `None`: a reference that does not resolve), when
    /// there is more than one; empty: every connection to `service`.
    pub shares: Vec<(Option<(ObjectKey, u16)>, u32)>,
    /// `TCPRoute namespace/name`, for conflicts and logs.
    pub source: String,
    /// The route's creationTimestamp: the older claimant of a port keeps it.
    pub created: Option<String>,
}

/// An HTTPRoute, or a GRPCRoute in HTTPRoute terms.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HttpRoute {
    pub kind: RouteKind,
    pub metadata: Meta,
    pub parent_refs: Vec<ObjectRef>,
    pub hostnames: Vec<String>,
    pub rules: Vec<HttpRule>,
}

impl HttpRoute {
    pub fn key(&self) -> ObjectKey {
        self.metadata.key()
    }
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct HttpRule {
    pub matches: Vec<HttpMatch>,
    pub filters: Vec<Filter>,
    pub backend_refs: Vec<BackendRef>,
    pub timeouts: Timeouts,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum MatchType {
    Exact,
    Prefix,
    RegularExpression,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PathMatch {
    pub type_: MatchType,
    pub value: String,
}

/// A header or query-parameter match: `Exact` or `RegularExpression` (never `Prefix`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ValueMatch {
    pub type_: MatchType,
    /// Header names lower case; query parameter names as written (they are case-sensitive).
    pub name: String,
    pub value: String,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HttpMatch {
    pub path: PathMatch,
    pub headers: Vec<ValueMatch>,
    pub query: Vec<ValueMatch>,
    pub method: Option<String>,
}

impl Default for HttpMatch {
    fn default() -> Self {
        HttpMatch {
            path: PathMatch { type_: MatchType::Prefix, value: "/".into() },
            headers: Vec::new(),
            query: Vec::new(),
            method: None,
        }
    }
}

/// `set`/`add`/`remove` of a header modifier filter (names as written; compared without case).
#[derive(Clone, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(default, rename_all = "camelCase")]
pub struct HeaderModifier {
    pub set: Vec<NameValue>,
    pub add: Vec<NameValue>,
    pub remove: Vec<String>,
}

#[derive(Clone, Debug, Default, Deserialize, PartialEq, Eq)]
pub struct NameValue {
    pub name: String,
    pub value: String,
}

/// `ReplaceFullPath` or `ReplacePrefixMatch` of a redirect or rewrite.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PathModifier {
    Full(String),
    Prefix(String),
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Redirect {
    pub scheme: Option<String>,
    pub hostname: Option<String>,
    pub path: Option<PathModifier>,
    pub port: Option<u16>,
    pub status: u16,
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Rewrite {
    pub hostname: Option<String>,
    pub path: Option<PathModifier>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Filter {
    RequestHeaders(HeaderModifier),
    ResponseHeaders(HeaderModifier),
    Redirect(Redirect),
    Rewrite(Rewrite),
    /// `RequestMirror`: a copy of each request (or of `percent` of them) to this backend, its
    /// answer dropped.
    Mirror {
        target: ObjectRef,
        percent: u32,
    },
    /// `ExtensionRef`, `CORS` and anything else: named, not applied (the rule is
    /// refused, as the specification asks of filters an implementation does not support).
    Unsupported(String),
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BackendRef {
    pub target: ObjectRef,
    pub weight: u32,
    pub filters: Vec<Filter>,
}

/// `timeouts.request` and `timeouts.backendRequest`, in milliseconds (0: none).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Timeouts {
    pub request_ms: u64,
    pub backend_request_ms: u64,
}

#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct ReferenceGrant {
    pub metadata: Meta,
    pub spec: ReferenceGrantSpec,
}

#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct ReferenceGrantSpec {
    pub from: Vec<GrantFrom>,
    pub to: Vec<GrantTo>,
}

#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct GrantFrom {
    #[serde(default)]
    pub group: String,
    pub kind: String,
    pub namespace: String,
}

#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct GrantTo {
    #[serde(default)]
    pub group: String,
    pub kind: String,
    pub name: Option<String>,
}

impl ReferenceGrant {
    /// Whether this grant (in the target's namespace) lets `from` (group, kind, namespace)
    /// refer to the object `to` (group, kind, name).
    pub fn permits(&self, from: (&str, &str, &str), to: (&str, &str, &str)) -> bool {
        self.spec.from.iter().any(|f| (f.group.as_str(), f.kind.as_str(), f.namespace.as_str()) == from)
            && self
                .spec
                .to
                .iter()
                .any(|t| t.group == to.0 && t.kind == to.1 && t.name.as_deref().is_none_or(|n| n == to.2))
    }
}

/// A Gateway API route's rule, carried by the [`super::IngressPath`] of one of its matches.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GatewayPath {
    pub kind: RouteKind,
    /// The match (its path is the IngressPath's, except a RegularExpression, whose
    /// expression is here).
    pub matched: HttpMatch,
    pub filters: Vec<Filter>,
    /// The backends, weighted; `None`: a reference that does not resolve (its share of the
    /// requests gets 500, as the specification asks).
    pub backends: Vec<(Option<(String, super::ServiceBackend)>, u32)>,
    /// `RequestMirror` backends that resolve, with the percentage of requests mirrored.
    pub mirrors: Vec<((String, super::ServiceBackend), u32)>,
    pub timeouts: Timeouts,
    /// The listeners it is attached to, by port and whether they are over TLS (HTTPS, TLS),
    /// sorted.
    pub listeners: Vec<(u16, bool)>,
}

/// Checks a Gateway as its CRD does: unique listener names, host names that are names.
pub fn check_gateway(g: &mut Gateway) -> Result<(), FieldError> {
    if g.metadata.name.is_empty() {
        return Err(("metadata.name".into(), "missing".into()));
    }
    for (i, l) in g.spec.listeners.iter_mut().enumerate() {
        if l.name.is_empty() {
            return Err((format!("spec.listeners[{i}].name"), "missing".into()));
        }
        if l.port == 0 {
            return Err((format!("spec.listeners[{i}].port"), "must be 1-65535".into()));
        }
        if let Some(h) = &l.hostname {
            l.hostname = Some(gateway_hostname(h).map_err(|m| (format!("spec.listeners[{i}].hostname"), m))?);
        }
    }
    let names: Vec<&str> = g.spec.listeners.iter().map(|l| l.name.as_str()).collect();
    if let Some(i) = (1..names.len()).find(|&i| names[..i].contains(&names[i])) {
        return Err((format!("spec.listeners[{i}].name"), format!("{:?} is used by another listener", names[i])));
    }
    Ok(())
}

/// Parses a Go duration as the Gateway API allows it (`1h`, `10s`, `500ms`, `1m30s`; 0 is
/// none), in milliseconds.
pub fn duration_ms(s: &str) -> Result<u64, String> {
    let bad = || format!("{s:?} is not a duration (e.g. 10s, 500ms, 1m30s)");
    if s == "0" {
        return Ok(0);
    }
    let (mut total, mut rest) = (0u64, s);
    if rest.is_empty() {
        return Err(bad());
    }
    while !rest.is_empty() {
        let digits = rest.find(|c: char| !c.is_ascii_digit()).ok_or_else(bad)?;
        if digits == 0 {
            return Err(bad());
        }
        let n: u64 = rest[..digits].parse().map_err(|_| bad())?;
        rest = &rest[digits..];
        let (unit, len) = if rest.starts_with("ms") {
            (1, 2)
        } else if rest.starts_with('h') {
            (3_600_000, 1)
        } else if rest.starts_with('m') {
            (60_000, 1)
        } else if rest.starts_with('s') {
            (1_000, 1)
        } else {
            return Err(bad());
        };
        total = total.saturating_add(n.saturating_mul(unit));
        rest = &rest[len..];
    }
    Ok(total)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_as_the_specification_writes_them() {
        assert_eq!(duration_ms("10s"), Ok(10_000));
        assert_eq!(duration_ms("1m30s"), Ok(90_000));
        assert_eq!(duration_ms("500ms"), Ok(500));
        assert_eq!(duration_ms("1h"), Ok(3_600_000));
        assert_eq!(duration_ms("0"), Ok(0));
        for bad in ["", "10", "s", "1.5s", "10x", "-1s"] {
            assert!(duration_ms(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn grants_name_the_referrer_and_the_target() {
        let g = ReferenceGrant {
            metadata: Meta::default(),
            spec: ReferenceGrantSpec {
                from: vec![GrantFrom { group: GROUP.into(), kind: "HTTPRoute".into(), namespace: "web".into() }],
                to: vec![GrantTo { group: "".into(), kind: "Service".into(), name: Some("db".into()) }],
            },
        };
        assert!(g.permits((GROUP, "HTTPRoute", "web"), ("", "Service", "db")));
        assert!(!g.permits((GROUP, "HTTPRoute", "other"), ("", "Service", "db")), "another namespace");
        assert!(!g.permits((GROUP, "HTTPRoute", "web"), ("", "Service", "cache")), "another name");
        assert!(!g.permits((GROUP, "GRPCRoute", "web"), ("", "Service", "db")), "another kind");
    }
}
