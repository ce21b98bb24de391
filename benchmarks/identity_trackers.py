"""The maintained `trackers` package (Apache-2.0: ByteTrack, OC-SORT, SORT) on the detections our tracker saw,
written as MOT files for `benchmarks/identity.py --hyp NAME=FILE`.

`trackers` needs numpy >= 2 and opencv-python (not -contrib), so it runs in its own environment:

    python -m venv /tmp/trk && /tmp/trk/bin/pip install trackers
    /tmp/trk/bin/python benchmarks/identity_trackers.py runs/vtest_dets.npz --out runs/trackers

The .npz comes from `python -m benchmarks.identity --dump-detections runs/vtest_dets.npz` (frames (N,), boxes
(N, 5) x1 y1 x2 y2 score px, count). This script needs numpy and trackers only.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np


def run(tracker, frames: np.ndarray, boxes: np.ndarray, count: int) -> list[str]:
    """MOT lines (frame 1-based) of `tracker` fed every frame's detections in order."""
    import supervision as sv

    lines = []
    for i in range(count):
        b = boxes[frames == i]
        dets = sv.Detections(xyxy=b[:, :4].astype(np.float32), confidence=b[:, 4].astype(np.float32),
                             class_id=np.zeros(len(b), int))
        out = tracker.update(dets)
        for (x1, y1, x2, y2), tid in zip(out.xyxy, out.tracker_id, strict=True):
            if tid is not None and tid >= 0:
                lines.append(f"{i + 1},{int(tid)},{x1:.1f},{y1:.1f},{x2 - x1:.1f},{y2 - y1:.1f},1,-1,-1,-1")
    return lines


def main() -> None:
    import trackers

    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("detections", type=Path)
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--fps", type=float, default=10.0, help="video frame rate (vtest.avi: 10)")
    args = ap.parse_args()
    data = np.load(args.detections)
    args.out.mkdir(parents=True, exist_ok=True)
    for name, make in (("bytetrack", lambda: trackers.ByteTrackTracker(frame_rate=args.fps)),
                       ("ocsort", lambda: trackers.OCSORTTracker(frame_rate=args.fps)),
                       ("sort", lambda: trackers.SORTTracker(frame_rate=args.fps))):
        lines = run(make(), data["frames"], data["boxes"], int(data["count"]))
        (args.out / f"{name}.txt").write_text("\n".join(lines) + "\n")
        print(f"{name}: {len(lines)} boxes -> {args.out / name}.txt")


if __name__ == "__main__":
    main()
