"""Where a person's detector box will be: a constant-velocity Kalman filter over the box, as SORT and ByteTrack keep.

State (8,): centre x, centre y, width, height (px) and their rates (px / s). The filter is fed the detector's
boxes only (the steadier measurement; the pose-driven box follows the person between them) and predicts the box at
any later stream time, so a tracker can compare a new detection with where the person should be now rather than
where they were. Noise follows ByteTrack's: standard deviations proportional to the box height, 1/20 of it for
position and 1/160 for velocity per frame of a 25 fps stream (REFERENCE_FPS), scaled here with the elapsed time,
so a stream at another frame rate or with detector gaps gets the same uncertainty per second.
"""

from __future__ import annotations

import numpy as np

REFERENCE_FPS = 25.0  # the frame rate ByteTrack's per-frame noise figures are meant for
POSITION_STD = 1 / 20  # x box height: measurement and process noise of the position
VELOCITY_STD = 1 / 160  # x box height per reference frame: process noise of the rates
INITIAL_VELOCITY_STD = 10 / 160  # x box height per reference frame: how unsure the first rates are


def _to_state(box: np.ndarray) -> np.ndarray:
    """box (4,) x1 y1 x2 y2 -> (4,) cx cy w h."""
    return np.array([(box[0] + box[2]) / 2, (box[1] + box[3]) / 2, box[2] - box[0], box[3] - box[1]], np.float64)


def _to_box(z: np.ndarray) -> np.ndarray:
    """(4,) cx cy w h -> box (4,) x1 y1 x2 y2 float32, width and height kept >= 1 px."""
    w, h = max(z[2], 1.0), max(z[3], 1.0)
    return np.array([z[0] - w / 2, z[1] - h / 2, z[0] + w / 2, z[1] + h / 2], np.float32)


class BoxMotion:
    """The Kalman filter of one track's detector box.

    Args:
        box: the first detection (4,) x1 y1 x2 y2 px.
        t_s: its stream time, s (None: a stream without times; then predictions stay where the box was).
    """

    def __init__(self, box: np.ndarray, t_s: float | None) -> None:
        self.restart(box, t_s)

    def restart(self, box: np.ndarray, t_s: float | None) -> None:
        """Start at `box` seen at `t_s`, at rest and unsure of the rates (also: a track revived after a gap)."""
        z = _to_state(np.asarray(box, np.float64))
        self.x = np.concatenate([z, np.zeros(4)])
        h = max(z[3], 1.0)
        pos, vel = 2 * POSITION_STD * h, INITIAL_VELOCITY_STD * h * REFERENCE_FPS
        self.P = np.diag([pos, pos, pos, pos, vel, vel, vel, vel]) ** 2
        self.t_s = t_s

    @property
    def velocity(self) -> np.ndarray:
        """(2,) centre rate, px / s."""
        return self.x[4:6].astype(np.float32)

    def _predicted(self, t_s: float | None) -> tuple[np.ndarray, np.ndarray]:
        """(state, covariance) moved on to `t_s`."""
        dt = 0.0 if t_s is None or self.t_s is None else max(t_s - self.t_s, 0.0)
        if dt == 0.0:
            return self.x, self.P
        f = np.eye(8)
        f[:4, 4:] = dt * np.eye(4)
        h, steps = max(self.x[3], 1.0), dt * REFERENCE_FPS  # noise per reference frame, times the frames elapsed
        q = np.diag([POSITION_STD * h] * 4 + [VELOCITY_STD * h * REFERENCE_FPS] * 4) ** 2 * steps
        return f @ self.x, f @ self.P @ f.T + q

    def predict(self, t_s: float | None) -> np.ndarray:
        """The box (4,) x1 y1 x2 y2 px expected at stream time `t_s`, s (the state is not changed)."""
        return _to_box(self._predicted(t_s)[0][:4])

    def update(self, box: np.ndarray, t_s: float | None) -> None:
        """Take the detection `box` (4,) x1 y1 x2 y2 px seen at `t_s` s."""
        x, p = self._predicted(t_s)
        z = _to_state(np.asarray(box, np.float64))
        r = np.diag([POSITION_STD * max(z[3], 1.0)] * 4) ** 2
        s = p[:4, :4] + r
        k = p[:, :4] @ np.linalg.inv(s)
        self.x = x + k @ (z - x[:4])
        self.P = p - k @ p[:4, :]  # (I - K H) P with H = [I 0]
        if t_s is not None:
            self.t_s = t_s
