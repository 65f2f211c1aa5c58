//! An HTTP/2 request to an HTTP/1.1 upstream: the request head written from the stream's
//! fields, the body from its DATA frames (chunk-framed when its length is unknown), and the
//! response relayed as HTTP/2. The upstream side (pools, retries, response heads) is
//! [`client`]'s, the same one HTTP/1.1 clients use.

use bytes::Bytes;
use futures::future::{select, Either};
use h2::RecvStream;
use http::{HeaderMap, HeaderName, HeaderValue, Response};

use super::{add_fields, add_reply, h2_down, hold_response_chunk, send_all, Progress, ReqStream, Route};
use crate::proxy::error::{Kind, ProxyError, Side};
use crate::proxy::fields::{self, Forwarded, Seen};
use crate::proxy::h1::body::{Body, Pace};
use crate::proxy::h1::client;
use crate::proxy::h1::codec::{self, Framing};
use crate::proxy::{compress, Worker};
use crate::runtime::io::Clock;
use crate::runtime::Io;
use crate::snapshot::Settings;

/// HTTP/2 request -> HTTP/1.1 upstream (pooled) -> HTTP/2 response.
pub(super) async fn forward<I: Io>(
    w: &Worker<I>,
    clock: Clock<'_>,
    to: &Route<'_>,
    s: ReqStream<'_>,
    fwd: &Forwarded<'_>,
) -> Result<(), ProxyError> {
    let ReqStream { parts, body, respond, progress, .. } = s;
    let settings = &to.forward.settings;
    let length = to.length;
    let started = std::time::Instant::now();
    let mut pace = Pace::new();
    // `proxy-request-buffering`: the body (if it fits) is read whole before an upstream
    // connection is taken.
    let buffered = match settings.request_buffering && !body.is_end_stream() {
        true => buffer_body::<I>(w, body, length, settings, &mut pace).await?,
        false => None,
    };
    let framing = match &buffered {
        Some(b) if b.complete => Framing::Length(b.data.len() as u64),
        _ if body.is_end_stream() => {
            if matches!(parts.method, http::Method::POST | http::Method::PUT | http::Method::PATCH) {
                Framing::Length(0)
            } else {
                Framing::None
            }
        }
        _ => length.map_or(Framing::Chunked, Framing::Length),
    };
    let mut head = Vec::with_capacity(1024);
    let host = to.forward.vhost.map_or(fwd.authority, str::as_bytes);
    write_h1_head(&mut head, parts, (host, to.target), fwd, framing, settings.underscores_in_headers);
    if let Some(g) = to.granted {
        g.apply_to_head(&mut head);
    }
    let mut sent = 0u64;
    let mut done = body.is_end_stream();
    if let Some(b) = &buffered {
        if framing == Framing::Chunked {
            crate::proxy::h1::body::write_chunk(&mut head, &b.data);
        } else {
            head.extend_from_slice(&b.data);
        }
        sent = b.data.len() as u64;
        done |= b.complete;
        progress.add_in(b.data.len());
    }
    drop(buffered);
    let is_head = parts.method == http::Method::HEAD;
    let attempt = client::Attempt {
        snap: to.snap,
        backend: to.forward.backend,
        tls: to.tls.map(|t| &**t),
        settings,
        idempotent: parts.method.is_idempotent(),
        pick: to.forward.pick,
    };
    let mut rest =
        RestOfBody::<I> { body, done, framing, settings, progress, sent, pace, io: std::marker::PhantomData };
    if !to.forward.mirror.is_empty() {
        // Only a request whole in `head` is copied: a body is never held back for a mirror.
        match rest.done {
            true => crate::proxy::mirror::mirror(w, to.snap, &to.forward.mirror, &head),
            false => crate::proxy::bump(&w.stats.mirrors_skipped),
        }
    }
    let mut ubuf = Vec::with_capacity(16 * 1024);
    let (up, _) =
        client::send(w, clock, &attempt, head, &mut rest, &mut ubuf, |a| progress.upstream.set(Some(a))).await?;
    // `custom-http-errors`: the upstream's answer is dropped unread (so is its connection);
    // the stream gets the error page instead.
    let code = match to.intercept.is_empty() {
        true => None,
        false => client::read_status(&up.io, &mut ubuf, clock, clock.after(settings.upstream_timeout)).await?,
    };
    if let Some(code) = code.filter(|c| to.intercept.contains(c)) {
        drop(up);
        progress.upstream_status.set(code);
        return Err(ProxyError::upstream(Kind::Intercepted(code), "custom-http-errors"));
    }

    // The response head (interim responses skipped). The same rule as for HTTP/1.1 clients:
    // hop-by-hop fields, what the upstream's Connection names, and the framing, which the
    // proxy states itself (the length it parsed, canonical).
    let (info, headers) = loop {
        let head = client::response_head(&up.io, &mut ubuf, clock, settings, is_head, |resp, info| match info.status {
            101 => Err(ProxyError::upstream(Kind::UpstreamProtocol, "101 over HTTP/2")),
            100..=199 => Ok(Err(info.head_len)),
            _ => Ok(Ok((*info, response_fields(resp, info)))),
        })
        .await?;
        match head {
            Ok(h) => break h,
            Err(interim) => drop(ubuf.drain(..interim)),
        }
    };
    let mut response = Response::new(());
    *response.status_mut() = http::StatusCode::from_u16(info.status)
        .map_err(|_| ProxyError::upstream(Kind::UpstreamProtocol, "invalid status"))?;
    let mut rbody = Body::new(info.framing);
    // `use-gzip`, `enable-brotli`: a body that is there to compress.
    let choice = to.snap.edge.compression.choose(
        to.forward.accepts,
        (info.status, is_head || rbody.is_done()),
        info.length,
        |n| headers.get(n).map(|v| v.as_bytes()),
    );
    let mut headers = headers;
    let mut encoder = compress::h2_fields(&mut headers, choice);
    *response.headers_mut() = headers;
    add_fields(response.headers_mut(), to.snap.edge.h2(fwd.scheme == "https"));
    add_reply(response.headers_mut(), to.forward.reply.as_deref(), (Some(up.addr), info.status));
    if let Some(g) = to.granted {
        g.add_cookies(response.headers_mut(), info.status);
    }
    rbody.keep_trailers();
    let end = rbody.is_done();
    let mut send = respond.send_response(response, end).map_err(h2_down)?;
    let answered = std::time::Instant::now();
    progress.upstream_answered(info.status);
    // The head's buffer goes on as the body's: one 16 KiB buffer per stream.
    ubuf.drain(..info.head_len);
    let mut rest = ubuf;
    let mut clean = true;
    let throttle = crate::proxy::limits::Throttle::new(to.forward.pace);
    loop {
        // A body framed by length (or by the close) is the bytes read, handed to the client
        // as they are (no copy; the next read gets a new buffer once this one is sent). A
        // chunked one is decoded into its own buffer.
        let plain = matches!(rbody, Body::Length(_) | Body::UntilClose);
        let mut decoded = Vec::new();
        let k = rbody
            .consume(&rest, &mut |d| {
                if !plain {
                    decoded.extend_from_slice(d)
                }
            })
            .map_err(|_| ProxyError::upstream(Kind::Closed, "invalid chunked response body"))?;
        clean &= k == rest.len();
        if plain {
            rest.truncate(k);
            decoded = std::mem::take(&mut rest);
        }
        if let Some(e) = encoder.as_mut() {
            // Flushed when the upstream gave less than a full read: it has nothing more now.
            let waiting = decoded.len() < 16 * 1024;
            decoded = match rbody.is_done() {
                true => [e.push(&decoded, false), e.finish()].concat(),
                false => e.push(&decoded, waiting),
            };
        }
        if !decoded.is_empty() {
            progress.add_out(decoded.len());
            // The client must take the response at the minimum rate, counted in bytes (a
            // WINDOW_UPDATE of one byte now and then does not keep a stream alive).
            let out = progress.bytes_out.get();
            let wait = || settings.body_wait(answered, out).min(settings.idle_timeout);
            let _held = hold_response_chunk(w, decoded.len())?;
            crate::proxy::limits::Throttle::pause::<I>(&throttle, progress.bytes_out.get()).await;
            send_all::<I>(&mut send, Bytes::from(decoded), wait).await.map_err(h2_down)?;
        }
        if rbody.is_done() {
            break;
        }
        // 16 KiB per read: with up to MAX_UPSTREAM_PER_CONNECTION streams of a connection
        // reading, what one client connection can pin stays near 1 MiB.
        if !client::read_body(&up.io, &mut rest, clock, settings.upstream_timeout, &rbody, 16 * 1024).await? {
            clean = false;
            // A body that ends at the close: its compressed stream ends here.
            if let Some(tail) = encoder.as_mut().map(compress::Encoder::finish).filter(|t| !t.is_empty()) {
                progress.add_out(tail.len());
                send_all::<I>(&mut send, Bytes::from(tail), || settings.idle_timeout).await.map_err(h2_down)?;
            }
            break;
        }
    }
    if !end {
        // A chunked response's trailer fields end the stream as an HTTP/2 trailers frame.
        match trailer_fields(&rbody.take_trailers()) {
            Some(trailers) => send.send_trailers(trailers).map_err(h2_down)?,
            None => send.send_data(Bytes::new(), true).map_err(h2_down)?,
        }
    }
    client::release(w, up, info.reusable && clean, settings);
    progress.upstream_time.set(Some(started.elapsed()));
    Ok(())
}

/// The fields of an HTTP/1.1 response head that an HTTP/2 client gets.
fn response_fields(resp: &httparse::Response<'_, '_>, info: &codec::ResponseInfo) -> HeaderMap {
    let mut tokens = [&[][..]; 16];
    let n = fields::connection_tokens(resp.headers.iter().map(|h| (h.name.as_bytes(), h.value)), &mut tokens);
    let mut headers = HeaderMap::with_capacity(resp.headers.len());
    for h in resp.headers.iter() {
        if fields::response_drops(h.name.as_bytes(), &tokens[..n]) {
            continue;
        }
        let Ok(name) = HeaderName::from_bytes(h.name.as_bytes()) else { continue };
        if let Ok(v) = HeaderValue::from_bytes(h.value) {
            headers.append(name, v);
        }
    }
    if let Some(len) = info.length {
        headers.insert(http::header::CONTENT_LENGTH, HeaderValue::from(len));
    }
    headers
}

/// The HTTP/1.1 request head for an HTTP/2 request.
fn write_h1_head(
    out: &mut Vec<u8>,
    parts: &http::request::Parts,
    (host, target): (&[u8], &str),
    fwd: &Forwarded,
    framing: Framing,
    underscores: bool,
) {
    use std::io::Write;
    let _ = write!(out, "{} {target} HTTP/1.1\r\n", parts.method);
    codec::write_field(out, b"Host", &[host]);
    let mut cookies: Vec<&[u8]> = Vec::new();
    let mut seen = Seen::default();
    for (name, value) in &parts.headers {
        let n = name.as_str().as_bytes();
        if fields::request_drops(n, &[]) {
            seen.note(n, value.as_bytes());
            continue;
        }
        if !underscores && fields::has_underscore(n) {
            continue;
        }
        // HTTP/2 may split Cookie into several fields; HTTP/1.1 wants one (RFC 9113 §8.2.3).
        if name == http::header::COOKIE {
            cookies.push(value.as_bytes());
            continue;
        }
        codec::write_field(out, n, &[value.as_bytes()]);
    }
    if !cookies.is_empty() {
        codec::write_field(out, b"Cookie", &[&cookies.join(&b"; "[..])]);
    }
    fwd.write(&seen, |name, value| codec::write_field(out, name.as_bytes(), value));
    let length = if let Framing::Length(n) = framing { Some(n) } else { None };
    codec::write_framing(out, framing, length);
    out.extend_from_slice(b"\r\n");
}

/// The fields of an HTTP/1.1 trailer section (`lines`, each ending in CRLF) that may travel
/// as HTTP/2 trailers: not framing, routing or connection fields (RFC 9110 §6.5.1). None when
/// there are none, or the section does not parse (it is then dropped, as a proxy may).
fn trailer_fields(lines: &[u8]) -> Option<HeaderMap> {
    if lines.is_empty() {
        return None;
    }
    let section = [lines, b"\r\n"].concat();
    let mut hs = [httparse::EMPTY_HEADER; 64];
    let httparse::Status::Complete((_, fields)) = httparse::parse_headers(&section, &mut hs).ok()? else {
        return None;
    };
    let mut map = HeaderMap::with_capacity(fields.len());
    for f in fields.iter() {
        let Ok(name) = HeaderName::from_bytes(f.name.as_bytes()) else { continue };
        if !fields::may_trail(name.as_ref()) {
            continue;
        }
        if let Ok(v) = HeaderValue::from_bytes(f.value) {
            map.append(name, v);
        }
    }
    (!map.is_empty()).then_some(map)
}

/// A request body read ahead of the upstream exchange (`proxy-request-buffering`).
struct Buffered {
    data: Vec<u8>,
    /// The stream ended: `data` is the whole body.
    complete: bool,
    _reserved: crate::proxy::Reserved,
}

/// Reads the request body into memory, up to `client-body-buffer-size` and while the worker's
/// budget allows. None: not buffered (too large by its content-length, or no budget left).
async fn buffer_body<I: Io>(
    w: &Worker<I>,
    body: &mut RecvStream,
    length: Option<u64>,
    settings: &Settings,
    pace: &mut Pace,
) -> Result<Option<Buffered>, ProxyError> {
    let limit = settings.body_buffer_size;
    if length.is_some_and(|n| n > limit) {
        return Ok(None);
    }
    let Some(reserved) = w.reserve_body_buffer(length.unwrap_or(limit)) else { return Ok(None) };
    let mut data = Vec::new();
    while (data.len() as u64) < limit {
        let Some(chunk) = next_body_data::<I>(body, settings, pace).await? else {
            if length.is_some_and(|n| n != data.len() as u64) {
                return Err(ProxyError::downstream(Kind::BadRequest, "body length differs from its content-length"));
            }
            return Ok(Some(Buffered { data, complete: true, _reserved: reserved }));
        };
        data.extend_from_slice(&chunk);
        check_body_size(data.len() as u64, length, settings)?;
    }
    Ok(Some(Buffered { data, complete: false, _reserved: reserved }))
}

/// The body limit, and a body longer than its content-length (400).
fn check_body_size(total: u64, length: Option<u64>, settings: &Settings) -> Result<(), ProxyError> {
    if settings.max_body_bytes != 0 && total > settings.max_body_bytes {
        return Err(ProxyError::downstream(Kind::BodyTooLarge, "request body too large"));
    }
    if length.is_some_and(|n| total > n) {
        return Err(ProxyError::downstream(Kind::BadRequest, "body longer than its content-length"));
    }
    Ok(())
}

/// The next DATA of a request body, with its flow-control credit given back, as long as the
/// body keeps `client-body-min-rate` and `client-body-timeout` (408 otherwise). None: the
/// body ended.
async fn next_body_data<I: Io>(
    body: &mut RecvStream,
    settings: &Settings,
    pace: &mut Pace,
) -> Result<Option<Bytes>, ProxyError> {
    let wait = settings.body_wait(pace.start, pace.received);
    let next = match select(std::pin::pin!(body.data()), std::pin::pin!(I::sleep(wait))).await {
        Either::Left((next, _)) => next,
        Either::Right(_) => {
            return Err(ProxyError::downstream(
                Kind::RequestTimeout,
                "request body too slow (client-body-min-rate) or stalled (client-body-timeout)",
            ))
        }
    };
    let Some(chunk) = next else { return Ok(None) };
    let chunk = chunk.map_err(h2_down)?;
    let _ = body.flow_control().release_capacity(chunk.len());
    pace.received += chunk.len() as u64;
    Ok(Some(chunk))
}

/// The body of an HTTP/2 request still arriving, for [`client::send`]: streamed to an
/// HTTP/1.1 upstream (chunk-framed when its length is unknown), releasing flow-control credit
/// as it goes and enforcing the body limit and the minimum rate.
struct RestOfBody<'a, I> {
    body: &'a mut RecvStream,
    /// The stream ended, or its body was buffered whole.
    done: bool,
    framing: Framing,
    settings: &'a Settings,
    progress: &'a Progress,
    /// Body bytes already sent with the head.
    sent: u64,
    pace: Pace,
    io: std::marker::PhantomData<I>,
}

impl<I: Io> client::RequestBody for RestOfBody<'_, I> {
    fn is_done(&self) -> bool {
        self.done
    }

    async fn send_rest<U: crate::runtime::Stream>(&mut self, clock: Clock<'_>, up: &U) -> Result<(), ProxyError> {
        let (settings, framing) = (self.settings, self.framing);
        let mut total = self.sent;
        let mut buf = Vec::with_capacity(16 * 1024);
        while let Some(chunk) = next_body_data::<I>(self.body, settings, &mut self.pace).await? {
            total += chunk.len() as u64;
            self.progress.add_in(chunk.len());
            let declared = if let Framing::Length(n) = framing { Some(n) } else { None };
            check_body_size(total, declared, settings)?;
            buf.clear();
            if framing == Framing::Chunked {
                crate::proxy::h1::body::write_chunk(&mut buf, &chunk);
            } else {
                buf.extend_from_slice(&chunk);
            }
            let (r, b) = clock.write_for(up, buf, settings.upstream_send_timeout).await;
            buf = b;
            r.map_err(|e| ProxyError::io(Kind::UpstreamProtocol, Side::Upstream, "sending the request body", e))?;
        }
        self.done = true;
        if let Framing::Length(n) = framing {
            if total != n {
                return Err(ProxyError::downstream(Kind::BadRequest, "body shorter than its content-length"));
            }
        }
        if framing == Framing::Chunked {
            // The last chunk. The request's trailers are not forwarded: an HTTP/1.1 upstream
            // does not need them, and a trailer field may not frame or route (RFC 9110 §6.5.1).
            buf.clear();
            buf.extend_from_slice(b"0\r\n\r\n");
            let (r, _) = clock.write_for(up, buf, settings.upstream_send_timeout).await;
            r.map_err(|e| ProxyError::io(Kind::UpstreamProtocol, Side::Upstream, "sending the request body", e))?;
        }
        Ok(())
    }
}
