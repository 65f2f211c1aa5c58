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
    rbuf: Vec<u8>,
    rpos: usize,
    reading: Option<Op<usize>>,
    wbuf: Vec<u8>,
    writing: Option<Op<()>>,
}

impl<S: Stream> IoBridge<S> {
    /// A bridge whose first reads return `initial` (bytes already read from the stream).
    pub fn with_initial(stream: S, initial: Vec<u8>) -> Self {
        IoBridge { stream: Rc::new(stream), rbuf: initial, rpos: 0, reading: None, wbuf: Vec::new(), writing: None }
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
        loop {
            if this.rpos < this.rbuf.len() {
                let n = out.remaining().min(this.rbuf.len() - this.rpos);
                out.put_slice(&this.rbuf[this.rpos..this.rpos + n]);
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
