"""A minimal WebSocket client (RFC 6455) on the standard library, for the
integration tests of live lobby events: text messages, masking, fragments,
pings, close. Not a general-purpose client."""

import base64
import hashlib
import json
import os
import socket
import struct
import time

GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"


class Refused(Exception):
    """The server answered the upgrade request with an HTTP response."""

    def __init__(self, status, headers, body):
        super().__init__(f"upgrade refused: {status} {body!r}")
        self.status = status
        self.headers = headers
        self.body = body


class Closed(Exception):
    """The connection ended (close frame, EOF or reset)."""


class WebSocket:
    def __init__(self, port, path, headers=None, timeout=10, rcvbuf=None, tls=None,
                 source=None):
        """`tls`: an ssl.SSLContext for wss:// (through a TLS proxy);
        `source`: the local address to connect from."""
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        if rcvbuf:
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        self.sock.settimeout(timeout)
        if source:
            self.sock.bind((source, 0))
        self.sock.connect(("127.0.0.1", port))
        if tls is not None:
            self.sock = tls.wrap_socket(self.sock, server_hostname="127.0.0.1")
        self.buf = b""
        self.close_code = None
        key = base64.b64encode(os.urandom(16)).decode()
        lines = [f"GET {path} HTTP/1.1", f"Host: 127.0.0.1:{port}", "Upgrade: websocket",
                 "Connection: Upgrade", f"Sec-WebSocket-Key: {key}",
                 "Sec-WebSocket-Version: 13"]
        lines += [f"{k}: {v}" for k, v in (headers or {}).items()]
        self.sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
        status, hdrs = self._read_head()
        if status != 101:
            length = int(hdrs.get("content-length", "0"))
            body = self._read_exact(length)
            self.sock.close()
            try:
                body = json.loads(body)
            except ValueError:
                pass
            raise Refused(status, hdrs, body)
        expected = base64.b64encode(hashlib.sha1((key + GUID).encode()).digest()).decode()
        if hdrs.get("sec-websocket-accept") != expected:
            raise AssertionError(f"bad Sec-WebSocket-Accept: {hdrs}")

    # -- bytes --

    def _fill(self, deadline):
        left = deadline - time.monotonic() if deadline else None
        if left is not None and left <= 0:
            raise socket.timeout("timed out")
        if left is not None:
            self.sock.settimeout(left)
        try:
            chunk = self.sock.recv(65536)
        except (ConnectionResetError, BrokenPipeError) as e:
            raise Closed(str(e))
        if not chunk:
            raise Closed("EOF")
        self.buf += chunk

    def _read_exact(self, n, deadline=None):
        while len(self.buf) < n:
            self._fill(deadline)
        out, self.buf = self.buf[:n], self.buf[n:]
        return out

    def _read_head(self):
        while b"\r\n\r\n" not in self.buf:
            self._fill(None)
        head, self.buf = self.buf.split(b"\r\n\r\n", 1)
        lines = head.decode("latin-1").split("\r\n")
        status = int(lines[0].split(" ")[1])
        hdrs = {}
        for line in lines[1:]:
            k, _, v = line.partition(":")
            hdrs[k.strip().lower()] = v.strip()
        return status, hdrs

    # -- frames --

    def _send_frame(self, opcode, payload):
        head = bytes([0x80 | opcode])
        n = len(payload)
        if n < 126:
            head += bytes([0x80 | n])
        elif n < 65536:
            head += bytes([0x80 | 126]) + struct.pack("!H", n)
        else:
            head += bytes([0x80 | 127]) + struct.pack("!Q", n)
        mask = os.urandom(4)
        masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
        self.sock.sendall(head + mask + masked)

    def _read_frame(self, deadline):
        b0, b1 = self._read_exact(2, deadline)
        n = b1 & 0x7F
        if n == 126:
            n = struct.unpack("!H", self._read_exact(2, deadline))[0]
        elif n == 127:
            n = struct.unpack("!Q", self._read_exact(8, deadline))[0]
        mask = self._read_exact(4, deadline) if b1 & 0x80 else None
        payload = self._read_exact(n, deadline)
        if mask:
            payload = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
        return bool(b0 & 0x80), b0 & 0x0F, payload

    # -- messages --

    def send_text(self, text):
        self._send_frame(0x1, text.encode() if isinstance(text, str) else text)

    def send_json(self, obj):
        self.send_text(json.dumps(obj))

    def recv_text(self, timeout=10):
        """The next text message; raises Closed when the server closes."""
        deadline = time.monotonic() + timeout
        parts = []
        while True:
            fin, opcode, payload = self._read_frame(deadline)
            if opcode == 0x9:  # ping
                self._send_frame(0xA, payload)
                continue
            if opcode == 0xA:
                continue
            if opcode == 0x8:
                self.close_code = struct.unpack("!H", payload[:2])[0] if len(payload) >= 2 else None
                raise Closed(f"close frame {self.close_code}")
            parts.append(payload)
            if fin:
                return b"".join(parts).decode()

    def recv_json(self, timeout=10):
        return json.loads(self.recv_text(timeout))

    def wait_for(self, predicate, timeout=10):
        """Reads messages until one matches; returns it and those before it."""
        deadline = time.monotonic() + timeout
        seen = []
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"no matching message; got {seen}")
            msg = self.recv_json(left)
            seen.append(msg)
            if predicate(msg):
                return msg, seen

    def close(self):
        try:
            self._send_frame(0x8, struct.pack("!H", 1000))
        except OSError:
            pass
        self.sock.close()
