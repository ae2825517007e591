#!/usr/bin/env python3
"""Collects the side-by-side benchmark into JSON and renders docs/benchmarks.md from it.

    report.py collect --records R.jsonl --meta meta.txt --results-dir DIR --out latest.json
    report.py render  --in latest.json --out docs/benchmarks.md [--plots docs/bench]
                      [--control-plane control_plane.json]

`collect` reads the records e2e/bench/run.sh wrote (one JSON object per oha run, naming the
raw oha output under DIR) and computes per round and target: saturation RPS (200s / duration),
success rate, proxy CPU-seconds per 100k requests, peak RSS, proxied/direct ratio, and p50/p99
at the fixed rate. Then the summary (median, min, max over rounds) and the ratios pier / peer
computed within each round; all of it per variant (plain, keepalive-off, tls, h2). `render`
writes the Markdown page, the SVG plots (hand-written SVG) and, when control_plane.json exists,
the control-plane section. It also reads the older single-variant latest.json. Standard library
only.
"""

import argparse
import json
import math
import os
import platform
import statistics
import subprocess
import sys

PEERS = ["nginx", "haproxy", "envoy", "traefik"]
PROXIES = ["pier"] + PEERS


# ------------------------------------------------------------------ collect

def read_meta(path):
    meta, versions, skipped = {}, {}, {}
    with open(path) as f:
        for line in f:
            line = line.rstrip("\n")
            if "=" not in line:
                continue
            key, value = line.split("=", 1)
            if key.startswith("version."):
                versions[key[len("version."):]] = value
            elif key.startswith("skipped."):
                skipped[key[len("skipped."):]] = value
            else:
                meta[key] = value
    for key in ("rounds", "duration_s", "connections", "workers"):
        if key in meta:
            meta[key] = int(meta[key])
    return meta, versions, skipped


def machine():
    model = "unknown"
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    mem_kb = None
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemTotal:"):
                    mem_kb = int(line.split()[1])
                    break
    except OSError:
        pass
    try:
        nproc = int(subprocess.check_output(["nproc"], text=True).strip())
    except (OSError, subprocess.CalledProcessError, ValueError):
        nproc = os.cpu_count()
    return {
        "nproc": nproc,
        "cpu_model": model,
        "kernel": platform.release(),
        "memory_gib": round(mem_kb / 1048576, 1) if mem_kb else None,
    }


def oha_figures(path):
    """Figures of one oha JSON output (latencies in seconds in oha's output)."""
    try:
        with open(path) as f:
            d = json.load(f)
    except (OSError, ValueError):
        return None
    codes = {str(k): int(v) for k, v in (d.get("statusCodeDistribution") or {}).items()}
    errors = {str(k): int(v) for k, v in (d.get("errorDistribution") or {}).items()}
    # Requests still in flight when the -z deadline hits are cut off by oha itself; they are
    # not failures of the proxy.
    real_errors = sum(v for k, v in errors.items() if "deadline" not in k.lower())
    duration = float(d["summary"]["total"])
    ok = codes.get("200", 0)
    responses = sum(codes.values())
    attempted = responses + real_errors
    pct = d.get("latencyPercentiles") or {}
    return {
        "duration_s": round(duration, 3),
        "ok": ok,
        "responses": responses,
        "errors": real_errors,
        "error_kinds": errors,
        "status_codes": codes,
        "ok_rps": round(ok / duration, 1) if duration else 0.0,
        "success_rate": round(ok / attempted, 6) if attempted else 0.0,
        "p50_ms": round(float(pct["p50"]) * 1e3, 3) if pct.get("p50") is not None else None,
        "p99_ms": round(float(pct["p99"]) * 1e3, 3) if pct.get("p99") is not None else None,
    }


def spread(values):
    values = [v for v in values if v is not None]
    if not values:
        return None
    return {
        "median": round(statistics.median(values), 4),
        "min": round(min(values), 4),
        "max": round(max(values), 4),
        "n": len(values),
    }


METRICS = [
    # key, label, unit, better
    ("saturation_rps", "saturation RPS (200s/s)", "req/s", "higher"),
    ("p50_ms", "p50 at fixed rate", "ms", "lower"),
    ("p99_ms", "p99 at fixed rate", "ms", "lower"),
    ("cpu_s_per_100k", "proxy CPU-seconds per 100k requests", "s", "lower"),
    ("cpu_s_per_100k_fixed", "proxy CPU-seconds per 100k requests at fixed rate", "s", "lower"),
    ("peak_rss_mib", "peak RSS", "MiB", "lower"),
    ("proxied_direct", "proxied / direct RPS", "", "higher"),
    ("success_rate", "success rate (saturation and fixed rate)", "", "higher"),
]


VARIANTS = ["plain", "keepalive-off", "tls", "h2"]
VARIANT_LABELS = {
    "plain": "plain (HTTP/1.1, keep-alive)",
    "keepalive-off": "keepalive-off (a new client connection per request)",
    "tls": "tls (HTTP/1.1 over TLS)",
    "h2": "h2 (HTTP/2 over TLS, ALPN)",
}


def read_variant_meta(meta):
    """Splits `variant.V.key` and `variant_skipped.V.name` entries out of the flat meta."""
    settings, skipped = {}, {}
    for key in list(meta):
        if key.startswith("variant."):
            _, variant, field = key.split(".", 2)
            value = meta.pop(key)
            if field == "rounds" or field == "duration_s":
                value = int(value)
            elif field == "rates_pct":
                value = [int(x) for x in value.split()]
            elif field == "targets":
                value = value.split()
            settings.setdefault(variant, {})[field] = value
        elif key.startswith("variant_skipped."):
            _, variant, name = key.split(".", 2)
            skipped.setdefault(variant, {})[name] = meta.pop(key)
    return settings, skipped


def primary_pct(pcts):
    """The fixed rate the ratio tables use: 50 % when measured, else the middle one."""
    pcts = sorted(pcts)
    if not pcts:
        return None
    return 50 if 50 in pcts else pcts[len(pcts) // 2]


def derive(rounds):
    """Per-round figures, then summary, ratios and latency per fixed rate of one variant.

    `rounds` are dicts {round, fixed_rate, fixed_rates, targets}; a target holds
    `saturation` and `fixed_by_pct` ({pct: oha figures}) and gets `fixed` (the primary rate)
    and `figures` here.
    """
    for r in rounds:
        direct = r["targets"].get("direct", {}).get("saturation", {}).get("ok_rps")
        for name, t in r["targets"].items():
            by_pct = t.get("fixed_by_pct") or {}
            main = primary_pct([int(k) for k in by_pct])
            if main is not None:
                t["fixed"] = by_pct[str(main)]
            sat, fixed = t.get("saturation", {}), t.get("fixed", {})
            flat = {
                "saturation_rps": sat.get("ok_rps"),
                "p50_ms": fixed.get("p50_ms"),
                "p99_ms": fixed.get("p99_ms"),
                "cpu_s_per_100k": sat.get("cpu_s_per_100k"),
                "cpu_s_per_100k_fixed": fixed.get("cpu_s_per_100k"),
                "peak_rss_mib": sat.get("peak_rss_mib"),
                "proxied_direct": (
                    round(sat["ok_rps"] / direct, 4)
                    if name != "direct" and direct and sat.get("ok_rps") is not None
                    else None
                ),
            }
            runs = [sat] + list(by_pct.values())
            oks = sum(x.get("ok", 0) for x in runs)
            tries = sum(x.get("responses", 0) + x.get("errors", 0) for x in runs)
            flat["success_rate"] = round(oks / tries, 6) if tries else None
            t["figures"] = flat

    targets = ["direct"] + [p for p in PROXIES if any(p in r["targets"] for r in rounds)]
    targets = [t for t in targets if any(t in r["targets"] for r in rounds)]
    summary = {}
    for name in targets:
        summary[name] = {
            key: spread([r["targets"].get(name, {}).get("figures", {}).get(key) for r in rounds])
            for key, *_ in METRICS
        }

    ratios = {}
    for peer in PEERS:
        if not any(peer in r["targets"] for r in rounds):
            continue
        ratios[peer] = {}
        for key, *_ in METRICS:
            per_round = []
            for r in rounds:
                a = r["targets"].get("pier", {}).get("figures", {}).get(key)
                b = r["targets"].get(peer, {}).get("figures", {}).get(key)
                if a is not None and b:
                    per_round.append(a / b)
            ratios[peer][key] = spread(per_round)

    pcts = sorted({int(k) for r in rounds for t in r["targets"].values() for k in (t.get("fixed_by_pct") or {})})
    latency = {}
    for pct in pcts:
        entry = {"rate": spread([(r.get("fixed_rates") or {}).get(str(pct)) for r in rounds]), "targets": {}}
        for name in targets:
            runs = [r["targets"].get(name, {}).get("fixed_by_pct", {}).get(str(pct)) for r in rounds]
            runs = [x for x in runs if x]
            if runs:
                entry["targets"][name] = {
                    "p50_ms": spread([x.get("p50_ms") for x in runs]),
                    "p99_ms": spread([x.get("p99_ms") for x in runs]),
                }
        latency[str(pct)] = entry
    return summary, ratios, latency


def fixed_figures(path, rec):
    figures = oha_figures(path)
    if figures is None:
        return None
    figures["oha_output"] = rec["oha"]
    if "cpu_ticks" in rec:
        cpu_s = rec["cpu_ticks"] / rec["clk_tck"]
        figures["cpu_s"] = round(cpu_s, 3)
        figures["cpu_s_per_100k"] = (
            round(cpu_s / figures["responses"] * 1e5, 4) if figures["responses"] else None
        )
    return figures


def collect(args):
    meta, versions, skipped = read_meta(args.meta)
    settings, variant_skipped = read_variant_meta(meta)
    records = []
    with open(args.records) as f:
        for line in f:
            if line.strip():
                records.append(json.loads(line))

    by_variant = {}
    for rec in records:
        rounds = by_variant.setdefault(rec.get("variant", "plain"), {})
        r = rounds.setdefault(
            rec["round"], {"round": rec["round"], "fixed_rate": None, "fixed_rates": {}, "targets": {}}
        )
        target = r["targets"].setdefault(rec["target"], {})
        path = os.path.join(args.results_dir, rec["oha"])
        if rec["phase"] == "saturation":
            figures = oha_figures(path)
            if figures is None:
                target["saturation_error"] = "no oha output: " + rec["oha"]
                continue
            figures["oha_output"] = rec["oha"]
            cpu_s = rec["cpu_ticks"] / rec["clk_tck"]
            figures["cpu_s"] = round(cpu_s, 3)
            figures["cpu_s_per_100k"] = (
                round(cpu_s / figures["responses"] * 1e5, 4) if figures["responses"] else None
            )
            figures["peak_rss_mib"] = round(rec["hwm_kb"] / 1024, 1)
            target["saturation"] = figures
        else:
            pct = str(rec.get("rate_pct", 50))
            r["fixed_rates"][pct] = rec["rate"]
            figures = fixed_figures(path, rec)
            if figures is None:
                target["fixed_error"] = "no oha output: " + rec["oha"]
                continue
            target.setdefault("fixed_by_pct", {})[pct] = figures

    variants = {}
    for name in [v for v in VARIANTS if v in by_variant] + [v for v in by_variant if v not in VARIANTS]:
        ordered = [by_variant[name][k] for k in sorted(by_variant[name])]
        for r in ordered:
            main = primary_pct([int(k) for k in r["fixed_rates"]])
            r["fixed_rate"] = r["fixed_rates"].get(str(main)) if main is not None else None
        summary, ratios, latency = derive(ordered)
        variants[name] = {
            "settings": settings.get(name, {}),
            "skipped": variant_skipped.get(name, {}),
            "rounds": ordered,
            "summary": summary,
            "ratios_pier_over_peer": ratios,
            "latency_by_rate_pct": latency,
        }

    out = {
        "schema": 2,
        "machine": machine(),
        "run": meta,
        "versions": versions,
        "skipped": skipped,
        "metrics": [
            {"key": k, "label": label, "unit": unit, "better": better} for k, label, unit, better in METRICS
        ],
        "variants": variants,
    }
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    with open(args.out, "w") as f:
        json.dump(out, f, indent=2)
        f.write("\n")


def upgrade(d):
    """Reads a schema-1 file (one plain variant at one fixed rate) as schema 2."""
    if "variants" in d:
        return d
    run = d.get("run", {})
    rounds = d.get("rounds", [])
    for r in rounds:
        r.setdefault("fixed_rates", {"50": r.get("fixed_rate")} if r.get("fixed_rate") else {})
        for t in r.get("targets", {}).values():
            if "fixed" in t and "fixed_by_pct" not in t:
                t["fixed_by_pct"] = {"50": t["fixed"]}
    summary, ratios, latency = derive(rounds)
    d["variants"] = {
        "plain": {
            "settings": {
                "rounds": run.get("rounds"),
                "duration_s": run.get("duration_s"),
                "rates_pct": [50],
                "client": "HTTP/1.1, keep-alive",
                "targets": list(summary),
            },
            "skipped": {},
            "rounds": rounds,
            "summary": d.get("summary", summary),
            "ratios_pier_over_peer": d.get("ratios_pier_over_peer", ratios),
            "latency_by_rate_pct": latency,
        }
    }
    return d


# ------------------------------------------------------------------ render

def fmt(value, key):
    if value is None:
        return "–"
    if key in ("saturation_rps",):
        return f"{value:,.0f}"
    if key in ("success_rate",):
        return f"{value * 100:.2f} %"
    if key in ("proxied_direct",):
        return f"{value:.2f}"
    if key in ("peak_rss_mib",):
        return f"{value:.1f}"
    return f"{value:.3g}" if value < 1 else f"{value:.2f}"


def fmt_spread(s, key, ratio=False):
    if not s:
        return "–"
    if ratio:
        mid = f"{s['median']:.2f}"
        lo, hi = f"{s['min']:.2f}", f"{s['max']:.2f}"
        return mid if s["n"] == 1 or lo == hi else f"{mid} ({lo}–{hi})"
    mid = fmt(s["median"], key)
    lo, hi = fmt(s["min"], key), fmt(s["max"], key)
    return mid if s["n"] == 1 or lo == hi else f"{mid} ({lo}–{hi})"


NOT_YET = [
    "More workers than one per proxy (`--workers N` exists; not part of the published run).",
    "Upstream keep-alive off (every variant keeps the proxies' upstream pooling on; "
    "keepalive-off is the client side).",
    "Control-plane figures of the peers (see the control-plane section).",
    "A longer soak.",
]

COLORS = {
    "direct": "#9e9e9e",
    "pier": "#d62728",
    "nginx": "#2ca02c",
    "haproxy": "#1f77b4",
    "envoy": "#9467bd",
    "traefik": "#ff7f0e",
}


# ------------------------------------------------------------------ SVG plots (no libraries)

def esc(text):
    return (str(text).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
            .replace('"', "&quot;"))


def nice_max(value):
    """A round axis maximum at or above value (1, 2, 2.5, 5 × 10^k)."""
    if value <= 0:
        return 1.0
    exp = math.floor(math.log10(value))
    for m in (1, 2, 2.5, 5, 10):
        if m * 10 ** exp >= value:
            return m * 10 ** exp
    return 10 ** (exp + 1)


def fmt_axis(v):
    if v >= 1000:
        return f"{v / 1000:g}k"
    return f"{v:g}"


class Svg:
    def __init__(self, width, height):
        self.width, self.height, self.parts = width, height, []

    def add(self, text):
        self.parts.append(text)

    def text(self, x, y, text, size=12, anchor="start", weight="normal", fill="#222", rotate=None):
        transform = f' transform="rotate({rotate} {x:.1f} {y:.1f})"' if rotate else ""
        self.add(f'<text x="{x:.1f}" y="{y:.1f}" font-size="{size}" text-anchor="{anchor}" '
                 f'font-weight="{weight}" fill="{fill}"{transform}>{esc(text)}</text>')

    def line(self, x1, y1, x2, y2, stroke="#222", width=1, dash=None):
        d = f' stroke-dasharray="{dash}"' if dash else ""
        self.add(f'<line x1="{x1:.1f}" y1="{y1:.1f}" x2="{x2:.1f}" y2="{y2:.1f}" '
                 f'stroke="{stroke}" stroke-width="{width}"{d}/>')

    def rect(self, x, y, w, h, fill, title=None, opacity=1.0):
        t = f"<title>{esc(title)}</title>" if title else ""
        self.add(f'<rect x="{x:.1f}" y="{y:.1f}" width="{max(w, 0):.1f}" height="{max(h, 0):.1f}" '
                 f'fill="{fill}" fill-opacity="{opacity}">{t}</rect>')

    def render(self):
        head = (f'<svg xmlns="http://www.w3.org/2000/svg" width="{self.width}" height="{self.height}" '
                f'viewBox="0 0 {self.width} {self.height}" font-family="sans-serif">')
        return "\n".join([head, f'<rect width="{self.width}" height="{self.height}" fill="white"/>']
                         + self.parts + ["</svg>", ""])


def whisker(svg, x, y_lo, y_hi):
    svg.line(x, y_lo, x, y_hi, width=1)
    svg.line(x - 3, y_lo, x + 3, y_lo, width=1)
    svg.line(x - 3, y_hi, x + 3, y_hi, width=1)


def legend(svg, x, y, names):
    for name in names:
        svg.rect(x, y - 10, 12, 12, COLORS.get(name, "#444"))
        svg.text(x + 16, y, name, size=12)
        x += 26 + 8 * len(name)


def caption(d):
    m, run = d["machine"], d["run"]
    return (f"{m['nproc']} CPU(s), {m['cpu_model']}, kernel {m['kernel']}; {run.get('pinning', '')}; "
            f"run {run.get('started_at', '?')}")


def plot_saturation(d, path):
    variants = [v for v in d["variants"] if d["variants"][v]["summary"]]
    names = [n for n in ["direct"] + PROXIES if any(n in d["variants"][v]["summary"] for v in variants)]
    top = 0.0
    for v in variants:
        for n in names:
            s = d["variants"][v]["summary"].get(n, {}).get("saturation_rps")
            if s:
                top = max(top, s["max"])
    top = nice_max(top * 1.05)
    bar, gap = 16, 28
    group_w = bar * len(names)
    left, right, plot_top, plot_h = 70, 20, 80, 300
    width = max(900, left + right + len(variants) * (group_w + gap) + gap)
    height = plot_top + plot_h + 110
    svg = Svg(width, height)
    svg.text(left, 24, "Saturation RPS (responses 200 per second) per proxy and variant",
             size=15, weight="bold")
    svg.text(left, 42, "bars: median over rounds; whiskers: min–max", size=12)
    svg.text(left, 60, caption(d), size=11, fill="#555")
    y0 = plot_top + plot_h
    for i in range(6):
        v = top * i / 5
        y = y0 - plot_h * i / 5
        svg.line(left, y, width - right, y, stroke="#ddd")
        svg.text(left - 6, y + 4, fmt_axis(v), size=11, anchor="end")
    svg.text(16, plot_top + plot_h / 2, "req/s", size=12, anchor="middle", rotate=-90)
    x = left + gap
    for v in variants:
        summary = d["variants"][v]["summary"]
        for j, n in enumerate(names):
            s = summary.get(n, {}).get("saturation_rps")
            bx = x + j * bar
            if not s:
                svg.text(bx + bar / 2, y0 - 4, "–", size=10, anchor="middle", fill="#888")
                continue
            h = plot_h * s["median"] / top
            svg.rect(bx + 1, y0 - h, bar - 2, h, COLORS.get(n, "#444"),
                     title=f"{v} {n}: {s['median']:,.0f} req/s (min {s['min']:,.0f}, max {s['max']:,.0f}, n={s['n']})")
            if s["n"] > 1:
                whisker(svg, bx + bar / 2, y0 - plot_h * s["min"] / top, y0 - plot_h * s["max"] / top)
        svg.text(x + group_w / 2, y0 + 18, v, size=12, anchor="middle", weight="bold")
        x += group_w + gap
    svg.line(left, y0, width - right, y0)
    legend(svg, left, y0 + 50, names)
    svg.text(left, y0 + 78, "direct = the backend without a proxy (plain and keepalive-off only: "
             "the backend has no TLS listener)", size=11, fill="#555")
    with open(path, "w") as f:
        f.write(svg.render())


def plot_latency(d, path):
    variants = [v for v in d["variants"] if d["variants"][v].get("latency_by_rate_pct")]
    names = [n for n in PROXIES if any(n in d["variants"][v]["summary"] for v in variants)]
    lo, hi = None, None
    for v in variants:
        for entry in d["variants"][v]["latency_by_rate_pct"].values():
            for n, t in entry["targets"].items():
                for key in ("p50_ms", "p99_ms"):
                    s = t.get(key)
                    if s and s["min"] > 0:
                        lo = s["min"] if lo is None else min(lo, s["min"])
                        hi = s["max"] if hi is None else max(hi, s["max"])
    if lo is None:
        return False
    lo_exp, hi_exp = math.floor(math.log10(lo)), math.ceil(math.log10(hi))
    if hi_exp == lo_exp:
        hi_exp += 1
    bar, gap = 14, 26
    left, right, panel_h, panel_gap, plot_top = 70, 20, 200, 70, 90
    groups = [(v, pct) for v in variants for pct in sorted(d["variants"][v]["latency_by_rate_pct"], key=int)]
    group_w = bar * len(names)
    per_row = max(1, (1100 - left - right) // (group_w + gap))
    rows = [groups[i:i + per_row] for i in range(0, len(groups), per_row)]
    width = max(900, left + right + min(len(groups), per_row) * (group_w + gap) + gap)
    height = plot_top + len(rows) * (panel_h + panel_gap) + 70
    svg = Svg(width, height)
    svg.text(left, 24, "Latency through each proxy at fixed rates (log scale)", size=15, weight="bold")
    svg.text(left, 42, "dark: p50, light: p99 (medians over rounds); whiskers: p99 min–max", size=12)
    svg.text(left, 60, caption(d), size=11, fill="#555")

    def y_of(value, y0):
        value = max(value, 10 ** lo_exp)
        return y0 - panel_h * (math.log10(value) - lo_exp) / (hi_exp - lo_exp)

    for r, row in enumerate(rows):
        y0 = plot_top + r * (panel_h + panel_gap) + panel_h
        for e in range(lo_exp, hi_exp + 1):
            y = y_of(10 ** e, y0)
            svg.line(left, y, width - right, y, stroke="#ddd")
            svg.text(left - 6, y + 4, f"{10 ** e:g}", size=11, anchor="end")
        svg.text(16, y0 - panel_h / 2, "ms", size=12, anchor="middle", rotate=-90)
        x = left + gap
        for v, pct in row:
            entry = d["variants"][v]["latency_by_rate_pct"][pct]
            rate = (entry.get("rate") or {}).get("median")
            for j, n in enumerate(names):
                t = entry["targets"].get(n)
                bx = x + j * bar
                if not t or not t.get("p99_ms") or not t.get("p50_ms"):
                    svg.text(bx + bar / 2, y0 - 4, "–", size=10, anchor="middle", fill="#888")
                    continue
                p50, p99 = t["p50_ms"], t["p99_ms"]
                color = COLORS.get(n, "#444")
                y99, y50 = y_of(p99["median"], y0), y_of(p50["median"], y0)
                svg.rect(bx + 1, y99, bar - 2, y0 - y99, color, opacity=0.35,
                         title=f"{v} {pct} % {n}: p99 {p99['median']:.3g} ms (min {p99['min']:.3g}, max {p99['max']:.3g})")
                svg.rect(bx + 1, y50, bar - 2, y0 - y50, color,
                         title=f"{v} {pct} % {n}: p50 {p50['median']:.3g} ms")
                if p99["n"] > 1:
                    whisker(svg, bx + bar / 2, y_of(p99["min"], y0), y_of(p99["max"], y0))
            svg.text(x + group_w / 2, y0 + 16, v, size=12, anchor="middle", weight="bold")
            svg.text(x + group_w / 2, y0 + 31,
                     f"{pct} %" + (f" ({rate:,.0f}/s)" if rate else ""), size=11, anchor="middle")
            x += group_w + gap
        svg.line(left, y0, width - right, y0)
    legend(svg, left, height - 30, names)
    svg.text(left, height - 10, "rate = % of the slowest proxy's saturation RPS in the same round "
             "(median rate shown)", size=11, fill="#555")
    with open(path, "w") as f:
        f.write(svg.render())
    return True


# ------------------------------------------------------------------ Markdown

def ratio_table(w, metrics, ratios, peers):
    w("| figure | better | " + " | ".join(f"pier / {p}" for p in peers) + " |")
    w("|---|---|" + "---|" * len(peers))
    for mt in metrics:
        key = mt["key"]
        if key == "proxied_direct":  # the same ratio as saturation RPS
            continue
        w(f"| {mt['label']} | {mt['better']} | "
          + " | ".join(fmt_spread(ratios[p].get(key), key, ratio=True) for p in peers) + " |")


def absolute_table(w, metrics, summary, names):
    w("| figure | unit | " + " | ".join(names) + " |")
    w("|---|---|" + "---|" * len(names))
    for mt in metrics:
        key = mt["key"]
        w(f"| {mt['label']} | {mt['unit']} | "
          + " | ".join(fmt_spread(summary[n].get(key), key) for n in names) + " |")


def verdict(ratios, peers):
    out = []
    for p in peers:
        rps = (ratios[p].get("saturation_rps") or {}).get("median")
        cpu = (ratios[p].get("cpu_s_per_100k") or {}).get("median")
        if rps is None or cpu is None:
            continue
        out.append(f"{'more' if rps > 1 else 'fewer'} requests per second than {p} ({rps:.2f}×) at "
                   f"{cpu:.2f}× its CPU per request")
    return out


def render_variant(w, d, name, v):
    metrics = d["metrics"]
    st = v.get("settings", {})
    ratios, summary = v["ratios_pier_over_peer"], v["summary"]
    peers = list(ratios)
    names = [n for n in ["direct", "pier"] + peers if n in summary]
    w(f"### {VARIANT_LABELS.get(name, name)}")
    w("")
    rates = st.get("rates_pct") or []
    w(f"Client: {st.get('client', '?')}. {st.get('rounds', '?')} round(s) of {st.get('duration_s', '?')} s "
      f"runs; fixed rate(s): {', '.join(f'{p} %' for p in rates) or '–'} of the round's slowest proxy.")
    if isinstance(st.get("rounds"), int) and st["rounds"] < 3:
        w("")
        w(f"**{st['rounds']} round(s) only: indicative, no meaningful spread.**")
    if v.get("skipped"):
        w("")
        w("Not measured in this variant: " + "; ".join(f"{k}: {val}" for k, val in v["skipped"].items()) + ".")
    w("")
    lines = verdict(ratios, peers)
    if lines:
        w("pier serves " + "; ".join(lines) + " (medians over rounds).")
        w("")
    main = primary_pct(rates) if rates else 50
    w(f"Ratios pier / peer (latency at the {main} % rate):")
    w("")
    ratio_table(w, metrics, ratios, peers)
    w("")
    w("Absolute figures (median over rounds, min–max in parentheses):")
    w("")
    absolute_table(w, metrics, summary, names)
    w("")
    latency = v.get("latency_by_rate_pct") or {}
    if len(latency) > 1:
        w("Latency at each fixed rate (median over rounds; p50 / p99, ms):")
        w("")
        lat_names = [n for n in names if n != "direct"]
        w("| rate | " + " | ".join(lat_names) + " |")
        w("|---|" + "---|" * len(lat_names))
        for pct in sorted(latency, key=int):
            entry = latency[pct]
            rate = (entry.get("rate") or {}).get("median")
            cells = []
            for n in lat_names:
                t = entry["targets"].get(n) or {}
                p50, p99 = (t.get("p50_ms") or {}).get("median"), (t.get("p99_ms") or {}).get("median")
                cells.append("–" if p50 is None else f"{fmt(p50, 'p50_ms')} / {fmt(p99, 'p99_ms')}")
            w(f"| {pct} %" + (f" ({rate:,.0f}/s)" if rate else "") + " | " + " | ".join(cells) + " |")
        w("")
    w("<details><summary>Per round</summary>")
    w("")
    w("| round | fixed rate (req/s) | " + " | ".join(f"{n} RPS" for n in names) + " |")
    w("|---|---|" + "---|" * len(names))
    for r in v["rounds"]:
        cells = [fmt(r["targets"].get(n, {}).get("figures", {}).get("saturation_rps"), "saturation_rps")
                 for n in names]
        fr = r.get("fixed_rates") or {}
        rates_txt = ", ".join(f"{fr[k]}" for k in sorted(fr, key=int)) if fr else (r.get("fixed_rate") or "–")
        w(f"| {r['round']} | {rates_txt} | " + " | ".join(cells) + " |")
    w("")
    w("</details>")
    w("")


def load_control_plane(path):
    if not path or not os.path.exists(path):
        return None
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def ms(value):
    return "–" if value is None else (f"{value:.1f}" if value >= 10 else f"{value:.2f}")


def render_control_plane(w, cp):
    w("## Control plane (pier only)")
    w("")
    w("Produced by `cargo bench -p pier-e2e --bench control_plane` (pier as a child process, "
      "`pier echo` backends, loopback only; every load bounded in requests and time), which "
      "prints the same tables and writes `e2e/bench/results/control_plane.json`.")
    w("")
    w("The peers are not measured here: none of them reads Kubernetes Ingress objects from "
      "files or from an API server, so there is no equivalent configuration source to time. "
      "(Comparable figures would need per-peer mechanisms — an nginx/HAProxy reload, Traefik's "
      "file provider with `watch`, Envoy's file-based xDS — which measure something else.)")
    w("")
    if not cp:
        w("*Not yet measured on the machine of this page: run the command above.*")
        w("")
        return
    m = cp.get("machine", {})
    w(f"Machine: {m.get('nproc', '?')} CPU(s), {m.get('cpu_model', '?')}; pier: {cp.get('pier', '?')}; "
      f"{cp.get('started_at', '?')}; mode {cp.get('mode', '?')}.")
    if cp.get("mode") != "full":
        w("")
        w("**Quick run (fewer objects and samples): indicative only.**")
    w("")
    w("### Start-up: process start → `/readyz` 200, and peak RSS")
    w("")
    w(f"Each Ingress has one host and one path to its own Service; each Service has one "
      f"EndpointSlice of {cp.get('endpoints_per_service', 10)} endpoints (addresses never "
      f"contacted: active health checks are off by default). `/readyz` polled every "
      f"{cp.get('ready_poll_ms', 5)} ms; peak RSS is `VmHWM` from `/proc/PID/status` once ready.")
    w("")
    w("| source | Ingresses | endpoints | runs | ready (s), median (min–max) | peak RSS (MiB), median |")
    w("|---|---|---|---|---|---|")
    for row in cp.get("startup", []):
        w(f"| {row['source']} | {row['ingresses']:,} | {row['endpoints']:,} | {row['runs']} | "
          f"{row['ready_s']['median']:.2f} ({row['ready_s']['min']:.2f}–{row['ready_s']['max']:.2f}) | "
          f"{row['peak_rss_mib']['median']:.1f} |")
    w("")
    w("### Propagation: a change at the source → answered accordingly")
    w("")
    w("Polled every millisecond through the proxy (HTTP/1.1 keep-alive). *Under load*: "
      f"{cp.get('load', {}).get('description', 'a bounded background load')} on a route that "
      "exists from the start.")
    w("")
    w("| change | source | routes present | load | n | p50 ms | p99 ms | max ms |")
    w("|---|---|---|---|---|---|---|---|")
    for row in cp.get("propagation", []):
        w(f"| {row['change']} | {row['source']} | {row['routes']:,} | {row['load']} | {row['n']} | "
          f"{ms(row['p50_ms'])} | {ms(row['p99_ms'])} | {ms(row['max_ms'])} |")
    w("")
    w("### Failed requests during configuration changes under load")
    w("")
    w("Each change is applied, then awaited (the new state answered) before the next; the "
      "background load counts every answer that is not 200 and every connection or timeout "
      "error. Target: 0.")
    w("")
    w("| source | routes present | changes | requests under load | non-200 | connection errors |")
    w("|---|---|---|---|---|---|")
    for row in cp.get("changes_under_load", []):
        w(f"| {row['source']} | {row['routes']:,} | {row['changes']} ({row['what']}) | "
          f"{row['requests']:,} | {row['non_200']} | {row['errors']} |")
    for row in cp.get("load_during_samples", []):
        w(f"| {row['source']} | {row.get('routes', cp.get('routes', 0)):,} | the propagation samples "
          f"under load above | {row['requests']:,} | {row['non_200']} | {row['errors']} |")
    w("")


def render(args):
    with open(args.input) as f:
        d = upgrade(json.load(f))
    m, run = d["machine"], d["run"]
    plots_dir = args.plots
    cp_path = args.control_plane
    if cp_path is None:
        cp_path = os.path.join(os.path.dirname(os.path.abspath(args.input)), "control_plane.json")
    cp = load_control_plane(cp_path)
    doc_dir = os.path.dirname(os.path.abspath(args.out))
    plots = []
    if plots_dir:
        os.makedirs(plots_dir, exist_ok=True)
        sat = os.path.join(plots_dir, "saturation.svg")
        plot_saturation(d, sat)
        plots.append(("Saturation RPS per proxy and variant", os.path.relpath(sat, doc_dir)))
        lat = os.path.join(plots_dir, "latency.svg")
        if plot_latency(d, lat):
            plots.append(("p50 / p99 at the fixed rates", os.path.relpath(lat, doc_dir)))

    variants = d["variants"]
    conns, workers = run.get("connections"), run.get("workers")
    lines = []
    w = lines.append
    w("# Benchmarks: pier side by side with nginx, HAProxy, Envoy and Traefik")
    w("")
    w("<!-- Generated by e2e/bench/report.py from e2e/bench/results/latest.json (and "
      "control_plane.json); do not edit by hand. -->")
    w("")
    w(f"This page: `{run.get('command', 'e2e/bench/run.sh')}`, {run.get('started_at', '?')} to "
      f"{run.get('finished_at', '?')}; variants measured: {', '.join(variants)}.")
    w("")
    w("Where pier's time per request goes, what was changed and where it stands against its "
      "goals: [performance.md](performance.md).")
    if run.get("mode") == "quick":
        w("")
        w("**This is a quick run (one short round per variant): indicative only, no spread over rounds.**")
    w("")
    w("## How to run")
    w("")
    w("| what | command | time |")
    w("|---|---|---|")
    w("| data plane, every variant (this page) | `e2e/bench/run.sh` | about 20 min |")
    w("| data plane, some variants | `e2e/bench/run.sh --variants \"plain h2\"` | |")
    w("| a first look | `e2e/bench/run.sh --quick` | about 5 min |")
    w("| does everything start? (no load, no results) | `e2e/bench/run.sh --smoke [--variants \"tls h2\"]` | seconds per peer |")
    w("| control plane (pier only) | `cargo bench -p pier-e2e --bench control_plane` (`-- --quick`: 1,000 Ingresses, fewer samples; `-- --ingresses N`) | a few minutes |")
    w("")
    w("`run.sh` installs what is missing, prints its time estimate first, and uses "
      "`target/release/pier` (brought up to date) unless `PIER_BIN` names a binary. Other options: "
      "`--rounds N`, `--duration S`, `--rates \"25 50 75\"`, `--connections N`, `--workers N`, "
      "`--only \"nginx envoy\"`, `--no-install`. Run it on a quiet machine: every figure is "
      "relative to what else the CPUs are doing.")
    w("")
    w("## Machine")
    w("")
    w(f"- CPUs (`nproc`): {m['nproc']}; CPU model: {m['cpu_model']}; kernel {m['kernel']}; "
      f"memory {m.get('memory_gib')} GiB")
    w(f"- Pinning: {run.get('pinning')}")
    w(f"- Load generator: {run.get('oha')}")
    w(f"- Backend (the same for every proxy and for the direct runs): {run.get('backend')}")
    w("- Versions: " + "; ".join(f"{k}: {v}" for k, v in d["versions"].items()))
    if d["skipped"]:
        w("- Skipped: " + "; ".join(f"{k}: {v}" for k, v in d["skipped"].items()))
    w("")
    w("## Method")
    w("")
    w(f"Every proxy has one route to the same backend on 127.0.0.1, upstream keep-alive pooling "
      f"on, access logs off and {workers} worker(s)/thread(s) (configs: `e2e/bench/peers/`); "
      f"each sends the backend what an ingress controller does: the client's `Host` and "
      f"`X-Forwarded-For`, `X-Real-IP`, `X-Forwarded-Proto` and `X-Forwarded-Host` (Envoy and "
      f"Traefik add a few fields of their own by default). Listeners hand a connection over "
      f"once its first bytes are there (`TCP_DEFER_ACCEPT`: pier's default, nginx `deferred`, "
      f"HAProxy `defer-accept`, a listener socket option for Envoy; Traefik has no such "
      f"setting). "
      f"Variants change the client side only: `plain` (HTTP/1.1 keep-alive), `keepalive-off` "
      f"(oha `--disable-keepalive`), `tls` (HTTP/1.1 over TLS) and `h2` (HTTP/2 over TLS, ALPN). "
      f"For tls and h2 every proxy serves the same self-signed ECDSA P-256 certificate for "
      f"`bench.local` (SNI and Host; pier: a `kubernetes.io/tls` Secret named in the Ingress's "
      f"`spec.tls`) and offers ALPN h2 and http/1.1. The proxies are restarted for each variant. "
      f"Each round measures every target once, in an order rotated from round to round:")
    w("")
    w(f"1. saturation: `oha -z D -c {conns} --no-tui --output-format json URL` against the "
      "backend directly (plain and keepalive-off) and through each proxy; RPS = responses with "
      "status 200 / run duration. Proxy CPU-seconds are utime+stime of the proxy's processes "
      "(`/proc/PID/stat`) across this run, per 100k responses (also across the fixed-rate run "
      "below); peak RSS is VmHWM (`/proc/PID/status`), summed over the proxy's processes, read "
      "after the run.")
    w(f"2. latency: `oha -z D -c {conns} -q RATE --latency-correction --no-tui "
      "--output-format json URL` through each proxy, RATE = a percentage of the slowest proxy's "
      "saturation RPS in that round; p50 and p99 from oha's latency percentiles.")
    w("")
    w("**Reading the tables.** Ratios are pier / peer, computed within each round, then the "
      "median over rounds with min–max in parentheses. For RPS and proxied/direct above 1 means "
      "pier is better; for latency, CPU and memory below 1 means pier is better. Absolute "
      "figures are medians over rounds (min–max) and belong to the machine above. Requests still "
      "in flight when oha's deadline hits are not counted as failures. `–`: not measured (e.g. "
      "`direct` has no TLS listener).")
    w("")
    w("Caveat: with two CPUs the load generator and the backend share CPU 0, so saturation may be "
      "limited by the client side rather than by the proxy; CPU-seconds per request is the "
      "figure that isolates the proxy's own cost.")
    w("")
    if plots:
        w("## Plots")
        w("")
        for title, rel in plots:
            w(f"- [{title}]({rel})")
        w("")
        for title, rel in plots:
            w(f"![{title}]({rel})")
            w("")
    w("## Data plane")
    w("")
    for name, v in variants.items():
        render_variant(w, d, name, v)
    missing = [v for v in VARIANTS if v not in variants]
    if missing:
        w("Variants not in this run: " + ", ".join(missing)
          + " (run `e2e/bench/run.sh --variants \"" + " ".join(missing) + "\"`).")
        w("")
    w("Raw oha output of the last run: `e2e/bench/results/raw/` (not committed); every figure "
      "above is in `e2e/bench/results/latest.json`.")
    w("")
    render_control_plane(w, cp)
    w("## Not yet measured")
    w("")
    for item in NOT_YET:
        w(f"- {item}")
    w("")
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    with open(args.out, "w") as f:
        f.write("\n".join(lines))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="cmd", required=True)
    c = sub.add_parser("collect")
    c.add_argument("--records", required=True)
    c.add_argument("--meta", required=True)
    c.add_argument("--results-dir", required=True)
    c.add_argument("--out", required=True)
    r = sub.add_parser("render")
    r.add_argument("--in", dest="input", required=True)
    r.add_argument("--out", required=True)
    r.add_argument("--plots", help="directory for the SVG plots (e.g. docs/bench); none when omitted")
    r.add_argument("--control-plane", default=None,
                   help="control_plane.json (default: next to --in; skipped when absent)")
    args = parser.parse_args()
    if args.cmd == "collect":
        collect(args)
    else:
        render(args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
