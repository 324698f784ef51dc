"""Idempotent joins (SPEC §7): an Idempotency-Key header on
POST /api/bots/{bot}/join makes a retry return the first answer (same
status, same body) for idempotency_ttl, also after the server was killed
with SIGKILL and started again, and also after the member left; the same key
with another request is 422 idempotency_key_reused; an error answer is not
kept. The real server, a fake HTTP provider in this process, one temporary
data dir shared by the restarts of a test."""

import glob
import os
import signal
import threading
import unittest

from harness import ServerTestCase

KEY = "Idempotency-Key"


class IdempotencyTest(ServerTestCase):
    def keyed_join(self, s, key, lobby_id, bot="echo", **body):
        body = dict(body, lobby_id=lobby_id)
        headers = {} if key is None else {KEY: key}
        return s.request("POST", f"/api/bots/{bot}/join", body, headers=headers)

    def assert_replayed(self, s, fp, key, lobby_id, first, joins):
        """A retry with `key` gets the first answer (status and body) and
        the provider has had `joins` joins, none new."""
        again = self.keyed_join(s, key, lobby_id, nick="Echo")
        self.assertEqual((again[0], again[2]), (first[0], first[2]))
        self.assertEqual(len(fp.joins()), joins)

    def setup_server(self, *args):
        fp = self.fake_provider(bots=("echo", "greeter"))
        s = self.start_server(*args)
        pid = self.register(s, fp)
        lobby = self.create_lobby(s, "room")
        return fp, s, pid, lobby

    def test_a_retry_after_kill_9_and_after_the_member_left_gets_the_first_answer(self):
        fp, s, pid, lobby = self.setup_server()
        first = self.keyed_join(s, "join-1", lobby["id"], nick="Echo")
        self.assertEqual(first[0], 200, first)
        self.assertEqual(len(fp.joins()), 1)
        # A retry before the restart: the same answer, no call to the provider.
        self.assert_replayed(s, fp, "join-1", lobby["id"], first, 1)

        s.kill()
        self.assertEqual(s.proc.returncode, -signal.SIGKILL)
        s = self.start_server()
        self.assertRegex(s.log(), r"loaded 1 idempotency keys")

        # The member leaves: the lobby is empty.
        status, _, left = s.request("POST", "/api/bots/leave",
                                    {"session_id": first[2]["session_id"],
                                     "lobby_id": lobby["id"]})
        self.assertEqual(status, 200, left)
        self.assertEqual(self.sessions(s, lobby["id"]), [])
        calls = len(fp.joins())

        # The retry gets the first answer, byte for byte the same JSON, and
        # joins nothing.
        self.assert_replayed(s, fp, "join-1", lobby["id"], first, calls)
        self.assertEqual(self.sessions(s, lobby["id"]), [])

        # The same key with another request: 422, and nothing joins.
        other_lobby = self.create_lobby(s, "other room")
        for bot, body in [("echo", {"nick": "Someone else"}),
                          ("echo", {"lobby_id": other_lobby["id"], "nick": "Echo"}),
                          ("greeter", {"nick": "Echo"}),
                          ("echo", {"nick": "Echo", "provider_id": pid}),
                          ("echo", {})]:
            body.setdefault("lobby_id", lobby["id"])
            answer = s.request("POST", f"/api/bots/{bot}/join", body,
                               headers={KEY: "join-1"})
            self.assertError(answer, 422, "idempotency_key_reused")
        self.assertEqual(len(fp.joins()), calls)
        self.assertEqual(self.sessions(s, lobby["id"]), [])

        # Another key, and no key, are ordinary joins.
        fresh = self.keyed_join(s, "join-2", lobby["id"], nick="Echo")
        self.assertEqual(fresh[0], 200, fresh)
        self.assertNotEqual(fresh[2]["session_id"], first[2]["session_id"])
        self.assertEqual(len(fp.joins()), calls + 1)

    def test_keys_survive_a_clean_restart_through_the_final_snapshot(self):
        fp, s, pid, lobby = self.setup_server()
        first = self.keyed_join(s, "k", lobby["id"], nick="Echo")
        self.assertEqual(first[0], 200, first)
        self.assertEqual(s.stop(signal.SIGTERM), 0, s.log())
        self.assertTrue(os.path.exists(self.data("idempotency.json")))
        self.assertRegex(s.log(), r"final idempotency key snapshot written")
        s = self.start_server()
        self.assert_replayed(s, fp, "k", lobby["id"], first, 1)
        self.assertEqual(glob.glob(self.data("*.tmp")), [])

    def test_an_error_answer_is_not_kept_and_a_retry_joins_again(self):
        fp, s, pid, lobby = self.setup_server()
        # A 4xx from the provider: a rejection (502), the provider stays online.
        fp.mode, fp.reject_status = "reject", 409
        rejected = self.keyed_join(s, "k", lobby["id"], nick="Echo")
        self.assertError(rejected, 502, "provider_rejected")
        self.assertEqual(self.sessions(s, lobby["id"]), [])
        fp.mode = "ok"
        retry = self.keyed_join(s, "k", lobby["id"], nick="Echo")
        self.assertEqual(retry[0], 200, retry)
        self.assertEqual(len(fp.joins()), 2)
        # Now it is kept.
        self.assert_replayed(s, fp, "k", lobby["id"], retry, 2)

    def test_two_requests_with_one_key_at_once_make_one_join(self):
        fp, s, pid, lobby = self.setup_server()
        fp.mode = "hold"
        answers = []

        def go():
            answers.append(self.keyed_join(s, "same", lobby["id"], nick="Echo"))

        threads = [threading.Thread(target=go) for _ in range(2)]
        for t in threads:
            t.start()
        fp.wait_for(lambda calls: len([c for c in calls if c[1].endswith("/join")]) >= 1)
        # Give the second request time to arrive while the first is held.
        threading.Event().wait(0.3)
        fp.gate.set()
        for t in threads:
            t.join(20)
        self.assertEqual(len(answers), 2)
        self.assertEqual(answers[0][0], 200, answers)
        self.assertEqual(answers[0][2], answers[1][2])
        self.assertEqual(answers[1][0], 200, answers)
        self.assertEqual(len(fp.joins()), 1)
        self.assertEqual(len(self.sessions(s, lobby["id"])), 1)

    def test_a_bad_key_is_422_at_the_header_and_joins_nothing(self):
        fp, s, pid, lobby = self.setup_server()
        for key in ["", "x" * 129, b"caf\xc3\xa9"]:
            answer = s.request("POST", "/api/bots/echo/join",
                               {"lobby_id": lobby["id"]}, headers={KEY: key})
            self.assertEqual(answer[0], 422, answer)
            [err] = answer[2]["detail"]
            self.assertEqual(err["loc"], ["header", "idempotency-key"], answer)
        self.assertEqual(fp.joins(), [])
        # 128 printable characters, spaces and punctuation included, are fine.
        key = ("a key: " + "x" * 128)[:128]
        ok = self.keyed_join(s, key, lobby["id"])
        self.assertEqual(ok[0], 200, ok)


if __name__ == "__main__":
    unittest.main()
