"""Drawing on BGR frames with cv2 (anti-aliased): COCO-17 skeletons with track ids, and a small HUD.

Pure numpy + cv2, no Qt: the stream CLI, `bench` and the app share it. Functions draw in place on a
contiguous (H, W, 3) uint8 BGR image and return it. Sizes scale with the image so the overlay reads the
same at 320x240 and 1920x1080. Joints below the confidence threshold are still drawn (PCT decodes every
joint, occluded ones included) but hollow, with dimmed dashed bones, so they are told apart at a glance.
"""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np

from edge_pct.core.keypoints import COCO17_NAMES, NUM_JOINTS, SKELETON

# BGR colours by body side (the person's own left/right, from the COCO17 name prefixes).
COLOR_LEFT = (255, 160, 0)  # blue
COLOR_RIGHT = (0, 140, 255)  # orange
COLOR_CENTRE = (0, 220, 0)  # green: nose, and bones joining left to right
COLOR_LABEL = (255, 255, 255)
COLOR_LABEL_OUTLINE = (0, 0, 0)
LOW_CONF_DIM = 0.5  # brightness factor of bones touching a low-confidence joint
BOX_COLOR = (0, 220, 255)  # yellow: the crop box of each person
HUD_BG = (0, 0, 0)
HUD_TEXT = (255, 255, 255)
HUD_ALPHA = 0.6  # opacity of the HUD box
FONT = cv2.FONT_HERSHEY_SIMPLEX
_LINE = cv2.LINE_AA
_COORD_LIMIT_FACTOR = 8  # coordinates are clipped to +-8x the image size so cv2 never sees int overflow


def _side_color(name: str) -> tuple[int, int, int]:
    if name.startswith("left_"):
        return COLOR_LEFT
    if name.startswith("right_"):
        return COLOR_RIGHT
    return COLOR_CENTRE


JOINT_COLORS: tuple[tuple[int, int, int], ...] = tuple(_side_color(n) for n in COCO17_NAMES)
# A bone takes its side's colour when both ends are on that side, else the centre colour (shoulders, hips).
EDGE_COLORS: tuple[tuple[int, int, int], ...] = tuple(
    JOINT_COLORS[a] if JOINT_COLORS[a] == JOINT_COLORS[b] else COLOR_CENTRE for a, b in SKELETON
)


def _dim(color: tuple[int, int, int]) -> tuple[int, int, int]:
    b, g, r = color
    return int(b * LOW_CONF_DIM), int(g * LOW_CONF_DIM), int(r * LOW_CONF_DIM)


def _point(xy: np.ndarray) -> tuple[int, int]:
    return int(round(xy[0])), int(round(xy[1]))


def _dashed_line(
    image: np.ndarray, p0: np.ndarray, p1: np.ndarray, color: tuple[int, int, int], thickness: int, dash: float
) -> None:
    """Dashes of length `dash` px with equal gaps from p0 to p1."""
    n = max(1, int(np.hypot(*(p1 - p0)) // dash))
    for i in range(0, n, 2):
        a, b = p0 + (p1 - p0) * (i / n), p0 + (p1 - p0) * (min(i + 1, n) / n)
        cv2.line(image, _point(a), _point(b), color, thickness, _LINE)


def _draw_bones(
    image: np.ndarray, joints: np.ndarray, confident: np.ndarray, finite: np.ndarray, radius: int, thickness: int
) -> None:
    for (a, b), color in zip(SKELETON, EDGE_COLORS, strict=True):
        if not (finite[a] and finite[b]):
            continue
        p0, p1 = joints[a], joints[b]
        if confident[a] and confident[b]:
            cv2.line(image, _point(p0), _point(p1), color, thickness, _LINE)
            continue
        # Stop the bone at the rim of a hollow joint so the hollow centre stays visible.
        length = float(np.hypot(*(p1 - p0)))
        if length <= 2 * (radius + 1):
            continue
        unit = (p1 - p0) / length
        q0 = p0 if confident[a] else p0 + unit * (radius + 1)
        q1 = p1 if confident[b] else p1 - unit * (radius + 1)
        _dashed_line(image, q0, q1, _dim(color), thickness, dash=3.0 * radius)


def _draw_label(image: np.ndarray, joints: np.ndarray, finite: np.ndarray, text: str, radius: int) -> None:
    """Track label above the top-left corner of the person's joint box, kept inside the image."""
    height, width = image.shape[:2]
    scale = max(0.4, min(height, width) / 800)
    (text_w, text_h), _ = cv2.getTextSize(text, FONT, scale, 2)
    x = int(np.clip(joints[finite, 0].min(), 0, max(0, width - text_w)))
    y = int(np.clip(joints[finite, 1].min() - 2 * radius, text_h, max(text_h, height - 1)))
    thickness = max(1, round(scale * 1.5))
    cv2.putText(image, text, (x, y), FONT, scale, COLOR_LABEL_OUTLINE, thickness + 2, _LINE)  # readable anywhere
    cv2.putText(image, text, (x, y), FONT, scale, COLOR_LABEL, thickness, _LINE)


def draw_poses(
    image: np.ndarray,
    joints: np.ndarray,
    confidence: np.ndarray,
    track_ids: Sequence[int] | np.ndarray | None = None,
    threshold: float = 0.3,
) -> np.ndarray:
    """Draw COCO-17 skeletons in place.

    Args:
        image: (H, W, 3) uint8 BGR, contiguous; modified in place.
        joints: (P, 17, 2) float, image-pixel xy; non-finite joints are skipped, off-image ones are clipped by cv2.
        confidence: (P, 17) in [0, 1]; >= threshold -> filled joint and solid bone, below -> hollow joint and
            dimmed dashed bones.
        track_ids: (P,) ints drawn as "#id" above each person, or None.
        threshold: confidence at which a joint counts as visible.

    Returns:
        image.
    """
    joints = np.asarray(joints, dtype=np.float64)
    confidence = np.asarray(confidence, dtype=np.float64)
    if joints.ndim != 3 or joints.shape[1:] != (NUM_JOINTS, 2) or confidence.shape != joints.shape[:2]:
        raise ValueError(
            f"Expected joints (P, {NUM_JOINTS}, 2) and confidence (P, {NUM_JOINTS}), "
            f"got {joints.shape} and {confidence.shape}."
        )
    if track_ids is not None and len(track_ids) != len(joints):
        raise ValueError(f"Got {len(track_ids)} track ids for {len(joints)} persons.")
    height, width = image.shape[:2]
    radius = max(2, round(min(height, width) / 160))
    thickness = max(1, radius // 2)
    limit = _COORD_LIMIT_FACTOR * max(height, width)
    for p in range(len(joints)):
        finite = np.isfinite(joints[p]).all(axis=1)
        pts = np.clip(np.nan_to_num(joints[p]), -limit, limit)
        confident = confidence[p] >= threshold
        _draw_bones(image, pts, confident, finite, radius, thickness)
        for j in np.flatnonzero(finite):
            fill = -1 if confident[j] else thickness
            cv2.circle(image, _point(pts[j]), radius, JOINT_COLORS[j], fill, _LINE)
        if track_ids is not None and finite.any():
            _draw_label(image, pts, finite, f"#{int(track_ids[p])}", radius)
    return image


def draw_persons(image: np.ndarray, persons: list, threshold: float = 0.3, boxes: bool = False) -> np.ndarray:
    """Draw pipeline persons (`edge_pct.stream.pipeline.PersonPose`: joints, confidence, track_id, box) on image
    (H, W, 3) uint8 BGR in place, with each person's crop box when `boxes`; returns the image."""
    if boxes:
        thickness = max(1, round(min(image.shape[:2]) / 360))
        for p in persons:
            x1, y1, x2, y2 = (int(round(float(v))) for v in p.box[:4])
            cv2.rectangle(image, (x1, y1), (x2, y2), BOX_COLOR, thickness, _LINE)
    if persons:
        draw_poses(image, np.stack([p.joints for p in persons]), np.stack([p.confidence for p in persons]),
                   [p.track_id for p in persons], threshold)
    return image


def draw_hud(image: np.ndarray, lines: list[str]) -> np.ndarray:
    """Draw text lines (FPS, stage ms, persons, backend...) in a semi-transparent box at the top left, in place.

    Args:
        image: (H, W, 3) uint8 BGR, contiguous; modified in place.
        lines: one string per row.

    Returns:
        image.
    """
    if not lines:
        return image
    height, width = image.shape[:2]
    scale = max(0.35, min(height, width) / 1000)
    pad = max(3, round(min(height, width) / 120))
    sizes = [cv2.getTextSize(line, FONT, scale, 1) for line in lines]
    line_h = max(h + base for (_, h), base in sizes) + pad // 2
    x1 = min(width, 2 * pad + max(w for (w, _), _ in sizes) + 2 * pad)
    y1 = min(height, 2 * pad + line_h * len(lines) + pad)
    roi = image[pad:y1, pad:x1]
    if roi.size:
        # Blend only the box region, so the rest of the frame stays untouched.
        roi[:] = cv2.addWeighted(roi, 1.0 - HUD_ALPHA, np.full_like(roi, HUD_BG), HUD_ALPHA, 0.0)
    for i, ((_, text_h), _) in enumerate(sizes):
        y = 2 * pad + i * line_h + text_h
        cv2.putText(image, lines[i], (2 * pad, y), FONT, scale, HUD_TEXT, 1, _LINE)
    return image
