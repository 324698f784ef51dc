#!/usr/bin/env python3
"""An example bot provider for voicebot-server, over plain HTTP.

Copy this file to start your own provider. It uses Python's standard library
only (3.11+), voice aside (an optional part, below), and shows the whole
protocol a provider speaks (SPEC §4 and §7, docs/fleet.md "What a provider
author sends"):

  we serve (the server calls us)             we call (the server)
  --------------------------------           -----------------------------------------
  POST /bots/{bot}/join                      POST {server}/api/bots/providers/register
       {lobby_id, session_id, nick,               {name, base_url, bots, provider_id,
        server_url, session_token}                 instance_id, heartbeat_interval, runs}
       -> {status, run_id}
  POST /bots/runs/{run_id}/stop              POST {server}/api/bots/providers/{id}/heartbeat
  GET  /bots   (the server's probe)               {instance_id, load, capacity, runs}
  GET  /runs   (a debug view of this          POST {server}/api/bots/providers/{id}/drain
               process, not in the protocol)   DELETE {server}/api/bots/providers/{id}

What it does, and why:

* Identity. `provider_id` is given by the server at the first registration
  and kept in --state-file, so a restarted provider comes back under the same
  id. `instance_id` is new for every process start (SPEC §7): it is how the
  server tells "this process again" from "a restarted provider", which
  matters when an operator removed the provider (below).
* Heartbeats every --heartbeat-interval seconds with `load` (0..1),
  `capacity` (how many more runs it can take) and `runs` (the run ids it runs
  now). The server places joins by them and notices lost runs.
* A server restart is invisible. While the server is down, calls are retried
  with exponential backoff and full jitter. When a heartbeat answers 404 (the
  server does not know us, e.g. it lost its data), we register again with our
  `provider_id` and our runs, and the server reconciles its members with them.
* Capacity. A join past --capacity is answered 503 (with Retry-After): a 5xx
  makes the server try another provider of the bot (failover), a 4xx would
  be a final rejection.
* Drain. The first SIGTERM (or Ctrl-C) asks the server to drain us
  (POST .../drain): no new joins come, the bot members we run stay until they
  leave or the drain timeout passes (then the server moves them elsewhere and
  tells us to stop our runs). We keep heartbeating until the server has
  deregistered us (its next answer is 410 or 404), then exit 0. A second
  signal stops at once.
* 410 "Provider was removed". An operator deleted (or drained) this provider
  on purpose: this instance must not come back. We stop and exit with code 4
  (as voicebot-provider does). Starting the program again is a new instance
  and is welcome.
* 429 "Too many registrations" (a herd after a server restart): wait the
  Retry-After the server asks for, plus jitter, and try again.
* Voice (SPEC §9) is optional. With Debian's python3-aiortc (run this with
  /usr/bin/python3), an echo run opens {server_url}/ws/lobby/{lobby_id},
  says hello with its session_id and session_token, calls the people of the
  lobby over WebRTC and sends each their own voice back half a second
  later; it says people's chat lines again. The server only relays the
  call set-up, so the calls go on while the server restarts (the socket
  reconnects and says hello with resume). It all lives in
  examples/voice_echo.py, imported only when aiortc is there; without it
  this file runs on the standard library alone. The first log line says
  which ("voice: on" or "voice: off").

Exit codes: 0 stopped or drained, 2 bad arguments or a registration the
server refuses (bad key, invalid body), 4 removed by an operator (410).

Run it (see examples/README.md):

    ./scripts/run-server &
    examples/http_provider.py --server http://127.0.0.1:8000 --name demo \\
        --bots echo,greeter --state-file /tmp/demo-provider.json
"""

import argparse
import http.server
import importlib
import json
import logging
import os
import random
import signal
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid

log = logging.getLogger("example-provider")

# Exit codes (see the docstring).
EXIT_OK = 0
EXIT_CONFIG = 2
EXIT_REMOVED = 4

# Every call to the server has this deadline (seconds).
CALL_TIMEOUT = 5.0


def load_voice():
    """examples/voice_echo.py (aiortc, websockets), or None and why not:
    voice is optional, the rest of this file needs the standard library only."""
    here = os.path.dirname(os.path.abspath(__file__))
    if here not in sys.path:
        sys.path.insert(0, here)
    try:
        return importlib.import_module("voice_echo"), None
    except ImportError as err:
        return None, err


# -- the bots ----------------------------------------------------------------------
#
# A "run" is one bot in one lobby. With voice (aiortc), an echo run joins the
# lobby's voice room on the voice thread (examples/voice_echo.py: it connects
# to `server_url`, the server's public URL, with the run's session_token).
# Otherwise these toys run a small thread each that logs what it would do,
# until the run is stopped.


class Run:
    """One bot in one lobby, from the join that started it to its stop."""

    def __init__(self, bot, lobby_id, session_id, nick, server_url, session_token, voice):
        self.run_id = "run-" + uuid.uuid4().hex
        self.bot = bot
        self.lobby_id = lobby_id
        self.session_id = session_id
        self.nick = nick
        self.server_url = server_url
        self.session_token = session_token  # a secret: never logged nor listed
        self.started_at = time.time()
        self.stopped = threading.Event()
        self.thread = None
        # The voice hub when this run is in the voice room, else None.
        self.voice = voice if bot in VOICE_BOTS and server_url and session_token else None
        self.voice_state = "off"  # set by the voice thread, shown by GET /runs

    def start(self):
        if self.voice is not None:
            self.voice.start(self)  # hands it to the voice thread; does not wait
            return
        behaviour = BOTS[self.bot][1]
        self.thread = threading.Thread(target=behaviour, args=(self,),
                                       name=f"run-{self.bot}", daemon=True)
        self.thread.start()

    def stop(self):
        self.stopped.set()
        if self.voice is not None:
            self.voice.stop(self.run_id)  # closes its peer connections and socket

    def as_json(self):
        return {"run_id": self.run_id, "bot": self.bot, "lobby_id": self.lobby_id,
                "session_id": self.session_id, "nick": self.nick,
                "server_url": self.server_url, "started_at": self.started_at,
                "voice": self.voice_state}


def echo_bot(run):
    """Without voice: would repeat what is said in the lobby; here it only
    listens (the standard library has no WebSocket client)."""
    log.info("echo %s: listening in lobby %s", run.nick, run.lobby_id)
    while not run.stopped.wait(5.0):
        pass  # a real bot would read the lobby's chat and answer here


def greeter_bot(run):
    """Says hello once, then stays in the lobby."""
    log.info("greeter %s: hello, lobby %s!", run.nick, run.lobby_id)
    run.stopped.wait()


# name -> (description, behaviour). --bots picks a subset.
BOTS = {
    "echo": ("Repeats what is said in the lobby (an example bot)", echo_bot),
    "greeter": ("Says hello to the lobby (an example bot)", greeter_bot),
}

# The bots that join the voice room when voice is on (examples/voice_echo.py).
VOICE_BOTS = {"echo"}


class Refused(Exception):
    """A join this provider cannot take now (full, or draining)."""

    def __init__(self, code, detail):
        super().__init__(detail)
        self.code = code
        self.detail = detail


class Runs:
    """The runs of this process. The HTTP handler threads and the main loop
    share it, so every access takes the lock."""

    def __init__(self, capacity, voice=None):
        self.capacity = capacity
        self.voice = voice  # the voice hub (aiortc), or None
        self.draining = False
        self._lock = threading.Lock()
        self._runs = {}

    def start(self, bot, lobby_id, session_id, nick, server_url, session_token):
        with self._lock:
            if self.draining:
                raise Refused("draining", "This provider is shutting down")
            if len(self._runs) >= self.capacity:
                raise Refused("full", f"This provider runs {self.capacity} bots already")
            run = Run(bot, lobby_id, session_id, nick, server_url, session_token, self.voice)
            self._runs[run.run_id] = run
        run.start()
        return run

    def stop(self, run_id):
        with self._lock:
            run = self._runs.pop(run_id, None)
        if run is not None:
            run.stop()
        return run

    def stop_all(self):
        with self._lock:
            runs, self._runs = list(self._runs.values()), {}
        for run in runs:
            run.stop()
        return runs

    def stop_taking_joins(self):
        with self._lock:
            self.draining = True

    def ids(self):
        with self._lock:
            return list(self._runs)

    def snapshot(self):
        with self._lock:
            return [r.as_json() for r in self._runs.values()]

    def heartbeat_fields(self):
        """`load`, `capacity` (runs it can still take) and `runs` (SPEC §7)."""
        with self._lock:
            active = len(self._runs)
            return {"load": round(min(1.0, active / self.capacity), 3),
                    "capacity": 0 if self.draining else max(0, self.capacity - active),
                    "runs": list(self._runs)}


# -- the HTTP side: what the server calls on us (SPEC §4) ---------------------------


class ProviderHandler(http.server.BaseHTTPRequestHandler):
    # HTTP/1.1: the server keeps connections to providers alive between calls.
    protocol_version = "HTTP/1.1"
    server_version = "example-http-provider/1"

    def log_message(self, fmt, *args):
        log.debug("%s %s", self.address_string(), fmt % args)

    # -- plumbing --

    def answer(self, status, payload=None, headers=()):
        data = json.dumps(payload).encode() if payload is not None else b""
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for name, value in headers:
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(data)

    def read_json(self):
        """The body as JSON, or None after answering 400."""
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        try:
            return json.loads(raw) if raw else {}
        except ValueError:
            self.answer(400, {"detail": "Malformed JSON"})
            return None

    def segments(self):
        path = urllib.parse.urlsplit(self.path).path
        return [urllib.parse.unquote(p) for p in path.strip("/").split("/")]

    # -- routes --

    def do_GET(self):
        provider = self.server.provider
        parts = self.segments()
        if parts == ["bots"]:
            # The server's probe, and the original protocol's bot list.
            return self.answer(200, [{"name": b, "description": BOTS[b][0]}
                                     for b in provider.bots])
        if parts == ["runs"]:
            # Not part of the protocol: a view of this process for people and tests.
            return self.answer(200, {"provider_id": provider.provider_id,
                                     "instance_id": provider.instance_id,
                                     "draining": provider.runs.draining,
                                     "runs": provider.runs.snapshot()})
        self.answer(404, {"detail": "Not Found"})

    def do_POST(self):
        parts = self.segments()
        body = self.read_json()
        if body is None:
            return
        if len(parts) == 3 and parts[0] == "bots" and parts[2] == "join":
            return self.join(parts[1], body)
        if len(parts) == 4 and parts[:2] == ["bots", "runs"] and parts[3] == "stop":
            return self.stop(parts[2])
        self.answer(404, {"detail": "Not Found"})

    def join(self, bot, body):
        """POST /bots/{bot}/join {lobby_id, session_id, nick, server_url,
        session_token} -> 200 {status: "ok", run_id}."""
        provider = self.server.provider
        if bot not in provider.bots:
            return self.answer(404, {"detail": "Bot not found"})
        if not isinstance(body, dict):
            return self.answer(422, {"detail": [{"loc": ["body"], "msg": "expected an object",
                                                 "type": "type_error.dict"}]})
        errors = []
        for field, required in (("lobby_id", True), ("session_id", True),
                                ("nick", False), ("server_url", False),
                                ("session_token", False)):
            value = body.get(field, "")
            if not isinstance(value, str) or (required and not value):
                errors.append({"loc": ["body", field], "msg": "expected a non-empty string"
                               if required else "expected a string", "type": "value_error"})
        if errors:
            return self.answer(422, {"detail": errors})
        try:
            run = provider.runs.start(bot, body["lobby_id"], body["session_id"],
                                      body.get("nick", ""), body.get("server_url", ""),
                                      body.get("session_token", ""))
        except Refused as refused:
            # 503, not 4xx: the server then tries another provider of the bot.
            log.info("join %s in %s as %s refused: %s", bot, body["lobby_id"],
                     body.get("nick", ""), refused.detail)
            return self.answer(503, {"detail": refused.detail, "code": refused.code},
                               headers=[("Retry-After", "1")])
        log.info("join %s in %s as %s → run %s%s", bot, run.lobby_id, run.nick, run.run_id,
                 " (with voice)" if run.voice is not None else "")
        self.answer(200, {"status": "ok", "run_id": run.run_id})

    def stop(self, run_id):
        """POST /bots/runs/{run_id}/stop: the bot leaves its lobby."""
        run = self.server.provider.runs.stop(run_id)
        if run is None:
            return self.answer(404, {"detail": "Run not found"})
        log.info("run %s stopped (%s left lobby %s)", run_id, run.nick, run.lobby_id)
        self.answer(200, {"status": "stopped", "run_id": run_id})


class ProviderHTTPServer(http.server.ThreadingHTTPServer):
    daemon_threads = True  # a kept-alive connection never holds up the exit

    def handle_error(self, request, client_address):
        log.debug("connection from %s ended with an error", client_address, exc_info=True)


# -- the client side: what we call on the server (SPEC §2, §7) ----------------------


class Unreachable(Exception):
    """No HTTP answer: refused, reset, timed out (the server may be restarting)."""


class Answer:
    def __init__(self, status, headers, body):
        self.status = status
        self.headers = headers
        self.body = body

    def retry_after(self, default=1.0):
        try:
            return max(0.0, float(self.headers.get("Retry-After", default)))
        except ValueError:
            return default

    def __str__(self):
        detail = self.body.get("detail") if isinstance(self.body, dict) else self.body
        return f"{self.status} {detail}"


class ServerClient:
    """Calls the server's HTTP API. `base` is its URL with any base path,
    e.g. http://127.0.0.1:8000 or https://example.com/ai-voicebot."""

    def __init__(self, base, key=None):
        self.base = base.rstrip("/")
        self.key = key

    def call(self, method, path, body=None, timeout=CALL_TIMEOUT):
        """Returns an Answer for any HTTP status; raises Unreachable when
        there is no answer at all."""
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(self.base + path, data=data, method=method)
        if data is not None:
            req.add_header("Content-Type", "application/json")
        if self.key:
            req.add_header("X-Provider-Key", self.key)
        try:
            with urllib.request.urlopen(req, timeout=timeout) as res:
                return Answer(res.status, res.headers, self._json(res.read()))
        except urllib.error.HTTPError as err:  # a 4xx or 5xx: still an answer
            with err:
                return Answer(err.code, err.headers, self._json(err.read()))
        except (urllib.error.URLError, OSError) as err:
            raise Unreachable(getattr(err, "reason", err)) from None

    @staticmethod
    def _json(raw):
        try:
            return json.loads(raw) if raw else None
        except ValueError:
            return raw.decode("utf-8", "replace")


class Backoff:
    """Exponential backoff with full jitter (SPEC §7, herds): the n-th retry
    waits a random time between 0 and min(cap, base * 2^n)."""

    def __init__(self, cap, base=0.1):
        self.cap = cap
        self.base = base
        self.attempt = 0

    def next(self):
        ceiling = min(self.cap, self.base * 2 ** self.attempt)
        self.attempt = min(self.attempt + 1, 30)
        return random.uniform(0, ceiling)

    def reset(self):
        self.attempt = 0


# -- the state file ----------------------------------------------------------------


def load_state(path):
    if not path or not os.path.exists(path):
        return {}
    try:
        with open(path, encoding="utf-8") as f:
            state = json.load(f)
        return state if isinstance(state, dict) else {}
    except (OSError, ValueError) as err:
        log.warning("state file %s unreadable (%s): starting without it", path, err)
        return {}


def save_state(path, state):
    """Written to a temporary file and renamed: a crash leaves the old file
    or the new one, never half of one."""
    if not path:
        return
    tmp = f"{path}.tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(state, f, indent=2)
        f.write("\n")
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


# -- the provider's life -------------------------------------------------------------


class Stop(Exception):
    """Ends the main loop with an exit code."""

    def __init__(self, code, why):
        super().__init__(why)
        self.code = code
        self.why = why


class Provider:
    def __init__(self, args, voice=None):
        self.args = args
        self.name = args.name
        self.bots = args.bots
        self.client = ServerClient(args.server, args.key)
        self.voice = voice
        self.runs = Runs(args.capacity, voice)
        self.interval = args.heartbeat_interval
        self.backoff = Backoff(args.max_backoff)
        state = load_state(args.state_file)
        # Kept across restarts: the server knows us by it.
        self.provider_id = state.get("provider_id") or None
        # New for every process start (SPEC §7). The state file records the
        # current one for people reading it; it is never reused.
        self.instance_id = uuid.uuid4().hex
        # Set by the signal handler, read by the main loop.
        self.wake = threading.Event()
        self.signals = 0
        self.httpd = None
        self.base_url = None

    # -- signals --

    def on_signal(self, signum, frame):
        self.signals += 1
        self.wake.set()

    def sleep(self, seconds):
        """Sleeps, but wakes at once when a signal came."""
        self.wake.wait(max(0.0, seconds))
        self.wake.clear()

    # -- start --

    def listen(self):
        host, _, port = self.args.listen.rpartition(":")
        host = host.strip("[]") or "127.0.0.1"
        self.httpd = ProviderHTTPServer((host, int(port)), ProviderHandler)
        self.httpd.provider = self
        bound = self.httpd.server_address[1]
        if self.args.public_url:
            self.base_url = self.args.public_url.rstrip("/")
        elif host in ("0.0.0.0", "::"):
            raise Stop(EXIT_CONFIG, f"listening on {host}: give --public-url, the URL "
                                    "the server reaches this provider at")
        else:
            self.base_url = f"http://{host}:{bound}"
        threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.2},
                         name="http", daemon=True).start()
        log.info("listening on %s (port %d)", self.base_url, bound)

    def registration(self):
        body = {
            "name": self.name,
            "base_url": self.base_url,
            "description": self.args.description,
            "bots": [{"name": b, "description": BOTS[b][0]} for b in self.bots],
            "instance_id": self.instance_id,
            "heartbeat_interval": self.interval,
            # The runs we have now: the server keeps the members they hold,
            # moves the others and tells us to stop runs no member holds. A
            # fresh process has none, so its old members are dispatched again.
            "runs": self.runs.ids(),
        }
        if self.provider_id:
            body["provider_id"] = self.provider_id
        if self.args.key:
            body["provider_key"] = self.args.key
        return body

    def register(self):
        """Registers, retrying until the server takes us. Raises Stop on a
        410, on a refusal that retrying will not change, or on a signal."""
        self.backoff.reset()
        down = None
        while True:
            if self.signals:
                raise Stop(EXIT_OK, "stopped before registration")
            try:
                answer = self.client.call("POST", "/api/bots/providers/register",
                                          self.registration())
            except Unreachable as err:
                answer, why = None, f"unreachable ({err})"
            else:
                why = str(answer)
            if answer is not None and answer.status == 200:
                break
            if answer is not None and answer.status == 410:
                raise Stop(EXIT_REMOVED, f"provider {self.provider_id} was removed by an "
                                         "operator (410): not registering again")
            if answer is not None and answer.status == 429:
                # Rate limited: the server says when; jitter spreads the herd.
                wait = answer.retry_after() + random.uniform(0, 0.5)
                log.warning("registration rate limited (429): retrying in %.1f s", wait)
            elif answer is not None and 400 <= answer.status < 500:
                raise Stop(EXIT_CONFIG, f"the server refuses the registration: {answer.status} "
                                        f"{json.dumps(answer.body)}")
            else:
                wait = self.backoff.next()
                if why != down:
                    log.warning("registration failed: server %s; retrying with backoff", why)
                    down = why
            self.sleep(wait)
        given = answer.body.get("provider_id")
        if self.provider_id and given != self.provider_id:
            log.warning("the server gave a new provider id %s (was %s)", given, self.provider_id)
        self.provider_id = given
        save_state(self.args.state_file, {"provider_id": self.provider_id,
                                          "instance_id": self.instance_id,
                                          "name": self.name})
        log.info("registered as %s (instance %s, %d runs)", self.provider_id,
                 self.instance_id, len(self.runs.ids()))
        self.backoff.reset()

    # -- heartbeats --

    def heartbeat(self):
        """One heartbeat; returns its Answer, or an Unreachable when the
        server did not answer."""
        body = dict(self.runs.heartbeat_fields(), instance_id=self.instance_id)
        try:
            return self.client.call("POST", f"/api/bots/providers/{self.provider_id}/heartbeat",
                                    body)
        except Unreachable as err:
            return Unreachable(str(err))

    def run(self):
        """The main loop: register, then heartbeat until stopped."""
        self.listen()
        self.register()
        down = None
        draining_since = None
        drain_asked = False
        wait = 0.0
        while True:
            self.sleep(wait)
            if self.signals >= 2:
                self.deregister()
                raise Stop(EXIT_OK, "second signal: stopped at once")
            if self.signals == 1 and draining_since is None:
                draining_since = time.monotonic()
                self.runs.stop_taking_joins()
                log.info("signal: draining %d runs (at most %.1f s)",
                         len(self.runs.ids()), self.args.drain_timeout)
            if draining_since is not None:
                if not drain_asked:
                    drain_asked = self.ask_drain()
                if time.monotonic() - draining_since > self.drain_bound():
                    log.warning("drain not done after %.1f s with %d runs: deregistering",
                                self.drain_bound(), len(self.runs.ids()))
                    self.deregister()
                    raise Stop(EXIT_OK, "drain bound passed")
            answer = self.heartbeat()
            wait = self.interval
            if isinstance(answer, Unreachable) or answer.status >= 500:
                why = f"unreachable ({answer})" if isinstance(answer, Unreachable) \
                    else f"answered {answer}"
                if why != down:
                    log.warning("heartbeat failed: server %s; retrying with backoff", why)
                    down = why
                wait = self.backoff.next()
                continue
            if down is not None:
                log.info("server reachable again")
                down = None
            self.backoff.reset()
            if answer.status == 200:
                continue
            if answer.status in (404, 410) and draining_since is not None:
                # We asked for the drain: the server deregistered us when the
                # last of our bot members left (or moved). Done.
                raise Stop(EXIT_OK, f"drained: the server deregistered us ({answer.status})")
            if answer.status == 410:
                raise Stop(EXIT_REMOVED, f"provider {self.provider_id} was removed by an "
                                         "operator (410): this instance stops")
            if answer.status == 404:
                # The server does not know us (it lost its state, or evicted
                # us): register again with the same id and our runs.
                log.warning("the server does not know provider %s (404): registering again",
                            self.provider_id)
                self.register()
                wait = 0.0 if self.signals else self.interval
                continue
            log.warning("heartbeat answered %s", answer)

    # -- drain and deregistration --

    def drain_bound(self):
        """How long the drain may take here: the server's timeout, plus time
        for it to stop our runs and for our heartbeats to hear about it."""
        return self.args.drain_timeout + max(5.0, 3 * self.interval)

    def ask_drain(self):
        """POST .../drain; True once the server answered (whatever it said)."""
        body = {"timeout": self.args.drain_timeout}
        if self.args.key:
            body["provider_key"] = self.args.key
        try:
            answer = self.client.call("POST", f"/api/bots/providers/{self.provider_id}/drain",
                                      body)
        except Unreachable as err:
            log.warning("drain request failed: server unreachable (%s); retrying", err)
            return False
        if answer.status == 200:
            log.info("the server has provider %s draining", self.provider_id)
        else:
            log.warning("drain request answered %s", answer)
        return answer.status < 500

    def deregister(self):
        """Best effort DELETE of ourselves: the server moves our members now
        instead of waiting for the cleanup rule."""
        try:
            answer = self.client.call("DELETE", f"/api/bots/providers/{self.provider_id}",
                                      timeout=1.0)
            log.info("deregistered (%s)", answer.status)
        except Unreachable as err:
            log.warning("deregistration failed: server unreachable (%s)", err)

    def close(self):
        for run in self.runs.stop_all():
            log.info("run %s stopped (shutdown)", run.run_id)
        if self.voice is not None:
            self.voice.close()
        if self.httpd is not None:
            self.httpd.shutdown()
            self.httpd.server_close()


# -- the command line ----------------------------------------------------------------


def positive(kind):
    def parse(text):
        value = kind(text)
        if value <= 0:
            raise argparse.ArgumentTypeError(f"must be > 0: {text}")
        return value
    return parse


def bot_list(text):
    bots = [b.strip() for b in text.split(",") if b.strip()]
    unknown = [b for b in bots if b not in BOTS]
    if not bots or unknown:
        raise argparse.ArgumentTypeError(
            f"unknown bots {','.join(unknown) or '(none)'}; known: {','.join(BOTS)}")
    return bots


def parse_args(argv):
    p = argparse.ArgumentParser(description="An example HTTP bot provider for voicebot-server.")
    p.add_argument("--server", default="http://127.0.0.1:8000",
                   help="the server's URL, with its base path if any "
                        "(default http://127.0.0.1:8000)")
    p.add_argument("--listen", default="127.0.0.1:0",
                   help="HOST:PORT to serve the provider protocol on; port 0 picks a free one "
                        "(default 127.0.0.1:0)")
    p.add_argument("--public-url",
                   help="the URL the server calls us at (default http://HOST:PORT of --listen)")
    p.add_argument("--name", default="example-http-provider", help="provider name (1-64 chars)")
    p.add_argument("--description", default="An example HTTP bot provider",
                   help="provider description")
    p.add_argument("--bots", type=bot_list, default=list(BOTS),
                   help=f"comma list of bots to host (default {','.join(BOTS)})")
    p.add_argument("--state-file",
                   help="JSON file that keeps the provider_id across restarts")
    p.add_argument("--key", help="provider key, when the server is configured with keys")
    p.add_argument("--capacity", type=positive(int), default=10,
                   help="runs this provider takes at most (default 10)")
    p.add_argument("--heartbeat-interval", type=float, default=5.0,
                   help="seconds between heartbeats, 0.05 to 3600 (default 5)")
    p.add_argument("--drain-timeout", type=positive(float), default=30.0,
                   help="seconds the server keeps our bot members when we drain on SIGTERM "
                        "(default 30)")
    p.add_argument("--max-backoff", type=positive(float), default=10.0,
                   help="longest pause between retries while the server is down (default 10)")
    p.add_argument("--no-voice", action="store_true",
                   help="keep the bots out of the voice rooms even when aiortc is there")
    p.add_argument("--echo-delay", type=positive(float), default=0.5,
                   help="seconds after which the echo bot sends a person's voice back "
                        "(default 0.5)")
    p.add_argument("--ice-host", action="append", default=[], metavar="ADDR",
                   help="gather ICE candidates on this address only; repeatable (default: "
                        "the host's addresses, and 127.0.0.1 on a loopback-only host)")
    p.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"])
    args = p.parse_args(argv)
    if not 0.05 <= args.heartbeat_interval <= 3600:
        p.error("--heartbeat-interval must be between 0.05 and 3600")
    return args


def start_voice(args):
    """The voice hub (one asyncio thread for every run's voice), or None;
    either way one log line says which."""
    if args.no_voice:
        log.info("voice: off (--no-voice): bots do not join the voice rooms")
        return None
    module, missing = load_voice()
    if module is None:
        log.info("voice: off, standard library only (%s under %s); for voice install Debian's "
                 "python3-aiortc and run this with /usr/bin/python3", missing, sys.executable)
        return None
    log.info("voice: on (%s): the echo bot joins its lobby's voice room and sends each "
             "person their voice back %.1f s later", module.VERSION, args.echo_delay)
    return module.VoiceHub(echo_delay=args.echo_delay, ice_hosts=args.ice_host,
                           max_backoff=args.max_backoff)


def main(argv=None):
    args = parse_args(argv)
    logging.basicConfig(stream=sys.stderr, level=args.log_level.upper(),
                        format="%(asctime)s example-provider %(levelname)s %(message)s")
    voice = start_voice(args)
    provider = Provider(args, voice)
    signal.signal(signal.SIGTERM, provider.on_signal)
    signal.signal(signal.SIGINT, provider.on_signal)
    try:
        provider.run()
        code = EXIT_OK
    except Stop as stop:
        (log.error if stop.code else log.info)("%s; exit %d", stop.why, stop.code)
        code = stop.code
    except OSError as err:  # e.g. the listen address is taken
        log.error("%s; exit %d", err, EXIT_CONFIG)
        code = EXIT_CONFIG
    finally:
        provider.close()
    return code


if __name__ == "__main__":
    sys.exit(main())
