#!/usr/bin/env python3
"""Writes the seed corpus of the fuzz targets into fuzz/corpus/<target>/.

Valid examples of each format (docs/snapshots.md, docs/journal.md,
docs/http-api.md, the unit tests in tests/) and a few edge cases, each with
the selector byte(s) its target reads first (fuzz/<target>.cpp). Run it
again after a format changes; crashes found by the fuzzer are added next to
these files by hand (named crash-*), and the replay test keeps them.

The caf_messages seeds are CAF's own encoding, written by fuzz/caf_seeds.cpp
(docs/fuzzing.md).
"""
import json
import os
import struct
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.join(HERE, "corpus")
sys.path.insert(0, os.path.join(HERE, "..", "tests", "integration"))
from harness import crc32c  # noqa: E402  (the journal's, as the tests compute it)


def write(target, name, data):
    d = os.path.join(ROOT, target)
    os.makedirs(d, exist_ok=True)
    if isinstance(data, str):
        data = data.encode()
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)


def j(x):
    return json.dumps(x, separators=(",", ":"))


# -- json_bodies: byte 0 selects the parser ----------------------------------
LOBBY, SESSION, REGISTER, HEARTBEAT, DRAIN, JOIN, LEAVE, CHAT = range(8)
ID_PATH, BOT_PATH, IDEM_KEY, OTHER = 8, 9, 10, 11

bot = {"name": "echo", "description": "Repeats what it hears"}
registration = {"name": "voicebot", "base_url": "http://voicebot:8788",
                "description": "AI voicebot provider", "provider_key": "k1",
                "bots": [bot, {"name": "whisper"}]}
bodies = {
    "lobby": (LOBBY, j({"name": "Kitchen", "private": True})),
    "lobby-unicode": (LOBBY, j({"name": "Kitchen \u00e9t\u00e9"})),
    "session": (SESSION, j({"nick": "alice"})),
    "register": (REGISTER, j(registration)),
    "register-fleet": (REGISTER, j(dict(registration, provider_id="p-1",
                                        instance_id="i-1",
                                        heartbeat_interval=5,
                                        runs=["r1", {"run_id": "r2"}]))),
    "register-legacy-url": (REGISTER, j({"name": "v",
                                         "base_url": "http://10.0.0.1/x/",
                                         "bots": []})),
    "heartbeat-empty": (HEARTBEAT, ""),
    "heartbeat": (HEARTBEAT, j({"provider_key": "k1", "instance_id": "i-1",
                                "load": 0.5, "capacity": 8,
                                "runs": ["r1"], "bots": [bot]})),
    "drain": (DRAIN, j({"provider_key": "k1", "timeout": 30})),
    "drain-empty": (DRAIN, ""),
    "join": (JOIN, j({"lobby_id": "lobby-1", "nick": "Echo",
                      "provider_id": "p-1"})),
    "join-null": (JOIN, "null"),
    "leave": (LEAVE, j({"session_id": "s-1", "provider_key": "k1"})),
    "chat": (CHAT, j({"type": "chat", "nick": "alice", "text": "hi\nthere"})),
    "id-path": (ID_PATH, "lobby-1"),
    "id-path-control": (ID_PATH, "a\x7fb"),
    "bot-path": (BOT_PATH, "ai_chatbot"),
    "bot-path-bad": (BOT_PATH, "a/b"),
    "idempotency-key": (IDEM_KEY, "3f1c2a7e-join-1"),
    "idempotency-key-long": (IDEM_KEY, "k" * 129),
    "utf8-overlong": (OTHER, b"\xc0\xaf".decode("latin-1")),
    "malformed": (REGISTER, '{"name":'),
    "wrong-types": (REGISTER, j({"name": 5, "base_url": True, "bots": {}})),
    "deep": (LOBBY, "[" * 65 + "]" * 65),
    "deep-string": (LOBBY, '{"name":"' + "[" * 100 + '"}'),
    "invalid-utf8": (SESSION, b'{"nick":"\xff"}'.decode("latin-1")),
}
for name, (sel, body) in bodies.items():
    write("json_bodies", name, bytes([sel]) + body.encode("latin-1")
          if all(ord(c) < 256 for c in body) else bytes([sel]) + body.encode())

# -- snapshot: byte 0 bit 0 lobbies, bit 1 through the file, bit 2 .prev ----
provider = {"provider_id": "p-1", "name": "voicebot",
            "base_url": "http://voicebot:8788", "description": "d",
            "registered_at": 1757443211.5, "last_seen": 1757443811.25,
            "transport": "http", "status": "online", "bots": [bot]}
caf_provider = dict(provider, provider_id="c-1", name="caf", base_url=None,
                    transport="caf", instance_id="i-1",
                    heartbeat_interval=5, load=0.25, capacity=4,
                    active_runs=1, status="draining", drain_deadline=17.5,
                    drain_by_operator=True)
providers = {"format": "voicebot-server/bot_providers", "version": 1,
             "journal_seq": 12, "providers": [provider, caf_provider]}
legacy = {"0b6f2a52": {"provider_id": "0b6f2a52", "base_url": "http://v:8788",
                       "name": "voicebot", "description": "",
                       "registered_at": 1757443211.7, "last_seen": 1757443811.0,
                       "bots": [{"name": "ai_chatbot", "description": "x"}]},
          "other-key": {"name": "n"}}
session = {"session_id": "s-2", "nick": "echo-bot", "is_bot": True,
           "bot_name": "echo", "provider_id": "p-1", "run_id": "run-42",
           "joined_at": 1757000002.75, "orphaned": False, "moved_at": None}
lobbies = {"format": "voicebot-server/lobbies", "version": 1,
           "journal_seq": 3,
           "lobbies": [{"id": "lobby-1", "name": "Kitchen", "private": True,
                        "created_at": 1757000000.5, "members": 1,
                        "sessions": [session]},
                       {"id": "lobby-2", "name": "Empty", "private": False,
                        "created_at": 1, "sessions": []}]}
snapshots = {
    "providers": (0, j(providers)),
    "providers-file": (2, j(providers)),
    "providers-legacy": (0, json.dumps(legacy, indent=2)),
    "providers-legacy-empty": (0, "{}"),
    "providers-newer": (6, j(dict(providers, version=2))),
    "providers-duplicate": (0, j(dict(providers, providers=[provider, provider]))),
    "providers-truncated": (6, j(providers)[:-7]),
    "providers-empty-file": (6, ""),
    "lobbies": (1, j(lobbies)),
    "lobbies-file": (3, j(lobbies)),
    "lobbies-wrong-format": (7, j(dict(lobbies, format="voicebot-server/bot_providers"))),
    "lobbies-orphan": (1, j(dict(lobbies, lobbies=[dict(lobbies["lobbies"][0], sessions=[dict(session, orphaned=True, moved_at=5.5)])]))),
    "lobbies-bad-type": (1, j(dict(lobbies, lobbies=[{"id": "l", "name": "n", "sessions": [{"session_id": "s", "orphaned": "yes"}]}]))),
}
for name, (sel, text) in snapshots.items():
    write("snapshot", name, bytes([sel]) + text.encode())

# -- journal: flags, snapshot seq, split; then the file ----------------------


def record(seq, payload, continues=False):
    payload = payload.encode() if isinstance(payload, str) else payload
    length = len(payload) | (0x80000000 if continues else 0)
    head = struct.pack("<I", length)
    seqb = struct.pack("<Q", seq)
    crc = crc32c(payload, crc32c(seqb, crc32c(head)))
    return head + struct.pack("<I", crc) + seqb + payload


def batch(seq, payloads):
    out = b""
    for i, p in enumerate(payloads):
        out += record(seq + i, p, i + 1 < len(payloads))
    return out


put = j({"op": "put", "provider": provider})
put2 = j({"op": "put", "provider": caf_provider})
seen = j({"op": "seen", "last_seen": {"p-1": 1757443900.5, "ghost": 1}})
delete = j({"op": "del", "provider_id": "c-1"})
lob = j({"op": "lobby", "lobby": {"id": "l1", "name": "n", "private": False,
                                   "created_at": 1.5}})
join = j({"op": "join", "lobby_id": "l1", "session": session})
leave = j({"op": "leave", "lobby_id": "l1", "session_id": "s-2"})

P, L, FIX, PREV, NEXT, SPLIT, PRE = 0, 1, 2, 4, 8, 12, 16
provider_file = batch(1, [put, put2]) + batch(3, [seen]) + batch(4, [delete])
lobby_file = batch(1, [lob]) + batch(2, [join, leave]) + batch(4, [join])
journals = {
    "providers": (P, 0, 0, provider_file),
    "providers-after-snapshot": (P, 2, 0, provider_file),
    "providers-prev": (P | PREV, 0, 0, provider_file),
    "providers-next": (P | NEXT, 0, 0, provider_file),
    "providers-split": (P | SPLIT, 0, 128, provider_file),
    "providers-torn-tail": (P, 0, 0, provider_file[:-5]),
    "providers-open-batch": (P, 0, 0, batch(1, [put]) + record(2, seen, True)),
    "providers-corrupt-middle": (P, 0, 0, provider_file[:40] + b"X" + provider_file[41:]),
    "providers-gap": (P, 0, 0, batch(1, [put]) + batch(5, [seen])),
    "providers-seq-backwards": (P, 0, 0, batch(2, [put]) + batch(1, [seen])),
    "providers-huge-length": (P, 0, 0, b"\xff\xff\xff\x7f" + b"\0" * 12),
    "providers-bad-record": (P, 0, 0, batch(1, ['{"op":"put"}', "not json", ""])),
    "providers-fix-crcs": (P | FIX, 0, 0, record(1, put)[:4] + b"\0\0\0\0" + record(1, put)[8:]),
    "lobbies": (L, 0, 0, lobby_file),
    "lobbies-preparse": (L | PRE, 0, 0, lobby_file),
    "lobbies-unknown-lobby": (L, 0, 0, batch(1, [j({"op": "join", "lobby_id": "nope", "session": {"session_id": "x"}}), j({"op": "future"})])),
    "empty": (P, 0, 0, b""),
    # Found by the fuzzer: a record with the highest seq made the next seq
    # wrap to 0 (storage/journal.cpp now refuses that record as corrupt).
    "crash-seq-max": (P, 0, 0, batch(1, [put]) + record(2**64 - 1, seen)),
    # The snapshot's journal_seq at the top: appends are refused, not wrapped.
    "snapshot-seq-max": (P, 255, 0, batch(1, [put])),
    "snapshot-seq-max-1": (P, 254, 0, b""),
}
for name, (flags, snap, split, data) in journals.items():
    write("journal", name, bytes([flags, snap, split]) + data)

# -- idempotency_files: byte 0 bit 0 journal records (lines), else snapshot --
entry = {"key": "k1", "fingerprint": j(["echo", "lobby-1", "Echo", ""]),
         "lobby_id": "lobby-1", "expires_at": 1757086400.5, "session": session}
idem = {"format": "voicebot-server/idempotency", "version": 1,
        "journal_seq": 9, "keys": [entry, dict(entry, key="k2")]}
idems = {
    "snapshot": (0, j(idem)),
    "snapshot-empty": (0, j(dict(idem, keys=[]))),
    "snapshot-duplicate": (0, j(dict(idem, keys=[entry, entry]))),
    "snapshot-newer": (0, j(dict(idem, version=2))),
    "snapshot-no-session-id": (0, j(dict(idem, keys=[dict(entry, session={"nick": "x"})]))),
    "records": (1, "\n".join([j({"op": "put", "entry": entry}),
                              j({"op": "put", "entry": dict(entry, key="k2")}),
                              j({"op": "del", "key": "k1"}),
                              j({"op": "del", "key": "never"})])),
    "records-bad": (1, "\n".join(['{"op":"put"}', '{"op":"del","key":7}',
                                  '{"op":"nope"}', "[", ""])),
}
for name, (sel, text) in idems.items():
    write("idempotency_files", name, bytes([sel]) + text.encode())

# -- http_client_answer: byte 0 bit 0 HEAD, bits 1-7 read size --------------
def resp(status, body=b"", headers=None, reason="OK"):
    headers = headers if headers is not None else {
        "Content-Type": "application/json", "Content-Length": str(len(body))}
    head = "HTTP/1.1 %d %s\r\n" % (status, reason)
    head += "".join("%s: %s\r\n" % kv for kv in headers.items())
    return head.encode() + b"\r\n" + body


ok = j({"status": "started", "run_id": "run-42"}).encode()
answers = {
    "join-ok": (0, resp(200, ok)),
    "join-ok-bytewise": (1 << 1, resp(200, ok)),
    "join-ok-7": (7 << 1, resp(200, ok)),
    "join-no-run-id": (0, resp(200, b'{"status":"started"}')),
    "join-not-object": (0, resp(200, b"[1,2]")),
    "join-run-id-control": (0, resp(200, b'{"run_id":"a\\u0007b"}')),
    "join-500": (0, resp(500, b'{"detail":"boom"}', reason="Internal Server Error")),
    "join-404": (0, resp(404, b'{"detail":"Not Found"}', reason="Not Found")),
    "chunked": (0, b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
                b"9\r\n{\"run_id\"\r\n7\r\n:\"r-1\"}\r\n0\r\n\r\n"),
    "close-delimited": (0, b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n" + ok),
    "http10": (0, b"HTTP/1.0 200 OK\r\nContent-Length: %d\r\n\r\n" % len(ok) + ok),
    "head": (1, resp(200, b"", {"Content-Length": "1234"})),
    "truncated-body": (0, resp(200, ok)[:-3]),
    "truncated-headers": (0, b"HTTP/1.1 200 OK\r\nContent-Le"),
    "too-large": (0, b"HTTP/1.1 200 OK\r\nContent-Length: 2000000\r\n\r\n{}"),
    "bad-status-line": (0, b"HTTP/1.1 2x0 OK\r\n\r\n"),
    "continue-then-ok": (0, b"HTTP/1.1 100 Continue\r\n\r\n" + resp(200, ok)),
    "trailing-bytes": (0, resp(200, ok) + b"HTTP/1.1 200 OK\r\n"),
    "no-content": (0, b"HTTP/1.1 204 No Content\r\n\r\n"),
    "empty": (0, b""),
}
for name, (sel, data) in answers.items():
    write("http_client_answer", name, bytes([sel]) + data)

print("corpus written under", ROOT)
