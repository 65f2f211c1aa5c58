//! The epoll fallback when io_uring is refused, as the default container seccomp profiles do:
//! the real binary runs under a seccomp filter that fails `io_uring_setup` with EPERM.
#![cfg(all(target_os = "linux", target_arch = "x86_64"))]

mod support;

use std::os::unix::process::CommandExt;
use std::process::Command;

use support::*;

/// EM_X86_64 | __AUDIT_ARCH_64BIT | __AUDIT_ARCH_LE, from linux/audit.h.
const AUDIT_ARCH_X86_64: u32 = 62 | 0x8000_0000 | 0x4000_0000;

/// Makes the child's `io_uring_setup` fail with EPERM (everything else allowed).
fn deny_io_uring(cmd: &mut Command) {
    let stmt = |code: u32, k: u32| libc::sock_filter { code: code as u16, jt: 0, jf: 0, k };
    let jump = |code: u32, k: u32, jt: u8, jf: u8| libc::sock_filter { code: code as u16, jt, jf, k };
    let filter = [
        stmt(libc::BPF_LD | libc::BPF_W | libc::BPF_ABS, 4), // seccomp_data.arch
        jump(libc::BPF_JMP | libc::BPF_JEQ | libc::BPF_K, AUDIT_ARCH_X86_64, 0, 3),
        stmt(libc::BPF_LD | libc::BPF_W | libc::BPF_ABS, 0), // seccomp_data.nr
        jump(libc::BPF_JMP | libc::BPF_JEQ | libc::BPF_K, libc::SYS_io_uring_setup as u32, 0, 1),
        stmt(libc::BPF_RET | libc::BPF_K, libc::SECCOMP_RET_ERRNO | libc::EPERM as u32),
        stmt(libc::BPF_RET | libc::BPF_K, libc::SECCOMP_RET_ALLOW),
    ];
    // SAFETY: runs in the forked child before exec; only async-signal-safe prctl calls, on
    // memory (the filter) that the closure owns.
    unsafe {
        cmd.pre_exec(move || {
            let prog = libc::sock_fprog { len: filter.len() as u16, filter: filter.as_ptr() as *mut _ };
            if libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0
                || libc::prctl(libc::PR_SET_SECCOMP, libc::SECCOMP_MODE_FILTER, &prog as *const libc::sock_fprog) != 0
            {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
}

#[test]
fn auto_falls_back_to_epoll_when_io_uring_is_refused() {
    let up = Upstream::start("u");
    let m = service("svc", &[up.addr]) + &ingress("i", None, &[("/", "svc")]);
    let dir = support::proxy::temp_dir();
    std::fs::write(dir.join("routes.yaml"), &m).unwrap();
    let p = Proxy::start_with(dir, "auto", &[], deny_io_uring);
    let log = p.log_text();
    assert!(log.contains("io_uring unavailable; falling back to epoll"), "{log}");
    assert!(log.contains("io=\"epoll\""), "{log}");
    assert_eq!(get(p.http, "a.test", "/").status, 200);
    assert!(get(p.admin, "x", "/metrics").text().contains("ringress_io_backend{backend=\"epoll\"} 1"));
}

#[test]
fn auto_uses_io_uring_where_allowed() {
    let up = Upstream::start("u");
    let m = service("svc", &[up.addr]) + &ingress("i", None, &[("/", "svc")]);
    let p = Proxy::start("auto", &m, &[]);
    p.wait_for(|| p.log_text().contains("io=\"io_uring\""), "io=\"io_uring\"");
    assert_eq!(get(p.http, "a.test", "/").status, 200);
}

#[test]
fn forcing_io_uring_where_it_is_refused_fails_clearly() {
    let dir = support::proxy::temp_dir();
    std::fs::write(dir.join("routes.yaml"), "").unwrap();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_ringress"));
    deny_io_uring(&mut cmd);
    cmd.args([
        "run",
        "--io",
        "uring",
        "--http",
        "127.0.0.1:0",
        "--https",
        "127.0.0.1:0",
        "--admin",
        "127.0.0.1:0",
        "--manifests",
    ])
    .arg(&dir);
    let (ok, _out, err) = run(&mut cmd);
    assert!(!ok, "started without io_uring");
    assert!(err.contains("--io uring: io_uring unavailable") && err.contains("Operation not permitted"), "{err}");
}
