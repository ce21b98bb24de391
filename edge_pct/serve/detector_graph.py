"""The served YOLOX graph: the shipped (or a given) YOLOX-format ONNX rewritten for batching across streams.

Three edits, none changing a number (checked in ONNX Runtime against the source graph before it is returned):
  batch    the batch axis becomes dynamic: the official export hard-codes 1 in its three head Reshapes
           ([1, 85, -1]); a 0 there copies the input's batch (ONNX Reshape, allowzero = 0).
  input    the canvas travels as uint8 (a quarter of the float32 bytes) and is cast to float32 inside the graph:
           YOLOX takes raw 0-255 pixels (`edge_pct.stream.detectors.yolox.to_input`), so the cast is exact.
  output   only the person columns travel: [tx, ty, tw, th, obj, cls[person]] (85 -> 6 columns for COCO), which is
           all `decode_yolox` reads.
Operators: https://onnx.ai/onnx/operators/ (Reshape, Cast, Slice).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from edge_pct.core.errors import InputFileError
from edge_pct.core.optional import require
from edge_pct.serve.signatures import DETECTOR_COLUMNS
from edge_pct.stream.detectors.yolox import PERSON_CLASS, YOLOX_FIX, make_grids

_PARITY_TOL = 1e-4  # ORT's batched kernels vs batch 1: float32 rounding only


def serving_detector_graph(path: str | Path) -> tuple[bytes, dict[str, Any]]:
    """`path` (YOLOX-format ONNX, input [1, 3, H, W] float32) -> (the served graph's bytes, its facts: input, output
    names, input_hw (H, W), cells A). Raises InputFileError when the graph is not YOLOX-like or not batchable."""
    onnx = require("onnx", "cpu")
    path = Path(path)
    if not path.is_file():
        raise InputFileError(f"Detector model '{path}' not found: {YOLOX_FIX}")
    try:
        model = onnx.load(str(path))
    except Exception as e:  # onnx raises DecodeError / ValueError subclasses for a corrupt file
        raise InputFileError(f"Detector model '{path}' is not a readable ONNX ({type(e).__name__}): {YOLOX_FIX}") from e
    g = model.graph
    if len(g.input) != 1 or len(g.output) < 1:
        raise InputFileError(f"'{path}' is not a YOLOX-format detector (inputs {len(g.input)}): {YOLOX_FIX}")
    in_dims = [d.dim_value for d in g.input[0].type.tensor_type.shape.dim]
    out_dims = [d.dim_value for d in g.output[0].type.tensor_type.shape.dim]
    if len(in_dims) != 4 or in_dims[1] != 3 or len(out_dims) != 3 or out_dims[2] < DETECTOR_COLUMNS:
        raise InputFileError(f"'{path}' is not a YOLOX-format detector (input {in_dims}, output {out_dims}): "
                             f"{YOLOX_FIX}")
    h, w = in_dims[2], in_dims[3]
    cells = len(make_grids((h, w))[0])
    _batch_reshapes(onnx, g)
    in_name, out_name = g.input[0].name, g.output[0].name
    _uint8_input(onnx, g, in_name)
    _person_columns(onnx, g, out_name)
    del g.output[1:]
    g.ClearField("value_info")  # shapes inferred at batch 1; ORT re-infers them
    onnx.checker.check_model(model)
    data = model.SerializeToString()
    _check_parity(path, data, in_name, out_name, (h, w))
    return data, {"input": in_name, "output": out_name, "input_hw": (h, w), "cells": cells}


def _batch_reshapes(onnx: Any, g: Any) -> None:
    """Reshape targets with a leading constant 1 -> 0 (copy the batch)."""
    numpy_helper = onnx.numpy_helper
    inits = {i.name: i for i in g.initializer}
    consts = {n.output[0]: n for n in g.node if n.op_type == "Constant"}
    for node in g.node:
        if node.op_type != "Reshape" or len(node.input) < 2:
            continue
        src = node.input[1]
        if src in inits:
            shape = numpy_helper.to_array(inits[src]).copy()
            if shape.ndim == 1 and len(shape) > 1 and shape[0] == 1:
                shape[0] = 0
                inits[src].CopyFrom(numpy_helper.from_array(shape, src))
        elif src in consts:
            attr = consts[src].attribute[0]
            shape = numpy_helper.to_array(attr.t).copy()
            if shape.ndim == 1 and len(shape) > 1 and shape[0] == 1:
                shape[0] = 0
                attr.t.CopyFrom(numpy_helper.from_array(shape, attr.t.name))


def _uint8_input(onnx: Any, g: Any, name: str) -> None:
    """Graph input `name` becomes uint8 [batch, 3, H, W], cast to float32 as the old input."""
    helper = onnx.helper
    inner = f"{name}_float"
    for node in g.node:
        node.input[:] = [inner if i == name else i for i in node.input]
    dims = [d.dim_value for d in g.input[0].type.tensor_type.shape.dim]
    g.input.pop()
    g.input.append(helper.make_tensor_value_info(name, onnx.TensorProto.UINT8, ["batch", *dims[1:]]))
    g.node.insert(0, helper.make_node("Cast", [name], [inner], to=onnx.TensorProto.FLOAT, name="served_input_cast"))


def _person_columns(onnx: Any, g: Any, name: str) -> None:
    """Graph output `name` becomes [batch, A, 6]: columns 0-4 and the person class (a Slice of the last axis)."""
    helper, numpy_helper = onnx.helper, onnx.numpy_helper
    full = f"{name}_all_classes"
    for node in g.node:
        node.output[:] = [full if o == name else o for o in node.output]
    stop = 5 + PERSON_CLASS + 1  # person is class 0: columns 0..5
    for key, value in (("starts", 0), ("ends", stop), ("axes", 2)):
        g.initializer.append(numpy_helper.from_array(np.array([value], np.int64), f"served_slice_{key}"))
    g.node.append(helper.make_node("Slice", [full, "served_slice_starts", "served_slice_ends", "served_slice_axes"],
                                   [name], name="served_person_columns"))
    cells = g.output[0].type.tensor_type.shape.dim[1].dim_value
    g.output.pop(0)
    g.output.insert(0, helper.make_tensor_value_info(name, onnx.TensorProto.FLOAT, ["batch", cells, stop]))


def _check_parity(path: Path, served: bytes, in_name: str, out_name: str, hw: tuple[int, int]) -> None:
    """The served graph on a batch of 3 canvases == the source graph on each (person columns), or InputFileError."""
    ort = require("onnxruntime", "cpu")
    opts = ort.SessionOptions()
    opts.log_severity_level = 3
    src = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
    try:
        new = ort.InferenceSession(served, opts, providers=["CPUExecutionProvider"])
        canvases = np.random.default_rng(0).integers(0, 256, (3, 3, *hw), dtype=np.uint8)
        got = new.run([out_name], {in_name: canvases})[0]
    except Exception as e:  # ORT's own exception types: a Reshape that still pins the batch fails here
        raise InputFileError(f"'{path}' cannot be served with a dynamic batch ({str(e).splitlines()[0]}): "
                             f"{YOLOX_FIX}") from e
    for i, canvas in enumerate(canvases):
        ref = src.run(None, {src.get_inputs()[0].name: canvas[None].astype(np.float32)})[0][0]
        diff = float(np.abs(ref[:, :DETECTOR_COLUMNS] - got[i]).max())
        if diff > _PARITY_TOL:
            raise InputFileError(f"'{path}': the batched served graph differs from it by {diff:.3g}: {YOLOX_FIX}")
