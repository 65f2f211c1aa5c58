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

impl Cluster {
    /// Fails unless the RBAC of deploy/base/rbac.yaml allows every request ringress made to
    /// this API server: the ClusterRole everywhere, the Role in the `ringress` namespace (where
    /// its RoleBinding is). A status write or a watch the manifests forgot fails here rather
    /// than with a 403 in a real cluster.
    pub fn assert_rbac_allows_what_ringress_did(&self) {
        self.assert_rbac_allows(&["deploy/base/rbac.yaml"]);
    }

    /// The same with the rules of all these files.
    pub fn assert_rbac_allows(&self, files: &[&str]) {
        let text: String = files.iter().map(|f| std::fs::read_to_string(f).expect(f) + "\n---\n").collect();
        let mut rules: Vec<Rule> = Vec::new();
        for doc in serde_yaml_ng::Deserializer::from_str(&text) {
            let v: serde_json::Value = serde::Deserialize::deserialize(doc).expect("rbac.yaml parses");
            let scope = match v["kind"].as_str() {
                Some("ClusterRole") => None,
                Some("Role") => Some(v["metadata"]["namespace"].as_str().unwrap_or_default().to_string()),
                _ => continue,
            };
            let strings = |x: &serde_json::Value| -> Vec<String> {
                x.as_array()
                    .map(|a| a.iter().filter_map(|s| s.as_str().map(String::from)).collect())
                    .unwrap_or_default()
            };
            for r in v["rules"].as_array().into_iter().flatten() {
                assert!(r.get("resourceNames").is_none(), "resourceNames are not modelled here");
                rules.push(Rule {
                    scope: scope.clone(),
                    groups: strings(&r["apiGroups"]),
                    resources: strings(&r["resources"]),
                    verbs: strings(&r["verbs"]),
                });
            }
        }
        let requests = self.api.requests();
        assert!(!requests.is_empty(), "ringress made no requests");
        let denied: Vec<_> = requests
            .iter()
            .filter(|q| {
                !rules.iter().any(|r| {
                    r.scope.as_ref().is_none_or(|ns| q.namespace.as_deref() == Some(ns.as_str()))
                        && r.groups.iter().any(|g| g == q.group || g == "*")
                        && r.resources.iter().any(|x| *x == q.resource || x == "*")
                        && r.verbs.iter().any(|v| v == q.verb || v == "*")
                })
            })
            .collect();
        assert!(denied.is_empty(), "{files:?} do not allow what ringress did: {denied:#?}");
    }
}

/// One RBAC rule, and the namespace it is limited to (a Role's), if any.
struct Rule {
    scope: Option<String>,
    groups: Vec<String>,
    resources: Vec<String>,
    verbs: Vec<String>,
}
