"""Building the systems and seeding them: the demo seed is made once and finished by the
next run when it was stopped half way; production on SQLite is warned about."""

from __future__ import annotations

import logging
from decimal import Decimal
from pathlib import Path

import pytest
from sqlalchemy import text

from settings import Settings
from systems.records import Customer, CustomerCreate
from systems.registry import Systems, build_systems
from systems.seed import seed_demo


def _systems(tmp_path: Path) -> Systems:
    return build_systems(Settings(data_dir=tmp_path, smtp_url="smtp://127.0.0.1:1"))


async def test_a_seed_stopped_half_way_is_finished_by_the_next_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    systems = _systems(tmp_path)
    made: list[Customer] = []
    create = systems.erp.create_customer

    def stop_at_the_second(data: CustomerCreate) -> Customer:
        if len(made) == 1:
            raise KeyboardInterrupt  # Ctrl-C while `make run` seeds
        made.append(create(data))
        return made[-1]

    monkeypatch.setattr(systems.erp, "create_customer", stop_at_the_second)
    with pytest.raises(KeyboardInterrupt):
        await seed_demo(systems)
    monkeypatch.undo()
    finished = await seed_demo(systems)
    assert finished.created
    assert finished.customers["card_on_file"] == made[0].id
    again = await seed_demo(systems)
    assert not again.created and again.customers == finished.customers
    customers = systems.erp.list_customers(100, None).data
    assert sorted(c.name for c in customers) == ["Acme GmbH", "Globex Ltd", "Small Shop"]
    with systems.erp._engine.connect() as conn:  # type: ignore[attr-defined]
        cards = conn.execute(text("SELECT customer_id FROM erp_payment_methods")).all()
    assert [c.customer_id for c in cards] == [finished.customers["card_on_file"]]
    assert systems.erp.get_product("WIDGET-1").unit_price == Decimal("19.99")


def test_production_on_sqlite_is_warned_about(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="o2c.systems"):
        build_systems(Settings(data_dir=tmp_path, environment="production"))
    assert "production on SQLite" in caplog.text
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="o2c.systems"):
        _systems(tmp_path)  # development: SQLite is the default
    assert caplog.text == ""
