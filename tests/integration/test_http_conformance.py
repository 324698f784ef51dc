"""HTTP/1.1 as RFC 9110/9112 say (SPEC §5, issue 13 part 3), on raw sockets:
HEAD, Expect: 100-continue, absolute-form targets, Host, HTTP/1.0
keep-alive, percent-encoded paths, and the framing errors that smuggle
requests (duplicate lengths, Transfer-Encoding beside Content-Length, a
coding not ending in chunked, NUL and bare CR). After each, the server still
answers."""

import json
import socket
import time
import unittest

from harness import ServerTestCase, parse_raw_response, raw_exchange, read_responses


def head_of(data):
    """Status line and lower-cased headers of the first response in `data`."""
    head, _, rest = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = {}
    for line in lines[1:]:
        k, _, v = line.partition(":")
        headers[k.strip().lower()] = v.strip()
    return lines[0], headers, rest


class ConformanceTest(ServerTestCase):
    def setUp(self):
        super().setUp()
        self.s = self.start_server()

    def connect(self):
        return socket.create_connection(("127.0.0.1", self.s.port), timeout=10)

    def status_of(self, data):
        return parse_raw_response(raw_exchange(self.s.port, data))[0]

    def assertStillServing(self):
        self.assertEqual(self.s.request("GET", "/api/health")[0], 200)

    # -- HEAD ------------------------------------------------------------------

    def test_head_is_get_without_the_body(self):
        for path in (b"/api/lobby", b"/api/bots", b"/api/openapi.json",
                     b"/api/lobby/nope"):
            with self.subTest(path=path), self.connect() as sock:
                sock.sendall(b"GET " + path + b" HTTP/1.1\r\nHost: t\r\n\r\n")
                get_status, get_headers, get_body = read_responses(sock, 1)[0]
                sock.sendall(b"HEAD " + path + b" HTTP/1.1\r\nHost: t\r\n"
                             b"Connection: close\r\n\r\n")
                data = b""
                while True:
                    chunk = sock.recv(65536)
                    if not chunk:
                        break
                    data += chunk
                line, headers, rest = head_of(data)
                self.assertEqual(int(line.split(" ")[1]), get_status)
                self.assertEqual(rest, b"", "HEAD sent a body")
                self.assertEqual(headers.get("content-length"),
                                 get_headers.get("content-length"))
                self.assertEqual(int(headers["content-length"]), len(get_body))
                self.assertEqual(headers.get("content-type"),
                                 get_headers.get("content-type"))
        # Health changes (uptime), so only its status and framing are compared.
        with self.connect() as sock:
            sock.sendall(b"HEAD /api/health HTTP/1.1\r\nHost: t\r\n\r\n"
                         b"GET /api/health HTTP/1.1\r\nHost: t\r\n\r\n")
            # The HEAD answer has a Content-Length but no body: the next
            # bytes are the GET's answer.
            buf = b""
            while buf.count(b"HTTP/1.1 200") < 2:
                buf += sock.recv(65536)
            self.assertTrue(buf.startswith(b"HTTP/1.1 200"))
            _, headers, rest = head_of(buf)
            self.assertGreater(int(headers["content-length"]), 0)
            self.assertTrue(rest.startswith(b"HTTP/1.1 200"), rest[:40])

    # -- Expect: 100-continue ----------------------------------------------------

    def test_expect_100_continue_is_answered_before_the_body(self):
        body = json.dumps({"name": "expecting"}).encode()
        with self.connect() as sock:
            sock.sendall(b"POST /api/lobby HTTP/1.1\r\nHost: t\r\n"
                         b"Content-Type: application/json\r\nExpect: 100-continue\r\n"
                         b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n")
            started = time.monotonic()
            sock.settimeout(5)
            interim = sock.recv(65536)
            self.assertLess(time.monotonic() - started, 1)
            self.assertEqual(interim, b"HTTP/1.1 100 Continue\r\n\r\n")
            sock.sendall(body)
            status, _, res = read_responses(sock, 1)[0]
            self.assertEqual(status, 201, res)
        self.assertEqual([l["name"] for l in self.s.request("GET", "/api/lobby")[2]["lobbies"]],
                         ["expecting"])

    def test_expect_with_a_length_past_the_limit_is_413_at_once(self):
        with self.connect() as sock:
            sock.sendall(b"POST /api/lobby HTTP/1.1\r\nHost: t\r\n"
                         b"Content-Type: application/json\r\nExpect: 100-continue\r\n"
                         b"Content-Length: 1000000\r\n\r\n")
            sock.settimeout(5)
            data = sock.recv(65536)
            self.assertTrue(data.startswith(b"HTTP/1.1 413"), data)
            self.assertNotIn(b"100 Continue", data)
        self.assertStillServing()

    def test_an_unknown_expectation_is_417(self):
        data = raw_exchange(self.s.port,
                            b"POST /api/lobby HTTP/1.1\r\nHost: t\r\nExpect: teapot\r\n"
                            b"Content-Length: 2\r\n\r\n")
        self.assertEqual(parse_raw_response(data)[0], 417, data)
        self.assertStillServing()

    # -- targets, Host, versions -------------------------------------------------

    def test_absolute_form_targets_are_routed_by_their_path(self):
        for target in (b"http://t/api/health", b"HTTP://example.com:8000/api/health",
                       b"http://t/api/lobby?x=1"):
            with self.subTest(target=target):
                data = raw_exchange(self.s.port, b"GET " + target + b" HTTP/1.1\r\n"
                                    b"Host: t\r\nConnection: close\r\n\r\n")
                self.assertEqual(parse_raw_response(data)[0], 200, data)

    def test_http11_without_host_is_400(self):
        self.assertEqual(self.status_of(b"GET /api/health HTTP/1.1\r\n\r\n"), 400)
        self.assertEqual(self.status_of(b"GET /api/health HTTP/1.1\r\nHost: a\r\n"
                                        b"Host: b\r\n\r\n"), 400)
        # HTTP/1.0 has no Host requirement.
        self.assertEqual(self.status_of(b"GET /api/health HTTP/1.0\r\n\r\n"), 200)
        self.assertStillServing()

    def test_http10_keep_alive_is_kept_and_said(self):
        with self.connect() as sock:
            for _ in range(2):
                sock.sendall(b"GET /api/health HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
                started = time.monotonic()
                status, headers, _ = read_responses(sock, 1)[0]
                self.assertEqual(status, 200)
                self.assertEqual(headers.get("connection", "").lower(), "keep-alive")
                self.assertLess(time.monotonic() - started, 1)
        # Without keep-alive an HTTP/1.0 connection is closed after the answer.
        data = raw_exchange(self.s.port, b"GET /api/health HTTP/1.0\r\n\r\n", timeout=3)
        self.assertEqual(parse_raw_response(data)[0], 200)

    def test_ab_k_style_requests_do_not_wait_for_a_timeout(self):
        # What ApacheBench -k sends: HTTP/1.0, keep-alive, Host, Accept.
        req = (b"GET /api/health HTTP/1.0\r\nConnection: Keep-Alive\r\nHost: t\r\n"
               b"User-Agent: ApacheBench/2.3\r\nAccept: */*\r\n\r\n")
        started = time.monotonic()
        with self.connect() as sock:
            for _ in range(50):
                sock.sendall(req)
                self.assertEqual(read_responses(sock, 1)[0][0], 200)
        self.assertLess(time.monotonic() - started, 5)

    # -- percent-encoding ----------------------------------------------------------

    def test_percent_encoded_paths_are_decoded_before_routing(self):
        data = raw_exchange(self.s.port, b"GET /api/lob%62y HTTP/1.1\r\nHost: t\r\n"
                            b"Connection: close\r\n\r\n")
        status, body = parse_raw_response(data)
        self.assertEqual(status, 200, data)
        self.assertIn(b"lobbies", body)
        self.assertEqual(self.status_of(b"GET /%61pi/health HTTP/1.1\r\nHost: t\r\n"
                                        b"Connection: close\r\n\r\n"), 200)

    def test_an_encoded_slash_or_a_broken_escape_is_400(self):
        for path in (b"/api%2Flobby", b"/api/lobby/a%2fb", b"/api/lob%6", b"/api/lob%zz",
                     b"/api/lobby/%00"):
            with self.subTest(path=path):
                self.assertEqual(self.status_of(b"GET " + path + b" HTTP/1.1\r\nHost: t\r\n"
                                                b"Connection: close\r\n\r\n"), 400)
        self.assertStillServing()

    # -- framing that smuggles requests ----------------------------------------------

    def test_ambiguous_framing_is_400(self):
        cases = {
            "duplicate Content-Length": b"POST /api/lobby HTTP/1.1\r\nHost: t\r\n"
                b"Content-Length: 2\r\nContent-Length: 2\r\n\r\n{}",
            "conflicting Content-Length": b"POST /api/lobby HTTP/1.1\r\nHost: t\r\n"
                b"Content-Length: 2\r\nContent-Length: 40\r\n\r\n{}",
            "Content-Length list": b"POST /api/lobby HTTP/1.1\r\nHost: t\r\n"
                b"Content-Length: 2, 2\r\n\r\n{}",
            "Transfer-Encoding and Content-Length": b"POST /api/lobby HTTP/1.1\r\nHost: t\r\n"
                b"Content-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
            "Content-Length after Transfer-Encoding": b"POST /api/lobby HTTP/1.1\r\n"
                b"Host: t\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n0\r\n\r\n",
            "coding not ending in chunked": b"POST /api/lobby HTTP/1.1\r\nHost: t\r\n"
                b"Transfer-Encoding: chunked, gzip\r\n\r\n0\r\n\r\n",
            "gzip only": b"POST /api/lobby HTTP/1.1\r\nHost: t\r\n"
                b"Transfer-Encoding: gzip\r\n\r\n",
            "NUL in a header value": b"GET /api/health HTTP/1.1\r\nHost: t\r\nX-A: a\x00b\r\n\r\n",
            "NUL in a header name": b"GET /api/health HTTP/1.1\r\nHost: t\r\nX\x00A: a\r\n\r\n",
            "bare CR in a header value": b"GET /api/health HTTP/1.1\r\nHost: t\r\nX-A: a\rb\r\n\r\n",
            "bare CR ending a header": b"GET /api/health HTTP/1.1\r\nHost: t\rX-A: b\r\n\r\n",
        }
        for name, req in cases.items():
            with self.subTest(name):
                data = raw_exchange(self.s.port, req)
                self.assertEqual(parse_raw_response(data)[0], 400, data)
                # The connection is closed after the answer: nothing smuggled.
                self.assertEqual(data.count(b"HTTP/1.1 "), 1, data)
        self.assertEqual(self.s.request("GET", "/api/lobby")[2]["lobbies"], [])
        self.assertStillServing()

    def test_a_request_line_over_the_header_limit_is_431(self):
        req = b"GET /api/health?" + b"a" * 9000 + b" HTTP/1.1\r\nHost: t\r\n\r\n"
        with self.connect() as sock:
            try:
                sock.sendall(req)
            except (BrokenPipeError, ConnectionResetError):
                pass
            data = b""
            sock.settimeout(5)
            try:
                while True:
                    chunk = sock.recv(65536)
                    if not chunk:
                        break
                    data += chunk
            except (ConnectionResetError, socket.timeout):
                pass
        self.assertEqual(parse_raw_response(data)[0], 431, data)
        self.assertStillServing()


if __name__ == "__main__":
    unittest.main()
