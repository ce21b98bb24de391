"""Open the pose backend a user asked for, with defaults that need no arguments.

`open_backend()` with nothing given runs the shipped default model (`edge_pct.DEFAULT_MODEL`, a .pt) on
ONNX Runtime, the embedded default: the first use exports it once to ONNX in the user cache
(`$EDGE_PCT_CACHE`, else `$XDG_CACHE_HOME/edge-pct`, else `~/.cache/edge-pct`), keyed by the checkpoint's
sha256, so later runs start in a fraction of a second and a retrained checkpoint never reuses a stale graph.
Without onnxruntime it falls back to torch. The backend follows the model file: .engine -> TensorRT,
.onnx -> ONNX Runtime, .pt -> ONNX Runtime (exported) or torch when asked.
"""

from __future__ import annotations

import importlib.util
import logging
import os
from pathlib import Path
from typing import Any

from edge_pct.core.errors import ConfigError, InputFileError
from edge_pct.core.files import file_sha256
from edge_pct.engines.runtime import BACKENDS, PoseBackend, create_backend

log = logging.getLogger(__name__)

_SUFFIX_BACKEND = {".engine": "tensorrt", ".onnx": "onnxruntime"}


def cache_dir() -> Path:
    """Where exported default graphs live (created on use)."""
    if os.environ.get("EDGE_PCT_CACHE"):
        return Path(os.environ["EDGE_PCT_CACHE"])
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "edge-pct"


def cached_onnx(checkpoint: str | Path) -> Path:
    """The ONNX export of `checkpoint` in the cache, exported now if missing (a few seconds, once)."""
    from edge_pct.export.onnx import export_onnx

    digest = file_sha256(checkpoint)[:16]
    out = cache_dir() / digest / "model.onnx"
    if not out.is_file():
        log.info("exporting %s to %s (first use only)", checkpoint, out)
        out.parent.mkdir(parents=True, exist_ok=True)
        export_onnx(checkpoint, out)  # writes atomically: an interrupted export leaves no half graph
    return out


def open_backend(model: str | Path | None = None, backend: str | None = None, **kwargs: Any) -> PoseBackend:
    """A PoseBackend for `model` (default: the shipped model) on `backend` (default: from the file type).

    `model` may be a `.pt` checkpoint, an exported `.onnx`, a TensorRT `.engine`, or an `edge-pct calibrate` output
    folder, from which the graph for the backend is taken (`calibrated_graph`). kwargs go to the backend class
    (e.g. threads for onnxruntime). Raises InputFileError for a missing model and ConfigError for a backend that
    cannot run that file type.
    """
    from edge_pct.core.package import DEFAULT_MODEL

    path = Path(model) if model is not None else DEFAULT_MODEL
    if path.is_dir():
        path = calibrated_graph(path, backend)
    if not path.is_file():
        fix = "train one with `edge-pct train` or pass --model PT/ONNX/ENGINE or an `edge-pct calibrate` folder"
        raise InputFileError(f"Pose model '{path}' not found: {fix}")
    if backend is not None and backend not in BACKENDS:
        return create_backend(backend, path)  # raises the did-you-mean ConfigError
    suffix = path.suffix.lower()
    if backend is None:
        has_ort = importlib.util.find_spec("onnxruntime") is not None
        backend = _SUFFIX_BACKEND.get(suffix, "onnxruntime" if has_ort else "torch")
    if backend == "onnxruntime" and suffix == ".pt":
        path = cached_onnx(path)
    elif backend == "torch" and suffix != ".pt":
        raise ConfigError(
            f"The torch backend runs .pt checkpoints, not '{path}': pass --backend "
            f"{_SUFFIX_BACKEND.get(suffix, 'onnxruntime')} or a .pt model"
        )
    elif backend == "tensorrt" and suffix != ".engine":
        raise ConfigError(
            f"The tensorrt backend runs engines, not '{path}': build one with "
            f"`edge-pct build --onnx ONNX --precision fp16 --out model.engine`"
        )
    return create_backend(backend, path, **kwargs)


def calibrated_graph(folder: Path, backend: str | None) -> Path:
    """The graph of an `edge-pct calibrate` folder that `backend` should run: ONNX Runtime (the default) takes the
    CPU graph, which runs faster than FP32 there (the TensorRT Q/DQ graph runs slower); TensorRT needs an engine built
    from the Q/DQ graph, and torch runs checkpoints only: both get a ConfigError naming the command."""
    from edge_pct.calibration.artifacts import CPU_NAME, INT8_NAME

    if not (folder / CPU_NAME).is_file():
        raise InputFileError(f"'{folder}' is a folder without {CPU_NAME}: pass a model file or the --out folder of "
                             "`edge-pct calibrate`")
    if backend == "tensorrt":
        raise ConfigError(f"TensorRT runs an engine: build it from the calibrated graph with `edge-pct build --onnx "
                          f"{folder / INT8_NAME} --precision int8 --out runs/model.int8.engine`, then pass that engine")
    if backend == "torch":
        raise ConfigError(f"The torch backend runs .pt checkpoints, not the INT8 graphs of '{folder}': pass "
                          "--backend onnxruntime (or leave it out)")
    return folder / CPU_NAME
