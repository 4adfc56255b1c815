"""The o2c command: argument parsing, keys printed last, the dev server's command line."""

from __future__ import annotations

from pathlib import Path

import pytest

import cli
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
