"""``o2c dev`` (what ``make run`` starts): the whole stack comes up with the workers asked
for, answers, stops cleanly on SIGTERM and resumes on the same data with the same admin
key."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from tests.integration.conftest import free_port

pytestmark = pytest.mark.slow


def _start(env: dict[str, str]) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "cli", "dev"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def _wait_banner(proc: subprocess.Popen[str], timeout: float = 120) -> str:
    assert proc.stdout is not None
    lines: list[str] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line and proc.poll() is not None:
            break
        lines.append(line)
        if "Ctrl-C stops everything." in line:
            return "".join(lines)
    raise AssertionError("no banner:\n" + "".join(lines))


def _children(pid: int) -> list[int]:
    out = subprocess.run(
        ["ps", "-o", "pid=", "--ppid", str(pid)], capture_output=True, text=True
    ).stdout
    return [int(x) for x in out.split()]


def test_dev_stack_starts_serves_stops_and_resumes_with_the_same_key(tmp_path: Path) -> None:
    ports = {
        k: str(free_port())
        for k in ("O2C_API_PORT", "O2C_TEMPORAL_PORT", "O2C_TEMPORAL_UI_PORT", "O2C_SMTP_SINK_PORT")
    }
    env = {
        **os.environ,
        **ports,
        "O2C_DATA_DIR": str(tmp_path),
        "O2C_SANDBOX": "1",
        "O2C_WORKER_PROCESSES": "2",
    }
    for var in ("O2C_ADMIN_KEY", "O2C_TEMPORAL_ADDRESS", "O2C_DATABASE_URL", "O2C_SMTP_URL"):
        env.pop(var, None)
    api = f"http://127.0.0.1:{ports['O2C_API_PORT']}"
    keys = []
    for _ in range(2):
        proc = _start(env)
        children: list[int] = []
        try:
            banner = _wait_banner(proc)
            key = next(x.split()[-1] for x in banner.splitlines() if "admin key" in x)
            keys.append(key)
            assert f"{api}/console" in banner and f"{api}/docs" in banner
            assert httpx.get(f"{api}/readyz").json() == {"temporal": "ok", "database": "ok"}
            r = httpx.get(f"{api}/v1/customers", headers={"Authorization": f"Bearer {key}"})
            assert len(r.json()["data"]) == 3  # seeded once, not again on the second run
            children = _children(proc.pid)
            assert len(children) == 5  # temporal, smtp sink, two workers, api
            logs = tmp_path / "logs"
            assert (logs / "worker.log").exists() and (logs / "worker-2.log").exists()
        finally:
            proc.send_signal(signal.SIGTERM)
            code = proc.wait(timeout=60)
        assert code == 0
        assert all(
            subprocess.run(["kill", "-0", str(c)], capture_output=True).returncode != 0
            for c in children
        )
    assert keys[0] == keys[1] == (tmp_path / "admin_key").read_text().strip()
