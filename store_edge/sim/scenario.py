"""The scenario file format: who comes in, what they do and when, and how noisy the world is.

Every physical parameter lives in `noise:` with a default taken from the field notes
(`shared/field-notes.md`); a scenario overrides only what it needs. Times are seconds from the
scenario's start (`start_utc`).
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from store_edge.errors import ConfigError, FieldProblem
from store_edge.layout.loader import read_yaml

Id = Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")]
Range = tuple[float, float]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _ordered(r: Range, name: str) -> None:
    if r[0] > r[1]:
        raise ValueError(f"{name}: lower bound {r[0]} is above upper bound {r[1]}")


class LoadCellNoise(_Strict):
    """Load-cell physics. Defaults: HX711-class ADC on a 20 kg cell (field notes, 'Load cells')."""

    noise_std_g: float = Field(default=1.2, ge=0, description="white noise per sample; ~8 g peak to peak")
    quantum_g: float = Field(default=1.0, ge=0, description="ADC step after calibration; 0 = none")
    tare_g: Range = Field(default=(600.0, 1400.0), description="raw reading of an empty plate (its own mass)")
    drift_g_per_hour_std: float = Field(default=8.0, ge=0, description="per-plate linear drift rate, std")
    drift_walk_g_per_sqrt_s: float = Field(default=0.03, ge=0, description="random-walk drift (creep)")
    press_g: Range = Field(default=(40.0, 400.0), description="extra force of the gripping hand, grams")
    grip_s: Range = Field(default=(0.15, 0.5), description="from touching an item to lifting it")
    ring_hz: Range = Field(default=(4.0, 9.0), description="plate ringing frequency after a change")
    ring_fraction: Range = Field(default=(0.1, 0.4), description="ring amplitude as a share of the change")
    settle_s: Range = Field(default=(0.3, 1.0), description="ringing dies out within this time")
    straddle_prob: float = Field(
        default=0.05, ge=0, le=1, description="share of units lying across two plates of their facing"
    )
    vibration_per_gondola_per_hour: float = Field(
        default=12.0, ge=0, description="bursts (carts bumping, doors) hitting every plate of a gondola"
    )
    vibration_g: float = Field(default=60.0, ge=0, description="burst amplitude scale, grams")
    vibration_hz: Range = Field(default=(8.0, 20.0))
    vibration_s: Range = Field(default=(0.3, 1.5))
    clock_offset_ms_std: float = Field(default=2.0, ge=0, description="each scale's clock error")

    @model_validator(mode="after")
    def _ranges(self) -> LoadCellNoise:
        for name in (
            "tare_g",
            "press_g",
            "grip_s",
            "ring_hz",
            "ring_fraction",
            "settle_s",
            "vibration_hz",
            "vibration_s",
        ):
            _ordered(getattr(self, name), name)
        return self


class CurtainNoise(_Strict):
    miss_prob: float = Field(default=0.02, ge=0, le=1, description="a hand goes unreported")
    false_triggers_per_shelf_per_hour: float = Field(default=2.0, ge=0)
    position_std_m: float = Field(default=0.015, ge=0, description="where along the shelf, error")


class TrackNoise(_Strict):
    """Store-level shopper tracks as a camera tracker would publish them."""

    rate_hz: float = Field(default=10.0, gt=0, le=60)
    position_std_m: float = Field(default=0.08, ge=0)
    dropouts_per_minute: float = Field(default=0.4, ge=0, description="per shopper")
    dropout_s: Range = Field(default=(0.5, 3.0))
    new_id_after_dropout_prob: float = Field(default=0.5, ge=0, le=1, description="track fragments")
    switch_distance_m: float = Field(default=0.6, ge=0, description="closer than this, ids may swap")
    switch_prob: float = Field(
        default=0.05, ge=0, le=1, description="per close encounter; top-down cameras with re-id rarely swap"
    )
    hand_visible_prob: float = Field(default=0.7, ge=0, le=1, description="reaching hand reported")
    hand_std_m: float = Field(default=0.05, ge=0)
    appearance_dim: int = Field(
        default=16, ge=0, le=128, description="length of the re-id embedding sent with each track; 0: none"
    )
    appearance_noise: float = Field(
        default=0.25, ge=0, description="per-component noise of one frame's embedding (unit-length person vector)"
    )
    lookalike_share: float = Field(
        default=0.5, ge=0, lt=1, description="how much of a person's look is the common outfit of their group"
    )


class GateNoise(_Strict):
    counter_miss_prob: float = Field(default=0.01, ge=0, le=1)
    counter_double_prob: float = Field(default=0.005, ge=0, le=1)


class NetworkNoise(_Strict):
    """Delay from device to broker; order holds per device (MQTT orders per topic)."""

    latency_ms: Range = Field(default=(2.0, 40.0))


class NoiseParams(_Strict):
    load_cell: LoadCellNoise = LoadCellNoise()
    curtain: CurtainNoise = CurtainNoise()
    tracks: TrackNoise = TrackNoise()
    gates: GateNoise = GateNoise()
    network: NetworkNoise = NetworkNoise()


class Action(_Strict):
    """One thing a shopper does. `at_s` is when the hand enters the shelf front (hand-off: when the
    item changes hands). `plates` chooses where (default: where the product is stocked; for a
    put-back a plate outside the product's facing is a wrong-place return)."""

    at_s: float = Field(ge=0)
    kind: Literal["pick", "put_back", "hand_off", "touch"]
    sku: str | None = None
    quantity: int = Field(default=1, ge=1, le=12)
    plates: list[str] | None = Field(default=None, min_length=1, max_length=5)
    to: Id | None = Field(default=None, description="hand_off: who receives")
    hold_s: float = Field(default=0.0, ge=0, le=60, description="item rests on the shelf in hand this long")

    @model_validator(mode="after")
    def _fields_for_kind(self) -> Action:
        if self.kind in ("pick", "put_back", "hand_off") and self.sku is None:
            raise ValueError(f"a {self.kind} needs a sku")
        if self.kind == "hand_off" and self.to is None:
            raise ValueError("a hand_off needs `to` (the receiving shopper)")
        if self.kind != "hand_off" and self.to is not None:
            raise ValueError("`to` is only for hand_off")
        if self.kind == "touch" and self.plates is None:
            raise ValueError("a touch needs `plates`")
        if self.kind == "put_back" and self.plates is not None and len(self.plates) != 1:
            raise ValueError("a put_back goes onto one plate")
        if self.kind == "hand_off" and self.plates is not None:
            raise ValueError("a hand_off happens off the shelf: no `plates`")
        if self.hold_s and self.kind not in ("pick", "touch"):
            raise ValueError("`hold_s` is for pick and touch")
        return self


class Shopper(_Strict):
    id: Id
    account: Id | None = Field(default=None, description="required unless the shopper enters with a party")
    party_of: Id | None = Field(default=None, description="enters on this shopper's code, shares the cart")
    enter_s: float = Field(ge=0, description="crosses the entry gate")
    exit_s: float | None = Field(default=None, description="crosses the exit gate (default: after the last action)")
    speed_m_s: float = Field(default=1.1, gt=0.2, le=3)
    actions: list[Action] = Field(default_factory=list)

    @model_validator(mode="after")
    def _account_or_party(self) -> Shopper:
        if (self.account is None) == (self.party_of is None):
            raise ValueError("give exactly one of `account` (own code) or `party_of` (enters with a party)")
        times = [a.at_s for a in self.actions]
        if times != sorted(times):
            raise ValueError("actions must be in time order")
        if self.actions and self.actions[0].at_s <= self.enter_s:
            raise ValueError("the first action comes before the shopper enters")
        if self.exit_s is not None and self.actions and self.exit_s <= self.actions[-1].at_s:
            raise ValueError("exit_s comes before the last action")
        return self


class Scenario(_Strict):
    name: str = "scenario"
    store: Id = Field(description="the store_id of the layout this scenario runs in")
    seed: int = Field(default=0, ge=0)
    start_utc: datetime = Field(default=datetime(2026, 1, 5, 9, 0, tzinfo=UTC))
    duration_s: float = Field(gt=0, le=24 * 3600)
    noise: NoiseParams = NoiseParams()
    body_spacing_m: float = Field(
        default=0.0,
        ge=0,
        le=1.5,
        description="people at shelves keep their body centres this far apart: a newcomer stands beside or "
        "behind whoever is there and reaches sideways, and squeezes in only when no such place is free; "
        "0: everyone stands within 0.25 m of the spot in front of the plates (scripted crowds)",
    )
    shoppers: list[Shopper] = Field(default_factory=list)

    @model_validator(mode="after")
    def _references(self) -> Scenario:
        ids = [s.id for s in self.shoppers]
        dupes = sorted({i for i in ids if ids.count(i) > 1})
        if dupes:
            raise ValueError(f"duplicate shopper ids {dupes}")
        by_id = {s.id: s for s in self.shoppers}
        for s in self.shoppers:
            if s.party_of is not None:
                leader = by_id.get(s.party_of)
                if leader is None:
                    raise ValueError(f"shopper {s.id!r}: party_of {s.party_of!r} is not a shopper here")
                if leader.party_of is not None:
                    raise ValueError(f"shopper {s.id!r}: {s.party_of!r} is itself in a party; name the leader")
            for ai, a in enumerate(s.actions):
                where = f"shoppers[{ids.index(s.id)}].actions[{ai}]"
                if a.to is not None and a.to not in by_id:
                    raise ValueError(f"{where}: hand_off to unknown shopper {a.to!r}")
                if a.to == s.id:
                    raise ValueError(f"{where}: hand_off to themself")
        return self

    @property
    def start_ns(self) -> int:
        start = self.start_utc if self.start_utc.tzinfo else self.start_utc.replace(tzinfo=UTC)
        return int(start.timestamp()) * 10**9 + start.microsecond * 1000

    def leader_of(self, shopper: Shopper) -> Shopper:
        if shopper.party_of is None:
            return shopper
        return next(s for s in self.shoppers if s.id == shopper.party_of)


def parse_scenario(data: Any, source: str | Path = "<scenario>") -> Scenario:
    if not isinstance(data, dict):
        raise ConfigError(source, [FieldProblem("(top level)", "expected a mapping of scenario fields")])
    try:
        return Scenario.model_validate(data)
    except ValidationError as e:
        raise ConfigError.from_validation_error(source, e) from e


def load_scenario(path: str | Path) -> Scenario:
    return parse_scenario(read_yaml(path), path)
