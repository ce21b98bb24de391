"""Choose the flip test's agreement radius (`edge_pct.eval.evaluate.FLIP_AGREE`) on training data: LSP PCK@0.2 of one
model without the flip test, with the plain average of both passes, and with `fuse_flip` at several radii, on the
seeded subset of LSP-extended TRAINING persons that `refine_sweep.py` scores (the held-out slice stays unseen).

    python -m benchmarks.flip_sweep --model runs/pct_lite_256s9/model.pt --agree 0.015625 0.03125 0.0625 0.125 \\
        --json runs/flip_sweep.json
"""

from __future__ import annotations

import argparse
import json
import math
import sys

from benchmarks.common import add_subset_args, training_subset
from edge_pct.core.errors import run_reporting_errors
from edge_pct.core.files import write_text_atomic
from edge_pct.eval.evaluate import pck, predict_persons, torch_estimator
from edge_pct.models.factory import load_classifier


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", required=True, help="a .pt checkpoint")
    ap.add_argument("--agree", nargs="+", type=float, default=[0.015625, 0.03125, 0.0625, 0.09375, 0.125, 0.1875],
                    help="agreement radii to try, in crop heights")
    add_subset_args(ap)
    args = ap.parse_args()

    persons = training_subset(args.lsp, args.persons)
    model = load_classifier(args.model)
    rows = []
    # no flip test; the plain average (an infinite radius); then each radius
    for flip, agree in [(False, 0.0), (True, math.inf)] + [(True, a) for a in args.agree]:
        joints = predict_persons(torch_estimator(model, flip=flip, flip_agree=agree), persons)[0]
        rows.append({"flip": flip, "agree": agree if math.isfinite(agree) else "average",
                     "pck": pck(joints, persons.keypoints)["pck"]})
        print(json.dumps(rows[-1]), flush=True)
    write_text_atomic(args.json, json.dumps({"model": args.model, "persons": args.persons, "rows": rows}, indent=2))


if __name__ == "__main__":
    sys.exit(run_reporting_errors(main, "flip_sweep.py"))
