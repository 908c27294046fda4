"""What was taken or returned: scoring (product, quantity) hypotheses for a weight event.

Each hypothesis is scored by (a) how well its total weight explains the measured change, with each
product's unit-to-unit spread in the variance, (b) whether the plates that changed can hold those
products (the planogram, kept up to date by the inventory), and (c) a prior that prefers fewer
units. Weight alone cannot separate products within a few grams of each other; location must
(field notes: weight 68%, location 76%, both 91%).
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass
from itertools import combinations_with_replacement

from store_edge.fusion.weight_events import WeightEvent
from store_edge.layout.model import StoreLayout

Items = tuple[tuple[str, int], ...]
"""((sku, units), ...) sorted by sku; one or two products."""


@dataclass(frozen=True)
class ProductParams:
    measurement_std_g: float = 1.5
    """Error of one plate's stable-to-stable change (noise averaged over the level windows)."""
    max_units: int = 6
    off_plate_penalty: float = math.log(0.01)
    """Log-penalty when a plate changed that holds none of the hypothesis' products."""
    neighbour_penalty: float = math.log(0.08)
    """Log-penalty when a changed plate only borders the product (a unit lying across two plates)."""
    unit_prior: tuple[float, ...] = (1.0, 0.45, 0.2, 0.08, 0.04, 0.02)
    two_products_prior: float = 0.05
    two_hands_two_products_prior: float = 0.5
    """With two hands in the shelf at once (light curtain), two products in one event are common."""
    return_not_carried_penalty: float = math.log(0.02)
    """A return of something no nearby shopper carries (brought in from elsewhere) is rare."""
    misplaced_pick_penalty: float = math.log(0.25)
    """Log-penalty for picking a product from plates that are not its facing's (nor next to it): a unit
    someone put back in the wrong place lies there, one among the plate's own, and the next shopper
    reaches for the plate's product."""
    reach_std_m: float = 0.02
    """Where a hand went in, as the light curtain saw it, against where a product lies on a plate that
    several products share (the curtain's error, and where along its part of the plate the unit was)."""


@dataclass(frozen=True)
class ProductHypothesis:
    items: Items
    probability: float
    log_score: float

    @property
    def units(self) -> int:
        return sum(q for _, q in self.items)


class PlateInventory:
    """What each plate holds now, by sku. Starts from the planogram at full stock; picks take units
    away, returns put them where they were actually put (a wrong-place return updates the plate)."""

    def __init__(self, store: StoreLayout) -> None:
        self.store = store
        self.units: dict[str, Counter[str]] = {pid: Counter() for pid in store.plate_geometry}
        for f in store.planogram:
            for pid, n in f.plates.items():
                self.units[pid][f.sku] += n

    def skus_near(self, plate_ids: list[str], reach: int = 1) -> set[str]:
        """Products on these plates or on plates up to `reach` away on the same shelf."""
        out: set[str] = set()
        for pid in plate_ids:
            geo = self.store.plate_geometry[pid]
            shelf = self.store.shelves_by_id[geo.shelf_id]
            lo, hi = max(0, geo.index_on_shelf - reach), geo.index_on_shelf + reach
            for p in shelf.plates[lo : hi + 1]:
                out.update(s for s, n in self.units[p.id].items() if n > 0)
        return out

    def holds(self, plate_id: str, sku: str, reach: int = 1) -> bool:
        return sku in self.skus_near([plate_id], reach)

    def take(self, plate_deltas: dict[str, float], sku: str, units: int) -> None:
        """Remove units of sku, from the plates whose weight went down the most first."""
        for pid in sorted(plate_deltas, key=lambda p: plate_deltas[p]):
            for candidate in self.plate_and_neighbours(pid):
                while units and self.units[candidate][sku] > 0:
                    self.units[candidate][sku] -= 1
                    units -= 1

    def put(self, plate_deltas: dict[str, float], sku: str, units: int) -> None:
        target = max(plate_deltas, key=lambda p: plate_deltas[p])
        self.units[target][sku] += units

    def plate_and_neighbours(self, pid: str) -> list[str]:
        """The plate and the plates on either side of it on its shelf."""
        geo = self.store.plate_geometry[pid]
        plates = self.store.shelves_by_id[geo.shelf_id].plates
        i = geo.index_on_shelf
        return [plates[j].id for j in (i, i - 1, i + 1) if 0 <= j < len(plates)]


def score_products(
    event: WeightEvent,
    store: StoreLayout,
    inventory: PlateInventory,
    returnable_skus: set[str] | None = None,
    params: ProductParams | None = None,
    top: int = 5,
    hands: int = 1,
    reach_x_m: float | None = None,
) -> list[ProductHypothesis]:
    """Best hypotheses for an event, probabilities normalised over all hypotheses considered.

    For a pick (weight went down) the candidates are products on or next to the changed plates.
    For a return (weight went up) they are those plus `returnable_skus`: what the nearby shoppers
    carry, since a shopper can return an item anywhere (a wrong-place return). `hands`: how many
    hands the light curtain saw enter at these plates meanwhile; `reach_x_m`: where along the shelf,
    when it saw one. On a plate two products share, each lies on its own part of it: the hand's place
    tells them apart where their weights cannot.
    """
    p = params or ProductParams()
    total = event.total_g
    picking = total < 0
    plates = list(event.plate_deltas_g)
    local = inventory.skus_near(plates)
    candidates = set(local)
    if not picking:
        candidates |= returnable_skus or set()
    candidates &= set(store.products_by_sku)
    if not candidates:
        return []
    meas_var = p.measurement_std_g**2 * len(plates)
    # the changed plate the one hand went into, if products share it
    shared = [
        pid
        for pid in plates
        if reach_x_m is not None
        and store.plate_geometry[pid].x_range_m[0] <= reach_x_m <= store.plate_geometry[pid].x_range_m[1]
        and len(store.facings_on_plate.get(pid, [])) >= 2
    ]
    scored: list[tuple[Items, float]] = []
    # the plates that changed by 5 g or more (a plate contributes above that): where the products were taken
    changed = [pid for pid, d in event.plate_deltas_g.items() if abs(d) >= 5] or plates

    def at_home(pid: str, sku: str) -> bool:
        """This plate, or one next to it, is part of the product's facing (the planogram)."""
        near = inventory.plate_and_neighbours(pid)
        return any(q in f.plates for f in store.facings_by_sku.get(sku, []) for q in near)

    def add(items: Items) -> None:
        mean = sum(store.products_by_sku[s].unit_weight_g.mean * q for s, q in items)
        var = meas_var + sum(store.products_by_sku[s].unit_weight_g.std ** 2 * q for s, q in items)
        z = (abs(total) - mean) / math.sqrt(var)
        log = -0.5 * z * z - 0.5 * math.log(2 * math.pi * var)
        units = sum(q for _, q in items)
        log += math.log(p.unit_prior[min(units, len(p.unit_prior)) - 1])
        if len(items) > 1:
            log += math.log(p.two_hands_two_products_prior if hands >= 2 else p.two_products_prior)
        skus = [s for s, _ in items]
        for pid, d in event.plate_deltas_g.items():
            if abs(d) < 5:
                continue
            if any(inventory.holds(pid, s, reach=0) for s in skus):
                continue
            if not picking and any(s in (returnable_skus or set()) for s in skus):
                continue  # a return may land anywhere
            # a pick takes what is there; a unit straddling from the next plate is the rare case
            near = any(inventory.holds(pid, s, reach=1) for s in skus)
            log += p.neighbour_penalty if near else p.off_plate_penalty
        if picking:
            log += p.misplaced_pick_penalty * sum(1 for s in skus if not any(at_home(pid, s) for pid in changed))
        if picking and len(skus) > 1:
            # and each product of a pick was taken from where it lies: a plate that changed holds it
            # (one plate that changed explains only the products on it, whatever the other hand did)
            for s in skus:
                if any(inventory.holds(pid, s, reach=0) for pid in changed):
                    continue
                near = any(inventory.holds(pid, s, reach=1) for pid in changed)
                log += p.neighbour_penalty if near else p.off_plate_penalty
        if shared and reach_x_m is not None and len(items) == 1:
            where = store.where_on_plate_m(shared[0], skus[0])
            log += max(-0.5 * ((reach_x_m - where) / p.reach_std_m) ** 2, p.neighbour_penalty)
        if not picking and returnable_skus is not None:
            log += p.return_not_carried_penalty * sum(1 for s in skus if s not in returnable_skus)
        if picking:
            for s, q in items:
                stock = sum(inventory.units[x][s] for pid in plates for x in inventory.plate_and_neighbours(pid))
                if stock < q:
                    log += p.off_plate_penalty * (q - stock)
        scored.append((items, log))

    cands = sorted(candidates)
    max_total = abs(total) + 4 * math.sqrt(meas_var) + 30
    for sku in cands:
        w = store.products_by_sku[sku].unit_weight_g.mean
        for q in range(1, p.max_units + 1):
            if w * q > max_total:
                break
            add(((sku, q),))
    # two different products in one event (one hand, two items; or two hands)
    near = [s for s in cands if store.products_by_sku[s].unit_weight_g.mean < abs(total) + 30]
    if len(near) <= 40:
        for a, b in combinations_with_replacement(near, 2):
            if a == b:
                continue
            wa, wb = store.products_by_sku[a].unit_weight_g.mean, store.products_by_sku[b].unit_weight_g.mean
            for qa in range(1, 4):
                for qb in range(1, 4):
                    if abs(wa * qa + wb * qb - abs(total)) < 4 * math.sqrt(meas_var) + 10:
                        add(((a, qa), (b, qb)))
    if not scored:
        return []
    best = max(log for _, log in scored)
    weights = [(items, math.exp(log - best), log) for items, log in scored]
    norm = sum(w for _, w, _ in weights)
    ranked = sorted(weights, key=lambda x: -x[1])[:top]
    return [ProductHypothesis(items, w / norm, log) for items, w, log in ranked]
