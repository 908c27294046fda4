"""Train the person detector shipped in `models/` from frames the simulator renders. One command:

    .venv/bin/python tools/train_detector.py

1. Renders a YOLO-format data set (class 0 = person) from seeded random scenarios of the demo and hard
   stores: every scenario's own floor, walls, shelving and light, each shopper's own build and
   clothing, crowds of 4 to 22 shoppers, people half hidden behind gondolas or cut by the image edge.
   Train and test are split by scenario (different seeds, so different people, stores' looks and
   paths); the test scenarios are never seen in training.
2. Trains a small ultralytics detector from its yaml config (no pretrained weights: nothing is
   downloaded) at `--imgsz` on the CPU or a GPU (`--device 0`), with fixed seeds and ultralytics'
   deterministic mode, in up to three stages: from scratch, then once or twice more from the previous
   stage's weights with a fresh learning-rate schedule (warm restart).
3. Evaluates the trained weights on the held-out test frames (precision, recall, mAP50, mAP50-95),
   copies them to `--weights-out` and writes the model card `--card` with the numbers.

The same arguments give the same data set byte for byte (the renderer is deterministic); training is
seeded and deterministic on one machine (thread scheduling can still differ across machines).
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import platform
import shutil
import sys
import time
from dataclasses import dataclass
from pathlib import Path

# Ultralytics checks the network for fonts, pip packages and hub settings; the store edge is offline.
os.environ.setdefault("YOLO_OFFLINE", "1")

import cv2
import numpy as np
from tqdm import tqdm

from store_edge.layout import load_store
from store_edge.sim.frames import render_frame
from store_edge.sim.generate import ScenarioMix, random_scenario
from store_edge.sim.plan import Plan, build_plan, rng_for

REPO = Path(__file__).resolve().parent.parent
STORES = {"demo": REPO / "sample_data/stores/demo.yaml", "hard": REPO / "sample_data/stores/hard.yaml"}
FINAL_EPOCHS = 0
"""Stage 3's epochs: none for the shipped weights; `--final-epochs 30` gives the stage 3 candidate that
models/MODEL_CARD.md describes (better held-out mAP50, but it fails tests/vision's end-to-end test)."""


@dataclass(frozen=True)
class ScenarioSpec:
    store: str
    seed: int
    shoppers: int
    minutes: float
    body_spacing_m: float


def scenario_specs(count: int, first_seed: int) -> list[ScenarioSpec]:
    """`count` scenarios alternating between the stores, crowding drawn per scenario. Every other pair
    packs people at shelves shoulder to shoulder (no body spacing): the detector must split people who
    touch, whichever way a store's shoppers stand."""
    rng = np.random.default_rng(first_seed)
    specs = []
    for k in range(count):
        store = "demo" if k % 2 == 0 else "hard"
        spacing = ScenarioMix.body_spacing_m if k % 4 < 2 else 0.0
        specs.append(ScenarioSpec(store, first_seed + k, int(rng.integers(4, 23)), 3.0, spacing))
    return specs


def _frame_times(plan: Plan, frames: int, rng: np.random.Generator) -> list[float]:
    """Random instants while somebody is in the store (an empty store teaches little)."""
    spans = [(p.enter_s, p.exit_s) for p in plan.shoppers]
    lo, hi = min(s[0] for s in spans), max(s[1] for s in spans)
    return sorted(float(t) for t in rng.uniform(lo, hi, frames))


@dataclass(frozen=True)
class RenderJob:
    spec: ScenarioSpec
    root: Path
    split: str
    frames: int
    empty_share: float


def render_scenario(job: RenderJob) -> tuple[int, int]:
    """Renders one scenario's frames and labels into `job.root`; returns (images, boxes).

    Every scenario draws from its own seeded generators, so the frames do not depend on which process
    renders them or in what order."""
    spec, split = job.spec, job.split
    images_dir, labels_dir = job.root / "images" / split, job.root / "labels" / split
    store = load_store(STORES[spec.store])
    mix = ScenarioMix(body_spacing_m=spec.body_spacing_m)
    plan = build_plan(store, random_scenario(store, spec.shoppers, spec.minutes, spec.seed, mix=mix))
    rng = rng_for(spec.seed, "dataset", split)
    n_images = n_boxes = 0
    for k, t in enumerate(_frame_times(plan, job.frames * 3, rng)):
        if n_images >= job.frames:
            break
        camera = store.cameras[int(rng.integers(len(store.cameras)))]
        img, boxes = render_frame(plan, camera, t, rng_for(spec.seed, "dataset-frame", split, k))
        # most frames show somebody; a few empty ones teach the detector what the store alone is
        if not boxes and rng.random() > job.empty_share:
            continue
        name = f"{spec.store}-s{spec.seed}-{k:05d}-{camera.id}"
        cv2.imwrite(str(images_dir / f"{name}.jpg"), img, [cv2.IMWRITE_JPEG_QUALITY, 90])
        h, w = img.shape[:2]
        lines = []
        for b in boxes:
            x1, y1, x2, y2 = b.box
            lines.append(f"0 {(x1 + x2) / 2 / w:.6f} {(y1 + y2) / 2 / h:.6f} {(x2 - x1) / w:.6f} {(y2 - y1) / h:.6f}")
        (labels_dir / f"{name}.txt").write_text("\n".join(lines) + ("\n" if lines else ""))
        n_images += 1
        n_boxes += len(boxes)
    return n_images, n_boxes


def render_split(
    specs: list[ScenarioSpec], root: Path, split: str, frames_per_scenario: int, empty_share: float, jobs: int
) -> tuple[int, int]:
    """Writes `root/images/split/*.jpg` and `root/labels/split/*.txt` with `jobs` processes; returns
    (images, boxes)."""
    for d in (root / "images" / split, root / "labels" / split):
        shutil.rmtree(d, ignore_errors=True)
        d.mkdir(parents=True)
    work = [RenderJob(spec, root, split, frames_per_scenario, empty_share) for spec in specs]
    with multiprocessing.get_context("spawn").Pool(max(1, min(jobs, len(work)))) as pool:
        counts = list(tqdm(pool.imap(render_scenario, work), total=len(work), desc=f"render {split}", unit="scenario"))
    return sum(c[0] for c in counts), sum(c[1] for c in counts)


def write_card(path: Path, args: argparse.Namespace, facts: dict[str, str]) -> None:
    f = facts
    text = f"""# Person detector for ceiling cameras (`{Path(args.weights_out).name}`)

A one-class (person) ultralytics {f["arch"]} detector for the store's top-down ceiling cameras,
trained from scratch on frames rendered by the store simulator (`store_edge/sim/frames.py`).
Nothing is downloaded to build, train or run it.

## Intended use
Input: one ceiling-camera frame (BGR), resized to {args.imgsz} px on its long side. Output: person
boxes with a confidence. `store-edge vision` tracks the boxes per camera (ByteTrack) and puts each
person on the floor through the camera's calibration. It has only seen *rendered* people: before a
real store relies on it, measure it on that store's own frames and, where it falls short, train on
them or configure the store's own model (`--weights FILE --classes 0`).

## Data
- Rendered by `tools/train_detector.py` from seeded random scenarios (`store-edge simulate`'s
  generator) of the demo store (14 cameras, 640x480) and the hard store (18 cameras), alternating.
- Variety: each scenario seed gives its own floor colour, tiles, walls, shelf colours and light pools;
  each shopper their own build, skin, hair, clothes, hat or hood, backpack, basket; each frame its own
  exposure, contrast, blur and sensor noise. Crowds of 4 to 22 shoppers in 3 minutes; in every other pair
  of scenarios people at shelves stand shoulder to shoulder, in the rest they keep 0.5 m apart (the
  simulator's default); people half hidden behind gondolas (truth boxes kept while at least 15% of
  the body shows) or cut by the image edge; about {int(args.empty_share * 100)}% of the empty frames are
  kept as negatives.
- Train: {f["train_scenarios"]} scenarios (seeds {f["train_seeds"]}), {f["train_images"]} images,
  {f["train_boxes"]} person boxes.
- Held-out test: {f["test_scenarios"]} scenarios (seeds {f["test_seeds"]}), never seen in
  training, {f["test_images"]} images, {f["test_boxes"]} person boxes.

## Training recipe
- Model: `{args.model_config}` (nc=1): ultralytics' YOLOv8 layers at half the nano width, from
  scratch, {f["params"]} parameters: small enough for the vision worker on one CPU core (yolov8n is
  2.3x slower per step).
- {f["stages"]}. All stages on the same training images.
- `imgsz={args.imgsz}`, `batch={args.batch}`, ultralytics' automatic optimiser (AdamW, lr 0.002, falling
  linearly to 1% over each stage) and ultralytics' default augmentation (mosaic, off for the last
  {f["closed_mosaic"]}; HSV, flips, scale), `warmup_epochs=1`, `seed={args.seed}`, `deterministic=True`,
  `device={args.device}`, `workers={args.workers}` (each worker seeds its own augmentation: another count
  gives other weights); no validation during training (the test split is only scored at the end, and
  the last epoch's weights are kept whatever they score).
- Training took {f["train_minutes"]} on {f["machine"]}{f["train_note"]}.

Reproduce (renders the data set into `{args.work_dir}`, trains, evaluates, writes this card):

    .venv/bin/python tools/train_detector.py{f["cli_args"]}

## Held-out results (test split, imgsz {args.imgsz}, conf 0.001, IoU 0.7 NMS)

| metric | value |
|---|---|
| precision | {f["precision"]} |
| recall | {f["recall"]} |
| mAP50 | {f["map50"]} |
| mAP50-95 | {f["map"]} |

{f["verdict"]}

## Limits
- Rendered people are simpler than real ones (flat-shaded shapes, no motion blur beyond a slight
  Gaussian, no real camera artefacts): expect lower numbers on a real store until trained on its frames.
- Trained at {args.imgsz} px; it runs at 640 px too (see docs/vision.md for speed), with accuracy not
  measured there.
"""
    path.write_text(text)


def _stages_text(args: argparse.Namespace, stage_epochs: dict[int, int]) -> str:
    if args.hours:
        first = f"`time={args.hours}` hours ({stage_epochs.get(1, '?')} epochs)"
    else:
        first = f"`epochs={args.epochs}`"
    parts = [f"Stage 1: {first} from scratch"]
    for stage, epochs in ((2, args.more_epochs), (3, args.final_epochs)):
        if epochs:
            parts.append(f"stage {stage}: `epochs={epochs}` more from the previous stage's weights, fresh schedule")
    return "; ".join(parts)


def _closed_mosaic_text(args: argparse.Namespace) -> str:
    last = ["3 epochs of stage 1"]
    if args.more_epochs:
        last.append("3 of stage 2")
    if args.final_epochs:
        last.append(f"{args.final_close_mosaic} of stage 3")
    return ", ".join(last)


def _machine(device: str) -> str:
    cpu = f"{os.cpu_count()} CPU cores ({platform.processor() or platform.machine()})"
    if device == "cpu":
        return f"{cpu} (nice'd, on a shared machine)"
    import torch

    return f"one {torch.cuda.get_device_name(int(device.split(',')[0]))} GPU with {cpu} loading data"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--work-dir", default="build/detector", help="data set and training runs (not committed)")
    ap.add_argument(
        "--model-config", default="models/yolov8-pico.yaml", help="ultralytics model yaml (trained from scratch)"
    )
    ap.add_argument("--imgsz", type=int, default=320)
    ap.add_argument("--epochs", type=int, default=57, help="stage 1: epochs from scratch")
    ap.add_argument("--more-epochs", type=int, default=0, help="stage 2: epochs from stage 1's weights (0: none)")
    ap.add_argument(
        "--final-epochs", type=int, default=FINAL_EPOCHS, help="stage 3: epochs from stage 2's weights (0: none)"
    )
    ap.add_argument(
        "--final-close-mosaic", type=int, default=7, help="stage 3: its last epochs without mosaic augmentation"
    )
    ap.add_argument("--init-weights", help="skip the stages before --start-stage: start from these weights")
    ap.add_argument(
        "--start-stage",
        type=int,
        choices=(2, 3, 4),
        default=2,
        help="with --init-weights: the first stage to run (4: none, only evaluate the weights)",
    )
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--device", help="ultralytics device: cpu, or a GPU index such as 0 (default: GPU 0 if any)")
    ap.add_argument(
        "--workers",
        type=int,
        default=14,
        help="data-loading processes while training (each seeds its own augmentation, so this changes the result)",
    )
    ap.add_argument(
        "--cache",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="keep the decoded training images in memory (about 2 GB at 320 px)",
    )
    ap.add_argument(
        "--hours",
        type=float,
        default=0.0,
        help="stage 1: train for this long instead of --epochs (ultralytics fits its schedule to the time)",
    )
    ap.add_argument("--jobs", type=int, default=os.cpu_count() or 1, help="processes rendering the data set")
    ap.add_argument("--train-scenarios", type=int, default=80)
    ap.add_argument("--test-scenarios", type=int, default=4)
    ap.add_argument("--frames-per-scenario", type=int, default=100)
    ap.add_argument("--empty-share", type=float, default=0.1, help="share of empty frames kept")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--weights-out", default="models/person-detector-320.pt")
    ap.add_argument("--card", default="models/MODEL_CARD.md")
    ap.add_argument("--skip-render", action="store_true", help="reuse the data set already in --work-dir")
    args = ap.parse_args(argv)

    import torch
    from ultralytics.models import YOLO

    if args.device is None:
        args.device = "0" if torch.cuda.is_available() else "cpu"

    work = Path(args.work_dir).resolve()
    data_dir = work / "data"
    train_specs = scenario_specs(args.train_scenarios, first_seed=1000 + args.seed * 100_000)
    test_specs = scenario_specs(args.test_scenarios, first_seed=9000 + args.seed * 100_000)
    counts_path = data_dir / "counts.txt"
    if args.skip_render and counts_path.exists():
        n_train, b_train, n_test, b_test = (int(v) for v in counts_path.read_text().split())
    else:
        fps, empty = args.frames_per_scenario, args.empty_share
        n_train, b_train = render_split(train_specs, data_dir, "train", fps, empty, args.jobs)
        n_test, b_test = render_split(test_specs, data_dir, "test", fps, empty, args.jobs)
        counts_path.write_text(f"{n_train} {b_train} {n_test} {b_test}\n")
    data_yaml = data_dir / "person.yaml"
    data_yaml.write_text(
        f"path: {data_dir}\ntrain: images/train\nval: images/test\ntest: images/test\nnames:\n  0: person\n"
    )
    print(f"data: train {n_train} images / {b_train} boxes, test {n_test} images / {b_test} boxes", flush=True)

    def train(start: str, epochs: int, name: str, close_mosaic: int = 3, hours: float = 0.0) -> tuple[Path, int]:
        model = YOLO(start)
        model.train(
            data=str(data_yaml),
            imgsz=args.imgsz,
            epochs=epochs,
            time=hours or None,
            batch=args.batch,
            device=args.device,
            workers=args.workers,
            cache="ram" if args.cache else False,
            seed=args.seed,
            deterministic=True,
            pretrained=start.endswith(".pt"),  # stages 2 and 3 start from the previous stage's weights
            amp=False,
            # short runs: one warm-up epoch (not three), and the last few epochs without mosaic
            warmup_epochs=1,
            close_mosaic=close_mosaic,
            val=False,
            plots=False,
            project=str(work / "runs"),
            name=name,
            exist_ok=True,
            verbose=False,
        )
        epochs_done = model.trainer.epoch + 1  # type: ignore[attr-defined]  # with `time`, not `epochs`
        return work / "runs" / name / "weights" / "last.pt", epochs_done

    params = sum(p.numel() for p in YOLO(args.model_config).model.parameters())  # type: ignore[union-attr]
    # stage 1 from scratch; stages 2 and 3 start again from the previous stage's weights with a fresh
    # learning-rate schedule (warm restart): each restart was a separate CPU budget, and each gained
    # (stage 3 also closes mosaic for more of its epochs: the test frames are whole frames)
    stages = [
        (1, args.model_config, args.epochs, "train", 3),
        (2, "", args.more_epochs, "more", 3),
        (3, "", args.final_epochs, "final", args.final_close_mosaic),
    ]
    start_stage = args.start_stage if args.init_weights else 1
    last = Path(args.init_weights) if args.init_weights else Path(args.model_config)
    stage_minutes: dict[int, float] = {}
    stage_epochs: dict[int, int] = {}
    for stage, config, epochs, name, close_mosaic in stages:
        if stage < start_stage or not epochs:
            continue
        t0 = time.monotonic()
        last, stage_epochs[stage] = train(
            config or str(last), epochs, name, close_mosaic, args.hours if stage == 1 else 0.0
        )
        stage_minutes[stage] = (time.monotonic() - t0) / 60
    trained = YOLO(str(last))
    metrics = trained.val(
        data=str(data_yaml),
        split="test",
        imgsz=args.imgsz,
        batch=args.batch,
        device=args.device,
        workers=args.workers,
        plots=False,
        project=str(work / "runs"),
        name="test",
        exist_ok=True,
        verbose=False,
    )
    box = metrics.box
    p, r, map50, map5095 = float(box.mp), float(box.mr), float(box.map50), float(box.map)
    print(f"held-out: precision {p:.3f} recall {r:.3f} mAP50 {map50:.3f} mAP50-95 {map5095:.3f}", flush=True)

    out = Path(args.weights_out)
    out.parent.mkdir(parents=True, exist_ok=True)
    if out.resolve() != last.resolve():
        shutil.copyfile(last, out)
    defaults = ap.parse_args([])
    changed = {
        k.replace("_", "-"): v
        for k, v in vars(args).items()
        if k not in ("skip_render", "init_weights", "start_stage", "jobs", "device") and v != getattr(defaults, k)
    }
    cli = "".join(f" --{k}" if v is True else f" --no-{k}" if v is False else f" --{k} {v}" for k, v in changed.items())
    verdict = (
        f"The issue's target, held-out mAP50 >= 0.9, is met ({map50:.3f})."
        if map50 >= 0.9
        else f"The issue's target, held-out mAP50 >= 0.9, is NOT met ({map50:.3f}) in this training budget."
    )
    write_card(
        Path(args.card),
        args,
        {
            "arch": Path(args.model_config).stem,
            "params": f"{params:,}",
            "train_scenarios": str(len(train_specs)),
            "train_seeds": f"{train_specs[0].seed}-{train_specs[-1].seed}",
            "train_images": str(n_train),
            "train_boxes": str(b_train),
            "test_scenarios": str(len(test_specs)),
            "test_seeds": ", ".join(str(s.seed) for s in test_specs),
            "test_images": str(n_test),
            "test_boxes": str(b_test),
            "train_minutes": ", ".join(f"{m:.1f} min for stage {k}" for k, m in stage_minutes.items()) or "none",
            "train_note": f"; the stages before {start_stage} had run before" if start_stage > 1 else "",
            "machine": _machine(args.device),
            "stages": _stages_text(args, stage_epochs),
            "closed_mosaic": _closed_mosaic_text(args),
            "cli_args": cli,
            "precision": f"{p:.3f}",
            "recall": f"{r:.3f}",
            "map50": f"{map50:.3f}",
            "map": f"{map5095:.3f}",
            "verdict": verdict,
        },
    )
    print(f"wrote {out} ({out.stat().st_size / 1e6:.1f} MB) and {args.card}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
