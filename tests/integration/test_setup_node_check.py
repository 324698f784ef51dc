"""scripts/check-node: the set-up's guard that the pinned npm tools accept this
machine's Node.js. It runs against a `node` on PATH that prints a chosen
version, so the test does not depend on which Node the machine has."""

import importlib.machinery
import importlib.util
import json
import os
import subprocess
import tempfile
import unittest

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
SCRIPT = os.path.join(ROOT, "scripts", "check-node")


def load_module():
    loader = importlib.machinery.SourceFileLoader("check_node", SCRIPT)
    spec = importlib.util.spec_from_loader("check_node", loader)
    module = importlib.util.module_from_spec(spec)
    loader.exec_module(module)
    return module


class RangesTest(unittest.TestCase):
    def setUp(self):
        self.m = load_module()

    def accepts(self, version, rng):
        return self.m.satisfies(self.m.parse_version(version)[0], rng)

    def test_node_18_against_the_ranges_npm_packages_declare(self):
        cases = [
            (">=18", True), (">=20", False), (">=18.17.0", True), (">= 20.16.0", False),
            ("^14.15.0 || ^16.10.0 || >=18.0.0", True), ("^20.0.0 || >=22", False),
            ("6.* || 8.* || >= 10.*", True), ("4.x || >=6.0.0", True), ("*", True),
            (">=14.16", True), ("^18.17.0", True), ("^18.21.0", False), ("~18.20.0", True),
            ("~18.19.0", False), ("18.x", True), ("16.x", False), (">18", False),
            (">=16 <19", True), (">=16 <18.20", False), ("16 - 18", True), ("19 - 22", False),
        ]
        for rng, expected in cases:
            with self.subTest(range=rng):
                self.assertEqual(self.accepts("v18.20.4", rng), expected)

    def test_node_20_is_accepted_where_node_18_is_not(self):
        self.assertTrue(self.accepts("v20.20.2", ">=20"))
        self.assertTrue(self.accepts("v20.20.2", ">= 20.16.0"))
        self.assertFalse(self.accepts("v20.15.0", ">= 20.16.0"))


class ScriptTest(unittest.TestCase):
    def run_with_node(self, version, packages):
        with tempfile.TemporaryDirectory() as tmp:
            node = os.path.join(tmp, "node")
            with open(node, "w") as f:
                f.write(f"#!/bin/sh\necho {version}\n")
            os.chmod(node, 0o755)
            lock = os.path.join(tmp, "package-lock.json")
            with open(lock, "w") as f:
                json.dump({"lockfileVersion": 3, "packages": packages}, f)
            env = dict(os.environ, PATH=tmp + os.pathsep + os.environ["PATH"])
            return subprocess.run([SCRIPT, lock], env=env, capture_output=True, text=True)

    def test_a_tool_that_needs_a_newer_node_stops_the_setup_naming_both(self):
        res = self.run_with_node("v18.20.4", {
            "": {"name": "t"},
            "node_modules/playwright-core": {"version": "1.65.1", "engines": {"node": ">=20"}},
            "node_modules/ok": {"version": "1.0.0", "engines": {"node": ">=14"}},
        })
        self.assertEqual(res.returncode, 1, res.stderr)
        self.assertIn("v18.20.4", res.stderr)
        self.assertIn("playwright-core@1.65.1 needs Node >=20", res.stderr)
        self.assertNotIn("ok@1.0.0", res.stderr)

    def test_a_platform_only_optional_package_is_not_held_against_node(self):
        res = self.run_with_node("v18.20.4", {
            "node_modules/fsevents": {"version": "2.3.3", "optional": True, "os": ["darwin"],
                                       "engines": {"node": ">=30"}},
        })
        self.assertEqual(res.returncode, 0, res.stderr)

    def test_the_committed_lock_files_accept_debian_bookworms_node(self):
        locks = [os.path.join(ROOT, "tools", "package-lock.json"),
                 os.path.join(ROOT, "tests", "browser", "package-lock.json"),
                 os.path.join(ROOT, "tests", "typescript-client", "package-lock.json")]
        with tempfile.TemporaryDirectory() as tmp:
            node = os.path.join(tmp, "node")
            with open(node, "w") as f:
                f.write("#!/bin/sh\necho v18.20.4\n")
            os.chmod(node, 0o755)
            env = dict(os.environ, PATH=tmp + os.pathsep + os.environ["PATH"])
            res = subprocess.run([SCRIPT] + locks, env=env, capture_output=True, text=True)
        self.assertEqual(res.returncode, 0, res.stderr)


if __name__ == "__main__":
    unittest.main()
