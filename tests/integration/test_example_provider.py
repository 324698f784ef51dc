"""The example HTTP provider (examples/http_provider.py) against the real
server, as a frontend sees it (the HTTP API only): it registers with its
bots and heartbeats, takes joins and leaves, answers 503 past its capacity
(the server fails over), rides through a kill -9 of the server and through
a server that lost its state (404: registers again with its id), drains on
SIGTERM and exits 0, exits 4 once an operator removed it (410) and comes
back as a new instance, waits for Retry-After when registrations are rate
limited (429), retries while the server is not up yet, and works under a
base path. Each test has its own server on free loopback ports; the example
runs as a real subprocess with short heartbeat intervals."""

import os
import signal
import socket
import sys
import time
import unittest

from fake_provider import FleetTestCase
from harness import Server, metric_value, scaled, wait_until

EXAMPLE = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..",
                                       "examples", "http_provider.py"))


class ExampleProvider(Server):
    """examples/http_provider.py as a subprocess; its log (stderr) is
    collected line by line like the server's. `port` is the port it serves
    the provider protocol on, so `request()` talks to the example."""

    def __init__(self, workdir, server_url, name, state_file, args=()):
        super().__init__(workdir, args, env=dict(os.environ, PYTHONUNBUFFERED="1"))
        self.server_url = server_url
        self.name = name
        self.state_file = state_file
        self.provider_id = None

    def start(self, timeout=15, wait_registered=True):
        self._spawn([sys.executable, EXAMPLE, "--server", self.server_url,
                     "--name", self.name, "--state-file", self.state_file,
                     "--heartbeat-interval", "0.5", "--max-backoff", "0.5"] + self.args)
        m = self.wait_for_nth(r"listening on http://127\.0\.0\.1:(\d+)", 1, timeout)
        self.port = int(m.group(1))
        if wait_registered:
            self.provider_id = self.wait_registered(timeout)
        return self

    @property
    def base_url(self):
        return f"http://127.0.0.1:{self.port}"

    def wait_registered(self, timeout=15, n=1):
        return self.wait_for_nth(r"registered as (\S+)", n, timeout).group(1)

    def runs(self):
        """Its runs, from its own debug route GET /runs."""
        status, _, res = self.request("GET", "/runs")
        assert status == 200, (status, res)
        return {r["run_id"]: r for r in res["runs"]}


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class ExampleProviderTest(FleetTestCase):
    FLAGS = ("--cleanup-interval", "0.2", "--stale-after", "30", "--dispatch-timeout", "1")

    def example(self, server, *args, name="example", state=None, base="", **kw):
        return self.start_provider(
            ExampleProvider(self.tmp.path, f"http://127.0.0.1:{server.port}{base}", name,
                            state or self.state_file(name), list(args)), **kw)

    def restart_server(self, old, *extra):
        """kill -9 and start again on the same ports (same data dir unless
        `extra` says otherwise)."""
        old.kill()
        self.servers.remove(old)
        s = Server(old.workdir, list(old.args) + list(extra))
        s.port, s.caf_port = old.port, old.caf_port
        self.servers.append(s)
        return s.start(same_ports=True)

    def example_with_member(self, *args, nick="kept"):
        """A server, the example as its only provider of echo (with `args`),
        and a member it runs: (server, example, lobby, member)."""
        s = self.start_server(*self.FLAGS)
        ex = self.example(s, "--bots", "echo", *args)
        lobby, first = self.lobby_with_member(s, nick=nick)
        return s, ex, lobby, first

    def beaten(self, server, pid, predicate, what, timeout=10):
        """Waits until the provider's entry satisfies `predicate` (it moves
        with the example's heartbeats)."""
        return wait_until(lambda: (lambda e: e if e and predicate(e) else None)(
            self.entry(server, pid)), timeout, what)

    def leave(self, server, session_id):
        status, _, res = server.request("POST", "/api/bots/leave", {"session_id": session_id})
        self.assertEqual(status, 200, res)

    # -- registration, heartbeats, joins and leaves ----------------------------------

    def test_registers_its_bots_heartbeats_and_takes_a_join_and_a_leave(self):
        s = self.start_server(*self.FLAGS)
        ex = self.example(s, "--bots", "echo,greeter", "--capacity", "3")
        pid = ex.provider_id
        # Online with its bots; its heartbeats announce interval and capacity.
        e = self.beaten(s, pid, lambda e: e["capacity"] == 3, "a heartbeat")
        self.assertEqual((e["status"], e["name"], e["transport"], e["base_url"]),
                         ("online", "example", "http", ex.base_url))
        self.assertEqual({b["name"] for b in e["bots"]}, {"echo", "greeter"})
        self.assertEqual((e["heartbeat_interval"], e["load"]), (0.5, 0))
        self.assertTrue(e["instance_id"])
        self.assertEqual(self.listed(s)[pid]["status"], "online")
        status, _, bots = s.request("GET", "/api/bots")
        self.assertEqual(status, 200, bots)
        self.assertEqual({(b["name"], b["provider_id"]) for b in bots["bots"]},
                         {("echo", pid), ("greeter", pid)})
        self.assertEqual(bots["providers"], {"echo": pid, "greeter": pid})
        # A join: 200 from the server, and the run exists at the example.
        lobby = self.create_lobby(s)["id"]
        res = self.joined(s, lobby, bot="greeter", nick="Greta")
        self.assertEqual(res["provider_id"], pid)
        run = ex.runs()[res["run_id"]]
        self.assertEqual((run["bot"], run["lobby_id"], run["session_id"], run["nick"]),
                         ("greeter", lobby, res["session_id"], "Greta"))
        ex.wait_for_line(r"join greeter in %s as Greta → run %s" % (lobby, res["run_id"]))
        e = self.beaten(s, pid, lambda e: e["capacity"] == 2 and e["active_runs"] == 1,
                        "a heartbeat with the run")
        self.assertAlmostEqual(e["load"], 1 / 3, places=2)
        # A leave stops the run.
        self.leave(s, res["session_id"])
        ex.wait_for_line(r"run %s stopped" % res["run_id"], 5)
        self.assertEqual(ex.runs(), {})
        self.assertEqual(self.sessions(s, lobby), [])
        self.beaten(s, pid, lambda e: e["capacity"] == 3 and e["load"] == 0, "capacity back")

    def test_past_its_capacity_it_answers_503_and_the_server_places_elsewhere(self):
        s = self.start_server(*self.FLAGS)
        other = self.fleet_provider("other")
        other_id = self.enlist(s, other)
        ex = self.example(s, "--bots", "echo", "--capacity", "1")
        lobby = self.create_lobby(s)["id"]
        first = self.joined(s, lobby, nick="one", provider_id=ex.provider_id)
        self.assertEqual(first["provider_id"], ex.provider_id)
        # Full: a 5xx (so that the server fails over), with Retry-After.
        status, headers, res = ex.request("POST", "/bots/echo/join",
                                          {"lobby_id": lobby, "session_id": "direct",
                                           "nick": "x", "server_url": ""})
        self.assertEqual((status, res["code"]), (503, "full"), res)
        self.assertIn("retry-after", headers)
        # A join that prefers it goes to the other provider (the example
        # announced capacity 0, or answered 503 and the server failed over).
        second = self.joined(s, lobby, nick="two", provider_id=ex.provider_id)
        self.assertEqual(second["provider_id"], other_id)
        self.assertEqual(list(ex.runs()), [first["run_id"]])
        # Unknown bots and bad bodies are refusals (4xx), not failures.
        self.assertEqual(ex.request("POST", "/bots/nope/join", {"lobby_id": lobby})[0], 404)
        self.assertEqual(ex.request("POST", "/bots/echo/join", {"nick": "x"})[0], 422)
        self.assertEqual(ex.request("POST", "/bots/runs/no-such-run/stop", {})[0], 404)

    # -- server restarts ------------------------------------------------------------

    def test_a_kill_9_of_the_server_is_invisible(self):
        s, ex, lobby, first = self.example_with_member(nick="before")
        pid = ex.provider_id
        self.assertEqual(first["provider_id"], pid)
        s.kill()
        ex.wait_for_line(r"heartbeat failed: server unreachable", 5)
        s = self.restart_server(s)
        ex.wait_for_line(r"server reachable again", 10)
        # The same provider, online, heartbeating: it was never registered again.
        e = self.beaten(s, pid, lambda e: e["status"] == "online" and e["capacity"] == 9,
                        "a heartbeat after the restart")
        self.assertEqual(e["active_runs"], 1)
        self.assertEqual(ex.count_lines(r"registered as"), 1)
        m = self.member(s, lobby, first["session_id"])
        self.assertEqual((m["provider_id"], m["run_id"]), (pid, first["run_id"]))
        # A new join works, on the same provider.
        second = self.joined(s, lobby, nick="after")
        self.assertEqual(second["provider_id"], pid)
        self.assertEqual(set(ex.runs()), {first["run_id"], second["run_id"]})

    def test_a_server_that_lost_its_state_gets_it_back_with_the_same_id(self):
        s, ex, lobby, first = self.example_with_member(nick="before")
        pid = ex.provider_id
        # Started again on an empty data dir: the heartbeat is 404, the
        # example registers again with its id and its runs; the server
        # holds no member for that run, so it tells the example to stop it.
        s = self.restart_server(s, "--data-dir", os.path.join(self.tmp.path, "empty-data"))
        ex.wait_for_line(r"does not know provider %s \(404\): registering again" % pid, 10)
        self.assertEqual(ex.wait_registered(10, n=2), pid)
        self.wait_status(s, pid, "online")
        ex.wait_for_line(r"run %s stopped" % first["run_id"], 10)
        self.assertEqual(ex.runs(), {})
        lobby = self.create_lobby(s, "again")["id"]
        self.assertEqual(self.joined(s, lobby, nick="after")["provider_id"], pid)

    def test_it_waits_for_a_server_that_is_not_up_yet(self):
        # The server's ports are chosen before it starts; the example starts
        # first and retries with backoff until the server answers.
        s = Server(self.tmp.path, list(self.FLAGS))
        s.port, s.caf_port = free_port(), free_port()
        ex = self.example(s, wait_registered=False)
        ex.wait_for_line(r"registration failed: server unreachable", 10)
        self.servers.append(s)
        s.start(same_ports=True)
        pid = ex.wait_registered(10)
        self.wait_status(s, pid, "online")

    # -- leaving ------------------------------------------------------------------

    def draining_example(self, drain_timeout):
        """example_with_member(), the example sent SIGTERM: draining."""
        s, ex, lobby, first = self.example_with_member("--drain-timeout", drain_timeout)
        ex.proc.send_signal(signal.SIGTERM)
        self.wait_status(s, ex.provider_id, "draining", 5)
        return s, ex, lobby, first

    def test_sigterm_drains_takes_no_more_joins_and_exits_0_once_its_member_left(self):
        s, ex, lobby, first = self.draining_example("20")
        pid = ex.provider_id
        ex.wait_for_line(r"the server has provider %s draining" % pid, 5)
        # No new joins for it: it is the only provider of the bot, so 503.
        status, headers, res = self.join(s, lobby, "echo", "late")
        self.assertEqual(status, 503, res)
        self.assertIn("retry-after", headers)
        self.assertEqual(ex.count_lines(r"join echo in "), 1)
        self.assertEqual(list(ex.runs()), [first["run_id"]])
        # Its last member leaves: the run stops, the server deregisters it,
        # and the example exits 0 by itself.
        started = time.monotonic()
        self.leave(s, first["session_id"])
        self.assertEqual(ex.wait_exit(10), 0, ex.log())
        self.assertLess(time.monotonic() - started, scaled(5))
        ex.wait_for_line(r"run %s stopped" % first["run_id"], 1)
        ex.wait_for_line(r"drained: the server deregistered us", 1)
        self.wait_gone(s, pid)
        self.assertEqual(self.join(s, lobby, "echo", "later")[0], 404)

    def test_on_its_drain_timeout_the_member_moves_and_it_exits_0(self):
        s = self.start_server(*self.FLAGS)
        other = self.fleet_provider("other")
        other_id = self.enlist(s, other)
        ex = self.example(s, "--bots", "echo", "--drain-timeout", "0.5")
        pid = ex.provider_id
        lobby, first = self.lobby_with_member(s, nick="Echo", provider_id=pid)
        self.assertEqual(first["provider_id"], pid)
        ex.proc.send_signal(signal.SIGTERM)
        m = self.wait_member(s, lobby, first["session_id"],
                             lambda m: m["provider_id"] == other_id, 10, "moved")
        self.assertEqual((m["nick"], m["orphaned"]), ("Echo", False))
        self.assertIn(m["run_id"], other.live_runs())
        self.assertEqual(ex.wait_exit(10), 0, ex.log())
        # Stopped: by the server's stop call, or by the example's own exit
        # when its deregistration (410) came first.
        ex.wait_for_line(r"run %s stopped" % first["run_id"], 1)
        self.assertEqual(ex.count_lines(r"join echo in "), 1)
        self.wait_gone(s, pid)
        # Joins now go to the other provider only.
        self.assertEqual(self.joined(s, lobby, nick="next")["provider_id"], other_id)

    def test_a_second_sigterm_stops_at_once(self):
        s, ex, _, first = self.draining_example("60")
        started = time.monotonic()
        ex.proc.send_signal(signal.SIGTERM)
        self.assertEqual(ex.wait_exit(5), 0, ex.log())
        self.assertLess(time.monotonic() - started, scaled(3))
        # Stopped by the example on its way out (or by the server's stop call,
        # once it deleted itself: the server moves its members at once).
        ex.wait_for_line(r"run %s stopped" % first["run_id"], 1)
        self.wait_gone(s, ex.provider_id)

    def test_removed_by_an_operator_it_exits_4_and_comes_back_as_a_new_instance(self):
        s = self.start_server(*self.FLAGS)
        ex = self.example(s, "--bots", "echo")
        pid = ex.provider_id
        instance = self.entry(s, pid)["instance_id"]
        status, _, res = s.request("DELETE", f"/api/bots/providers/{pid}")
        self.assertEqual(status, 204, res)
        # Its next heartbeat is 410: it stops with exit code 4.
        self.assertEqual(ex.wait_exit(10), 4, ex.log())
        ex.wait_for_line(r"removed by an operator \(410\)", 1)
        self.assertIsNone(self.entry(s, pid))
        self.assertGreaterEqual(metric_value(s, "voicebot_removed_answers_total"), 1)
        # Started again with its state file: a new instance, the same id.
        again = self.example(s, "--bots", "echo", state=ex.state_file)
        self.assertEqual(again.provider_id, pid)
        e = self.wait_status(s, pid, "online")
        self.assertNotEqual(e["instance_id"], instance)

    def test_rate_limited_it_waits_for_retry_after_and_registers(self):
        # One registration every 2 s: the fake provider takes the token, the
        # example is answered 429 and gets in after Retry-After.
        s = self.start_server(*self.FLAGS, "--max-registrations-per-second", "0.5")
        self.enlist(s, self.fleet_provider("first"))
        ex = self.example(s, "--bots", "echo", wait_registered=False)
        ex.wait_for_line(r"registration rate limited \(429\): retrying in", 10)
        started = time.monotonic()
        pid = ex.wait_registered(10)
        self.assertGreater(time.monotonic() - started, 0.5)
        self.wait_status(s, pid, "online")
        self.assertGreaterEqual(metric_value(s, "voicebot_registrations_rate_limited_total"), 1)

    def test_under_a_base_path(self):
        s = self.start_server(*self.FLAGS, "--base-path", "/ai-voicebot")
        ex = self.example(s, "--bots", "greeter", base="/ai-voicebot")
        status, _, res = s.request("GET", f"/ai-voicebot/api/bots/providers/{ex.provider_id}")
        self.assertEqual((status, res["status"]), (200, "online"), res)
        status, _, lobby = s.request("POST", "/ai-voicebot/api/lobby", {"name": "room"})
        self.assertIn(status, (200, 201), lobby)
        status, _, res = s.request("POST", "/ai-voicebot/api/bots/greeter/join",
                                   {"lobby_id": lobby["id"], "nick": "G"})
        self.assertEqual((status, res["provider_id"]), (200, ex.provider_id), res)
        self.assertIn(res["run_id"], ex.runs())


if __name__ == "__main__":
    unittest.main()
