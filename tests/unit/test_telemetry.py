"""Log records carry the process and customer they are about."""

from __future__ import annotations

import dataclasses
import logging

import pytest
from pydantic import BaseModel
from temporalio import activity
from temporalio.testing import ActivityEnvironment

import telemetry
from activities.errors import mapped_errors
from telemetry import ContextFilter, log_context, remember_customer, traces_endpoint


class _LogInput(BaseModel):
    customer_id: str


def _record(**extra: object) -> logging.LogRecord:
    record = logging.LogRecord("o2c", logging.INFO, __file__, 1, "msg", None, None)
    for k, v in extra.items():
        setattr(record, k, v)
    ContextFilter().filter(record)
    return record


def test_records_carry_ids_from_the_context_from_temporal_or_from_extras() -> None:
    with log_context(process_id="q2o-ord_1", customer_id="cus_1"):
        r = _record()
    assert (r.process_id, r.customer_id) == ("q2o-ord_1", "cus_1")  # type: ignore[attr-defined]
    r = _record(temporal_activity={"workflow_id": "q2o-quo_2"}, customer_id="cus_2")
    assert (r.process_id, r.customer_id) == ("q2o-quo_2", "cus_2")  # type: ignore[attr-defined]
    r = _record()
    assert (r.process_id, r.customer_id) == ("-", "-")  # type: ignore[attr-defined]


def test_a_record_naming_only_its_process_gets_the_customer_last_seen_with_it() -> None:
    remember_customer("q2o-ord_3", "cus_3")
    r = _record(temporal_workflow={"workflow_id": "q2o-ord_3"})
    assert (r.process_id, r.customer_id) == ("q2o-ord_3", "cus_3")  # type: ignore[attr-defined]
    _record(process_id="q2o-ord_4", customer_id="cus_4")  # a record with both teaches it
    r = _record(temporal_activity={"workflow_id": "q2o-ord_4"})
    assert r.customer_id == "cus_4"  # type: ignore[attr-defined]


def test_the_processes_remembered_are_bounded_the_least_recently_seen_go_first(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(telemetry, "KNOWN_PROCESSES", 3)
    for i in range(3):
        remember_customer(f"q2o-bound_{i}", f"cus_{i}")
    remember_customer("q2o-bound_0", "cus_0")  # seen again
    remember_customer("q2o-bound_3", "cus_3")  # one too many: bound_1 goes
    known = [_record(process_id=f"q2o-bound_{i}").customer_id for i in range(4)]  # type: ignore[attr-defined]
    assert known == ["cus_0", "-", "cus_2", "cus_3"]


def test_an_activity_logs_with_its_workflow_and_the_customer_of_its_input() -> None:
    records: list[logging.LogRecord] = []

    @activity.defn(name="logs")
    @mapped_errors
    def logs(inp: _LogInput) -> None:
        activity.logger.info("working for %s", inp.customer_id)
        logging.getLogger("o2c.test").info("plain")

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            records.append(record)

    handler = Keep()
    handler.addFilter(ContextFilter())
    root = logging.getLogger()
    root.addHandler(handler)
    level = root.level
    root.setLevel(logging.INFO)
    try:
        env = ActivityEnvironment()
        env.info = dataclasses.replace(env.info, workflow_id="q2o-ord_act")
        env.run(logs, _LogInput(customer_id="cus_act"))
    finally:
        root.removeHandler(handler)
        root.setLevel(level)
    ids = {(r.process_id, r.customer_id) for r in records}  # type: ignore[attr-defined]
    assert ids == {("q2o-ord_act", "cus_act")}
    assert len(records) == 2
    r = _record()
    assert (r.process_id, r.customer_id) == ("-", "-")  # type: ignore[attr-defined]


def test_the_otlp_endpoint_is_a_collector_base_or_the_traces_url() -> None:
    assert traces_endpoint("http://collector:4318") == "http://collector:4318/v1/traces"
    assert traces_endpoint("http://collector:4318/") == "http://collector:4318/v1/traces"
    assert traces_endpoint("https://otel.example/custom/traces") == (
        "https://otel.example/custom/traces"
    )
