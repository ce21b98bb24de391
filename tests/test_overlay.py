"""Overlay drawing on synthetic black frames: filled vs hollow joints, nothing drawn off the skeleton, HUD placement."""

from __future__ import annotations

import numpy as np
import pytest

from edge_pct.core.keypoints import COCO17_NAMES, NUM_JOINTS
from edge_pct.stream.overlay import draw_hud, draw_poses

H, W = 240, 320


def _pose() -> tuple[np.ndarray, np.ndarray]:
    """One upright person in the left half of the image; the left wrist is low-confidence."""
    xy = {
        "nose": (80, 40), "left_eye": (85, 35), "right_eye": (75, 35), "left_ear": (92, 40), "right_ear": (68, 40),
        "left_shoulder": (100, 70), "right_shoulder": (60, 70), "left_elbow": (110, 100),
        "right_elbow": (50, 100), "left_wrist": (120, 130), "right_wrist": (40, 130), "left_hip": (95, 130),
        "right_hip": (65, 130), "left_knee": (97, 170), "right_knee": (63, 170), "left_ankle": (98, 210),
        "right_ankle": (62, 210),
    }  # fmt: skip
    joints = np.array([[xy[name] for name in COCO17_NAMES]], dtype=np.float32)
    confidence = np.full((1, NUM_JOINTS), 0.9, dtype=np.float32)
    confidence[0, COCO17_NAMES.index("left_wrist")] = 0.1
    return joints, confidence


def test_confident_joints_filled_low_confidence_hollow_nothing_far_away() -> None:
    joints, confidence = _pose()
    image = np.zeros((H, W, 3), np.uint8)
    out = draw_poses(image, joints, confidence, track_ids=[7])
    assert out is image
    drawn = image.any(axis=2)
    for j in range(NUM_JOINTS):
        x, y = joints[0, j].astype(int)
        if confidence[0, j] >= 0.3:
            assert drawn[y, x], COCO17_NAMES[j]
    wx, wy = joints[0, COCO17_NAMES.index("left_wrist")].astype(int)
    radius = max(2, round(min(H, W) / 160))
    assert not drawn[wy, wx]  # hollow centre
    ring = drawn[wy - radius - 1 : wy + radius + 2, wx - radius - 1 : wx + radius + 2]
    assert ring.sum() >= 4 * radius  # the outline is there
    assert not drawn[:, 180:].any()  # right half: far from the skeleton
    assert not drawn[230:, :].any()


def test_non_finite_joints_skipped_and_bad_shapes_rejected() -> None:
    joints, confidence = _pose()
    joints[0, :] = np.nan
    image = np.zeros((H, W, 3), np.uint8)
    draw_poses(image, joints, confidence, track_ids=[1])
    assert not image.any()
    draw_poses(image, np.zeros((0, NUM_JOINTS, 2)), np.zeros((0, NUM_JOINTS)))
    with pytest.raises(ValueError, match="Expected joints"):
        draw_poses(image, np.zeros((1, 14, 2)), np.zeros((1, 14)))


def test_draw_hud_changes_only_top_left() -> None:
    image = np.full((H, W, 3), 128, np.uint8)
    draw_hud(image, ["12.3 FPS", "pose 4.1 ms", "persons 1", "backend tensorrt"])
    changed = (image != 128).any(axis=2)
    ys, xs = np.nonzero(changed)
    assert len(ys) > 0
    assert ys.max() < H // 2 and xs.max() < W // 2
    assert image[5:15, 5:15].mean() < 128  # the box darkens the frame
