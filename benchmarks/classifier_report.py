"""Image-model accuracy beside the MediaPipe peer on the same crops, in one run: LSP-extended held-out PCK@0.2
and COCO dev-set OKS-AP (GT boxes), with and without flip test, plus params / GMAC / CPU ms per person, and
occlusion robustness: LSP PCK with one synthetic occluder over 20-40% of each person's box (all joints, and
the joints under the occluder).

    python -m benchmarks.classifier_report --model edge_pct/weights/pct_lite.pt \
        --peer ../shared/data/models/pose_landmarker_full.task --json runs/classifier_report.json

`--decode tokens heatmap` scores each model with the paper's token decoding and with the heatmap refinement
(model.refine), same weights.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from pathlib import Path

from benchmarks.common import add_data_arg, data_dir, gmac, inference_params, ms_per_person
from edge_pct.core.errors import run_reporting_errors
from edge_pct.core.files import write_text_atomic
from edge_pct.core.package import DEFAULT_MODEL
from edge_pct.eval.evaluate import evaluate_coco, evaluate_lsp, mediapipe_estimator, torch_estimator
from edge_pct.models.factory import load_classifier


def main() -> None:
    data = data_dir()
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_data_arg(ap)
    ap.add_argument("--model", nargs="+", default=[str(DEFAULT_MODEL)], help="one or more .pt checkpoints")
    ap.add_argument("--peer", default=str(data / "models" / "pose_landmarker_full.task"), help="'' to skip")
    ap.add_argument("--lsp", default=str(data / "lspet"))
    ap.add_argument("--coco-ann", default=str(data / "coco" / "train2017_images" / "annotations.json"))
    ap.add_argument("--coco-images", default=str(data / "coco" / "train2017_images"))
    ap.add_argument("--no-flip", action="store_true", help="skip the flip-test rows")
    ap.add_argument("--occlude", nargs=2, type=float, default=[0.2, 0.4], metavar=("LO", "HI"),
                    help="occluder share of the box for the robustness columns (default: 0.2 0.4)")
    ap.add_argument("--decode", nargs="+", choices=["tokens", "heatmap"],
                    help="score each model under each of these decodings (model.refine; default: its own)")
    ap.add_argument("--json", required=True)
    args = ap.parse_args()

    rows = []
    for path, decode in [(p, d) for p in args.model for d in args.decode or [None]]:
        model = load_classifier(path)
        if decode:
            model.cfg = dataclasses.replace(model.cfg, refine=decode)
        size = model.cfg.input_size
        cost = {"params_inference_M": inference_params(model) / 1e6, "gmac": gmac(model, size),
                "ms_per_person_b1": ms_per_person(model, size)}
        for flip in (False,) if args.no_flip else (False, True):
            est = torch_estimator(model, flip=flip)
            name = f"{Path(path).parent.name}/{Path(path).name}"  # run folder + file: ablation runs are all model.pt
            name += f" [{model.cfg.refine}]{' +flip' if flip else ''}"
            rows.append({"name": name, "decode": model.cfg.refine, **_scores(est, args), **cost})
            print(json.dumps({k: rows[-1][k] for k in ("name", "params_inference_M", "gmac")}), flush=True)
    if args.peer:
        est = mediapipe_estimator(args.peer)
        rows.append({"name": "MediaPipe PoseLandmarker (full)", **_scores(est, args)})
        est.close()
    write_text_atomic(args.json, json.dumps(rows, indent=2))
    print("\n| model | LSP PCK@0.2 | occluded: all / under occluder | COCO dev AP | AP50 | AP75 | params (M) | GMAC "
          "| ms/person (eval) |")
    print("|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        occ = r["lsp_occluded"]
        print(f"| {r['name']} | {r['lsp']['pck']:.3f} | {occ['pck']:.3f} / {occ['pck_occluded']:.3f} | "
              f"{r['coco']['ap']:.3f} | {r['coco']['ap50']:.3f} | {r['coco']['ap75']:.3f} | "
              f"{r.get('params_inference_M', float('nan')):.2f} | {r.get('gmac', float('nan')):.3f} | "
              f"{r['coco']['ms_per_person']:.1f} |")


def _scores(est, args) -> dict:
    return {"lsp": evaluate_lsp(est, args.lsp), "lsp_occluded": evaluate_lsp(est, args.lsp, occlusion=args.occlude),
            "coco": evaluate_coco(est, args.coco_ann, args.coco_images)}


if __name__ == "__main__":
    sys.exit(run_reporting_errors(main, "classifier_report.py"))
