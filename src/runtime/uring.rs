//! The io_uring backend on tokio-uring (`--io tokio-uring`), with the ring set up as measured
//! best on these machines:
//! COOP_TASKRUN + SINGLE_ISSUER (never DEFER_TASKRUN: tokio-uring's driver hangs with it).

use std::io;
use std::net::{Shutdown, SocketAddr, TcpListener};
use std::os::fd::{AsRawFd, RawFd};

use tokio_uring::buf::BoundedBuf;

use super::io::{Io, Stream};

pub struct Uring;

fn ring_builder() -> io_uring::Builder {
    let mut b = io_uring::IoUring::builder();
    b.setup_coop_taskrun().setup_single_issuer();
    b
}

/// Whether this process may create a ring with our flags (or, on older kernels, without them).
pub fn probe() -> io::Result<()> {
    match ring_builder().build(8) {
        Ok(_) => Ok(()),
        Err(e) if e.raw_os_error() == Some(libc::EINVAL) => io_uring::IoUring::new(8).map(|_| ()),
        Err(e) => Err(e),
    }
}

pub fn block_on<F, Fut>(main: F) -> io::Result<()>
where
    F: FnOnce() -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    let mut b = tokio_uring::builder();
    b.entries(1024);
    if ring_builder().build(8).is_ok() {
        b.uring_builder(&ring_builder());
    }
    let rt = tokio_uring::Runtime::new(&b)?;
    rt.block_on(main());
    Ok(())
}

impl Stream for tokio_uring::net::TcpStream {
    async fn read(&self, mut buf: Vec<u8>) -> (io::Result<usize>, Vec<u8>) {
        if buf.capacity() == buf.len() {
            buf.reserve(4096); // a zero-length read would look like EOF
        }
        // tokio-uring reads at the start of a bare Vec: hand it the spare capacity only.
        let len = buf.len();
        let (r, slice) = tokio_uring::net::TcpStream::read(self, buf.slice(len..)).await;
        (r, slice.into_inner())
    }

    async fn write_all(&self, buf: Vec<u8>) -> (io::Result<()>, Vec<u8>) {
        tokio_uring::net::TcpStream::write_all(self, buf).await
    }

    fn shutdown(&self, how: Shutdown) {
        let _ = tokio_uring::net::TcpStream::shutdown(self, how);
    }

    fn fd(&self) -> RawFd {
        self.as_raw_fd()
    }
}

impl Io for Uring {
    type Stream = tokio_uring::net::TcpStream;
    type Listener = tokio_uring::net::TcpListener;

    fn listener(l: TcpListener) -> io::Result<Self::Listener> {
        Ok(tokio_uring::net::TcpListener::from_std(l))
    }

    async fn accept(l: &Self::Listener) -> io::Result<(Self::Stream, SocketAddr)> {
        // TCP_NODELAY is inherited from the listener (set in bind_reuseport).
        l.accept().await
    }

    async fn connect(addr: SocketAddr, timeout: std::time::Duration) -> io::Result<Self::Stream> {
        let s = super::io::tokio_connect(timeout, tokio_uring::net::TcpStream::connect(addr)).await?;
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
