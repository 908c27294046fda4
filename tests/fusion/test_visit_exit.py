"""When a visit is over though the tracker lost its shopper: the exit's person counter counts someone
nobody was tracked making, or the shopper stays lost for long. Demo store: entry line y=1.2 at x 1.45-2.35,
exit line y=1.2 at x 6.35-7.25."""

from __future__ import annotations

from store_edge.fusion.shoppers import NS, ShopperParams, ShopperRegistry, TrackObservation
from store_edge.layout import StoreLayout

TICK_NS = NS // 10
ENTRY = (1.9, 1.4)
EXIT = (6.8, 1.4)


def _walk(start: tuple[float, float], end: tuple[float, float], f: float) -> tuple[float, float]:
    f = min(1.0, max(0.0, f))
    return (start[0] + (end[0] - start[0]) * f, start[1] + (end[1] - start[1]) * f)


def _store_visit(
    store: StoreLayout,
    lost_at_s: dict[str, float],
    exit_at_s: dict[str, float],
    passages_s: list[float],
    until_s: float,
    params: ShopperParams | None = None,
) -> ShopperRegistry:
    """Visits a and b (one shopper each) enter at 1 s and 3 s and walk to a shelf; a shopper in
    `lost_at_s` vanishes there for good at that time (the tracker lost them); one in `exit_at_s` walks
    to the exit and its track ends there at that time. The exit counter counts at `passages_s`."""
    reg = ShopperRegistry(store, params)
    reg.open_visit(0, "visit-a", "acct-a", 1)
    reg.open_visit(2 * NS, "visit-b", "acct-b", 1)
    spots = {"a": (3.0, 5.0), "b": (5.5, 6.0)}
    entered_s = {"a": 1.0, "b": 3.0}
    pending = sorted(passages_s)
    for tick in range(int(until_s * 10)):
        t = tick * TICK_NS
        while pending and pending[0] * NS <= t:
            reg.passage(round(pending.pop(0) * NS), "exit-1", "out")
        obs = []
        for who, t_in in entered_s.items():
            s = t / NS
            if s < t_in or s >= lost_at_s.get(who, until_s) or s >= exit_at_s.get(who, until_s):
                continue
            xy = _walk(ENTRY, spots[who], (s - t_in) / 5)
            if who in exit_at_s and s > exit_at_s[who] - 6:
                xy = _walk(spots[who], EXIT, (s - exit_at_s[who] + 6) / 5)
            obs.append(TrackObservation(f"t-{who}", xy[0], xy[1]))
        reg.observe(t, obs)
    return reg


def test_a_passage_nobody_was_tracked_making_is_the_lost_shopper_leaving(demo_store: StoreLayout) -> None:
    reg = _store_visit(demo_store, lost_at_s={"a": 20.0}, exit_at_s={}, passages_s=[27.0], until_s=40.0)
    assert reg.visits["visit-a"].exit_ns == 27 * NS
    assert reg.visits["visit-b"].exit_ns is None  # b is still tracked, in the store


def test_a_passage_a_tracked_shopper_made_does_not_end_a_lost_ones_visit(demo_store: StoreLayout) -> None:
    reg = _store_visit(demo_store, lost_at_s={"a": 20.0}, exit_at_s={"b": 27.0}, passages_s=[27.0], until_s=40.0)
    exit_b = reg.visits["visit-b"].exit_ns
    assert exit_b is not None
    assert abs(exit_b - 27 * NS) <= NS
    assert reg.visits["visit-a"].exit_ns is None  # lost, but nobody untracked went out


def test_the_counters_double_count_ends_one_visit_not_two(demo_store: StoreLayout) -> None:
    reg = _store_visit(demo_store, lost_at_s={"a": 20.0, "b": 22.0}, exit_at_s={}, passages_s=[27.0, 27.2], until_s=40)
    exited = [v.visit_id for v in reg.visits.values() if v.exit_ns is not None]
    # from where each vanished, a would have reached the exit at 25.1 s and b at 26.9 s
    assert exited == ["visit-b"]


def test_a_shopper_lost_for_long_has_left_when_last_seen(demo_store: StoreLayout) -> None:
    reg = _store_visit(
        demo_store,
        lost_at_s={"a": 20.0},
        exit_at_s={},
        passages_s=[],  # the counter missed them
        until_s=60.0,
        params=ShopperParams(lost_exit_s=30.0),
    )
    exit_a = reg.visits["visit-a"].exit_ns
    assert exit_a is not None
    assert 19.8 * NS <= exit_a < 20 * NS
    assert reg.visits["visit-b"].exit_ns is None


def test_a_shopper_lost_for_a_moment_is_not_ended_by_the_timeout(demo_store: StoreLayout) -> None:
    reg = _store_visit(demo_store, lost_at_s={"a": 20.0}, exit_at_s={}, passages_s=[], until_s=45.0)
    assert reg.visits["visit-a"].exit_ns is None  # 25 s lost, of the default 120 s


def test_a_registry_saved_before_exit_passages_loads_and_counts_them(demo_store: StoreLayout) -> None:
    reg = _store_visit(demo_store, lost_at_s={"a": 20.0}, exit_at_s={}, passages_s=[], until_s=25.0)
    state = dict(reg.__dict__)
    for name in ("passages", "lost_checked_s", "last_passage_ns"):  # a worker's snapshot from before them
        del state[name]
    old = ShopperRegistry.__new__(ShopperRegistry)
    old.__setstate__(state)
    old.passage(27 * NS, "exit-1", "out")
    for tick in range(250, 400):
        old.observe(tick * TICK_NS, [TrackObservation("t-b", 5.5, 6.0)])
    assert old.visits["visit-a"].exit_ns == 27 * NS
