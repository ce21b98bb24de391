"""Frame in, persons out, with no state: what the `pose_pipeline` model runs on the server, per request.

`FramePoser` batches a request's frames through the detector once and every person crop of them through the pose
model once, with the project's own pre- and post-processing: YOLOX's letterbox and decode
(`edge_pct.stream.detectors.yolox`), the training crop (`edge_pct.core.geometry`: box -> padded crop at the model's
aspect ratio -> affine warp) and the inverse affine back to frame pixels. The two models come in as callables, so the
PyTriton server (`server.py`, ONNX Runtime in process) and the Triton Python-backend model (`bls_model.py`, BLS calls
to `yolox_detector` and `pct_pose`) share this code. Tracking and smoothing are per stream and stay on the client;
a frame here is posed as a first frame is (every confident box, no history).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from edge_pct.core.geometry import (
    apply_affine,
    box_to_center_size,
    crop_affine,
    invert_affine,
    to_model_input,
    warp_crops,
)
from edge_pct.stream.detectors.yolox import decode_yolox, letterbox, make_grids

# The largest frame side served: 4096 px (DCI 4K). A bigger frame is answered with an error naming the limit.
MAX_FRAME_SIDE = 4096
OUTPUT_NAMES = ("boxes", "joints", "confidence", "score", "count")

DetectFn = Callable[[np.ndarray], np.ndarray]  # canvases (B, 3, H, W) uint8 BGR -> (B, A, 6) float32 rows
PoseFn = Callable[[np.ndarray], dict[str, np.ndarray]]  # images (N, 3, h, w) float32 RGB -> joints, confidence


@dataclass(frozen=True)
class PoserSettings:
    """The served pipeline's knobs (the `pose_pipeline` config's parameters)."""

    score_threshold: float = 0.5  # boxes that start a track in the in-process pipeline (stream.new_track_score)
    nms_iou: float = 0.45
    max_persons: int = 32
    padding: float = 1.25  # box -> crop enlargement, as in training
    max_frame_side: int = MAX_FRAME_SIDE

    @classmethod
    def from_parameters(cls, params: dict[str, str]) -> PoserSettings:
        """From a config's string parameters (missing keys keep the defaults)."""
        kinds = {"score_threshold": float, "nms_iou": float, "max_persons": int, "padding": float,
                 "max_frame_side": int}
        return cls(**{k: kind(params[k]) for k, kind in kinds.items() if k in params})

    def parameters(self) -> dict[str, str]:
        return {k: str(getattr(self, k)) for k in ("score_threshold", "nms_iou", "max_persons", "padding",
                                                    "max_frame_side")}


def check_frames(frames: np.ndarray, max_side: int = MAX_FRAME_SIDE) -> np.ndarray:
    """frames (B, H, W, 3) uint8 BGR, each side <= `max_side`, or a ValueError naming what came and the fix."""
    frames = np.asarray(frames)
    if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8 or not frames.size:
        raise ValueError(f"frame must be (H, W, 3) uint8 BGR per request item, got {frames.shape[1:]} {frames.dtype}")
    h, w = frames.shape[1:3]
    if max(h, w) > max_side:
        raise ValueError(f"frame {w}x{h} is larger than the served limit of {max_side} px a side: resize it on the "
                         "client first")
    return frames


class FramePoser:
    """Stateless frames -> persons over a detector and a pose model (module doc).

    Args:
        detect: canvases (B, 3, H, W) uint8 BGR -> (B, A, 6) float32 [tx, ty, tw, th, obj, cls[person]].
        pose: images (N, 3, h, w) float32 RGB 0-255 -> {"joints": (N, J, 2) crop px, "confidence": (N, J)}.
        detector_hw: the detector's input (H, W).
        input_size: the pose model's input (w, h).
        num_joints: J.
        settings: thresholds, person cap, crop padding, frame size limit.
    """

    def __init__(self, detect: DetectFn, pose: PoseFn, detector_hw: tuple[int, int], input_size: tuple[int, int],
                 num_joints: int, settings: PoserSettings | None = None) -> None:
        self.detect, self.pose = detect, pose
        self.detector_hw, self.input_size, self.num_joints = tuple(detector_hw), tuple(input_size), num_joints
        self.settings = settings or PoserSettings()
        self._grids, self._strides = make_grids(self.detector_hw)

    def __call__(self, frames: np.ndarray) -> dict[str, np.ndarray]:
        """frames (B, H, W, 3) uint8 BGR -> boxes (B, D, 5), joints (B, D, J, 2) frame px, confidence (B, D, J),
        score (B, D), count (B, 1) int32; D = the most persons in one frame, at least 1 (rows past a frame's count are
        zero)."""
        s = self.settings
        frames = check_frames(frames, s.max_frame_side)
        boxes = self._detect(frames)
        mats = [self._affines(b) for b in boxes]
        crops = [warp_crops(f, m, self.input_size) for f, m in zip(frames, mats, strict=True) if len(m)]
        counts = [len(b) for b in boxes]
        j = self.num_joints
        joints = np.zeros((sum(counts), j, 2), np.float32)
        conf = np.zeros((sum(counts), j), np.float32)
        if crops:
            out = self.pose(to_model_input(np.concatenate(crops)))
            joints = apply_affine(out["joints"], invert_affine(np.concatenate([m for m in mats if len(m)])))
            conf = np.asarray(out["confidence"], np.float32)
        return _padded(boxes, joints, conf, counts, j)

    def _detect(self, frames: np.ndarray) -> list[np.ndarray]:
        """(B, H, W, 3) -> per frame (D, 5) [x1, y1, x2, y2, score] frame px, best first, D <= max_persons."""
        s = self.settings
        boxed = [letterbox(f, self.detector_hw) for f in frames]
        canvases = np.ascontiguousarray(np.stack([c for c, _ in boxed]).transpose(0, 3, 1, 2))
        raw = np.asarray(self.detect(canvases), np.float32)
        h, w = frames.shape[1:3]
        return [decode_yolox(raw[i], self._grids, self._strides, r, s.score_threshold, s.nms_iou, s.max_persons,
                             image_wh=(w, h)) for i, (_, r) in enumerate(boxed)]

    def _affines(self, boxes: np.ndarray) -> np.ndarray:
        """Frame -> crop affines (D, 2, 3) for boxes (D, 5): the crop of `edge_pct.stream.pipeline.PosePipeline`."""
        if not len(boxes):
            return np.zeros((0, 2, 3), np.float32)
        xywh = np.concatenate([boxes[:, :2], boxes[:, 2:4] - boxes[:, :2]], axis=1)
        w, h = self.input_size
        center, size = box_to_center_size(xywh, w / h, self.settings.padding)
        return crop_affine(center, size, 0.0, (w, h))


def _padded(boxes: list[np.ndarray], joints: np.ndarray, conf: np.ndarray, counts: list[int],
            j: int) -> dict[str, np.ndarray]:
    b, d = len(counts), max(*counts, 1)  # one zero row at least: a zero-size tensor cannot travel through PyTriton
    out = {"boxes": np.zeros((b, d, 5), np.float32), "joints": np.zeros((b, d, j, 2), np.float32),
           "confidence": np.zeros((b, d, j), np.float32), "score": np.zeros((b, d), np.float32),
           "count": np.array(counts, np.int32).reshape(b, 1)}
    start = 0
    for i, n in enumerate(counts):
        out["boxes"][i, :n] = boxes[i]
        out["joints"][i, :n] = joints[start:start + n]
        out["confidence"][i, :n] = conf[start:start + n]
        out["score"][i, :n] = conf[start:start + n].mean(axis=1) if n else 0
        start += n
    return out
