//! The exchange of one routed HTTP/1.1 request: its body streamed (or buffered) to the
//! upstream through [`client::send`], and the response relayed to the client (interim
//! responses, upgrades, chunked or length framing, de-chunked for HTTP/1.0 clients).

use super::{write_client, Conn, READ_CHUNK};
use crate::proxy::error::{Kind, ProxyError, Side};
use crate::proxy::h1::body::{Body, Pace};
use crate::proxy::h1::client::{self, UpstreamConn};
use crate::proxy::h1::codec::{self, Framing, RequestInfo};
use crate::proxy::{compress, pipeline, tunnel, LocalSnapshot, Worker};
use crate::runtime::io::Clock;
use crate::runtime::{Io, Stream};
use crate::snapshot::compression::Accepts;
use crate::snapshot::BackendId;

/// Where a routed request goes, as the pipeline decided it.
#[derive(Clone, Copy)]
pub(super) struct To<'a> {
    pub snap: &'a LocalSnapshot,
    pub settings: &'a crate::snapshot::Settings,
    pub backend: BackendId,
    /// Over TLS (`backend-protocol: HTTPS`), with the route's profile.
    pub tls: Option<&'a crate::snapshot::upstream_tls::UpstreamTls>,
    pub pick: crate::upstream::Pick,
    /// What the proxy adds to the response.
    pub reply: Option<&'a pipeline::Reply>,
    /// `limit-rate` of the response body.
    pub pace: Option<(u64, u64)>,
    /// The codings the client accepts for compressed responses.
    pub accepts: crate::snapshot::compression::Accepts,
    /// RequestMirror's backends.
    pub mirror: &'a [BackendId],
}

/// Sends the request upstream (retrying where that is safe), relays the response, and pools
/// the upstream connection if it can be reused.
pub(super) async fn forward<I: Io, S: Stream>(
    w: &Worker<I>,
    c: &mut Conn<S>,
    to: &To<'_>,
    info: &RequestInfo,
    mut body: Body,
) -> Result<bool, ProxyError> {
    let To { snap, settings, backend, tls, pick, reply, pace: rate, accepts, mirror } = *to;
    let watch = c.watch.clone();
    let clock = Clock { deadlines: &w.deadlines, watch: &watch };
    let mut pace = Pace::new();
    let mut expect = info.expect_continue;
    if settings.request_buffering && !body.is_done() {
        buffer_body(w, clock, c, &mut body, &mut expect, settings, &mut pace).await?;
    }
    let started = std::time::Instant::now();
    let to = client::Attempt { snap, backend, tls, settings, idempotent: info.idempotent, pick };
    let head = std::mem::take(&mut c.out);
    if !mirror.is_empty() {
        // Only a request whole in `head` is copied: a body is never held back for a mirror.
        match body.is_done() {
            true => crate::proxy::mirror::mirror(w, snap, mirror, &head),
            false => crate::proxy::bump(&w.stats.mirrors_skipped),
        }
    }
    let mut ubuf = std::mem::take(&mut c.ubuf);
    let tried = std::cell::Cell::new(None);
    let sent = {
        let mut rest = RestOfBody { c: &mut *c, body: &mut body, expect, settings, pace: &mut pace };
        client::send(w, clock, &to, head, &mut rest, &mut ubuf, |a| tried.set(Some(a))).await
    };
    c.ubuf = ubuf;
    c.rec.upstream = tried.get();
    let (up, head) = sent?;
    c.out = head;
    // `custom-http-errors`: the upstream's answer is dropped unread (so is its connection)
    // and the error page goes out instead. Only once the whole request was sent: a client
    // still sending a body gets the upstream's answer as it is.
    let intercepts = body.is_done() && c.rec.key.errors.is_some();
    let code = match intercepts {
        true => client::read_status(&up.io, &mut c.ubuf, clock, clock.after(settings.upstream_timeout)).await?,
        false => None,
    };
    if let Some(code) = code.filter(|code| c.rec.key.error_page(*code).is_some()) {
        drop(up);
        c.rec.upstream_status = code;
        c.rec.upstream_time = Some(started.elapsed());
        return Err(ProxyError::upstream(Kind::Intercepted(code), "custom-http-errors"));
    }
    let keep = relay_response(w, clock, c, up, info, (body.is_done(), reply, rate, accepts), settings).await?;
    c.rec.upstream_time = Some(started.elapsed());
    Ok(keep)
}

/// The body of an HTTP/1.1 request still on the client connection, for [`client::send`].
struct RestOfBody<'a, S> {
    c: &'a mut Conn<S>,
    body: &'a mut Body,
    /// `Expect: 100-continue` not answered yet.
    expect: bool,
    settings: &'a crate::snapshot::Settings,
    pace: &'a mut Pace,
}

impl<S: Stream> client::RequestBody for RestOfBody<'_, S> {
    fn is_done(&self) -> bool {
        self.body.is_done()
    }

    async fn send_rest<U: Stream>(&mut self, clock: Clock<'_>, up: &U) -> Result<(), ProxyError> {
        let expect = std::mem::take(&mut self.expect);
        send_body(clock, self.c, up, self.body, expect, self.settings, self.pace).await
    }
}

/// Reads more request body bytes into `c.buf` (empty on entry), as long as the body keeps
/// its minimum rate and `client-body-timeout`; 408 otherwise.
async fn read_body_bytes<S: Stream>(
    clock: Clock<'_>,
    c: &mut Conn<S>,
    settings: &crate::snapshot::Settings,
    pace: &Pace,
) -> Result<(), ProxyError> {
    debug_assert!(c.buf.is_empty());
    if c.buf.capacity() < READ_CHUNK {
        c.buf.reserve(READ_CHUNK);
    }
    let wait = settings.body_wait(pace.start, pace.received);
    let (r, b) = clock.read_for(&c.io, std::mem::take(&mut c.buf), wait).await;
    c.buf = b;
    match r {
        Ok(0) => Err(ProxyError::downstream(Kind::Closed, "client closed inside the request body")),
        Ok(_) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::TimedOut => Err(ProxyError::io(
            Kind::RequestTimeout,
            Side::Downstream,
            "request body too slow (client-body-min-rate) or stalled (client-body-timeout)",
            e,
        )),
        Err(e) => Err(ProxyError::io(Kind::Closed, Side::Downstream, "reading the request body", e)),
    }
}

/// `proxy-request-buffering`: reads the body into `c.out`, behind the request head and framed
/// as it will be sent, before an upstream connection is taken, so a slow client holds no
/// upstream. Only a body that fits `client-body-buffer-size` and the worker's budget is
/// buffered; a larger one is streamed from where this stopped.
async fn buffer_body<I: Io, S: Stream>(
    w: &Worker<I>,
    clock: Clock<'_>,
    c: &mut Conn<S>,
    body: &mut Body,
    expect: &mut bool,
    settings: &crate::snapshot::Settings,
    pace: &mut Pace,
) -> Result<(), ProxyError> {
    let limit = settings.body_buffer_size;
    // A body of known length reserves what it needs; a chunked one the whole buffer size.
    let need = match body {
        Body::Length(n) if *n > limit => return Ok(()),
        Body::Length(n) => *n,
        _ => limit,
    };
    let Some(_reserved) = w.reserve_body_buffer(need) else { return Ok(()) };
    if std::mem::take(expect) {
        let head = std::mem::take(&mut c.out);
        c.out.extend_from_slice(b"HTTP/1.1 100 Continue\r\n\r\n");
        write_client(clock, c, settings.idle_timeout).await?;
        c.out = head;
    }
    let start = c.out.len();
    while !body.is_done() && ((c.out.len() - start) as u64) < limit {
        read_body_bytes(clock, c, settings, pace).await?;
        take_body_bytes(c, body, settings, pace)?;
    }
    Ok(())
}

/// Moves the body bytes just read (`c.buf`) to `c.out`, framed as [`Body::forward`] frames
/// them, counts them, and enforces the body limit. What follows the body stays in `c.buf`.
fn take_body_bytes<S>(
    c: &mut Conn<S>,
    body: &mut Body,
    settings: &crate::snapshot::Settings,
    pace: &mut Pace,
) -> Result<(), ProxyError> {
    let Conn { buf, out, .. } = &mut *c;
    let k = body.forward(buf, out).map_err(|_| ProxyError::downstream(Kind::BadRequest, "invalid chunked body"))?;
    buf.drain(..k);
    pace.received += k as u64;
    c.rec.bytes_in += k as u64;
    if body.over_limit(settings.max_body_bytes) {
        return Err(ProxyError::downstream(Kind::BodyTooLarge, "request body too large"));
    }
    Ok(())
}

/// Streams the rest of the request body from the client to the upstream.
async fn send_body<S: Stream, U: Stream>(
    clock: Clock<'_>,
    c: &mut Conn<S>,
    up: &U,
    body: &mut Body,
    expect_continue: bool,
    settings: &crate::snapshot::Settings,
    pace: &mut Pace,
) -> Result<(), ProxyError> {
    if expect_continue {
        c.out.clear();
        c.out.extend_from_slice(b"HTTP/1.1 100 Continue\r\n\r\n");
        write_client(clock, c, settings.idle_timeout).await?;
    }
    while !body.is_done() {
        read_body_bytes(clock, c, settings, pace).await?;
        if body.is_chunked() {
            // Framed anew by the proxy: its own chunk sizes, no extensions, no trailers.
            c.out.clear();
            take_body_bytes(c, body, settings, pace)?;
            let (r, out) = clock.write_for(up, std::mem::take(&mut c.out), settings.upstream_send_timeout).await;
            c.out = out;
            r.map_err(|e| ProxyError::io(Kind::UpstreamProtocol, Side::Upstream, "sending the request body", e))?;
            continue;
        }
        let k = body
            .consume(&c.buf, &mut |_| {})
            .map_err(|_| ProxyError::downstream(Kind::BadRequest, "invalid chunked body"))?;
        c.rec.bytes_in += k as u64;
        pace.received += k as u64;
        let chunk = if k == c.buf.len() {
            std::mem::take(&mut c.buf)
        } else {
            // The body ended inside this read: the rest is the next request.
            c.out.clear();
            c.out.extend_from_slice(&c.buf[..k]);
            c.buf.drain(..k);
            std::mem::take(&mut c.out)
        };
        let whole = k != 0 && chunk.len() == k && c.buf.is_empty();
        let (r, mut chunk) = clock.write_for(up, chunk, settings.upstream_send_timeout).await;
        r.map_err(|e| ProxyError::io(Kind::UpstreamProtocol, Side::Upstream, "sending the request body", e))?;
        chunk.clear();
        if whole {
            c.buf = chunk;
        } else {
            c.out = chunk;
        }
    }
    Ok(())
}

/// A response head as the HTTP/1.1 client gets it.
enum Step {
    /// An interim response of this many bytes (its head is in `out` when the client gets it).
    Interim(usize),
    Final(Final),
}

/// The final response head: its framing and what the proxy does after it.
struct Final {
    resp: codec::ResponseInfo,
    close: bool,
    dechunk: bool,
    /// The body is compressed (`use-gzip`, `enable-brotli`), and sent chunked.
    encoder: Option<compress::Encoder>,
}

/// Writes a response head for the client into `out`. `draining`: the response closes the
/// connection (a drain started after the request came).
fn client_head(
    out: &mut Vec<u8>,
    resp: &httparse::Response<'_, '_>,
    r: &codec::ResponseInfo,
    info: &RequestInfo,
    (request_done, draining): (bool, bool),
    (extra, reply, used): (&[u8], Option<&pipeline::Reply>, std::net::SocketAddr),
    (granted, compression): (Option<&crate::proxy::external::Granted>, Compression<'_>),
) -> Result<Step, ProxyError> {
    if (100..200).contains(&r.status) && r.status != 101 {
        // 100 answers an Expect the proxy already handled; other interim responses
        // (103 Early Hints) go to HTTP/1.1 clients.
        if r.status != 100 && !info.http10 {
            codec::write_response_head(out, resp, r, (false, false, false), b"", &|_| false);
        }
        return Ok(Step::Interim(r.head_len));
    }
    if r.status == 101 && !info.upgrade {
        return Err(ProxyError::upstream(Kind::UpstreamProtocol, "101 without an upgrade request"));
    }
    let dechunk = info.http10 && r.framing == Framing::Chunked;
    let close =
        !info.keep_alive || draining || !request_done || r.framing == Framing::UntilClose || dechunk || r.status == 101;
    // Compression: chosen by the response's fields ([`crate::snapshot::compression`]); an
    // empty body is not compressed. (HTTP/1.0 clients are never offered it, so the
    // compressed body goes chunked.)
    let field = |n: &str| resp.headers.iter().find(|h| h.name.eq_ignore_ascii_case(n)).map(|h| h.value);
    let (settings, accepts) = compression;
    let choice = settings.choose(accepts, (r.status, info.is_head || r.framing == Framing::Length(0)), r.length, field);
    let encoder = choice.coding.and_then(compress::Encoder::new);
    let weak_etag = encoder.as_ref().and(field("etag")).and_then(compress::weak_etag);
    let chunked_out = (r.framing == Framing::Chunked && !dechunk) || encoder.is_some();
    let cookies = granted.map(|g| g.cookies_for(r.status)).filter(|c| !c.is_empty());
    let framing = (chunked_out, close, info.http10);
    if cookies.is_none() && reply.is_none() && !choice.vary {
        codec::write_response_head(out, resp, r, framing, extra, &|_| false);
    } else {
        // The external authentication service's cookies, CORS and affinity go on the answer.
        let mut with = extra.to_vec();
        if choice.vary {
            codec::write_field(&mut with, b"Vary", &[b"Accept-Encoding"]);
        }
        if let Some(coding) = choice.coding.filter(|_| encoder.is_some()) {
            codec::write_field(&mut with, b"Content-Encoding", &[coding.0.token().as_bytes()]);
        }
        if let Some(etag) = &weak_etag {
            codec::write_field(&mut with, b"ETag", &[etag]);
        }
        for c in cookies.into_iter().flatten() {
            codec::write_field(&mut with, b"Set-Cookie", &[c]);
        }
        if let Some(reply) = reply {
            reply.each((Some(used), r.status), |name, value| codec::write_field(&mut with, name.as_bytes(), &[value]));
            // `proxy-redirect-*`, `proxy-cookie-*`: the upstream's fields, rewritten where
            // they match, follow the rest of its head.
            for h in
                resp.headers.iter().filter(|h| reply.rewrites(h.name.as_bytes()) && !reply.replaces(h.name.as_bytes()))
            {
                let new = reply.rewritten(h.name.as_bytes(), h.value);
                codec::write_field(&mut with, h.name.as_bytes(), &[new.as_deref().unwrap_or(h.value)]);
            }
        }
        let replaced = |name: &[u8]| {
            reply.is_some_and(|p| p.replaces(name) || p.rewrites(name))
                || (weak_etag.is_some() && name.eq_ignore_ascii_case(b"etag"))
        };
        codec::write_response_head(out, resp, r, framing, &with, &replaced);
    }
    Ok(Step::Final(Final { resp: *r, close, dechunk, encoder }))
}

async fn relay_response<I: Io, S: Stream>(
    w: &Worker<I>,
    clock: Clock<'_>,
    c: &mut Conn<S>,
    up: UpstreamConn<client::Transport<I::Stream>>,
    info: &RequestInfo,
    (request_done, reply, pace, accepts): (bool, Option<&pipeline::Reply>, Option<(u64, u64)>, Accepts),
    settings: &crate::snapshot::Settings,
) -> Result<bool, ProxyError> {
    // Headers the ConfigMap adds to every proxied response (`add-headers`, HSTS over TLS).
    let snap = w.snapshot();
    let extra = snap.edge.h1(c.entry.tls);
    let mut fin = loop {
        c.out.clear();
        let state = (request_done, w.draining());
        let Conn { ubuf, out, granted, .. } = &mut *c;
        let granted = granted.as_deref();
        let step = client::response_head(&up.io, ubuf, clock, settings, info.is_head, |resp, r| {
            client_head(
                out,
                resp,
                r,
                info,
                state,
                (extra, reply, up.addr),
                (granted, (&snap.edge.compression, accepts)),
            )
        })
        .await?;
        match step {
            Step::Final(f) => {
                c.rec.status = f.resp.status;
                c.rec.upstream_status = f.resp.status;
                break f;
            }
            Step::Interim(n) => {
                c.ubuf.drain(..n);
                if !c.out.is_empty() {
                    c.response_started = true;
                    write_client(clock, c, settings.idle_timeout).await?;
                }
            }
        }
    };
    let head_len = fin.resp.head_len;

    if fin.resp.status == 101 {
        c.out.extend_from_slice(&c.ubuf[head_len..]);
        c.response_started = true;
        write_client(clock, c, settings.idle_timeout).await?;
        if !c.buf.is_empty() {
            let (r, _) = clock.write_for(&up.io, std::mem::take(&mut c.buf), settings.upstream_send_timeout).await;
            r.map_err(|e| ProxyError::io(Kind::Closed, Side::Upstream, "tunnel", e))?;
        }
        tunnel::run(&c.io, &up.io, std::mem::take(&mut c.ubuf), Vec::new()).await;
        return Ok(false);
    }

    let mut body = Body::new(fin.resp.framing);
    if !fin.dechunk && fin.encoder.is_none() {
        // A chunked response's trailer fields reach an HTTP/1.1 client (filtered).
        body.keep_trailers();
    }
    let k = {
        let Conn { ubuf, out, .. } = &mut *c;
        consume_response(&mut body, &ubuf[head_len..], out, (fin.dechunk, fin.encoder.as_mut()))?
    };
    // Bytes after the response mean the upstream cannot be trusted with another request.
    let mut clean = c.ubuf.len() - head_len - k == 0;
    c.response_started = true;
    write_client(clock, c, settings.idle_timeout).await?;

    let throttle = crate::proxy::limits::Throttle::new(pace);
    while !body.is_done() {
        if !client::read_body(&up.io, &mut c.ubuf, clock, settings.upstream_timeout, &body, READ_CHUNK).await? {
            if let Some(e) = fin.encoder.as_mut() {
                // A body that ends at the close: its compressed stream (and chunks) end here.
                c.out.clear();
                end_compressed(&mut c.out, e);
                write_client(clock, c, settings.idle_timeout).await?;
            }
            break;
        }
        // `limit-rate`: these bytes leave when the rate allows the total.
        crate::proxy::limits::Throttle::pause::<I>(&throttle, c.rec.bytes_out + c.ubuf.len() as u64).await;
        if !fin.dechunk && !body.is_chunked() && fin.encoder.is_none() {
            // Length or close delimited: the bytes go on as they came, without a copy.
            let k = body
                .consume(&c.ubuf, &mut |_| {})
                .map_err(|_| ProxyError::upstream(Kind::Closed, "invalid response body"))?;
            if k != c.ubuf.len() {
                c.ubuf.truncate(k);
                clean = false;
            }
            c.rec.bytes_out += c.ubuf.len() as u64;
            let (r, b) = clock.write_for(&c.io, std::mem::take(&mut c.ubuf), settings.idle_timeout).await;
            c.ubuf = b;
            r.map_err(|e| ProxyError::io(Kind::Closed, Side::Downstream, "writing the response body", e))?;
        } else {
            c.out.clear();
            let Conn { ubuf, out, .. } = &mut *c;
            let k = consume_response(&mut body, ubuf, out, (fin.dechunk, fin.encoder.as_mut()))?;
            clean &= k == ubuf.len();
            write_client(clock, c, settings.idle_timeout).await?;
        }
    }
    client::release(w, up, fin.resp.reusable && request_done && clean, settings);
    Ok(!fin.close)
}

/// Appends the response body bytes of `data` to `out` and returns how many bytes of `data`
/// the body took: decoded when `dechunk`; compressed by `encoder` into chunks (flushed when
/// `data` is less than a full read: the upstream has nothing more now; ended with the body);
/// else as [`Body::forward`] frames them.
fn consume_response(
    body: &mut Body,
    data: &[u8],
    out: &mut Vec<u8>,
    (dechunk, encoder): (bool, Option<&mut compress::Encoder>),
) -> Result<usize, ProxyError> {
    let bad = |_| ProxyError::upstream(Kind::Closed, "invalid chunked response body");
    let Some(e) = encoder else {
        return match dechunk {
            true => body.consume(data, &mut |d| out.extend_from_slice(d)).map_err(bad),
            false => body.forward(data, out).map_err(bad),
        };
    };
    let (k, packed) = if body.is_chunked() {
        let mut decoded = Vec::with_capacity(data.len());
        let k = body.consume(data, &mut |d| decoded.extend_from_slice(d)).map_err(bad)?;
        (k, e.push(&decoded, !body.is_done() && data.len() < READ_CHUNK))
    } else {
        let k = body.consume(data, &mut |_| {}).map_err(bad)?;
        (k, e.push(&data[..k], !body.is_done() && data.len() < READ_CHUNK))
    };
    if !packed.is_empty() {
        crate::proxy::h1::body::write_chunk(out, &packed);
    }
    if body.is_done() {
        end_compressed(out, e);
    }
    Ok(k)
}

/// The compressed stream's last bytes and the last chunk.
fn end_compressed(out: &mut Vec<u8>, e: &mut compress::Encoder) {
    let tail = e.finish();
    if !tail.is_empty() {
        crate::proxy::h1::body::write_chunk(out, &tail);
    }
    out.extend_from_slice(b"0\r\n\r\n");
}

/// The compression settings and what the client accepts, for [`client_head`].
type Compression<'a> = (&'a crate::snapshot::compression::Compression, Accepts);
