"""The twin's Aerospike nodes against the real official client (and raw sockets for exact bytes)."""

from __future__ import annotations

import base64
import socket
import statistics
import time
from collections.abc import Iterator
from typing import Any

import aerospike
import pytest
from aerospike import exception as aerospike_errors
from aerospike_helpers.operations import operations

from aerodeck.twin.aerospike.info import NodeView, answer
from aerodeck.twin.aerospike.protocol import (
    PROTO_HEADER_SIZE,
    AsMsg,
    FieldType,
    Info1,
    MessageType,
    ResultCode,
    decode_proto_header,
    encode_proto,
    encode_request,
)
from aerodeck.twin.latency import LatencyDistribution, LatencyModel, OpKind, effective_profile
from aerodeck.twin.runtime import PARTITIONS, FleetRuntime, TwinClock
from aerodeck.versions import AerospikeVersion
from tests.loop_thread import LoopThread
from tests.twin.aerospike_fixtures import (
    TwinCluster,
    cluster_runtime,
    fleet_with,
    start_twin_cluster,
)
from tests.waiting import wait_until

NS = "test"
CLIENT_CONFIG: dict[str, Any] = {
    "policies": {
        "read": {"total_timeout": 2000, "socket_timeout": 1000},
        "write": {"total_timeout": 2000, "socket_timeout": 1000},
        "info": {"timeout": 2000},
    },
    "connect_timeout": 2000,
}


@pytest.fixture(scope="module")
def loop() -> Iterator[LoopThread]:
    thread = LoopThread()
    yield thread
    thread.stop()


@pytest.fixture(scope="module")
def twin(loop: LoopThread) -> Iterator[TwinCluster]:
    cluster = start_twin_cluster(loop, fleet_with(size=3, version="8.1.2.0"), LatencyModel(seed=7))
    yield cluster
    cluster.close()


def connect(twin: TwinCluster) -> Any:
    return aerospike.client({**CLIENT_CONFIG, "hosts": [twin.seed]}).connect()


@pytest.fixture(scope="module")
def client(twin: TwinCluster) -> Iterator[Any]:
    connected = connect(twin)
    yield connected
    connected.close()


def stable_keys(client: Any, size: int) -> dict[str, str] | None:
    """cluster-stable answers by node, or None while the client reports the cluster unstable."""
    try:
        answers = client.info_all(f"cluster-stable:size={size}")
    except aerospike_errors.ClusterChangeError:
        return None
    return {node: text.strip() for node, (_, text) in answers.items()}


def raw_exchange(port: int, request: bytes) -> tuple[int, bytes]:
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(request)
        message_type, size = decode_proto_header(recv_exactly(sock, PROTO_HEADER_SIZE))
        return message_type, recv_exactly(sock, size)


def recv_exactly(sock: socket.socket, size: int) -> bytes:
    data = b""
    while len(data) < size:
        chunk = sock.recv(size - len(data))
        if not chunk:
            raise ConnectionError("connection closed")
        data += chunk
    return data


def raw_info(port: int, *commands: str) -> list[tuple[str, str]]:
    message_type, body = raw_exchange(
        port, encode_proto(MessageType.INFO, "".join(f"{c}\n" for c in commands).encode())
    )
    assert message_type == MessageType.INFO
    assert body.endswith(b"\n")
    return [tuple(line.split("\t", 1)) for line in body.decode().splitlines()]  # type: ignore[misc]


def test_client_connects_and_reads_build_and_statistics(twin: TwinCluster, client: Any) -> None:
    builds = client.info_all("build")
    assert {node: text.strip() for node, (_, text) in builds.items()} == {
        "A0": "8.1.2.0",
        "A1": "8.1.2.0",
        "A2": "8.1.2.0",
    }
    stats = {
        node: dict(item.split("=", 1) for item in text.strip().split(";"))
        for node, (_, text) in client.info_all("statistics").items()
    }
    assert {s["cluster_size"] for s in stats.values()} == {"3"}
    assert len({s["cluster_key"] for s in stats.values()}) == 1
    assert {s["cluster_principal"] for s in stats.values()} == {"A2"}
    assert all(s["cluster_integrity"] == "true" and s["migrate_allowed"] == "true" for s in stats.values())
    assert all(int(s["client_connections"]) >= 1 for s in stats.values())


def test_cluster_stable_returns_one_key_from_every_node(twin: TwinCluster, client: Any) -> None:
    keys = wait_until(lambda: stable_keys(client, 3), what="cluster-stable:size=3 on every node")
    expected = twin.loop.call(lambda: f"{twin.cluster.cluster_key:X}")
    assert set(keys) == {"A0", "A1", "A2"}
    assert set(keys.values()) == {expected}
    with pytest.raises(aerospike_errors.ClusterChangeError):
        client.info_all("cluster-stable:size=4")


def test_thousand_put_get_round_trips(client: Any) -> None:
    for i in range(1000):
        key = (NS, "rt", i)
        bins = {"i": i, "s": f"value-{i}", "b": bytes([i % 256]) * 3, "f": i / 4, "l": [i, "x"], "m": {"k": i}}
        client.put(key, bins)
        _, meta, record = client.get(key)
        assert record == bins
        assert meta["gen"] == 1


def test_missing_key_raises_record_not_found(client: Any) -> None:
    with pytest.raises(aerospike_errors.RecordNotFound):
        client.get((NS, "missing", "nope"))
    with pytest.raises(aerospike_errors.RecordNotFound):
        client.remove((NS, "missing", "nope"))
    with pytest.raises(aerospike_errors.RecordNotFound):
        client.touch((NS, "missing", "nope"), 60)


def test_exists_touch_delete(client: Any) -> None:
    key = (NS, "life", "k")
    client.put(key, {"a": 1})
    _, meta = client.exists(key)
    assert meta == {"gen": 1, "ttl": 2**32 - 1}  # never expires
    client.touch(key, 300)
    _, meta = client.exists(key)
    assert meta["gen"] == 2
    assert 298 <= meta["ttl"] <= 300
    client.remove(key)
    assert client.exists(key)[1] is None


def test_policies_and_operate(client: Any) -> None:
    key = (NS, "ops", "k")
    client.put(key, {"n": 1, "s": b"a"})
    with pytest.raises(aerospike_errors.RecordExistsError):
        client.put(key, {"n": 2}, policy={"exists": aerospike.POLICY_EXISTS_CREATE})
    with pytest.raises(aerospike_errors.RecordGenerationError):
        client.put(key, {"n": 2}, meta={"gen": 5}, policy={"gen": aerospike.POLICY_GEN_EQ})
    client.put(key, {"n": 2}, meta={"gen": 1}, policy={"gen": aerospike.POLICY_GEN_EQ})
    _, meta, bins = client.operate(
        key, [operations.increment("n", 40), operations.append("s", b"bc"), operations.read("n"), operations.read("s")]
    )
    assert bins == {"n": 42, "s": b"abc"}
    assert meta["gen"] == 3
    with pytest.raises(aerospike_errors.BinIncompatibleType):
        client.operate(key, [operations.increment("s", 1)])
    assert client.select(key, ["n"])[2] == {"n": 42}
    client.put(key, {"n": None, "s": None})  # removing the last bins removes the record
    assert client.exists(key)[1] is None


def test_compressed_requests_are_served(twin: TwinCluster) -> None:
    config = {**CLIENT_CONFIG, "hosts": [twin.seed], "compression_threshold": 1}
    config["policies"] = {**CLIENT_CONFIG["policies"], "write": {"compress": True}, "read": {"compress": True}}
    compressing = aerospike.client(config).connect()
    try:
        compressing.put((NS, "zip", 1), {"text": "z" * 2000})
        assert compressing.get((NS, "zip", 1))[2] == {"text": "z" * 2000}
    finally:
        compressing.close()


def test_info_formats_on_the_wire(twin: TwinCluster) -> None:
    port = twin.node(0).port
    lines = raw_info(
        port, "node", "build", "status", "namespaces", "cluster-name", "bogus-command", "service-clear-std"
    )
    assert lines == [
        ("node", "A0"),
        ("build", "8.1.2.0"),
        ("status", "ok"),
        ("namespaces", NS),
        ("cluster-name", "twin-test"),
        ("bogus-command", "ERROR:4:unrecognized command"),
        ("service-clear-std", f"127.0.0.1:{port}"),
    ]
    (_, peers), (_, generation) = raw_info(port, "peers-clear-std", "peers-generation")
    others = ",".join(f"[{n.node_name},,[127.0.0.1:{n.port}]]" for n in (twin.node(1), twin.node(2)))
    assert peers == f"{generation},,[{others}]"
    ((_, hist),) = raw_info(port, "latencies:hist={test}-read")
    name, _, data = hist.partition(":")
    unit, tps, *pcts = data.split(",")
    assert (name, unit, len(pcts)) == ("{test}-read", "msec", 17)
    assert float(tps) > 0
    assert [float(p) for p in pcts] == sorted((float(p) for p in pcts), reverse=True)
    ((_, namespace),) = raw_info(port, f"namespace/{NS}")
    ns_stats = dict(item.split("=", 1) for item in namespace.split(";"))
    assert ns_stats["ns_cluster_size"] == "3"
    assert ns_stats["effective_replication_factor"] == "2"
    assert ns_stats["stop_writes"] == "false"


def test_replicas_cover_every_partition_replication_factor_times(twin: TwinCluster) -> None:
    owners: dict[int, list[int]] = {p: [] for p in range(PARTITIONS)}
    for ordinal in range(3):
        ((_, replicas),) = raw_info(twin.node(ordinal).port, "replicas")
        ns, _, rest = replicas.partition(":")
        regime, count, *bitmaps = rest.split(",")
        assert (ns, regime, count, len(bitmaps)) == (NS, "0", "2", 2)
        for replica, encoded in enumerate(bitmaps):
            assert len(encoded) == 684
            bitmap = base64.b64decode(encoded)
            for partition in range(PARTITIONS):
                if bitmap[partition >> 3] & (0x80 >> (partition & 7)):
                    owners[partition].append(replica)
    assert all(sorted(found) == [0, 1] for found in owners.values())


def test_malformed_messages_close_only_their_connection(twin: TwinCluster) -> None:
    port = twin.node(1).port
    bad_version = bytes([9, 1, 0, 0, 0, 0, 0, 4]) + b"node"
    short_as_msg = encode_proto(MessageType.MESSAGE, b"\x16\x00\x00")
    overrunning_field = encode_proto(MessageType.MESSAGE, bytes([22]) + bytes(17) + b"\x00\x01\x00\x00" + b"\xff" * 8)
    for garbage in (bad_version, short_as_msg, overrunning_field, encode_proto(MessageType(4), b"not zlib")):
        with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
            sock.sendall(garbage)
            assert sock.recv(64) == b""  # closed by the node
    assert raw_info(port, "status") == [("status", "ok")]


def test_unsupported_requests_get_an_error_code(twin: TwinCluster) -> None:
    scan_like = AsMsg(info1=Info1.READ, info2=0, info3=0, fields={FieldType.NAMESPACE: NS.encode()})
    message_type, body = raw_exchange(twin.node(0).port, encode_request(scan_like))
    assert message_type == MessageType.MESSAGE
    assert body[5] == ResultCode.UNSUPPORTED_FEATURE


def test_reply_is_really_delayed_by_the_model(twin: TwinCluster, client: Any) -> None:
    key = (NS, "probe", "k")
    client.put(key, {"v": 1})
    samples = []
    for _ in range(300):
        started = time.perf_counter()
        client.get(key)
        samples.append((time.perf_counter() - started) * 1000)
    topology = twin.cluster.spec.labels.topology
    modelled = LatencyDistribution.of(effective_profile(AerospikeVersion.parse("8.1.2.0"), topology, OpKind.READ, []))
    measured_p50 = statistics.median(samples)
    # The delay is real: the median cannot beat the model; client and loop overhead add a little on top.
    assert modelled.quantile(0.5) <= measured_p50 < modelled.quantile(0.5) + 3.0


def test_server_side_timeouts_are_answered_and_counted(loop: LoopThread) -> None:
    slow = start_twin_cluster(loop, fleet_with(size=1), LatencyModel(seed=1, delay_scale=1000))
    try:
        key_digest = bytes(range(20))
        request = AsMsg(
            info1=Info1.READ | Info1.GET_ALL,
            info2=0,
            info3=0,
            transaction_ttl=5,
            fields={FieldType.NAMESPACE: NS.encode(), FieldType.DIGEST: key_digest},
        )
        started = time.perf_counter()
        _, body = raw_exchange(slow.node(0).port, encode_request(request))
        assert body[5] == ResultCode.TIMEOUT
        assert (time.perf_counter() - started) * 1000 >= 5
        assert slow.loop.call(lambda: slow.node(0).traffic.namespaces[NS].read_timeout) == 1
    finally:
        slow.close()


def test_stopped_node_refuses_and_client_carries_on(loop: LoopThread) -> None:
    twin = start_twin_cluster(loop, fleet_with(size=3, version="8.0.0.9"), LatencyModel(seed=3))
    client = connect(twin)
    try:
        for i in range(100):
            client.put((NS, "fail", i), {"v": i})
        stopped = twin.node(2)
        open_connection = socket.create_connection(("127.0.0.1", stopped.port), timeout=5)
        twin.stop_node(2)
        try:
            assert open_connection.recv(1) == b""  # dropped, not left hanging
        except ConnectionResetError:
            pass  # dropped with a reset: just as good
        finally:
            open_connection.close()
        with pytest.raises(ConnectionRefusedError):
            socket.create_connection(("127.0.0.1", stopped.port), timeout=2).close()
        wait_until(lambda: len(client.get_nodes()) == 2, what="the client to drop the stopped node")
        for i in range(100):
            assert client.get((NS, "fail", i))[2] == {"v": i}
        assert set(client.info_all("build")) == {"A0", "A1"}
        assert wait_until(lambda: stable_keys(client, 2), what="a stable 2-node cluster")

        twin.start_node(2, "8.1.0.3")
        wait_until(lambda: len(client.get_nodes()) == 3, what="the client to find the restarted node")
        assert client.info_single_node("build", "A2").strip() == "build\t8.1.0.3"
        assert {n: t.strip() for n, (_, t) in client.info_all("build").items()} == {
            "A0": "8.0.0.9",
            "A1": "8.0.0.9",
            "A2": "8.1.0.3",
        }
    finally:
        client.close()
        twin.close()


@pytest.mark.parametrize(
    ("version", "line", "expected"),
    [
        ("8.1.2.0", "cluster-stable:size=x", "ERROR:4:bad size"),
        ("7.1.0.0", "cluster-stable:size=x", "ERROR::bad-size"),
        ("8.0.0.9", "cluster-stable:size=5", "ERROR:7:cluster not specified size"),
        ("6.4.0.0", "cluster-stable:size=5", "ERROR::cluster-not-specified-size"),
        ("7.2.0.6", "cluster-stable:ignore-migrations=maybe", "ERROR:4:bad ignore migrations"),
        ("7.0.0.0", "cluster-stable:ignore-migrations=maybe", "ERROR::bad-ignore-migrations"),
        ("8.1.2.0", "cluster-stable:namespace=nope", "ERROR:20:namespace not found on node"),
        ("6.0.0.0", "cluster-stable:namespace=nope", "ERROR::unknown-namespace"),
        ("8.1.2.0", "cluster-stable:", "ERROR:7:unstable cluster"),
        ("7.1.0.0", "cluster-stable:size=3;ignore-migrations=false", "ERROR::unstable-cluster"),
        ("8.0.0.9", "release", "ERROR:4:unrecognized command"),
    ],
)
def test_errors_follow_the_node_version(version: str, line: str, expected: str) -> None:
    fleet_file = fleet_with(size=3, version=version)
    clock = TwinClock(fleet_file.time_scale)
    cluster = cluster_runtime(fleet_file.clusters[0], clock)
    for node in cluster.nodes.values():
        node.up = True
    cluster.migrations_total, cluster.migrations_stuck = 100, True  # migrations that never finish
    view = NodeView(cluster, cluster.nodes["twin-test-0-0"], FleetRuntime(fleet_file, clock), LatencyModel())
    assert answer(view, line) == expected


def test_stable_cluster_answers_its_key_and_ignores_migrations_on_request() -> None:
    fleet_file = fleet_with(size=2, version="8.1.2.0")
    clock = TwinClock(fleet_file.time_scale)
    cluster = cluster_runtime(fleet_file.clusters[0], clock)
    for node in cluster.nodes.values():
        node.up = True
    view = NodeView(cluster, cluster.nodes["twin-test-0-0"], FleetRuntime(fleet_file, clock), LatencyModel())
    assert answer(view, "cluster-stable:size=2;namespace=test") == f"{cluster.cluster_key:X}"
    cluster.migrations_total, cluster.migrations_stuck = 100, True
    assert answer(view, "cluster-stable:size=2").startswith("ERROR:7:unstable cluster")
    assert answer(view, "cluster-stable:size=2;ignore-migrations=true") == f"{cluster.cluster_key:X}"
