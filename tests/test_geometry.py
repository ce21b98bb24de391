"""Crop geometry, pose augmentation and the keypoint tables."""

from __future__ import annotations

import numpy as np

from edge_pct.core.geometry import apply_affine, box_to_center_size, crop_affine, invert_affine
from edge_pct.core.keypoints import COCO17_NAMES, FLIP_INDEX, LSP14_NAMES, LSP14_TO_COCO17, SKELETON
from edge_pct.data.transforms import PoseAugment, crop_joints, flip_joints, sample_crop_params


def test_box_to_center_size_keeps_aspect_and_padding():
    center, size = box_to_center_size(np.array([[10, 20, 30, 100], [0, 0, 200, 50]]), aspect=0.75, padding=1.25)
    np.testing.assert_allclose(center, [[25, 70], [100, 25]])
    np.testing.assert_allclose(size[:, 0] / size[:, 1], 0.75, rtol=1e-6)
    np.testing.assert_allclose(size, [[75 * 1.25, 100 * 1.25], [250, 200 / 0.75 * 1.25]], rtol=1e-6)


def test_affine_maps_box_onto_crop_and_inverts():
    center, size = np.array([[50.0, 80.0]]), np.array([[60.0, 80.0]])
    m = crop_affine(center, size, 0.0, (192, 256))
    corners = np.array([[[20.0, 40.0], [80.0, 120.0], [50.0, 80.0]]])
    np.testing.assert_allclose(apply_affine(corners, m), [[[0, 0], [192, 256], [96, 128]]], atol=1e-4)
    rng = np.random.default_rng(0)
    pts = rng.uniform(0, 300, (3, 17, 2))
    mats = crop_affine(rng.uniform(0, 300, (3, 2)), rng.uniform(20, 200, (3, 2)), rng.uniform(-90, 90, 3), (192, 256))
    np.testing.assert_allclose(apply_affine(apply_affine(pts, mats), invert_affine(mats)), pts, atol=1e-3)


def test_rotation_turns_the_person_counter_clockwise():
    m = crop_affine(np.array([[0.0, 0.0]]), np.array([[100.0, 100.0]]), 90.0, (100, 100))
    # a point above the centre (image y-down) ends up left of the crop centre: counter-clockwise
    np.testing.assert_allclose(apply_affine(np.array([[[0.0, -10.0]]]), m), [[[40.0, 50.0]]], atol=1e-4)


def test_flip_twice_is_identity_and_swaps_sides():
    j = np.random.default_rng(0).uniform(0, 192, (2, 17, 3))
    np.testing.assert_allclose(flip_joints(flip_joints(j, 192), 192), j)
    f = flip_joints(j, 192)
    np.testing.assert_allclose(f[:, 5, 0], 191 - j[:, 6, 0])  # left shoulder <- mirrored right shoulder


def test_plain_crop_params_are_deterministic_and_augmented_ones_vary():
    boxes = np.array([[10, 20, 60, 120]] * 50, dtype=np.float32)
    kpts = np.zeros((50, 17, 3), np.float32)
    rng = np.random.default_rng(0)
    plain = sample_crop_params(boxes, kpts, PoseAugment(), 0.75, 1.25, rng)
    assert np.ptp(plain.size, axis=0).max() == 0 and not plain.flip.any() and not plain.rotation.any()
    aug = sample_crop_params(boxes, kpts, PoseAugment(0.5, 1.0, 30, 0.25, 1.0, 0.16, 0.0), 0.75, 1.25, rng)
    assert aug.flip.any() and (~aug.flip).any() and np.abs(aug.rotation).max() > 1
    assert np.ptp(aug.size[:, 0]) > 0 and np.ptp(aug.center[:, 0]) > 0


def test_crop_joints_keeps_visibility():
    kpts = np.zeros((1, 17, 3), np.float32)
    kpts[0, :, :2] = 50
    kpts[0, 3, 2] = 2
    params = sample_crop_params(np.array([[0, 0, 100, 100]]), kpts, PoseAugment(), 0.75, 1.0, np.random.default_rng())
    out = crop_joints(kpts, params, (192, 256))
    assert out[0, 3, 2] == 2 and out[0, 4, 2] == 0
    np.testing.assert_allclose(out[0, 3, :2], [96, 128], atol=1e-4)


def test_keypoint_tables():
    assert len(COCO17_NAMES) == 17 and len(FLIP_INDEX) == 17
    assert all(FLIP_INDEX[FLIP_INDEX[j]] == j for j in range(17))
    assert all(0 <= a < 17 and 0 <= b < 17 for a, b in SKELETON)
    for lsp, coco in LSP14_TO_COCO17.items():
        assert LSP14_NAMES[lsp] == COCO17_NAMES[coco]
    assert len(set(LSP14_TO_COCO17.values())) == 12
