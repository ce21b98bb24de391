"""What every person detector shares: the `Detector` protocol, the empty result and greedy NMS.

A detector maps a BGR frame to person boxes (D, 5) float32 [x1, y1, x2, y2, score] in image pixels, best first.
Numpy only, so every detector module (and the factory that picks one) can import it.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import numpy as np

from edge_pct.core.geometry import box_iou

DEFAULT_SCORE_THRESHOLD = 0.3  # YOLOX's demo threshold


@runtime_checkable
class Detector(Protocol):
    """What every person detector offers: a name, a call per frame, and `close()` (idempotent)."""

    name: str

    def __call__(self, frame_bgr: np.ndarray) -> np.ndarray:
        """frame_bgr (H, W, 3) uint8 BGR -> (D, 5) float32 [x1, y1, x2, y2, score], image px, score descending,
        D <= the detector's max_persons."""
        ...

    def close(self) -> None:
        """Release the model (safe to call twice)."""
        ...


def empty_boxes() -> np.ndarray:
    """(0, 5) float32: no person."""
    return np.zeros((0, 5), np.float32)


def nms(boxes: np.ndarray, scores: np.ndarray, iou_threshold: float) -> np.ndarray:
    """Greedy non-maximum suppression: keep the best box, drop those overlapping it by IoU > `iou_threshold`, repeat.

    Args:
        boxes: (N, 4) [x1, y1, x2, y2], any unit (pixels here).
        scores: (N,) higher is better.
        iou_threshold: in [0, 1]; a box whose IoU with a kept box exceeds it is dropped (torchvision's rule).

    Returns:
        (K,) int64 indices into `boxes` of the kept boxes, score descending (ties: lower index first).
    """
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    scores = np.asarray(scores, dtype=np.float64).reshape(-1)
    if len(boxes) != len(scores):
        raise ValueError(f"boxes (N, 4) and scores (N,) disagree: {boxes.shape} vs {scores.shape}")
    order = np.argsort(-scores, kind="stable")
    keep = []
    while order.size:
        best, rest = order[0], order[1:]
        keep.append(best)
        order = rest[box_iou(boxes[best], boxes[rest])[0] <= iou_threshold]
    return np.array(keep, dtype=np.int64)
