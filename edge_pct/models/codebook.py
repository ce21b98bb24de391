"""EMA vector-quantisation codebook with dead-code restart (docs/method.md §1.4, plus restarts the paper lacks).

Each token vector is replaced by its nearest codebook row (squared L2). The codebook is a buffer
updated by exponential moving averages of the assigned encoder outputs (VQ-VAE-2 / PCT, decay 0.9,
Laplace-smoothed counts). Codes whose EMA usage falls below `dead_code_threshold` are restarted from
random encoder outputs of the current batch, so a real share of the V codes is used.
"""

from __future__ import annotations

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn


def _all_reduce_sum(t: torch.Tensor) -> torch.Tensor:
    """Sum over data-parallel workers when a process group exists (PCT calls it unconditionally)."""
    if dist.is_available() and dist.is_initialized():
        dist.all_reduce(t)
    return t


class EMACodebook(nn.Module):
    """V x D codebook; forward maps (B, M, D) encoder outputs to quantised vectors and indices."""

    def __init__(self, size: int, dim: int, decay: float = 0.9, dead_code_threshold: float = 0.0) -> None:
        super().__init__()
        self.size, self.dim, self.decay, self.dead_code_threshold = size, dim, decay, dead_code_threshold
        self.register_buffer("codebook", torch.randn(size, dim))
        self.register_buffer("ema_count", torch.zeros(size))
        self.register_buffer("ema_sum", self.codebook.clone())
        self.register_buffer("initialized", torch.tensor(False))

    def nearest(self, z: torch.Tensor) -> torch.Tensor:
        """Indices (...,) of the nearest code of each vector in z (..., D), squared L2 distance."""
        flat = z.reshape(-1, self.dim)
        # |z - c|^2 = |z|^2 - 2 z.c + |c|^2; |z|^2 is constant per row and does not change the argmin.
        dist_ = self.codebook.pow(2).sum(1)[None, :] - 2 * flat @ self.codebook.t()
        return dist_.argmin(dim=1).reshape(z.shape[:-1])

    def lookup(self, indices: torch.Tensor) -> torch.Tensor:
        """Codebook rows for integer indices (...,) -> (..., D)."""
        return F.embedding(indices, self.codebook)

    def soft_lookup(self, probs: torch.Tensor) -> torch.Tensor:
        """Soft assignment (PCT stage II): probabilities (..., V) @ codebook -> (..., D)."""
        return probs @ self.codebook

    def forward(self, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Quantise z (B, M, D).

        Returns:
            quantised (B, M, D) with the straight-through gradient z + stopgrad(q - z),
            indices (B, M) int64, commitment loss MSE(z, stopgrad(q)) (scalar).
        """
        if self.training and not bool(self.initialized):
            self._init_from_data(z.detach())
        indices = self.nearest(z.detach())
        q = self.lookup(indices)
        commit = F.mse_loss(z, q.detach())
        if self.training:
            self.ema_update(z.detach(), indices)
        return z + (q - z).detach(), indices, commit  # straight_through

    @torch.no_grad()
    def _init_from_data(self, z: torch.Tensor) -> None:
        """Start from random encoder outputs instead of N(0, 1) (kmeans-init lite): no code starts dead."""
        flat = z.reshape(-1, self.dim)
        pick = torch.randint(len(flat), (self.size,), device=z.device)
        self.codebook.copy_(flat[pick])
        self.ema_sum.copy_(flat[pick])
        self.ema_count.fill_(1.0)
        self.initialized.fill_(True)

    @torch.no_grad()
    def ema_update(self, z: torch.Tensor, indices: torch.Tensor) -> None:
        """EMA codebook update (docs/method.md §1.4 steps 1-5), then restart dead codes."""
        flat, idx = z.reshape(-1, self.dim).float(), indices.reshape(-1)
        counts = torch.zeros(self.size, device=z.device).index_add_(0, idx, torch.ones_like(idx, dtype=torch.float))
        sums = torch.zeros(self.size, self.dim, device=z.device).index_add_(0, idx, flat)
        counts, sums = _all_reduce_sum(counts), _all_reduce_sum(sums)
        d = self.decay
        self.ema_count.mul_(d).add_(counts, alpha=1 - d)
        total = self.ema_count.sum()
        self.ema_count.copy_((self.ema_count + 1e-5) / (total + self.size * 1e-5) * total)  # Laplace smoothing
        self.ema_sum.mul_(d).add_(sums, alpha=1 - d)
        self.codebook.copy_(self.ema_sum / self.ema_count[:, None])
        if self.dead_code_threshold > 0:
            self._restart_dead_codes(flat)

    @torch.no_grad()
    def _restart_dead_codes(self, flat: torch.Tensor) -> None:
        dead = self.ema_count < self.dead_code_threshold
        n_dead = int(dead.sum())
        if n_dead == 0:
            return
        pick = torch.randint(len(flat), (n_dead,), device=flat.device)
        fresh = flat[pick]
        if dist.is_available() and dist.is_initialized():
            dist.broadcast(fresh, src=0)  # every worker restarts the same codes the same way
        self.codebook[dead] = fresh
        self.ema_sum[dead] = fresh
        self.ema_count[dead] = 1.0


def usage_stats(indices: torch.Tensor, size: int) -> dict[str, float]:
    """Codebook health from assigned indices (any shape): perplexity and the share of codes used."""
    counts = torch.bincount(indices.reshape(-1), minlength=size).float()
    p = counts / counts.sum().clamp(min=1)
    entropy = -(p[p > 0] * p[p > 0].log()).sum()
    used = int((counts > 0).sum())
    return {"perplexity": float(entropy.exp()), "codes_used": used, "codes_used_share": used / size}
