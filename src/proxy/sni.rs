//! The server name (SNI) of a TLS ClientHello read off the wire, for `ssl-passthrough`: the
//! HTTPS port looks at it before deciding to terminate TLS or pass the connection on.
//!
//! Hostile input: every length is checked against what is there and against TLS's own
//! bounds, and the whole hello is bounded ([`MAX_HELLO`]); anything that does not parse as a
//! ClientHello is [`Sni::NotHello`], which the caller hands to rustls (which fails it properly).

/// The largest ClientHello looked at (real ones are under 2 KiB; post-quantum key shares
/// bring them near 2 KiB more).
pub const MAX_HELLO: usize = 32 * 1024;

/// What the bytes read so far say.
#[derive(Debug, PartialEq, Eq)]
pub enum Sni {
    /// Not the whole ClientHello yet.
    More,
    /// A ClientHello, with the host name it names (lowercase), if any.
    Name(Option<String>),
    /// Not a TLS ClientHello, or one ringress does not look into.
    NotHello,
}

/// Reads the ClientHello at the start of `buf` (TLS records of type handshake, the message
/// possibly spread over several).
pub fn server_name(buf: &[u8]) -> Sni {
    let mut hello = Vec::new();
    let mut at = 0;
    loop {
        let Some(header) = buf.get(at..at + 5) else { return Sni::More };
        // Handshake records, TLS 1.0 to 1.3 record versions (3.x).
        if header[0] != 0x16 || header[1] != 3 {
            return Sni::NotHello;
        }
        let len = usize::from(u16::from_be_bytes([header[3], header[4]]));
        if len == 0 || len > 16 * 1024 {
            return Sni::NotHello;
        }
        let Some(payload) = buf.get(at + 5..at + 5 + len) else { return Sni::More };
        hello.extend_from_slice(payload);
        at += 5 + len;
        if hello.len() < 4 {
            continue;
        }
        if hello[0] != 1 {
            return Sni::NotHello;
        }
        let size = usize::from(hello[1]) << 16 | usize::from(hello[2]) << 8 | usize::from(hello[3]);
        if size > MAX_HELLO {
            return Sni::NotHello;
        }
        if hello.len() >= 4 + size {
            return match parse(&hello[4..4 + size]) {
                Some(name) => Sni::Name(name),
                None => Sni::NotHello,
            };
        }
    }
}

/// A cursor over a message: each read checks what is left.
struct Cursor<'a>(&'a [u8]);

impl<'a> Cursor<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        let (head, rest) = (self.0.get(..n)?, self.0.get(n..)?);
        self.0 = rest;
        Some(head)
    }

    fn u8(&mut self) -> Option<usize> {
        self.take(1).map(|b| usize::from(b[0]))
    }

    fn u16(&mut self) -> Option<usize> {
        self.take(2).map(|b| usize::from(u16::from_be_bytes([b[0], b[1]])))
    }

    /// A field with a length prefix of `width` bytes.
    fn vec(&mut self, width: usize) -> Option<&'a [u8]> {
        let n = if width == 1 { self.u8()? } else { self.u16()? };
        self.take(n)
    }
}

/// The ClientHello's body: None when it does not parse; Some(None): no usable server name.
fn parse(body: &[u8]) -> Option<Option<String>> {
    let mut c = Cursor(body);
    c.take(2 + 32)?; // legacy_version, random
    let session = c.vec(1)?;
    if session.len() > 32 {
        return None;
    }
    let suites = c.vec(2)?;
    if suites.is_empty() || suites.len() % 2 != 0 {
        return None;
    }
    c.vec(1)?; // compression methods
    if c.0.is_empty() {
        return Some(None);
    }
    let mut exts = Cursor(c.vec(2)?);
    while !exts.0.is_empty() {
        let kind = exts.u16()?;
        let data = exts.vec(2)?;
        if kind != 0 {
            continue;
        }
        let mut list = Cursor(Cursor(data).vec(2)?);
        while !list.0.is_empty() {
            let name_type = list.u8()?;
            let name = list.vec(2)?;
            if name_type == 0 {
                return Some(host(name));
            }
        }
        return Some(None);
    }
    Some(None)
}

/// A DNS host name as SNI carries it (RFC 6066 §3: no trailing dot, no IP literal), lowercase.
fn host(name: &[u8]) -> Option<String> {
    let ok = !name.is_empty()
        && name.len() <= 253
        && name.iter().all(|&b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.' || b == b'_')
        && !name.starts_with(b".")
        && !name.ends_with(b".");
    ok.then(|| String::from_utf8_lossy(name).to_ascii_lowercase())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A ClientHello naming `name` (and a padding extension of `pad` bytes before it), in
    /// records of at most `record` bytes.
    fn hello(name: Option<&str>, pad: usize, record: usize) -> Vec<u8> {
        let mut exts = Vec::new();
        exts.extend_from_slice(&[0x00, 0x15]);
        exts.extend_from_slice(&(pad as u16).to_be_bytes());
        exts.extend(std::iter::repeat_n(0u8, pad));
        if let Some(n) = name {
            let n = n.as_bytes();
            let entry_len = 3 + n.len();
            exts.extend_from_slice(&[0, 0]);
            exts.extend_from_slice(&((2 + entry_len) as u16).to_be_bytes());
            exts.extend_from_slice(&(entry_len as u16).to_be_bytes());
            exts.push(0);
            exts.extend_from_slice(&(n.len() as u16).to_be_bytes());
            exts.extend_from_slice(n);
        }
        let mut body = vec![3, 3];
        body.extend_from_slice(&[7; 32]);
        body.push(0);
        body.extend_from_slice(&[0, 2, 0x13, 0x01, 1, 0]);
        body.extend_from_slice(&(exts.len() as u16).to_be_bytes());
        body.extend_from_slice(&exts);
        let mut msg = vec![1, 0, (body.len() >> 8) as u8, body.len() as u8];
        msg.extend_from_slice(&body);
        let mut out = Vec::new();
        for piece in msg.chunks(record) {
            out.extend_from_slice(&[0x16, 3, 1]);
            out.extend_from_slice(&(piece.len() as u16).to_be_bytes());
            out.extend_from_slice(piece);
        }
        out
    }

    #[test]
    fn names_are_read_from_whole_and_split_hellos() {
        let h = hello(Some("Pass.Example.TEST"), 10, 16384);
        assert_eq!(server_name(&h), Sni::Name(Some("pass.example.test".into())));
        // Byte by byte: More until the last byte.
        for n in 0..h.len() {
            assert_eq!(server_name(&h[..n]), Sni::More, "{n}");
        }
        // The message over several records (a large hello), each partial prefix More.
        let h = hello(Some("a.test"), 3000, 1000);
        assert_eq!(server_name(&h), Sni::Name(Some("a.test".into())));
        assert_eq!(server_name(&h[..1500]), Sni::More);
        assert_eq!(server_name(&hello(None, 5, 16384)), Sni::Name(None));
    }

    #[test]
    fn hostile_hellos_are_not_hellos() {
        assert_eq!(server_name(b"GET / HTTP/1.1\r\n\r\n"), Sni::NotHello);
        assert_eq!(server_name(&[0x16, 3, 1, 0, 0]), Sni::NotHello, "an empty record");
        assert_eq!(server_name(&[0x16, 3, 1, 0xff, 0xff]), Sni::NotHello, "a record over 16 KiB");
        assert_eq!(server_name(&[0x16, 3, 1, 0, 4, 2, 0, 0, 0]), Sni::NotHello, "not a ClientHello");
        assert_eq!(server_name(&[0x16, 3, 1, 0, 4, 1, 0xff, 0xff, 0xff]), Sni::NotHello, "over MAX_HELLO");
        // Lengths that run past the message, at every place one can be cut.
        let good = hello(Some("a.test"), 0, 16384);
        for cut in 9..good.len() - 1 {
            let mut h = good[..cut].to_vec();
            // Rewrite the record and message lengths to the cut size: inner lengths now lie.
            let rec = (cut - 5) as u16;
            h[3..5].copy_from_slice(&rec.to_be_bytes());
            let msg = cut - 9;
            h[6..9].copy_from_slice(&[0, (msg >> 8) as u8, msg as u8]);
            assert!(matches!(server_name(&h), Sni::NotHello | Sni::Name(None)), "{cut}");
        }
        // Names that are not host names.
        assert_eq!(server_name(&hello(Some("a b"), 0, 16384)), Sni::Name(None));
        assert_eq!(server_name(&hello(Some("a.test."), 0, 16384)), Sni::Name(None));
    }

    #[test]
    fn real_client_hellos_from_openssl_and_curl() {
        let read =
            |name: &str| std::fs::read(format!("{}/fuzz/regressions/sni/{name}", env!("CARGO_MANIFEST_DIR"))).unwrap();
        let name = |n: &str| Sni::Name(Some(n.to_string()));
        assert_eq!(server_name(&read("openssl-tls13-sni")), name("pass.example.test"));
        assert_eq!(server_name(&read("split-records")), name("pass.example.test"), "over 100-byte records");
        assert_eq!(server_name(&read("curl-localhost")), name("localhost"));
        assert_eq!(server_name(&read("openssl-tls12-no-sni")), Sni::Name(None));
        assert_eq!(server_name(&read("truncated")), Sni::More);
        assert_eq!(server_name(&read("oversized-record")), Sni::NotHello);
        assert_eq!(server_name(&read("plain-http")), Sni::NotHello);
    }
}
