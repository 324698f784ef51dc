"""voicebot-provider with several gateways (SPEC §8: `--server HOST:PORT`,
repeatable): two voicebot-server instances in embedded mode (separate data
dirs) on free loopback ports; the provider connects to the first, and when
that server is killed (-9) it moves to the second at once, registers there
with the same provider_id and its runs, and joins through the second work.
Bad `--server` values exit 2."""

import os
import re
import signal
import socket
import subprocess
import time
import unittest

from harness import PROVIDER, Provider, Server, ServerTestCase, scaled


class FailoverProvider(Provider):
    """voicebot-provider given every server's gateway with `--server`."""

    def __init__(self, workdir, servers, name, state_file, args=()):
        super().__init__(workdir, servers[0], name, state_file, args)
        self.gateways = [f"127.0.0.1:{s.caf_port}" for s in servers]

    def gateway_args(self):
        return [arg for g in self.gateways for arg in ("--server", g)]


def refusing_port():
    """A loopback port nothing listens on (bound once, then released)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class ProviderFailoverTest(ServerTestCase):
    def instance(self, name):
        s = Server(self.tmp.path, ["--data-dir", os.path.join(self.tmp.path, name)])
        self.servers.append(s)
        return s.start()

    def provider(self, servers, name="roamer", gateways=None, **kw):
        p = FailoverProvider(self.tmp.path, servers, name, self.state_file(name))
        if gateways is not None:
            p.gateways = gateways
        return self.start_provider(p, **kw)

    def test_provider_moves_to_the_next_server_when_its_server_is_killed(self):
        a = self.instance("a")
        b = self.instance("b")
        p = self.provider([a, b])
        p.wait_for_line(r"connected to gateway 127\.0\.0\.1:%d \(1 of 2\)" % a.caf_port, 5)
        self.wait_online(a, p.provider_id)
        self.assertNotIn(p.provider_id, self.listed(b))
        # A run on the first server, which the provider takes along.
        lobby = self.create_lobby(a)
        status, _, joined = self.join(a, lobby["id"], "echo", "Echo")
        self.assertEqual(status, 200, joined)
        p.wait_for_line(r"run %s started" % joined["run_id"], 10)

        a.kill()
        killed = time.monotonic()
        self.wait_online(b, p.provider_id)
        took = time.monotonic() - killed
        self.assertEqual(p.wait_registered(15, after=1), p.provider_id)
        p.wait_for_line(r"connected to gateway 127\.0\.0\.1:%d \(2 of 2\)" % b.caf_port,
                               5)
        # It registered with its run; the second server knows no lobby of it,
        # so the run comes back unknown and the provider stops it.
        again = p.wait_for_nth(r"registered as \S+ with (\d+) runs .* at (\S+)", 2, 5)
        self.assertEqual(again.group(1), "1")
        self.assertEqual(again.group(2), f"127.0.0.1:{b.caf_port}")
        p.wait_for_line(r"run %s stopped: unknown to the server" % joined["run_id"], 10)

        # Joins through the second server reach it.
        lobby = self.create_lobby(b)
        status, _, res = self.join(b, lobby["id"], "greeter", "Greeter")
        self.assertEqual(status, 200, res)
        self.assertEqual(res["provider_id"], p.provider_id)
        p.wait_for_line(r"run %s started" % res["run_id"], 10)
        self.assertIn(res["run_id"], p.runs())
        self.assertLess(took, scaled(10))
        print(f"provider online at the second server {took:.3f} s after the first was killed")

    def test_provider_whose_first_gateway_is_down_registers_at_the_next(self):
        b = self.instance("b")
        dead = refusing_port()
        p = self.provider([b], gateways=[f"127.0.0.1:{dead}", f"127.0.0.1:{b.caf_port}"])
        self.wait_online(b, p.provider_id)
        p.wait_for_line(r"connected to gateway 127\.0\.0\.1:%d \(2 of 2\)" % b.caf_port, 5)

    def test_provider_leaves_a_frozen_server_whose_link_stays_up(self):
        a = self.instance("a")
        b = self.instance("b")
        p = self.provider([a, b])
        self.wait_online(a, p.provider_id)
        # Stopped, A keeps its TCP link up and answers nothing: the
        # middleman's heartbeats (5 s of silence) drop the link, and the
        # provider moves to B.
        os.kill(a.proc.pid, signal.SIGSTOP)
        try:
            p.wait_for_line(r"link to the server at 127\.0\.0\.1:%d lost \(.*\); moving to "
                            r"gateway 127\.0\.0\.1:%d" % (a.caf_port, b.caf_port), scaled(20))
            self.wait_online(b, p.provider_id)
        finally:
            os.kill(a.proc.pid, signal.SIGCONT)

    def run_provider(self, *args):
        return subprocess.run([PROVIDER, "--state-file",
                               os.path.join(self.tmp.path, "cli.state.json")] + list(args),
                              cwd=self.tmp.path, capture_output=True, text=True,
                              timeout=scaled(20))

    def test_bad_server_values_exit_2_naming_the_flag_and_the_value(self):
        for value, why in (("127.0.0.1", "no port"), ("127.0.0.1:0", "port 0"),
                           ("127.0.0.1:65536", "port 65536"), (":8001", "empty host"),
                           ("[::1]", "no port"), ("::1:8001", "brackets"),
                           ("127.0.0.1:http", "'http'")):
            with self.subTest(value=value):
                res = self.run_provider("--server", "127.0.0.1:8001", "--server", value)
                self.assertEqual(res.returncode, 2, res.stdout + res.stderr)
                self.assertIn(f"--server '{value}'", res.stderr)
                self.assertIn(why, res.stderr)
        # --server names every gateway; --server-host/--server-port one: not
        # both at once.
        res = self.run_provider("--server", "127.0.0.1:8001", "--server-port", "8002")
        self.assertEqual(res.returncode, 2, res.stdout + res.stderr)
        self.assertIn("--server-host/--server-port", res.stderr)
        res = self.run_provider("--server-port", "0")
        self.assertEqual(res.returncode, 2, res.stdout + res.stderr)
        self.assertIn("--server-port", res.stderr)
        self.assertTrue(re.search(r"\b0\b", res.stderr), res.stderr)


if __name__ == "__main__":
    unittest.main()
