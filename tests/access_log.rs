//! The access log end to end: every request's line exactly once across rotated and gzipped
//! files under load, the file count and disk budget never exceeded, the JSON format and the
//! request id sent upstream, SIGUSR1 reopening, and a full disk survived.

mod support;

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use support::*;

fn manifests(a: &Upstream, data: &[(&str, &str)]) -> String {
    let mut cm =
        String::from("---\napiVersion: v1\nkind: ConfigMap\nmetadata: {name: ringress, namespace: ringress}\ndata:\n");
    for (k, v) in data {
        cm += &format!("  {k}: '{v}'\n");
    }
    service("svc-a", &[a.addr]) + &ingress("site", Some("log.test"), &[("/", "svc-a")]) + &cm
}

/// `n` keep-alive requests for `/<tag>/<i>` (a new connection when the proxy closes one,
/// after `keep-alive-requests`); all must be answered 200.
fn burst(addr: SocketAddr, tag: &str, n: usize) {
    let mut s = connect(addr);
    let mut pending = Vec::new();
    for i in 0..n {
        s.write_all(format!("GET /{tag}/{i} HTTP/1.1\r\nHost: log.test\r\nUser-Agent: burst\r\n\r\n").as_bytes())
            .unwrap();
        let r = read_response(&mut s, &mut pending, false).expect("a response");
        assert_eq!(r.status, 200, "/{tag}/{i}");
        if r.header("connection") == Some("close") {
            s = connect(addr);
            pending.clear();
        }
    }
}

/// `clients` concurrent [`burst`]s of `n`, tagged `<tag><client>`.
fn bursts(addr: SocketAddr, tag: &str, clients: usize, n: usize) {
    let threads: Vec<_> = (0..clients)
        .map(|c| {
            let tag = format!("{tag}{c}");
            std::thread::spawn(move || burst(addr, &tag, n))
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
}

/// Every line of every file in `dir` (gzipped ones decompressed), with its file name.
fn all_lines(dir: &Path) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir).unwrap().flatten().map(|e| e.path()).collect();
    files.sort();
    for f in files {
        let Ok(bytes) = std::fs::read(&f) else { continue };
        let name = f.file_name().unwrap().to_string_lossy().into_owned();
        let text = if name.ends_with(".gz") {
            let mut s = String::new();
            flate2::read::GzDecoder::new(&bytes[..]).read_to_string(&mut s).unwrap();
            s
        } else if name.ends_with(".tmp") {
            continue;
        } else {
            String::from_utf8(bytes).unwrap()
        };
        out.extend(text.lines().map(|l| (name.clone(), l.to_string())));
    }
    out
}

/// Rotated files not yet compressed, or compressions in progress.
fn settled(dir: &Path) -> bool {
    std::fs::read_dir(dir).unwrap().flatten().all(|e| {
        let n = e.file_name().to_string_lossy().into_owned();
        n == "access.log" || n.ends_with(".gz")
    })
}

/// (bytes, rotated files) in `dir`: the live file and every rotated one. A rotated file and
/// its gzipped copy (both there for a moment when compression ends) are one rotated file.
fn usage(dir: &Path) -> (u64, usize) {
    let mut total = 0;
    let mut rotated = std::collections::HashSet::new();
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        total += e.metadata().map(|m| m.len()).unwrap_or(0);
        let n = e.file_name().to_string_lossy().into_owned();
        if n != "access.log" && !n.ends_with(".tmp") {
            rotated.insert(n.strip_suffix(".gz").unwrap_or(&n).to_string());
        }
    }
    (total, rotated.len())
}

/// The request path of a default-format line: `... "GET /path HTTP/1.1" ...`.
fn path_of(line: &str) -> Option<&str> {
    line.split('"').nth(1)?.split(' ').nth(1)
}

#[test]
fn every_request_is_logged_once_across_rotated_gzipped_files_and_the_budget_holds() {
    let a = Upstream::start("a");
    let dir = proxy::temp_dir();
    let logs = dir.join("logs");
    let path = logs.join("access.log");
    let path_s = path.to_str().unwrap().to_string();
    let p = Proxy::start(
        "uring",
        &manifests(
            &a,
            &[
                ("access-log-path", &path_s),
                ("access-log-max-size", "200k"),
                ("access-log-max-files", "1000"),
                ("access-log-max-total-size", "1g"),
            ],
        ),
        &["--workers", "2"],
    );
    // 4 clients x 5,000 requests: ~4 MB of lines, about 20 rotations at 200 KiB.
    bursts(p.http, "c", 4, 5000);
    let want = 20_000;
    p.wait_for(
        || settled(&logs) && all_lines(&logs).iter().filter(|(_, l)| l.contains("\"GET /c")).count() >= want,
        "every line written and every rotated file compressed",
    );
    let lines = all_lines(&logs);
    let mut seen: HashMap<&str, usize> = HashMap::new();
    for (_, l) in &lines {
        if let Some(path) = path_of(l).filter(|p| p.starts_with("/c")) {
            *seen.entry(path).or_default() += 1;
        }
    }
    assert_eq!(seen.len(), want, "every request has a line");
    assert!(seen.values().all(|n| *n == 1), "a request logged more than once");
    let files: Vec<&String> =
        lines.iter().map(|(f, _)| f).collect::<std::collections::BTreeSet<_>>().into_iter().collect();
    assert!(files.iter().filter(|f| f.ends_with(".gz")).count() >= 10, "rotated and gzipped: {files:?}");
    assert!(std::fs::metadata(&path).unwrap().len() <= 200 * 1024);
    // Each line says where the request went.
    let sample = &lines.iter().find(|(_, l)| l.contains("\"GET /c0/7 ")).unwrap().1;
    assert!(sample.contains(" 200 ") && sample.contains("\"burst\"") && sample.contains("[default/site]"), "{sample}");
    assert!(sample.contains(&format!(" {} ", a.addr)), "{sample}");
    assert_eq!(p.metric("ringress_access_log_dropped_lines_total"), Some(0.0));

    // Live: a new directory with a small budget (128 KiB) and at most 3 rotated files. Under
    // load the directory never holds more, sampled all along.
    let small = dir.join("small");
    let small_s = small.join("access.log").to_str().unwrap().to_string();
    let generation = p.generation();
    p.replace_manifests(&manifests(
        &a,
        &[
            ("access-log-path", &small_s),
            ("access-log-max-size", "32k"),
            ("access-log-max-files", "3"),
            ("access-log-max-total-size", "128k"),
        ],
    ));
    p.wait_for(|| p.generation() > generation, "the new snapshot");
    let stop = Arc::new(AtomicBool::new(false));
    let watcher = {
        let (stop, small) = (stop.clone(), small.clone());
        std::thread::spawn(move || {
            let mut samples = 0;
            while !stop.load(Ordering::Relaxed) {
                if small.exists() {
                    let over = |(bytes, rotated): (u64, usize)| bytes > 128 * 1024 || rotated > 3;
                    // A listing can straddle a rename; a real excess is still there a moment later.
                    if over(usage(&small)) {
                        let again = usage(&small);
                        assert!(!over(again), "budget exceeded: {again:?}");
                    }
                    samples += 1;
                }
                std::thread::sleep(Duration::from_millis(5));
            }
            samples
        })
    };
    bursts(p.http, "s", 2, 4000);
    std::thread::sleep(Duration::from_millis(500));
    stop.store(true, Ordering::Relaxed);
    assert!(watcher.join().unwrap() > 50, "the directory was sampled");
    let (bytes, rotated) = usage(&small);
    assert!(bytes <= 128 * 1024 && (1..=3).contains(&rotated), "{bytes} bytes, {rotated} rotated files");
    assert!(p.metric("ringress_access_log_deleted_files_total").unwrap() > 0.0);
}

#[test]
fn json_lines_carry_the_request_id_sent_upstream_for_http1_and_http2() {
    let a = Upstream::start("a");
    let dir = proxy::temp_dir();
    let path = dir.join("access.json");
    let quiet = with_nginx(ingress("quiet", Some("quiet.test"), &[("/", "svc-a")]), &[("enable-access-log", "false")]);
    let p = Proxy::start(
        "uring",
        &(manifests(&a, &[("access-log-format", "json")]) + &quiet),
        &["--access-log", path.to_str().unwrap()],
    );
    // `enable-access-log: "false"`: served and counted, over HTTP/1.1 and HTTP/2, never logged.
    assert_eq!(get(p.http, "quiet.test", "/quiet-one").status, 200);
    assert!(h2c_body(p.http, "quiet.test", "/quiet-two").contains("upstream=a"));
    let series = r#"ringress_http_responses_total{ingress="default/quiet",service="default/svc-a:80",method="GET",status="2xx"}"#;
    p.wait_for(|| p.metric(series) == Some(2.0), "the quiet requests counted");
    // HTTP/1.1 without an id: one is made, sent upstream and logged.
    let r = get(p.http, "log.test", "/one?x=1");
    let sent = r.text().lines().find_map(|l| l.strip_prefix("header x-request-id: ").map(str::to_string)).unwrap();
    assert_eq!(sent.len(), 32);
    // HTTP/2 (curl, prior knowledge) with the client's own id: kept.
    let (ok, body, err) = run(Command::new("curl").args([
        "-sS",
        "--http2-prior-knowledge",
        "-H",
        "X-Request-ID: client-id-7",
        "-A",
        "curl-test",
        &format!("http://{}/two", p.http),
        "-H",
        "Host: log.test",
    ]));
    assert!(ok, "{err}");
    assert!(body.contains("header x-request-id: client-id-7"), "{body}");
    // A request no rule matches: a line too, without an upstream.
    assert_eq!(get(p.http, "nowhere.test", "/three").status, 404);

    let read = || -> Vec<serde_json::Value> {
        std::fs::read_to_string(&path)
            .unwrap_or_default()
            .lines()
            .map(|l| serde_json::from_str(l).expect("each line is one JSON object"))
            .collect()
    };
    p.wait_for(|| read().len() >= 3, "three lines");
    let lines = read();
    let by_uri = |u: &str| lines.iter().find(|v| v["uri"] == u).unwrap_or_else(|| panic!("no line for {u}: {lines:?}"));
    let one = by_uri("/one?x=1");
    assert_eq!(one["request_id"], sent.as_str());
    assert_eq!(one["protocol"], "HTTP/1.1");
    assert_eq!(one["status"], 200);
    assert_eq!(one["upstream_status"], 200);
    assert_eq!(one["upstream_addr"], a.addr.to_string());
    assert_eq!(one["ingress"], "default/site");
    assert_eq!(one["host"], "log.test");
    assert_eq!(one["remote_addr"], "127.0.0.1");
    assert!(one["bytes_out"].as_u64().unwrap() > r.body.len() as u64, "head and body counted");
    assert!(one["upstream_response_time"].as_f64().is_some());
    let two = by_uri("/two");
    assert_eq!(two["protocol"], "HTTP/2.0");
    assert_eq!(two["request_id"], "client-id-7");
    assert_eq!(two["user_agent"], "curl-test");
    assert_eq!(two["bytes_out"].as_u64().unwrap(), body.len() as u64);
    let three = by_uri("/three");
    assert_eq!(three["status"], 404);
    assert!(three["upstream_addr"].is_null() && three["ingress"].is_null(), "{three}");
    assert!(!lines.iter().any(|v| v["host"] == "quiet.test"), "{lines:?}");
}

#[test]
fn sigusr1_reopens_the_file_after_an_external_rotation() {
    let a = Upstream::start("a");
    let dir = proxy::temp_dir();
    let path = dir.join("access.log");
    let p = Proxy::start("epoll", &manifests(&a, &[]), &["--access-log", path.to_str().unwrap()]);
    let has = |f: &Path, what: &str| std::fs::read_to_string(f).unwrap_or_default().contains(what);
    get(p.http, "log.test", "/before");
    p.wait_for(|| has(&path, "/before"), "the first line");
    // What logrotate does with `create`: move the file, then signal.
    let moved = dir.join("access.log.1");
    std::fs::rename(&path, &moved).unwrap();
    // SAFETY: kill(2) with the proxy child's pid and a signal number; no memory is passed.
    assert_eq!(unsafe { libc::kill(p.pid() as i32, libc::SIGUSR1) }, 0);
    p.wait_for(|| p.log_text().contains("access log reopened"), "the reopen");
    get(p.http, "log.test", "/after");
    p.wait_for(|| has(&path, "/after"), "the line in the new file");
    assert!(!has(&moved, "/after") && has(&moved, "/before"));
    // Still serving, and SIGUSR1 did not start a drain.
    assert_eq!(get(p.http, "log.test", "/still").status, 200);
    assert_eq!(get(p.admin, "x", "/readyz").status, 200);
}

/// A small tmpfs mounted for the test, unmounted when dropped.
struct Mount(PathBuf);

impl Mount {
    fn tmpfs(at: &Path, size: &str) -> Mount {
        std::fs::create_dir_all(at).unwrap();
        let (ok, _, err) =
            run(Command::new("mount").args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"]).arg(at));
        assert!(ok, "this test mounts a small tmpfs to fill it, which needs root (CI runs as root): {err}");
        Mount(at.to_path_buf())
    }

    fn resize(&self, size: &str) {
        let (ok, _, err) = run(Command::new("mount").args(["-o", &format!("remount,size={size}")]).arg(&self.0));
        assert!(ok, "{err}");
    }
}

impl Drop for Mount {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

#[test]
fn a_full_disk_costs_log_lines_not_requests_and_logging_resumes_when_space_returns() {
    let a = Upstream::start("a");
    let dir = proxy::temp_dir();
    let disk = Mount::tmpfs(&dir.join("disk"), "256k");
    let path = disk.0.join("access.log");
    let path_s = path.to_str().unwrap().to_string();
    // The budget and file count are larger than the disk holds, uncompressed: it fills first.
    let p = Proxy::start(
        "uring",
        &manifests(
            &a,
            &[
                ("access-log-path", &path_s),
                ("access-log-max-size", "64k"),
                ("access-log-max-total-size", "100m"),
                ("access-log-max-files", "1000"),
                ("access-log-compress", "false"),
            ],
        ),
        &[],
    );
    let started = Instant::now();
    burst(p.http, "fill", 5000);
    p.wait_for(|| p.log_text().contains("No space left on device"), "the disk-full error");
    assert!(started.elapsed() < Duration::from_secs(120));
    let dropped = metrics_when(p.admin, |m| !m.contains("ringress_access_log_dropped_lines_total 0"));
    let n: f64 = dropped
        .lines()
        .find_map(|l| l.strip_prefix("ringress_access_log_dropped_lines_total "))
        .and_then(|v| v.trim().parse().ok())
        .unwrap();
    assert!(n > 0.0, "dropped lines are counted");
    let log = p.log_text();
    assert!(log.contains(&format!("cannot write {path_s}")) || log.contains("cannot compress"), "{log}");
    // Files hold whole lines only (a partial write is taken back).
    for (f, l) in all_lines(&disk.0) {
        let id = l.rsplit(' ').next().unwrap_or("");
        assert!(id.len() == 32 && id.bytes().all(|b| b.is_ascii_hexdigit()), "{f}: partial line {l:?}");
    }
    // Space returns: new requests are logged again.
    disk.resize("16m");
    std::thread::sleep(Duration::from_millis(1200));
    burst(p.http, "back", 20);
    p.wait_for(
        || all_lines(&disk.0).iter().filter(|(_, l)| l.contains("\"GET /back/")).count() == 20,
        "lines logged again",
    );
    p.wait_for(|| p.log_text().contains("access log: writing again"), "access log: writing again");
}
