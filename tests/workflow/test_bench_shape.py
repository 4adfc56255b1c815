"""The benchmark's order-shaped workflow keeps the footprint of the order it stands for.

``make bench`` reads its rate as the ceiling of the orders' ratio; if the order's history
changes shape (a new recorded history), this fails until the bench follows."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

from temporalio.api.enums.v1 import EventType
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from bench.bare import OrderShapeWorkflow, noop
from bench.orders import ORDER_STEPS, order_attributes

# A service-only card order as the API starts it, recorded from the workflow itself.
RECORDED = Path(__file__).parent.parent / "histories" / "q2o-order-credit-at-placement.json"
UPSERT = "EVENT_TYPE_UPSERT_WORKFLOW_SEARCH_ATTRIBUTES"


def api_started(events: list[str]) -> list[str]:
    """The recording started the process without search attributes, so its first task
    upserted them (identity, then status): the API sets both at the start instead."""
    first = [i for i, name in enumerate(events) if name == UPSERT][:2]
    return [name for i, name in enumerate(events) if i not in first]


async def test_order_shape_has_the_recorded_orders_events(ts_env: WorkflowEnvironment) -> None:
    recorded = [e["eventType"] for e in json.loads(RECORDED.read_text())["events"]]
    queue = f"shape-{uuid.uuid4()}"
    async with Worker(
        ts_env.client, task_queue=queue, workflows=[OrderShapeWorkflow], activities=[noop]
    ):
        handle = await ts_env.client.start_workflow(
            OrderShapeWorkflow.run,
            ORDER_STEPS,
            id=f"shape-{uuid.uuid4()}",
            task_queue=queue,
            search_attributes=order_attributes("cus_shape"),
        )
        assert await handle.result() == ORDER_STEPS
        history = await handle.fetch_history()
    shape = [EventType.Name(e.event_type) for e in history.events]
    assert shape == api_started(recorded)
    assert shape.count(UPSERT) == 2  # confirmed, completed
