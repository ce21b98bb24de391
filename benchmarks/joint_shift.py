"""Per-joint shift of each CPU precision against FP32 on the LSP held-out crops, and where BF16's shift comes from.

The crops are the ones `edge-pct eval --lsp` scores (GT boxes, the same affine); every variant runs them and its
joints (model-input crop px, 256x192 for the shipped model) are compared with ONNX Runtime FP32's: mean, p99 and max
shift, joints moved > 5 px, persons with a joint moved > 20 px, and the mean shift per joint. A shift is not an error:
`edge-pct eval` scores each precision against the ground truth.

`--parts` adds OpenVINO runs that keep one part of the graph in FP32 and the rest in BF16 (two compiled models, the
cut tensors passed between them), to find the precision-sensitive part:
- "bf16, fp32 tail": everything only the joints need (the decoder after the token softmax, the heatmap head, the
  heatmap refinement) in FP32;
- "fp32 to conv K, bf16 after": the graph up to the input of its K-th convolution (`--fp32-until K ...`, topological
  order) in FP32, the rest in BF16.

    python -m benchmarks.joint_shift --onnx runs/export/model.onnx --calib runs/cal --parts --json runs/shift.json
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.common import add_data_arg, data_dir
from edge_pct.core.errors import run_reporting_errors
from edge_pct.core.files import write_text_atomic

Run = Callable[[np.ndarray], np.ndarray]  # (N, 3, H, W) float32 0-255 -> joints (N, 17, 2) crop px


def lsp_crops(lsp_root: Path, input_size: tuple[int, int]) -> np.ndarray:
    """(N, H, W, 3) uint8 BGR crops of the LSP held-out persons, exactly as `evaluate_lsp` cuts them."""
    from edge_pct.data.lsp import load_lsp
    from edge_pct.eval.evaluate import Estimator, predict_persons

    crops = []

    def keep(batch: np.ndarray) -> dict[str, np.ndarray]:
        crops.append(batch.copy())
        return {"joints": np.zeros((len(batch), 17, 2), np.float32), "confidence": np.zeros((len(batch), 17))}

    predict_persons(Estimator("crops", input_size, keep), load_lsp(str(lsp_root), "heldout"))
    return np.concatenate(crops)


def _names(nodes: Any) -> set[str]:
    return {n.get_name() for n in nodes}


def _ancestors(outputs: list[Any]) -> set[str]:
    """Unique names of every op that `outputs` (openvino Output ports) depend on, their own ops included."""
    seen: set[str] = set()
    stack = [o.get_node() for o in outputs]
    while stack:
        node = stack.pop()
        if node.get_name() not in seen:
            seen.add(node.get_name())
            stack.extend(i.get_source_output().get_node() for i in node.inputs())
    return seen


def split_run(onnx: Path, back: Callable[[Any], set[str]], front_precision: str, back_precision: str,
              threads: int) -> Run:
    """The graph as two compiled models: the ops `back(model)` names at `back_precision`, the others at
    `front_precision`, the tensors crossing the cut passed from the first to the second."""
    import openvino as ov
    from openvino import opset13

    from edge_pct.engines.openvino_backend import cpu_config

    core = ov.Core()
    model = core.read_model(str(onnx))
    outs = {o.get_any_name(): o for o in model.outputs}
    tail = back(model)
    cut, seen = [], set()
    for node in model.get_ordered_ops():
        for inp in node.inputs() if node.get_name() in tail else ():
            src = inp.get_source_output()
            key = (src.get_node().get_name(), src.get_index())
            if key[0] not in tail and src.get_node().get_type_name() != "Constant" and key not in seen:
                seen.add(key)
                cut.append(src)
    front_keys = [k for k in outs if outs[k].get_node().get_name() not in tail]
    front = core.compile_model(ov.Model([outs[k] for k in front_keys] + cut, model.get_parameters()), "CPU",
                               cpu_config(front_precision, threads))
    params = []
    for src in cut:  # the back model reads the cut tensors from new parameters
        p = opset13.parameter(src.get_partial_shape(), src.get_element_type())
        for target in list(src.get_target_inputs()):
            if target.get_node().get_name() in tail:
                target.replace_source_output(p.output(0))
        params.append(p)
    back_keys = [k for k in outs if k not in front_keys]
    rear = core.compile_model(ov.Model([outs[k] for k in back_keys], params), "CPU",
                              cpu_config(back_precision, threads))

    def run(x: np.ndarray) -> np.ndarray:
        r = front.create_infer_request().infer({0: x})
        vals = [r[o] for o in front.outputs]
        res = dict(zip(front_keys, vals, strict=False))
        rr = rear.create_infer_request().infer(vals[len(front_keys):])
        res.update({k: rr[o] for k, o in zip(back_keys, rear.outputs, strict=True)})
        return np.asarray(res["joints"])

    return run


def joints_tail(model: Any) -> set[str]:
    """Ops only the `joints` output needs (not token_probs or confidence)."""
    outs = {o.get_any_name(): o for o in model.outputs}
    return _ancestors([outs["joints"]]) - _ancestors([outs["token_probs"], outs["confidence"]])


def after_conv(k: int) -> Callable[[Any], set[str]]:
    """Ops outside the ancestors of the input of the model's k-th convolution (topological order)."""

    def back(model: Any) -> set[str]:
        convs = [n for n in model.get_ordered_ops() if n.get_type_name() in ("Convolution", "GroupConvolution")]
        return _names(model.get_ordered_ops()) - _ancestors([convs[k].input(0).get_source_output()])

    return back


def variants(onnx: Path, cpu_int8: Path | None, parts: bool, until: list[int], threads: int) -> dict[str, Run]:
    """{name: run} of every precision here, ONNX Runtime FP32 first (the reference)."""
    import importlib.util

    from edge_pct.engines.runtime import create_backend

    def joints(backend: Any) -> Run:
        return lambda x: backend(x)["joints"]

    out = {"onnxruntime fp32": joints(create_backend("onnxruntime", onnx, threads=threads))}
    if cpu_int8 is not None:
        out["onnxruntime int8"] = joints(create_backend("onnxruntime", cpu_int8, threads=threads))
    if importlib.util.find_spec("openvino") is None:
        return out
    out["openvino fp32"] = joints(create_backend("openvino-fp32", onnx, threads=threads))
    out["openvino bf16"] = joints(create_backend("openvino-bf16", onnx, threads=threads))
    if cpu_int8 is not None:
        out["openvino int8"] = joints(create_backend("openvino-fp32", cpu_int8, threads=threads))
    if parts:
        out["bf16, fp32 tail"] = split_run(onnx, joints_tail, "bf16", "fp32", threads)
        for k in until:
            out[f"fp32 to conv {k}, bf16 after"] = split_run(onnx, after_conv(k), "fp32", "bf16", threads)
    return out


def shift_stats(joints: np.ndarray, ref: np.ndarray) -> dict[str, Any]:
    """Shift of joints (N, 17, 2) vs ref, px: mean, p99, max, counts, and the mean per joint (17,)."""
    d = np.linalg.norm(joints - ref, axis=-1)
    return {"mean_px": float(d.mean()), "p99_px": float(np.percentile(d, 99)), "max_px": float(d.max()),
            "joints_over_5px": int((d > 5).sum()), "persons_over_20px": int((d.max(1) > 20).sum()),
            "per_joint_mean_px": d.mean(0).round(3).tolist()}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--onnx", type=Path, help="FP32 `edge-pct export` graph (default: the cached shipped model)")
    p.add_argument("--calib", type=Path, help="an `edge-pct calibrate` folder: adds its INT8 CPU graph")
    p.add_argument("--lsp", type=Path, default=data_dir(argv) / "lspet")
    p.add_argument("--parts", action="store_true", help="also the OpenVINO BF16 runs with one part kept in FP32")
    p.add_argument("--fp32-until", type=int, nargs="*", default=[9, 77], metavar="K",
                   help="with --parts: FP32 up to the input of the K-th convolution (shipped model: 9 = after the "
                   "stem and dark2, 77 = the whole backbone and neck before the token head)")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--json", type=Path, help="also write the result here")
    add_data_arg(p)
    a = p.parse_args(argv)
    from edge_pct.core.geometry import to_model_input
    from edge_pct.core.package import DEFAULT_MODEL
    from edge_pct.engines.model_files import cached_onnx, calibrated_graph
    from edge_pct.engines.onnx_io import read_sidecar

    onnx = a.onnx or cached_onnx(DEFAULT_MODEL)
    cpu_int8 = calibrated_graph(a.calib, "onnxruntime") if a.calib else None
    crops = lsp_crops(a.lsp, tuple(read_sidecar(onnx)["input_size"]))
    runs = variants(onnx, cpu_int8, a.parts, a.fp32_until, a.threads)
    joints = {name: np.concatenate([run(to_model_input(crops[s:s + 32])) for s in range(0, len(crops), 32)])
              for name, run in runs.items()}
    ref = joints["onnxruntime fp32"]
    res = {"onnx": str(onnx), "cpu_int8": str(cpu_int8) if cpu_int8 else None, "persons": len(crops),
           "reference": "onnxruntime fp32", "variants": {n: shift_stats(j, ref) for n, j in joints.items()}}
    print(f"joint shift vs onnxruntime fp32, {len(crops)} LSP held-out crops (px of the model input)")
    print(f"{'':30s}{'mean':>7s}{'p99':>7s}{'max':>7s}{'>5px':>7s}{'persons>20px':>14s}")
    for n, s in res["variants"].items():
        print(f"{n:30s}{s['mean_px']:7.2f}{s['p99_px']:7.2f}{s['max_px']:7.1f}{s['joints_over_5px']:7d}"
              f"{s['persons_over_20px']:14d}")
    print("mean shift per joint (COCO order):")
    for n, s in res["variants"].items():
        print(f"{n:30s}" + " ".join(f"{v:4.1f}" for v in s["per_joint_mean_px"]))
    if a.json:
        write_text_atomic(a.json, json.dumps(res, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(run_reporting_errors(main, "joint_shift.py"))
