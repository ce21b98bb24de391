"""Write a split of the COCO person crops as a COCO keypoints json, to score a model on it with GT boxes.

    python tools/person_crops_json.py --crops ../shared/data/coco/person_crops --split dev --out runs/crops_dev.json
    edge-pct eval --coco-ann runs/crops_dev.json --images ../shared/data/coco/person_crops/crops

The dev split (about 400 persons of val2017 images, fixed) is never trained on (`train.coco_crops` reads "train").
"""

from __future__ import annotations

import argparse
import json
import sys

from edge_pct.core.errors import run_reporting_errors
from edge_pct.core.files import write_text_atomic
from edge_pct.data.person_crops import SPLITS, load_person_crops, person_crops_coco


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--crops", default="../shared/data/coco/person_crops", help="person crops folder")
    ap.add_argument("--split", default="dev", choices=SPLITS)
    ap.add_argument("--out", required=True, help="json to write")
    args = ap.parse_args(argv)
    persons = load_person_crops(args.crops, args.split)
    write_text_atomic(args.out, json.dumps(person_crops_coco(persons)))
    print(f"{len(persons)} persons of {len(set(persons.image_ids.tolist()))} images -> {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(run_reporting_errors(main, "person_crops_json.py"))
