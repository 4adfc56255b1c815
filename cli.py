"""The ``o2c`` command: ``dev`` (the whole stack), ``worker``, ``api``, ``seed``,
``smtp-sink`` and ``keys create``."""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys
from collections.abc import Coroutine, Sequence
from pathlib import Path
from typing import Any, TypeVar

from pydantic import ValidationError
from sqlalchemy.exc import OperationalError

from domain.errors import SystemUnavailable
from settings import Settings, stored_admin_key

T = TypeVar("T")


def run_async(main: Coroutine[Any, Any, T]) -> T:
    """Run ``main`` on uvloop where it is installed (the worker spends about a tenth less
    CPU per order than on the stock event loop; uvicorn picks it for the API by itself)."""
    try:
        import uvloop
    except ImportError:  # Windows
        return asyncio.run(main)
    return uvloop.run(main)


def _worker(settings: Settings) -> int:
    from telemetry import setup_telemetry
    from worker import run_worker

    setup_telemetry(settings, "o2c-worker")
    try:
        run_async(run_worker(settings))  # stops gracefully on SIGINT/SIGTERM
    except KeyboardInterrupt:  # Ctrl-C before its signal handlers were installed
        pass
    return 0


def _api(settings: Settings) -> int:
    import uvicorn

    from api.app import app_from_settings
    from telemetry import setup_telemetry

    setup_telemetry(settings, "o2c-api")
    # Beside a data folder ``make run`` used, its admin key keeps working.
    settings = settings.model_copy(update={"admin_key": stored_admin_key(settings)})
    uvicorn.run(
        app_from_settings(settings),
        host=settings.api_host,
        port=settings.api_port,
        log_level=settings.log_level.lower(),
        access_log=False,
        log_config=None,  # uvicorn's own lines through o2c's format (ids included)
    )
    return 0


def _seed(settings: Settings) -> int:
    from systems.registry import build_systems
    from systems.seed import seed_demo

    report = asyncio.run(seed_demo(build_systems(settings)))
    print("seeded demo data" if report.created else "demo data already seeded")
    for role, cid in report.customers.items():
        print(f"  {role:<14} {cid}")
    return 0


def _sink(settings: Settings) -> int:
    from systems.notify.sink import start_sink

    controller = start_sink(settings.data_dir, settings.smtp_sink_port)
    print(f"SMTP sink on 127.0.0.1:{settings.smtp_sink_port}, mail in {settings.data_dir / 'mail'}")
    stop = asyncio.Event()

    async def wait() -> None:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        await stop.wait()

    asyncio.run(wait())
    controller.stop()
    return 0


def _keys_create(settings: Settings, role: str, name: str) -> int:
    from systems.registry import build_systems

    record, secret = build_systems(settings).erp.create_api_key(name, role)  # type: ignore[arg-type]
    print(f"created {record.role} key {record.id} ({record.name})")
    print(secret)
    return 0


SETTINGS = "Settings come from O2C_* environment variables; the README lists them all."


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="o2c", description="o2c order-to-cash orchestrator", epilog=SETTINGS
    )
    sub = p.add_subparsers(dest="command", required=True)

    def command(name: str, summary: str, details: str) -> argparse.ArgumentParser:
        return sub.add_parser(name, help=summary, description=details, epilog=SETTINGS)

    command(
        "dev",
        "start Temporal, the SMTP sink, a worker and the API",
        "Start the whole stack in the foreground (what `make run` runs): the Temporal dev "
        "server persisted in O2C_DATA_DIR (or O2C_TEMPORAL_ADDRESS instead), the SMTP "
        "sink, O2C_WORKER_PROCESSES workers and the API on O2C_API_PORT; seeds the demo "
        "data once and prints the addresses and the admin key. Ctrl-C stops it all.",
    )
    command(
        "worker",
        "run a worker",
        "Run one worker against O2C_TEMPORAL_ADDRESS (task queue O2C_TASK_QUEUE) and the "
        "database at O2C_DATABASE_URL. SIGTERM or Ctrl-C lets the steps under way finish.",
    )
    command(
        "api",
        "serve the HTTP API and console",
        "Serve the HTTP API, /docs and the console on O2C_API_HOST:O2C_API_PORT. The admin "
        "key is O2C_ADMIN_KEY, else the one `make run` kept in O2C_DATA_DIR/admin_key.",
    )
    command(
        "seed",
        "create the demo data once",
        "Create the demo customers, products, stock and price book in the database at "
        "O2C_DATABASE_URL, unless they exist already.",
    )
    command(
        "smtp-sink",
        "run the local SMTP sink",
        "Accept mail on 127.0.0.1:O2C_SMTP_SINK_PORT and keep each message as a file in "
        "O2C_DATA_DIR/mail (point O2C_SMTP_URL at it).",
    )
    keys = command("keys", "manage API keys", "Manage the API keys kept in the database.")
    actions = keys.add_subparsers(dest="action", required=True)
    create = actions.add_parser(
        "create",
        help="create a key; prints it as the last line",
        description="Create an API key with a role and a name; the key itself is printed "
        "once, as the last line of standard output, and only its hash is kept.",
    )
    create.add_argument("--role", required=True, choices=["viewer", "client", "operator", "admin"])
    create.add_argument("--name", required=True, type=_key_name)
    return p


def _key_name(value: str) -> str:
    name = value.strip()
    if not 1 <= len(name) <= 100:
        raise argparse.ArgumentTypeError("a key needs a name of 1 to 100 characters")
    return name


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        settings = Settings()
    except ValidationError as exc:
        for error in exc.errors():
            where = f"O2C_{str(error['loc'][0]).upper()}: " if error["loc"] else ""
            print(f"o2c: {where}{error['msg'].removeprefix('Value error, ')}", file=sys.stderr)
        return 2
    try:
        return _run(args, settings)
    except OperationalError as exc:
        print(f"o2c: the database is unreachable: {exc.orig}", file=sys.stderr)
        return 1
    except SystemUnavailable as exc:
        print(f"o2c: {exc}", file=sys.stderr)
        return 1
    except OSError as exc:
        print(f"o2c: {_os_error(exc, settings)}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:  # Ctrl-C in a one-off command (seed, keys): no traceback
        print("o2c: interrupted", file=sys.stderr)
        return 130


def _os_error(exc: OSError, settings: Settings) -> str:
    """The error in one line, naming ``O2C_DATA_DIR`` when the data folder is at fault."""
    if exc.filename is None:
        return str(exc)
    where = Path(exc.filename).absolute()
    folder = settings.data_dir.absolute()
    if where == folder or folder in where.parents or where in folder.parents:
        reason = exc.strerror or str(exc)
        return f"O2C_DATA_DIR={settings.data_dir}: the data folder is unusable: {reason} ({where})"
    return str(exc)


def _run(args: argparse.Namespace, settings: Settings) -> int:
    if args.command == "dev":
        from devrunner import run_dev

        return run_dev(settings)
    if args.command == "keys":
        return _keys_create(settings, args.role, args.name)
    commands = {"worker": _worker, "api": _api, "seed": _seed, "smtp-sink": _sink}
    return commands[args.command](settings)


if __name__ == "__main__":
    sys.exit(main())
