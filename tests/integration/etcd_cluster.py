"""A real etcd cluster for the cluster-mode tests (SPEC §8): Debian's
etcd-server started by the test on free loopback ports, one data dir per
member, killed and restarted by PID (design cluster-etcd.md §6.1), and read
through its JSON gateway the way the server's own client does."""

import base64
import json
import os
import shutil
import socket
import subprocess
import time
import urllib.error
import urllib.request

ETCD = shutil.which("etcd")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def b64(s):
    return base64.b64encode(s.encode()).decode()


def unb64(s):
    return base64.b64decode(s).decode(errors="replace")


def prefix_end(prefix):
    b = bytearray(prefix.encode())
    b[-1] += 1
    return base64.b64encode(bytes(b)).decode()


class Member:
    def __init__(self, name, workdir, client_port, peer_port):
        self.name = name
        self.data_dir = os.path.join(workdir, name)
        self.client_url = f"http://127.0.0.1:{client_port}"
        self.peer_url = f"http://127.0.0.1:{peer_port}"
        self.proc = None
        self.log = open(os.path.join(workdir, name + ".log"), "ab")

    def start(self, initial_cluster):
        # A loaded 2-core box: a longer election timeout (design §4.5).
        self.proc = subprocess.Popen(
            [ETCD, "--logger=zap", "--log-outputs=stderr", "--name", self.name,
             "--data-dir", self.data_dir,
             "--listen-client-urls", self.client_url,
             "--advertise-client-urls", self.client_url,
             "--listen-peer-urls", self.peer_url,
             "--initial-advertise-peer-urls", self.peer_url,
             "--initial-cluster", initial_cluster,
             "--initial-cluster-state", "new",
             "--initial-cluster-token", "vb-test",
             "--listen-metrics-urls", f"http://127.0.0.1:{free_port()}",
             "--heartbeat-interval", "200", "--election-timeout", "2000",
             "--pre-vote"],
            stdout=self.log, stderr=self.log)

    def kill(self):
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()

    def alive(self):
        return self.proc is not None and self.proc.poll() is None


class EtcdCluster:
    """`size` members on loopback. `call` posts to the JSON gateway of the
    first member that answers."""

    def __init__(self, workdir, size=3):
        self.workdir = workdir
        os.makedirs(workdir, exist_ok=True)
        self.members = [Member(f"e{i}", workdir, free_port(), free_port())
                        for i in range(1, size + 1)]
        self.initial = ",".join(f"{m.name}={m.peer_url}" for m in self.members)

    def start(self, timeout=30):
        for m in self.members:
            m.start(self.initial)
        self.wait_healthy(timeout)
        return self

    def endpoints(self):
        return ",".join(m.client_url for m in self.members)

    def restart(self, member, wait=True):
        member.kill()
        member.start(self.initial)
        if wait:
            self.wait_healthy()

    def stop(self):
        for m in self.members:
            m.kill()
            m.log.close()

    def call(self, path, body, timeout=3, members=None):
        last = None
        for m in members or self.members:
            if not m.alive():
                continue
            req = urllib.request.Request(m.client_url + path, data=json.dumps(body).encode(),
                                         headers={"Content-Type": "application/json"})
            try:
                with urllib.request.urlopen(req, timeout=timeout) as r:
                    return json.loads(r.read())
            except (OSError, urllib.error.URLError, ValueError) as e:
                last = e
        raise AssertionError(f"no etcd member answered {path}: {last}")

    def wait_healthy(self, timeout=30):
        """Until a put commits (a leader and a quorum)."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                self.call("/v3/kv/put", {"key": b64("/health-probe"), "value": b64("x")})
                return
            except AssertionError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)

    def leader(self):
        """The member that leads now."""
        for m in self.members:
            if not m.alive():
                continue
            try:
                st = self.call("/v3/maintenance/status", {}, members=[m])
            except AssertionError:
                continue
            if st.get("leader") and st.get("leader") == st.get("header", {}).get("member_id"):
                return m
        return None

    def range_prefix(self, prefix):
        """{key: value} of every key under `prefix` (serializable: any
        member, even without quorum, answers)."""
        res = self.call("/v3/kv/range", {"key": b64(prefix), "range_end": prefix_end(prefix)})
        return {unb64(kv["key"]): unb64(kv.get("value", "")) for kv in res.get("kvs", [])}
