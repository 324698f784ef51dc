"""The HTTP API of SPEC §2-§5 against the real voicebot-server, with a fake
bot provider of the original HTTP protocol (§4) running in this process:
lobbies, sessions, providers, joins and leaves, errors and their shapes."""

import json
import http.client
import threading
import unittest

from harness import ServerTestCase


def nested(depth, inner="1"):
    """A JSON array text nested `depth` levels deep."""
    return "[" * depth + inner + "]" * depth


class ErrorShapeTest(ServerTestCase):
    """One server for the generic error shapes; nothing here changes state
    that another test relies on."""

    def setUp(self):
        super().setUp()
        self.s = self.start_server()

    def test_unknown_route_is_404_not_found(self):
        for path in ["/api/nothing-here", "/nothing.js", "/api", "/api/lobby/a/b/c", "/api/bots/x/y/z"]:
            with self.subTest(path=path):
                self.assertEqual(self.s.request("GET", path)[::2],
                                 (404, {"detail": "Not Found", "code": "not_found"}))

    def test_wrong_method_is_405_with_allow(self):
        cases = [
            ("PUT", "/api/lobby", {"GET", "POST"}),
            ("DELETE", "/api/lobby", {"GET", "POST"}),
            ("DELETE", "/api/lobby/abc", {"GET"}),
            ("GET", "/api/lobby/abc/sessions", {"POST"}),
            ("GET", "/api/bots/leave", {"POST"}),
            ("GET", "/api/bots/echo/join", {"POST"}),
            ("POST", "/api/bots", {"GET"}),
            ("PUT", "/api/bots/providers/abc", {"GET", "DELETE"}),
        ]
        for method, path, allow in cases:
            with self.subTest(method=method, path=path):
                status, headers, body = self.s.request(method, path)
                self.assertEqual(status, 405, body)
                self.assertEqual(body, {"detail": "Method Not Allowed",
                                        "code": "method_not_allowed"})
                got = {m.strip() for m in headers["allow"].split(",")}
                self.assertEqual(got, allow)

    def test_malformed_json_is_400(self):
        for body in ['{"name": ', "{bad", '{"name": "x"} trailing', '{"name": "x",}', "'x'"]:
            with self.subTest(body=body):
                self.assertError(self.s.request("POST", "/api/lobby", body,
                                                {"Content-Type": "application/json"}),
                                 400, "malformed_json")
        # Invalid UTF-8 is malformed JSON too.
        self.assertError(self.s.request("POST", "/api/lobby", b'{"name": "\xff\xfe"}'),
                         400, "malformed_json")
        self.assertEqual(self.s.request("GET", "/api/lobby")[2], {"lobbies": []})

    def test_missing_field_is_422_in_fastapi_shape(self):
        status, _, body = self.s.request("POST", "/api/lobby", {})
        self.assertEqual(status, 422)
        self.assertEqual(body, {"detail": [{"loc": ["body", "name"], "msg": "field required",
                                            "type": "value_error.missing"}],
                                "code": "validation_error"})
        # An empty body or `null` is "field required" at ["body"].
        for raw in ["", "null"]:
            with self.subTest(raw=raw):
                status, _, body = self.s.request("POST", "/api/lobby", raw,
                                                 {"Content-Type": "application/json"})
                self.assertEqual(status, 422, body)
                self.assertEqual(body["code"], "validation_error")
                self.assertEqual(body["detail"][0]["loc"], ["body"])
                self.assertEqual(body["detail"][0]["type"], "value_error.missing")

    def test_every_error_of_a_body_is_listed(self):
        status, _, body = self.s.request("POST", "/api/bots/providers/register",
                                         {"base_url": "ftp://x", "bots": "no"})
        self.assertEqual(status, 422, body)
        locs = [e["loc"] for e in body["detail"]]
        self.assertIn(["body", "name"], locs)
        self.assertIn(["body", "base_url"], locs)
        self.assertIn(["body", "bots"], locs)
        for e in body["detail"]:
            self.assertIsInstance(e["msg"], str)
            self.assertIsInstance(e["type"], str)

    def test_json_nesting_limit_is_64(self):
        # 64 levels in all (the object is one): accepted, unknown fields ignored.
        ok = '{"name": "deep", "x": %s}' % nested(63)
        status, _, body = self.s.request("POST", "/api/lobby", ok,
                                         {"Content-Type": "application/json"})
        self.assertEqual(status, 201, body)
        for depth in [64, 1000, 20000]:
            with self.subTest(depth=depth):
                deep = '{"name": "deeper", "x": %s}' % nested(depth)
                status, _, body = self.s.request("POST", "/api/lobby", deep,
                                                 {"Content-Type": "application/json"})
                self.assertEqual(status, 422, body)
                self.assertEqual(body["code"], "json_too_deep")
        # A deep body that is not even closed is refused the same way.
        status, _, body = self.s.request("POST", "/api/bots/providers/register", "[" * 50000,
                                         {"Content-Type": "application/json"})
        self.assertIn(status, (400, 422), body)
        names = [l["name"] for l in self.s.request("GET", "/api/lobby")[2]["lobbies"]]
        self.assertEqual(names, ["deep"])

    def test_keep_alive_serves_many_requests_on_one_connection(self):
        conn = http.client.HTTPConnection("127.0.0.1", self.s.port, timeout=10)
        try:
            seen = []
            requests = [("GET", "/api/health", None), ("GET", "/api/nothing", None),
                        ("POST", "/api/lobby", "{}"), ("POST", "/api/lobby", '{"name": "ka"}'),
                        ("POST", "/api/lobby", "{bad"), ("DELETE", "/api/health", None),
                        ("GET", "/api/lobby", None)] * 3
            for method, path, body in requests:
                conn.request(method, path, body=body,
                             headers={"Content-Type": "application/json"} if body else {})
                res = conn.getresponse()
                res.read()
                seen.append(res.status)
                self.assertFalse(res.will_close, (method, path))
            self.assertEqual(seen, [200, 404, 422, 201, 400, 405, 200]
                             + [200, 404, 422, 200, 400, 405, 200] * 2)
            # Still the same socket: http.client reconnects silently otherwise.
            self.assertIsNotNone(conn.sock)
        finally:
            conn.close()

    def test_health_counts(self):
        status, _, body = self.s.request("GET", "/api/health")
        self.assertEqual(status, 200)
        self.assertEqual((body["status"], body["providers"], body["lobbies"]), ("ok", 0, 0))
        self.create_lobby(self.s, "a")
        self.create_lobby(self.s, "b", private=True)
        fp = self.fake_provider()
        self.register(self.s, fp)
        body = self.s.request("GET", "/api/health")[2]
        self.assertEqual((body["providers"], body["lobbies"]), (1, 2))

    # More in test_operations.py (the linter, /docs).
    def test_openapi_document(self):
        status, _, body = self.s.request("GET", "/api/openapi.json")
        self.assertEqual(status, 200, body)
        self.assertTrue(str(body["openapi"]).startswith("3."))
        paths = body["paths"]
        for path in ["/api/health", "/api/lobby", "/api/lobby/{lobby_id}",
                     "/api/lobby/{lobby_id}/sessions",
                     "/api/lobby/{lobby_id}/sessions/{session_id}",
                     "/api/bots/providers/register", "/api/bots/providers",
                     "/api/bots/providers/{provider_id}",
                     "/api/bots/providers/{provider_id}/heartbeat", "/api/bots",
                     "/api/bots/{bot_name}/join", "/api/bots/leave"]:
            self.assertIn(path, paths)

    # More in test_operations.py (promtool, values that move).
    def test_metrics(self):
        self.s.request("GET", "/api/health")
        status, headers, body = self.s.request("GET", "/metrics")
        self.assertEqual(status, 200, body)
        self.assertTrue(headers["content-type"].startswith("text/plain"), headers)
        self.assertRegex(body, r"(?m)^# TYPE \S+ (counter|gauge|histogram)")


class BasePathTest(ServerTestCase):
    def test_every_route_sits_under_the_base_path(self):
        s = self.start_server("--base-path", "/ai-voicebot")
        fp = self.fake_provider()
        self.assertEqual(s.request("GET", "/ai-voicebot/api/health")[0], 200)
        for path in ["/api/health", "/api/lobby", "/ai-voicebotx/api/health",
                     "/ai/api/health", "/", "/ai-voicebot/nothing"]:
            with self.subTest(path=path):
                self.assertEqual(s.request("GET", path)[::2],
                                 (404, {"detail": "Not Found", "code": "not_found"}))
        # The base path itself leads to the lobby page at its root.
        status, headers, _ = s.request("GET", "/ai-voicebot")
        self.assertEqual((status, headers["location"]), (308, "/ai-voicebot/"))
        status, _, lobby = s.request("POST", "/ai-voicebot/api/lobby", {"name": "r"})
        self.assertEqual(status, 201, lobby)
        status, _, reg = s.request("POST", "/ai-voicebot/api/bots/providers/register",
                                   {"name": "p", "base_url": fp.base_url,
                                    "bots": [{"name": "echo", "description": ""}]})
        self.assertEqual(status, 200, reg)
        status, _, joined = s.request("POST", "/ai-voicebot/api/bots/echo/join",
                                      {"lobby_id": lobby["id"], "nick": "E"})
        self.assertEqual(status, 200, joined)
        # The provider is told the server's URL with its base path.
        call = fp.joins("echo")[0]
        self.assertEqual(call[2]["server_url"], f"http://127.0.0.1:{s.port}/ai-voicebot")
        status, _, got = s.request("GET", f"/ai-voicebot/api/lobby/{lobby['id']}")
        self.assertEqual([x["nick"] for x in got["sessions"]], ["E"])


class KeylessBeyondLoopbackTest(ServerTestCase):
    def test_warns_at_start_without_keys_beyond_loopback(self):
        s = self.start_server("--host", "0.0.0.0")
        s.wait_for_line(r"warn.*no provider keys configured.*0\.0\.0\.0")
        self.assertEqual(s.request("GET", "/api/health")[0], 200)
        quiet = self.start_server()
        self.assertNotRegex(quiet.log(), r"no provider keys configured")


class LobbyApiTest(ServerTestCase):
    def setUp(self):
        super().setUp()
        self.s = self.start_server()

    def test_create_is_201_then_200_with_the_existing_lobby(self):
        status, _, first = self.s.request("POST", "/api/lobby", {"name": "Room 1"})
        self.assertEqual(status, 201, first)
        for key in ["id", "name", "private", "created_at", "members", "sessions"]:
            self.assertIn(key, first)
        self.assertEqual((first["name"], first["private"], first["members"], first["sessions"]),
                         ("Room 1", False, 0, []))
        status, _, again = self.s.request("POST", "/api/lobby", {"name": "Room 1"})
        self.assertEqual(status, 200, again)
        self.assertEqual(again["id"], first["id"])
        self.assertEqual(again["created_at"], first["created_at"])
        status, _, listing = self.s.request("GET", "/api/lobby")
        self.assertEqual(status, 200)
        self.assertEqual([l["id"] for l in listing["lobbies"]], [first["id"]])

    def test_concurrent_creates_of_one_name_make_one_lobby(self):
        answers = []
        lock = threading.Lock()

        def create():
            a = self.s.request("POST", "/api/lobby", {"name": "race"})
            with lock:
                answers.append(a)

        threads = [threading.Thread(target=create) for _ in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        statuses = sorted(a[0] for a in answers)
        self.assertEqual(statuses, [200] * 7 + [201])
        self.assertEqual(len({a[2]["id"] for a in answers}), 1)
        self.assertEqual(len(self.s.request("GET", "/api/lobby")[2]["lobbies"]), 1)

    def test_private_lobbies_are_not_listed_but_can_be_fetched(self):
        public = self.create_lobby(self.s, "public")
        hidden = self.create_lobby(self.s, "hidden", private=True)
        self.assertTrue(hidden["private"])
        listing = self.s.request("GET", "/api/lobby")[2]["lobbies"]
        self.assertEqual([l["id"] for l in listing], [public["id"]])
        for key in ["id", "name", "private", "created_at", "members"]:
            self.assertIn(key, listing[0])
        status, _, got = self.s.request("GET", f"/api/lobby/{hidden['id']}")
        self.assertEqual(status, 200)
        self.assertEqual((got["name"], got["private"]), ("hidden", True))

    def test_unknown_lobby_is_404(self):
        self.assertError(self.s.request("GET", "/api/lobby/no-such-lobby"), 404,
                         "lobby_not_found", "Lobby not found")
        self.assertError(self.s.request("POST", "/api/lobby/no-such-lobby/sessions",
                                        {"nick": "x"}), 404, "lobby_not_found")
        self.assertError(self.s.request("DELETE", "/api/lobby/no-such-lobby/sessions/x"), 404,
                         "lobby_not_found")

    def test_a_person_joins_and_leaves(self):
        lobby = self.create_lobby(self.s)
        status, _, sess = self.s.request("POST", f"/api/lobby/{lobby['id']}/sessions",
                                         {"nick": "Alice"})
        self.assertEqual(status, 201, sess)
        self.assertEqual((sess["nick"], sess["is_bot"], sess["lobby_id"]),
                         ("Alice", False, lobby["id"]))
        self.assertTrue(sess["session_id"])
        got = self.s.request("GET", f"/api/lobby/{lobby['id']}")[2]
        self.assertEqual(got["members"], 1)
        self.assertEqual([(x["session_id"], x["nick"], x["is_bot"]) for x in got["sessions"]],
                         [(sess["session_id"], "Alice", False)])
        for key in ["session_id", "nick", "is_bot", "bot_name", "provider_id", "run_id",
                    "joined_at"]:
            self.assertIn(key, got["sessions"][0])
        status, headers, body = self.s.request(
            "DELETE", f"/api/lobby/{lobby['id']}/sessions/{sess['session_id']}")
        self.assertEqual((status, body), (204, None))
        self.assertEqual(self.sessions(self.s, lobby["id"]), [])
        self.assertError(self.s.request(
            "DELETE", f"/api/lobby/{lobby['id']}/sessions/{sess['session_id']}"), 404,
            "session_not_found")

    def test_invalid_lobby_and_session_bodies_are_422_and_change_nothing(self):
        lobby = self.create_lobby(self.s)
        bad_lobbies = [
            {"name": ""},
            {"name": "x" * 65},
            {"name": 5},
            {"name": None},
            {"name": "tab\there"},
            {"name": "ok", "private": "yes"},
            {"name": "ok", "private": 1},
            ["name"],
        ]
        for body in bad_lobbies:
            with self.subTest(body=body):
                status, _, res = self.s.request("POST", "/api/lobby", body)
                self.assertEqual(status, 422, res)
                self.assertEqual(res["code"], "validation_error")
        self.assertEqual(len(self.s.request("GET", "/api/lobby")[2]["lobbies"]), 1)
        for body in [{}, {"nick": ""}, {"nick": "n" * 65}, {"nick": 1}, {"nick": "a\u0007"}]:
            with self.subTest(body=body):
                status, _, res = self.s.request(
                    "POST", f"/api/lobby/{lobby['id']}/sessions", body)
                self.assertEqual(status, 422, res)
        self.assertEqual(self.sessions(self.s, lobby["id"]), [])

    def test_names_count_characters_not_bytes(self):
        name = "\u00e9\u263a" * 32  # 64 characters, 160 bytes of UTF-8
        status, _, res = self.s.request("POST", "/api/lobby", {"name": name})
        self.assertEqual(status, 201, res)
        self.assertEqual(res["name"], name)
        status, _, res = self.s.request("POST", "/api/lobby", {"name": name + "x"})
        self.assertEqual(status, 422, res)
        lobby = self.s.request("GET", f"/api/lobby/{self.create_lobby(self.s, name)['id']}")[2]
        self.assertEqual(lobby["name"], name)


class ProviderApiTest(ServerTestCase):
    def setUp(self):
        super().setUp()
        self.s = self.start_server()
        self.fp = self.fake_provider(bots=("echo", "greeter"))

    def provider_list(self):
        status, _, body = self.s.request("GET", "/api/bots/providers")
        self.assertEqual(status, 200)
        return body["providers"]

    def test_register_list_get(self):
        status, _, res = self.s.request("POST", "/api/bots/providers/register", {
            "name": "voicebot-main", "base_url": self.fp.base_url, "description": "AI bots",
            "bots": [{"name": "echo", "description": "repeats"},
                     {"name": "greeter", "description": "says hello"}]})
        self.assertEqual(status, 200, res)
        self.assertEqual(res["status"], "registered")
        pid = res["provider_id"]
        [p] = self.provider_list()
        self.assertEqual((p["provider_id"], p["name"], p["base_url"], p["description"],
                          p["transport"], p["status"]),
                         (pid, "voicebot-main", self.fp.base_url, "AI bots", "http", "online"))
        self.assertEqual(p["bots"], [{"name": "echo", "description": "repeats"},
                                     {"name": "greeter", "description": "says hello"}])
        self.assertIsInstance(p["registered_at"], (int, float))
        self.assertGreaterEqual(p["last_seen"], p["registered_at"])
        status, _, got = self.s.request("GET", f"/api/bots/providers/{pid}")
        self.assertEqual(status, 200)
        self.assertEqual(got, p)
        self.assertError(self.s.request("GET", "/api/bots/providers/unknown-id"), 404,
                         "provider_not_found")

    def test_same_name_and_base_url_or_known_id_keep_the_id(self):
        pid = self.register(self.s, self.fp, name="p1")
        first = self.provider_list()[0]
        self.assertEqual(self.register(self.s, self.fp, name="p1"), pid)
        # A known provider_id keeps its id even with another name.
        self.assertEqual(self.register(self.s, self.fp, name="renamed", provider_id=pid), pid)
        [p] = self.provider_list()
        self.assertEqual(p["name"], "renamed")
        self.assertEqual(p["registered_at"], first["registered_at"])
        self.assertGreaterEqual(p["last_seen"], first["last_seen"])
        # Another name at the same URL is another provider.
        other = self.register(self.s, self.fp, name="p2")
        self.assertNotEqual(other, pid)
        self.assertEqual({p["provider_id"] for p in self.provider_list()}, {pid, other})
        # "" means "not given".
        self.assertEqual(self.register(self.s, self.fp, name="p2", provider_id=""), other)

    def test_heartbeat(self):
        pid = self.register(self.s, self.fp)
        before = self.provider_list()[0]["last_seen"]
        status, _, res = self.s.request("POST", f"/api/bots/providers/{pid}/heartbeat", {})
        self.assertEqual(status, 200, res)
        self.assertEqual(res["status"], "ok")
        self.assertGreaterEqual(res["last_seen"], before)
        self.assertEqual(self.provider_list()[0]["last_seen"], res["last_seen"])
        # An empty body is {}.
        self.assertEqual(self.s.request("POST", f"/api/bots/providers/{pid}/heartbeat")[0], 200)
        self.assertError(self.s.request("POST", "/api/bots/providers/unknown/heartbeat", {}),
                         404, "provider_not_found")

    def test_heartbeat_with_bots_replaces_the_catalog(self):
        pid = self.register(self.s, self.fp)
        status, _, res = self.s.request("POST", f"/api/bots/providers/{pid}/heartbeat",
                                        {"bots": [{"name": "newbot", "description": "n"}]})
        self.assertEqual(status, 200, res)
        bots = self.s.request("GET", "/api/bots")[2]
        self.assertEqual(bots["bots"], [{"name": "newbot", "description": "n",
                                         "provider_id": pid}])
        self.assertEqual(bots["providers"], {"newbot": pid})

    def test_delete(self):
        pid = self.register(self.s, self.fp)
        status, _, body = self.s.request("DELETE", f"/api/bots/providers/{pid}")
        self.assertEqual((status, body), (204, None))
        self.assertEqual(self.provider_list(), [])
        self.assertError(self.s.request("GET", f"/api/bots/providers/{pid}"), 404,
                         "provider_not_found")
        self.assertError(self.s.request("DELETE", f"/api/bots/providers/{pid}"), 404,
                         "provider_not_found")
        self.assertError(self.s.request("POST", f"/api/bots/providers/{pid}/heartbeat", {}),
                         404, "provider_not_found")
        self.assertEqual(self.s.request("GET", "/api/bots")[2], {"bots": [], "providers": {}})

    def test_a_deleted_or_lost_provider_gets_its_own_id_back(self):
        # SPEC §3 provider side: a provider that finds itself unknown
        # registers again with its own provider_id.
        pid = self.register(self.s, self.fp, name="p1")
        self.assertEqual(self.s.request("DELETE", f"/api/bots/providers/{pid}")[0], 204)
        self.assertEqual(self.register(self.s, self.fp, name="p1-again", provider_id=pid), pid)
        lost = "0b7e9d1a-55aa-4c11-8f00-93d1c2b3a4f5"
        self.assertEqual(self.register(self.s, self.fake_provider(), name="lost",
                                       provider_id=lost), lost)
        self.assertEqual({p["provider_id"] for p in self.provider_list()}, {pid, lost})

    def test_bot_catalog(self):
        self.assertEqual(self.s.request("GET", "/api/bots")[2], {"bots": [], "providers": {}})
        a = self.register(self.s, self.fp, name="a", bots=["echo", "greeter"])
        fp2 = self.fake_provider(bots=("echo", "weather"))
        b = self.register(self.s, fp2, name="b")
        status, _, res = self.s.request("GET", "/api/bots")
        self.assertEqual(status, 200)
        got = sorted((x["name"], x["provider_id"]) for x in res["bots"])
        self.assertEqual(got, sorted([("echo", a), ("greeter", a), ("echo", b), ("weather", b)]))
        for x in res["bots"]:
            self.assertEqual(x["description"], x["name"] + " bot")
        self.assertEqual(set(res["providers"]), {"echo", "greeter", "weather"})
        self.assertIn(res["providers"]["echo"], (a, b))
        self.assertEqual(res["providers"]["greeter"], a)
        self.assertEqual(res["providers"]["weather"], b)
        # Never a live call to the providers.
        self.assertEqual(self.fp.calls + fp2.calls, [])

    def test_invalid_registrations_are_422_and_change_nothing(self):
        good = {"name": "p", "base_url": self.fp.base_url,
                "bots": [{"name": "echo", "description": ""}]}
        cases = [
            {"base_url": self.fp.base_url, "bots": []},
            dict(good, name=""),
            dict(good, name="n" * 65),
            dict(good, base_url="ftp://127.0.0.1/"),
            dict(good, base_url="not a url"),
            dict(good, base_url="http://"),
            dict(good, description="d" * 1025),
            dict(good, bots=[{"name": "bad name!", "description": ""}]),
            dict(good, bots=[{"name": "x" * 65, "description": ""}]),
            dict(good, bots=[{"description": "no name"}]),
            dict(good, bots={"echo": "x"}),
            dict(good, bots=[{"name": "b%d" % i, "description": ""} for i in range(257)]),
        ]
        for body in cases:
            with self.subTest(body=str(body)[:80]):
                status, _, res = self.s.request("POST", "/api/bots/providers/register", body)
                self.assertEqual(status, 422, res)
                self.assertEqual(res["code"], "validation_error")
        self.assertEqual(self.provider_list(), [])
        # The limits themselves are fine.
        ok = dict(good, name="n" * 64, description="d" * 1024,
                  bots=[{"name": "B-._9" * 12 + "abcd", "description": "x"}])
        self.assertEqual(self.s.request("POST", "/api/bots/providers/register", ok)[0], 200)
        self.assertEqual(len(self.provider_list()), 1)


class ProviderKeyTest(ServerTestCase):
    def setUp(self):
        super().setUp()
        self.s = self.start_server("--provider-key", "sekrit", "--provider-key", "other")
        self.fp = self.fake_provider()

    def body(self, **extra):
        b = {"name": "keyed", "base_url": self.fp.base_url,
             "bots": [{"name": "echo", "description": ""}]}
        b.update(extra)
        return b

    def listing(self):
        return self.s.request("GET", "/api/bots/providers")[2]["providers"]

    def test_register_needs_a_key(self):
        self.assertError(self.s.request("POST", "/api/bots/providers/register", self.body()),
                         401, "provider_key_missing")
        self.assertError(self.s.request("POST", "/api/bots/providers/register",
                                        self.body(provider_key="")), 401,
                         "provider_key_missing")
        self.assertError(self.s.request("POST", "/api/bots/providers/register",
                                        self.body(provider_key="wrong")), 403,
                         "provider_key_invalid")
        self.assertEqual(self.listing(), [])
        self.assertEqual(self.s.request("GET", "/api/health")[2]["providers"], 0)
        status, _, res = self.s.request("POST", "/api/bots/providers/register",
                                        self.body(provider_key="other"))
        self.assertEqual(status, 200, res)
        pid = res["provider_id"]
        # A wrong key cannot take over a known id either.
        self.assertError(self.s.request("POST", "/api/bots/providers/register",
                                        self.body(name="evil", provider_id=pid,
                                                  provider_key="nope")), 403,
                         "provider_key_invalid")
        [p] = self.listing()
        self.assertEqual((p["provider_id"], p["name"]), (pid, "keyed"))
        self.assertNotIn("provider_key", p)

    def test_no_warning_about_keys_when_keys_are_configured(self):
        self.assertNotRegex(self.s.log(), r"no provider keys configured")

    def test_delete_needs_the_key(self):
        status, _, res = self.s.request("POST", "/api/bots/providers/register",
                                        self.body(provider_key="sekrit"))
        pid = res["provider_id"]
        self.assertError(self.s.request("DELETE", f"/api/bots/providers/{pid}"), 401,
                         "provider_key_missing")
        self.assertError(self.s.request("DELETE", f"/api/bots/providers/{pid}",
                                        headers={"X-Provider-Key": "wrong"}), 403,
                         "provider_key_invalid")
        self.assertError(self.s.request("DELETE", f"/api/bots/providers/{pid}?provider_key=bad"),
                         403, "provider_key_invalid")
        self.assertEqual([p["provider_id"] for p in self.listing()], [pid])
        status, _, _ = self.s.request("DELETE", f"/api/bots/providers/{pid}",
                                      headers={"X-Provider-Key": "sekrit"})
        self.assertEqual(status, 204)
        self.assertEqual(self.listing(), [])
        # The query parameter works as well.
        status, _, res = self.s.request("POST", "/api/bots/providers/register",
                                        self.body(provider_key="sekrit"))
        pid = res["provider_id"]
        status, _, _ = self.s.request("DELETE", f"/api/bots/providers/{pid}?provider_key=sekrit")
        self.assertEqual(status, 204)
        self.assertEqual(self.listing(), [])


class JoinApiTest(ServerTestCase):
    def setUp(self):
        super().setUp()
        self.s = self.start_server()
        self.fp = self.fake_provider(bots=("echo", "greeter"))
        self.pid = self.register(self.s, self.fp)
        self.lobby = self.create_lobby(self.s)["id"]

    def test_join_is_answered_after_the_provider_accepted(self):
        status, _, res = self.join(self.s, self.lobby, "echo", "Echo One")
        self.assertEqual(status, 200, res)
        self.assertEqual((res["status"], res["bot_name"], res["lobby_id"], res["provider_id"],
                          res["nick"]), ("requested", "echo", self.lobby, self.pid, "Echo One"))
        self.assertTrue(res["session_id"])
        self.assertTrue(res["run_id"])
        [call] = self.fp.joins()
        method, path, body = call
        self.assertEqual(path, "/bots/echo/join")
        # The run's session token (SPEC §4, §9): its own, in the body only.
        token = body.pop("session_token")
        self.assertRegex(token, r"^[A-Za-z0-9_-]{22,}$")
        self.assertNotIn(token, json.dumps(res))
        self.assertEqual(body, {"lobby_id": self.lobby, "session_id": res["session_id"],
                                "nick": "Echo One",
                                "server_url": f"http://127.0.0.1:{self.s.port}"})
        [member] = self.sessions(self.s, self.lobby)
        self.assertEqual((member["session_id"], member["nick"], member["is_bot"],
                          member["bot_name"], member["provider_id"], member["run_id"]),
                         (res["session_id"], "Echo One", True, "echo", self.pid, res["run_id"]))
        self.assertEqual(self.s.request("GET", f"/api/lobby/{self.lobby}")[2]["members"], 1)

    def test_an_accepted_join_moves_last_seen(self):
        before = self.s.request("GET", f"/api/bots/providers/{self.pid}")[2]["last_seen"]
        self.assertEqual(self.join(self.s, self.lobby, "echo", "E")[0], 200)
        after = self.s.request("GET", f"/api/bots/providers/{self.pid}")[2]["last_seen"]
        self.assertGreater(after, before)

    def test_base_url_with_a_trailing_slash(self):
        fp = self.fake_provider(bots=("slashbot",))
        status, _, res = self.s.request("POST", "/api/bots/providers/register", {
            "name": "slash", "base_url": fp.base_url + "/",
            "bots": [{"name": "slashbot", "description": ""}]})
        self.assertEqual(status, 200, res)
        status, _, joined = self.join(self.s, self.lobby, "slashbot", "S")
        self.assertEqual(status, 200, joined)
        self.assertEqual([c[1] for c in fp.joins()], ["/bots/slashbot/join"])

    def test_base_url_with_user_info_is_422_and_changes_nothing(self):
        # The client could never call it (one URL grammar, model/url.hpp), so
        # it does not register; before, it did, and every join to it was a 503.
        fp = self.fake_provider(bots=("credbot", "echo"))
        before = self.s.request("GET", "/api/bots/providers")[2]
        with_user = fp.base_url.replace("http://", "http://user:pw@")
        for base_url in (with_user, with_user + "/v1", fp.base_url.replace("http://", "http://u@")):
            with self.subTest(base_url=base_url):
                status, _, res = self.s.request("POST", "/api/bots/providers/register", {
                    "name": "creds", "base_url": base_url,
                    "bots": [{"name": "credbot", "description": ""},
                             {"name": "echo", "description": ""}]})
                self.assertEqual(status, 422, res)
                self.assertEqual(res, {"detail": [{
                    "loc": ["body", "base_url"],
                    "msg": "URL must not contain user info (user:password@)",
                    "type": "value_error.url.userinfo"}], "code": "validation_error"})
        self.assertEqual(self.s.request("GET", "/api/bots/providers")[2], before)
        self.assertError(self.join(self.s, self.lobby, "credbot", "C"), 404, "bot_not_found")
        # echo still goes to the provider registered before, and only there.
        status, _, res = self.join(self.s, self.lobby, "echo", "E")
        self.assertEqual((status, res["provider_id"]), (200, self.pid), res)
        self.assertEqual(fp.calls, [])

    def test_join_without_nick_and_with_empty_provider_id(self):
        status, _, res = self.join(self.s, self.lobby, "greeter", provider_id="")
        self.assertEqual(status, 200, res)
        self.assertTrue(res["nick"])
        self.assertEqual(self.fp.joins("greeter")[0][2]["nick"], res["nick"])
        status, _, res2 = self.join(self.s, self.lobby, "greeter", provider_id=self.pid)
        self.assertEqual(status, 200, res2)
        self.assertEqual(res2["session_id"], res["session_id"])

    def test_unknown_bot_or_lobby_is_404_and_calls_no_provider(self):
        self.assertError(self.join(self.s, self.lobby, "nobot", "x"), 404, "bot_not_found",
                         "Bot not found")
        self.assertError(self.join(self.s, "no-such-lobby", "echo", "x"), 404,
                         "lobby_not_found", "Lobby not found")
        # A provider that does not host the bot does not make it known.
        other = self.register(self.s, self.fake_provider(bots=("weather",)), name="w")
        self.assertError(self.join(self.s, self.lobby, "nobot", "x", provider_id=other), 404,
                         "bot_not_found")
        self.assertEqual(self.fp.calls, [])
        self.assertEqual(self.sessions(self.s, self.lobby), [])

    def test_provider_id_is_a_preference_not_a_pin(self):
        # SPEC §7: a provider_id that cannot take the bot (it does not host
        # it, or is unknown) is a preference that cannot be met: the join
        # goes to a provider of the bot.
        other = self.register(self.s, self.fake_provider(bots=("weather",)), name="w")
        for nick, pref in [("x", other), ("y", "unknown")]:
            status, _, res = self.join(self.s, self.lobby, "echo", nick, provider_id=pref)
            self.assertEqual(status, 200, res)
            self.assertEqual(res["provider_id"], self.pid)

    def test_invalid_join_is_422(self):
        cases = [
            ("echo", {}, ["body", "lobby_id"]),
            ("echo", {"lobby_id": 7}, ["body", "lobby_id"]),
            ("echo", {"lobby_id": self.lobby, "nick": "n" * 65}, ["body", "nick"]),
            ("echo", {"lobby_id": self.lobby, "nick": "bell\u0007"}, ["body", "nick"]),
            ("bad!name", {"lobby_id": self.lobby}, ["path", "bot_name"]),
            ("b" * 65, {"lobby_id": self.lobby}, ["path", "bot_name"]),
        ]
        for bot, body, loc in cases:
            with self.subTest(bot=bot, body=body):
                status, _, res = self.s.request("POST", f"/api/bots/{bot}/join", body)
                self.assertEqual(status, 422, res)
                self.assertIn(loc, [e["loc"] for e in res["detail"]])
        self.assertEqual(self.fp.calls, [])
        self.assertEqual(self.sessions(self.s, self.lobby), [])

    def test_retried_join_returns_the_same_session(self):
        first = self.join(self.s, self.lobby, "echo", "E")
        second = self.join(self.s, self.lobby, "echo", "E")
        self.assertEqual((first[0], second[0]), (200, 200))
        self.assertEqual(first[2], second[2])
        self.assertEqual(len(self.fp.joins()), 1)
        self.assertEqual(len(self.sessions(self.s, self.lobby)), 1)
        # Another nick, another bot or another lobby is another member.
        self.assertEqual(self.join(self.s, self.lobby, "echo", "E2")[0], 200)
        self.assertEqual(self.join(self.s, self.lobby, "greeter", "E")[0], 200)
        other = self.create_lobby(self.s, "other")["id"]
        self.assertEqual(self.join(self.s, other, "echo", "E")[0], 200)
        self.assertEqual(len(self.fp.joins()), 4)
        self.assertEqual(len(self.sessions(self.s, self.lobby)), 3)

    def test_concurrent_identical_joins_call_the_provider_once(self):
        self.fp.mode = "hold"
        answers = []
        lock = threading.Lock()

        def go():
            a = self.join(self.s, self.lobby, "echo", "Twin")
            with lock:
                answers.append(a)

        threads = [threading.Thread(target=go) for _ in range(6)]
        for t in threads:
            t.start()
        self.fp.wait_for(lambda calls: len(calls) >= 1)
        self.fp.gate.set()
        for t in threads:
            t.join(20)
        self.assertEqual([a[0] for a in answers], [200] * 6)
        self.assertEqual(len({a[2]["session_id"] for a in answers}), 1)
        self.assertEqual(len(self.fp.joins()), 1)
        self.assertEqual(len(self.sessions(self.s, self.lobby)), 1)

    def assertUnavailable(self, answer):
        status, headers, body = answer
        self.assertEqual(status, 503, body)
        self.assertEqual(body["code"], "provider_unavailable")
        self.assertIn("retry-after", headers)
        self.assertGreaterEqual(int(headers["retry-after"]), 1)
        self.assertEqual(self.sessions(self.s, self.lobby), [])

    def test_refusing_provider_is_503_and_adds_no_member(self):
        self.fp.refuse()
        self.assertUnavailable(self.join(self.s, self.lobby, "echo", "E"))
        # The provider is back: the same join works.
        self.fp.listen_again()
        status, _, res = self.join(self.s, self.lobby, "echo", "E")
        self.assertEqual(status, 200, res)
        self.assertEqual(len(self.sessions(self.s, self.lobby)), 1)

    def test_provider_closing_the_connection_is_503(self):
        self.fp.mode = "drop"
        self.assertUnavailable(self.join(self.s, self.lobby, "echo", "E"))
        self.assertEqual(len(self.fp.joins()), 1)

    def test_hanging_provider_is_503_after_the_dispatch_timeout(self):
        self.fp.mode = "hang"
        self.assertUnavailable(self.join(self.s, self.lobby, "echo", "E"))
        self.assertEqual(len(self.fp.joins()), 1)
        status, _, p = self.s.request("GET", f"/api/bots/providers/{self.pid}")
        self.assertEqual(p["status"], "unreachable")
        # Once it answers again, joins work and it is online again.
        self.fp.mode = "ok"
        self.assertEqual(self.join(self.s, self.lobby, "echo", "E")[0], 200)
        self.assertEqual(self.s.request("GET", f"/api/bots/providers/{self.pid}")[2]["status"],
                         "online")

    def test_rejecting_provider_is_502_and_adds_no_member(self):
        # A 5xx is a provider that failed, not an answer (SPEC §7): 503,
        # after a failover (to nobody here: it is the bot's only provider).
        self.fp.mode = "reject"
        self.fp.reject_status = 500
        status, headers, body = self.join(self.s, self.lobby, "echo", "E")
        self.assertEqual(status, 503, body)
        self.assertEqual(body["code"], "provider_unavailable")
        self.assertIn("retry-after", headers)
        self.assertEqual(self.sessions(self.s, self.lobby), [])
        for mode, status_code in [("reject", 404), ("reject", 409),
                                  ("no_run_id", 200)]:
            with self.subTest(mode=mode, status=status_code):
                self.fp.mode = mode
                self.fp.reject_status = status_code
                status, headers, body = self.join(self.s, self.lobby, "echo", "E")
                self.assertEqual(status, 502, body)
                self.assertEqual(body["code"], "provider_rejected")
                self.assertEqual(self.sessions(self.s, self.lobby), [])
        self.assertEqual(len(self.fp.joins()), 4)

    def test_failover_to_another_provider_of_the_bot(self):
        # SPEC §7: the most recently seen online provider is tried first; when
        # it fails, the other online provider of the bot gets the same join.
        fp2 = self.fake_provider(bots=("echo",))
        pid2 = self.register(self.s, fp2, name="second")
        fp2.mode = "drop"
        status, _, res = self.join(self.s, self.lobby, "echo", "E")
        self.assertEqual(status, 200, res)
        self.assertEqual(res["provider_id"], self.pid)
        [tried] = fp2.joins()
        [accepted] = self.fp.joins()
        self.assertEqual(tried[2]["session_id"], accepted[2]["session_id"])
        self.assertEqual([x["provider_id"] for x in self.sessions(self.s, self.lobby)],
                         [self.pid])
        # The one that failed is unreachable; the catalog points to the other.
        self.assertEqual(self.s.request("GET", f"/api/bots/providers/{pid2}")[2]["status"],
                         "unreachable")
        self.assertEqual(self.s.request("GET", "/api/bots")[2]["providers"]["echo"], self.pid)

    def test_leave_removes_the_member_and_stops_the_run(self):
        status, _, res = self.join(self.s, self.lobby, "echo", "E")
        self.assertEqual(status, 200)
        status, _, left = self.s.request("POST", "/api/bots/leave",
                                         {"session_id": res["session_id"]})
        self.assertEqual(status, 200, left)
        self.assertEqual(self.sessions(self.s, self.lobby), [])
        self.fp.wait_for_stop(res["run_id"])
        # With the lobby given (and "" meaning not given).
        status, _, res = self.join(self.s, self.lobby, "echo", "E")
        status, _, left = self.s.request("POST", "/api/bots/leave",
                                         {"session_id": res["session_id"],
                                          "lobby_id": self.lobby})
        self.assertEqual(status, 200, left)
        self.fp.wait_for_stop(res["run_id"])
        status, _, res = self.join(self.s, self.lobby, "echo", "E")
        status, _, left = self.s.request("POST", "/api/bots/leave",
                                         {"session_id": res["session_id"], "lobby_id": ""})
        self.assertEqual(status, 200, left)
        self.fp.wait_for_stop(res["run_id"])
        self.assertEqual(self.sessions(self.s, self.lobby), [])

    def test_leave_errors(self):
        self.assertError(self.s.request("POST", "/api/bots/leave", {"session_id": "nope"}), 404,
                         "session_not_found")
        self.assertError(self.s.request("POST", "/api/bots/leave",
                                        {"session_id": "nope", "lobby_id": "nolobby"}), 404,
                         "lobby_not_found")
        status, _, res = self.s.request("POST", "/api/bots/leave", {})
        self.assertEqual(status, 422, res)
        self.assertEqual(res["detail"][0]["loc"], ["body", "session_id"])

    def test_deleting_a_bot_session_stops_the_run(self):
        status, _, res = self.join(self.s, self.lobby, "greeter", "G")
        self.assertEqual(status, 200)
        status, _, body = self.s.request(
            "DELETE", f"/api/lobby/{self.lobby}/sessions/{res['session_id']}")
        self.assertEqual((status, body), (204, None))
        self.fp.wait_for_stop(res["run_id"])
        self.assertEqual(self.sessions(self.s, self.lobby), [])
        # The same join again is a new run.
        status, _, again = self.join(self.s, self.lobby, "greeter", "G")
        self.assertEqual(status, 200)
        self.assertNotEqual(again["session_id"], res["session_id"])
        self.assertEqual(len(self.fp.joins("greeter")), 2)

    def test_bots_and_people_side_by_side(self):
        status, _, person = self.s.request("POST", f"/api/lobby/{self.lobby}/sessions",
                                           {"nick": "Alice"})
        self.assertEqual(status, 201)
        self.assertEqual(self.join(self.s, self.lobby, "echo", "Alice")[0], 200)
        got = self.sessions(self.s, self.lobby)
        self.assertEqual(sorted((x["nick"], x["is_bot"]) for x in got),
                         [("Alice", False), ("Alice", True)])
        listing = self.s.request("GET", "/api/lobby")[2]["lobbies"]
        self.assertEqual(listing[0]["members"], 2)


if __name__ == "__main__":
    unittest.main()
