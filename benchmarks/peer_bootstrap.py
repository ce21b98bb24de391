"""Is the lead over the MediaPipe peer on held-out LSP real? PCK@0.2 of each model and of the peer on the same
crops, and a paired bootstrap over the persons (resampled with replacement, both estimators together) of the
difference: its 95% interval and the share of resamples where the lead is zero or less.

    python -m benchmarks.peer_bootstrap --model edge_pct/weights/pct_lite.pt --json runs/peer_bootstrap.json
"""

from __future__ import annotations

import argparse
import json
import sys

import numpy as np

from benchmarks.common import add_data_arg, data_dir
from edge_pct.core.errors import run_reporting_errors
from edge_pct.core.files import write_text_atomic
from edge_pct.core.package import DEFAULT_MODEL
from edge_pct.data.lsp import load_lsp
from edge_pct.eval.evaluate import mediapipe_estimator, pck_hits, predict_persons, torch_estimator
from edge_pct.models.factory import load_classifier


def main() -> None:
    data = data_dir()
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_data_arg(ap)
    ap.add_argument("--model", nargs="+", default=[str(DEFAULT_MODEL)], help="one or more .pt checkpoints")
    ap.add_argument("--peer", default=str(data / "models" / "pose_landmarker_full.task"))
    ap.add_argument("--lsp", default=str(data / "lspet"))
    ap.add_argument("--resamples", type=int, default=2000)
    ap.add_argument("--json", required=True)
    args = ap.parse_args()

    persons = load_lsp(args.lsp, "heldout")
    peer = mediapipe_estimator(args.peer)
    peer_hits, labeled = _per_person(peer, persons)
    peer.close()
    draws = np.random.default_rng(0).integers(0, len(labeled), (args.resamples, len(labeled)))
    rows = []
    for path in args.model:
        for flip in (False, True):
            hits, _ = _per_person(torch_estimator(load_classifier(path), flip=flip), persons)
            boot = (hits[draws].sum(1) - peer_hits[draws].sum(1)) / labeled[draws].sum(1)
            rows.append({"model": path, "flip": flip, "pck": hits.sum() / labeled.sum(),
                         "peer_pck": peer_hits.sum() / labeled.sum(),
                         "lead": (hits.sum() - peer_hits.sum()) / labeled.sum(),
                         "lead_ci95": [float(np.percentile(boot, 2.5)), float(np.percentile(boot, 97.5))],
                         "share_lead_le_0": float(np.mean(boot <= 0)), "persons": len(labeled)})
            r = rows[-1]
            print(f"{path}{' +flip' if flip else ''}: PCK {r['pck']:.4f} vs peer {r['peer_pck']:.4f}, lead "
                  f"{r['lead']:+.4f}, 95% CI [{r['lead_ci95'][0]:+.4f}, {r['lead_ci95'][1]:+.4f}], "
                  f"resamples with lead <= 0: {r['share_lead_le_0']:.4f}", flush=True)
    write_text_atomic(args.json, json.dumps(rows, indent=2, default=float))


def _per_person(est, persons) -> tuple[np.ndarray, np.ndarray]:
    """Hits at PCK@0.2 and labeled joints per scored person, (P,) each."""
    joints = predict_persons(est, persons)[0]
    hit, lab = pck_hits(joints, persons.keypoints)
    return hit.sum(1), lab.sum(1)


if __name__ == "__main__":
    sys.exit(run_reporting_errors(main, "peer_bootstrap.py"))
