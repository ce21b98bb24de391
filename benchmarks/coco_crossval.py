"""Cross-validated COCO dev AP: every dev image is predicted by a model that never trained on it.

The 111 dev images are the only labeled everyday scenes here. Split them (`tools/coco_split.py`), fine-tune one
model per part on the other part (`train.coco_ann`), and score each part with the model that did not see it; the
AP over all parts together is comparable with a model that never trained on any dev image (and with MediaPipe on
the same crops).

    python tools/coco_split.py --ann ../shared/data/coco/train2017_images/annotations.json --out runs/coco_halves
    python -m benchmarks.coco_crossval --part runs/coco_halves/part1.json runs/A/model.pt \\
        --part runs/coco_halves/part0.json runs/B/model.pt [--flip] --json runs/coco_crossval.json
"""

from __future__ import annotations

import argparse
import json
import sys

from benchmarks.common import add_data_arg, data_dir
from edge_pct.core.errors import InputFileError, run_reporting_errors
from edge_pct.core.files import write_text_atomic
from edge_pct.data.topdown import load_coco_persons
from edge_pct.eval.coco import oks_ap
from edge_pct.eval.evaluate import coco_keypoint_results, torch_estimator
from edge_pct.models.factory import load_classifier


def main() -> None:
    data = data_dir()
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_data_arg(ap)
    ap.add_argument("--part", nargs=2, action="append", required=True, metavar=("JSON", "MODEL"),
                    help="a part of the dev set and the .pt checkpoint that did not train on it")
    ap.add_argument("--coco-ann", default=str(data / "coco" / "train2017_images" / "annotations.json"),
                    help="the whole dev set's ground truth")
    ap.add_argument("--coco-images", default=str(data / "coco" / "train2017_images"))
    ap.add_argument("--flip", action="store_true")
    ap.add_argument("--json", required=True)
    args = ap.parse_args()
    results, rows, seen = [], [], set()
    for part, model in args.part:
        persons = load_coco_persons(part, args.coco_images)
        images = set(persons.image_ids.tolist())
        if images & seen:
            raise InputFileError(f"'{part}' shares images with another --part: split with tools/coco_split.py")
        seen |= images
        res, _ = coco_keypoint_results(torch_estimator(load_classifier(model), flip=args.flip), persons)
        rows.append({"part": part, "model": model, "persons": len(persons), **oks_ap(args.coco_ann, res)})
        print(f"{part} by {model}: AP {rows[-1]['ap']:.4f} ({len(persons)} persons)")
        results += res
    total = {**oks_ap(args.coco_ann, results), "persons": len(results), "flip": args.flip, "parts": rows}
    print(f"all parts: AP {total['ap']:.4f}, AP50 {total['ap50']:.4f}, AP75 {total['ap75']:.4f} "
          f"({len(results)} persons{', flip test' if args.flip else ''})")
    write_text_atomic(args.json, json.dumps(total, indent=2) + "\n")


if __name__ == "__main__":
    sys.exit(run_reporting_errors(main, "coco_crossval.py"))
