"""A person's look from their image box: a colour histogram, as a unit-length embedding.

Seen from the ceiling a person is mostly head, shoulders and shirt, and clothes differ between
shoppers far more than any one shopper's colours change between cameras. The embedding is a
hue x saturation histogram with a coarse brightness histogram of the box's middle (the box's rim is
mostly floor and shelf), square-rooted so that cosine similarity is the Bhattacharyya coefficient of
the two histograms. Brightness gets a small weight: exposure differs between cameras and frames.

Used by the store tracker (which camera track is which person) and published on `ShopperTrack`
(the fusion engine's swap repair compares looks). Pure: numpy and OpenCV's histogram, no I/O.
"""

from __future__ import annotations

import cv2
import numpy as np
from numpy.typing import NDArray

HUE_BINS = 12
SATURATION_BINS = 4
VALUE_BINS = 6
VALUE_WEIGHT = 0.3
INNER = 0.2
"""Share of the box's width and height left out on each side."""
MIN_PIXELS = 64
"""A crop smaller than this says too little about anybody."""

Embedding = tuple[float, ...]


def appearance_embedding(image: NDArray[np.uint8], box: tuple[float, float, float, float]) -> Embedding | None:
    """Embedding of the person in `box` (x1, y1, x2, y2 in `image`'s pixels, BGR image); None when the
    box's middle is too small or outside the image."""
    h_img, w_img = image.shape[:2]
    x1, y1, x2, y2 = box
    w, h = x2 - x1, y2 - y1
    c_x1, c_x2 = max(int(x1 + INNER * w), 0), min(int(x2 - INNER * w), w_img)
    c_y1, c_y2 = max(int(y1 + INNER * h), 0), min(int(y2 - INNER * h), h_img)
    if c_x2 <= c_x1 or c_y2 <= c_y1 or (c_x2 - c_x1) * (c_y2 - c_y1) < MIN_PIXELS:
        return None
    hsv = cv2.cvtColor(np.ascontiguousarray(image[c_y1:c_y2, c_x1:c_x2]), cv2.COLOR_BGR2HSV)
    hue_sat = cv2.calcHist([hsv], [0, 1], None, [HUE_BINS, SATURATION_BINS], [0, 180, 0, 256]).ravel()
    value = cv2.calcHist([hsv], [2], None, [VALUE_BINS], [0, 256]).ravel()
    total = float(hue_sat.sum())
    vec = np.sqrt(np.concatenate([hue_sat, value * VALUE_WEIGHT**2]) / total)
    norm = float(np.linalg.norm(vec))
    return tuple(float(v) for v in vec / norm) if norm > 0 else None


def cosine(a: Embedding, b: Embedding) -> float:
    """Similarity of two embeddings (both unit length, or running sums: normalised here)."""
    va, vb = np.asarray(a), np.asarray(b)
    na, nb = float(np.linalg.norm(va)), float(np.linalg.norm(vb))
    return float(va @ vb) / (na * nb) if na and nb else 0.0
