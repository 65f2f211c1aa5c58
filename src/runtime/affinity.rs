//! The process's CPU affinity mask, and pinning a worker thread to one CPU of it.

/// CPUs this process may run on (as set by taskset or a cgroup cpuset), in order.
pub fn allowed_cpus() -> Vec<usize> {
    // SAFETY: cpu_set_t is plain old data; zeroed is a valid (empty) set, and
    // sched_getaffinity writes at most size_of::<cpu_set_t>() bytes into it.
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    // SAFETY: pid 0 is the calling thread; the pointer and size describe `set`.
    let rc = unsafe { libc::sched_getaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &mut set) };
    if rc != 0 {
        return (0..std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1)).collect();
    }
    // SAFETY: CPU_ISSET reads the initialised set within its bounds (i < CPU_SETSIZE).
    (0..libc::CPU_SETSIZE as usize).filter(|&i| unsafe { libc::CPU_ISSET(i, &set) }).collect()
}

/// Pins the calling thread to `cpu`, which must come from [`allowed_cpus`].
pub fn pin_to_cpu(cpu: usize) -> std::io::Result<()> {
    // SAFETY: as above, a zeroed cpu_set_t is an empty set; CPU_SET stays in bounds because
    // `cpu` < CPU_SETSIZE (it came from allowed_cpus).
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    unsafe { libc::CPU_SET(cpu, &mut set) };
    // SAFETY: pid 0 is the calling thread; the pointer and size describe `set`.
    let rc = unsafe { libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set) };
    if rc == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}
