#!/usr/bin/env python3
"""Helpers for bench/run (standard library only).

Subcommands:
  freeport                      print a free loopback TCP port
  wait URL [SECONDS]            wait until GET URL answers (any HTTP status)
  settle URL [SECONDS]          wait until GET URL answers quickly twice in a
                                row (a server still working off a backlog of
                                abandoned requests would skew the next run)
  seed BASE N [--echo URL] [--threads T] [--lobby NAME]
                                register N providers (2 bots each) plus the
                                "echo" provider, create the lobby, check the
                                catalog; prints one JSON line with lobby_id
  lobby BASE NAME               create a lobby, print its id
  etag URL                      print the ETag of a GET of URL
  check METHOD URL [BODY]       one request; exits 1 unless the answer is 2xx;
                                prints the status and the start of the body
  count-members BASE LOBBY_ID   print the number of bot sessions in a lobby
  stats URL                     print the fast provider's join counter
  parse-wrk FILE ROUND SERVER WORKLOAD
                                turn the BENCH_RESULT line of a wrk run into
                                one JSON record
  journal-metrics BASE          print the lobbies journal's counters from
                                /metrics as one JSON object
  journal-delta JSON0 JSON1     describe the change between two of those
                                (records per batch, append time, compactions)
  proc-sample PID               print a process's CPU ticks and context switches,
                                per thread, as one JSON object
  proc-delta JSON0 JSON1 N      describe the CPU and context switches between
                                two samples, per request of N
  report RESULTS_JSONL ROUNDS   print the table, the ratios and the verdicts
  results-json RESULTS_JSONL ROUNDS OUT [KEY=VALUE...]
                                write OUT (results.json, what bench/chart.py
                                draws): per workload and server the median
                                and per-round req/s, p50, p99, errors, plus
                                the raw records and KEY=VALUE details
"""

import http.client
import json
import os
import socket
import statistics
import sys
import threading
import time
import urllib.parse


def freeport():
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    print(port)


def request(url, method="GET", body=None, timeout=30.0, conn=None):
    """One request; returns (status, body bytes). Reuses `conn` if given."""
    u = urllib.parse.urlsplit(url)
    own = conn is None
    if own:
        conn = http.client.HTTPConnection(u.hostname, u.port, timeout=timeout)
    path = u.path or "/"
    if u.query:
        path += "?" + u.query
    headers = {}
    data = None
    if body is not None:
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
        headers["Content-Type"] = "application/json"
    try:
        conn.request(method, path, body=data, headers=headers)
        resp = conn.getresponse()
        return resp.status, resp.read()
    finally:
        if own:
            conn.close()


def wait(url, seconds=30.0):
    deadline = time.monotonic() + float(seconds)
    last = None
    while time.monotonic() < deadline:
        try:
            request(url, timeout=2.0)
            return 0
        except OSError as e:  # refused, reset, timeout
            last = e
            time.sleep(0.1)
    print(f"bench: {url} did not answer within {seconds} s ({last})", file=sys.stderr)
    return 1


def settle(url, seconds=180.0):
    deadline = time.monotonic() + float(seconds)
    quick = 0
    while time.monotonic() < deadline:
        t0 = time.monotonic()
        try:
            request(url, timeout=60.0)
            ok = True
        except OSError:
            ok = False
        dt = time.monotonic() - t0
        quick = quick + 1 if ok and dt < 0.05 else 0
        if quick >= 2:
            return 0
        time.sleep(0.2)
    print(f"bench: {url} still slow after {seconds} s", file=sys.stderr)
    return 1


def seed(base, n, echo_url=None, threads=8, lobby_name="bench"):
    base = base.rstrip("/")
    u = urllib.parse.urlsplit(base)
    failures = []
    done = [0]
    lock = threading.Lock()
    started = time.monotonic()

    def register(conn, i, name, base_url, bots):
        body = {
            "name": name,
            "base_url": base_url,
            "description": f"benchmark provider {i}",
            "bots": bots,
        }
        status, data = request(base + "/api/bots/providers/register", "POST", body, conn=conn)
        if status != 200:
            raise RuntimeError(f"register {name}: HTTP {status} {data[:200]!r}")
        return json.loads(data)["provider_id"]

    # The echo provider first: the seed stack's join scans providers in
    # registration order, so this is the seed's most favourable case.
    echo_id = None
    if echo_url:
        conn = http.client.HTTPConnection(u.hostname, u.port, timeout=120)
        echo_id = register(conn, "echo", "bench-fast-provider", echo_url,
                           [{"name": "echo", "description": "repeats lobby chat (bench)"}])
        conn.close()

    def worker(indices):
        conn = http.client.HTTPConnection(u.hostname, u.port, timeout=120)
        try:
            for i in indices:
                bots = [
                    {"name": f"bot-{i}-a", "description": f"benchmark bot {i} a"},
                    {"name": f"bot-{i}-b", "description": f"benchmark bot {i} b"},
                ]
                try:
                    register(conn, i, f"bench-provider-{i}", f"http://127.0.0.1:9/p{i}", bots)
                except (OSError, RuntimeError, http.client.HTTPException) as e:
                    with lock:
                        failures.append(str(e))
                    conn.close()
                    conn = http.client.HTTPConnection(u.hostname, u.port, timeout=120)
                with lock:
                    done[0] += 1
                    if done[0] % 100 == 0:
                        rate = done[0] / (time.monotonic() - started)
                        print(f"  seeded {done[0]}/{n} providers ({rate:.0f}/s)",
                              file=sys.stderr, flush=True)
        finally:
            conn.close()

    ts = [threading.Thread(target=worker, args=(range(k, n, threads),)) for k in range(threads)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    if failures:
        print(f"bench: {len(failures)} registrations failed, first: {failures[0]}", file=sys.stderr)
        return 1
    elapsed = time.monotonic() - started

    lobby_id = lobby(base, lobby_name)

    # Check the catalog is complete.
    status, data = request(base + "/api/bots", timeout=120)
    if status != 200:
        print(f"bench: GET /api/bots: HTTP {status}", file=sys.stderr)
        return 1
    doc = json.loads(data)
    expected = 2 * n + (1 if echo_url else 0)
    if len(doc["bots"]) != expected or (echo_url and "echo" not in doc["providers"]):
        print(f"bench: catalog has {len(doc['bots'])} bots, expected {expected}", file=sys.stderr)
        return 1
    print(json.dumps({"lobby_id": lobby_id, "echo_provider_id": echo_id,
                      "providers": n + (1 if echo_url else 0), "bots": len(doc["bots"]),
                      "seconds": round(elapsed, 1)}))
    return 0


def lobby(base, name):
    status, data = request(base.rstrip("/") + "/api/lobby", "POST", {"name": name})
    if status not in (200, 201):
        raise SystemExit(f"bench: POST /api/lobby: HTTP {status} {data[:200]!r}")
    return json.loads(data)["id"]


def check(method, url, body=None):
    try:
        status, data = request(url, method, body.encode() if body else None, timeout=60)
    except OSError as e:
        print(f"bench: {method} {url}: {e}", file=sys.stderr)
        return 1
    text = data[:160].decode("utf-8", "replace")
    if not 200 <= status < 300:
        print(f"bench: {method} {url}: HTTP {status} {text}", file=sys.stderr)
        return 1
    return 0


def etag(url):
    """Prints the ETag of a GET of `url` (the validator the 304 workloads
    send back); exits 1 when there is none."""
    import urllib.request
    with urllib.request.urlopen(url, timeout=60) as res:
        tag = res.headers.get("ETag")
    if not tag:
        print(f"bench: GET {url}: no ETag", file=sys.stderr)
        return 1
    print(tag)
    return 0


def count_members(base, lobby_id):
    status, data = request(f"{base.rstrip('/')}/api/lobby/{lobby_id}", timeout=120)
    if status != 200:
        print(-1)
        return 1
    sessions = json.loads(data).get("sessions", [])
    print(sum(1 for s in sessions if s.get("is_bot")))
    return 0


def stats(url):
    status, data = request(url)
    print(json.loads(data)["joins"] if status == 200 else -1)
    return 0


JOURNAL_KEYS = {
    "appends": 'voicebot_journal_appends_total{file="lobbies.json"}',
    "records": 'voicebot_journal_records_total{file="lobbies.json"}',
    "sync_sum": 'voicebot_journal_append_duration_seconds_sum{file="lobbies.json"}',
    "sync_count": 'voicebot_journal_append_duration_seconds_count{file="lobbies.json"}',
    "compactions": 'voicebot_journal_compactions_total{file="lobbies.json"}',
}


def journal_metrics(base):
    status, data = request(base.rstrip("/") + "/metrics", timeout=60)
    values = {}
    if status == 200:
        for line in data.decode("utf-8", "replace").splitlines():
            key, _, val = line.rpartition(" ")
            values[key] = val
    out = {}
    for name, key in JOURNAL_KEYS.items():
        try:
            out[name] = float(values.get(key, "nan"))
        except ValueError:
            out[name] = float("nan")
    print(json.dumps(out))
    return 0


def journal_delta(a, b):
    a, b = json.loads(a), json.loads(b)
    d = {k: b[k] - a[k] for k in JOURNAL_KEYS}
    per = d["records"] / d["appends"] if d["appends"] > 0 else 0.0
    mean = 1000 * d["sync_sum"] / d["sync_count"] if d["sync_count"] > 0 else 0.0
    print(f"{d['records']:,.0f} records in {d['appends']:,.0f} appends ({per:.1f} per batch), "
          f"append (write + fdatasync) mean {mean:.3f} ms, {d['compactions']:.0f} compactions")
    return 0


def proc_sample(pid):
    threads = {}
    ctx = 0
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            with open(f"/proc/{pid}/task/{tid}/stat") as f:
                st = f.read()
            with open(f"/proc/{pid}/task/{tid}/status") as f:
                for line in f:
                    if line.startswith(("voluntary_ctxt_switches:", "nonvoluntary_ctxt_switches:")):
                        ctx += int(line.split()[1])
        except OSError:
            continue
        fields = st.rsplit(")", 1)[1].split()
        threads[tid] = [st[st.index("(") + 1:st.rindex(")")], int(fields[11]) + int(fields[12])]
    print(json.dumps({"t": time.monotonic(), "ctx": ctx, "threads": threads}))
    return 0


def proc_delta(a, b, n):
    a, b, n = json.loads(a), json.loads(b), int(n)
    tick = os.sysconf("SC_CLK_TCK")
    dt = b["t"] - a["t"]
    used = {tid: ticks - a["threads"].get(tid, [name, 0])[1] for tid, (name, ticks) in b["threads"].items()}
    total = sum(used.values())
    top = sorted(used.items(), key=lambda kv: -kv[1])[:5]
    pct = lambda t: 100.0 * t / tick / dt if dt > 0 else 0.0
    per = f"; {1e6 * total / tick / n:.0f} us CPU and {(b['ctx'] - a['ctx']) / n:.1f} context switches per request" if n else ""
    print(f"server CPU {pct(total):.0f}% of one core over {dt:.1f} s ("
          + ", ".join(f"{b['threads'][t][0]}/{t} {pct(c):.0f}%" for t, c in top if c > 0) + ")" + per)
    return 0


def parse_wrk(path, round_no="1", server="", workload=""):
    fields = None
    with open(path, errors="replace") as f:
        for line in f:
            if line.startswith("BENCH_RESULT "):
                fields = dict(kv.split("=", 1) for kv in line.split()[1:])
    if fields is None:
        print("{}")
        return 1
    requests = int(fields["requests"])
    duration_s = int(fields["duration_us"]) / 1e6
    out = {
        "round": int(round_no),
        "server": server,
        "workload": workload,
        "requests": requests,
        "rps": requests / duration_s if duration_s > 0 else 0.0,
        "p50_ms": float(fields["p50_us"]) / 1000.0,
        "p99_ms": float(fields["p99_us"]) / 1000.0,
        "non2xx": int(fields["status_errors"]),
        "sock_errors": sum(int(fields[k]) for k in ("connect", "read", "write", "timeout")),
        "timeouts": int(fields["timeout"]),
        # What wrk read per answer, headers included (the bytes a poller pays).
        "bytes_per_answer": int(fields.get("bytes", 0)) / requests if requests else 0.0,
    }
    print(json.dumps(out))
    return 0


WORKLOADS = [
    ("health", "GET /api/health"),
    ("providers", "GET /api/bots/providers"),
    ("bots", "GET /api/bots"),
    # The polled listings revalidated (If-None-Match with the current ETag:
    # 304) and compressed (Accept-Encoding: gzip), voicebot-server only.
    ("providers_304", "GET /api/bots/providers, If-None-Match (304)"),
    ("providers_gz", "GET /api/bots/providers, Accept-Encoding: gzip"),
    ("bots_304", "GET /api/bots, If-None-Match (304)"),
    ("bots_gz", "GET /api/bots, Accept-Encoding: gzip"),
    ("join", "POST /api/bots/echo/join"),
]
SERVERS = ["voicebot", "vb_before", "nginx_relay", "vb_nosync", "seed", "beast_hello"]
SERVER_LABELS = {"vb_nosync": "voicebot --bench-no-sync (relay ceiling)",
                 "vb_before": "voicebot (earlier commit, BENCH_BEFORE)",
                 "nginx_relay": "nginx relay to the fast provider"}
TARGETS = [  # (workload, numerator, denominator, target)
    ("providers", "voicebot", "seed", 300.0),
    ("bots", "voicebot", "seed", 300.0),
    ("join", "voicebot", "seed", 10.0),
    ("join", "voicebot", "nginx_relay", 0.7),
    ("health", "voicebot", "beast_hello", 0.9),
]


def fmt_ms(ms):
    if ms >= 1000:
        return f"{ms / 1000:.2f} s"
    if ms >= 10:
        return f"{ms:.1f} ms"
    return f"{ms:.2f} ms"


def read_results(path):
    """The records of a results.jsonl (one parse-wrk line per wrk run) and
    their medians per (workload, server)."""
    runs = []
    rows = {}
    with open(path) as f:
        for line in f:
            if not line.strip():
                continue
            r = json.loads(line)
            runs.append(r)
            rows.setdefault((r["workload"], r["server"]), []).append(r)
    med = {}
    for key, rs in rows.items():
        med[key] = {
            "rps": statistics.median(r["rps"] for r in rs),
            "p50_ms": statistics.median(r["p50_ms"] for r in rs),
            "p99_ms": statistics.median(r["p99_ms"] for r in rs),
            "non2xx": sum(r["non2xx"] for r in rs),
            "sock_errors": sum(r["sock_errors"] for r in rs),
            "requests": sum(r["requests"] for r in rs),
            "n": len(rs),
            "all_rps": [r["rps"] for r in rs],
            "bytes_per_answer": statistics.median(r.get("bytes_per_answer", 0.0) for r in rs),
        }
    return runs, med


def results_json(path, rounds, out, *meta):
    """Write results.json (what bench/chart.py draws): the run's details,
    per workload and server the medians and each round's req/s, and the raw
    parse-wrk records. META: key=value pairs added to the top level."""
    runs, med = read_results(path)
    doc = {
        "format": "voicebot-bench-results/1",
        "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "host": socket.gethostname(),
        "rounds": int(rounds),
    }
    for kv in meta:
        k, _, v = kv.partition("=")
        doc[k] = int(v) if v.isdigit() and k != "commit" else v
    workloads = []
    for wl, label in WORKLOADS + [(w, w) for w in sorted({w for w, _ in med}) if w not in dict(WORKLOADS)]:
        servers = []
        for srv in SERVERS + sorted({s for w, s in med if w == wl and s not in SERVERS}):
            m = med.get((wl, srv))
            if m is None:
                continue
            servers.append({
                "server": srv, "label": SERVER_LABELS.get(srv, srv),
                "rps_median": m["rps"], "rps_runs": m["all_rps"],
                "p50_ms_median": m["p50_ms"], "p99_ms_median": m["p99_ms"],
                "non2xx": m["non2xx"], "sock_errors": m["sock_errors"], "requests": m["requests"],
                "bytes_per_answer": m["bytes_per_answer"],
            })
        if servers:
            workloads.append({"workload": wl, "label": label, "servers": servers})
    doc["workloads"] = workloads
    doc["runs"] = runs
    tmp = out + ".tmp"
    with open(tmp, "w") as f:
        json.dump(doc, f, indent=1)
        f.write("\n")
    os.replace(tmp, out)
    return 0


def report(path, rounds):
    _, med = read_results(path)
    rounds = int(rounds)
    print()
    if rounds > 1:
        print(f"Results: medians of {rounds} interleaved rounds (req/s, p50, p99); "
              "non-2xx, socket errors and requests summed over the rounds")
    else:
        print("Results (1 round)")
    header = ["workload", "server", "req/s", "p50", "p99", "non-2xx", "sock err", "requests",
              "bytes/answer"]
    if rounds > 1:
        header.append("req/s per round")
    table = [header]
    for wl, label in WORKLOADS:
        for srv in SERVERS:
            m = med.get((wl, srv))
            if m is None:
                continue
            row = [label, SERVER_LABELS.get(srv, srv), f"{m['rps']:,.1f}" if m["rps"] < 100 else f"{m['rps']:,.0f}",
                   fmt_ms(m["p50_ms"]), fmt_ms(m["p99_ms"]), str(m["non2xx"]),
                   str(m["sock_errors"]), f"{m['requests']:,}",
                   f"{m['bytes_per_answer']:,.0f}"]
            if rounds > 1:
                row.append(" ".join(f"{x:,.0f}" if x >= 100 else f"{x:.1f}" for x in m["all_rps"]))
            table.append(row)
    widths = [max(len(r[i]) for r in table) for i in range(len(header))]
    right = {2, 3, 4, 5, 6, 7, 8}
    for k, r in enumerate(table):
        cells = [c.rjust(widths[i]) if i in right else c.ljust(widths[i]) for i, c in enumerate(r)]
        print("| " + " | ".join(cells) + " |")
        if k == 0:
            print("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    print()
    print("Targets (ratio of median req/s):")
    all_pass = True
    for wl, num, den, target in TARGETS:
        a, b = med.get((wl, num)), med.get((wl, den))
        if a is None or b is None or b["rps"] <= 0:
            print(f"  {wl:<9} {num + '/' + den:<21} n/a (missing run)  MISS")
            all_pass = False
            continue
        ratio = a["rps"] / b["rps"]
        ok = ratio >= target and a["non2xx"] == 0 and a["sock_errors"] == 0
        all_pass &= ok
        note = "" if a["non2xx"] == 0 and a["sock_errors"] == 0 else \
            f"  ({num} had {a['non2xx']} non-2xx, {a['sock_errors']} socket errors)"
        ratio_s = f"{ratio:,.1f}x" if ratio >= 10 else f"{ratio:.3f}x"
        print(f"  {wl:<9} {num + '/' + den:<21} {ratio_s:>8}  (target >= {target:g}x)  "
              f"{'PASS' if ok else 'MISS'}{note}")
    # The relay ceiling: how far the durable join is from the same server
    # with fdatasync off (not a target; it shows the distance to the limit).
    # The same workloads on an earlier commit's binary: informational, when
    # run (BENCH_BEFORE).
    a = med.get(("join", "voicebot"))
    for other, what in (("vb_before", "voicebot/before"),):
        b = med.get(("join", other))
        if a and b and b["rps"] > 0:
            print(f"  {'join':<9} {what:<21} {a['rps'] / b['rps']:>7.3f}x  "
                  f"(informational: {a['rps']:,.0f} vs {b['rps']:,.0f} req/s)")
    if a:
        for wl in ("providers", "bots"):
            x, b = med.get((wl, "voicebot")), med.get((wl, "vb_before"))
            if x and b and b["rps"] > 0:
                print(f"  {wl:<9} {'voicebot/before':<21} {x['rps'] / b['rps']:>7.3f}x  "
                      f"(informational: {x['rps']:,.0f} vs {b['rps']:,.0f} req/s)")
    a, c, sd = med.get(("join", "voicebot")), med.get(("join", "vb_nosync")), med.get(("join", "seed"))
    if a and c and c["rps"] > 0:
        print(f"  {'join':<9} {'voicebot/relay ceiling':<21} {a['rps'] / c['rps']:>7.3f}x  "
              f"(informational: durable {a['rps']:,.0f} vs --bench-no-sync {c['rps']:,.0f} req/s)")
        if sd and sd["rps"] > 0:
            print(f"  {'join':<9} {'ceiling/seed':<21} {c['rps'] / sd['rps']:>7.1f}x  "
                  f"(informational: the most the relay reaches on this machine without fdatasync)")
    print()
    print("ALL TARGETS PASS" if all_pass else "SOME TARGETS MISS")
    return 0


def main(argv):
    if not argv:
        print(__doc__)
        return 2
    cmd, args = argv[0], argv[1:]
    if cmd == "freeport":
        freeport()
        return 0
    if cmd == "seed":
        base, n = args[0], int(args[1])
        opts = {"echo_url": None, "threads": 8, "lobby_name": "bench"}
        rest = args[2:]
        while rest:
            k, v, rest = rest[0], rest[1], rest[2:]
            if k == "--echo":
                opts["echo_url"] = v
            elif k == "--threads":
                opts["threads"] = int(v)
            elif k == "--lobby":
                opts["lobby_name"] = v
            else:
                print(f"bench: unknown option {k}", file=sys.stderr)
                return 2
        return seed(base, n, **opts)
    if cmd == "lobby":
        print(lobby(args[0], args[1]))
        return 0
    if cmd in COMMANDS:
        return COMMANDS[cmd](*args)
    print(__doc__)
    return 2


# The commands that take their arguments as they are.
COMMANDS = {
    "wait": wait,
    "settle": settle,
    "etag": etag,
    "check": check,
    "count-members": count_members,
    "stats": stats,
    "proc-sample": proc_sample,
    "proc-delta": proc_delta,
    "journal-metrics": journal_metrics,
    "journal-delta": journal_delta,
    "parse-wrk": parse_wrk,
    "report": report,
    "results-json": results_json,
}


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
