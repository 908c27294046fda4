"""Receipt arithmetic: catalogue prices (Decimal), multi-buy promotions, one tax rate per store.

Rounding rule (the only rounding step): every unit price and promotion price is a whole number of
cents, so line totals and the subtotal are exact. Tax is computed once, on the receipt's total after
promotions, and rounded half-up to the cent. total = subtotal - discount + tax.

Multi-buy promotion "N for P": every complete group of N units of the SKU costs P; the rest cost the
unit price. The discount shown is (N x unit price - P) per group. "Buy 2 get 1 free" is "3 for 2 x price".

Lines whose net quantity is zero or negative are left out (a put-back never becomes a credit), and SKUs
missing from the catalogue are listed as unpriced and never charged.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal

CENT = Decimal("0.01")


@dataclass(frozen=True)
class CatalogueItem:
    sku: str
    name: str
    price: Decimal


@dataclass(frozen=True)
class MultiBuy:
    sku: str
    quantity: int
    price: Decimal

    def __post_init__(self) -> None:
        if self.quantity < 2:
            raise ValueError("a multi-buy needs at least 2 units")
        if self.price <= 0 or self.price != self.price.quantize(CENT):
            raise ValueError("a multi-buy price is a positive whole number of cents")

    @property
    def label(self) -> str:
        return f"{self.quantity} for {self.price}"


@dataclass(frozen=True)
class PricedLine:
    sku: str
    name: str
    quantity: int
    unit_price: Decimal
    gross: Decimal  # quantity x unit price
    discount: Decimal  # promotion savings, >= 0
    promotion: str | None

    @property
    def net(self) -> Decimal:
        return self.gross - self.discount


@dataclass(frozen=True)
class PricedReceipt:
    lines: tuple[PricedLine, ...]
    unpriced: tuple[tuple[str, int], ...]
    subtotal: Decimal  # sum of gross
    discount: Decimal
    tax_rate: Decimal
    tax: Decimal
    total: Decimal

    def quantity_of(self, sku: str) -> int:
        return sum(line.quantity for line in self.lines if line.sku == sku)


def round_money(amount: Decimal) -> Decimal:
    return amount.quantize(CENT, rounding=ROUND_HALF_UP)


def to_cents(amount: Decimal) -> int:
    cents = amount * 100
    if cents != cents.to_integral_value():
        raise ValueError(f"{amount} is not a whole number of cents")
    return int(cents)


def from_cents(cents: int) -> Decimal:
    return (Decimal(cents) / 100).quantize(CENT)


def net_quantities(lines: Iterable[tuple[str, int]]) -> dict[str, int]:
    out: dict[str, int] = {}
    for sku, quantity in lines:
        out[sku] = out.get(sku, 0) + quantity
    return out


def price_receipt(
    quantities: Mapping[str, int],
    catalogue: Mapping[str, CatalogueItem],
    promotions: Mapping[str, MultiBuy],
    tax_rate: Decimal,
) -> PricedReceipt:
    if tax_rate < 0 or tax_rate >= 1:
        raise ValueError("tax rate must be in [0, 1)")
    lines: list[PricedLine] = []
    unpriced: list[tuple[str, int]] = []
    for sku in sorted(quantities):
        quantity = quantities[sku]
        if quantity <= 0:
            continue
        item = catalogue.get(sku)
        if item is None:
            unpriced.append((sku, quantity))
            continue
        gross = item.price * quantity
        discount = Decimal("0.00")
        label = None
        promo = promotions.get(sku)
        if promo is not None and quantity >= promo.quantity:
            groups = quantity // promo.quantity
            saving = groups * (item.price * promo.quantity - promo.price)
            if saving > 0:  # a promotion never costs more than the unit price
                discount, label = saving, promo.label
        lines.append(PricedLine(sku, item.name, quantity, item.price, gross, discount, label))
    subtotal = sum((line.gross for line in lines), Decimal("0.00"))
    discount_total = sum((line.discount for line in lines), Decimal("0.00"))
    tax = round_money((subtotal - discount_total) * tax_rate)
    total = subtotal - discount_total + tax
    return PricedReceipt(tuple(lines), tuple(unpriced), subtotal, discount_total, tax_rate, tax, total)


def added_amount(
    quantities: Mapping[str, int],
    sku: str,
    quantity: int,
    catalogue: Mapping[str, CatalogueItem],
    promotions: Mapping[str, MultiBuy],
    tax_rate: Decimal,
) -> Decimal:
    """What adding `quantity` units of `sku` to a receipt of `quantities` costs: the receipt's total with
    them minus its total without, so a unit that completes a multi-buy costs only what the group adds."""
    after = dict(quantities)
    after[sku] = after.get(sku, 0) + quantity
    return (
        price_receipt(after, catalogue, promotions, tax_rate).total
        - price_receipt(quantities, catalogue, promotions, tax_rate).total
    )
