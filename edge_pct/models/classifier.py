"""The PCT image model (stage 2, arXiv 2303.11638 Sec. 3.2; PCT-NOTES section 2) on a light backbone.

image (B, 3, H, W) RGB 0-255 -> normalise -> light backbone (YOLOX's CSPDarknet + PAFPN, or MobileNetV2) ->
PCT class head: 1x1 conv, residual blocks, flatten, Linear to M token features, Mixer layers, Linear to V logits
-> softmax(logits) @ codebook -> frozen tokenizer decoder -> joints (B, 17, 2) in crop pixels of the model input.

Added to the paper: a per-joint confidence head (visibility / reliability of each joint, from the token
features), the straight-through assignment as an option, and an auxiliary stride-8 heatmap head used only
as a training aid (it is not part of the exported graph).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from edge_pct.config import ModelConfig
from edge_pct.models.backbone import MobileNetV2, conv_bn
from edge_pct.models.cspdarknet import CSPDarknetPAFPN
from edge_pct.models.mixer import MixerLayer
from edge_pct.models.tokenizer import PoseTokenizer


class BasicBlock(nn.Module):
    """ResNet basic block at constant width: (B, C, H, W) -> (B, C, H, W)."""

    def __init__(self, c: int) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(c, c, 3, 1, 1, bias=False), nn.BatchNorm2d(c), nn.ReLU(inplace=True),
            nn.Conv2d(c, c, 3, 1, 1, bias=False), nn.BatchNorm2d(c),
        )  # fmt: skip

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(x + self.body(x))


def _fc_block(c_in: int, c_out: int) -> nn.Sequential:
    return nn.Sequential(nn.Linear(c_in, c_out), nn.LayerNorm(c_out), nn.ReLU(inplace=True))


class PCTHead(nn.Module):
    """Stride-32 features (B, C, h, w) -> token logits (B, M, V) and joint confidence logits (B, J)."""

    def __init__(self, in_channels: int, feat_hw: tuple[int, int], cfg: ModelConfig, num_tokens: int,
                 codebook_size: int, num_joints: int) -> None:
        super().__init__()
        c, th = cfg.head_channels, cfg.token_hidden
        self.num_tokens, self.token_hidden = num_tokens, th
        self.conv_trans = nn.Sequential(nn.Conv2d(in_channels, c, 1, bias=False), nn.BatchNorm2d(c), nn.ReLU())
        self.blocks = nn.Sequential(*[BasicBlock(c) for _ in range(cfg.head_blocks)])
        self.mixer_trans = _fc_block(feat_hw[0] * feat_hw[1] * c, num_tokens * th)
        self.mixer = nn.Sequential(*[MixerLayer(num_tokens, th, cfg.mixer_token_hidden, cfg.mixer_channel_hidden)
                                     for _ in range(cfg.mixer_layers)])
        self.mixer_norm = _fc_block(th, th)
        self.cls_pred = nn.Linear(th, codebook_size)
        # Per-joint confidence: tokens -> joints over the token axis, then a small MLP to one logit per joint.
        self.conf_tokens = nn.Linear(num_tokens, num_joints)
        self.conf_mlp = nn.Sequential(nn.Linear(th, th), nn.ReLU(inplace=True), nn.Linear(th, 1))

    def forward(self, feat: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = self.blocks(self.conv_trans(feat))
        x = x.flatten(2).transpose(1, 2).flatten(1)  # spatial-major flatten, as PCT (PCT-NOTES 2.3 step 3)
        x = self.mixer_trans(x).reshape(-1, self.num_tokens, self.token_hidden)
        x = self.mixer_norm(self.mixer(x))
        conf = self.conf_mlp(self.conf_tokens(x.transpose(1, 2)).transpose(1, 2)).squeeze(-1)
        return self.cls_pred(x), conf


class PoseClassifier(nn.Module):
    """Backbone + PCT head + the frozen tokenizer. Input (B, 3, H, W) float RGB in [0, 255]."""

    def __init__(self, cfg: ModelConfig, tokenizer: PoseTokenizer) -> None:
        super().__init__()
        self.cfg = cfg
        w, h = cfg.input_size
        self.register_buffer("mean", torch.tensor(cfg.mean).view(1, 3, 1, 1) * 255, persistent=False)
        self.register_buffer("std", torch.tensor(cfg.std).view(1, 3, 1, 1) * 255, persistent=False)
        self.backbone = (CSPDarknetPAFPN(cfg.width, cfg.depth, cfg.activation) if cfg.backbone == "cspdarknet"
                         else MobileNetV2(cfg.width))
        tcfg = tokenizer.cfg
        feat_hw = (-(-h // 32), -(-w // 32))  # five stride-2 convs with padding: ceil(size / 32)
        self.head = PCTHead(self.backbone.out_channels, feat_hw, cfg, tcfg.num_tokens,
                            tcfg.codebook_size, tcfg.num_joints)
        aux_in = self.backbone.channels8 + (self.backbone.out_channels if cfg.aux_features == "fused" else 0)
        self.aux_heatmap = (nn.Sequential(conv_bn(aux_in, 64, 3), nn.Conv2d(64, tcfg.num_joints, 1))
                            if cfg.aux_heatmap else None)
        self.tokenizer = tokenizer
        for p in self.tokenizer.parameters():
            p.requires_grad_(False)
        # The tokenizer normalises by its crop height, so its pixels scale to ours by the height ratio.
        self.tokenizer_to_input = h / tcfg.input_size[1]

    def train(self, mode: bool = True) -> PoseClassifier:
        super().train(mode)
        self.tokenizer.eval()  # frozen: no EMA updates, no random masking
        return self

    def assign(self, logits: torch.Tensor) -> torch.Tensor:
        """Token logits (B, M, V) -> assignment weights (B, M, V): soft (paper) or straight-through."""
        probs = logits.softmax(-1)
        if self.cfg.assignment == "straight_through":
            hard = F.one_hot(probs.argmax(-1), probs.shape[-1]).to(probs.dtype)
            return hard + probs - probs.detach()  # forward: the hard code; backward: the soft path
        return probs

    def decode(self, weights: torch.Tensor) -> torch.Tensor:
        """Assignment weights or probabilities (B, M, V) -> joints (B, J, 2) in model-input crop pixels."""
        return self.tokenizer.decode_probs(weights) * self.tokenizer_to_input

    def forward(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        """Returns logits (B, M, V), joints (B, J, 2) crop px, confidence (B, J) in [0, 1], confidence_logits,
        and heatmaps (B, J, H/8, W/8) while training with the auxiliary head."""
        x8, x32 = self.backbone((images - self.mean) / self.std)
        logits, conf = self.head(x32)
        out = {"logits": logits, "joints": self.decode(self.assign(logits)), "confidence": conf.sigmoid(),
               "confidence_logits": conf}
        if self.training and self.aux_heatmap is not None:
            if self.cfg.aux_features == "fused":  # context from the deep features, resolution from stride 8
                x8 = torch.cat([x8, F.interpolate(x32, size=x8.shape[-2:], mode="bilinear", align_corners=False)], 1)
            out["heatmaps"] = self.aux_heatmap(x8)
        return out
