"""The app's output files: PNG snapshots and the overlay video, written under a temporary name and then renamed.

A half-written file never appears under its final name: a snapshot is encoded in memory and written atomically
(`edge_pct.core.files.write_atomic`); a recording goes to a hidden `.<name>.tmp.<ext>` next to the target and is renamed
when it is stopped, so a crash leaves only the temp file behind. cv2 only, no Qt: unit-testable on its own.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

import cv2
import numpy as np

from edge_pct.core.errors import InputFileError
from edge_pct.core.files import write_atomic

log = logging.getLogger(__name__)

# cv2's pip wheels write mp4v in .mp4 and MJPG in .avi; H.264 is not in them.
FOURCC_BY_SUFFIX = {".mp4": "mp4v", ".avi": "MJPG"}


def timestamped_path(folder: str | Path, prefix: str, suffix: str) -> Path:
    """`folder/<prefix>-YYYYmmdd-HHMMSS<suffix>`, with `-2`, `-3`... appended when that name exists."""
    folder = Path(folder)
    stem = f"{prefix}-{time.strftime('%Y%m%d-%H%M%S')}"
    path, n = folder / f"{stem}{suffix}", 2
    while path.exists():
        path, n = folder / f"{stem}-{n}{suffix}", n + 1
    return path


def save_snapshot(path: str | Path, image: np.ndarray) -> Path:
    """Write image (H, W, 3) uint8 BGR as a PNG at `path` (folders created); returns the path.

    Raises:
        InputFileError: the image cannot be encoded or the folder is not writable.
    """
    path = Path(path)
    ok, data = cv2.imencode(".png", image)
    if not ok:
        raise InputFileError(f"Cannot encode the snapshot as PNG (image {image.shape} {image.dtype})")
    try:
        write_atomic([(path, data.tobytes())])
    except OSError as e:
        raise InputFileError(f"Cannot write snapshot '{path}': {e.strerror}; pick a writable output folder") from e
    return path


class VideoRecorder:
    """Frames (H, W, 3) uint8 BGR, all the same size, to a .mp4 (mp4v) or .avi (MJPG) at `fps`.

    The writer opens on the first frame (the size is known then). `close()` renames the temp file to `path`;
    `abort()` deletes it.

    Raises:
        InputFileError: an unsupported suffix, or a folder cv2 cannot write to.
    """

    def __init__(self, path: str | Path, fps: float) -> None:
        self.path = Path(path)
        suffix = self.path.suffix.lower()
        if suffix not in FOURCC_BY_SUFFIX:
            raise InputFileError(f"Cannot record to '{self.path}': use one of {sorted(FOURCC_BY_SUFFIX)}")
        self.fps = fps if fps > 0 else 30.0
        self.tmp = self.path.with_name(f".{self.path.stem}.tmp{self.path.suffix}")
        self.frames = 0
        self._writer: cv2.VideoWriter | None = None
        self._size: tuple[int, int] | None = None

    def write(self, image: np.ndarray) -> None:
        """Append one frame; a frame of another size is resized to the first frame's (a camera that reconnected)."""
        size = (image.shape[1], image.shape[0])
        if self._writer is None:
            self.tmp.parent.mkdir(parents=True, exist_ok=True)
            fourcc = cv2.VideoWriter_fourcc(*FOURCC_BY_SUFFIX[self.path.suffix.lower()])
            self._writer = cv2.VideoWriter(str(self.tmp), fourcc, self.fps, size)
            if not self._writer.isOpened():
                self._writer = None
                raise InputFileError(f"Cannot write video '{self.path}': pick a writable output folder")
            self._size = size
        if size != self._size:
            image = cv2.resize(image, self._size, interpolation=cv2.INTER_AREA)
        self._writer.write(image)
        self.frames += 1

    def close(self) -> Path | None:
        """Finish the file and move it to `path`; returns it, or None when no frame was written."""
        if self._writer is None:
            return None
        self._writer.release()
        self._writer = None
        self.tmp.replace(self.path)
        log.info("recorded %d frames to %s", self.frames, self.path)
        return self.path

    def abort(self) -> None:
        """Drop the recording (temp file deleted)."""
        if self._writer is not None:
            self._writer.release()
            self._writer = None
        self.tmp.unlink(missing_ok=True)
