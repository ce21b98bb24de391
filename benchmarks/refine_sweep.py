"""Choose `model.refine_sigma` on training data: LSP PCK@0.2 of one model with the token decoding and with the
heatmap refinement at several prior widths, on a seeded subset of the LSP-extended TRAINING persons (the held-out
slice stays unseen), clean and with one synthetic occluder over 20-40% of each box (all joints / joints under it).

    python -m benchmarks.refine_sweep --model runs/pct_lite_256/model.pt --sigmas 0.03125 0.0625 0.125 \\
        --json runs/refine_sweep.json
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys

from benchmarks.common import add_subset_args, training_subset
from edge_pct.core.errors import run_reporting_errors
from edge_pct.core.files import write_text_atomic
from edge_pct.eval.evaluate import pck, predict_persons, torch_estimator
from edge_pct.models.factory import load_classifier


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", required=True, help="a .pt checkpoint with the heatmap head")
    ap.add_argument("--sigmas", nargs="+", type=float, default=[0.03125, 0.0625, 0.09375, 0.125, 0.1875],
                    help="prior widths to try, in crop heights")
    add_subset_args(ap)
    args = ap.parse_args()

    persons = training_subset(args.lsp, args.persons)
    model = load_classifier(args.model)
    rows = []
    for refine, sigma in [("tokens", 0.0)] + [("heatmap", s) for s in args.sigmas]:
        model.cfg = dataclasses.replace(model.cfg, refine=refine, refine_sigma=sigma or model.cfg.refine_sigma)
        est = torch_estimator(model)
        clean = predict_persons(est, persons)[0]
        occluded, _, _, under = predict_persons(est, persons, occlusion=(0.2, 0.4))
        rows.append({"refine": refine, "sigma": sigma, "pck": pck(clean, persons.keypoints)["pck"],
                     "pck_occluded_all": pck(occluded, persons.keypoints)["pck"],
                     "pck_under_occluder": pck(occluded, persons.keypoints, 0.2, under)["pck"]})
        print(json.dumps(rows[-1]), flush=True)
    write_text_atomic(args.json, json.dumps({"model": args.model, "persons": args.persons, "rows": rows}, indent=2))


if __name__ == "__main__":
    sys.exit(run_reporting_errors(main, "refine_sweep.py"))
