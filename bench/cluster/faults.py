#!/usr/bin/env python3
"""The fault run of cluster mode under load, with a checker (SPEC §8, design
cluster-etcd.md §4.5; issue 14 part 8).

Starts 3 etcd members, 3 voicebot-server instances in cluster mode and 2 fake
HTTP providers (in this process), runs a seeded workload of joins, leaves and
lobby creates against random instances (each op retried as the lobby page
retries), and a nemesis that injects one fault every GAP seconds, in a cycle:

  kill_instance     kill -9 of an instance, restarted 2-5 s later (same data dir)
  kill_etcd_leader  kill -9 of the etcd leader, restarted 2-4 s later
  kill_etcd_two     kill -9 of two of the three members (no quorum), restarted
  pause_instance    SIGSTOP of an instance for TTL+2 s, then SIGCONT
  provider_refuse   one fake provider refuses connections for 3-5 s

Then it heals everything, waits 2×TTL, and checks etcd (read directly) and
every instance against the op log. Prints a JSON summary on stdout and a
table on stderr; exits 0 when the checker found nothing, 1 otherwise.

Python standard library only. Run: python3 bench/cluster/faults.py --duration 180
(`--help` for the knobs). `run(options)` is the entry point of the test
tests/integration/test_cluster_faults.py.
"""

import argparse
import http.client
import json
import os
import random
import shutil
import signal
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.normpath(os.path.join(HERE, "..", ".."))
sys.path.insert(0, os.path.join(REPO, "tests", "integration"))

from etcd_cluster import ETCD, EtcdCluster  # noqa: E402
from pki import Pki  # noqa: E402
from harness import NO_QUOTAS, FakeProvider, Server, scaled  # noqa: E402

PREFIX = "/vbfault/"
FAULTS = ["kill_instance", "kill_etcd_leader", "kill_etcd_two", "pause_instance",
          "provider_refuse"]
BOTS = {"p1": ("alpha", "echo"), "p2": ("beta", "echo")}
LOBBY_NAMES = [f"room-{i}" for i in range(6)]
NICKS = [f"n{i}" for i in range(6)]


def now():
    return time.monotonic()


def parse_args(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--duration", type=float, default=180, help="seconds of workload (180)")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--ttl", type=int, default=4, help="--instance-ttl of the instances (4)")
    ap.add_argument("--rate", type=float, default=30, help="ops per second (30)")
    ap.add_argument("--workers", type=int, default=64,
                    help="client threads (64: enough that clients stuck on a stopped instance do not stall the rate)")
    ap.add_argument("--gap-min", type=float, default=10, help="seconds between faults, min (10)")
    ap.add_argument("--gap-max", type=float, default=20, help="seconds between faults, max (20)")
    ap.add_argument("--first-fault", type=float, default=None,
                    help="seconds before the first fault (default: --gap-min)")
    ap.add_argument("--faults", default=",".join(FAULTS),
                    help="the cycle of faults, comma-separated")
    ap.add_argument("--workdir", default=None, help="keep everything here (default: a temp dir)")
    ap.add_argument("--keep", action="store_true", help="keep the temp dir (logs, op log)")
    ap.add_argument("--quiet", action="store_true", help="no progress lines on stderr")
    ap.add_argument("--plain-etcd", action="store_true",
                    help="etcd without TLS or authentication, and no TLS between instances "
                         "(default: TLS both ways to etcd with client certificates and a "
                         "user, mutual TLS on the cluster port, as docs/security.md sets "
                         "it up)")
    return ap.parse_args(argv)


class Log:
    """The op log: every invoke and outcome, with monotonic times (also
    written to WORKDIR/ops.jsonl), and the nemesis's events."""

    def __init__(self, path, t0, quiet):
        self.t0 = t0
        self.lock = threading.Lock()
        self.f = open(path, "w")
        self.quiet = quiet

    def write(self, **rec):
        rec["t"] = round(now() - self.t0, 4)
        with self.lock:
            self.f.write(json.dumps(rec, sort_keys=True) + "\n")

    def say(self, msg):
        self.write(kind="note", msg=msg)
        if not self.quiet:
            sys.stderr.write(f"[{now() - self.t0:7.2f}] {msg}\n")
            sys.stderr.flush()

    def close(self):
        with self.lock:
            self.f.close()


class Cluster:
    def __init__(self, opts, workdir, log):
        self.opts = opts
        self.workdir = workdir
        self.log = log
        self.etcd = None
        self.servers = []
        self.providers = {}
        self.provider_ids = {}  # name -> provider_id

    def start(self):
        self.etcd = EtcdCluster(os.path.join(self.workdir, "etcd"),
                                secure=not self.opts.plain_etcd,
                                prefix=PREFIX).start(timeout=scaled(60))
        # Secure: mutual TLS between the instances too, with their own CA.
        cluster_tls = []
        if not self.opts.plain_etcd:
            pki = Pki(os.path.join(self.workdir, "cluster-pki")).make_ca()
            cert, key = pki.make("instance", san="IP:127.0.0.1")
            cluster_tls = ["--cluster-tls-cert", cert, "--cluster-tls-key", key,
                           "--cluster-tls-ca", pki.path("ca.pem")]
        for i in range(3):
            s = Server(self.workdir, ["--data-dir", os.path.join(self.workdir, f"i{i}"),
                                      *self.etcd.server_args(), *cluster_tls,
                                      "--instance-ttl", str(self.opts.ttl),
                                      "--cluster-port", "0", *NO_QUOTAS])
            s.name = f"i{i}"
            self.servers.append(s)
            self.start_server(s)
        for name, bots in BOTS.items():
            self.providers[name] = FakeProvider(bots)
        # Registered once, on the first instance; seen by all.
        for name, fp in self.providers.items():
            body = {"name": name, "base_url": fp.base_url,
                    "bots": [{"name": b, "description": b + " bot"} for b in fp.bots]}
            status, _, res = self.servers[0].request("POST", "/api/bots/providers/register", body)
            if status != 200:
                raise RuntimeError(f"registration of {name}: {status} {res}")
            self.provider_ids[name] = res["provider_id"]
        for s in self.servers:
            wait_for(lambda s=s: self.knows_providers(s), 10, f"providers on {s.name}")

    def knows_providers(self, s):
        try:
            status, _, body = s.request("GET", "/api/bots/providers", timeout=3)
        except OSError:
            return False
        known = {p["provider_id"] for p in body.get("providers", [])} if status == 200 else set()
        return set(self.provider_ids.values()) <= known

    def start_server(self, s):
        """Starts (or restarts) an instance; retried while the binary is
        missing or being relinked by someone else's build."""
        self.save_log(s)
        deadline = now() + scaled(120)
        while True:
            try:
                s.start(timeout=60)
                self.log.write(kind="server_up", server=s.name, port=s.port, pid=s.proc.pid)
                return
            except (AssertionError, OSError) as e:
                s.kill()
                if now() > deadline:
                    raise
                self.log.say(f"{s.name} did not start ({str(e).splitlines()[0][:120]}); retrying")
                time.sleep(2)

    def save_log(self, s):
        """Appends the last run's log of an instance to WORKDIR/<name>.log
        (Server keeps only the current run's lines)."""
        if s.proc is not None:
            s._drain()
            with open(os.path.join(self.workdir, s.name + ".log"), "a") as f:
                f.write(f"--- pid {s.proc.pid} exit {s.proc.poll()}\n" + s.log() + "\n")

    def heal(self):
        for s in self.servers:
            if s.proc is not None and s.proc.poll() is None:
                try:
                    os.kill(s.proc.pid, signal.SIGCONT)
                except OSError:
                    pass
        for m in self.etcd.members:
            if not m.alive():
                m.start(self.etcd.initial)
        self.etcd.wait_healthy(timeout=scaled(60))
        for fp in self.providers.values():
            fp.listen_again()
        for s in self.servers:
            if s.proc is None or s.proc.poll() is not None:
                self.start_server(s)

    def stop(self):
        for s in self.servers:
            try:
                if s.proc is not None and s.proc.poll() is None:
                    os.kill(s.proc.pid, signal.SIGCONT)
            except OSError:
                pass
            s.kill()
            self.save_log(s)
        for fp in self.providers.values():
            fp.close()
        if self.etcd is not None:
            self.etcd.stop()


def wait_for(probe, timeout, what, every=0.1):
    deadline = now() + scaled(timeout)
    while True:
        v = probe()
        if v:
            return v
        if now() > deadline:
            raise AssertionError(f"no {what} within {scaled(timeout)} s")
        time.sleep(every)


# -- the workload ---------------------------------------------------------------


class Workload:
    """Joins (small nick pool), leaves of known sessions and lobby creates
    at a fixed rate from a seeded RNG, against random instances, each
    retried as the lobby page does: on 503 or a connection error up to 3
    tries on one instance honouring Retry-After, then the next instance."""

    def __init__(self, cluster, opts, log):
        self.cluster = cluster
        self.opts = opts
        self.log = log
        self.rng = random.Random(opts.seed)
        self.lock = threading.Lock()
        self.ops = []  # finished ops
        self.lobbies = {}  # name -> id (acknowledged creates)
        self.live = {}  # session_id -> (lobby, bot, nick): acknowledged, not acknowledged left
        self.seq = 0
        self.ticket = 0
        self.left_at = {}  # session_id -> end of its acknowledged leave
        self.leaving = set()  # sessions with a leave in flight (not picked twice)
        self.stopping = threading.Event()
        self.bots = sorted({b for bots in BOTS.values() for b in bots})

    def next_op(self):
        with self.lock:
            self.seq += 1
            r = self.rng.random()
            lobbies = sorted(self.lobbies.items())
            if r < 0.12 or not lobbies:
                op = {"kind": "create", "name": self.rng.choice(LOBBY_NAMES)}
            elif r < 0.42 and set(self.live) - self.leaving:
                sid = self.rng.choice(sorted(set(self.live) - self.leaving))
                self.leaving.add(sid)
                lid, bot, nick = self.live[sid]
                op = {"kind": "leave", "session_id": sid, "lobby_id": lid}
            else:
                _, lid = self.rng.choice(lobbies[:4] if r < 0.9 else lobbies)
                op = {"kind": "join", "lobby_id": lid, "bot": self.rng.choice(self.bots),
                      "nick": self.rng.choice(NICKS)}
            op["id"] = self.seq
            op["first"] = self.rng.randrange(3)
            return op

    def request(self, op):
        if op["kind"] == "create":
            return "POST", "/api/lobby", {"name": op["name"], "private": False}
        if op["kind"] == "leave":
            return "POST", "/api/bots/leave", {"session_id": op["session_id"],
                                               "lobby_id": op["lobby_id"]}
        return "POST", f"/api/bots/{op['bot']}/join", {"lobby_id": op["lobby_id"],
                                                       "nick": op["nick"]}

    def attempt(self, server, op):
        status, headers, payload = server.request(*self.request(op), timeout=5)
        return status, headers.get("retry-after"), payload

    def run_op(self, op):
        op["invoke"] = now()
        op["tries"] = []
        servers = self.cluster.servers
        outcome = None
        for k in range(len(servers)):
            server = servers[(op["first"] + k) % len(servers)]
            for _ in range(3):
                t = now()
                self.log.write(kind="invoke", op=op["id"], what=op["kind"], server=server.name,
                               args={x: op[x] for x in ("name", "lobby_id", "bot", "nick",
                                                        "session_id") if x in op})
                try:
                    status, retry_after, payload = self.attempt(server, op)
                except (OSError, http.client.HTTPException) as e:
                    status, retry_after, payload = None, None, f"{type(e).__name__}: {e}"
                try_rec = {"server": server.name, "t": t, "end": now(), "status": status}
                op["tries"].append(try_rec)
                self.log.write(kind="outcome", op=op["id"], what=op["kind"], server=server.name,
                               status=status, body=payload if status != 200 or op["kind"] != "join"
                               else {k2: payload.get(k2) for k2 in ("session_id", "run_id",
                                                                    "provider_id")})
                if status is not None and status != 503:
                    outcome = (status, payload)
                    break
                if isinstance(payload, str) and "timed out" in payload:
                    break  # a stopped instance: the next one
                if status == 503:
                    try:
                        wait = float(retry_after or 1)
                    except ValueError:
                        wait = 1
                    time.sleep(min(max(wait, 0.2), self.opts.ttl + 1))
                else:
                    time.sleep(0.3)
                if self.stopping.is_set():
                    break
            if outcome is not None or self.stopping.is_set():
                break
        op["end"] = now()
        op["status"], op["body"] = outcome if outcome else (op["tries"][-1]["status"],
                                                            "gave up")
        op["ok"] = op["status"] in (200, 201)
        self.record(op)

    def record(self, op):
        with self.lock:
            self.ops.append(op)
            if op["kind"] == "leave":
                self.leaving.discard(op["session_id"])
            if not op["ok"]:
                return
            if op["kind"] == "create":
                self.lobbies[op["name"]] = op["body"]["id"]
            elif op["kind"] == "join":
                sid = op["body"]["session_id"]
                # A join that overlapped an acknowledged leave of the same
                # session may have been answered before the leave: not live.
                if self.left_at.get(sid, -1) < op["invoke"]:
                    self.live[sid] = (op["lobby_id"], op["bot"], op["nick"])
            elif op["kind"] == "leave":
                self.live.pop(op["session_id"], None)
                self.left_at[op["session_id"]] = op["end"]

    def seed_lobbies(self):
        for name in LOBBY_NAMES[:4]:
            op = {"kind": "create", "name": name, "id": 0, "first": 0}
            self.run_op(op)
            if not op["ok"]:
                raise RuntimeError(f"creating lobby {name}: {op['status']} {op['body']}")

    def worker(self, t0):
        while not self.stopping.is_set():
            with self.lock:
                self.ticket += 1
                k = self.ticket
            due = t0 + k / self.opts.rate
            delay = due - now()
            if delay > 0:
                if self.stopping.wait(delay):
                    return
            op = self.next_op()
            self.run_op(op)

    def start(self):
        t0 = now()
        self.threads = [threading.Thread(target=self.worker, args=(t0,), daemon=True)
                        for _ in range(self.opts.workers)]
        for t in self.threads:
            t.start()

    def stop(self):
        self.stopping.set()
        for t in self.threads:
            t.join(scaled(60))


# -- the nemesis -----------------------------------------------------------------


class Nemesis:
    def __init__(self, cluster, opts, log):
        self.cluster = cluster
        self.opts = opts
        self.log = log
        self.rng = random.Random(opts.seed * 7919 + 1)
        self.faults = []  # {fault, start, end, detail}
        self.cycle = [f.strip() for f in opts.faults.split(",") if f.strip()]
        self.error = None

    def run(self, until):
        try:
            first = self.opts.first_fault if self.opts.first_fault is not None else self.opts.gap_min
            next_at = now() + first
            k = 0
            while True:
                if now() + 0.0 < next_at:
                    time.sleep(next_at - now())
                if now() >= until:
                    return
                kind = self.cycle[k % len(self.cycle)]
                rec = {"fault": kind, "n": k, "start": now()}
                self.log.say(f"fault {k}: {kind}")
                rec["detail"] = getattr(self, kind)(k)
                rec["end"] = now()
                self.log.say(f"fault {k}: {kind} healed ({rec['detail']})")
                self.faults.append(rec)
                k += 1
                next_at = max(rec["start"] + self.rng.uniform(self.opts.gap_min,
                                                              self.opts.gap_max),
                              rec["end"] + 1)
        except Exception as e:  # reported, not swallowed
            self.error = f"{type(e).__name__}: {e}"
            self.log.say(f"nemesis failed: {self.error}")

    def kill_instance(self, k):
        s = self.cluster.servers[k % 3]
        s.kill()
        down = self.rng.uniform(2, 5)
        time.sleep(down)
        self.cluster.start_server(s)
        return f"{s.name} down {down:.1f} s, back on :{s.port}"

    def kill_etcd_leader(self, k):
        etcd = self.cluster.etcd
        leader = wait_for(etcd.leader, 20, "an etcd leader")
        leader.kill()
        down = self.rng.uniform(2, 4)
        time.sleep(down)
        leader.start(etcd.initial)
        etcd.wait_healthy(timeout=scaled(60))
        return f"leader {leader.name} down {down:.1f} s"

    def kill_etcd_two(self, k):
        etcd = self.cluster.etcd
        victims = self.rng.sample(etcd.members, 2)
        for m in victims:
            m.kill()
        down = self.rng.uniform(3, 5)
        time.sleep(down)
        for m in victims:
            m.start(etcd.initial)
        etcd.wait_healthy(timeout=scaled(60))
        return f"{'+'.join(m.name for m in victims)} down {down:.1f} s"

    def pause_instance(self, k):
        s = self.cluster.servers[(k + 1) % 3]
        os.kill(s.proc.pid, signal.SIGSTOP)
        pause = self.opts.ttl + 2
        try:
            time.sleep(pause)
        finally:
            os.kill(s.proc.pid, signal.SIGCONT)
        return f"{s.name} stopped {pause} s"

    def provider_refuse(self, k):
        name = sorted(self.cluster.providers)[k % 2]
        fp = self.cluster.providers[name]
        fp.refuse()
        down = self.rng.uniform(3, 5)
        try:
            time.sleep(down)
        finally:
            fp.listen_again()
        return f"provider {name} refused {down:.1f} s"


# -- the checker -------------------------------------------------------------------


def etcd_state(etcd):
    kvs = etcd.range_prefix(PREFIX)
    lobbies, members, joins = {}, {}, {}
    for key, value in kvs.items():
        rest = key[len(PREFIX):]
        try:
            doc = json.loads(value)
        except ValueError:
            doc = value
        if rest.startswith("lobbies/"):
            parts = rest[len("lobbies/"):].split("/")
            if len(parts) == 1:
                lobbies[parts[0]] = doc
            else:
                members[(parts[0], parts[1])] = doc
        elif rest.startswith("joins/"):
            joins[rest[len("joins/"):]] = doc
    return kvs, lobbies, members, joins


def check(cluster, workload, opts, log):
    findings = []
    notes = []

    def find(check_name, msg, **ctx):
        findings.append({"check": check_name, "msg": msg, **ctx})

    ops = sorted(workload.ops, key=lambda o: o["invoke"])
    joins = [o for o in ops if o["kind"] == "join"]
    leaves = [o for o in ops if o["kind"] == "leave"]
    creates = [o for o in ops if o["kind"] == "create"]
    acked_left = {o["session_id"]: o for o in leaves if o["ok"]}
    # A leave with no answer, or answered 503, may still have been applied.
    maybe_left = {}
    for o in leaves:
        if not o["ok"]:
            maybe_left.setdefault(o["session_id"], []).append(o)

    _, lobbies, members, reservations = etcd_state(cluster.etcd)
    by_session = {sid: (lid, doc) for (lid, sid), doc in members.items()}

    # (a) no acknowledged join lost.
    lost_maybe_left = 0
    for o in joins:
        if not o["ok"]:
            continue
        sid = o["body"]["session_id"]
        if sid in acked_left:
            continue
        if sid not in by_session:
            if sid in maybe_left:
                lost_maybe_left += 1
                continue
            find("a_lost_join", f"join op {o['id']} ({o['lobby_id']}, {o['bot']}, {o['nick']}) "
                 f"-> {sid} acknowledged but not in etcd", op=op_view(o))
        else:
            lid, doc = by_session[sid]
            if lid != o["lobby_id"] or doc.get("bot_name") != o["bot"] or doc.get("nick") != o["nick"]:
                find("a_lost_join", f"member {sid} in etcd is not the join's", op=op_view(o),
                     etcd=doc)
    if lost_maybe_left:
        notes.append(f"{lost_maybe_left} acknowledged joins are gone after a leave that had "
                     "no acknowledgement (it may have been applied)")

    # (b) no double: one session per key between leaves, one member per key.
    for key, (s1, ops1), (s2, ops2) in double_answers(joins, leaves):
        find("b_double", f"{key}: ops {[o['id'] for o in ops1]} -> {s1} and ops "
             f"{[o['id'] for o in ops2]} -> {s2}, with no leave of either between them",
             ops=[op_view(o) for o in ops1 + ops2])
    # A join invoked after an acknowledged leave of S ended must not answer S.
    for o in joins:
        if o["ok"]:
            lv = acked_left.get(o["body"]["session_id"])
            if lv is not None and o["invoke"] > lv["end"]:
                find("b_stale_session", f"join op {o['id']} answered {lv['session_id']} after "
                     f"leave op {lv['id']} of it was acknowledged", ops=[op_view(lv), op_view(o)])
    per_member_key = {}
    for (lid, sid), doc in members.items():
        per_member_key.setdefault((lid, doc.get("bot_name"), doc.get("nick")), []).append(sid)
    for key, sids in per_member_key.items():
        if len(sids) > 1:
            find("b_double", f"etcd holds {len(sids)} members for {key}: {sids}")
    # The reservations agree with the members.
    reserved_sessions = {}
    for rkey, doc in reservations.items():
        if not isinstance(doc, dict):
            find("b_reservation", f"reservation {rkey} is not JSON: {doc!r}")
            continue
        if doc.get("state") != "joined":
            find("b_reservation", f"reservation {rkey} still {doc.get('state')} after healing",
                 etcd=doc)
            continue
        reserved_sessions[doc.get("session_id")] = rkey
        if doc.get("session_id") not in by_session:
            find("b_reservation", f"reservation {rkey} names {doc.get('session_id')}, "
                 "which is not a member", etcd=doc)
    for sid in by_session:
        if sid not in reserved_sessions:
            find("b_reservation", f"member {sid} has no reservation", etcd=by_session[sid][1])

    # Acknowledged lobby creates are in etcd.
    for o in creates:
        if o["ok"] and o["body"]["id"] not in lobbies:
            find("g_lost_lobby", f"lobby {o['name']} -> {o['body']['id']} acknowledged, "
                 "not in etcd", op=op_view(o))

    # (d) every acknowledged leave is gone (from etcd here, from the
    # instances in (c)).
    for sid, o in acked_left.items():
        if sid in by_session:
            later = [j for j in joins if j["ok"] and j["body"]["session_id"] == sid
                     and j["invoke"] > o["end"]]
            if not later:
                find("d_leave_back", f"leave op {o['id']} of {sid} acknowledged, "
                     "the member is still in etcd", op=op_view(o), etcd=by_session[sid][1])

    # (c) every instance lists exactly etcd's members, for every lobby.
    expect = {}
    for (lid, sid) in members:
        expect.setdefault(lid, set()).add(sid)
    mismatches = {}

    def instances_agree():
        mismatches.clear()
        for s in cluster.servers:
            for lid in lobbies:
                try:
                    status, _, body = s.request("GET", f"/api/lobby/{lid}", timeout=5)
                except OSError as e:
                    mismatches[(s.name, lid)] = f"no answer: {e}"
                    continue
                if status != 200:
                    mismatches[(s.name, lid)] = f"{status} {body}"
                    continue
                got = {x["session_id"] for x in body.get("sessions", []) if x.get("is_bot")}
                if got != expect.get(lid, set()):
                    mismatches[(s.name, lid)] = {
                        "missing": sorted(expect.get(lid, set()) - got),
                        "extra": sorted(got - expect.get(lid, set()))}
        return not mismatches
    try:
        wait_for(instances_agree, 10, "instances agreeing with etcd", every=0.5)
    except AssertionError:
        for (name, lid), diff in sorted(mismatches.items()):
            find("c_instance_view", f"{name} GET /api/lobby/{lid} differs from etcd: {diff}")

    # (e) runs match: every member's run is live at its provider; live runs
    # with no member are orphans (reported).
    pid_to_name = {pid: name for name, pid in cluster.provider_ids.items()}

    def live_runs():
        out = {}
        for name, fp in cluster.providers.items():
            with fp.cond:
                started = list(fp.run_ids)
            stopped = {c[1].split("/")[3] for c in fp.stops()}
            out[name] = set(started) - stopped
        return out
    member_runs = {}
    for (lid, sid), doc in members.items():
        member_runs.setdefault(pid_to_name.get(doc.get("provider_id"), doc.get("provider_id")),
                               {})[doc.get("run_id")] = sid

    def runs_settled():
        live = live_runs()
        return all(live.get(n, set()) == set(member_runs.get(n, {})) for n in cluster.providers)
    try:
        wait_for(runs_settled, 2 * opts.ttl, "provider runs matching the members", every=0.5)
    except AssertionError:
        pass
    live = live_runs()
    orphans = {}
    for name in cluster.providers:
        mine = member_runs.get(name, {})
        for run, sid in mine.items():
            if run not in live.get(name, set()):
                find("e_run_missing", f"member {sid} has run {run} on {name}, which the provider "
                     "never started or has stopped", etcd=by_session[sid][1])
        extra = sorted(live.get(name, set()) - set(mine))
        if extra:
            orphans[name] = classify_orphans(extra, joins, acked_left)
    for name in member_runs:
        if name not in cluster.providers:
            find("e_run_missing", f"members on an unknown provider {name}: {member_runs[name]}")
    return findings, notes, orphans, {"lobbies": len(lobbies), "members": len(members),
                                      "reservations": len(reservations)}


def answered_window(o):
    """When the answer of a join was made: within the try that got it (its
    HTTP request and response), else within the whole op."""
    last = o["tries"][-1] if o.get("tries") else {}
    return last.get("t", o["invoke"]), last.get("end", o["end"])


def double_answers(joins, leaves):
    """Pairs of sessions answered for one (lobby, bot, nick) that no leave
    can separate: [(key, (s1, ops1), (s2, ops2))].

    A name holds one session at a time, so of two sessions answered for one
    key one was left between them: a leave of S1 whose window meets the span
    from the latest start of S1's answers to the earliest end of S2's (or
    the same with S2 first). An answer is placed anywhere in the try that
    got it, not at its end: a join on an instance stopped just after etcd
    answered it (pause_instance) is answered seconds later, and may answer a
    session that has since been left and its name taken again. A leave that
    was not acknowledged may apply at any later time. For each session (in
    the order of its first answer), the first later one it cannot be told
    apart from.
    """
    inf = float("inf")
    answers = {}
    for o in joins:
        if o["ok"]:
            key = (o["lobby_id"], o["bot"], o["nick"])
            answers.setdefault(key, {}).setdefault(o["body"]["session_id"], []).append(o)
    leave_windows = {}
    for o in leaves:
        leave_windows.setdefault(o["session_id"], []).append(
            (o["invoke"], o["end"] if o["ok"] else inf))

    def left_between(first, ops1, ops2):
        after = max(answered_window(o)[0] for o in ops1)
        before = min(answered_window(o)[1] for o in ops2)
        return any(max(start, after) < min(end, before)
                   for start, end in leave_windows.get(first, []))

    found = []
    for key, by_session in answers.items():
        sessions = sorted(by_session, key=lambda s: min(o["end"] for o in by_session[s]))
        for i, s1 in enumerate(sessions):
            for s2 in sessions[i + 1:]:
                ops1, ops2 = by_session[s1], by_session[s2]
                if not (left_between(s1, ops1, ops2) or left_between(s2, ops2, ops1)):
                    found.append((key, (s1, ops1), (s2, ops2)))
                    break  # the first one for S1 says enough
    return found


def classify_orphans(runs, joins, acked_left):
    """Why a run is live at a provider with no member: the member was left
    (acknowledged) but the provider never got the stop, or no join with that
    run was ever acknowledged (dispatched, then not committed)."""
    acked = {}
    for o in joins:
        if o["ok"] and o["body"].get("run_id"):
            acked[o["body"]["run_id"]] = o["body"]["session_id"]
    out = {"left_stop_not_delivered": [], "never_acknowledged": [], "other": []}
    for run in runs:
        sid = acked.get(run)
        if sid is None:
            out["never_acknowledged"].append(run)
        elif sid in acked_left:
            out["left_stop_not_delivered"].append(run)
        else:
            out["other"].append(run)
    return {k: v for k, v in out.items() if v}


def op_view(o):
    return {k: (round(o[k], 3) if isinstance(o.get(k), float) else o.get(k))
            for k in ("id", "kind", "lobby_id", "bot", "nick", "session_id", "name", "invoke",
                      "end", "status", "body", "tries") if k in o}


def availability(workload, faults, t_end):
    """Per fault window (its start to the next fault's start, or to the end
    of the workload): the longest gap between two successful ops of any
    kind, and of joins; the retries made in the window."""
    ok_all = sorted(o["end"] for o in workload.ops if o["ok"])
    ok_join = sorted(o["end"] for o in workload.ops if o["ok"] and o["kind"] == "join")
    tries = sorted(t["t"] for o in workload.ops for t in o["tries"][1:])

    def longest_gap(points, s, e):
        inside = [p for p in points if s < p <= e]
        before = [p for p in points if p <= s]
        pts = ([max(before)] if before else [s]) + inside
        after = [p for p in points if p > e]
        pts.append(min(after[0], e) if after else e)
        best = 0.0
        for a, b in zip(pts, pts[1:]):
            best = max(best, min(b, e) - max(a, s))
        return round(best, 2)
    out = []
    for i, f in enumerate(faults):
        s = f["start"]
        e = faults[i + 1]["start"] if i + 1 < len(faults) else t_end
        out.append({"fault": f["fault"], "detail": f["detail"], "window_s": round(e - s, 1),
                    "fault_s": round(f["end"] - s, 1),
                    "longest_unavailable_s": longest_gap(ok_all, s, e),
                    "longest_unavailable_joins_s": longest_gap(ok_join, s, e),
                    "retries": sum(1 for t in tries if s <= t < e)})
    return out


def totals(workload):
    out = {}
    for o in workload.ops:
        k = out.setdefault(o["kind"], {"ops": 0, "ok": 0, "failed": {}, "attempts": 0})
        k["ops"] += 1
        k["attempts"] += len(o["tries"])
        if o["ok"]:
            k["ok"] += 1
        else:
            st = str(o["status"])
            k["failed"][st] = k["failed"].get(st, 0) + 1
    return out


def table(summary):
    rows = [("fault", "detail", "longest unavail. s (any/joins)", "retries")]
    for f in summary["faults"]:
        rows.append((f["fault"], f["detail"],
                     f"{f['longest_unavailable_s']:.2f} / {f['longest_unavailable_joins_s']:.2f}",
                     str(f["retries"])))
    widths = [max(len(r[i]) for r in rows) for i in range(4)]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths)) for r in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    lines.append("")
    t = summary["totals"]
    lines.append("totals: " + ", ".join(f"{k} {v['ok']}/{v['ops']} ok ({v['attempts']} attempts"
                                          + (f", failed {v['failed']}" if v["failed"] else "")
                                          + ")" for k, v in sorted(t.items())))
    lines.append(f"etcd after healing: {summary['etcd']}")
    if summary["orphan_runs"]:
        lines.append("orphan runs (live at a provider, no member): "
                     + "; ".join(f"{k}: " + ", ".join(f"{len(runs)} {why}" for why, runs in v.items())
                                 for k, v in summary["orphan_runs"].items()))
    for n in summary["notes"]:
        lines.append("note: " + n)
    if summary["findings"]:
        lines.append(f"CHECKER: {len(summary['findings'])} finding(s):")
        for f in summary["findings"][:40]:
            lines.append(f"  [{f['check']}] {f['msg']}")
    else:
        lines.append("CHECKER: nothing found (a-e)")
    return "\n".join(lines)


def run(opts):
    """Runs the whole thing; returns the summary (a dict)."""
    if not ETCD:
        raise RuntimeError("etcd is not installed (Debian's etcd-server)")
    workdir = opts.workdir or tempfile.mkdtemp(prefix="vb-faults-")
    os.makedirs(workdir, exist_ok=True)
    t0 = now()
    log = Log(os.path.join(workdir, "ops.jsonl"), t0, opts.quiet)
    cluster = Cluster(opts, workdir, log)
    summary = {"seed": opts.seed, "ttl": opts.ttl, "duration": opts.duration, "rate": opts.rate,
               "workdir": workdir,
               "security": "plain" if opts.plain_etcd else "TLS and auth, cluster mTLS"}
    try:
        log.say(f"starting 3 etcd members ({summary['security']}), 3 instances, "
                f"2 fake providers in {workdir}")
        cluster.start()
        workload = Workload(cluster, opts, log)
        workload.seed_lobbies()
        nemesis = Nemesis(cluster, opts, log)
        log.say(f"workload: {opts.rate} ops/s, {opts.workers} clients, {opts.duration} s")
        w_start = now()
        workload.start()
        until = w_start + opts.duration
        nt = threading.Thread(target=nemesis.run, args=(until,), daemon=True)
        nt.start()
        nt.join(opts.duration + scaled(180))
        if now() < until:
            time.sleep(until - now())
        w_end = now()
        workload.stop()
        log.say("healing")
        cluster.heal()
        for s in cluster.servers:
            wait_for(lambda s=s: health_ok(s), 6 * opts.ttl, f"{s.name} store ok")
        time.sleep(2 * opts.ttl)  # the design's 2×TTL before the checker
        log.say("checking")
        findings, notes, orphans, etcd_counts = check(cluster, workload, opts, log)
        if nemesis.error:
            findings.append({"check": "nemesis", "msg": nemesis.error})
        summary.update({
            "faults": availability(workload, nemesis.faults, w_end),
            "totals": totals(workload),
            "findings": findings,
            "notes": notes,
            "orphan_runs": orphans,
            "etcd": etcd_counts,
            "wall_s": round(now() - t0, 1),
        })
        for f in findings:
            log.write(kind="finding", **{k: v for k, v in f.items() if k != "kind"})
        return summary
    finally:
        cluster.stop()
        log.close()
        if not (opts.keep or opts.workdir) and not summary.get("findings"):
            shutil.rmtree(workdir, ignore_errors=True)
        else:
            summary["kept"] = workdir


def health_ok(s):
    try:
        status, _, body = s.request("GET", "/api/health", timeout=3)
    except OSError:
        return False
    return status == 200 and body.get("store") == "ok"


def main(argv=None):
    opts = parse_args(argv)
    summary = run(opts)
    print(json.dumps(summary, indent=1, sort_keys=True, default=str))
    sys.stdout.flush()
    sys.stderr.write("\n" + table(summary) + "\n")
    if summary.get("kept"):
        sys.stderr.write(f"kept: {summary['kept']} (ops.jsonl, server and etcd logs)\n")
    return 1 if summary["findings"] else 0


if __name__ == "__main__":
    sys.exit(main())
