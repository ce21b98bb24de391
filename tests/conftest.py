"""Shared fixtures: tiny configs and the path of the real data (tests using it skip when it is absent)."""

from __future__ import annotations

from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"
COCO_VAL = SHARED_DATA / "coco" / "person_keypoints_val2017.json"
COCO_TRAIN_POSES = SHARED_DATA / "coco" / "person_keypoints_train2017.npz"


def require_data(path: Path) -> Path:
    if not path.exists():
        pytest.skip(f"real data not present: {path} (the ../shared/data folder of the dev machines)")
    return path


@pytest.fixture
def tiny_tokenizer_cfg():
    from edge_pct.config import TOKENIZER_VARIANTS

    return TOKENIZER_VARIANTS["pct-tiny"]
