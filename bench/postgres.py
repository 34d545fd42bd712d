"""`scripts/bench --postgres`: orgd over PostgreSQL beside pgbench, in one run.

One durable throwaway cluster (scripts/postgres-cluster start DIR --durable:
fsync, synchronous_commit and full_page_writes on, like orgd's durable SQLite
writes), one database seeded through the API by `orgctl bench --seed`, then
on that database, each for the same duration and connection count:

- orgd, one daemon and then two over the same database: CheckAccess at 50
  connections, durable creates and consent answers at 64 (`orgctl bench`);
  with two daemons two `orgctl bench` processes run at once, half the
  connections each, and their calls are summed;
- pgbench running the very statements orgd runs for one CheckAccess and for
  one CreateOrganization (bench/pgbench/*.sql, captured from orgd with
  log_statement=all), -M prepared (orgd runs every statement that returns
  rows as a named prepared statement of its connection, planned once), -j 2;
  and the same with -M extended (every statement unnamed: parsed and
  planned each time, as orgd did before); the peer of each figure is the
  mode that served it better.

Ratios are orgd ÷ pgbench, from this run only.
"""
import glob
import json
import os
import random
import re
import shutil
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
DATABASE = "orgd_bench"
READ_CONNECTIONS = 50
WRITE_CONNECTIONS = 64
# pgbench picks one of this many scripts (its most) and in it one of this
# many (agent, patient, scope) checks at random per transaction: 1,024 in
# all; orgctl bench draws from every seeded consent. Every row is in
# shared_buffers either way.
PGBENCH_SCRIPTS = 128
PGBENCH_CHECKS_PER_SCRIPT = 8
# orgd retries a serialization failure up to 12 times in all
# (PostgresBackend.maximumAttempts); pgbench does the same.
MAX_TRIES = 12
# orgctl bench --seed makes 64 calls at once.
SEED_POOL_SIZE = 64


def progress(message, started=time.monotonic()):
    print(f"  [{time.monotonic() - started:5.0f} s] {message}", file=sys.stderr, flush=True)


def sh(*args, **kwargs):
    done = subprocess.run(args, capture_output=True, text=True, **kwargs)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(args)} exited with {done.returncode}: {done.stderr[-2000:]}")
    return done.stdout


class Cluster:
    """A durable PostgreSQL of the bench's own, on a Unix socket in a
    temporary directory; `stop` removes it."""

    def __init__(self):
        # Its own short directory: the socket's path must fit in sun_path, and
        # as root the cluster's owner (orgd-pgtest) cannot enter the bench's.
        self.directory = tempfile.mkdtemp(prefix="orgd-bench-pg.")
        self.script = os.path.join(ROOT, "scripts", "postgres-cluster")
        url = sh(self.script, "start", self.directory, "--durable").strip()
        self.bin = sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=lambda p: [int(x) for x in re.findall(r"\d+", p)])[-1]
        self.user = re.match(r"postgresql://([^@]+)@", url).group(1)
        self.psql("postgres", f"CREATE DATABASE {DATABASE}")
        # No timed checkpoint in the middle of a figure: the bench takes one
        # before each (`settle`), so every run starts alike (a run just after
        # a checkpoint writes whole pages to the WAL again).
        self.psql("postgres", "ALTER SYSTEM SET checkpoint_timeout = '1h'")
        self.psql("postgres", "ALTER SYSTEM SET max_wal_size = '8GB'")
        self.psql("postgres", "SELECT pg_reload_conf()")
        self.settings = self.psql("postgres", "SELECT string_agg(name || '=' || setting, ' ' ORDER BY name) FROM pg_settings"
                                  " WHERE name IN ('fsync', 'synchronous_commit', 'full_page_writes', 'max_connections', 'shared_buffers',"
                                  " 'checkpoint_timeout')")
        self.url = f"postgresql://{self.user}@/{DATABASE}?host={self.directory}"

    def psql(self, database, sql):
        return sh(os.path.join(self.bin, "psql"), "-X", "-q", "-At", "-h", self.directory, "-U", self.user, "-d", database,
                  "-v", "ON_ERROR_STOP=1", "-c", sql).strip()

    def settle(self):
        """A checkpoint, so that no run pays for the one before."""
        self.psql(DATABASE, "CHECKPOINT")

    def stop(self):
        subprocess.run([self.script, "stop", self.directory], check=False)


def check_access_scripts(template, data, directory, scripts=PGBENCH_SCRIPTS, per_script=PGBENCH_CHECKS_PER_SCRIPT):
    """Writes `scripts` pgbench scripts, each running `template` for one of
    `per_script` checks drawn from the seeded consents (as orgctl bench draws
    them), chosen per transaction by a small binary tree of \\if on one random
    number; pgbench picks a script per transaction. Small trees: pgbench steps
    through a skipped branch command by command, and a tree of 1,024 checks
    cost its client a core. Returns the scripts' paths and the checks' count."""
    chooser = random.Random(15)
    body = "\n".join(line for line in template.splitlines() if not line.startswith("--")).strip()
    checks = []
    for patient_index, scope_index in chooser.sample(data["consents"], min(scripts * per_script, len(data["consents"]))):
        patient = data["patients"][patient_index]
        values = {"agent": chooser.choice(data["agents"][patient["organization"]]), "patient": patient["id"],
                  "system": data["scopes"][scope_index][0], "code": data["scopes"][scope_index][1]}
        for value in values.values():
            # Spliced into SQL text: no quote, and nothing pgbench would take for a variable.
            if "'" in value or re.search(r":[A-Za-z_]", value):
                raise RuntimeError(f"seeded id not safe in a pgbench script: {value!r}")
        checks.append(body.format(**values))

    def tree(part, low, high):
        if high - low == 1:
            return [part[low]]
        middle = (low + high) // 2
        return [f"\\if :k < {middle}"] + tree(part, low, middle) + ["\\else"] + tree(part, middle, high) + ["\\endif"]

    paths = []
    for number, start in enumerate(range(0, len(checks), per_script)):
        part = checks[start:start + per_script]
        path = os.path.join(directory, f"check_access_{number}.sql")
        with open(path, "w") as out:
            out.write("\n".join([f"\\set k random(0, {len(part) - 1})"] + tree(part, 0, len(part))) + "\n")
        paths.append(path)
    return paths, len(checks)


class Pgbench:
    def __init__(self, cluster, directory, seconds, warmup):
        self.cluster = cluster
        self.directory = directory
        self.seconds = seconds
        self.warmup = warmup
        self.now_micros = int(time.time() * 1_000_000)

    def run(self, name, scripts, clients, mode="prepared"):
        """Runs `scripts` (one picked per transaction) on `clients`
        connections for the run's duration (after a warm-up run of its own);
        figures shaped like orgctl bench's."""
        base = [os.path.join(self.cluster.bin, "pgbench"), "-n", "-h", self.cluster.directory, "-U", self.cluster.user,
                "-M", mode, "-c", str(clients), "-j", "2", *[f"--file={script}" for script in scripts],
                "-D", f"now={self.now_micros}", f"--max-tries={MAX_TRIES}"]
        if self.warmup > 0:
            sh(*base, "-T", str(max(1, round(self.warmup))), DATABASE)
        prefix = os.path.join(self.directory, f"pgbench-{name}-log")
        output = sh(*base, "-T", str(self.seconds), "--log", f"--log-prefix={prefix}", DATABASE)
        latencies, failed = [], 0
        for log in glob.glob(prefix + ".[0-9]*"):
            with open(log) as lines:
                for line in lines:
                    fields = line.split()
                    if fields[2] == "failed":
                        failed += 1
                    elif fields[2] != "skipped":
                        latencies.append(int(fields[2]))
            os.remove(log)
        latencies.sort()

        def at(percent):
            return float(latencies[min(len(latencies) - 1, int(len(latencies) * percent / 100))]) if latencies else 0.0

        tps = float(re.search(r"tps = ([\d.]+) \(without initial connection time\)", output).group(1))
        retried = re.search(r"number of transactions retried: (\d+)", output)
        status = {"OK": len(latencies)}
        if failed:
            status["failed"] = failed
        return {"call": name, "connections": clients, "seconds": float(self.seconds),
                "calls": len(latencies), "callsPerSecond": tps, "retried": int(retried.group(1)) if retried else 0,
                "latencyMicroseconds": {"p50": at(50), "p90": at(90), "p99": at(99), "p999": at(99.9),
                                        "max": float(latencies[-1]) if latencies else 0.0,
                                        "mean": sum(latencies) / len(latencies) if latencies else 0.0},
                "status": status}


def together(runs):
    """Figures of several orgctl bench processes that ran at once, as one:
    calls and calls/s summed, statuses summed, the mean weighted by calls;
    each percentile the worse of the processes' (the combined percentile is
    no higher: an upper bound), max the larger."""
    calls = sum(r["calls"] for r in runs)
    latency = {key: max(r["latencyMicroseconds"][key] for r in runs) for key in ["p50", "p90", "p99", "p999", "max"]}
    latency["mean"] = sum(r["latencyMicroseconds"]["mean"] * r["calls"] for r in runs) / max(1, calls)
    status = {}
    for r in runs:
        for code, count in r["status"].items():
            status[code] = status.get(code, 0) + count
    return {"call": runs[0]["call"], "connections": sum(r["connections"] for r in runs), "processes": len(runs),
            "seconds": runs[0]["seconds"], "calls": calls, "callsPerSecond": sum(r["callsPerSecond"] for r in runs),
            "latencyMicroseconds": latency, "status": status, "per_process": [r["callsPerSecond"] for r in runs]}


def bench_at_once(daemons, call, connections, common):
    """`connections` split between `daemons`, one orgctl bench each, all at once."""
    shares = [connections // len(daemons) + (1 if i < connections % len(daemons) else 0) for i in range(len(daemons))]
    processes = [d.bench_process("--call", call, "--connections", str(n), *common) for d, n in zip(daemons, shares)]
    outputs = []
    for process in processes:
        out, err = process.communicate(timeout=600)
        if process.returncode != 0:
            raise RuntimeError(f"orgctl bench failed: {err}")
        outputs.append(json.loads(out))
    return together(outputs)


def run(arguments, orgd_class):
    """The whole PostgreSQL run; returns its figures."""
    quick = arguments.quick
    seconds = 1 if quick else 10
    warmup = 0.3 if quick else 2
    seed = ("organizations=5,staff=20,patients=200,scopes=4,consents=800" if quick
            else "organizations=50,staff=500,patients=10000,scopes=4,consents=40000")
    pool = arguments.pool_size
    results = {"quick": quick, "postgres": True, "seed": seed, "duration_seconds": float(seconds), "pool_size": pool,
               "pgbench_query_modes": ["prepared", "extended"], "pgbench_threads": 2}
    work = tempfile.mkdtemp(prefix="orgd-bench-")
    cluster = None
    daemons = []
    try:
        progress("starting a durable PostgreSQL cluster")
        cluster = Cluster()
        results["postgres_settings"] = cluster.settings
        pg_args = ["--database-pool-size", str(pool)]

        def start(name):
            daemon = orgd_class(arguments.bin, work, database=cluster.url, name=name, extra=pg_args)
            daemons.append(daemon)
            return daemon

        progress("seeding " + seed)
        # Seeding is not measured: 64 parallel calls, some long (asking 200
        # patients is one transaction of 1,200 statements), wait past the 5 s
        # lease timeout behind a pool of 16. The seeding daemon gets a
        # connection per call; the measured ones get `pool`.
        seeder = orgd_class(arguments.bin, work, database=cluster.url, name="seed",
                            extra=["--database-pool-size", str(SEED_POOL_SIZE)])
        daemons.append(seeder)
        data = os.path.join(work, "data.json")
        started = time.monotonic()
        seeder.bench("--seed", seed, "--data", data, "--count", "1", "--warmup", "0")
        results["seed_seconds"] = time.monotonic() - started
        seeder.stop()
        daemons.remove(seeder)
        first = start("a")
        cluster.psql(DATABASE, "VACUUM ANALYZE")
        common = ["--data", data, "--duration", str(seconds), "--warmup", str(warmup)]

        progress("CheckAccess: one orgd, then pgbench, then two orgd")
        cluster.settle()
        results["orgd1_check_access_c50"] = first.bench("--call", "check-access", "--connections", str(READ_CONNECTIONS), *common)
        pgbench = Pgbench(cluster, work, seconds, 0 if quick else warmup)
        with open(os.path.join(HERE, "pgbench", "check_access.sql")) as template, open(data) as seeded:
            scripts, results["pgbench_checks"] = check_access_scripts(template.read(), json.load(seeded), work)
        cluster.settle()
        results["pgbench_check_access_c50"] = pgbench.run("check_access", scripts, READ_CONNECTIONS)
        cluster.settle()
        results["pgbench_extended_check_access_c50"] = pgbench.run("check_access_extended", scripts, READ_CONNECTIONS, "extended")

        second = start("b")
        cluster.settle()
        results["orgd2_check_access_c50"] = bench_at_once(daemons, "check-access", READ_CONNECTIONS, common)
        second.stop()
        daemons.remove(second)

        progress("writes: one orgd, then pgbench, then two orgd")
        cluster.settle()
        results["orgd1_create_org_c64"] = first.bench("--call", "create-org", "--connections", str(WRITE_CONNECTIONS), *common)
        cluster.settle()
        results["orgd1_answer_consent_c64"] = first.bench("--call", "answer-consent", "--connections", str(WRITE_CONNECTIONS), *common)
        cluster.settle()
        creates = os.path.join(HERE, "pgbench", "create_org.sql")
        results["pgbench_create_org_c64"] = pgbench.run("create_org", [creates], WRITE_CONNECTIONS)
        cluster.settle()
        results["pgbench_extended_create_org_c64"] = pgbench.run("create_org_extended", [creates], WRITE_CONNECTIONS, "extended")
        # For reference: the same without the advisory lock that orders the
        # change feed, which holds every writer until the one before has
        # committed (and flushed).
        unordered = os.path.join(work, "create_org_unordered.sql")
        with open(creates) as script, open(unordered, "w") as out:
            out.writelines(line for line in script if "pg_advisory_xact_lock" not in line)
        cluster.settle()
        reference = pgbench.run("create_org_unordered", [unordered], WRITE_CONNECTIONS)
        # Without the lock, inserts conflict far more often: a transaction
        # that failed all its tries is counted, not a reason to stop.
        reference["failed_after_all_tries"] = reference["status"].pop("failed", 0)
        results["pgbench_create_org_unordered_c64"] = reference

        start("b")
        cluster.settle()
        results["orgd2_create_org_c64"] = bench_at_once(daemons, "create-org", WRITE_CONNECTIONS, common)
        cluster.settle()
        results["orgd2_answer_consent_c64"] = bench_at_once(daemons, "answer-consent", WRITE_CONNECTIONS, common)
        progress("done")
    finally:
        for daemon in daemons:
            try:
                daemon.stop()
            except Exception:
                daemon.process.kill()
        if cluster:
            cluster.stop()
        shutil.rmtree(work, ignore_errors=True)
    # The peer is pgbench in whichever mode served the workload better: its
    # check scripts carry their values as literals (1,024 distinct texts), so
    # -M prepared prepares nearly every statement for one use and loses to
    # -M extended on reads; the creates use variables and gain from it.
    for workload in ("check_access_c50", "create_org_c64"):
        modes = {"prepared": results[f"pgbench_{workload}"], "extended": results[f"pgbench_extended_{workload}"]}
        mode = max(modes, key=lambda name: modes[name]["callsPerSecond"])
        results[f"pgbench_best_{workload}"] = dict(modes[mode], mode=mode)
    for daemons_count in (1, 2):
        results[f"ratio_reads_{daemons_count}_orgd"] = (
            results[f"orgd{daemons_count}_check_access_c50"]["callsPerSecond"] / results["pgbench_best_check_access_c50"]["callsPerSecond"])
        results[f"ratio_writes_{daemons_count}_orgd"] = (
            results[f"orgd{daemons_count}_create_org_c64"]["callsPerSecond"] / results["pgbench_best_create_org_c64"]["callsPerSecond"])
    return results


def sanity(r, runs_sane):
    """The generic checks of every run, and that pgbench ran and failed nothing."""
    problems = runs_sane(r)
    for name in ["pgbench_check_access_c50", "pgbench_create_org_c64", "pgbench_create_org_unordered_c64",
                 "pgbench_extended_check_access_c50", "pgbench_extended_create_org_c64"]:
        if r[name]["calls"] <= 0:
            problems.append(f"{name}: pgbench did not run")
    if r["pgbench_checks"] < 1:
        problems.append("no checks for pgbench")
    for name in ["fsync=on", "synchronous_commit=on", "full_page_writes=on"]:
        if name not in r["postgres_settings"].split():
            problems.append(f"the cluster is not durable: {r['postgres_settings']}")
    return problems


def report(r):
    def calls(name):
        return r[name]["callsPerSecond"]

    def lat(name, key):
        return r[name]["latencyMicroseconds"][key]

    reads, writes = "pgbench_best_check_access_c50", "pgbench_best_create_org_c64"
    best_reads, best_writes = f"pgbench -M {r[reads]['mode']} c=50", f"pgbench -M {r[writes]['mode']} c=64"
    rows = [
        ("CheckAccess, 50 connections, 1 orgd: calls/s", calls("orgd1_check_access_c50"), best_reads, calls(reads), "≥ 0.8"),
        ("  p50 µs", lat("orgd1_check_access_c50", "p50"), "pgbench p50", lat(reads, "p50"), ""),
        ("  p99 µs", lat("orgd1_check_access_c50", "p99"), "pgbench p99", lat(reads, "p99"), ""),
        ("CheckAccess, 50 connections, 2 orgd: calls/s", calls("orgd2_check_access_c50"), best_reads, calls(reads), "≥ 0.8"),
        ("  p99 µs (worse of the 2 processes)", lat("orgd2_check_access_c50", "p99"), "pgbench p99", lat(reads, "p99"), ""),
        ("  pgbench -M extended (unnamed, planned each time)", calls("pgbench_extended_check_access_c50"), "pgbench -M prepared", calls("pgbench_check_access_c50"), ""),
        ("durable creates, 64 writers, 1 orgd: calls/s", calls("orgd1_create_org_c64"), best_writes, calls(writes), "≥ 0.8"),
        ("  p99 µs", lat("orgd1_create_org_c64", "p99"), "pgbench p99", lat(writes, "p99"), ""),
        ("durable creates, 64 writers, 2 orgd: calls/s", calls("orgd2_create_org_c64"), best_writes, calls(writes), "≥ 0.8"),
        ("  p99 µs (worse of the 2 processes)", lat("orgd2_create_org_c64", "p99"), "pgbench p99", lat(writes, "p99"), ""),
        ("  pgbench -M extended (unnamed, planned each time)", calls("pgbench_extended_create_org_c64"), "pgbench -M prepared", calls("pgbench_create_org_c64"), ""),
        ("  pgbench creates without the advisory lock", calls("pgbench_create_org_unordered_c64"), "pgbench -M prepared with it", calls("pgbench_create_org_c64"), ""),
        ("durable consent answers, 64 writers, 1 orgd: calls/s", calls("orgd1_answer_consent_c64"), best_writes + " creates", calls(writes), ""),
        ("durable consent answers, 64 writers, 2 orgd: calls/s", calls("orgd2_answer_consent_c64"), best_writes + " creates", calls(writes), ""),
    ]
    print(f"PostgreSQL ({r['postgres_settings']}); orgd --database-pool-size {r['pool_size']} per daemon; "
          f"pgbench -M prepared and -M extended, the better as the peer, -j {r['pgbench_threads']}, {r['pgbench_checks']} checks; "
          f"{r['duration_seconds']:.0f} s each; seed {r['seed']} ({r['seed_seconds']:.0f} s)")
    print(f"{'what':52} {'orgd':>12}  {'peer':24} {'peer value':>12} {'ratio':>8}  goal")
    for what, value, peer, peer_value, goal in rows:
        ratio = f"{value / peer_value:8.2f}" if peer_value else " " * 8
        print(f"{what:52} {value:12.0f}  {peer:24} {peer_value:12.0f} {ratio}  {goal}")
    retried = {k: v["retried"] for k, v in r.items() if isinstance(v, dict) and v.get("retried") and not k.startswith("pgbench_best_")}
    if retried:
        print("pgbench transactions retried (serialization failures): " + json.dumps(retried))
    statuses = {k: v["status"] for k, v in r.items() if isinstance(v, dict) and "status" in v}
    bad = {k: s for k, s in statuses.items() if set(s) - {"OK"}}
    print("status counts: " + ("all OK" if not bad else json.dumps(bad)))
