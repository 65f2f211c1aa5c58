//! gRPC through ringress with a real gRPC stack (tonic) on both ends: the ingress-nginx
//! manifest of the issue unchanged (`grpc-backend`, `proxy-body-size: 16m`), all four call
//! types, status codes and trailers passed through, the body limit answered as
//! RESOURCE_EXHAUSTED, and no ready endpoint answered as UNAVAILABLE; canary, affinity,
//! limits, ExternalName Services, `default-backend` and `proxy-next-upstream` for gRPC calls.

// tonic's Status is what its traits return, large or not.
#![allow(clippy::result_large_err)]

mod support;

use std::net::SocketAddr;
use std::pin::Pin;
use std::task::{Context, Poll};

use support::*;
use tonic::codec::ProstCodec;
use tonic::codegen::{http, BoxFuture, Service, StdError};
use tonic::{Code, Status};

#[derive(Clone, PartialEq, prost::Message)]
struct Msg {
    #[prost(bytes = "vec", tag = "1")]
    data: Vec<u8>,
    #[prost(uint32, tag = "2")]
    n: u32,
}

type MsgStream = Pin<Box<dyn tokio_stream::Stream<Item = Result<Msg, Status>> + Send>>;

/// `feed.FeedBack` with one method per call type.
#[derive(Clone)]
struct FeedBack;

impl tonic::server::NamedService for FeedBack {
    const NAME: &'static str = "feed.FeedBack";
}

struct Unary;
impl tonic::server::UnaryService<Msg> for Unary {
    type Response = Msg;
    type Future = BoxFuture<tonic::Response<Msg>, Status>;
    fn call(&mut self, req: tonic::Request<Msg>) -> Self::Future {
        Box::pin(async move {
            let xff = req.metadata().get("x-forwarded-for").map(|v| v.to_str().unwrap_or("").to_string());
            let m = req.into_inner();
            if m.n == 99 {
                return Err(Status::not_found("no feedback 99"));
            }
            let sum: u32 = m.data.iter().map(|&b| b as u32).sum();
            Ok(tonic::Response::new(Msg { data: xff.unwrap_or_default().into_bytes(), n: sum }))
        })
    }
}

struct ServerStream;
impl tonic::server::ServerStreamingService<Msg> for ServerStream {
    type Response = Msg;
    type ResponseStream = MsgStream;
    type Future = BoxFuture<tonic::Response<MsgStream>, Status>;
    fn call(&mut self, req: tonic::Request<Msg>) -> Self::Future {
        let n = req.into_inner().n;
        Box::pin(async move {
            let items = (0..n).map(|i| Ok(Msg { data: vec![i as u8; 1000], n: i }));
            Ok(tonic::Response::new(Box::pin(tokio_stream::iter(items)) as MsgStream))
        })
    }
}

struct ClientStream;
impl tonic::server::ClientStreamingService<Msg> for ClientStream {
    type Response = Msg;
    type Future = BoxFuture<tonic::Response<Msg>, Status>;
    fn call(&mut self, req: tonic::Request<tonic::Streaming<Msg>>) -> Self::Future {
        Box::pin(async move {
            let mut s = req.into_inner();
            let (mut count, mut bytes) = (0u32, 0usize);
            while let Some(m) = s.message().await? {
                count += 1;
                bytes += m.data.len();
            }
            Ok(tonic::Response::new(Msg { data: bytes.to_string().into_bytes(), n: count }))
        })
    }
}

struct Bidi;
impl tonic::server::StreamingService<Msg> for Bidi {
    type Response = Msg;
    type ResponseStream = MsgStream;
    type Future = BoxFuture<tonic::Response<MsgStream>, Status>;
    fn call(&mut self, req: tonic::Request<tonic::Streaming<Msg>>) -> Self::Future {
        Box::pin(async move {
            let mut input = req.into_inner();
            let (tx, rx) = tokio::sync::mpsc::channel(4);
            tokio::spawn(async move {
                while let Ok(Some(m)) = input.message().await {
                    if tx.send(Ok(Msg { data: m.data, n: m.n * 2 })).await.is_err() {
                        return;
                    }
                }
            });
            Ok(tonic::Response::new(Box::pin(tokio_stream::wrappers::ReceiverStream::new(rx)) as MsgStream))
        })
    }
}

const MAX: usize = 64 << 20;

fn grpc() -> tonic::server::Grpc<ProstCodec<Msg, Msg>> {
    tonic::server::Grpc::new(ProstCodec::default()).apply_max_message_size_config(Some(MAX), Some(MAX))
}

impl<B> Service<http::Request<B>> for FeedBack
where
    B: tonic::codegen::Body + Send + 'static,
    B::Error: Into<StdError> + Send + 'static,
{
    type Response = http::Response<tonic::body::BoxBody>;
    type Error = std::convert::Infallible;
    type Future = BoxFuture<Self::Response, Self::Error>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: http::Request<B>) -> Self::Future {
        match req.uri().path() {
            "/feed.FeedBack/Unary" => Box::pin(async move { Ok(grpc().unary(Unary, req).await) }),
            "/feed.FeedBack/Watch" => Box::pin(async move { Ok(grpc().server_streaming(ServerStream, req).await) }),
            "/feed.FeedBack/Upload" => Box::pin(async move { Ok(grpc().client_streaming(ClientStream, req).await) }),
            "/feed.FeedBack/Chat" => Box::pin(async move { Ok(grpc().streaming(Bidi, req).await) }),
            _ => Box::pin(async move { Ok(Status::unimplemented("no such method").into_http()) }),
        }
    }
}

/// A tonic server on loopback, on its own runtime thread.
fn grpc_server() -> SocketAddr {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    l.set_nonblocking(true).unwrap();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
        rt.block_on(async move {
            let l = tokio::net::TcpListener::from_std(l).unwrap();
            tonic::transport::Server::builder()
                .add_service(FeedBack)
                .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(l))
                .await
                .unwrap();
        });
    });
    addr
}

/// A Service whose port is named `grpc`, with the given endpoints.
fn grpc_service(name: &str, endpoints: &[SocketAddr]) -> String {
    let mut s = format!(
        "---\napiVersion: v1\nkind: Service\nmetadata: {{name: {name}, namespace: default}}\nspec:\n  ports: [{{name: grpc, port: 50051, targetPort: grpc}}]\n"
    );
    for (i, ep) in endpoints.iter().enumerate() {
        s += &format!(
            "---\napiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\nmetadata:\n  name: {name}-{i}\n  namespace: default\n  labels: {{kubernetes.io/service-name: {name}}}\naddressType: IPv4\nendpoints:\n- addresses: [\"{}\"]\nports: [{{name: grpc, port: {}}}]\n",
            ep.ip(),
            ep.port()
        );
    }
    s
}

fn client(rt: &tokio::runtime::Runtime, proxy: SocketAddr) -> tonic::client::Grpc<tonic::transport::Channel> {
    let channel = rt.block_on(async {
        tonic::transport::Endpoint::from_shared(format!("http://{proxy}")).unwrap().connect().await.unwrap()
    });
    tonic::client::Grpc::new(channel).max_decoding_message_size(MAX).max_encoding_message_size(MAX)
}

fn path(m: &str) -> http::uri::PathAndQuery {
    http::uri::PathAndQuery::try_from(format!("/feed.FeedBack/{m}")).unwrap()
}

async fn unary(c: &mut tonic::client::Grpc<tonic::transport::Channel>, m: Msg) -> Result<Msg, Status> {
    c.ready().await.unwrap();
    c.unary(tonic::Request::new(m), path("Unary"), ProstCodec::default()).await.map(|r| r.into_inner())
}

/// Opens a bidirectional `Chat` call and sends its first message (`n: 1`).
async fn chat(
    c: &mut tonic::client::Grpc<tonic::transport::Channel>,
) -> (tokio::sync::mpsc::Sender<Msg>, tonic::Streaming<Msg>) {
    c.ready().await.unwrap();
    let (tx, rx) = tokio::sync::mpsc::channel(1);
    tx.send(Msg { data: b"ping".to_vec(), n: 1 }).await.unwrap();
    let answers = c
        .streaming(
            tonic::Request::new(tokio_stream::wrappers::ReceiverStream::new(rx)),
            path("Chat"),
            ProstCodec::<Msg, Msg>::default(),
        )
        .await
        .unwrap()
        .into_inner();
    (tx, answers)
}

per_backend!(fn all_four_call_types_through_the_ingress_nginx_manifest(io) {
    let server = grpc_server();
    let m = grpc_service("compete-feedback", &[server]) + COMPETE_FEEDBACK;
    let log = support::proxy::temp_dir().join("access.json");
    let log_s = log.to_str().unwrap().to_string();
    let args = ["--ingress-class", "nginx", "--access-log", &log_s, "--access-log-format", "json"];
    let p = Proxy::start(io, &m, &args);
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let mut c = client(&rt, p.http);
    rt.block_on(async {
        // Unary, with the client address forwarded as metadata.
        let r = unary(&mut c, Msg { data: vec![1, 2, 3], n: 0 }).await.unwrap();
        assert_eq!(r.n, 6, "{io}");
        assert_eq!(String::from_utf8_lossy(&r.data), "127.0.0.1", "{io}");
        // A status from the server passes through in the trailers.
        let e = unary(&mut c, Msg { data: vec![], n: 99 }).await.unwrap_err();
        assert_eq!((e.code(), e.message()), (Code::NotFound, "no feedback 99"), "{io}");

        // Server streaming: 200 messages.
        c.ready().await.unwrap();
        let mut s = c
            .server_streaming(
                tonic::Request::new(Msg { data: vec![], n: 200 }),
                path("Watch"),
                ProstCodec::<Msg, Msg>::default(),
            )
            .await
            .unwrap()
            .into_inner();
        let mut got = 0;
        while let Some(m) = s.message().await.unwrap() {
            assert_eq!(m.n, got, "{io}");
            got += 1;
        }
        assert_eq!(got, 200, "{io}");

        // Client streaming: 100 messages of 10 KB.
        c.ready().await.unwrap();
        let msgs = (0..100).map(|i| Msg { data: vec![7; 10_000], n: i });
        let r = c
            .client_streaming(
                tonic::Request::new(tokio_stream::iter(msgs)),
                path("Upload"),
                ProstCodec::<Msg, Msg>::default(),
            )
            .await
            .unwrap()
            .into_inner();
        assert_eq!((r.n, String::from_utf8_lossy(&r.data).to_string()), (100, "1000000".to_string()), "{io}");

        // Bidirectional: each answer arrives before the next message is sent.
        let (tx, mut answers) = chat(&mut c).await;
        for i in 1..=20u32 {
            let a = answers.message().await.unwrap().expect("an answer");
            assert_eq!(a.n, i * 2, "{io}");
            if i < 20 {
                tx.send(Msg { data: b"ping".to_vec(), n: i + 1 }).await.unwrap();
            }
        }
        drop(tx);
        assert!(answers.message().await.unwrap().is_none(), "{io}: the call ends cleanly");
    });
    // One access-log line per call, gRPC like any other request.
    let lines = || -> Vec<serde_json::Value> {
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        text.lines().map(|l| serde_json::from_str(l).unwrap()).collect()
    };
    p.wait_for(|| lines().len() >= 5, "five access-log lines");
    let all = lines();
    let upload = all.iter().find(|v| v["uri"] == "/feed.FeedBack/Upload").expect("the Upload line");
    assert_eq!((&upload["protocol"], &upload["status"]), (&"HTTP/2.0".into(), &200.into()), "{io}: {upload}");
    assert!(upload["bytes_in"].as_u64().unwrap() >= 1_000_000, "{io}: {upload}");
    assert_eq!(upload["upstream_addr"], server.to_string(), "{io}");
    assert_eq!(upload["request_id"].as_str().map(str::len), Some(32), "{io}");
    assert!(all.iter().any(|v| v["uri"] == "/feed.FeedBack/Chat" && v["bytes_out"].as_u64() > Some(0)), "{io}");
});

#[test]
fn body_limit_is_resource_exhausted_and_no_endpoint_is_unavailable() {
    let server = grpc_server();
    let m = grpc_service("compete-feedback", &[server]) + COMPETE_FEEDBACK;
    let p = Proxy::start("uring", &m, &["--ingress-class", "nginx"]);
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let mut c = client(&rt, p.http);
    rt.block_on(async {
        let r = unary(&mut c, Msg { data: vec![1; 15 << 20], n: 0 }).await.expect("15 MB passes a 16m limit");
        assert_eq!(r.n, 15 << 20);
        let e = unary(&mut c, Msg { data: vec![1; 17 << 20], n: 0 }).await.unwrap_err();
        assert_eq!(e.code(), Code::ResourceExhausted, "{e:?}");
        assert!(e.message().starts_with("ringress:"), "answered by the proxy: {e:?}");
        // The connection is still good for the next call.
        assert_eq!(unary(&mut c, Msg { data: vec![2], n: 0 }).await.unwrap().n, 2);
    });
    drop(p);

    // The same Ingress with no ready endpoint: UNAVAILABLE from the proxy, not an HTML page.
    let m = grpc_service("compete-feedback", &[]) + COMPETE_FEEDBACK;
    let p = Proxy::start("uring", &m, &["--ingress-class", "nginx"]);
    let mut c = client(&rt, p.http);
    let e = rt.block_on(unary(&mut c, Msg { data: vec![], n: 0 })).unwrap_err();
    assert_eq!(e.code(), Code::Unavailable, "{e:?}");
    assert!(e.message().contains("no ready endpoints"), "{e:?}");
}

#[test]
fn grpcs_backends_are_reached_over_tls_and_verified() {
    // B terminates TLS (ALPN h2) in front of the gRPC server, with a certificate for
    // grpc.test (chosen by SNI) from a CA A trusts; A proxies to B's HTTPS port with
    // backend-protocol: GRPCS.
    let server = grpc_server();
    let ca = support::pki::Ca::new("grpc upstream CA");
    let (crt, key) = ca.leaf(&["grpc.test"]);
    let b_tls = "---\napiVersion: networking.k8s.io/v1\nkind: Ingress\nmetadata:\n  name: tls-only\n  namespace: default\n  annotations: {kubernetes.io/ingress.class: nginx, nginx.ingress.kubernetes.io/backend-protocol: GRPC}\nspec:\n  tls: [{hosts: [grpc.test], secretName: grpc-tls}]\n  rules:\n  - host: grpc.test\n    http:\n      paths:\n      - {path: /feed.FeedBack, pathType: Prefix, backend: {service: {name: compete-feedback, port: {name: grpc}}}}\n";
    let b = Proxy::start(
        "uring",
        &(grpc_service("compete-feedback", &[server])
            + COMPETE_FEEDBACK
            + b_tls
            + &secret_data("grpc-tls", &[("tls.crt", &crt), ("tls.key", &key)])),
        &["--ingress-class", "nginx"],
    );
    let ingress = |name: &str, annotations: &str| {
        format!("---\napiVersion: networking.k8s.io/v1\nkind: Ingress\nmetadata:\n  name: {name}\n  namespace: default\n  annotations: {{nginx.ingress.kubernetes.io/backend-protocol: GRPCS{annotations}}}\nspec:\n  ingressClassName: ringress\n  rules:\n  - host: {name}.test\n    http:\n      paths:\n      - {{path: /feed.FeedBack, pathType: Prefix, backend: {{service: {{name: secure-feedback, port: {{name: grpc}}}}}}}}\n")
    };
    let verify = ", nginx.ingress.kubernetes.io/proxy-ssl-secret: upstream-ca, nginx.ingress.kubernetes.io/proxy-ssl-verify: \"on\", nginx.ingress.kubernetes.io/proxy-ssl-name: grpc.test";
    let a_manifests = grpc_service("secure-feedback", &[b.https])
        + &secret_data("upstream-ca", &[("ca.crt", &ca.pem)])
        + &ingress("secure", "")
        + &ingress("verified", &format!("{verify}, nginx.ingress.kubernetes.io/proxy-ssl-server-name: \"on\""))
        // Without SNI, B answers with its generated default certificate: not the CA's.
        + &ingress("refused", verify);
    let a = Proxy::start("epoll", &a_manifests, &[]);
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    for host in ["secure.test", "verified.test"] {
        let mut c = client_for(&rt, a.http, host);
        rt.block_on(async {
            for i in 0..20u8 {
                let r = unary(&mut c, Msg { data: vec![i, 1], n: 0 }).await.unwrap();
                assert_eq!(r.n, i as u32 + 1, "{host}");
            }
            let e = unary(&mut c, Msg { data: vec![], n: 99 }).await.unwrap_err();
            assert_eq!(e.code(), Code::NotFound, "{host}: trailers through two proxies and TLS: {e:?}");
        });
    }
    let mut c = client_for(&rt, a.http, "refused.test");
    let e = rt.block_on(unary(&mut c, Msg { data: vec![1], n: 0 })).unwrap_err();
    assert_eq!(e.code(), Code::Unavailable, "a certificate that does not verify: {e:?}");
    // Logged by ringress as it answers: read from its stderr a moment later.
    a.wait_for(|| a.log_text().contains("TLS handshake with the upstream failed"), "the handshake failure logged");
    let metrics = get(b.admin, "x", "/metrics").text();
    let handshakes: u64 = metrics
        .lines()
        .find_map(|l| l.strip_prefix("ringress_tls_handshakes_total "))
        .and_then(|v| v.trim().parse().ok())
        .unwrap();
    assert!((2..=6).contains(&handshakes), "B saw A's TLS connections, one per profile: {metrics}");
}

/// A WebSocket and a gRPC stream opened before 1,000 consecutive configuration changes
/// (routes, endpoints and ConfigMap settings, each one published) are alive and working after
/// them: no change closes a client connection.
#[test]
fn a_websocket_and_a_grpc_stream_outlive_1000_configuration_changes() {
    use std::io::{Read, Write};
    let a = Upstream::start("a");
    let b = Upstream::start("b");
    let server = grpc_server();
    let version = |i: usize| {
        let endpoints: &[SocketAddr] = if i % 2 == 0 { &[a.addr] } else { &[a.addr, b.addr] };
        let cm = format!(
            "---\napiVersion: v1\nkind: ConfigMap\nmetadata: {{name: ringress, namespace: ringress}}\ndata: {{proxy-read-timeout: \"{}\"}}\n",
            60 + i
        );
        service("svc-a", endpoints)
            + &ingress("ws", Some("ws.test"), &[("/", "svc-a")])
                .replace("ingressClassName: ringress", "ingressClassName: nginx")
            + &ingress(&format!("churn-{}", i % 7), Some(&format!("churn{i}.test")), &[("/", "svc-a")])
                .replace("ingressClassName: ringress", "ingressClassName: nginx")
            + &grpc_service("compete-feedback", &[server])
            + COMPETE_FEEDBACK
            + &cm
    };
    let p = Proxy::start("uring", &version(0), &["--ingress-class", "nginx", "--poll-ms", "5"]);

    // The WebSocket.
    let mut ws = connect(p.http);
    ws.write_all(b"GET /ws HTTP/1.1\r\nHost: ws.test\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n").unwrap();
    let mut pending = Vec::new();
    assert_eq!(read_response(&mut ws, &mut pending, false).unwrap().status, 101);
    let mut echo = |ws: &mut std::net::TcpStream, msg: &[u8]| {
        ws.write_all(&upstream::frame(1, msg, Some([1, 2, 3, 4]))).unwrap();
        let want = upstream::frame(1, msg, None);
        let mut got = std::mem::take(&mut pending);
        while got.len() < want.len() {
            let mut buf = [0u8; 4096];
            let n = ws.read(&mut buf).unwrap();
            assert!(n > 0, "the WebSocket was closed");
            got.extend_from_slice(&buf[..n]);
        }
        assert_eq!(got, want);
    };
    echo(&mut ws, b"before");

    // The gRPC bidirectional stream.
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let mut c = client(&rt, p.http);
    let (tx, mut answers) = rt.block_on(async {
        let (tx, mut answers) = chat(&mut c).await;
        assert_eq!(answers.message().await.unwrap().expect("an answer").n, 2);
        (tx, answers)
    });

    let start = p.generation();
    for i in 1..=1000usize {
        let before = p.generation();
        p.replace_manifests(&version(i));
        while p.generation() == before {
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
        if i % 100 == 0 {
            echo(&mut ws, format!("after {i}").as_bytes());
            rt.block_on(async {
                tx.send(Msg { data: b"ping".to_vec(), n: i as u32 }).await.unwrap();
                assert_eq!(answers.message().await.unwrap().expect("an answer").n, 2 * i as u32);
            });
        }
    }
    assert!(p.generation() - start >= 1000, "{} publishes", p.generation() - start);
    echo(&mut ws, b"at the end");
    rt.block_on(async {
        drop(tx);
        assert!(answers.message().await.unwrap().is_none(), "the call ends cleanly");
    });
    // The changes were real: the last version's host routes, the first one's does not.
    assert_eq!(get(p.http, "churn1000.test", "/").status, 200);
    assert_eq!(get(p.http, "churn1.test", "/").status, 404);
}

/// A canary Ingress over gRPC: the same pipeline decides. The canary's Service has no ready
/// endpoint, so a call it takes is answered UNAVAILABLE by the proxy, and one it does not
/// reaches the main backend.
#[test]
fn a_canary_takes_the_calls_its_header_names() {
    let server = grpc_server();
    let ingress = |name: &str, service: &str, extra: &str| {
        format!("---\napiVersion: networking.k8s.io/v1\nkind: Ingress\nmetadata:\n  name: {name}\n  namespace: default\n  annotations: {{nginx.ingress.kubernetes.io/backend-protocol: GRPC{extra}}}\nspec:\n  ingressClassName: ringress\n  rules:\n  - http:\n      paths:\n      - {{path: /feed.FeedBack, pathType: Prefix, backend: {{service: {{name: {service}, port: {{name: grpc}}}}}}}}\n")
    };
    let m = grpc_service("feedback", &[server])
        + &grpc_service("feedback-next", &[])
        + &ingress("feedback", "feedback", "")
        + &ingress(
            "feedback-next",
            "feedback-next",
            ", nginx.ingress.kubernetes.io/canary: \"true\", nginx.ingress.kubernetes.io/canary-by-header: x-canary",
        );
    let p = Proxy::start("uring", &m, &[]);
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let mut c = client(&rt, p.http);
    rt.block_on(async {
        assert_eq!(unary(&mut c, Msg { data: vec![3], n: 0 }).await.unwrap().n, 3, "the main backend");
        let mut req = tonic::Request::new(Msg { data: vec![3], n: 0 });
        req.metadata_mut().insert("x-canary", "always".parse().unwrap());
        c.ready().await.unwrap();
        let e = c.unary::<Msg, Msg, _>(req, path("Unary"), ProstCodec::default()).await.unwrap_err();
        assert_eq!(e.code(), Code::Unavailable, "{e:?}");
        assert!(e.message().contains("no ready endpoints"), "{e:?}");
    });
}

/// Affinity and limits over gRPC, through the same pipeline: the first call gets the
/// affinity cookie in its response metadata, a call carrying it gets none; a request-rate
/// limit lets its burst through and refuses the rest as UNAVAILABLE.
#[test]
fn affinity_cookies_and_rate_limits_apply_to_grpc_calls() {
    let server = grpc_server();
    let annotations = ", nginx.ingress.kubernetes.io/affinity: cookie, nginx.ingress.kubernetes.io/limit-rpm: \"1\", nginx.ingress.kubernetes.io/limit-burst-multiplier: \"2\"";
    let m = grpc_service("feedback", &[server])
        + &format!("---\napiVersion: networking.k8s.io/v1\nkind: Ingress\nmetadata:\n  name: feedback\n  namespace: default\n  annotations: {{nginx.ingress.kubernetes.io/backend-protocol: GRPC{annotations}}}\nspec:\n  ingressClassName: ringress\n  rules:\n  - http:\n      paths:\n      - {{path: /feed.FeedBack, pathType: Prefix, backend: {{service: {{name: feedback, port: {{name: grpc}}}}}}}}\n");
    let p = Proxy::start("uring", &m, &[]);
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let mut c = client(&rt, p.http);
    rt.block_on(async {
        let call = |cookie: Option<String>| {
            let mut req = tonic::Request::new(Msg { data: vec![2, 3], n: 0 });
            if let Some(v) = cookie {
                req.metadata_mut().insert("cookie", v.parse().unwrap());
            }
            req
        };
        c.ready().await.unwrap();
        let r = c.unary::<Msg, Msg, _>(call(None), path("Unary"), ProstCodec::default()).await.unwrap();
        assert_eq!(r.get_ref().n, 5);
        let set = r.metadata().get("set-cookie").expect("a cookie").to_str().unwrap().to_string();
        assert!(set.starts_with("INGRESSCOOKIE=") && set.ends_with("; Path=/feed.FeedBack; HttpOnly"), "{set}");
        let pair = set.split(';').next().unwrap().to_string();
        c.ready().await.unwrap();
        let r = c.unary::<Msg, Msg, _>(call(Some(pair.clone())), path("Unary"), ProstCodec::default()).await.unwrap();
        assert!(r.metadata().get("set-cookie").is_none(), "an affine call sets nothing");
        // Two calls so far; the burst of two plus one passes, then UNAVAILABLE.
        c.ready().await.unwrap();
        assert!(c.unary::<Msg, Msg, _>(call(Some(pair.clone())), path("Unary"), ProstCodec::default()).await.is_ok());
        for _ in 0..3 {
            c.ready().await.unwrap();
            let e = c
                .unary::<Msg, Msg, _>(call(Some(pair.clone())), path("Unary"), ProstCodec::default())
                .await
                .unwrap_err();
            assert_eq!(e.code(), Code::Unavailable, "{e:?}");
            assert!(e.message().contains("too many requests"), "{e:?}");
        }
    });
}

/// A client whose calls carry `host` as their `:authority` (the route's host).
fn client_for(
    rt: &tokio::runtime::Runtime,
    proxy: SocketAddr,
    host: &str,
) -> tonic::client::Grpc<tonic::transport::Channel> {
    let channel = rt.block_on(async {
        let origin: http::Uri = format!("http://{host}").parse().unwrap();
        tonic::transport::Endpoint::from_shared(format!("http://{proxy}"))
            .unwrap()
            .origin(origin)
            .connect()
            .await
            .unwrap()
    });
    tonic::client::Grpc::new(channel)
}

/// The backends of issue 18 over gRPC, through the same pipeline: an ExternalName Service
/// (resolved by the loopback DNS server), the `default-backend` annotation for a Service
/// without endpoints, and `proxy-next-upstream` (the default `error`) moving calls off an
/// endpoint that refuses connections.
#[test]
fn external_names_fallbacks_and_next_upstream_serve_grpc_calls() {
    use support::dns::{Answer, Dns};
    let server = grpc_server();
    let dns = Dns::start();
    dns.set("feed.ext.test", Answer::A(vec![std::net::Ipv4Addr::LOCALHOST], 1));
    let refused = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
    let ingress = |name: &str, host: &str, service: &str, extra: &str| {
        format!("---\napiVersion: networking.k8s.io/v1\nkind: Ingress\nmetadata:\n  name: {name}\n  namespace: default\n  annotations: {{nginx.ingress.kubernetes.io/backend-protocol: GRPC{extra}}}\nspec:\n  ingressClassName: ringress\n  rules:\n  - host: {host}\n    http:\n      paths:\n      - {{path: /feed.FeedBack, pathType: Prefix, backend: {{service: {{name: {service}, port: {{name: grpc}}}}}}}}\n")
    };
    let m = format!(
        "---\napiVersion: v1\nkind: Service\nmetadata: {{name: ext, namespace: default}}\nspec:\n  type: ExternalName\n  externalName: feed.ext.test\n  ports: [{{name: grpc, port: 50051, targetPort: {}}}]\n",
        server.port()
    ) + &grpc_service("feedback", &[server])
        + &grpc_service("empty", &[])
        + &grpc_service("flaky", &[refused, server])
        + &ingress("ext", "ext.test", "ext", "")
        + &ingress("fallback", "fallback.test", "empty", ", nginx.ingress.kubernetes.io/default-backend: feedback")
        + &ingress("flaky", "flaky.test", "flaky", "");
    let server_arg = dns.addr.to_string();
    let p = Proxy::start("uring", &m, &["--dns-server", &server_arg, "--external-name-loopback"]);
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    for host in ["ext.test", "fallback.test", "flaky.test"] {
        let mut c = client_for(&rt, p.http, host);
        rt.block_on(async {
            // Round robin over [refused, server]: without moving on, every other call fails.
            for i in 0..6u8 {
                let r = unary(&mut c, Msg { data: vec![i, 1], n: 0 }).await;
                assert_eq!(r.map(|m| m.n).map_err(|e| format!("{e:?}")), Ok(i as u32 + 1), "{host}, call {i}");
            }
        });
    }
}

/// A GatewayClass of ours and a Gateway taking routes of its namespace, in manifest files.
const GATEWAY: &str = concat!(
    "\n---\n",
    support::gateway_class!(),
    "---
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {name: gw, namespace: default}
spec:
  gatewayClassName: ringress
  listeners: [{name: http, port: 80, protocol: HTTP}]
"
);

/// Gateway API conformance GRPCRouteExactMethodMatching and GRPCRouteHeaderMatching, as
/// manifest files: calls routed by service and method, then by metadata; a method no rule
/// names is UNIMPLEMENTED, a rule whose backend does not exist UNAVAILABLE.
#[test]
fn grpcroute_exact_method_matching_and_header_matching() {
    let server = grpc_server();
    let route = "
---
apiVersion: gateway.networking.k8s.io/v1
kind: GRPCRoute
metadata: {name: methods, namespace: default}
spec:
  parentRefs: [{name: gw}]
  rules:
  - matches: [{method: {service: feed.FeedBack, method: Unary}}]
    backendRefs: [{name: grpc-infra, port: 50051}]
  - matches: [{method: {service: feed.FeedBack, method: Unary}, headers: [{name: x-route, value: broken}]}]
    backendRefs: [{name: missing, port: 50051}]
  - matches: [{method: {service: feed.FeedBack, method: Watch}}]
    backendRefs: [{name: missing, port: 50051}]
";
    let m = grpc_service("grpc-infra", &[server]) + GATEWAY + route;
    let p = Proxy::start("uring", &m, &[]);
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let mut c = client(&rt, p.http);
    rt.block_on(async {
        assert_eq!(unary(&mut c, Msg { data: vec![3, 4], n: 0 }).await.expect("routed by method").n, 7);
        c.ready().await.unwrap();
        let mut req = tonic::Request::new(Msg { data: vec![1], n: 0 });
        req.metadata_mut().insert("x-route", "broken".parse().unwrap());
        let e = c.unary(req, path("Unary"), ProstCodec::<Msg, Msg>::default()).await.unwrap_err();
        assert_eq!(e.code(), Code::Unavailable, "the header's rule, whose Service is missing: {e:?}");
        c.ready().await.unwrap();
        let e = c
            .server_streaming(
                tonic::Request::new(Msg { data: vec![], n: 2 }),
                path("Watch"),
                ProstCodec::<Msg, Msg>::default(),
            )
            .await
            .unwrap_err();
        assert_eq!(e.code(), Code::Unavailable, "{e:?}");
        c.ready().await.unwrap();
        let msgs = tokio_stream::iter(vec![Msg { data: vec![], n: 1 }]);
        let e =
            c.streaming(tonic::Request::new(msgs), path("Chat"), ProstCodec::<Msg, Msg>::default()).await.unwrap_err();
        assert_eq!(e.code(), Code::Unimplemented, "no rule names Chat: {e:?}");
        assert!(e.message().starts_with("ringress:"), "answered by the proxy: {e:?}");
    });
}
