//! Shared end-to-end helpers: the proxy as a child process, real upstream servers on
//! loopback, manifests, and raw HTTP clients.
#![allow(dead_code)]

pub mod cluster;
pub mod dns;
pub mod nginx;
pub mod pki;
pub mod proxy;
pub mod upstream;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

#[allow(unused_imports)]
pub use cluster::Cluster;
#[allow(unused_imports)]
pub use proxy::Proxy;
#[allow(unused_imports)]
pub use upstream::Upstream;

/// An h2c (prior knowledge) client of `addr`, its connection driven by a spawned task. Call
/// inside a tokio runtime.
pub async fn h2c_client(addr: SocketAddr) -> h2::client::SendRequest<bytes::Bytes> {
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let (client, conn) = h2::client::handshake(tcp).await.unwrap();
    tokio::spawn(async move {
        let _ = conn.await;
    });
    client
}

/// One POST to `/pkg.Svc/Call` over h2c (as a gRPC call when `grpc`) with `headers`: the
/// status, the grpc-status if any, and the body.
pub fn h2c_call(addr: SocketAddr, host: &str, grpc: bool, headers: &[(&str, &str)]) -> (u16, Option<String>, String) {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    rt.block_on(async move {
        let client = h2c_client(addr).await;
        let mut client = client.ready().await.unwrap();
        let mut req = http::Request::post(format!("http://{host}/pkg.Svc/Call"));
        if grpc {
            req = req.header("content-type", "application/grpc").header("te", "trailers");
        }
        for (n, v) in headers {
            req = req.header(*n, *v);
        }
        let (resp, _) = client.send_request(req.body(()).unwrap(), true).unwrap();
        let resp = resp.await.unwrap();
        let status = resp.status().as_u16();
        let grpc_status = resp.headers().get("grpc-status").map(|v| v.to_str().unwrap().to_string());
        let mut body = resp.into_body();
        let mut text = Vec::new();
        while let Some(d) = body.data().await {
            text.extend_from_slice(&d.unwrap());
        }
        (status, grpc_status, String::from_utf8_lossy(&text).into_owned())
    })
}

/// An Ingress for `host` -> `svc`, with `spec.tls` naming `secret` when given, and annotations.
pub fn tls_ingress(name: &str, host: &str, secret: Option<&str>, svc: &str, annotations: &[(&str, &str)]) -> String {
    let mut s = format!(
        "---\napiVersion: networking.k8s.io/v1\nkind: Ingress\nmetadata:\n  name: {name}\n  namespace: default\n"
    );
    if !annotations.is_empty() {
        s += "  annotations:\n";
        for (k, v) in annotations {
            s += &format!("    {k}: \"{v}\"\n");
        }
    }
    s += "spec:\n  ingressClassName: ringress\n";
    if let Some(secret) = secret {
        s += &format!("  tls:\n  - hosts: [\"{host}\"]\n    secretName: {secret}\n");
    }
    s += &format!(
        "  rules:\n  - host: \"{host}\"\n    http:\n      paths:\n      - {{path: /, pathType: Prefix, backend: {{service: {{name: {svc}, port: {{number: 80}}}}}}}}\n"
    );
    s
}

/// A Secret in `default` with these keys as stringData (PEM and other text).
pub fn secret_data(name: &str, data: &[(&str, &str)]) -> String {
    let mut s =
        format!("---\napiVersion: v1\nkind: Secret\nmetadata: {{name: {name}, namespace: default}}\nstringData:\n");
    for (k, v) in data {
        s += &format!("  {k}: |\n");
        for line in v.lines() {
            s += &format!("    {line}\n");
        }
    }
    s
}

/// One `#[test]` per I/O backend, so a failure names its backend and never hides the others:
/// `per_backend!(fn name(io) { ... })` makes `name::uring` and `name::epoll`;
/// `per_backend!(smoke fn name(io) { ... })` adds `name::tokio_uring`. tokio-uring stays
/// selectable (`--io tokio-uring`) but runs this smoke subset only, to keep the suite fast.
#[macro_export]
macro_rules! per_backend {
    (fn $name:ident($io:ident) $body:block) => {
        $crate::per_backend!(@tests $name, $io, $body, uring = "uring", epoll = "epoll");
    };
    (smoke fn $name:ident($io:ident) $body:block) => {
        $crate::per_backend!(@tests $name, $io, $body, uring = "uring", epoll = "epoll", tokio_uring = "tokio-uring");
    };
    (@tests $name:ident, $io:ident, $body:block, $($test:ident = $backend:literal),+) => {
        mod $name {
            #[allow(unused_imports)]
            use super::*;

            fn per_io($io: &'static str) $body

            $(
                #[test]
                fn $test() {
                    per_io($backend)
                }
            )+
        }
    };
}

/// A Service `name` (port 80, name http) whose EndpointSlice lists `endpoints` (loopback
/// addresses of real test upstreams, or dead ports).
pub fn service(name: &str, endpoints: &[SocketAddr]) -> String {
    let mut s = format!(
        "---\napiVersion: v1\nkind: Service\nmetadata: {{name: {name}, namespace: default}}\nspec:\n  ports: [{{name: http, port: 80, targetPort: http}}]\n"
    );
    // One slice per endpoint: slices carry one port each, and test upstreams differ in port.
    for (i, ep) in endpoints.iter().enumerate() {
        s += &format!(
            "---\napiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\nmetadata:\n  name: {name}-{i}\n  namespace: default\n  labels: {{kubernetes.io/service-name: {name}}}\naddressType: IPv4\nendpoints:\n- addresses: [\"{}\"]\n  conditions: {{ready: true}}\nports: [{{name: http, port: {}}}]\n",
            ep.ip(),
            ep.port()
        );
    }
    s
}

/// An Ingress routing `host` (None: any host) `path` (Prefix) to `service`.
pub fn ingress(name: &str, host: Option<&str>, routes: &[(&str, &str)]) -> String {
    let mut s = format!(
        "---\napiVersion: networking.k8s.io/v1\nkind: Ingress\nmetadata: {{name: {name}, namespace: default}}\nspec:\n  ingressClassName: ringress\n  rules:\n  - "
    );
    if let Some(h) = host {
        s += &format!("host: \"{h}\"\n    ");
    }
    s += "http:\n      paths:\n";
    for (path, svc) in routes {
        s += &format!("      - {{path: \"{path}\", pathType: Prefix, backend: {{service: {{name: {svc}, port: {{number: 80}}}}}}}}\n");
    }
    s
}

/// `yaml` (one Ingress from [`ingress`]) with these annotations.
pub fn annotated(yaml: String, annotations: &[(&str, &str)]) -> String {
    let list: Vec<String> = annotations.iter().map(|(k, v)| format!("{k}: \"{v}\"")).collect();
    let with = format!(", annotations: {{{}}}}}", list.join(", "));
    yaml.replacen(", namespace: default}", &(", namespace: default".to_string() + &with), 1)
}

/// `yaml` with these ingress-nginx annotations (keys without the `nginx.ingress.kubernetes.io/`
/// prefix).
pub fn with_nginx(yaml: String, annotations: &[(&str, &str)]) -> String {
    let full: Vec<(String, &str)> =
        annotations.iter().map(|(k, v)| (format!("nginx.ingress.kubernetes.io/{k}"), *v)).collect();
    let list: Vec<(&str, &str)> = full.iter().map(|(k, v)| (k.as_str(), *v)).collect();
    annotated(yaml, &list)
}

/// The body of a GET of `path` on `host` over h2c (curl, prior knowledge); panics if curl fails.
pub fn h2c_body(addr: SocketAddr, host: &str, path: &str) -> String {
    h2c_curl(addr, host, path, false)
}

/// The same with the response head first (curl -i).
pub fn h2c_response(addr: SocketAddr, host: &str, path: &str) -> String {
    h2c_curl(addr, host, path, true)
}

fn h2c_curl(addr: SocketAddr, host: &str, path: &str, head: bool) -> String {
    let mut cmd = std::process::Command::new("curl");
    cmd.args(["-sS", "--http2-prior-knowledge", "-H", &format!("Host: {host}"), &format!("http://{addr}{path}")]);
    if head {
        cmd.arg("-i");
    }
    let (ok, out, err) = run(&mut cmd);
    assert!(ok, "curl over h2c: {err}");
    out
}

/// A loopback address that refuses connections: bound (so no parallel test can take the
/// port) but never listening. The socket is kept for the life of the test process.
pub fn dead_addr() -> SocketAddr {
    let s = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    s.bind(&"127.0.0.1:0".parse::<SocketAddr>().unwrap().into()).unwrap();
    let addr = s.local_addr().unwrap().as_socket().unwrap();
    std::mem::forget(s);
    addr
}

/// A parsed HTTP/1.1 response read by [`raw`].
#[derive(Debug)]
pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Response {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// Reads one response (Content-Length, chunked or until close) from `s`, with `pending` the
/// bytes already read; what follows the response stays in `pending`.
pub fn read_response(s: &mut TcpStream, pending: &mut Vec<u8>, head_request: bool) -> Option<Response> {
    let mut chunk = [0u8; 65536];
    let fill = |s: &mut TcpStream, pending: &mut Vec<u8>, chunk: &mut [u8]| -> bool {
        match s.read(chunk) {
            Ok(0) | Err(_) => false,
            Ok(n) => {
                pending.extend_from_slice(&chunk[..n]);
                true
            }
        }
    };
    let (status, headers, head_len) = loop {
        let mut h = [httparse::EMPTY_HEADER; 64];
        let mut r = httparse::Response::new(&mut h);
        if let Ok(httparse::Status::Complete(n)) = r.parse(pending) {
            let headers: Vec<(String, String)> =
                r.headers.iter().map(|h| (h.name.to_string(), String::from_utf8_lossy(h.value).into_owned())).collect();
            break (r.code.unwrap(), headers, n);
        }
        if !fill(s, pending, &mut chunk) {
            return None;
        }
    };
    pending.drain(..head_len);
    let get = |n: &str| headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(n)).map(|(_, v)| v.clone());
    let mut body = Vec::new();
    if head_request || status == 204 || status == 304 || (100..200).contains(&status) {
    } else if get("transfer-encoding").is_some_and(|v| v.contains("chunked")) {
        loop {
            let line_end = loop {
                if let Some(i) = pending.windows(2).position(|w| w == b"\r\n") {
                    break i;
                }
                if !fill(s, pending, &mut chunk) {
                    return None;
                }
            };
            let size_text = String::from_utf8_lossy(&pending[..line_end]).to_string();
            let size = usize::from_str_radix(size_text.split(';').next().unwrap().trim(), 16).ok()?;
            pending.drain(..line_end + 2);
            if size == 0 {
                // Trailers until an empty line.
                loop {
                    let i = loop {
                        if let Some(i) = pending.windows(2).position(|w| w == b"\r\n") {
                            break i;
                        }
                        if !fill(s, pending, &mut chunk) {
                            return None;
                        }
                    };
                    pending.drain(..i + 2);
                    if i == 0 {
                        break;
                    }
                }
                break;
            }
            while pending.len() < size + 2 {
                if !fill(s, pending, &mut chunk) {
                    return None;
                }
            }
            body.extend_from_slice(&pending[..size]);
            pending.drain(..size + 2);
        }
    } else if let Some(n) = get("content-length") {
        let n: usize = n.trim().parse().ok()?;
        while pending.len() < n {
            if !fill(s, pending, &mut chunk) {
                return None;
            }
        }
        body = pending.drain(..n).collect();
    } else {
        while fill(s, pending, &mut chunk) {}
        body = std::mem::take(pending);
    }
    Some(Response { status, headers, body })
}

/// A new client connection to `addr` with a 10 s read timeout.
pub fn connect(addr: SocketAddr) -> TcpStream {
    let s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s
}

/// Sends raw bytes on a new connection and reads one response (None: closed without one).
pub fn raw(addr: SocketAddr, request: &[u8]) -> Option<Response> {
    let mut s = connect(addr);
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    s.write_all(request).unwrap();
    read_response(&mut s, &mut Vec::new(), request.starts_with(b"HEAD"))
}

/// `GET path` with `Host: host` on a new connection.
pub fn get(addr: SocketAddr, host: &str, path: &str) -> Response {
    raw(addr, format!("GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n").as_bytes())
        .expect("a response")
}

/// The admin `/metrics` text once `ready` holds for it (a connection's counters are
/// recorded as it ends, just after the client sees the close), or after 10 s as it is.
pub fn metrics_when(admin: SocketAddr, ready: impl Fn(&str) -> bool) -> String {
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let text = get(admin, "x", "/metrics").text();
        if ready(&text) || std::time::Instant::now() > deadline {
            return text;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Whether the peer closed `s` (EOF or reset) within `within`.
pub fn closed_within(s: &mut TcpStream, within: Duration) -> bool {
    s.set_read_timeout(Some(within)).unwrap();
    let mut b = [0u8; 1024];
    loop {
        match s.read(&mut b) {
            Ok(0) => return true,
            Ok(_) => continue,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock || e.kind() == std::io::ErrorKind::TimedOut => {
                return false
            }
            Err(_) => return true,
        }
    }
}

/// Runs a command and returns (exit success, stdout, stderr).
pub fn run(cmd: &mut std::process::Command) -> (bool, String, String) {
    let out = cmd.output().unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e} (is it installed? .ci/run installs it)"));
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Raises this process's soft open-file limit to the hard limit (children inherit it).
/// As root, the hard limit is raised too (to 262,144), so a test can hold tens of thousands
/// of sockets on each side.
pub fn raise_fd_limit() -> u64 {
    let mut r = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: getrlimit/setrlimit with a valid pointer to an rlimit struct.
    unsafe {
        libc::getrlimit(libc::RLIMIT_NOFILE, &mut r);
        let raised = libc::rlimit { rlim_cur: 1 << 18, rlim_max: r.rlim_max.max(1 << 18) };
        if raised.rlim_max > r.rlim_max && libc::setrlimit(libc::RLIMIT_NOFILE, &raised) == 0 {
            return raised.rlim_cur;
        }
        r.rlim_cur = r.rlim_max.min(1 << 20);
        libc::setrlimit(libc::RLIMIT_NOFILE, &r);
    }
    r.rlim_cur
}

/// wrk's totals against `http://addr/` with `Host: host`: (requests, non-2xx/3xx responses,
/// socket errors, the full output).
pub fn wrk(addr: SocketAddr, host: &str, secs: u32, conns: u32) -> (u64, u64, u64, String) {
    // wrk counts a request slower than its timeout (2 s by default) as a socket error: on a
    // shared 2-core machine running three backends' loads at once, a slow answer is not a
    // failed one. A request that never completes still counts, after 10 s.
    let (ok, out, err) = run(std::process::Command::new("wrk").args([
        "-t2",
        "--timeout",
        "10s",
        &format!("-c{conns}"),
        &format!("-d{secs}s"),
        "-H",
        &format!("Host: {host}"),
        &format!("http://{addr}/"),
    ]));
    assert!(ok, "wrk failed: {err}");
    let requests = out
        .lines()
        .find(|l| l.contains("requests in"))
        .and_then(|l| l.split_whitespace().next()?.parse().ok())
        .expect("wrk request count");
    let non2xx = out
        .lines()
        .find(|l| l.contains("Non-2xx"))
        .and_then(|l| l.rsplit(' ').next()?.trim().parse().ok())
        .unwrap_or(0);
    let socket_errors = out
        .lines()
        .find(|l| l.contains("Socket errors"))
        .map(|l| l.split(',').filter_map(|p| p.split_whitespace().last()?.parse::<u64>().ok()).sum())
        .unwrap_or(0);
    (requests, non2xx, socket_errors, out)
}

/// The issue's ingress-nginx manifests, unchanged (extensions/v1beta1, the old annotation
/// prefix), served with `--ingress-class nginx`: the audio callback API...
pub const AUDIO_CALLBACK: &str = r#"
---
apiVersion: extensions/v1beta1
kind: Ingress
metadata:
  name: audio-callback-api
  annotations:
    ingress.kubernetes.io/force-ssl-redirect: "true"
    ingress.kubernetes.io/rewrite-target: /
    kubernetes.io/ingress.class: nginx
spec:
  rules:
  - host: cl-k8s.yidianzixun.com
    http:
      paths:
      - path: /audio
        backend: {serviceName: audio-callback-api, servicePort: http}
"#;

/// ...and the gRPC feedback service.
pub const COMPETE_FEEDBACK: &str = r#"
---
apiVersion: extensions/v1beta1
kind: Ingress
metadata:
  name: compete-feedback-grpc
  annotations:
    ingress.kubernetes.io/grpc-backend: "true"
    ingress.kubernetes.io/proxy-body-size: 16m
    ingress.kubernetes.io/ssl-redirect: "true"
    kubernetes.io/ingress.class: nginx
spec:
  rules:
  - http:
      paths:
      - path: /feed.FeedBack
        backend: {serviceName: compete-feedback, servicePort: grpc}
"#;

/// A free loopback port for a forwarded Service (bound then released).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// A LoadBalancer Service of our class on `port`, with one EndpointSlice listing `endpoints`.
pub fn lb_service(name: &str, port: u16, endpoints: &[SocketAddr], annotations: &[(&str, &str)]) -> String {
    let mut ann = String::new();
    if !annotations.is_empty() {
        ann = "  annotations:\n".into();
        for (k, v) in annotations {
            ann += &format!("    {k}: \"{v}\"\n");
        }
    }
    let mut s = format!(
        "---\napiVersion: v1\nkind: Service\nmetadata:\n  name: {name}\n  namespace: default\n{ann}spec:\n  type: LoadBalancer\n  loadBalancerClass: ringress.dev/lb\n  ports: [{{name: tcp, port: {port}, targetPort: tcp}}]\n"
    );
    for (i, ep) in endpoints.iter().enumerate() {
        s += &format!(
            "---\napiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\nmetadata: {{name: {name}-{i}, namespace: default, labels: {{kubernetes.io/service-name: {name}}}}}\naddressType: IPv4\nendpoints: [{{addresses: [\"{}\"]}}]\nports: [{{name: tcp, port: {}}}]\n",
            ep.ip(),
            ep.port()
        );
    }
    s
}

/// Our GatewayClass `ringress` (controllerName `ringress.dev/gateway-controller`), as YAML: a
/// macro so that it can be `concat!`ed into the tests' manifest constants.
#[macro_export]
macro_rules! gateway_class {
    () => {
        "apiVersion: gateway.networking.k8s.io/v1\nkind: GatewayClass\nmetadata: {name: ringress}\nspec: {controllerName: ringress.dev/gateway-controller}\n"
    };
}
#[allow(unused_imports)]
pub use gateway_class;
