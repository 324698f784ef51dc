"""Durability (SPEC §3, revised): each owner keeps a snapshot plus an
append-only journal. The real server, killed with SIGKILL at random moments
(during churn, during compaction), on a full disk, and started on journals
that a crash tore or a disk corrupted; `--dump-journal`; data dirs written
by the previous version and by the original Python server.

A journal record is a 16-byte header (uint32 LE payload length, uint32 LE
CRC-32C over the length bytes, the seq bytes and the payload, uint64 LE
seq), then the payload: one JSON object. Bit 31 of the length word is set
on every record of a batch (one append) but its last
(storage/journal.hpp). This file reads journals itself (`read_journal`) to
find, cut and damage records.

VB_SEED=N replays the random choices of a run (each test prints its seed in
its failure messages)."""

import errno
import glob
import http.client
import json
import os
import random
import re
import signal
import struct
import subprocess
import tempfile
import threading
import time
import unittest

from harness import NO_QUOTAS, ServerTestCase, crc32c, run_server_cli

# -- journal files -------------------------------------------------------------

HEADER = struct.Struct("<IIQ")  # length word, CRC-32C, seq
BATCH_CONTINUES = 0x80000000  # bit 31 of the length word: more of the batch follows


class Record:
    def __init__(self, offset, word, crc, seq, payload):
        self.offset = offset
        self.length = word & ~BATCH_CONTINUES & 0xFFFFFFFF
        self.continues = bool(word & BATCH_CONTINUES)
        self.crc = crc
        self.seq = seq
        self.payload = payload
        self.crc_ok = crc == crc32c(struct.pack("<I", word) + struct.pack("<Q", seq) + payload)
        try:
            self.json = json.loads(payload.decode("utf-8"))
        except ValueError:
            self.json = None

    @property
    def end(self):
        return self.offset + HEADER.size + self.length

    def mentions(self, text):
        """Whether the payload holds the JSON string `text` (a nick, an id)."""
        return json.dumps(text).encode() in self.payload

    def __repr__(self):
        return (f"Record(offset={self.offset}, seq={self.seq}, len={self.length}, "
                f"continues={self.continues}, crc_ok={self.crc_ok}, "
                f"payload={self.payload[:200]!r})")


def read_journal(path):
    """The complete records of a journal, in order, and the offset where the
    complete records end (the file size unless the tail is torn)."""
    with open(path, "rb") as f:
        data = f.read()
    records, pos = [], 0
    while pos + HEADER.size <= len(data):
        word, crc, seq = HEADER.unpack_from(data, pos)
        length = word & ~BATCH_CONTINUES & 0xFFFFFFFF
        if pos + HEADER.size + length > len(data):
            break
        payload = data[pos + HEADER.size:pos + HEADER.size + length]
        records.append(Record(pos, word, crc, seq, payload))
        pos += HEADER.size + length
    return records, pos


def checked_journal(test, path):
    """The records of a journal a server wrote, each checked: CRC-32C right,
    the payload one JSON object, seqs consecutive, nothing after the last."""
    records, end = read_journal(path)
    size = os.path.getsize(path)
    test.assertEqual(end, size, f"{path}: bytes after the last complete record: {records[-3:]}")
    for r in records:
        test.assertTrue(r.crc_ok, f"{path}: the CRC-32C of {r} is not "
                        "crc32c(length bytes + seq bytes + payload)")
        test.assertIsInstance(r.json, dict, f"{path}: payload is not one JSON object: {r}")
    if records:
        test.assertFalse(records[-1].continues, f"{path}: the last batch does not end: "
                         f"{records[-1]}")
    seqs = [r.seq for r in records]
    test.assertEqual(seqs, list(range(seqs[0], seqs[0] + len(seqs))) if seqs else [],
                     f"{path}: seqs not consecutive")
    return records


def flip_byte(path, offset):
    with open(path, "r+b") as f:
        f.seek(offset)
        b = f.read(1)
        f.seek(offset)
        f.write(bytes([b[0] ^ 0x20]))


def read_bytes(path):
    with open(path, "rb") as f:
        return f.read()


# -- data dirs, logs, metrics -------------------------------------------------------

def leftovers(d):
    return sorted(n for n in os.listdir(d) if n.endswith(".tmp"))


def tmp_files(d):
    """The temporary files in `d`, by name, with their identity."""
    out = {}
    for n in leftovers(d):
        try:
            st = os.stat(os.path.join(d, n))
        except FileNotFoundError:
            continue
        out[n] = (st.st_ino, st.st_mtime_ns)
    return out


def wait_until(predicate, timeout, interval=0.02):
    deadline = time.monotonic() + timeout
    while True:
        if predicate():
            return True
        if time.monotonic() > deadline:
            return False
        time.sleep(interval)


def quarantined(d):
    return sorted(n for n in os.listdir(d) if ".corrupt-" in n)


def error_lines(server):
    """Log lines at level error (or worse)."""
    return [l for l in server.log().splitlines()
            if re.match(r"\S+ (error|err|critical)\b", l, re.I)]


def metric_lines(server, *words):
    status, _, text = server.request("GET", "/metrics")
    assert status == 200, (status, text)
    return text, [l for l in text.splitlines() if any(w in l for w in words)]


# A request the kill cut off: refused, reset, or a response cut short.
NO_ANSWER = (OSError, http.client.HTTPException)


def seed_rng(test):
    seed = int(os.environ.get("VB_SEED", random.randrange(1 << 30)))
    return seed, random.Random(seed)


class DurabilityCase(ServerTestCase):
    def start_server(self, *args):
        # Hundreds of joins from one loopback client: no per-client quotas.
        return super().start_server(*NO_QUOTAS, *args)

    def kill(self, s):
        s.kill()
        self.assertEqual(s.proc.returncode, -signal.SIGKILL, s.log())

    def assertCleanStart(self, s, d, where="", idle=True):
        """A start after a crash: no temporary left, nothing quarantined, no
        error logged (a torn last record is only a warning, and only when
        the crash hit an append: not `idle`)."""
        self.assertEqual(leftovers(d), [], f"{where} leftover temporary files in {os.listdir(d)}")
        if idle:
            self.assertEqual(s.count_lines(r"cut a torn record"), 0,
                             f"{where} a torn record, though the kill hit an idle server:\n"
                             + s.log())
        self.assertEqual(quarantined(d), [], f"{where} a crash left a corrupt file:\n{s.log()}")
        self.assertEqual(error_lines(s), [], f"{where} errors at start-up:\n{s.log()}")

    def members(self, s, lobby_id):
        """The lobby's members by nick; fails on a nick or session listed twice."""
        by_nick, sids = {}, set()
        for m in self.sessions(s, lobby_id):
            self.assertNotIn(m["nick"], by_nick, f"{m['nick']} listed twice in {lobby_id}")
            self.assertNotIn(m["session_id"], sids, f"session {m} listed twice")
            by_nick[m["nick"]] = m
            sids.add(m["session_id"])
        return by_nick

    def providers_by_name(self, s):
        status, _, body = s.request("GET", "/api/bots/providers")
        self.assertEqual(status, 200, body)
        out = {}
        for p in body["providers"]:
            self.assertNotIn(p["name"], out, f"provider {p['name']} listed twice: {body}")
            out[p["name"]] = p
        return out

    def kill_under_load(self, s, stop, threads, where):
        """Kills the server under its client threads (told to `stop` first):
        none of them may hang."""
        stop.set()
        self.kill(s)
        for t in threads:
            t.join(30)
            self.assertFalse(t.is_alive(), f"{where}: a client thread hangs")

    def server_with_lobby(self, *args):
        """A server started with `args`, a fake provider of echo registered,
        and a lobby: (server, lobby id)."""
        fp = self.fake_provider()
        s = self.start_server(*args)
        self.register(s, fp)
        return s, self.create_lobby(s)["id"]

    def joined(self, s, lobby_id, nick, bot="echo"):
        status, _, res = self.join(s, lobby_id, bot, nick)
        self.assertEqual(status, 200, f"join {nick}: {res}")
        self.assertEqual((res["nick"], res["lobby_id"]), (nick, lobby_id), res)
        return res


# -- 1. kill -9 during register / join / leave churn ----------------------------------


class Outcomes:
    """What the clients were told, and so what the state must be after a
    restart: "present" (acknowledged), "absent" (refused, or acknowledged
    gone) or "either" (no answer: the kill cut the connection). A restart
    settles every "either": what it loaded is on disk and stays."""

    def __init__(self):
        self.lock = threading.Lock()
        self.providers = {}  # name -> {"state", "id"}
        self.sessions = {}   # nick -> {"state", "lobby", "sid", "busy"}
        self.unexpected = []
        self.acks = 0

    def pick_leave(self, rng):
        with self.lock:
            nicks = [n for n, m in self.sessions.items() if m["state"] == "present"
                     and not m["busy"]]
            if not nicks:
                return None
            nick = rng.choice(sorted(nicks))
            self.sessions[nick]["busy"] = True
            return nick, dict(self.sessions[nick])

    def registered(self, name, status, res):
        with self.lock:
            if status == 200:
                self.providers[name] = {"state": "present", "id": res["provider_id"]}
                self.acks += 1
            elif status is None:
                self.providers[name] = {"state": "either", "id": None}
            elif status in (503, 429):
                self.providers[name] = {"state": "absent", "id": None}
            else:
                self.providers[name] = {"state": "absent", "id": None}
                self.unexpected.append(("register", name, status, res))

    def joined(self, nick, lobby_id, status, res):
        with self.lock:
            entry = {"state": "either", "lobby": lobby_id, "sid": None, "busy": False}
            if status == 200:
                entry.update(state="present", sid=res["session_id"])
                self.acks += 1
                if res.get("nick") != nick or res.get("lobby_id") != lobby_id:
                    self.unexpected.append(("join", nick, status, res))
            elif status == 503:
                entry["state"] = "absent"
            elif status is not None:
                entry["state"] = "absent"
                self.unexpected.append(("join", nick, status, res))
            self.sessions[nick] = entry

    def left(self, nick, status, res):
        with self.lock:
            m = self.sessions[nick]
            m["busy"] = False
            if status == 200:
                m["state"] = "absent"
                self.acks += 1
            elif status is None:
                m["state"] = "either"
            elif status != 503:  # a refused leave changes nothing
                self.unexpected.append(("leave", nick, status, res))


class KillDuringChurnTest(DurabilityCase):
    """Registrations, joins and leaves from a few client threads while the
    server is killed with SIGKILL at random instants, 3 rounds on one data
    dir: everything answered 200 is there after the restart, every 200 leave
    is gone, nothing answered 503 is there, nothing is there twice."""

    THREADS = 4
    ROUNDS = 3
    LOBBIES = 3

    def churn(self, s, fp, rng, round_no, lobbies, out, where):
        stop = threading.Event()
        counter = [0]
        count_lock = threading.Lock()

        def next_no():
            with count_lock:
                counter[0] += 1
                return counter[0]

        def worker(t, wrng):
            while not stop.is_set():
                k = next_no()
                roll = wrng.random()
                status, res = None, None
                try:
                    if roll < 0.25:
                        name = f"churn-{round_no}-{k}"
                        body = {"name": name, "base_url": fp.base_url,
                                "bots": [{"name": f"cb{round_no}x{k}", "description": ""}]}
                        try:
                            status, _, res = s.request("POST", "/api/bots/providers/register",
                                                       body, timeout=15)
                        finally:
                            out.registered(name, status, res)
                        continue
                    picked = out.pick_leave(wrng) if roll >= 0.70 else None
                    if picked is None:
                        nick = f"n{round_no}-{k}"
                        lobby_id = wrng.choice(lobbies)
                        try:
                            status, _, res = self.join(s, lobby_id, "echo", nick)
                        finally:
                            out.joined(nick, lobby_id, status, res)
                    else:
                        nick, m = picked
                        try:
                            status, _, res = s.request(
                                "POST", "/api/bots/leave",
                                {"session_id": m["sid"], "lobby_id": m["lobby"]}, timeout=15)
                        finally:
                            out.left(nick, status, res)
                except NO_ANSWER:
                    pass  # no answer: recorded as "either" by the finally above

        threads = [threading.Thread(target=worker, args=(t, random.Random(rng.random())))
                   for t in range(self.THREADS)]
        kill_after = out.acks + rng.randint(10, 250)
        for t in threads:
            t.start()
        deadline = time.monotonic() + 20
        while out.acks < kill_after and time.monotonic() < deadline:
            time.sleep(0.002)
        self.kill_under_load(s, stop, threads, where)
        return kill_after

    def verify(self, s, fp, lobbies, out, where):
        """Checks the restarted server against the outcomes, then settles
        every "either" by what it lists."""
        self.assertEqual(out.unexpected, [], f"{where}: unexpected answers")
        listed = self.providers_by_name(s)
        for name, p in listed.items():
            if name == "base":
                continue
            self.assertIn(name, out.providers, f"{where}: provider {name} never registered")
        for name, p in out.providers.items():
            got = listed.get(name)
            if p["state"] == "present":
                self.assertIsNotNone(got, f"{where}: acknowledged registration {name} lost")
                self.assertEqual(got["provider_id"], p["id"], f"{where}: {name}")
            elif p["state"] == "absent":
                self.assertIsNone(got, f"{where}: registration {name} answered 503 is listed")
            else:
                p.update(state="present" if got else "absent", id=got and got["provider_id"])
        seen = {}
        run_ids = set(fp.run_ids)
        for lobby_id in lobbies:
            for nick, m in self.members(s, lobby_id).items():
                self.assertNotIn(nick, seen, f"{where}: {nick} is in two lobbies")
                seen[nick] = (lobby_id, m)
                self.assertIn(nick, out.sessions, f"{where}: member {m} never requested")
                self.assertIn(m["run_id"], run_ids, f"{where}: member {m} never accepted")
        for nick, e in out.sessions.items():
            got = seen.get(nick)
            if e["state"] == "present":
                self.assertIsNotNone(got, f"{where}: acknowledged join {nick} ({e}) lost "
                                     "(or a leave answered 503 happened)")
                self.assertEqual(got[0], e["lobby"], f"{where}: {nick} in another lobby")
                self.assertEqual(got[1]["session_id"], e["sid"], f"{where}: {nick}")
            elif e["state"] == "absent":
                self.assertIsNone(got, f"{where}: {nick} ({e}) is listed: an acknowledged "
                                  "leave came back, or a join answered 503 is there")
            else:
                if got:
                    e.update(state="present", sid=got[1]["session_id"])
                else:
                    e["state"] = "absent"

    def test_kill_9_during_register_join_leave_churn(self):
        seed, rng = seed_rng(self)
        fp = self.fake_provider()
        s = self.start_server()
        self.register(s, fp, name="base")
        lobbies = [self.create_lobby(s, f"churn-{i}")["id"] for i in range(self.LOBBIES)]
        out = Outcomes()
        for round_no in range(self.ROUNDS):
            where = f"seed={seed} round={round_no}"
            kill_after = self.churn(s, fp, rng, round_no, lobbies, out, where)
            where += f" kill_after={kill_after} acks"
            s = self.start_server()
            self.assertCleanStart(s, self.data(), where, idle=False)
            self.verify(s, fp, lobbies, out, where)
        # The server still takes changes after all that.
        self.joined(s, lobbies[0], "after-churn")


# -- 2. a full disk -------------------------------------------------------------------


def fill_disk(path):
    """Writes `path` until the file system is full (ENOSPC)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        for size in (65536, 4096, 256, 1):
            chunk = b"\0" * size
            while True:
                try:
                    if os.write(fd, chunk) == 0:
                        break
                except OSError as e:
                    if e.errno != errno.ENOSPC:
                        raise
                    break
    finally:
        os.close(fd)


class FullDiskTest(DurabilityCase):
    """A change whose journal record cannot be written (a 512 KiB tmpfs
    filled up) is answered 503 storage_failed and is not visible; a retry is
    503 again while the disk is full and 200 once there is space; kill -9
    and a restart keep exactly what was answered 200."""

    def mount_tmpfs(self):
        if os.geteuid() != 0:
            self.skipTest("the full-disk test mounts a tmpfs and needs root")
        d = tempfile.mkdtemp(prefix="vb-full-")
        res = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=512k", "tmpfs", d],
                             capture_output=True, text=True)
        if res.returncode != 0:
            os.rmdir(d)
            self.skipTest(f"cannot mount a tmpfs on {d}: {res.stderr.strip() or res.returncode}")

        def unmount():
            for srv in self.servers:
                srv.kill()
            if subprocess.run(["umount", d], capture_output=True).returncode != 0:
                subprocess.run(["umount", "-l", d], capture_output=True)
            try:
                os.rmdir(d)
            except OSError:
                pass

        self.addCleanup(unmount)
        return d

    def until_refused(self, what, attempt, limit=300):
        """Calls attempt(i) until it answers 503; returns (i, answer, the
        answers 200/201 before it)."""
        accepted = []
        for i in range(limit):
            answer = attempt(i)
            if answer[0] == 503:
                return i, answer, accepted
            self.assertIn(answer[0], (200, 201, 204), f"{what} {i} on a full disk: {answer}")
            accepted.append((i, answer))
        self.fail(f"{what}: {limit} changes on a full disk, none refused")

    def test_full_disk_answers_503_and_hides_the_change(self):
        d = self.mount_tmpfs()
        fp = self.fake_provider()
        s = self.start_server("--data-dir", d)
        pid = self.register(s, fp, name="main")
        lobby = self.create_lobby(s, "full")["id"]
        nicks = {f"before-{i}": self.joined(s, lobby, f"before-{i}")["session_id"]
                 for i in range(3)}
        regs = {}
        for i in range(8):
            regs[f"pre-{i}"] = self.register(s, fp, name=f"pre-{i}", bots=["other"])

        filler = os.path.join(d, "filler")
        fill_disk(filler)
        self.assertEqual(os.statvfs(d).f_bavail, 0, "the tmpfs is not full")

        # Joins: the journal's last page may still take a record or two;
        # those are answered 200 and are members like any other.
        i, refused, accepted = self.until_refused(
            "join", lambda i: self.join(s, lobby, "echo", f"full-{i}"))
        for j, (_, _, res) in accepted:
            nicks[f"full-{j}"] = res["session_id"]
        failed = f"full-{i}"
        self.assertError(refused, 503, "storage_failed")
        self.assertNotIn(failed, self.members(s, lobby),
                         "a join answered 503 (its record not written) is listed")
        # The provider had accepted it; the member is still not there.
        self.assertTrue(any(c[2].get("nick") == failed for c in fp.joins()), fp.joins())
        # A retry while the disk is full: 503 again, still not listed.
        self.assertError(self.join(s, lobby, "echo", failed), 503, "storage_failed")
        self.assertNotIn(failed, self.members(s, lobby))
        # Another join that is never retried.
        self.assertError(self.join(s, lobby, "echo", "never"), 503, "storage_failed")

        # Registrations and lobby creations: the same.
        i, refused_reg, accepted_regs = self.until_refused(
            "registration", lambda i: s.request(
                "POST", "/api/bots/providers/register",
                {"name": f"reg-{i}", "base_url": fp.base_url,
                 "bots": [{"name": "other", "description": ""}]}))
        regs.update({f"reg-{j}": res["provider_id"] for j, (_, _, res) in accepted_regs})
        failed_reg = f"reg-{i}"
        self.assertError(refused_reg, 503, "storage_failed")
        listed = self.providers_by_name(s)
        self.assertNotIn(failed_reg, listed, "a registration answered 503 is listed")
        i, refused_lobby, accepted_lobbies = self.until_refused(
            "lobby creation", lambda i: s.request("POST", "/api/lobby", {"name": f"lob-{i}"}))
        lobbies = {f"lob-{j}": res["id"] for j, (_, _, res) in accepted_lobbies}
        failed_lobby = f"lob-{i}"
        self.assertError(refused_lobby, 503, "storage_failed")
        names = [l["name"] for l in s.request("GET", "/api/lobby")[2]["lobbies"]]
        self.assertNotIn(failed_lobby, names, "a lobby creation answered 503 is listed")
        # A leave and a deregistration: refused, the member and the provider stay.
        leavers = sorted(nicks)
        i, refused_leave, accepted_leaves = self.until_refused(
            "leave", lambda i: s.request("POST", "/api/bots/leave",
                                         {"session_id": nicks[leavers[i]]}),
            limit=len(leavers))
        for j, _ in accepted_leaves:
            del nicks[leavers[j]]
        stays = leavers[i]
        self.assertError(refused_leave, 503, "storage_failed")
        self.assertIn(stays, self.members(s, lobby), "a leave answered 503 happened")
        leaving = sorted(n for n in regs if n != "main")
        i, refused_del, accepted_dels = self.until_refused(
            "deregistration", lambda i: s.request(
                "DELETE", f"/api/bots/providers/{regs[leaving[i]]}"), limit=len(leaving))
        for j, (status, _, _) in accepted_dels:
            self.assertEqual(status, 204)
            del regs[leaving[j]]
        kept = leaving[i]
        self.assertError(refused_del, 503, "storage_failed")
        self.assertIn(kept, self.providers_by_name(s), "a deregistration answered 503 happened")

        # Space again: the retries are answered 200, once.
        os.remove(filler)
        status, _, res = self.join(s, lobby, "echo", failed)
        self.assertEqual(status, 200, f"retry with space again: {res}\n{s.log()[-3000:]}")
        nicks[failed] = res["session_id"]
        status, _, again = self.join(s, lobby, "echo", failed)
        self.assertEqual((status, again.get("session_id")), (200, res["session_id"]), again)
        status, _, res = s.request("POST", "/api/bots/providers/register",
                                   {"name": failed_reg, "base_url": fp.base_url,
                                    "bots": [{"name": "other", "description": ""}]})
        self.assertEqual(status, 200, res)
        regs[failed_reg] = res["provider_id"]
        status, _, res = s.request("POST", "/api/lobby", {"name": failed_lobby})
        self.assertEqual(status, 201, res)
        lobbies[failed_lobby] = res["id"]
        self.assertEqual(set(self.members(s, lobby)), set(nicks))
        status, _, res = s.request("POST", "/api/bots/leave", {"session_id": nicks[stays]})
        self.assertEqual(status, 200, res)
        del nicks[stays]
        status, _, res = s.request("DELETE", f"/api/bots/providers/{regs[kept]}")
        self.assertEqual(status, 204, res)
        del regs[kept]
        self.assertEqual(set(self.members(s, lobby)), set(nicks))

        # kill -9 and a restart: what was answered 200, nothing else.
        self.kill(s)
        s = self.start_server("--data-dir", d)
        self.assertCleanStart(s, d)
        got = {n: m["session_id"] for n, m in self.members(s, lobby).items()}
        self.assertEqual(got, nicks, "members after the restart")
        listed = self.providers_by_name(s)
        self.assertEqual({n: p["provider_id"] for n, p in listed.items()},
                         dict(regs, main=pid), "providers after the restart")
        listing = {l["name"]: l["id"] for l in s.request("GET", "/api/lobby")[2]["lobbies"]}
        self.assertEqual(listing, dict(lobbies, full=lobby), "lobbies after the restart")
        self.joined(s, lobby, "after-restart")


# -- 3. compaction under load, with kill -9 -------------------------------------------


class CompactionKillTest(DurabilityCase):
    """With --journal-max-bytes 20000 the lobbies journal is compacted every
    few dozen joins while joins go on from several threads; SIGKILL at a
    compaction, while a snapshot is being written, and at a random moment:
    every join answered 200 is there exactly once, no temporary file is left
    behind."""

    ARGS = ("--journal-max-bytes", "20000")
    THREADS = 6
    LOBBIES = 4
    MAX_JOINS = 350  # per round

    def compaction_mark(self):
        """Changes whenever a compaction makes a new generation."""
        mark = []
        for name in ("lobbies.json.prev", "lobbies.journal.prev"):
            try:
                st = os.stat(self.data(name))
                mark.append((st.st_ino, st.st_mtime_ns, st.st_size))
            except FileNotFoundError:
                mark.append(None)
        return tuple(mark)

    def joins_until_killed(self, s, rng, round_no, lobbies, acked, attempted, kill_when, where):
        """Joins from THREADS threads; `kill_when(state)` is polled every
        millisecond and says when to kill. Returns what triggered the kill."""
        stop = threading.Event()
        lock = threading.Lock()
        state = {"sent": 0, "acks": 0, "unexpected": []}

        def worker(t, wrng):
            while not stop.is_set():
                with lock:
                    if state["sent"] >= self.MAX_JOINS:
                        return
                    state["sent"] += 1
                    nick = f"c{round_no}-{state['sent']}"
                    lobby_id = wrng.choice(lobbies)
                    attempted[nick] = lobby_id
                try:
                    status, _, res = self.join(s, lobby_id, "echo", nick)
                except NO_ANSWER:
                    continue  # no answer: either way
                with lock:
                    if status == 200:
                        acked[nick] = (lobby_id, res["session_id"])
                        state["acks"] += 1
                    else:
                        state["unexpected"].append((nick, status, res))

        threads = [threading.Thread(target=worker, args=(t, random.Random(rng.random())))
                   for t in range(self.THREADS)]
        for t in threads:
            t.start()
        why = None
        deadline = time.monotonic() + 90
        while why is None:
            with lock:
                snapshot = dict(state)
            snapshot["running"] = any(t.is_alive() for t in threads)
            why = kill_when(snapshot)
            if why is None and not snapshot["running"]:
                why = "all joins done"
            if why is None and time.monotonic() > deadline:
                why = "deadline"
            if why is None:
                time.sleep(0.001)
        self.kill_under_load(s, stop, threads, where)
        self.assertEqual(state["unexpected"], [],
                         f"{where}: joins not answered 200 during compaction")
        return why, state

    def verify(self, s, lobbies, acked, attempted, where):
        seen = {}
        for lobby_id in lobbies:
            for nick, m in self.members(s, lobby_id).items():
                self.assertNotIn(nick, seen, f"{where}: {nick} in two lobbies")
                seen[nick] = (lobby_id, m["session_id"])
                self.assertIn(nick, attempted, f"{where}: member {m} never requested")
        lost = sorted(n for n in acked if n not in seen)
        self.assertEqual(lost, [], f"{where}: acknowledged joins lost ({len(lost)} of "
                         f"{len(acked)})")
        for nick, (lobby_id, sid) in acked.items():
            self.assertEqual(seen[nick], (lobby_id, sid), f"{where}: {nick}")
        # What this restart loaded is on disk: it must stay.
        acked.update(seen)

    def test_compaction_under_load_with_kill_9(self):
        seed, rng = seed_rng(self)
        fp = self.fake_provider()
        s = self.start_server(*self.ARGS)
        self.register(s, fp)
        lobbies = [self.create_lobby(s, f"compact-{i}")["id"] for i in range(self.LOBBIES)]
        acked, attempted = {}, {}
        compacted = False

        def at_compaction(start_mark, delay):
            fired = [None]

            def when(state):
                if fired[0] is None and self.compaction_mark() != start_mark:
                    fired[0] = time.monotonic() + delay
                if fired[0] is not None and time.monotonic() >= fired[0]:
                    return "after a compaction"
                return None
            return when

        def at_snapshot_write(start_mark):
            def when(state):
                names = os.listdir(self.data())
                tmps = [n for n in names if n.endswith(".tmp")]
                if tmps:
                    return f"while writing {tmps}"
                if state["sent"] >= self.MAX_JOINS * 0.9 and self.compaction_mark() != start_mark:
                    return "after a compaction (no temporary file seen)"
                return None
            return when

        def at_rotation(start_mark):
            # Appends go to F.journal.next while a compaction is pending
            # (storage/journal.hpp); no such file: right after a compaction.
            def when(state):
                if os.path.exists(self.data("lobbies.journal.next")):
                    return "while lobbies.journal.next exists"
                if state["sent"] >= self.MAX_JOINS * 0.9 and self.compaction_mark() != start_mark:
                    return "after a compaction (no lobbies.journal.next seen)"
                return None
            return when

        def at_random(n):
            return lambda state: "random" if state["acks"] >= n else None

        plans = [("compaction", lambda m: at_compaction(m, 0)),
                 ("snapshot write", at_snapshot_write),
                 ("rotation pending", at_rotation),
                 ("random after compaction", lambda m: at_compaction(m, rng.uniform(0, 0.5))),
                 ("random", lambda m: at_random(rng.randint(1, 200)))]
        plans = plans * 2
        for round_no, (plan, make) in enumerate(plans):
            mark = self.compaction_mark()
            where = f"seed={seed} round={round_no} ({plan})"
            why, state = self.joins_until_killed(s, rng, round_no, lobbies, acked, attempted,
                                                 make(mark), where)
            where += f": killed {why} after {state['acks']} of {state['sent']} joins"
            if self.compaction_mark() != mark:
                compacted = True
            if plan != "random" and round_no < len(plans) // 2:
                self.assertNotIn(why, ("all joins done", "deadline"),
                                 f"{where}: no compaction seen; files: "
                                 f"{sorted(os.listdir(self.data()))}\n{s.log()[-3000:]}")
            at_kill = tmp_files(self.data())
            s = self.start_server(*self.ARGS)
            # Start-up removed the temporaries the crash left (a compaction
            # the new run starts at once may have made new ones: not these).
            left = set(at_kill.items()) & set(tmp_files(self.data()).items())
            self.assertEqual(left, set(), f"{where}: the crash's temporary files are still "
                             f"there after the start ({sorted(os.listdir(self.data()))})")
            self.assertEqual(quarantined(self.data()), [], f"{where}:\n{s.log()}")
            self.assertEqual(error_lines(s), [], f"{where}:\n{s.log()}")
            self.verify(s, lobbies, acked, attempted, where)
            # Once the run's own compaction is done, no temporary file is left.
            self.assertTrue(wait_until(lambda: not leftovers(self.data()), 10),
                            f"{where}: temporary files stay: {sorted(os.listdir(self.data()))}"
                            f"\n{s.log()[-3000:]}")
        self.assertTrue(compacted)
        files = set(os.listdir(self.data()))
        for name in ("lobbies.json", "lobbies.json.prev", "lobbies.journal",
                     "lobbies.journal.prev"):
            self.assertIn(name, files, f"after compactions: {sorted(files)}")
        # Every record left in the journals is intact, and --dump-journal
        # reads them as this file does (batches of several records too).
        for name in ("lobbies.journal", "lobbies.journal.prev"):
            records = checked_journal(self, self.data(name))
            res = run_server_cli(["--dump-journal", self.data(name)], self.tmp.path)
            self.assertEqual(res.returncode, 0, f"{name}: {res.stderr}")
            lines = [json.loads(l) for l in res.stdout.splitlines() if l.strip()]
            self.assertEqual([(l["seq"], l["offset"], l["record"]) for l in lines],
                             [(r.seq, r.offset, r.json) for r in records], name)


class SnapshotFallbackTest(DurabilityCase):
    """SPEC §3: a corrupt newest snapshot is moved aside and the server
    falls back to F.prev plus the journal segments after it
    (F.journal.prev, F.journal): the same state."""

    def test_corrupt_newest_snapshot_falls_back_to_prev_and_its_journal(self):
        s, lobby = self.server_with_lobby("--journal-max-bytes", "20000")
        joined = {}
        lock = threading.Lock()

        def worker(t):
            for k in range(40):
                nick = f"fb-{t}-{k}"
                res = self.joined(s, lobby, nick)
                with lock:
                    joined[nick] = res["session_id"]

        threads = [threading.Thread(target=worker, args=(t,)) for t in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        self.assertEqual(len(joined), 160, "a join thread failed (see above)")
        names = lambda: set(os.listdir(self.data()))
        # Wait for the compaction to be over: both generations, no
        # rotation pending, nothing being written.
        done = wait_until(lambda: {"lobbies.json.prev", "lobbies.journal.prev"} <= names()
                          and not leftovers(self.data())
                          and "lobbies.journal.next" not in names(), 10)
        self.assertTrue(done, sorted(names()))
        self.kill(s)
        newest = self.data("lobbies.json")
        with open(newest, "r+b") as f:
            f.truncate(os.path.getsize(newest) // 2)
        torn = read_bytes(newest)
        s = self.start_server()
        moved = glob.glob(self.data("lobbies.json.corrupt-*"))
        self.assertEqual(len(moved), 1, f"{sorted(names())}\n{s.log()}")
        self.assertEqual(read_bytes(moved[0]), torn)
        got = {n: m["session_id"] for n, m in self.members(s, lobby).items()}
        self.assertEqual(len(got), len(joined), f"{len(joined) - len(got)} members lost:\n"
                         + s.log())
        self.assertEqual(got, joined)
        # And it goes on from there.
        self.joined(s, lobby, "after-fallback")
        self.kill(s)
        s = self.start_server()
        self.assertEqual(len(self.members(s, lobby)), len(joined) + 1, s.log())


# -- 4. a torn last record ----------------------------------------------------------------


class TornTailTest(DurabilityCase):
    """The file cut in the middle of its last record, as a crash mid-append
    leaves it: the record is cut off with a warning naming the file and the
    offset, the records before it load."""

    def test_torn_last_record_is_cut_and_the_rest_loads(self):
        s, lobby = self.server_with_lobby()
        joined = {f"torn-{i}": self.joined(s, lobby, f"torn-{i}") for i in range(5)}
        self.kill(s)
        path = self.data("lobbies.journal")
        records = checked_journal(self, path)
        last = records[-1]
        self.assertTrue(last.mentions("torn-4") and last.mentions(joined["torn-4"]["session_id"]),
                        f"the last record is not the last join: {last}")
        self.assertFalse(records[-2].continues, f"the last join is not a batch of its own: "
                         f"{records[-2:]}")
        cut = last.offset + HEADER.size + last.length // 2
        os.truncate(path, cut)

        s = self.start_server()
        line = s.wait_for_line(r"cut a torn record at offset", 5)
        m = re.search(r"journal (\S+): cut a torn record at offset (\d+)", line)
        self.assertIsNotNone(m, line)
        self.assertTrue(m.group(1).endswith("lobbies.journal"), line)
        self.assertEqual(int(m.group(2)), last.offset, f"{line}; the last record: {last}")
        self.assertIn("warn", line.lower())
        self.assertEqual(quarantined(self.data()), [], "a torn tail is not corruption")
        self.assertEqual(error_lines(s), [], s.log())
        members = self.members(s, lobby)
        self.assertEqual({n: m["session_id"] for n, m in members.items()},
                         {n: j["session_id"] for n, j in joined.items() if n != "torn-4"})
        # New joins work (the lost one again too) and survive another kill.
        joined["torn-4"] = self.joined(s, lobby, "torn-4")
        joined["torn-5"] = self.joined(s, lobby, "torn-5")
        self.kill(s)
        s = self.start_server()
        self.assertEqual(s.count_lines(r"cut a torn record"), 0, s.log())
        self.assertCleanStart(s, self.data())
        members = self.members(s, lobby)
        self.assertEqual({n: m["session_id"] for n, m in members.items()},
                         {n: j["session_id"] for n, j in joined.items()})
        checked_journal(self, path)


    def test_torn_header_is_cut_too(self):
        # A crash can stop an append inside the 16-byte header as well.
        s, lobby = self.server_with_lobby()
        joined = {f"hdr-{i}": self.joined(s, lobby, f"hdr-{i}") for i in range(3)}
        self.kill(s)
        path = self.data("lobbies.journal")
        last = checked_journal(self, path)[-1]
        self.assertTrue(last.mentions("hdr-2"), last)
        os.truncate(path, last.offset + 7)
        s = self.start_server()
        line = s.wait_for_line(r"cut a torn record at offset", 5)
        self.assertRegex(line, rf"journal \S*lobbies\.journal: cut a torn record at offset "
                         rf"{last.offset}\b")
        self.assertEqual(quarantined(self.data()), [], s.log())
        self.assertEqual({n: m["session_id"] for n, m in self.members(s, lobby).items()},
                         {n: j["session_id"] for n, j in joined.items() if n != "hdr-2"})
        joined["hdr-3"] = self.joined(s, lobby, "hdr-3")
        self.kill(s)
        s = self.start_server()
        self.assertCleanStart(s, self.data())
        self.assertEqual(set(self.members(s, lobby)), {"hdr-0", "hdr-1", "hdr-3"})


# -- 5. a bad record before valid ones -----------------------------------------------------


class MidFileCorruptionTest(DurabilityCase):
    """A flipped byte inside an early record (valid records after it): not
    a crash but a damaged disk. The journal is moved aside, unchanged, as
    lobbies.journal.corrupt-<UTC>; the state of the records before the bad
    one loads; the error is logged and counted."""

    def test_bad_record_before_valid_ones_quarantines_the_journal(self):
        fp = self.fake_provider()
        s = self.start_server()
        pid = self.register(s, fp)
        lobby = self.create_lobby(s)["id"]
        joined = [self.joined(s, lobby, f"mid-{i}") for i in range(6)]
        self.kill(s)
        path = self.data("lobbies.journal")
        records = checked_journal(self, path)
        [bad] = [r for r in records if r.mentions("mid-2")]
        i = records.index(bad)
        self.assertFalse(bad.continues or records[i - 1].continues,
                         f"sequential joins share a batch: {records}")
        self.assertIs(records[-1].mentions("mid-5"), True, records[-1])
        flip_byte(path, bad.offset + HEADER.size + bad.length // 2)
        damaged = read_bytes(path)

        s = self.start_server()
        moved = glob.glob(self.data("lobbies.journal.corrupt-*"))
        self.assertEqual(len(moved), 1, f"{os.listdir(self.data())}\n{s.log()}")
        self.assertRegex(os.path.basename(moved[0]),
                         r"^lobbies\.journal\.corrupt-\d{8}T\d{6}Z(-\d+)?$")
        self.assertEqual(read_bytes(moved[0]), damaged, "the quarantined journal was changed")
        self.assertRegex(s.log(), r"(?i)\berror\b.*lobbies\.journal", s.log())
        # The valid prefix: the lobby and the members before the bad record.
        members = self.members(s, lobby)
        self.assertEqual({n: m["session_id"] for n, m in members.items()},
                         {j["nick"]: j["session_id"] for j in joined[:2]}, s.log())
        text, lines = metric_lines(s, "quarantin", "journal")
        self.assertTrue("quarantined" in text, "/metrics mentions no quarantined file; its "
                        "lines with 'quarantin' or 'journal': "
                        + ("\n".join(lines) or "none") + "\nthe log's journal lines:\n"
                        + "\n".join(l for l in s.log().splitlines() if "journal" in l))
        # The server answers, and takes changes that stay.
        self.assertEqual(s.request("GET", "/api/health")[0], 200)
        self.assertEqual(s.request("GET", f"/api/bots/providers/{pid}")[0], 200)
        after = self.joined(s, lobby, "mid-after")
        self.kill(s)
        s = self.start_server()
        self.assertEqual(len(glob.glob(self.data("lobbies.journal.corrupt-*"))), 1,
                         os.listdir(self.data()))
        self.assertEqual(error_lines(s), [], s.log())
        members = self.members(s, lobby)
        self.assertEqual({n: m["session_id"] for n, m in members.items()},
                         {j["nick"]: j["session_id"] for j in joined[:2] + [after]})


# -- 6. --dump-journal --------------------------------------------------------------------------


class DumpJournalTest(DurabilityCase):
    """`voicebot-server --dump-journal FILE`: one JSON line per record
    ({"seq", "offset", "record"}), exit 0; with a bad record exit 1 and the
    bad record's offset on stderr. It starts no server and changes no file."""

    def dump(self, path):
        res = run_server_cli(["--dump-journal", path], self.tmp.path)
        self.assertNotIn("listening on", res.stdout + res.stderr)
        return res

    def test_dump_journal_prints_records_and_names_a_bad_offset(self):
        fp = self.fake_provider()
        s = self.start_server()
        self.register(s, fp)
        lobby = self.create_lobby(s)["id"]
        for i in range(4):
            self.joined(s, lobby, f"dump-{i}")
        self.kill(s)
        for name in ("lobbies.journal", "bot_providers.journal"):
            path = self.data(name)
            records = checked_journal(self, path)
            before = read_bytes(path)
            res = self.dump(path)
            self.assertEqual(res.returncode, 0, f"{name}: {res.stderr}")
            lines = [json.loads(l) for l in res.stdout.splitlines() if l.strip()]
            self.assertEqual(len(lines), len(records), res.stdout)
            seqs = [l["seq"] for l in lines]
            self.assertEqual(seqs, list(range(seqs[0], seqs[0] + len(seqs))), res.stdout)
            self.assertEqual([(l["seq"], l["offset"], l["record"]) for l in lines],
                             [(r.seq, r.offset, r.json) for r in records], name)
            self.assertEqual(read_bytes(path), before, f"--dump-journal changed {name}")
        records = checked_journal(self, self.data("lobbies.journal"))
        self.assertGreaterEqual(len(records), 5)  # the lobby and 4 joins

        # A byte flipped in the payload of the second record.
        bad = records[1]
        path = self.data("lobbies.journal")
        flip_byte(path, bad.offset + HEADER.size + bad.length // 2)
        damaged = read_bytes(path)
        res = self.dump(path)
        self.assertEqual(res.returncode, 1, res)
        self.assertRegex(res.stderr, rf"\b{bad.offset}\b", res.stderr)
        self.assertEqual(read_bytes(path), damaged, "--dump-journal changed the file")

        # An empty journal is valid.
        empty = os.path.join(self.tmp.path, "empty.journal")
        open(empty, "wb").close()
        res = self.dump(empty)
        self.assertEqual((res.returncode, res.stdout.strip()), (0, ""), res)


# -- 7. data dirs of the previous version and of the original server -------------------------

def old_provider(pid, fp, name="old-main"):
    return {"base_url": fp.base_url,
            "bots": [{"description": "Repeats lobby chat", "name": "echo"},
                     {"description": "Says hello", "name": "greeter"}],
            "description": "from the previous version", "last_seen": 1796161479.4246147,
            "name": name, "provider_id": pid, "registered_at": 1796161479.4162226,
            "status": "online", "transport": "http"}


def old_session(sid, nick, pid, run_id, bot="echo", joined_at=1796161480.25):
    return {"bot_name": bot, "is_bot": True, "joined_at": joined_at, "nick": nick,
            "provider_id": pid, "run_id": run_id, "session_id": sid}


def old_lobby(lid, name, sessions, private=False, created_at=1796161479.4195163):
    return {"created_at": created_at, "id": lid, "members": len(sessions), "name": name,
            "private": private, "sessions": sessions}


class OldDataDirTest(DurabilityCase):
    """A data dir of the previous version (snapshots only, no journal, no
    journal_seq) and the original Python server's bot_providers.json load
    unchanged, take changes, and keep both after kill -9."""

    PID = "d19a5161-185e-4250-abfa-1be6a4390399"

    def write(self, name, obj):
        os.makedirs(self.data(), exist_ok=True)
        for n in (name, name + ".prev"):  # the previous version kept both
            with open(self.data(n), "w") as f:
                json.dump(obj, f, separators=(",", ":"))

    def check_members(self, s, lobby_id, expected):
        got = self.members(s, lobby_id)
        self.assertEqual(set(got), {m["nick"] for m in expected})
        for m in expected:
            g = got[m["nick"]]
            self.assertEqual({k: g[k] for k in ("session_id", "is_bot", "bot_name",
                                                "provider_id", "run_id")},
                             {k: m[k] for k in ("session_id", "is_bot", "bot_name",
                                                "provider_id", "run_id")})
            self.assertAlmostEqual(g["joined_at"], m["joined_at"], places=3)

    def test_previous_version_snapshots_load_and_stay(self):
        fp = self.fake_provider(("echo", "greeter"))
        prov = old_provider(self.PID, fp)
        room = [old_session("50bfc986-710d-4ff8-bc3a-e91631b4a121", "E1", self.PID,
                            "0b489f00-75d8-4f4a-a0b9-2e847c9f0272")]
        secret = [old_session("6a1d2c3b-0000-4000-8000-000000000001", "G1", self.PID,
                              "run-g1", bot="greeter"),
                  old_session("6a1d2c3b-0000-4000-8000-000000000002", "E2", self.PID,
                              "run-e2", joined_at=1796161481.5)]
        lobbies = [old_lobby("f902264a-f7e5-4aa2-929b-7d74ce0e6226", "room", room),
                   old_lobby("0c0c0c0c-1111-4222-8333-444444444444", "secret", secret,
                             private=True, created_at=1796161470.0),
                   old_lobby("0d0d0d0d-1111-4222-8333-444444444444", "empty", [],
                             created_at=1796161471.0)]
        self.write("bot_providers.json", {"format": "voicebot-server/bot_providers",
                                          "providers": [prov], "version": 1})
        self.write("lobbies.json", {"format": "voicebot-server/lobbies", "lobbies": lobbies,
                                    "version": 1})
        s = self.start_server()
        self.assertEqual(quarantined(self.data()), [], s.log())
        self.assertEqual(error_lines(s), [], s.log())

        def check_old(s, room_members, secret_members):
            status, _, p = s.request("GET", f"/api/bots/providers/{self.PID}")
            self.assertEqual(status, 200, p)
            self.assertEqual({k: p[k] for k in ("name", "base_url", "description", "transport")},
                             {k: prov[k] for k in ("name", "base_url", "description",
                                                   "transport")})
            self.assertEqual(sorted((b["name"], b["description"]) for b in p["bots"]),
                             sorted((b["name"], b["description"]) for b in prov["bots"]))
            self.assertAlmostEqual(p["registered_at"], prov["registered_at"], places=3)
            self.assertEqual(s.request("GET", "/api/bots")[2]["providers"],
                             {"echo": self.PID, "greeter": self.PID})
            listing = {l["id"]: l for l in s.request("GET", "/api/lobby")[2]["lobbies"]}
            self.assertEqual(set(listing), {lobbies[0]["id"], lobbies[2]["id"]})  # not private
            for lob in lobbies:
                status, _, got = s.request("GET", f"/api/lobby/{lob['id']}")
                self.assertEqual(status, 200, got)
                self.assertEqual((got["name"], got["private"]), (lob["name"], lob["private"]))
                self.assertAlmostEqual(got["created_at"], lob["created_at"], places=3)
            self.check_members(s, lobbies[0]["id"], room_members)
            self.check_members(s, lobbies[1]["id"], secret_members)
            self.check_members(s, lobbies[2]["id"], [])

        check_old(s, room, secret)
        # Changes on top of the old state: a join, the retried old join (the
        # old member, the provider not called), a leave of an old member.
        new = self.joined(s, lobbies[0]["id"], "E-new")
        self.assertEqual(new["provider_id"], self.PID)
        calls = len(fp.joins())
        status, _, again = self.join(s, lobbies[0]["id"], "echo", "E1")
        self.assertEqual((status, again["session_id"]), (200, room[0]["session_id"]), again)
        self.assertEqual(len(fp.joins()), calls)
        status, _, res = s.request("POST", "/api/bots/leave",
                                   {"session_id": secret[1]["session_id"]})
        self.assertEqual(status, 200, res)
        self.kill(s)
        s = self.start_server()
        self.assertCleanStart(s, self.data())
        new_member = old_session(new["session_id"], "E-new", self.PID, new["run_id"])
        new_member["joined_at"] = self.members(s, lobbies[0]["id"])["E-new"]["joined_at"]
        check_old(s, room + [new_member], secret[:1])

    def test_seed_bot_providers_json_loads_and_stays(self):
        fp = self.fake_provider(("ai_chatbot",))
        seed_pid = "7f0c2a52-1c39-4a8e-9d43-2b7a4f7d9e01"
        other_pid = "0b7e9d1a-55aa-4c11-8f00-93d1c2b3a4f5"
        seed = {
            seed_pid: {"provider_id": seed_pid, "base_url": fp.base_url,
                       "name": "voicebot-main", "description": "AI voicebots",
                       "registered_at": 1726000000.5, "last_seen": 1726000300.25,
                       "bots": [{"name": "ai_chatbot", "description": "chats"}]},
            other_pid: {"provider_id": other_pid, "base_url": "http://127.0.0.1:9",
                        "name": "voicebot-tts", "description": "",
                        "registered_at": 1726000001.0, "last_seen": 1726000001.0},
        }
        os.makedirs(self.data())
        with open(self.data("bot_providers.json"), "w") as f:
            json.dump(seed, f, indent=2)  # as the original server wrote it
        s = self.start_server()
        self.assertEqual(quarantined(self.data()), [], s.log())
        self.assertEqual(error_lines(s), [], s.log())

        def check_seed(s):
            listed = {p["provider_id"]: p
                      for p in s.request("GET", "/api/bots/providers")[2]["providers"]}
            self.assertEqual(set(listed), set(seed))
            for pid, p in seed.items():
                got = listed[pid]
                self.assertEqual((got["name"], got["base_url"], got["description"],
                                  got["transport"]),
                                 (p["name"], p["base_url"], p["description"], "http"))
                self.assertEqual([(b["name"], b["description"]) for b in got["bots"]],
                                 [(b["name"], b["description"]) for b in p.get("bots", [])])
                self.assertAlmostEqual(got["registered_at"], p["registered_at"], places=3)

        check_seed(s)
        lobby = self.create_lobby(s, "seeded")["id"]
        res = self.joined(s, lobby, "chat", bot="ai_chatbot")
        self.assertEqual(res["provider_id"], seed_pid)
        self.kill(s)
        s = self.start_server()
        self.assertCleanStart(s, self.data())
        check_seed(s)
        [m] = self.sessions(s, lobby)
        self.assertEqual((m["session_id"], m["nick"], m["bot_name"], m["provider_id"]),
                         (res["session_id"], "chat", "ai_chatbot", seed_pid))


if __name__ == "__main__":
    unittest.main()
