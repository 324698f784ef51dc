"""Frontend access tokens and per-client quotas (docs/security.md) against
the real voicebot-server: the routes that change state need a good bearer
token with the right scope (401/403, nothing changed), a person's hello on
the lobby WebSocket too (a bot's does not), reads are open unless
--access-required-for-reads; joins and lobbies past a client's quota are
429 rate_limited with Retry-After and change nothing, counted per address,
per forwarded client behind a trusted proxy, and per token subject. The
good tokens are minted by the Python example in docs/security.md, run as
it is written there."""

import base64
import hashlib
import hmac
import json
import os
import re
import time
import unittest

from harness import ServerTestCase, metric_value
from wsclient import Refused

DOCS = os.path.join(os.path.dirname(__file__), "..", "..", "docs", "security.md")
SECRET = b"test-secret-for-frontend-tokens-0123456789"


def example_minter():
    """mint_access_token from the Python block of docs/security.md, run as
    it is written there."""
    with open(DOCS, encoding="utf-8") as f:
        text = f.read()
    blocks = re.findall(r"```python\n(.*?)```", text, re.S)
    code = next(b for b in blocks if "def mint_access_token" in b)
    namespace = {}
    exec(compile(code, DOCS, "exec"), namespace)
    return namespace["mint_access_token"]


mint = example_minter()


def b64url(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def forged(header, claims, key=SECRET, digest=hashlib.sha256, signed=True):
    """A token made by hand: any header, any key, or no signature."""
    signing_input = b64url(json.dumps(header).encode()) + "." + b64url(json.dumps(claims).encode())
    if not signed:
        return signing_input + "."
    return signing_input + "." + b64url(hmac.new(key, signing_input.encode(), digest).digest())


def bearer(token):
    return {"Authorization": f"Bearer {token}"}


class AccessTest(ServerTestCase):

    def secured(self, *args):
        path = os.path.join(self.tmp.path, "access-secret")
        with open(path, "wb") as f:
            f.write(SECRET + b"\n")  # the newline is cut, as the docs say
        return self.start_server("--access-secret-file", path, *args)

    def refused(self, answer, status, code):
        body = self.assertError(answer, status, code)
        if status == 401:
            self.assertIn("Bearer", answer[1].get("www-authenticate", ""))
        return body

    def lobbies(self, s, token=None):
        status, _, body = s.request("GET", "/api/lobby", headers=bearer(token) if token else None)
        self.assertEqual(status, 200, body)
        return [lobby["name"] for lobby in body["lobbies"]]

    def test_changes_need_a_token_that_covers_them_and_refusals_change_nothing(self):
        s = self.secured()
        fp = self.fake_provider(bots=("echo", "greeter"))
        # Provider routes keep their own rules: no token needed.
        self.register(s, fp)
        create = lambda token=None, name="room": s.request(  # noqa: E731
            "POST", "/api/lobby", {"name": name}, bearer(token) if token else None)

        self.refused(create(), 401, "access_token_missing")
        self.refused(s.request("POST", "/api/lobby", {"name": "room"},
                               {"Authorization": "Basic dXNlcjpwdw=="}), 401,
                     "access_token_missing")
        self.refused(create(mint(SECRET, "u1", lobby="*")), 403, "access_forbidden")
        self.refused(create(mint(SECRET, "u1", ttl=-60, create_lobby=True)), 401,
                     "access_token_expired")
        self.refused(create(mint(b"another-secret-another-secret-0123", "u1",
                                 create_lobby=True)), 401, "access_token_invalid")
        claims = {"sub": "u1", "exp": int(time.time()) + 300, "create_lobby": True}
        self.refused(create(forged({"alg": "none", "typ": "JWT"}, claims, signed=False)), 401,
                     "access_token_invalid")
        self.refused(create(forged({"alg": "HS384", "typ": "JWT"}, claims,
                                   digest=hashlib.sha384)), 401, "access_token_invalid")
        no_exp = dict(claims)
        del no_exp["exp"]
        self.refused(create(forged({"alg": "HS256", "typ": "JWT"}, no_exp)), 401,
                     "access_token_invalid")
        self.refused(create("not-a-jwt"), 401, "access_token_invalid")
        self.assertEqual(self.lobbies(s), [])  # reads are open; nothing was created

        status, _, room = create(mint(SECRET, "u1", create_lobby=True))
        self.assertEqual(status, 201, room)
        lobby_id = room["id"]
        status, _, other = create(mint(SECRET, "u1", create_lobby=True), "other")
        self.assertEqual(status, 201, other)

        # Joins: the token's lobby and bots.
        join = lambda bot, token=None, lobby=lobby_id: s.request(  # noqa: E731
            "POST", f"/api/bots/{bot}/join", {"lobby_id": lobby, "nick": bot},
            bearer(token) if token else None)
        echo_here = mint(SECRET, "u1", lobby=lobby_id, bots=["echo"])
        self.refused(join("echo"), 401, "access_token_missing")
        self.refused(join("greeter", echo_here), 403, "access_forbidden")
        self.refused(join("echo", echo_here, other["id"]), 403, "access_forbidden")
        self.refused(join("echo", mint(SECRET, "u1", lobby=lobby_id)), 403, "access_forbidden")
        self.assertEqual(fp.joins(), [])
        self.assertEqual(self.sessions(s, lobby_id), [])
        # A bad body of an authenticated caller is still 422.
        self.assertError(s.request("POST", "/api/bots/echo/join", {"nick": "x"},
                                   bearer(echo_here)), 422, "validation_error")
        status, _, joined = join("echo", echo_here)
        self.assertEqual(status, 200, joined)
        status, _, also = join("greeter", mint(SECRET, "u1", lobby="*", bots="*"))
        self.assertEqual(status, 200, also)

        # A person's session: the lobby.
        status, _, body = s.request("POST", f"/api/lobby/{lobby_id}/sessions", {"nick": "ann"})
        self.refused((status, _, body), 401, "access_token_missing")
        self.refused(s.request("POST", f"/api/lobby/{lobby_id}/sessions", {"nick": "ann"},
                               bearer(mint(SECRET, "u1", lobby=other["id"]))),
                     403, "access_forbidden")
        status, _, ann = s.request("POST", f"/api/lobby/{lobby_id}/sessions", {"nick": "ann"},
                                   bearer(mint(SECRET, "u1", lobby=lobby_id)))
        self.assertEqual(status, 201, ann)
        self.refused(s.request("DELETE", f"/api/lobby/{lobby_id}/sessions/{ann['session_id']}"),
                     401, "access_token_missing")
        self.assertEqual(s.request(
            "DELETE", f"/api/lobby/{lobby_id}/sessions/{ann['session_id']}",
            headers=bearer(mint(SECRET, "u1", lobby=lobby_id)))[0], 204)

        # A leave: the lobby, named when the token is for one.
        leave = {"session_id": joined["session_id"]}
        self.refused(s.request("POST", "/api/bots/leave", leave), 401, "access_token_missing")
        self.refused(s.request("POST", "/api/bots/leave", leave,
                               bearer(mint(SECRET, "u1", lobby=lobby_id))),
                     403, "access_forbidden")
        self.assertEqual(len(self.sessions(s, lobby_id)), 2)
        status, _, left = s.request("POST", "/api/bots/leave", dict(leave, lobby_id=lobby_id),
                                    bearer(mint(SECRET, "u1", lobby=lobby_id)))
        self.assertEqual(status, 200, left)

        # Reads stay open; the refusals are counted; the secret and the
        # tokens are in no log line and no metric.
        self.assertEqual(s.request("GET", "/api/bots")[0], 200)
        self.assertEqual(s.request("GET", f"/api/lobby/{lobby_id}")[0], 200)
        self.assertEqual(metric_value(s, "voicebot_access_refused_total",
                                      code="access_token_missing"), 6)
        self.assertEqual(metric_value(s, "voicebot_access_refused_total",
                                      code="access_token_expired"), 1)
        self.assertEqual(metric_value(s, "voicebot_access_refused_total",
                                      code="access_token_invalid"), 5)
        self.assertEqual(metric_value(s, "voicebot_access_refused_total",
                                      code="access_forbidden"), 6)
        _, _, metrics = s.request("GET", "/metrics")
        self.assertNotIn(SECRET.decode(), metrics)
        self.assertNotIn(SECRET.decode(), s.log())
        self.assertNotIn(echo_here, s.log())
        self.assertIn("frontend access tokens: required for changes", s.log())

    def test_the_websocket_hello_of_a_person_needs_a_token_a_bots_does_not(self):
        s = self.secured()
        fp = self.fake_provider()
        self.register(s, fp)
        room = s.request("POST", "/api/lobby", {"name": "room"},
                         bearer(mint(SECRET, "u1", create_lobby=True)))[2]["id"]
        other = s.request("POST", "/api/lobby", {"name": "other"},
                          bearer(mint(SECRET, "u1", create_lobby=True)))[2]["id"]
        here = mint(SECRET, "u1", lobby=room, bots=["echo"])
        people = [s.request("POST", f"/api/lobby/{room}/sessions", {"nick": n}, bearer(here))[2]
                  for n in ("ann", "bob", "cid")]
        ann, bob, cid = people

        ws = self.lobby_socket(s, room)
        # Without a token (none at the upgrade either): the session is good,
        # the person is not let in.
        self.assertEqual(self.hello(ws, ann)["code"], "access_token_missing")
        for token, code in ((mint(SECRET, "u1", lobby=other), "access_forbidden"),
                            (mint(SECRET, "u1", ttl=-5, lobby=room), "access_token_expired"),
                            ("x.y.z", "access_token_invalid")):
            ws.send_json({"type": "hello", "session_id": ann["session_id"],
                          "token": ann["session_token"], "access_token": token})
            msg, _ = ws.wait_for(lambda m: m.get("type") in ("welcome", "error"))
            self.assertEqual(msg["code"], code, msg)
        # A chat line of a socket that speaks for no one needs a token too.
        ws.send_json({"nick": "ann", "text": "hi"})
        msg, _ = ws.wait_for(lambda m: m.get("type") in ("error", "chat"))
        self.assertEqual(msg["code"], "access_token_missing", msg)
        # In the hello itself.
        ws.send_json({"type": "hello", "session_id": ann["session_id"],
                      "token": ann["session_token"], "access_token": here})
        msg, _ = ws.wait_for(lambda m: m.get("type") in ("welcome", "error"))
        self.assertEqual(msg["type"], "welcome", msg)
        # In the upgrade's Authorization header, and its query parameter
        # (a browser's way); the log shows neither token.
        by_header = self.lobby_socket(s, room, headers=bearer(here))
        self.assertEqual(self.hello(by_header, bob)["type"], "welcome")
        by_query = self.lobby_socket(s, f"{room}?access_token={here}")
        self.assertEqual(self.hello(by_query, cid)["type"], "welcome")
        s.wait_for_line(r"/ws/lobby/\S+\?access_token=REDACTED 101")
        self.assertNotIn(here, s.log())
        # A bot's run says hello with the session token its provider got.
        status, _, bot = s.request("POST", "/api/bots/echo/join",
                                   {"lobby_id": room, "nick": "Echo"}, bearer(here))
        self.assertEqual(status, 200, bot)
        run_token = fp.joins("echo")[0][2]["session_token"]
        run = self.lobby_socket(s, room)
        self.assertEqual(self.hello(run, {"session_id": bot["session_id"],
                                          "session_token": run_token})["type"], "welcome")
        self.assertEqual(metric_value(s, "voicebot_access_refused_total",
                                      code="access_token_missing"), 2)
        self.assertEqual(metric_value(s, "voicebot_access_refused_total",
                                      code="access_forbidden"), 1)

    def test_reads_need_a_token_with_access_required_for_reads(self):
        s = self.secured("--access-required-for-reads")
        fp = self.fake_provider()
        self.register(s, fp)
        room = s.request("POST", "/api/lobby", {"name": "room"},
                         bearer(mint(SECRET, "u1", create_lobby=True)))[2]["id"]
        reader = mint(SECRET, "reader", lobby=room)
        for path in ("/api/lobby", f"/api/lobby/{room}", "/api/bots"):
            self.refused(s.request("GET", path), 401, "access_token_missing")
            self.assertEqual(s.request("GET", path, headers=bearer(reader))[0], 200, path)
        self.refused(s.request("GET", f"/api/lobby/{room}",
                               headers=bearer(mint(SECRET, "r", lobby="elsewhere"))),
                     403, "access_forbidden")
        # What stays open: health, the document, providers' routes.
        for path in ("/api/health", "/api/openapi.json", "/api/bots/providers",
                     f"/api/bots/providers/{self.listed(s).popitem()[0]}"):
            self.assertEqual(s.request("GET", path)[0], 200, path)
        # The lobby's WebSocket is a read: refused at the upgrade.
        with self.assertRaises(Refused) as refused:
            self.lobby_socket(s, room)
        self.assertEqual(refused.exception.status, 401)
        self.assertEqual(refused.exception.body["code"], "access_token_missing")
        with self.assertRaises(Refused) as refused:
            self.lobby_socket(s, room, headers=bearer(mint(SECRET, "r", lobby="elsewhere")))
        self.assertEqual(refused.exception.status, 403)
        self.lobby_socket(s, f"{room}?access_token={reader}")  # its members come
        self.lobby_socket(s, room, headers=bearer(reader))

    def test_a_read_only_flag_without_a_secret_or_a_short_secret_refuses_to_start(self):
        from harness import run_server_cli
        r = run_server_cli(["--access-required-for-reads", "--port", "0"], self.tmp.path)
        self.assertEqual(r.returncode, 2, r.stderr)
        self.assertIn("access_required_for_reads needs access_secret_file", r.stderr)
        short = os.path.join(self.tmp.path, "short")
        with open(short, "w") as f:
            f.write("too-short\n")
        r = run_server_cli(["--access-secret-file", short, "--port", "0"], self.tmp.path)
        self.assertEqual(r.returncode, 2, r.stderr)
        self.assertIn("at least 32 bytes", r.stderr)
        self.assertNotIn("too-short", r.stderr + r.stdout)


class QuotaTest(ServerTestCase):

    def test_joins_and_lobbies_past_a_clients_quota_are_429_and_change_nothing(self):
        # Trusted, loopback is a proxy: requests without X-Forwarded-For are
        # its own address's, the others their forwarded client's.
        s = self.start_server("--max-joins-per-client-per-minute", "3",
                              "--max-lobbies-per-client-per-hour", "2",
                              "--trusted-proxy", "127.0.0.1")
        fp = self.fake_provider()
        self.register(s, fp)
        room = self.create_lobby(s, "room")["id"]
        self.create_lobby(s, "second")
        answer = s.request("POST", "/api/lobby", {"name": "third"})
        body = self.assertError(answer, 429, "rate_limited")
        self.assertEqual(body["detail"], "Too many lobbies created by this client, retry later")
        self.assertGreaterEqual(int(answer[1]["retry-after"]), 1)
        self.assertNotIn("third", [x["name"] for x in s.request("GET", "/api/lobby")[2]["lobbies"]])

        for n in range(3):
            self.joined(s, room, nick=f"echo{n}")
        answer = self.join(s, room, nick="echo3")
        body = self.assertError(answer, 429, "rate_limited")
        self.assertEqual(body["detail"], "Too many joins from this client, retry later")
        self.assertTrue(1 <= int(answer[1]["retry-after"]) <= 20, answer[1])
        self.assertEqual(len(fp.joins()), 3)
        self.assertEqual(len(self.sessions(s, room)), 3)

        # Clients behind the trusted proxy each have their own quota.
        forwarded = lambda client, nick: s.request(  # noqa: E731
            "POST", "/api/bots/echo/join", {"lobby_id": room, "nick": nick},
            {"X-Forwarded-For": client})
        for n in range(3):
            self.assertEqual(forwarded("203.0.113.7", f"a{n}")[0], 200)
        self.assertError(forwarded("203.0.113.7", "a3"), 429, "rate_limited")
        self.assertEqual(forwarded("198.51.100.9", "b0")[0], 200)
        # The right-most untrusted entry counts: a forged left one does not.
        self.assertError(forwarded("10.9.9.9, 203.0.113.7", "a4"), 429, "rate_limited")
        self.assertEqual(len(self.sessions(s, room)), 7)
        self.assertEqual(metric_value(s, "voicebot_quota_refused_total", quota="joins"), 3)
        self.assertEqual(metric_value(s, "voicebot_quota_refused_total", quota="lobbies"), 1)

    def test_with_access_tokens_each_subject_has_its_own_quota(self):
        path = os.path.join(self.tmp.path, "access-secret")
        with open(path, "wb") as f:
            f.write(SECRET)
        s = self.start_server("--access-secret-file", path,
                              "--max-joins-per-client-per-minute", "2")
        fp = self.fake_provider()
        self.register(s, fp)
        room = s.request("POST", "/api/lobby", {"name": "room"},
                         bearer(mint(SECRET, "admin", create_lobby=True)))[2]["id"]

        def join(sub, nick):
            return s.request("POST", "/api/bots/echo/join", {"lobby_id": room, "nick": nick},
                             bearer(mint(SECRET, sub, lobby=room, bots=["echo"])))

        # Two subjects from one address: a bucket each.
        for n in range(2):
            self.assertEqual(join("alice", f"a{n}")[0], 200)
            self.assertEqual(join("bob", f"b{n}")[0], 200)
        self.assertError(join("alice", "a2"), 429, "rate_limited")
        self.assertError(join("bob", "b2"), 429, "rate_limited")
        self.assertEqual(join("carol", "c0")[0], 200)
        # A refused token uses no quota.
        for _ in range(3):
            self.assertError(s.request("POST", "/api/bots/echo/join",
                                       {"lobby_id": room, "nick": "d"}), 401,
                             "access_token_missing")
        self.assertEqual(join("dave", "d0")[0], 200)
        self.assertEqual(len(fp.joins()), 6)


if __name__ == "__main__":
    unittest.main()
