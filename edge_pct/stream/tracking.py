"""Person tracks across frames: ids by IoU association, the next crop box from the current pose.

Between detector runs a person's next box comes from its own pose (the rtmlib / MediaPipe trick), so the
detector can run every N frames or only when a track is lost. At a detection frame the detector's boxes
are matched to tracks greedily by IoU (with the track's pose-driven box or its last detector box, whichever
overlaps more): a match keeps the track id (and its smoothing state), an unmatched
detection starts a new track, and an unmatched track ends (the detector decides who is there, as in rtmlib's
PoseTracker). Between detections a track ends when its confidence drops.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import numpy as np

from edge_pct.config import StreamConfig
from edge_pct.core.errors import ConfigError
from edge_pct.core.geometry import box_iou
from edge_pct.stream.filters import OneEuroFilter, TokenSmoother

# The keypoint bounds of a person are tighter than the person boxes the model was trained on (COCO boxes
# include the head top and the feet): enlarge them by this factor around their centre.
POSE_BOX_ENLARGE = 1.2
# A pose-driven box may shrink by at most this factor per frame and axis: one bad pose cannot collapse the crop.
MAX_SHRINK_PER_FRAME = 0.8


def box_from_pose(joints: np.ndarray, confidence: np.ndarray,
                  threshold: float = StreamConfig.joint_threshold) -> np.ndarray:
    """Crop box (4,) x1 y1 x2 y2 px around a pose: joints (17, 2) px, confidence (17,).

    Uses the joints at or above `threshold` when at least three are, else all (decoded occluded joints are
    still plausible positions), enlarged by POSE_BOX_ENLARGE around the centre.
    """
    sure = confidence >= threshold
    pts = joints[sure] if sure.sum() >= 3 else joints
    lo, hi = pts.min(axis=0), pts.max(axis=0)
    centre, half = (lo + hi) / 2, (hi - lo) / 2 * POSE_BOX_ENLARGE
    return np.concatenate([centre - half, centre + half]).astype(np.float32)


@dataclass(eq=False)  # identity, not field-wise (numpy) comparison
class Track:
    """One person followed over frames. Joints and boxes are image px; `score` is the mean joint confidence."""

    track_id: int
    box: np.ndarray  # (4,) where to crop in the next frame
    joint_filter: OneEuroFilter
    token_smoother: TokenSmoother | None
    joints: np.ndarray | None = None  # (17, 2) filtered
    confidence: np.ndarray | None = None  # (17,)
    score: float = 0.0
    age: int = 0  # frames with a pose
    detected_box: np.ndarray | None = None  # (4,) the detector's last box for this person
    low_frames: int = 0  # consecutive frames with score under the tracker's lost_score (hidden meanwhile)

    @property
    def visible(self) -> bool:
        """Whether this frame's pose is worth showing: the score is not under lost_score."""
        return self.low_frames == 0


class Tracker:
    """Keeps the live tracks of a stream and gives each a stable id.

    Args:
        iou_match: a detection and a track with at least this IoU are the same person.
        lost_score: a track whose score falls below this is hidden, and dropped after `lost_frames` such frames in
            a row (the person left or was never there; one bad frame does not cost the id).
        lost_frames: consecutive low frames that end a track (1: the first one does).
        duplicate_iou: of two tracks whose pose boxes and last detector boxes both overlap this much, the
            lower-scored one is dropped.
        max_tracks: new detections start tracks only up to this many live tracks (best-scored detections first).
        filter_args: OneEuroFilter keyword arguments; None = no joint filtering.
        token_weight: TokenSmoother weight; None = no token smoothing.
        joint_threshold: confidence from which a joint counts as seen when the next box is drawn around a pose.

    The defaults are `StreamConfig`'s; the pipeline passes its config's values.
    """

    def __init__(
        self,
        iou_match: float = 0.3,
        lost_score: float = StreamConfig.lost_score,
        lost_frames: int = StreamConfig.lost_frames,
        duplicate_iou: float = 0.6,
        max_tracks: int = StreamConfig.max_persons,
        filter_args: dict | None = None,
        token_weight: float | None = None,
        joint_threshold: float = StreamConfig.joint_threshold,
    ) -> None:
        self.iou_match, self.lost_score, self.duplicate_iou = iou_match, lost_score, duplicate_iou
        if lost_frames < 1:
            raise ConfigError(f"stream.lost_frames must be >= 1 (frames under lost_score that end a track), got "
                              f"{lost_frames}")
        self.lost_frames = lost_frames
        self.max_tracks = max_tracks
        self.filter_args, self.token_weight, self.joint_threshold = filter_args, token_weight, joint_threshold
        self.tracks: list[Track] = []
        self._ids = itertools.count(1)

    def _new_track(self, box: np.ndarray) -> Track:
        one_euro = OneEuroFilter(**self.filter_args) if self.filter_args is not None else None
        smoother = TokenSmoother(self.token_weight) if self.token_weight is not None else None
        box = np.asarray(box, np.float32)
        return Track(next(self._ids), box, one_euro, smoother, detected_box=box.copy())

    def assign(self, boxes: np.ndarray) -> None:
        """Replace the tracks by detector boxes (D, 4+), best first: a detection matching a track keeps its id and
        state and takes the detector's box, the others start new tracks (up to max_tracks), unmatched tracks end."""
        boxes = np.asarray(boxes, np.float32)
        boxes = boxes.reshape(len(boxes), -1)[:, :4] if len(boxes) else np.zeros((0, 4), np.float32)
        free_dets, free_tracks = set(range(len(boxes))), set(range(len(self.tracks)))
        if self.tracks and len(boxes):
            # Against the pose-driven box and the last detector box: either may be the closer one (a weak pose
            # drifts; a person moves away from an old detection).
            iou = np.maximum(box_iou(np.stack([t.box for t in self.tracks]), boxes),
                             box_iou(np.stack([t.detected_box for t in self.tracks]), boxes))
            # Greedy: the best-overlapping pair first, each track and detection used once.
            for ti, di in zip(*np.unravel_index(np.argsort(-iou, axis=None), iou.shape), strict=True):
                if iou[ti, di] < self.iou_match:
                    break
                if ti in free_tracks and di in free_dets:
                    self.tracks[ti].box = boxes[di].copy()
                    self.tracks[ti].detected_box = boxes[di].copy()
                    free_tracks.discard(ti)
                    free_dets.discard(di)
        self.tracks = [t for i, t in enumerate(self.tracks) if i not in free_tracks]
        room = max(self.max_tracks - len(self.tracks), 0)
        self.tracks.extend(self._new_track(boxes[di]) for di in sorted(free_dets)[:room])

    def update(self, tracks: list[Track], joints: np.ndarray, confidence: np.ndarray, t_s: float) -> None:
        """Store the new poses of `tracks` (all live tracks; joints (P, 17, 2) px, confidence (P, 17)) seen at
        time `t_s` s, filter them, derive next boxes, and drop lost and duplicate tracks."""
        for track, pose, conf in zip(tracks, joints, confidence, strict=True):
            track.score = float(conf.mean())
            box = _limit_shrink(box_from_pose(pose, conf, self.joint_threshold), track.box)
            height = float(box[3] - box[1])
            track.joints = track.joint_filter(pose, t_s, height) if track.joint_filter is not None else pose
            track.confidence, track.box, track.age = conf, box, track.age + 1
            track.low_frames = track.low_frames + 1 if track.score < self.lost_score else 0
        kept = sorted((t for t in self.tracks if t.low_frames < self.lost_frames), key=lambda t: -t.score)
        self.tracks = []
        for t in kept:
            if not self.tracks or not self._duplicates(t).any():
                self.tracks.append(t)

    def _duplicates(self, track: Track) -> np.ndarray:
        """(T,) bool: which kept tracks `track` duplicates. Their pose boxes overlap by duplicate_iou and so did
        their last detector boxes: of two people side by side, the heatmap refinement can pull one's joints onto
        the other for a frame, and the next detection puts that track back on its own person. With the pose boxes
        alone, pct_lite_fast.pt dropped 11 street.avi tracks as duplicates (3 without the refinement) and made 26
        ids; with this rule 19 (pct_lite.pt: 28 -> 20; vtest.avi 109 -> 104 and 141 -> 130)."""
        pose = box_iou(track.box[None], np.stack([k.box for k in self.tracks]))[0]
        detected = box_iou(track.detected_box[None], np.stack([k.detected_box for k in self.tracks]))[0]
        return (pose >= self.duplicate_iou) & (detected >= self.duplicate_iou)


def _limit_shrink(box: np.ndarray, previous: np.ndarray) -> np.ndarray:
    """box (4,) x1 y1 x2 y2, widened / heightened around its centre to at least MAX_SHRINK_PER_FRAME x previous."""
    centre, size = (box[:2] + box[2:]) / 2, box[2:] - box[:2]
    size = np.maximum(size, MAX_SHRINK_PER_FRAME * (previous[2:] - previous[:2]))
    return np.concatenate([centre - size / 2, centre + size / 2]).astype(np.float32)
