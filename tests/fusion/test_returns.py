"""Who a put-back is netted against: only someone whose cart holds the product, and only as surely as
the weight and the people around say. Demo store; the event is a +42 g change on one plate."""

from __future__ import annotations

from store_edge.fusion.engine import Cart, CartLine, Decision, EngineOutput, FusionEngine
from store_edge.fusion.products import ProductHypothesis
from store_edge.fusion.shoppers import ShopperCandidate
from store_edge.fusion.weight_events import PlateChange, WeightEvent
from store_edge.layout import StoreLayout

SKU = "2860754476340"
EVENT = WeightEvent(
    "G3-S2-e2", "G3-S2", 10**9, 2 * 10**9, (PlateChange("G3-S2-P04", 3, 10**9, 2 * 10**9, 42.0, 2218.0, 2260.0),)
)


def _engine(store: StoreLayout, holders: list[str], others: list[str]) -> FusionEngine:
    engine = FusionEngine(store)
    for visit in holders + others:
        engine.carts[visit] = Cart(visit, f"acct-{visit}")
    for visit in holders:
        engine.carts[visit].lines.append(CartLine("L1", SKU, 1, 0.99, "G3-S2-e1", "confirmed", [], []))
    return engine


def _return(engine: FusionEngine, shoppers: list[tuple[str | None, float]]) -> list[CartLine]:
    decision = Decision(
        EVENT,
        [ProductHypothesis(((SKU, 1),), 0.87, -7.7)],
        [ShopperCandidate(visit, p, 0.3 if visit else None, f"t-{visit}" if visit else None) for visit, p in shoppers],
        hands=1,
    )
    engine._apply_return(decision, EngineOutput())
    return [line for _, line in decision.lines]


def test_a_put_back_by_someone_who_holds_none_is_not_refunded_to_a_bystander(demo_store: StoreLayout) -> None:
    # alice put something back (0.96) but holds none of this product; bob, far away, does
    engine = _engine(demo_store, holders=["bob"], others=["alice", "dave"])
    lines = _return(engine, [("alice", 0.96), ("dave", 0.04), (None, 1e-4), ("bob", 1e-40)])
    assert [(line.sku, line.quantity, line.status) for line in lines] == [(SKU, -1, "under_review")]
    assert engine.carts["bob"].receipt == {SKU: 1}  # still charged until staff say otherwise


def test_the_only_holder_nearby_gets_the_put_back(demo_store: StoreLayout) -> None:
    # alice, likeliest, holds it; bob beside her does not: it can only be hers
    engine = _engine(demo_store, holders=["alice"], others=["bob"])
    lines = _return(engine, [("alice", 0.6), ("bob", 0.4), (None, 1e-4)])
    assert [(line.sku, line.quantity, line.status) for line in lines] == [(SKU, -1, "confirmed")]
    assert engine.carts["alice"].receipt == {}


def test_a_holder_less_likely_than_a_non_holder_beside_them_is_held(demo_store: StoreLayout) -> None:
    engine = _engine(demo_store, holders=["alice"], others=["bob"])
    lines = _return(engine, [("bob", 0.6), ("alice", 0.4), (None, 1e-4)])
    assert [(line.sku, line.quantity, line.status) for line in lines] == [(SKU, -1, "under_review")]


def test_several_hands_putting_back_at_once_refund_those_within_reach_not_a_passer_by(
    demo_store: StoreLayout,
) -> None:
    # three units put back at once, three hands: alice's party carried two, bob one. carol, who carries
    # one too, came within reach for a moment while walking past: less likely than nobody at all
    engine = _engine(demo_store, holders=["alice", "bob", "carol"], others=[])
    engine.carts["alice"].lines.append(CartLine("L2", SKU, 1, 0.99, "G3-S2-e0", "confirmed", [], []))
    change = PlateChange("G3-S2-P04", 3, 10**9, 2 * 10**9, 126.0, 2218.0, 2344.0)
    decision = Decision(
        WeightEvent("G3-S2-e3", "G3-S2", 10**9, 2 * 10**9, (change,)),
        [ProductHypothesis(((SKU, 3),), 0.95, -7.7)],
        [
            ShopperCandidate("alice", 0.6, 0.3, "t-alice"),
            ShopperCandidate("bob", 0.4, 0.4, "t-bob"),
            ShopperCandidate(None, 1e-4, None, None),
            ShopperCandidate("carol", 1e-60, 0.7, "t-carol"),
        ],
        hands=3,
    )
    engine._apply_return(decision, EngineOutput())
    assert {cart.visit_id: line.quantity for cart, line in decision.lines} == {"alice": -2, "bob": -1}
    assert all(line.status == "confirmed" for _, line in decision.lines)
    assert engine.carts["carol"].receipt == {SKU: 1}
