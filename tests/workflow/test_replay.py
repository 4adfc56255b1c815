"""Replay: recorded histories must replay against the current workflow code.

``tests/histories/*.json`` hold histories of QuoteToOrder executions recorded from earlier
versions (``python -m tests.workflow.record_histories`` writes them). A change that would
break a running execution fails here; guard it with ``workflow.patched``.
"""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest
from temporalio.client import WorkflowHistory
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.worker import Replayer

from tests.factories import add_card, catalog, customer
from tests.workflow.conftest import Harness
from worker import WORKFLOWS, sandbox_runner
from workflows.contracts.quote_to_order import AcceptRequest

HISTORIES = sorted((Path(__file__).parent.parent / "histories").glob("*.json"))


def _replayer() -> Replayer:
    return Replayer(
        workflows=list(WORKFLOWS),
        data_converter=pydantic_data_converter,
        workflow_runner=sandbox_runner(),
    )


def test_recorded_histories_exist() -> None:
    assert len(HISTORIES) >= 2, "record histories with python -m tests.workflow.record_histories"


@pytest.mark.parametrize("path", HISTORIES, ids=[p.stem for p in HISTORIES])
async def test_recorded_history_replays_against_current_code(path: Path) -> None:
    history = WorkflowHistory.from_json(path.stem, path.read_text())
    result = await _replayer().replay_workflow(history, raise_on_replay_failure=True)
    assert result.replay_failure is None


async def test_a_process_started_with_a_rate_finer_than_input_allows_still_replays() -> None:
    """Clients may no longer send rates finer than 12 places; a process started before
    that with such a rate must still decode its input, or it would be stuck for good."""
    path = next(p for p in HISTORIES if p.stem == "q2o-approved-quote-card")
    raw = json.loads(path.read_text())
    payload = raw["events"][0]["workflowExecutionStartedEventAttributes"]["input"]["payloads"][0]
    inp = json.loads(base64.b64decode(payload["data"]))
    inp["discount_pct"] = "0.2500000000000001"
    payload["data"] = base64.b64encode(json.dumps(inp).encode()).decode()
    history = WorkflowHistory.from_json(path.stem, json.dumps(raw))
    result = await _replayer().replay_workflow(history, raise_on_replay_failure=True)
    assert result.replay_failure is None


async def test_a_fresh_quote_to_paid_order_replays_deterministically(h: Harness) -> None:
    catalog(h.erp)
    c = customer(h.erp)
    await add_card(h.erp, h.gateway, c.id)
    handle = await h.start(await h.input(c.id, [{"sku": "SETUP", "quantity": 2}]))
    await handle.execute_update("accept", AcceptRequest(payment="card_on_file"))
    result = await handle.result()
    assert result.order is not None and result.order.status == "completed"
    history = await handle.fetch_history()
    replay = await _replayer().replay_workflow(history, raise_on_replay_failure=False)
    assert replay.replay_failure is None
