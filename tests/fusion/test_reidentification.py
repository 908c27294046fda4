"""The shopper registry undoing id swaps from appearance: two people, and a crowd of three."""

from __future__ import annotations

import math

import numpy as np

from store_edge.fusion.shoppers import NS, ShopperRegistry, TrackObservation, samples_between
from store_edge.layout import StoreLayout

TICK_NS = NS // 10
ENTRY = (1.9, 1.4)
CROWD = (4.0, 4.5)


def _looks(n: int, seed: int = 7) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        v = rng.normal(size=16)
        out.append(v / np.linalg.norm(v))
    return out


def _embedding(look: np.ndarray, rng: np.random.Generator) -> tuple[float, ...]:
    v = look + rng.normal(0, 0.25, len(look))
    return tuple(float(c) for c in v / np.linalg.norm(v))


def _walk(start: tuple[float, float], end: tuple[float, float], f: float) -> tuple[float, float]:
    return (start[0] + (end[0] - start[0]) * f, start[1] + (end[1] - start[1]) * f)


def _run(store: StoreLayout, rotation: list[int]) -> tuple[ShopperRegistry, int]:
    """Three visits enter one after another and walk apart; they meet in a crowd around CROWD at
    30-36 s, where the tracker hands person k's id to person rotation[k]; then they walk apart again.
    Returns the registry and when the ids changed hands."""
    reg = ShopperRegistry(store)
    rng = np.random.default_rng(3)
    looks = _looks(3)
    spots = [(2.5, 3.0), (5.0, 3.0), (4.0, 6.0)]  # where each waits alone before and after the crowd
    track_of = [f"t{k + 1}" for k in range(3)]
    handover_ns = 33 * NS
    for k in range(3):
        reg.open_visit(k * 4 * NS, f"visit-{k}", f"acct-{k}", 1)
    for tick in range(60 * 10):
        t = tick * TICK_NS
        if t == handover_ns:
            new = list(track_of)
            for k in range(3):
                new[rotation[k]] = track_of[k]
            track_of = new
        obs = []
        for k in range(3):
            t_in = k * 4 * NS + NS
            if t < t_in:
                continue
            s = (t - t_in) / NS
            if t < 28 * NS:
                xy = _walk(ENTRY, spots[k], min(1.0, s / 4))
            elif t < 38 * NS:
                # in the crowd: everyone within half a metre of each other
                angle = 2 * math.pi * k / 3
                xy = (CROWD[0] + 0.25 * math.cos(angle), CROWD[1] + 0.25 * math.sin(angle))
            else:
                xy = _walk(CROWD, spots[(k + 1) % 3], min(1.0, (t - 38 * NS) / (3 * NS)))
            obs.append(TrackObservation(track_of[k], xy[0], xy[1], None, _embedding(looks[k], rng)))
        reg.observe(t, obs)
    return reg, handover_ns


def test_a_crowd_rotating_three_ids_is_undone_for_each_track(demo_store: StoreLayout) -> None:
    # person 0's id goes to person 1, 1's to 2, 2's to 0: no pairwise swap explains it
    reg, handover_ns = _run(demo_store, rotation=[1, 2, 0])
    # after the crowd, track t1 (person 0's id) follows person 1, and so on
    after = 50 * NS
    assert reg.visit_of_track("t1", after) == "visit-1"
    assert reg.visit_of_track("t2", after) == "visit-2"
    assert reg.visit_of_track("t3", after) == "visit-0"
    # before the crowd each id still belongs to the person it started with
    before = 20 * NS
    assert [reg.visit_of_track(t, before) for t in ("t1", "t2", "t3")] == ["visit-0", "visit-1", "visit-2"]
    # in the crowd (28-38 s) the ids change hands at 33 s: the embeddings place the moment, so an
    # event in the crowd before it stays with the person who made it
    assert [reg.visit_of_track(t, 32 * NS) for t in ("t1", "t2", "t3")] == ["visit-0", "visit-1", "visit-2"]
    assert [reg.visit_of_track(t, 34 * NS) for t in ("t1", "t2", "t3")] == ["visit-1", "visit-2", "visit-0"]
    assert reg.corrections, "the engine is told to revisit events since the hand-over"
    assert abs(min(c[0] for c in reg.corrections) - handover_ns) <= NS


def test_the_engine_asks_again_only_about_events_the_moved_tracks_stood_near(demo_store: StoreLayout) -> None:
    reg, _ = _run(demo_store, rotation=[1, 2, 0])
    # every track whose person was moved is named, not only two of them
    assert {track for _, tracks in reg.corrections for track in tracks} == {"t1", "t2", "t3"}
    window = [t for t, *_ in samples_between(reg.tracks["t1"].samples, 10 * NS, 11 * NS)]
    assert window == list(range(10 * NS, 11 * NS + 1, TICK_NS))  # both ends included
    # at 10 s person 0 (t1) stands about (2.5, 3.0): 1.7 m from gondola G3's front, 4.1 m from G5's
    assert reg.had_a_say(["t1"], ["G3-S1-P01"], 10 * NS, 11 * NS)
    assert not reg.had_a_say(["t1"], ["G5-S4-P01"], 10 * NS, 11 * NS)
    # what had_a_say stands for: whoever t1 belongs to, the odds of an event at G5 do not move
    far = reg.associate({"G5-S4-P01": -50.0}, 10 * NS, 11 * NS)
    assert {c.visit_id: round(c.probability, 6) for c in far if c.visit_id == "visit-0"} in ({}, {"visit-0": 0.0})


def test_a_crowd_that_keeps_its_ids_is_left_alone(demo_store: StoreLayout) -> None:
    reg, _ = _run(demo_store, rotation=[0, 1, 2])
    assert [reg.visit_of_track(t, 50 * NS) for t in ("t1", "t2", "t3")] == ["visit-0", "visit-1", "visit-2"]
    assert not reg.corrections


def test_fragments_continuing_the_wrong_people_are_moved_by_their_looks(demo_store: StoreLayout) -> None:
    # two shoppers vanish (an occlusion) a metre apart and cross unseen; their new tracks appear each
    # nearer where the other vanished, so "the nearest lost person" binds them crosswise
    reg = ShopperRegistry(demo_store)
    rng = np.random.default_rng(5)
    looks = _looks(2, seed=11)
    for k in range(2):
        reg.open_visit(k * 4 * NS, f"visit-{k}", f"acct-{k}", 1)
    vanish = [(3.0, 4.0), (4.0, 4.0)]
    reappear = {"t3": (0, (4.2, 4.0), (5.5, 4.5)), "t4": (1, (2.8, 4.0), (1.5, 4.5))}
    for tick in range(45 * 10):
        t = tick * TICK_NS
        obs = []
        if t < 20 * NS:
            for k in range(2):
                t_in = k * 4 * NS + NS
                if t >= t_in:
                    xy = _walk(ENTRY, vanish[k], min(1.0, (t - t_in) / (4 * NS)))
                    obs.append(TrackObservation(f"t{k + 1}", xy[0], xy[1], None, _embedding(looks[k], rng)))
        elif t >= 25 * NS:
            for track_id, (k, start, end) in reappear.items():
                xy = _walk(start, end, min(1.0, (t - 25 * NS) / (3 * NS)))
                obs.append(TrackObservation(track_id, xy[0], xy[1], None, _embedding(looks[k], rng)))
        reg.observe(t, obs)
        if t == 25 * NS:
            # the nearest-lost rule got both wrong
            assert (reg.visit_of_track("t3"), reg.visit_of_track("t4")) == ("visit-1", "visit-0")
    # their looks set both right, from the moment the tracks appeared
    assert reg.visit_of_track("t3", 25 * NS) == "visit-0"
    assert reg.visit_of_track("t4", 25 * NS) == "visit-1"
    assert reg.corrections
    assert min(c[0] for c in reg.corrections) == 25 * NS


def test_a_swap_seen_first_on_one_lookalike_waits_for_the_other_track(demo_store: StoreLayout) -> None:
    # four visits crowd at CROWD; at 33 s the tracker swaps the ids of persons 0 and 1, who dress
    # alike. Person 0 (now on t2) walks off at 36 s; person 1 (now on t1) stays in the crowd with the
    # other two until 50 s. t2 alone fits person 0 better than its own person 1, but not by enough to
    # move ids while three tracks of the crowd are unseen: it must wait for t1 rather than be settled
    reg = ShopperRegistry(demo_store)
    rng = np.random.default_rng(9)
    looks = _looks(4, seed=21)
    alike = 0.45 * looks[0] + 0.9 * looks[1]
    looks[1] = alike / np.linalg.norm(alike)
    spots = [(2.5, 3.0), (5.0, 3.0), (4.0, 6.0), (6.0, 6.0)]
    track_of = [f"t{k + 1}" for k in range(4)]
    for k in range(4):
        reg.open_visit(k * 4 * NS, f"visit-{k}", f"acct-{k}", 1)
    for tick in range(70 * 10):
        t = tick * TICK_NS
        if t == 33 * NS:
            track_of[0], track_of[1] = track_of[1], track_of[0]
        obs = []
        for k in range(4):
            t_in = k * 4 * NS + NS
            if t < t_in:
                continue
            leave_s = 36 if k == 0 else 50
            if t < 30 * NS:
                xy = _walk(ENTRY, spots[k], min(1.0, (t - t_in) / (4 * NS)))
            elif t < leave_s * NS:
                angle = 2 * math.pi * k / 4
                xy = (CROWD[0] + 0.25 * math.cos(angle), CROWD[1] + 0.25 * math.sin(angle))
            else:
                xy = _walk(CROWD, spots[(k + 2) % 4], min(1.0, (t - leave_s * NS) / (3 * NS)))
            obs.append(TrackObservation(track_of[k], xy[0], xy[1], None, _embedding(looks[k], rng)))
        reg.observe(t, obs)
    assert reg.visit_of_track("t2", 60 * NS) == "visit-0"
    assert reg.visit_of_track("t1", 60 * NS) == "visit-1"
    assert [reg.visit_of_track(t, 60 * NS) for t in ("t3", "t4")] == ["visit-2", "visit-3"]
    assert reg.corrections


def test_a_swap_with_someone_whose_look_was_never_learnt_is_undone(demo_store: StoreLayout) -> None:
    # person 0 comes in alone and waits near the entry (her look is learnt). Person 1 comes in next to her
    # and the two walk on shoulder to shoulder, 0.5 m apart, so his look is never learnt. At 24 s the
    # tracker swaps their ids; at 28 s she walks off alone. Her look on t2 says t2 is hers from then on,
    # and t1, which no longer looks like her, is his: whoever he is, he is the one left
    reg = ShopperRegistry(demo_store)
    rng = np.random.default_rng(5)
    looks = _looks(2, seed=13)
    wait, pair = (2.4, 2.0), (4.0, 4.5)
    reg.open_visit(0, "visit-0", "acct-0", 1)
    reg.open_visit(12 * NS, "visit-1", "acct-1", 1)
    track_of = ["t1", "t2"]
    for tick in range(50 * 10):
        t = tick * TICK_NS
        if t == 24 * NS:
            track_of.reverse()
        obs = []
        if t >= NS:
            if t < 13 * NS:
                xy0 = _walk(ENTRY, wait, min(1.0, (t - NS) / (2 * NS)))
            elif t < 28 * NS:
                xy0 = _walk(wait, pair, min(1.0, (t - 13 * NS) / (4 * NS)))
            else:
                xy0 = _walk(pair, (6.5, 3.0), min(1.0, (t - 28 * NS) / (3 * NS)))
            obs.append(TrackObservation(track_of[0], xy0[0], xy0[1], None, _embedding(looks[0], rng)))
        if t >= 12 * NS + NS // 2:
            beside = (ENTRY[0] + 0.5, ENTRY[1] + 0.2) if t < 13 * NS else (pair[0] + 0.5, pair[1])
            xy1 = beside if t < 13 * NS else _walk((wait[0] + 0.5, wait[1]), beside, min(1.0, (t - 13 * NS) / (4 * NS)))
            obs.append(TrackObservation(track_of[1], xy1[0], xy1[1], None, _embedding(looks[1], rng)))
        reg.observe(t, obs)
    assert reg.visit_of_track("t1", 13 * NS) == "visit-0"
    assert reg.visit_of_track("t2", 13 * NS) == "visit-1"
    assert reg.visit_of_track("t2", 40 * NS) == "visit-0"
    assert reg.visit_of_track("t1", 40 * NS) == "visit-1"
    assert reg.corrections


def test_a_second_track_started_beside_a_person_continues_them(demo_store: StoreLayout) -> None:
    # the tracker starts t2 a metre ahead of the shopper (two cameras' views not merged) in the very tick
    # it last reports t1, then keeps only t2. A track far away that starts then is someone else's
    reg = ShopperRegistry(demo_store)
    rng = np.random.default_rng(2)
    look = _looks(1, seed=4)[0]
    reg.open_visit(0, "visit-0", "acct-0", 1)
    for tick in range(40 * 10):
        t = tick * TICK_NS
        if t < NS:
            continue
        x, y = _walk(ENTRY, (4.0, 6.0), min(1.0, (t - NS) / (12 * NS)))
        obs = []
        if t <= 8 * NS:
            obs.append(TrackObservation("t1", x, y, None, _embedding(look, rng)))
        if t >= 8 * NS:
            obs.append(TrackObservation("t2", x + 0.7, y + 0.7, None, _embedding(look, rng)))
            obs.append(TrackObservation("t3", 6.5, 6.5, None, None))
        reg.observe(t, obs)
    assert reg.visit_of_track("t2", 8 * NS) == "visit-0"
    assert reg.visit_of_track("t3", 20 * NS) is None
    person = reg.visits["visit-0"].people[0]
    assert person.track_id == "t2"
    assert person.lost_ns is None
    assert any("t2" in tracks for _, tracks in reg.corrections)
