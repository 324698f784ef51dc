"""Voice signaling (SPEC §9) against the real voicebot-server with raw
WebSocket clients: person sessions and their tokens, hello/welcome, every
error code, signals relayed unchanged and in order, takeover, the rate limit,
ICE servers with coturn's REST credentials, the metrics; kill -9 and a
restart keep sessions, tokens and peers; bad input changes nothing."""

import base64
import hashlib
import hmac
import json
import os
import time
import unittest

from harness import ServerTestCase, metric_value, run_server_cli, wait_until
from wsclient import Closed, WebSocket


class VoiceTest(ServerTestCase):

    @staticmethod
    def voice(ws, types=("welcome", "error", "peer_joined", "peer_left", "signal", "replaced"),
              timeout=10):
        """The next voice message (lobby events in between are skipped)."""
        msg, _ = ws.wait_for(lambda m: m.get("type") in types, timeout)
        return msg

    def test_sessions_tokens_welcome_signals_and_errors(self):
        s = self.start_server("--max-voice-peers", "3", "--stun-url", "stun:127.0.0.1:3478")
        room = self.create_lobby(s)["id"]
        other = self.create_lobby(s, name="other")["id"]
        alice = self.person(s, room, "alice")
        bob = self.person(s, room, "bob")
        carol = self.person(s, other, "carol")
        # The token: 128 bits or more, base64url, shown once.
        self.assertRegex(alice["session_token"], r"^[A-Za-z0-9_-]{22,}$")
        listing = json.dumps(self.sessions(s, room))
        self.assertNotIn(alice["session_token"], listing)
        self.assertNotIn("token", listing)

        a = self.lobby_socket(s, room)
        # Not a peer yet: a signal is refused.
        a.send_json({"type": "signal", "to": bob["session_id"], "data": {"x": 1}})
        self.assertEqual(self.voice(a)["code"], "not_a_peer")
        # A wrong token, another session's, an unknown session: bad_token.
        self.assertEqual(self.hello(a, alice, token=bob["session_token"])["code"], "bad_token")
        self.assertEqual(self.hello(a, {"session_id": "nope", "session_token": "x"})["code"],
                         "bad_token")
        w = self.hello(a, alice)
        self.assertEqual(w["type"], "welcome")
        self.assertEqual(w["session_id"], alice["session_id"])
        self.assertEqual(w["peers"], [])
        self.assertEqual(w["ice_servers"], [{"urls": ["stun:127.0.0.1:3478"]}])

        b = self.lobby_socket(s, room)
        w = self.hello(b, bob)
        self.assertEqual(w["peers"], [{"session_id": alice["session_id"], "nick": "alice",
                                       "is_bot": False, "bot_name": ""}])
        joined = self.voice(a)
        self.assertEqual(joined, {"type": "peer_joined",
                                  "peer": {"session_id": bob["session_id"], "nick": "bob",
                                           "is_bot": False, "bot_name": ""}})
        # Signals: unchanged and in order.
        datas = [{"description": {"type": "offer", "sdp": "v=0\r\n" + "a" * 1000}}]
        datas += [{"candidate": {"candidate": f"candidate:{i}", "sdpMid": "0"}} for i in range(20)]
        for d in datas:
            a.send_json({"type": "signal", "to": bob["session_id"], "data": d})
        for d in datas:
            got = self.voice(b, ("signal",))
            self.assertEqual(got, {"type": "signal", "from": alice["session_id"], "data": d})
        # Errors, and nothing relayed for them.
        a.send_json({"type": "signal", "to": carol["session_id"], "data": {}})
        self.assertEqual(self.voice(a)["code"], "peer_not_found")  # another lobby's
        a.send_json({"type": "signal", "to": alice["session_id"], "data": {}})
        self.assertEqual(self.voice(a)["code"], "peer_not_found")  # itself
        a.send_json({"type": "signal", "to": bob["session_id"], "data": "not an object"})
        self.assertEqual(self.voice(a)["code"], "invalid")
        a.send_json({"type": "signal", "to": bob["session_id"], "data": {"sdp": "x" * (64 * 1024)}})
        self.assertEqual(self.voice(a)["code"], "too_large")
        a.send_json({"type": "hello", "session_id": 5})
        self.assertEqual(self.voice(a)["code"], "invalid")
        a.send_text("not json")
        self.assertEqual(a.recv_json()["type"], "error")
        a.send_json({"type": "dance"})
        self.assertEqual(a.recv_json()["type"], "error")
        # bob's socket drops: offline, not gone.
        b.close()
        wait_until(lambda: self._offline(a, bob), what="peer_offline")
        b2 = self.lobby_socket(s, room)
        self.assertEqual(self.hello(b2, bob, resume=True)["type"], "welcome")
        a.send_json({"type": "signal", "to": bob["session_id"], "data": {"n": 1}})
        self.assertEqual(self.voice(b2, ("signal",))["data"], {"n": 1})
        # A takeover: the old socket is told, and speaks for no one.
        b3 = self.lobby_socket(s, room)
        self.assertEqual(self.hello(b3, bob, resume=True)["type"], "welcome")
        self.assertEqual(self.voice(b2, ("replaced",))["type"], "replaced")
        b2.send_json({"type": "signal", "to": alice["session_id"], "data": {}})
        self.assertEqual(self.voice(b2)["code"], "not_a_peer")
        # The cap: 3 voice peers.
        dave = self.person(s, room, "dave")
        eve = self.person(s, room, "eve")
        self.assertEqual(self.hello(self.lobby_socket(s, room), dave)["type"], "welcome")
        self.assertEqual(self.hello(self.lobby_socket(s, room), eve)["code"], "voice_full")
        # A DELETE ends a voice peer: peer_left to the others.
        status, _, _ = s.request("DELETE", f"/api/lobby/{room}/sessions/{dave['session_id']}")
        self.assertEqual(status, 204)
        left, _ = a.wait_for(lambda m: m.get("type") == "peer_left")
        self.assertEqual(left["session_id"], dave["session_id"])
        # The metrics.
        self.assertEqual(metric_value(s, "voicebot_voice_peers"), 2)
        self.assertGreaterEqual(metric_value(s, "voicebot_signals_relayed_total"), 22)
        self.assertGreater(metric_value(s, "voicebot_signal_bytes_total"), 1000)
        self.assertEqual(metric_value(s, "voicebot_hellos_refused_total", code="bad_token"), 2)
        self.assertEqual(metric_value(s, "voicebot_hellos_refused_total", code="voice_full"), 1)
        # No token anywhere it should not be.
        log = "\n".join(s.lines)
        for who in (alice, bob, carol, dave, eve):
            self.assertNotIn(who["session_token"], log)
        files = b""
        for root, _, names in os.walk(s.workdir):
            for n in names:
                with open(os.path.join(root, n), "rb") as f:
                    files += f.read()
        for who in (alice, bob):
            self.assertNotIn(who["session_token"].encode(), files)

    def _offline(self, ws, who):
        """A probe: a signal to `who` is refused as peer_offline (until the
        lobby's table says so, it goes to the dropped socket, unanswered)."""
        ws.send_json({"type": "signal", "to": who["session_id"], "data": {}})
        try:
            msg = self.voice(ws, ("error",), timeout=0.3)
        except TimeoutError:
            return False
        return msg.get("code") == "peer_offline"

    def test_turn_credentials_follow_coturns_rest_api(self):
        secret = "s3cret-for-the-test"
        path = os.path.join(self.tmp.path, "turn-secret")
        with open(path, "w") as f:
            f.write(secret + "\n")
        s = self.start_server("--turn-url", "turn:127.0.0.1:3478?transport=udp",
                              "--turn-secret-file", path, "--turn-ttl", "600")
        room = self.create_lobby(s)["id"]
        alice = self.person(s, room, "alice")
        before = time.time()
        w = self.hello(self.lobby_socket(s, room), alice)
        (turn,) = w["ice_servers"]
        self.assertEqual(turn["urls"], ["turn:127.0.0.1:3478?transport=udp"])
        expiry, name = turn["username"].split(":")
        self.assertEqual(name, alice["session_id"])
        self.assertLessEqual(abs(int(expiry) - (before + 600)), 5)
        expected = base64.b64encode(hmac.new(secret.encode(), turn["username"].encode(),
                                             hashlib.sha1).digest()).decode()
        self.assertEqual(turn["credential"], expected)
        self.assertNotIn(secret, "\n".join(s.lines))
        self.assertEqual(metric_value(s, "voicebot_turn_credentials_total"), 1)

    def test_bad_voice_flags_stop_the_start_with_a_clear_message(self):
        for args, words in (
                (["--turn-url", "turn:127.0.0.1"], "turn_secret_file"),
                (["--stun-url", "http://x"], "stun:"),
                (["--turn-url", "turn:127.0.0.1", "--turn-secret-file", "/nonexistent"],
                 "--turn-secret-file /nonexistent"),
                (["--max-voice-peers", "1"], "max_voice_peers")):
            res = run_server_cli(["--port", "0", "--caf-port", "0",
                                  "--data-dir", os.path.join(self.tmp.path, "d")] + args,
                                 cwd=self.tmp.path)
            self.assertEqual(res.returncode, 2, res.stderr)
            self.assertIn(words, res.stderr)

    def test_rate_limit_closes_with_1008(self):
        s = self.start_server()
        room = self.create_lobby(s)["id"]
        ws = self.lobby_socket(s, room)
        with self.assertRaises(Closed):
            for _ in range(200):
                ws.send_json({"type": "chat", "nick": "x", "text": "spam"})
            while True:
                ws.recv_text(timeout=5)
        self.assertEqual(ws.close_code, 1008)

    def test_kill_9_keeps_sessions_tokens_and_peers(self):
        s = self.start_server()
        room = self.create_lobby(s)["id"]
        alice = self.person(s, room, "alice")
        bob = self.person(s, room, "bob")
        self.assertEqual(self.hello(self.lobby_socket(s, room), alice)["type"], "welcome")
        self.assertEqual(self.hello(self.lobby_socket(s, room), bob)["type"], "welcome")
        s.kill()
        for ws in self.sockets:
            ws.close()
        self.sockets = []
        s.start(same_ports=True)
        ids = [m["session_id"] for m in self.sessions(s, room)]
        self.assertEqual(ids, [alice["session_id"], bob["session_id"]])
        a = self.lobby_socket(s, room)
        w = self.hello(a, alice, resume=True)
        self.assertEqual(w["type"], "welcome", w)
        # bob has not said hello again yet: still a peer (alice keeps her call).
        self.assertEqual([p["session_id"] for p in w["peers"]], [bob["session_id"]])
        b = self.lobby_socket(s, room)
        self.assertEqual(self.hello(b, bob, resume=True)["type"], "welcome")
        a.send_json({"type": "signal", "to": bob["session_id"], "data": {"after": "restart"}})
        self.assertEqual(self.voice(b, ("signal",))["data"], {"after": "restart"})


    def test_an_http_providers_bot_is_a_voice_peer_with_its_joins_token(self):
        """SPEC §9 the original's way: the join body carries server_url and a
        session_token; the bot opens {server_url}/ws/lobby/{id} and says
        hello. A moved bot's new run gets a new token; the old one is fenced."""
        from urllib.parse import urlparse
        s = self.start_server()
        room = self.create_lobby(s)["id"]
        alice = self.person(s, room, "alice")
        a = self.lobby_socket(s, room)
        self.assertEqual(self.hello(a, alice)["type"], "welcome")
        first = self.fake_provider()
        first_id = self.register(s, first, name="first")
        bot = self.joined(s, room)
        call = first.joins("echo")[-1][2]
        self.assertEqual(call["session_id"], bot["session_id"])
        token = call["session_token"]
        self.assertRegex(token, r"^[A-Za-z0-9_-]{22,}$")
        self.assertNotIn(token, json.dumps(self.sessions(s, room)))
        url = urlparse(call["server_url"])
        self.assertEqual((url.hostname, url.port), ("127.0.0.1", s.port))

        def bot_socket():
            ws = WebSocket(url.port, f"{url.path.rstrip('/')}/ws/lobby/{room}")
            self.sockets.append(ws)
            self.assertEqual(ws.recv_json()["type"], "members")
            return ws
        run1 = bot_socket()
        who = {"session_id": bot["session_id"], "session_token": token}
        welcome = self.hello(run1, who)
        self.assertEqual(welcome["type"], "welcome", welcome)
        self.assertEqual([p["session_id"] for p in welcome["peers"]], [alice["session_id"]])
        joined = self.voice(a, ("peer_joined",))
        self.assertEqual(joined["peer"], {"session_id": bot["session_id"], "nick": "Echo",
                                          "is_bot": True, "bot_name": "echo"})
        # Its provider goes: the member moves to another with a new token.
        second = self.fake_provider()
        self.register(s, second, name="second")
        status, _, res = s.request("DELETE", f"/api/bots/providers/{first_id}")
        self.assertEqual(status, 204, res)
        wait_until(lambda: second.joins("echo"), 10, "the move to the second provider")
        moved = second.joins("echo")[-1][2]
        self.assertEqual(moved["session_id"], bot["session_id"])
        self.assertNotEqual(moved["session_token"], token)
        fenced = self.voice(run1, ("error",))
        self.assertEqual(fenced["code"], "bad_token", fenced)
        self.assertEqual(self.voice(a, ("peer_left",))["session_id"], bot["session_id"])
        self.assertEqual(self.hello(bot_socket(), who)["code"], "bad_token")
        run2 = bot_socket()
        who["session_token"] = moved["session_token"]
        self.assertEqual(self.hello(run2, who)["type"], "welcome")
        self.assertEqual(self.voice(a, ("peer_joined",))["peer"]["session_id"], bot["session_id"])
        run2.send_json({"type": "signal", "to": alice["session_id"], "data": {"from": "bot"}})
        got = self.voice(a, ("signal",))
        self.assertEqual((got["from"], got["data"]), (bot["session_id"], {"from": "bot"}))
        log = s.log()
        self.assertNotIn(token, log)
        self.assertNotIn(moved["session_token"], log)

if __name__ == "__main__":
    unittest.main()
