"""Named business errors raised by the domain and the systems of record.

Each carries a stable ``code`` (also the Temporal ``ApplicationError`` type and the
problem+json ``type`` suffix) so workflows and the API branch on it, not on messages.
"""

from __future__ import annotations


class DomainError(Exception):
    """A business rule said no. Never retried: the caller branches on ``code``.

    ``loc`` says where in the request the refused input was, when it is known (the API's
    ``errors[].loc``): the body unless a raiser names a query parameter or a header."""

    code = "domain_error"
    status = 409
    loc: tuple[str | int, ...] = ("body",)

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class InvalidAmount(DomainError):
    code = "invalid_amount"
    status = 422


class UnknownCurrency(DomainError):
    code = "unknown_currency"
    status = 422

    def __init__(self, currency: str) -> None:
        super().__init__(f"unknown ISO 4217 currency: {currency!r}")
        self.currency = currency


class CurrencyMismatch(DomainError):
    code = "currency_mismatch"
    status = 422

    def __init__(self, expected: str, got: str) -> None:
        super().__init__(f"currency mismatch: expected {expected}, got {got}")


class InvalidInput(DomainError):
    """Input that parses but breaks a business rule (unknown SKU in a quote, …)."""

    code = "invalid_input"
    status = 422

    def __init__(self, message: str, loc: tuple[str | int, ...] | None = None) -> None:
        super().__init__(message)
        if loc is not None:
            self.loc = loc


class NotFound(DomainError):
    code = "not_found"
    status = 404

    def __init__(self, kind: str, key: str) -> None:
        super().__init__(f"{kind} {key} not found")
        self.kind = kind
        self.key = key


class Conflict(DomainError):
    """The resource's state does not allow the action (or a duplicate key)."""

    code = "conflict"
    status = 409


class CreditLimitExceeded(DomainError):
    code = "credit_limit_exceeded"


class OutOfStock(DomainError):
    code = "out_of_stock"

    def __init__(self, shortages: dict[str, int]) -> None:
        detail = ", ".join(f"{sku} short by {n}" for sku, n in sorted(shortages.items()))
        super().__init__(f"not enough available stock: {detail}")
        self.shortages = shortages


class CardDeclined(DomainError):
    """The gateway declined the card; ``decline_code`` is e.g. ``card_declined``."""

    code = "card_declined"
    status = 402

    def __init__(self, decline_code: str, message: str | None = None) -> None:
        super().__init__(message or f"card declined: {decline_code}")
        self.decline_code = decline_code


class InvoiceNotPayable(DomainError):
    code = "invoice_not_payable"


class ManualRefundRequired(DomainError):
    """Money paid by other means than a card (a bank transfer) must be refunded by hand."""

    code = "manual_refund_required"


class MessageRefused(DomainError):
    """The mail server refused a message for good (an SMTP 5xx answer: no such mailbox,
    message rejected): sending it again would be refused again."""

    code = "message_refused"
    status = 422


class UnbalancedEntry(DomainError):
    """A ledger entry whose debits and credits differ: a programming error surfaced loudly."""

    code = "unbalanced_entry"
    status = 500


class SystemUnavailable(Exception):
    """A technical failure of a system of record (down, timed out): retried with backoff."""

    def __init__(self, system: str, message: str) -> None:
        super().__init__(f"{system}: {message}")
        self.system = system
