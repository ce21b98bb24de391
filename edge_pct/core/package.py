"""Facts about the installed package: its version and where the shipped weights are.

Every module reads these from here (not from `edge_pct/__init__.py`, which re-exports them for users), so the
top-level package can offer the Python API without an import running back up.
"""

from __future__ import annotations

from pathlib import Path

__version__ = "0.1.0"

WEIGHTS_DIR = Path(__file__).resolve().parents[1] / "weights"
DEFAULT_TOKENIZER = WEIGHTS_DIR / "tokenizer.pt"
DEFAULT_MODEL = WEIGHTS_DIR / "pct_lite.pt"
# The official YOLOX-Nano person detector (Apache-2.0; weights/YOLOX_NANO_LICENSE.txt): the default detector.
DEFAULT_DETECTOR = WEIGHTS_DIR / "yolox_nano.onnx"
