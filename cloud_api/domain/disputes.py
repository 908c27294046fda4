"""Dispute rules (no I/O): how much a disputed line is worth, and who decides.

The refund for disputed units is the receipt's total minus the total of the same receipt re-priced
without those units, so promotions and the tax rounding rule apply exactly as they did at settlement.
"The receipt" here is what the visit keeps when the dispute is priced: its receipt's units, plus units
charged to it since as extra charges, less units already refunded (or being refunded). Extra charges
are priced at the margin of the same units, so what a visit keeps is always the price of the units the
shopper keeps, whichever disputes staff approve or reject, and in whatever order.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Literal

from cloud_api.domain.pricing import CatalogueItem, MultiBuy, PricedReceipt, price_receipt


class DisputeError(Exception):
    pass


@dataclass(frozen=True)
class DisputeRoute:
    route: Literal["auto_refund", "staff"]
    amount: Decimal
    why: str


def refund_amount(
    receipt: PricedReceipt,
    sku: str,
    quantity: int,
    already_disputed: int,
    catalogue: Mapping[str, CatalogueItem],
    promotions: Mapping[str, MultiBuy],
    kept: Mapping[str, int] | None = None,
) -> Decimal:
    """What `quantity` units of `sku` are worth. `already_disputed`: this SKU's units in other disputes
    not rejected (no more units are disputed than the receipt charged); `kept`: the units the price
    starts from (default: the receipt's, less `already_disputed` of this SKU). A dispute still waiting
    for staff is not taken off `kept`: it may yet be rejected."""
    charged = receipt.quantity_of(sku)
    if quantity < 1:
        raise DisputeError("dispute at least one unit")
    if charged == 0:
        raise DisputeError(f"SKU {sku} is not on this receipt")
    if already_disputed + quantity > charged:
        left = charged - already_disputed
        raise DisputeError(f"only {left} unit(s) of {sku} are left to dispute on this receipt")
    if kept is None:
        kept = {line.sku: line.quantity for line in receipt.lines}
        kept = kept | {sku: kept[sku] - already_disputed}
    before = dict(kept)
    after = before | {sku: before.get(sku, 0) - quantity}
    total_before = price_receipt(before, catalogue, promotions, receipt.tax_rate).total
    total_after = price_receipt(after, catalogue, promotions, receipt.tax_rate).total
    return total_before - total_after


def route_dispute(
    amount: Decimal, auto_limit: Decimal, recent_auto_refunds: int, max_auto_refunds: int
) -> DisputeRoute:
    if amount <= 0:
        return DisputeRoute("staff", amount, "nothing to refund automatically")
    if amount > auto_limit:
        return DisputeRoute("staff", amount, f"over the automatic refund limit of {auto_limit}")
    if recent_auto_refunds >= max_auto_refunds:
        return DisputeRoute("staff", amount, f"{recent_auto_refunds} automatic refunds in the last 30 days")
    return DisputeRoute("auto_refund", amount, f"at most {auto_limit}: refunded automatically")
