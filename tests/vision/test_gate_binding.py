"""Store tracks from the store tracker bound to visits at the entry gate by the fusion engine's
registry: a party of two on one scan, then somebody who follows with no scan (tailgating)."""

from __future__ import annotations

from store_edge.fusion.shoppers import ShopperRegistry, TrackObservation
from store_edge.layout import StoreLayout
from store_edge.vision.store_tracker import NS, CameraObservation, StoreTracker

TICK_S = 0.1


def _walk_in(t: float, enter_s: float, x: float) -> tuple[float, float] | None:
    """Through the demo store's entry gate (y = 1.2) and up the aisle at 1 m/s."""
    if t < enter_s:
        return None
    return (x, 0.9 + (t - enter_s))


def test_party_binds_to_its_scan_and_a_tailgater_raises_an_alert(demo_store: StoreLayout) -> None:
    people = {"leader": (1.0, 1.8), "partner": (2.2, 2.0), "tailgater": (8.0, 1.9)}
    tracker = StoreTracker()
    registry = ShopperRegistry(demo_store)
    registry.open_visit(round(0.5 * NS), "visit-1", "acct-1", party_size=2)
    first_track: dict[str, str] = {}
    for k in range(int(12.0 / TICK_S)):
        t = k * TICK_S
        obs = [
            CameraObservation("cam-entry", i + 1, *xy, 0.9)
            for i, (name, (enter, x)) in enumerate(people.items())
            if (xy := _walk_in(t, enter, x)) is not None
        ]
        tracks = tracker.step(round(t * NS), obs)
        where = {n: xy for n, (enter, x) in people.items() if (xy := _walk_in(t, enter, x)) is not None}
        for f in tracks:
            name = min(where, key=lambda n: (where[n][0] - f.x) ** 2 + (where[n][1] - f.y) ** 2)
            first_track.setdefault(name, f.track_id)
        registry.observe(round(t * NS), [TrackObservation(f.track_id, f.x, f.y) for f in tracks])
    assert registry.visit_of_track(first_track["leader"]) == "visit-1"
    assert registry.visit_of_track(first_track["partner"]) == "visit-1"
    assert registry.visit_of_track(first_track["tailgater"]) is None
    alerts = [text for _, text in registry.alerts]
    assert any("tailgating" in a and first_track["tailgater"] in a for a in alerts)
    assert len(alerts) == 1


def test_camera_tracker_reusing_a_lost_id_at_the_turnstile_starts_a_new_shopper(demo_store: StoreLayout) -> None:
    """The entry camera's tracker loses the first shopper as they walk up the aisle out of every
    camera's view, and gives its lost id to the next shopper stepping through the turnstile on their
    own scan (ByteTrack re-activates a lost track on a new box in the same spot). The newcomer must
    start a store track of their own, bound to their scan; the first shopper, seen again up the aisle,
    keeps theirs."""
    tracker = StoreTracker(entry_lines=[g.line for g in demo_store.gates_of_kind("entry")])
    registry = ShopperRegistry(demo_store)
    registry.open_visit(round(0.5 * NS), "visit-1", "acct-1", party_size=1)
    registry.open_visit(round(2.5 * NS), "visit-2", "acct-2", party_size=1)
    first = _walk_in  # through the gate at x = 1.9 from t = 1 s
    track_of: dict[str, set[str]] = {"first": set(), "second": set()}
    for k in range(int(9.0 / TICK_S)):
        t = k * TICK_S
        obs = []
        a = first(t, 1.0, 1.9)
        if a is not None and a[1] < 2.2:
            obs.append(CameraObservation("cam-entry", 1, *a, 0.9))  # seen until 2.2 m, then nobody's view
        if a is not None and a[1] > 4.0:
            obs.append(CameraObservation("cam-aisle", 1, *a, 0.9))
        b = first(t, 3.0, 1.9)
        if b is not None and b[1] < 2.2:
            obs.append(CameraObservation("cam-entry", 1, *b, 0.9))  # the first shopper's old id
        tracks = tracker.step(round(t * NS), obs)
        for f in tracks:
            name = "first" if a is not None and abs(f.y - a[1]) < 0.5 else "second"
            track_of[name].add(f.track_id)
        registry.observe(round(t * NS), [TrackObservation(f.track_id, f.x, f.y) for f in tracks])
    assert track_of["first"]
    assert track_of["second"]
    assert not track_of["first"] & track_of["second"]
    assert {registry.visit_of_track(tid) for tid in track_of["first"]} == {"visit-1"}
    assert {registry.visit_of_track(tid) for tid in track_of["second"]} == {"visit-2"}
    assert not registry.alerts
