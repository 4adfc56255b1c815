"""The embedded ERP: the ``Erp`` port on SQLModel, composed of its parts.

Catalog (customers, prices, products, plans, partners), credit (the position and
the commitments of accepted orders), stock (reservations, backorders),
billing (sales orders, invoices, payments, credit notes, refunds, ledger) and platform
records. One transaction per call; every keyed call is idempotent.
"""

from __future__ import annotations

from systems.erp.billing import BillingMixin
from systems.erp.catalog import CatalogMixin
from systems.erp.credit import CreditMixin
from systems.erp.platform import PlatformMixin
from systems.erp.stock import StockMixin


class EmbeddedErp(CatalogMixin, CreditMixin, StockMixin, BillingMixin, PlatformMixin):
    """The system of record that ``make run`` ships with."""
