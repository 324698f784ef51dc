#!/usr/bin/env python3
"""The signal relay's latency (SPEC §9, docs/voice.md): PAIRS pairs of voice
peers in one lobby (each pair two WebSocket clients, each a person's
session), each sender sending `signal` messages to its partner one after
another, each timed from send to arrival; next to it, in the same run and
the same server, a WebSocket ping round trip of the same sockets (the
floor: one frame each way, no actor). Prints p50/p99 of both and their
ratio, for each PAIRS in --pairs.

  python3 bench/voice/relay.py [--binary build/voicebot-server]
                               [--pairs 1,200] [--messages 200]

Loopback only. A signal is a small ICE candidate (about 150 bytes of data).
The pairs are set up in parallel, the sockets pinged every 5 s meanwhile,
and the measure starts once every socket knows of every other voice peer of
its lobby (32 pairs a lobby: the server runs with --max-voice-peers 64).
"""

import argparse
import json
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.join(HERE, "..", "..")
sys.path.insert(0, os.path.join(ROOT, "tests", "integration"))

from wsclient import WebSocket  # noqa: E402


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def call(port, method, path, body=None):
    req = urllib.request.Request(f"http://127.0.0.1:{port}{path}", method=method,
                                 data=None if body is None else json.dumps(body).encode(),
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=10) as r:
        return json.loads(r.read() or b"null")


def start(binary, workdir):
    port = free_port()
    proc = subprocess.Popen([binary, "--port", str(port), "--caf-port", "0",
                             "--data-dir", os.path.join(workdir, "data"), "--log-level", "warn",
                             "--max-voice-peers", "64", "--max-members-per-lobby", "100000",
                             "--signal-rate", "100000",
                             "--max-connections-per-address", "10000",
                             "--max-joins-per-client-per-minute", "0",
                             "--max-lobbies-per-client-per-hour", "0"],
                            stdout=subprocess.DEVNULL, stderr=open(os.path.join(workdir, "server.log"), "w"))
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            call(port, "GET", "/api/health")
            return proc, port
        except OSError:
            time.sleep(0.05)
    proc.kill()
    raise SystemExit("the server did not start")


def voice_socket(port, lobby, who):
    ws = WebSocket(port, f"/ws/lobby/{lobby}", timeout=30)
    # Small frames one after another: no Nagle wait for the ACK of the last.
    ws.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    ws.recv_json()  # members
    ws.send_json({"type": "hello", "session_id": who["session_id"],
                  "token": who["session_token"], "resume": False})
    msg, seen = ws.wait_for(lambda m: m.get("type") in ("welcome", "error"), 30)
    if msg["type"] != "welcome":
        raise SystemExit(f"hello refused: {msg}")
    # The other voice peers this socket knows of: the welcome's, and those
    # announced (peer_joined) before it and, in settle(), after it.
    ws.known = {p["session_id"] for p in msg["peers"]}
    for m in seen:
        note_peer(ws, m)
    return ws


def note_peer(ws, msg):
    if msg.get("type") == "peer_joined":
        ws.known.add(msg["peer"]["session_id"])


def settle(ws, room_size):
    """Reads until the socket knows of every other voice peer of its room
    and has read past every pong of keep_alive(): then nothing more is on
    its way to it before the first signal."""
    deadline = time.monotonic() + 60
    ws._send_frame(0x9, b"settled")
    flushed = False
    while not flushed or len(ws.known) < room_size - 1:
        if time.monotonic() > deadline:
            raise SystemExit(f"a socket knows of {len(ws.known)} of {room_size - 1} peers")
        fin, opcode, payload = ws._read_frame(deadline)
        if opcode == 0x1 and fin:
            note_peer(ws, json.loads(payload))
        elif opcode == 0x9:
            ws._send_frame(0xA, payload)
        elif opcode == 0xA and payload == b"settled":
            flushed = True


def keep_alive(ready, lock, stop):
    """While the others are set up: a ping on every socket set up every 5 s,
    so that none reaches the server's 60 s WebSocket idle timeout (the pongs
    wait in the socket until settle() reads past them)."""
    while not stop.wait(5):
        with lock:
            now = list(ready)
        for ws in now:
            ws._send_frame(0x9, b"k")


def ping_rtt(ws):
    """One WebSocket ping and its pong, in seconds."""
    t0 = time.perf_counter()
    ws._send_frame(0x9, b"p")
    deadline = time.monotonic() + 10
    while True:
        fin, opcode, payload = ws._read_frame(deadline)
        if opcode == 0xA:
            return time.perf_counter() - t0


def percentile(xs, p):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(p / 100 * len(xs)))]


def run(binary, pairs, messages):
    with tempfile.TemporaryDirectory(prefix="vb-relay-") as work:
        proc, port = start(binary, work)
        try:
            # At most 64 voice peers a lobby: 32 pairs per lobby.
            rooms = [call(port, "POST", "/api/lobby", {"name": f"bench-{r}"})["id"]
                     for r in range(0, pairs, 32)]
            room_size = lambda i: 2 * min(32, pairs - i // 32 * 32)  # noqa: E731
            ready, lock, stop = [], threading.Lock(), threading.Event()

            def set_up(i):
                room = rooms[i // 32]
                a = call(port, "POST", f"/api/lobby/{room}/sessions", {"nick": f"a{i}"})
                b = call(port, "POST", f"/api/lobby/{room}/sessions", {"nick": f"b{i}"})
                pair = (voice_socket(port, room, a), voice_socket(port, room, b), b)
                with lock:
                    ready.extend(pair[:2])
                return pair

            # The pairs are set up in parallel, and the sockets set up are
            # pinged meanwhile (keep_alive): one after another, and then read
            # until 0.2 s of quiet each, 200 pairs outlasted the server's 60 s
            # idle timeout for the sockets read first.
            t0 = time.monotonic()
            pinger = threading.Thread(target=keep_alive, args=(ready, lock, stop))
            pinger.start()
            try:
                with ThreadPoolExecutor(max_workers=min(16, pairs)) as pool:
                    sockets = list(pool.map(set_up, range(pairs)))
            finally:
                stop.set()
                pinger.join()
            # Let the welcomes' peer_joined settle: every socket knows of
            # every other peer of its room.
            with ThreadPoolExecutor(max_workers=min(16, pairs)) as pool:
                list(pool.map(lambda x: [settle(ws, room_size(x[0])) for ws in x[1][:2]],
                              enumerate(sockets)))
            sys.stderr.write(f"{pairs} pairs set up in {time.monotonic() - t0:.1f} s\n")
            relay, ping = [], []
            lock = threading.Lock()
            data = {"candidate": {"candidate": "candidate:1 1 udp 2122260223 127.0.0.1 "
                                  "54321 typ host generation 0 ufrag abcd network-id 1",
                                  "sdpMid": "0", "sdpMLineIndex": 0}}

            def one_pair(a, b, target):
                mine, pings = [], []
                for n in range(messages):
                    t0 = time.perf_counter()
                    a.send_json({"type": "signal", "to": target["session_id"],
                                 "data": dict(data, n=n)})
                    b.wait_for(lambda m: m.get("type") == "signal", 30)
                    mine.append(time.perf_counter() - t0)
                    pings.append(ping_rtt(a))
                with lock:
                    relay.extend(mine)
                    ping.extend(pings)

            threads = [threading.Thread(target=one_pair, args=s) for s in sockets]
            t0 = time.monotonic()
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            took = time.monotonic() - t0
            for a, b, _ in sockets:
                a.close()
                b.close()
        finally:
            proc.terminate()
            proc.wait(timeout=10)
            with open(os.path.join(work, "server.log")) as f:
                warnings = [l for l in f if " warn" in l or " error" in l]
            if warnings:
                sys.stderr.write("server warnings:\n" + "".join(warnings[:20]))
    ms = lambda x: x * 1000  # noqa: E731
    return {"pairs": pairs, "signals": len(relay), "seconds": took,
            "relay_p50_ms": ms(percentile(relay, 50)), "relay_p99_ms": ms(percentile(relay, 99)),
            "ping_p50_ms": ms(percentile(ping, 50)), "ping_p99_ms": ms(percentile(ping, 99))}


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--binary", default=os.path.join(ROOT, "build", "voicebot-server"))
    ap.add_argument("--pairs", default="1,200")
    ap.add_argument("--messages", type=int, default=200)
    opts = ap.parse_args()
    print(f"{'pairs':>5} {'signals':>8} {'relay p50':>10} {'relay p99':>10} "
          f"{'ping p50':>9} {'ping p99':>9} {'p99 ratio':>9}")
    for pairs in (int(x) for x in opts.pairs.split(",")):
        r = run(opts.binary, pairs, opts.messages)
        print(f"{r['pairs']:>5} {r['signals']:>8} {r['relay_p50_ms']:>8.3f}ms "
              f"{r['relay_p99_ms']:>8.3f}ms {r['ping_p50_ms']:>7.3f}ms {r['ping_p99_ms']:>7.3f}ms "
              f"{r['relay_p99_ms'] / r['ping_p99_ms']:>8.2f}x", flush=True)


if __name__ == "__main__":
    main()
