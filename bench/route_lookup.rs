//! Route lookup: host hash, then path segments, on tables of 10, 1,000 and 100,000 rules.
//! Every request pays this on a worker, so it must not grow with the number of Ingresses.

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};
use ringress::model::parse_documents;
use ringress::snapshot::{build, normalize_host, BuildOptions, Snapshot};

/// `rules` Ingress rules over rules/10 hosts (10 paths each, two path types), one Service.
fn table(rules: usize) -> Snapshot {
    let mut y = String::from(
        "apiVersion: v1\nkind: Service\nmetadata: {name: svc}\nspec: {ports: [{name: http, port: 80}]}\n---\napiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\nmetadata: {name: svc-1, labels: {kubernetes.io/service-name: svc}}\naddressType: IPv4\nendpoints: [{addresses: [10.0.0.1]}]\nports: [{name: http, port: 8080}]\n",
    );
    let hosts = (rules / 10).max(1);
    for h in 0..hosts {
        y += &format!("---\napiVersion: networking.k8s.io/v1\nkind: Ingress\nmetadata: {{name: i{h}}}\nspec:\n  ingressClassName: ringress\n  rules:\n  - host: host{h}.example.com\n    http:\n      paths:\n");
        for p in 0..10.min(rules) {
            let t = if p % 2 == 0 { "Prefix" } else { "Exact" };
            y += &format!("      - {{path: /api/v{p}/items, pathType: {t}, backend: {{service: {{name: svc, port: {{number: 80}}}}}}}}\n");
        }
    }
    let objects = parse_documents(&y).expect("bench manifests parse");
    build(&objects, &BuildOptions::default())
}

fn lookup(c: &mut Criterion) {
    let mut g = c.benchmark_group("route_lookup");
    for rules in [10usize, 1_000, 100_000] {
        let snap = table(rules);
        let host = format!("Host{}.Example.com:80", (rules / 10).max(1) - 1);
        g.bench_with_input(BenchmarkId::new("prefix_hit", rules), &rules, |b, _| {
            b.iter(|| {
                let mut buf = [0u8; 256];
                let h = normalize_host(black_box(host.as_bytes()), &mut buf).unwrap();
                black_box(snap.table.lookup(h, black_box("/api/v4/items/12345/detail")).is_some())
            })
        });
        g.bench_with_input(BenchmarkId::new("miss", rules), &rules, |b, _| {
            b.iter(|| {
                let mut buf = [0u8; 256];
                let h = normalize_host(black_box(b"unknown.example.org"), &mut buf).unwrap();
                black_box(snap.table.lookup(h, black_box("/nothing/here")).is_none())
            })
        });
    }
    g.finish();
}

criterion_group!(benches, lookup);
criterion_main!(benches);
