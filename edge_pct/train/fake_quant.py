"""Quantization-aware fine-tuning: simulate the INT8 graph's rounding while training, so the weights learn to bear it.

Why: calibrating the trained pct-lite model straight to INT8 lost 6 PCK points (0.301 -> 0.237 on LSP), although
every tensor's own rounding error was small (30-50 dB SQNR). The error grew layer by layer (the joints' SQNR was
10 dB): YOLOX's depthwise convs, BatchNorm folded in, weight some channels up to 130x, and those channels read a
tensor quantized with one step for all channels, so their rounding noise is amplified 130x. Fine-tuning with that
noise in the forward pass teaches the network not to lean on such channels.

What `attach_fake_quant` simulates, layer by layer, is what `edge-pct calibrate`'s Q/DQ graphs quantize:
- the input of every Conv2d and Linear of the backbone and the PCT head: per tensor, asymmetric 8 bit, over a
  moving min/max (the "cpu" target's UINT8 activations; TensorRT's symmetric INT8 is one bit coarser on ReLU
  outputs); with SiLU also the conv output before the activation (ONNX Runtime quantizes it there);
- every such layer's weight: per output channel, symmetric INT8. BatchNorm scales each output channel, so rounding
  the unfolded conv weight per output channel is exactly rounding the folded weight the export writes.
Left FP32, as in the INT8 graphs: the logits layer (`head.cls_pred`), everything after the softmax (the tokenizer
decoder); not simulated: the auxiliary heatmap head (training only) and the residual adds / concats (they
requantize tensors that are already on an 8-bit grid of about the same range).
Gradients pass the rounding unchanged inside the range and are zero outside it (straight-through estimator, as
torch.fake_quantize_*). The hooks live outside the state dict: checkpoints stay plain float models.
"""

from __future__ import annotations

import types
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

QMAX_WEIGHT = 127  # symmetric INT8 weights: [-127, 127], zero point 0
LEVELS = 255  # UINT8 activations: [0, 255] with a zero point
MOMENTUM = 0.01  # moving min/max update per batch (torch's MovingAverageMinMaxObserver default)
SKIP = ("cls_pred",)  # module names (last part) the INT8 graphs keep FP32


class RangeObserver:
    """Moving min/max of a tensor (per tensor), always including 0 (a zero point must exist)."""

    def __init__(self, momentum: float = MOMENTUM) -> None:
        self.momentum, self.lo, self.hi = momentum, None, None

    def update(self, x: torch.Tensor) -> None:
        lo, hi = float(x.detach().min()), float(x.detach().max())
        if self.lo is None:
            self.lo, self.hi = lo, hi
        else:
            self.lo += self.momentum * (lo - self.lo)
            self.hi += self.momentum * (hi - self.hi)

    def scale_zero_point(self) -> tuple[float, int]:
        lo, hi = min(self.lo, 0.0), max(self.hi, 0.0)
        scale = max((hi - lo) / LEVELS, 1e-8)
        return scale, int(min(max(round(-lo / scale), 0), LEVELS))


def fake_quant_activation(x: torch.Tensor, observer: RangeObserver, update: bool) -> torch.Tensor:
    """x rounded to the observer's 8-bit grid (values outside the range clamp to it); `update` first moves the
    range towards this batch's min/max (training)."""
    if update or observer.lo is None:
        observer.update(x)
    scale, zero_point = observer.scale_zero_point()
    return torch.fake_quantize_per_tensor_affine(x, scale, zero_point, 0, LEVELS)


def fake_quant_weight(w: torch.Tensor) -> torch.Tensor:
    """w (C_out, ...) rounded per output channel to symmetric INT8 (scale = max |w| / 127 of each channel)."""
    scale = (w.detach().abs().flatten(1).amax(1) / QMAX_WEIGHT).clamp(min=1e-12).float()
    zero = torch.zeros(w.shape[0], dtype=torch.int32, device=w.device)
    return torch.fake_quantize_per_channel_affine(w, scale, zero, 0, -QMAX_WEIGHT, QMAX_WEIGHT)


def _quant_conv(m: nn.Conv2d, observer: RangeObserver, x: torch.Tensor) -> torch.Tensor:
    return m._conv_forward(fake_quant_activation(x, observer, m.training), fake_quant_weight(m.weight), m.bias)


def _quant_linear(m: nn.Linear, observer: RangeObserver, x: torch.Tensor) -> torch.Tensor:
    return F.linear(fake_quant_activation(x, observer, m.training), fake_quant_weight(m.weight), m.bias)


def _quant_silu(m: nn.SiLU, observer: RangeObserver, x: torch.Tensor) -> torch.Tensor:
    return F.silu(fake_quant_activation(x, observer, m.training))


_FORWARDS: dict[type, Callable] = {nn.Conv2d: _quant_conv, nn.Linear: _quant_linear, nn.SiLU: _quant_silu}


class FakeQuant:
    """Handle of `attach_fake_quant`: `observers` {module name: RangeObserver}; `remove()` restores the float
    forwards."""

    def __init__(self, modules: list[nn.Module], observers: dict[str, RangeObserver]) -> None:
        self.modules, self.observers = modules, observers

    def remove(self) -> None:
        for m in self.modules:
            del m.forward  # the instance attribute: the class's float forward is back
        self.modules = []


def attach_fake_quant(model: nn.Module, parts: tuple[str, ...] = ("backbone", "head")) -> FakeQuant:
    """Route the Conv2d, Linear and SiLU modules under `model.<part>` (minus `SKIP`) through 8-bit fake
    quantization (module doc). Ranges are observed in training mode and frozen in eval mode."""
    modules, observers = [], {}
    for part in parts:
        for name, m in getattr(model, part).named_modules():
            forward = _FORWARDS.get(type(m))
            if forward is None or name.rsplit(".", 1)[-1] in SKIP:
                continue
            observer = observers[f"{part}.{name}"] = RangeObserver()
            m.forward = types.MethodType(lambda self, x, f=forward, o=observer: f(self, o, x), m)
            modules.append(m)
    return FakeQuant(modules, observers)
