"""Draws scripts/bench's figures as PNGs, from the JSON bench/run.py writes.

    .build-venv-bench/bin/python bench/charts.py RESULTS.json DIR

Three pictures, every figure from the one run in RESULTS.json:
  targets.png     each target's ratio (orgd / its peer) against the issue's
                  "must" and "goal" bounds, marked met or not met;
  throughput.png  calls/s of orgd (driven by bench/loadgen.c) beside its peer
                  (Redis, or orgd over Unix for TCP), one pair per shape;
  latency.png     latency percentiles of CheckAccess beside Redis GET, at one
                  connection and at 50 (redis-benchmark reports p50, p95,
                  p99 and max; loadgen p50, p90, p99, p99.9 and max).
scripts/bench calls this (matplotlib lives in the bench's own venv, made by
scripts/install-deps --bench); BENCHMARKS.md shows the committed copies.
"""
import json
import os
import sys

import matplotlib

matplotlib.use("Agg")  # files only, no display
import matplotlib.pyplot as plt  # noqa: E402

COLOURS = {"goal met": "#2e7d32", "must met": "#f9a825", "not met": "#c62828"}
ORGD, PEER = "#1565c0", "#9e9e9e"


def subtitle(r):
    size = "quick run" if r.get("quick") else "full run"
    started = min((v["startedAtUtc"] for v in r.values() if isinstance(v, dict) and "startedAtUtc" in v), default="")
    return (f"scripts/bench, {size}, started {started} UTC; client and server on the same {r.get('cores', '?')} cores\n"
            f"seed {r.get('seed', '?')}")


def targets_chart(r, path):
    targets = r["targets"]
    fig, ax = plt.subplots(figsize=(12, 0.75 * len(targets) + 2))
    values = [v for t in targets for v in (t["ratio"], t["must"], t["goal"]) if v > 0]
    low, high = min(values) / 2, max(values) * 30  # room on the right for the words
    labels = []
    for row, t in enumerate(reversed(targets)):
        ratio = t["ratio"]
        ax.barh(row, max(ratio, low) - low, left=low, color=COLOURS[t["verdict"]], height=0.55)
        for bound, style in [(t["must"], "--"), (t["goal"], "-")]:
            ax.plot([bound, bound], [row - 0.38, row + 0.38], color="black", linestyle=style, linewidth=1.4)
        sign = "≥" if t["higherIsBetter"] else "≤"
        ax.text(max(ratio, t["goal"], t["must"]) * 1.15, row,
                f"{ratio:.2f}  {t['verdict']}  (must {sign} {t['must']:g}, goal {sign} {t['goal']:g})",
                va="center", fontsize=8.5)
        labels.append(f"{t['what'].strip()}\nvs {t['peer']}" + ("  (lower is better)" if not t["higherIsBetter"] else ""))
    ax.set_xscale("log")
    ax.set_xlim(low, high)
    ax.set_yticks(range(len(targets)))
    ax.set_yticklabels(labels, fontsize=8.5)
    ax.set_xlabel("ratio, orgd / peer, log scale (dashed line: must reach; solid: goal)")
    ax.set_title("orgd against the targets\n" + subtitle(r), fontsize=10)
    ax.grid(axis="x", alpha=0.3, which="both")
    handles = [plt.Rectangle((0, 0), 1, 1, color=c) for c in COLOURS.values()]
    ax.legend(handles, list(COLOURS), loc="lower right", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def throughput_chart(r, path):
    by_key = {t["key"]: t for t in r["targets"]}
    pairs = [("Health.Check\n50 conn.", r["loadgen_health_c50"]["callsPerSecond"], "Redis GET",
              r["redis_get_c50"]["calls_per_second"], None)]
    for key, label in [("check_access_c50", "CheckAccess\n50 conn."), ("check_access_c50_p16", "CheckAccess\n50 × 16 pipelined"),
                       ("check_access_tcp_c50", "CheckAccess TCP\n50 conn."), ("get_org_c50", "GetOrganization\n50 conn."),
                       ("create_org_c64", "durable creates\n64 writers")]:
        t = by_key[key]
        pairs.append((label, t["orgd"], t["peer"], t["peerValue"], t["verdict"]))
    pairs.insert(2, ("CheckAccess\n1 conn.", r["loadgen_check_access_c1"]["callsPerSecond"], "Redis GET c=1",
                     r["redis_get_c1"]["calls_per_second"], None))
    fig, ax = plt.subplots(figsize=(12, 5.2))
    width = 0.38
    for i, (label, orgd, peer, peer_value, verdict) in enumerate(pairs):
        ax.bar(i - width / 2, orgd, width, color=ORGD, label="orgd (loadgen)" if i == 0 else None)
        ax.bar(i + width / 2, peer_value, width, color=PEER, label="peer" if i == 0 else None)
        ax.text(i - width / 2, orgd * 1.08, f"{orgd:,.0f}", ha="center", fontsize=7, rotation=90, va="bottom")
        ax.text(i + width / 2, peer_value * 1.08, f"{peer_value:,.0f}\n{peer}", ha="center", fontsize=6.5, rotation=90, va="bottom")
        if verdict:
            ax.text(i, 1.3, verdict, ha="center", fontsize=8, color=COLOURS[verdict],
                    fontweight="bold")
    ax.set_yscale("log")
    ax.set_ylim(1, max(max(p[1], p[3]) for p in pairs) * 60)
    ax.set_xticks(range(len(pairs)))
    ax.set_xticklabels([p[0] for p in pairs], fontsize=8)
    ax.set_ylabel("calls/s (log scale)")
    ax.set_title("Throughput, orgd beside its peer in the same run\n" + subtitle(r), fontsize=10)
    ax.grid(axis="y", alpha=0.3, which="both")
    ax.legend(loc="upper right", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def latency_chart(r, path):
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.8))
    for ax, (title, orgd_key, redis_key, target_key) in zip(axes, [
            ("1 connection", "loadgen_check_access_c1", "redis_get_c1", "check_access_c1_p50"),
            ("50 connections", "loadgen_check_access_c50", "redis_get_c50", "check_access_c50_p99")]):
        latency = r[orgd_key]["latencyMicroseconds"]
        orgd_points = [(50, latency["p50"]), (90, latency["p90"]), (99, latency["p99"]), (99.9, latency["p999"])]
        redis = r[redis_key]
        redis_points = [(50, redis["p50_us"]), (95, redis.get("p95_us")), (99, redis["p99_us"])]
        redis_points = [(p, v) for p, v in redis_points if v]
        positions = {50: 0, 90: 1, 95: 1.5, 99: 2, 99.9: 3}
        ax.plot([positions[p] for p, _ in orgd_points], [v for _, v in orgd_points], "o-", color=ORGD,
                label=f"orgd CheckAccess (max {latency['max']:,.0f} µs)")
        ax.plot([positions[p] for p, _ in redis_points], [v for _, v in redis_points], "s--", color=PEER,
                label="Redis GET" + (f" (max {redis['max_us']:,.0f} µs)" if redis.get("max_us") else ""))
        for p, v in orgd_points:
            ax.annotate(f"{v:,.0f}", (positions[p], v), textcoords="offset points", xytext=(0, 6), ha="center", fontsize=7, color=ORGD)
        for p, v in redis_points:
            ax.annotate(f"{v:,.0f}", (positions[p], v), textcoords="offset points", xytext=(0, -12), ha="center", fontsize=7)
        t = next(t for t in r["targets"] if t["key"] == target_key)
        ax.set_title(f"CheckAccess, {title}: {t['what'].strip().split(':')[-1].strip()} ratio {t['ratio']:.2f} — {t['verdict']}",
                     fontsize=9, color=COLOURS[t["verdict"]])
        ax.set_xticks([0, 1, 1.5, 2, 3])
        ax.set_xticklabels(["p50", "p90", "p95", "p99", "p99.9"])
        ax.set_yscale("log")
        ax.set_ylabel("µs (log scale)")
        ax.grid(alpha=0.3, which="both")
        ax.legend(fontsize=8, loc="upper left")
    fig.suptitle("Latency percentiles, orgd beside Redis in the same run\n" + subtitle(r), fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def draw(r, directory):
    os.makedirs(directory, exist_ok=True)
    written = []
    for name, chart in [("targets.png", targets_chart), ("throughput.png", throughput_chart), ("latency.png", latency_chart)]:
        path = os.path.join(directory, name)
        chart(r, path)
        written.append(path)
    return written


def main():
    if len(sys.argv) != 3:
        print("usage: charts.py RESULTS.json DIR", file=sys.stderr)
        return 64
    with open(sys.argv[1]) as results:
        r = json.load(results)
    for path in draw(r, sys.argv[2]):
        print(f"wrote {path} ({os.path.getsize(path):,} bytes)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
