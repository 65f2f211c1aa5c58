//! RFC 9112 cases for the request and response analysis, and the heads the proxy writes.

use super::*;

/// Parses `head` and analyses it as the proxy does: the framing, or the error kind.
fn request(head: &str) -> Result<(RequestInfo, String), Kind> {
    let mut hs = [httparse::EMPTY_HEADER; 32];
    let mut req = httparse::Request::new(&mut hs);
    let n = match req.parse(head.as_bytes()) {
        Ok(httparse::Status::Complete(n)) => n,
        other => panic!("test head does not parse: {other:?}"),
    };
    let target = parse_target(req.method.unwrap(), req.path.unwrap()).map_err(|e| e.kind)?;
    let mut host: &[u8] = b"";
    let info = analyze_request(&req, n, &target, &mut host).map_err(|e| e.kind)?;
    Ok((info, String::from_utf8(host.to_vec()).unwrap()))
}

fn framing(head: &str) -> Result<Framing, Kind> {
    request(head).map(|(i, _)| i.framing)
}

#[test]
fn body_framing_follows_rfc_9112_section_6() {
    assert_eq!(framing("GET / HTTP/1.1\r\nHost: a\r\n\r\n"), Ok(Framing::None));
    assert_eq!(framing("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\n"), Ok(Framing::Length(5)));
    assert_eq!(framing("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\n\r\n"), Ok(Framing::None));
    assert_eq!(framing("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"), Ok(Framing::Chunked));
    // §6.3 item 5: repeated lengths must agree; a list of the same value is one value.
    assert_eq!(framing("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5, 5\r\n\r\n"), Ok(Framing::Length(5)));
    assert_eq!(
        framing("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n"),
        Err(Kind::BadRequest)
    );
    for bad in ["+5", "-1", "0x5", "5 5", "", "99999999999999999999999"] {
        let head = format!("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: {bad}\r\n\r\n");
        assert_eq!(framing(&head), Err(Kind::BadRequest), "Content-Length: {bad:?}");
    }
}

#[test]
fn smuggling_shapes_are_refused() {
    // §6.1: CL and TE together is an attack or an error; we refuse rather than pick one.
    let both = "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n";
    assert_eq!(framing(both), Err(Kind::BadRequest));
    // chunked must be the last coding and appear once; other codings are not implemented.
    assert_eq!(
        framing("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked, chunked\r\n\r\n"),
        Err(Kind::BadRequest)
    );
    assert_eq!(
        framing("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip, chunked\r\n\r\n"),
        Err(Kind::NotImplemented)
    );
    assert_eq!(framing("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: identity\r\n\r\n"), Err(Kind::NotImplemented));
    assert_eq!(framing("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding:\r\n\r\n"), Err(Kind::BadRequest));
    // An HTTP/1.0 message with Transfer-Encoding is faulty (§6.1).
    assert_eq!(framing("POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n"), Err(Kind::BadRequest));
    // Bare LF line ends are rejected before anything else sees the head (§2.2).
    assert!(has_bare_lf(b"GET / HTTP/1.1\r\nHost: a\nX: b\r\n\r\n"));
    assert!(!has_bare_lf(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n"));
}

#[test]
fn host_rules_follow_rfc_9112_section_3_2() {
    assert_eq!(request("GET / HTTP/1.1\r\n\r\n").err(), Some(Kind::BadHost), "HTTP/1.1 needs Host");
    assert_eq!(request("GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n").err(), Some(Kind::BadHost));
    assert_eq!(request("GET / HTTP/1.0\r\n\r\n").map(|r| r.1), Ok(String::new()), "HTTP/1.0 may omit it");
    // An absolute-form target's authority wins over Host (§3.2.2).
    let abs = request("GET http://b.example/x HTTP/1.1\r\nHost: a.example\r\n\r\n").unwrap();
    assert_eq!(abs.1, "b.example");
    assert_eq!(request("GET http://u@b.example/ HTTP/1.1\r\nHost: a\r\n\r\n").err(), Some(Kind::BadRequest));
    assert_eq!(request("GET example.com HTTP/1.1\r\nHost: a\r\n\r\n").err(), Some(Kind::BadRequest));
    assert!(request("OPTIONS * HTTP/1.1\r\nHost: a\r\n\r\n").is_ok());
    assert_eq!(request("GET * HTTP/1.1\r\nHost: a\r\n\r\n").err(), Some(Kind::BadRequest));
}

#[test]
fn persistence_follows_rfc_9112_section_9_3() {
    let keep = |h: &str| request(h).unwrap().0.keep_alive;
    assert!(keep("GET / HTTP/1.1\r\nHost: a\r\n\r\n"));
    assert!(!keep("GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n"));
    assert!(!keep("GET / HTTP/1.1\r\nHost: a\r\nConnection: foo, Close\r\n\r\n"));
    assert!(!keep("GET / HTTP/1.0\r\n\r\n"));
    assert!(keep("GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n"));
    let info = request("POST / HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\nContent-Length: 1\r\n\r\n").unwrap().0;
    assert!(info.expect_continue);
    let none = request("GET / HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\n\r\n").unwrap().0;
    assert!(!none.expect_continue, "no body, nothing to continue");
    assert_eq!(request("GET / HTTP/1.1\r\nHost: a\r\nExpect: magic\r\n\r\n").err(), Some(Kind::ExpectationFailed));
    let up = request("GET / HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n").unwrap().0;
    assert!(up.upgrade);
    assert!(!request("GET / HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\n\r\n").unwrap().0.upgrade);
}

/// The head the proxy sends upstream for `head`.
fn upstream_head(head: &str, trust: bool) -> String {
    let mut hs = [httparse::EMPTY_HEADER; 32];
    let mut req = httparse::Request::new(&mut hs);
    let Ok(httparse::Status::Complete(n)) = req.parse(head.as_bytes()) else { panic!("parse") };
    let target = parse_target(req.method.unwrap(), req.path.unwrap()).unwrap();
    let mut host: &[u8] = b"";
    let info = analyze_request(&req, n, &target, &mut host).unwrap();
    let fwd = Forwarded {
        peer_ip: b"10.1.1.1",
        client_ip: b"10.1.1.1",
        scheme: "http",
        authority: host,
        trust,
        full: trust,
        request_id: None,
    };
    let mut out = Vec::new();
    write_request_head(&mut out, &req, &info, &target, host, &fwd, false);
    String::from_utf8(out).unwrap()
}

#[test]
fn the_upstream_head_drops_hop_by_hop_fields_and_writes_its_own_framing() {
    let out = upstream_head(
        "POST /x?q=1 HTTP/1.1\r\nHost: a.example\r\nConnection: keep-alive, X-Hop\r\nKeep-Alive: 5\r\nX-Hop: 1\r\nProxy-Connection: x\r\nTE: trailers\r\nX_Under: 1\r\nContent-Length: 007\r\nX-Forwarded-For: 1.2.3.4\r\nX-Forwarded-Proto: https\r\nAccept: */*\r\n\r\n",
        false,
    );
    assert!(out.starts_with("POST /x?q=1 HTTP/1.1\r\nHost: a.example\r\n"), "{out}");
    for gone in ["Connection:", "Keep-Alive", "X-Hop", "Proxy-Connection", "TE:", "X_Under", "007"] {
        assert!(!out.contains(gone), "{gone} forwarded: {out}");
    }
    for kept in [
        "Accept: */*\r\n",
        "Content-Length: 7\r\n",
        "X-Forwarded-For: 10.1.1.1\r\n",
        "X-Original-Forwarded-For: 1.2.3.4\r\n",
        "X-Real-IP: 10.1.1.1\r\n",
        "X-Forwarded-Proto: http\r\n",
        "X-Forwarded-Host: a.example\r\n",
    ] {
        assert!(out.contains(kept), "{kept:?} missing: {out}");
    }
    assert!(out.ends_with("\r\n\r\n"));
    let trusted = upstream_head(
        "GET / HTTP/1.1\r\nHost: a\r\nX-Forwarded-Proto: https\r\nX-Forwarded-For: 1.2.3.4\r\nX-Original-Forwarded-For: x\r\n\r\n",
        true,
    );
    assert!(trusted.contains("X-Forwarded-Proto: https\r\n"), "{trusted}");
    assert!(trusted.contains("X-Forwarded-For: 1.2.3.4, 10.1.1.1\r\n"), "compute-full-forwarded-for: {trusted}");
    assert!(!trusted.contains("X-Original-Forwarded-For: x"), "the client's own is dropped: {trusted}");
}

fn response(head: &str, request_is_head: bool) -> ResponseInfo {
    let mut hs = [httparse::EMPTY_HEADER; 32];
    let mut resp = httparse::Response::new(&mut hs);
    let Ok(httparse::Status::Complete(n)) = resp.parse(head.as_bytes()) else { panic!("parse") };
    analyze_response(&resp, n, request_is_head).unwrap()
}

#[test]
fn response_framing_follows_rfc_9112_section_6_3() {
    let r = |h: &str| response(h, false);
    assert_eq!(r("HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\n").framing, Framing::Length(3));
    assert_eq!(r("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n").framing, Framing::Chunked);
    assert_eq!(r("HTTP/1.1 200 OK\r\n\r\n").framing, Framing::UntilClose);
    assert!(!r("HTTP/1.1 200 OK\r\n\r\n").reusable, "a close-delimited body ends the connection");
    // Item 1: 1xx, 204 and 304 responses and any response to HEAD have no body.
    for head in [
        "HTTP/1.1 204 No Content\r\nContent-Length: 9\r\n\r\n",
        "HTTP/1.1 304 Not Modified\r\nContent-Length: 9\r\n\r\n",
    ] {
        assert_eq!(r(head).framing, Framing::None, "{head}");
    }
    let head = response("HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\n", true);
    assert_eq!((head.framing, head.length), (Framing::None, Some(9)), "HEAD keeps the representation's length");
    // Item 3: TE and CL together: chunked wins, and the connection is never reused.
    let both = r("HTTP/1.1 200 OK\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n");
    assert_eq!((both.framing, both.reusable, both.length), (Framing::Chunked, false, None));
    // HTTP/1.0 upstreams close unless they say keep-alive.
    assert!(!r("HTTP/1.0 200 OK\r\nContent-Length: 1\r\n\r\n").reusable);
    assert!(r("HTTP/1.0 200 OK\r\nContent-Length: 1\r\nConnection: keep-alive\r\n\r\n").reusable);
    assert!(!r("HTTP/1.1 200 OK\r\nContent-Length: 1\r\nConnection: close\r\n\r\n").reusable);
}

#[test]
fn the_client_head_drops_what_connection_names() {
    let head = "HTTP/1.1 200 OK\r\nConnection: X-Secret\r\nX-Secret: s\r\nKeep-Alive: 1\r\nContent-Length: 02\r\nServer: up\r\n\r\n";
    let mut hs = [httparse::EMPTY_HEADER; 32];
    let mut resp = httparse::Response::new(&mut hs);
    let Ok(httparse::Status::Complete(n)) = resp.parse(head.as_bytes()) else { panic!("parse") };
    let info = analyze_response(&resp, n, false).unwrap();
    let mut out = Vec::new();
    write_response_head(&mut out, &resp, &info, (false, false, false), b"X-Extra: 1\r\n", &|_| false);
    let out = String::from_utf8(out).unwrap();
    assert_eq!(out, "HTTP/1.1 200 OK\r\nServer: up\r\nContent-Length: 2\r\nX-Extra: 1\r\n\r\n");
}
