//! DNS messages (RFC 1035 §4): the one query the resolver sends (a name, A or AAAA, recursion
//! desired) and what it reads from the reply: the response code, the truncation bit, and the
//! addresses reached from the name through its CNAME chain, with the smallest TTL on the way.
//! A reply that does not echo our id and question is not ours and is ignored (RFC 5452 §9.1).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

pub const TYPE_A: u16 = 1;
pub const TYPE_CNAME: u16 = 5;
pub const TYPE_AAAA: u16 = 28;
const CLASS_IN: u16 = 1;

/// RCODEs (RFC 1035 §4.1.1).
pub const NOERROR: u8 = 0;
pub const NXDOMAIN: u8 = 3;

/// How many CNAMEs the resolver follows inside one reply.
const MAX_CHAIN: usize = 8;

#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum WireError {
    #[error("the name {0:?} cannot be sent (empty label or a label over 63 bytes, or over 253 bytes)")]
    BadName(String),
    #[error("a malformed reply ({0})")]
    Malformed(&'static str),
}

/// What a reply says about the question.
#[derive(Debug, PartialEq, Eq)]
pub struct Reply {
    pub rcode: u8,
    /// TC: the answer did not fit in the datagram; ask again over TCP (RFC 1035 §4.2.2).
    pub truncated: bool,
    pub addrs: Vec<IpAddr>,
    /// The smallest TTL of the records that led to `addrs` (the CNAMEs included), seconds.
    pub ttl: u32,
}

/// A query for `name` (absolute; a trailing dot is optional) of `qtype`, recursion desired.
pub fn query(id: u16, name: &str, qtype: u16) -> Result<Vec<u8>, WireError> {
    let mut out = Vec::with_capacity(18 + name.len());
    out.extend_from_slice(&id.to_be_bytes());
    out.extend_from_slice(&[0x01, 0x00]); // RD
    out.extend_from_slice(&[0, 1, 0, 0, 0, 0, 0, 0]); // QDCOUNT 1
    encode_name(&mut out, name)?;
    out.extend_from_slice(&qtype.to_be_bytes());
    out.extend_from_slice(&CLASS_IN.to_be_bytes());
    Ok(out)
}

fn encode_name(out: &mut Vec<u8>, name: &str) -> Result<(), WireError> {
    let bare = name.strip_suffix('.').unwrap_or(name);
    if bare.is_empty() || bare.len() > 253 {
        return Err(WireError::BadName(name.to_string()));
    }
    for label in bare.split('.') {
        if label.is_empty() || label.len() > 63 {
            return Err(WireError::BadName(name.to_string()));
        }
        out.push(label.len() as u8);
        out.extend_from_slice(label.as_bytes());
    }
    out.push(0);
    Ok(())
}

/// Reads a reply to [`query`]`(id, name, qtype)`. `Ok(None)`: not a reply to it.
pub fn parse(msg: &[u8], id: u16, name: &str, qtype: u16) -> Result<Option<Reply>, WireError> {
    if msg.len() < 12 {
        return Err(WireError::Malformed("shorter than a header"));
    }
    let flags = u16::from_be_bytes([msg[2], msg[3]]);
    let count = |i: usize| u16::from_be_bytes([msg[i], msg[i + 1]]) as usize;
    if u16::from_be_bytes([msg[0], msg[1]]) != id || flags & 0x8000 == 0 || count(4) != 1 {
        return Ok(None);
    }
    let mut at = 12;
    let qname = read_name(msg, &mut at)?;
    let (qt, qc) = (u16_at(msg, at)?, u16_at(msg, at + 2)?);
    at += 4;
    let asked = name.strip_suffix('.').unwrap_or(name);
    if !qname.eq_ignore_ascii_case(asked) || qt != qtype || qc != CLASS_IN {
        return Ok(None);
    }
    let rcode = (flags & 0x000f) as u8;
    let truncated = flags & 0x0200 != 0;
    // Every answer record: (owner, type, ttl, rdata start, rdata length).
    let mut records = Vec::with_capacity(count(6));
    for _ in 0..count(6) {
        let owner = read_name(msg, &mut at)?;
        let (rtype, class) = (u16_at(msg, at)?, u16_at(msg, at + 2)?);
        let ttl = u32::from_be_bytes(
            msg.get(at + 4..at + 8).ok_or(WireError::Malformed("cut record"))?.try_into().expect("4 bytes"),
        );
        let len = u16_at(msg, at + 8)? as usize;
        let start = at + 10;
        if msg.len() < start + len {
            return Err(WireError::Malformed("cut record data"));
        }
        at = start + len;
        if class == CLASS_IN {
            // RFC 2181 §8: a TTL with the top bit set is read as zero.
            records.push((owner, rtype, if ttl > i32::MAX as u32 { 0 } else { ttl }, start, len));
        }
    }
    // Follow the chain from the question's name (RFC 1034 §3.6.2).
    let mut current = qname;
    let mut ttl = u32::MAX;
    let mut addrs = Vec::new();
    for _ in 0..=MAX_CHAIN {
        for (_, rtype, rttl, start, len) in records.iter().filter(|r| r.0.eq_ignore_ascii_case(&current)) {
            let data = &msg[*start..*start + *len];
            let ip = match (*rtype, data.len()) {
                (TYPE_A, 4) if qtype == TYPE_A => IpAddr::V4(Ipv4Addr::from(<[u8; 4]>::try_from(data).expect("4"))),
                (TYPE_AAAA, 16) if qtype == TYPE_AAAA => {
                    IpAddr::V6(Ipv6Addr::from(<[u8; 16]>::try_from(data).expect("16")))
                }
                _ => continue,
            };
            addrs.push(ip);
            ttl = ttl.min(*rttl);
        }
        if !addrs.is_empty() {
            break;
        }
        let Some((_, _, rttl, start, _)) =
            records.iter().find(|r| r.1 == TYPE_CNAME && r.0.eq_ignore_ascii_case(&current))
        else {
            break;
        };
        let mut p = *start;
        current = read_name(msg, &mut p)?;
        ttl = ttl.min(*rttl);
    }
    if addrs.is_empty() {
        ttl = 0;
    }
    Ok(Some(Reply { rcode, truncated, addrs, ttl }))
}

fn u16_at(msg: &[u8], at: usize) -> Result<u16, WireError> {
    let b = msg.get(at..at + 2).ok_or(WireError::Malformed("cut field"))?;
    Ok(u16::from_be_bytes([b[0], b[1]]))
}

/// A (possibly compressed, RFC 1035 §4.1.4) name at `*at`, dotted, no trailing dot; `*at`
/// moves past it. Pointers must point backwards, so a loop cannot be followed.
fn read_name(msg: &[u8], at: &mut usize) -> Result<String, WireError> {
    let mut name = String::new();
    let mut pos = *at;
    let mut jumped = false;
    loop {
        let len = *msg.get(pos).ok_or(WireError::Malformed("cut name"))? as usize;
        match len & 0xc0 {
            0xc0 => {
                let target = u16_at(msg, pos)? as usize & 0x3fff;
                if target >= pos {
                    return Err(WireError::Malformed("a name pointer that does not point back"));
                }
                if !jumped {
                    *at = pos + 2;
                    jumped = true;
                }
                pos = target;
            }
            0x00 if len == 0 => {
                if !jumped {
                    *at = pos + 1;
                }
                return Ok(name);
            }
            0x00 => {
                let label = msg.get(pos + 1..pos + 1 + len).ok_or(WireError::Malformed("cut label"))?;
                if !name.is_empty() {
                    name.push('.');
                }
                name.extend(label.iter().map(|&c| if c.is_ascii_graphic() { c as char } else { '?' }));
                if name.len() > 255 {
                    return Err(WireError::Malformed("a name over 255 bytes"));
                }
                pos += 1 + len;
            }
            _ => return Err(WireError::Malformed("a reserved label type")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A reply to `q` carrying `answers` (already encoded records) with `rcode`.
    fn reply(q: &[u8], rcode: u8, answers: &[Vec<u8>]) -> Vec<u8> {
        let mut m = q.to_vec();
        m[2] = 0x81; // QR, RD
        m[3] = 0x80 | rcode; // RA
        m[6..8].copy_from_slice(&(answers.len() as u16).to_be_bytes());
        for a in answers {
            m.extend_from_slice(a);
        }
        m
    }

    /// A record owned by the question's name (a pointer to offset 12) or by `owner`.
    fn record(owner: Option<&str>, rtype: u16, ttl: u32, data: &[u8]) -> Vec<u8> {
        let mut r = Vec::new();
        match owner {
            None => r.extend_from_slice(&[0xc0, 12]),
            Some(o) => encode_name(&mut r, o).unwrap(),
        }
        r.extend_from_slice(&rtype.to_be_bytes());
        r.extend_from_slice(&CLASS_IN.to_be_bytes());
        r.extend_from_slice(&ttl.to_be_bytes());
        r.extend_from_slice(&(data.len() as u16).to_be_bytes());
        r.extend_from_slice(data);
        r
    }

    fn name(n: &str) -> Vec<u8> {
        let mut v = Vec::new();
        encode_name(&mut v, n).unwrap();
        v
    }

    #[test]
    fn a_records_and_the_smallest_ttl() {
        let q = query(7, "api.example.com.", TYPE_A).unwrap();
        let m =
            reply(&q, NOERROR, &[record(None, TYPE_A, 30, &[192, 0, 2, 1]), record(None, TYPE_A, 20, &[192, 0, 2, 2])]);
        let r = parse(&m, 7, "api.example.com", TYPE_A).unwrap().unwrap();
        assert_eq!(r.addrs, vec![IpAddr::from([192, 0, 2, 1]), IpAddr::from([192, 0, 2, 2])]);
        assert_eq!((r.ttl, r.rcode, r.truncated), (20, NOERROR, false));
    }

    #[test]
    fn cname_chains_are_followed_and_their_ttl_counts() {
        let q = query(9, "www.example.com", TYPE_AAAA).unwrap();
        let m = reply(
            &q,
            NOERROR,
            &[
                record(None, TYPE_CNAME, 5, &name("edge.example.net")),
                record(
                    Some("edge.example.net"),
                    TYPE_AAAA,
                    300,
                    &[0x20, 1, 0xd, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1],
                ),
                // Not on the chain: ignored.
                record(
                    Some("other.example.net"),
                    TYPE_AAAA,
                    1,
                    &[0x20, 1, 0xd, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2],
                ),
            ],
        );
        let r = parse(&m, 9, "www.example.com", TYPE_AAAA).unwrap().unwrap();
        assert_eq!(r.addrs, vec!["2001:db8::1".parse::<IpAddr>().unwrap()]);
        assert_eq!(r.ttl, 5);
    }

    #[test]
    fn replies_to_other_questions_are_not_ours() {
        let q = query(1, "a.example.com", TYPE_A).unwrap();
        let m = reply(&q, NOERROR, &[record(None, TYPE_A, 30, &[192, 0, 2, 1])]);
        assert_eq!(parse(&m, 2, "a.example.com", TYPE_A), Ok(None), "another id");
        assert_eq!(parse(&m, 1, "b.example.com", TYPE_A), Ok(None), "another name");
        assert_eq!(parse(&m, 1, "a.example.com", TYPE_AAAA), Ok(None), "another type");
        assert_eq!(parse(&q, 1, "a.example.com", TYPE_A), Ok(None), "a query, not a reply");
        let nx = parse(&reply(&q, NXDOMAIN, &[]), 1, "A.Example.com", TYPE_A).unwrap().unwrap();
        assert_eq!((nx.rcode, nx.addrs.len()), (NXDOMAIN, 0));
    }

    #[test]
    fn hostile_replies_are_errors_not_panics() {
        let q = query(3, "a.example.com", TYPE_A).unwrap();
        let good = reply(&q, NOERROR, &[record(None, TYPE_A, 30, &[192, 0, 2, 1])]);
        for cut in 0..good.len() {
            let _ = parse(&good[..cut], 3, "a.example.com", TYPE_A);
        }
        // A pointer to itself (a loop) in the answer's owner.
        let mut looped = reply(&q, NOERROR, &[]);
        looped[7] = 1;
        let here = looped.len() as u8;
        looped.extend_from_slice(&[0xc0, here]);
        assert!(parse(&looped, 3, "a.example.com", TYPE_A).is_err());
        // A CNAME loop ends with no address rather than spinning.
        let m = reply(
            &q,
            NOERROR,
            &[
                record(None, TYPE_CNAME, 5, &name("b.example.com")),
                record(Some("b.example.com"), TYPE_CNAME, 5, &name("a.example.com")),
            ],
        );
        assert!(parse(&m, 3, "a.example.com", TYPE_A).unwrap().unwrap().addrs.is_empty());
        assert!(matches!(query(1, "a..b", TYPE_A), Err(WireError::BadName(_))));
    }
}
