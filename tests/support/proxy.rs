//! The real `ringress` binary as a child process, on loopback ports it picks itself.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

static DIRS: AtomicUsize = AtomicUsize::new(0);

/// A fresh, empty directory for one test's manifests.
pub fn temp_dir() -> PathBuf {
    let n = DIRS.fetch_add(1, Ordering::SeqCst);
    let d = std::env::temp_dir().join(format!("ringress-test-{}-{n}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

pub struct Proxy {
    pub child: Child,
    pub http: SocketAddr,
    pub https: SocketAddr,
    pub admin: SocketAddr,
    pub dir: PathBuf,
    pub log: Arc<Mutex<Vec<String>>>,
}

impl Proxy {
    /// Writes `manifests` to `<dir>/routes.yaml` and starts the proxy on `io` with `args`.
    pub fn start(io: &str, manifests: &str, args: &[&str]) -> Proxy {
        let dir = temp_dir();
        std::fs::write(dir.join("routes.yaml"), manifests).unwrap();
        Self::start_in(dir, io, args)
    }

    pub fn start_in(dir: PathBuf, io: &str, args: &[&str]) -> Proxy {
        Self::start_with(dir, io, args, |_| {})
    }

    /// Like [`Proxy::start_in`], with a chance to adjust the command (e.g. a seccomp filter).
    pub fn start_with(dir: PathBuf, io: &str, args: &[&str], configure: impl FnOnce(&mut Command)) -> Proxy {
        let manifests = dir.to_str().expect("UTF-8 temp dir").to_string();
        let mut all = vec!["--manifests", &manifests];
        if !args.contains(&"--poll-ms") {
            all.extend(["--poll-ms", "50"]);
        }
        all.extend_from_slice(args);
        Self::launch(dir, io, &all, configure, true)
    }

    /// Kubernetes mode against `kubeconfig`. With `wait_ready`, returns once `/readyz` is 200.
    pub fn start_kube(kubeconfig: &std::path::Path, args: &[&str], wait_ready: bool) -> Proxy {
        Self::start_kube_with(kubeconfig, args, wait_ready, |_| {})
    }

    /// [`Proxy::start_kube`], with the command adjusted first (e.g. to end with the test).
    pub fn start_kube_with(
        kubeconfig: &std::path::Path,
        args: &[&str],
        wait_ready: bool,
        configure: impl FnOnce(&mut Command),
    ) -> Proxy {
        let kc = kubeconfig.to_str().expect("UTF-8 path").to_string();
        let mut all = vec!["--kubeconfig", &kc, "--sync-debounce-ms", "20"];
        all.extend_from_slice(args);
        Self::launch(temp_dir(), "uring", &all, configure, wait_ready)
    }

    fn launch(dir: PathBuf, io: &str, args: &[&str], configure: impl FnOnce(&mut Command), wait_ready: bool) -> Proxy {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_ringress"));
        configure(&mut cmd);
        if !args.contains(&"--log-level") {
            cmd.env("RUST_LOG", std::env::var("RINGRESS_TEST_LOG").unwrap_or_else(|_| "info".into()));
        }
        let mut child = cmd
            .arg("run")
            .args(["--http", "127.0.0.1:0", "--https", "127.0.0.1:0", "--admin", "127.0.0.1:0", "--io", io])
            .args(args)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start ringress");
        let log = Arc::new(Mutex::new(Vec::new()));
        let (tx, rx) = std::sync::mpsc::channel();
        let stderr = child.stderr.take().unwrap();
        let sink = log.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if std::env::var_os("RINGRESS_TEST_ECHO").is_some() {
                    eprintln!("[proxy] {line}");
                }
                // Into the log before the ready signal, so a caller woken by it sees the line.
                sink.lock().unwrap().push(line.clone());
                if line.contains("ringress ready") {
                    let _ = tx.send(line);
                }
            }
        });
        let ready = rx.recv_timeout(Duration::from_secs(20)).unwrap_or_else(|_| {
            let _ = child.kill();
            panic!("ringress did not start; log:\n{}", log.lock().unwrap().join("\n"))
        });
        let field = |name: &str| -> SocketAddr {
            let at = ready.find(&format!("{name}=")).expect("address in ready line") + name.len() + 1;
            ready[at..].split_whitespace().next().unwrap().parse().unwrap()
        };
        let p = Proxy { http: field("http"), https: field("https"), admin: field("admin"), child, dir, log };
        if wait_ready {
            p.wait_for(|| super::get(p.admin, "x", "/readyz").status == 200, "readyz 200");
        }
        p
    }

    /// The whole log so far.
    pub fn log_text(&self) -> String {
        self.log.lock().unwrap().join("\n")
    }

    /// Polls `cond` for up to 10 s.
    pub fn wait_for(&self, mut cond: impl FnMut() -> bool, what: &str) {
        let start = Instant::now();
        while start.elapsed() < Duration::from_secs(10) {
            if cond() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!("timed out waiting for {what}; proxy log:\n{}", self.log_text());
    }

    /// Replaces the manifests atomically (write a temp file, rename over), as editors do.
    pub fn replace_manifests(&self, manifests: &str) {
        let tmp = self.dir.join(".routes.yaml.tmp");
        std::fs::write(&tmp, manifests).unwrap();
        std::fs::rename(&tmp, self.dir.join("routes.yaml")).unwrap();
    }

    pub fn generation(&self) -> u64 {
        let m = super::get(self.admin, "x", "/metrics").text();
        m.lines()
            .find_map(|l| l.strip_prefix("ringress_snapshot_generation "))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(0)
    }

    /// One value from `/metrics`, by its full series name (e.g. `ringress_objects{kind="Ingress"}`).
    pub fn metric(&self, series: &str) -> Option<f64> {
        let m = super::get(self.admin, "x", "/metrics").text();
        m.lines().find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.trim().parse().ok())
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn open_fds(&self) -> usize {
        std::fs::read_dir(format!("/proc/{}/fd", self.pid())).map(|d| d.count()).unwrap_or(0)
    }

    /// Resident memory in KiB.
    pub fn rss_kib(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid())).unwrap();
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.split_whitespace().next()?.parse().ok())
            .unwrap_or(0)
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
