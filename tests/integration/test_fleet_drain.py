"""Fleet behaviour (SPEC §7) when providers leave: drains (the route, keys,
deregistration when idle, members moved on the timeout), providers removed
on purpose (410 for the same instance, a new instance is welcome), members
re-dispatched when their provider is evicted or lost their run (same
session, a `member_moved` on the lobby WebSocket, `orphaned` while no
provider can take them), and the reconciliation of a re-registration that
lists its runs. Fake HTTP providers (fake_provider.py) and the real server
on free loopback ports with short timings."""

import time
import unittest

from fake_provider import FleetTestCase
from harness import metric_value, wait_until

REMOVED = {"detail": "Provider was removed", "code": "removed"}


class DrainTest(FleetTestCase):
    # Tombstones last stale_after: long enough for the test to see them.
    FLAGS = ("--cleanup-interval", "0.2", "--stale-after", "5", "--dispatch-timeout", "0.5")

    def drain(self, server, pid, body=None, headers=None):
        return server.request("POST", f"/api/bots/providers/{pid}/drain",
                              {} if body is None else body, headers)

    def test_a_draining_provider_takes_no_joins_and_leaves_after_its_last_member(self):
        s = self.start_server(*self.FLAGS)
        old, old_id = self.enlisted(s, "old", instance_id="old-1", heartbeat_interval=1)
        new, new_id = self.enlisted(s, "new")
        lobby, kept = self.lobby_with_member(s, nick="kept", provider_id=old_id)
        self.assertEqual(kept["provider_id"], old_id)
        status, _, res = self.drain(s, old_id)
        self.assertEqual(status, 200, res)
        self.assertEqual((res["provider_id"], res["status"]), (old_id, "draining"))
        self.assertEqual(self.entry(s, old_id)["status"], "draining")
        self.assertEqual(self.listed(s)[old_id]["status"], "draining")
        self.assertEqual(metric_value(s, "voicebot_providers", status="draining"), 1)
        self.assertEqual(metric_value(s, "voicebot_provider_drains_total"), 1)
        # No new joins, even when preferred; its member stays where it is.
        moved_on = self.joined(s, lobby, nick="next", provider_id=old_id)
        self.assertEqual(moved_on["provider_id"], new_id)
        self.assertEqual(len(old.joins()), 1)
        m = self.member(s, lobby, kept["session_id"])
        self.assertEqual((m["provider_id"], m["run_id"]), (old_id, kept["run_id"]))
        # A heartbeat keeps it draining.
        self.assertEqual(self.heartbeat(s, old_id, instance_id="old-1")[0], 200)
        self.assertEqual(self.entry(s, old_id)["status"], "draining")
        # Its last member leaves: the run is stopped, the provider deregistered.
        self.assertEqual(s.request("POST", "/api/bots/leave",
                                   {"session_id": kept["session_id"]})[0], 200)
        old.wait_for_stop(kept["run_id"])
        self.wait_gone(s, old_id)
        # Removed on purpose through the drain route: the same instance is 410.
        status, _, res = self.heartbeat(s, old_id, instance_id="old-1")
        self.assertEqual((status, res), (410, REMOVED))
        self.assertIsNone(self.entry(s, old_id))
        self.assertEqual(self.entry(s, new_id)["status"], "online")

    def test_a_draining_provider_that_misses_heartbeats_stays_draining(self):
        s = self.start_server(*self.FLAGS)
        fp, pid = self.enlisted(s, "quiet", heartbeat_interval=0.1, instance_id="q-1")
        lobby = self.create_lobby(s)["id"]
        self.joined(s, lobby, nick="kept")
        self.assertEqual(self.drain(s, pid, {"timeout": 60})[0], 200)
        time.sleep(0.5)  # five intervals without a heartbeat
        # Not suspect: a suspect provider could get joins when none is online.
        self.assertEqual(self.entry(s, pid)["status"], "draining")
        status, _, res = self.join(s, lobby, "echo", "new")
        self.assertEqual(status, 503, res)
        self.assertEqual(len(fp.joins()), 1)

    def test_draining_an_idle_provider_deregisters_it(self):
        s = self.start_server(*self.FLAGS)
        fp, pid = self.enlisted(s, "idle", instance_id="idle-1")
        status, _, res = self.drain(s, pid, {"timeout": 60})
        self.assertEqual(status, 200, res)
        self.assertEqual(res["provider_id"], pid)
        self.wait_gone(s, pid)
        self.assertEqual(self.heartbeat(s, pid, instance_id="idle-1")[2], REMOVED)

    def test_a_drain_survives_a_kill_9_of_the_server(self):
        s = self.start_server(*self.FLAGS)
        old, old_id = self.enlisted(s, "old", instance_id="old-1")
        new, new_id = self.enlisted(s, "new")
        lobby, first = self.lobby_with_member(s, nick="Echo", provider_id=old_id)
        self.assertEqual(self.drain(s, old_id, {"timeout": 1.5})[0], 200)
        s.kill()
        self.servers.remove(s)
        s = self.start_server(*self.FLAGS)
        self.assertEqual(self.entry(s, old_id)["status"], "draining")
        self.assertEqual(self.joined(s, lobby, nick="new")["provider_id"], new_id)
        # Its deadline, from before the restart, still holds.
        m = self.wait_member(s, lobby, first["session_id"],
                             lambda m: m["provider_id"] == new_id, 10, "moved")
        self.assertEqual((m["nick"], m["orphaned"]), ("Echo", False))
        old.wait_for_stop(first["run_id"], 5)
        self.wait_gone(s, old_id)
        self.assertEqual(self.heartbeat(s, old_id, instance_id="old-1")[2], REMOVED)

    def test_drain_errors_change_nothing(self):
        s = self.start_server(*self.FLAGS)
        fp, pid = self.enlisted(s, "p")
        self.assertError(self.drain(s, "no-such-provider"), 404, "provider_not_found")
        for timeout in (0, -1, "10", True):
            with self.subTest(timeout=timeout):
                status, _, res = self.drain(s, pid, {"timeout": timeout})
                self.assertEqual(status, 422, res)
                self.assertEqual(res["detail"][0]["loc"], ["body", "timeout"])
        self.assertEqual(s.request("POST", f"/api/bots/providers/{pid}/drain", "{")[0], 400)
        self.assertEqual(self.entry(s, pid)["status"], "online")
        self.assertEqual(metric_value(s, "voicebot_provider_drains_total"), 0)

    def test_the_drain_route_needs_a_key_when_keys_are_configured(self):
        s = self.start_server(*self.FLAGS, "--provider-key", "sekrit")
        one, one_id = self.enlisted(s, "one", provider_key="sekrit")
        two, two_id = self.enlisted(s, "two", provider_key="sekrit")
        self.assertError(self.drain(s, one_id), 401, "provider_key_missing")
        self.assertError(self.drain(s, one_id, {"provider_key": "wrong"}), 403,
                         "provider_key_invalid")
        self.assertError(self.drain(s, one_id, headers={"X-Provider-Key": "wrong"}), 403,
                         "provider_key_invalid")
        self.assertEqual(self.entry(s, one_id)["status"], "online")
        self.assertEqual(metric_value(s, "voicebot_provider_drains_total"), 0)
        # In the body, or in the header, like DELETE.
        lobby = self.create_lobby(s)["id"]
        self.joined(s, lobby, nick="a", provider_id=one_id)
        self.joined(s, lobby, nick="b", provider_id=two_id)
        status, _, res = self.drain(s, one_id, {"provider_key": "sekrit"})
        self.assertEqual((status, res["status"]), (200, "draining"), res)
        status, _, res = self.drain(s, two_id, headers={"X-Provider-Key": "sekrit"})
        self.assertEqual((status, res["status"]), (200, "draining"), res)

    def test_without_keys_configured_the_drain_route_needs_none(self):
        s = self.start_server(*self.FLAGS)
        fp, pid = self.enlisted(s, "p")
        lobby = self.create_lobby(s)["id"]
        self.joined(s, lobby)
        status, _, res = self.drain(s, pid)
        self.assertEqual((status, res["status"]), (200, "draining"), res)

    def check_moved_on_timeout(self, s, drain_body, took_at_least):
        old, old_id = self.enlisted(s, "old", instance_id="old-1")
        new, new_id = self.enlisted(s, "new")
        lobby, first = self.lobby_with_member(s, nick="Echo", provider_id=old_id)
        self.assertEqual(first["provider_id"], old_id)
        ws = self.lobby_socket(s, lobby)
        started = time.monotonic()
        status, _, res = self.drain(s, old_id, drain_body)
        self.assertEqual((status, res["status"]), (200, "draining"), res)
        # The timeout passes: the member moves, the old run is stopped.
        moved, _ = ws.wait_for(lambda e: e["type"] == "member_moved", 10)
        took = time.monotonic() - started
        self.assertGreaterEqual(took, took_at_least - 0.05, "moved before the drain timeout")
        member = moved["member"]
        self.assertEqual((member["session_id"], member["nick"], member["bot_name"]),
                         (first["session_id"], "Echo", "echo"))
        self.assertEqual(member["provider_id"], new_id)
        self.assertNotEqual(member["run_id"], first["run_id"])
        self.assertIn(member["run_id"], new.live_runs())
        self.assertFalse(member["orphaned"])
        self.assertIsNotNone(member["moved_at"])
        [join] = new.joins()
        self.assertEqual((join[3]["session_id"], join[3]["nick"], join[3]["lobby_id"]),
                         (first["session_id"], "Echo", lobby))
        old.wait_for_stop(first["run_id"])
        [m] = self.sessions(s, lobby)
        self.assertEqual({k: m[k] for k in ("session_id", "nick", "provider_id", "run_id")},
                         {k: member[k] for k in ("session_id", "nick", "provider_id", "run_id")})
        # The drained provider is gone, and its instance may not come back.
        self.wait_gone(s, old_id)
        status, _, res = self.heartbeat(s, old_id, instance_id="old-1")
        self.assertEqual((status, res), (410, REMOVED))
        self.assertGreaterEqual(metric_value(s, "voicebot_redispatches_total"), 1)

    def test_on_the_drain_timeout_members_move_to_another_provider(self):
        s = self.start_server(*self.FLAGS)
        self.check_moved_on_timeout(s, {"timeout": 0.6}, 0.6)

    def test_the_default_drain_timeout_is_the_flag(self):
        s = self.start_server(*self.FLAGS, "--drain-timeout", "0.6")
        self.check_moved_on_timeout(s, {}, 0.6)

    def test_on_the_drain_timeout_with_no_other_provider_the_member_is_orphaned(self):
        # SPEC §7: past the timeout its members are re-dispatched "and it is
        # told to stop those runs"; a member no one can take is orphaned.
        s = self.start_server(*self.FLAGS)
        old, old_id = self.enlisted(s, "old", instance_id="old-1")
        lobby, first = self.lobby_with_member(s, nick="Echo")
        ws = self.lobby_socket(s, lobby)
        status, _, res = self.drain(s, old_id, {"timeout": 0.3})
        self.assertEqual((status, res["status"]), (200, "draining"), res)
        event, _ = ws.wait_for(lambda e: e["type"] == "member_orphaned", 10)
        self.assertEqual((event["member"]["session_id"], event["member"]["orphaned"]),
                         (first["session_id"], True))
        self.wait_gone(s, old_id)
        m = self.member(s, lobby, first["session_id"])
        self.assertTrue(m["orphaned"], m)
        self.assertEqual(metric_value(s, "voicebot_orphaned_members"), 1)
        # The drained provider is told to stop the run it no longer has a
        # member for.
        old.wait_for_stop(first["run_id"], 5)

    def test_on_the_drain_timeout_a_failed_move_still_stops_the_old_run(self):
        s = self.start_server(*self.FLAGS)
        old, broken = self.fleet_provider("old"), self.fleet_provider("broken")
        old_id = self.enlist(s, old)
        self.enlist(s, broken)
        lobby, first = self.lobby_with_member(s, nick="Echo", provider_id=old_id)
        broken.mode = "status"
        ws = self.lobby_socket(s, lobby)
        self.assertEqual(self.drain(s, old_id, {"timeout": 0.3})[0], 200)
        ws.wait_for(lambda e: e["type"] == "member_orphaned", 10)
        self.assertEqual(len(broken.joins()), 1)
        old.wait_for_stop(first["run_id"], 5)

    def test_a_draining_provider_whose_heartbeat_lacks_a_run_loses_that_member(self):
        s = self.start_server(*self.FLAGS)
        old, old_id = self.enlisted(s, "old", heartbeat_interval=0.2, instance_id="old-1")
        new, new_id = self.enlisted(s, "new")
        lobby, first = self.lobby_with_member(s, nick="Echo", provider_id=old_id)
        self.assertEqual(self.drain(s, old_id, {"timeout": 60})[0], 200)
        time.sleep(0.6)  # more than two intervals: the run counts as lost
        old.forget(first["run_id"])
        self.assertEqual(self.heartbeat(s, old_id, instance_id="old-1", runs=[])[0], 200)
        # Never back to a draining provider: to the other one; then the
        # drained provider runs no member and is deregistered.
        m = self.wait_member(s, lobby, first["session_id"],
                             lambda m: m["provider_id"] != old_id, 10, "moved")
        self.assertEqual((m["provider_id"], m["nick"]), (new_id, "Echo"))
        self.assertEqual(len(old.joins()), 1)
        self.wait_gone(s, old_id)


class RemovedTest(FleetTestCase):
    FLAGS = DrainTest.FLAGS

    def test_delete_then_a_heartbeat_of_the_same_instance_is_410(self):
        s = self.start_server(*self.FLAGS)
        fp, pid = self.enlisted(s, "gone", instance_id="inst-1")
        self.assertEqual(s.request("DELETE", f"/api/bots/providers/{pid}")[0], 204)
        status, _, res = self.heartbeat(s, pid, instance_id="inst-1", load=0.1)
        self.assertEqual((status, res), (410, REMOVED))
        self.assertIsNone(self.entry(s, pid))
        # A registration of that instance with that id: 410 too, nothing back.
        status, _, res = s.request("POST", "/api/bots/providers/register",
                                   {"name": "gone", "base_url": fp.base_url,
                                    "provider_id": pid, "instance_id": "inst-1",
                                    "bots": [{"name": "echo", "description": ""}]})
        self.assertEqual((status, res), (410, REMOVED))
        self.assertIsNone(self.entry(s, pid))
        self.assertEqual(metric_value(s, "voicebot_removed_answers_total"), 2)
        # A new instance (a restarted provider) registers with its id as usual.
        again = self.enlist(s, fp, provider_id=pid, instance_id="inst-2")
        self.assertEqual(again, pid)
        self.assertEqual(self.entry(s, pid)["status"], "online")
        status, _, res = self.heartbeat(s, pid, instance_id="inst-2")
        self.assertEqual(status, 200, res)

    def test_the_tombstone_lasts_stale_after(self):
        s = self.start_server("--cleanup-interval", "0.2", "--stale-after", "1")
        fp, pid = self.enlisted(s, "gone", instance_id="inst-1")
        deleted = time.monotonic()
        self.assertEqual(s.request("DELETE", f"/api/bots/providers/{pid}")[0], 204)
        self.assertEqual(self.heartbeat(s, pid, instance_id="inst-1")[2], REMOVED)
        # stale_after later the tombstone is gone: 404 and re-register (§3).
        wait_until(lambda: self.heartbeat(s, pid, instance_id="inst-1")[0] == 404, 5,
                   "404 once the tombstone is gone")
        self.assertGreaterEqual(time.monotonic() - deleted, 1 - 0.05)
        self.assertEqual(self.enlist(s, fp, provider_id=pid, instance_id="inst-1"), pid)

    def test_without_an_instance_id_a_deleted_provider_gets_404_as_before(self):
        s = self.start_server(*self.FLAGS)
        fp, pid = self.enlisted(s, "old-protocol")
        self.assertEqual(s.request("DELETE", f"/api/bots/providers/{pid}")[0], 204)
        self.assertError(self.heartbeat(s, pid), 404, "provider_not_found")
        self.assertEqual(self.enlist(s, fp, provider_id=pid), pid)

    def test_an_evicted_provider_is_not_removed_on_purpose_404_and_back(self):
        s = self.start_server(*FleetTestCase.FAST)
        fp = self.dead_port_provider("evicted")
        pid = self.enlist(s, fp, instance_id="inst-1")
        s.wait_for_line(r"provider evicted: evicted id=" + pid)
        self.assertError(self.heartbeat(s, pid, instance_id="inst-1"), 404,
                         "provider_not_found")
        self.assertEqual(self.enlist(s, fp, provider_id=pid, instance_id="inst-1"), pid)


class RedispatchTest(FleetTestCase):
    """Members of an evicted provider, or of a lost run, run elsewhere."""

    def test_members_of_an_evicted_provider_move_with_their_session(self):
        s = self.start_server(*self.FAST)
        dying, dying_id = self.enlisted(s, "dying")
        alive, alive_id = self.enlisted(s, "alive", heartbeat_interval=0.2)
        self.beat(s, alive, alive_id)
        lobby = self.create_lobby(s)["id"]
        person = s.request("POST", f"/api/lobby/{lobby}/sessions", {"nick": "alice"})[2]
        first = self.joined(s, lobby, nick="Echo", provider_id=dying_id)
        self.assertEqual(first["provider_id"], dying_id)
        ws = self.lobby_socket(s, lobby)
        last_seen = self.entry(s, dying_id)["last_seen"]
        dying.kill()
        moved, _ = ws.wait_for(lambda e: e["type"] == "member_moved", 15)
        member = moved["member"]
        self.assertEqual((member["session_id"], member["nick"], member["provider_id"]),
                         (first["session_id"], "Echo", alive_id))
        self.assertIn(member["run_id"], alive.live_runs())
        self.assertFalse(member["orphaned"])
        # Not before the cleanup rule: unseen for stale_after (1 s).
        self.assertGreaterEqual(member["moved_at"] - last_seen, 1 - 0.05)
        self.assertIsNone(self.entry(s, dying_id))
        got = {m["session_id"]: m for m in self.sessions(s, lobby)}
        self.assertEqual(set(got), {person["session_id"], first["session_id"]})
        self.assertEqual((got[first["session_id"]]["provider_id"],
                          got[first["session_id"]]["run_id"]),
                         (alive_id, member["run_id"]))
        self.assertEqual(got[first["session_id"]]["moved_at"], member["moved_at"])
        self.assertGreaterEqual(metric_value(s, "voicebot_redispatches_total"), 1)

    def test_a_silent_provider_that_answers_the_probe_keeps_its_members(self):
        s = self.start_server(*self.FAST)
        quiet, quiet_id = self.enlisted(s, "quiet", heartbeat_interval=0.2)
        other, other_id = self.enlisted(s, "other", heartbeat_interval=0.2)
        self.beat(s, other, other_id)
        lobby, first = self.lobby_with_member(s, nick="Echo", provider_id=quiet_id)
        # No heartbeats from it: suspect, then stale; the server probes
        # GET /bots, it answers, and that counts as seen: it stays.
        self.wait_status(s, quiet_id, "suspect", 5)
        quiet.wait_for(lambda p: len(p.probes()) >= 2, 10, "two probes")
        self.assertTrue(all(c[2] == "/bots" for c in quiet.probes()), quiet.probes())
        self.assertIsNotNone(self.entry(s, quiet_id))
        m = self.member(s, lobby, first["session_id"])
        self.assertEqual((m["provider_id"], m["run_id"], m["moved_at"]),
                         (quiet_id, first["run_id"], None))
        self.assertEqual(other.joins(), [])

    def test_without_another_provider_a_member_is_orphaned_until_one_registers(self):
        s = self.start_server(*self.FAST)
        dying, dying_id = self.enlisted(s, "dying")
        lobby, first = self.lobby_with_member(s, nick="Echo")
        ws = self.lobby_socket(s, lobby)
        dying.kill()
        event, _ = ws.wait_for(lambda e: e["type"] == "member_orphaned", 15)
        self.assertEqual(event["member"]["session_id"], first["session_id"])
        self.assertTrue(event["member"]["orphaned"])
        m = self.wait_member(s, lobby, first["session_id"], lambda m: m["orphaned"], 5,
                             "orphaned")
        self.assertEqual((m["nick"], m["bot_name"]), ("Echo", "echo"))
        self.assertEqual(metric_value(s, "voicebot_orphaned_members"), 1)
        self.wait_gone(s, dying_id)
        # A provider of its bot registers: the member is dispatched to it.
        rescue, rescue_id = self.enlisted(s, "rescue", heartbeat_interval=0.2)
        self.beat(s, rescue, rescue_id)
        moved, _ = ws.wait_for(lambda e: e["type"] == "member_moved", 10)
        member = moved["member"]
        self.assertEqual((member["session_id"], member["nick"], member["provider_id"]),
                         (first["session_id"], "Echo", rescue_id))
        self.assertFalse(member["orphaned"])
        self.assertIn(member["run_id"], rescue.live_runs())
        [join] = rescue.joins()
        self.assertEqual(join[3]["session_id"], first["session_id"])
        m = self.member(s, lobby, first["session_id"])
        self.assertEqual((m["orphaned"], m["provider_id"], m["run_id"]),
                         (False, rescue_id, member["run_id"]))
        self.assertEqual(metric_value(s, "voicebot_orphaned_members"), 0)

    def test_a_heartbeat_that_lacks_an_old_run_redispatches_its_member(self):
        s = self.start_server(*self.CALM)
        loser, loser_id = self.enlisted(s, "loser", heartbeat_interval=0.2, instance_id="l-1")
        other, other_id = self.enlisted(s, "other")
        lobby, first = self.lobby_with_member(s, nick="Echo", provider_id=loser_id)
        ws = self.lobby_socket(s, lobby)
        # Given less than two intervals ago: a heartbeat may not list it yet.
        status, _, res = self.heartbeat(s, loser_id, instance_id="l-1", runs=[])
        self.assertEqual(status, 200, res)
        # More than two intervals (0.4 s) later, still missing: it was lost.
        time.sleep(0.6)
        loser.forget(first["run_id"])
        lost_at = time.time()
        status, _, res = self.heartbeat(s, loser_id, instance_id="l-1",
                                        runs=loser.live_runs())
        self.assertEqual(status, 200, res)
        moved, seen = ws.wait_for(lambda e: e["type"] == "member_moved", 10)
        member = moved["member"]
        self.assertEqual((member["session_id"], member["nick"], member["provider_id"]),
                         (first["session_id"], "Echo", other_id))
        self.assertIn(member["run_id"], other.live_runs())
        # Moved by the second heartbeat, not by the first.
        self.assertGreaterEqual(member["moved_at"], lost_at - 0.05)
        self.assertEqual([e["type"] for e in seen], ["member_moved"])
        self.assertEqual(self.member(s, lobby, first["session_id"])["provider_id"], other_id)

    def test_a_lost_run_goes_back_to_its_provider_when_it_is_the_only_one(self):
        s = self.start_server(*self.CALM)
        only, pid = self.enlisted(s, "only", heartbeat_interval=0.2, instance_id="o-1")
        lobby, first = self.lobby_with_member(s, nick="Echo")
        time.sleep(0.6)  # more than two intervals
        only.forget(first["run_id"])
        self.assertEqual(self.heartbeat(s, pid, instance_id="o-1", runs=[])[0], 200)
        m = self.wait_member(s, lobby, first["session_id"],
                             lambda m: m["run_id"] != first["run_id"], 10, "a new run")
        self.assertEqual((m["provider_id"], m["orphaned"]), (pid, False))
        self.assertEqual(only.live_runs(), [m["run_id"]])

    def test_an_orphan_is_dispatched_when_a_provider_comes_back_online(self):
        s = self.start_server(*self.FAST)
        dying, flaky = self.fleet_provider("dying"), self.fleet_provider("flaky")
        dying_id = self.enlist(s, dying)
        lobby, first = self.lobby_with_member(s, nick="Echo", provider_id=dying_id)
        flaky_id = self.enlist(s, flaky, heartbeat_interval=0.2)
        self.beat(s, flaky, flaky_id)
        flaky.mode = "status"  # the move to it fails: unreachable
        ws = self.lobby_socket(s, lobby)
        dying.kill()
        event, _ = ws.wait_for(lambda e: e["type"] == "member_orphaned", 15)
        self.assertEqual(event["member"]["session_id"], first["session_id"])
        self.assertEqual(len(flaky.joins()), 1)
        # Its next heartbeat brings it back online: the orphan moves to it.
        flaky.mode = "ok"
        moved, _ = ws.wait_for(lambda e: e["type"] == "member_moved", 10)
        self.assertEqual((moved["member"]["session_id"], moved["member"]["provider_id"],
                          moved["member"]["orphaned"]), (first["session_id"], flaky_id, False))
        self.assertIn(moved["member"]["run_id"], flaky.live_runs())

    def test_moves_and_orphans_are_durable(self):
        s = self.start_server(*self.FAST)
        dying, dying_id = self.enlisted(s, "dying")
        alive, alive_id = self.enlisted(s, "alive", heartbeat_interval=0.2)
        self.beat(s, alive, alive_id)
        lobby, echo = self.lobby_with_member(s, nick="Echo", provider_id=dying_id)
        # A second bot only the dying provider has: orphaned.
        lone = self.fleet_provider("lone", bots=("greeter",))
        self.enlist(s, lone)
        greeter = self.joined(s, lobby, bot="greeter", nick="Greeter")
        ws = self.lobby_socket(s, lobby)
        dying.kill()
        lone.kill()
        events = {}
        while set(events) != {"member_moved", "member_orphaned"}:  # in either order
            event, _ = ws.wait_for(lambda e: e["type"] in ("member_moved", "member_orphaned"),
                                   15)
            events[event["type"]] = event
        moved = events["member_moved"]
        # kill -9 and start again: the lobby is as it was announced.
        s.kill()
        self.servers.remove(s)
        s = self.start_server(*self.CALM)
        got = {m["session_id"]: m for m in self.sessions(s, lobby)}
        m = got[echo["session_id"]]
        self.assertEqual((m["nick"], m["provider_id"], m["run_id"], m["moved_at"], m["orphaned"]),
                         ("Echo", alive_id, moved["member"]["run_id"],
                          moved["member"]["moved_at"], False))
        self.assertTrue(got[greeter["session_id"]]["orphaned"])
        # The orphan is dispatched once a provider of its bot registers.
        rescue, rescue_id = self.enlisted(s, "rescue", bots=("greeter",))
        m = self.wait_member(s, lobby, greeter["session_id"], lambda m: not m["orphaned"], 10,
                             "not orphaned")
        self.assertEqual((m["provider_id"], m["nick"]), (rescue_id, "Greeter"))

    def test_runs_listed_in_heartbeats_keep_their_members(self):
        s = self.start_server(*self.CALM)
        fp, other = self.fleet_provider("steady"), self.fleet_provider("other")
        pid = self.enlist(s, fp, heartbeat_interval=0.1, instance_id="s-1")
        self.enlist(s, other)
        lobby, first = self.lobby_with_member(s, nick="Echo", provider_id=pid)
        loop = self.beat(s, fp, pid, every=0.05, instance_id="s-1")
        # Ten intervals of heartbeats that list the run.
        wait_until(lambda: len([a for a in loop.answers if a[0] == 200]) >= 10, 10,
                   "ten heartbeats")
        m = self.member(s, lobby, first["session_id"])
        self.assertEqual((m["provider_id"], m["run_id"], m["moved_at"]),
                         (pid, first["run_id"], None))
        self.assertEqual(other.joins(), [])


class ReconciliationTest(FleetTestCase):
    """A re-registration over HTTP that lists its runs (SPEC §7)."""

    def setup_two_members(self):
        s = self.start_server(*self.CALM)
        fp, pid = self.enlisted(s, "main", instance_id="m-1")
        other, other_id = self.enlisted(s, "other")
        lobby, kept = self.lobby_with_member(s, nick="Kept", provider_id=pid)
        lost = self.joined(s, lobby, nick="Lost", provider_id=pid)
        self.assertEqual({kept["provider_id"], lost["provider_id"]}, {pid})
        return s, fp, pid, other, other_id, lobby, kept, lost

    def test_reregistration_with_runs_keeps_listed_redispatches_missing_stops_unknown(self):
        s, fp, pid, other, other_id, lobby, kept, lost = self.setup_two_members()
        ws = self.lobby_socket(s, lobby)
        fp.forget(lost["run_id"])
        again = self.enlist(s, fp, instance_id="m-2",
                            runs=[kept["run_id"], {"run_id": "ghost-run"}])
        self.assertEqual(again, pid)
        moved, _ = ws.wait_for(lambda e: e["type"] == "member_moved", 10)
        self.assertEqual((moved["member"]["session_id"], moved["member"]["nick"],
                          moved["member"]["provider_id"]),
                         (lost["session_id"], "Lost", other_id))
        self.assertIn(moved["member"]["run_id"], other.live_runs())
        fp.wait_for_stop("ghost-run")
        got = {m["session_id"]: m for m in self.sessions(s, lobby)}
        self.assertEqual((got[kept["session_id"]]["provider_id"],
                          got[kept["session_id"]]["run_id"]), (pid, kept["run_id"]))
        self.assertEqual(got[lost["session_id"]]["provider_id"], other_id)
        self.assertNotIn(kept["run_id"], fp.stops())

    def test_a_rate_limited_reregistration_with_runs_changes_nothing(self):
        s = self.start_server(*self.CALM, "--max-registrations-per-second", "1")
        fp = self.fleet_provider("main")
        pid = self.enlist(s, fp, instance_id="m-1")  # the bucket's only token
        lobby, first = self.lobby_with_member(s, nick="Echo")
        status, headers, res = s.request(
            "POST", "/api/bots/providers/register",
            {"name": "main", "base_url": fp.base_url, "instance_id": "m-2",
             "bots": [{"name": "echo", "description": ""}], "runs": ["ghost-run"]})
        self.assertEqual((status, res["code"]), (429, "rate_limited"), res)
        self.assertIn("retry-after", headers)
        self.assertEqual(self.entry(s, pid)["instance_id"], "m-1")
        # Nothing is to happen: watch for a while that nothing does.
        deadline = time.monotonic() + 1.0
        while time.monotonic() < deadline:
            m = self.member(s, lobby, first["session_id"])
            self.assertEqual((m["provider_id"], m["run_id"]), (pid, first["run_id"]))
            self.assertEqual(fp.stops(), [])
            time.sleep(0.1)

    def test_reregistration_without_runs_changes_nothing(self):
        s, fp, pid, other, other_id, lobby, kept, lost = self.setup_two_members()
        before = self.sessions(s, lobby)
        self.assertEqual(self.enlist(s, fp, instance_id="m-1"), pid)
        # Nothing is to happen: watch for a while that nothing does.
        deadline = time.monotonic() + 1.0
        while time.monotonic() < deadline:
            self.assertEqual(self.sessions(s, lobby), before)
            self.assertEqual((fp.stops(), other.joins()), ([], []))
            time.sleep(0.1)
        self.assertEqual(len(fp.joins()), 2)


if __name__ == "__main__":
    unittest.main()
