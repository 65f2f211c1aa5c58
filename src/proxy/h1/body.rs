//! Where a message body ends, as bytes arrive: by length, by chunked framing, or at close.

use super::chunked::{ChunkError, Chunked};
use super::codec::Framing;

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

    /// Bytes of body seen so far exceed `limit` (0 = no limit)? Only chunked bodies need this:
    /// a Content-Length is checked before forwarding.
    pub fn over_limit(&self, limit: u64) -> bool {
        matches!(self, Body::Chunked(c) if limit != 0 && c.decoded > limit)
    }
}
