"""Aerospike wire format: the 8-byte proto header, AS_MSG (header, fields, ops) and bin particles.

Parsing is hand-written on ``struct`` rather than pydantic because it runs once per operation on the hot
path; every length is bounds-checked and anything malformed raises :class:`ProtocolError`, which costs the
sender its connection and nothing else.
"""

from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass, field
from enum import IntEnum

PROTO_VERSION = 2
PROTO_HEADER_SIZE = 8
MSG_HEADER_SIZE = 22
MAX_PROTO_SIZE = 128 * 1024 * 1024
DIGEST_SIZE = 20

_PROTO = struct.Struct(">Q")
_MSG_HEADER = struct.Struct(">BBBBBBIIIHH")
_FIELD_HEADER = struct.Struct(">IB")
_OP_HEADER = struct.Struct(">IBBBB")
_INT = struct.Struct(">q")
_FLOAT = struct.Struct(">d")


class ProtocolError(ValueError):
    """A message that does not follow the wire format; the connection that sent it is closed."""


class MessageType(IntEnum):
    INFO = 1
    ADMIN = 2
    MESSAGE = 3
    COMPRESSED = 4


class ResultCode(IntEnum):
    """Server result codes the twin answers with (as_status.h); clients map them to their exceptions."""

    OK = 0
    KEY_NOT_FOUND = 2
    GENERATION = 3
    PARAMETER = 4
    KEY_EXISTS = 5
    TIMEOUT = 9
    BIN_TYPE = 12
    UNSUPPORTED_FEATURE = 16
    NAMESPACE_NOT_FOUND = 20
    SECURITY_NOT_ENABLED = 52


# Header flag bits, plain ints rather than IntFlag: they are tested on every operation and enum
# arithmetic costs a fifth of a get.
class Info1:
    READ = 1
    GET_ALL = 2
    GET_NOBINDATA = 32


class Info2:
    WRITE = 1
    DELETE = 2
    GENERATION = 4
    GENERATION_GT = 8
    CREATE_ONLY = 32
    RESPOND_ALL_OPS = 128


class Info3:
    LAST = 1
    UPDATE_ONLY = 8
    CREATE_OR_REPLACE = 16
    REPLACE_ONLY = 32


class FieldType(IntEnum):
    NAMESPACE = 0
    SET = 1
    DIGEST = 4


class OpType(IntEnum):
    READ = 1
    WRITE = 2
    INCR = 5
    APPEND = 9
    PREPEND = 10
    TOUCH = 11
    DELETE = 14


class ParticleType(IntEnum):
    NULL = 0
    INTEGER = 1
    FLOAT = 2
    STRING = 3
    BLOB = 4
    BOOL = 17  # maps (19), lists (20) and the rest are kept as OpaqueParticle


@dataclass(frozen=True, slots=True)
class OpaqueParticle:
    """A bin value the twin stores without interpreting (maps, lists, GeoJSON, HLL...), sent back as is."""

    particle_type: int
    data: bytes


BinValue = int | float | str | bytes | bool | OpaqueParticle | None


@dataclass(slots=True)
class Op:
    op_type: int
    particle_type: int
    name: str
    data: bytes

    @property
    def value(self) -> BinValue:
        return decode_particle(self.particle_type, self.data)


@dataclass(slots=True)
class AsMsg:
    info1: int
    info2: int
    info3: int
    result_code: int = 0
    generation: int = 0
    record_ttl: int = 0
    transaction_ttl: int = 0
    fields: dict[int, bytes] = field(default_factory=dict)
    ops: list[Op] = field(default_factory=list)


def encode_proto(message_type: MessageType, body: bytes) -> bytes:
    return _PROTO.pack((PROTO_VERSION << 56) | (message_type << 48) | len(body)) + body


def decode_proto_header(header: bytes) -> tuple[int, int]:
    """(message type, body size) of an 8-byte proto header."""
    (word,) = _PROTO.unpack(header)
    version, message_type, size = word >> 56, (word >> 48) & 0xFF, word & 0xFFFF_FFFF_FFFF
    if version != PROTO_VERSION:
        raise ProtocolError(f"proto version {version}, expected {PROTO_VERSION}")
    if size > MAX_PROTO_SIZE:
        raise ProtocolError(f"proto size {size} exceeds {MAX_PROTO_SIZE}")
    return message_type, size


def decompress(body: bytes) -> tuple[int, bytes]:
    """Unwrap a type-4 body (8-byte uncompressed size + zlib of a whole proto message)."""
    if len(body) < 8:
        raise ProtocolError("compressed message shorter than its size prefix")
    inflater = zlib.decompressobj()
    try:
        inner = inflater.decompress(body[8:], PROTO_HEADER_SIZE + MAX_PROTO_SIZE)  # bounded: no zip bombs
    except zlib.error as exc:
        raise ProtocolError(f"bad zlib payload: {exc}") from exc
    if inflater.unconsumed_tail:
        raise ProtocolError("compressed payload inflates beyond the maximum message size")
    if len(inner) < PROTO_HEADER_SIZE:
        raise ProtocolError("compressed payload shorter than a proto header")
    message_type, size = decode_proto_header(inner[:PROTO_HEADER_SIZE])
    if size != len(inner) - PROTO_HEADER_SIZE or message_type == MessageType.COMPRESSED:
        raise ProtocolError("compressed payload is not exactly one uncompressed message")
    return message_type, inner[PROTO_HEADER_SIZE:]


def parse_as_msg(body: bytes) -> AsMsg:
    if len(body) < MSG_HEADER_SIZE:
        raise ProtocolError(f"AS_MSG of {len(body)} bytes is shorter than its header")
    header_size, info1, info2, info3, _info4, result, gen, ttl, txn_ttl, n_fields, n_ops = _MSG_HEADER.unpack_from(body)
    if header_size != MSG_HEADER_SIZE:
        raise ProtocolError(f"AS_MSG header size {header_size}, expected {MSG_HEADER_SIZE}")
    msg = AsMsg(info1, info2, info3, result, gen, ttl, txn_ttl)
    pos, end = MSG_HEADER_SIZE, len(body)
    for _ in range(n_fields):
        if pos + 5 > end:
            raise ProtocolError("truncated field header")
        size, field_type = _FIELD_HEADER.unpack_from(body, pos)
        if size < 1 or pos + 4 + size > end:
            raise ProtocolError(f"field size {size} overruns the message")
        msg.fields[field_type] = body[pos + 5 : pos + 4 + size]
        pos += 4 + size
    for _ in range(n_ops):
        if pos + 8 > end:
            raise ProtocolError("truncated op header")
        size, op_type, particle_type, _version, name_size = _OP_HEADER.unpack_from(body, pos)
        if size < 4 + name_size or pos + 4 + size > end:
            raise ProtocolError(f"op size {size} overruns the message")
        name_end = pos + 8 + name_size
        try:
            name = body[pos + 8 : name_end].decode()
        except UnicodeDecodeError as exc:
            raise ProtocolError("bin name is not UTF-8") from exc
        msg.ops.append(Op(op_type, particle_type, name, body[name_end : pos + 4 + size]))
        pos += 4 + size
    if pos != end:
        raise ProtocolError(f"{end - pos} trailing bytes after the last op")
    return msg


def decode_particle(particle_type: int, data: bytes) -> BinValue:
    """Python value of a particle: int, float, str, bytes and bool natively, anything else opaque."""
    try:
        if particle_type == ParticleType.INTEGER:
            return _INT.unpack(data)[0]
        if particle_type == ParticleType.STRING:
            return data.decode()
        if particle_type == ParticleType.BLOB:
            return bytes(data)
        if particle_type == ParticleType.FLOAT:
            return _FLOAT.unpack(data)[0]
        if particle_type == ParticleType.BOOL:
            if len(data) != 1:
                raise ProtocolError("bool particle must be one byte")
            return data != b"\x00"
    except (struct.error, UnicodeDecodeError) as exc:
        raise ProtocolError(f"bad particle of type {particle_type}: {exc}") from exc
    if particle_type == ParticleType.NULL:
        return None
    return OpaqueParticle(particle_type, bytes(data))


def encode_particle(value: BinValue) -> tuple[int, bytes]:
    # bool before int: bool is a subclass of int.
    if value is None:
        return ParticleType.NULL, b""
    if isinstance(value, bool):
        return ParticleType.BOOL, b"\x01" if value else b"\x00"
    if isinstance(value, int):
        return ParticleType.INTEGER, _INT.pack(value)
    if isinstance(value, float):
        return ParticleType.FLOAT, _FLOAT.pack(value)
    if isinstance(value, str):
        return ParticleType.STRING, value.encode()
    if isinstance(value, bytes):
        return ParticleType.BLOB, value
    return value.particle_type, value.data


def encode_op(op_type: int, name: str, value: BinValue) -> bytes:
    particle_type, data = encode_particle(value)
    raw_name = name.encode()
    return _OP_HEADER.pack(4 + len(raw_name) + len(data), op_type, particle_type, 0, len(raw_name)) + (raw_name + data)


def encode_reply(
    result_code: int,
    generation: int = 0,
    void_time: int = 0,
    bins: list[tuple[str, BinValue]] | None = None,
    info3: int = 0,
) -> bytes:
    """A whole type-3 reply: the header carries result, generation and void time; bins come back as ops."""
    ops = [encode_op(OpType.READ, name, value) for name, value in bins or ()]
    header = _MSG_HEADER.pack(MSG_HEADER_SIZE, 0, 0, info3, 0, result_code, generation, void_time, 0, 0, len(ops))
    return encode_proto(MessageType.MESSAGE, header + b"".join(ops))


def encode_request(msg: AsMsg) -> bytes:
    """A whole type-3 request as a client sends it (tests and the benchmark drive nodes with it)."""
    fields = b"".join(_FIELD_HEADER.pack(len(data) + 1, ftype) + data for ftype, data in msg.fields.items())
    ops = []
    for op in msg.ops:
        name = op.name.encode()
        ops.append(_OP_HEADER.pack(4 + len(name) + len(op.data), op.op_type, op.particle_type, 0, len(name)))
        ops.append(name + op.data)
    header = _MSG_HEADER.pack(
        MSG_HEADER_SIZE,
        msg.info1,
        msg.info2,
        msg.info3,
        0,
        msg.result_code,
        msg.generation,
        msg.record_ttl,
        msg.transaction_ttl,
        len(msg.fields),
        len(msg.ops),
    )
    return encode_proto(MessageType.MESSAGE, header + fields + b"".join(ops))


def encode_admin_reply(result_code: int) -> bytes:
    """An admin (type 2) reply with only a result code: the twin runs without security."""
    header = bytearray(16)
    header[1] = result_code
    return encode_proto(MessageType.ADMIN, bytes(header))
