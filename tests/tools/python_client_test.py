"""A client no one here wrote: Python stubs generated from cairn.proto with
Debian's protoc and grpc_python_plugin, talking to a real cairn-server.

Runs under /usr/bin/python3 (Debian's python3-grpcio and python3-protobuf).
Usage: python_client_test.py CAIRN_SERVER CAIRN_PROTO
"""
import os
import shutil
import subprocess
import sys
import tempfile
import time
import unittest

SERVER = PROTO = None


class PythonClientTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.dir = tempfile.mkdtemp(prefix="cairn-py-")
        subprocess.run(["protoc", "--proto_path=" + os.path.dirname(PROTO),
                        "--python_out=" + cls.dir, "--grpc_out=" + cls.dir,
                        "--plugin=protoc-gen-grpc=/usr/bin/grpc_python_plugin", PROTO],
                       check=True)
        sys.path.insert(0, cls.dir)
        config = os.path.join(cls.dir, "server.yaml")
        with open(config, "w") as f:
            f.write("stores:\n  users:\n    node: [{engine: {lmdb: {path: %s}}}]\n"
                    % os.path.join(cls.dir, "data"))
        port_file = os.path.join(cls.dir, "port")
        cls.server = subprocess.Popen(
            [SERVER, "--config", config, "--listen", "127.0.0.1:0", "--port-file", port_file],
            stderr=subprocess.PIPE)
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

    def stub(self):
        import grpc
        import cairn_pb2_grpc
        return cairn_pb2_grpc.StoreStub(grpc.insecure_channel(self.address))

    def test_put_get_delete(self):
        import cairn_pb2 as pb
        store = self.stub()
        clock = pb.Clock(entries=[pb.ClockEntry(node=3, counter=1)], timestamp_ms=1700000000000)
        r = store.Put(pb.PutRequest(store="users", key=b"alice",
                                    version=pb.Version(value=b"\x00binary\xff", clock=clock)),
                      timeout=10)
        self.assertFalse(r.obsolete)
        again = store.Put(pb.PutRequest(store="users", key=b"alice",
                                        version=pb.Version(value=b"x", clock=clock)), timeout=10)
        self.assertTrue(again.obsolete, "an identical clock is obsolete, from any language")
        got = store.Get(pb.GetRequest(store="users", key=b"alice"), timeout=10)
        self.assertEqual(len(got.versions), 1)
        self.assertEqual(got.versions[0].value, b"\x00binary\xff")
        self.assertEqual(got.versions[0].clock.entries[0].node, 3)
        d = store.Delete(pb.DeleteRequest(store="users", key=b"alice", clock=clock), timeout=10)
        self.assertTrue(d.deleted)
        self.assertEqual(len(store.Get(pb.GetRequest(store="users", key=b"alice"),
                                       timeout=10).versions), 0)

    def test_errors_are_status_codes(self):
        import grpc
        import cairn_pb2 as pb
        store = self.stub()
        with self.assertRaises(grpc.RpcError) as e:
            store.Get(pb.GetRequest(store="nope", key=b"k"), timeout=10)
        self.assertEqual(e.exception.code(), grpc.StatusCode.NOT_FOUND)
        with self.assertRaises(grpc.RpcError) as e:
            store.Get(pb.GetRequest(store="users", key=b"k" * 600), timeout=10)
        self.assertEqual(e.exception.code(), grpc.StatusCode.INVALID_ARGUMENT)
        self.assertIn("the limit is 511", e.exception.details())

    def test_stream_batches(self):
        import cairn_pb2 as pb
        store = self.stub()
        clock = pb.Clock(entries=[pb.ClockEntry(node=1, counter=1)])
        batches = [
            pb.StreamRequests(requests=[
                pb.StreamRequest(id=1, put=pb.PutRequest(
                    store="users", key=b"s1", version=pb.Version(value=b"one", clock=clock))),
                pb.StreamRequest(id=2, put=pb.PutRequest(
                    store="nope", key=b"s2", version=pb.Version(value=b"two", clock=clock))),
            ]),
            pb.StreamRequests(requests=[
                pb.StreamRequest(id=3, get=pb.GetRequest(store="users", key=b"absent")),
            ]),
        ]
        answers = {}
        for batch in store.Stream(iter(batches), timeout=10):
            for r in batch.responses:
                self.assertNotIn(r.id, answers, "each request is answered once")
                answers[r.id] = r
        self.assertEqual(sorted(answers), [1, 2, 3])
        self.assertFalse(answers[1].put.obsolete)
        self.assertEqual(answers[2].error.code, pb.NOT_FOUND)
        self.assertIn("no store 'nope'", answers[2].error.message)
        self.assertEqual(len(answers[3].get.versions), 0)

    def test_admin_lists_the_stores(self):
        import grpc
        import cairn_pb2 as pb
        import cairn_pb2_grpc
        admin = cairn_pb2_grpc.AdminStub(grpc.insecure_channel(self.address))
        stores = admin.ListStores(pb.ListStoresRequest(), timeout=10).stores
        self.assertEqual([s.name for s in stores], ["users"])
        self.assertIn("lmdb 'users'", stores[0].stack)


if __name__ == "__main__":
    SERVER, PROTO = sys.argv.pop(1), sys.argv.pop(1)
    unittest.main(verbosity=2)
