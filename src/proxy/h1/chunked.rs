//! Chunked transfer coding (RFC 9112 §7.1), parsed strictly: hex sizes without overflow, CRLF
//! line ends only, bounded extensions and trailers. Used to find where a chunked message
//! ends (to pass it through unchanged) and, for HTTP/1.0 clients, to decode it.

#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum ChunkError {
    #[error("invalid chunk size")]
    BadSize,
    #[error("chunk size overflows")]
    Overflow,
    #[error("chunk line not terminated by CRLF")]
    BadLineEnd,
    #[error("chunk extension or trailer section too long")]
    TooLong,
    #[error("invalid byte in chunk extension or trailer")]
    BadByte,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    Size,
    SizeWs,
    Ext,
    SizeLf,
    Data,
    DataCr,
    DataLf,
    TrailerStart,
    Trailer,
    TrailerLf,
    EndLf,
    Done,
}

/// Incremental chunked-body parser; feed it bytes as they arrive.
#[derive(Debug)]
pub struct Chunked {
    state: State,
    size: u64,
    digits: u8,
    remaining: u64,
    line_bytes: usize,
    /// Payload bytes seen so far (for body-size limits).
    pub decoded: u64,
    /// The trailer section's field lines as received (each ending in CRLF), when kept.
    trailers: Option<Vec<u8>>,
}

const MAX_LINE: usize = 4096;
const MAX_TRAILERS: usize = 32 * 1024;

impl Default for Chunked {
    fn default() -> Self {
        Chunked { state: State::Size, size: 0, digits: 0, remaining: 0, line_bytes: 0, decoded: 0, trailers: None }
    }
}

impl Chunked {
    pub fn is_done(&self) -> bool {
        self.state == State::Done
    }

    /// Payload bytes seen so far plus those the chunk being read announces (its size as far as
    /// it is parsed, or what is left of it): a size line past the body limit is refused as
    /// soon as it arrives, before any of its data.
    pub fn announced(&self) -> u64 {
        let pending = match self.state {
            State::Size | State::SizeWs | State::Ext | State::SizeLf => self.size,
            State::Data => self.remaining,
            _ => 0,
        };
        self.decoded.saturating_add(pending)
    }

    /// Keeps the trailer section (up to the parser's bound) for [`Chunked::take_trailers`].
    pub fn keep_trailers(&mut self) {
        self.trailers = Some(Vec::new());
    }

    /// The kept trailer field lines, each ending in CRLF (empty if there were none).
    pub fn take_trailers(&mut self) -> Vec<u8> {
        self.trailers.take().unwrap_or_default()
    }

    /// Consumes bytes of `input` that belong to the message, calling `on_data` with each run
    /// of payload. Returns how many bytes were consumed: fewer than `input.len()` only when the
    /// message ended.
    pub fn feed(&mut self, input: &[u8], on_data: &mut impl FnMut(&[u8])) -> Result<usize, ChunkError> {
        let mut i = 0;
        while i < input.len() {
            let b = input[i];
            match self.state {
                State::Size => match hex(b) {
                    Some(d) => {
                        if self.size > (u64::MAX >> 4) || self.digits >= 16 {
                            return Err(ChunkError::Overflow);
                        }
                        self.size = (self.size << 4) | d as u64;
                        self.digits += 1;
                    }
                    None if self.digits == 0 => return Err(ChunkError::BadSize),
                    None => {
                        self.state = match b {
                            b'\r' => State::SizeLf,
                            b';' => State::Ext,
                            b' ' | b'\t' => State::SizeWs,
                            b'\n' => return Err(ChunkError::BadLineEnd),
                            _ => return Err(ChunkError::BadSize),
                        };
                        self.line_bytes = 0;
                    }
                },
                State::SizeWs => match b {
                    b' ' | b'\t' => {}
                    b';' => self.state = State::Ext,
                    b'\r' => self.state = State::SizeLf,
                    _ => return Err(ChunkError::BadSize),
                },
                State::Ext => {
                    self.line_bytes += 1;
                    if self.line_bytes > MAX_LINE {
                        return Err(ChunkError::TooLong);
                    }
                    match b {
                        b'\r' => self.state = State::SizeLf,
                        b'\n' => return Err(ChunkError::BadLineEnd),
                        b'\t' => {}
                        0..=0x1f | 0x7f => return Err(ChunkError::BadByte),
                        _ => {}
                    }
                }
                State::SizeLf => {
                    expect(b, b'\n')?;
                    if self.size == 0 {
                        self.state = State::TrailerStart;
                        self.line_bytes = 0;
                    } else {
                        self.remaining = self.size;
                        self.state = State::Data;
                    }
                    self.size = 0;
                    self.digits = 0;
                }
                State::Data => {
                    let n = (self.remaining.min((input.len() - i) as u64)) as usize;
                    on_data(&input[i..i + n]);
                    self.decoded += n as u64;
                    self.remaining -= n as u64;
                    if self.remaining == 0 {
                        self.state = State::DataCr;
                    }
                    i += n;
                    continue;
                }
                State::DataCr => {
                    expect(b, b'\r')?;
                    self.state = State::DataLf;
                }
                State::DataLf => {
                    expect(b, b'\n')?;
                    self.state = State::Size;
                }
                State::TrailerStart => {
                    self.state = if b == b'\r' { State::EndLf } else { State::Trailer };
                    if b != b'\r' {
                        self.check_trailer_byte(b)?;
                        self.keep(b);
                    }
                }
                State::Trailer => {
                    if b == b'\r' {
                        self.state = State::TrailerLf;
                    } else {
                        self.check_trailer_byte(b)?;
                    }
                    self.keep(b);
                }
                State::TrailerLf => {
                    expect(b, b'\n')?;
                    self.state = State::TrailerStart;
                    self.keep(b);
                }
                State::EndLf => {
                    expect(b, b'\n')?;
                    self.state = State::Done;
                    return Ok(i + 1);
                }
                State::Done => return Ok(i),
            }
            i += 1;
        }
        Ok(i)
    }

    fn keep(&mut self, b: u8) {
        if let Some(t) = &mut self.trailers {
            t.push(b);
        }
    }

    fn check_trailer_byte(&mut self, b: u8) -> Result<(), ChunkError> {
        self.line_bytes += 1;
        if self.line_bytes > MAX_TRAILERS {
            return Err(ChunkError::TooLong);
        }
        match b {
            b'\n' => Err(ChunkError::BadLineEnd),
            b'\t' => Ok(()),
            0..=0x1f | 0x7f => Err(ChunkError::BadByte),
            _ => Ok(()),
        }
    }
}

/// The CR or LF a line end requires (bare LF or CR is not accepted).
fn expect(b: u8, want: u8) -> Result<(), ChunkError> {
    if b == want {
        Ok(())
    } else {
        Err(ChunkError::BadLineEnd)
    }
}

/// The value of one hex digit.
pub(crate) fn hex(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode(input: &[u8]) -> Result<(usize, Vec<u8>, bool), ChunkError> {
        let mut c = Chunked::default();
        let mut out = Vec::new();
        let n = c.feed(input, &mut |d| out.extend_from_slice(d))?;
        Ok((n, out, c.is_done()))
    }

    #[test]
    fn valid_bodies() {
        #[rustfmt::skip]
        let rows: &[(&[u8], usize, &[u8], bool)] = &[
            (b"5\r\nhello\r\n0\r\n\r\n", 15, b"hello", true),
            (b"5\r\nhello\r\n0\r\n\r\nGET / HTTP/1.1", 15, b"hello", true),
            (b"A;name=val\r\n0123456789\r\n0\r\n\r\n", 29, b"0123456789", true),
            (b"3 ;x\r\nabc\r\n0\r\nTrailer: v\r\n\r\n", 28, b"abc", true),
            (b"5\r\nhel", 6, b"hel", false),
            (b"0\r\n\r\n", 5, b"", true),
        ];
        for (input, n, data, done) in rows {
            assert_eq!(decode(input), Ok((*n, data.to_vec(), *done)), "{:?}", String::from_utf8_lossy(input));
        }
    }

    #[test]
    fn byte_at_a_time_matches_whole() {
        let input = b"4\r\nwiki\r\n5;e\r\npedia\r\n0\r\nT: 1\r\n\r\n";
        let mut c = Chunked::default();
        let mut out = Vec::new();
        for b in input.iter() {
            assert_eq!(c.feed(std::slice::from_ref(b), &mut |d| out.extend_from_slice(d)), Ok(1));
        }
        assert!(c.is_done());
        assert_eq!(out, b"wikipedia");
    }

    #[test]
    fn trailers_are_kept_when_asked() {
        let input = b"3\r\nabc\r\n0\r\ngrpc-status: 0\r\nx-sum: 9\r\n\r\n";
        let mut c = Chunked::default();
        c.keep_trailers();
        let mut out = Vec::new();
        for part in input.chunks(5) {
            c.feed(part, &mut |d| out.extend_from_slice(d)).unwrap();
        }
        assert!(c.is_done());
        assert_eq!(c.take_trailers(), b"grpc-status: 0\r\nx-sum: 9\r\n");
        let mut plain = Chunked::default();
        plain.feed(input, &mut |_| {}).unwrap();
        assert!(plain.take_trailers().is_empty());
    }

    #[test]
    fn invalid_bodies() {
        #[rustfmt::skip]
        let by_error: &[(ChunkError, &[&[u8]])] = &[
            (ChunkError::BadSize, &[b"x\r\n", b"\r\n", b"-5\r\n", b"0x5\r\n", b"5 5\r\n"]),
            (ChunkError::BadLineEnd, &[b"5\nhello", b"5\r\nhelloX", b"5;a\nb\r\n", b"0\r\nX: a\nb\r\n\r\n"]),
            (ChunkError::Overflow, &[b"10000000000000000\r\n", b"fffffffffffffffff\r\n"]),
            (ChunkError::BadByte, &[b"5;a\0\r\n", b"0\r\nX: a\0\r\n\r\n"]),
        ];
        for (want, inputs) in by_error {
            for input in *inputs {
                assert_eq!(decode(input).map(|_| ()), Err(want.clone()), "{:?}", String::from_utf8_lossy(input));
            }
        }
    }
}
