"""What was taken: product hypotheses from the weight, the plates and where the hand went in."""

from __future__ import annotations

import pytest

from store_edge.fusion.products import PlateInventory, score_products
from store_edge.fusion.weight_events import PlateChange, WeightEvent
from store_edge.layout import StoreLayout

WHITE, MILK = "2584489278184", "2387449520190"
"""Cocoa Road White and Milk Chocolate bars (hard store): 44 g each; their facings meet on G5-S1-P07,
white's from the left (P05-P07), milk's to the right (P07-P09)."""
SHARED = "G5-S1-P07"


def _pick_from_shared_plate(store: StoreLayout) -> WeightEvent:
    geo = store.plate_geometry[SHARED]
    change = PlateChange(SHARED, geo.index_on_shelf, 10**9, 2 * 10**9, -44.1, 1300.0, 1255.9)
    return WeightEvent("G5-S1-e1", geo.shelf_id, 10**9, 2 * 10**9, (change,))


def _odds(store: StoreLayout, reach_x_m: float | None) -> dict[str, float]:
    hyps = score_products(_pick_from_shared_plate(store), store, PlateInventory(store), reach_x_m=reach_x_m)
    return {items[0][0]: h.probability for h in hyps if len(items := h.items) == 1 and items[0][1] == 1}


def test_where_the_hand_went_in_tells_same_weight_products_on_one_plate_apart(hard_store: StoreLayout) -> None:
    lo, hi = hard_store.plate_geometry[SHARED].x_range_m
    assert hard_store.where_on_plate_m(SHARED, WHITE) == pytest.approx(lo + (hi - lo) / 4)
    assert hard_store.where_on_plate_m(SHARED, MILK) == pytest.approx(lo + 3 * (hi - lo) / 4)
    # the weight alone: a coin toss
    blind = _odds(hard_store, None)
    assert abs(blind[WHITE] - blind[MILK]) < 0.1
    # the hand went in on white's part of the plate, or on milk's
    assert _odds(hard_store, lo + 0.025)[WHITE] > 0.85
    assert _odds(hard_store, hi - 0.025)[MILK] > 0.85
    # in the middle, where the two meet, it cannot say
    middle = _odds(hard_store, (lo + hi) / 2)
    assert abs(middle[WHITE] - middle[MILK]) < 0.1
