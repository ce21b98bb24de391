"""Open the pose backend a user asked for, with defaults that need no arguments.

`open_backend()` with nothing given runs the shipped default model (`edge_pct.DEFAULT_MODEL`, a .pt) on the CPU
runtime `cpu_runtime()` picks: the first use exports it once to ONNX in the user cache
(`$EDGE_PCT_CACHE`, else `$XDG_CACHE_HOME/edge-pct`, else `~/.cache/edge-pct`), keyed by the checkpoint's
sha256, so later runs start in a fraction of a second and a retrained checkpoint never reuses a stale graph.
Without onnxruntime and openvino it falls back to torch. The backend follows the model file: .engine -> TensorRT,
.onnx / .pt / a calibrate folder -> `cpu_runtime()` (a .pt exported first), or the backend asked for.

The rule of `cpu_runtime()` (measured, docs/openvino.md): OpenVINO (BF16; the INT8 CPU graph of a calibrate
folder) where openvino is installed, the CPU has native BF16 (AMX or AVX-512 BF16) and onnxruntime is not the GPU
build (not for the TensorRT Q/DQ graph, which OpenVINO does not compile); else ONNX Runtime.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import json
import logging
import os
from pathlib import Path
from typing import Any

from edge_pct.core.errors import ConfigError, InputFileError
from edge_pct.core.files import file_sha256
from edge_pct.engines.runtime import BACKENDS, PoseBackend, create_backend

log = logging.getLogger(__name__)

_SUFFIX_BACKEND = {".engine": "tensorrt", ".onnx": "onnxruntime"}


def cpu_runtime() -> str | None:
    """The runtime for an ONNX graph when none is asked for: "openvino" where openvino is installed, the CPU has
    native BF16 and onnxruntime is not the GPU build (CUDA / TensorRT providers win there), else "onnxruntime" where
    it is installed, else None. Looks at installed packages only: imports no runtime."""
    from edge_pct.engines.openvino_backend import native_bf16

    has = {m: importlib.util.find_spec(m) is not None for m in ("openvino", "onnxruntime")}
    if has["openvino"] and native_bf16() and not _ort_gpu_build():
        return "openvino"
    return "onnxruntime" if has["onnxruntime"] else None


def _is_tensorrt_graph(path: Path) -> bool:
    """Whether `path` is the TensorRT Q/DQ graph of `edge-pct calibrate` (its sidecar says so)."""
    side = path.with_suffix(".json")
    if path.suffix.lower() != ".onnx" or not side.is_file():
        return False
    try:
        return json.loads(side.read_text()).get("quantization_target") == "tensorrt"
    except (OSError, ValueError, AttributeError):
        return False  # the backend names the broken sidecar


def _ort_gpu_build() -> bool:
    try:
        importlib.metadata.distribution("onnxruntime-gpu")
    except importlib.metadata.PackageNotFoundError:
        return False
    return True


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
    (e.g. threads for onnxruntime and openvino). Raises InputFileError for a missing model and ConfigError for a
    backend that cannot run that file type.
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
        backend = "tensorrt" if suffix == ".engine" else cpu_runtime() or _SUFFIX_BACKEND.get(suffix, "torch")
        if backend == "openvino" and _is_tensorrt_graph(path):
            backend = "onnxruntime"  # OpenVINO does not compile the Q/DQ graph; ONNX Runtime runs it (and warns)
    if (backend == "onnxruntime" or backend.startswith("openvino")) and suffix == ".pt":
        path = cached_onnx(path)
    elif backend.startswith("openvino") and suffix != ".onnx":
        raise ConfigError(f"The {backend} backend runs exported ONNX graphs, not '{path}': pass the .onnx (or the .pt "
                          "it came from)")
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
    """The graph of an `edge-pct calibrate` folder that `backend` should run: ONNX Runtime and OpenVINO (the default)
    take the CPU graph, which runs faster than FP32 there (the TensorRT Q/DQ graph runs slower on ONNX Runtime and
    does not compile in OpenVINO); TensorRT needs an engine built
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
                          "--backend onnxruntime or openvino (or leave it out)")
    return folder / CPU_NAME
