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
