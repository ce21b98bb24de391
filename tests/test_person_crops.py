"""COCO person crops: the dev split is fixed, image-disjoint from training, and scores through a COCO json."""

from __future__ import annotations

import numpy as np
import pytest

from conftest import SHARED_DATA, require_data
from edge_pct.core.errors import InputFileError
from edge_pct.data.person_crops import DEV_PERSONS, load_person_crops, person_crops_coco

CROPS = SHARED_DATA / "coco" / "person_crops"


def _fake_crops(root, n_images: int = 700):
    """Persons of `n_images` images (1 or 2 each), a 2x crop scale, as annotations.npz + crops/."""
    (root / "crops").mkdir(parents=True)
    ids = np.repeat(np.arange(1, n_images + 1), 1 + np.arange(n_images) % 2)
    n = len(ids)
    kpts = np.zeros((n, 17, 3), np.float32)
    kpts[:, :, 2] = 2
    affine = np.tile(np.array([[2, 0, 5], [0, 2, 7]], np.float32), (n, 1, 1))
    np.savez(root / "annotations.npz", files=np.array([f"{i}_{k}.jpg" for k, i in enumerate(ids)]), image_id=ids,
             split=np.where(ids % 7 == 0, "train2017", "val2017"), keypoints=kpts,
             bbox_xywh=np.tile([1, 2, 30, 40], (n, 1)).astype(np.float32), area=np.full(n, 100.0, np.float32),
             crop_affine=affine)
    return root


def test_dev_split_is_fixed_image_disjoint_and_val_only(tmp_path):
    root = _fake_crops(tmp_path / "c")
    dev, train, every = (load_person_crops(root, s) for s in ("dev", "train", "all"))
    assert DEV_PERSONS <= len(dev) <= DEV_PERSONS + 1 and len(dev) + len(train) == len(every)
    assert not set(dev.image_ids.tolist()) & set(train.image_ids.tolist())
    assert all(i % 7 for i in dev.image_ids)  # val2017 images only
    assert load_person_crops(root, "dev").paths == dev.paths  # the same every time
    np.testing.assert_allclose(dev.areas, 400.0)  # source px^2 x the crop scale squared (2 x 2)
    coco = person_crops_coco(dev)
    assert len(coco["images"]) == len(coco["annotations"]) == len(dev)
    assert coco["annotations"][0]["num_keypoints"] == 17 and coco["images"][0]["file_name"].endswith(".jpg")


def test_bad_folders_and_splits_fail_in_one_line(tmp_path):
    with pytest.raises(InputFileError, match="person-crops index"):
        load_person_crops(tmp_path)
    with pytest.raises(InputFileError, match="Unknown person-crops split 'val'"):
        load_person_crops(_fake_crops(tmp_path / "c", 10), "val")


def test_the_real_crops_split_by_image():
    require_data(CROPS / "annotations.npz")
    dev, train = load_person_crops(CROPS, "dev"), load_person_crops(CROPS, "train")
    assert len(dev) >= DEV_PERSONS and len(dev) + len(train) == 2536
    assert not set(dev.image_ids.tolist()) & set(train.image_ids.tolist())
