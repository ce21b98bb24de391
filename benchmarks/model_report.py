"""Image-model cost: parameters, GMAC and torch CPU milliseconds per person (batch 1, median of N).

    python -m benchmarks.model_report --model edge_pct/weights/pct_lite.pt --json runs/model_report.json
"""

from __future__ import annotations

import argparse
import json
import sys

import torch

from benchmarks.common import gmac, inference_params, ms_per_person
from edge_pct.core.errors import run_reporting_errors
from edge_pct.core.files import write_text_atomic
from edge_pct.core.package import DEFAULT_MODEL
from edge_pct.models.factory import load_classifier


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
