"""voicebot-provider's bots as voice peers (SPEC §9) against a person made
of a raw WebSocket: a connection that never comes up (an answer whose ICE
never meets a candidate, as a peer behind a dead network would) is made
anew after --voice-connect-timeout, with a new offer and new ICE
credentials; a provider killed and started again (its only provider)
re-creates its bot's voice on the same session."""

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

    def provider(self, server, args=(), state=None):
        return self.start_provider(Provider(self.tmp.path, server, "voice",
                                            state or self.state_file("voice"), args))

    def voice_peer(self, server, room, nick):
        """A person with a lobby socket that said hello: (session, socket)."""
        who = self.person(server, room, nick)
        ws = self.lobby_socket(server, room)
        welcome = self.hello(ws, who)
        self.assertEqual(welcome["type"], "welcome", welcome)
        return who, ws

    @staticmethod
    def offer_from(ws, bot, wait):
        """The next offer `bot` sends on `ws`: its SDP."""
        msg, _ = ws.wait_for(
            lambda m: m.get("type") == "signal" and m.get("from") == bot
            and m["data"].get("description", {}).get("type") == "offer", wait)
        return msg["data"]["description"]["sdp"]

    def test_a_connection_that_never_comes_up_is_made_anew(self):
        s = self.start_server()
        timeout = 2
        provider = self.provider(s, ("--bots", "greeter", "--voice-connect-timeout", str(timeout)))
        room = self.create_lobby(s)["id"]
        alice, ws = self.voice_peer(s, room, "alice")
        greeter = self.joined(s, room, "greeter", "Greeter")["session_id"]

        # The newcomer (the bot) calls the person in its welcome.
        first = self.offer_from(ws, greeter, scaled(20))
        ws.send_json({"type": "signal", "to": greeter,
                      "data": {"description": {"type": "answer",
                                               "sdp": answer_without_candidates(first)}}})
        second = self.offer_from(ws, greeter, scaled(timeout + 15))
        self.assertNotEqual(ufrag(second), ufrag(first), "a fresh connection: new ICE credentials")
        # Made anew by the deadline (counted from the connection's making),
        # not by a refusal of the answer.
        provider.wait_for_line(rf"the connection to {alice['session_id']} is not up after "
                               rf"{timeout * 1000} ms")
        # The run itself goes on: greeter is still a member, on the same session.
        self.assertIn(greeter, [m["session_id"] for m in self.sessions(s, room)])

    def test_a_restarted_provider_makes_its_bots_voice_anew(self):
        s = self.start_server()
        first = self.provider(s, ("--bots", "greeter"))
        room = self.create_lobby(s)["id"]
        _, ws = self.voice_peer(s, room, "alice")
        joined = self.joined(s, room, "greeter", "Greeter")
        greeter = joined["session_id"]
        self.offer_from(ws, greeter, scaled(20))
        first.kill()
        again = self.provider(s, ("--bots", "greeter"), state=first.state_file)
        self.assertEqual(again.provider_id, first.provider_id)
        # Its runs are gone with the process: reconciliation moves the member
        # (peer_left), its new run says hello with the new token
        # (peer_joined) and calls alice again, on the same session.
        ws.wait_for(lambda m: m.get("type") == "peer_left"
                    and m.get("session_id") == greeter, scaled(20))
        ws.wait_for(lambda m: m.get("type") == "peer_joined"
                    and m["peer"]["session_id"] == greeter, scaled(20))
        self.offer_from(ws, greeter, scaled(20))
        member = next(m for m in self.sessions(s, room) if m["session_id"] == greeter)
        self.assertEqual(member["provider_id"], first.provider_id)
        self.assertNotEqual(member["run_id"], joined["run_id"])
        self.assertIn(member["run_id"], again.runs())


if __name__ == "__main__":
    unittest.main()
