//! tokio's `AsyncRead`/`AsyncWrite` over the owned-buffer [`Stream`] trait, written once, so
//! the h2 crate runs on every I/O backend (io_uring included) and over TLS alike. Reads go
//! through one reused buffer; writes are vectored (h2 hands over its frame buffer and its
//! data chunks together) and copied into one reused buffer per submission.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use crate::runtime::Stream;

type Op<T> = Pin<Box<dyn Future<Output = (io::Result<T>, Vec<u8>)>>>;

const READ_SIZE: usize = 32 * 1024;

pub struct IoBridge<S> {
    stream: Rc<S>,
    /// Server side only: watches the client's frames for control-frame floods.
    guard: Option<FloodGuard>,
    /// A GOAWAY to send before failing the connection.
    goaway: Option<Vec<u8>>,
    rbuf: Vec<u8>,
    rpos: usize,
    reading: Option<Op<usize>>,
    wbuf: Vec<u8>,
    writing: Option<Op<()>>,
}

impl<S: Stream> IoBridge<S> {
    /// A bridge whose first reads return `initial` (bytes already read from the stream).
    pub fn with_initial(stream: S, initial: Vec<u8>) -> Self {
        IoBridge {
            stream: Rc::new(stream),
            guard: None,
            goaway: None,
            rbuf: initial,
            rpos: 0,
            reading: None,
            wbuf: Vec::new(),
            writing: None,
        }
    }

    /// The stream, for deadlines and shutdown.
    pub fn stream(&self) -> &Rc<S> {
        &self.stream
    }

    /// Completes the write in flight, if any, putting its buffer back.
    fn poll_write_done(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let Some(op) = self.writing.as_mut() else { return Poll::Ready(Ok(())) };
        let (r, buf) = std::task::ready!(op.as_mut().poll(cx));
        self.writing = None;
        self.wbuf = buf;
        Poll::Ready(r)
    }
}

impl<S: Stream> AsyncRead for IoBridge<S> {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, out: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let this = &mut *self;
        if this.goaway.is_some() {
            return this.poll_goaway(cx);
        }
        loop {
            if this.rpos < this.rbuf.len() {
                let n = out.remaining().min(this.rbuf.len() - this.rpos);
                let chunk = &this.rbuf[this.rpos..this.rpos + n];
                if let Some(g) = this.guard.as_mut() {
                    if let Some(last_stream) = g.scan(chunk) {
                        // A flood: answer GOAWAY ENHANCE_YOUR_CALM ourselves, then fail.
                        let mut f = vec![0, 0, 8, 7, 0, 0, 0, 0, 0];
                        f.extend_from_slice(&last_stream.to_be_bytes());
                        f.extend_from_slice(&11u32.to_be_bytes());
                        this.goaway = Some(f);
                        g.tripped.set(true);
                        return this.poll_goaway(cx);
                    }
                }
                out.put_slice(chunk);
                this.rpos += n;
                return Poll::Ready(Ok(()));
            }
            if let Some(op) = this.reading.as_mut() {
                let (r, buf) = std::task::ready!(op.as_mut().poll(cx));
                this.reading = None;
                this.rbuf = buf;
                this.rpos = 0;
                match r {
                    Ok(0) => return Poll::Ready(Ok(())),
                    Ok(_) => continue,
                    Err(e) => return Poll::Ready(Err(e)),
                }
            }
            let mut buf = std::mem::take(&mut this.rbuf);
            buf.clear();
            buf.reserve(READ_SIZE);
            let s = this.stream.clone();
            this.reading = Some(Box::pin(async move { s.read(buf).await }));
        }
    }
}

impl<S: Stream> IoBridge<S> {
    /// The server side of an HTTP/2 connection: also guards against SETTINGS and PING
    /// floods. `tripped` turns true when the guard closed the connection.
    pub fn server(stream: S, initial: Vec<u8>, tripped: Rc<std::cell::Cell<bool>>) -> Self {
        let mut b = Self::with_initial(stream, initial);
        b.guard = Some(FloodGuard::new(tripped));
        b
    }

    /// Sends the pending GOAWAY (after any write in flight), then fails every read.
    fn poll_goaway(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let _ = std::task::ready!(self.poll_write_done(cx));
        if let Some(frame) = self.goaway.as_mut().filter(|f| !f.is_empty()) {
            let frame = std::mem::take(frame);
            let s = self.stream.clone();
            self.writing = Some(Box::pin(async move { s.write_all(frame).await }));
            let _ = std::task::ready!(self.poll_write_done(cx));
        }
        Poll::Ready(Err(io::Error::new(io::ErrorKind::ConnectionAborted, "HTTP/2 control frame flood")))
    }
}

/// Counts the client's SETTINGS and PING frames (not their acknowledgements) against a token
/// bucket: a burst of 1,000, refilled at 100 per second. Legitimate clients send a handful
/// (gRPC keepalives ping every few seconds at most); a flood makes the peer queue an
/// acknowledgement per frame.
struct FloodGuard {
    /// Bytes of the client preface still to pass.
    preface: usize,
    header: [u8; 9],
    have: usize,
    /// Payload bytes of the current frame still to pass.
    skip: usize,
    last_stream: u32,
    tokens: f64,
    at: std::time::Instant,
    tripped: Rc<std::cell::Cell<bool>>,
}

const FLOOD_BURST: f64 = 1000.0;
const FLOOD_RATE: f64 = 100.0;

impl FloodGuard {
    fn new(tripped: Rc<std::cell::Cell<bool>>) -> Self {
        FloodGuard {
            preface: super::h2::PREFACE.len(),
            header: [0; 9],
            have: 0,
            skip: 0,
            last_stream: 0,
            tokens: FLOOD_BURST,
            at: std::time::Instant::now(),
            tripped,
        }
    }

    /// Follows frame boundaries through `data`; `Some(last stream id)` on a flood.
    fn scan(&mut self, mut data: &[u8]) -> Option<u32> {
        while !data.is_empty() {
            if self.preface > 0 || self.skip > 0 {
                let left = if self.preface > 0 { &mut self.preface } else { &mut self.skip };
                let n = (*left).min(data.len());
                *left -= n;
                data = &data[n..];
                continue;
            }
            let n = (9 - self.have).min(data.len());
            self.header[self.have..self.have + n].copy_from_slice(&data[..n]);
            self.have += n;
            data = &data[n..];
            if self.have < 9 {
                break;
            }
            self.have = 0;
            let h = self.header;
            self.skip = (h[0] as usize) << 16 | (h[1] as usize) << 8 | h[2] as usize;
            let (kind, ack) = (h[3], h[4] & 1 == 1);
            if kind == 1 {
                self.last_stream = self.last_stream.max(u32::from_be_bytes([h[5] & 0x7f, h[6], h[7], h[8]]));
            }
            if (kind == 4 || kind == 6) && !ack {
                let now = std::time::Instant::now();
                self.tokens = (self.tokens + now.duration_since(self.at).as_secs_f64() * FLOOD_RATE).min(FLOOD_BURST);
                self.at = now;
                self.tokens -= 1.0;
                if self.tokens < 0.0 {
                    return Some(self.last_stream);
                }
            }
        }
        None
    }
}

impl<S: Stream> AsyncWrite for IoBridge<S> {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, data: &[u8]) -> Poll<io::Result<usize>> {
        self.poll_write_vectored(cx, &[io::IoSlice::new(data)])
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = &mut *self;
        std::task::ready!(this.poll_write_done(cx))?;
        let mut buf = std::mem::take(&mut this.wbuf);
        buf.clear();
        for b in bufs {
            buf.extend_from_slice(b);
        }
        let n = buf.len();
        if n == 0 {
            this.wbuf = buf;
            return Poll::Ready(Ok(0));
        }
        let s = this.stream.clone();
        this.writing = Some(Box::pin(async move { s.write_all(buf).await }));
        // Start it now (io_uring submits on the first poll); its result is collected by the
        // next write or flush.
        if let Poll::Ready(Err(e)) = this.poll_write_done(cx) {
            return Poll::Ready(Err(e));
        }
        Poll::Ready(Ok(n))
    }

    fn is_write_vectored(&self) -> bool {
        true
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.poll_write_done(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        std::task::ready!(self.poll_write_done(cx))?;
        self.stream.shutdown(std::net::Shutdown::Write);
        Poll::Ready(Ok(()))
    }
}
