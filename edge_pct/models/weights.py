"""Reading weights back: a checkpoint `.pt` (weights AND the model config) checked for its kind, and loaded into a
model. Training writes checkpoints (`edge_pct.train.checkpoint`); every reader (factory, export, eval) uses this.

`torch.load(weights_only=True)` only: a checkpoint is data, never code.
"""

from __future__ import annotations

import pickle
import zipfile
from pathlib import Path

import torch

from edge_pct.config import TokenizerConfig, config_from_dict
from edge_pct.core.errors import InputFileError


def read_checkpoint(path: str | Path, kind: str) -> dict:
    """Load a checkpoint dict and check it is of `kind`; a clear InputFileError otherwise."""
    p = Path(path)
    if not p.is_file():
        raise InputFileError(f"Checkpoint '{p}' not found: pass a .pt written by edge-pct (train-tokenizer / train)")
    try:
        blob = torch.load(p, map_location="cpu", weights_only=True)
    except (RuntimeError, pickle.UnpicklingError, EOFError, zipfile.BadZipFile, OSError, ValueError, IndexError,
            KeyError) as e:  # an empty file raises IndexError, a text file KeyError
        why = (str(e).splitlines() or [type(e).__name__])[0]
        raise InputFileError(f"Checkpoint '{p}' is corrupt or not a PyTorch file ({why}): re-download or re-train it"
                             ) from e
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
