//! bench/hostport.sh's pieces that run without root: the output parsers, the refusal to run
//! over existing namespaces or addresses, the teardown (against a fake `ip` that records its
//! calls), and the report. The benchmark itself needs root and is not a test.

mod support;

use std::path::{Path, PathBuf};
use std::process::Command;

use support::run;

/// Runs `script` in bash with bench/support/hostport-lib.sh sourced and `path_dir` first on
/// PATH; (success, stdout, stderr).
fn lib(script: &str, path_dir: Option<&Path>, env: &[(&str, &str)]) -> (bool, String, String) {
    let mut cmd = Command::new("bash");
    cmd.arg("-c").arg(format!("set -euo pipefail; . bench/support/hostport-lib.sh; {script}"));
    if let Some(d) = path_dir {
        cmd.env("PATH", format!("{}:{}", d.display(), std::env::var("PATH").unwrap()));
    }
    for (k, v) in env {
        cmd.env(k, v);
    }
    run(&mut cmd)
}

/// A fake `ip`: answers `netns list`, `-o addr show` and `-o link show` from files in its
/// directory and appends every call to `calls`.
fn fake_ip(netns: &str, addrs: &str, links: &str) -> PathBuf {
    let d = support::proxy::temp_dir();
    std::fs::write(d.join("netns"), netns).unwrap();
    std::fs::write(d.join("addrs"), addrs).unwrap();
    std::fs::write(d.join("links"), links).unwrap();
    let script = format!(
        r#"#!/bin/sh
d={}
echo "$*" >> "$d/calls"
case "$*" in
  "netns list") cat "$d/netns" ;;
  "-o addr show") cat "$d/addrs" ;;
  "-o link show") cat "$d/links" ;;
  "netns pids "*) ;;
  "netns del "*) grep -v "^${{3}}\( \|$\)" "$d/netns" > "$d/netns.new"; mv "$d/netns.new" "$d/netns" ;;
esac
"#,
        d.display()
    );
    let ip = d.join("ip");
    std::fs::write(&ip, script).unwrap();
    run(Command::new("chmod").arg("+x").arg(&ip));
    d
}

fn calls(d: &Path) -> Vec<String> {
    std::fs::read_to_string(d.join("calls")).unwrap_or_default().lines().map(str::to_string).collect()
}

#[test]
fn it_refuses_to_run_over_existing_namespaces_links_or_addresses() {
    let clean = fake_ip("other-ns (id: 0)\n", "1: lo    inet 127.0.0.1/8 scope host lo\n", "1: lo: <LOOPBACK>\n");
    let (ok, _, err) = lib("hp_check_free", Some(&clean), &[]);
    assert!(ok, "{err}");

    let taken = fake_ip("rgxhp-node (id: 3)\n", "", "");
    let (ok, _, err) = lib("hp_check_free", Some(&taken), &[]);
    assert!(!ok && err.contains("network namespace rgxhp-node already exists"), "{err}");

    let addr = fake_ip("", "2: eth0    inet 10.231.0.9/24 brd 10.231.0.255 scope global eth0\n", "");
    let (ok, _, err) = lib("hp_check_free", Some(&addr), &[]);
    assert!(!ok && err.contains("addresses in 10.231.0.0/16 are already in use"), "{err}");
    // Another /16 is free.
    let (ok, _, err) = lib("hp_check_free", Some(&addr), &[("HP_NET", "10.232")]);
    assert!(ok, "{err}");

    let link = fake_ip("", "", "7: rgxhp-nc@if8: <BROADCAST>\n");
    let (ok, _, err) = lib("hp_check_free", Some(&link), &[]);
    assert!(!ok && err.contains("links named rgxhp-* already exist"), "{err}");
}

#[test]
fn teardown_deletes_only_our_namespaces_and_can_run_twice() {
    // A partial setup: two of our four namespaces exist, beside someone else's.
    let d = fake_ip("rgxhp-client\nrgxhp-pod (id: 2)\nrgxhp-clientele\nsomeone-else\n", "", "");
    let (ok, _, err) = lib("hp_teardown; hp_teardown", Some(&d), &[]);
    assert!(ok, "{err}");
    let dels: Vec<String> = calls(&d).into_iter().filter(|c| c.starts_with("netns del")).collect();
    assert_eq!(dels, ["netns del rgxhp-client", "netns del rgxhp-pod"], "each once, nothing else");
    assert_eq!(std::fs::read_to_string(d.join("netns")).unwrap(), "rgxhp-clientele\nsomeone-else\n");
}

const WRK: &str = "Running 5s test @ http://10.231.0.1/
  1 threads and 64 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency     1.02ms  310.22us   8.12ms   80.12%
    Req/Sec    62.66k     2.21k   66.40k    74.00%
  Latency Distribution
     50%    0.96ms
     75%    1.12ms
     90%    1.35ms
     99%    2.14ms
  311839 requests in 5.00s, 44.61MB read
  Socket errors: connect 0, read 3, write 0, timeout 2
  Non-2xx or 3xx responses: 7
Requests/sec:  62367.80
Transfer/sec:      8.92MB
";

#[test]
fn wrk_oha_and_proc_stat_are_parsed() {
    let dir = support::proxy::temp_dir();
    std::fs::write(dir.join("wrk.txt"), WRK).unwrap();
    let (ok, out, err) = lib(&format!("hp_parse_wrk < {}", dir.join("wrk.txt").display()), None, &[]);
    assert!(ok, "{err}");
    assert_eq!(out.trim(), "62367.80 2140 311839 12");

    let oha = r#"{"summary":{"successRate":1.0,"total":8.0,"slowest":0.02,"fastest":0.0001,"average":0.0005,"requestsPerSec":4999.6},
      "latencyPercentiles":{"p10":0.0002,"p50":0.000412,"p99":0.0021,"p99.9":0.0093,"p99.99":0.012},
      "statusCodeDistribution":{"200":39990,"502":4},"errorDistribution":{"connection reset":1,"aborted due to deadline":3}}"#;
    std::fs::write(dir.join("oha.json"), oha).unwrap();
    let (ok, out, err) = lib(&format!("hp_parse_oha < {}", dir.join("oha.json").display()), None, &[]);
    assert!(ok, "{err}");
    assert_eq!(out.trim(), "5000 412 2100 9300 5");

    std::fs::write(dir.join("stat"), "cpu  100 0 200 3000 10 5 4321 0 0 0\ncpu0 50 0 100 1500 5 2 2000 0 0 0\n")
        .unwrap();
    let stat = dir.join("stat");
    let (ok, out, err) = lib("hp_softirq_ticks", None, &[("HP_PROC_STAT", stat.to_str().unwrap())]);
    assert!(ok, "{err}");
    assert_eq!(out.trim(), "4321");
}

#[test]
fn the_report_has_each_placement_and_the_ratios() {
    let dir = support::proxy::temp_dir();
    let results = dir.join("results.txt");
    let mut lines = String::new();
    for run in 1..=3 {
        // hostPort: 20% fewer requests/s and 2x the softirq per request.
        lines += &format!("sat {run} ringress hostNetwork keepalive 60000 900 1.00 9.50 12 0\n");
        lines += &format!("sat {run} ringress hostPort keepalive 48000 1200 2.00 10.00 30000 0\n");
        lines += &format!("sat {run} ringress hostNetwork close 20000 3000 4.00 30.00 15 0\n");
        lines += &format!("sat {run} ringress hostPort close 16000 3500 6.00 33.00 45000 1\n");
        lines += &format!("sat {run} nginx hostNetwork keepalive 50000 1000 1.10 13.00 10 0\n");
        lines += &format!("rate {run} ringress hostNetwork 5000 5000 300 900 2000 0\n");
        lines += &format!("rate {run} ringress hostPort 5000 4998 350 1100 2500 0\n");
    }
    std::fs::write(&results, lines).unwrap();
    let out = dir.join("report");
    let (ok, _, err) = run(Command::new("python3").args([
        "bench/hostport_report.py",
        results.to_str().unwrap(),
        out.to_str().unwrap(),
        "test machine",
    ]));
    assert!(ok, "{err}");
    let md = std::fs::read_to_string(out.with_extension("md")).unwrap();
    for want in [
        "| ringress | hostNetwork | 60,000 | 900 µs | 1.00 | 9.50 | 12 | 0 |",
        "| ringress | hostPort | 16,000 | 3,500 µs | 6.00 | 33.00 | 45,000 | 3 |",
        "| ringress | keepalive | 0.80x | 2.00x |",
        "| ringress | close | 0.80x | 1.50x |",
        "| ringress | hostPort | 4,998 | 350 µs | 1,100 µs | 2,500 µs | 0 |",
        "ringress on hostNetwork, keep-alive: 60,000 requests/s with one proxy core (target: at least 50,000); softirq per request 1.00 µs vs nginx's 1.10 µs",
    ] {
        assert!(md.contains(want), "missing {want:?} in\n{md}");
    }
    let svg = std::fs::read_to_string(out.with_extension("svg")).unwrap();
    assert!(svg.starts_with("<svg") && svg.contains("60.0k") && svg.contains("hostPort"));
}

#[test]
fn the_script_parses_and_refuses_non_root() {
    let (ok, _, err) = run(Command::new("bash").args(["-n", "bench/hostport.sh"]));
    assert!(ok, "{err}");
    // As a user other than root (nobody), it stops before touching anything.
    let (_, _, err) = run(Command::new("setpriv").args([
        "--reuid=65534",
        "--regid=65534",
        "--clear-groups",
        "bash",
        "bench/hostport.sh",
    ]));
    assert!(err.contains("hostport.sh: run as root"), "{err}");
}
