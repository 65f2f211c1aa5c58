//! gRPC backends (`backend-protocol: GRPC`, legacy `grpc-backend: "true"`): each downstream
//! HTTP/2 stream becomes a stream on an HTTP/2 (h2c) connection to an endpoint, shared per
//! worker per endpoint. Request and response bodies flow both ways at once (all four call
//! types), and trailers (`grpc-status`) pass through.

use std::net::SocketAddr;

use bytes::Bytes;
use futures::future::{select, Either};
use h2::client::SendRequest;
use h2::server::SendResponse;
use h2::{Reason, RecvStream, SendStream};
use http::{HeaderMap, Request};

use super::bridge::IoBridge;
use super::error::{Kind, ProxyError, Side};
use super::fields::{self, Forwarded, Seen};
use super::h2::{send_all, Progress, ReqStream};
use super::{bump, LocalSnapshot, Worker};
use crate::runtime::Io;
use crate::snapshot::Settings;

fn up_err(context: &'static str, e: h2::Error) -> ProxyError {
    ProxyError::io(Kind::UpstreamProtocol, Side::Upstream, context, std::io::Error::other(e))
}

fn down_err(e: h2::Error) -> ProxyError {
    ProxyError::io(Kind::Closed, Side::Downstream, "HTTP/2 stream", std::io::Error::other(e))
}

/// A ready HTTP/2 connection to one of the backend's endpoints: the worker's shared one, or
/// a new one (refused endpoints are skipped as for HTTP/1.1).
async fn connection<I: Io>(
    w: &Worker<I>,
    snap: &LocalSnapshot,
    backend: crate::snapshot::BackendId,
    settings: &Settings,
    (tls, pick): (Option<&crate::snapshot::upstream_tls::UpstreamTls>, crate::upstream::Pick),
) -> Result<(SendRequest<Bytes>, SocketAddr), ProxyError> {
    let endpoints = &snap.backend(backend).endpoints;
    let next = settings.next_upstream;
    let started = std::time::Instant::now();
    let mut last = None;
    for attempt in 0..endpoints.len() {
        // `proxy-next-upstream`: a connection that fails moves on while `error` (or
        // `timeout`) and the tries and time allow.
        if attempt > 0 && (!next.when.error || !next.allows_another(attempt, started)) {
            break;
        }
        let addr = endpoints[w.balancer.borrow_mut().pick(snap, backend, attempt, pick)];
        let key = crate::upstream::pool_key(addr, tls);
        let existing = w.h2_upstreams.borrow().get(&key).cloned();
        if let Some(sr) = existing {
            match sr.ready().await {
                Ok(sr) => return Ok((sr, addr)),
                Err(_) => {
                    w.h2_upstreams.borrow_mut().remove(&key);
                }
            }
        }
        if attempt > 0 {
            bump(&w.stats.upstream_retries);
        }
        bump(&w.stats.upstream_connects);
        let io = match I::connect(addr, settings.connect_timeout).await {
            Ok(io) => io,
            Err(e) => {
                bump(&w.stats.upstream_connect_errors);
                w.balancer.borrow_mut().failed(addr);
                last = Some(e);
                continue;
            }
        };
        let mut b = h2::client::Builder::new();
        b.initial_window_size(1 << 20).initial_connection_window_size(4 << 20).max_send_buffer_size(256 * 1024);
        let handshake = if let Some(profile) = tls {
            // GRPCS: TLS first (ALPN h2), within the connect timeout.
            let target = (profile, snap.backend(backend), addr);
            match super::h1::client::tls_connect::<I>(w, io, target, settings.connect_timeout, true).await {
                Ok(s) => Either::Left(b.handshake::<_, Bytes>(IoBridge::with_initial(s, Vec::new())).await),
                Err(e) => {
                    bump(&w.stats.upstream_connect_errors);
                    w.balancer.borrow_mut().failed(addr);
                    last = Some(e);
                    continue;
                }
            }
        } else {
            Either::Right(b.handshake::<_, Bytes>(IoBridge::with_initial(io, Vec::new())).await)
        };
        let handshake = match handshake {
            Either::Left(r) => r.map(|(sr, conn)| (sr, Either::Left(conn))),
            Either::Right(r) => r.map(|(sr, conn)| (sr, Either::Right(conn))),
        };
        match handshake {
            Ok((sr, conn)) => {
                I::spawn(async move {
                    let r = match conn {
                        Either::Left(c) => c.await,
                        Either::Right(c) => c.await,
                    };
                    if let Err(e) = r {
                        tracing::debug!(%addr, error = %e, "gRPC upstream connection ended");
                    }
                });
                w.h2_upstreams.borrow_mut().insert(key, sr.clone());
                match sr.ready().await {
                    Ok(sr) => return Ok((sr, addr)),
                    Err(e) => last = Some(std::io::Error::other(e)),
                }
            }
            Err(e) => {
                bump(&w.stats.upstream_connect_errors);
                w.balancer.borrow_mut().failed(addr);
                last = Some(std::io::Error::other(e));
            }
        }
    }
    let e = last.unwrap_or_else(|| std::io::Error::other("no endpoints"));
    Err(ProxyError::io(Kind::UpstreamConnect, Side::Upstream, "no endpoint accepted the connection", e))
}

/// A gRPC call to the route's backend: request and response flow both ways at once.
pub(super) async fn forward<I: Io>(
    w: &Worker<I>,
    to: &super::h2::Route<'_>,
    s: ReqStream<'_>,
    fwd: &Forwarded<'_>,
) -> Result<(), ProxyError> {
    let ReqStream { parts, body, respond, progress, .. } = s;
    let (snap, f, target, tls, granted) = (to.snap, to.forward, to.target, to.tls.map(|t| &**t), to.granted);
    let settings = &f.settings;
    let started = std::time::Instant::now();
    let (mut sr, addr) = connection(w, snap, f.backend, settings, (tls, f.pick)).await?;
    progress.upstream.set(Some(addr));
    let authority = f.vhost.unwrap_or(std::str::from_utf8(fwd.authority).unwrap_or_default());
    let uri = http::Uri::builder()
        .scheme("http")
        .authority(authority)
        .path_and_query(target)
        .build()
        .map_err(|_| ProxyError::downstream(Kind::BadRequest, "invalid :authority or :path"))?;
    let mut req = Request::builder().method(parts.method.clone()).uri(uri);
    let headers = req.headers_mut().expect("a fresh builder");
    let mut seen = Seen::default();
    for (name, value) in &parts.headers {
        let n = name.as_str().as_bytes();
        if fields::request_drops(n, &[]) {
            seen.note(n, value.as_bytes());
        } else if settings.underscores_in_headers || !fields::has_underscore(n) {
            headers.append(name, value.clone());
        }
    }
    // TE is hop-by-hop, but `te: trailers` is how an HTTP/2 client says it takes trailers,
    // which gRPC servers look for (RFC 9113 §8.2.2 allows exactly this value).
    if parts.headers.get(http::header::TE).is_some_and(|v| v == "trailers") {
        headers.insert(http::header::TE, http::HeaderValue::from_static("trailers"));
    }
    fwd.write(&seen, |name, value| {
        if let Ok(v) = http::HeaderValue::from_bytes(&value.concat()) {
            headers.insert(name, v);
        }
    });
    if let Some(g) = granted {
        g.apply_to_fields(headers);
    }
    let req = req.body(()).map_err(|_| ProxyError::downstream(Kind::BadRequest, "invalid request"))?;
    let end = body.is_end_stream();
    let (response, up_send) = sr.send_request(req, end).map_err(|e| up_err("sending the request", e))?;

    // Both directions at once; the request side ending first is the normal case.
    let pump = pump_request::<I>(body, up_send, end, settings, progress);
    let extra = snap.edge.h2(fwd.scheme == "https");
    let added = (extra, granted, f.reply.as_deref(), addr);
    let throttle = super::limits::Throttle::new(f.pace);
    let relay = relay_response::<I>(w, response, respond, progress, (settings.idle_timeout, throttle), added);
    let r = match select(std::pin::pin!(pump), std::pin::pin!(relay)).await {
        Either::Left((Ok(()), relay)) => relay.await,
        Either::Left((Err(e), _)) => Err(e),
        Either::Right((r, _)) => r,
    };
    if r.is_ok() {
        progress.upstream_time.set(Some(started.elapsed()));
    }
    r
}

/// Downstream request body and trailers -> upstream stream.
async fn pump_request<I: Io>(
    body: &mut RecvStream,
    up: SendStream<Bytes>,
    ended: bool,
    settings: &Settings,
    progress: &Progress,
) -> Result<(), ProxyError> {
    let limit = settings.max_body_bytes;
    let mut up = up;
    if ended {
        return Ok(());
    }
    let mut total = 0u64;
    while let Some(chunk) = body.data().await {
        let chunk = chunk.map_err(down_err)?;
        let _ = body.flow_control().release_capacity(chunk.len());
        total += chunk.len() as u64;
        progress.add_in(chunk.len());
        if limit != 0 && total > limit {
            up.send_reset(Reason::CANCEL);
            return Err(ProxyError::downstream(Kind::BodyTooLarge, "request body too large"));
        }
        send_all::<I>(&mut up, chunk, || settings.upstream_send_timeout)
            .await
            .map_err(|e| up_err("sending the request body", e))?;
    }
    // gRPC needs the request's trailers; fields that frame or route never travel in them
    // (RFC 9110 §6.5.1).
    let trailers = body.trailers().await.map_err(down_err)?.map(|t| {
        let mut kept = HeaderMap::with_capacity(t.len());
        for (name, value) in &t {
            if fields::may_trail(name.as_str().as_bytes()) {
                kept.append(name, value.clone());
            }
        }
        kept
    });
    match trailers {
        Some(t) if !t.is_empty() => up.send_trailers(t).map_err(|e| up_err("sending trailers", e))?,
        _ => up.send_data(Bytes::new(), true).map_err(|e| up_err("ending the request", e))?,
    }
    // Keep the stream open until the response side finishes.
    std::future::pending::<()>().await;
    Ok(())
}

/// What the proxy adds to a gRPC response head: the edge's fields, what external
/// authentication granted, the pipeline's reply, for an answer from this endpoint.
type Added<'a> = (
    &'a [(http::HeaderName, http::HeaderValue)],
    Option<&'a crate::proxy::external::Granted>,
    Option<&'a super::pipeline::Reply>,
    SocketAddr,
);

/// Upstream response head, body and trailers -> downstream stream.
/// `stalled`: how long the client may grant no flow-control credit before the stream is
/// cancelled.
async fn relay_response<I: Io>(
    w: &Worker<I>,
    response: h2::client::ResponseFuture,
    respond: &mut SendResponse<Bytes>,
    progress: &Progress,
    (stalled, throttle): (std::time::Duration, Option<super::limits::Throttle>),
    (extra, granted, reply, used): Added<'_>,
) -> Result<(), ProxyError> {
    let resp = response.await.map_err(|e| up_err("waiting for the response", e))?;
    let (parts, mut body) = resp.into_parts();
    let mut down = http::Response::new(());
    *down.status_mut() = parts.status;
    let mut headers = HeaderMap::with_capacity(parts.headers.len());
    for (name, value) in &parts.headers {
        if !fields::is_hop_by_hop(name.as_str().as_bytes()) {
            headers.append(name, value.clone());
        }
    }
    *down.headers_mut() = headers;
    super::h2::add_fields(down.headers_mut(), extra);
    let status = down.status().as_u16();
    super::h2::add_reply(down.headers_mut(), reply, (Some(used), status));
    if let Some(g) = granted {
        g.add_cookies(down.headers_mut(), parts.status.as_u16());
    }
    let end = body.is_end_stream();
    let mut send = respond.send_response(down, end).map_err(down_err)?;
    progress.upstream_answered(parts.status.as_u16());
    if end {
        return Ok(());
    }
    while let Some(chunk) = body.data().await {
        let chunk = chunk.map_err(|e| up_err("reading the response body", e))?;
        let n = chunk.len();
        progress.add_out(n);
        let _held = super::h2::hold_response_chunk(w, n)?;
        super::limits::Throttle::pause::<I>(&throttle, progress.bytes_out.get()).await;
        send_all::<I>(&mut send, chunk, || stalled).await.map_err(down_err)?;
        // Credit to the upstream only once the client took the chunk: a slow reader slows
        // the upstream down instead of making this proxy buffer for it.
        let _ = body.flow_control().release_capacity(n);
    }
    match body.trailers().await.map_err(|e| up_err("reading trailers", e))? {
        Some(t) => send.send_trailers(t).map_err(down_err)?,
        None => send.send_data(Bytes::new(), true).map_err(down_err)?,
    }
    Ok(())
}
