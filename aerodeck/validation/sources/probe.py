"""The probe: a bounded read/write workload through the official client, on a dedicated set, timing every
operation. It writes its own records first (also warming up connections), paces operations to the target
rate, interleaves no-op info round trips as a measurement control, watches the nodes with
:class:`InfoPoller`, and deletes its records at the end. It never reads or writes any other key."""

from __future__ import annotations

import math
import random
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from aerospike import exception as aerospike_errors

from aerodeck.validation.histogram import LatencyHistogram, bucket_of
from aerodeck.validation.models import CollectRequest, Evidence, ProbeWindow, Source
from aerodeck.validation.sources.base import Heartbeat, SourceUnavailable, connect
from aerodeck.validation.sources.info_latency import InfoPoller, poll_interval

PROBE_SET = "aerodeck-probe"
MAX_WINDOWS = 40
MIN_WINDOW_S = 0.1
MAX_LAG_S = 0.05  # a thread this far behind schedule drops the backlog instead of bursting
CLEANUP_BUDGET_S = 15.0
SEED_GIVE_UP = 20  # consecutive failed writes from the start: the cluster takes none


@dataclass
class _Window:
    seconds: float
    latencies: dict[str, dict[int, int]] = field(default_factory=lambda: {"read": {}, "write": {}, "control": {}})
    errors: int = 0
    timeouts: int = 0

    def record(self, kind: str, seconds: float) -> None:
        counts = self.latencies[kind]
        index = bucket_of(seconds * 1000)
        counts[index] = counts.get(index, 0) + 1


def probe_keys(namespace: str, run_id: str, count: int) -> list[tuple[str, str, str]]:
    """The probe's own keys: named by the run, so a retried attempt rewrites and deletes the same ones."""
    return [(namespace, PROBE_SET, f"{run_id}:{i}") for i in range(count)]


class _Workload:
    """``concurrency`` threads, each paced to rate/concurrency, recording into their own windows."""

    def __init__(self, client: Any, keys: list[tuple[str, str, str]], request: CollectRequest) -> None:
        self.client, self.keys, self.request = client, keys, request
        settings = request.probe
        self.windows_count = max(1, min(MAX_WINDOWS, math.floor(request.duration_s / MIN_WINDOW_S)))
        self.window_s = request.duration_s / self.windows_count
        self.interval = settings.concurrency / settings.rate
        self.padding = "x" * settings.record_bytes
        self.control_every = settings.control_every
        self.stop = threading.Event()
        self.per_thread = [[_Window(self.window_s) for _ in range(self.windows_count)] for _ in
                           range(settings.concurrency)]  # fmt: skip
        self.ops_done = [0] * settings.concurrency
        self.threads = [
            threading.Thread(target=self._run, args=(i,), name=f"aerodeck-probe-{i}", daemon=True)
            for i in range(settings.concurrency)
        ]
        self.started = 0.0

    def start(self) -> None:
        self.started = time.perf_counter()
        for thread in self.threads:
            thread.start()

    def join(self) -> None:
        self.stop.set()
        for thread in self.threads:
            thread.join()

    def _run(self, index: int) -> None:
        rng = random.Random(f"{self.request.run_id}:{index}")
        windows, client, read_ratio = self.per_thread[index], self.client, self.request.probe.read_ratio
        end = self.started + self.request.duration_s
        # Threads start staggered over one interval so operations spread evenly.
        next_at = self.started + self.interval * index / len(self.threads)
        count = 0
        while not self.stop.is_set():
            now = time.perf_counter()
            if next_at >= end:
                break
            if next_at > now:
                time.sleep(next_at - now)
            elif now - next_at > MAX_LAG_S:
                next_at = now
            window = windows[min(int((next_at - self.started) / self.window_s), self.windows_count - 1)]
            next_at += self.interval
            key = self.keys[rng.randrange(len(self.keys))]
            kind = "read" if rng.random() < read_ratio else "write"
            began = time.perf_counter()
            try:
                if kind == "read":
                    client.get(key)
                else:
                    client.put(key, {"v": count, "p": self.padding})
                window.record(kind, time.perf_counter() - began)
            except aerospike_errors.TimeoutError:
                window.timeouts += 1
            except aerospike_errors.AerospikeError:
                window.errors += 1  # includes a read finding the probe's own record gone
            count += 1
            self.ops_done[index] = count
            if self.control_every and count % self.control_every == 0:
                self._control(window)

    def _control(self, window: _Window) -> None:
        began = time.perf_counter()
        try:
            self.client.info_random_node("status")
        except aerospike_errors.AerospikeError:
            return  # a failing node shows in the data operations and the node count
        window.record("control", time.perf_counter() - began)

    def windows(self) -> list[ProbeWindow]:
        merged = []
        for i in range(self.windows_count):
            parts = [thread_windows[i] for thread_windows in self.per_thread]
            merged.append(
                ProbeWindow(
                    seconds=self.window_s,
                    latencies={
                        kind: LatencyHistogram.merged(LatencyHistogram(counts=p.latencies[kind]) for p in parts)
                        for kind in ("read", "write", "control")
                    },
                    errors=sum(p.errors for p in parts),
                    timeouts=sum(p.timeouts for p in parts),
                )
            )
        return merged


class _Ticker:
    """Calls ``heartbeat`` at most once a second from a loop that may block on slow operations."""

    def __init__(self, heartbeat: Heartbeat) -> None:
        self._heartbeat, self._last = heartbeat, 0.0

    def __call__(self, progress: str) -> None:
        now = time.monotonic()
        if now - self._last >= 1.0:
            self._heartbeat(progress)
            self._last = now


def _seed(client: Any, keys: list[tuple[str, str, str]], padding: str, heartbeat: Heartbeat) -> list[str]:
    """Write the probe's records; returns why some failed. Gives up early when the cluster takes none."""
    failures: list[str] = []
    tick = _Ticker(heartbeat)
    for i, key in enumerate(keys):
        try:
            client.put(key, {"v": i, "p": padding})
        except aerospike_errors.AerospikeError as exc:
            failures.append(exc.msg or type(exc).__name__)
            if len(failures) == SEED_GIVE_UP and len(failures) == i + 1:
                raise SourceUnavailable(f"the probe could not write to set {PROBE_SET}: {failures[0]}") from exc
        tick(f"probe: wrote {i + 1}/{len(keys)} records")
    return failures


def _cleanup(client: Any, keys: list[tuple[str, str, str]], heartbeat: Heartbeat) -> int:
    """Delete the probe's records; returns how many could not be deleted within the budget."""
    deadline = time.monotonic() + CLEANUP_BUDGET_S
    tick = _Ticker(heartbeat)
    left = 0
    for i, key in enumerate(keys):
        if time.monotonic() > deadline:
            return left + len(keys) - i
        try:
            client.remove(key)
        except aerospike_errors.RecordNotFound:
            pass
        except aerospike_errors.AerospikeError:
            left += 1
        tick(f"probe: deleting records ({i + 1}/{len(keys)})")
    return left


class ProbeSource:
    def collect(self, request: CollectRequest, heartbeat: Heartbeat) -> Evidence:
        settings = request.probe
        client = connect(request.endpoints, settings.timeout_ms)
        keys = probe_keys(request.namespace, request.run_id, settings.keys)
        notes: list[str] = []
        try:
            seed_failures = _seed(client, keys, "x" * settings.record_bytes, heartbeat)
            if seed_failures:
                notes.append(f"{len(seed_failures)} of {len(keys)} records failed to write: {seed_failures[0]}")
            poller = InfoPoller(client, request.namespace, request.expected_nodes)
            workload = _Workload(client, keys, request)
            started_at = datetime.now(UTC)
            workload.start()
            try:
                self._watch(workload, poller, request, heartbeat)
            finally:
                workload.join()
            ended_at = datetime.now(UTC)
        finally:
            left = _cleanup(client, keys, heartbeat)
            client.close()
        windows = workload.windows()
        ops = sum(w.ops for w in windows)
        notes.append(f"{ops} operations in {request.duration_s:g} s at a target of {settings.rate:g} ops/s "
                     f"with {settings.concurrency} threads on set {PROBE_SET}")  # fmt: skip
        notes.append(
            f"{left} probe records could not be deleted (set {PROBE_SET}, keys {request.run_id}:*)"
            if left
            else f"all {len(keys)} probe records deleted"
        )
        return Evidence(
            source=Source.PROBE,
            cluster=request.cluster,
            namespace=request.namespace,
            started_at=started_at,
            ended_at=ended_at,
            expected_nodes=request.expected_nodes,
            min_nodes=poller.min_nodes,
            target_tps=settings.rate,
            windows=windows,
            series=poller.series,
            disturbances=poller.disturbances(),
            notes=notes,
        )

    @staticmethod
    def _watch(workload: _Workload, poller: InfoPoller, request: CollectRequest, heartbeat: Heartbeat) -> None:
        """Poll the nodes and heartbeat until the workload's time is up."""
        interval = poll_interval(request.duration_s)
        end = workload.started + request.duration_s
        while True:
            poller.poll()
            heartbeat(f"probe: {sum(workload.ops_done)} operations")
            remaining = end - time.perf_counter()
            if remaining <= 0:
                return
            time.sleep(min(interval, remaining))
