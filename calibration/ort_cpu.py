"""ONNX Runtime CPU helpers shared by `edge-pct calibrate`, its tests and `benchmarks/int8_speed.py`: timing two or
more graphs interleaved, and the graph ONNX Runtime actually runs after its graph optimizations."""

from __future__ import annotations

import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from edge_pct.core.optional import require

# CLI name -> onnxruntime.GraphOptimizationLevel member.
LEVELS = {"disable": "ORT_DISABLE_ALL", "basic": "ORT_ENABLE_BASIC", "extended": "ORT_ENABLE_EXTENDED",
          "all": "ORT_ENABLE_ALL"}


def interleaved_times_ms(runs: dict[str, Callable[[], Any]], rounds: int, warmup: int = 2) -> dict[str, list[float]]:
    """Milliseconds of each call in `runs` over `rounds` rounds: one call of each per round, the order reversed
    every other round (A, B, B, A, ...), so background load on the machine hits them alike."""
    for _ in range(warmup):
        for run in runs.values():
            run()
    times: dict[str, list[float]] = {name: [] for name in runs}
    names = list(runs)
    for r in range(max(1, rounds)):
        for name in names if r % 2 == 0 else names[::-1]:
            t0 = time.perf_counter()
            runs[name]()
            times[name].append((time.perf_counter() - t0) * 1e3)
    return times


def optimized_graph(path: str | Path, threads: int = 1, level: str = "all") -> Any:
    """The onnx GraphProto ONNX Runtime's CPU provider runs for `path` after its graph optimizations at `level`
    (a LEVELS key): shows which convs became QLinearConv and which float ops still sit between DQ and Q."""
    ort, onnx = require("onnxruntime", "cpu"), require("onnx", "cpu")
    with tempfile.TemporaryDirectory() as tmp:
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = threads
        opts.log_severity_level = 3
        opts.graph_optimization_level = getattr(ort.GraphOptimizationLevel, LEVELS[level])
        opts.optimized_model_filepath = str(Path(tmp) / "optimized.onnx")
        ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
        return onnx.load(opts.optimized_model_filepath).graph


def op_counts(graph: Any) -> dict[str, int]:
    """{op type: count} of an onnx GraphProto, most frequent first."""
    counts: dict[str, int] = {}
    for n in graph.node:
        counts[n.op_type] = counts.get(n.op_type, 0) + 1
    return dict(sorted(counts.items(), key=lambda kv: -kv[1]))
