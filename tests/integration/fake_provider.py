"""Fake bot providers of the original HTTP protocol (SPEC §4) for the fleet
tests (SPEC §7): several of them serve the same bot, each can be told to
answer normally, slowly, with an error status or not at all, can refuse
connections (a closed port) or die in the middle of a test, and keeps track
of the runs it was given, so a test (or its heartbeat loop) can say which
runs it is running now.

Only the Python standard library; every socket is on loopback."""

import http.client
import http.server
import json
import socket
import threading
import time
import uuid

from harness import BotListHandler, ServerTestCase, wait_until
from wsclient import WebSocket


class FleetProvider:
    """One fake HTTP provider in the test process.

    Answers
      POST /bots/{bot}/join          by `mode` (below)
      POST /bots/runs/{run_id}/stop  200 {"status": "stopped"}, ends the run
                                     (or `stop_status`, and the run stays)
      GET  /bots                     200 [{name, description}] (the probe)

    `mode` for joins:
      "ok"      200 {"status": "ok", "run_id": fresh}
      "slow"    the same, after `delay` seconds (past the dispatch timeout)
      "status"  `status` (500, 409, ...) {"detail": "nope"}
      "drop"    close the connection without an answer

    Every call is recorded in `calls` as (monotonic time, method, path, body).
    `runs` holds the runs it accepted and was not told to stop (run_id ->
    the join's body); `forget(run_id)` loses one without a stop (a crash of
    that run). `kill()` closes the listening socket and every open
    connection: from then on the port refuses connections."""

    def __init__(self, bots=("echo",), name="fake"):
        self.bots = list(bots)
        self.name = name
        self.mode = "ok"
        self.delay = 0.0
        self.status = 500
        self.stop_status = 200  # another status: stops fail, the run stays
        self.calls = []
        self.runs = {}
        self.accepted = []  # every run_id it handed out, in order
        self.cond = threading.Condition()
        self.dead = threading.Event()
        self._sockets = set()
        self._httpd = self._serve()
        self.port = self._httpd.server_address[1]

    # -- the HTTP side -----------------------------------------------------------

    def _serve(self):
        fake = self

        class Handler(BotListHandler):
            provider = fake

            def do_POST(self):
                body = self._body()
                fake._record("POST", self.path, body)
                parts = self.path.split("/")
                if len(parts) == 4 and parts[1] == "bots" and parts[3] == "join":
                    return self._join(body)
                if len(parts) == 5 and parts[1:3] == ["bots", "runs"] and parts[4] == "stop":
                    if fake.stop_status != 200:
                        return self._answer(fake.stop_status, {"detail": "nope"})
                    with fake.cond:
                        fake.runs.pop(parts[3], None)
                        fake.cond.notify_all()
                    return self._answer(200, {"status": "stopped"})
                self._answer(404, {"detail": "Not Found"})

            def _join(self, body):
                mode, delay, status = fake.mode, fake.delay, fake.status
                if mode == "drop":
                    self.close_connection = True
                    return
                if mode == "status":
                    return self._answer(status, {"detail": "nope"})
                if mode == "slow" and fake.dead.wait(delay):
                    self.close_connection = True  # killed while it waited
                    return
                run_id = "run-" + uuid.uuid4().hex
                with fake.cond:
                    fake.runs[run_id] = body
                    fake.accepted.append(run_id)
                    fake.cond.notify_all()
                self._answer(200, {"status": "ok", "run_id": run_id})

        class Httpd(http.server.ThreadingHTTPServer):
            daemon_threads = True
            allow_reuse_address = True

            def process_request(self, request, client_address):
                with fake.cond:
                    fake._sockets.add(request)
                super().process_request(request, client_address)

            def shutdown_request(self, request):
                with fake.cond:
                    fake._sockets.discard(request)
                super().shutdown_request(request)

            def handle_error(self, request, client_address):
                pass  # the server hung up (a timeout) or we were killed

        httpd = Httpd(("127.0.0.1", 0), Handler)
        threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05},
                         daemon=True).start()
        return httpd

    @property
    def base_url(self):
        return f"http://127.0.0.1:{self.port}"

    def kill(self):
        """Dies: the port refuses connections, open connections are reset."""
        self.dead.set()
        if self._httpd is None:
            return
        self._httpd.shutdown()
        self._httpd.server_close()
        with self.cond:
            sockets = list(self._sockets)
        for sock in sockets:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        self._httpd = None

    close = kill

    # -- what it saw -------------------------------------------------------------

    def _record(self, method, path, body):
        with self.cond:
            self.calls.append((time.monotonic(), method, path, body))
            self.cond.notify_all()

    def joins(self):
        with self.cond:
            return [c for c in self.calls if c[1] == "POST" and c[2].endswith("/join")]

    def stops(self):
        """The run ids it was told to stop, in order."""
        with self.cond:
            return [c[2].split("/")[3] for c in self.calls
                    if c[1] == "POST" and c[2].startswith("/bots/runs/")]

    def probes(self):
        with self.cond:
            return [c for c in self.calls if c[1] == "GET"]

    def live_runs(self):
        with self.cond:
            return list(self.runs)

    def forget(self, run_id):
        """Loses a run without being told to stop it."""
        with self.cond:
            self.runs.pop(run_id, None)

    def wait_for(self, predicate, timeout=10, what="condition"):
        """Waits until predicate(self) is true (it is checked on every call
        the provider gets, and at least every 0.1 s)."""
        deadline = time.monotonic() + timeout
        with self.cond:
            while True:
                result = predicate(self)
                if result:
                    return result
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"fake provider {self.name}: no {what} within "
                                         f"{timeout} s; calls={self.calls}")
                self.cond.wait(min(left, 0.1))

    def wait_for_stop(self, run_id, timeout=10):
        return self.wait_for(lambda p: run_id in p.stops(), timeout, f"stop of {run_id}")


class Heartbeats:
    """Sends POST /api/bots/providers/{id}/heartbeat every `every` seconds
    on its own thread, with the body `body()` returns at that moment, until
    stop(). Answers are kept in `answers` (status, body)."""

    def __init__(self, server_port, provider_id, every, body=lambda: {}):
        self.port = server_port
        self.provider_id = provider_id
        self.every = every
        self.body = body
        self.answers = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self):
        while not self._stop.is_set():
            try:
                conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=5)
                conn.request("POST", f"/api/bots/providers/{self.provider_id}/heartbeat",
                             body=json.dumps(self.body()),
                             headers={"Content-Type": "application/json"})
                res = conn.getresponse()
                raw = res.read()
                conn.close()
                self.answers.append((res.status, json.loads(raw) if raw else None))
            except (OSError, ValueError) as e:
                self.answers.append((None, str(e)))
            self._stop.wait(self.every)

    def stop(self):
        self._stop.set()
        self._thread.join(10)


# -- a test case for the fleet tests -----------------------------------------------


class FleetTestCase(ServerTestCase):
    """ServerTestCase with fleet helpers: fake providers of one bot,
    heartbeat loops and lobby WebSockets that tearDown ends again."""

    # Short timings: a sweep every 0.2 s, stale after 1 s, 0.5 s to accept.
    FAST = ("--cleanup-interval", "0.2", "--stale-after", "1", "--dispatch-timeout", "0.5")
    # The same, for tests that need no eviction (fakes that only answer
    # probes would be probed all the time otherwise).
    CALM = ("--cleanup-interval", "0.2", "--stale-after", "30", "--dispatch-timeout", "0.5")

    def setUp(self):
        super().setUp()
        self.fleet = []
        self.beats = []
        self.sockets = []

    def tearDown(self):
        for b in self.beats:
            b.stop()
        for ws in self.sockets:
            ws.close()
        for fp in self.fleet:
            fp.kill()
        super().tearDown()

    # -- providers --

    def fleet_provider(self, name, bots=("echo",)):
        fp = FleetProvider(bots, name)
        self.fleet.append(fp)
        return fp

    def dead_port_provider(self, name, bots=("echo",)):
        """A provider whose port refuses connections from the start."""
        fp = self.fleet_provider(name, bots)
        fp.kill()
        return fp

    def enlist(self, server, fp, expect=200, **extra):
        """Registers a fake provider (its name, base_url and bots, plus
        `extra`); returns the provider id."""
        body = {"name": fp.name, "base_url": fp.base_url,
                "bots": [{"name": b, "description": b + " bot"} for b in fp.bots]}
        body.update(extra)
        status, _, res = server.request("POST", "/api/bots/providers/register", body)
        self.assertEqual(status, expect, res)
        return res.get("provider_id") if isinstance(res, dict) else None

    def enlisted(self, server, name, bots=("echo",), **extra):
        """A new fake provider, registered (with `extra`): (provider, id)."""
        fp = self.fleet_provider(name, bots)
        return fp, self.enlist(server, fp, **extra)

    def heartbeat(self, server, pid, **body):
        return server.request("POST", f"/api/bots/providers/{pid}/heartbeat", body)

    def beat(self, server, fp, pid, every=0.1, **fields):
        """A heartbeat loop for `fp`: its live runs, plus `fields`."""
        loop = Heartbeats(server.port, pid, every,
                          lambda: dict(fields, runs=fp.live_runs()))
        self.beats.append(loop)
        return loop

    def entry(self, server, pid):
        status, _, res = server.request("GET", f"/api/bots/providers/{pid}")
        if status == 404:
            return None
        self.assertEqual(status, 200, res)
        return res

    def wait_status(self, server, pid, want, timeout=10):
        return wait_until(lambda: (lambda e: e if e and e["status"] == want else None)(
            self.entry(server, pid)), timeout, f"provider {pid} {want}")

    def wait_gone(self, server, pid, timeout=10):
        wait_until(lambda: self.entry(server, pid) is None, timeout,
                   f"deregistration of {pid}")

    # -- lobbies and members --

    def lobby_with_member(self, server, bot="echo", nick="Echo", **extra):
        """A new lobby and a bot joined to it: (lobby id, the join's answer)."""
        lobby = self.create_lobby(server)["id"]
        return lobby, self.joined(server, lobby, bot, nick, **extra)

    def member(self, server, lobby_id, session_id):
        for m in self.sessions(server, lobby_id):
            if m["session_id"] == session_id:
                return m
        return None

    def wait_member(self, server, lobby_id, session_id, predicate, timeout=10, what="change"):
        def probe():
            m = self.member(server, lobby_id, session_id)
            return m if m is not None and predicate(m) else None
        return wait_until(probe, timeout, f"member {session_id}: {what}")

    def lobby_socket(self, server, lobby_id):
        """A WebSocket on the lobby, past its first `members` message."""
        ws = WebSocket(server.port, f"/ws/lobby/{lobby_id}")
        self.sockets.append(ws)
        hello = ws.recv_json()
        self.assertEqual(hello["type"], "members", hello)
        return ws
