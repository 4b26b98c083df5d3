"""Loopback ports for the twin's nodes, taken below the kernel's ephemeral range.

A port found free by binding and closing can be taken again by any outgoing connection before the node
listens on it (hundreds of nodes make that likely), so node ports come from outside that range."""

from __future__ import annotations

import random
import socket
from pathlib import Path

_EPHEMERAL = Path("/proc/sys/net/ipv4/ip_local_port_range")
_LOWEST = 10_000


def _ephemeral_start() -> int:
    try:
        return int(_EPHEMERAL.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 32_768


class PortAllocator:
    """Hands out free loopback ports in a block below the ephemeral range, starting at a random offset so
    twins started side by side rarely probe the same ports."""

    def __init__(self, seed: int | None = None) -> None:
        self._end = _ephemeral_start()
        self._next = random.Random(seed).randrange(_LOWEST, max(_LOWEST + 1, self._end - 4_000))

    def __call__(self) -> int:
        while self._next < self._end:
            port, self._next = self._next, self._next + 1
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
                try:
                    probe.bind(("127.0.0.1", port))
                except OSError:
                    continue
            return port
        raise OSError(f"no free loopback port left below {self._end} for the twin's nodes")
