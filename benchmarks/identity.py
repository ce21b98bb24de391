"""Identity on a hand-checked clip: IDF1, id switches and MOTA (motmetrics) of the streaming pipeline's track ids
against tests/data/ids/vtest_ids.txt (vtest.avi frames 1-300), for the default stream config and variants, beside
other trackers' MOT files given with --hyp.

    python -m benchmarks.identity --json runs/identity.json \
        --variant "one blink ends a track: stream.missed_detections=1 stream.lost_memory_s=0" \
        --dump-detections runs/vtest_dets.npz --hyp bytetrack=runs/bytetrack.txt

--dump-detections writes the detector's boxes of every frame (the same boxes our tracker sees: YOLOX-Nano down to
stream.detector_score) so another tracker runs on identical input (`benchmarks/identity_trackers.py`).
A shown person's box is the box its pose was cropped from (the detector's on a detection frame).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from benchmarks.common import REPO, add_data_arg, data_dir

GT = REPO / "tests" / "data" / "ids" / "vtest_ids.txt"


class RecordingDetector:
    """Wraps a detector and keeps every frame's boxes (D, 5) (for --dump-detections)."""

    def __init__(self, detector) -> None:
        self.detector, self.name, self.runs = detector, detector.name, {}
        self.frame = 0

    def __call__(self, frame: np.ndarray) -> np.ndarray:
        boxes = self.detector(frame)
        self.runs[self.frame] = boxes
        return boxes

    def close(self) -> None:
        self.detector.close()


def track_rows(video: Path, frames: int, overrides: list[str], recorder_path: Path | None = None) -> np.ndarray:
    """The pipeline's shown persons over the first `frames` frames as MOT rows (N, 6)."""
    from edge_pct.api import PoseEstimator
    from edge_pct.config import load_config
    from edge_pct.eval.identity import mot_rows
    from edge_pct.stream.sources import FileSource

    cfg = load_config(None, overrides).stream
    est = PoseEstimator(config=cfg)
    det = RecordingDetector(est.detector)
    est.pipeline.detector = det
    ids, boxes, idx = [], [], []
    with FileSource(video) as source:
        for i in range(frames):
            frame = source.read()
            if frame is None:
                break
            det.frame = i
            for p in est.pipeline.process(frame.image, frame.timestamp_ms / 1e3).persons:
                idx.append(i)
                ids.append(p.track_id)
                boxes.append(p.box)
    if recorder_path is not None:
        every = [det.runs.get(i, np.zeros((0, 5), np.float32)) for i in range(frames)]
        np.savez(recorder_path, frames=np.array([i for i, b in enumerate(every) for _ in b], np.int64),
                 boxes=np.concatenate(every).astype(np.float32), count=frames)
    est.close()
    return mot_rows(np.array(idx), np.array(ids), np.array(boxes).reshape(-1, 4))


def main() -> None:
    from edge_pct.eval.identity import read_mot

    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--video", type=Path, default=data_dir() / "videos" / "vtest.avi")
    ap.add_argument("--gt", type=Path, default=GT)
    ap.add_argument("--variant", action="append", default=[],
                    help='"NAME: stream.key=value ..." a config variant beside the default (repeatable)')
    ap.add_argument("--hyp", action="append", default=[], help="NAME=MOT_FILE another tracker's output (repeatable)")
    ap.add_argument("--dump-detections", type=Path, help="write the default run's detector boxes here (.npz)")
    ap.add_argument("--json", required=True)
    add_data_arg(ap)
    args = ap.parse_args()

    gt = read_mot(args.gt)
    frames = int(gt[:, 0].max())
    runs = [("default", [])] + [(v.split(":")[0].strip(), v.split(":", 1)[1].split()) for v in args.variant]
    results = []
    for name, overrides in runs:
        hyp = track_rows(args.video, frames, overrides, args.dump_detections if name == "default" else None)
        results.append({"name": name, "overrides": overrides, **_identity(gt, hyp, frames)})
    for spec in args.hyp:
        name, path = spec.split("=", 1)
        results.append({"name": name, "mot": path, **_identity(gt, read_mot(path), frames)})
    print(f"{args.video.name} frames 1-{frames}, ground truth {len(np.unique(gt[:, 1]))} ids")
    print("| tracker | IDF1 | id switches | MOTA | recall | precision | ids | fragmentation |")
    print("|---|---|---|---|---|---|---|---|")
    for r in results:
        print(f"| {r['name']} | {r['idf1']:.3f} | {r['id_switches']} | {r['mota']:.3f} | {r['recall']:.3f} | "
              f"{r['precision']:.3f} | {r['hyp_ids']} | {r['fragmentation']:.1f} |")
    Path(args.json).write_text(json.dumps({"video": str(args.video), "frames": frames, "rows": results}, indent=2))


def _identity(gt: np.ndarray, hyp: np.ndarray, frames: int) -> dict:
    """score_identity plus fragmentation (distinct ids / mean boxes per frame) of `hyp`."""
    from edge_pct.eval.identity import score_identity

    hyp = hyp[hyp[:, 0] <= frames]
    per_frame = len(hyp) / frames
    return {**score_identity(gt, hyp), "fragmentation": len(np.unique(hyp[:, 1])) / per_frame if per_frame else 0.0}


if __name__ == "__main__":
    main()
