"""The `mediapipe` person detector: boxes around the poses Google's PoseLandmarker finds (BlazePose, 33 landmarks).

This file owns `MediaPipeDetector`, which runs `edge_pct.peers.mediapipe.MediaPipePose` in video mode (MediaPipe tracks
between calls and re-runs its person detector only when a track is lost) and turns each pose into a box, and
`landmarks_to_box`, that conversion as a pure numpy function. mediapipe is imported lazily by MediaPipePose.
Reference: Bazarevsky et al., "BlazePose: On-device Real-time Body Pose tracking", arXiv:2006.10204.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from edge_pct.peers.mediapipe import MediaPipePose
from edge_pct.stream.detectors.base import empty_boxes

BOX_PAD = 0.1  # landmarks sit on joints, not on the body outline (head top, hands, feet): widen each side by 10%
VISIBLE_SCORE = 0.5  # landmarks at or above this visibility * presence bound the box


def landmarks_to_box(
    xy: np.ndarray, scores: np.ndarray, width: int, height: int, pad: float = BOX_PAD, min_score: float = VISIBLE_SCORE
) -> np.ndarray | None:
    """One pose -> its box: the bounds of the visible landmarks, widened by `pad` of the box size on each side,
    clipped to the frame.

    Args:
        xy: (L, 2) float32 landmark xy, image px.
        scores: (L,) float32 visibility * presence in [0, 1].
        width, height: frame size in px.
        pad: fraction of the box width (height) added on the left and right (top and bottom).
        min_score: landmarks scoring below it are left out, unless fewer than 2 remain (then all count).

    Returns:
        (5,) float32 [x1, y1, x2, y2, score], score = mean of `scores`; None when the clipped box is empty.
    """
    visible = scores >= min_score
    pts = xy[visible] if visible.sum() >= 2 else xy
    lo, hi = pts.min(axis=0), pts.max(axis=0)
    margin = (hi - lo) * pad
    lo = np.clip(lo - margin, 0, [width, height])
    hi = np.clip(hi + margin, 0, [width, height])
    if np.any(hi <= lo):
        return None
    return np.array([lo[0], lo[1], hi[0], hi[1], float(np.mean(scores))], dtype=np.float32)


class MediaPipeDetector:
    """Person boxes from MediaPipe's PoseLandmarker (`name` "mediapipe"), CPU, video mode.

    Frames must come in time order (MediaPipe tracks between calls); the timestamps are the milliseconds since
    construction.

    Args:
        task_path: pose landmarker bundle, e.g. `pose_landmarker_full.task`.
        max_persons: most poses (boxes) per frame.
        min_detection_confidence: MediaPipe's person detector threshold in [0, 1].

    Raises:
        InputFileError: the task file is missing or mediapipe cannot load it.
        MissingDependencyError: mediapipe is not installed.
    """

    name = "mediapipe"

    def __init__(self, task_path: str | Path, max_persons: int = 5, min_detection_confidence: float = 0.5) -> None:
        self.max_persons = max_persons
        self._pose = MediaPipePose(
            task_path, num_poses=max_persons, mode="video", min_detection_confidence=min_detection_confidence
        )

    def __call__(self, frame_bgr: np.ndarray) -> np.ndarray:
        """frame_bgr (H, W, 3) uint8 BGR -> (D, 5) float32 [x1, y1, x2, y2, score], image px, score descending,
        D <= max_persons."""
        h, w = np.shape(frame_bgr)[:2]  # estimate_frame checks the frame
        boxes = [landmarks_to_box(p["landmarks"], p["landmark_scores"], w, h)
                 for p in self._pose.estimate_frame(frame_bgr)]
        boxes = [b for b in boxes if b is not None]
        if not boxes:
            return empty_boxes()
        out = np.stack(boxes)
        return out[np.argsort(-out[:, 4], kind="stable")][: self.max_persons]

    def close(self) -> None:
        """Release the landmarker (idempotent)."""
        self._pose.close()

    def __enter__(self) -> MediaPipeDetector:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
