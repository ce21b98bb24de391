"""`edge-pct calibrate`: FP32 ONNX + images -> INT8 Q/DQ ONNX graphs, TensorRT calibration cache, report, atomically.

Into `out_dir` (the names: `artifacts.py`): `model.int8.tensorrt.onnx`, the symmetric Q/DQ graph for TensorRT (+
`model.int8.decoder.onnx`, the FP32 decoder, and the `model.int8.tensorrt.json` sidecar, so OnnxRuntimeBackend loads
it like any export); `model.int8.cpu.onnx` + `model.int8.cpu.json`, the same ranges quantized for ONNX Runtime's CPU
kernels (`qdq.TARGETS`: ONNX Runtime runs the TensorRT graph on x86 slower than FP32), sharing the decoder;
`calib.cache` (TensorRT <= 10 implicit INT8, `trt_cache`); and `report.json`: per-tensor ranges, method, crops,
calibration seconds, FP32 vs INT8 keypoint agreement of both graphs on held-out crops, COCO OKS-AP of all three on
the held-out images when annotations are given, and ONNX Runtime CPU latency of FP32 and both INT8 graphs at batch 1
and 4, measured in the same process. Everything is written in a staging folder inside `out_dir` and moved into place
at the end (report.json last), so a failure leaves the previous artifacts as they were. A run whose fingerprint
(ONNX sha256, the selected image files, annotations, method, num, seed, onnxruntime version) matches the existing
report reuses its ranges instead of calibrating.
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from edge_pct.calibration.artifacts import CACHE_NAME, CPU_NAME, DECODER_NAME, INT8_NAME, REPORT_NAME, sibling_name
from edge_pct.calibration.ort_cpu import interleaved_times_ms
from edge_pct.core.errors import ConfigError, InputFileError
from edge_pct.core.files import file_sha256
from edge_pct.core.optional import require

log = logging.getLogger(__name__)

LATENCY_BATCHES = (1, 4)
_DROP_FROM_SIDECAR = ("max_abs_diff_vs_torch", "decoder_max_abs_diff", "confidence_max_abs_diff",
                      "token_probs_max_abs_diff", "parity_batch")




def _check_inputs(onnx_path: Path, method: str, num: int, heldout: int, out_dir: Path) -> dict[str, Any]:
    """Validate the arguments and the FP32 model; returns its sidecar. EdgePctError naming the fix otherwise."""
    from edge_pct.calibration.qdq import QDQ_OPS, check_method
    from edge_pct.engines.runtime import read_sidecar

    check_method(method)
    if num < 1 or heldout < 0:
        raise ConfigError(f"--num {num} must be >= 1 (calibration crops; a few hundred is typical) and the held-out "
                          f"count {heldout} >= 0")
    if out_dir.exists() and not out_dir.is_dir():
        raise ConfigError(f"--out '{out_dir}' is a file: pass a folder for {INT8_NAME}, {CACHE_NAME}, {REPORT_NAME}")
    meta = read_sidecar(onnx_path)  # missing model / sidecar -> InputFileError naming `edge-pct export`
    onnx = require("onnx", "cpu")
    fix = f"re-export it with `edge-pct export --checkpoint PT --out {onnx_path}`"
    try:
        model = onnx.load(str(onnx_path), load_external_data=False)
        onnx.checker.check_model(model)
    except Exception as e:  # protobuf DecodeError, ValidationError, OSError: all mean "corrupt"
        first = (str(e).strip().splitlines() or [type(e).__name__])[0]
        raise InputFileError(f"ONNX model '{onnx_path}' is corrupt ({first}): {fix}") from e
    if any(n.op_type in QDQ_OPS for n in model.graph.node) or meta.get("precision") != "fp32":
        raise ConfigError(f"'{onnx_path}' has precision {meta.get('precision')}, not fp32: INT8 calibration starts "
                          "from the FP32 model.onnx of `edge-pct export` (without --precision)")
    return meta


def _fingerprint(onnx_sha: str, selection: Any, images: Path, ann: Path | None, method: str, num: int,
                 heldout: int, seed: int) -> str:
    ort = require("onnxruntime", "cpu")
    payload = {"onnx_sha256": onnx_sha, "ann_sha256": file_sha256(ann) if ann else None, "method": method, "num": num,
               "heldout": heldout, "seed": seed, "crops": selection.describe(images), "onnxruntime": ort.__version__}
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()


def _previous_ranges(out_dir: Path, fingerprint: str) -> dict[str, Any] | None:
    """The earlier report when its fingerprint matches and its artifacts are all there, else None."""
    report = out_dir / REPORT_NAME
    if not all((out_dir / n).is_file() for n in (REPORT_NAME, INT8_NAME, CPU_NAME, CACHE_NAME)):
        return None
    try:
        old = json.loads(report.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return None
    if not isinstance(old, dict) or old.get("fingerprint") != fingerprint or not isinstance(old.get("ranges"), dict):
        return None
    return old


def calibrate(onnx: str | Path, images: str | Path, out_dir: str | Path, ann: str | Path | None = None,
              method: str = "entropy", num: int = 256, heldout: int = 64, seed: int = 0, batch: int = 8,
              threads: int | None = None, latency_repeats: int = 20, trt_version: int | None = None) -> dict[str, Any]:
    """Calibrate an `edge-pct export` model on image crops and write the INT8 artifacts into `out_dir`.

    Args:
        onnx: FP32 image graph (model.onnx with its sidecar and decoder beside it).
        images: folder of images: frames (whole-frame crops) or, with `ann`, the annotations' images.
        out_dir: folder for model.int8.tensorrt.onnx (+ decoder and sidecar), calib.cache, report.json.
        ann: COCO keypoints json: person crops from ground-truth boxes, and OKS-AP of FP32 vs INT8.
        method: "entropy" (TensorRT's default), "percentile" or "minmax".
        num: calibration crops; heldout: crops (from other images) for FP32-vs-INT8 agreement and AP.
        seed: crop selection seed. batch: calibration batch (a fixed-batch graph uses its own).
        threads: ONNX Runtime intra-op threads (default: its own choice, one per core).
        latency_repeats: timed runs per batch size (median reported).
        trt_version: TensorRT version integer of the cache header (default 8601, TensorRT 8.6.1 / JetPack).

    Returns:
        int8_onnx, cache, report, sidecar, decoder_onnx (paths), ranges {tensor: [min, max]}, fp32_vs_int8
        (agreement px, latency ms, COCO AP when `ann`), method, num, heldout, calibration_s, reused, fingerprint.
    """
    from edge_pct.calibration.reader import cut_crops, select_samples

    onnx_path, images, out_dir = Path(onnx), Path(images), Path(out_dir)
    ann = Path(ann) if ann is not None else None
    meta = _check_inputs(onnx_path, method, num, heldout, out_dir)
    if ann is not None and not ann.is_file():
        raise InputFileError(f"Annotation file '{ann}' not found: pass a COCO person_keypoints json, or leave out "
                             "--ann to calibrate on whole frames")
    selection = select_samples(images, num, heldout, ann, seed)
    input_size = tuple(meta["input_size"])
    onnx_sha = file_sha256(onnx_path)
    fingerprint = _fingerprint(onnx_sha, selection, images, ann, method, num, heldout, seed)
    previous = _previous_ranges(out_dir, fingerprint)
    created = not out_dir.exists()
    out_dir.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".calibrate-", dir=out_dir))
    try:
        calib_crops = cut_crops(selection.calib, input_size) if previous is None or not selection.heldout else None
        heldout_crops = cut_crops(selection.heldout, input_size) if selection.heldout else calib_crops
        result = _run(onnx_path, meta, staging, selection, calib_crops, heldout_crops, previous, ann, images,
                      method=method, batch=batch, threads=threads, repeats=latency_repeats, trt_version=trt_version,
                      seed=seed, fingerprint=fingerprint, onnx_sha=onnx_sha)
        for name in (INT8_NAME, DECODER_NAME, sibling_name(".json"), CPU_NAME,
                     sibling_name(".json", CPU_NAME), CACHE_NAME, REPORT_NAME):
            (staging / name).replace(out_dir / name)  # report.json last: it vouches for the others
    except BaseException:
        if created:
            shutil.rmtree(out_dir, ignore_errors=True)
        raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    paths = {"int8_onnx": INT8_NAME, "cache": CACHE_NAME, "report": REPORT_NAME,
             "sidecar": sibling_name(".json"), "decoder_onnx": DECODER_NAME,
             "cpu_onnx": CPU_NAME, "cpu_sidecar": sibling_name(".json", CPU_NAME)}
    return {**{k: str(out_dir / v) for k, v in paths.items()}, **result}


def _run(onnx_path: Path, meta: dict[str, Any], staging: Path, selection: Any, calib_crops: np.ndarray | None,
         heldout_crops: np.ndarray, previous: dict[str, Any] | None, ann: Path | None, images: Path, *, method: str,
         batch: int, threads: int | None, repeats: int, trt_version: int | None, seed: int, fingerprint: str,
         onnx_sha: str) -> dict[str, Any]:
    """Calibrate (or reuse the ranges), quantize, write the staged artifacts and measure; returns the result."""
    from edge_pct.calibration.qdq import cpu_exclude, cpu_float_nodes, float_nodes
    from edge_pct.calibration.trt_cache import DEFAULT_TRT_VERSION, format_cache

    onnx = require("onnx", "cpu")
    int8_path, cpu_path = staging / INT8_NAME, staging / CPU_NAME
    fp32_model = onnx.load(str(onnx_path))
    exclude = float_nodes(fp32_model)
    ranges, calibration_s, quantized = _quantize(onnx_path, staging, calib_crops, previous, exclude, method=method,
                                                 batch=batch, threads=threads)
    # TensorRT's implicit INT8 gets scales only where the Q/DQ model quantizes: the FP32 island stays FP32 there too.
    float_tensors = {t for n in fp32_model.graph.node if n.name in exclude for t in (*n.input, *n.output)}
    cache_ranges = {k: v for k, v in ranges.items() if k not in float_tensors}
    version = DEFAULT_TRT_VERSION if trt_version is None else int(trt_version)
    (staging / CACHE_NAME).write_text(format_cache(cache_ranges, version))
    shutil.copyfile(onnx_path.with_name(meta["decoder_onnx"]), staging / DECODER_NAME)
    sidecars = {name: _int8_sidecar(meta, onnx_path, onnx_sha, method, selection, name)
                for name in (INT8_NAME, CPU_NAME)}
    for name, sidecar in sidecars.items():  # OnnxRuntimeBackend needs them to load the INT8 models
        _write_json(staging / sibling_name(".json", name), sidecar)
    fp32_vs_int8 = _measure(onnx_path, int8_path, cpu_path, heldout_crops, threads, repeats, seed)
    fp32_vs_int8["on"] = "heldout" if selection.heldout else "calibration"
    if ann is not None:
        ids = [s.image_id for s in (selection.heldout or selection.calib)]
        fp32_vs_int8["coco"] = _coco_delta(onnx_path, int8_path, cpu_path, ann, images, ids, staging)
    for name, agree in ((INT8_NAME, fp32_vs_int8), (CPU_NAME, fp32_vs_int8["cpu"])):
        sidecars[name]["fp32_vs_int8"] = {k: v for k, v in agree.items() if k.startswith("joints")}
        _write_json(staging / sibling_name(".json", name), sidecars[name])
    result = {"ranges": {k: [lo, hi] for k, (lo, hi) in sorted(ranges.items())}, "fp32_vs_int8": fp32_vs_int8,
              "method": method, "num": len(selection.calib), "heldout": len(selection.heldout),
              "source": selection.source, "calibration_s": calibration_s, "reused": previous is not None,
              "fingerprint": fingerprint}
    extra = _report_extra(onnx_path, onnx_sha, images, ann, seed, exclude, cache_ranges, version)
    cpu_fp32 = cpu_exclude(fp32_model, exclude)
    extra["quantization"]["tensorrt"].update(quantized=quantized[INT8_NAME])
    extra["quantization"]["cpu"].update(quantized=quantized[CPU_NAME],
                                        fp32_nodes_extra=cpu_float_nodes(fp32_model, cpu_fp32),
                                        fp32_token_mixer_nodes=len(cpu_fp32) - len(exclude))
    _write_json(staging / REPORT_NAME, {**result, **extra})
    return result


def _quantize(onnx_path: Path, staging: Path, calib_crops: np.ndarray | None, previous: dict[str, Any] | None,
              exclude: list[str], *, method: str, batch: int,
              threads: int | None) -> tuple[dict[str, tuple[float, float]], float, dict[str, dict[str, int]]]:
    """Write both Q/DQ models (INT8_NAME for TensorRT, CPU_NAME for ONNX Runtime CPU) into `staging`, from fresh
    ranges (calibrating `calib_crops`) or from the `previous` report's ranges.

    Returns ranges, calibration seconds (the earlier run's when reused) and, per file, counts of quantized tensors
    and Q/DQ nodes.
    """
    from edge_pct.calibration.qdq import qdq_summary, quantize_qdq
    from edge_pct.calibration.reader import calibration_reader, graph_input

    int8_path = staging / INT8_NAME
    if previous is None:
        input_name, fixed, _ = graph_input(onnx_path)
        reader = calibration_reader(calib_crops, input_name, fixed or batch, fixed=fixed is not None)
        t0 = time.perf_counter()
        ranges = quantize_qdq(onnx_path, int8_path, reader, method, threads=threads, exclude=exclude)
        calibration_s = time.perf_counter() - t0
    else:
        log.info("Reusing the calibration ranges in %s (same model, images and settings)", REPORT_NAME)
        ranges = {k: (float(v[0]), float(v[1])) for k, v in previous["ranges"].items()}
        quantize_qdq(onnx_path, int8_path, method=method, ranges=ranges, exclude=exclude)
        calibration_s = float(previous.get("calibration_s", 0.0))
    quantize_qdq(onnx_path, staging / CPU_NAME, method=method, ranges=ranges, exclude=exclude, target="cpu")
    counts = {}
    for name in (INT8_NAME, CPU_NAME):
        facts = qdq_summary(require("onnx", "cpu").load(str(staging / name)), exclude)
        counts[name] = {**{k: len(facts[k]) for k in ("activations", "weights", "biases")},
                        "quantize_nodes": facts["quantize_nodes"], "dequantize_nodes": facts["dequantize_nodes"]}
    return ranges, calibration_s, counts


def _int8_sidecar(meta: dict[str, Any], onnx_path: Path, onnx_sha: str, method: str, selection: Any,
                  name: str) -> dict[str, Any]:
    """The FP32 sidecar made to describe the INT8 graph `name` (INT8_NAME or CPU_NAME): its files (both share the
    FP32 decoder), precision int8, its Q/DQ target, and where it came from."""
    sidecar = {k: v for k, v in meta.items() if k not in _DROP_FROM_SIDECAR}
    sidecar.update(onnx=name, decoder_onnx=DECODER_NAME, precision="int8",
                   quantization_target="cpu" if name == CPU_NAME else "tensorrt",
                   calibration={"method": method, "num": len(selection.calib), "source": selection.source,
                                "onnx": str(onnx_path.resolve()), "onnx_sha256": onnx_sha, "cache": CACHE_NAME})
    if name == INT8_NAME:
        sidecar["cpu_onnx"] = CPU_NAME  # ONNX Runtime on CPU: load this one instead (faster than FP32)
    return sidecar


def _report_extra(onnx_path: Path, onnx_sha: str, images: Path, ann: Path | None, seed: int, exclude: list[str],
                  cache_ranges: dict[str, Any], version: int) -> dict[str, Any]:
    from edge_pct.calibration.trt_cache import DEFAULT_ALGORITHM
    from edge_pct.core.package import __version__

    ort, onnx = require("onnxruntime", "cpu"), require("onnx", "cpu")
    return {"inputs": {"onnx": str(onnx_path.resolve()), "onnx_sha256": onnx_sha, "images": str(images.resolve()),
                       "ann": str(ann.resolve()) if ann else None, "seed": seed},
            "fp32_nodes": exclude,
            "cache": {"file": CACHE_NAME, "header": f"TRT-{version}-{DEFAULT_ALGORITHM}", "tensors": len(cache_ranges),
                      "scale": "max(|min|, |max|) / 127"},
            "quantization": {
                "format": "QDQ",
                "tensorrt": {"file": INT8_NAME, "activations": "int8 per-tensor symmetric",
                             "weights": "int8 per-channel symmetric (fp32 -> Q -> DQ)", "biases": "fp32",
                             "zero_points": 0},
                "cpu": {"file": CPU_NAME, "activations": "uint8 per-tensor asymmetric (ReLU/ReLU6 folded)",
                        "weights": "int8 per-channel symmetric (stored int8)", "biases": "int32",
                        "zero_points": "weights 0, activations uint8"}},
            "versions": {"edge_pct": __version__, "onnxruntime": ort.__version__, "onnx": onnx.__version__}}


def _write_json(path: Path, payload: dict[str, Any]) -> None:
    path.write_text(json.dumps(payload, indent=2) + "\n")


def _measure(fp32_path: Path, int8_path: Path, cpu_path: Path, crops: np.ndarray, threads: int | None, repeats: int,
             seed: int) -> dict[str, Any]:
    """Keypoint agreement of FP32 and each INT8 graph on `crops` (N, H, W, 3) uint8 BGR (top level: `int8_path`, the
    TensorRT graph run by ONNX Runtime; "cpu": `cpu_path`), and ONNX Runtime CPU latency, the graphs interleaved
    run by run so background load hits them alike. latency_ms "int8" is `cpu_path` (what ONNX Runtime should run),
    "int8_tensorrt_graph" is `int8_path`."""
    from edge_pct.core.geometry import to_model_input
    from edge_pct.engines.runtime import OnnxRuntimeBackend

    cpu = ["CPUExecutionProvider"]
    backends = {"fp32": OnnxRuntimeBackend(fp32_path, cpu, threads), "int8": OnnxRuntimeBackend(cpu_path, cpu, threads),
                "int8_tensorrt_graph": OnnxRuntimeBackend(int8_path, cpu, threads, warn_slow_graph=False)}
    x = to_model_input(crops)
    a = backends["fp32"](x)
    agree = _agreement(a, backends["int8_tensorrt_graph"](x))
    agree["cpu"] = _agreement(a, backends["int8"](x))
    rng = np.random.default_rng(seed)
    w, h = backends["fp32"].input_size
    latency: dict[str, dict[str, float]] = {name: {} for name in backends}
    for b in LATENCY_BATCHES:
        xb = rng.uniform(0, 255, (b, 3, h, w)).astype(np.float32)
        runs = {name: functools.partial(backend, xb) for name, backend in backends.items()}
        for name, times in interleaved_times_ms(runs, repeats).items():
            latency[name][str(b)] = float(np.median(times))
    speedup = {str(b): latency["fp32"][str(b)] / max(latency["int8"][str(b)], 1e-9) for b in LATENCY_BATCHES}
    return {**agree, "latency_ms": {**latency, "speedup": speedup, "int8_onnx": cpu_path.name, "threads": threads,
                                    "repeats": repeats, "provider": "CPUExecutionProvider"}}


def _agreement(a: dict[str, np.ndarray], q: dict[str, np.ndarray]) -> dict[str, Any]:
    """FP32 outputs `a` vs INT8 outputs `q`: joint distance (px, crop frame), confidence and token agreement."""
    err = np.linalg.norm(a["joints"].astype(np.float64) - q["joints"], axis=-1)  # (N, J) px, crop frame
    return {"crops": len(err), "joints_mean_px": float(err.mean()), "joints_p95_px": float(np.percentile(err, 95)),
            "joints_max_px": float(err.max()),
            "confidence_mean_abs_diff": float(np.abs(a["confidence"] - q["confidence"]).mean()),
            "token_argmax_agreement": float((a["token_probs"].argmax(-1) == q["token_probs"].argmax(-1)).mean())}


def _coco_delta(fp32_path: Path, int8_path: Path, cpu_path: Path, ann: Path, images: Path, image_ids: list[int],
                staging: Path) -> dict[str, Any]:
    """COCO OKS-AP (GT boxes) of FP32 and both INT8 graphs on the images of `image_ids`, all their persons
    (`*_int8`: the TensorRT graph run by ONNX Runtime; `*_int8_cpu`: the ONNX Runtime CPU graph)."""
    from edge_pct.calibration.reader import subset_annotations
    from edge_pct.eval.evaluate import evaluate_coco, onnx_estimator

    subset = subset_annotations(ann, image_ids, staging / "eval_subset.json")
    a = evaluate_coco(onnx_estimator(fp32_path), subset, images)
    q = evaluate_coco(onnx_estimator(int8_path, warn_slow_graph=False), subset, images)
    c = evaluate_coco(onnx_estimator(cpu_path), subset, images)
    keys = ("ap", "ap50", "ap75", "ar")
    return {"images": len(set(image_ids)), "persons": a["persons"], **{f"{k}_fp32": a[k] for k in keys},
            **{f"{k}_int8": q[k] for k in keys}, **{f"{k}_int8_cpu": c[k] for k in keys},
            "ap_delta": q["ap"] - a["ap"], "ap_delta_cpu": c["ap"] - a["ap"]}
