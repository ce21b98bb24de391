"""`edge-pct tokens` end to end: measure the tokenizer's codebook usage and token locality on real COCO poses, draw the
pictures, write them and `locality.json` into one folder (every file atomically, all or none).

Files: `token_map.png` (one pose, its codes, which token governs each joint), `swap_token<T>.png` (one token on other
codes, overlaid), `swaps_all.png` (every token's swaps on that pose), `atlas.png` (the most used codes as changes to
the mean pose), `territory.png` (per-token move rate per joint) and `locality.json` (every figure).
"""

from __future__ import annotations

import json
import logging
import os
import platform
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from edge_pct.core.errors import ConfigError, InputFileError
from edge_pct.core.files import write_atomic
from edge_pct.core.keypoints import COCO17_NAMES
from edge_pct.core.package import DEFAULT_MODEL, DEFAULT_TOKENIZER
from edge_pct.tokens import pictures
from edge_pct.tokens.explore import TokenExplorer
from edge_pct.tokens.locality import DEFAULT_THRESHOLD, measure_locality
from edge_pct.tokens.poses import CropPoses, default_coco_ann, model_pose, read_frame, real_poses

log = logging.getLogger(__name__)

ATLAS_CODES = 24
SWAPS_PER_PANEL = 4  # codes per token in the every-token picture


@dataclass(frozen=True)
class TokenSurveyOptions:
    """What `edge-pct tokens` measures and draws (the CLI flags)."""

    checkpoint: str | Path = DEFAULT_TOKENIZER
    coco_ann: str | Path | None = None  # None: default_coco_ann()
    image: str | Path | None = None  # the token-map pose from a picture through the image model
    video: str | Path | None = None  # ... or from a frame of a video
    frame: int = 0
    model: str | Path = DEFAULT_MODEL
    person: int | None = None  # index among the measured COCO persons (None: the largest fully labeled one)
    token: int | None = None  # the token of swap_token<T>.png (None: the most local one)
    swaps: int = 8  # codes in swap_token<T>.png
    k: int = 4  # swaps per token and pose in the measurement
    min_joints: int = 10
    max_poses: int = 0  # 0: every person with min_joints
    threshold: float = DEFAULT_THRESHOLD
    ae_steps: int = 0  # > 0: also train and measure the plain autoencoder baseline
    ae_poses: str | Path | None = None  # its training poses (None: the COCO train npz beside the val json)
    seed: int = 0


def check_options(o: TokenSurveyOptions) -> None:
    """ConfigError for flag values that cannot work, before anything loads."""
    if o.image is not None and o.video is not None:
        raise ConfigError("--image and --video both given: pass one of them (or neither for a COCO person)")
    for name, value, low in (("--swaps", o.swaps, 1), ("--k", o.k, 1), ("--min-joints", o.min_joints, 1),
                             ("--frame", o.frame, 0), ("--max-poses", o.max_poses, 0), ("--ae-steps", o.ae_steps, 0)):
        if value < low:
            raise ConfigError(f"{name} {value} is out of range: use {low} or more")
    if not 0 < o.threshold < 1:
        raise ConfigError(f"--threshold {o.threshold} is out of range: use a share of the box size in (0, 1), "
                          "e.g. 0.05")


@torch.no_grad()
def _encode_all(explorer: TokenExplorer, poses: CropPoses, batch: int = 4096) -> np.ndarray:
    return np.concatenate([explorer.encode(poses.joints[s:s + batch], poses.labeled[s:s + batch])
                           for s in range(0, len(poses), batch)])


def _recon_error(decoded: np.ndarray, poses: CropPoses) -> dict:
    err = np.linalg.norm(decoded - poses.joints, axis=-1)
    return {"mean_err_px": round(float(err[poses.labeled].mean()), 3),
            "mean_err_box": round(float((err / poses.box_size[:, None])[poses.labeled].mean()), 4)}


def usage_figures(codes: np.ndarray, size: int) -> dict:
    """Codebook usage of token codes (N, M): perplexity, codes used, dead codes, distinct codes per token."""
    from edge_pct.models.codebook import usage_stats

    stats = usage_stats(torch.from_numpy(codes), size)
    per_token = [len(np.unique(codes[:, m])) for m in range(codes.shape[1])]
    return {"persons": int(len(codes)), "codebook_size": size, "perplexity": round(stats["perplexity"], 1),
            "codes_used": stats["codes_used"], "dead_codes": size - stats["codes_used"],
            "median_codes_per_token": float(np.median(per_token))}


def _pick_person(poses: CropPoses, person: int | None) -> int:
    if person is not None:
        if not 0 <= person < len(poses):
            raise ConfigError(f"--person {person} is out of range: the measured set has {len(poses)} persons "
                              f"(0..{len(poses) - 1})")
        return person
    full = poses.labeled.all(1)
    return int(np.argmax(np.where(full, poses.box_size, -1.0)))


def _pick_token(per_token: list[dict], token: int | None) -> int:
    if token is not None:
        return token
    moving = [t for t in per_token if t["median_joints_moved"] >= 1] or per_token
    return max(moving, key=lambda t: t["limb_share"])["token"]


def _top_codes(codes: np.ndarray, token: int, exclude: int, n: int) -> np.ndarray:
    counts = np.bincount(codes[:, token], minlength=int(codes.max()) + 1)
    counts[exclude] = 0
    order = np.argsort(-counts, kind="stable")
    return order[:n][counts[order[:n]] > 0]


def _baseline(o: TokenSurveyOptions, ann: Path, cfg, poses: CropPoses) -> dict:
    from edge_pct.data.coco import load_poses
    from edge_pct.tokens.baseline import train_plain_autoencoder

    train = Path(o.ae_poses) if o.ae_poses else ann.parent / "person_keypoints_train2017.npz"
    if not train.is_file():
        raise InputFileError(f"Baseline training poses '{train}' not found: pass --ae-poses (a poses .npz or COCO "
                             "json), or leave --ae-steps at 0")
    model, stats = train_plain_autoencoder(load_poses(train), cfg, steps=o.ae_steps, seed=o.seed)
    with torch.no_grad():
        feats = model.encode_features(torch.from_numpy(poses.joints), torch.from_numpy(poses.labeled))
        recon = _recon_error(model.decode_features(feats).numpy(), poses)
    summary, _ = measure_locality(model.decode_features, feats, poses.box_size, o.k, o.threshold, o.seed)
    summary.pop("per_token")
    return {"training": {**stats, "poses": str(train)}, "reconstruction": recon, **summary}


def _token_pose(o: TokenSurveyOptions, poses: CropPoses, input_size: tuple[int, int]) -> tuple[np.ndarray, np.ndarray,
                                                                                               float, str]:
    """(joints (17, 2), labeled (17,), box size, description) of the token-map pose."""
    if o.image is not None or o.video is not None:
        src = o.image if o.image is not None else o.video
        pose = model_pose(read_frame(src, o.frame if o.video is not None else 0), input_size, o.model)
        where = f"{Path(src).name}" + (f" frame {o.frame}" if o.video is not None else "") + " via the image model"
        return pose.joints[0], pose.labeled[0], float(pose.box_size[0]), where
    i = _pick_person(poses, o.person)
    return poses.joints[i], poses.labeled[i], float(poses.box_size[i]), f"COCO val image {poses.image_ids[i]}"


def survey_tokens(out_dir: str | Path, o: TokenSurveyOptions) -> dict:
    """Measure, draw and write everything of `edge-pct tokens` into `out_dir`; returns the figures (also in
    `locality.json`) with the written file paths."""
    from edge_pct.models.weights import load_tokenizer

    check_options(o)
    t0 = time.perf_counter()
    out = Path(out_dir)
    try:
        out.mkdir(parents=True, exist_ok=True)  # a bad --out fails before the measurement, not after it
    except OSError as e:
        raise InputFileError(f"Cannot create --out '{out}' ({e.strerror or e}): pick a writable folder") from e
    ann = Path(o.coco_ann) if o.coco_ann else default_coco_ann()
    tokenizer = load_tokenizer(o.checkpoint)
    explorer = TokenExplorer(tokenizer)
    cfg, size = tokenizer.cfg, explorer.input_size
    if o.token is not None and not 0 <= o.token < cfg.num_tokens:
        raise ConfigError(f"--token {o.token} is out of range: the tokenizer has tokens 0..{cfg.num_tokens - 1}")
    everyone = real_poses(ann, size, min_joints=1)
    codes_all = _encode_all(explorer, everyone)
    keep = np.nonzero(everyone.labeled.sum(1) >= o.min_joints)[0]
    if o.max_poses and len(keep) > o.max_poses:
        keep = np.sort(np.random.default_rng(o.seed).choice(keep, o.max_poses, replace=False))
    if len(keep) < 2:
        raise InputFileError(f"'{ann}' has {len(keep)} persons with >= {o.min_joints} labeled joints: lower "
                             "--min-joints or pass a larger annotation file")
    poses = CropPoses(*(a[keep] for a in (everyone.joints, everyone.labeled, everyone.box_size, everyone.image_ids)))
    codes = codes_all[keep]
    pose = _token_pose(o, poses, size)  # before the long part: a bad --image / --person fails at once
    feats = tokenizer.codebook.lookup(torch.from_numpy(codes))
    log.info("measuring locality on %d poses x %d tokens x %d swaps", len(poses), cfg.num_tokens, o.k)
    locality, _ = measure_locality(tokenizer.decode_features, feats, poses.box_size, o.k, o.threshold, o.seed, codes)
    result = {"tokenizer": str(o.checkpoint), "coco_ann": str(ann), "usage": usage_figures(codes_all,
                                                                                            cfg.codebook_size),
              "reconstruction": _recon_error(explorer.decode(codes), poses), "locality": locality}
    if o.ae_steps:
        result["plain_autoencoder"] = _baseline(o, ann, cfg, poses)
    files = _pictures(o, explorer, poses, codes, locality, pose)
    result["machine"] = {"cpu": platform.processor() or platform.machine(), "cores": os.cpu_count(),
                         "torch": torch.__version__, "seconds": round(time.perf_counter() - t0, 1)}
    try:
        result["files"] = [str(out / name) for name in [*files, "locality.json"]]
        write_atomic([(out / name, data) for name, data in files.items()]
                     + [(out / "locality.json", (json.dumps(result, indent=2) + "\n").encode())])
    except OSError as e:
        raise InputFileError(f"Cannot write into --out '{out}' ({e.strerror or e}): pick a writable folder") from e
    return result


def _pictures(o: TokenSurveyOptions, explorer: TokenExplorer, poses: CropPoses, codes: np.ndarray,
              locality: dict, pose: tuple[np.ndarray, np.ndarray, float, str]) -> dict[str, bytes]:
    """PNG bytes by file name; `pose` is the token-map pose of `_token_pose`."""
    size, m = explorer.input_size, explorer.num_tokens
    joints, labeled, box, where = pose
    own = explorer.encode(joints, labeled)
    decoded = explorer.decode(own)
    governing = explorer.governing(own)
    files = {"token_map.png": pictures.encode_png(pictures.token_map_picture(decoded, own, governing, size, where))}

    token = _pick_token(locality["per_token"], o.token)
    alts = _top_codes(codes, token, int(own[token]), o.swaps)
    swapped = explorer.swaps(own, token, alts)
    mean_shift = np.linalg.norm(swapped - decoded, axis=-1).mean(0)
    moved = [n for n, s in zip(COCO17_NAMES, mean_shift, strict=True) if s > o.threshold * box]
    files[f"swap_token{token}.png"] = pictures.encode_png(pictures.swap_picture(
        decoded, swapped, token, int(own[token]), alts.tolist(), moved, size, m, o.threshold))

    grid = [explorer.swaps(own, t, _top_codes(codes, t, int(own[t]), SWAPS_PER_PANEL)) for t in range(m)]
    labels = [t["limb"] for t in locality["per_token"]]
    files["swaps_all.png"] = pictures.encode_png(pictures.swap_grid_picture(decoded, grid, labels, size,
                                                                            SWAPS_PER_PANEL))

    files["atlas.png"] = pictures.encode_png(_atlas(explorer, poses, codes))
    rate = np.array([list(t["move_rate"].values()) for t in locality["per_token"]], np.float32)
    files["territory.png"] = pictures.encode_png(pictures.territory_picture(rate, labels))
    return files


def code_effects(explorer: TokenExplorer, poses: CropPoses, codes: np.ndarray, top: np.ndarray, slots: list[int],
                 per_code: int = 256) -> np.ndarray:
    """(len(top), 17, 2) the average joint change, in box sizes, when code top[i] replaces the code of token slots[i]
    in up to `per_code` real poses whose token has another code."""
    base = explorer.decode(codes)
    out = np.zeros((len(top), base.shape[1], 2), np.float32)
    for i, (c, t) in enumerate(zip(top, slots, strict=True)):
        sel = np.nonzero(codes[:, t] != c)[0][:per_code]
        swapped = codes[sel].copy()
        swapped[:, t] = c
        out[i] = ((explorer.decode(swapped) - base[sel]) / poses.box_size[sel, None, None]).mean(0)
    return out


def _atlas(explorer: TokenExplorer, poses: CropPoses, codes: np.ndarray) -> np.ndarray:
    m = explorer.num_tokens
    full = poses.labeled.all(1)
    mean_pose = poses.joints[full].mean(0) if full.any() else poses.joints.mean(0)
    mean_box = float(np.median(poses.box_size[full] if full.any() else poses.box_size))
    counts = np.bincount(codes.ravel(), minlength=explorer.codebook_size)
    top = np.argsort(-counts, kind="stable")[:ATLAS_CODES]
    slots = [int(np.bincount(np.nonzero(codes == c)[1], minlength=m).argmax()) for c in top]
    changed = mean_pose + code_effects(explorer, poses, codes, top, slots) * mean_box
    entries = [(int(c), t, int(counts[c])) for c, t in zip(top, slots, strict=True)]
    return pictures.atlas_picture(mean_pose, changed, entries, explorer.input_size, m, mean_box)


def summary_rows(result: dict) -> list[tuple[str, object]]:
    """The table `edge-pct tokens` prints: usage, locality beside its references, the files."""
    u, loc = result["usage"], result["locality"]
    rows: list[tuple[str, object]] = [
        ("persons (usage)", u["persons"]), ("perplexity", u["perplexity"]),
        ("mean error (box)", result["reconstruction"]["mean_err_box"]),
        ("codes used / dead", f"{u['codes_used']} / {u['dead_codes']} of {u['codebook_size']}"),
        ("poses x tokens x swaps", f"{loc['poses']} x {loc['tokens']} x {loc['swaps_per_token']}"),
        ("median joints moved / swap", loc["median_joints_moved"]),
        ("mean joints moved / swap", loc["mean_joints_moved"]),
        ("swaps moving no joint", loc["share_moving_none"]),
        ("effective swaps within one limb", loc["share_within_one_limb"]),
        ("  same, joints picked at random", loc["chance_within_one_limb"]),
        ("all tokens redrawn: median moved", loc["all_tokens_redrawn"]["median_joints_moved"]),
    ]
    ae = result.get("plain_autoencoder")
    if ae:
        rows += [("plain AE: median joints moved", ae["median_joints_moved"]),
                 ("plain AE: mean joints moved", ae["mean_joints_moved"]),
                 ("plain AE: swaps moving no joint", ae["share_moving_none"]),
                 ("plain AE: within one limb", ae["share_within_one_limb"]),
                 ("  same, joints picked at random", ae["chance_within_one_limb"]),
                 ("plain AE: mean error (box)", ae["reconstruction"]["mean_err_box"])]
    return rows + [("pictures", ", ".join(Path(f).name for f in result["files"][:-1])),
                   ("figures", result["files"][-1])]
