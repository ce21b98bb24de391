"""Top-down crop augmentation shared by poses and images (docs/method.md §1.8, mmpose 0.29 semantics).

`sample_crop_params` draws, per person, a crop region (centre, size), a rotation and a flip; the same
parameters crop the pose (here) and the image (the image dataset), so both stay consistent.
Flip convention: in the crop, x -> (W - 1) - x and left/right joints swap (matches cv2.flip).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from edge_pct.config import PoseAugment
from edge_pct.core.geometry import apply_affine, box_to_center_size, crop_affine
from edge_pct.core.keypoints import FLIP_INDEX, LOWER_BODY, UPPER_BODY


@dataclass
class CropParams:
    """Per-person crop: centre (N, 2) and size (N, 2) in image pixels, rotation (N,) degrees, flip (N,) bool."""

    center: np.ndarray
    size: np.ndarray
    rotation: np.ndarray
    flip: np.ndarray

    def affine(self, input_size: tuple[int, int]) -> np.ndarray:
        """(N, 2, 3) image -> crop affine (the flip is applied afterwards, in the crop)."""
        return crop_affine(self.center, self.size, self.rotation, input_size)


def _half_body_box(joints: np.ndarray, rng: np.random.Generator) -> np.ndarray | None:
    """Box (4,) around the labeled upper or lower body of one person (17, 3), enlarged 1.5x; None if too few."""
    labeled = joints[:, 2] > 0
    upper = [j for j in UPPER_BODY if labeled[j]]
    lower = [j for j in LOWER_BODY if labeled[j]]
    part = upper if (rng.random() < 0.5 and len(upper) > 2) or len(lower) < 3 else lower
    if len(part) < 3:
        return None
    pts = joints[part, :2]
    lo, hi = pts.min(0), pts.max(0)
    centre, wh = (lo + hi) / 2, (hi - lo) * 1.5
    return np.array([*(centre - wh / 2), *wh], dtype=np.float32)


def sample_crop_params(boxes: np.ndarray, joints: np.ndarray, aug: PoseAugment, aspect: float, padding: float,
                       rng: np.random.Generator) -> CropParams:
    """Draw augmented crop parameters.

    Args:
        boxes: (N, 4) person boxes xywh, image pixels.
        joints: (N, 17, 3) image pixels + COCO visibility (0 unlabeled), used by the half-body transform.
        aug: strengths; PoseAugment() gives the plain evaluation crop.
        aspect, padding: crop width/height ratio and box enlargement.
    """
    boxes = np.asarray(boxes, dtype=np.float32).copy()
    n = len(boxes)
    if aug.half_body_prob > 0:
        for i in np.nonzero(((joints[:, :, 2] > 0).sum(1) > 8) & (rng.random(n) < aug.half_body_prob))[0]:
            box = _half_body_box(joints[i], rng)
            if box is not None:
                boxes[i] = box
    center, size = box_to_center_size(boxes, aspect, padding)
    shift = (rng.random(n) < aug.shift_prob)[:, None] * rng.uniform(-1, 1, (n, 2)) * aug.shift_factor * size
    scale = np.clip(rng.normal(1.0, aug.scale_sigma, n), 1 - aug.scale_sigma, 1 + aug.scale_sigma)
    rot = np.clip(rng.normal(0, aug.rot_sigma, n), -2 * aug.rot_sigma, 2 * aug.rot_sigma)
    rot = np.where(rng.random(n) < aug.rot_prob, rot, 0.0)
    flip = rng.random(n) < aug.flip_prob
    return CropParams(center + shift.astype(np.float32), size * scale[:, None].astype(np.float32), rot, flip)


def flip_joints(joints: np.ndarray, width: int) -> np.ndarray:
    """Mirror crop-frame joints (N, 17, C>=2): x -> (W - 1) - x, swap left/right joints."""
    out = joints[:, list(FLIP_INDEX)].copy()
    out[..., 0] = (width - 1) - out[..., 0]
    return out


def crop_joints(joints: np.ndarray, params: CropParams, input_size: tuple[int, int]) -> np.ndarray:
    """Image joints (N, 17, 3) -> crop joints (N, 17, 3): xy in crop pixels, visibility carried (and flipped)."""
    out = joints.astype(np.float32).copy()
    out[..., :2] = apply_affine(joints[..., :2], params.affine(input_size))
    if params.flip.any():
        out[params.flip] = flip_joints(out[params.flip], input_size[0])
    return out
