"""From a scenario to a concrete plan: where every shopper is at every moment, which physical units
leave and reach which plates, and the hand and plate physics of every shelf contact.

Everything random is drawn from named streams (`rng_for`), so a change in one part of the simulator
does not reshuffle the others and the same seed always gives the same plan.
"""

from __future__ import annotations

import hashlib
import math
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from store_edge.errors import ConfigError, FieldProblem
from store_edge.layout.model import Gate, StoreLayout
from store_edge.sim.scenario import Action, Scenario, Shopper
from store_edge.sim.walking import STAND_OFF_M, FloorGrid, Trajectory, UnreachableError, path_length

REACH_LEAD_S = 0.4
"""A shopper stands at the shelf at least this long before the hand goes in."""


def rng_for(seed: int, *names: object) -> np.random.Generator:
    """An independent, stable random stream for one named part of the simulation."""
    digest = hashlib.sha256("/".join(str(n) for n in names).encode()).digest()
    return np.random.default_rng([seed, int.from_bytes(digest[:8], "little")])


def uniform(rng: np.random.Generator, r: tuple[float, float]) -> float:
    return float(rng.uniform(r[0], r[1])) if r[1] > r[0] else float(r[0])


@dataclass
class Unit:
    """One physical item. `split` says how its weight rests on plates (a unit may straddle two)."""

    uid: int
    sku: str
    weight_g: float
    split: dict[str, float]


@dataclass(frozen=True)
class Step:
    """A lasting change of a plate's load at time t (seconds), with the ringing that follows."""

    plate_id: str
    t: float
    delta_g: float


@dataclass(frozen=True)
class Pulse:
    """A temporary force on a plate (a pressing or resting hand) from t0 to t1, in grams."""

    plate_id: str
    t0: float
    t1: float
    force_g: float


@dataclass
class ShelfContact:
    """One hand visit to a shelf: what the curtain, the plates and a camera would see."""

    action_id: str
    shopper_id: str
    shelf_id: str
    plate_ids: list[str]
    hand_in: float
    hand_out: float
    steps: list[Step] = field(default_factory=list)
    pulses: list[Pulse] = field(default_factory=list)
    sku: str | None = None
    """What the hand takes or puts (the hand goes to that product's part of a plate products share)."""


@dataclass
class PlannedAction:
    action_id: str
    kind: str
    shopper_id: str
    visit_id: str
    start: float
    end: float
    sku: str | None = None
    quantity: int = 0
    shelf_id: str | None = None
    plate_deltas_g: dict[str, float] = field(default_factory=dict)
    unit_weights_g: list[float] = field(default_factory=list)
    misplaced: bool = False
    to_shopper_id: str | None = None
    to_visit_id: str | None = None


@dataclass
class PlannedShopper:
    shopper: Shopper
    visit_id: str
    trajectory: Trajectory
    enter_s: float
    exit_s: float
    exit_gate_id: str
    reaches: list[tuple[float, float, tuple[float, float, float]]] = field(default_factory=list)
    """(hand in, hand out, where the hand is) for every shelf contact."""


@dataclass
class PlannedVisit:
    visit_id: str
    account_id: str
    token: str
    entry_gate_id: str
    scan_s: float
    shopper_ids: list[str]
    exit_s: float = 0.0


@dataclass
class Plan:
    store: StoreLayout
    scenario: Scenario
    shoppers: list[PlannedShopper]
    visits: list[PlannedVisit]
    actions: list[PlannedAction]
    contacts: list[ShelfContact]
    initial_stock: dict[str, list[Unit]]
    receipts: dict[str, dict[str, int]]
    """visit id -> sku -> units carried out."""

    def plate_initial_load_g(self) -> dict[str, float]:
        load: dict[str, float] = dict.fromkeys(self.store.plate_geometry, 0.0)
        for units in self.initial_stock.values():
            for u in units:
                for pid, frac in u.split.items():
                    load[pid] += u.weight_g * frac
        return load


@dataclass
class _Stop:
    """Something a shopper must be somewhere for."""

    at_s: float
    where: tuple[float, float] | None  # None: wherever they are
    action_index: int | None  # index in the shopper's own actions, None for a meet
    duration_s: float = 0.0
    reach: tuple[float, float, float] | None = None
    path: str = ""
    plate_id: str | None = None
    """The first plate reached: its gondola says which way is out into the aisle and along the shelf."""


def stand_point(store: StoreLayout, grid: FloorGrid, plate_ids: list[str]) -> tuple[float, float]:
    """Where a shopper stands to reach these plates: in the aisle, in front of their middle."""
    geo = [store.plate_geometry[p] for p in plate_ids]
    front = np.mean([np.add(g.front_left, g.front_right) / 2 for g in geo], axis=0)
    normal = store.gondolas_by_id[geo[0].gondola_id].aisle_normal
    p = front + normal * STAND_OFF_M
    if not grid.free[grid.cell_of(p)]:
        return grid.center_of(grid.nearest_free(p))
    return (float(p[0]), float(p[1]))


class _Planner:
    def __init__(self, store: StoreLayout, scenario: Scenario, source: str | Path) -> None:
        if scenario.store != store.store_id:
            raise ConfigError(
                source,
                [FieldProblem("store", f"scenario is for store {scenario.store!r}, the layout is {store.store_id!r}")],
            )
        self.store = store
        self.sc = scenario
        self.source = source
        self.grid = FloorGrid(store)
        self.problems: list[FieldProblem] = []
        self.index = {s.id: i for i, s in enumerate(scenario.shoppers)}
        self.standing: list[tuple[str, float, float, tuple[float, float]]] = []
        """(shopper id, from s, until s, where): the places at shelves taken so far, routed shopper by shopper."""

    # --- geometry ------------------------------------------------------------------------------
    def stand_point(self, plate_ids: list[str]) -> tuple[float, float]:
        return stand_point(self.store, self.grid, plate_ids)

    def hand_point(self, plate_id: str, sku: str | None) -> tuple[float, float, float]:
        """Where a hand taking or putting `sku` on this plate is: at the plate's front, at that product's
        part of the plate."""
        g = self.store.plate_geometry[plate_id]
        x, y, z = self.store.shelf_position_to_store(g.shelf_id, self.store.where_on_plate_m(plate_id, sku))
        return (x, y, z + 0.05)

    def spread_out(self, where: tuple[float, float], rng: np.random.Generator) -> tuple[float, float]:
        """People at one spot do not stand inside each other: up to 0.25 m from the nominal point."""
        for _ in range(5):
            r, a = 0.25 * math.sqrt(float(rng.random())), float(rng.uniform(0, 2 * math.pi))
            p = (where[0] + r * math.cos(a), where[1] + r * math.sin(a))
            if self.grid.free[self.grid.cell_of(p)]:
                return p
        return where

    def place_at_shelf(
        self, shopper: Shopper, stop: _Stop, pos: tuple[float, float], t_free: float, rng: np.random.Generator
    ) -> tuple[float, float]:
        """Where a shopper stands for a shelf action. Without body spacing: near the spot in front of the
        plates, whoever else is there. With it: the spot if nobody stands within `body_spacing_m` of it
        meanwhile, else beside it along the shelf (reaching sideways, up to 0.75 m) or a step behind (over
        someone's shoulder), the nearest such place that is free and reachable in time; squeezed in near
        the spot only when every one is taken."""
        assert stop.where is not None
        spacing = self.sc.body_spacing_m
        if spacing <= 0 or stop.plate_id is None:
            return self.spread_out(stop.where, rng)
        until = stop.at_s + stop.duration_s
        arrive_by = stop.at_s - REACH_LEAD_S
        gondola = self.store.gondolas_by_id[self.store.plate_geometry[stop.plate_id].gondola_id]
        out = np.asarray(gondola.aisle_normal, dtype=float)
        along = np.array([-out[1], out[0]])
        sign = 1.0 if rng.random() < 0.5 else -1.0
        offsets = [(0.0, 0.0)]
        for a in (0.25, 0.5, 0.75):
            offsets += [(sign * a, 0.0), (-sign * a, 0.0)]
        offsets += [(0.0, 0.35), (sign * 0.25, 0.35), (-sign * 0.25, 0.35)]
        here = np.asarray(stop.where, dtype=float)
        roomiest: tuple[float, tuple[float, float]] | None = None
        for da, do in offsets:
            # people stand 0.35-0.65 m from the shelf front (STAND_OFF_M 0.45 nominal), not on a grid
            p = here + (da + float(rng.normal(0.0, 0.05))) * along + (do + float(rng.uniform(-0.1, 0.2))) * out
            spot = (float(p[0]), float(p[1]))
            if not self.grid.free[self.grid.cell_of(spot)]:
                continue
            try:
                travel = path_length(self.grid.path(pos, spot)) / shopper.speed_m_s
            except UnreachableError:
                continue
            if t_free + travel > arrive_by:
                continue
            since = min(arrive_by, t_free + travel)  # the earliest they may stand there
            room = min(
                (
                    math.dist(spot, xy)
                    for who, t0, t1, xy in self.standing
                    if who != shopper.id and t1 > since and t0 < until
                ),
                default=math.inf,
            )
            if room >= spacing:
                return spot
            if roomiest is None or room > roomiest[0]:
                roomiest = (room, spot)
        # every place taken: they squeeze in where there is most room
        return roomiest[1] if roomiest is not None else self.spread_out(stop.where, rng)

    def action_plates(self, a: Action, path: str) -> list[str] | None:
        if a.plates is not None:
            unknown = [p for p in a.plates if p not in self.store.plate_geometry]
            if unknown:
                self.problems.append(FieldProblem(f"{path}.plates", f"unknown plate ids {unknown}"))
                return None
            shelves = {self.store.plate_geometry[p].shelf_id for p in a.plates}
            if len(shelves) > 1:
                self.problems.append(FieldProblem(f"{path}.plates", "one action touches one shelf"))
                return None
            return list(a.plates)
        assert a.sku is not None
        if a.sku not in self.store.products_by_sku:
            self.problems.append(FieldProblem(f"{path}.sku", f"unknown sku {a.sku!r} (not in the store)"))
            return None
        facings = self.store.facings_by_sku[a.sku]
        # the first facing of the product unless the action says otherwise
        return list(facings[0].plates)

    # --- routing -------------------------------------------------------------------------------
    def route(
        self, shopper: Shopper, si: int, stops: list[_Stop], entry: Gate, exit_gate: Gate
    ) -> PlannedShopper | None:
        rng = rng_for(self.sc.seed, "route", shopper.id)
        traj = Trajectory()
        pos = entry.midpoint
        traj.add(shopper.enter_s, pos)
        t_free = shopper.enter_s
        reaches: list[tuple[float, float, tuple[float, float, float]]] = []
        self.standing = [st for st in self.standing if st[0] != shopper.id]  # routed again (meets added)
        for stop in stops:
            target = self.place_at_shelf(shopper, stop, pos, t_free, rng) if stop.where is not None else pos
            try:
                waypoints = self.grid.path(pos, target)
            except UnreachableError as e:
                self.problems.append(FieldProblem(stop.path, str(e)))
                return None
            travel = path_length(waypoints) / shopper.speed_m_s
            arrive_by = stop.at_s - (REACH_LEAD_S if stop.reach is not None else 0.2)
            if t_free + travel > arrive_by + 1e-9:
                self.problems.append(
                    FieldProblem(
                        f"{stop.path}.at_s",
                        f"shopper {shopper.id!r} cannot be there by {stop.at_s:.1f} s: walking takes "
                        f"{travel:.1f} s and they are busy until {t_free:.1f} s",
                    )
                )
                return None
            # leave soon and browse at the destination, rather than wait where they were
            depart = t_free + min(arrive_by - t_free - travel, uniform(rng, (0.5, 3.0)))
            traj.walk(depart, waypoints, shopper.speed_m_s)
            pos = target
            end = stop.at_s + stop.duration_s
            traj.add(end, pos)
            if stop.reach is not None:
                reaches.append((stop.at_s, end, stop.reach))
                self.standing.append((shopper.id, depart + travel, end, target))
            t_free = end + uniform(rng, (0.3, 1.5))
        waypoints = self.grid.path(pos, exit_gate.midpoint)
        travel = path_length(waypoints) / shopper.speed_m_s
        if shopper.exit_s is not None:
            if t_free + travel > shopper.exit_s + 1e-9:
                self.problems.append(
                    FieldProblem(
                        f"shoppers[{si}].exit_s",
                        f"shopper {shopper.id!r} cannot reach the exit by {shopper.exit_s:.1f} s (needs "
                        f"{travel:.1f} s walking after {t_free:.1f} s)",
                    )
                )
                return None
            depart = shopper.exit_s - travel
        else:
            depart = t_free + uniform(rng, (1.0, 8.0))
        exit_s = traj.walk(depart, waypoints, shopper.speed_m_s)
        if exit_s > self.sc.duration_s:
            self.problems.append(
                FieldProblem(
                    f"shoppers[{si}]",
                    f"shopper {shopper.id!r} leaves at {exit_s:.1f} s, after the scenario ends "
                    f"({self.sc.duration_s:.0f} s)",
                )
            )
            return None
        leader = self.sc.leader_of(shopper)
        return PlannedShopper(shopper, f"visit-{leader.id}", traj, shopper.enter_s, exit_s, exit_gate.id, reaches)

    def contact_timing(self, shopper: Shopper, ai: int, a: Action) -> tuple[float, float, float, list[float]]:
        """(contact time, hand-out time, grip seconds, unit event times) for one shelf action."""
        lc = self.sc.noise.load_cell
        rng = rng_for(self.sc.seed, "contact", shopper.id, ai)
        contact = a.at_s + float(rng.uniform(0.2, 0.4))
        grip = uniform(rng, lc.grip_s)
        gaps = [float(rng.uniform(0.25, 0.45)) for _ in range(a.quantity)]
        if a.kind == "pick":
            first = contact + grip + a.hold_s
            times = [first + sum(gaps[1 : k + 1]) for k in range(a.quantity)]
            out = times[-1] + float(rng.uniform(0.25, 0.6))
        elif a.kind == "put_back":
            times = [contact + sum(gaps[1 : k + 1]) for k in range(a.quantity)]
            out = times[-1] + grip + float(rng.uniform(0.2, 0.5))
        else:  # touch
            times = []
            out = contact + float(rng.uniform(0.3, 1.0)) + a.hold_s + float(rng.uniform(0.2, 0.4))
        return contact, out, grip, times

    # --- the whole plan ------------------------------------------------------------------------
    def build(self) -> Plan:
        sc, store = self.sc, self.store
        entries, exits = store.gates_of_kind("entry"), store.gates_of_kind("exit")
        plates_of: dict[tuple[int, int], list[str]] = {}
        timing: dict[tuple[int, int], tuple[float, float, float, list[float]]] = {}
        own_stops: dict[int, list[_Stop]] = {}
        for si, s in enumerate(sc.shoppers):
            stops = []
            for ai, a in enumerate(s.actions):
                path = f"shoppers[{si}].actions[{ai}]"
                if a.kind == "hand_off":
                    stops.append(_Stop(a.at_s, None, ai, 1.5, None, path))
                    continue
                plates = self.action_plates(a, path)
                if plates is None:
                    continue
                plates_of[(si, ai)] = plates
                timing[(si, ai)] = t = self.contact_timing(s, ai, a)
                stops.append(
                    _Stop(
                        a.at_s,
                        self.stand_point(plates),
                        ai,
                        t[1] - a.at_s,
                        self.hand_point(plates[0], a.sku),
                        path,
                        plates[0],
                    )
                )
            own_stops[si] = stops
            if s.party_of is not None:
                leader = sc.shoppers[self.index[s.party_of]]
                if not (leader.enter_s <= s.enter_s <= leader.enter_s + 30):
                    self.problems.append(
                        FieldProblem(
                            f"shoppers[{si}].enter_s",
                            f"a party member enters within 30 s after {leader.id!r} ({leader.enter_s:.1f} s)",
                        )
                    )
        if self.problems:
            raise ConfigError(self.source, self.problems)

        def gates_for(s: Shopper) -> tuple[Gate, Gate]:
            leader = sc.leader_of(s)
            k = self.index[leader.id]
            return entries[k % len(entries)], exits[k % len(exits)]

        # Pass 1: own actions. Pass 2: receivers of hand-offs walk to meet the giver.
        first = {si: self.route(s, si, own_stops[si], *gates_for(s)) for si, s in enumerate(sc.shoppers)}
        if self.problems:
            raise ConfigError(self.source, self.problems)
        meets: dict[int, list[_Stop]] = defaultdict(list)
        for si, s in enumerate(sc.shoppers):
            giver = first[si]
            assert giver is not None
            for ai, a in enumerate(s.actions):
                if a.kind == "hand_off" and a.to is not None:
                    gx, gy = giver.trajectory.at(a.at_s)
                    ri = self.index[a.to]
                    c = self.grid.nearest_free((gx + 0.5, gy))
                    meets[ri].append(
                        _Stop(a.at_s, self.grid.center_of(c), None, 1.5, None, f"shoppers[{si}].actions[{ai}]")
                    )
        planned: list[PlannedShopper] = []
        for si, s in enumerate(sc.shoppers):
            if meets[si]:
                stops = sorted(own_stops[si] + meets[si], key=lambda st: st.at_s)
                p = self.route(s, si, stops, *gates_for(s))
            else:
                p = first[si]
            if p is not None:
                planned.append(p)
        if self.problems:
            raise ConfigError(self.source, self.problems)

        visits = self.plan_visits(planned, entries)
        actions, contacts, stock, receipts = self.apply_actions(plates_of, timing, visits)
        if self.problems:
            raise ConfigError(self.source, self.problems)
        self.aim_hands(planned, contacts)
        return Plan(store, sc, planned, visits, actions, contacts, stock, receipts)

    def aim_hands(self, planned: list[PlannedShopper], contacts: list[ShelfContact]) -> None:
        """A hand goes where it takes or puts the item: which plate of a facing a unit comes from is
        only known once the actions are applied, so the reaches planned at the facing's first plate
        are aimed at the contact's first plate now (the curtain reports the same plate)."""
        by_shopper: dict[str, list[ShelfContact]] = defaultdict(list)
        for c in contacts:
            by_shopper[c.shopper_id].append(c)
        for p in planned:
            own = sorted(by_shopper[p.shopper.id], key=lambda c: c.hand_in)
            if len(own) != len(p.reaches):
                continue  # cannot happen for a plan without problems; leave the reaches as planned
            p.reaches = [
                (h0, h1, self.hand_point(c.plate_ids[0], c.sku)) for (h0, h1, _), c in zip(p.reaches, own, strict=True)
            ]

    def plan_visits(self, planned: list[PlannedShopper], entries: list[Gate]) -> list[PlannedVisit]:
        visits: dict[str, PlannedVisit] = {}
        for p in planned:
            s = p.shopper
            leader = self.sc.leader_of(s)
            if p.visit_id not in visits:
                k = self.index[leader.id]
                rng = rng_for(self.sc.seed, "scan", leader.id)
                assert leader.account is not None
                visits[p.visit_id] = PlannedVisit(
                    visit_id=p.visit_id,
                    account_id=leader.account,
                    token=f"sim-{self.sc.seed}-{leader.id}",
                    entry_gate_id=entries[k % len(entries)].id,
                    scan_s=max(0.0, leader.enter_s - float(rng.uniform(1.0, 2.0))),
                    shopper_ids=[],
                )
            v = visits[p.visit_id]
            v.shopper_ids.append(s.id)
            v.exit_s = max(v.exit_s, p.exit_s)
        # A turnstile admits one party per scan: the next code is read only after the previous party
        # is through, so people cross a gate in the order their codes were scanned.
        enter_of = {p.shopper.id: p.enter_s for p in planned}
        last_cross: dict[str, float] = {}
        for v in sorted(visits.values(), key=lambda v: min(enter_of[s] for s in v.shopper_ids)):
            first = min(enter_of[s] for s in v.shopper_ids)
            after = last_cross.get(v.entry_gate_id)
            if after is not None:
                v.scan_s = min(max(v.scan_s, after + 0.2), first - 0.05)
            last_cross[v.entry_gate_id] = max(enter_of[s] for s in v.shopper_ids)
        return list(visits.values())

    def initial_stock(self) -> dict[str, list[Unit]]:
        """Full stock from the planogram; each unit's weight drawn from its product's spread."""
        lc = self.sc.noise.load_cell
        stock: dict[str, list[Unit]] = {pid: [] for pid in self.store.plate_geometry}
        uid = 0
        for fi, f in enumerate(self.store.planogram):
            product = self.store.products_by_sku[f.sku]
            rng = rng_for(self.sc.seed, "stock", fi)
            # neighbours by position along the shelf, whatever order the planogram lists them in
            plates = sorted(f.plates, key=lambda pid: self.store.plate_geometry[pid].index_on_shelf)
            for pid, units in f.plates.items():
                k = plates.index(pid)
                for _ in range(units):
                    w = float(rng.normal(product.unit_weight_g.mean, product.unit_weight_g.std))
                    w = max(w, 0.5 * product.unit_weight_g.mean)
                    split = {pid: 1.0}
                    if len(plates) > 1 and rng.random() < lc.straddle_prob:
                        other = plates[k + 1] if k + 1 < len(plates) else plates[k - 1]
                        frac = float(rng.uniform(0.5, 0.9))
                        split = {pid: frac, other: 1.0 - frac}
                    stock[pid].append(Unit(uid, f.sku, w, split))
                    uid += 1
        return stock

    def apply_actions(
        self,
        plates_of: dict[tuple[int, int], list[str]],
        timing: dict[tuple[int, int], tuple[float, float, float, list[float]]],
        visits: list[PlannedVisit],
    ) -> tuple[list[PlannedAction], list[ShelfContact], dict[str, list[Unit]], dict[str, dict[str, int]]]:
        """Walk every action in time order against the inventory and what each shopper carries."""
        sc, store = self.sc, self.store
        lc = sc.noise.load_cell
        stock = self.initial_stock()
        shelf_stock = {pid: list(units) for pid, units in stock.items()}
        carried: dict[str, list[Unit]] = defaultdict(list)
        visit_of = {sid: v.visit_id for v in visits for sid in v.shopper_ids}
        order = sorted(
            ((a.at_s, s.id, si, ai) for si, s in enumerate(sc.shoppers) for ai, a in enumerate(s.actions)),
        )
        actions: list[PlannedAction] = []
        contacts: list[ShelfContact] = []
        for _, sid, si, ai in order:
            s = sc.shoppers[si]
            a = s.actions[ai]
            path = f"shoppers[{si}].actions[{ai}]"
            aid = f"a{len(actions) + 1:05d}"
            rng = rng_for(sc.seed, "apply", sid, ai)
            if a.kind == "hand_off":
                assert a.to is not None
                assert a.sku is not None
                units = [u for u in carried[sid] if u.sku == a.sku][: a.quantity]
                if len(units) < a.quantity:
                    self.problems.append(
                        FieldProblem(path, f"{sid!r} hands over {a.quantity} x {a.sku} but carries {len(units)}")
                    )
                    continue
                for u in units:
                    carried[sid].remove(u)
                    carried[a.to].append(u)
                actions.append(
                    PlannedAction(
                        aid,
                        "hand_off",
                        sid,
                        visit_of[sid],
                        a.at_s,
                        a.at_s + 1.5,
                        a.sku,
                        a.quantity,
                        unit_weights_g=[round(u.weight_g, 3) for u in units],
                        to_shopper_id=a.to,
                        to_visit_id=visit_of[a.to],
                    )
                )
                continue
            plates = plates_of[(si, ai)]
            contact, out, grip, times = timing[(si, ai)]
            shelf_id = store.plate_geometry[plates[0]].shelf_id
            c = ShelfContact(aid, sid, shelf_id, plates, a.at_s, out, sku=a.sku)
            deltas: dict[str, float] = defaultdict(float)
            moved: list[Unit] = []
            if a.kind == "pick":
                assert a.sku is not None
                for k in range(a.quantity):
                    options = [p for p in plates if any(u.sku == a.sku for u in shelf_stock[p])]
                    if not options:
                        self.problems.append(FieldProblem(path, f"no {a.sku} left on {plates} at {a.at_s:.1f} s"))
                        break
                    counts = np.array([sum(u.sku == a.sku for u in shelf_stock[p]) for p in options], float)
                    plate = options[int(rng.choice(len(options), p=counts / counts.sum()))]
                    candidates = [u for u in shelf_stock[plate] if u.sku == a.sku]
                    unit = candidates[int(rng.integers(len(candidates)))]
                    for pid in unit.split:
                        if unit in shelf_stock[pid]:
                            shelf_stock[pid].remove(unit)
                    press_start = contact if k == 0 else times[k] - 0.15
                    # during a long hold the grip lets go of the shelf; the item rests there in hand
                    press_end = contact + grip if (k == 0 and a.hold_s > 0) else times[k]
                    if k == 0:
                        # the hand goes in where this unit lies (the curtain and the camera see it there)
                        c.plate_ids = [plate] + [p for p in plates if p != plate]
                    c.pulses.append(Pulse(plate, press_start, press_end, uniform(rng, lc.press_g)))
                    if k == 0 and a.hold_s > 0:
                        c.pulses.append(
                            Pulse(plate, contact + grip, times[0], -unit.weight_g * float(rng.uniform(0.3, 0.7)))
                        )
                    for pid, frac in unit.split.items():
                        c.steps.append(Step(pid, times[k], -unit.weight_g * frac))
                        deltas[pid] -= unit.weight_g * frac
                    moved.append(unit)
                    carried[sid].append(unit)
            elif a.kind == "put_back":
                assert a.sku is not None
                units = [u for u in carried[sid] if u.sku == a.sku][-a.quantity :]
                if len(units) < a.quantity:
                    self.problems.append(
                        FieldProblem(path, f"{sid!r} puts back {a.quantity} x {a.sku} but carries {len(units)}")
                    )
                    continue
                target = plates[0] if a.plates is not None else self.return_plate(a.sku, plates, shelf_stock)
                for k, unit in enumerate(units):
                    carried[sid].remove(unit)
                    unit.split = {target: 1.0}
                    shelf_stock[target].append(unit)
                    c.steps.append(Step(target, times[k], unit.weight_g))
                    c.pulses.append(Pulse(target, times[k], times[k] + grip, uniform(rng, lc.press_g)))
                    deltas[target] += unit.weight_g
                    moved.append(unit)
                c.plate_ids = [target]
            else:  # touch
                c.pulses.append(Pulse(plates[0], contact, out - 0.2, uniform(rng, lc.press_g)))
            facing_plates = {p for f in store.facings_by_sku.get(a.sku or "", []) for p in f.plates}
            actions.append(
                PlannedAction(
                    aid,
                    a.kind,
                    sid,
                    visit_of[sid],
                    a.at_s,
                    out,
                    a.sku,
                    len(moved) if a.kind != "touch" else 0,
                    shelf_id,
                    {p: round(d, 3) for p, d in deltas.items()},
                    [round(u.weight_g, 3) for u in moved],
                    misplaced=a.kind == "put_back" and not set(c.plate_ids) <= facing_plates,
                )
            )
            contacts.append(c)
        receipts: dict[str, dict[str, int]] = {v.visit_id: {} for v in visits}
        for sid, units in carried.items():
            lines = receipts[visit_of[sid]]
            for u in units:
                lines[u.sku] = lines.get(u.sku, 0) + 1
        return actions, contacts, stock, receipts

    @staticmethod
    def return_plate(sku: str, plates: list[str], shelf_stock: dict[str, list[Unit]]) -> str:
        """A put-back to the right place goes where the product has the fewest units (the gap)."""
        counts = [sum(u.sku == sku for u in shelf_stock[p]) for p in plates]
        return plates[int(np.argmin(counts))]


def build_plan(store: StoreLayout, scenario: Scenario, source: str | Path = "<scenario>") -> Plan:
    """Raises ConfigError naming the scenario field when the script cannot happen as written."""
    return _Planner(store, scenario, source).build()


def track_span(plan: Plan) -> float:
    return max((p.exit_s for p in plan.shoppers), default=0.0)
