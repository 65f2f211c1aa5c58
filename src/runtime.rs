//! Workers: CPU pinning, the io_uring and epoll backends, and the owned-buffer I/O trait the
//! proxy is written against, and the process's signals. Runs on the worker threads; all
//! `unsafe` of the crate lives here.

mod affinity;
pub(crate) mod deadline;
mod epoll;
pub mod io;
mod ring;
mod signals;
mod uring;

use std::net::{SocketAddr, TcpListener};
use std::time::Duration;

pub use affinity::{allowed_cpus, pin_to_cpu};
pub use epoll::Epoll;
pub use io::{Io, Stream};
pub use ring::Ring;
pub use signals::Signals;
pub use uring::Uring;

/// Which I/O backend the workers run.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum IoMode {
    /// io_uring when the kernel allows it, epoll otherwise.
    Auto,
    /// ringress's own io_uring driver.
    Uring,
    Epoll,
    /// io_uring through tokio-uring (kept for comparison).
    TokioUring,
}

/// The backend actually chosen at start-up.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    Uring,
    Epoll,
    TokioUring,
}

impl Backend {
    pub fn name(self) -> &'static str {
        match self {
            Backend::Uring => "io_uring",
            Backend::Epoll => "epoll",
            Backend::TokioUring => "tokio-uring",
        }
    }
}

/// Resolves `--io`: `auto` probes io_uring once and falls back to epoll when the kernel or a
/// seccomp profile refuses it (EPERM, ENOSYS, EACCES, `kernel.io_uring_disabled`).
pub fn choose_backend(mode: IoMode) -> Result<Backend, String> {
    match mode {
        IoMode::Epoll => Ok(Backend::Epoll),
        IoMode::Uring => {
            ring::probe().map(|_| Backend::Uring).map_err(|e| format!("--io uring: io_uring unavailable: {e}"))
        }
        IoMode::TokioUring => uring::probe()
            .map(|_| Backend::TokioUring)
            .map_err(|e| format!("--io tokio-uring: io_uring unavailable: {e}")),
        IoMode::Auto => match ring::probe() {
            Ok(()) => Ok(Backend::Uring),
            Err(e) => {
                tracing::warn!(error = %e, "io_uring unavailable; falling back to epoll");
                Ok(Backend::Epoll)
            }
        },
    }
}

fn set_defer_accept(s: &socket2::Socket, secs: libc::c_int) -> std::io::Result<()> {
    use std::os::fd::AsRawFd;
    // SAFETY: setsockopt reads `size_of::<c_int>()` bytes from a valid c_int on the stack.
    let rc = unsafe {
        libc::setsockopt(
            s.as_raw_fd(),
            libc::IPPROTO_TCP,
            libc::TCP_DEFER_ACCEPT,
            (&secs as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

/// Binds `n` SO_REUSEPORT listeners on `addr`. Port 0 picks a free port once; every listener
/// shares it. Accepts are deferred until the client sends data, for up to `defer_accept`
/// (the header timeout is the natural value; zero: not deferred, for protocols where the
/// server speaks first).
///
/// A fixed port that another process already listens on is refused (`AddrInUse`): SO_REUSEPORT
/// would otherwise let two proxies split the traffic silently.
pub fn bind_reuseport(addr: SocketAddr, n: usize, defer_accept: Duration) -> std::io::Result<Vec<TcpListener>> {
    use socket2::{Domain, Protocol, Socket, Type};
    if addr.port() != 0 {
        // Without SO_REUSEPORT, this bind fails while any socket listens on the port (TIME_WAIT
        // leftovers do not count, thanks to SO_REUSEADDR). Closed again before ours bind.
        let probe = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
        probe.set_reuse_address(true)?;
        if let Err(e) = probe.bind(&addr.into()) {
            let why = format!("{addr}: another process already listens on this port ({e})");
            return Err(std::io::Error::new(e.kind(), why));
        }
    }
    let mut addr = addr;
    let mut out = Vec::with_capacity(n);
    for _ in 0..n.max(1) {
        let s = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
        s.set_reuse_address(true)?;
        s.set_reuse_port(true)?;
        s.set_nonblocking(true)?;
        s.set_tcp_nodelay(true)?;
        // HTTP clients speak first: complete accepts only once request bytes are here, so
        // the first read needs no wake-up of its own, and connections that never send
        // anything cost no fd (the kernel drops them after the timeout).
        if !defer_accept.is_zero() {
            set_defer_accept(&s, defer_accept.as_secs().clamp(1, 3600) as libc::c_int)?;
        }
        s.bind(&addr.into())?;
        s.listen(4096)?;
        let l: TcpListener = s.into();
        addr = l.local_addr()?;
        out.push(l);
    }
    Ok(out)
}

/// Runs `main` on the current thread under `backend`'s runtime, and returns when it does.
pub fn block_on<F, Fut>(backend: Backend, main: F) -> std::io::Result<()>
where
    F: FnOnce() -> Fut,
    Fut: std::future::Future<Output = ()> + 'static,
{
    match backend {
        Backend::Uring => ring::block_on(main),
        Backend::TokioUring => uring::block_on(main),
        Backend::Epoll => epoll::block_on(main),
    }
}

/// Shuts down a socket by fd. Only [`deadline::Deadlines`] calls it, for an fd whose watch is
/// armed, i.e. while the operation (and so the socket) it was armed for is still alive.
fn shutdown_fd(fd: std::os::fd::RawFd, how: std::net::Shutdown) {
    let how = match how {
        std::net::Shutdown::Read => libc::SHUT_RD,
        std::net::Shutdown::Write => libc::SHUT_WR,
        std::net::Shutdown::Both => libc::SHUT_RDWR,
    };
    // SAFETY: shutdown(2) on an fd has no memory effects; the caller guarantees the fd is the
    // open socket the deadline was armed for (the guard disarms before the socket can close).
    unsafe { libc::shutdown(fd, how) };
}

/// The local address of a connected socket (where the client connected to).
pub fn local_addr(fd: std::os::fd::BorrowedFd<'_>) -> Option<std::net::SocketAddr> {
    socket2::SockRef::from(&fd).local_addr().ok()?.as_socket()
}

/// Stops a listening socket (a drain): a pending accept fails, and nothing new is accepted.
/// The caller guarantees the listener is still open.
pub fn stop_listening(fd: std::os::fd::RawFd) {
    shutdown_fd(fd, std::net::Shutdown::Read);
}
