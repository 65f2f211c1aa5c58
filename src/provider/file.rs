//! The file provider: a YAML file or a directory of them, polled for changes (which also sees
//! editors' rename-over and ConfigMap volume `..data` symlink swaps). A file that fails to
//! parse is reported with its name, document and field, and the last good table stays live.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime};

use crate::model::{parse_documents, Objects, ParseError};
use crate::provider::dns::Resolver;
use crate::snapshot::{build_after, BuildOptions, Inputs};
use crate::Published;

#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("{path}: {error}")]
    Io { path: PathBuf, error: std::io::Error },
    #[error("{path}: {error}")]
    Parse { path: PathBuf, error: Box<ParseError> },
    #[error("{path}: no .yaml, .yml or .json files found")]
    Empty { path: PathBuf },
}

fn is_manifest(p: &Path) -> bool {
    let hidden = p.file_name().and_then(|n| n.to_str()).is_some_and(|n| n.starts_with('.'));
    let ext = p.extension().and_then(|e| e.to_str()).unwrap_or("");
    !hidden && matches!(ext, "yaml" | "yml" | "json")
}

/// The manifest files under `path`, sorted: the file itself, or a directory's visible
/// `.yaml`/`.yml`/`.json` entries (not recursive).
pub fn manifest_files(path: &Path) -> Result<Vec<PathBuf>, LoadError> {
    let io = |error| LoadError::Io { path: path.to_path_buf(), error };
    let meta = std::fs::metadata(path).map_err(io)?;
    if !meta.is_dir() {
        return Ok(vec![path.to_path_buf()]);
    }
    let mut files: Vec<PathBuf> = std::fs::read_dir(path)
        .map_err(io)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| is_manifest(p) && p.is_file())
        .collect();
    files.sort();
    if files.is_empty() {
        return Err(LoadError::Empty { path: path.to_path_buf() });
    }
    Ok(files)
}

/// Reads and parses every manifest under `path`; the first bad file fails the whole load.
pub fn load(path: &Path) -> Result<Objects, LoadError> {
    let mut all = Objects::default();
    for f in manifest_files(path)? {
        let text = std::fs::read_to_string(&f).map_err(|error| LoadError::Io { path: f.clone(), error })?;
        let objects =
            parse_documents(&text).map_err(|error| LoadError::Parse { path: f.clone(), error: Box::new(error) })?;
        all.extend(objects);
    }
    for w in all.keep_last_definitions() {
        tracing::warn!(path = %path.display(), "{w}");
    }
    for w in crate::snapshot::gateway::lower_objects(&mut all).problems() {
        tracing::warn!(path = %path.display(), "{w}");
    }
    Ok(all)
}

/// What identifies one version of the manifests on disk.
pub type Fingerprint = Vec<(PathBuf, u64, SystemTime, u64)>;

/// Taken before the files are read, so a change made while (or after) they are read is
/// seen by the next poll.
pub fn fingerprint(path: &Path) -> Fingerprint {
    use std::os::unix::fs::MetadataExt;
    let files = manifest_files(path).unwrap_or_default();
    files
        .into_iter()
        .filter_map(|f| {
            let m = std::fs::metadata(&f).ok()?;
            Some((f, m.len(), m.modified().ok()?, m.ino()))
        })
        .collect()
}

/// Loads, builds (with `dns`'s answers for ExternalName Services, waiting for the first
/// answers of names it has not looked up before) and publishes. Returns the generation, or
/// the error (nothing published).
pub fn reload(path: &Path, opts: &BuildOptions, published: &Published, dns: &Resolver) -> Result<u64, LoadError> {
    let started = Instant::now();
    let objects = load(path)?;
    let mut inputs = Inputs::of(&objects);
    inputs.dns = dns.names();
    let snap = build_after(&inputs, opts, &published.load());
    let snap = dns.settle(snap, &mut inputs);
    let routes = snap.table.len();
    let generation = published.publish(snap);
    let served = inputs.ingresses.iter().filter(|i| crate::snapshot::serves(i, &inputs.ingress_classes, opts));
    let notes: Vec<_> =
        served.flat_map(|i| crate::snapshot::annotations::notes(i, opts.unsupported_security)).collect();
    *published.control.annotations.lock().unwrap_or_else(|e| e.into_inner()) =
        crate::provider::count_notes(notes.iter());
    published.control.builds.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    published.control.build_seconds.observe(started.elapsed());
    tracing::info!(
        generation,
        objects = objects.len(),
        routes,
        build_ms = started.elapsed().as_secs_f64() * 1e3,
        "routing table published"
    );
    Ok(generation)
}

/// Watches `path` forever (on the calling thread), republishing on every change, and when an
/// ExternalName answer changed. `last` is the fingerprint taken before the initial load.
pub fn watch(
    path: PathBuf,
    opts: BuildOptions,
    published: &'static Published,
    interval: Duration,
    mut last: Fingerprint,
    dns: Resolver,
) {
    let mut answers = dns.version();
    loop {
        std::thread::sleep(interval);
        let now = fingerprint(&path);
        if now == last && dns.version() == answers {
            continue;
        }
        last = now;
        answers = dns.version();
        if let Err(e) = reload(&path, &opts, published, &dns) {
            tracing::error!(error = %e, "manifests rejected; the last good routing table stays live");
        }
    }
}
