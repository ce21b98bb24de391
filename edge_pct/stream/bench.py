"""`edge-pct bench`: run the streaming pipeline over every frame of a recorded video and time each stage.

Stages (milliseconds per frame, mean): decode (reading the frame), detect, crop, infer, post (decoding,
tracking, smoothing), draw (overlay, only with --save). FPS and poses per second count the whole loop.
With a peer (MediaPipe PoseLandmarker, num_poses = our max persons) the same video is decoded and run
again in the same process, so both numbers come from one run on one machine.
Jitter: mean frame-to-frame joint acceleration of our output tracks (`edge_pct.stream.filters`), in px and
per person height, so runs with and without smoothing compare directly.
Overlap frames: frames showing two skeletons whose pose boxes overlap by the tracker's duplicate IoU (0.6), i.e.
what looks like one person drawn twice (`Tracker._duplicates` keeps such tracks when the detector saw two people).
"""

from __future__ import annotations

import logging
import time
from collections import defaultdict
from pathlib import Path

import numpy as np

from edge_pct.core.errors import InputFileError
from edge_pct.core.geometry import box_iou
from edge_pct.core.report import Row, progress
from edge_pct.stream.filters import mean_acceleration
from edge_pct.stream.pipeline import STAGES, PersonPose, PosePipeline
from edge_pct.stream.sources import FileSource
from edge_pct.stream.tracking import box_from_pose

log = logging.getLogger(__name__)


def run_bench(
    video: str | Path, pipeline: PosePipeline, save: str | Path | None = None, max_frames: int | None = None
) -> dict:
    """Process every frame of `video` (up to `max_frames`); returns fps, frames, persons_per_frame,
    poses_per_s, stage_ms{decode, detect, crop, infer, post, draw}, detector_runs, tracks, overlap_frames,
    jitter_px, jitter_rel."""
    from edge_pct.stream.overlay import draw_persons

    totals = defaultdict(float)
    persons = detector_runs = frames = overlap_frames = 0
    tracks: dict[int, dict[int, tuple[np.ndarray, float]]] = defaultdict(dict)  # id -> frame -> (joints, height)
    pipeline.reset()
    tmp = _temp_video_path(save) if save else None
    writer = bar = None
    try:
        with FileSource(video) as source:
            expected = source.frame_count if max_frames is None else min(source.frame_count, max_frames)
            bar = progress(total=expected or None, desc="bench", unit="frame")
            start = time.perf_counter()
            while max_frames is None or frames < max_frames:
                t0 = time.perf_counter()
                frame = source.read()
                totals["decode"] += (time.perf_counter() - t0) * 1e3
                if frame is None:
                    break
                result = pipeline.process(frame.image, frame.timestamp_ms / 1e3)
                for k, v in result.stage_ms.items():
                    totals[k] += v
                frames += 1
                bar.update()
                persons += len(result.persons)
                detector_runs += result.detected
                overlap_frames += _shows_overlap(result.persons, pipeline.tracker.duplicate_iou,
                                                 pipeline.cfg.joint_threshold)
                for p in result.persons:
                    tracks[p.track_id][frame.index] = (p.joints, float(p.box[3] - p.box[1]))
                if tmp is not None:
                    t1 = time.perf_counter()
                    image = draw_persons(frame.image.copy(), result.persons, pipeline.cfg.joint_threshold)
                    writer = writer or _open_writer(tmp, source.fps, image.shape)
                    writer.write(image)
                    totals["draw"] += (time.perf_counter() - t1) * 1e3
            seconds = time.perf_counter() - start
        if writer is not None:
            writer.release()
            writer = None
            tmp.replace(save)  # the saved video appears only once complete
    finally:
        if bar is not None:
            bar.close()
        if writer is not None:
            writer.release()
        if tmp is not None:
            tmp.unlink(missing_ok=True)
    jitter_px, jitter_rel = _jitter(tracks)
    frames_div = max(frames, 1)
    return {
        "video": str(video),
        "frames": frames,
        "fps": frames / seconds if seconds else 0.0,
        "persons_per_frame": persons / frames_div,
        "poses_per_s": persons / seconds if seconds else 0.0,
        "stage_ms": {k: totals[k] / frames_div for k in ("decode", *STAGES, "draw")},
        "detector_runs": detector_runs,
        "tracks": len(tracks),
        "overlap_frames": overlap_frames,
        "jitter_px": jitter_px,
        "jitter_rel": jitter_rel,
        "backend": pipeline.backend.name,
        "graph": str(getattr(pipeline.backend, "path", "")) or None,  # the file ONNX Runtime / TensorRT runs
        "precision": pipeline.backend.precision,
        "detector": pipeline.detector.name,
        "smoothing": pipeline.cfg.smoothing,
        "token_weight": pipeline.cfg.token_weight,
        "saved": str(save) if save else None,
    }


def run_peer(video: str | Path, task: str | Path, num_poses: int, max_frames: int | None = None) -> dict:
    """MediaPipe PoseLandmarker (video mode) over the same frames: fps, persons_per_frame, poses_per_s."""
    from edge_pct.peers.mediapipe import MediaPipePose

    persons = frames = 0
    with FileSource(video) as source, MediaPipePose(task, num_poses=num_poses, mode="video") as peer:
        start = time.perf_counter()
        while max_frames is None or frames < max_frames:
            frame = source.read()
            if frame is None:
                break
            persons += len(peer.estimate_frame(frame.image, int(frame.timestamp_ms)))
            frames += 1
        seconds = time.perf_counter() - start
    return {
        "model": str(task),
        "num_poses": num_poses,
        "frames": frames,
        "fps": frames / seconds if seconds else 0.0,
        "persons_per_frame": persons / max(frames, 1),
        "poses_per_s": persons / seconds if seconds else 0.0,
    }


def summary_rows(res: dict) -> list[Row]:
    """The bench result for people: throughput, where the time goes, identity and jitter; MediaPipe in a second
    column when it ran (`--peer`)."""
    peer = res.get("peer")
    both = (lambda ours, theirs: [ours, theirs]) if peer else (lambda ours, theirs: ours)  # noqa: E731
    rows: list[Row] = []
    if peer:
        rows.append(("", ["edge-pct", "MediaPipe"]))
    model = Path(res.get("model", "")).name
    graph = f" ({Path(res['graph']).name})" if res.get("graph") and Path(res["graph"]).name != model else ""
    rows += [("model", both(f"{model}{graph} {res['backend']} {res['precision']}".strip(), "PoseLandmarker full")),
             ("detector", both(res["detector"], "BlazePose's")),
             ("FPS", both(res["fps"], peer and peer["fps"])),
             ("persons / frame", both(res["persons_per_frame"], peer and peer["persons_per_frame"])),
             ("poses / s", both(res["poses_per_s"], peer and peer["poses_per_s"]))]
    rows += [(f"ms / frame: {k}", v) for k, v in res["stage_ms"].items() if v]
    rows += [("detector runs", res["detector_runs"]), ("track ids", res["tracks"]),
             ("jitter (x1000 box h)", res["jitter_rel"] * 1e3)]
    if res.get("saved"):
        rows.append(("saved", res["saved"]))
    return rows


def _shows_overlap(persons: list[PersonPose], iou: float, threshold: float) -> bool:
    """Whether two of the shown persons' pose boxes (around their joints) overlap by at least `iou`."""
    if len(persons) < 2:
        return False
    boxes = np.stack([box_from_pose(p.joints, p.confidence, threshold) for p in persons])
    return bool(np.triu(box_iou(boxes, boxes) >= iou, k=1).any())


def _jitter(tracks: dict[int, dict[int, tuple[np.ndarray, float]]]) -> tuple[float, float]:
    """Mean joint acceleration over all tracks (px / frame^2) and the same divided by person height."""
    acc_px, acc_rel = [], []
    for frames in tracks.values():
        idx = np.array(sorted(frames))
        if len(idx) < 3:
            continue
        joints = np.full((idx[-1] - idx[0] + 1, *frames[idx[0]][0].shape), np.nan, np.float32)
        heights = np.full(len(joints), np.nan, np.float32)
        for i in idx:
            joints[i - idx[0]], heights[i - idx[0]] = frames[i]
        acc_px.append(mean_acceleration(joints))
        acc_rel.append(mean_acceleration(joints, heights))
    return (float(np.mean(acc_px)) if acc_px else 0.0), (float(np.mean(acc_rel)) if acc_rel else 0.0)


def _temp_video_path(save: str | Path) -> Path:
    save = Path(save)
    return save.with_name(f".{save.stem}.tmp{save.suffix}")


def _open_writer(path: Path, fps: float, shape: tuple[int, ...]):
    import cv2

    fourcc = cv2.VideoWriter_fourcc(*("mp4v" if path.suffix.lower() == ".mp4" else "MJPG"))
    writer = cv2.VideoWriter(str(path), fourcc, fps, (shape[1], shape[0]))
    if not writer.isOpened():
        raise InputFileError(f"Cannot write video '{path}': use a .mp4 or .avi path in a writable folder")
    return writer
