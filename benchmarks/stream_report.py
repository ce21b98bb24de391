"""Streaming pipeline on recorded videos beside MediaPipe, in one run: FPS, poses per second, per-stage ms, and
jitter with and without smoothing, for each pose model (e.g. ORT FP32 and INT8) with the YOLOX detector, plus
the single-person `track` mode.

    python -m benchmarks.stream_report --model runs/export/model.onnx calibration/lite/model.int8.tensorrt.onnx \
        --json runs/stream_report.json

Every row runs `edge_pct.stream.bench.run_bench` (what `edge-pct bench` runs); the MediaPipe peer runs on the same
video in the same process right after our rows. Jitter is the mean joint acceleration per person height on
persons standing still (`jitter_still`, x1000 in the table; edge_pct.stream.steadiness).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from pathlib import Path

from benchmarks.common import add_data_arg, data_dir
from edge_pct.config import StreamConfig
from edge_pct.core.errors import run_reporting_errors
from edge_pct.core.files import write_text_atomic
from edge_pct.core.package import DEFAULT_MODEL
from edge_pct.engines.model_files import open_backend
from edge_pct.stream.bench import run_bench, run_peer
from edge_pct.stream.detectors.factory import stream_detector
from edge_pct.stream.pipeline import PosePipeline


def _row(video: Path, model: str, detector: str, detector_model: str | None, cfg: StreamConfig, threads: int,
         frames: int | None) -> dict:
    backend = open_backend(model, threads=threads) if Path(model).suffix in (".onnx", ".pt") else open_backend(model)
    det = stream_detector(cfg, detector, detector_model, threads)
    try:
        res = run_bench(video, PosePipeline(backend, det, cfg), max_frames=frames)
    finally:
        det.close()
    return {**res, "video": video.name, "model": Path(model).name}


def main() -> None:
    data = data_dir()
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_data_arg(ap)
    ap.add_argument("--model", nargs="+", default=[str(DEFAULT_MODEL)], help=".pt / .onnx pose models")
    ap.add_argument("--video", nargs="+", default=[str(data / "videos" / "vtest.avi"), str(data / "videos" /
                                                                                        "street.avi")])
    ap.add_argument("--detector-model", default=str(data / "models" / "yolox_nano.onnx"))
    ap.add_argument("--peer-model", default=str(data / "models" / "pose_landmarker_full.task"), help="'' to skip")
    ap.add_argument("--max-persons", type=int, default=5)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--frames", type=int, help="frames per video (default: all)")
    ap.add_argument("--json", required=True)
    args = ap.parse_args()

    cfg = StreamConfig(max_persons=args.max_persons)
    rows = []
    for video in map(Path, args.video):
        for model in args.model:
            rows.append(_row(video, model, "onnx", args.detector_model, cfg, args.threads, args.frames))
            raw = dataclasses.replace(cfg, smoothing=False)
            rows.append({**_row(video, model, "onnx", args.detector_model, raw, args.threads, args.frames),
                         "variant": "no smoothing"})
        rows.append({**_row(video, args.model[0], "track", None, cfg, args.threads, args.frames),
                     "variant": "track (single person)"})
        if args.peer_model:
            peer = run_peer(video, args.peer_model, args.max_persons, max_frames=args.frames)
            rows.append({**peer, "video": video.name, "model": "MediaPipe PoseLandmarker (full)",
                         "detector": "its own"})
        print(json.dumps(rows[-1]), flush=True)
    write_text_atomic(args.json, json.dumps(rows, indent=2))

    print("\n| video | model | detector | variant | FPS | persons/frame | poses/s | infer ms | jitter x1000 | tracks | "
          "overlap frames |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        infer = r["stage_ms"]["infer"] if "stage_ms" in r else float("nan")
        jitter = (r.get("jitter_still") or float("nan")) * 1000
        print(f"| {r['video']} | {r['model']} | {r.get('detector', '')} | {r.get('variant', '')} | {r['fps']:.1f} | "
              f"{r['persons_per_frame']:.2f} | {r['poses_per_s']:.1f} | {infer:.1f} | {jitter:.2f} | "
              f"{r.get('tracks', '')} | {r.get('overlap_frames', '')} |")


if __name__ == "__main__":
    sys.exit(run_reporting_errors(main, "stream_report.py"))
