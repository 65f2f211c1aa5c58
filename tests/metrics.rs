//! `/metrics` as Prometheus reads it: responses by Ingress, service, method and status class
//! over HTTP/1.1 and HTTP/2 (requests that match no rule under empty labels), and the request
//! duration histogram, summed over the workers.

mod support;

use support::*;

fn value(metrics: &str, series: &str) -> u64 {
    metrics
        .lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
        .unwrap_or_else(|| panic!("no {series} in:\n{metrics}"))
}

#[test]
fn responses_are_counted_by_route_method_and_status_class() {
    let a = Upstream::start("a");
    let m = service("svc-a", &[a.addr]) + &ingress("site", Some("m.test"), &[("/", "svc-a")]);
    let p = Proxy::start("uring", &m, &[]);
    for _ in 0..3 {
        assert_eq!(get(p.http, "m.test", "/").status, 200);
    }
    assert_eq!(get(p.http, "m.test", "/status/503").status, 503);
    let post = raw(p.http, b"POST /x HTTP/1.1\r\nHost: m.test\r\nContent-Length: 2\r\nConnection: close\r\n\r\nhi");
    assert_eq!(post.expect("a response").status, 200);
    assert_eq!(get(p.http, "nowhere.test", "/").status, 404);
    // HTTP/2 (h2c) through curl.
    let (ok, out, err) = run(std::process::Command::new("curl").args([
        "-s",
        "-o",
        "/dev/null",
        "-w",
        "%{http_code} %{http_version}",
        "--http2-prior-knowledge",
        &format!("http://127.0.0.1:{}/", p.http.port()),
        "-H",
        "Host: m.test",
    ]));
    assert!(ok && out == "200 2", "{out} {err}");

    let metrics = metrics_when(p.admin, |m| {
        m.contains("ringress_request_duration_seconds_count 7")
            && m.contains("ringress_protocol_connections_active{protocol=\"h2c\"} 0")
    });
    let series = |method: &str, status: &str| {
        format!(
            "ringress_http_responses_total{{ingress=\"default/site\",service=\"default/svc-a:80\",method=\"{method}\",status=\"{status}\"}}"
        )
    };
    assert_eq!(value(&metrics, &series("GET", "2xx")), 4, "3 over HTTP/1.1, 1 over HTTP/2");
    assert_eq!(value(&metrics, &series("GET", "5xx")), 1);
    assert_eq!(value(&metrics, &series("POST", "2xx")), 1);
    assert_eq!(
        value(&metrics, "ringress_http_responses_total{ingress=\"\",service=\"\",method=\"GET\",status=\"4xx\"}"),
        1
    );
    assert_eq!(value(&metrics, "ringress_request_duration_seconds_count"), 7);
    assert_eq!(value(&metrics, "ringress_request_duration_seconds_bucket{le=\"+Inf\"}"), 7);
    // Connections by protocol: six HTTP/1.1 ones, one h2c, all closed by now.
    assert_eq!(value(&metrics, "ringress_protocol_connections_total{protocol=\"http1\"}"), 6);
    assert_eq!(value(&metrics, "ringress_protocol_connections_total{protocol=\"h2c\"}"), 1);
    assert_eq!(value(&metrics, "ringress_protocol_connections_total{protocol=\"h2\"}"), 0);
    assert_eq!(value(&metrics, "ringress_protocol_connections_active{protocol=\"h2c\"}"), 0);
}

/// `--metrics`: `/metrics` alone, and only to the blocks `--metrics-allow` names; other
/// clients are closed without an answer (curl binds its source address with --interface).
#[test]
fn the_metrics_listener_answers_only_metrics_and_only_to_allowed_addresses() {
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let listen = format!("127.0.0.1:{port}");
    let p = Proxy::start("uring", "", &["--metrics", &listen, "--metrics-allow", "127.0.0.5/32, ::1"]);
    let curl = |from: &str, path: &str| {
        run(std::process::Command::new("curl").args([
            "-s",
            "--max-time",
            "5",
            "--interface",
            from,
            "-w",
            "\n%{http_code}",
            &format!("http://{listen}{path}"),
        ]))
    };
    let (_, out, _) = curl("127.0.0.5", "/metrics");
    assert!(out.ends_with("\n200") && out.contains("ringress_"), "{out}");
    let (_, out, _) = curl("127.0.0.5", "/debug/routes");
    assert!(out.ends_with("\n404"), "{out}");
    let (_, out, _) = curl("127.0.0.5", "/healthz");
    assert!(out.ends_with("\n404"), "{out}");
    // From outside the list: no answer at all (curl: empty reply, code 000).
    let (ok, out, _) = curl("127.0.0.1", "/metrics");
    assert!(!ok && out.ends_with("000"), "{out}");
    // The admin listener is unchanged.
    assert_eq!(get(p.admin, "x", "/healthz").status, 200);
}
