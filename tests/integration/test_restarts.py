"""Restarts are invisible (SPEC §3): what was acknowledged survives kill -9
and SIGTERM, the first requests after a restart work, and a provider that
is down is 503 (never 404). The real server, a fake HTTP provider in this
process, one temporary data dir shared by the restarts of a test."""

import datetime
import glob
import json
import os
import random
import re
import signal
import threading
import time
import unittest

from harness import FakeProvider, ServerTestCase


class RestartTest(ServerTestCase):
    def join_in_background(self, s, lobby_id, nick):
        """Starts a join of the echo bot on its own thread; returns the
        thread and a list that gets the answer, or the OSError of a
        connection closed without one."""
        answer = []

        def go():
            try:
                answer.append(self.join(s, lobby_id, "echo", nick))
            except OSError as e:
                answer.append(e)

        t = threading.Thread(target=go)
        t.start()
        return t, answer

    def join_in_flight(self, mode, nick):
        """A server with a fake provider in `mode` ("hold", "hang") and a
        lobby, and a join in the background that reached the provider:
        (provider, server, lobby, thread, answer list)."""
        fp = self.fake_provider()
        s = self.start_server()
        self.register(s, fp)
        lobby = self.create_lobby(s)
        fp.mode = mode
        t, answer = self.join_in_background(s, lobby["id"], nick)
        fp.wait_for(lambda calls: len(calls) == 1)
        return fp, s, lobby, t, answer

    def restart(self, old, sig=signal.SIGKILL, *args):
        if sig == signal.SIGKILL:
            old.kill()
            self.assertEqual(old.proc.returncode, -signal.SIGKILL)
        else:
            self.assertEqual(old.stop(sig), 0, old.log())
        s = self.start_server(*args)
        self.assertNotRegex(s.log(), r"corrupt|error")
        self.assertEqual(glob.glob(self.data("*.tmp")), [])
        return s

    def populate(self, s, fp):
        pid = self.register(s, fp, name="voicebot-main")
        lobby = self.create_lobby(s, "room")
        hidden = self.create_lobby(s, "secret", private=True)
        status, _, joined = self.join(s, lobby["id"], "echo", "Echo")
        self.assertEqual(status, 200, joined)
        status, _, joined2 = self.join(s, hidden["id"], "greeter", "Hi")
        self.assertEqual(status, 200, joined2)
        return pid, lobby, hidden, joined, joined2

    def check_survived(self, s, fp, pid, lobby, hidden, joined, joined2):
        # The provider, as registered.
        status, _, p = s.request("GET", f"/api/bots/providers/{pid}")
        self.assertEqual(status, 200, p)
        self.assertEqual((p["name"], p["base_url"], p["transport"]),
                         ("voicebot-main", fp.base_url, "http"))
        self.assertEqual(sorted(b["name"] for b in p["bots"]), ["echo", "greeter"])
        bots = s.request("GET", "/api/bots")[2]
        self.assertEqual(bots["providers"], {"echo": pid, "greeter": pid})
        # The lobbies, the private one still private, with their bot members.
        listing = s.request("GET", "/api/lobby")[2]["lobbies"]
        self.assertEqual([(l["id"], l["name"]) for l in listing], [(lobby["id"], "room")])
        for lob, j in [(lobby, joined), (hidden, joined2)]:
            status, _, got = s.request("GET", f"/api/lobby/{lob['id']}")
            self.assertEqual(status, 200, got)
            self.assertEqual((got["name"], got["private"], got["created_at"]),
                             (lob["name"], lob["private"], lob["created_at"]))
            [m] = got["sessions"]
            self.assertEqual((m["session_id"], m["nick"], m["is_bot"], m["bot_name"],
                              m["provider_id"], m["run_id"]),
                             (j["session_id"], j["nick"], True, j["bot_name"], pid, j["run_id"]))
        # Creating a lobby of the same name finds the old one.
        self.assertEqual(s.request("POST", "/api/lobby", {"name": "room"})[0], 200)
        health = s.request("GET", "/api/health")[2]
        self.assertEqual((health["providers"], health["lobbies"]), (1, 2))

    def check_joins_work(self, s, fp, lobby, joined):
        calls = len(fp.joins())
        # The very first join after the restart, another nick: 200.
        status, _, res = self.join(s, lobby["id"], "echo", "After restart")
        self.assertEqual(status, 200, res)
        self.assertEqual(len(fp.joins()), calls + 1)
        self.assertEqual(fp.joins()[-1][2]["server_url"], f"http://127.0.0.1:{s.port}")
        # The retried old join is the old member; the provider is not called.
        status, _, again = self.join(s, lobby["id"], "echo", "Echo")
        self.assertEqual(status, 200, again)
        self.assertEqual((again["session_id"], again["run_id"]),
                         (joined["session_id"], joined["run_id"]))
        self.assertEqual(len(fp.joins()), calls + 1)

    def test_kill_9_loses_nothing_acknowledged(self):
        fp = self.fake_provider(bots=("echo", "greeter"))
        s = self.start_server()
        facts = self.populate(s, fp)
        s = self.restart(s, signal.SIGKILL)
        self.check_survived(s, fp, *facts)
        self.check_joins_work(s, fp, facts[1], facts[3])
        # And once more, with what happened since.
        s = self.restart(s, signal.SIGKILL)
        names = sorted(m["nick"] for m in self.sessions(s, facts[1]["id"]))
        self.assertEqual(names, ["After restart", "Echo"])

    def test_sigterm_restart_loses_nothing(self):
        fp = self.fake_provider(bots=("echo", "greeter"))
        s = self.start_server()
        facts = self.populate(s, fp)
        pid = facts[0]
        # Heartbeats are not durable one by one, but the final snapshot has them.
        status, _, hb = s.request("POST", f"/api/bots/providers/{pid}/heartbeat", {})
        self.assertEqual(status, 200)
        s = self.restart(s, signal.SIGTERM)
        self.check_survived(s, fp, *facts)
        self.assertAlmostEqual(s.request("GET", f"/api/bots/providers/{pid}")[2]["last_seen"],
                               hb["last_seen"], places=3)
        self.check_joins_work(s, fp, facts[1], facts[3])
        s = self.restart(s, signal.SIGINT)
        self.assertEqual(len(self.sessions(s, facts[1]["id"])), 2)

    def test_leave_delete_and_deregister_are_durable(self):
        fp = self.fake_provider(bots=("echo", "greeter"))
        s = self.start_server()
        pid, lobby, hidden, joined, joined2 = self.populate(s, fp)
        status, _, _ = s.request("POST", "/api/bots/leave", {"session_id": joined["session_id"]})
        self.assertEqual(status, 200)
        status, _, _ = s.request(
            "DELETE", f"/api/lobby/{hidden['id']}/sessions/{joined2['session_id']}")
        self.assertEqual(status, 204)
        fp.wait_for_stop(joined["run_id"])
        fp.wait_for_stop(joined2["run_id"])
        s = self.restart(s, signal.SIGKILL)
        self.assertEqual(self.sessions(s, lobby["id"]), [])
        self.assertEqual(self.sessions(s, hidden["id"]), [])
        self.assertEqual(s.request("DELETE", f"/api/bots/providers/{pid}")[0], 204)
        s = self.restart(s, signal.SIGKILL)
        self.assertError(s.request("GET", f"/api/bots/providers/{pid}"), 404,
                         "provider_not_found")
        self.assertError(self.join(s, lobby["id"], "echo", "x"), 404, "bot_not_found")
        # The lobbies stay.
        self.assertEqual(s.request("GET", f"/api/lobby/{lobby['id']}")[0], 200)

    def test_people_are_kept_with_their_lobby(self):
        # SPEC §9: people's sessions are durable like bot members.
        fp = self.fake_provider()
        s = self.start_server()
        self.register(s, fp)
        lobby = self.create_lobby(s)
        status, _, alice = s.request("POST", f"/api/lobby/{lobby['id']}/sessions",
                                     {"nick": "Alice"})
        self.assertEqual(status, 201, alice)
        self.assertEqual(self.join(s, lobby["id"], "echo", "Bot")[0], 200)
        s = self.restart(s, signal.SIGKILL)
        self.assertEqual([(m["nick"], m["is_bot"]) for m in self.sessions(s, lobby["id"])],
                         [("Alice", False), ("Bot", True)])
        # Its DELETE is durable too.
        status, _, _ = s.request("DELETE",
                                 f"/api/lobby/{lobby['id']}/sessions/{alice['session_id']}")
        self.assertEqual(status, 204)
        s = self.restart(s, signal.SIGKILL)
        self.assertEqual([m["nick"] for m in self.sessions(s, lobby["id"])], ["Bot"])

    def test_server_restarted_while_the_provider_is_down_answers_503_not_404(self):
        # The original service's bug: after a restart, joins were 404 until
        # the providers registered again.
        fp = self.fake_provider()
        s = self.start_server()
        pid = self.register(s, fp)
        lobby = self.create_lobby(s)
        s.kill()
        fp.refuse()
        s = self.start_server()
        status, headers, body = self.join(s, lobby["id"], "echo", "E")
        self.assertEqual(status, 503, body)
        self.assertIn("retry-after", headers)
        self.assertEqual(self.sessions(s, lobby["id"]), [])
        # The provider comes back on its old address, without registering.
        fp.listen_again()
        status, _, res = self.join(s, lobby["id"], "echo", "E")
        self.assertEqual(status, 200, res)
        self.assertEqual(res["provider_id"], pid)
        self.assertEqual(len(self.sessions(s, lobby["id"])), 1)

    def test_provider_restart_is_invisible(self):
        fp = self.fake_provider()
        s = self.start_server()
        pid = self.register(s, fp)
        lobby = self.create_lobby(s)
        self.assertEqual(self.join(s, lobby["id"], "echo", "one")[0], 200)
        # The provider restarts on the same port and registers again with its id.
        port = fp.port
        fp.close()
        fp2 = FakeProvider(("echo",), port=port)
        self.providers.append(fp2)
        self.assertEqual(self.register(s, fp2, provider_id=pid), pid)
        status, _, res = self.join(s, lobby["id"], "echo", "two")
        self.assertEqual(status, 200, res)
        self.assertEqual(len(fp2.joins()), 1)
        self.assertEqual(len(self.sessions(s, lobby["id"])), 2)

    # SPEC §6: SIGTERM finishes in-flight requests, even one waiting for a
    # provider.
    def test_sigterm_finishes_an_in_flight_join(self):
        fp, s, lobby, t, answer = self.join_in_flight("hold", "late")
        s.proc.send_signal(signal.SIGTERM)
        s.wait_for_line("SIGTERM received")
        fp.gate.set()
        self.assertEqual(s.proc.wait(10), 0, s.log())
        t.join(10)
        # The member is there after the restart either way.
        s2 = self.start_server()
        [member] = self.sessions(s2, lobby["id"])
        self.assertEqual(member["nick"], "late")
        # And the client was told so.
        self.assertIsInstance(answer[0], tuple, f"no answer: {answer[0]!r}")
        self.assertEqual(answer[0][0], 200, answer)
        self.assertEqual(answer[0][2]["session_id"], member["session_id"])

    def test_sigterm_with_a_hung_provider_still_exits_within_5_s(self):
        fp, s, lobby, t, answer = self.join_in_flight("hang", "stuck")
        started = time.monotonic()
        s.proc.send_signal(signal.SIGTERM)
        self.assertEqual(s.proc.wait(10), 0, s.log())
        self.assertLess(time.monotonic() - started, 5.0)
        t.join(10)
        # Either the 503 of the dispatch timeout, or no answer; never a member.
        if not isinstance(answer[0], Exception):
            self.assertEqual(answer[0][0], 503, answer)
        s = self.start_server()
        self.assertEqual(self.sessions(s, lobby["id"]), [])


class ConcurrentKillTest(ServerTestCase):
    """Registrations, lobby creations and joins from many threads while the
    server is killed at a random moment: everything answered 200/201 before
    the kill is there after the restart; nothing half-done appears."""

    N = 12        # requests of each kind per round
    # How each round ends; SIGTERM must keep the promise as well.
    SIGNALS = [signal.SIGKILL, signal.SIGKILL, signal.SIGKILL, signal.SIGTERM,
               signal.SIGKILL, signal.SIGKILL]

    def fire(self, s, round_no, lobby_id, fp, rng, sig):
        results = []
        lock = threading.Condition()
        jobs = []
        for i in range(self.N):
            jobs.append(("provider", f"r{round_no}-p{i}", "POST", "/api/bots/providers/register",
                         {"name": f"r{round_no}-p{i}", "base_url": fp.base_url,
                          "bots": [{"name": "echo", "description": ""},
                                   {"name": f"bot{round_no}x{i}", "description": ""}]}))
            jobs.append(("lobby", f"r{round_no}-l{i}", "POST", "/api/lobby",
                         {"name": f"r{round_no}-l{i}"}))
            jobs.append(("join", f"r{round_no}-n{i}", "POST", "/api/bots/echo/join",
                         {"lobby_id": lobby_id, "nick": f"r{round_no}-n{i}"}))
        rng.shuffle(jobs)
        acks = [0]

        def run(job):
            kind, key, method, path, body = job
            try:
                status, _, res = s.request(method, path, body, timeout=15)
            except OSError as e:
                status, res = None, repr(e)
            with lock:
                results.append((kind, key, status, res))
                if status in (200, 201):
                    acks[0] += 1
                lock.notify_all()

        threads = [threading.Thread(target=run, args=(j,)) for j in jobs]
        kill_after = rng.randint(0, len(jobs) - 1)
        for t in threads:
            t.start()
        with lock:
            lock.wait_for(lambda: acks[0] >= kill_after or len(results) == len(jobs), 30)
        if sig == signal.SIGKILL:
            s.kill()
        else:
            self.assertEqual(s.stop(sig), 0, s.log())
        for t in threads:
            t.join(20)
        self.assertEqual(len(results), len(jobs))
        return results, kill_after

    def test_acknowledged_means_durable_under_kill_9(self):
        seed = int(os.environ.get("VB_SEED", random.randrange(1 << 30)))
        rng = random.Random(seed)
        fp = self.fake_provider()
        s = self.start_server()
        self.register(s, fp, name="base")
        main_lobby = self.create_lobby(s, "main")["id"]
        acked = {"provider": {}, "lobby": {}, "join": {}}
        for round_no, sig in enumerate(self.SIGNALS):
            results, kill_after = self.fire(s, round_no, main_lobby, fp, rng, sig)
            where = f"seed={seed} round={round_no} signal={sig!r} kill_after={kill_after}"
            for kind, key, status, res in results:
                self.assertIn(status, (200, 201, 503, None), f"{where} {kind} {key}: {res}")
                if status in (200, 201):
                    acked[kind][key] = res
            s = self.start_server()
            self.assertNotRegex(s.log(), r"corrupt|error", where)
            self.verify(s, fp, acked, main_lobby, where)
            # The first join after the restart works.
            status, _, res = self.join(s, main_lobby, "echo", f"first-after-{round_no}")
            self.assertEqual(status, 200, f"{where}: {res}")
            acked["join"][f"first-after-{round_no}"] = res

    def verify(self, s, fp, acked, main_lobby, where):
        providers = {p["provider_id"]: p
                     for p in s.request("GET", "/api/bots/providers")[2]["providers"]}
        for key, res in acked["provider"].items():
            self.assertIn(res["provider_id"], providers, f"{where}: provider {key} lost")
            self.assertEqual(providers[res["provider_id"]]["name"], key, where)
        for key, res in acked["lobby"].items():
            status, _, got = s.request("GET", f"/api/lobby/{res['id']}")
            self.assertEqual(status, 200, f"{where}: lobby {key} lost")
            self.assertEqual(got["name"], key, where)
        sessions = self.sessions(s, main_lobby)
        by_nick = {}
        for m in sessions:
            self.assertNotIn(m["nick"], by_nick, f"{where}: {m['nick']} twice")
            by_nick[m["nick"]] = m
            # A member exists only if a provider accepted it.
            self.assertIn(m["run_id"], fp.run_ids, f"{where}: member {m} never accepted")
        for key, res in acked["join"].items():
            self.assertIn(key, by_nick, f"{where}: join {key} lost")
            self.assertEqual(by_nick[key]["session_id"], res["session_id"], where)
            self.assertEqual(by_nick[key]["run_id"], res["run_id"], where)
        # Every lobby name is there at most once.
        names = [l["name"] for l in s.request("GET", "/api/lobby")[2]["lobbies"]]
        self.assertEqual(len(names), len(set(names)), where)


def log_time(line):
    """The timestamp of a log line, in seconds."""
    stamp = re.match(r"(\S+)", line).group(1)
    return datetime.datetime.strptime(stamp, "%Y-%m-%dT%H:%M:%S.%f").timestamp()


def preload_dead_providers(test, count):
    """Writes a bot_providers.json (the original server's format) with
    `count` providers named d0, d1, ... whose ports refuse connections;
    returns their ids."""
    os.makedirs(test.data(), exist_ok=True)
    providers = {}
    for i in range(count):
        dead = test.fake_provider()
        dead.close()
        pid = f"00000000-0000-4000-8000-{i:012d}"
        providers[pid] = {"provider_id": pid, "base_url": dead.base_url, "name": f"d{i}",
                          "description": "", "registered_at": 1726000000.0,
                          "last_seen": 1726000000.0,
                          "bots": [{"name": "echo", "description": ""}]}
    with open(test.data("bot_providers.json"), "w") as f:
        json.dump(providers, f)
    return list(providers)


class LivenessTest(ServerTestCase):
    """Cleanup (SPEC §3 Liveness) with short intervals: the stale are
    evicted, durably; the guard holds a mass eviction back; the time the
    server was down does not count; HTTP providers are probed first."""

    FAST = ("--cleanup-interval", "0.2", "--stale-after", "1")

    def dead_provider(self):
        """A provider whose port refuses connections."""
        fp = self.fake_provider()
        fp.close()
        return fp

    def test_a_dead_provider_is_evicted_durably(self):
        s = self.start_server(*self.FAST)
        pid = self.register(s, self.dead_provider(), name="dead")
        lobby = self.create_lobby(s)
        s.wait_for_line(r"provider evicted: dead id=" + pid)
        s.wait_for_line(r"cleanup: evicted 1 stale provider")
        self.assertError(s.request("GET", f"/api/bots/providers/{pid}"), 404,
                         "provider_not_found")
        # Now the bot is truly unknown.
        self.assertError(self.join(s, lobby["id"], "echo", "x"), 404, "bot_not_found")
        s.kill()
        s = self.start_server()
        self.assertEqual(s.request("GET", "/api/bots/providers")[2]["providers"], [])

    def test_a_mass_eviction_is_held_back_then_done(self):
        # Loaded from disk, all three are judged from the server's start, so
        # they go stale in the same instant (registered one by one, a sweep
        # between two registrations would see only the first ones stale).
        ids = preload_dead_providers(self, 3)
        s = self.start_server(*self.FAST)
        held = s.wait_for_line(r"cleanup: 3 of 3 providers are stale.*holding back 3")
        self.assertNotRegex(s.log(), r"provider evicted")
        listed = {p["provider_id"] for p in s.request("GET", "/api/bots/providers")[2]["providers"]}
        self.assertEqual(listed, set(ids))
        # Still unseen a further stale_after later: evicted all the same.
        done = s.wait_for_line(r"cleanup: evicted 3 stale providers")
        self.assertGreaterEqual(log_time(done) - log_time(held), 0.9)
        self.assertEqual(s.request("GET", "/api/bots/providers")[2]["providers"], [])

    def test_time_the_server_was_down_does_not_count(self):
        # A provider last seen long ago (the original server's snapshot format).
        dead = self.dead_provider()
        os.makedirs(self.data())
        pid = "7f0c2a52-1c39-4a8e-9d43-2b7a4f7d9e01"
        with open(self.data("bot_providers.json"), "w") as f:
            json.dump({pid: {"provider_id": pid, "base_url": dead.base_url, "name": "old",
                             "description": "", "registered_at": 1726000000.5,
                             "last_seen": 1726000300.25,
                             "bots": [{"name": "echo", "description": ""}]}}, f)
        s = self.start_server("--cleanup-interval", "0.1", "--stale-after", "1")
        started = s.wait_for_line(r"listening on")
        self.assertEqual(s.request("GET", f"/api/bots/providers/{pid}")[0], 200)
        evicted = s.wait_for_line(r"provider evicted: old")
        # Judged from the server's start, not from last_seen on disk.
        self.assertGreaterEqual(log_time(evicted) - log_time(started), 0.9)

    # SPEC §3: an HTTP provider (no heartbeats) is probed before eviction; an
    # answer counts as seen.
    def test_an_http_provider_is_probed_before_eviction(self):
        s = self.start_server(*self.FAST, "--max-evict-fraction", "1")
        alive = self.fake_provider()
        alive_id = self.register(s, alive, name="alive")
        dead_id = self.register(s, self.dead_provider(), name="dead")
        s.wait_for_line(r"provider evicted: dead id=" + dead_id)
        self.assertTrue(alive.calls_to("GET", "/bots"), "the live provider was never probed")
        status, _, p = s.request("GET", f"/api/bots/providers/{alive_id}")
        self.assertEqual(status, 200, p)
        self.assertNotRegex(s.log(), r"provider evicted: alive")


if __name__ == "__main__":
    unittest.main()
