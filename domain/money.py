"""Money: an exact ``Decimal`` amount in one ISO 4217 currency.

Rounding is half-up to the currency's minor unit and happens only at named points: once
per line amount and once per derived total (see API.md "Arithmetic"). Ratios such as
proration are computed at ``RATIO_SCALE`` first. No float ever enters an amount: building
Money from a float raises.
"""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Context, Decimal, InvalidOperation
from typing import Annotated, Any

from pydantic import AfterValidator, BeforeValidator, Field, PlainSerializer, WithJsonSchema

from domain.errors import CurrencyMismatch, InvalidAmount, UnknownCurrency

# ISO 4217 minor units for the currencies o2c accepts.
MINOR_UNITS: dict[str, int] = {
    "AUD": 2,
    "BRL": 2,
    "CAD": 2,
    "CHF": 2,
    "CNY": 2,
    "CZK": 2,
    "DKK": 2,
    "EUR": 2,
    "GBP": 2,
    "HKD": 2,
    "HUF": 2,
    "IDR": 2,
    "ILS": 2,
    "INR": 2,
    "ISK": 0,
    "JPY": 0,
    "KRW": 0,
    "KWD": 3,
    "BHD": 3,
    "JOD": 3,
    "OMR": 3,
    "TND": 3,
    "MXN": 2,
    "NOK": 2,
    "NZD": 2,
    "PLN": 2,
    "SEK": 2,
    "SGD": 2,
    "THB": 2,
    "TRY": 2,
    "USD": 2,
    "ZAR": 2,
    "CLP": 0,
    "VND": 0,
    "UGX": 0,
}

# Amounts o2c accepts: below 10^15 and no finer than 10^-12 (anything else is a typo or
# an attack on the arithmetic, e.g. "1e999999").
MAX_MAGNITUDE = Decimal("1e15")
MIN_MAGNITUDE = Decimal("1e-12")

# Products and quotients of accepted amounts are worked out in this context: two factors of
# up to 27 digits each make at most 54, so a product is exact and the currency rounding is
# the only rounding (the default context keeps 28 digits and would round first).
EXACT = Context(prec=64)

# Scale for intermediate ratios (proration, per-day prices) before the final rounding.
RATIO_SCALE = Decimal("1e-9")


def check_currency(code: str) -> str:
    """Return ``code`` upper-cased if it is a known ISO 4217 currency, else raise."""
    upper = code.upper()
    if upper not in MINOR_UNITS:
        raise UnknownCurrency(code)
    return upper


def minor_unit(currency: str) -> Decimal:
    """The smallest amount of ``currency``: ``Decimal("0.01")`` for EUR, ``1`` for JPY."""
    return Decimal(1).scaleb(-MINOR_UNITS[check_currency(currency)])


def to_decimal(value: Any) -> Decimal:
    """Parse an amount from a str, int or Decimal; floats and non-finite values raise."""
    if isinstance(value, bool) or isinstance(value, float):
        raise InvalidAmount(f"amounts must be decimal strings, not {type(value).__name__}")
    if isinstance(value, Decimal):
        result = value
    elif isinstance(value, int | str):
        try:
            result = Decimal(value.strip() if isinstance(value, str) else value)
        except InvalidOperation as exc:
            raise InvalidAmount(f"not a decimal number: {value!r}") from exc
    else:
        raise InvalidAmount(f"not a decimal number: {value!r}")
    if not result.is_finite():
        raise InvalidAmount(f"not a finite number: {value!r}")
    if result != 0 and not MIN_MAGNITUDE <= abs(result) < MAX_MAGNITUDE:
        raise InvalidAmount(f"amount out of range: {value!r}")
    if result.is_zero():  # "-0" is 0, and "0E-50" is not 50 places of nothing
        exponent = result.as_tuple().exponent
        assert isinstance(exponent, int)  # a finite number's
        return Decimal(0).scaleb(max(exponent, -12))
    return result


def _precise(value: Decimal) -> Decimal:
    if value != value.quantize(MIN_MAGNITUDE):
        raise ValueError(f"more than 12 decimal places: {value}")
    return value


def times(a: Decimal, b: Decimal | int) -> Decimal:
    """``a × b``, exact: round the result once, at a named point."""
    return EXACT.multiply(a, Decimal(b))


def quantize(amount: Decimal, currency: str) -> Decimal:
    """Round ``amount`` half-up to the minor unit of ``currency``."""
    return amount.quantize(minor_unit(currency), rounding=ROUND_HALF_UP)


def is_exact(amount: Decimal, currency: str) -> bool:
    """True when ``amount`` has no digits below the currency's minor unit."""
    return quantize(amount, currency) == amount


def ratio(numerator: Decimal | int, denominator: Decimal | int) -> Decimal:
    """``numerator / denominator`` at ``RATIO_SCALE``, half-up: for proration factors."""
    return (Decimal(numerator) / Decimal(denominator)).quantize(RATIO_SCALE, ROUND_HALF_UP)


def _validate_decimal(value: Any) -> Decimal:
    try:
        return to_decimal(value)
    except InvalidAmount as exc:
        raise ValueError(str(exc)) from exc


# A Decimal field that refuses floats on the way in and is a string on the way out.
Amount = Annotated[
    Decimal,
    BeforeValidator(_validate_decimal),
    PlainSerializer(lambda d: format(d, "f"), return_type=str, when_used="json"),
    WithJsonSchema({"type": "string", "format": "decimal", "examples": ["1234.50"]}),
]


# What a client may send: an ``Amount`` no finer than 10^-12. Only input is held to it, so
# records stored and processes started before the limit stay readable.
InputAmount = Annotated[Amount, AfterValidator(_precise)]


def _documented(pattern: str, bounds: str, example: str) -> WithJsonSchema:
    """The JSON schema of a bounded input amount: JSON Schema's numeric bounds do not apply
    to a string, so its canonical form is a pattern and its bounds are said in words."""
    return WithJsonSchema(
        {
            "type": "string",
            "format": "decimal",
            "pattern": pattern,
            "description": f"a decimal string, {bounds}, at most 12 decimal places",
            "examples": [example],
        }
    )


_UNSIGNED = r"^[0-9]{1,15}(\.[0-9]{1,12})?$"
# The bounded input amounts of the API (their bounds checked as numbers, not as text).
NonNegativeAmount = Annotated[
    InputAmount, Field(ge=0), _documented(_UNSIGNED, "0 or more", "1234.50")
]
PositiveAmount = Annotated[
    InputAmount, Field(gt=0), _documented(_UNSIGNED, "more than 0", "1234.50")
]
Fraction = Annotated[
    InputAmount,
    Field(ge=0, le=1),
    _documented(r"^(0(\.[0-9]{1,12})?|1(\.0{1,12})?)$", "from 0 to 1", "0.15"),
]
TaxRate = Annotated[
    InputAmount,
    Field(ge=0, lt=1),
    _documented(r"^0(\.[0-9]{1,12})?$", "from 0 up to but not including 1", "0.19"),
]


class Money:
    """An immutable amount with its currency; arithmetic only within one currency."""

    __slots__ = ("amount", "currency")

    amount: Decimal
    currency: str

    def __init__(self, amount: Any, currency: str) -> None:
        object.__setattr__(self, "amount", to_decimal(amount))
        object.__setattr__(self, "currency", check_currency(currency))

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError("Money is immutable")

    @classmethod
    def of(cls, amount: Any, currency: str) -> Money:
        """Money rounded half-up to the minor unit (Kill Bill's ``KillBillMoney.of``)."""
        cur = check_currency(currency)
        return cls(quantize(to_decimal(amount), cur), cur)

    @classmethod
    def _computed(cls, amount: Decimal, currency: str) -> Money:
        """The exact result of arithmetic on valid Money (not input: not checked again)."""
        money = object.__new__(cls)
        object.__setattr__(money, "amount", amount)
        object.__setattr__(money, "currency", currency)
        return money

    @classmethod
    def zero(cls, currency: str) -> Money:
        return cls(quantize(Decimal(0), currency), currency)

    def quantized(self) -> Money:
        return Money(quantize(self.amount, self.currency), self.currency)

    def _same(self, other: Money) -> None:
        if other.currency != self.currency:
            raise CurrencyMismatch(self.currency, other.currency)

    def __add__(self, other: Money) -> Money:
        self._same(other)
        return Money(self.amount + other.amount, self.currency)

    def __sub__(self, other: Money) -> Money:
        self._same(other)
        return Money(self.amount - other.amount, self.currency)

    def __neg__(self) -> Money:
        return Money(-self.amount, self.currency)

    def times(self, factor: Decimal | int) -> Money:
        """Multiply by a quantity or rate, unrounded: call ``quantized()`` at a named point."""
        if isinstance(factor, float):
            raise InvalidAmount("factors must be Decimal, not float")
        return Money._computed(times(self.amount, factor), self.currency)

    def __eq__(self, other: object) -> bool:
        return (
            isinstance(other, Money)
            and self.currency == other.currency
            and self.amount == other.amount
        )

    def __lt__(self, other: Money) -> bool:
        self._same(other)
        return self.amount < other.amount

    def __le__(self, other: Money) -> bool:
        self._same(other)
        return self.amount <= other.amount

    def __gt__(self, other: Money) -> bool:
        self._same(other)
        return self.amount > other.amount

    def __ge__(self, other: Money) -> bool:
        self._same(other)
        return self.amount >= other.amount

    def __hash__(self) -> int:
        return hash((self.amount, self.currency))

    def __repr__(self) -> str:
        return f"Money('{self.amount}', '{self.currency}')"

    def __str__(self) -> str:
        return f"{self.amount} {self.currency}"


def total(amounts: list[Money], currency: str) -> Money:
    """The sum of ``amounts`` (all in ``currency``); zero for an empty list."""
    result = Money.zero(currency)
    for m in amounts:
        result = result + m
    return result
