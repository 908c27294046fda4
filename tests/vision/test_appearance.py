"""Looks from image boxes: the same clothes alike under another exposure, other clothes not."""

from __future__ import annotations

import numpy as np

from store_edge.vision.appearance import appearance_embedding, cosine


def _person(shirt_bgr: tuple[int, int, int], gain: float = 1.0) -> np.ndarray:
    """A grey tiled floor with a person seen from above: a shirt with a dark head in the middle."""
    img = np.full((120, 160, 3), 150, dtype=np.uint8)
    img[::20, :] = 120
    img[:, ::20] = 120
    img[40:90, 60:100] = shirt_bgr
    img[55:75, 72:88] = (40, 40, 50)
    return np.asarray(np.clip(img.astype(float) * gain, 0, 255), dtype=np.uint8)


def test_same_clothes_are_alike_and_other_clothes_are_not() -> None:
    box = (50.0, 30.0, 110.0, 100.0)
    red = appearance_embedding(_person((30, 30, 200)), box)
    red_darker = appearance_embedding(_person((30, 30, 200), gain=0.8), box)
    green = appearance_embedding(_person((40, 180, 40)), box)
    assert red is not None
    assert red_darker is not None
    assert green is not None
    assert abs(float(np.linalg.norm(red)) - 1.0) < 1e-6
    assert cosine(red, red_darker) > 0.9
    assert cosine(red, green) < 0.6


def test_a_box_too_small_or_outside_the_image_has_no_look() -> None:
    img = _person((30, 30, 200))
    assert appearance_embedding(img, (10.0, 10.0, 16.0, 16.0)) is None
    assert appearance_embedding(img, (200.0, 200.0, 260.0, 260.0)) is None
