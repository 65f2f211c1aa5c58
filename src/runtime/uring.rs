//! The io_uring backend on tokio-uring (`--io tokio-uring`), with the ring set up as measured
//! best on these machines:
//! COOP_TASKRUN + SINGLE_ISSUER (never DEFER_TASKRUN: tokio-uring's driver hangs with it).

use std::io;
use std::net::Shutdown;
use std::os::fd::{AsRawFd, RawFd};

use tokio_uring::buf::BoundedBuf;

use super::io::Stream;

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

super::io::tokio_io!(Uring, tokio_uring::net::TcpStream, tokio_uring::net::TcpListener, Ok);
