"""MediaPipe's joints on the LSP-extended training persons, for `train.body_pseudo` (label denoising).

LSP-extended's labels were crowd-sourced and are noisy (they were later re-annotated for that reason). This runs
the MediaPipe PoseLandmarker (the peer, offline) on every training person's crop, exactly as `edge-pct eval`
crops them (GT box, padding 1.25), and stores its COCO-17 joints; `edge_pct.data.lsp` then averages each LSP
label with MediaPipe's where the two agree (see `blend_body_pseudo`). Held-out rows are never touched.

    python tools/lsp_body_pseudo.py --out runs/lsp_body_pseudo.npz   # about 2.5 min on 2 cores, 6,000 persons

Output npz: files (N,) image names, joints (N, 17, 2) image px, scores (N, 17) MediaPipe visibility.
"""

from __future__ import annotations

import argparse
import io
import sys
import time
from pathlib import Path

import numpy as np

from edge_pct.errors import run_reporting_errors
from edge_pct.files import write_atomic


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--lsp-root", default="../shared/data/lspet")
    ap.add_argument("--task", default="../shared/data/models/pose_landmarker_full.task")
    ap.add_argument("--out", required=True)
    args = ap.parse_args()

    from edge_pct.data.lsp import load_lsp
    from edge_pct.evaluate import mediapipe_estimator, predict_persons

    persons = load_lsp(args.lsp_root, "train")
    t0 = time.perf_counter()
    peer = mediapipe_estimator(args.task)
    try:
        joints, scores, _, _ = predict_persons(peer, persons)
    finally:
        peer.close()
    files = np.array([Path(p).name for p in persons.paths])
    buf = io.BytesIO()
    np.savez(buf, files=files, joints=joints, scores=scores)
    write_atomic([(Path(args.out), buf.getvalue())])
    print(f"{len(files)} persons in {time.perf_counter() - t0:.0f} s -> {args.out}")


if __name__ == "__main__":
    sys.exit(run_reporting_errors(main, "lsp_body_pseudo.py"))
