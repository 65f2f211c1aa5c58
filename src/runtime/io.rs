//! The owned-buffer I/O seam between the proxy and the backends. Buffers move into an
//! operation and come back with its result, which is what io_uring needs; the epoll backend
//! follows the same contract. Kept narrow on purpose: a thinner io_uring driver can replace
//! tokio-uring behind it without touching the proxy.

use std::future::Future;
use std::io;
use std::net::{Shutdown, SocketAddr, TcpListener};
use std::time::Duration;

use tokio::time::Instant;

/// A connected TCP stream. All operations take `&self`, so one task may read while another
/// writes (tunnels).
pub trait Stream: Sized + 'static {
    /// Reads into the spare capacity of `buf` (appending after `buf.len()`); `Ok(0)` is EOF.
    /// The caller reserves the capacity it wants filled.
    fn read(&self, buf: Vec<u8>) -> impl Future<Output = (io::Result<usize>, Vec<u8>)>;

    /// Writes all of `buf`, then hands it back unchanged.
    fn write_all(&self, buf: Vec<u8>) -> impl Future<Output = (io::Result<()>, Vec<u8>)>;

    /// Shuts the socket down. An operation in flight on it then completes, which is how a
    /// timed-out io_uring read is made to release its fd and buffer.
    fn shutdown(&self, how: Shutdown);
}

/// A backend: how to accept and connect.
pub trait Io: 'static {
    type Stream: Stream;
    type Listener;

    fn listener(l: TcpListener) -> io::Result<Self::Listener>;

    /// Never cancelled by the proxy: tokio-uring's accept is not cancellation-safe.
    fn accept(l: &Self::Listener) -> impl Future<Output = io::Result<(Self::Stream, SocketAddr)>>;

    fn connect(addr: SocketAddr) -> impl Future<Output = io::Result<Self::Stream>>;
}

pub fn timed_out(what: &'static str) -> io::Error {
    io::Error::new(io::ErrorKind::TimedOut, what)
}

/// [`Stream::read`] bounded by a deadline. On expiry the socket's read side is shut down (so
/// an io_uring read in flight completes and frees its buffer, while a last response such as
/// 408 can still be written) and the buffer is replaced by an empty one: the caller is
/// expected to close the connection.
pub async fn read_until<S: Stream>(s: &S, buf: Vec<u8>, deadline: Instant) -> (io::Result<usize>, Vec<u8>) {
    match tokio::time::timeout_at(deadline, s.read(buf)).await {
        Ok(r) => r,
        Err(_) => {
            s.shutdown(Shutdown::Read);
            (Err(timed_out("read timed out")), Vec::new())
        }
    }
}

/// [`Stream::write_all`] bounded by a timeout, with the same cancellation rule as [`read_until`].
pub async fn write_within<S: Stream>(s: &S, buf: Vec<u8>, limit: Duration) -> (io::Result<()>, Vec<u8>) {
    match tokio::time::timeout(limit, s.write_all(buf)).await {
        Ok(r) => r,
        Err(_) => {
            s.shutdown(Shutdown::Both);
            (Err(timed_out("write timed out")), Vec::new())
        }
    }
}

/// Connects within `limit`. A connect in flight owns only its socket, which the backend closes
/// when the operation completes, so dropping it on timeout leaks nothing for long.
pub async fn connect_within<I: Io>(addr: SocketAddr, limit: Duration) -> io::Result<I::Stream> {
    match tokio::time::timeout(limit, I::connect(addr)).await {
        Ok(r) => r,
        Err(_) => Err(timed_out("connect timed out")),
    }
}
