"""The fleet twin as users run it: `aerodeck twin serve` in a subprocess, reached over its real ports."""

from __future__ import annotations

import json
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kubernetes import client, config

from aerodeck.twin.server import TwinState

TEST_FLEET = Path(__file__).parent / "data" / "fleet.yaml"


@dataclass
class TwinProcess:
    proc: subprocess.Popen[bytes]
    state: TwinState
    log: Path

    @property
    def kubeconfig(self) -> Path:
        return Path(self.state.kubeconfig)

    def api(self) -> client.ApiClient:
        return config.new_client_from_config(config_file=str(self.kubeconfig))

    def cr(self, name: str, namespace: str = "aero-test") -> dict[str, Any]:
        obj: Any = client.CustomObjectsApi(self.api()).get_namespaced_custom_object(
            "asdb.aerospike.com", "v1", namespace, "aerospikeclusters", name
        )
        return dict(obj)

    def add_fault(self, fault: dict[str, Any]) -> None:
        request = urllib.request.Request(
            f"{self.state.control_url}/twin/v1/faults",
            data=json.dumps(fault).encode(),
            method="POST",
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=10) as response:
            assert response.status == 201

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=30)


def start_twin(directory: Path, fleet: Path = TEST_FLEET, deadline_s: float = 60) -> TwinProcess:
    directory.mkdir(parents=True, exist_ok=True)
    state_file, log = directory / "state.json", directory / "twin.log"
    argv = [sys.executable, "-m", "aerodeck", "twin", "serve", "--fleet", str(fleet),
            "--kubeconfig", str(directory / "kubeconfig"), "--state-file", str(state_file)]  # fmt: skip
    with log.open("wb") as out:
        proc = subprocess.Popen(
            argv, stdout=out, stderr=subprocess.STDOUT, env={**_env(), "AERODECK_DATA_DIR": str(directory)}
        )
    end = time.monotonic() + deadline_s
    while time.monotonic() < end:
        if proc.poll() is not None:
            raise AssertionError(f"twin exited with {proc.returncode}: {log.read_text()}")
        if state_file.exists():
            return TwinProcess(proc, TwinState.model_validate_json(state_file.read_text()), log)
        time.sleep(0.05)
    proc.kill()
    raise AssertionError(f"twin not ready within {deadline_s} s: {log.read_text()}")


def _env() -> dict[str, str]:
    import os

    return {k: v for k, v in os.environ.items() if not k.startswith("AERODECK_")}
