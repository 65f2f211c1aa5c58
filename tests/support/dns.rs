//! A DNS server on loopback (UDP and TCP on one port), written independently of the proxy's
//! resolver: answers A queries from a table the test changes while it runs, counts queries
//! per name, and can fail in the ways real servers do.

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, UdpSocket};
use std::sync::{Arc, Mutex};

#[derive(Clone, Debug)]
pub enum Answer {
    /// A records with this TTL.
    A(Vec<Ipv4Addr>, u32),
    /// A CNAME (TTL) to a name, and that name's A records (TTL) in the same reply.
    Cname(String, u32, Vec<Ipv4Addr>, u32),
    /// Over UDP only the TC bit; the records over TCP.
    Truncated(Vec<Ipv4Addr>, u32),
    ServFail,
    NxDomain,
}

#[derive(Default)]
struct Table {
    answers: HashMap<String, Answer>,
    /// Queries by (lower-case) name, any type, UDP and TCP.
    queries: HashMap<String, usize>,
    tcp: usize,
}

pub struct Dns {
    pub addr: SocketAddr,
    table: Arc<Mutex<Table>>,
}

impl Dns {
    pub fn start() -> Dns {
        // A UDP port whose TCP twin is free too (another test may hold it): try again if not.
        let (udp, tcp) = (0..100)
            .find_map(|_| {
                let udp = UdpSocket::bind("127.0.0.1:0").unwrap();
                let tcp = TcpListener::bind(udp.local_addr().unwrap()).ok()?;
                Some((udp, tcp))
            })
            .expect("a UDP and TCP port pair on loopback");
        let addr = udp.local_addr().unwrap();
        let table = Arc::new(Mutex::new(Table::default()));
        let t = table.clone();
        std::thread::spawn(move || {
            let mut buf = [0u8; 512];
            while let Ok((n, from)) = udp.recv_from(&mut buf) {
                if let Some(reply) = answer(&t, &buf[..n], false) {
                    let _ = udp.send_to(&reply, from);
                }
            }
        });
        let t = table.clone();
        std::thread::spawn(move || {
            for mut s in tcp.incoming().flatten() {
                let mut len = [0u8; 2];
                if s.read_exact(&mut len).is_err() {
                    continue;
                }
                let mut q = vec![0u8; u16::from_be_bytes(len) as usize];
                if s.read_exact(&mut q).is_err() {
                    continue;
                }
                t.lock().unwrap().tcp += 1;
                if let Some(reply) = answer(&t, &q, true) {
                    let mut framed = (reply.len() as u16).to_be_bytes().to_vec();
                    framed.extend_from_slice(&reply);
                    let _ = s.write_all(&framed);
                }
            }
        });
        Dns { addr, table }
    }

    pub fn set(&self, name: &str, answer: Answer) {
        self.table.lock().unwrap().answers.insert(name.to_ascii_lowercase(), answer);
    }

    /// Queries for `name` so far.
    pub fn queries(&self, name: &str) -> usize {
        self.table.lock().unwrap().queries.get(&name.to_ascii_lowercase()).copied().unwrap_or(0)
    }

    /// Queries that came over TCP.
    pub fn tcp_queries(&self) -> usize {
        self.table.lock().unwrap().tcp
    }
}

/// The reply to one query; None for what is not a query.
fn answer(table: &Mutex<Table>, q: &[u8], tcp: bool) -> Option<Vec<u8>> {
    if q.len() < 12 || q[2] & 0x80 != 0 {
        return None;
    }
    // The question: uncompressed labels, then type and class.
    let mut at = 12;
    let mut labels = Vec::new();
    while *q.get(at)? != 0 {
        let len = q[at] as usize;
        labels.push(String::from_utf8_lossy(q.get(at + 1..at + 1 + len)?).to_ascii_lowercase());
        at += 1 + len;
    }
    let question_end = at + 5;
    let qtype = u16::from_be_bytes([*q.get(at + 1)?, *q.get(at + 2)?]);
    let name = labels.join(".");
    let found = {
        let mut t = table.lock().unwrap();
        *t.queries.entry(name.clone()).or_default() += 1;
        t.answers.get(&name).cloned()
    };
    let mut out = q[..2].to_vec();
    let (rcode, truncated, records): (u8, bool, Vec<Vec<u8>>) = match found {
        None | Some(Answer::NxDomain) => (3, false, vec![]),
        Some(Answer::ServFail) => (2, false, vec![]),
        Some(_) if qtype != 1 => (0, false, vec![]),
        Some(Answer::A(ips, ttl)) => (0, false, ips.iter().map(|ip| a_record(&[0xc0, 12], ttl, *ip)).collect()),
        Some(Answer::Truncated(_, _)) if !tcp => (0, true, vec![]),
        Some(Answer::Truncated(ips, ttl)) => (0, false, ips.iter().map(|ip| a_record(&[0xc0, 12], ttl, *ip)).collect()),
        Some(Answer::Cname(target, cttl, ips, ttl)) => {
            let mut target_name = Vec::new();
            for l in target.split('.') {
                target_name.push(l.len() as u8);
                target_name.extend_from_slice(l.as_bytes());
            }
            target_name.push(0);
            let mut cname = vec![0xc0, 12, 0, 5, 0, 1];
            cname.extend_from_slice(&cttl.to_be_bytes());
            cname.extend_from_slice(&(target_name.len() as u16).to_be_bytes());
            cname.extend_from_slice(&target_name);
            let mut all = vec![cname];
            all.extend(ips.iter().map(|ip| a_record(&target_name, ttl, *ip)));
            (0, false, all)
        }
    };
    out.push(0x81 | if truncated { 0x02 } else { 0 });
    out.push(0x80 | rcode);
    out.extend_from_slice(&[0, 1]);
    out.extend_from_slice(&(records.len() as u16).to_be_bytes());
    out.extend_from_slice(&[0, 0, 0, 0]);
    out.extend_from_slice(q.get(12..question_end)?);
    for r in records {
        out.extend_from_slice(&r);
    }
    Some(out)
}

fn a_record(owner: &[u8], ttl: u32, ip: Ipv4Addr) -> Vec<u8> {
    let mut r = owner.to_vec();
    r.extend_from_slice(&[0, 1, 0, 1]);
    r.extend_from_slice(&ttl.to_be_bytes());
    r.extend_from_slice(&[0, 4]);
    r.extend_from_slice(&ip.octets());
    r
}
