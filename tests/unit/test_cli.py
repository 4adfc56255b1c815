"""The o2c command: argument parsing, keys printed last, the dev server's command line."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import time
from pathlib import Path

import pytest

import cli
import worker
from clients import SEARCH_ATTRIBUTES
from devrunner import admin_key, temporal_command
from settings import Settings
from systems.registry import build_systems


def test_keys_create_prints_a_working_key_as_the_last_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("O2C_DATA_DIR", str(tmp_path))
    assert cli.main(["keys", "create", "--role", "operator", "--name", "ops"]) == 0
    secret = capsys.readouterr().out.strip().splitlines()[-1]
    found = build_systems(Settings(data_dir=tmp_path)).erp.authenticate(secret)
    assert found is not None and found.role == "operator" and found.name == "ops"


def test_unknown_roles_and_commands_are_refused() -> None:
    with pytest.raises(SystemExit):
        cli.parser().parse_args(["keys", "create", "--role", "root", "--name", "x"])
    with pytest.raises(SystemExit):
        cli.parser().parse_args(["explode"])


def test_dev_server_runs_in_wal_mode_with_every_search_attribute(tmp_path: Path) -> None:
    cmd = " ".join(temporal_command(Settings(data_dir=tmp_path, temporal_port=7999)))
    assert "--sqlite-pragma journal_mode=wal" in cmd and "--sqlite-pragma synchronous=normal" in cmd
    assert "--port 7999" in cmd and str(tmp_path / "temporal.db") in cmd
    for name in SEARCH_ATTRIBUTES:
        assert f"--search-attribute {name}=" in cmd
    assert "O2cNeedsAttention=Bool" in cmd and "O2cAmount=Double" in cmd


def test_admin_key_is_generated_once_and_kept_private(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path)
    first = admin_key(settings)
    assert admin_key(settings) == first and first.startswith("o2c_admin_")
    assert (tmp_path / "admin_key").stat().st_mode & 0o777 == 0o600
    assert (
        admin_key(Settings(data_dir=tmp_path, admin_key="given-" + "k" * 30)) == "given-" + "k" * 30
    )


async def test_a_worker_stops_on_the_first_signal_and_exits_at_once_on_the_second(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    exits: list[int] = []
    monkeypatch.setattr(os, "_exit", exits.append)
    stop = worker.stop_on_signals()
    loop = asyncio.get_running_loop()
    try:
        os.kill(os.getpid(), signal.SIGTERM)
        await asyncio.wait_for(stop.wait(), 5)
        assert exits == []  # the first one asks for a graceful stop
        os.kill(os.getpid(), signal.SIGINT)
        for _ in range(100):
            if exits:
                break
            await asyncio.sleep(0.01)
        assert exits == [128 + signal.SIGINT]
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)


async def test_a_worker_stopped_while_still_connecting_just_ends(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path, temporal_address=f"127.0.0.1:{_closed_port()}")
    stop = asyncio.Event()
    asyncio.get_running_loop().call_later(0.3, stop.set)
    start = time.monotonic()
    await asyncio.wait_for(worker.run_worker(settings, stop), 10)  # it would retry 60 s
    assert time.monotonic() - start < 5


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])
