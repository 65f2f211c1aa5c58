//! Compressing response bodies as they stream (`use-gzip`, `enable-brotli`): the encoder both
//! downstream protocols feed, and the response fields compression changes. Which responses
//! are compressed is [`crate::snapshot::compression`]'s rule.
//!
//! Nothing is buffered beyond what the encoder holds: each piece of the upstream body is
//! compressed as it arrives, and flushed (a sync flush, so the client can decode it) when the
//! upstream has nothing more to give at that moment, so slow streams are not held back.

use std::io::Write as _;
use std::sync::atomic::{AtomicUsize, Ordering};

use crate::snapshot::compression::{Choice, Coding};

/// Encoders alive in the process at most: each holds its window and tables (about 300 KiB
/// for gzip, 1 MiB for brotli at level 4 with a 512 KiB window); past this, responses go
/// uncompressed rather than grow memory without bound.
const MAX_ENCODERS: usize = 512;

static LIVE: AtomicUsize = AtomicUsize::new(0);

/// Brotli's window (log2 of its size): 512 KiB, ngx_brotli's default.
const BROTLI_WINDOW: u32 = 19;

/// A streaming compressor for one response body.
pub(crate) struct Encoder {
    inner: Inner,
}

enum Inner {
    Gzip(Box<flate2::write::GzEncoder<Vec<u8>>>),
    /// None once finished.
    Brotli(Option<Box<brotli::CompressorWriter<Vec<u8>>>>),
}

impl Encoder {
    /// An encoder for `coding` at `level`, or None when [`MAX_ENCODERS`] are alive.
    pub(crate) fn new((coding, level): (Coding, u32)) -> Option<Encoder> {
        if LIVE.fetch_add(1, Ordering::Relaxed) >= MAX_ENCODERS {
            LIVE.fetch_sub(1, Ordering::Relaxed);
            return None;
        }
        let inner = match coding {
            Coding::Gzip => Inner::Gzip(Box::new(flate2::write::GzEncoder::new(
                Vec::with_capacity(16 * 1024),
                flate2::Compression::new(level),
            ))),
            Coding::Brotli => Inner::Brotli(Some(Box::new(brotli::CompressorWriter::new(
                Vec::with_capacity(16 * 1024),
                16 * 1024,
                level,
                BROTLI_WINDOW,
            )))),
        };
        Some(Encoder { inner })
    }

    /// Compresses `input`; `flush`: everything so far becomes decodable. Returns the
    /// compressed bytes made (possibly none).
    pub(crate) fn push(&mut self, input: &[u8], flush: bool) -> Vec<u8> {
        // Writing into a Vec cannot fail.
        let _ = match &mut self.inner {
            Inner::Gzip(g) => g.write_all(input).and_then(|()| if flush { g.flush() } else { Ok(()) }),
            Inner::Brotli(Some(b)) => b.write_all(input).and_then(|()| if flush { b.flush() } else { Ok(()) }),
            Inner::Brotli(None) => Ok(()),
        };
        self.take()
    }

    /// Ends the stream: the last compressed bytes.
    pub(crate) fn finish(&mut self) -> Vec<u8> {
        let _ = match &mut self.inner {
            Inner::Gzip(g) => g.try_finish(),
            // brotli's writer finishes the stream when it is taken apart.
            Inner::Brotli(b) => return b.take().map(|b| b.into_inner()).unwrap_or_default(),
        };
        self.take()
    }

    fn take(&mut self) -> Vec<u8> {
        let out = match &mut self.inner {
            Inner::Gzip(g) => g.get_mut(),
            Inner::Brotli(Some(b)) => b.get_mut(),
            Inner::Brotli(None) => return Vec::new(),
        };
        std::mem::replace(out, Vec::with_capacity(out.capacity().min(64 * 1024)))
    }
}

impl Drop for Encoder {
    fn drop(&mut self) {
        LIVE.fetch_sub(1, Ordering::Relaxed);
    }
}

/// The response fields of an HTTP/2 response `choice` compresses (Content-Encoding set,
/// Content-Length gone, the ETag weak) or marks as varying; the encoder, when one is to be
/// used (None: the body goes as it is, also when the process has no encoder to spare).
pub(crate) fn h2_fields(headers: &mut http::HeaderMap, choice: Choice) -> Option<Encoder> {
    use http::header::{CONTENT_ENCODING, CONTENT_LENGTH, ETAG, VARY};
    if choice.vary {
        headers.append(VARY, http::HeaderValue::from_static("Accept-Encoding"));
    }
    let (coding, level) = choice.coding?;
    let encoder = Encoder::new((coding, level))?;
    headers.remove(CONTENT_LENGTH);
    headers.insert(CONTENT_ENCODING, http::HeaderValue::from_static(coding.token()));
    if let Some(weak) = headers.get(ETAG).and_then(|v| weak_etag(v.as_bytes())) {
        if let Ok(v) = http::HeaderValue::from_bytes(&weak) {
            headers.insert(ETAG, v);
        }
    }
    Some(encoder)
}

/// A strong ETag made weak (`W/"x"`), as nginx does for a compressed response: the bytes
/// differ from the entity's, its meaning does not. None: already weak.
pub(crate) fn weak_etag(v: &[u8]) -> Option<Vec<u8>> {
    (!v.starts_with(b"W/")).then(|| [&b"W/"[..], v].concat())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read as _;

    fn text(n: usize) -> Vec<u8> {
        (0..n).map(|i| b"the quick brown fox jumps over the lazy dog\n"[i % 44]).collect()
    }

    #[test]
    fn gzip_and_brotli_stream_and_decode_with_flushes() {
        let body = text(200_000);
        for coding in [Coding::Gzip, Coding::Brotli] {
            let mut e = Encoder::new((coding, 5)).unwrap();
            let mut out = Vec::new();
            for (i, piece) in body.chunks(7_000).enumerate() {
                let flushed = e.push(piece, i % 3 == 0);
                if i % 3 == 0 {
                    assert!(!flushed.is_empty(), "{coding:?}: a flush gives bytes");
                }
                out.extend_from_slice(&flushed);
            }
            out.extend_from_slice(&e.finish());
            assert!(out.len() < body.len() / 10, "{coding:?}: {}", out.len());
            let mut back = Vec::new();
            match coding {
                Coding::Gzip => flate2::read::GzDecoder::new(&out[..]).read_to_end(&mut back).unwrap(),
                Coding::Brotli => brotli::Decompressor::new(&out[..], 4096).read_to_end(&mut back).unwrap(),
            };
            assert_eq!(back, body, "{coding:?}");
        }
    }

    #[test]
    fn encoders_are_bounded_per_process() {
        let before = LIVE.load(Ordering::Relaxed);
        let held: Vec<Encoder> = (0..MAX_ENCODERS - before).filter_map(|_| Encoder::new((Coding::Gzip, 1))).collect();
        assert!(Encoder::new((Coding::Gzip, 1)).is_none());
        drop(held);
        assert!(Encoder::new((Coding::Gzip, 1)).is_some());
        assert_eq!(weak_etag(b"\"a\"").as_deref(), Some(&b"W/\"a\""[..]));
        assert_eq!(weak_etag(b"W/\"a\""), None);
    }
}
