"""Random scenarios with a realistic mix: `store-edge simulate --shoppers N --minutes M --seed S`.

The mix is what makes the published systems fail (field notes): put-backs, some to the wrong place,
parties on one account handing items to each other, several shoppers at one gondola (popular
products draw crowds), multi-item picks, touches without taking, and items held on the shelf.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from store_edge.layout.model import StoreLayout
from store_edge.sim.plan import REACH_LEAD_S, rng_for, stand_point
from store_edge.sim.scenario import Action, NoiseParams, Scenario, Shopper
from store_edge.sim.walking import FloorGrid, path_length


@dataclass(frozen=True)
class ScenarioMix:
    party_prob: float = 0.15
    """Share of arrivals that come as a party of 2-3 on one code."""
    stops: tuple[int, int] = (2, 7)
    quantity_probs: tuple[float, float, float] = (0.82, 0.13, 0.05)
    """Chance of picking 1, 2 or 3 units at once."""
    touch_prob: float = 0.05
    put_back_prob: float = 0.12
    wrong_place_prob: float = 0.25
    """Share of put-backs that go onto another product's plates."""
    hold_prob: float = 0.03
    hand_off_prob: float = 0.35
    """Chance that a party hands an item between its members."""
    browse_s: tuple[float, float] = (3.0, 15.0)
    popularity_exponent: float = 1.1
    """Zipf exponent of product popularity (crowds at the popular gondolas)."""
    body_spacing_m: float = 0.5
    """People at shelves keep their centres this far apart (shoulder to shoulder): at a popular plate
    the next shopper stands beside the first and reaches sideways, not inside them."""


@dataclass
class _Draft:
    shopper_id: str
    account: str | None
    party_of: str | None
    enter_s: float
    speed: float
    actions: list[Action] = field(default_factory=list)
    pos: tuple[float, float] = (0.0, 0.0)
    t_free: float = 0.0
    carried: list[str] = field(default_factory=list)


def random_scenario(
    store: StoreLayout,
    shoppers: int,
    minutes: float,
    seed: int,
    noise: NoiseParams | None = None,
    mix: ScenarioMix | None = None,
) -> Scenario:
    mix = mix or ScenarioMix()
    duration = minutes * 60.0
    rng = rng_for(seed, "generate")
    grid = FloorGrid(store)
    entry = store.gates_of_kind("entry")[0]
    exit_gate = store.gates_of_kind("exit")[0]

    def travel(a: tuple[float, float], b: tuple[float, float], speed: float) -> float:
        return path_length(grid.path(a, b)) / speed

    skus = [f.sku for f in store.planogram]
    order = rng.permutation(len(skus))
    weights = 1.0 / (np.arange(1, len(skus) + 1) ** mix.popularity_exponent)
    popularity = np.empty(len(skus))
    popularity[order] = weights / weights.sum()
    # Shoppers are drafted one after another, not in time order, so stock is counted conservatively:
    # a unit returned to the shelf is never promised to a later pick. Picks come from the product's
    # first facing, as the planner does.
    facing_index: dict[str, int] = {}
    for i, f in enumerate(store.planogram):
        facing_index.setdefault(f.sku, i)
    stock = {sku: sum(store.planogram[i].plates.values()) for sku, i in facing_index.items()}

    drafts: list[_Draft] = []
    n = 0
    while n < shoppers:
        size = 1
        if rng.random() < mix.party_prob and shoppers - n >= 2:
            size = min(shoppers - n, int(rng.integers(2, 4)))
        enter = float(rng.uniform(2.0, max(3.0, duration * 0.55)))
        leader = f"s{n + 1:03d}"
        for k in range(size):
            sid = f"s{n + 1:03d}"
            drafts.append(
                _Draft(
                    sid,
                    f"acct-{sid}" if k == 0 else None,
                    None if k == 0 else leader,
                    enter + k * float(rng.uniform(0.8, 1.6)),
                    float(np.clip(rng.normal(1.1, 0.12), 0.8, 1.5)),
                )
            )
            n += 1
    # A turnstile lets one party through at a time: parties that arrive together queue.
    gate_free = 0.0
    for leader_draft in sorted((d for d in drafts if d.party_of is None), key=lambda d: d.enter_s):
        party = [leader_draft] + [d for d in drafts if d.party_of == leader_draft.shopper_id]
        shift = max(0.0, gate_free - leader_draft.enter_s)
        for d in party:
            d.enter_s += shift
        gate_free = max(d.enter_s for d in party) + float(rng.uniform(1.5, 3.0))

    exit_mid = exit_gate.midpoint
    for d in drafts:
        d.pos, d.t_free = entry.midpoint, d.enter_s
        for _ in range(int(rng.integers(mix.stops[0], mix.stops[1] + 1))):
            sku = skus[int(rng.choice(len(skus), p=popularity))]
            plates = list(store.planogram[facing_index[sku]].plates)
            where = stand_point(store, grid, plates)
            at = d.t_free + travel(d.pos, where, d.speed) + REACH_LEAD_S + float(rng.uniform(*mix.browse_s))
            r = rng.random()
            taken: list[str] = []  # what the shopper carries after this action, applied only if it fits
            if d.carried and r < mix.put_back_prob:
                back = d.carried[int(rng.integers(len(d.carried)))]
                if rng.random() < mix.wrong_place_prob and back != sku:
                    action = Action(at_s=round(at, 2), kind="put_back", sku=back, plates=[plates[0]])
                else:  # walks back to where it came from
                    home = list(store.planogram[facing_index[back]].plates)
                    where = stand_point(store, grid, home)
                    at = d.t_free + travel(d.pos, where, d.speed) + REACH_LEAD_S + float(rng.uniform(*mix.browse_s))
                    action = Action(at_s=round(at, 2), kind="put_back", sku=back)
            elif rng.random() < mix.touch_prob:
                action = Action(at_s=round(at, 2), kind="touch", plates=[plates[int(rng.integers(len(plates)))]])
            else:
                qty = 1 + int(rng.choice(3, p=list(mix.quantity_probs)))
                qty = min(qty, stock[sku])
                if qty == 0:
                    continue
                hold = round(float(rng.uniform(3, 10)), 1) if rng.random() < mix.hold_prob else 0.0
                action = Action(at_s=round(at, 2), kind="pick", sku=sku, quantity=qty, hold_s=hold)
                taken = [sku] * qty
            end = at + action.hold_s + 0.45 * action.quantity + 3.5
            if end + travel(where, exit_mid, d.speed) + 12 > duration:
                break  # no time left for it: the shopper heads for the exit with what they carry
            if action.kind == "put_back":
                assert action.sku is not None
                d.carried.remove(action.sku)
            if taken:
                stock[sku] -= len(taken)
                d.carried.extend(taken)
            d.actions.append(action)
            d.pos, d.t_free = where, end

    # Hand-offs inside parties: the receiver walks over once both are done shopping.
    by_id = {d.shopper_id: d for d in drafts}
    for d in drafts:
        members = [m for m in drafts if m.party_of == d.shopper_id]
        if not members or rng.random() >= mix.hand_off_prob:
            continue
        group = [d, *members]
        givers = [m for m in group if m.carried]
        if not givers:
            continue
        giver = givers[int(rng.integers(len(givers)))]
        receiver = next(m for m in group if m is not giver)
        at = max(giver.t_free + 2.0, receiver.t_free + travel(receiver.pos, giver.pos, receiver.speed) + 5.0)
        if at + 8 + travel(giver.pos, exit_mid, min(giver.speed, receiver.speed)) + 12 > duration:
            continue
        sku = giver.carried.pop()
        giver.actions.append(Action(at_s=round(at, 2), kind="hand_off", sku=sku, to=receiver.shopper_id))
        receiver.carried.append(sku)
        giver.t_free = receiver.t_free = at + 3.0
        receiver.pos = giver.pos
    del by_id

    return Scenario(
        name=f"random-{shoppers}x{minutes:g}min-seed{seed}",
        store=store.store_id,
        seed=seed,
        duration_s=math.ceil(duration),
        noise=noise or NoiseParams(),
        body_spacing_m=mix.body_spacing_m,
        shoppers=[
            Shopper(
                id=d.shopper_id,
                account=d.account,
                party_of=d.party_of,
                enter_s=round(d.enter_s, 2),
                speed_m_s=round(d.speed, 3),
                actions=d.actions,
            )
            for d in drafts
        ],
    )
