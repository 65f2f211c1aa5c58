//! `kubectl get` output: the server-side `Table` (meta.k8s.io/v1) kubectl asks for, with the
//! columns the real API server prints for Ingresses and Services, and NAME/AGE for the rest.

use serde_json::{json, Value};

use crate::resources::Resource;

fn age(created: Option<&str>) -> String {
    let Some(t) = created.and_then(parse_rfc3339) else { return "<unknown>".into() };
    let now =
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs() as i64).unwrap_or(0);
    let s = (now - t).max(0);
    match s {
        0..120 => format!("{s}s"),
        120..7200 => format!("{}m", s / 60),
        7200..172_800 => format!("{}h", s / 3600),
        _ => format!("{}d", s / 86_400),
    }
}

/// Seconds since the epoch of `YYYY-MM-DDTHH:MM:SSZ`.
fn parse_rfc3339(t: &str) -> Option<i64> {
    let n = |a: usize, b: usize| t.get(a..b)?.parse::<i64>().ok();
    let (y, m, d) = (n(0, 4)?, n(5, 7)?, n(8, 10)?);
    let (hh, mm, ss) = (n(11, 13)?, n(14, 16)?, n(17, 19)?);
    // Days from civil (Howard Hinnant's algorithm).
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    Some(days * 86_400 + hh * 3600 + mm * 60 + ss)
}

fn strs(v: Option<&Value>, field: &str) -> Vec<String> {
    v.and_then(Value::as_array)
        .map(|a| a.iter().filter_map(|x| x.get(field).and_then(Value::as_str).map(str::to_string)).collect())
        .unwrap_or_default()
}

fn or_none(v: Vec<String>) -> String {
    if v.is_empty() {
        "<none>".into()
    } else {
        v.join(",")
    }
}

fn addresses(obj: &Value) -> Vec<String> {
    let lb = obj.pointer("/status/loadBalancer/ingress");
    let mut a = strs(lb, "ip");
    a.extend(strs(lb, "hostname"));
    a
}

pub fn render(r: &Resource, list: &Value) -> Value {
    let col = |name: &str, typ: &str| json!({"name": name, "type": typ, "format": if name == "Name" { "name" } else { "" }, "description": "", "priority": 0});
    type Cells = fn(&Value) -> Vec<Value>;
    let (columns, cells): (Vec<Value>, Cells) = match r.kind {
        "Ingress" => (
            vec![
                col("Name", "string"),
                col("Class", "string"),
                col("Hosts", "string"),
                col("Address", "string"),
                col("Ports", "string"),
                col("Age", "string"),
            ],
            |o| {
                let hosts = strs(o.pointer("/spec/rules"), "host");
                let hosts = if hosts.is_empty() { "*".to_string() } else { hosts.join(",") };
                let tls = o.pointer("/spec/tls").and_then(Value::as_array).is_some_and(|t| !t.is_empty());
                vec![
                    json!(o.pointer("/metadata/name")),
                    json!(o.pointer("/spec/ingressClassName").and_then(Value::as_str).unwrap_or("<none>")),
                    json!(hosts),
                    json!(addresses(o).join(",")),
                    json!(if tls { "80, 443" } else { "80" }),
                    json!(age(o.pointer("/metadata/creationTimestamp").and_then(Value::as_str))),
                ]
            },
        ),
        "Service" => (
            vec![
                col("Name", "string"),
                col("Type", "string"),
                col("Cluster-IP", "string"),
                col("External-IP", "string"),
                col("Port(s)", "string"),
                col("Age", "string"),
            ],
            |o| {
                let ports: Vec<String> = o
                    .pointer("/spec/ports")
                    .and_then(Value::as_array)
                    .map(|ps| {
                        ps.iter()
                            .map(|p| {
                                format!("{}/{}", p["port"], p.get("protocol").and_then(Value::as_str).unwrap_or("TCP"))
                            })
                            .collect()
                    })
                    .unwrap_or_default();
                vec![
                    json!(o.pointer("/metadata/name")),
                    json!(o.pointer("/spec/type").and_then(Value::as_str).unwrap_or("ClusterIP")),
                    json!(o.pointer("/spec/clusterIP").and_then(Value::as_str).unwrap_or("<none>")),
                    json!(or_none(addresses(o))),
                    json!(ports.join(",")),
                    json!(age(o.pointer("/metadata/creationTimestamp").and_then(Value::as_str))),
                ]
            },
        ),
        _ => (vec![col("Name", "string"), col("Age", "string")], |o| {
            vec![
                json!(o.pointer("/metadata/name")),
                json!(age(o.pointer("/metadata/creationTimestamp").and_then(Value::as_str))),
            ]
        }),
    };
    let rows: Vec<Value> = list["items"]
        .as_array()
        .map(|items| {
            items
                .iter()
                .map(|o| {
                    let meta = json!({"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1", "metadata": o["metadata"]});
                    json!({"cells": cells(o), "object": meta})
                })
                .collect()
        })
        .unwrap_or_default();
    json!({
        "kind": "Table", "apiVersion": "meta.k8s.io/v1",
        "metadata": {"resourceVersion": list.pointer("/metadata/resourceVersion").cloned().unwrap_or(json!(""))},
        "columnDefinitions": columns, "rows": rows,
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn parses_what_the_store_writes() {
        let now = crate::store::now_rfc3339();
        let secs = super::parse_rfc3339(&now).unwrap();
        let sys = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as i64;
        assert!((sys - secs).abs() <= 2, "{now} -> {secs} vs {sys}");
        assert_eq!(super::parse_rfc3339("1970-01-02T00:00:01Z"), Some(86_401));
    }
}
