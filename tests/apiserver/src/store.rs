//! The object store: every object as JSON under one global resourceVersion, the event history
//! watches replay from, and the open watches events fan out to. All of it behind one mutex, so
//! a write and its fan-out are one step and no watcher can miss or reorder an event.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::time::{SystemTime, UNIX_EPOCH};

use base64::Engine;
use bytes::Bytes;
use serde_json::{json, Value};
use tokio::sync::mpsc::UnboundedSender;

use crate::patch;
use crate::resources::{self, ResId, Resource};
use crate::select::Selector;

/// An API error, answered as a `Status` object with this code and reason.
#[derive(Debug, Clone, PartialEq)]
pub struct ApiError {
    pub code: u16,
    pub reason: &'static str,
    pub message: String,
}

impl ApiError {
    pub fn new(code: u16, reason: &'static str, message: impl Into<String>) -> ApiError {
        ApiError { code, reason, message: message.into() }
    }

    pub fn bad_request(message: impl Into<String>) -> ApiError {
        ApiError::new(400, "BadRequest", message)
    }

    pub fn not_found(r: &Resource, name: &str) -> ApiError {
        ApiError::new(404, "NotFound", format!("{}.{} \"{name}\" not found", r.plural, r.group).replace(". ", " "))
    }

    pub fn status(&self) -> Value {
        json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
               "message": self.message, "reason": self.reason, "code": self.code})
    }
}

pub type Result<T> = std::result::Result<T, ApiError>;

/// `(resource, namespace, name)`; the namespace is empty for cluster-scoped kinds.
pub type Key = (ResId, String, String);

/// What the store tells a watch.
#[derive(Debug)]
pub enum WatchMsg {
    /// One newline-terminated JSON event.
    Line(Bytes),
    /// End the stream with an in-stream 410 Expired ERROR event.
    Expire,
    /// Cut the connection mid-stream.
    Drop,
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum EventType {
    Added,
    Modified,
    Deleted,
}

impl EventType {
    fn name(self) -> &'static str {
        match self {
            EventType::Added => "ADDED",
            EventType::Modified => "MODIFIED",
            EventType::Deleted => "DELETED",
        }
    }
}

struct Event {
    rv: u64,
    res: ResId,
    typ: EventType,
    /// The object after the change (for DELETED: the last state, with the deletion's rv).
    object: Value,
    /// The object before the change, to decide whether it entered or left a selector.
    before: Option<Value>,
}

/// What one watch wants to see.
#[derive(Clone, Debug)]
pub struct Filter {
    pub res: ResId,
    pub namespace: Option<String>,
    pub labels: Selector,
    pub fields: Selector,
}

impl Filter {
    fn matches(&self, res: ResId, obj: &Value) -> bool {
        res == self.res
            && self.namespace.as_deref().is_none_or(|ns| namespace_of(obj) == ns)
            && self.labels.matches(obj)
            && self.fields.matches(obj)
    }
}

struct Watcher {
    id: u64,
    filter: Filter,
    bookmarks: bool,
    tx: UnboundedSender<WatchMsg>,
}

/// Most events kept for watches to resume from; older ones are compacted away.
const HISTORY: usize = 500_000;

#[derive(Default)]
pub struct Store {
    rv: u64,
    objects: BTreeMap<Key, Value>,
    history: VecDeque<Event>,
    /// Watches and continue tokens from before this resourceVersion get 410 Expired.
    compacted: u64,
    watchers: Vec<Watcher>,
    next_watch: u64,
    /// Server-side apply: each field manager's last applied configuration, per object.
    applied: HashMap<(Key, String), Value>,
    /// Fault hook: fail this many of the next requests with this status.
    pub fail: Option<(usize, u16)>,
    /// Every resource request a client other than kubectl made, for RBAC checks.
    pub requests: Vec<Requested>,
}

/// One request as RBAC sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Requested {
    /// get, list, watch, create, update, patch or delete.
    pub verb: &'static str,
    pub group: &'static str,
    /// The plural, with `/status` for the subresource.
    pub resource: String,
    pub namespace: Option<String>,
}

fn namespace_of(obj: &Value) -> &str {
    obj.pointer("/metadata/namespace").and_then(Value::as_str).unwrap_or("")
}

fn name_of(obj: &Value) -> &str {
    obj.pointer("/metadata/name").and_then(Value::as_str).unwrap_or("")
}

/// RFC 3339 UTC, seconds precision, as the API server writes timestamps.
pub fn now_rfc3339() -> String {
    let secs = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0) as i64;
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!("{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z", rem / 3600, rem / 60 % 60, rem % 60)
}

fn set_meta(obj: &mut Value, field: &str, v: Value) {
    if let Some(m) = obj.get_mut("metadata").and_then(Value::as_object_mut) {
        m.insert(field.to_string(), v);
    }
}

/// Equal apart from resourceVersion and managedFields: an update that changes nothing else is
/// a no-op and keeps the old resourceVersion, as the real API server does.
fn same_content(a: &Value, b: &Value) -> bool {
    let strip = |v: &Value| {
        let mut v = v.clone();
        if let Some(m) = v.get_mut("metadata").and_then(Value::as_object_mut) {
            m.remove("resourceVersion");
            m.remove("managedFields");
        }
        v
    };
    strip(a) == strip(b)
}

/// How a PATCH body is to be read.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum PatchKind {
    Merge,
    Strategic,
    Json,
    Apply,
}

impl PatchKind {
    pub fn from_content_type(ct: &str) -> Option<PatchKind> {
        match ct.split(';').next().unwrap_or("").trim() {
            "application/merge-patch+json" => Some(PatchKind::Merge),
            "application/strategic-merge-patch+json" => Some(PatchKind::Strategic),
            "application/json-patch+json" => Some(PatchKind::Json),
            "application/apply-patch+yaml" | "application/apply-patch+cbor" => Some(PatchKind::Apply),
            _ => None,
        }
    }
}

/// A list page's continuation.
fn encode_continue(rv: u64, after: &Key) -> String {
    let raw = json!({"rv": rv, "ns": after.1, "name": after.2}).to_string();
    base64::engine::general_purpose::STANDARD.encode(raw)
}

fn decode_continue(token: &str) -> Option<(u64, String, String)> {
    let raw = base64::engine::general_purpose::STANDARD.decode(token).ok()?;
    let v: Value = serde_json::from_slice(&raw).ok()?;
    Some((v["rv"].as_u64()?, v["ns"].as_str()?.to_string(), v["name"].as_str()?.to_string()))
}

fn event_line(typ: &str, object: &Value) -> Bytes {
    let mut line = serde_json::to_vec(&json!({"type": typ, "object": object})).expect("JSON values serialize");
    line.push(b'\n');
    Bytes::from(line)
}

pub fn expired_line(message: &str) -> Bytes {
    event_line("ERROR", &ApiError::new(410, "Expired", message).status())
}

/// The parsed query of a list or watch.
#[derive(Clone, Debug, Default)]
pub struct ListParams {
    pub labels: Selector,
    pub fields: Selector,
    pub limit: Option<usize>,
    pub continue_: Option<String>,
    pub resource_version: Option<String>,
    pub resource_version_match: Option<String>,
}

impl Store {
    pub fn new() -> Store {
        let mut s = Store::default();
        for ns in ["default", "kube-system", "kube-public"] {
            let obj = json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}});
            s.create(0, "", obj, false).expect("fresh store");
        }
        s
    }

    pub fn resource_version(&self) -> u64 {
        self.rv
    }

    fn check_namespace(&self, r: &Resource, ns: &str) -> Result<()> {
        if r.namespaced && !self.objects.contains_key(&(0, String::new(), ns.to_string())) {
            return Err(ApiError::new(404, "NotFound", format!("namespaces \"{ns}\" not found")));
        }
        Ok(())
    }

    /// Fills in and checks `apiVersion`, `kind`, `metadata.namespace` against the request path.
    fn normalise(&self, res: ResId, ns: &str, obj: &mut Value) -> Result<()> {
        let r = resources::res(res);
        let o = obj.as_object_mut().ok_or_else(|| ApiError::bad_request("the body must be a JSON object"))?;
        for (field, want) in [("apiVersion", r.api_version()), ("kind", r.kind.to_string())] {
            match o.get(field).and_then(Value::as_str) {
                None | Some("") => {
                    o.insert(field.to_string(), Value::String(want));
                }
                Some(have) if have == want => {}
                // Another served version of a custom resource: kept in the storage version.
                Some(have) if field == "apiVersion" && resources::same_kind(res, have) => {
                    o.insert(field.to_string(), Value::String(want));
                }
                Some(have) => {
                    return Err(ApiError::bad_request(format!(
                        "the API version in the data ({have}) does not match the expected API version ({want})"
                    )))
                }
            }
        }
        let meta = o.entry("metadata").or_insert_with(|| json!({}));
        let meta = meta.as_object_mut().ok_or_else(|| ApiError::bad_request("metadata must be an object"))?;
        if r.namespaced {
            match meta.get("namespace").and_then(Value::as_str) {
                None | Some("") => {
                    meta.insert("namespace".into(), Value::String(ns.to_string()));
                }
                Some(have) if have == ns => {}
                Some(_) => {
                    return Err(ApiError::bad_request(
                        "the namespace of the provided object does not match the namespace sent on the request",
                    ))
                }
            }
        } else {
            meta.remove("namespace");
        }
        Ok(())
    }

    fn next_rv(&mut self) -> u64 {
        self.rv += 1;
        self.rv
    }

    /// Records an event and sends it to every watch that sees it.
    fn emit(&mut self, res: ResId, typ: EventType, object: Value, before: Option<Value>) {
        let rv = self.rv;
        for w in &self.watchers {
            if let Some(line) = render_for(&w.filter, res, typ, &object, before.as_ref()) {
                let _ = w.tx.send(WatchMsg::Line(line));
            }
        }
        self.history.push_back(Event { rv, res, typ, object, before });
        while self.history.len() > HISTORY {
            let old = self.history.pop_front().expect("non-empty");
            self.compacted = old.rv;
        }
    }

    pub fn get(&self, res: ResId, ns: &str, name: &str) -> Result<Value> {
        self.objects
            .get(&(res, ns.to_string(), name.to_string()))
            .cloned()
            .ok_or_else(|| ApiError::not_found(resources::res(res), name))
    }

    pub fn create(&mut self, res: ResId, ns: &str, mut obj: Value, dry_run: bool) -> Result<Value> {
        let r = resources::res(res);
        self.normalise(res, ns, &mut obj)?;
        let mut name = name_of(&obj).to_string();
        if name.is_empty() {
            let prefix = obj.pointer("/metadata/generateName").and_then(Value::as_str).unwrap_or("");
            if prefix.is_empty() {
                return Err(ApiError::new(
                    422,
                    "Invalid",
                    format!("{} \"\" is invalid: metadata.name: Required value", r.kind),
                ));
            }
            name = format!("{prefix}{:05x}", self.rv + 1);
            set_meta(&mut obj, "name", Value::String(name.clone()));
        }
        self.check_namespace(r, ns)?;
        let key = (res, ns.to_string(), name.clone());
        if self.objects.contains_key(&key) {
            return Err(ApiError::new(
                409,
                "AlreadyExists",
                format!("{}.{} \"{name}\" already exists", r.plural, r.group),
            ));
        }
        if r.status {
            let status = match r.kind {
                "Namespace" => json!({"phase": "Active"}),
                "CustomResourceDefinition" => crate::crd::established(),
                _ => json!({}),
            };
            obj.as_object_mut().expect("normalised").insert("status".into(), status);
        }
        if r.kind == "CustomResourceDefinition" {
            crate::crd::valid(&name, &obj)?;
        }
        if dry_run {
            return Ok(obj);
        }
        if r.kind == "CustomResourceDefinition" {
            resources::register_crd(&obj).map_err(|e| crate::crd::invalid(&name, &e))?;
        }
        let rv = self.next_rv();
        set_meta(&mut obj, "uid", Value::String(format!("00000000-0000-4000-8000-{rv:012x}")));
        set_meta(&mut obj, "creationTimestamp", Value::String(now_rfc3339()));
        set_meta(&mut obj, "resourceVersion", Value::String(rv.to_string()));
        set_meta(&mut obj, "generation", json!(1));
        self.objects.insert(key, obj.clone());
        self.emit(res, EventType::Added, obj.clone(), None);
        Ok(obj)
    }

    /// PUT, on the object (`status == false`) or its status subresource.
    pub fn update(
        &mut self,
        res: ResId,
        ns: &str,
        name: &str,
        mut obj: Value,
        status: bool,
        dry_run: bool,
    ) -> Result<Value> {
        let r = resources::res(res);
        self.normalise(res, ns, &mut obj)?;
        if name_of(&obj) != name {
            return Err(ApiError::bad_request(format!(
                "the name of the object ({}) does not match the name on the URL ({name})",
                name_of(&obj)
            )));
        }
        let old = self.get(res, ns, name)?;
        let sent_rv = obj.pointer("/metadata/resourceVersion").and_then(Value::as_str).unwrap_or("");
        let have_rv = old.pointer("/metadata/resourceVersion").and_then(Value::as_str).unwrap_or("");
        if !sent_rv.is_empty() && sent_rv != have_rv {
            return Err(ApiError::new(
                409,
                "Conflict",
                format!(
                    "Operation cannot be fulfilled on {}.{} \"{name}\": the object has been modified; please apply your changes to the latest version and try again",
                    r.plural, r.group
                ),
            ));
        }
        let mut new = if status {
            let mut n = old.clone();
            n.as_object_mut()
                .expect("stored objects are objects")
                .insert("status".into(), obj.get("status").cloned().unwrap_or(json!({})));
            n
        } else {
            if r.status {
                let o = obj.as_object_mut().expect("normalised");
                match old.get("status") {
                    Some(s) => o.insert("status".into(), s.clone()),
                    None => o.remove("status"),
                };
            }
            // Server-owned metadata survives an update.
            for f in ["uid", "creationTimestamp", "generation"] {
                if let Some(v) = old.pointer(&format!("/metadata/{f}")) {
                    set_meta(&mut obj, f, v.clone());
                }
            }
            if old.get("spec") != obj.get("spec") || old.get("data") != obj.get("data") {
                let g = old.pointer("/metadata/generation").and_then(Value::as_i64).unwrap_or(0);
                set_meta(&mut obj, "generation", json!(g + 1));
            }
            obj
        };
        set_meta(&mut new, "resourceVersion", Value::String(have_rv.to_string()));
        if same_content(&new, &old) || dry_run {
            return Ok(if dry_run { new } else { old });
        }
        let rv = self.next_rv();
        set_meta(&mut new, "resourceVersion", Value::String(rv.to_string()));
        self.objects.insert((res, ns.to_string(), name.to_string()), new.clone());
        self.emit(res, EventType::Modified, new.clone(), Some(old));
        Ok(new)
    }

    #[allow(clippy::too_many_arguments)]
    pub fn patch(
        &mut self,
        res: ResId,
        ns: &str,
        name: &str,
        kind: PatchKind,
        body: &Value,
        status: bool,
        manager: &str,
        dry_run: bool,
    ) -> Result<Value> {
        let key = (res, ns.to_string(), name.to_string());
        let old = match self.get(res, ns, name) {
            Ok(o) => o,
            Err(e) if kind == PatchKind::Apply && !status => {
                let mut obj = body.clone();
                if obj.get("metadata").and_then(|m| m.get("name")).is_none() {
                    return Err(e);
                }
                let created = self.create(res, ns, obj.take(), dry_run)?;
                if !dry_run {
                    self.applied.insert((key, manager.to_string()), body.clone());
                }
                return Ok(created);
            }
            Err(e) => return Err(e),
        };
        let mut new = old.clone();
        match kind {
            PatchKind::Merge => patch::merge(&mut new, body),
            PatchKind::Strategic => patch::strategic(&mut new, body),
            PatchKind::Json => patch::json_patch(&mut new, body).map_err(|m| ApiError::new(422, "Invalid", m))?,
            PatchKind::Apply => {
                let prev = self.applied.get(&(key.clone(), manager.to_string()));
                patch::apply(&mut new, body, prev);
            }
        }
        // A patch that names a resourceVersion is conditional on it; otherwise it applies to
        // whatever is current.
        let patched_rv = new.pointer("/metadata/resourceVersion").cloned();
        let conditional = patched_rv != old.pointer("/metadata/resourceVersion").cloned();
        if !conditional {
            set_meta(&mut new, "resourceVersion", Value::String(String::new()));
        }
        let out = self.update(res, ns, name, new, status, dry_run)?;
        if kind == PatchKind::Apply && !dry_run {
            self.applied.insert((key, manager.to_string()), body.clone());
        }
        Ok(out)
    }

    pub fn delete(&mut self, res: ResId, ns: &str, name: &str) -> Result<Value> {
        let key = (res, ns.to_string(), name.to_string());
        let mut obj = self.objects.remove(&key).ok_or_else(|| ApiError::not_found(resources::res(res), name))?;
        self.applied.retain(|(k, _), _| *k != key);
        let rv = self.next_rv();
        set_meta(&mut obj, "resourceVersion", Value::String(rv.to_string()));
        self.emit(res, EventType::Deleted, obj.clone(), None);
        if resources::res(res).kind == "Namespace" {
            let inside: Vec<Key> =
                self.objects.keys().filter(|k| resources::res(k.0).namespaced && k.1 == name).cloned().collect();
            for k in inside {
                let _ = self.delete(k.0, &k.1, &k.2);
            }
        }
        Ok(obj)
    }

    pub fn list(&self, res: ResId, ns: Option<&str>, p: &ListParams) -> Result<Value> {
        let r = resources::res(res);
        let (rv, start) = match p.continue_.as_deref().filter(|c| !c.is_empty()) {
            Some(token) => {
                let (rv, ns, name) =
                    decode_continue(token).ok_or_else(|| ApiError::bad_request("invalid continue token"))?;
                if rv < self.compacted {
                    return Err(ApiError::new(
                        410,
                        "Expired",
                        "The provided continue parameter is too old to display a consistent list result. You can start a new list without the continue parameter.",
                    ));
                }
                (rv, Some((ns, name)))
            }
            None => {
                if let Some(want) = p.resource_version.as_deref().and_then(|v| v.parse::<u64>().ok()) {
                    let exact = p.resource_version_match.as_deref() == Some("Exact");
                    if want != 0 && ((exact && want != self.rv && want < self.compacted) || want > self.rv) {
                        return Err(ApiError::new(
                            410,
                            "Expired",
                            format!("too old resource version: {want} ({})", self.compacted),
                        ));
                    }
                }
                (self.rv, None)
            }
        };
        let lower = match &start {
            Some((ns, name)) => std::ops::Bound::Excluded((res, ns.clone(), name.clone())),
            None => std::ops::Bound::Included((res, String::new(), String::new())),
        };
        let filter =
            Filter { res, namespace: ns.map(str::to_string), labels: p.labels.clone(), fields: p.fields.clone() };
        let mut items = Vec::new();
        let mut last = None;
        let mut remaining = 0usize;
        for (k, v) in self.objects.range((lower, std::ops::Bound::Unbounded)) {
            if k.0 != res {
                break;
            }
            if !filter.matches(res, v) {
                continue;
            }
            if p.limit.is_some_and(|l| l > 0 && items.len() >= l) {
                // One more exists: that is all a continue token needs (the count is optional).
                remaining += 1;
                break;
            }
            items.push(v.clone());
            last = Some(k.clone());
        }
        let mut meta = json!({"resourceVersion": rv.to_string()});
        if remaining > 0 {
            let last = last.expect("a full page has a last item");
            meta["continue"] = Value::String(encode_continue(rv, &last));
        }
        Ok(json!({"kind": format!("{}List", r.kind), "apiVersion": r.api_version(), "metadata": meta, "items": items}))
    }

    /// Registers a watch. Returns its id and the events it must send first: the current
    /// objects (no resourceVersion, "0", or `send_initial`), or the history after `from`.
    /// `Err` when `from` is older than the compacted history (answered in-stream as 410).
    pub fn watch(
        &mut self,
        filter: Filter,
        from: Option<u64>,
        send_initial: bool,
        bookmarks: bool,
        tx: UnboundedSender<WatchMsg>,
    ) -> std::result::Result<(u64, Vec<Bytes>), String> {
        let mut first = Vec::new();
        match from {
            Some(rv) if rv != 0 && !send_initial => {
                if rv < self.compacted {
                    return Err(format!("too old resource version: {rv} ({})", self.compacted));
                }
                for e in self.history.iter().filter(|e| e.rv > rv) {
                    first.extend(render_for(&filter, e.res, e.typ, &e.object, e.before.as_ref()));
                }
            }
            _ => {
                for (k, v) in self.objects.range((filter.res, String::new(), String::new())..) {
                    if k.0 != filter.res {
                        break;
                    }
                    if filter.matches(filter.res, v) {
                        first.push(event_line("ADDED", v));
                    }
                }
                if send_initial {
                    first.push(self.bookmark(&filter, true));
                }
            }
        }
        self.next_watch += 1;
        let id = self.next_watch;
        self.watchers.push(Watcher { id, filter, bookmarks, tx });
        Ok((id, first))
    }

    fn bookmark(&self, filter: &Filter, initial_end: bool) -> Bytes {
        let r = resources::res(filter.res);
        let mut meta = json!({"resourceVersion": self.rv.to_string()});
        if initial_end {
            meta["annotations"] = json!({"k8s.io/initial-events-end": "true"});
        }
        event_line("BOOKMARK", &json!({"kind": r.kind, "apiVersion": r.api_version(), "metadata": meta}))
    }

    /// Sends a bookmark at the current resourceVersion to every watch that asked for them.
    pub fn send_bookmarks(&self) {
        for w in self.watchers.iter().filter(|w| w.bookmarks) {
            let _ = w.tx.send(WatchMsg::Line(self.bookmark(&w.filter, false)));
        }
    }

    pub fn unwatch(&mut self, id: u64) {
        self.watchers.retain(|w| w.id != id);
    }

    pub fn watch_count(&self) -> usize {
        self.watchers.len()
    }

    /// Fault hook: forget all history, so every resume (and continue token) before now is 410.
    pub fn compact(&mut self) {
        self.history.clear();
        self.compacted = self.rv;
    }

    /// Fault hook: end every open watch, with an in-stream 410 (`expire`) or by cutting the
    /// connection.
    pub fn end_watches(&mut self, expire: bool) {
        for w in self.watchers.drain(..) {
            let _ = w.tx.send(if expire { WatchMsg::Expire } else { WatchMsg::Drop });
        }
    }

    /// Whether this request is to fail, per the fault hook.
    pub fn take_failure(&mut self) -> Option<u16> {
        let (n, status) = self.fail?;
        self.fail = if n > 1 { Some((n - 1, status)) } else { None };
        Some(status)
    }

    /// Objects of one resource (for tests' assertions).
    pub fn count(&self, res: ResId) -> usize {
        self.objects.keys().filter(|k| k.0 == res).count()
    }
}

/// The event line a watch with `filter` sees for this change, if any: an object that enters
/// the selection is ADDED, one that leaves it is DELETED.
fn render_for(filter: &Filter, res: ResId, typ: EventType, object: &Value, before: Option<&Value>) -> Option<Bytes> {
    let now = filter.matches(res, object);
    let was = before.is_some_and(|b| filter.matches(res, b));
    let typ = match (typ, was, now) {
        (EventType::Modified, true, true) => EventType::Modified,
        (EventType::Modified, false, true) => EventType::Added,
        (EventType::Modified, true, false) => EventType::Deleted,
        (EventType::Modified, false, false) => return None,
        (t, _, true) => t,
        (_, _, false) => return None,
    };
    Some(event_line(typ.name(), object))
}
