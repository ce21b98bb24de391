"""Person detectors of the streaming pipeline: one `Detector` protocol, chosen by name with `create_detector`.

A detector maps a BGR frame to person boxes (D, 5) float32 [x1, y1, x2, y2, score] in image pixels, best first. Three
kinds: `track` (no model: one centre-ROI box; the pipeline then drives boxes from the previous pose), `onnx` (a
YOLOX-format person detector, `yolox.py`, ONNX Runtime or a TensorRT engine; the shipped YOLOX-Nano by default)
and `mediapipe` (BlazePose's PoseLandmarker, `mediapipe.py`). The model-backed detectors are imported on use, so
this module needs only numpy. The protocol and `nms` live in `base.py`.
"""

from __future__ import annotations

import difflib
import importlib.util
import logging
import os
from pathlib import Path

import numpy as np

from edge_pct.config import StreamConfig
from edge_pct.core.errors import ConfigError
from edge_pct.core.geometry import check_frame
from edge_pct.core.package import DEFAULT_DETECTOR
from edge_pct.stream.detectors.base import DEFAULT_SCORE_THRESHOLD, Detector

log = logging.getLogger(__name__)

DETECTOR_MODEL_ENV = "EDGE_PCT_DETECTOR_MODEL"
DETECTORS = ("track", "onnx", "mediapipe")
# Model file suffix -> detector kind, used when no detector name is given.
SUFFIX_KINDS = {".onnx": "onnx", ".engine": "onnx", ".task": "mediapipe"}


class CentreRoiDetector:
    """The `track` detector (no model): one box, the centre `roi_fraction` of the frame in each axis, score 1.

    The pipeline uses it when it has no track yet or lost one; between detections it drives boxes from the previous
    pose itself.

    Args:
        roi_fraction: box width / frame width (and height / height) in (0, 1]; 1.0 is the whole frame.
    """

    name = "track"
    max_persons = 1

    def __init__(self, roi_fraction: float = 1.0) -> None:
        if not 0.0 < roi_fraction <= 1.0:
            raise ConfigError(
                f"roi_fraction {roi_fraction} is out of range: use a value in (0, 1], e.g. 1.0 for the whole frame"
            )
        self.roi_fraction = float(roi_fraction)

    def __call__(self, frame_bgr: np.ndarray) -> np.ndarray:
        """frame_bgr (H, W, 3) uint8 -> (1, 5) float32 [x1, y1, x2, y2, 1.0], image px."""
        h, w = check_frame(frame_bgr).shape[:2]
        mx, my = w * (1 - self.roi_fraction) / 2, h * (1 - self.roi_fraction) / 2
        return np.array([[mx, my, w - mx, h - my, 1.0]], dtype=np.float32)

    def close(self) -> None:
        """Nothing to release."""

    def __enter__(self) -> CentreRoiDetector:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _kind_of(model: Path) -> str:
    """Detector kind from the model file suffix, or a ConfigError listing the known suffixes."""
    kind = SUFFIX_KINDS.get(model.suffix.lower())
    if kind is None:
        raise ConfigError(
            f"Cannot tell the detector kind of '{model}' from its suffix '{model.suffix}'. Known "
            f"suffixes: {sorted(SUFFIX_KINDS)}; or pass --detector onnx / mediapipe"
        )
    return kind


def _resolve(name: str | None, model: str | Path | None) -> tuple[str, Path | None]:
    """(detector kind, model path or None) from the arguments, then the EDGE_PCT_DETECTOR_MODEL variable, then the
    shipped YOLOX-Nano (`onnx`, every person in the frame) where onnxruntime is installed, else `track`."""
    env = os.environ.get(DETECTOR_MODEL_ENV) or None
    path = Path(model) if model is not None else Path(env) if env else None
    if name is None:
        if path is not None:
            return _kind_of(path), path
        return ("onnx", DEFAULT_DETECTOR) if _shipped_detector_runs() else ("track", None)
    if name not in DETECTORS:
        close = difflib.get_close_matches(name, DETECTORS, n=1)
        hint = f" Did you mean '{close[0]}'?" if close else ""
        raise ConfigError(f"Unknown detector '{name}'. Valid: {sorted(DETECTORS)}.{hint}")
    if name == "onnx" and path is None:
        return name, DEFAULT_DETECTOR
    if name == "mediapipe" and path is None:
        raise ConfigError(
            f"The 'mediapipe' detector needs a model: pass --detector-model PATH (e.g. pose_landmarker_full.task) or "
            f"set {DETECTOR_MODEL_ENV}=PATH"
        )
    return name, path


def _shipped_detector_runs() -> bool:
    """Whether the default detector can run here: the shipped file is present and onnxruntime is installed."""
    return DEFAULT_DETECTOR.is_file() and importlib.util.find_spec("onnxruntime") is not None


def create_detector(
    name: str | None = None,
    model: str | Path | None = None,
    *,
    max_persons: int = 5,
    max_boxes: int | None = None,
    score_threshold: float | None = None,
    backend: str | None = None,
    threads: int | None = None,
) -> Detector:
    """Build person detector `name` ("track" | "onnx" | "mediapipe").

    Args:
        name: detector kind; None picks it from the model suffix (.onnx/.engine -> "onnx", .task -> "mediapipe"), with
            `model`, else the EDGE_PCT_DETECTOR_MODEL environment variable, else the shipped YOLOX-Nano ("onnx")
            where onnxruntime is installed, else "track".
        model: the detector model file; None falls back to EDGE_PCT_DETECTOR_MODEL, then (for "onnx") the shipped
            YOLOX-Nano. Ignored by "track".
        max_persons: most boxes per frame.
        max_boxes: "onnx" only: most boxes per frame instead of max_persons. The pipeline asks for more
            (`stream_detector`): weak boxes keep tracks alive, and a tracked person outside the best max_persons
            boxes keeps the track.
        score_threshold: person score cut in [0, 1] ("onnx": default 0.3; "mediapipe": its detection confidence,
            default 0.5). Ignored by "track".
        backend: "onnx" only: "onnxruntime" | "openvino" | "openvino-fp32" | "tensorrt"; None picks it from the
            suffix (.engine -> tensorrt) or $EDGE_PCT_DETECTOR_BACKEND.
        threads: "onnx" with onnxruntime only: intra-op CPU threads (None: onnxruntime's choice).

    Raises:
        ConfigError: unknown name (with a did-you-mean), a model-backed kind without a model, an unknown suffix.
        InputFileError: the model file is missing, corrupt or not a detector of that kind.
        MissingDependencyError: onnxruntime / mediapipe / tensorrt is not installed.
    """
    kind, path = _resolve(name, model)
    if max_persons < 1:
        raise ConfigError(f"max_persons must be >= 1, got {max_persons}")
    if score_threshold is not None and not 0.0 <= score_threshold <= 1.0:
        raise ConfigError(f"score_threshold {score_threshold} is out of range: use a value in [0, 1], e.g. 0.3")
    log.debug("Detector '%s' on %s", kind, path)
    if kind == "track":
        return CentreRoiDetector()
    assert path is not None  # _resolve guarantees a model for the model-backed kinds
    if kind == "onnx":
        from edge_pct.stream.detectors.yolox import YoloxDetector

        thr = DEFAULT_SCORE_THRESHOLD if score_threshold is None else score_threshold
        return YoloxDetector(path, score_threshold=thr, max_persons=max_boxes or max_persons, threads=threads,
                             backend=backend)
    from edge_pct.stream.detectors.mediapipe import MediaPipeDetector

    if score_threshold is None:
        return MediaPipeDetector(path, max_persons=max_persons)
    return MediaPipeDetector(path, max_persons=max_persons, min_detection_confidence=score_threshold)


def stream_detector(cfg: StreamConfig, name: str | None = None, model: str | Path | None = None,
                    threads: int | None = None) -> Detector:
    """The detector of a streaming pipeline on config `cfg`: `name` / `model` or the config's, a box detector
    keeping boxes down to `cfg.detector_score` (the tracker's weak second stage), up to 2 x max_persons of them, on
    `cfg.detector_backend`."""
    kind, _ = _resolve(name or cfg.detector or None, model or cfg.detector_model or None)
    score = cfg.detector_score if kind == "onnx" else None
    backend = cfg.detector_backend or None if kind == "onnx" else None
    return create_detector(name or cfg.detector or None, model or cfg.detector_model or None,
                           max_persons=cfg.max_persons, max_boxes=2 * cfg.max_persons, score_threshold=score,
                           backend=backend, threads=threads)
