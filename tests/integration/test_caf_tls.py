"""TLS on the CAF provider gateway (SPEC §5, docs/caf-providers.md): the real
voicebot-server with --caf-tls-cert/--caf-tls-key/--caf-tls-ca and real
voicebot-provider processes with --tls-cert/--tls-key/--tls-ca. The
certificates are made here with the openssl command line: a CA, a server
certificate and a provider certificate it signed, and a second CA with a
provider certificate of its own. A provider with the right certificate gets
online and hosts bots; one without TLS, or with the other CA's certificate,
is refused at the handshake and never registers, and the server goes on
serving. Strangers that knock for ten seconds (no certificate, another
CA's, an expired one, plain bytes) never drop a linked provider's link: each
failed handshake is logged and counted, and touches no other connection.
Beyond loopback without TLS the server refuses to start (exit 2) unless
--caf-insecure is given."""

import os
import re
import shutil
import signal
import socket
import ssl
import subprocess
import threading
import time
import unittest

from harness import (NO_QUOTAS, PROVIDER, Provider, ServerTestCase, metric_value,
                     run_server_cli, wait_until)
from pki import Pki


def cpu_seconds(pid):
    """User and system CPU time of a process so far."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class Knocker(threading.Thread):
    """Knocks on the gateway again and again until stopped: a TLS client
    (Python's ssl, with `cert` or without a certificate) that waits for the
    server's refusal, or a peer that sends plain bytes. `knocks` counts
    the connections that were closed."""

    def __init__(self, port, ca, cert=None, plain=False):
        super().__init__(daemon=True)
        self.port, self.plain = port, plain
        self.ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        self.ctx.check_hostname = False  # the test certificates name no host
        self.ctx.load_verify_locations(ca)
        if cert:
            self.ctx.load_cert_chain(cert + ".pem", cert + ".key")
        self.knocks = 0
        self.stopped = threading.Event()

    def knock(self):
        with socket.create_connection(("127.0.0.1", self.port), timeout=5) as raw:
            if self.plain:
                raw.sendall(b"\x16\x03\x01\x00\x05hello" * 20)
                while raw.recv(4096):
                    pass
                return
            with self.ctx.wrap_socket(raw) as conn:
                # TLS 1.3: the refusal comes after the client's Finished.
                while conn.recv(4096):
                    pass

    def run(self):
        while not self.stopped.is_set():
            try:
                self.knock()
            except (ssl.SSLError, OSError):
                pass
            self.knocks += 1

    def stop(self):
        self.stopped.set()
        self.join(10)


def loopback_alias_usable(addr):
    """Linux routes all of 127.0.0.0/8 to lo; elsewhere an alias may be missing."""
    try:
        with socket.socket() as s:
            s.bind((addr, 0))
        return True
    except OSError:
        return False


def loopback_host_name():
    """This machine's name, if it resolves to loopback addresses only."""
    name = socket.gethostname()
    if not name or name == "localhost":
        return None
    try:
        addrs = {a[4][0] for a in socket.getaddrinfo(name, 0, socket.AF_INET)}
    except OSError:
        return None
    if addrs and all(a.startswith("127.") for a in addrs):
        return name
    return None


class TlsProvider(Provider):
    """A voicebot-provider on any gateway address (the harness's uses 127.0.0.1)."""

    MAX_BACKOFF = "0.5"

    def __init__(self, workdir, server, name, state_file, args=(), host="127.0.0.1"):
        super().__init__(workdir, server, name, state_file, ["--log-level", "debug"] + list(args))
        self.host = host

    def gateway_args(self):
        return ["--server-host", self.host, "--server-port", str(self.server.caf_port)]


@unittest.skipUnless(shutil.which("openssl"), "needs the openssl command line")
class CafTlsTest(ServerTestCase):
    def setUp(self):
        super().setUp()
        self.certs = os.path.join(self.tmp.path, "certs")
        pki = Pki(self.certs).make_ca("ca")
        pki.make("server")
        pki.make("provider")
        pki.make("expired", days=-1)
        pki.make_ca("other-ca")
        pki.make("intruder", ca="other-ca")

    def cert(self, name):
        return os.path.join(self.certs, name)

    def tls_server(self, *args):
        return self.start_server("--caf-tls-cert", self.cert("server.pem"),
                                 "--caf-tls-key", self.cert("server.key"),
                                 "--caf-tls-ca", self.cert("ca.pem"), *args)

    def tls_args(self, who="provider", ca="ca"):
        return ["--tls-cert", self.cert(who + ".pem"), "--tls-key", self.cert(who + ".key"),
                "--tls-ca", self.cert(ca + ".pem")]

    def provider(self, server, name, args=(), host="127.0.0.1", **kw):
        return self.start_provider(
            TlsProvider(self.tmp.path, server, name, self.state_file(name), args, host), **kw)

    def assert_serving(self, server, good):
        status, _, res = server.request("GET", "/api/health")
        self.assertEqual(status, 200, res)
        self.wait_online(server, good.provider_id)
        lobby = self.create_lobby(server)
        status, _, res = self.join(server, lobby["id"], "echo", "Echo")
        self.assertEqual(status, 200, res)

    def test_a_provider_with_a_certificate_of_the_ca_gets_online(self):
        s = self.tls_server()
        s.wait_for_line(r"provider gateway listening on 127\.0\.0\.1:\d+ \(mutual TLS\)")
        p = self.provider(s, "trusted", self.tls_args())
        self.assertEqual(list(self.listed(s)), [p.provider_id])
        self.assert_serving(s, p)
        # SIGINT stops at once and deregisters over the same TLS link.
        self.assertEqual(p.stop(signal.SIGINT), 0, p.log())
        self.assertEqual(self.listed(s), {})

    def test_providers_without_tls_or_with_another_ca_are_refused_and_the_server_serves_on(self):
        s = self.tls_server()
        good = self.provider(s, "trusted", self.tls_args())
        # A plain TCP provider: the server expects a TLS ClientHello.
        plain = self.provider(s, "plain", wait_registered=False)
        # A provider whose certificate another CA signed (it trusts the
        # server's CA, so only the server's check refuses it).
        intruder = self.provider(s, "intruder", self.tls_args("intruder", "ca"),
                                 wait_registered=False)
        # A peer that connects and never says anything, and one that sends
        # garbage: neither holds up the gateway.
        silent = socket.create_connection(("127.0.0.1", s.caf_port))
        garbage = socket.create_connection(("127.0.0.1", s.caf_port))
        garbage.sendall(b"\x16\x03\x01\x00\x05hello" * 50)
        try:
            # Each has tried (and retried with backoff) several times.
            time.sleep(4)
            for p in (plain, intruder):
                self.assertIsNone(p.proc.poll(), p.log())  # it retries for ever
                self.assertEqual(p.count_lines(r"registered as"), 0, p.log())
                self.assertEqual(p.count_lines(r"connected to"), 0, p.log())
            self.assertEqual(list(self.listed(s)), [good.provider_id])
            self.assertIsNone(s.proc.poll(), s.log())
            self.assert_serving(s, good)
            # A new trusted provider still gets in while the silent peer
            # holds its connection open.
            late = self.provider(s, "late", self.tls_args())
            self.wait_online(s, late.provider_id)
            self.assertEqual(sorted(self.listed(s)), sorted([good.provider_id, late.provider_id]))
        finally:
            silent.close()
            garbage.close()
        self.assertIsNone(s.proc.poll(), s.log())
        self.assertEqual(s.stop(), 0, s.log())

    def test_a_linked_provider_stays_linked_while_strangers_knock(self):
        s = self.tls_server(*NO_QUOTAS)  # joins for 10 s from one client
        good = self.provider(s, "good", self.tls_args() + ["--max-runs", "100000"])
        self.wait_online(s, good.provider_id)
        lobby = self.create_lobby(s)
        # voicebot-providers that retry for ever: without TLS, and with a
        # certificate of another CA.
        self.provider(s, "plain", wait_registered=False)
        self.provider(s, "intruder", self.tls_args("intruder", "ca"), wait_registered=False)
        knockers = [Knocker(s.caf_port, self.cert("ca.pem")),
                    Knocker(s.caf_port, self.cert("ca.pem"), self.cert("intruder")),
                    Knocker(s.caf_port, self.cert("ca.pem"), self.cert("expired")),
                    Knocker(s.caf_port, self.cert("ca.pem"), plain=True)]
        for k in knockers:
            k.start()
        joins = 0
        try:
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline:
                status, _, res = self.join(s, lobby["id"], "echo", nick=f"Echo {joins}")
                self.assertEqual(status, 200, res)
                joins += 1
                self.assertEqual(self.listed(s)[good.provider_id]["status"], "online")
        finally:
            for k in knockers:
                k.stop()
        for p in self.procs[1:]:
            p.kill()
        for k in knockers:
            self.assertGreater(k.knocks, 5, "a knocker hardly knocked")
        knocks = sum(k.knocks for k in knockers)
        # Every knock failed its handshake, was counted, then logged once.
        failures = wait_until(
            lambda: (metric_value(s, "voicebot_caf_tls_handshake_failures_total") or 0)
            >= knocks and metric_value(s, "voicebot_caf_tls_handshake_failures_total"),
            what=f"{knocks} handshake failures counted")
        warned = r"warn.*provider gateway: TLS handshake with 127\.0\.0\.1:\d+ failed: "
        wait_until(lambda: s.count_lines(warned) >= failures, what="a warning per failure")
        self.assertEqual(s.count_lines(warned), failures)
        reasons = {line.split(" failed: ", 1)[1] for line in s.lines if re.search(warned, line)}
        for reason in ("peer did not return a certificate",
                       "certificate verify failed (unable to get local issuer certificate)",
                       "certificate verify failed (certificate has expired)"):
            self.assertIn(reason, reasons)
        self.assertGreaterEqual(len(reasons), 4, reasons)  # plain bytes too
        print(f"knocks {[k.knocks for k in knockers]}, handshake failures {failures}, "
              f"joins {joins}, reasons {sorted(reasons)}")
        # The good provider never noticed.
        self.assertGreater(joins, 20)
        self.assertEqual(s.count_lines(r"link down"), 0, s.log())
        self.assertEqual(s.count_lines(r"provider good id=\S+: online ->"), 0, s.log())
        self.assertEqual(good.count_lines(r"connected to gateway"), 1, good.log())
        self.assertEqual(self.listed(s)[good.provider_id]["status"], "online")
        self.assertEqual(s.stop(), 0, s.log())

    def test_peers_that_never_answer_their_handshake_cost_no_cpu(self):
        # The server's first bytes wait for the handshake; were they polled
        # for writing, each silent peer would spin the I/O thread (a whole
        # core with 20 of them).
        s = self.tls_server()
        good = self.provider(s, "good", self.tls_args())
        silent = [socket.create_connection(("127.0.0.1", s.caf_port)) for _ in range(20)]
        try:
            self.wait_online(s, good.provider_id)
            before, started = cpu_seconds(s.proc.pid), time.monotonic()
            time.sleep(3)
            used = cpu_seconds(s.proc.pid) - before
            elapsed = time.monotonic() - started
            print(f"server CPU with 20 silent peers: {used:.2f} s in {elapsed:.2f} s")
            self.assertLess(used, 0.5 * elapsed)
            self.assert_serving(s, good)
        finally:
            for c in silent:
                c.close()

    def test_a_tls_provider_does_not_talk_to_a_server_of_another_ca(self):
        # The provider checks the server's certificate too (mutual TLS).
        s = self.tls_server()
        p = self.provider(s, "wary", self.tls_args("provider", "other-ca"),
                          wait_registered=False)
        time.sleep(3)
        self.assertEqual(p.count_lines(r"registered as"), 0, p.log())
        self.assertEqual(self.listed(s), {})

    def test_beyond_loopback_without_tls_the_server_refuses_to_start(self):
        # It exits before binding anything.
        res = run_server_cli(["--port", "0", "--caf-port", "0", "--caf-host", "0.0.0.0"],
                             self.tmp.path)
        self.assertEqual(res.returncode, 2, res.stdout + res.stderr)
        self.assertIn("TLS", res.stderr)
        self.assertIn("--caf-insecure", res.stderr)
        self.assertIn("0.0.0.0", res.stderr)
        # Half a TLS configuration, or files that are no PEM, are bad flags.
        res = run_server_cli(["--port", "0", "--caf-port", "0",
                              "--caf-tls-cert", self.cert("server.pem")], self.tmp.path)
        self.assertEqual(res.returncode, 2, res.stdout + res.stderr)
        self.assertIn("all three or none", res.stderr)
        res = run_server_cli(["--port", "0", "--caf-port", "0",
                              "--caf-tls-cert", self.cert("server.pem"),
                              "--caf-tls-key", self.cert("server.csr"),
                              "--caf-tls-ca", self.cert("ca.pem")], self.tmp.path)
        self.assertEqual(res.returncode, 2, res.stdout + res.stderr)
        self.assertIn("--caf-tls-key", res.stderr)
        res = subprocess.run([PROVIDER, "--tls-cert", self.cert("provider.pem")],
                             capture_output=True, text=True, timeout=20)
        self.assertEqual(res.returncode, 2, res.stdout + res.stderr)

    def test_all_of_127_0_0_0_8_is_loopback(self):
        if not loopback_alias_usable("127.0.0.2"):
            self.skipTest("127.0.0.2 is not usable here")
        # 127.0.0.2 is loopback: no TLS needed, no warning.
        s = self.start_server("--caf-host", "127.0.0.2")
        s.wait_for_line(r"provider gateway listening on 127\.0\.0\.2:\d+$")
        self.assertEqual(s.count_lines(r"without TLS"), 0, s.log())
        p = self.provider(s, "alias", host="127.0.0.2")
        self.wait_online(s, p.provider_id)

    def test_caf_insecure_starts_a_gateway_beyond_loopback_without_tls(self):
        # The check reads the address as written: a host name (other than
        # localhost) is beyond loopback. This machine's own name, when it
        # resolves to loopback only, binds nothing reachable from outside.
        name = loopback_host_name()
        if name is None:
            self.skipTest("no host name that resolves to loopback only")
        res = run_server_cli(["--port", "0", "--caf-port", "0", "--caf-host", name],
                             self.tmp.path)
        self.assertEqual(res.returncode, 2, res.stdout + res.stderr)
        self.assertIn("TLS", res.stderr)
        s = self.start_server("--caf-host", name, "--caf-insecure")
        s.wait_for_line(r"--caf-insecure: the provider gateway listens beyond loopback on "
                        + re.escape(name) + r" without TLS")
        p = self.provider(s, "insecure", host=name)
        self.wait_online(s, p.provider_id)
        self.assertEqual(s.stop(), 0, s.log())

if __name__ == "__main__":
    unittest.main()
