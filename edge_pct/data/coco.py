"""COCO person keypoints: the compact train poses `.npz` and COCO-format annotation `.json` files.

Both load into a `PersonSet` without image paths (image pixels + COCO visibility). Persons without a labeled joint
are dropped.
"""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import numpy as np

from edge_pct.core.errors import InputFileError
from edge_pct.data.persons import PersonSet


def _labelled(persons: PersonSet, path: Path) -> PersonSet:
    """`persons`, or an InputFileError when there is none (nothing to train on or score)."""
    if not len(persons):
        raise InputFileError(f"'{path}' has no person with a labelled joint: pass COCO person keypoint annotations")
    return persons


def _check_shapes(kpts: np.ndarray, boxes: np.ndarray, path: Path) -> None:
    if kpts.ndim != 3 or kpts.shape[1:] != (17, 3) or boxes.shape != (len(kpts), 4):
        raise InputFileError(f"'{path}' holds keypoints {kpts.shape} / boxes {boxes.shape}; "
                             "expected (N, 17, 3) and (N, 4) COCO-17 persons")


def load_coco_json(path: str | Path) -> PersonSet:
    """Read the person annotations of a COCO keypoints json (non-crowd, at least one labeled joint)."""
    p = Path(path)
    if not p.is_file():
        raise InputFileError(f"Annotation file '{p}' not found: pass a COCO person_keypoints json")
    try:
        data = json.loads(p.read_text())
        anns = [a for a in data["annotations"] if not a.get("iscrowd", 0) and a.get("num_keypoints", 1) > 0]
        kpts = np.array([a["keypoints"] for a in anns], dtype=np.float32).reshape(-1, 17, 3)
        boxes = np.array([a["bbox"] for a in anns], dtype=np.float32).reshape(-1, 4)
        image_ids = np.array([a["image_id"] for a in anns], dtype=np.int64)
        ann_ids = np.array([a.get("id", -1) for a in anns], dtype=np.int64)
        areas = np.array([a.get("area", b[2] * b[3]) for a, b in zip(anns, boxes, strict=True)], dtype=np.float32)
    except (json.JSONDecodeError, UnicodeDecodeError, KeyError, TypeError, ValueError) as e:
        raise InputFileError(f"'{p}' is not a COCO keypoints json ({type(e).__name__}: {e})") from e
    _check_shapes(kpts, boxes, p)
    keep = (kpts[:, :, 2] > 0).any(1)
    return _labelled(PersonSet(kpts, boxes, image_ids, areas, ann_ids=ann_ids).subset(np.nonzero(keep)[0]), p)


def load_pose_npz(path: str | Path) -> PersonSet:
    """Read the compact poses file (`keypoints (N,17,3)`, `bbox_xywh (N,4)`, `image_id (N,)`)."""
    p = Path(path)
    if not p.is_file():
        raise InputFileError(f"Poses file '{p}' not found: pass person_keypoints_train2017.npz or a COCO json")
    try:
        with np.load(p) as d:
            kpts = d["keypoints"].astype(np.float32)
            boxes = d["bbox_xywh"].astype(np.float32)
            image_ids = d["image_id"].astype(np.int64) if "image_id" in d.files else np.full(len(kpts), -1)
    except (OSError, ValueError, KeyError, zipfile.BadZipFile, EOFError) as e:
        raise InputFileError(f"'{p}' is not a readable poses .npz with keypoints and bbox_xywh ({e})") from e
    _check_shapes(kpts, boxes, p)
    keep = (kpts[:, :, 2] > 0).any(1)
    return _labelled(PersonSet(kpts, boxes, image_ids, boxes[:, 2] * boxes[:, 3]).subset(np.nonzero(keep)[0]), p)


def load_poses(path: str | Path) -> PersonSet:
    """Poses from a `.npz` or a COCO `.json`, chosen by suffix."""
    return load_coco_json(path) if str(path).endswith(".json") else load_pose_npz(path)
