//! The wire shapes of HTTPRoute and GRPCRoute rules, and their reading into [`HttpRoute`]:
//! defaults filled in as the CRDs default them, and values the CRDs' validation refuses
//! refused here with the field that holds them.

use serde::Deserialize;

use super::*;

/// A problem and the field (relative to the object) it is in.
pub type FieldError = (String, String);

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RouteWire {
    pub metadata: Meta,
    #[serde(default)]
    pub spec: RouteSpecWire,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct RouteSpecWire {
    parent_refs: Vec<ObjectRef>,
    hostnames: Vec<String>,
    rules: Vec<RuleWire>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct RuleWire {
    #[serde(default)]
    matches: Vec<MatchWire>,
    #[serde(default)]
    filters: Vec<FilterWire>,
    #[serde(default)]
    backend_refs: Vec<BackendRefWire>,
    #[serde(default)]
    timeouts: Option<TimeoutsWire>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct MatchWire {
    #[serde(default)]
    path: Option<TypedValue>,
    #[serde(default)]
    headers: Vec<NamedMatch>,
    #[serde(default)]
    query_params: Vec<NamedMatch>,
    #[serde(default)]
    method: Option<serde_yaml_ng::Value>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct TypedValue {
    #[serde(rename = "type", default)]
    type_: Option<String>,
    #[serde(default)]
    value: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct NamedMatch {
    #[serde(rename = "type", default)]
    type_: Option<String>,
    name: String,
    value: String,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct GrpcMethodWire {
    #[serde(rename = "type", default)]
    type_: Option<String>,
    #[serde(default)]
    service: Option<String>,
    #[serde(default)]
    method: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct FilterWire {
    #[serde(rename = "type")]
    type_: String,
    #[serde(default)]
    request_header_modifier: Option<HeaderModifier>,
    #[serde(default)]
    response_header_modifier: Option<HeaderModifier>,
    #[serde(default)]
    request_redirect: Option<RedirectWire>,
    #[serde(default)]
    url_rewrite: Option<RewriteWire>,
    #[serde(default)]
    request_mirror: Option<MirrorWire>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct MirrorWire {
    backend_ref: ObjectRef,
    #[serde(default)]
    percent: Option<u32>,
    #[serde(default)]
    fraction: Option<FractionWire>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct FractionWire {
    numerator: u32,
    #[serde(default)]
    denominator: Option<u32>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct PathModifierWire {
    #[serde(rename = "type")]
    type_: String,
    #[serde(default)]
    replace_full_path: Option<String>,
    #[serde(default)]
    replace_prefix_match: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct RedirectWire {
    #[serde(default)]
    scheme: Option<String>,
    #[serde(default)]
    hostname: Option<String>,
    #[serde(default)]
    path: Option<PathModifierWire>,
    #[serde(default)]
    port: Option<u16>,
    #[serde(default)]
    status_code: Option<u16>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct RewriteWire {
    #[serde(default)]
    hostname: Option<String>,
    #[serde(default)]
    path: Option<PathModifierWire>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct BackendRefWire {
    #[serde(flatten)]
    target: ObjectRef,
    #[serde(default)]
    weight: Option<u32>,
    #[serde(default)]
    filters: Vec<FilterWire>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct TimeoutsWire {
    #[serde(default)]
    request: Option<String>,
    #[serde(default)]
    backend_request: Option<String>,
}

fn err(field: impl Into<String>, message: impl Into<String>) -> FieldError {
    (field.into(), message.into())
}

fn match_type(t: Option<&str>, default: MatchType, field: &str, prefix_ok: bool) -> Result<MatchType, FieldError> {
    match t {
        None => Ok(default),
        Some("Exact") => Ok(MatchType::Exact),
        Some("PathPrefix") if prefix_ok => Ok(MatchType::Prefix),
        Some("RegularExpression") => Ok(MatchType::RegularExpression),
        Some(other) => Err(err(field, format!("unsupported match type {other:?}"))),
    }
}

/// A header name as RFC 9110 allows it (a token), lower-cased.
fn header_name(name: &str, field: &str) -> Result<String, FieldError> {
    let token = |b: u8| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b);
    if name.is_empty() || !name.bytes().all(token) {
        return Err(err(field, format!("{name:?} is not a header name")));
    }
    Ok(name.to_ascii_lowercase())
}

fn value_matches(list: Vec<NamedMatch>, field: &str, headers: bool) -> Result<Vec<ValueMatch>, FieldError> {
    let mut out: Vec<ValueMatch> = Vec::with_capacity(list.len());
    for (i, m) in list.into_iter().enumerate() {
        let f = format!("{field}[{i}]");
        let type_ = match_type(m.type_.as_deref(), MatchType::Exact, &format!("{f}.type"), false)?;
        let name = if headers { header_name(&m.name, &format!("{f}.name"))? } else { m.name };
        if type_ == MatchType::RegularExpression {
            regex::Regex::new(&m.value).map_err(|e| err(format!("{f}.value"), e.to_string()))?;
        }
        // The specification: a name listed twice is matched by its first entry only.
        let dup = out.iter().any(|o| o.name == name);
        if !dup {
            out.push(ValueMatch { type_, name, value: m.value });
        }
    }
    Ok(out)
}

const METHODS: [&str; 9] = ["GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH"];

fn http_match(m: MatchWire, f: &str) -> Result<HttpMatch, FieldError> {
    let path = match m.path {
        None => PathMatch { type_: MatchType::Prefix, value: "/".into() },
        Some(p) => {
            let type_ = match_type(p.type_.as_deref(), MatchType::Prefix, &format!("{f}.path.type"), true)?;
            let value = p.value.unwrap_or_else(|| "/".into());
            if type_ != MatchType::RegularExpression && !value.starts_with('/') {
                return Err(err(format!("{f}.path.value"), "must be an absolute path (start with /)"));
            }
            if type_ != MatchType::RegularExpression
                && (value.contains("//") || value.contains("/./") || value.contains("/../"))
            {
                return Err(err(format!("{f}.path.value"), "must not contain //, /./ or /../"));
            }
            if type_ == MatchType::RegularExpression {
                regex::Regex::new(&value).map_err(|e| err(format!("{f}.path.value"), e.to_string()))?;
            }
            PathMatch { type_, value }
        }
    };
    let method = match m.method {
        None => None,
        Some(serde_yaml_ng::Value::String(s)) if METHODS.contains(&s.as_str()) => Some(s),
        Some(other) => return Err(err(format!("{f}.method"), format!("{other:?} is not an HTTP method"))),
    };
    Ok(HttpMatch {
        path,
        headers: value_matches(m.headers, &format!("{f}.headers"), true)?,
        query: value_matches(m.query_params, &format!("{f}.queryParams"), false)?,
        method,
    })
}

/// A GRPCRoute match in path terms: `/service/method` exactly, `/service/` as a prefix, or an
/// expression over both.
fn grpc_match(w: MatchWire, f: &str) -> Result<HttpMatch, FieldError> {
    let mut out =
        HttpMatch { headers: value_matches(w.headers, &format!("{f}.headers"), true)?, ..HttpMatch::default() };
    let method: Option<GrpcMethodWire> = match w.method {
        None => None,
        Some(v) => Some(serde_yaml_ng::from_value(v).map_err(|e| err(format!("{f}.method"), e.to_string()))?),
    };
    if let Some(gm) = method {
        let type_ = match_type(gm.type_.as_deref(), MatchType::Exact, &format!("{f}.method.type"), false)?;
        let (s, m) = (gm.service.filter(|s| !s.is_empty()), gm.method.filter(|s| !s.is_empty()));
        if s.is_none() && m.is_none() {
            return Err(err(format!("{f}.method"), "one of service and method must be set"));
        }
        let name_ok = |v: &str| v.chars().all(|c| c.is_ascii_alphanumeric() || "._".contains(c));
        out.path = match type_ {
            MatchType::Exact => {
                for (v, name) in [(&s, "service"), (&m, "method")] {
                    if v.as_deref().is_some_and(|v| !name_ok(v)) {
                        return Err(err(
                            format!("{f}.method.{name}"),
                            "must be a gRPC name (letters, digits, . and _)",
                        ));
                    }
                }
                match (&s, &m) {
                    (Some(s), Some(m)) => PathMatch { type_: MatchType::Exact, value: format!("/{s}/{m}") },
                    (Some(s), None) => PathMatch { type_: MatchType::Prefix, value: format!("/{s}") },
                    (None, Some(m)) => {
                        PathMatch { type_: MatchType::RegularExpression, value: format!("/[^/]+/{}", regex::escape(m)) }
                    }
                    (None, None) => unreachable!("checked above"),
                }
            }
            _ => {
                let part = |v: &Option<String>, name: &str| -> Result<String, FieldError> {
                    match v {
                        Some(v) => {
                            regex::Regex::new(v).map_err(|e| err(format!("{f}.method.{name}"), e.to_string()))?;
                            Ok(format!("(?:{v})"))
                        }
                        None => Ok("[^/]+".into()),
                    }
                };
                let value = format!("/{}/{}", part(&s, "service")?, part(&m, "method")?);
                PathMatch { type_: MatchType::RegularExpression, value }
            }
        };
    }
    Ok(out)
}

fn path_modifier(p: PathModifierWire, f: &str) -> Result<PathModifier, FieldError> {
    let check = |v: String, field: &str| {
        // What goes into a Location or a request line: no space, control character or
        // anything that would end it (the CRD's pattern allows none of them either).
        if !v.starts_with('/') {
            Err(err(format!("{f}.{field}"), "must be an absolute path (start with /)"))
        } else if v.bytes().any(|b| b <= b' ' || b == 0x7f || b == b'#' || b == b'?') {
            Err(err(format!("{f}.{field}"), "must be a path: no spaces, control characters, ? or #"))
        } else {
            Ok(v)
        }
    };
    match p.type_.as_str() {
        "ReplaceFullPath" => Ok(PathModifier::Full(check(
            p.replace_full_path.ok_or_else(|| err(format!("{f}.replaceFullPath"), "required for ReplaceFullPath"))?,
            "replaceFullPath",
        )?)),
        "ReplacePrefixMatch" => Ok(PathModifier::Prefix(check(
            p.replace_prefix_match
                .ok_or_else(|| err(format!("{f}.replacePrefixMatch"), "required for ReplacePrefixMatch"))?,
            "replacePrefixMatch",
        )?)),
        other => Err(err(format!("{f}.type"), format!("unsupported path modifier {other:?}"))),
    }
}

/// A header modifier whose names are field names and whose values have no CR, LF or NUL.
fn header_modifier(h: HeaderModifier, f: &str) -> Result<HeaderModifier, FieldError> {
    for (list, what) in [(&h.set, "set"), (&h.add, "add")] {
        for (i, nv) in list.iter().enumerate() {
            header_name(&nv.name, &format!("{f}.{what}[{i}].name"))?;
            if nv.value.bytes().any(|b| b == b'\r' || b == b'\n' || b == 0) {
                return Err(err(format!("{f}.{what}[{i}].value"), "must not contain CR, LF or NUL"));
            }
        }
    }
    for (i, n) in h.remove.iter().enumerate() {
        header_name(n, &format!("{f}.remove[{i}]"))?;
    }
    Ok(h)
}

/// A host name a filter writes into a Location or a Host field: a name, never a wildcard.
fn exact_hostname(h: Option<String>, field: &str) -> Result<Option<String>, FieldError> {
    match h {
        None => Ok(None),
        Some(h) if h.starts_with('*') => Err(err(field, format!("{h:?} is a wildcard; a host name is needed"))),
        Some(h) => gateway_hostname(&h).map(Some).map_err(|m| err(field, m)),
    }
}

fn read_filters(list: Vec<FilterWire>, f: &str, grpc: bool) -> Result<Vec<Filter>, FieldError> {
    let mut out = Vec::with_capacity(list.len());
    for (i, w) in list.into_iter().enumerate() {
        let f = format!("{f}[{i}]");
        let missing = |name: &str| err(format!("{f}.{name}"), format!("required for type {}", w.type_));
        out.push(match w.type_.as_str() {
            "RequestHeaderModifier" => {
                let h = w.request_header_modifier.ok_or_else(|| missing("requestHeaderModifier"))?;
                Filter::RequestHeaders(header_modifier(h, &format!("{f}.requestHeaderModifier"))?)
            }
            "ResponseHeaderModifier" => {
                let h = w.response_header_modifier.ok_or_else(|| missing("responseHeaderModifier"))?;
                Filter::ResponseHeaders(header_modifier(h, &format!("{f}.responseHeaderModifier"))?)
            }
            "RequestRedirect" if !grpc => {
                let r = w.request_redirect.ok_or_else(|| missing("requestRedirect"))?;
                if let Some(s) = r.scheme.as_deref().filter(|s| !["http", "https"].contains(s)) {
                    return Err(err(format!("{f}.requestRedirect.scheme"), format!("{s:?} is not http or https")));
                }
                let status = r.status_code.unwrap_or(302);
                if ![301, 302, 303, 307, 308].contains(&status) {
                    return Err(err(
                        format!("{f}.requestRedirect.statusCode"),
                        format!("{status} is not a redirect status"),
                    ));
                }
                let path = r.path.map(|p| path_modifier(p, &format!("{f}.requestRedirect.path"))).transpose()?;
                let hostname = exact_hostname(r.hostname, &format!("{f}.requestRedirect.hostname"))?;
                Filter::Redirect(Redirect { scheme: r.scheme, hostname, path, port: r.port, status })
            }
            "URLRewrite" if !grpc => {
                let r = w.url_rewrite.ok_or_else(|| missing("urlRewrite"))?;
                let path = r.path.map(|p| path_modifier(p, &format!("{f}.urlRewrite.path"))).transpose()?;
                let hostname = exact_hostname(r.hostname, &format!("{f}.urlRewrite.hostname"))?;
                Filter::Rewrite(Rewrite { hostname, path })
            }
            "RequestMirror" => {
                let m = w.request_mirror.ok_or_else(|| missing("requestMirror"))?;
                let percent = match (m.percent, m.fraction) {
                    (Some(_), Some(_)) => {
                        return Err(err(format!("{f}.requestMirror"), "percent and fraction cannot both be set"))
                    }
                    (Some(p), None) if p <= 100 => p,
                    (Some(p), None) => {
                        return Err(err(format!("{f}.requestMirror.percent"), format!("{p} is over 100")))
                    }
                    (None, Some(fr)) => {
                        let d = fr.denominator.unwrap_or(100);
                        if d == 0 || fr.numerator > d {
                            return Err(err(
                                format!("{f}.requestMirror.fraction"),
                                "numerator must be at most denominator, which must not be 0",
                            ));
                        }
                        // In hundredths of a percent, rounded down.
                        ((u64::from(fr.numerator) * 100) / u64::from(d)) as u32
                    }
                    (None, None) => 100,
                };
                Filter::Mirror { target: m.backend_ref, percent }
            }
            other => Filter::Unsupported(other.to_string()),
        });
    }
    let kinds: Vec<std::mem::Discriminant<Filter>> =
        out.iter().filter(|x| !matches!(x, Filter::Unsupported(_))).map(std::mem::discriminant).collect();
    if (1..kinds.len()).any(|i| kinds[..i].contains(&kinds[i])) {
        return Err(err(f, "a filter type other than RequestMirror and ExtensionRef may appear once per rule"));
    }
    if out.iter().any(|x| matches!(x, Filter::Redirect(_))) && out.iter().any(|x| matches!(x, Filter::Rewrite(_))) {
        return Err(err(f, "RequestRedirect and URLRewrite cannot both be set"));
    }
    Ok(out)
}

/// Reads an HTTPRoute, GRPCRoute, TLSRoute or TCPRoute (the last two: backends only).
pub fn route(w: RouteWire, kind: RouteKind) -> Result<HttpRoute, FieldError> {
    let grpc = kind == RouteKind::Grpc;
    if w.metadata.name.is_empty() {
        return Err(err("metadata.name", "missing"));
    }
    let mut rules = Vec::with_capacity(w.spec.rules.len());
    for (i, r) in w.spec.rules.into_iter().enumerate() {
        let f = format!("spec.rules[{i}]");
        let mut matches = Vec::with_capacity(r.matches.len().max(1));
        for (j, m) in r.matches.into_iter().enumerate() {
            let f = format!("{f}.matches[{j}]");
            matches.push(if grpc { grpc_match(m, &f)? } else { http_match(m, &f)? });
        }
        if matches.is_empty() {
            matches.push(HttpMatch::default());
        }
        let filters = read_filters(r.filters, &format!("{f}.filters"), grpc)?;
        let mut backend_refs = Vec::with_capacity(r.backend_refs.len());
        for (j, b) in r.backend_refs.into_iter().enumerate() {
            let bf = format!("{f}.backendRefs[{j}]");
            let weight = b.weight.unwrap_or(1);
            if weight > 1_000_000 {
                return Err(err(format!("{bf}.weight"), "must be at most 1000000"));
            }
            let filters = read_filters(b.filters, &format!("{bf}.filters"), grpc)?;
            backend_refs.push(BackendRef { target: b.target, weight, filters });
        }
        let mut timeouts = Timeouts::default();
        if let Some(t) = r.timeouts {
            if let Some(v) = t.request {
                timeouts.request_ms = duration_ms(&v).map_err(|e| err(format!("{f}.timeouts.request"), e))?;
            }
            if let Some(v) = t.backend_request {
                timeouts.backend_request_ms =
                    duration_ms(&v).map_err(|e| err(format!("{f}.timeouts.backendRequest"), e))?;
            }
            if timeouts.request_ms != 0 && timeouts.backend_request_ms > timeouts.request_ms {
                return Err(err(format!("{f}.timeouts"), "backendRequest must not be longer than request"));
            }
        }
        rules.push(HttpRule { matches, filters, backend_refs, timeouts });
    }
    let mut hostnames = Vec::with_capacity(w.spec.hostnames.len());
    for (i, h) in w.spec.hostnames.into_iter().enumerate() {
        hostnames.push(gateway_hostname(&h).map_err(|m| err(format!("spec.hostnames[{i}]"), m))?);
    }
    Ok(HttpRoute { kind, metadata: w.metadata, parent_refs: w.spec.parent_refs, hostnames, rules })
}

/// A hostname as Gateway API writes it: a DNS name, optionally `*.` first, lower-cased; never
/// an IP address.
pub fn gateway_hostname(h: &str) -> Result<String, String> {
    let name = h.strip_prefix("*.").unwrap_or(h);
    let label_ok = |l: &str| {
        !l.is_empty()
            && l.len() <= 63
            && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
            && !l.starts_with('-')
    };
    if h.len() > 253 || name.is_empty() || !name.split('.').all(label_ok) {
        return Err(format!("{h:?} is not a host name"));
    }
    if name.parse::<std::net::IpAddr>().is_ok() || name.split('.').all(|l| l.bytes().all(|b| b.is_ascii_digit())) {
        return Err(format!("{h:?} is an address; a host name is needed"));
    }
    Ok(h.to_ascii_lowercase())
}
