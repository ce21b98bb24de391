"""MLP-Mixer layer over (batch, tokens, channels), as used by PCT's tokenizer and classifier head.

Pre-norm mixer with both residuals (docs/method.md §1.3): y = TokenMLP(LN1(x)) across the token axis,
z = ChannelMLP(LN2(x + y)), out = x + y + z. GELU(erf), no dropout (all PCT configs use 0).
"""

from __future__ import annotations

import torch
from torch import nn


def _mlp(dim: int, hidden: int) -> nn.Sequential:
    return nn.Sequential(nn.Linear(dim, hidden), nn.GELU(), nn.Linear(hidden, dim))


class MixerLayer(nn.Module):
    """One mixer layer: (B, T, C) -> (B, T, C)."""

    def __init__(self, num_tokens: int, dim: int, token_hidden: int, channel_hidden: int) -> None:
        super().__init__()
        self.norm_token = nn.LayerNorm(dim)
        self.token_mlp = _mlp(num_tokens, token_hidden)
        self.norm_channel = nn.LayerNorm(dim)
        self.channel_mlp = _mlp(dim, channel_hidden)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.token_mlp(self.norm_token(x).transpose(1, 2)).transpose(1, 2)
        z = self.channel_mlp(self.norm_channel(x + y))
        return x + y + z
