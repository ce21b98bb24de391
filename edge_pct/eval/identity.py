"""Identity scoring of a tracker against a MOT Challenge ground truth: read / write MOT files and IDF1, id switches,
MOTA computed by the maintained `motmetrics` package (an optional extra, imported on use).

A MOT row is `frame, id, x, y, w, h, conf, -1, -1, -1` (frame 1-based, box top-left + size in image pixels); in
memory this module uses the first six columns as an (N, 6) float64 array [frame, id, x, y, w, h].
References: Milan et al., "MOT16: A Benchmark for Multi-Object Tracking", arXiv:1603.00831 (format, MOTA);
Ristani et al., "Performance Measures and a Data Set for Multi-Target, Multi-Camera Tracking", ECCV 2016 workshops
(IDF1); https://github.com/cheind/py-motmetrics.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from edge_pct.core.errors import InputFileError
from edge_pct.core.files import write_text_atomic
from edge_pct.core.optional import require

MOT_COLUMNS = ("frame", "id", "x", "y", "w", "h")
MOT_FIX = "write one line per box: frame,id,x,y,w,h[,conf,-1,-1,-1] (frame >= 1, w and h > 0, px)"


def _parse_line(line: str, path: Path, lineno: int) -> list[float]:
    """The six leading numbers of one MOT line, or an InputFileError naming the file, the line and the fix."""
    parts = [p.strip() for p in line.split(",")]
    try:
        vals = [float(p) for p in parts[:6]]
    except ValueError:
        vals = []
    if len(vals) < 6 or not np.isfinite(vals).all():
        raise InputFileError(f"MOT file '{path}' line {lineno} is malformed ('{line.strip()[:60]}'): {MOT_FIX}")
    frame, tid, _, _, w, h = vals
    if frame < 1 or frame != int(frame) or tid != int(tid) or w <= 0 or h <= 0:
        raise InputFileError(f"MOT file '{path}' line {lineno} has an invalid frame, id or size "
                             f"('{line.strip()[:60]}'): {MOT_FIX}")
    return vals


def read_mot(path: str | Path) -> np.ndarray:
    """Read a MOT Challenge file (gt.txt or a tracker's result); blank lines are skipped.

    Returns:
        (N, 6) float64 [frame (1-based), id, x, y, w, h] in image px, sorted by (frame, id).

    Raises:
        InputFileError: the file is missing or unreadable, a line is malformed, or an id appears twice in a frame.
    """
    path = Path(path)
    try:
        text = path.read_text()
    except (OSError, UnicodeDecodeError) as e:
        raise InputFileError(f"MOT file '{path}' cannot be read ({e}): pass a MOT Challenge text file") from e
    rows = [_parse_line(s, path, i) for i, s in enumerate(text.splitlines(), 1) if s.strip()]
    out = np.array(rows, dtype=np.float64).reshape(-1, 6)
    out = out[np.lexsort((out[:, 1], out[:, 0]))]
    dup = np.flatnonzero((np.diff(out[:, 0]) == 0) & (np.diff(out[:, 1]) == 0))
    if dup.size:
        f, i = out[dup[0], :2].astype(int)
        raise InputFileError(f"MOT file '{path}' has id {i} twice in frame {f}: an id names one box per frame")
    return out


def write_mot(path: str | Path, rows: np.ndarray) -> Path:
    """Write (N, 6) [frame (1-based), id, x, y, w, h] px as a MOT Challenge file (conf 1, world -1), sorted by
    (frame, id), atomically. Boxes are written to 0.01 px. Returns the path."""
    rows = np.asarray(rows, dtype=np.float64).reshape(-1, 6)
    rows = rows[np.lexsort((rows[:, 1], rows[:, 0]))]
    lines = [f"{int(f)},{int(i)},{x:.2f},{y:.2f},{w:.2f},{h:.2f},1,-1,-1,-1\n" for f, i, x, y, w, h in rows]
    write_text_atomic(path, "".join(lines))
    return Path(path)


def mot_rows(frames: np.ndarray, track_ids: np.ndarray, boxes_xyxy: np.ndarray, *, first_frame: int = 0) -> np.ndarray:
    """Tracker output as MOT rows.

    Args:
        frames: (N,) int frame index of each box, counted from `first_frame` (0: the first frame of the video is 0,
            as a frame counter of the streaming pipeline; 1: already MOT-style).
        track_ids: (N,) int track id of each box.
        boxes_xyxy: (N, 4) [x1, y1, x2, y2] image px.

    Returns:
        (N, 6) float64 [frame (1-based), id, x, y, w, h] px, sorted by (frame, id).
    """
    frames = np.asarray(frames, dtype=np.float64).reshape(-1)
    ids = np.asarray(track_ids, dtype=np.float64).reshape(-1)
    b = np.asarray(boxes_xyxy, dtype=np.float64).reshape(-1, 4)
    if not len(frames) == len(ids) == len(b):
        raise ValueError(f"frames (N,), track_ids (N,) and boxes (N, 4) disagree: {len(frames)}, {len(ids)}, {len(b)}")
    rows = np.column_stack([frames - first_frame + 1, ids, b[:, 0], b[:, 1], b[:, 2] - b[:, 0], b[:, 3] - b[:, 1]])
    return rows[np.lexsort((rows[:, 1], rows[:, 0]))]


def iou_distance(a_xywh: np.ndarray, b_xywh: np.ndarray, max_distance: float) -> np.ndarray:
    """(N, 4) x (M, 4) [x, y, w, h] px -> (N, M) float64 distance 1 - IoU, NaN (no match) above `max_distance`.

    The same as motmetrics' `distances.iou_matrix`, which calls `np.asfarray` (gone in NumPy 2, motmetrics 1.4.0).
    """
    a, b = np.asarray(a_xywh, np.float64).reshape(-1, 4), np.asarray(b_xywh, np.float64).reshape(-1, 4)
    lo = np.maximum(a[:, None, :2], b[None, :, :2])
    hi = np.minimum(a[:, None, :2] + a[:, None, 2:], b[None, :, :2] + b[None, :, 2:])
    inter = np.prod(np.clip(hi - lo, 0, None), axis=2)
    union = np.prod(a[:, 2:], axis=1)[:, None] + np.prod(b[:, 2:], axis=1)[None, :] - inter
    dist = 1.0 - inter / np.maximum(union, 1e-12)
    dist[dist > max_distance] = np.nan
    return dist


def _accumulate(mm: Any, gt: np.ndarray, hyp: np.ndarray, iou: float) -> Any:
    """A motmetrics accumulator fed frame by frame (every frame of either set), IoU distance capped at 1 - iou."""
    acc = mm.MOTAccumulator(auto_id=False)
    for f in np.union1d(gt[:, 0], hyp[:, 0]):
        g, h = gt[gt[:, 0] == f], hyp[hyp[:, 0] == f]
        dist = iou_distance(g[:, 2:6], h[:, 2:6], max_distance=1.0 - iou)
        acc.update(g[:, 1].astype(int).tolist(), h[:, 1].astype(int).tolist(), dist, frameid=int(f))
    return acc


def score_identity(gt: np.ndarray, hyp: np.ndarray, iou: float = 0.5, *, clip_to_gt: bool = True) -> dict[str, Any]:
    """IDF1, id switches and CLEAR-MOT figures of a tracker against a ground truth, by `motmetrics`.

    Args:
        gt: (N, 6) [frame, id, x, y, w, h] px (`read_mot`), the ground truth.
        hyp: (M, 6) the same for the tracker (`mot_rows` turns tracker output into this).
        iou: a hypothesis box matches a ground-truth box when their IoU >= iou (MOT Challenge: 0.5).
        clip_to_gt: drop hypothesis rows outside the ground truth's frame range, so a tracker run over the whole
            video is scored on the labelled frames only.

    Returns:
        {"idf1", "idp", "idr", "mota", "recall", "precision"}: floats in [0, 1] (mota may be negative);
        {"id_switches", "misses", "false_positives", "frames", "gt_ids", "hyp_ids"}: ints (frames: frames with a
        box in either set; gt_ids / hyp_ids: distinct ids).

    Raises:
        ValueError: iou outside (0, 1] or arrays not (N, 6).
        MissingDependencyError: motmetrics is not installed.
    """
    if not 0.0 < iou <= 1.0:
        raise ValueError(f"iou {iou} is out of range: use a value in (0, 1], e.g. 0.5")
    gt, hyp = (np.asarray(a, dtype=np.float64) for a in (gt, hyp))
    for name, a in (("gt", gt), ("hyp", hyp)):
        if a.ndim != 2 or a.shape[1] != 6:
            raise ValueError(f"{name} must be (N, 6) [frame, id, x, y, w, h], got shape {a.shape}")
    if clip_to_gt and len(gt):
        hyp = hyp[(hyp[:, 0] >= gt[:, 0].min()) & (hyp[:, 0] <= gt[:, 0].max())]
    mm = require("motmetrics", "eval")
    names = ["idf1", "idp", "idr", "mota", "recall", "precision", "num_switches", "num_misses",
             "num_false_positives", "num_frames"]
    summary = mm.metrics.create().compute(_accumulate(mm, gt, hyp, iou), metrics=names, name="all")
    r = {k: float(summary[k].iloc[0]) for k in names}
    nan0 = {k: (0.0 if np.isnan(v) else v) for k, v in r.items()}  # e.g. precision with no hypothesis at all
    return {
        "idf1": nan0["idf1"], "idp": nan0["idp"], "idr": nan0["idr"], "mota": nan0["mota"],
        "recall": nan0["recall"], "precision": nan0["precision"],
        "id_switches": int(r["num_switches"]), "misses": int(r["num_misses"]),
        "false_positives": int(r["num_false_positives"]), "frames": int(r["num_frames"]),
        "gt_ids": int(np.unique(gt[:, 1]).size), "hyp_ids": int(np.unique(hyp[:, 1]).size),
    }
