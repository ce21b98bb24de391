"""edge-pct: Human Pose as Compositional Tokens (PCT, CVPR 2023) for the edge.

    import edge_pct
    estimator = edge_pct.PoseEstimator()          # shipped model, YOLOX-Nano detector, best CPU backend
    for person in estimator(frame_bgr):            # frame_bgr: (H, W, 3) uint8 BGR
        person.joints, person.confidence, person.box, person.score, person.track_id

Importing this package loads numpy only; torch, onnxruntime, tensorrt, PyQt6 and mediapipe are imported
lazily by the functions that need them, so `import edge_pct` and `edge-pct --help` work on a bare install.
"""

from __future__ import annotations

from typing import Any

from edge_pct.core.package import DEFAULT_MODEL, DEFAULT_TOKENIZER, WEIGHTS_DIR, __version__

__all__ = ["DEFAULT_MODEL", "DEFAULT_TOKENIZER", "WEIGHTS_DIR", "Person", "PoseEstimator", "__version__"]


def __getattr__(name: str) -> Any:
    """The API classes, imported on first use (PEP 562), so `import edge_pct` stays light."""
    if name in ("PoseEstimator", "Person"):
        from edge_pct import api

        return getattr(api, name)
    raise AttributeError(f"module 'edge_pct' has no attribute '{name}'")
