"""The MediaPipe peer: Google's PoseLandmarker (BlazePose GHUM, 33 landmarks) reduced to COCO-17 for comparison.

This file owns the BlazePose-33 -> COCO-17 joint table and `MediaPipePose`, a thin wrapper over the MediaPipe
Tasks API (`mediapipe.tasks.python.vision.PoseLandmarker`, CPU delegate) with two entry points: person crops
(the same (N, H, W, 3) crops the PCT backends take, for the accuracy comparison) and whole frames (for the
streaming benchmark, one dict per detected person). mediapipe is imported lazily, so importing this module
needs only numpy. The model is Google's `.task` bundle (pose detector + landmark detector tflite files).

Reference: Bazarevsky et al., "BlazePose: On-device Real-time Body Pose tracking", arXiv:2006.10204;
https://ai.google.dev/edge/mediapipe/solutions/vision/pose_landmarker
"""

from __future__ import annotations

import time
from pathlib import Path
from types import TracebackType
from typing import Any, Literal

import numpy as np

from edge_pct.core.errors import InputFileError
from edge_pct.core.geometry import check_frame
from edge_pct.core.keypoints import NUM_JOINTS
from edge_pct.core.optional import require

MODEL_URL = (
    "https://storage.googleapis.com/mediapipe-models/pose_landmarker/pose_landmarker_full/float16/latest/"
    "pose_landmarker_full.task"
)

# BLAZEPOSE_TO_COCO17[j] is the BlazePose landmark index of COCO-17 joint j (order of keypoints.COCO17_NAMES).
# Checked against mediapipe 1.2.2 `vision.PoseLandmark`: NOSE=0, LEFT_EYE=2, RIGHT_EYE=5, LEFT_EAR=7, ...
BLAZEPOSE_TO_COCO17: tuple[int, ...] = (0, 2, 5, 7, 8, 11, 12, 13, 14, 15, 16, 23, 24, 25, 26, 27, 28)
NUM_BLAZEPOSE = 33

_MODES = ("image", "video")


class MediaPipePose:
    """Google's PoseLandmarker on CPU, returning COCO-17 joints in pixels.

    Args:
        task_path: Google's pose landmarker bundle, e.g. `pose_landmarker_full.task`.
        num_poses: most people detected per image.
        mode: "image" runs detection on every call (needed by `estimate_crops`); "video" tracks between
            consecutive `estimate_frame` calls, which need strictly increasing timestamps.
        min_detection_confidence: person detector threshold in [0, 1].

    Raises:
        InputFileError: the task file is missing or mediapipe cannot load it.
        MissingDependencyError: mediapipe is not installed.
    """

    def __init__(self, task_path: str | Path, num_poses: int = 1, mode: Literal["image", "video"] = "image",
                 min_detection_confidence: float = 0.5) -> None:
        if mode not in _MODES:
            raise ValueError(f"Unknown mode '{mode}'. Valid: {list(_MODES)}")
        if num_poses < 1:
            raise ValueError(f"num_poses must be >= 1, got {num_poses}")
        if not 0.0 <= min_detection_confidence <= 1.0:
            raise ValueError(f"min_detection_confidence must be in [0, 1], got {min_detection_confidence}")
        path = Path(task_path)
        if not path.is_file():
            raise InputFileError(f"MediaPipe pose model not found: {path}. Download Google's "
                                 f"pose_landmarker_full.task from {MODEL_URL}")
        self._mp = require("mediapipe", "mediapipe")
        self.mode = mode
        self.num_poses = num_poses
        self._landmarker: Any = _create_landmarker(path, num_poses, mode, min_detection_confidence)
        self._t0 = time.monotonic()
        self._last_timestamp_ms = -1

    def estimate_crops(self, crops: np.ndarray) -> dict[str, np.ndarray]:
        """Run the landmarker once per person crop (no tracking between crops).

        Args:
            crops: (N, H, W, 3) uint8 BGR person crops, e.g. 256x192.

        Returns:
            joints: (N, 17, 2) float32, crop-pixel xy (0..W, 0..H); the crop centre where no pose was found.
            confidence: (N, 17) float32 in [0, 1], per joint; 0 where no pose was found.
            found: (N,) bool, whether a pose was detected in the crop.
        """
        if self.mode != "image":
            raise ValueError("estimate_crops needs mode='image': video mode tracks across calls and would carry "
                             "one crop's pose into the next. Create MediaPipePose(..., mode='image')")
        crops = np.asarray(crops)
        if crops.ndim != 4 or crops.shape[-1] != 3 or crops.dtype != np.uint8:
            raise ValueError(f"crops must be (N, H, W, 3) uint8 BGR, got {crops.shape} {crops.dtype}")
        n, h, w = crops.shape[:3]
        joints = np.tile(np.array([w / 2, h / 2], dtype=np.float32), (n, NUM_JOINTS, 1))
        scores = np.zeros((n, NUM_JOINTS), dtype=np.float32)
        found = np.zeros(n, dtype=bool)
        for i, crop in enumerate(crops):
            poses = self._detect(crop, timestamp_ms=None)
            if not poses:
                continue
            xy, score = min(poses, key=lambda p: _distance_to_centre(p[0], w, h))
            joints[i], scores[i] = _to_coco(xy, score)
            found[i] = True
        return {"joints": joints, "confidence": scores, "found": found}

    def estimate_frame(self, frame_bgr: np.ndarray, timestamp_ms: int | None = None) -> list[dict[str, np.ndarray]]:
        """Detect every person (up to `num_poses`) in a whole frame.

        Args:
            frame_bgr: (H, W, 3) uint8 BGR frame.
            timestamp_ms: frame time for "video" mode, strictly increasing across calls; None uses the
                milliseconds since construction (bumped by 1 if that does not increase). Ignored in "image" mode.

        Returns:
            One dict per person: joints (17, 2) float32 image-pixel xy, confidence (17,) float32 in [0, 1],
            box_xywh (4,) float32, the min/max box of all 33 landmarks clipped to the frame, and the BlazePose
            landmarks themselves: landmarks (33, 2) float32 image-pixel xy, landmark_scores (33,) float32 in [0, 1].
        """
        frame_bgr = check_frame(frame_bgr)
        h, w = frame_bgr.shape[:2]
        people = []
        for xy, score in self._detect(frame_bgr, timestamp_ms):
            joints, scores = _to_coco(xy, score)
            people.append({"joints": joints, "confidence": scores, "box_xywh": _clipped_box(xy, w, h), "landmarks": xy,
                           "landmark_scores": score})
        return people

    def close(self) -> None:
        """Release the native landmarker; safe to call twice."""
        if self._landmarker is not None:
            self._landmarker.close()
            self._landmarker = None

    def __enter__(self) -> MediaPipePose:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    def _detect(self, image_bgr: np.ndarray, timestamp_ms: int | None) -> list[tuple[np.ndarray, np.ndarray]]:
        """One landmarker call -> per pose (xy (33, 2) float32 image pixels, score (33,) float32)."""
        if self._landmarker is None:
            raise RuntimeError("MediaPipePose is closed; create a new one")
        rgb = np.ascontiguousarray(image_bgr[:, :, ::-1])
        image = self._mp.Image(image_format=self._mp.ImageFormat.SRGB, data=rgb)
        if self.mode == "video":
            result = self._landmarker.detect_for_video(image, self._next_timestamp(timestamp_ms))
        else:
            result = self._landmarker.detect(image)
        h, w = image_bgr.shape[:2]
        return [_landmarks_to_arrays(pose, w, h) for pose in result.pose_landmarks]

    def _next_timestamp(self, timestamp_ms: int | None) -> int:
        """Validate or generate a strictly increasing video timestamp (MediaPipe rejects repeats)."""
        if timestamp_ms is None:
            timestamp_ms = max(int((time.monotonic() - self._t0) * 1000), self._last_timestamp_ms + 1)
        elif timestamp_ms <= self._last_timestamp_ms:
            raise ValueError(f"timestamp_ms must strictly increase in video mode: got {timestamp_ms} after "
                             f"{self._last_timestamp_ms}")
        self._last_timestamp_ms = int(timestamp_ms)
        return self._last_timestamp_ms


def _create_landmarker(path: Path, num_poses: int, mode: str, min_detection_confidence: float) -> Any:
    """Build a CPU PoseLandmarker, turning mediapipe's load errors into one-line InputFileErrors."""
    # mediapipe 1.2 rebinds `mediapipe.tasks` to `mediapipe.tasks.python`, so `import mediapipe.tasks.python as x`
    # fails there; importlib (inside require) goes through sys.modules and works on 1.2 and 0.10.
    tasks = require("mediapipe.tasks.python", "mediapipe")
    vision = require("mediapipe.tasks.python.vision", "mediapipe")
    running_mode = vision.RunningMode.VIDEO if mode == "video" else vision.RunningMode.IMAGE
    options = vision.PoseLandmarkerOptions(
        base_options=tasks.BaseOptions(model_asset_path=str(path), delegate=tasks.BaseOptions.Delegate.CPU),
        running_mode=running_mode,
        num_poses=num_poses,
        min_pose_detection_confidence=min_detection_confidence,
    )
    try:
        return vision.PoseLandmarker.create_from_options(options)
    except (RuntimeError, ValueError, OSError) as e:  # mediapipe maps its C status codes onto these
        reason = " ".join(str(e).split())
        raise InputFileError(f"MediaPipe cannot load {path} ({reason}): it must be a pose landmarker .task "
                             f"bundle; download Google's pose_landmarker_full.task from {MODEL_URL}") from e


def _landmarks_to_arrays(pose: list[Any], width: int, height: int) -> tuple[np.ndarray, np.ndarray]:
    """33 NormalizedLandmarks -> xy (33, 2) float32 image pixels and score (33,) float32 in [0, 1].

    Normalised x, y are fractions of the image width/height (0 = left/top edge), so pixels are x * W, y * H,
    the same corner convention as processing.crop_affine. The score is visibility * presence: presence is
    "the landmark is inside the image", visibility is "inside and not occluded", both already sigmoids in the
    full model; the product keeps a joint predicted outside the crop from scoring high. A missing field counts 1.
    """
    xy = np.array([[lm.x * width, lm.y * height] for lm in pose], dtype=np.float32)
    vis = np.array([1.0 if lm.visibility is None else lm.visibility for lm in pose], dtype=np.float32)
    pres = np.array([1.0 if lm.presence is None else lm.presence for lm in pose], dtype=np.float32)
    return xy, np.clip(vis * pres, 0.0, 1.0)


def _to_coco(xy: np.ndarray, score: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """BlazePose (33, 2), (33,) -> COCO-17 (17, 2), (17,)."""
    idx = list(BLAZEPOSE_TO_COCO17)
    return xy[idx], score[idx]


def _distance_to_centre(xy: np.ndarray, width: int, height: int) -> float:
    """Distance from the centre of the landmarks' min/max box to the image centre, in pixels."""
    box_centre = (xy.min(axis=0) + xy.max(axis=0)) / 2
    return float(np.hypot(box_centre[0] - width / 2, box_centre[1] - height / 2))


def _clipped_box(xy: np.ndarray, width: int, height: int) -> np.ndarray:
    """(33, 2) landmarks -> (4,) float32 xywh min/max box clipped to the (width, height) image."""
    lo = np.clip(xy.min(axis=0), 0, [width, height])
    hi = np.clip(xy.max(axis=0), 0, [width, height])
    return np.concatenate([lo, hi - lo]).astype(np.float32)
