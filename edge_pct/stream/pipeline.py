"""The streaming pipeline: frame -> person boxes -> crops -> pose backend -> decoded, tracked, smoothed poses.

Per frame (docs/design.md, data flow):
  detect  the detector runs on the first frame, every `detect_every` frames, and whenever a track's
          confidence drops below `redetect_score`; the model-free `track` detector only when no track is
          alive. In between each track's box comes from its own last pose.
  crop    one affine warp per track to the model input (the crop code of training and evaluation).
  budget  every track is posed, up to `max_persons` tracks (new persons admitted largest box first); with
          `pose_budget_ms` set, only as many as fit in it at the per-person time measured on this stream, largest
          first. Persons left without a pose this frame are counted in `FrameResult.unposed`, never dropped silently.
  infer   all crops of the frame in ONE backend call (batched over persons).
  post    optional per-track token-probability smoothing + the backend's decoder, crop -> image coords,
          One-Euro per track, next boxes, lost and duplicate tracks dropped.
Occluded and out-of-frame joints keep the decoder's position (PCT's prior) with their own low confidence.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

import numpy as np

from edge_pct.config import StreamConfig
from edge_pct.core.geometry import (
    apply_affine,
    box_to_center_size,
    crop_affine,
    invert_affine,
    to_model_input,
    warp_crops,
)
from edge_pct.engines.runtime import PoseBackend
from edge_pct.stream.detectors.base import Detector
from edge_pct.stream.tracking import Track, Tracker

log = logging.getLogger(__name__)

STAGES = ("detect", "crop", "infer", "post")


@dataclass(frozen=True)
class PersonPose:
    """One tracked person in one frame; image px."""

    track_id: int
    box: np.ndarray  # (4,) x1 y1 x2 y2: the box this frame was cropped from
    joints: np.ndarray  # (17, 2) float32, filtered when smoothing is on
    confidence: np.ndarray  # (17,) in [0, 1]
    score: float  # mean joint confidence
    raw_joints: np.ndarray | None = None  # (17, 2) float32 as the model gave them (before the filter)


@dataclass(frozen=True)
class FrameResult:
    persons: list[PersonPose]
    stage_ms: dict[str, float]  # milliseconds per stage in STAGES
    detected: bool  # whether the detector ran on this frame
    unposed: int = 0  # persons seen (tracked, or detected beyond max_persons) but not posed this frame


class PosePipeline:
    """Stateful per stream: feed frames in order with `process`; `reset` before another stream."""

    def __init__(self, backend: PoseBackend, detector: Detector, cfg: StreamConfig | None = None) -> None:
        self.backend, self.detector = backend, detector
        self.cfg = cfg or StreamConfig()
        if backend.max_batch is not None and backend.max_batch < self.cfg.max_persons:
            log.warning("the %s model takes at most %d persons per call: a frame with more runs in several calls "
                        "(export with a dynamic batch, or build the engine with --max-batch %d)", backend.name,
                        backend.max_batch, self.cfg.max_persons)
        self.reset()

    def reset(self) -> None:
        c = self.cfg
        filter_args = ({"min_cutoff_hz": c.min_cutoff_hz, "beta": c.beta, "confidence_ref": c.joint_threshold}
                       if c.smoothing else None)
        token_weight = c.token_weight if c.token_weight < 1.0 else None
        self.tracker = Tracker(
            lost_score=c.lost_score, lost_frames=c.lost_frames, max_tracks=c.max_persons, filter_args=filter_args,
            token_weight=token_weight, joint_threshold=c.joint_threshold, new_track_score=c.new_track_score,
            missed_detections=c.missed_detections, lost_memory_s=c.lost_memory_s,
            confirm_new=self.detector.name != "track",  # the centre region gives one box always: nothing to confirm
        )
        self._since_detect = 0
        self._ms_per_person: float | None = None  # crop + infer + post per posed person, running mean

    def _needs_detection(self) -> bool:
        tracks = self.tracker.tracks
        if not tracks:
            return True
        if self.detector.name == "track" or self.cfg.detect_every <= 0:
            return False  # the model-free detector only (re)starts tracks; a real one refreshes them on a schedule
        if not all(t.confirmed for t in tracks):
            return True  # a newcomer is shown once a second detector run confirms it: run it on the next frame
        return self._since_detect >= self.cfg.detect_every or min(t.score for t in tracks) < self.cfg.redetect_score

    def process(self, frame: np.ndarray, t_s: float) -> FrameResult:
        """frame (H, W, 3) BGR uint8 taken at `t_s` seconds (stream time, for the filters) -> poses."""
        ms: dict[str, float] = dict.fromkeys(STAGES, 0.0)
        t0 = time.perf_counter()
        detected = self._needs_detection()
        if detected:
            self.tracker.assign(self.detector(frame), t_s)
            self._since_detect = 0
        self._since_detect += 1
        tracks = self._within_budget(list(self.tracker.tracks))
        unposed = len(self.tracker.tracks) - len(tracks) + self.tracker.unadmitted
        t1 = time.perf_counter()
        ms["detect"] = (t1 - t0) * 1e3
        if not tracks:
            return FrameResult([], ms, detected, unposed)

        mats = self._crop_affines(tracks)
        images = to_model_input(warp_crops(frame, mats, self.backend.input_size))
        t2 = time.perf_counter()
        out = self.backend(images)
        t3 = time.perf_counter()
        joints_crop = self._smoothed_joints(tracks, out)
        joints = apply_affine(joints_crop, invert_affine(mats))
        boxes = [t.box for t in tracks]
        self.tracker.update(tracks, joints, out["confidence"], t_s)
        persons = [
            PersonPose(t.track_id, box, t.joints, t.confidence, t.score, t.raw_joints)
            for t, box in zip(tracks, boxes, strict=True)
            if t in self.tracker.tracks and t.visible
        ]
        t4 = time.perf_counter()
        ms.update(crop=(t2 - t1) * 1e3, infer=(t3 - t2) * 1e3, post=(t4 - t3) * 1e3)
        per_person = (t4 - t1) * 1e3 / len(tracks)
        self._ms_per_person = per_person if self._ms_per_person is None else (
            0.9 * self._ms_per_person + 0.1 * per_person)
        return FrameResult(persons, ms, detected, unposed)

    def _within_budget(self, tracks: list[Track]) -> list[Track]:
        """The tracks to pose this frame: all of them, or with `pose_budget_ms` as many as fit in it at the measured
        per-person time (at least one), largest boxes first."""
        budget = self.cfg.pose_budget_ms
        if budget <= 0 or self._ms_per_person is None or len(tracks) * self._ms_per_person <= budget:
            return tracks
        fit = max(1, int(budget / self._ms_per_person))
        return sorted(tracks, key=lambda t: -t.area)[:fit]

    def _crop_affines(self, tracks: list[Track]) -> np.ndarray:
        """Image -> crop affines (P, 2, 3) for the tracks' boxes, at the model's aspect ratio."""
        boxes = np.stack([t.box for t in tracks])
        xywh = np.concatenate([boxes[:, :2], boxes[:, 2:] - boxes[:, :2]], axis=1)
        w, h = self.backend.input_size
        center, size = box_to_center_size(xywh, w / h, self.cfg.padding)
        return crop_affine(center, size, 0.0, (w, h))

    def _smoothed_joints(self, tracks: list[Track], out: dict[str, np.ndarray]) -> np.ndarray:
        """Crop-frame joints (P, 17, 2): the backend's, or decoded from per-track smoothed token probabilities."""
        if all(t.token_smoother is None for t in tracks):
            return out["joints"]
        probs = np.stack([t.token_smoother(p) for t, p in zip(tracks, out["token_probs"], strict=True)])
        return self.backend.decode(probs)
