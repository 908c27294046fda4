"""A broken store file gives an error that names the file, the field and the problem.

Each test starts from one small valid store and changes exactly one thing. Also: the camera model's
projection round-trips and agrees with OpenCV."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml

from store_edge.errors import ConfigError
from store_edge.layout import load_store, load_store_text
from store_edge.layout.camera import CameraModel, look_down_extrinsics, rodrigues, rotation_to_rvec
from store_edge.layout.model import Camera, Extrinsics, Intrinsics

PLATE_W = 0.1016


def _plates(shelf_id: str, n: int) -> list[dict[str, Any]]:
    return [{"id": f"{shelf_id}-P{i + 1:02d}", "x_m": round(i * PLATE_W, 4), "width_m": PLATE_W} for i in range(n)]


def _shelf(shelf_id: str, z: float) -> dict[str, Any]:
    return {
        "id": shelf_id,
        "z_m": z,
        "depth_m": 0.4064,
        "scale": {"device_id": f"scale-{shelf_id}", "rate_hz": 60, "samples_per_message": 12},
        "curtain": {"device_id": f"ir-{shelf_id}", "resolution_m": 0.01},
        "plates": _plates(shelf_id, 3),
    }


@pytest.fixture
def store() -> dict[str, Any]:
    """A small valid store: one gondola with two 3-plate shelves, three products, two gates."""
    return {
        "schema_version": 1,
        "store_id": "test",
        "name": "Test store",
        "currency": "USD",
        "floor": {"outline": [[0.0, 0.0], [10.0, 0.0], [10.0, 8.0], [0.0, 8.0]]},
        "products": [
            {
                "sku": "2000000000015",
                "name": "Cola 12 oz Can",
                "price": "1.49",
                "unit_weight_g": {"mean": 385.0, "std": 2.0},
            },
            {
                "sku": "2000000000022",
                "name": "Milk Chocolate Bar",
                "price": "1.99",
                "unit_weight_g": {"mean": 44.0, "std": 0.5},
            },
            {
                "sku": "2000000000039",
                "name": "Sea Salt Chips 1 oz",
                "price": "1.29",
                "unit_weight_g": {"mean": 31.0, "std": 0.6},
            },
        ],
        "gondolas": [
            {
                # Front line runs north at x = 3; shoppers stand west of it, shelves extend east.
                "id": "G1",
                "front": [[3.0, 2.0], [3.0, 2.3048]],
                "depth_m": 0.45,
                "shelves": [_shelf("G1-S1", 0.15), _shelf("G1-S2", 0.55)],
            }
        ],
        "planogram": [
            {"sku": "2000000000015", "plates": {"G1-S1-P01": 5, "G1-S1-P02": 5, "G1-S1-P03": 5}},
            {"sku": "2000000000022", "plates": {"G1-S2-P01": 24, "G1-S2-P02": 12}},
            {"sku": "2000000000039", "plates": {"G1-S2-P02": 10, "G1-S2-P03": 20}},
        ],
        "cameras": [
            {
                "id": "cam-01",
                "resolution": [640, 480],
                "fps": 15,
                "intrinsics": {"fx": 409.6, "fy": 409.6, "cx": 320, "cy": 240},
                "extrinsics": look_down_extrinsics((3.0, 2.0, 3.2)).model_dump(mode="json"),
            }
        ],
        "gates": [
            {
                "id": "entry-1",
                "kind": "entry",
                "line": [[1.0, 1.0], [1.9, 1.0]],
                "scanner_id": "scanner-1",
                "counter_id": "counter-1",
            },
            {"id": "exit-1", "kind": "exit", "line": [[5.0, 1.0], [5.9, 1.0]], "counter_id": "counter-2"},
        ],
    }


def write(tmp_path: Path, data: Any, name: str = "store.yaml") -> Path:
    path = tmp_path / name
    path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    return path


def load_error(path: Path) -> ConfigError:
    with pytest.raises(ConfigError) as info:
        load_store(path)
    err = info.value
    assert err.file == str(path)
    assert str(path) in str(err)
    assert err.problems
    return err


def assert_problem(err: ConfigError, path: str, *words: str) -> None:
    """One of the problems is at field `path` and its message contains all `words`; the rendered
    message shows file, field and problem together on one line."""
    for p in err.problems:
        if p.path == path and all(w in p.problem for w in words):
            assert f"{err.file}: {path}: {p.problem}" in str(err)
            return
    listed = "\n".join(f"  {p.path}: {p.problem}" for p in err.problems)
    pytest.fail(f"no problem at {path!r} mentioning {words}; got:\n{listed}")


# --- the baseline ------------------------------------------------------------------------------------
def test_the_baseline_store_is_valid(tmp_path: Path, store: dict[str, Any]) -> None:
    layout = load_store(write(tmp_path, store))
    assert layout.plate_count == 6
    assert len(layout.facings_on_plate["G1-S2-P02"]) == 2


def test_unreadable_file(tmp_path: Path) -> None:
    err = load_error(tmp_path / "missing.yaml")
    assert err.problems[0].path == "(file)"
    assert "cannot read" in err.problems[0].problem


# --- syntax and schema -----------------------------------------------------------------------------
def test_yaml_syntax_error_names_the_line(tmp_path: Path, store: dict[str, Any]) -> None:
    lines = yaml.safe_dump(store, sort_keys=False).splitlines()
    i = next(i for i, line in enumerate(lines) if line.startswith("name:"))
    lines[i] = "name: Test: store"  # a second ':' on one line
    path = tmp_path / "store.yaml"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    err = load_error(path)
    assert len(err.problems) == 1
    where, problem = err.problems[0].path, err.problems[0].problem
    assert where.startswith(f"line {i + 1}, column ")
    assert problem.startswith("YAML syntax error")
    assert f"line {i + 1}" in str(err)


def test_not_a_mapping(tmp_path: Path) -> None:
    path = tmp_path / "store.yaml"
    path.write_text("- just\n- a list\n", encoding="utf-8")
    assert_problem(load_error(path), "(top level)", "expected a mapping")


def test_unknown_top_level_key_is_a_typo(tmp_path: Path, store: dict[str, Any]) -> None:
    store["camreas"] = store.pop("cameras")
    err = load_error(write(tmp_path, store))
    assert_problem(err, "camreas", "Extra inputs are not permitted")


def test_unknown_nested_key(tmp_path: Path, store: dict[str, Any]) -> None:
    scale = store["gondolas"][0]["shelves"][1]["scale"]
    scale["rate_hzz"] = scale.pop("rate_hz")
    err = load_error(write(tmp_path, store))
    assert_problem(err, "gondolas[0].shelves[1].scale.rate_hzz", "Extra inputs are not permitted")


def test_missing_required_field(tmp_path: Path, store: dict[str, Any]) -> None:
    del store["products"][1]["price"]
    assert_problem(load_error(write(tmp_path, store)), "products[1].price", "Field required")


def test_negative_price(tmp_path: Path, store: dict[str, Any]) -> None:
    store["products"][0]["price"] = "-1.49"
    assert_problem(load_error(write(tmp_path, store)), "products[0].price", "greater than 0")


def test_price_with_fractions_of_a_cent(tmp_path: Path, store: dict[str, Any]) -> None:
    store["products"][0]["price"] = "1.499"
    assert_problem(load_error(write(tmp_path, store)), "products[0].price", "2 decimal places")


def test_wrong_type_in_a_point(tmp_path: Path, store: dict[str, Any]) -> None:
    store["gondolas"][0]["front"][1][1] = "north"
    assert_problem(load_error(write(tmp_path, store)), "gondolas[0].front[1][1]", "valid number")


# --- ids and references ----------------------------------------------------------------------------
def test_duplicate_plate_id(tmp_path: Path, store: dict[str, Any]) -> None:
    plates = store["gondolas"][0]["shelves"][0]["plates"]
    plates[1]["id"] = plates[0]["id"]
    err = load_error(write(tmp_path, store))
    assert_problem(err, "gondolas[0].shelves[0].plates[0].id", "duplicate id", "'G1-S1-P01'")
    assert_problem(err, "gondolas[0].shelves[0].plates[1].id", "duplicate id", "'G1-S1-P01'")


def test_duplicate_sku(tmp_path: Path, store: dict[str, Any]) -> None:
    store["products"][2]["sku"] = store["products"][1]["sku"]
    assert_problem(load_error(write(tmp_path, store)), "products[2].sku", "duplicate sku")


def test_planogram_unknown_sku(tmp_path: Path, store: dict[str, Any]) -> None:
    store["planogram"][1]["sku"] = "2999999999999"
    err = load_error(write(tmp_path, store))
    assert_problem(err, "planogram[1].sku", "unknown sku", "'2999999999999'")
    # ...which also leaves the real product without a facing.
    assert_problem(err, "products[1]", "no facing")


def test_planogram_unknown_plate_id(tmp_path: Path, store: dict[str, Any]) -> None:
    store["planogram"][0]["plates"] = {"G1-S1-P01": 5, "G1-S1-P02": 5, "G1-S1-P33": 5}
    assert_problem(load_error(write(tmp_path, store)), "planogram[0].plates.G1-S1-P33", "unknown plate id")


def test_facing_across_two_shelves(tmp_path: Path, store: dict[str, Any]) -> None:
    store["planogram"][0]["plates"]["G1-S2-P03"] = 1
    err = load_error(write(tmp_path, store))
    assert_problem(err, "planogram[0].plates", "one shelf", "G1-S1", "G1-S2")


def test_facing_with_a_gap(tmp_path: Path, store: dict[str, Any]) -> None:
    del store["planogram"][0]["plates"]["G1-S1-P02"]
    assert_problem(load_error(write(tmp_path, store)), "planogram[0].plates", "gap")


def test_overloaded_plate(tmp_path: Path, store: dict[str, Any]) -> None:
    # 5 cans of 385 g are fine; 60 are 23 kg on a 20 kg plate.
    store["planogram"][0]["plates"]["G1-S1-P02"] = 60
    err = load_error(write(tmp_path, store))
    assert_problem(err, "planogram (plate G1-S1-P02)", "over the plate's 20 kg rating")
    assert not [p for p in err.problems if "G1-S1-P01" in p.path]


def test_overloaded_shared_plate_sums_both_products(tmp_path: Path, store: dict[str, Any]) -> None:
    # G1-S2-P02 holds chips (10 x 32.8 g) and chocolate: 435 bars (19.8 kg) alone would fit on the
    # plate, with the chips they do not.
    store["planogram"][1]["plates"]["G1-S2-P02"] = 435
    assert_problem(load_error(write(tmp_path, store)), "planogram (plate G1-S2-P02)", "20 kg rating")


def test_product_without_facing(tmp_path: Path, store: dict[str, Any]) -> None:
    store["products"].append(
        {"sku": "2000000000046", "name": "Gum", "price": "0.99", "unit_weight_g": {"mean": 16.0, "std": 0.2}}
    )
    assert_problem(load_error(write(tmp_path, store)), "products[3]", "no facing")


# --- gates and geometry ----------------------------------------------------------------------------
def test_no_exit_gate(tmp_path: Path, store: dict[str, Any]) -> None:
    store["gates"][1]["kind"] = "entry"
    assert_problem(load_error(write(tmp_path, store)), "gates", "at least one exit gate")


def test_entry_gate_without_scanner(tmp_path: Path, store: dict[str, Any]) -> None:
    del store["gates"][0]["scanner_id"]
    assert_problem(load_error(write(tmp_path, store)), "gates[0].scanner_id", "needs a code scanner")


def test_unknown_gate_kind(tmp_path: Path, store: dict[str, Any]) -> None:
    store["gates"][1]["kind"] = "exti"
    assert_problem(load_error(write(tmp_path, store)), "gates[1].kind", "'entry' or 'exit'")


def test_gondola_outside_the_floor(tmp_path: Path, store: dict[str, Any]) -> None:
    # Shelves extend east of the front line: at x = 9.8 they reach past the 10 m wall.
    store["gondolas"][0]["front"] = [[9.8, 2.0], [9.8, 2.3048]]
    assert_problem(load_error(write(tmp_path, store)), "gondolas[0].front", "outside the floor")


def test_plate_past_the_end_of_the_gondola(tmp_path: Path, store: dict[str, Any]) -> None:
    store["gondolas"][0]["front"] = [[3.0, 2.0], [3.0, 2.25]]
    assert_problem(load_error(write(tmp_path, store)), "gondolas[0].shelves[0].plates[2].x_m", "past the gondola")


def test_overlapping_plates(tmp_path: Path, store: dict[str, Any]) -> None:
    store["gondolas"][0]["shelves"][1]["plates"][1]["x_m"] = 0.05
    assert_problem(load_error(write(tmp_path, store)), "gondolas[0].shelves[1].plates[1].x_m", "overlaps")


def test_all_problems_are_reported_at_once(tmp_path: Path, store: dict[str, Any]) -> None:
    bad = copy.deepcopy(store)
    bad["products"][0]["price"] = "-1"
    bad["gates"][0]["fps"] = 3
    err = load_error(write(tmp_path, bad))
    assert {p.path for p in err.problems} >= {"products[0].price", "gates[0].fps"}


# --- camera model ----------------------------------------------------------------------------------
NO_DISTORTION = (0.0, 0.0, 0.0, 0.0, 0.0)
BARREL = (-0.2, 0.05, 0.0, 0.0, 0.0)
BARREL_TANGENTIAL = (-0.2, 0.05, 0.001, -0.0005, 0.0)


def make_camera(distortion: tuple[float, float, float, float, float], tilted: bool) -> Camera:
    position = (4.0, 3.0, 3.2)
    ext = look_down_extrinsics(position, yaw_rad=0.4)
    if tilted:  # tip the camera by about 12 degrees, as a real mount is never quite level
        rot = rodrigues((0.15, -0.12, 0.05)) @ rodrigues(ext.rvec)
        rvec = rotation_to_rvec(rot)
        tvec = -rot @ np.array(position)
        ext = Extrinsics(
            rvec=(float(rvec[0]), float(rvec[1]), float(rvec[2])),
            tvec=(float(tvec[0]), float(tvec[1]), float(tvec[2])),
        )
    return Camera(
        id="cam",
        resolution=(640, 480),
        fps=15,
        intrinsics=Intrinsics(fx=409.6, fy=409.6, cx=320, cy=240, distortion=distortion),
        extrinsics=ext,
    )


def floor_points(cam: Camera, z: float = 0.0) -> np.ndarray:
    """Points at height z that an ideal lens would image all over the frame (inset 5%)."""
    ideal = cam.model_copy(update={"intrinsics": cam.intrinsics.model_copy(update={"distortion": NO_DISTORTION})})
    rng = np.random.default_rng(7)
    uv = rng.uniform([32, 24], [608, 456], size=(200, 2))
    xy = CameraModel(ideal).pixel_to_floor(uv, z=z)
    return np.column_stack([xy, np.full(len(xy), z)])


CASES = [
    pytest.param(NO_DISTORTION, False, id="straight-down"),
    pytest.param(BARREL, False, id="straight-down-k1k2"),
    pytest.param(NO_DISTORTION, True, id="tilted"),
    pytest.param(BARREL, True, id="tilted-k1k2"),
    pytest.param(BARREL_TANGENTIAL, True, id="tilted-k1k2p1p2"),
]


@pytest.mark.parametrize(("distortion", "tilted"), CASES)
@pytest.mark.parametrize("z", [0.0, 1.35])
def test_pixel_round_trip(distortion: tuple[float, float, float, float, float], tilted: bool, z: float) -> None:
    cam = make_camera(distortion, tilted)
    model = CameraModel(cam)
    pts = floor_points(cam, z)
    uv, in_front = model.world_to_pixel(pts)
    assert in_front.all()
    assert ((uv >= 0) & (uv < np.array([640, 480]))).all()
    back = model.pixel_to_floor(uv, z=z)
    np.testing.assert_allclose(back, pts[:, :2], rtol=0, atol=1e-6)


def test_look_down_camera_centre_pixel_is_below_it() -> None:
    model = CameraModel(make_camera(NO_DISTORTION, tilted=False))
    np.testing.assert_allclose(model.position, [4.0, 3.0, 3.2], atol=1e-12)
    uv, ok = model.world_to_pixel(np.array([[4.0, 3.0, 0.0]]))
    assert ok[0]
    np.testing.assert_allclose(uv[0], [320, 240], atol=1e-9)
    assert model.sees(np.array([4.0, 3.0, 0.0]))
    assert not model.sees(np.array([4.0, 3.0, 4.0]))  # above the lens
    assert not model.sees(np.array([14.0, 3.0, 0.0]))  # far outside the view


@pytest.mark.parametrize(("distortion", "tilted"), CASES)
def test_projection_matches_opencv(distortion: tuple[float, float, float, float, float], tilted: bool) -> None:
    cv2 = pytest.importorskip("cv2")
    cam = make_camera(distortion, tilted)
    model = CameraModel(cam)
    pts = floor_points(cam)
    ours, _ = model.world_to_pixel(pts)
    k = cam.intrinsics
    kmat = np.array([[k.fx, 0, k.cx], [0, k.fy, k.cy], [0, 0, 1.0]])
    theirs, _ = cv2.projectPoints(
        pts.reshape(-1, 1, 3),
        np.array(cam.extrinsics.rvec, dtype=float),
        np.array(cam.extrinsics.tvec, dtype=float),
        kmat,
        np.array(k.distortion, dtype=float),
    )
    np.testing.assert_allclose(ours, theirs.reshape(-1, 2), rtol=0, atol=1e-6)
    rot, _ = cv2.Rodrigues(np.array(cam.extrinsics.rvec, dtype=float))
    np.testing.assert_allclose(model.rot, rot, atol=1e-9)


def test_duplicate_yaml_keys_are_refused_with_their_line(tmp_path: Path) -> None:
    path = tmp_path / "dup.yaml"
    path.write_text("store_id: a\nname: x\nstore_id: b\n")
    with pytest.raises(ConfigError) as err:
        load_store(path)
    assert f"{path}: line 3, column 1: YAML syntax error: duplicate key 'store_id'" in str(err.value)


def test_embedded_store_text_with_bad_yaml_gives_a_config_error() -> None:
    with pytest.raises(ConfigError) as err:
        load_store_text("a: [1, 2\n", "rec.mcap#store.yaml")
    assert "rec.mcap#store.yaml: line" in str(err.value)


def test_overlapping_gondolas_are_refused(tmp_path: Path, store: dict[str, Any]) -> None:
    twin = copy.deepcopy(store["gondolas"][0])
    twin["id"] = "G2"
    twin["front"] = [[3.2, 2.1], [3.2, 2.4048]]  # 0.2 m east of G1's front: inside G1
    for s in twin["shelves"]:
        s["id"] = s["id"].replace("G1", "G2")
        s["scale"]["device_id"] = s["scale"]["device_id"].replace("G1", "G2")
        s["curtain"]["device_id"] = s["curtain"]["device_id"].replace("G1", "G2")
        for p in s["plates"]:
            p["id"] = p["id"].replace("G1", "G2")
    store["gondolas"].append(twin)
    err = load_error(write(tmp_path, store))
    assert "gondolas[1].front: gondola 'G2' overlaps gondola 'G1'" in str(err)


def test_gate_outside_the_floor_is_refused(tmp_path: Path, store: dict[str, Any]) -> None:
    store["gates"][1]["line"] = [[9.5, 1.0], [10.4, 1.0]]
    err = load_error(write(tmp_path, store))
    assert "gates[1].line: the gate lies outside the floor outline" in str(err)


def test_device_ids_the_edge_uses_itself_are_reserved(tmp_path: Path, store: dict[str, Any]) -> None:
    store["gates"][1]["counter_id"] = "tracker"
    err = load_error(write(tmp_path, store))
    assert "gates[1].counter_id: duplicate device id 'tracker'" in str(err)
    store["gates"][1]["counter_id"] = "gatectl-entry-1"
    err = load_error(write(tmp_path, store))
    assert "gates[1].counter_id: duplicate device id 'gatectl-entry-1'" in str(err)
