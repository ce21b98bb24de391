"""Tokens in the app: each joint coloured by the token that governs it, and one paused person's tokens stepped live.

`TokenPainter` runs on the worker thread while the token view is on: per person it maps the joints into the
tokenizer's crop, takes the person's codes and, for each joint, the token that moves it most
(`edge_pct.tokens.explore.TokenExplorer`), and draws the skeleton with joints in their token's colour (the colours of
`edge-pct tokens`' pictures). It hands each frame to the GUI as a `TokenFrame`: the clean image and every person's
tokens. `TokenStepper` is the GUI-side state of a paused frame: the selected person and token, and how many codes
the token has been stepped from its own (in the codebook's distance order); each step decodes the person's tokens
again (the tokenizer decoder alone, well under a millisecond) and redraws the frame.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from edge_pct.core.geometry import apply_affine, invert_affine
from edge_pct.core.keypoints import SKELETON
from edge_pct.tokens.explore import TokenExplorer
from edge_pct.tokens.pictures import token_colors
from edge_pct.tokens.poses import crop_affines, joint_boxes

GOVERN_K = 3  # nearest other codes per token when finding which token governs a joint
BONE_COLOR = (170, 170, 170)
GHOST_COLOR = (120, 120, 120)
RING_COLOR = (255, 255, 255)


def load_explorer(model: str | None) -> tuple[TokenExplorer, str]:
    """The explorer on the tokenizer of the session's pose model: a `.pt` embeds it (None: the shipped model's); other
    model files (ONNX, engines) carry no torch tokenizer, so the shipped one stands in. Returns it and its origin."""
    from edge_pct.core.package import DEFAULT_MODEL, DEFAULT_TOKENIZER
    from edge_pct.models.factory import load_classifier
    from edge_pct.models.weights import load_tokenizer

    path = Path(model) if model else DEFAULT_MODEL
    if path.suffix == ".pt":
        return TokenExplorer(load_classifier(path).tokenizer), f"the tokenizer of {path.name}"
    return TokenExplorer(load_tokenizer(DEFAULT_TOKENIZER)), f"the shipped tokenizer ({path.name} has none)"


@dataclass(frozen=True)
class PoseTokens:
    """One person's tokens: codes (M,) int64, governing (17,) token per joint, to_image (2, 3) crop -> image affine."""

    codes: np.ndarray
    governing: np.ndarray
    to_image: np.ndarray


@dataclass(frozen=True)
class TokenFrame:
    """A processed frame for the token view: image (H, W, 3) uint8 BGR without overlay, joints (P, 17, 2) image px,
    and the P persons' tokens."""

    image: np.ndarray
    joints: np.ndarray
    tokens: list[PoseTokens] = field(default_factory=list)


def draw_token_pose(image: np.ndarray, joints: np.ndarray, governing: np.ndarray,
                    colors: list[tuple[int, int, int]], ring: int | None = None,
                    bone: tuple[int, int, int] = BONE_COLOR) -> None:
    """Skeleton (17, 2) image px on image (H, W, 3) BGR in place, joint j in the colour of token governing[j]; the
    joints of token `ring` circled."""
    scale = max(1.0, min(image.shape[:2]) / 360)
    r, t = max(3, round(3 * scale)), max(1, round(1.5 * scale))
    pts = [(int(round(x)), int(round(y))) for x, y in np.clip(joints, -1e4, 1e4)]
    for a, b in SKELETON:
        cv2.line(image, pts[a], pts[b], bone, t, cv2.LINE_AA)
    for j, p in enumerate(pts):
        cv2.circle(image, p, r, colors[int(governing[j])], -1, cv2.LINE_AA)
        if ring is not None and governing[j] == ring:
            cv2.circle(image, p, r + 3 * t, RING_COLOR, t, cv2.LINE_AA)


class TokenPainter:
    """Worker side: finds and draws each person's tokens. Thread-safe for reading (no state changes after init)."""

    def __init__(self, explorer: TokenExplorer) -> None:
        self.explorer = explorer
        self.colors = token_colors(explorer.num_tokens)

    def tokens_of(self, joints: np.ndarray) -> list[PoseTokens]:
        """Tokens of poses (P, 17, 2) image px (every joint counts as seen: PCT decodes them all)."""
        if not len(joints):
            return []
        mats = crop_affines(joint_boxes(joints), self.explorer.input_size)
        codes = self.explorer.encode(apply_affine(joints, mats))
        codes = codes.reshape(len(joints), -1)
        back = invert_affine(mats)
        return [PoseTokens(c, self.explorer.governing(c, GOVERN_K), m) for c, m in zip(codes, back, strict=True)]

    def draw(self, image: np.ndarray, joints: np.ndarray) -> TokenFrame:
        """Draw the poses (P, 17, 2) image px token-coloured on `image` in place; the TokenFrame of the image as it
        was before drawing."""
        joints = np.asarray(joints, np.float32).reshape(-1, 17, 2)
        frame = TokenFrame(image.copy(), joints, self.tokens_of(joints))
        for pose, tok in zip(joints, frame.tokens, strict=True):
            draw_token_pose(image, pose, tok.governing, self.colors)
        return frame


class TokenStepper:
    """GUI side, one paused frame: select a person and a token, step the token through its codes, render."""

    def __init__(self, painter: TokenPainter, frame: TokenFrame) -> None:
        self.painter, self.frame = painter, frame
        self.person = int(np.argmax([np.ptp(j[:, 1]) for j in frame.joints])) if len(frame.joints) else -1
        self.token: int | None = None
        self.steps: dict[tuple[int, int], int] = {}  # (person, token) -> codes stepped

    @property
    def has_person(self) -> bool:
        return self.person >= 0

    def codes(self) -> np.ndarray:
        """The selected person's current codes (M,), every stepped token applied."""
        tok = self.frame.tokens[self.person]
        codes = tok.codes.copy()
        for (p, t), s in self.steps.items():
            if p == self.person:
                codes[t] = self.painter.explorer.neighbour(tok.codes[t], s)
        return codes

    def select(self, token: int) -> None:
        self.token = int(token) % self.painter.explorer.num_tokens

    def step(self, delta: int) -> None:
        """Move the selected token (token 0 when none is) `delta` codes along its distance order."""
        if self.token is None:
            self.token = 0
        key = (self.person, self.token)
        self.steps[key] = self.steps.get(key, 0) + delta

    def select_at(self, x: float, y: float) -> int | None:
        """Select the person and token of the joint nearest to image point (x, y); the token, or None."""
        if not self.has_person:
            return None
        d = np.linalg.norm(self.frame.joints - np.array([x, y], np.float32), axis=-1)
        p, j = np.unravel_index(int(d.argmin()), d.shape)
        self.person = int(p)
        self.select(int(self.frame.tokens[self.person].governing[j]))
        return self.token

    def caption(self) -> str:
        if not self.has_person:
            return "Tokens: no person in this frame"
        if self.token is None:
            return "Tokens: click a joint or a token, then [ / ] step its code"
        own = int(self.frame.tokens[self.person].codes[self.token])
        step = self.steps.get((self.person, self.token), 0)
        return f"token {self.token}: code {own} -> {int(self.codes()[self.token])} (step {step:+d})   [ / ] step"

    def render(self) -> np.ndarray:
        """The frame with every person token-coloured; the selected one decoded from its current codes over its
        unstepped decoding (grey), the selected token's joints circled."""
        image = self.frame.image.copy()
        colors = self.painter.colors
        for i, (pose, tok) in enumerate(zip(self.frame.joints, self.frame.tokens, strict=True)):
            if i != self.person:
                draw_token_pose(image, pose, tok.governing, colors)
        if self.has_person:
            tok, explorer = self.frame.tokens[self.person], self.painter.explorer
            base = apply_affine(explorer.decode(tok.codes)[None], tok.to_image[None])[0]
            now = apply_affine(explorer.decode(self.codes())[None], tok.to_image[None])[0]
            draw_token_pose(image, base, tok.governing, [GHOST_COLOR] * len(colors), bone=GHOST_COLOR)
            draw_token_pose(image, now, tok.governing, colors, ring=self.token)
        return image
