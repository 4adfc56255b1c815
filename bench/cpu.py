"""CPU time per process of a running stack, read from ``/proc`` (Linux; empty elsewhere).

A benchmark takes a snapshot before and after a phase and prints the difference per item,
so a figure like "9 orders/s" comes with where the CPU went: the Temporal server, the
worker, the API, the mail sink and the load generator itself.
"""

from __future__ import annotations

import os
import resource
from pathlib import Path

PROC = Path("/proc")
TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def _stat(pid: int) -> tuple[int, float] | None:
    """(parent pid, user+system seconds) of one process, or None if it is gone."""
    try:
        raw = (PROC / str(pid) / "stat").read_text()
    except OSError:
        return None
    # The command name is in parentheses and may hold spaces: split after its end.
    fields = raw[raw.rindex(")") + 2 :].split()
    return int(fields[1]), (int(fields[11]) + int(fields[12])) / TICKS


def _name(pid: int) -> str:
    try:
        argv = (PROC / str(pid) / "cmdline").read_bytes().split(b"\0")
    except OSError:
        return "?"
    words = [a.decode(errors="replace") for a in argv if a]
    if words and Path(words[0]).name == "temporal":
        return "temporal"
    if "cli" in words:  # python -m cli <command>
        rest = words[words.index("cli") + 1 :]
        return rest[0] if rest else "cli"
    return Path(words[0]).name if words else "?"


def snapshot(root: int) -> dict[str, float]:
    """CPU seconds used so far by every descendant of ``root`` (by role) and by this
    process (``bench``)."""
    if not PROC.is_dir():
        return {}
    parents: dict[int, tuple[int, float]] = {}
    for entry in PROC.iterdir():
        if entry.name.isdigit():
            stat = _stat(int(entry.name))
            if stat is not None:
                parents[int(entry.name)] = stat
    tree = {root}
    grown = True
    while grown:
        grown = False
        for pid, (ppid, _) in parents.items():
            if ppid in tree and pid not in tree:
                tree.add(pid)
                grown = True
    usage: dict[str, float] = {}
    for pid in tree - {root}:
        if pid in parents:
            name = _name(pid)
            usage[name] = usage.get(name, 0.0) + parents[pid][1]
    own = resource.getrusage(resource.RUSAGE_SELF)
    usage["bench"] = own.ru_utime + own.ru_stime
    return usage


def per_item(before: dict[str, float], after: dict[str, float], items: int) -> str:
    """``"temporal 45.1  worker 80.2 …  total 150.3 ms"``: CPU ms per item by process."""
    spent = {k: (after.get(k, 0.0) - before.get(k, 0.0)) * 1000 / items for k in after}
    shown = {k: v for k, v in spent.items() if v >= 0.05}
    if not shown:
        return ""
    parts = [f"{k} {v:.1f}" for k, v in sorted(shown.items(), key=lambda kv: -kv[1])]
    return "  ".join(parts) + f"  total {sum(shown.values()):.1f} ms"
