"""bench/chart.py: bench/run's PNG charts. A small sample goes through the
same path as a real run (wrk.lua's BENCH_RESULT lines -> bench.py parse-wrk
-> results.jsonl -> bench.py results-json -> results.json -> chart.py), and
the PNGs are checked: signature, IHDR, dimensions. Needs gnuplot (Debian
package gnuplot-nox); skipped without it, except the check that chart.py
then says so and exits 0."""

import json
import os
import shutil
import struct
import subprocess
import sys
import tempfile
import unittest

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
BENCH_PY = os.path.join(ROOT, "bench", "bench.py")
CHART_PY = os.path.join(ROOT, "bench", "chart.py")
GNUPLOT = shutil.which("gnuplot")
NO_GNUPLOT = "gnuplot not found (Debian package gnuplot-nox, scripts/setup-deps installs it)"

# (workload, server, req/s per round): the shape of one bench/run with 2 rounds.
SAMPLE = [
    ("health", "voicebot", [76772.0, 74120.5]),
    ("health", "seed", [6044.0, 5990.2]),
    ("health", "beast_hello", [82624.0, 81002.9]),
    ("providers", "voicebot", [12192.0, 12501.3]),
    ("providers", "seed", [15.4, 14.9]),
    ("bots", "voicebot", [15308.0, 15011.0]),
    ("bots", "seed", [26.0, 25.1]),
    ("join", "voicebot", [11365.0, 11048.0]),
    ("join", "vb_nosync", [12801.0, 13469.0]),
    ("join", "seed", [3330.0, 3532.0]),
]
WORKLOADS = ["health", "providers", "bots", "join"]


def png_size(path):
    """(width, height) from a PNG's IHDR chunk; fails the PNG checks on the way."""
    with open(path, "rb") as f:
        head = f.read(33)
    if head[:8] != b"\x89PNG\r\n\x1a\n":
        raise AssertionError(f"{path}: no PNG signature ({head[:8]!r})")
    length, kind = struct.unpack(">I4s", head[8:16])
    if kind != b"IHDR" or length != 13:
        raise AssertionError(f"{path}: first chunk is {kind!r} ({length} bytes), not IHDR")
    width, height, depth, colour = struct.unpack(">IIBB", head[16:26])
    if depth not in (1, 2, 4, 8, 16) or colour not in (0, 2, 3, 4, 6):
        raise AssertionError(f"{path}: bad IHDR (bit depth {depth}, colour type {colour})")
    return width, height


def run(args, **kw):
    p = subprocess.run(args, capture_output=True, text=True, timeout=120, **kw)
    if p.returncode != 0:
        raise AssertionError(f"{args} exited {p.returncode}\nstdout: {p.stdout}\nstderr: {p.stderr}")
    return p


class BenchChartTest(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="vb-bench-chart-")
        self.addCleanup(shutil.rmtree, self.tmp, ignore_errors=True)

    def write_jsonl(self):
        """results.jsonl as bench/run builds it: parse-wrk on wrk outputs."""
        jsonl = os.path.join(self.tmp, "results.jsonl")
        with open(jsonl, "w") as out:
            for rnd in (1, 2):
                for wl, srv, rps in SAMPLE:
                    wrk_out = os.path.join(self.tmp, f"wrk-{srv}-{wl}-r{rnd}.txt")
                    requests = round(rps[rnd - 1] * 5)
                    with open(wrk_out, "w") as f:
                        f.write("Running 5s test @ http://127.0.0.1:1/\n"
                                f"BENCH_RESULT requests={requests} duration_us=5000000 p50_us=800 "
                                "p99_us=1640 status_errors=0 connect=0 read=0 write=0 timeout=0 "
                                "bytes=1000\n")
                    rec = run([sys.executable, BENCH_PY, "parse-wrk", wrk_out, str(rnd), srv, wl]).stdout
                    out.write(rec.strip() + "\n")
        return jsonl

    def write_results_json(self):
        path = os.path.join(self.tmp, "results.json")
        run([sys.executable, BENCH_PY, "results-json", self.write_jsonl(), "2", path,
             "commit=abc1234", "cores=2", "duration_s=5", "wrk_threads=2",
             "wrk_connections=64", "providers=1000"])
        return path

    def check_pngs(self, outdir):
        for name in WORKLOADS + ["overview"]:
            path = os.path.join(outdir, f"{name}.png")
            with self.subTest(png=name):
                self.assertTrue(os.path.isfile(path), f"{path} not written")
                w, h = png_size(path)
                self.assertTrue(400 <= w <= 4000 and 300 <= h <= 3000, f"{path}: {w}x{h}")
                self.assertGreater(os.path.getsize(path), 2000, f"{path}: suspiciously small")
                if name == "overview":
                    self.assertGreater(w, h)

    def test_results_json_has_medians_and_runs(self):
        with open(self.write_results_json()) as f:
            doc = json.load(f)
        self.assertEqual(doc["format"], "voicebot-bench-results/1")
        self.assertEqual((doc["rounds"], doc["commit"], doc["duration_s"]), (2, "abc1234", 5))
        self.assertTrue(doc["date"].endswith("Z") and doc["host"])
        self.assertEqual([w["workload"] for w in doc["workloads"]], WORKLOADS)
        join = {s["server"]: s for s in doc["workloads"][3]["servers"]}
        self.assertEqual(list(join), ["voicebot", "vb_nosync", "seed"])
        self.assertAlmostEqual(join["seed"]["rps_median"], (3330.0 + 3532.0) / 2, delta=0.5)
        self.assertEqual(len(join["seed"]["rps_runs"]), 2)
        self.assertEqual(len(doc["runs"]), 2 * len(SAMPLE))

    @unittest.skipIf(GNUPLOT is None, NO_GNUPLOT)
    def test_charts_from_results_json(self):
        outdir = os.path.join(self.tmp, "charts")
        p = run([sys.executable, CHART_PY, self.write_results_json(), outdir])
        self.assertIn("overview.png", p.stdout)
        self.check_pngs(outdir)
        self.assertEqual(png_size(os.path.join(outdir, "health.png")), (900, 620))
        self.assertEqual(png_size(os.path.join(outdir, "overview.png")), (1200, 680))

    @unittest.skipIf(GNUPLOT is None, NO_GNUPLOT)
    def test_charts_from_raw_jsonl(self):
        outdir = os.path.join(self.tmp, "charts")
        run([sys.executable, CHART_PY, self.write_jsonl(), outdir])
        self.check_pngs(outdir)

    def test_without_gnuplot_says_so_and_exits_0(self):
        empty = os.path.join(self.tmp, "empty-path")
        os.mkdir(empty)
        env = dict(os.environ, PATH=empty)
        env.pop("GNUPLOT", None)
        outdir = os.path.join(self.tmp, "charts")
        p = run([sys.executable, CHART_PY, self.write_results_json(), outdir], env=env)
        self.assertIn("gnuplot not found", p.stdout)
        self.assertEqual(p.stdout.count("\n"), 1)
        self.assertFalse(os.path.exists(os.path.join(outdir, "overview.png")))

    def test_rejects_a_file_that_is_not_results(self):
        bad = os.path.join(self.tmp, "bad.json")
        with open(bad, "w") as f:
            f.write('{"something": "else"}\n')
        p = subprocess.run([sys.executable, CHART_PY, bad, self.tmp], capture_output=True, text=True)
        self.assertEqual(p.returncode, 1)
        self.assertIn("neither a results.json", p.stderr)


if __name__ == "__main__":
    unittest.main()
