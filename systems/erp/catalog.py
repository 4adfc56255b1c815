"""Customers, payment-method references, price books, products, plans and partners."""

from __future__ import annotations

from decimal import Decimal

from sqlalchemy import bindparam
from sqlalchemy.engine import Connection
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select

from domain.errors import Conflict, CurrencyMismatch, InvalidInput, NotFound
from domain.pricing import CatalogLine
from systems.db import read_connection, unit_of_work
from systems.erp.common import ErpBase, exact, page_query, require
from systems.erp.tables import (
    CustomerRow,
    PartnerRow,
    PaymentMethodRow,
    PlanRow,
    PriceRow,
    ProductRow,
    StockRow,
)
from systems.ids import new_id
from systems.records import (
    Agreement,
    Customer,
    CustomerCreate,
    Page,
    Partner,
    PartnerCreate,
    PaymentMethod,
    Plan,
    PlanCreate,
    PriceItem,
    Product,
    ProductCreate,
    UsageCharge,
)


def _customer(row: CustomerRow) -> Customer:
    return Customer.model_validate(row, from_attributes=True)


_CUSTOMERS = CustomerRow.__table__  # type: ignore[attr-defined]
# The hot reads (every credit check, quote, order and e-mail) as prebuilt Core statements:
# no ORM objects are built for rows that are only read.
_CUSTOMER = select(_CUSTOMERS).where(_CUSTOMERS.c.id == bindparam("customer_id"))


_METHODS = PaymentMethodRow.__table__  # type: ignore[attr-defined]
HAS_METHOD = (
    select(_METHODS.c.id).where(_METHODS.c.customer_id == bindparam("customer_id")).limit(1)
)


def read_customer(conn: Connection, customer_id: str) -> Customer:
    row = conn.execute(_CUSTOMER, {"customer_id": customer_id}).mappings().first()
    if row is None:
        raise NotFound("customer", customer_id)
    return Customer.model_validate(dict(row))


def default_method(s: Session, customer_id: str) -> PaymentMethodRow | None:
    """The newest payment method is the default."""
    return s.exec(
        select(PaymentMethodRow)
        .where(PaymentMethodRow.customer_id == customer_id)
        .order_by(col(PaymentMethodRow.created_at).desc(), col(PaymentMethodRow.id))
    ).first()


def _product(row: ProductRow) -> Product:
    return Product.model_validate(row, from_attributes=True)


def _plan(row: PlanRow) -> Plan:
    usage = [UsageCharge.model_validate(u) for u in row.usage or []]
    return Plan(
        id=row.id,
        code=row.code,
        name=row.name,
        currency=row.currency,
        interval=row.interval,
        price=row.price,
        trial_days=row.trial_days,
        usage=usage,
        created_at=row.created_at,
    )


class CatalogMixin(ErpBase):
    def create_customer(self, data: CustomerCreate) -> Customer:
        limit = exact(data.credit_limit, data.currency, "credit_limit")
        data = data.model_copy(update={"credit_limit": limit})
        with unit_of_work(self._engine) as s:
            if data.partner_id is not None:
                require(s, PartnerRow, data.partner_id, "partner")
            if data.test_clock_id is not None:
                from systems.erp.tables import ClockRow

                require(s, ClockRow, data.test_clock_id, "test clock")
            row = CustomerRow(id=new_id("cus"), **data.model_dump())
            s.add(row)
            s.flush()
            return _customer(row)

    def get_customer(self, customer_id: str) -> Customer:
        with read_connection(self._engine) as conn:
            return read_customer(conn, customer_id)

    def has_payment_method(self, customer_id: str) -> bool:
        """Whether the customer has a card on file (one indexed read)."""
        with read_connection(self._engine) as conn:
            return conn.execute(HAS_METHOD, {"customer_id": customer_id}).first() is not None

    def list_customers(self, limit: int, cursor: str | None) -> Page[Customer]:
        with unit_of_work(self._engine, read=True) as s:
            rows, nxt = page_query(s, CustomerRow, [], limit, cursor)
            return Page[Customer](data=[_customer(r) for r in rows], next_cursor=nxt)

    def set_prices(self, customer_id: str, items: list[PriceItem]) -> list[PriceItem]:
        """Replace the customer's price book with ``items`` (one replacement of a
        customer's book at a time: the customer row is locked)."""
        with unit_of_work(self._engine) as s:
            c = require(s, CustomerRow, customer_id, "customer", lock=True)
            prices = []
            for item in items:
                currency = self._item_currency(s, item)
                if currency != c.currency:
                    raise CurrencyMismatch(c.currency, currency)
                prices.append(exact(item.unit_price, c.currency, "unit_price"))
            for old in s.exec(select(PriceRow).where(PriceRow.customer_id == customer_id)):
                s.delete(old)
            s.flush()
            for item, price in zip(items, prices, strict=True):
                key = f"sku:{item.sku}" if item.sku else f"plan:{item.plan_code}"
                s.add(PriceRow(customer_id=customer_id, item=key, unit_price=price))
        return self.get_prices(customer_id)

    @staticmethod
    def _item_currency(s: Session, item: PriceItem) -> str:
        if item.sku is not None:
            return require(s, ProductRow, item.sku, "product").currency
        return require(s, PlanRow, item.plan_code, "plan").currency

    def get_prices(self, customer_id: str) -> list[PriceItem]:
        with unit_of_work(self._engine, read=True) as s:
            require(s, CustomerRow, customer_id, "customer")
            rows = s.exec(
                select(PriceRow)
                .where(PriceRow.customer_id == customer_id)
                .order_by(col(PriceRow.item))
            ).all()
            return [
                PriceItem(sku=r.item[4:], unit_price=r.unit_price)
                if r.item.startswith("sku:")
                else PriceItem(plan_code=r.item[5:], unit_price=r.unit_price)
                for r in rows
            ]

    def add_payment_method(
        self, customer_id: str, token: str, brand: str, last4: str, exp_month: int, exp_year: int
    ) -> PaymentMethod:
        with unit_of_work(self._engine) as s:
            require(s, CustomerRow, customer_id, "customer")
            row = PaymentMethodRow(
                id=new_id("pm"),
                customer_id=customer_id,
                token=token,
                brand=brand,
                last4=last4,
                exp_month=exp_month,
                exp_year=exp_year,
            )
            s.add(row)
            s.flush()
            return PaymentMethod.model_validate(row, from_attributes=True)

    def create_product(self, data: ProductCreate) -> Product:
        price = exact(data.unit_price, data.currency, "unit_price")
        data = data.model_copy(update={"unit_price": price})
        row = ProductRow(id=new_id("prd"), **data.model_dump(exclude={"stock"}))
        try:
            with unit_of_work(self._engine) as s:
                s.add(row)
                if data.kind == "physical":
                    s.add(StockRow(sku=data.sku, on_hand=data.stock or 0))
                s.flush()
                return _product(row)
        except IntegrityError as exc:
            raise Conflict(f"a product with sku {data.sku} exists") from exc

    def get_product(self, sku: str) -> Product:
        with unit_of_work(self._engine, read=True) as s:
            return _product(require(s, ProductRow, sku, "product"))

    def create_plan(self, data: PlanCreate) -> Plan:
        price = exact(data.price, data.currency, "price")
        for charge in data.usage:  # a tier's fee is an amount; its unit price may be finer
            for tier in charge.tiers or []:
                tier.flat_fee = exact(tier.flat_fee, data.currency, "flat_fee")
        row = PlanRow(
            id=new_id("pln"),
            code=data.code,
            name=data.name,
            currency=data.currency,
            interval=data.interval,
            price=price,
            trial_days=data.trial_days,
            usage=[u.model_dump(mode="json") for u in data.usage],
        )
        try:
            with unit_of_work(self._engine) as s:
                s.add(row)
                s.flush()
                return _plan(row)
        except IntegrityError as exc:
            raise Conflict(f"a plan with code {data.code} exists") from exc

    def get_plan(self, code: str) -> Plan:
        with unit_of_work(self._engine, read=True) as s:
            return _plan(require(s, PlanRow, code, "plan"))

    def create_partner(self, data: PartnerCreate) -> Partner:
        with unit_of_work(self._engine) as s:
            row = PartnerRow(
                id=new_id("prt"),
                name=data.name,
                email=data.email,
                agreement=data.agreement.model_dump(mode="json"),
            )
            s.add(row)
            s.flush()
            return self._partner(row)

    def get_partner(self, partner_id: str) -> Partner:
        with unit_of_work(self._engine, read=True) as s:
            return self._partner(require(s, PartnerRow, partner_id, "partner"))

    @staticmethod
    def _partner(row: PartnerRow) -> Partner:
        return Partner(
            id=row.id,
            name=row.name,
            email=row.email,
            agreement=Agreement.model_validate(row.agreement),
            created_at=row.created_at,
        )

    def catalog_lines(
        self, customer_id: str, items: list[tuple[str | None, str | None]]
    ) -> list[CatalogLine]:
        """Each (sku, plan_code) priced for the customer: price book, then list price."""
        with unit_of_work(self._engine, read=True) as s:
            c = require(s, CustomerRow, customer_id, "customer")
            book = {
                r.item: r.unit_price
                for r in s.exec(select(PriceRow).where(PriceRow.customer_id == customer_id))
            }
            out: list[CatalogLine] = []
            for i, (sku, plan_code) in enumerate(items):
                # A refusal names the line it is about, as a validation error would.
                loc = ("body", "lines", i, "sku" if sku is not None else "plan_code")
                line = self._catalog_line(s, sku, plan_code, book, loc)
                if line.currency != c.currency:
                    raise InvalidInput(
                        f"{sku or plan_code} is priced in {line.currency}, "
                        f"the customer pays in {c.currency}",
                        loc,
                    )
                out.append(line)
            return out

    @staticmethod
    def _catalog_line(
        s: Session,
        sku: str | None,
        plan_code: str | None,
        book: dict[str, Decimal],
        loc: tuple[str | int, ...],
    ) -> CatalogLine:
        if sku is not None:
            p = s.get(ProductRow, sku)
            if p is None:
                raise InvalidInput(f"unknown sku {sku}", loc)
            special = book.get(f"sku:{sku}")
            return CatalogLine(
                sku=sku,
                kind=p.kind,
                name=p.name,
                unit_price=special if special is not None else p.unit_price,
                currency=p.currency,
                vendor=p.vendor,
                from_price_book=special is not None,
            )
        plan = s.get(PlanRow, plan_code)
        if plan is None:
            raise InvalidInput(f"unknown plan {plan_code}", loc)
        special = book.get(f"plan:{plan_code}")
        return CatalogLine(
            plan_code=plan_code,
            kind="plan",
            name=plan.name,
            unit_price=special if special is not None else plan.price,
            currency=plan.currency,
            from_price_book=special is not None,
        )
