//! `ringress migrate`: what ringress would do with an ingress-nginx installation's Ingresses
//! and ConfigMap, per annotation and per key, read from a live cluster (read-only) or from
//! manifests; and the same Ingresses written out for `ingressClassName: ringress`, so both
//! controllers can serve side by side while traffic moves.
//!
//! The verdicts come from the code that serves the routes ([`crate::snapshot::notes`] and the
//! ConfigMap reader), not from a second list that could drift: an annotation ringress reads
//! and accepts is `supported`; one it refuses the route for is `refused`; a value it cannot
//! parse is `invalid`. What is left is sorted with ingress-nginx's own list of keys (from its
//! documentation, `migrate/ingress_nginx_*.txt`) into `no-op` (meaningless for ringress's
//! design, with why), `unsupported` (an ingress-nginx feature ringress lacks: the route is
//! served without it) and `unknown` (not an ingress-nginx key: both controllers ignore it).

pub mod names;

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::Context;
use serde::Serialize;
use serde_json::Value;

use crate::model::{ConfigMap, Ingress, ObjectKey, LEGACY_CLASS_ANNOTATION};
use crate::snapshot;
use crate::snapshot::access::UnsupportedPolicy;

const NGINX_ANNOTATIONS: &str = include_str!("migrate/ingress_nginx_annotations.txt");
const NGINX_CONFIGMAP: &str = include_str!("migrate/ingress_nginx_configmap.txt");

/// Where a canary Ingress stands: ringress would serve it as an ordinary Ingress.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Status {
    /// Read and honoured.
    Supported,
    /// Accepted and ignored by design.
    NoOp,
    /// ringress stops the route (fail closed).
    Refused,
    /// The value does not parse: ringress ignores it (the default applies).
    Invalid,
    /// An ingress-nginx feature ringress lacks: served without it.
    Unsupported,
    /// Not an ingress-nginx key.
    Unknown,
}

impl Status {
    fn label(self) -> &'static str {
        match self {
            Status::Supported => "supported",
            Status::NoOp => "no-op",
            Status::Refused => "REFUSED",
            Status::Invalid => "invalid",
            Status::Unsupported => "unsupported",
            Status::Unknown => "unknown",
        }
    }

    fn action(self) -> &'static str {
        match self {
            Status::Supported | Status::NoOp => "",
            Status::Refused => {
                "ringress will not serve the routes this protects while it stays: replace it with a protection ringress enforces (the README's annotation tables), or keep those routes on ingress-nginx"
            }
            Status::Invalid => "fix the value: ringress ignores it and the default applies",
            Status::Unsupported => {
                "ringress serves the routes without this behaviour: check that it is not needed, or keep those routes on ingress-nginx"
            }
            Status::Unknown => "not an ingress-nginx key (a typo?): both controllers ignore it",
        }
    }
}

#[derive(Clone, Debug, Serialize)]
pub struct Finding {
    pub key: String,
    pub value: String,
    pub status: Status,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub reason: String,
    #[serde(skip_serializing_if = "str::is_empty")]
    pub action: &'static str,
}

#[derive(Clone, Debug, Serialize)]
pub struct IngressReport {
    pub namespace: String,
    pub name: String,
    /// `ready` (every annotation supported or a no-op), `differs` (some ignored), `refused`.
    pub verdict: &'static str,
    pub annotations: Vec<Finding>,
}

#[derive(Clone, Debug, Serialize)]
pub struct ConfigMapReport {
    pub namespace: String,
    pub name: String,
    pub keys: Vec<Finding>,
}

#[derive(Clone, Debug, Serialize)]
pub struct Report {
    pub source: String,
    pub ingress_class: String,
    pub ingresses: Vec<IngressReport>,
    #[serde(rename = "configMap")]
    pub config_map: Option<ConfigMapReport>,
    /// Counts by status over Ingress annotations and ConfigMap keys, and Ingresses by verdict.
    pub summary: BTreeMap<String, usize>,
}

impl Report {
    /// Whether anything would be refused: `ringress migrate` then exits non-zero.
    pub fn refuses(&self) -> bool {
        self.summary.get("refused").is_some_and(|n| *n > 0)
    }
}

/// The objects `migrate` reads: Ingresses (as parsed, and as they were, for `--emit`) and
/// the ingress-nginx ConfigMap.
#[derive(Default)]
pub struct Input {
    pub ingresses: Vec<(Ingress, Value)>,
    pub config_map: Option<ConfigMap>,
}

impl Input {
    /// Reads Ingresses and the ConfigMap `config_map` from YAML files (a file or a directory,
    /// as `--manifests` takes them); other kinds are skipped.
    pub fn from_manifests(path: &Path, config_map: &ObjectKey) -> anyhow::Result<Input> {
        let mut input = Input::default();
        for file in crate::provider::file::manifest_files(path)? {
            let text = std::fs::read_to_string(&file).with_context(|| format!("reading {}", file.display()))?;
            for (i, doc) in serde_yaml_ng::Deserializer::from_str(&text).enumerate() {
                let v: Value = serde::Deserialize::deserialize(doc)
                    .with_context(|| format!("{}: document {}: invalid YAML", file.display(), i + 1))?;
                let items = match v.get("kind").and_then(Value::as_str) {
                    Some("List") => v.get("items").and_then(Value::as_array).cloned().unwrap_or_default(),
                    _ => vec![v],
                };
                for item in items {
                    input.add(item, config_map).with_context(|| format!("{}: document {}", file.display(), i + 1))?;
                }
            }
        }
        Ok(input)
    }

    /// Reads every Ingress and the ConfigMap from the cluster: list and get, nothing written.
    pub fn from_cluster(kubeconfig: Option<&Path>, config_map: &ObjectKey) -> anyhow::Result<Input> {
        use k8s_openapi::api::core::v1::ConfigMap as KConfigMap;
        use k8s_openapi::api::networking::v1::Ingress as KIngress;
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
        rt.block_on(async {
            let client = crate::provider::kube::client(kubeconfig).await?;
            let mut input = Input::default();
            let api: kube::Api<KIngress> = kube::Api::all(client.clone());
            let list = api.list(&Default::default()).await.context("listing Ingresses")?;
            for ing in list.items {
                let mut v = serde_json::to_value(&ing)?;
                v["apiVersion"] = "networking.k8s.io/v1".into();
                v["kind"] = "Ingress".into();
                input.add(v, config_map)?;
            }
            let api: kube::Api<KConfigMap> = kube::Api::namespaced(client, &config_map.namespace);
            if let Some(cm) =
                api.get_opt(&config_map.name).await.with_context(|| format!("reading ConfigMap {config_map}"))?
            {
                let mut v = serde_json::to_value(&cm)?;
                v["apiVersion"] = "v1".into();
                v["kind"] = "ConfigMap".into();
                input.add(v, config_map)?;
            }
            Ok(input)
        })
    }

    fn add(&mut self, v: Value, config_map: &ObjectKey) -> anyhow::Result<()> {
        match v.get("kind").and_then(Value::as_str) {
            Some("Ingress") => {
                let objects = crate::model::parse_object(&v)?;
                if let Some(ing) = objects.ingresses.into_iter().next() {
                    self.ingresses.push((ing, v));
                }
            }
            Some("ConfigMap") => {
                let objects = crate::model::parse_object(&v)?;
                self.config_map =
                    objects.config_maps.into_iter().find(|c| c.key == *config_map).or(self.config_map.take());
            }
            _ => {}
        }
        Ok(())
    }
}

fn listed(list: &'static str, key: &str) -> bool {
    list.lines().any(|l| l == key)
}

fn noop(table: &[(&str, &'static str)], key: &str) -> Option<&'static str> {
    table.iter().find(|(k, _)| *k == key).map(|(_, why)| *why)
}

/// The Ingresses of `class` (by `spec.ingressClassName` or the legacy annotation; with
/// `classless`, also those that name none) and the ConfigMap, judged.
pub fn report(input: &Input, source: String, class: &str, classless: bool) -> Report {
    let mut ingresses = Vec::new();
    for (ing, _) in input.ingresses.iter().filter(|(i, _)| selected(i, class, classless)) {
        let notes = snapshot::annotations::notes(ing, UnsupportedPolicy::Refuse);
        let mut findings = Vec::new();
        for (full, value) in &ing.annotations {
            let Some(key) = snapshot::annotations::PREFIXES.iter().find_map(|p| full.strip_prefix(p)) else { continue };
            let note = notes.iter().find(|n| n.annotation == *full);
            let (status, reason) = match note {
                _ if noop(snapshot::annotations::NO_OP, key).is_some() => {
                    (Status::NoOp, noop(snapshot::annotations::NO_OP, key).unwrap_or_default().to_string())
                }
                Some(n) if n.refused => (Status::Refused, n.message.clone()),
                Some(n) if !n.unsupported => (Status::Invalid, n.message.clone()),
                Some(_) if listed(NGINX_ANNOTATIONS, key) => {
                    (Status::Unsupported, format!("ingress-nginx's {key} is not implemented by ringress"))
                }
                Some(_) => (Status::Unknown, format!("{key} is not an ingress-nginx annotation")),
                None => (Status::Supported, String::new()),
            };
            findings.push(Finding { key: full.clone(), value: value.clone(), status, reason, action: status.action() });
        }
        // A refusal the notes tie to no single annotation (e.g. auth-type without its secret).
        for n in notes.iter().filter(|n| n.refused && !ing.annotations.contains_key(&n.annotation)) {
            findings.push(Finding {
                key: n.annotation.clone(),
                value: String::new(),
                status: Status::Refused,
                reason: n.message.clone(),
                action: Status::Refused.action(),
            });
        }
        let verdict = if findings.iter().any(|f| f.status == Status::Refused) {
            "refused"
        } else if findings.iter().any(|f| matches!(f.status, Status::Invalid | Status::Unsupported)) {
            "differs"
        } else {
            "ready"
        };
        ingresses.push(IngressReport {
            namespace: ing.key.namespace.clone(),
            name: ing.key.name.clone(),
            verdict,
            annotations: findings,
        });
    }
    ingresses.sort_by(|a, b| (&a.namespace, &a.name).cmp(&(&b.namespace, &b.name)));

    let config_map = input.config_map.as_ref().map(|cm| {
        let (_, warnings) = snapshot::config::apply(&Default::default(), None, Some(cm));
        let global_unenforced = |k: &str| snapshot::access::GLOBAL_UNENFORCED.iter().find(|(key, _)| *key == k).map(|(_, w)| *w);
        let keys = cm
            .data
            .iter()
            .map(|(key, value)| {
                let invalid = warnings.iter().find(|w| w.contains(&format!("key {key}: ")));
                let (status, reason) = if let Some(what) = global_unenforced(key).filter(|_| !value.trim().is_empty()) {
                    (
                        Status::Refused,
                        format!("{key} asks for {what}, which ringress does not enforce: every Ingress that does not opt out with enable-global-auth: \"false\" is refused"),
                    )
                } else if let Some(w) = invalid {
                    (Status::Invalid, w.clone())
                } else if let Some(why) = noop(snapshot::config::NO_OP, key) {
                    (Status::NoOp, why.to_string())
                } else if snapshot::config::keys().any(|k| k == key) || snapshot::config::is_global_auth_key(key) {
                    (Status::Supported, String::new())
                } else if listed(NGINX_CONFIGMAP, key) {
                    (Status::Unsupported, format!("ingress-nginx's ConfigMap key {key} is not implemented by ringress"))
                } else {
                    (Status::Unknown, format!("{key} is not an ingress-nginx ConfigMap key"))
                };
                Finding { key: key.clone(), value: value.clone(), status, reason, action: status.action() }
            })
            .collect();
        ConfigMapReport { namespace: cm.key.namespace.clone(), name: cm.key.name.clone(), keys }
    });

    let mut summary: BTreeMap<String, usize> = BTreeMap::new();
    for f in ingresses.iter().flat_map(|i| &i.annotations).chain(config_map.iter().flat_map(|c| &c.keys)) {
        *summary.entry(f.status.label().to_ascii_lowercase()).or_default() += 1;
    }
    for i in &ingresses {
        *summary.entry(format!("ingresses-{}", i.verdict)).or_default() += 1;
    }
    summary.insert("ingresses".into(), ingresses.len());
    Report { source, ingress_class: class.to_string(), ingresses, config_map, summary }
}

fn selected(ing: &Ingress, class: &str, classless: bool) -> bool {
    match ing.requested_class() {
        Some(c) => c == class,
        None => classless,
    }
}

impl std::fmt::Display for Report {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(
            f,
            "ringress migrate: {} Ingress(es) of class {:?} from {}",
            self.ingresses.len(),
            self.ingress_class,
            self.source
        )?;
        let finding = |f: &mut std::fmt::Formatter<'_>, x: &Finding| -> std::fmt::Result {
            writeln!(f, "  {:<12} {}: {:?}", x.status.label(), x.key, x.value)?;
            if !x.reason.is_empty() {
                writeln!(f, "               {}", x.reason)?;
            }
            if !x.action.is_empty() {
                writeln!(f, "               what to do: {}", x.action)?;
            }
            Ok(())
        };
        for i in &self.ingresses {
            writeln!(f, "\nIngress {}/{}: {}", i.namespace, i.name, i.verdict)?;
            for x in &i.annotations {
                finding(f, x)?;
            }
        }
        match &self.config_map {
            Some(c) => {
                writeln!(f, "\nConfigMap {}/{}:", c.namespace, c.name)?;
                for x in &c.keys {
                    finding(f, x)?;
                }
            }
            None => writeln!(f, "\nConfigMap: not found (nothing to compare)")?,
        }
        let counts: Vec<String> = self.summary.iter().map(|(k, v)| format!("{k} {v}")).collect();
        writeln!(f, "\nsummary: {}", counts.join(", "))?;
        if self.refuses() {
            writeln!(f, "some routes would be refused: see REFUSED above")?;
        }
        Ok(())
    }
}

/// Writes each selected Ingress for ringress's class into `dir/<namespace>/<name>.json`: the
/// object as it was (no status, no server-set metadata), `spec.ingressClassName` set to
/// `target_class`, the legacy class annotation removed, and `suffix` added to its name so it
/// can sit beside the ingress-nginx original; and the ConfigMap's supported keys as ringress's
/// ConfigMap `config_map` in `dir/configmap.json`. JSON, which kubectl applies as it does YAML,
/// because a YAML writer leaves values such as `on` unquoted and kubectl's YAML 1.1 reader
/// would take them for booleans. Returns the files written.
pub struct Emit<'a> {
    pub dir: &'a Path,
    pub class: &'a str,
    pub classless: bool,
    pub target_class: &'a str,
    pub suffix: &'a str,
    pub config_map: &'a ObjectKey,
}

/// `report` is [`report`]'s verdict on the same `input`: its supported ConfigMap keys are copied.
pub fn emit(input: &Input, report: &Report, e: &Emit) -> anyhow::Result<Vec<std::path::PathBuf>> {
    let Emit { dir, class, classless, target_class, suffix, config_map } = *e;
    let mut written = Vec::new();
    let write = |path: std::path::PathBuf, v: &Value| -> anyhow::Result<std::path::PathBuf> {
        std::fs::create_dir_all(path.parent().expect("a file under dir"))
            .with_context(|| format!("creating {}", dir.display()))?;
        std::fs::write(&path, serde_json::to_string_pretty(v)? + "\n")
            .with_context(|| format!("writing {}", path.display()))?;
        Ok(path)
    };
    for (ing, raw) in input.ingresses.iter().filter(|(i, _)| selected(i, class, classless)) {
        let mut v = raw.clone();
        if let Some(obj) = v.as_object_mut() {
            obj.remove("status");
        }
        let meta = v.get_mut("metadata").and_then(Value::as_object_mut).context("an Ingress without metadata")?;
        for k in [
            "uid",
            "resourceVersion",
            "generation",
            "creationTimestamp",
            "managedFields",
            "selfLink",
            "ownerReferences",
        ] {
            meta.remove(k);
        }
        meta.insert("name".into(), format!("{}{suffix}", ing.key.name).into());
        meta.insert("namespace".into(), ing.key.namespace.clone().into());
        if let Some(ann) = meta.get_mut("annotations").and_then(Value::as_object_mut) {
            ann.remove(LEGACY_CLASS_ANNOTATION);
            ann.remove("kubectl.kubernetes.io/last-applied-configuration");
            if ann.is_empty() {
                meta.remove("annotations");
            }
        }
        v["spec"]["ingressClassName"] = target_class.into();
        written.push(write(dir.join(&ing.key.namespace).join(format!("{}{suffix}.json", ing.key.name)), &v)?);
    }
    if let Some(cm) = &input.config_map {
        let supported: BTreeMap<&str, &str> = report
            .config_map
            .iter()
            .flat_map(|c| &c.keys)
            .filter(|k| k.status == Status::Supported)
            .map(|k| (k.key.as_str(), k.value.as_str()))
            .collect();
        let v = serde_json::json!({
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"namespace": config_map.namespace, "name": config_map.name,
                         "annotations": {"ringress.dev/migrated-from": cm.key.to_string()}},
            "data": supported,
        });
        written.push(write(dir.join("configmap.json"), &v)?);
    }
    Ok(written)
}
