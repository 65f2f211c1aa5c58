//! `configuration-snippet` and `server-snippet`, read safely: never executed as nginx
//! configuration. With the ConfigMap's `allow-snippet-annotations: "true"`, the directives
//! users put there most are understood and applied through ringress's own features:
//! `more_set_headers`, `more_clear_headers`, `add_header`, `proxy_set_header`,
//! `return CODE [TEXT|URL]` and `rewrite REGEX URL redirect|permanent`. A snippet with any
//! other directive is not applied at all (a warning names the directive); one with an access
//! directive (`allow`, `deny`, `auth_*`, `satisfy`...) refuses the Ingress's routes, whether
//! snippets are allowed or not, since serving them would drop a protection.

use std::sync::Arc;

use super::edge::{Field, FRAMING_FIELDS};

/// What a snippet asks for, in ringress's terms.
#[derive(Clone, Debug, Default)]
pub struct Snippet {
    /// `more_set_headers`: response fields set (replacing the upstream's of those names).
    pub set_response: Vec<Field>,
    /// `add_header`: response fields added, as nginx adds them: to 200, 201, 204, 206, 301,
    /// 302, 303, 304, 307 and 308 answers ([`ADDS_TO`]).
    pub add_response: Vec<Field>,
    /// `add_header ... always`: to every answer.
    pub add_always: Vec<Field>,
    /// `more_clear_headers`: response fields removed (lower case).
    pub clear_response: Vec<String>,
    /// `proxy_set_header`: request fields the upstream gets in place of the client's.
    pub set_upstream: Vec<Field>,
    /// `return`: the answer to every request (status, Location or body).
    pub answer: Option<Answer>,
    /// `rewrite ... redirect|permanent`: a path matching the expression is redirected to the
    /// replacement (`$1`..`$9` for the captures) with 302 or 301.
    pub redirects: Vec<(regex::Regex, String, u16)>,
}

impl PartialEq for Snippet {
    fn eq(&self, other: &Self) -> bool {
        let re = |r: &[(regex::Regex, String, u16)]| -> Vec<(String, String, u16)> {
            r.iter().map(|(e, t, c)| (e.as_str().to_string(), t.clone(), *c)).collect()
        };
        self.set_response == other.set_response
            && self.add_response == other.add_response
            && self.add_always == other.add_always
            && self.clear_response == other.clear_response
            && self.set_upstream == other.set_upstream
            && self.answer == other.answer
            && re(&self.redirects) == re(&other.redirects)
    }
}

impl Eq for Snippet {}

/// `return`'s answer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Answer {
    pub code: u16,
    /// For 301, 302, 303, 307, 308: the Location.
    pub location: Option<String>,
    /// For other codes: the body (text/plain).
    pub body: String,
}

/// Why a snippet is not applied.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Problem {
    /// An access directive: the routes must be refused (fail closed).
    Access(String),
    /// A directive (or a form of one) outside the safe subset: not applied.
    Unsupported(String),
    /// Not readable as nginx configuration.
    Malformed(String),
}

/// Directives that decide who may reach a route.
const ACCESS: &[&str] = &[
    "allow",
    "deny",
    "satisfy",
    "limit_except",
    "auth_basic",
    "auth_basic_user_file",
    "auth_request",
    "auth_request_set",
    "auth_jwt",
    "auth_jwt_key_file",
    "access_by_lua",
    "access_by_lua_block",
    "access_by_lua_file",
    "ssl_verify_client",
];

/// The statements of a snippet: words (quotes removed, escapes applied), `;`-terminated.
fn statements(text: &str) -> Result<Vec<Vec<String>>, Problem> {
    let mut out = Vec::new();
    let mut words: Vec<String> = Vec::new();
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            c if c.is_whitespace() => {}
            '#' => {
                for c in chars.by_ref() {
                    if c == '\n' {
                        break;
                    }
                }
            }
            ';' => out.push(std::mem::take(&mut words)),
            '{' | '}' => {
                let what = words.first().cloned().unwrap_or_else(|| "a block".into());
                return Err(Problem::Unsupported(what));
            }
            '"' | '\'' => {
                let mut w = String::new();
                loop {
                    match chars.next() {
                        None => return Err(Problem::Malformed("an unterminated quoted string".into())),
                        Some(q) if q == c => break,
                        Some('\\') => w.extend(chars.next()),
                        Some(x) => w.push(x),
                    }
                }
                words.push(w);
            }
            c => {
                let mut w = String::from(c);
                while let Some(&n) = chars.peek() {
                    if n.is_whitespace() || matches!(n, ';' | '{' | '}' | '"' | '\'') {
                        break;
                    }
                    w.push(n);
                    chars.next();
                }
                words.push(w);
            }
        }
    }
    if !words.is_empty() {
        return Err(Problem::Malformed(format!("{} is not ended by ';'", words[0])));
    }
    Ok(out)
}

/// A field name and value a snippet may set: no framing field, no nginx variable.
fn field(directive: &str, name: &str, value: &str) -> Result<Field, Problem> {
    let lower = name.to_ascii_lowercase();
    if http::HeaderName::from_bytes(lower.as_bytes()).is_err() || http::HeaderValue::from_str(value).is_err() {
        return Err(Problem::Malformed(format!("{directive}: {name:?} {value:?} is not a header field")));
    }
    if FRAMING_FIELDS.contains(&lower.as_str()) {
        return Err(Problem::Unsupported(format!("{directive} {name} (a framing field)")));
    }
    if value.contains('$') {
        return Err(Problem::Unsupported(format!("{directive} with an nginx variable")));
    }
    Ok((lower, value.as_bytes().to_vec()))
}

/// Reads a snippet. An access directive wins over every other problem.
pub fn parse(text: &str) -> Result<Snippet, Problem> {
    let stmts = statements(text)?;
    if let Some(d) = stmts.iter().filter_map(|s| s.first()).find(|d| ACCESS.contains(&d.as_str())) {
        return Err(Problem::Access(d.clone()));
    }
    let mut s = Snippet::default();
    for stmt in &stmts {
        let Some((d, args)) = stmt.split_first() else { continue };
        let d = d.as_str();
        if args.iter().any(|a| a.starts_with('-')) && d.starts_with("more_") {
            return Err(Problem::Unsupported(format!("{d} with options")));
        }
        match (d, args) {
            ("more_set_headers", [_, ..]) => {
                for a in args {
                    let (n, v) = a.split_once(':').ok_or_else(|| Problem::Malformed(format!("{d} {a:?}")))?;
                    s.set_response.push(field(d, n.trim(), v.trim())?);
                }
            }
            ("more_clear_headers", [_, ..]) => {
                for a in args {
                    if a.contains('*') {
                        return Err(Problem::Unsupported(format!("{d} with a wildcard")));
                    }
                    let (n, _) = field(d, a, "")?;
                    s.clear_response.push(n);
                }
            }
            ("add_header", [n, v]) => s.add_response.push(field(d, n, v)?),
            ("add_header", [n, v, always]) if *always == "always" => s.add_always.push(field(d, n, v)?),
            ("proxy_set_header", [n, v]) => s.set_upstream.push(field(d, n, v)?),
            ("return", [code, rest @ ..]) if code.parse::<u16>().is_ok() => {
                let code: u16 = code.parse().unwrap_or(0);
                if !(200..=599).contains(&code) || rest.len() > 1 || rest.iter().any(|r| r.contains('$')) {
                    return Err(Problem::Unsupported(format!("return {code} {}", rest.join(" "))));
                }
                let text = rest.first().cloned().unwrap_or_default();
                let redirect = matches!(code, 301 | 302 | 303 | 307 | 308);
                s.answer = Some(Answer {
                    code,
                    location: redirect.then(|| text.clone()),
                    body: if redirect { String::new() } else { text },
                });
            }
            ("return", [url]) if url.starts_with("http://") || url.starts_with("https://") => {
                if url.contains('$') {
                    return Err(Problem::Unsupported("return with an nginx variable".into()));
                }
                s.answer = Some(Answer { code: 302, location: Some(url.clone()), body: String::new() });
            }
            ("rewrite", [re, to, flag]) if flag == "redirect" || flag == "permanent" => {
                let re = regex::Regex::new(re).map_err(|e| Problem::Malformed(format!("rewrite {re:?}: {e}")))?;
                let mut rest = to.as_str();
                while let Some(i) = rest.find('$') {
                    if !rest[i + 1..].starts_with(|c: char| c.is_ascii_digit()) {
                        return Err(Problem::Unsupported("rewrite with an nginx variable".into()));
                    }
                    rest = &rest[i + 1..];
                }
                s.redirects.push((re, to.clone(), if flag == "permanent" { 301 } else { 302 }));
            }
            ("rewrite", _) => return Err(Problem::Unsupported("rewrite without redirect or permanent".into())),
            _ => return Err(Problem::Unsupported(d.to_string())),
        }
    }
    Ok(s)
}

/// The replacement of a `rewrite` with the captures of `path`, if the expression matches.
pub fn redirect_of(rules: &[(regex::Regex, String, u16)], path: &str) -> Option<(u16, String)> {
    rules.iter().find_map(|(re, to, code)| {
        let caps = re.captures(path)?;
        let mut out = String::with_capacity(to.len() + path.len());
        let mut rest = to.as_str();
        while let Some(i) = rest.find('$') {
            out.push_str(&rest[..i]);
            let d = rest.as_bytes().get(i + 1).map_or(0, |d| d - b'0') as usize;
            out.push_str(caps.get(d).map_or("", |m| m.as_str()));
            rest = &rest[i + 2..];
        }
        out.push_str(rest);
        Some((*code, out))
    })
}

/// The statuses nginx's `add_header` (without `always`) adds to.
pub const ADDS_TO: &[u16] = &[200, 201, 204, 206, 301, 302, 303, 304, 307, 308];

/// Both snippets of an Ingress, the server's first.
pub fn combined(server: Option<Arc<Snippet>>, location: Option<Arc<Snippet>>) -> Option<Arc<Snippet>> {
    match (server, location) {
        (Some(a), Some(b)) => {
            let mut s = (*a).clone();
            s.set_response.extend(b.set_response.iter().cloned());
            s.add_response.extend(b.add_response.iter().cloned());
            s.add_always.extend(b.add_always.iter().cloned());
            s.clear_response.extend(b.clear_response.iter().cloned());
            s.set_upstream.extend(b.set_upstream.iter().cloned());
            s.answer = b.answer.clone().or(s.answer);
            s.redirects.extend(b.redirects.iter().cloned());
            Some(Arc::new(s))
        }
        (a, b) => a.or(b),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_safe_subset_is_read_and_everything_else_is_named() {
        let s = parse(
            "more_set_headers \"X-Frame-Options: DENY\" 'X-Team: edge';\n# a comment\nmore_clear_headers Server;\nadd_header X-Added yes always;\nproxy_set_header X-From-Snippet 1;\nrewrite ^/old/(.*)$ https://new.test/$1 permanent;",
        )
        .unwrap();
        assert_eq!(
            s.set_response,
            vec![("x-frame-options".into(), b"DENY".to_vec()), ("x-team".into(), b"edge".to_vec())]
        );
        assert_eq!(s.clear_response, vec!["server".to_string()]);
        assert_eq!((s.add_response.len(), s.add_always.len()), (0, 1));
        assert_eq!(s.set_upstream, vec![("x-from-snippet".into(), b"1".to_vec())]);
        assert_eq!(redirect_of(&s.redirects, "/old/a/b"), Some((301, "https://new.test/a/b".into())));
        assert_eq!(redirect_of(&s.redirects, "/other"), None);
        let r = parse("return 503 'down for maintenance';").unwrap();
        assert_eq!(r.answer, Some(Answer { code: 503, location: None, body: "down for maintenance".into() }));
        let r = parse("return 308 https://x.test/;").unwrap().answer.unwrap();
        assert_eq!(r.location.as_deref(), Some("https://x.test/"));

        assert_eq!(parse("more_set_headers 'A: b'; deny all;"), Err(Problem::Access("deny".into())));
        assert_eq!(parse("auth_basic \"x\";"), Err(Problem::Access("auth_basic".into())));
        assert_eq!(parse("proxy_cache_bypass 1;"), Err(Problem::Unsupported("proxy_cache_bypass".into())));
        assert_eq!(parse("if ($x) { return 403; }"), Err(Problem::Unsupported("if".into())));
        assert!(matches!(parse("more_set_headers 'X: $host';"), Err(Problem::Unsupported(_))));
        assert!(matches!(parse("proxy_set_header Content-Length 1;"), Err(Problem::Unsupported(_))));
        assert!(matches!(parse("more_set_headers -s 404 'X: y';"), Err(Problem::Unsupported(_))));
        assert!(matches!(parse("add_header X y"), Err(Problem::Malformed(_))));
        assert!(matches!(parse("more_set_headers \"X: y;"), Err(Problem::Malformed(_))));
        assert!(matches!(parse("more_set_headers 'X: a\r\nY: b';"), Err(Problem::Malformed(_))));
    }
}
