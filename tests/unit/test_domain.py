"""Domain arithmetic: exact tables and hypothesis properties (API.md "Arithmetic")."""

from __future__ import annotations

from datetime import date, timedelta
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import BaseModel, ValidationError

from domain.credit import check_credit
from domain.errors import CurrencyMismatch, InvalidAmount, InvalidInput, UnknownCurrency
from domain.invoicing import DraftInvoice, assemble_order_invoice, due_date
from domain.money import (
    Amount,
    Fraction,
    InputAmount,
    Money,
    NonNegativeAmount,
    PositiveAmount,
    TaxRate,
    is_exact,
    minor_unit,
    quantize,
    to_decimal,
)
from domain.orders import split_order
from domain.pricing import CatalogLine, PricedLine, price_line, requires_approval, totals

D = Decimal


@pytest.mark.parametrize(
    ("amount", "currency", "expected"),
    [
        ("0.005", "EUR", "0.01"),
        ("2.675", "EUR", "2.68"),  # exact in Decimal, so half-up really rounds up
        ("-0.005", "EUR", "-0.01"),
        ("0.004999", "EUR", "0.00"),
        ("10.5", "JPY", "11"),
        ("1.0005", "KWD", "1.001"),
    ],
)
def test_quantize_is_half_up_at_the_minor_unit(amount: str, currency: str, expected: str) -> None:
    assert quantize(D(amount), currency) == D(expected)
    assert str(quantize(D(amount), currency)) == expected


def test_minor_units_follow_iso_4217() -> None:
    assert (minor_unit("EUR"), minor_unit("JPY"), minor_unit("KWD")) == (
        D("0.01"),
        D("1"),
        D("0.001"),
    )
    with pytest.raises(UnknownCurrency):
        minor_unit("XXX")


@pytest.mark.parametrize(
    "bad",
    [
        1.5,
        True,
        "NaN",
        "Infinity",
        "12abc",
        "",
        None,
        "1e999999",
    ],
)
def test_to_decimal_refuses_floats_non_finite_garbage_and_absurd_sizes(bad: object) -> None:
    with pytest.raises(InvalidAmount):
        to_decimal(bad)


def test_money_refuses_mixed_currencies_and_is_immutable() -> None:
    eur = Money("10.00", "EUR")
    with pytest.raises(CurrencyMismatch):
        _ = eur + Money("1", "USD")
    with pytest.raises(AttributeError):
        eur.amount = D(1)
    assert Money.of("1.005", "eur") == Money("1.01", "EUR")
    assert (eur - Money("0.01", "EUR")).amount == D("9.99")


class _M(BaseModel):
    a: Amount


def test_amount_fields_refuse_floats_and_serialize_as_strings() -> None:
    with pytest.raises(ValidationError):
        _M(a=1.1)
    assert _M(a=D("12.50")).model_dump_json() == '{"a":"12.50"}'


def _item(price: str, kind: str = "service", currency: str = "EUR") -> CatalogLine:
    return CatalogLine(
        sku="X",
        kind=kind,
        name="x",
        unit_price=D(price),
        currency=currency,
    )


def test_amounts_beyond_what_can_be_billed_are_invalid_input_not_a_crash() -> None:
    """A valid price and quantity can multiply past the largest amount stored (10^15)."""
    with pytest.raises(InvalidInput, match="beyond what o2c can bill"):
        price_line(_item("1000000000.00"), 1_000_000, "EUR")
    big = price_line(_item("600000000.00"), 1_000_000, "EUR").amount  # 6 x 10^14
    with pytest.raises(InvalidInput, match="subtotal"):
        totals([big, big], Decimal(0), Decimal(0), "EUR")
    with pytest.raises(InvalidInput, match="total"):
        totals([big], Decimal(0), Decimal("1"), "EUR")  # tax doubles it


def test_products_are_exact_before_their_one_rounding() -> None:
    """Two accepted amounts can multiply to more digits than the default 28: rounded there
    first, 999995000000000.03 x 0.999999999999 = ...000.034999999999|97 became ...000.035
    and then ...000.04 (half-up twice); exactly, it is ...000.03."""
    assert to_decimal("0.000000000001") == D("1e-12")  # 12 places: the finest accepted
    t = totals([D("999995000000000.03")], D("0.999999999999"), D(0), "EUR")
    assert t.discount == D("999994999999000.03")
    line = price_line(_item("999999.999999999999"), 999_999, "EUR")
    assert line.amount == quantize(D("999999.999999999999") * 999_999, "EUR")  # fits 28 digits
    assert Money("0.000000000003", "EUR").times(D("0.5")).amount == D("0.0000000000015")


def test_input_is_held_to_12_places_and_what_was_stored_before_stays_readable() -> None:
    """A client may send no finer than 10^-12; a value accepted earlier (a 16-place rate in
    a running process's input or a read model) still validates, or its process would be
    stuck failing to decode its input."""

    class Sent(BaseModel):
        rate: InputAmount

    class Kept(BaseModel):
        rate: Amount

    for bad in ("0.0000000000015", "0." + "1" * 45, "0.2500000000000001"):
        with pytest.raises(ValidationError, match="12 decimal places"):
            Sent(rate=bad)
        assert Kept(rate=bad).rate == D(bad)
    assert Sent(rate="0.123456789012").rate == D("0.123456789012")
    # Zero has no sign and no more than 12 places, however it is written.
    assert [format(to_decimal(z), "f") for z in ("-0", "0E-50", "-0.00")] == [
        "0",
        "0.000000000000",
        "0.00",
    ]


class Bounded(BaseModel):
    non_negative: NonNegativeAmount | None = None
    positive: PositiveAmount | None = None
    fraction: Fraction | None = None
    tax_rate: TaxRate | None = None


def _documented_pattern(field: str) -> str:
    schema = Bounded.model_json_schema()["properties"][field]["anyOf"][0]
    assert schema["type"] == "string"
    return str(schema["pattern"])


@pytest.mark.parametrize("field", ["non_negative", "fraction", "tax_rate"])
@given(data=st.data())
def test_every_amount_the_openapi_pattern_allows_is_accepted(
    field: str, data: st.DataObject
) -> None:
    """A client that builds its input from the published pattern is never refused (for
    ``positive``, the pattern less the zeros it cannot exclude)."""
    text = data.draw(st.from_regex(_documented_pattern(field), fullmatch=True))
    assert Bounded.model_validate({field: text}).model_dump()[field] == D(text)
    if D(text) > 0:
        assert Bounded(positive=text).positive == D(text)


@pytest.mark.parametrize(
    ("field", "refused"),
    [
        ("non_negative", ["-0.01", "1e15"]),
        ("positive", ["0", "0.00", "-1"]),
        ("fraction", ["-0.000000000001", "1.000000000001", "2"]),
        ("tax_rate", ["1", "1.00", "-0.1"]),
    ],
)
def test_bounded_amounts_refuse_what_their_bounds_exclude(field: str, refused: list[str]) -> None:
    for text in refused:
        with pytest.raises(ValidationError):
            Bounded.model_validate({field: text})


def test_price_line_rounds_once_per_line() -> None:
    line = price_line(_item("0.335"), 3, "EUR")  # 1.005 -> 1.01
    assert line.amount == D("1.01")
    with pytest.raises(CurrencyMismatch):
        price_line(_item("1", currency="USD"), 1, "EUR")
    with pytest.raises(InvalidInput):
        price_line(_item("1"), 0, "EUR")


@pytest.mark.parametrize(
    ("amounts", "pct", "rate", "expected"),
    [
        (["100.00"], "0", "0.19", ("100.00", "0.00", "19.00", "119.00")),
        (["150.00"], "0.25", "0.19", ("150.00", "37.50", "21.38", "133.88")),
        (["10.01", "20.02"], "0.15", "0.07", ("30.03", "4.50", "1.79", "27.32")),
        (["0.05"], "0.10", "0", ("0.05", "0.01", "0.00", "0.04")),
    ],
)
def test_totals_follow_the_discount_and_tax_formula(
    amounts: list[str], pct: str, rate: str, expected: tuple[str, str, str, str]
) -> None:
    t = totals([D(a) for a in amounts], D(pct), D(rate), "EUR")
    assert (t.subtotal, t.discount, t.tax, t.total) == tuple(D(x) for x in expected)


def test_approval_needs_a_discount_strictly_above_the_threshold() -> None:
    assert not requires_approval(D("0.20"), D("0.20"))
    assert requires_approval(D("0.2001"), D("0.20"))


def test_credit_check_holds_one_minor_unit_above_the_limit() -> None:
    ok = check_credit(D("400.00"), D("600.00"), D("1000.00"))
    assert ok.approved and ok.shortfall == 0
    held = check_credit(D("400.00"), D("600.01"), D("1000.00"))
    assert not held.approved and held.shortfall == D("0.01")
    assert "exceeds credit limit 1000.00 by 0.01" in held.reason


def _line(kind: str, sku: str, qty: int) -> PricedLine:
    return PricedLine(
        sku=sku if kind != "plan" else None,
        plan_code=sku if kind == "plan" else None,
        kind=kind,
        description=sku,
        quantity=qty,
        unit_price=D("1"),
        amount=D(qty),
    )


def test_split_sends_goods_to_shipments_services_to_orders_and_plans_to_subscriptions() -> None:
    split = split_order(
        [
            _line("physical", "A", 2),
            _line("service", "S", 1),
            _line("physical", "A", 3),
            _line("third_party", "T", 1),
            _line("plan", "P", 1),
        ]
    )
    assert split.stock_needed == {"A": 5}
    assert [x.sku for x in split.services] == ["S", "T"]
    assert [x.plan_code for x in split.plans] == ["P"]


def test_order_invoice_due_dates_and_line_kinds() -> None:
    issue = date(2026, 3, 2)
    assert due_date(issue, 30, pay_by_card=True) == issue
    assert due_date(issue, 30, pay_by_card=False) == issue + timedelta(days=30)
    lines = [
        _line("service", "S", 2),
        PricedLine(
            sku="T",
            kind="third_party",
            description="t",
            quantity=1,
            unit_price=D("5"),
            amount=D("5"),
            vendor="V",
        ),
    ]
    inv = assemble_order_invoice(
        customer_id="cus_1",
        currency="EUR",
        lines=lines,
        discount_pct=D("0.1"),
        tax_rate=D("0.19"),
        issue_date=issue,
        terms_days=14,
        pay_by_card=False,
        order_id="o",
        process_id="p",
    )
    assert [x.kind for x in inv.lines] == ["one_time", "third_party"]
    assert (inv.subtotal, inv.discount, inv.tax, inv.total) == (
        D("7"),
        D("0.70"),
        D("1.20"),
        D("7.50"),
    )
    assert inv.due_date == date(2026, 3, 16)


def test_draft_invoice_refuses_totals_that_do_not_add_up() -> None:
    with pytest.raises(ValidationError):
        DraftInvoice(
            customer_id="c",
            currency="EUR",
            issue_date=date(2026, 1, 1),
            due_date=date(2026, 1, 1),
            lines=[],
            subtotal=D("1"),
            tax=D("0"),
            total=D("1"),
        )


prices = st.decimals(
    min_value=D("0"), max_value=D("99999"), places=4, allow_nan=False, allow_infinity=False
)
rates = st.decimals(
    min_value=D("0"), max_value=D("1"), places=4, allow_nan=False, allow_infinity=False
)
currencies = st.sampled_from(["EUR", "JPY", "KWD"])


@given(
    st.lists(st.tuples(prices, st.integers(1, 500)), min_size=1, max_size=20),
    rates,
    rates,
    currencies,
)
def test_totals_are_sums_of_rounded_lines_and_never_drift(
    lines: list[tuple[Decimal, int]], pct: Decimal, rate: Decimal, currency: str
) -> None:
    priced = [price_line(_item(str(p), currency=currency), q, currency) for p, q in lines]
    t = totals([x.amount for x in priced], pct, rate, currency)
    half = minor_unit(currency) / 2
    assert t.subtotal == sum((x.amount for x in priced), D(0))
    assert t.total == t.subtotal - t.discount + t.tax
    assert abs(t.discount - t.subtotal * pct) <= half
    assert abs(t.tax - (t.subtotal - t.discount) * rate) <= half
    for value in (t.subtotal, t.discount, t.tax, t.total, *(x.amount for x in priced)):
        assert isinstance(value, Decimal) and is_exact(value, currency)
        assert quantize(quantize(value, currency), currency) == value


@given(st.lists(st.tuples(prices, st.integers(1, 50)), min_size=1, max_size=10), rates, rates)
def test_no_float_ever_appears_in_an_invoice(
    lines: list[tuple[Decimal, int]], pct: Decimal, rate: Decimal
) -> None:
    priced = [price_line(_item(str(p)), q, "EUR") for p, q in lines]
    inv = assemble_order_invoice(
        customer_id="c",
        currency="EUR",
        lines=priced,
        discount_pct=pct,
        tax_rate=rate,
        issue_date=date(2026, 1, 1),
        terms_days=30,
        pay_by_card=True,
        order_id="o",
        process_id="p",
    )

    def walk(value: object) -> None:
        assert not isinstance(value, float)
        if isinstance(value, dict):
            for v in value.values():
                walk(v)
        elif isinstance(value, list):
            for v in value:
                walk(v)

    walk(inv.model_dump())


@given(prices, prices, prices)
def test_credit_is_approved_exactly_when_exposure_fits(
    open_ar: Decimal, total: Decimal, limit: Decimal
) -> None:
    assert check_credit(open_ar, total, limit).approved == (open_ar + total <= limit)
