#!/usr/bin/env python3
"""Collects the side-by-side benchmark into JSON and renders docs/benchmarks.md from it.

    report.py collect --records R.jsonl --meta meta.txt --results-dir DIR --out latest.json
    report.py render  --in latest.json --out docs/benchmarks.md

`collect` reads the records e2e/bench/run.sh wrote (one JSON object per oha run, naming the
raw oha output under DIR) and computes per round and target: saturation RPS (200s / duration),
success rate, proxy CPU-seconds per 100k requests, peak RSS, proxied/direct ratio, and p50/p99
at the fixed rate. Then the summary (median, min, max over rounds) and the ratios pier / peer
computed within each round. `render` writes the Markdown page. Standard library only.
"""

import argparse
import json
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


def collect(args):
    meta, versions, skipped = read_meta(args.meta)
    records = []
    with open(args.records) as f:
        for line in f:
            if line.strip():
                records.append(json.loads(line))

    rounds = {}
    for rec in records:
        r = rounds.setdefault(rec["round"], {"round": rec["round"], "fixed_rate": None, "targets": {}})
        figures = oha_figures(os.path.join(args.results_dir, rec["oha"]))
        target = r["targets"].setdefault(rec["target"], {})
        if figures is None:
            target[rec["phase"] + "_error"] = "no oha output: " + rec["oha"]
            continue
        figures["oha_output"] = rec["oha"]
        if rec["phase"] == "saturation":
            cpu_s = rec["cpu_ticks"] / rec["clk_tck"]
            figures["cpu_s"] = round(cpu_s, 3)
            figures["cpu_s_per_100k"] = (
                round(cpu_s / figures["responses"] * 1e5, 4) if figures["responses"] else None
            )
            figures["peak_rss_mib"] = round(rec["hwm_kb"] / 1024, 1)
            target["saturation"] = figures
        else:
            r["fixed_rate"] = rec["rate"]
            if "cpu_ticks" in rec:
                cpu_s = rec["cpu_ticks"] / rec["clk_tck"]
                figures["cpu_s"] = round(cpu_s, 3)
                figures["cpu_s_per_100k"] = (
                    round(cpu_s / figures["responses"] * 1e5, 4) if figures["responses"] else None
                )
            target["fixed"] = figures

    # Derived per-round figures.
    for r in rounds.values():
        direct = r["targets"].get("direct", {}).get("saturation", {}).get("ok_rps")
        for name, t in r["targets"].items():
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
            oks = sat.get("ok", 0) + fixed.get("ok", 0)
            tries = sat.get("responses", 0) + sat.get("errors", 0) + fixed.get("responses", 0) + fixed.get("errors", 0)
            flat["success_rate"] = round(oks / tries, 6) if tries else None
            t["figures"] = flat

    ordered = [rounds[k] for k in sorted(rounds)]
    targets = ["direct"] + [p for p in PROXIES if any(p in r["targets"] for r in ordered)]

    summary = {}
    for name in targets:
        summary[name] = {
            key: spread([r["targets"].get(name, {}).get("figures", {}).get(key) for r in ordered])
            for key, *_ in METRICS
        }

    ratios = {}
    for peer in PEERS:
        if not any(peer in r["targets"] for r in ordered):
            continue
        ratios[peer] = {}
        for key, *_ in METRICS:
            per_round = []
            for r in ordered:
                a = r["targets"].get("pier", {}).get("figures", {}).get(key)
                b = r["targets"].get(peer, {}).get("figures", {}).get(key)
                if a is not None and b:
                    per_round.append(a / b)
            ratios[peer][key] = spread(per_round)

    out = {
        "schema": 1,
        "machine": machine(),
        "run": meta,
        "versions": versions,
        "skipped": skipped,
        "metrics": [
            {"key": k, "label": label, "unit": unit, "better": better} for k, label, unit, better in METRICS
        ],
        "rounds": ordered,
        "summary": summary,
        "ratios_pier_over_peer": ratios,
    }
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    with open(args.out, "w") as f:
        json.dump(out, f, indent=2)
        f.write("\n")


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
    "Plots (RPS and latency per proxy, per round).",
    "Variants: upstream keep-alive off, HTTP/2 to clients, TLS termination (HTTPS listener), "
    "more workers than one.",
    "Control-plane figures side by side: time from an Ingress change to traffic on the new "
    "route, and the effect of a configuration change on in-flight requests (pier's own are in "
    "`cargo bench -p pier-e2e --bench propagation`).",
    "Latency at more than one fixed rate (a latency/throughput curve) and a longer soak.",
]


def render(args):
    with open(args.input) as f:
        d = json.load(f)
    m, run, summary, ratios = d["machine"], d["run"], d["summary"], d["ratios_pier_over_peer"]
    metrics = d["metrics"]
    peers = list(ratios)
    dur, conns, workers = run.get("duration_s"), run.get("connections"), run.get("workers")
    lines = []
    w = lines.append
    w("# Benchmarks: pier side by side with nginx, HAProxy, Envoy and Traefik")
    w("")
    w("<!-- Generated by e2e/bench/report.py from e2e/bench/results/latest.json; do not edit by hand. -->")
    w("")
    w("Produced by `e2e/bench/run.sh` (the full run; `--quick` is one short round for a first look).")
    w(f"This page: `{run.get('command', 'e2e/bench/run.sh')}`, {run.get('rounds')} round(s), "
      f"{run.get('started_at', '?')} to {run.get('finished_at', '?')}.")
    if run.get("mode") == "quick":
        w("")
        w("**This is a quick run (one short round): indicative only, no spread over rounds.**")
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
      f"on, access logs off and {workers} worker(s)/thread(s) (configs: `e2e/bench/peers/`). "
      f"Each round measures every target once, in an order rotated from round to round:")
    w("")
    w(f"1. saturation: `oha -z {dur}s -c {conns} --no-tui --output-format json URL` against the "
      "backend directly and through each proxy; RPS = responses with status 200 / run duration. "
      "Proxy CPU-seconds are utime+stime of the proxy's processes (`/proc/PID/stat`) across this "
      "run, per 100k responses (also across the fixed-rate run below); peak RSS is VmHWM (`/proc/PID/status`), summed over the proxy's "
      "processes, read after the run.")
    w(f"2. latency: `oha -z {dur}s -c {conns} -q RATE --latency-correction --no-tui "
      "--output-format json URL` through each proxy, RATE = 50 % of the slowest proxy's "
      "saturation RPS in that round; p50 and p99 from oha's latency percentiles.")
    w("")
    w("Ratios are pier / peer, computed within each round, then the median over rounds with "
      "min–max in parentheses. For RPS and proxied/direct above 1 means pier is better; for "
      "latency, CPU and memory below 1 means pier is better. Requests still in flight when "
      "oha's deadline hits are not counted as failures.")
    w("")
    w("Caveat: with two CPUs the load generator and the backend share CPU 0, so saturation may be "
      "limited by the client side rather than by the proxy; CPU-seconds per request is the "
      "figure that isolates the proxy's own cost.")
    w("")
    w("## Ratios pier / peer")
    w("")
    verdicts = []
    for p in peers:
        rps = (ratios[p].get("saturation_rps") or {}).get("median")
        cpu = (ratios[p].get("cpu_s_per_100k") or {}).get("median")
        if rps is None or cpu is None:
            continue
        verdicts.append(
            f"{'more' if rps > 1 else 'fewer'} requests per second than {p} ({rps:.2f}×) at "
            f"{cpu:.2f}× its CPU per request"
        )
    if verdicts:
        w("In this run pier serves " + "; ".join(verdicts) + " (medians over rounds).")
        w("")
    w("| figure | better | " + " | ".join(f"pier / {p}" for p in peers) + " |")
    w("|---|---|" + "---|" * len(peers))
    for mt in metrics:
        key = mt["key"]
        if key == "proxied_direct":  # the same ratio as saturation RPS
            continue
        w(f"| {mt['label']} | {mt['better']} | "
          + " | ".join(fmt_spread(ratios[p].get(key), key, ratio=True) for p in peers) + " |")
    w("")
    w("## Absolute figures (median over rounds, min–max in parentheses)")
    w("")
    names = [n for n in ["direct"] + ["pier"] + peers if n in summary]
    w("| figure | unit | " + " | ".join(names) + " |")
    w("|---|---|" + "---|" * len(names))
    for mt in metrics:
        key = mt["key"]
        w(f"| {mt['label']} | {mt['unit']} | "
          + " | ".join(fmt_spread(summary[n].get(key), key) for n in names) + " |")
    w("")
    w("`direct` is oha against the backend with no proxy in between (its CPU and RSS are the "
      "backend's).")
    w("")
    w("## Per round")
    w("")
    w("| round | fixed rate (req/s) | " + " | ".join(f"{n} RPS" for n in names) + " |")
    w("|---|---|" + "---|" * len(names))
    for r in d["rounds"]:
        cells = [fmt(r["targets"].get(n, {}).get("figures", {}).get("saturation_rps"), "saturation_rps")
                 for n in names]
        w(f"| {r['round']} | {r.get('fixed_rate') or '–'} | " + " | ".join(cells) + " |")
    w("")
    w("Raw oha output of the last run: `e2e/bench/results/raw/` (not committed); every figure "
      "above is in `e2e/bench/results/latest.json`.")
    w("")
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
    args = parser.parse_args()
    if args.cmd == "collect":
        collect(args)
    else:
        render(args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
