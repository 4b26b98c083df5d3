"""Run the real `aerodeck` command in subprocesses, as a user would."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from aerodeck.stack import READY_LINE

AERODECK = [sys.executable, "-m", "aerodeck"]


def clean_env(**overrides: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AERODECK_")}
    env["AERODECK_CONFIG"] = "/nonexistent/aerodeck.toml"
    env.update(overrides)
    return env


def run_cli(*args: str, env: dict[str, str] | None = None, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*AERODECK, *args], capture_output=True, text=True, env=env or clean_env(), timeout=timeout)


def child_pids(pid: int) -> set[int]:
    """Every descendant of ``pid`` (from /proc), so tests can prove nothing is left behind."""
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        parents[int(entry.name)] = int(stat.rsplit(")", 1)[1].split()[1])
    found: set[int] = set()
    frontier = {pid}
    while frontier:
        frontier = {child for child, parent in parents.items() if parent in frontier} - found
        found |= frontier
    return found


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    stat = Path(f"/proc/{pid}/stat")
    return stat.exists() and stat.read_text().rsplit(")", 1)[1].split()[0] != "Z"


@dataclass
class UpProcess:
    """`aerodeck up` running in the background, with the URLs it printed."""

    proc: subprocess.Popen[str]
    urls: dict[str, str]

    def stop(self, sig: signal.Signals = signal.SIGINT, timeout: float = 60) -> int:
        self.proc.send_signal(sig)
        return self.proc.wait(timeout=timeout)


def start_up(env: dict[str, str], *args: str, deadline_s: float = 120) -> UpProcess:
    """Start `aerodeck up` and read its stdout until it has printed every URL line."""
    proc = subprocess.Popen(
        [*AERODECK, "up", *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env
    )
    assert proc.stdout is not None
    urls: dict[str, str] = {}
    end = time.monotonic() + deadline_s
    while time.monotonic() < end:
        line = proc.stdout.readline()
        if not line:
            stderr = proc.stderr.read() if proc.stderr else ""
            raise AssertionError(f"aerodeck up exited with {proc.wait()}: {stderr}")
        if line.startswith(READY_LINE):
            return UpProcess(proc, urls)
        label, _, url = line.rstrip("\n").rpartition("  ")
        if label.strip():
            urls[label.strip()] = url.strip()
    proc.kill()
    raise AssertionError("aerodeck up printed no URLs before the deadline")
