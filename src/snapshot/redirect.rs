//! Redirect annotations, read into what the pipeline and the route table need:
//! `permanent-redirect` (+ `-code`), `temporal-redirect` (+ `-code`), `app-root`,
//! `preserve-trailing-slash`, `from-to-www-redirect` and `server-alias`, as ingress-nginx
//! reads them (`internal/ingress/annotations/redirect`, `rewrite`, `alias`).

/// The annotation keys (without prefix) read here.
pub const KEYS: &[&str] = &[
    "permanent-redirect",
    "permanent-redirect-code",
    "temporal-redirect",
    "temporal-redirect-code",
    "app-root",
    "preserve-trailing-slash",
    "from-to-www-redirect",
    "server-alias",
];

/// What an Ingress's redirect annotations ask of its routes and hosts.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Redirects {
    /// `temporal-redirect` (which wins, as in ingress-nginx) or `permanent-redirect`: every
    /// request of the Ingress's routes is answered with this status and Location.
    pub to: Option<(u16, String)>,
    /// `app-root`: a request for exactly `/` is sent here (302).
    pub app_root: Option<String>,
    /// `preserve-trailing-slash`: the HTTPS redirect keeps a trailing `/` (ingress-nginx drops it).
    pub preserve_trailing_slash: bool,
    /// `from-to-www-redirect`: the `www.` counterpart of each rule's host redirects to it.
    pub from_to_www: bool,
    /// `server-alias`: more names for the hosts of the Ingress's rules (`*.` wildcards match
    /// any number of labels, as nginx's `server_name` does).
    pub aliases: Vec<String>,
}

/// The characters ingress-nginx allows in a redirect URL (`URLIsValidRegex`), so no nginx
/// variable, space or control character.
fn url_chars(v: &str) -> bool {
    v.bytes().all(|b| b.is_ascii_alphanumeric() || b"-._~/:,?&=".contains(&b))
}

/// An absolute http(s) URL with a host.
fn valid_url(v: &str) -> bool {
    let rest = v.strip_prefix("https://").or_else(|| v.strip_prefix("http://"));
    url_chars(v) && rest.is_some_and(|r| !r.is_empty() && !r.starts_with('/'))
}

/// A host name, or `*.` and a host name (an alias of `server-alias`).
fn valid_alias(v: &str) -> bool {
    let name = v.strip_prefix("*.").unwrap_or(v);
    !name.is_empty()
        && name.len() <= 253
        && name
            .split('.')
            .all(|l| !l.is_empty() && l.len() <= 63 && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-'))
}

/// What [`read`] found: the settings (None when no key is set) and a message for each value
/// not used, by annotation.
pub struct Read {
    pub redirects: Option<Redirects>,
    pub bad: Vec<(String, String)>,
}

/// Reads the keys of [`KEYS`] through `get` (key -> (annotation, value)).
pub fn read<'a>(get: impl Fn(&str) -> Option<(&'a str, &'a str)>) -> Read {
    let mut bad: Vec<(String, String)> = Vec::new();
    if !KEYS.iter().any(|k| get(k).is_some()) {
        return Read { redirects: None, bad };
    }
    let mut r = Redirects::default();
    let flag = |key: &str, bad: &mut Vec<(String, String)>| match get(key) {
        None => false,
        Some((full, v)) => super::annotations::parse_bool(v.trim()).unwrap_or_else(|| {
            bad.push((full.to_string(), format!("annotation {full}: {v:?} is not true or false")));
            false
        }),
    };
    r.preserve_trailing_slash = flag("preserve-trailing-slash", &mut bad);
    r.from_to_www = flag("from-to-www-redirect", &mut bad);
    // The status of a redirect: `codes` allowed, else the default with a warning.
    let code = |key: &str, codes: std::ops::RangeInclusive<u16>, default: u16, bad: &mut Vec<(String, String)>| {
        let Some((full, v)) = get(key) else { return default };
        match v.trim().parse::<u16>() {
            Ok(c) if codes.contains(&c) => c,
            _ => {
                bad.push((
                    full.to_string(),
                    format!(
                        "annotation {full}: {v:?} is not a redirect status from {} to {}; {default} is used",
                        codes.start(),
                        codes.end()
                    ),
                ));
                default
            }
        }
    };
    for (key, code_key, codes, default) in [
        ("temporal-redirect", "temporal-redirect-code", 300..=307, 302),
        ("permanent-redirect", "permanent-redirect-code", 300..=308, 301),
    ] {
        let Some((full, v)) = get(key) else { continue };
        let v = v.trim();
        if v.is_empty() {
            continue;
        }
        if !valid_url(v) {
            bad.push((
                full.to_string(),
                format!("annotation {full}: {v:?} is not an http or https URL of the characters ingress-nginx allows (no variables)"),
            ));
            continue;
        }
        if r.to.is_none() {
            r.to = Some((code(code_key, codes, default, &mut bad), v.to_string()));
        }
    }
    if let Some((full, v)) = get("app-root") {
        let v = v.trim();
        if v.starts_with('/') && !v.starts_with("//") && url_chars(v) {
            r.app_root = Some(v.to_string());
        } else if !v.is_empty() {
            bad.push((full.to_string(), format!("annotation {full}: {v:?} is not a path starting with /")));
        }
    }
    if let Some((full, v)) = get("server-alias") {
        for alias in v.split(',').map(|a| a.trim().to_ascii_lowercase()).filter(|a| !a.is_empty()) {
            if valid_alias(&alias) {
                r.aliases.push(alias);
            } else {
                bad.push((
                    full.to_string(),
                    format!("annotation {full}: {alias:?} is not a host name or *.name; that alias is left out"),
                ));
            }
        }
    }
    Read { redirects: Some(r), bad }
}

/// The Location of `path_and_query` over HTTPS when a trailing slash goes (ingress-nginx's
/// default: the last byte of the request URI, if it is `/`).
pub fn trim_slash(path_and_query: &[u8], preserve: bool) -> &[u8] {
    match path_and_query.split_last() {
        Some((b'/', rest)) if !preserve => rest,
        _ => path_and_query,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read_of(pairs: &[(&'static str, &'static str)]) -> Read {
        read(|k| pairs.iter().find(|(key, _)| *key == k).map(|&(k, v)| (k, v)))
    }

    #[test]
    fn temporal_wins_and_codes_fall_back_as_ingress_nginx_does() {
        let r = read_of(&[
            ("permanent-redirect", "https://a.example/x"),
            ("temporal-redirect", "http://b.example/?q=1&r=2"),
        ]);
        assert_eq!(r.redirects.unwrap().to, Some((302, "http://b.example/?q=1&r=2".into())));
        let r = read_of(&[("permanent-redirect", "https://a.example"), ("permanent-redirect-code", "308")]);
        assert_eq!(r.redirects.unwrap().to, Some((308, "https://a.example".into())));
        let r = read_of(&[("temporal-redirect", "https://a.example"), ("temporal-redirect-code", "308")]);
        assert_eq!(r.redirects.as_ref().unwrap().to, Some((302, "https://a.example".into())), "308 is not temporal");
        assert!(r.bad[0].1.contains("from 300 to 307"), "{:?}", r.bad);
    }

    #[test]
    fn urls_with_variables_or_odd_characters_are_refused() {
        for v in [
            "https://a.example$request_uri",
            "ftp://a.example",
            "https://",
            "https:///x",
            "/relative",
            "https://a b",
            "https://a\r\nX: y",
        ] {
            let r = read_of(&[("permanent-redirect", v)]);
            assert_eq!(r.redirects.unwrap().to, None, "{v}");
            assert_eq!(r.bad.len(), 1, "{v}");
        }
    }

    #[test]
    fn app_root_aliases_and_flags() {
        let r = read_of(&[
            ("app-root", "/app1"),
            ("server-alias", "Alias.example, *.other.example, bad_alias, "),
            ("from-to-www-redirect", "true"),
            ("preserve-trailing-slash", "yes"),
        ]);
        let d = r.redirects.unwrap();
        assert_eq!(d.app_root.as_deref(), Some("/app1"));
        assert_eq!(d.aliases, ["alias.example", "*.other.example"]);
        assert!(d.from_to_www && !d.preserve_trailing_slash);
        assert_eq!(r.bad.len(), 2, "{:?}", r.bad);
        assert!(read_of(&[("app-root", "//evil.example")]).redirects.unwrap().app_root.is_none());
        assert!(read_of(&[]).redirects.is_none());
    }

    #[test]
    fn trailing_slashes() {
        assert_eq!(trim_slash(b"/docs/", false), b"/docs");
        assert_eq!(trim_slash(b"/docs/", true), b"/docs/");
        assert_eq!(trim_slash(b"/", false), b"");
        assert_eq!(trim_slash(b"/a?b=/", false), b"/a?b=", "the last byte of the URI, as ingress-nginx does");
    }
}
