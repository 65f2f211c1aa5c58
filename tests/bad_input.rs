//! Every bad-input case gets a clear status from the proxy itself, the connection is closed
//! where framing is in doubt, and nothing reaches the upstream. Both I/O backends.

mod support;

use std::io::Write;
use std::time::Duration;

use support::*;

#[rustfmt::skip]
const CASES: &[(&str, &[u8], u16)] = &[
    ("CL and TE together", b"POST / HTTP/1.1\r\nHost: h.test\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 400),
    ("TE and CL together", b"POST / HTTP/1.1\r\nHost: h.test\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n0\r\n\r\n", 400),
    ("conflicting Content-Length", b"POST / HTTP/1.1\r\nHost: h.test\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello", 400),
    ("conflicting Content-Length list", b"POST / HTTP/1.1\r\nHost: h.test\r\nContent-Length: 5, 6\r\n\r\nhello", 400),
    ("malformed Content-Length", b"POST / HTTP/1.1\r\nHost: h.test\r\nContent-Length: 5x\r\n\r\nhello", 400),
    ("signed Content-Length", b"POST / HTTP/1.1\r\nHost: h.test\r\nContent-Length: +5\r\n\r\nhello", 400),
    ("negative Content-Length", b"POST / HTTP/1.1\r\nHost: h.test\r\nContent-Length: -1\r\n\r\n", 400),
    ("overflowing Content-Length", b"POST / HTTP/1.1\r\nHost: h.test\r\nContent-Length: 99999999999999999999999\r\n\r\n", 400),
    ("unknown transfer coding", b"POST / HTTP/1.1\r\nHost: h.test\r\nTransfer-Encoding: gzip\r\n\r\n", 501),
    ("unknown coding before chunked", b"POST / HTTP/1.1\r\nHost: h.test\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n", 501),
    ("coding after chunked", b"POST / HTTP/1.1\r\nHost: h.test\r\nTransfer-Encoding: chunked, gzip\r\n\r\n0\r\n\r\n", 400),
    ("chunked twice", b"POST / HTTP/1.1\r\nHost: h.test\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 400),
    ("TE in HTTP/1.0", b"POST / HTTP/1.0\r\nHost: h.test\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 400),
    ("obs-fold", b"GET / HTTP/1.1\r\nHost: h.test\r\nX-Long: a\r\n b\r\n\r\n", 400),
    ("NUL in header value", b"GET / HTTP/1.1\r\nHost: h.test\r\nX-A: a\0b\r\n\r\n", 400),
    ("CR inside header value", b"GET / HTTP/1.1\r\nHost: h.test\r\nX-A: a\rb\r\n\r\n", 400),
    ("LF inside header value", b"GET / HTTP/1.1\r\nHost: h.test\r\nX-A: a\nX-B: b\r\n\r\n", 400),
    ("space before colon", b"GET / HTTP/1.1\r\nHost : h.test\r\n\r\n", 400),
    ("bad chunk size", b"POST / HTTP/1.1\r\nHost: h.test\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nhello\r\n0\r\n\r\n", 400),
    ("chunk size overflow", b"POST / HTTP/1.1\r\nHost: h.test\r\nTransfer-Encoding: chunked\r\n\r\nfffffffffffffffff1\r\nhello\r\n0\r\n\r\n", 400),
    ("chunk without CRLF", b"POST / HTTP/1.1\r\nHost: h.test\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhelloXX0\r\n\r\n", 400),
    ("missing Host", b"GET / HTTP/1.1\r\n\r\n", 400),
    ("duplicate Host", b"GET / HTTP/1.1\r\nHost: h.test\r\nHost: other.test\r\n\r\n", 400),
    ("invalid Host", b"GET / HTTP/1.1\r\nHost: h test\r\n\r\n", 400),
    ("HTTP/2.0 request line", b"GET / HTTP/2.0\r\nHost: h.test\r\n\r\n", 400),
    ("HTTP/1.2", b"GET / HTTP/1.2\r\nHost: h.test\r\n\r\n", 400),
    ("garbage request line", b"HELLO\r\n\r\n", 400),
    ("relative target", b"GET index.html HTTP/1.1\r\nHost: h.test\r\n\r\n", 400),
    ("CONNECT", b"CONNECT h.test:443 HTTP/1.1\r\nHost: h.test:443\r\n\r\n", 501),
    ("unknown expectation", b"POST / HTTP/1.1\r\nHost: h.test\r\nExpect: 200-ok\r\nContent-Length: 1\r\n\r\nx", 417),
    ("too many headers", b"", 431),
    ("header section too large", b"", 431),
    ("Content-Length over the body limit", b"POST / HTTP/1.1\r\nHost: h.test\r\nContent-Length: 4096\r\n\r\n", 413),
    ("chunked body over the body limit", b"", 413),
];

fn generated(name: &str) -> Vec<u8> {
    match name {
        "too many headers" => {
            let mut r = b"GET / HTTP/1.1\r\nHost: h.test\r\n".to_vec();
            for i in 0..150 {
                r.extend_from_slice(format!("X-H{i}: v\r\n").as_bytes());
            }
            r.extend_from_slice(b"\r\n");
            r
        }
        "header section too large" => {
            format!("GET / HTTP/1.1\r\nHost: h.test\r\nX-Big: {}\r\n\r\n", "a".repeat(40 * 1024)).into_bytes()
        }
        "chunked body over the body limit" => {
            let mut r = b"POST / HTTP/1.1\r\nHost: h.test\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec();
            for _ in 0..3 {
                r.extend_from_slice(b"400\r\n");
                r.extend_from_slice(&[b'x'; 0x400]);
                r.extend_from_slice(b"\r\n");
            }
            r.extend_from_slice(b"0\r\n\r\n");
            r
        }
        _ => unreachable!(),
    }
}

per_backend!(fn bad_requests_get_a_status_and_never_reach_the_upstream(io) {
    let up = Upstream::start("u");
    let m = service("svc", &[up.addr]) + &ingress("any", None, &[("/", "svc")]);
    let p = Proxy::start(io, &m, &["--max-body-size", "2k"]);
    for (name, bytes, want) in CASES {
        let bytes = if bytes.is_empty() { generated(name) } else { bytes.to_vec() };
        let mut s = connect(p.http);
        let _ = s.write_all(&bytes);
        let r = read_response(&mut s, &mut Vec::new(), false);
        let r = r.unwrap_or_else(|| panic!("{io}: {name}: connection closed without a response"));
        assert_eq!(r.status, *want, "{io}: {name}: {}", r.text());
        assert_eq!(r.header("connection"), Some("close"), "{io}: {name}");
        assert!(closed_within(&mut s, Duration::from_secs(5)), "{io}: {name}: connection left open");
    }
    assert_eq!(up.hits(), 0, "{io}: a bad request reached the upstream");
    // The proxy still serves good requests afterwards.
    let r = get(p.http, "h.test", "/ok");
    assert_eq!(r.status, 200, "{io}");
    assert_eq!(up.hits(), 1, "{io}");
});

per_backend!(smoke fn request_smuggling_attempt_is_not_split_into_two_requests(io) {
    let up = Upstream::start("u");
    let m = service("svc", &[up.addr]) + &ingress("any", None, &[("/", "svc")]);
    let p = Proxy::start(io, &m, &[]);
    // CL.TE: a front end that trusted Content-Length would forward "G..." as a second request.
    let r = raw(
        p.http,
        b"POST / HTTP/1.1\r\nHost: h.test\r\nContent-Length: 44\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: h.test\r\n\r\n",
    )
    .unwrap();
    assert_eq!(r.status, 400, "{io}");
    assert_eq!(up.hits(), 0, "{io}");
});
