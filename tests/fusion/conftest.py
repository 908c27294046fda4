from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from store_edge.evaluation import Evaluation, evaluate
from store_edge.fusion.engine import FusionEngine
from store_edge.layout import StoreLayout
from store_edge.sim.scenario import NoiseParams, Scenario, Shopper
from store_edge.sim.simulator import simulate

RunScenario = Callable[..., Evaluation]


@pytest.fixture
def run_scenario(demo_store: StoreLayout, tmp_path: Path) -> RunScenario:
    """Simulate scripted shoppers in the demo store (seeded) and run the engine and evaluator on it."""

    def run(
        shoppers: list[Shopper],
        duration_s: float = 70,
        seed: int = 1,
        engine_class: type[FusionEngine] = FusionEngine,
        **noise: object,
    ) -> Evaluation:
        scenario = Scenario(
            store="demo", seed=seed, duration_s=duration_s, shoppers=shoppers, noise=NoiseParams.model_validate(noise)
        )
        out = tmp_path / f"s{seed}.mcap"
        simulate(demo_store, scenario, out)
        return evaluate(out, demo_store, explain=True, engine_class=engine_class)

    return run
