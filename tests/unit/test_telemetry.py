"""Log records carry the process and customer they are about."""

from __future__ import annotations

import logging

from telemetry import ContextFilter, log_context


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
