"""The empty-lobby grace (--empty-lobby-grace, docs/voice.md) against the
real voicebot-server and a fake HTTP provider: once a lobby's last person
leaves, its bot is stopped after the grace (member_left with "reason":
"empty_lobby" on the WebSocket, the provider told to stop the run, the
leave durable through kill -9); a person joining within the grace keeps
the bot; a restart during the grace starts it anew."""

import signal
import time
import unittest

from harness import ServerTestCase, metric_value, scaled


class EmptyLobbyGraceTest(ServerTestCase):

    def delete(self, server, lobby_id, session):
        status, _, body = server.request(
            "DELETE", f"/api/lobby/{lobby_id}/sessions/{session['session_id']}")
        self.assertEqual(status, 204, body)

    def left(self, ws, session, timeout=10):
        """Waits for the member_left of `session`; returns it."""
        msg, _ = ws.wait_for(lambda m: m["type"] == "member_left"
                             and m["member"]["session_id"] == session["session_id"],
                             scaled(timeout))
        return msg

    def room_with_a_bot(self, server, fp, name="room"):
        """A lobby with a person (alice) and the echo bot."""
        room = self.create_lobby(server, name)
        alice = self.person(server, room["id"], "alice")
        echo = self.joined(server, room["id"], "echo", "Echo")
        return room, alice, echo

    def test_the_bot_of_a_lobby_whose_last_person_left_is_stopped_durably(self):
        grace = scaled(1.0)
        fp = self.fake_provider()
        s = self.start_server("--empty-lobby-grace", str(grace))
        self.register(s, fp)
        room, alice, echo = self.room_with_a_bot(s, fp)
        ws = self.lobby_socket(s, room["id"])
        self.delete(s, room["id"], alice)
        deleted = time.monotonic()
        # Not before the grace: the bot is still there right after.
        self.assertEqual([m["session_id"] for m in self.sessions(s, room["id"])],
                         [echo["session_id"]])
        self.assertEqual(fp.stops(), [])
        # The person's own leave keeps its shape.
        self.assertNotIn("reason", self.left(ws, alice))
        gone = self.left(ws, echo)
        self.assertGreaterEqual(time.monotonic() - deleted, grace * 0.9)
        self.assertEqual(gone["reason"], "empty_lobby")
        self.assertEqual(gone["member"]["run_id"], echo["run_id"])
        fp.wait_for_stop(echo["run_id"])
        self.assertEqual(self.sessions(s, room["id"]), [])
        self.assertEqual(metric_value(s, "voicebot_empty_lobby_bots_stopped_total"), 1)
        # The leave is on disk: a kill -9 does not bring the bot back.
        s.kill()
        self.assertEqual(s.proc.returncode, -signal.SIGKILL)
        s = self.start_server("--empty-lobby-grace", str(grace))
        self.assertEqual(self.sessions(s, room["id"]), [])
        self.assertEqual(len(fp.stops()), 1)

    def test_a_person_joining_within_the_grace_keeps_the_bot(self):
        fp = self.fake_provider()
        s = self.start_server("--empty-lobby-grace", str(scaled(1.0)))
        self.register(s, fp)
        room, alice, echo = self.room_with_a_bot(s, fp)
        # A second lobby is the clock: its grace starts after room's and ends
        # after it, so once its bot has left, room's grace has passed too.
        clock, carol, clock_bot = self.room_with_a_bot(s, fp, "clock")
        clock_ws = self.lobby_socket(s, clock["id"])
        ws = self.lobby_socket(s, room["id"])
        self.delete(s, room["id"], alice)
        bob = self.person(s, room["id"], "bob")
        self.delete(s, clock["id"], carol)
        self.assertEqual(self.left(clock_ws, clock_bot)["reason"], "empty_lobby")
        fp.wait_for_stop(clock_bot["run_id"])
        self.assertEqual([m["session_id"] for m in self.sessions(s, room["id"])],
                         [echo["session_id"], bob["session_id"]])
        self.assertEqual([c[1] for c in fp.stops()],
                         [f"/bots/runs/{clock_bot['run_id']}/stop"])
        # bob leaves as well: a full grace from then, and the bot goes.
        self.delete(s, room["id"], bob)
        self.left(ws, alice)
        self.left(ws, bob)
        self.assertEqual(self.left(ws, echo)["reason"], "empty_lobby")
        fp.wait_for_stop(echo["run_id"])

    def test_a_restart_within_the_grace_starts_it_anew(self):
        grace = scaled(2.0)
        fp = self.fake_provider()
        s = self.start_server("--empty-lobby-grace", str(grace))
        self.register(s, fp)
        room, alice, echo = self.room_with_a_bot(s, fp)
        self.delete(s, room["id"], alice)
        s.kill()
        self.assertEqual(fp.stops(), [], "the grace ended before the kill")
        s = self.start_server("--empty-lobby-grace", str(grace))
        ws = self.lobby_socket(s, room["id"], members=False)
        members = ws.recv_json()
        self.assertEqual([m["session_id"] for m in members["members"]], [echo["session_id"]])
        self.assertEqual(self.left(ws, echo)["reason"], "empty_lobby")
        fp.wait_for_stop(echo["run_id"])


if __name__ == "__main__":
    unittest.main()
