"""One pose at a time: its tokens, what each token governs, and the pose with one token stepped through its codes.

The CLI pictures and the app share this. A pose's tokens are the tokenizer's codes for it (hard nearest-code
assignment); decoding a token set runs the tokenizer decoder alone (a few hundred microseconds per pose on a CPU),
so stepping a token through its codes stays live. A token's codes are ordered by distance from its current code in
the codebook: step 1 is the nearest other code, step 2 the next, and so on. Which token governs a joint is measured
on the pose itself: each token takes its `k` nearest other codes and the joint's mean shift is compared across
tokens.
"""

from __future__ import annotations

import numpy as np
import torch

from edge_pct.models.tokenizer import PoseTokenizer


class TokenExplorer:
    """The per-pose operations on a PoseTokenizer (eval mode). Joints are (17, 2) or (B, 17, 2) float32 crop px of the
    tokenizer's frame (`input_size`); codes are (M,) or (B, M) int64."""

    def __init__(self, tokenizer: PoseTokenizer) -> None:
        self.tokenizer = tokenizer.eval()
        self.num_tokens = tokenizer.cfg.num_tokens
        self.codebook_size = tokenizer.cfg.codebook_size
        self.input_size: tuple[int, int] = tuple(tokenizer.cfg.input_size)
        book = tokenizer.codebook.codebook
        with torch.no_grad():
            dist = torch.cdist(book, book)
        self._order = dist.argsort(dim=1).numpy()  # (V, V): each code's codes from nearest (itself) to farthest

    @torch.no_grad()
    def encode(self, joints: np.ndarray, visible: np.ndarray | None = None) -> np.ndarray:
        """Codes (M,) of one pose (17, 2), or (B, M) of a batch; `visible` (…, 17) bool, default all."""
        j = torch.as_tensor(np.asarray(joints, np.float32))
        single = j.ndim == 2
        j = j[None] if single else j
        v = (torch.ones(j.shape[:2], dtype=torch.bool) if visible is None
             else torch.as_tensor(np.asarray(visible, bool)).reshape(j.shape[:2]))
        codes = self.tokenizer.encode(j, v).numpy()
        return codes[0] if single else codes

    @torch.no_grad()
    def decode(self, codes: np.ndarray) -> np.ndarray:
        """Joints (17, 2) of a token set (M,), or (B, 17, 2) of (B, M)."""
        c = torch.as_tensor(np.asarray(codes, np.int64))
        single = c.ndim == 1
        out = self.tokenizer.decode(c[None] if single else c).numpy()
        return out[0] if single else out

    def neighbour(self, code: int, step: int) -> int:
        """The code `step` places from `code` in its distance order (0: itself; wraps past V - 1)."""
        return int(self._order[int(code), step % self.codebook_size])

    def stepped(self, codes: np.ndarray, token: int, step: int) -> np.ndarray:
        """A copy of `codes` (M,) with token `token` on the `step`-th nearest code of its current one."""
        out = np.array(codes, np.int64, copy=True)
        out[token] = self.neighbour(out[token], step)
        return out

    def swaps(self, codes: np.ndarray, token: int, alternatives: np.ndarray) -> np.ndarray:
        """Joints (K, 17, 2) of the pose with token `token` replaced by each code of `alternatives` (K,)."""
        batch = np.repeat(np.asarray(codes, np.int64)[None], len(alternatives), 0)
        batch[:, token] = alternatives
        return self.decode(batch)

    def influence(self, codes: np.ndarray, k: int = 3) -> np.ndarray:
        """(M, 17) mean joint shift, crop px, when each token takes its k nearest other codes (M * k decodes)."""
        base = self.decode(codes)
        m = self.num_tokens
        batch = np.repeat(np.asarray(codes, np.int64)[None], m * k, 0)
        token = np.repeat(np.arange(m), k)
        step = np.tile(np.arange(1, k + 1), m)
        batch[np.arange(m * k), token] = self._order[batch[np.arange(m * k), token], step]
        shift = np.linalg.norm(self.decode(batch) - base, axis=-1)  # (M * k, 17)
        return shift.reshape(m, k, -1).mean(1)

    def governing(self, codes: np.ndarray, k: int = 3) -> np.ndarray:
        """(17,) int: the token whose code changes move each joint most, on this pose."""
        return self.influence(codes, k).argmax(0)
