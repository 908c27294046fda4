"""Vision benchmarks (issue #6): detector speed, tracking quality, identity at the gate, end to end.

    .venv/bin/python benchmarks/bench_vision.py [--quick] [--weights models/person-detector-320.pt]

1. Detector frames/s on one CPU core (torch limited to one thread, batch 1) at 320 and 640 px, and on
   the GPU when there is one (batch of 14 cameras).
2. A scenario simulated with rendered frames of every camera: the vision path (detector, ByteTrack,
   floor fit, store tracker) against the truth positions: MOTA and IDF1 on the floor (match within
   0.5 m), next to the simulator's own tracker in the same recording.
3. The fusion engine on both recordings (the simulator's tracks vs vision's tracks, everything else the
   same): item F1, and identity binding: the share of truth positions (matched to a track within
   0.5 m) whose track the engine has bound to the right visit.

Prints a markdown table (docs/vision.md keeps the latest). CPU-heavy: run it under `nice`.
"""

from __future__ import annotations

import argparse
import os
import platform
import tempfile
import time
from pathlib import Path

os.environ.setdefault("YOLO_OFFLINE", "1")

import numpy as np
import torch
from scipy.optimize import linear_sum_assignment

from store_edge.evaluation import evaluate, load_messages
from store_edge.fusion.engine import FusionEngine
from store_edge.layout import StoreLayout, load_store
from store_edge.protocol.codec import encode
from store_edge.protocol.messages import ShopperTracks
from store_edge.protocol.topics import ROUTES, parse_topic
from store_edge.protocol.truth import TRUTH_MODELS, TRUTH_POSITIONS, TruthPositions
from store_edge.recording.contents import store_from_recording
from store_edge.recording.mcap_io import RecordingWriter, read_messages
from store_edge.sim.frames import render_frame
from store_edge.sim.generate import random_scenario
from store_edge.sim.plan import build_plan, rng_for
from store_edge.sim.simulator import simulate
from store_edge.vision.detector import DEFAULT_WEIGHTS, DetectorConfig, VisionPipeline
from store_edge.vision.metrics import TrackingScore, score_tracking
from store_edge.vision.worker import vision_recording

ROOT = Path(__file__).resolve().parents[1]
NS = 1_000_000_000


def detector_speed(store: StoreLayout, weights: Path, imgsz: int, frames: int, device: str) -> float:
    """Frames per second through the detector alone (batch 1 on the CPU, all cameras at once on a GPU)."""
    from ultralytics.models import YOLO

    model = YOLO(str(weights), task="detect")
    plan = build_plan(store, random_scenario(store, 10, 2, seed=77))
    images = [
        render_frame(plan, store.cameras[k % len(store.cameras)], 20.0 + k * 0.5, rng_for(77, "bench", k))[0]
        for k in range(frames)
    ]
    batch = len(store.cameras) if device != "cpu" else 1
    for _ in range(3):  # warm-up
        model.predict(images[:batch], imgsz=imgsz, device=device, verbose=False)
    t0 = time.perf_counter()
    for i in range(0, frames, batch):
        model.predict(images[i : i + batch], imgsz=imgsz, device=device, verbose=False)
    return frames / (time.perf_counter() - t0)


def truth_frames(path: Path) -> dict[int, list[tuple[str, str | None, float, float]]]:
    """t ns -> (shopper, visit, x, y) of everyone on the floor."""
    out: dict[int, list[tuple[str, str | None, float, float]]] = {}
    for rec in read_messages(path, [TRUTH_POSITIONS]):
        tp = TruthPositions.model_validate_json(rec.data)
        out[tp.t_ns] = [(s.shopper_id, s.visit_id, s.x, s.y) for s in tp.shoppers]
    return out


def _nearest_truth(truth: dict[int, list[tuple[str, str | None, float, float]]], times: np.ndarray, t_ns: int) -> int:
    k = int(np.searchsorted(times, t_ns))
    cands = [times[i] for i in (k - 1, k) if 0 <= i < len(times)]
    return int(min(cands, key=lambda c: abs(int(c) - t_ns)))


def tracking_and_binding(path: Path, store: StoreLayout) -> tuple[TrackingScore, float, int]:
    """Tracking quality of the recording's `tracks` against truth, and the fusion engine's binding
    of those tracks to visits (share of matched truth positions bound to the right visit)."""
    truth = truth_frames(path)
    times = np.array(sorted(truth))
    engine = FusionEngine(store)
    frames = []
    bound_right = matched = 0
    for msg in load_messages(path):
        engine.handle(msg)
        if not isinstance(msg, ShopperTracks):
            continue
        t_truth = _nearest_truth(truth, times, msg.header.ts_ns)
        if abs(t_truth - msg.header.ts_ns) > NS // 10:
            continue
        gt = truth[t_truth]
        hyp = [(t.track_id, t.x, t.y) for t in msg.tracks]
        frames.append(([(s, x, y) for s, _, x, y in gt], hyp))
        if gt and hyp:
            d = np.array([[np.hypot(x - hx, y - hy) for _, hx, hy in hyp] for _, _, x, y in gt])
            rows, cols = linear_sum_assignment(np.where(d <= 0.5, d, 1e6))
            for r, c in zip(rows, cols, strict=True):
                if d[r, c] > 0.5:
                    continue
                matched += 1
                visit = engine.shoppers.visit_of_track(hyp[c][0], msg.header.ts_ns)
                bound_right += visit == gt[r][1]
    engine.finish()
    return score_tracking(frames, 0.5), bound_right / matched if matched else float("nan"), matched


def without_hands_and_looks(source: Path, out: Path) -> None:
    """The same recording with the simulated tracker's hands and re-identification embeddings removed:
    what vision publishes today (positions only), so the comparison isolates tracking itself."""
    with RecordingWriter(out) as w:
        w.copy_attachments(source)
        for rec in read_messages(source):
            parsed = parse_topic(rec.topic)
            data = rec.data
            if parsed is not None and parsed.kind == "shopper_tracks":
                msg = ShopperTracks.model_validate_json(data)
                bare = [t.model_copy(update={"hand": None, "appearance": None}) for t in msg.tracks]
                data = encode(msg.model_copy(update={"tracks": bare}))
            model = (
                TRUTH_MODELS[rec.topic]
                if rec.topic.startswith("truth/")
                else ROUTES[parsed.kind].model
                if parsed
                else None
            )
            if model is not None:
                w.write(rec.topic, rec.schema_name, model, data, rec.log_time_ns, rec.publish_time_ns)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--weights", default=str(DEFAULT_WEIGHTS))
    ap.add_argument("--store", default="demo", choices=["demo", "hard"])
    ap.add_argument("--shoppers", type=int, nargs="+", default=[1, 3, 5, 8], help="one scenario per count")
    ap.add_argument("--minutes", type=float, default=2.0)
    ap.add_argument("--seed", type=int, default=3)
    ap.add_argument("--frame-fps", type=float, default=4.0, help="rendered frames per second per camera")
    ap.add_argument("--speed-frames", type=int, default=40)
    ap.add_argument("--quick", action="store_true", help="1 minute, 3 shoppers, 20 frames for speed")
    ap.add_argument("--skip-speed", action="store_true")
    args = ap.parse_args()
    if args.quick:
        args.minutes, args.shoppers, args.speed_frames = 1.0, [3], 20
    weights = Path(args.weights)
    store = load_store(ROOT / "sample_data" / "stores" / f"{args.store}.yaml")
    lines = [f"machine: {os.cpu_count()} cores, {platform.processor() or platform.machine()}; load {os.getloadavg()}"]

    speed_rows = []
    if not args.skip_speed:
        threads = torch.get_num_threads()
        torch.set_num_threads(1)
        for imgsz in (320, 640):
            fps = detector_speed(store, weights, imgsz, args.speed_frames, "cpu")
            speed_rows.append(f"| detector, 1 CPU core, batch 1 | {imgsz} | {fps:.1f} frames/s ({1000 / fps:.0f} ms) |")
        torch.set_num_threads(threads)
        if torch.cuda.is_available():
            for imgsz in (320, 640):
                fps = detector_speed(store, weights, imgsz, args.speed_frames * 4, "0")
                speed_rows.append(f"| detector, GPU, batch {len(store.cameras)} | {imgsz} | {fps:.0f} frames/s |")
        else:
            speed_rows.append("| detector, GPU | - | no GPU on this machine |")

    print("\n".join(lines))
    print()
    if speed_rows:
        print("| what | imgsz | speed |\n|---|---|---|")
        print("\n".join(speed_rows))
        print()
    rows = []
    for shoppers in args.shoppers:
        rows += scenario_rows(store, args.store, weights, shoppers, args.minutes, args.seed, args.frame_fps)
    print(
        "| shoppers | tracks from | MOTA | IDF1 | ID switches | tracks / people | mean error | bound to right visit "
        "| item F1 |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    print("\n".join(rows))


def scenario_rows(
    store: StoreLayout, store_name: str, weights: Path, shoppers: int, minutes: float, seed: int, frame_fps: float
) -> list[str]:
    """One random scenario with rendered frames: the vision path's tracks against the simulator's."""
    with tempfile.TemporaryDirectory() as tmp:
        sim_path = Path(tmp) / "sim.mcap"
        vis_path = Path(tmp) / "vision.mcap"
        bare_path = Path(tmp) / "bare.mcap"
        scenario = random_scenario(store, shoppers, minutes, seed)
        t0 = time.perf_counter()
        simulate(store, scenario, sim_path, frames=True, frame_fps=frame_fps, progress=True)
        render_s = time.perf_counter() - t0
        pipeline = VisionPipeline(
            store_from_recording(sim_path), DetectorConfig(weights=weights, device=None, imgsz=320)
        )
        t0 = time.perf_counter()
        vision_recording(pipeline, sim_path, vis_path, progress=True)
        vision_s = time.perf_counter() - t0
        n_frames = int(scenario.duration_s * frame_fps) * len(store.cameras)
        without_hands_and_looks(sim_path, bare_path)
        results = [
            (name, *tracking_and_binding(path, store)[:2], evaluate(path))
            for name, path in (
                ("simulator's tracker (positions, hands, looks)", sim_path),
                ("simulator's tracker, positions only", bare_path),
                ("vision path", vis_path),
            )
        ]
    print(
        f"scenario: {scenario.name} in the {store_name} store, {len(store.cameras)} cameras at "
        f"{frame_fps:g} frames/s = {n_frames} frames (rendered in {render_s:.0f} s; vision path "
        f"{vision_s:.0f} s = {n_frames / vision_s:.1f} frames/s on {torch.get_num_threads()} threads)",
        flush=True,
    )
    return [
        f"| {shoppers} | {name} | {tr.mota:.3f} | {tr.idf1:.3f} | {tr.id_switches} | {tr.track_ids} / {tr.truth_ids} "
        f"| {tr.mean_error_m:.2f} m | {bind:.1%} | {ev.items.f1:.3f} ({ev.items.actual} items) |"
        for name, tr, bind, ev in results
    ]


if __name__ == "__main__":
    main()
