"""The `onnx` person detector: a YOLOX-format model (e.g. the official YOLOX-Nano) on ONNX Runtime, OpenVINO, TensorRT.

This file owns the YOLOX pre- and post-processing as pure numpy functions (`letterbox`, `to_input`, `make_grids`,
`decode_yolox`) and `YoloxDetector`, which runs them around one of three runtimes: an `.onnx` through onnxruntime or
openvino (chosen with `backend=` or `$EDGE_PCT_DETECTOR_BACKEND`; onnxruntime by default), or an `.engine` built from it
by `edge-pct build` through `edge_pct.engines.trt_runtime.TrtRunner`. Format (the official
export, see ../shared/data/README.md): input [1, 3, H, W] float32 BGR 0-255, the frame resized by
r = min(H/h, W/w) and pasted at the top-left of a canvas filled with 114; output [1, A, 5 + C] rows
[tx, ty, tw, th, obj, cls...] with sigmoided scores and raw boxes: for cell (gx, gy) at stride s (8, 16, 32 in that
order, row-major cells), centre = (t + g) * s, size = exp(t) * s, in canvas pixels. Person = class 0 (COCO).
Runtimes are imported on use, so this module needs only numpy and OpenCV.
Reference: Ge et al., "YOLOX: Exceeding YOLO Series in 2021", arXiv:2107.08430;
https://github.com/Megvii-BaseDetection/YOLOX (yolox/data/data_augment.py `preproc`, yolox/utils/demo_utils.py
`demo_postprocess`).
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from edge_pct.core.errors import ConfigError, InputFileError
from edge_pct.core.geometry import check_frame
from edge_pct.core.optional import require
from edge_pct.stream.detectors.base import empty_boxes, nms

log = logging.getLogger(__name__)

YOLOX_STRIDES = (8, 16, 32)
PAD_VALUE = 114  # YOLOX's letterbox fill
PERSON_CLASS = 0  # COCO class index of "person"
# "openvino" runs BF16 on CPUs with native BF16 (faster than onnxruntime there, scores move by up to ~0.3 on
# YOLOX-Nano: not the default), "openvino-fp32" FP32; see docs/openvino.md.
BACKENDS = ("onnxruntime", "openvino", "openvino-fp32", "tensorrt")
BACKEND_ENV = "EDGE_PCT_DETECTOR_BACKEND"
YOLOX_FIX = (
    "pass a YOLOX-format detector ONNX (input [1, 3, H, W], output [1, A, 5 + classes]) with --detector-model PATH, "
    "or leave it out for the shipped YOLOX-Nano"
)


def make_grids(input_hw: tuple[int, int], strides: tuple[int, ...] = YOLOX_STRIDES) -> tuple[np.ndarray, np.ndarray]:
    """The anchor-free cells of a YOLOX head, in output-row order.

    Args:
        input_hw: model input (height, width) in px, each divisible by every stride.
        strides: head strides, coarse last (YOLOX: 8, 16, 32).

    Returns:
        grids: (A, 2) float32 cell (gx, gy); strides: (A,) float32 cell size in px. A = sum of (H/s) * (W/s); within
        one stride the cells run row by row (gx fastest), as YOLOX's `meshgrid` + `view(1, -1, 2)`.
    """
    h, w = input_hw
    grids, sizes = [], []
    for s in strides:
        if h % s or w % s:
            raise ValueError(f"input (H, W) = {input_hw} must be divisible by every stride {strides}")
        gy, gx = np.mgrid[0 : h // s, 0 : w // s]
        grids.append(np.stack([gx.ravel(), gy.ravel()], axis=1))
        sizes.append(np.full(gx.size, s))
    return np.concatenate(grids).astype(np.float32), np.concatenate(sizes).astype(np.float32)


def letterbox(frame_bgr: np.ndarray, input_hw: tuple[int, int]) -> tuple[np.ndarray, float]:
    """Resize by r = min(H / h, W / w) (bilinear) and paste at the top-left of an (H, W) canvas filled with 114.

    Args:
        frame_bgr: (h, w, 3) uint8 BGR frame.
        input_hw: model input (H, W) in px.

    Returns:
        canvas: (H, W, 3) uint8 BGR; ratio: r, so that frame px = canvas px / r.
    """
    h, w = frame_bgr.shape[:2]
    ih, iw = input_hw
    ratio = min(ih / h, iw / w)
    rw, rh = min(iw, int(w * ratio)), min(ih, int(h * ratio))  # int(): truncation, as YOLOX `preproc`
    canvas = np.full((ih, iw, 3), PAD_VALUE, dtype=np.uint8)
    canvas[:rh, :rw] = cv2.resize(frame_bgr, (rw, rh), interpolation=cv2.INTER_LINEAR)
    return canvas, ratio


def to_input(canvas: np.ndarray) -> np.ndarray:
    """(H, W, 3) uint8 BGR canvas -> (1, 3, H, W) float32 BGR 0-255, C-contiguous (YOLOX takes raw pixels)."""
    return np.ascontiguousarray(canvas.transpose(2, 0, 1)[None], dtype=np.float32)


def decode_yolox(
    raw: np.ndarray,
    grids: np.ndarray,
    strides: np.ndarray,
    ratio: float,
    score_thr: float,
    nms_iou: float,
    max_det: int,
    image_wh: tuple[int, int] | None = None,
) -> np.ndarray:
    """YOLOX head output -> person boxes in frame pixels.

    Args:
        raw: (A, 5 + C) float32 rows [tx, ty, tw, th, obj, cls...] (a leading batch axis of 1 is dropped), scores
            already sigmoided.
        grids: (A, 2) cell (gx, gy) and strides: (A,) px, from `make_grids`.
        ratio: the letterbox r (frame px = canvas px / r).
        score_thr: keep rows with obj * cls[person] >= score_thr.
        nms_iou: NMS IoU threshold (YOLOX: 0.45).
        max_det: most boxes returned.
        image_wh: (w, h) of the frame, to clip the boxes to [0, w] x [0, h]; None: no clipping.

    Returns:
        (D, 5) float32 [x1, y1, x2, y2, score], frame px, score descending, D <= max_det.
    """
    raw = np.asarray(raw, dtype=np.float32)
    raw = raw[0] if raw.ndim == 3 and raw.shape[0] == 1 else raw
    if raw.ndim != 2 or raw.shape[1] < 6 or len(raw) != len(grids) or len(raw) != len(strides):
        raise ValueError(
            f"raw must be (A, 5 + C) with A = {len(grids)} cells (grids {grids.shape}, strides "
            f"{strides.shape}), got {raw.shape}"
        )
    scores = raw[:, 4] * raw[:, 5 + PERSON_CLASS]
    idx = np.flatnonzero(scores >= score_thr)  # decode only the candidates: a few of thousands of cells
    if not idx.size or max_det < 1:
        return empty_boxes()
    t, s = raw[idx, :4], strides[idx, None]
    centre = (t[:, :2] + grids[idx]) * s
    size = np.exp(t[:, 2:4]) * s
    boxes = np.concatenate([centre - size / 2, centre + size / 2], axis=1) / ratio
    keep = nms(boxes, scores[idx], nms_iou)[:max_det]
    boxes = boxes[keep]
    if image_wh is not None:  # after NMS, as YOLOX's demo: clipping first would change the overlaps
        boxes = np.clip(boxes, 0, [image_wh[0], image_wh[1], image_wh[0], image_wh[1]])
    return np.concatenate([boxes, scores[idx][keep, None]], axis=1).astype(np.float32)


def _dims(shape: Any) -> tuple[int | None, ...]:
    """An ORT/TensorRT/OpenVINO shape -> ints, None for a symbolic or dynamic (-1) dimension."""
    dims = [d.get_length() if hasattr(d, "is_static") and d.is_static else d for d in shape]  # OpenVINO Dimension
    return tuple(d if isinstance(d, int) and d > 0 else None for d in dims)


def _check_io(path: Path, inputs: list[tuple[str, Any]], outputs: list[tuple[str, Any]]) -> tuple[int, int]:
    """The model input (H, W) when the graph is YOLOX-like, else an InputFileError naming the file and the fix.

    YOLOX-like: one input [N, 3, H, W] with static H, W divisible by 32, and a first output [N, A, 5 + C] (C >= 1)
    whose A, when static, is the cell count of strides 8, 16, 32.
    """
    ins = [_dims(s) for _, s in inputs]
    outs = [_dims(s) for _, s in outputs]
    ok = len(ins) == 1 and len(ins[0]) == 4 and ins[0][1] == 3 and None not in ins[0][2:]
    ok = ok and all(d % YOLOX_STRIDES[-1] == 0 for d in ins[0][2:]) and len(outs) >= 1 and len(outs[0]) == 3
    ok = ok and outs[0][2] is not None and outs[0][2] >= 6
    if ok:
        h, w = ins[0][2:]
        ok = outs[0][1] in (None, len(make_grids((h, w))[0]))
    if not ok:
        got = f"inputs {[(n, list(s)) for n, s in inputs]}, outputs {[(n, list(s)) for n, s in outputs]}"
        raise InputFileError(f"'{path}' is not a YOLOX-format detector ({got}): {YOLOX_FIX}")
    return ins[0][2], ins[0][3]


class _OrtModel:
    """An ONNX through onnxruntime: `inputs`/`outputs` as (name, shape), `run(x)` -> the first output."""

    def __init__(self, path: Path, threads: int | None, providers: list[str] | None) -> None:
        from edge_pct.engines.onnx_io import open_session, select_providers

        ort = require("onnxruntime", "cpu")
        opts = ort.SessionOptions()
        if threads:
            opts.intra_op_num_threads = threads
        chosen = select_providers(ort.get_available_providers(), providers)
        self.session: Any = open_session(ort, path, opts, chosen, path, fix=YOLOX_FIX)
        self.inputs = [(i.name, i.shape) for i in self.session.get_inputs()]
        self.outputs = [(o.name, o.shape) for o in self.session.get_outputs()]

    def run(self, x: np.ndarray) -> np.ndarray:
        if self.session is None:
            raise RuntimeError("YoloxDetector is closed; create a new one")
        return self.session.run([self.outputs[0][0]], {self.inputs[0][0]: x})[0]

    def close(self) -> None:
        self.session = None


class _OvModel:
    """An ONNX through openvino's CPU device at `precision` ("fp32" | "bf16"; None: BF16 where native):
    `inputs`/`outputs` as (name, shape), `run(x)` -> the first output."""

    def __init__(self, path: Path, threads: int | None, precision: str | None) -> None:
        from edge_pct.engines.openvino_backend import compile_onnx, cpu_config, native_bf16

        ov = require("openvino", "openvino")
        self.precision = precision or ("bf16" if native_bf16() else "fp32")
        self.model: Any = compile_onnx(ov, path, cpu_config(self.precision, threads), YOLOX_FIX)
        self.request = self.model.create_infer_request()
        self.inputs = [(i.get_any_name(), list(i.get_partial_shape())) for i in self.model.inputs]
        self.outputs = [(o.get_any_name(), list(o.get_partial_shape())) for o in self.model.outputs]

    def run(self, x: np.ndarray) -> np.ndarray:
        if self.request is None:
            raise RuntimeError("YoloxDetector is closed; create a new one")
        return self.request.infer({0: x})[0]

    def close(self) -> None:
        self.request = self.model = None


class _TrtModel:
    """An `edge-pct build` engine through TrtRunner (manifest checked against this TensorRT and GPU)."""

    def __init__(self, path: Path) -> None:
        from edge_pct.engines import trt_compat
        from edge_pct.engines.trt_runtime import TrtRunner

        trt_compat.import_tensorrt()  # the first thing to fix on a machine without it (before TrtRunner imports torch)
        self.runner = TrtRunner(path)
        self.inputs = [(s.name, s.shape) for s in self.runner.input_spec()]
        self.outputs = [(s.name, s.shape) for s in self.runner.output_spec()]

    def run(self, x: np.ndarray) -> np.ndarray:
        return self.runner.infer(x)[self.outputs[0][0]]

    def close(self) -> None:
        self.runner.close()


def _backend_for(path: Path, backend: str | None) -> str:
    """The runtime of `path`: `backend` (else $EDGE_PCT_DETECTOR_BACKEND for an .onnx), checked against the suffix,
    or from it (.engine -> tensorrt, .onnx -> onnxruntime)."""
    wanted = "tensorrt" if path.suffix.lower() == ".engine" else "onnxruntime"
    if backend is None and wanted == "onnxruntime":
        backend = os.environ.get(BACKEND_ENV) or None
    if backend is None:
        return wanted
    if backend not in BACKENDS:
        raise ConfigError(f"Unknown detector backend '{backend}' (backend= or ${BACKEND_ENV}). Valid: {list(BACKENDS)}")
    if backend.startswith("openvino") and wanted == "onnxruntime":
        return backend
    if backend != wanted:
        fix = (
            f"build one with `edge-pct build --onnx {path} --precision fp16 --out {path.with_suffix('.engine')}`"
            if backend == "tensorrt"
            else "pass the .onnx it was built from"
        )
        raise ConfigError(
            f"Detector backend '{backend}' cannot run '{path}' ({backend} takes "
            f"{'an .engine' if backend == 'tensorrt' else 'an .onnx'}): {fix}"
        )
    return backend


class YoloxDetector:
    """Person boxes from a YOLOX-format detector (`name` "onnx").

    Args:
        model_path: `.onnx` (onnxruntime) or `.engine` from `edge-pct build` (tensorrt), e.g. yolox_nano.onnx.
        score_threshold: person score obj * cls[person] cut, in [0, 1].
        nms_iou: NMS IoU threshold in [0, 1].
        max_persons: most boxes per frame.
        threads: onnxruntime / openvino CPU threads (None: the runtime's choice, one per physical core).
        backend: "onnxruntime" | "openvino" (BF16 where the CPU has it natively) | "openvino-fp32" | "tensorrt"; None:
            $EDGE_PCT_DETECTOR_BACKEND for an .onnx, else from the suffix (.engine -> tensorrt, .onnx -> onnxruntime).
        providers: onnxruntime execution providers (default: TensorRT, CUDA, CPU, those this build has).

    Raises:
        InputFileError: the model is missing, corrupt, or its input/output shapes are not YOLOX-like.
        ConfigError: a threshold out of range, or a backend that does not match the file.
        MissingDependencyError: onnxruntime (or openvino, tensorrt) is not installed.
    """

    name = "onnx"

    def __init__(
        self,
        model_path: str | Path,
        score_threshold: float = 0.3,
        nms_iou: float = 0.45,
        max_persons: int = 5,
        threads: int | None = None,
        backend: str | None = None,
        providers: list[str] | None = None,
    ) -> None:
        for what, value in (("score_threshold", score_threshold), ("nms_iou", nms_iou)):
            if not 0.0 <= value <= 1.0:
                raise ConfigError(f"{what} {value} is out of range: use a value in [0, 1]")
        if max_persons < 1:
            raise ConfigError(f"max_persons must be >= 1, got {max_persons}")
        self.path = Path(model_path)
        self.backend = _backend_for(self.path, backend)
        if not self.path.is_file():
            raise InputFileError(f"Detector model '{self.path}' not found: {YOLOX_FIX}")
        self.score_threshold, self.nms_iou, self.max_persons = float(score_threshold), float(nms_iou), max_persons
        if self.backend == "onnxruntime":
            self._model: Any = _OrtModel(self.path, threads, providers)
        elif self.backend.startswith("openvino"):
            self._model = _OvModel(self.path, threads, "fp32" if self.backend == "openvino-fp32" else None)
        else:
            self._model = _TrtModel(self.path)
        self.input_hw = _check_io(self.path, self._model.inputs, self._model.outputs)
        self._grids, self._strides = make_grids(self.input_hw)
        log.debug("YOLOX detector %s: input %s, %d cells, %s", self.path, self.input_hw, len(self._grids), self.backend)

    def __call__(self, frame_bgr: np.ndarray) -> np.ndarray:
        """frame_bgr (h, w, 3) uint8 BGR -> (D, 5) float32 [x1, y1, x2, y2, score], frame px clipped to the frame,
        score descending, D <= max_persons."""
        frame = check_frame(frame_bgr)
        canvas, ratio = letterbox(frame, self.input_hw)
        raw = np.asarray(self._model.run(to_input(canvas)), dtype=np.float32)
        return decode_yolox(
            raw[0],
            self._grids,
            self._strides,
            ratio,
            self.score_threshold,
            self.nms_iou,
            self.max_persons,
            image_wh=(frame.shape[1], frame.shape[0]),
        )

    def close(self) -> None:
        """Release the session or engine (idempotent)."""
        self._model.close()

    def __enter__(self) -> YoloxDetector:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
