"""Behind a reverse proxy (SPEC §6, docs/deployment.md): X-Forwarded-For
and X-Forwarded-Proto are believed from --trusted-proxy addresses only; the
client they name is the one logged and the one the per-address cap counts;
--public-url is the server_url providers get in joins. The real server on
loopback, with this process playing the proxy (the nginx test is
test_nginx_proxy)."""

import http.client
import json
import re
import socket
import threading
import unittest

from harness import ServerTestCase, scaled, wait_until


class ProxyHeadersTest(ServerTestCase):
    def get(self, s, path, headers):
        conn = http.client.HTTPConnection("127.0.0.1", s.port, timeout=scaled(10))
        try:
            conn.request("GET", path, headers=headers)
            res = conn.getresponse()
            return res.status, res.read()
        finally:
            conn.close()

    def test_a_trusted_proxy_names_the_client_and_the_scheme(self):
        s = self.start_server("--trusted-proxy", "127.0.0.1", "--trusted-proxy", "10.0.0.0/8")
        status, _ = self.get(s, "/api/health?a=1", {
            "X-Forwarded-For": "1.1.1.1, 203.0.113.7, 10.2.3.4",
            "X-Forwarded-Proto": "https"})
        self.assertEqual(status, 200)
        # The right-most entry that is not a trusted proxy: the forged
        # 1.1.1.1 on the left is not believed.
        s.wait_for_line(r"GET /api/health\?a=1 200 [0-9.]+ ms from 203\.0\.113\.7 "
                        r"via 127\.0\.0\.1 \(https\)")
        # Without the headers: the proxy itself.
        self.get(s, "/api/health?a=2", {})
        s.wait_for_line(r"GET /api/health\?a=2 200 [0-9.]+ ms from 127\.0\.0\.1 "
                        r"via 127\.0\.0\.1 \(http\)")

    def test_from_an_untrusted_address_the_headers_are_ignored(self):
        # Only 10.0.0.1 is trusted: this process (127.0.0.1) forges them.
        s = self.start_server("--trusted-proxy", "10.0.0.1")
        self.get(s, "/api/health?forged=1", {"X-Forwarded-For": "203.0.113.7",
                                             "X-Forwarded-Proto": "https"})
        s.wait_for_line(r"GET /api/health\?forged=1 200 [0-9.]+ ms from 127\.0\.0\.1$")
        self.assertNotIn("203.0.113.7", s.log())

    def test_the_per_address_cap_counts_forwarded_clients(self):
        cap = 2
        s = self.start_server("--trusted-proxy", "127.0.0.1",
                              "--max-connections-per-address", str(cap),
                              "--dispatch-timeout", "10")
        fp = self.fake_provider()
        self.register(s, fp)
        lobby = self.create_lobby(s, "capped")
        # The proxy's own address is not capped: more connections than the
        # cap stay open and are served.
        socks = [socket.create_connection(("127.0.0.1", s.port)) for _ in range(cap + 3)]
        try:
            for i, k in enumerate(socks):
                k.sendall(b"GET /api/health HTTP/1.1\r\nHost: x\r\n"
                          b"X-Forwarded-For: 198.51.100.%d\r\n\r\n" % (10 + i))
            for k in socks:
                k.settimeout(scaled(5))
                line = b""
                while b"\r\n" not in line:
                    chunk = k.recv(64)
                    self.assertTrue(chunk, f"closed after {line!r}")
                    line += chunk
                self.assertTrue(line.startswith(b"HTTP/1.1 200"), line)
        finally:
            for k in socks:
                k.close()
        # One forwarded client with `cap` requests in flight (joins held at
        # the provider): its next one is refused with 429; another client
        # is not.
        fp.mode = "hang"
        answers = []

        def held(nick):
            answers.append(s.request("POST", f"/api/bots/echo/join",
                                     {"lobby_id": lobby["id"], "nick": nick},
                                     headers={"X-Forwarded-For": "203.0.113.7"}, timeout=30))
        threads = [threading.Thread(target=held, args=(f"n{i}",)) for i in range(cap)]
        for t in threads:
            t.start()
        fp.wait_for(lambda calls: len([c for c in calls if c[1].endswith("/join")]) == cap)
        status, headers, body = s.request("GET", "/api/lobby",
                                          headers={"X-Forwarded-For": "203.0.113.7"})
        self.assertEqual(status, 429, body)
        self.assertEqual(body["code"], "too_many_connections")
        self.assertEqual(headers.get("retry-after"), "1")
        status, _, _ = s.request("GET", "/api/lobby",
                                 headers={"X-Forwarded-For": "198.51.100.1"})
        self.assertEqual(status, 200)
        fp.mode = "ok"
        fp.release()
        for t in threads:
            t.join(scaled(30))
        # The held joins were given back their slots: the client is served.
        wait_until(lambda: s.request("GET", "/api/lobby",
                                     headers={"X-Forwarded-For": "203.0.113.7"})[0] == 200,
                   5, "the client served again")

    def test_public_url_is_the_server_url_in_joins(self):
        s = self.start_server("--public-url", "https://voice.example/ai-voicebot/")
        fp = self.fake_provider()
        self.register(s, fp)
        lobby = self.create_lobby(s, "public")
        status, _, res = self.join(s, lobby["id"], "echo", "Echo")
        self.assertEqual(status, 200, res)
        join = fp.joins()[-1]
        self.assertEqual(join[2]["server_url"], "https://voice.example/ai-voicebot")
        # Without it: the listener's own address, with the base path.
        s2 = self.start_server("--base-path", "/vb")
        fp2 = self.fake_provider()
        status, _, res = s2.request("POST", "/vb/api/bots/providers/register",
                                    {"name": "two", "base_url": fp2.base_url,
                                     "bots": [{"name": "echo"}]})
        self.assertEqual(status, 200, res)
        status, _, lob = s2.request("POST", "/vb/api/lobby", {"name": "r"})
        status, _, res = s2.request("POST", "/vb/api/bots/echo/join", {"lobby_id": lob["id"]})
        self.assertEqual(status, 200, res)
        self.assertEqual(fp2.joins()[-1][2]["server_url"],
                         f"http://127.0.0.1:{s2.port}/vb")

    def test_bad_options_exit_2(self):
        from harness import run_server_cli
        for args in (["--trusted-proxy", "proxy.example"],
                     ["--public-url", "voice.example"]):
            with self.subTest(args=args):
                res = run_server_cli(args + ["--port", "0", "--caf-port", "0"],
                                     self.tmp.path)
                self.assertEqual(res.returncode, 2, res.stderr)
                self.assertIn(args[0].lstrip("-").replace("-", "_").replace("trusted_proxy", "trusted proxy"),
                              res.stderr)


if __name__ == "__main__":
    unittest.main()
