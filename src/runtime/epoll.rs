//! The epoll fallback: a tokio current-thread runtime with a LocalSet, so the proxy's
//! `spawn_local` tasks run the same way as under tokio-uring.

use std::io;
use std::net::{Shutdown, SocketAddr, TcpListener};
use std::os::fd::{AsRawFd, RawFd};

use super::io::{Io, Stream};

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
        use std::os::fd::AsRawFd as _;
        let (from, to) = (self.as_raw_fd(), pipe.write.as_raw_fd());
        loop {
            if let Err(e) = self.readable().await {
                return Some(Err(e));
            }
            // The pipe is empty and `len` fits in it: EAGAIN can only mean the socket had
            // nothing, which is what try_io needs to clear the readiness.
            match self.try_io(tokio::io::Interest::READABLE, || super::io::splice(from, to, len)) {
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                r => return Some(r),
            }
        }
    }

    async fn splice_out(&self, pipe: &super::io::Pipe, len: usize) -> Option<io::Result<usize>> {
        use std::os::fd::AsRawFd as _;
        let (from, to) = (pipe.read.as_raw_fd(), self.as_raw_fd());
        loop {
            if let Err(e) = self.writable().await {
                return Some(Err(e));
            }
            // The pipe holds `len` bytes: EAGAIN can only mean the socket's buffer is full.
            match self.try_io(tokio::io::Interest::WRITABLE, || super::io::splice(from, to, len)) {
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                r => return Some(r),
            }
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

impl Io for Epoll {
    type Stream = tokio::net::TcpStream;
    type Listener = tokio::net::TcpListener;

    fn listener(l: TcpListener) -> io::Result<Self::Listener> {
        tokio::net::TcpListener::from_std(l)
    }

    async fn accept(l: &Self::Listener) -> io::Result<(Self::Stream, SocketAddr)> {
        // TCP_NODELAY is inherited from the listener (set in bind_reuseport).
        l.accept().await
    }

    async fn connect(addr: SocketAddr, timeout: std::time::Duration) -> io::Result<Self::Stream> {
        let s = super::io::tokio_connect(timeout, tokio::net::TcpStream::connect(addr)).await?;
        let _ = s.set_nodelay(true);
        Ok(s)
    }

    fn spawn(fut: impl std::future::Future<Output = ()> + 'static) {
        tokio::task::spawn_local(fut);
    }

    async fn sleep(d: std::time::Duration) {
        tokio::time::sleep(d).await
    }
}
