"""Deployed like the original: behind nginx over HTTPS under /ai-voicebot/
(SPEC §6, docs/deployment.md). Debian's nginx with the shipped
conf/nginx/voicebot-server.conf and a self-signed certificate, both started
here on loopback, in front of the real server. The seed's verification
commands run through the proxy with curl -k and give the documented
answers; the page, /docs and the document work under the base path; the
lobby WebSocket works through the proxy's upgrade; a restart of the server
behind the proxy is a 503 with Retry-After, then works again; the client
address in the logs is the one X-Forwarded-For names, and one forged by a
client is not believed."""

import json
import os
import shutil
import signal
import ssl
import subprocess
import unittest

from harness import ServerTestCase, scaled, wait_until
import nginx_proxy
from nginx_proxy import BASE

MISSING = nginx_proxy.missing_tools() + ([] if shutil.which("curl") else ["curl"])

# The client connects from its own loopback address, so the server can tell
# it from the proxy (127.0.0.1) in the X-Forwarded-For nginx sends.
CLIENT = "127.0.0.3"


@unittest.skipIf(MISSING, f"needs {', '.join(MISSING)} (Debian packages nginx, openssl, curl)")
class NginxProxyTest(ServerTestCase):
    def setUp(self):
        super().setUp()
        self.proxy_port = nginx_proxy.free_port()
        self.server = self.start_server(
            "--base-path", BASE, "--trusted-proxy", "127.0.0.1",
            "--public-url", f"https://127.0.0.1:{self.proxy_port}{BASE}")
        self.nginx = nginx_proxy.Nginx(self.tmp.path, self.server.port, self.proxy_port).start()
        self.addCleanup(self.nginx.stop)
        self.url = self.nginx.url

    def curl(self, *args, expect_json=True):
        """curl -k as the seed's verification commands, from CLIENT;
        returns (status, headers, body)."""
        res = subprocess.run(["curl", "-k", "-sS", "--interface", CLIENT, "-D", "-",
                              "--max-time", str(scaled(15))] + list(args),
                             capture_output=True)
        self.assertEqual(res.returncode, 0, res.stderr)
        head, _, body = res.stdout.decode("utf-8", "replace").partition("\r\n\r\n")
        while head.startswith("HTTP/1.1 100"):
            head, _, body = body.partition("\r\n\r\n")
        lines = head.split("\r\n")
        status = int(lines[0].split()[1])
        headers = {}
        for line in lines[1:]:
            k, _, v = line.partition(":")
            headers[k.strip().lower()] = v.strip()
        if expect_json and body:
            body = json.loads(body)
        return status, headers, body

    def test_the_seeds_verification_commands_through_the_proxy(self):
        fp = self.fake_provider(bots=("ai_chatbot",))
        # The provider registers through the proxy too, as the seed's
        # voicebot does (https://HOST/ai-voicebot/api/...).
        status, _, reg = self.curl("-X", "POST", f"{self.url}/api/bots/providers/register",
                                   "-H", "Content-Type: application/json",
                                   "-d", json.dumps({"name": "voicebot", "base_url": fp.base_url,
                                                     "bots": [{"name": "ai_chatbot"}]}))
        self.assertEqual(status, 200, reg)
        pid = reg["provider_id"]
        status, _, lobby = self.curl("-X", "POST", f"{self.url}/api/lobby",
                                     "-H", "Content-Type: application/json",
                                     "-d", '{"name":"verification"}')
        self.assertEqual(status, 201, lobby)
        # curl -k https://ketrenos.com/ai-voicebot/api/lobby
        status, _, lobbies = self.curl(f"{self.url}/api/lobby")
        self.assertEqual(status, 200)
        self.assertEqual([l["name"] for l in lobbies["lobbies"]], ["verification"])
        # curl -k -X POST .../api/bots/ai_chatbot/join -d '{"lobby_id":..,"nick":"test-bot","provider_id":..}'
        status, _, joined = self.curl(
            "-X", "POST", f"{self.url}/api/bots/ai_chatbot/join",
            "-H", "Content-Type: application/json",
            "-d", json.dumps({"lobby_id": lobby["id"], "nick": "test-bot", "provider_id": pid}))
        self.assertEqual(status, 200, joined)
        self.assertEqual(joined["status"], "requested")
        self.assertEqual(joined["bot_name"], "ai_chatbot")
        self.assertEqual(joined["provider_id"], pid)
        # The provider was told the public URL, not the loopback listener.
        self.assertEqual(fp.joins()[-1][2]["server_url"], self.url)
        # curl -k .../api/bots/providers
        status, _, providers = self.curl(f"{self.url}/api/bots/providers")
        self.assertEqual(status, 200)
        self.assertEqual([p["provider_id"] for p in providers["providers"]], [pid])
        # curl -k .../api/bots
        status, _, bots = self.curl(f"{self.url}/api/bots")
        self.assertEqual(status, 200)
        self.assertEqual([b["name"] for b in bots["bots"]], ["ai_chatbot"])
        self.assertEqual(bots["providers"], {"ai_chatbot": pid})
        # Cheap polling works through the proxy: nginx passes the gzip body
        # and the ETag (a second provider makes the listing worth compressing).
        fp2 = self.fake_provider(bots=tuple(f"bot{i}" for i in range(40)))
        status, _, _ = self.curl("-X", "POST", f"{self.url}/api/bots/providers/register",
                                 "-H", "Content-Type: application/json",
                                 "-d", json.dumps({"name": "many", "base_url": fp2.base_url,
                                                   "bots": [{"name": b} for b in fp2.bots]}))
        self.assertEqual(status, 200)
        status, headers, _ = self.curl(f"{self.url}/api/bots", "--compressed")
        self.assertEqual(headers.get("content-encoding"), "gzip")
        status, _, _ = self.curl(f"{self.url}/api/bots", "-H",
                                 f"If-None-Match: {headers['etag']}", expect_json=False)
        self.assertEqual(status, 304)

    def test_the_page_docs_and_document_under_the_base_path(self):
        status, headers, _ = self.curl(BASE.join([self.url.split(BASE)[0], ""]), expect_json=False)
        self.assertEqual(status, 308)
        self.assertTrue(headers["location"].endswith(BASE + "/"), headers)
        status, headers, page = self.curl(f"{self.url}/", expect_json=False)
        self.assertEqual(status, 200)
        self.assertTrue(headers["content-type"].startswith("text/html"))
        self.assertIn("app.js", page)
        status, _, _ = self.curl(f"{self.url}/app.js", expect_json=False)
        self.assertEqual(status, 200)
        status, _, docs = self.curl(f"{self.url}/docs", expect_json=False)
        self.assertEqual(status, 200)
        status, _, doc = self.curl(f"{self.url}/api/openapi.json")
        self.assertEqual(status, 200)
        self.assertEqual(doc["servers"][0]["url"], BASE)
        # /metrics is kept to the proxy's host (allow 127.0.0.1).
        status, _, _ = self.curl(f"{self.url}/metrics", expect_json=False)
        self.assertEqual(status, 403)

    def test_the_lobby_websocket_through_the_proxy(self):
        from wsclient import WebSocket
        status, _, lobby = self.curl("-X", "POST", f"{self.url}/api/lobby",
                                     "-H", "Content-Type: application/json",
                                     "-d", '{"name":"live"}')
        self.assertEqual(status, 201, lobby)
        tls = ssl.create_default_context()
        tls.check_hostname = False
        tls.verify_mode = ssl.CERT_NONE
        ws = WebSocket(self.proxy_port, f"{BASE}/ws/lobby/{lobby['id']}", tls=tls,
                       source=CLIENT,
                       headers={"Origin": f"https://127.0.0.1:{self.proxy_port}"})
        try:
            first = ws.recv_json(scaled(10))
            self.assertEqual(first["type"], "members")
            status, _, person = self.curl("-X", "POST", f"{self.url}/api/lobby/{lobby['id']}/sessions",
                                          "-H", "Content-Type: application/json",
                                          "-d", '{"nick":"Ann"}')
            self.assertEqual(status, 201, person)
            msg, _ = ws.wait_for(lambda m: m["type"] == "member_joined", scaled(10))
            self.assertEqual(msg["member"]["nick"], "Ann")
        finally:
            ws.close()
        self.server.wait_for_line(rf"POST {BASE}/api/lobby/\S+/sessions 201 [0-9.]+ ms "
                                  r"from 127[.]0[.]0[.]3 via 127[.]0[.]0[.]1 \(https\)")

    def test_a_restart_behind_the_proxy_is_a_503_then_works(self):
        fp = self.fake_provider()
        status, _, _ = self.server.request("POST", f"{BASE}/api/bots/providers/register",
                                           {"name": "fake", "base_url": fp.base_url,
                                            "bots": [{"name": "echo"}]})
        self.assertEqual(status, 200)
        status, _, lobby = self.server.request("POST", f"{BASE}/api/lobby", {"name": "restarts"})
        self.assertEqual(status, 201)
        self.server.kill()
        status, headers, body = self.curl("-X", "POST", f"{self.url}/api/bots/echo/join",
                                          "-H", "Content-Type: application/json",
                                          "-d", json.dumps({"lobby_id": lobby["id"]}))
        self.assertEqual(status, 503, body)
        self.assertEqual(headers.get("retry-after"), "1")
        self.assertEqual(body["code"], "server_unavailable")
        self.server.start(same_ports=True)
        status, _, joined = self.curl("-X", "POST", f"{self.url}/api/bots/echo/join",
                                      "-H", "Content-Type: application/json",
                                      "-d", json.dumps({"lobby_id": lobby["id"]}))
        self.assertEqual(status, 200, joined)

    def test_logs_name_the_forwarded_client_and_ignore_a_forged_one(self):
        # Through the proxy, with a forged entry of the client's own: the
        # server believes the address nginx saw (the right-most untrusted).
        status, _, _ = self.curl(f"{self.url}/api/health?through=proxy",
                                 "-H", "X-Forwarded-For: 203.0.113.66")
        self.assertEqual(status, 200)
        self.server.wait_for_line(rf"GET {BASE}/api/health\?through=proxy 200 [0-9.]+ ms "
                                  r"from 127[.]0[.]0[.]3 via 127[.]0[.]0[.]1 \(https\)")
        # Straight to the server from the client's address, forging both
        # headers: not a trusted proxy, so neither is believed.
        res = subprocess.run(["curl", "-sS", "--interface", CLIENT, "-o", "/dev/null",
                              "-H", "X-Forwarded-For: 203.0.113.66", "-H", "X-Forwarded-Proto: https",
                              f"http://127.0.0.1:{self.server.port}{BASE}/api/health?direct=1"],
                             capture_output=True, text=True)
        self.assertEqual(res.returncode, 0, res.stderr)
        self.server.wait_for_line(rf"GET {BASE}/api/health\?direct=1 200 [0-9.]+ ms "
                                  r"from 127[.]0[.]0[.]3$")
        self.assertNotIn("203.0.113.66", self.server.log())


if __name__ == "__main__":
    unittest.main()
