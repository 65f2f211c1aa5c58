//! The one data-plane error type, and the one mapping from an error kind to what the client
//! gets.

use std::io;

/// Which side of the proxy failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Side {
    Downstream,
    Upstream,
    Internal,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// 400: malformed request line or header section, bad framing (RFC 9112 §2.2, §3, §5,
    /// §6.1 CL+TE, §6.3 invalid Content-Length, §7.1 bad chunk), NUL/CR/LF in values.
    BadRequest,
    /// 400: Host missing in HTTP/1.1 or sent more than once (RFC 9112 §3.2).
    BadHost,
    /// 431: header section or header count over the limit (RFC 6585 §5).
    HeadersTooLarge,
    /// 413: body over the limit (RFC 9110 §15.5.14).
    BodyTooLarge,
    /// 501: a transfer coding we do not implement (RFC 9112 §6.1), or CONNECT.
    NotImplemented,
    /// 405: TRACE, which would reflect the request's credentials (RFC 9110 §9.3.8 lets a
    /// server refuse it; nginx does).
    MethodNotAllowed,
    /// 417: an expectation other than 100-continue (RFC 9110 §10.1.1).
    ExpectationFailed,
    /// 408: the client did not send its header section in time (RFC 9110 §15.5.9).
    RequestTimeout,
    /// 404: no Ingress rule and no default backend matches.
    NoRoute,
    /// 503: the matched backend has no ready endpoints (RFC 9110 §15.6.4).
    NoEndpoints,
    /// 502: every endpoint tried refused or failed the connection (RFC 9110 §15.6.3).
    UpstreamConnect,
    /// 502: the upstream answered with something that is not a valid HTTP/1.1 response, or
    /// closed before a complete one (RFC 9110 §15.6.3).
    UpstreamProtocol,
    /// 504: the upstream did not answer in time (RFC 9110 §15.6.5).
    UpstreamTimeout,
    /// 502: a gRPC backend asked for over HTTP/1.1 (gRPC needs HTTP/2 end to end).
    NeedsHttp2,
    /// 403: the client's address is not allowed on the route (RFC 9110 §15.5.4).
    Forbidden,
    /// 401: the route asks for credentials the request does not carry (RFC 9110 §15.5.2);
    /// the answer carries the challenge (`WWW-Authenticate` in [`ProxyError::fields`]).
    Unauthorized,
    /// 500: the external authentication service failed, answered something other than 2xx,
    /// 401 or 403, or did not answer in time (as nginx's `auth_request` answers; RFC 9110
    /// §15.6.1).
    AuthFailed,
    /// 302: the external authentication service refused, and `auth-signin` says where to sign
    /// in (RFC 9110 §15.4.3); the answer carries the Location ([`ProxyError::fields`]).
    SignIn,
    /// 400: the route asks for a client certificate, and none was sent or it does not verify
    /// (as nginx answers; gRPC: UNAUTHENTICATED).
    ClientCertificate,
    /// 421: the request's host asks for a client certificate, but the connection's handshake
    /// named another host (RFC 9110 §15.5.20): the client connects again naming it.
    Misdirected,
    /// 500: a Gateway API rule's backend reference does not resolve (no such Service, not a
    /// Service, not permitted across namespaces) or its filter is not supported: the
    /// specification's answer for the requests it would have taken.
    InvalidBackend,
    /// 503: the route is not served because a protection it asks for cannot be enforced
    /// (fail closed); the body names it (RFC 9110 §15.6.4).
    Refused,
    /// A `limit-rps`/`limit-rpm` or `limit-connections` refusal, with the ConfigMap's status
    /// (`limit-req-status-code`, `limit-conn-status-code`; 503 by default, as ingress-nginx;
    /// 429 is RFC 6585 §4's).
    Limited(u16),
    /// The upstream answered a status its route's `custom-http-errors` lists: the client
    /// gets the error page instead (the upstream's response was dropped unread).
    Intercepted(u16),
    /// No status: the client went away or broke framing after the response began; close.
    Closed,
}

#[derive(Debug)]
pub struct ProxyError {
    pub kind: Kind,
    pub side: Side,
    pub source: Option<io::Error>,
    pub context: &'static str,
    /// Text for the client's answer that is not known in advance (which annotation refused
    /// a route); `context` otherwise.
    pub detail: Option<std::sync::Arc<str>>,
    /// More fields of the answer (a 401's WWW-Authenticate, a sign-in redirect's Location,
    /// an auth service's Set-Cookie); values without CR or LF.
    pub fields: Vec<(&'static str, Vec<u8>)>,
}

impl ProxyError {
    pub fn new(kind: Kind, side: Side, context: &'static str) -> Self {
        ProxyError { kind, side, source: None, context, detail: None, fields: Vec::new() }
    }

    pub fn io(kind: Kind, side: Side, context: &'static str, e: io::Error) -> Self {
        ProxyError { kind, side, source: Some(e), context, detail: None, fields: Vec::new() }
    }

    pub fn downstream(kind: Kind, context: &'static str) -> Self {
        Self::new(kind, Side::Downstream, context)
    }

    pub fn upstream(kind: Kind, context: &'static str) -> Self {
        Self::new(kind, Side::Upstream, context)
    }

    /// The status the client gets, if the response has not started.
    pub fn status(&self) -> Option<(u16, &'static str)> {
        status(self.kind)
    }

    /// What the answer's body says after the reason phrase.
    pub fn message(&self) -> &str {
        self.detail.as_deref().unwrap_or(self.context)
    }
}

impl std::fmt::Display for ProxyError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:?} ({:?}): {}", self.kind, self.side, self.context)?;
        if let Some(e) = &self.source {
            write!(f, ": {e}")?;
        }
        Ok(())
    }
}

/// The HTTP status and reason the client gets for an error of this kind, when the response
/// has not started. None: no answer is possible; the connection (or HTTP/2 stream) ends.
pub fn status(kind: Kind) -> Option<(u16, &'static str)> {
    Some(match kind {
        Kind::BadRequest | Kind::BadHost => (400, "Bad Request"),
        Kind::HeadersTooLarge => (431, "Request Header Fields Too Large"),
        Kind::BodyTooLarge => (413, "Content Too Large"),
        Kind::NotImplemented => (501, "Not Implemented"),
        Kind::MethodNotAllowed => (405, "Method Not Allowed"),
        Kind::ExpectationFailed => (417, "Expectation Failed"),
        Kind::RequestTimeout => (408, "Request Timeout"),
        Kind::NoRoute => (404, "Not Found"),
        Kind::NoEndpoints => (503, "Service Unavailable"),
        Kind::UpstreamConnect | Kind::UpstreamProtocol | Kind::NeedsHttp2 => (502, "Bad Gateway"),
        Kind::Forbidden => (403, "Forbidden"),
        Kind::Unauthorized => (401, "Unauthorized"),
        Kind::Refused => (503, "Service Unavailable"),
        Kind::AuthFailed | Kind::InvalidBackend => (500, "Internal Server Error"),
        Kind::ClientCertificate => (400, "Bad Request"),
        Kind::Misdirected => (421, "Misdirected Request"),
        Kind::SignIn => (302, "Found"),
        Kind::UpstreamTimeout => (504, "Gateway Timeout"),
        Kind::Limited(code) => (code, reason(code)),
        Kind::Intercepted(code) => (code, reason_phrase(code)),
        Kind::Closed => return None,
    })
}

/// The standard reason phrase of any status ("Error" for one without).
pub(crate) fn reason_phrase(code: u16) -> &'static str {
    http::StatusCode::from_u16(code).ok().and_then(|s| s.canonical_reason()).unwrap_or("Error")
}

/// The reason phrase of a status a ConfigMap may choose.
fn reason(code: u16) -> &'static str {
    match code {
        400 => "Bad Request",
        403 => "Forbidden",
        404 => "Not Found",
        429 => "Too Many Requests",
        500 => "Internal Server Error",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Gateway Timeout",
        _ => "Refused",
    }
}

impl Kind {
    /// The gRPC status a gRPC client gets instead of the HTTP status (in a trailers-only
    /// response, as the gRPC HTTP/2 protocol maps HTTP errors).
    pub fn grpc_status(self) -> u8 {
        if self == Kind::ClientCertificate {
            return 16; // UNAUTHENTICATED
        }
        match status(self).map_or(0, |s| s.0) {
            401 | 302 => 16, // UNAUTHENTICATED (a sign-in page means nothing to a gRPC client)
            403 => 7,        // PERMISSION_DENIED
            404 => 12,       // UNIMPLEMENTED
            413 | 431 => 8,  // RESOURCE_EXHAUSTED
            408 | 504 => 4,  // DEADLINE_EXCEEDED
            400 | 405 => 13, // INTERNAL
            501 => 12,       // UNIMPLEMENTED
            _ => 14,         // UNAVAILABLE: 502, 503
        }
    }

    /// Whether an HTTP/1.1 connection closes after the answer. Errors found before the
    /// request was routed or while it was exchanged leave its framing or the exchange in an
    /// unknown state: close. A refusal of a well-framed request keeps the connection (when no
    /// unread body follows and the client keeps it alive).
    pub fn closes(self) -> bool {
        !matches!(
            self,
            Kind::NoRoute
                | Kind::NoEndpoints
                | Kind::MethodNotAllowed
                | Kind::NeedsHttp2
                | Kind::Forbidden
                | Kind::Unauthorized
                | Kind::Refused
                | Kind::AuthFailed
                | Kind::InvalidBackend
                | Kind::SignIn
                | Kind::ClientCertificate
                | Kind::Misdirected
                | Kind::Limited(_)
                | Kind::Intercepted(_)
        )
    }
}

/// A complete error response from the proxy itself, with `Connection: close` when `close`,
/// `Allow` on a 405 and the error's own fields (a 401's challenge, a redirect's Location).
pub fn write_error_response(out: &mut Vec<u8>, e: &ProxyError, close: bool, stamp: Stamp<'_>) {
    use std::io::Write;
    let (code, reason) = e.status().unwrap_or((500, "Internal Server Error"));
    let detail = e.message();
    let body_len = reason.len() + detail.len() + 3;
    let _ = write!(
        out,
        "HTTP/1.1 {code} {reason}\r\nServer: {}\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: {body_len}\r\n",
        stamp.server
    );
    out.extend_from_slice(stamp.fields);
    if code == 405 {
        let _ = write!(out, "Allow: {ALLOW}\r\n");
    }
    for (name, value) in &e.fields {
        super::h1::codec::write_field(out, name.as_bytes(), &[value]);
    }
    if close {
        out.extend_from_slice(b"Connection: close\r\n");
    }
    let _ = write!(out, "\r\n{reason}: {detail}\n");
}

/// What every HTTP/1.1 response the proxy writes itself carries: its Server field, and the
/// ConfigMap's fields (`add-headers`, HSTS over TLS) as rendered lines, as ingress-nginx's
/// `more_set_headers` puts them on every status.
#[derive(Clone, Copy)]
pub struct Stamp<'a> {
    pub server: &'a str,
    pub fields: &'a [u8],
}

impl<'a> Stamp<'a> {
    pub fn of(snap: &'a crate::snapshot::Snapshot, settings: &'a crate::snapshot::Settings, https: bool) -> Self {
        Stamp { server: settings.server_name(), fields: snap.edge.h1(https) }
    }
}

/// The methods a 405 names (RFC 9110 §15.5.6 requires the field): all but TRACE, which is
/// the only method the proxy answers 405 to (CONNECT is 501).
pub const ALLOW: &str = "GET, HEAD, POST, PUT, DELETE, PATCH, OPTIONS";
