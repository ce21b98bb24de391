"""edge-pct: Human Pose as Compositional Tokens (PCT, CVPR 2023) for the edge.

Importing this package loads numpy only; torch, onnxruntime, tensorrt, PyQt6 and mediapipe are imported
lazily by the functions that need them, so `import edge_pct` and `edge-pct --help` work on a bare install.
"""

from __future__ import annotations

from pathlib import Path

__version__ = "0.1.0"

WEIGHTS_DIR = Path(__file__).resolve().parent / "weights"
DEFAULT_TOKENIZER = WEIGHTS_DIR / "tokenizer.pt"
DEFAULT_MODEL = WEIGHTS_DIR / "pct_lite.pt"

__all__ = ["DEFAULT_MODEL", "DEFAULT_TOKENIZER", "WEIGHTS_DIR", "__version__"]
