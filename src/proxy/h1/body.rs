//! Where a message body ends, as bytes arrive: by length, by chunked framing, or at close.

use super::chunked::{ChunkError, Chunked};
use super::codec::{self, Framing};

/// A request body's progress, for `client-body-min-rate` ([`crate::snapshot::Settings::body_wait`]).
pub struct Pace {
    pub start: std::time::Instant,
    pub received: u64,
}

impl Pace {
    /// A body starting now.
    pub fn new() -> Pace {
        Pace { start: std::time::Instant::now(), received: 0 }
    }
}

impl Default for Pace {
    fn default() -> Self {
        Pace::new()
    }
}

#[derive(Debug)]
pub enum Body {
    Done,
    Length(u64),
    Chunked(Chunked),
    UntilClose,
}

impl Body {
    pub fn new(framing: Framing) -> Self {
        match framing {
            Framing::None | Framing::Length(0) => Body::Done,
            Framing::Length(n) => Body::Length(n),
            Framing::Chunked => Body::Chunked(Chunked::default()),
            Framing::UntilClose => Body::UntilClose,
        }
    }

    /// Keeps a chunked body's trailer section for [`Body::take_trailers`].
    pub fn keep_trailers(&mut self) {
        if let Body::Chunked(c) = self {
            c.keep_trailers();
        }
    }

    /// A chunked body's trailer field lines (each ending in CRLF), once it is done.
    pub fn take_trailers(&mut self) -> Vec<u8> {
        match self {
            Body::Chunked(c) => c.take_trailers(),
            _ => Vec::new(),
        }
    }

    pub fn is_done(&self) -> bool {
        match self {
            Body::Done => true,
            Body::Chunked(c) => c.is_done(),
            Body::Length(_) | Body::UntilClose => false,
        }
    }

    /// How many bytes of `data` belong to this body; payload (decoded when chunked) goes to
    /// `on_data`.
    pub fn consume(&mut self, data: &[u8], on_data: &mut impl FnMut(&[u8])) -> Result<usize, ChunkError> {
        let n = match self {
            Body::Done => 0,
            Body::Length(left) => {
                let n = (*left).min(data.len() as u64) as usize;
                on_data(&data[..n]);
                *left -= n as u64;
                if *left == 0 {
                    *self = Body::Done;
                }
                n
            }
            Body::Chunked(c) => c.feed(data, on_data)?,
            Body::UntilClose => {
                on_data(data);
                data.len()
            }
        };
        Ok(n)
    }

    /// Bytes of body seen or announced so far exceed `limit` (0 = no limit)? Only chunked
    /// bodies need this: a Content-Length is checked before forwarding.
    pub fn over_limit(&self, limit: u64) -> bool {
        matches!(self, Body::Chunked(c) if limit != 0 && c.announced() > limit)
    }

    pub fn is_chunked(&self) -> bool {
        matches!(self, Body::Chunked(_))
    }

    /// Consumes the body bytes of `data` and appends what the proxy sends on to `out`: a
    /// length-delimited body as it came; a chunked body framed anew by the proxy (its own
    /// size lines, no chunk extensions; the trailer fields that [`codec::may_trail`] only when
    /// [`Body::keep_trailers`] asked for them), so nothing of the peer's chunk framing crosses
    /// the proxy (RFC 9112 §7.1). Returns how many bytes of `data` the body took.
    pub fn forward(&mut self, data: &[u8], out: &mut Vec<u8>) -> Result<usize, ChunkError> {
        let Body::Chunked(c) = self else {
            let k = self.consume(data, &mut |_| {})?;
            out.extend_from_slice(&data[..k]);
            return Ok(k);
        };
        let was_done = c.is_done();
        let k = c.feed(data, &mut |d| write_chunk(out, d))?;
        if !was_done && c.is_done() {
            out.extend_from_slice(b"0\r\n");
            codec::write_trailer_fields(out, &c.take_trailers());
            out.extend_from_slice(b"\r\n");
        }
        Ok(k)
    }
}

/// One chunk of `d` in chunked framing (nothing for an empty run).
pub fn write_chunk(out: &mut Vec<u8>, d: &[u8]) {
    if d.is_empty() {
        return;
    }
    let mut size = [0u8; 16];
    let mut n = d.len();
    let mut i = size.len();
    while n > 0 || i == size.len() {
        i -= 1;
        size[i] = b"0123456789abcdef"[n & 15];
        n >>= 4;
    }
    out.extend_from_slice(&size[i..]);
    out.extend_from_slice(b"\r\n");
    out.extend_from_slice(d);
    out.extend_from_slice(b"\r\n");
}
