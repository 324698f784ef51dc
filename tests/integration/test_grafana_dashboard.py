"""conf/grafana/voicebot-server.json, the Grafana dashboard of the series
the operator's page shows: every PromQL expression in it is checked with
Debian's promtool against a real Prometheus scraping the running server
(once a second) while joins run. Each one must parse (promtool check
rules), name only metrics the server exports, and give a result; the
values that can be known are compared with the API."""

import json
import os
import re
import shutil
import subprocess
import threading
import time
import unittest

from harness import ServerTestCase, scaled, wait_until
import nginx_proxy  # free_port

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
DASHBOARD = os.path.join(ROOT, "conf", "grafana", "voicebot-server.json")
MISSING = [t for t in ("prometheus", "promtool") if not shutil.which(t)]


def expressions(dashboard):
    """(panel title, expr) of every target of every panel."""
    out = []
    for p in dashboard["panels"]:
        for t in p.get("targets", []):
            out.append((p["title"], t["expr"]))
    return out


def concrete(expr):
    """The expression as Grafana sends it: every instance, a rate window of
    four scrape intervals ($__rate_interval's rule)."""
    return expr.replace("$__rate_interval", "5s").replace("$instance", ".*")


class DashboardFileTest(unittest.TestCase):
    def test_the_dashboard_is_importable_json(self):
        with open(DASHBOARD) as f:
            d = json.load(f)
        self.assertEqual(d["__inputs"][0]["name"], "DS_PROMETHEUS")
        ids = [p["id"] for p in d["panels"]]
        self.assertEqual(len(ids), len(set(ids)), "panel ids are unique")
        for p in d["panels"]:
            self.assertEqual(p["datasource"]["uid"], "${DS_PROMETHEUS}", p["title"])
            self.assertTrue(p["targets"], p["title"])
            for k in ("x", "y", "w", "h"):
                self.assertIn(k, p["gridPos"])
        titles = " ".join(p["title"] for p in d["panels"]).lower()
        for series in ("providers by state", "lobbies", "members", "joins per second",
                       "p99 join latency", "journal appends and snapshot writes"):
            self.assertIn(series, titles)


@unittest.skipIf(MISSING, f"needs {', '.join(MISSING)} (Debian package prometheus)")
class DashboardQueriesTest(ServerTestCase):
    def promtool(self, *args):
        res = subprocess.run(["promtool"] + list(args), capture_output=True, text=True,
                             timeout=scaled(30))
        return res.returncode, res.stdout + res.stderr

    def query(self, expr):
        """The values of an instant query: [(labels text, value)]."""
        rc, out = self.promtool("query", "instant", self.prom_url, concrete(expr))
        self.assertEqual(rc, 0, f"{expr}\n{out}")
        values = []
        for line in out.splitlines():
            m = re.match(r"^(.*) => (\S+) @\[", line)
            if m:
                values.append((m.group(1), float(m.group(2))))
        return values

    def start_prometheus(self, target_port):
        d = os.path.join(self.tmp.path, "prometheus")
        os.makedirs(d)
        port = nginx_proxy.free_port()
        with open(os.path.join(d, "prometheus.yml"), "w") as f:
            f.write(f"""global:
  scrape_interval: 1s
  evaluation_interval: 1s
scrape_configs:
  - job_name: voicebot-server
    metrics_path: /metrics
    static_configs:
      - targets: ["127.0.0.1:{target_port}"]
""")
        with open(os.path.join(d, "prometheus.log"), "w") as log:
            proc = subprocess.Popen(["prometheus", f"--config.file={d}/prometheus.yml",
                                     f"--storage.tsdb.path={d}/data",
                                     f"--web.listen-address=127.0.0.1:{port}"],
                                    stdout=subprocess.DEVNULL, stderr=log)
        self.addCleanup(lambda: (proc.terminate(), proc.wait(10)))
        self.prom_url = f"http://127.0.0.1:{port}"
        return proc

    def test_every_expression_against_a_scrape_of_the_running_server(self):
        with open(DASHBOARD) as f:
            exprs = expressions(json.load(f))
        self.assertGreaterEqual(len(exprs), 10)
        # Every expression parses (as a recording rule).
        rules = os.path.join(self.tmp.path, "rules.yml")
        with open(rules, "w") as f:
            f.write("groups:\n  - name: dashboard\n    rules:\n")
            for i, (_, e) in enumerate(exprs):
                f.write(f"      - record: dashboard:expr{i}\n        expr: {json.dumps(concrete(e))}\n")
        rc, out = self.promtool("check", "rules", rules)
        self.assertEqual(rc, 0, out)
        self.assertIn("SUCCESS", out)

        s = self.start_server()
        fp = self.fake_provider()
        self.register(s, fp)
        lobby = self.create_lobby(s, "graphs")
        # Every metric the dashboard names is one the server exports.
        status, _, scrape = s.request("GET", "/metrics")
        exported = set(re.findall(r"^(voicebot_[a-z_]+)", scrape, re.M))
        for title, e in exprs:
            for name in re.findall(r"voicebot_[a-z_]+", e):
                self.assertIn(name, exported, f"{title}: {name}")

        stop = threading.Event()

        def joins():
            n = 0
            while not stop.is_set():
                self.join(s, lobby["id"], "echo", f"g{n}")
                n += 1
                stop.wait(0.05)
        t = threading.Thread(target=joins, daemon=True)
        t.start()
        try:
            self.start_prometheus(s.port)
            join_rate = 'sum(rate(voicebot_http_requests_total{route="/api/bots/{bot_name}/join",status=~"2.."}[5s]))'

            def rated():
                try:
                    v = self.query(join_rate)
                except AssertionError:
                    return None  # Prometheus still starting
                return v if v and v[0][1] > 0 else None
            wait_until(rated, 30, "Prometheus rating the joins")
            results = {}
            for title, e in exprs:
                values = self.query(e)
                self.assertTrue(values, f"{title}: no result for {concrete(e)}")
                results[e] = values
        finally:
            stop.set()
            t.join(10)

        def only(title_part):
            for title, e in exprs:
                if title_part in title.lower():
                    return results[e]
            raise AssertionError(title_part)
        self.assertEqual(only("lobbies")[0][1], 1.0)
        states = dict((re.search(r'status="(\w+)"', l).group(1), v) for l, v in only("providers by state"))
        self.assertEqual(states, {"online": 1.0, "suspect": 0.0, "unreachable": 0.0, "draining": 0.0})
        self.assertGreater(only("joins per second")[0][1], 0)
        p99 = only("p99 join latency")[0][1]
        self.assertTrue(0 < p99 < 10, p99)
        self.assertEqual(only("orphaned")[0][1], 0.0)
        self.assertEqual(only("5xx")[0][1], 0.0)


if __name__ == "__main__":
    unittest.main()
