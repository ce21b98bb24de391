"""The PCT image model (stage 2, arXiv 2303.11638 Sec. 3.2; docs/method.md §2) on a light backbone.

image (B, 3, H, W) RGB 0-255 -> normalise -> light backbone (YOLOX's CSPDarknet + PAFPN, or MobileNetV2) ->
PCT class head: 1x1 conv, residual blocks, flatten, Linear to M token features, Mixer layers, Linear to V logits
-> softmax(logits) @ codebook -> frozen tokenizer decoder -> joints (B, 17, 2) in crop pixels of the model input.

Added to the paper: a per-joint confidence head (visibility / reliability of each joint, from the token
features), the straight-through assignment as an option, and an auxiliary stride-8 heatmap head: a training
aid, and with `model.refine = "heatmap"` the likelihood that refines the token-decoded joints at inference
(`refine_with_heatmap`; the token pose is the prior, so hidden joints keep PCT's estimate).
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

HEATMAP_STRIDE = 8  # the auxiliary heatmap head reads the stride-8 features


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
        x = x.flatten(2).transpose(1, 2).flatten(1)  # spatial-major flatten, as PCT (docs/method.md §2.3 step 3)
        x = self.mixer_trans(x).reshape(-1, self.num_tokens, self.token_hidden)
        x = self.mixer_norm(self.mixer(x))
        conf = self.conf_mlp(self.conf_tokens(x.transpose(1, 2)).transpose(1, 2)).squeeze(-1)
        return self.cls_pred(x), conf


def cell_sq_distances(joints: torch.Tensor, shape: tuple[int, int], stride: int) -> torch.Tensor:
    """Squared distance (B, J, h, w), in grid cells, from joints (B, J, 2) crop px to every cell of an (h, w)
    stride-`stride` grid. Cell i covers pixels [i * stride, (i + 1) * stride), so its centre is pixel
    (i + 0.5) * stride - 0.5: the one convention of the heatmap targets and the refinement."""
    h, w = shape
    xs = torch.arange(w, dtype=joints.dtype, device=joints.device)
    ys = torch.arange(h, dtype=joints.dtype, device=joints.device)[:, None]
    cells = (joints + 0.5) / stride - 0.5
    return (xs - cells[..., 0, None, None]) ** 2 + (ys - cells[..., 1, None, None]) ** 2


def refine_with_heatmap(joints: torch.Tensor, heatmaps: torch.Tensor, stride: int, sigma: float) -> torch.Tensor:
    """Token-decoded joints (B, J, 2) crop px, refined by heatmap logits (B, J, h, w) on a stride-`stride` grid.

    Each joint's log-posterior over the grid is z = heatmap logits - d^2 / (2 sigma^2): the heatmap as the
    likelihood (its training loss is a cross-entropy over this very spatial softmax), a Gaussian around the token
    joint (`sigma` grid cells) as the prior. The result is the posterior's peak cell, moved by a parabola through
    z at the peak and its two neighbours, per axis. The heatmap is trained towards a Gaussian, so z is close to a
    quadratic near its peak and the parabola's vertex finds the sub-cell position without bias (a 3x3 centroid
    halves the offset: up to 2 px at stride 8). A sharp heatmap peak wins; a flat or split one (a hidden joint, a
    limb the heatmap confuses with its twin) defers to the token pose. Elementwise ops, ArgMax and reductions
    only, so it exports to ONNX / TensorRT as is.
    """
    _, _, h, w = heatmaps.shape
    xs = torch.arange(w, dtype=heatmaps.dtype, device=heatmaps.device)
    ys = torch.arange(h, dtype=heatmaps.dtype, device=heatmaps.device)[:, None]
    z = heatmaps - cell_sq_distances(joints.to(heatmaps.dtype), (h, w), stride) / (2 * sigma**2)
    peak = z.flatten(2).argmax(-1)  # (B, J); not max(-1): its ReduceMax needs opset 18
    py = torch.div(peak, w, rounding_mode="floor")
    px = (peak - py * w).to(heatmaps.dtype)
    py = py.to(heatmaps.dtype)
    col = [(xs - px[..., None, None] - d).abs() < 0.5 for d in (-1, 0, 1)]  # (B, J, 1, w) one-hot columns
    row = [(ys - py[..., None, None] - d).abs() < 0.5 for d in (-1, 0, 1)]  # (B, J, h, 1) one-hot rows
    left, z_peak, right = ((z * (c & row[1])).sum((-1, -2)) for c in col)  # z left of, at and right of the peak
    above, below = ((z * (col[1] & row[d])).sum((-1, -2)) for d in (0, 2))
    offset = [_parabola_vertex(left, z_peak, right, px > 0, px < w - 1),
              _parabola_vertex(above, z_peak, below, py > 0, py < h - 1)]
    return (torch.stack([px + offset[0], py + offset[1]], -1) + 0.5) * stride - 0.5


def _parabola_vertex(before: torch.Tensor, peak: torch.Tensor, after: torch.Tensor,
                     has_before: torch.Tensor, has_after: torch.Tensor) -> torch.Tensor:
    """Vertex (cells) of the parabola through (-1, before), (0, peak), (1, after), where peak is the maximum.

    A neighbour off the grid (`has_*` False) mirrors the other one, which puts the vertex at 0. Every intermediate
    stays bounded (|after - before| <= curvature at a maximum, so |vertex| <= 0.5): no huge values in an FP16 graph
    or in a calibrator that histograms this tensor."""
    before, after = torch.where(has_before, before, after), torch.where(has_after, after, before)
    curvature = 2 * peak - before - after  # >= 0 at a maximum
    return ((after - before) / (2 * curvature.clamp(min=1e-6))).clamp(-0.5, 0.5)


def token_grid(input_size: tuple[int, int]) -> tuple[int, int]:
    """(height, width) of the stride-32 map the PCT head flattens, for a model input (width, height) px."""
    w, h = input_size
    return -(-h // 32), -(-w // 32)  # five stride-2 convs with padding: ceil(size / 32)


def resize_token_projection(weight: torch.Tensor, channels: int, from_input: tuple[int, int],
                            to_input: tuple[int, int]) -> torch.Tensor:
    """The head's first Linear (out, h*w*channels), spatial-major, re-gridded to another input size.

    Seen as `out` maps of (channels, h, w) weights, it is resized bilinearly to the new stride-32 grid and scaled
    by the cell ratio, so that a feature map resized the same way gives the same output: `train --init` starts a
    model at a new input size from one trained at another (the backbone and the rest of the head carry over).
    """
    (h0, w0), (h1, w1) = token_grid(from_input), token_grid(to_input)
    grid = weight.view(weight.shape[0], h0, w0, channels).permute(0, 3, 1, 2)
    grid = F.interpolate(grid, size=(h1, w1), mode="bilinear", align_corners=False) * (h0 * w0 / (h1 * w1))
    return grid.permute(0, 2, 3, 1).reshape(weight.shape[0], h1 * w1 * channels)


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
        self.head = PCTHead(self.backbone.out_channels, token_grid(cfg.input_size), cfg, tcfg.num_tokens,
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
        """Returns logits (B, M, V), joints (B, J, 2) crop px (in eval mode heatmap-refined when model.refine =
        "heatmap"), confidence (B, J) in [0, 1], confidence_logits, and heatmaps (B, J, H/8, W/8) while training
        with the auxiliary head."""
        x8, x32 = self.backbone((images - self.mean) / self.std)
        logits, conf = self.head(x32)
        joints = self.decode(self.assign(logits))
        out = {"logits": logits, "joints": joints, "confidence": conf.sigmoid(), "confidence_logits": conf}
        if self.aux_heatmap is not None and (self.training or self.cfg.refine == "heatmap"):
            if self.cfg.aux_features == "fused":  # context from the deep features, resolution from stride 8
                x8 = torch.cat([x8, F.interpolate(x32, size=x8.shape[-2:], mode="bilinear", align_corners=False)], 1)
            heatmaps = self.aux_heatmap(x8)
            if self.training:  # the losses see the token joints: refinement is inference only
                out["heatmaps"] = heatmaps
            else:
                sigma = self.cfg.refine_sigma * self.cfg.input_size[1] / HEATMAP_STRIDE  # crop heights -> cells
                out["joints"] = refine_with_heatmap(joints.float(), heatmaps.float(), HEATMAP_STRIDE, sigma)
        return out
