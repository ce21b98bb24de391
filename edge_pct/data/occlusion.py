"""Synthetic occluders: random rectangles of noise or flat color pasted over a person.

Training pastes them on crops (`edge_pct.data.topdown`, occlusion augmentation); evaluation pastes one over
20-40% of each person's box in the image before cropping (`edge-pct eval --occlude`), so every estimator sees
the same occluded pixels and the joints under the rectangle are scored separately.
"""

from __future__ import annotations

import numpy as np


def sample_rect(rng: np.random.Generator, region_xywh: np.ndarray, area_fraction: float,
                aspect_range: tuple[float, float] = (0.4, 2.5)) -> tuple[int, int, int, int]:
    """A rectangle (x0, y0, w, h) int px of `area_fraction` of the region's area, random aspect and position,
    inside the region (x, y, w, h px)."""
    x, y, w, h = (float(v) for v in region_xywh)
    area = area_fraction * w * h
    aspect = rng.uniform(*aspect_range)
    ow, oh = min(w, np.sqrt(area * aspect)), min(h, np.sqrt(area / aspect))
    x0 = x + rng.uniform(0, max(w - ow, 0))
    y0 = y + rng.uniform(0, max(h - oh, 0))
    return int(round(x0)), int(round(y0)), max(int(round(ow)), 1), max(int(round(oh)), 1)


def paste_rect(rng: np.random.Generator, image: np.ndarray, rect: tuple[int, int, int, int]) -> None:
    """Fill rect (x0, y0, w, h) of image (H, W, 3) uint8 in place: uniform noise or one random color, half each."""
    x0, y0, w, h = rect
    x1, y1 = min(x0 + w, image.shape[1]), min(y0 + h, image.shape[0])
    x0, y0 = max(x0, 0), max(y0, 0)
    if x1 <= x0 or y1 <= y0:
        return
    if rng.random() < 0.5:
        image[y0:y1, x0:x1] = rng.integers(0, 256, (y1 - y0, x1 - x0, 3), dtype=np.uint8)
    else:
        image[y0:y1, x0:x1] = rng.integers(0, 256, 3, dtype=np.uint8)


def inside_rect(points: np.ndarray, rect: tuple[int, int, int, int]) -> np.ndarray:
    """Which points (..., 2) px lie in rect (x0, y0, w, h); bool (...)."""
    x0, y0, w, h = rect
    return (points[..., 0] >= x0) & (points[..., 0] < x0 + w) & (points[..., 1] >= y0) & (points[..., 1] < y0 + h)
