//! `custom-http-errors`: a status the route lists, from its upstream or from the proxy
//! itself, is answered by an error page instead. The page comes from the Ingress's
//! `default-backend` Service, else the default backend (`--default-backend-service` or an
//! Ingress's `spec.defaultBackend`), asked with ingress-nginx's headers (X-Code, X-Format,
//! X-Original-URI, X-Namespace, X-Ingress-Name, X-Service-Name, X-Service-Port,
//! X-Request-ID); its answer (status, fields, body) is the client's, as ingress-nginx passes
//! it on unchanged. Without such a backend, or when it fails, the proxy answers the status
//! with a plain page of its own. Downstream protocols write the page ([`Page`]) their way.

use super::error::{Kind, ProxyError};
use super::h1::body::Body;
use super::h1::client::{self, Attempt, NoBody};
use super::Worker;
use crate::access_log::{ErrorRoute, Record};
use crate::runtime::io::Clock;
use crate::runtime::Io;
use crate::snapshot::Snapshot;

/// The most of an error page's body that is taken; a longer one gives the plain page.
const MAX_PAGE: usize = 256 * 1024;

/// An error page to send: its status, fields (lower-case names, without framing ones) and
/// body.
#[derive(Debug)]
pub(crate) struct Page {
    pub status: u16,
    pub fields: Vec<(String, Vec<u8>)>,
    pub body: Vec<u8>,
}

impl Page {
    /// The proxy's own page for `status` (the built-in default backend).
    pub fn plain(status: u16) -> Page {
        let reason = super::error::reason_phrase(status);
        Page {
            status,
            fields: vec![("content-type".into(), b"text/plain; charset=utf-8".to_vec())],
            body: format!("{status} {reason}\n").into_bytes(),
        }
    }
}

/// The page for the request `rec` (routed, its route listing `status`), made by the route's
/// error backend; the plain page when there is none or it fails. The proxy's own answers
/// without an error backend keep their own body: `None` then.
pub(crate) async fn page<I: Io>(
    w: &Worker<I>,
    snap: &Snapshot,
    clock: Clock<'_>,
    rec: &Record,
    status: u16,
    from_upstream: bool,
) -> Option<Page> {
    let route = rec.key.error_page(status)?;
    let Some(backend) = route.backend.filter(|b| !snap.backend(*b).endpoints.is_empty()) else {
        return from_upstream.then(|| Page::plain(status));
    };
    match ask(w, snap, clock, rec, route, backend, status).await {
        Ok(page) => Some(page),
        Err(e) => {
            tracing::warn!(worker = w.index, backend = %snap.backend(backend).name, status, error = %e, "custom-http-errors: the error backend failed; the plain page is sent");
            Some(Page::plain(status))
        }
    }
}

/// The request to the error backend: `GET /` (`HEAD /` for a HEAD), as ingress-nginx
/// rewrites it, with the headers that say what failed.
fn head(rec: &Record, route: &ErrorRoute, status: u16) -> Vec<u8> {
    let method: &[u8] = if rec.method == b"HEAD" { b"HEAD" } else { b"GET" };
    let ingress = rec.key.ingress();
    let (namespace, name) = ingress.split_once('/').unwrap_or(("", ingress));
    // The service label is `namespace/name:port`.
    let service = rec.key.service();
    let service = service.split_once('/').map_or(service, |(_, s)| s);
    let (service, port) = service.rsplit_once(':').unwrap_or((service, ""));
    let mut h = Vec::with_capacity(512);
    h.extend_from_slice(method);
    h.extend_from_slice(b" / HTTP/1.1\r\n");
    let code = status.to_string();
    for (name, value) in [
        (&b"Host"[..], &rec.host[..]),
        (b"X-Code", code.as_bytes()),
        (b"X-Format", &route.accept[..]),
        (b"X-Original-URI", &rec.uri[..]),
        (b"X-Namespace", namespace.as_bytes()),
        (b"X-Ingress-Name", name.as_bytes()),
        (b"X-Service-Name", service.as_bytes()),
        (b"X-Service-Port", port.as_bytes()),
        (b"X-Request-ID", &rec.request_id[..]),
        (b"X-Forwarded-For", &rec.client[..]),
    ] {
        // Every value came through a parsed request head or from the snapshot: no CR or LF.
        h.extend_from_slice(name);
        h.extend_from_slice(b": ");
        h.extend_from_slice(value);
        h.extend_from_slice(b"\r\n");
    }
    h.extend_from_slice(b"\r\n");
    h
}

async fn ask<I: Io>(
    w: &Worker<I>,
    snap: &Snapshot,
    clock: Clock<'_>,
    rec: &Record,
    route: &ErrorRoute,
    backend: crate::snapshot::BackendId,
    status: u16,
) -> Result<Page, ProxyError> {
    let settings = &snap.settings;
    let pick = crate::upstream::Pick::Policy(settings.load_balance);
    let to = Attempt { snap, backend, tls: None, settings, idempotent: true, pick };
    let mut ubuf = Vec::with_capacity(4096);
    let (up, _) = client::send(w, clock, &to, head(rec, route, status), &mut NoBody, &mut ubuf, |_| {}).await?;
    let is_head = rec.method == b"HEAD";
    let (mut page, info) = client::response_head(&up.io, &mut ubuf, clock, settings, is_head, |resp, info| {
        let fields = resp
            .headers
            .iter()
            .map(|h| (h.name.to_ascii_lowercase(), h.value.to_vec()))
            .filter(|(n, _)| !super::fields::is_hop_by_hop(n.as_bytes()) && n != "content-length")
            .collect();
        Ok((Page { status: info.status, fields, body: Vec::new() }, *info))
    })
    .await?;
    if !(200..=599).contains(&page.status) {
        return Err(ProxyError::upstream(Kind::UpstreamProtocol, "an interim response from the error backend"));
    }
    let mut body = Body::new(info.framing);
    let mut rest = ubuf.split_off(info.head_len.min(ubuf.len()));
    loop {
        let n = body
            .consume(&rest, &mut |d| page.body.extend_from_slice(d))
            .map_err(|_| ProxyError::upstream(Kind::UpstreamProtocol, "a malformed error page body"))?;
        if page.body.len() > MAX_PAGE {
            return Err(ProxyError::upstream(Kind::UpstreamProtocol, "an error page over 256 KiB"));
        }
        if body.is_done() {
            client::release(w, up, info.reusable && n == rest.len(), settings);
            return Ok(page);
        }
        if !client::read_body(&up.io, &mut rest, clock, settings.upstream_timeout, &body, 16 * 1024).await? {
            return Ok(page);
        }
    }
}
