"""COCO person crops: real everyday-scene persons with the official COCO labels, already cut out.

The folder holds `crops/*.jpg` (at most 192x256 px, box widened to 3:4 then x1.5) and `annotations.npz`:
`files (N,)`, `image_id (N,)`, `keypoints (N, 17, 3)` crop px + COCO v, `bbox_xywh (N, 4)` crop px, `area (N,)`
in *source image* px^2 (0.535 x the original box area), `crop_affine (N, 2, 3)` source image -> crop px.

Split by image id, so no image is both trained on and scored: `dev` is a fixed set of about `DEV_PERSONS`
persons of val2017 images (drawn with a fixed seed), `train` is everything else.
"""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np

from edge_pct.core.errors import InputFileError
from edge_pct.data.persons import PersonSet

DEV_PERSONS = 400
DEV_SEED = 0
SPLITS = ("train", "dev", "all")


def dev_image_ids(image_ids: np.ndarray, official_split: np.ndarray) -> set[int]:
    """The dev split's image ids: val2017 images in a seeded order, taken until DEV_PERSONS persons are in."""
    val_ids = np.unique(image_ids[official_split == "val2017"])
    order = np.random.default_rng(DEV_SEED).permutation(len(val_ids))
    chosen, persons = set(), 0
    for i in order:
        if persons >= DEV_PERSONS:
            break
        chosen.add(int(val_ids[i]))
        persons += int((image_ids == val_ids[i]).sum())
    return chosen


def load_person_crops(root: str | Path, split: str = "train") -> PersonSet:
    """Persons of the crops folder `root` in `split` ("train", "dev" or "all"); areas rescaled to crop px^2."""
    root = Path(root)
    if split not in SPLITS:
        raise InputFileError(f"Unknown person-crops split '{split}': use one of {list(SPLITS)}")
    try:
        with np.load(root / "annotations.npz") as d:
            files, image_ids, official = d["files"], d["image_id"].astype(np.int64), d["split"]
            kpts, boxes = d["keypoints"].astype(np.float32), d["bbox_xywh"].astype(np.float32)
            areas, affine = d["area"].astype(np.float32), d["crop_affine"].astype(np.float32)
    except (OSError, KeyError, ValueError, zipfile.BadZipFile) as e:
        raise InputFileError(f"'{root / 'annotations.npz'}' is missing or not a person-crops index ({e}): "
                             "pass the person_crops folder (annotations.npz + crops/)") from e
    in_dev = np.isin(image_ids, sorted(dev_image_ids(image_ids, official)))
    keep = {"train": ~in_dev, "dev": in_dev, "all": np.ones(len(files), bool)}[split]
    idx = np.nonzero(keep)[0]
    scale_sq = np.abs(np.linalg.det(affine[:, :, :2]))  # crop px^2 per source px^2
    paths = [str(root / "crops" / str(files[i])) for i in idx]
    return PersonSet(kpts[idx], boxes[idx], image_ids[idx], (areas * scale_sq)[idx], paths)


def person_crops_coco(persons: PersonSet) -> dict:
    """A COCO keypoints dataset dict over crops (one image per crop, its file name relative to crops/), so
    `edge-pct eval --coco-ann` scores a model on it with GT boxes."""
    images, anns = [], []
    for n, path in enumerate(persons.paths):
        images.append({"id": n + 1, "file_name": Path(path).name, "coco_image_id": int(persons.image_ids[n])})
        k = persons.keypoints[n]
        anns.append({"id": n + 1, "image_id": n + 1, "category_id": 1, "iscrowd": 0,
                     "bbox": [float(v) for v in persons.boxes[n]], "area": float(persons.areas[n]),
                     "keypoints": [float(v) for v in k.reshape(-1)], "num_keypoints": int((k[:, 2] > 0).sum())})
    return {"images": images, "annotations": anns,
            "categories": [{"id": 1, "name": "person", "supercategory": "person"}]}
