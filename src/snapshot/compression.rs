//! Response compression as the ConfigMap asks for it (`use-gzip`, `gzip-level`,
//! `gzip-min-length`, `gzip-types`, `gzip-disable`, `enable-brotli`, `brotli-level`,
//! `brotli-min-length`, `brotli-types`), and the rules nginx's gzip and brotli filters apply
//! to choose which responses are compressed. The proxy's `compress` module does the
//! compressing.

use std::sync::Arc;

/// ingress-nginx's default `gzip-types` (text/html is always compressed besides).
const GZIP_TYPES: &str = "application/atom+xml application/javascript application/x-javascript application/json application/rss+xml application/vnd.ms-fontobject application/x-font-ttf application/x-web-app-manifest+json application/xhtml+xml application/xml font/opentype image/svg+xml image/x-icon text/css text/plain text/x-component";

/// ingress-nginx's default `brotli-types`.
const BROTLI_TYPES: &str = "application/xml+rss application/atom+xml application/javascript application/x-javascript application/json application/rss+xml application/vnd.ms-fontobject application/x-font-ttf application/x-web-app-manifest+json application/xhtml+xml application/xml font/opentype image/svg+xml image/x-icon text/css text/plain text/x-component";

/// A content coding ringress compresses with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Coding {
    Gzip,
    Brotli,
}

impl Coding {
    /// The Content-Encoding token.
    pub fn token(self) -> &'static str {
        match self {
            Coding::Gzip => "gzip",
            Coding::Brotli => "br",
        }
    }
}

/// Media types, as `gzip-types` lists them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Types {
    /// `*`: every type.
    pub any: bool,
    /// Lowercase `type/subtype`, without parameters.
    pub list: Arc<[String]>,
}

impl Types {
    /// A space-separated list of media types, or `*`. None: a word that is not `type/subtype`.
    pub fn parse(v: &str) -> Option<Types> {
        let mut list = Vec::new();
        let mut any = false;
        for t in v.split([' ', ',', '\t']).filter(|t| !t.is_empty()) {
            if t == "*" {
                any = true;
                continue;
            }
            let (a, b) = t.split_once('/')?;
            let token =
                |s: &str| !s.is_empty() && s.bytes().all(|c| c.is_ascii_alphanumeric() || b"!#$&-^_.+*".contains(&c));
            if !token(a) || !token(b) {
                return None;
            }
            list.push(t.to_ascii_lowercase());
        }
        (any || !list.is_empty()).then(|| Types { any, list: list.into() })
    }

    /// Whether a Content-Type value (parameters and case ignored) is one of these.
    pub fn contains(&self, content_type: &[u8]) -> bool {
        if self.any {
            return true;
        }
        let end = content_type.iter().position(|&b| b == b';').unwrap_or(content_type.len());
        let t = content_type[..end].trim_ascii();
        self.list.iter().any(|l| l.as_bytes().eq_ignore_ascii_case(t))
    }
}

/// `gzip-disable`: a case-insensitive regular expression on the User-Agent (`msie6` stands
/// for MSIE 4 to 6, as in nginx).
#[derive(Clone, Debug)]
pub struct AgentPattern(pub Arc<regex::bytes::Regex>);

impl PartialEq for AgentPattern {
    fn eq(&self, other: &Self) -> bool {
        self.0.as_str() == other.0.as_str()
    }
}

impl AgentPattern {
    pub fn parse(v: &str) -> Option<Option<AgentPattern>> {
        let v = v.trim();
        if v.is_empty() {
            return Some(None);
        }
        let source = if v == "msie6" { r"MSIE [4-6]\." } else { v };
        let re = regex::bytes::RegexBuilder::new(source).case_insensitive(true).size_limit(1 << 20).build().ok()?;
        Some(Some(AgentPattern(Arc::new(re))))
    }
}

/// The compression settings.
#[derive(Clone, Debug, PartialEq)]
pub struct Compression {
    /// `use-gzip` (default false).
    pub gzip: bool,
    /// `gzip-level`, 1 to 9 (default 1).
    pub gzip_level: u32,
    /// `gzip-min-length` (default 256): responses declaring a shorter Content-Length are sent
    /// as they are.
    pub gzip_min_length: u64,
    pub gzip_types: Types,
    pub gzip_disable: Option<AgentPattern>,
    /// `enable-brotli` (default false).
    pub brotli: bool,
    /// `brotli-level`, 0 to 11 (default 4).
    pub brotli_level: u32,
    /// `brotli-min-length` (default 20).
    pub brotli_min_length: u64,
    pub brotli_types: Types,
}

impl Default for Compression {
    fn default() -> Self {
        Compression {
            gzip: false,
            gzip_level: 1,
            gzip_min_length: 256,
            gzip_types: Types::parse(GZIP_TYPES).expect("the default list parses"),
            gzip_disable: None,
            brotli: false,
            brotli_level: 4,
            brotli_min_length: 20,
            brotli_types: Types::parse(BROTLI_TYPES).expect("the default list parses"),
        }
    }
}

/// The codings a request accepts (from its Accept-Encoding), as bits.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Accepts(u8);

impl Accepts {
    const GZIP: u8 = 1;
    const BROTLI: u8 = 2;

    pub fn none() -> Accepts {
        Accepts(0)
    }

    pub fn gzip(self) -> bool {
        self.0 & Self::GZIP != 0
    }

    pub fn brotli(self) -> bool {
        self.0 & Self::BROTLI != 0
    }
}

/// What compression does with one response.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Choice {
    /// The response could be compressed (its status, type and length allow): it varies by
    /// Accept-Encoding (`Vary: Accept-Encoding`, as ingress-nginx's `gzip_vary on`).
    pub vary: bool,
    /// Compressed, with this coding and level.
    pub coding: Option<(Coding, u32)>,
}

impl Compression {
    pub fn enabled(&self) -> bool {
        self.gzip || self.brotli
    }

    /// The codings a request accepts that are enabled: from its Accept-Encoding (a coding
    /// with `q=0` is refused, `*` stands for gzip) and, for gzip, its User-Agent
    /// (`gzip-disable`). HTTP/1.0 requests get none, as nginx's `gzip_http_version 1.1`.
    pub fn accepts(&self, accept_encoding: Option<&[u8]>, user_agent: Option<&[u8]>, http10: bool) -> Accepts {
        let Some(ae) = accept_encoding.filter(|_| self.enabled() && !http10) else { return Accepts(0) };
        let (mut gzip, mut br, mut star) = (None, None, None);
        for item in ae.split(|&b| b == b',') {
            let mut parts = item.split(|&b| b == b';');
            let coding = parts.next().unwrap_or_default().trim_ascii();
            let zero = parts.any(|p| {
                let p = p.trim_ascii();
                p.len() >= 2
                    && p[..2].eq_ignore_ascii_case(b"q=")
                    && p[2..].trim_ascii().iter().all(|&b| b == b'0' || b == b'.')
            });
            let accepted = Some(!zero);
            if coding.eq_ignore_ascii_case(b"gzip") || coding.eq_ignore_ascii_case(b"x-gzip") {
                gzip = accepted;
            } else if coding.eq_ignore_ascii_case(b"br") {
                br = accepted;
            } else if coding == b"*" {
                star = accepted;
            }
        }
        let gzip_ok = self.gzip
            && gzip.or(star).unwrap_or(false)
            && !self.gzip_disable.as_ref().is_some_and(|p| user_agent.is_some_and(|ua| p.0.is_match(ua)));
        let br_ok = self.brotli && br.unwrap_or(false);
        Accepts((u8::from(gzip_ok) * Accepts::GZIP) | (u8::from(br_ok) * Accepts::BROTLI))
    }

    /// Whether and how a response is compressed, as nginx's filters decide: only 200, 403
    /// and 404; not a HEAD; not already encoded; not `Cache-Control: no-transform` (RFC 9110
    /// §7.7); of a listed type; not declaring a length under the minimum. Brotli first when
    /// both apply. `field` looks up the response's fields by lowercase name.
    pub fn choose<'f>(
        &self,
        accepts: Accepts,
        (status, head): (u16, bool),
        length: Option<u64>,
        field: impl Fn(&str) -> Option<&'f [u8]>,
    ) -> Choice {
        let none = Choice { vary: false, coding: None };
        if !self.enabled() || !matches!(status, 200 | 403 | 404) || head {
            return none;
        }
        if field("content-encoding").is_some_and(|v| !v.trim_ascii().is_empty()) {
            return none;
        }
        if field("cache-control")
            .is_some_and(|v| v.split(|&b| b == b',').any(|d| d.trim_ascii().eq_ignore_ascii_case(b"no-transform")))
        {
            return none;
        }
        let Some(content_type) = field("content-type") else { return none };
        let html = || {
            let t = content_type.split(|&b| b == b';').next().unwrap_or_default().trim_ascii();
            t.eq_ignore_ascii_case(b"text/html")
        };
        let long = |min: u64| length.is_none_or(|n| n >= min);
        let br = self.brotli && self.brotli_types.contains(content_type) && long(self.brotli_min_length);
        let gz = self.gzip && (html() || self.gzip_types.contains(content_type)) && long(self.gzip_min_length);
        let coding = match () {
            _ if br && accepts.brotli() => Some((Coding::Brotli, self.brotli_level)),
            _ if gz && accepts.gzip() => Some((Coding::Gzip, self.gzip_level)),
            _ => None,
        };
        Choice { vary: br || gz, coding }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn on() -> Compression {
        Compression { gzip: true, brotli: true, ..Compression::default() }
    }

    #[test]
    fn accept_encoding_is_read_with_its_weights() {
        let c = on();
        let a = |v: &str| c.accepts(Some(v.as_bytes()), None, false);
        assert!(a("gzip, deflate, br").gzip() && a("gzip, deflate, br").brotli());
        assert!(!a("gzip;q=0, br").gzip() && a("gzip;q=0, br").brotli());
        assert!(a("*").gzip() && !a("*").brotli(), "* stands for gzip only");
        assert!(!a("*, gzip;q=0.0").gzip());
        assert!(a("GZIP;q=0.5").gzip());
        assert!(!a("identity").gzip());
        assert!(!c.accepts(Some(b"gzip"), None, true).gzip(), "HTTP/1.0");
        let off = Compression::default();
        assert_eq!(off.accepts(Some(b"gzip, br"), None, false), Accepts::none());
        let ie = Compression { gzip_disable: AgentPattern::parse("msie6").unwrap(), ..on() };
        assert!(!ie.accepts(Some(b"gzip"), Some(b"Mozilla/4.0 (compatible; MSIE 6.0)"), false).gzip());
        assert!(ie.accepts(Some(b"gzip"), Some(b"Mozilla/5.0 (compatible; MSIE 10.0)"), false).gzip());
    }

    #[test]
    fn responses_are_chosen_as_nginx_chooses_them() {
        let c = Compression { brotli: false, ..on() };
        let gz = c.accepts(Some(b"gzip"), None, false);
        let fields = |ct: &'static str, extra: Option<(&'static str, &'static str)>| {
            move |n: &str| match (n, extra) {
                ("content-type", _) => Some(ct.as_bytes()),
                (n, Some((k, v))) if n == k => Some(v.as_bytes()),
                _ => None,
            }
        };
        let pick = |status, length, f| c.choose(gz, (status, false), length, f);
        assert_eq!(pick(200, None, fields("text/html; charset=utf-8", None)).coding, Some((Coding::Gzip, 1)));
        assert_eq!(pick(200, Some(100), fields("text/plain", None)), Choice { vary: false, coding: None });
        assert!(pick(200, Some(300), fields("application/json", None)).coding.is_some());
        assert!(pick(200, None, fields("image/png", None)).coding.is_none());
        assert!(pick(201, None, fields("text/plain", None)).coding.is_none());
        assert!(pick(404, None, fields("text/plain", None)).coding.is_some());
        assert!(pick(200, None, fields("text/plain", Some(("content-encoding", "gzip")))).coding.is_none());
        assert!(pick(200, None, fields("text/plain", Some(("cache-control", "public, no-transform"))))
            .coding
            .is_none());
        assert!(c.choose(gz, (200, true), None, fields("text/plain", None)).coding.is_none(), "HEAD");
        // Not accepted: not compressed, but it varies.
        let plain = c.choose(Accepts::none(), (200, false), None, fields("text/plain", None));
        assert_eq!(plain, Choice { vary: true, coding: None });
        let both = on();
        let a = both.accepts(Some(b"gzip, br"), None, false);
        assert_eq!(both.choose(a, (200, false), None, fields("text/css", None)).coding, Some((Coding::Brotli, 4)));
        // text/html is not in brotli's default list: gzip.
        assert_eq!(both.choose(a, (200, false), None, fields("text/html", None)).coding, Some((Coding::Gzip, 1)));
        assert!(Types::parse("*").unwrap().contains(b"image/png"));
        assert!(Types::parse("text").is_none());
    }
}
