"""Starts the real voicebot-server on free loopback ports and talks to it.

Used by the integration tests (run through ctest). Only the Python standard
library: http.client for requests, subprocess for the processes.
"""

import http.client
import json
import os
import re
import shutil
import signal
import subprocess
import tempfile
import threading
import time

BUILD_DIR = os.environ.get("VB_BUILD_DIR", os.path.join(os.path.dirname(__file__), "..", "..", "build"))
SERVER = os.path.join(BUILD_DIR, "voicebot-server")


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

    def start(self, timeout=20):
        args = [SERVER, "--port", "0", "--caf-port", "0"] + self.args
        self.lines = []
        self.proc = subprocess.Popen(args, cwd=self.workdir, stdout=subprocess.PIPE,
                                     stderr=subprocess.STDOUT, text=True, env=self.env)
        threading.Thread(target=self._pump, args=(self.proc,), daemon=True).start()
        line = self.wait_for_line(r"listening on http://[^:]+:(\d+)", timeout)
        self.port = int(re.search(r"listening on http://[^:]+:(\d+)", line).group(1))
        return self

    def _pump(self, proc):
        for line in proc.stdout:
            with self.cond:
                self.lines.append(line.rstrip("\n"))
                self.cond.notify_all()
        proc.stdout.close()
        with self.cond:
            self.cond.notify_all()

    def wait_for_line(self, pattern, timeout=20):
        """Waits until a log line matches; returns it."""
        rx = re.compile(pattern)
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
        return self.proc.wait(timeout)

    def kill(self):
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)

    def request(self, method, path, body=None, headers=None, timeout=10):
        """Returns (status, headers dict, parsed JSON or raw text)."""
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
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


class TempDir:
    def __init__(self):
        self.path = tempfile.mkdtemp(prefix="vb-it-")

    def cleanup(self):
        shutil.rmtree(self.path, ignore_errors=True)


def run_server_cli(args, cwd, timeout=20):
    """Runs voicebot-server to completion (for --help and bad flags)."""
    return subprocess.run([SERVER] + list(args), cwd=cwd, capture_output=True, text=True,
                          timeout=timeout)
