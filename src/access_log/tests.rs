use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::format::{civil, Line, TimeCache};
use super::*;

fn record() -> Record {
    let mut r = Record {
        status: 200,
        protocol: "HTTP/1.1",
        bytes_in: 78,
        bytes_out: 1234,
        upstream: Some("10.0.0.7:8080".parse().unwrap()),
        upstream_status: 200,
        upstream_time: Some(Duration::from_micros(2_345)),
        ..Record::default()
    };
    r.client.extend_from_slice(b"192.0.2.1");
    r.method.extend_from_slice(b"GET");
    r.uri.extend_from_slice(b"/a b?\"q\"");
    r.host.extend_from_slice(b"example.com");
    r.user_agent.extend_from_slice(b"curl/8.0 \xff");
    r.request_id.extend_from_slice(b"0123abcd");
    r
}

fn at(secs: u64, millis: u64) -> TimeCache {
    let mut t = TimeCache::default();
    t.set(UNIX_EPOCH + Duration::from_millis(secs * 1000 + millis));
    t
}

#[test]
fn civil_dates() {
    assert_eq!(civil(0), (1970, 1, 1, 0, 0, 0));
    // 2000-02-29 (a leap day in a year divisible by 400) and 2026-11-28 10:10:41.
    assert_eq!(civil(951_782_400), (2000, 2, 29, 0, 0, 0));
    assert_eq!(civil(1_795_860_641), (2026, 11, 28, 10, 10, 41));
    assert_eq!(civil(4_107_542_399), (2100, 2, 28, 23, 59, 59));
    assert_eq!(civil(4_107_542_400), (2100, 3, 1, 0, 0, 0));
}

#[test]
fn the_default_text_line_escapes_as_nginx_does() {
    let rec = record();
    let time = at(1_795_860_641, 5);
    let mut out = Vec::new();
    Line { rec: &rec, time: &time, duration: Duration::from_millis(3) }.text(&Template::default(), &mut out);
    assert_eq!(
        String::from_utf8(out).unwrap(),
        "192.0.2.1 - - [28/Nov/2026:10:10:41 +0000] \"GET /a b?\\x22q\\x22 HTTP/1.1\" 200 1234 \"-\" \
         \"curl/8.0 \\xFF\" 78 0.003 [-] [-] 10.0.0.7:8080 0.002 200 0123abcd\n"
    );
}

#[test]
fn templates_parse_and_name_unknown_variables() {
    let t = Template::parse("${status}|$req_id|$$x").unwrap_err();
    assert_eq!(t, "a $ without a variable name at byte 18");
    assert_eq!(Template::parse("$status $nope").unwrap_err(), "unknown variable $nope");
    assert_eq!(Template::parse("${status").unwrap_err(), "unclosed ${ at byte 0");
    let t = Template::parse("${status}-$request_method:$msec $upstream_status").unwrap();
    let mut rec = record();
    rec.upstream_status = 0;
    rec.status = 0;
    let time = at(1_795_860_641, 42);
    let mut out = Vec::new();
    Line { rec: &rec, time: &time, duration: Duration::ZERO }.text(&t, &mut out);
    // No response at all is logged as 499; no upstream answer as "-".
    assert_eq!(String::from_utf8(out).unwrap(), "499-GET:1795860641.042 -\n");
    // Every documented variable parses.
    for (name, _) in VARIABLES {
        Template::parse(&format!("${name}")).unwrap();
    }
}

#[test]
fn json_lines_are_valid_json_with_nulls_for_what_is_absent() {
    let mut rec = record();
    let time = at(1_795_860_641, 7);
    let mut out = Vec::new();
    Line { rec: &rec, time: &time, duration: Duration::from_millis(1500) }.json(&mut out);
    let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
    assert_eq!(v["time"], "2026-11-28T10:10:41.007Z");
    assert_eq!(v["uri"], "/a b?\"q\"");
    assert_eq!(v["user_agent"], "curl/8.0 \u{fffd}");
    assert_eq!(v["status"], 200);
    assert_eq!(v["request_time"], 1.5);
    assert_eq!(v["upstream_addr"], "10.0.0.7:8080");
    assert_eq!(v["referer"], serde_json::Value::Null);
    assert!(out.ends_with(b"}\n"));
    rec.upstream = None;
    rec.upstream_time = None;
    out.clear();
    Line { rec: &rec, time: &time, duration: Duration::ZERO }.json(&mut out);
    let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
    assert_eq!(
        (&v["upstream_addr"], &v["upstream_response_time"]),
        (&serde_json::Value::Null, &serde_json::Value::Null)
    );
}

#[test]
fn request_ids_are_32_hex_digits_and_differ() {
    let (_logger, log) = unthreaded();
    let mut seen = std::collections::HashSet::new();
    for _ in 0..10_000 {
        let mut id = Vec::new();
        log.request_id(&mut id);
        assert_eq!(id.len(), 32);
        assert!(id.iter().all(u8::is_ascii_hexdigit));
        assert!(seen.insert(id));
    }
}

fn dir(name: &str) -> std::path::PathBuf {
    let d = std::env::temp_dir().join(format!("ringress-log-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// A fresh directory, and the access log's path in it.
fn log_file(name: &str) -> (std::path::PathBuf, std::path::PathBuf) {
    let d = dir(name);
    let path = d.join("access.log");
    (d, path)
}

/// A logger without its writer thread (the test ticks a writer itself), and worker 0's log.
fn unthreaded() -> (Logger, WorkerLog) {
    let logger = Logger { shared: Arc::new(Shared::default()), thread: None };
    let log = logger.worker(0);
    (logger, log)
}

fn total_size(d: &std::path::Path) -> (u64, usize) {
    let mut total = 0;
    let mut n = 0;
    for e in std::fs::read_dir(d).unwrap().flatten() {
        total += e.metadata().unwrap().len();
        n += 1;
    }
    (total, n)
}

fn read_all(d: &std::path::Path) -> String {
    let mut all = String::new();
    let mut files: Vec<_> = std::fs::read_dir(d).unwrap().flatten().map(|e| e.path()).collect();
    files.sort();
    for f in files {
        let bytes = std::fs::read(&f).unwrap();
        if f.extension().is_some_and(|e| e == "gz") {
            let mut s = String::new();
            std::io::Read::read_to_string(&mut flate2::read::GzDecoder::new(&bytes[..]), &mut s).unwrap();
            all.push_str(&s);
        } else {
            all.push_str(std::str::from_utf8(&bytes).unwrap());
        }
    }
    all
}

#[test]
fn rotation_keeps_every_line_and_the_budget() {
    let (d, path) = log_file("rotate");
    let cfg = Config {
        path: Some(path.clone()),
        template: Template::parse("line $req_id").unwrap(),
        max_size: 4096,
        max_total: 1 << 30,
        max_files: 1000,
        ..Config::default()
    };
    let (logger, log) = unthreaded();
    let mut w = writer::test_writer(&logger.shared);
    let mut rec = record();
    let mut n = 0;
    for round in 0..50 {
        for _ in 0..100 {
            rec.request_id.clear();
            rec.request_id.extend_from_slice(format!("{n:06}").as_bytes());
            log.write(&cfg, &rec, Duration::ZERO);
            n += 1;
        }
        w.tick(&cfg);
        // The live file never passes the rotation size.
        assert!(std::fs::metadata(&path).unwrap().len() <= 4096, "round {round}");
    }
    // Let compression finish.
    for _ in 0..100 {
        w.tick(&cfg);
    }
    let names: Vec<String> =
        std::fs::read_dir(&d).unwrap().flatten().map(|e| e.file_name().into_string().unwrap()).collect();
    assert!(names.iter().filter(|n| n.ends_with(".gz")).count() >= 10, "{names:?}");
    assert!(!names.iter().any(|n| n.ends_with(".tmp")), "{names:?}");
    let all = read_all(&d);
    let mut lines: Vec<&str> = all.lines().collect();
    assert_eq!(lines.len(), 5000);
    lines.sort();
    lines.dedup();
    assert_eq!(lines.len(), 5000, "a line was written twice");
    assert_eq!(logger.shared.stats.lines.load(Ordering::Relaxed), 5000);

    // A small budget and file count: the oldest files go, and the sums always hold.
    let cfg = Config { max_total: 16 * 1024, max_files: 3, ..cfg };
    for _ in 0..50 {
        for _ in 0..100 {
            log.write(&cfg, &rec, Duration::ZERO);
        }
        w.tick(&cfg);
        let (total, files) = total_size(&d);
        assert!(total <= 16 * 1024, "{total} bytes on disk");
        assert!(files <= 3 + 1 + 1, "{files} files");
    }
    assert!(logger.shared.stats.deleted.load(Ordering::Relaxed) > 0);
    let _ = std::fs::remove_dir_all(&d);
}

#[test]
fn an_unwritable_path_drops_and_counts_then_recovers() {
    let d = dir("unwritable");
    // The log's directory is a regular file: opening fails.
    let blocker = d.join("sub");
    std::fs::write(&blocker, b"not a directory").unwrap();
    let cfg = Config { path: Some(blocker.join("access.log")), ..Config::default() };
    let (logger, log) = unthreaded();
    let mut w = writer::test_writer(&logger.shared);
    let rec = record();
    for _ in 0..10 {
        log.write(&cfg, &rec, Duration::ZERO);
    }
    w.tick(&cfg);
    assert_eq!(logger.shared.dropped(), 10);
    assert!(logger.shared.stats.write_errors.load(Ordering::Relaxed) >= 1);
    std::fs::remove_file(&blocker).unwrap();
    // Retried after a second.
    std::thread::sleep(Duration::from_millis(1100));
    log.write(&cfg, &rec, Duration::ZERO);
    w.tick(&cfg);
    assert_eq!(std::fs::read_to_string(blocker.join("access.log")).unwrap().lines().count(), 1);
    let _ = std::fs::remove_dir_all(&d);
}

#[test]
fn rotated_names_sort_oldest_first() {
    let p = std::path::Path::new("/x/access.log");
    let t = UNIX_EPOCH + Duration::from_millis(1_795_860_641_007);
    assert_eq!(writer::rotated_name(p, t), std::path::PathBuf::from("/x/access.log.20261128-101041.007"));
    let _ = SystemTime::now();
}

#[test]
fn a_file_rotates_by_age_and_an_empty_one_does_not() {
    let (d, path) = log_file("age");
    let cfg = Config {
        path: Some(path.clone()),
        rotate_every: Duration::from_millis(50),
        compress: false,
        ..Config::default()
    };
    let (logger, log) = unthreaded();
    let mut w = writer::test_writer(&logger.shared);
    let rec = record();
    log.write(&cfg, &rec, Duration::ZERO);
    w.tick(&cfg);
    std::thread::sleep(Duration::from_millis(60));
    w.tick(&cfg);
    assert_eq!(writer::list_rotated(&path).len(), 1);
    assert_eq!(std::fs::metadata(&path).unwrap().len(), 0, "a fresh live file");
    // Nothing written since: the empty file is not rotated again.
    std::thread::sleep(Duration::from_millis(60));
    w.tick(&cfg);
    assert_eq!(writer::list_rotated(&path).len(), 1);
    let _ = std::fs::remove_dir_all(&d);
}
