"""``bench.footprint`` runs every shape on its own dev server and prints its ratio."""

from __future__ import annotations

import re

import pytest

from bench import footprint

pytestmark = pytest.mark.slow


async def test_footprint_prints_every_shape_as_a_ratio_to_the_bare_workflow(
    capsys: pytest.CaptureFixture[str],
) -> None:
    await footprint.main(["--workflows", "3", "--concurrency", "3", "--rounds", "1"])
    out = capsys.readouterr().out
    summary = out[out.index("as a ratio to the bare workflow") :]
    ratios = {
        label.strip(): float(ratio)
        for label, ratio in re.findall(r"\n  (.+?)\s+[\d.]+/s\s+([\d.]+)", summary)
    }
    assert list(ratios) == [label for label, _, _ in footprint.SHAPES]
    assert ratios["bare, 5 regular activities"] == 1.0
    assert all(r > 0 for r in ratios.values())
    assert out.count("CPU per workflow: ") == len(footprint.SHAPES)
    assert "temporal" in out  # the server's own CPU is charged to it
