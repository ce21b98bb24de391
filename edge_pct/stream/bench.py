"""`edge-pct bench`: run the streaming pipeline over every frame of a recorded video and time each stage.

Stages (milliseconds per frame, mean): decode (reading the frame), detect, crop, infer, post (decoding,
tracking, smoothing), draw (overlay, only with --save). FPS and poses per second count the whole loop.
With a peer (MediaPipe PoseLandmarker, num_poses = our max persons) the same video is decoded and run
again in the same process, so both numbers come from one run on one machine.
Identity: track ids, fragmentation (distinct ids / mean persons per frame: 1.0 = every person kept one id) and ids
born per 100 frames. Steadiness (`edge_pct.stream.steadiness`): jitter on persons standing still (joint acceleration
per person height) and the smoother's lag behind the raw joints, in frames; the peer's jitter from the same rule.
Unposed: persons seen (tracked, or detected beyond max_persons) but given no pose, per frame.
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
from edge_pct.stream.pipeline import STAGES, PersonPose, PosePipeline
from edge_pct.stream.sources import FileSource
from edge_pct.stream.steadiness import PoseLinker, SteadinessMeter, pose_height
from edge_pct.stream.tracking import box_from_pose

log = logging.getLogger(__name__)


def run_bench(
    video: str | Path, pipeline: PosePipeline, save: str | Path | None = None, max_frames: int | None = None
) -> dict:
    """Process every frame of `video` (up to `max_frames`); returns fps, frames, persons_per_frame, unposed_per_frame,
    poses_per_s, stage_ms{decode, detect, crop, infer, post, draw}, detector_runs, tracks, fragmentation,
    ids_per_100_frames, overlap_frames, jitter_still, lag_frames."""
    from edge_pct.stream.overlay import draw_persons

    totals = defaultdict(float)
    persons = unposed = detector_runs = frames = overlap_frames = 0
    track_ids: set[int] = set()
    steadiness = SteadinessMeter()  # running sums: memory stays flat however long the video
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
                unposed += result.unposed
                detector_runs += result.detected
                overlap_frames += _shows_overlap(result.persons, pipeline.tracker.duplicate_iou,
                                                 pipeline.cfg.joint_threshold)
                for p in result.persons:
                    track_ids.add(p.track_id)
                    steadiness.add(frame.index, p.track_id, p.joints, p.raw_joints, float(p.box[3] - p.box[1]))
                steadiness.forget(frame.index)
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
            _check_written(tmp, save)
            tmp.replace(save)  # the saved video appears only once complete
    finally:
        if bar is not None:
            bar.close()
        if writer is not None:
            writer.release()
        if tmp is not None:
            tmp.unlink(missing_ok=True)
    frames_div = max(frames, 1)
    per_frame = persons / frames_div
    return {
        "video": str(video),
        "frames": frames,
        "fps": frames / seconds if seconds else 0.0,
        "persons_per_frame": per_frame,
        "unposed_per_frame": unposed / frames_div,
        "poses_per_s": persons / seconds if seconds else 0.0,
        "stage_ms": {k: totals[k] / frames_div for k in ("decode", *STAGES, "draw")},
        "detector_runs": detector_runs,
        "tracks": len(track_ids),
        "fragmentation": len(track_ids) / per_frame if per_frame else 0.0,
        "ids_per_100_frames": 100 * len(track_ids) / frames_div,
        "overlap_frames": overlap_frames,
        **steadiness.result(),
        "backend": pipeline.backend.name,
        "graph": str(getattr(pipeline.backend, "path", "")) or None,  # the file ONNX Runtime / TensorRT runs
        "precision": pipeline.backend.precision,
        "detector": pipeline.detector.name,
        "smoothing": pipeline.cfg.smoothing,
        "token_weight": pipeline.cfg.token_weight,
        "saved": str(save) if save else None,
    }


def run_peer(video: str | Path, task: str | Path, num_poses: int, max_frames: int | None = None) -> dict:
    """MediaPipe PoseLandmarker (video mode) over the same frames: fps, persons_per_frame, poses_per_s, and the
    jitter_still of its poses linked into tracks by `PoseLinker` (it gives no ids)."""
    from edge_pct.peers.mediapipe import MediaPipePose

    persons = frames = 0
    linker, steadiness = PoseLinker(), SteadinessMeter()
    with FileSource(video) as source, MediaPipePose(task, num_poses=num_poses, mode="video") as peer:
        start = time.perf_counter()
        while max_frames is None or frames < max_frames:
            frame = source.read()
            if frame is None:
                break
            found = peer.estimate_frame(frame.image, int(frame.timestamp_ms))
            for k, joints in linker.link([p["joints"] for p in found]).items():
                steadiness.add(frames, k, joints, None, pose_height(joints))
            steadiness.forget(frames)
            persons += len(found)
            frames += 1
        seconds = time.perf_counter() - start
    return {
        "model": str(task),
        "num_poses": num_poses,
        "frames": frames,
        "fps": frames / seconds if seconds else 0.0,
        "persons_per_frame": persons / max(frames, 1),
        "poses_per_s": persons / seconds if seconds else 0.0,
        "jitter_still": steadiness.result()["jitter_still"],
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
    rows += [("unposed / frame", res["unposed_per_frame"]), ("detector runs", res["detector_runs"]),
             ("track ids", res["tracks"]), ("fragmentation (ids / persons)", res["fragmentation"]),
             ("ids born / 100 frames", res["ids_per_100_frames"]),
             ("jitter still (x1000 box h)", both(_milli(res["jitter_still"]), peer and _milli(peer["jitter_still"]))),
             ("smoother lag (frames)", res["lag_frames"])]
    if res.get("saved"):
        rows.append(("saved", res["saved"]))
    return rows


def _milli(value: float | None) -> float | None:
    return None if value is None else value * 1e3


def _shows_overlap(persons: list[PersonPose], iou: float, threshold: float) -> bool:
    """Whether two of the shown persons' pose boxes (around their joints) overlap by at least `iou`."""
    if len(persons) < 2:
        return False
    boxes = np.stack([box_from_pose(p.joints, p.confidence, threshold) for p in persons])
    return bool(np.triu(box_iou(boxes, boxes) >= iou, k=1).any())


def _temp_video_path(save: str | Path) -> Path:
    save = Path(save)
    return save.with_name(f".{save.stem}.tmp{save.suffix}")


def _check_written(tmp: Path, save: str | Path) -> None:
    """InputFileError unless the finished video at `tmp` has a readable frame: OpenCV's writer reports no error
    when the disk fills up, it just leaves an unplayable file."""
    import cv2

    cap = cv2.VideoCapture(str(tmp))
    ok = cap.isOpened() and cap.read()[0]
    cap.release()
    if not ok:
        raise InputFileError(f"Could not write the video '{save}' (the written file has no readable frame; is the "
                             "disk full?): free space or choose another folder")


def _open_writer(path: Path, fps: float, shape: tuple[int, ...]):
    import cv2

    fourcc = cv2.VideoWriter_fourcc(*("mp4v" if path.suffix.lower() == ".mp4" else "MJPG"))
    writer = cv2.VideoWriter(str(path), fourcc, fps, (shape[1], shape[0]))
    if not writer.isOpened():
        raise InputFileError(f"Cannot write video '{path}': use a .mp4 or .avi path in a writable folder")
    return writer
