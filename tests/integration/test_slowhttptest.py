"""Debian's slowhttptest against the real server (issue 13 part 4).

Three attacks, each against a fresh server on free loopback ports started
with `--header-timeout 2 --read-timeout 4 --write-timeout 4
--max-connections 200 --max-connections-per-address 32`:

  - slowloris (`-H`): unfinished header blocks, a header line a second;
    the header timeout must cut them;
  - slow body (`-B`): POSTs to /api/lobby whose body trickles in; the read
    timeout must cut them;
  - slow read (`-X`): three pipelined GETs of /api/bots per connection,
    read 16 bytes a second through a 32-64 byte receive window; the write
    timeout must cut them. The bot list is first made 1.4 MB (20 providers
    of 60 bots with long descriptions): the 46 kB OpenAPI document, even 10
    times pipelined (slowhttptest's most), fits in the kernel's loopback
    send buffer, so its writes complete at once and only the idle timeout
    would be tested.

slowhttptest opens 400 connections at 200 a second from one client address
while a prober asks for /api/health (and /metrics) from another address
every 0.25 s, a connection per request. Asserted: every probe is answered
200 within 2 s during the attack; the server never holds more than the
per-address cap (plus the scrape's own connection: `voicebot_http_connections`);
`voicebot_http_connections_refused_total` grew and the cap's log line is
there; the server cut every attack connection itself, within the mode's
timeout of the last one opened and before slowhttptest's own time limit
(the gauge back at the scrape's own connection while slowhttptest still
ran, or slowhttptest stopping with "No open connections left", which it
says only when the peer closed each one); the connections drain once
slowhttptest is gone (awaited); the server is alive afterwards.

Source addresses: slowhttptest 1.8.2 has no option to bind a source address
(`slowhttptest -h`: none; it only connects to the URL's host). On Linux a
connection to any 127.x address gets the source 127.0.0.1 (the local route
`127.0.0.0/8 dev lo src 127.0.0.1`), so the attacker's address is
127.0.0.1, whatever 127.x target it is given. The prober binds its sockets
to 127.0.0.3 before connecting, so the per-address cap (keyed on the
client's address) keeps the attacker's 127.0.0.1 apart from it. The
harness's own `Server.request` connects from 127.0.0.1 too, the attacker's
address, so this test sends every request of its own from 127.0.0.3.

slowhttptest's own probe connection comes from the attacker's address as
well, so its "service available" says whether the capped address itself
still got an answer; it is printed, not asserted. The one-line summary per
mode (slowhttptest's CSV report: connections, closed, pending, connected,
the seconds with the service available, its exit status; the server's peak
connections, refusals, the probes) goes to standard output.

Skipped when `slowhttptest` is not on PATH (scripts/setup-deps installs
Debian's package)."""

import csv
import json
import os
import re
import shutil
import socket
import subprocess
import threading
import time
import unittest

from harness import ServerTestCase, parse_raw_response, read_until_closed, wait_until

SLOWHTTPTEST = shutil.which("slowhttptest")
PROBE_FROM = "127.0.0.3"
ATTACKER = "127.0.0.1"  # the source the kernel picks for slowhttptest (docstring)
PER_ADDRESS = 32
MAX_CONNECTIONS = 200
HEADER_TIMEOUT = 2
READ_TIMEOUT = 4
WRITE_TIMEOUT = 4
PROBE_EVERY = 0.25
PROBE_BOUND = 2.0
ATTACK_SECONDS = 12  # slowhttptest's -l; each attack is bounded by it


def request_from(source, port, method, path, timeout, body=None):
    """One request on a fresh connection bound to `source`; returns
    (status or None, body bytes). Raises OSError when it cannot connect."""
    head = f"{method} {path} HTTP/1.1\r\nHost: t\r\nConnection: close\r\n"
    if body is not None:
        data = json.dumps(body).encode()
        head += f"Content-Type: application/json\r\nContent-Length: {len(data)}\r\n"
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(timeout)
        sock.bind((source, 0))
        sock.connect(("127.0.0.1", port))
        sock.sendall(head.encode() + b"\r\n" + (data if body is not None else b""))
        return parse_raw_response(read_until_closed(sock, timeout))


def get_from(source, port, path, timeout):
    return request_from(source, port, "GET", path, timeout)


def scrape(port, source=PROBE_FROM):
    """Two samples of /metrics: (open connections, refused connections)."""
    status, body = get_from(source, port, "/metrics", 5)
    if status != 200:
        raise AssertionError(f"/metrics answered {status}: {body[:200]!r}")
    text = body.decode("utf-8", "replace")

    def value(name):
        m = re.search(rf"^{name}(?:{{}})? (\S+)$", text, re.M)
        return float(m.group(1)) if m else None
    return value("voicebot_http_connections"), value("voicebot_http_connections_refused_total")


class Prober(threading.Thread):
    """From PROBE_FROM, every PROBE_EVERY seconds: GET /api/health (timed,
    bounded by PROBE_BOUND) and GET /metrics (the connections gauge and the
    refusal counter)."""

    def __init__(self, port):
        super().__init__(daemon=True)
        self.port = port
        self.halt = threading.Event()
        self.probes = []   # (monotonic start, status or error text, seconds)
        self.samples = []  # (monotonic, open connections, refused)

    def run(self):
        while not self.halt.is_set():
            started = time.monotonic()
            try:
                status = get_from(PROBE_FROM, self.port, "/api/health", PROBE_BOUND)[0]
            except OSError as e:
                status = f"{type(e).__name__}: {e}"
            self.probes.append((started, status, time.monotonic() - started))
            try:
                open_, refused = scrape(self.port)
                self.samples.append((time.monotonic(), open_, refused))
            except (OSError, AssertionError) as e:
                self.samples.append((time.monotonic(), f"{type(e).__name__}: {e}", None))
            # Pacing between probes (nothing to wait for).
            self.halt.wait(max(0.0, PROBE_EVERY - (time.monotonic() - started)))

    def stop(self):
        self.halt.set()
        self.join(10)


def read_report(prefix):
    """slowhttptest's CSV (-g -o PREFIX): rows of
    Seconds,Closed,Pending,Connected,Service Available (the last is the
    number of connections when its probe was answered, 0 when not)."""
    with open(prefix + ".csv", newline="") as f:
        rows = list(csv.DictReader(f))
    out = []
    for row in rows:
        try:
            out.append({k.strip(): int(v) for k, v in row.items() if k})
        except (TypeError, ValueError):
            continue
    return out


@unittest.skipIf(SLOWHTTPTEST is None,
                 "slowhttptest is not on PATH (Debian package slowhttptest; scripts/setup-deps)")
class SlowHttpTestTest(ServerTestCase):
    def start_target(self):
        s = self.start_server("--header-timeout", str(HEADER_TIMEOUT),
                              "--read-timeout", str(READ_TIMEOUT),
                              "--write-timeout", str(WRITE_TIMEOUT),
                              "--max-connections", str(MAX_CONNECTIONS),
                              "--max-connections-per-address", str(PER_ADDRESS))
        status, body = get_from(PROBE_FROM, s.port, "/api/health", 5)
        self.assertEqual(status, 200, body)
        return s

    def fill_bot_list(self, s):
        """Makes GET /api/bots about 1.4 MB: 20 providers of 60 bots with
        1000-character descriptions (each registration under the 64 KiB
        body limit). Their base URLs are never called within the test (no
        join, no cleanup sweep before --cleanup-interval's 300 s)."""
        for p in range(20):
            body = {"name": f"big{p}", "base_url": f"http://127.0.0.1:{9000 + p}",
                    "bots": [{"name": f"bot{p}x{b}", "description": "d" * 1000}
                             for b in range(60)]}
            status, res = request_from(PROBE_FROM, s.port, "POST",
                                       "/api/bots/providers/register", 10, body)
            self.assertEqual(status, 200, res[:300])
        status, res = get_from(PROBE_FROM, s.port, "/api/bots", 10)
        self.assertEqual(status, 200)
        self.assertGreater(len(res), 1_000_000)
        return len(res)

    def attack(self, mode, args, timeout, setup=None):
        """Runs slowhttptest `mode` `args` against a fresh server with the
        prober going; `timeout` is the server's timeout that must cut the
        attack's connections. Asserts what the server must do and prints
        the summary line."""
        s = self.start_target()
        if setup:
            setup(s)
        args = [a.format(port=s.port) for a in args]
        connections = int(args[args.index("-c") + 1])
        rate = int(args[args.index("-r") + 1])
        _, refused_before = scrape(s.port)
        prefix = os.path.join(self.tmp.path, f"slowhttptest-{mode.strip('-')}")
        cmd = [SLOWHTTPTEST, mode] + args + ["-l", str(ATTACK_SECONDS), "-p", "2",
                                             "-g", "-o", prefix]
        prober = Prober(s.port)
        prober.start()
        attack_started = time.monotonic()
        proc = subprocess.Popen(cmd, cwd=self.tmp.path, stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, text=True, errors="replace")
        try:
            out, _ = proc.communicate(timeout=ATTACK_SECONDS + 20)
        except subprocess.TimeoutExpired:
            proc.kill()
            out, _ = proc.communicate()
            prober.stop()
            self.fail(f"slowhttptest did not end by itself: {' '.join(cmd)}\n{out[-2000:]}")
        attack_ended = time.monotonic()
        ran = attack_ended - attack_started
        prober.stop()
        out = re.sub(r"\x1b\[[0-9;]*[A-Za-z]", "", out)  # its colours

        # Afterwards the connections drain (awaited, not slept).
        def settled():
            open_ = scrape(s.port)[0]
            # At most 1: the scrape's own connection.
            return (open_,) if open_ is not None and open_ <= 1 else None
        drained = wait_until(settled, timeout=timeout + 6,
                             what="open connections back to the scrape's own")[0]
        _, refused_after = scrape(s.port)
        alive = get_from(PROBE_FROM, s.port, "/api/health", 5)[0]

        # -- the numbers --------------------------------------------------------
        rows = read_report(prefix) if os.path.exists(prefix + ".csv") else []
        last = rows[-1] if rows else {}
        available = [r for r in rows if r.get("Service Available", 0) > 0]
        m = re.search(r"Exit status:\s*(.+)", out)
        exit_status = m.group(1).strip() if m else "?"
        gauges = [(round(t - attack_started, 2), int(o)) for t, o, _ in prober.samples
                  if isinstance(o, float) and t < attack_ended]
        peak = max((o for _, o in gauges), default=None)
        # When the server had cut every attack connection: the first sample
        # back at the scrape's own connection after the attack's had risen,
        # or, when slowhttptest stopped by itself for want of open
        # connections (each one closed by the server), its end.
        risen = False
        cut_at = None
        for t, o in gauges:
            if o > 2:
                risen = True
            elif risen and o <= 1:
                cut_at = t
                break
        if exit_status.startswith("No open connections left"):
            cut_at = ran if cut_at is None else min(cut_at, ran)
        # Every connection is opened by connections/rate s; the last one
        # must be cut within the timeout of it (4 s of slack for a loaded
        # machine), well before slowhttptest's own time limit.
        cut_bound = connections / rate + timeout + 4
        probes = [p for p in prober.probes if p[0] < attack_ended]
        bad = [p for p in probes if p[1] != 200 or p[2] > PROBE_BOUND]
        worst = max((p[2] for p in probes), default=0.0)
        summary = (
            f"slowhttptest {mode} {' '.join(args)} -l {ATTACK_SECONDS} -p 2: "
            f"ran {ran:.1f} s, exit '{exit_status}'; its last report ({last.get('Seconds', '?')} s): "
            f"closed {last.get('Closed', '?')}, pending {last.get('Pending', '?')}, connected "
            f"{last.get('Connected', '?')}; service available (its probe, from {ATTACKER}) in "
            f"{len(available)} of {len(rows)} seconds | server: peak "
            f"{peak} open, refused "
            f"+{int(refused_after - refused_before)}, attack connections all cut "
            f"{'by %.1f s' % cut_at if cut_at is not None else 'not before slowhttptest ended'} "
            f"(bound {cut_bound:.0f} s), {int(drained)} open after; health from {PROBE_FROM}: "
            f"{len(probes) - len(bad)}/{len(probes)} 200 within {PROBE_BOUND:.0f} s, "
            f"worst {worst:.3f} s")
        print("\n" + summary, flush=True)

        # -- what the server must do ----------------------------------------------
        self.assertIsNone(s.proc.poll(), "the server died:\n" + s.log()[-3000:])
        self.assertEqual(alive, 200)
        self.assertGreater(len(probes), 8, prober.probes)
        self.assertEqual(bad, [], f"health probes from {PROBE_FROM} failed or were slow "
                                  f"during {' '.join(cmd)}")
        self.assertGreater(refused_after, refused_before,
                           f"the per-address cap was never hit by {' '.join(cmd)}:\n{out[-1500:]}")
        self.assertIn(f"connection refused: {ATTACKER} has {PER_ADDRESS} connections open",
                      s.log())
        self.assertIsNotNone(peak)
        # The cap holds: the attacker's slots plus the prober's own, the
        # scrape and, at most, its health probe just before it (closed by
        # the client, not yet by the server, on a loaded machine).
        self.assertLessEqual(peak, PER_ADDRESS + 2, gauges)
        self.assertTrue(risen, f"the attack never held connections: {gauges}")
        self.assertIsNotNone(
            cut_at, f"the server held the attack's connections until slowhttptest ended "
                    f"({ran:.1f} s; its timeout here {timeout} s): {gauges}")
        self.assertLessEqual(cut_at, cut_bound, gauges)
        return summary

    def test_slowloris(self):
        # 400 connections opened at 200 a second, each sending a header line
        # (up to 24 bytes) a second and never the blank line: cut at the
        # header timeout.
        self.attack("-H", ["-c", "400", "-r", "200", "-i", "1", "-x", "24",
                           "-u", "http://127.0.0.1:{port}/api/health"], HEADER_TIMEOUT)

    def test_slow_body(self):
        # POSTs to /api/lobby declaring 8 KiB, the body a few bytes a second:
        # cut at the read timeout.
        self.attack("-B", ["-c", "400", "-r", "200", "-i", "1", "-x", "10", "-s", "8192",
                           "-u", "http://127.0.0.1:{port}/api/lobby"], READ_TIMEOUT)

    def test_slow_read(self):
        # Three pipelined GETs of a 1.4 MB bot list per connection, a receive
        # window of 32 to 64 bytes, 16 bytes read a second: cut at the write
        # timeout. (The 46 kB OpenAPI document, even 10 times pipelined, fits
        # in the kernel's loopback send buffer: the writes complete at once
        # and it would test the idle timeout instead.)
        self.attack("-X", ["-c", "400", "-r", "200", "-w", "32", "-y", "64", "-n", "1",
                           "-z", "16", "-k", "3",
                           "-u", "http://127.0.0.1:{port}/api/bots"], WRITE_TIMEOUT,
                    setup=self.fill_bot_list)


if __name__ == "__main__":
    unittest.main()
