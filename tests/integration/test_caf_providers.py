"""CAF providers (SPEC §4, §7): the real voicebot-server and real
voicebot-provider processes on free loopback ports. Joins over CAF, kill -9
and restarts of either side, the state file, SIGTERM (a drain), keys, the
reconciliation of runs with lobby members after a server restart, and what
protocol version 2 adds: heartbeats with load, capacity and runs, a drain
on SIGTERM, exit 4 when removed on purpose, and rate-limited
registrations."""

import os
import signal
import statistics
import time
import unittest

from harness import Provider, ServerTestCase


class CafProviderTest(ServerTestCase):
    def provider(self, server, name="caf-provider", state=None, args=(), **kw):
        return self.start_provider(
            Provider(self.tmp.path, server, name, state or self.state_file(name), args), **kw)

    def restart_server(self, old):
        """kill -9 and start again on the same ports and data dir."""
        old.kill()
        self.servers.remove(old)
        return self.restart_on_same_ports(old)

    def restart_on_same_ports(self, old):
        s = type(old)(old.workdir, old.args)
        s.port, s.caf_port = old.port, old.caf_port
        self.servers.append(s)
        return s.start(same_ports=True)

    def provider_entry(self, server, provider_id):
        status, _, res = server.request("GET", f"/api/bots/providers/{provider_id}")
        return res if status == 200 else None

    def wait_status(self, server, provider_id, want, timeout=15):
        deadline = time.monotonic() + timeout
        while True:
            entry = self.provider_entry(server, provider_id)
            if entry is not None and entry["status"] == want:
                return entry
            if time.monotonic() > deadline:
                self.fail(f"provider {provider_id} not {want}: {entry}")
            time.sleep(0.05)

    def wait_entry(self, server, provider_id, predicate, timeout=15, what="entry"):
        """Waits until the provider's listing entry satisfies `predicate`."""
        deadline = time.monotonic() + timeout
        while True:
            entry = self.provider_entry(server, provider_id)
            if predicate(entry):
                return entry
            if time.monotonic() > deadline:
                self.fail(f"provider {provider_id}: no {what}: {entry}")
            time.sleep(0.05)

    def wait_gone(self, server, provider_id, timeout=15):
        self.wait_entry(server, provider_id, lambda e: e is None, timeout, "deregistration")

    def member_nicks(self, server, lobby_id):
        return sorted(s["nick"] for s in self.sessions(server, lobby_id))

    def member(self, server, lobby_id, session_id):
        for m in self.sessions(server, lobby_id):
            if m["session_id"] == session_id:
                return m
        return None

    # -- listing and joins -------------------------------------------------

    def test_provider_and_its_bots_are_listed(self):
        s = self.start_server()
        p = self.provider(s, "alpha")
        entry = self.provider_entry(s, p.provider_id)
        self.assertEqual(entry["transport"], "caf")
        self.assertEqual(entry["status"], "online")
        self.assertEqual(entry["name"], "alpha")
        self.assertEqual(sorted(b["name"] for b in entry["bots"]), ["echo", "greeter", "listener"])
        status, _, bots = s.request("GET", "/api/bots")
        self.assertEqual(status, 200)
        names = {b["name"] for b in (bots["bots"] if isinstance(bots, dict) else bots)}
        self.assertTrue({"echo", "greeter"} <= names, bots)
        # Two providers with the same name are two providers.
        q = self.provider(s, "alpha", state=os.path.join(self.tmp.path, "other.json"))
        self.assertNotEqual(q.provider_id, p.provider_id)

    def test_join_over_caf_runs_the_bot_and_leave_stops_it(self):
        s = self.start_server()
        p = self.provider(s)
        lobby = self.create_lobby(s)
        joined = self.joined(s, lobby["id"])
        self.assertEqual(joined["provider_id"], p.provider_id)
        # The provider logs a run before it answers; the log is read by
        # another thread, so wait for the line rather than race it.
        p.wait_for_line(r"run %s started" % joined["run_id"], 10)
        self.assertEqual(p.runs(), [joined["run_id"]])
        # The same lobby, bot and nick again: the same session, no new run.
        status, _, again = self.join(s, lobby["id"], "echo", "Echo")
        self.assertEqual((status, again["session_id"]), (200, joined["session_id"]))
        self.assertEqual(len(p.runs()), 1)
        # A bot the provider does not host is not dispatched to it.
        status, _, res = self.join(s, lobby["id"], "nobody", "N")
        self.assertEqual(status, 404, res)
        # Removing the member stops the run at the provider.
        status, _, res = s.request("POST", "/api/bots/leave",
                                   {"session_id": joined["session_id"]})
        self.assertEqual(status, 200, res)
        p.wait_for_line(r"run %s stopped" % joined["run_id"], 10)
        self.assertEqual(p.runs(), [])

    # -- restarts ------------------------------------------------------------

    def test_server_kill9_provider_is_back_with_its_id_and_joins_work(self):
        s = self.start_server()
        p = self.provider(s)
        lobby = self.create_lobby(s)
        first = self.joined(s, lobby["id"])
        took = []
        for n in range(3):
            started = time.monotonic()
            s = self.restart_server(s)
            # Until the provider is back, it is known (loaded from disk) and
            # unreachable: 503, never 404.
            entry = self.provider_entry(s, p.provider_id)
            self.assertIsNotNone(entry)
            self.assertEqual(p.wait_registered(15, after=n + 1), p.provider_id)
            self.wait_status(s, p.provider_id, "online", 15)
            took.append(time.monotonic() - started)
            joined = self.joined(s, lobby["id"], "greeter", f"Greeter{n}")
            p.wait_for_line(r"run %s started" % joined["run_id"], 10)
        # The member from before the restarts is still there: the provider
        # still runs it.
        self.assertIn("Echo", self.member_nicks(s, lobby["id"]))
        self.assertIn(first["run_id"], p.runs())
        self.assertLess(max(took), 15)
        print(f"provider back online after a server restart: median "
              f"{statistics.median(took):.3f} s of {['%.3f' % t for t in took]}")

    def test_provider_kill9_join_is_503_with_retry_after_within_2s(self):
        s = self.start_server()
        p = self.provider(s)
        lobby = self.create_lobby(s)
        p.kill()
        killed = time.monotonic()
        status, headers, res = self.join(s, lobby["id"], "echo", "Echo")
        elapsed = time.monotonic() - killed
        self.assertEqual(status, 503, res)
        self.assertIn("retry-after", headers)
        self.assertLess(elapsed, 2.0)
        self.assertEqual(self.sessions(s, lobby["id"]), [])
        self.wait_status(s, p.provider_id, "unreachable", 5)

    def test_silent_provider_is_noticed_by_middleman_heartbeats(self):
        s = self.start_server()
        p = self.provider(s)
        lobby = self.create_lobby(s)
        # A frozen process sends nothing and closes nothing, like a network
        # that silently went away: the connection timeout notices it.
        p.proc.send_signal(signal.SIGSTOP)
        try:
            self.wait_status(s, p.provider_id, "unreachable", 15)
            status, headers, res = self.join(s, lobby["id"], "echo", "Echo")
            self.assertEqual(status, 503, res)
            self.assertIn("retry-after", headers)
        finally:
            p.proc.send_signal(signal.SIGCONT)
        # Thawed, it finds its link gone, reconnects and is back.
        self.assertEqual(p.wait_registered(15, after=1), p.provider_id)
        self.wait_status(s, p.provider_id, "online", 15)
        res = self.joined(s, lobby["id"])

    def test_provider_restarted_with_its_state_file_keeps_its_id(self):
        s = self.start_server()
        p = self.provider(s, "keeper")
        first = p.provider_id
        p.kill()
        q = self.provider(s, "keeper", state=p.state_file)
        self.assertEqual(q.provider_id, first)
        self.wait_status(s, first, "online")
        status, _, res = s.request("GET", "/api/bots/providers")
        self.assertEqual([x["provider_id"] for x in res["providers"]], [first])

    def test_sigterm_deregisters_and_exits_0(self):
        # Running nothing, its drain ends at once: it deregisters.
        s = self.start_server()
        p = self.provider(s)
        self.assertEqual(p.stop(signal.SIGTERM), 0, p.log())
        self.assertIsNone(self.provider_entry(s, p.provider_id))
        s.wait_for_line(r"provider deregistered: id=" + p.provider_id)

    def test_wrong_key_changes_nothing(self):
        s = self.start_server("--provider-key", "right-key")
        bad = self.provider(s, "bad", args=["--key", "wrong-key"], wait_registered=False)
        bad.wait_for_line(r"registration refused", 10)
        self.assertEqual(bad.proc.wait(10), 3)
        none = self.provider(s, "none", wait_registered=False)
        none.wait_for_line(r"registration refused", 10)
        status, _, res = s.request("GET", "/api/bots/providers")
        self.assertEqual(res["providers"], [])
        good = self.provider(s, "good", args=["--key", "right-key"])
        self.assertIsNotNone(self.provider_entry(s, good.provider_id))
        # Deregistering with the right key works (SIGTERM).
        self.assertEqual(good.stop(signal.SIGTERM), 0)
        self.assertIsNone(self.provider_entry(s, good.provider_id))

    def test_provider_of_another_protocol_version_is_refused_and_exits_5(self):
        s = self.start_server()
        # --protocol-version (hidden) plays a provider that says it speaks
        # version 1 (the protocol before heartbeat reports and drains),
        # version 2 (before the voice's token) or a later version 4.
        for version in (1, 2, 4):
            p = self.provider(s, f"v{version}", args=["--protocol-version", str(version)],
                              wait_registered=False)
            self.assertEqual(p.proc.wait(15), 5, p.log())
            p.wait_for_line(r"protocol mismatch.*CAF provider protocol version %d, "
                            r"this server speaks version 3" % version, 5)
            s.wait_for_line(r"CAF provider .*refused: the provider speaks CAF provider "
                            r"protocol version %d, this server speaks version 3" % version, 5)
            self.assertEqual(p.count_lines(r"registered as"), 0)
        status, _, res = s.request("GET", "/api/bots/providers")
        self.assertEqual((status, res["providers"]), (200, []))
        # A provider of the server's version is welcome all the same.
        q = self.provider(s, "current")
        self.assertIsNotNone(self.provider_entry(s, q.provider_id))

    # -- protocol version 2: heartbeats ------------------------------------------

    def test_sigterm_drains_keeps_its_members_and_exits_0_once_it_runs_nothing(self):
        s = self.start_server()
        p = self.provider(s, "drained", args=["--bots", "echo"])
        q = self.provider(s, "other", args=["--bots", "echo"])
        lobby = self.create_lobby(s)
        status, _, joined = self.join(s, lobby["id"], "echo", "Echo",
                                      provider_id=p.provider_id)
        self.assertEqual(status, 200, joined)
        self.assertEqual(joined["provider_id"], p.provider_id)
        p.proc.send_signal(signal.SIGTERM)
        p.wait_for_line(r"draining", 5)
        self.wait_status(s, p.provider_id, "draining", 10)
        # Still running, still heartbeating, its member stays; new joins go
        # elsewhere, even when they prefer it.
        time.sleep(1.5)
        self.assertIsNone(p.proc.poll(), p.log())
        self.assertEqual(self.provider_entry(s, p.provider_id)["status"], "draining")
        self.assertEqual(self.member(s, lobby["id"], joined["session_id"])["provider_id"],
                         p.provider_id)
        self.assertIn(joined["run_id"], p.runs())
        status, _, other = self.join(s, lobby["id"], "echo", "Echo2",
                                     provider_id=p.provider_id)
        self.assertEqual(status, 200, other)
        self.assertEqual(other["provider_id"], q.provider_id)
        # Its last member leaves: it runs nothing, deregisters, exits 0.
        status, _, res = s.request("POST", "/api/bots/leave",
                                   {"session_id": joined["session_id"]})
        self.assertEqual(status, 200, res)
        self.assertEqual(p.wait_exit(10), 0, p.log())
        self.wait_gone(s, p.provider_id, 5)
        self.assertEqual(p.count_lines(r"error"), 0, p.log())

    def test_sigint_stops_at_once(self):
        s = self.start_server()
        p = self.provider(s, "interrupted")
        lobby = self.create_lobby(s)
        joined = self.joined(s, lobby["id"])
        self.assertEqual(p.stop(signal.SIGINT, 10), 0, p.log())
        self.assertEqual(p.count_lines(r"draining"), 0, p.log())
        self.wait_gone(s, p.provider_id, 5)

    # -- protocol version 2: removed on purpose ---------------------------------

    def test_server_restart_keeps_the_members_still_run_and_dispatches_the_lost_again(self):
        s = self.start_server()
        keeps = self.provider(s, "keeps", args=["--bots", "echo"])
        loses = self.provider(s, "loses", args=["--bots", "greeter"])
        lobby = self.create_lobby(s)
        other = self.create_lobby(s, "other")
        joined = {}
        for lid, bot, nick in ((lobby["id"], "echo", "E1"), (lobby["id"], "greeter", "G1"),
                               (other["id"], "greeter", "G2"), (other["id"], "echo", "E2")):
            status, _, res = self.join(s, lid, bot, nick)
            self.assertEqual(status, 200, res)
            joined[nick] = res
        keeps.wait_for_nth(r"run \S+ started", 2, 10)
        kept_runs = keeps.runs()
        self.assertEqual(len(kept_runs), 2)
        # The server dies; while it is down, one provider restarts and so
        # loses its runs (a new process has none).
        s.kill()
        self.servers.remove(s)
        loses.kill()
        loses2 = self.provider(s, "loses", state=loses.state_file, args=["--bots", "greeter"],
                               wait_registered=False)
        loses2.wait_for_line(r"not reachable", 10)
        s = self.restart_on_same_ports(s)
        self.assertEqual(keeps.wait_registered(15, after=1), keeps.provider_id)
        self.assertEqual(loses2.wait_registered(15), loses.provider_id)
        s.wait_for_nth(r"CAF provider \S+ reconciled", 2, 15)
        # SPEC §7, reconciliation: the members whose runs a provider still
        # has stay as they were; the lost ones are dispatched again (here to
        # the restarted provider, the only one of their bot) with their
        # session and nick, and get new runs.
        loses2.wait_for_nth(r"run \S+ started", 2, 10)
        self.assertEqual(sorted(keeps.runs()), sorted(kept_runs))
        self.assertEqual(len(loses2.runs()), 2)
        for lid, names in ((lobby["id"], ["E1", "G1"]), (other["id"], ["E2", "G2"])):
            self.assertEqual(self.member_nicks(s, lid), names)
        for nick in ("G1", "G2"):
            lid = lobby["id"] if nick == "G1" else other["id"]
            m = self.member(s, lid, joined[nick]["session_id"])
            self.assertIsNotNone(m, nick)
            self.assertIn(m["run_id"], loses2.runs())
            self.assertNotEqual(m["run_id"], joined[nick]["run_id"])
        for nick in ("E1", "E2"):
            lid = lobby["id"] if nick == "E1" else other["id"]
            self.assertEqual(self.member(s, lid, joined[nick]["session_id"])["run_id"],
                             joined[nick]["run_id"])
        # Durably: a fresh start has the same members and runs.
        runs_before = {m["session_id"]: m["run_id"]
                       for lid in (lobby["id"], other["id"]) for m in self.sessions(s, lid)}
        s = self.restart_server(s)
        runs_after = {m["session_id"]: m["run_id"]
                      for lid in (lobby["id"], other["id"]) for m in self.sessions(s, lid)}
        self.assertEqual(runs_after, runs_before)

    def test_runs_the_server_does_not_know_are_stopped(self):
        s = self.start_server()
        p = self.provider(s)
        lobby = self.create_lobby(s)
        joined = self.joined(s, lobby["id"])
        # The server comes back without its lobbies (lost disk): the run it
        # no longer knows is stopped by the provider.
        s.kill()
        self.servers.remove(s)
        for f in os.listdir(self.data()):
            if f.startswith("lobbies."):
                os.remove(self.data(f))
        s = self.restart_on_same_ports(s)
        p.wait_registered(15, after=1)
        p.wait_for_line(r"run %s stopped: unknown to the server" % joined["run_id"], 10)
        self.assertEqual(p.runs(), [])


if __name__ == "__main__":
    unittest.main()
