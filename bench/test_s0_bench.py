#!/usr/bin/env python3
"""Self-test of s0_bench.py's --reuse-peers: /usr/bin/python3 bench/test_s0_bench.py

An earlier bench.json is reused only when the settings that decide what the peers computed are
the same, and only for a mode and peer it holds; otherwise the bench stops with a message that
names the setting, mode or peer. Needs no data and runs nothing.
"""

import contextlib
import io
import json
import os
import sys
import tempfile
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import s0_bench  # noqa: E402


def earlier_report(args, modes):
    return {"args": {k: getattr(args, k) for k in s0_bench.kPeerSettings},
            "modes": modes}


class ReusePeers(unittest.TestCase):
    def setUp(self):
        self.dir = tempfile.TemporaryDirectory()
        self.path = os.path.join(self.dir.name, "bench.json")
        self.args = s0_bench.parse_args(["--train", "500", "--val", "1000", "--seeds", "3",
                                         "--reuse-peers", self.path])
        self.run = {"config": "norm=bn clip=0", "seed": 0, "val_acc": 56.1,
                    "val_predictions": [1, 2, 3], "result": "x"}

    def tearDown(self):
        self.dir.cleanup()

    def write(self, report):
        with open(self.path, "w") as f:
            json.dump(report, f)

    def stops_with(self, fn, *words):
        err = io.StringIO()
        with self.assertRaises(SystemExit) as cm, contextlib.redirect_stderr(err):
            fn()
        message = str(cm.exception.code)
        for w in words:
            self.assertIn(w, message)

    def test_same_settings_give_the_earlier_peer_runs(self):
        self.write(earlier_report(self.args, {"cache": {
            "reference": {"peer": "naive", "runs": [self.run]},
            "expert": {"peer": "expert", "runs": [self.run]}}}))
        earlier = s0_bench.load_earlier(self.args)
        with contextlib.redirect_stdout(io.StringIO()):
            naive = s0_bench.reused_peer(earlier, "cache", "naive")
            expert = s0_bench.reused_peer(earlier, "cache", "expert")
        self.assertEqual(naive["peer"], "naive")
        self.assertEqual(expert["runs"][0]["val_predictions"], [1, 2, 3])

    def test_other_settings_are_refused_by_name(self):
        report = earlier_report(self.args, {})
        report["args"]["val"] = 250
        self.write(report)
        self.stops_with(lambda: s0_bench.load_earlier(self.args), "val=250", "now 1000")

    def test_a_missing_mode_or_peer_is_refused(self):
        self.write(earlier_report(self.args, {"cache": {
            "reference": {"peer": "naive", "runs": [self.run]},
            "expert": {"peer": "expert", "runs": []}}}))
        earlier = s0_bench.load_earlier(self.args)
        self.stops_with(lambda: s0_bench.reused_peer(earlier, "faithful", "naive"),
                        "naive", "faithful")
        self.stops_with(lambda: s0_bench.reused_peer(earlier, "cache", "expert"),
                        "expert", "ran nothing")


if __name__ == "__main__":
    unittest.main()
