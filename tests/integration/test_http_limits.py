"""The HTTP front end on raw sockets (SPEC §2 limits, §5): body and header
limits, chunked HTTP/1.0, pipelining, garbage, keep-alive, read timeout and
the connection cap. After every abuse the server still answers."""

import http.client
import json
import socket
import time
import unittest

from harness import (NO_QUOTAS, ServerTestCase, parse_raw_response, raw_exchange,
                     read_responses, read_until_closed)

HEALTH = b"GET /api/health HTTP/1.1\r\nHost: t\r\n\r\n"
HEALTH_CLOSE = b"GET /api/health HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n"


def post(path, body, extra=b"", version=b"1.1"):
    if isinstance(body, str):
        body = body.encode()
    return (b"POST " + path.encode() + b" HTTP/" + version + b"\r\nHost: t\r\n"
            b"Content-Type: application/json\r\nContent-Length: "
            + str(len(body)).encode() + b"\r\n" + extra + b"\r\n" + body)


class LimitsTest(ServerTestCase):
    def setUp(self):
        super().setUp()
        self.s = self.start_server()

    def assertStillServing(self):
        status, _, body = self.s.request("GET", "/api/health")
        self.assertEqual(status, 200, body)
        return body

    def lobby_names(self, server=None):
        return [l["name"] for l in (server or self.s).request("GET", "/api/lobby")[2]["lobbies"]]

    # -- body ---------------------------------------------------------------

    def test_body_over_64k_is_413(self):
        big = json.dumps({"name": "big", "pad": "x" * (64 * 1024)})
        status, headers, body = self.s.request("POST", "/api/lobby", big,
                                               {"Content-Type": "application/json"})
        self.assertEqual(status, 413, body)
        self.assertEqual(body["code"], "body_too_large")
        self.assertEqual(self.lobby_names(), [])
        self.assertStillServing()

    def test_body_at_the_limit_is_read(self):
        head = '{"name": "fits", "pad": "'
        body = head + "x" * (64 * 1024 - len(head) - 2) + '"}'
        self.assertEqual(len(body), 64 * 1024)
        status, _, res = self.s.request("POST", "/api/lobby", body,
                                        {"Content-Type": "application/json"})
        self.assertEqual(status, 201, res)
        self.assertEqual(self.lobby_names(), ["fits"])

    def test_announced_large_body_is_refused_before_it_is_sent(self):
        # Only the headers: the server answers without waiting for the body.
        with socket.create_connection(("127.0.0.1", self.s.port), timeout=10) as sock:
            sock.sendall(b"POST /api/lobby HTTP/1.1\r\nHost: t\r\n"
                         b"Content-Length: 100000000\r\n\r\n")
            [(status, headers, body)] = read_responses(sock, 1)
        self.assertEqual(status, 413)
        self.assertEqual(json.loads(body)["code"], "body_too_large")
        self.assertStillServing()

    def test_chunked_body_over_the_limit_is_413(self):
        chunk = b"x" * 16384
        req = (b"POST /api/lobby HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n"
               + (b"4000\r\n" + chunk + b"\r\n") * 5 + b"0\r\n\r\n")
        status, body = parse_raw_response(raw_exchange(self.s.port, req))
        self.assertEqual(status, 413, body)
        self.assertEqual(self.lobby_names(), [])
        self.assertStillServing()

    # -- headers ------------------------------------------------------------

    def test_header_block_over_8k_is_431(self):
        req = b"GET /api/health HTTP/1.1\r\nHost: t\r\nX-Big: " + b"a" * 9000 + b"\r\n\r\n"
        status, body = parse_raw_response(raw_exchange(self.s.port, req))
        self.assertEqual(status, 431, body)
        self.assertEqual(json.loads(body)["code"], "headers_too_large")
        # Many small headers count together.
        many = b"".join(b"X-H%d: %s\r\n" % (i, b"v" * 90) for i in range(100))
        req = b"GET /api/health HTTP/1.1\r\nHost: t\r\n" + many + b"\r\n"
        status, body = parse_raw_response(raw_exchange(self.s.port, req))
        self.assertEqual(status, 431, body)
        self.assertStillServing()

    def test_header_block_under_8k_is_fine(self):
        req = (b"GET /api/health HTTP/1.1\r\nHost: t\r\nConnection: close\r\nX-Big: "
               + b"a" * 7000 + b"\r\n\r\n")
        status, body = parse_raw_response(raw_exchange(self.s.port, req))
        self.assertEqual(status, 200, body)

    # -- framing ------------------------------------------------------------

    def test_chunked_http_1_0_is_400(self):
        req = (b"POST /api/lobby HTTP/1.0\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n"
               b"f\r\n{\"name\": \"c10\"}\r\n0\r\n\r\n")
        data = raw_exchange(self.s.port, req)
        status, body = parse_raw_response(data)
        self.assertEqual(status, 400, data)
        self.assertEqual(self.lobby_names(), [])
        self.assertStillServing()

    def test_chunked_http_1_1_is_read(self):
        req = (b"POST /api/lobby HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n"
               b"Content-Type: application/json\r\nConnection: close\r\n\r\n"
               b"9\r\n{\"name\": \r\n8\r\n\"chunky\"\r\n1\r\n}\r\n0\r\n\r\n")
        status, body = parse_raw_response(raw_exchange(self.s.port, req))
        self.assertEqual(status, 201, body)
        self.assertEqual(self.lobby_names(), ["chunky"])

    def test_ambiguous_framing_is_refused(self):
        cases = [
            # Content-Length and chunked together (request smuggling).
            b"POST /api/lobby HTTP/1.1\r\nHost: t\r\nContent-Length: 4\r\n"
            b"Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n" + HEALTH_CLOSE,
            # Two different lengths.
            b"POST /api/lobby HTTP/1.1\r\nHost: t\r\nContent-Length: 4\r\n"
            b"Content-Length: 15\r\n\r\n{\"name\": \"dup\"}",
            # Not a number.
            b"POST /api/lobby HTTP/1.1\r\nHost: t\r\nContent-Length: abc\r\n\r\n",
            b"POST /api/lobby HTTP/1.1\r\nHost: t\r\nContent-Length: -1\r\n\r\n",
            # Two Transfer-Encoding fields.
            b"POST /api/lobby HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n"
            b"Transfer-Encoding: gzip\r\n\r\n0\r\n\r\n",
        ]
        for req in cases:
            with self.subTest(req=req[:90]):
                data = raw_exchange(self.s.port, req)
                status, _ = parse_raw_response(data)
                # 400 (or closed) and nothing after it: no second response.
                self.assertIn(status, (400, None), data)
                self.assertEqual(data.count(b"HTTP/1.1 "), 1 if status else 0, data)
        self.assertEqual(self.lobby_names(), [])
        self.assertStillServing()

    # RFC 9112 §6.3: a transfer coding that does not end in chunked leaves the
    # body's length unknown: 400 and close, or the rest would be smuggled in.
    def test_transfer_encoding_without_final_chunked_is_400_and_closes(self):
        smuggled = post("/api/lobby", '{"name": "smuggled"}', b"Connection: close\r\n")
        for te in [b"gzip", b"identity", b"chunked, gzip", b"xchunked"]:
            with self.subTest(te=te):
                req = (b"POST /api/lobby HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: " + te
                       + b"\r\n\r\n" + smuggled)
                data = raw_exchange(self.s.port, req)
                self.assertEqual(parse_raw_response(data)[0], 400, data)
                self.assertEqual(data.count(b"HTTP/1.1 "), 1, data)
        self.assertEqual(self.lobby_names(), [])

    # -- pipelining ---------------------------------------------------------

    def test_pipelined_requests_are_answered_in_order(self):
        reqs = (HEALTH
                + b"GET /api/nothing HTTP/1.1\r\nHost: t\r\n\r\n"
                + post("/api/lobby", '{"name": "piped"}')
                + post("/api/lobby", '{}')
                + b"GET /api/lobby HTTP/1.1\r\nHost: t\r\n\r\n"
                + b"DELETE /api/health HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
        with socket.create_connection(("127.0.0.1", self.s.port), timeout=10) as sock:
            sock.sendall(reqs)
            answers = read_responses(sock, 6)
            self.assertEqual(read_until_closed(sock), b"")
        self.assertEqual([a[0] for a in answers], [200, 404, 201, 422, 200, 405])
        self.assertEqual(json.loads(answers[0][2])["status"], "ok")
        self.assertEqual(json.loads(answers[2][2])["name"], "piped")
        self.assertEqual([l["name"] for l in json.loads(answers[4][2])["lobbies"]], ["piped"])
        self.assertEqual(answers[5][1]["allow"], "GET")

    def test_a_slow_request_holds_back_the_ones_behind_it(self):
        fp = self.fake_provider()
        self.register(self.s, fp)
        lobby = self.create_lobby(self.s)["id"]
        fp.mode = "hold"
        reqs = (post("/api/bots/echo/join", json.dumps({"lobby_id": lobby, "nick": "slow"}))
                + HEALTH
                + b"GET /api/lobby/" + lobby.encode() + b" HTTP/1.1\r\nHost: t\r\n\r\n")
        with socket.create_connection(("127.0.0.1", self.s.port), timeout=10) as sock:
            sock.sendall(reqs)
            fp.wait_for(lambda calls: len(calls) == 1)
            # The join waits for the provider, and so does everything behind it.
            sock.setblocking(False)
            try:
                early = sock.recv(65536)
            except BlockingIOError:
                early = b""
            sock.setblocking(True)
            self.assertEqual(early, b"")
            fp.gate.set()
            answers = read_responses(sock, 3)
        self.assertEqual([a[0] for a in answers], [200, 200, 200])
        self.assertEqual(json.loads(answers[0][2])["nick"], "slow")
        self.assertIn("uptime_s", json.loads(answers[1][2]))
        self.assertEqual([x["nick"] for x in json.loads(answers[2][2])["sessions"]], ["slow"])

    def test_many_pipelined_requests(self):
        n = 200
        s = self.start_server(*NO_QUOTAS)  # 200 lobbies from one client
        with socket.create_connection(("127.0.0.1", s.port), timeout=20) as sock:
            sock.sendall(b"".join(post("/api/lobby", json.dumps({"name": "L%03d" % i}))
                                  for i in range(n)))
            answers = read_responses(sock, n, timeout=20)
        names = [json.loads(a[2])["name"] for a in answers]
        self.assertEqual(names, ["L%03d" % i for i in range(n)])
        self.assertEqual(len(self.lobby_names(s)), n)

    # -- garbage ------------------------------------------------------------

    def test_garbage_is_400_or_closed_and_the_server_goes_on(self):
        cases = [
            b"\x00\x01\x02\x03garbage\r\n\r\n",
            b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + bytes(range(256)),  # TLS hello
            b"HELLO\r\n\r\n",
            b"GET /api/health HTTP/9.9\r\n\r\n",
            b"GET  /api/health HTTP/1.1\r\n\r\n",
            b"GET /api/health\r\n\r\n",
            b"GET /api/health HTTP/1.1\r\nNo colon here\r\n\r\n",
            b"GET /api/health HTTP/1.1\r\nHost: t\r\nX: a\x00b\r\n\r\n",
            b"GET /api/health HTTP/1.1\r\n Folded: header\r\n\r\n",
            b"POST /api/lobby HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n"
            b"zz\r\nxx\r\n0\r\n\r\n",
            b"G" * 20000 + b" / HTTP/1.1\r\n\r\n",
            b"\r\n" * 5000,
            bytes(range(256)) * 40,
        ]
        for req in cases:
            with self.subTest(req=req[:40]):
                data = raw_exchange(self.s.port, req)
                status, _ = parse_raw_response(data)
                self.assertIn(status, (400, 413, 431, None), data[:200])
                self.assertStillServing()
        self.assertEqual(self.lobby_names(), [])

    def test_invalid_utf8_and_odd_paths(self):
        data = raw_exchange(self.s.port, post("/api/lobby", b'{"name": "\xc3\x28"}',
                                              b"Connection: close\r\n"))
        self.assertEqual(parse_raw_response(data)[0], 400, data)
        for path in [b"/api/lobby/%zz", b"/api/lobby/%", b"/api/lobby/%00",
                     b"/api/lobby/" + b"x" * 4000, b"/api/lobby/\xff\xfe"]:
            with self.subTest(path=path[:40]):
                data = raw_exchange(self.s.port, b"GET " + path + b" HTTP/1.1\r\nHost: t\r\n"
                                    b"Connection: close\r\n\r\n")
                status, body = parse_raw_response(data)
                self.assertIn(status, (400, 404, 422), data[:300])
        self.assertStillServing()

    def test_half_sent_request_then_hang_up(self):
        with socket.create_connection(("127.0.0.1", self.s.port), timeout=5) as sock:
            sock.sendall(b"POST /api/lobby HTTP/1.1\r\nHost: t\r\nContent-Length: 50\r\n\r\n"
                         b'{"name": "half')
        with socket.create_connection(("127.0.0.1", self.s.port), timeout=5) as sock:
            sock.sendall(b"GET /api/health HTTP/1.1\r\nHost: t\r\nContent-")
            sock.shutdown(socket.SHUT_WR)
            self.assertIn(parse_raw_response(read_until_closed(sock))[0], (400, None))
        self.assertEqual(self.lobby_names(), [])
        self.assertStillServing()

    # -- keep-alive ---------------------------------------------------------

    def test_keep_alive_on_a_raw_socket(self):
        with socket.create_connection(("127.0.0.1", self.s.port), timeout=10) as sock:
            for i in range(20):
                sock.sendall(HEALTH if i % 2 else post("/api/lobby", '{"name": "k"}'))
                [(status, headers, _)] = read_responses(sock, 1)
                self.assertEqual(status, 200 if i % 2 else (201 if i == 0 else 200))
                self.assertNotEqual(headers.get("connection"), "close")

    def test_http_1_0_closes_unless_asked_to_keep_alive(self):
        data = raw_exchange(self.s.port, b"GET /api/health HTTP/1.0\r\n\r\n")
        self.assertEqual(parse_raw_response(data)[0], 200)  # and then closed: raw_exchange returned
        with socket.create_connection(("127.0.0.1", self.s.port), timeout=10) as sock:
            ka = b"GET /api/health HTTP/1.0\r\nConnection: keep-alive\r\n\r\n"
            sock.sendall(ka)
            self.assertEqual(read_responses(sock, 1)[0][0], 200)
            sock.sendall(ka)
            self.assertEqual(read_responses(sock, 1)[0][0], 200)

    def test_error_answers_keep_the_connection(self):
        conn = http.client.HTTPConnection("127.0.0.1", self.s.port, timeout=10)
        try:
            for method, path, body, want in [("GET", "/nope", None, 404),
                                             ("POST", "/api/lobby", "{x", 400),
                                             ("POST", "/api/lobby", "{}", 422),
                                             ("PATCH", "/api/lobby", None, 405),
                                             ("GET", "/api/health", None, 200)]:
                conn.request(method, path, body=body)
                res = conn.getresponse()
                res.read()
                self.assertEqual(res.status, want)
                self.assertFalse(res.will_close)
            sock = conn.sock
            conn.request("GET", "/api/health")
            conn.getresponse().read()
            self.assertIs(conn.sock, sock)
        finally:
            conn.close()


class TimeoutsAndCapsTest(ServerTestCase):
    def test_slow_and_idle_connections_are_closed_after_the_read_timeout(self):
        s = self.start_server("--read-timeout", "1")
        slow = socket.create_connection(("127.0.0.1", s.port), timeout=10)
        idle = socket.create_connection(("127.0.0.1", s.port), timeout=10)
        try:
            slow.sendall(b"GET /api/health HTTP/1.1\r\nHost: t\r\n")
            started = time.monotonic()
            self.assertIn(parse_raw_response(read_until_closed(slow, 8))[0], (None, 408))
            self.assertEqual(read_until_closed(idle, 8), b"")
            self.assertLess(time.monotonic() - started, 6)
            # A keep-alive connection idle after a request is closed as well.
            with socket.create_connection(("127.0.0.1", s.port), timeout=10) as ka:
                ka.sendall(HEALTH)
                self.assertEqual(read_responses(ka, 1)[0][0], 200)
                self.assertEqual(read_until_closed(ka, 8), b"")
        finally:
            slow.close()
            idle.close()
        self.assertEqual(s.request("GET", "/api/health")[0], 200)

    def test_connections_past_the_cap_are_closed(self):
        s = self.start_server("--max-connections", "2")
        a = socket.create_connection(("127.0.0.1", s.port), timeout=10)
        b = socket.create_connection(("127.0.0.1", s.port), timeout=10)
        try:
            # Both are served (so both are accepted and counted).
            for sock in (a, b):
                sock.sendall(HEALTH)
                self.assertEqual(read_responses(sock, 1)[0][0], 200)
            data = raw_exchange(s.port, HEALTH_CLOSE)
            self.assertEqual(data, b"")
            s.wait_for_line(r"connection refused: 2 connections open")
        finally:
            a.close()
            b.close()
        # Once they are gone, new connections are served again. The count
        # drops when the server notices the close: poll with a deadline.
        deadline = time.monotonic() + 10
        while True:
            data = raw_exchange(s.port, HEALTH_CLOSE)
            if parse_raw_response(data)[0] == 200:
                break
            self.assertLess(time.monotonic(), deadline, "never served again")
            time.sleep(0.05)


class StateLimitsTest(ServerTestCase):
    """max_lobbies and max_members_per_lobby: clients cannot grow the state
    without bound; past a limit the answer is 409 and nothing changes."""

    def test_lobbies_and_members_past_their_limits_are_409(self):
        provider = self.fake_provider(("echo",))
        s = self.start_server("--max-lobbies", "2", "--max-members-per-lobby", "2")
        self.register(s, provider)
        a = s.request("POST", "/api/lobby", {"name": "a"})
        self.assertEqual(a[0], 201)
        self.assertEqual(s.request("POST", "/api/lobby", {"name": "b"})[0], 201)
        status, _, body = s.request("POST", "/api/lobby", {"name": "c"})
        self.assertEqual((status, body["code"]), (409, "too_many_lobbies"), body)
        self.assertEqual(len(s.request("GET", "/api/lobby")[2]["lobbies"]), 2)
        # A known name is still its lobby.
        self.assertEqual(s.request("POST", "/api/lobby", {"name": "a"})[0], 200)
        lobby_id = a[2]["id"]
        path = f"/api/lobby/{lobby_id}/sessions"
        self.assertEqual(s.request("POST", path, {"nick": "alice"})[0], 201)
        join = s.request("POST", "/api/bots/echo/join", {"lobby_id": lobby_id, "nick": "Echo"})
        self.assertEqual(join[0], 200, join)
        status, _, body = s.request("POST", path, {"nick": "bob"})
        self.assertEqual((status, body["code"]), (409, "lobby_is_full"), body)
        status, _, body = s.request("POST", "/api/bots/echo/join",
                                    {"lobby_id": lobby_id, "nick": "Echo 2"})
        self.assertEqual((status, body["code"]), (409, "lobby_is_full"), body)
        self.assertEqual(len(provider.joins()), 1)
        self.assertEqual(len(s.request("GET", f"/api/lobby/{lobby_id}")[2]["sessions"]), 2)
        # After a restart the limits hold over what was loaded.
        s.stop()
        s.start(same_ports=True)
        self.assertEqual(s.request("POST", "/api/lobby", {"name": "c"})[0], 409)


if __name__ == "__main__":
    unittest.main()
