from __future__ import annotations

import pytest

from cloud_api.domain import settlement as sm

REVIEW = sm.LineView("L1", "cola", 1, "under_review")


def test_a_cart_with_lines_under_review_is_held_and_without_account_unmatched() -> None:
    assert sm.state_after_cart(True, [REVIEW]) == "held"
    assert sm.state_after_cart(True, [sm.LineView("L0", "cola", 1, "confirmed")]) == "charging"
    assert sm.state_after_cart(False, [REVIEW]) == "unmatched"


def test_only_confirmed_lines_are_chargeable() -> None:
    lines = [
        sm.LineView("a", "x", 2, "confirmed"),
        sm.LineView("b", "y", 1, "under_review"),
        sm.LineView("c", "z", 1, "voided"),
        sm.LineView("d", "w", 1, "dropped"),
    ]
    assert sm.chargeable(lines) == [("x", 2)]
    assert sm.drop_after_deadline(lines) == ["b"]


def test_staff_decisions() -> None:
    assert sm.decide_line(REVIEW, "confirm", None, None) == sm.LineDecision("confirmed", "cola", 1)
    assert sm.decide_line(REVIEW, "void", None, None).status == "voided"
    assert sm.decide_line(REVIEW, "change", "water", 2) == sm.LineDecision("confirmed", "water", 2)
    assert sm.decide_line(REVIEW, "change", None, 3) == sm.LineDecision("confirmed", "cola", 3)
    with pytest.raises(sm.DecisionError, match="not under review"):
        sm.decide_line(sm.LineView("L", "cola", 1, "confirmed"), "void", None, None)
    with pytest.raises(sm.DecisionError, match="needs"):
        sm.decide_line(REVIEW, "change", None, None)
    with pytest.raises(sm.DecisionError, match="void"):
        sm.decide_line(REVIEW, "change", None, 0)


def test_settled_is_final() -> None:
    sm.check_transition("charging", "settled")
    with pytest.raises(sm.TransitionError):
        sm.check_transition("settled", "charging")
    with pytest.raises(sm.TransitionError):
        sm.check_transition("unmatched", "charging")


def test_reassign_moves_the_line_and_where_it_lands_depends_on_the_other_visit() -> None:
    assert sm.decide_line(REVIEW, "reassign", None, None) == sm.LineDecision("reassigned", "cola", 1)
    assert sm.decide_line(REVIEW, "reassign", "water", 2) == sm.LineDecision("reassigned", "water", 2)
    assert sm.chargeable([sm.LineView("L1", "cola", 1, "reassigned")]) == []
    assert sm.check_reassign_target("v1", "v2", "held", True) == "cart"
    assert sm.check_reassign_target("v1", "v2", "open", True) == "cart"
    assert sm.check_reassign_target("v1", "v2", "settled", True) == "extra_charge"
    for target, state, account, why in [
        ("v1", "held", True, "already in this visit"),
        ("v2", "unmatched", False, "no shopper account"),
        ("v2", "charging", True, "being charged"),
        ("v2", "payment_failed", True, "must be paid"),
    ]:
        with pytest.raises(sm.DecisionError, match=why):
            sm.check_reassign_target("v1", target, state, account)
