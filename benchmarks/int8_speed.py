"""ONNX Runtime CPU latency of an FP32 image graph vs its INT8 Q/DQ graph, interleaved, and the speed ratio.

The two sessions run alternately (A, B, B, A, A, B, ...: the order flips every round so neither always runs
first), so background load on the machine hits both alike; the ratio of the medians (fp32 / int8, > 1 means INT8
is faster) is the number to compare, absolute milliseconds only on an idle machine. Random 0-255 input; the
latency does not depend on the pixel values.

    python -m benchmarks.int8_speed --calib runs/cal --batch 1 --threads 1      # the documented INT8 path
    python -m benchmarks.int8_speed --onnx runs/export/model.onnx --int8 runs/cal/model.int8.tensorrt.onnx

`--calib DIR` times what a user gets from `--model DIR` on ONNX Runtime (the graph `open_backend` picks from an
`edge-pct calibrate` folder) against the FP32 graph that folder was calibrated from.
"""

from __future__ import annotations

import argparse
import functools
import json
import platform
import sys
from pathlib import Path

import numpy as np

from edge_pct.calibration.ort_cpu import LEVELS, interleaved_times_ms, op_counts, optimized_graph
from edge_pct.core.errors import InputFileError, run_reporting_errors
from edge_pct.core.files import write_text_atomic


def _session(ort, path: Path, threads: int, level: str, disabled: list[str] | None = None):
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    opts.log_severity_level = 3
    opts.graph_optimization_level = getattr(ort.GraphOptimizationLevel, LEVELS[level])
    return ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"],
                                disabled_optimizers=disabled or None)


def optimized_ops(path: Path, threads: int = 1, level: str = "all") -> dict[str, int]:
    """Op counts of the graph ONNX Runtime's CPU provider runs for `path` after its graph optimizations: how many
    convs became QLinearConv, which float ops still sit between DequantizeLinear and QuantizeLinear."""
    return op_counts(optimized_graph(path, threads, level))


def _feed(session, batch: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
    inp = session.get_inputs()[0]
    shape = [batch if not isinstance(d, int) else d for d in inp.shape]
    if shape[0] != batch:
        raise SystemExit(f"{inp.name} has a fixed batch {shape[0]}, asked for --batch {batch}")
    return {inp.name: rng.uniform(0, 255, shape).astype(np.float32)}


def measure(fp32: Path, int8: Path, batch: int = 1, threads: int = 1, runs: int = 50, warmup: int = 5,
            level: str = "all", seed: int = 0, disabled: list[str] | None = None) -> dict:
    """Median ms of each graph over `runs` interleaved rounds, and fp32 / int8 (medians and per-round)."""
    import onnxruntime as ort

    sessions = {"fp32": _session(ort, fp32, threads, level), "int8": _session(ort, int8, threads, level, disabled)}
    feed = _feed(sessions["fp32"], batch, np.random.default_rng(seed))
    times = interleaved_times_ms({name: functools.partial(s.run, None, feed) for name, s in sessions.items()}, runs,
                                 warmup)
    med = {k: float(np.median(v)) for k, v in times.items()}
    pair = np.asarray(times["fp32"]) / np.asarray(times["int8"])
    return {"fp32": str(fp32), "int8": str(int8), "batch": batch, "threads": threads, "runs": runs, "warmup": warmup,
            "optimization": level, "int8_disabled_optimizers": disabled or [],
            "fp32_ms_median": med["fp32"], "int8_ms_median": med["int8"],
            "speedup": med["fp32"] / med["int8"], "speedup_per_round_median": float(np.median(pair)),
            "onnxruntime": ort.__version__, "machine": platform.machine()}


def _documented_int8(calib: Path) -> tuple[Path, Path]:
    """(the INT8 graph `--model calib` runs on ONNX Runtime, the FP32 graph it was calibrated from)."""
    from edge_pct.engines.model_files import calibrated_graph
    from edge_pct.engines.onnx_io import read_sidecar

    int8 = calibrated_graph(calib, "onnxruntime")
    return int8, Path(read_sidecar(int8)["calibration"]["onnx"])


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--onnx", type=Path, help="FP32 image graph (model.onnx; default with --calib: its source)")
    p.add_argument("--int8", type=Path, help="INT8 Q/DQ image graph, e.g. model.int8.tensorrt.onnx")
    p.add_argument("--calib", type=Path, help="an `edge-pct calibrate` folder: time the graph --model DIR runs")
    p.add_argument("--batch", type=int, default=1)
    p.add_argument("--threads", type=int, default=1, help="intra-op threads of both sessions")
    p.add_argument("--runs", type=int, default=50, help="timed rounds (one run of each graph per round)")
    p.add_argument("--warmup", type=int, default=5)
    p.add_argument("--opt-level", choices=list(LEVELS), default="all", help="ORT graph optimization level")
    p.add_argument("--disable", action="append", default=[], metavar="TRANSFORMER",
                   help="ORT graph transformer left out of the INT8 session (repeatable), e.g. QDQS8ToU8Transformer")
    p.add_argument("--ops", action="store_true", help="also print the op counts of the optimized INT8 graph")
    p.add_argument("--json", type=Path, help="also write the result here")
    a = p.parse_args(argv)
    if a.calib is not None:
        a.int8, source = _documented_int8(a.calib)
        a.onnx = a.onnx or source
    if a.onnx is None or a.int8 is None:
        p.error("pass --calib DIR, or --onnx FP32 and --int8 INT8")
    for path in (a.onnx, a.int8):
        if not path.is_file():
            raise InputFileError(f"'{path}' not found: pass the graphs that `edge-pct export` and `calibrate` wrote")
    res = measure(a.onnx, a.int8, a.batch, a.threads, a.runs, a.warmup, a.opt_level, disabled=a.disable)
    print(f"{a.int8.name} vs {a.onnx.name}, batch {a.batch} threads {a.threads} runs {a.runs} ({a.opt_level}):")
    print(f"  fp32 {res['fp32_ms_median']:.2f} ms, "
          f"int8 {res['int8_ms_median']:.2f} ms, fp32/int8 {res['speedup']:.2f}x "
          f"(per-round median {res['speedup_per_round_median']:.2f}x)")
    if a.ops:
        res["int8_optimized_ops"] = optimized_ops(a.int8, a.threads, a.opt_level)
        print("int8 graph after ONNX Runtime optimization:", res["int8_optimized_ops"])
    if a.json:
        write_text_atomic(a.json, json.dumps(res, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(run_reporting_errors(main, "int8_speed.py"))
