"""YOLOX's depthwise CSPDarknet + PAFPN (Ge et al., arXiv 2107.08430), written here, as a pose backbone that can
start from a trained person detector.

Why: trained from scratch on the 6,000 LSP-extended images, a light backbone learns slowly (MobileNetV2 x0.5 at
128x96 had a heatmap error of 28 px after 8 epochs, the mean pose's is 30). YOLOX-Nano was trained on COCO, whose
most frequent class is the person, and is Apache-2.0; `load_yolox_onnx` copies its backbone and neck weights out
of the official ONNX export (`../shared/data/models/yolox_nano.onnx`, the detector file the streaming pipeline
already uses), so the pose model starts from features that know where people and their limbs are.

Layout (width w, depth d; YOLOX-Nano is w=0.25, d=0.33): Focus (space-to-depth + 3x3 conv) -> dark2..dark5 (a
stride-2 depthwise-separable conv + CSP layer each; SPP before the last CSP) -> PAFPN (top-down and bottom-up
CSP fusion). Output: the PAFPN's stride-8 map (it carries deep context through the top-down path) and its
stride-32 map. Conv + BatchNorm + activation everywhere: SiLU as in YOLOX, or ReLU (`act="relu"`), which INT8
fuses into the conv (its output range): ONNX Runtime's CPU kernels run each SiLU as QLinearSigmoid + QLinearMul,
two extra ops per conv, which ate the whole INT8 gain. Every op maps to ONNX, TensorRT and INT8.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch import nn

from edge_pct.core.errors import InputFileError

ACTIVATIONS = {"silu": nn.SiLU, "relu": nn.ReLU}


class ConvBnAct(nn.Sequential):
    """(B, c_in, H, W) -> (B, c_out, H / stride, W / stride); `groups=c_in` makes it depthwise; `act` an
    ACTIVATIONS key."""

    def __init__(self, c_in: int, c_out: int, k: int = 1, stride: int = 1, groups: int = 1, act: str = "silu") -> None:
        super().__init__(nn.Conv2d(c_in, c_out, k, stride, k // 2, groups=groups, bias=False), nn.BatchNorm2d(c_out),
                         ACTIVATIONS[act](inplace=True))


def _dw_conv(c_in: int, c_out: int, stride: int = 1, act: str = "silu") -> nn.Sequential:
    """Depthwise 3x3 then pointwise 1x1 (YOLOX `DWConv`)."""
    return nn.Sequential(ConvBnAct(c_in, c_in, 3, stride, groups=c_in, act=act), ConvBnAct(c_in, c_out, 1, act=act))


class _Bottleneck(nn.Module):
    def __init__(self, c: int, shortcut: bool, act: str) -> None:
        super().__init__()
        self.conv1, self.conv2, self.shortcut = ConvBnAct(c, c, 1, act=act), _dw_conv(c, c, act=act), shortcut

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.conv2(self.conv1(x))
        return x + y if self.shortcut else y


class CSPLayer(nn.Module):
    """Cross-stage partial block: half the channels through n bottlenecks, half around them; (B, c_in, H, W) ->
    (B, c_out, H, W)."""

    def __init__(self, c_in: int, c_out: int, n: int, shortcut: bool = True, act: str = "silu") -> None:
        super().__init__()
        hidden = c_out // 2
        self.conv1, self.conv2 = ConvBnAct(c_in, hidden, 1, act=act), ConvBnAct(c_in, hidden, 1, act=act)
        self.m = nn.Sequential(*[_Bottleneck(hidden, shortcut, act) for _ in range(n)])
        self.conv3 = ConvBnAct(2 * hidden, c_out, 1, act=act)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a, b = self.conv1(x), self.conv2(x)  # this call order is the ONNX export's node order (see load_yolox_onnx)
        return self.conv3(torch.cat([self.m(a), b], 1))


class _SPP(nn.Module):
    def __init__(self, c: int, act: str) -> None:
        super().__init__()
        self.conv1, self.conv2 = ConvBnAct(c, c // 2, 1, act=act), ConvBnAct(c // 2 * 4, c, 1, act=act)
        self.pools = nn.ModuleList([nn.MaxPool2d(k, 1, k // 2) for k in (5, 9, 13)])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv1(x)
        return self.conv2(torch.cat([x, *[p(x) for p in self.pools]], 1))


class CSPDarknetPAFPN(nn.Module):
    """Image (B, 3, H, W) (H, W multiples of 32) -> (stride-8 map (B, C8, H/8, W/8), stride-32 map (B, C32, H/32,
    W/32)). The input is what YOLOX was trained on: raw 0-255 pixels, no mean/std (see PoseClassifier)."""

    def __init__(self, width: float = 0.25, depth: float = 0.33, act: str = "silu") -> None:
        super().__init__()
        c = int(64 * width)  # 16, 32, 64, 128, 256 channels at strides 2..32 for YOLOX-Nano
        n = max(round(3 * depth), 1)
        a = act
        self.stem = ConvBnAct(12, c, 3, act=a)  # after the space-to-depth Focus slicing
        self.dark2 = nn.Sequential(_dw_conv(c, 2 * c, 2, a), CSPLayer(2 * c, 2 * c, n, act=a))
        self.dark3 = nn.Sequential(_dw_conv(2 * c, 4 * c, 2, a), CSPLayer(4 * c, 4 * c, 3 * n, act=a))
        self.dark4 = nn.Sequential(_dw_conv(4 * c, 8 * c, 2, a), CSPLayer(8 * c, 8 * c, 3 * n, act=a))
        self.dark5 = nn.Sequential(_dw_conv(8 * c, 16 * c, 2, a), _SPP(16 * c, a),
                                   CSPLayer(16 * c, 16 * c, n, False, a))
        self.lateral_conv0 = ConvBnAct(16 * c, 8 * c, 1, act=a)
        self.C3_p4 = CSPLayer(16 * c, 8 * c, n, False, a)
        self.reduce_conv1 = ConvBnAct(8 * c, 4 * c, 1, act=a)
        self.C3_p3 = CSPLayer(8 * c, 4 * c, n, False, a)
        self.bu_conv2 = _dw_conv(4 * c, 4 * c, 2, a)
        self.C3_n3 = CSPLayer(8 * c, 8 * c, n, False, a)
        self.bu_conv1 = _dw_conv(8 * c, 8 * c, 2, a)
        self.C3_n4 = CSPLayer(16 * c, 16 * c, n, False, a)
        self.up = nn.Upsample(scale_factor=2, mode="nearest")
        self.channels8, self.out_channels, self.activation = 4 * c, 16 * c, act

    def depthwise_pairs(self) -> list[tuple[ConvBnAct, ConvBnAct]]:
        """(A, B) conv blocks where nothing but depthwise block B reads A's output (see forward; the stride-8 map
        C3_p3 also leaves as an output, so it is not listed). For range equalization (models/equalize.py)."""
        pairs = [(self.stem, self.dark2[0][0]), (self.dark2[1].conv3, self.dark3[0][0]),
                 (self.C3_n3.conv3, self.bu_conv1[0])]
        return pairs + [(m.conv1, m.conv2[0]) for m in self.modules() if isinstance(m, _Bottleneck)]

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        # Focus: the four pixel phases side by side in channels (top-left, bottom-left, top-right, bottom-right)
        x = torch.cat([x[..., ::2, ::2], x[..., 1::2, ::2], x[..., ::2, 1::2], x[..., 1::2, 1::2]], 1)
        x3 = self.dark3(self.dark2(self.stem(x)))
        x4 = self.dark4(x3)
        x5 = self.dark5(x4)
        fpn0 = self.lateral_conv0(x5)
        fpn1 = self.reduce_conv1(self.C3_p4(torch.cat([self.up(fpn0), x4], 1)))
        p3 = self.C3_p3(torch.cat([self.up(fpn1), x3], 1))
        p4 = self.C3_n3(torch.cat([self.bu_conv2(p3), fpn1], 1))
        p5 = self.C3_n4(torch.cat([self.bu_conv1(p4), fpn0], 1))
        return p3, p5


def _conv_call_order(model: CSPDarknetPAFPN) -> list[ConvBnAct]:
    """The ConvBnAct blocks in the order one forward pass calls them (= the ONNX export's Conv node order)."""
    order: list[ConvBnAct] = []
    hooks = [m.register_forward_hook(lambda mod, *_: order.append(mod)) for m in model.modules()
             if isinstance(m, ConvBnAct)]
    try:
        with torch.no_grad():
            model.eval()(torch.zeros(1, 3, 64, 64))
    finally:
        for h in hooks:
            h.remove()
    return order


def fit_batchnorm(model: CSPDarknetPAFPN, images: torch.Tensor) -> None:
    """Make training-mode BatchNorm reproduce the loaded weights on `images` (B, 3, H, W), as fed to the backbone.

    After `load_yolox_onnx` each BatchNorm is the identity plus the folded bias only in eval mode; in training mode
    it would normalise every channel by its batch statistics and change what the detector computes. Here each
    BatchNorm gets its conv's output mean and variance on `images`, as running statistics and as scale
    sqrt(var + eps) and shift mean + bias: still exactly YOLOX in eval mode, and about the same in training mode.
    """

    def fit(conv: nn.Module, _: tuple, y: torch.Tensor) -> None:
        bn = convs[conv]
        mean, var = y.mean((0, 2, 3)), y.var((0, 2, 3), unbiased=False)
        bn.bias.copy_(mean + bn.bias)  # read before the scale changes: bias holds the folded conv bias
        bn.weight.copy_((var + bn.eps).sqrt())
        bn.running_mean.copy_(mean)
        bn.running_var.copy_(var)

    convs = {m[0]: m[1] for m in model.modules() if isinstance(m, ConvBnAct)}
    hooks = [conv.register_forward_hook(fit) for conv in convs]  # each BN is fitted before it runs
    try:
        with torch.no_grad():
            model.eval()(images)
    finally:
        for h in hooks:
            h.remove()


def load_yolox_onnx(model: CSPDarknetPAFPN, path: str | Path, rgb_input: bool = True) -> int:
    """Initialise `model` from a YOLOX ONNX export of the same width/depth (BatchNorm folded into the convs).

    The backbone + PAFPN convs are the first Conv nodes of the graph, in forward order; the detection head's
    follow and are ignored. Each folded conv (W, b) becomes conv weight W and an identity BatchNorm with bias b,
    so the output is unchanged and BatchNorm keeps adapting while fine-tuning. `rgb_input`: our model takes RGB,
    YOLOX BGR, so the stem's input channels are reordered. Returns the number of convs copied.
    """
    import onnx
    from onnx import numpy_helper

    try:
        graph = onnx.load(str(path)).graph
    except Exception as e:  # a missing, truncated or non-ONNX file
        raise InputFileError(f"Cannot read YOLOX ONNX '{path}' ({e}): pass the official yolox_nano.onnx") from None
    weights = {t.name: numpy_helper.to_array(t) for t in graph.initializer}
    convs = [n for n in graph.node if n.op_type == "Conv"]
    blocks = _conv_call_order(model)
    if len(convs) < len(blocks):
        raise InputFileError(f"'{path}' has {len(convs)} convs, the backbone needs {len(blocks)}: not a YOLOX export")
    for block, node in zip(blocks, convs, strict=False):
        conv, bn = block[0], block[1]
        w = weights[node.input[1]]
        if tuple(w.shape) != tuple(conv.weight.shape):
            raise InputFileError(f"'{path}' does not match this backbone ({node.name}: {w.shape} vs "
                                 f"{tuple(conv.weight.shape)}): use a YOLOX export of the same width and depth")
        b = weights[node.input[2]] if len(node.input) > 2 else np.zeros(w.shape[0], np.float32)
        with torch.no_grad():
            conv.weight.copy_(torch.from_numpy(w.copy()))
            bn.weight.fill_(1.0)
            bn.bias.copy_(torch.from_numpy(b.copy()))
            bn.running_mean.zero_()
            bn.running_var.fill_(1.0 - bn.eps)  # (x - 0) / sqrt(var + eps) == x
    if rgb_input:  # stem input channels: 4 Focus phases x (B, G, R) -> x (R, G, B)
        with torch.no_grad():
            stem = model.stem[0].weight
            stem.copy_(stem[:, [i for p in range(4) for i in (3 * p + 2, 3 * p + 1, 3 * p)]].clone())
    return len(blocks)
