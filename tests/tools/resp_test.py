"""cairn-server's Redis-protocol front, driven by clients no one here wrote:
redis-cli, redis-benchmark and Python's redis package (Debian's
python3-redis, so this runs under /usr/bin/python3), against a single node
and a 3-node server-routed cluster of real processes on loopback.

Usage: resp_test.py PATH_TO_CAIRN_SERVER [ResptTest.name ...]
"""
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import unittest
import urllib.request

import redis

SERVER = None


def free_port():
    return free_ports(1)[0]


_given_ports = set()


def free_ports(n):
    """n free ports this run has not handed out before: the kernel may
    give one port to two binds in a row once the first is closed."""
    out = []
    while len(out) < n:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        if port not in _given_ports:
            _given_ports.add(port)
            out.append(port)
    return out


class RespTest(unittest.TestCase):
    def setUp(self):
        self.dir = tempfile.mkdtemp(prefix="cairn-resp-")
        self.procs = []

    def tearDown(self):
        for p in self.procs:
            if p.poll() is None:
                p.kill()
                p.wait()
            p.stderr.close()
        shutil.rmtree(self.dir, ignore_errors=True)

    def write(self, name, text):
        path = os.path.join(self.dir, name)
        with open(path, "w") as f:
            f.write(text)
        return path

    def start(self, cfg, *extra, node=None):
        """cairn-server with --resp on a free port; returns (process, resp port)."""
        port_file = os.path.join(self.dir, "resp-port-%s" % node)
        if os.path.exists(port_file):
            os.unlink(port_file)
        args = [SERVER, "--config", cfg, "--resp", "127.0.0.1:0", "--resp-port-file", port_file]
        if node is None:
            args += ["--listen", "127.0.0.1:0"]
        else:
            args += ["--node", str(node)]
        # The server's log says what it serves, and that it stopped cleanly.
        p = subprocess.Popen(args + list(extra), cwd=self.dir, stderr=subprocess.PIPE,
                             env=dict(os.environ, CAIRN_LOG="info"))
        self.procs.append(p)
        for _ in range(3000):
            if os.path.exists(port_file) or p.poll() is not None:
                break
            time.sleep(0.01)
        self.assertIsNone(p.poll(), p.stderr.read() if p.poll() is not None else "")
        with open(port_file) as f:
            return p, int(f.read())

    def stop(self, p):
        p.send_signal(signal.SIGTERM)
        self.assertEqual(p.wait(timeout=30), 0)

    def cli(self, port, *args, stdin=None):
        r = subprocess.run(["redis-cli", "-p", str(port)] + list(args), capture_output=True,
                           input=stdin, timeout=60)
        self.assertEqual(r.returncode, 0, r.stderr)
        return r.stdout.decode()

    def memory_config(self, extra=""):
        return self.write("memory.yaml",
                          "stores:\n  default:\n    stack: [stats, {engine: memory}]\n" + extra)

    def test_redis_cli_sets_and_gets(self):
        cfg = self.memory_config(
            "  users:\n    key: string\n    value: {type: json, schema: {name: string}}\n"
            "    stack: [{engine: memory}]\n")
        http_file = os.path.join(self.dir, "http-port")
        server, port = self.start(cfg, "--http", "127.0.0.1:0", "--http-port-file", http_file)
        self.assertEqual(self.cli(port, "set", "a", "b"), "OK\n")
        self.assertEqual(self.cli(port, "get", "a"), "b\n")
        self.assertEqual(self.cli(port, "--no-raw", "get", "missing"), "(nil)\n")
        # A value from stdin (-x), with a NUL and a newline in it.
        self.assertEqual(self.cli(port, "-x", "set", "bin", stdin=b"x\x00y\n"), "OK\n")
        r = subprocess.run(["redis-cli", "-p", str(port), "--raw", "get", "bin"],
                           capture_output=True)
        self.assertEqual(r.stdout, b"x\x00y\n\n")
        self.assertEqual(self.cli(port, "del", "a", "missing"), "1\n")
        self.assertEqual(self.cli(port, "exists", "a", "bin"), "1\n")
        self.assertIn("cairn_version:", self.cli(port, "info"))
        self.assertIn("store_default:get=", self.cli(port, "info"))
        # RESP3 (redis-cli -3 sends HELLO 3).
        self.assertEqual(self.cli(port, "-3", "--no-raw", "get", "missing"), "(nil)\n")
        # An unknown command is an error, said so.
        self.assertIn("ERR unknown command 'flushall'", self.cli(port, "flushall"))
        # redis-cli -n picks a database by number: 0 is the default store.
        self.assertEqual(self.cli(port, "-n", "0", "get", "bin").encode(), b"x\x00y\n\n")
        # The clock-aware commands.
        out = self.cli(port, "cairn.versions", "bin")
        self.assertIn("clock", out)
        self.assertIn("{0:1}", out)  # this node's id is 0
        # The front's counters are on the node's /metrics.
        with open(http_file) as f:
            metrics = urllib.request.urlopen(
                "http://127.0.0.1:%s/metrics" % f.read().strip(), timeout=10).read().decode()
        self.assertIn("cairn_resp_connections_total ", metrics)
        commands = [l for l in metrics.splitlines() if l.startswith("cairn_resp_commands_total ")]
        self.assertEqual(len(commands), 1, metrics)
        self.assertGreaterEqual(int(commands[0].split()[1]), 12)
        self.assertIn("cairn_resp_error_replies_total 1\n", metrics)  # the flushall
        self.stop(server)
        self.assertIn("RESP on 127.0.0.1:%d" % port, server.stderr.read().decode())

    def test_ttls_from_redis_cli_and_http(self):
        # Issue 18: SET ... EX/PX and SETEX, and HTTP PUT ?ttl=, on a store
        # with a ttl layer; a store without one refuses a TTL.
        cfg = self.write("ttl.yaml",
                         "stores:\n  default:\n    stack: [{ttl: {sweep_interval_ms: 0}}, "
                         "{engine: memory}]\n  plain:\n    stack: [{engine: memory}]\n")
        http_file = os.path.join(self.dir, "http-port")
        server, port = self.start(cfg, "--http", "127.0.0.1:0", "--http-port-file", http_file)
        with open(http_file) as f:
            http = "http://127.0.0.1:%s" % f.read().strip()
        s = []  # the default store, with the ttl layer
        start = time.monotonic()
        self.assertEqual(self.cli(port, *s, "set", "a", "1", "ex", "2"), "OK\n")
        self.assertEqual(self.cli(port, *s, "set", "b", "2", "PX", "2000"), "OK\n")
        self.assertEqual(self.cli(port, *s, "setex", "c", "2", "3"), "OK\n")
        self.assertEqual(self.cli(port, *s, "set", "d", "4"), "OK\n")  # no TTL: kept
        put = urllib.request.Request(http + "/stores/default/keys/e?ttl=2", data=b"5",
                                     method="PUT")
        self.assertEqual(urllib.request.urlopen(put, timeout=10).status, 204)
        # Written just now, none has expired: their TTLs run from the write.
        # (Checked only if this machine got here well within the 2 s.)
        got = self.cli(port, *s, "mget", "a", "b", "c", "d", "e")
        if time.monotonic() - start < 1.5:
            self.assertEqual(got, "1\n2\n3\n4\n5\n")
        time.sleep(2.2)  # past every 2 s TTL, whatever the scheduler did
        self.assertEqual(self.cli(port, *s, "--no-raw", "mget", "a", "b", "c", "d", "e"),
                         '1) (nil)\n2) (nil)\n3) (nil)\n4) "4"\n5) (nil)\n')
        with self.assertRaises(urllib.error.HTTPError) as gone:
            urllib.request.urlopen(http + "/stores/default/keys/e", timeout=10)
        self.assertEqual(gone.exception.code, 404)
        # Bad TTLs, and a store without a ttl layer.
        for bad in (["set", "x", "y", "ex", "0"], ["set", "x", "y", "ex", "soon"],
                    ["setex", "x", "-5", "y"]):
            self.assertIn("ERR invalid expire time", self.cli(port, *s, *bad))
        self.assertIn("ERR syntax error", self.cli(port, *s, "set", "x", "y", "keepttl", "1"))
        self.assertIn("needs a `ttl` layer",
                      self.cli(port, stdin=b"select plain\nset x y ex 10\n"))
        bad_put = urllib.request.Request(http + "/stores/default/keys/x?ttl=soon", data=b"y",
                                         method="PUT")
        with self.assertRaises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(bad_put, timeout=10)
        self.assertEqual(refused.exception.code, 400)
        self.stop(server)

    def test_python_redis(self):
        server, port = self.start(self.memory_config(
            "  users:\n    key: string\n    value: {type: json, schema: {name: string}}\n"
            "    stack: [{engine: memory}]\n"))
        r = redis.Redis(port=port)
        self.assertTrue(r.ping())
        self.assertTrue(r.set(b"k\x00\xff", b"v\r\n\x00"))
        self.assertEqual(r.get(b"k\x00\xff"), b"v\r\n\x00")
        self.assertIsNone(r.get("absent"))
        self.assertTrue(r.mset({"a": "1", "b": "2"}))
        self.assertEqual(r.mget("a", "absent", "b"), [b"1", None, b"2"])
        self.assertEqual(r.exists("a", "b", "absent"), 2)
        self.assertEqual(r.delete("a", "absent"), 1)
        self.assertEqual(r.echo("hi"), b"hi")
        # A pipeline of 2000 commands in one round trip, answered in order.
        p = r.pipeline(transaction=False)
        for i in range(1000):
            p.set("p%d" % i, str(i))
            p.get("p%d" % i)
        replies = p.execute()
        self.assertEqual(replies[1::2], [str(i).encode() for i in range(1000)])
        # Errors are exceptions; the connection stays usable.
        with self.assertRaises(redis.ResponseError) as e:
            r.execute_command("FLUSHALL")
        self.assertIn("unknown command", str(e.exception))
        with self.assertRaises(redis.ResponseError):
            r.set("k", "v", nx=True)
        self.assertEqual(r.get("p7"), b"7")
        # Another store, by name; its serializers check what is written.
        u = redis.Redis(port=port, single_connection_client=True)
        self.assertTrue(u.execute_command("SELECT", "users"))
        self.assertTrue(u.set("ada", '{"name": "Ada"}'))
        self.assertEqual(u.get("ada"), b'{"name":"Ada"}')
        with self.assertRaises(redis.ResponseError):
            u.set("bob", '{"name": 7}')
        self.assertIsNone(u.get("bob"))
        self.assertEqual(sorted(u.execute_command("CAIRN.STORES")), [b"default", b"users"])
        # Siblings (two clocks no one merged): GET says how to read them.
        self.assertEqual(u.execute_command("CAIRN.PUT", "eve", '{"name":"E1"}', "{1:1}"),
                         b"{1:1}")
        self.assertEqual(u.execute_command("CAIRN.PUT", "eve", '{"name":"E2"}', "{2:1}"),
                         b"{2:1}")
        with self.assertRaises(redis.ResponseError) as e:
            u.get("eve")
        self.assertIn("CAIRN.VERSIONS", str(e.exception))
        versions = u.execute_command("CAIRN.VERSIONS", "eve")
        self.assertEqual(sorted(v[3] for v in versions), [b"{1:1}", b"{2:1}"])
        # A write at a clock after both resolves them; one at an old clock
        # is refused.
        u.execute_command("CAIRN.PUT", "eve", '{"name":"E"}', "{1:1, 2:1}")
        self.assertEqual(u.get("eve"), b'{"name":"E"}')
        with self.assertRaises(redis.ResponseError) as e:
            u.execute_command("CAIRN.PUT", "eve", '{"name":"old"}', "{1:1}")
        self.assertIn("OBSOLETE", str(e.exception))
        self.stop(server)

    def test_redis_benchmark_runs_clean(self):
        server, port = self.start(self.memory_config())
        for extra in ([], ["-P", "16"]):
            r = subprocess.run(["redis-benchmark", "-p", str(port), "-t", "set,get", "-n", "20000",
                                "-c", "20", "-d", "100", "--csv"] + extra,
                               capture_output=True, timeout=120)
            self.assertEqual(r.returncode, 0, r.stderr)
            out = r.stdout.decode()
            rows = {line.split(",")[0].strip('"'): line for line in out.splitlines()[1:]}
            self.assertEqual(sorted(rows), ["GET", "SET"], out)
            self.assertNotIn("rror", out + r.stderr.decode())
        # What it wrote is there: its key, its 100-byte value.
        r = redis.Redis(port=port)
        self.assertEqual(len(r.get("key:__rand_int__")), 100)
        self.stop(server)

    def test_a_server_routed_cluster(self):
        ports = free_ports(3)
        cfg = self.write(
            "cluster.yaml",
            "cluster:\n  partitions: 12\n  nodes:\n"
            + "".join("    - {id: %d, address: \"127.0.0.1:%d\"}\n" % (i, p)
                      for i, p in enumerate(ports))
            + "stores:\n  default:\n    replication: {n: 3, r: 2, w: 2}\n"
            "    node: [{route: {timeout_ms: 3000}}, {engine: memory}]\n")
        nodes = [self.start(cfg, node=i) for i in range(3)]
        resp = [port for _, port in nodes]
        # Any node coordinates any key: written through one, read through
        # the others.
        for i in range(50):
            self.assertEqual(self.cli(resp[i % 3], "set", "k%d" % i, "v%d" % i), "OK\n")
        clients = [redis.Redis(port=p) for p in resp]
        for i in range(50):
            self.assertEqual(clients[(i + 1) % 3].get("k%d" % i), b"v%d" % i)
        # A pipeline through one node: its reads go out together.
        p = clients[0].pipeline(transaction=False)
        for i in range(50):
            p.get("k%d" % i)
        self.assertEqual(p.execute(), [b"v%d" % i for i in range(50)])
        # Node 2 killed (SIGKILL): R = W = 2 of 3, so the others go on.
        nodes[2][0].kill()
        nodes[2][0].wait()
        self.assertEqual(self.cli(resp[0], "set", "after", "kill"), "OK\n")
        self.assertEqual(clients[1].get("after"), b"kill")
        self.assertEqual(clients[1].get("k7"), b"v7")
        self.assertEqual(clients[0].delete("k7"), 1)
        self.assertIsNone(clients[1].get("k7"))
        for proc, _ in nodes[:2]:
            self.stop(proc)

    def test_bad_input_and_limits(self):
        server, port = self.start(self.memory_config(), "--max-message-size", "4096")
        r = redis.Redis(port=port, single_connection_client=True)
        with self.assertRaises(redis.exceptions.RedisError):
            r.set("big", "x" * 10000)
        # Malformed RESP, by hand: an error reply, then the connection closes.
        with socket.create_connection(("127.0.0.1", port)) as s:
            s.sendall(b"*1\r\n$nope\r\n")
            s.settimeout(10)
            data = b""
            while True:
                chunk = s.recv(4096)
                if not chunk:
                    break
                data += chunk
            self.assertEqual(data, b"-ERR Protocol error: invalid bulk length\r\n")
        # Everyone else is served on.
        fresh = redis.Redis(port=port)
        self.assertTrue(fresh.set("small", "ok"))
        self.assertIsNone(fresh.get("big"))
        info = fresh.info()
        self.assertGreaterEqual(info["protocol_errors"], 2)
        self.stop(server)

    def test_usage_errors(self):
        cfg = self.memory_config()
        def fails(*args):
            r = subprocess.run([SERVER, "--config", cfg, "--listen", "127.0.0.1:0"] + list(args),
                               capture_output=True, timeout=30)
            return r.returncode, r.stderr.decode()
        code, err = fails("--resp-port-file", "x")
        self.assertEqual((code, "--resp-port-file needs --resp" in err), (2, True), err)
        code, err = fails("--resp", "nowhere")
        self.assertEqual(code, 2, err)
        self.assertIn("RESP listen address 'nowhere' is not HOST:PORT", err)
        with socket.socket() as taken:
            taken.bind(("127.0.0.1", 0))
            taken.listen()
            code, err = fails("--resp", "127.0.0.1:%d" % taken.getsockname()[1])
            self.assertEqual(code, 1, err)
            self.assertIn("RESP: cannot listen on", err)
        help_text = subprocess.run([SERVER, "--help"], capture_output=True).stdout.decode()
        self.assertIn("--resp ADDR:PORT", help_text)

    def make_certificates(self):
        """A CA, a server certificate for 127.0.0.1, and a client certificate."""
        d = self.dir
        def run(*args):
            subprocess.run(args, cwd=d, check=True, capture_output=True)
        run("openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
            "-subj", "/CN=cairn-test-ca", "-keyout", "ca.key", "-out", "ca.pem")
        self.write("san.ext", "subjectAltName=DNS:localhost,IP:127.0.0.1\n")
        for who in ("server", "client"):
            run("openssl", "req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=" + who,
                "-keyout", who + ".key", "-out", who + ".csr")
            run("openssl", "x509", "-req", "-days", "2", "-in", who + ".csr", "-CA", "ca.pem",
                "-CAkey", "ca.key", "-CAcreateserial", "-extfile", "san.ext", "-out", who + ".pem")
        return {name: os.path.join(d, name) for name in
                ("ca.pem", "server.pem", "server.key", "client.pem", "client.key")}

    def test_tls_and_mutual_tls(self):
        files = self.make_certificates()
        cfg = self.memory_config()
        server, port = self.start(cfg, "--tls-cert", files["server.pem"], "--tls-key",
                                  files["server.key"])
        tls = ["--tls", "--cacert", files["ca.pem"]]
        self.assertEqual(self.cli(port, *tls, "set", "a", "b"), "OK\n")
        self.assertEqual(self.cli(port, *tls, "get", "a"), "b\n")
        r = redis.Redis(port=port, ssl=True, ssl_ca_certs=files["ca.pem"])
        self.assertEqual(r.get("a"), b"b")
        # Plaintext on a TLS port: the handshake fails and the connection
        # closes; nothing runs.
        with self.assertRaises(redis.exceptions.ConnectionError):
            redis.Redis(port=port, socket_timeout=10).set("plain", "x")
        self.assertIsNone(r.get("plain"))
        self.assertIn("RESP on 127.0.0.1:%d (TLS)" % port, self.stop_and_log(server))
        # With a CA: a client must show a certificate it signed.
        server, port = self.start(cfg, "--tls-cert", files["server.pem"], "--tls-key",
                                  files["server.key"], "--tls-ca", files["ca.pem"])
        with self.assertRaises(redis.exceptions.ConnectionError):
            redis.Redis(port=port, ssl=True, ssl_ca_certs=files["ca.pem"],
                        socket_timeout=10).ping()
        mutual = redis.Redis(port=port, ssl=True, ssl_ca_certs=files["ca.pem"],
                             ssl_certfile=files["client.pem"], ssl_keyfile=files["client.key"])
        self.assertTrue(mutual.set("m", "1"))
        self.assertEqual(self.cli(port, *tls, "--cert", files["client.pem"], "--key",
                                  files["client.key"], "get", "m"), "1\n")
        self.stop(server)
        # A key file that is not there: exit 2, naming it.
        r = subprocess.run([SERVER, "--config", cfg, "--listen", "127.0.0.1:0", "--resp",
                            "127.0.0.1:0", "--tls-cert", files["server.pem"], "--tls-key",
                            os.path.join(self.dir, "nope.key")], capture_output=True, timeout=30)
        self.assertNotEqual(r.returncode, 0)
        self.assertIn("nope.key", r.stderr.decode())

    def stop_and_log(self, p):
        self.stop(p)
        return p.stderr.read().decode()

    def test_sigterm_with_clients_connected_exits_cleanly(self):
        server, port = self.start(self.memory_config())
        idle = redis.Redis(port=port)
        self.assertTrue(idle.ping())
        server.send_signal(signal.SIGTERM)
        self.assertEqual(server.wait(timeout=30), 0)
        self.assertIn("stopped; stores closed", server.stderr.read().decode())


if __name__ == "__main__":
    SERVER = os.path.abspath(sys.argv[1])
    unittest.main(argv=[sys.argv[0]] + sys.argv[2:], verbosity=2)
