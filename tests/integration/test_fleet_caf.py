"""Fleet behaviour (SPEC §7) with real voicebot-provider processes (CAF):
two providers of the same bot, one drained by SIGTERM while it runs a
member (the member ends up on the other with its session, the drained one
exits 0 by itself); a provider removed by an operator exits 4, and its next
start (a new instance) is welcome; heartbeats announce load, capacity and
runs."""

import signal
import time
import unittest

from fake_provider import FleetTestCase
from harness import Provider, metric_value, wait_until


class CafFleetTest(FleetTestCase):
    def provider(self, server, name, state=None, args=(), **kw):
        return self.start_provider(
            Provider(self.tmp.path, server, name, state or self.state_file(name), list(args)),
            **kw)

    def test_sigterm_drains_the_member_to_the_other_provider_and_exits_0(self):
        s = self.start_server("--cleanup-interval", "0.2", "--stale-after", "10")
        leaving = self.provider(s, "leaving", args=["--bots", "echo", "--drain-timeout", "1.5"])
        staying = self.provider(s, "staying", args=["--bots", "echo"])
        lobby, first = self.lobby_with_member(s, nick="Echo", provider_id=leaving.provider_id)
        self.assertEqual(first["provider_id"], leaving.provider_id)
        leaving.wait_for_line(r"run %s started" % first["run_id"], 10)
        ws = self.lobby_socket(s, lobby)
        started = time.monotonic()
        leaving.proc.send_signal(signal.SIGTERM)
        self.wait_status(s, leaving.provider_id, "draining", 5)
        # Draining: new joins go to the other one.
        other = self.joined(s, lobby, nick="Other", provider_id=leaving.provider_id)
        self.assertEqual(other["provider_id"], staying.provider_id)
        # The drain ends: the member runs on the other provider.
        moved, _ = ws.wait_for(lambda e: e["type"] == "member_moved", 15)
        member = moved["member"]
        self.assertEqual((member["session_id"], member["nick"], member["provider_id"]),
                         (first["session_id"], "Echo", staying.provider_id))
        self.assertGreaterEqual(time.monotonic() - started, 1.5 - 0.1,
                                "moved before the provider's drain timeout")
        staying.wait_for_line(r"run %s started" % member["run_id"], 10)
        self.assertIn(member["run_id"], staying.runs())
        # The drained process stops its run and exits 0 by itself.
        self.assertEqual(leaving.proc.wait(15), 0, leaving.log())
        leaving.wait_for_line(r"run %s stopped" % first["run_id"], 5)
        self.assertEqual(leaving.runs(), [])
        self.wait_gone(s, leaving.provider_id)
        got = {m["session_id"]: m for m in self.sessions(s, lobby)}
        self.assertEqual({k: (v["nick"], v["provider_id"]) for k, v in got.items()},
                         {first["session_id"]: ("Echo", staying.provider_id),
                          other["session_id"]: ("Other", staying.provider_id)})

    def test_sigterm_of_an_idle_provider_exits_0_at_once(self):
        s = self.start_server("--cleanup-interval", "0.2", "--stale-after", "10")
        p = self.provider(s, "idle", args=["--drain-timeout", "30"])
        p.proc.send_signal(signal.SIGTERM)
        # Nothing to drain: deregistered, exit 0, well before 30 s.
        self.assertEqual(p.proc.wait(10), 0, p.log())
        self.wait_gone(s, p.provider_id)

    def test_a_second_sigterm_stops_at_once(self):
        s = self.start_server("--cleanup-interval", "0.2", "--stale-after", "10")
        p = self.provider(s, "twice", args=["--drain-timeout", "60"])
        lobby = self.create_lobby(s)["id"]
        self.joined(s, lobby)
        p.proc.send_signal(signal.SIGTERM)
        self.wait_status(s, p.provider_id, "draining", 5)
        started = time.monotonic()
        p.proc.send_signal(signal.SIGTERM)
        self.assertEqual(p.proc.wait(10), 0, p.log())
        self.assertLess(time.monotonic() - started, 6)

    def test_a_removed_provider_exits_4_and_a_new_instance_comes_back(self):
        s = self.start_server("--cleanup-interval", "0.2", "--stale-after", "10")
        p = self.provider(s, "removed")
        self.assertIsNotNone(self.entry(s, p.provider_id)["instance_id"])
        status, _, res = s.request("DELETE", f"/api/bots/providers/{p.provider_id}")
        self.assertEqual(status, 204, res)
        self.assertEqual(p.proc.wait(10), 4, p.log())
        self.assertIsNone(self.entry(s, p.provider_id))
        # Started again (a new process is a new instance): the same id, online.
        q = self.provider(s, "removed", state=p.state_file)
        self.assertEqual(q.provider_id, p.provider_id)
        self.wait_status(s, q.provider_id, "online", 10)
        self.assertNotEqual(self.entry(s, q.provider_id)["instance_id"], None)

    def test_an_operator_drain_moves_the_member_and_the_provider_exits_4(self):
        # Drained through the route (by an operator) past its timeout: the
        # run is stopped, the member moves, and the provider was removed on
        # purpose: its next heartbeat is 410, and it exits 4.
        s = self.start_server("--cleanup-interval", "0.2", "--stale-after", "10")
        drained = self.provider(s, "drained", args=["--bots", "echo"])
        other = self.provider(s, "other", args=["--bots", "echo"])
        lobby, first = self.lobby_with_member(s, nick="Echo", provider_id=drained.provider_id)
        ws = self.lobby_socket(s, lobby)
        status, _, res = s.request("POST", f"/api/bots/providers/{drained.provider_id}/drain",
                                   {"timeout": 0.5})
        self.assertEqual((status, res["status"]), (200, "draining"), res)
        moved, _ = ws.wait_for(lambda e: e["type"] == "member_moved", 15)
        self.assertEqual((moved["member"]["session_id"], moved["member"]["provider_id"]),
                         (first["session_id"], other.provider_id))
        drained.wait_for_line(r"run %s stopped" % first["run_id"], 10)
        self.assertEqual(drained.proc.wait(10), 4, drained.log())
        other.wait_for_line(r"run %s started" % moved["member"]["run_id"], 10)

    def test_a_killed_provider_s_member_moves_to_the_other_once_it_is_evicted(self):
        s = self.start_server("--cleanup-interval", "0.2", "--stale-after", "1")
        dying = self.provider(s, "dying", args=["--bots", "echo"])
        staying = self.provider(s, "staying", args=["--bots", "echo"])
        lobby, first = self.lobby_with_member(s, nick="Echo", provider_id=dying.provider_id)
        self.assertEqual(first["provider_id"], dying.provider_id)
        ws = self.lobby_socket(s, lobby)
        dying.kill()
        # Its link drops: unreachable at once, evicted by the cleanup rule.
        self.wait_status(s, dying.provider_id, "unreachable", 5)
        moved, _ = ws.wait_for(lambda e: e["type"] == "member_moved", 15)
        member = moved["member"]
        self.assertEqual((member["session_id"], member["nick"], member["provider_id"]),
                         (first["session_id"], "Echo", staying.provider_id))
        staying.wait_for_line(r"run %s started" % member["run_id"], 10)
        self.assertIsNone(self.entry(s, dying.provider_id))

    def test_a_herd_of_providers_is_rate_limited_and_all_get_in(self):
        s = self.start_server("--cleanup-interval", "0.2", "--stale-after", "10",
                              "--max-registrations-per-second", "2")
        herd = [self.provider(s, f"herd{i}", args=["--bots", "echo"], wait_registered=False)
                for i in range(6)]
        ids = [p.wait_registered(30) for p in herd]
        self.assertEqual(len(set(ids)), 6)
        self.assertEqual(set(self.listed(s)), set(ids))
        limited = metric_value(s, "voicebot_registrations_rate_limited_total")
        self.assertGreaterEqual(limited, 1)
        # They honour Retry-After: no more 429s than a second's worth per
        # waiting provider and second of the herd.
        self.assertLessEqual(limited, 6 * 6)
        self.assertTrue(any(p.count_lines(r"rate-limited") for p in herd))

    def test_heartbeats_announce_interval_capacity_and_runs(self):
        s = self.start_server("--cleanup-interval", "0.2", "--stale-after", "10")
        p = self.provider(s, "counted", args=["--bots", "echo", "--max-runs", "4"])
        entry = self.entry(s, p.provider_id)
        self.assertEqual(entry["heartbeat_interval"], 0.5)  # the harness's flag
        wait_until(lambda: self.entry(s, p.provider_id)["capacity"] == 4, 5, "capacity 4")
        lobby = self.create_lobby(s)["id"]
        self.joined(s, lobby)
        entry = wait_until(lambda: (lambda e: e if e["capacity"] == 3 else None)(
            self.entry(s, p.provider_id)), 5, "capacity 3 after a run")
        self.assertEqual(entry["active_runs"], 1)
        self.assertAlmostEqual(entry["load"], 0.25, delta=0.01)


if __name__ == "__main__":
    unittest.main()
