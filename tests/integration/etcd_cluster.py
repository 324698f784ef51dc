"""A real etcd cluster for the cluster-mode tests (SPEC §8): Debian's
etcd-server started by the test on free loopback ports, one data dir per
member, killed and restarted by PID (design cluster-etcd.md §6.1), and read
through its JSON gateway the way the server's own client does.

Secure (`secure=True`, docs/security.md): certificates made by the openssl
CLI; clients and peers speak TLS and must show a certificate of the test's
CA (--client-cert-auth, --peer-client-cert-auth); authentication is on,
with a user for the instances whose role may read and write PREFIX only.
Client certificates carry no Common Name: with authentication on, etcd's
JSON gateway refuses one that does (it cannot act as that user), so users
are named by password. The test itself calls as root."""

import base64
import json
import os
import shutil
import socket
import ssl
import subprocess
import time
import urllib.error
import urllib.request

from pki import Pki

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
    def __init__(self, name, workdir, client_port, peer_port, tls=None):
        self.name = name
        self.data_dir = os.path.join(workdir, name)
        scheme = "https" if tls else "http"
        self.client_url = f"{scheme}://127.0.0.1:{client_port}"
        self.peer_url = f"{scheme}://127.0.0.1:{peer_port}"
        self.tls = tls  # (cert, key, ca)
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
             "--pre-vote", *self.tls_args()],
            stdout=self.log, stderr=self.log)

    def tls_args(self):
        if not self.tls:
            return []
        cert, key, ca = self.tls
        return ["--cert-file", cert, "--key-file", key, "--trusted-ca-file", ca,
                "--client-cert-auth",
                "--peer-cert-file", cert, "--peer-key-file", key,
                "--peer-trusted-ca-file", ca, "--peer-client-cert-auth"]

    def kill(self):
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()

    def alive(self):
        return self.proc is not None and self.proc.poll() is None


class EtcdCluster:
    """`size` members on loopback. `call` posts to the JSON gateway of the
    first member that answers."""

    USER = "vb"  # the instances' etcd user when secure

    def __init__(self, workdir, size=3, secure=False, prefix="/vb/"):
        self.workdir = workdir
        self.secure = secure
        self.prefix = prefix
        os.makedirs(workdir, exist_ok=True)
        tls = None
        self.context = None
        if secure:
            self.pki = Pki(os.path.join(workdir, "pki")).make_ca()
            cert, key = self.pki.make("etcd", san="IP:127.0.0.1")
            tls = (cert, key, self.pki.path("ca.pem"))
            self.pki.make("root", common_name=False)  # the test's own calls
            self.pki.make(self.USER, common_name=False)
            self.password_file = os.path.join(workdir, "password")
            with open(self.password_file, "w") as f:
                f.write("pw-" + base64.b16encode(os.urandom(8)).decode() + "\n")
            self.context = ssl.create_default_context(cafile=self.pki.path("ca.pem"))
            self.context.load_cert_chain(self.pki.path("root.pem"), self.pki.path("root.key"))
        self.root_password = None  # once authentication is on
        self.token = None
        self.members = [Member(f"e{i}", workdir, free_port(), free_port(), tls)
                        for i in range(1, size + 1)]
        self.initial = ",".join(f"{m.name}={m.peer_url}" for m in self.members)

    def start(self, timeout=30):
        for m in self.members:
            m.start(self.initial)
        self.wait_healthy(timeout)
        if self.secure:
            self.enable_auth()
        return self

    def enable_auth(self):
        """Users root and USER (a role with readwrite on the prefix), then
        authentication on, as an operator does with etcdctl."""
        with open(self.password_file) as f:
            password = f.read().strip()
        self.call("/v3/auth/user/add", {"name": "root", "password": "root-" + password})
        self.call("/v3/auth/role/add", {"name": "root"})
        self.call("/v3/auth/user/grant", {"user": "root", "role": "root"})
        self.call("/v3/auth/user/add", {"name": self.USER, "password": password})
        self.call("/v3/auth/role/add", {"name": self.USER})
        self.call("/v3/auth/role/grant", {"name": self.USER, "perm": {
            "permType": "READWRITE", "key": b64(self.prefix),
            "range_end": prefix_end(self.prefix)}})
        self.call("/v3/auth/user/grant", {"user": self.USER, "role": self.USER})
        self.call("/v3/auth/enable", {})
        self.root_password = "root-" + password

    def server_args(self):
        """The flags that take an instance to this etcd."""
        args = ["--etcd-endpoints", self.endpoints(), "--etcd-prefix", self.prefix]
        if self.secure:
            cert, key = self.pki.path(self.USER + ".pem"), self.pki.path(self.USER + ".key")
            args += ["--etcd-ca", self.pki.path("ca.pem"), "--etcd-cert", cert,
                     "--etcd-key", key, "--etcd-user", self.USER,
                     "--etcd-password-file", self.password_file]
        return args

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

    def call(self, path, body, timeout=3, members=None, anonymous=False):
        last = None
        for m in members or self.members:
            if not m.alive():
                continue
            try:
                headers = {"Content-Type": "application/json"}
                if self.root_password and not anonymous:
                    if not self.token:
                        self.token = self.call("/v3/auth/authenticate",
                                               {"name": "root", "password": self.root_password},
                                               timeout, [m], anonymous=True)["token"]
                    headers["Authorization"] = self.token
                req = urllib.request.Request(m.client_url + path, data=json.dumps(body).encode(),
                                             headers=headers)
                with urllib.request.urlopen(req, timeout=timeout, context=self.context) as r:
                    return json.loads(r.read())
            except urllib.error.HTTPError as e:
                last = e
                e.close()
                if e.code == 401:
                    self.token = None  # invalid (a member restarted): asked for again
            except (OSError, urllib.error.URLError, ValueError, AssertionError) as e:
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
