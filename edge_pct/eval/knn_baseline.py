"""k-NN pose completion: the baseline the tokenizer must beat on occluded poses.

Hidden joints are copied from the nearest training pose, found by the mean squared distance over the
query's visible joints in the crop frame (both poses cropped by their own GT box); the neighbour is
shifted by the mean offset of the visible joints before its joints fill the gaps. Visible joints are
returned unchanged, so with nothing hidden the baseline is exact by construction.
"""

from __future__ import annotations

import numpy as np

from edge_pct.data.persons import PersonSet


class KnnPoseCompleter:
    """Nearest-neighbour completer over training poses (crop frame, pixels of `input_size`)."""

    def __init__(self, train: PersonSet, input_size: tuple[int, int], chunk: int = 256) -> None:
        from edge_pct.eval.tokenizer import crop_poses

        crop, _ = crop_poses(train, input_size)
        self.joints = crop[..., :2].astype(np.float32)  # (T, J, 2)
        self.labeled = (crop[..., 2] > 0).astype(np.float32)  # (T, J)
        self.joints[self.labeled == 0] = 0.0
        self.chunk = chunk
        # Per-pose terms of |q - t|^2 = |q|^2 - 2 q.t + |t|^2, restricted to the pose's labeled joints.
        self._t_sq = (self.joints**2).sum(-1) * self.labeled  # (T, J)
        self._t_flat = (self.joints * self.labeled[..., None]).reshape(len(crop), -1)  # (T, 2J)

    def nearest(self, joints: np.ndarray, visible: np.ndarray, labeled: np.ndarray) -> np.ndarray:
        """Index (N,) of the nearest training pose that has every `labeled` joint of the query labeled."""
        out = np.empty(len(joints), dtype=np.int64)
        missing_w = 1e9  # a neighbour that lacks a needed joint is never chosen if any candidate has it
        for s in range(0, len(joints), self.chunk):
            q, lab = joints[s:s + self.chunk], labeled[s:s + self.chunk]
            v = visible[s:s + self.chunk].astype(np.float32)
            qv = q * v[..., None]
            d = (qv**2).sum(-1) @ self.labeled.T - 2 * qv.reshape(len(q), -1) @ self._t_flat.T + v @ self._t_sq.T
            d = d / np.maximum(v.sum(1, keepdims=True), 1)
            d += missing_w * (lab.astype(np.float32) @ (1 - self.labeled).T)
            out[s:s + self.chunk] = d.argmin(1)
        return out

    def __call__(self, joints: np.ndarray, visible: np.ndarray, labeled: np.ndarray | None = None) -> np.ndarray:
        """Complete crop joints (N, J, 2) px given visible (N, J) bool -> (N, J, 2) px."""
        labeled = visible if labeled is None else labeled
        nn_idx = self.nearest(joints, visible, labeled)
        neighbour = self.joints[nn_idx]
        v = visible[..., None]
        offset = ((joints - neighbour) * v).sum(1, keepdims=True) / np.maximum(v.sum(1, keepdims=True), 1)
        return np.where(v, joints, neighbour + offset).astype(np.float32)
