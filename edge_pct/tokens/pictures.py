"""The explorer's pictures (OpenCV on numpy, BGR uint8): token map, token swaps, codebook atlas, territory matrix.

Poses are in the tokenizer's crop frame (x right, y down, crop px) and drawn scaled into panels on a dark
background; every picture ends with a short legend saying what is drawn. Tokens have fixed colours (`token_colors`)
shared with the app, so token 7 is the same colour in every picture. `encode_png` turns a picture into PNG bytes
for an atomic write.
"""

from __future__ import annotations

import colorsys
from collections.abc import Sequence

import cv2
import numpy as np

from edge_pct.core.keypoints import COCO17_NAMES, SKELETON

BACKGROUND = (28, 28, 28)
BASE_COLOR = (235, 235, 235)  # the unswapped pose
GHOST_COLOR = (110, 110, 110)  # the reference pose under a changed one
TEXT_COLOR = (225, 225, 225)
MUTED_TEXT = (150, 150, 150)
FONT = cv2.FONT_HERSHEY_SIMPLEX
LINE = cv2.LINE_AA
LEGEND_LINE_PX = 18


def token_colors(num_tokens: int) -> list[tuple[int, int, int]]:
    """One BGR colour per token, hues spread by the golden angle (neighbouring tokens differ strongly)."""
    out = []
    for m in range(num_tokens):
        # saturation varies, brightness stays high: every colour reads on the dark background
        r, g, b = colorsys.hsv_to_rgb((m * 0.618034) % 1.0, 0.55 if m % 2 else 0.85, 1.0)
        out.append((int(b * 255), int(g * 255), int(r * 255)))
    return out


def encode_png(image: np.ndarray) -> bytes:
    """PNG bytes of a BGR picture."""
    ok, buf = cv2.imencode(".png", image)
    if not ok:
        raise RuntimeError("OpenCV could not encode the PNG")
    return buf.tobytes()


def _pt(xy: np.ndarray, scale: float, offset: tuple[int, int]) -> tuple[int, int]:
    return int(round(xy[0] * scale + offset[0])), int(round(xy[1] * scale + offset[1]))


def draw_pose(canvas: np.ndarray, joints: np.ndarray, scale: float, offset: tuple[int, int],
              joint_colors: Sequence[tuple[int, int, int]] | tuple[int, int, int], bone_color: tuple[int, int, int],
              thickness: int = 2, radius: int = 4) -> None:
    """Draw one skeleton (17, 2) crop px into `canvas` at `scale` px per crop px, shifted by `offset` (x, y)."""
    colors = [joint_colors] * len(joints) if isinstance(joint_colors[0], int) else list(joint_colors)
    for a, b in SKELETON:
        cv2.line(canvas, _pt(joints[a], scale, offset), _pt(joints[b], scale, offset), bone_color, thickness, LINE)
    for j, xy in enumerate(joints):
        cv2.circle(canvas, _pt(xy, scale, offset), radius, colors[j], -1, LINE)


def _text(canvas: np.ndarray, text: str, xy: tuple[int, int], scale: float = 0.45,
          color: tuple[int, int, int] = TEXT_COLOR, thickness: int = 1) -> None:
    cv2.putText(canvas, text, xy, FONT, scale, color, thickness, LINE)


def _wrap(text: str, width_px: int, scale: float) -> list[str]:
    lines, line = [], ""
    for word in text.split():
        trial = f"{line} {word}".strip()
        if line and cv2.getTextSize(trial, FONT, scale, 1)[0][0] > width_px:
            lines.append(line)
            line = word
        else:
            line = trial
    return [*lines, line] if line else lines


def with_legend(image: np.ndarray, text: str, title: str | None = None, min_width: int = 640) -> np.ndarray:
    """The picture (centred, at least `min_width` wide) with a title band on top and the legend `text` below it,
    wrapped to the width, on the background colour."""
    if image.shape[1] < min_width:
        pad = min_width - image.shape[1]
        image = cv2.copyMakeBorder(image, 0, 0, pad // 2, pad - pad // 2, cv2.BORDER_CONSTANT, value=BACKGROUND)
    w = image.shape[1]
    lines = _wrap(text, w - 20, 0.42)
    top = 30 if title else 0
    out = np.full((image.shape[0] + top + LEGEND_LINE_PX * len(lines) + 10, w, 3), BACKGROUND, np.uint8)
    if title:
        _text(out, title, (10, 21), 0.6, thickness=1)
    out[top:top + image.shape[0]] = image
    for i, line in enumerate(lines):
        _text(out, line, (10, top + image.shape[0] + 16 + i * LEGEND_LINE_PX), 0.42, MUTED_TEXT)
    return out


def _panel(input_size: tuple[int, int], scale: float, margin: int = 12) -> tuple[np.ndarray, tuple[int, int]]:
    w, h = input_size
    return (np.full((int(h * scale) + 2 * margin, int(w * scale) + 2 * margin, 3), BACKGROUND, np.uint8),
            (margin, margin))


def _grid(panels: Sequence[np.ndarray], cols: int) -> np.ndarray:
    h, w = panels[0].shape[:2]
    rows = -(-len(panels) // cols)
    out = np.full((rows * h, cols * w, 3), BACKGROUND, np.uint8)
    for i, p in enumerate(panels):
        r, c = divmod(i, cols)
        out[r * h:(r + 1) * h, c * w:(c + 1) * w] = p
    return out


def token_map_picture(joints: np.ndarray, codes: np.ndarray, governing: np.ndarray, input_size: tuple[int, int],
                      source: str) -> np.ndarray:
    """The pose (17, 2) decoded from its codes (M,), each joint in the colour of the token governing it (17,),
    beside the list of the M tokens with their codes and the joints they govern."""
    colors = token_colors(len(codes))
    scale = 2.0
    panel, off = _panel(input_size, scale)
    draw_pose(panel, joints, scale, off, [colors[t] for t in governing], GHOST_COLOR, 2, 6)
    for j, xy in enumerate(joints):
        x, y = _pt(xy, scale, off)
        _text(panel, f"t{governing[j]}", (x + 8, y - 6), 0.42, colors[governing[j]])
    per_col = -(-len(codes) // 2)
    table = np.full((panel.shape[0], 2 * 250, 3), BACKGROUND, np.uint8)
    row_h = max(14, min(22, (panel.shape[0] - 20) // per_col))
    for m, code in enumerate(codes):
        col, row = divmod(m, per_col)
        x, y = 10 + col * 250, 20 + row * row_h
        cv2.rectangle(table, (x, y - 10), (x + 12, y + 2), colors[m], -1)
        names = ", ".join(COCO17_NAMES[j].replace("left_", "L ").replace("right_", "R ")
                          for j in np.nonzero(governing == m)[0])
        _text(table, f"t{m:<2d} {int(code):4d}  {names}"[:38], (x + 18, y), 0.38,
              TEXT_COLOR if names else MUTED_TEXT)
    legend = (f"Pose: {source}. Left: the pose decoded from its {len(codes)} tokens; each joint is coloured by the "
              "token that moves it most when that token takes its nearest other codes (tN = token N). Right: token, "
              "its code, the joints it governs on this pose.")
    return with_legend(np.concatenate([panel, table], 1), legend, "Token map")


def swap_picture(base: np.ndarray, swapped: np.ndarray, token: int, code: int, alternatives: Sequence[int],
                 moved: Sequence[str], input_size: tuple[int, int], num_tokens: int, threshold: float) -> np.ndarray:
    """One token's swaps: the pose (17, 2) in white, the K poses (K, 17, 2) with that token on other codes overlaid
    in its colour, the joints that moved circled."""
    color = token_colors(num_tokens)[token]
    scale = 2.0
    panel, off = _panel(input_size, scale)
    layer = panel.copy()
    for pose in swapped:
        draw_pose(layer, pose, scale, off, color, color, 2, 4)
    panel = cv2.addWeighted(layer, 0.85, panel, 0.15, 0)
    draw_pose(panel, base, scale, off, BASE_COLOR, BASE_COLOR, 2, 4)
    for j in (COCO17_NAMES.index(n) for n in moved):
        cv2.circle(panel, _pt(base[j], scale, off), 13, color, 2, LINE)
    alts = ", ".join(str(int(a)) for a in alternatives[:8]) + (" ..." if len(alternatives) > 8 else "")
    legend = (f"White: the pose (token {token} on code {code}). Colour: token {token} on {len(alternatives)} other "
              f"codes it takes most on real poses ({alts}). Circled: the joints that move by more than {threshold:.0%} "
              f"of the box size on average: {', '.join(moved) or 'none'}.")
    return with_legend(panel, legend, f"Token {token}: code swaps")


def swap_grid_picture(base: np.ndarray, swaps: Sequence[np.ndarray], labels: Sequence[str],
                      input_size: tuple[int, int], k: int, cols: int = 9) -> np.ndarray:
    """Every token's swaps on one pose: panel m shows the pose (grey) and token m on k other codes (its colour)."""
    colors = token_colors(len(swaps))
    panels = []
    for m, (poses, label) in enumerate(zip(swaps, labels, strict=True)):
        panel, off = _panel(input_size, 0.75, 8)
        for pose in poses:
            draw_pose(panel, pose, 0.75, off, colors[m], colors[m], 2, 2)
        draw_pose(panel, base, 0.75, off, GHOST_COLOR, GHOST_COLOR, 1, 2)
        _text(panel, f"t{m} {label}", (4, 12), 0.36, colors[m])
        panels.append(panel)
    legend = (f"One pose (grey, on top) with one token at a time on the {k} other codes it takes most on real poses "
              "(its colour, where the pose changes). A local token moves one limb and leaves the rest in place; the "
              "label is the limb it moves most over all the measured real poses.")
    return with_legend(_grid(panels, cols), legend, "Token swaps, every token")


def atlas_picture(mean_pose: np.ndarray, changed: np.ndarray, entries: Sequence[tuple[int, int, int]],
                  input_size: tuple[int, int], num_tokens: int, box_size: float, arrow_gain: float = 4.0,
                  cols: int = 8) -> np.ndarray:
    """The most used codes, each as the change it makes to the mean pose: mean pose (17, 2) in grey, the mean pose plus
    the code's change (N, 17, 2) over it in the token's colour, arrows along each joint's change `arrow_gain` times
    longer (the changes are small).

    entries: (code, token it was placed in, how often the code occurs on real poses), one per changed pose;
    box_size: the mean pose's box size in crop px (the unit of the shifts printed).
    """
    colors = token_colors(num_tokens)
    scale = 0.9
    panels = []
    for pose, (code, token, count) in zip(changed, entries, strict=True):
        panel, off = _panel(input_size, scale, 8)
        draw_pose(panel, mean_pose, scale, off, GHOST_COLOR, GHOST_COLOR, 3, 3)
        draw_pose(panel, pose, scale, off, colors[token], colors[token], 1, 2)
        shift = np.linalg.norm(pose - mean_pose, axis=-1) / box_size
        for a, b in zip(mean_pose, pose, strict=True):
            if np.linalg.norm(b - a) * scale * arrow_gain > 4:
                tip = a + (b - a) * arrow_gain
                cv2.arrowedLine(panel, _pt(a, scale, off), _pt(tip, scale, off), TEXT_COLOR, 1, LINE, tipLength=0.3)
        top = COCO17_NAMES[int(shift.argmax())].replace("left_", "L ").replace("right_", "R ")
        _text(panel, f"code {code} in t{token}", (4, 12), 0.36, colors[token])
        _text(panel, f"{count:,} uses, {top} {shift.max():.0%}", (4, panel.shape[0] - 5), 0.34, MUTED_TEXT)
        panels.append(panel)
    legend = ("The most used codes on real poses, each put into the token that uses it most. Grey: the mean pose. "
              "Colour: the mean pose plus the code's average change (the code swapped into that token of real poses "
              f"that had another code, the joint shifts averaged in box sizes); arrows: those changes x{arrow_gain:g}. "
              "Bottom: uses on real poses, the joint that moves most and its average shift in box sizes.")
    return with_legend(_grid(panels, cols), legend, "Codebook atlas")


def territory_picture(rate: np.ndarray, limbs: Sequence[str], cell: int = 18) -> np.ndarray:
    """The per-token move rate (M, 17) as a heat map: row = token, column = joint, brighter = moved more often."""
    m, j = rate.shape
    left, top = 70, 90
    out = np.full((top + m * cell + 8, left + j * cell + 90, 3), BACKGROUND, np.uint8)
    heat = cv2.applyColorMap((np.clip(rate, 0, 1) * 255).astype(np.uint8), cv2.COLORMAP_INFERNO)
    out[top:top + m * cell, left:left + j * cell] = cv2.resize(heat, (j * cell, m * cell),
                                                                interpolation=cv2.INTER_NEAREST)
    colors = token_colors(m)
    for t in range(m):
        _text(out, f"t{t}", (8, top + t * cell + cell - 5), 0.38, colors[t])
        _text(out, limbs[t], (left + j * cell + 6, top + t * cell + cell - 5), 0.34, MUTED_TEXT)
    for jj, name in enumerate(COCO17_NAMES):
        label = name.replace("left_", "L ").replace("right_", "R ")
        img = np.full((cell, top - 4, 3), BACKGROUND, np.uint8)
        _text(img, label, (2, cell - 5), 0.36)
        out[0:top - 4, left + jj * cell:left + (jj + 1) * cell] = cv2.rotate(img, cv2.ROTATE_90_COUNTERCLOCKWISE)
    legend = ("Share of each token's swaps (rows) that move each joint (columns) by more than the threshold, on real "
              "poses; right: the limb the token moves most. A local tokenizer shows short bright runs inside one "
              "limb.")
    return with_legend(out, legend, "Token territories")
