"""Cluster mode (SPEC §8): instances of voicebot-server sharing one state in
a real three-member etcd cluster, all on loopback, started by the test.

- same API on every instance: a lobby, a registration and a join made on
  one are seen by the others within a second;
- kill -9 of an instance loses nothing acknowledged, and it restarts from
  etcd;
- the first start on an empty etcd imports the data directory once;
- without quorum, reads are served from the caches, changes get 503 with
  Retry-After, /api/health says "store": "unavailable", and the service
  comes back by itself;
- an instance paused (SIGSTOP) past its lease commits nothing on waking
  before it has a new lease, and the sweeper moves to another instance.

Skipped, saying so, when Debian's etcd-server is not installed."""

import json
import os
import signal
import threading
import time
import unittest

from etcd_cluster import ETCD, EtcdCluster
from pki import Pki
from harness import Server, ServerTestCase, metric_value, run_server_cli, scaled, wait_until

TTL = 4  # --instance-ttl of the instances here
PREFIX = "/vbtest/"


@unittest.skipUnless(ETCD, "etcd is not installed (Debian's etcd-server; "
                           "scripts/setup-deps installs it): cluster mode untested")
class ClusterTest(ServerTestCase):
    # etcd as a deployment across machines runs it: TLS both ways and
    # authentication (docs/security.md); PlainClusterTest keeps plain HTTP.
    SECURE = True

    def setUp(self):
        super().setUp()
        self.etcd = EtcdCluster(os.path.join(self.tmp.path, "etcd"), secure=self.SECURE,
                                prefix=PREFIX).start()
        # Between instances, mutual TLS with the cluster's own CA.
        self.cluster_pki = None
        if self.SECURE:
            self.cluster_pki = Pki(os.path.join(self.tmp.path, "cluster-pki")).make_ca()
            self.cluster_pki.make("instance", san="IP:127.0.0.1")

    def cluster_tls_args(self, pki=None, name="instance", ca="ca"):
        pki = pki or self.cluster_pki
        if not pki:
            return []
        return ["--cluster-tls-cert", pki.path(name + ".pem"),
                "--cluster-tls-key", pki.path(name + ".key"),
                "--cluster-tls-ca", pki.path(ca + ".pem")]

    def tearDown(self):
        super().tearDown()
        self.etcd.stop()

    def instance(self, name, *extra):
        s = Server(self.tmp.path, ["--data-dir", os.path.join(self.tmp.path, name),
                                   *self.etcd.server_args(), *self.cluster_tls_args(),
                                   "--instance-ttl", str(TTL),
                                   "--cluster-port", "0", *extra])
        self.servers.append(s)
        return s.start(timeout=60)

    def health(self, s):
        status, _, body = s.request("GET", "/api/health")
        self.assertEqual(status, 200, body)
        return body

    def lobby_ids(self, s):
        status, _, body = s.request("GET", "/api/lobby")
        self.assertEqual(status, 200, body)
        return {l["id"] for l in body["lobbies"]}

    def members(self, s, lobby_id):
        status, _, body = s.request("GET", f"/api/lobby/{lobby_id}")
        return body.get("sessions", []) if status == 200 else None

    def test_same_state_on_every_instance_and_kill_9(self):
        a = self.instance("a")
        b = self.instance("b")
        self.assertEqual(self.health(a).get("store"), "ok")
        self.assertEqual(self.health(b).get("store"), "ok")
        keys = self.etcd.range_prefix(PREFIX + "instances/")
        self.assertEqual(len(keys), 2, keys)

        # A lobby created on A is listed by B within a second.
        lobby = self.create_lobby(a, "shared-room")
        wait_until(lambda: lobby["id"] in self.lobby_ids(b), 1, "the lobby on B")
        # Creating it again by name on B is the same lobby.
        again = self.create_lobby(b, "shared-room")
        self.assertEqual(again["id"], lobby["id"])

        # A provider registered on A is known to B; a join on B lands.
        self.provider_on_both(a, b, self.fake_provider())
        status, _, joined = self.join(b, lobby["id"], "echo", "Echo")
        self.assertEqual(status, 200, joined)
        session = joined["session_id"]

        # Seen on A within a second, and in etcd.
        wait_until(lambda: any(m["session_id"] == session
                               for m in self.members(a, lobby["id"]) or []),
                   1, "the member on A")
        stored = self.etcd.range_prefix(PREFIX + "lobbies/")
        self.assertTrue(any(session in k for k in stored), stored)

        # kill -9 of A: B still answers everything; A restarts from etcd.
        a.kill()
        self.assertEqual(self.health(b).get("store"), "ok")
        self.assertTrue(any(m["session_id"] == session for m in self.members(b, lobby["id"])))
        a.start(timeout=60)
        self.assertIn(lobby["id"], self.lobby_ids(a))
        self.assertTrue(any(m["session_id"] == session for m in self.members(a, lobby["id"])))
        # A leave on A is gone on B within a second.
        status, _, body = a.request("POST", "/api/bots/leave",
                                    {"session_id": session, "lobby_id": lobby["id"]})
        self.assertEqual(status, 200, body)
        wait_until(lambda: not any(m["session_id"] == session
                                   for m in self.members(b, lobby["id"]) or []),
                   1, "the leave on B")

    def provider_on_both(self, a, b, fp):
        pid = self.register(a, fp)

        def listed_on_b():
            status, _, body = b.request("GET", "/api/bots/providers")
            return status == 200 and any(p["provider_id"] == pid
                                         for p in body.get("providers", []))
        wait_until(listed_on_b, 1, "the provider on B")
        return pid

    def pair_with_lobby(self, name):
        """Instances A and B, a fake provider registered on A and listed on
        B, and a lobby made on A and listed on B."""
        a = self.instance("a")
        b = self.instance("b")
        fp = self.fake_provider()
        self.provider_on_both(a, b, fp)
        lobby = self.create_lobby(a, name)
        wait_until(lambda: lobby["id"] in self.lobby_ids(b), 1, "the lobby on B")
        return a, b, fp, lobby

    def test_racing_joins_on_two_instances_give_one_member(self):
        a, b, fp, lobby = self.pair_with_lobby("race")
        # The provider holds the first join: the second instance's join of
        # the same (lobby, bot, nick) comes while the first is pending.
        fp.mode = "hold"
        answers = {}

        def go(name, s):
            answers[name] = self.join(s, lobby["id"], "echo", "Racer")
        ta = threading.Thread(target=go, args=("a", a))
        ta.start()
        fp.wait_for(lambda calls: len(fp.joins()) == 1)
        tb = threading.Thread(target=go, args=("b", b))
        tb.start()
        fp.gate.set()
        ta.join(30)
        tb.join(30)
        self.assertEqual(answers["a"][0], 200, answers["a"])
        self.assertEqual(answers["b"][0], 200, answers["b"])
        self.assertEqual(answers["a"][2]["session_id"], answers["b"][2]["session_id"])
        # One dispatch, one member, on both instances and in etcd.
        self.assertEqual(len(fp.joins()), 1)
        for s in (a, b):
            wait_until(lambda: [m["nick"] for m in self.members(s, lobby["id"]) or []]
                       == ["Racer"], 1, "one member on each instance")
        stored = self.etcd.range_prefix(PREFIX + "lobbies/" + lobby["id"] + "/")
        self.assertEqual(len(stored), 1, stored)
        claim = self.etcd.range_prefix(PREFIX + "joins/")
        self.assertEqual(len(claim), 1, claim)
        self.assertEqual(json.loads(list(claim.values())[0])["state"], "joined")

        # The same Idempotency-Key on the other instance answers the first
        # answer.
        key = {"Idempotency-Key": "k-cluster-1"}
        body = {"lobby_id": lobby["id"], "nick": "Keyed"}
        first = a.request("POST", "/api/bots/echo/join", body, headers=key)
        self.assertEqual(first[0], 200, first)
        again = b.request("POST", "/api/bots/echo/join", body, headers=key)
        self.assertEqual(again[0], 200, again)
        self.assertEqual(again[2]["session_id"], first[2]["session_id"])
        self.assertEqual(len(fp.joins()), 2)

        # A leave gives the name back: a new join of it is a new member.
        status, _, res = b.request("POST", "/api/bots/leave",
                                   {"session_id": answers["a"][2]["session_id"],
                                    "lobby_id": lobby["id"]})
        self.assertEqual(status, 200, res)
        status, _, res = a.request("POST", "/api/bots/echo/join",
                                   {"lobby_id": lobby["id"], "nick": "Racer"})
        self.assertEqual(status, 200, res)
        self.assertNotEqual(res["session_id"], answers["a"][2]["session_id"])

    def test_reservation_of_a_killed_instance_goes_with_its_lease(self):
        a, b, fp, lobby = self.pair_with_lobby("orphan-reservation")
        fp.mode = "hang"
        def held_join():
            try:
                self.join(a, lobby["id"], "echo", "Held")
            except OSError:
                pass  # A is killed while it waits: no answer
        t = threading.Thread(target=held_join, daemon=True)
        t.start()
        fp.wait_for(lambda calls: len(fp.joins()) == 1)
        claim = self.etcd.range_prefix(PREFIX + "joins/")
        self.assertEqual([json.loads(v)["state"] for v in claim.values()], ["pending"])
        a.kill()
        fp.release()
        fp.mode = "ok"
        # Within the TTL the reservation is gone, and B's join of the name
        # succeeds (retried as the page retries a 503).
        started = time.monotonic()

        def joined_on_b():
            status, _, res = self.join(b, lobby["id"], "echo", "Held")
            return res if status == 200 else None
        res = wait_until(joined_on_b, 3 * TTL, "B's join once A's lease is gone")
        self.assertLess(time.monotonic() - started, scaled(3 * TTL))
        self.assertEqual(json.loads(list(self.etcd.range_prefix(PREFIX + "joins/")
                                         .values())[0])["session_id"], res["session_id"])

    def test_caf_provider_joins_are_forwarded_and_it_moves_when_its_instance_dies(self):
        from test_provider_failover import FailoverProvider
        a = self.instance("a")
        b = self.instance("b")
        # The provider knows B's gateway first, then A's.
        prov = FailoverProvider(self.tmp.path, [b, a], "roamer",
                                os.path.join(self.tmp.path, "roamer.state"))
        self.servers.append(prov)
        prov.start()
        pid = prov.provider_id
        # The link is recorded in etcd (after the registration, by B).
        wait_until(lambda: PREFIX + "links/" + pid in self.etcd.range_prefix(PREFIX + "links/"),
                   2, "the link record")

        def online_on(s):
            status, _, body = s.request("GET", "/api/bots/providers")
            return status == 200 and any(p["provider_id"] == pid and p["status"] == "online"
                                         for p in body.get("providers", []))
        wait_until(lambda: online_on(a), 2, "the CAF provider online on A")
        lobby = self.create_lobby(a, "caf-room")
        # A join on A, whose link is on B: forwarded over the cluster port.
        status, _, joined = self.join(a, lobby["id"], "echo", "Forwarded")
        self.assertEqual(status, 200, joined)
        self.assertEqual(joined["provider_id"], pid)
        wait_until(lambda: joined["run_id"] in prov.runs(), 5, "the run at the provider")
        # A leave on A stops the run at the provider (forwarded too).
        status, _, res = a.request("POST", "/api/bots/leave",
                                   {"session_id": joined["session_id"],
                                    "lobby_id": lobby["id"]})
        self.assertEqual(status, 200, res)
        wait_until(lambda: joined["run_id"] not in prov.runs(), 5, "the run stopped")
        # kill -9 of B: the provider moves to A and registers there with the
        # same id; its link record follows.
        b.kill()
        prov.wait_registered(timeout=20, after=1)
        with open(os.path.join(self.tmp.path, "a", "instance_id")) as f:
            a_id = f.read().strip()
        wait_until(lambda: json.loads(self.etcd.range_prefix(PREFIX + "links/")
                                      .get(PREFIX + "links/" + pid, "{}")).get("iid") == a_id,
                   3 * TTL, "the link record naming A")
        wait_until(lambda: online_on(a), 5, "the CAF provider online on A again")
        status, _, again = self.join(a, lobby["id"], "echo", "Local")
        self.assertEqual(status, 200, again)
        self.assertEqual(again["provider_id"], pid)
        wait_until(lambda: again["run_id"] in prov.runs(), 5, "the run at the provider")

    def test_lobby_events_reach_every_instance_subscribers(self):
        a, b, fp, lobby = self.pair_with_lobby("events")
        on_a = self.lobby_socket(a, lobby["id"])
        on_b = self.lobby_socket(b, lobby["id"])
        # A join on A: announced on B too (B's lobby applies it from the
        # watch); a chat line on A's page: broadcast to B.
        status, _, joined = self.join(a, lobby["id"], "echo", "Echo")
        self.assertEqual(status, 200, joined)
        on_a.send_json({"type": "chat", "nick": "alice", "text": "hi from A"})
        for ws in (on_a, on_b):
            got = [ws.recv_json(timeout=5) for _ in range(2)]
            self.assertEqual(sorted(e["type"] for e in got), ["chat", "member_joined"])
            chat = next(e for e in got if e["type"] == "chat")
            self.assertEqual(chat["text"], "hi from A")
            joined_ev = next(e for e in got if e["type"] == "member_joined")
            self.assertEqual(joined_ev["member"]["session_id"], joined["session_id"])
        # A leave on B: announced on A.
        status, _, res = b.request("POST", "/api/bots/leave",
                                   {"session_id": joined["session_id"],
                                    "lobby_id": lobby["id"]})
        self.assertEqual(status, 200, res)
        for ws in (on_a, on_b):
            ev = ws.recv_json(timeout=5)
            self.assertEqual(ev["type"], "member_left")
            self.assertEqual(ev["member"]["session_id"], joined["session_id"])

    def test_voice_peers_on_two_instances_signal_each_other(self):
        """SPEC §9 across instances: a signal reaches a peer whose socket is on
        the other instance, in order; peer_joined crosses; a killed instance's
        sockets are offline, and once it is back its sockets are reached again
        (and it reaches the others' at once)."""
        a = self.instance("a")
        b = self.instance("b")
        room = self.create_lobby(a, "voice-room")["id"]
        wait_until(lambda: room in self.lobby_ids(b), 5, "the lobby on B")

        def hello(w, who, resume=False):
            msg = self.hello(w, who, resume)
            self.assertEqual(msg["type"], "welcome", msg)
            return msg

        def reaches(src, dst_ws, to, n):
            """A signal from src's socket to `to` arrives on dst_ws (tried
            again while the seat is on its way: peer_offline)."""
            src.send_json({"type": "signal", "to": to, "data": {"n": n}})
            try:
                dst_ws.wait_for(lambda m: m.get("type") == "signal" and "n" in m["data"], 0.5)
            except (AssertionError, TimeoutError):
                return False
            return True  # this one or an earlier try's

        alice = self.person(a, room, "alice")
        bob = self.person(b, room, "bob")
        on_a, on_b = self.lobby_socket(a, room, members=False), self.lobby_socket(b, room, members=False)
        self.assertEqual(hello(on_a, alice)["peers"], [])
        # alice is a voice peer on B once its record came through the watch.
        wait_until(lambda: metric_value(b, "voicebot_voice_peers") == 1, 5,
                   "alice a voice peer on B")
        welcome = hello(on_b, bob)
        self.assertEqual([p["session_id"] for p in welcome["peers"]], [alice["session_id"]])
        joined, _ = on_a.wait_for(lambda m: m.get("type") == "peer_joined", 5)
        self.assertEqual(joined["peer"]["session_id"], bob["session_id"])
        # B to A and A to B, straight from socket to socket.
        n = iter(range(1000))
        wait_until(lambda: reaches(on_b, on_a, alice["session_id"], next(n)), 10,
                   "bob's signal on alice's socket")
        wait_until(lambda: reaches(on_a, on_b, bob["session_id"], next(n)), 10,
                   "alice's signal on bob's socket")
        for i in range(20):
            on_b.send_json({"type": "signal", "to": alice["session_id"], "data": {"seq": i}})
        got = [on_a.wait_for(lambda m: m.get("type") == "signal" and "seq" in m["data"], 5)[0]
               for _ in range(20)]
        self.assertEqual([g["data"]["seq"] for g in got], list(range(20)))
        self.assertTrue(all(g["from"] == bob["session_id"] for g in got))

        # B dies: bob is offline for alice (no peer_left), then B comes back.
        b.kill()

        def offline():
            on_a.send_json({"type": "signal", "to": bob["session_id"], "data": {}})
            try:
                msg, _ = on_a.wait_for(lambda m: m.get("type") in ("error", "peer_left"), 0.5)
            except (AssertionError, TimeoutError):
                return False
            self.assertNotEqual(msg["type"], "peer_left", msg)
            return msg.get("code") == "peer_offline"
        wait_until(offline, 10, "bob offline for alice")
        b.start(timeout=60)
        on_b2 = self.lobby_socket(b, room, members=False)
        self.assertIn(alice["session_id"],
                      [p["session_id"] for p in hello(on_b2, bob, resume=True)["peers"]])
        wait_until(lambda: reaches(on_b2, on_a, alice["session_id"], next(n)), 10,
                   "bob's signal on alice's socket after B's restart")
        wait_until(lambda: reaches(on_a, on_b2, bob["session_id"], next(n)), 10,
                   "alice's signal on bob's socket after B's restart")

    def test_first_start_imports_the_data_directory_once(self):
        # An embedded server's lobby...
        data = os.path.join(self.tmp.path, "a")
        embedded = Server(self.tmp.path, ["--data-dir", data])
        self.servers.append(embedded)
        embedded.start()
        before = self.create_lobby(embedded, "from-before")
        embedded.stop()
        # ... is in etcd after the first cluster start, once.
        a = self.instance("a")
        self.assertIn(before["id"], self.lobby_ids(a))
        a.wait_for_line(r"imported \d+ entries")
        b = self.instance("b")
        self.assertIn(before["id"], self.lobby_ids(b))
        self.assertEqual(b.count_lines(r"imported \d+ entries"), 0)
        schema = json.loads(self.etcd.range_prefix(PREFIX + "meta/")[PREFIX + "meta/schema"])
        self.assertIn("imported_at", schema)
        # A later start of A imports nothing again.
        a.stop()
        a.start(timeout=60)
        self.assertEqual(a.count_lines(r"imported \d+ entries"), 0)

    def test_no_quorum_reads_from_cache_writes_503_then_recovers(self):
        a = self.instance("a")
        lobby = self.create_lobby(a, "before-the-outage")
        # Two of three members gone: no quorum.
        survivor = self.etcd.members[0]
        for m in self.etcd.members[1:]:
            m.kill()
        wait_until(lambda: self.health(a).get("store") == "unavailable", 3 * TTL,
                   "/api/health saying the store is unavailable")
        # Reads from the cache.
        self.assertIn(lobby["id"], self.lobby_ids(a))
        # Changes: 503 with Retry-After, nothing changed.
        status, headers, body = a.request("POST", "/api/lobby", {"name": "during"})
        self.assertEqual(status, 503, body)
        self.assertIn("retry-after", {k.lower() for k in headers})
        self.assertEqual(body.get("code"), "store_unavailable", body)
        self.assertTrue(survivor.alive())
        # Quorum back: service resumes by itself.
        for m in self.etcd.members[1:]:
            m.start(self.etcd.initial)
        self.etcd.wait_healthy()
        wait_until(lambda: self.health(a).get("store") == "ok", 6 * TTL,
                   "/api/health saying the store is ok again")
        wait_until(lambda: a.request("POST", "/api/lobby", {"name": "after"})[0] in (200, 201),
                   2 * TTL, "a lobby created after the outage")
        names = {l["name"] for l in a.request("GET", "/api/lobby")[2]["lobbies"]}
        self.assertNotIn("during", names)
        self.assertIn("after", names)

    def test_paused_instance_is_fenced_and_the_sweeper_moves(self):
        a = self.instance("a")
        a.wait_for_line(r"is now the cleanup sweeper")
        b = self.instance("b")
        os.kill(a.proc.pid, signal.SIGSTOP)
        try:
            # Past A's lease: B takes the sweeper.
            b.wait_for_line(r"is now the cleanup sweeper", timeout=3 * TTL)
            self.assertEqual(len(self.etcd.range_prefix(PREFIX + "instances/")), 1)
        finally:
            os.kill(a.proc.pid, signal.SIGCONT)
        # A notices that its lease is gone, commits nothing with it, and
        # comes back with a new one.
        a.wait_for_line(r"lease [0-9a-f]+ lost|lease is gone", timeout=3 * TTL)
        a.wait_for_nth(r"is live \(lease", 2, timeout=3 * TTL)
        wait_until(lambda: a.request("POST", "/api/lobby", {"name": "after-pause"})[0]
                   in (200, 201), 2 * TTL, "a commit on A with its new lease")
        wait_until(lambda: "after-pause" in {l["name"] for l in
                                             b.request("GET", "/api/lobby")[2]["lobbies"]},
                   1, "A's lobby on B")
        self.assertEqual(len(self.etcd.range_prefix(PREFIX + "instances/")), 2)

    def test_fenced_instance_lets_its_caf_providers_go(self):
        self.fenced_instance_lets_its_providers_go(tls=False)

    def test_fenced_instance_lets_its_tls_caf_providers_go(self):
        self.fenced_instance_lets_its_providers_go(tls=True)

    def fenced_instance_lets_its_providers_go(self, tls):
        from test_provider_failover import FailoverProvider
        gateway, provider = [], []
        if tls:  # the provider gateways' mutual TLS (the cluster's CA will do here)
            pki = self.cluster_pki
            cert, key = pki.make("gateway")
            gateway = ["--caf-tls-cert", cert, "--caf-tls-key", key,
                       "--caf-tls-ca", pki.path("ca.pem")]
            cert, key = pki.make("provider")
            provider = ["--tls-cert", cert, "--tls-key", key, "--tls-ca", pki.path("ca.pem")]
        a = self.instance("a", *gateway)
        b = self.instance("b", *gateway)
        # Heartbeats too rare to notice the pause: only A's fencing moves it.
        prov = FailoverProvider(self.tmp.path, [a, b], "roamer",
                                os.path.join(self.tmp.path, "roamer.state"), provider)
        prov.HEARTBEAT = "60"
        self.servers.append(prov)
        prov.start()
        prov.wait_for_line(rf"registered as .* at 127\.0\.0\.1:{a.caf_port}")
        os.kill(a.proc.pid, signal.SIGSTOP)
        try:
            # Past A's lease: its instance key is gone from etcd.
            wait_until(lambda: len(self.etcd.range_prefix(PREFIX + "instances/")) == 1,
                       3 * TTL, "A's lease expired")
        finally:
            os.kill(a.proc.pid, signal.SIGCONT)
        # A, fenced, closes the link at once: the provider moves to B (its
        # next gateway, no backoff) and registers there with the same id.
        a.wait_for_line(r"fenced: letting the 1 CAF providers linked here go", timeout=3 * TTL)
        prov.wait_for_line(rf"link to the server at 127\.0\.0\.1:{a.caf_port} lost", timeout=5)
        prov.wait_for_line(
            rf"registered as {prov.provider_id} .* at 127\.0\.0\.1:{b.caf_port}", timeout=5)

    def refused_start(self, change):
        """The instance's flags changed by `change`: it exits at once, and
        what it printed."""
        args = self.etcd.server_args()
        change(args)
        r = run_server_cli(["--data-dir", os.path.join(self.tmp.path, "refused"),
                            "--port", "0", "--cluster-port", "0", *args],
                           cwd=self.tmp.path, timeout=scaled(20))
        self.assertNotEqual(r.returncode, 0, r.stderr)
        return r.stdout + r.stderr

    def test_refused_tls_or_password_fails_at_start_naming_the_cause(self):
        def replace(flag, value):
            def change(args):
                args[args.index(flag) + 1] = value
            return change

        def drop(*flags):
            def change(args):
                for flag in flags:
                    i = args.index(flag)
                    del args[i:i + 2]
            return change

        other = Pki(os.path.join(self.tmp.path, "other-pki")).make_ca("other-ca")
        out = self.refused_start(replace("--etcd-ca", other.path("other-ca.pem")))
        self.assertIn("certificate verify failed", out)
        self.assertIn("--etcd-ca", out)
        out = self.refused_start(drop("--etcd-cert", "--etcd-key"))
        self.assertIn("alert", out)
        self.assertIn("client certificate", out)
        wrong = os.path.join(self.tmp.path, "wrong-password")
        with open(wrong, "w") as f:
            f.write("not-the-password\n")
        out = self.refused_start(replace("--etcd-password-file", wrong))
        self.assertIn("authentication failed", out)
        self.assertIn("--etcd-password-file", out)
        self.assertNotIn("not-the-password", out)
        out = self.refused_start(drop("--etcd-ca"))
        self.assertIn("need etcd_ca", out)
        # The cluster port beyond loopback: mutual TLS, or --cluster-insecure.
        out = self.refused_start(lambda args: args.extend(["--cluster-host", "0.0.0.0"]))
        self.assertIn("--cluster-tls-cert", out)
        self.assertIn("--cluster-insecure", out)
        # The instance's own settings start it, as every test here does.
        a = self.instance("a")
        a.wait_for_line(r"cluster relay listening on 127\.0\.0\.1:\d+ \(mutual TLS\)")

    def test_an_instance_with_another_cas_certificate_is_refused_at_the_cluster_port(self):
        a = self.instance("a")
        lobby = self.create_lobby(a, "tls-room")
        # B's cluster certificate is from another CA: B shares etcd's state,
        # but A refuses its connection to the cluster port.
        other = Pki(os.path.join(self.tmp.path, "other-cluster-pki")).make_ca("other-ca")
        other.make("stranger", ca="other-ca", san="IP:127.0.0.1")
        b = Server(self.tmp.path, ["--data-dir", os.path.join(self.tmp.path, "b"),
                                   *self.etcd.server_args(),
                                   *self.cluster_tls_args(other, "stranger", "other-ca"),
                                   "--instance-ttl", str(TTL), "--cluster-port", "0"])
        self.servers.append(b)
        b.start(timeout=60)
        wait_until(lambda: lobby["id"] in self.lobby_ids(b), 5, "the lobby on B (etcd)")
        a.wait_for_line(r"cluster port: TLS handshake with 127\.0\.0\.1:\d+ failed",
                        timeout=scaled(15))
        wait_until(lambda: (metric_value(a, "voicebot_cluster_tls_handshake_failures_total")
                            or 0) >= 1, 5, "A's count of failed cluster handshakes")


class PlainClusterTest(ClusterTest):
    """etcd without TLS or authentication (a trusted network): the first
    test again; the others are the same code paths over TLS."""
    SECURE = False


# Not collected (not callable) in PlainClusterTest: all tests but the first.
for _name in [n for n in vars(ClusterTest) if n.startswith("test_")]:
    if _name != "test_same_state_on_every_instance_and_kill_9":
        setattr(PlainClusterTest, _name, None)


if __name__ == "__main__":
    unittest.main()
