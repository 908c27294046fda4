"""Ground-truth channels of a simulated recording (never on MQTT; MCAP topics under `truth/`).

The evaluator scores the fusion engine against these.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

TRUTH_VISITS = "truth/visits"
TRUTH_ACTIONS = "truth/actions"
TRUTH_RECEIPTS = "truth/receipts"
TRUTH_POSITIONS = "truth/positions"


class _Truth(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class TruthVisit(_Truth):
    """One visit: a party that entered on one scanned code and shares one cart."""

    visit_id: str
    account_id: str
    token: str
    shopper_ids: list[str]
    entry_gate_id: str
    scan_ns: int
    exit_ns: int = Field(description="when the last member of the party crossed the exit gate")


class TruthAction(_Truth):
    action_id: str
    kind: Literal["pick", "put_back", "hand_off", "touch"]
    shopper_id: str
    visit_id: str
    start_ns: int = Field(description="hand enters the shelf (or the hand-off begins)")
    end_ns: int = Field(description="hand leaves the shelf")
    sku: str | None = None
    quantity: int = 0
    shelf_id: str | None = None
    plate_deltas_g: dict[str, float] = Field(
        default_factory=dict, description="true net weight change of each plate, grams"
    )
    unit_weights_g: list[float] = Field(default_factory=list)
    misplaced: bool = Field(default=False, description="a put-back onto a plate outside the product's facing")
    to_shopper_id: str | None = None
    to_visit_id: str | None = None


class ReceiptLine(_Truth):
    sku: str
    quantity: int = Field(gt=0)


class TruthReceipt(_Truth):
    """What the visit should be charged for: the items its shoppers carried out."""

    visit_id: str
    account_id: str
    exit_ns: int
    lines: list[ReceiptLine]


class ShopperPosition(_Truth):
    shopper_id: str
    visit_id: str | None
    x: float
    y: float
    track_id: str | None = Field(description="the track id published for this shopper now; None if dropped")


class TruthPositions(_Truth):
    t_ns: int
    shoppers: list[ShopperPosition]


TRUTH_MODELS: dict[str, type[_Truth]] = {
    TRUTH_VISITS: TruthVisit,
    TRUTH_ACTIONS: TruthAction,
    TRUTH_RECEIPTS: TruthReceipt,
    TRUTH_POSITIONS: TruthPositions,
}


TRUTH_BOXES = "truth/boxes"


class PersonBox(_Truth):
    shopper_id: str
    box: tuple[float, float, float, float] = Field(description="x1, y1, x2, y2 in pixels")
    visible_fraction: float = Field(ge=0, le=1, description="share of the person inside the image")


class TruthBoxes(_Truth):
    """Where each shopper is in one rendered camera frame (for training and scoring detectors)."""

    camera_id: str
    frame_ts_ns: int
    boxes: list[PersonBox]


TRUTH_MODELS[TRUTH_BOXES] = TruthBoxes
