"""Slow and greedy clients (SPEC §5, issue 13 part 4): the header timeout is
shorter than the whole-request timeout, and one client address cannot take
every connection slot. Clients bind distinct loopback source addresses
(all of 127.0.0.0/8 is loopback)."""

import socket
import time
import unittest

from harness import ServerTestCase, parse_raw_response, read_responses, read_until_closed

HEALTH = b"GET /api/health HTTP/1.1\r\nHost: t\r\n\r\n"


def connect_from(source, port):
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.settimeout(10)
    sock.bind((source, 0))
    sock.connect(("127.0.0.1", port))
    return sock


def health_from(source, port):
    with connect_from(source, port) as sock:
        sock.sendall(b"GET /api/health HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
        return parse_raw_response(read_until_closed(sock, 5))[0]


class SlowClientsTest(ServerTestCase):
    def test_headers_are_cut_off_at_the_header_timeout(self):
        s = self.start_server("--header-timeout", "1", "--read-timeout", "6")
        with connect_from("127.0.0.2", s.port) as slow:
            slow.sendall(b"GET /api/health HTTP/1.1\r\nHost: t\r\n")
            started = time.monotonic()
            # Trickle a header line now and then (slowloris): still cut off.
            closed = False
            while time.monotonic() - started < 5:
                try:
                    slow.sendall(b"X-A: b\r\n")
                except (BrokenPipeError, ConnectionResetError):
                    closed = True
                    break
                slow.settimeout(0.3)
                try:
                    if slow.recv(65536) == b"":
                        closed = True
                        break
                except socket.timeout:
                    pass
                except ConnectionResetError:
                    closed = True
                    break
            self.assertTrue(closed, "slowloris connection stayed open")
            self.assertLess(time.monotonic() - started, 3)
        self.assertEqual(health_from("127.0.0.3", s.port), 200)

    def test_a_body_may_take_longer_than_the_header_timeout(self):
        s = self.start_server("--header-timeout", "1", "--read-timeout", "6")
        body = b'{"name": "slow body"}'
        with connect_from("127.0.0.2", s.port) as sock:
            sock.sendall(b"POST /api/lobby HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\n"
                         b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n")
            for i in range(0, len(body), 8):
                time.sleep(0.5)
                sock.sendall(body[i:i + 8])
            self.assertEqual(read_responses(sock, 1)[0][0], 201)

    def test_a_slow_body_is_cut_off_at_the_read_timeout(self):
        s = self.start_server("--header-timeout", "1", "--read-timeout", "2")
        with connect_from("127.0.0.2", s.port) as sock:
            sock.sendall(b"POST /api/lobby HTTP/1.1\r\nHost: t\r\nContent-Length: 100\r\n\r\n{")
            started = time.monotonic()
            read_until_closed(sock, 8)
            self.assertLess(time.monotonic() - started, 5)
        self.assertEqual(health_from("127.0.0.3", s.port), 200)

    def test_one_address_cannot_take_every_slot(self):
        s = self.start_server("--max-connections", "20", "--max-connections-per-address", "4")
        greedy = []
        try:
            for _ in range(4):
                sock = connect_from("127.0.0.2", s.port)
                sock.sendall(HEALTH)
                self.assertEqual(read_responses(sock, 1)[0][0], 200)
                greedy.append(sock)
            # The fifth from the same address is closed at once, unanswered.
            with connect_from("127.0.0.2", s.port) as extra:
                try:
                    extra.sendall(HEALTH)
                except (BrokenPipeError, ConnectionResetError):
                    pass
                self.assertEqual(read_until_closed(extra, 5), b"")
            s.wait_for_line(r"connection refused: 127\.0\.0\.2 has 4 connections open")
            # Another address is served.
            self.assertEqual(health_from("127.0.0.3", s.port), 200)
            # The greedy address's open connections still work.
            greedy[0].sendall(HEALTH)
            self.assertEqual(read_responses(greedy[0], 1)[0][0], 200)
        finally:
            for sock in greedy:
                sock.close()
        # Once they are closed, that address is served again.
        deadline = time.monotonic() + 10
        while health_from("127.0.0.2", s.port) != 200:
            self.assertLess(time.monotonic(), deadline, "never served again")
            time.sleep(0.05)

    def test_a_reader_too_slow_is_cut_off_at_the_write_timeout(self):
        s = self.start_server("--write-timeout", "1")
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        # A tiny receive window, and requests pipelined past what the
        # kernel's buffers hold, so a response stays unsent; nothing is read.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        sock.bind(("127.0.0.2", 0))
        sock.connect(("127.0.0.1", s.port))
        request = b"GET /api/openapi.json HTTP/1.1\r\nHost: t\r\n\r\n"
        sock.setblocking(False)
        sent = 0
        for _ in range(400):
            try:
                sent += sock.send(request)
            except BlockingIOError:
                break

        def open_connections():
            text = s.request("GET", "/metrics")[2]
            for line in text.splitlines():
                if line.startswith("voicebot_http_connections "):
                    return float(line.split()[1])
            return -1

        self.assertGreater(sent, 0)
        # The stalled writer closes: only the metrics request's own
        # connection is left (awaited; the write timeout is 1 s).
        started = time.monotonic()
        while open_connections() > 1:
            self.assertLess(time.monotonic() - started, 15, "the slow reader was never cut off")
            time.sleep(0.1)
        sock.close()
        # Logged and counted as not delivered, not as answered.
        s.wait_for_line(r"GET /api/openapi.json 200 not delivered after [0-9.]+ ms: write timeout")
        text = s.request("GET", "/metrics")[2]
        self.assertRegex(text, r"\nvoicebot_http_responses_abandoned_total [1-9]")
        self.assertEqual(health_from("127.0.0.3", s.port), 200)


if __name__ == "__main__":
    unittest.main()
