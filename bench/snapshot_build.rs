//! Snapshot build: objects -> route table, for 1,000 and 10,000 Ingresses (one Service and
//! one EndpointSlice each, distinct hosts). The control thread pays this on every change;
//! the control-plane issue asks for under 20 ms at 10,000 Ingresses.

use std::hint::black_box;

// The allocator the binary uses, so the figures match what the control thread pays.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};
use ringress::model::{parse_documents, Objects};
use ringress::snapshot::{build, BuildOptions};

fn cluster(n: usize) -> Objects {
    let mut y = String::new();
    for i in 0..n {
        y += &format!(
            "---\napiVersion: v1\nkind: Service\nmetadata: {{name: svc{i}, namespace: ns{ns}}}\nspec: {{ports: [{{name: http, port: 80, targetPort: http}}]}}\n---\napiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\nmetadata: {{name: svc{i}-a, namespace: ns{ns}, labels: {{kubernetes.io/service-name: svc{i}}}}}\naddressType: IPv4\nendpoints: [{{addresses: [10.{a}.{b}.1]}}, {{addresses: [10.{a}.{b}.2]}}]\nports: [{{name: http, port: 8080}}]\n---\napiVersion: networking.k8s.io/v1\nkind: Ingress\nmetadata: {{name: ing{i}, namespace: ns{ns}, creationTimestamp: \"2024-01-01T00:00:00Z\"}}\nspec:\n  ingressClassName: ringress\n  rules:\n  - host: host{i}.example.com\n    http:\n      paths:\n      - {{path: /, pathType: Prefix, backend: {{service: {{name: svc{i}, port: {{name: http}}}}}}}}\n      - {{path: /api, pathType: Prefix, backend: {{service: {{name: svc{i}, port: {{number: 80}}}}}}}}\n",
            ns = i % 50,
            a = (i / 250) % 250,
            b = i % 250
        );
    }
    parse_documents(&y).expect("bench manifests parse")
}

fn snapshot_build(c: &mut Criterion) {
    let mut g = c.benchmark_group("snapshot_build");
    g.sample_size(10);
    for n in [1_000usize, 10_000] {
        let objects = cluster(n);
        let opts = BuildOptions::default();
        g.bench_with_input(BenchmarkId::from_parameter(n), &n, |b, _| b.iter(|| black_box(build(&objects, &opts))));
    }
    g.finish();
}

criterion_group!(benches, snapshot_build);
criterion_main!(benches);
