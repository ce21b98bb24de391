"""What the benchmark scripts share: where the real data is, the LSP training subset of the sweeps, and the model
size and speed measures. Scripts import this module, never each other.

Data: `--data DIR` on any script's command line, else `$EDGE_PCT_DATA`, else `../shared/data` beside the repository.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

DATA_ENV = "EDGE_PCT_DATA"
REPO = Path(__file__).resolve().parents[1]


def data_dir(argv: list[str] | None = None) -> Path:
    """The real-data folder: `--data DIR` in `argv` (default: the command line), else $EDGE_PCT_DATA, else
    ../shared/data next to the repository. Read before a script's own parser, so its defaults can sit under it."""
    pre = argparse.ArgumentParser(add_help=False)
    pre.add_argument("--data", type=Path)
    given = pre.parse_known_args(sys.argv[1:] if argv is None else argv)[0].data
    return given or Path(os.environ.get(DATA_ENV) or REPO.parent / "shared" / "data")


def add_data_arg(ap: argparse.ArgumentParser) -> None:
    """--data DIR, so it shows in --help (data_dir reads it)."""
    ap.add_argument("--data", type=Path, help=f"real data folder (default: ${DATA_ENV}, else ../shared/data)")


def training_subset(lsp_root: str, n: int):
    """A seeded subset of `n` LSP-extended training persons (the same for every sweep)."""
    from edge_pct.data.lsp import load_lsp

    persons = load_lsp(lsp_root, "train")
    return persons.subset(np.sort(np.random.default_rng(1).choice(len(persons), n, replace=False)))


def add_subset_args(ap: argparse.ArgumentParser) -> None:
    """--persons / --lsp (the training subset of `training_subset`) and --json (where the rows go)."""
    ap.add_argument("--persons", type=int, default=800, help="training persons scored (seeded subset)")
    ap.add_argument("--lsp", default=str(data_dir() / "lspet"))
    ap.add_argument("--json", required=True)
    add_data_arg(ap)



def inference_params(model: Any) -> int:
    """Parameters and buffers used at inference: backbone, head, codebook and decoder, and the heatmap head of a
    heatmap-refined model (not the tokenizer encoder, nor a heatmap head used only in training)."""
    skip = ("tokenizer.start_embed", "tokenizer.invisible_token", "tokenizer.encoder", "tokenizer.token_mlp",
            "tokenizer.feature_embed", "tokenizer.codebook.ema")
    if model.cfg.refine != "heatmap":
        skip += ("aux_heatmap",)
    tensors = list(model.named_parameters()) + list(model.named_buffers())
    return sum(t.numel() for n, t in tensors if not n.startswith(skip) and t.is_floating_point())


def gmac(model: Any, size: tuple[int, int]) -> float:
    """Multiply-accumulates (G) of one forward at batch 1 (conv and matmul only, like docs/method.md §5.1)."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    counter = FlopCounterMode(display=False)
    with counter, torch.inference_mode():
        model(torch.rand(1, 3, size[1], size[0]) * 255)
    return counter.get_total_flops() / 2e9


def ms_per_person(model: Any, size: tuple[int, int], batch: int = 1, repeats: int = 50) -> float:
    """Median ms per person of the torch model at `batch` (after 5 warm-up runs)."""
    import torch

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
