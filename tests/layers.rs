//! The crate's layers point one way: read from the source, every `crate::<module>` path that
//! a top-level module of src/ uses (comments aside) is an edge, and the edges form no cycle.
//! The pure layers stay pure: `model` uses no other module, `snapshot` uses no I/O module,
//! and `runtime` knows nothing of proxies.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        let p = e.path();
        if p.is_dir() {
            rust_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

/// Top-level module -> the top-level modules it uses.
fn edges() -> BTreeMap<String, BTreeSet<String>> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    let module_of = |p: &Path| {
        let rel = p.strip_prefix(&src).unwrap();
        let first = rel.components().next().unwrap().as_os_str().to_string_lossy().into_owned();
        first.trim_end_matches(".rs").to_string()
    };
    let modules: BTreeSet<String> = files.iter().map(|p| module_of(p)).filter(|m| m != "main" && m != "lib").collect();
    let mut edges: BTreeMap<String, BTreeSet<String>> = modules.iter().map(|m| (m.clone(), BTreeSet::new())).collect();
    for f in &files {
        let from = module_of(f);
        if !modules.contains(&from) {
            continue;
        }
        for line in std::fs::read_to_string(f).unwrap().lines() {
            if line.trim_start().starts_with("//") {
                continue;
            }
            for (i, _) in line.match_indices("crate::") {
                let rest = &line[i + "crate::".len()..];
                let name: String = rest.chars().take_while(|c| c.is_ascii_alphanumeric() || *c == '_').collect();
                if name != from && modules.contains(&name) {
                    edges.get_mut(&from).unwrap().insert(name);
                }
            }
        }
    }
    edges
}

/// A cycle through `start`, if there is one (depth-first).
fn cycle_from(edges: &BTreeMap<String, BTreeSet<String>>, start: &str) -> Option<Vec<String>> {
    fn walk(
        edges: &BTreeMap<String, BTreeSet<String>>,
        at: &str,
        start: &str,
        path: &mut Vec<String>,
        seen: &mut BTreeSet<String>,
    ) -> bool {
        for next in &edges[at] {
            if next == start {
                path.push(next.clone());
                return true;
            }
            if seen.insert(next.clone()) {
                path.push(next.clone());
                if walk(edges, next, start, path, seen) {
                    return true;
                }
                path.pop();
            }
        }
        false
    }
    let mut path = vec![start.to_string()];
    walk(edges, start, start, &mut path, &mut BTreeSet::new()).then_some(path)
}

#[test]
fn no_cycle_between_the_top_level_modules() {
    let edges = edges();
    assert!(edges.len() >= 10, "modules found: {:?}", edges.keys());
    for m in edges.keys() {
        if let Some(c) = cycle_from(&edges, m) {
            panic!("a cycle: {}\nall edges: {edges:#?}", c.join(" -> "));
        }
    }
}

#[test]
fn the_pure_layers_use_no_io_layer() {
    let edges = edges();
    assert!(edges["model"].is_empty(), "model uses {:?}", edges["model"]);
    assert!(edges["runtime"].is_empty(), "runtime uses {:?}", edges["runtime"]);
    let io = ["runtime", "proxy", "tls", "upstream", "provider", "metrics", "admin"];
    let impure: Vec<&String> = edges["snapshot"].iter().filter(|m| io.contains(&m.as_str())).collect();
    assert!(impure.is_empty(), "snapshot uses {impure:?}");
}
