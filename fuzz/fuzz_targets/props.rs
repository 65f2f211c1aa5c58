// Properties shared by the fuzz targets and tests/fuzz_regressions.rs (included by path).

use ringress::proxy::h1::chunked::Chunked;
use ringress::proxy::h1::codec::{self, Framing};

/// The request-head path: parse, check, rewrite for the upstream. Whatever the proxy accepts,
/// the head it sends upstream must parse again, carry no bare LF, and frame the body exactly as
/// the proxy read it (no request smuggling). Host normalisation must not panic either.
pub fn request_head(data: &[u8]) {
    let mut headers = [httparse::EMPTY_HEADER; 64];
    let mut req = httparse::Request::new(&mut headers);
    let Ok(httparse::Status::Complete(n)) = req.parse(data) else { return };
    if codec::has_bare_lf(&data[..n]) {
        return;
    }
    let method = req.method.unwrap_or("");
    let Ok(target) = codec::parse_target(method, req.path.unwrap_or("")) else { return };
    let mut host: &[u8] = b"";
    let Ok(info) = codec::analyze_request(&req, n, &target, &mut host) else { return };
    let mut hbuf = [0u8; 256];
    let _ = ringress::snapshot::normalize_host(host, &mut hbuf);

    let mut out = Vec::new();
    let fwd = ringress::proxy::fields::Forwarded {
        peer_ip: b"127.0.0.1",
        client_ip: b"127.0.0.1",
        scheme: "http",
        authority: host,
        trust: false,
        full: true,
        request_id: Some(b"0123456789abcdef"),
    };
    codec::write_request_head(&mut out, &req, &info, &target, host, &fwd, false);
    assert!(!codec::has_bare_lf(&out), "bare LF sent upstream: {:?}", String::from_utf8_lossy(&out));
    let mut h2 = [httparse::EMPTY_HEADER; 128];
    let mut again = httparse::Request::new(&mut h2);
    let m = match again.parse(&out) {
        Ok(httparse::Status::Complete(m)) => m,
        other => panic!("rewritten head does not parse ({other:?}): {:?}", String::from_utf8_lossy(&out)),
    };
    assert_eq!(m, out.len(), "rewritten head has trailing bytes");
    let t2 = codec::parse_target(again.method.unwrap_or(""), again.path.unwrap_or("")).expect("target re-parses");
    let mut host2: &[u8] = b"";
    let info2 = codec::analyze_request(&again, m, &t2, &mut host2).expect("rewritten head is accepted");
    // The upstream always gets HTTP/1.1; a body-less request stays body-less, a framed one
    // keeps exactly its framing.
    let norm = |f: Framing| if f == Framing::Length(0) { Framing::None } else { f };
    assert_eq!(norm(info2.framing), norm(info.framing), "framing changed: {:?}", String::from_utf8_lossy(&out));
    assert_eq!(host2, host, "host changed");
}

/// Chunked decoding must not depend on how the bytes are split across reads.
pub fn chunked(data: &[u8]) {
    let Some((&split, body)) = data.split_first() else { return };
    let whole = run_chunked(&[body]);
    let at = (split as usize).min(body.len());
    let (a, b) = body.split_at(at);
    let parts = run_chunked(&[a, b]);
    assert_eq!(whole, parts, "split at {at} changed the result");
}

fn run_chunked(parts: &[&[u8]]) -> Result<(usize, Vec<u8>, bool), ()> {
    let mut c = Chunked::default();
    let mut out = Vec::new();
    let mut consumed = 0;
    for p in parts {
        let n = c.feed(p, &mut |d| out.extend_from_slice(d)).map_err(|_| ())?;
        consumed += n;
        if c.is_done() {
            break;
        }
    }
    Ok((consumed, out, c.is_done()))
}

/// Path normalisation: whatever it accepts comes out normal (normalising again changes
/// nothing), with no dot-segment, and with nothing a backend's own normalisation (decode every
/// percent-encoding once, read `\\` as `/`, remove dot-segments) could move out of the prefix
/// it was routed by.
pub fn path(data: &[u8]) {
    use ringress::proxy::path::normalize;
    let Ok(s) = std::str::from_utf8(data) else { return };
    for input in [format!("/{s}"), format!("/public/{s}")] {
        let Ok(normal) = normalize(&input) else { continue };
        assert_eq!(normalize(&normal).as_deref(), Ok(&*normal), "not idempotent: {input:?}");
        assert!(!normal.split('/').any(is_dot_segment), "dot-segment left: {input:?} -> {normal:?}");
        let seen = backend_view(&normal);
        assert!(!seen.split('/').any(is_dot_segment), "a backend finds a dot-segment: {input:?} -> {normal:?}");
        if normal.starts_with("/public/") {
            assert!(seen.starts_with("/public/"), "escapes /public: {input:?} -> {normal:?} -> {seen:?}");
        }
    }
}

fn is_dot_segment(seg: &str) -> bool {
    let name = seg.split(';').next().unwrap_or(seg);
    name == "." || name == ".."
}

/// What a backend that decodes once and splits on `/` and `\\` sees (before its own dot
/// removal): lossy for non-UTF-8 decodings, which cannot form dots anyway.
fn backend_view(path: &str) -> String {
    let b = path.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let hex = |c: u8| (c as char).to_digit(16);
        if b[i] == b'%' && i + 2 < b.len() {
            if let (Some(h), Some(l)) = (hex(b[i + 1]), hex(b[i + 2])) {
                out.push((h * 16 + l) as u8);
                i += 3;
                continue;
            }
        }
        out.push(if b[i] == b'\\' { b'/' } else { b[i] });
        i += 1;
    }
    String::from_utf8_lossy(&out).replace('\\', "/")
}

/// The ClientHello reader (ssl-passthrough) on hostile bytes: it never panics, and a prefix of
/// the input says "more" or what the whole input says (a decision rests only on bytes seen).
pub fn sni(data: &[u8]) {
    use ringress::proxy::sni::{server_name, Sni};
    let whole = server_name(data);
    if let Sni::Name(Some(n)) = &whole {
        assert!(!n.is_empty() && n.len() <= 253 && n.bytes().all(|b| !b.is_ascii_uppercase()), "{n:?}");
    }
    for cut in [data.len() / 3, data.len() / 2, data.len().saturating_sub(1)] {
        let part = server_name(&data[..cut]);
        assert!(part == Sni::More || part == whole, "prefix {cut}: {part:?} but the whole: {whole:?}");
    }
}
