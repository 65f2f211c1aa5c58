//! A "cluster" for end-to-end tests: the in-memory API server (tests/apiserver) on loopback,
//! a kubeconfig for it, and the real `kubectl` from the PATH, which these tests require.

use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Stdio};

pub use ringress_apiserver::ApiServer;

pub struct Cluster {
    pub api: ApiServer,
    pub dir: PathBuf,
    pub kubeconfig: PathBuf,
}

/// The `kubectl` on the PATH. Missing is a failure, never a skip: these machines and CI have it.
pub fn kubectl_path() -> PathBuf {
    std::env::var_os("PATH")
        .into_iter()
        .flat_map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .map(|d| d.join("kubectl"))
        .find(|p| p.is_file())
        .expect(
            "kubectl is not on the PATH: the Kubernetes-mode tests drive the real kubectl and cannot run without it",
        )
}

impl Cluster {
    pub fn start() -> Cluster {
        let api = ApiServer::start().expect("start the test API server");
        let dir = super::proxy::temp_dir();
        let kubeconfig = dir.join("kubeconfig");
        api.write_kubeconfig(&kubeconfig).unwrap();
        Cluster { api, dir, kubeconfig }
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut c = Command::new(kubectl_path());
        c.env("KUBECONFIG", &self.kubeconfig).env("HOME", &self.dir).args(args);
        c
    }

    /// Runs kubectl with `stdin`; (success, stdout, stderr).
    pub fn try_kubectl(&self, args: &[&str], stdin: &str) -> (bool, String, String) {
        let mut child = self
            .command(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("run kubectl");
        child.stdin.take().unwrap().write_all(stdin.as_bytes()).unwrap();
        let out = child.wait_with_output().unwrap();
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }

    /// Runs kubectl, which must succeed; its stdout.
    pub fn kubectl(&self, args: &[&str]) -> String {
        self.kubectl_with(args, "")
    }

    pub fn kubectl_with(&self, args: &[&str], stdin: &str) -> String {
        let (ok, out, err) = self.try_kubectl(args, stdin);
        assert!(ok, "kubectl {} failed:\n{err}\n{out}", args.join(" "));
        out
    }

    /// `kubectl apply -f -` of a YAML stream.
    pub fn apply(&self, yaml: &str) -> String {
        self.kubectl_with(&["apply", "-f", "-"], yaml)
    }

    /// Ringress in Kubernetes mode against this cluster.
    pub fn proxy(&self, args: &[&str]) -> super::Proxy {
        super::Proxy::start_kube(&self.kubeconfig, args, true)
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
