"""Regenerate the small recordings shipped in sample_data/recordings/ (deterministic).

.venv/bin/python tools/make_sample_recordings.py [--out DIR] [--only NAME ...]

One of them holds camera frames (`store-edge demo --recording` on it runs the vision worker too). The
renderer draws each camera at its calibrated size (640 x 480); to keep the file small, its frames are
stored smaller and more compressed, as a cheap camera stream would send them (the vision worker scales
boxes back to the calibration), and the truth boxes are scaled with them.
"""

from __future__ import annotations

import argparse
import base64
import json
import tempfile
from dataclasses import dataclass
from pathlib import Path

from pydantic import BaseModel

from store_edge.layout import load_store
from store_edge.protocol.topics import ROUTES, parse_topic
from store_edge.protocol.truth import TRUTH_BOXES, TRUTH_MODELS
from store_edge.recording.mcap_io import RecordingWriter, read_messages, read_metadata
from store_edge.sim.generate import ScenarioMix, random_scenario
from store_edge.sim.scenario import load_scenario
from store_edge.sim.simulator import simulate

ROOT = Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class SampleRecording:
    name: str
    store: str
    scenario: str | None = None
    shoppers: int = 0
    minutes: float = 0.0
    seed: int = 0
    frame_fps: float | None = None
    """Render camera frames at this rate (None: no frames)."""
    frame_scale: float = 1.0
    """Frames stored at this fraction of the calibrated size..."""
    jpeg_quality: int = 80
    """... and JPEG quality (when scaled)."""
    body_spacing_m: float = ScenarioMix.body_spacing_m
    """People at shelves keep their centres this far apart (the random scenarios' default unless given)."""


SAMPLES = [
    SampleRecording("demo-hard-cases", "demo", scenario="sample_data/scenarios/demo-hard-cases.yaml"),
    SampleRecording("demo-random-8x4min-seed1", "demo", shoppers=8, minutes=4, seed=1),
    SampleRecording("hard-random-6x3min-seed2", "hard", shoppers=6, minutes=3, seed=2),
    # camera frames for the vision worker: 14 cameras at 2 frames/s, stored at 320 x 240 (a few MB)
    SampleRecording(
        "demo-frames-3x1min-seed9",
        "demo",
        shoppers=3,
        minutes=1,
        seed=9,
        frame_fps=2.0,
        frame_scale=0.5,
        jpeg_quality=40,
        # the scene the vision demo was made for (see tests/vision/conftest.py): vision is not good enough
        # yet on people standing shoulder to shoulder
        body_spacing_m=0.0,
    ),
]


def make(sample: SampleRecording, out_dir: Path) -> Path:
    store_path = ROOT / "sample_data" / "stores" / f"{sample.store}.yaml"
    store = load_store(store_path)
    if sample.scenario:
        scenario = load_scenario(ROOT / sample.scenario)
    else:
        mix = ScenarioMix(body_spacing_m=sample.body_spacing_m)
        scenario = random_scenario(store, sample.shoppers, sample.minutes, sample.seed, mix=mix)
    out = out_dir / f"{sample.name}.mcap"
    with tempfile.TemporaryDirectory() as tmp:
        scaled = sample.frame_fps is not None and sample.frame_scale != 1.0
        simulate(
            store,
            scenario,
            Path(tmp) / "full.mcap" if scaled else out,
            store_text=store_path.read_text(encoding="utf-8"),
            scenario_source=sample.scenario or "<generated>",
            frames=sample.frame_fps is not None,
            frame_fps=sample.frame_fps,
        )
        if scaled:
            shrink_frames(Path(tmp) / "full.mcap", out, sample.frame_scale, sample.jpeg_quality)
    return out


def shrink_frames(source: Path, out: Path, scale: float, quality: int) -> None:
    """A copy of a recording whose camera frames are `scale` times the size, at JPEG `quality`; the
    truth boxes are scaled with them, everything else is copied as it is."""
    import cv2  # the `vision` extra, as for rendering the frames
    import numpy as np

    with RecordingWriter(out) as w:
        for name, values in read_metadata(source).items():
            w.metadata(name, values)
        w.copy_attachments(source)
        for r in read_messages(source):
            data = r.data
            model: type[BaseModel]
            if r.topic.startswith("truth/"):
                model = TRUTH_MODELS[r.topic]
                if r.topic == TRUTH_BOXES:
                    boxes = json.loads(data)
                    for b in boxes["boxes"]:
                        b["box"] = [round(c * scale, 1) for c in b["box"]]
                    data = json.dumps(boxes, separators=(",", ":")).encode()
            else:
                parsed = parse_topic(r.topic)
                assert parsed is not None, r.topic
                model = ROUTES[parsed.kind].model
                if parsed.kind == "camera_frame":
                    frame = json.loads(data)
                    img = cv2.imdecode(np.frombuffer(base64.b64decode(frame["data"]), np.uint8), cv2.IMREAD_COLOR)
                    if img is None:
                        raise ValueError(f"{source}: a frame on {r.topic} is not a decodable image")
                    h, w_px = img.shape[:2]
                    img = cv2.resize(img, (round(w_px * scale), round(h * scale)), interpolation=cv2.INTER_AREA)
                    ok, buf = cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, quality])
                    assert ok
                    frame["data"] = base64.b64encode(buf.tobytes()).decode()
                    data = json.dumps(frame, separators=(",", ":")).encode()
            w.write(r.topic, r.schema_name, model, data, r.log_time_ns, r.publish_time_ns)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=ROOT / "sample_data" / "recordings")
    parser.add_argument("--only", nargs="+", metavar="NAME", help="only these recordings (default: all)")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    for sample in SAMPLES:
        if args.only and sample.name not in args.only:
            continue
        path = make(sample, args.out)
        print(f"{path} ({path.stat().st_size / 1e6:.1f} MB)")


if __name__ == "__main__":
    main()
