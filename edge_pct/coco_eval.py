"""COCO OKS-AP scoring with pycocotools (keypoints as detections), shared by every evaluation command."""

from __future__ import annotations

import contextlib
import io
import json
from pathlib import Path

import numpy as np

from edge_pct.errors import InputFileError


def keypoint_results(image_ids: np.ndarray, keypoints: np.ndarray, joint_scores: np.ndarray,
                     scores: np.ndarray) -> list[dict]:
    """COCO results list from keypoints (N, 17, 2) image px, joint_scores (N, 17) and instance scores (N,)."""
    kp = np.concatenate([keypoints, joint_scores[..., None]], axis=-1).reshape(len(keypoints), -1)
    return [{"image_id": int(i), "category_id": 1, "keypoints": [round(float(v), 3) for v in row], "score": float(s)}
            for i, row, s in zip(image_ids, kp, scores, strict=True)]


def oks_ap(ann_path: str | Path, results: list[dict]) -> dict[str, float]:
    """OKS-AP of `results` against the ground truth json (pycocotools COCOeval, iouType 'keypoints').

    Returns ap (0.50:0.95), ap50, ap75, ap_medium, ap_large, ar.
    """
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    if not results:
        raise InputFileError(f"No persons with labeled keypoints to score in '{ann_path}'")
    with contextlib.redirect_stdout(io.StringIO()):
        try:
            gt = COCO(str(ann_path))
        except (json.JSONDecodeError, KeyError) as e:
            raise InputFileError(f"'{ann_path}' is not a COCO keypoints json ({e})") from e
        dt = gt.loadRes([dict(r) for r in results])  # loadRes adds keys to the dicts: leave the caller's alone
        ev = COCOeval(gt, dt, "keypoints")
        ev.params.imgIds = sorted({r["image_id"] for r in results})
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    s = ev.stats
    return {"ap": float(s[0]), "ap50": float(s[1]), "ap75": float(s[2]), "ap_medium": float(s[3]),
            "ap_large": float(s[4]), "ar": float(s[5])}
