#!/usr/bin/env python3
"""bench/chart.py: draw bench/run's results as PNG charts with gnuplot.

    python3 bench/chart.py RESULTS OUTDIR

RESULTS is the results.json that bench/run writes (bench/bench.py
results-json), or a raw results.jsonl (one `bench.py parse-wrk` record per
wrk run, as kept with BENCH_KEEP_TMP=1). Writes into OUTDIR:

  <workload>.png   one bar per server: median req/s, labelled with the value;
                   a dot per round when there were several; the ratio of
                   voicebot-server to each peer in the title
  overview.png     all workloads, bars clustered per workload (log scale when
                   the figures span more than 20x)

Needs the `gnuplot` binary (Debian package gnuplot-nox); without it, prints
one line and exits 0, so that bench/run goes on. Standard library only.
"""

import json
import math
import os
import shutil
import socket
import statistics
import subprocess
import sys
import time

# Tick labels and colours, in bench/run's order; unknown servers get the
# label results.json gives them and a grey bar.
SERVER_TICKS = {
    "voicebot": "voicebot-server",
    "vb_before": "voicebot-server\\n(earlier commit)",
    "nginx_relay": "nginx relay\\n(to the provider)",
    "vb_nosync": "voicebot-server\\n--bench-no-sync\\n(relay ceiling)",
    "seed": "seed stack\\n(FastAPI + uvicorn)",
    "beast_hello": "beast_hello\\n(bare Beast)",
}
SERVER_NAMES = {  # one line, for the legend and the ratios
    "voicebot": "voicebot-server",
    "vb_before": "voicebot-server (earlier commit)",
    "nginx_relay": "nginx relay",
    "vb_nosync": "relay ceiling (--bench-no-sync)",
    "seed": "seed stack",
    "beast_hello": "beast_hello",
}
SERVER_COLOURS = {
    "voicebot": "#1f5fa8",
    "vb_before": "#9aa6b5",
    "nginx_relay": "#8c4fa0",
    "vb_nosync": "#7fb2e5",
    "seed": "#e08a1e",
    "beast_hello": "#5b9e4d",
}
ORDER = ["voicebot", "vb_before", "nginx_relay", "vb_nosync", "seed", "beast_hello"]
WORKLOAD_LABELS = {
    "health": "GET /api/health",
    "providers": "GET /api/bots/providers",
    "bots": "GET /api/bots",
    "join": "POST /api/bots/echo/join",
}
NL = "\\n"  # a line break inside a gnuplot double-quoted string
LOG_RATIO = 20.0  # log scale when the largest bar is this many times the smallest


def die(msg):
    print(f"bench/chart.py: {msg}", file=sys.stderr)
    sys.exit(1)


def load(path):
    """results.json, or a results.jsonl turned into the same shape."""
    with open(path) as f:
        text = f.read()
    try:
        doc = json.loads(text)
    except json.JSONDecodeError:
        doc = None
    if isinstance(doc, dict) and "workloads" in doc:
        return doc
    # results.jsonl: one record per line (a one-line file parses as a dict).
    runs = [json.loads(line) for line in text.splitlines() if line.strip()]
    if not runs or not all(isinstance(r, dict) and {"workload", "server", "rps"} <= r.keys() for r in runs):
        die(f"{path}: neither a results.json (bench.py results-json) nor a results.jsonl (parse-wrk records)")
    groups = {}
    for r in runs:
        groups.setdefault(r["workload"], {}).setdefault(r["server"], []).append(r)
    workloads = []
    for wl in sorted(groups, key=lambda w: (list(WORKLOAD_LABELS).index(w) if w in WORKLOAD_LABELS else 99, w)):
        servers = []
        for srv in sorted(groups[wl], key=lambda s: (ORDER.index(s) if s in ORDER else 99, s)):
            rs = groups[wl][srv]
            servers.append({
                "server": srv, "label": srv,
                "rps_median": statistics.median(r["rps"] for r in rs),
                "rps_runs": [r["rps"] for r in rs],
                "non2xx": sum(r.get("non2xx", 0) for r in rs),
                "sock_errors": sum(r.get("sock_errors", 0) for r in rs),
            })
        workloads.append({"workload": wl, "label": WORKLOAD_LABELS.get(wl, wl), "servers": servers})
    return {
        "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(os.path.getmtime(path))),
        "host": socket.gethostname(),
        "rounds": max(r.get("round", 1) for r in runs),
        "workloads": workloads,
    }


def q(s):
    """A gnuplot double-quoted string; "\\n" in s (backslash n) stays a line break."""
    return '"' + str(s).replace('"', "'") + '"'


def fmt_rps(x):
    """About three significant digits: 1,234 / 12.3 / 1.23."""
    return f"{x:,.0f}" if x >= 100 else f"{x:.1f}" if x >= 10 else f"{x:.2f}"


def fmt_short(x):
    if x >= 1e6:
        return f"{x / 1e6:.1f}M"
    if x >= 1e4:
        return f"{x / 1e3:.0f}k"
    if x >= 1e3:
        return f"{x / 1e3:.1f}k"
    return fmt_rps(x)


def fmt_ratio(r):
    return fmt_rps(r) + "x"


def subtitle(doc, dots=True):
    """Two lines: when and where; how (wrk, rounds)."""
    parts = []
    date = str(doc.get("date", ""))
    if date:
        parts.append(date[:16].replace("T", " ") + (" UTC" if date.endswith("Z") else ""))
    if doc.get("host"):
        parts.append(f"host {doc['host']}")
    if doc.get("cores"):
        parts.append(f"{doc['cores']} cores")
    if doc.get("commit"):
        parts.append(f"commit {doc['commit']}")
    how = []
    if doc.get("duration_s"):
        how.append(f"wrk -t{doc.get('wrk_threads', '?')} -c{doc.get('wrk_connections', '?')} "
                   f"-d{doc['duration_s']}s")
    if doc.get("providers"):
        how.append(f"{doc['providers']:,} providers" if isinstance(doc["providers"], int)
                   else f"{doc['providers']} providers")
    rounds = int(doc.get("rounds") or 1)
    how.append(f"median of {rounds} rounds" + (" (dots: each round)" if dots else "") if rounds > 1 else "1 round")
    return ", ".join(parts) + NL + ", ".join(how)


def y_axis(values):
    """(log?, ymin, ymax) for bars of these heights, with room for the labels."""
    pos = [v for v in values if v > 0] or [1.0]
    lo, hi = min(pos), max(pos)
    if hi / lo > LOG_RATIO:
        ymin = 10 ** math.floor(math.log10(lo) - 0.15)
        ymax = 10 ** (math.log10(hi) + 0.35)
        return True, ymin, ymax
    return False, 0.0, hi * 1.18


def preamble(out, width, height, log, ymin, ymax):
    # pngcairo when this gnuplot has it (gnuplot-nox does), else libgd's png.
    return "\n".join([
        'if (strstrt(GPVAL_TERMINALS, "pngcairo") > 0) {',
        f'  set terminal pngcairo size {width},{height} noenhanced font "Sans,11"',
        "} else {",
        f"  set terminal png size {width},{height} noenhanced",
        "}",
        f"set output {q(out)}",
        "set encoding utf8",
        "set border 3",
        "set xtics nomirror scale 0",
        "set ytics nomirror",
        "set grid ytics lc rgb '#dddddd'",
        "set style fill solid 0.9 border lc rgb '#333333'",
        "set logscale y 10" if log else "unset logscale y",
        f"set yrange [{ymin!r}:{ymax!r}]",
        "set format y '%.0s%c'" if log else "set format y '%.0f'",
        f"set ylabel {q('req/s (log scale)' if log else 'req/s')}",
        "set bmargin 5",
        "",
    ])


def colour(srv):
    return SERVER_COLOURS.get(srv, "#999999")


def problems(s):
    bad = []
    if s.get("non2xx"):
        bad.append(f"{s['non2xx']:,} non-2xx")
    if s.get("sock_errors"):
        bad.append(f"{s['sock_errors']:,} socket errors")
    return ("!! " + ", ".join(bad)) if bad else ""


def workload_script(doc, wl, out):
    servers = wl["servers"]
    log, ymin, ymax = y_axis([s["rps_median"] for s in servers] + [x for s in servers for x in s.get("rps_runs", [])])
    floor = ymin if log else 0.0
    bars, labels, warns, dots, tics = [], [], [], [], []
    for i, s in enumerate(servers):
        v = s["rps_median"]
        top = max(v, floor)
        bars.append(f"{i} {top!r} {i - 0.3} {i + 0.3} {floor!r} {top!r} 0x{colour(s['server'])[1:]}")
        runs = s.get("rps_runs") or []
        above = max([top] + [max(x, floor) for x in runs])  # the label clears the dots
        labels.append(f"{i} {above!r} {q(fmt_rps(v))}")
        if problems(s):
            warns.append(f"{i} {above!r} {q(problems(s))}")
        if len(runs) > 1:
            dots += [f"{i} {max(x, floor)!r}" for x in runs]
        tics.append(f"{q(SERVER_TICKS.get(s['server'], s.get('label') or s['server']))} {i}")
    base = next((s for s in servers if s["server"] == "voicebot"), None)
    ratios = []
    if base:
        for s in servers:
            if s is not base and s["rps_median"] > 0:
                ratios.append(f"voicebot-server / {SERVER_NAMES.get(s['server'], s['server'])}: "
                              f"{fmt_ratio(base['rps_median'] / s['rps_median'])}")
    title = f"{wl['workload']}: {wl.get('label') or wl['workload']}, req/s (higher is better)"
    lines = [title] + (["   ".join(ratios)] if ratios else []) + [subtitle(doc)]
    n = len(servers)
    g = [preamble(out, 900, 620, log, ymin, ymax),
         f"set title {q(NL.join(lines))}",
         f"set xrange [-0.6:{n - 0.4}]",
         "set xtics (" + ", ".join(tics) + ")",
         "unset key",
         "$bars << EOD", *bars, "EOD",
         "$labels << EOD", *labels, "EOD"]
    if warns:
        g += ["$warns << EOD", *warns, "EOD"]
    if dots:
        g += ["$dots << EOD", *dots, "EOD"]
    plot = ["$bars using 1:2:3:4:5:6:7 with boxxyerror lc rgb variable",
            "$labels using 1:2:3 with labels center offset 0,1.0 font ',11'"]
    if warns:  # non-2xx answers or socket errors: in red above the value
        plot.append("$warns using 1:2:3 with labels center offset 0,2.1 font ',10' tc rgb '#c00000'")
    if dots:
        plot.append("$dots using 1:2 with points pt 7 ps 0.9 lc rgb '#222222'")
    g.append("plot " + ", \\\n     ".join(plot))
    return "\n".join(g) + "\n"


def overview_script(doc, out):
    wls = doc["workloads"]
    values = [s["rps_median"] for wl in wls for s in wl["servers"]]
    log, ymin, ymax = y_axis(values)
    floor = ymin if log else 0.0
    width = 0.8
    bars, labels, tics = [], [], []
    seen = []
    for i, wl in enumerate(wls):
        k = len(wl["servers"])
        w = width / max(k, 1)
        for j, s in enumerate(wl["servers"]):
            x = i - width / 2 + w * (j + 0.5)
            v = s["rps_median"]
            top = max(v, floor)
            bars.append(f"{x!r} {top!r} {x - w * 0.45!r} {x + w * 0.45!r} {floor!r} {top!r} "
                        f"0x{colour(s['server'])[1:]}")
            labels.append(f"{x!r} {top!r} {q(fmt_short(v) + (' !!' if problems(s) else ''))}")
            if s["server"] not in seen:
                seen.append(s["server"])
        tics.append(f"{q(wl['workload'])} {i}")  # the full labels are on each workload's chart
    seen.sort(key=lambda srv: ORDER.index(srv) if srv in ORDER else len(ORDER))
    keys = [f"NaN with boxes lc rgb {q(colour(srv))} title {q(SERVER_NAMES.get(srv, srv))}" for srv in seen]
    title = "bench/run: req/s per workload (higher is better)" + NL + subtitle(doc, dots=False)
    g = [preamble(out, 1200, 680, log, ymin, ymax),
         f"set title {q(title)}",
         f"set xrange [-0.6:{len(wls) - 0.4}]",
         "set xtics (" + ", ".join(tics) + ")",
         "set key outside bottom center horizontal maxcols 4 samplen 2 reverse Left width -2",
         "set bmargin 7",
         "$bars << EOD", *bars, "EOD",
         "$labels << EOD", *labels, "EOD",
         "plot " + ", \\\n     ".join(
             ["$bars using 1:2:3:4:5:6:7 with boxxyerror lc rgb variable notitle",
              "$labels using 1:2:3 with labels center offset 0,0.8 font ',9' notitle"] + keys)]
    return "\n".join(g) + "\n"


def run_gnuplot(gnuplot, script, what):
    p = subprocess.run([gnuplot], input=script, text=True, capture_output=True)
    warn = "\n".join(l for l in p.stderr.splitlines() if l.strip())
    if p.returncode != 0:
        die(f"gnuplot failed on {what} (status {p.returncode}):\n{warn}")
    if warn:
        print(f"bench/chart.py: gnuplot on {what}: {warn}", file=sys.stderr)


def main(argv):
    if argv[:1] in (["-h"], ["--help"]):
        print(__doc__.strip())
        return 0
    if len(argv) != 2:
        print(__doc__.strip(), file=sys.stderr)
        return 2
    results, outdir = argv
    doc = load(results)
    if not doc["workloads"]:
        die(f"{results}: no workloads")
    gnuplot = os.environ.get("GNUPLOT") or shutil.which("gnuplot")
    if not gnuplot:
        print("bench/chart.py: gnuplot not found (Debian package gnuplot-nox): no PNG charts drawn")
        return 0
    os.makedirs(outdir, exist_ok=True)
    written = []
    for wl in doc["workloads"]:
        name = "".join(c if c.isalnum() or c in "-_." else "_" for c in wl["workload"])
        out = os.path.join(outdir, f"{name}.png")
        run_gnuplot(gnuplot, workload_script(doc, wl, out), out)
        written.append(out)
    out = os.path.join(outdir, "overview.png")
    run_gnuplot(gnuplot, overview_script(doc, out), out)
    written.append(out)
    for out in written:
        if not os.path.isfile(out) or os.path.getsize(out) == 0:
            die(f"gnuplot wrote no {out}")
    print(f"bench/chart.py: wrote {', '.join(written)}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
