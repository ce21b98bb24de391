"""Per-tensor calibration ranges and the INT8 Q/DQ ONNX graphs (explicit quantization), with ONNX Runtime.

`calibrate_ranges` runs one ONNX Runtime calibrator (entropy, percentile or min-max) over a reader and returns
{tensor: (min, max)}; `quantize_qdq` turns the FP32 graph plus those ranges into QuantizeLinear/DequantizeLinear
pairs for one of two consumers (`TARGETS`), from the same ranges:

- "tensorrt" (`model.int8.tensorrt.onnx`): per-channel INT8 weights (FP32 -> Q -> DQ), per-tensor INT8 activations, FP32
  biases, symmetric, so every zero point is 0 (TensorRT's explicit-quantization requirement).
- "cpu" (`model.int8.cpu.onnx`, for ONNX Runtime's CPU provider): per-channel symmetric INT8 weights stored as INT8,
  INT32 biases, and asymmetric UINT8 activations, so ReLU/ReLU6 fold into the activation's quantization range.
  ONNX Runtime runs the "tensorrt" graph on x86 slower than FP32: it turns INT8 Q/DQ pairs into UINT8 ones
  (QDQS8ToU8Transformer) only where a QuantizeLinear has a single DequantizeLinear consumer, so at every fan-out
  (the residual connections) INT8 and UINT8 tensors meet and the Conv/Add there stay FP32 between DQ and Q; the
  symmetric range keeps each ReLU6 as DQ -> Clip -> Q in FP32; and a weight Q/DQ pair on a layer that does not
  fuse into an integer kernel (FP32 bias, FP32 input) dequantizes that weight on every run. The "cpu" graph fuses
  into QLinearConv/QGemm/QLinearAdd; it also leaves FP32 the layers that gain nothing there (`token_mixer_nodes`:
  the head from its first LayerNorm on; `cpu_float_nodes`: layers reading an FP32 tensor). TensorRT cannot take
  it (UINT8, non-zero zero points, INT32 bias DQ).

The ranges reach `quantize_static` through its JSON range cache, so the data is calibrated once. What stays FP32
in both (`float_nodes`): LayerNormalization, the V-way logits layer (`cls_pred`), the Softmax producing
`token_probs` and everything after it (codebook matmul, tokenizer decoder), the nodes producing graph outputs, and
the image stem with the depthwise-separable conv reading it (`stem_nodes`: the most INT8-sensitive tensors);
no Q/DQ pair touches their inputs or outputs (`_keep_float_boundaries`), so TensorRT has no INT8 choice there
either. Tensor names are never changed, so the ranges also address the FP32 graph's tensors (the TensorRT
calibration cache needs that).
ONNX Runtime quantization: https://onnxruntime.ai/docs/performance/model-optimizations/quantization.html;
TensorRT Q/DQ placement: developer guide, "Explicit quantization".
"""

from __future__ import annotations

import contextlib
import difflib
import inspect
import io
import logging
import shutil
import tempfile
from collections import defaultdict
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from edge_pct.core.errors import ConfigError, InputFileError, MissingDependencyError
from edge_pct.core.optional import require

log = logging.getLogger(__name__)

# CLI name -> onnxruntime.quantization.CalibrationMethod member.
METHODS = {"entropy": "Entropy", "percentile": "Percentile", "minmax": "MinMax"}
PROBS_OUTPUT = "token_probs"
QDQ_OPS = ("QuantizeLinear", "DequantizeLinear")
_INT8 = 3  # onnx.TensorProto.INT8
_LOGITS_OPS = ("MatMul", "Gemm")
_PASS_THROUGH = ("Add", "Reshape", "Transpose", "Identity", "Flatten")  # bias add / views between logits and softmax
# "tensorrt": symmetric (zero points 0). TensorRT's parser takes DequantizeLinear only on activation-typed inputs:
# INT32 biases are rejected ("only activation types allowed as input to this layer"), and 8.x wants weights as
# FP32 -> Q -> DQ rather than INT8 initializers, so biases stay FP32 and weights keep a Q/DQ pair (ONNX Runtime folds
# the Q). "cpu": what ONNX Runtime's CPU kernels fuse (module doc): UINT8 activations with their own zero point
# (ReLU/Clip removed into the range), INT8 symmetric weights stored as INT8, INT32 biases.
TARGETS = {
    "tensorrt": {"activation_type": "QInt8",
                 "extra_options": {"ActivationSymmetric": True, "WeightSymmetric": True, "QuantizeBias": False,
                                   "AddQDQPairToWeight": True}},
    "cpu": {"activation_type": "QUInt8",
            "extra_options": {"ActivationSymmetric": False, "WeightSymmetric": True, "QuantizeBias": True,
                              "AddQDQPairToWeight": False}},
}
# What `quantize_qdq` refuses to write, per target (`qdq_summary` keys that must be empty).
_MUST_BE_EMPTY = {"tensorrt": ("nonzero_zero_points", "non_int8_zero_points", "qdq_touching_excluded"),
                  "cpu": ("nonzero_weight_zero_points", "qdq_touching_excluded")}
_WEIGHT_OPS = ("Conv", "Gemm", "MatMul")
_INT32 = 6  # onnx.TensorProto.INT32


def check_method(method: str) -> str:
    """The method name if valid, else a ConfigError listing the valid ones and the closest."""
    if method not in METHODS:
        close = difflib.get_close_matches(str(method), list(METHODS), n=1)
        hint = f" Did you mean '{close[0]}'?" if close else ""
        raise ConfigError(f"Unknown calibration method '{method}'. Valid: {sorted(METHODS)}.{hint}")
    return method


def check_target(target: str) -> str:
    """The Q/DQ target if valid ("tensorrt" or "cpu"), else a ConfigError listing the valid ones."""
    if target not in TARGETS:
        raise ConfigError(f"Unknown Q/DQ target '{target}'. Valid: {sorted(TARGETS)} (TensorRT explicit quantization, "
                          "ONNX Runtime CPU)")
    return target


def _ort_method(quant: Any, method: str) -> Any:
    return getattr(quant.CalibrationMethod, METHODS[check_method(method)])


def _graph_maps(graph: Any) -> tuple[dict[str, Any], dict[str, list[Any]]]:
    """(producer of each tensor, consumers of each tensor) of an onnx GraphProto."""
    producer = {o: n for n in graph.node for o in n.output}
    consumers: dict[str, list[Any]] = defaultdict(list)
    for n in graph.node:
        for i in n.input:
            consumers[i].append(n)
    return producer, consumers


def float_nodes(model: Any, probs_output: str = PROBS_OUTPUT) -> list[str]:
    """Names of the nodes that must stay FP32 in an `edge-pct export` graph (onnx.ModelProto).

    The Softmax producing `probs_output` and every node downstream of it, the logits layer feeding it (MatMul or
    Gemm, with its bias Add / reshapes), all LayerNormalization nodes, the producers of graph outputs, and the
    image stem (`stem_nodes`).
    """
    graph = model.graph
    producer, consumers = _graph_maps(graph)
    softmax = producer.get(probs_output)
    if softmax is None or softmax.op_type != "Softmax":
        raise InputFileError(f"No Softmax produces '{probs_output}' in this graph: pass the model.onnx written by "
                             "`edge-pct export`")
    keep = _downstream(softmax, consumers)  # everything after the token probabilities: codebook matmul, decoder
    keep.update(n.name for n in _logits_layer(graph, softmax, producer))
    keep.update(n.name for n in graph.node if n.op_type == "LayerNormalization")
    keep.update(producer[o.name].name for o in graph.output if o.name in producer)
    keep.update(stem_nodes(graph, consumers))
    return sorted(keep)


def stem_nodes(graph: Any, consumers: Mapping[str, list[Any]]) -> list[str]:
    """The first Conv of `graph` (the stem, reading the image), the Conv that reads its activation (through one
    Relu/Clip) and, where that one is depthwise, the pointwise Conv reading it: the stem's and the depthwise's
    output tensors stay FP32, the graph's most INT8-sensitive ones. Measured on the shipped model (ReLU,
    range-equalized): rounding the stem's output alone moved the joints by 1.8 px of the 2.1 px that rounding every
    conv output did (torch simulation), and keeping the stem and the depthwise FP32 took the INT8 graphs' LSP PCK
    from 0.207 / 0.210 (CPU / TensorRT graph) to 0.302 / 0.300 (FP32: 0.304). On the stage-19c 256x192 weights the
    depthwise's output was next: of every conv group kept FP32 in turn, only this one mattered (mean joint shift
    vs FP32 on 800 LSP training persons 1.81 -> 1.12 px, PCK@0.2 0.679 -> 0.683, FP32 0.686) and it costs no
    measurable time (1.00x). Three convs at stride 2 and 4 with 16-32 channels: cheap."""
    stem = next((n for n in graph.node if n.op_type == "Conv"), None)
    if stem is None:
        return []
    readers = _conv_readers(stem, consumers)
    pointwise = [p for conv in readers if any(a.name == "group" and a.i > 1 for a in conv.attribute)  # depthwise
                 for p in _conv_readers(conv, consumers)]
    return [n.name for n in (stem, *readers, *pointwise)]


def _conv_readers(node: Any, consumers: Mapping[str, list[Any]]) -> list[Any]:
    """The Conv nodes reading `node`'s output directly or through one Relu/Clip."""
    readers = list(consumers[node.output[0]])
    for act in [c for c in readers if c.op_type in ("Relu", "Clip")]:
        readers += consumers[act.output[0]]
    return [c for c in readers if c.op_type == "Conv"]


def _logits_layer(graph: Any, softmax: Any, producer: Mapping[str, Any]) -> list[Any]:
    """The nodes from the logits MatMul/Gemm to the Softmax input (the bias Add, reshapes), walking backwards."""
    constants = {t.name for t in graph.initializer}
    constants |= {o for n in graph.node if n.op_type == "Constant" for o in n.output}
    chain, tensor = [], softmax.input[0]
    for _ in range(8):
        node = producer.get(tensor)
        if node is None or node.op_type not in (*_LOGITS_OPS, *_PASS_THROUGH):
            break
        chain.append(node)
        if node.op_type in _LOGITS_OPS:
            return chain
        dynamic = [i for i in node.input if i and i not in constants]
        if len(dynamic) != 1:
            break
        tensor = dynamic[0]
    raise InputFileError(f"Cannot find the logits MatMul/Gemm feeding Softmax '{softmax.name}': pass the model.onnx "
                         "written by `edge-pct export`")


def cpu_float_nodes(model: Any, exclude: Iterable[str]) -> list[str]:
    """Names of the Conv/Gemm/MatMul nodes the "cpu" target leaves FP32 besides `exclude` (onnx.ModelProto):
    every layer whose data input comes straight from an excluded node. That input stays FP32, so ONNX Runtime
    cannot fuse the layer and would dequantize its weight again on every run. Tensors around these nodes are still
    quantized where their other consumers need it.
    """
    graph = model.graph
    producer, _ = _graph_maps(graph)
    exclude = set(exclude)
    keep = []
    for n in graph.node:
        if n.op_type not in _WEIGHT_OPS or n.name in exclude or len(n.input) < 2:
            continue
        src = producer.get(n.input[0])
        if src is not None and src.name in exclude:
            keep.append(n.name)
    return sorted(keep)


def token_mixer_nodes(model: Any) -> list[str]:
    """Names of every node downstream of the first LayerNormalization of an `edge-pct export` graph
    (onnx.ModelProto): the PCT head's token Mixer, confidence MLP, logits and decoder. The "cpu" target keeps them
    all FP32: their MatMuls are small, and a Q/DQ pair around each of the 14 LayerNorm islands cost more than INT8
    saved (measured: the whole graph ran 1.07x faster with them FP32, same keypoint agreement)."""
    graph = model.graph
    first = next((n for n in graph.node if n.op_type == "LayerNormalization"), None)
    if first is None:
        return []
    return sorted(_downstream(first, _graph_maps(graph)[1]))


def cpu_exclude(model: Any, exclude: Iterable[str]) -> list[str]:
    """The nodes the "cpu" target keeps FP32 with no Q/DQ on their tensors: `exclude` plus `token_mixer_nodes`."""
    return sorted(set(exclude) | set(token_mixer_nodes(model)))


def activations_feeding(graph: Any, nodes: Iterable[str]) -> list[str]:
    """Names of the Relu/Clip nodes whose output one of `nodes` reads. They must stay out of quantization: with
    asymmetric activations ("cpu") ONNX Runtime folds a Relu/Clip after a quantized layer into that layer's output
    Q/DQ range and deletes it, and `_keep_float_boundaries` then drops that Q/DQ pair for the FP32 node, which
    would read the layer's raw, unclamped output (measured: an FP32 dark3 took the LSP PCK from 0.68 to 0.04)."""
    producer, _ = _graph_maps(graph)
    nodes = set(nodes)
    return sorted({producer[i].name for n in graph.node if n.name in nodes for i in n.input
                   if i in producer and producer[i].op_type in ("Relu", "Clip") and producer[i].name not in nodes})


def _downstream(node: Any, consumers: Mapping[str, list[Any]]) -> set[str]:
    """Names of `node` and of every node that reads, directly or not, one of its outputs."""
    seen, todo = {node.name}, [node]
    while todo:
        for out in todo.pop().output:
            for c in consumers[out]:
                if c.name not in seen:
                    seen.add(c.name)
                    todo.append(c)
    return seen


@contextlib.contextmanager
def _quiet_root_warnings() -> Iterator[None]:
    """onnxruntime.quantization logs through the root logger ("consider pre-processing", per-tensor notes)."""
    root = logging.getLogger()
    level = root.level
    root.setLevel(max(level, logging.ERROR))
    try:
        yield
    finally:
        root.setLevel(level)


def _session_options(ort: Any, threads: int | None, optimize: bool = True) -> Any:
    opts = ort.SessionOptions()
    opts.log_severity_level = 3
    if threads:
        opts.intra_op_num_threads = threads
        opts.inter_op_num_threads = 1
    if not optimize:  # the calibrator reads every intermediate tensor: no fusion may hide one
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    return opts


def _quantizable_ops() -> list[str]:
    """The node types ONNX Runtime's quantizer can put Q/DQ around."""
    from onnxruntime.quantization.registry import QDQRegistry, QLinearOpsRegistry

    return sorted(set(QDQRegistry) | set(QLinearOpsRegistry))


def calibration_tensors(model: Any, exclude: Iterable[str]) -> set[str]:
    """The activation tensors a Q/DQ model of `model` (onnx.ModelProto) may quantize: inputs and outputs of the
    quantizable nodes not in `exclude`, initializers left out. A tensor only excluded nodes touch (an FP32 island
    such as the heatmap refinement) never gets a Q/DQ pair, so it needs no range."""
    exclude, ops = set(exclude), set(_quantizable_ops())
    constants = {t.name for t in model.graph.initializer}
    return {t for n in model.graph.node if n.op_type in ops and n.name not in exclude
            for t in (*n.input, *n.output) if t and t not in constants}


def calibrate_ranges(fp32_onnx: str | Path, reader: Any, method: str = "entropy", threads: int | None = None,
                     chunk: int = 8, exclude: Iterable[str] | None = None) -> dict[str, tuple[float, float]]:
    """Run ONNX Runtime's `method` calibrator over `reader` and return {tensor name: (min, max)} (float32 values).

    Calibrates `calibration_tensors` of the graph with `exclude` (default: `float_nodes`), the tensors
    `quantize_qdq` can put a Q/DQ pair on; the FP32 islands are neither histogrammed nor returned.
    A reader with len() and set_range (`reader.calibration_reader`) is collected `chunk` items at a time so memory
    stays bounded (min-max: the same as one pass; histograms: merged per chunk); any other reader in one pass.
    The reader's last item is collected on its own: it may be a short batch (N crops not a multiple of the batch),
    and ONNX Runtime's histogram collector stacks a chunk's batches with np.asarray, which ragged batches break.
    """
    quant = require("onnxruntime.quantization", "cpu")
    ort = require("onnxruntime", "cpu")
    onnx = require("onnx", "cpu")

    fp32 = onnx.load(str(fp32_onnx))
    wanted = calibration_tensors(fp32, float_nodes(fp32) if exclude is None else exclude)
    with tempfile.TemporaryDirectory(prefix="edge-pct-calib-") as tmp, _quiet_root_warnings():
        calibrator = quant.create_calibrator(_private_copy(fp32_onnx, tmp), _quantizable_ops(),
                                             str(Path(tmp) / "augmented.onnx"),
                                             calibrate_method=_ort_method(quant, method))
        if hasattr(calibrator, "tensors_to_calibrate"):  # the histogram calibrators: histogram only what is wanted
            calibrator.tensors_to_calibrate = set(calibrator.tensors_to_calibrate) & wanted
        calibrator.infer_session = ort.InferenceSession(calibrator.augmented_model_path,
                                                        _session_options(ort, threads, optimize=False),
                                                        providers=["CPUExecutionProvider"])
        try:
            n = len(reader)
        except (TypeError, NotImplementedError):  # a reader without len/set_range: one pass
            n = None
        with contextlib.redirect_stdout(io.StringIO()) as chatter:  # the histogram calibrators print progress
            try:
                for span in _chunks(n, chunk) if n is not None else [None]:
                    if span is not None:
                        reader.set_range(*span)
                    calibrator.collect_data(reader)
                data = calibrator.compute_data()
            except ValueError as e:  # numpy: "Too many bins for data range" on a tensor with a huge range
                raise InputFileError(f"The {method} calibrator cannot histogram '{fp32_onnx}' ({e}): re-export the "
                                     "model with this version of edge-pct, or pass --method minmax") from None
        log.debug("onnxruntime calibrator: %s", chatter.getvalue().strip())
    return {name: (float(np.min(t.range_value[0])), float(np.max(t.range_value[1]))) for name, t in data.items()
            if name in wanted}


def _chunks(n: int, chunk: int) -> list[tuple[int, int]]:
    """[start, end) spans of `chunk` reader items over items [0, n - 1), then the last item alone (a short batch
    never shares a chunk with full ones)."""
    if n < 1:
        return []
    return [(s, min(n - 1, s + chunk)) for s in range(0, n - 1, chunk)] + [(n - 1, n)]


def quantize_qdq(fp32_onnx: str | Path, int8_onnx: str | Path, reader: Any = None, method: str = "entropy",
                 ranges: Mapping[str, tuple[float, float]] | None = None, threads: int | None = None,
                 exclude: Iterable[str] | None = None, target: str = "tensorrt") -> dict[str, tuple[float, float]]:
    """Write the INT8 Q/DQ model of `fp32_onnx` for `target` to `int8_onnx`; returns the ranges used.

    Args:
        fp32_onnx: an `edge-pct export` image graph (FP32).
        int8_onnx: output path.
        reader: a CalibrationDataReader (`reader.calibration_reader`); not needed when `ranges` is given.
        method: "entropy", "percentile" or "minmax" (ONNX Runtime's calibrators).
        ranges: {tensor: (min, max)} from an earlier `calibrate_ranges` (reuse: no calibration runs).
        threads: intra-op threads of the calibration session (default: onnxruntime's choice).
        exclude: node names kept FP32 with no Q/DQ on their tensors (default: `float_nodes(model)`).
        target: "tensorrt" (symmetric INT8, zero points 0: TensorRT explicit quantization) or "cpu" (UINT8
            activations, INT32 biases, FP32 `token_mixer_nodes` and `cpu_float_nodes`: what ONNX Runtime's CPU
            kernels gain from); module doc.
    """
    quant = require("onnxruntime.quantization", "cpu")
    onnx = require("onnx", "cpu")
    check_method(method)
    spec = TARGETS[check_target(target)]
    if "calibration_cache_path" not in inspect.signature(quant.quantize_static).parameters:
        version = require("onnxruntime", "cpu").__version__
        raise MissingDependencyError(f"onnxruntime {version} cannot quantize from precomputed ranges (quantize_static "
                                     "has no calibration_cache_path): pip install -U onnxruntime (1.32 is tested)")
    fp32 = onnx.load(str(fp32_onnx))
    exclude = sorted(float_nodes(fp32) if exclude is None else exclude)
    if target == "cpu":
        exclude = cpu_exclude(fp32, exclude)
    skip = exclude + (cpu_float_nodes(fp32, exclude) if target == "cpu" else [])
    skip += activations_feeding(fp32.graph, skip)
    if ranges is None:
        if reader is None:
            raise ValueError("quantize_qdq needs a calibration reader or precomputed ranges")
        ranges = calibrate_ranges(fp32_onnx, reader, method, threads, exclude=exclude)
    ort_method = _ort_method(quant, method)
    data = quant.TensorsData(ort_method, {k: quant.TensorData(lowest=np.float32(lo), highest=np.float32(hi))
                                          for k, (lo, hi) in ranges.items()})
    with tempfile.TemporaryDirectory(prefix="edge-pct-qdq-") as tmp, _quiet_root_warnings():
        cache, raw = Path(tmp) / "ranges.json", Path(tmp) / "qdq.onnx"
        quant.save_tensors_data(data, cache)
        # An existing range cache makes quantize_static skip its own calibration.
        quant.quantize_static(str(_private_copy(fp32_onnx, tmp)), str(raw), None, quant_format=quant.QuantFormat.QDQ,
                              per_channel=True,
                              activation_type=getattr(quant.QuantType, spec["activation_type"]),
                              weight_type=quant.QuantType.QInt8, nodes_to_exclude=skip, calibrate_method=ort_method,
                              extra_options=dict(spec["extra_options"]), calibration_cache_path=str(cache))
        model = onnx.load(str(raw))
    model = _keep_float_boundaries(model, fp32, set(exclude))
    onnx.checker.check_model(model)
    facts = qdq_summary(model, exclude)
    bad = {k: facts[k] for k in _MUST_BE_EMPTY[target] if facts[k]}
    if bad:  # an onnxruntime change broke what the target needs: refuse to write the model
        raise RuntimeError(f"The {target} Q/DQ model of '{fp32_onnx}' violates the INT8 layout ({bad}): onnxruntime "
                           f"{require('onnxruntime', 'cpu').__version__} quantized differently than expected")
    Path(int8_onnx).write_bytes(model.SerializeToString())
    return {k: (float(lo), float(hi)) for k, (lo, hi) in ranges.items()}


def _private_copy(onnx_path: str | Path, folder: str) -> Path:
    """`onnx_path` copied into our temporary `folder`: ONNX Runtime's quantizer writes `<model>-inferred.onnx` beside
    the model it reads, which fails in a read-only folder and races another calibration of the same model."""
    copy = Path(folder) / "fp32.onnx"
    if not copy.exists():
        shutil.copyfile(onnx_path, copy)
    return copy


def _keep_float_boundaries(model: Any, fp32: Any, exclude: set[str]) -> Any:
    """Remove every Q/DQ pair on an input or output of an excluded node (ONNX Runtime shares one pair among all
    consumers of a tensor, excluded ones included): excluded nodes get their FP32 tensors (and FP32 weights) back,
    pairs left without consumers are dropped, then unused initializers and value infos."""
    graph = model.graph
    ref = {n.name: n for n in fp32.graph.node}
    fp_init = {t.name: t for t in fp32.graph.initializer}
    have_init = {t.name for t in graph.initializer}
    producer, consumers = _graph_maps(graph)
    for node in graph.node:
        if node.name not in exclude:
            continue
        for i, name in enumerate(node.input):  # DQ -> excluded node: read the original tensor
            if name in producer and producer[name].op_type == "DequantizeLinear":
                orig = ref[node.name].input[i]
                node.input[i] = orig
                if orig in fp_init and orig not in have_init:
                    graph.initializer.append(fp_init[orig])
                    have_init.add(orig)
        for out in node.output:  # excluded node -> Q -> DQ -> consumers: consumers read the FP32 output
            for q in [c for c in consumers[out] if c.op_type == "QuantizeLinear"]:
                for dq in [c for c in consumers[q.output[0]] if c.op_type == "DequantizeLinear"]:
                    _rename_input(graph, dq.output[0], out)
    _prune(graph)
    return model


def _rename_input(graph: Any, old: str, new: str) -> None:
    for n in graph.node:
        for i, name in enumerate(n.input):
            if name == old:
                n.input[i] = new


def _prune(graph: Any) -> None:
    """Drop Q/DQ nodes whose outputs nothing reads (repeatedly), then unused initializers and value infos."""
    outputs = {o.name for o in graph.output}
    while True:
        used = {i for n in graph.node for i in n.input} | outputs
        dead = [n for n in graph.node if n.op_type in QDQ_OPS and not any(o in used for o in n.output)]
        if not dead:
            break
        for n in dead:
            graph.node.remove(n)
    used = {i for n in graph.node for i in n.input} | outputs
    for t in [t for t in graph.initializer if t.name not in used]:
        graph.initializer.remove(t)
    produced = {o for n in graph.node for o in n.output}
    for vi in [vi for vi in graph.value_info if vi.name not in produced]:
        graph.value_info.remove(vi)


def qdq_summary(model: Any, exclude: Iterable[str]) -> dict[str, Any]:
    """Facts about a Q/DQ model (onnx.ModelProto): quantized activation tensors, weights (FP32 -> Q -> DQ or stored
    INT8), INT32 biases and other stored constants, Q/DQ node counts, and what a target needs empty
    (`_MUST_BE_EMPTY`): non-zero zero points, non-INT8 zero points, non-zero weight zero points, Q/DQ nodes touching
    the excluded nodes."""
    graph = model.graph
    exclude = set(exclude)
    producer, consumers = _graph_maps(graph)
    init = {t.name: t for t in graph.initializer}
    numpy_helper = require("onnx.numpy_helper", "cpu")
    qdq = [n for n in graph.node if n.op_type in QDQ_OPS]
    zero_points = {n.input[2] for n in qdq if len(n.input) > 2}
    nonzero = sorted(z for z in zero_points if z not in init or np.any(numpy_helper.to_array(init[z])))
    not_int8 = sorted(z for z in zero_points if z in init and init[z].data_type != _INT8)
    touching = set()
    for n in graph.node:
        if n.name in exclude:
            touching.update(producer[i].name for i in n.input if i in producer and producer[i].op_type in QDQ_OPS)
            touching.update(c.name for o in n.output for c in consumers[o] if c.op_type in QDQ_OPS)
    quantized = {n.input[0] for n in qdq if n.op_type == "QuantizeLinear"}
    stored = {n.input[0] for n in qdq if n.op_type == "DequantizeLinear" and n.input[0] in init}
    biases = {t for t in stored if init[t].data_type == _INT32}
    weights = (quantized & set(init)) | {t for t in stored if init[t].data_type == _INT8}
    weight_zps = {n.input[2] for n in qdq if len(n.input) > 2 and n.input[0] in weights}
    return {"activations": sorted(quantized - set(init)), "weights": sorted(weights), "biases": sorted(biases),
            "constants": sorted(stored - weights - biases),  # e.g. the "cpu" target's UINT8 bias-Add operands
            "nonzero_zero_points": nonzero, "non_int8_zero_points": not_int8,
            "nonzero_weight_zero_points": sorted(set(nonzero) & weight_zps), "qdq_touching_excluded": sorted(touching),
            "quantize_nodes": sum(n.op_type == "QuantizeLinear" for n in qdq),
            "dequantize_nodes": sum(n.op_type == "DequantizeLinear" for n in qdq)}
