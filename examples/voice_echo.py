"""Voice for examples/http_provider.py: its `echo` bot in the voice room of
its lobby (SPEC §9), with Debian's python3-aiortc 1.4.0 and python3-websockets
10.4. Those import only under Debian's own Python (/usr/bin/python3), and
http_provider.py imports this module only when it can: without it the
example runs on the standard library alone, without voice.

What one run of the echo bot does, from the server's join body
{lobby_id, session_id, nick, server_url, session_token}:

* Opens {server_url}/ws/lobby/{lobby_id} (http -> ws, https -> wss) and says
  {"type":"hello","session_id":S,"token":T,"resume":false}.
* The welcome lists the other voice peers and the ICE servers. Who calls
  whom: the bot makes an offer to each person of its welcome (not to bots:
  two bots do not connect); a person who arrives later (peer_joined) calls
  the bot, which answers. After that "perfect negotiation": the smaller
  session_id is the polite side.
* Media: each person hears themself back ECHO_DELAY (0.5 s) later: the
  track the bot sends a person plays the frames received from that person,
  each about half a second after it arrived.
* Chat: a person's chat line in the lobby is said again by the bot.
* The socket drops (a server restart): reconnect with backoff, hello with
  resume: true, the peer connections stay (the media does not pass
  through the server). {"type":"error","code":"bad_token"} (the member
  moved to another run, or its session ended) or {"type":"replaced"}: this
  run's voice ends for good (but a bad_token that comes before the lobby
  lists our run is a hello that was too early: it goes again on our
  member_joined). peer_left: that peer's connection is closed.

Signal data has the shape of the lobby page's (web/voice.js):
  {"description": {"type": "offer"|"answer", "sdp": "..."}}
  {"candidate": {"candidate": "candidate:...", "sdpMid": "0", "sdpMLineIndex": 0, ...}}
aiortc does not trickle: its candidates are in its SDP, so the bot sends
descriptions only. It does take the page's trickled candidates
(RTCPeerConnection.addIceCandidate; aioice pairs them while its checks run).

All runs share one asyncio loop on one thread (VoiceHub); the HTTP handler
threads only hand it work (call_soon_threadsafe) and never wait for it.
"""

import asyncio
import collections
import fractions
import json
import logging
import random
import threading
import time
import urllib.parse

import aioice.ice
import aiortc
import websockets
from aiortc import RTCConfiguration, RTCIceServer, RTCPeerConnection, RTCSessionDescription
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack
from aiortc.sdp import candidate_from_sdp
from av import AudioFrame

log = logging.getLogger("example-provider")

VERSION = f"aiortc {aiortc.__version__}, websockets {websockets.__version__}"

ECHO_DELAY = 0.5          # seconds between hearing a frame and sending it back
OFFER_RETRY = 5.0         # an unanswered offer is sent again (it may have met peer_offline)
SEND_LIMIT = 40           # messages a second; the server closes a socket past signal_rate (50)
BACKOFF_BASE = 0.2        # reconnection: full jitter up to min(max_backoff, BASE * 2^n)

# Opus in aiortc: 48 kHz, 20 ms frames, s16 stereo out of the decoder and
# into the encoder.
RATE = 48000
FRAME_SAMPLES = 960


# -- host addresses for ICE --------------------------------------------------------

_host_addresses = aioice.ice.get_host_addresses


def use_host_addresses(pinned):
    """aioice leaves 127.0.0.1 out of the addresses it gathers on, so on a
    host whose only address is loopback (a test's network namespace) it
    gathers no candidate at all. `pinned` (--ice-host): exactly these;
    otherwise the host's addresses, plus 127.0.0.1 when it has no other
    IPv4 address."""

    def addresses(use_ipv4, use_ipv6):
        if pinned:
            return [a for a in pinned if (use_ipv6 if ":" in a else use_ipv4)]
        found = _host_addresses(use_ipv4, use_ipv6)
        if use_ipv4 and not any(":" not in a for a in found):
            found.append("127.0.0.1")
        return found

    aioice.ice.get_host_addresses = addresses


# -- the echo: what a person said, half a second later ------------------------------------


def silence():
    frame = AudioFrame(format="s16", layout="stereo", samples=FRAME_SAMPLES)
    for plane in frame.planes:
        plane.update(bytes(plane.buffer_size))
    frame.sample_rate = RATE
    return frame


class DelayedEcho(MediaStreamTrack):
    """The track the bot sends one peer: the frames received from that peer
    (listen()), each sent `delay` seconds after it arrived; silence while
    there is nothing that old. Paced by the clock, like aiortc's own
    AudioStreamTrack: one 20 ms frame per 20 ms."""

    kind = "audio"

    def __init__(self, delay, on_first=None):
        super().__init__()
        self.delay = delay
        self.frames = collections.deque()  # (arrival, frame), oldest first
        self.on_first = on_first           # called once with the delay of the first echoed frame
        self._pull = None
        self._start = None
        self._pts = 0

    def listen(self, track):
        """Takes the frames of `track` (a peer's audio) from now on."""
        if self._pull is not None:
            self._pull.cancel()
        self._pull = asyncio.ensure_future(self._take(track))

    async def _take(self, track):
        loop = asyncio.get_running_loop()
        while True:
            try:
                frame = await track.recv()
            except MediaStreamError:
                return  # the peer's track ended
            now = loop.time()
            self.frames.append((now, frame))
            # Bounded even when nobody sends (the peer does not receive).
            while self.frames[0][0] < now - self.delay - 1.0:
                self.frames.popleft()

    async def recv(self):
        if self.readyState != "live":
            raise MediaStreamError
        if self._start is None:
            self._start = time.time()
        wait = self._start + self._pts / RATE - time.time()
        if wait > 0:
            await asyncio.sleep(wait)
        now = asyncio.get_running_loop().time()
        # A backlog (we were late, or the peer's frames came in a burst) is
        # dropped past 0.25 s of extra delay: the echo stays about `delay` behind.
        while len(self.frames) > 1 and self.frames[0][0] < now - self.delay - 0.25:
            self.frames.popleft()
        frame = None
        if self.frames and self.frames[0][0] <= now - self.delay:
            arrived, frame = self.frames.popleft()
            if frame.samples != FRAME_SAMPLES or frame.sample_rate != RATE:
                frame = None  # not what aiortc's Opus decoder gives: not echoed
            elif self.on_first is not None:
                self.on_first(now - arrived)
                self.on_first = None
        if frame is None:
            frame = silence()
        frame.pts = self._pts
        frame.time_base = fractions.Fraction(1, RATE)
        self._pts += frame.samples
        return frame

    def stop(self):
        if self._pull is not None:
            self._pull.cancel()
            self._pull = None
        self.frames.clear()
        super().stop()


# -- one peer connection: perfect negotiation with a peer that may trickle ---------------


class Peer:
    """The bot's connection to one person. Everything that touches the
    RTCPeerConnection (our offer, their descriptions and candidates) goes
    through one queue, in order, so a description is set before the
    candidates that follow it and signalingState is never read mid-change."""

    def __init__(self, voice, peer_id):
        self.voice = voice
        self.id = peer_id
        self.polite = voice.run.session_id < peer_id  # the smaller session_id yields
        self.pc = None
        self.echo = None
        self.queue = asyncio.Queue()
        self.worker = asyncio.ensure_future(self._work())
        self.retry = None
        self.closed = False
        self._new_pc()

    @property
    def name(self):
        peer = self.voice.known.get(self.id)
        return peer.get("nick") if peer and peer.get("nick") else self.id[:8]

    def _new_pc(self):
        servers = []
        for s in self.voice.ice_servers:
            if isinstance(s, dict) and s.get("urls"):
                servers.append(RTCIceServer(urls=s["urls"], username=s.get("username"),
                                            credential=s.get("credential")))
        pc = RTCPeerConnection(RTCConfiguration(iceServers=servers))
        echo = DelayedEcho(self.voice.hub.echo_delay, on_first=self._first_echo)
        # Added before any description: an offer we make carries it, and an
        # offer we answer takes it up on its audio m-line (sendrecv).
        pc.addTrack(echo)

        @pc.on("track")
        def on_track(track):
            if track.kind == "audio" and pc is self.pc:
                echo.listen(track)

        @pc.on("connectionstatechange")
        def on_state():
            if pc is not self.pc or self.closed:
                return
            state = pc.connectionState
            if state == "failed":
                # aiortc 1.4.0 cannot restart ICE: a failed connection stays
                # failed until the person rejoins (and calls anew).
                state += f" (ICE {pc.iceConnectionState})"
            log.info("echo %s: connection to %s %s", self.voice.run.nick, self.name, state)

        self.pc, self.echo = pc, echo

    def _first_echo(self, delay):
        log.info("echo %s: echoing %s's audio %.2f s later", self.voice.run.nick, self.name, delay)

    async def _drop_pc(self):
        pc, echo = self.pc, self.echo
        echo.stop()
        await pc.close()

    # -- what the run asks --

    def offer(self):
        self.queue.put_nowait(("offer", None))

    def signal(self, data):
        self.queue.put_nowait(("signal", data))

    async def close(self):
        if self.closed:
            return
        self.closed = True
        self.worker.cancel()
        if self.retry is not None:
            self.retry.cancel()
        await self._drop_pc()

    # -- the worker --

    async def _work(self):
        while True:
            kind, data = await self.queue.get()
            try:
                if kind == "offer":
                    await self._make_offer()
                elif isinstance(data.get("description"), dict):
                    await self._on_description(data["description"])
                elif isinstance(data.get("candidate"), dict):
                    await self._on_candidate(data["candidate"])
            except asyncio.CancelledError:
                raise
            except Exception as err:  # a bad SDP or candidate must not end the worker
                log.warning("echo %s: negotiation with %s: %s", self.voice.run.nick, self.name,
                            err or type(err).__name__)

    def _send_description(self):
        d = self.pc.localDescription
        self.voice.send({"type": "signal", "to": self.id,
                         "data": {"description": {"type": d.type, "sdp": d.sdp}}})

    async def _make_offer(self):
        if self.pc.signalingState != "stable":
            return
        await self.pc.setLocalDescription(await self.pc.createOffer())  # gathers: candidates in the SDP
        self._send_description()
        if self.retry is not None:
            self.retry.cancel()
        self.retry = asyncio.ensure_future(self._resend_offer(self.pc))

    async def _resend_offer(self, pc):
        """An offer still unanswered is sent again: the first may have met
        peer_offline (the person's socket was down)."""
        while True:
            await asyncio.sleep(OFFER_RETRY)
            if pc is not self.pc or pc.signalingState != "have-local-offer":
                return
            if self.voice.welcomed:
                self._send_description()

    async def _on_description(self, desc):
        kind, sdp = desc.get("type"), desc.get("sdp")
        if kind not in ("offer", "answer") or not isinstance(sdp, str):
            return
        state = self.pc.signalingState
        if kind == "answer" and state != "have-local-offer":
            return  # a stale or repeated answer
        if kind == "offer" and state != "stable":
            # Glare: both sides offered. The impolite side ignores theirs; the
            # polite one gives up its own offer. aiortc 1.4.0 has no rollback,
            # so its offer goes with a fresh connection: the bot only offers
            # first calls, so the connection dropped here never carried media.
            if not self.polite:
                log.info("echo %s: glare with %s: their offer ignored (we are impolite)",
                         self.voice.run.nick, self.name)
                return
            log.info("echo %s: glare with %s: our offer withdrawn (we are polite)",
                     self.voice.run.nick, self.name)
            await self._drop_pc()
            self._new_pc()
        await self.pc.setRemoteDescription(RTCSessionDescription(sdp=sdp, type=kind))
        if kind == "offer":
            await self.pc.setLocalDescription(await self.pc.createAnswer())
            self._send_description()

    async def _on_candidate(self, c):
        """A candidate the page trickled: added to the ICE agent, which
        pairs it with ours and checks it (aioice keeps checking while more
        may come). The end of candidates is never sent by the page."""
        line = c.get("candidate")
        if not isinstance(line, str) or not line or self.pc.remoteDescription is None:
            return  # empty (the end), or for an offer we ignored
        if line.startswith("candidate:"):
            line = line[len("candidate:"):]
        candidate = candidate_from_sdp(line)
        candidate.sdpMid = c.get("sdpMid")
        candidate.sdpMLineIndex = c.get("sdpMLineIndex")
        if candidate.sdpMid is None and candidate.sdpMLineIndex is None:
            candidate.sdpMLineIndex = 0
        await self.pc.addIceCandidate(candidate)


# -- one run: the lobby socket, its voice peers, and the chat ----------------------------


class VoiceRun:
    """The echo bot of one run in its lobby: its socket (reconnected while
    the run lasts) and its peer connections (kept across reconnections)."""

    def __init__(self, hub, run):
        self.hub = hub
        self.run = run
        self.ws_url = lobby_socket_url(run.server_url, run.lobby_id)
        self.ws = None
        self.welcomed = False
        self.welcomed_once = False   # then a hello says resume: true
        self.recorded = False        # the lobby lists our session with our run_id
        self.early = False           # a bad_token came before that: hello again once it does
        self.ended = None            # why this run's voice ended for good
        self.ice_servers = []
        self.known = {}              # session_id -> peer {session_id, nick, is_bot, bot_name}
        self.peers = {}              # session_id -> Peer
        self.bot_nicks = set()       # nicks of the lobby's bot members: their lines are not echoed
        self.sent_at = collections.deque()
        self.task = asyncio.ensure_future(self._main())

    def state(self, text):
        self.run.voice_state = text  # read by GET /runs (a str assignment: no lock needed)

    # -- the socket --

    async def _main(self):
        attempt = 0
        down = None
        while self.ended is None:
            self.state("connecting")
            try:
                async with websockets.connect(self.ws_url, open_timeout=10, close_timeout=1,
                                              max_size=1 << 20) as ws:
                    self.ws = ws
                    self.early = False
                    resume = await self._hello()
                    if down is not None:
                        log.info("echo %s: lobby socket open again; hello with resume: %s",
                                 self.run.nick, str(resume).lower())
                        down = None
                    async for raw in ws:
                        if self._on_message(raw):
                            attempt = 0  # welcomed: the next outage backs off from the start
                        if self.ended is not None:
                            break
            except asyncio.CancelledError:
                raise
            except (OSError, asyncio.TimeoutError, websockets.exceptions.WebSocketException) as err:
                why = f"{type(err).__name__}: {err}"
            else:
                why = "closed by the server"
            finally:
                self.ws = None
                self.welcomed = False
            if self.ended is not None:
                break
            wait = random.uniform(0, min(self.hub.max_backoff, BACKOFF_BASE * 2 ** attempt))
            attempt += 1
            if down is None:
                log.warning("echo %s: lobby socket down (%s); the calls go on; reconnecting "
                            "with backoff", self.run.nick, why)
                down = why
            self.state("reconnecting")
            await asyncio.sleep(wait)
        await self._close_peers()
        self.state(f"ended: {self.ended}")

    async def _hello(self):
        resume = self.welcomed_once
        await self._send_now({"type": "hello", "session_id": self.run.session_id,
                              "token": self.run.session_token, "resume": resume})
        return resume

    def send(self, msg):
        """Sends when the socket is open and welcomed; dropped otherwise (an
        offer is sent again, an answer is asked again by the page's retry)."""
        if self.ws is not None and self.welcomed:
            asyncio.ensure_future(self._send_now(msg))

    async def _send_now(self, msg):
        ws = self.ws
        now = time.monotonic()
        while self.sent_at and now - self.sent_at[0] >= 1.0:
            self.sent_at.popleft()
        if len(self.sent_at) >= SEND_LIMIT:  # paced under the server's signal_rate
            await asyncio.sleep(1.0 - (now - self.sent_at[0]) + 0.005)
        self.sent_at.append(time.monotonic())
        if ws is None or ws is not self.ws:
            return
        try:
            await ws.send(json.dumps(msg))
        except websockets.exceptions.ConnectionClosed:
            pass  # the reader notices and reconnects

    # -- what the server says --

    def _on_message(self, raw):
        """Handles one message; True for a welcome."""
        try:
            msg = json.loads(raw)
        except ValueError:
            return False
        if not isinstance(msg, dict):
            return False
        kind = msg.get("type")
        if kind == "welcome":
            self._on_welcome(msg)
            return True
        if kind == "peer_joined" and isinstance(msg.get("peer"), dict):
            self._on_peer_joined(msg["peer"])
        elif kind == "peer_left":
            self._forget(msg.get("session_id"))
        elif kind == "signal" and isinstance(msg.get("data"), dict):
            self._on_signal(msg.get("from"), msg["data"])
        elif kind == "replaced":
            self._end("replaced: another socket speaks for this session now")
        elif kind == "error" and msg.get("code") == "bad_token":
            self._on_bad_token()
        elif kind == "error" and msg.get("code") == "voice_full":
            log.warning("echo %s: the voice room of lobby %s is full: chat only",
                        self.run.nick, self.run.lobby_id)
            self.state("voice_full")
        elif kind == "error":
            log.debug("echo %s: error %s", self.run.nick, msg.get("code"))
        elif kind == "members":
            members = [m for m in msg.get("members") or [] if isinstance(m, dict)]
            self.bot_nicks = {m.get("nick") for m in members if m.get("is_bot")}
            for m in members:
                self._see_member(m)
        elif kind in ("member_joined", "member_moved") and isinstance(msg.get("member"), dict):
            if msg["member"].get("is_bot"):
                self.bot_nicks.add(msg["member"].get("nick"))
            self._see_member(msg["member"])
        elif kind == "chat" and isinstance(msg.get("member"), dict):
            self._on_chat(msg["member"], msg.get("text"))
        return False

    def _on_bad_token(self):
        """Our run was fenced (the member moved to another run, or its
        session ended): its voice ends. Unless the lobby has not recorded
        this run yet: the server records a bot member (and its token) only
        once we have answered the join, and our hello can be faster. Then
        the hello goes again when its member_joined (member_moved for a
        moved member) with our run_id comes."""
        if self.welcomed_once or self.recorded:
            self._end("bad_token: this run no longer holds its session: it ended, or moved "
                      "to another run")
        else:
            log.info("echo %s: bad_token before the lobby recorded this run: hello again "
                     "when it does", self.run.nick)
            self.early = True

    def _see_member(self, m):
        if m.get("session_id") != self.run.session_id or m.get("run_id") != self.run.run_id:
            return
        self.recorded = True
        if self.early and self.ws is not None:
            self.early = False
            asyncio.ensure_future(self._hello())

    def _on_welcome(self, msg):
        resumed = self.welcomed_once
        self.welcomed = self.welcomed_once = True
        servers = msg.get("ice_servers")
        self.ice_servers = servers if isinstance(servers, list) else []
        listed = {p["session_id"]: p for p in msg.get("peers") or []
                  if isinstance(p, dict) and isinstance(p.get("session_id"), str)
                  and p["session_id"] != self.run.session_id}
        # A connection to a peer no longer listed: it left while we were away.
        for peer_id in list(self.peers):
            if peer_id not in listed:
                self._forget(peer_id)
        self.known = listed
        # Who calls whom: we call each person listed that we have no connection with.
        calls = [p for p in listed.values() if not p.get("is_bot") and p["session_id"] not in self.peers]
        for p in calls:
            peer = self.peers[p["session_id"]] = Peer(self, p["session_id"])
            peer.offer()
        people = sum(1 for p in listed.values() if not p.get("is_bot"))
        log.info("echo %s: welcome in lobby %s%s: %d people, calling %d", self.run.nick,
                 self.run.lobby_id, " (resumed)" if resumed else "", people, len(calls))
        self.state(f"in the voice room ({people} people)")

    def _on_peer_joined(self, peer):
        peer_id = peer.get("session_id")
        if not isinstance(peer_id, str) or peer_id == self.run.session_id:
            return
        self._forget(peer_id)  # a person who reloaded: the old connection goes, a new call comes
        self.known[peer_id] = peer

    def _forget(self, peer_id):
        self.known.pop(peer_id, None)
        peer = self.peers.pop(peer_id, None)
        if peer is not None:
            log.info("echo %s: connection to %s closed (it left)", self.run.nick, peer.name)
            asyncio.ensure_future(peer.close())

    def _on_signal(self, sender, data):
        if not isinstance(sender, str) or sender == self.run.session_id:
            return
        if self.known.get(sender, {}).get("is_bot"):
            return  # two bots do not connect
        peer = self.peers.get(sender)
        if peer is None:
            desc = data.get("description")
            if not (isinstance(desc, dict) and desc.get("type") == "offer"):
                return  # a candidate or answer for a connection closed since
            peer = self.peers[sender] = Peer(self, sender)  # its call
        peer.signal(data)

    def _on_chat(self, member, text):
        """A person's chat line is said again (pages speak by nick, so a
        line is a bot's when its nick is a bot member's)."""
        nick = member.get("nick")
        if member.get("is_bot") or nick in self.bot_nicks or nick == self.run.nick:
            return
        if isinstance(text, str) and text and self.ws is not None:
            asyncio.ensure_future(self._send_now({"type": "chat", "nick": self.run.nick or "echo",
                                                  "text": text}))

    # -- the end --

    def _end(self, why, level=logging.WARNING):
        if self.ended is None:
            self.ended = why
            log.log(level, "echo %s: voice ended (%s)", self.run.nick, why)

    async def _close_peers(self):
        peers, self.peers = list(self.peers.values()), {}
        await asyncio.gather(*(p.close() for p in peers), return_exceptions=True)

    async def stop(self):
        """The run was stopped: peer connections and socket closed."""
        self._end("the run was stopped", logging.INFO)
        ws = self.ws
        if ws is not None:
            await ws.close()
        try:
            await asyncio.wait_for(asyncio.shield(self.task), 3)
        except (asyncio.TimeoutError, Exception):
            self.task.cancel()
            await self._close_peers()


def lobby_socket_url(server_url, lobby_id):
    """{server_url}/ws/lobby/{lobby_id}, http(s) -> ws(s)."""
    url = server_url.rstrip("/")
    if url.startswith("https://"):
        url = "wss://" + url[len("https://"):]
    elif url.startswith("http://"):
        url = "ws://" + url[len("http://"):]
    return f"{url}/ws/lobby/{urllib.parse.quote(lobby_id, safe='')}"


# -- every run's voice on one asyncio loop --------------------------------------------------


class VoiceHub:
    """One asyncio loop on a background thread for the voice of all runs.
    start() and stop() are called from the HTTP handler threads: they only
    hand the work over and return at once."""

    def __init__(self, echo_delay=ECHO_DELAY, ice_hosts=(), max_backoff=10.0):
        self.echo_delay = echo_delay
        self.max_backoff = max_backoff
        use_host_addresses(list(ice_hosts))
        if log.getEffectiveLevel() > logging.DEBUG:
            for name in ("aioice", "aiortc", "websockets"):
                logging.getLogger(name).setLevel(logging.WARNING)
        self.loop = asyncio.new_event_loop()
        self.runs = {}  # run_id -> VoiceRun; touched on the loop only
        self.stopping = set()  # the stop() tasks still running
        self.thread = threading.Thread(target=self._serve, name="voice", daemon=True)
        self.thread.start()

    def _serve(self):
        asyncio.set_event_loop(self.loop)
        self.loop.run_forever()

    def start(self, run):
        """The echo bot of `run` (run_id, lobby_id, session_id, nick,
        server_url, session_token) joins its lobby's voice room."""
        def begin():
            self.runs[run.run_id] = VoiceRun(self, run)
        self.loop.call_soon_threadsafe(begin)

    def stop(self, run_id):
        def end():
            voice = self.runs.pop(run_id, None)
            if voice is not None:
                task = asyncio.ensure_future(voice.stop())
                self.stopping.add(task)
                task.add_done_callback(self.stopping.discard)
        self.loop.call_soon_threadsafe(end)

    def close(self, timeout=3.0):
        """Stops every run's voice (at most `timeout` seconds), then the loop."""
        async def stop_all():
            runs, self.runs = list(self.runs.values()), {}
            await asyncio.gather(*(v.stop() for v in runs), *self.stopping,
                                 return_exceptions=True)
        try:
            asyncio.run_coroutine_threadsafe(stop_all(), self.loop).result(timeout)
        except Exception as err:  # a timeout: the process is ending anyway
            log.warning("voice: not all runs closed in %.1f s (%s)", timeout, err)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(timeout)
