//! The epoll fallback: a tokio current-thread runtime with a LocalSet, so the proxy's
//! `spawn_local` tasks run the same way as under tokio-uring.

use std::io;
use std::net::Shutdown;
use std::os::fd::{AsRawFd, RawFd};

use super::io::Stream;

pub struct Epoll;

pub fn block_on<F, Fut>(main: F) -> io::Result<()>
where
    F: FnOnce() -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    let local = tokio::task::LocalSet::new();
    local.block_on(&rt, main());
    Ok(())
}

impl Stream for tokio::net::TcpStream {
    async fn read(&self, mut buf: Vec<u8>) -> (io::Result<usize>, Vec<u8>) {
        if buf.capacity() == buf.len() {
            buf.reserve(4096);
        }
        loop {
            // Wait for readiness first: reading right after a write would mostly cost an
            // EAGAIN round trip.
            if let Err(e) = self.readable().await {
                return (Err(e), buf);
            }
            if let Some(r) = read_ready(self, &mut buf) {
                return (r, buf);
            }
        }
    }

    /// Readiness first, and only then a buffer.
    async fn read_fresh(&self, capacity: usize) -> (io::Result<usize>, Vec<u8>) {
        loop {
            if let Err(e) = self.readable().await {
                return (Err(e), Vec::new());
            }
            let mut buf = Vec::with_capacity(capacity.max(1));
            if let Some(r) = read_ready(self, &mut buf) {
                return (r, buf);
            }
        }
    }

    async fn write_all(&self, buf: Vec<u8>) -> (io::Result<()>, Vec<u8>) {
        let mut done = 0;
        while done < buf.len() {
            match self.try_write(&buf[done..]) {
                Ok(0) => return (Err(io::ErrorKind::WriteZero.into()), buf),
                Ok(n) => done += n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    if let Err(e) = self.writable().await {
                        return (Err(e), buf);
                    }
                }
                Err(e) => return (Err(e), buf),
            }
        }
        (Ok(()), buf)
    }

    fn shutdown(&self, how: Shutdown) {
        let _ = socket2::SockRef::from(self).shutdown(how);
    }

    fn fd(&self) -> RawFd {
        self.as_raw_fd()
    }

    async fn splice_in(&self, pipe: &super::io::Pipe, len: usize) -> Option<io::Result<usize>> {
        // The pipe is empty and `len` fits in it: EAGAIN can only mean the socket had nothing.
        splice_when_ready(self, tokio::io::Interest::READABLE, self.as_raw_fd(), pipe.write.as_raw_fd(), len).await
    }

    async fn splice_out(&self, pipe: &super::io::Pipe, len: usize) -> Option<io::Result<usize>> {
        // The pipe holds `len` bytes: EAGAIN can only mean the socket's buffer is full.
        splice_when_ready(self, tokio::io::Interest::WRITABLE, pipe.read.as_raw_fd(), self.as_raw_fd(), len).await
    }
}

/// Splices `len` bytes from `from` to `to` once `s` is ready for `interest`. EAGAIN is what
/// `try_io` needs to clear a stale readiness, after which it waits again.
async fn splice_when_ready(
    s: &tokio::net::TcpStream,
    interest: tokio::io::Interest,
    from: RawFd,
    to: RawFd,
    len: usize,
) -> Option<io::Result<usize>> {
    loop {
        if let Err(e) = s.ready(interest).await {
            return Some(Err(e));
        }
        match s.try_io(interest, || super::io::splice(from, to, len)) {
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
            r => return Some(r),
        }
    }
}

/// One read into the spare capacity of `buf` after readiness was reported. None: it was
/// stale (nothing to read), wait again.
fn read_ready(s: &tokio::net::TcpStream, buf: &mut Vec<u8>) -> Option<io::Result<usize>> {
    let spare = buf.capacity() - buf.len();
    match s.try_read_buf(buf) {
        Err(e) if e.kind() == io::ErrorKind::WouldBlock => None,
        Ok(n) if n > 0 && n < spare => {
            // A short read drained the socket (epoll is edge-triggered): forget the readiness
            // now, as tokio's own poll_read does, instead of learning it from an EAGAIN on the
            // next read.
            let _ = s.try_io(tokio::io::Interest::READABLE, || Err::<(), _>(io::ErrorKind::WouldBlock.into()));
            Some(Ok(n))
        }
        r => Some(r),
    }
}

super::io::tokio_io!(Epoll, tokio::net::TcpStream, tokio::net::TcpListener, |r| r);
