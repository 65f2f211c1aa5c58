//! Label and field selectors, as list and watch requests carry them.

use serde_json::Value;

#[derive(Debug, Clone, PartialEq)]
enum Req {
    Eq(String, String),
    Ne(String, String),
    In(String, Vec<String>),
    NotIn(String, Vec<String>),
    Exists(String),
    NotExists(String),
}

/// A parsed selector; empty matches everything.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Selector {
    reqs: Vec<Req>,
    /// Field selectors read dotted paths of the object; label selectors read `metadata.labels`.
    field: bool,
}

/// Splits on commas that are not inside parentheses.
fn split_top(s: &str) -> Vec<&str> {
    let (mut out, mut depth, mut start) = (Vec::new(), 0, 0);
    for (i, c) in s.char_indices() {
        match c {
            '(' => depth += 1,
            ')' => depth -= 1,
            ',' if depth == 0 => {
                out.push(&s[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    out.push(&s[start..]);
    out
}

fn set(s: &str) -> Result<Vec<String>, String> {
    let inner = s.trim().strip_prefix('(').and_then(|s| s.strip_suffix(')')).ok_or(format!("bad set {s:?}"))?;
    Ok(inner.split(',').map(|v| v.trim().to_string()).collect())
}

impl Selector {
    pub fn parse_labels(s: &str) -> Result<Selector, String> {
        Self::parse(s, false)
    }

    pub fn parse_fields(s: &str) -> Result<Selector, String> {
        Self::parse(s, true)
    }

    fn parse(s: &str, field: bool) -> Result<Selector, String> {
        let mut reqs = Vec::new();
        for part in split_top(s).into_iter().map(str::trim).filter(|p| !p.is_empty()) {
            let req = if let Some((k, v)) = part.split_once("!=") {
                Req::Ne(k.trim().into(), v.trim().into())
            } else if let Some((k, v)) = part.split_once("==") {
                Req::Eq(k.trim().into(), v.trim().into())
            } else if let Some((k, v)) = part.split_once('=') {
                Req::Eq(k.trim().into(), v.trim().into())
            } else if let Some((k, v)) = part.split_once(" notin ") {
                Req::NotIn(k.trim().into(), set(v)?)
            } else if let Some((k, v)) = part.split_once(" in ") {
                Req::In(k.trim().into(), set(v)?)
            } else if field {
                return Err(format!("invalid field selector {part:?}"));
            } else if let Some(k) = part.strip_prefix('!') {
                Req::NotExists(k.trim().into())
            } else {
                Req::Exists(part.into())
            };
            reqs.push(req);
        }
        Ok(Selector { reqs, field })
    }

    fn value<'v>(&self, obj: &'v Value, key: &str) -> Option<&'v str> {
        if self.field {
            let mut v = obj;
            for seg in key.split('.') {
                v = v.get(seg)?;
            }
            v.as_str()
        } else {
            obj.get("metadata")?.get("labels")?.get(key)?.as_str()
        }
    }

    pub fn matches(&self, obj: &Value) -> bool {
        self.reqs.iter().all(|r| match r {
            Req::Eq(k, v) => {
                self.value(obj, k) == Some(v.as_str()) || (self.field && v.is_empty() && self.value(obj, k).is_none())
            }
            Req::Ne(k, v) => self.value(obj, k) != Some(v.as_str()),
            Req::In(k, vs) => self.value(obj, k).is_some_and(|x| vs.iter().any(|v| v == x)),
            Req::NotIn(k, vs) => self.value(obj, k).is_none_or(|x| !vs.iter().any(|v| v == x)),
            Req::Exists(k) => self.value(obj, k).is_some(),
            Req::NotExists(k) => self.value(obj, k).is_none(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn labels_and_fields() {
        let o =
            json!({"metadata": {"name": "a", "labels": {"app": "web", "tier": "edge"}}, "type": "kubernetes.io/tls"});
        let t = |s: &str| Selector::parse_labels(s).unwrap().matches(&o);
        assert!(t("app=web"));
        assert!(t("app==web,tier"));
        assert!(!t("app!=web"));
        assert!(t("app in (api, web),!missing"));
        assert!(!t("tier notin (edge)"));
        assert!(!t("missing"));
        let f = |s: &str| Selector::parse_fields(s).unwrap().matches(&o);
        assert!(f("metadata.name=a,type=kubernetes.io/tls"));
        assert!(!f("metadata.name!=a"));
        assert!(Selector::parse_fields("nonsense").is_err());
    }
}
