"""Sensor physics: what each device would report, given the plan.

Parameters come from the scenario's `noise:` section; defaults and their sources are documented in
`store_edge/sim/scenario.py` and `docs/simulator.md`.
"""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from store_edge.layout.model import Shelf
from store_edge.sim.plan import Plan, Pulse, Step, rng_for, uniform
from store_edge.sim.scenario import LoadCellNoise

FloatArray = NDArray[np.float64]
RAMP_S = 0.06
"""How long a hand takes to build up or release its force on a plate."""
LIFT_S = 0.1
"""How long an item takes to leave (or land on) a plate; the change is complete at the step's time."""


@dataclass(frozen=True)
class ShelfSignal:
    """Every sample of one shelf: `values[i, j]` is plate j at true time `t_s[i]`."""

    shelf_id: str
    plate_ids: list[str]
    t_s: FloatArray
    values: FloatArray


def _add_ring(
    x: FloatArray, t: FloatArray, rate: float, t0: float, amp: float, hz: float, settle: float, phase: float
) -> None:
    i0 = math.ceil(t0 * rate)
    i1 = min(len(t), math.ceil((t0 + settle) * rate) + 1)
    if i0 >= i1:
        return
    dt = t[i0:i1] - t0
    tau = settle / 4.0  # e^-4: under 2% of the kick is left when the plate has settled
    x[i0:i1] += amp * np.exp(-dt / tau) * np.sin(2 * np.pi * hz * dt + phase)


def _add_pulse(x: FloatArray, t: FloatArray, rate: float, p: Pulse, rng: np.random.Generator) -> None:
    """The force builds up over RAMP_S from t0 and is gone at t1."""
    i0 = max(0, math.ceil(p.t0 * rate))
    i1 = min(len(t), math.ceil(p.t1 * rate))
    if i0 >= i1:
        return
    tt = t[i0:i1]
    envelope = np.minimum(np.clip((tt - p.t0) / RAMP_S, 0, 1), np.clip((p.t1 - tt) / RAMP_S, 0, 1))
    # a hand is not a weight: its force wobbles (low-passed tremor, ~8% of the force)
    tremor = rng.normal(0, 0.08 * abs(p.force_g), len(tt))
    tremor = np.convolve(tremor, np.ones(5) / 5, mode="same")
    x[i0:i1] += envelope * (p.force_g + tremor)


def shelf_signal(plan: Plan, shelf: Shelf, duration_s: float) -> ShelfSignal:
    """Raw readings of every plate of a shelf over the whole scenario, in grams."""
    lc: LoadCellNoise = plan.scenario.noise.load_cell
    seed = plan.scenario.seed
    rate = shelf.scale.rate_hz
    n = int(duration_s * rate)
    t = np.arange(n) / rate
    plate_ids = [p.id for p in shelf.plates]
    load0 = plan.plate_initial_load_g()
    steps: dict[str, list[Step]] = defaultdict(list)
    pulses: dict[str, list[Pulse]] = defaultdict(list)
    for c in plan.contacts:
        for s in c.steps:
            steps[s.plate_id].append(s)
        for p in c.pulses:
            pulses[p.plate_id].append(p)
    values = np.empty((n, len(plate_ids)))
    for j, pid in enumerate(plate_ids):
        rng = rng_for(seed, "plate", pid)
        tare = uniform(rng, lc.tare_g)
        slope = float(rng.normal(0, lc.drift_g_per_hour_std))
        x = tare + load0[pid] + slope * t / 3600.0
        if lc.drift_walk_g_per_sqrt_s > 0 and n:
            x += np.cumsum(rng.normal(0, lc.drift_walk_g_per_sqrt_s / math.sqrt(rate), n))
        for s in steps.get(pid, []):
            # an item leaves or lands over about a tenth of a second, not in one sample
            i = max(0, math.ceil((s.t - LIFT_S) * rate))
            x[i:] += s.delta_g * np.clip((t[i:] - (s.t - LIFT_S)) / LIFT_S, 0.0, 1.0)
        # the press-lift-settle transient: ringing after each change, the pressing hand around it
        for s in steps.get(pid, []):
            amp = uniform(rng, lc.ring_fraction) * abs(s.delta_g)
            _add_ring(
                x,
                t,
                rate,
                s.t,
                amp,
                uniform(rng, lc.ring_hz),
                uniform(rng, lc.settle_s),
                float(rng.uniform(0, 2 * np.pi)),
            )
        for p in pulses.get(pid, []):
            _add_pulse(x, t, rate, p, rng)
            _add_ring(
                x,
                t,
                rate,
                p.t1,
                uniform(rng, lc.ring_fraction) * abs(p.force_g),
                uniform(rng, lc.ring_hz),
                uniform(rng, lc.settle_s),
                float(rng.uniform(0, 2 * np.pi)),
            )
        x += rng.normal(0, lc.noise_std_g, n)
        values[:, j] = x
    _add_vibration(plan, shelf.id, t, values)
    if lc.quantum_g > 0:
        values = np.round(values / lc.quantum_g) * lc.quantum_g
    return ShelfSignal(shelf.id, plate_ids, t, values)


def vibration_bursts(plan: Plan, gondola_id: str, duration_s: float) -> list[tuple[float, float, float, float]]:
    """(start, duration, frequency, amplitude) of the bursts that shake one gondola."""
    lc = plan.scenario.noise.load_cell
    rng = rng_for(plan.scenario.seed, "vibration", gondola_id)
    count = int(rng.poisson(lc.vibration_per_gondola_per_hour * duration_s / 3600.0))
    bursts = []
    for _ in range(count):
        bursts.append(
            (
                float(rng.uniform(0, duration_s)),
                uniform(rng, lc.vibration_s),
                uniform(rng, lc.vibration_hz),
                lc.vibration_g * float(rng.uniform(0.3, 1.5)),
            )
        )
    return sorted(bursts)


def _add_vibration(plan: Plan, shelf_id: str, t: FloatArray, values: FloatArray) -> None:
    gondola = plan.store.gondola_of_shelf[shelf_id]
    rate = 1.0 / (t[1] - t[0]) if len(t) > 1 else 1.0
    rng = rng_for(plan.scenario.seed, "vibration-shelf", shelf_id)
    for start, dur, hz, amp in vibration_bursts(plan, gondola.id, plan.scenario.duration_s):
        i0, i1 = int(start * rate), min(len(t), int((start + dur) * rate) + 1)
        if i0 >= i1:
            continue
        dt = t[i0:i1] - start
        envelope = np.sin(np.pi * dt / dur) ** 2
        for j in range(values.shape[1]):
            scale = float(rng.uniform(0.5, 1.5))
            values[i0:i1, j] += amp * scale * envelope * np.sin(2 * np.pi * hz * dt + rng.uniform(0, 2 * np.pi))


@dataclass(frozen=True)
class CurtainReport:
    t_s: float
    event: str  # enter | leave
    x_m: float


def curtain_reports(plan: Plan, shelf: Shelf, duration_s: float) -> list[CurtainReport]:
    """What a shelf's light curtain reports: real hands (some missed), plus false triggers."""
    if shelf.curtain is None:
        return []
    cn = plan.scenario.noise.curtain
    rng = rng_for(plan.scenario.seed, "curtain", shelf.id)
    res = shelf.curtain.resolution_m
    length = plan.store.gondola_of_shelf[shelf.id].length_m
    out: list[CurtainReport] = []

    def snap(x: float) -> float:
        return round(min(max(x, 0.0), length) / res) * res

    for c in plan.contacts:
        if c.shelf_id != shelf.id:
            continue
        x = plan.store.where_on_plate_m(c.plate_ids[0], c.sku) + float(rng.normal(0, cn.position_std_m))
        if rng.random() < cn.miss_prob:
            continue
        out.append(CurtainReport(c.hand_in, "enter", snap(x)))
        out.append(CurtainReport(c.hand_out, "leave", snap(x)))
    count = int(rng.poisson(cn.false_triggers_per_shelf_per_hour * duration_s / 3600.0))
    for _ in range(count):
        t0 = float(rng.uniform(0, duration_s))
        x = snap(float(rng.uniform(0, length)))
        out.append(CurtainReport(t0, "enter", x))
        out.append(CurtainReport(t0 + float(rng.uniform(0.05, 0.3)), "leave", x))
    return sorted(out, key=lambda r: (r.t_s, r.event != "leave"))


@dataclass(frozen=True)
class TrackPoint:
    shopper_id: str
    x: float
    y: float
    true_x: float
    true_y: float
    track_id: str | None
    hand: tuple[float, float, float] | None
    appearance: tuple[float, ...] | None = None


OUTFITS = 6
"""Shoppers dress alike in a few common ways: lookalikes make re-identification imperfect."""


def appearance_vectors(plan: Plan) -> FloatArray:
    """Each shopper's true look as a unit vector: part common outfit, part their own."""
    tn = plan.scenario.noise.tracks
    dim = tn.appearance_dim
    seed = plan.scenario.seed
    out = np.zeros((len(plan.shoppers), dim))
    if dim == 0:
        return out
    outfits = rng_for(seed, "outfits").normal(size=(OUTFITS, dim))
    outfits /= np.linalg.norm(outfits, axis=1, keepdims=True)
    for k, p in enumerate(plan.shoppers):
        rng = rng_for(seed, "appearance", p.shopper.id)
        own = rng.normal(size=dim)
        share = tn.lookalike_share
        v = share * outfits[int(rng.integers(OUTFITS))] + (1 - share) * own / np.linalg.norm(own)
        out[k] = v / np.linalg.norm(v)
    return out


def track_frames(plan: Plan, duration_s: float) -> list[tuple[float, list[TrackPoint]]]:
    """Per tick of the tracker: every shopper on the floor, with the tracker's noisy view of them:
    position noise, dropouts, fragments (a new id after a dropout) and id switches when close."""
    tn = plan.scenario.noise.tracks
    seed = plan.scenario.seed
    ticks = np.arange(0.0, duration_s, 1.0 / tn.rate_hz)
    shoppers = plan.shoppers
    pos = np.stack([p.trajectory.at(ticks) for p in shoppers]) if shoppers else np.zeros((0, len(ticks), 2))
    on_floor = np.array([(ticks >= p.enter_s) & (ticks <= p.exit_s) for p in shoppers]).reshape(
        len(shoppers), len(ticks)
    )
    dropped = np.zeros_like(on_floor)
    dropout_ends: list[set[int]] = []
    for k, p in enumerate(shoppers):
        rng = rng_for(seed, "dropout", p.shopper.id)
        span = p.exit_s - p.enter_s
        ends: set[int] = set()
        for _ in range(int(rng.poisson(tn.dropouts_per_minute * span / 60.0))):
            t0 = p.enter_s + float(rng.uniform(1.0, max(1.0, span - 1.0)))
            t1 = t0 + uniform(rng, tn.dropout_s)
            mask = (ticks >= t0) & (ticks < t1)
            dropped[k] |= mask
            after = np.nonzero(ticks >= t1)[0]
            if len(after) and rng.random() < tn.new_id_after_dropout_prob:
                ends.add(int(after[0]))
        dropout_ends.append(ends)
    hand_seen = [
        [rng_for(seed, "hand", p.shopper.id, i).random() < tn.hand_visible_prob for i in range(len(p.reaches))]
        for p in shoppers
    ]
    looks = appearance_vectors(plan)
    look_rng = rng_for(seed, "appearance-noise")
    rng = rng_for(seed, "tracks")
    next_id = 1
    current: dict[int, str] = {}
    close: set[tuple[int, int]] = set()
    frames: list[tuple[float, list[TrackPoint]]] = []
    for i, t in enumerate(ticks):
        present = [k for k in range(len(shoppers)) if on_floor[k, i]]
        for k in present:
            if k not in current or i in dropout_ends[k]:
                current[k] = f"t{next_id}"
                next_id += 1
        for k in list(current):
            if not on_floor[k, i] and t > shoppers[k].exit_s:
                del current[k]
        visible = [k for k in present if not dropped[k, i]]
        for a_i, a in enumerate(visible):
            for b in visible[a_i + 1 :]:
                d = float(np.hypot(*(pos[a, i] - pos[b, i])))
                if d < tn.switch_distance_m and (a, b) not in close:
                    close.add((a, b))
                    if rng.random() < tn.switch_prob:
                        current[a], current[b] = current[b], current[a]
                elif d > tn.switch_distance_m * 1.5:
                    close.discard((a, b))
        points = []
        for k in present:
            p = shoppers[k]
            tx, ty = float(pos[k, i, 0]), float(pos[k, i, 1])
            hand = None
            for r, (h0, h1, where) in enumerate(p.reaches):
                if h0 <= t <= h1 and hand_seen[k][r]:
                    hx, hy, hz = (float(v + rng.normal(0, tn.hand_std_m)) for v in where)
                    hand = (hx, hy, hz)
            nx, ny = rng.normal(0, tn.position_std_m, 2)
            appearance = None
            if tn.appearance_dim and not dropped[k, i]:
                # the embedding comes from this person's pixels, whichever id the tracker gave them; a
                # neighbour closer than the switch distance bleeds into the crop
                v = looks[k] + look_rng.normal(0, tn.appearance_noise, tn.appearance_dim)
                for j in visible:
                    if j != k and float(np.hypot(*(pos[k, i] - pos[j, i]))) < tn.switch_distance_m:
                        v = v + 0.5 * looks[j]
                appearance = tuple(float(c) for c in v / np.linalg.norm(v))
            points.append(
                TrackPoint(
                    p.shopper.id,
                    tx + float(nx),
                    ty + float(ny),
                    tx,
                    ty,
                    None if dropped[k, i] else current[k],
                    hand if not dropped[k, i] else None,
                    appearance,
                )
            )
        frames.append((float(t), points))
    return frames


def gate_counts(plan: Plan, gate_id: str, crossings: list[float]) -> list[tuple[float, int]]:
    """The infrared person counter: (time, running count) per reported crossing; it misses a few
    people and counts a few twice."""
    gn = plan.scenario.noise.gates
    rng = rng_for(plan.scenario.seed, "counter", gate_id)
    out: list[tuple[float, int]] = []
    count = 0
    for t in sorted(crossings):
        r = rng.random()
        if r < gn.counter_miss_prob:
            continue
        count += 1
        out.append((t, count))
        if r > 1 - gn.counter_double_prob:
            count += 1
            out.append((t + 0.2, count))
    return out
