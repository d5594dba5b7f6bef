#!/usr/bin/env python3
"""The history checker's own tests (tests/tools/linearizability.py): histories
that must pass and histories that must fail."""
import json
import os
import subprocess
import sys
import tempfile
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import linearizability  # noqa: E402


def op(kind, t0, t1, ok=True, arg=None, value=None):
    o = {"op": kind, "invoke": t0, "complete": t1, "ok": ok}
    if arg is not None:
        o["arg"] = arg
    if value is not None or kind == "read":
        o["value"] = value
    if ok is None:
        del o["complete"]
    return o


def check(ops):
    with tempfile.NamedTemporaryFile("w", suffix=".jsonl", delete=False) as f:
        for o in ops:
            f.write(json.dumps(o) + "\n")
    try:
        out = subprocess.run([sys.executable, os.path.join(HERE, "linearizability.py"), f.name],
                             capture_output=True, text=True)
    finally:
        os.unlink(f.name)
    return out.returncode, out.stdout + out.stderr


class LinearizabilityTest(unittest.TestCase):
    def test_sequential_increments(self):
        self.assertEqual(check([op("inc", 0, 1, arg=1, value=1), op("inc", 2, 3, arg=1, value=2),
                                op("read", 4, 5, value=2)])[0], 0)

    def test_concurrent_increments_in_either_order(self):
        self.assertEqual(check([op("inc", 0, 10, arg=1, value=2), op("inc", 1, 9, arg=1, value=1),
                                op("read", 11, 12, value=2)])[0], 0)

    def test_a_lost_update_is_caught(self):
        # Two increments both saw 0: one was lost.
        code, out = check([op("inc", 0, 10, arg=1, value=1), op("inc", 1, 9, arg=1, value=1)])
        self.assertEqual(code, 1, out)
        self.assertIn("NOT linearizable", out)

    def test_a_stale_read_after_a_completed_write_is_caught(self):
        code, out = check([op("inc", 0, 1, arg=5, value=5), op("read", 2, 3, value=None)])
        self.assertEqual(code, 1, out)

    def test_a_read_overlapping_a_write_may_see_either(self):
        self.assertEqual(check([op("inc", 0, 10, arg=5, value=5), op("read", 1, 2, value=None),
                                op("read", 3, 4, value=5)])[0], 0)
        # ...but not go back once it saw the new value.
        self.assertEqual(check([op("inc", 0, 10, arg=5, value=5), op("read", 1, 2, value=5),
                                op("read", 3, 4, value=None)])[0], 1)

    def test_compare_and_set(self):
        self.assertEqual(check([op("cas", 0, 1, arg=[None, 1]), op("cas", 2, 3, ok=False, arg=[None, 7]),
                                op("cas", 4, 5, arg=[1, 2]), op("read", 6, 7, value=2)])[0], 0)
        # Two that both succeeded from the same expected value: impossible.
        self.assertEqual(check([op("cas", 0, 5, arg=[None, 1]), op("cas", 1, 4, arg=[None, 2])])[0], 1)

    def test_an_operation_of_unknown_outcome_may_or_may_not_have_happened(self):
        happened = [op("inc", 0, None, ok=None, arg=1), op("read", 5, 6, value=1)]
        self.assertEqual(check(happened)[0], 0)
        not_happened = [op("inc", 0, None, ok=None, arg=1), op("read", 5, 6, value=None)]
        self.assertEqual(check(not_happened)[0], 0)
        self.assertEqual(check([op("inc", 0, None, ok=None, arg=1), op("read", 5, 6, value=3)])[0], 1)

    def test_a_longer_interleaving_is_checked_quickly(self):
        # 8 clients, 40 increments each, overlapping in waves: every value
        # 1..320 returned once.
        ops, t, v = [], 0, 0
        for wave in range(40):
            for c in range(8):
                v += 1
                ops.append(op("inc", t + c, t + 20 + c, arg=1, value=v))
            t += 30
        ok, _ = linearizability.check(linearizability.load_ops(ops))
        self.assertTrue(ok)
        ops[100]["value"] = ops[99]["value"]  # a duplicate: a lost update
        ok, _ = linearizability.check(linearizability.load_ops(ops))
        self.assertFalse(ok)

    def test_many_operations_of_unknown_outcome_stay_quick(self):
        # 30 increments that timed out around 40 that returned, as when a
        # node dies under load: the search must not try every subset.
        ops, v = [], 0
        for i in range(30):
            ops.append(op("inc", i, None, ok=None, arg=1))
        for i in range(40):
            v += 1 if i % 4 else 2  # every fourth also takes one unknown
            ops.append(op("inc", 100 + 10 * i, 105 + 10 * i, arg=1, value=v + 0))
        ok, _ = linearizability.check(linearizability.load_ops(ops))
        self.assertTrue(ok)

    def test_bad_input_is_refused(self):
        code, out = check([{"op": "write", "invoke": 0, "complete": 1, "ok": True}])
        self.assertEqual(code, 2, out)
        self.assertIn("unknown op", out)


if __name__ == "__main__":
    unittest.main()
