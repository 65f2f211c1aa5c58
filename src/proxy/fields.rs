//! The header fields the proxy treats specially, for every protocol on either side: the one
//! table of hop-by-hop, framing and proxy-written fields, what may travel in a trailer
//! section, and the one builder of the forwarded fields (X-Forwarded-*, X-Real-IP,
//! X-Request-ID). Names are compared without regard to case, so HTTP/1.1 names as they came
//! and HTTP/2's lower-case names go through the same functions.

/// Connection-specific fields (RFC 9110 §7.6.1, plus the legacy `Proxy-Connection`): they
/// describe one hop and never cross the proxy.
const HOP: u8 = 1;
/// `Content-Length`: the proxy writes the framing it parsed itself (Transfer-Encoding and
/// Trailer are in [`HOP`]).
const FRAMING: u8 = 2;
/// Fields the proxy writes itself on every request it sends: `Host` and the forwarded fields.
const FORWARDING: u8 = 4;
/// `Expect`: the proxy answers 100-continue itself.
const EXPECT: u8 = 8;
/// Fields that never travel in a trailer section because they route, describe the content or
/// authenticate (RFC 9110 §6.5.1).
const NOT_IN_TRAILERS: u8 = 16;

/// What a field name is to the proxy (a set of the flags above; 0: an ordinary end-to-end
/// field). Dispatches on the length first, so most names are compared with nothing.
fn class(name: &[u8]) -> u8 {
    let is = |s: &str| name.eq_ignore_ascii_case(s.as_bytes());
    match name.len() {
        2 if is("te") => HOP,
        4 if is("host") => FORWARDING,
        6 if is("cookie") => NOT_IN_TRAILERS,
        6 if is("expect") => EXPECT,
        7 if is("upgrade") || is("trailer") => HOP,
        9 if is("x-real-ip") => FORWARDING,
        10 if is("connection") || is("keep-alive") => HOP,
        12 if is("content-type") => NOT_IN_TRAILERS,
        13 if is("authorization") => NOT_IN_TRAILERS,
        14 if is("content-length") => FRAMING,
        15 if is("x-forwarded-for") => FORWARDING,
        16 if is("proxy-connection") => HOP,
        16 if is("x-forwarded-host") => FORWARDING,
        17 if is("transfer-encoding") => HOP,
        17 if is("x-forwarded-proto") => FORWARDING,
        24 if is("x-original-forwarded-for") => FORWARDING,
        _ => 0,
    }
}

/// Whether a request field is not copied upstream as it came: connection-specific, framing,
/// written by the proxy, `Expect`, or named by the request's `Connection` header.
pub(crate) fn request_drops(name: &[u8], connection: &[&[u8]]) -> bool {
    class(name) & (HOP | FRAMING | FORWARDING | EXPECT) != 0 || named(name, connection)
}

/// Whether a response field is not copied to the client as it came: connection-specific,
/// framing, or named by the response's `Connection` header.
pub(crate) fn response_drops(name: &[u8], connection: &[&[u8]]) -> bool {
    class(name) & (HOP | FRAMING) != 0 || named(name, connection)
}

/// Whether a field is connection-specific (RFC 9110 §7.6.1): what an HTTP/2 response relayed
/// from an HTTP/2 upstream drops (its length is checked by the HTTP/2 layer, so it stays).
pub(crate) fn is_hop_by_hop(name: &[u8]) -> bool {
    class(name) & HOP != 0
}

/// Whether a field may travel in a trailer section the proxy forwards: never one that frames,
/// routes, controls the connection, is written by the proxy or authenticates (RFC 9110 §6.5.1).
pub(crate) fn may_trail(name: &[u8]) -> bool {
    !name.is_empty() && class(name) == 0
}

fn named(name: &[u8], connection: &[&[u8]]) -> bool {
    connection.iter().any(|t| name.eq_ignore_ascii_case(t))
}

/// A field name with an underscore: dropped unless `enable-underscores-in-headers` (nginx's
/// `underscores_in_headers off`), since `X_Forwarded_For` may reach an application that folds
/// `_` into `-` as if it were the proxy's `X-Forwarded-For`.
pub(crate) fn has_underscore(name: &[u8]) -> bool {
    name.contains(&b'_')
}

/// The comma-separated tokens of a list field (`Connection: close, Upgrade`).
pub(crate) fn tokens(v: &[u8]) -> impl Iterator<Item = &[u8]> {
    v.split(|&b| b == b',').map(<[u8]>::trim_ascii).filter(|t| !t.is_empty())
}

/// The tokens of every `Connection` field among `fields` (at most 16 kept): the fields they
/// name are hop-by-hop for this message.
pub(crate) fn connection_tokens<'a, I>(fields: I, out: &mut [&'a [u8]; 16]) -> usize
where
    I: IntoIterator<Item = (&'a [u8], &'a [u8])>,
{
    let mut n = 0;
    for (name, value) in fields {
        if name.eq_ignore_ascii_case(b"connection") {
            for t in tokens(value) {
                if n < out.len() {
                    out[n] = t;
                    n += 1;
                }
            }
        }
    }
    n
}

/// The client's own forwarded fields, as a request carries them: read while its fields are
/// copied, then given to [`Forwarded::write`].
#[derive(Default)]
pub struct Seen<'a> {
    /// X-Forwarded-For values in order (the last [`MAX_XFF`] fields; earlier ones are dropped).
    xff: [&'a [u8]; MAX_XFF],
    xff_n: usize,
    proto: Option<&'a [u8]>,
    host: Option<&'a [u8]>,
}

/// X-Forwarded-For fields of one request kept (a client sending more loses the earliest).
const MAX_XFF: usize = 4;

impl<'a> Seen<'a> {
    /// Notes a request field if it is a forwarded one.
    pub(crate) fn note(&mut self, name: &[u8], value: &'a [u8]) {
        match name.len() {
            15 if name.eq_ignore_ascii_case(b"x-forwarded-for") => {
                let value = value.trim_ascii();
                if value.is_empty() {
                    return;
                }
                if self.xff_n == MAX_XFF {
                    self.xff.rotate_left(1);
                    self.xff_n -= 1;
                }
                self.xff[self.xff_n] = value;
                self.xff_n += 1;
            }
            16 if name.eq_ignore_ascii_case(b"x-forwarded-host") => self.host = Some(value),
            17 if name.eq_ignore_ascii_case(b"x-forwarded-proto") => self.proto = Some(value),
            _ => {}
        }
    }
}

/// What the proxy says upstream about the client, the same for every downstream protocol.
pub struct Forwarded<'a> {
    /// The connection's peer, appended to X-Forwarded-For.
    pub peer_ip: &'a [u8],
    /// The client as the proxy believes it (the peer, or X-Forwarded-For's last entry from a
    /// trusted peer): X-Real-IP.
    pub client_ip: &'a [u8],
    pub scheme: &'a str,
    /// The request's authority (Host): X-Forwarded-Host unless a trusted peer sent its own.
    pub authority: &'a [u8],
    /// `use-forwarded-headers` from a trusted peer: the client's X-Forwarded-Proto and
    /// X-Forwarded-Host pass through when present.
    pub trust: bool,
    /// `compute-full-forwarded-for`: X-Forwarded-For is the client's list with the peer
    /// appended; otherwise the client address alone.
    pub full: bool,
    /// The request id when the proxy made it (sent as X-Request-ID).
    pub request_id: Option<&'a [u8]>,
}

impl Forwarded<'_> {
    /// Hands each forwarded field to `emit` as a name and the pieces of its value, in order:
    /// X-Forwarded-For (the client address, as ingress-nginx sends `$remote_addr`; with
    /// [`Forwarded::full`], the client's list then the peer), X-Original-Forwarded-For (the
    /// client's own X-Forwarded-For, if it sent one), X-Real-IP, X-Forwarded-Proto,
    /// X-Forwarded-Host, and X-Request-ID when the proxy made it.
    pub fn write(&self, seen: &Seen<'_>, mut emit: impl FnMut(&'static str, &[&[u8]])) {
        let mut xff: [&[u8]; 2 * MAX_XFF + 1] = [b""; 2 * MAX_XFF + 1];
        let mut n = 0;
        for v in &seen.xff[..seen.xff_n] {
            xff[n] = v;
            xff[n + 1] = b", ";
            n += 2;
        }
        if self.full {
            xff[n] = self.peer_ip;
            emit("X-Forwarded-For", &xff[..=n]);
        } else {
            emit("X-Forwarded-For", &[self.client_ip]);
        }
        if n > 0 {
            // The client's list, without the last separator.
            emit("X-Original-Forwarded-For", &xff[..n - 1]);
        }
        emit("X-Real-IP", &[self.client_ip]);
        let proto = seen.proto.filter(|_| self.trust).unwrap_or(self.scheme.as_bytes());
        emit("X-Forwarded-Proto", &[proto]);
        let host = seen.host.filter(|_| self.trust).unwrap_or(self.authority);
        emit("X-Forwarded-Host", &[host]);
        if let Some(id) = self.request_id {
            emit("X-Request-ID", &[id]);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_table_for_both_directions() {
        for f in ["Connection", "keep-alive", "Proxy-Connection", "TE", "Transfer-Encoding", "Upgrade", "Trailer"] {
            assert!(request_drops(f.as_bytes(), &[]) && response_drops(f.as_bytes(), &[]), "{f}");
            assert!(!may_trail(f.as_bytes()), "{f}");
        }
        assert!(request_drops(b"content-length", &[]) && response_drops(b"Content-Length", &[]));
        for f in ["Host", "X-Forwarded-For", "x-real-ip", "X-Forwarded-Host", "X-Forwarded-Proto", "Expect"] {
            assert!(request_drops(f.as_bytes(), &[]), "{f}");
            assert!(!response_drops(f.as_bytes(), &[]), "{f} is an ordinary response field");
        }
        for f in ["Accept", "Cookie", "Set-Cookie", "X-Request-ID", "Authorization"] {
            assert!(!request_drops(f.as_bytes(), &[]) && !response_drops(f.as_bytes(), &[]), "{f}");
        }
        assert!(request_drops(b"X-Secret", &[b"x-secret"]) && response_drops(b"x-secret", &[b"X-Secret"]));
    }

    #[test]
    fn trailers_carry_only_end_to_end_fields() {
        assert!(may_trail(b"grpc-status") && may_trail(b"X-Checksum"));
        for f in ["Content-Length", "Host", "Authorization", "Cookie", "Content-Type", "X-Forwarded-For", ""] {
            assert!(!may_trail(f.as_bytes()), "{f}");
        }
    }

    #[test]
    fn connection_names_fields_for_this_hop() {
        let fields: [(&[u8], &[u8]); 3] =
            [(b"Connection", b"close, X-A"), (b"Accept", b"*/*"), (b"connection", b" ,x-b ,")];
        let mut out = [&b""[..]; 16];
        let n = connection_tokens(fields, &mut out);
        assert_eq!(&out[..n], &[&b"close"[..], b"X-A", b"x-b"]);
    }

    fn written(f: &Forwarded<'_>, seen: &Seen<'_>) -> Vec<(String, String)> {
        let mut v = Vec::new();
        f.write(seen, |n, parts| v.push((n.to_string(), String::from_utf8(parts.concat()).unwrap())));
        v
    }

    #[test]
    fn forwarded_for_is_the_client_and_the_claimed_list_travels_apart() {
        let mut seen = Seen::default();
        for (n, v) in
            [("X-Forwarded-For", "1.1.1.1"), ("x-forwarded-for", " 2.2.2.2, 3.3.3.3 "), ("X-Forwarded-Proto", "https")]
        {
            seen.note(n.as_bytes(), v.as_bytes());
        }
        seen.note(b"X-Forwarded-Host", b"evil.example");
        let mut f = Forwarded {
            peer_ip: b"10.0.0.9",
            client_ip: b"10.0.0.9",
            scheme: "http",
            authority: b"site.example",
            trust: false,
            full: false,
            request_id: None,
        };
        let w = written(&f, &seen);
        assert_eq!(w[0], ("X-Forwarded-For".into(), "10.0.0.9".into()), "the client address, not the claim");
        assert_eq!(w[1], ("X-Original-Forwarded-For".into(), "1.1.1.1, 2.2.2.2, 3.3.3.3".into()));
        assert_eq!(w[2], ("X-Real-IP".into(), "10.0.0.9".into()));
        assert_eq!((w[3].1.as_str(), w[4].1.as_str()), ("http", "site.example"), "untrusted: ours");
        assert_eq!(w.len(), 5);
        f.trust = true;
        f.full = true;
        f.request_id = Some(b"abc");
        let w = written(&f, &seen);
        assert_eq!(w[0].1, "1.1.1.1, 2.2.2.2, 3.3.3.3, 10.0.0.9", "compute-full-forwarded-for appends the peer");
        assert_eq!((w[3].1.as_str(), w[4].1.as_str(), w[5].1.as_str()), ("https", "evil.example", "abc"));
        let empty = written(&f, &Seen::default());
        assert_eq!((empty[0].1.as_str(), empty[1].0.as_str()), ("10.0.0.9", "X-Real-IP"), "no claim, no original");
    }

    #[test]
    fn a_flood_of_forwarded_for_fields_keeps_the_last_ones() {
        let mut seen = Seen::default();
        for i in 0..10 {
            seen.note(b"X-Forwarded-For", format!("10.0.0.{i}").into_bytes().leak());
        }
        let f = Forwarded {
            peer_ip: b"p",
            client_ip: b"c",
            scheme: "http",
            authority: b"a",
            trust: false,
            full: true,
            request_id: None,
        };
        assert_eq!(written(&f, &seen)[0].1, "10.0.0.6, 10.0.0.7, 10.0.0.8, 10.0.0.9, p");
    }
}
