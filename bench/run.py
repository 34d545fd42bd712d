"""Runs orgd and its peers on this machine, in one go, and prints one table.

Called by scripts/bench. Peers: redis-server/redis-benchmark on a Unix socket
(GET for reads, also pipelined (-P 16) and LRANGE_100; SET for writes, on a
second redis-server with appendonly yes and appendfsync always for the
durable peer) and a raw-SQLite C program doing durable inserts (WAL,
synchronous=FULL), one row per transaction and 1,000 rows per transaction.

orgd is driven two ways: by `orgctl bench` (the user's tool, a Swift client)
and by bench/loadgen.c, a lean epoll C client sending pre-encoded ttrpc frames
as redis-benchmark does for Redis; the ratio table's orgd figures are
loadgen's. Every figure comes from this run; ratios compare figures from this
run only.
"""
import argparse
import csv
import io
import json
import os
import random
import resource
import re
import shutil
import socket
import struct
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


def children_cpu_seconds():
    """User + system seconds of every child waited for so far."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def process_cpu_seconds(pid):
    """User + system seconds a running process (all its threads) has used."""
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def machine_busy_seconds():
    """CPU seconds every core of the machine has spent busy (/proc/stat:
    user to steal, less idle and iowait; guest time is inside user already)."""
    with open("/proc/stat") as stat:
        ticks = [int(field) for field in stat.readline().split()[1:9]]
    return (sum(ticks) - ticks[3] - ticks[4]) / os.sysconf("SC_CLK_TCK")


def with_cpu(server_pid, run):
    """Runs `run()` (which starts and waits for one client process) and adds
    the client's CPU (RUSAGE_CHILDREN delta) and the server's (/proc) over
    the client's whole run, each as a share of one core; and the rest of the
    machine's (other processes, interrupts: someone compiling shows here)."""
    client_before, server_before, started = children_cpu_seconds(), process_cpu_seconds(server_pid), time.monotonic()
    busy_before, started_at = machine_busy_seconds(), time.strftime("%H:%M:%S", time.gmtime())
    result = run()
    result["startedAtUtc"] = started_at
    wall = time.monotonic() - started
    client, server = children_cpu_seconds() - client_before, process_cpu_seconds(server_pid) - server_before
    others = max(0.0, machine_busy_seconds() - busy_before - client - server)
    result["othersCpuPercentOfCore"] = round(100 * others / wall, 2)
    result["clientCpuSeconds"] = round(client, 4)
    result["clientCpuPercentOfCore"] = round(100 * client / wall, 2)
    result["serverCpuSeconds"] = round(server, 4)
    result["serverCpuPercentOfCore"] = round(100 * server / wall, 2)
    result["wallSeconds"] = round(wall, 4)
    return result


# Protobuf by hand, enough for ttrpc envelopes and the few requests loadgen
# sends: varints, strings, bytes, nested messages. proto3 leaves out zero and
# empty fields, and so does pb_field.

def pb_varint(value):
    value &= (1 << 64) - 1
    out = bytearray()
    while True:
        byte, value = value & 0x7F, value >> 7
        out.append(byte | 0x80 if value else byte)
        if not value:
            return bytes(out)


def pb_field(number, value):
    """Field `number`: an int as a varint, a str/bytes (or an encoded message) length-delimited."""
    if isinstance(value, int):
        return pb_varint(number << 3) + pb_varint(value) if value else b""
    data = value.encode() if isinstance(value, str) else bytes(value)
    return pb_varint(number << 3 | 2) + pb_varint(len(data)) + data if data else b""


def pb_fields(data):
    """Decodes one message level: [(field number, int or bytes)]."""
    fields, at = [], 0

    def varint():
        nonlocal at
        value = shift = 0
        while True:
            byte = data[at]
            at += 1
            value |= (byte & 0x7F) << shift
            shift += 7
            if not byte & 0x80:
                return value
    while at < len(data):
        key = varint()
        wire = key & 7
        if wire == 0:
            fields.append((key >> 3, varint()))
        elif wire == 2:
            length = varint()
            fields.append((key >> 3, data[at:at + length]))
            at += length
        elif wire in (1, 5):
            size = 8 if wire == 1 else 4
            fields.append((key >> 3, data[at:at + size]))
            at += size
        else:
            raise ValueError(f"wire type {wire}")
    return fields


def ttrpc_request(service, method, payload=b"", metadata=()):
    """A serialized ttrpc.Request {1 service, 2 method, 3 payload, 5 metadata}."""
    return (pb_field(1, service) + pb_field(2, method) + pb_field(3, payload)
            + b"".join(pb_field(5, pb_field(1, key) + pb_field(2, value)) for key, value in metadata))


def ttrpc_frame(stream, message, kind=1):
    return struct.pack(">IIBB", len(message), stream, kind, 0) + message


HEALTH_FRAME = bytes.fromhex("0000001e0000000101000a15677270632e6865616c74682e76312e4865616c74681205436865636b")
assert ttrpc_frame(1, ttrpc_request("grpc.health.v1.Health", "Check")) == HEALTH_FRAME


def loadgen_requests(call, data, token=None, tag="run"):
    """The requests of one loadgen run. check-access mirrors `orgctl bench`
    (Sources/orgctl/Bench.swift): a seeded consent (patient, scope) drawn at
    random and an agent of the patient's organisation, so every check is one
    the seed consented to (allowed); get-org asks one seeded organisation with
    a page of 10 staff and 50 patients; create-org a department with a
    distinct name. Over TCP every call carries the seed's service token."""
    draw = random.Random(16)
    metadata = [("authorization", f"Bearer {token}")] if token else []
    messages = []
    if call == "health":
        messages = [ttrpc_request("grpc.health.v1.Health", "Check", metadata=metadata)]
    elif call == "check-access":
        for _ in range(max(4096, len(data["consents"]))):
            patient_index, scope_index = draw.choice(data["consents"])
            patient = data["patients"][patient_index]
            system, code = data["scopes"][scope_index]
            body = (pb_field(1, draw.choice(data["agents"][patient["organization"]])) + pb_field(2, patient["id"])
                    + pb_field(3, pb_field(2, system) + pb_field(3, code)))
            messages.append(ttrpc_request("orgd.v1.ConsentService", "CheckAccess", body, metadata))
    elif call.startswith("get-org"):
        # get-org: pages of 10 staff and 50 patients; get-org-1: of one each;
        # get-org-200: 10 staff and 200 patients (the per-entry cost's two ends).
        staff, patients = {"get-org": (10, 50), "get-org-1": (1, 1), "get-org-200": (10, 200)}[call]
        for _ in range(4096):
            body = pb_field(1, draw.choice(data["organizations"])) + pb_field(2, staff) + pb_field(4, patients)
            messages.append(ttrpc_request("orgd.v1.OrganizationService", "GetOrganization", body, metadata))
    elif call == "create-org":
        for index in range(65536):
            body = pb_field(1, f"Bench loadgen {tag} {index}") + pb_field(2, 4)  # ORGANIZATION_TYPE_DEPARTMENT
            messages.append(ttrpc_request("orgd.v1.OrganizationService", "CreateOrganization", body, metadata))
    else:
        raise ValueError(call)
    return messages


def write_requests(path, messages):
    with open(path, "wb") as out:
        for message in messages:
            out.write(struct.pack(">I", len(message)) + message)
    return path


def probe(address, messages, count=64):
    """Sends the first `count` requests one at a time from Python and decodes
    the answers, proving the encoding end to end and saying what the calls
    do: status codes; CheckAccess allowed/denied; GetOrganization's page."""
    if isinstance(address, str):
        connection = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    else:
        connection = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    connection.settimeout(10)
    connection.connect(address)
    summary = {"calls": 0, "status": {}}
    try:
        for index, message in enumerate(messages[:count]):
            connection.sendall(ttrpc_frame(2 * index + 1, message))
            received = b""
            while len(received) < 10 or len(received) < 10 + struct.unpack(">I", received[:4])[0]:
                chunk = connection.recv(65536)
                if not chunk:
                    raise RuntimeError("orgd closed the probe's connection")
                received += chunk
            length, stream, kind, _ = struct.unpack(">IIBB", received[:10])
            if stream != 2 * index + 1 or kind != 2:
                raise RuntimeError(f"probe: answer on stream {stream} type {kind}")
            response = dict(pb_fields(received[10:10 + length]))
            code = dict(pb_fields(response.get(1, b""))).get(1, 0)
            summary["calls"] += 1
            summary["status"][str(code)] = summary["status"].get(str(code), 0) + 1
            method = dict(pb_fields(message)).get(2, b"").decode()
            answer = pb_fields(response.get(2, b""))
            if method == "CheckAccess" and code == 0:
                key = "allowed" if dict(answer).get(1, 0) else "denied"
                summary[key] = summary.get(key, 0) + 1
            elif method == "GetOrganization" and code == 0:
                page = {"staff_on_page": sum(1 for f, _ in answer if f == 2), "patients_on_page": sum(1 for f, _ in answer if f == 5),
                        "staff_count": dict(answer).get(3, 0), "patient_count": dict(answer).get(6, 0)}
                for key, value in page.items():
                    summary[key] = min(summary.get(key, value), value)  # the smallest organisation seen
    finally:
        connection.close()
    return summary


class Loadgen:
    def __init__(self, work):
        self.binary = os.path.join(work, "loadgen")
        sh("gcc", "-O2", "-Wall", "-Wextra", "-Werror", "-pthread", "-o", self.binary,
           os.path.join(os.path.dirname(os.path.abspath(__file__)), "loadgen.c"))

    def run(self, orgd, requests, connections, seconds, warmup, pipeline=1, tcp=False):
        where = ["--tcp", f"127.0.0.1:{orgd.port}"] if tcp else ["--unix", orgd.socket]
        arguments = [self.binary, *where, "--requests", requests, "--connections", str(connections),
                     "--pipeline", str(pipeline), "--duration", seconds, "--warmup", warmup, "--json"]

        def run():
            done = subprocess.run(arguments, capture_output=True, text=True)
            # 3: some answers were not OK; the figures are kept and sanity() reports them.
            if done.returncode not in (0, 3):
                raise RuntimeError(f"{' '.join(arguments)} exited with {done.returncode}: {done.stderr[-2000:]}")
            return json.loads(done.stdout)
        return with_cpu(orgd.process.pid, run)


class Orgd:
    """One orgd: on the SQLite file orgd.sqlite in `directory`, or on
    `database` (a PostgreSQL URL) with `extra` arguments; `name` tells apart
    several over one database (socket orgd-NAME.sock, log orgd-NAME.log)."""

    def __init__(self, bin_dir, directory, synchronous="full", database=None, name=None, extra=(), environment=None):
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
            stdout=subprocess.PIPE, stderr=open(self.log, "w") if self.log else subprocess.DEVNULL, text=True,
            env={**os.environ, **(environment or {})})
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
        return with_cpu(self.process.pid, lambda: json.loads(
            sh(os.path.join(self.bin_dir, "orgctl"), "bench", *where, "--json", "--quiet", *arguments)))

    def bench_process(self, *arguments):
        """`orgctl bench` over the Unix socket, started and left running."""
        return subprocess.Popen([os.path.join(self.bin_dir, "orgctl"), "bench", "--socket", self.socket, "--json", "--quiet", *arguments],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)

    def stop(self):
        self.process.terminate()
        self.process.wait(timeout=60)


class Redis:
    """A redis-server on a Unix socket in `directory`; `durable`: every write
    in the append-only file and fsynced before the answer (appendonly yes,
    appendfsync always), its data in directory/NAME."""

    def __init__(self, directory, name="redis", durable=False):
        self.socket = os.path.join(directory, f"{name}.sock")
        data = os.path.join(directory, name)
        os.makedirs(data, exist_ok=True)
        persistence = ["--appendonly", "yes", "--appendfsync", "always"] if durable else ["--appendonly", "no"]
        self.process = subprocess.Popen(
            ["redis-server", "--port", "0", "--unixsocket", self.socket, "--unixsocketperm", "700",
             "--save", "", *persistence, "--dir", data],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        for _ in range(200):
            if os.path.exists(self.socket):
                break
            time.sleep(0.05)

    def benchmark(self, test, clients, requests, pipeline=1):
        """redis-benchmark -t TEST (get, set, lrange_100), with its CPU and the server's."""
        arguments = ["redis-benchmark", "-s", self.socket, "-t", test, "-c", str(clients), "-n", str(requests),
                     "-d", "100", "-r", "100000", "-P", str(pipeline), "--csv"]

        def run():
            rows = list(csv.DictReader(io.StringIO(sh(*arguments))))
            # LRANGE_100's row is "LRANGE_100 (first 100 elements)", after its LPUSH fill.
            row = next(r for r in rows if r["test"].upper().split(" ")[0] == test.upper())
            return {"calls_per_second": float(row["rps"]), "p50_us": float(row["p50_latency_ms"]) * 1000,
                    "p95_us": float(row["p95_latency_ms"]) * 1000,
                    "p99_us": float(row["p99_latency_ms"]) * 1000, "max_us": float(row["max_latency_ms"]) * 1000, "clients": clients, "pipeline": pipeline}
        result = with_cpu(self.process.pid, run)
        if test == "lrange_100":  # the LPUSH fill ran inside the same process: its CPU is not LRANGE's alone
            result["cpuIncludesFill"] = True
        return result

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
    frame = HEALTH_FRAME
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
    parser.add_argument("--json-out", help="also write every figure (and the targets with their verdicts) as JSON")
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
    results = {"quick": quick, "seed": seed, "duration_seconds": float(seconds), "cores": os.cpu_count()}
    try:
        baseline = os.path.join(work, "sqlite_baseline")
        sh("gcc", "-O2", "-o", baseline, os.path.join(os.path.dirname(__file__), "sqlite_baseline.c"), "-lsqlite3")
        results["sqlite_rows_per_second_1_per_txn"] = sqlite_baseline(work, baseline, 200 if quick else 2000, 1)
        results["sqlite_rows_per_second_1000_per_txn"] = sqlite_baseline(work, baseline, 20000 if quick else 500000, 1000)

        loadgen = Loadgen(work)

        redis = Redis(work)
        try:
            results["redis_set_c64"] = redis.benchmark("set", 64, redis_requests)
            results["redis_get_c50"] = redis.benchmark("get", 50, redis_requests)
            results["redis_get_c1"] = redis.benchmark("get", 1, redis_requests // 5)
            results["redis_get_c50_p16"] = redis.benchmark("get", 50, redis_requests * 8, pipeline=16)
            results["redis_lrange_100_c50"] = redis.benchmark("lrange_100", 50, redis_requests // 2)
        finally:
            redis.stop()
        # The durable peer: every SET in the append-only file, fsynced before the answer.
        durable = Redis(work, name="redis-aof", durable=True)
        try:
            results["redis_set_aof_always_c64"] = durable.benchmark("set", 64, redis_requests)
        finally:
            durable.stop()

        orgd = Orgd(arguments.bin, work)
        try:
            data = os.path.join(work, "data.json")
            orgd.bench("--seed", seed, "--data", data, "--count", "1", "--warmup", "0")
            common = ["--data", data, "--duration", seconds, "--warmup", warmup]
            # loadgen's requests, from the seeded ids; each set checked by a
            # few calls from Python first (bench/run.py's own decoder).
            seeded = json.load(open(data))
            requests, probes = {}, {}
            for name, call, token in [("health", "health", None), ("check-access", "check-access", None),
                                      ("check-access-tcp", "check-access", seeded["serviceToken"]),
                                      ("get-org", "get-org", None), ("get-org-1", "get-org-1", None),
                                      ("get-org-200", "get-org-200", None), ("create-org", "create-org", None)]:
                messages = loadgen_requests(call, seeded, token=token, tag=os.path.basename(work))
                requests[name] = write_requests(os.path.join(work, f"{name}.requests"), messages)
                address = ("127.0.0.1", orgd.port) if token else orgd.socket
                probes[name] = probe(address, messages, 8 if call == "create-org" else 64)
            results["loadgen_probes"] = probes

            def lg(name, connections, pipeline=1):
                return loadgen.run(orgd, requests[name], connections, seconds, warmup, pipeline=pipeline,
                                   tcp=name.endswith("-tcp"))
            # CheckAccess at 50 connections, orgctl bench and loadgen back to back.
            results["orgd_check_access_c50"] = orgd.bench("--call", "check-access", "--connections", "50", *common)
            results["loadgen_check_access_c50"] = lg("check-access", 50)
            results["orgd_check_access_c1"] = orgd.bench("--call", "check-access", "--connections", "1", *common)
            results["orgd_check_access_tcp_c50"] = orgd.bench("--call", "check-access", "--connections", "50", *common, tcp=True)
            results["orgd_get_org_c50"] = orgd.bench("--call", "get-org", "--connections", "50", *common)
            results["loadgen_health_c50"] = lg("health", 50)
            results["loadgen_check_access_c1"] = lg("check-access", 1)
            results["loadgen_check_access_c50_p16"] = lg("check-access", 50, pipeline=16)
            results["loadgen_check_access_tcp_c50"] = lg("check-access-tcp", 50)
            results["loadgen_get_org_c50"] = lg("get-org", 50)
            # The cost of one listed entry: the same call with pages of one
            # staff member and one patient, and of 10 and 200 (per_entry_cost).
            results["loadgen_get_org_1_c50"] = lg("get-org-1", 50)
            results["loadgen_get_org_200_c50"] = lg("get-org-200", 50)
            results["orgd_create_org_c64"] = orgd.bench("--call", "create-org", "--connections", "64", *common)
            results["orgd_answer_consent_c64"] = orgd.bench("--call", "answer-consent", "--connections", "64", *common)
            results["loadgen_create_org_c64"] = lg("create-org", 64)
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
        results["allocations_per_call"] = allocations_per_call(arguments.bin, work, loadgen, requests, seconds, warmup)
        results["get_org_per_entry"] = per_entry_cost(results)
    finally:
        shutil.rmtree(work, ignore_errors=True)

    report(results)
    results["targets"] = targets(results)
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


def per_entry_cost(r):
    """What one more listed entry costs GetOrganization: the difference
    between pages of 10 staff + 200 patients and of 1 + 1 (entries as the
    probes counted them), in orgd's CPU per call (/proc, whole run), in
    latency at 50 connections (p50), and in heap allocations; divided by the
    difference in entries."""
    small, large = r["loadgen_probes"]["get-org-1"], r["loadgen_probes"]["get-org-200"]
    entries = (large["staff_on_page"] + large["patients_on_page"]) - (small["staff_on_page"] + small["patients_on_page"])

    def cpu_per_call(name):
        run = r[name]
        return 1e6 * run["serverCpuSeconds"] / sum(run["statusAllAnswers"].values())
    a, b = "loadgen_get_org_1_c50", "loadgen_get_org_200_c50"
    allocations = r.get("allocations_per_call", {})
    return {
        "entries": entries,
        "serverCpuMicrosecondsPerCall": {"small": round(cpu_per_call(a), 2), "large": round(cpu_per_call(b), 2)},
        "serverCpuMicrosecondsPerEntry": round((cpu_per_call(b) - cpu_per_call(a)) / entries, 3) if entries else 0.0,
        "p50MicrosecondsPerEntry": round((r[b]["latencyMicroseconds"]["p50"] - r[a]["latencyMicroseconds"]["p50"]) / entries, 3)
        if entries else 0.0,
        "allocationsPerEntry": round((allocations["get_org_200_c50"]["perCall"] - allocations["get_org_1_c50"]["perCall"]) / entries, 2)
        if entries and "get_org_200_c50" in allocations else None,
        "serverCpuMicrosecondsFixed": round(cpu_per_call(a) - (small["staff_on_page"] + small["patients_on_page"])
                                            * (cpu_per_call(b) - cpu_per_call(a)) / entries, 2) if entries else 0.0,
    }


def allocations_per_call(bin_dir, work, loadgen, requests, seconds, warmup):
    """Heap allocations orgd makes per call answered, by shape: orgd runs
    again on the seeded database with bench/malloc_count.c preloaded, which
    counts every malloc-family call; the counts read before and after each
    loadgen run are divided by the answers loadgen got (warm-up included,
    as the counts are). Connection set-up is counted too, spread over the
    run's calls. The figures are what orgd's own code and its libraries
    allocate for a call, not a measure of speed."""
    counter = os.path.join(work, "malloc_count.so")
    sh("gcc", "-O2", "-Wall", "-Wextra", "-Werror", "-shared", "-fPIC", "-pthread", "-o", counter,
       os.path.join(os.path.dirname(os.path.abspath(__file__)), "malloc_count.c"))
    counts_file = os.path.join(work, "malloc.counts")
    orgd = Orgd(bin_dir, work, environment={"LD_PRELOAD": counter, "MALLOC_COUNT_FILE": counts_file})

    def counts():
        time.sleep(0.06)  # the counter's thread writes every 20 ms
        with open(counts_file) as numbers:
            allocations, frees = (int(n) for n in numbers.read().split())
        return allocations, frees
    figures = {}
    try:
        for name, shape, connections in [("health_c50", "health", 50), ("check_access_c1", "check-access", 1),
                                          ("check_access_c50", "check-access", 50), ("check_access_tcp_c50", "check-access-tcp", 50),
                                          ("get_org_c50", "get-org", 50), ("get_org_1_c50", "get-org-1", 50),
                                          ("get_org_200_c50", "get-org-200", 50)]:
            before = counts()
            run = loadgen.run(orgd, requests[shape], connections, seconds, warmup, tcp=shape.endswith("-tcp"))
            after = counts()
            answers = sum(run["statusAllAnswers"].values())
            figures[name] = {"calls": answers, "allocations": after[0] - before[0],
                             "perCall": round((after[0] - before[0]) / answers, 2) if answers else 0.0}
    finally:
        orgd.stop()
    return figures


def sanity(r):
    """What would make the figures meaningless: no calls, failed calls,
    percentiles out of order, peers that did not run, loadgen answers with
    codes other than OK, requests that do not do what they should."""
    problems = runs_sane(r)
    for name in ["redis_get_c50", "redis_get_c1", "redis_set_c64", "redis_get_c50_p16", "redis_lrange_100_c50",
                 "redis_set_aof_always_c64"]:
        if r[name]["calls_per_second"] <= 0:
            problems.append(f"{name}: Redis did not run")
    for name in ["sqlite_rows_per_second_1_per_txn", "sqlite_rows_per_second_1000_per_txn"]:
        if r[name] <= 0:
            problems.append(f"{name}: the SQLite baseline did not run")
    for name, value in r.items():
        if name.startswith("loadgen_") and "callsPerSecond" in value:
            if value.get("error"):
                problems.append(f"{name}: loadgen: {value['error']}")
            if set(value["statusAllAnswers"]) - {"OK"}:
                problems.append(f"{name}: answers other than OK (warm-up included): {value['statusAllAnswers']} {value['statusMessages']}")
    for name, probe_result in r["loadgen_probes"].items():
        if set(probe_result["status"]) != {"0"}:
            problems.append(f"loadgen's {name} requests: answered {probe_result['status']} (codes) when probed")
        if name.startswith("check-access") and (probe_result.get("denied") or not probe_result.get("allowed")):
            problems.append(f"loadgen's {name} requests: {probe_result} (orgctl bench's mix is all allowed)")
        if name.startswith("get-org") and not (probe_result.get("staff_on_page") and probe_result.get("patients_on_page")):
            problems.append(f"loadgen's get-org requests: empty pages {probe_result}")
    for name, figure in r["allocations_per_call"].items():
        if figure["calls"] <= 0 or figure["allocations"] <= 0:
            problems.append(f"allocations per call, {name}: nothing counted {figure}")
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


def verdict(ratio, higher_is_better, must, goal):
    def meets(bound):
        return ratio >= bound if higher_is_better else ratio <= bound
    return "goal met" if meets(goal) else "must met" if meets(must) else "not met"


def targets(r):
    """The issue's targets, each measured against a peer from this run: what,
    orgd's figure, the peer and its figure, the ratio, which way is better,
    the must and goal bounds and the verdict. Printed by report(), written
    into --json-out and drawn by bench/charts.py."""
    def calls(name):
        return r[name]["callsPerSecond"]

    def lat(name, key):
        return r[name]["latencyMicroseconds"][key]

    page = r["loadgen_probes"]["get-org"]
    get_org = f"GetOrganization ({page.get('staff_on_page', 0)} staff + {page.get('patients_on_page', 0)} patients)"
    rows = [
        ("check_access_c50", "CheckAccess, Unix, 50 connections: calls/s", calls("loadgen_check_access_c50"),
         "Redis GET c=50", r["redis_get_c50"]["calls_per_second"], True, 0.5, 1.0),
        ("check_access_c50_p99", "  its p99 µs", lat("loadgen_check_access_c50", "p99"), "Redis GET c=50 p99",
         r["redis_get_c50"]["p99_us"], False, 3.0, 2.0),
        ("check_access_c1_p50", "CheckAccess, 1 connection: p50 µs", lat("loadgen_check_access_c1", "p50"), "Redis GET c=1 p50",
         r["redis_get_c1"]["p50_us"], False, 2.0, 1.5),
        ("check_access_c50_p16", "CheckAccess, 50 connections x 16 pipelined: calls/s", calls("loadgen_check_access_c50_p16"),
         "Redis GET -P 16 c=50", r["redis_get_c50_p16"]["calls_per_second"], True, 0.25, 0.5),
        ("check_access_tcp_c50", "CheckAccess, TCP, 50 connections: calls/s", calls("loadgen_check_access_tcp_c50"),
         "orgd over Unix (loadgen)", calls("loadgen_check_access_c50"), True, 0.8, 0.9),
        ("get_org_c50", f"{get_org}, 50 connections: calls/s", calls("loadgen_get_org_c50"),
         "Redis LRANGE_100 c=50", r["redis_lrange_100_c50"]["calls_per_second"], True, 0.05, 0.1),
        ("create_org_c64", "durable creates (FULL), 64 writers: calls/s", calls("loadgen_create_org_c64"),
         "Redis SET c=64, fsync always", r["redis_set_aof_always_c64"]["calls_per_second"], True, 0.25, 0.5),
    ]
    out = []
    for key, what, value, peer, peer_value, higher, must, goal in rows:
        ratio = value / peer_value if peer_value else float("nan")
        out.append({"key": key, "what": what, "orgd": value, "peer": peer, "peerValue": peer_value, "ratio": ratio,
                    "higherIsBetter": higher, "must": must, "goal": goal, "verdict": verdict(ratio, higher, must, goal)})
    return out


def report(r):
    def calls(name):
        return r[name]["callsPerSecond"]

    def lat(name, key):
        return r[name]["latencyMicroseconds"][key]

    def number(value):
        return f"{value:.3f}" if abs(value) < 10 else f"{value:,.0f}"

    print("Targets: orgd driven by bench/loadgen.c; ratio = orgd / peer, both from this run")
    print(f"{'what':62} {'orgd':>10}  {'peer':30} {'peer value':>11} {'ratio':>7} {'must':>7} {'goal':>7}  met")
    for t in targets(r):
        sign = "≥" if t["higherIsBetter"] else "≤"
        print(f"{t['what']:62} {number(t['orgd']):>10}  {t['peer']:30} {number(t['peerValue']):>11} {t['ratio']:7.2f} "
              f"{sign} {t['must']:5.2f} {sign} {t['goal']:5.2f}  {t['verdict']}")

    print()
    print("Other figures (orgd by loadgen unless marked orgctl bench)")
    rows = [
        ("Health.Check, Unix, 50 connections: calls/s", calls("loadgen_health_c50"), "Redis GET c=50", r["redis_get_c50"]["calls_per_second"], ""),
        ("CheckAccess, 1 connection: calls/s", calls("loadgen_check_access_c1"), "Redis GET c=1", r["redis_get_c1"]["calls_per_second"], ""),
        ("CheckAccess, 50 connections x 16 pipelined: p99 µs", lat("loadgen_check_access_c50_p16", "p99"), "Redis GET -P 16 c=50 p99",
         r["redis_get_c50_p16"]["p99_us"], ""),
        ("durable creates (FULL), 64 writers: rows/s", calls("loadgen_create_org_c64"), "SQLite 1,000 rows/txn", r["sqlite_rows_per_second_1000_per_txn"], "≥ 0.5"),
        ("", calls("loadgen_create_org_c64"), "SQLite 1 row/txn", r["sqlite_rows_per_second_1_per_txn"], "≥ 50"),
        ("durable consent answers, 64 writers (orgctl bench): calls/s", calls("orgd_answer_consent_c64"), "SQLite 1 row/txn",
         r["sqlite_rows_per_second_1_per_txn"], ""),
        ("Redis SET c=64, no persistence (reference): calls/s", r["redis_set_c64"]["calls_per_second"], "", None, ""),
        (f"resident memory, {r['many_connections']} connections vs 1: KiB", r["rss_kib_many_connections"] - r["rss_kib_1_connection"],
         "1 connection, KiB", r["rss_kib_1_connection"], "≤ 64 MiB more"),
        ("start-up on the seeded database: s", r["startup_seconds"], "", None, "≤ 1 s"),
    ]
    print(f"{'what':62} {'orgd':>10}  {'peer':30} {'peer value':>11} {'ratio':>7}  goal")
    for what, value, peer, peer_value, goal in rows:
        ratio = f"{value / peer_value:7.2f}" if peer_value else " " * 7
        peer_text = number(peer_value) if peer_value is not None else ""
        print(f"{what:62} {number(value):>10}  {peer:30} {peer_text:>11} {ratio}  {goal}")

    print()
    print("Heap allocations per call (orgd with bench/malloc_count.c preloaded, driven by loadgen)")
    for name, figure in r["allocations_per_call"].items():
        print(f"  {name:24} {figure['perCall']:8.2f} per call ({figure['allocations']:,} over {figure['calls']:,} calls)")

    cost = r["get_org_per_entry"]
    print(f"GetOrganization, cost of one more listed entry (pages of 1+1 against 10+200, {cost['entries']} entries apart, "
          f"50 connections): {cost['serverCpuMicrosecondsPerEntry']:.2f} µs of orgd CPU, {cost['p50MicrosecondsPerEntry']:.2f} µs "
          f"of p50, {cost['allocationsPerEntry']} allocations; fixed part {cost['serverCpuMicrosecondsFixed']:.1f} µs of CPU per call")

    print()
    print("The two clients, CheckAccess over Unix at 50 connections (same daemon, back to back)")
    print(f"{'':36} {'orgctl bench':>14} {'loadgen':>10}")
    a, b = r["orgd_check_access_c50"], r["loadgen_check_access_c50"]
    for what, x, y in [("calls/s", a["callsPerSecond"], b["callsPerSecond"]),
                       ("p50 µs", a["latencyMicroseconds"]["p50"], b["latencyMicroseconds"]["p50"]),
                       ("p99 µs", a["latencyMicroseconds"]["p99"], b["latencyMicroseconds"]["p99"]),
                       ("client CPU, % of one core", a["clientCpuPercentOfCore"], b["clientCpuPercentOfCore"]),
                       ("orgd CPU, % of one core", a["serverCpuPercentOfCore"], b["serverCpuPercentOfCore"])]:
        print(f"{what:36} {number(x):>14} {number(y):>10}")
    others = [("1 connection", "orgd_check_access_c1", "loadgen_check_access_c1"),
              ("TCP 50 connections", "orgd_check_access_tcp_c50", "loadgen_check_access_tcp_c50"),
              ("GetOrganization 50 (orgctl pages 10+10)", "orgd_get_org_c50", "loadgen_get_org_c50"),
              ("creates 64", "orgd_create_org_c64", "loadgen_create_org_c64")]
    print("  other shapes, calls/s orgctl bench / loadgen: " + "; ".join(
        f"{label} {number(calls(x))} / {number(calls(y))}" for label, x, y in others))

    print()
    print("CPU, % of one core over each client process's whole run (2 cores in all)")
    print("(client µs/call: the client's CPU per call made; rest: other processes and interrupts, e.g. a compile)")
    print(f"{'run':44} {'started':>8} {'client':>7} {'µs/call':>8} {'in window':>10} {'server':>7} {'rest':>6}")

    def cpu_row(label, value, calls_per_second, window=""):
        per_call = 1e4 * value["clientCpuPercentOfCore"] / calls_per_second if calls_per_second else 0
        print(f"{label:44} {value.get('startedAtUtc', ''):>8} {value['clientCpuPercentOfCore']:7.1f} {per_call:8.2f} {window:>10} "
              f"{value['serverCpuPercentOfCore']:7.1f} {value.get('othersCpuPercentOfCore', 0):6.1f}")
    for name, value in r.items():
        if name.startswith("loadgen_") and "callsPerSecond" in value:
            cpu_row(name, value, value["callsPerSecond"], f"{value['cpu']['percentOfCore']:.1f}")
    for name, value in r.items():
        if name.startswith("redis_"):
            cpu_row(name + (" (+ its LPUSH fill)" if value.get("cpuIncludesFill") else ""), value, value["calls_per_second"])
    for name in ["orgd_check_access_c50", "orgd_check_access_c1", "orgd_check_access_tcp_c50", "orgd_get_org_c50", "orgd_create_org_c64"]:
        cpu_row(name + " (orgctl bench)", r[name], r[name]["callsPerSecond"])

    shared = {k: v["othersCpuPercentOfCore"] for k, v in r.items() if isinstance(v, dict) and v.get("othersCpuPercentOfCore", 0) > 25}
    if shared:
        print("note: other processes used more than a quarter of a core during " + ", ".join(
            f"{k} ({v:.0f} %)" for k, v in shared.items()) + ": those figures shared the machine")
    statuses = {k: v.get("statusAllAnswers", v["status"]) for k, v in r.items() if isinstance(v, dict) and "status" in v and "callsPerSecond" in v}
    bad = {k: s for k, s in statuses.items() if set(s) - {"OK"}}
    print("status counts: " + ("all OK" if not bad else json.dumps(bad)))


if __name__ == "__main__":
    sys.exit(main())
