//! A single-threaded executor for the ring workers: a task slab, a run queue, and timers
//! for `sleep`. Wakers carry a task index and act only on the thread that runs the
//! executor (workers never hand a waker to another thread).

use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, RawWaker, RawWakerVTable, Waker};
use std::time::{Duration, Instant};

type Task = Pin<Box<dyn Future<Output = ()>>>;

pub(super) struct Executor {
    tasks: RefCell<Vec<Option<Task>>>,
    queued: RefCell<Vec<bool>>,
    free: RefCell<Vec<usize>>,
    ready: RefCell<VecDeque<usize>>,
    /// Pending timers, earliest first. A sleep dropped before it fires marks its entry dead
    /// (its flag) instead of searching the heap; dead entries are skipped when they come up,
    /// and swept out whenever they are most of the heap (connections that end long before
    /// their idle timeout leave many).
    timers: RefCell<std::collections::BinaryHeap<Timer>>,
    timer_seq: Cell<u64>,
    dead_timers: Cell<usize>,
}

struct Timer {
    at: Instant,
    seq: u64,
    waker: Waker,
    /// False once the sleep completed or was dropped.
    alive: std::rc::Rc<Cell<bool>>,
}

impl PartialEq for Timer {
    fn eq(&self, o: &Self) -> bool {
        (self.at, self.seq) == (o.at, o.seq)
    }
}

impl Eq for Timer {}

impl PartialOrd for Timer {
    fn partial_cmp(&self, o: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(o))
    }
}

impl Ord for Timer {
    /// Reversed: the max-heap's top is the earliest deadline.
    fn cmp(&self, o: &Self) -> std::cmp::Ordering {
        (o.at, o.seq).cmp(&(self.at, self.seq))
    }
}

thread_local! {
    static CURRENT: Cell<*const Executor> = const { Cell::new(std::ptr::null()) };
}

fn with_current<R>(f: impl FnOnce(&Executor) -> R) -> Option<R> {
    CURRENT.with(|c| {
        let p = c.get();
        // SAFETY: CURRENT is set only while `Executor::run` borrows the executor on this
        // thread, and reset before that borrow ends.
        (!p.is_null()).then(|| f(unsafe { &*p }))
    })
}

static VTABLE: RawWakerVTable = RawWakerVTable::new(clone, wake, wake, noop);

fn raw(id: usize) -> RawWaker {
    RawWaker::new(id as *const (), &VTABLE)
}

unsafe fn clone(p: *const ()) -> RawWaker {
    raw(p as usize)
}

unsafe fn wake(p: *const ()) {
    with_current(|e| e.schedule(p as usize));
}

unsafe fn noop(_: *const ()) {}

/// Spawns a task on the current ring worker.
pub fn spawn(fut: impl Future<Output = ()> + 'static) {
    with_current(|e| e.insert(Box::pin(fut))).expect("spawn outside a ring worker");
}

/// Completes after `d` (timers are checked once per loop turn). The timer is registered on
/// the first poll only: a sleep polled again (e.g. raced in a `select` against I/O) must not
/// add an entry per wake-up. A task's waker never changes on this executor.
pub async fn sleep(d: Duration) {
    /// Marks the timer dead if the sleep goes away before it fires.
    struct Registered(Option<std::rc::Rc<Cell<bool>>>);
    impl Drop for Registered {
        fn drop(&mut self) {
            if let Some(alive) = self.0.take().filter(|a| a.get()) {
                alive.set(false);
                with_current(|e| e.dead_timers.set(e.dead_timers.get() + 1));
            }
        }
    }
    let at = Instant::now() + d;
    let mut registered = Registered(None);
    std::future::poll_fn(|cx| {
        if Instant::now() >= at {
            if let Some(alive) = registered.0.take() {
                alive.set(false);
            }
            return Poll::Ready(());
        }
        if registered.0.is_none() {
            let alive = std::rc::Rc::new(Cell::new(true));
            with_current(|e| {
                let seq = e.timer_seq.get();
                e.timer_seq.set(seq + 1);
                e.timers.borrow_mut().push(Timer { at, seq, waker: cx.waker().clone(), alive: alive.clone() });
            });
            registered.0 = Some(alive);
        }
        Poll::Pending
    })
    .await
}

impl Executor {
    pub(super) fn new() -> Self {
        Executor {
            tasks: RefCell::default(),
            queued: RefCell::default(),
            free: RefCell::default(),
            ready: RefCell::default(),
            timers: RefCell::default(),
            timer_seq: Cell::new(0),
            dead_timers: Cell::new(0),
        }
    }

    fn insert(&self, task: Task) {
        let id = match self.free.borrow_mut().pop() {
            Some(id) => {
                self.tasks.borrow_mut()[id] = Some(task);
                id
            }
            None => {
                self.tasks.borrow_mut().push(Some(task));
                self.queued.borrow_mut().push(false);
                self.tasks.borrow().len() - 1
            }
        };
        self.schedule(id);
    }

    fn schedule(&self, id: usize) {
        let mut queued = self.queued.borrow_mut();
        if id < queued.len() && !queued[id] {
            queued[id] = true;
            self.ready.borrow_mut().push_back(id);
        }
    }

    fn poll_task(&self, id: usize) -> bool {
        self.queued.borrow_mut()[id] = false;
        // Taken out while polled: the task may spawn or wake others.
        let Some(mut task) = self.tasks.borrow_mut()[id].take() else { return false };
        // SAFETY: the waker's data is the task index; see VTABLE.
        let waker = unsafe { Waker::from_raw(raw(id)) };
        let done = task.as_mut().poll(&mut Context::from_waker(&waker)).is_ready();
        if done {
            self.free.borrow_mut().push(id);
        } else {
            self.tasks.borrow_mut()[id] = Some(task);
        }
        done
    }

    /// Runs until `main` completes. `park(wait, until)` submits I/O and, when `wait`, blocks
    /// until a completion or `until`, then delivers completions (waking tasks).
    pub(super) fn run(&self, main: impl Future<Output = ()> + 'static, mut park: impl FnMut(bool, Option<Instant>)) {
        CURRENT.with(|c| c.set(self as *const Executor));
        self.insert(Box::pin(main));
        let main_id = 0;
        loop {
            // Run what is ready, in bounded batches so I/O is submitted regularly.
            let mut budget = 256;
            while budget > 0 {
                let Some(id) = self.ready.borrow_mut().pop_front() else { break };
                if self.poll_task(id) && id == main_id {
                    self.shutdown();
                    return;
                }
                budget -= 1;
            }
            let next_timer = self.fire_timers();
            let wait = self.ready.borrow().is_empty();
            park(wait, next_timer);
        }
    }

    /// Wakes due timers; returns the earliest pending deadline.
    fn fire_timers(&self) -> Option<Instant> {
        let mut timers = self.timers.borrow_mut();
        let dead = self.dead_timers.get();
        if dead > 1024 && dead * 2 > timers.len() {
            timers.retain(|t| t.alive.get());
            self.dead_timers.set(0);
        }
        let now = Instant::now();
        while let Some(top) = timers.peek() {
            if !top.alive.get() {
                timers.pop();
                self.dead_timers.set(self.dead_timers.get().saturating_sub(1));
                continue;
            }
            if top.at > now {
                return Some(top.at);
            }
            let t = timers.pop().expect("peeked");
            t.alive.set(false);
            t.waker.wake();
        }
        None
    }

    fn shutdown(&self) {
        self.timers.borrow_mut().clear();
        let tasks: Vec<Option<Task>> = std::mem::take(&mut *self.tasks.borrow_mut());
        drop(tasks);
        CURRENT.with(|c| c.set(std::ptr::null()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::rc::Rc;

    /// Runs `main` on an executor whose park sleeps until the next timer (no ring needed).
    fn run(main: impl Future<Output = ()> + 'static) {
        let e = Executor::new();
        e.run(main, |wait, until| {
            if let (true, Some(t)) = (wait, until) {
                std::thread::sleep(t.saturating_duration_since(Instant::now()));
            }
        });
    }

    fn heap_len() -> usize {
        with_current(|e| e.timers.borrow().len()).unwrap()
    }

    #[test]
    fn timers_fire_in_deadline_order_whatever_the_spawn_order() {
        let order = Rc::new(RefCell::new(Vec::new()));
        let o = order.clone();
        run(async move {
            for ms in [30u64, 10, 20, 0] {
                let o = o.clone();
                spawn(async move {
                    sleep(Duration::from_millis(ms)).await;
                    o.borrow_mut().push(ms);
                });
            }
            sleep(Duration::from_millis(60)).await;
        });
        assert_eq!(*order.borrow(), vec![0, 10, 20, 30]);
    }

    #[test]
    fn a_sleep_polled_many_times_holds_one_entry() {
        run(async {
            let mut s = std::pin::pin!(sleep(Duration::from_secs(3600)));
            for _ in 0..100 {
                assert!(futures::poll!(s.as_mut()).is_pending());
            }
            assert_eq!(heap_len(), 1);
        });
    }

    #[test]
    fn dropped_sleeps_are_swept_from_the_heap() {
        run(async {
            // Connections that end long before their idle timeout: their timers die unfired.
            for _ in 0..3000 {
                let mut s = std::pin::pin!(sleep(Duration::from_secs(3600)));
                assert!(futures::poll!(s.as_mut()).is_pending());
            }
            assert_eq!(heap_len(), 3000);
            let live = sleep(Duration::from_secs(3600));
            let mut live = std::pin::pin!(live);
            assert!(futures::poll!(live.as_mut()).is_pending());
            // A turn of the loop (a timer of its own, since a woken task runs again before
            // the timers are looked at).
            sleep(Duration::from_millis(1)).await;
            assert_eq!(heap_len(), 1, "the dead entries are swept once they are most of the heap");
            assert_eq!(with_current(|e| e.dead_timers.get()).unwrap(), 0);
        });
    }
}
