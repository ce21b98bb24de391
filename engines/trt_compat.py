"""TensorRT version facts in one place: the only module that branches on `tensorrt.__version__`.

The version is parsed into a tuple of ints (never compared as a string: "10.10" > "10.9"). What changes:

- 8.4-8.6, 9 (JetPack 5/6): networks need the EXPLICIT_BATCH flag; FP16/INT8 are builder flags, INT8 from Q/DQ or
  an IInt8EntropyCalibrator2 (calib.cache); the name-based I/O API and execute_async_v3 exist from 8.5.
- 10.x: networks are always explicit batch (EXPLICIT_BATCH deprecated, ignored), STRONGLY_TYPED is optional; builder
  flags and calibrators still work (calibrators deprecated in 10.1); execute_async_v2 is gone.
- 11.x: strongly typed only (the STRONGLY_TYPED flag is deprecated and ignored); BuilderFlag.FP16/INT8 and
  IBuilderConfig.int8_calibrator are removed: FP16 lives in the ONNX as casts (`edge-pct export --precision fp16`),
  INT8 as Q/DQ nodes (`edge-pct calibrate`).

Every function takes the TensorRT object it works on (builder, config, network, engine, context) and imports
`tensorrt` when called, so this module imports without TensorRT and tests swap in a fake module.
Docs: https://docs.nvidia.com/deeplearning/tensorrt/latest/api/migration/tensorrt-10x-to-11x-python-api-reference.html,
https://docs.nvidia.com/deeplearning/tensorrt/latest/api/migration/tensorrt-8x-to-10x-python-api-patterns.html,
Python API: https://docs.nvidia.com/deeplearning/tensorrt/latest/_static/python-api/index.html.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np

from edge_pct.core.errors import ConfigError, EdgePctError, InputFileError, MissingDependencyError
from edge_pct.core.files import write_atomic
from edge_pct.core.optional import require

log = logging.getLogger(__name__)

TENSORRT_MISSING = ("'tensorrt' is not installed: pip install 'edge-pct[tensorrt]' (desktop) or use JetPack's "
                    "python3-libnvinfer (Jetson)")
ENGINE_PRECISIONS = ("fp32", "fp16", "int8")
_NAME_API = (8, 5)  # num_io_tensors / get_tensor_name / set_input_shape / set_tensor_address / execute_async_v3
_MEMORY_POOLS = (8, 4)  # set_memory_pool_limit replaces max_workspace_size
_LOGGER: Any = None


@dataclass(frozen=True)
class TensorSpec:
    """One engine I/O tensor: shape with -1 for dynamic dimensions, numpy dtype."""

    name: str
    is_input: bool
    shape: tuple[int, ...]
    dtype: np.dtype


def import_tensorrt() -> ModuleType:
    """`import tensorrt`, or a MissingDependencyError naming the pip extra and JetPack's package."""
    try:
        return require("tensorrt", "tensorrt")
    except MissingDependencyError as e:
        raise MissingDependencyError(TENSORRT_MISSING) from e


def parse_version(text: str) -> tuple[int, ...]:
    """'10.3.0.26' -> (10, 3, 0, 26); '8.6.1.post1' -> (8, 6, 1); '11.1.0rc1' -> (11, 1, 0)."""
    parts: list[int] = []
    for piece in str(text).split("."):
        m = re.match(r"\d+", piece)
        if m is None:
            break
        parts.append(int(m.group()))
        if m.end() != len(piece):
            break
    if not parts:
        raise ValueError(f"Cannot parse TensorRT version {text!r}")
    return tuple(parts)


def trt_version() -> tuple[int, ...]:
    """The running TensorRT version as a tuple of ints."""
    return parse_version(import_tensorrt().__version__)


def has_implicit_int8() -> bool:
    """True below 11: the INT8 builder flag and calibrators (a calib.cache) exist."""
    return trt_version() < (11,)


def is_strongly_typed_only() -> bool:
    """True from 11 on: every network is strongly typed; precision lives in the ONNX."""
    return trt_version() >= (11,)


def logger() -> Any:
    """The process-wide TensorRT logger (TensorRT 8 treats it as a singleton): forwards warnings and errors to
    `logging` and keeps the error messages in `.errors` for exception texts."""
    global _LOGGER
    if _LOGGER is None:
        trt = import_tensorrt()

        class _Logger(trt.ILogger):  # type: ignore[misc, name-defined]
            def __init__(self) -> None:
                trt.ILogger.__init__(self)
                self.errors: list[str] = []

            def log(self, severity: Any, msg: str) -> None:
                level = int(severity)  # INTERNAL_ERROR=0, ERROR=1, WARNING=2, INFO=3, VERBOSE=4
                if level <= 1:
                    self.errors.append(msg)
                    log.error("TensorRT: %s", msg)
                elif level == 2:
                    log.warning("TensorRT: %s", msg)
                elif level == 3:
                    log.debug("TensorRT: %s", msg)

        _LOGGER = _Logger()
    return _LOGGER


# -- build ------------------------------------------------------------------------------------------------------
def create_network(builder: Any, strongly_typed: bool = False) -> Any:
    """An explicit-batch INetworkDefinition; strongly typed when asked (10.x) and always on 11.x."""
    trt, version = import_tensorrt(), trt_version()
    flags = trt.NetworkDefinitionCreationFlag
    if version >= (11,):
        return builder.create_network(0)  # strongly typed is the only mode; its flag is deprecated and ignored
    if version >= (10,):  # explicit batch is the only mode; EXPLICIT_BATCH is deprecated and ignored
        return builder.create_network(1 << int(flags.STRONGLY_TYPED) if strongly_typed else 0)
    if strongly_typed:
        raise ConfigError(f"Strongly typed networks need TensorRT >= 10; this is {'.'.join(map(str, version))}")
    return builder.create_network(1 << int(flags.EXPLICIT_BATCH))


def inspect_network(network: Any) -> dict[str, bool]:
    """What the parsed ONNX already carries: {"qdq": Quantize/Dequantize layers, "fp16": any FP16 tensor}."""
    trt = import_tensorrt()
    qdq_types = (trt.LayerType.QUANTIZE, trt.LayerType.DEQUANTIZE)
    qdq = fp16 = False
    for i in range(network.num_layers):
        layer = network.get_layer(i)
        qdq = qdq or layer.type in qdq_types
        fp16 = fp16 or any(layer.get_output(j).dtype == trt.DataType.HALF for j in range(layer.num_outputs))
    return {"qdq": qdq, "fp16": fp16}


def cache_calibrator(cache: bytes) -> Any:
    """An IInt8EntropyCalibrator2 that only replays `cache` (a TensorRT calib.cache): TensorRT reads the scales
    from read_calibration_cache and, finding them, never asks get_batch for data (which returns None)."""
    trt = import_tensorrt()

    class _CacheCalibrator(trt.IInt8EntropyCalibrator2):  # type: ignore[misc, name-defined]
        def __init__(self) -> None:
            trt.IInt8EntropyCalibrator2.__init__(self)
            self.cache = cache

        def get_batch_size(self) -> int:
            return 1

        def get_batch(self, names: list[str]) -> None:
            return None

        def read_calibration_cache(self) -> bytes:
            return self.cache

        def write_calibration_cache(self, cache: Any) -> None:
            return None

    return _CacheCalibrator()


def set_precision(config: Any, precision: str, calib_cache: Path | None = None, *, qdq: bool = False,
                  fp16_in_graph: bool = False, calibration_profile: Any = None) -> Any:
    """Configure `precision` ("fp32" | "fp16" | "int8") for the running TensorRT.

    <= 10: fp16 sets BuilderFlag.FP16; int8 sets INT8 + FP16 and, for a plain (non-Q/DQ) ONNX, installs a
    cache-only calibrator reading `calib_cache` (with `calibration_profile`, the optimisation profile of a dynamic
    batch, which calibration of a dynamic-shape network requires). 11: nothing to set, but fp16 needs FP16 in the ONNX
    (`fp16_in_graph`) and int8 a Q/DQ ONNX (`qdq`); otherwise a ConfigError names the command that makes one.

    Returns:
        The calibrator (keep it alive until the build ends), or None.
    """
    if precision not in ENGINE_PRECISIONS:
        raise ConfigError(f"Unknown precision '{precision}'. Valid: {list(ENGINE_PRECISIONS)}")
    trt, version = import_tensorrt(), trt_version()
    if version >= (11,):
        if precision == "fp16" and not fp16_in_graph:
            raise ConfigError("TensorRT 11 builds strongly typed networks only, so FP16 must be in the ONNX: export "
                              "it with `edge-pct export --precision fp16`")
        if precision == "int8" and not qdq:
            raise ConfigError("TensorRT 11 has no implicit INT8 calibration: build from the Q/DQ "
                              "model.int8.tensorrt.onnx written by `edge-pct calibrate`")
        return None
    if precision in ("fp16", "int8"):
        config.set_flag(trt.BuilderFlag.FP16)  # also the fallback for layers without an INT8 kernel
    if precision != "int8":
        return None
    config.set_flag(trt.BuilderFlag.INT8)
    if qdq:
        return None  # explicit quantization: the scales are in the graph
    if calib_cache is None:
        raise ConfigError("INT8 from a plain (non-Q/DQ) ONNX needs --calib-cache: run `edge-pct calibrate` and pass "
                          "its calib.cache, or build from its Q/DQ model.int8.tensorrt.onnx")
    try:
        calibrator = cache_calibrator(Path(calib_cache).read_bytes())
    except OSError as e:
        raise InputFileError(f"Calibration cache '{calib_cache}' is unreadable ({e}): run `edge-pct calibrate`") from e
    config.int8_calibrator = calibrator
    if calibration_profile is not None:
        config.set_calibration_profile(calibration_profile)
    return calibrator


def set_workspace(config: Any, nbytes: int) -> None:
    """Limit the builder's scratch memory to `nbytes`."""
    trt = import_tensorrt()
    if trt_version() >= _MEMORY_POOLS:
        config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, int(nbytes))
    else:
        config.max_workspace_size = int(nbytes)


def create_timing_cache(config: Any, blob: bytes = b"") -> Any:
    """Attach a timing cache made from `blob` (empty: a new one) to `config`; a cache from another TensorRT or
    GPU is refused by TensorRT and replaced by an empty one."""
    cache = config.create_timing_cache(blob)
    if not config.set_timing_cache(cache, ignore_mismatch=False) and blob:
        log.warning("The timing cache does not match this TensorRT/GPU; starting an empty one")
        cache = config.create_timing_cache(b"")
        config.set_timing_cache(cache, ignore_mismatch=False)
    return cache


def load_timing_cache(config: Any, path: Path) -> Any:
    """Attach the timing cache stored at `path` (an empty one when the file does not exist yet)."""
    return create_timing_cache(config, path.read_bytes() if path.is_file() else b"")


def save_timing_cache(config: Any, path: Path) -> None:
    """Serialize the config's (now updated) timing cache to `path`, atomically."""
    write_atomic([(path, bytes(config.get_timing_cache().serialize()))])


def serialize_engine(builder: Any, network: Any, config: Any) -> bytes:
    """builder.build_serialized_network; a None result is an EdgePctError carrying TensorRT's error messages."""
    messages = logger().errors
    start = len(messages)
    blob = builder.build_serialized_network(network, config)
    if blob is None:
        detail = "; ".join(messages[start:]) or "no error message (run with -v for TensorRT's log)"
        raise EdgePctError(f"TensorRT {import_tensorrt().__version__} could not build the engine: {detail}")
    return bytes(blob)


# -- runtime ----------------------------------------------------------------------------------------------------
def deserialize(blob: bytes) -> tuple[Any, Any]:
    """(runtime, engine) from serialized engine bytes; engine is None when TensorRT refuses them. Keep the
    runtime alive as long as the engine."""
    trt = import_tensorrt()
    runtime = trt.Runtime(logger())
    return runtime, runtime.deserialize_cuda_engine(blob)


def tensor_io(engine: Any) -> list[TensorSpec]:
    """Every I/O tensor of `engine` in binding order: the name API from 8.5, the binding API before."""
    trt = import_tensorrt()
    if trt_version() >= _NAME_API:
        names = [engine.get_tensor_name(i) for i in range(engine.num_io_tensors)]
        return [TensorSpec(n, engine.get_tensor_mode(n) == trt.TensorIOMode.INPUT, tuple(engine.get_tensor_shape(n)),
                           np.dtype(trt.nptype(engine.get_tensor_dtype(n)))) for n in names]
    return [TensorSpec(engine.get_binding_name(i), engine.binding_is_input(i), tuple(engine.get_binding_shape(i)),
                       np.dtype(trt.nptype(engine.get_binding_dtype(i)))) for i in range(engine.num_bindings)]


def input_profile(engine: Any, name: str) -> tuple[tuple[int, ...], ...]:
    """(min, opt, max) shapes of input `name` in optimisation profile 0."""
    if trt_version() >= _NAME_API:
        shapes = engine.get_tensor_profile_shape(name, 0)
    else:
        shapes = engine.get_profile_shape(0, name)
    return tuple(tuple(s) for s in shapes)


def set_input_shape(context: Any, name: str, shape: tuple[int, ...]) -> None:
    """Set the runtime shape of input `name`; ValueError when the engine's profile does not allow it."""
    if trt_version() >= _NAME_API:
        ok = context.set_input_shape(name, tuple(shape))
    else:
        ok = context.set_binding_shape(context.engine.get_binding_index(name), tuple(shape))
    if ok is False:
        raise ValueError(f"Input '{name}' shape {tuple(shape)} is outside the engine's optimisation profile")


def output_shape(context: Any, name: str) -> tuple[int, ...]:
    """The shape of output `name` for the input shapes currently set on `context`."""
    if trt_version() >= _NAME_API:
        return tuple(context.get_tensor_shape(name))
    return tuple(context.get_binding_shape(context.engine.get_binding_index(name)))


def execute_async(context: Any, addresses: dict[str, int], stream_handle: int) -> None:
    """Enqueue one inference on CUDA stream `stream_handle`; `addresses` maps every I/O tensor name to its device
    pointer. execute_async_v3 + set_tensor_address from 8.5 (the only way on 10+), execute_async_v2 before."""
    if trt_version() >= _NAME_API:
        for name, ptr in addresses.items():
            context.set_tensor_address(name, int(ptr))
        ok = context.execute_async_v3(stream_handle)
    else:
        engine = context.engine
        bindings = [int(addresses[engine.get_binding_name(i)]) for i in range(engine.num_bindings)]
        ok = context.execute_async_v2(bindings=bindings, stream_handle=stream_handle)
    if not ok:
        raise RuntimeError("TensorRT failed to enqueue the inference (see the TensorRT log above)")
