"""Calibration data: person crops cut and preprocessed exactly as at inference, fed to ONNX Runtime's calibrators.

A crop comes from a box: with COCO-format annotations, each labeled person's ground-truth box (padding 1.25, the
evaluation crop of `edge_pct.eval.evaluate.predict_persons`); without them, the whole frame as one box (padding 1.0,
the streaming pipeline's first-frame / lost-track region). Either way it goes through `box_to_center_size` ->
`crop_affine` -> `warp_crops` -> `to_model_input`, the same numpy path as every backend. The streaming person
detector is not part of this version; when it lands, its boxes plug in here as one more box source beside the
annotations and the whole frame (`select_samples` builds `CropSample`s from boxes, nothing else changes).
Selection is deterministic: one seeded permutation picks N calibration crops and a disjoint held-out slice
(by image, so no image gives both) on which FP32 and INT8 are compared.
ONNX Runtime's reader protocol: `onnxruntime.quantization.CalibrationDataReader` (get_next -> feed dict or None).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from edge_pct.core.errors import InputFileError
from edge_pct.core.geometry import box_to_center_size, crop_affine, to_model_input, warp_crops
from edge_pct.core.optional import require
from edge_pct.core.report import progress

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp")
PERSON_PADDING = 1.25  # ground-truth person boxes, as in evaluation
FRAME_PADDING = 1.0  # the whole frame: no context exists beyond it


@dataclass(frozen=True)
class CropSample:
    """One crop to cut: the image file, its box (x, y, w, h) image px or None for the whole frame, the padding,
    and the COCO image id (-1 without annotations)."""

    path: str
    box: tuple[float, float, float, float] | None
    padding: float
    image_id: int = -1


@dataclass(frozen=True)
class Selection:
    """The deterministic split: `calib` crops for the ranges, `heldout` crops for FP32-vs-INT8 agreement (may be
    empty when there are too few images), and what it was drawn from (`source`: "annotations" or "frames")."""

    calib: tuple[CropSample, ...]
    heldout: tuple[CropSample, ...]
    source: str
    candidates: int

    def describe(self, images_dir: str | Path) -> list[list[Any]]:
        """[[relative path, file bytes, box or None, padding], ...] of calib then held-out crops (fingerprinting)."""
        root = Path(images_dir)
        out = []
        for s in (*self.calib, *self.heldout):
            p = Path(s.path)
            rel = str(p.relative_to(root)) if p.is_relative_to(root) else str(p)
            size = p.stat().st_size if p.is_file() else -1
            out.append([rel, size, list(s.box) if s.box is not None else None, s.padding])
        return out


def list_images(images_dir: str | Path) -> list[Path]:
    """Image files (IMAGE_SUFFIXES, any case) under `images_dir`, recursively, sorted by path."""
    root = Path(images_dir)
    if not root.is_dir():
        raise InputFileError(f"Image folder '{root}' not found: pass --images DIR, a folder of frames or the "
                             "annotations' images")
    return sorted(p for p in root.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())


def select_samples(images_dir: str | Path, num: int, heldout: int = 64, ann: str | Path | None = None,
                   seed: int = 0) -> Selection:
    """Pick `num` calibration crops and up to `heldout` held-out crops from disjoint images, deterministically.

    With `ann` (COCO keypoints json whose images are in `images_dir`): person boxes, padding 1.25. Without:
    every image file is one whole-frame crop. Fewer candidates than asked give fewer crops (never repeats).
    """
    if num < 1 or heldout < 0:
        raise ValueError(f"num {num} must be >= 1 and heldout {heldout} >= 0")
    rng = np.random.default_rng(seed)
    if ann is not None:
        samples = _person_samples(ann, images_dir)
        source = "annotations"
    else:
        files = list_images(images_dir)
        if not files:
            raise InputFileError(f"No images ({', '.join(IMAGE_SUFFIXES)}) in '{images_dir}': pass --images DIR with "
                                 "frames from the target camera, or --ann JSON with its images folder")
        samples = [CropSample(str(p), None, FRAME_PADDING) for p in files]
        source = "frames"
    # Split by image, calibration first: the permuted images fill the calibration pool until it holds `num` crops,
    # the next ones give the held-out crops, so a held-out crop never shares its image with a calibration crop.
    paths = sorted({s.path for s in samples})
    by_path: dict[str, list[CropSample]] = {}
    for s in samples:
        by_path.setdefault(s.path, []).append(s)
    pool: list[CropSample] = []
    held: list[CropSample] = []
    for k in rng.permutation(len(paths)):
        crops = by_path[paths[k]]
        if len(pool) < num:
            pool.extend(crops)
        elif len(held) < heldout:
            held.extend(crops)
    calib = [pool[i] for i in np.sort(rng.permutation(len(pool))[:num])]
    held = held[:heldout]
    return Selection(tuple(calib), tuple(held), source, len(samples))


def _person_samples(ann: str | Path, images_dir: str | Path) -> list[CropSample]:
    """Every labeled non-crowd person of a COCO keypoints json as a ground-truth-box crop."""
    from edge_pct.data.topdown import load_coco_persons

    persons = load_coco_persons(ann, images_dir)
    if not len(persons):
        raise InputFileError(f"'{ann}' has no labeled, non-crowd persons: pass a COCO person_keypoints json with "
                             "annotations, or leave out --ann to calibrate on whole frames")
    return [CropSample(p, tuple(float(v) for v in box), PERSON_PADDING, int(i))
            for p, box, i in zip(persons.paths, persons.boxes, persons.image_ids, strict=True)]


def cut_crops(samples: Sequence[CropSample], input_size: tuple[int, int]) -> np.ndarray:
    """Cut the crops, reading each image once.

    Returns:
        (N, H, W, 3) uint8 BGR crops, H, W = input_size (w, h) reversed, in the order of `samples`.
    """
    import cv2

    w, h = input_size
    crops = np.zeros((len(samples), h, w, 3), np.uint8)
    by_path: dict[str, list[int]] = {}
    for i, s in enumerate(samples):
        by_path.setdefault(s.path, []).append(i)
    for path, idx in progress(by_path.items(), total=len(by_path), desc="calibrate: crops", unit="image"):
        image = cv2.imread(path, cv2.IMREAD_COLOR)
        if image is None:
            raise InputFileError(f"Cannot read image '{path}': the file is missing or not an image; remove it from "
                                 "--images or fix the annotations")
        frame = (0.0, 0.0, float(image.shape[1]), float(image.shape[0]))
        boxes = np.array([samples[i].box or frame for i in idx], np.float32)
        pads = np.array([samples[i].padding for i in idx], np.float32)
        center, size = box_to_center_size(boxes, w / h, 1.0)
        mats = crop_affine(center, size * pads[:, None], 0.0, input_size)
        crops[idx] = warp_crops(image, mats, input_size)
    return crops


def graph_input(onnx_path: str | Path) -> tuple[str, int | None, tuple[int, int]]:
    """The single image input of an exported graph: (name, fixed batch or None, input_size (w, h))."""
    onnx = require("onnx", "cpu")
    model = onnx.load(str(onnx_path), load_external_data=False)
    init = {t.name for t in model.graph.initializer}
    inputs = [i for i in model.graph.input if i.name not in init]
    dims = [d.dim_value if d.HasField("dim_value") else None for d in inputs[0].type.tensor_type.shape.dim] \
        if len(inputs) == 1 else []
    if len(dims) != 4 or dims[1] != 3 or not dims[2] or not dims[3]:
        got = [(i.name, len(i.type.tensor_type.shape.dim)) for i in inputs]
        raise InputFileError(f"'{onnx_path}' does not take one (B, 3, H, W) image input (inputs: {got}): pass the "
                             "model.onnx written by `edge-pct export`")
    return inputs[0].name, dims[0] or None, (dims[3], dims[2])


class CropBatches:
    """Model-input batches over uint8 crops, numpy only: (B, 3, H, W) float32 RGB 0-255 (`to_model_input`).

    `batch` images per item; with `fixed=True` the last item is padded to `batch` with copies of its last crop (a
    fixed-batch graph takes exactly that many). `set_range(start, end)` limits iteration to items [start, end).
    """

    def __init__(self, crops: np.ndarray, batch: int, fixed: bool = False) -> None:
        if crops.ndim != 4 or crops.shape[-1] != 3 or not len(crops):
            raise ValueError(f"crops must be a non-empty (N, H, W, 3) uint8 array, got {crops.shape}")
        self.crops, self.batch, self.fixed = crops, int(batch), fixed
        self.start, self.end, self._next = 0, len(self), 0

    def __len__(self) -> int:
        return -(-len(self.crops) // self.batch)

    def item(self, k: int) -> np.ndarray:
        """Batch k: (B, 3, H, W) float32."""
        chunk = self.crops[k * self.batch:(k + 1) * self.batch]
        if self.fixed and len(chunk) < self.batch:
            chunk = np.concatenate([chunk, np.repeat(chunk[-1:], self.batch - len(chunk), axis=0)])
        return to_model_input(chunk)

    def set_range(self, start_index: int, end_index: int) -> None:
        self.start, self.end = max(0, start_index), min(len(self), end_index)
        self._next = self.start

    def rewind(self) -> None:
        self._next = self.start

    def next_batch(self) -> np.ndarray | None:
        if self._next >= self.end:
            return None
        self._next += 1
        return self.item(self._next - 1)


def calibration_reader(crops: np.ndarray, input_name: str, batch: int, fixed: bool = False) -> Any:
    """An `onnxruntime.quantization.CalibrationDataReader` feeding {input_name: (B, 3, H, W) float32} batches of
    `crops` (N, H, W, 3) uint8 BGR (see CropBatches); it also has `set_range`, `rewind` and `len`.

    A factory, so that importing this module does not import onnxruntime.
    """
    quant = require("onnxruntime.quantization", "cpu")

    class _CropReader(quant.CalibrationDataReader):
        def __init__(self) -> None:
            self.batches = CropBatches(crops, batch, fixed)
            self.input_name = input_name

        def get_next(self) -> dict[str, np.ndarray] | None:
            x = self.batches.next_batch()
            return None if x is None else {self.input_name: x}

        def __len__(self) -> int:
            return len(self.batches)

        def set_range(self, start_index: int, end_index: int) -> None:
            self.batches.set_range(start_index, end_index)

        def rewind(self) -> None:
            self.batches.rewind()

    return _CropReader()


def subset_annotations(ann: str | Path, image_ids: Sequence[int], out: str | Path) -> Path:
    """Write the COCO json `ann` restricted to `image_ids` (all their annotations) to `out`; returns out."""
    data = json.loads(Path(ann).read_text())
    keep = {int(i) for i in image_ids}
    data["images"] = [im for im in data["images"] if im["id"] in keep]
    data["annotations"] = [a for a in data["annotations"] if a["image_id"] in keep]
    Path(out).write_text(json.dumps(data))
    return Path(out)
