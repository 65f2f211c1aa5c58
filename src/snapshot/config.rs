//! Global settings from our ConfigMap (`--configmap`, in the cluster or in the manifests),
//! under ingress-nginx's key names, laid over the command-line flags. A key ringress does not
//! know, or a value that does not parse, is a warning naming the ConfigMap and the key, and
//! that setting keeps the value it had (the previous snapshot's, else the flag's).

use http::HeaderName;

use super::access::parse_patterns;
use super::annotations::{parse_bool, parse_codes, parse_on_off, parse_seconds, parse_seconds_or_zero, parse_size};
use super::compression::{AgentPattern, Types};
use super::edge::{parse_cidrs, Edge, FRAMING_FIELDS};
use super::listener_tls::{parse_ciphers, parse_groups, parse_protocols};
use super::response_rewrite::parse_pair;
use super::{LoadBalance, NextWhen, Settings};
use crate::access_log;
use crate::model::ConfigMap;

/// Everything the ConfigMap sets: the data-plane settings and the access log's configuration
/// (kept apart in the snapshot so a per-route copy of the settings stays plain data).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Global {
    pub settings: Settings,
    pub log: access_log::Config,
    pub edge: Edge,
}

impl Global {
    pub fn of(snap: &super::Snapshot) -> Global {
        Global { settings: snap.settings.clone(), log: (*snap.log).clone(), edge: (*snap.edge).clone() }
    }
}

/// One supported key (of the ConfigMap, or an annotation): its name, what a good value looks
/// like, how it is applied to a `T`, and how the previous value of its setting is kept.
pub(super) struct Key<T> {
    pub name: &'static str,
    pub expects: &'static str,
    /// Applies the value; false when it does not parse.
    pub set: fn(&mut T, &str) -> bool,
    /// Copies the key's setting from the previous `T`.
    pub keep: fn(&mut T, &T),
}

/// A key that sets `field` to what `parse` makes of the value.
macro_rules! key {
    ($name:literal, $expects:expr, $($field:ident).+, $parse:expr) => {
        $crate::snapshot::config::Key {
            name: $name,
            expects: $expects,
            set: |s, v| match ($parse)(v) {
                Some(x) => {
                    s.$($field).+ = x;
                    true
                }
                None => false,
            },
            keep: |s, prev| s.$($field).+ = prev.$($field).+.clone(),
        }
    };
}
pub(super) use key;

/// A value read as a `T` (a whole number, mostly), as written.
pub(super) fn whole<T: std::str::FromStr>(v: &str) -> Option<T> {
    v.parse::<T>().ok()
}

fn positive<T: std::str::FromStr + Default + PartialOrd>(v: &str) -> Option<T> {
    whole::<T>(v).filter(|n| *n > T::default())
}

/// What a good value looks like, for the keys that share it.
const CIDRS: &str = "comma-separated address blocks (10.0.0.0/8,192.168.0.0/16)";
const PATTERNS: &str = "comma-separated strings or ~regular expressions";
const HEADER_NAMES: &str = "a comma-separated list of header names (not framing ones)";
const MEDIA_TYPES: &str = "space-separated media types (type/subtype) or *";

/// Every key ringress reads, in the README's order.
const KEYS: &[Key<Global>] = &[
    key!("proxy-connect-timeout", "a number of seconds", settings.connect_timeout, parse_seconds),
    key!("proxy-read-timeout", "a number of seconds", settings.upstream_timeout, parse_seconds),
    key!("proxy-send-timeout", "a number of seconds", settings.upstream_send_timeout, parse_seconds),
    key!("client-header-timeout", "a number of seconds", settings.header_timeout, parse_seconds),
    key!("keep-alive", "a number of seconds", settings.idle_timeout, parse_seconds),
    key!("keep-alive-requests", "a positive whole number", settings.keepalive_requests, positive::<u64>),
    key!("proxy-body-size", "a size (8m, 512k, 1g; 0 for no limit)", settings.max_body_bytes, parse_size),
    key!("ssl-redirect", "true or false", settings.ssl_redirect, parse_bool),
    key!("force-ssl-redirect", "true or false", settings.force_ssl_redirect, parse_bool),
    key!("http-redirect-code", "301, 302, 307 or 308", settings.redirect_code, |v: &str| whole::<u16>(v)
        .filter(|c| matches!(c, 301 | 302 | 307 | 308))),
    key!("upstream-keepalive-connections", "a whole number", settings.upstream_keepalive_connections, whole::<usize>),
    key!("upstream-keepalive-timeout", "a number of seconds", settings.upstream_idle_timeout, parse_seconds),
    key!(
        "http2-max-concurrent-streams",
        "a positive whole number",
        settings.h2_max_concurrent_streams,
        positive::<u32>
    ),
    key!("worker-shutdown-timeout", "a number of seconds", settings.drain_timeout, parse_seconds),
    key!("access-log-path", "a file path (empty: no access log)", log.path, |v: &str| Some(
        (!v.is_empty()).then(|| std::path::PathBuf::from(v))
    )),
    key!("disable-access-log", "true or false", log.disabled, parse_bool),
    key!("access-log-format", "text or json", log.format, |v: &str| match v {
        "text" => Some(access_log::Format::Text),
        "json" => Some(access_log::Format::Json),
        _ => None,
    }),
    key!("log-format-upstream", "a template of $variables (see the README)", log.template, |v: &str| {
        access_log::Template::parse(v).ok()
    }),
    key!("access-log-max-size", "a size (100m, 512k, 1g)", log.max_size, |v: &str| parse_size(v).filter(|n| *n > 0)),
    key!("access-log-rotate-interval", "a duration (3600, 90s, 30m, 24h, 7d)", log.rotate_every, parse_duration),
    key!("access-log-max-files", "a whole number", log.max_files, whole::<usize>),
    key!("access-log-max-total-size", "a size (100m, 512k, 1g)", log.max_total, |v: &str| parse_size(v)
        .filter(|n| *n > 0)),
    key!("access-log-compress", "true or false", log.compress, parse_bool),
    key!("client-body-timeout", "a number of seconds", settings.body_timeout, parse_seconds),
    key!("server-tokens", "true or false", settings.server_tokens, parse_bool),
    key!(
        "proxy-next-upstream",
        "off or a list of error, timeout, invalid_header, http_5xx/403/404/429, non_idempotent",
        settings.next_upstream.when,
        NextWhen::parse
    ),
    key!("proxy-next-upstream-tries", "a whole number (0: every endpoint)", settings.next_upstream.tries, whole::<u32>),
    key!(
        "proxy-next-upstream-timeout",
        "a number of seconds (0: no limit)",
        settings.next_upstream.timeout,
        parse_seconds_or_zero
    ),
    key!("limit-req-status-code", "a status from 400 to 599", settings.limit_req_status, parse_status),
    key!("limit-conn-status-code", "a status from 400 to 599", settings.limit_conn_status, parse_status),
    key!(
        "custom-http-errors",
        "a comma-separated list of statuses from 400 to 599",
        settings.custom_http_errors,
        parse_codes
    ),
    key!("limit-rate", "bytes per second (0: none)", settings.limit_rate, whole::<u64>),
    key!("limit-rate-after", "a number of bytes", settings.limit_rate_after, whole::<u64>),
    key!("use-proxy-protocol", "true or false", settings.accept_proxy, parse_bool),
    key!("enable-underscores-in-headers", "true or false", settings.underscores_in_headers, parse_bool),
    key!("proxy-request-buffering", "on or off", settings.request_buffering, parse_on_off),
    key!("proxy-buffer-size", "a size from 1k to 1m", settings.max_response_head, |v: &str| parse_size(v)
        .filter(|n| (1024..=1 << 20).contains(n))
        .map(|n| n as usize)),
    key!(
        "large-client-header-buffers",
        "a number and a size (4 8k), their product at most 1m",
        settings.max_header_bytes,
        |v: &str| {
            let (n, size) = v.split_once(char::is_whitespace)?;
            let total = n.trim().parse::<u64>().ok()?.checked_mul(parse_size(size.trim())?)?;
            (1024..=1 << 20).contains(&total).then_some(total as usize)
        }
    ),
    key!("client-body-buffer-size", "a size (8k, 1m)", settings.body_buffer_size, parse_size),
    key!("client-body-min-rate", "bytes per second (0: no minimum)", settings.body_min_rate, whole::<u64>),
    key!("load-balance", "round_robin or ewma", settings.load_balance, |v: &str| match v {
        "round_robin" => Some(LoadBalance::RoundRobin),
        "ewma" => Some(LoadBalance::Ewma),
        _ => None,
    }),
    key!("hsts", "true or false", edge.hsts.enabled, parse_bool),
    key!("hsts-max-age", "a whole number of seconds", edge.hsts.max_age, whole::<u64>),
    key!("hsts-include-subdomains", "true or false", edge.hsts.include_subdomains, parse_bool),
    key!("hsts-preload", "true or false", edge.hsts.preload, parse_bool),
    key!("add-headers", "namespace/name of a ConfigMap", edge.add_headers, config_map_ref),
    key!("proxy-set-headers", "namespace/name of a ConfigMap", edge.proxy_set_headers, config_map_ref),
    key!("hide-headers", HEADER_NAMES, edge.hide_headers, |v: &str| { header_names(v).map(std::sync::Arc::from) }),
    key!("global-allowed-response-headers", HEADER_NAMES, edge.allowed_response_headers, header_names),
    key!(
        "ssl-protocols",
        "TLSv1.2 and/or TLSv1.3 (ringress offers no older protocol)",
        edge.tls.protocols,
        parse_protocols
    ),
    key!(
        "ssl-ciphers",
        "an OpenSSL cipher list naming at least one ECDHE AES-GCM or CHACHA20-POLY1305 suite",
        edge.tls.ciphers,
        parse_ciphers
    ),
    key!(
        "ssl-ecdh-curve",
        "auto or a colon-separated list of X25519MLKEM768, X25519, prime256v1, secp384r1",
        edge.tls.groups,
        parse_groups
    ),
    key!("ssl-session-tickets", "true or false", edge.tls.tickets, parse_bool),
    key!("ssl-session-timeout", "a duration (600, 90s, 10m, 24h, 7d)", edge.tls.session_timeout, parse_duration),
    key!("proxy-cookie-domain", "off or two words (from to)", edge.cookie_domain, |v: &str| {
        parse_pair(v).map(Some)
    }),
    key!("proxy-cookie-path", "off or two words (from to)", edge.cookie_path, |v: &str| { parse_pair(v).map(Some) }),
    key!("proxy-redirect-from", "off, default or one word of URL characters", edge.redirect_from, redirect_word),
    key!("proxy-redirect-to", "one word of URL characters", edge.redirect_to, redirect_word),
    key!("allow-snippet-annotations", "true or false", edge.allow_snippets, parse_bool),
    key!("use-gzip", "true or false", edge.compression.gzip, parse_bool),
    key!("gzip-level", "a level from 1 to 9", edge.compression.gzip_level, |v: &str| whole::<u32>(v)
        .filter(|l| (1..=9).contains(l))),
    key!("gzip-min-length", "a number of bytes", edge.compression.gzip_min_length, whole::<u64>),
    key!("gzip-types", MEDIA_TYPES, edge.compression.gzip_types, |v: &str| { Types::parse(v) }),
    key!(
        "gzip-disable",
        "a regular expression on the User-Agent, or msie6",
        edge.compression.gzip_disable,
        AgentPattern::parse
    ),
    key!("enable-brotli", "true or false", edge.compression.brotli, parse_bool),
    key!("brotli-level", "a level from 0 to 11", edge.compression.brotli_level, |v: &str| whole::<u32>(v)
        .filter(|l| *l <= 11)),
    key!("brotli-min-length", "a number of bytes", edge.compression.brotli_min_length, whole::<u64>),
    key!("brotli-types", MEDIA_TYPES, edge.compression.brotli_types, Types::parse),
    key!("use-forwarded-headers", "true or false", edge.use_forwarded_headers, parse_bool),
    key!("enable-real-ip", "true or false", edge.enable_real_ip, parse_bool),
    key!("compute-full-forwarded-for", "true or false", edge.compute_full_forwarded_for, parse_bool),
    key!("forwarded-for-header", "a header field name", edge.forwarded_for_header, |v: &str| {
        let token = !v.is_empty() && v.bytes().all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b));
        token.then(|| v.to_ascii_lowercase())
    }),
    key!("whitelist-source-range", CIDRS, edge.allow, |v: &str| parse_cidrs(v).map(|c| (!c.is_empty()).then_some(c))),
    key!("denylist-source-range", CIDRS, edge.deny, parse_cidrs),
    key!("block-cidrs", CIDRS, edge.block, parse_cidrs),
    key!("block-user-agents", PATTERNS, edge.block_user_agents, parse_patterns),
    key!("block-referers", PATTERNS, edge.block_referers, parse_patterns),
    key!("proxy-real-ip-cidr", CIDRS, edge.trusted, |v: &str| parse_cidrs(v).filter(|c| !c.is_empty())),
];

fn parse_status(v: &str) -> Option<u16> {
    whole::<u16>(v).filter(|c| (400..=599).contains(c))
}

/// Seconds, or a number with an `s`, `m`, `h` or `d` unit.
fn parse_duration(v: &str) -> Option<std::time::Duration> {
    let (num, unit) = match v.as_bytes().last()? {
        b's' => (&v[..v.len() - 1], 1),
        b'm' => (&v[..v.len() - 1], 60),
        b'h' => (&v[..v.len() - 1], 3600),
        b'd' => (&v[..v.len() - 1], 86_400),
        _ => (v, 1),
    };
    let n: u64 = num.trim().parse().ok().filter(|n| *n > 0)?;
    Some(std::time::Duration::from_secs(n.checked_mul(unit)?))
}

/// The settings `cm` asks for over `flags`. A bad value keeps `prev`'s value of that setting
/// (the one live before this ConfigMap version), or the flag's when there is no previous
/// snapshot. Returns the warnings, each naming the ConfigMap and the key.
pub fn apply(flags: &Global, prev: Option<&Global>, cm: Option<&ConfigMap>) -> (Global, Vec<String>) {
    let mut s = flags.clone();
    let mut warnings = Vec::new();
    let Some(cm) = cm else { return (s, warnings) };
    for (key, value) in &cm.data {
        let v = value.trim();
        let global_auth = is_global_auth_key(key);
        match KEYS.iter().find(|k| k.name == key) {
            // Read by the build (`global-auth-url` and its family): see `Edge::global_auth`.
            None if global_auth || NO_OP.iter().any(|(k, _)| k == key) => {}
            None => match crate::snapshot::access::GLOBAL_UNENFORCED.iter().find(|(k, _)| k == key) {
                Some((_, what)) if !v.is_empty() => s.edge.unenforced.push((key.clone(), what)),
                Some(_) => {}
                None => warnings.push(format!("ConfigMap {}: key {key} is not supported by ringress; ignored", cm.key)),
            },
            Some(k) => {
                if !(k.set)(&mut s, v) {
                    let kept = match prev {
                        Some(p) => {
                            (k.keep)(&mut s, p);
                            "its previous value stays"
                        }
                        None => "the default stays",
                    };
                    warnings.push(format!("ConfigMap {}: key {key}: {value:?} is not {}; {kept}", cm.key, k.expects));
                }
            }
        }
    }
    (s, warnings)
}

/// ingress-nginx ConfigMap keys ringress accepts and ignores (no warning) because its design makes them meaningless.
pub const NO_OP: &[(&str, &str)] = &[
    ("worker-processes", "ringress runs one worker per CPU of its affinity mask (--workers)"),
    ("worker-cpu-affinity", "ringress pins each worker to its CPU itself"),
    ("max-worker-connections", "per-worker connection limit: the --max-connections flag"),
    ("max-worker-open-files", "set the container's nofile limit instead"),
    ("enable-multi-accept", "ringress's workers accept on their own SO_REUSEPORT listeners"),
    ("reuse-port", "ringress's workers always listen with SO_REUSEPORT"),
    ("enable-aio-write", "nginx file I/O tuning"),
    ("enable-serial-reloads", "ringress never reloads: changes apply live"),
    ("map-hash-bucket-size", "nginx hash table sizing"),
    ("proxy-headers-hash-bucket-size", "nginx hash table sizing"),
    ("proxy-headers-hash-max-size", "nginx hash table sizing"),
    ("server-name-hash-bucket-size", "nginx hash table sizing"),
    ("server-name-hash-max-size", "nginx hash table sizing"),
    ("variables-hash-bucket-size", "nginx hash table sizing"),
    ("variables-hash-max-size", "nginx hash table sizing"),
    ("lua-shared-dicts", "ingress-nginx's Lua internals"),
    ("proxy-buffering", "ringress streams responses as they arrive; nginx's buffers have no counterpart"),
    ("proxy-buffers-number", "ringress streams responses as they arrive; nginx's buffers have no counterpart"),
    ("proxy-busy-buffers-size", "ringress streams responses as they arrive; nginx's buffers have no counterpart"),
    (
        "client-header-buffer-size",
        "the first buffer of a request head; ringress grows its own, up to large-client-header-buffers",
    ),
    ("ssl-buffer-size", "TLS record sizing is rustls's"),
    ("ssl-session-cache-size", "ringress's session cache holds 32k sessions per TLS configuration"),
    ("grpc-buffer-size-kb", "ringress streams gRPC responses as they arrive; nginx's buffers have no counterpart"),
    ("http2-max-field-size", "ringress's header limits: --max-header-bytes and --max-headers"),
    ("http2-max-header-size", "ringress's header limits: --max-header-bytes and --max-headers"),
    (
        "default-type",
        "nginx's type for files it serves itself; ringress serves none, and never types a proxied response",
    ),
    ("ssl-dh-param", "ringress offers no finite-field DHE suites (ECDHE only), so no DH parameters are used"),
    ("annotations-risk-level", "ringress never executes annotation values as configuration"),
    ("annotation-value-word-blocklist", "ringress never executes annotation values as configuration"),
    ("strict-validate-path-type", "ringress always validates paths against their pathType"),
];

/// `proxy-redirect-from`/`-to`: one word (checked with its pair by `Edge::resolve`).
fn redirect_word(v: &str) -> Option<Option<String>> {
    let word = !v.is_empty() && v.bytes().all(|b| b.is_ascii_alphanumeric() || b"-._~/:".contains(&b));
    word.then(|| Some(v.to_string()))
}

/// Comma-separated field names, lower case.
fn header_names(v: &str) -> Option<Vec<String>> {
    let names: Vec<String> = v.split(',').map(|n| n.trim().to_ascii_lowercase()).filter(|n| !n.is_empty()).collect();
    let usable = |n: &String| HeaderName::from_bytes(n.as_bytes()).is_ok() && !FRAMING_FIELDS.contains(&n.as_str());
    names.iter().all(usable).then_some(names)
}

/// `namespace/name` of a ConfigMap.
fn config_map_ref(v: &str) -> Option<Option<crate::model::ObjectKey>> {
    match v.split_once('/') {
        Some((ns, name)) if !ns.is_empty() && !name.is_empty() && !name.contains('/') => {
            Some(Some(crate::model::ObjectKey { namespace: ns.to_string(), name: name.to_string() }))
        }
        _ => None,
    }
}

/// `global-auth-url` and its family, read by the build (see `Edge::global_auth`).
pub fn is_global_auth_key(key: &str) -> bool {
    key.strip_prefix("global-").is_some_and(|k| super::external::KEYS.contains(&k))
}

/// The supported keys, for `ringress check` and the docs test.
pub fn keys() -> impl Iterator<Item = &'static str> {
    KEYS.iter().map(|k| k.name)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::ObjectKey;
    use std::time::Duration;

    fn cm(pairs: &[(&str, &str)]) -> ConfigMap {
        ConfigMap {
            key: ObjectKey { namespace: "ringress".into(), name: "ringress".into() },
            data: pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
        }
    }

    #[test]
    fn keys_apply_and_bad_values_keep_the_previous_value() {
        let flags = Global::default();
        let (s, w) = apply(
            &flags,
            None,
            Some(&cm(&[("proxy-body-size", "16m"), ("http-redirect-code", "301"), ("keep-alive", "75")])),
        );
        assert!(w.is_empty(), "{w:?}");
        assert_eq!(
            (s.settings.max_body_bytes, s.settings.redirect_code, s.settings.idle_timeout),
            (16 << 20, 301, Duration::from_secs(75))
        );
        // The next version breaks two values and adds an unknown key: those two keep 16m and
        // 301, the good key applies.
        let (s2, w) = apply(
            &flags,
            Some(&s),
            Some(&cm(&[
                ("proxy-body-size", "lots"),
                ("http-redirect-code", "303"),
                ("keep-alive", "30"),
                ("enable-opentelemetry", "true"),
            ])),
        );
        assert_eq!(
            (s2.settings.max_body_bytes, s2.settings.redirect_code, s2.settings.idle_timeout),
            (16 << 20, 301, Duration::from_secs(30))
        );
        assert_eq!(w.len(), 3, "{w:?}");
        assert!(w.iter().any(
            |w| w == "ConfigMap ringress/ringress: key enable-opentelemetry is not supported by ringress; ignored"
        ));
        assert!(w.iter().any(
            |w| w.contains("key http-redirect-code: \"303\" is not 301, 302, 307 or 308; its previous value stays")
        ));
        // Without a previous snapshot, a bad value leaves the flag's.
        let (s3, _) = apply(&flags, None, Some(&cm(&[("proxy-body-size", "lots")])));
        assert_eq!(s3.settings.max_body_bytes, flags.settings.max_body_bytes);
    }

    #[test]
    fn every_key_restores() {
        // Each key's bad value must fall back to `prev`, not to the flag.
        let flags = Global::default();
        for k in KEYS.iter().filter(|k| k.name != "access-log-path") {
            let good = match k.expects {
                "true or false" if matches!(k.name, "disable-access-log" | "server-tokens" | "hsts-preload") => "true",
                "true or false"
                    if matches!(
                        k.name,
                        "use-forwarded-headers"
                            | "enable-real-ip"
                            | "compute-full-forwarded-for"
                            | "use-proxy-protocol"
                            | "enable-underscores-in-headers"
                            | "force-ssl-redirect"
                            | "allow-snippet-annotations"
                            | "use-gzip"
                            | "enable-brotli"
                    ) =>
                {
                    "true"
                }
                "true or false" => "false",
                "301, 302, 307 or 308" => "302",
                "a size (8m, 512k, 1g; 0 for no limit)" | "a size (100m, 512k, 1g)" | "a size (8k, 1m)" => "3k",
                "on or off" => "off",
                "a file path (empty: no access log)" => "/var/log/x.log",
                "text or json" => "json",
                "round_robin or ewma" => "ewma",
                "namespace/name of a ConfigMap" => "ringress/headers",
                "a whole number of seconds" => "60",
                "comma-separated address blocks (10.0.0.0/8,192.168.0.0/16)" => "10.0.0.0/8",
                "comma-separated strings or ~regular expressions" => "~*bot",
                "a template of $variables (see the README)" => "$status $req_id",
                "a duration (3600, 90s, 30m, 24h, 7d)" => "2h",
                "a header field name" => "CF-Connecting-IP",
                "TLSv1.2 and/or TLSv1.3 (ringress offers no older protocol)" => "TLSv1.3",
                "auto or a colon-separated list of X25519MLKEM768, X25519, prime256v1, secp384r1" => "secp384r1",
                "a duration (600, 90s, 10m, 24h, 7d)" => "2h",
                _ if k.name == "ssl-ciphers" => "ECDHE-RSA-AES256-GCM-SHA384",
                "a status from 400 to 599" => "429",
                "a comma-separated list of statuses from 400 to 599" => "404,503",
                "a size from 1k to 1m" => "16k",
                "a level from 1 to 9" | "a level from 0 to 11" => "6",
                "a number of bytes" if k.name.ends_with("min-length") => "1000",
                "space-separated media types (type/subtype) or *" => "text/csv application/json",
                "a regular expression on the User-Agent, or msie6" => "msie6",
                "a number and a size (4 8k), their product at most 1m" => "4 16k",
                "off or two words (from to)" => "a.local b.test",
                "off, default or one word of URL characters" | "one word of URL characters" => "http://a.local/",
                "off or a list of error, timeout, invalid_header, http_5xx/403/404/429, non_idempotent" => {
                    "error http_502"
                }
                _ => "7",
            };
            let (prev, w) = apply(&flags, None, Some(&cm(&[(k.name, good)])));
            assert!(w.is_empty(), "{}: {w:?}", k.name);
            assert_ne!(prev, flags, "{} changed nothing", k.name);
            let (s, w) = apply(
                &flags,
                Some(&prev),
                Some(&cm(&[(
                    k.name,
                    match k.expects {
                        _ if k.name == "log-format-upstream" => "$nope",
                        // Any string is a pattern; an expression that does not compile is not.
                        "comma-separated strings or ~regular expressions" => "~(",
                        "a header field name" => "bad: name",
                        "a regular expression on the User-Agent, or msie6" => "(",
                        "off or two words (from to)"
                        | "one word of URL characters"
                        | "off, default or one word of URL characters" => "a b c",
                        "a comma-separated list of header names (not framing ones)" => "x-ok, content-length",
                        _ => "-bad-",
                    },
                )])),
            );
            assert_eq!(w.len(), 1, "{}", k.name);
            assert_eq!(s, prev, "{} did not keep its previous value", k.name);
        }
    }
}
