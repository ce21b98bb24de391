"""Top-down person samples and the training dataset of augmented person crops.

A `PersonSet` lists persons as (image path, box, COCO-17 keypoints); the readers for LSP-extended and
COCO-format json fill it. `CropDataset` cuts augmented crops through the same `sample_crop_params` +
`warp_crops` path as evaluation and streaming, and adds color jitter, sharpening and synthetic
occluders.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch

from edge_pct.core.errors import InputFileError
from edge_pct.core.geometry import to_model_input, warp_crops
from edge_pct.data.occlusion import inside_rect, paste_rect, sample_rect
from edge_pct.data.persons import PersonSet
from edge_pct.data.transforms import PoseAugment, crop_joints, sample_crop_params


def load_coco_persons(ann_path: str | Path, images_dir: str | Path) -> PersonSet:
    """Non-crowd persons with at least one labeled joint from a COCO json whose images are in `images_dir`."""
    from edge_pct.data.coco import load_coco_json

    ann_path, images_dir = Path(ann_path), Path(images_dir)
    if not images_dir.is_dir():
        raise InputFileError(f"Image folder '{images_dir}' not found: pass the folder holding the json's images")
    poses = load_coco_json(ann_path)
    files = {im["id"]: im["file_name"] for im in json.loads(ann_path.read_text())["images"]}
    paths = [str(images_dir / files[i]) for i in poses.image_ids]
    return PersonSet(poses.keypoints, poses.boxes, poses.image_ids, poses.areas, paths, poses.ann_ids)


def _color_jitter(rng: np.random.Generator, crop: np.ndarray, prob: float) -> np.ndarray:
    """Color jitter: brightness, contrast and saturation factors in [0.6, 1.4]; (H, W, 3) uint8 BGR."""
    if rng.random() >= prob:
        return crop
    img = crop.astype(np.float32)
    b, c, s = rng.uniform(0.6, 1.4, 3)
    gray = img.mean(-1, keepdims=True)
    img = gray + (img - gray) * s
    img = (img - img.mean()) * c + img.mean() * b
    return np.clip(img, 0, 255).astype(np.uint8)


def _sharpen(rng: np.random.Generator, crop: np.ndarray, prob: float) -> np.ndarray:
    """Unsharp mask, crop + a * (crop - blur(crop)), a ~ U(0.3, 1.5), Gaussian sigma ~ U(0.7, 1.5) px;
    (H, W, 3) uint8. LSP persons are upsampled about 1.5x into the crop, COCO persons 1.2x (median), so LSP
    crops are softer than the everyday scenes the model meets: this shows it crisper edges. At prob 0 it draws
    nothing from `rng`, so runs without it keep the augmentation stream of the runs before it existed."""
    if prob <= 0 or rng.random() >= prob:
        return crop
    import cv2

    amount, sigma = rng.uniform(0.3, 1.5), rng.uniform(0.7, 1.5)
    img = crop.astype(np.float32)
    img += amount * (img - cv2.GaussianBlur(img, (0, 0), sigma))
    return np.clip(img, 0, 255).astype(np.uint8)


def _add_occluders(rng: np.random.Generator, crop: np.ndarray, joints: np.ndarray, visible: np.ndarray,
                   prob: float) -> None:
    """Paste 1-2 random rectangles (noise or flat color) over 5-25% of the crop each, in place; joints under
    them become not visible (their position stays supervised: the decoder completes them)."""
    if rng.random() >= prob:
        return
    h, w = crop.shape[:2]
    for _ in range(rng.integers(1, 3)):
        rect = sample_rect(rng, np.array([0, 0, w, h]), rng.uniform(0.05, 0.25))
        paste_rect(rng, crop, rect)
        visible[inside_rect(joints[:, :2], rect)] = 0.0


class CropDataset(torch.utils.data.Dataset):
    """Augmented person crops. Item: image (3, H, W) float32 RGB 0-255, joints (17, 2) crop px, labeled (17,)
    bool (position supervised), visible (17,) float32 (confidence target: labeled visible, inside the crop and
    not under an occluder)."""

    def __init__(self, persons: PersonSet, input_size: tuple[int, int], padding: float, aug: PoseAugment,
                 color_prob: float = 0.0, occlusion_prob: float = 0.0, seed: int = 0,
                 sharpen_prob: float = 0.0) -> None:
        self.persons, self.input_size, self.padding, self.aug = persons, input_size, padding, aug
        self.color_prob, self.occlusion_prob, self.sharpen_prob = color_prob, occlusion_prob, sharpen_prob
        self.seed, self.epoch = seed, 0

    def __len__(self) -> int:
        return len(self.persons)

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        import cv2

        rng = np.random.default_rng([self.seed, self.epoch, i])
        p = self.persons
        image = cv2.imread(p.paths[i])
        if image is None:
            raise InputFileError(f"Cannot read image '{p.paths[i]}': the file is missing or corrupt")
        kpts = p.keypoints[i:i + 1]
        params = sample_crop_params(p.boxes[i:i + 1], kpts, self.aug, self.input_size[0] / self.input_size[1],
                                    self.padding, rng)
        crop = warp_crops(image, params.affine(self.input_size), self.input_size)[0]
        if params.flip[0]:
            crop = crop[:, ::-1].copy()
        joints = crop_joints(kpts, params, self.input_size)[0]
        w, h = self.input_size
        inside = (joints[:, 0] >= 0) & (joints[:, 0] < w) & (joints[:, 1] >= 0) & (joints[:, 1] < h)
        visible = ((joints[:, 2] == 2) & inside).astype(np.float32)
        crop = _color_jitter(rng, crop, self.color_prob)
        crop = _sharpen(rng, crop, self.sharpen_prob)
        _add_occluders(rng, crop, joints, visible, self.occlusion_prob)
        return {"image": torch.from_numpy(to_model_input(crop[None])[0]), "joints": torch.from_numpy(joints[:, :2]),
                "labeled": torch.from_numpy(joints[:, 2] > 0), "visible": torch.from_numpy(visible)}
