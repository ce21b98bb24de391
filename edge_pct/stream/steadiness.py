"""How steady and how prompt the streamed joints are: jitter on persons that barely move, and smoother lag.

Jitter = mean |x[t+1] - 2 x[t] + x[t-1]| of the joints (px / frame^2) divided by the person's height, on the
frames where the person stands still (their mean joint moves under `STILL_SPEED` heights per frame over a window of
+-`STILL_WINDOW` frames): there every acceleration is noise, while a walker's legs really accelerate.
Lag = how many frames the filtered joints trail the raw ones on moving joints. For a joint moving at velocity v
(px / frame) a filter that trails by L frames outputs f(t) = r(t) - L v, so the least-squares L over all moving
samples is sum((r - f) . v) / sum(|v|^2), with v the raw central difference (r[t+1] - r[t-1]) / 2.
Tracks are per-frame series: {frame index: (joints (J, 2) px, raw joints (J, 2) px or None, height px)}.
"""

from __future__ import annotations

import numpy as np

STILL_WINDOW = 5  # frames each side over which stillness is judged
STILL_SPEED = 0.005  # person heights per frame under which a person counts as still
MOVING_SPEED = 0.01  # person heights per frame from which a joint counts as moving (for the lag)

TrackSeries = dict[int, tuple[np.ndarray, np.ndarray | None, float]]


def _dense(series: TrackSeries) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A track as arrays over its frame span: joints (T, J, 2), raw joints (T, J, 2), heights (T,); NaN where the
    person was not shown (or, for raw, not recorded)."""
    idx = sorted(series)
    first, n = idx[0], idx[-1] - idx[0] + 1
    shape = series[first][0].shape
    joints, raw = np.full((n, *shape), np.nan), np.full((n, *shape), np.nan)
    heights = np.full(n, np.nan)
    for i in idx:
        j, r, h = series[i]
        joints[i - first], heights[i - first] = j, h
        if r is not None:
            raw[i - first] = r
    return joints, raw, heights


def still_frames(joints: np.ndarray, heights: np.ndarray) -> np.ndarray:
    """(T,) bool: frames where the mean joint of joints (T, J, 2) moves under STILL_SPEED x height per frame,
    measured across +-STILL_WINDOW frames (False near the ends and gaps)."""
    centre, w = joints.mean(axis=1), STILL_WINDOW  # a frame without the person is NaN throughout
    still = np.zeros(len(joints), bool)
    if len(joints) > 2 * w:
        speed = np.linalg.norm(centre[2 * w:] - centre[:-2 * w], axis=-1) / (2 * w) / heights[w:-w]
        still[w:-w] = speed < STILL_SPEED  # NaN compares False
    return still


def steadiness(tracks: dict[int, TrackSeries]) -> dict[str, float]:
    """Over all tracks: jitter_still (x box height per frame^2, mean over the joints of still frames; None without
    any), still_samples (how many joint-frames that mean covers), lag_frames (None without raw joints or motion)."""
    acc_sum = acc_n = 0.0
    lag_num = lag_den = 0.0
    for series in tracks.values():
        if len(series) < 3:
            continue
        joints, raw, heights = _dense(series)
        still = still_frames(joints, heights)
        masked = np.where(still[:, None, None], joints, np.nan)
        acc = np.linalg.norm(masked[2:] - 2 * masked[1:-1] + masked[:-2], axis=-1) / heights[1:-1, None]
        acc = acc[np.isfinite(acc)]
        acc_sum, acc_n = acc_sum + float(acc.sum()), acc_n + acc.size
        v = (raw[2:] - raw[:-2]) / 2
        moving = np.linalg.norm(v, axis=-1) / heights[1:-1, None] > MOVING_SPEED  # (T-2, J); NaN -> False
        lag_num += float(np.nansum(((raw[1:-1] - joints[1:-1]) * v).sum(-1)[moving]))
        lag_den += float(np.nansum((v * v).sum(-1)[moving]))
    return {"jitter_still": acc_sum / acc_n if acc_n else None,
            "still_samples": int(acc_n),
            "lag_frames": lag_num / lag_den if lag_den else None}


def link_poses(frames: list[list[np.ndarray]], max_jump: float = 0.5) -> dict[int, TrackSeries]:
    """Tracks for a pose estimator without ids (MediaPipe's PoseLandmarker output): per frame a list of joints
    (J, 2) px; each pose joins the track whose last pose (previous frame) has the nearest mean joint, within
    `max_jump` x its height, greedily nearest first; the others start tracks. Height = joint extent in y x 1.2."""
    tracks: dict[int, TrackSeries] = {}
    last: dict[int, np.ndarray] = {}  # track id -> its joints in the previous frame
    next_id = 0
    for t, poses in enumerate(frames):
        now: dict[int, np.ndarray] = {}
        pairs = sorted(((float(np.linalg.norm(p.mean(0) - q.mean(0))), k, i) for k, q in last.items()
                        for i, p in enumerate(poses)))
        used: set[int] = set()
        for dist, k, i in pairs:
            if k in now or i in used or dist > max_jump * _height(last[k]):
                continue
            now[k] = poses[i]
            used.add(i)
        for i, p in enumerate(poses):
            if i not in used:
                now[next_id] = p
                next_id += 1
        for k, p in now.items():
            tracks.setdefault(k, {})[t] = (p, None, _height(p))
        last = now
    return tracks


def _height(joints: np.ndarray) -> float:
    return max(float(np.ptp(joints[:, 1])) * 1.2, 1.0)
