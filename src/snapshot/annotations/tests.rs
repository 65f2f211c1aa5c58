use super::*;
use crate::model::ObjectKey;

fn ing(annotations: &[(&str, &str)]) -> Ingress {
    Ingress {
        key: ObjectKey { namespace: "ns".into(), name: "web".into() },
        uid: None,
        creation_timestamp: None,
        annotations: annotations.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
        class_name: None,
        default_backend: None,
        rules: Vec::new(),
        tls: Vec::new(),
        origin: Default::default(),
    }
}

/// The options an Ingress's annotations give, which must all be understood.
fn without_warnings(i: &Ingress) -> RouteOptions {
    let (o, w) = RouteOptions::of(i, UnsupportedPolicy::Refuse);
    assert_eq!(w, Vec::<String>::new());
    o
}

#[test]
fn both_prefixes_and_the_current_one_wins() {
    let i = ing(&[
        ("ingress.kubernetes.io/proxy-body-size", "16m"),
        ("ingress.kubernetes.io/grpc-backend", "true"),
        ("ingress.kubernetes.io/ssl-redirect", "false"),
        ("nginx.ingress.kubernetes.io/ssl-redirect", "true"),
        ("kubernetes.io/ingress.class", "nginx"),
    ]);
    let o = without_warnings(&i);
    assert_eq!(o.max_body_bytes, Some(16 << 20));
    assert_eq!(o.protocol, BackendProtocol::Grpc);
    assert_eq!(o.ssl_redirect, Some(true));
}

#[test]
fn bad_values_warn_with_ingress_and_key_and_keep_defaults() {
    let i = ing(&[
        ("nginx.ingress.kubernetes.io/proxy-body-size", "lots"),
        ("nginx.ingress.kubernetes.io/backend-protocol", "FTP"),
        ("nginx.ingress.kubernetes.io/proxy-read-timeout", "-3"),
        ("nginx.ingress.kubernetes.io/configuration-snippet", "more_set_headers x"),
    ]);
    let (o, w) = RouteOptions::of(&i, UnsupportedPolicy::Refuse);
    assert_eq!(o.max_body_bytes, None);
    assert_eq!(o.protocol, BackendProtocol::Http);
    assert_eq!(o.timeouts.read, None);
    assert_eq!(w.len(), 4, "{w:?}");
    assert!(w.iter().all(|w| w.starts_with("Ingress ns/web: annotation nginx.ingress.kubernetes.io/")), "{w:?}");
    assert!(w[0].contains("backend-protocol") && w[0].contains("\"FTP\""), "{w:?}");
}

#[test]
fn rewrite_replaces_the_whole_path_with_captures() {
    let i = ing(&[("nginx.ingress.kubernetes.io/rewrite-target", "/$2")]);
    let (o, _) = RouteOptions::of(&i, UnsupportedPolicy::Refuse);
    let r = o.rewrite_for(&i, "/something(/|$)(.*)").unwrap().unwrap();
    assert_eq!(r.apply("/something/new").as_deref(), Some("/new"));
    assert_eq!(r.apply("/something").as_deref(), Some("/"));
    assert_eq!(r.apply("/SOMETHING/x/y").as_deref(), Some("/x/y"));
    assert_eq!(r.apply("/other"), None);
    let i = ing(&[("ingress.kubernetes.io/rewrite-target", "/")]);
    let (o, _) = RouteOptions::of(&i, UnsupportedPolicy::Refuse);
    let r = o.rewrite_for(&i, "/audio").unwrap().unwrap();
    assert_eq!(r.apply("/audio").as_deref(), Some("/"));
    assert_eq!(r.apply("/audio/cb").as_deref(), Some("/"));
    assert!(o.rewrite_for(&i, "/bad(").is_err());
}

#[test]
fn basic_auth_annotations_are_read_together_and_fail_closed_when_incomplete() {
    use crate::snapshot::auth::{BasicSpec, SecretType};
    let key = |ns: &str, name: &str| ObjectKey { namespace: ns.into(), name: name.into() };
    let i = ing(&[
        ("nginx.ingress.kubernetes.io/auth-type", "basic"),
        ("nginx.ingress.kubernetes.io/auth-secret", "other/users"),
        ("ingress.kubernetes.io/auth-secret-type", "auth-map"),
        ("nginx.ingress.kubernetes.io/auth-realm", "  Who are you? "),
    ]);
    let o = without_warnings(&i);
    let spec =
        BasicSpec { secret: key("other", "users"), secret_type: SecretType::Map, realm: "  Who are you? ".into() };
    assert_eq!(o.basic_auth, Some(spec));
    assert_eq!(auth_secret(&i), Some(key("other", "users")));
    let i = ing(&[
        ("nginx.ingress.kubernetes.io/auth-type", "basic"),
        ("nginx.ingress.kubernetes.io/auth-secret", "users"),
    ]);
    let (o, _) = RouteOptions::of(&i, UnsupportedPolicy::Refuse);
    assert_eq!(o.basic_auth.map(|s| (s.secret, s.secret_type)), Some((key("ns", "users"), SecretType::File)));
    // Whatever the policy, basic auth that cannot be set up refuses the routes.
    for (bad, why) in [
        (vec![("nginx.ingress.kubernetes.io/auth-type", "basic")], "no auth-secret"),
        (
            vec![("nginx.ingress.kubernetes.io/auth-type", "digest"), ("nginx.ingress.kubernetes.io/auth-secret", "u")],
            "digest",
        ),
        (
            vec![
                ("nginx.ingress.kubernetes.io/auth-type", "basic"),
                ("nginx.ingress.kubernetes.io/auth-secret", "a/b/c"),
            ],
            "\"a/b/c\"",
        ),
        (
            vec![
                ("nginx.ingress.kubernetes.io/auth-type", "basic"),
                ("nginx.ingress.kubernetes.io/auth-secret", "u"),
                ("nginx.ingress.kubernetes.io/auth-secret-type", "ldap"),
            ],
            "auth-file or auth-map",
        ),
    ] {
        let (o, w) = RouteOptions::of(&ing(&bad), UnsupportedPolicy::Warn);
        let refused = o.access.refused.expect("refused");
        assert!(refused.contains(why) && w[0].contains("answer 503"), "{refused} / {w:?}");
    }
    // Without auth-type, the other keys do nothing (as in ingress-nginx): a warning.
    let (o, w) = RouteOptions::of(&ing(&[("nginx.ingress.kubernetes.io/auth-secret", "u")]), UnsupportedPolicy::Refuse);
    assert!(o.access.refused.is_none() && o.basic_auth.is_none() && w[0].contains("no effect without auth-type"));
}

#[test]
fn literal_prefixes_of_regex_paths() {
    assert_eq!(literal_prefix("/something(/|$)(.*)"), "/something");
    assert_eq!(literal_prefix("/api/v[12]/x"), "/api");
    assert_eq!(literal_prefix("/audio"), "/audio");
    assert_eq!(literal_prefix("/.*"), "/");
    assert_eq!(literal_prefix("/feed.FeedBack"), "/");
    assert_eq!(literal_prefix("/some(thing)?"), "/");
}

#[test]
fn address_lists_parse_and_anything_protective_that_is_not_enforced_refuses() {
    let (o, w) = RouteOptions::of(
        &ing(&[
            ("ingress.kubernetes.io/whitelist-source-range", "192.0.2.0/24"),
            ("nginx.ingress.kubernetes.io/allowlist-source-range", "10.0.0.0/8, ::1"),
            ("nginx.ingress.kubernetes.io/denylist-source-range", "10.9.0.0/16"),
        ]),
        UnsupportedPolicy::Refuse,
    );
    assert!(w.is_empty() && o.access.refused.is_none(), "{w:?}");
    assert_eq!(o.access.allow.as_deref().map(<[Cidr]>::len), Some(2), "the newer name wins");
    assert!(o.access.deny.is_some());
    for bad in ["10.0.0.0/33", "", "10.0.0.1, nonsense"] {
        let (o, w) = RouteOptions::of(
            &ing(&[("nginx.ingress.kubernetes.io/whitelist-source-range", bad)]),
            UnsupportedPolicy::Warn,
        );
        let why = o.access.refused.expect("an unparsable list refuses, whatever the policy");
        assert!(why.contains("whitelist-source-range") && w[0].contains("answer 503"), "{why} {w:?}");
    }
    let auth = ing(&[
        ("nginx.ingress.kubernetes.io/auth-snippet", "proxy_set_header X-A b;"),
        ("ingress.kubernetes.io/modsecurity-snippet", "SecRuleEngine On"),
    ]);
    let (o, w) = RouteOptions::of(&auth, UnsupportedPolicy::Refuse);
    let why = o.access.refused.expect("refused");
    assert!(why.contains("auth-snippet") && why.contains("modsecurity-snippet"), "{why}");
    assert_eq!(w.len(), 2);
    let (o, w) = RouteOptions::of(&auth, UnsupportedPolicy::Warn);
    assert!(o.access.refused.is_none() && w.iter().all(|w| w.contains("served WITHOUT")), "{w:?}");
}
