//! What the proxy adds to, replaces in and drops from a forwarded request's response: CORS
//! fields, the affinity cookie, `custom-headers`, `hide-headers`, snippets' and Gateway API
//! response header changes, and the `proxy-redirect-*` / `proxy-cookie-*` rewrites.

use std::sync::Arc;

use crate::snapshot::response_rewrite::ResponseRewrites;
use crate::snapshot::traffic::Cors;

/// What the proxy adds to a forwarded request's response.
#[derive(Debug, Default)]
pub(crate) struct Reply {
    /// CORS fields: they replace the upstream's fields of the same names ([`CORS_FIELDS`]).
    pub cors: Vec<(&'static str, Vec<u8>)>,
    /// Cookie affinity: the Set-Cookie, once it is known which endpoint answered.
    pub sticky: Option<super::super::affinity::Sticky>,
    /// `custom-headers`: (lower-case name, value), replacing the upstream's of those names.
    pub set: Option<Arc<[crate::snapshot::edge::Field]>>,
    /// The ConfigMap's `hide-headers` (lower case): the upstream's fields dropped.
    pub hide: Option<Arc<[String]>>,
    /// A snippet's `more_set_headers` (replacing), `add_header` (adding) and
    /// `more_clear_headers` (dropping).
    pub snippet: Option<Arc<crate::snapshot::snippet::Snippet>>,
    /// `proxy-redirect-*`, `proxy-cookie-*`: the route's rewrites, then the ConfigMap's.
    pub rewrites: Option<(Option<Arc<ResponseRewrites>>, Arc<ResponseRewrites>)>,
}

/// The fields a CORS route states itself, whatever the upstream says (ingress-nginx sets them
/// with `more_set_headers`, which replaces).
pub(crate) const CORS_FIELDS: [&str; 6] = [
    "Access-Control-Allow-Origin",
    "Access-Control-Allow-Credentials",
    "Access-Control-Allow-Methods",
    "Access-Control-Allow-Headers",
    "Access-Control-Expose-Headers",
    "Access-Control-Max-Age",
];

impl Reply {
    /// One rewrite, the route's when it sets it, else the ConfigMap's.
    fn rewrite<T>(&self, pick: impl Fn(&ResponseRewrites) -> &Option<Option<T>>) -> Option<&T> {
        let (route, global) = self.rewrites.as_ref()?;
        route.as_deref().and_then(|r| pick(r).as_ref()).or(pick(global).as_ref())?.as_ref()
    }

    /// Whether upstream fields named `name` may be rewritten ([`Reply::rewritten`]).
    pub fn rewrites(&self, name: &[u8]) -> bool {
        self.rewrites.is_some()
            && if name.eq_ignore_ascii_case(b"location") || name.eq_ignore_ascii_case(b"refresh") {
                self.rewrite(|r| &r.redirect).is_some()
            } else {
                name.eq_ignore_ascii_case(b"set-cookie")
                    && (self.rewrite(|r| &r.cookie_domain).is_some() || self.rewrite(|r| &r.cookie_path).is_some())
            }
    }

    /// An upstream field's value as the rewrites make it (`None`: unchanged).
    pub fn rewritten(&self, name: &[u8], value: &[u8]) -> Option<Vec<u8>> {
        use crate::snapshot::response_rewrite as rw;
        if name.eq_ignore_ascii_case(b"location") {
            rw::location(self.rewrite(|r| &r.redirect)?, value)
        } else if name.eq_ignore_ascii_case(b"refresh") {
            rw::refresh(self.rewrite(|r| &r.redirect)?, value)
        } else if name.eq_ignore_ascii_case(b"set-cookie") {
            rw::set_cookie(self.rewrite(|r| &r.cookie_domain), self.rewrite(|r| &r.cookie_path), value)
        } else {
            None
        }
    }

    /// Whether the upstream's field `name` gives way to one of the proxy's.
    pub fn replaces(&self, name: &[u8]) -> bool {
        self.replaced_names().any(|n| name.eq_ignore_ascii_case(n.as_bytes()))
    }

    /// The names of the upstream's fields that give way ([`Reply::replaces`]).
    pub fn replaced_names(&self) -> impl Iterator<Item = &str> {
        let cors = if self.cors.is_empty() { &[][..] } else { &CORS_FIELDS[..] };
        let set = self.set.iter().flat_map(|s| s.iter().map(|(n, _)| n.as_str()));
        let hide = self.hide.iter().flat_map(|h| h.iter().map(String::as_str));
        let sn = self.snippet.iter().flat_map(|s| {
            s.set_response.iter().map(|(n, _)| n.as_str()).chain(s.clear_response.iter().map(String::as_str))
        });
        cors.iter().copied().chain(set).chain(hide).chain(sn)
    }

    /// The fields to add to an answer of `status` from `used` (the endpoint that answered).
    pub fn each(&self, (used, status): (Option<std::net::SocketAddr>, u16), mut f: impl FnMut(&str, &[u8])) {
        for (n, v) in &self.cors {
            f(n, v);
        }
        for (n, v) in self.set.iter().flat_map(|s| s.iter()) {
            f(n, v);
        }
        if let Some(sn) = &self.snippet {
            let added = crate::snapshot::snippet::ADDS_TO.contains(&status).then_some(&sn.add_response);
            for (n, v) in sn.set_response.iter().chain(added.into_iter().flatten()).chain(&sn.add_always) {
                f(n, v);
            }
        }
        if let Some(c) = self.sticky.as_ref().and_then(|s| s.cookie(used)) {
            f("Set-Cookie", &c);
        }
    }
}

/// The CORS fields for a request from an allowed origin (`allow`: the Allow-Origin value);
/// a preflight's answer also says what its body is.
pub(super) fn cors_fields(c: &Cors, allow: &[u8], preflight: bool) -> Vec<(&'static str, Vec<u8>)> {
    let mut out = Vec::with_capacity(8);
    out.push((CORS_FIELDS[0], allow.to_vec()));
    if c.credentials {
        out.push((CORS_FIELDS[1], b"true".to_vec()));
    }
    out.push((CORS_FIELDS[2], c.methods.as_bytes().to_vec()));
    out.push((CORS_FIELDS[3], c.headers.as_bytes().to_vec()));
    if let Some(e) = &c.expose {
        out.push((CORS_FIELDS[4], e.as_bytes().to_vec()));
    }
    out.push((CORS_FIELDS[5], c.max_age.to_string().into_bytes()));
    if allow != b"*" {
        // The answer depends on the Origin: caches must keep one per origin.
        out.push(("Vary", b"Origin".to_vec()));
    }
    if preflight {
        out.push(("Content-Type", b"text/plain charset=UTF-8".to_vec()));
    }
    out
}
