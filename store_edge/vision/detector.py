"""Camera frames to per-camera tracks on the floor (the per-camera stage), and those to store-level tracks.

`CameraStage` is the per-camera stage for some or all of a store's cameras: one ultralytics detector
for its cameras (frames of several cameras go through it as one batch: on a GPU that is where the
speed is), one ByteTrack tracker per camera (ultralytics' own, configured from its `bytetrack.yaml`;
fixed cameras, so no camera-motion compensation), then per track its floor point (`floor.FloorProjector`),
its look (`appearance`) and that camera's hand evidence (`hands`, from the camera's foreground). Its
output is the `CameraTrack` messages, rounded as they go on the wire, and that is all the store stage
(`store_stage.StoreStage`: cameras merged into shopper tracks with hands) reads. `VisionPipeline` runs
both in one process; on several machines each runs one stage and MQTT carries `camera/CAM/tracks`
between them (`worker.py`).

Nothing is downloaded: the weights are a local file (default `models/person-detector-320.pt`), and
ultralytics is told it is offline before it is imported.
"""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from numpy.typing import NDArray

from store_edge.layout.camera import CameraModel
from store_edge.layout.model import Camera, StoreLayout
from store_edge.protocol import messages as m
from store_edge.vision.appearance import appearance_embedding
from store_edge.vision.floor import FloorProjector
from store_edge.vision.hands import Backgrounds, HandFinder, HandParams
from store_edge.vision.store_stage import StoreStage
from store_edge.vision.store_tracker import StoreTrackerParams

os.environ.setdefault("YOLO_OFFLINE", "1")  # no hub, font or pip look-ups at run time

DEFAULT_WEIGHTS = Path(__file__).resolve().parents[2] / "models" / "person-detector-320.pt"
Image = NDArray[np.uint8]


class VisionSetupError(RuntimeError):
    """Weights or a dependency missing; the message says what to do."""


@dataclass(frozen=True)
class DetectorConfig:
    weights: Path = DEFAULT_WEIGHTS
    classes: tuple[int, ...] = (0,)
    """Classes of the model that are people (0 for the shipped model and for COCO models)."""
    imgsz: int = 320
    conf: float = 0.1
    """Lowest score kept: ByteTrack's second stage uses low-score boxes to hold tracks through occlusion."""
    device: str | None = None
    """'cpu', '0' for the first GPU; None: a GPU when there is one."""
    tracker: str = "bytetrack.yaml"


@dataclass(frozen=True)
class Frame:
    camera_id: str
    t_ns: int
    image: Image
    """BGR."""


@dataclass(frozen=True)
class CameraResult:
    camera_id: str
    t_ns: int
    tracks: list[m.CameraTrack]
    """As they go on the wire: boxes in the calibration's pixels."""


def _pick_device(device: str | None) -> str:
    if device is not None:
        return device
    import torch

    return "0" if torch.cuda.is_available() else "cpu"


def _load_model(config: DetectorConfig) -> Any:
    weights = Path(config.weights)
    if not weights.is_file():
        raise VisionSetupError(
            f"detector weights {weights} not found: train them (tools/train_detector.py) or pass --weights FILE"
        )
    # ByteTrack's assignment solver: without it ultralytics would try to pip-install it at run time
    if importlib.util.find_spec("lap") is None:
        raise VisionSetupError("the 'lap' package is missing: pip install 'lap>=0.5.12'")
    from ultralytics.models import YOLO

    return YOLO(str(weights), task="detect")


def _new_tracker(config: DetectorConfig) -> Any:
    from ultralytics.trackers.byte_tracker import BYTETracker
    from ultralytics.utils import YAML, IterableSimpleNamespace
    from ultralytics.utils.checks import check_yaml

    cfg = IterableSimpleNamespace(**YAML.load(check_yaml(config.tracker)))  # type: ignore[no-untyped-call]
    return BYTETracker(args=cfg)  # type: ignore[no-untyped-call]


class CameraStage:
    """The per-camera stage for `cameras` of the store (default: all of them): frames to `CameraTrack`s."""

    def __init__(
        self,
        store: StoreLayout,
        config: DetectorConfig | None = None,
        cameras: Sequence[str] | None = None,
        hand_params: HandParams | None = None,
    ) -> None:
        known = {c.id for c in store.cameras}
        unknown = sorted(set(cameras or ()) - known)
        if unknown:
            have = ", ".join(sorted(known))
            raise ValueError(f"store {store.store_id} has no camera {', '.join(unknown)} (it has {have})")
        self.store = store
        self.config = config or DetectorConfig()
        self.device = _pick_device(self.config.device)
        self.model = _load_model(self.config)
        self.cameras = {c.id: c for c in store.cameras if cameras is None or c.id in cameras}
        models = {cid: CameraModel(c) for cid, c in self.cameras.items()}
        self.projectors = {cid: FloorProjector(model) for cid, model in models.items()}
        self.backgrounds = Backgrounds(hand_params)
        self.hands = HandFinder(store, models, hand_params)
        self.trackers: dict[str, Any] = {}

    def detect(self, frames: Sequence[Frame]) -> list[CameraResult]:
        """One batch through the detector, then each frame through its camera's tracker, in order; frames
        of other cameras than this stage's are left out."""
        frames = [f for f in frames if f.camera_id in self.cameras]
        if not frames:
            return []
        results = self.model.predict(
            [f.image for f in frames],
            imgsz=self.config.imgsz,
            conf=self.config.conf,
            classes=list(self.config.classes),
            device=self.device,
            verbose=False,
        )
        return [self._camera_tracks(frame, result) for frame, result in zip(frames, results, strict=True)]

    def _camera_tracks(self, frame: Frame, result: Any) -> CameraResult:
        """One frame's detections through its camera's tracker, on the floor, with looks and hands."""
        tracker = self.trackers.get(frame.camera_id)
        if tracker is None:
            tracker = self.trackers[frame.camera_id] = _new_tracker(self.config)
        rows = tracker.update(result.boxes.cpu().numpy(), frame.image)
        cam = self.cameras[frame.camera_id]
        # a stream may come at another size than the calibration: boxes are scaled to it
        sx = cam.resolution[0] / frame.image.shape[1]
        sy = cam.resolution[1] / frame.image.shape[0]
        people = []
        for row in rows:
            own_box = (float(row[0]), float(row[1]), float(row[2]), float(row[3]))
            box = (own_box[0] * sx, own_box[1] * sy, own_box[2] * sx, own_box[3] * sy)
            floor = self.projectors[frame.camera_id].floor_point(box)
            look = appearance_embedding(frame.image, own_box)
            people.append((int(row[4]), box, float(min(max(row[5], 0.0), 1.0)), floor, look))
        # the foreground (for hands) in the calibration's pixels, learning the empty store around people
        image = frame.image
        if (sx, sy) != (1.0, 1.0):
            image = np.asarray(cv2.resize(image, cam.resolution), dtype=np.uint8)
        fg = self.backgrounds.update(frame.camera_id, image, [box for _, box, _, _, _ in people])
        tracks = []
        for track_id, box, confidence, floor, look in people:
            # rounded here, as on the wire: the store stage gets the same numbers in one process or over MQTT,
            # and this camera's hand evidence is for the floor point the store stage will read
            at = (round(floor[0], 3), round(floor[1], 3)) if floor is not None else None
            tracks.append(
                m.CameraTrack(
                    track_id=track_id,
                    box=(round(box[0], 1), round(box[1], 1), round(box[2], 1), round(box[3], 1)),
                    confidence=round(confidence, 3),
                    floor=at,
                    appearance=[round(v, 4) for v in look] if look is not None else None,
                    hand_candidates=self.hands.camera_evidence(frame.camera_id, *at, fg) if at is not None else None,
                )
            )
        return CameraResult(frame.camera_id, frame.t_ns, tracks)


class VisionPipeline:
    """Both stages in one process (`store-edge vision`, the default `--stage all`): the per-camera stage
    for `cameras` (default all), and the store stage on what it produces unless `store_stage` is False
    (`--stage cameras`: `camera/CAM/tracks` only, for a store stage elsewhere)."""

    def __init__(
        self,
        store: StoreLayout,
        config: DetectorConfig | None = None,
        tracker_params: StoreTrackerParams | None = None,
        stale_s: float = 0.3,
        cameras: Sequence[str] | None = None,
        store_stage: bool = True,
    ) -> None:
        self.store = store
        self.camera_stage = CameraStage(store, config, cameras)
        self.store_stage = StoreStage(store, tracker_params, stale_s) if store_stage else None

    @property
    def cameras(self) -> dict[str, Camera]:
        return self.camera_stage.cameras
