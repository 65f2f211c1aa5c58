//! The PROXY protocol (haproxy.org proxy-protocol.txt, versions 1 and 2): the header a load
//! balancer puts before a TCP stream to say who the client was. Written to L4 backends that
//! ask for it; read from clients with `--accept-proxy-protocol`. Pure functions.

use std::net::{IpAddr, SocketAddr};

/// The 12-byte signature that opens a version 2 header.
pub const V2_SIGNATURE: [u8; 12] = [0x0D, 0x0A, 0x0D, 0x0A, 0x00, 0x0D, 0x0A, 0x51, 0x55, 0x49, 0x54, 0x0A];
/// A version 1 header is at most 107 bytes, CRLF included.
const V1_MAX: usize = 107;

/// `PROXY TCP4 <src> <dst> <sport> <dport>\r\n` (TCP6 when either address is IPv6; an
/// IPv4-mapped address is written as IPv4).
pub fn write_v1(out: &mut Vec<u8>, src: SocketAddr, dst: SocketAddr) {
    use std::io::Write;
    let (s, d) = (src.ip().to_canonical(), dst.ip().to_canonical());
    let family = if s.is_ipv4() && d.is_ipv4() { "TCP4" } else { "TCP6" };
    let (s, d) = if family == "TCP6" { (v6(s), v6(d)) } else { (s, d) };
    let _ = write!(out, "PROXY {family} {s} {d} {} {}\r\n", src.port(), dst.port());
}

fn v6(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(v4) => IpAddr::V6(v4.to_ipv6_mapped()),
        v6 => v6,
    }
}

/// Version 2, command PROXY, transport STREAM, with the addresses in binary.
pub fn write_v2(out: &mut Vec<u8>, src: SocketAddr, dst: SocketAddr) {
    out.extend_from_slice(&V2_SIGNATURE);
    out.push(0x21); // version 2, PROXY
    match (src.ip().to_canonical(), dst.ip().to_canonical()) {
        (IpAddr::V4(s), IpAddr::V4(d)) => {
            out.push(0x11); // AF_INET, STREAM
            out.extend_from_slice(&12u16.to_be_bytes());
            out.extend_from_slice(&s.octets());
            out.extend_from_slice(&d.octets());
        }
        (s, d) => {
            out.push(0x21); // AF_INET6, STREAM
            out.extend_from_slice(&36u16.to_be_bytes());
            for ip in [v6(s), v6(d)] {
                if let IpAddr::V6(a) = ip {
                    out.extend_from_slice(&a.octets());
                }
            }
        }
    }
    out.extend_from_slice(&src.port().to_be_bytes());
    out.extend_from_slice(&dst.port().to_be_bytes());
}

/// What a client's header said.
#[derive(Debug, PartialEq, Eq)]
pub struct Header {
    /// The client's address; None for `UNKNOWN` (v1) or a LOCAL / non-TCP header (v2): the
    /// connection's own peer stands.
    pub source: Option<SocketAddr>,
    /// Bytes of `buf` the header took.
    pub len: usize,
}

/// Parses a header at the start of `buf`. `Ok(None)`: not all of it is here yet; `Err`: not a
/// valid PROXY header (the connection is closed).
pub fn parse(buf: &[u8]) -> Result<Option<Header>, &'static str> {
    if buf.len() < 12 && (V2_SIGNATURE.starts_with(buf) || b"PROXY ".starts_with(&buf[..buf.len().min(6)])) {
        return Ok(None);
    }
    if buf.starts_with(&V2_SIGNATURE) {
        return parse_v2(buf);
    }
    if buf.starts_with(b"PROXY ") {
        return parse_v1(buf);
    }
    Err("no PROXY protocol header")
}

fn parse_v1(buf: &[u8]) -> Result<Option<Header>, &'static str> {
    let Some(end) = buf.windows(2).take(V1_MAX - 1).position(|w| w == b"\r\n") else {
        return if buf.len() >= V1_MAX { Err("PROXY v1 header longer than 107 bytes") } else { Ok(None) };
    };
    let line = std::str::from_utf8(&buf[..end]).map_err(|_| "PROXY v1 header is not ASCII")?;
    let f: Vec<&str> = line.split(' ').collect();
    let len = end + 2;
    match f.get(1) {
        Some(&"UNKNOWN") => return Ok(Some(Header { source: None, len })),
        Some(&"TCP4") | Some(&"TCP6") if f.len() == 6 => {}
        _ => return Err("PROXY v1 header: bad protocol or field count"),
    }
    let ip: IpAddr = f[2].parse().map_err(|_| "PROXY v1 header: bad source address")?;
    let _: IpAddr = f[3].parse().map_err(|_| "PROXY v1 header: bad destination address")?;
    if (f[1] == "TCP4") != ip.is_ipv4() {
        return Err("PROXY v1 header: address family mismatch");
    }
    let port = |s: &str| s.parse::<u16>().ok().filter(|_| !s.starts_with('0') || s == "0");
    let sport = port(f[4]).ok_or("PROXY v1 header: bad source port")?;
    port(f[5]).ok_or("PROXY v1 header: bad destination port")?;
    Ok(Some(Header { source: Some(SocketAddr::new(ip, sport)), len }))
}

fn parse_v2(buf: &[u8]) -> Result<Option<Header>, &'static str> {
    if buf.len() < 16 {
        return Ok(None);
    }
    let (ver_cmd, fam) = (buf[12], buf[13]);
    if ver_cmd >> 4 != 2 {
        return Err("PROXY v2 header: bad version");
    }
    let body = u16::from_be_bytes([buf[14], buf[15]]) as usize;
    let len = 16 + body;
    if buf.len() < len {
        return Ok(None);
    }
    let a = &buf[16..len];
    let source = match (ver_cmd & 0x0F, fam) {
        (0x0, _) => None, // LOCAL: a health check from the balancer itself
        (0x1, 0x11) if a.len() >= 12 => {
            let ip = IpAddr::from([a[0], a[1], a[2], a[3]]);
            Some(SocketAddr::new(ip, u16::from_be_bytes([a[8], a[9]])))
        }
        (0x1, 0x21) if a.len() >= 36 => {
            let mut o = [0u8; 16];
            o.copy_from_slice(&a[..16]);
            Some(SocketAddr::new(IpAddr::from(o), u16::from_be_bytes([a[32], a[33]])))
        }
        (0x1, _) => None, // UNSPEC, UDP, UNIX: no TCP client address to take
        _ => return Err("PROXY v2 header: bad command"),
    };
    Ok(Some(Header { source, len }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sa(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    #[test]
    fn v1_and_v2_round_trip_byte_for_byte() {
        let mut v1 = Vec::new();
        write_v1(&mut v1, sa("192.0.2.1:56324"), sa("10.0.0.5:6379"));
        assert_eq!(v1, b"PROXY TCP4 192.0.2.1 10.0.0.5 56324 6379\r\n");
        assert_eq!(parse(&v1).unwrap(), Some(Header { source: Some(sa("192.0.2.1:56324")), len: v1.len() }));
        let mut v6 = Vec::new();
        write_v1(&mut v6, sa("[2001:db8::1]:1000"), sa("10.0.0.5:80"));
        assert_eq!(v6, b"PROXY TCP6 2001:db8::1 ::ffff:10.0.0.5 1000 80\r\n");

        let mut v2 = Vec::new();
        write_v2(&mut v2, sa("192.0.2.1:56324"), sa("10.0.0.5:6379"));
        let mut want = V2_SIGNATURE.to_vec();
        want.extend_from_slice(&[0x21, 0x11, 0, 12, 192, 0, 2, 1, 10, 0, 0, 5, 0xDC, 0x04, 0x18, 0xEB]);
        assert_eq!(v2, want);
        assert_eq!(parse(&v2).unwrap(), Some(Header { source: Some(sa("192.0.2.1:56324")), len: 28 }));
        let mut v2_6 = Vec::new();
        write_v2(&mut v2_6, sa("[2001:db8::1]:1000"), sa("[2001:db8::2]:80"));
        assert_eq!(v2_6.len(), 16 + 36);
        assert_eq!(parse(&v2_6).unwrap().unwrap().source, Some(sa("[2001:db8::1]:1000")));
    }

    #[test]
    fn partial_and_bad_headers() {
        assert_eq!(parse(b"PROX").unwrap(), None);
        assert_eq!(parse(b"PROXY TCP4 1.2.3.4").unwrap(), None);
        assert_eq!(parse(&V2_SIGNATURE[..5]).unwrap(), None);
        assert_eq!(parse(b"PROXY UNKNOWN\r\nrest").unwrap(), Some(Header { source: None, len: 15 }));
        for bad in [
            &b"GET / HTTP/1.1\r\n"[..],
            b"PROXY TCP4 1.2.3.4 5.6.7.8 99999 80\r\n",
            b"PROXY TCP4 2001:db8::1 5.6.7.8 1 80\r\n",
            b"PROXY TCP5 1.2.3.4 5.6.7.8 1 80\r\n",
            b"PROXY TCP4 1.2.3.4 5.6.7.8 01 80\r\n",
        ] {
            assert!(parse(bad).is_err(), "{:?}", String::from_utf8_lossy(bad));
        }
        assert!(parse(&[b'P', b'R', b'O', b'X', b'Y', b' ', b'x'].repeat(20)).is_err(), "too long");
        let mut v2 = V2_SIGNATURE.to_vec();
        v2.extend_from_slice(&[0x13, 0x11, 0, 0]);
        assert!(parse(&v2).is_err(), "bad command");
    }
}
