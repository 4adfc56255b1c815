"""The benchmark's order-shaped workflow keeps the footprint of the order it stands for.

``make bench`` reads its rate as the ceiling of the orders' ratio, so its history must be,
event for event, that of a service-only card order started the way the API starts one;
if the order changes shape, this fails until the bench follows."""

from __future__ import annotations

import uuid
from typing import Any

from temporalio.api.enums.v1 import EventType
from temporalio.client import WorkflowHandle
from temporalio.worker import Worker

from api import process
from bench.bare import OrderShapeLocalWorkflow, OrderShapeWorkflow, noop
from bench.orders import ORDER_STEPS, order_attributes
from settings import Settings
from tests.factories import add_card, catalog, customer
from tests.workflow.conftest import Harness
from workflows.contracts.quote_to_order import initial_order

UPSERT = EventType.EVENT_TYPE_UPSERT_WORKFLOW_SEARCH_ATTRIBUTES


async def _events(handle: WorkflowHandle[Any, Any]) -> list[str]:
    return [EventType.Name(e.event_type) async for e in handle.fetch_history_events()]


async def test_order_shape_has_the_events_of_a_service_order_placed_through_the_api(
    h: Harness,
) -> None:
    catalog(h.erp)
    cid = customer(h.erp).id
    await add_card(h.erp, h.gateway, cid)
    inp = await h.input(cid, [{"sku": "SETUP", "quantity": 1}], quote=False, payment="card_on_file")
    settings = Settings(task_queue=h.task_queue)
    await process.start(
        h.env.client, h.erp, settings, inp, initial_order(inp, "card_on_file", inp.created_at)
    )
    order = h.env.client.get_workflow_handle(inp.process_id)
    await order.result()

    queue = f"shape-{uuid.uuid4()}"
    async with Worker(
        h.env.client, task_queue=queue, workflows=[OrderShapeWorkflow], activities=[noop]
    ):
        shape = await h.env.client.start_workflow(
            OrderShapeWorkflow.run,
            ORDER_STEPS,
            id=f"shape-{uuid.uuid4()}",
            task_queue=queue,
            search_attributes=order_attributes(cid),
        )
        assert await shape.result() == ORDER_STEPS
        shape_events = await _events(shape)
    order_events = await _events(order)
    assert shape_events == order_events
    assert order_events.count(EventType.Name(UPSERT)) == 2  # confirmed, completed


async def test_the_all_local_order_shape_keeps_the_footprint_with_no_activity_task(
    h: Harness,
) -> None:
    """``bench.footprint`` prices the order's footprint were the e-mail and the charge local
    activities: the shape's history, each activity task a marker instead."""
    queue = f"shape-{uuid.uuid4()}"
    async with Worker(
        h.env.client,
        task_queue=queue,
        workflows=[OrderShapeWorkflow, OrderShapeLocalWorkflow],
        activities=[noop],
    ):
        histories = []
        for shape in (OrderShapeWorkflow, OrderShapeLocalWorkflow):
            handle = await h.env.client.start_workflow(
                shape.run,
                ORDER_STEPS,
                id=f"shape-{uuid.uuid4()}",
                task_queue=queue,
                search_attributes=order_attributes("cus_shape"),
            )
            assert await handle.result() == ORDER_STEPS
            histories.append(await _events(handle))
    regular, local = histories
    scheduled = EventType.Name(EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED)
    marker = EventType.Name(EventType.EVENT_TYPE_MARKER_RECORDED)
    assert regular.count(scheduled) == 2 and local.count(scheduled) == 0
    assert local.count(marker) == regular.count(marker) + 2 == 7
    assert local.count(EventType.Name(UPSERT)) == regular.count(EventType.Name(UPSERT)) == 2
