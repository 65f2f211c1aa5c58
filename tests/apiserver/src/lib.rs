//! An in-memory Kubernetes API server for ringress's tests and benchmarks.
//!
//! Real clients talk to it over loopback HTTP: the `kubectl` on the PATH (which picks its client
//! version from `/version`, so this server says 1.32) and kube-rs inside ringress. It keeps
//! objects as JSON under one global resourceVersion and implements what those clients use:
//! discovery (legacy and aggregated), a minimal OpenAPI v3, create/get/list (paging, label and
//! field selectors)/update (409 on a stale resourceVersion)/delete, merge, strategic-merge, JSON
//! and server-side-apply patches, the status subresource, and watches (bookmarks,
//! `timeoutSeconds`, `sendInitialEvents`, in-stream 410 for a compacted resourceVersion).
//!
//! Fault hooks, for tests ([`ApiServer`] methods) and for scripts (`POST /fixture/...`):
//! compact the history, expire every watch with an in-stream 410, cut every watch connection,
//! fail the next N requests with a status.

mod crd;
pub mod patch;
mod resources;
mod select;
mod store;
mod table;

use std::collections::HashMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper::{Method, Request, Response, StatusCode};
use serde_json::{json, Value};

pub use resources::{all as resources, register_crd};
use select::Selector;
pub use store::{now_rfc3339, ApiError, Requested, Store};
use store::{Filter, ListParams, PatchKind, WatchMsg};

type Body = http_body_util::combinators::BoxBody<Bytes, std::io::Error>;

/// A running server. Dropping it stops serving (the thread ends with the process).
pub struct ApiServer {
    addr: SocketAddr,
    store: Arc<Mutex<Store>>,
}

impl ApiServer {
    /// Starts on `127.0.0.1:0`, on a thread of its own.
    pub fn start() -> std::io::Result<ApiServer> {
        Self::start_on("127.0.0.1:0".parse().expect("literal address"))
    }

    pub fn start_on(addr: SocketAddr) -> std::io::Result<ApiServer> {
        let listener = std::net::TcpListener::bind(addr)?;
        listener.set_nonblocking(true)?;
        let addr = listener.local_addr()?;
        let store = Arc::new(Mutex::new(Store::new()));
        let shared = store.clone();
        std::thread::Builder::new().name("apiserver".into()).spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("tokio runtime");
            rt.block_on(serve(listener, shared));
        })?;
        Ok(ApiServer { addr, store })
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Writes a kubeconfig whose current context is this server.
    pub fn write_kubeconfig(&self, path: &Path) -> std::io::Result<()> {
        std::fs::write(path, kubeconfig(&self.url()))
    }

    fn lock(&self) -> MutexGuard<'_, Store> {
        self.store.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Forgets the event history: watches resuming from before now get an in-stream 410.
    pub fn compact(&self) {
        self.lock().compact();
    }

    /// Ends every open watch with an in-stream `ERROR` event, code 410, reason Expired.
    pub fn expire_watches(&self) {
        self.lock().end_watches(true);
    }

    /// Cuts every open watch connection mid-stream.
    pub fn drop_watches(&self) {
        self.lock().end_watches(false);
    }

    /// Answers the next `n` requests (other than `/fixture/`) with `status`; `n == 0` stops
    /// failing.
    pub fn fail_next(&self, n: usize, status: u16) {
        self.lock().fail = (n > 0).then_some((n, status));
    }

    pub fn open_watches(&self) -> usize {
        self.lock().watch_count()
    }

    /// The resource requests made so far by clients other than kubectl (ringress).
    pub fn requests(&self) -> Vec<Requested> {
        self.lock().requests.clone()
    }

    pub fn resource_version(&self) -> u64 {
        self.lock().resource_version()
    }

    /// Creates (or replaces) an object directly, as if by `kubectl apply`.
    pub fn apply(&self, obj: Value) -> Result<Value, ApiError> {
        apply_object(&mut self.lock(), obj)
    }

    pub fn get(&self, api_version: &str, kind: &str, namespace: &str, name: &str) -> Option<Value> {
        let res = resources::res(resources::by_kind(api_version, kind)?).storage;
        self.lock().get(res, namespace, name).ok().map(|o| in_version(resources::res(res), o))
    }

    pub fn delete(&self, api_version: &str, kind: &str, namespace: &str, name: &str) -> Result<Value, ApiError> {
        let res = resources::by_kind(api_version, kind).ok_or_else(|| ApiError::bad_request("unknown kind"))?;
        let res = resources::res(res).storage;
        self.lock().delete(res, namespace, name)
    }
}

/// Create or replace by the object's own apiVersion/kind/namespace/name.
fn apply_object(store: &mut Store, obj: Value) -> Result<Value, ApiError> {
    let api_version = obj.get("apiVersion").and_then(Value::as_str).unwrap_or("");
    let kind = obj.get("kind").and_then(Value::as_str).unwrap_or("");
    let res = resources::by_kind(api_version, kind)
        .map(|r| resources::res(r).storage)
        .ok_or_else(|| ApiError::bad_request(format!("no resource for {api_version} {kind}")))?;
    let ns = if resources::res(res).namespaced {
        obj.pointer("/metadata/namespace").and_then(Value::as_str).unwrap_or("default").to_string()
    } else {
        String::new()
    };
    let name = obj.pointer("/metadata/name").and_then(Value::as_str).unwrap_or("").to_string();
    match store.get(res, &ns, &name) {
        Ok(_) => store.update(res, &ns, &name, obj, false, false),
        Err(_) => store.create(res, &ns, obj, false),
    }
}

pub fn kubeconfig(url: &str) -> String {
    format!(
        "apiVersion: v1\nkind: Config\nclusters:\n- name: fixture\n  cluster:\n    server: {url}\n\
         users:\n- name: fixture\n  user:\n    token: fixture\n\
         contexts:\n- name: fixture\n  context:\n    cluster: fixture\n    user: fixture\n    namespace: default\n\
         current-context: fixture\n"
    )
}

async fn serve(listener: std::net::TcpListener, store: Arc<Mutex<Store>>) {
    let listener = tokio::net::TcpListener::from_std(listener).expect("listener on the runtime");
    // Bookmarks for watches that asked for them.
    let ticker = store.clone();
    tokio::spawn(async move {
        let mut every = tokio::time::interval(Duration::from_secs(1));
        loop {
            every.tick().await;
            ticker.lock().unwrap_or_else(|e| e.into_inner()).send_bookmarks();
        }
    });
    loop {
        let Ok((stream, _)) = listener.accept().await else { continue };
        let _ = stream.set_nodelay(true);
        let store = store.clone();
        tokio::spawn(async move {
            let svc = hyper::service::service_fn(move |req| handle(req, store.clone()));
            let io = hyper_util::rt::TokioIo::new(stream);
            let _ = hyper::server::conn::http1::Builder::new().serve_connection(io, svc).await;
        });
    }
}

fn full(bytes: impl Into<Bytes>) -> Body {
    Full::new(bytes.into()).map_err(|never: Infallible| match never {}).boxed()
}

fn respond(status: u16, content_type: &str, body: Bytes) -> Response<Body> {
    Response::builder()
        .status(status)
        .header("content-type", content_type)
        .body(full(body))
        .expect("valid response parts")
}

fn json_response(status: u16, v: &Value) -> Response<Body> {
    respond(status, "application/json", Bytes::from(serde_json::to_vec(v).expect("JSON values serialize")))
}

fn error_response(e: &ApiError) -> Response<Body> {
    json_response(e.code, &e.status())
}

fn query_map(q: Option<&str>) -> HashMap<String, String> {
    let mut out = HashMap::new();
    for pair in q.unwrap_or("").split('&').filter(|p| !p.is_empty()) {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        out.insert(decode(k), decode(v));
    }
    out
}

/// Percent-decoding of one query component (`+` is a space).
fn decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'%' if i + 2 < b.len() => {
                match u8::from_str_radix(std::str::from_utf8(&b[i + 1..i + 3]).unwrap_or("zz"), 16) {
                    Ok(v) => {
                        out.push(v);
                        i += 3;
                        continue;
                    }
                    Err(_) => out.push(b'%'),
                }
            }
            b'+' => out.push(b' '),
            c => out.push(c),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

async fn handle(req: Request<Incoming>, store: Arc<Mutex<Store>>) -> Result<Response<Body>, Infallible> {
    let path = req.uri().path().to_string();
    if let Some(hook) = path.strip_prefix("/fixture/") {
        return Ok(fixture(hook, req, &store).await);
    }
    if let Some(status) = store.lock().unwrap_or_else(|e| e.into_inner()).take_failure() {
        let e = ApiError::new(status, "InternalError", format!("injected failure ({status})"));
        return Ok(error_response(&e));
    }
    let accept = req.headers().get("accept").and_then(|v| v.to_str().ok()).unwrap_or("").to_string();
    let aggregated = accept.contains("as=APIGroupDiscoveryList");
    let discovery = |v: Value| {
        if aggregated {
            let body = Bytes::from(serde_json::to_vec(&v).expect("JSON"));
            respond(200, resources::AGGREGATED, body)
        } else {
            json_response(200, &v)
        }
    };
    let resp = match path.trim_end_matches('/') {
        "/version" => json_response(200, &resources::version()),
        "/healthz" | "/readyz" | "/livez" => respond(200, "text/plain", Bytes::from_static(b"ok")),
        "/api" if aggregated => discovery(resources::aggregated(true)),
        "/api" => json_response(200, &resources::core_versions()),
        "/apis" if aggregated => discovery(resources::aggregated(false)),
        "/apis" => json_response(200, &resources::group_list()),
        "/openapi/v3" => json_response(200, &resources::openapi_root()),
        p if p.starts_with("/openapi/v3/") => match resources::openapi_doc(&p["/openapi/v3/".len()..]) {
            Some(doc) => json_response(200, &doc),
            None => error_response(&ApiError::new(404, "NotFound", "no such OpenAPI document")),
        },
        _ => match rest(req, &path, &store).await {
            Ok(r) => r,
            Err(e) => error_response(&e),
        },
    };
    Ok(resp)
}

async fn fixture(hook: &str, req: Request<Incoming>, store: &Arc<Mutex<Store>>) -> Response<Body> {
    let q = query_map(req.uri().query());
    let body = req.into_body().collect().await.map(|b| b.to_bytes()).unwrap_or_default();
    let mut s = store.lock().unwrap_or_else(|e| e.into_inner());
    match hook {
        "compact" => s.compact(),
        "expire-watches" => s.end_watches(true),
        "drop-watches" => s.end_watches(false),
        "fail" => {
            let n = q.get("count").and_then(|v| v.parse().ok()).unwrap_or(1);
            let status = q.get("status").and_then(|v| v.parse().ok()).unwrap_or(500);
            s.fail = (n > 0).then_some((n, status));
        }
        // A List (or one object) created or replaced in one step: how benchmarks load 100,000
        // objects without 100,000 requests.
        "load" => {
            let v: Value = match serde_json::from_slice(&body) {
                Ok(v) => v,
                Err(e) => return error_response(&ApiError::bad_request(e.to_string())),
            };
            let items = match v.get("items") {
                Some(Value::Array(items)) => items.clone(),
                _ => vec![v],
            };
            let n = items.len();
            for item in items {
                if let Err(e) = apply_object(&mut s, item) {
                    return error_response(&e);
                }
            }
            return json_response(200, &json!({"loaded": n, "resourceVersion": s.resource_version().to_string()}));
        }
        _ => return error_response(&ApiError::new(404, "NotFound", format!("no fixture hook {hook:?}"))),
    }
    json_response(200, &json!({"ok": hook}))
}

/// A parsed resource path.
struct Target {
    /// Where the objects are kept (the storage version of a custom resource).
    res: usize,
    /// The version asked for, which answers are shown in.
    asked: usize,
    namespace: Option<String>,
    name: Option<String>,
    status: bool,
}

fn parse_target(path: &str) -> Result<Target, ApiError> {
    let segs: Vec<&str> = path.trim_matches('/').split('/').collect();
    let (group, version, rest) = match segs.as_slice() {
        ["api", v, rest @ ..] => ("", *v, rest),
        ["apis", g, v, rest @ ..] => (*g, *v, rest),
        _ => {
            return Err(ApiError::new(
                404,
                "NotFound",
                format!("the server could not find the requested resource ({path})"),
            ))
        }
    };
    if rest.is_empty() {
        return Err(ApiError::new(0, "Discovery", format!("{group}/{version}")));
    }
    let not_found =
        || ApiError::new(404, "NotFound", format!("the server could not find the requested resource ({path})"));
    // `/namespaces/{ns}/{plural}...` unless `{plural}` is not a namespaced resource (then it
    // is the Namespace object itself, or its status).
    let (namespace, rest) = match rest {
        ["namespaces", ns, plural, tail @ ..]
            if resources::by_path(group, version, plural).is_some_and(|r| resources::res(r).namespaced) =>
        {
            (Some(ns.to_string()), [&[*plural][..], tail].concat())
        }
        other => (None, other.to_vec()),
    };
    let res = resources::by_path(group, version, rest[0]).ok_or_else(not_found)?;
    let (name, status) = match &rest[1..] {
        [] => (None, false),
        [name] => (Some(name.to_string()), false),
        [name, "status"] if resources::res(res).status => (Some(name.to_string()), true),
        _ => return Err(not_found()),
    };
    if !resources::res(res).namespaced && namespace.is_some() {
        return Err(not_found());
    }
    Ok(Target { res: resources::res(res).storage, asked: res, namespace, name, status })
}

async fn rest(req: Request<Incoming>, path: &str, store: &Arc<Mutex<Store>>) -> Result<Response<Body>, ApiError> {
    let target = match parse_target(path) {
        Err(e) if e.reason == "Discovery" => {
            let (g, v) = e.message.split_once('/').unwrap_or(("", ""));
            return resources::resource_list(g, v).map(|l| json_response(200, &l)).ok_or_else(|| {
                ApiError::new(404, "NotFound", format!("the server could not find the requested resource ({path})"))
            });
        }
        other => other?,
    };
    let q = query_map(req.uri().query());
    let method = req.method().clone();
    let table = req.headers().get("accept").and_then(|v| v.to_str().ok()).is_some_and(|a| a.contains("as=Table"));
    let content_type = req.headers().get("content-type").and_then(|v| v.to_str().ok()).unwrap_or("").to_string();
    let dry_run = q.get("dryRun").is_some_and(|v| v == "All");
    let ns = target.namespace.clone().unwrap_or_default();
    let r = resources::res(target.asked);
    let shown = |v: Value| in_version(r, v);
    if r.namespaced && target.name.is_some() && target.namespace.is_none() {
        return Err(ApiError::new(404, "NotFound", "a namespaced object needs /namespaces/{namespace}/ in its path"));
    }
    let lock = || store.lock().unwrap_or_else(|e| e.into_inner());
    let ua = req.headers().get("user-agent").and_then(|v| v.to_str().ok()).unwrap_or("");
    if !ua.starts_with("kubectl") {
        let watching = q.get("watch").is_some_and(|w| w == "true" || w == "1");
        let verb = match (&method, target.name.is_some()) {
            (&Method::GET, false) if watching => "watch",
            (&Method::GET, false) => "list",
            (&Method::GET, true) => "get",
            (&Method::POST, _) => "create",
            (&Method::PUT, _) => "update",
            (&Method::PATCH, _) => "patch",
            (&Method::DELETE, _) => "delete",
            _ => "other",
        };
        let resource = if target.status { format!("{}/status", r.plural) } else { r.plural.to_string() };
        let entry = Requested { verb, group: r.group, resource, namespace: target.namespace.clone() };
        let mut s = lock();
        if !s.requests.contains(&entry) {
            s.requests.push(entry);
        }
    }

    match (method, &target.name) {
        (Method::GET, None) if q.get("watch").is_some_and(|w| w == "true" || w == "1") => {
            watch(target, &q, store.clone())
        }
        (Method::GET, None) => {
            let p = list_params(&q)?;
            let list = shown(lock().list(target.res, target.namespace.as_deref(), &p)?);
            Ok(json_response(200, &if table { table::render(r, &list) } else { list }))
        }
        (Method::GET, Some(name)) => {
            let obj = shown(lock().get(target.res, &ns, name)?);
            Ok(json_response(200, &if table { table::render(r, &json!({"items": [obj]})) } else { obj }))
        }
        (Method::POST, None) => {
            let body = read_json(req, &content_type).await?;
            if !r.namespaced || target.namespace.is_some() {
                Ok(json_response(201, &shown(lock().create(target.res, &ns, body, dry_run)?)))
            } else {
                Err(ApiError::bad_request("a namespaced object is created under /namespaces/{namespace}/"))
            }
        }
        (Method::PUT, Some(name)) => {
            let body = read_json(req, &content_type).await?;
            Ok(json_response(200, &shown(lock().update(target.res, &ns, name, body, target.status, dry_run)?)))
        }
        (Method::PATCH, Some(name)) => {
            let kind = PatchKind::from_content_type(&content_type).ok_or_else(|| {
                ApiError::new(
                    415,
                    "UnsupportedMediaType",
                    format!("the body of the request was in an unknown format: {content_type}"),
                )
            })?;
            let body = read_json(req, &content_type).await?;
            let manager = q.get("fieldManager").cloned().unwrap_or_default();
            if kind == PatchKind::Apply && manager.is_empty() {
                return Err(ApiError::bad_request("PatchOptions.meta.k8s.io \"\" is invalid: fieldManager: Required value: is required for apply patch"));
            }
            let existed = lock().get(target.res, &ns, name).is_ok();
            let out = lock().patch(target.res, &ns, name, kind, &body, target.status, &manager, dry_run)?;
            Ok(json_response(if existed { 200 } else { 201 }, &shown(out)))
        }
        (Method::DELETE, Some(name)) => Ok(json_response(200, &lock().delete(target.res, &ns, name)?)),
        (m, _) => Err(ApiError::new(405, "MethodNotAllowed", format!("{m} is not supported here"))),
    }
}

/// An object (or a List) as the version `r` shows it: custom resources are kept in their
/// storage version and converted by `apiVersion` alone (no conversion webhook).
fn in_version(r: &resources::Resource, mut v: Value) -> Value {
    let want = Value::String(r.api_version());
    if let Some(items) = v.get_mut("items").and_then(Value::as_array_mut) {
        for item in items {
            if item.get("apiVersion").is_some() {
                item["apiVersion"] = want.clone();
            }
        }
        v["apiVersion"] = want;
    } else if v.get("kind").and_then(Value::as_str) == Some(r.kind) {
        v["apiVersion"] = want;
    }
    v
}

async fn read_json(req: Request<Incoming>, content_type: &str) -> Result<Value, ApiError> {
    if content_type.contains("protobuf") || content_type.contains("cbor") {
        return Err(ApiError::new(
            415,
            "UnsupportedMediaType",
            format!(
                "the body of the request was in an unknown format: {content_type} (this server speaks JSON and YAML)"
            ),
        ));
    }
    let bytes = req.into_body().collect().await.map_err(|e| ApiError::bad_request(e.to_string()))?.to_bytes();
    if content_type.contains("yaml") {
        serde_yaml_ng::from_slice(&bytes).map_err(|e| ApiError::bad_request(format!("invalid YAML body: {e}")))
    } else {
        serde_json::from_slice(&bytes).map_err(|e| ApiError::bad_request(format!("invalid JSON body: {e}")))
    }
}

fn list_params(q: &HashMap<String, String>) -> Result<ListParams, ApiError> {
    let sel = |k: &str, field: bool| -> Result<Selector, ApiError> {
        let s = q.get(k).map(String::as_str).unwrap_or("");
        let parsed = if field { Selector::parse_fields(s) } else { Selector::parse_labels(s) };
        parsed.map_err(ApiError::bad_request)
    };
    Ok(ListParams {
        labels: sel("labelSelector", false)?,
        fields: sel("fieldSelector", true)?,
        limit: q.get("limit").and_then(|l| l.parse().ok()),
        continue_: q.get("continue").cloned(),
        resource_version: q.get("resourceVersion").cloned().filter(|v| !v.is_empty()),
        resource_version_match: q.get("resourceVersionMatch").cloned(),
    })
}

fn watch(target: Target, q: &HashMap<String, String>, store: Arc<Mutex<Store>>) -> Result<Response<Body>, ApiError> {
    let p = list_params(q)?;
    let filter = Filter { res: target.res, namespace: target.namespace, labels: p.labels, fields: p.fields };
    let from = match p.resource_version.as_deref() {
        None => None,
        Some(v) => Some(v.parse::<u64>().map_err(|_| ApiError::bad_request(format!("invalid resourceVersion {v:?}")))?),
    };
    let send_initial = q.get("sendInitialEvents").is_some_and(|v| v == "true");
    let bookmarks = q.get("allowWatchBookmarks").is_some_and(|v| v == "true");
    if send_initial && !bookmarks {
        return Err(ApiError::new(422, "Invalid", "sendInitialEvents requires allowWatchBookmarks=true"));
    }
    let timeout = q.get("timeoutSeconds").and_then(|t| t.parse::<u64>().ok()).map(Duration::from_secs);
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let registered = store.lock().unwrap_or_else(|e| e.into_inner()).watch(filter, from, send_initial, bookmarks, tx);
    let (out_tx, out_rx) = tokio::sync::mpsc::channel::<Result<Frame<Bytes>, std::io::Error>>(64);
    match registered {
        Err(message) => {
            // As the real API server: 200, then one ERROR event, then the end of the stream.
            let _ = out_tx.try_send(Ok(Frame::data(store::expired_line(&message))));
        }
        Ok((id, first)) => {
            tokio::spawn(async move {
                let deadline = tokio::time::sleep(timeout.unwrap_or(Duration::from_secs(3600)));
                tokio::pin!(deadline);
                for line in first {
                    if out_tx.send(Ok(Frame::data(line))).await.is_err() {
                        break;
                    }
                }
                loop {
                    tokio::select! {
                        m = rx.recv() => match m {
                            Some(WatchMsg::Line(line)) => {
                                if out_tx.send(Ok(Frame::data(line))).await.is_err() { break; }
                            }
                            Some(WatchMsg::Expire) => {
                                let line = store::expired_line("too old resource version: history expired by the test");
                                let _ = out_tx.send(Ok(Frame::data(line))).await;
                                break;
                            }
                            Some(WatchMsg::Drop) | None => {
                                let _ = out_tx.send(Err(std::io::Error::other("watch connection dropped by the test"))).await;
                                break;
                            }
                        },
                        _ = &mut deadline => break,
                        _ = out_tx.closed() => break,
                    }
                }
                store.lock().unwrap_or_else(|e| e.into_inner()).unwatch(id);
            });
        }
    }
    let stream = futures::stream::unfold(out_rx, |mut rx| async move { rx.recv().await.map(|f| (f, rx)) });
    Ok(Response::builder()
        .status(StatusCode::OK)
        .header("content-type", "application/json")
        .header("transfer-encoding", "chunked")
        .body(StreamBody::new(stream).boxed())
        .expect("valid response parts"))
}
