#!/usr/bin/env python3
"""Join throughput and latency: 3 cluster instances (3 etcd members) against
1 embedded instance (no etcd), in one run, same client count (issue 14 part 9).

Each client is a thread with one keep-alive connection to one instance
(client i -> instance i mod 3 in the cluster), doing joins back to back for
--seconds, with distinct nicks so every join is a new member (spread over
--lobbies lobbies, below --max-members-per-lobby). The provider is
bench/fast_provider.cpp (compiled with g++ into the temp dir: the same tool
bench/run uses), so the provider is not what is measured; `--provider python`
uses the in-process harness.FakeProvider instead, to see what it costs.
The CPU each process used (from /proc) is printed, the client's own too: a
Python client near 100 % of one core is the bottleneck, not the server.

Python standard library only. Run: python3 bench/cluster/throughput.py
(`--help` for the knobs). Prints a table on stderr and JSON on stdout."""

import argparse
import http.client
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.normpath(os.path.join(HERE, "..", ".."))
sys.path.insert(0, os.path.join(REPO, "tests", "integration"))

from etcd_cluster import ETCD, EtcdCluster, b64  # noqa: E402
from harness import NO_QUOTAS, FakeProvider, Server  # noqa: E402

PREFIX = "/vbbench/"
TICK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / TICK
    except (OSError, IndexError, ValueError):
        return 0.0


class FastProvider:
    def __init__(self, workdir):
        src = os.path.join(REPO, "bench", "fast_provider.cpp")
        exe = os.path.join(workdir, "fast_provider")
        subprocess.run(["g++", "-O2", "-std=c++17", "-pthread", src, "-o", exe], check=True)
        self.proc = subprocess.Popen([exe, "0"], stdout=subprocess.PIPE, text=True)
        line = self.proc.stdout.readline()
        self.port = int(line.strip().rsplit(":", 1)[1])
        self.base_url = f"http://127.0.0.1:{self.port}"
        self.pid = self.proc.pid

    def close(self):
        self.proc.kill()
        self.proc.wait()


def request(conn, method, path, body):
    conn.request(method, path, body=json.dumps(body), headers={"Content-Type": "application/json"})
    res = conn.getresponse()
    raw = res.read()
    return res.status, raw


def setup(servers, provider, lobbies):
    """Registers the provider and creates the lobbies on the first
    instance; waits until every instance knows them."""
    s0 = servers[0]
    status, _, res = s0.request("POST", "/api/bots/providers/register",
                                {"name": "bench", "base_url": provider.base_url,
                                 "bots": [{"name": "echo", "description": "echo"}]})
    assert status == 200, (status, res)
    pid = res["provider_id"]
    ids = []
    for i in range(lobbies):
        status, _, res = s0.request("POST", "/api/lobby", {"name": f"bench-{i}"})
        assert status in (200, 201), (status, res)
        ids.append(res["id"])
    deadline = time.monotonic() + 30
    for s in servers:
        while True:
            st, _, body = s.request("GET", "/api/bots/providers")
            st2, _, lob = s.request("GET", "/api/lobby")
            known = {l["id"] for l in lob.get("lobbies", [])} if st2 == 200 else set()
            if st == 200 and any(p["provider_id"] == pid for p in body["providers"]) \
                    and set(ids) <= known:
                break
            if time.monotonic() > deadline:
                raise RuntimeError(f"instance on :{s.port} does not know the setup")
            time.sleep(0.1)
    return ids


def drive(connect, op, clients, seconds, warmup):
    """`clients` threads, each with its own keep-alive connection
    (`connect(i)`), doing `op(conn, i, k)` (its HTTP status) back to back
    for warmup + seconds; the latencies and counts of the measured part."""
    lat = [[] for _ in range(clients)]
    errors = [dict() for _ in range(clients)]
    start = time.monotonic() + 0.2
    measure_from = start + warmup
    stop_at = measure_from + seconds

    def client(i):
        conn = connect(i)
        k = 0
        while time.monotonic() < start:
            time.sleep(0.001)
        while True:
            t = time.monotonic()
            if t >= stop_at:
                break
            k += 1
            try:
                status = op(conn, i, k)
            except (OSError, http.client.HTTPException) as e:
                status = type(e).__name__
                conn.close()
                conn = connect(i)
            end = time.monotonic()
            if t >= measure_from:
                if status == 200:
                    lat[i].append(end - t)
                else:
                    errors[i][str(status)] = errors[i].get(str(status), 0) + 1
        conn.close()

    threads = [threading.Thread(target=client, args=(i,)) for i in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    all_lat = sorted(x for l in lat for x in l)
    errs = {}
    for e in errors:
        for k, v in e.items():
            errs[k] = errs.get(k, 0) + v
    n = len(all_lat)
    return {
        "ops": n,
        "ops_per_s": round(n / seconds, 1),
        "median_ms": round(statistics.median(all_lat) * 1000, 2) if n else None,
        "p99_ms": round(all_lat[min(n - 1, int(n * 0.99))] * 1000, 2) if n else None,
        "max_ms": round(all_lat[-1] * 1000, 2) if n else None,
        "errors": errs,
    }


def joins(servers, lobby_ids, clients, seconds, warmup, tag):
    """Joins of distinct nicks; client i on instance i mod len(servers)."""
    def connect(i):
        return http.client.HTTPConnection("127.0.0.1", servers[i % len(servers)].port,
                                          timeout=10)

    def op(conn, i, k):
        lid = lobby_ids[(k * clients + i) % len(lobby_ids)]
        return request(conn, "POST", "/api/bots/echo/join",
                       {"lobby_id": lid, "nick": f"{tag}{clients}-c{i}-{k}"})[0]
    return drive(connect, op, clients, seconds, warmup)


def etcd_puts(etcd, clients, seconds, warmup):
    """What etcd alone does: durable puts of distinct keys (~ a member's
    size) through the same JSON gateway, by a plain client; client i on
    member i mod 3."""
    token = None
    if etcd.secure:
        etcd.call("/v3/kv/range", {"key": b64(PREFIX)})  # authenticates
        token = etcd.token
    value = b64(json.dumps({"session_id": "x" * 36, "bot_name": "echo", "nick": "n" * 12,
                            "run_id": "r" * 36, "provider_id": "p" * 36}))

    def connect(i):
        url = etcd.members[i % len(etcd.members)].client_url
        host, port = url.split("//")[1].rsplit(":", 1)
        if etcd.secure:
            return http.client.HTTPSConnection(host, int(port), timeout=10,
                                               context=etcd.context)
        return http.client.HTTPConnection(host, int(port), timeout=10)

    def op(conn, i, k):
        headers = {"Content-Type": "application/json"}
        if token:
            headers["Authorization"] = token
        conn.request("POST", "/v3/kv/put", headers=headers, body=json.dumps(
            {"key": b64(f"{PREFIX}alone/{clients}/{i}/{k}"), "value": value}))
        res = conn.getresponse()
        res.read()
        return res.status
    return drive(connect, op, clients, seconds, warmup)


def measured(procs, fn):
    """Runs fn(); returns (its result, CPU % of each named process and of
    this Python client during it)."""
    before = {name: cpu_seconds(pid) for name, pid in procs.items()}
    c0 = time.process_time()
    t0 = time.monotonic()
    result = fn()
    wall = time.monotonic() - t0
    cpu = {name: round(100 * (cpu_seconds(pid) - before[name]) / wall, 1)
           for name, pid in procs.items()}
    cpu["python client"] = round(100 * (time.process_time() - c0) / wall, 1)
    return result, cpu


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--clients", default="24,64,256",
                    help="concurrent clients, a comma list: each setup runs each (24,64,256)")
    ap.add_argument("--seconds", type=float, default=15, help="measured seconds per setup (15)")
    ap.add_argument("--warmup", type=float, default=2, help="seconds not measured first (2)")
    ap.add_argument("--lobbies", type=int, default=256,
                    help="lobbies the joins spread over (256)")
    ap.add_argument("--ttl", type=int, default=10, help="--instance-ttl of the instances (10)")
    ap.add_argument("--provider", choices=("fast", "python"), default="fast")
    ap.add_argument("--keep", action="store_true")
    ap.add_argument("--etcd-tls", action="store_true",
                    help="etcd with TLS both ways, client certificates and a user "
                         "(docs/security.md); default plain")
    opts = ap.parse_args(argv)
    if not ETCD:
        sys.exit("etcd is not installed (Debian's etcd-server)")
    counts = [int(c) for c in opts.clients.split(",")]
    workdir = tempfile.mkdtemp(prefix="vb-cluster-bench-")
    # Every join comes from this one loopback client: no per-client quotas,
    # and room for 256 connections from one address.
    common = ["--max-members-per-lobby", "100000", *NO_QUOTAS,
              "--max-connections-per-address", "1000"]
    results = {"clients": counts, "seconds": opts.seconds, "provider": opts.provider,
               "etcd": "TLS and auth" if opts.etcd_tls else "plain",
               "cores": os.cpu_count(), "loadavg_before": os.getloadavg()[0], "setups": {}}
    cleanup = []
    try:
        provider = FastProvider(workdir) if opts.provider == "fast" else FakeProvider(("echo",))
        cleanup.append(provider.close)
        prov_proc = {"provider": provider.pid} if opts.provider == "fast" else {}

        # 1 embedded instance (its journal is durable: fdatasync per batch).
        emb = Server(workdir, ["--data-dir", os.path.join(workdir, "embedded")] + common)
        cleanup.append(emb.kill)
        emb.start(timeout=60)
        ids = setup([emb], provider, opts.lobbies)
        for c in counts:
            r, cpu = measured({"voicebot-server": emb.proc.pid, **prov_proc},
                              lambda: joins([emb], ids, c, opts.seconds, opts.warmup, "e"))
            r["cpu_percent"] = cpu
            results["setups"][f"1 embedded, {c} clients"] = r
        emb.kill()

        # 3 cluster instances on 3 etcd members.
        etcd = EtcdCluster(os.path.join(workdir, "etcd"), secure=opts.etcd_tls,
                           prefix=PREFIX).start(timeout=60)
        cleanup.append(etcd.stop)
        servers = []
        for i in range(3):
            s = Server(workdir, ["--data-dir", os.path.join(workdir, f"i{i}"),
                                 *etcd.server_args(),
                                 "--instance-ttl", str(opts.ttl), "--cluster-port", "0"] + common)
            cleanup.append(s.kill)
            s.start(timeout=60)
            servers.append(s)
        ids = setup(servers, provider, opts.lobbies)
        procs = {f"instance {i}": s.proc.pid for i, s in enumerate(servers)}
        procs.update({f"etcd {m.name}": m.proc.pid for m in etcd.members})
        procs.update(prov_proc)
        for c in counts:
            r, cpu = measured(procs, lambda: joins(servers, ids, c, opts.seconds,
                                                   opts.warmup, "c"))
            r["cpu_percent"] = cpu
            results["setups"][f"3 cluster, {c} clients"] = r
        members = len([k for k in etcd.range_prefix(PREFIX + "lobbies/") if k.count("/") >= 4])
        results["etcd_members_after"] = members

        # etcd alone: the same three members, a plain client's durable puts
        # (the instances idle meanwhile).
        etcd_procs = {f"etcd {m.name}": m.proc.pid for m in etcd.members}
        for c in counts:
            r, cpu = measured(etcd_procs, lambda: etcd_puts(etcd, c, opts.seconds, opts.warmup))
            r["cpu_percent"] = cpu
            results["setups"][f"etcd alone, {c} clients"] = r
    finally:
        for fn in reversed(cleanup):
            try:
                fn()
            except Exception:
                pass
        if opts.keep:
            results["kept"] = workdir
        else:
            shutil.rmtree(workdir, ignore_errors=True)

    print(json.dumps(results, indent=1))
    rows = [("setup", "ops/s", "median ms", "p99 ms", "max ms", "errors", "CPU % (per process)")]
    for name, r in results["setups"].items():
        rows.append((name, f"{r['ops_per_s']:.0f}", str(r["median_ms"]), str(r["p99_ms"]),
                     str(r["max_ms"]), str(sum(r["errors"].values())),
                     ", ".join(f"{k} {v:.0f}" for k, v in r["cpu_percent"].items())))
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    out = ["  ".join(c.ljust(w) for c, w in zip(row, widths)) for row in rows]
    out.insert(1, "  ".join("-" * w for w in widths))
    setups = results["setups"]
    for c in counts:
        cl = setups[f"3 cluster, {c} clients"]["ops_per_s"]
        emb = setups[f"1 embedded, {c} clients"]["ops_per_s"]
        alone = setups[f"etcd alone, {c} clients"]["ops_per_s"]
        out.append(f"{c} clients: 3 cluster / etcd alone {cl / alone if alone else 0:.2f}x, "
                   f"3 cluster / 1 embedded {cl / emb if emb else 0:.2f}x")
    out.append(f"{opts.seconds:.0f} s each, {os.cpu_count()} cores, {opts.provider} provider, "
               f"etcd {results['etcd']}")
    sys.stderr.write("\n".join(out) + "\n")
    return 0

if __name__ == "__main__":
    sys.exit(main())
