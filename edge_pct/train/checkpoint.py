"""Checkpoints: one `.pt` holds weights AND the model config, so one file rebuilds the model.

Layout: {"kind": "tokenizer", "config": {...dataclass dict...}, "state_dict": {...}, "meta": {...}}
plus, for resumable training checkpoints, "train_state". Writes are atomic (temp name, then rename).
"""

from __future__ import annotations

import pickle
import zipfile
from pathlib import Path
from typing import Any

import torch

from edge_pct.config import TokenizerConfig, config_from_dict, config_to_dict
from edge_pct.errors import InputFileError
from edge_pct.files import file_sha256


def save_checkpoint(path: str | Path, kind: str, config: Any, model: torch.nn.Module, meta: dict | None = None,
                    train_state: dict | None = None, half: bool = False) -> Path:
    """Write a checkpoint atomically. `half` stores float tensors as fp16 (for shipped weights)."""
    state = {k: (v.half() if half and v.is_floating_point() else v) for k, v in model.state_dict().items()}
    blob = {"kind": kind, "config": config_to_dict(config), "state_dict": state, "meta": meta or {}}
    if train_state is not None:
        blob["train_state"] = train_state
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    tmp = p.with_name(p.name + ".tmp")
    torch.save(blob, tmp)
    tmp.replace(p)
    return p


def read_checkpoint(path: str | Path, kind: str) -> dict:
    """Load a checkpoint dict and check it is of `kind`; a clear InputFileError otherwise."""
    p = Path(path)
    if not p.is_file():
        raise InputFileError(f"Checkpoint '{p}' not found: pass a .pt written by edge-pct (train-tokenizer / train)")
    try:
        blob = torch.load(p, map_location="cpu", weights_only=True)
    except (RuntimeError, pickle.UnpicklingError, EOFError, zipfile.BadZipFile, OSError, ValueError) as e:
        raise InputFileError(f"Checkpoint '{p}' is corrupt or not a PyTorch file ({str(e).splitlines()[0]}): "
                             "re-download or re-train it") from e
    if not isinstance(blob, dict) or "state_dict" not in blob or "config" not in blob:
        raise InputFileError(f"'{p}' is not an edge-pct checkpoint (no embedded config): use one written by edge-pct")
    if blob.get("kind") != kind:
        raise InputFileError(f"'{p}' is a '{blob.get('kind')}' checkpoint, expected '{kind}'")
    return blob


def load_tokenizer(path: str | Path) -> torch.nn.Module:
    """Rebuild a PoseTokenizer (eval mode, fp32) from a checkpoint."""
    from edge_pct.models.tokenizer import PoseTokenizer

    blob = read_checkpoint(path, "tokenizer")
    return load_weights(PoseTokenizer(config_from_dict(TokenizerConfig, blob["config"])), blob, path)


def load_weights(model: torch.nn.Module, blob: dict, path: str | Path) -> torch.nn.Module:
    """Load a checkpoint's state dict (fp16 storage cast to fp32) into `model`; eval mode."""
    state = {k: (v.float() if v.is_floating_point() else v) for k, v in blob["state_dict"].items()}
    try:
        model.load_state_dict(state)
    except RuntimeError as e:
        raise InputFileError(f"'{path}' does not match its embedded config: {str(e).splitlines()[0]}") from e
    return model.eval()




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
    tmp = p.with_name(p.name + ".tmp")
    torch.save(shipped, tmp)
    tmp.replace(p)
    sidecar = {"artifact": p.name, "kind": blob["kind"], "parent_sha256": file_sha256(src), **provenance,
               "config": blob["config"]}
    p.with_suffix(".json").write_text(json.dumps(sidecar, indent=2) + "\n")
    return p
