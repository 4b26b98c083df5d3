"""Benchmark performance validation on the fleet twin.

1. Detection: over seeded trials (the twin's latency streams are seeded by the trial number), a baseline run
   then "after" runs with no regression, a +20 % and a +50 % p99 regression (a VersionRegression on read
   and write p99) on an in-memory and a hybrid cluster, judged against the baseline. Prints, per source,
   topology and condition, how often the verdict was fail / inconclusive / pass (fail under no regression is
   a false positive) with Wilson 95 % intervals, and the mean time from starting a run to its verdict.
2. Probe overhead: the probe's achieved ops/s against a one-node cluster with the model's delay at zero,
   against a bare loop of the same client calls in the same run.

The twin runs in a subprocess (`--serve-twin`), so it does not share the interpreter lock with the probe.

    .venv/bin/python bench/bench_validation.py [--trials 20] [--duration 5] [--rate 2000] [--sources probe,info]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
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


def fleet(seed_size_one: bool = True) -> dict[str, Any]:
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
        }  # fmt: skip

    return {
        "time_scale": 600,
        "clusters": [cluster(name, topology, 1 if name == "b-one" else 3) for name, topology in CLUSTERS.items()],
    }


# --------------------------------------------------------------------------------------------- the twin


async def serve_twin(seed: int, delay_scale: float) -> None:
    """Subprocess mode: run a TwinServer, print its endpoints once every node is up, stop at stdin EOF."""
    server = TwinServer(parse_fleet(fleet()), seed=seed, delay_scale=delay_scale)
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
    def __init__(self, seed: int, delay_scale: float = 1.0) -> None:
        argv = [sys.executable, __file__, "--serve-twin", "--seed", str(seed), "--delay-scale", str(delay_scale)]
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


def collect(twin: Twin, cluster: str, source: Source, args: argparse.Namespace, run_id: str) -> Evidence:
    request = CollectRequest(
        source=source,
        cluster=ClusterRef(namespace=NAMESPACE, name=cluster),
        cluster_name=cluster,
        endpoints=twin.endpoints[cluster],
        expected_nodes=len(twin.endpoints[cluster]),
        namespace="test",
        duration_s=args.duration,
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


def detection(args: argparse.Namespace) -> None:
    sources = [Source(s) for s in args.sources.split(",")]
    verdicts: dict[tuple[str, str, str], Counter[Verdict]] = defaultdict(Counter)
    failing_metrics: dict[tuple[str, str, str], Counter[str]] = defaultdict(Counter)
    times: dict[str, list[float]] = defaultdict(list)
    slo = SLO(read_p99_ms=10, write_p99_ms=10, min_tps=100)
    for trial in range(args.trials):
        twin = Twin(seed=trial)
        try:
            for source in sources:
                for cluster in ("b-inmem", "b-hybrid"):
                    twin.regress(0)
                    baseline = collect(twin, cluster, source, args, f"bench-{trial}-base")
                    for condition, pct in CONDITIONS.items():
                        twin.regress(pct)
                        started = time.monotonic()
                        after = collect(twin, cluster, source, args, f"bench-{trial}-{condition}")
                        report = judge(JudgeRequest(evidence=after, slo=slo, baseline=baseline))
                        times[source.value].append(time.monotonic() - started)
                        key = (source.value, CLUSTERS[cluster], condition)
                        verdicts[key][report.verdict] += 1
                        for metric in report.metrics:
                            if metric.verdict is Verdict.FAIL:
                                failing_metrics[key][metric.name.value] += 1
        finally:
            twin.stop()
        print(f"trial {trial + 1}/{args.trials} done", file=sys.stderr, flush=True)
    print(f"\nDetection over {args.trials} seeded trials; runs of {args.duration:g} s; probe target {args.rate:g} "
          f"ops/s with {args.concurrency} threads; judge defaults (alpha 0.01, min shift 10 %)")  # fmt: skip
    print(f"{'source':<7} {'topology':<10} {'p99 change':<10} {'fail':>6} {'95% CI':>14} {'inconcl.':>9} "
          f"{'pass':>6}  failing metrics")  # fmt: skip
    for (source, topology, condition), counts in sorted(
        verdicts.items(), key=lambda kv: (kv[0][0], kv[0][1], CONDITIONS[kv[0][2]])
    ):
        n = sum(counts.values())
        low, high = wilson(counts[Verdict.FAIL], n)
        metrics = ", ".join(f"{m} {c}" for m, c in failing_metrics[(source, topology, condition)].most_common())
        print(f"{source:<7} {topology:<10} {condition:<10} {counts[Verdict.FAIL] / n:>6.1%} "
              f"[{low:>5.1%},{high:>6.1%}] {counts[Verdict.INCONCLUSIVE] / n:>9.1%} {counts[Verdict.PASS] / n:>6.1%}"
              f"  {metrics}")  # fmt: skip
    for condition in CONDITIONS:
        for source in sources:
            rows = [c for (s, _, cond), c in verdicts.items() if s == source.value and cond == condition]
            n = sum(sum(c.values()) for c in rows)
            fails = sum(c[Verdict.FAIL] for c in rows)
            low, high = wilson(fails, n)
            label = "false positives" if condition == "none" else "detection"
            print(f"{source.value} {label} at {condition}: {fails}/{n} = {fails / n:.1%} (95% CI {low:.1%}-{high:.1%})")
    for source, spent in times.items():
        print(f"{source} time to verdict: mean {sum(spent) / len(spent):.2f} s, max {max(spent):.2f} s "
              f"(collection {args.duration:g} s + setup, cleanup and judging)")  # fmt: skip


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


def overhead(args: argparse.Namespace) -> None:
    twin = Twin(seed=0, delay_scale=0.0)
    try:
        endpoints = twin.endpoints["b-one"]
        host, _, port = endpoints[0].rpartition(":")
        client = aerospike.client({"hosts": [(host, int(port))]}).connect()
        keys = [("test", PROBE_SET, f"bare:{i}") for i in range(500)]
        for key in keys:
            client.put(key, {"v": 0, "p": "x" * 100})
        rounds = []
        for _ in range(args.rounds):
            bare = bare_loop(client, keys, args.duration)
            request = CollectRequest(
                source=Source.PROBE, cluster=ClusterRef(namespace=NAMESPACE, name="b-one"), cluster_name="b-one",
                endpoints=endpoints, expected_nodes=1, namespace="test", duration_s=args.duration,
                probe=ProbeSettings(rate=20_000, concurrency=1), run_id="bench-overhead",
            )  # fmt: skip
            evidence = source_for(Source.PROBE, None).collect(request, lambda _: None)
            probe = sum(w.ops for w in evidence.windows) / args.duration
            rounds.append((probe, bare))
        for key in keys:
            client.remove(key)
        client.close()
    finally:
        twin.stop()
    print(f"\nProbe overhead on one node, model delay 0, one thread, {args.duration:g} s per measurement:")
    for probe, bare in rounds:
        print(f"  probe {probe:8.0f} ops/s   bare loop {bare:8.0f} ops/s   ratio {probe / bare:.3f}")
    ratios = sorted(p / b for p, b in rounds)
    print(f"  median ratio probe/bare: {ratios[len(ratios) // 2]:.3f} (the probe also times every operation, "
          f"paces, and sends one no-op info call per 4 operations)")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--trials", type=int, default=20)
    parser.add_argument("--duration", type=float, default=5.0)
    parser.add_argument("--rate", type=float, default=2000.0)
    parser.add_argument("--concurrency", type=int, default=2)
    parser.add_argument("--sources", default="probe,info")
    parser.add_argument("--rounds", type=int, default=3, help="probe-overhead measurements")
    parser.add_argument("--skip-overhead", action="store_true")
    parser.add_argument("--serve-twin", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--seed", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--delay-scale", type=float, default=1.0, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve_twin:
        asyncio.run(serve_twin(args.seed, args.delay_scale))
        return
    if not args.skip_overhead:
        overhead(args)
    detection(args)


if __name__ == "__main__":
    main()
