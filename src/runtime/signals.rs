//! The process's termination signals, taken synchronously: blocked in every thread at
//! start-up, then waited for by the main thread (SIGTERM and SIGINT drain, SIGUSR1 reopens
//! the access log).

use std::time::Duration;

/// SIGTERM, SIGINT and SIGUSR1, blocked for the calling thread and the threads it spawns.
pub struct Signals(libc::sigset_t);

impl Signals {
    /// Blocks the signals on this thread; call it before spawning any thread, so every thread
    /// inherits the mask and only [`Signals::wait`] sees them.
    pub fn block() -> Signals {
        // SAFETY: sigset_t is plain data filled by sigemptyset/sigaddset; pthread_sigmask only
        // changes this thread's mask (inherited by the threads it spawns).
        unsafe {
            let mut set: libc::sigset_t = std::mem::zeroed();
            libc::sigemptyset(&mut set);
            libc::sigaddset(&mut set, libc::SIGTERM);
            libc::sigaddset(&mut set, libc::SIGINT);
            libc::sigaddset(&mut set, libc::SIGUSR1);
            libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
            Signals(set)
        }
    }

    /// The signal that arrived within `timeout` (forever when None); None: none did.
    pub fn wait(&self, timeout: Option<Duration>) -> Option<i32> {
        let set = &self.0;
        // SAFETY: `set` is a valid, initialised sigset; the timespec lives across the call.
        let sig = unsafe {
            match timeout {
                None => {
                    let mut sig = 0;
                    if libc::sigwait(set, &mut sig) == 0 {
                        sig
                    } else {
                        -1
                    }
                }
                Some(t) => {
                    let ts = libc::timespec { tv_sec: t.as_secs() as libc::time_t, tv_nsec: t.subsec_nanos() as _ };
                    libc::sigtimedwait(set, std::ptr::null_mut(), &ts)
                }
            }
        };
        (sig > 0).then_some(sig)
    }
}
