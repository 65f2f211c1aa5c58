//! The patch formats kubectl and controllers send: JSON merge patch (RFC 7396), the strategic
//! merge patch subset that kubectl's client-side apply produces, JSON patch (RFC 6902), and
//! server-side apply (as a merge that also removes what the same field manager applied before
//! and no longer applies; ownership conflicts between managers are not modelled).

use serde_json::{Map, Value};

/// RFC 7396.
pub fn merge(target: &mut Value, patch: &Value) {
    let Value::Object(p) = patch else {
        *target = patch.clone();
        return;
    };
    if !target.is_object() {
        *target = Value::Object(Map::new());
    }
    let t = target.as_object_mut().expect("made an object above");
    for (k, v) in p {
        if v.is_null() {
            t.remove(k);
        } else {
            merge(t.entry(k.clone()).or_insert(Value::Null), v);
        }
    }
}

/// The merge key of a list field, as the Kubernetes types declare it (`patchMergeKey`), for the
/// lists found in the kinds this server stores. Lists without one are replaced whole.
fn merge_key(field: &str, items: &[Value]) -> Option<&'static str> {
    let has = |k: &str| items.iter().all(|i| i.get(k).is_some());
    match field {
        "containers" | "initContainers" | "ephemeralContainers" | "volumes" | "env" | "imagePullSecrets" => {
            Some("name")
        }
        "volumeMounts" => Some("mountPath"),
        "ownerReferences" => Some("uid"),
        "conditions" => Some("type"),
        "ports" if has("containerPort") => Some("containerPort"),
        "ports" if has("port") => Some("port"),
        _ => None,
    }
}

/// Lists of scalars that merge (`patchStrategy: merge`) rather than replace.
fn merges_scalars(field: &str) -> bool {
    field == "finalizers"
}

/// Strategic merge patch: like [`merge`], plus lists merged by key, `$patch` directives, and
/// the `$setElementOrder`/`$retainKeys`/`$deleteFromPrimitiveList` keys kubectl adds.
pub fn strategic(target: &mut Value, patch: &Value) {
    let Value::Object(p) = patch else {
        *target = patch.clone();
        return;
    };
    if p.get("$patch").and_then(Value::as_str) == Some("replace") {
        let mut v = patch.clone();
        v.as_object_mut().expect("object").remove("$patch");
        *target = v;
        return;
    }
    if !target.is_object() {
        *target = Value::Object(Map::new());
    }
    let t = target.as_object_mut().expect("made an object above");
    for (k, v) in p {
        if let Some(field) = k.strip_prefix("$deleteFromPrimitiveList/") {
            if let (Some(Value::Array(have)), Value::Array(del)) = (t.get_mut(field), v) {
                have.retain(|x| !del.contains(x));
            }
            continue;
        }
        if k.starts_with('$') {
            continue;
        }
        if v.is_null() {
            t.remove(k);
            continue;
        }
        match (t.get_mut(k), v) {
            (Some(Value::Array(have)), Value::Array(items)) => {
                if let Some(key) = merge_key(k, items) {
                    merge_list(have, items, key);
                } else if merges_scalars(k) {
                    for i in items {
                        if !have.contains(i) {
                            have.push(i.clone());
                        }
                    }
                } else {
                    *have = items.iter().filter(|i| i.get("$patch").is_none()).cloned().collect();
                }
            }
            (Some(existing), _) => strategic(existing, v),
            (None, _) => {
                let mut fresh = Value::Null;
                strategic(&mut fresh, v);
                t.insert(k.clone(), fresh);
            }
        }
    }
}

fn merge_list(have: &mut Vec<Value>, items: &[Value], key: &str) {
    for item in items {
        let id = item.get(key);
        let pos = have.iter().position(|h| h.get(key) == id);
        let delete = item.get("$patch").and_then(Value::as_str) == Some("delete");
        match (pos, delete) {
            (Some(i), true) => {
                have.remove(i);
            }
            (Some(i), false) => strategic(&mut have[i], item),
            (None, true) => {}
            (None, false) => {
                let mut fresh = Value::Null;
                strategic(&mut fresh, item);
                have.push(fresh);
            }
        }
    }
}

/// Server-side apply: `applied` merged over `live` (lists by merge key where there is one,
/// otherwise replaced), then every field that `previous` (this manager's last applied
/// configuration) set and `applied` no longer sets is removed.
pub fn apply(live: &mut Value, applied: &Value, previous: Option<&Value>) {
    if let Some(prev) = previous {
        prune(live, prev, applied);
    }
    strategic(live, applied);
}

fn prune(live: &mut Value, prev: &Value, now: &Value) {
    let (Some(l), Some(p)) = (live.as_object_mut(), prev.as_object()) else { return };
    let empty = Value::Object(Map::new());
    for (k, pv) in p {
        let nv = now.get(k);
        if pv.is_object() && nv.is_none_or(Value::is_object) {
            // Recurse: only the fields this manager set go, others' fields in the map stay.
            if let Some(lv) = l.get_mut(k) {
                prune(lv, pv, nv.unwrap_or(&empty));
                if nv.is_none() && lv.as_object().is_some_and(Map::is_empty) {
                    l.remove(k);
                }
            }
        } else if nv.is_none() {
            l.remove(k);
        }
    }
}

/// RFC 6902 (add, remove, replace, test, copy, move), with RFC 6901 pointers.
pub fn json_patch(target: &mut Value, ops: &Value) -> Result<(), String> {
    let ops = ops.as_array().ok_or("a JSON patch must be a list of operations")?;
    for op in ops {
        let name = op.get("op").and_then(Value::as_str).ok_or("operation without \"op\"")?;
        let path = op.get("path").and_then(Value::as_str).ok_or("operation without \"path\"")?;
        let value = || op.get("value").cloned().ok_or(format!("{name} {path}: no \"value\""));
        match name {
            "add" => add(target, path, value()?)?,
            "replace" => {
                *target.pointer_mut(path).ok_or(format!("replace {path}: no such path"))? = value()?;
            }
            "remove" => {
                remove(target, path)?;
            }
            "test" => {
                if target.pointer(path) != Some(&value()?) {
                    return Err(format!("test {path} failed"));
                }
            }
            "copy" | "move" => {
                let from = op.get("from").and_then(Value::as_str).ok_or(format!("{name}: no \"from\""))?;
                let v = if name == "move" {
                    remove(target, from)?
                } else {
                    target.pointer(from).cloned().ok_or(format!("copy {from}: no such path"))?
                };
                add(target, path, v)?;
            }
            other => return Err(format!("unknown operation {other:?}")),
        }
    }
    Ok(())
}

fn unescape(s: &str) -> String {
    s.replace("~1", "/").replace("~0", "~")
}

fn parent<'v>(target: &'v mut Value, path: &str) -> Result<(&'v mut Value, String), String> {
    let (head, last) = path.rsplit_once('/').ok_or(format!("bad pointer {path:?}"))?;
    let p = target.pointer_mut(head).ok_or(format!("{path}: parent does not exist"))?;
    Ok((p, unescape(last)))
}

fn add(target: &mut Value, path: &str, v: Value) -> Result<(), String> {
    if path.is_empty() {
        *target = v;
        return Ok(());
    }
    let (p, last) = parent(target, path)?;
    match p {
        Value::Object(m) => {
            m.insert(last, v);
        }
        Value::Array(a) if last == "-" => a.push(v),
        Value::Array(a) => {
            let i: usize = last.parse().map_err(|_| format!("{path}: bad index"))?;
            if i > a.len() {
                return Err(format!("{path}: index out of range"));
            }
            a.insert(i, v);
        }
        _ => return Err(format!("{path}: parent is not a container")),
    }
    Ok(())
}

fn remove(target: &mut Value, path: &str) -> Result<Value, String> {
    let (p, last) = parent(target, path)?;
    match p {
        Value::Object(m) => m.remove(&last).ok_or(format!("remove {path}: no such path")),
        Value::Array(a) => {
            let i: usize = last.parse().map_err(|_| format!("{path}: bad index"))?;
            if i >= a.len() {
                return Err(format!("remove {path}: index out of range"));
            }
            Ok(a.remove(i))
        }
        _ => Err(format!("remove {path}: parent is not a container")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn strategic_merges_ports_by_key_and_honours_directives() {
        let mut svc = json!({"metadata": {"labels": {"a": "1", "b": "2"}}, "spec": {"ports": [
            {"name": "http", "port": 80, "targetPort": 8080}, {"name": "admin", "port": 9000}]}});
        let patch = json!({"metadata": {"labels": {"b": null, "c": "3"}}, "spec": {
            "$setElementOrder/ports": [{"port": 80}, {"port": 443}],
            "ports": [{"port": 80, "targetPort": 8081}, {"port": 443, "name": "https"},
                      {"port": 9000, "$patch": "delete"}]}});
        strategic(&mut svc, &patch);
        assert_eq!(
            svc,
            json!({"metadata": {"labels": {"a": "1", "c": "3"}}, "spec": {"ports": [
                {"name": "http", "port": 80, "targetPort": 8081}, {"port": 443, "name": "https"}]}})
        );
    }

    #[test]
    fn lists_without_a_merge_key_are_replaced() {
        let mut ing = json!({"spec": {"rules": [{"host": "a"}, {"host": "b"}]}});
        strategic(&mut ing, &json!({"spec": {"rules": [{"host": "c"}]}}));
        assert_eq!(ing, json!({"spec": {"rules": [{"host": "c"}]}}));
    }

    #[test]
    fn apply_prunes_what_the_manager_stopped_applying() {
        let mut live = json!({"metadata": {"labels": {"mine": "1", "theirs": "2"}}, "data": {"x": "1"}});
        let prev = json!({"metadata": {"labels": {"mine": "1"}}, "data": {"x": "1"}});
        let now = json!({"data": {"x": "2"}});
        apply(&mut live, &now, Some(&prev));
        assert_eq!(live, json!({"metadata": {"labels": {"theirs": "2"}}, "data": {"x": "2"}}));
    }

    #[test]
    fn json_patch_ops() {
        let mut v = json!({"a": [1, 2], "b": {"c": 1}});
        json_patch(
            &mut v,
            &json!([{"op": "add", "path": "/a/-", "value": 3}, {"op": "remove", "path": "/b/c"},
            {"op": "replace", "path": "/a/0", "value": 0}, {"op": "test", "path": "/a/1", "value": 2}]),
        )
        .unwrap();
        assert_eq!(v, json!({"a": [0, 2, 3], "b": {}}));
        assert!(json_patch(&mut v, &json!([{"op": "test", "path": "/a/0", "value": 9}])).is_err());
    }
}
