"""Image-model cost: parameters, GMAC and torch CPU milliseconds per person (batch 1, median of N).

    python benchmarks/model_report.py --model edge_pct/weights/pct_lite.pt --json runs/model_report.json
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time

import torch
from torch.utils.flop_counter import FlopCounterMode

from edge_pct.core.package import DEFAULT_MODEL
from edge_pct.core.errors import run_reporting_errors
from edge_pct.core.files import write_text_atomic
from edge_pct.models.factory import load_classifier


def inference_params(model: torch.nn.Module) -> int:
    """Parameters and buffers used at inference: backbone, head, codebook and decoder, and the heatmap head of a
    heatmap-refined model (not the tokenizer encoder, nor a heatmap head used only in training)."""
    skip = ("tokenizer.start_embed", "tokenizer.invisible_token", "tokenizer.encoder", "tokenizer.token_mlp",
            "tokenizer.feature_embed", "tokenizer.codebook.ema")
    if model.cfg.refine != "heatmap":
        skip += ("aux_heatmap",)
    tensors = list(model.named_parameters()) + list(model.named_buffers())
    return sum(t.numel() for n, t in tensors if not n.startswith(skip) and t.is_floating_point())


def gmac(model: torch.nn.Module, size: tuple[int, int]) -> float:
    """Multiply-accumulates (G) of one forward at batch 1 (conv and matmul only, like docs/method.md §5.1)."""
    counter = FlopCounterMode(display=False)
    with counter, torch.inference_mode():
        model(torch.rand(1, 3, size[1], size[0]) * 255)
    return counter.get_total_flops() / 2e9


def ms_per_person(model: torch.nn.Module, size: tuple[int, int], batch: int = 1, repeats: int = 50) -> float:
    x = torch.rand(batch, 3, size[1], size[0]) * 255
    times = []
    with torch.inference_mode():
        for _ in range(5):
            model(x)
        for _ in range(repeats):
            t0 = time.perf_counter()
            model(x)
            times.append((time.perf_counter() - t0) * 1e3 / batch)
    return statistics.median(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default=str(DEFAULT_MODEL))
    ap.add_argument("--json")
    args = ap.parse_args()
    model = load_classifier(args.model)
    size = model.cfg.input_size
    report = {"model": args.model, "input_size": size, "params_inference_M": inference_params(model) / 1e6,
              "gmac": gmac(model, size), "threads": torch.get_num_threads(),
              "ms_per_person_batch1": ms_per_person(model, size), "ms_per_person_batch8": ms_per_person(model, size, 8)}
    print(json.dumps(report, indent=2))
    if args.json:
        write_text_atomic(args.json, json.dumps(report, indent=2))


if __name__ == "__main__":
    sys.exit(run_reporting_errors(main, "model_report.py"))
