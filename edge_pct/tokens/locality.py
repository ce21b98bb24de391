"""Locality of the tokens, measured: what one token's code changes in the decoded pose, over many real poses.

A *swap* gives token m of a pose the code that token m has in another real pose (so the new code is one token m
really takes, drawn as often as it takes it), decodes, and compares with the unswapped decoding. A joint *moves*
when it shifts by more than `threshold` (default 5%) of the person's box size (the longer side of the GT box).
Per swap: how many joints move and which; per token: its *territory* (the joints it moves most often); overall:
the median number of joints moved per swap and the share of (effective) swaps whose moved joints all lie in one
limb. The same operation runs on any model given as token features + a decoder, so a plain autoencoder's
continuous token vectors are measured exactly like codebook rows. Two references need no model: the chance that
the same number of joints, picked at random, lies in one limb, and re-drawing *all* tokens at once.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from math import comb

import numpy as np
import torch

from edge_pct.core.keypoints import COCO17_NAMES, NUM_JOINTS

# Limbs of the COCO-17 skeleton: a shoulder belongs to its arm, a hip to its leg.
LIMBS: dict[str, tuple[int, ...]] = {
    "head": (0, 1, 2, 3, 4),
    "left arm": (5, 7, 9),
    "right arm": (6, 8, 10),
    "left leg": (11, 13, 15),
    "right leg": (12, 14, 16),
}
LIMB_NAMES: tuple[str, ...] = tuple(LIMBS)
JOINT_LIMB: np.ndarray = np.array([next(i for i, js in enumerate(LIMBS.values()) if j in js)
                                   for j in range(NUM_JOINTS)])  # (17,) index into LIMB_NAMES
DEFAULT_THRESHOLD = 0.05  # a joint moves when it shifts by more than 5% of the box size

# token features (B, M, D) -> joints (B, J, 2) crop px (a tokenizer's decode_features)
Decoder = Callable[[torch.Tensor], torch.Tensor]


def pick_donors(n: int, m: int, k: int, rng: np.random.Generator, codes: np.ndarray | None = None,
                tries: int = 16) -> np.ndarray:
    """Donor poses (n, m, k) int: for each pose, token and swap, another pose whose token m is taken.

    With `codes` (n, m) the donor's code must differ from the pose's own (a swap that changes nothing is no swap);
    -1 where `tries` draws found none (a token that takes a single code).
    """
    donors = rng.integers(0, n - 1, (n, m, k))
    donors += donors >= np.arange(n)[:, None, None]  # never the pose itself
    if codes is None:
        return donors
    token = np.broadcast_to(np.arange(m)[None, :, None], donors.shape)
    own = np.broadcast_to(codes[:, :, None], donors.shape)
    for _ in range(tries):
        same = codes[donors, token] == own
        if not same.any():
            break
        redraw = rng.integers(0, n - 1, int(same.sum()))
        rows = np.nonzero(same)[0]
        donors[same] = redraw + (redraw >= rows)
    donors[codes[donors, token] == own] = -1
    return donors


@torch.no_grad()
def swap_shifts(decode: Decoder, features: torch.Tensor, box_size: np.ndarray, donors: np.ndarray,
                chunk: int = 4096) -> np.ndarray:
    """Joint shifts of every single-token swap, in box sizes.

    Args:
        decode: token features -> joints.
        features: (N, M, D) the poses' token features (codebook rows, or an autoencoder's vectors).
        box_size: (N,) each person's box size in crop px.
        donors: (N, M, K) from `pick_donors`; -1 skips that swap (its shifts are NaN).
        chunk: swapped poses decoded per call.

    Returns:
        (N, M, K, J) float32 shift of each joint.
    """
    n, m, k = donors.shape
    base = torch.cat([decode(features[s:s + chunk]) for s in range(0, n, chunk)])
    flat_pose, flat_token = (a.ravel() for a in np.indices((n, m, k))[:2])
    flat_donor = donors.ravel()
    out = np.full((n * m * k, base.shape[1]), np.nan, np.float32)
    valid = np.nonzero(flat_donor >= 0)[0]
    for s in range(0, len(valid), chunk):
        sel = valid[s:s + chunk]
        pose, token, donor = (torch.from_numpy(a[sel]) for a in (flat_pose, flat_token, flat_donor))
        feats = features[pose].clone()
        feats[torch.arange(len(sel)), token] = features[donor, token]
        shift = (decode(feats) - base[pose]).norm(dim=-1).numpy()
        out[sel] = shift / box_size[pose.numpy(), None]
    return out.reshape(n, m, k, -1)


@torch.no_grad()
def reassign_all_shifts(decode: Decoder, features: torch.Tensor, box_size: np.ndarray, k: int,
                        rng: np.random.Generator, chunk: int = 4096) -> np.ndarray:
    """Joint shifts (N, K, J), in box sizes, when *every* token takes its code from an independent random pose."""
    n, m = features.shape[:2]
    base = torch.cat([decode(features[s:s + chunk]) for s in range(0, n, chunk)])
    pose = np.repeat(np.arange(n), k)
    donors = torch.from_numpy(rng.integers(0, n, (n * k, m)))
    out = []
    for s in range(0, n * k, chunk):
        feats = features[donors[s:s + chunk], torch.arange(m)]
        p = pose[s:s + chunk]
        out.append((decode(feats) - base[p]).norm(dim=-1).numpy() / box_size[p, None])
    return np.concatenate(out).reshape(n, k, -1)


def chance_within_one_limb(n_moved: np.ndarray) -> float:
    """Mean, over swaps that move n >= 1 joints, of the chance that n joints picked at random lie in one limb."""
    sizes = [len(js) for js in LIMBS.values()]
    p = np.array([sum(comb(s, n) for s in sizes) / comb(NUM_JOINTS, n) if n else np.nan
                  for n in range(NUM_JOINTS + 1)])
    n_moved = n_moved[n_moved > 0]
    return float(p[n_moved].mean()) if len(n_moved) else float("nan")


def within_one_limb(moved: np.ndarray) -> np.ndarray:
    """(S,) bool: the moved joints of each swap (S, J) bool all lie in one limb (False when none moved)."""
    limbs = np.stack([moved[:, list(js)].any(1) for js in LIMBS.values()], 1)
    return limbs.sum(1) == 1


def summarize_shifts(shift: np.ndarray, threshold: float = DEFAULT_THRESHOLD) -> dict:
    """Headline figures of a set of swaps.

    Args:
        shift: (..., J) joint shifts in box sizes; rows with NaN (skipped swaps) are left out.

    Returns:
        swaps, median / mean joints moved, share of swaps moving none, share of effective swaps within one limb,
        the chance level of that share, the histogram of joints moved (J + 1 counts), per-joint move rate.
    """
    flat = shift.reshape(-1, shift.shape[-1])
    flat = flat[~np.isnan(flat).any(1)]
    moved = flat > threshold
    n_moved = moved.sum(1)
    effective = n_moved > 0
    return {
        "swaps": int(len(flat)),
        "median_joints_moved": float(np.median(n_moved)),
        "mean_joints_moved": float(n_moved.mean()),
        "share_moving_none": float((~effective).mean()),
        "share_within_one_limb": float(within_one_limb(moved[effective]).mean()) if effective.any() else float("nan"),
        "chance_within_one_limb": chance_within_one_limb(n_moved),
        "median_max_shift": float(np.median(flat.max(1))),
        "joints_moved_histogram": np.bincount(n_moved, minlength=shift.shape[-1] + 1).tolist(),
        "joint_move_rate": dict(zip(COCO17_NAMES, moved.mean(0).round(4).tolist(), strict=True)),
    }


@dataclass(frozen=True)
class Territory:
    """What one token moves: per-joint move rate (J,), its main limb and the share of its moves inside it."""

    token: int
    rate: np.ndarray
    limb: str
    limb_share: float
    median_joints_moved: float

    def joints(self, min_rate: float = 0.5, top: int = 3) -> list[str]:
        """Names of the joints moved in at least `min_rate` of the token's swaps, else its `top` most moved."""
        order = np.argsort(-self.rate)
        keep = [j for j in order if self.rate[j] >= min_rate] or [j for j in order[:top] if self.rate[j] > 0]
        return [COCO17_NAMES[j] for j in keep]


def token_territories(shift: np.ndarray, threshold: float = DEFAULT_THRESHOLD) -> list[Territory]:
    """One Territory per token from the swap shifts (N, M, K, J) of `swap_shifts`."""
    out = []
    for m in range(shift.shape[1]):
        flat = shift[:, m].reshape(-1, shift.shape[-1])
        flat = flat[~np.isnan(flat).any(1)]
        moved = flat > threshold
        rate = moved.mean(0) if len(flat) else np.zeros(shift.shape[-1])
        per_limb = np.array([rate[list(js)].sum() for js in LIMBS.values()])
        best = int(per_limb.argmax())
        share = float(per_limb[best] / per_limb.sum()) if per_limb.sum() > 0 else 0.0
        median = float(np.median(moved.sum(1))) if len(flat) else 0.0
        out.append(Territory(m, rate.astype(np.float32), LIMB_NAMES[best], share, median))
    return out


def governing_tokens(influence: np.ndarray) -> np.ndarray:
    """(J,) the token that moves each joint most, from an influence matrix (M, J) (move rate or mean shift)."""
    return np.asarray(influence).argmax(0)


def measure_locality(decode: Decoder, features: torch.Tensor, box_size: np.ndarray, k: int = 4,
                     threshold: float = DEFAULT_THRESHOLD, seed: int = 0,
                     codes: np.ndarray | None = None) -> tuple[dict, np.ndarray]:
    """Swap every token of every pose k times; the summary dict (with per-token territories, the all-tokens
    reference) and the raw shifts (N, M, K, J)."""
    rng = np.random.default_rng(seed)
    n, m = features.shape[:2]
    donors = pick_donors(n, m, k, rng, codes)
    shift = swap_shifts(decode, features, box_size, donors)
    territories = token_territories(shift, threshold)
    summary = summarize_shifts(shift, threshold)
    per_token = [{"token": t.token, "territory": t.joints(), "limb": t.limb, "limb_share": round(t.limb_share, 4),
                  "median_joints_moved": t.median_joints_moved,
                  "move_rate": dict(zip(COCO17_NAMES, t.rate.round(4).tolist(), strict=True))} for t in territories]
    everything = summarize_shifts(reassign_all_shifts(decode, features, box_size, k, rng), threshold)
    return {**summary, "poses": int(n), "tokens": int(m), "swaps_per_token": k, "threshold": threshold,
            "skipped_swaps": int((donors < 0).sum()),
            "tokens_mostly_in_one_limb": int(sum(t.limb_share >= 0.5 for t in territories)),
            "per_token": per_token,
            "all_tokens_redrawn": {key: everything[key] for key in
                                   ("median_joints_moved", "mean_joints_moved", "share_moving_none",
                                    "median_max_shift")}}, shift
