"""What bench/run-network and bench/run-cluster share: free ports, waiting
for a server, one cairn-bench run, medians, and the common options."""
import json
import os
import socket
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


_given_ports = set()


def free_port():
    """A free loopback port not handed out before by this process (the
    kernel may give one port to two binds in a row once the first is
    closed)."""
    while True:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        if port not in _given_ports:
            _given_ports.add(port)
            return port


def wait_for_port(port, proc, what, tool):
    for _ in range(500):
        if proc.poll() is not None:
            sys.exit("%s: %s exited at start (status %d)" % (tool, what, proc.returncode))
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.1):
                return
        except OSError:
            time.sleep(0.02)
    sys.exit("%s: %s does not listen on %d" % (tool, what, port))


def add_common_args(ap, records):
    ap.add_argument("--build", default=os.path.join(ROOT, "build"),
                    help="meson build directory holding tools/cairn-server "
                         "and tools/cairn-bench (default: %(default)s)")
    ap.add_argument("--records", type=int, default=records,
                    help="records loaded into each target (default: %(default)s)")
    ap.add_argument("--value-size", type=int, default=1000,
                    help="bytes per value (default: %(default)s)")
    ap.add_argument("--duration", type=int, default=5,
                    help="seconds per workload (default: %(default)s)")
    ap.add_argument("--workloads", default="A,B,C",
                    help="YCSB workloads, comma-separated (default: %(default)s)")
    ap.add_argument("--distribution", default="zipfian",
                    choices=["zipfian", "uniform"],
                    help="key distribution (default: %(default)s)")
    ap.add_argument("--repetitions", type=int, default=1,
                    help="runs of every target, interleaved; the table shows "
                         "medians (default: %(default)s)")


def bench(build, where, threads, depth, args, tool, store=None, load=True, warmup=0):
    """One cairn-bench run against `where` (["--target", URL] or
    ["--config", FILE]): {workload: result} from its JSON lines. Without
    `load`, the records loaded before are read and written again."""
    argv = [os.path.join(build, "tools", "cairn-bench")] + where + [
        "--threads", str(threads), "--depth", str(depth),
        "--records", str(args.records), "--value-size", str(args.value_size),
        "--duration", str(args.duration), "--workloads", args.workloads,
        "--distribution", args.distribution, "--json"]
    if store:
        argv += ["--store", store]
    if not load:
        argv.append("--no-load")
    if warmup:
        argv += ["--warmup", str(warmup)]
    print("  " + " ".join(argv[1:]), file=sys.stderr, flush=True)
    out = subprocess.run(argv, capture_output=True, text=True)
    if out.returncode != 0:
        sys.exit("%s: cairn-bench failed:\n%s" % (tool, out.stderr))
    results = {}
    for line in out.stdout.splitlines():
        if line.startswith("{"):
            r = json.loads(line)
            results[r["phase"]] = r
    return results


def median_results(samples, workloads):
    """Per workload: the median ops/s and median latencies of the runs."""
    def median(xs):
        xs = sorted(xs)
        return xs[len(xs) // 2]
    out = {}
    for w in workloads:
        runs = [s[w] for s in samples]
        out[w] = {"ops_per_sec": median([r["ops_per_sec"] for r in runs])}
        for kind in ("read", "update"):
            out[w][kind] = {k: median([r[kind][k] for r in runs])
                            for k in ("p50_ns", "p99_ns", "count")}
    return out
