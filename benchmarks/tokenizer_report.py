"""Tokenizer report: reconstruction AP at several mask ratios beside the k-NN baseline, codebook usage and
decode latency, all in one run. Writes JSON and prints a markdown table.

    python -m benchmarks.tokenizer_report --coco-ann ../shared/data/coco/person_keypoints_val2017.json \
        --train-poses ../shared/data/coco/person_keypoints_train2017.npz --json runs/tokenizer_report.json
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import time

import numpy as np
import torch

from edge_pct.core.errors import run_reporting_errors
from edge_pct.core.files import write_text_atomic
from edge_pct.core.package import DEFAULT_TOKENIZER
from edge_pct.data.coco import load_coco_json, load_poses
from edge_pct.eval.knn_baseline import KnnPoseCompleter
from edge_pct.eval.tokenizer import evaluate_tokenizer_model, score_completer, tokenizer_completer
from edge_pct.models.weights import load_tokenizer


def decode_latency_ms(model: torch.nn.Module, batch: int, repeats: int = 200) -> float:
    """Median wall time (ms) of one decode of `batch` persons from token indices, torch CPU."""
    idx = torch.randint(model.cfg.codebook_size, (batch, model.cfg.num_tokens))
    times = []
    with torch.inference_mode():
        for _ in range(20):
            model.decode(idx)
        for _ in range(repeats):
            t0 = time.perf_counter()
            model.decode(idx)
            times.append((time.perf_counter() - t0) * 1e3)
    return statistics.median(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--checkpoint", default=str(DEFAULT_TOKENIZER))
    ap.add_argument("--coco-ann", required=True)
    ap.add_argument("--train-poses", required=True, help="k-NN baseline database")
    ap.add_argument("--ratios", type=float, nargs="+", default=[0.0, 0.1, 0.3, 0.5])
    ap.add_argument("--json", required=True)
    args = ap.parse_args()

    model = load_tokenizer(args.checkpoint)
    val = load_coco_json(args.coco_ann)
    knn = KnnPoseCompleter(load_poses(args.train_poses), model.cfg.input_size)
    complete, _ = tokenizer_completer(model)

    def keep_visible(joints: np.ndarray, visible: np.ndarray, labeled: np.ndarray) -> np.ndarray:
        """The tokenizer fills only the hidden joints, like the k-NN baseline does."""
        return np.where(visible[..., None], joints, complete(joints, visible, labeled))

    rows = []
    for r in args.ratios:
        tok = evaluate_tokenizer_model(model, args.coco_ann, r, poses=val)
        tok_flip = evaluate_tokenizer_model(model, args.coco_ann, r, poses=val, flip=True)
        hybrid = score_completer(keep_visible, args.coco_ann, model.cfg.input_size, r, poses=val)
        base = score_completer(knn, args.coco_ann, model.cfg.input_size, r, poses=val)
        rows.append({"mask_ratio": r, "tokenizer": tok, "tokenizer_flip": tok_flip, "tokenizer_keep_visible": hybrid,
                     "knn": base})
        print(f"ratio {r}: tokenizer AP {tok['ap']:.4f} (flip {tok_flip['ap']:.4f}, keep-visible {hybrid['ap']:.4f})"
              f"  k-NN AP {base['ap']:.4f}", flush=True)
    torch.set_num_threads(1)
    lat1 = {b: decode_latency_ms(model, b) for b in (1, 16)}
    torch.set_num_threads(2)
    lat2 = {b: decode_latency_ms(model, b) for b in (1, 16)}
    params = sum(p.numel() for p in model.parameters())
    decoder_params = sum(p.numel() for n, p in model.named_parameters() if n.startswith(("decoder", "recover")))
    report = {"checkpoint": args.checkpoint, "rows": rows, "params": params, "decoder_params": decoder_params,
              "decode_ms": {"threads_1": lat1, "threads_2": lat2}, "torch": torch.__version__,
              "machine": platform.processor() or platform.machine()}
    write_text_atomic(args.json, json.dumps(report, indent=2))
    print("\n| mask ratio | tokenizer AP | AP50 | AP75 | + flip | keep visible | k-NN AP | "
          "tokenizer err px (hidden) | k-NN err px (hidden) |")
    print("|---|---|---|---|---|---|---|---|---|")
    for row in rows:
        t, k = row["tokenizer"], row["knn"]
        print(f"| {row['mask_ratio']} | {t['ap']:.3f} | {t['ap50']:.3f} | {t['ap75']:.3f} | "
              f"{row['tokenizer_flip']['ap']:.3f} | {row['tokenizer_keep_visible']['ap']:.3f} | {k['ap']:.3f} | "
              f"{t['mean_err_px']:.2f} ({t['hidden_err_px']:.2f}) | "
              f"{k['mean_err_px']:.2f} ({k['hidden_err_px']:.2f}) |")
    u = rows[0]["tokenizer"]
    print(f"\ncodes used {u['codes_used']} / {model.cfg.codebook_size}, perplexity {u['perplexity']:.0f}")
    print(f"decode ms/batch (median of 200): 1 thread {lat1}, 2 threads {lat2}")


if __name__ == "__main__":
    sys.exit(run_reporting_errors(main, "tokenizer_report.py"))
