//! Global settings from the ConfigMap (here in the manifests, as `--configmap` names it):
//! applied live with the snapshot, a bad value or unknown key is a warning naming it and the
//! previous value stays.

mod support;

use std::io::Write;

use support::*;

fn manifests(a: &Upstream, data: &[(&str, &str)]) -> String {
    let mut cm =
        String::from("---\napiVersion: v1\nkind: ConfigMap\nmetadata: {name: ringress, namespace: ringress}\ndata:\n");
    for (k, v) in data {
        cm += &format!("  {k}: \"{v}\"\n");
    }
    service("svc-a", &[a.addr])
        + &ingress("site", Some("cm.test"), &[("/", "svc-a")])
        + "---\napiVersion: networking.k8s.io/v1\nkind: Ingress\nmetadata:\n  name: forced\n  namespace: default\n  annotations: {nginx.ingress.kubernetes.io/force-ssl-redirect: \"true\"}\nspec:\n  ingressClassName: ringress\n  rules:\n  - host: forced.test\n    http:\n      paths:\n      - {path: /, pathType: Prefix, backend: {service: {name: svc-a, port: {number: 80}}}}\n"
        + &cm
}

fn post(p: &Proxy, len: usize) -> u16 {
    let head = format!("POST /upload HTTP/1.1\r\nHost: cm.test\r\nContent-Length: {len}\r\nConnection: close\r\n\r\n");
    let mut req = head.into_bytes();
    req.extend(std::iter::repeat_n(b'x', len));
    raw(p.http, &req).map_or(0, |r| r.status)
}

fn publish(p: &Proxy, m: &str) {
    let generation = p.generation();
    p.replace_manifests(m);
    p.wait_for(|| p.generation() > generation, "the new snapshot");
}

#[test]
fn configmap_settings_apply_live_and_bad_values_keep_the_previous_one() {
    let a = Upstream::start("a");
    let p = Proxy::start("uring", &manifests(&a, &[("proxy-body-size", "1k")]), &[]);
    assert_eq!((post(&p, 2000), post(&p, 500)), (413, 200), "proxy-body-size 1k");
    assert_eq!(get(p.http, "forced.test", "/x?y=1").status, 308, "http-redirect-code default");

    publish(
        &p,
        &manifests(&a, &[("proxy-body-size", "4k"), ("http-redirect-code", "301"), ("keep-alive-requests", "2")]),
    );
    assert_eq!((post(&p, 2000), post(&p, 5000)), (200, 413), "proxy-body-size 4k, live");
    let r = get(p.http, "forced.test", "/x?y=1");
    assert_eq!(
        (r.status, r.header("location")),
        (301, Some(format!("https://forced.test:{}/x?y=1", p.https.port()).as_str()))
    );
    // keep-alive-requests 2: the second response on a connection closes it.
    let mut s = connect(p.http);
    let mut pending = Vec::new();
    s.write_all(b"GET / HTTP/1.1\r\nHost: cm.test\r\n\r\nGET / HTTP/1.1\r\nHost: cm.test\r\n\r\n").unwrap();
    let first = read_response(&mut s, &mut pending, false).expect("first response");
    let second = read_response(&mut s, &mut pending, false).expect("second response");
    assert_eq!((first.header("connection"), second.header("connection")), (None, Some("close")));

    // A bad value and an unknown key: warnings that name them; 4k and 301 stay.
    publish(
        &p,
        &manifests(&a, &[("proxy-body-size", "lots"), ("http-redirect-code", "303"), ("enable-brotli", "true")]),
    );
    assert_eq!((post(&p, 2000), post(&p, 5000)), (200, 413), "the previous proxy-body-size stays");
    assert_eq!(get(p.http, "forced.test", "/").status, 301, "the previous http-redirect-code stays");
    let log = p.log_text();
    for want in [
        "ConfigMap ringress/ringress: key proxy-body-size: \"lots\" is not a size",
        "ConfigMap ringress/ringress: key http-redirect-code: \"303\" is not 301, 302, 307 or 308; its previous value stays",
        "ConfigMap ringress/ringress: key enable-brotli is not supported by ringress; ignored",
    ] {
        assert!(log.contains(want), "missing {want:?} in:\n{log}");
    }

    // The key removed: back to the flag's value.
    publish(&p, &manifests(&a, &[]));
    assert_eq!(get(p.http, "forced.test", "/").status, 308);
}
