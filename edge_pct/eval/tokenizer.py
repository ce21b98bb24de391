"""Reconstruction AP of a pose tokenizer on COCO ground truth, with optional joint hiding (occlusion test).

Every labeled person of the annotation file is cropped with its GT box (padding 1.25, the training crop),
a random `mask_ratio` of its labeled joints is hidden from the encoder, the pose is encoded, hard-quantised
and decoded, mapped back to the image and scored by OKS-AP against the full ground truth (score 1 per
person, every joint). The same pipeline scores any other pose completer, such as the k-NN baseline.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from edge_pct.core.geometry import apply_affine, invert_affine
from edge_pct.core.keypoints import FLIP_INDEX
from edge_pct.data.coco import load_coco_json
from edge_pct.data.persons import PersonSet
from edge_pct.data.transforms import PoseAugment, crop_joints, flip_joints, sample_crop_params
from edge_pct.eval.coco import keypoint_results, oks_ap
from edge_pct.models.codebook import usage_stats

# (crop joints (N, 17, 2) px, visible (N, 17) bool, labeled (N, 17) bool) -> completed crop joints (N, 17, 2) px.
# `labeled` says which joints the ground truth has (k-NN needs a neighbour with those joints); not their positions.
Completer = Callable[[np.ndarray, np.ndarray, np.ndarray], np.ndarray]


def hide_joints(labeled: np.ndarray, ratio: float, seed: int = 0) -> np.ndarray:
    """Visible mask (N, J): each person keeps all but round(ratio * n_labeled) randomly chosen labeled joints."""
    rng = np.random.default_rng(seed)
    visible = labeled.copy()
    if ratio <= 0:
        return visible
    for i, row in enumerate(labeled):
        idx = np.nonzero(row)[0]
        n_hide = min(int(round(ratio * len(idx))), len(idx) - 1)  # keep at least one joint to anchor the pose
        if n_hide > 0:
            visible[i, rng.choice(idx, n_hide, replace=False)] = False
    return visible


def crop_poses(poses: PersonSet, input_size: tuple[int, int], padding: float = 1.25) -> tuple[np.ndarray, np.ndarray]:
    """GT-box crops: joints (N, 17, 3) crop px + visibility, and image->crop affines (N, 2, 3)."""
    params = sample_crop_params(poses.boxes, poses.keypoints, PoseAugment(), input_size[0] / input_size[1], padding,
                                np.random.default_rng(0))
    return crop_joints(poses.keypoints, params, input_size), params.affine(input_size)


def score_completer(completer: Completer, ann_path: str | Path, input_size: tuple[int, int], mask_ratio: float,
                    seed: int = 0, poses: PersonSet | None = None) -> dict:
    """OKS-AP of `completer` on every labeled person of `ann_path` with `mask_ratio` of joints hidden."""
    poses = poses if poses is not None else load_coco_json(ann_path)
    crop, mats = crop_poses(poses, input_size)
    labeled = crop[..., 2] > 0
    visible = hide_joints(labeled, mask_ratio, seed)
    pred_crop = completer(crop[..., :2], visible, labeled)
    pred = apply_affine(pred_crop, invert_affine(mats))
    results = keypoint_results(poses.image_ids, pred, np.ones(pred.shape[:2]), np.ones(len(pred)))
    err = np.linalg.norm(pred_crop - crop[..., :2], axis=-1)
    hidden = labeled & ~visible
    return {**oks_ap(ann_path, results), "persons": len(poses), "mask_ratio": mask_ratio,
            "mean_err_px": float(err[labeled].mean()),
            "hidden_err_px": float(err[hidden].mean()) if hidden.any() else 0.0}


def tokenizer_completer(model: torch.nn.Module, batch: int = 4096,
                        flip: bool = False) -> tuple[Completer, list[torch.Tensor]]:
    """Wrap a PoseTokenizer as a Completer; the second value collects the token indices it produced.

    `flip` also reconstructs the mirrored pose and averages (the flip test of PCT's tokenizer evaluation).
    """
    seen: list[torch.Tensor] = []
    width = model.cfg.input_size[0]

    @torch.no_grad()
    def reconstruct(joints: np.ndarray, visible: np.ndarray) -> np.ndarray:
        out = []
        for s in range(0, len(joints), batch):
            idx = model.encode(torch.from_numpy(joints[s:s + batch]).float(), torch.from_numpy(visible[s:s + batch]))
            seen.append(idx)
            out.append(model.decode(idx).numpy())
        return np.concatenate(out)

    def complete(joints: np.ndarray, visible: np.ndarray, labeled: np.ndarray | None = None) -> np.ndarray:
        pred = reconstruct(joints, visible)
        if flip:
            mirrored = reconstruct(flip_joints(joints, width), visible[:, list(FLIP_INDEX)])
            pred = (pred + flip_joints(mirrored, width)) / 2
        return pred

    return complete, seen


def evaluate_tokenizer_model(model: torch.nn.Module, ann_path: str | Path, mask_ratio: float = 0.0,
                             seed: int = 0, poses: PersonSet | None = None, flip: bool = False) -> dict:
    """Reconstruction AP + codebook usage of a tokenizer (model is put in eval mode)."""
    model.eval()
    complete, seen = tokenizer_completer(model, flip=flip)
    res = score_completer(complete, ann_path, model.cfg.input_size, mask_ratio, seed, poses)
    return {**res, "flip": flip, **usage_stats(torch.cat(seen), model.cfg.codebook_size)}
