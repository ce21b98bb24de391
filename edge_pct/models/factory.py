"""Model variants and the one place that builds and loads image models.

`MODEL_VARIANTS` are the named image-model sizes; a classifier checkpoint embeds both its model and its
tokenizer config (`ClassifierCheckpointConfig`), so `load_classifier(path)` rebuilds the whole model.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from edge_pct.config import ModelConfig, TokenizerConfig, config_from_dict
from edge_pct.errors import InputFileError
from edge_pct.models.classifier import PoseClassifier
from edge_pct.models.tokenizer import PoseTokenizer

MODEL_VARIANTS: dict[str, ModelConfig] = {
    # CPU / Jetson default: MobileNetV2 x0.5 at 128x96. Trained from scratch on 6,000 images, it is bound by how
    # many samples it sees: 128x96 runs forward+backward 2.7x faster than 192x144 (batch 32, 2 CPU cores here).
    "pct-lite": ModelConfig(width=0.5, input_size=(96, 128), head_channels=32),
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
    return PoseClassifier(cfg, tokenizer)


def load_classifier(path: str | Path) -> PoseClassifier:
    """Rebuild a trained image model (eval mode, fp32) from its checkpoint."""
    from edge_pct.train.checkpoint import load_weights, read_checkpoint

    blob = read_checkpoint(path, "classifier")
    cfg = config_from_dict(ClassifierCheckpointConfig, blob["config"])
    return load_weights(PoseClassifier(cfg.model, PoseTokenizer(cfg.tokenizer)), blob, path)
