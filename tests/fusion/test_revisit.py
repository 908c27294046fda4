"""Asking again who made an event (after the tracks' ids were set right): its lines are made again only
when the answer changes them, not for odds that moved a little."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from store_edge.fusion.engine import Decision, FusionEngine
from store_edge.sim.scenario import Action, Shopper
from tests.fusion.conftest import RunScenario

COCOA = "2989422016913"  # 43.5 g, G3-S1-P08..09
MALT = "2509556969802"


class KeptEngine(FusionEngine):
    """The engine, kept after the evaluation for a look at its decisions."""

    last: KeptEngine | None = None

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        KeptEngine.last = self


def _decisions(run_scenario: RunScenario) -> tuple[FusionEngine, Decision, Decision]:
    """a takes a cocoa bar and puts back a malt-ball box she took; b shops elsewhere."""
    a_actions = [
        Action(at_s=15, kind="pick", sku=COCOA),
        Action(at_s=25, kind="pick", sku=MALT),
        Action(at_s=35, kind="put_back", sku=MALT),
    ]
    run_scenario(
        [
            Shopper(id="a", account="acct-a", enter_s=2, actions=a_actions),
            Shopper(id="b", account="acct-b", enter_s=4, actions=[Action(at_s=20, kind="pick", sku=MALT)]),
        ],
        seed=3,
        engine_class=KeptEngine,
    )
    engine = KeptEngine.last
    assert engine is not None
    pick = next(d for d in engine.decisions if d.event.total_g < 0 and COCOA in {ln.sku for _, ln in d.lines})
    put_back = next(d for d in engine.decisions if d.event.total_g > 0 and d.lines)
    return engine, pick, put_back


def test_a_pick_is_made_again_only_when_its_taker_or_its_review_changes(run_scenario: RunScenario) -> None:
    engine, pick, _ = _decisions(run_scenario)
    top = pick.shoppers[0]
    assert top.visit_id == "visit-a"
    assert [ln.status for _, ln in pick.lines] == ["confirmed"]
    rest = pick.shoppers[1:]
    # the odds moved a little (tracker samples that came after the decision): the same line
    nudged = [replace(top, probability=top.probability - 0.01), *rest]
    assert engine._same_lines(pick, nudged)
    # someone else is likeliest now: made again
    assert not engine._same_lines(pick, [replace(c, probability=0.5) for c in rest] + [replace(top, probability=0.1)])
    # still the likeliest, but no longer sure enough to charge: made again (it goes to staff)
    assert not engine._same_lines(pick, [replace(top, probability=0.5), *rest])


def test_a_put_back_is_made_again_when_any_candidates_odds_move(run_scenario: RunScenario) -> None:
    # a return goes to whoever holds the item, not always the likeliest: every candidate's odds count
    engine, _, put_back = _decisions(run_scenario)
    assert engine._same_lines(put_back, list(put_back.shoppers))
    top, *rest = put_back.shoppers
    assert not engine._same_lines(put_back, [replace(top, probability=top.probability - 0.01), *rest])
