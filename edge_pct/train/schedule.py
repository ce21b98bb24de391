"""Learning-rate schedule shared by both training stages (docs/method.md §1.7 / 2.5)."""

from __future__ import annotations

import math


def warmup_cosine_lr(it: int, total: int, lr: float, warmup_iters: int, min_lr_ratio: float) -> float:
    """Linear warm-up from 1e-3 * lr over `warmup_iters`, then cosine annealing to min_lr_ratio * lr at `total`."""
    if it < warmup_iters:
        return lr * (1e-3 + (1 - 1e-3) * it / warmup_iters)
    progress = min(1.0, (it - warmup_iters) / max(1, total - warmup_iters))
    return lr * (min_lr_ratio + (1 - min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * progress)))
