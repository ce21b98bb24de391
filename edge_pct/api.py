"""The Python API: frames in, persons out.

    import cv2, edge_pct

    estimator = edge_pct.PoseEstimator()                  # shipped model, shipped YOLOX-Nano, ONNX Runtime on a CPU
    persons = estimator(cv2.imread("people.jpg"))         # one frame: a list of Person
    for frame, persons in estimator.stream("walk.mp4"):   # a video file, a camera index or a URL
        ...

A `Person` has `joints` (17, 2) float32 frame px (COCO-17 order, `edge_pct.core.keypoints.COCO17_NAMES`),
`confidence` (17,) in [0, 1] per joint, `box` (4,) x1 y1 x2 y2 frame px, `score` (mean joint confidence) and
`track_id`. Calls on one estimator are one stream: ids follow persons from call to call and the joints are
smoothed over time; `reset()` starts a new stream (`stream()` does it for you), `smoothing=False` turns the filter
off for unrelated images. The CLI's `bench` and the app run this same class.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from edge_pct.config import StreamConfig
from edge_pct.stream.pipeline import FrameResult, PersonPose, PosePipeline

Person = PersonPose  # the public name of one person's pose in one frame


class PoseEstimator:
    """Detection + PCT + tracking + smoothing on BGR frames.

    Args:
        model: pose model: a `.pt` checkpoint, an exported `.onnx`, a TensorRT `.engine`, or the folder of an
            `edge-pct calibrate` run (its INT8 graph for the backend); None: the shipped `pct_lite.pt`.
        backend: "onnxruntime" | "torch" | "tensorrt"; None: from the model file (ONNX Runtime for a `.pt` where
            it is installed, exported once to the user cache).
        detector: "onnx" (YOLOX) | "track" (no detector: one centre box, then pose-driven boxes; one person) |
            "mediapipe"; None: the shipped YOLOX-Nano where onnxruntime is installed, else "track".
        detector_model: the detector's model file (YOLOX .onnx/.engine, PoseLandmarker .task); None: shipped.
        max_persons: most persons posed per frame; None: the config's.
        smoothing: One-Euro filtering of joints over time; None: the config's (on).
        threads: ONNX Runtime CPU threads for the pose model and detector; None: one per core.
        config: the `[stream]` settings (`edge_pct.config.StreamConfig`); None: the defaults.
    """

    def __init__(self, model: str | Path | None = None, backend: str | None = None, detector: str | None = None,
                 detector_model: str | Path | None = None, max_persons: int | None = None,
                 smoothing: bool | None = None, threads: int | None = None,
                 config: StreamConfig | None = None) -> None:
        from edge_pct.engines.model_files import open_backend
        from edge_pct.stream.detectors.factory import stream_detector

        given = {"max_persons": max_persons, "smoothing": smoothing}
        cfg = dataclasses.replace(config or StreamConfig(), **{k: v for k, v in given.items() if v is not None})
        pose_backend = open_backend(model, backend, **({"threads": threads} if threads else {}))
        person_detector = stream_detector(cfg, detector, detector_model, threads)
        self._assemble(pose_backend, person_detector, cfg)

    @classmethod
    def from_parts(cls, backend: Any, detector: Any, config: StreamConfig | None = None) -> PoseEstimator:
        """An estimator on a backend and detector built elsewhere (the app loads them step by step, to say which
        one failed), with the same per-frame path as every other estimator."""
        est = cls.__new__(cls)
        est._assemble(backend, detector, config or StreamConfig())
        return est

    def _assemble(self, backend: Any, detector: Any, config: StreamConfig) -> None:
        self.config, self.backend, self.detector = config, backend, detector
        self.pipeline = PosePipeline(backend, detector, config)
        self.last: FrameResult | None = None  # the last frame's full result (stage timings, whether it detected)
        self._t0 = time.monotonic()

    def __call__(self, frame_bgr: np.ndarray, t_s: float | None = None) -> list[Person]:
        """frame_bgr (H, W, 3) uint8 BGR, taken at `t_s` seconds (default: now; the smoother's clock) -> persons."""
        t = time.monotonic() - self._t0 if t_s is None else t_s
        self.last = self.pipeline.process(frame_bgr, t)
        return self.last.persons

    def stream(self, source: str | int | Path,
               max_frames: int | None = None) -> Iterator[tuple[np.ndarray, list[Person]]]:
        """(frame, persons) for each frame of a video file, camera index or URL, in order, up to `max_frames`.
        A new stream: tracks and filters start afresh; timestamps are the source's."""
        from edge_pct.stream.sources import open_source

        self.reset()
        with open_source(str(source)) as src:
            for n, frame in enumerate(src):
                if max_frames is not None and n >= max_frames:
                    break
                yield frame.image, self(frame.image, frame.timestamp_ms / 1e3)

    def reset(self) -> None:
        """Forget tracks and filter state: the next frame starts a new stream."""
        self.pipeline.reset()
        self._t0 = time.monotonic()

    @property
    def description(self) -> dict[str, Any]:
        """What runs: backend, precision, model input size (w, h), detector."""
        return {"backend": self.backend.name, "precision": self.backend.precision,
                "input_size": list(self.backend.input_size), "detector": self.detector.name}

    def close(self) -> None:
        """Release the detector's model (the pose backend goes with the object)."""
        self.detector.close()

    def __enter__(self) -> PoseEstimator:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
