"""How steady and how prompt the streamed joints are: jitter on persons that barely move, and smoother lag.

Jitter = mean |x[t+1] - 2 x[t] + x[t-1]| of the joints (px / frame^2) divided by the person's height, on the
frames where the person stands still (their mean joint moves under `STILL_SPEED` heights per frame over a window of
+-`STILL_WINDOW` frames): there every acceleration is noise, while a walker's legs really accelerate.
Lag = how many frames the filtered joints trail the raw ones on moving joints. For a joint moving at velocity v
(px / frame) a filter that trails by L frames outputs f(t) = r(t) - L v, so the least-squares L over all moving
samples is sum((r - f) . v) / sum(|v|^2), with v the raw central difference (r[t+1] - r[t-1]) / 2.

`SteadinessMeter` measures a stream as it goes: per track it keeps only the last 2 x STILL_WINDOW + 3 frames and
running sums, so its memory stays flat over any number of frames (a bench or soak of hours).
"""

from __future__ import annotations

import numpy as np

STILL_WINDOW = 5  # frames each side over which stillness is judged
STILL_SPEED = 0.005  # person heights per frame under which a person counts as still
MOVING_SPEED = 0.01  # person heights per frame from which a joint counts as moving (for the lag)
_KEEP = 2 * STILL_WINDOW + 3  # frames of a track the meter needs: an acceleration's 3 frames, each judged +-window

Sample = tuple[np.ndarray, np.ndarray | None, float]  # joints (J, 2) px, raw joints (J, 2) px or None, height px


class SteadinessMeter:
    """Running jitter and lag over tracks: `add(frame, track_id, joints, raw, height)` for every shown person, in
    frame order per track, then `result()`. A frame a track skips counts as 'not shown' (it breaks stillness and
    differences across it)."""

    def __init__(self) -> None:
        self._recent: dict[int, dict[int, Sample]] = {}  # track id -> {frame index: sample}, the last _KEEP frames
        self._last_frame: dict[int, int] = {}
        self.acc_sum = 0.0
        self.acc_n = 0
        self.lag_num = 0.0
        self.lag_den = 0.0

    def add(self, frame: int, track_id: int, joints: np.ndarray, raw: np.ndarray | None, height: float) -> None:
        recent = self._recent.setdefault(track_id, {})
        previous = self._last_frame.get(track_id)
        recent[frame] = (joints, raw, height)
        self._last_frame[track_id] = frame
        if previous is None:
            return
        self._add_lag(recent, previous)  # its next frame (or a gap) is now known
        w = STILL_WINDOW
        # an acceleration at t needs stillness at t+1, known once frame t+1+w is: the positions completed by `frame`
        for t in range(previous - w, min(previous, frame - 1 - w) + 1):
            self._add_acceleration(recent, t)
        for old in [i for i in recent if i <= frame - _KEEP]:
            del recent[old]

    def forget(self, before_frame: int) -> None:
        """Drop the tracks last shown before `before_frame` - _KEEP (nothing more can come of them)."""
        for k in [k for k, f in self._last_frame.items() if f < before_frame - _KEEP]:
            del self._recent[k], self._last_frame[k]

    def result(self) -> dict[str, float | int | None]:
        """jitter_still (x box height per frame^2, mean over the joints of still frames; None without any),
        still_samples (how many joint-frames that mean covers), lag_frames (None without raw joints or motion)."""
        return {"jitter_still": self.acc_sum / self.acc_n if self.acc_n else None,
                "still_samples": self.acc_n,
                "lag_frames": self.lag_num / self.lag_den if self.lag_den else None}

    def _still(self, recent: dict[int, Sample], t: int) -> bool:
        w = STILL_WINDOW
        if t not in recent or t - w not in recent or t + w not in recent:
            return False
        move = recent[t + w][0].mean(0) - recent[t - w][0].mean(0)
        return bool(np.linalg.norm(move) / (2 * w) / recent[t][2] < STILL_SPEED)

    def _add_acceleration(self, recent: dict[int, Sample], t: int) -> None:
        if not all(self._still(recent, i) for i in (t - 1, t, t + 1)):
            return
        j = [recent[i][0] for i in (t - 1, t, t + 1)]
        acc = np.linalg.norm(j[2] - 2 * j[1] + j[0], axis=-1) / recent[t][2]
        acc = acc[np.isfinite(acc)]
        self.acc_sum += float(acc.sum())
        self.acc_n += acc.size

    def _add_lag(self, recent: dict[int, Sample], t: int) -> None:
        before, now, after = recent.get(t - 1), recent[t], recent.get(t + 1)
        if before is None or after is None or before[1] is None or after[1] is None:
            return
        v = (after[1] - before[1]) / 2  # (J, 2) px / frame
        moving = np.linalg.norm(v, axis=-1) / now[2] > MOVING_SPEED
        if now[1] is not None:
            self.lag_num += float(((now[1] - now[0]) * v).sum(-1)[moving].sum())
        self.lag_den += float((v * v).sum(-1)[moving].sum())


class PoseLinker:
    """Track ids for a pose estimator without them (MediaPipe's PoseLandmarker): each pose (J, 2) px of a frame
    joins the track whose pose in the previous frame has the nearest mean joint, within `max_jump` x its height,
    greedily nearest first; the others start tracks. Height = joint extent in y x 1.2."""

    def __init__(self, max_jump: float = 0.5) -> None:
        self.max_jump = max_jump
        self._last: dict[int, np.ndarray] = {}  # track id -> its joints in the previous frame
        self._next_id = 0

    def link(self, poses: list[np.ndarray]) -> dict[int, np.ndarray]:
        """{track id: joints} for this frame's poses."""
        pairs = sorted((float(np.linalg.norm(p.mean(0) - q.mean(0))), k, i) for k, q in self._last.items()
                       for i, p in enumerate(poses))
        now: dict[int, np.ndarray] = {}
        used: set[int] = set()
        for dist, k, i in pairs:
            if k in now or i in used or dist > self.max_jump * pose_height(self._last[k]):
                continue
            now[k] = poses[i]
            used.add(i)
        for i, p in enumerate(poses):
            if i not in used:
                now[self._next_id] = p
                self._next_id += 1
        self._last = now
        return now


def pose_height(joints: np.ndarray) -> float:
    """A person's height (px) from its joints (J, 2): their extent in y x 1.2, at least 1."""
    return max(float(np.ptp(joints[:, 1])) * 1.2, 1.0)
