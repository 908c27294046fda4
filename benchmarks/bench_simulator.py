"""Simulator throughput: how long a recording takes to make, per store and session size.

    .venv/bin/python benchmarks/bench_simulator.py [--quick]

Prints a table (markdown). Not a test: no thresholds, just numbers for docs/simulator.md.
"""

from __future__ import annotations

import argparse
import platform
import tempfile
import time
from pathlib import Path

from store_edge.layout import load_store
from store_edge.sim.generate import random_scenario
from store_edge.sim.simulator import simulate

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="small sessions only")
    args = parser.parse_args()
    cases = [("demo", 12, 6.0), ("hard", 12, 6.0)]
    if not args.quick:
        cases += [("demo", 20, 15.0), ("hard", 20, 15.0)]
    print(f"machine: {platform.processor() or platform.machine()}, python {platform.python_version()}")
    print()
    print("| store | shoppers | minutes | plate samples | messages | MB | seconds | realtime factor | samples/s |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    with tempfile.TemporaryDirectory() as tmp:
        for store_id, shoppers, minutes in cases:
            store = load_store(ROOT / "sample_data" / "stores" / f"{store_id}.yaml")
            t0 = time.perf_counter()
            scenario = random_scenario(store, shoppers, minutes, seed=1)
            result = simulate(store, scenario, Path(tmp) / f"{store_id}.mcap")
            dt = time.perf_counter() - t0
            rate = sum(s.scale.rate_hz for g in store.gondolas for s in g.shelves) / len(
                [s for g in store.gondolas for s in g.shelves]
            )
            samples = int(store.plate_count * rate * minutes * 60)
            mb = result.out.stat().st_size / 1e6
            print(
                f"| {store_id} | {shoppers} | {minutes:g} | {samples:,} | {result.message_count:,} | {mb:.1f} | "
                f"{dt:.1f} | {minutes * 60 / dt:.0f}x | {samples / dt:,.0f} |"
            )


if __name__ == "__main__":
    main()
