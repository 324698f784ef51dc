"""voicebot-server as a process: start-up from snapshots, health, flags and
config, signals. The real binary, free loopback ports, a temporary data dir."""

import glob
import json
import os
import signal
import subprocess
import unittest

from harness import PROVIDER, Server, ServerTestCase, run_server_cli


def legacy_snapshot():
    """A bot_providers.json as the original Python server wrote it."""
    return {
        "7f0c2a52-1c39-4a8e-9d43-2b7a4f7d9e01": {
            "provider_id": "7f0c2a52-1c39-4a8e-9d43-2b7a4f7d9e01",
            "base_url": "http://127.0.0.1:8788",
            "name": "voicebot-main",
            "description": "AI voicebots",
            "registered_at": 1726000000.5,
            "last_seen": 1726000300.25,
            "bots": [{"name": "ai_chatbot", "description": "chats"}],
        },
        "0b7e9d1a-55aa-4c11-8f00-93d1c2b3a4f5": {
            "provider_id": "0b7e9d1a-55aa-4c11-8f00-93d1c2b3a4f5",
            "base_url": "http://127.0.0.1:8789",
            "name": "voicebot-tts",
            "description": "",
            "registered_at": 1726000001.0,
            "last_seen": 1726000001.0,
        },
    }


class ServerProcessTest(ServerTestCase):
    def server(self, *args):
        s = Server(self.tmp.path, args)
        self.servers.append(s)
        return s

    def test_health_and_clean_exit_with_embedded_defaults(self):
        s = self.server().start()
        status, _, body = s.request("GET", "/api/health")
        self.assertEqual(status, 200)
        self.assertEqual(body["status"], "ok")
        self.assertEqual(body["providers"], 0)
        self.assertEqual(body["lobbies"], 0)
        self.assertIn("version", body)
        self.assertGreaterEqual(body["uptime_s"], 0)
        self.assertEqual(s.stop(signal.SIGTERM), 0)
        # The final snapshot was written to ./data.
        with open(self.data("bot_providers.json")) as f:
            self.assertEqual(json.load(f)["providers"], [])

    def test_sigint_also_exits_cleanly(self):
        s = self.server().start()
        self.assertEqual(s.stop(signal.SIGINT), 0)
        self.assertIn("final provider snapshot written", s.log())

    def test_legacy_python_snapshot_loads_before_serving(self):
        os.makedirs(self.data())
        with open(self.data("bot_providers.json"), "w") as f:
            json.dump(legacy_snapshot(), f, indent=2)
        s = self.server().start()
        # Routes work from the first request.
        status, _, body = s.request("GET", "/api/health")
        self.assertEqual((status, body["providers"]), (200, 2))
        self.assertEqual(s.stop(), 0)
        # The final snapshot keeps both, in our format.
        with open(self.data("bot_providers.json")) as f:
            ids = {p["provider_id"] for p in json.load(f)["providers"]}
        self.assertEqual(ids, set(legacy_snapshot()))

    def test_corrupt_newest_is_moved_aside_and_previous_loads(self):
        os.makedirs(self.data())
        with open(self.data("bot_providers.json.prev"), "w") as f:
            json.dump(legacy_snapshot(), f)
        torn = '{"format":"voicebot-server/bot_providers","version":1,"providers":[{"provider_id":"x'
        with open(self.data("bot_providers.json"), "w") as f:
            f.write(torn)
        with open(self.data("bot_providers.json.tmp"), "w") as f:
            f.write("leftover")
        s = self.server().start()
        status, _, body = s.request("GET", "/api/health")
        self.assertEqual(body["providers"], 2)
        moved = glob.glob(self.data("bot_providers.json.corrupt-*"))
        self.assertEqual(len(moved), 1)
        with open(moved[0]) as f:
            self.assertEqual(f.read(), torn)  # never changed, never deleted
        self.assertFalse(os.path.exists(self.data("bot_providers.json.tmp")))
        self.assertRegex(s.log(), r"warn.*bot_providers\.json.*corrupt")
        self.assertEqual(s.stop(), 0)

    def test_empty_newest_without_previous_starts_empty(self):
        os.makedirs(self.data())
        open(self.data("bot_providers.json"), "w").close()
        s = self.server().start()
        self.assertEqual(s.request("GET", "/api/health")[2]["providers"], 0)
        self.assertEqual(len(glob.glob(self.data("bot_providers.json.corrupt-*"))), 1)
        self.assertEqual(s.stop(), 0)

    def test_config_file_applies_and_flags_win(self):
        conf = os.path.join(self.tmp.path, "conf.json")
        with open(conf, "w") as f:
            json.dump({"base_path": "/from-file", "data_dir": "./elsewhere"}, f)
        s = self.server("--config", conf).start()
        self.assertEqual(s.request("GET", "/from-file/api/health")[0], 200)
        self.assertEqual(s.request("GET", "/api/health")[0], 404)
        self.assertEqual(s.stop(), 0)
        self.assertTrue(os.path.exists(os.path.join(self.tmp.path, "elsewhere", "bot_providers.json")))
        s = self.server("--config", conf, "--base-path", "/from-flag").start()
        self.assertEqual(s.request("GET", "/from-flag/api/health")[0], 200)
        self.assertEqual(s.request("GET", "/from-file/api/health")[0], 404)
        self.assertEqual(s.stop(), 0)

    def test_help_lists_the_flags(self):
        res = run_server_cli(["--help"], self.tmp.path)
        self.assertEqual(res.returncode, 0)
        for flag in ["--config", "--host", "--port", "--base-path", "--data-dir", "--caf-host",
                     "--caf-port", "--cleanup-interval", "--stale-after", "--max-evict-fraction",
                     "--provider-key", "--log-level", "--empty-lobby-grace",
                     "--access-secret-file", "--access-required-for-reads",
                     "--max-joins-per-client-per-minute", "--max-lobbies-per-client-per-hour"]:
            self.assertIn(flag, res.stdout)

    def test_version_is_printed_by_both_programs(self):
        res = run_server_cli(["--version"], self.tmp.path)
        self.assertEqual(res.returncode, 0, res.stderr)
        self.assertRegex(res.stdout.strip(), r"^voicebot-server \d+\.\d+\.\d+$")
        res = subprocess.run([PROVIDER, "--version"], capture_output=True, text=True, timeout=20)
        self.assertEqual(res.returncode, 0, res.stderr)
        self.assertRegex(res.stdout.strip(), r"^voicebot-provider \d+\.\d+\.\d+$")

    def test_bad_values_exit_2_with_a_clear_message(self):
        conf = os.path.join(self.tmp.path, "bad.json")
        with open(conf, "w") as f:
            f.write('{"stale_after": "soon"}')
        cases = [
            (["--port", "abc"], "port"),
            (["--stale-after", "0"], "stale_after"),
            (["--max-evict-fraction", "2"], "max_evict_fraction"),
            (["--log-level", "loud"], "log_level"),
            (["--no-such-flag"], "no-such-flag"),
            (["--config", conf], "stale_after"),
            (["--config", os.path.join(self.tmp.path, "missing.json")], "missing.json"),
        ]
        for args, word in cases:
            with self.subTest(args=args):
                res = run_server_cli(args, self.tmp.path)
                self.assertEqual(res.returncode, 2)
                self.assertIn(word, res.stderr)

    def test_unknown_route_and_wrong_method(self):
        s = self.server().start()
        status, _, body = s.request("GET", "/api/nothing-here")
        self.assertEqual((status, body), (404, {"detail": "Not Found", "code": "not_found"}))
        status, headers, body = s.request("DELETE", "/api/health")
        self.assertEqual(status, 405)
        self.assertEqual(body["detail"], "Method Not Allowed")
        self.assertEqual(headers["allow"], "GET")
        self.assertEqual(s.stop(), 0)


if __name__ == "__main__":
    unittest.main()
