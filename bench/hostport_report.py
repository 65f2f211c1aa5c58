#!/usr/bin/env python3
"""Turns bench/hostport.sh's raw results into a Markdown table and an SVG chart.

Input lines:
  sat  run proxy placement mode rps p99_us softirq_us_per_req cpu_us_per_req conntrack errors
  rate run proxy placement target achieved_rps p50_us p99_us p999_us errors
Every cell is the median over runs. Ratios compare hostPort with hostNetwork for the same
proxy and mode."""
import statistics
import sys
from collections import defaultdict

src, out, machine = sys.argv[1], sys.argv[2], sys.argv[3]
sat = defaultdict(list)   # (proxy, placement, mode) -> [(rps, p99, softirq, cpu, conntrack, errors)]
rate = defaultdict(list)  # (proxy, placement) -> [(target, achieved, p50, p99, p999, errors)]
runs = set()
for line in open(src):
    f = line.split()
    if not f:
        continue
    runs.add(f[1])
    if f[0] == "sat":
        sat[(f[2], f[3], f[4])].append(tuple(float(x) for x in f[5:11]))
    elif f[0] == "rate":
        rate[(f[2], f[3])].append(tuple(float(x) for x in f[4:10]))

order = ["ringress", "nginx", "haproxy"]
proxies = sorted({k[0] for k in sat} | {k[0] for k in rate}, key=lambda p: order.index(p) if p in order else 99)
placements = ["hostNetwork", "hostPort"]
modes = [("keepalive", "keep-alive, 64 connections"), ("close", "new connection per request")]


def med(vals, i):
    return statistics.median(v[i] for v in vals)


md = [f"Machine: {machine}. Client, node, pod and upstream in network namespaces joined by veth pairs; "
      "the proxy pinned to one CPU, wrk/oha and the upstream (nginx `return 200`) on the other. "
      "hostNetwork: the proxy listens in the node namespace. hostPort: it listens in the pod namespace and "
      "the node DNATs to it (portmap-style iptables chain); conntrack is on in both.",
      f"Median of {len(runs)} runs. Softirq time is all CPUs' (from /proc/stat) over the requests served.", ""]
for mode, title in modes:
    md += [f"### {title}, at saturation (wrk)", "",
           "| proxy | placement | requests/s | p99 | softirq µs/req | proxy CPU µs/req | conntrack entries at end | errors |",
           "|---|---|---:|---:|---:|---:|---:|---:|"]
    for p in proxies:
        for pl in placements:
            v = sat.get((p, pl, mode))
            if v:
                md.append(f"| {p} | {pl} | {med(v, 0):,.0f} | {med(v, 1):,.0f} µs | {med(v, 2):.2f} | {med(v, 3):.2f} | "
                          f"{med(v, 4):,.0f} | {sum(x[5] for x in v):.0f} |")
    md.append("")
md += ["### hostPort relative to hostNetwork (same proxy, same mode)", "",
       "| proxy | mode | requests/s | softirq per request |", "|---|---|---:|---:|"]
for p in proxies:
    for mode, _ in modes:
        n, h = sat.get((p, "hostNetwork", mode)), sat.get((p, "hostPort", mode))
        if n and h:
            md.append(f"| {p} | {mode} | {med(h, 0) / med(n, 0):.2f}x | {med(h, 2) / med(n, 2):.2f}x |")
md.append("")
if rate:
    target = next(iter(rate.values()))[0][0]
    md += [f"### fixed rate, {target:,.0f} requests/s (oha, constant rate, latency-corrected)", "",
           "| proxy | placement | achieved requests/s | p50 | p99 | p99.9 | errors |", "|---|---|---:|---:|---:|---:|---:|"]
    for p in proxies:
        for pl in placements:
            v = rate.get((p, pl))
            if v:
                md.append(f"| {p} | {pl} | {med(v, 1):,.0f} | {med(v, 2):,.0f} µs | {med(v, 3):,.0f} µs | "
                          f"{med(v, 4):,.0f} µs | {sum(x[5] for x in v):.0f} |")
    md.append("")
n = sat.get(("ringress", "hostNetwork", "keepalive"))
ng = sat.get(("nginx", "hostNetwork", "keepalive"))
if n:
    line = f"ringress on hostNetwork, keep-alive: {med(n, 0):,.0f} requests/s with one proxy core (target: at least 50,000)"
    if ng:
        line += f"; softirq per request {med(n, 2):.2f} µs vs nginx's {med(ng, 2):.2f} µs (target: no higher)"
    md += [line + ".", ""]
open(out + ".md", "w").write("\n".join(md))

# SVG: requests/s per proxy, placement and mode.
W, H, pad, bar = 760, 320, 60, 34
colors = {"hostNetwork": "#2b7bb9", "hostPort": "#c0504d"}
vals = {(p, pl, m): med(sat[(p, pl, m)], 0) for (p, pl, m) in sat}
top = max(list(vals.values()) + [1]) * 1.15
groups = [(p, m) for m, _ in modes for p in proxies]
svg = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" font-family="sans-serif" font-size="12">',
       f'<text x="{W/2}" y="18" text-anchor="middle" font-size="14">Requests/s at saturation: hostNetwork vs hostPort (DNAT)</text>']
y0 = H - pad
for gi, (p, m) in enumerate(groups):
    gx = pad + gi * (W - pad) / max(len(groups), 1)
    svg.append(f'<text x="{gx + bar}" y="{H-35}" text-anchor="middle">{p}</text>')
    svg.append(f'<text x="{gx + bar}" y="{H-20}" text-anchor="middle" font-size="10">{m}</text>')
    for i, pl in enumerate(placements):
        v = vals.get((p, pl, m))
        if v is None:
            continue
        h = (y0 - 40) * v / top
        x = gx + i * (bar + 4)
        svg.append(f'<rect x="{x}" y="{y0-h}" width="{bar}" height="{h}" fill="{colors[pl]}"/>')
        svg.append(f'<text x="{x+bar/2}" y="{y0-h-4}" text-anchor="middle" font-size="10">{v/1000:.1f}k</text>')
lx = pad
for pl in placements:
    svg.append(f'<rect x="{lx}" y="28" width="10" height="10" fill="{colors[pl]}"/><text x="{lx+14}" y="37">{pl}</text>')
    lx += 120
svg.append(f'<line x1="{pad-10}" x2="{W-10}" y1="{y0}" y2="{y0}" stroke="black"/></svg>')
open(out + ".svg", "w").write("\n".join(svg))
