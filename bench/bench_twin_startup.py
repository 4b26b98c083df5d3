"""Fleet twin start-up time and resident memory for a large fleet, as `aerodeck twin serve` runs it.

Each size is started as its own process (what users run) and timed until it has published its state file;
memory is that process's VmRSS once ready. The baseline is a one-cluster twin started in the same run, so
the figures that matter are the ratios (this machine is shared and noisy)."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SIZES = (1, 50, 200)
ROUNDS = 2


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS")


def start(clusters: int, directory: Path) -> tuple[float, float]:
    state = directory / "state.json"
    env = {k: v for k, v in os.environ.items() if not k.startswith("AERODECK_")} | {"AERODECK_DATA_DIR": str(directory)}
    began = time.perf_counter()
    proc = subprocess.Popen(
        [sys.executable, "-m", "aerodeck", "twin", "serve", "--clusters", str(clusters), "--state-file", str(state)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env,
    )  # fmt: skip
    try:
        while not state.exists():
            if proc.poll() is not None or time.perf_counter() - began > 300:
                raise RuntimeError(f"twin with {clusters} clusters did not start")
            time.sleep(0.01)
        elapsed = time.perf_counter() - began
        return elapsed, rss_mib(proc.pid)
    finally:
        proc.terminate()
        proc.wait(timeout=60)


def main() -> None:
    results: dict[int, list[tuple[float, float]]] = {size: [] for size in SIZES}
    for _ in range(ROUNDS):
        for size in SIZES:
            with tempfile.TemporaryDirectory() as tmp:
                results[size].append(start(size, Path(tmp)))
    base_time = min(t for t, _ in results[1])
    base_rss = min(m for _, m in results[1])
    header = ("clusters", "pods", "start s", "x base", "RSS MiB", "x base", "KiB/pod over base")
    print(" ".join(f"{h:>{w}}" for h, w in zip(header, (8, 5, 8, 7, 8, 7, 18), strict=True)))
    for size in SIZES:
        t = min(t for t, _ in results[size])
        m = min(m for _, m in results[size])
        per_pod = (m - base_rss) * 1024 / max(size * 3 - 3, 1)
        print(
            f"{size:>8} {size * 3:>5} {t:>8.2f} {t / base_time:>7.2f} {m:>8.1f} {m / base_rss:>7.2f} {per_pod:>18.1f}"
        )


if __name__ == "__main__":
    main()
