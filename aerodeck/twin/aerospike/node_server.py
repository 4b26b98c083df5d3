"""One twin node's wire endpoint: an asyncio TCP server on 127.0.0.1:<node.port> answering info requests
and single-record data operations against the cluster's shared record store.

A down node's endpoint is closed and its connections dropped, so clients see refused connections exactly
as with a stopped pod. :class:`ClusterEndpoints` keeps endpoints in step with nodes via the cluster's hooks.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import time
from dataclasses import dataclass, field

from aerodeck.twin.aerospike.info import NodeView, handle_info
from aerodeck.twin.aerospike.protocol import (
    DIGEST_SIZE,
    PROTO_HEADER_SIZE,
    AsMsg,
    BinValue,
    FieldType,
    Info1,
    Info2,
    Info3,
    MessageType,
    OpType,
    ProtocolError,
    ResultCode,
    decode_proto_header,
    decompress,
    encode_admin_reply,
    encode_proto,
    encode_reply,
    parse_as_msg,
)
from aerodeck.twin.latency import LatencyModel, OpKind, precise_sleep
from aerodeck.twin.runtime import (
    ClusterRuntime,
    FleetRuntime,
    NamespaceTraffic,
    NodeRuntime,
    NodeTraffic,
    Record,
)

log = logging.getLogger(__name__)

CITRUSLEAF_EPOCH = 1262304000  # void times count seconds from 2010-01-01 UTC
TTL_NEVER_EXPIRE = 0xFFFF_FFFF
TTL_DONT_UPDATE = 0xFFFF_FFFE
_WRITE_BUFFER_HIGH = 256 * 1024


@dataclass(slots=True)
class Outcome:
    result: int
    generation: int = 0
    void_time: int = 0
    bins: list[tuple[str, BinValue]] = field(default_factory=list)


class _Failed(Exception):
    def __init__(self, result: ResultCode) -> None:
        self.result = result


def _now() -> int:
    return int(time.time()) - CITRUSLEAF_EPOCH


def _void_time(ttl: int, now: int, current: int | None) -> int:
    """Void time for a write's TTL field; the twin's namespaces have default-ttl 0 (never expire)."""
    if ttl == TTL_DONT_UPDATE:
        return current or 0
    if ttl in (0, TTL_NEVER_EXPIRE):
        return 0
    return now + ttl


def _live(records: dict[tuple[str, bytes], Record], key: tuple[str, bytes], now: int) -> Record | None:
    record = records.get(key)
    if record is not None and record.void_time and record.void_time <= now:
        del records[key]  # expired: gone, as after the server's nsup pass
        return None
    return record


def _read(msg: AsMsg, record: Record | None) -> Outcome:
    if record is None:
        return Outcome(ResultCode.KEY_NOT_FOUND)
    outcome = Outcome(ResultCode.OK, record.generation, record.void_time)
    if msg.info1 & Info1.GET_NOBINDATA:
        return outcome
    if msg.info1 & Info1.GET_ALL or not msg.ops:
        outcome.bins = list(record.bins.items())  # type: ignore[arg-type]
        return outcome
    for op in msg.ops:
        if op.op_type != OpType.READ:
            return Outcome(ResultCode.UNSUPPORTED_FEATURE)
        if op.name in record.bins:
            outcome.bins.append((op.name, record.bins[op.name]))  # type: ignore[arg-type]
    return outcome


def _combine(op_type: int, current: BinValue, operand: BinValue) -> BinValue:
    """The new value of a bin after an increment, append or prepend."""
    if op_type == OpType.INCR:
        if isinstance(operand, bool) or not isinstance(operand, int | float):
            raise _Failed(ResultCode.PARAMETER)
        if current is None:
            return operand
        if isinstance(current, bool) or type(current) is not type(operand):
            raise _Failed(ResultCode.BIN_TYPE)
        return current + operand
    if not isinstance(operand, str | bytes):
        raise _Failed(ResultCode.PARAMETER)
    if current is None:
        return operand
    if type(current) is not type(operand):
        raise _Failed(ResultCode.BIN_TYPE)
    return current + operand if op_type == OpType.APPEND else operand + current  # type: ignore[operator]


def _write(msg: AsMsg, records: dict[tuple[str, bytes], Record], key: tuple[str, bytes], now: int) -> Outcome:
    record = _live(records, key, now)
    generation = record.generation if record else 0
    if msg.info2 & Info2.GENERATION and msg.generation != generation:
        return Outcome(ResultCode.GENERATION)
    if msg.info2 & Info2.GENERATION_GT and msg.generation <= generation:
        return Outcome(ResultCode.GENERATION)
    if msg.info2 & Info2.DELETE:
        if record is None:
            return Outcome(ResultCode.KEY_NOT_FOUND)
        del records[key]
        return Outcome(ResultCode.OK)
    if msg.info2 & Info2.CREATE_ONLY and record is not None:
        return Outcome(ResultCode.KEY_EXISTS)
    if msg.info3 & (Info3.UPDATE_ONLY | Info3.REPLACE_ONLY) and record is None:
        return Outcome(ResultCode.KEY_NOT_FOUND)
    replace = msg.info3 & (Info3.CREATE_OR_REPLACE | Info3.REPLACE_ONLY)
    bins: dict[str, BinValue] = {} if replace or record is None else dict(record.bins)  # type: ignore[arg-type]
    respond_all = bool(msg.info2 & Info2.RESPOND_ALL_OPS)
    results: list[tuple[str, BinValue]] = []
    deleted = False
    try:
        for op in msg.ops:
            if op.op_type == OpType.READ:
                if not op.name:
                    results.extend(bins.items())
                elif op.name in bins or respond_all:
                    results.append((op.name, bins.get(op.name)))
                continue
            if op.op_type == OpType.WRITE:
                value = op.value
                if value is None:
                    bins.pop(op.name, None)
                else:
                    bins[op.name] = value
            elif op.op_type in (OpType.INCR, OpType.APPEND, OpType.PREPEND):
                bins[op.name] = _combine(op.op_type, bins.get(op.name), op.value)
            elif op.op_type == OpType.TOUCH:
                if record is None:
                    return Outcome(ResultCode.KEY_NOT_FOUND)
            elif op.op_type == OpType.DELETE:
                bins, deleted = {}, True
            else:
                return Outcome(ResultCode.UNSUPPORTED_FEATURE)
            if respond_all:
                results.append((op.name, None))
    except _Failed as failure:
        return Outcome(failure.result)
    if not bins:  # a record without bins does not exist
        records.pop(key, None)
        return Outcome(ResultCode.OK, bins=results) if deleted or record else Outcome(ResultCode.OK)
    new_generation = generation % 0xFFFF + 1
    void_time = _void_time(msg.record_ttl, now, record.void_time if record else None)
    records[key] = Record(bins=dict(bins), generation=new_generation, void_time=void_time)
    return Outcome(ResultCode.OK, new_generation, void_time, results)


def execute(msg: AsMsg, records: dict[tuple[str, bytes], Record], key: tuple[str, bytes]) -> Outcome:
    """Apply one single-record operation to the store and say what the client gets back."""
    now = _now()
    if msg.info2 & Info2.WRITE:
        return _write(msg, records, key, now)
    return _read(msg, _live(records, key, now))


def _count(traffic: NamespaceTraffic, msg: AsMsg, result: int) -> OpKind:
    """Record an operation's outcome in the node's counters; returns which histogram it belongs to."""
    if not msg.info2 & Info2.WRITE:
        if result == ResultCode.OK:
            traffic.read_success += 1
        elif result == ResultCode.KEY_NOT_FOUND:
            traffic.read_not_found += 1
        elif result == ResultCode.TIMEOUT:
            traffic.read_timeout += 1
        else:
            traffic.read_error += 1
        kind = OpKind.READ
    else:
        is_delete = msg.info2 & Info2.DELETE or any(op.op_type == OpType.DELETE for op in msg.ops)
        if result == ResultCode.OK:
            if is_delete:
                traffic.delete_success += 1
            else:
                traffic.write_success += 1
        elif result == ResultCode.KEY_NOT_FOUND and is_delete:
            traffic.delete_not_found += 1
        elif result == ResultCode.TIMEOUT:
            traffic.write_timeout += 1
        else:
            traffic.write_error += 1
        kind = OpKind.WRITE
    second = int(time.monotonic())
    rows = traffic.per_second
    if not rows or rows[-1][0] != second:
        rows.append([second, 0, 0])
    rows[-1][1 if kind is OpKind.READ else 2] += 1
    return kind


class NodeServer:
    """The TCP endpoint of one node, listening only while :meth:`open`.

    It accepts connections itself rather than through ``asyncio.start_server``: there, a connection accepted
    in the same loop pass as ``Server.close()`` is left open and never served, so a stopped node could keep
    a client hanging. Here every accepted socket is tracked at once and :meth:`close` closes them all."""

    def __init__(self, view: NodeView) -> None:
        self.view = view
        self._listener: socket.socket | None = None
        self._connections: dict[asyncio.Task[None], socket.socket] = {}
        self._rng = view.model.rng(self._stream_name())

    def _stream_name(self) -> str:
        cluster = self.view.cluster
        return f"{cluster.k8s_namespace}/{cluster.name}/{self.view.node.pod_name}"

    async def open(self) -> None:
        if self._listener is not None:
            return
        # A started server counts from zero and replays its latency stream, like a restarted asd.
        self.view.node.traffic = NodeTraffic()
        self._rng = self.view.model.rng(self._stream_name())
        listener = socket.create_server(("127.0.0.1", self.view.node.port), backlog=128)
        listener.setblocking(False)
        asyncio.get_running_loop().add_reader(listener.fileno(), self._accept)
        self._listener = listener

    async def close(self) -> None:
        """Stop listening and drop every open connection, so clients see a dead node."""
        listener, self._listener = self._listener, None
        if listener is None:
            return
        asyncio.get_running_loop().remove_reader(listener.fileno())
        listener.close()  # connections still in the backlog are reset by the kernel
        connections = list(self._connections.items())
        for task, _ in connections:
            task.cancel()  # also ends replies still waiting out their modelled latency
        await asyncio.gather(*(task for task, _ in connections), return_exceptions=True)
        for _, conn in connections:
            conn.close()  # a task cancelled before it ever ran could not close its own socket

    def _accept(self) -> None:
        while self._listener is not None:
            try:
                conn, _ = self._listener.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:  # out of descriptors, say: the client sees a refused or reset connection
                log.warning("node %s: accept failed: %s", self._stream_name(), exc)
                return
            conn.setblocking(False)
            self._connections[asyncio.get_running_loop().create_task(self._serve(conn))] = conn

    async def _serve(self, conn: socket.socket) -> None:
        traffic = self.view.node.traffic
        traffic.client_connections += 1
        writer: asyncio.StreamWriter | None = None
        try:
            reader, writer = await asyncio.open_connection(sock=conn)
            while True:
                message_type, size = decode_proto_header(await reader.readexactly(PROTO_HEADER_SIZE))
                body = await reader.readexactly(size)
                writer.write(await self._dispatch(message_type, body))
                if writer.transport.get_write_buffer_size() > _WRITE_BUFFER_HIGH:
                    await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass  # the client went away
        except ProtocolError as exc:
            log.info("node %s: closing a connection after a malformed message: %s", self._stream_name(), exc)
        except Exception:
            log.exception("node %s: closing a connection after an unexpected error", self._stream_name())
        finally:
            traffic.client_connections -= 1
            self._connections.pop(asyncio.current_task(), None)  # type: ignore[arg-type]
            if writer is not None:
                writer.transport.abort()
            else:
                conn.close()

    async def _dispatch(self, message_type: int, body: bytes) -> bytes:
        if message_type == MessageType.INFO:
            return encode_proto(MessageType.INFO, handle_info(self.view, body))
        if message_type == MessageType.MESSAGE:
            return await self._data(parse_as_msg(body))
        if message_type == MessageType.COMPRESSED:
            inner_type, inner = decompress(body)
            if inner_type != MessageType.MESSAGE:
                raise ProtocolError(f"compressed message of type {inner_type}")
            return await self._data(parse_as_msg(inner))  # replies go back uncompressed, which clients accept
        if message_type == MessageType.ADMIN:
            return encode_admin_reply(ResultCode.SECURITY_NOT_ENABLED)  # no security: login is unnecessary
        raise ProtocolError(f"unknown message type {message_type}")

    async def _data(self, msg: AsMsg) -> bytes:
        view = self.view
        digest = msg.fields.get(FieldType.DIGEST)
        if digest is None:  # batch, scan or query: not emulated
            return encode_reply(ResultCode.UNSUPPORTED_FEATURE, info3=Info3.LAST)
        ns = msg.fields.get(FieldType.NAMESPACE, b"").decode("utf-8", "replace")
        if view.namespace(ns) is None:
            return encode_reply(ResultCode.NAMESPACE_NOT_FOUND)
        if len(digest) != DIGEST_SIZE:
            return encode_reply(ResultCode.PARAMETER)
        op = OpKind.WRITE if msg.info2 & Info2.WRITE else OpKind.READ
        distribution = view.model.distribution(
            view.node.version, view.cluster.spec.labels.topology, op, view.fleet.faults
        )
        delay_ms = distribution.sample(self._rng) * view.model.delay_scale
        if 0 < msg.transaction_ttl <= delay_ms:
            # Slower than the client's deadline: the server gives up on it unapplied.
            await precise_sleep(msg.transaction_ttl / 1000)
            outcome = Outcome(ResultCode.TIMEOUT)
        else:
            outcome = execute(msg, view.cluster.records, (ns, digest))
            await precise_sleep(delay_ms / 1000)
        _count(view.traffic(ns), msg, outcome.result)
        return encode_reply(outcome.result, outcome.generation, outcome.void_time, outcome.bins)


class ClusterEndpoints:
    """Every node endpoint of one cluster, kept open exactly while its node is up via the cluster's
    ``on_node_up``/``on_node_down`` hooks. Use :meth:`attach` to create and :meth:`detach` to tear down."""

    def __init__(self, cluster: ClusterRuntime, fleet: FleetRuntime, model: LatencyModel) -> None:
        self.cluster, self.fleet, self.model = cluster, fleet, model
        self.servers: dict[str, NodeServer] = {}

    @classmethod
    async def attach(cls, cluster: ClusterRuntime, fleet: FleetRuntime, model: LatencyModel) -> ClusterEndpoints:
        endpoints = cls(cluster, fleet, model)
        cluster.on_node_up.append(endpoints._node_up)
        cluster.on_node_down.append(endpoints._node_down)
        for node in cluster.up_nodes():
            await endpoints._node_up(cluster, node)
        return endpoints

    def server(self, node: NodeRuntime) -> NodeServer:
        if node.pod_name not in self.servers:  # nodes added by a scale-up get an endpoint on first start
            self.servers[node.pod_name] = NodeServer(NodeView(self.cluster, node, self.fleet, self.model))
        return self.servers[node.pod_name]

    async def _node_up(self, cluster: ClusterRuntime, node: NodeRuntime) -> None:
        await self.server(node).open()

    async def _node_down(self, cluster: ClusterRuntime, node: NodeRuntime) -> None:
        await self.server(node).close()

    async def detach(self) -> None:
        self.cluster.on_node_up.remove(self._node_up)
        self.cluster.on_node_down.remove(self._node_down)
        for server in self.servers.values():
            await server.close()


async def attach_fleet(fleet: FleetRuntime, model: LatencyModel) -> list[ClusterEndpoints]:
    """Endpoints for every cluster of the fleet (detach each to tear down)."""
    return [await ClusterEndpoints.attach(cluster, fleet, model) for cluster in fleet.clusters.values()]
