"""The poses the explorer looks at: real COCO persons in the tokenizer's crop frame, or one person posed by the image
model in a picture or a video frame.

Every pose is mapped to the tokenizer's crop (`tokenizer.cfg.input_size`) the way the tokenizer was evaluated: the
person's box widened to the crop's aspect ratio and padded by 1.25. The box size (its longer side, in crop px) is
the unit of the locality threshold.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edge_pct.core.errors import InputFileError
from edge_pct.core.geometry import apply_affine, box_to_center_size, crop_affine
from edge_pct.core.package import DEFAULT_MODEL

DATA_ENV = "EDGE_PCT_DATA"
COCO_VAL_NAME = "person_keypoints_val2017.json"
PADDING = 1.25


def default_coco_ann() -> Path:
    """The COCO val2017 person keypoints: `$EDGE_PCT_DATA/coco/...`, else `../shared/data/coco/...` beside the repo."""
    root = os.environ.get(DATA_ENV) or Path(__file__).resolve().parents[2].parent / "shared" / "data"
    return Path(root) / "coco" / COCO_VAL_NAME


@dataclass(frozen=True)
class CropPoses:
    """N poses in the tokenizer's crop frame.

    joints (N, 17, 2) float32 crop px; labeled (N, 17) bool; box_size (N,) float32 the longer side of the person's box
    in crop px; image_ids (N,) int64 (-1 for poses not from a dataset).
    """

    joints: np.ndarray
    labeled: np.ndarray
    box_size: np.ndarray
    image_ids: np.ndarray

    def __len__(self) -> int:
        return len(self.joints)


def crop_affines(boxes_xywh: np.ndarray, input_size: tuple[int, int]) -> np.ndarray:
    """Image -> tokenizer-crop affines (N, 2, 3) of person boxes (N, 4) xywh image px."""
    center, size = box_to_center_size(boxes_xywh, input_size[0] / input_size[1], PADDING)
    return crop_affine(center, size, 0.0, input_size)


def joint_boxes(joints: np.ndarray) -> np.ndarray:
    """Boxes (N, 4) xywh around each pose's joints (N, 17, 2), at least 1 px a side (for poses a model decoded)."""
    lo, hi = joints.min(1), joints.max(1)
    return np.concatenate([lo, np.maximum(hi - lo, 1.0)], 1).astype(np.float32)


def to_crop(joints: np.ndarray, labeled: np.ndarray, boxes_xywh: np.ndarray, input_size: tuple[int, int],
            image_ids: np.ndarray | None = None) -> CropPoses:
    """Image-px poses (N, 17, 2) with boxes (N, 4) xywh -> CropPoses in the `input_size` (w, h) crop."""
    mats = crop_affines(boxes_xywh, input_size)
    crop = apply_affine(joints, mats)
    box_size = np.asarray(boxes_xywh, np.float32)[:, 2:].max(1) * mats[:, 0, 0]
    ids = np.full(len(crop), -1, np.int64) if image_ids is None else np.asarray(image_ids, np.int64)
    return CropPoses(crop, np.asarray(labeled, bool), box_size.astype(np.float32), ids)


def real_poses(ann_path: str | Path, input_size: tuple[int, int], min_joints: int = 10) -> CropPoses:
    """The persons of a COCO keypoints json with at least `min_joints` labeled joints, in the crop frame."""
    from edge_pct.data.coco import load_coco_json

    path = Path(ann_path)
    if not path.is_file():
        raise InputFileError(f"COCO annotations '{path}' not found: pass --coco-ann PATH/{COCO_VAL_NAME} "
                             f"(or set ${DATA_ENV} to the folder holding coco/{COCO_VAL_NAME})")
    persons = load_coco_json(path)
    labeled = persons.keypoints[..., 2] > 0
    keep = np.nonzero(labeled.sum(1) >= min_joints)[0]
    if len(keep) < 2:
        raise InputFileError(f"'{path}' has {len(keep)} persons with >= {min_joints} labeled joints; the explorer "
                             "needs at least 2: lower --min-joints or pass a larger annotation file")
    p = persons.subset(keep)
    return to_crop(p.keypoints[..., :2], labeled[keep], p.boxes, input_size, p.image_ids)


def read_frame(path: str | Path, index: int = 0) -> np.ndarray:
    """Frame `index` of a video file, or the picture itself for an image file: (H, W, 3) uint8 BGR."""
    import cv2

    p = Path(path)
    if not p.is_file():
        raise InputFileError(f"'{p}' not found: pass an image or a video file")
    image = cv2.imread(str(p)) if index == 0 else None
    if image is not None:
        return image
    cap = cv2.VideoCapture(str(p))
    try:
        frames = int(cap.get(cv2.CAP_PROP_FRAME_COUNT))
        cap.set(cv2.CAP_PROP_POS_FRAMES, index)
        ok, image = cap.read()
    finally:
        cap.release()
    if not ok or image is None:
        raise InputFileError(f"Cannot read frame {index} of '{p}' ({frames} frames seen): pass an image, or a video "
                             "with --frame below its frame count")
    return image


def model_pose(image_bgr: np.ndarray, input_size: tuple[int, int], model: str | Path = DEFAULT_MODEL) -> CropPoses:
    """The largest person the image model (torch backend) finds in a picture, as one crop-frame pose; its box is
    the extent of its 17 decoded joints, all counted as labeled."""
    from edge_pct.api import PoseEstimator

    with PoseEstimator(model=str(model), backend="torch", smoothing=False) as estimator:
        persons = estimator(image_bgr)
    if not persons:
        raise InputFileError("The image model found no person in the picture: pass another --image / --video frame")
    areas = [(p.box[2] - p.box[0]) * (p.box[3] - p.box[1]) for p in persons]
    joints = persons[int(np.argmax(areas))].joints[None].astype(np.float32)
    return to_crop(joints, np.ones((1, joints.shape[1]), bool), joint_boxes(joints), input_size)
