"""Is a COCO dev AP difference between two checkpoints real? The dev set has only 111 images (310 persons), so
each model's predictions are scored once, then again on random halves of the images (the same halves for every
model): the paired AP difference to the first model, its 5-95% range and the share of halves where it is positive.

    python -m benchmarks.coco_ap_stability --model runs/A/model.pt runs/B/model.pt --json runs/coco_ap_stability.json
"""

from __future__ import annotations

import argparse
import json
import sys

import numpy as np

from benchmarks.common import add_data_arg, data_dir
from edge_pct.core.errors import run_reporting_errors
from edge_pct.core.files import write_text_atomic
from edge_pct.data.topdown import load_coco_persons
from edge_pct.eval.coco import oks_ap
from edge_pct.eval.evaluate import coco_keypoint_results, torch_estimator
from edge_pct.models.factory import load_classifier


def main() -> None:
    data = data_dir()
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_data_arg(ap)
    ap.add_argument("--model", nargs="+", required=True, help="two or more .pt checkpoints; the first is the base")
    ap.add_argument("--coco-ann", default=str(data / "coco" / "train2017_images" / "annotations.json"))
    ap.add_argument("--coco-images", default=str(data / "coco" / "train2017_images"))
    ap.add_argument("--halves", type=int, default=200, help="random half-image subsets scored")
    ap.add_argument("--json", required=True)
    args = ap.parse_args()
    persons = load_coco_persons(args.coco_ann, args.coco_images)
    results = [coco_keypoint_results(torch_estimator(load_classifier(path)), persons)[0] for path in args.model]

    def ap_of(res: list[dict], keep: set | None = None) -> float:
        return oks_ap(args.coco_ann, [r for r in res if keep is None or r["image_id"] in keep])["ap"]

    ids = np.unique(persons.image_ids)
    rng = np.random.default_rng(0)
    halves = [set(rng.choice(ids, len(ids) // 2, replace=False).tolist()) for _ in range(args.halves)]
    base = [ap_of(results[0], keep) for keep in halves]
    rows = []  # one per model after the base
    print(f"{args.model[0]}: AP {ap_of(results[0]):.4f} (the base)")
    for path, res in zip(args.model[1:], results[1:], strict=True):
        diff = np.array([ap_of(res, keep) for keep in halves]) - base
        rows.append({"model": path, "ap": ap_of(res), "diff_median": float(np.median(diff)),
                     "diff_5_95": np.percentile(diff, [5, 95]).tolist(), "share_positive": float((diff > 0).mean()),
                     "halves": args.halves, "images": len(ids)})
        print(f"{path}: AP {rows[-1]['ap']:.4f}, vs {args.model[0]} on half the images: median "
              f"{rows[-1]['diff_median']:+.4f}, 5-95% [{rows[-1]['diff_5_95'][0]:+.4f}, "
              f"{rows[-1]['diff_5_95'][1]:+.4f}], ahead in {rows[-1]['share_positive']:.0%}")
    write_text_atomic(args.json, json.dumps(rows, indent=2) + "\n")


if __name__ == "__main__":
    sys.exit(run_reporting_errors(main, "coco_ap_stability.py"))
