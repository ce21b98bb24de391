"""The plain-autoencoder baseline of the locality figures: the tokenizer's network without its codebook.

Same encoder, same M token vectors of the same width, same decoder as the tokenizer config; the tokens stay
continuous (no quantisation, no commitment term). Trained briefly on COCO poses with the tokenizer's recipe
(augmented crops, 20% of the joints hidden from the encoder, L1 in crop px), then swapped exactly like the
tokenizer: token m takes its vector from another real pose. If its swaps were as local as the tokenizer's, the
locality would come from the architecture, not from the discrete codes.
"""

from __future__ import annotations

import logging
import time

import numpy as np
import torch

from edge_pct.config import RunConfig, TokenizerConfig, TokenizerTrainConfig
from edge_pct.core.report import progress
from edge_pct.data.persons import PersonSet
from edge_pct.models.tokenizer import PoseTokenizer
from edge_pct.train.tokenizer import make_batch

log = logging.getLogger(__name__)


def train_plain_autoencoder(poses: PersonSet, cfg: TokenizerConfig, steps: int = 600, batch: int = 256,
                            lr: float = 2e-3, max_seconds: float = 240.0, seed: int = 0,
                            threads: int = 0) -> tuple[PoseTokenizer, dict]:
    """A PoseTokenizer trained as a plain autoencoder (decode_features(encode_features(...))), `steps` AdamW steps or
    `max_seconds`, whichever ends first; returns it (eval mode) and {steps, seconds, final_l1_px}."""
    if threads:
        torch.set_num_threads(threads)
    torch.manual_seed(seed)
    model = PoseTokenizer(cfg)
    run = RunConfig(tokenizer=cfg, tokenizer_train=TokenizerTrainConfig())
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=1e-4)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=steps, pct_start=0.1)
    rng = np.random.default_rng(seed)
    gen = torch.Generator().manual_seed(seed)
    model.train()
    t0, l1, done = time.perf_counter(), float("nan"), 0
    for _ in progress(range(steps), desc="plain autoencoder", unit="step"):
        joints, labeled = make_batch(poses, rng.integers(0, len(poses), batch), run, rng)
        keep = torch.rand(labeled.shape, generator=gen) < run.tokenizer_train.keep_prob
        pred = model.decode_features(model.encode_features(joints, labeled & keep))
        loss = ((pred - joints).abs().mean(-1) * labeled).sum() / labeled.sum().clamp(min=1)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        l1, done = float(loss.detach()), done + 1
        if time.perf_counter() - t0 > max_seconds:
            log.info("plain autoencoder: stopping at the %.0f s limit after %d steps", max_seconds, done)
            break
    return model.eval(), {"steps": done, "batch": batch, "seconds": round(time.perf_counter() - t0, 1),
                          "final_train_l1_px": round(l1, 3)}
