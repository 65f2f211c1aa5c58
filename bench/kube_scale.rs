//! Kubernetes mode at scale, against the test API server (tests/apiserver) on loopback: for
//! 1,000, 10,000 and 100,000 Ingresses (distinct hosts, each with its own Service and
//! EndpointSlice), the time from start to `/readyz` 200 (initial list of every kind, parse,
//! build, publish), the initial build time, and ringress's resident memory; then, at each
//! size, the propagation time of a single Ingress change and of a single EndpointSlice change,
//! measured from the API server accepting the write to the first request routed the new way
//! through ringress's listener. Targets (issue 3): ready under 10 s, a change live under
//! 100 ms p99 at 100,000 Ingresses, memory under 1 GiB.
//!
//! With `KUBE_SCALE_KIND=httproute` the same with Gateway API HTTPRoutes (one Gateway taking
//! routes from every namespace, the official CRDs registered, ringress run with
//! `--gateway-api`) in place of the Ingresses, the change probes being HTTPRoutes too.
//!
//! `cargo bench --bench kube_scale` (env: KUBE_SCALE_SIZES=1000,10000,100000,
//! KUBE_SCALE_CHANGES=50, KUBE_SCALE_KIND=ingress|httproute,
//! KUBE_SCALE_OUT=bench/results/kube-scale.md).

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use ringress_apiserver::ApiServer;
use serde_json::{json, Value};

/// A keep-alive upstream answering every request with `X-Upstream: name`.
fn upstream(name: &'static str) -> SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    std::thread::spawn(move || {
        for s in l.incoming().flatten() {
            std::thread::spawn(move || {
                let mut r = BufReader::new(s.try_clone().unwrap());
                let mut w = s;
                let mut line = String::new();
                loop {
                    line.clear();
                    if r.read_line(&mut line).unwrap_or(0) == 0 {
                        return;
                    }
                    if line == "\r\n" {
                        let resp = format!("HTTP/1.1 200 OK\r\nX-Upstream: {name}\r\nContent-Length: 2\r\n\r\nok");
                        if w.write_all(resp.as_bytes()).is_err() {
                            return;
                        }
                    }
                }
            });
        }
    });
    addr
}

/// One request on a keep-alive connection: (status, X-Upstream).
fn request(conn: &mut TcpStream, host: &str) -> std::io::Result<(u16, String)> {
    conn.write_all(format!("GET / HTTP/1.1\r\nHost: {host}\r\n\r\n").as_bytes())?;
    let mut buf = Vec::with_capacity(512);
    let mut byte = [0u8; 1024];
    let head_end = loop {
        let n = conn.read(&mut byte)?;
        if n == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        buf.extend_from_slice(&byte[..n]);
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).to_string();
    let status = head.get(9..12).and_then(|s| s.parse().ok()).unwrap_or(0);
    let header = |name: &str| {
        head.lines().find_map(|l| {
            l.split_once(':').filter(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.trim().to_string())
        })
    };
    let len: usize = header("content-length").and_then(|v| v.parse().ok()).unwrap_or(0);
    let mut have = buf.len() - head_end;
    while have < len {
        let n = conn.read(&mut byte)?;
        if n == 0 {
            break;
        }
        have += n;
    }
    Ok((status, header("x-upstream").unwrap_or_default()))
}

fn service(i: usize, ns: &str) -> Value {
    json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": format!("svc{i}"), "namespace": ns},
           "spec": {"ports": [{"name": "http", "port": 80, "targetPort": "http"}]}})
}

fn slice(i: usize, ns: &str, endpoint: SocketAddr) -> Value {
    json!({"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
           "metadata": {"name": format!("svc{i}-a"), "namespace": ns, "labels": {"kubernetes.io/service-name": format!("svc{i}")}},
           "addressType": "IPv4",
           "endpoints": [{"addresses": [endpoint.ip().to_string()], "conditions": {"ready": true}}],
           "ports": [{"name": "http", "port": endpoint.port()}]})
}

fn ingress(name: &str, ns: &str, host: &str, svc: usize) -> Value {
    json!({"apiVersion": "networking.k8s.io/v1", "kind": "Ingress", "metadata": {"name": name, "namespace": ns},
           "spec": {"ingressClassName": "ringress", "rules": [{"host": host, "http": {"paths": [
               {"path": "/", "pathType": "Prefix", "backend": {"service": {"name": format!("svc{svc}"), "port": {"number": 80}}}}]}}]}})
}

fn http_route(name: &str, ns: &str, host: &str, svc: usize) -> Value {
    json!({"apiVersion": "gateway.networking.k8s.io/v1", "kind": "HTTPRoute", "metadata": {"name": name, "namespace": ns},
           "spec": {"parentRefs": [{"name": "edge", "namespace": "ns0"}], "hostnames": [host],
                    "rules": [{"backendRefs": [{"name": format!("svc{svc}"), "port": 80}]}]}})
}

/// The Gateway API CRDs, our GatewayClass and one Gateway taking routes from every namespace.
fn gateway_api(api: &ApiServer) {
    let crds =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/deploy/gateway-api-crds/standard-install.yaml"))
            .expect("the vendored CRDs");
    for doc in serde_yaml_ng::Deserializer::from_str(&crds) {
        let v: Value = serde::Deserialize::deserialize(doc).expect("CRD YAML");
        if v.get("kind").and_then(Value::as_str) == Some("CustomResourceDefinition") {
            api.apply(v).expect("CRD registered");
        }
    }
    api.apply(
        json!({"apiVersion": "gateway.networking.k8s.io/v1", "kind": "GatewayClass", "metadata": {"name": "ringress"},
                     "spec": {"controllerName": "ringress.dev/gateway-controller"}}),
    )
    .unwrap();
    api.apply(json!({"apiVersion": "gateway.networking.k8s.io/v1", "kind": "Gateway", "metadata": {"name": "edge", "namespace": "ns0"},
                     "spec": {"gatewayClassName": "ringress", "listeners": [
                         {"name": "http", "port": 80, "protocol": "HTTP", "allowedRoutes": {"namespaces": {"from": "All"}}}]}}))
        .unwrap();
}

struct Ringress {
    child: Child,
    http: SocketAddr,
    admin: SocketAddr,
    log: Arc<Mutex<Vec<String>>>,
}

impl Drop for Ringress {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_ringress(kubeconfig: &std::path::Path, routes: bool) -> Ringress {
    let mut child = Command::new(env!("CARGO_BIN_EXE_ringress"))
        .args(["run", "--http", "127.0.0.1:0", "--admin", "127.0.0.1:0", "--kubeconfig"])
        .arg(kubeconfig)
        .args(if routes { &["--gateway-api"][..] } else { &[] })
        .env("RUST_LOG", "info")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start ringress");
    let log = Arc::new(Mutex::new(Vec::new()));
    let (tx, rx) = std::sync::mpsc::channel();
    let stderr = child.stderr.take().unwrap();
    let sink = log.clone();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if line.contains("ringress ready") {
                let _ = tx.send(line.clone());
            }
            sink.lock().unwrap().push(line);
        }
    });
    let ready = rx.recv_timeout(Duration::from_secs(60)).expect("ringress started");
    let field = |name: &str| -> SocketAddr {
        let at = ready.find(&format!("{name}=")).unwrap() + name.len() + 1;
        ready[at..].split_whitespace().next().unwrap().parse().unwrap()
    };
    Ringress { http: field("http"), admin: field("admin"), child, log }
}

fn rss_mib(pid: u32) -> f64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let kib: f64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0.0);
    kib / 1024.0
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i]
}

/// Polls `host` through ringress until `done(status, upstream)`; the time it took from `since`.
fn until(addr: SocketAddr, host: &str, since: Instant, done: impl Fn(u16, &str) -> bool) -> f64 {
    let mut conn = TcpStream::connect(addr).unwrap();
    conn.set_nodelay(true).unwrap();
    loop {
        match request(&mut conn, host) {
            Ok((status, up)) if done(status, &up) => return since.elapsed().as_secs_f64() * 1e3,
            Ok(_) => {}
            Err(_) => conn = TcpStream::connect(addr).unwrap(),
        }
        if since.elapsed() > Duration::from_secs(30) {
            panic!("{host}: change not live after 30 s");
        }
    }
}

struct Row {
    n: usize,
    load_s: f64,
    ready_s: f64,
    build_ms: f64,
    rss_mib: f64,
    ingress_ms: (f64, f64),
    slice_ms: (f64, f64),
}

fn measure(n: usize, changes: usize, (a, b): (SocketAddr, SocketAddr), routes: bool) -> Row {
    let api = ApiServer::start().unwrap();
    let dir = std::env::temp_dir().join(format!("ringress-kube-scale-{}-{n}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let kubeconfig = dir.join("kubeconfig");
    api.write_kubeconfig(&kubeconfig).unwrap();

    let loading = Instant::now();
    let namespaces = 50;
    for ns in 0..namespaces {
        api.apply(json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": format!("ns{ns}")}})).unwrap();
    }
    if routes {
        gateway_api(&api);
    }
    for i in 0..n {
        let ns = format!("ns{}", i % namespaces);
        // Two real upstreams for the probes; the rest point at addresses never dialled.
        let ep = match i {
            0 | 1 => a,
            _ => SocketAddr::from(([10, (i >> 16) as u8, (i >> 8) as u8, i as u8], 8080)),
        };
        api.apply(service(i, &ns)).unwrap();
        api.apply(slice(i, &ns, ep)).unwrap();
        let object = match routes {
            true => http_route(&format!("route{i}"), &ns, &format!("host{i}.bench"), i),
            false => ingress(&format!("ing{i}"), &ns, &format!("host{i}.bench"), i),
        };
        api.apply(object).unwrap();
    }
    let load_s = loading.elapsed().as_secs_f64();

    let started = Instant::now();
    let r = start_ringress(&kubeconfig, routes);
    let pid = r.child.id();
    loop {
        let mut c = TcpStream::connect(r.admin).unwrap();
        c.write_all(b"GET /readyz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").unwrap();
        let mut s = String::new();
        let _ = c.read_to_string(&mut s);
        if s.starts_with("HTTP/1.1 200") {
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(300), "not ready after 300 s");
        std::thread::sleep(Duration::from_millis(5));
    }
    let ready_s = started.elapsed().as_secs_f64();
    let build_ms = r
        .log
        .lock()
        .unwrap()
        .iter()
        .find(|l| l.contains("routing table published") && l.contains("generation=1"))
        .and_then(|l| l.split("build_ms=").nth(1)?.split_whitespace().next()?.parse().ok())
        .unwrap_or(f64::NAN);
    until(r.http, "host0.bench", Instant::now(), |s, _| s == 200);

    // A single Ingress change: a new host, live when it routes.
    let mut ing = Vec::new();
    for k in 0..changes {
        let host = format!("probe{k}.bench");
        let probe = match routes {
            true => http_route(&format!("probe{k}"), "ns0", &host, 0),
            false => ingress(&format!("probe{k}"), "ns0", &host, 0),
        };
        api.apply(probe).unwrap();
        let t = Instant::now();
        ing.push(until(r.http, &host, t, |s, _| s == 200));
        std::thread::sleep(Duration::from_millis(60));
    }
    // A single EndpointSlice change: svc1's endpoint flips between the two upstreams.
    let mut sl = Vec::new();
    for k in 0..changes {
        let (to, name) = if k % 2 == 0 { (b, "b") } else { (a, "a") };
        api.apply(slice(1, "ns1", to)).unwrap();
        let t = Instant::now();
        sl.push(until(r.http, "host1.bench", t, |s, up| s == 200 && up == name));
        std::thread::sleep(Duration::from_millis(60));
    }
    ing.sort_by(f64::total_cmp);
    sl.sort_by(f64::total_cmp);
    let rss = rss_mib(pid);
    drop(r);
    let _ = std::fs::remove_dir_all(&dir);
    Row {
        n,
        load_s,
        ready_s,
        build_ms,
        rss_mib: rss,
        ingress_ms: (percentile(&ing, 0.5), percentile(&ing, 0.99)),
        slice_ms: (percentile(&sl, 0.5), percentile(&sl, 0.99)),
    }
}

fn main() {
    // cargo bench passes --bench; nothing else is taken from the command line.
    let sizes: Vec<usize> = std::env::var("KUBE_SCALE_SIZES")
        .unwrap_or_else(|_| "1000,10000,100000".into())
        .split(',')
        .map(|s| s.trim().parse().expect("KUBE_SCALE_SIZES: numbers"))
        .collect();
    let changes: usize = std::env::var("KUBE_SCALE_CHANGES").ok().and_then(|v| v.parse().ok()).unwrap_or(50);
    let out = std::env::var("KUBE_SCALE_OUT").unwrap_or_else(|_| "bench/results/kube-scale.md".into());
    let routes = match std::env::var("KUBE_SCALE_KIND").as_deref() {
        Ok("httproute") => true,
        Ok("ingress") | Err(_) => false,
        Ok(other) => panic!("KUBE_SCALE_KIND: {other:?} is not ingress or httproute"),
    };
    let what = if routes { "HTTPRoutes" } else { "Ingresses" };
    let (a, b) = (upstream("a"), upstream("b"));
    let mut rows = Vec::new();
    for n in sizes {
        eprintln!("kube_scale: {n} {what}...");
        let row = measure(n, changes, (a, b), routes);
        eprintln!(
            "  ready {:.2} s, build {:.1} ms, rss {:.0} MiB, ingress change p50/p99 {:.1}/{:.1} ms, slice change {:.1}/{:.1} ms",
            row.ready_s, row.build_ms, row.rss_mib, row.ingress_ms.0, row.ingress_ms.1, row.slice_ms.0, row.slice_ms.1
        );
        rows.push(row);
    }
    let one = if routes { "HTTPRoute" } else { "Ingress" };
    let mut md = format!(
        "| {what} (+ as many Services and EndpointSlices) | first ready | initial build | ringress RSS | {one} change p50 / p99 | EndpointSlice change p50 / p99 |\n|---:|---:|---:|---:|---:|---:|\n",
    );
    for r in &rows {
        md += &format!(
            "| {} | {:.2} s | {:.1} ms | {:.0} MiB | {:.1} / {:.1} ms | {:.1} / {:.1} ms |\n",
            r.n, r.ready_s, r.build_ms, r.rss_mib, r.ingress_ms.0, r.ingress_ms.1, r.slice_ms.0, r.slice_ms.1
        );
    }
    md += &format!(
        "\n{changes} changes of each kind per size, each measured from the API server accepting the write to the first request routed the new way (debounce 50 ms, the default). Loading the objects into the test API server is not counted (at the largest size it took {:.1} s).\n",
        rows.last().map(|r| r.load_s).unwrap_or(0.0)
    );
    print!("{md}");
    if let Some(parent) = std::path::Path::new(&out).parent() {
        let _ = std::fs::create_dir_all(parent);
    }
    std::fs::write(&out, md).expect("write the results");
    eprintln!("kube_scale: wrote {out}");
}
