"""Pose backends: one protocol over torch, ONNX Runtime, OpenVINO and TensorRT, chosen by name.

A backend maps model input (N, 3, H, W) float32 RGB 0-255 (`edge_pct.core.geometry.to_model_input`) to
{"joints": (N, 17, 2) model-input crop px, "confidence": (N, 17) in [0, 1], "token_probs": (N, M, V)}, and
`decode(token_probs)` runs the tokenizer decoder alone (after per-track token smoothing). Pre- and
post-processing are numpy (`edge_pct.core.geometry`), shared by every backend; a backend only infers.
Heavy runtimes (torch, onnxruntime, openvino, tensorrt) are imported by the backend that needs them, never here.
The OpenVINO names carry the precision: "openvino" (BF16 on CPUs with native BF16, else FP32), "openvino-fp32",
"openvino-bf16" (`openvino_backend.py`).
ONNX Runtime execution providers: https://onnxruntime.ai/docs/execution-providers/.
"""

from __future__ import annotations

import difflib
import functools
import logging
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

import numpy as np

from edge_pct.core.errors import ConfigError, InputFileError
from edge_pct.core.optional import require
from edge_pct.engines.onnx_io import (
    OUTPUT_KEYS,
    check_array,
    empty_outputs,
    image_shape,
    open_session,
    read_sidecar,
    run_padded,
    select_providers,
)

if TYPE_CHECKING:
    from edge_pct.models.classifier import PoseClassifier

log = logging.getLogger(__name__)



@runtime_checkable
class PoseBackend(Protocol):
    """What every backend offers. `max_batch` is the most images one graph run takes (a fixed-batch
    export), None when unlimited; `__call__` accepts any N either way (it splits and pads)."""

    name: str
    precision: str
    input_size: tuple[int, int]
    max_batch: int | None

    def __call__(self, images: np.ndarray) -> dict[str, np.ndarray]:
        """images (N, 3, H, W) float32 RGB 0-255 -> joints (N, J, 2) crop px, confidence (N, J), token_probs
        (N, M, V), all float32."""
        ...

    def decode(self, token_probs: np.ndarray) -> np.ndarray:
        """token_probs (N, M, V) float32 -> joints (N, J, 2) float32 model-input crop px."""
        ...


class TorchBackend:
    """The PyTorch model itself (reference backend): a classifier checkpoint path or a PoseClassifier.

    Runs the same modules that are exported (`edge_pct.export.PoseGraph` / `DecoderGraph`), in chunks of
    `batch` images, on the model's device (`device` moves it).
    """

    name = "torch"
    precision = "fp32"

    def __init__(self, model: str | Path | PoseClassifier, batch: int = 32, device: str | None = None) -> None:
        from edge_pct.export.onnx import DecoderGraph, PoseGraph

        if isinstance(model, (str, Path)):
            from edge_pct.models.factory import load_classifier

            model = load_classifier(model)
        if device is not None:
            model = model.to(device)
        self.model = model.eval()
        self._graph, self._decoder = PoseGraph(self.model).eval(), DecoderGraph(self.model).eval()
        self._device = next(self.model.parameters()).device
        self._chunk = batch
        tcfg = self.model.tokenizer.cfg
        self._dims = (tcfg.num_joints, tcfg.num_tokens, tcfg.codebook_size)
        self.input_size: tuple[int, int] = tuple(self.model.cfg.input_size)
        self.max_batch: int | None = None

    def __call__(self, images: np.ndarray) -> dict[str, np.ndarray]:
        import torch

        x = check_array(images, image_shape(self.input_size), "images")
        if not len(x):
            return empty_outputs(*self._dims)
        parts = []
        with torch.inference_mode():
            for s in range(0, len(x), self._chunk):
                outs = self._graph(torch.from_numpy(x[s:s + self._chunk]).to(self._device))
                parts.append([t.float().cpu().numpy() for t in outs])
        return {k: np.concatenate(p) for k, p in zip(OUTPUT_KEYS, zip(*parts, strict=True), strict=True)}

    def decode(self, token_probs: np.ndarray) -> np.ndarray:
        import torch

        _, m, v = self._dims
        p = check_array(token_probs, (m, v), "token_probs")
        if not len(p):
            return np.zeros((0, self._dims[0], 2), np.float32)
        with torch.inference_mode():
            return self._decoder(torch.from_numpy(p).to(self._device)).float().cpu().numpy()


class OnnxRuntimeBackend:
    """ONNX Runtime on `edge-pct export` output: `model.onnx`, `model.decoder.onnx` and the `model.json` sidecar.

    Args:
        onnx_path: the image graph; the sidecar and decoder are found next to it.
        providers: execution providers (default: TensorRT, CUDA, CPU, those this onnxruntime build has).
        threads: intra-op CPU threads (default: onnxruntime's choice, one per physical core).
        warn_slow_graph: warn when the TensorRT Q/DQ graph is run on the CPU provider (off for calibrate's own
            side-by-side measurement, which runs it on purpose).
    """

    name = "onnxruntime"

    def __init__(self, onnx_path: str | Path, providers: list[str] | None = None, threads: int | None = None,
                 warn_slow_graph: bool = True) -> None:
        path = Path(onnx_path)
        meta = read_sidecar(path)
        ort = require("onnxruntime", "cpu")
        chosen = select_providers(ort.get_available_providers(), providers)
        opts = ort.SessionOptions()
        if threads:
            opts.intra_op_num_threads = threads
        self._session = open_session(ort, path, opts, chosen, path)
        self._decoder = open_session(ort, path.with_name(meta["decoder_onnx"]), opts, chosen, path)
        self.meta = meta
        self.path = path
        self.providers: list[str] = self._session.get_providers()  # what ORT actually runs on
        on_cpu = self.providers[0] == "CPUExecutionProvider"
        if warn_slow_graph and on_cpu and meta.get("quantization_target") == "tensorrt":
            log.warning("'%s' is the TensorRT Q/DQ graph: ONNX Runtime's CPU kernels run it slower than FP32; load "
                        "'%s' beside it (or pass the calibrate folder as the model)", path, meta.get("cpu_onnx"))
        self.precision: str = meta["precision"]
        self.input_size: tuple[int, int] = tuple(meta["input_size"])
        self.max_batch: int | None = meta["batch"]
        self._dims = (meta["num_joints"], meta["num_tokens"], meta["codebook_size"])
        self._input = self._check_io(self._session, image_shape(self.input_size), OUTPUT_KEYS)
        self._decoder_input = self._check_io(self._decoder, self._dims[1:], ("joints",))

    def _check_io(self, session: Any, tail: tuple[int, ...], outputs: Sequence[str]) -> str:
        """The graph's single input name; InputFileError when the graph does not match its sidecar."""
        inputs = session.get_inputs()
        names = {o.name for o in session.get_outputs()}
        shape = tuple(inputs[0].shape[1:]) if len(inputs) == 1 else ()
        if len(inputs) != 1 or shape != tail or not set(outputs) <= names:
            got = [(i.name, i.shape) for i in inputs]
            raise InputFileError(f"'{self.path}' and its sidecar disagree (graph inputs {got}, outputs "
                                 f"{sorted(names)}; sidecar: (N, {', '.join(map(str, tail))}) -> {list(outputs)}): "
                                 "re-export with "
                                 f"`edge-pct export --checkpoint PT --out {self.path}`")
        return inputs[0].name

    def __call__(self, images: np.ndarray) -> dict[str, np.ndarray]:
        x = check_array(images, image_shape(self.input_size), "images")
        if not len(x):
            return empty_outputs(*self._dims)
        outs = run_padded(self._session, self._input, x, OUTPUT_KEYS, self.max_batch)
        return dict(zip(OUTPUT_KEYS, outs, strict=True))

    def decode(self, token_probs: np.ndarray) -> np.ndarray:
        p = check_array(token_probs, self._dims[1:], "token_probs")
        if not len(p):
            return np.zeros((0, self._dims[0], 2), np.float32)
        return run_padded(self._decoder, self._decoder_input, p, ("joints",), self.max_batch)[0]


def _tensorrt_backend(model_path: str | Path, **kwargs: Any) -> PoseBackend:
    """The TensorRT backend (edge_pct.engines.trt_runtime.TrtBackend) on an `edge-pct build` engine; imported
    here, on use: TrtBackend imports tensorrt first (MissingDependencyError naming the extra and JetPack without it)."""
    from edge_pct.engines.trt_runtime import TrtBackend

    return TrtBackend(model_path, **kwargs)


def _openvino_backend(model_path: str | Path, precision: str | None = None, **kwargs: Any) -> PoseBackend:
    """The OpenVINO backend (edge_pct.engines.openvino_backend.OpenVinoBackend) on an exported ONNX; openvino itself
    is imported when the backend is built (MissingDependencyError naming the extra without it)."""
    from edge_pct.engines.openvino_backend import OpenVinoBackend

    return OpenVinoBackend(model_path, precision=precision, **kwargs)


BACKENDS: dict[str, Callable[..., PoseBackend]] = {
    "torch": TorchBackend,
    "onnxruntime": OnnxRuntimeBackend,
    "openvino": _openvino_backend,
    "openvino-fp32": functools.partial(_openvino_backend, precision="fp32"),
    "openvino-bf16": functools.partial(_openvino_backend, precision="bf16"),
    "tensorrt": _tensorrt_backend,
}


def create_backend(name: str, model_path: str | Path, **kwargs: Any) -> PoseBackend:
    """Build backend `name` on `model_path` (.pt for torch, .onnx for onnxruntime and openvino, .engine for tensorrt);
    kwargs go to its class."""
    factory = BACKENDS.get(name)
    if factory is None:
        close = difflib.get_close_matches(name, list(BACKENDS), n=1)
        hint = f" Did you mean '{close[0]}'?" if close else ""
        raise ConfigError(f"Unknown backend '{name}'. Valid: {sorted(BACKENDS)}.{hint}")
    return factory(model_path, **kwargs)
