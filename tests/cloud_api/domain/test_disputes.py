from __future__ import annotations

from decimal import Decimal

import pytest

from cloud_api.domain.disputes import DisputeError, refund_amount, route_dispute
from cloud_api.domain.pricing import CatalogueItem, MultiBuy, price_receipt

CAT = {"cola": CatalogueItem("cola", "Cola", Decimal("1.39")), "bar": CatalogueItem("bar", "Bar", Decimal("0.99"))}
PROMOS = {"cola": MultiBuy("cola", 3, Decimal("3.49"))}
TAX = Decimal("0.0825")


def test_refund_reprices_without_the_disputed_units() -> None:
    r = price_receipt({"cola": 3, "bar": 1}, CAT, PROMOS, TAX)
    # without one cola the promotion no longer applies: 2 x 1.39 + 0.99 = 3.77 (+0.31 tax) = 4.08
    # with it: 3.49 + 0.99 = 4.48 (+0.37) = 4.85: refund 0.77
    assert refund_amount(r, "cola", 1, 0, CAT, PROMOS) == Decimal("0.77")
    assert refund_amount(r, "bar", 1, 0, CAT, PROMOS) == r.total - price_receipt({"cola": 3}, CAT, PROMOS, TAX).total


def test_the_sum_of_refunds_never_exceeds_the_total() -> None:
    r = price_receipt({"cola": 3, "bar": 1}, CAT, PROMOS, TAX)
    total = sum((refund_amount(r, "cola", 1, done, CAT, PROMOS) for done in range(3)), Decimal("0")) + refund_amount(
        r, "bar", 1, 0, CAT, PROMOS
    )
    assert total == r.total


def test_cannot_dispute_more_than_was_charged() -> None:
    r = price_receipt({"cola": 2}, CAT, PROMOS, TAX)
    with pytest.raises(DisputeError, match="only 1"):
        refund_amount(r, "cola", 2, 1, CAT, PROMOS)
    with pytest.raises(DisputeError, match="not on this receipt"):
        refund_amount(r, "bar", 1, 0, CAT, PROMOS)


def test_routing() -> None:
    assert route_dispute(Decimal("4.99"), Decimal("5.00"), 0, 3).route == "auto_refund"
    assert route_dispute(Decimal("5.01"), Decimal("5.00"), 0, 3).route == "staff"
    assert route_dispute(Decimal("1.00"), Decimal("5.00"), 3, 3).route == "staff"
