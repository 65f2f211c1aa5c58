//! Annotation value syntaxes shared by the readers: booleans, sizes, seconds, and the regular
//! expressions of `use-regex` paths and `canary-by-header-pattern`.

use std::time::Duration;

use crate::model::Ingress;

/// nginx's `on`/`off` (and true/false, as ingress-nginx also accepts).
pub fn parse_on_off(v: &str) -> Option<bool> {
    match v.to_ascii_lowercase().as_str() {
        "on" | "true" => Some(true),
        "off" | "false" => Some(false),
        _ => None,
    }
}

/// A path taken as a regular expression, as nginx's `location ~*` does: anchored at the
/// start of the request path, case-insensitive.
pub(super) fn compile_path(path: &str) -> Result<regex::Regex, regex::Error> {
    regex::RegexBuilder::new(&format!("^(?:{path})")).case_insensitive(true).build()
}

/// `canary-by-header-pattern`, compiled.
#[derive(Clone, Debug)]
pub struct HeaderPattern(pub(super) regex::Regex);

impl HeaderPattern {
    pub fn is_match(&self, value: &[u8]) -> bool {
        std::str::from_utf8(value).is_ok_and(|v| self.0.is_match(v))
    }

    pub fn as_str(&self) -> &str {
        self.0.as_str()
    }
}

impl PartialEq for HeaderPattern {
    fn eq(&self, other: &Self) -> bool {
        self.0.as_str() == other.0.as_str()
    }
}

impl Eq for HeaderPattern {}

/// A regular-expression path (`use-regex`, or implied by `rewrite-target`) as the route
/// table matches it.
#[derive(Debug)]
pub struct PathRegex(regex::Regex);

impl PathRegex {
    /// The path compiled, or a warning naming the Ingress and the path.
    pub fn new(ing: &Ingress, path: &str) -> Result<PathRegex, String> {
        compile_path(path).map(PathRegex).map_err(|e| {
            format!(
                "Ingress {}: path {path:?} is not a regular expression ({e}); matched by its literal start",
                ing.key
            )
        })
    }

    /// A Gateway API `RegularExpression` path: the whole path must match, with case.
    pub fn whole(expr: &str) -> Result<PathRegex, regex::Error> {
        regex::Regex::new(&format!("^(?:{expr})$")).map(PathRegex)
    }

    pub fn is_match(&self, path: &str) -> bool {
        self.0.is_match(path)
    }
}

impl PartialEq for PathRegex {
    fn eq(&self, other: &Self) -> bool {
        self.0.as_str() == other.0.as_str()
    }
}

impl Eq for PathRegex {}

/// The literal start of a regular-expression path (up to its first metacharacter), which
/// is what the route table matches on; the expression itself then drives the rewrite.
pub fn literal_prefix(path: &str) -> &str {
    let end = path.find(|c: char| ".^$*+?()[]{}|\\".contains(c)).unwrap_or(path.len());
    let lit = &path[..end];
    match lit.rfind('/') {
        // "/api/v(1|2)" matches on "/api"; "/something(/|$)" on "/something".
        Some(i) if end < path.len() && !path[end..].starts_with("(/") => {
            if i == 0 {
                "/"
            } else {
                &lit[..i]
            }
        }
        _ if lit.is_empty() => "/",
        _ => lit.strip_suffix('/').filter(|l| !l.is_empty()).unwrap_or(lit),
    }
}

pub fn parse_bool(v: &str) -> Option<bool> {
    match v.to_ascii_lowercase().as_str() {
        "true" => Some(true),
        "false" => Some(false),
        _ => None,
    }
}

/// nginx size syntax: a number with an optional k/m/g suffix (either case).
pub fn parse_size(v: &str) -> Option<u64> {
    let v = v.trim();
    let (num, mult) = match v.as_bytes().last()? {
        b'k' | b'K' => (&v[..v.len() - 1], 1u64 << 10),
        b'm' | b'M' => (&v[..v.len() - 1], 1 << 20),
        b'g' | b'G' => (&v[..v.len() - 1], 1 << 30),
        _ => (v, 1),
    };
    num.parse::<u64>().ok()?.checked_mul(mult)
}

/// Seconds as ingress-nginx writes them (`"60"`), also accepting an `s` suffix.
pub(crate) fn parse_seconds(v: &str) -> Option<Duration> {
    let n: f64 = v.strip_suffix('s').unwrap_or(v).parse().ok()?;
    (n > 0.0).then(|| Duration::try_from_secs_f64(n).ok()).flatten()
}

/// A number of seconds, 0 included.
pub fn parse_seconds_or_zero(v: &str) -> Option<Duration> {
    let n: f64 = v.strip_suffix('s').unwrap_or(v).parse().ok()?;
    (n >= 0.0).then(|| Duration::try_from_secs_f64(n).ok()).flatten()
}

/// `custom-http-errors`: comma-separated statuses from 400 to 599 (empty: none).
pub(crate) fn parse_codes(v: &str) -> Option<std::sync::Arc<[u16]>> {
    let mut codes = Vec::new();
    for c in v.split(',').map(str::trim).filter(|c| !c.is_empty()) {
        let n: u16 = c.parse().ok().filter(|n| (400..=599).contains(n))?;
        if !codes.contains(&n) {
            codes.push(n);
        }
    }
    Some(codes.into())
}

/// `rewrite-target`: the request path, matched (case-insensitively, from its start) by the
/// route's path taken as a regular expression, is replaced whole by `target` with `$1`..`$9`
/// standing for the captures, as ingress-nginx (0.22 and later) does. The query is kept.
#[derive(Clone, Debug)]
pub struct Rewrite {
    pub pattern: regex::Regex,
    pub target: String,
}

impl PartialEq for Rewrite {
    fn eq(&self, other: &Self) -> bool {
        self.pattern.as_str() == other.pattern.as_str() && self.target == other.target
    }
}

impl Eq for Rewrite {}

impl Rewrite {
    /// The rewritten path, or `None` when the pattern does not match `path`.
    pub fn apply(&self, path: &str) -> Option<String> {
        let caps = self.pattern.captures(path)?;
        let mut out = String::with_capacity(self.target.len() + 16);
        let mut rest = self.target.as_str();
        while let Some(i) = rest.find('$') {
            out.push_str(&rest[..i]);
            let after = &rest[i + 1..];
            match after.as_bytes().first() {
                Some(d @ b'0'..=b'9') => {
                    out.push_str(caps.get((d - b'0') as usize).map_or("", |m| m.as_str()));
                    rest = &after[1..];
                }
                _ => {
                    out.push('$');
                    rest = after;
                }
            }
        }
        out.push_str(rest);
        if !out.starts_with('/') {
            out.insert(0, '/');
        }
        Some(out)
    }
}
