from __future__ import annotations

from decimal import Decimal

import pytest

from cloud_api.domain.pricing import (
    CatalogueItem,
    MultiBuy,
    added_amount,
    net_quantities,
    price_receipt,
    round_money,
    to_cents,
)

CAT = {
    "cola": CatalogueItem("cola", "Cola", Decimal("1.39")),
    "water": CatalogueItem("water", "Water", Decimal("2.69")),
    "bar": CatalogueItem("bar", "Bar", Decimal("0.99")),
}
PROMOS = {"cola": MultiBuy("cola", 3, Decimal("3.49"))}


def test_multi_buy_applies_per_complete_group() -> None:
    r = price_receipt({"cola": 7}, CAT, PROMOS, Decimal("0"))
    (line,) = r.lines
    assert line.gross == Decimal("9.73")
    # two groups of 3 at 3.49 and one at 1.39: 6.98 + 1.39 = 8.37
    assert line.net == Decimal("8.37")
    assert line.discount == Decimal("1.36")
    assert line.promotion == "3 for 3.49"


def test_below_the_group_size_there_is_no_discount() -> None:
    r = price_receipt({"cola": 2}, CAT, PROMOS, Decimal("0"))
    assert r.discount == 0
    assert r.lines[0].promotion is None


def test_tax_is_rounded_once_half_up_on_the_discounted_total() -> None:
    # 2.69 + 0.99 = 3.68; x 0.0825 = 0.3036 -> 0.30
    r = price_receipt({"water": 1, "bar": 1}, CAT, PROMOS, Decimal("0.0825"))
    assert (r.subtotal, r.tax, r.total) == (Decimal("3.68"), Decimal("0.30"), Decimal("3.98"))
    # a half cent rounds up: 0.99 x 0.05 x 2 = 0.099 ; 10 bars: 9.90 x 0.05 = 0.495 -> 0.50
    r2 = price_receipt({"bar": 10}, CAT, PROMOS, Decimal("0.05"))
    assert r2.tax == Decimal("0.50")
    assert round_money(Decimal("0.125")) == Decimal("0.13")


def test_tax_applies_after_the_promotion() -> None:
    r = price_receipt({"cola": 3}, CAT, PROMOS, Decimal("0.10"))
    assert r.subtotal - r.discount == Decimal("3.49")
    assert r.tax == Decimal("0.35")  # 0.349 -> 0.35
    assert r.total == Decimal("3.84")


def test_put_backs_net_out_and_never_become_credit() -> None:
    q = net_quantities([("cola", 2), ("cola", -2), ("water", -1), ("bar", 1)])
    r = price_receipt(q, CAT, PROMOS, Decimal("0"))
    assert [line.sku for line in r.lines] == ["bar"]
    assert r.total == Decimal("0.99")


def test_unknown_skus_are_listed_but_not_charged() -> None:
    r = price_receipt({"mystery": 2, "bar": 1}, CAT, PROMOS, Decimal("0"))
    assert r.unpriced == (("mystery", 2),)
    assert r.total == Decimal("0.99")


def test_money_is_exact_cents() -> None:
    assert to_cents(Decimal("2.69")) == 269
    with pytest.raises(ValueError, match="cents"):
        to_cents(Decimal("0.001"))
    with pytest.raises(ValueError, match="multi-buy"):
        MultiBuy("x", 1, Decimal("1.00"))


def test_an_added_unit_costs_what_it_adds_to_the_receipt_total() -> None:
    catalogue = {
        "cola": CatalogueItem("cola", "Cola", Decimal("1.39")),
        "water": CatalogueItem("water", "W", Decimal("2.69")),
    }
    promotions = {"cola": MultiBuy("cola", 3, Decimal("3.49"))}
    rate = Decimal("0.0825")
    # the third cola completes the 3-for-3.49 group: it adds 3.49 - 2.78 = 0.71 plus tax on the difference
    before = price_receipt({"cola": 2}, catalogue, promotions, rate).total
    after = price_receipt({"cola": 3}, catalogue, promotions, rate).total
    assert added_amount({"cola": 2}, "cola", 1, catalogue, promotions, rate) == after - before == Decimal("0.77")
    assert added_amount({"cola": 2}, "water", 1, catalogue, promotions, rate) == Decimal("2.91")
