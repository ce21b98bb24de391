"""Which layers cost the INT8 accuracy? Keep one group of convs FP32 at a time, re-quantize from the ranges of an
`edge-pct calibrate` run (no new calibration), and score each graph against the FP32 one on a seeded subset of
LSP-extended TRAINING persons (the held-out slice stays unseen): PCK@0.2, the mean joint shift vs FP32 (image px)
and the share of joints moved more than 4 px.

Groups are the convs whose weight names share their first `--depth` module names (`backbone.dark2`,
`head.blocks`, ...); `--within PREFIX` instead keeps each conv under that prefix FP32 alone. What stays FP32 in
every variant is `calibration.qdq.float_nodes` (what `calibrate` keeps FP32). This is how the stem's
depthwise-separable conv was found (README, INT8):

    python -m benchmarks.int8_sensitivity --onnx runs/s20/e256/model.onnx --calibration runs/s20/c256 \\
        --json runs/int8_sensitivity.json
    python -m benchmarks.int8_sensitivity --onnx runs/s20/e256/model.onnx --calibration runs/s20/c256 \\
        --within model.backbone.dark2 --json runs/int8_sensitivity_dark2.json
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
from pathlib import Path

import numpy as np

from benchmarks.common import add_subset_args, training_subset
from edge_pct.calibration.artifacts import CPU_NAME, DECODER_NAME, INT8_NAME, REPORT_NAME, sibling_name
from edge_pct.calibration.qdq import float_nodes, quantize_qdq
from edge_pct.core.errors import InputFileError, run_reporting_errors
from edge_pct.core.files import write_text_atomic
from edge_pct.core.optional import require
from edge_pct.eval.evaluate import onnx_estimator, pck, predict_persons

MOVED_PX = 4.0


def conv_groups(model, depth: int, within: str | None) -> dict[str, list[str]]:
    """{group: conv node names} of an onnx.ModelProto, by the module path of each conv's weight (`model.` dropped);
    with `within`, one group per conv under that weight-name prefix."""
    groups: dict[str, list[str]] = {}
    for n in model.graph.node:
        if n.op_type != "Conv" or not n.input[1].startswith("model."):
            continue
        if within is not None:
            if n.input[1].startswith(within):
                groups[n.input[1]] = [n.name]
        else:
            groups.setdefault(".".join(n.input[1].split(".")[1:1 + depth]), []).append(n.name)
    return groups


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--onnx", required=True, help="the FP32 model.onnx of `edge-pct export`")
    ap.add_argument("--calibration", required=True, help="the --out folder of `edge-pct calibrate` on that model")
    ap.add_argument("--target", choices=("cpu", "tensorrt"), default="cpu", help="which Q/DQ graph to probe")
    ap.add_argument("--depth", type=int, default=2, help="module names that define a group")
    ap.add_argument("--within", help="one variant per conv whose weight name starts with this")
    add_subset_args(ap)
    args = ap.parse_args()
    onnx = require("onnx", "cpu")
    calib = Path(args.calibration)
    name = CPU_NAME if args.target == "cpu" else INT8_NAME
    needed = [calib / REPORT_NAME, calib / sibling_name(".json", name), calib / DECODER_NAME]
    missing = [str(p) for p in [Path(args.onnx), *needed] if not p.is_file()]
    if missing:
        raise InputFileError(f"'{missing[0]}' not found: pass --onnx MODEL.onnx from `edge-pct export` and "
                             "--calibration DIR from `edge-pct calibrate --onnx MODEL.onnx --out DIR`")
    try:
        ranges = {k: tuple(v) for k, v in json.loads(needed[0].read_text())["ranges"].items()}
    except (ValueError, KeyError, TypeError, AttributeError) as e:
        raise InputFileError(f"'{needed[0]}' has no readable ranges ({type(e).__name__}: {e}): re-run "
                             "`edge-pct calibrate`") from e
    try:
        fp32 = onnx.load(args.onnx)
    except Exception as e:  # protobuf DecodeError and friends: a corrupt file
        raise InputFileError(f"ONNX model '{args.onnx}' is corrupt ({type(e).__name__}): re-run "
                             "`edge-pct export`") from e
    base = float_nodes(fp32)
    groups = conv_groups(fp32, args.depth, args.within)
    persons = training_subset(args.lsp, args.persons)
    ref = predict_persons(onnx_estimator(args.onnx), persons)[0]
    rows = [{"variant": "fp32", "fp32_convs": None, "pck": pck(ref, persons.keypoints)["pck"]}]
    print(json.dumps(rows[-1]), flush=True)
    with tempfile.TemporaryDirectory(prefix="edge-pct-int8-sensitivity-") as tmp:
        for path in needed[1:]:  # the sidecar and decoder the INT8 graph loads with
            shutil.copy(path, tmp)
        graph = Path(tmp) / name
        for variant, extra in [("all int8", [])] + [(f"{g} fp32", v) for g, v in sorted(groups.items())]:
            quantize_qdq(args.onnx, graph, ranges=ranges, exclude=base + extra, target=args.target)
            joints = predict_persons(onnx_estimator(graph), persons)[0]
            shift = np.linalg.norm(joints - ref, axis=-1)
            rows.append({"variant": variant, "fp32_convs": len(extra), "pck": pck(joints, persons.keypoints)["pck"],
                         "mean_shift_px": float(shift.mean()), "moved_share": float((shift > MOVED_PX).mean())})
            print(json.dumps(rows[-1]), flush=True)
    write_text_atomic(args.json, json.dumps({"onnx": args.onnx, "calibration": args.calibration,
                                             "target": args.target, "persons": args.persons, "rows": rows}, indent=2))


if __name__ == "__main__":
    sys.exit(run_reporting_errors(main, "int8_sensitivity.py"))
