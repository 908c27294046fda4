"""Regenerate the small recordings shipped in sample_data/recordings/ (deterministic).

.venv/bin/python tools/make_sample_recordings.py [--out DIR]
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path

from store_edge.layout import load_store
from store_edge.sim.generate import random_scenario
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


SAMPLES = [
    SampleRecording("demo-hard-cases", "demo", scenario="sample_data/scenarios/demo-hard-cases.yaml"),
    SampleRecording("demo-random-8x4min-seed1", "demo", shoppers=8, minutes=4, seed=1),
    SampleRecording("hard-random-6x3min-seed2", "hard", shoppers=6, minutes=3, seed=2),
]


def make(sample: SampleRecording, out_dir: Path) -> Path:
    store_path = ROOT / "sample_data" / "stores" / f"{sample.store}.yaml"
    store = load_store(store_path)
    if sample.scenario:
        scenario = load_scenario(ROOT / sample.scenario)
    else:
        scenario = random_scenario(store, sample.shoppers, sample.minutes, sample.seed)
    out = out_dir / f"{sample.name}.mcap"
    simulate(
        store,
        scenario,
        out,
        store_text=store_path.read_text(encoding="utf-8"),
        scenario_source=sample.scenario or "<generated>",
    )
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", type=Path, default=ROOT / "sample_data" / "recordings")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    for sample in SAMPLES:
        path = make(sample, args.out)
        print(f"{path} ({path.stat().st_size / 1e6:.1f} MB)")


if __name__ == "__main__":
    main()
