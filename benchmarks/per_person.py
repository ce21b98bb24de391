"""Milliseconds per person of every CPU pose backend x precision x batch x threads, side by side in one run.

Rows: torch FP32, ONNX Runtime FP32 and INT8 (`model.int8.cpu.onnx` of `--calib DIR`), OpenVINO FP32, BF16 and INT8
(the same CPU graph). For each thread count all backends are built with that many threads, and for each batch size
they run interleaved (A, B, C, C, B, A, ...: the order flips every round), so background load hits them alike; a
cell is the median of `--runs` rounds divided by the batch. The second table is the speed-up over ONNX Runtime FP32
in the same cell (> 1: faster): the number to compare, absolute ms only on an idle machine. Random 0-255 input (the
latency does not depend on the pixel values). Each call is the backend's full `__call__` (input check, inference,
outputs as float32 numpy), what the pipeline pays.

    python -m benchmarks.per_person --calib runs/cal --runs 15 --json runs/per_person.json
"""

from __future__ import annotations

import argparse
import functools
import importlib.util
import json
import platform
import sys
from pathlib import Path
from typing import Any

import numpy as np

from edge_pct.core.errors import InputFileError, run_reporting_errors
from edge_pct.core.files import write_text_atomic

BATCHES = (1, 4, 8, 16, 32)
THREADS = (1, 2)
REFERENCE = "onnxruntime fp32"


def _backends(checkpoint: Path, onnx: Path, cpu_int8: Path | None, threads: int) -> dict[str, Any]:
    """{row name: PoseBackend} of every runtime installed here, each on `threads` CPU threads."""
    import torch

    from edge_pct.engines.runtime import create_backend

    torch.set_num_threads(threads)
    rows: dict[str, Any] = {"torch fp32": create_backend("torch", checkpoint, batch=max(BATCHES)),
                            REFERENCE: create_backend("onnxruntime", onnx, threads=threads)}
    if cpu_int8 is not None:
        rows["onnxruntime int8"] = create_backend("onnxruntime", cpu_int8, threads=threads)
    if importlib.util.find_spec("openvino") is not None:
        rows["openvino fp32"] = create_backend("openvino-fp32", onnx, threads=threads)
        rows["openvino bf16"] = create_backend("openvino-bf16", onnx, threads=threads)
        if cpu_int8 is not None:
            rows["openvino int8"] = create_backend("openvino-fp32", cpu_int8, threads=threads)
    return rows


def measure(checkpoint: Path, onnx: Path, cpu_int8: Path | None, runs: int = 15, warmup: int = 3,
            batches: tuple[int, ...] = BATCHES, threads: tuple[int, ...] = THREADS) -> dict[str, Any]:
    """{"cells": [{backend, threads, batch, ms_per_person, speedup_vs_ort_fp32}], ...}: median ms per person."""
    from edge_pct.calibration.ort_cpu import interleaved_times_ms

    size = None
    cells = []
    for t in threads:
        backends = _backends(checkpoint, onnx, cpu_int8, t)
        size = size or next(iter(backends.values())).input_size
        for b in batches:
            x = np.random.default_rng(b).uniform(0, 255, (b, 3, size[1], size[0])).astype(np.float32)
            for backend in backends.values():  # OpenVINO: the static compile for this batch, before timing
                getattr(backend, "compile_batch", lambda n: None)(b)
            times = interleaved_times_ms({name: functools.partial(f, x) for name, f in backends.items()}, runs, warmup)
            med = {name: float(np.median(v)) / b for name, v in times.items()}
            cells += [{"backend": name, "threads": t, "batch": b, "ms_per_person": ms,
                       "speedup_vs_ort_fp32": med[REFERENCE] / ms} for name, ms in med.items()]
    return {"checkpoint": str(checkpoint), "onnx": str(onnx), "cpu_int8": str(cpu_int8) if cpu_int8 else None,
            "runs": runs, "warmup": warmup, "input_size": list(size or ()), "machine": platform.machine(),
            "processor": _cpu_name(), "versions": _versions(), "cells": cells}


def _cpu_name() -> str:
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return platform.processor()
    return next((ln.split(":", 1)[1].strip() for ln in text.splitlines() if ln.startswith("model name")), "")


def _versions() -> dict[str, str]:
    import importlib

    out = {}
    for m in ("torch", "onnxruntime", "openvino"):
        if importlib.util.find_spec(m) is not None:
            out[m] = str(importlib.import_module(m).__version__)
    return out


def format_tables(res: dict[str, Any]) -> str:
    """Two text tables, rows = backends, columns = threads x batch: ms per person, then the speed-up over ORT FP32."""
    cols = sorted({(c["threads"], c["batch"]) for c in res["cells"]})
    names = list(dict.fromkeys(c["backend"] for c in res["cells"]))
    by = {(c["backend"], c["threads"], c["batch"]): c for c in res["cells"]}
    head = f"{'':18s}" + "".join(f"{f't{t} b{b}':>9s}" for t, b in cols)
    out = []
    for key, title, fmt in (("ms_per_person", f"ms per person (median of {res['runs']})", "{:9.2f}"),
                            ("speedup_vs_ort_fp32", "speed-up over onnxruntime fp32 (same cell)", "{:8.2f}x")):
        out += [title, head]
        for n in names:
            out.append(f"{n:18s}" + "".join(fmt.format(by[(n, t, b)][key]) if (n, t, b) in by else f"{'-':>9s}"
                                            for t, b in cols))
        out.append("")
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--checkpoint", type=Path, help="classifier .pt (default: the shipped model)")
    p.add_argument("--onnx", type=Path, help="its `edge-pct export` graph (default: the cached export of --checkpoint)")
    p.add_argument("--calib", type=Path, help="an `edge-pct calibrate` folder: adds the INT8 CPU graph rows")
    p.add_argument("--runs", type=int, default=15, help="timed rounds per cell (the median is reported)")
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--batches", type=int, nargs="+", default=list(BATCHES))
    p.add_argument("--threads", type=int, nargs="+", default=list(THREADS))
    p.add_argument("--json", type=Path, help="also write the result here")
    a = p.parse_args(argv)
    from edge_pct.core.package import DEFAULT_MODEL
    from edge_pct.engines.model_files import cached_onnx, calibrated_graph

    checkpoint = a.checkpoint or DEFAULT_MODEL
    if not checkpoint.is_file():
        raise InputFileError(f"Checkpoint '{checkpoint}' not found: pass --checkpoint PT (a classifier .pt)")
    onnx = a.onnx or cached_onnx(checkpoint)
    cpu_int8 = calibrated_graph(a.calib, "onnxruntime") if a.calib else None
    res = measure(checkpoint, onnx, cpu_int8, a.runs, a.warmup, tuple(a.batches), tuple(a.threads))
    print(f"{res['processor']} ({res['machine']}), {res['versions']}; model {onnx}, INT8 {cpu_int8}\n")
    print(format_tables(res))
    if a.json:
        write_text_atomic(a.json, json.dumps(res, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(run_reporting_errors(main, "per_person.py"))
