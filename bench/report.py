#!/usr/bin/env python3
"""Turns bench/compare.sh's raw results into a Markdown table and an SVG bar chart.

Input lines: run proxy mode rps p50_us p99_us cpu_us_per_req errors
Each cell is the median over runs; the CPU ratio is computed per run against the better of
nginx and haproxy in that same run, then the median of those ratios is reported."""
import statistics
import sys
from collections import defaultdict

src, out, machine = sys.argv[1], sys.argv[2], sys.argv[3]
rows = [l.split() for l in open(src) if l.strip()]
cell = defaultdict(list)  # (proxy, mode) -> [(rps, p50, p99, cpu, errs, run)]
by_run = defaultdict(dict)  # (run, mode) -> proxy -> cpu
for run, proxy, mode, rps, p50, p99, cpu, errs in rows:
    cell[(proxy, mode)].append((float(rps), float(p50), float(p99), float(cpu), int(float(errs))))
    by_run[(run, mode)][proxy] = float(cpu)

proxies = [p for p in ["ringress-uring", "baseline-uring", "ringress-epoll", "baseline-epoll", "ringress-tokio-uring", "nginx", "haproxy"] if any(r[1] == p for r in rows)]
modes = [("keepalive", "keep-alive, 64 connections"),
         ("keepalive-log", "keep-alive, 64 connections, access log to a file (all three)"),
         ("close", "new connection per request"),
         ("h2c", "HTTP/2 cleartext (h2c), h2load 16 connections x 16 streams"),
         ("h2", "HTTP/2 over TLS (ALPN h2), h2load 16 x 16"),
         ("https", "HTTPS/1.1 keep-alive, 64 connections"),
         ("tls-full", "full TLS 1.3 handshakes, ECDSA P-256 (openssl s_time -new, 4 clients, no request)"),
         ("tls-resume", "new TLS 1.3 connection per request, resumed with a ticket (wrk, Connection: close)"),
         ("tls12-resume", "resumed TLS 1.2 handshakes (openssl s_time -reuse, 4 clients, no request)"),
         ("gzip", "64 KiB HTML page gzipped at level 1 (Accept-Encoding: gzip), keep-alive, 64 connections"),
         ("gzip-off", "the same 64 KiB page, not compressed (no Accept-Encoding)"),
         ("passthrough", "SSL passthrough by SNI to a TLS backend, keep-alive, 64 connections (ringress, HAProxy mode tcp)"),
         ("passthrough-close", "SSL passthrough, a new TLS connection (and SNI read) per request")]
modes = [m for m in modes if any(r[2] == m[0] for r in rows)]
# Per-route features, ringress against itself (compare.sh's route-* modes).
features = [m for m in [("route-canary", "a canary taking 20% by weight"),
                        ("route-affinity", "cookie affinity, each request with its session cookie"),
                        ("route-limit", "limit-rps and limit-connections that never trip")]
            if any(r[2] == m[0] for r in rows)]
target = {"keepalive": 0.85, "keepalive-log": 1.0, "close": 1.0, "h2c": 0.9, "h2": 0.9, "https": 0.85, "tls-full": 0.83, "tls-resume": 1.0, "tls12-resume": 1.0, "gzip": 1.0, "gzip-off": 1.0, "passthrough": 1.0, "passthrough-close": 1.0}
# Whom each target is against: HTTP/2 against HAProxy (the strong one there), full handshakes
# against nginx (1.2x its handshakes per core is 0.83x its CPU per handshake).
versus = {"h2c": "haproxy", "h2": "haproxy", "tls-full": "nginx", "gzip": "nginx", "passthrough": "haproxy", "passthrough-close": "haproxy"}


def ratios(proxy, mode):
    rs = []
    for (run, m), cpus in by_run.items():
        if m != mode or proxy not in cpus:
            continue
        if mode in versus:
            best = cpus.get(versus[mode], float("inf"))
        else:
            best = min(cpus.get("nginx", float("inf")), cpus.get("haproxy", float("inf")))
        rs.append(cpus[proxy] / best)
    return rs


def ratio(proxy, mode):
    rs = ratios(proxy, mode)
    return statistics.median(rs) if rs else float("nan")


def spread(proxy, mode):
    rs = ratios(proxy, mode)
    return f"{min(rs):.2f}-{max(rs):.2f}" if rs else "-"


md = [f"Machine: {machine}. One proxy worker pinned to its own CPU; wrk and the upstream (nginx `return 200`, 64-byte body) on the other.",
      "All three proxies defer accept until request bytes arrive (ringress by default, nginx `listen ... deferred`, HAProxy `defer-accept`), keep upstream connections alive, and set X-Forwarded-For/X-Real-IP/X-Forwarded-Proto.",
      f"Median of {len(set(r[0] for r in rows))} runs. CPU/req ratio: proxy CPU per request over the better of nginx and HAProxy in the same run (median of per-run ratios).", ""]
for mode, title in modes:
    if not any(cell.get((p, mode)) for p in proxies):
        continue
    vs = versus.get(mode, "best of nginx, haproxy")
    md += [f"### {title} (target: ringress CPU/req <= {target[mode]}x {vs})", "",
           f"| proxy | requests/s | p50 | p99 | CPU µs/req | CPU/req vs {vs} | range over runs | non-2xx |",
           "|---|---:|---:|---:|---:|---:|---:|---:|"]
    for p in proxies:
        v = cell.get((p, mode))
        if not v:
            continue
        med = lambda i: statistics.median(x[i] for x in v)
        lat = lambda i: "-" if med(i) != med(i) else f"{med(i):.0f} µs"
        md.append(f"| {p} | {med(0):,.0f} | {lat(1)} | {lat(2)} | {med(3):.2f} | {ratio(p, mode):.2f}x | {spread(p, mode)} | {sum(x[4] for x in v)} |")
    md.append("")
    if mode == "keepalive-log":
        # What the log costs each proxy: CPU/req with it over without, per run, median.
        md += ["| proxy | CPU/req with the access log over without, same run (target for ringress: <= 1.10x) | range |", "|---|---:|---:|"]
        for p in proxies:
            rs = [c["keepalive-log"][p] / c["keepalive"][p]
                  for c in [{m: by_run[(r, m)] for m in ("keepalive", "keepalive-log")} for r in set(x[0] for x in rows)]
                  if p in c["keepalive-log"] and p in c["keepalive"]]
            if rs:
                md.append(f"| {p} | {statistics.median(rs):.2f}x | {min(rs):.2f}-{max(rs):.2f} |")
        md.append("")
if features:
    md += ["### per-route features, keep-alive, 64 connections (target: CPU/req <= 1.10x the plain route, same proxy, same run)", "",
           "| proxy | route | requests/s | CPU µs/req | CPU/req over the plain route | range over runs | non-2xx |",
           "|---|---|---:|---:|---:|---:|---:|"]
    for p in proxies:
        for mode, title in features:
            v = cell.get((p, mode))
            if not v:
                continue
            rs = [c[mode][p] / c["keepalive"][p]
                  for c in [{m: by_run[(r, m)] for m in ("keepalive", mode)} for r in set(x[0] for x in rows)]
                  if p in c[mode] and p in c["keepalive"]]
            med = lambda i: statistics.median(x[i] for x in v)
            rr = f"{statistics.median(rs):.2f}x | {min(rs):.2f}-{max(rs):.2f}" if rs else "- | -"
            md.append(f"| {p} | {title} | {med(0):,.0f} | {med(3):.2f} | {rr} | {sum(x[4] for x in v)} |")
    md.append("")
# A regression check (BASELINE=...): this build's CPU/req over the baseline binary's, per run.
for side in ["uring", "epoll"]:
    new, old = f"ringress-{side}", f"baseline-{side}"
    if not any(r[1] == old for r in rows):
        continue
    md += [f"### this build vs the baseline binary ({side}), same runs", "",
           "| mode | CPU/req, this build over the baseline (median of runs) | range |", "|---|---:|---:|"]
    for mode, title in modes:
        rs = [c[new] / c[old] for (run, m), c in by_run.items() if m == mode and new in c and old in c]
        if rs:
            md.append(f"| {mode} | {statistics.median(rs):.2f}x | {min(rs):.2f}-{max(rs):.2f} |")
    md.append("")
open(out + ".md", "w").write("\n".join(md))

# SVG: one small panel per scenario, two columns, a horizontal bar per proxy (CPU per request
# over the best peer's, lower is better) and ringress's target as a dashed line: legible at
# README width (760 px), whatever the number of scenarios. Baseline binaries are left out.
short = {"keepalive": "HTTP/1.1 keep-alive", "keepalive-log": "keep-alive, access log on",
         "close": "new connection per request", "h2c": "HTTP/2 cleartext (h2c)", "h2": "HTTP/2 over TLS",
         "https": "HTTPS/1.1 keep-alive", "tls-full": "full TLS 1.3 handshakes",
         "tls-resume": "TLS 1.3, resumed, per request", "tls12-resume": "TLS 1.2 resumption",
         "gzip": "64 KiB page, gzip level 1", "gzip-off": "64 KiB page, not compressed",
         "passthrough": "SSL passthrough, keep-alive", "passthrough-close": "SSL passthrough, per request"}
colors = {"ringress-uring": "#1f5f99", "ringress-epoll": "#5b9bd5", "ringress-tokio-uring": "#9dc3e6",
          "nginx": "#4e8f3a", "haproxy": "#b8433f"}
shown = [p for p in proxies if p in colors]
vals = {(p, m): ratio(p, m) for p in shown for m, _ in modes}
scale_max = max([v for v in vals.values() if v == v] + [t for m, t in target.items() if any(m == x for x, _ in modes)] + [1.2])
scale_max = (int(scale_max * 4) + 1) / 4  # up to the next quarter
W, colw, label_w, row, head, foot = 760, 370, 118, 20, 34, 26
plot_w = colw - label_w - 40
panel_h = head + row * len(shown) + foot
cols = 2
H = 56 + panel_h * ((len(modes) + cols - 1) // cols)
esc = lambda t: t.replace("&", "&amp;").replace("<", "&lt;")
svg = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" viewBox="0 0 {W} {H}" font-family="sans-serif" font-size="12">',
       f'<rect width="{W}" height="{H}" fill="white"/>',
       f'<text x="{W/2}" y="20" text-anchor="middle" font-size="15" font-weight="bold">CPU per request, relative to the better of nginx and HAProxy</text>',
       f'<text x="{W/2}" y="38" text-anchor="middle" font-size="12" fill="#444">lower is better; dashed line: ringress\'s target; median of {len(set(r[0] for r in rows))} runs</text>']
for gi, (m, _) in enumerate(modes):
    px, py = 10 + (gi % cols) * (colw + 10), 52 + (gi // cols) * panel_h
    x0 = px + label_w
    sx = lambda v: x0 + plot_w * v / scale_max
    vs = " (vs HAProxy)" if versus.get(m) == "haproxy" else " (vs nginx)" if versus.get(m) == "nginx" else ""
    svg.append(f'<text x="{px}" y="{py + 16}" font-size="13" font-weight="bold">{esc(short.get(m, m) + vs)}</text>')
    ybot = py + head + row * len(shown)
    tx = sx(target[m])
    svg.append(f'<line x1="{tx:.1f}" x2="{tx:.1f}" y1="{py + head - 4}" y2="{ybot}" stroke="#000" stroke-dasharray="4 3"/>')
    svg.append(f'<text x="{tx:.1f}" y="{py + head - 6}" text-anchor="middle" font-size="10">target {target[m]}x</text>')
    for i, p in enumerate(shown):
        v = vals[(p, m)]
        y = py + head + i * row
        svg.append(f'<text x="{x0 - 6}" y="{y + 13}" text-anchor="end">{p}</text>')
        if v != v:
            svg.append(f'<text x="{x0 + 4}" y="{y + 13}" fill="#888">not measured</text>')
            continue
        svg.append(f'<rect x="{x0}" y="{y + 2}" width="{sx(v) - x0:.1f}" height="{row - 5}" fill="{colors[p]}"/>')
        svg.append(f'<text x="{sx(v) + 4:.1f}" y="{y + 13}" stroke="white" stroke-width="3" paint-order="stroke">{v:.2f}x</text>')
    svg.append(f'<line x1="{x0}" x2="{x0}" y1="{py + head - 2}" y2="{ybot}" stroke="#222"/>')
    svg.append(f'<line x1="{x0}" x2="{x0 + plot_w}" y1="{ybot}" y2="{ybot}" stroke="#222"/>')
    t = 0.0
    while t <= scale_max + 1e-9:
        svg.append(f'<line x1="{sx(t):.1f}" x2="{sx(t):.1f}" y1="{ybot}" y2="{ybot + 4}" stroke="#222"/>')
        svg.append(f'<text x="{sx(t):.1f}" y="{ybot + 15}" text-anchor="middle" font-size="10" fill="#444">{t:g}</text>')
        t += 0.5
svg.append("</svg>")
open(out + ".svg", "w").write("\n".join(svg))
