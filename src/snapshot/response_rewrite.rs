//! Rewrites of upstream response fields, as nginx's `proxy_redirect` (Location and Refresh),
//! `proxy_cookie_domain` and `proxy_cookie_path` (Set-Cookie attributes) do: ingress-nginx's
//! `proxy-redirect-from`/`-to`, `proxy-cookie-domain` and `proxy-cookie-path`, as annotations
//! and ConfigMap keys (the annotation wins, key by key).

/// One rewrite: what is looked for and what replaces it.
pub type Pair = (String, String);

/// The rewrites an Ingress (or the ConfigMap) sets. Each is `None` when not set (the
/// ConfigMap's then applies), `Some(None)` when set to `off`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ResponseRewrites {
    /// `proxy-redirect-from`/`-to`: a Location or Refresh URL starting with the first gets
    /// the second in its place (case-sensitive, as nginx's prefix match).
    pub redirect: Option<Option<Pair>>,
    /// `proxy-cookie-domain`: a Set-Cookie `Domain` equal to the first (without regard to
    /// case or a leading dot) becomes the second.
    pub cookie_domain: Option<Option<Pair>>,
    /// `proxy-cookie-path`: a Set-Cookie `Path` starting with the first gets the second in
    /// its place.
    pub cookie_path: Option<Option<Pair>>,
}

impl ResponseRewrites {
    pub fn is_empty(&self) -> bool {
        self.redirect.is_none() && self.cookie_domain.is_none() && self.cookie_path.is_none()
    }
}

/// The characters ingress-nginx allows in these values (`[-._~a-zA-Z0-9/:]`).
fn allowed(v: &str) -> bool {
    !v.is_empty() && v.bytes().all(|b| b.is_ascii_alphanumeric() || b"-._~/:".contains(&b))
}

/// `proxy-cookie-domain`, `proxy-cookie-path`: `off`, or `FROM TO`.
pub fn parse_pair(v: &str) -> Option<Option<Pair>> {
    if v == "off" {
        return Some(None);
    }
    let mut parts = v.split_ascii_whitespace();
    match (parts.next(), parts.next(), parts.next()) {
        (Some(from), Some(to), None) if allowed(from) && allowed(to) => Some(Some((from.into(), to.into()))),
        _ => None,
    }
}

/// `proxy-redirect-from` with `proxy-redirect-to`: `off` or `default` (nginx's default,
/// which ingress-nginx turns off) in `from` turns it off; otherwise both are one word.
pub fn parse_redirect(from: &str, to: Option<&str>) -> Result<Option<Pair>, &'static str> {
    match (from, to) {
        ("off" | "default", _) => Ok(None),
        (_, None) => Err("needs proxy-redirect-to"),
        (from, Some(to)) if allowed(from) && allowed(to) => Ok(Some((from.into(), to.into()))),
        _ => Err("is not one word of URL characters"),
    }
}

/// `value` with `from` at its start replaced by `to`.
fn prefix_replaced(value: &[u8], (from, to): &Pair) -> Option<Vec<u8>> {
    value.strip_prefix(from.as_bytes()).map(|rest| [to.as_bytes(), rest].concat())
}

/// A Location field's value, rewritten.
pub fn location(pair: &Pair, value: &[u8]) -> Option<Vec<u8>> {
    prefix_replaced(value, pair)
}

/// A Refresh field's value (`5; url=/x`), its URL rewritten.
pub fn refresh(pair: &Pair, value: &[u8]) -> Option<Vec<u8>> {
    let lower = value.to_ascii_lowercase();
    let at = lower.windows(4).position(|w| w == b"url=")? + 4;
    let url = prefix_replaced(&value[at..], pair)?;
    Some([&value[..at], &url[..]].concat())
}

/// A Set-Cookie field's value with its Domain and Path attributes rewritten.
pub fn set_cookie(domain: Option<&Pair>, path: Option<&Pair>, value: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(value.len() + 16);
    let mut changed = false;
    for (i, part) in value.split(|&b| b == b';').enumerate() {
        if i > 0 {
            out.push(b';');
        }
        // The first part is the cookie's name=value, never an attribute.
        let eq = part.iter().position(|&b| b == b'=').filter(|_| i > 0);
        let Some(eq) = eq else {
            out.extend_from_slice(part);
            continue;
        };
        let name = part[..eq].trim_ascii();
        let v = part[eq + 1..].trim_ascii();
        let new = if name.eq_ignore_ascii_case(b"domain") {
            domain
                .filter(|(from, _)| {
                    let v = v.strip_prefix(b".").unwrap_or(v);
                    v.eq_ignore_ascii_case(from.strip_prefix('.').unwrap_or(from).as_bytes())
                })
                .map(|(_, to)| to.as_bytes().to_vec())
        } else if name.eq_ignore_ascii_case(b"path") {
            path.and_then(|p| prefix_replaced(v, p))
        } else {
            None
        };
        match new {
            Some(new) => {
                changed = true;
                out.extend_from_slice(&part[..eq + 1]);
                out.extend_from_slice(&new);
            }
            None => out.extend_from_slice(part),
        }
    }
    changed.then_some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pair(a: &str, b: &str) -> Pair {
        (a.into(), b.into())
    }

    #[test]
    fn fields_are_rewritten_as_nginx_does() {
        let p = pair("http://backend.local:8080/", "https://app.example.com/");
        assert_eq!(
            location(&p, b"http://backend.local:8080/login?x=1").as_deref(),
            Some(&b"https://app.example.com/login?x=1"[..])
        );
        assert_eq!(location(&p, b"http://other/"), None);
        assert_eq!(location(&p, b"HTTP://BACKEND.local:8080/"), None, "case-sensitive, as nginx");
        assert_eq!(
            refresh(&p, b"3; URL=http://backend.local:8080/a").as_deref(),
            Some(&b"3; URL=https://app.example.com/a"[..])
        );
        let d = pair("localhost", "example.org");
        let path = pair("/two/", "/");
        assert_eq!(
            set_cookie(Some(&d), Some(&path), b"id=1; Domain=.LocalHost; Path=/two/some/uri/; HttpOnly").as_deref(),
            Some(&b"id=1; Domain=example.org; Path=/some/uri/; HttpOnly"[..])
        );
        assert_eq!(set_cookie(Some(&d), Some(&path), b"id=1; Domain=other.org; Path=/one/"), None);
        // The cookie's own value is never taken for an attribute.
        assert_eq!(set_cookie(Some(&d), None, b"domain=localhost"), None);
        assert_eq!(parse_pair("off"), Some(None));
        assert_eq!(parse_pair("a.local b.example"), Some(Some(pair("a.local", "b.example"))));
        assert_eq!(parse_pair("a b c"), None);
        assert_eq!(parse_pair("a $host"), None);
        assert_eq!(parse_redirect("default", None), Ok(None));
        assert!(parse_redirect("http://a/", None).is_err());
    }
}
