//! Access control an Ingress asks for, and the rule that keeps it from failing open: every
//! annotation that protects a route is either enforced here or stops the route.
//!
//! Enforced: the client-address lists (`allowlist-source-range`, its older name
//! `whitelist-source-range`, and `denylist-source-range`; the ConfigMap's global lists and
//! `block-cidrs` in [`super::edge::Edge`]), basic authentication ([`super::auth`]), external
//! authentication ([`super::external`]) and client certificates ([`super::client_cert`]). Every other annotation in [`UNENFORCED`] makes
//! the Ingress's routes answer 503 with a body naming it (unless the operator chose
//! [`UnsupportedPolicy::Warn`]), and so does an enforced one whose value does not parse.

use std::sync::Arc;

use super::edge::Cidr;

/// Security-relevant ingress-nginx annotations ringress does not enforce (yet), with what
/// they would have protected. An Ingress carrying one is refused: serving it would serve it
/// unprotected.
pub const UNENFORCED: &[(&str, &str)] = &[
    ("auth-snippet", "external authentication (nginx configuration)"),
    ("enable-modsecurity", "the ModSecurity web application firewall"),
    ("enable-owasp-core-rules", "the ModSecurity web application firewall"),
    ("modsecurity-snippet", "the ModSecurity web application firewall"),
    ("modsecurity-transaction-id", "the ModSecurity web application firewall"),
];

/// Security annotations ringress enforces, besides external authentication's
/// ([`super::external::KEYS`]) and client certificates' ([`super::client_cert::KEYS`]).
pub const ENFORCED: &[&str] = &[
    "allowlist-source-range",
    "whitelist-source-range",
    "denylist-source-range",
    "auth-type",
    "auth-secret",
    "auth-secret-type",
    "auth-realm",
    "satisfy",
    "enable-global-auth",
];

/// ConfigMap keys that protect every Ingress and that ringress does not enforce (yet). Set
/// (not empty), every Ingress that does not opt out with `enable-global-auth: "false"` is
/// refused, under the same policy as [`UNENFORCED`].
pub const GLOBAL_UNENFORCED: &[(&str, &str)] =
    &[("global-auth-snippet", "external authentication (nginx configuration)")];

/// What ringress does with an Ingress carrying an annotation of [`UNENFORCED`]
/// (`--unsupported-security-annotations`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum UnsupportedPolicy {
    /// Its routes answer 503 naming the annotation, and `ringress check` fails.
    #[default]
    Refuse,
    /// Served without that protection, with a warning (for operators who insist).
    Warn,
}

/// The access rules of one Ingress, shared by its routes.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Access {
    /// Only clients in these blocks (`allowlist-source-range`); None: the ConfigMap's list,
    /// if any.
    pub allow: Option<Arc<[Cidr]>>,
    /// Never clients in these blocks (`denylist-source-range`); None: the ConfigMap's.
    pub deny: Option<Arc<[Cidr]>>,
    /// Basic authentication: the users of the `auth-secret`.
    pub basic: Option<Arc<super::auth::BasicAuth>>,
    /// `satisfy: any`: the address lists or the credentials suffice (default `all`: both).
    pub satisfy_any: bool,
    /// Not served: why (an annotation ringress cannot enforce, or one whose value it cannot
    /// parse), sent as the 503's body and shown by `ringress check`.
    pub refused: Option<Arc<str>>,
}

impl Access {
    /// Refuses the route for `why` (added to the reasons already given).
    pub(crate) fn refuse(&mut self, why: String) {
        self.refused = Some(match self.refused.take() {
            Some(before) => format!("{before}; {why}").into(),
            None => why.into(),
        });
    }
}

/// One entry of `block-user-agents` / `block-referers`, as nginx's `map` reads it: a plain
/// string matches the whole value exactly, `~re` a regular expression, `~*re` one without
/// regard to case.
#[derive(Clone, Debug)]
pub enum Pattern {
    Exact(String),
    Regex(regex::bytes::Regex),
}

impl PartialEq for Pattern {
    fn eq(&self, other: &Self) -> bool {
        match (self, other) {
            (Pattern::Exact(a), Pattern::Exact(b)) => a == b,
            (Pattern::Regex(a), Pattern::Regex(b)) => a.as_str() == b.as_str(),
            _ => false,
        }
    }
}

impl Pattern {
    fn parse(v: &str) -> Option<Pattern> {
        let (re, fold) = match (v.strip_prefix("~*"), v.strip_prefix('~')) {
            (Some(re), _) => (re, true),
            (None, Some(re)) => (re, false),
            (None, None) => return Some(Pattern::Exact(v.to_string())),
        };
        let re = regex::bytes::RegexBuilder::new(re).case_insensitive(fold).size_limit(1 << 20).build().ok()?;
        Some(Pattern::Regex(re))
    }

    pub fn matches(&self, value: &[u8]) -> bool {
        match self {
            Pattern::Exact(s) => s.as_bytes() == value,
            Pattern::Regex(re) => re.is_match(value),
        }
    }
}

/// A comma-separated list of [`Pattern`]s; None when one does not parse.
pub fn parse_patterns(v: &str) -> Option<Vec<Pattern>> {
    v.split(',').map(str::trim).filter(|s| !s.is_empty()).map(Pattern::parse).collect()
}

/// What an annotation (without its prefix) would have protected, if ringress does not enforce
/// it.
pub fn unenforced(key: &str) -> Option<&'static str> {
    UNENFORCED.iter().find(|(k, _)| *k == key).map(|(_, why)| *why)
}

/// Whether the ConfigMap's `block-cidrs`, `block-user-agents` or `block-referers` refuse a
/// request, whatever its route says.
pub fn blocked(
    global: &super::edge::Edge,
    client: std::net::IpAddr,
    (user_agent, referer): (Option<&[u8]>, Option<&[u8]>),
) -> bool {
    if global.block.iter().any(|c| c.contains(client)) {
        return true;
    }
    let named = |list: &[Pattern], value: Option<&[u8]>| value.is_some_and(|v| list.iter().any(|p| p.matches(v)));
    named(&global.block_user_agents, user_agent) || named(&global.block_referers, referer)
}

/// Whether the address lists let `client` reach a route with `access`: the Ingress's deny
/// list (else the global one), then its allow list (else the global one), as ingress-nginx
/// orders them.
pub fn listed(access: &Access, global: &super::edge::Edge, client: std::net::IpAddr) -> bool {
    let hit = |list: &[Cidr]| list.iter().any(|c| c.contains(client));
    if hit(access.deny.as_deref().unwrap_or(&global.deny)) {
        return false;
    }
    match access.allow.as_deref().or(global.allow.as_deref()) {
        Some(list) => hit(list),
        None => true,
    }
}

/// Whether an allow list grants `client` (under `satisfy: any`, where a list that only fails
/// to deny grants nothing, as nginx's access module declines then).
pub fn allowed_by_list(access: &Access, global: &super::edge::Edge, client: std::net::IpAddr) -> bool {
    let allow = access.allow.as_deref().or(global.allow.as_deref());
    allow.is_some() && listed(access, global, client)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::snapshot::edge::{parse_cidrs, Edge};

    /// Never a [`blocked`] request, then the address lists ([`listed`]).
    fn allows(
        access: &Access,
        global: &Edge,
        client: std::net::IpAddr,
        fields: (Option<&[u8]>, Option<&[u8]>),
    ) -> bool {
        !blocked(global, client, fields) && listed(access, global, client)
    }

    fn cidrs(v: &str) -> Option<Arc<[Cidr]>> {
        Some(parse_cidrs(v).unwrap().into())
    }

    #[test]
    fn block_then_deny_then_allow_and_the_ingress_overrides_the_configmap() {
        let ip = |s: &str| s.parse().unwrap();
        let mut global = Edge::default();
        let open = Access::default();
        let allows = |a: &Access, g: &Edge, c| allows(a, g, c, (None, None));
        assert!(allows(&open, &global, ip("192.0.2.1")), "no list: everyone");
        global.allow = parse_cidrs("10.0.0.0/8");
        global.deny = parse_cidrs("10.9.0.0/16").unwrap();
        assert!(allows(&open, &global, ip("10.1.1.1")));
        assert!(!allows(&open, &global, ip("10.9.1.1")), "the global deny list");
        assert!(!allows(&open, &global, ip("192.0.2.1")), "the global allow list");
        let own = Access { allow: cidrs("192.0.2.0/24, 2001:db8::/32"), deny: cidrs(""), ..Access::default() };
        assert!(allows(&own, &global, ip("192.0.2.1")), "the Ingress's list replaces the global one");
        assert!(allows(&own, &global, ip("2001:db8::5")));
        assert!(allows(&own, &global, ip("::ffff:192.0.2.9")), "IPv4-mapped clients");
        assert!(!allows(&own, &global, ip("10.1.1.1")));
        global.block = parse_cidrs("192.0.2.9").unwrap();
        assert!(!allows(&own, &global, ip("192.0.2.9")), "block-cidrs holds whatever the Ingress says");
    }

    #[test]
    fn user_agents_and_referers_are_blocked_by_exact_string_or_expression() {
        let mut global = Edge::default();
        global.block_user_agents = parse_patterns("curl/7.88.1, ~*bot, ~^Wget/").unwrap();
        global.block_referers = parse_patterns("~*\\.spam\\.example$").unwrap();
        let ip = "127.0.0.1".parse().unwrap();
        let open = Access::default();
        let ask = |ua: Option<&str>, r: Option<&str>| {
            allows(&open, &global, ip, (ua.map(str::as_bytes), r.map(str::as_bytes)))
        };
        assert!(!ask(Some("curl/7.88.1"), None));
        assert!(ask(Some("curl/7.88.10"), None), "a plain string matches the whole value only");
        assert!(!ask(Some("GoogleBOT/2.1"), None) && !ask(Some("Wget/1.21"), None));
        assert!(ask(Some("wget/1.21"), None), "~ is case-sensitive");
        assert!(ask(None, None), "no User-Agent: nothing to match");
        assert!(!ask(Some("Mozilla"), Some("http://www.SPAM.example")));
        assert!(ask(Some("Mozilla"), Some("http://spam.example.org")));
        assert!(parse_patterns("ok, ~(unclosed").is_none());
    }

    #[test]
    fn every_security_annotation_is_enforced_or_listed() {
        for k in ENFORCED.iter().chain(super::super::external::KEYS).chain(super::super::client_cert::KEYS) {
            assert!(unenforced(k).is_none(), "{k}");
        }
        assert_eq!(unenforced("auth-url"), None);
        assert_eq!(unenforced("auth-snippet"), Some("external authentication (nginx configuration)"));
        assert_eq!(unenforced("proxy-body-size"), None);
    }
}
