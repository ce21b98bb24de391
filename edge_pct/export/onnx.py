"""torch -> ONNX: the image model as two checked FP32 graphs plus a JSON sidecar, compared with torch.

`model.onnx`: images (B, 3, H, W) float32 RGB 0-255 (normalised inside) -> joints (B, 17, 2) crop px,
confidence (B, 17), token_probs (B, M, V). `model.decoder.onnx`: token_probs (B, M, V) -> joints (B, 17, 2)
crop px, the frozen tokenizer decoder alone, so token-space smoothing per track (docs/design.md, data flow) runs
between the two graphs. `model.json`: what a runtime needs to feed and read them (input size, mean/std,
keypoint names, M, V, batch), the source checkpoint's sha256, and the measured parity with torch.
The auxiliary heatmap head is in the graph only for a `model.refine = "heatmap"` model (its joints are then the
refined ones; the decoder graph decodes tokens alone). Batch is dynamic or fixed;
spatial shapes are always static (TensorRT builds one optimisation profile over the batch only).
`precision="fp16"` writes a mixed-precision image graph for strongly typed TensorRT (11 has no FP16 builder
flag, so the types must be in the ONNX): backbone and head compute in FP16 with BatchNorm folded in FP32 first;
the input normalisation, every LayerNorm, the V-way logits (cls_pred), the softmax and the tokenizer decoder
stay FP32, and the graph's inputs and outputs stay float32 (Cast nodes at the boundaries). The decoder graph
is always FP32.
Exporter: torch.onnx.export(dynamo=True) (torch.export), https://pytorch.org/docs/stable/onnx.html;
operators: https://onnx.ai/onnx/operators/.
"""

from __future__ import annotations

import contextlib
import copy
import json
import logging
import warnings
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from edge_pct.core.errors import ConfigError
from edge_pct.core.files import file_sha256, write_atomic
from edge_pct.core.optional import require
from edge_pct.core.report import progress
from edge_pct.models.classifier import PoseClassifier

log = logging.getLogger(__name__)

INPUT_NAME = "images"
OUTPUT_NAMES = ("joints", "confidence", "token_probs")
DECODER_INPUT = "token_probs"
INPUT_LAYOUT = "NCHW RGB float32 0-255, normalised inside the graph"
MIN_OPSET = 17  # LayerNormalization is a single op from 17 on; TensorRT 8.6 (JetPack 5/6) reads up to 17
_PARITY_SEED = 0
PRECISIONS = ("fp32", "fp16")
# What an fp16 export keeps in FP32 (sidecar `fp32_kept`): statistics and the token distribution lose accuracy in half.
FP16_KEEP_FP32 = ("input normalisation", "LayerNorm", "cls_pred (V-way logits)", "softmax", "tokenizer decoder")
_PARITY_WARN_PX = {"fp32": 1e-2, "fp16": 0.5}  # ORT vs torch fp32 joints; fp16 rounding is expected to cost more


class PoseGraph(nn.Module):
    """The exported image graph: images (B, 3, H, W) float32 RGB 0-255 ->
    (joints (B, J, 2) model-input crop px, confidence (B, J) in [0, 1], token_probs (B, M, V) = softmax(logits)).
    """

    def __init__(self, model: PoseClassifier) -> None:
        super().__init__()
        self.model = model

    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        out = self.model(images)
        return out["joints"], out["confidence"], out["logits"].softmax(-1)


class DecoderGraph(nn.Module):
    """The exported decoder graph: token_probs (B, M, V) -> joints (B, J, 2) model-input crop px.

    Applies the model's assignment, so decoding the image graph's own token_probs gives its joints: the soft
    path (paper) uses the probabilities, straight-through the one-hot code of their argmax (eval forward).
    """

    def __init__(self, model: PoseClassifier) -> None:
        super().__init__()
        self.model = model

    def forward(self, token_probs: torch.Tensor) -> torch.Tensor:
        weights = token_probs
        if self.model.cfg.assignment == "straight_through":
            weights = F.one_hot(token_probs.argmax(-1), token_probs.shape[-1]).to(token_probs.dtype)
        return self.model.decode(weights)


class _CastInput(nn.Module):
    """Runs `module` on its input cast to `dtype` (the FP32 -> FP16 boundary after the input normalisation)."""

    def __init__(self, module: nn.Module, dtype: torch.dtype) -> None:
        super().__init__()
        self.module, self.dtype = module, dtype

    def forward(self, x: torch.Tensor) -> Any:
        return self.module(x.to(self.dtype))


class _Fp32Island(nn.Module):
    """Runs `module` in FP32 inside an FP16 graph; the output is cast back to the input dtype unless `keep_fp32`."""

    def __init__(self, module: nn.Module, keep_fp32: bool = False) -> None:
        super().__init__()
        self.module, self.keep_fp32 = module.float(), keep_fp32

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.module(x.float())
        return y if self.keep_fp32 else y.to(x.dtype)


def _fold_batchnorm(module: nn.Module) -> None:
    """Fold every eval-mode Conv2d -> BatchNorm2d pair of an nn.Sequential into the conv, in FP32 (in place), so
    the FP16 weights are the rounded folded FP32 weights rather than a fold computed in half precision."""
    from torch.nn.utils.fusion import fuse_conv_bn_eval

    for seq in [m for m in module.modules() if isinstance(m, nn.Sequential)]:
        for i in range(len(seq) - 1):
            if isinstance(seq[i], nn.Conv2d) and isinstance(seq[i + 1], nn.BatchNorm2d):
                seq[i], seq[i + 1] = fuse_conv_bn_eval(seq[i], seq[i + 1]), nn.Identity()


def half_precision_copy(model: PoseClassifier) -> PoseClassifier:
    """A mixed-precision copy of `model` (eval mode; `model` is untouched): backbone and head in FP16, with the
    input normalisation, LayerNorms, cls_pred (V-way logits, output kept FP32), softmax and tokenizer decoder in FP32.

    Forward takes images (B, 3, H, W) float32 RGB 0-255 and returns logits and joints in float32, confidence in
    float16 (`HalfPoseGraph` casts it back).
    """
    half = copy.deepcopy(model).eval()
    _fold_batchnorm(half)
    half.backbone = _CastInput(half.backbone.half(), torch.float16)  # type: ignore[assignment]
    if half.aux_heatmap is not None:  # it reads the FP16 stride-8 map; the refinement itself computes in FP32
        half.aux_heatmap.half()
    head = half.head.half()
    for name, sub in list(head.named_modules()):
        if isinstance(sub, nn.LayerNorm) or name == "cls_pred":
            parent_name, _, attr = name.rpartition(".")
            parent = head.get_submodule(parent_name) if parent_name else head
            setattr(parent, attr, _Fp32Island(sub, keep_fp32=name == "cls_pred"))
    return half


class HalfPoseGraph(nn.Module):
    """The FP16 image graph: `PoseGraph` of `half_precision_copy(model)`, float32 in and out (see the module doc)."""

    def __init__(self, model: PoseClassifier) -> None:
        super().__init__()
        self.pose = PoseGraph(half_precision_copy(model))  # not `graph`: that name is taken in torch.fx modules

    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        joints, confidence, token_probs = self.pose(images)
        return joints.float(), confidence.float(), token_probs.float()


def decoder_path(onnx_path: str | Path) -> Path:
    """`model.onnx` -> `model.decoder.onnx` (the decoder graph written next to it)."""
    return Path(onnx_path).with_suffix(".decoder.onnx")


def sidecar_path(onnx_path: str | Path) -> Path:
    """`model.onnx` -> `model.json`."""
    return Path(onnx_path).with_suffix(".json")


def export_onnx(checkpoint: str | Path, out: str | Path, batch: int | None = None, opset: int = 17,
                precision: str = "fp32", equalize: bool = True) -> dict:
    """Export a classifier checkpoint to `out` (.onnx), `<stem>.decoder.onnx` and the sidecar `<stem>.json`.

    Both graphs pass onnx.checker (full) and strict shape inference, and run in ONNX Runtime (CPU) on a
    random batch against torch before anything is written; all three files are written atomically.

    Args:
        checkpoint: classifier .pt written by `edge-pct train`.
        out: path of the image graph; must end in .onnx.
        batch: fixed batch size of both graphs; None = dynamic batch.
        opset: ONNX opset (>= 17).
        precision: "fp32", or "fp16" for the mixed-precision image graph of strongly typed TensorRT (module doc);
            the parity numbers then measure the FP16 graph against the FP32 torch model.
        equalize: range-equalize the depthwise convs' inputs first (models/equalize.py; same function, less INT8
            error; a no-op for SiLU and MobileNetV2 models); False keeps the trained weights as they are.

    Returns:
        onnx, decoder_onnx, sidecar (paths), max_abs_diff_vs_torch (joints, crop px, ORT vs torch),
        decoder_max_abs_diff (decoder.onnx vs the torch decoder on model.onnx's token_probs, px),
        confidence_max_abs_diff, token_probs_max_abs_diff, parity_batch, batch, opset, precision, input_size (w, h),
        checkpoint.
    """
    onnx = require("onnx", "cpu")
    require("onnxruntime", "cpu")
    require("onnxscript", "cpu")  # the torch.export-based exporter translates through onnxscript
    out = Path(out)
    _check_args(out, batch, opset, onnx.defs.onnx_opset_version(), precision)
    from edge_pct.models.equalize import equalize_depthwise_inputs
    from edge_pct.models.factory import load_classifier

    model = load_classifier(checkpoint)  # eval mode: tokenizer frozen
    # Same function, INT8-friendlier weights (ReLU cspdarknet only): every graph and calib.cache stay consistent.
    equalized = equalize_depthwise_inputs(model.backbone) if equalize else 0
    w, h = model.cfg.input_size
    tcfg = model.tokenizer.cfg
    # torch.export specialises a dynamic dimension traced at size 0 or 1, so trace a dynamic batch at 2.
    gen = torch.Generator().manual_seed(_PARITY_SEED)
    n = batch or 2
    sample = torch.rand(n, 3, h, w, generator=gen) * 255
    probs = torch.rand(n, tcfg.num_tokens, tcfg.codebook_size, generator=gen).softmax(-1)
    image_graph = PoseGraph(model) if precision == "fp32" else HalfPoseGraph(model)
    steps = progress(total=3, desc="export", unit="step")  # the two traces take most of the time
    graph = _export(image_graph, sample, INPUT_NAME, OUTPUT_NAMES, batch, opset)
    steps.update()
    decoder = _export(DecoderGraph(model), probs, DECODER_INPUT, ("joints",), batch, opset)
    steps.update()
    _check_graph(onnx, graph, "image", opset)
    _check_graph(onnx, decoder, "decoder", opset)
    # Parity on a batch size other than the traced one when the batch is dynamic.
    images = torch.rand(batch or 3, 3, h, w, generator=gen) * 255
    graph_bytes, decoder_bytes = graph.SerializeToString(), decoder.SerializeToString()
    parity = _parity(model, graph_bytes, decoder_bytes, images)
    steps.update()
    steps.close()
    if parity["max_abs_diff_vs_torch"] > _PARITY_WARN_PX[precision]:
        log.warning("ONNX Runtime (%s) and torch joints differ by %.4g px", precision, parity["max_abs_diff_vs_torch"])

    dec_path, side_path = decoder_path(out), sidecar_path(out)
    sidecar = {**_sidecar(model, out, checkpoint, batch, opset, parity, precision), "equalized_pairs": equalized}
    write_atomic([(out, graph_bytes), (dec_path, decoder_bytes),
                   (side_path, (json.dumps(sidecar, indent=2) + "\n").encode())])
    return {"onnx": str(out), "decoder_onnx": str(dec_path), "sidecar": str(side_path), **parity,
            "batch": batch, "opset": opset, "precision": precision, "input_size": [w, h], "checkpoint": str(checkpoint),
            "equalized_pairs": equalized}


def _check_args(out: Path, batch: int | None, opset: int, max_opset: int, precision: str = "fp32") -> None:
    if out.suffix != ".onnx":
        raise ConfigError(f"--out '{out}' must end in .onnx (the decoder and the sidecar are written next to it)")
    if batch is not None and batch < 1:
        raise ConfigError(f"--batch {batch} is invalid: use a positive batch size, or leave it out for a dynamic one")
    if not MIN_OPSET <= opset <= max_opset:
        raise ConfigError(f"--opset {opset} is out of range: use {MIN_OPSET}..{max_opset} (this onnx package)")
    if precision not in PRECISIONS:
        raise ConfigError(f"--precision {precision!r} is invalid. Valid: {list(PRECISIONS)} (INT8 comes from "
                          "`edge-pct calibrate`)")


def _sidecar(model: PoseClassifier, out: Path, checkpoint: str | Path, batch: int | None, opset: int,
             parity: dict[str, float], precision: str = "fp32") -> dict[str, Any]:
    """The `<stem>.json` a runtime reads: graph files, input spec, normalisation, keypoints, M, V, provenance."""
    import onnx

    from edge_pct.config import config_to_dict
    from edge_pct.core.package import __version__
    from edge_pct.models.factory import ClassifierCheckpointConfig

    w, h = model.cfg.input_size
    tcfg = model.tokenizer.cfg
    j, m, v = tcfg.num_joints, tcfg.num_tokens, tcfg.codebook_size
    return {
        "onnx": out.name, "decoder_onnx": decoder_path(out).name, "opset": opset, "batch": batch,
        "precision": precision, "fp32_kept": list(FP16_KEEP_FP32) if precision == "fp16" else [],
        "input_size": [w, h], "input": {"name": INPUT_NAME, "layout": INPUT_LAYOUT, "shape": [batch, 3, h, w]},
        "outputs": {"joints": [batch, j, 2], "confidence": [batch, j], "token_probs": [batch, m, v]},
        "decoder": {"input": DECODER_INPUT, "output": "joints", "assignment": model.cfg.assignment,
                    "precision": "fp32"},
        "joints_frame": "model-input crop pixels (x, y)",
        "mean": list(model.cfg.mean), "std": list(model.cfg.std), "mean_std_scale": "RGB in [0, 1]",
        "keypoints": _keypoint_names(j), "num_joints": j, "num_tokens": m, "codebook_size": v,
        "source": {"checkpoint": str(checkpoint), "sha256": file_sha256(checkpoint)},
        "config": config_to_dict(ClassifierCheckpointConfig(model=model.cfg, tokenizer=tcfg)),
        **parity, "versions": {"edge_pct": __version__, "torch": torch.__version__, "onnx": onnx.__version__},
    }


def _keypoint_names(num_joints: int) -> list[str]:
    from edge_pct.core.keypoints import COCO17_NAMES

    return list(COCO17_NAMES) if num_joints == len(COCO17_NAMES) else [f"joint_{i}" for i in range(num_joints)]


@contextlib.contextmanager
def _quiet_exporter() -> Iterator[None]:
    """Silence the exporter's chatter (opset 18 -> 17 conversion notes, absent torchvision ops, pytree
    deprecations) so `edge-pct export` prints only its result; real failures still raise."""
    names = ("torch.onnx", "torch.export", "torch._export", "onnxscript", "onnx_ir")
    loggers = [logging.getLogger(name) for name in names]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)
            warnings.simplefilter("ignore", DeprecationWarning)
            warnings.simplefilter("ignore", UserWarning)
            yield
    finally:
        for lg, level in zip(loggers, levels, strict=True):
            lg.setLevel(level)


_FOLD_LIMIT = 1 << 22  # elements


def _export(module: nn.Module, sample: torch.Tensor, input_name: str, output_names: Sequence[str],
            batch: int | None, opset: int) -> Any:
    """One module -> onnx.ModelProto with a static non-batch shape and a dynamic (None) or fixed batch."""
    # The torch.export-based exporter: a clean graph (no Identity/Constant clutter, static M and V in the
    # output shapes). Its lowest native opset is 18; opset 17 comes from onnx's version converter, which
    # _check_graph verifies. The legacy TorchScript exporter (dynamo=False) is deprecated in torch 2.9+.
    dynamic = None if batch else ({0: torch.export.Dim("batch", min=1)},)
    with _quiet_exporter():
        program = torch.onnx.export(module.eval(), (sample,), input_names=[input_name],
                                    output_names=list(output_names), opset_version=opset, dynamo=True,
                                    dynamic_shapes=dynamic, external_data=False, optimize=True, verbose=False)
    # Fold constant subexpressions of any size (e.g. the 1024 x 128 codebook x decoder_start table of
    # PoseTokenizer.decode_probs; the exporter's own pass stops at 8,192 input elements): ONNX Runtime folds them
    # at load time anyway, but the INT8 quantizer would quantize their weights and recompute them on every run.
    optimizer = require("onnxscript.optimizer", "cpu")
    with _quiet_exporter():  # it logs each constant it keeps unfolded (e.g. a subtraction from the graph input)
        return optimizer.optimize(program.model_proto, input_size_limit=_FOLD_LIMIT, output_size_limit=_FOLD_LIMIT)


def _check_graph(onnx: Any, proto: Any, what: str, opset: int) -> None:
    """Full onnx.checker + strict shape inference; an exporter bug is a RuntimeError with its traceback."""
    try:
        onnx.checker.check_model(proto, full_check=True)
        onnx.shape_inference.infer_shapes(proto, check_type=True, strict_mode=True, data_prop=True)
    except (onnx.checker.ValidationError, onnx.shape_inference.InferenceError) as e:
        raise RuntimeError(f"The exported {what} graph fails the ONNX checker: {e}") from e
    got = {op.version for op in proto.opset_import if op.domain in ("", "ai.onnx")}
    if got != {opset}:
        raise RuntimeError(f"The exported {what} graph has opset {sorted(got)}, not the requested {opset}")


def _parity(model: PoseClassifier, graph: bytes, decoder: bytes, images: torch.Tensor) -> dict[str, float]:
    """Run both graphs in ONNX Runtime (CPU) on `images` (N, 3, H, W) and compare with torch.

    Returns max absolute differences: joints (px, the headline `max_abs_diff_vs_torch`), confidence,
    token_probs, and the decoder graph vs the torch decoder, both on model.onnx's token_probs (px).
    """
    ort = require("onnxruntime", "cpu")
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1  # a few crops: threads cost more than they give
    opts.log_severity_level = 3
    sess = ort.InferenceSession(graph, opts, providers=["CPUExecutionProvider"])
    dec = ort.InferenceSession(decoder, opts, providers=["CPUExecutionProvider"])
    joints, conf, probs = sess.run(list(OUTPUT_NAMES), {INPUT_NAME: images.numpy()})
    (dec_joints,) = dec.run(["joints"], {DECODER_INPUT: probs})
    with torch.inference_mode():
        ref = [t.numpy() for t in PoseGraph(model)(images)]
        # what the decoder graph must give for these token_probs (a refine model's image joints are heatmap-refined)
        dec_ref = DecoderGraph(model)(torch.from_numpy(probs)).numpy()

    def diff(a: np.ndarray, b: np.ndarray) -> float:
        return float(np.abs(a.astype(np.float64) - b).max())

    return {"max_abs_diff_vs_torch": diff(joints, ref[0]), "decoder_max_abs_diff": diff(dec_joints, dec_ref),
            "confidence_max_abs_diff": diff(conf, ref[1]), "token_probs_max_abs_diff": diff(probs, ref[2]),
            "parity_batch": len(images)}

