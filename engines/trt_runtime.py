"""TensorRT runtime: `TrtRunner` (load, allocate, infer, close) and `TrtBackend` (the PoseBackend of an engine).

Before TensorRT deserializes an engine, its manifest (`<engine stem>.json`, written by `edge-pct build`) is checked
against the running TensorRT version and GPU compute capability: an engine only runs where it was built, and a
mismatch is an InputFileError carrying the exact `edge-pct build ...` command that rebuilds it (`check_manifest`,
a pure function). Device memory: torch CUDA tensors (torch is a core dependency; `data_ptr()` is the address
TensorRT takes and the caching allocator frees it on close) and one torch.cuda.Stream (`cuda_stream` is the raw
handle), with pinned host staging buffers so both copies are asynchronous. RAII layout after TensorRT's
samples/python/common_runtime.py; version-dependent calls go through `trt_compat`.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from edge_pct.core.errors import EdgePctError, InputFileError
from edge_pct.core.files import read_json_artifact
from edge_pct.engines import trt_compat
from edge_pct.engines.build import gpu_info, manifest_path
from edge_pct.engines.onnx_io import (
    OUTPUT_KEYS,
    SIDECAR_KEYS,
    check_array,
    empty_outputs,
    image_shape,
    open_session,
    read_sidecar,
    run_padded,
)

log = logging.getLogger(__name__)

_BUILD_DEFAULT_MAX_BATCH = 8


def rebuild_command(manifest: Mapping[str, Any], engine: str | Path) -> str:
    """The `edge-pct build` command line that rebuilds `engine` from the ONNX named in its manifest."""
    cmd = (f"edge-pct build --onnx {manifest.get('onnx', 'ONNX')} --precision {manifest.get('precision', 'fp16')} "
           f"--out {engine}")
    if manifest.get("calib_cache"):
        cmd += f" --calib-cache {manifest['calib_cache']}"
    profile = manifest.get("profile") or {}
    if profile.get("max", _BUILD_DEFAULT_MAX_BATCH) != _BUILD_DEFAULT_MAX_BATCH:
        cmd += f" --max-batch {profile['max']}"
    return cmd


def read_manifest(engine: str | Path) -> dict[str, Any]:
    """The manifest written next to `engine` by `edge-pct build`; InputFileError naming the fix."""
    engine = Path(engine)
    path = manifest_path(engine)
    fix = f"rebuild it with `edge-pct build --onnx ONNX --precision fp16 --out {engine}`"
    if not engine.is_file():
        raise InputFileError(f"TensorRT engine '{engine}' not found: build it with `edge-pct build --onnx ONNX "
                             f"--precision fp16 --out {engine}`")
    return read_json_artifact(path, "Manifest", {"tensorrt", "precision", "gpu"}, "`edge-pct build`", fix)


def check_manifest(manifest: Mapping[str, Any], engine: str | Path, tensorrt_version: str,
                   compute_capability: str | None) -> None:
    """Refuse an engine built by another TensorRT or for another GPU architecture.

    Args:
        manifest: from `read_manifest`.
        engine: the engine path (goes into the rebuild command).
        tensorrt_version: the running `tensorrt.__version__`.
        compute_capability: the running GPU's "major.minor", or None when unknown (then not compared).

    Raises:
        InputFileError: "Engine 'x' was built with TensorRT 10.3.0, this is 11.1.0 ...: rebuild it with `...`".
    """
    problems = []
    built = str(manifest.get("tensorrt"))
    if trt_compat.parse_version(built) != trt_compat.parse_version(tensorrt_version):
        problems.append(f"was built with TensorRT {built}, this is TensorRT {tensorrt_version}")
    gpu = manifest.get("gpu") or {}
    built_cc = gpu.get("compute_capability")
    if built_cc and compute_capability and str(built_cc) != str(compute_capability):
        problems.append(f"was built for compute capability {built_cc} ({gpu.get('name')}), this GPU is "
                        f"{compute_capability}")
    if problems:
        raise InputFileError(f"Engine '{engine}' {' and '.join(problems)}: rebuild it with "
                             f"`{rebuild_command(manifest, engine)}`")


def _torch_dtype(dtype: np.dtype) -> Any:
    import torch

    return torch.from_numpy(np.empty(0, dtype)).dtype


class TrtRunner:
    """One TensorRT engine on CUDA device 0: loads it, allocates I/O for its largest batch, infers, closes.

    Use as a context manager (`with TrtRunner(path) as r: outs = r.infer(x)`) or call `close()`.

    Args:
        engine_path: `.engine` from `edge-pct build`, with its manifest next to it.
        check: compare the manifest with the running TensorRT and GPU first (`check_manifest`).
    """

    def __init__(self, engine_path: str | Path, check: bool = True) -> None:
        import torch

        trt = trt_compat.import_tensorrt()
        self.path = Path(engine_path)
        self.manifest = read_manifest(self.path)
        if not torch.cuda.is_available():
            raise EdgePctError("TensorRT needs a CUDA GPU, and torch sees none: use --backend onnxruntime on this "
                               "machine, or a CUDA build of torch (JetPack's on Jetson)")
        if check:
            check_manifest(self.manifest, self.path, trt.__version__, gpu_info()["compute_capability"])
        self._runtime, self.engine = trt_compat.deserialize(self.path.read_bytes())
        if self.engine is None:
            raise InputFileError(f"TensorRT {trt.__version__} cannot load engine '{self.path}' (corrupt, or built "
                                 f"elsewhere): rebuild it with `{rebuild_command(self.manifest, self.path)}`")
        self.context = self.engine.create_execution_context()
        specs = trt_compat.tensor_io(self.engine)
        self._inputs = [s for s in specs if s.is_input]
        self._outputs = [s for s in specs if not s.is_input]
        self.dynamic = self._inputs[0].shape[0] == -1
        self.max_batch = (trt_compat.input_profile(self.engine, self._inputs[0].name)[2][0] if self.dynamic
                          else self._inputs[0].shape[0])
        self._stream = torch.cuda.Stream()
        self._device: dict[str, Any] = {}
        self._host: dict[str, Any] = {}
        self._allocate()

    def _allocate(self) -> None:
        """Device and pinned host buffers for `max_batch` rows of every I/O tensor."""
        for spec in self._inputs:
            shape = (self.max_batch, *spec.shape[1:])
            if self.dynamic:
                trt_compat.set_input_shape(self.context, spec.name, shape)
            self._alloc(spec, shape)
        for spec in self._outputs:
            self._alloc(spec, trt_compat.output_shape(self.context, spec.name))

    def _alloc(self, spec: trt_compat.TensorSpec, shape: tuple[int, ...]) -> None:
        import torch

        dtype = _torch_dtype(spec.dtype)
        self._device[spec.name] = torch.empty(shape, dtype=dtype, device="cuda")
        self._host[spec.name] = torch.empty(shape, dtype=dtype, pin_memory=True)

    def input_spec(self) -> list[trt_compat.TensorSpec]:
        """The engine's inputs: name, shape (-1 = dynamic batch), numpy dtype."""
        return list(self._inputs)

    def output_spec(self) -> list[trt_compat.TensorSpec]:
        """The engine's outputs: name, shape (-1 = dynamic batch), numpy dtype."""
        return list(self._outputs)

    def infer(self, feed: np.ndarray | Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        """feed: the single input (N, ...) or {input name: (N, ...)} -> {output name: (N, ...)} numpy arrays.

        Any N: runs chunks of at most `max_batch` rows; a fixed-batch engine's last chunk is padded with copies of
        its last row, and the padding is cut off again.
        """
        if self.engine is None:
            raise RuntimeError(f"TrtRunner of '{self.path}' is closed")
        feeds = dict(feed) if isinstance(feed, Mapping) else {self._inputs[0].name: feed}
        missing = sorted({s.name for s in self._inputs} - set(feeds))
        if missing:
            raise ValueError(f"Missing engine inputs {missing}; the engine takes {[s.name for s in self._inputs]}")
        n = len(next(iter(feeds.values())))
        if n == 0:
            return {o.name: np.zeros((0, *self._host[o.name].shape[1:]), o.dtype) for o in self._outputs}
        parts = [self._infer_chunk({k: np.asarray(v)[s:s + self.max_batch] for k, v in feeds.items()})
                 for s in range(0, n, self.max_batch)]
        return {o.name: np.concatenate([p[o.name] for p in parts]) for o in self._outputs}

    def _infer_chunk(self, chunk: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        import torch

        n = len(next(iter(chunk.values())))
        rows = n if self.dynamic else self.max_batch
        with torch.cuda.stream(self._stream):
            for spec in self._inputs:
                x = chunk[spec.name]
                if rows > n:
                    x = np.concatenate([x, np.repeat(x[-1:], rows - n, axis=0)])
                host = self._host[spec.name][:rows]
                np.copyto(host.numpy(), x, casting="same_kind")
                self._device[spec.name][:rows].copy_(host, non_blocking=True)
                if self.dynamic:
                    trt_compat.set_input_shape(self.context, spec.name, (rows, *spec.shape[1:]))
            trt_compat.execute_async(self.context, {k: t.data_ptr() for k, t in self._device.items()},
                               self._stream.cuda_stream)
            for spec in self._outputs:
                self._host[spec.name][:rows].copy_(self._device[spec.name][:rows], non_blocking=True)
        self._stream.synchronize()
        return {s.name: self._host[s.name][:n].numpy().copy() for s in self._outputs}

    def close(self) -> None:
        """Release the context, engine, runtime and buffers (idempotent)."""
        self.context = self.engine = self._runtime = None
        self._device.clear()
        self._host.clear()

    def __enter__(self) -> TrtRunner:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class TrtBackend:
    """The PoseBackend of an `edge-pct build` engine (engines/runtime.py protocol).

    `__call__` runs the engine; `decode(token_probs)` runs the FP32 decoder ONNX of the export in ONNX Runtime
    (CPU; it is a few small matmuls), opened on first use. Input size, M, V and the decoder come from the export
    sidecar copied into the manifest at build time, else from a sidecar copied next to the engine, else from the one
    next to the ONNX the manifest names.

    Args:
        engine_path: `.engine` with its `<stem>.json` manifest.
        check: refuse an engine built for another TensorRT/GPU (see `check_manifest`).
    """

    name = "tensorrt"

    def __init__(self, engine_path: str | Path, check: bool = True) -> None:

        trt_compat.import_tensorrt()  # the first thing to fix on a machine without it
        self.path = Path(engine_path)
        self.runner = TrtRunner(self.path, check=check)
        manifest = self.runner.manifest
        self.meta = self._sidecar(manifest)
        self.precision: str = manifest["precision"]
        self.input_size: tuple[int, int] = tuple(self.meta["input_size"])
        self.max_batch: int | None = self.runner.max_batch  # the profile max; __call__ splits any N into chunks
        self._dims = (self.meta["num_joints"], self.meta["num_tokens"], self.meta["codebook_size"])
        spec = self.runner.input_spec()
        names = {s.name for s in self.runner.output_spec()}
        if len(spec) != 1 or tuple(spec[0].shape[1:]) != image_shape(self.input_size) or not set(OUTPUT_KEYS) <= names:
            raise InputFileError(f"Engine '{self.path}' does not match its export sidecar (inputs "
                                 f"{[(s.name, s.shape) for s in spec]}, outputs {sorted(names)}): rebuild it with "
                                 f"`{rebuild_command(manifest, self.path)}`")
        self._decoder: Any = None

    def _sidecar(self, manifest: Mapping[str, Any]) -> dict[str, Any]:

        meta = manifest.get("sidecar")
        if not isinstance(meta, dict):  # built without a sidecar: the ONNX's own, else one copied next to the engine
            onnx = Path(manifest.get("onnx_abspath") or manifest.get("onnx", "model.onnx"))
            near_engine = self.path.parent / onnx.name
            return read_sidecar(near_engine if near_engine.with_suffix(".json").is_file() else onnx)
        missing = [k for k in SIDECAR_KEYS if k not in meta]
        if missing:
            raise InputFileError(f"The export sidecar in manifest '{manifest_path(self.path)}' lacks {missing}: "
                                 f"re-export the ONNX and rebuild with `{rebuild_command(manifest, self.path)}`")
        return dict(meta)

    def _decoder_path(self) -> Path:
        """The decoder ONNX next to the source ONNX, else next to the engine (an engine copied to a Jetson)."""
        name = self.meta.get("decoder_onnx", "")
        onnx = Path(self.runner.manifest.get("onnx_abspath") or self.runner.manifest.get("onnx", ""))
        first = onnx.parent / name
        return first if first.is_file() else self.path.parent / name

    def __call__(self, images: np.ndarray) -> dict[str, np.ndarray]:

        x = check_array(images, image_shape(self.input_size), "images")
        if not len(x):
            return empty_outputs(*self._dims)
        out = self.runner.infer(x)
        return {k: out[k].astype(np.float32, copy=False) for k in OUTPUT_KEYS}

    def decode(self, token_probs: np.ndarray) -> np.ndarray:
        from edge_pct.core.optional import require

        p = check_array(token_probs, self._dims[1:], "token_probs")
        if not len(p):
            return np.zeros((0, self._dims[0], 2), np.float32)
        if self._decoder is None:
            ort = require("onnxruntime", "cpu")
            opts = ort.SessionOptions()
            opts.intra_op_num_threads = 1  # a few persons: threads cost more than they give
            path = self._decoder_path()
            self._decoder = open_session(ort, path, opts, ["CPUExecutionProvider"], path.with_name(self.meta["onnx"]))
        feed = self._decoder.get_inputs()[0].name
        return run_padded(self._decoder, feed, p, ("joints",), self.meta.get("batch"))[0]

    def close(self) -> None:
        """Release the engine and its buffers."""
        self.runner.close()

    def __enter__(self) -> TrtBackend:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
