//! The container image, built by scripts/image.sh from the binary this suite built, and run
//! the way a cluster runs it: podman (runc, vfs storage private to the test) with the
//! DaemonSet's security settings — uid 65532, every capability dropped but NET_BIND_SERVICE,
//! no_new_privs, a read-only root. It serves a route on low ports over HTTP/1.1 and HTTP/2
//! over TLS in file mode, falls back to epoll under podman's default seccomp profile and keeps
//! io_uring under deploy/seccomp-ringress.json, runs the init container's prepare-node as the
//! DaemonSet does, and becomes ready in Kubernetes mode with the DaemonSet's own arguments.
//! Needs root (podman's rootful mode), as the suite's other privileged tests do.

mod support;

use std::net::{SocketAddr, TcpListener};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use k8s_openapi::api::apps::v1::DaemonSet;
use support::cluster::Cluster;
use support::*;

const TAG: &str = env!("CARGO_PKG_VERSION");

fn sh(cmd: &mut Command) -> Output {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?}: {}\n{}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// podman with storage and state of its own under `dir`.
struct Podman {
    dir: PathBuf,
}

impl Podman {
    fn cmd(&self) -> Command {
        let mut c = Command::new("podman");
        c.arg("--root")
            .arg(self.dir.join("storage"))
            .arg("--runroot")
            .arg(self.dir.join("run"))
            .args(["--storage-driver", "vfs", "--runtime", "runc", "--cgroup-manager", "cgroupfs"])
            .args(["--events-backend", "file"]);
        c
    }

    fn run(&self, args: &[&str]) -> String {
        String::from_utf8(sh(self.cmd().args(args)).stdout).unwrap().trim().to_string()
    }

    /// Starts a container as the DaemonSet's proxy container runs: uid 65532, NET_BIND_SERVICE
    /// alone, no_new_privs, a read-only root, the host's network. `opts` go before the image,
    /// `args` after it.
    fn proxy(&self, name: &str, opts: &[&str], args: &[&str]) -> Container<'_> {
        let mut all = vec!["run", "-d", "--name", name, "--network", "host", "--user", "65532:65532"];
        all.extend(["--cap-drop", "ALL", "--cap-add", "NET_BIND_SERVICE"]);
        all.extend(["--security-opt", "no-new-privileges", "--read-only"]);
        all.extend(["--ulimit", "nofile=20000:20000", "--ulimit", "nproc=32768:32768"]);
        all.extend(opts);
        let image = format!("ringress:{TAG}");
        all.push(&image);
        all.extend(args);
        self.run(&all);
        let c = Container { podman: self, name: name.to_string() };
        let start = Instant::now();
        while !c.logs().contains("ringress ready") {
            let state = self.run(&["inspect", "-f", "{{.State.Status}}", name]);
            assert!(
                state == "running" && start.elapsed() < Duration::from_secs(30),
                "{name} not ready ({state}):\n{}",
                c.logs()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        c
    }
}

impl Drop for Podman {
    fn drop(&mut self) {
        let _ = self.cmd().args(["rm", "-af", "-t", "0"]).output();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

struct Container<'a> {
    podman: &'a Podman,
    name: String,
}

impl Container<'_> {
    fn logs(&self) -> String {
        let o = self.podman.cmd().args(["logs", &self.name]).output().unwrap();
        String::from_utf8_lossy(&o.stdout).into_owned() + &String::from_utf8_lossy(&o.stderr)
    }

    /// The `Uid:` and `CapEff:` lines of the container's main process.
    fn status(&self) -> (String, String) {
        let pid = self.podman.run(&["inspect", "-f", "{{.State.Pid}}", &self.name]);
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
        let line =
            |k: &str| status.lines().find(|l| l.starts_with(k)).unwrap().split_whitespace().nth(1).unwrap().to_string();
        (line("Uid:"), line("CapEff:"))
    }
}

impl Drop for Container<'_> {
    fn drop(&mut self) {
        let _ = self.podman.cmd().args(["rm", "-f", "-t", "0", &self.name]).output();
    }
}

/// A free loopback port below 1024: binding it takes CAP_NET_BIND_SERVICE.
fn low_port() -> u16 {
    let seed = std::process::id() as u16;
    (0..300u16)
        .map(|i| 700 + (seed.wrapping_add(i * 7)) % 300)
        .find(|&p| TcpListener::bind(("127.0.0.1", p)).is_ok())
        .expect("a free port in 700..1000")
}

fn addr(port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], port))
}

fn curl_h2(https: u16, host: &str) -> (String, String) {
    let out = sh(Command::new("curl")
        .args(["-sk", "--http2", "--max-time", "10", "-w", "\n%{http_version} %{http_code}"])
        .args(["--resolve", &format!("{host}:{https}:127.0.0.1"), &format!("https://{host}:{https}/")]));
    let text = String::from_utf8(out.stdout).unwrap();
    let (body, status) = text.rsplit_once('\n').unwrap();
    (body.to_string(), status.to_string())
}

fn build(out: &Path) -> Vec<u8> {
    sh(Command::new("scripts/image.sh")
        .env("OUT", out)
        .env_remove("SOURCE_DATE_EPOCH")
        .arg(format!("amd64={}", env!("CARGO_BIN_EXE_ringress"))));
    std::fs::read(out.join(format!("ringress-{TAG}.oci.tar"))).unwrap()
}

#[test]
fn the_image_builds_reproducibly_and_runs_as_the_daemonset_runs_it() {
    let dir = support::proxy::temp_dir();
    let podman = Podman { dir: dir.clone() };

    // Two builds, one digest; both archives load, as the same image.
    let first = build(&dir.join("a"));
    assert_eq!(first, build(&dir.join("b")), "two builds of one commit differ");
    podman.run(&["load", "-i", dir.join(format!("a/ringress-{TAG}.oci.tar")).to_str().unwrap()]);
    let id = podman.run(&["image", "inspect", "-f", "{{.Id}}", &format!("ringress:{TAG}")]);
    podman.run(&["rmi", &format!("ringress:{TAG}")]);
    podman.run(&["load", "-i", dir.join(format!("a/ringress-{TAG}-amd64.docker.tar")).to_str().unwrap()]);
    assert_eq!(podman.run(&["image", "inspect", "-f", "{{.Id}}", &format!("ringress:{TAG}")]), id);
    let inspect =
        podman.run(&["image", "inspect", "-f", "{{.Config.User}} {{json .Config.Labels}}", &format!("ringress:{TAG}")]);
    assert!(inspect.starts_with("65532:65532 "), "{inspect}");
    let head = String::from_utf8(sh(Command::new("git").args(["rev-parse", "HEAD"])).stdout).unwrap();
    for label in [
        format!("\"org.opencontainers.image.version\":\"{TAG}\""),
        format!("\"org.opencontainers.image.revision\":\"{}\"", head.trim()),
        "\"org.opencontainers.image.licenses\":\"Apache-2.0\"".to_string(),
    ] {
        assert!(inspect.contains(&label), "{label} not in {inspect}");
    }

    // What is in the layer: exactly the binary, the libraries it links, the CA bundle and the
    // user database, all owned by 0:0; the binary carries cap_net_bind_service as a PAX xattr.
    let docker = dir.join(format!("a/ringress-{TAG}-amd64.docker.tar"));
    let manifest = sh(Command::new("tar").arg("-xOf").arg(&docker).arg("manifest.json")).stdout;
    let manifest: serde_json::Value = serde_json::from_slice(&manifest).unwrap();
    assert_eq!(manifest[0]["RepoTags"][0], format!("docker.io/library/ringress:{TAG}"));
    let layer_name = manifest[0]["Layers"][0].as_str().unwrap();
    let layer = sh(Command::new("tar").arg("-xOf").arg(&docker).arg(layer_name)).stdout;
    let unpacked = dir.join("layer");
    std::fs::create_dir_all(&unpacked).unwrap();
    std::fs::write(dir.join("layer.tar"), &layer).unwrap();
    let listing = String::from_utf8(sh(Command::new("tar").arg("-tvf").arg(dir.join("layer.tar"))).stdout).unwrap();
    let mut files: Vec<&str> = listing
        .lines()
        .filter(|l| !l.starts_with('d'))
        .map(|l| {
            assert!(l.split_whitespace().nth(1) == Some("0/0"), "not owned by 0:0: {l}");
            l.split_whitespace().nth(5).unwrap()
        })
        .collect();
    files.sort();
    let libs: Vec<&str> = files.iter().copied().filter(|f| f.starts_with("lib")).collect();
    assert!(libs.iter().any(|l| l.ends_with("/libc.so.6")) && libs.contains(&"lib64/ld-linux-x86-64.so.2"), "{libs:?}");
    let others: Vec<&str> = files.iter().copied().filter(|f| !f.starts_with("lib")).collect();
    assert_eq!(
        others,
        ["etc/group", "etc/nsswitch.conf", "etc/passwd", "etc/ssl/certs/ca-certificates.crt", "usr/bin/ringress"]
    );
    sh(Command::new("tar")
        .args(["--xattrs", "--xattrs-include=security.capability", "-xf"])
        .arg(dir.join("layer.tar"))
        .arg("-C")
        .arg(&unpacked));
    let cap = String::from_utf8(sh(Command::new("getcap").arg(unpacked.join("usr/bin/ringress"))).stdout).unwrap();
    assert!(cap.contains("cap_net_bind_service=p"), "{cap}");
    let passwd = std::fs::read_to_string(unpacked.join("etc/passwd")).unwrap();
    assert!(passwd.contains("nonroot:x:65532:65532:"), "{passwd}");
    assert!(std::fs::metadata(unpacked.join("etc/ssl/certs/ca-certificates.crt")).unwrap().len() > 100_000);

    // File mode, podman's default seccomp profile: epoll, a route served on low ports over
    // HTTP/1.1 and HTTP/2 over TLS, as uid 65532 holding NET_BIND_SERVICE alone.
    let up = Upstream::start("file-mode");
    let manifests = dir.join("manifests");
    std::fs::create_dir_all(&manifests).unwrap();
    std::fs::write(
        manifests.join("site.yaml"),
        service("a", &[up.addr]) + &ingress("site", Some("app.test"), &[("/", "a")]),
    )
    .unwrap();
    let (http, https, admin) = (low_port(), low_port() + 1, low_port() + 2);
    let mount = format!("{}:/manifests:ro", manifests.display());
    let listeners = [
        format!("--http=127.0.0.1:{http}"),
        format!("--https=127.0.0.1:{https}"),
        format!("--admin=127.0.0.1:{admin}"),
    ];
    let mut args = vec!["run", "--manifests", "/manifests"];
    args.extend(listeners.iter().map(String::as_str));
    {
        let c = podman.proxy("file-mode", &["-v", &mount], &args);
        assert!(c.logs().contains("io=\"epoll\""), "{}", c.logs());
        assert_eq!(c.status(), ("65532".to_string(), "0000000000000400".to_string()));
        let r = get(addr(http), "app.test", "/");
        assert_eq!((r.status, r.text().contains("file-mode")), (200, true), "{}", r.text());
        let (body, status) = curl_h2(https, "app.test");
        assert_eq!(status, "2 200", "{body}");
        assert!(body.contains("file-mode"), "{body}");
    }

    // The profile deploy/ installs: io_uring.
    {
        let c = podman.proxy(
            "file-mode-uring",
            &["-v", &mount, "--security-opt", "seccomp=deploy/seccomp-ringress.json"],
            &args,
        );
        assert!(c.logs().contains("io=\"io_uring\""), "{}", c.logs());
        assert_eq!(get(addr(http), "app.test", "/").status, 200);
    }

    // Kubernetes mode, as the DaemonSet runs it: the init container's prepare-node (root,
    // CHOWN and FOWNER alone) makes the log directory the proxy's and installs the profile;
    // the proxy, with the DaemonSet's arguments (listeners on test ports) and the profile the
    // init container installed, becomes ready, serves, writes its access log and Ingress status.
    let ds: DaemonSet =
        serde_yaml_ng::from_str(&std::fs::read_to_string("deploy/base/daemonset.yaml").unwrap()).unwrap();
    let pod = ds.spec.unwrap().template.spec.unwrap();
    let init_args = pod.init_containers.unwrap()[0].args.clone().unwrap();
    let proxy_args = pod.containers[0].args.clone().unwrap();
    let (logs, seccomp) = (dir.join("var-log-ringress"), dir.join("kubelet-seccomp"));
    // As the kubelet creates DirectoryOrCreate hostPaths: root-owned, 0755.
    std::fs::create_dir_all(&logs).unwrap();
    std::fs::create_dir_all(&seccomp).unwrap();
    let mut init = vec!["run", "--rm", "--user", "0", "--cap-drop", "ALL", "--cap-add", "CHOWN", "--cap-add", "FOWNER"];
    init.extend(["--security-opt", "no-new-privileges", "--read-only"]);
    init.extend(["--ulimit", "nofile=20000:20000", "--ulimit", "nproc=32768:32768"]);
    let (log_mount, seccomp_mount) =
        (format!("{}:/var/log/ringress", logs.display()), format!("{}:/host/seccomp", seccomp.display()));
    init.extend(["-v", &log_mount, "-v", &seccomp_mount]);
    let image = format!("ringress:{TAG}");
    init.push(&image);
    init.extend(init_args.iter().map(String::as_str));
    podman.run(&init);
    let meta = std::fs::metadata(&logs).unwrap();
    assert_eq!((meta.uid(), meta.gid(), meta.mode() & 0o7777), (65532, 65532, 0o750));
    let installed = seccomp.join("seccomp-ringress.json");
    assert_eq!(std::fs::read(&installed).unwrap(), std::fs::read("deploy/seccomp-ringress.json").unwrap());
    podman.run(&init); // again, as after a restart: already in place, still succeeds

    let c = Cluster::start();
    c.kubectl(&["apply", "-k", "deploy/"]);
    let kup = Upstream::start("kube-mode");
    c.apply(&(service("a", &[kup.addr]) + &ingress("site", Some("app.test"), &[("/", "a")])));
    let kubeconfig = format!("{}:/kube/config:ro", c.kubeconfig.display());
    let seccomp_opt = format!("seccomp={}", installed.display());
    let (khttp, khttps, kadmin, kmetrics) = (low_port(), low_port() + 1, low_port() + 2, low_port() + 3);
    let mut args: Vec<String> = proxy_args
        .iter()
        .map(|a| match a.split_once('=').map(|(k, _)| k) {
            Some("--http") => format!("--http=127.0.0.1:{khttp}"),
            Some("--https") => format!("--https=127.0.0.1:{khttps}"),
            Some("--admin") => format!("--admin=127.0.0.1:{kadmin}"),
            Some("--metrics") => format!("--metrics=127.0.0.1:{kmetrics}"),
            _ => a.clone(),
        })
        .collect();
    assert_eq!(args.iter().filter(|a| a.contains("127.0.0.1:")).count(), 4, "{args:?}");
    args.extend(["--sync-debounce-ms".into(), "20".into()]);
    let mut opts = vec!["-v", &kubeconfig, "-v", &log_mount, "--security-opt", &seccomp_opt];
    opts.extend(["-e", "KUBECONFIG=/kube/config", "-e", "RINGRESS_PUBLISH_ADDRESS=192.0.2.7", "-e", "POD_NAME=node-a"]);
    opts.extend(["-e", "HOST_IP=127.0.0.1", "-e", "RINGRESS_ACCESS_LOG=/var/log/ringress/access.log"]);
    let k = podman.proxy("kube-mode", &opts, &args.iter().map(String::as_str).collect::<Vec<_>>());
    assert!(k.logs().contains("io=\"io_uring\""), "{}", k.logs());
    assert_eq!(get(addr(kadmin), "x", "/readyz").status, 200);
    let r = get(addr(khttp), "app.test", "/");
    assert_eq!((r.status, r.text().contains("kube-mode")), (200, true), "{}\n{}", r.text(), k.logs());
    // /metrics on its own listener (from loopback, which --metrics-allow names); nothing else there.
    assert!(get(addr(kmetrics), "x", "/metrics").text().contains("ringress_"));
    assert_eq!(get(addr(kmetrics), "x", "/debug/routes").status, 404);
    let deadline = Instant::now() + Duration::from_secs(10);
    let log = logs.join("access.log");
    while !std::fs::read_to_string(&log).is_ok_and(|t| t.contains("\"GET / HTTP/1.1\" 200")) {
        assert!(Instant::now() < deadline, "no access log line in {}:\n{}", log.display(), k.logs());
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(std::fs::metadata(&log).unwrap().uid(), 65532);
    let status = || c.kubectl(&["get", "ingress", "site", "-o", "jsonpath={.status.loadBalancer.ingress[0].ip}"]);
    while status() != "192.0.2.7" {
        assert!(Instant::now() < deadline + Duration::from_secs(10), "no Ingress status:\n{}", k.logs());
        std::thread::sleep(Duration::from_millis(100));
    }
}
