"""Stage-2 training: the PCT image model on person crops (docs/method.md §2.4-2.5), CPU or GPU, one or many GPUs.

Loss = CE(token logits, tokenizer indices of the GT pose) + L1 (decoded joints, crop px, labeled joints)
+ BCE (per-joint confidence vs visible x closeness of the decoded joint) + the auxiliary heatmap loss.
AMP on CUDA; `torchrun --nproc_per_node N -m edge_pct.cli train ...` trains with DistributedDataParallel.
Resumable: `<out>/last.pt` holds weights, optimizer and iteration; rerunning the same command resumes.
"""

from __future__ import annotations

import json
import logging
import os
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from edge_pct.config import ModelConfig, RunConfig, TrainConfig, config_from_dict, config_to_dict
from edge_pct.core.errors import InputFileError
from edge_pct.core.package import DEFAULT_TOKENIZER
from edge_pct.core.report import progress
from edge_pct.data.persons import PersonSet
from edge_pct.data.topdown import CropDataset
from edge_pct.models.classifier import HEATMAP_STRIDE, PoseClassifier, cell_sq_distances, resize_token_projection
from edge_pct.models.factory import build_classifier, init_backbone
from edge_pct.models.weights import load_tokenizer, load_weights, read_checkpoint
from edge_pct.train.checkpoint import save_checkpoint
from edge_pct.train.schedule import warmup_cosine_lr

log = logging.getLogger(__name__)
CONF_SIGMA = 0.04  # closeness scale of the confidence target, as a fraction of the crop height


def training_persons(t: TrainConfig) -> PersonSet:
    """LSP-extended train split (+ face pseudo-labels), an optional COCO-format set and COCO person crops."""
    from edge_pct.data.lsp import load_lsp
    from edge_pct.data.topdown import load_coco_persons

    sets = []
    if t.lsp_root:
        sets.append(load_lsp(t.lsp_root, "train", face_pseudo=t.face_pseudo, last=t.lsp_last))
    if t.coco_ann:
        sets.extend([load_coco_persons(t.coco_ann, t.coco_images)] * t.coco_repeat)
    if t.coco_crops:
        from edge_pct.data.person_crops import load_person_crops

        sets.extend([load_person_crops(t.coco_crops, "train")] * t.coco_crops_repeat)
    if not sets:
        raise InputFileError("No training data: set train.lsp_root and/or train.coco_ann + train.coco_images")
    return PersonSet.concat(sets)


def heatmap_targets(joints: torch.Tensor, shape: tuple[int, int], stride: int, sigma: float = 1.0) -> torch.Tensor:
    """Gaussian targets (B, J, h, w) for joints (B, J, 2) crop px on a stride-`stride` grid (sigma in cells;
    cell centres as in `cell_sq_distances`)."""
    return torch.exp(-cell_sq_distances(joints, shape, stride) / (2 * sigma**2))


def heatmap_terms(hm: torch.Tensor, joints: torch.Tensor, labeled: torch.Tensor, input_size: tuple[int, int],
                  kind: str, stride: int = HEATMAP_STRIDE) -> dict[str, torch.Tensor]:
    """Auxiliary heatmap loss for hm (B, J, h, w) vs joints (B, J, 2) crop px, over labeled (B, J) float joints
    inside the crop; also `heatmap_err` (px): how far the heatmap argmax is from the joint (learning progress)."""
    w, h = input_size
    inside = labeled * ((joints >= 0).all(-1) & (joints[..., 0] < w) & (joints[..., 1] < h)).float()
    target = heatmap_targets(joints, hm.shape[-2:], stride)
    if kind == "ce":
        target = target / target.sum((-1, -2), keepdim=True).clamp(min=1e-9)
        per_joint = -(target * hm.flatten(2).log_softmax(-1).view_as(hm)).sum((-1, -2))  # (B, J)
    else:
        per_joint = ((hm - target) ** 2).sum((-1, -2))
    n = inside.sum().clamp(min=1)
    with torch.no_grad():
        flat = hm.flatten(2).argmax(-1)  # (B, J)
        peak = torch.stack([flat % hm.shape[-1], flat // hm.shape[-1]], -1).float() * stride + (stride - 1) / 2
        err = ((peak - joints).norm(dim=-1) * inside).sum() / n
    return {"heatmap": (per_joint * inside).sum() / n, "heatmap_err": err}


def classifier_loss(model: PoseClassifier, out: dict[str, torch.Tensor], batch: dict[str, torch.Tensor],
                    t: TrainConfig) -> dict[str, torch.Tensor]:
    """All stage-2 loss terms (scalars) for one batch; `out` is the model output on batch["image"]."""
    joints, labeled, visible = batch["joints"], batch["labeled"], batch["visible"]
    with torch.no_grad():
        target = model.tokenizer.encode(joints / model.tokenizer_to_input, labeled)  # (B, M)
    ce = F.cross_entropy(out["logits"].flatten(0, 1).float(), target.flatten())
    lab = labeled.float()
    err = (out["joints"].float() - joints).abs().mean(-1)  # (B, J) px
    l1 = (err * lab).sum() / lab.sum().clamp(min=1)
    with torch.no_grad():
        dist = (out["joints"].float() - joints).norm(dim=-1)
        scale = CONF_SIGMA * model.cfg.input_size[1]
        conf_target = visible * torch.exp(-(dist**2) / (2 * scale**2))
    bce = F.binary_cross_entropy_with_logits(out["confidence_logits"].float(), conf_target, reduction="none")
    vis = (bce * lab).sum() / lab.sum().clamp(min=1)
    loss = t.ce_weight * ce + t.joint_weight * l1 + t.vis_weight * vis
    terms = {"ce": ce, "l1": l1, "vis": vis}
    if "heatmaps" in out:
        terms.update(heatmap_terms(out["heatmaps"].float(), joints, lab, model.cfg.input_size, t.heatmap_loss))
        loss = loss + t.heatmap_weight * terms["heatmap"]
    with torch.no_grad():
        terms["token_top1"] = (out["logits"].argmax(-1) == target).float().mean()
    return {"loss": loss, **terms}


def _param_groups(model: torch.nn.Module, weight_decay: float) -> list[dict]:
    decay = [p for p in model.parameters() if p.requires_grad and p.ndim >= 2]
    no_decay = [p for p in model.parameters() if p.requires_grad and p.ndim < 2]
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]


def _distributed() -> tuple[int, int]:
    """(rank, world size); initialises the process group under torchrun."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world > 1 and not torch.distributed.is_initialized():
        torch.distributed.init_process_group("nccl" if torch.cuda.is_available() else "gloo")
        if torch.cuda.is_available():
            torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
    return (torch.distributed.get_rank() if world > 1 else 0), world


class _EpochSampler(torch.utils.data.Sampler):
    """Seeded permutation per epoch, sharded over ranks, starting at `start` (for exact resume)."""

    def __init__(self, n: int, batch_size: int, seed: int, epoch: int, start: int, rank: int, world: int) -> None:
        order = np.random.default_rng([seed, epoch]).permutation(n)
        per_rank = n // world
        self.indices = order[rank * per_rank:(rank + 1) * per_rank][start * batch_size:].tolist()

    def __iter__(self):
        return iter(self.indices)

    def __len__(self) -> int:
        return len(self.indices)


def _quiet_worker(_: int) -> None:
    """Data workers use one thread each: the training process owns the other cores."""
    import cv2

    cv2.setNumThreads(1)
    torch.set_num_threads(1)


def train_classifier(cfg: RunConfig, out_dir: str | Path, init: str | Path | None = None) -> dict:
    """Train (or resume) the image model; writes `<out>/last.pt`, `<out>/model.pt`, `<out>/train_log.jsonl`.

    `init` starts a new run (fresh optimizer and schedule) from a trained image model of the same model config,
    e.g. to train the shipped model longer; a run that has a last.pt resumes from it instead."""
    t = cfg.train
    if t.num_threads:
        torch.set_num_threads(t.num_threads)
    rank, world = _distributed()
    device = torch.device(f"cuda:{int(os.environ.get('LOCAL_RANK', '0'))}" if torch.cuda.is_available() else "cpu")
    tokenizer = load_tokenizer(t.tokenizer or DEFAULT_TOKENIZER)
    model = build_classifier(cfg.model, tokenizer)
    persons = training_persons(t)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    last = out / "last.pt"
    dataset = CropDataset(persons, cfg.model.input_size, t.padding, t.augmentation(), t.color_prob, t.occlusion_prob,
                          t.seed, t.sharpen_prob)
    resuming = last.exists()
    if init is not None and not resuming:
        blob = _read_same_model(init, cfg, "pass the same --variant and --config as the run that trained it",
                                may_differ=("activation", "input_size"))
        load_weights(model, _fit_input_size(blob, cfg.model), init).train()
        log.info("starting from the weights of %s", init)
    elif t.backbone_init and not resuming:  # a new run starts from the detector; BatchNorm fitted on 64 crops
        sample = torch.stack([dataset[i]["image"] for i in range(0, len(dataset), max(1, len(dataset) // 64))][:64])
        log.info("backbone: %d convs from %s", init_backbone(model, t.backbone_init, sample), t.backbone_init)
    # channels_last: the depthwise convs run 1.37x faster forward+backward on CPU (batch 32, measured here)
    model.to(device, memory_format=torch.channels_last)
    opt = torch.optim.AdamW(_param_groups(model, t.weight_decay), lr=t.lr)
    scaler = torch.amp.GradScaler("cuda", enabled=device.type == "cuda")
    per_epoch = len(persons) // (t.batch_size * world)
    total = t.epochs * per_epoch
    it, elapsed = 0, 0.0
    if resuming:
        blob = _read_same_model(last, cfg, "use a new --out directory")
        model.load_state_dict(blob["state_dict"])
        opt.load_state_dict(blob["train_state"]["optimizer"])
        it, elapsed = blob["train_state"]["iteration"], blob["train_state"]["seconds"]
        log.info("resuming from %s at iteration %d", last, it)
    train_model = torch.nn.parallel.DistributedDataParallel(model) if world > 1 else model
    meta = {"run_config": config_to_dict(cfg), "persons": len(persons),
            "tokenizer": str(t.tokenizer or DEFAULT_TOKENIZER), "init": str(init) if init else None}

    def checkpoint(step: int) -> None:
        if rank == 0:
            state = {"optimizer": opt.state_dict(), "iteration": step, "seconds": elapsed}
            save_checkpoint(last, "classifier", _ckpt_config(model), model, meta={**meta, "iteration": step},
                            train_state=state)

    t0, stats = time.time() - elapsed, {}
    model.train()
    log_file = open(out / "train_log.jsonl", "a") if rank == 0 else None
    bar = progress(total=total, desc="train", unit="it")
    bar.update(it)
    while it < total:
        epoch, start = divmod(it, per_epoch)
        dataset.epoch = epoch
        sampler = _EpochSampler(len(persons), t.batch_size, t.seed, epoch, start, rank, world)
        loader = torch.utils.data.DataLoader(dataset, t.batch_size, sampler=sampler, num_workers=t.workers,
                                             drop_last=True, pin_memory=device.type == "cuda",
                                             worker_init_fn=_quiet_worker)
        for batch in loader:
            batch = {k: v.to(device, non_blocking=True) for k, v in batch.items()}
            batch["image"] = batch["image"].contiguous(memory_format=torch.channels_last)
            for g in opt.param_groups:
                g["lr"] = warmup_cosine_lr(it, total, t.lr, t.warmup_iters, t.min_lr_ratio)
            with torch.autocast(device.type, dtype=torch.float16, enabled=device.type == "cuda"):
                res = classifier_loss(model, train_model(batch["image"]), batch, t)
            opt.zero_grad(set_to_none=True)
            scaler.scale(res["loss"]).backward()
            scaler.step(opt)
            scaler.update()
            it += 1
            bar.update()
            elapsed = time.time() - t0
            if log_file and (it % 50 == 0 or it == total):
                stats = {"iteration": it, "epoch": it / per_epoch, "lr": opt.param_groups[0]["lr"],
                         **{k: v.item() for k, v in res.items()}, "minutes": elapsed / 60}
                log_file.write(json.dumps(stats) + "\n")
                log_file.flush()
                log.info("it %d/%d loss %.3f ce %.3f l1 %.2fpx top1 %.3f heatmap err %.1fpx", it, total,
                         stats["loss"], stats["ce"], stats["l1"], stats["token_top1"], stats.get("heatmap_err", -1))
            if it % t.checkpoint_every == 0:
                checkpoint(it)
            if (t.max_minutes and elapsed / 60 >= t.max_minutes) or it >= total:
                break
        if t.max_minutes and elapsed / 60 >= t.max_minutes and it < total:
            bar.close()
            checkpoint(it)
            if log_file:
                log_file.close()
            log.info("stopping at the %.0f-minute limit; rerun the same command to resume", t.max_minutes)
            return {"checkpoint": str(last), "finished": False, "iterations": it, **stats}
    bar.close()
    checkpoint(total)
    final = out / "model.pt"
    if rank == 0:
        save_checkpoint(final, "classifier", _ckpt_config(model), model.eval(),
                        meta={**meta, "iterations": total, "minutes": elapsed / 60})
    if log_file:
        log_file.close()
    return {"checkpoint": str(final), "finished": True, "epochs": t.epochs, "iterations": total,
            "final_loss": stats.get("loss"), "final_l1_px": stats.get("l1"), "minutes": elapsed / 60}


# Model fields that change inference only (no weight, no loss): a run may resume or start from any value of them.
INFERENCE_ONLY = ("refine", "refine_sigma")


def _read_same_model(path: str | Path, cfg: RunConfig, fix: str, may_differ: tuple[str, ...] = ()) -> dict:
    """The classifier checkpoint at `path`, which must hold the model config of this run except the fields in
    `may_differ` and INFERENCE_ONLY (else one-line error). Fields the checkpoint predates take their defaults."""
    blob = read_checkpoint(path, "classifier")
    theirs = config_to_dict(config_from_dict(ModelConfig, blob["config"]["model"]))
    ours = config_to_dict(cfg.model)
    for key in (*may_differ, *INFERENCE_ONLY):
        theirs.pop(key, None)
        ours.pop(key, None)
    if theirs != ours:
        raise InputFileError(f"'{path}' was trained with another model config than this run: {fix}")
    return blob


def _fit_input_size(blob: dict, cfg: ModelConfig) -> dict:
    """A checkpoint trained at another input size, its head's first Linear re-gridded to `cfg.input_size`."""
    theirs = tuple(blob["config"]["model"]["input_size"])
    if theirs == tuple(cfg.input_size):
        return blob
    key = "head.mixer_trans.0.weight"
    state = dict(blob["state_dict"])
    state[key] = resize_token_projection(state[key].float(), cfg.head_channels, theirs, cfg.input_size)
    log.info("input size %dx%d -> %dx%d: the head's token projection re-gridded", *theirs, *cfg.input_size)
    return {**blob, "state_dict": state}


def _ckpt_config(model: PoseClassifier):
    from edge_pct.models.factory import ClassifierCheckpointConfig

    return ClassifierCheckpointConfig(model=model.cfg, tokenizer=model.tokenizer.cfg)
