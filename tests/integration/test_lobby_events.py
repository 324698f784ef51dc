"""Live lobby events over the WebSocket (docs/lobby-events.md) against the
real voicebot-server, with a real RFC 6455 client: the members on connect,
joins, leaves and chat in order, refused upgrades, bad messages, and a slow
subscriber that is dropped while the lobby keeps working. Also the lobby page
that the server serves (web/)."""

import signal
import time
import unittest

from harness import SANITIZE, ServerTestCase
from wsclient import Closed, Refused, WebSocket


class LobbyEventsTest(ServerTestCase):

    def setUp(self):
        super().setUp()
        self.s = self.start_server()

    def ws(self, lobby_id, server=None, prefix="", **kw):
        return self.lobby_socket(server or self.s, lobby_id, members=False, prefix=prefix, **kw)

    def test_unknown_lobby_refuses_the_upgrade(self):
        with self.assertRaises(Refused) as r:
            self.ws("00000000-0000-4000-8000-000000000000")
        self.assertEqual(r.exception.status, 404)
        self.assertEqual(r.exception.body, {"detail": "Lobby not found", "code": "lobby_not_found"})
        with self.assertRaises(Refused) as r:
            self.ws("x" * 200)
        self.assertEqual(r.exception.status, 422)
        self.assertEqual(r.exception.body["detail"][0]["loc"], ["path", "lobby_id"])
        # Without an upgrade, the route says what it wants.
        status, headers, body = self.s.request("GET", "/ws/lobby/anything")
        self.assertEqual(status, 426, body)
        self.assertEqual(body["code"], "upgrade_required")
        # A page of another site may not open it.
        room = self.create_lobby(self.s)
        with self.assertRaises(Refused) as r:
            self.ws(room["id"], headers={"Origin": "http://evil.example"})
        self.assertEqual(r.exception.status, 403)
        ws = self.ws(room["id"], headers={"Origin": f"http://127.0.0.1:{self.s.port}"})
        self.assertEqual(ws.recv_json()["type"], "members")

    def test_members_then_joins_leaves_and_chat_in_order(self):
        fp = self.fake_provider(bots=("echo", "greeter"))
        self.register(self.s, fp)
        room = self.create_lobby(self.s)
        alice = self.person(self.s, room["id"], "alice")
        status, _, echo = self.join(self.s, room["id"], "echo", "Echo")
        self.assertEqual(status, 200, echo)

        first = self.ws(room["id"])
        second = self.ws(room["id"])
        for ws in (first, second):
            hello = ws.recv_json()
            self.assertEqual(hello["type"], "members")
            self.assertEqual(hello["lobby_id"], room["id"])
            self.assertEqual(hello["name"], "room")
            self.assertEqual([m["session_id"] for m in hello["members"]],
                             [alice["session_id"], echo["session_id"]])
            self.assertEqual([m["is_bot"] for m in hello["members"]], [False, True])

        bob = self.person(self.s, room["id"], "bob")
        status, _, greeter = self.join(self.s, room["id"], "greeter", "Greeter")
        self.assertEqual(status, 200, greeter)
        status, _, _ = self.s.request("DELETE", f"/api/lobby/{room['id']}/sessions/{bob['session_id']}")
        self.assertEqual(status, 204)
        first.send_json({"type": "chat", "nick": "alice", "text": "hello, world ✓"})

        for ws in (first, second):
            got = [ws.recv_json() for _ in range(4)]
            self.assertEqual([e["type"] for e in got],
                             ["member_joined", "member_joined", "member_left", "chat"])
            self.assertEqual(got[0]["member"]["session_id"], bob["session_id"])
            self.assertEqual(got[1]["member"]["session_id"], greeter["session_id"])
            self.assertTrue(got[1]["member"]["is_bot"])
            self.assertEqual(got[1]["member"]["bot_name"], "greeter")
            self.assertEqual(got[2]["member"]["nick"], "bob")
            self.assertEqual(got[3]["member"]["nick"], "alice")
            self.assertEqual(got[3]["text"], "hello, world ✓")
            for e in got:
                self.assertEqual(e["lobby_id"], room["id"])
                self.assertGreater(e["at"], 0)

        # A subscriber of another lobby sees none of it.
        other = self.create_lobby(self.s, "other")
        third = self.ws(other["id"])
        self.assertEqual(third.recv_json()["members"], [])
        first.send_json({"type": "chat", "nick": "alice", "text": "again"})
        self.assertEqual(second.recv_json()["text"], "again")
        with self.assertRaises(OSError):
            third.recv_json(timeout=0.3)

    def test_bad_messages_are_answered_and_the_socket_stays(self):
        room = self.create_lobby(self.s)
        ws = self.ws(room["id"])
        self.assertEqual(ws.recv_json()["type"], "members")
        ws.send_text("{not json")
        err = ws.recv_json()
        self.assertEqual(err, {"type": "error", "detail": "Malformed JSON body",
                               "code": "malformed_json"})
        ws.send_json({"type": "shout", "nick": "", "text": "x" * 2001})
        err = ws.recv_json()
        self.assertEqual(err["type"], "error")
        self.assertEqual(err["code"], "validation_error")
        self.assertEqual([e["loc"] for e in err["detail"]],
                         [["body", "type"], ["body", "nick"], ["body", "text"]])
        self.assertEqual(err["detail"][0]["type"], "value_error.const")
        ws.send_json({"type": "chat", "nick": "bell\u0007", "text": "hi"})
        self.assertEqual(ws.recv_json()["detail"][0]["type"], "value_error.str.printable")
        ws.send_text("[" * 100 + "]" * 100)
        self.assertEqual(ws.recv_json()["code"], "json_too_deep")
        ws.send_json({"type": "chat", "nick": "alice", "text": "still here"})
        self.assertEqual(ws.recv_json()["text"], "still here")
        # A message past the limit (80 KiB: a 64 KiB signal and its envelope)
        # closes the socket; the server goes on.
        ws.send_text("x" * 90000)
        with self.assertRaises(Closed):
            while True:
                ws.recv_json()
        self.assertEqual(ws.close_code, 1009)
        self.assertEqual(self.s.request("GET", "/api/health")[0], 200)

    def test_a_closed_subscriber_is_forgotten(self):
        room = self.create_lobby(self.s)
        for _ in range(20):
            ws = WebSocket(self.s.port, f"/ws/lobby/{room['id']}")
            ws.recv_json()
            ws.sock.close()  # no close frame: just gone
        live = self.ws(room["id"])
        live.recv_json()
        self.person(self.s, room["id"], "alice")
        self.assertEqual(live.recv_json()["member"]["nick"], "alice")

    def test_pages_that_come_and_go_leave_no_memory_behind(self):
        # Each subscriber's memory was once kept by the lobby's monitor of
        # it for the lobby's life (about 1.1 kB a page): 1,000 pages grew
        # RSS by about 1.1 MB, now by some tens of kB (allocator noise).
        room = self.create_lobby(self.s)

        def pages(n):
            for i in range(n):
                ws = WebSocket(self.s.port, f"/ws/lobby/{room['id']}")
                ws.recv_json()
                if i % 2:
                    ws.close()
                else:
                    ws.sock.close()

        def rss_kb():
            with open(f"/proc/{self.s.proc.pid}/status") as f:
                for line in f:
                    if line.startswith("VmRSS:"):
                        return int(line.split()[1])

        def settled():
            # Every subscriber gone: the lobby's fan-out is back to nothing.
            deadline = time.monotonic() + 10
            while self.s.request("GET", "/metrics")[2].count("\nvoicebot_http_connections 1\n") == 0:
                self.assertLess(time.monotonic(), deadline)
                time.sleep(0.05)

        pages(300)  # warm-up: pools and caches reach their size
        settled()
        before = rss_kb()
        pages(1000)
        settled()
        grown = rss_kb() - before
        if SANITIZE:
            # ASan keeps freed memory in its quarantine (256 MB) and pads
            # every block: RSS measures nothing there. The pages still ran,
            # and LeakSanitizer checks the server at its exit.
            return
        self.assertLess(grown, 500, f"RSS grew {grown} kB over 1,000 pages")

    def test_a_slow_subscriber_is_dropped_and_the_lobby_keeps_working(self):
        # The talker sends faster than a page may (signal_rate, SPEC §9).
        self.s.stop()
        self.s = self.start_server("--signal-rate", "1000000")
        fp = self.fake_provider()
        self.register(self.s, fp)
        room = self.create_lobby(self.s)
        # A page that never reads, with a small receive buffer.
        slow = self.ws(room["id"], rcvbuf=4096)
        talker = self.ws(room["id"])
        talker.recv_json()
        line = "y" * 2000
        dropped = False
        start = time.monotonic()
        for i in range(20000):
            talker.send_json({"type": "chat", "nick": "talker", "text": line})
            self.assertEqual(talker.recv_json()["type"], "chat")
            if i % 100 == 0 and any("messages behind; closing it" in l for l in self.s.lines):
                dropped = True
                break
        self.assertTrue(dropped, "the slow subscriber was never dropped")
        # The lobby still answers joins at once, and the live page sees them.
        t0 = time.monotonic()
        status, _, echo = self.join(self.s, room["id"], "echo", "Echo")
        self.assertEqual(status, 200, echo)
        self.assertLess(time.monotonic() - t0, 2)
        msg, _ = talker.wait_for(lambda m: m["type"] == "member_joined")
        self.assertEqual(msg["member"]["session_id"], echo["session_id"])
        # The slow page finds its connection closed once it reads.
        with self.assertRaises((Closed, OSError)):
            while True:
                slow.recv_text(timeout=5)
        self.assertLess(time.monotonic() - start, 60)

    def test_sigterm_with_open_sockets_exits_cleanly(self):
        room = self.create_lobby(self.s)
        for _ in range(3):
            self.ws(room["id"]).recv_json()
        t0 = time.monotonic()
        self.assertEqual(self.s.stop(signal.SIGTERM), 0)
        # Open lobby sockets do not hold the shutdown up.
        self.assertLess(time.monotonic() - t0, 2)
        # The pages find their sockets closed.
        with self.assertRaises((Closed, OSError)):
            self.sockets[0].recv_json(timeout=2)

    def test_under_a_base_path(self):
        s = self.start_server("--base-path", "/vb")
        status, _, room = s.request("POST", "/vb/api/lobby", {"name": "room"})
        self.assertEqual(status, 201, room)
        ws = self.ws(room["id"], server=s, prefix="/vb")
        self.assertEqual(ws.recv_json()["type"], "members")
        with self.assertRaises(Refused) as r:
            self.ws(room["id"], server=s)
        self.assertEqual(r.exception.status, 404)


class WebPageTest(ServerTestCase):
    """The lobby page is served from the binary at the base path's root."""

    def test_page_and_files(self):
        s = self.start_server()
        status, headers, body = s.request("GET", "/")
        self.assertEqual(status, 200)
        self.assertTrue(headers["content-type"].startswith("text/html"), headers)
        self.assertIn('<script src="app.js">', body)
        status, headers, body = s.request("GET", "/app.js")
        self.assertEqual(status, 200)
        self.assertTrue(headers["content-type"].startswith("text/javascript"), headers)
        self.assertIn("joinWithRetries", body)
        status, headers, _ = s.request("GET", "/style.css")
        self.assertEqual(status, 200)
        self.assertTrue(headers["content-type"].startswith("text/css"), headers)
        self.assertEqual(s.request("GET", "/index.html")[0], 200)
        self.assertEqual(s.request("GET", "/nothing.js")[::2],
                         (404, {"detail": "Not Found", "code": "not_found"}))
        self.assertEqual(s.request("POST", "/")[0], 404)

    def test_page_under_a_base_path(self):
        s = self.start_server("--base-path", "/ai-voicebot")
        status, headers, _ = s.request("GET", "/ai-voicebot")
        self.assertEqual(status, 308)
        self.assertEqual(headers["location"], "/ai-voicebot/")
        status, headers, body = s.request("GET", "/ai-voicebot/")
        self.assertEqual(status, 200)
        self.assertIn("voicebot-server", body)
        self.assertEqual(s.request("GET", "/ai-voicebot/app.js")[0], 200)
        self.assertEqual(s.request("GET", "/")[0], 404)
        self.assertEqual(s.request("GET", "/app.js")[0], 404)


if __name__ == "__main__":
    unittest.main()
