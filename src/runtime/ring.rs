//! The io_uring backend: a thin driver on the `io-uring` crate with its own single-threaded
//! executor. The ring is set up with SINGLE_ISSUER + DEFER_TASKRUN (completions are processed
//! only when the worker asks, in the same `io_uring_enter` that submits and waits), so there is
//! no epoll indirection, no per-completion wake-up task and no cross-thread signalling.
//! Measured on these machines, tokio-uring's indirections were the cost that kept io_uring
//! from paying off (`--io tokio-uring` keeps it selectable for comparison).
//!
//! Ownership rules that make it sound: an operation's buffers, socket address and fd handle
//! live in its [`Op`] until the completion arrives; if the `Op` is dropped first, they move
//! into its slot and are freed when the kernel is done with them. A socket's fd is closed
//! only when its stream and every operation on it are gone, and a stream dropped with
//! operations in flight shuts its socket down first, so those operations complete.

mod executor;

use std::any::Any;
use std::cell::RefCell;
use std::future::Future;
use std::io;
use std::net::{Shutdown, SocketAddr, TcpListener};
use std::os::fd::{AsRawFd, IntoRawFd, RawFd};
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use io_uring::{opcode, squeue, types, IoUring};

pub use executor::spawn;
use executor::Executor;

use super::io::{Io, Pipe, Stream};

/// IORING_ENTER_GETEVENTS (include/uapi/linux/io_uring.h).
const ENTER_GETEVENTS: u32 = 1;

/// Marks the completion of a linked timeout, which nobody waits for.
const IGNORED: u64 = u64::MAX;

/// One operation slot.
enum Slot {
    Free,
    Pending(Option<Waker>),
    /// The result and the completion's flags (which name a provided buffer, if one was used).
    Done(i32, u32),
    /// The `Op` was dropped; what the kernel may still touch is kept here until completion.
    Abandoned(#[allow(dead_code)] Box<dyn Any>),
}

/// The ring and its operation slots. One per worker thread.
pub(super) struct Driver {
    ring: RefCell<IoUring>,
    slots: RefCell<Vec<Slot>>,
    free: RefCell<Vec<usize>>,
    /// Read buffers the kernel picks from when bytes arrive (None: the kernel cannot).
    pool: Option<Pool>,
}

thread_local! {
    static DRIVER: RefCell<Option<Rc<Driver>>> = const { RefCell::new(None) };
}

fn driver() -> Rc<Driver> {
    DRIVER.with(|d| d.borrow().clone()).expect("ring I/O used outside a ring worker")
}

fn ring_builder(defer: bool) -> io_uring::Builder {
    let mut b = IoUring::builder();
    b.setup_coop_taskrun().setup_single_issuer();
    if defer {
        b.setup_defer_taskrun();
    }
    b
}

/// Whether this process may create a ring (EPERM under container seccomp profiles, ENOSYS or
/// EPERM with `kernel.io_uring_disabled`).
pub fn probe() -> io::Result<()> {
    match ring_builder(true).build(8) {
        Ok(_) => Ok(()),
        Err(e) if e.raw_os_error() == Some(libc::EINVAL) => IoUring::new(8).map(|_| ()),
        Err(e) => Err(e),
    }
}

impl Driver {
    fn new() -> io::Result<Driver> {
        // DEFER_TASKRUN needs 6.1; fall back to the older flags, then to none.
        let ring = match ring_builder(true).build(4096) {
            Ok(r) => r,
            Err(e) if e.raw_os_error() == Some(libc::EINVAL) => match ring_builder(false).build(4096) {
                Ok(r) => r,
                Err(_) => IoUring::new(4096)?,
            },
            Err(e) => return Err(e),
        };
        let pool = match Pool::register(&ring) {
            Ok(p) => Some(p),
            Err(e) => {
                tracing::debug!(error = %e, "no provided buffers (Linux 5.19 or newer): idle reads hold a buffer");
                None
            }
        };
        Ok(Driver { ring: RefCell::new(ring), slots: RefCell::default(), free: RefCell::default(), pool })
    }

    /// Queues `entries` (linked ones together) for the operation in a new slot, which gets
    /// the completion of the first; the others' completions are ignored.
    fn push(&self, entries: &[squeue::Entry]) -> usize {
        let id = match self.free.borrow_mut().pop() {
            Some(id) => id,
            None => {
                let mut slots = self.slots.borrow_mut();
                slots.push(Slot::Free);
                slots.len() - 1
            }
        };
        self.slots.borrow_mut()[id] = Slot::Pending(None);
        loop {
            let mut ring = self.ring.borrow_mut();
            {
                let mut sq = ring.submission();
                if sq.capacity() - sq.len() >= entries.len() {
                    for (i, e) in entries.iter().enumerate() {
                        let e = e.clone().user_data(if i == 0 { id as u64 } else { IGNORED });
                        // SAFETY: every pointer in the entry refers to memory owned by the `Op`
                        // returned for this slot (or by the slot once the `Op` is dropped)
                        // until this slot's completion is reaped; see the module doc. Room
                        // for all entries was checked just above.
                        let _ = unsafe { sq.push(&e) };
                    }
                    return id;
                }
            }
            // The queue is full: hand it to the kernel. If the kernel is busy (completion
            // queue overflowing), make room by reaping completions first.
            if ring.submit().is_err() {
                drop(ring);
                self.reap();
            }
        }
    }

    fn poll_slot(&self, id: usize, cx: &mut Context<'_>) -> Poll<(i32, u32)> {
        let mut slots = self.slots.borrow_mut();
        match &mut slots[id] {
            Slot::Done(res, flags) => {
                let done = (*res, *flags);
                slots[id] = Slot::Free;
                self.free.borrow_mut().push(id);
                Poll::Ready(done)
            }
            Slot::Pending(w) => {
                if !w.as_ref().is_some_and(|w| w.will_wake(cx.waker())) {
                    *w = Some(cx.waker().clone());
                }
                Poll::Pending
            }
            Slot::Free | Slot::Abandoned(_) => unreachable!("polled a slot that is not pending"),
        }
    }

    fn abandon(&self, id: usize, keep: Box<dyn Any>) {
        let mut slots = self.slots.borrow_mut();
        match slots[id] {
            Slot::Done(_, flags) => {
                slots[id] = Slot::Free;
                self.free.borrow_mut().push(id);
                self.recycle(flags);
            }
            _ => slots[id] = Slot::Abandoned(keep),
        }
    }

    /// Moves completions into their slots and wakes their tasks.
    fn reap(&self) {
        let mut done: Vec<(u64, i32, u32)> = Vec::new();
        {
            let mut ring = self.ring.borrow_mut();
            for cqe in ring.completion() {
                done.push((cqe.user_data(), cqe.result(), cqe.flags()));
            }
        }
        for (user_data, res, flags) in done {
            if user_data == IGNORED {
                continue;
            }
            let id = user_data as usize;
            let waker = {
                let mut slots = self.slots.borrow_mut();
                match std::mem::replace(&mut slots[id], Slot::Done(res, flags)) {
                    Slot::Pending(w) => w,
                    Slot::Abandoned(_) => {
                        slots[id] = Slot::Free;
                        self.free.borrow_mut().push(id);
                        // Nobody will read what the kernel put in a provided buffer.
                        self.recycle(flags);
                        None
                    }
                    Slot::Free | Slot::Done(..) => unreachable!("completion for a slot not in flight"),
                }
            };
            if let Some(w) = waker {
                w.wake();
            }
        }
    }

    /// Submits what is queued; when `wait`, sleeps until a completion or `until`.
    fn enter(&self, wait: bool, until: Option<Instant>) {
        let mut ring = self.ring.borrow_mut();
        let r = if wait {
            let left = until.map(|t| t.saturating_duration_since(Instant::now()));
            match left {
                Some(d) => {
                    let ts = types::Timespec::new().sec(d.as_secs()).nsec(d.subsec_nanos());
                    let args = types::SubmitArgs::new().timespec(&ts);
                    ring.submitter().submit_with_args(1, &args)
                }
                None => ring.submitter().submit_and_wait(1),
            }
        } else {
            // GETEVENTS without waiting: with DEFER_TASKRUN this is what runs completed work.
            let to_submit = ring.submission().len() as u32;
            // SAFETY: no argument pointer is passed; counts and flags are plain values.
            unsafe { ring.submitter().enter::<libc::sigset_t>(to_submit, 0, ENTER_GETEVENTS, None) }
        };
        if let Err(e) = r {
            match e.raw_os_error() {
                Some(libc::ETIME | libc::EINTR | libc::EBUSY | libc::EAGAIN) => {}
                _ => tracing::error!(error = %e, "io_uring_enter failed"),
            }
        }
    }
}

impl Driver {
    /// Gives back the provided buffer a completion names, if it names one.
    fn recycle(&self, flags: u32) {
        if let (Some(pool), Some(bid)) = (&self.pool, io_uring::cqueue::buffer_select(flags)) {
            pool.give_back(bid);
        }
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        if self.pool.is_some() {
            // Before the pool's memory goes: the kernel must not pick from it any more.
            let _ = self.ring.borrow().submitter().unregister_buf_ring(POOL_GROUP);
        }
    }
}

/// The provided-buffer group of every ring (each worker has its own ring).
const POOL_GROUP: u16 = 0;
/// Buffers in the pool (a power of two). A buffer is held only from a completion to its
/// task's next poll, so this bounds how many waiting connections can receive bytes in one
/// turn of the loop without falling back to a read of their own. The environment variable
/// `RINGRESS_TEST_READ_POOL` (a power of two) makes it smaller, for tests of that fallback.
const POOL_BUFFERS: u16 = 512;
/// One buffer: most request heads fit, a longer one takes another read.
const POOL_BUFFER_SIZE: usize = 2048;

/// Provided buffers (a buffer ring, IORING_REGISTER_PBUF_RING, Linux 5.19): a read that
/// waits for a connection's next bytes names this group instead of a buffer, and the kernel
/// picks one only when bytes arrive. The reader copies them out at once and gives the buffer
/// back, so thousands of idle keep-alive connections share one small pool instead of each
/// holding a buffer. Filled once; afterwards only given-back buffers are added.
struct Pool {
    /// The ring of entries the kernel takes buffers from (page-aligned, shared with it).
    entries: *mut types::BufRingEntry,
    /// `count` buffers of `POOL_BUFFER_SIZE`, written only by the kernel.
    bufs: *mut u8,
    /// Buffers and entries (a power of two, at most `POOL_BUFFERS`).
    count: u16,
    /// Where the next given-back buffer goes (published to the kernel after each).
    tail: std::cell::Cell<u16>,
}

impl Pool {
    const ENTRIES_LEN: usize = POOL_BUFFERS as usize * std::mem::size_of::<types::BufRingEntry>();

    fn bufs_layout() -> std::alloc::Layout {
        std::alloc::Layout::from_size_align(POOL_BUFFERS as usize * POOL_BUFFER_SIZE, 4096).expect("a valid layout")
    }

    fn register(ring: &IoUring) -> io::Result<Pool> {
        let count = std::env::var("RINGRESS_TEST_READ_POOL")
            .ok()
            .and_then(|v| v.parse::<u16>().ok())
            .filter(|n| n.is_power_of_two() && *n <= POOL_BUFFERS)
            .unwrap_or(POOL_BUFFERS);
        // SAFETY: an anonymous private mapping; checked for failure below.
        let entries = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                Self::ENTRIES_LEN,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        };
        if entries == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: the layout has a non-zero size.
        let bufs = unsafe { std::alloc::alloc(Self::bufs_layout()) };
        if bufs.is_null() {
            // SAFETY: unmapping exactly what was mapped above.
            unsafe { libc::munmap(entries, Self::ENTRIES_LEN) };
            return Err(io::ErrorKind::OutOfMemory.into());
        }
        let pool = Pool { entries: entries.cast(), bufs, count, tail: std::cell::Cell::new(0) };
        for bid in 0..count {
            pool.give_back(bid);
        }
        // SAFETY: the entries are page-aligned, `count` long (a power of two), and stay mapped
        // until the ring has unregistered them (Driver's Drop runs before Pool's).
        unsafe { ring.submitter().register_buf_ring(pool.entries as u64, count, POOL_GROUP) }?;
        Ok(pool)
    }

    /// Adds buffer `bid` at the tail and publishes the new tail to the kernel.
    fn give_back(&self, bid: u16) {
        let tail = self.tail.get();
        let slot = (tail & (self.count - 1)) as usize;
        // SAFETY: `slot` is within the entries; the kernel reads only entries before the
        // published tail, and this one is at or after it.
        let e = unsafe { &mut *self.entries.add(slot) };
        // SAFETY: bid < count, so the address is within `bufs`.
        e.set_addr(unsafe { self.bufs.add(bid as usize * POOL_BUFFER_SIZE) } as u64);
        e.set_len(POOL_BUFFER_SIZE as u32);
        e.set_bid(bid);
        let tail = tail.wrapping_add(1);
        self.tail.set(tail);
        // SAFETY: the tail field lies in the first entry, which is mapped; the kernel reads it
        // concurrently, hence the atomic release store (the entry is written before it).
        unsafe {
            let t = types::BufRingEntry::tail(self.entries).cast_mut().cast::<std::sync::atomic::AtomicU16>();
            (*t).store(tail, std::sync::atomic::Ordering::Release);
        }
    }

    /// The `n` bytes a completion put in the buffer its `flags` name, copied into a new
    /// buffer with room for at least `capacity`; the pool buffer goes back at once.
    fn take(&self, flags: u32, n: usize, capacity: usize) -> Vec<u8> {
        let Some(bid) = io_uring::cqueue::buffer_select(flags) else { return Vec::with_capacity(capacity) };
        let n = n.min(POOL_BUFFER_SIZE);
        let mut out = Vec::with_capacity(capacity.max(n));
        // SAFETY: the kernel wrote `n` bytes into buffer `bid` and completed; until it is
        // given back below, nothing else writes it.
        out.extend_from_slice(unsafe { std::slice::from_raw_parts(self.bufs.add(bid as usize * POOL_BUFFER_SIZE), n) });
        self.give_back(bid);
        out
    }
}

impl Drop for Pool {
    fn drop(&mut self) {
        // SAFETY: both were allocated in `register` with these sizes, and the ring no longer
        // uses them (unregistered, or the ring is gone).
        unsafe {
            std::alloc::dealloc(self.bufs, Self::bufs_layout());
            libc::munmap(self.entries.cast(), Self::ENTRIES_LEN);
        }
    }
}

/// Runs `main` and everything it spawns on this thread until `main` returns.
pub fn block_on<F, Fut>(main: F) -> io::Result<()>
where
    F: FnOnce() -> Fut,
    Fut: Future<Output = ()> + 'static,
{
    let driver = Rc::new(Driver::new()?);
    DRIVER.with(|d| *d.borrow_mut() = Some(driver.clone()));
    let exec = Executor::new();
    exec.run(main(), |wait, until| {
        driver.enter(wait, until);
        driver.reap();
    });
    DRIVER.with(|d| *d.borrow_mut() = None);
    Ok(())
}

/// An fd closed when its stream and all operations on it are gone.
struct Fd(RawFd);

impl Drop for Fd {
    fn drop(&mut self) {
        // SAFETY: this process owns the fd, and nothing uses it after the last `Rc<Fd>`.
        unsafe { libc::close(self.0) };
    }
}

/// An operation in flight. `T` owns what the kernel may touch until completion.
struct Op<T: 'static> {
    id: usize,
    keep: Option<T>,
}

impl<T: 'static> Op<T> {
    fn submit(entries: &[squeue::Entry], keep: T) -> Op<T> {
        Op { id: driver().push(entries), keep: Some(keep) }
    }
}

impl<T: 'static + Unpin> Op<T> {
    fn poll_done(&mut self, cx: &mut Context<'_>) -> Poll<(i32, u32, T)> {
        let (res, flags) = std::task::ready!(driver().poll_slot(self.id, cx));
        let keep = self.keep.take().expect("completed once");
        Poll::Ready((res, flags, keep))
    }

    /// The result with the completion's flags.
    fn flagged(mut self) -> impl Future<Output = (i32, u32, T)> {
        std::future::poll_fn(move |cx| self.poll_done(cx))
    }
}

impl<T: 'static + Unpin> Future for Op<T> {
    type Output = (i32, T);

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let (res, _, keep) = std::task::ready!(self.poll_done(cx));
        Poll::Ready((res, keep))
    }
}

impl<T: 'static> Drop for Op<T> {
    fn drop(&mut self) {
        if let Some(keep) = self.keep.take() {
            driver().abandon(self.id, Box::new(keep));
        }
    }
}

fn result(res: i32) -> io::Result<usize> {
    if res < 0 {
        Err(io::Error::from_raw_os_error(-res))
    } else {
        Ok(res as usize)
    }
}

pub struct RingStream {
    fd: Rc<Fd>,
}

impl Drop for RingStream {
    fn drop(&mut self) {
        if Rc::strong_count(&self.fd) > 1 {
            // Operations are still in flight: make them complete so the fd can close.
            super::shutdown_fd(self.fd.0, Shutdown::Both);
        }
    }
}

impl Stream for RingStream {
    async fn read(&self, mut buf: Vec<u8>) -> (io::Result<usize>, Vec<u8>) {
        if buf.capacity() == buf.len() {
            buf.reserve(4096);
        }
        let len = buf.len();
        let spare = (buf.capacity() - len).min(u32::MAX as usize) as u32;
        // SAFETY: the pointer is the spare capacity of `buf`, which the Op owns until completion.
        let ptr = unsafe { buf.as_mut_ptr().add(len) };
        let entry = opcode::Recv::new(types::Fd(self.fd.0), ptr, spare).build();
        let (res, (buf, _fd)) = Op::submit(&[entry], (buf, self.fd.clone())).await;
        let mut buf = buf;
        match result(res) {
            Ok(n) => {
                // SAFETY: the kernel initialised `n` bytes after `len`, within the capacity.
                unsafe { buf.set_len(len + n) };
                (Ok(n), buf)
            }
            Err(e) => (Err(e), buf),
        }
    }

    /// From the worker's provided buffers: nothing is held while the connection waits.
    async fn read_fresh(&self, capacity: usize) -> (io::Result<usize>, Vec<u8>) {
        let d = driver();
        if let Some(pool) = &d.pool {
            let entry = opcode::Recv::new(types::Fd(self.fd.0), std::ptr::null_mut(), 0)
                .buf_group(POOL_GROUP)
                .build()
                .flags(squeue::Flags::BUFFER_SELECT);
            let (res, flags, _fd) = Op::submit(&[entry], self.fd.clone()).flagged().await;
            match result(res) {
                Ok(n) => return (Ok(n), pool.take(flags, n, capacity)),
                // Every pool buffer is in use this turn: bytes are here, read them into
                // a buffer of this connection's own.
                Err(e) if e.raw_os_error() == Some(libc::ENOBUFS) => {}
                Err(e) => {
                    d.recycle(flags);
                    return (Err(e), Vec::new());
                }
            }
        }
        // Boxed: rare, and an idle connection's wait should not make room for it.
        Box::pin(self.read(Vec::with_capacity(capacity))).await
    }

    async fn write_all(&self, buf: Vec<u8>) -> (io::Result<()>, Vec<u8>) {
        let mut buf = buf;
        let mut done = 0;
        while done < buf.len() {
            let left = (buf.len() - done).min(u32::MAX as usize) as u32;
            // SAFETY: `buf` is owned by the Op until completion; `done` is within its length.
            let ptr = unsafe { buf.as_ptr().add(done) };
            let entry = opcode::Send::new(types::Fd(self.fd.0), ptr, left).flags(libc::MSG_NOSIGNAL).build();
            let (res, (b, _fd)) = Op::submit(&[entry], (buf, self.fd.clone())).await;
            buf = b;
            match result(res) {
                Ok(0) => return (Err(io::ErrorKind::WriteZero.into()), buf),
                Ok(n) => done += n,
                Err(e) => return (Err(e), buf),
            }
        }
        (Ok(()), buf)
    }

    fn shutdown(&self, how: Shutdown) {
        super::shutdown_fd(self.fd.0, how);
    }

    fn fd(&self) -> RawFd {
        self.fd.0
    }

    /// Readiness comes from the ring (a POLL_ADD), the move itself is a splice(2) call on this
    /// thread. IORING_OP_SPLICE was measured and lost: the kernel always hands a splice to an
    /// io-wq thread, and the worker and that thread then switch back and forth for every
    /// 64 KiB (0.59-0.72 CPU s/GB, against 0.39-0.43 copying and 0.24-0.29 this way; perf
    /// put 38% of the proxy's time in the task switches).
    async fn splice_in(&self, pipe: &Pipe, len: usize) -> Option<io::Result<usize>> {
        loop {
            if let Err(e) = self.poll(libc::POLLIN).await {
                return Some(Err(e));
            }
            match super::io::splice(self.fd.0, pipe.write.as_raw_fd(), len) {
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                r => return Some(r),
            }
        }
    }

    async fn splice_out(&self, pipe: &Pipe, len: usize) -> Option<io::Result<usize>> {
        loop {
            // The socket usually has room: try first, wait for room only when it has not.
            match super::io::splice(pipe.read.as_raw_fd(), self.fd.0, len) {
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    if let Err(e) = self.poll(libc::POLLOUT).await {
                        return Some(Err(e));
                    }
                }
                r => return Some(r),
            }
        }
    }
}

impl RingStream {
    /// Waits until the socket is ready for `events` (or has hung up or failed).
    async fn poll(&self, events: libc::c_short) -> io::Result<()> {
        let entry = opcode::PollAdd::new(types::Fd(self.fd.0), events as u16 as u32).build();
        let (res, _) = Op::submit(&[entry], self.fd.clone()).await;
        result(res).map(drop)
    }
}

pub struct Ring;

pub struct RingListener {
    fd: Rc<Fd>,
}

/// Where `accept` writes the peer's address; boxed so it stays put while the kernel writes.
struct AcceptAddr {
    storage: libc::sockaddr_storage,
    len: libc::socklen_t,
}

impl Io for Ring {
    type Stream = RingStream;
    type Listener = RingListener;

    fn listener(l: TcpListener) -> io::Result<Self::Listener> {
        l.set_nonblocking(true)?;
        Ok(RingListener { fd: Rc::new(Fd(l.into_raw_fd())) })
    }

    async fn accept(l: &Self::Listener) -> io::Result<(Self::Stream, SocketAddr)> {
        // SAFETY: sockaddr_storage is plain old data; all-zero is a valid value.
        let mut addr = Box::new(AcceptAddr { storage: unsafe { std::mem::zeroed() }, len: 0 });
        addr.len = std::mem::size_of::<libc::sockaddr_storage>() as libc::socklen_t;
        let entry = opcode::Accept::new(
            types::Fd(l.fd.0),
            (&mut addr.storage as *mut libc::sockaddr_storage).cast(),
            &mut addr.len,
        )
        .flags(libc::SOCK_CLOEXEC | libc::SOCK_NONBLOCK)
        .build();
        let (res, (addr, _fd)) = Op::submit(&[entry], (addr, l.fd.clone())).await;
        let fd = result(res)? as RawFd;
        let stream = RingStream { fd: Rc::new(Fd(fd)) };
        let peer = peer_addr(&addr.storage).unwrap_or_else(|| SocketAddr::from(([0, 0, 0, 0], 0)));
        Ok((stream, peer))
    }

    async fn connect(addr: SocketAddr, timeout: Duration) -> io::Result<Self::Stream> {
        // Nonblocking from the start (SOCK_NONBLOCK): no fcntl pair per connection.
        let sock = socket2::Socket::new(socket2::Domain::for_address(addr), socket2::Type::STREAM.nonblocking(), None)?;
        sock.set_tcp_nodelay(true)?;
        let stream = RingStream { fd: Rc::new(Fd(sock.into_raw_fd())) };
        let sa = Box::new(socket2::SockAddr::from(addr));
        let ts = Box::new(types::Timespec::new().sec(timeout.as_secs()).nsec(timeout.subsec_nanos()));
        let connect = opcode::Connect::new(types::Fd(stream.fd.0), sa.as_ptr().cast(), sa.len())
            .build()
            .flags(squeue::Flags::IO_LINK);
        let limit = opcode::LinkTimeout::new(&*ts).build();
        let (res, _) = Op::submit(&[connect, limit], (sa, ts, stream.fd.clone())).await;
        match result(res) {
            Ok(_) => Ok(stream),
            Err(e) if e.raw_os_error() == Some(libc::ECANCELED) => Err(super::io::timed_out("connect timed out")),
            Err(e) => Err(e),
        }
    }

    fn spawn(fut: impl Future<Output = ()> + 'static) {
        spawn(fut)
    }

    async fn sleep(d: Duration) {
        executor::sleep(d).await
    }
}

/// The address `accept` wrote, for IPv4 and IPv6.
fn peer_addr(s: &libc::sockaddr_storage) -> Option<SocketAddr> {
    match s.ss_family as libc::c_int {
        libc::AF_INET => {
            // SAFETY: the family says the storage holds a sockaddr_in, which it is large
            // and aligned enough for.
            let a = unsafe { &*(s as *const libc::sockaddr_storage).cast::<libc::sockaddr_in>() };
            let ip = std::net::Ipv4Addr::from(u32::from_be(a.sin_addr.s_addr));
            Some(SocketAddr::from((ip, u16::from_be(a.sin_port))))
        }
        libc::AF_INET6 => {
            // SAFETY: as above, for sockaddr_in6.
            let a = unsafe { &*(s as *const libc::sockaddr_storage).cast::<libc::sockaddr_in6>() };
            let ip = std::net::Ipv6Addr::from(a.sin6_addr.s6_addr);
            Some(SocketAddr::from((ip, u16::from_be(a.sin6_port))))
        }
        _ => None,
    }
}

impl AsRawFd for RingStream {
    fn as_raw_fd(&self) -> RawFd {
        self.fd.0
    }
}
