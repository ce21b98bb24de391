"""Checkpoints: one `.pt` holds weights AND the model config, so one file rebuilds the model.

Layout: {"kind": "tokenizer", "config": {...dataclass dict...}, "state_dict": {...}, "meta": {...}}
plus, for resumable training checkpoints, "train_state". Writes are atomic (temp name, then rename).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from edge_pct.config import config_to_dict
from edge_pct.core.files import atomic_output, file_sha256, write_text_atomic


def save_checkpoint(path: str | Path, kind: str, config: Any, model: torch.nn.Module, meta: dict | None = None,
                    train_state: dict | None = None, half: bool = False) -> Path:
    """Write a checkpoint atomically. `half` stores float tensors as fp16 (for shipped weights)."""
    state = {k: (v.half() if half and v.is_floating_point() else v) for k, v in model.state_dict().items()}
    blob = {"kind": kind, "config": config_to_dict(config), "state_dict": state, "meta": meta or {}}
    if train_state is not None:
        blob["train_state"] = train_state
    p = Path(path)
    with atomic_output(p) as tmp:
        torch.save(blob, tmp)
    return p


def ship_weights(src: str | Path, dst: str | Path, provenance: dict[str, Any]) -> Path:
    """Copy a trained checkpoint into the package as fp16 weights without optimizer state.

    Writes `dst` and a `dst.with_suffix('.json')` sidecar: provenance (command, data, accuracy), the source
    sha256 and the embedded config.
    """
    import json

    blob = torch.load(src, map_location="cpu", weights_only=True)
    state = {k: (v.half() if v.is_floating_point() else v) for k, v in blob["state_dict"].items()}
    shipped = {"kind": blob["kind"], "config": blob["config"], "state_dict": state,
               "meta": {**blob.get("meta", {}), **provenance}}
    p = Path(dst)
    with atomic_output(p) as tmp:
        torch.save(shipped, tmp)
    sidecar = {"artifact": p.name, "kind": blob["kind"], "parent_sha256": file_sha256(src), **provenance,
               "config": blob["config"]}
    write_text_atomic(p.with_suffix(".json"), json.dumps(sidecar, indent=2) + "\n")
    return p
