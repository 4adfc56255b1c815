"""The o2c command: argument parsing, keys printed last, the dev server's command line."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from temporalio.client import Client
from temporalio.service import RPCError, RPCStatusCode, TLSConfig

import cli
import clients
import devrunner
import worker
from clients import SEARCH_ATTRIBUTES
from devrunner import (
    Interrupted,
    Stack,
    admin_key,
    api_base,
    banner,
    check_free,
    check_reachable,
    check_temporal,
    start,
    temporal_command,
    wait_port,
    without_password,
)
from domain.errors import SystemUnavailable
from settings import Settings, stored_admin_key
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


def test_a_standalone_api_honours_the_admin_key_make_run_kept(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert stored_admin_key(Settings(data_dir=tmp_path)) is None  # nothing is generated
    kept = admin_key(Settings(data_dir=tmp_path))
    served: list[Settings] = []
    monkeypatch.setattr("uvicorn.run", lambda app, **_: None)
    monkeypatch.setattr("api.app.app_from_settings", lambda s: served.append(s))
    monkeypatch.setenv("O2C_DATA_DIR", str(tmp_path))
    monkeypatch.delenv("O2C_ADMIN_KEY", raising=False)
    assert cli.main(["api"]) == 0
    assert [s.admin_key for s in served] == [kept]
    given = "given-" + "k" * 30
    assert stored_admin_key(Settings(data_dir=tmp_path, admin_key=given)) == given


def test_an_unusable_data_folder_is_named_by_its_setting(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    occupied = tmp_path / "a-file"
    occupied.write_text("not a folder")
    monkeypatch.setenv("O2C_DATA_DIR", str(occupied / "o2c"))
    monkeypatch.delenv("O2C_DATABASE_URL", raising=False)
    assert cli.main(["seed"]) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"o2c: O2C_DATA_DIR={occupied / 'o2c'}: the data folder is unusable")
    assert "\n" not in err


def test_ctrl_c_in_a_one_off_command_ends_it_without_a_traceback(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    def interrupted(_: Settings) -> int:
        raise KeyboardInterrupt

    monkeypatch.setattr(cli, "_seed", interrupted)
    assert cli.main(["seed"]) == 130
    assert capsys.readouterr().err == "o2c: interrupted\n"


def test_every_command_explains_itself_and_the_settings_it_reads(
    capsys: pytest.CaptureFixture[str],
) -> None:
    expected = {
        "dev": "O2C_DATA_DIR",
        "worker": "O2C_TEMPORAL_ADDRESS",
        "api": "O2C_ADMIN_KEY",
        "seed": "O2C_DATABASE_URL",
        "smtp-sink": "O2C_SMTP_SINK_PORT",
    }
    for command, setting in expected.items():
        with pytest.raises(SystemExit):
            cli.main([command, "--help"])
        shown = " ".join(capsys.readouterr().out.split())
        assert setting in shown and "the README lists them all" in shown, command
    with pytest.raises(SystemExit):
        cli.main(["keys", "create", "--help"])
    assert "last line of standard output" in " ".join(capsys.readouterr().out.split())


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


def test_bad_settings_and_key_names_get_one_clear_line(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("O2C_API_PORT", "abc")
    assert cli.main(["seed"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("o2c: O2C_API_PORT:") and "Traceback" not in err
    monkeypatch.delenv("O2C_API_PORT")
    with pytest.raises(SystemExit):
        cli.parser().parse_args(["keys", "create", "--role", "admin", "--name", "  "])
    assert "a key needs a name" in capsys.readouterr().err
    monkeypatch.setenv("O2C_DATABASE_URL", "postgresql+psycopg://o2c@127.0.0.1:1/o2c")
    assert cli.main(["keys", "create", "--role", "admin", "--name", "ci"]) == 1
    assert capsys.readouterr().err.startswith("o2c: the database is unreachable")


def test_the_dev_server_gets_the_namespace_and_links_follow_the_settings(tmp_path: Path) -> None:
    cmd = temporal_command(Settings(data_dir=tmp_path, temporal_namespace="o2c"))
    assert cmd[cmd.index("--namespace") + 1] == "o2c"
    assert "--namespace" not in temporal_command(Settings(data_dir=tmp_path))
    assert Settings(temporal_ui_port=9000).temporal_ui == "http://127.0.0.1:9000"
    assert Settings(temporal_address="temporal:7233").temporal_ui is None
    given = Settings(temporal_address="t:7233", temporal_ui_url="https://ui.example/")
    assert given.temporal_ui == "https://ui.example"
    assert api_base(Settings(api_host="0.0.0.0", api_port=81)) == "http://127.0.0.1:81"
    assert api_base(Settings(api_host="10.1.2.3", api_port=81)) == "http://10.1.2.3:81"
    assert api_base(Settings(api_host="::1", api_port=81)) == "http://[::1]:81"


def test_the_dev_stack_refuses_taken_ports_and_a_silent_temporal_before_starting(
    tmp_path: Path,
) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        settings = Settings(data_dir=tmp_path, smtp_sink_port=port, temporal_address="x:1")
        stack = Stack(settings)
        with pytest.raises(RuntimeError, match="O2C_SMTP_SINK_PORT"):
            start(stack, "key")
        assert stack.children == []
        with pytest.raises(RuntimeError, match=f"127.0.0.1:{port} is not free"):
            check_free("127.0.0.1", port, "O2C_API_PORT")
    started = time.monotonic()
    with pytest.raises(RuntimeError, match="O2C_TEMPORAL_ADDRESS 127.0.0.1:1 does not answer"):
        check_reachable("127.0.0.1:1")
    assert time.monotonic() - started < 5


def test_a_temporal_address_that_answers_as_something_else_is_refused_at_once(
    tmp_path: Path,
) -> None:
    import http.server
    import threading

    server = http.server.HTTPServer(("127.0.0.1", 0), http.server.BaseHTTPRequestHandler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    address = f"127.0.0.1:{server.server_address[1]}"
    try:
        started = time.monotonic()
        with pytest.raises(RuntimeError) as refused:
            check_temporal(Settings(data_dir=tmp_path, temporal_address=address))
        assert time.monotonic() - started < 10
    finally:
        server.shutdown()
    message = str(refused.value)
    assert message.startswith(f"O2C_TEMPORAL_ADDRESS {address} answers but not as a Temporal")
    assert "\n" not in message


def test_a_stop_asked_for_while_the_stack_starts_ends_the_wait(tmp_path: Path) -> None:
    stack = Stack(Settings(data_dir=tmp_path))
    stack.stopping = True  # what SIGINT, SIGTERM or SIGHUP do
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        free = s.getsockname()[1]
    with pytest.raises(Interrupted):
        wait_port(free, stack)


def test_a_hang_up_stops_the_dev_stack(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """SIGHUP (a closed terminal) is handled like SIGTERM: run_dev installs it."""
    before = {n: signal.getsignal(n) for n in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)}
    started: list[Stack] = []

    def start_then_hang_up(stack: Stack, _key: str) -> None:
        started.append(stack)
        os.kill(os.getpid(), signal.SIGHUP)
        wait_port(1, stack, timeout=5)  # interrupted by the hang-up, not timed out

    monkeypatch.setattr(devrunner, "start", start_then_hang_up)
    try:
        assert devrunner.run_dev(Settings(data_dir=tmp_path)) == 0
    finally:
        for signum, handler in before.items():
            signal.signal(signum, signal.SIG_DFL if handler is None else handler)
    assert started and started[0].stopping


def test_the_apis_own_server_lines_come_in_o2c_log_format(tmp_path: Path) -> None:
    port = _closed_port()
    env = {
        **os.environ,
        "O2C_DATA_DIR": str(tmp_path),
        "O2C_API_PORT": str(port),
        "O2C_TEMPORAL_ADDRESS": f"127.0.0.1:{_closed_port()}",
    }
    log = tmp_path / "api.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "cli", "api"], env=env, stdout=out, stderr=subprocess.STDOUT
        )
        try:
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                with socket.socket() as s:
                    if s.connect_ex(("127.0.0.1", port)) == 0:
                        break
                time.sleep(0.1)
        finally:
            proc.send_signal(signal.SIGINT)
            proc.wait(timeout=30)
    lines = log.read_text().splitlines()
    started = [x for x in lines if "Uvicorn running on" in x]
    assert started and "[process=- customer=-]" in started[0], lines


@pytest.mark.parametrize(
    ("variable", "value", "says"),
    [
        ("O2C_DATABASE_URL", "garbage", "not a database URL"),
        ("O2C_DATABASE_URL", "mysql://u:p@h/db", "mysql is not supported"),
        ("O2C_SMTP_URL", "mail.example.com:25", "must be smtp://"),
        ("O2C_SMTP_URL", "smtp://mail.example.com:70000", "port must be a number"),
        ("O2C_SMTP_URL", "smtp://u:pa#ss@mail.example.com:587", "percent-encode"),
        ("O2C_LOG_LEVEL", "verbose", "must be one of DEBUG"),
        ("O2C_API_PORT", "99999", "less than or equal to 65535"),
        ("O2C_TEMPORAL_PORT", "0", "greater than or equal to 1"),
    ],
)
def test_settings_out_of_range_get_one_line_naming_the_variable(
    variable: str,
    value: str,
    says: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv(variable, value)
    assert cli.main(["seed"]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"o2c: {variable}: ") and says in err and err.count("\n") == 1


def test_the_worker_count_follows_the_cores_within_its_bounds(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(os, "cpu_count", lambda: 96)
    assert Settings().worker_processes == 64
    monkeypatch.setattr(os, "cpu_count", lambda: None)
    assert Settings().worker_processes == 1
    assert Settings(log_level="debug").log_level == "DEBUG"


async def test_a_secured_temporal_is_reached_with_tls_a_private_ca_and_an_api_key(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen: list[dict[str, Any]] = []

    async def connect(target: str, **kwargs: Any) -> None:
        seen.append({"target": target, **kwargs})

    monkeypatch.setattr(Client, "connect", connect)
    ca, cert, key = (tmp_path / name for name in ("ca.pem", "client.pem", "client.key"))
    for path in (ca, cert, key):
        path.write_bytes(f"-- {path.name} --".encode())
    plain = Settings(data_dir=tmp_path)
    await clients.connect_temporal("t:7233", access=clients.temporal_access(plain))
    assert (seen[-1]["tls"], seen[-1]["api_key"]) == (False, None)
    cloud = Settings(data_dir=tmp_path, temporal_api_key="cloud-key")
    await clients.connect_temporal("t:7233", access=clients.temporal_access(cloud))
    assert (seen[-1]["tls"], seen[-1]["api_key"]) == (True, "cloud-key")
    mtls = Settings(
        data_dir=tmp_path, temporal_tls_ca=ca, temporal_tls_cert=cert, temporal_tls_key=key
    )
    await clients.connect_temporal("t:7233", access=clients.temporal_access(mtls))
    tls = seen[-1]["tls"]
    assert isinstance(tls, TLSConfig)
    assert (tls.server_root_ca_cert, tls.client_cert, tls.client_private_key) == (
        b"-- ca.pem --",
        b"-- client.pem --",
        b"-- client.key --",
    )
    off = Settings(data_dir=tmp_path, temporal_api_key="k", temporal_tls=False)
    assert clients.temporal_access(off).tls is False
    with pytest.raises(ValueError, match="go together"):
        Settings(data_dir=tmp_path, temporal_tls_cert=cert)


async def test_a_namespace_o2c_may_not_change_is_left_to_its_operators(
    caplog: pytest.LogCaptureFixture,
) -> None:
    class Operator:
        def __init__(self, status: RPCStatusCode) -> None:
            self.status = status

        async def list_search_attributes(self, request: Any) -> Any:
            raise RPCError("refused", self.status, b"")

    def client(status: RPCStatusCode) -> Any:
        return type("C", (), {"operator_service": Operator(status)})()

    with caplog.at_level("WARNING", logger="o2c.temporal"):
        await clients.prepare_namespace(client(RPCStatusCode.PERMISSION_DENIED), "o2c", "t:1")
    assert "cannot check o2c's search attributes" in caplog.text
    with pytest.raises(SystemUnavailable, match="namespace o2c does not exist at t:1"):
        await clients.prepare_namespace(client(RPCStatusCode.NOT_FOUND), "o2c", "t:1")
    with pytest.raises(SystemUnavailable, match="t:1: refused"):
        await clients.prepare_namespace(client(RPCStatusCode.INTERNAL), "o2c", "t:1")


def test_the_banner_shows_no_mail_password(tmp_path: Path) -> None:
    url = "smtp://mailuser:S3cret%40Pass@mail.example:2525"
    shown = banner(Settings(data_dir=tmp_path, smtp_url=url), "o2c_admin_x")
    assert "S3cret" not in shown
    assert "smtp://mailuser:***@mail.example:2525" in shown
    assert without_password("smtp://127.0.0.1:25") == "smtp://127.0.0.1:25"
