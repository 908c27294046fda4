"""Rendered camera frames: real JPEGs, truth boxes where the calibration puts people, deterministic."""

from __future__ import annotations

import numpy as np
import pytest
from numpy.typing import NDArray

from store_edge.layout import Camera, CameraModel, StoreLayout
from store_edge.layout.camera import look_down_extrinsics
from store_edge.layout.model import Intrinsics
from store_edge.sim.plan import Plan, build_plan, rng_for
from store_edge.sim.scenario import Action, Scenario, Shopper

cv2 = pytest.importorskip("cv2")

from store_edge.sim.frames import (  # noqa: E402  (needs OpenCV)
    RenderedBox,
    encode_jpeg,
    render_frame,
    render_frames,
)

STANDING_S = 1.3  # alice has just crossed the entry gate (she lingers 0.5-3 s), under cam-entry-1
AT_SHELF_S = 30.0  # alice is at a gondola, far from the entry camera


def _scenario(store: StoreLayout) -> Scenario:
    sku = store.planogram[0].sku
    alice = Shopper(
        id="alice", account="acct-alice", enter_s=1.0, actions=[Action(at_s=AT_SHELF_S, kind="pick", sku=sku)]
    )
    return Scenario(name="frames", store=store.store_id, seed=11, duration_s=60.0, shoppers=[alice])


@pytest.fixture(scope="module")
def plan(demo_store: StoreLayout) -> Plan:
    return build_plan(demo_store, _scenario(demo_store))


@pytest.fixture(scope="module")
def entry_cam(demo_store: StoreLayout) -> Camera:
    return next(c for c in demo_store.cameras if c.id == "cam-entry-1")


def _frame(plan: Plan, cam: Camera, t: float) -> tuple[NDArray[np.uint8], list[RenderedBox]]:
    return render_frame(plan, cam, t, rng_for(plan.scenario.seed, "test", cam.id, t))


def _alice_px(plan: Plan, cam: Camera, t: float, z: float = 1.0) -> NDArray[np.float64]:
    x, y = plan.shoppers[0].trajectory.at(t)
    uv, ok = CameraModel(cam).world_to_pixel(np.array([[x, y, z]]))
    assert ok[0]
    px: NDArray[np.float64] = uv[0]
    return px


def _centre(b: RenderedBox) -> NDArray[np.float64]:
    x1, y1, x2, y2 = b.box
    return np.array([(x1 + x2) / 2, (y1 + y2) / 2])


def test_frames_are_jpegs_of_each_camera_in_time_order(plan: Plan, demo_store: StoreLayout) -> None:
    frames = list(render_frames(plan, 1.0, fps=2.0))
    assert len(frames) == 2 * len(demo_store.cameras)
    assert [(f.t_s, f.camera_id) for f in frames] == sorted((f.t_s, f.camera_id) for f in frames)
    assert {f.t_s for f in frames} == {0.0, 0.5}
    cams = {c.id: c for c in demo_store.cameras}
    for f in frames[:3]:
        img = cv2.imdecode(np.frombuffer(f.jpeg, dtype=np.uint8), cv2.IMREAD_COLOR)
        assert img is not None
        w, h = cams[f.camera_id].resolution
        assert img.shape == (h, w, 3)
        assert f.boxes == []  # nobody has come in yet


def test_shopper_under_a_camera_gets_a_box_where_the_calibration_puts_them(plan: Plan, entry_cam: Camera) -> None:
    _, boxes = _frame(plan, entry_cam, STANDING_S)
    assert [b.shopper_id for b in boxes] == ["alice"]
    b = boxes[0]
    assert np.linalg.norm(_centre(b) - _alice_px(plan, entry_cam, STANDING_S)) < 25
    x1, y1, x2, y2 = b.box
    w, h = entry_cam.resolution
    assert 0 <= x1 < x2 <= w
    assert 0 <= y1 < y2 <= h
    assert b.visible_fraction == pytest.approx(1.0)
    assert 60 < x2 - x1 < 400  # a person, seen from 1.45 m above their head
    assert 60 < y2 - y1 < 400


def test_box_disappears_when_out_of_view(plan: Plan, entry_cam: Camera) -> None:
    assert _frame(plan, entry_cam, 0.5)[1] == []  # not in the store yet
    px = _alice_px(plan, entry_cam, AT_SHELF_S)
    w, h = entry_cam.resolution
    assert not (0 <= px[0] < w and 0 <= px[1] < h)
    assert _frame(plan, entry_cam, AT_SHELF_S)[1] == []


def test_person_changes_the_image_inside_their_box(plan: Plan, entry_cam: Camera) -> None:
    empty, _ = _frame(plan, entry_cam, 0.5)
    img, boxes = _frame(plan, entry_cam, STANDING_S)
    x1, y1, x2, y2 = (round(v) for v in boxes[0].box)
    diff = np.abs(img.astype(float) - empty.astype(float)).mean(axis=2)
    inside = diff[y1:y2, x1:x2].mean()
    outside = np.ones(diff.shape, dtype=bool)
    outside[max(y1 - 40, 0) : y2 + 40, max(x1 - 40, 0) : x2 + 40] = False
    elsewhere = diff[outside].mean()  # only lighting jitter and noise
    assert inside > 12
    assert inside > 3 * elsewhere


def test_rendering_is_deterministic(demo_store: StoreLayout, plan: Plan, entry_cam: Camera) -> None:
    first = [f.jpeg for f in render_frames(plan, 0.5, fps=2.0)]
    again = [f.jpeg for f in render_frames(plan, 0.5, fps=2.0)]
    assert first == again
    other_plan = build_plan(demo_store, _scenario(demo_store))  # nothing cached
    a = encode_jpeg(_frame(plan, entry_cam, STANDING_S)[0])
    b = encode_jpeg(_frame(other_plan, entry_cam, STANDING_S)[0])
    assert a == b


def test_lens_distortion_is_honoured(plan: Plan, entry_cam: Camera) -> None:
    """An off-centre camera with barrel distortion: the box still surrounds the projected person."""
    x, y = plan.shoppers[0].trajectory.at(STANDING_S)
    k = entry_cam.intrinsics
    cam = entry_cam.model_copy(
        update={
            "id": "cam-test-distorted",
            "intrinsics": Intrinsics(fx=k.fx, fy=k.fy, cx=k.cx, cy=k.cy, distortion=(-0.25, 0.05, 0.001, -0.001, 0.0)),
            "extrinsics": look_down_extrinsics((x + 1.2, y + 0.6, 3.2), yaw_rad=0.3),
        }
    )
    _, boxes = _frame(plan, cam, STANDING_S)
    assert [b.shopper_id for b in boxes] == ["alice"]
    expected = _alice_px(plan, cam, STANDING_S)
    undistorted = _alice_px(plan, cam.model_copy(update={"intrinsics": entry_cam.intrinsics}), STANDING_S)
    assert np.linalg.norm(expected - undistorted) > 20  # the lens moves the person...
    assert np.linalg.norm(_centre(boxes[0]) - expected) < 25  # ...and the box goes with them
