"""Camera frames to per-camera tracks on the floor, and those to store-level tracks.

`VisionPipeline` holds one ultralytics detector for all cameras (frames of several cameras go through
it as one batch: on a GPU that is where the speed is) and one ByteTrack tracker per camera (ultralytics'
own, configured from its `bytetrack.yaml`; fixed cameras, so no camera-motion compensation), then puts
every track on the floor (`floor.FloorProjector`) and merges cameras (`store_tracker.StoreTracker`).

Nothing is downloaded: the weights are a local file (default `models/person-detector-320.pt`), and
ultralytics is told it is offline before it is imported.
"""

from __future__ import annotations

import dataclasses
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
from store_edge.layout.model import StoreLayout
from store_edge.vision.appearance import Embedding, appearance_embedding
from store_edge.vision.floor import FloorProjector
from store_edge.vision.hands import Backgrounds, HandFinder
from store_edge.vision.store_tracker import CameraObservation, FloorTrack, StoreTracker, StoreTrackerParams

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
class CameraDetection:
    track_id: int
    box: tuple[float, float, float, float]
    """x1, y1, x2, y2 in the calibration's pixels."""
    confidence: float
    floor: tuple[float, float] | None
    appearance: Embedding | None = None
    """The person's look (`appearance.appearance_embedding`)."""


@dataclass(frozen=True)
class CameraResult:
    camera_id: str
    t_ns: int
    detections: list[CameraDetection]


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


class VisionPipeline:
    def __init__(
        self,
        store: StoreLayout,
        config: DetectorConfig | None = None,
        tracker_params: StoreTrackerParams | None = None,
        stale_s: float = 0.3,
    ) -> None:
        self.store = store
        self.config = config or DetectorConfig()
        self.device = _pick_device(self.config.device)
        self.model = _load_model(self.config)
        self.cameras = {c.id: c for c in store.cameras}
        models = {c.id: CameraModel(c) for c in store.cameras}
        self.projectors = {cid: FloorProjector(model) for cid, model in models.items()}
        self.backgrounds = Backgrounds()
        self.hands = HandFinder(store, models)
        self.trackers: dict[str, Any] = {}
        self.store_tracker = StoreTracker(tracker_params, entry_lines=[g.line for g in store.gates_of_kind("entry")])
        self.latest: dict[str, CameraResult] = {}
        self.stale_ns = round(stale_s * 1e9)

    def detect(self, frames: Sequence[Frame]) -> list[CameraResult]:
        """One batch through the detector, then each frame through its camera's tracker, in order."""
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
        out = []
        for frame, result in zip(frames, results, strict=True):
            tracker = self.trackers.get(frame.camera_id)
            if tracker is None:
                tracker = self.trackers[frame.camera_id] = _new_tracker(self.config)
            det = result.boxes.cpu().numpy()
            rows = tracker.update(det, frame.image)
            cam = self.cameras[frame.camera_id]
            # a stream may come at another size than the calibration: boxes are scaled to it
            sx = cam.resolution[0] / frame.image.shape[1]
            sy = cam.resolution[1] / frame.image.shape[0]
            detections = []
            for row in rows:
                own_box = (float(row[0]), float(row[1]), float(row[2]), float(row[3]))
                box = (own_box[0] * sx, own_box[1] * sy, own_box[2] * sx, own_box[3] * sy)
                detections.append(
                    CameraDetection(
                        track_id=int(row[4]),
                        box=box,
                        confidence=float(min(max(row[5], 0.0), 1.0)),
                        floor=self.projectors[frame.camera_id].floor_point(box),
                        appearance=appearance_embedding(frame.image, own_box),
                    )
                )
            # the foreground (for hands) in the calibration's pixels, learning the empty store around people
            image = frame.image
            if (sx, sy) != (1.0, 1.0):
                image = np.asarray(cv2.resize(image, cam.resolution), dtype=np.uint8)
            self.backgrounds.update(frame.camera_id, image, [d.box for d in detections])
            res = CameraResult(frame.camera_id, frame.t_ns, detections)
            self.latest[frame.camera_id] = res
            out.append(res)
        return out

    def tick(self, t_ns: int) -> list[FloorTrack]:
        """Store-level tracks at `t_ns` from each camera's latest result (if recent enough), each with
        its hand where the cameras that see it show an arm reaching into a shelf."""
        fresh = {cid for cid, r in self.latest.items() if t_ns - r.t_ns <= self.stale_ns}
        observations = [
            CameraObservation(r.camera_id, d.track_id, d.floor[0], d.floor[1], d.confidence, d.appearance)
            for cid, r in self.latest.items()
            if cid in fresh
            for d in r.detections
            if d.floor is not None
        ]
        tracks = self.store_tracker.step(t_ns, observations)
        out = []
        for track in tracks:
            views = {cid: self.backgrounds.foreground[cid] for cid in track.cameras if cid in fresh}
            hand = self.hands.find(track.x, track.y, views) if views else None
            out.append(dataclasses.replace(track, hand=hand) if hand is not None else track)
        return out
