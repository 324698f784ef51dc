"""Debian's nginx started on loopback in front of the server, with the
shipped conf/nginx/voicebot-server.conf and a self-signed certificate made
here: what a deployment under https://HOST/ai-voicebot/ looks like. Used by
test_nginx_proxy and the browser test's proxy mode."""

import os
import re
import shutil
import socket
import subprocess
import time

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
SHIPPED = os.path.join(ROOT, "conf", "nginx", "voicebot-server.conf")
BASE = "/ai-voicebot"


def _die_with_parent():
    """nginx's master gets SIGTERM when the process that started it dies
    (a killed test, the browser test's kill of this helper): no nginx
    outlives its test."""
    import ctypes
    import signal
    PR_SET_PDEATHSIG = 1
    ctypes.CDLL("libc.so.6", use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


def missing_tools():
    """What the proxy needs and this machine lacks (a skip message)."""
    return [t for t in ("nginx", "openssl") if not (shutil.which(t) or os.path.exists("/usr/sbin/" + t))]


def free_port(host="127.0.0.1"):
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def make_certificate(workdir):
    """A self-signed certificate for 127.0.0.1 (and localhost)."""
    cert, key = os.path.join(workdir, "proxy.pem"), os.path.join(workdir, "proxy.key")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
                    "-subj", "/CN=127.0.0.1", "-keyout", key, "-out", cert,
                    "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost"],
                   check=True, capture_output=True)
    return cert, key


def render(upstream_port, listen_port, cert, key):
    """The shipped file with this machine's ports and certificate: only the
    upstream address, the listen line and the certificate paths change."""
    with open(SHIPPED) as f:
        text = f.read()
    subs = [(r"server 127\.0\.0\.1:8000;", f"server 127.0.0.1:{upstream_port};"),
            (r"listen 443 ssl;", f"listen 127.0.0.1:{listen_port} ssl;"),
            (r"ssl_certificate +\S+;", f"ssl_certificate {cert};"),
            (r"ssl_certificate_key +\S+;", f"ssl_certificate_key {key};")]
    for pattern, repl in subs:
        text, n = re.subn(pattern, repl, text)
        if n != 1:
            raise AssertionError(f"{SHIPPED}: expected one '{pattern}', found {n}")
    return text


class Nginx:
    def __init__(self, workdir, upstream_port, listen_port=None):
        self.dir = os.path.join(workdir, "nginx")
        os.makedirs(os.path.join(self.dir, "logs"), exist_ok=True)
        self.port = listen_port or free_port()
        self.cert, key = make_certificate(self.dir)
        with open(os.path.join(self.dir, "voicebot-server.conf"), "w") as f:
            f.write(render(upstream_port, self.port, self.cert, key))
        d = self.dir
        user = "user root root;\n" if os.geteuid() == 0 else ""
        with open(os.path.join(d, "nginx.conf"), "w") as f:
            f.write(f"""{user}daemon off;
worker_processes 1;
pid {d}/nginx.pid;
error_log {d}/logs/error.log info;
events {{ worker_connections 512; }}
http {{
    default_type application/octet-stream;
    access_log {d}/logs/access.log;
    client_body_temp_path {d}/body;
    proxy_temp_path {d}/proxy;
    fastcgi_temp_path {d}/fastcgi;
    uwsgi_temp_path {d}/uwsgi;
    scgi_temp_path {d}/scgi;
    include {d}/voicebot-server.conf;
}}
""")
        self.proc = None

    def start(self, timeout=10):
        nginx = shutil.which("nginx") or "/usr/sbin/nginx"
        self.proc = subprocess.Popen([nginx, "-p", self.dir, "-c", os.path.join(self.dir, "nginx.conf"),
                                      "-e", os.path.join(self.dir, "logs", "error.log")],
                                     stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                     preexec_fn=_die_with_parent)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError("nginx exited: " + self.proc.stdout.read().decode() + self.error_log())
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                return self
            except OSError:
                time.sleep(0.05)
        raise AssertionError("nginx did not listen: " + self.error_log())

    def error_log(self):
        try:
            with open(os.path.join(self.dir, "logs", "error.log")) as f:
                return f.read()
        except OSError:
            return ""

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    @property
    def url(self):
        return f"https://127.0.0.1:{self.port}{BASE}"


def main(argv):
    """python3 nginx_proxy.py WORKDIR UPSTREAM_PORT LISTEN_PORT: runs nginx
    in front of the server until killed (for the browser test's proxy
    mode); prints "nginx listening on https://127.0.0.1:PORT/ai-voicebot"."""
    import signal
    import sys
    workdir, upstream, listen = argv[1], int(argv[2]), int(argv[3])
    n = Nginx(workdir, upstream, listen).start()
    print(f"nginx listening on {n.url}", flush=True)

    def stop(*_):
        n.stop()
        sys.exit(0)
    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    n.proc.wait()
    print("nginx exited: " + n.error_log(), flush=True)
    return 1


if __name__ == "__main__":
    import sys
    sys.exit(main(sys.argv))
