//! The routes of a Gateway API rule's path: its backends resolved, its conditions and filters
//! compiled, and the per-rule options the pipeline reads (response header changes, the
//! rewritten host, gRPC backends, timeouts).

use std::sync::Arc;
use std::time::Duration;

use super::super::annotations::{BackendProtocol, PathRegex, RouteOptions};
use super::super::gateway::GatewayRule;
use super::super::snippet::Snippet;
use super::{Builder, Route};
use crate::model::gateway::{Filter, GatewayPath, HeaderModifier, RouteKind};
use crate::model::{Ingress, IngressPath, ObjectKey, PathType};

/// How specific a route is beyond its path: routes of one path are tried in this order,
/// highest first; an Ingress's route has no conditions and comes last.
pub(super) fn rank(route: &Route) -> (bool, usize, usize) {
    route.gateway.as_ref().map_or((false, 0, 0), |g| g.rank())
}

/// A header modifier without the fields that frame the message (the proxy writes those
/// itself), and a warning for each dropped. Names and values were checked when the route was
/// read (`model::gateway`: field names, no CR, LF or NUL).
fn clean(h: &HeaderModifier, what: &str, route: &ObjectKey, warnings: &mut Vec<String>) -> HeaderModifier {
    let mut keep = |nv: &crate::model::gateway::NameValue| {
        let framing = super::super::edge::FRAMING_FIELDS.iter().any(|f| f.eq_ignore_ascii_case(&nv.name));
        if framing {
            warnings.push(format!("{route}: {what} {}: not applied (a field that frames the message)", nv.name));
        }
        !framing
    };
    HeaderModifier {
        set: h.set.iter().filter(|nv| keep(nv)).cloned().collect(),
        add: h.add.iter().filter(|nv| keep(nv)).cloned().collect(),
        remove: h.remove.clone(),
    }
}

/// The route of one match of a Gateway API rule.
pub(super) fn route<'a>(
    b: &mut Builder<'a>,
    ing: &'a Ingress,
    (ingress, host): (&Arc<ObjectKey>, Option<&String>),
    (p, g): (&'a IngressPath, &'a GatewayPath),
    options: &Arc<RouteOptions>,
    warnings: &mut Vec<String>,
) -> Route {
    let ids: Vec<Option<super::BackendId>> =
        g.backends.iter().map(|(r, _)| r.as_ref().map(|(ns, sb)| b.backend_id(ns, sb))).collect();
    let backend = match ids.iter().flatten().next() {
        Some(&id) => id,
        None => b.unresolved(),
    };
    let mut o = RouteOptions::clone(options);
    // Gateway API routes are served on the listeners they attach to, as they are: none of
    // the ConfigMap's redirects to HTTPS.
    o.ssl_redirect = Some(false);
    o.force_ssl_redirect = Some(false);
    match g.kind {
        RouteKind::Grpc => o.protocol = BackendProtocol::Grpc,
        // TLSRoute: connections naming the host are passed through untouched.
        RouteKind::Tls => o.ssl_passthrough = Some(None),
        RouteKind::Http | RouteKind::Tcp => {}
    }
    for f in &g.filters {
        match f {
            Filter::ResponseHeaders(h) => {
                let h = clean(h, "ResponseHeaderModifier", &ing.key, warnings);
                let field = |nv: &crate::model::gateway::NameValue| (nv.name.clone(), nv.value.as_bytes().to_vec());
                o.snippet = Some(Arc::new(Snippet {
                    set_response: h.set.iter().map(field).collect(),
                    add_always: h.add.iter().map(field).collect(),
                    clear_response: h.remove.iter().map(|n| n.to_ascii_lowercase()).collect(),
                    ..Snippet::default()
                }));
            }
            Filter::Rewrite(r) => o.upstream_vhost = r.hostname.clone(),
            Filter::RequestHeaders(_) | Filter::Redirect(_) | Filter::Mirror { .. } | Filter::Unsupported(_) => {}
        }
    }
    let t = g.timeouts;
    let limit = [t.request_ms, t.backend_request_ms].into_iter().filter(|&ms| ms > 0).min();
    if let Some(ms) = limit {
        o.timeouts.read = Some(Duration::from_millis(ms));
        o.timeouts.send = Some(Duration::from_millis(ms));
        o.next_upstream_timeout = Some(Duration::from_millis(ms));
    }
    let regex = match p.path_type {
        PathType::ImplementationSpecific => match PathRegex::whole(&p.path) {
            Ok(re) => Some(Arc::new(re)),
            Err(e) => {
                let what = g.kind.name();
                warnings.push(format!(
                    "{what} {}: path {:?} is not a regular expression ({e}); not served",
                    ing.key, p.path
                ));
                None
            }
        },
        _ => None,
    };
    let mut rule = GatewayRule::new(g, ids);
    rule.mirrors = g.mirrors.iter().map(|((ns, sb), percent)| (b.backend_id(ns, sb), *percent)).collect();
    if let Some(h) = rule.request_headers.take() {
        rule.request_headers = Some(clean(&h, "RequestHeaderModifier", &ing.key, warnings));
    }
    Route {
        backend,
        ingress: ingress.clone(),
        host: host.cloned(),
        // An expression that does not compile matches no path (`/` + NUL cannot be sent).
        path: if p.path_type == PathType::ImplementationSpecific && regex.is_none() {
            "/\0".into()
        } else {
            p.path.clone()
        },
        path_type: if p.path_type == PathType::ImplementationSpecific && regex.is_none() {
            PathType::Exact
        } else {
            p.path_type
        },
        tls: false,
        options: Arc::new(o),
        rewrite: None,
        regex,
        canary: None,
        fallback: None,
        gateway: Some(Arc::new(rule)),
        next: None,
        origin: ing.origin,
    }
}
