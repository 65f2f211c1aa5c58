//! The TLS of the HTTPS listener as the ConfigMap asks for it (`ssl-protocols`, `ssl-ciphers`,
//! `ssl-ecdh-curve`, `ssl-session-tickets`, `ssl-session-timeout`), as plain data: the names
//! are checked here against what ringress's TLS (rustls on aws-lc-rs) offers, and
//! [`crate::tls`] turns them into server configurations.

use std::time::Duration;

/// The TLS 1.2 cipher suites ringress offers, by their OpenSSL names (what `ssl-ciphers`
/// lists), in ringress's default order. TLS 1.3 suites are not chosen by `ssl-ciphers`, as
/// with nginx: all three are always offered.
pub const TLS12_SUITES: &[&str] = &[
    "ECDHE-ECDSA-AES128-GCM-SHA256",
    "ECDHE-RSA-AES128-GCM-SHA256",
    "ECDHE-ECDSA-CHACHA20-POLY1305",
    "ECDHE-RSA-CHACHA20-POLY1305",
    "ECDHE-ECDSA-AES256-GCM-SHA384",
    "ECDHE-RSA-AES256-GCM-SHA384",
];

/// Key exchange groups by the names OpenSSL accepts for them, with the name ringress uses.
const GROUPS: &[(&str, &str)] = &[
    ("X25519MLKEM768", "X25519MLKEM768"),
    ("X25519", "X25519"),
    ("prime256v1", "P-256"),
    ("secp256r1", "P-256"),
    ("P-256", "P-256"),
    ("secp384r1", "P-384"),
    ("P-384", "P-384"),
];

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ListenerTls {
    /// `ssl-protocols`: whether TLS 1.2 and TLS 1.3 are offered (at least one is).
    pub protocols: (bool, bool),
    /// `ssl-ciphers`: the TLS 1.2 suites offered, in the server's order of preference
    /// (names of [`TLS12_SUITES`]); `None`: all of them, in that order.
    pub ciphers: Option<Vec<&'static str>>,
    /// `ssl-ecdh-curve`: the key exchange groups offered, in order (`P-256`, `X25519`...);
    /// `None` (`auto`): the crypto provider's list, post-quantum hybrid first.
    pub groups: Option<Vec<&'static str>>,
    /// `ssl-session-tickets`: resumption by tickets (otherwise by the server's session cache).
    pub tickets: bool,
    /// `ssl-session-timeout`: how long a session may be resumed, by ticket or cache.
    pub session_timeout: Duration,
}

impl Default for ListenerTls {
    fn default() -> Self {
        ListenerTls {
            protocols: (true, true),
            ciphers: None,
            groups: None,
            tickets: true,
            session_timeout: Duration::from_secs(600),
        }
    }
}

/// `ssl-protocols`: space-separated `TLSv1.2`, `TLSv1.3`. Older protocols are not offered by
/// ringress, so a list naming one does not parse.
pub fn parse_protocols(v: &str) -> Option<(bool, bool)> {
    let (mut tls12, mut tls13) = (false, false);
    for p in v.split([' ', ',']).filter(|p| !p.is_empty()) {
        match p {
            "TLSv1.2" => tls12 = true,
            "TLSv1.3" => tls13 = true,
            _ => return None,
        }
    }
    (tls12 || tls13).then_some((tls12, tls13))
}

/// `ssl-ciphers`: an OpenSSL cipher list. The TLS 1.2 suites ringress offers are kept in the
/// list's order; every other entry (suites ringress does not offer, such as DHE and CBC ones,
/// and OpenSSL's `!`/`-`/`+` and keyword entries) is skipped, as those are already left out.
/// A list naming none of ringress's suites does not parse.
pub fn parse_ciphers(v: &str) -> Option<Option<Vec<&'static str>>> {
    let mut kept: Vec<&'static str> = Vec::new();
    for entry in v.split([':', ',', ' ']).filter(|e| !e.is_empty()) {
        if let Some(s) = TLS12_SUITES.iter().find(|s| **s == entry) {
            if !kept.contains(s) {
                kept.push(s);
            }
        }
    }
    (!kept.is_empty()).then_some(Some(kept))
}

/// `ssl-ecdh-curve`: `auto`, or a colon-separated list of groups (OpenSSL's names:
/// `X25519`, `prime256v1`, `secp384r1`, `X25519MLKEM768`). Groups ringress does not offer
/// (`secp521r1`, `X448`) are skipped; a list with none it offers does not parse.
pub fn parse_groups(v: &str) -> Option<Option<Vec<&'static str>>> {
    if v == "auto" {
        return Some(None);
    }
    let mut kept: Vec<&'static str> = Vec::new();
    for entry in v.split([':', ',', ' ']).filter(|e| !e.is_empty()) {
        if let Some((_, g)) = GROUPS.iter().find(|(n, _)| n.eq_ignore_ascii_case(entry)) {
            if !kept.contains(g) {
                kept.push(g);
            }
        }
    }
    (!kept.is_empty()).then_some(Some(kept))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn protocols_ciphers_and_groups_parse_as_nginx_lists() {
        assert_eq!(parse_protocols("TLSv1.2 TLSv1.3"), Some((true, true)));
        assert_eq!(parse_protocols("TLSv1.3"), Some((false, true)));
        assert_eq!(parse_protocols("TLSv1.1 TLSv1.2"), None);
        assert_eq!(parse_protocols("SSLv2"), None);
        assert_eq!(parse_protocols(""), None);
        // ingress-nginx's default list: the DHE suites are skipped, order kept.
        let default = "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305:DHE-RSA-AES128-GCM-SHA256:DHE-RSA-AES256-GCM-SHA384";
        let kept = parse_ciphers(default).unwrap().unwrap();
        assert_eq!(kept.len(), 6);
        assert_eq!(kept[2], "ECDHE-ECDSA-AES256-GCM-SHA384");
        assert_eq!(parse_ciphers("HIGH:!aNULL:!MD5"), None);
        assert_eq!(
            parse_ciphers("ECDHE-RSA-AES256-GCM-SHA384:!aNULL"),
            Some(Some(vec!["ECDHE-RSA-AES256-GCM-SHA384"]))
        );
        assert_eq!(parse_groups("auto"), Some(None));
        assert_eq!(parse_groups("secp384r1:prime256v1:secp521r1"), Some(Some(vec!["P-384", "P-256"])));
        assert_eq!(parse_groups("X448"), None);
    }
}
