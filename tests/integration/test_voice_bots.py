"""voicebot-provider's bots as voice peers (SPEC §9) against a person made
of a raw WebSocket: a connection that never comes up (an answer whose ICE
never meets a candidate, as a peer behind a dead network would) is made
anew after --voice-connect-timeout, with a new offer and new ICE
credentials."""

import re
import unittest

from harness import Provider, ServerTestCase, scaled


def ufrag(sdp):
    m = re.search(r"^a=ice-ufrag:(\S+)", sdp, re.M)
    return m.group(1) if m else None


def answer_without_candidates(offer):
    """An answer webrtcbin takes, for the offer's audio, that names no
    candidate and never sends one: ICE stays checking."""
    mid = re.search(r"^a=mid:(\S+)", offer, re.M).group(1)
    fingerprint = ":".join(["AB"] * 32)
    return "\r\n".join([
        "v=0", "o=- 1 1 IN IP4 127.0.0.1", "s=-", "t=0 0",
        f"a=group:BUNDLE {mid}",
        "m=audio 9 UDP/TLS/RTP/SAVPF 111", "c=IN IP4 0.0.0.0",
        f"a=mid:{mid}", "a=ice-ufrag:deadnetwork", "a=ice-pwd:nobodyansweristhisnetwork",
        f"a=fingerprint:sha-256 {fingerprint}", "a=setup:active", "a=sendrecv",
        "a=rtcp-mux", "a=rtpmap:111 OPUS/48000/2", ""])


class VoiceBotTest(ServerTestCase):

    def test_a_connection_that_never_comes_up_is_made_anew(self):
        s = self.start_server()
        timeout = 2
        provider = Provider(self.tmp.path, s, "voice", self.state_file("voice"),
                            ("--bots", "greeter", "--voice-connect-timeout", str(timeout)))
        self.start_provider(provider)
        room = self.create_lobby(s)["id"]
        alice = self.person(s, room, "alice")
        ws = self.lobby_socket(s, room)
        welcome = self.hello(ws, alice)
        self.assertEqual(welcome["type"], "welcome", welcome)

        greeter = self.joined(s, room, "greeter", "Greeter")["session_id"]

        def offer(wait):
            msg, _ = ws.wait_for(
                lambda m: m.get("type") == "signal" and m.get("from") == greeter
                and m["data"].get("description", {}).get("type") == "offer", wait)
            return msg["data"]["description"]["sdp"], msg

        # The newcomer (the bot) calls the person in its welcome.
        first, _ = offer(scaled(20))
        ws.send_json({"type": "signal", "to": greeter,
                      "data": {"description": {"type": "answer",
                                               "sdp": answer_without_candidates(first)}}})
        second, _ = offer(scaled(timeout + 15))
        self.assertNotEqual(ufrag(second), ufrag(first), "a fresh connection: new ICE credentials")
        # Made anew by the deadline (counted from the connection's making),
        # not by a refusal of the answer.
        provider.wait_for_line(rf"the connection to {alice['session_id']} is not up after "
                               rf"{timeout * 1000} ms")
        # The run itself goes on: greeter is still a member, on the same session.
        self.assertIn(greeter, [m["session_id"] for m in self.sessions(s, room)])


if __name__ == "__main__":
    unittest.main()
