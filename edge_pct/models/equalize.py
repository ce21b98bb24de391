"""Cross-layer range equalization for INT8 (Nagel et al., "Data-Free Quantization", ICCV 2019), in place, without
data; the model computes the same function afterwards.

Why: with BatchNorm folded in, YOLOX's depthwise convs weight their channels very unevenly (up to 390x apart
within one layer of the trained model), and they weight most the channels that are quiet in their input (BatchNorm
divides by the channel's spread). INT8 quantizes that input with one step for all its
channels, so a quiet channel is mostly rounding noise, which the depthwise conv then multiplies by its big weight.
Calibrated straight to INT8, the earlier SiLU model lost 6 PCK points that way (README, issue 4).

How: for a conv block A (Conv, BatchNorm, ReLU) whose output nothing but a depthwise conv block B reads,
ReLU(s x) = s ReLU(x) for s > 0, so scaling A's BatchNorm weight and bias of channel c by s_c and B's conv weight of
channel c by 1 / s_c leaves B's output as it was, in eval and in training mode. s_c = r_max / r_c lifts every channel
of the tensor between them to the range of the loudest, r_max; B's weights shrink by as much. r_c comes from A's
BatchNorm: on the training data its output is about N(bias_c, weight_c^2), so after the ReLU at most about
bias_c + 3 |weight_c|. A channel the ReLU always zeroes (r_c <= 0) keeps s_c = 1; s_c is capped at MAX_SCALE so a
channel that is quiet on the training data cannot overflow the shared range on other images.
SiLU is not positively homogeneous, so SiLU models are left as they are.
"""

from __future__ import annotations

import torch

from edge_pct.models.cspdarknet import ConvBnAct, CSPDarknetPAFPN

SIGMAS = 3.0  # a channel's range: mean + SIGMAS standard deviations of its BatchNorm output
MAX_SCALE = 32.0


def channel_scales(producer: ConvBnAct, sigmas: float = SIGMAS, max_scale: float = MAX_SCALE) -> torch.Tensor:
    """Per-channel factors s (C,) >= 1 that bring the estimated ReLU output ranges of `producer` to their maximum."""
    bn = producer[1]
    reach = bn.bias.detach() + sigmas * bn.weight.detach().abs()
    alive = reach > 0
    if not alive.any():
        return torch.ones_like(reach)
    return torch.where(alive, (reach[alive].max() / reach.clamp(min=1e-12)).clamp(max=max_scale),
                       torch.ones_like(reach))


@torch.no_grad()
def equalize_depthwise_inputs(backbone: torch.nn.Module) -> int:
    """Equalize every (producer, depthwise) pair of a ReLU `CSPDarknetPAFPN` (module doc); returns the number of
    pairs changed (0 for other backbones and for SiLU)."""
    if not isinstance(backbone, CSPDarknetPAFPN) or backbone.activation != "relu":
        return 0
    pairs = backbone.depthwise_pairs()
    for producer, depthwise in pairs:
        s = channel_scales(producer)
        producer[1].weight.mul_(s)
        producer[1].bias.mul_(s)
        depthwise[0].weight.div_(s.view(-1, 1, 1, 1))
    return len(pairs)
