"""A real Prometheus for tests: Debian's server on a free port with a given scrape configuration, and a
small client for instant queries."""

from __future__ import annotations

import shutil
import subprocess
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from pydantic import BaseModel

from aerodeck.procs import free_port
from tests.waiting import wait_until


class Sample(BaseModel):
    metric: dict[str, str]
    value: tuple[float, str]


class _Data(BaseModel):
    resultType: str
    result: list[Sample]


class _QueryResponse(BaseModel):
    status: str
    data: _Data


class Prometheus:
    def __init__(self, url: str) -> None:
        self.url = url

    def query(self, expr: str) -> list[Sample]:
        url = f"{self.url}/api/v1/query?" + urllib.parse.urlencode({"query": expr})
        with urllib.request.urlopen(url, timeout=5) as response:
            return _QueryResponse.model_validate_json(response.read()).data.result

    def ready(self) -> bool:
        try:
            with urllib.request.urlopen(f"{self.url}/-/ready", timeout=2) as response:
                return bool(response.status == 200)
        except (urllib.error.URLError, ConnectionError):
            return False


@contextmanager
def running_prometheus(directory: Path, scrape_config: str) -> Iterator[Prometheus]:
    """Prometheus with ``scrape_config``, its data and log in ``directory``, stopped on exit."""
    binary = shutil.which("prometheus")
    if binary is None:
        pytest.fail("the prometheus server is not installed: apt-get install prometheus", pytrace=False)
    config = directory / "prometheus.yml"
    config.write_text(scrape_config)
    port = free_port()
    log_path = directory / "prometheus.log"
    with log_path.open("w") as log:
        process = subprocess.Popen(
            [binary, f"--config.file={config}", f"--storage.tsdb.path={directory / 'data'}",
             f"--web.listen-address=127.0.0.1:{port}", "--log.level=warn"],
            stdout=log,
            stderr=subprocess.STDOUT,
        )  # fmt: skip
        server = Prometheus(f"http://127.0.0.1:{port}")
        try:
            wait_until(lambda: server.ready() or process.poll() is not None, timeout=30, what="Prometheus ready")
            assert process.poll() is None, log_path.read_text()
            yield server
        finally:
            process.terminate()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
