"""Top-down evaluation of any pose estimator on ground-truth boxes: COCO OKS-AP and LSP PCK@0.2.

An estimator maps person crops (N, H, W, 3) uint8 BGR to {"joints": (N, 17, 2) crop px, "confidence": (N, 17) per
joint in [0, 1]} and declares its `input_size`; the PCT model (any edge_pct.engines backend: torch, ONNX Runtime,
OpenVINO, TensorRT) and the MediaPipe peer are scored on the same crop regions (each at its own input resolution) by
the same code.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edge_pct.core.errors import InputFileError
from edge_pct.core.geometry import apply_affine, invert_affine, warp_crops
from edge_pct.core.report import progress
from edge_pct.data.occlusion import inside_rect, paste_rect, sample_rect
from edge_pct.data.persons import PersonSet
from edge_pct.data.transforms import PoseAugment, sample_crop_params

# LSP PCK normalisation: torso = distance between the left shoulder and the right hip (COCO indices).
TORSO = (5, 12)
LSP_BODY = tuple(range(5, 17))
# Flip test: the two passes are averaged where they agree within this share of the crop height (2 heatmap cells
# at 256 px); chosen on 800 LSP training persons (benchmarks/flip_sweep.py).
FLIP_AGREE = 1 / 16


@dataclass
class Estimator:
    """A named pose estimator on crops; `run(crops) -> {"joints", "confidence"}`."""

    name: str
    input_size: tuple[int, int]
    run: Callable[[np.ndarray], dict[str, np.ndarray]]
    backend: str = "torch"
    precision: str = "fp32"
    close: Callable[[], None] = lambda: None  # releases native resources (MediaPipe); call when done


def torch_estimator(model, flip: bool = False, batch: int = 32, flip_agree: float = FLIP_AGREE) -> Estimator:
    """Wrap a PoseClassifier; `flip` also runs the mirrored crop (docs/method.md §3 step 4; see `fuse_flip`)."""
    from edge_pct.engines.runtime import TorchBackend

    return _backend_estimator(TorchBackend(model, batch=batch), flip, batch, flip_agree)


def onnx_estimator(path: str | Path, flip: bool = False, warn_slow_graph: bool = True) -> Estimator:
    """Wrap an `edge-pct export` ONNX model (ONNX Runtime, the fastest available provider); `flip` as above."""
    from edge_pct.engines.runtime import OnnxRuntimeBackend

    return _backend_estimator(OnnxRuntimeBackend(path, warn_slow_graph=warn_slow_graph), flip)


def backend_estimator(model: str | Path, backend: str, flip: bool = False, threads: int | None = None) -> Estimator:
    """`model` (.pt, .onnx, .engine or a calibrate folder) on pose backend `backend` (a name of
    `edge_pct.engines.runtime.BACKENDS`, e.g. "openvino-bf16"), opened as the pipeline opens it; `flip` as above."""
    from edge_pct.engines.model_files import open_backend

    return _backend_estimator(open_backend(model, backend, **({"threads": threads} if threads else {})), flip)


def _backend_estimator(backend, flip: bool, batch: int = 32, flip_agree: float = FLIP_AGREE) -> Estimator:
    """Any PoseBackend on BGR uint8 crops (N, H, W, 3) -> {"joints" (N, 17, 2) crop px, "confidence" (N, 17)}."""
    from edge_pct.core.geometry import to_model_input
    from edge_pct.data.transforms import flip_joints

    w, h = backend.input_size

    def run(crops: np.ndarray) -> dict[str, np.ndarray]:
        joints, scores = [], []
        for s in range(0, len(crops), batch):
            x = to_model_input(crops[s:s + batch])
            out = backend(x)
            j, c = out["joints"], out["confidence"]
            if flip:
                out_f = backend(np.ascontiguousarray(x[..., ::-1]))
                jc = flip_joints(np.concatenate([out_f["joints"], out_f["confidence"][..., None]], -1), w)
                j, c = fuse_flip(j, c, jc[..., :2], jc[..., 2], flip_agree * h)
            joints.append(j)
            scores.append(c)
        return {"joints": np.concatenate(joints), "confidence": np.concatenate(scores)}

    return Estimator("pct", backend.input_size, run, backend=backend.name, precision=backend.precision)


def fuse_flip(joints: np.ndarray, conf: np.ndarray, joints_flip: np.ndarray, conf_flip: np.ndarray,
              agree_px: float) -> tuple[np.ndarray, np.ndarray]:
    """Fuse the plain and the mirrored pass (both (N, 17, 2) crop px in the plain frame, confidences (N, 17)).

    Where the two joints agree within `agree_px` they are averaged (the usual flip test); where they do not, one
    pass has locked onto something else (the heatmap refinement follows a sharp peak: the twin limb, a neighbour)
    and averaging would land between the two, so the pass with the higher per-joint confidence is kept. The fused
    confidence is the higher of the two.
    """
    agree = np.linalg.norm(joints - joints_flip, axis=-1) < agree_px
    pick = np.where((conf_flip > conf)[..., None], joints_flip, joints)
    return np.where(agree[..., None], (joints + joints_flip) / 2, pick), np.maximum(conf, conf_flip)


def mediapipe_estimator(task_path: str | Path, input_size: tuple[int, int] = (192, 256)) -> Estimator:
    """MediaPipe PoseLandmarker on the same crop regions (the peer)."""
    from edge_pct.peers.mediapipe import MediaPipePose

    peer = MediaPipePose(task_path, num_poses=1, mode="image")

    def run(crops: np.ndarray) -> dict[str, np.ndarray]:
        res = peer.estimate_crops(crops)
        return {"joints": res["joints"], "confidence": res["confidence"]}

    # Closed by the caller: left to interpreter teardown, mediapipe's own __del__ finds its dispatcher gone and
    # prints a traceback at exit.
    return Estimator("mediapipe", input_size, run, backend="mediapipe", precision="fp16", close=peer.close)


def predict_persons(est: Estimator, persons: PersonSet, padding: float = 1.25,
                    occlusion: tuple[float, float] | None = None,
                    seed: int = 0) -> tuple[np.ndarray, np.ndarray, float, np.ndarray]:
    """Crop every person with its GT box, run the estimator, map joints back to the image.

    `occlusion` (lo, hi) first pastes one synthetic occluder over a uniform lo-hi share of each person's box
    (`edge_pct.data.occlusion`, seeded per person, so every estimator sees the same pixels).

    Returns joints (N, 17, 2) image px, scores (N, 17), milliseconds per person spent in the estimator, and
    occluded (N, 17) bool: the GT joints under the occluder.
    """
    import cv2

    params = sample_crop_params(persons.boxes, persons.keypoints, PoseAugment(), est.input_size[0] / est.input_size[1],
                                padding, np.random.default_rng(0))
    mats = params.affine(est.input_size)
    joints = np.zeros((len(persons), 17, 2), np.float32)
    scores = np.zeros((len(persons), 17), np.float32)
    occluded = np.zeros((len(persons), 17), bool)
    infer_s = 0.0
    by_image: dict[str, list[int]] = {}
    for i, p in enumerate(persons.paths):
        by_image.setdefault(p, []).append(i)
    for path, idx in progress(by_image.items(), total=len(by_image), desc="eval", unit="image"):
        image = cv2.imread(path)
        if image is None:
            raise InputFileError(f"Cannot read image '{path}': check --images / the dataset folder")
        if occlusion is None:
            crops = warp_crops(image, mats[idx], est.input_size)
        else:  # one occluded copy of the image per person, so no occluder covers a neighbour's crop by design
            crops = np.concatenate([_occluded_crop(image, persons, i, mats[i], est.input_size, occlusion, seed,
                                                   occluded) for i in idx])
        t0 = time.perf_counter()
        res = est.run(crops)
        infer_s += time.perf_counter() - t0
        broken = ~(np.isfinite(res["joints"]).all((1, 2)) & np.isfinite(res["confidence"]).all(1))
        if broken.any():  # NaN would count as a miss in PCK and as a perfect match in pycocotools
            raise InputFileError(f"Model '{est.name}' returned NaN/inf joints or scores for {int(broken.sum())} of "
                                 f"{len(crops)} crops of '{path}': its weights are broken (a diverged training run, "
                                 "a bad weight average); re-train or re-export it")
        joints[idx] = apply_affine(res["joints"], invert_affine(mats[idx]))
        scores[idx] = res["confidence"]
    return joints, scores, infer_s * 1e3 / max(1, len(persons)), occluded


def _occluded_crop(image: np.ndarray, persons: PersonSet, i: int, mat: np.ndarray, input_size: tuple[int, int],
                   occlusion: tuple[float, float], seed: int, occluded: np.ndarray) -> np.ndarray:
    """Crop (1, H, W, 3) of person i with an occluder over its box; marks occluded[i] in place."""
    rng = np.random.default_rng([seed, i])
    rect = sample_rect(rng, persons.boxes[i], rng.uniform(*occlusion))
    copy = image.copy()
    paste_rect(rng, copy, rect)
    occluded[i] = inside_rect(persons.keypoints[i, :, :2], rect) & (persons.keypoints[i, :, 2] > 0)
    return warp_crops(copy, mat[None], input_size)


def instance_scores(scores: np.ndarray, threshold: float = 0.2) -> np.ndarray:
    """Person score = mean of its joint scores above `threshold` (mmpose rescoring); (N, 17) -> (N,)."""
    above = scores > threshold
    return np.where(above.any(1), (scores * above).sum(1) / np.maximum(above.sum(1), 1), scores.mean(1))


def coco_keypoint_results(est: Estimator, persons: PersonSet,
                          occlusion: tuple[float, float] | None = None) -> tuple[list[dict], float]:
    """COCO keypoint results of `est` on the GT boxes of `persons` (keypoint score = per-joint confidence, person
    score = `instance_scores`), and ms per person. `occlusion`: see predict_persons."""
    from edge_pct.eval.coco import keypoint_results

    joints, scores, ms, _ = predict_persons(est, persons, occlusion=occlusion)
    return keypoint_results(persons.image_ids, joints, scores, instance_scores(scores)), ms


def evaluate_coco(est: Estimator, ann_path: str | Path, images_dir: str | Path,
                  occlusion: tuple[float, float] | None = None) -> dict:
    """COCO OKS-AP with GT boxes; keypoint score = per-joint confidence. `occlusion`: see predict_persons."""
    from edge_pct.data.topdown import load_coco_persons
    from edge_pct.eval.coco import oks_ap

    persons = load_coco_persons(ann_path, images_dir)
    results, ms = coco_keypoint_results(est, persons, occlusion)
    return {**oks_ap(ann_path, results), "persons": len(persons), "ms_per_person": ms, "backend": est.backend,
            "precision": est.precision, "model": est.name, "occlusion": list(occlusion) if occlusion else None}


def pck_hits(pred: np.ndarray, gt: np.ndarray, threshold: float = 0.2,
             joint_mask: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Per joint of the scored persons: hit (P, 12) and labeled (P, 12) bool over the LSP body joints (`pck`).

    pred (N, 17, 2), gt (N, 17, 3) image px; the P persons with both torso joints are scored, in order. A joint hits
    when it is labeled and within `threshold` torso lengths (left shoulder - right hip) of the truth. `joint_mask`
    (N, 17) bool scores only the joints it marks (e.g. those under an occluder).
    """
    torso = np.linalg.norm(gt[:, TORSO[0], :2] - gt[:, TORSO[1], :2], axis=-1)
    ok = (gt[:, TORSO[0], 2] > 0) & (gt[:, TORSO[1], 2] > 0) & (torso > 1)
    body = list(LSP_BODY)
    lab = (gt[ok][:, body, 2] > 0)
    if joint_mask is not None:
        lab &= joint_mask[ok][:, body]
    dist = np.linalg.norm(pred[ok][:, body] - gt[ok][:, body, :2], axis=-1) / torso[ok, None]
    return (dist <= threshold) & lab, lab


def pck(pred: np.ndarray, gt: np.ndarray, threshold: float = 0.2, joint_mask: np.ndarray | None = None) -> dict:
    """PCK@threshold over the labeled LSP body joints, normalised by the torso (see `pck_hits`): the share of
    labeled joints that hit, overall and per joint, and the number of persons scored."""
    hit, lab = pck_hits(pred, gt, threshold, joint_mask)
    per_joint = hit.sum(0) / np.maximum(lab.sum(0), 1)
    return {"pck": float(hit.sum() / max(1, lab.sum())), "persons": len(hit),
            "pck_per_joint": {int(j): float(v) for j, v in zip(LSP_BODY, per_joint, strict=True)}}


def evaluate_lsp(est: Estimator, lsp_root: str | Path, threshold: float = 0.2,
                 occlusion: tuple[float, float] | None = None) -> dict:
    """PCK@0.2 on the LSP-extended held-out slice im09001-im10000 (GT boxes from the labeled joints).

    With `occlusion` (see predict_persons) also pck_occluded / pck_unoccluded: the joints under / outside the
    occluder."""
    from edge_pct.data.lsp import load_lsp

    persons = load_lsp(lsp_root, "heldout")
    joints, _, ms, occluded = predict_persons(est, persons, occlusion=occlusion)
    res = {**pck(joints, persons.keypoints, threshold), "threshold": threshold, "ms_per_person": ms,
           "backend": est.backend, "precision": est.precision, "model": est.name,
           "occlusion": list(occlusion) if occlusion else None}
    if occlusion:
        res["pck_occluded"] = pck(joints, persons.keypoints, threshold, occluded)["pck"]
        res["pck_unoccluded"] = pck(joints, persons.keypoints, threshold, ~occluded)["pck"]
        res["occluded_joint_share"] = float(occluded.sum() / max((persons.keypoints[..., 2] > 0).sum(), 1))
    return res
