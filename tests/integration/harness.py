"""Starts the real voicebot-server on free loopback ports and talks to it.

Used by the integration tests (run through ctest). Only the Python standard
library: http.client for requests, subprocess for the processes.
"""

import atexit
import http.client
import http.server
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import unittest
import uuid

BUILD_DIR = os.environ.get("VB_BUILD_DIR", os.path.join(os.path.dirname(__file__), "..", "..", "build"))
SERVER = os.path.join(BUILD_DIR, "voicebot-server")
PROVIDER = os.path.join(BUILD_DIR, "voicebot-provider")

# `scripts/run-tests --sanitize` (docs/testing.md): the binaries are built
# with ASan and UBSan, so they are slower (every wait of this harness is
# VB_TIME_SCALE times longer), and a process whose output holds a sanitizer
# report fails the test that started it (and the whole file, at exit).
SANITIZE = os.environ.get("VB_SANITIZE") == "1"
TIME_SCALE = float(os.environ.get("VB_TIME_SCALE") or 1)
SANITIZER_REPORT = re.compile(r"ERROR: (Address|Leak)Sanitizer|: runtime error: "
                              r"|SUMMARY: (Address|Leak|UndefinedBehavior)Sanitizer")
SANITIZER_FINDINGS = []  # the log of every process that printed a report


def scaled(timeout):
    return timeout * TIME_SCALE


@atexit.register
def _exit_on_sanitizer_findings():
    unreported = [f for f in SANITIZER_FINDINGS if not f.get("reported")]
    if unreported:
        for f in unreported:
            sys.stderr.write(f"sanitizer report from {f['what']}:\n{f['log']}\n")
        sys.stderr.flush()
    if SANITIZER_FINDINGS:
        os._exit(1)


# The journal's CRC-32C (Castagnoli, docs/journal.md), for the tests and
# tools that read or write journal files (test_durability.py,
# fuzz/make_corpus.py).
def _crc32c_table():
    table = []
    for n in range(256):
        c = n
        for _ in range(8):
            c = (c >> 1) ^ 0x82F63B78 if c & 1 else c >> 1
        table.append(c)
    return table


_CRC32C = _crc32c_table()


def crc32c(data, crc=0):
    crc ^= 0xFFFFFFFF
    for b in data:
        crc = _CRC32C[(crc ^ b) & 0xFF] ^ (crc >> 8)
    return crc ^ 0xFFFFFFFF


assert crc32c(b"123456789") == 0xE3069283  # the check value of CRC-32C


def _port_holder(port):
    """A socket bound to 127.0.0.1:port that does not listen: it keeps the
    port from other processes while connections to it are refused."""
    h = socket.socket()
    h.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    h.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    h.bind(("127.0.0.1", port))
    return h


# The per-client quotas off (docs/security.md, "Quotas"): for the tests that
# make many joins or lobbies from one loopback client; the others run with
# the defaults (60 joins a minute, 20 lobbies an hour).
NO_QUOTAS = ("--max-joins-per-client-per-minute", "0", "--max-lobbies-per-client-per-hour", "0")


class Server:
    """One voicebot-server process. Its log is collected line by line, so a
    test can wait for a line instead of sleeping."""

    def __init__(self, workdir, args=(), env=None):
        self.workdir = workdir
        self.args = list(args)
        self.env = env
        self.proc = None
        self.lines = []
        self.cond = threading.Condition()
        self.port = None
        self.caf_port = None

    def start(self, timeout=20, same_ports=False):
        """Starts the process on free ports, or on the ports of its last run
        (`same_ports`: a restart that CAF providers find again)."""
        ports = ["--port", str(self.port if same_ports else 0),
                 "--caf-port", str(self.caf_port if same_ports else 0)]
        self._spawn([SERVER] + ports + self.args)
        line = self.wait_for_line(r"provider gateway listening on [^ ]+:(\d+)", timeout)
        self.caf_port = int(re.search(r"listening on [^ ]+:(\d+)", line).group(1))
        line = self.wait_for_line(r"listening on http://[^:]+:(\d+)", timeout)
        self.port = int(re.search(r"listening on http://[^:]+:(\d+)", line).group(1))
        return self

    def _spawn(self, args):
        self.lines = []
        self.proc = subprocess.Popen(args, cwd=self.workdir, stdout=subprocess.PIPE,
                                     stderr=subprocess.STDOUT, text=True, errors="replace",
                                     env=self.env)
        self.pump = threading.Thread(target=self._pump, args=(self.proc,), daemon=True)
        self.pump.start()

    def wait_for_nth(self, pattern, n, timeout=20):
        """Waits until `n` log lines match; returns the match of the n-th."""
        rx = re.compile(pattern)
        timeout = scaled(timeout)
        deadline = time.monotonic() + timeout
        with self.cond:
            while True:
                found = [m for m in map(rx.search, self.lines) if m]
                if len(found) >= n:
                    return found[n - 1]
                left = deadline - time.monotonic()
                if left <= 0 or (self.proc.poll() is not None and not self.pump.is_alive()):
                    raise AssertionError(f"{len(found)} of {n} lines matched {pattern!r}:\n"
                                         + "\n".join(self.lines))
                self.cond.wait(min(left, 0.5))

    def count_lines(self, pattern):
        rx = re.compile(pattern)
        with self.cond:
            return sum(1 for line in self.lines if rx.search(line))

    def _pump(self, proc):
        report = False
        for line in proc.stdout:
            report = report or bool(SANITIZER_REPORT.search(line))
            with self.cond:
                self.lines.append(line.rstrip("\n"))
                self.cond.notify_all()
        proc.stdout.close()
        if report:
            SANITIZER_FINDINGS.append({"what": " ".join(map(str, proc.args)), "log": self.log()})
        with self.cond:
            self.cond.notify_all()

    def wait_for_line(self, pattern, timeout=20):
        """Waits until a log line matches; returns it."""
        rx = re.compile(pattern)
        timeout = scaled(timeout)
        deadline = time.monotonic() + timeout
        seen = 0
        with self.cond:
            while True:
                for line in self.lines[seen:]:
                    if rx.search(line):
                        return line
                seen = len(self.lines)
                if self.proc.poll() is not None and seen == len(self.lines):
                    # The process ended; give the pump a last chance.
                    self.cond.wait(0.2)
                    if seen == len(self.lines):
                        raise AssertionError(f"server exited ({self.proc.returncode}) before a line "
                                             f"matched {pattern!r}:\n" + self.log())
                    continue
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"no log line matched {pattern!r}:\n" + self.log())
                self.cond.wait(left)

    def log(self):
        with self.cond:
            return "\n".join(self.lines)

    def stop(self, sig=signal.SIGTERM, timeout=10):
        """Sends a signal and waits for the exit; returns the exit code."""
        if self.proc is None or self.proc.poll() is not None:
            return self.proc.returncode if self.proc else None
        self.proc.send_signal(sig)
        try:
            code = self.proc.wait(scaled(timeout))
        except subprocess.TimeoutExpired:
            raise AssertionError(f"no exit {timeout} s after signal {sig}:\n" + self.log())
        self._drain()
        return code

    def wait_exit(self, timeout=15):
        """Waits for the process to exit by itself; returns its exit code."""
        timeout = scaled(timeout)
        try:
            code = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            raise AssertionError(f"no exit within {timeout} s:\n" + self.log())
        self._drain()
        return code

    def kill(self):
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)
        self._drain()

    def _drain(self):
        """Waits until every line the process wrote is in the log."""
        if getattr(self, "pump", None) is not None:
            self.pump.join(10)

    def request(self, method, path, body=None, headers=None, timeout=10):
        """Returns (status, headers dict, parsed JSON or raw text)."""
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=scaled(timeout))
        try:
            hdrs = dict(headers or {})
            data = body
            if body is not None and not isinstance(body, (bytes, str)):
                data = json.dumps(body)
                hdrs.setdefault("Content-Type", "application/json")
            conn.request(method, path, body=data, headers=hdrs)
            res = conn.getresponse()
            raw = res.read()
            try:
                payload = json.loads(raw) if raw else None
            except ValueError:
                payload = raw.decode("utf-8", "replace")
            return res.status, {k.lower(): v for k, v in res.getheaders()}, payload
        finally:
            conn.close()


class Provider(Server):
    """One voicebot-provider process connected to a server's CAF gateway.
    A subclass may say otherwise where it connects (gateway_args) and how
    soon it tries again (MAX_BACKOFF)."""

    MAX_BACKOFF = "1"
    HEARTBEAT = "0.5"

    def __init__(self, workdir, server, name, state_file, args=()):
        super().__init__(workdir, args)
        self.server = server
        self.name = name
        self.state_file = state_file
        self.provider_id = None

    def gateway_args(self):
        return ["--server-host", "127.0.0.1", "--server-port", str(self.server.caf_port)]

    def start(self, timeout=20, wait_registered=True):
        self._spawn([PROVIDER] + self.gateway_args()
                    + ["--name", self.name, "--state-file", self.state_file,
                       "--heartbeat-interval", self.HEARTBEAT, "--max-backoff", self.MAX_BACKOFF,
                       # The bots' voice gathers ICE candidates on loopback only.
                       "--ice-address", "127.0.0.1"]
                    + self.args)
        if wait_registered:
            self.provider_id = self.wait_registered(timeout)
        return self

    def wait_registered(self, timeout=20, after=0):
        """Waits for registration number `after` + 1; returns the provider id."""
        return self.wait_for_nth(r"registered as (\S+)", after + 1, timeout).group(1)

    def runs(self):
        """The run ids this provider started and has not stopped (its log)."""
        with self.cond:
            lines = list(self.lines)
        started, stopped = [], set()
        for line in lines:
            m = re.search(r"run (\S+) started", line)
            if m:
                started.append(m.group(1))
            m = re.search(r"run (\S+) stopped", line)
            if m:
                stopped.add(m.group(1))
        return [r for r in started if r not in stopped]


class TempDir:
    def __init__(self):
        self.path = tempfile.mkdtemp(prefix="vb-it-")

    def cleanup(self):
        shutil.rmtree(self.path, ignore_errors=True)


def run_server_cli(args, cwd, timeout=20):
    """Runs voicebot-server to completion (for --help and bad flags)."""
    return subprocess.run([SERVER] + list(args), cwd=cwd, capture_output=True, text=True,
                          timeout=timeout)


# -- a fake bot provider of the original HTTP protocol (SPEC §4) ---------------



class JsonRequestHandler(http.server.BaseHTTPRequestHandler):
    """The JSON plumbing of the fake HTTP providers: HTTP/1.1 keep-alive,
    no access log, a body read as JSON (or text), an answer written as
    JSON (empty when there is none)."""

    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def _body(self):
        n = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(n) if n else b""
        try:
            return json.loads(raw) if raw else None
        except ValueError:
            return raw.decode("utf-8", "replace")

    def _answer(self, status, payload=None):
        data = json.dumps(payload).encode() if payload is not None else b""
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


class BotListHandler(JsonRequestHandler):
    """A fake provider's handler: GET /bots lists the bots of `provider`
    (the server's probe), every GET recorded by provider._record."""

    provider = None  # set by the subclass of each fake provider

    def do_GET(self):
        self.provider._record("GET", self.path, None)
        if self.path.rstrip("/") == "/bots":
            return self._answer(200, [{"name": b, "description": b + " bot"}
                                      for b in self.provider.bots])
        self._answer(404, {"detail": "Not Found"})


class FakeProvider:
    """A provider of the original voicebot HTTP protocol, inside the test
    process: POST /bots/{bot}/join -> {"status":"ok","run_id":...},
    POST /bots/runs/{run_id}/stop -> 200, GET /bots -> a list.

    Every call is recorded in `calls` as (method, path, parsed JSON body).
    `mode` switches its behaviour for joins:
      "ok"      answer 200 with a fresh run_id
      "reject"  answer `reject_status` (500 by default)
      "no_run_id" answer 200 without a run_id
      "hang"    never answer (until `release()` or `close()`)
      "hold"    answer like "ok", but only once `gate` is set
      "drop"    close the connection without answering
    `refuse()` closes the listening socket so the port refuses connections;
    `listen_again()` binds the same port again."""

    def __init__(self, bots=("echo",), port=0):
        self.bots = list(bots)
        self.calls = []
        self.run_ids = []  # every run_id handed out, in order
        self.mode = "ok"
        self.reject_status = 500
        self.cond = threading.Condition()
        self.released = threading.Event()
        self.gate = threading.Event()
        self.httpd = None
        self._holder = None  # refuse()'s socket that keeps the port
        self.port = None
        self._serve(port)

    # -- life cycle --

    def _serve(self, port):
        fake = self

        class Handler(BotListHandler):
            provider = fake

            def do_POST(self):
                body = self._body()
                parts = self.path.split("/")
                mode = fake.mode
                # /bots/{bot}/join
                if len(parts) == 4 and parts[1] == "bots" and parts[3] == "join":
                    fake._record("POST", self.path, body)
                    if mode == "hang":
                        fake.released.wait(60)
                        self.close_connection = True
                        return
                    if mode == "hold":
                        fake.gate.wait(30)
                    if mode == "drop":
                        self.close_connection = True
                        return
                    if mode == "reject":
                        return self._answer(fake.reject_status, {"detail": "nope"})
                    if mode == "no_run_id":
                        return self._answer(200, {"status": "ok"})
                    run_id = str(uuid.uuid4())
                    with fake.cond:
                        fake.run_ids.append(run_id)
                    return self._answer(200, {"status": "ok", "run_id": run_id})
                # /bots/runs/{run_id}/stop
                if len(parts) == 5 and parts[1] == "bots" and parts[2] == "runs" \
                        and parts[4] == "stop":
                    fake._record("POST", self.path, body)
                    return self._answer(200, {"status": "stopped"})
                fake._record("POST", self.path, body)
                self._answer(404, {"detail": "Not Found"})

        class Httpd(http.server.ThreadingHTTPServer):
            daemon_threads = True
            allow_reuse_address = True
            open_sockets = set()  # kept-alive connections, closed by refuse()

            def server_bind(self):
                # SO_REUSEPORT: refuse() holds the port with a socket that
                # does not listen, and listen_again() binds beside it.
                self.socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
                super().server_bind()

            def process_request(self, request, client_address):
                self.open_sockets.add(request)
                super().process_request(request, client_address)

            def shutdown_request(self, request):
                self.open_sockets.discard(request)
                super().shutdown_request(request)

            def handle_error(self, request, client_address):
                pass  # the server hung up (a timeout, a kill): expected here

        self.httpd = Httpd(("127.0.0.1", port), Handler)
        self.port = self.httpd.server_address[1]
        self._thread = threading.Thread(target=self.httpd.serve_forever,
                                        kwargs={"poll_interval": 0.05}, daemon=True)
        self._thread.start()

    @property
    def base_url(self):
        return f"http://127.0.0.1:{self.port}"

    def refuse(self):
        """Closes the listening socket: connections to the port are refused.
        The port stays held (a bound socket that does not listen: a SYN gets
        a reset), so no other process takes it before listen_again()."""
        if self.httpd is not None:
            self._holder = _port_holder(self.port)
            self.httpd.shutdown()
            self.httpd.server_close()
            # A stopped provider's connections end too (the server keeps
            # connections alive between calls).
            for sock in list(self.httpd.open_sockets):
                try:
                    sock.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
            self.httpd = None

    def listen_again(self):
        if self.httpd is None:
            self._serve(self.port)
            self._release_port()

    def release(self):
        """Lets hanging handlers return (without an answer)."""
        self.released.set()

    def close(self):
        self.release()
        self.gate.set()
        self.refuse()
        self._release_port()

    def _release_port(self):
        """Closes refuse()'s port holder, if any."""
        if self._holder is not None:
            self._holder.close()
            self._holder = None

    # -- records --

    def _record(self, method, path, body):
        with self.cond:
            self.calls.append((method, path, body))
            self.cond.notify_all()

    def calls_to(self, method, prefix="", suffix=""):
        with self.cond:
            return [c for c in self.calls
                    if c[0] == method and c[1].startswith(prefix) and c[1].endswith(suffix)]

    def joins(self, bot=None):
        return self.calls_to("POST", f"/bots/{bot}/" if bot else "/bots/", "/join")

    def stops(self):
        return self.calls_to("POST", "/bots/runs/", "/stop")

    def wait_for(self, predicate, timeout=10):
        """Waits until predicate(calls) is true; returns the calls."""
        timeout = scaled(timeout)
        deadline = time.monotonic() + timeout
        with self.cond:
            while not predicate(list(self.calls)):
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"fake provider: condition not met; calls={self.calls}")
                self.cond.wait(left)
            return list(self.calls)

    def wait_for_stop(self, run_id, timeout=10):
        path = f"/bots/runs/{run_id}/stop"
        return self.wait_for(lambda calls: any(c[0] == "POST" and c[1] == path for c in calls),
                             timeout)


# -- raw sockets ---------------------------------------------------------------

def raw_exchange(port, data, timeout=5):
    """Sends raw bytes, half-closes nothing, and reads until the server
    closes the connection or `timeout` passes. Returns the bytes read."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        s.sendall(data)
        return read_until_closed(s, timeout)


def read_until_closed(sock, timeout=5):
    chunks = []
    deadline = time.monotonic() + timeout
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            break
        sock.settimeout(left)
        try:
            chunk = sock.recv(65536)
        except socket.timeout:
            break
        except ConnectionResetError:
            break
        if not chunk:
            break
        chunks.append(chunk)
    return b"".join(chunks)


def read_responses(sock, count, timeout=5):
    """Reads `count` HTTP responses (Content-Length framed) from a socket.
    Returns a list of (status, headers dict lower-cased, body bytes)."""
    buf = b""
    out = []
    deadline = time.monotonic() + timeout
    while len(out) < count:
        head_end = buf.find(b"\r\n\r\n")
        if head_end >= 0:
            head = buf[:head_end].decode("latin-1")
            lines = head.split("\r\n")
            status = int(lines[0].split(" ")[1])
            headers = {}
            for line in lines[1:]:
                k, _, v = line.partition(":")
                headers[k.strip().lower()] = v.strip()
            length = int(headers.get("content-length", "0"))
            if len(buf) >= head_end + 4 + length:
                body = buf[head_end + 4:head_end + 4 + length]
                buf = buf[head_end + 4 + length:]
                out.append((status, headers, body))
                continue
        left = deadline - time.monotonic()
        if left <= 0:
            raise AssertionError(f"read {len(out)} of {count} responses; rest: {buf!r}")
        sock.settimeout(left)
        chunk = sock.recv(65536)
        if not chunk:
            raise AssertionError(f"connection closed after {len(out)} of {count} responses; "
                                 f"rest: {buf!r}")
        buf += chunk
    return out


def parse_raw_response(data):
    """Status and body of the first response in raw bytes, or (None, data)."""
    if not data.startswith(b"HTTP/"):
        return None, data
    status = int(data.split(b" ", 2)[1])
    _, _, body = data.partition(b"\r\n\r\n")
    return status, body


# -- a test case with a server, fake providers and a temporary dir ----------------


class ServerTestCase(unittest.TestCase):
    """setUp makes a temporary dir; `start_server` and `fake_provider` start
    things that tearDown stops again. Helpers speak the API of SPEC §2."""

    def setUp(self):
        self.tmp = TempDir()
        self.servers = []
        self.providers = []
        # Other processes of a test (voicebot-providers): killed first.
        self.procs = []
        # Lobby WebSockets (lobby_socket): closed first.
        self.sockets = []
        self.findings_before = len(SANITIZER_FINDINGS)

    def tearDown(self):
        for ws in self.sockets:
            ws.close()
        for p in self.procs:
            p.kill()
        if SANITIZE:
            # A graceful stop, so that LeakSanitizer looks at the server's
            # exit too (a killed process reports nothing).
            for p in self.providers:
                p.release()
                p.gate.set()
            for s in self.servers:
                try:
                    s.stop(signal.SIGTERM, 10)
                except AssertionError:
                    pass  # not what this test checks; killed below
        for s in self.servers:
            s.kill()
        for p in self.providers:
            p.close()
        self.tmp.cleanup()
        found = SANITIZER_FINDINGS[self.findings_before:]
        for f in found:
            f["reported"] = True
        if found:
            self.fail("sanitizer report:\n" + "\n\n".join(f"{f['what']}:\n{f['log']}"
                                                          for f in found))

    def start_server(self, *args):
        s = Server(self.tmp.path, args)
        self.servers.append(s)
        return s.start()

    def fake_provider(self, bots=("echo",)):
        p = FakeProvider(bots)
        self.providers.append(p)
        return p

    def state_file(self, name):
        """Where the voicebot-provider `name` keeps its state."""
        return os.path.join(self.tmp.path, name + ".state.json")

    def start_provider(self, provider, **kw):
        """Starts a voicebot-provider (a Provider), killed in tearDown."""
        self.procs.append(provider)
        return provider.start(**kw)

    def listed(self, server):
        """{provider_id: entry} of GET /api/bots/providers."""
        status, _, res = server.request("GET", "/api/bots/providers")
        self.assertEqual(status, 200, res)
        return {p["provider_id"]: p for p in res["providers"]}

    def wait_online(self, server, provider_id, timeout=15):
        """Waits until the listing has the provider online; returns its entry."""
        def online():
            entry = self.listed(server).get(provider_id)
            return entry if entry is not None and entry["status"] == "online" else None
        return wait_until(online, timeout, f"provider {provider_id} online")

    def data(self, *parts):
        return os.path.join(self.tmp.path, "data", *parts)

    def register(self, server, fp, name="fake", bots=None, expect=200, **extra):
        body = {"name": name, "base_url": fp.base_url,
                "bots": [{"name": b, "description": b + " bot"} for b in (bots or fp.bots)]}
        body.update(extra)
        status, _, res = server.request("POST", "/api/bots/providers/register", body)
        self.assertEqual(status, expect, res)
        return res.get("provider_id") if isinstance(res, dict) else None

    def create_lobby(self, server, name="room", private=False):
        status, _, res = server.request("POST", "/api/lobby", {"name": name, "private": private})
        self.assertIn(status, (200, 201), res)
        return res

    def join(self, server, lobby_id, bot="echo", nick=None, **extra):
        body = {"lobby_id": lobby_id}
        if nick is not None:
            body["nick"] = nick
        body.update(extra)
        return server.request("POST", f"/api/bots/{bot}/join", body)

    def joined(self, server, lobby_id, bot="echo", nick="Echo", **extra):
        """A join that must be answered 200: its answer."""
        status, _, res = self.join(server, lobby_id, bot, nick, **extra)
        self.assertEqual(status, 200, res)
        return res

    def lobby_socket(self, server, lobby_id, members=True, prefix="", **kw):
        """A lobby WebSocket (SPEC §9), closed in tearDown; with `members`,
        its first message (the member list) is read and checked."""
        from wsclient import WebSocket
        ws = WebSocket(server.port, f"{prefix}/ws/lobby/{lobby_id}", **kw)
        self.sockets.append(ws)
        if members:
            self.assertEqual(ws.recv_json()["type"], "members")
        return ws

    def person(self, server, lobby_id, nick):
        """A person's session (POST …/sessions): its answer, token included."""
        status, _, body = server.request("POST", f"/api/lobby/{lobby_id}/sessions", {"nick": nick})
        self.assertEqual(status, 201, body)
        return body

    def hello(self, ws, who, resume=False, token=None):
        """Says hello as `who`; the welcome or error that answers."""
        ws.send_json({"type": "hello", "session_id": who["session_id"],
                      "token": token if token is not None else who["session_token"],
                      "resume": resume})
        msg, _ = ws.wait_for(lambda m: m.get("type") in ("welcome", "error"))
        return msg

    def sessions(self, server, lobby_id):
        status, _, res = server.request("GET", f"/api/lobby/{lobby_id}")
        self.assertEqual(status, 200, res)
        return res["sessions"]

    def assertError(self, answer, status, code, detail=None):
        got_status, _, body = answer
        self.assertEqual(got_status, status, body)
        self.assertIsInstance(body, dict, body)
        self.assertEqual(body.get("code"), code, body)
        if detail is not None:
            self.assertEqual(body.get("detail"), detail, body)
        return body


# -- waiting for a condition and reading /metrics (added for the fleet tests) ----


def wait_until(probe, timeout=10, what="condition", every=0.02):
    """Calls `probe()` until it returns something true, at most `timeout`
    seconds; returns that value. `every` is the pause between calls (the
    server offers no way to be told, so it is polled)."""
    timeout = scaled(timeout)
    deadline = time.monotonic() + timeout
    last = None
    while True:
        last = probe()
        if last:
            return last
        if time.monotonic() > deadline:
            raise AssertionError(f"no {what} within {timeout} s (last: {last!r})")
        time.sleep(every)


def metric_samples(server):
    """GET /metrics as {(name, frozenset of (label, value)): float}."""
    status, _, text = server.request("GET", "/metrics")
    if status != 200:
        raise AssertionError(f"/metrics answered {status}: {text!r}")
    samples = {}
    rx = re.compile(r'^([A-Za-z_:][A-Za-z0-9_:]*)(?:\{(.*)\})?\s+(\S+)')
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        m = rx.match(line)
        if not m:
            continue
        labels = frozenset(re.findall(r'([A-Za-z_][A-Za-z0-9_]*)="((?:[^"\\]|\\.)*)"',
                                      m.group(2) or ""))
        samples[(m.group(1), labels)] = float(m.group(3))
    return samples


def metric_value(server, name, **labels):
    """One sample of /metrics (None when the series is not there)."""
    return metric_samples(server).get((name, frozenset(labels.items())))
