"""Reconstruction scoring: OKS-AP against a hand-computed case, joint hiding, the k-NN baseline, and the
shipped tokenizer on real COCO val poses."""

from __future__ import annotations

import json

import numpy as np
import pytest

from conftest import COCO_VAL, require_data
from edge_pct.core.errors import InputFileError
from edge_pct.core.keypoints import OKS_SIGMAS
from edge_pct.data.coco import load_coco_json
from edge_pct.data.persons import PersonSet
from edge_pct.eval.coco import keypoint_results, oks_ap
from edge_pct.eval.knn_baseline import KnnPoseCompleter
from edge_pct.eval.tokenizer import hide_joints, score_completer, tokenizer_completer


def _one_person(tmp_path, area=4000.0):
    kp = np.stack([np.linspace(20, 80, 17), np.linspace(10, 150, 17), np.full(17, 2.0)], 1)
    ann = {"id": 7, "image_id": 3, "category_id": 1, "iscrowd": 0, "bbox": [20, 10, 60, 140], "area": area,
           "num_keypoints": 17, "keypoints": kp.ravel().tolist()}
    path = tmp_path / "gt.json"
    path.write_text(json.dumps({"images": [{"id": 3, "width": 200, "height": 200}], "annotations": [ann],
                                "categories": [{"id": 1, "name": "person"}]}))
    return path, kp


def test_oks_ap_matches_a_hand_computed_case(tmp_path):
    path, kp = _one_person(tmp_path)
    perfect = keypoint_results(np.array([3]), kp[None, :, :2], np.ones((1, 17)), np.ones(1))
    keys = set(perfect[0])
    assert oks_ap(path, perfect)["ap"] == pytest.approx(1.0)
    assert set(perfect[0]) == keys  # the caller's results are left as they were (pycocotools adds keys)
    # Shift every joint by d px: OKS = mean_j exp(-d^2 / (2 * area * (2 sigma_j)^2)) (COCO definition).
    d = 3.0
    k = 2 * np.array(OKS_SIGMAS)
    oks = np.mean(np.exp(-(d**2) / (2 * 4000.0 * k**2)))
    expected_ap = np.mean([oks >= t for t in np.linspace(0.5, 0.95, 10)])
    assert 0.2 < expected_ap < 1.0  # the case is informative
    shifted = keypoint_results(np.array([3]), kp[None, :, :2] + [d, 0], np.ones((1, 17)), np.ones(1))
    assert oks_ap(path, shifted)["ap"] == pytest.approx(expected_ap)
    # pycocotools would match a NaN pose (its OKS test is `<`) and score it AP 1.0: refused instead
    broken = keypoint_results(np.array([3]), np.full((1, 17, 2), np.nan), np.ones((1, 17)), np.ones(1))
    with pytest.raises(InputFileError, match="NaN/inf"):
        oks_ap(path, broken)


def test_hide_joints_hides_the_requested_share():
    labeled = np.ones((100, 17), bool)
    labeled[:, :5] = False
    vis = hide_joints(labeled, 0.5, seed=1)
    assert not (vis & ~labeled).any()
    assert ((labeled & ~vis).sum(1) == 6).all()  # round(0.5 * 12)
    assert (hide_joints(labeled, 0.0) == labeled).all()


def test_knn_fills_hidden_joints_from_the_nearest_pose():
    rng = np.random.default_rng(0)
    kp = np.concatenate([rng.uniform(0, 100, (5, 17, 2)), np.full((5, 17, 1), 2.0)], -1).astype(np.float32)
    boxes = np.tile(np.array([[0, 0, 100, 100]], np.float32), (5, 1))
    train = PersonSet(kp, boxes, np.arange(5), np.ones(5), ann_ids=np.arange(5))
    knn = KnnPoseCompleter(train, (192, 256))
    query = knn.joints[[2]] + 1.5  # pose 2, shifted
    vis = np.ones((1, 17), bool)
    vis[0, :4] = False
    out = knn(query, vis, np.ones((1, 17), bool))
    np.testing.assert_allclose(out[0, 4:], query[0, 4:])  # visible joints kept
    np.testing.assert_allclose(out[0, :4], knn.joints[2, :4] + 1.5, atol=1e-4)  # hidden ones from pose 2 + offset


def test_shipped_tokenizer_reconstructs_real_val_poses():
    from edge_pct.core.package import DEFAULT_TOKENIZER
    from edge_pct.eval.tokenizer import evaluate_tokenizer_model
    from edge_pct.models.weights import load_tokenizer

    ann = require_data(COCO_VAL)
    model = load_tokenizer(DEFAULT_TOKENIZER)
    poses = load_coco_json(ann)
    res = evaluate_tokenizer_model(model, ann, 0.0, poses=poses.subset(np.arange(600)))
    assert res["ap"] > 0.95, res  # 0.97 on all 6,352 val persons (README)
    assert res["codes_used"] > 0.2 * model.cfg.codebook_size
    complete, _ = tokenizer_completer(model)
    occluded = score_completer(complete, ann, model.cfg.input_size, 0.3, poses=poses.subset(np.arange(600)))
    assert occluded["hidden_err_px"] < 25


def test_flip_reconstruction_is_mirror_symmetric(tiny_tokenizer_cfg):
    """With flip averaging, reconstructing a mirrored pose gives the mirror of the reconstruction."""
    import torch

    from edge_pct.core.keypoints import FLIP_INDEX
    from edge_pct.data.transforms import flip_joints
    from edge_pct.models.tokenizer import PoseTokenizer

    torch.manual_seed(0)
    model = PoseTokenizer(tiny_tokenizer_cfg).eval()
    complete, _ = tokenizer_completer(model, flip=True)
    joints = np.random.default_rng(0).uniform(0, 192, (3, 17, 2)).astype(np.float32)
    vis = np.ones((3, 17), bool)
    vis[:, 3] = False
    a = complete(joints, vis)
    b = complete(flip_joints(joints, 192), vis[:, list(FLIP_INDEX)])
    np.testing.assert_allclose(b, flip_joints(a, 192), atol=1e-3)
