"""The visit's settlement state machine and the staff decisions on lines under review (no I/O).

Visit states:
  open          entered through a gate; the edge has not sent the cart yet
  held          cart received, lines under review: nothing is charged until staff decide or the deadline
  charging      the receipt is final and the charge is being made (retried after a timeout)
  settled       paid (or nothing to pay); the receipt is sent
  payment_failed  the charge was declined: the account is flagged until the shopper settles it
  unmatched     a cart arrived for a visit no gate opened (or without an account): kept for staff, never charged
  closed        an unmatched visit staff have looked at and closed (with a note); never charged
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

VisitState = Literal["open", "held", "charging", "settled", "payment_failed", "unmatched", "closed"]
LineStatus = Literal["confirmed", "under_review", "voided", "dropped", "reassigned"]
LineAction = Literal["confirm", "void", "change", "reassign"]

TRANSITIONS: dict[str, frozenset[str]] = {
    "open": frozenset({"held", "charging", "settled", "unmatched"}),
    "held": frozenset({"charging", "settled"}),
    "charging": frozenset({"settled", "payment_failed"}),
    "payment_failed": frozenset({"charging", "settled"}),
    "settled": frozenset(),
    "unmatched": frozenset({"closed"}),
    "closed": frozenset(),
}


class TransitionError(Exception):
    pass


class DecisionError(Exception):
    pass


def check_transition(current: str, new: str) -> None:
    if new not in TRANSITIONS.get(current, frozenset()):
        raise TransitionError(f"a visit cannot go from {current} to {new}")


@dataclass(frozen=True)
class LineView:
    line_id: str
    sku: str
    quantity: int
    status: str


def state_after_cart(has_account: bool, lines: list[LineView]) -> VisitState:
    """Where a visit goes when its cart arrives."""
    if not has_account:
        return "unmatched"
    if any(line.status == "under_review" for line in lines):
        return "held"
    return "charging"


def chargeable(lines: list[LineView]) -> list[tuple[str, int]]:
    """Only confirmed lines are charged: lines under review, voided or dropped never are."""
    return [(line.sku, line.quantity) for line in lines if line.status == "confirmed"]


@dataclass(frozen=True)
class LineDecision:
    status: LineStatus
    sku: str
    quantity: int


def decide_line(line: LineView, action: LineAction, sku: str | None, quantity: int | None) -> LineDecision:
    """A staff decision on one line under review."""
    if line.status != "under_review":
        raise DecisionError(f"line {line.line_id} is {line.status}, not under review: nothing to decide")
    if action == "confirm":
        if sku is not None or quantity is not None:
            raise DecisionError("confirm takes no sku or quantity: use 'change' to correct the line")
        return LineDecision("confirmed", line.sku, line.quantity)
    if action == "void":
        return LineDecision("voided", line.sku, line.quantity)
    if action == "reassign":  # another shopper took it: this cart loses the line, theirs gets it
        new_quantity = line.quantity if quantity is None else quantity
        if new_quantity == 0:
            raise DecisionError("a quantity of 0 is a void: use 'void'")
        return LineDecision("reassigned", sku or line.sku, new_quantity)
    if sku is None and quantity is None:
        raise DecisionError("change needs a new sku, a new quantity, or both")
    new_quantity = line.quantity if quantity is None else quantity
    if new_quantity == 0:
        raise DecisionError("a quantity of 0 is a void: use 'void'")
    return LineDecision("confirmed", sku or line.sku, new_quantity)


def check_reassign_target(source_visit_id: str, target_visit_id: str, target_state: str, has_account: bool) -> str:
    """Where a reassigned line lands in the other shopper's visit: 'cart' (before that visit is charged:
    the line joins its cart), 'extra_charge' (after it settled: a charge of its own). Raises
    DecisionError when it cannot go there."""
    if target_visit_id == source_visit_id:
        raise DecisionError("the line is already in this visit: pick another shopper")
    if not has_account or target_state in ("unmatched", "closed"):
        raise DecisionError(f"visit {target_visit_id} has no shopper account to charge")
    if target_state in ("open", "held"):
        return "cart"
    if target_state == "settled":
        return "extra_charge"
    if target_state == "charging":
        raise DecisionError(f"visit {target_visit_id} is being charged right now: try again in a minute")
    raise DecisionError(f"visit {target_visit_id}'s payment failed: it must be paid before anything is added")


def drop_after_deadline(lines: list[LineView]) -> list[str]:
    """Line ids to drop when the review deadline passes: every line still under review."""
    return [line.line_id for line in lines if line.status == "under_review"]
