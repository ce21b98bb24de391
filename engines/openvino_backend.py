"""The OpenVINO backend: `edge-pct export` output on Intel's CPU runtime, FP32, BF16 or the calibrated INT8 CPU graph.

OpenVINO reads the exported ONNX directly (no conversion step) and, on x86 CPUs with AMX or AVX-512 BF16, runs
its convolutions and matmuls in BF16 tiles when the inference precision hint says so; ONNX Runtime's CPU provider
runs the same FP32 graph on FP32 kernels only. Precision:

- "fp32": `INFERENCE_PRECISION_HINT=f32` (set explicitly: OpenVINO's own default is BF16 on AMX CPUs).
- "bf16": the whole image graph with the BF16 hint. The joint shifts this causes come from the backbone, not from
  the token logits, the decoder or the heatmap refinement: an FP32 tail leaves them as they are
  (`python -m benchmarks.joint_shift --parts`); COCO AP and LSP PCK stay at FP32's (docs/openvino.md).
- None: "bf16" where the CPU has native BF16 (`native_bf16`), else "fp32".

An INT8 CPU graph (`model.int8.cpu.onnx` of `edge-pct calibrate`) runs its quantized layers in INT8 (VNNI / AMX)
and its FP32 island at the hint ("fp32" unless "bf16" is asked for). The TensorRT Q/DQ graph
(`model.int8.tensorrt.onnx`) does not compile in OpenVINO and is refused with the name of the CPU graph. The tokenizer
decoder graph (`decode`, for token smoothing) always runs in FP32: it is tiny. A call runs all its crops in one
inference (up to MAX_STATIC_BATCH). A dynamic-batch export runs on a dynamic-batch compile at once, and each batch
size met gets a static compile in a background thread (~0.3 s), which takes over when ready: static shapes run
~1.4x faster on the CPU plugin (`compile_batch(n)` warms a size up front).
https://docs.openvino.ai/ (CPU device, precision control).
"""

from __future__ import annotations

import functools
import logging
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from edge_pct.core.errors import ConfigError, InputFileError
from edge_pct.core.optional import require
from edge_pct.engines.onnx_io import OUTPUT_KEYS, check_array, empty_outputs, image_shape, read_sidecar

log = logging.getLogger(__name__)

PRECISIONS = ("fp32", "bf16")
_HINTS = {"fp32": "f32", "bf16": "bf16"}
BF16_FLAGS = ("amx_bf16", "avx512_bf16")  # /proc/cpuinfo flags of CPUs with native BF16 dot products
MAX_STATIC_BATCH = 32  # most images per inference of a dynamic-batch export; larger calls run in chunks
MAX_COMPILED = 16  # batch sizes that get a static compile


@functools.cache
def native_bf16(cpuinfo: str = "/proc/cpuinfo") -> bool:
    """Whether this CPU computes BF16 natively (AMX or AVX-512 BF16), read from `cpuinfo` without importing openvino;
    False where the file is absent (not Linux) or names neither flag."""
    try:
        text = Path(cpuinfo).read_text(errors="replace")
    except OSError:
        return False
    flags = next((line.split(":", 1)[1].split() for line in text.splitlines() if line.startswith("flags")), [])
    return any(f in flags for f in BF16_FLAGS)


def _first_line(e: Exception) -> str:
    lines = [ln.strip() for ln in str(e).splitlines() if ln.strip() and not ln.startswith("Exception from")]
    return (lines[0] if lines else type(e).__name__)[:200]


def read_onnx(ov: Any, path: Path, fix: str) -> Any:
    """openvino Model of the ONNX at `path`; a missing or unreadable file as a one-line InputFileError ending in
    `fix`."""
    if not path.is_file():
        raise InputFileError(f"ONNX model '{path}' not found: {fix}")
    try:
        return ov.Core().read_model(str(path))
    except RuntimeError as e:
        raise InputFileError(f"ONNX model '{path}' does not load in OpenVINO {ov.__version__} ({_first_line(e)}): "
                             f"{fix}") from e


def compile_model(model: Any, config: dict[str, Any], path: Path, fix: str | None = None) -> Any:
    """openvino CompiledModel of `model` (read from `path`) on the CPU device; a compile error as a one-line
    InputFileError ending in `fix` (default: re-export `path`)."""
    import openvino as ov

    fix = fix or f"re-export with `edge-pct export --checkpoint PT --out {path}`"
    try:
        return ov.Core().compile_model(model, "CPU", config)
    except RuntimeError as e:
        raise InputFileError(f"ONNX model '{path}' does not compile in OpenVINO {ov.__version__} ({_first_line(e)}): "
                             f"{fix}") from e


def compile_onnx(ov: Any, path: Path, config: dict[str, Any], fix: str) -> Any:
    """openvino CompiledModel of the ONNX at `path` on the CPU device (read and compile errors as InputFileError)."""
    return compile_model(read_onnx(ov, path, fix), config, path, fix)


def cpu_config(precision: str, threads: int | None) -> dict[str, Any]:
    """CPU compile properties: precision hint, latency mode (one stream), and `threads` inference threads."""
    config: dict[str, Any] = {"INFERENCE_PRECISION_HINT": _HINTS[precision], "PERFORMANCE_HINT": "LATENCY"}
    if threads:
        config["INFERENCE_NUM_THREADS"] = int(threads)
    return config


class OpenVinoBackend:
    """OpenVINO (CPU device) on `edge-pct export` output: `model.onnx`, `model.decoder.onnx` and `model.json`.

    Args:
        onnx_path: the image graph (an FP32 export or `model.int8.cpu.onnx`); sidecar and decoder are found beside it.
        precision: "fp32" | "bf16" inference precision (module docstring); None: "bf16" on CPUs with native BF16
            ("fp32" for the FP32 island of an INT8 graph).
        threads: inference threads (default: OpenVINO's choice, one per physical core).

    Raises:
        InputFileError: a missing or corrupt graph or sidecar, the TensorRT Q/DQ graph, a graph that disagrees with
            its sidecar.
        ConfigError: an unknown precision.
        MissingDependencyError: openvino is not installed.
    """

    name = "openvino"

    def __init__(self, onnx_path: str | Path, precision: str | None = None, threads: int | None = None) -> None:
        if precision is not None and precision not in PRECISIONS:
            raise ConfigError(f"Unknown OpenVINO precision '{precision}'. Valid: {list(PRECISIONS)} (INT8: pass the "
                              "`edge-pct calibrate` folder or its model.int8.cpu.onnx)")
        path = Path(onnx_path)
        meta = read_sidecar(path)
        if meta.get("quantization_target") == "tensorrt":
            cpu = path.with_name(meta.get("cpu_onnx") or "model.int8.cpu.onnx")
            raise InputFileError(f"'{path}' is the TensorRT Q/DQ graph, which OpenVINO does not compile: pass the CPU "
                                 f"graph '{cpu}' (or the calibrate folder '{path.parent}')")
        ov = require("openvino", "openvino")
        int8 = meta["precision"] == "int8"
        hint = precision or ("bf16" if native_bf16() and not int8 else "fp32")
        fix = f"re-export with `edge-pct export --checkpoint PT --out {path}`"
        self._config = cpu_config(hint, threads)
        self._graph = read_onnx(ov, path, fix)
        decoder = path.with_name(meta["decoder_onnx"])
        self._decoder = compile_model(read_onnx(ov, decoder, fix), cpu_config("fp32", threads), decoder, fix)
        self.meta, self.path = meta, path
        self.hint: str = hint  # what the float layers run at
        self.precision: str = "int8" if int8 else hint
        self.input_size: tuple[int, int] = tuple(meta["input_size"])
        self.max_batch: int | None = meta["batch"]
        self._dims = (meta["num_joints"], meta["num_tokens"], meta["codebook_size"])
        self._check_io(self._graph, image_shape(self.input_size), OUTPUT_KEYS)
        self._decoder_outputs = self._check_io(self._decoder, self._dims[1:], ("joints",))
        self._decoder_request = self._decoder.create_infer_request()
        # A fixed-batch graph compiles once. A dynamic one runs at once on a dynamic-batch compile, while a static
        # compile for each batch size met is made in a background thread (~0.3 s each) and takes over when ready.
        self._any_batch = self._compiled_for(self.max_batch)  # compile now: a bad graph fails here, not mid-stream
        self._by_batch: dict[int, tuple[Any, list[Any]]] = {}  # batch size -> (infer request, output ports)
        self._pending: set[int] = set()
        self._compiling = threading.Lock()  # one background compile at a time (they share the read graph)

    def _compiled_for(self, n: int | None) -> tuple[Any, list[Any]]:
        """(infer request, output ports) of the image graph compiled for batch `n` (None: any batch)."""
        graph = self._graph
        if n is not None and self._graph.get_parameters()[0].get_partial_shape()[0].is_dynamic:
            graph = self._graph.clone()
            graph.reshape({0: [n, *image_shape(self.input_size)]})
        compiled = compile_model(graph, self._config, self.path)
        return compiled.create_infer_request(), self._check_io(compiled, image_shape(self.input_size), OUTPUT_KEYS)

    def compile_batch(self, n: int) -> None:
        """Compile the static model for batch `n` now, in this thread (a warm-up; otherwise it happens in the
        background the first time `n` images come)."""
        if self.max_batch is None and n not in self._by_batch:
            with self._compiling:
                self._by_batch[n] = self._compiled_for(n)

    def _compile_in_background(self, n: int) -> None:
        try:
            with self._compiling:
                self._by_batch[n] = self._compiled_for(n)
        except InputFileError:  # the dynamic compile keeps serving this size
            log.warning("OpenVINO: no static compile for batch %d of %s; the dynamic one runs it", n, self.path)

    def _request_for(self, n: int) -> tuple[Any, list[Any]]:
        """The static compile for batch `n` when ready, else the dynamic one (starting the static compile for `n`
        in the background the first time, up to MAX_COMPILED sizes): static shapes run ~1.4x faster on
        OpenVINO's CPU plugin than a dynamic-batch compile."""
        ready = self._by_batch.get(n)
        if ready is not None or self.max_batch is not None:
            return ready or self._any_batch
        if n not in self._pending and len(self._pending) < MAX_COMPILED:
            self._pending.add(n)
            threading.Thread(target=self._compile_in_background, args=(n,), daemon=False,  # a daemon aborts exit
                             name=f"openvino-compile-b{n}").start()
        return self._any_batch

    def _check_io(self, compiled: Any, tail: tuple[int, ...], outputs: Sequence[str]) -> list[Any]:
        """The (compiled) model's output ports in the order of `outputs`; InputFileError when the graph does not match
        its sidecar (one input (N, *tail), those outputs)."""
        inputs = compiled.inputs
        ports = {name: o for o in compiled.outputs for name in o.get_names()}
        shape = inputs[0].get_partial_shape() if len(inputs) == 1 else None
        ok = shape is not None and shape.rank.is_static and len(shape) == len(tail) + 1
        ok = ok and all(d.is_static and d.get_length() == t for d, t in zip(list(shape)[1:], tail, strict=True))
        if not ok or not set(outputs) <= set(ports):
            got = [(i.get_any_name(), str(i.get_partial_shape())) for i in inputs]
            raise InputFileError(f"'{self.path}' and its sidecar disagree (graph inputs {got}, outputs "
                                 f"{sorted(ports)}; sidecar: (N, {', '.join(map(str, tail))}) -> {list(outputs)}): "
                                 f"re-export with `edge-pct export --checkpoint PT --out {self.path}`")
        return [ports[k] for k in outputs]

    def _infer(self, x: np.ndarray) -> list[np.ndarray]:
        """The image graph on x (N, 3, H, W): one inference for N <= MAX_STATIC_BATCH (the graph's own batch for a
        fixed-batch export), else chunks; the last chunk of a fixed batch is padded with copies of its last row
        (in-distribution) and the padding cut off again."""
        step = self.max_batch or MAX_STATIC_BATCH
        parts = []
        for s in range(0, len(x), step):
            chunk = x[s:s + step]
            n = len(chunk)
            if self.max_batch is not None and n < step:
                chunk = np.concatenate([chunk, np.repeat(chunk[-1:], step - n, axis=0)])
            request, ports = self._request_for(len(chunk))
            res = request.infer({0: chunk})
            parts.append([np.array(res[p][:n], np.float32) for p in ports])
        return parts[0] if len(parts) == 1 else [np.concatenate(p) for p in zip(*parts, strict=True)]

    def __call__(self, images: np.ndarray) -> dict[str, np.ndarray]:
        """images (N, 3, H, W) float32 RGB 0-255 -> joints (N, J, 2) crop px, confidence (N, J), token_probs
        (N, M, V), all float32."""
        x = check_array(images, image_shape(self.input_size), "images")
        if not len(x):
            return empty_outputs(*self._dims)
        return dict(zip(OUTPUT_KEYS, self._infer(x), strict=True))

    def decode(self, token_probs: np.ndarray) -> np.ndarray:
        """token_probs (N, M, V) float32 -> joints (N, J, 2) float32 model-input crop px (FP32 decoder graph)."""
        p = check_array(token_probs, self._dims[1:], "token_probs")
        if not len(p):
            return np.zeros((0, self._dims[0], 2), np.float32)
        res = self._decoder_request.infer({0: p})
        return np.array(res[self._decoder_outputs[0]], np.float32)
