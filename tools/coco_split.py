"""Split a COCO keypoints json into image-disjoint parts, for cross-validated fine-tuning on a small image set.

The 111 COCO images in `../shared/data/coco/train2017_images` are the only everyday-scene images with labels
here, and they are the dev set. Split into two halves, one half can fine-tune a model (`train.coco_ann`) while the
other scores it, and then the other way round: every AP is still on images the model never saw.

    python tools/coco_split.py --ann ../shared/data/coco/train2017_images/annotations.json --out runs/coco_halves

Writes part0.json ... part{K-1}.json (images shuffled with `--seed`, dealt round-robin; each part keeps the
annotations of its images and the categories).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from edge_pct.core.errors import ConfigError, InputFileError, run_reporting_errors
from edge_pct.core.files import write_atomic


def split_coco(data: dict, parts: int, seed: int) -> list[dict]:
    """Image-disjoint parts of a COCO dataset dict (images dealt round-robin after a seeded shuffle)."""
    ids = sorted(im["id"] for im in data["images"])
    order = np.random.default_rng(seed).permutation(len(ids))
    part_of = {ids[i]: k % parts for k, i in enumerate(order)}
    return [{"images": [im for im in data["images"] if part_of[im["id"]] == p],
             "annotations": [a for a in data["annotations"] if part_of.get(a["image_id"]) == p],
             "categories": data.get("categories", [])} for p in range(parts)]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--ann", required=True, help="COCO keypoints json")
    ap.add_argument("--out", required=True, help="folder for part0.json ...")
    ap.add_argument("--parts", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    if args.parts < 2:
        raise ConfigError(f"--parts {args.parts}: a split needs at least 2 parts")
    try:
        data = json.loads(Path(args.ann).read_text())
    except (OSError, ValueError) as e:
        raise InputFileError(f"'{args.ann}' is missing or not a json ({e}): pass a COCO keypoints json") from e
    if not isinstance(data, dict) or not {"images", "annotations"} <= data.keys():
        raise InputFileError(f"'{args.ann}' is not a COCO json (no images / annotations)")
    try:
        split = split_coco(data, args.parts, args.seed)
    except (KeyError, TypeError) as e:
        raise InputFileError(f"'{args.ann}' is not a COCO json (an image or annotation without {e})") from e
    out = Path(args.out)
    write_atomic([(out / f"part{p}.json", json.dumps(d).encode()) for p, d in enumerate(split)])
    for p, d in enumerate(split):
        print(f"part{p}.json: {len(d['images'])} images, {len(d['annotations'])} persons")
    return 0


if __name__ == "__main__":
    sys.exit(run_reporting_errors(main, "coco_split.py"))
