"""Messages on the store's MQTT topics. JSON on the wire, one pydantic model per message kind.

Every message carries a `header`: the device that produced it, that device's boot id, a sequence
number that rises by one per message within a boot, and a UTC timestamp in nanoseconds. Consumers
deduplicate on (device_id, boot_id, seq) and count gaps in seq (QoS 1 delivers duplicates).
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

Id = Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")]
TimeNs = Annotated[int, Field(ge=0, description="UTC time in nanoseconds since the Unix epoch")]


class _Msg(BaseModel):
    # Fields a newer producer adds are ignored, so additive changes stay within cl/v1 (docs/protocol.md).
    model_config = ConfigDict(extra="ignore", frozen=True)


class Header(_Msg):
    device_id: Id
    boot_id: Annotated[str, Field(min_length=1, max_length=64)] = Field(
        description="changes every time the device starts; sequence numbers restart with it"
    )
    seq: int = Field(ge=0, description="per device and boot, +1 per message")
    ts_ns: TimeNs = Field(description="when the event happened, or the last sample of a batch")


# --- sensors -------------------------------------------------------------------------------------


class WeightBatch(_Msg):
    """Raw readings of every plate of one shelf, `samples[i][j]` = plate `plate_ids[j]` at sample i,
    taken at t0_ns + i * period_ns. Raw grams as the scale reports them: not tared, drift included."""

    kind: Literal["weight"] = "weight"
    header: Header
    shelf_id: Id
    plate_ids: list[Id] = Field(min_length=1, max_length=64)
    t0_ns: TimeNs
    period_ns: int = Field(gt=0, le=10**9)
    samples: list[list[float | None]] = Field(
        min_length=1,
        max_length=1000,
        description="null marks a reading the scale could not take (JSON has no NaN; a NaN is sent as null)",
    )

    @model_validator(mode="after")
    def _one_reading_per_plate(self) -> WeightBatch:
        if len(set(self.plate_ids)) != len(self.plate_ids):
            raise ValueError("plate_ids repeats a plate")
        for i, row in enumerate(self.samples):
            if len(row) != len(self.plate_ids):
                raise ValueError(f"samples[{i}] has {len(row)} readings for {len(self.plate_ids)} plates")
        return self


class CurtainEvent(_Msg):
    """A hand broke (`enter`) or cleared (`leave`) a shelf's light curtain at `x_m` along the shelf front."""

    kind: Literal["curtain"] = "curtain"
    header: Header
    shelf_id: Id
    event: Literal["enter", "leave"]
    x_m: float = Field(ge=-0.5, le=50)


class GateScan(_Msg):
    """A code was scanned at an entry gate; `token` is the text of the code as read."""

    kind: Literal["gate_scan"] = "gate_scan"
    header: Header
    gate_id: Id
    token: Annotated[str, Field(min_length=1, max_length=512)]


class GateDecision(_Msg):
    """The gate controller's answer to a scan, after asking the cloud: open for a visit, or refuse."""

    kind: Literal["gate_decision"] = "gate_decision"
    header: Header
    gate_id: Id
    decision: Literal["open", "refuse"]
    visit_id: Id | None = None
    account_id: Id | None = None
    party_size: int = Field(default=1, ge=1, le=20)
    reason: str | None = None


class GatePassage(_Msg):
    """The gate's infrared person counter saw someone cross; `count` is the counter's running total."""

    kind: Literal["gate_passage"] = "gate_passage"
    header: Header
    gate_id: Id
    direction: Literal["in", "out"]
    count: int = Field(ge=0)


class FoxgloveTime(_Msg):
    sec: int = Field(ge=0)
    nsec: int = Field(ge=0, lt=10**9)

    @classmethod
    def from_ns(cls, ns: int) -> FoxgloveTime:
        return cls(sec=ns // 10**9, nsec=ns % 10**9)

    @property
    def ns(self) -> int:
        """UTC nanoseconds, as every other time on the wire."""
        return self.sec * 10**9 + self.nsec


class CameraFrame(_Msg):
    """One compressed image, shaped like Foxglove's CompressedImage (timestamp, frame_id, data,
    format) plus our header; `data` is base64 in JSON."""

    kind: Literal["camera_frame"] = "camera_frame"
    header: Header
    timestamp: FoxgloveTime
    frame_id: Id = Field(description="the camera id")
    format: Literal["jpeg", "png"] = "jpeg"
    data: str = Field(description="base64-encoded image bytes")


class CameraTrack(_Msg):
    track_id: int = Field(ge=0, description="per camera, from its tracker")
    box: tuple[float, float, float, float] = Field(description="x1, y1, x2, y2 in pixels")
    confidence: float = Field(ge=0, le=1)
    floor: tuple[float, float] | None = Field(default=None, description="feet on the floor, store metres")
    appearance: list[float] | None = Field(
        default=None,
        max_length=128,
        description="re-identification embedding of the person in this box (unit length; compare by cosine), if any",
    )
    hand_candidates: list[tuple[float, float, float, float]] | None = Field(
        default=None,
        max_length=4000,
        description="[x, y, z, score]: the candidate hand points (shelf fronts, on a 2.5 cm grid, at each shelf's "
        "hand height) around `floor` that this camera scored above 0 (store metres to the mm; score 0-1); a "
        "candidate of that area in its image that is not listed scored 0. null: no hand search",
    )


class CameraTracks(_Msg):
    kind: Literal["camera_tracks"] = "camera_tracks"
    header: Header
    camera_id: Id
    frame_ts_ns: TimeNs
    tracks: list[CameraTrack] = Field(max_length=500)


class HandPoint(_Msg):
    x: float
    y: float
    z: float


class ShopperTrack(_Msg):
    track_id: Id = Field(description="store-level track id; not a visit id: binding is the fusion's job")
    x: float
    y: float
    confidence: float = Field(default=1.0, ge=0, le=1)
    hand: HandPoint | None = Field(default=None, description="the reaching hand, where it is seen")
    appearance: list[float] | None = Field(
        default=None,
        max_length=128,
        description="re-identification embedding of this detection (unit length; compare by cosine), if any",
    )


class ShopperTracks(_Msg):
    """Store-level positions of everyone on the floor at one instant (header.ts_ns)."""

    kind: Literal["shopper_tracks"] = "shopper_tracks"
    header: Header
    tracks: list[ShopperTrack] = Field(max_length=1000)


# --- outputs of the edge -------------------------------------------------------------------------


class ProductCandidate(_Msg):
    sku: str
    quantity: int
    probability: float = Field(ge=0, le=1)


class ShopperCandidate(_Msg):
    visit_id: Id | None = Field(description="None stands for 'nobody' (staff, restocking)")
    probability: float = Field(ge=0, le=1)


class CartLine(_Msg):
    line_id: Id
    sku: str
    quantity: int = Field(description="negative for a put-back of an item charged earlier")
    confidence: float = Field(ge=0, le=1)
    event_ids: list[Id]
    status: Literal["confirmed", "under_review"]


class CartUpdate(_Msg):
    kind: Literal["cart_update"] = "cart_update"
    header: Header
    visit_id: Id
    version: int = Field(ge=0)
    state: Literal["open", "closing", "closed"]
    lines: list[CartLine]


class PlateTrace(_Msg):
    """Raw readings of one plate around an event, as its scale sent them (null: no reading)."""

    plate_id: Id
    t0_ns: TimeNs
    period_ns: int = Field(gt=0, le=10**9)
    grams: list[float | None] = Field(max_length=20_000)


class ShopperPath(_Msg):
    """Where one candidate's track was during an event: floor points and, where seen, the hand."""

    visit_id: Id | None
    track_id: Id | None
    probability: float = Field(ge=0, le=1)
    points: list[tuple[int, float, float]] = Field(max_length=5_000, description="(t ns, x m, y m)")
    hands: list[tuple[int, float, float, float]] = Field(max_length=5_000, description="(t ns, x, y, z m)")


class TicketEvidence(_Msg):
    traces: list[PlateTrace] = Field(max_length=64)
    shoppers: list[ShopperPath] = Field(max_length=32)


class ReviewTicket(_Msg):
    kind: Literal["review_ticket"] = "review_ticket"
    header: Header
    ticket_id: Id
    event_id: Id
    reason: str
    shelf_id: Id
    plate_ids: list[Id]
    products: list[ProductCandidate]
    shoppers: list[ShopperCandidate]
    window_ns: tuple[int, int]
    evidence: TicketEvidence | None = Field(
        default=None, description="the plates' weight traces and the candidates' paths, for the reviewer"
    )


class DeviceStatus(_Msg):
    """Birth and death: published retained at connect (`online`) and set as the Last Will (`offline`)."""

    kind: Literal["device_status"] = "device_status"
    header: Header
    role: Literal["scale", "curtain", "gate", "camera", "edge", "vision", "tracker"]
    status: Literal["online", "offline"]
    software: str | None = None


class DeadLetter(_Msg):
    """A message the edge could not use, kept whole with the reason so nothing is lost."""

    kind: Literal["dead_letter"] = "dead_letter"
    header: Header
    topic: str
    reason: str
    payload_b64: str


Message = (
    WeightBatch
    | CurtainEvent
    | GateScan
    | GateDecision
    | GatePassage
    | CameraFrame
    | CameraTracks
    | ShopperTracks
    | CartUpdate
    | ReviewTicket
    | DeviceStatus
    | DeadLetter
)

ALL_MESSAGE_TYPES: tuple[type[_Msg], ...] = (
    WeightBatch,
    CurtainEvent,
    GateScan,
    GateDecision,
    GatePassage,
    CameraFrame,
    CameraTracks,
    ShopperTracks,
    CartUpdate,
    ReviewTicket,
    DeviceStatus,
    DeadLetter,
)
