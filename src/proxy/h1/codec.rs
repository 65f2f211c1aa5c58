//! HTTP/1.1 message heads: what a parsed request or response means for framing and
//! connection handling (RFC 9112), and how the proxy rewrites them for the other side.

use crate::proxy::error::{Kind, ProxyError};
use crate::proxy::fields::{self, Forwarded};

/// How a message body is delimited (RFC 9112 §6.3).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Framing {
    None,
    Length(u64),
    Chunked,
    /// Responses only: the body ends when the upstream closes.
    UntilClose,
}

/// What the proxy needs to know about a request once its head is parsed.
#[derive(Clone, Copy, Debug)]
pub struct RequestInfo {
    pub head_len: usize,
    pub http10: bool,
    pub is_head: bool,
    /// RFC 9110 §9.2.2: safe to send again after a failure.
    pub idempotent: bool,
    pub framing: Framing,
    /// The Content-Length as parsed (also when 0), written anew by the proxy: never a copy of
    /// the client's field, which may be padded, repeated or named by `Connection`.
    pub length: Option<u64>,
    pub keep_alive: bool,
    pub expect_continue: bool,
    pub upgrade: bool,
}

fn bad(context: &'static str) -> ProxyError {
    ProxyError::downstream(Kind::BadRequest, context)
}

pub fn eq_ignore_case(a: &[u8], b: &str) -> bool {
    a.eq_ignore_ascii_case(b.as_bytes())
}

/// A field's value when the request sends it exactly once (twice is never a credential).
pub fn only_field<'b>(req: &httparse::Request<'_, 'b>, name: &str) -> Option<&'b [u8]> {
    let mut all = req.headers.iter().filter(|h| eq_ignore_case(h.name.as_bytes(), name));
    match (all.next(), all.next()) {
        (Some(h), None) => Some(h.value),
        _ => None,
    }
}

/// Content-Length: digits only; repeated values (in one field or several) must agree
/// (RFC 9110 §8.6, RFC 9112 §6.3 item 5).
fn content_length(current: Option<u64>, v: &[u8]) -> Result<u64, ()> {
    let mut out = current;
    for t in v.split(|&b| b == b',') {
        let t = t.trim_ascii();
        if t.is_empty() || t.len() > 19 || !t.iter().all(u8::is_ascii_digit) {
            return Err(());
        }
        let n: u64 = std::str::from_utf8(t).map_err(|_| ())?.parse().map_err(|_| ())?;
        if out.is_some_and(|o| o != n) {
            return Err(());
        }
        out = Some(n);
    }
    out.ok_or(())
}

/// A LF not preceded by CR. httparse accepts it as a line end (RFC 9112 §2.2 allows that); the
/// proxy re-frames with CRLF and so rejects it, or `a\nX-Injected: b` could become a field.
pub fn has_bare_lf(head: &[u8]) -> bool {
    head.iter().enumerate().any(|(i, &b)| b == b'\n' && (i == 0 || head[i - 1] != b'\r'))
}

/// The parts of a request target the proxy routes on.
pub struct Target<'a> {
    /// Authority from an absolute-form target (RFC 9112 §3.2.2: it overrides Host).
    pub authority: Option<&'a [u8]>,
    /// Origin-form path with its query: what is sent upstream.
    pub path_and_query: &'a [u8],
}

impl Target<'_> {
    pub fn path(&self) -> &[u8] {
        let p = self.path_and_query;
        &p[..p.iter().position(|&b| b == b'?').unwrap_or(p.len())]
    }
}

pub fn parse_target<'a>(method: &str, target: &'a str) -> Result<Target<'a>, ProxyError> {
    let t = target.as_bytes();
    if t.first() == Some(&b'/') {
        return Ok(Target { authority: None, path_and_query: t });
    }
    if t == b"*" && method == "OPTIONS" {
        return Ok(Target { authority: None, path_and_query: t });
    }
    for scheme in ["http://", "https://"] {
        if t.len() > scheme.len() && eq_ignore_case(&t[..scheme.len()], scheme) {
            let rest = &t[scheme.len()..];
            let end = rest.iter().position(|&b| b == b'/' || b == b'?').unwrap_or(rest.len());
            let (auth, path) = rest.split_at(end);
            if auth.is_empty() || auth.contains(&b'@') {
                return Err(bad("absolute-form target without a valid authority"));
            }
            let path: &[u8] = if path.is_empty() { b"/" } else { path };
            if path[0] == b'?' {
                return Err(bad("absolute-form target with a query but no path"));
            }
            return Ok(Target { authority: Some(auth), path_and_query: path });
        }
    }
    Err(bad("request target is not origin-form or absolute-form"))
}

/// Checks a parsed request for everything RFC 9112 makes the proxy responsible for, and
/// returns its framing. `host` is set to the Host to route on.
pub fn analyze_request<'a>(
    req: &httparse::Request<'_, 'a>,
    head_len: usize,
    target: &Target<'a>,
    host: &mut &'a [u8],
) -> Result<RequestInfo, ProxyError> {
    let method = req.method.unwrap_or("");
    let http10 = req.version == Some(0);
    let mut hosts = 0;
    let mut length: Option<u64> = None;
    let mut chunked = false;
    let mut te_seen = false;
    let mut conn_close = false;
    let mut conn_keep_alive = false;
    let mut conn_upgrade = false;
    let mut upgrade_header = false;
    let mut expect_continue = false;
    for h in req.headers.iter() {
        let name = h.name.as_bytes();
        let v = h.value;
        if eq_ignore_case(name, "host") {
            hosts += 1;
            *host = v.trim_ascii();
        } else if eq_ignore_case(name, "content-length") {
            length = Some(content_length(length, v).map_err(|_| bad("invalid or conflicting Content-Length"))?);
        } else if eq_ignore_case(name, "transfer-encoding") {
            // Only `chunked`, once and last, is understood (RFC 9112 §6.1); anything else is 501.
            for t in fields::tokens(v) {
                if chunked {
                    return Err(bad("a transfer coding after chunked"));
                }
                if !eq_ignore_case(t, "chunked") {
                    return Err(ProxyError::downstream(Kind::NotImplemented, "unsupported transfer coding"));
                }
                chunked = true;
            }
            te_seen = true;
        } else if eq_ignore_case(name, "connection") {
            for t in fields::tokens(v) {
                conn_close |= eq_ignore_case(t, "close");
                conn_keep_alive |= eq_ignore_case(t, "keep-alive");
                conn_upgrade |= eq_ignore_case(t, "upgrade");
            }
        } else if eq_ignore_case(name, "upgrade") {
            upgrade_header = true;
        } else if eq_ignore_case(name, "expect") {
            if eq_ignore_case(v.trim_ascii(), "100-continue") {
                expect_continue = true;
            } else {
                return Err(ProxyError::downstream(Kind::ExpectationFailed, "unsupported expectation"));
            }
        }
    }
    if hosts > 1 {
        return Err(ProxyError::downstream(Kind::BadHost, "more than one Host header"));
    }
    if let Some(auth) = target.authority {
        *host = auth;
    } else if hosts == 0 && !http10 {
        return Err(ProxyError::downstream(Kind::BadHost, "HTTP/1.1 request without Host"));
    }
    if te_seen && !chunked {
        return Err(bad("empty Transfer-Encoding"));
    }
    if te_seen && length.is_some() {
        return Err(bad("both Content-Length and Transfer-Encoding"));
    }
    if te_seen && http10 {
        return Err(bad("Transfer-Encoding in an HTTP/1.0 request"));
    }
    let framing = match (chunked, length) {
        (true, _) => Framing::Chunked,
        (false, Some(0) | None) => Framing::None,
        (false, Some(n)) => Framing::Length(n),
    };
    let keep_alive = if http10 { conn_keep_alive && !conn_close } else { !conn_close };
    Ok(RequestInfo {
        head_len,
        http10,
        is_head: method == "HEAD",
        idempotent: matches!(method, "GET" | "HEAD" | "OPTIONS" | "TRACE" | "PUT" | "DELETE"),
        framing,
        length,
        keep_alive,
        expect_continue: expect_continue && framing != Framing::None && !http10,
        upgrade: conn_upgrade && upgrade_header && !http10,
    })
}

/// Writes the fields of a received trailer section (`lines`, each ending in CRLF) that
/// [`fields::may_trail`]; a section that does not parse is dropped whole.
pub fn write_trailer_fields(out: &mut Vec<u8>, lines: &[u8]) {
    if lines.is_empty() {
        return;
    }
    let section = [lines, b"\r\n"].concat();
    let mut hs = [httparse::EMPTY_HEADER; 64];
    let Ok(httparse::Status::Complete((_, fields))) = httparse::parse_headers(&section, &mut hs) else { return };
    for f in fields.iter().filter(|f| fields::may_trail(f.name.as_bytes())) {
        out.extend_from_slice(f.name.as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(f.value);
        out.extend_from_slice(b"\r\n");
    }
}

/// Writes the request head sent upstream: origin-form target, HTTP/1.1, end-to-end fields
/// kept, hop-by-hop fields dropped, X-Forwarded-* and X-Real-IP set, and X-Request-ID when the
/// proxy made the request's id.
pub fn write_request_head(
    out: &mut Vec<u8>,
    req: &httparse::Request<'_, '_>,
    info: &RequestInfo,
    target: &Target<'_>,
    host: &[u8],
    fwd: &Forwarded<'_>,
    underscores: bool,
) {
    let mut conn = [&b""[..]; 16];
    let n = fields::connection_tokens(req.headers.iter().map(|h| (h.name.as_bytes(), h.value)), &mut conn);
    let conn = &conn[..n];
    out.extend_from_slice(req.method.unwrap_or("GET").as_bytes());
    out.push(b' ');
    out.extend_from_slice(target.path_and_query);
    out.extend_from_slice(b" HTTP/1.1\r\nHost: ");
    out.extend_from_slice(host);
    out.extend_from_slice(b"\r\n");
    let mut seen = fields::Seen::default();
    let mut upgrade: Option<&[u8]> = None;
    for h in req.headers.iter() {
        let name = h.name.as_bytes();
        if !underscores && fields::has_underscore(name) {
            continue;
        }
        if fields::request_drops(name, conn) {
            seen.note(name, h.value);
            if eq_ignore_case(name, "upgrade") {
                upgrade = Some(h.value);
            }
            continue;
        }
        write_field(out, name, &[h.value]);
    }
    fwd.write(&seen, |name, value| write_field(out, name.as_bytes(), value));
    write_framing(out, info.framing, info.length);
    if let (true, Some(u)) = (info.upgrade, upgrade) {
        out.extend_from_slice(b"Connection: upgrade\r\nUpgrade: ");
        out.extend_from_slice(u);
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"\r\n");
}

/// `name: value\r\n`, the value given in pieces.
pub(crate) fn write_field(out: &mut Vec<u8>, name: &[u8], value: &[&[u8]]) {
    out.extend_from_slice(name);
    out.extend_from_slice(b": ");
    for v in value {
        out.extend_from_slice(v);
    }
    out.extend_from_slice(b"\r\n");
}

/// The framing fields the proxy writes for a body it parsed: `Transfer-Encoding: chunked`, or
/// the canonical `Content-Length` (`length`: the parsed value, 0 included).
pub fn write_framing(out: &mut Vec<u8>, framing: Framing, length: Option<u64>) {
    match (framing, length) {
        (Framing::Chunked, _) => out.extend_from_slice(b"Transfer-Encoding: chunked\r\n"),
        (Framing::UntilClose, _) | (_, None) => {}
        (_, Some(n)) => {
            out.extend_from_slice(b"Content-Length: ");
            crate::access_log::format::push_u64(out, n);
            out.extend_from_slice(b"\r\n");
        }
    }
}

/// What the proxy needs to know about an upstream response head.
#[derive(Clone, Copy, Debug)]
pub struct ResponseInfo {
    pub head_len: usize,
    pub status: u16,
    pub framing: Framing,
    /// The Content-Length as parsed, when there is no Transfer-Encoding (for HEAD and 304
    /// it describes the representation, not a body): written anew, canonical.
    pub length: Option<u64>,
    /// The upstream connection can carry another request once this body is read.
    pub reusable: bool,
}

fn bad_upstream(context: &'static str) -> ProxyError {
    ProxyError::upstream(Kind::UpstreamProtocol, context)
}

/// RFC 9112 §6.3 applied to a response to `request_is_head`.
pub fn analyze_response(
    resp: &httparse::Response<'_, '_>,
    head_len: usize,
    request_is_head: bool,
) -> Result<ResponseInfo, ProxyError> {
    let status = resp.code.ok_or_else(|| bad_upstream("response without status"))?;
    let http10 = resp.version == Some(0);
    let mut length: Option<u64> = None;
    let mut chunked = false;
    let mut te_seen = false;
    let mut close = http10;
    for h in resp.headers.iter() {
        let name = h.name.as_bytes();
        if eq_ignore_case(name, "content-length") {
            length = Some(content_length(length, h.value).map_err(|_| bad_upstream("invalid Content-Length"))?);
        } else if eq_ignore_case(name, "transfer-encoding") {
            te_seen = true;
            chunked = fields::tokens(h.value).last().is_some_and(|t| eq_ignore_case(t, "chunked"));
        } else if eq_ignore_case(name, "connection") {
            for t in fields::tokens(h.value) {
                if eq_ignore_case(t, "close") {
                    close = true;
                } else if http10 && eq_ignore_case(t, "keep-alive") {
                    close = false;
                }
            }
        }
    }
    let no_body = request_is_head || (100..200).contains(&status) || status == 204 || status == 304;
    let framing = if no_body {
        Framing::None
    } else if te_seen {
        if chunked {
            Framing::Chunked
        } else {
            Framing::UntilClose
        }
    } else {
        match length {
            Some(0) => Framing::None,
            Some(n) => Framing::Length(n),
            None => Framing::UntilClose,
        }
    };
    // TE with CL is a smuggling vector: never reuse such a connection (RFC 9112 §6.3 item 3).
    let reusable = !close && framing != Framing::UntilClose && !(te_seen && length.is_some());
    let no_length_field = te_seen || (100..200).contains(&status) || status == 204;
    let length = if no_length_field { None } else { length };
    Ok(ResponseInfo { head_len, status, framing, length, reusable })
}

/// Writes the response head sent to the client. `chunked_out` says whether the body goes out
/// chunked (passed through); `close` whether the proxy closes after it. `extra` (header lines)
/// is added; upstream fields `replaced` answers true for are left out.
pub fn write_response_head(
    out: &mut Vec<u8>,
    resp: &httparse::Response<'_, '_>,
    info: &ResponseInfo,
    (chunked_out, close, client_http10): (bool, bool, bool),
    extra: &[u8],
    replaced: &dyn Fn(&[u8]) -> bool,
) {
    let mut conn = [&b""[..]; 16];
    let n = fields::connection_tokens(resp.headers.iter().map(|h| (h.name.as_bytes(), h.value)), &mut conn);
    let conn = &conn[..n];
    let code = info.status.min(999);
    out.extend_from_slice(b"HTTP/1.1 ");
    out.extend_from_slice(&[b'0' + (code / 100) as u8, b'0' + (code / 10 % 10) as u8, b'0' + (code % 10) as u8, b' ']);
    out.extend_from_slice(resp.reason.unwrap_or("").as_bytes());
    out.extend_from_slice(b"\r\n");
    let switching = info.status == 101;
    for h in resp.headers.iter() {
        let name = h.name.as_bytes();
        let keep_for_101 = switching && (eq_ignore_case(name, "upgrade"));
        if (!keep_for_101 && fields::response_drops(name, conn)) || replaced(name) {
            continue;
        }
        write_field(out, name, &[h.value]);
    }
    if switching {
        out.extend_from_slice(b"Connection: upgrade\r\n");
    } else {
        if chunked_out {
            out.extend_from_slice(b"Transfer-Encoding: chunked\r\n");
        } else if info.framing != Framing::Chunked {
            // (A dechunked body, for an HTTP/1.0 client, has no length to give: it ends at
            // close.)
            write_framing(out, info.framing, info.length);
        }
        if close {
            out.extend_from_slice(b"Connection: close\r\n");
        } else if client_http10 {
            out.extend_from_slice(b"Connection: keep-alive\r\n");
        }
    }
    out.extend_from_slice(extra);
    out.extend_from_slice(b"\r\n");
}

#[cfg(test)]
mod tests;
