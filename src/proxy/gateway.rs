//! Gateway API filters that need the request: a RequestRedirect's Location and a
//! RequestHeaderModifier's fields for the upstream.

use super::external::Granted;
use super::pipeline::{Fields, Request};
use crate::model::gateway::{HeaderModifier, Redirect};
use crate::snapshot::gateway::{modified_path, GatewayRule};

/// The Location of a RequestRedirect: each part the filter does not set is the request's
/// (the scheme's well-known port when the filter changes the scheme), the default port of the
/// scheme left out, the query kept.
pub(crate) fn location((g, r): (&GatewayRule, &Redirect), req: &Request<'_>, host: &str, path: &str) -> Vec<u8> {
    let scheme = r.scheme.as_deref().unwrap_or(if req.entry.tls { "https" } else { "http" });
    let hostname = r.hostname.as_deref().unwrap_or(host);
    let request_port = || std::str::from_utf8(req.port_part().get(1..)?).ok()?.parse::<u16>().ok();
    let port = match (r.port, &r.scheme) {
        (Some(p), _) => Some(p),
        (None, Some(_)) => None,
        (None, None) => request_port(),
    };
    let port = port.filter(|&p| !matches!((scheme, p), ("http", 80) | ("https", 443)));
    let path = match &r.path {
        Some(m) => modified_path(m, path, g.prefix.as_deref()),
        None => path.to_string(),
    };
    let query = crate::snapshot::gateway::Facts::query(req);
    let mut out = format!("{scheme}://{hostname}").into_bytes();
    if let Some(p) = port {
        out.extend_from_slice(format!(":{p}").as_bytes());
    }
    out.extend_from_slice(path.as_bytes());
    out.extend_from_slice(query);
    out
}

/// A RequestHeaderModifier as fields in place of the client's: `set` replaces, `add` appends
/// to the client's value (`a,b`), `remove` drops.
pub(crate) fn request_fields(h: &HeaderModifier, fields: &dyn Fields) -> Granted {
    let mut names: Vec<String> = Vec::new();
    let mut values: Vec<(String, Vec<u8>)> = Vec::new();
    for nv in &h.set {
        names.push(nv.name.to_ascii_lowercase());
        values.push((nv.name.clone(), nv.value.as_bytes().to_vec()));
    }
    for nv in &h.add {
        let lower = nv.name.to_ascii_lowercase();
        let value = match fields.field(&lower) {
            Some(have) => [have, b",", nv.value.as_bytes()].concat(),
            None => nv.value.as_bytes().to_vec(),
        };
        names.push(lower);
        values.push((nv.name.clone(), value));
    }
    names.extend(h.remove.iter().map(|n| n.to_ascii_lowercase()));
    let names: Vec<&str> = names.iter().map(String::as_str).collect();
    Granted::fields(&names, values)
}
