"""cairn-bench against a real cairn-server: both cairn targets load and run
every workload, reads find what the load wrote, and bad usage is refused."""
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import unittest

BENCH = SERVER = None


class BenchTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.dir = tempfile.mkdtemp(prefix="cairn-bench-test-")
        config = os.path.join(cls.dir, "c.yaml")
        with open(config, "w") as f:
            f.write("stores:\n  default:\n    stack: [stats, {engine: memory}]\n")
        port_file = os.path.join(cls.dir, "port")
        cls.server = subprocess.Popen([SERVER, "--config", config, "--listen", "127.0.0.1:0",
                                       "--port-file", port_file], stderr=subprocess.DEVNULL)
        for _ in range(2000):
            if os.path.exists(port_file):
                break
            time.sleep(0.01)
        with open(port_file) as f:
            cls.address = "127.0.0.1:" + f.read().strip()

    @classmethod
    def tearDownClass(cls):
        cls.server.terminate()
        cls.server.wait(timeout=20)
        shutil.rmtree(cls.dir, ignore_errors=True)

    def bench(self, *args):
        r = subprocess.run([BENCH] + list(args), capture_output=True, text=True, timeout=120)
        return r

    def test_every_workload_runs_on_both_cairn_targets(self):
        for scheme, depth in [("cairn", "1"), ("cairn", "4"), ("cairn-stream", "8")]:
            r = self.bench("--target", scheme + "://" + self.address, "--records", "2000",
                           "--duration", "1", "--threads", "2", "--depth", depth, "--json")
            self.assertEqual(r.returncode, 0, r.stderr)
            phases = {}
            for line in r.stdout.splitlines():
                if line.startswith("{"):
                    j = json.loads(line)
                    phases[j["phase"]] = j
            self.assertEqual(sorted(phases), ["A", "B", "C", "load"], r.stdout)
            self.assertEqual(phases["load"]["ops"], 2000, "every record loaded once")
            self.assertEqual(phases["load"]["update"]["count"], 2000)
            for w in "ABC":
                self.assertGreater(phases[w]["ops"], 0)
                self.assertEqual(phases[w]["misses"], 0, "every read finds a loaded record")
                self.assertEqual(phases[w]["read"]["count"] + phases[w]["update"]["count"],
                                 phases[w]["ops"])
            self.assertEqual(phases["C"]["update"]["count"], 0, "C only reads")
            self.assertGreater(phases["A"]["update"]["count"], phases["B"]["update"]["count"] * 3,
                               "A updates half the time, B one time in twenty")
            self.assertIn("ops/s", r.stdout)

    def test_progress_goes_to_stderr(self):
        r = self.bench("--target", "cairn-stream://" + self.address, "--records", "500",
                       "--duration", "2", "--workloads", "C", "--no-load")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertRegex(r.stderr, r"C: \d s, \d+ ops, \d+ ops/s")

    def test_bad_usage_and_dead_targets(self):
        for args, code, says in [
                ([], 2, "--target or --config is required"),
                (["--target", "ftp://x:1"], 2, "unknown target scheme 'ftp'"),
                (["--target", "cairn://nohostport"], 2, "is not HOST:PORT"),
                (["--target", "cairn://" + self.address, "--workloads", "A,Z"], 2,
                 "unknown workload 'Z'"),
                (["--target", "cairn://" + self.address, "--distribution", "pareto"], 2,
                 "not zipfian or uniform"),
                (["--target", "memcached://127.0.0.1:1", "--depth", "2"], 2, "--depth 1 only"),
                (["--target", "redis://127.0.0.1:1"], 1, "cannot connect to redis"),
                (["--target", "cairn://127.0.0.1:1"], 1, "Unavailable"),
        ]:
            r = self.bench(*args)
            self.assertEqual(r.returncode, code, (args, r.stderr))
            self.assertIn(says, r.stderr, args)
        help_text = self.bench("--help").stdout
        for flag in ("--target", "--records", "--workloads", "--distribution", "--threads",
                     "--depth", "--duration", "--json", "--version"):
            self.assertIn(flag, help_text)
        r = self.bench("--version")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertRegex(r.stdout, r"^cairn-bench \d+\.\d+\.\d+\n$")


if __name__ == "__main__":
    BENCH = os.path.abspath(sys.argv.pop(1))
    SERVER = os.path.abspath(sys.argv.pop(1))
    unittest.main(verbosity=2)
