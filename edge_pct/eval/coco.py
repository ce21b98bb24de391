"""COCO OKS-AP scoring with pycocotools (keypoints as detections), shared by every evaluation command."""

from __future__ import annotations

import contextlib
import functools
import io
import json
from pathlib import Path

import numpy as np

from edge_pct.core.errors import InputFileError


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
    from pycocotools.cocoeval import COCOeval

    if not results:
        raise InputFileError(f"No persons with labeled keypoints to score in '{ann_path}'")
    broken = sum(not np.isfinite([*r["keypoints"], r["score"]]).all() for r in results)
    if broken:  # pycocotools compares OKS with `<`, so a NaN OKS matches: NaN poses would score AP 1.0
        raise InputFileError(f"{broken} of {len(results)} results have NaN/inf keypoints or scores: the model that "
                             "made them is broken (re-train or re-export it)")
    try:
        stat = Path(ann_path).stat()
    except OSError as e:
        raise InputFileError(f"Cannot read '{ann_path}' ({e}): pass a COCO keypoints json") from e
    gt = _ground_truth(str(Path(ann_path).resolve()), stat.st_mtime_ns, stat.st_size)
    with contextlib.redirect_stdout(io.StringIO()):
        dt = gt.loadRes([dict(r) for r in results])  # loadRes adds keys to the dicts: leave the caller's alone
        ev = COCOeval(gt, dt, "keypoints")
        ev.params.imgIds = sorted({r["image_id"] for r in results})
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    s = ev.stats
    return {"ap": float(s[0]), "ap50": float(s[1]), "ap75": float(s[2]), "ap_medium": float(s[3]),
            "ap_large": float(s[4]), "ar": float(s[5])}


@functools.lru_cache(maxsize=4)
def _ground_truth(path: str, mtime_ns: int, size: int):
    """The parsed ground truth, kept while the file is unchanged (mtime and size are part of the key): scoring
    many result subsets against one json (benchmarks/coco_ap_stability.py) parses it once. COCOeval only sets
    idempotent `ignore` flags on it, so sharing is safe."""
    from pycocotools.coco import COCO

    with contextlib.redirect_stdout(io.StringIO()):
        try:
            return COCO(path)
        except (json.JSONDecodeError, KeyError) as e:
            raise InputFileError(f"'{path}' is not a COCO keypoints json ({e})") from e
