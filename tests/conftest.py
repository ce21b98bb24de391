"""Shared fixtures: tiny configs and the path of the real data (tests using it skip when it is absent)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"
COCO_VAL = SHARED_DATA / "coco" / "person_keypoints_val2017.json"
COCO_TRAIN_POSES = SHARED_DATA / "coco" / "person_keypoints_train2017.npz"
YOLOX_NANO = SHARED_DATA / "models" / "yolox_nano.onnx"


def require_data(path: Path) -> Path:
    if not path.exists():
        pytest.skip(f"real data not present: {path} (the ../shared/data folder of the dev machines)")
    return path


def tiny_tokenizer_config():
    """A tokenizer small enough to train in a test: 8 tokens over 64 codes, 2 thin encoder layers."""
    from edge_pct.config import TokenizerConfig

    return TokenizerConfig(num_tokens=8, codebook_size=64, token_dim=32, enc_dim=32, enc_channel_hidden=32,
                           enc_token_hidden=16, enc_layers=2, dec_dim=16, dec_channel_hidden=16, dec_token_hidden=16)


@pytest.fixture
def tiny_tokenizer_cfg():
    return tiny_tokenizer_config()


def write_one_person_coco(folder: Path, image: np.ndarray) -> Path:
    """A COCO keypoints set in `folder`: image `1.jpg` (100x100) with one 17-joint person; returns the json path."""
    import cv2

    cv2.imwrite(str(folder / "1.jpg"), image)
    kp = np.stack([np.linspace(30, 60, 17), np.linspace(20, 80, 17), np.full(17, 2.0)], 1)
    ann = {"images": [{"id": 1, "file_name": "1.jpg", "width": 100, "height": 100}],
           "annotations": [{"id": 1, "image_id": 1, "category_id": 1, "iscrowd": 0, "bbox": [30, 20, 30, 60],
                            "area": 900.0, "num_keypoints": 17, "keypoints": kp.ravel().tolist()}],
           "categories": [{"id": 1, "name": "person"}]}
    path = folder / "ann.json"
    path.write_text(json.dumps(ann))
    return path
