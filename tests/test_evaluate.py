"""Top-down evaluation: the crop path agrees with the point transforms, flip-test symmetry and fusion, PCK by hand,
the LSP reader, and a full COCO evaluation through the command line on a synthetic image."""

from __future__ import annotations

import dataclasses
import json

import cv2
import numpy as np
import pytest
import torch

from conftest import SHARED_DATA, require_data, write_one_person_coco
from edge_pct.core.errors import InputFileError
from edge_pct.core.geometry import apply_affine, invert_affine, warp_crops
from edge_pct.data.transforms import PoseAugment, crop_joints, flip_joints, sample_crop_params
from edge_pct.eval.evaluate import Estimator, pck, pck_hits, predict_persons, torch_estimator


def test_image_warp_and_point_transform_agree():
    """A bright dot lands in the crop where apply_affine puts its coordinates (same path for image and joints)."""
    image = np.zeros((240, 320, 3), np.uint8)
    x, y = 201, 97
    image[y - 1:y + 2, x - 1:x + 2] = 255
    params = sample_crop_params(np.array([[150, 40, 100, 150]]), np.zeros((1, 17, 3)),
                                PoseAugment(rot_prob=1.0, rot_sigma=20.0), 0.75, 1.25, np.random.default_rng(3))
    mats = params.affine((96, 128))
    crop = warp_crops(image, mats, (96, 128))[0].astype(float).sum(-1)
    cy, cx = np.unravel_index(crop.argmax(), crop.shape)
    expected = apply_affine(np.array([[[x, y]]], float), mats)[0, 0]
    assert np.hypot(cx - expected[0], cy - expected[1]) <= 1.0
    # and the flip convention of the image (cv2 / [:, ::-1]) matches flip_joints
    flipped = crop[:, ::-1]
    fy, fx = np.unravel_index(flipped.argmax(), flipped.shape)
    fj = flip_joints(np.array([[[expected[0], expected[1]]] * 17]), 96)[0, 0]
    assert np.hypot(fx - fj[0], fy - fj[1]) <= 1.0


def test_crop_and_inverse_crop_round_trip_is_exact():
    rng = np.random.default_rng(0)
    kpts = np.concatenate([rng.uniform(0, 300, (4, 17, 2)), np.full((4, 17, 1), 2.0)], -1).astype(np.float32)
    params = sample_crop_params(rng.uniform(10, 100, (4, 4)), kpts, PoseAugment(0.0, 1.0, 30, 0.3, 1.0, 0.2), 0.75,
                                1.25, rng)
    crop = crop_joints(kpts, params, (192, 256))
    back = apply_affine(crop[..., :2], invert_affine(params.affine((192, 256))))
    np.testing.assert_allclose(back, kpts[..., :2], atol=2e-3)


def test_flip_test_is_mirror_symmetric():
    from test_classifier import TINY

    from conftest import tiny_tokenizer_config
    from edge_pct.models.classifier import PoseClassifier
    from edge_pct.models.tokenizer import PoseTokenizer

    torch.manual_seed(0)
    tok = PoseTokenizer(dataclasses.replace(tiny_tokenizer_config(), input_size=(96, 128)))
    est = torch_estimator(PoseClassifier(TINY, tok.eval()), flip=True)
    crops = np.random.default_rng(0).integers(0, 255, (2, 64, 48, 3), dtype=np.uint8)
    a = est.run(crops)
    b = est.run(crops[:, :, ::-1].copy())
    mirrored = flip_joints(np.concatenate([a["joints"], a["confidence"][..., None]], -1), 48)
    np.testing.assert_allclose(b["joints"], mirrored[..., :2], atol=1e-3)
    np.testing.assert_allclose(b["confidence"], mirrored[..., 2], atol=1e-5)


def test_fuse_flip_averages_agreeing_joints_and_keeps_the_surer_of_two_that_disagree():
    from edge_pct.eval.evaluate import fuse_flip

    plain = np.array([[[10.0, 10.0], [50.0, 20.0], [5.0, 5.0]]])
    mirrored = np.array([[[12.0, 10.0], [20.0, 20.0], [40.0, 5.0]]])  # joints 1 and 2: 30 and 35 px apart
    conf, conf_m = np.array([[0.9, 0.8, 0.3]]), np.array([[0.5, 0.4, 0.7]])
    joints, scores = fuse_flip(plain, conf, mirrored, conf_m, agree_px=4.0)
    np.testing.assert_allclose(joints[0], [[11.0, 10.0], [50.0, 20.0], [40.0, 5.0]])  # mean, plain, mirrored
    np.testing.assert_allclose(scores[0], [0.9, 0.8, 0.7])
    joints, _ = fuse_flip(plain, conf, mirrored, conf_m, agree_px=np.inf)  # the plain average
    np.testing.assert_allclose(joints, (plain + mirrored) / 2)


def test_pck_by_hand():
    gt = np.zeros((1, 17, 3), np.float32)
    gt[0, :, 2] = 2
    gt[0, :, 0] = np.arange(17) * 10.0
    gt[0, 5, :2], gt[0, 12, :2] = (0, 0), (30, 40)  # torso 50 px -> threshold 10 px
    pred = gt[..., :2].copy()
    pred[0, 6, 0] += 9.0  # inside
    pred[0, 7, 0] += 11.0  # outside
    pred[0, 8, 1] -= 30.0  # outside
    res = pck(pred, gt)
    assert res["pck"] == pytest.approx(10 / 12) and res["persons"] == 1
    assert res["pck_per_joint"][7] == 0.0 and res["pck_per_joint"][6] == 1.0
    # per person and joint (what the peer bootstrap resamples); a person without a torso joint is not scored
    no_torso = gt.copy()
    no_torso[0, 12, 2] = 0
    hit, lab = pck_hits(np.concatenate([pred, pred]), np.concatenate([gt, no_torso]))
    assert hit.shape == lab.shape == (1, 12) and lab.all() and hit.sum() == 10 and not hit[0, [2, 3]].any()


def test_lsp_reader_splits_and_maps():
    from edge_pct.data.lsp import load_lsp

    root = require_data(SHARED_DATA / "lspet")
    held = load_lsp(root, "heldout")
    assert len(held) > 900 and held.image_ids.min() >= 9001
    assert (held.keypoints[:, :5, 2] == 0).all()  # no face labels in LSP (and never pseudo-labels when held out)
    train = load_lsp(root, "train", face_pseudo=True)
    assert train.image_ids.max() < 9001 and (train.keypoints[:, :5, 2] > 0).any()
    raw = np.load(root / "joints.npz")
    row = int(np.nonzero(raw["files"] == "im00001.jpg")[0][0])
    np.testing.assert_allclose(train.keypoints[0, 16, :2], raw["joints"][row, 0, :2])  # right ankle


def test_predict_persons_returns_image_coordinates(tmp_path):
    """An estimator that answers the crop centre puts every joint at the box centre in the image."""
    image = np.full((100, 120, 3), 128, np.uint8)
    path = tmp_path / "a.jpg"
    cv2.imwrite(str(path), image)
    from edge_pct.data.persons import PersonSet

    persons = PersonSet(np.zeros((1, 17, 3), np.float32), np.array([[20, 10, 40, 60]], np.float32),
                        np.array([1]), np.array([1.0]), [str(path)])
    est = Estimator("centre", (48, 64), lambda c: {"joints": np.full((len(c), 17, 2), [24.0, 32.0], np.float32),
                                                    "confidence": np.ones((len(c), 17), np.float32)})
    joints, scores, ms, occluded = predict_persons(est, persons)
    np.testing.assert_allclose(joints[0], np.tile([40.0, 40.0], (17, 1)), atol=1e-3)
    assert ms >= 0 and scores.shape == (1, 17) and not occluded.any()
    nan = Estimator("diverged", (48, 64), lambda c: {"joints": np.full((len(c), 17, 2), np.nan, np.float32),
                                                     "confidence": np.ones((len(c), 17), np.float32)})
    with pytest.raises(InputFileError, match="'diverged' returned NaN/inf joints"):
        predict_persons(nan, persons)


def test_occlusion_covers_the_asked_share_of_the_box_the_same_for_every_estimator(tmp_path):
    """The occluder lands inside the person box, covers 20-40% of it, marks the joints under it, and is the same
    pixels for two estimators (seeded per person)."""
    from edge_pct.data.persons import PersonSet

    image = np.full((200, 200, 3), 128, np.uint8)
    path = tmp_path / "a.png"
    cv2.imwrite(str(path), image)
    ys, xs = np.meshgrid(np.linspace(45, 150, 5), np.linspace(55, 140, 4), indexing="ij")
    kpts = np.zeros((1, 17, 3), np.float32)
    kpts[0, :, 0], kpts[0, :, 1], kpts[0, :, 2] = xs.ravel()[:17], ys.ravel()[:17], 2
    persons = PersonSet(kpts, np.array([[50, 40, 100, 120]], np.float32), np.array([1]), np.array([1.0]), [str(path)])
    seen = []

    def run(crops):
        seen.append(crops.copy())
        n = len(crops)
        return {"joints": np.zeros((n, 17, 2), np.float32), "confidence": np.ones((n, 17), np.float32)}

    est = Estimator("probe", (96, 128), run)
    *_, occluded = predict_persons(est, persons, occlusion=(0.2, 0.4))
    predict_persons(est, persons, occlusion=(0.2, 0.4))
    np.testing.assert_array_equal(seen[0], seen[1])
    changed = (seen[0][0] != 128).any(-1).mean()  # share of the crop covered
    region_area = 125 * (125 / 0.75)  # the 100x120 box widened to the crop aspect 0.75, then padded 1.25
    box_share = changed * region_area / (100 * 120)
    assert 0.2 * 0.9 <= box_share <= 0.4 * 1.1
    assert occluded.any() and not occluded.all()


def test_eval_command_on_a_synthetic_coco_set(tmp_path, capsys):
    from test_classifier import TINY

    from conftest import tiny_tokenizer_config
    from edge_pct.cli import main
    from edge_pct.models.classifier import PoseClassifier
    from edge_pct.models.tokenizer import PoseTokenizer
    from edge_pct.train.checkpoint import save_checkpoint
    from edge_pct.train.classifier import _ckpt_config

    write_one_person_coco(tmp_path, np.full((100, 100, 3), 90, np.uint8))
    tcfg = dataclasses.replace(tiny_tokenizer_config(), input_size=(96, 128))
    model = PoseClassifier(TINY, PoseTokenizer(tcfg).eval()).eval()
    ckpt = save_checkpoint(tmp_path / "m.pt", "classifier", _ckpt_config(model), model)
    assert main(["eval", "--model", str(ckpt), "--coco-ann", str(tmp_path / "ann.json"), "--images", str(tmp_path),
                 "--flip", "--json", str(tmp_path / "r.json")]) == 0
    res = json.loads((tmp_path / "r.json").read_text())
    assert res["persons"] == 1 and 0 <= res["ap"] <= 1 and res["backend"] == "torch" and res["flip"]
    assert main(["eval", "--model", str(tmp_path / "missing.pt"), "--coco-ann", str(tmp_path / "ann.json"),
                 "--images", str(tmp_path)]) == 2
    assert main(["eval", "--model", str(ckpt), "--coco-ann", str(tmp_path / "ann.json"),
                 "--images", str(tmp_path / "nope")]) == 2
    capsys.readouterr()
