"""The embedded ERP on SQLite and PostgreSQL: idempotent keys, gapless numbers, ledger."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import pytest
from sqlalchemy import text
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError

from domain.errors import (
    Conflict,
    CurrencyMismatch,
    InvalidInput,
    InvoiceNotPayable,
    NotFound,
    OutOfStock,
    UnbalancedEntry,
)
from domain.invoicing import DraftInvoice, InvoiceLine
from systems.db import unit_of_work
from systems.erp.billing import next_value, post_entry
from systems.erp.embedded import EmbeddedErp
from systems.quoting import credit_snapshot, price_request, process_input
from systems.records import MAX_STOCK, FaultMode, PriceItem
from tests.factories import catalog, customer
from workflows.contracts.quote_to_order import LineRequest

D = Decimal


@pytest.fixture
def erp(db_engine: Engine) -> EmbeddedErp:
    return EmbeddedErp(db_engine)


def draft(customer_id: str, total: str = "119.00", issue: date = date(2026, 5, 1)) -> DraftInvoice:
    net = (D(total) / D("1.19")).quantize(D("0.01"))
    return DraftInvoice(
        customer_id=customer_id,
        currency="EUR",
        issue_date=issue,
        due_date=issue,
        lines=[
            InvoiceLine(kind="one_time", description="x", quantity=D(1), unit_price=net, amount=net)
        ],
        subtotal=net,
        tax=D(total) - net,
        total=D(total),
    )


def test_money_round_trips_exactly(erp: EmbeddedErp) -> None:
    c = customer(erp, credit_limit="12345678901.23")
    assert erp.get_customer(c.id).credit_limit == D("12345678901.23")
    assert erp.get_customer(c.id).created_at.tzinfo is not None
    with pytest.raises(InvalidInput):
        customer(erp, credit_limit="1.005")


def test_unknown_ids_raise_not_found_and_duplicate_skus_conflict(erp: EmbeddedErp) -> None:
    with pytest.raises(NotFound):
        erp.get_customer("cus_nope")
    catalog(erp)
    with pytest.raises(Conflict):
        catalog(erp)


def test_price_book_beats_list_price_and_unknown_items_are_invalid(erp: EmbeddedErp) -> None:
    from systems.records import PriceItem

    catalog(erp)
    c = customer(erp)
    erp.set_prices(c.id, [PriceItem(sku="WIDGET-1", unit_price=D("15.00"))])
    lines = erp.catalog_lines(c.id, [("WIDGET-1", None), ("SETUP", None)])
    assert [(x.unit_price, x.from_price_book) for x in lines] == [
        (D("15.00"), True),
        (D("150.00"), False),
    ]
    with pytest.raises(InvalidInput):
        erp.catalog_lines(c.id, [("NOPE", None)])


def test_reservation_is_all_or_nothing_and_idempotent_by_key(erp: EmbeddedErp) -> None:
    catalog(erp)  # WIDGET-1: 10 on hand
    with pytest.raises(OutOfStock) as err:
        erp.reserve("k0", "o0", {"WIDGET-1": 11})
    assert err.value.shortages == {"WIDGET-1": 1}
    assert erp.inventory("WIDGET-1").reserved == 0
    erp.reserve("k1", "o1", {"WIDGET-1": 4})
    erp.reserve("k1", "o1", {"WIDGET-1": 4})
    assert (erp.inventory("WIDGET-1").reserved, erp.inventory("WIDGET-1").available) == (4, 6)
    erp.commit_reservation("k1")
    erp.commit_reservation("k1")
    erp.release("k1")
    stock = erp.inventory("WIDGET-1")
    assert (stock.on_hand, stock.reserved) == (6, 0)
    with pytest.raises(Conflict):
        erp.adjust_inventory("WIDGET-1", -7, "loss")


def test_stock_on_hand_stays_within_its_bound(erp: EmbeddedErp) -> None:
    catalog(erp)  # WIDGET-1: 10 on hand
    assert erp.adjust_inventory("WIDGET-1", MAX_STOCK - 10, "count").on_hand == MAX_STOCK
    # Beyond it PostgreSQL's INTEGER column would overflow: a conflict, nothing changed.
    for _ in range(3):
        with pytest.raises(Conflict):
            erp.adjust_inventory("WIDGET-1", 1, "count")
    assert erp.inventory("WIDGET-1").on_hand == MAX_STOCK


def test_backorder_wait_list_is_taken_once(erp: EmbeddedErp) -> None:
    erp.add_backorder("p1", ["A", "B"])
    erp.add_backorder("p1", ["A"])
    erp.add_backorder("p2", ["A"])
    assert erp.take_backorders("A") == ["p1", "p2"]
    assert erp.take_backorders("A") == []
    assert erp.take_backorders("B") == ["p1"]


def test_a_release_hands_back_the_processes_waiting_for_its_skus(erp: EmbeddedErp) -> None:
    catalog(erp)  # WIDGET-1: 10 on hand
    erp.reserve("r1", "ord_1", {"WIDGET-1": 8})
    erp.reserve("r2", "ord_2", {"WIDGET-1": 2})
    erp.add_backorder("p-late", ["WIDGET-1", "OTHER"])
    erp.add_backorder("p-early", ["WIDGET-1"])
    erp.add_backorder("p-other", ["OTHER"])
    erp.commit_reservation("r2")  # goods that left free nothing: nobody is woken
    assert erp.take_backorders("OTHER") == ["p-late", "p-other"]
    erp.add_backorder("p-late", ["OTHER"])
    assert erp.release("r1") == ["p-late", "p-early"]  # once each, by registration
    # Released once, however often asked; a repeat (its answer lost) names them again.
    assert erp.release("r1") == ["p-late", "p-early"]
    assert erp.inventory("WIDGET-1").available == 8
    assert erp.release("never") == [] and erp.release("r2") == []  # unknown, committed
    # They stay on the wait list: a restock still wakes them.
    assert erp.take_backorders("WIDGET-1") == ["p-late", "p-early"]


def test_goods_shipped_without_a_reservation_leave_stock_once(erp: EmbeddedErp) -> None:
    catalog(erp)  # WIDGET-1: 10 on hand
    erp.reserve("other", "ord_0", {"WIDGET-1": 6})
    with pytest.raises(Conflict, match="WIDGET-1 short by 1"):
        erp.commit_reservation("ship", {"WIDGET-1": 5}, "ord_1")  # 4 are not reserved
    erp.commit_reservation("ship", {"WIDGET-1": 3}, "ord_1")
    erp.commit_reservation("ship", {"WIDGET-1": 3}, "ord_1")  # a repeat deducts nothing
    stock = erp.inventory("WIDGET-1")
    assert (stock.on_hand, stock.reserved, stock.available) == (7, 6, 1)
    # With a reservation under the key, its units are committed, whatever lines say.
    erp.commit_reservation("other", {"WIDGET-1": 6}, "ord_0")
    stock = erp.inventory("WIDGET-1")
    assert (stock.on_hand, stock.reserved) == (1, 0)
    assert erp.release("ship") == [] and erp.inventory("WIDGET-1").on_hand == 1


def test_invoice_is_issued_once_per_key_with_a_ledger_entry(erp: EmbeddedErp) -> None:
    c = customer(erp)
    first = erp.issue_invoice("inv-key", draft(c.id))
    again = erp.issue_invoice("inv-key", draft(c.id))
    assert first.id == again.id and first.number == "INV-2026-000001"
    assert erp.issue_invoice("other", draft(c.id)).number == "INV-2026-000002"
    assert erp.issue_invoice("y27", draft(c.id, issue=date(2027, 1, 2))).number == "INV-2027-000001"
    assert len(erp.ledger_entries()) == 3
    account = erp.credit_view(c.id, date(2026, 5, 2)).account
    assert (account.open_ar, account.overdue) == (D("357.00"), D("238.00"))


def test_credit_view_reads_customer_account_and_card_together(erp: EmbeddedErp) -> None:
    c = customer(erp)
    erp.issue_invoice("k1", draft(c.id))
    view = erp.credit_view(c.id, date(2026, 5, 2))
    assert view.customer == erp.get_customer(c.id)
    assert view.account.open_ar == D("119.00") and not view.has_payment_method
    erp.add_payment_method(c.id, "tok_x", "visa", "4242", 12, 2030)
    assert erp.credit_view(c.id, date(2026, 5, 2)).has_payment_method
    with pytest.raises(NotFound):
        erp.credit_view("cus_missing", date(2026, 5, 2))


def test_credit_snapshot_is_what_the_credit_check_decides_on(erp: EmbeddedErp) -> None:
    c = customer(erp, credit_limit="500.00", terms=14)
    erp.issue_invoice("k1", draft(c.id))
    snap = credit_snapshot(erp, c.id, date(2026, 5, 2), attempt=3)
    assert (snap.customer_id, snap.email, snap.currency) == (c.id, c.email, "EUR")
    assert (snap.credit_limit, snap.open_ar, snap.payment_terms_days) == (
        D("500.00"),
        D("119.00"),
        14,
    )
    assert snap.tax_rate == D("0.19") and not snap.has_payment_method and snap.attempt == 3
    catalog(erp)
    priced = price_request(erp, c.id, [LineRequest(sku="SETUP", quantity=1)], D(0), D("0.2"))
    now = datetime(2026, 5, 2, tzinfo=UTC)
    order = process_input(
        priced, quote_id=None, order_id="ord_1", created_at=now, payment="invoice"
    )
    assert order.credit is None  # the process checks and commits the credit itself
    with pytest.raises(ValueError, match="payment terms"):
        process_input(priced, quote_id=None, order_id="ord_1", created_at=now)


def test_charge_view_reads_invoice_payments_and_default_card_together(erp: EmbeddedErp) -> None:
    c = customer(erp)
    inv = erp.issue_invoice("k1", draft(c.id))
    view = erp.charge_view(inv.id, c.id)
    assert view.invoice == erp.get_invoice(inv.id)
    assert view.payments == [] and view.card_token is None
    erp.add_payment_method(c.id, "tok_old", "visa", "4242", 12, 2030)
    erp.add_payment_method(c.id, "tok_new", "visa", "4444", 12, 2031)  # the newest is default
    erp.record_payment("p1", inv.id, D("19.00"), "card", "ch_1", "ch_1")
    view = erp.charge_view(inv.id, c.id)
    assert view.card_token == "tok_new" and view.invoice.amount_due == D("100.00")
    assert [(p.amount, p.charge_id) for p in view.payments] == [(D("19.00"), "ch_1")]
    with pytest.raises(NotFound):
        erp.charge_view("inv_missing", c.id)
    # A customer's card never pays another customer's invoice.
    other = customer(erp, name="Other")
    erp.add_payment_method(other.id, "tok_other", "visa", "1111", 12, 2031)
    with pytest.raises(NotFound, match="of customer"):
        erp.charge_view(inv.id, other.id)


def test_invoice_numbers_stay_gapless_under_concurrency_and_retries(erp: EmbeddedErp) -> None:
    c = customer(erp)
    errors: list[BaseException] = []

    def issue(t: int) -> None:
        try:
            for i in range(25):
                erp.issue_invoice(f"t{t}-{i}", draft(c.id))
                erp.issue_invoice(f"t{t}-{i}", draft(c.id))  # a retry of the same step
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=issue, args=(t,)) for t in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    page, numbers, cursor = None, [], None
    while True:
        page = erp.list_invoices(c.id, None, 100, cursor)
        numbers += [int(x.number.rsplit("-", 1)[1]) for x in page.data]
        cursor = page.next_cursor
        if cursor is None:
            break
    assert sorted(numbers) == list(range(1, 201))


def test_payments_credit_notes_refunds_and_void_keep_the_ledger_balanced(
    erp: EmbeddedErp,
) -> None:
    c = customer(erp)
    inv = erp.issue_invoice("i1", draft(c.id))
    with pytest.raises(InvoiceNotPayable):
        erp.record_payment("p0", inv.id, D("119.01"), "bank_transfer", "too much")
    pay = erp.record_payment("p1", inv.id, D("119.00"), "card", "ch_1", "ch_1")
    assert erp.record_payment("p1", inv.id, D("119.00"), "card", "ch_1", "ch_1").id == pay.id
    assert erp.get_invoice(inv.id).status == "paid"
    with pytest.raises(Conflict):
        erp.void_invoice("v1", inv.id)
    erp.issue_credit_note("cn1", inv.id, D("119.00"), "returned")
    erp.issue_credit_note("cn1", inv.id, D("119.00"), "returned")
    erp.record_refund("r1", pay.id, D("119.00"), "re_1")
    erp.record_refund("r1", pay.id, D("119.00"), "re_1")
    other = erp.issue_invoice("i2", draft(c.id, total="59.50"))
    assert erp.void_invoice("v2", other.id).status == "void"
    balance = erp.trial_balance("EUR")
    assert sum(balance.values(), D(0)) == 0
    assert balance["accounts_receivable"] == 0 and balance["cash"] == 0
    assert erp.get_invoice(inv.id).amount_credited == D("119.00")


def test_credit_notes_of_a_whole_invoice_reverse_exactly_its_tax(erp: EmbeddedErp) -> None:
    """Each note's tax is rounded, yet the notes of a fully credited invoice add up to its
    tax (100.00 + 19.00 credited as 39.67 + 39.67 + 39.66 used to reverse 18.99)."""
    c = customer(erp)
    inv = erp.issue_invoice("i1", draft(c.id, total="119.00"))
    for n, amount in enumerate(("39.67", "39.67", "39.66")):
        erp.issue_credit_note(f"cn{n}", inv.id, D(amount), "returned")
    balance = erp.trial_balance("EUR")
    assert balance["tax_payable"] == 0 and balance["accounts_receivable"] == 0
    assert balance["sales_returns"] == D("100.00") == -balance["revenue"]
    assert sum(balance.values(), D(0)) == 0


def test_amounts_below_the_minor_unit_are_refused_for_refunds_and_invoice_lines(
    erp: EmbeddedErp,
) -> None:
    c = customer(erp)
    inv = erp.issue_invoice("i1", draft(c.id))
    pay = erp.record_payment("p1", inv.id, D("119.00"), "card", "ch_1", "ch_1")
    with pytest.raises(InvalidInput):
        erp.record_refund("r1", pay.id, D("0.001"), "re_1")
    assert erp.payments_for_invoice(inv.id)[0].refunded == 0
    half = InvoiceLine(
        kind="one_time", description="x", quantity=D(1), unit_price=D("0.005"), amount=D("0.005")
    )
    bad = draft(c.id).model_copy(update={"lines": [half, half], "subtotal": D("0.01")})
    bad = bad.model_copy(update={"tax": D("0.00"), "total": D("0.01")})
    with pytest.raises(InvalidInput):
        erp.issue_invoice("i2", bad)


def test_an_unbalanced_entry_is_refused_before_anything_is_written(erp: EmbeddedErp) -> None:
    with pytest.raises(UnbalancedEntry):
        with unit_of_work(erp._engine) as s:
            post_entry(
                s, "bad", "bad", "EUR", [("cash", D("1"), D("0")), ("revenue", D("0"), D("0.99"))]
            )
    assert erp.ledger_entries() == []


def test_api_keys_are_stored_hashed(erp: EmbeddedErp) -> None:
    record, secret = erp.create_api_key("shop", "client")
    assert erp.authenticate(secret) == record
    assert erp.authenticate(secret + "x") is None
    with erp._engine.connect() as conn:
        stored = conn.execute(text("SELECT secret_hash FROM platform_api_keys")).scalar_one()
    assert secret not in stored and len(stored) == 64


def test_idempotency_records_keep_the_first_writer(erp: EmbeddedErp) -> None:
    assert erp.idempotency_put("s", "k", "h1", 201, "one") == ("h1", 201, "one")
    assert erp.idempotency_put("s", "k", "h2", 201, "two") == ("h1", 201, "one")
    assert erp.idempotency_get("s", "k") == ("h1", 201, "one")


def test_an_idempotency_claim_is_held_answered_released_or_taken_over(erp: EmbeddedErp) -> None:
    long, now = timedelta(minutes=1), timedelta(0)
    assert erp.idempotency_claim("s", "k", "h1", long) is None  # held by this caller
    assert erp.idempotency_claim("s", "k", "h1", long) == ("h1", 0, "")  # under way
    assert erp.idempotency_claim("s", "k", "h2", now) is None  # stale: taken over
    assert erp.idempotency_complete("s", "k", 201, "one") == ("h2", 201, "one")
    assert erp.idempotency_claim("s", "k", "h2", now) == ("h2", 201, "one")  # answered
    assert erp.idempotency_complete("s", "k", 500, "late") == ("h2", 201, "one")
    assert erp.idempotency_claim("s", "r", "h", long) is None
    erp.idempotency_release("s", "r")
    assert erp.idempotency_get("s", "r") is None
    erp.idempotency_release("s", "k")  # an answered key is never given back
    assert erp.idempotency_get("s", "k") == ("h2", 201, "one")


def test_clocks_move_forward_only_and_faults_default_to_ok(erp: EmbeddedErp) -> None:
    clk = erp.create_clock(datetime(2026, 1, 1, tzinfo=UTC))
    moved = erp.advance_clock(clk.id, datetime(2026, 2, 1, tzinfo=UTC))
    assert moved.status == "advancing" and moved.frozen_time == datetime(2026, 2, 1, tzinfo=UTC)
    with pytest.raises(Conflict):
        erp.advance_clock(clk.id, datetime(2026, 1, 15, tzinfo=UTC))
    assert erp.advance_clock(clk.id, datetime(2026, 2, 1, tzinfo=UTC)) == moved  # a retry
    erp.set_fault("erp", "slow")
    assert {f.system: f.mode for f in erp.faults()} == {
        "erp": "slow",
        "payments": "ok",
        "notifications": "ok",
    }


def _race(n: int, fn: Callable[[int], object]) -> tuple[int, list[BaseException]]:
    """Run ``fn(0..n-1)`` on n threads at once: (how many returned, what the others raised)."""
    start, done, errors = threading.Barrier(n, timeout=30), [], []

    def run(i: int) -> None:
        start.wait()
        try:
            fn(i)
            done.append(i)
        except BaseException as exc:  # noqa: BLE001 - returned to the test
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert not any(t.is_alive() for t in threads), "a racer is stuck (a lock never released?)"
    return len(done), errors


def test_concurrent_reservations_never_oversell(erp: EmbeddedErp) -> None:
    catalog(erp)  # WIDGET-1: 10 on hand
    erp.reserve("held", "ord_0", {"WIDGET-1": 6})
    reserved, refused = _race(8, lambda i: erp.reserve(f"r{i}", f"ord_{i}", {"WIDGET-1": 1}))
    assert reserved == 4 and all(isinstance(e, OutOfStock) for e in refused)
    assert erp.inventory("WIDGET-1").reserved == 10
    _race(8, lambda i: erp.release(f"r{i}"))
    _race(4, lambda i: erp.release("held"))  # one release of a key, however often asked
    assert erp.inventory("WIDGET-1").reserved == 0


def test_a_passing_credit_check_commits_the_order_until_it_is_invoiced(erp: EmbeddedErp) -> None:
    c = customer(erp, credit_limit="300.00")
    erp.issue_invoice("open", draft(c.id, total="100.00"))
    day = date(2026, 5, 2)
    first = erp.commit_credit("o1:credit", c.id, "ord_1", D("150.00"), "EUR", day)
    assert first.committed and first.decision.approved
    assert (first.view.account.open_ar, first.view.account.open_orders) == (D("100.00"), D(0))
    # The first order now counts: 100 AR + 150 ordered + 100 is above 300.
    second = erp.commit_credit("o2:credit", c.id, "ord_2", D("100.00"), "EUR", day)
    assert not second.committed and not second.decision.approved
    assert second.view.account.open_orders == D("150.00")
    assert second.decision.reason == (
        "open AR 100.00 + open orders 150.00 + order 100.00 exceeds credit limit 300.00 by 50.00"
    )
    account = erp.credit_view(c.id, day).account
    assert (account.open_orders, account.credit_available) == (D("150.00"), D("50.00"))
    # The same key again: committed once, its own value not counted against itself.
    again = erp.commit_credit("o1:credit", c.id, "ord_1", D("150.00"), "EUR", day)
    assert again.committed and again.view.account.open_orders == D(0)
    assert erp.credit_view(c.id, day).account.open_orders == D("150.00")
    # Invoicing the order moves its value from open orders to open AR, part by part.
    part = draft(c.id, total="50.00").model_copy(update={"order_id": "ord_1"})
    inv = erp.issue_invoice("ord_1:part", part)
    account = erp.credit_view(c.id, day).account
    assert (account.open_ar, account.open_orders) == (D("150.00"), D("100.00"))
    # A voided invoice no longer consumes the commitment.
    erp.void_invoice("void", inv.id)
    assert erp.credit_view(c.id, day).account.open_orders == D("150.00")
    # Invoiced in full, the commitment is settled: checks no longer read it.
    rest = draft(c.id, total="150.00").model_copy(update={"order_id": "ord_1"})
    erp.issue_invoice("ord_1:rest", rest)
    assert _commitment_status(erp, "o1:credit") == "invoiced"
    account = erp.credit_view(c.id, day).account
    assert (account.open_ar, account.open_orders) == (D("250.00"), D(0))
    # A retry of the check that committed it answers the same, whatever became of it.
    assert erp.commit_credit("o1:credit", c.id, "ord_1", D("150.00"), "EUR", day).committed
    erp.release_credit("o1:credit")  # settled: a release changes nothing
    assert _commitment_status(erp, "o1:credit") == "invoiced"
    assert not erp.commit_credit("o2:credit", c.id, "ord_2", D("100.00"), "EUR", day).committed
    assert erp.commit_credit("o2:credit", c.id, "ord_2", D("50.00"), "EUR", day).committed
    erp.release_credit("o2:credit")
    erp.release_credit("o2:credit")  # released once, however often asked
    erp.release_credit("never-made")  # a skipped check made none: nothing to release
    assert _commitment_status(erp, "o2:credit") == "released"
    account = erp.credit_view(c.id, day).account
    assert (account.open_orders, account.credit_available) == (D(0), D("50.00"))


def _commitment_status(erp: EmbeddedErp, key: str) -> str:
    with erp._engine.connect() as conn:
        found = conn.execute(
            text("SELECT status FROM erp_credit_commitments WHERE key = :key"), {"key": key}
        )
        return str(found.scalar_one())


def test_a_released_hold_commits_whatever_the_position(erp: EmbeddedErp) -> None:
    c = customer(erp, credit_limit="100.00")
    day = date(2026, 5, 2)
    assert not erp.commit_credit("o1:credit", c.id, "ord_1", D("150.00"), "EUR", day).committed
    assert erp.credit_view(c.id, day).account.open_orders == D(0)  # a hold commits nothing
    forced = erp.commit_credit("o1:credit", c.id, "ord_1", D("150.00"), "EUR", day, force=True)
    assert forced.committed and not forced.decision.approved
    account = erp.credit_view(c.id, day).account
    assert (account.open_orders, account.credit_available) == (D("150.00"), D(0))
    with pytest.raises(CurrencyMismatch):
        erp.commit_credit("o3:credit", c.id, "ord_3", D("1.00"), "USD", day)
    with pytest.raises(InvalidInput):
        erp.commit_credit("o3:credit", c.id, "ord_3", D("1.001"), "EUR", day)
    with pytest.raises(NotFound):
        erp.commit_credit("o3:credit", "cus_nope", "ord_3", D("1.00"), "EUR", day)


def test_concurrent_credit_checks_never_commit_past_the_limit(erp: EmbeddedErp) -> None:
    """Five 50.00 orders checked at once against a 100.00 limit: two pass, three hold."""
    c = customer(erp, credit_limit="100.00")
    day = date(2026, 5, 2)
    outcomes: list[bool] = []

    def check(i: int) -> None:
        found = erp.commit_credit(f"o{i}:credit", c.id, f"ord_{i}", D("50.00"), "EUR", day)
        outcomes.append(found.committed)

    ran, errors = _race(5, check)
    assert (ran, errors) == (5, [])
    assert sorted(outcomes) == [False, False, False, True, True]
    account = erp.credit_view(c.id, day).account
    assert (account.open_orders, account.credit_available) == (D("100.00"), D(0))


def test_concurrent_shipments_without_a_reservation_deduct_once(erp: EmbeddedErp) -> None:
    catalog(erp)  # WIDGET-1: 10 on hand
    ran, lost = _race(4, lambda i: erp.commit_reservation("ship", {"WIDGET-1": 3}, "ord_1"))
    # A twin that lost the race on the key fails (its step retries, and finds it done).
    assert ran >= 1 and all(isinstance(e, IntegrityError) for e in lost)
    erp.commit_reservation("ship", {"WIDGET-1": 3}, "ord_1")
    assert erp.inventory("WIDGET-1").on_hand == 7


def test_concurrent_payments_never_overpay_an_invoice(erp: EmbeddedErp) -> None:
    c = customer(erp)
    inv = erp.issue_invoice("k1", draft(c.id, total="50.00"))
    paid, refused = _race(
        8, lambda i: erp.record_payment(f"p{i}", inv.id, D("10.00"), "card", f"ch_{i}", None)
    )
    assert paid == 5 and all(isinstance(e, InvoiceNotPayable) for e in refused)
    after = erp.get_invoice(inv.id)
    assert (after.amount_paid, after.status) == (D("50.00"), "paid")


def test_concurrent_clock_advances_only_ever_move_it_forward(erp: EmbeddedErp) -> None:
    start = datetime(2026, 1, 1, tzinfo=UTC)
    clock = erp.create_clock(start)
    moved, refused = _race(8, lambda i: erp.advance_clock(clock.id, start + timedelta(hours=1 + i)))
    assert moved >= 1 and all(isinstance(e, Conflict) for e in refused)
    assert erp.get_clock(clock.id).frozen_time == start + timedelta(hours=8)


def test_concurrent_first_fault_settings_all_land(erp: EmbeddedErp) -> None:
    modes: tuple[FaultMode, ...] = ("down", "slow")
    set_, failed = _race(8, lambda i: erp.set_fault("payments", modes[i % 2]))
    assert (set_, failed) == (8, [])
    assert {f.system: f.mode for f in erp.faults()}["payments"] in modes


def test_concurrent_price_book_replacements_leave_one_whole_book(erp: EmbeddedErp) -> None:
    catalog(erp)
    c = customer(erp)
    books = [
        [
            PriceItem(sku="WIDGET-1", unit_price=D(f"{i}.00")),
            PriceItem(sku="SETUP", unit_price=D(i)),
        ]
        for i in range(1, 7)
    ]
    replaced, failed = _race(6, lambda i: erp.set_prices(c.id, books[i]))
    assert (replaced, failed) == (6, [])
    final = erp.get_prices(c.id)
    assert len(final) == 2 and len({x.unit_price for x in final}) == 1  # one book, not a mix


def test_a_free_invoice_is_issued_paid_and_can_be_voided(erp: EmbeddedErp) -> None:
    c = customer(erp)
    inv = erp.issue_invoice("free", draft(c.id, total="0.00"))
    assert (inv.total, inv.amount_due, inv.status) == (D("0.00"), D("0.00"), "paid")
    assert erp.void_invoice("void-free", inv.id).status == "void"
    assert erp.trial_balance("EUR") == {}  # entries without postings: nothing moved


def test_counters_are_gapless_from_their_first_number_and_after_a_rollback(
    erp: EmbeddedErp,
) -> None:
    c = customer(erp)
    numbers, failed = _race(
        8, lambda i: erp.issue_invoice(f"k{i}", draft(c.id, issue=date(2031, 1, 1)))
    )
    assert (numbers, failed) == (8, [])  # eight first issuers of a year's counter
    issued = sorted(x.number for x in erp.list_invoices(c.id, None, 100, None).data)
    assert issued == [f"INV-2031-{n:06d}" for n in range(1, 9)]
    with pytest.raises(RuntimeError), unit_of_work(erp._engine) as s:
        assert next_value(s, "fresh") == 1
        raise RuntimeError("rolled back: the number is given back")
    with unit_of_work(erp._engine) as s:
        assert (next_value(s, "fresh"), next_value(s, "fresh")) == (1, 2)


def test_concurrent_calls_with_one_key_take_effect_once(erp: EmbeddedErp) -> None:
    catalog(erp)
    c = customer(erp)
    inv = erp.issue_invoice("k1", draft(c.id, total="50.00"))
    answers: list[str] = []
    paid, failed = _race(
        8,
        lambda i: answers.append(
            erp.record_payment("pay-1", inv.id, D("10.00"), "card", "ch_1", None).id
        ),
    )
    assert (paid, failed, len(set(answers))) == (8, [], 1)
    assert erp.get_invoice(inv.id).amount_paid == D("10.00")
    credited, failed = _race(8, lambda i: erp.issue_credit_note("cn-1", inv.id, D("5.00"), "x"))
    assert (credited, failed) == (8, [])
    assert erp.get_invoice(inv.id).amount_credited == D("5.00")
    reserved, failed = _race(8, lambda i: erp.reserve("res-1", "ord_1", {"WIDGET-1": 3}))
    assert (reserved, failed) == (8, []) and erp.inventory("WIDGET-1").reserved == 3


def test_waiting_processes_are_handed_out_once_and_oldest_first(erp: EmbeddedErp) -> None:
    for n in range(6):
        erp.add_backorder(f"proc-{n}", ["WIDGET-1"])
    taken: list[list[str]] = []
    assert _race(8, lambda i: taken.append(erp.take_backorders("WIDGET-1"))) == (8, [])
    handed = [p for batch in taken for p in batch]
    assert sorted(handed) == [f"proc-{n}" for n in range(6)]  # each once, none lost
    assert [b for b in taken if b] == [[f"proc-{n}" for n in range(6)]]  # in order, together
    assert erp.take_backorders("WIDGET-1") == []


def test_a_clock_is_marked_ready_only_at_the_time_its_processes_were_seen_at(
    erp: EmbeddedErp,
) -> None:
    start = datetime(2026, 1, 1, tzinfo=UTC)
    clock = erp.create_clock(start)
    erp.advance_clock(clock.id, start + timedelta(days=1))
    erp.advance_clock(clock.id, start + timedelta(days=2))  # after the processes were seen
    assert erp.mark_clock_ready(clock.id, start + timedelta(days=1)).status == "advancing"
    assert erp.mark_clock_ready(clock.id, start + timedelta(days=2)).status == "ready"


def test_a_clock_registers_its_processes_once_until_they_are_found_ended(
    erp: EmbeddedErp,
) -> None:
    clock = erp.create_clock(datetime(2026, 1, 1, tzinfo=UTC))
    other = erp.create_clock(datetime(2026, 1, 1, tzinfo=UTC))
    before = datetime.now(UTC)
    erp.register_clock_process(clock.id, "q2o-ord_a")
    first = erp.clock_processes(clock.id)["q2o-ord_a"]
    time.sleep(0.01)
    erp.register_clock_process(clock.id, "q2o-ord_a")  # a retried start renews its time
    assert erp.clock_processes(clock.id)["q2o-ord_a"] > first
    erp.register_clock_process(clock.id, "q2o-ord_b")
    erp.register_clock_process(other.id, "q2o-ord_c")
    registered = erp.clock_processes(clock.id)
    assert sorted(registered) == ["q2o-ord_a", "q2o-ord_b"]
    assert all(
        before - timedelta(seconds=1) <= at <= datetime.now(UTC) for at in registered.values()
    )
    erp.forget_clock_processes(clock.id, ["q2o-ord_a", "q2o-ord_c"])  # c is another clock's
    assert list(erp.clock_processes(clock.id)) == ["q2o-ord_b"]
    assert list(erp.clock_processes(other.id)) == ["q2o-ord_c"]
    erp.forget_clock_processes(clock.id, [])
    assert list(erp.clock_processes(clock.id)) == ["q2o-ord_b"]
