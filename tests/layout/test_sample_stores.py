"""The shipped sample stores load, have the sizes the simulator and benchmarks rely on, and are exactly
what tools/generate_stores.py writes."""

from __future__ import annotations

import itertools
import math
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from store_edge.layout import CameraModel, StoreLayout, load_store
from store_edge.layout.model import point_in_polygon

REPO = Path(__file__).resolve().parents[2]
STORES = REPO / "sample_data" / "stores"
GENERATOR = REPO / "tools" / "generate_stores.py"
STORE_IDS = ("demo", "hard")

PLATE_WIDTH_M = 0.1016
SHELF_DEPTH_M = 0.4064
NEAR_WEIGHT_G = 2.0


@pytest.fixture(scope="module")
def stores() -> dict[str, StoreLayout]:
    return {sid: load_store(STORES / f"{sid}.yaml") for sid in STORE_IDS}


@pytest.fixture(params=STORE_IDS)
def store(request: pytest.FixtureRequest, stores: dict[str, StoreLayout]) -> StoreLayout:
    return stores[request.param]


def near_weight_pairs(store: StoreLayout) -> list[tuple[str, str]]:
    products = store.products
    return [
        (a.sku, b.sku)
        for a, b in itertools.combinations(products, 2)
        if abs(a.unit_weight_g.mean - b.unit_weight_g.mean) <= NEAR_WEIGHT_G
    ]


def shared_plates(store: StoreLayout) -> list[str]:
    return [pid for pid, facings in store.facings_on_plate.items() if len(facings) > 1]


def plate_centres(store: StoreLayout) -> Iterator[tuple[str, np.ndarray]]:
    for pid, g in store.plate_geometry.items():
        yield pid, np.array(g.center, dtype=float)


def ean13_ok(code: str) -> bool:
    if len(code) != 13 or not code.isdigit():
        return False
    total = sum(int(c) * (3 if i % 2 else 1) for i, c in enumerate(code[:12]))
    return (10 - total % 10) % 10 == int(code[12])


# --- sizes ------------------------------------------------------------------------------------------
def test_demo_store_sizes(stores: dict[str, StoreLayout]) -> None:
    s = stores["demo"]
    assert s.store_id == "demo"
    assert 4 <= len(s.gondolas) <= 6
    assert 150 <= s.plate_count <= 300
    assert 50 <= len(s.products) <= 80


def test_hard_store_sizes(stores: dict[str, StoreLayout]) -> None:
    s = stores["hard"]
    assert s.store_id == "hard"
    assert 6 <= len(s.gondolas) <= 10
    assert len(s.products) >= 120
    assert len(near_weight_pairs(s)) >= 30
    assert len(shared_plates(s)) >= 15


def test_hard_store_places_near_weights_side_by_side_and_apart(stores: dict[str, StoreLayout]) -> None:
    s = stores["hard"]
    geo = s.plate_geometry
    where: dict[str, list[tuple[str, str, set[int]]]] = {}  # sku -> (gondola, shelf, plate indices)
    for f in s.planogram:
        idx = {geo[pid].index_on_shelf for pid in f.plates}
        first = geo[next(iter(f.plates))]
        where.setdefault(f.sku, []).append((first.gondola_id, first.shelf_id, idx))
    side_by_side = apart = 0
    for a, b in near_weight_pairs(s):
        for (ga, sa, ia), (gb, sb, ib) in itertools.product(where[a], where[b]):
            if sa == sb and (min(ib) - max(ia) <= 1 and min(ia) - max(ib) <= 1):
                side_by_side += 1
            if ga != gb:
                apart += 1
    assert side_by_side >= 5
    assert apart >= 5


def test_shared_plates_split_capacity(stores: dict[str, StoreLayout]) -> None:
    s = stores["hard"]
    geo = s.plate_geometry
    for pid in shared_plates(s):
        facings = s.facings_on_plate[pid]
        assert len(facings) == 2, pid
        a, b = facings
        assert geo[pid].shelf_id == geo[next(iter(a.plates))].shelf_id == geo[next(iter(b.plates))].shelf_id
        # Each product holds fewer units on the shared plate than on a plate of its own.
        for f in facings:
            own = [u for p, u in f.plates.items() if len(s.facings_on_plate[p]) == 1]
            assert own, f"facing of {f.sku} has no plate of its own"
            assert f.plates[pid] < max(own)


# --- plates, shelves, devices ---------------------------------------------------------------------------
def test_every_plate_is_stocked_and_facings_span_one_to_five_plates(store: StoreLayout) -> None:
    assert all(store.facings_on_plate[pid] for pid in store.plate_geometry)
    widths = [len(f.plates) for f in store.planogram]
    assert min(widths) >= 1
    assert max(widths) <= 5
    assert {f.sku for f in store.planogram} == {p.sku for p in store.products}


def test_plates_shelves_and_devices_follow_the_conventions(store: StoreLayout) -> None:
    for g in store.gondolas:
        assert g.id.startswith("G")
        assert len(g.shelves) in (4, 5)
        heights = [s.z_m for s in g.shelves]
        assert heights == sorted(heights)
        assert heights[0] >= 0.1
        assert heights[-1] <= 1.8
        for si, s in enumerate(g.shelves):
            assert s.id == f"{g.id}-S{si + 1}"
            assert s.depth_m == pytest.approx(SHELF_DEPTH_M)
            assert s.scale.device_id == f"scale-{s.id}"
            assert s.scale.rate_hz == 60
            assert s.scale.samples_per_message == 12
            assert s.curtain is not None
            assert s.curtain.device_id == f"ir-{s.id}"
            assert s.curtain.resolution_m == pytest.approx(0.01)
            n = len(s.plates)
            assert (n, round(g.length_m, 4)) in ((12, 1.2192), (9, 0.9144))
            for pi, p in enumerate(s.plates):
                assert p.id == f"{s.id}-P{pi + 1:02d}"
                assert p.width_m == pytest.approx(PLATE_WIDTH_M)
                assert p.x_m == pytest.approx(pi * PLATE_WIDTH_M)
                assert p.rating_kg == 20


def test_full_stock_within_plate_rating(store: StoreLayout) -> None:
    for pid, facings in store.facings_on_plate.items():
        grams = 0.0
        for f in facings:
            w = store.products_by_sku[f.sku].unit_weight_g
            grams += f.plates[pid] * (w.mean + 3 * w.std)
        assert grams <= 20_000, pid


# --- products ---------------------------------------------------------------------------------------
def test_skus_are_unique_ean13(store: StoreLayout) -> None:
    skus = [p.sku for p in store.products]
    assert len(set(skus)) == len(skus)
    assert all(ean13_ok(sku) for sku in skus)
    names = [p.name for p in store.products]
    assert len(set(names)) == len(names)


def test_weights_look_like_a_real_catalogue(store: StoreLayout) -> None:
    mean = np.array([p.unit_weight_g.mean for p in store.products])
    std = np.array([p.unit_weight_g.std for p in store.products])
    cv = std / mean
    assert 10 <= mean.min() <= 30
    assert 900 <= mean.max() <= 2000
    assert 50 <= float(np.median(mean)) <= 150
    assert 0.5 <= float(np.median(std)) <= 2.5
    assert std.max() <= 15
    assert 0.005 <= float(np.median(cv)) <= 0.02
    assert 0.08 <= cv.max() <= 0.16
    prices = [p.price for p in store.products]
    assert all(p.as_tuple().exponent == -2 for p in prices)
    assert float(min(prices)) >= 0.5
    assert float(max(prices)) <= 15


def test_prices_are_written_as_strings() -> None:
    text = (STORES / "demo.yaml").read_text(encoding="utf-8")
    assert "price: '" in text
    assert "price: 1." not in text


# --- floor plan -------------------------------------------------------------------------------------
def _dist_point_segment(p: np.ndarray, a: np.ndarray, b: np.ndarray) -> float:
    ab = b - a
    t = min(1.0, max(0.0, float((p - a) @ ab) / float(ab @ ab)))
    return float(np.linalg.norm(p - (a + t * ab)))


def test_gondolas_keep_clear_of_walls_and_aisles_are_wide(store: StoreLayout) -> None:
    floor = np.array(store.floor.outline, dtype=float)
    edges = [(floor[i], floor[(i + 1) % len(floor)]) for i in range(len(floor))]
    footprints = {g.id: g.footprint() for g in store.gondolas}
    for g in store.gondolas:
        for corner in footprints[g.id]:
            assert point_in_polygon(corner, floor)
            assert min(_dist_point_segment(corner, a, b) for a, b in edges) >= 1.5 - 1e-9, g.id
        # The 1.4 m strip in front of the shelves is free floor: no other gondola reaches into it.
        start = np.array(g.front[0], dtype=float)
        for t in np.linspace(0, g.length_m, 13):
            for depth in np.linspace(0.05, 1.4, 10):
                p = start + g.direction * t + g.aisle_normal * depth
                assert point_in_polygon(p, floor)
                for other, fp in footprints.items():
                    if other != g.id:
                        assert not point_in_polygon(p, fp), (g.id, other)
    # Footprints do not overlap (back-to-back gondolas only touch).
    for g, h in itertools.combinations(store.gondolas, 2):
        centre = footprints[g.id].mean(axis=0)
        assert not point_in_polygon(centre, footprints[h.id]), (g.id, h.id)


def test_double_sided_runs_face_opposite_aisles(store: StoreLayout) -> None:
    pairs = 0
    for g, h in itertools.combinations(store.gondolas, 2):
        fg, fh = g.footprint(), h.footprint()
        touching = any(point_in_polygon(c, fh) for c in fg)
        if touching:
            pairs += 1
            assert float(g.aisle_normal @ h.aisle_normal) == pytest.approx(-1.0)
            # The shared edge is both gondolas' back: each front faces away from the other.
            assert float((h.footprint().mean(axis=0) - np.array(g.front[0])) @ g.aisle_normal) < 0
    assert pairs >= 2


def test_gates_stand_in_an_open_zone(store: StoreLayout) -> None:
    entries, exits = store.gates_of_kind("entry"), store.gates_of_kind("exit")
    assert len(entries) >= 1
    assert len(exits) >= 1
    assert all(g.scanner_id for g in entries)
    floor = np.array(store.floor.outline, dtype=float)
    mids = []
    for gate in store.gates:
        a, b = (np.array(p, dtype=float) for p in gate.line)
        assert 0.8 <= float(np.linalg.norm(b - a)) <= 1.0
        mid = (a + b) / 2
        mids.append(mid)
        assert point_in_polygon(mid, floor)
        for g in store.gondolas:
            fp = g.footprint()
            gap = min(_dist_point_segment(mid, fp[i], fp[(i + 1) % 4]) for i in range(4))
            assert gap >= 1.5, (gate.id, g.id)
    assert 2.0 <= float(np.linalg.norm(mids[0] - mids[1])) <= 8.0


# --- cameras ----------------------------------------------------------------------------------------
def test_cameras_are_ceiling_cameras_looking_down(store: StoreLayout) -> None:
    assert store.cameras
    for cam in store.cameras:
        m = CameraModel(cam)
        assert m.position[2] == pytest.approx(3.2)
        optical_axis = m.rot[2]  # camera z in world coordinates
        np.testing.assert_allclose(optical_axis, [0, 0, -1], atol=1e-9)
        assert cam.resolution == (640, 480)
        assert cam.fps == 15
        k = cam.intrinsics
        assert (k.cx, k.cy) == (320, 240)
        # Each camera sees about 5 x 3.75 m of floor.
        (x0, y0), (x1, y1) = m.pixel_to_floor(np.array([[0.0, 0.0], [640.0, 480.0]]))
        assert abs(x1 - x0) == pytest.approx(5.0, rel=0.05)
        assert abs(y1 - y0) == pytest.approx(3.75, rel=0.05)


def test_every_plate_is_seen_by_a_camera(store: StoreLayout) -> None:
    models = [CameraModel(c) for c in store.cameras]
    for pid, centre in plate_centres(store):
        assert any(m.sees(centre) for m in models), f"plate {pid} at {centre} is seen by no camera"
        on_floor = np.array([centre[0], centre[1], 0.0])
        assert any(m.sees(on_floor) for m in models), f"floor under plate {pid} is seen by no camera"


def test_cameras_cover_the_whole_floor(store: StoreLayout) -> None:
    models = [CameraModel(c) for c in store.cameras]
    xs, ys = zip(*store.floor.outline, strict=True)
    for x in np.arange(min(xs) + 0.05, max(xs), 0.25):
        for y in np.arange(min(ys) + 0.05, max(ys), 0.25):
            p = np.array([x, y, 0.0])
            assert any(m.sees(p) for m in models), f"floor point {p} is seen by no camera"


def test_a_camera_looks_straight_down_on_each_gate(store: StoreLayout) -> None:
    positions = [CameraModel(c).position for c in store.cameras]
    for gate in store.gates:
        (x1, y1), (x2, y2) = gate.line
        mid = np.array([(x1 + x2) / 2, (y1 + y2) / 2])
        assert min(math.dist(mid, p[:2]) for p in positions) < 0.01, gate.id


# --- the generator ----------------------------------------------------------------------------------
def test_generator_reproduces_the_committed_files(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, str(GENERATOR), "--out", str(tmp_path)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    for sid in STORE_IDS:
        fresh = (tmp_path / f"{sid}.yaml").read_bytes()
        shipped = (STORES / f"{sid}.yaml").read_bytes()
        assert fresh == shipped, (
            f"sample_data/stores/{sid}.yaml is stale: run `python tools/generate_stores.py` and commit"
        )


def test_shipped_files_say_they_are_generated() -> None:
    for sid in STORE_IDS:
        head = (STORES / f"{sid}.yaml").read_text(encoding="utf-8").splitlines()[:3]
        assert any("generated by tools/generate_stores.py" in line for line in head)
        assert any("tools/generate_stores.py" in line and "Regenerate" in line for line in head)
