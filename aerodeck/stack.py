"""`aerodeck up`: the embedded stack (Temporal dev server, worker, ...) in one supervised process tree.

Children run in their own sessions so a terminal Ctrl-C reaches only this supervisor, which then stops
them in reverse order; PR_SET_PDEATHSIG makes them die with it even if it is killed."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType

from aerodeck import procs
from aerodeck.cli.output import progress
from aerodeck.doctor import self_check
from aerodeck.errors import OperationFailed
from aerodeck.settings import Settings
from aerodeck.temporal.devserver import DevServer

WORKER_READY_DEADLINE_S = 60.0
READY_LINE = "aerodeck is up; press Ctrl-C to stop"


@dataclass
class Stack:
    settings: Settings
    _dev_server: DevServer | None = field(default=None, init=False)
    _children: list[tuple[str, subprocess.Popen[bytes]]] = field(default_factory=list, init=False)
    _stop: threading.Event = field(default_factory=threading.Event, init=False)

    @property
    def data_dir(self) -> Path:
        return self.settings.data_dir

    def _child_env(self) -> dict[str, str]:
        env = dict(os.environ)
        env["AERODECK_TEMPORAL_ADDRESS"] = f"127.0.0.1:{self.settings.dev_server_port}"
        env["AERODECK_TEMPORAL_NAMESPACE"] = self.settings.temporal_namespace
        env["AERODECK_DATA_DIR"] = str(self.data_dir)
        env["AERODECK_TASK_QUEUE"] = self.settings.task_queue
        return env

    def _spawn(self, name: str, argv: list[str]) -> subprocess.Popen[bytes]:
        proc = procs.spawn(argv, self.data_dir / "logs" / f"{name}.log", env=self._child_env())
        self._children.append((name, proc))
        return proc

    def start(self) -> None:
        started = time.monotonic()
        progress(f"data dir {self.data_dir}")
        progress("starting the Temporal dev server ...")
        self._dev_server = DevServer(
            self.data_dir,
            port=self.settings.dev_server_port,
            ui_port=self.settings.dev_ui_port,
            namespace=self.settings.temporal_namespace,
        )
        self._dev_server.start()
        progress(f"  Temporal ready at {self._dev_server.address} ({time.monotonic() - started:.1f} s)")

        progress("starting the worker ...")
        self._spawn("worker", [sys.executable, "-m", "aerodeck", "worker"])
        engine = self.settings.model_copy(update={"temporal_address": self._dev_server.address})
        result = asyncio.run(self_check(engine, "aerodeck up", deadline_s=WORKER_READY_DEADLINE_S))
        progress(f"  worker pid {result.worker.pid} answered on task queue {result.worker.task_queue!r}")

    def urls(self) -> dict[str, str]:
        assert self._dev_server is not None
        return {
            "Temporal frontend": self._dev_server.address,
            "Temporal Web UI": self._dev_server.ui_url,
        }

    def _request_stop(self, signum: int, frame: FrameType | None) -> None:
        self._stop.set()

    def wait(self) -> str | None:
        """Block until SIGINT/SIGTERM (None) or until a component dies (its name)."""
        signal.signal(signal.SIGINT, self._request_stop)
        signal.signal(signal.SIGTERM, self._request_stop)
        while not self._stop.wait(0.5):
            for name, proc in self._children:
                if proc.poll() is not None:
                    return name
            if self._dev_server is not None and not self._dev_server.alive():
                return "temporal"
        return None

    def stop(self) -> None:
        for _name, proc in reversed(self._children):
            procs.stop(proc)
        self._children.clear()
        if self._dev_server is not None:
            self._dev_server.stop()


def run_up(settings: Settings) -> None:
    stack = Stack(settings)
    try:
        stack.start()
        progress("")
        for label, url in stack.urls().items():
            print(f"{label:<22} {url}", flush=True)
        print(READY_LINE, flush=True)
        died = stack.wait()
        if died is not None:
            log = settings.data_dir / "logs" / f"{died}.log"
            raise OperationFailed(f"{died} stopped unexpectedly (log {log}: {procs.log_tail(log)})")
        progress("stopping ...")
    finally:
        stack.stop()
    progress("stopped")
