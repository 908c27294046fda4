"""The published approach, for comparison in benchmarks: product score = 0.8 x location + 0.2 x
weight (Gaussian, sigma 10 g), the nearest shopper wins, nothing goes to review (field notes)."""

from __future__ import annotations

import math

from store_edge.fusion.engine import Decision, EngineOutput, FusionEngine
from store_edge.fusion.products import ProductHypothesis
from store_edge.fusion.shoppers import NS, samples_between
from store_edge.fusion.weight_events import WeightEvent
from store_edge.layout.model import distance_to_segment

WEIGHT_SIGMA_G = 10.0


class BaselineEngine(FusionEngine):
    def _decide(self, event: WeightEvent) -> EngineOutput:
        out = EngineOutput()
        self.events.append(event)
        main_plate = max(event.plate_deltas_g, key=lambda p: abs(event.plate_deltas_g[p]))
        total = abs(event.total_g)
        best: tuple[float, str, int] | None = None
        for sku, product in self.store.products_by_sku.items():
            location = 1.0 if self.inventory.holds(main_plate, sku, reach=0) else 0.0
            for qty in range(1, 6):
                weight = math.exp(-0.5 * ((total - qty * product.unit_weight_g.mean) / WEIGHT_SIGMA_G) ** 2)
                score = 0.8 * location + 0.2 * weight
                if best is None or score > best[0]:
                    best = (score, sku, qty)
        if best is None:
            return out
        _, sku, qty = best
        geo = self.store.plate_geometry[main_plate]
        nearest: tuple[float, str] | None = None
        for hist in self.shoppers.tracks.values():
            visit = self.shoppers.visit_of_track(hist.track_id)
            if visit is None or self._cart_for(visit) is None:
                continue
            for _, x, y, _ in samples_between(hist.samples, event.start_ns - NS, event.start_ns + NS):
                d = distance_to_segment((x, y), geo.front_left, geo.front_right)
                if nearest is None or d < nearest[0]:
                    nearest = (d, visit)
        if nearest is None:
            return out
        cart = self.carts[nearest[1]]
        hyp = ProductHypothesis(((sku, qty),), 1.0, 0.0)
        sign = -1 if event.total_g > 0 else 1
        if sign < 0:
            self.inventory.put(event.plate_deltas_g, sku, qty)
        else:
            self.inventory.take(event.plate_deltas_g, sku, qty)
        self._add_lines(Decision(event, [hyp], []), [(cart, sku, sign * qty)], 1.0, "baseline", out)
        return out
