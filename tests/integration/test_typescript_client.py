"""A generated TypeScript client takes the served /api/openapi.json as it is.

The real server on a free loopback port; its document, fetched from
GET /api/openapi.json, goes through openapi-typescript on its default
settings (pinned with openapi-fetch and typescript in
tests/typescript-client/package-lock.json). tests/typescript-client/client.ts
is then compiled against the generated api.d.ts with `tsc --strict --noEmit`,
and, compiled to JavaScript, run with Node against the server and a fake
HTTP provider: list lobbies, create a lobby with only its name, register a
provider of "echo", list bots and providers, join the bot with only the
lobby, leave, and two error answers read through their types.

The document before the fix failed here: it had `"default"` on request
fields (LobbyCreate.private, BotInfo.description, JoinRequest.nick), which
openapi-typescript's default `defaultNonNullable: true` turns into required
properties, so sending only what the server needs did not compile:

    client.ts(59,53): error TS2322: Type '{ name: string; }' is not assignable
      to type '{ name: string; private: boolean; } & {}'.
      Property 'private' is missing in type '{ name: string; }' but required in
      type '{ name: string; private: boolean; }'.
    client.ts(68,73): error TS2322: Type '{ name: string; }' is not assignable
      to type '{ name: string; description: string; } & {}'.
      Property 'description' is missing in type '{ name: string; }' but
      required in type '{ name: string; description: string; }'.
    client.ts(90,44): error TS2345: Argument of type '{ lobby_id: string; }' is
      not assignable to parameter of type '{ lobby_id: string; nick: string;
      provider_id?: string | undefined; }'.
      Property 'nick' is missing in type '{ lobby_id: string; }' but required
      in type '{ lobby_id: string; nick: string; provider_id?: ... }'.

test_a_default_on_a_request_field_fails_the_check puts one of those defaults
back and checks that this test would catch it again;
test_answers_send_exactly_the_required_fields checks real answers against
their schemas' `required` (what makes the generated answer types
non-optional).

Skipped only when `node` is missing; the npm packages are installed from the
lock file (npm ci) when they are missing or older than it."""

import json
import os
import shutil
import subprocess
import tempfile
import unittest

from harness import ServerTestCase, scaled

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
CLIENT_DIR = os.path.join(ROOT, "tests", "typescript-client")
MODULES = os.path.join(CLIENT_DIR, "node_modules")
BIN = os.path.join(MODULES, ".bin")


def install_packages():
    """npm ci in tests/typescript-client when its node_modules is missing or
    older than the lock file (as scripts/run-tests does); raises with a
    clear message when that cannot be done."""
    marker = os.path.join(MODULES, ".package-lock.json")
    lock = os.path.join(CLIENT_DIR, "package-lock.json")
    if os.path.exists(marker) and os.path.getmtime(marker) >= os.path.getmtime(lock) \
            and os.path.exists(os.path.join(BIN, "tsc")) \
            and os.path.exists(os.path.join(BIN, "openapi-typescript")):
        return
    if shutil.which("npm") is None:
        raise AssertionError("tests/typescript-client/node_modules is missing and npm is not "
                             "installed: install Debian's npm, then "
                             "(cd tests/typescript-client && npm ci)")
    res = subprocess.run(["npm", "ci", "--no-audit", "--no-fund", "--loglevel=error"],
                         cwd=CLIENT_DIR, capture_output=True, text=True, timeout=600)
    if res.returncode != 0:
        raise AssertionError("npm ci in tests/typescript-client failed:\n"
                             + res.stdout + res.stderr)


def run(args, cwd, env=None, timeout=120):
    return subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=scaled(timeout))


def prepare(folder, doc):
    """The generated client of `doc` and client.ts in `folder`, ready for tsc."""
    with open(os.path.join(folder, "openapi.json"), "w") as f:
        json.dump(doc, f)
    # The generator's defaults: what a new user gets.
    res = run([os.path.join(BIN, "openapi-typescript"), "openapi.json", "-o", "api.d.ts"], folder)
    if res.returncode != 0:
        raise AssertionError("openapi-typescript failed:\n" + res.stdout + res.stderr)
    for name in ("client.ts", "tsconfig.json"):
        shutil.copy(os.path.join(CLIENT_DIR, name), folder)
    os.symlink(MODULES, os.path.join(folder, "node_modules"))
    with open(os.path.join(folder, "package.json"), "w") as f:
        json.dump({"type": "module", "private": True}, f)


def type_check(folder):
    res = run([os.path.join(BIN, "tsc"), "--strict", "--noEmit", "-p", "tsconfig.json"], folder)
    return res.returncode, res.stdout + res.stderr


@unittest.skipUnless(shutil.which("node"), "node is missing (Debian's nodejs): the generated "
                     "TypeScript client cannot be compiled or run")
class TypeScriptClientTest(ServerTestCase):
    @classmethod
    def setUpClass(cls):
        install_packages()

    def setUp(self):
        super().setUp()
        self.s = self.start_server()
        status, _, self.doc = self.s.request("GET", "/api/openapi.json")
        self.assertEqual(status, 200, self.doc)
        self.folder = tempfile.mkdtemp(prefix="vb-ts-client-")
        self.addCleanup(shutil.rmtree, self.folder, True)

    def test_generated_client_compiles_and_runs(self):
        prepare(self.folder, self.doc)
        code, out = type_check(self.folder)
        self.assertEqual(code, 0, "tsc --strict --noEmit on the generated client:\n" + out)
        # Compiled to JavaScript and run: the answers are what the types say.
        res = run([os.path.join(BIN, "tsc"), "--strict", "-p", "tsconfig.json"], self.folder)
        self.assertEqual(res.returncode, 0, res.stdout + res.stderr)
        provider = self.fake_provider(("echo",))
        env = dict(os.environ, VB_BASE_URL=f"http://127.0.0.1:{self.s.port}",
                   VB_PROVIDER_URL=provider.base_url)
        res = run(["node", os.path.join("out", "client.js")], self.folder, env=env, timeout=60)
        self.assertEqual(res.returncode, 0, res.stdout + res.stderr + "\n" + self.s.log())
        summary = json.loads(res.stdout.strip().splitlines()[-1])
        self.assertTrue(summary["ok"], summary)
        self.assertEqual(summary["notFound"], "lobby_not_found: Lobby not found")
        self.assertTrue(summary["validation"].startswith("validation_error: body.lobby_id: "),
                        summary)
        # What the program did is on the server: the bot joined and left.
        self.assertEqual(len(provider.joins("echo")), 1, provider.calls)
        self.assertEqual(self.sessions(self.s, summary["lobby_id"]), [])

    def test_answers_send_exactly_the_required_fields(self):
        # What makes the generated answer types non-optional: each answer's
        # schema requires every field the server sends, and nothing more.
        schemas = self.doc["components"]["schemas"]

        def required(name):
            schema = schemas[name]
            parts = schema.get("allOf", [schema])
            fields = set()
            for part in parts:
                if "$ref" in part:
                    part = schemas[part["$ref"].rsplit("/", 1)[-1]]
                fields |= set(part.get("required", []))
            return fields

        def check(name, answer, status=200):
            got_status, _, body = answer
            self.assertEqual(got_status, status, body)
            self.assertEqual(set(body), required(name), f"{name}: {body}")
            return body

        fp = self.fake_provider(("echo",))
        s = self.s
        check("Health", s.request("GET", "/api/health"))
        lobby = check("Lobby", s.request("POST", "/api/lobby", {"name": "fields"}), 201)
        listed = check("LobbyList", s.request("GET", "/api/lobby"))
        check("LobbySummary", (200, {}, listed["lobbies"][0]))
        check("LobbySession", s.request("POST", f"/api/lobby/{lobby['id']}/sessions",
                                        {"nick": "ann"}), 201)
        provider_id = check("Registered", s.request(
            "POST", "/api/bots/providers/register",
            {"name": "p", "base_url": fp.base_url, "bots": [{"name": "echo"}]}))["provider_id"]
        providers = check("ProviderList", s.request("GET", "/api/bots/providers"))
        check("Provider", (200, {}, providers["providers"][0]))
        check("Bot", (200, {}, providers["providers"][0]["bots"][0]))
        bots = check("BotListing", s.request("GET", "/api/bots"))
        item = schemas["BotListing"]["properties"]["bots"]["items"]
        self.assertEqual(set(bots["bots"][0]), set(item["required"]))
        check("HeartbeatAnswer", s.request("POST", f"/api/bots/providers/{provider_id}/heartbeat",
                                           {}))
        joined = check("JoinAnswer", self.join(s, lobby["id"]))
        lobby = check("Lobby", s.request("GET", f"/api/lobby/{lobby['id']}"))
        for member in lobby["sessions"]:
            check("Session", (200, {}, member))
        check("LeaveAnswer", s.request("POST", "/api/bots/leave",
                                       {"session_id": joined["session_id"]}))
        check("Provider", s.request("POST", f"/api/bots/providers/{provider_id}/drain", {}))
        check("Error", s.request("GET", "/api/lobby/no-such-lobby"), 404)
        wrong_method = s.request("PUT", "/api/lobby")
        check("Error", wrong_method, 405)
        self.assertEqual(wrong_method[1]["allow"], "GET, POST")
        check("Error", s.request("GET", "/api/no-such-route"), 404)
        invalid = check("ValidationError", s.request("POST", "/api/lobby", {}), 422)
        check("ValidationErrorItem", (422, {}, invalid["detail"][0]), 422)

    def test_a_default_on_a_request_field_fails_the_check(self):
        # As the document had it before: `private` with a default.
        doc = json.loads(json.dumps(self.doc))
        doc["components"]["schemas"]["LobbyCreate"]["properties"]["private"]["default"] = False
        prepare(self.folder, doc)
        code, out = type_check(self.folder)
        self.assertNotEqual(code, 0, out)
        self.assertIn("error TS2322", out)
        self.assertIn("Property 'private' is missing in type '{ name: string; }'", out)


if __name__ == "__main__":
    unittest.main()
