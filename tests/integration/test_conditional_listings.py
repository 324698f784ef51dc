"""Cheap polling of the listings (GET /api/bots/providers, /api/bots,
/api/lobby): a strong ETag per version, 304 to an If-None-Match naming
it, gzip for a client that accepts it. What a polling client sees on the
real server, across a restart and after a change."""

import gzip
import http.client
import json
import signal
import unittest

from harness import ServerTestCase, scaled

LISTINGS = ("/api/bots/providers", "/api/bots", "/api/lobby")


class ConditionalListingsTest(ServerTestCase):
    def raw_get(self, s, path, headers=None):
        """(status, headers, raw body bytes): no decoding of the body."""
        conn = http.client.HTTPConnection("127.0.0.1", s.port, timeout=scaled(10))
        try:
            conn.request("GET", path, headers=headers or {})
            res = conn.getresponse()
            return res.status, {k.lower(): v for k, v in res.getheaders()}, res.read()
        finally:
            conn.close()

    def populate(self, s):
        fp = self.fake_provider(bots=tuple(f"bot{i}" for i in range(30)))
        self.register(s, fp, name="voicebot-main")
        lobby = self.create_lobby(s, "room")
        return fp, lobby

    def test_a_poll_of_an_unchanged_listing_is_304_without_a_body(self):
        s = self.start_server()
        self.populate(s)
        for path in LISTINGS:
            with self.subTest(path=path):
                status, h, body = self.raw_get(s, path)
                self.assertEqual(status, 200)
                etag = h["etag"]
                status, h2, body2 = self.raw_get(s, path, {"If-None-Match": etag})
                self.assertEqual(status, 304)
                self.assertEqual(body2, b"")
                self.assertEqual(h2["etag"], etag)
                self.assertNotIn("content-length", h2)

    def test_a_change_and_a_restart_give_new_validators(self):
        s = self.start_server()
        fp, lobby = self.populate(s)
        before = {p: self.raw_get(s, p) for p in LISTINGS}
        # A join changes the member count in the lobby listing, and the
        # provider's runs: every listing moves.
        status, _, joined = self.join(s, lobby["id"], "bot1", "One")
        self.assertEqual(status, 200, joined)
        status, h, body = self.raw_get(s, "/api/lobby",
                                       {"If-None-Match": before["/api/lobby"][1]["etag"]})
        self.assertEqual(status, 200)
        self.assertEqual(json.loads(body)["lobbies"][0]["members"], 1)
        # After kill -9 and a restart the versions start again; the old
        # validators must not match whatever the new process lists.
        s.kill()
        s = self.start_server()
        for path in LISTINGS:
            with self.subTest(path=path):
                old_status, old_h, old_body = before[path]
                status, h, body = self.raw_get(s, path, {"If-None-Match": old_h["etag"]})
                self.assertEqual(status, 200)
                self.assertNotEqual(h["etag"], old_h["etag"])
                # And the new one works as before.
                status, _, _ = self.raw_get(s, path, {"If-None-Match": h["etag"]})
                self.assertEqual(status, 304)

    def test_gzip_for_a_client_that_accepts_it(self):
        s = self.start_server()
        self.populate(s)
        for path in ("/api/bots/providers", "/api/bots"):
            with self.subTest(path=path):
                _, plain_h, plain = self.raw_get(s, path)
                status, h, z = self.raw_get(s, path, {"Accept-Encoding": "gzip, deflate"})
                self.assertEqual(status, 200)
                self.assertEqual(h["content-encoding"], "gzip")
                self.assertEqual(h["vary"], "Accept-Encoding")
                self.assertEqual(gzip.decompress(z), plain)
                self.assertLess(len(z), len(plain) / 3)
                self.assertNotEqual(h["etag"], plain_h["etag"])
                status, _, _ = self.raw_get(s, path, {"Accept-Encoding": "gzip",
                                                      "If-None-Match": h["etag"]})
                self.assertEqual(status, 304)

    def test_cors_answers_vary_by_origin_and_encoding(self):
        s = self.start_server("--cors-origin", "http://page.test")
        self.populate(s)
        status, h, _ = self.raw_get(s, "/api/bots", {"Origin": "http://page.test",
                                                     "Accept-Encoding": "gzip"})
        self.assertEqual(status, 200)
        self.assertEqual(h["vary"], "Accept-Encoding, Origin")


if __name__ == "__main__":
    unittest.main()
