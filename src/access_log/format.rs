//! What one access-log line says: the `log-format-upstream` template (nginx-like `$variable`
//! syntax), its text rendering with nginx's escaping, the JSON rendering, and the per-second
//! time cache the workers share with nothing.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::Record;

/// One variable of a template, named as nginx and ingress-nginx name it where they have one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Var {
    RemoteAddr,
    TimeLocal,
    TimeIso8601,
    Msec,
    Request,
    RequestMethod,
    RequestUri,
    ServerProtocol,
    Host,
    Status,
    RequestLength,
    BytesSent,
    RequestTime,
    UpstreamAddr,
    UpstreamStatus,
    UpstreamResponseTime,
    Namespace,
    IngressName,
    Ingress,
    Service,
    HttpUserAgent,
    HttpReferer,
    ReqId,
}

/// Every variable by name, in the README's order.
pub const VARIABLES: &[(&str, Var)] = &[
    ("remote_addr", Var::RemoteAddr),
    ("time_local", Var::TimeLocal),
    ("time_iso8601", Var::TimeIso8601),
    ("msec", Var::Msec),
    ("request", Var::Request),
    ("request_method", Var::RequestMethod),
    ("request_uri", Var::RequestUri),
    ("server_protocol", Var::ServerProtocol),
    ("host", Var::Host),
    ("status", Var::Status),
    ("request_length", Var::RequestLength),
    ("bytes_sent", Var::BytesSent),
    ("request_time", Var::RequestTime),
    ("upstream_addr", Var::UpstreamAddr),
    ("upstream_status", Var::UpstreamStatus),
    ("upstream_response_time", Var::UpstreamResponseTime),
    ("namespace", Var::Namespace),
    ("ingress_name", Var::IngressName),
    ("ingress", Var::Ingress),
    ("service", Var::Service),
    ("http_user_agent", Var::HttpUserAgent),
    ("http_referer", Var::HttpReferer),
    ("req_id", Var::ReqId),
];

/// The default text line, after ingress-nginx's `log-format-upstream`.
pub const DEFAULT_TEMPLATE: &str = "$remote_addr - - [$time_local] \"$request\" $status $bytes_sent \"$http_referer\" \
     \"$http_user_agent\" $request_length $request_time [$ingress] [$service] $upstream_addr \
     $upstream_response_time $upstream_status $req_id";

#[derive(Clone, Debug)]
enum Piece {
    Lit(Box<[u8]>),
    Var(Var),
}

/// A compiled `log-format-upstream`. Two templates are equal when their sources are.
#[derive(Clone, Debug)]
pub struct Template {
    source: String,
    pieces: Vec<Piece>,
}

impl PartialEq for Template {
    fn eq(&self, other: &Self) -> bool {
        self.source == other.source
    }
}

impl Default for Template {
    fn default() -> Self {
        Template::parse(DEFAULT_TEMPLATE).expect("the default template parses")
    }
}

impl Template {
    /// `$name` or `${name}`; any other text is literal. An unknown name is an error naming it.
    pub fn parse(source: &str) -> Result<Template, String> {
        let mut pieces = Vec::new();
        let mut lit = Vec::new();
        let b = source.as_bytes();
        let mut i = 0;
        while i < b.len() {
            // The text up to the next `$` is literal.
            let at = source[i..].find('$').map_or(b.len(), |at| at + i);
            lit.extend_from_slice(&b[i..at]);
            i = at;
            if i == b.len() {
                break;
            }
            let (name, next) = if b.get(i + 1) == Some(&b'{') {
                let end = source[i + 2..].find('}').ok_or_else(|| format!("unclosed ${{ at byte {i}"))? + i + 2;
                (&source[i + 2..end], end + 1)
            } else {
                let len = b[i + 1..].iter().take_while(|c| c.is_ascii_alphanumeric() || **c == b'_').count();
                (&source[i + 1..i + 1 + len], i + 1 + len)
            };
            if name.is_empty() {
                return Err(format!("a $ without a variable name at byte {i}"));
            }
            let var = VARIABLES
                .iter()
                .find(|(n, _)| *n == name)
                .map(|(_, v)| *v)
                .ok_or_else(|| format!("unknown variable ${name}"))?;
            if !lit.is_empty() {
                pieces.push(Piece::Lit(std::mem::take(&mut lit).into_boxed_slice()));
            }
            pieces.push(Piece::Var(var));
            i = next;
        }
        if !lit.is_empty() {
            pieces.push(Piece::Lit(lit.into_boxed_slice()));
        }
        Ok(Template { source: source.to_string(), pieces })
    }

    pub fn source(&self) -> &str {
        &self.source
    }
}

/// The wall-clock time of a line, formatted once per second per worker.
#[derive(Debug)]
pub struct TimeCache {
    sec: u64,
    millis: u32,
    /// `28/Nov/2026:10:10:41 +0000`
    local: [u8; 26],
    /// `2026-11-28T10:10:41`
    iso: [u8; 19],
}

impl Default for TimeCache {
    fn default() -> Self {
        let mut t = TimeCache { sec: u64::MAX, millis: 0, local: [b' '; 26], iso: [b' '; 19] };
        t.set(SystemTime::now());
        t
    }
}

const MONTHS: [&[u8; 3]; 12] =
    [b"Jan", b"Feb", b"Mar", b"Apr", b"May", b"Jun", b"Jul", b"Aug", b"Sep", b"Oct", b"Nov", b"Dec"];

impl TimeCache {
    pub fn set(&mut self, now: SystemTime) {
        let d = now.duration_since(UNIX_EPOCH).unwrap_or_default();
        self.millis = d.subsec_millis();
        if d.as_secs() == self.sec {
            return;
        }
        self.sec = d.as_secs();
        let (y, mo, day, h, mi, s) = civil(self.sec);
        let two = |v: u32| [b'0' + (v / 10) as u8, b'0' + (v % 10) as u8];
        let year = [
            b'0' + (y / 1000 % 10) as u8,
            b'0' + (y / 100 % 10) as u8,
            b'0' + (y / 10 % 10) as u8,
            b'0' + (y % 10) as u8,
        ];
        let mut l = Vec::with_capacity(26);
        l.extend_from_slice(&two(day));
        l.push(b'/');
        l.extend_from_slice(MONTHS[(mo - 1) as usize]);
        l.push(b'/');
        l.extend_from_slice(&year);
        for (sep, v) in [(b':', h), (b':', mi), (b':', s)] {
            l.push(sep);
            l.extend_from_slice(&two(v));
        }
        l.extend_from_slice(b" +0000");
        self.local.copy_from_slice(&l);
        let mut i = Vec::with_capacity(19);
        i.extend_from_slice(&year);
        for (sep, v) in [(b'-', mo), (b'-', day), (b'T', h), (b':', mi), (b':', s)] {
            i.push(sep);
            i.extend_from_slice(&two(v));
        }
        self.iso.copy_from_slice(&i);
    }
}

/// UTC calendar fields of a Unix time: (year, month 1-12, day, hour, minute, second). Days to
/// a civil date by the era arithmetic of the proleptic Gregorian calendar (400-year eras of
/// 146,097 days, years starting in March so the leap day comes last).
pub fn civil(secs: u64) -> (u32, u32, u32, u32, u32, u32) {
    let days = (secs / 86_400) as i64;
    let rem = (secs % 86_400) as u32;
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = (yoe + era * 400 + i64::from(month <= 2)) as u32;
    (year, month, day, rem / 3600, rem / 60 % 60, rem % 60)
}

pub(crate) fn push_u64(out: &mut Vec<u8>, mut n: u64) {
    let mut tmp = [0u8; 20];
    let mut i = tmp.len();
    loop {
        i -= 1;
        tmp[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    out.extend_from_slice(&tmp[i..]);
}

/// Seconds with millisecond precision, as nginx prints `$request_time`.
fn push_secs(out: &mut Vec<u8>, d: Duration) {
    let ms = d.as_millis() as u64;
    push_u64(out, ms / 1000);
    let frac = (ms % 1000) as u32;
    out.extend_from_slice(&[b'.', b'0' + (frac / 100) as u8, b'0' + (frac / 10 % 10) as u8, b'0' + (frac % 10) as u8]);
}

/// nginx's escaping for text logs: `"`, `\`, control bytes and bytes above 0x7e as `\xHH`.
fn push_escaped(out: &mut Vec<u8>, v: &[u8]) {
    if v.is_empty() {
        out.push(b'-');
        return;
    }
    for &c in v {
        if !(0x20..=0x7e).contains(&c) || c == b'"' || c == b'\\' {
            const HEX: &[u8; 16] = b"0123456789ABCDEF";
            out.extend_from_slice(&[b'\\', b'x', HEX[(c >> 4) as usize], HEX[(c & 15) as usize]]);
        } else {
            out.push(c);
        }
    }
}

/// A JSON string; bytes that are not UTF-8 become U+FFFD.
fn push_json_str(out: &mut Vec<u8>, v: &[u8]) {
    out.push(b'"');
    let s = String::from_utf8_lossy(v);
    for ch in s.chars() {
        match ch {
            '"' => out.extend_from_slice(b"\\\""),
            '\\' => out.extend_from_slice(b"\\\\"),
            c if (c as u32) < 0x20 || c == '\u{7f}' => {
                const HEX: &[u8; 16] = b"0123456789abcdef";
                let n = c as u32;
                out.extend_from_slice(&[b'\\', b'u', b'0', b'0', HEX[(n >> 4) as usize], HEX[(n & 15) as usize]]);
            }
            c => {
                let mut b = [0u8; 4];
                out.extend_from_slice(c.encode_utf8(&mut b).as_bytes());
            }
        }
    }
    out.push(b'"');
}

/// The pieces of a line that are not plain bytes of the record.
pub struct Line<'a> {
    pub rec: &'a Record,
    pub time: &'a TimeCache,
    /// From the request's first byte to the end of its response.
    pub duration: Duration,
}

impl Line<'_> {
    /// The status written: a request that got no response at all is 499, as nginx logs a
    /// client that closed first.
    fn status(&self) -> u64 {
        if self.rec.status == 0 {
            499
        } else {
            u64::from(self.rec.status)
        }
    }

    fn upstream_addr(&self, out: &mut Vec<u8>) -> bool {
        match self.rec.upstream {
            Some(a) => {
                use std::io::Write;
                let _ = write!(out, "{a}");
                true
            }
            None => false,
        }
    }

    fn msec(&self, out: &mut Vec<u8>) {
        push_u64(out, self.time.sec);
        let m = self.time.millis;
        out.extend_from_slice(&[b'.', b'0' + (m / 100) as u8, b'0' + (m / 10 % 10) as u8, b'0' + (m % 10) as u8]);
    }

    fn text_var(&self, out: &mut Vec<u8>, v: Var) {
        let r = self.rec;
        match v {
            Var::RemoteAddr => push_escaped(out, &r.client),
            Var::TimeLocal => out.extend_from_slice(&self.time.local),
            Var::TimeIso8601 => {
                out.extend_from_slice(&self.time.iso);
                out.extend_from_slice(b"+00:00");
            }
            Var::Msec => self.msec(out),
            Var::Request => {
                push_escaped(out, &r.method);
                out.push(b' ');
                push_escaped(out, &r.uri);
                out.push(b' ');
                out.extend_from_slice(r.protocol.as_bytes());
            }
            Var::RequestMethod => push_escaped(out, &r.method),
            Var::RequestUri => push_escaped(out, &r.uri),
            Var::ServerProtocol => push_escaped(out, r.protocol.as_bytes()),
            Var::Host => push_escaped(out, &r.host),
            Var::Status => push_u64(out, self.status()),
            Var::RequestLength => push_u64(out, r.bytes_in),
            Var::BytesSent => push_u64(out, r.bytes_out),
            Var::RequestTime => push_secs(out, self.duration),
            Var::UpstreamAddr => {
                if !self.upstream_addr(out) {
                    out.push(b'-');
                }
            }
            Var::UpstreamStatus => match r.upstream_status {
                0 => out.push(b'-'),
                s => push_u64(out, u64::from(s)),
            },
            Var::UpstreamResponseTime => match r.upstream_time {
                Some(d) => push_secs(out, d),
                None => out.push(b'-'),
            },
            Var::Namespace => push_escaped(out, r.key.ingress().split('/').next().unwrap_or("").as_bytes()),
            Var::IngressName => push_escaped(out, r.key.ingress().split_once('/').map_or("", |x| x.1).as_bytes()),
            Var::Ingress => push_escaped(out, r.key.ingress().as_bytes()),
            Var::Service => push_escaped(out, r.key.service().as_bytes()),
            Var::HttpUserAgent => push_escaped(out, &r.user_agent),
            Var::HttpReferer => push_escaped(out, &r.referer),
            Var::ReqId => push_escaped(out, &r.request_id),
        }
    }

    /// One text line (with its newline) by `t`.
    pub fn text(&self, t: &Template, out: &mut Vec<u8>) {
        for p in &t.pieces {
            match p {
                Piece::Lit(b) => out.extend_from_slice(b),
                Piece::Var(v) => self.text_var(out, *v),
            }
        }
        out.push(b'\n');
    }

    /// One JSON object (with its newline); absent values are `null`.
    pub fn json(&self, out: &mut Vec<u8>) {
        let r = self.rec;
        let key = |out: &mut Vec<u8>, k: &str| {
            out.extend_from_slice(b",\"");
            out.extend_from_slice(k.as_bytes());
            out.extend_from_slice(b"\":");
        };
        let opt_str = |out: &mut Vec<u8>, v: &[u8]| {
            if v.is_empty() {
                out.extend_from_slice(b"null");
            } else {
                push_json_str(out, v);
            }
        };
        out.extend_from_slice(b"{\"time\":\"");
        out.extend_from_slice(&self.time.iso);
        let m = self.time.millis;
        out.extend_from_slice(&[b'.', b'0' + (m / 100) as u8, b'0' + (m / 10 % 10) as u8, b'0' + (m % 10) as u8]);
        out.extend_from_slice(b"Z\"");
        for (k, v) in [("remote_addr", &r.client), ("host", &r.host), ("method", &r.method), ("uri", &r.uri)] {
            key(out, k);
            opt_str(out, v);
        }
        key(out, "protocol");
        push_json_str(out, r.protocol.as_bytes());
        key(out, "status");
        push_u64(out, self.status());
        key(out, "bytes_in");
        push_u64(out, r.bytes_in);
        key(out, "bytes_out");
        push_u64(out, r.bytes_out);
        key(out, "request_time");
        push_secs(out, self.duration);
        key(out, "upstream_addr");
        let mut a = Vec::new();
        if self.upstream_addr(&mut a) {
            push_json_str(out, &a);
        } else {
            out.extend_from_slice(b"null");
        }
        key(out, "upstream_status");
        match r.upstream_status {
            0 => out.extend_from_slice(b"null"),
            s => push_u64(out, u64::from(s)),
        }
        key(out, "upstream_response_time");
        match r.upstream_time {
            Some(d) => push_secs(out, d),
            None => out.extend_from_slice(b"null"),
        }
        key(out, "ingress");
        opt_str(out, r.key.ingress().as_bytes());
        key(out, "service");
        opt_str(out, r.key.service().as_bytes());
        key(out, "user_agent");
        opt_str(out, &r.user_agent);
        key(out, "referer");
        opt_str(out, &r.referer);
        key(out, "request_id");
        opt_str(out, &r.request_id);
        out.extend_from_slice(b"}\n");
    }
}
