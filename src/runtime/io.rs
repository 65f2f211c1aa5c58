//! The owned-buffer I/O seam between the proxy and the backends. Buffers move into an
//! operation and come back with its result, which is what io_uring needs; the epoll backend
//! follows the same contract. Kept narrow on purpose: three backends implement it (ringress's
//! own io_uring driver, tokio-uring and epoll), and the proxy does not know which one runs.

use std::future::Future;
use std::io;
use std::net::{Shutdown, SocketAddr, TcpListener};
use std::os::fd::RawFd;
use std::time::Duration;

use super::deadline::{Deadline, Deadlines, Watch};

/// A connected TCP stream. All operations take `&self`, so one task may read while another
/// writes (tunnels).
pub trait Stream: Sized + 'static {
    /// Reads into the spare capacity of `buf` (appending after `buf.len()`); `Ok(0)` is EOF.
    /// The caller reserves the capacity it wants filled.
    fn read(&self, buf: Vec<u8>) -> impl Future<Output = (io::Result<usize>, Vec<u8>)>;

    /// Waits for bytes without holding a buffer while it waits, then returns them in a new
    /// buffer with room for at least `capacity`; `Ok(0)` is EOF. This is how an idle
    /// keep-alive connection costs no read buffer. By default a buffer is allocated up front.
    fn read_fresh(&self, capacity: usize) -> impl Future<Output = (io::Result<usize>, Vec<u8>)> {
        self.read(Vec::with_capacity(capacity))
    }

    /// Writes all of `buf`, then hands it back unchanged.
    fn write_all(&self, buf: Vec<u8>) -> impl Future<Output = (io::Result<()>, Vec<u8>)>;

    /// Shuts the socket down. An operation in flight on it then completes, which is how a
    /// timed-out io_uring read is made to release its fd and buffer.
    fn shutdown(&self, how: Shutdown);

    /// The socket, for deadlines (see [`Clock`]).
    fn fd(&self) -> RawFd;

    /// The local address of the socket (where the client connected to).
    fn local_addr(&self) -> Option<SocketAddr> {
        // SAFETY: a stream owns its open fd for as long as it lives, and `&self` outlives
        // this call.
        let fd = unsafe { std::os::fd::BorrowedFd::borrow_raw(self.fd()) };
        super::local_addr(fd)
    }

    /// Moves up to `len` bytes from this socket into the (empty) `pipe` without copying them
    /// through user space; `Ok(0)` is EOF. None: this backend does not splice (the caller
    /// copies instead).
    fn splice_in(&self, pipe: &Pipe, len: usize) -> impl Future<Output = Option<io::Result<usize>>> {
        let _ = (pipe, len);
        async { None }
    }

    /// Moves up to `len` bytes from `pipe` (which holds at least that many) to this socket.
    fn splice_out(&self, pipe: &Pipe, len: usize) -> impl Future<Output = Option<io::Result<usize>>> {
        let _ = (pipe, len);
        async { None }
    }
}

/// A kernel pipe for splicing between two sockets, nonblocking at both ends. Only ever used
/// by splice(2) calls on the worker thread, never by an operation in flight.
pub struct Pipe {
    pub(super) read: std::os::fd::OwnedFd,
    pub(super) write: std::os::fd::OwnedFd,
}

/// What one pipe holds by default (Linux): a splice asks for at most this much.
pub const PIPE_CAPACITY: usize = 64 * 1024;

impl Pipe {
    pub fn new() -> io::Result<Pipe> {
        use std::os::fd::FromRawFd;
        let mut fds = [0 as libc::c_int; 2];
        // SAFETY: pipe2 writes two fds into the array it is given.
        if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_NONBLOCK | libc::O_CLOEXEC) } != 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: both fds were just created and are owned by nothing else.
        Ok(unsafe {
            Pipe { read: std::os::fd::OwnedFd::from_raw_fd(fds[0]), write: std::os::fd::OwnedFd::from_raw_fd(fds[1]) }
        })
    }
}

/// One nonblocking splice(2) between two fds (one of them a pipe).
pub(super) fn splice(from: RawFd, to: RawFd, len: usize) -> io::Result<usize> {
    // SAFETY: splice with null offsets only moves data between the two open fds.
    let n = unsafe {
        libc::splice(
            from,
            std::ptr::null_mut(),
            to,
            std::ptr::null_mut(),
            len,
            libc::SPLICE_F_MOVE | libc::SPLICE_F_NONBLOCK,
        )
    };
    if n < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(n as usize)
    }
}

/// A backend: how to accept and connect.
pub trait Io: 'static {
    type Stream: Stream;
    type Listener;

    fn listener(l: TcpListener) -> io::Result<Self::Listener>;

    /// Never cancelled by the proxy: tokio-uring's accept is not cancellation-safe.
    fn accept(l: &Self::Listener) -> impl Future<Output = io::Result<(Self::Stream, SocketAddr)>>;

    /// Connects, giving up after `timeout` (a `TimedOut` error).
    fn connect(addr: SocketAddr, timeout: Duration) -> impl Future<Output = io::Result<Self::Stream>>;

    /// Spawns a task on the current worker.
    fn spawn(fut: impl Future<Output = ()> + 'static);

    /// Completes after `d`.
    fn sleep(d: Duration) -> impl Future<Output = ()>;
}

pub fn timed_out(what: &'static str) -> io::Error {
    io::Error::new(io::ErrorKind::TimedOut, what)
}

/// Bounded I/O on one connection: operations armed on the connection's [`Watch`] in the
/// worker's [`Deadlines`]. On expiry the socket is shut down (read side for reads, so a last
/// response such as 408 can still be written), the operation completes, and the result is a
/// `TimedOut` error; the caller is expected to close the connection.
#[derive(Clone, Copy)]
pub struct Clock<'a> {
    pub deadlines: &'a Deadlines,
    pub watch: &'a Watch,
}

impl Clock<'_> {
    pub fn after(&self, d: Duration) -> Deadline {
        self.deadlines.after(d)
    }

    /// Runs `op` on the socket `fd` armed until `at`: on expiry the `how` side is shut down
    /// and the result is a `TimedOut` error naming `what`.
    async fn bounded<T>(
        &self,
        fd: RawFd,
        how: Shutdown,
        at: Deadline,
        what: &'static str,
        op: impl Future<Output = (io::Result<T>, Vec<u8>)>,
    ) -> (io::Result<T>, Vec<u8>) {
        let armed = self.deadlines.arm(self.watch, fd, how, at);
        let (r, buf) = op.await;
        drop(armed);
        if self.watch.expired() {
            return (Err(timed_out(what)), buf);
        }
        (r, buf)
    }

    pub async fn read<S: Stream>(&self, s: &S, buf: Vec<u8>, at: Deadline) -> (io::Result<usize>, Vec<u8>) {
        self.bounded(s.fd(), Shutdown::Read, at, "read timed out", s.read(buf)).await
    }

    /// [`Stream::read_fresh`] before `at`.
    pub async fn read_fresh<S: Stream>(&self, s: &S, capacity: usize, at: Deadline) -> (io::Result<usize>, Vec<u8>) {
        self.bounded(s.fd(), Shutdown::Read, at, "read timed out", s.read_fresh(capacity)).await
    }

    pub async fn read_for<S: Stream>(&self, s: &S, buf: Vec<u8>, d: Duration) -> (io::Result<usize>, Vec<u8>) {
        self.read(s, buf, self.after(d)).await
    }

    pub async fn write_for<S: Stream>(&self, s: &S, buf: Vec<u8>, d: Duration) -> (io::Result<()>, Vec<u8>) {
        self.bounded(s.fd(), Shutdown::Both, self.after(d), "write timed out", s.write_all(buf)).await
    }
}

/// The [`Io`] of a backend driven by tokio (epoll) or tokio-uring: the two differ only in their
/// socket types and in whether adopting a listener can fail (`$adopt` turns `from_std`'s result
/// into an `io::Result`).
macro_rules! tokio_io {
    ($backend:ty, $stream:ty, $listener:ty, $adopt:expr) => {
        impl super::io::Io for $backend {
            type Stream = $stream;
            type Listener = $listener;

            fn listener(l: std::net::TcpListener) -> std::io::Result<Self::Listener> {
                $adopt(<$listener>::from_std(l))
            }

            async fn accept(l: &Self::Listener) -> std::io::Result<(Self::Stream, std::net::SocketAddr)> {
                // TCP_NODELAY is inherited from the listener (set in bind_reuseport).
                l.accept().await
            }

            async fn connect(
                addr: std::net::SocketAddr,
                timeout: std::time::Duration,
            ) -> std::io::Result<Self::Stream> {
                let s = match tokio::time::timeout(timeout, <$stream>::connect(addr)).await {
                    Ok(r) => r?,
                    Err(_) => return Err(super::io::timed_out("connect timed out")),
                };
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
    };
}
pub(super) use tokio_io;
