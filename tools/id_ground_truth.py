"""Make the hand-checked identity ground truth of `tests/data/ids/vtest_ids.txt` (MOT Challenge format).

Three steps, all reproducible from the video and this file:
1. bootstrap: the shipped YOLOX-Nano person detector on every frame, once on the whole frame and once on each of
   four overlapping quarter tiles (upscaled by the detector's letterbox, so that the small pedestrians of vtest.avi
   are found), merged by NMS; cached in `--cache` so that later runs skip it.
2. link: an offline, conservative IoU linker (constant-velocity prediction, Hungarian assignment, short gaps
   bridged by linear interpolation, which an online tracker cannot do because it needs the future box).
3. correct: the `CORRECTIONS` table below, written by looking at the contact sheets (`--sheets DIR`): every 5th
   frame, every 2nd frame around each crossing, and an id gallery (one row of crops per id across its life, where
   a swap shows as a change of clothes along a row).

    python tools/id_ground_truth.py --video ../shared/data/videos/vtest.avi --frames 300 \
        --out tests/data/ids/vtest_ids.txt --sheets runs/id_gt/sheets

The corrections refer to the ids of the linker (before the final renumbering by first appearance), so they hold for
the cached detections; with another onnxruntime build the bootstrap may differ and the table must be re-checked.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np
from scipy.optimize import linear_sum_assignment

from edge_pct.core.errors import InputFileError, run_reporting_errors
from edge_pct.eval.identity import write_mot
from edge_pct.stream.detectors.base import box_iou, nms
from edge_pct.stream.detectors.factory import create_detector

SCORE_THRESHOLD = 0.25  # low: the linker and the length filter remove the flicker
MIN_HEIGHT = 22.0  # px in the 480x360 frame: a pedestrian smaller than this is not labelled
MIN_TRACK = 8  # frames: a shorter linked track is a detector blink, not a person
MAX_GAP = 10  # frames the linker bridges (interpolated) when a person is missed or briefly hidden
LINK_IOU = 0.3  # IoU of a detection with a track's predicted box to continue the track

# Hand corrections, applied in order to the linker's ids (see the module docstring). Operations:
#   ("delete", id)                          a false track (pole, reflection, bag) or one below the labelling rule
#   ("cut", id, first, last)                drop frames first..last (1-based, inclusive) of a track
#   ("split", id, frame, new_id)            frames >= frame of `id` become `new_id` (an id swap or a wrong join)
#   ("merge", keep, into_keep)              track `into_keep` becomes `keep` (a fragment of the same person)
#   ("swap", a, b, frame)                   from `frame` on, a and b exchange ids (two people crossing)
#   ("box", id, frame, x, y, w, h)          add or replace one box (MOT xywh), e.g. a person the detector missed
# Letters name the people of the notes in tests/data/ids/README.md.
CORRECTIONS: list[tuple] = [
    ("delete", 4), ("delete", 10), ("delete", 12), ("delete", 21),  # blue post, far bin, the rock twice: no people
    # B (black jacket, jeans): behind the sign 20-22, then 7; at 106 the linker's 11 jumps from C onto B; 18 is B
    # leaving the sign to the right after 153 (its first frames are the sign itself)
    ("merge", 2, 7), ("split", 11, 106, 101), ("cut", 101, 106, 107), ("merge", 2, 101),
    ("cut", 18, 153, 155), ("merge", 2, 18),
    # the group at the assembly-point sign (frames 37-150): A (grey jacket, 3) stays left of the sign as 8 from 53;
    # D (black coat from the right, 1) stands behind the sign as 14 (to 106) and 16, and walks out right as the
    # second half of 15 (from 152); C (black coat, 8 at 40-52) walks left as 11, turns back and passes right as 14
    ("split", 14, 107, 114), ("split", 8, 53, 108), ("merge", 3, 108),
    ("merge", 1, 14), ("merge", 1, 16), ("split", 15, 152, 115), ("merge", 1, 115),
    ("merge", 8, 11), ("merge", 8, 114),
    ("merge", 15, 19),  # H (white hood): 15 until 151, then 19
    # the couple R (red jacket, 5) and W (black coat, 6) cross M (jeans, 9) at 158-166: 9 jumps onto W at 159, 5 onto
    # M at 162, R comes back as 20
    ("split", 5, 162, 105), ("split", 9, 159, 109), ("merge", 6, 109), ("merge", 5, 20), ("merge", 9, 105),
    ("cut", 23, 279, 282), ("merge", 23, 24),  # behind the lamp post 279-282 the box took in the sign
]


def read_frames(video: Path, count: int) -> Iterator[np.ndarray]:
    """The first `count` BGR frames (H, W, 3) uint8 of `video`; InputFileError if it cannot be read."""
    cap = cv2.VideoCapture(str(video))
    if not cap.isOpened():
        raise InputFileError(f"Video '{video}' cannot be opened: pass --video PATH to a readable video file")
    try:
        for _ in range(count):
            ok, frame = cap.read()
            if not ok:
                return
            yield frame
    finally:
        cap.release()


def detect_tiled(detector, frame: np.ndarray) -> np.ndarray:
    """frame (H, W, 3) -> (D, 5) float32 [x1, y1, x2, y2, score] px: the whole frame plus four overlapping quarter
    tiles (60% of each side), merged by NMS at IoU 0.5. A box cut by a tile edge loses to the whole-frame box."""
    h, w = frame.shape[:2]
    tw, th = int(w * 0.6), int(h * 0.6)
    out = [detector(frame)]
    for x0 in (0, w - tw):
        for y0 in (0, h - th):
            d = detector(frame[y0 : y0 + th, x0 : x0 + tw]).copy()
            x1, y1, x2, y2 = d[:, 0], d[:, 1], d[:, 2], d[:, 3]
            cut = ((x0 > 0) & (x1 < 2)) | ((x0 + tw < w) & (x2 > tw - 2))
            cut |= ((y0 > 0) & (y1 < 2)) | ((y0 + th < h) & (y2 > th - 2))
            d = d[~cut]
            d[:, [0, 2]] += x0
            d[:, [1, 3]] += y0
            out.append(d)
    boxes = np.concatenate(out)
    keep = nms(boxes[:, :4], boxes[:, 4], 0.5)
    return boxes[keep]


def bootstrap(video: Path, frames: int, cache: Path) -> list[np.ndarray]:
    """Per-frame detections (D, 5) for frames 1..frames, from `cache` (.npz) when it holds as many frames."""
    if cache.is_file():
        data = np.load(cache)
        dets = [data[f"f{i}"] for i in range(int(data["n"]))]
        if len(dets) >= frames:
            return dets[:frames]
    detector = create_detector("onnx", None, max_boxes=100, score_threshold=SCORE_THRESHOLD, threads=1)
    with detector:
        dets = [detect_tiled(detector, f) for f in read_frames(video, frames)]
    cache.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(cache, n=len(dets), **{f"f{i}": d for i, d in enumerate(dets)})
    return dets


def _predict(track: dict, frame: int) -> np.ndarray:
    """A track's box (4,) xyxy at `frame`: the last box moved by the mean velocity over its last 5 observations."""
    fs, bs = track["frames"][-5:], np.array(track["boxes"][-5:])
    vel = (bs[-1] - bs[0]) / (fs[-1] - fs[0]) if len(fs) > 1 else np.zeros(4)
    centre_vel = np.array([vel[0] + vel[2], vel[1] + vel[3], vel[0] + vel[2], vel[1] + vel[3]]) / 2
    return bs[-1] + centre_vel * (frame - fs[-1])


def _assign(tracks: list[dict], dets: np.ndarray, free: np.ndarray, frame: int) -> None:
    """Hungarian match of `tracks` to the free detections at IoU >= LINK_IOU; matched tracks take the box."""
    idx = np.flatnonzero(free)
    if not tracks or not idx.size:
        return
    pred = np.stack([_predict(t, frame) for t in tracks])
    iou = box_iou(pred, dets[idx, :4])
    rows, cols = linear_sum_assignment(-iou)
    for r, c in zip(rows, cols, strict=True):
        if iou[r, c] >= LINK_IOU:
            tracks[r]["frames"].append(frame)
            tracks[r]["boxes"].append(dets[idx[c], :4].astype(np.float64))
            free[idx[c]] = False


def link(dets: list[np.ndarray], birth_score: float = 0.4) -> dict[int, dict[int, np.ndarray]]:
    """Offline linking of per-frame detections (D, 5) into tracks: id -> {frame (1-based): (4,) xyxy px}.

    Conservative: tracks seen in the previous frame match first, then older ones by age (a matching cascade), each
    by Hungarian assignment on IoU with the constant-velocity prediction; only a detection scoring >= birth_score
    starts a track. Gaps up to MAX_GAP frames are then filled by linear interpolation, and tracks observed in fewer
    than MIN_TRACK frames are dropped.
    """
    tracks: list[dict] = []
    for frame, d in enumerate(dets, 1):
        free = np.ones(len(d), bool)
        live = [t for t in tracks if frame - t["frames"][-1] <= MAX_GAP]
        for age in range(1, MAX_GAP + 1):
            _assign([t for t in live if frame - t["frames"][-1] == age], d, free, frame)
        for i in np.flatnonzero(free & (d[:, 4] >= birth_score)):
            tracks.append({"frames": [frame], "boxes": [d[i, :4].astype(np.float64)]})
    out: dict[int, dict[int, np.ndarray]] = {}
    for t in tracks:
        if len(t["frames"]) < MIN_TRACK:
            continue
        fs, bs = np.array(t["frames"]), np.array(t["boxes"])
        full = np.arange(fs[0], fs[-1] + 1)
        interp = np.stack([np.interp(full, fs, bs[:, k]) for k in range(4)], axis=1)
        out[len(out) + 1] = {int(f): b for f, b in zip(full, interp, strict=True)}
    return out


def apply_corrections(tracks: dict[int, dict[int, np.ndarray]], table: list[tuple]) -> dict[int, dict[int, np.ndarray]]:
    """The CORRECTIONS operations (see there) applied in order to a copy of `tracks` (id -> {frame: xyxy})."""
    t = {i: dict(fb) for i, fb in tracks.items()}
    for op, *a in table:
        if op == "delete":
            t.pop(a[0])
        elif op == "cut":
            t[a[0]] = {f: b for f, b in t[a[0]].items() if not a[1] <= f <= a[2]}
        elif op == "split":
            t[a[2]] = {f: b for f, b in t[a[0]].items() if f >= a[1]}
            t[a[0]] = {f: b for f, b in t[a[0]].items() if f < a[1]}
        elif op == "merge":
            t[a[0]].update(t.pop(a[1]))
        elif op == "swap":
            ta, tb = t[a[0]], t[a[1]]
            t[a[0]] = {**{f: b for f, b in ta.items() if f < a[2]}, **{f: b for f, b in tb.items() if f >= a[2]}}
            t[a[1]] = {**{f: b for f, b in tb.items() if f < a[2]}, **{f: b for f, b in ta.items() if f >= a[2]}}
        elif op == "box":
            x, y, w, h = a[2:6]
            t.setdefault(a[0], {})[a[1]] = np.array([x, y, x + w, y + h], np.float64)
        else:
            raise ValueError(f"Unknown correction '{op}'. Valid: box, cut, delete, merge, split, swap")
    return {i: fb for i, fb in t.items() if fb}


def to_rows(
    tracks: dict[int, dict[int, np.ndarray]], min_height: float = MIN_HEIGHT, renumber: bool = True
) -> np.ndarray:
    """(N, 6) MOT rows [frame, id, x, y, w, h]: boxes at least `min_height` px tall; with `renumber`, ids become
    1.. by first appearance (then by the linker's id), else they stay the linker's (those of CORRECTIONS)."""
    rows = [(f, i, *b) for i, fb in tracks.items() for f, b in fb.items() if b[3] - b[1] >= min_height]
    if not rows:
        return np.zeros((0, 6))
    r = np.array(rows, np.float64)
    if not renumber:
        return np.column_stack([r[:, 0], r[:, 1], r[:, 2], r[:, 3], r[:, 4] - r[:, 2], r[:, 5] - r[:, 3]])
    first = {int(i): r[r[:, 1] == i, 0].min() for i in np.unique(r[:, 1])}
    firsts = sorted(first.items(), key=lambda kv: (kv[1], kv[0]))
    new = {old: k for k, (old, _) in enumerate(firsts, 1)}
    r[:, 1] = [new[int(i)] for i in r[:, 1]]
    return np.column_stack([r[:, 0], r[:, 1], r[:, 2], r[:, 3], r[:, 4] - r[:, 2], r[:, 5] - r[:, 3]])


def _colour(track_id: int) -> tuple[int, int, int]:
    """A stable, saturated BGR colour per id."""
    hue = (int(track_id) * 47) % 180
    bgr = cv2.cvtColor(np.uint8([[[hue, 255, 255]]]), cv2.COLOR_HSV2BGR)[0, 0]
    return int(bgr[0]), int(bgr[1]), int(bgr[2])


def draw(frame: np.ndarray, rows: np.ndarray, number: int, region: np.ndarray | None = None,
         scale: float = 1.0) -> np.ndarray:
    """The `region` (x1, y1, x2, y2 px; None: the whole frame) of `frame` enlarged by `scale`, with the boxes of MOT
    `rows` of frame `number` and their ids (drawn after scaling, so labels stay legible) and the frame number."""
    x1, y1, x2, y2 = (0, 0, frame.shape[1], frame.shape[0]) if region is None else (int(v) for v in region)
    x1, y1, x2, y2 = max(0, x1), max(0, y1), min(frame.shape[1], x2), min(frame.shape[0], y2)
    img = cv2.resize(frame[y1:y2, x1:x2], (int((x2 - x1) * scale), int((y2 - y1) * scale)))
    for _, i, x, y, w, h in rows[rows[:, 0] == number]:
        c = _colour(int(i))
        p1 = (int((x - x1) * scale), int((y - y1) * scale))
        cv2.rectangle(img, p1, (int((x + w - x1) * scale), int((y + h - y1) * scale)), c, 2)
        (tw, th), _ = cv2.getTextSize(str(int(i)), cv2.FONT_HERSHEY_SIMPLEX, 0.5, 1)
        cv2.rectangle(img, (p1[0], p1[1] - th - 4), (p1[0] + tw + 2, p1[1]), c, -1)
        cv2.putText(img, str(int(i)), (p1[0] + 1, p1[1] - 3), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (0, 0, 0), 1, cv2.LINE_AA)
    cv2.putText(img, f"#{number}", (4, 18), cv2.FONT_HERSHEY_SIMPLEX, 0.6, (255, 255, 255), 2, cv2.LINE_AA)
    return img


def _tile(images: list[np.ndarray], cols: int) -> np.ndarray:
    """Images of one size tiled `cols` per row (the last row padded black)."""
    h, w = images[0].shape[:2]
    pad = (-len(images)) % cols
    images = images + [np.zeros((h, w, 3), np.uint8)] * pad
    return np.vstack([np.hstack(images[r : r + cols]) for r in range(0, len(images), cols)])


def crossings(rows: np.ndarray, gap: int = 3) -> list[tuple[int, int, int, int]]:
    """(id a, id b, first frame, frame of closest overlap) of each time two ids' boxes touch (IoU > 0 with each box
    grown by 4 px), runs closer than `gap` frames joined."""
    events: dict[tuple[int, int], list[tuple[int, float]]] = {}
    for f in np.unique(rows[:, 0]):
        r = rows[rows[:, 0] == f]
        xyxy = np.column_stack([r[:, 2] - 4, r[:, 3] - 4, r[:, 2] + r[:, 4] + 4, r[:, 3] + r[:, 5] + 4])
        iou = np.triu(box_iou(xyxy, xyxy), 1)
        for a, b in zip(*np.nonzero(iou > 0), strict=True):
            events.setdefault((int(r[a, 1]), int(r[b, 1])), []).append((int(f), float(iou[a, b])))
    out = []
    for (a, b), fs in sorted(events.items()):
        run = [fs[0]]
        for item in [*fs[1:], None]:
            if item is None or item[0] - run[-1][0] > gap:
                out.append((a, b, run[0][0], max(run, key=lambda fi: fi[1])[0]))
                run = [item]
            else:
                run.append(item)
    return sorted(out, key=lambda e: e[3])


def _crop(frame: np.ndarray, box: np.ndarray, out_wh: tuple[int, int]) -> np.ndarray:
    """The xywh `box` region (with a 30% margin) of `frame`, resized to out_wh, aspect kept by padding."""
    x, y, w, h = box
    m = 0.3 * max(w, h)
    x1, y1 = int(max(0, x - m)), int(max(0, y - m))
    x2, y2 = int(min(frame.shape[1], x + w + m)), int(min(frame.shape[0], y + h + m))
    patch = frame[y1:y2, x1:x2]
    s = min(out_wh[0] / patch.shape[1], out_wh[1] / patch.shape[0])
    patch = cv2.resize(patch, (max(1, int(patch.shape[1] * s)), max(1, int(patch.shape[0] * s))))
    canvas = np.zeros((out_wh[1], out_wh[0], 3), np.uint8)
    canvas[: patch.shape[0], : patch.shape[1]] = patch
    return canvas


def _save(path: Path, img: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    if not cv2.imwrite(str(path), img):
        raise InputFileError(f"Cannot write sheet '{path}': pass --sheets DIR to a writable folder")


def overview_sheets(frames: list[np.ndarray], rows: np.ndarray, out: Path, step: int = 5, per_sheet: int = 4) -> int:
    """Every `step`-th frame with boxes and ids, enlarged 1.5x, `per_sheet` frames (2 per row) per PNG. Returns the
    sheet count."""
    numbers = list(range(1, len(frames) + 1, step))
    chunks = [numbers[k : k + per_sheet] for k in range(0, len(numbers), per_sheet)]
    for k, chunk in enumerate(chunks):
        _save(out / f"overview_{k:03d}.png", _tile([draw(frames[n - 1], rows, n, scale=1.5) for n in chunk], 2))
    return len(chunks)


def crossing_sheets(frames: list[np.ndarray], rows: np.ndarray, out: Path, per_sheet: int = 4) -> int:
    """For each crossing (`crossings`), a strip of 7 frames, every 2nd from 6 before to 6 after the closest overlap,
    cropped around the two people and enlarged 3x; `per_sheet` strips per PNG. Returns the sheet count."""
    strips = []
    for a, b, _, peak in crossings(rows):
        picks = [n for n in range(peak - 6, peak + 7, 2) if 1 <= n <= len(frames)]
        sel = rows[np.isin(rows[:, 1], [a, b]) & (rows[:, 0] == peak)]
        cx, cy = (sel[:, 2] + sel[:, 4] / 2).mean(), (sel[:, 3] + sel[:, 5] / 2).mean()
        half_h = max(40.0, sel[:, 5].max() * 0.9)
        region = np.array([cx - half_h * 0.8, cy - half_h, cx + half_h * 0.8, cy + half_h])
        size = (int(half_h * 1.6 * 3), int(half_h * 2 * 3))
        crops = [cv2.resize(draw(frames[n - 1], rows, n, region, 3.0), size) for n in picks]
        strip = cv2.resize(_tile(crops + [np.zeros_like(crops[0])] * (7 - len(crops)), 7), (7 * 200, 250))
        cv2.putText(strip, f"{a} x {b} @ {peak}", (80, 18), cv2.FONT_HERSHEY_SIMPLEX, 0.6, (0, 255, 255), 2)
        strips.append(strip)
    for k in range(0, len(strips), per_sheet):
        _save(out / f"crossing_{k // per_sheet:03d}.png", np.vstack(strips[k : k + per_sheet]))
    return -(-len(strips) // per_sheet)


def gallery_sheets(frames: list[np.ndarray], rows: np.ndarray, out: Path, per_sheet: int = 8) -> int:
    """One row per id: 12 crops evenly spread over its life (an id swap shows as a change of person along the row),
    labelled with the id and its first-last frame; `per_sheet` rows per PNG. Returns the sheet count."""
    lines = []
    for i in np.unique(rows[:, 1]).astype(int):
        r = rows[rows[:, 1] == i]
        picks = r[np.linspace(0, len(r) - 1, min(12, len(r))).round().astype(int)]
        crops = [_crop(frames[int(p[0]) - 1], p[2:6], (64, 128)) for p in picks]
        for c, p in zip(crops, picks, strict=True):
            cv2.putText(c, str(int(p[0])), (1, 124), cv2.FONT_HERSHEY_SIMPLEX, 0.35, (255, 255, 255), 1)
        label = np.zeros((128, 110, 3), np.uint8)
        cv2.putText(label, f"id {i}", (4, 50), cv2.FONT_HERSHEY_SIMPLEX, 0.6, _colour(i), 2)
        cv2.putText(label, f"{int(r[0, 0])}-{int(r[-1, 0])}", (4, 80), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (255, 255, 255))
        lines.append(np.hstack([label, *crops, *[np.zeros((128, 64, 3), np.uint8)] * (12 - len(crops))]))
    for k in range(0, len(lines), per_sheet):
        _save(out / f"gallery_{k // per_sheet:03d}.png", np.vstack(lines[k : k + per_sheet]))
    return -(-len(lines) // per_sheet)


def focus_sheets(frames: list[np.ndarray], rows: np.ndarray, out: Path, spec: str) -> int:
    """Frames first..last every `step` of one region enlarged 3x, 8 per PNG (4 per row), for a busy spot.

    Args:
        spec: "x1,y1,x2,y2,first,last,step" (px, 1-based frames).
    """
    x1, y1, x2, y2, first, last, step = (int(v) for v in spec.split(","))
    picks = list(range(max(1, first), min(len(frames), last) + 1, step))
    crops = [draw(frames[n - 1], rows, n, np.array([x1, y1, x2, y2]), 3.0) for n in picks]
    for k in range(0, len(crops), 8):
        _save(out / f"focus_{x1}_{y1}_{first:03d}_{k // 8:03d}.png", _tile(crops[k : k + 8], 4))
    return -(-len(crops) // 8)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--video", type=Path, default=Path("../shared/data/videos/vtest.avi"))
    ap.add_argument("--frames", type=int, default=300, help="label frames 1..N")
    ap.add_argument("--out", type=Path, default=Path("tests/data/ids/vtest_ids.txt"), help="the MOT file to write")
    ap.add_argument("--cache", type=Path, default=Path("runs/id_gt/dets.npz"), help="detections cache (.npz)")
    ap.add_argument("--sheets", type=Path, help="render contact sheets (PNG) into this folder")
    ap.add_argument("--focus", action="append", default=[], metavar="X1,Y1,X2,Y2,FIRST,LAST,STEP",
                    help="also render this region over these frames, enlarged (repeatable)")
    ap.add_argument("--raw", action="store_true", help="skip the CORRECTIONS table (to review the bootstrap)")
    args = ap.parse_args()
    tracks = link(bootstrap(args.video, args.frames, args.cache))
    if not args.raw:
        tracks = apply_corrections(tracks, CORRECTIONS)
    if args.sheets:
        frames = list(read_frames(args.video, args.frames))
        review = to_rows(tracks, renumber=False)  # the ids CORRECTIONS refers to
        n = (overview_sheets(frames, review, args.sheets), crossing_sheets(frames, review, args.sheets),
             gallery_sheets(frames, review, args.sheets))
        n_focus = sum(focus_sheets(frames, review, args.sheets, spec) for spec in args.focus)
        print(f"sheets in {args.sheets}: {n_focus} focus, {n[0]} overview, {n[1]} crossing "
              f"({len(crossings(review))} crossings), {n[2]} gallery")
    rows = to_rows(tracks)
    if not args.raw:
        write_mot(args.out, rows)
    print(f"{args.out}: {len(np.unique(rows[:, 0]))} frames, {len(rows)} boxes, {len(np.unique(rows[:, 1]))} ids"
          + (" (raw, not written)" if args.raw else ""))
    return 0


if __name__ == "__main__":
    sys.exit(run_reporting_errors(main, "id_ground_truth"))
