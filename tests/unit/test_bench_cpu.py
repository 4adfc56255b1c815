"""The benchmarks' instruments: CPU accounting charges a stack's processes their time
(o2c runs on Linux: /proc is always there)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

from bench import cpu

BUSY = "import time\nend = time.process_time() + 0.6\nwhile time.process_time() < end: pass\n"


def test_snapshot_charges_a_child_its_cpu_under_its_role() -> None:
    child = subprocess.Popen([sys.executable, "-c", BUSY + "time.sleep(30)"])
    try:
        before = cpu.snapshot(os.getpid())
        time.sleep(1.5)  # the child burns 0.6 s of CPU, then sleeps
        after = cpu.snapshot(os.getpid())
    finally:
        child.kill()
        child.wait()
    role = Path(sys.executable).name
    assert after[role] - before.get(role, 0.0) >= 0.3
    assert after["bench"] >= before["bench"]


def test_per_item_prints_milliseconds_per_item_largest_first() -> None:
    line = cpu.per_item(
        {"worker": 1.0, "api": 0.5, "bench": 0.0},
        {"worker": 3.0, "api": 1.0, "bench": 0.0},
        100,
    )
    assert line == "worker 20.0  api 5.0  total 25.0 ms"


def test_erp_bench_times_every_call_of_an_order(tmp_path: Path) -> None:
    from bench import erp

    per_call = erp.run(f"sqlite:///{tmp_path / 'erp.db'}", orders=3)
    assert set(per_call) == {
        "card on file (API)",
        "credit commitment",
        "sales order",
        "read model (x3)",
        "e-mail recipient",
        "invoice",
        "charge: invoice+card",
        "gateway charge",
        "payment",
    }
    assert all(ms > 0 for ms in per_call.values())
