"""What every graph-running backend shares: the output names, array checks, the `edge-pct export` sidecar,
ONNX Runtime sessions with clean load errors, and runs over any batch on a fixed-batch graph.

The ONNX Runtime and TensorRT backends (`runtime.py`, `trt_runtime.py`) and the YOLOX detector import from here;
it imports no runtime itself (onnxruntime arrives as an argument).
"""

from __future__ import annotations

import difflib
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from edge_pct.core.errors import InputFileError, MissingDependencyError
from edge_pct.core.files import read_json_artifact

OUTPUT_KEYS = ("joints", "confidence", "token_probs")
# Fastest first; each is used only when this onnxruntime build has it (onnxruntime-gpu for CUDA/TensorRT).
PREFERRED_PROVIDERS = ("TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider")
SIDECAR_KEYS = ("onnx", "decoder_onnx", "input_size", "batch", "precision", "num_joints", "num_tokens",
                "codebook_size")


def check_array(x: np.ndarray, tail: tuple[int, ...], what: str) -> np.ndarray:
    """(N, *tail) -> C-contiguous float32, or a ValueError naming the expected shape."""
    x = np.asarray(x)
    if x.ndim != len(tail) + 1 or tuple(x.shape[1:]) != tail:
        raise ValueError(f"{what} must be (N, {', '.join(map(str, tail))}), got {x.shape}")
    return np.ascontiguousarray(x, dtype=np.float32)


def image_shape(input_size: tuple[int, int]) -> tuple[int, int, int]:
    w, h = input_size
    return 3, h, w


def empty_outputs(num_joints: int, num_tokens: int, codebook_size: int) -> dict[str, np.ndarray]:
    return {"joints": np.zeros((0, num_joints, 2), np.float32), "confidence": np.zeros((0, num_joints), np.float32),
            "token_probs": np.zeros((0, num_tokens, codebook_size), np.float32)}


def read_sidecar(onnx_path: str | Path) -> dict[str, Any]:
    """The `<stem>.json` written by `edge-pct export` next to `<stem>.onnx`; InputFileError naming the fix."""
    path = Path(onnx_path)
    side = path.with_suffix(".json")
    fix = f"run `edge-pct export --checkpoint PT --out {path}`"
    if not path.is_file():
        raise InputFileError(f"ONNX model '{path}' not found: {fix}")
    return read_json_artifact(side, "Sidecar", set(SIDECAR_KEYS), "`edge-pct export`", fix)


def select_providers(available: Sequence[str], requested: Sequence[str] | None = None) -> list[str]:
    """Execution providers to ask for: `requested` (each must be available), or the fastest available of
    TensorRT, CUDA, CPU. ONNX Runtime falls back along the list when one fails to start."""
    if requested is None:
        return [p for p in PREFERRED_PROVIDERS if p in available] or list(available)
    for p in requested:
        if p not in available:
            close = difflib.get_close_matches(p, list(available), n=1)
            hint = f" Did you mean '{close[0]}'?" if close else ""
            raise MissingDependencyError(f"Execution provider '{p}' is not in this onnxruntime build. Valid: "
                                         f"{sorted(available)}.{hint} (CUDA/TensorRT: pip install 'edge-pct[gpu]')")
    return list(requested)


def open_session(ort: Any, path: Path, opts: Any, providers: list[str], onnx_path: Path,
                  fix: str | None = None) -> Any:
    """onnxruntime.InferenceSession of `path` (the image or decoder graph exported as `onnx_path`), with ORT's
    load errors (not RuntimeError subclasses) as InputFileError ending in `fix` (default: re-export `onnx_path`)."""
    fix = fix or f"re-export with `edge-pct export --checkpoint PT --out {onnx_path}`"
    state = ort.capi.onnxruntime_pybind11_state
    load_errors = tuple(getattr(state, n) for n in ("Fail", "InvalidArgument", "InvalidGraph", "InvalidProtobuf",
                                                    "NoSuchFile", "NoModel", "NotImplemented", "RuntimeException")
                        if hasattr(state, n))
    if not path.is_file():
        raise InputFileError(f"ONNX model '{path}' not found: {fix}")
    try:
        return ort.InferenceSession(str(path), opts, providers=providers)
    except load_errors as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise InputFileError(f"ONNX model '{path}' is corrupt or unreadable by onnxruntime {ort.__version__} "
                             f"({first}): {fix}") from e


def run_padded(session: Any, feed: str, x: np.ndarray, outputs: Sequence[str], batch: int | None) -> list:
    """session.run over any N: one run for a dynamic batch; chunks of `batch` for a fixed one, the last
    chunk padded with copies of its last row (in-distribution) and the padding cut off again."""
    if batch is None:
        return session.run(list(outputs), {feed: x})
    parts = []
    for s in range(0, len(x), batch):
        chunk = x[s:s + batch]
        n = len(chunk)
        if n < batch:
            chunk = np.concatenate([chunk, np.repeat(chunk[-1:], batch - n, axis=0)])
        parts.append([o[:n] for o in session.run(list(outputs), {feed: chunk})])
    return [np.concatenate(p) for p in zip(*parts, strict=True)]
