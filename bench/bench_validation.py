"""Benchmark performance validation on the fleet twin.

1. Detection: over seeded trials (the twin's latency streams are seeded by the trial number), a baseline run
   then "after" runs with no regression, a +20 % and a +50 % p99 regression (a VersionRegression on read
   and write p99) on an in-memory and a hybrid cluster, judged against the baseline. Prints, per source,
   topology and condition, how often the verdict was fail / inconclusive / pass (fail under no regression is
   a false positive) with Wilson 95 % intervals, and the mean time from starting a run to its verdict.
2. Probe overhead: the probe's achieved ops/s against a one-node cluster with the model's delay at zero,
   against a bare loop of the same client calls in the same run.

The twin runs in a subprocess (`--serve-twin`), so it does not share the interpreter lock with the probe.
`--sources info` judges the nodes' own ``latencies:``: like a real server's, each node's histogram of a ticker
interval (`--ticker`, 1 s here, 10 s on a server by default) is a sample of that interval's operations, so its
quantiles are as noisy as the tenants' load (`--tenant-tps`, cluster-wide) makes them.

    .venv/bin/python bench/bench_validation.py [--trials 10] [--duration 30] [--rate 2000] [--sources probe]
        [--info-duration 30] [--ticker 1] [--tenant-tps 30000] [--save runs.jsonl] [--skip-overhead]
    .venv/bin/python bench/bench_validation.py --rejudge runs.jsonl [--trial-range 10-19] [--first 10]

`--save` keeps every run's evidence; `--rejudge` judges it again with the current judge without measuring,
on a range of trials (to check settings on trials they were not chosen on) or on the first seconds of each
run (detection against measurement time).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import statistics
import subprocess
import sys
import time
import urllib.request
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

import aerospike

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from aerodeck.models import SLO, ClusterRef
from aerodeck.twin.fleet import parse_fleet
from aerodeck.twin.server import TwinServer
from aerodeck.validation.judge import judge
from aerodeck.validation.models import (
    CollectRequest,
    Evidence,
    JudgeRequest,
    ProbeSettings,
    Source,
    Verdict,
)
from aerodeck.validation.sources import source_for
from aerodeck.validation.sources.probe import PROBE_SET

VERSION = "8.1.2.0"
NAMESPACE = "bench"
CLUSTERS = {"b-inmem": "in-memory", "b-hybrid": "hybrid", "b-one": "in-memory"}
CONDITIONS = {"none": 0, "+20%": 20, "+50%": 50}
WARMUP_S = 5.0


def fleet(ticker_s: int, tenant_tps: float) -> dict[str, Any]:
    def cluster(name: str, topology: str, size: int) -> dict[str, Any]:
        return {
            "name": name,
            "namespace": NAMESPACE,
            "labels": {"team": "bench", "tier": "staging", "topology": topology, "use_case": "cache"},
            "size": size,
            "image": f"aerospike/aerospike-server-enterprise:{VERSION}",
            "namespaces": [{"name": "test", "replication_factor": min(2, size),
                            "storage_engine": "device" if topology == "hybrid" else "memory"}],
            "slo": {"read_p99_ms": 10, "write_p99_ms": 10, "min_tps": 100},
            "ticker_interval_s": ticker_s,
            "tenant_tps": tenant_tps,
        }  # fmt: skip

    return {
        "time_scale": 600,
        "clusters": [cluster(name, topology, 1 if name == "b-one" else 3) for name, topology in CLUSTERS.items()],
    }


# --------------------------------------------------------------------------------------------- the twin


async def serve_twin(args: argparse.Namespace) -> None:
    """Subprocess mode: run a TwinServer, print its endpoints once every node is up, stop at stdin EOF."""
    fleet_file = parse_fleet(fleet(args.ticker, args.tenant_tps))
    server = TwinServer(fleet_file, seed=args.seed, delay_scale=args.delay_scale)
    await server.start()
    clusters = server.runtime.clusters
    while not all(node.up for cluster in clusters.values() for node in cluster.nodes.values()):
        await asyncio.sleep(0.05)
    state = {
        "control_url": server.control_url,
        "endpoints": {c.name: [f"127.0.0.1:{n.port}" for n in c.nodes.values()] for c in clusters.values()},
    }
    print(json.dumps(state), flush=True)
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)
    await server.stop()


class Twin:
    def __init__(self, args: argparse.Namespace, seed: int, delay_scale: float = 1.0) -> None:
        argv = [sys.executable, __file__, "--serve-twin", "--seed", str(seed), "--delay-scale", str(delay_scale),
                "--ticker", str(args.ticker), "--tenant-tps", str(args.tenant_tps)]  # fmt: skip
        self.proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if not line:
            raise SystemExit(f"the twin did not start (exit {self.proc.wait()})")
        state = json.loads(line)
        self.control_url: str = state["control_url"]
        self.endpoints: dict[str, list[str]] = state["endpoints"]

    def _faults(self, method: str, body: dict[str, Any] | None = None) -> None:
        request = urllib.request.Request(
            f"{self.control_url}/twin/v1/faults",
            data=json.dumps(body).encode() if body else None,
            method=method,
            headers={"Content-Type": "application/json"},
        )
        urllib.request.urlopen(request, timeout=10).close()

    def regress(self, pct: float) -> None:
        self._faults("DELETE")
        if pct:
            self._faults("POST", {"kind": "version-regression", "version": VERSION,
                                  "read_p99_pct": pct, "write_p99_pct": pct})  # fmt: skip

    def stop(self) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.close()
        self.proc.wait(timeout=30)


# ----------------------------------------------------------------------------------------- detection


def collect(
    twin: Twin, cluster: str, source: Source, args: argparse.Namespace, run_id: str, duration: float | None = None
) -> Evidence:
    if duration is None:
        duration = args.duration if source is Source.PROBE else args.info_duration
    request = CollectRequest(
        source=source,
        cluster=ClusterRef(namespace=NAMESPACE, name=cluster),
        cluster_name=cluster,
        endpoints=twin.endpoints[cluster],
        expected_nodes=len(twin.endpoints[cluster]),
        namespace="test",
        duration_s=duration,
        probe=ProbeSettings(rate=args.rate, concurrency=args.concurrency),
        run_id=run_id,
    )
    return source_for(source, None).collect(request, lambda _: None)


def wilson(hits: int, n: int) -> tuple[float, float]:
    if n == 0:
        return 0.0, 1.0
    z, p = 1.96, hits / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return max(0.0, centre - half), min(1.0, centre + half)


Key = tuple[str, str, str]  # source, topology, condition


class Tally:
    def __init__(self) -> None:
        self.verdicts: dict[Key, Counter[Verdict]] = defaultdict(Counter)
        self.failing: dict[Key, Counter[str]] = defaultdict(Counter)
        self.seconds: dict[str, list[float]] = defaultdict(list)

    def add(self, key: Key, after: Evidence, baseline: Evidence, started: float | None) -> None:
        """Judge one pair; ``started`` (when the after run began) times the verdict."""
        report = judge(JudgeRequest(evidence=after, slo=SLO_LINES, baseline=baseline))
        if started is not None:
            self.seconds[key[0]].append(time.monotonic() - started)
        self.verdicts[key][report.verdict] += 1
        for metric in report.metrics:
            if metric.verdict is not Verdict.PASS and metric.critical:
                self.failing[key][f"{metric.name.value} {metric.verdict.value}"] += 1

    def rate(self, source: str, condition: str) -> tuple[int, int, int]:
        rows = [c for (s, _, cond), c in self.verdicts.items() if s == source and cond == condition]
        return (sum(c[Verdict.FAIL] for c in rows), sum(c[Verdict.INCONCLUSIVE] for c in rows),
                sum(sum(c.values()) for c in rows))  # fmt: skip


SLO_LINES = SLO(read_p99_ms=10, write_p99_ms=10, min_tps=100)


def save(args: argparse.Namespace, trial: int, cluster: str, condition: str, evidence: Evidence) -> None:
    """Append the evidence to ``--save`` (JSON lines), so other judge settings can be tried on the same runs."""
    if args.save:
        with Path(args.save).open("a") as out:
            record = {
                "trial": trial,
                "cluster": cluster,
                "cond": condition,
                "evidence": evidence.model_dump(mode="json"),
            }
            out.write(json.dumps(record) + "\n")


def run_trial(twin: Twin, trial: int, source: Source, args: argparse.Namespace, tally: Tally) -> None:
    """Per cluster: a baseline, then "after" runs under each condition. With no regression the pair is
    judged both ways (after against baseline and baseline against after): two null comparisons."""
    for cluster in ("b-inmem", "b-hybrid"):
        twin.regress(0)
        baseline = collect(twin, cluster, source, args, f"bench-{trial}-base")
        save(args, trial, cluster, "base", baseline)
        for condition, pct in CONDITIONS.items():
            twin.regress(pct)
            started = time.monotonic()
            after = collect(twin, cluster, source, args, f"bench-{trial}-{condition}")
            save(args, trial, cluster, condition, after)
            key = (source.value, CLUSTERS[cluster], condition)
            tally.add(key, after, baseline, started)
            if condition == "none":
                tally.add(key, baseline, after, None)


def detection(args: argparse.Namespace) -> None:
    sources = [Source(s) for s in args.sources.split(",")]
    tally = Tally()
    for trial in range(args.trials):
        twin = Twin(args, seed=trial)
        try:
            for cluster in ("b-inmem", "b-hybrid"):  # a fresh twin process runs slow at first: warm it up
                collect(twin, cluster, Source.PROBE, args, f"bench-{trial}-warmup", WARMUP_S)
            for source in sources:
                run_trial(twin, trial, source, args, tally)
        finally:
            twin.stop()
        print(f"trial {trial + 1}/{args.trials} done", file=sys.stderr, flush=True)
    runs = []
    if Source.PROBE in sources:
        runs.append(f"probe runs of {args.duration:g} s at {args.rate:g} ops/s with {args.concurrency} threads")
    if Source.INFO in sources:
        runs.append(f"info runs of {args.info_duration:g} s ({args.ticker} s ticker, {args.tenant_tps:g} tenant ops/s)")
    print(f"\nDetection over {args.trials} seeded trials; {', '.join(runs)}; judge defaults")
    report(tally)


def first_seconds(evidence: Evidence, seconds: float | None) -> Evidence:
    """The probe windows of the run's first ``seconds`` (all of them for None); the node series stay whole."""
    if seconds is None:
        return evidence
    kept, covered = [], 0.0
    for window in evidence.windows:
        if covered >= seconds - 1e-9:
            break
        kept.append(window)
        covered += window.seconds
    return evidence.model_copy(update={"windows": kept})


def rejudge(args: argparse.Namespace) -> None:
    """Judge saved evidence again (``--save`` output) with the current judge: no measuring."""
    low, high = args.trial_range or (0, sys.maxsize)
    runs: dict[tuple[int, str], dict[str, Evidence]] = defaultdict(dict)
    with Path(args.rejudge).open() as saved:
        for line in saved:
            record = json.loads(line)
            if low <= record["trial"] <= high:
                evidence = first_seconds(Evidence.model_validate(record["evidence"]), args.first)
                runs[(record["trial"], record["cluster"])][record["cond"]] = evidence
    complete = {key: c for key, c in runs.items() if {"base", *CONDITIONS} <= set(c)}  # a run cut short is left out
    tally = Tally()
    for (_, cluster), conditions in sorted(complete.items()):
        baseline = conditions["base"]
        for condition in CONDITIONS:
            after = conditions[condition]
            key = (after.source.value, CLUSTERS[cluster], condition)
            tally.add(key, after, baseline, None)
            if condition == "none":
                tally.add(key, baseline, after, None)
    first = f", first {args.first:g} s of each run" if args.first else ""
    print(f"Detection re-judged from {args.rejudge} ({len(complete)} trial x cluster baselines{first}); judge defaults")
    report(tally)


def trial_range(text: str) -> tuple[int, int]:
    """``LOW-HIGH`` or ``N`` as an inclusive range of trial numbers."""
    low, _, high = text.partition("-")
    if not low.isdigit() or not (high or low).isdigit() or int(low) > int(high or low):
        raise argparse.ArgumentTypeError(f"expected LOW-HIGH or N with LOW <= HIGH, got {text!r}")
    return int(low), int(high or low)


def report(tally: Tally) -> None:
    print(f"{'source':<7} {'topology':<10} {'p99 change':<10} {'fail':>6} {'95% CI':>15} {'inconcl.':>9} "
          f"{'pass':>6}  critical metrics not passing")  # fmt: skip
    order = sorted(tally.verdicts, key=lambda k: (k[0], k[1], list(CONDITIONS).index(k[2])))
    for key in order:
        counts = tally.verdicts[key]
        n = sum(counts.values())
        low, high = wilson(counts[Verdict.FAIL], n)
        metrics = ", ".join(f"{m} {c}" for m, c in tally.failing[key].most_common())
        print(f"{key[0]:<7} {key[1]:<10} {key[2]:<10} {counts[Verdict.FAIL] / n:>6.1%} [{low:>5.1%},{high:>7.1%}] "
              f"{counts[Verdict.INCONCLUSIVE] / n:>9.1%} {counts[Verdict.PASS] / n:>6.1%}  {metrics}")  # fmt: skip
    print()
    for source in sorted({key[0] for key in tally.verdicts}):
        for condition in CONDITIONS:
            fails, unsure, n = tally.rate(source, condition)
            low, high = wilson(fails, n)
            label = "false positives (fail, no regression)" if condition == "none" else f"detection at {condition}"
            print(f"{source:<6} {label:<38} {fails:>3}/{n:<3} = {fails / n:6.1%}  (95% CI {low:.1%}-{high:.1%}); "
                  f"inconclusive {unsure / n:.1%}")  # fmt: skip
    for name, spent in tally.seconds.items():
        print(
            f"{name} time to verdict: mean {sum(spent) / len(spent):.2f} s, max {max(spent):.2f} s "
            "(measurement window plus connect, records, cleanup and judging)"
        )


# ----------------------------------------------------------------------------------------- overhead


def bare_loop(client: Any, keys: list[tuple[str, str, str]], seconds: float) -> float:
    """The probe's client calls with nothing around them: alternate get and put over the same keys."""
    ops, end, i = 0, time.perf_counter() + seconds, 0
    while time.perf_counter() < end:
        key = keys[i % len(keys)]
        if i % 2:
            client.put(key, {"v": i, "p": "x" * 100})
        else:
            client.get(key)
        i += 1
        ops += 1
    return ops / seconds


def probe_rate(endpoints: list[str], seconds: float, control_every: int) -> float:
    """The probe's achieved data operations per second, unpaced (target far above what one thread does)."""
    request = CollectRequest(
        source=Source.PROBE,
        cluster=ClusterRef(namespace=NAMESPACE, name="b-one"),
        cluster_name="b-one",
        endpoints=endpoints,
        expected_nodes=1,
        namespace="test",
        duration_s=seconds,
        probe=ProbeSettings(rate=20_000, concurrency=1, control_every=control_every),
        run_id="bench-overhead",
    )
    evidence = source_for(Source.PROBE, None).collect(request, lambda _: None)
    return sum(w.ops for w in evidence.windows) / seconds


def overhead(args: argparse.Namespace) -> None:
    twin = Twin(args, seed=0, delay_scale=0.0)
    seconds = args.overhead_duration
    rows: list[tuple[float, float, float]] = []
    try:
        endpoints = twin.endpoints["b-one"]
        host, _, port = endpoints[0].rpartition(":")
        client = aerospike.client({"hosts": [(host, int(port))]}).connect()
        keys = [("test", PROBE_SET, f"bare:{i}") for i in range(500)]
        for key in keys:
            client.put(key, {"v": 0, "p": "x" * 100})
        for _ in range(args.rounds):  # interleaved, so drifts of the host hit all three alike
            rows.append((bare_loop(client, keys, seconds), probe_rate(endpoints, seconds, 0),
                         probe_rate(endpoints, seconds, ProbeSettings().control_every)))  # fmt: skip
        for key in keys:
            client.remove(key)
        client.close()
    finally:
        twin.stop()
    print(f"Probe throughput against one node (model delay 0), one thread, {seconds:g} s per measurement:")
    print(f"{'bare loop':>12} {'probe':>12} {'ratio':>7} {'probe+ctl':>12} {'ratio':>7}")
    for bare, plain, with_control in rows:
        print(f"{bare:>12.0f} {plain:>12.0f} {plain / bare:>7.3f} {with_control:>12.0f} {with_control / bare:>7.3f}")
    plain_ratio = statistics.median(p / b for b, p, _ in rows)
    control_ratio = statistics.median(c / b for b, _, c in rows)
    print(
        f"median ratio probe/bare {plain_ratio:.3f}; with the default no-op control call every "
        f"{ProbeSettings().control_every} operations {control_ratio:.3f}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--trials", type=int, default=10)
    parser.add_argument("--duration", type=float, default=30.0, help="probe run length (s)")
    parser.add_argument("--info-duration", type=float, default=30.0, help="info run length (s)")
    parser.add_argument("--ticker", type=int, default=1, help="the twin nodes' ticker-interval (s)")
    parser.add_argument("--tenant-tps", type=float, default=30_000, help="tenant ops/s per cluster")
    parser.add_argument("--rate", type=float, default=2000.0, help="probe target ops/s")
    parser.add_argument("--concurrency", type=int, default=4, help="probe threads")
    parser.add_argument("--sources", default="probe", help="probe and/or info, comma-separated")
    parser.add_argument("--rounds", type=int, default=3, help="probe-overhead measurements")
    parser.add_argument("--overhead-duration", type=float, default=5.0, help="probe-overhead run length (s)")
    parser.add_argument("--skip-overhead", action="store_true")
    parser.add_argument("--save", help="append every run's evidence to this JSON-lines file")
    parser.add_argument("--rejudge", help="judge evidence saved with --save again, without measuring")
    parser.add_argument("--trial-range", type=trial_range, help="with --rejudge: only trials LOW-HIGH (inclusive)")
    parser.add_argument("--first", type=float, help="with --rejudge: only the first seconds of each probe run")
    parser.add_argument("--serve-twin", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--seed", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--delay-scale", type=float, default=1.0, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve_twin:
        asyncio.run(serve_twin(args))
        return
    if args.rejudge:
        rejudge(args)
        return
    if not args.skip_overhead:
        overhead(args)
    if args.trials:
        detection(args)


if __name__ == "__main__":
    main()
