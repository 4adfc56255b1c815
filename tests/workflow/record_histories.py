"""Records QuoteToOrder histories into tests/histories/ for the replay tests.

Run against the current code before changing a workflow that may have running executions:
``python -m tests.workflow.record_histories``. Each scenario leaves one JSON history.
"""

from __future__ import annotations

import asyncio
import tempfile
import uuid
from pathlib import Path

from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.testing import WorkflowEnvironment

from activities.faults import Faults
from clients import register_search_attributes
from settings import Settings
from systems.db import create_schema, make_engine
from systems.erp.embedded import EmbeddedErp
from systems.payments.sandbox import SandboxGateway
from systems.registry import Systems
from tests.conftest import binary
from tests.factories import add_card, catalog, customer
from tests.fakes.notifier import FakeNotifier
from tests.workflow.conftest import Harness
from worker import build_worker
from workflows.contracts.quote_to_order import (
    AcceptRequest,
    NoteRequest,
    Order,
    ShipmentEventUpdate,
)

OUT = Path(__file__).parent.parent / "histories"


async def record() -> None:
    env = await WorkflowEnvironment.start_time_skipping(
        test_server_existing_path=binary("temporal-test-server"),
        data_converter=pydantic_data_converter,
    )
    await register_search_attributes(env.client)
    with tempfile.TemporaryDirectory() as tmp:
        engine = make_engine(f"sqlite:///{tmp}/o2c.db")
        create_schema(engine)
        erp, gateway = EmbeddedErp(engine), SandboxGateway(engine)
        systems = Systems(erp=erp, gateway=gateway, notifier=FakeNotifier())
        queue = f"record-{uuid.uuid4()}"
        async with build_worker(
            env.client,
            systems,
            Settings(sandbox=True),
            task_queue=queue,
            faults=Faults(erp, True, 0),
        ):
            h = Harness(env, systems, FakeNotifier(), gateway, queue)
            catalog(erp)
            c = customer(erp)
            await add_card(erp, gateway, c.id)
            OUT.mkdir(exist_ok=True)
            await _approved_quote(h, c.id)
            await _shipped_order(h, c.id)
    await env.shutdown()


async def _approved_quote(h: Harness, cid: str) -> None:
    handle = await h.start(await h.input(cid, [{"sku": "SETUP", "quantity": 1}], discount="0.25"))
    await handle.execute_update("approve", NoteRequest(note="ok"))
    await handle.execute_update("accept", AcceptRequest(payment="card_on_file"))
    await handle.result()
    history = await handle.fetch_history()
    (OUT / "q2o-approved-quote-card.json").write_text(history.to_json())


async def _shipped_order(h: Harness, cid: str) -> None:
    inp = await h.input(cid, [{"sku": "WIDGET-1", "quantity": 2}], quote=False, payment="invoice")
    handle = await h.start(inp)
    order = await h.until(handle, "order", Order, lambda o: o.status == "fulfilling")
    sid = order.shipments[0].id
    await handle.execute_update(
        "shipment_event", ShipmentEventUpdate(shipment_id=sid, event="shipped")
    )
    await handle.execute_update(
        "shipment_event", ShipmentEventUpdate(shipment_id=sid, event="delivered")
    )
    await handle.result()
    history = await handle.fetch_history()
    (OUT / "q2o-shipped-order-invoice.json").write_text(history.to_json())


if __name__ == "__main__":
    asyncio.run(record())
