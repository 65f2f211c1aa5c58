//! Live reload from manifest files: a change applies within a second with zero failed
//! requests under load (wrk), a keep-alive connection sees the new table on its next request,
//! and a broken file is reported precisely while the last good table stays live.

mod support;

use std::io::Write;
use std::time::{Duration, Instant};

use support::*;

fn routes_to(svc: &str, a: &Upstream, b: &Upstream) -> String {
    service("primary", &[a.addr]) + &service("standby", &[b.addr]) + &ingress("site", Some("app.test"), &[("/", svc)])
}

per_backend!(smoke fn failover_under_load_with_zero_failed_requests(io) {
    let a = Upstream::start("primary");
    let b = Upstream::start("standby");
    let p = Proxy::start(io, &routes_to("primary", &a, &b), &[]);
    assert_eq!(get(p.http, "app.test", "/").header("x-upstream"), Some("primary"));

    // A keep-alive connection opened before the change.
    let mut ka = connect(p.http);
    let mut pending = Vec::new();
    ka.write_all(b"GET / HTTP/1.1\r\nHost: app.test\r\n\r\n").unwrap();
    assert_eq!(read_response(&mut ka, &mut pending, false).unwrap().header("x-upstream"), Some("primary"));

    let addr = p.http;
    let load = std::thread::spawn(move || wrk(addr, "app.test", 4, 32));
    std::thread::sleep(Duration::from_millis(1500));
    let before = b.hits();
    let generation = p.generation();
    let changed = Instant::now();
    p.replace_manifests(&routes_to("standby", &a, &b));
    p.wait_for(|| p.generation() > generation, "the new table to be published");
    let publish_time = changed.elapsed();
    let (requests, non2xx, socket_errors, out) = load.join().unwrap();
    assert!(requests > 1000, "{io}: too little load to mean anything: {out}");
    assert_eq!((non2xx, socket_errors), (0, 0), "{io}: failed requests during reload:\n{out}");
    assert!(b.hits() > before, "{io}: traffic never moved to the standby");
    // Not asserted (timings do not belong in tests): the poll interval bounds it.
    eprintln!("{io}: manifests change published after {publish_time:?}");
    // The existing keep-alive connection follows the new table on its next request.
    ka.write_all(b"GET / HTTP/1.1\r\nHost: app.test\r\n\r\n").unwrap();
    assert_eq!(read_response(&mut ka, &mut pending, false).unwrap().header("x-upstream"), Some("standby"), "{io}");
});

per_backend!(fn broken_manifest_keeps_the_last_good_table(io) {
    let a = Upstream::start("primary");
    let b = Upstream::start("standby");
    let p = Proxy::start(io, &routes_to("primary", &a, &b), &[]);
    let generation = p.generation();
    // Valid YAML, invalid Ingress: a path without a leading slash, in document 3.
    let broken = routes_to("standby", &a, &b).replace("path: \"/\"", "path: \"oops\"");
    p.replace_manifests(&broken);
    p.wait_for(|| p.log_text().contains("manifests rejected"), "the rejection to be logged");
    let log = p.log_text();
    let line = log.lines().find(|l| l.contains("manifests rejected")).unwrap();
    for want in ["routes.yaml", "Ingress default/site", "spec.rules[0].http.paths[0].path", "must start with '/'"] {
        assert!(line.contains(want), "{io}: error does not name {want:?}: {line}");
    }
    assert_eq!(p.generation(), generation, "{io}: a rejected file was published");
    assert_eq!(get(p.http, "app.test", "/").header("x-upstream"), Some("primary"), "{io}");
    // Broken YAML: same.
    p.replace_manifests("apiVersion: v1\nkind: Service\nmetadata: {name: [unclosed\n");
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(get(p.http, "app.test", "/").header("x-upstream"), Some("primary"), "{io}");
    // A fix applies.
    p.replace_manifests(&routes_to("standby", &a, &b));
    p.wait_for(|| get(p.http, "app.test", "/").header("x-upstream") == Some("standby"), "the fixed file to apply");
});

#[test]
fn directory_of_files_and_configmap_style_symlink_swap() {
    let a = Upstream::start("primary");
    let b = Upstream::start("standby");
    let dir = support::proxy::temp_dir();
    // A ConfigMap volume: data in a timestamped directory, `..data` pointing at it, and
    // visible symlinks through `..data`.
    let write_version = |n: u32, svc: &str| {
        let v = dir.join(format!("..v{n}"));
        std::fs::create_dir_all(&v).unwrap();
        std::fs::write(v.join("services.yaml"), service("primary", &[a.addr]) + &service("standby", &[b.addr]))
            .unwrap();
        std::fs::write(v.join("ingress.yml"), ingress("site", Some("app.test"), &[("/", svc)])).unwrap();
        let tmp = dir.join("..data_tmp");
        let _ = std::fs::remove_file(&tmp);
        std::os::unix::fs::symlink(format!("..v{n}"), &tmp).unwrap();
        std::fs::rename(&tmp, dir.join("..data")).unwrap();
    };
    write_version(1, "primary");
    for f in ["services.yaml", "ingress.yml"] {
        std::os::unix::fs::symlink(format!("..data/{f}"), dir.join(f)).unwrap();
    }
    std::fs::write(dir.join("README.txt"), "not a manifest").unwrap();
    let p = Proxy::start_in(dir.clone(), "uring", &[]);
    assert_eq!(get(p.http, "app.test", "/").header("x-upstream"), Some("primary"));
    write_version(2, "standby");
    p.wait_for(|| get(p.http, "app.test", "/").header("x-upstream") == Some("standby"), "the symlink swap to apply");
}
