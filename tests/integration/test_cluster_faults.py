"""The cluster fault run under load, short (SPEC §8, design cluster-etcd.md
§4.5): bench/cluster/faults.py with every fault of its cycle once, a fault
every 6-8 s, and its checker (no acknowledged join or leave lost, no double,
every instance listing etcd's members, the providers' runs matching the
members). The 3-minute run is `python3 bench/cluster/faults.py --duration 180`.

Skipped, saying so, when Debian's etcd-server is not installed."""

import json
import os
import sys
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "..", "bench", "cluster"))

from etcd_cluster import ETCD  # noqa: E402
from harness import TIME_SCALE  # noqa: E402

import faults  # noqa: E402


@unittest.skipUnless(ETCD, "etcd is not installed (Debian's etcd-server; "
                           "scripts/setup-deps installs it): cluster fault run untested")
class ClusterFaultRunTest(unittest.TestCase):
    def test_short_fault_run_checker_finds_nothing(self):
        # Five faults (one of each kind) start 4 s in and 6-8 s apart: the
        # last one starts by about 4 + 4 * 8 = 36 s, inside 42 s of load.
        opts = faults.parse_args([
            "--duration", str(42 * TIME_SCALE), "--seed", "3", "--rate", "25",
            "--gap-min", "6", "--gap-max", "8", "--first-fault", "4", "--quiet"])
        summary = faults.run(opts)
        report = faults.table(summary)
        sys.stderr.write("\n" + report + "\n")
        self.assertEqual(summary["findings"], [],
                         report + "\n" + json.dumps(summary["findings"], indent=1,
                                                    default=str)[:20000]
                         + f"\nkept: {summary.get('kept')}")
        done = {f["fault"] for f in summary["faults"]}
        self.assertEqual(done, set(faults.FAULTS), summary["faults"])
        joins = summary["totals"].get("join", {})
        self.assertGreater(joins.get("ok", 0), 100, summary["totals"])


if __name__ == "__main__":
    unittest.main()
