"""Fleet behaviour (SPEC §7) as a frontend and HTTP providers see it:
several fake providers of one bot (fake_provider.py), each test with its
own voicebot-server on free loopback ports and short timings. Placement by
load, capacity and preference; failover on 5xx, refused connections and
slow answers (a late acceptance is stopped); 4xx is a rejection; the
provider states and fields of the listing; out-of-range heartbeat values;
the registration token bucket; the fleet series of /metrics."""

import threading
import time
import unittest

from fake_provider import FleetTestCase
from harness import metric_samples, metric_value, wait_until


class PlacementTest(FleetTestCase):
    """Placement: online candidates with capacity, the preferred one first,
    then least load, fewest active runs, most recently seen."""

    def test_a_join_goes_to_the_least_loaded_provider_with_capacity(self):
        s = self.start_server(*self.CALM)
        busy, idle, full = (self.fleet_provider(n) for n in ("busy", "idle", "full"))
        ids = {fp.name: self.enlist(s, fp) for fp in (busy, idle, full)}
        for name, load, capacity in (("busy", 0.9, 5), ("idle", 0.1, 5), ("full", 0.0, 0)):
            status, _, res = self.heartbeat(s, ids[name], load=load, capacity=capacity)
            self.assertEqual(status, 200, res)
        lobby = self.create_lobby(s)["id"]
        first = self.joined(s, lobby, nick="one")
        self.assertEqual(first["provider_id"], ids["idle"])
        self.assertEqual(len(idle.joins()), 1)
        # The idle one says it is busier now: the next join goes to the
        # other; the one without capacity gets nothing, whatever its load.
        self.assertEqual(self.heartbeat(s, ids["idle"], load=0.95)[0], 200)
        second = self.joined(s, lobby, nick="two")
        self.assertEqual(second["provider_id"], ids["busy"])
        self.assertEqual(full.joins(), [])
        # A provider of a capacity 0 is not a candidate even when preferred.
        third = self.joined(s, lobby, nick="three", provider_id=ids["full"])
        self.assertIn(third["provider_id"], (ids["busy"], ids["idle"]))
        self.assertEqual(full.joins(), [])
        # Capacity again: it is a candidate like any other.
        self.assertEqual(self.heartbeat(s, ids["full"], capacity=1)[0], 200)
        fourth = self.joined(s, lobby, nick="four")
        self.assertEqual(fourth["provider_id"], ids["full"])
        self.assertEqual([m["provider_id"] for m in self.sessions(s, lobby)],
                         [ids["idle"], ids["busy"], third["provider_id"], ids["full"]])

    def test_equal_load_goes_to_fewest_runs_then_to_the_most_recently_seen(self):
        s = self.start_server(*self.CALM)
        a, b = self.fleet_provider("a"), self.fleet_provider("b")
        ids = {"a": self.enlist(s, a), "b": self.enlist(s, b)}
        lobby = self.create_lobby(s)["id"]
        first = self.joined(s, lobby, nick="one")
        other = "a" if first["provider_id"] == ids["b"] else "b"
        wait_until(lambda: sorted(e["active_runs"] for e in self.listed(s).values()) == [0, 1],
                   5, "the first run in the listing")
        # The provider with no run is chosen over the one with a run.
        second = self.joined(s, lobby, nick="two")
        self.assertEqual(second["provider_id"], ids[other])
        # The count follows the member's write (the lobbies tell the
        # registry after the fact): awaited, not read at once.
        wait_until(lambda: {e["active_runs"] for e in self.listed(s).values()} == {1},
                   5, "one run each in the listing")
        # One run each: the most recently seen wins, whichever it is.
        for name in ("a", "b", "a"):
            self.assertEqual(self.heartbeat(s, ids[name])[0], 200)
            third = self.joined(s, lobby, nick="three-" + name)
            self.assertEqual(third["provider_id"], ids[name])
            status, _, _ = s.request("POST", "/api/bots/leave",
                                     {"session_id": third["session_id"]})
            self.assertEqual(status, 200)

    def test_the_preferred_provider_goes_first_when_it_is_a_candidate(self):
        s = self.start_server(*self.CALM)
        loaded, light = self.fleet_provider("loaded"), self.fleet_provider("light")
        loaded_id, light_id = self.enlist(s, loaded), self.enlist(s, light)
        self.assertEqual(self.heartbeat(s, loaded_id, load=0.8)[0], 200)
        self.assertEqual(self.heartbeat(s, light_id, load=0.2)[0], 200)
        lobby = self.create_lobby(s)["id"]
        self.assertEqual(self.joined(s, lobby, nick="p", provider_id=loaded_id)["provider_id"],
                         loaded_id)
        # An unknown preference is only a preference: placement as usual.
        self.assertEqual(self.joined(s, lobby, nick="q",
                                     provider_id="no-such-provider")["provider_id"], light_id)
        self.assertEqual(self.joined(s, lobby, nick="r")["provider_id"], light_id)


    def test_a_bot_whose_providers_take_no_joins_is_503_not_404(self):
        s = self.start_server(*self.CALM)
        full, draining = self.fleet_provider("full"), self.fleet_provider("draining")
        full_id, draining_id = self.enlist(s, full), self.enlist(s, draining)
        self.assertEqual(self.heartbeat(s, full_id, capacity=0)[0], 200)
        lobby = self.create_lobby(s)["id"]
        self.joined(s, lobby, nick="kept", provider_id=draining_id)
        status, _, res = s.request("POST", f"/api/bots/providers/{draining_id}/drain", {})
        self.assertEqual(status, 200, res)
        status, headers, res = self.join(s, lobby, "echo", "E")
        self.assertEqual(status, 503, res)
        self.assertEqual(res["code"], "provider_unavailable")
        self.assertGreaterEqual(int(headers["retry-after"]), 1)
        self.assertEqual([m["nick"] for m in self.sessions(s, lobby)], ["kept"])
        self.assertEqual((len(full.joins()), len(draining.joins())), (0, 1))


class FailoverTest(FleetTestCase):
    """A join the first candidate cannot take is tried on the next."""

    def start(self, *extra):
        s = self.start_server(*self.CALM, *extra)
        bad, good = self.fleet_provider("bad"), self.fleet_provider("good")
        self.bad_id, self.good_id = self.enlist(s, bad), self.enlist(s, good)
        self.lobby = self.create_lobby(s)["id"]
        return s, bad, good

    def check_failed_over(self, s, bad, good, answer):
        status, _, res = answer
        self.assertEqual(status, 200, res)
        self.assertEqual(res["provider_id"], self.good_id)
        [accepted] = good.joins()
        self.assertEqual(accepted[3]["session_id"], res["session_id"])
        self.assertIn(res["run_id"], good.live_runs())
        [m] = self.sessions(s, self.lobby)
        self.assertEqual((m["session_id"], m["provider_id"], m["run_id"]),
                         (res["session_id"], self.good_id, res["run_id"]))
        # The one that failed is unreachable until it is heard from again.
        self.assertEqual(self.entry(s, self.bad_id)["status"], "unreachable")
        self.assertGreaterEqual(metric_value(s, "voicebot_join_failovers_total"), 1)

    def test_a_500_fails_over_to_the_next_provider(self):
        s, bad, good = self.start()
        bad.mode, bad.status = "status", 500
        answer = self.join(s, self.lobby, "echo", "E", provider_id=self.bad_id)
        self.check_failed_over(s, bad, good, answer)
        [tried] = bad.joins()
        self.assertEqual(tried[3]["session_id"], answer[2]["session_id"])

    def test_a_refused_connection_fails_over_to_the_next_provider(self):
        s, bad, good = self.start()
        bad.kill()
        self.check_failed_over(s, bad, good,
                               self.join(s, self.lobby, "echo", "E", provider_id=self.bad_id))
        # Heard from again (a heartbeat), it is online.
        self.assertEqual(self.heartbeat(s, self.bad_id)[0], 200)
        self.assertEqual(self.entry(s, self.bad_id)["status"], "online")

    def test_a_closed_connection_fails_over_to_the_next_provider(self):
        s, bad, good = self.start()
        bad.mode = "drop"
        self.check_failed_over(s, bad, good,
                               self.join(s, self.lobby, "echo", "E", provider_id=self.bad_id))

    def test_a_slow_provider_fails_over_and_its_late_run_is_stopped(self):
        s, bad, good = self.start()
        bad.mode, bad.delay = "slow", 1.5  # the dispatch timeout is 0.5 s
        started = time.monotonic()
        answer = self.join(s, self.lobby, "echo", "E", provider_id=self.bad_id)
        took = time.monotonic() - started
        self.check_failed_over(s, bad, good, answer)
        self.assertGreaterEqual(took, 0.45, "answered before the dispatch timeout")
        self.assertLess(took, 1.5, "waited for the slow provider")
        # It accepts after all: that run is told to stop, and is no member.
        late = bad.wait_for(lambda p: p.accepted and p.accepted[0], 5, "late acceptance")
        bad.wait_for_stop(late, 5)
        self.assertEqual(bad.live_runs(), [])
        self.assertEqual([m["run_id"] for m in self.sessions(s, self.lobby)],
                         [answer[2]["run_id"]])
        self.assertNotIn(late, good.stops())
        wait_until(lambda: metric_value(s, "voicebot_late_acceptances_total") == 1, 5,
                   "voicebot_late_acceptances_total 1")

    def test_a_4xx_is_a_rejection_502_without_failover(self):
        s, bad, good = self.start()
        for code in (400, 404, 409, 422):
            with self.subTest(status=code):
                bad.mode, bad.status = "status", code
                status, _, res = self.join(s, self.lobby, "echo", "E", provider_id=self.bad_id)
                self.assertEqual(status, 502, res)
                self.assertEqual(res["code"], "provider_rejected")
        self.assertEqual(good.joins(), [])
        self.assertEqual(len(bad.joins()), 4)
        self.assertEqual(self.sessions(s, self.lobby), [])

    def test_no_failover_attempts_is_503_with_retry_after(self):
        s, bad, good = self.start("--failover-attempts", "0")
        bad.mode, bad.status = "status", 500
        status, headers, res = self.join(s, self.lobby, "echo", "E", provider_id=self.bad_id)
        self.assertEqual(status, 503, res)
        self.assertEqual(res["code"], "provider_unavailable")
        self.assertGreaterEqual(int(headers["retry-after"]), 1)
        self.assertEqual(len(bad.joins()), 1)
        self.assertEqual(good.joins(), [])
        self.assertEqual(self.sessions(s, self.lobby), [])

    def test_failover_stops_after_failover_attempts_further_providers(self):
        s = self.start_server(*self.CALM)  # --failover-attempts 1 by default
        first, second, third = (self.fleet_provider(n) for n in ("first", "second", "third"))
        ids = [self.enlist(s, fp) for fp in (first, second, third)]
        # The order: the preferred one, then the least loaded.
        for pid, load in zip(ids, (0.5, 0.1, 0.3)):
            self.assertEqual(self.heartbeat(s, pid, load=load)[0], 200)
        first.mode = second.mode = "status"
        lobby = self.create_lobby(s)["id"]
        status, headers, res = self.join(s, lobby, "echo", "E", provider_id=ids[0])
        self.assertEqual(status, 503, res)
        self.assertIn("retry-after", headers)
        self.assertEqual((len(first.joins()), len(second.joins()), len(third.joins())),
                         (1, 1, 0))
        self.assertEqual(self.sessions(s, lobby), [])
        # Both failed ones are unreachable now: the next join finds the third.
        self.assertEqual(self.joined(s, lobby, nick="E")["provider_id"], ids[2])


class StatesTest(FleetTestCase):
    """online, suspect, unreachable, draining, and the fleet fields."""

    def test_suspect_after_two_missed_intervals_and_online_after_a_heartbeat(self):
        s = self.start_server(*self.CALM)
        late, steady = self.fleet_provider("late"), self.fleet_provider("steady")
        before = time.monotonic()
        late_id = self.enlist(s, late, heartbeat_interval=0.2, instance_id="late-1")
        self.assertEqual(self.entry(s, late_id)["status"], "online")
        steady_id = self.enlist(s, steady)
        self.wait_status(s, late_id, "suspect", 5)
        self.assertGreaterEqual(time.monotonic() - before, 0.4 - 0.02,
                                "suspect before two heartbeat intervals")
        self.assertEqual(self.listed(s)[late_id]["status"], "suspect")
        self.assertEqual(metric_value(s, "voicebot_providers", status="suspect"), 1)
        # A suspect provider gets no join while another is online.
        lobby = self.create_lobby(s)["id"]
        self.assertEqual(self.joined(s, lobby, nick="a", provider_id=late_id)["provider_id"],
                         steady_id)
        self.assertEqual(late.joins(), [])
        # A heartbeat: online at once, and a candidate again.
        status, _, res = self.heartbeat(s, late_id, instance_id="late-1")
        self.assertEqual((status, res["status"]), (200, "ok"))
        self.assertEqual(self.entry(s, late_id)["status"], "online")
        self.assertEqual(self.joined(s, lobby, nick="b", provider_id=late_id)["provider_id"],
                         late_id)

    def test_a_suspect_provider_is_used_when_none_is_online(self):
        s = self.start_server(*self.CALM)
        only = self.fleet_provider("only")
        pid = self.enlist(s, only, heartbeat_interval=0.2)
        self.wait_status(s, pid, "suspect", 5)
        lobby = self.create_lobby(s)["id"]
        self.assertEqual(self.joined(s, lobby)["provider_id"], pid)

    def test_unreachable_after_a_failed_dispatch_until_heard_from(self):
        s = self.start_server(*self.CALM)
        fp = self.fleet_provider("flaky")
        pid = self.enlist(s, fp)
        fp.mode = "status"
        lobby = self.create_lobby(s)["id"]
        status, headers, res = self.join(s, lobby, "echo", "E")
        self.assertEqual(status, 503, res)
        self.assertIn("retry-after", headers)
        self.assertEqual(self.entry(s, pid)["status"], "unreachable")
        self.assertEqual(self.listed(s)[pid]["status"], "unreachable")
        self.assertEqual(metric_value(s, "voicebot_providers", status="unreachable"), 1)
        # An accepted dispatch is being heard from too.
        fp.mode = "ok"
        self.assertEqual(self.joined(s, lobby)["provider_id"], pid)
        self.assertEqual(self.entry(s, pid)["status"], "online")
        # So is a registration.
        fp.mode = "status"
        self.assertEqual(self.join(s, lobby, "echo", "F")[0], 503)
        self.assertEqual(self.entry(s, pid)["status"], "unreachable")
        self.assertEqual(self.enlist(s, fp), pid)
        self.assertEqual(self.entry(s, pid)["status"], "online")

    def test_the_listing_shows_lease_load_capacity_runs_and_interval(self):
        s = self.start_server("--cleanup-interval", "0.2", "--stale-after", "30")
        announced, plain = self.fleet_provider("announced"), self.fleet_provider("plain")
        a = self.enlist(s, announced, heartbeat_interval=0.5, instance_id="inst-a")
        p = self.enlist(s, plain)
        for entry in (self.entry(s, a), self.listed(s)[a]):
            self.assertEqual(entry["status"], "online")
            self.assertEqual(entry["heartbeat_interval"], 0.5)
            self.assertIsNone(entry["load"])
            self.assertIsNone(entry["capacity"])
            self.assertEqual(entry["active_runs"], 0)
            self.assertAlmostEqual(entry["lease_expires_at"], entry["last_seen"] + 30, delta=0.5)
        for entry in (self.entry(s, p), self.listed(s)[p]):
            self.assertIsNone(entry["heartbeat_interval"])
            self.assertIsNone(entry["load"])
            self.assertIsNone(entry["capacity"])
            self.assertEqual(entry["active_runs"], 0)
            self.assertAlmostEqual(entry["lease_expires_at"], entry["last_seen"] + 30, delta=0.5)
        # A heartbeat announces load and capacity and moves the lease.
        before = self.entry(s, a)
        status, _, hb = self.heartbeat(s, a, load=0.25, capacity=3, instance_id="inst-a",
                                       runs=[])
        self.assertEqual(status, 200, hb)
        after = self.entry(s, a)
        self.assertEqual((after["load"], after["capacity"]), (0.25, 3))
        self.assertEqual(after["last_seen"], hb["last_seen"])
        self.assertGreaterEqual(after["lease_expires_at"], before["lease_expires_at"])
        self.assertAlmostEqual(after["lease_expires_at"], after["last_seen"] + 30, delta=0.5)
        # A heartbeat without them keeps what was announced.
        self.assertEqual(self.heartbeat(s, a)[0], 200)
        self.assertEqual((self.entry(s, a)["load"], self.entry(s, a)["capacity"]), (0.25, 3))
        # active_runs counts its bot members.
        lobby = self.create_lobby(s)["id"]
        for nick in ("x", "y"):
            self.assertEqual(self.joined(s, lobby, nick=nick, provider_id=p)["provider_id"], p)
        self.assertEqual(self.entry(s, p)["active_runs"], 2)
        self.assertEqual(self.listed(s)[p]["active_runs"], 2)
        self.assertEqual(self.entry(s, a)["active_runs"], 0)
        first = self.sessions(s, lobby)[0]
        self.assertEqual(s.request("POST", "/api/bots/leave",
                                   {"session_id": first["session_id"]})[0], 200)
        self.assertEqual(self.entry(s, p)["active_runs"], 1)
        self.assertEqual(metric_value(s, "voicebot_providers", status="online"), 2)


class ValidationTest(FleetTestCase):
    """Out-of-range fleet values are 422 and change nothing."""

    def test_out_of_range_registrations_are_422_and_register_nothing(self):
        s = self.start_server(*self.CALM)
        fp = self.fleet_provider("v")
        for field, value in (("heartbeat_interval", 0.01), ("heartbeat_interval", 0),
                             ("heartbeat_interval", -1), ("heartbeat_interval", 3600.5),
                             ("heartbeat_interval", "1"), ("heartbeat_interval", True),
                             ("instance_id", "i" * 65), ("instance_id", "a\nb"),
                             ("instance_id", 7)):
            with self.subTest(field=field, value=value):
                status, _, res = s.request(
                    "POST", "/api/bots/providers/register",
                    {"name": "v", "base_url": fp.base_url,
                     "bots": [{"name": "echo", "description": ""}], field: value})
                self.assertEqual(status, 422, res)
                self.assertEqual([e["loc"] for e in res["detail"]], [["body", field]], res)
        self.assertEqual(self.listed(s), {})
        # The bounds themselves are fine.
        for interval in (0.05, 3600):
            pid = self.enlist(s, fp, heartbeat_interval=interval, instance_id="i" * 64)
            self.assertEqual(self.entry(s, pid)["heartbeat_interval"], interval)

    def test_out_of_range_heartbeats_are_422_and_change_nothing(self):
        s = self.start_server(*self.CALM)
        fp = self.fleet_provider("v")
        pid = self.enlist(s, fp, heartbeat_interval=60, instance_id="inst")
        self.assertEqual(self.heartbeat(s, pid, load=0.5, capacity=2)[0], 200)
        before = self.entry(s, pid)
        for field, value in (("load", 1.5), ("load", -0.1), ("load", "0.5"), ("load", True),
                             ("capacity", -1), ("capacity", 2.5), ("capacity", "3"),
                             ("capacity", False), ("instance_id", "i" * 65),
                             ("instance_id", "a\tb"), ("runs", "run-1"), ("runs", [7])):
            with self.subTest(field=field, value=value):
                status, _, res = self.heartbeat(s, pid, **{field: value})
                self.assertEqual(status, 422, res)
                self.assertEqual(res["detail"][0]["loc"][:2], ["body", field], res)
                self.assertEqual(self.entry(s, pid), before)
        # A bad field next to good ones: nothing of it applies.
        status, _, res = self.heartbeat(s, pid, load=0.9, capacity=-5)
        self.assertEqual(status, 422, res)
        self.assertEqual(self.entry(s, pid), before)
        # The bounds themselves are fine.
        for load, capacity in ((0, 0), (1, 10 ** 6)):
            self.assertEqual(self.heartbeat(s, pid, load=load, capacity=capacity)[0], 200)
            got = self.entry(s, pid)
            self.assertEqual((got["load"], got["capacity"]), (load, capacity))


class RateLimitTest(FleetTestCase):
    """--max-registrations-per-second: a token bucket, then 429."""

    def test_a_burst_of_registrations_gets_429_and_registers_nothing_more(self):
        s = self.start_server(*self.CALM, "--max-registrations-per-second", "5")
        fp = self.fleet_provider("herd")
        answers = [None] * 20
        go = threading.Event()

        def register(i):
            go.wait(5)
            answers[i] = s.request("POST", "/api/bots/providers/register",
                                   {"name": f"herd-{i}", "base_url": fp.base_url,
                                    "bots": [{"name": "echo", "description": ""}]})

        threads = [threading.Thread(target=register, args=(i,)) for i in range(20)]
        for t in threads:
            t.start()
        started = time.monotonic()
        go.set()
        for t in threads:
            t.join(20)
        took = time.monotonic() - started
        admitted = [a for a in answers if a[0] == 200]
        limited = [a for a in answers if a[0] == 429]
        self.assertEqual(len(admitted) + len(limited), 20, [a[:1] for a in answers])
        self.assertGreaterEqual(len(admitted), 5)
        self.assertLessEqual(len(admitted), 5 + int(5 * took) + 1, f"in {took:.2f} s")
        self.assertTrue(limited)
        for status, headers, body in limited:
            self.assertEqual(body["code"], "rate_limited", body)
            self.assertIn("detail", body)
            self.assertGreaterEqual(int(headers["retry-after"]), 1)
        # Only the admitted ones are registered.
        self.assertEqual(set(self.listed(s)), {a[2]["provider_id"] for a in admitted})
        self.assertEqual(metric_value(s, "voicebot_registrations_rate_limited_total"),
                         len(limited))
        # Heartbeats are never rate-limited.
        pid = admitted[0][2]["provider_id"]
        statuses = [self.heartbeat(s, pid, load=0.1)[0] for _ in range(40)]
        self.assertEqual(set(statuses), {200})
        # After Retry-After, a registration is admitted again.
        time.sleep(max(int(h["retry-after"]) for _, h, _ in limited))
        self.enlist(s, fp)


class StrayRunTest(FleetTestCase):
    """A run a provider's heartbeats list and no bot member holds (a leave
    whose stop failed) is stopped once it has stayed so for the stray grace:
    (failover attempts + 1) x dispatch timeout + 5 s, 6 s here, longer than
    any join takes from dispatch to commit. A member's run never is."""

    def test_a_leave_whose_stop_failed_is_stopped_at_a_later_heartbeat(self):
        s = self.start_server(*self.CALM)
        fp = self.fleet_provider("p")
        pid = self.enlist(s, fp, heartbeat_interval=0.2, instance_id="p-1")
        self.beat(s, fp, pid, every=0.2)
        lobby = self.create_lobby(s)["id"]
        kept = self.joined(s, lobby, nick="kept")
        gone = self.joined(s, lobby, nick="gone")
        # The provider fails its stops for now: the leave is acknowledged
        # (the member is gone) and the run stays at the provider.
        fp.stop_status = 500
        left = time.monotonic()
        self.assertEqual(s.request("POST", "/api/bots/leave",
                                   {"session_id": gone["session_id"]})[0], 200)
        fp.wait_for_stop(gone["run_id"])
        self.assertIn(gone["run_id"], fp.live_runs())
        fp.stop_status = 200
        fp.wait_for(lambda p: gone["run_id"] not in p.runs, timeout=20,
                    what="stray run stopped")
        waited = time.monotonic() - left
        self.assertGreaterEqual(waited, 5.5, "stopped before the grace")
        self.assertEqual(fp.stops().count(gone["run_id"]), 2)
        s.wait_for_line(r"provider " + pid + r" runs 1 runs no bot member holds")
        self.assertEqual(metric_value(s, "voicebot_stray_runs_stopped_total"), 1)
        # The member's run is untouched.
        self.assertIn(kept["run_id"], fp.live_runs())
        self.assertNotIn(kept["run_id"], fp.stops())
        self.assertEqual([m["session_id"] for m in self.sessions(s, lobby)],
                         [kept["session_id"]])


class MetricsTest(FleetTestCase):
    def test_metrics_have_the_fleet_series(self):
        s = self.start_server(*self.CALM)
        names = {name for name, _ in metric_samples(s)}
        for name in ("voicebot_join_failovers_total", "voicebot_redispatches_total",
                     "voicebot_orphaned_members", "voicebot_provider_drains_total",
                     "voicebot_removed_answers_total",
                     "voicebot_registrations_rate_limited_total",
                     "voicebot_late_acceptances_total",
                     "voicebot_stray_runs_stopped_total"):
            self.assertIn(name, names)
            self.assertEqual(metric_value(s, name), 0, name)
        for status in ("online", "suspect", "unreachable", "draining"):
            self.assertEqual(metric_value(s, "voicebot_providers", status=status), 0, status)


if __name__ == "__main__":
    unittest.main()
