"""Model variants and the one place that builds and loads image models.

`MODEL_VARIANTS` are the named image-model sizes; a classifier checkpoint embeds both its model and its
tokenizer config (`ClassifierCheckpointConfig`), so `load_classifier(path)` rebuilds the whole model.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import torch

from edge_pct.config import ModelConfig, TokenizerConfig, config_from_dict
from edge_pct.core.errors import ConfigError, InputFileError
from edge_pct.models.classifier import PoseClassifier
from edge_pct.models.tokenizer import PoseTokenizer

MODEL_VARIANTS: dict[str, ModelConfig] = {
    # CPU / Jetson default: YOLOX-Nano's CSPDarknet + PAFPN (started from the detector's weights in training).
    "pct-lite": ModelConfig(backbone="cspdarknet", width=0.25, depth=0.33, input_size=(96, 128), head_channels=32,
                            aux_features="stride8", refine="heatmap", mean=(0.0, 0.0, 0.0),
                            std=(1 / 255, 1 / 255, 1 / 255)),
    # The same head on MobileNetV2 x0.5, from scratch (the backbone ablation).
    "pct-lite-mnv2": ModelConfig(width=0.5, input_size=(96, 128), head_channels=32, aux_features="fused"),
    # Desktop GPU: MobileNetV2 x1.0 at 256x192 with the paper-sized head width.
    "pct-base": ModelConfig(width=1.0, input_size=(192, 256), head_channels=64),
}


@dataclass(frozen=True)
class ClassifierCheckpointConfig:
    """What a classifier checkpoint embeds: the image model and its (frozen) tokenizer."""

    model: ModelConfig = field(default_factory=ModelConfig)
    tokenizer: TokenizerConfig = field(default_factory=TokenizerConfig)


def build_classifier(cfg: ModelConfig, tokenizer: PoseTokenizer) -> PoseClassifier:
    """A fresh image model around a trained tokenizer; the tokenizer's aspect ratio must match the input's."""
    tw, th = tokenizer.cfg.input_size
    w, h = cfg.input_size
    if abs(tw / th - w / h) > 1e-6:
        raise InputFileError(f"Tokenizer crop {tw}x{th} and model input {w}x{h} have different aspect ratios: "
                             "train a tokenizer with tokenizer.input_size matching model.input_size")
    if cfg.backbone != "cspdarknet" and cfg.activation != "silu":
        raise ConfigError(f"model.activation = {cfg.activation!r} applies to the cspdarknet backbone only "
                          f"({cfg.backbone} has its own ReLU6): leave it out")
    if cfg.refine == "heatmap" and not cfg.aux_heatmap:
        raise ConfigError('model.refine = "heatmap" needs the heatmap head: set model.aux_heatmap = true '
                          '(and train with it) or model.refine = "tokens"')
    if cfg.refine == "heatmap" and not cfg.refine_sigma > 0:
        raise ConfigError(f"model.refine_sigma = {cfg.refine_sigma} must be > 0 (the prior's sd in crop heights, "
                          "e.g. 0.125)")
    if cfg.backbone == "cspdarknet" and (w % 32 or h % 32):
        raise ConfigError(f"model.input_size {w}x{h}: the cspdarknet backbone needs multiples of 32 (e.g. 96x128)")
    return PoseClassifier(cfg, tokenizer)


def init_backbone(model: PoseClassifier, onnx_path: str | Path, images: torch.Tensor) -> int:
    """Start a cspdarknet model's backbone from a YOLOX detector export, its BatchNorm fitted on `images` (B, 3, H,
    W) model input (RGB 0-255, e.g. one training batch); returns the number of convs copied."""
    from edge_pct.models.cspdarknet import CSPDarknetPAFPN, fit_batchnorm, load_yolox_onnx

    if not isinstance(model.backbone, CSPDarknetPAFPN):
        raise InputFileError("train.backbone_init needs model.backbone = \"cspdarknet\" (the YOLOX backbone)")
    n = load_yolox_onnx(model.backbone, onnx_path)
    fit_batchnorm(model.backbone, (images - model.mean) / model.std)
    return n


def load_classifier(path: str | Path) -> PoseClassifier:
    """Rebuild a trained image model (eval mode, fp32) from its checkpoint."""
    from edge_pct.models.weights import load_weights, read_checkpoint

    blob = read_checkpoint(path, "classifier")
    cfg = config_from_dict(ClassifierCheckpointConfig, blob["config"])
    return load_weights(PoseClassifier(cfg.model, PoseTokenizer(cfg.tokenizer)), blob, path)
