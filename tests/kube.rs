//! Kubernetes mode end to end: the real `kubectl` changes objects in the test API server
//! (tests/apiserver), ringress watches it with kube-rs, and real clients (curl-like raw
//! HTTP/1.1 and wrk) send traffic through ringress's listeners to real upstreams.

mod support;

use std::time::{Duration, Instant};

use support::*;

fn site(svc: &str) -> String {
    ingress("site", Some("app.test"), &[("/", svc)])
}

fn upstream_of(p: &Proxy, host: &str) -> Option<String> {
    get(p.http, host, "/").header("x-upstream").map(str::to_string)
}

#[test]
fn kubectl_apply_routes_replace_fails_over_without_errors_and_delete_gives_404() {
    let c = Cluster::start();
    let a = Upstream::start("primary");
    let b = Upstream::start("standby");
    c.apply(&(service("primary", &[a.addr]) + &service("standby", &[b.addr]) + &site("primary")));
    let p = c.proxy(&[]);
    assert_eq!(upstream_of(&p, "app.test").as_deref(), Some("primary"));

    // The emergency switch, under load: `kubectl replace -f` the Ingress onto the standby.
    let addr = p.http;
    let load = std::thread::spawn(move || wrk(addr, "app.test", 4, 32));
    std::thread::sleep(Duration::from_millis(1500));
    let before = b.hits();
    let builds = p.metric("ringress_snapshot_builds_total").unwrap();
    let replaced = Instant::now();
    c.kubectl_with(&["replace", "-f", "-"], &site("standby"));
    p.wait_for(|| upstream_of(&p, "app.test").as_deref() == Some("standby"), "new requests to reach the standby");
    // Reported, not asserted (no timings in tests): bench/kube_scale measures propagation.
    eprintln!("kubectl replace -> standby serving after {:?}", replaced.elapsed());
    let (requests, non2xx, socket_errors, out) = load.join().unwrap();
    assert!(requests > 1000, "too little load to mean anything: {out}");
    assert_eq!((non2xx, socket_errors), (0, 0), "failed requests during the switch:\n{out}");
    assert!(b.hits() > before);
    // An Ingress change rebuilds its hosts, not the table.
    assert_eq!(p.metric("ringress_snapshot_builds_total").unwrap(), builds);
    assert!(p.metric("ringress_snapshot_host_updates_total").unwrap() >= 1.0);

    c.kubectl(&["delete", "ingress", "site"]);
    p.wait_for(|| get(p.http, "app.test", "/").status == 404, "404 after kubectl delete");
}

#[test]
fn scaling_endpoint_slices_spreads_load_and_drains_without_errors_or_a_rebuild() {
    let c = Cluster::start();
    let ups: Vec<Upstream> = (0..3).map(|i| Upstream::start(&format!("pod-{i}"))).collect();
    // One pod at first.
    c.apply(&(service("web", &[ups[0].addr]) + &ingress("web", Some("web.test"), &[("/", "web")])));
    let p = c.proxy(&[]);
    assert_eq!(upstream_of(&p, "web.test").as_deref(), Some("pod-0"));
    let builds = p.metric("ringress_snapshot_builds_total").unwrap();

    let addr = p.http;
    let load = std::thread::spawn(move || wrk(addr, "web.test", 5, 16));
    std::thread::sleep(Duration::from_millis(1000));
    // Scale up to three pods.
    c.apply(&service("web", &[ups[0].addr, ups[1].addr, ups[2].addr]));
    p.wait_for(|| ups[1].hits() > 0 && ups[2].hits() > 0, "traffic on the new endpoints");
    std::thread::sleep(Duration::from_millis(1000));
    // Scale down: pod-0's slice goes away.
    c.kubectl(&["delete", "endpointslice", "web-0"]);
    p.wait_for(
        || p.metric("ringress_snapshot_endpoint_updates_total").unwrap_or(0.0) >= 2.0,
        "the scale-down to apply",
    );
    std::thread::sleep(Duration::from_millis(300));
    let drained = ups[0].hits();
    let (requests, non2xx, socket_errors, out) = load.join().unwrap();
    assert_eq!((non2xx, socket_errors), (0, 0), "failed requests while scaling:\n{out}");
    assert!(requests > 1000, "{out}");
    assert_eq!(ups[0].hits(), drained, "the removed endpoint kept receiving requests");
    assert!(ups[1].hits() > 0 && ups[2].hits() > 0);
    // Endpoint changes never rebuilt the route table.
    assert_eq!(p.metric("ringress_snapshot_builds_total").unwrap(), builds);
}

#[test]
fn not_ready_until_synced_and_the_last_table_survives_an_api_server_outage() {
    let c = Cluster::start();
    let a = Upstream::start("primary");
    c.apply(&(service("primary", &[a.addr]) + &site("primary")));
    // The API server fails everything at first: ringress starts, but is not ready.
    c.api.fail_next(usize::MAX, 500);
    let p = Proxy::start_kube(&c.kubeconfig, &[], false);
    p.wait_for(|| p.metric("ringress_watch_errors_total{kind=\"Ingress\"}").unwrap_or(0.0) >= 1.0, "a failed watch");
    assert_eq!(get(p.admin, "x", "/readyz").status, 503, "ready before the initial sync");
    assert_eq!(get(p.admin, "x", "/healthz").status, 200);
    assert_eq!(get(p.http, "app.test", "/").status, 404, "a half-synced table must not serve");
    // The API server recovers: the sync completes (the watchers retry with backoff).
    c.api.fail_next(0, 0);
    p.wait_for(|| get(p.admin, "x", "/readyz").status == 200, "readyz after the API server recovers");
    assert_eq!(upstream_of(&p, "app.test").as_deref(), Some("primary"));

    // It goes away again, watches cut: the last table keeps serving, health stays green.
    c.api.fail_next(usize::MAX, 500);
    c.api.drop_watches();
    let errors = p.metric("ringress_watch_errors_total{kind=\"Service\"}").unwrap();
    p.wait_for(|| p.metric("ringress_watch_errors_total{kind=\"Service\"}").unwrap() > errors, "the outage to be seen");
    for _ in 0..20 {
        assert_eq!(upstream_of(&p, "app.test").as_deref(), Some("primary"));
    }
    assert_eq!(get(p.admin, "x", "/healthz").status, 200);
    assert_eq!(get(p.admin, "x", "/readyz").status, 200);
    p.wait_for(|| p.log_text().contains("watch failed; retrying with backoff"), "the outage is logged");
    c.api.fail_next(0, 0);
}

/// Each fault: break the watches, change the cluster while they are broken, and check that
/// ringress converges to exactly the API server's state (no stale route left behind).
#[test]
fn every_fault_hook_converges_with_no_stale_route() {
    let c = Cluster::start();
    let a = Upstream::start("a");
    c.apply(&(service("a", &[a.addr]) + &ingress("one", Some("one.test"), &[("/", "a")])));
    let p = c.proxy(&[]);
    assert_eq!(get(p.http, "one.test", "/").status, 200);

    // Changes go straight into the API server here: kubectl's own requests must not eat the
    // injected failures meant for the watchers.
    let yaml =
        |y: &str| -> serde_json::Value { serde_yaml_ng::from_str(y.trim_start_matches("---\n")).expect("test YAML") };
    let faults: [(&str, &dyn Fn()); 4] = [
        ("expired watches (in-stream 410)", &|| c.api.expire_watches()),
        ("compacted history, then expired watches", &|| {
            c.api.compact();
            c.api.expire_watches();
        }),
        ("watch connections cut mid-stream", &|| c.api.drop_watches()),
        ("the next requests failing with 500", &|| {
            c.api.fail_next(6, 500);
            c.api.drop_watches();
        }),
    ];
    for (i, (what, fault)) in faults.iter().enumerate() {
        let (old, new) = (
            format!("{}.test", ["one", "two", "three", "four"][i]),
            format!("{}.test", ["two", "three", "four", "five"][i]),
        );
        let (old_name, new_name) =
            (old.trim_end_matches(".test").to_string(), new.trim_end_matches(".test").to_string());
        fault();
        c.api.delete("networking.k8s.io/v1", "Ingress", "default", &old_name).expect("delete");
        c.api.apply(yaml(&ingress(&new_name, Some(&new), &[("/", "a")]))).expect("create");
        p.wait_for(
            || get(p.http, &old, "/").status == 404 && get(p.http, &new, "/").status == 200,
            &format!("convergence after {what}"),
        );
    }
    let restarts: f64 = ["Ingress", "Service", "EndpointSlice"]
        .iter()
        .map(|k| p.metric(&format!("ringress_watch_restarts_total{{kind=\"{k}\"}}")).unwrap())
        .sum();
    assert!(restarts >= 3.0, "the compacted history forced relists: {restarts}");
    // The final table holds exactly the one live Ingress.
    let routes = get(p.admin, "x", "/debug/routes").text();
    assert_eq!(routes.matches("\"host\"").count(), 1, "{routes}");
    assert!(routes.contains("five.test"), "{routes}");
}

/// What another controller does: a merge patch of the status subresource.
/// Waits until the status writer of `p` has completed `n` more rounds.
fn wait_rounds(p: &Proxy, n: u64) {
    let rounds = || p.metric("ringress_status_rounds_total").unwrap_or(0.0) as u64;
    let start = rounds();
    p.wait_for(|| rounds() >= start + n, "rounds of the status writer");
}

fn patch_status(c: &Cluster, kind: &str, name: &str, patch: &str) {
    c.kubectl(&["patch", kind, name, "--subresource=status", "--type=merge", "-p", patch]);
}

fn jsonpath(c: &Cluster, kind: &str, name: &str, path: &str) -> String {
    c.kubectl(&["get", kind, name, "-o", &format!("jsonpath={path}")])
}

#[test]
fn status_is_written_for_our_class_only_and_other_classes_are_never_served() {
    let c = Cluster::start();
    let a = Upstream::start("a");
    let theirs = ingress("theirs", Some("theirs.test"), &[("/", "a")])
        .replace("ingressClassName: ringress", "ingressClassName: nginx");
    let legacy = ingress("legacy", Some("legacy.test"), &[("/", "a")])
        .replace("  ingressClassName: ringress\n", "")
        .replace("namespace: default}", "namespace: default, annotations: {kubernetes.io/ingress.class: nginx}}");
    let unclassed =
        ingress("unclassed", Some("unclassed.test"), &[("/", "a")]).replace("  ingressClassName: ringress\n", "");
    c.apply("apiVersion: v1\nkind: Namespace\nmetadata: {name: ringress}\n");
    c.apply(
        &(service("a", &[a.addr])
            + &ingress("ours", Some("ours.test"), &[("/", "a")])
            + &theirs
            + &legacy
            + &unclassed),
    );
    let p = c.proxy(&["--publish-address", "192.0.2.10", "--election-lease-seconds", "3"]);
    assert_eq!(get(p.http, "ours.test", "/").status, 200);
    for host in ["theirs.test", "legacy.test", "unclassed.test"] {
        assert_eq!(get(p.http, host, "/").status, 404, "{host} belongs to another controller");
    }
    p.wait_for(
        || jsonpath(&c, "ingress", "ours", "{.status.loadBalancer.ingress[0].ip}") == "192.0.2.10",
        "our status",
    );
    // What users look at: the ADDRESS column.
    let table = c.kubectl(&["get", "ingress", "ours"]);
    assert!(table.contains("ADDRESS") && table.contains("192.0.2.10"), "{table}");
    // Two more rounds of the writer (each a pass over every Ingress it writes): a wrong writer
    // would have touched the others by now.
    wait_rounds(&p, 2);
    for name in ["theirs", "legacy", "unclassed"] {
        assert_eq!(jsonpath(&c, "ingress", name, "{.status.loadBalancer}"), "", "{name}'s status was written");
    }
    assert_eq!(p.metric("ringress_status_leader"), Some(1.0));

    // Someone else overwrites our status: it is put back.
    patch_status(&c, "ingress", "ours", r#"{"status":{"loadBalancer":{"ingress":[{"ip":"198.51.100.1"}]}}}"#);
    p.wait_for(
        || jsonpath(&c, "ingress", "ours", "{.status.loadBalancer.ingress[0].ip}") == "192.0.2.10",
        "our status restored",
    );
    c.assert_rbac_allows_what_ringress_did();
}

#[test]
fn one_replica_writes_status_and_another_takes_over_when_it_stops() {
    let c = Cluster::start();
    let a = Upstream::start("a");
    c.apply("apiVersion: v1\nkind: Namespace\nmetadata: {name: ringress}\n");
    c.apply(&(service("a", &[a.addr]) + &ingress("ours", Some("ours.test"), &[("/", "a")])));
    let lease = ["--election-lease-seconds", "3"];
    let mut first =
        c.proxy(&[&["--publish-address", "192.0.2.1", "--election-identity", "node-1"][..], &lease].concat());
    first.wait_for(|| first.metric("ringress_status_leader") == Some(1.0), "node-1 to lead");
    let second = c.proxy(&[&["--publish-address", "192.0.2.2", "--election-identity", "node-2"][..], &lease].concat());
    first.wait_for(
        || jsonpath(&c, "ingress", "ours", "{.status.loadBalancer.ingress[0].ip}") == "192.0.2.1",
        "node-1's status",
    );
    // node-2 has tried for the Lease twice since node-1 wrote its status.
    wait_rounds(&second, 2);
    assert_eq!(second.metric("ringress_status_leader"), Some(0.0), "two leaders at once");
    assert_eq!(
        c.kubectl(&["-n", "ringress", "get", "lease", "ringress-leader", "-o", "jsonpath={.spec.holderIdentity}"]),
        "node-1"
    );

    // The leader dies without releasing: after the lease expires, node-2 takes over.
    let _ = first.child.kill();
    let _ = first.child.wait();
    second.wait_for(|| second.metric("ringress_status_leader") == Some(1.0), "node-2 to take over");
    second.wait_for(
        || jsonpath(&c, "ingress", "ours", "{.status.loadBalancer.ingress[0].ip}") == "192.0.2.2",
        "node-2's status",
    );
    assert_eq!(
        c.kubectl(&["-n", "ringress", "get", "lease", "ringress-leader", "-o", "jsonpath={.spec.leaseTransitions}"]),
        "1"
    );
    c.assert_rbac_allows_what_ringress_did();
}

#[test]
fn namespace_flag_and_ingresses_without_class() {
    let c = Cluster::start();
    let a = Upstream::start("a");
    c.apply("apiVersion: v1\nkind: Namespace\nmetadata: {name: team-a}\n---\napiVersion: v1\nkind: Namespace\nmetadata: {name: team-b}\n");
    let in_ns = |ns: &str, y: String| y.replace("namespace: default", &format!("namespace: {ns}"));
    let mut all = String::new();
    for ns in ["team-a", "team-b"] {
        all += &in_ns(ns, service("a", &[a.addr]));
        all += &in_ns(
            ns,
            ingress("site", Some(&format!("{ns}.test")), &[("/", "a")]).replace("  ingressClassName: ringress\n", ""),
        );
    }
    c.apply(&all);
    let p = c.proxy(&["--namespace", "team-a", "--watch-ingress-without-class"]);
    assert_eq!(get(p.http, "team-a.test", "/").status, 200);
    assert_eq!(get(p.http, "team-b.test", "/").status, 404, "--namespace team-a served team-b");
    // Without --watch-ingress-without-class, a class-less Ingress is someone else's...
    let q = c.proxy(&["--namespace", "team-a"]);
    assert_eq!(get(q.http, "team-a.test", "/").status, 404);
    // ...unless our IngressClass is the cluster default.
    c.apply("apiVersion: networking.k8s.io/v1\nkind: IngressClass\nmetadata:\n  name: ringress\n  annotations: {ingressclass.kubernetes.io/is-default-class: \"true\"}\nspec: {controller: ringress.dev/ingress-controller}\n");
    q.wait_for(|| get(q.http, "team-a.test", "/").status == 200, "the default class to apply");
}

#[test]
fn an_object_ringress_cannot_read_is_reported_and_its_last_version_stays() {
    let c = Cluster::start();
    let a = Upstream::start("a");
    c.apply(&(service("a", &[a.addr]) + &site("a")));
    let p = c.proxy(&[]);
    assert_eq!(get(p.http, "app.test", "/").status, 200);
    // The test API server does not validate; a real one might let a bad port name through a
    // webhook-less path too. ringress must not drop the route half-way.
    c.apply(&site("a").replace("port: {number: 80}", "port: {number: 70000}"));
    p.wait_for(|| p.log_text().contains("object rejected"), "the rejection to be logged");
    let log = p.log_text();
    let line = log.lines().find(|l| l.contains("object rejected")).unwrap();
    assert!(line.contains("default/site") && line.contains("70000"), "{line}");
    assert_eq!(get(p.http, "app.test", "/").status, 200, "the previous version stays in force");
}

#[test]
fn without_any_kubernetes_configuration_run_fails_with_a_clear_message() {
    let dir = support::proxy::temp_dir();
    let (ok, _, err) = run(std::process::Command::new(env!("CARGO_BIN_EXE_ringress"))
        .args(["run", "--http", "127.0.0.1:0", "--https", "127.0.0.1:0", "--admin", "127.0.0.1:0"])
        .env("HOME", &dir)
        .env("KUBECONFIG", dir.join("missing"))
        .env_remove("KUBERNETES_SERVICE_HOST"));
    assert!(!ok);
    assert!(err.contains("--kubeconfig") && err.contains("--manifests"), "{err}");
    let (ok, _, err) = run(std::process::Command::new(env!("CARGO_BIN_EXE_ringress"))
        .args(["run", "--kubeconfig"])
        .arg(dir.join("nope.yaml"))
        .args(["--http", "127.0.0.1:0", "--https", "127.0.0.1:0", "--admin", "127.0.0.1:0"]));
    assert!(!ok);
    assert!(err.contains("nope.yaml"), "{err}");
    // A tcp-services ConfigMap outside the namespace whose ConfigMaps are watched.
    let (ok, _, err) = run(std::process::Command::new(env!("CARGO_BIN_EXE_ringress"))
        .args(["run", "--kubeconfig"])
        .arg(dir.join("nope.yaml"))
        .args(["--tcp-services-configmap", "elsewhere/tcp-services"])
        .args(["--http", "127.0.0.1:0", "--https", "127.0.0.1:0", "--admin", "127.0.0.1:0"]));
    assert!(!ok);
    assert!(
        err.contains(
            "--tcp-services-configmap elsewhere/tcp-services: must be in the namespace of --configmap (ringress)"
        ),
        "{err}"
    );
}

/// A kubernetes.io/tls Secret as the API server stores it (base64 `data`).
fn tls_secret_b64(name: &str, names: &[&str], ca: &(rcgen::Issuer<'static, rcgen::KeyPair>, String)) -> String {
    use base64::Engine;
    let p = rcgen::CertificateParams::new(names.iter().map(|s| s.to_string()).collect::<Vec<_>>()).unwrap();
    let key = rcgen::KeyPair::generate().unwrap();
    let cert = p.signed_by(&key, &ca.0).unwrap();
    let b64 = |s: String| base64::engine::general_purpose::STANDARD.encode(s);
    format!(
        "---\napiVersion: v1\nkind: Secret\nmetadata: {{name: {name}, namespace: default}}\ntype: kubernetes.io/tls\ndata:\n  tls.crt: {}\n  tls.key: {}\n",
        b64(cert.pem()),
        b64(key.serialize_pem())
    )
}

fn test_ca(name: &str) -> (rcgen::Issuer<'static, rcgen::KeyPair>, String) {
    let mut p = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    p.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    p.distinguished_name.push(rcgen::DnType::CommonName, name);
    let key = rcgen::KeyPair::generate().unwrap();
    let pem = p.self_signed(&key).unwrap().pem();
    (rcgen::Issuer::new(p, key), pem)
}

#[test]
fn tls_secrets_from_the_cluster_are_served_and_rotate_live() {
    let c = Cluster::start();
    let a = Upstream::start("a");
    let (ca1, ca2) = (test_ca("one"), test_ca("two"));
    let dir = support::proxy::temp_dir();
    let (f1, f2) = (dir.join("ca1.pem"), dir.join("ca2.pem"));
    std::fs::write(&f1, &ca1.1).unwrap();
    std::fs::write(&f2, &ca2.1).unwrap();
    let tls_ing = "---\napiVersion: networking.k8s.io/v1\nkind: Ingress\nmetadata: {name: secure, namespace: default}\nspec:\n  ingressClassName: ringress\n  tls:\n  - {hosts: [secure.test], secretName: secure-tls}\n  rules:\n  - host: secure.test\n    http:\n      paths:\n      - {path: /, pathType: Prefix, backend: {service: {name: a, port: {number: 80}}}}\n";
    c.apply(&(service("a", &[a.addr]) + &tls_secret_b64("secure-tls", &["secure.test"], &ca1) + tls_ing));
    let p = c.proxy(&[]);
    let curl = |ca: &std::path::Path| {
        run(std::process::Command::new("curl").args([
            "-sS",
            "-o",
            "/dev/null",
            "-w",
            "%{http_code}",
            "--resolve",
            &format!("secure.test:{}:127.0.0.1", p.https.port()),
            "--cacert",
            ca.to_str().unwrap(),
            &format!("https://secure.test:{}/", p.https.port()),
        ]))
        .1
    };
    assert_eq!(curl(&f1), "200");
    assert_eq!(get(p.http, "secure.test", "/").status, 308, "ssl-redirect by default for a TLS host");
    // kubectl apply of a new certificate: the next handshake uses it.
    c.apply(&tls_secret_b64("secure-tls", &["secure.test"], &ca2));
    p.wait_for(|| curl(&f2) == "200", "the rotated certificate");
    assert_ne!(curl(&f1), "200");
    c.assert_rbac_allows_what_ringress_did();
}

#[test]
fn load_balancer_services_from_the_cluster_are_forwarded_and_get_an_external_ip() {
    use std::io::{Read, Write};
    let c = Cluster::start();
    c.apply("apiVersion: v1\nkind: Namespace\nmetadata: {name: ringress}\n");
    // A TCP echo server as the endpoint.
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let echo = l.local_addr().unwrap();
    std::thread::spawn(move || {
        for s in l.incoming().flatten() {
            std::thread::spawn(move || {
                let mut r = s.try_clone().unwrap();
                let mut w = s;
                let _ = std::io::copy(&mut r, &mut w);
            });
        }
    });
    let (port, other) = (free_port(), free_port());
    c.apply(&lb_service("tcp-echo", port, &[echo], &[]));
    // Another class's LoadBalancer Service: neither forwarded nor given a status.
    c.apply(&lb_service("theirs", other, &[echo], &[]).replace("ringress.dev/lb", "example.com/lb"));
    // And the ingress-nginx way: a tcp-services ConfigMap naming a plain Service.
    let tcp_port = free_port();
    c.apply(&service("plain", &[echo]));
    // Its second entry names the other class's Service: forwarded, but that Service's status
    // is still not ours to write.
    let theirs_port = free_port();
    c.apply(&format!(
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: tcp-services, namespace: ringress}}\ndata: {{\"{tcp_port}\": \"default/plain:80\", \"{theirs_port}\": \"default/theirs:{other}\"}}\n"
    ));
    let p = c.proxy(&[
        "--publish-address",
        "192.0.2.20",
        "--lb-address",
        "127.0.0.1",
        "--tcp-services-configmap",
        "ringress/tcp-services",
        "--election-lease-seconds",
        "3",
    ]);
    p.wait_for(|| std::net::TcpStream::connect(("127.0.0.1", tcp_port)).is_ok(), "the tcp-services port open");
    let mut t = std::net::TcpStream::connect(("127.0.0.1", tcp_port)).unwrap();
    t.write_all(b"via configmap").unwrap();
    let mut got13 = [0u8; 13];
    t.read_exact(&mut got13).unwrap();
    assert_eq!(&got13, b"via configmap");
    p.wait_for(|| std::net::TcpStream::connect(("127.0.0.1", port)).is_ok(), "the Service's port open");
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.write_all(b"over the edge").unwrap();
    let mut got = [0u8; 13];
    s.read_exact(&mut got).unwrap();
    assert_eq!(&got, b"over the edge");
    p.wait_for(
        || jsonpath(&c, "service", "tcp-echo", "{.status.loadBalancer.ingress[0].ip}") == "192.0.2.20",
        "EXTERNAL-IP on the Service",
    );
    assert!(std::net::TcpStream::connect(("127.0.0.1", other)).is_err(), "another class's port is not served");
    p.wait_for(|| std::net::TcpStream::connect(("127.0.0.1", theirs_port)).is_ok(), "its tcp-services port open");
    // The writer has done two passes over every Service since.
    wait_rounds(&p, 2);
    assert_eq!(jsonpath(&c, "service", "theirs", "{.status.loadBalancer}"), "");
    // kubectl delete: the port closes; the established connection still echoes.
    c.kubectl(&["delete", "service", "tcp-echo"]);
    p.wait_for(|| std::net::TcpStream::connect(("127.0.0.1", port)).is_err(), "the port closed");
    s.write_all(b"still here...").unwrap();
    s.read_exact(&mut got).unwrap();
    assert_eq!(&got, b"still here...");
    c.assert_rbac_allows_what_ringress_did();
}

#[test]
fn a_port_conflict_is_a_condition_on_the_service_and_status_follows_what_is_served() {
    let c = Cluster::start();
    c.apply("apiVersion: v1\nkind: Namespace\nmetadata: {name: ringress}\n");
    // The endpoint only needs to accept (into its backlog): the test checks that ports
    // forward, not what flows.
    let backend = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let backend_addr = backend.local_addr().unwrap();
    let port = free_port();
    c.apply(&lb_service("a-holder", port, &[backend_addr], &[]));
    // Created later, on the same port: it loses, and says so on itself.
    c.apply(&lb_service("b-late", port, &[backend_addr], &[]));
    let p = c.proxy(&["--publish-address", "192.0.2.30", "--lb-address", "127.0.0.1", "--election-lease-seconds", "3"]);
    let conflict = r#"{.status.conditions[?(@.type=="ringress.dev/PortConflict")].message}"#;
    let want = format!("port {port} is already claimed by Service default/a-holder; not served");
    p.wait_for(|| jsonpath(&c, "service", "b-late", conflict) == want, "the conflict condition on b-late");
    let status = r#"{.status.conditions[?(@.type=="ringress.dev/PortConflict")].status}"#;
    assert_eq!(jsonpath(&c, "service", "b-late", status), "True");
    // And a Warning Event, so `kubectl describe` shows it.
    p.wait_for(
        || {
            let d = c.kubectl(&["describe", "service", "b-late"]);
            d.contains("Warning") && d.contains("PortConflict") && d.contains(&want)
        },
        "the Warning Event in kubectl describe",
    );
    p.wait_for(
        || jsonpath(&c, "service", "a-holder", "{.status.loadBalancer.ingress[0].ip}") == "192.0.2.30",
        "EXTERNAL-IP on the holder",
    );
    assert_eq!(jsonpath(&c, "service", "b-late", "{.status.loadBalancer}"), "", "the loser gets no address");
    assert_eq!(jsonpath(&c, "service", "a-holder", "{.status.conditions}"), "", "the holder has no conflict");

    // Another controller's condition: a merge patch replaces the list, dropping ours. Ours is
    // put back beside theirs, which stays.
    patch_status(
        &c,
        "service",
        "b-late",
        r#"{"status":{"conditions":[{"type":"example.com/Other","status":"True","reason":"Theirs","message":"x","lastTransitionTime":"2026-01-01T00:00:00Z"}]}}"#,
    );
    p.wait_for(|| jsonpath(&c, "service", "b-late", conflict) == want, "our condition back");
    let other = r#"{.status.conditions[?(@.type=="example.com/Other")].reason}"#;
    assert_eq!(jsonpath(&c, "service", "b-late", other), "Theirs");

    // The holder goes: b-late gets the port, its address, and loses the condition (only ours).
    c.kubectl(&["delete", "service", "a-holder"]);
    p.wait_for(
        || jsonpath(&c, "service", "b-late", "{.status.loadBalancer.ingress[0].ip}") == "192.0.2.30",
        "EXTERNAL-IP on b-late",
    );
    p.wait_for(|| jsonpath(&c, "service", "b-late", conflict).is_empty(), "the condition removed");
    assert_eq!(jsonpath(&c, "service", "b-late", other), "Theirs");
    p.wait_for(|| std::net::TcpStream::connect(("127.0.0.1", port)).is_ok(), "b-late forwarded");

    // It moves to another class: no longer served, and our address is taken away.
    c.kubectl(&[
        "patch",
        "service",
        "b-late",
        "--type=merge",
        "-p",
        r#"{"spec":{"loadBalancerClass":"example.com/lb"}}"#,
    ]);
    p.wait_for(|| jsonpath(&c, "service", "b-late", "{.status.loadBalancer.ingress}").is_empty(), "address cleared");
    p.wait_for(|| std::net::TcpStream::connect(("127.0.0.1", port)).is_err(), "the port closed");
    // An address someone else wrote on a Service we do not serve is never touched.
    patch_status(&c, "service", "b-late", r#"{"status":{"loadBalancer":{"ingress":[{"ip":"198.51.100.7"}]}}}"#);
    wait_rounds(&p, 2);
    assert_eq!(jsonpath(&c, "service", "b-late", "{.status.loadBalancer.ingress[0].ip}"), "198.51.100.7");
    c.assert_rbac_allows_what_ringress_did();
}

#[test]
fn basic_auth_reads_its_secret_from_the_cluster_and_follows_kubectl_changes() {
    let c = Cluster::start();
    let a = Upstream::start("a");
    let dir = support::proxy::temp_dir();
    let file = dir.join("auth");
    let htpasswd = |args: &[&str]| {
        let (ok, _, err) = run(std::process::Command::new("htpasswd").args(args));
        assert!(ok, "htpasswd: {err}");
    };
    htpasswd(&["-cbB", file.to_str().unwrap(), "alice", "first"]);
    let secret = |c: &Cluster| {
        let from = format!("--from-file={}", file.display());
        let yaml = c.kubectl(&["create", "secret", "generic", "users", &from, "--dry-run=client", "-o", "yaml"]);
        c.apply(&yaml);
    };
    secret(&c);
    let ing = "---\napiVersion: networking.k8s.io/v1\nkind: Ingress\nmetadata:\n  name: staff\n  namespace: default\n  annotations:\n    nginx.ingress.kubernetes.io/auth-type: basic\n    nginx.ingress.kubernetes.io/auth-secret: users\n    nginx.ingress.kubernetes.io/auth-realm: Staff\nspec:\n  ingressClassName: ringress\n  rules:\n  - host: staff.test\n    http:\n      paths:\n      - {path: /, pathType: Prefix, backend: {service: {name: a, port: {number: 80}}}}\n";
    c.apply("apiVersion: v1\nkind: Namespace\nmetadata: {name: ringress}\n");
    c.apply(&(service("a", &[a.addr]) + ing));
    let p = c.proxy(&["--publish-address", "192.0.2.10", "--election-lease-seconds", "3"]);
    let curl = |user: &str| {
        let url = format!("http://127.0.0.1:{}/", p.http.port());
        let (_, code, _) = run(std::process::Command::new("curl").args([
            "-s",
            "-o",
            "/dev/null",
            "-w",
            "%{http_code}",
            "-H",
            "Host: staff.test",
            "-u",
            user,
            &url,
        ]));
        code
    };
    p.wait_for(|| curl("alice:first") == "200", "alice admitted");
    assert_eq!(curl("alice:wrong"), "401");
    assert_eq!(get(p.http, "staff.test", "/").status, 401);
    // A new password with kubectl: the next requests use it.
    htpasswd(&["-bB", file.to_str().unwrap(), "alice", "second"]);
    secret(&c);
    p.wait_for(|| curl("alice:second") == "200", "the changed Secret");
    assert_eq!(curl("alice:first"), "401");
    // The Secret is deleted: fail closed.
    let hits = a.hits();
    c.kubectl(&["delete", "secret", "users"]);
    p.wait_for(|| curl("alice:second") == "503", "the route refused without its Secret");
    assert_eq!(a.hits(), hits);
    // Said where operators look: an Event on the Ingress naming the annotation and the Secret.
    let describe = || c.kubectl(&["describe", "ingress", "staff"]);
    p.wait_for(|| describe().contains("RouteRefused"), "the Event");
    let d = describe();
    assert!(
        d.contains("annotation nginx.ingress.kubernetes.io/auth-secret: auth-secret default/users does not exist"),
        "{d}"
    );
    c.assert_rbac_allows_what_ringress_did();
}

#[test]
fn ignored_annotations_become_warning_events_once_and_a_metric() {
    let c = Cluster::start();
    let a = Upstream::start("a");
    let annotated = |extra: &str| {
        format!("---\napiVersion: networking.k8s.io/v1\nkind: Ingress\nmetadata:\n  name: legacy\n  namespace: default\n  annotations:\n    nginx.ingress.kubernetes.io/enable-opentelemetry: \"true\"\n    nginx.ingress.kubernetes.io/proxy-buffer-size: 16k\n    nginx.ingress.kubernetes.io/proxy-body-size: lots\n{extra}spec:\n  ingressClassName: ringress\n  rules:\n  - host: legacy.test\n    http:\n      paths:\n      - {{path: /, pathType: Prefix, backend: {{service: {{name: a, port: {{number: 80}}}}}}}}\n")
    };
    c.apply("apiVersion: v1\nkind: Namespace\nmetadata: {name: ringress}\n");
    c.apply(&(service("a", &[a.addr]) + &annotated("")));
    let p = c.proxy(&["--publish-address", "192.0.2.10", "--election-lease-seconds", "3"]);
    assert_eq!(get(p.http, "legacy.test", "/").status, 200, "ignored annotations do not stop the Ingress");
    // What an operator looks at: kubectl describe.
    let describe = || c.kubectl(&["describe", "ingress", "legacy"]);
    let events = || c.kubectl(&["get", "events", "--field-selector", "involvedObject.name=legacy", "-o", "name"]);
    p.wait_for(|| events().lines().count() == 2, "the Events");
    let d = describe();
    assert!(d.contains("Warning") && d.contains("UnsupportedAnnotation"), "{d}");
    assert!(
        d.contains("annotation nginx.ingress.kubernetes.io/enable-opentelemetry is not supported by ringress; ignored"),
        "{d}"
    );
    // A no-op by design (ringress streams; nginx's buffer sizes mean nothing to it): no Event.
    assert!(!d.split("Events:").nth(1).unwrap().contains("proxy-buffer-size"), "{d}");
    assert!(d.contains("nginx.ingress.kubernetes.io/proxy-body-size: \"lots\" is not a size"), "{d}");
    let metric = |name: &str| {
        p.metric(&format!("ringress_ignored_annotations{{annotation=\"nginx.ingress.kubernetes.io/{name}\"}}"))
    };
    assert_eq!((metric("enable-opentelemetry"), metric("proxy-body-size")), (Some(1.0), Some(1.0)));
    assert_eq!(metric("proxy-buffer-size"), None);
    // Once per change, not per build or per round of the writer.
    c.apply(&(service("a", &[a.addr, a.addr]) + &annotated("")));
    wait_rounds(&p, 3);
    assert_eq!(events().lines().count(), 2, "{}", events());
    // A change that adds a protection ringress does not enforce: refused, and said so.
    c.apply(&annotated("    nginx.ingress.kubernetes.io/enable-modsecurity: \"true\"\n"));
    p.wait_for(|| get(p.http, "legacy.test", "/").status == 503, "the route refused");
    p.wait_for(|| describe().contains("RouteRefused"), "the refusal's Event");
    assert!(describe().contains("web application firewall, which ringress does not enforce"), "{}", describe());
    assert_eq!(events().lines().count(), 3);
    c.assert_rbac_allows_what_ringress_did();
}

#[test]
fn source_ranges_from_the_cluster_refuse_and_follow_kubectl_annotate_and_the_configmap() {
    let c = Cluster::start();
    let a = Upstream::start("a");
    c.apply("apiVersion: v1\nkind: Namespace\nmetadata: {name: ringress}\n");
    let shut = annotated(
        ingress("shut", Some("shut.test"), &[("/", "a")]),
        &[("nginx.ingress.kubernetes.io/whitelist-source-range", "10.0.0.0/8")],
    );
    c.apply(&(service("a", &[a.addr]) + &shut + &ingress("open", Some("open.test"), &[("/", "a")])));
    let p = c.proxy(&[]);
    assert_eq!(get(p.http, "shut.test", "/").status, 403);
    assert_eq!(a.hits(), 0, "a refused request reached the upstream");
    assert_eq!(get(p.http, "open.test", "/").status, 200);
    // kubectl annotate --overwrite: the next requests follow.
    c.kubectl(&[
        "annotate",
        "--overwrite",
        "ingress",
        "shut",
        "nginx.ingress.kubernetes.io/whitelist-source-range=10.0.0.0/8,127.0.0.0/8",
    ]);
    p.wait_for(|| get(p.http, "shut.test", "/").status == 200, "the widened list");
    // A value that does not parse: fail closed, not open.
    c.kubectl(&[
        "annotate",
        "--overwrite",
        "ingress",
        "shut",
        "nginx.ingress.kubernetes.io/whitelist-source-range=10.0.0.0/33",
    ]);
    p.wait_for(|| get(p.http, "shut.test", "/").status == 503, "the refused Ingress");
    // The ConfigMap's deny list covers every Ingress without its own.
    c.apply("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: ringress, namespace: ringress}\ndata: {denylist-source-range: \"127.0.0.0/8\"}\n");
    p.wait_for(|| get(p.http, "open.test", "/").status == 403, "the global deny list");
    c.assert_rbac_allows_what_ringress_did();
}

#[test]
fn external_auth_reaches_a_cluster_service_and_follows_kubectl_changes() {
    let c = Cluster::start();
    let (a, auth) = (Upstream::start("a"), Upstream::start("auth"));
    let url = |status: u16| format!("http://auth.default.svc.cluster.local/status/{status}");
    c.apply("apiVersion: v1\nkind: Namespace\nmetadata: {name: ringress}\n");
    let guarded = annotated(
        ingress("guarded", Some("guarded.test"), &[("/", "a")]),
        &[("nginx.ingress.kubernetes.io/auth-url", &url(200))],
    );
    c.apply(&(service("a", &[a.addr]) + &service("auth", &[auth.addr]) + &guarded));
    let p = c.proxy(&["--publish-address", "192.0.2.10"]);
    let status = || get(p.http, "guarded.test", "/").status;
    p.wait_for(|| status() == 200, "granted by the auth Service");
    assert!(auth.hits() >= 1);
    // kubectl annotate: the auth service now refuses.
    let annotate = |v: &str| {
        c.kubectl(&[
            "annotate",
            "--overwrite",
            "ingress",
            "guarded",
            &format!("nginx.ingress.kubernetes.io/auth-url={v}"),
        ])
    };
    annotate(&url(401));
    p.wait_for(|| status() == 401, "the changed auth-url");
    // auth-proxy-set-headers names a ConfigMap of the Ingress's namespace: refused until
    // kubectl creates it.
    c.kubectl(&["annotate", "ingress", "guarded", "nginx.ingress.kubernetes.io/auth-proxy-set-headers=auth-headers"]);
    p.wait_for(|| status() == 503, "refused while the ConfigMap is missing");
    let cm = ["create", "configmap", "auth-headers", "--from-literal=X-Tenant=$host", "--dry-run=client", "-o", "yaml"];
    c.apply(&c.kubectl(&cm));
    p.wait_for(|| status() == 401, "the ConfigMap from the cluster");
    // The auth Service loses its endpoints (an endpoint-only update), then the Service goes
    // away: the route fails closed, never open.
    annotate(&url(200));
    p.wait_for(|| status() == 200, "granted again");
    c.kubectl(&["delete", "endpointslice", "auth-0"]);
    p.wait_for(|| status() == 500, "the auth Service's endpoints follow its EndpointSlices");
    let granted = a.hits();
    let generation = p.generation();
    c.kubectl(&["delete", "service", "auth"]);
    p.wait_for(|| p.generation() > generation, "the Service's deletion applied");
    assert_eq!(status(), 500);
    assert_eq!(a.hits(), granted, "a refused request reached its upstream");
    c.assert_rbac_allows_what_ringress_did();
}

#[test]
fn client_certificates_follow_the_ca_secret_in_the_cluster() {
    use base64::Engine;
    let c = Cluster::start();
    let a = Upstream::start("a");
    let (server_ca, one, two) = (test_ca("server"), support::pki::Ca::new("one"), support::pki::Ca::new("two"));
    let dir = support::proxy::temp_dir();
    let write = |name: &str, (crt, key): (String, String)| {
        let (c, k) = (dir.join(format!("{name}.crt")), dir.join(format!("{name}.key")));
        std::fs::write(&c, crt).unwrap();
        std::fs::write(&k, key).unwrap();
        (c, k)
    };
    let (first, second) = (write("first", one.client("client")), write("second", two.client("client")));
    let ca_secret = |ca: &support::pki::Ca| {
        let b64 = base64::engine::general_purpose::STANDARD.encode(&ca.pem);
        format!("---\napiVersion: v1\nkind: Secret\nmetadata: {{name: client-ca, namespace: default}}\ndata:\n  ca.crt: {b64}\n")
    };
    let ing = "---\napiVersion: networking.k8s.io/v1\nkind: Ingress\nmetadata:\n  name: mtls\n  namespace: default\n  annotations: {nginx.ingress.kubernetes.io/auth-tls-secret: default/client-ca}\nspec:\n  ingressClassName: ringress\n  tls:\n  - {hosts: [mtls.test], secretName: mtls-tls}\n  rules:\n  - host: mtls.test\n    http:\n      paths:\n      - {path: /, pathType: Prefix, backend: {service: {name: a, port: {number: 80}}}}\n";
    c.apply("apiVersion: v1\nkind: Namespace\nmetadata: {name: ringress}\n");
    c.apply(
        &(service("a", &[a.addr]) + &tls_secret_b64("mtls-tls", &["mtls.test"], &server_ca) + &ca_secret(&one) + ing),
    );
    let p = c.proxy(&["--publish-address", "192.0.2.10"]);
    let curl = |cert: &(std::path::PathBuf, std::path::PathBuf)| {
        run(std::process::Command::new("curl")
            .args(["-sk", "-o", "/dev/null", "-w", "%{http_code}", "--resolve"])
            .arg(format!("mtls.test:{}:127.0.0.1", p.https.port()))
            .arg("--cert")
            .arg(&cert.0)
            .arg("--key")
            .arg(&cert.1)
            .arg(format!("https://mtls.test:{}/", p.https.port())))
        .1
    };
    p.wait_for(|| curl(&first) == "200", "the first CA's client");
    assert_eq!(curl(&second), "400");
    // kubectl apply of another CA: the next request is checked against it.
    c.apply(&ca_secret(&two));
    p.wait_for(|| curl(&second) == "200", "the new CA");
    assert_eq!(curl(&first), "400");
    // The CA Secret deleted: fail closed.
    let hits = a.hits();
    c.kubectl(&["delete", "secret", "client-ca"]);
    p.wait_for(|| curl(&second) == "503", "refused without its CA");
    assert_eq!(a.hits(), hits);
    let describe = || c.kubectl(&["describe", "ingress", "mtls"]);
    p.wait_for(|| describe().contains("auth-tls-secret default/client-ca does not exist"), "the RouteRefused Event");
    c.assert_rbac_allows_what_ringress_did();
}
