"""Benchmark one twin Aerospike node through the official client.

Prints get throughput and latency with the latency model's delay at zero, as a ratio against a baseline
measured in the same process: an asyncio server with the same framing answering the same request bytes
with a reply of the same size, driven over a plain blocking socket (the floor for asyncio + loopback).
Then probes with the model's real delays to compare measured and modelled p50/p99.

    .venv/bin/python bench/bench_aerospike_node.py [--ops 20000] [--rounds 5] [--probe-ops 2000]
"""

from __future__ import annotations

import argparse
import asyncio
import socket
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import aerospike

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from aerodeck.twin.aerospike.protocol import (
    PROTO_HEADER_SIZE,
    AsMsg,
    FieldType,
    Info1,
    MessageType,
    ResultCode,
    decode_proto_header,
    encode_proto,
    encode_reply,
    encode_request,
)
from aerodeck.twin.latency import LatencyDistribution, LatencyModel, OpKind, effective_profile
from tests.twin.aerospike_fixtures import LoopThread, fleet_with, free_port, start_twin_cluster

KEY = ("test", "bench", "key")
BASELINE = "baseline: asyncio framing echo, raw socket"
CLIENT_GET = "twin node: official client get, zero model delay"


def timed(operation: Callable[[], object], count: int) -> list[float]:
    """Per-call latencies in milliseconds."""
    latencies = []
    for _ in range(count):
        started = time.perf_counter_ns()
        operation()
        latencies.append((time.perf_counter_ns() - started) / 1e6)
    return latencies


def ops_per_second(latencies: list[float]) -> float:
    return len(latencies) / (sum(latencies) / 1000)


def summary(label: str, latencies: list[float]) -> float:
    ordered = sorted(latencies)
    ops = ops_per_second(ordered)
    p50, p99 = ordered[len(ordered) // 2], ordered[int(len(ordered) * 0.99)]
    print(f"{label:<52} {ops:>9.0f} ops/s   p50 {p50:6.3f} ms   p99 {p99:6.3f} ms")
    return ops


class RawConnection:
    """A blocking socket speaking the proto framing: send bytes, read one whole message back."""

    def __init__(self, port: int) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port))
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def exchange(self, request: bytes) -> bytes:
        self.sock.sendall(request)
        _, size = decode_proto_header(self._read(PROTO_HEADER_SIZE))
        return self._read(size)

    def _read(self, size: int) -> bytes:
        data = b""
        while len(data) < size:
            chunk = self.sock.recv(size - len(data))
            if not chunk:
                raise ConnectionError("closed")
            data += chunk
        return data

    def close(self) -> None:
        self.sock.close()


async def start_echo_server(reply: bytes) -> tuple[asyncio.Server, int]:
    """The baseline server: same framing as a node, answers every message with ``reply``."""

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                _, size = decode_proto_header(await reader.readexactly(PROTO_HEADER_SIZE))
                await reader.readexactly(size)
                writer.write(reply)
        except asyncio.IncompleteReadError:
            writer.close()

    port = free_port()
    return await asyncio.start_server(serve, "127.0.0.1", port), port


def throughput(loop: LoopThread, ops: int, rounds: int) -> None:
    twin = start_twin_cluster(loop, fleet_with(size=1), LatencyModel(seed=1, delay_scale=0))
    port = twin.node(0).port
    client = aerospike.client({"hosts": [("127.0.0.1", port)]}).connect()
    client.put(KEY, {"value": "x" * 100})
    get_request = encode_request(
        AsMsg(
            info1=Info1.READ | Info1.GET_ALL,
            info2=0,
            info3=0,
            transaction_ttl=1000,
            fields={
                FieldType.NAMESPACE: b"test",
                FieldType.SET: b"bench",
                FieldType.DIGEST: bytes(aerospike.calc_digest(*KEY)),
            },
        )
    )
    reply = encode_reply(ResultCode.OK, 1, 0, [("value", "x" * 100)])
    echo_server, echo_port = loop.run(start_echo_server(reply))
    raw_twin, raw_echo = RawConnection(port), RawConnection(echo_port)
    info_status = encode_proto(MessageType.INFO, b"status\n")
    variants: dict[str, Callable[[], object]] = {
        BASELINE: lambda: raw_echo.exchange(get_request),
        "twin node: raw-socket get (AS_MSG)": lambda: raw_twin.exchange(get_request),
        "twin node: raw-socket info 'status'": lambda: raw_twin.exchange(info_status),
        CLIENT_GET: lambda: client.get(KEY),
    }
    try:
        for operation in variants.values():
            timed(operation, 500)
        # Interleaved rounds, so drift on a shared machine hits every variant alike.
        latencies: dict[str, list[float]] = {label: [] for label in variants}
        ratios = []
        for _ in range(rounds):
            for label, operation in variants.items():
                latencies[label] += timed(operation, ops // rounds)
            ratios.append(
                ops_per_second(latencies[CLIENT_GET][-ops // rounds :])
                / ops_per_second(latencies[BASELINE][-ops // rounds :])
            )
        print(f"{ops} sequential operations per line in {rounds} interleaved rounds, one connection each;")
        print("the twin's loop runs in a background thread of this process\n")
        results = {label: summary(label, samples) for label, samples in latencies.items()}
        print(
            f"\nratio official-client get / baseline, ops/s: {results[CLIENT_GET] / results[BASELINE]:.2f}"
            f" (per round {min(ratios):.2f} .. {max(ratios):.2f}); by p50 round trip:"
            f" {statistics.median(latencies[BASELINE]) / statistics.median(latencies[CLIENT_GET]):.2f}"
            " (steadier on a shared machine: stalls move means, not medians)"
        )
    finally:
        raw_twin.close()
        raw_echo.close()
        echo_server.close()
        client.close()
        twin.close()


def probe(loop: LoopThread, ops: int) -> None:
    twin = start_twin_cluster(loop, fleet_with(size=1), LatencyModel(seed=1))
    client = aerospike.client({"hosts": [twin.seed]}).connect()
    client.put(KEY, {"value": "x" * 100})
    try:
        latencies = timed(lambda: client.get(KEY), ops)
    finally:
        client.close()
        twin.close()
    node = twin.node(0)
    modelled = LatencyDistribution.of(
        effective_profile(node.version, twin.cluster.spec.labels.topology, OpKind.READ, [])
    )
    print(f"\nprobe with the model's real delays ({ops} gets, {node.version} in-memory read):")
    summary("measured through the official client", latencies)
    print(f"{'modelled':<52} {'':>15}   p50 {modelled.quantile(0.5):6.3f} ms   p99 {modelled.quantile(0.99):6.3f} ms")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--ops", type=int, default=20000, help="operations per throughput line")
    parser.add_argument("--rounds", type=int, default=5, help="interleaved rounds per throughput line")
    parser.add_argument("--probe-ops", type=int, default=2000, help="gets with the model's real delays")
    args = parser.parse_args()
    loop = LoopThread()
    try:
        throughput(loop, args.ops, args.rounds)
        probe(loop, args.probe_ops)
    finally:
        loop.stop()


if __name__ == "__main__":
    main()
