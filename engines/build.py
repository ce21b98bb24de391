"""ONNX -> TensorRT engine + its JSON manifest (`edge-pct build`).

`build_engine` parses an `edge-pct export` (or `edge-pct calibrate` Q/DQ) ONNX with TensorRT's OnnxParser, sets one
optimisation profile over a dynamic batch (min 1, opt max_batch // 2, max max_batch), configures the precision
through `trt_compat` (builder flags on TensorRT <= 10, types in the ONNX on 11), and writes `<engine>` plus
`<engine stem>.json`: TensorRT version, GPU name and compute capability, precision, I/O shapes, max batch, build
time, the source ONNX's sha256 and sidecar, edge-pct version. A runtime refuses an engine whose manifest does not
match its TensorRT and GPU (`trt_runtime.check_manifest`). Nothing is written inside the .engine file itself.
TensorRT Python API: https://docs.nvidia.com/deeplearning/tensorrt/latest/_static/python-api/index.html.
"""

from __future__ import annotations

import json
import logging
import shutil
import subprocess
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from edge_pct.core.errors import ConfigError, InputFileError
from edge_pct.core.files import file_sha256, write_atomic
from edge_pct.engines import trt_compat

log = logging.getLogger(__name__)

GiB = 1 << 30


def default_engine_path(onnx: str | Path, precision: str) -> Path:
    """`path/model.onnx`, "fp16" -> `path/model.fp16.engine`: beside its ONNX, never in the source tree."""
    return Path(onnx).with_name(f"{Path(onnx).stem}.{precision}.engine")


def manifest_path(engine: str | Path) -> Path:
    """`runs/model.fp16.engine` -> `runs/model.fp16.json`."""
    return Path(engine).with_suffix(".json")


def gpu_info() -> dict[str, str | None]:
    """{"name", "compute_capability" ("8.7")} of CUDA device 0, from the first source that answers: torch.cuda
    (core dependency; CUDA builds only), cuda-python (the tensorrt extra), `nvidia-smi` (desktop drivers; absent on
    Jetson). Both None when none answers: the runtime then skips the GPU check."""
    try:
        import torch

        if torch.cuda.is_available():
            major, minor = torch.cuda.get_device_capability(0)
            return {"name": torch.cuda.get_device_name(0), "compute_capability": f"{major}.{minor}"}
    except (ImportError, RuntimeError, AssertionError) as e:  # AssertionError: a CPU-only torch build
        log.debug("torch.cuda gives no GPU: %s", e)
    try:
        try:
            from cuda.bindings import runtime as cudart  # cuda-python >= 12.6
        except ImportError:
            from cuda import cudart  # older cuda-python
        err, prop = cudart.cudaGetDeviceProperties(0)
        if err == cudart.cudaError_t.cudaSuccess:
            name = prop.name.decode(errors="replace") if isinstance(prop.name, bytes) else str(prop.name)
            return {"name": name.split("\x00")[0], "compute_capability": f"{prop.major}.{prop.minor}"}
    except (ImportError, AttributeError, RuntimeError) as e:
        log.debug("cuda-python gives no GPU: %s", e)
    if shutil.which("nvidia-smi"):
        try:
            out = subprocess.run(["nvidia-smi", "--query-gpu=name,compute_cap", "--format=csv,noheader"],
                                 capture_output=True, text=True, timeout=20, check=True).stdout
            name, cc = (s.strip() for s in out.splitlines()[0].rsplit(",", 1))
            return {"name": name, "compute_capability": cc}
        except (OSError, subprocess.SubprocessError, ValueError, IndexError) as e:
            log.debug("nvidia-smi gives no GPU: %s", e)
    return {"name": None, "compute_capability": None}




def _check_args(precision: str, workspace_gb: float, max_batch: int, out: Path) -> None:
    if precision not in trt_compat.ENGINE_PRECISIONS:
        raise ConfigError(f"--precision '{precision}' is invalid. Valid: {list(trt_compat.ENGINE_PRECISIONS)}")
    if not workspace_gb > 0:
        raise ConfigError(f"--workspace-gb {workspace_gb} is invalid: use a positive size in GiB, e.g. 2")
    if max_batch < 1:
        raise ConfigError(f"--max-batch {max_batch} is invalid: use the most persons per frame, e.g. 8")
    if out.suffix != ".engine":
        raise ConfigError(f"--out '{out}' must end in .engine (the manifest <stem>.json is written next to it)")


def _check_files(onnx: Path, calib_cache: Path | None) -> None:
    if not onnx.is_file():
        raise InputFileError(f"ONNX model '{onnx}' not found: run `edge-pct export --out {onnx}`")
    if calib_cache is not None and not calib_cache.is_file():
        raise InputFileError(f"Calibration cache '{calib_cache}' not found: run `edge-pct calibrate`")


def _parse(trt: Any, network: Any, onnx: Path) -> Any:
    """Parse `onnx` into `network`; every parser error goes into the InputFileError."""
    parser = trt.OnnxParser(network, trt_compat.logger())
    if not parser.parse(onnx.read_bytes()):
        errors = "; ".join(str(parser.get_error(i)).strip() for i in range(parser.num_errors)) or "no parser message"
        raise InputFileError(f"TensorRT {trt.__version__} cannot parse '{onnx}': {errors}. Re-export it with "
                             "`edge-pct export` (opset 17)")
    return parser


def _batch_profile(builder: Any, config: Any, inputs: Sequence[Any], max_batch: int) -> tuple[Any, dict | None]:
    """One optimisation profile over a dynamic batch (min 1, opt max_batch // 2, max max_batch), added to `config`:
    (profile, {"min", "opt", "max"}), or (None, None) for a fixed batch. Only the batch may be dynamic (edge-pct
    exports static spatial shapes)."""
    dynamic = [t for t in inputs if tuple(t.shape)[0] == -1]
    if not dynamic:
        return None, None
    profile = builder.create_optimization_profile()
    opt = max(1, max_batch // 2)
    for t in dynamic:
        rest = tuple(t.shape)[1:]
        if any(d < 0 for d in rest):
            raise InputFileError(f"Input '{t.name}' has dynamic non-batch dimensions {tuple(t.shape)}: re-export with "
                                 "`edge-pct export` (static spatial shape)")
        profile.set_shape(t.name, (1, *rest), (opt, *rest), (max_batch, *rest))
    config.add_optimization_profile(profile)
    return profile, {"min": 1, "opt": opt, "max": max_batch}


def _read_sidecar(onnx: Path) -> dict[str, Any] | None:
    """The export sidecar `<onnx stem>.json` (input size, decoder, keypoints), copied into the manifest so the
    engine's runtime needs no other file; None when the ONNX has none (a plain ONNX such as a YOLOX detector: the
    manifest then has no pose fields; a pose engine needs the sidecar next to the engine or the ONNX at run time)."""
    side = onnx.with_suffix(".json")
    if not side.is_file():
        log.info("No export sidecar '%s' next to '%s': building a plain ONNX (no pose fields in the manifest)", side,
                 onnx)
        return None
    try:
        return json.loads(side.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise InputFileError(f"Sidecar '{side}' is corrupt ({e}): re-export with `edge-pct export --out {onnx}`") from e




def build_engine(onnx: str | Path, precision: str, out: str | Path | None = None, workspace_gb: float = 2.0,
                 max_batch: int = 32, timing_cache: str | Path | None = None,
                 calib_cache: str | Path | None = None) -> dict[str, Any]:
    """Compile `onnx` into a TensorRT engine for this GPU and write it with its manifest.

    Args:
        onnx: image graph from `edge-pct export` (FP32, or FP16 from `--precision fp16`), or the Q/DQ
            model.int8.tensorrt.onnx from `edge-pct calibrate`.
        precision: "fp16" | "int8" ("fp32" for parity checks). TensorRT 11 needs an FP16 / Q/DQ ONNX for them.
        out: engine path (.engine); default `<onnx stem>.<precision>.engine` beside the ONNX.
        workspace_gb: builder scratch memory limit, GiB.
        max_batch: largest batch (persons per run) of a dynamic-batch ONNX; ignored for a fixed batch.
        timing_cache: file that speeds up rebuilds; read when it exists, then updated.
        calib_cache: TensorRT calib.cache from `edge-pct calibrate`, for INT8 from a plain ONNX on TensorRT <= 10.

    Returns:
        {"engine", "manifest" (paths), "build_s" (seconds)}.
    """
    onnx = Path(onnx)
    out = Path(out) if out is not None else default_engine_path(onnx, precision)
    calib = Path(calib_cache) if calib_cache is not None else None
    _check_args(precision, workspace_gb, max_batch, out)
    trt = trt_compat.import_tensorrt()  # before the file checks: without TensorRT nothing here can work
    _check_files(onnx, calib)
    builder = trt.Builder(trt_compat.logger())
    network = trt_compat.create_network(builder, strongly_typed=trt_compat.is_strongly_typed_only())
    parser = _parse(trt, network, onnx)
    graph = trt_compat.inspect_network(network)
    config = builder.create_builder_config()
    trt_compat.set_workspace(config, int(workspace_gb * GiB))
    inputs = [network.get_input(i) for i in range(network.num_inputs)]
    profile_obj, profile = _batch_profile(builder, config, inputs, max_batch)
    calibrator = trt_compat.set_precision(config, precision, calib, qdq=graph["qdq"], fp16_in_graph=graph["fp16"],
                                    calibration_profile=profile_obj)
    if timing_cache is not None:
        trt_compat.load_timing_cache(config, Path(timing_cache))
    log.info("Building a %s TensorRT %s engine from %s (this takes minutes)", precision, trt.__version__, onnx)
    start = time.perf_counter()
    blob = trt_compat.serialize_engine(builder, network, config)
    build_s = round(time.perf_counter() - start, 3)
    if timing_cache is not None:
        trt_compat.save_timing_cache(config, Path(timing_cache))
    del calibrator, parser  # both must outlive the build, nothing more
    manifest = {"engine": out.name, **_provenance(onnx, precision, graph["qdq"], calib), "tensorrt": trt.__version__,
                "gpu": gpu_info(), "strongly_typed": trt_compat.is_strongly_typed_only(),
                **_io_shapes(network, profile), "workspace_gb": workspace_gb, "build_s": build_s,
                "sidecar": _read_sidecar(onnx),
                "versions": {"edge_pct": _edge_pct_version(), "tensorrt": trt.__version__}}
    mpath = manifest_path(out)
    write_atomic([(out, blob), (mpath, (json.dumps(manifest, indent=2) + "\n").encode())])
    return {"engine": str(out), "manifest": str(mpath), "build_s": build_s}


def _provenance(onnx: Path, precision: str, qdq: bool, calib: Path | None) -> dict[str, Any]:
    """Manifest fields naming the sources: the ONNX (path as given, absolute, sha256), precision, INT8 mode."""
    int8_mode = ("qdq" if qdq else "cache") if precision == "int8" else None  # "cache": implicit, TensorRT <= 10
    return {"onnx": str(onnx), "onnx_abspath": str(onnx.resolve()), "onnx_sha256": file_sha256(onnx),
            "precision": precision, "int8_calibration": int8_mode,
            "calib_cache": str(calib) if calib is not None and int8_mode == "cache" else None}


def _io_shapes(network: Any, profile: dict[str, int] | None) -> dict[str, Any]:
    """Manifest fields of the network I/O: shapes (-1 = dynamic batch), max batch, the batch profile."""
    inputs = [network.get_input(i) for i in range(network.num_inputs)]
    outputs = [network.get_output(i) for i in range(network.num_outputs)]
    return {"inputs": {t.name: list(t.shape) for t in inputs}, "outputs": {t.name: list(t.shape) for t in outputs},
            "max_batch": profile["max"] if profile else int(tuple(inputs[0].shape)[0]), "profile": profile}


def _edge_pct_version() -> str:
    from edge_pct.core.package import __version__

    return __version__
