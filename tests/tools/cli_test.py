"""The cairn CLI as a user drives it: real processes, real LMDB files.

Usage: cli_test.py PATH_TO_CAIRN
"""
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import unittest

CAIRN = SERVER = None


class CliTest(unittest.TestCase):
    def setUp(self):
        self.dir = tempfile.mkdtemp(prefix="cairn-cli-")

    def tearDown(self):
        shutil.rmtree(self.dir, ignore_errors=True)

    def run_cairn(self, *args, stdin=None):
        return subprocess.run([CAIRN, *args], cwd=self.dir, capture_output=True,
                              timeout=60, input=stdin)

    def ok(self, *args):
        r = self.run_cairn(*args)
        self.assertEqual(r.returncode, 0, f"cairn {args}: {r.stderr.decode()}")
        return r.stdout.decode()

    def fails(self, code, *args):
        r = self.run_cairn(*args)
        self.assertEqual(r.returncode, code,
                         f"cairn {args}: stdout={r.stdout!r} stderr={r.stderr!r}")
        return r.stderr.decode()

    def write_config(self, text, name="cairn.yaml"):
        path = os.path.join(self.dir, name)
        with open(path, "w") as f:
            f.write(text)
        return path

    def test_put_get_uses_the_default_lmdb_store_under_cairn_data(self):
        self.assertIn('stored "greeting" at {0:1}', self.ok("put", "greeting", "hello world"))
        self.assertEqual(self.ok("get", "greeting"), "hello world\n")
        self.assertTrue(os.path.exists(os.path.join(self.dir, "cairn-data", "data.mdb")))
        # A plain put succeeds every stored version.
        self.assertIn("at {0:2}", self.ok("put", "greeting", "hi"))
        self.assertEqual(self.ok("get", "greeting", "--clocks"), "{0:2}\thi\n")

    def test_admin_plan_prints_the_copies_a_change_moves(self):
        cfg = self.write_config(
            "cluster:\n  partitions: 12\n  nodes:\n"
            + "".join("    - {id: %d, address: \"127.0.0.1:%d\"}\n" % (i, 7070 + i) for i in range(3))
            + "stores:\n  default:\n    replication: {n: 3}\n"
            "    client: [{route: {}}, {engine: {grpc: {}}}]\n"
            "    node: [{engine: {memory: {}}}]\n")
        out = self.ok("--config", cfg, "admin", "plan", "--add", "3=127.0.0.1:7073")
        self.assertIn("3 -> 4 nodes, 12 partitions, N = 3", out)
        self.assertIn("adds node 3 (127.0.0.1:7073): owns 3 partitions", out)
        moves = [l for l in out.splitlines() if "fetches it" in l]
        drops = [l for l in out.splitlines() if "drops it" in l]
        self.assertTrue(moves)
        self.assertEqual(len(moves), len(drops))
        for line in moves:
            self.assertIn(": node 3 fetches it from", line)  # only the new node gains
        self.assertIn("moves %d of 36 partition copies" % len(moves), out)
        out = self.ok("--config", cfg, "admin", "plan", "--add", "3=127.0.0.1:7073",
                      "--remove", "0")
        self.assertIn("removes node 0 (127.0.0.1:7070)", out)
        # Bad requests: exit 2, saying why.
        self.assertIn("fewer than N = 3",
                      self.fails(2, "--config", cfg, "admin", "plan", "--remove", "1"))
        self.assertIn("address 127.0.0.1:7070 is taken",
                      self.fails(2, "--config", cfg, "admin", "plan", "--add", "5=127.0.0.1:7070"))
        self.assertIn("ID=HOST:PORT",
                      self.fails(2, "--config", cfg, "admin", "plan", "--add", "x"))
        self.assertIn("needs --add or --remove", self.fails(2, "--config", cfg, "admin", "plan"))
        # A move needs the cluster kept in etcd.
        self.assertIn("moves partitions of a cluster kept in etcd",
                      self.fails(2, "--config", cfg, "admin", "rebalance", "--add",
                                 "3=127.0.0.1:7073"))
        self.assertIn("reads a cluster kept in etcd",
                      self.fails(2, "--config", cfg, "admin", "status"))
        self.assertIn("no node 7", self.fails(2, "--config", cfg, "admin", "plan", "--remove", "7"))
        self.assertIn("admin plan", self.ok("admin", "--help"))

    def start_etcd(self):
        """Debian's etcd on free loopback ports; returns (process, endpoint)."""
        client, peer = self.free_port(), self.free_port()
        c, p = "http://127.0.0.1:%d" % client, "http://127.0.0.1:%d" % peer
        log = open(os.path.join(self.dir, "etcd.log"), "w")
        etcd = subprocess.Popen(
            [os.environ.get("CAIRN_ETCD", "/usr/bin/etcd"), "--name", "t",
             "--data-dir", os.path.join(self.dir, "etcd"), "--listen-client-urls", c,
             "--advertise-client-urls", c, "--listen-peer-urls", p,
             "--initial-advertise-peer-urls", p, "--initial-cluster", "t=" + p,
             "--logger", "zap", "--log-outputs", "stderr", "--log-level", "warn"],
            stdout=log, stderr=log)
        self.addCleanup(lambda: (etcd.kill(), etcd.wait(), log.close()))
        return etcd, "127.0.0.1:%d" % client

    def test_a_cluster_whose_config_is_kept_in_etcd(self):
        etcd, endpoint = self.start_etcd()
        ports = [self.free_port() for _ in range(3)]
        cluster = self.write_config(
            "cluster:\n  partitions: 12\n  nodes:\n"
            + "".join("    - {id: %d, address: \"127.0.0.1:%d\"}\n" % (i, port)
                      for i, port in enumerate(ports))
            + "stores:\n  default:\n    replication: {n: 3, r: 2, w: 2}\n"
            "    node: [{route: {timeout_ms: 5000}}, {engine: {memory: {}}}]\n"
            "    client:\n      - engine: {grpc: {targets: [%s]}}\n"
            % ", ".join("127.0.0.1:%d" % p for p in ports), "cluster.yaml")
        local = self.write_config(
            "cluster: {etcd: {endpoints: [%s], prefix: /c/, lease_seconds: 2}}\n" % endpoint,
            "local.yaml")
        # Before init: nothing in etcd, said clearly.
        for _ in range(200):  # etcd starting
            r = self.run_cairn("--config", local, "get", "k")
            if b"no endpoint answered" not in r.stderr:
                break
            time.sleep(0.05)
        self.assertEqual(r.returncode, 2, r.stderr)  # a config that is not there
        self.assertIn("etcd has no cluster config at key '/c/config'", r.stderr.decode())
        out = self.ok("--config", cluster, "admin", "init", "--etcd", endpoint, "--prefix", "/c/")
        self.assertRegex(out, r"^put the config of 3 nodes and 1 stores into etcd at '/c/config', "
                              r"version \d+\n$")
        version = out.split()[-1]
        err = self.fails(4, "--config", cluster, "admin", "init", "--etcd", endpoint,
                         "--prefix", "/c/")
        self.assertIn("holds a cluster config at '/c/config' already", err)
        self.assertIn("takes a whole config file",
                      self.fails(2, "--config", local, "admin", "init", "--etcd", endpoint,
                                 "--prefix", "/d/"))
        # Nodes start from the file that names etcd, and serve.
        logs = [os.path.join(self.dir, "node%d.log" % n) for n in range(3)]
        log_files = [open(log, "w") for log in logs]
        self.addCleanup(lambda: [f.close() for f in log_files])
        http = self.free_port()
        servers = [subprocess.Popen([SERVER, "--config", local, "--node", str(n)]
                                    + (["--http", "127.0.0.1:%d" % http] if n == 0 else []),
                                    cwd=self.dir, stderr=log_files[n]) for n in range(3)]

        def metrics():
            import urllib.request
            with urllib.request.urlopen("http://127.0.0.1:%d/metrics" % http, timeout=5) as r:
                return r.read().decode()
        try:
            self.wait_for_ports(ports)
            self.ok("--config", local, "put", "hello", "world")
            self.assertEqual(self.ok("--config", local, "get", "hello"), "world\n")
            deadline = time.time() + 10
            while True:  # each node puts its lease right after it starts
                out = self.ok("--config", local, "admin", "describe")
                if out.count(", lease held, routes by version %s\n" % version) == 3 or \
                        time.time() > deadline:
                    break
                time.sleep(0.1)
            self.assertIn("metadata: etcd %s key '/c/config', version %s\n" % (endpoint, version), out)
            self.assertEqual(
                out.count(" partitions, up, lease held, routes by version %s\n" % version), 3, out)
            self.assertIn("  default: N=3 R=2 W=2\n", out)
            self.assertIn("cairn_metadata_version %s\n" % version, metrics())
            self.assertIn("cairn_metadata_etcd_up 1\n", metrics())
            servers[2].kill()  # SIGKILL: its lease runs out (2 s) rather than being revoked
            servers[2].wait()
            out = self.ok("--config", local, "admin", "describe")
            self.assertIn("node 2 (127.0.0.1:%d): 4 partitions, down (" % ports[2], out)
            deadline = time.time() + 15
            while "no lease" not in out and time.time() < deadline:
                time.sleep(0.2)
                out = self.ok("--config", local, "admin", "describe")
            self.assertRegex(out, r"node 2 \(127\.0\.0\.1:%d\): 4 partitions, down \(.*\), no lease\n"
                             % ports[2])
            # Writes node 2 misses wait as hints on the others.
            self.assertEqual(self.ok("--config", local, "admin", "hints").count("keeps no hints"),
                             2)
            for i in range(5):
                self.ok("--config", local, "put", "missed%d" % i, "v")
            deadline = time.time() + 10
            while True:
                out = self.ok("--config", local, "admin", "hints")
                counts = [int(c) for c in re.findall(r"(\d+) for node 2", out)]
                if sum(counts) >= 5 or time.time() > deadline:
                    break
                time.sleep(0.1)
            self.assertEqual(sum(counts), 5, out)
            self.assertIn("node 2 (127.0.0.1:%d): down (" % ports[2], out)
            self.assertIn("moves", self.ok("--config", local, "admin", "plan", "--add",
                                           "3=127.0.0.1:%d" % self.free_port()))
            self.assertIn("no rebalance in progress; nothing to do",
                          self.ok("--config", local, "admin", "rebalance"))
            self.assertIn("no rebalance in progress",
                          self.ok("--config", local, "admin", "status"))
            self.assertIn("has N = 3, and the cluster would have 2 nodes",
                          self.fails(2, "--config", local, "admin", "rebalance", "--remove", "0"))
            # etcd gone: the nodes serve on (reached through the config
            # file), and say so; a client that needs etcd for its config
            # gets a clear error, not a hang.
            etcd.kill()
            etcd.wait()
            self.ok("--config", cluster, "put", "hello", "again")
            self.assertEqual(self.ok("--config", cluster, "get", "hello"), "again\n")
            err = self.fails(4, "--config", local, "get", "hello")
            self.assertIn("cannot read the cluster's config from etcd", err)
            deadline = time.time() + 10
            while time.time() < deadline:
                with open(logs[0]) as f:
                    if "etcd unreachable, serving on the metadata this node has" in f.read():
                        break
                time.sleep(0.2)
            with open(logs[0]) as f:
                self.assertIn("etcd unreachable, serving on the metadata this node has", f.read())
            deadline = time.time() + 5
            while "cairn_metadata_etcd_up 0\n" not in metrics() and time.time() < deadline:
                time.sleep(0.1)
            self.assertIn("cairn_metadata_etcd_up 0\n", metrics())
        finally:
            for srv in servers:
                srv.kill()
                srv.wait()

    def chromium_dom(self, url):
        """The page at `url` as headless Chromium renders it, after 3 s of
        its (virtual) time: its script has fetched and drawn by then."""
        chromium = shutil.which("chromium")
        self.assertIsNotNone(chromium, "chromium is not installed (scripts/test installs it)")
        r = subprocess.run([chromium, "--headless=new", "--no-sandbox", "--disable-gpu",
                            "--no-first-run", "--user-data-dir=" + os.path.join(self.dir, "chromium"),
                            "--virtual-time-budget=3000", "--dump-dom", url],
                           capture_output=True, timeout=120)
        self.assertEqual(r.returncode, 0, r.stderr.decode()[-2000:])
        return r.stdout.decode()

    def test_the_cluster_page_draws_a_rebalance(self):
        etcd, endpoint = self.start_etcd()
        ports = [self.free_port() for _ in range(4)]
        http = self.free_port()
        cluster = self.write_config(
            "cluster:\n  partitions: 12\n  nodes:\n"
            + "".join("    - {id: %d, address: \"127.0.0.1:%d\"}\n" % (i, port)
                      for i, port in enumerate(ports[:3]))
            + "stores:\n  default:\n    replication: {n: 3, r: 2, w: 2}\n"
            "    node: [{route: {timeout_ms: 5000}}, {engine: {memory: {}}}]\n"
            "    client:\n      - engine: {grpc: {targets: [%s]}}\n"
            % ", ".join("127.0.0.1:%d" % p for p in ports[:3]), "cluster.yaml")
        local = self.write_config(
            "cluster: {etcd: {endpoints: [%s], prefix: /ui/, lease_seconds: 2}}\n" % endpoint,
            "local.yaml")
        for _ in range(200):  # etcd starting
            r = self.run_cairn("--config", cluster, "admin", "init", "--etcd", endpoint,
                               "--prefix", "/ui/")
            if r.returncode == 0:
                break
            time.sleep(0.05)
        self.assertEqual(r.returncode, 0, r.stderr)
        log = open(os.path.join(self.dir, "nodes.log"), "w")
        self.addCleanup(log.close)
        servers = [subprocess.Popen([SERVER, "--config", local, "--node", str(n)]
                                    + (["--http", "127.0.0.1:%d" % http] if n == 0 else [])
                                    + (["--listen", "127.0.0.1:%d" % ports[3]] if n == 3 else []),
                                    cwd=self.dir, stderr=log) for n in range(4)]
        try:
            self.wait_for_ports(ports + [http])
            value = "x" * 2000
            for i in range(150):
                self.ok("--config", local, "put", "k%d" % i, value)
            url = "http://127.0.0.1:%d/ui" % http
            # Before the move; and Chromium's first start (its profile made,
            # its files read) is out of the way of the look taken during it.
            dom = self.chromium_dom(url)
            self.assertRegex(dom, r'<div id="summary">metadata version \d+, 12 partitions on '
                                  r'3 nodes</div>')
            # About 220 KB to copy at 10 KB/s: long enough to look at, even
            # on a loaded machine (at 20 KB/s a cold Chromium once missed it).
            move = subprocess.Popen([CAIRN, "--config", local, "admin", "rebalance", "--add",
                                     "3=127.0.0.1:%d" % ports[3], "--max-rate", "10000"],
                                    cwd=self.dir, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
            deadline = time.time() + 30
            while time.time() < deadline:
                status = self.ok("--config", local, "admin", "status", "--json")
                if '"copied":' in status and '"copied":0' not in status.replace(" ", ""):
                    break
                time.sleep(0.1)
            self.assertIn('"rebalance":{', status.replace(" ", ""))
            dom = self.chromium_dom(url)
            self.assertRegex(dom, r'<div id="summary">metadata version \d+, 12 partitions on '
                                  r'3 nodes, moving to 4 nodes</div>')
            self.assertIn("rebalance: copying partitions (", dom)
            self.assertRegex(dom, r"<progress max=\"\d+\" value=\"[1-9]")
            self.assertEqual(dom.count("<tr class=\"node\">"), 4, dom)
            self.assertIn("3 (joining)", dom)
            self.assertEqual(dom.count("<path "), 24, "the ring now and after the move")
            out, _ = move.communicate(timeout=120)
            self.assertEqual(move.returncode, 0, out.decode())
            dom = self.chromium_dom(url)
            self.assertRegex(dom, r'<div id="summary">metadata version \d+, 12 partitions on '
                                  r'4 nodes</div>')
            self.assertIn('<div id="move">no rebalance in progress</div>', dom)
            self.assertEqual(dom.count("<tr class=\"node\">"), 4, dom)
            self.assertEqual(dom.count("<path "), 12)
            self.assertEqual(self.ok("--config", local, "get", "k7"), value + "\n")
        finally:
            for srv in servers:
                srv.kill()
                srv.wait()

    def test_missing_key_exits_1_with_a_message(self):
        err = self.fails(1, "get", "nope")
        self.assertIn('key "nope" not found in store \'default\'', err)
        self.fails(1, "delete", "nope")

    def test_siblings_print_one_per_line_with_clocks(self):
        self.ok("put", "k", "book", "--clock", "1:1")
        self.ok("put", "k", "lamp", "--clock", "2:1")
        self.assertEqual(self.ok("get", "k"), "{1:1}\tbook\n{2:1}\tlamp\n")
        self.ok("put", "k", "both", "--writer", "3")
        self.assertEqual(self.ok("get", "k", "--clocks"), "{1:1, 2:1, 3:1}\tboth\n")

    def test_obsolete_put_exits_3_and_changes_nothing(self):
        self.ok("put", "k", "new", "--clock", "1:2")
        err = self.fails(3, "put", "k", "old", "--clock", "1:1")
        self.assertIn("obsolete", err)
        self.fails(3, "put", "k", "same", "--clock", "1:2")
        self.assertEqual(self.ok("get", "k"), "new\n")

    def test_delete_all_or_up_to_a_clock(self):
        self.ok("put", "k", "a", "--clock", "1:1")
        self.ok("put", "k", "b", "--clock", "2:1")
        self.fails(1, "delete", "k", "--clock", "3:1")
        self.assertIn('deleted "k"', self.ok("delete", "k", "--clock", "1:1"))
        self.assertEqual(self.ok("get", "k"), "b\n")
        self.ok("delete", "k")
        self.fails(1, "get", "k")

    def test_scan_prints_every_version_and_a_summary(self):
        self.ok("put", "a", "1")
        self.ok("put", "b", "x", "--clock", "1:1")
        self.ok("put", "b", "y", "--clock", "2:1")
        self.ok("put", "c", "line\nbreak\tand tab")
        r = self.run_cairn("scan")
        self.assertEqual(r.returncode, 0)
        self.assertEqual(sorted(r.stdout.decode().splitlines()),
                         ["a\t1", "b\tx", "b\ty", "c\tline\\nbreak\\tand tab"])
        self.assertEqual(r.stderr.decode(), "3 keys, 4 versions\n")
        r = self.run_cairn("scan", "--limit", "1", "--clocks")
        self.assertEqual(r.stdout.decode(), "a\t1\t{0:1}\n")

    def test_raw_value_bytes_round_trip_through_get(self):
        value = "tab\there\nnewline \\ backslash"
        self.ok("put", "k", value)
        self.assertEqual(self.ok("get", "k"), value + "\n")

    def test_bad_usage_exits_2(self):
        self.fails(2)
        self.fails(2, "frobnicate")
        self.fails(2, "get")
        self.fails(2, "get", "a", "b")
        self.fails(2, "put", "k")
        self.fails(2, "get", "k", "--bogus")
        self.fails(2, "get", "k", "--config")
        self.assertIn("bad vector clock", self.fails(2, "put", "k", "v", "--clock", "1:x"))
        self.fails(2, "scan", "--limit", "-3")
        self.fails(2, "stack", "build")

    def test_size_limits_are_clear_errors(self):
        err = self.fails(2, "put", "k" * 600, "v")
        self.assertIn("is 600 bytes; the limit is 511", err)
        self.fails(2, "get", "")

    def test_every_subcommand_has_help(self):
        for cmd in ["put", "get", "delete", "scan", "stack", "layers"]:
            out = self.ok(cmd, "--help")
            self.assertTrue(out.startswith("usage: cairn " + cmd), out)
            self.assertEqual(self.ok("help", cmd), out)
        self.assertIn("Exit status:", self.ok("--help"))
        self.assertFalse(os.path.exists(os.path.join(self.dir, "cairn-data")),
                         "--help opens no store")

    def test_layers_lists_engines_and_layers(self):
        out = self.ok("layers")
        for name in ["lmdb", "memory", "stats", "logging", "compress", "resolve", "json",
                     "string", "int64", "identity"]:
            self.assertIn("  " + name + " ", out)

    def test_config_file_and_stack_show(self):
        cfg = self.write_config(
            "stores:\n"
            "  users:\n"
            "    stack:\n"
            "      - stats\n"
            "      - logging: {slow_ms: 100}\n"
            "      - engine: {lmdb: {path: \"data/{store}\", durability: nosync}}\n"
            "  cache:\n"
            "    stack: [{engine: memory}]\n")
        out = self.ok("--config", cfg, "--store", "users", "stack", "show")
        self.assertIn("store 'users' from " + cfg, out)
        self.assertIn("stats\n  logging (level info, ops slower than 100 ms)\n"
                      "    lmdb 'users' at data/users (durability nosync", out)
        self.ok("--config", cfg, "--store", "users", "put", "k", "v")
        self.assertEqual(self.ok("get", "k", "--config", cfg, "--store", "users"), "v\n")
        self.assertTrue(os.path.isdir(os.path.join(self.dir, "data", "users")))
        err = self.fails(2, "--config", cfg, "get", "k")
        self.assertIn("several stores and none is 'default'", err)
        err = self.fails(2, "--config", cfg, "--store", "nope", "get", "k")
        self.assertIn("no store 'nope'", err)

    def test_config_errors_name_file_line_and_column(self):
        cfg = self.write_config("stores:\n  s:\n    stack:\n      - statz\n      - engine: memory\n")
        err = self.fails(2, "--config", cfg, "get", "k")
        self.assertIn(cfg + ":4:9: store 's': unknown layer 'statz'", err)
        self.assertIn("cannot read config", self.fails(4, "--config", "/nonexistent.yaml", "get", "k"))

    def test_corrupt_data_file_is_reported_not_crashed_on(self):
        os.makedirs(os.path.join(self.dir, "cairn-data"))
        with open(os.path.join(self.dir, "cairn-data", "data.mdb"), "wb") as f:
            f.write(b"\x5a" * 65536)
        err = self.fails(4, "get", "k")
        self.assertIn("Corruption", err)


    def users_yaml(self):
        return os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..",
                            "examples", "configs", "users.yaml")

    def test_json_store_round_trips_and_refuses_schema_breaks(self):
        cfg = self.users_yaml()
        alice = '{"name":"Alice","id":7,"emails":["a@x.org"]}'
        self.ok("--config", cfg, "--store", "users", "put", "alice", alice)
        self.assertEqual(self.ok("--config", cfg, "--store", "users", "get", "alice"),
                         '{"emails":["a@x.org"],"id":7,"name":"Alice"}\n')
        err = self.fails(2, "--config", cfg, "--store", "users", "put", "bob",
                         '{"name":"Bob","id":"seven","emails":[]}')
        self.assertIn("field id: expected int32, found string", err)
        err = self.fails(2, "--config", cfg, "put", "bob", '{"name":"Bob","id":1,"emial":[]}')
        self.assertIn("field emial: unknown field", err)
        self.assertIn("JSON at offset", self.fails(2, "--config", cfg, "put", "bob", "{nope"))
        self.fails(1, "--config", cfg, "get", "bob")
        out = self.ok("--config", cfg, "stack", "show")
        self.assertIn("key:   string (UTF-8)", out)
        self.assertIn('value: json {"emails":["string"],"id":"int32","name":"string"}', out)
        self.assertIn("compress (zstd level 3", out)
        # On disk the value is binary JSON: the field names live in the
        # schema, not in each value (the strings themselves are there).
        with open(os.path.join(self.dir, "cairn-data", "users", "data.mdb"), "rb") as f:
            data = f.read()
        self.assertIn(b"Alice", data)
        self.assertNotIn(b"emails", data)

    def test_string_and_integer_stores(self):
        cfg = self.write_config(
            "stores:\n"
            "  s:\n    key: int64\n    value: string\n    stack: [{engine: {lmdb: {path: s}}}]\n")
        self.ok("--config", cfg, "put", "42", "h\u00e9llo")
        self.assertEqual(self.ok("--config", cfg, "get", "42"), "h\u00e9llo\n")
        self.assertIn("is not an integer", self.fails(2, "--config", cfg, "get", "forty-two"))
        self.ok("--config", cfg, "put", "-7", "minus")
        out = self.run_cairn("--config", cfg, "scan").stdout.decode()
        self.assertEqual(sorted(out.splitlines()), ["-7\tminus", "42\th\u00e9llo"])

    def test_hex_for_identity_stores(self):
        self.ok("put", "--hex", "00ff", "0a0b0c")
        self.assertEqual(self.ok("get", "--hex", "00ff"), "0a0b0c\n")
        # --hex may come anywhere, and takes either case.
        self.assertEqual(self.run_cairn("--hex", "get", "00FF").stdout, b"0a0b0c\n")
        self.assertIn("00ff\t0a0b0c", self.run_cairn("scan", "--hex").stdout.decode())
        self.ok("put", "726177", "--hex", "410042")  # key "raw"
        # Without --hex: the raw bytes.
        self.assertEqual(self.run_cairn("get", "raw").stdout, b"A\x00B\n")
        self.assertIn("not hexadecimal", self.fails(2, "get", "--hex", "zz"))
        self.assertIn("odd number", self.fails(2, "get", "--hex", "abc"))

    def test_server_mode(self):
        cfg = self.write_config(
            "cluster:\n  nodes: [{id: 4, address: 127.0.0.1:0}]\n"
            "stores:\n"
            "  users:\n"
            "    key: string\n"
            "    value: {type: json, schema: {name: string}}\n"
            "    node: [{engine: {lmdb: {path: \"n{node}/{store}\"}}}]\n")
        port_file = os.path.join(self.dir, "port")
        server = subprocess.Popen([SERVER, "--config", cfg, "--node", "4", "--port-file", port_file],
                                  cwd=self.dir, stderr=subprocess.PIPE)
        try:
            for _ in range(2000):
                if os.path.exists(port_file):
                    break
                time.sleep(0.01)
            with open(port_file) as f:
                addr = "127.0.0.1:" + f.read().strip()
            # With --config, values use the store's formats over the wire too.
            self.ok("--server", addr, "--config", cfg, "--store", "users", "put", "ada",
                    '{"name":"Ada"}')
            self.assertEqual(self.ok("--server", addr, "--config", cfg, "--store", "users",
                                     "get", "ada"), '{"name":"Ada"}\n')
            self.assertIn("field nmae: unknown field",
                          self.fails(2, "--server", addr, "--config", cfg, "--store", "users",
                                     "put", "bo", '{"nmae":"Bo"}'))
            self.assertIn("no store 'default' on this server",
                          self.fails(2, "--server", addr, "get", "k"))
            out = self.ok("--server", addr, "--store", "users", "stack", "show")
            self.assertIn("grpc " + addr + " store 'users'", out)
            self.assertTrue(os.path.isdir(os.path.join(self.dir, "n4", "users")),
                            "{node} expanded to the node id")
        finally:
            server.terminate()
            self.assertEqual(server.wait(timeout=20), 0, server.stderr.read())
        err = self.fails(4, "--server", addr, "get", "k")
        self.assertIn("Unavailable", err)

    @staticmethod
    def wait_for_ports(ports):
        """Waits (10 s at most each) until every port on 127.0.0.1 accepts."""
        import socket
        for port in ports:
            for _ in range(500):
                try:
                    socket.create_connection(("127.0.0.1", port), 0.1).close()
                    break
                except OSError:
                    time.sleep(0.02)

    _given_ports = set()

    def free_port(self):
        """A free port this run has not handed out before (the kernel may
        give one port to two binds in a row once the first is closed)."""
        import socket
        while True:
            with socket.socket() as s:
                s.bind(("127.0.0.1", 0))
                port = s.getsockname()[1]
            if port not in CliTest._given_ports:
                CliTest._given_ports.add(port)
                return port

    def test_log_example_config(self):
        """examples/configs/log.yaml: the log engine under ./cairn-log."""
        cfg = os.path.join(os.path.dirname(os.path.abspath(__file__)),
                           "..", "..", "examples", "configs", "log.yaml")
        self.ok("--config", cfg, "put", "hello", "world")
        self.assertEqual(self.ok("--config", cfg, "get", "hello"), "world\n")
        self.assertIn("log 'default' at ./cairn-log (sync always",
                      self.ok("--config", cfg, "stack", "show"))
        self.ok("--config", cfg, "delete", "hello")
        self.fails(1, "--config", cfg, "get", "hello")
        self.assertTrue(os.path.isdir(os.path.join(self.dir, "cairn-log")))

    def test_cluster_example_configs(self):
        """Both shipped 3-node configs, on free ports: the CLI works through
        the smart client and through the nodes, also with a node killed."""
        examples = os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                "..", "..", "examples", "configs")
        for name in ("cluster3-smart.yaml", "cluster3-routed.yaml"):
            with self.subTest(config=name):
                with open(os.path.join(examples, name)) as f:
                    text = f.read()
                ports = [self.free_port() for _ in range(3)]
                for i, port in enumerate(ports):
                    text = text.replace("127.0.0.1:%d" % (7071 + i), "127.0.0.1:%d" % port)
                cfg = self.write_config(text, name)
                servers = [subprocess.Popen([SERVER, "--config", cfg, "--node", str(n)],
                                            cwd=self.dir, stderr=subprocess.PIPE)
                           for n in (1, 2, 3)]
                try:
                    self.wait_for_ports(ports)  # every node listening before the first call
                    deadline = time.time() + 20
                    while True:
                        r = self.run_cairn("--config", cfg, "put", "hello", "world")
                        if r.returncode == 0 or time.time() > deadline:
                            break
                        time.sleep(0.1)
                    self.assertEqual(r.returncode, 0, r.stderr.decode())
                    self.assertEqual(self.ok("--config", cfg, "get", "hello"), "world\n")
                    ring = self.ok("--config", cfg, "ring", "hello")
                    self.assertRegex(ring, r"^hello\tpartition \d+\tnodes [123] [123] [123]\n$")
                    self.assertIn("24 partitions on 3 nodes", self.ok("--config", cfg, "ring"))
                    # One node killed: N=3 R=2 W=2 still reads and writes.
                    servers[0].kill()
                    servers[0].wait()
                    self.ok("--config", cfg, "put", "hello", "again")
                    self.assertEqual(self.ok("--config", cfg, "get", "hello"), "again\n")
                    # Two killed: writes fail, saying why.
                    servers[1].kill()
                    servers[1].wait()
                    err = self.fails(4, "--config", cfg, "put", "hello", "third")
                    self.assertIn("InsufficientReplicas", err)
                finally:
                    for s in servers:
                        if s.poll() is None:
                            s.terminate()
                            self.assertEqual(s.wait(timeout=20), 0, s.stderr.read())

    def start_server(self, cfg, *extra):
        """Starts cairn-server on free ports; returns (process, grpc, http)."""
        port_file = os.path.join(self.dir, "port")
        http_file = os.path.join(self.dir, "http-port")
        for f in (port_file, http_file):
            if os.path.exists(f):
                os.unlink(f)
        server = subprocess.Popen([SERVER, "--config", cfg, "--port-file", port_file,
                                   "--http", "127.0.0.1:0", "--http-port-file", http_file]
                                  + list(extra), cwd=self.dir, stderr=subprocess.PIPE)
        for _ in range(2000):
            if os.path.exists(http_file) or server.poll() is not None:
                break
            time.sleep(0.01)
        with open(port_file) as f, open(http_file) as h:
            return server, "127.0.0.1:" + f.read().strip(), "127.0.0.1:" + h.read().strip()

    def curl(self, *args):
        r = subprocess.run(["curl", "-sS", "-w", "\n%{http_code}"] + list(args),
                           capture_output=True, check=True)
        body, _, code = r.stdout.rpartition(b"\n")
        return int(code), body

    def test_server_http(self):
        cfg = self.write_config(
            "cluster:\n  nodes: [{id: 0, address: 127.0.0.1:0}]\n"
            "stores:\n"
            "  users:\n"
            "    key: string\n"
            "    value: {type: json, schema: {name: string}}\n"
            "    stack: [stats, {engine: {lmdb: {path: users}}}]\n")
        server, addr, http = self.start_server(cfg)
        try:
            url = "http://" + http + "/stores/users/keys/ada%20l"
            self.assertEqual(self.curl("-X", "PUT", "--data-binary", '{"name":"Ada"}', url),
                             (204, b""))
            # One store, two protocols: the CLI reads over gRPC what curl wrote.
            self.assertEqual(self.ok("--server", addr, "--config", cfg, "--store", "users",
                                     "get", "ada l"), '{"name":"Ada"}\n')
            code, metrics = self.curl("http://" + http + "/metrics")
            self.assertEqual(code, 200)
            self.assertIn(b'cairn_grpc_calls_total{store="users"} 1\n', metrics)
            self.assertIn(b'cairn_store_operations_total{store="users",op="put"} 1\n', metrics)
        finally:
            server.terminate()
            self.assertEqual(server.wait(timeout=20), 0)
        log = server.stderr.read().decode()
        self.assertIn("HTTP on 127.0.0.1:" + http.split(":")[1], log)
        self.assertIn("stopped; stores closed", log)

        # Restarted on the same data: what HTTP wrote is still there.
        server, addr, http = self.start_server(cfg)
        try:
            self.assertEqual(self.curl("http://" + http + "/stores/users/keys/ada%20l"),
                             (200, b'{"name":"Ada"}'))
        finally:
            server.terminate()
            self.assertEqual(server.wait(timeout=20), 0)

    def test_server_usage_errors(self):
        cfg = self.write_config("stores:\n  default:\n    stack: [{engine: memory}]\n")
        for args, says in [
                (["--listen", "127.0.0.1:0", "--http", "nowhere"], "is not HOST:PORT"),
                (["--listen", "127.0.0.1:0", "--http", "example.org:80"], "is not an IP address"),
                (["--http-port-file", "f"], "--http-port-file needs --http"),
                (["--listen", "127.0.0.1:0", "--bogus"], "unknown argument --bogus"),
                (["--listen", "127.0.0.1:0", "--workers", "0"], "--workers must be from 1 to 1024"),
                (["--listen", "127.0.0.1:0", "--max-message-size", "4294967296"],
                 "--max-message-size must be from 1024 to 2147483647"),
                (["--listen", "127.0.0.1:0", "--request-timeout-ms", "0"],
                 "--request-timeout-ms must be from 1"),
                (["--listen", "127.0.0.1:0", "--tls-ca", "ca.pem"], "--tls-ca needs --tls-cert"),
                ([], "no --listen, and node 0 has no address"),
        ]:
            r = subprocess.run([SERVER, "--config", cfg] + args, cwd=self.dir,
                               capture_output=True, text=True, timeout=30)
            self.assertEqual(r.returncode, 2, (args, r.stderr))
            self.assertIn(says, r.stderr, args)


if __name__ == "__main__":
    CAIRN = os.path.abspath(sys.argv.pop(1))
    SERVER = os.path.abspath(sys.argv.pop(1))
    unittest.main(verbosity=2)
