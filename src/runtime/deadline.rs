//! Coarse per-worker deadlines for connection timeouts. One ticker task per worker advances a
//! tick every [`TICK`] and shuts down the sockets whose deadline passed; arming a deadline is
//! a few `Cell` stores, with no timer-wheel entry and no clock read per I/O operation. The
//! shutdown makes the pending operation complete (EOF or error), which is also what releases
//! an io_uring read's fd and buffer; the waiting code then sees [`Watch::expired`].

use std::cell::{Cell, RefCell};
use std::net::Shutdown;
use std::os::fd::RawFd;
use std::rc::Rc;
use std::time::Duration;

/// Deadline resolution: timeouts fire between their value and their value plus one tick.
pub const TICK: Duration = Duration::from_millis(100);

/// An absolute deadline in ticks; 0 is "none".
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Deadline(u64);

/// The deadline state of one connection (one operation armed at a time).
#[derive(Debug)]
pub struct Watch {
    deadline: Cell<u64>,
    fd: Cell<RawFd>,
    how: Cell<Shutdown>,
    expired: Cell<bool>,
    slot: Cell<usize>,
    /// The connection waits for a new request (or its first bytes): a drain closes it.
    idle: Cell<bool>,
}

impl Watch {
    /// Whether the last armed operation was cut short by its deadline.
    pub fn expired(&self) -> bool {
        self.expired.get()
    }

    /// Marks the connection as waiting with no request in progress (see
    /// [`Deadlines::close_idle`]).
    pub fn set_idle(&self, idle: bool) {
        self.idle.set(idle);
    }
}

/// The registry of one worker's watches.
#[derive(Debug, Default)]
pub struct Deadlines {
    tick: Cell<u64>,
    watches: RefCell<Vec<Rc<Watch>>>,
}

/// Disarms its watch when dropped, so a deadline can never outlive the operation (and the fd)
/// it was armed for.
pub struct Armed<'a>(&'a Watch);

impl Drop for Armed<'_> {
    fn drop(&mut self) {
        self.0.deadline.set(0);
    }
}

impl Deadlines {
    /// The deadline `d` from now, rounded up to whole ticks.
    pub fn after(&self, d: Duration) -> Deadline {
        let ticks = d.as_millis().div_ceil(TICK.as_millis()).max(1) as u64;
        Deadline(self.tick.get() + 1 + ticks)
    }

    /// The current tick, to compare with deadlines.
    pub fn now(&self) -> Deadline {
        Deadline(self.tick.get())
    }

    /// A watch for one connection; it stays registered until [`Deadlines::unregister`].
    pub fn register(&self) -> Rc<Watch> {
        let mut ws = self.watches.borrow_mut();
        let w = Rc::new(Watch {
            deadline: Cell::new(0),
            fd: Cell::new(-1),
            how: Cell::new(Shutdown::Both),
            expired: Cell::new(false),
            slot: Cell::new(ws.len()),
            idle: Cell::new(false),
        });
        ws.push(w.clone());
        w
    }

    pub fn unregister(&self, w: &Rc<Watch>) {
        let mut ws = self.watches.borrow_mut();
        let i = w.slot.get();
        if i < ws.len() && Rc::ptr_eq(&ws[i], w) {
            ws.swap_remove(i);
            if let Some(moved) = ws.get(i) {
                moved.slot.set(i);
            }
        }
    }

    /// Arms `w` for an operation on `fd`; on expiry the socket is shut down with `how`.
    pub fn arm<'a>(&self, w: &'a Watch, fd: RawFd, how: Shutdown, at: Deadline) -> Armed<'a> {
        w.fd.set(fd);
        w.how.set(how);
        w.expired.set(false);
        w.deadline.set(at.0);
        Armed(w)
    }

    /// Ends every idle wait now, as if its deadline had passed (a drain: connections with no
    /// request in progress close, the others finish theirs first).
    pub fn close_idle(&self) {
        for w in self.watches.borrow().iter() {
            if w.idle.get() && w.deadline.get() != 0 {
                w.deadline.set(0);
                w.expired.set(true);
                super::shutdown_fd(w.fd.get(), w.how.get());
            }
        }
    }

    /// Advances one tick and fires what is due. Called by the worker's ticker task only.
    pub fn advance(&self) {
        let now = self.tick.get() + 1;
        self.tick.set(now);
        for w in self.watches.borrow().iter() {
            let d = w.deadline.get();
            if d != 0 && d <= now {
                w.deadline.set(0);
                w.expired.set(true);
                super::shutdown_fd(w.fd.get(), w.how.get());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;
    use std::os::fd::AsRawFd;
    use std::os::unix::net::UnixStream;

    #[test]
    fn a_deadline_fires_on_its_tick_and_shuts_its_socket() {
        let d = Deadlines::default();
        let (ours, mut theirs) = UnixStream::pair().unwrap();
        let w = d.register();
        // 250 ms is three ticks, plus the one in progress: due on the fourth advance.
        let armed = d.arm(&w, ours.as_raw_fd(), Shutdown::Both, d.after(Duration::from_millis(250)));
        for _ in 0..3 {
            d.advance();
            assert!(!w.expired());
        }
        d.advance();
        assert!(w.expired());
        drop(armed);
        let mut buf = [0u8; 1];
        assert_eq!(theirs.read(&mut buf).unwrap(), 0, "the peer sees the shutdown as EOF");
    }

    #[test]
    fn a_disarmed_deadline_never_fires() {
        let d = Deadlines::default();
        let (ours, _theirs) = UnixStream::pair().unwrap();
        let w = d.register();
        drop(d.arm(&w, ours.as_raw_fd(), Shutdown::Both, d.after(TICK)));
        for _ in 0..5 {
            d.advance();
        }
        assert!(!w.expired());
        // Re-arming clears a previous expiry.
        let _a = d.arm(&w, ours.as_raw_fd(), Shutdown::Read, d.after(TICK));
        d.advance();
        d.advance();
        assert!(w.expired());
        drop(_a);
        let _b = d.arm(&w, ours.as_raw_fd(), Shutdown::Read, d.after(TICK));
        assert!(!w.expired());
    }

    #[test]
    fn a_drain_closes_idle_waits_only() {
        let d = Deadlines::default();
        let (a, _pa) = UnixStream::pair().unwrap();
        let (b, _pb) = UnixStream::pair().unwrap();
        let (idle, busy) = (d.register(), d.register());
        idle.set_idle(true);
        let _x = d.arm(&idle, a.as_raw_fd(), Shutdown::Both, d.after(Duration::from_secs(60)));
        let _y = d.arm(&busy, b.as_raw_fd(), Shutdown::Both, d.after(Duration::from_secs(60)));
        d.close_idle();
        assert!(idle.expired() && !busy.expired());
    }

    #[test]
    fn unregistering_keeps_the_other_slots_right() {
        let d = Deadlines::default();
        let ws: Vec<_> = (0..4).map(|_| d.register()).collect();
        d.unregister(&ws[1]);
        d.unregister(&ws[1]); // twice: a no-op
        d.unregister(&ws[3]); // moved into slot 1 by the first removal
        assert_eq!(d.watches.borrow().len(), 2);
        d.unregister(&ws[0]);
        d.unregister(&ws[2]);
        assert!(d.watches.borrow().is_empty());
    }
}
