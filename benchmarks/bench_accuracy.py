"""Accuracy suite: our fusion engine beside the published baseline, on the same recordings.

    .venv/bin/python benchmarks/bench_accuracy.py [--seeds 3] [--shoppers 20] [--minutes 15] [--quick]

Random sessions on the demo and the hard store (several seeds) and the scripted hard cases.
Prints a markdown table. Targets (issue #3): demo F1 >= 0.995, exact receipts >= 98%, review <= 3%;
hard F1 >= 0.97 with review <= 10%; after review F1 >= 0.999 on both.
"""

from __future__ import annotations

import argparse
import platform
import tempfile
from pathlib import Path

from tqdm import tqdm

from store_edge.evaluation import Evaluation, evaluate
from store_edge.fusion.baseline import BaselineEngine
from store_edge.fusion.engine import FusionEngine
from store_edge.layout import load_store
from store_edge.sim.generate import random_scenario
from store_edge.sim.scenario import load_scenario
from store_edge.sim.simulator import simulate

ROOT = Path(__file__).resolve().parents[1]


def row(name: str, engine: str, ev: Evaluation) -> str:
    j = ev.as_json()
    return (
        f"| {name} | {engine} | {ev.items.actual} | {j['items']['precision']:.3f} | {j['items']['recall']:.3f} | "
        f"{j['items']['f1']:.3f} | {j['receipts']['exact_match']:.0%} | {j['review_rate']:.1%} | "
        f"{j['after_review']['f1']:.3f} | {j['speed']['samples_per_s']:,} |"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--shoppers", type=int, default=20)
    parser.add_argument("--minutes", type=float, default=15)
    parser.add_argument("--quick", action="store_true", help="one seed, 8 shoppers, 4 minutes")
    args = parser.parse_args()
    if args.quick:
        args.seeds, args.shoppers, args.minutes = 1, 8, 4
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        cases: list[tuple[str, Path]] = []
        demo = load_store(ROOT / "sample_data" / "stores" / "demo.yaml")
        hard_cases = Path(tmp) / "hard-cases.mcap"
        simulate(demo, load_scenario(ROOT / "sample_data" / "scenarios" / "demo-hard-cases.yaml"), hard_cases)
        cases.append(("demo scripted hard cases", hard_cases))
        for store_id in ("demo", "hard"):
            store = load_store(ROOT / "sample_data" / "stores" / f"{store_id}.yaml")
            for seed in tqdm(range(1, args.seeds + 1), desc=f"simulating {store_id}", leave=False):
                out = Path(tmp) / f"{store_id}-{seed}.mcap"
                simulate(store, random_scenario(store, args.shoppers, args.minutes, seed), out)
                cases.append((f"{store_id} {args.shoppers}x{args.minutes:g}min seed {seed}", out))
        for name, path in tqdm(cases, desc="evaluating", leave=False):
            for label, engine in (("ours", FusionEngine), ("baseline", BaselineEngine)):
                rows.append(row(name, label, evaluate(path, engine_class=engine)))
    print(f"machine: {platform.machine()}, {platform.python_version()}; one core")
    print()
    print(
        "| recording | engine | units | precision | recall | F1 | exact receipts | review | F1 after review "
        "| samples/s |"
    )
    print("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    print("\n".join(rows))


if __name__ == "__main__":
    main()
