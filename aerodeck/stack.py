"""`aerodeck up`: the embedded stack (Temporal dev server, fleet twin, Prometheus, worker) in one supervised
process tree.

Children run in their own sessions so a terminal Ctrl-C reaches only this supervisor, which then stops
them in reverse order; PR_SET_PDEATHSIG makes them die with it even if it is killed."""

from __future__ import annotations

import asyncio
import os
import shutil
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
from aerodeck.twin.server import TwinState
from aerodeck.upgrade import ChangeState

WORKER_READY_DEADLINE_S = 60.0
TWIN_READY_DEADLINE_S = 60.0
READY_LINE = "aerodeck is up; press Ctrl-C to stop"
DEMO_CLUSTER = ("aero-ads", "ads-cache-1")
DEMO_TARGET = "8.1.2.0"
DEMO_REQUESTER = "demo-requester"
DEMO_GATE_SLACK_S = 120.0  # beyond the baseline validation, for preflight and a slow first workflow task


@dataclass
class StackOptions:
    twin: bool = True
    fleet: Path | None = None
    clusters: int | None = None
    time_scale: float | None = None
    kubeconfig: Path | None = None  # where the twin writes its kubeconfig
    prometheus_port: int = 0
    demo: bool = False


@dataclass
class Stack:
    settings: Settings
    options: StackOptions = field(default_factory=StackOptions)
    _dev_server: DevServer | None = field(default=None, init=False)
    _children: list[tuple[str, subprocess.Popen[bytes]]] = field(default_factory=list, init=False)
    _stop: threading.Event = field(default_factory=threading.Event, init=False)
    _env: dict[str, str] = field(default_factory=dict, init=False)
    urls: dict[str, str] = field(default_factory=dict, init=False)

    @property
    def data_dir(self) -> Path:
        return self.settings.data_dir

    def _spawn(self, name: str, argv: list[str]) -> subprocess.Popen[bytes]:
        proc = procs.spawn(argv, self._log(name), env=self._env)
        self._children.append((name, proc))
        return proc

    def _log(self, name: str) -> Path:
        return self.data_dir / "logs" / f"{name}.log"

    def start(self) -> None:
        progress(f"data dir {self.data_dir}")
        self._env = dict(os.environ)
        self._env.update(
            AERODECK_TEMPORAL_ADDRESS=f"127.0.0.1:{self.settings.dev_server_port}",
            AERODECK_TEMPORAL_NAMESPACE=self.settings.temporal_namespace,
            AERODECK_DATA_DIR=str(self.data_dir),
            AERODECK_TASK_QUEUE=self.settings.task_queue,
        )
        self._start_temporal()
        if self.options.twin:
            self._start_twin()
        self._start_worker()

    def _start_temporal(self) -> None:
        started = time.monotonic()
        progress("starting the Temporal dev server ...")
        self._dev_server = DevServer(
            self.data_dir,
            port=self.settings.dev_server_port,
            ui_port=self.settings.dev_ui_port,
            namespace=self.settings.temporal_namespace,
        )
        self._dev_server.start()
        progress(f"  Temporal ready at {self._dev_server.address} ({time.monotonic() - started:.1f} s)")
        self.urls["Temporal frontend"] = self._dev_server.address
        self.urls["Temporal Web UI"] = self._dev_server.ui_url

    def _start_twin(self) -> None:
        started = time.monotonic()
        progress("starting the fleet twin ...")
        state_file = self.data_dir / "twin" / "state.json"
        state_file.unlink(missing_ok=True)
        argv = [sys.executable, "-m", "aerodeck", "twin", "serve", "--state-file", str(state_file)]
        kubeconfig = self.options.kubeconfig or self.data_dir / "twin" / "kubeconfig"
        argv += ["--kubeconfig", str(kubeconfig)]
        if self.options.fleet:
            argv += ["--fleet", str(self.options.fleet)]
        if self.options.clusters:
            argv += ["--clusters", str(self.options.clusters)]
        if self.options.time_scale:
            argv += ["--time-scale", str(self.options.time_scale)]
        proc = self._spawn("twin", argv)
        state = self._await_twin(state_file, proc)
        progress(f"  twin ready: {state.clusters} clusters, {state.pods} pods ({time.monotonic() - started:.1f} s)")
        self.urls["Kubernetes API (twin)"] = state.api_url
        self.urls["kubeconfig"] = state.kubeconfig
        if self.settings.kubeconfig is None:
            # The engine acts on the twin unless a real cluster is configured.
            self._env["AERODECK_KUBECONFIG"] = state.kubeconfig
        else:
            progress(f"  the engine keeps AERODECK_KUBECONFIG={self.settings.kubeconfig} (a real cluster)")
        if state.prometheus_config:
            self._start_prometheus(Path(state.prometheus_config))

    def _await_twin(self, state_file: Path, proc: subprocess.Popen[bytes]) -> TwinState:
        end = time.monotonic() + TWIN_READY_DEADLINE_S
        while time.monotonic() < end and proc.poll() is None:
            if state_file.exists():
                return TwinState.model_validate_json(state_file.read_text())
            time.sleep(0.1)
        raise OperationFailed(
            f"the fleet twin did not start (log {self._log('twin')}: {procs.log_tail(self._log('twin'))})"
        )

    def _start_prometheus(self, config: Path) -> None:
        binary = shutil.which("prometheus")
        if binary is None:
            progress("  prometheus is not installed (apt-get install prometheus): validation reads node latencies")
            return
        port = self.options.prometheus_port or procs.free_port()
        procs.ensure_port_free(port, "Prometheus", "--prometheus-port")
        argv = [binary, f"--config.file={config}", f"--storage.tsdb.path={self.data_dir / 'prometheus'}",
                f"--web.listen-address=127.0.0.1:{port}", "--storage.tsdb.retention.time=1d"]  # fmt: skip
        proc = self._spawn("prometheus", argv)
        if not procs.wait_for_port(port, 30, proc):
            raise OperationFailed(f"Prometheus did not start (log {self._log('prometheus')})")
        url = f"http://127.0.0.1:{port}"
        self.urls["Prometheus"] = url
        if self.settings.prometheus_url is None:
            self._env["AERODECK_PROMETHEUS_URL"] = url

    def _start_worker(self) -> None:
        progress("starting the worker ...")
        self._spawn("worker", [sys.executable, "-m", "aerodeck", "worker"])
        assert self._dev_server is not None
        engine = self.settings.model_copy(update={"temporal_address": self._dev_server.address})
        result = asyncio.run(self_check(engine, "aerodeck up", deadline_s=WORKER_READY_DEADLINE_S))
        progress(f"  worker pid {result.worker.pid} answered on task queue {result.worker.task_queue!r}")

    def start_demo_change(self) -> tuple[str, ChangeState | None]:
        """The demo's change: a prod cluster to the newest version. Returns its id and the state it reached
        once preflight and the baseline validation are over (normally waiting at the start gate); None if
        that took longer than the deadline."""
        from aerodeck.changes import change_status, plan_upgrade, resolve_cluster, start_upgrade
        from aerodeck.errors import BadInput
        from aerodeck.settings import load_settings
        from aerodeck.temporal.client import connect
        from aerodeck.versions import AerospikeVersion

        overrides: dict[str, object] = {
            "temporal_address": self._env["AERODECK_TEMPORAL_ADDRESS"],
            "kubeconfig": self._env.get("AERODECK_KUBECONFIG", self.settings.kubeconfig),
        }
        if "Prometheus" in self.urls and "AERODECK_VALIDATION_SOURCE" not in os.environ:
            overrides["validation_source"] = "prometheus"  # server-side figures, free of the probe host's noise
        engine = load_settings(**overrides)
        namespace, name = DEMO_CLUSTER
        snapshot = resolve_cluster(engine, name, namespace)
        request = plan_upgrade(
            engine, snapshot, AerospikeVersion.parse(DEMO_TARGET), DEMO_REQUESTER, "demo: newest 8.1 on the ads cache"
        )

        workflow_id = f"change/{namespace}/{name}"

        async def start() -> ChangeState | None:
            client = await connect(engine)
            try:
                await start_upgrade(client, engine, request, snapshot)
                progress(f"  demo change {workflow_id}: preflight and a {engine.validation_duration_s:g} s "
                         "baseline validation ...")  # fmt: skip
            except BadInput as exc:  # a second `up` finds the first run's change still going
                progress(f"  {exc}")
            # Approving before the gate opens is refused, so only announce the change once it waits there.
            deadline = time.monotonic() + engine.validation_duration_s + DEMO_GATE_SLACK_S
            while time.monotonic() < deadline:
                state = (await change_status(client, workflow_id)).state
                if state is not ChangeState.PREFLIGHT:
                    return state
                await asyncio.sleep(0.5)
            return None

        return workflow_id, asyncio.run(start())

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


def run_up(settings: Settings, options: StackOptions) -> None:
    stack = Stack(settings, options)
    try:
        stack.start()
        if options.demo:
            workflow_id, state = stack.start_demo_change()
            stack.urls["Demo change"] = workflow_id
            if state is ChangeState.WAITING_APPROVAL:
                progress(f"  demo change {workflow_id} waits for approval; approve it with:")
                progress(f"    aerodeck approve {workflow_id} --as alice --role approver")
            else:
                where = state.value if state else "still in preflight"
                progress(f"  demo change {workflow_id} is {where}; see: aerodeck status {workflow_id}")
        progress("")
        for label, url in stack.urls.items():
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
