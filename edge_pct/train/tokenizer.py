"""Stage-1 training: the pose tokenizer on COCO poses (docs/method.md §1.2, 1.6-1.8).

Each iteration draws a batch of persons, crops their poses with random augmentation, hides each labeled
joint from the encoder with probability 1 - keep_prob, and minimises L1 (crop pixels, every labeled joint,
hidden ones included, so the decoder learns to complete poses) + commit_weight * commitment.
Resumable: `<out>/last.pt` holds weights, optimizer and iteration; rerunning the same command resumes.
"""

from __future__ import annotations

import json
import logging
import math
import time
from pathlib import Path

import numpy as np
import torch

from edge_pct.config import RunConfig, TokenizerConfig, config_from_dict, config_to_dict
from edge_pct.core.errors import InputFileError
from edge_pct.core.keypoints import OKS_SIGMAS
from edge_pct.core.report import progress
from edge_pct.data.coco import load_coco_json, load_poses
from edge_pct.data.persons import PersonSet
from edge_pct.data.transforms import PoseAugment, crop_joints, sample_crop_params
from edge_pct.models.codebook import usage_stats
from edge_pct.models.tokenizer import PoseTokenizer
from edge_pct.models.weights import read_checkpoint
from edge_pct.train.checkpoint import save_checkpoint
from edge_pct.train.schedule import warmup_cosine_lr

log = logging.getLogger(__name__)


def make_batch(poses: PersonSet, idx: np.ndarray, cfg: RunConfig, rng: np.random.Generator,
               augment: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
    """Crop-frame joints (B, 17, 2) float32 and labeled mask (B, 17) bool for persons `idx`."""
    t, size = cfg.tokenizer_train, cfg.tokenizer.input_size
    aug = t.augmentation() if augment else PoseAugment()
    kpts = poses.keypoints[idx]
    params = sample_crop_params(poses.boxes[idx], kpts, aug, size[0] / size[1], t.padding, rng)
    crop = crop_joints(kpts, params, size)
    return torch.from_numpy(crop[..., :2]), torch.from_numpy(crop[..., 2] > 0)


def oks_joint_weights() -> torch.Tensor:
    """(17,) L1 weights proportional to 1 / OKS sigma, mean 1: eyes about 2.3, hips about 0.55."""
    inv = 1.0 / torch.tensor(OKS_SIGMAS)
    return inv / inv.mean()


def tokenizer_loss(model: PoseTokenizer, joints: torch.Tensor, labeled: torch.Tensor, keep_prob: float,
                   commit_weight: float, generator: torch.Generator | None = None,
                   joint_weights: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
    """Masked-joint training loss; returns loss, l1 (unweighted px per labeled joint), commit, indices.

    `joint_weights` (17,) scales each joint's L1 term in the loss (None: uniform, as in the paper).
    """
    keep = torch.rand(labeled.shape, generator=generator) < keep_prob
    out = model(joints, labeled & keep)
    err = (out["joints"] - joints).abs().mean(-1)  # (B, J) px
    n_labeled = labeled.sum().clamp(min=1)
    l1 = (err * labeled).sum() / n_labeled
    fit = l1 if joint_weights is None else (err * labeled * joint_weights).sum() / n_labeled
    return {"loss": fit + commit_weight * out["commit_loss"], "l1": l1, "commit": out["commit_loss"],
            "indices": out["indices"]}


def _param_groups(model: torch.nn.Module, weight_decay: float) -> list[dict]:
    """Weight decay on matrices and the invisible token, none on biases and LayerNorm (docs/method.md §1.7)."""
    decay, no_decay = [], []
    for p in model.parameters():
        (decay if p.ndim >= 2 else no_decay).append(p)
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]


def train_tokenizer(poses_path: str | Path, out_dir: str | Path, cfg: RunConfig,
                    val_ann: str | Path | None = None, init: str | Path | None = None) -> dict:
    """Train (or resume) a tokenizer; writes `<out>/last.pt`, `<out>/tokenizer.pt`, `<out>/train_log.jsonl`.

    `init` starts a new run (fresh optimizer and schedule) from a trained tokenizer of the same config, e.g. to
    continue a finished run with a second cosine cycle; an existing `<out>/last.pt` always takes precedence.

    Returns: {checkpoint, epochs, iterations, final_loss, final_l1_px, minutes, ...codebook usage}.
    """
    t = cfg.tokenizer_train
    if t.num_threads:
        torch.set_num_threads(t.num_threads)
    poses = load_poses(poses_path)
    val_poses = load_coco_json(val_ann) if val_ann is not None else None  # read once, scored at every checkpoint
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    model = PoseTokenizer(cfg.tokenizer)
    opt = torch.optim.AdamW(_param_groups(model, t.weight_decay), lr=t.lr, betas=(0.9, 0.999))
    iters_per_epoch = math.ceil(len(poses) / t.batch_size)
    total = t.epochs * iters_per_epoch
    start_it, elapsed = 0, 0.0
    last = out / "last.pt"
    if last.exists():
        blob = read_checkpoint(last, "tokenizer")
        if config_from_dict(TokenizerConfig, blob["config"]) != cfg.tokenizer:
            raise InputFileError(f"'{last}' was trained with another tokenizer config: use a new --out directory")
        model.load_state_dict(blob["state_dict"])
        opt.load_state_dict(blob["train_state"]["optimizer"])
        start_it, elapsed = blob["train_state"]["iteration"], blob["train_state"]["seconds"]
        log.info("resuming from %s at iteration %d", last, start_it)
    elif init is not None:
        blob = read_checkpoint(init, "tokenizer")
        if config_from_dict(TokenizerConfig, blob["config"]) != cfg.tokenizer:
            raise InputFileError(f"--init '{init}' has another tokenizer config than this run: pass the same --config")
        model.load_state_dict({k: v.float() if v.is_floating_point() else v for k, v in blob["state_dict"].items()})
        log.info("starting from the weights of %s", init)
    meta = {"run_config": config_to_dict(cfg), "poses": str(poses_path), "persons": len(poses),
            "init": str(init) if init else None}

    def checkpoint(it: int) -> None:
        state = {"optimizer": opt.state_dict(), "iteration": it, "seconds": elapsed}
        save_checkpoint(last, "tokenizer", cfg.tokenizer, model, meta={**meta, "iteration": it}, train_state=state)

    model.train()
    joint_weights = oks_joint_weights() if t.oks_weighted_l1 else None
    gen = torch.Generator()
    stats: dict = {}
    t0 = time.time() - elapsed
    with open(out / "train_log.jsonl", "a") as log_file:
        for it in progress(range(start_it, total), desc="train-tokenizer", unit="it"):
            epoch, step = divmod(it, iters_per_epoch)
            order = np.random.default_rng([t.seed, epoch]).permutation(len(poses))
            idx = order[step * t.batch_size:(step + 1) * t.batch_size]
            rng = np.random.default_rng([t.seed, epoch, step])
            gen.manual_seed(t.seed * 1_000_003 + it)
            joints, labeled = make_batch(poses, idx, cfg, rng)
            for g in opt.param_groups:
                g["lr"] = warmup_cosine_lr(it, total, t.lr, t.warmup_iters, t.min_lr_ratio)
            res = tokenizer_loss(model, joints, labeled, t.keep_prob, t.commit_weight, gen, joint_weights)
            opt.zero_grad(set_to_none=True)
            res["loss"].backward()
            opt.step()
            elapsed = time.time() - t0
            if it % 50 == 0 or it == total - 1:
                stats = {"iteration": it, "epoch": it / iters_per_epoch, "lr": opt.param_groups[0]["lr"],
                         "loss": res["loss"].item(), "l1_px": res["l1"].item(), "commit": res["commit"].item(),
                         **usage_stats(res["indices"], cfg.tokenizer.codebook_size), "minutes": elapsed / 60}
                log_file.write(json.dumps(stats) + "\n")
                log_file.flush()
                log.info("it %d/%d loss %.3f l1 %.2fpx ppl %.0f used %d", it, total, stats["loss"], stats["l1_px"],
                         stats["perplexity"], stats["codes_used"])
            if (it + 1) % t.checkpoint_every == 0:
                checkpoint(it + 1)
                if val_poses is not None:
                    _log_val(model, val_ann, val_poses, it + 1, log_file)
            if t.max_minutes and elapsed / 60 >= t.max_minutes:
                checkpoint(it + 1)
                log.info("stopping at the %.0f-minute limit; rerun the same command to resume", t.max_minutes)
                return {"checkpoint": str(last), "finished": False, "iterations": it + 1, **stats}
    checkpoint(total)
    final = save_checkpoint(out / "tokenizer.pt", "tokenizer", cfg.tokenizer, model.eval(),
                            meta={**meta, "iterations": total, "minutes": elapsed / 60})
    return {"checkpoint": str(final), "finished": True, "epochs": t.epochs, "iterations": total,
            "final_loss": stats.get("loss"), "final_l1_px": stats.get("l1_px"), "minutes": elapsed / 60,
            "perplexity": stats.get("perplexity"), "codes_used": stats.get("codes_used")}


def _log_val(model: PoseTokenizer, val_ann: str | Path, val_poses: PersonSet, it: int, log_file) -> None:
    from edge_pct.eval.tokenizer import evaluate_tokenizer_model

    res = evaluate_tokenizer_model(model, val_ann, mask_ratio=0.0, poses=val_poses)
    model.train()
    log_file.write(json.dumps({"iteration": it, "val_ap": res["ap"], "val_ap75": res["ap75"]}) + "\n")
    log_file.flush()
    log.info("it %d val AP %.4f", it, res["ap"])
