"""Runs orgd and its peers on this machine, in one go, and prints one table.

Called by scripts/bench. Peers: redis-server/redis-benchmark on a Unix socket
(GET for reads, SET for writes) and a raw-SQLite C program doing durable
inserts (WAL, synchronous=FULL), one row per transaction and 1,000 rows per
transaction. orgd is driven by `orgctl bench`. Every figure comes from this
run; ratios compare figures from this run only.
"""
import argparse
import csv
import io
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time

import postgres


def sh(*args, **kwargs):
    done = subprocess.run(args, capture_output=True, text=True, **kwargs)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(args)} exited with {done.returncode}: {done.stderr[-2000:]}")
    return done.stdout


class Orgd:
    """One orgd: on the SQLite file orgd.sqlite in `directory`, or on
    `database` (a PostgreSQL URL) with `extra` arguments; `name` tells apart
    several over one database (socket orgd-NAME.sock, log orgd-NAME.log)."""

    def __init__(self, bin_dir, directory, synchronous="full", database=None, name=None, extra=()):
        self.bin_dir = bin_dir
        self.directory = directory
        self.socket = os.path.join(directory, f"orgd-{name}.sock" if name else "orgd.sock")
        where = ["--database", database, *extra] if database else [
            "--database", os.path.join(directory, "orgd.sqlite"), "--synchronous", synchronous]
        self.log = os.path.join(directory, f"orgd-{name}.log") if name else None
        started = time.monotonic()
        self.process = subprocess.Popen(
            [os.path.join(bin_dir, "orgd"), *where, "--socket", self.socket,
             "--listen", "127.0.0.1:0", "--log-level", "warning"],
            stdout=subprocess.PIPE, stderr=open(self.log, "w") if self.log else subprocess.DEVNULL, text=True)
        self.port = None
        while self.port is None:
            line = self.process.stdout.readline()
            if not line:
                problem = open(self.log).read()[-2000:] if self.log else ""
                raise RuntimeError(f"orgd did not start {problem}")
            if line.startswith("orgd listening on tcp:"):
                self.port = int(line.rsplit(":", 1)[1])
        self.startup_seconds = time.monotonic() - started

    def rss_kib(self):
        with open(f"/proc/{self.process.pid}/status") as status:
            for line in status:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
        return 0

    def bench(self, *arguments, tcp=False):
        where = ["--address", f"127.0.0.1:{self.port}"] if tcp else ["--socket", self.socket]
        output = sh(os.path.join(self.bin_dir, "orgctl"), "bench", *where, "--json", "--quiet", *arguments)
        return json.loads(output)

    def bench_process(self, *arguments):
        """`orgctl bench` over the Unix socket, started and left running."""
        return subprocess.Popen([os.path.join(self.bin_dir, "orgctl"), "bench", "--socket", self.socket, "--json", "--quiet", *arguments],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)

    def stop(self):
        self.process.terminate()
        self.process.wait(timeout=60)


class Redis:
    def __init__(self, directory):
        self.socket = os.path.join(directory, "redis.sock")
        self.process = subprocess.Popen(
            ["redis-server", "--port", "0", "--unixsocket", self.socket, "--unixsocketperm", "700",
             "--save", "", "--appendonly", "no", "--dir", directory],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        for _ in range(200):
            if os.path.exists(self.socket):
                break
            time.sleep(0.05)

    def benchmark(self, test, clients, requests):
        output = sh("redis-benchmark", "-s", self.socket, "-t", test, "-c", str(clients), "-n", str(requests),
                    "-d", "100", "-r", "100000", "--csv")
        rows = list(csv.DictReader(io.StringIO(output)))
        row = next(r for r in rows if r["test"].upper() == test.upper())
        return {"calls_per_second": float(row["rps"]), "p50_us": float(row["p50_latency_ms"]) * 1000,
                "p99_us": float(row["p99_latency_ms"]) * 1000}

    def stop(self):
        self.process.terminate()
        self.process.wait(timeout=30)


def sqlite_baseline(directory, binary, rows, per_transaction):
    path = os.path.join(directory, f"baseline-{per_transaction}.sqlite")
    output = sh(binary, path, str(rows), str(per_transaction))
    return float(re.search(r"rows_per_second=(\d+)", output).group(1))


def open_connections(path, count):
    """Opens `count` Unix connections, each making one health check."""
    sockets = []
    frame = bytes.fromhex("0000001e0000000101000a15677270632e6865616c74682e76312e4865616c74681205436865636b")
    for _ in range(count):
        connection = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        connection.connect(path)
        connection.sendall(frame)
        sockets.append(connection)
    for connection in sockets:
        received = b""
        while len(received) < 16:
            received += connection.recv(64)
    return sockets


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--bin", required=True, help="folder with orgd and orgctl")
    parser.add_argument("--quick", action="store_true", help="a few seconds, to prove the script works")
    parser.add_argument("--json-out")
    parser.add_argument("--postgres", action="store_true", help="orgd over PostgreSQL beside pgbench instead (bench/postgres.py)")
    parser.add_argument("--pool-size", type=int, default=16, help="--postgres: each orgd's --database-pool-size")
    arguments = parser.parse_args()
    if arguments.postgres:
        return main_postgres(arguments)
    quick = arguments.quick
    seconds = "1" if quick else "10"
    warmup = "0.3" if quick else "2"
    seed = ("organizations=5,staff=20,patients=200,scopes=4,consents=800" if quick
            else "organizations=50,staff=500,patients=10000,scopes=4,consents=40000")
    redis_requests = 20000 if quick else 500000

    work = tempfile.mkdtemp(prefix="orgd-bench-")
    results = {"quick": quick, "seed": seed, "duration_seconds": float(seconds)}
    try:
        baseline = os.path.join(work, "sqlite_baseline")
        sh("gcc", "-O2", "-o", baseline, os.path.join(os.path.dirname(__file__), "sqlite_baseline.c"), "-lsqlite3")
        results["sqlite_rows_per_second_1_per_txn"] = sqlite_baseline(work, baseline, 200 if quick else 2000, 1)
        results["sqlite_rows_per_second_1000_per_txn"] = sqlite_baseline(work, baseline, 20000 if quick else 500000, 1000)

        redis = Redis(work)
        try:
            results["redis_set_c64"] = redis.benchmark("set", 64, redis_requests)
            results["redis_get_c50"] = redis.benchmark("get", 50, redis_requests)
            results["redis_get_c1"] = redis.benchmark("get", 1, redis_requests // 5)
        finally:
            redis.stop()

        orgd = Orgd(arguments.bin, work)
        try:
            data = os.path.join(work, "data.json")
            orgd.bench("--seed", seed, "--data", data, "--count", "1", "--warmup", "0")
            common = ["--data", data, "--duration", seconds, "--warmup", warmup]
            results["orgd_check_access_c50"] = orgd.bench("--call", "check-access", "--connections", "50", *common)
            results["orgd_check_access_c1"] = orgd.bench("--call", "check-access", "--connections", "1", *common)
            results["orgd_check_access_tcp_c50"] = orgd.bench("--call", "check-access", "--connections", "50", *common, tcp=True)
            results["orgd_get_org_c50"] = orgd.bench("--call", "get-org", "--connections", "50", *common)
            results["orgd_create_org_c64"] = orgd.bench("--call", "create-org", "--connections", "64", *common)
            results["orgd_answer_consent_c64"] = orgd.bench("--call", "answer-consent", "--connections", "64", *common)
            one = orgd.rss_kib()
            held = open_connections(orgd.socket, 200 if quick else 1000)
            results["rss_kib_1_connection"] = one
            results["rss_kib_many_connections"] = orgd.rss_kib()
            results["many_connections"] = len(held)
            for connection in held:
                connection.close()
        finally:
            orgd.stop()
        restarted = Orgd(arguments.bin, work)
        results["startup_seconds"] = restarted.startup_seconds
        restarted.stop()
    finally:
        shutil.rmtree(work, ignore_errors=True)

    report(results)
    if arguments.json_out:
        with open(arguments.json_out, "w") as out:
            json.dump(results, out, indent=2, sort_keys=True)
    problems = sanity(results)
    for problem in problems:
        print(f"not sane: {problem}", file=sys.stderr)
    return 1 if problems else 0


def main_postgres(arguments):
    results = postgres.run(arguments, Orgd)
    postgres.report(results)
    if arguments.json_out:
        with open(arguments.json_out, "w") as out:
            json.dump(results, out, indent=2, sort_keys=True)
    problems = postgres.sanity(results, runs_sane)
    for problem in problems:
        print(f"not sane: {problem}", file=sys.stderr)
    return 1 if problems else 0


def sanity(r):
    """What would make the figures meaningless: no calls, failed calls,
    percentiles out of order, peers that did not run."""
    problems = runs_sane(r)
    for name in ["redis_get_c50", "redis_get_c1", "redis_set_c64"]:
        if r[name]["calls_per_second"] <= 0:
            problems.append(f"{name}: Redis did not run")
    for name in ["sqlite_rows_per_second_1_per_txn", "sqlite_rows_per_second_1000_per_txn"]:
        if r[name] <= 0:
            problems.append(f"{name}: the SQLite baseline did not run")
    if r["rss_kib_1_connection"] <= 0:
        problems.append("resident memory not read")
    return problems


def runs_sane(r):
    """Every measured run (orgctl bench's figures, or shaped like them): calls
    made, none failed, percentiles in order."""
    problems = []
    for name, value in r.items():
        if not (isinstance(value, dict) and "callsPerSecond" in value):
            continue
        latency = value["latencyMicroseconds"]
        if value["calls"] <= 0 or value["callsPerSecond"] <= 0:
            problems.append(f"{name}: no calls measured")
        if set(value["status"]) - {"OK"}:
            problems.append(f"{name}: calls failed: {value['status']}")
        if not 0 < latency["p50"] <= latency["p90"] <= latency["p99"] <= latency["p999"] <= latency["max"]:
            problems.append(f"{name}: percentiles out of order: {latency}")
    return problems


def report(r):
    def calls(name):
        return r[name]["callsPerSecond"]

    def lat(name, key):
        return r[name]["latencyMicroseconds"][key]

    rows = [
        ("CheckAccess, Unix, 50 connections: calls/s", calls("orgd_check_access_c50"), "Redis GET c=50", r["redis_get_c50"]["calls_per_second"], "≥ 1.0"),
        ("  p99 µs (lower is better)", lat("orgd_check_access_c50", "p99"), "Redis GET c=50 p99", r["redis_get_c50"]["p99_us"], "≤ 2.0"),
        ("CheckAccess, 1 connection: p50 µs", lat("orgd_check_access_c1", "p50"), "Redis GET c=1 p50", r["redis_get_c1"]["p50_us"], "≤ 2.0"),
        ("CheckAccess, 1 connection: calls/s", calls("orgd_check_access_c1"), "Redis GET c=1", r["redis_get_c1"]["calls_per_second"], ""),
        ("CheckAccess, TCP, 50 connections: calls/s", calls("orgd_check_access_tcp_c50"), "orgd over Unix", calls("orgd_check_access_c50"), "≥ 0.8"),
        ("GetOrganization, Unix, 50 connections: calls/s", calls("orgd_get_org_c50"), "Redis GET c=50", r["redis_get_c50"]["calls_per_second"], ""),
        ("durable creates (FULL), 64 writers: rows/s", calls("orgd_create_org_c64"), "SQLite 1,000 rows/txn", r["sqlite_rows_per_second_1000_per_txn"], "≥ 0.5"),
        ("", calls("orgd_create_org_c64"), "SQLite 1 row/txn", r["sqlite_rows_per_second_1_per_txn"], "≥ 50"),
        ("durable consent answers, 64 writers: calls/s", calls("orgd_answer_consent_c64"), "SQLite 1 row/txn", r["sqlite_rows_per_second_1_per_txn"], ""),
        ("Redis SET c=64 (for reference): calls/s", r["redis_set_c64"]["calls_per_second"], "", None, ""),
        (f"resident memory, {r['many_connections']} connections vs 1: KiB", r["rss_kib_many_connections"] - r["rss_kib_1_connection"], "1 connection, KiB", r["rss_kib_1_connection"], "≤ 64 MiB more"),
        ("start-up on the seeded database: s", r["startup_seconds"], "", None, "≤ 1 s"),
    ]
    print(f"{'what':52} {'orgd':>12}  {'peer':24} {'peer value':>12} {'ratio':>8}  goal")
    for what, value, peer, peer_value, goal in rows:
        ratio = f"{value / peer_value:8.2f}" if peer_value else " " * 8
        peer_text = f"{peer_value:12.0f}" if peer_value is not None else " " * 12
        value_text = f"{value:12.3f}" if abs(value) < 10 else f"{value:12.0f}"
        print(f"{what:52} {value_text}  {peer:24} {peer_text} {ratio}  {goal}")
    statuses = {k: v["status"] for k, v in r.items() if isinstance(v, dict) and "status" in v}
    bad = {k: s for k, s in statuses.items() if set(s) - {"OK"}}
    print("status counts: " + ("all OK" if not bad else json.dumps(bad)))


if __name__ == "__main__":
    sys.exit(main())
