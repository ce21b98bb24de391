"""The files of an `edge-pct calibrate` output folder, named for their target.

    model.int8.tensorrt.onnx (+ .json)  symmetric Q/DQ graph: what `edge-pct build --precision int8` compiles
    model.int8.cpu.onnx (+ .json)       the same ranges for ONNX Runtime's CPU kernels: what a CPU runs
    model.int8.decoder.onnx             the FP32 tokenizer decoder both graphs use
    calib.cache                         TensorRT <= 10 implicit-INT8 calibration cache
    report.json                         ranges, FP32 vs INT8 accuracy and speed (written last)

Passing the folder as a model (`--model DIR`, `PoseEstimator(model=DIR)`) picks the graph for the backend.
"""

from __future__ import annotations

from pathlib import Path

INT8_NAME = "model.int8.tensorrt.onnx"  # the "tensorrt" Q/DQ target: what `edge-pct build` compiles
DECODER_NAME = "model.int8.decoder.onnx"  # the FP32 decoder both INT8 graphs use
CPU_NAME = "model.int8.cpu.onnx"  # the "cpu" Q/DQ target (qdq.TARGETS): what OnnxRuntimeBackend should load on CPU
CACHE_NAME = "calib.cache"
REPORT_NAME = "report.json"


def sibling_name(suffix: str, name: str = INT8_NAME) -> str:
    """model.int8.tensorrt.onnx -> model.int8.tensorrt<suffix>, e.g. the sidecar that read_sidecar looks for."""
    return Path(name).with_suffix(suffix).name
