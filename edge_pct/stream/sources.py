"""Video sources of the streaming pipeline: a file read frame by frame, or a live camera / stream URL.

`FileSource` returns every frame in order (the benchmark must see the same frames on every backend).
`LiveSource` reads on a daemon thread and keeps only the newest frame: for live video, latency beats
completeness, so a slow consumer skips frames (counted in `frames_dropped`) instead of falling further and
further behind a growing queue. `open_source` picks one from a CLI `--source` value. cv2 only.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any

import cv2
import numpy as np

from edge_pct.core.errors import InputFileError, SourceError

log = logging.getLogger(__name__)

DEFAULT_FPS = 30.0  # used when the container or camera does not report a frame rate
CLOSE_JOIN_TIMEOUT_S = 1.0  # close() never waits longer than this for the reader thread
_FAILED_READ_SLEEP_S = 0.005  # back-off between failed reads, so a dead capture does not spin a core

CaptureFactory = Callable[[Any], Any]  # cv2.VideoCapture-like: isOpened(), read(), get(prop), release()


@dataclass(frozen=True)
class Frame:
    """One decoded frame.

    Attributes:
        image: (H, W, 3) uint8 BGR.
        index: 0-based frame number read from the source (live: counts every grabbed frame, dropped ones too).
        timestamp_ms: source time in ms; file: index / fps * 1000, live: monotonic ms since the source opened.
    """

    image: np.ndarray
    index: int
    timestamp_ms: float


class VideoSource:
    """Common interface of the sources: `read()` until None, or iterate; close, or use as a context manager.

    Attributes:
        fps: source frame rate in frames/s (`DEFAULT_FPS` when the source does not say).
        size: frame (width, height) in pixels.
        live: True for cameras and streams (frames may be dropped), False for files.
        frames_dropped: frames replaced by a newer one before being read (always 0 for files).
    """

    fps: float = DEFAULT_FPS
    size: tuple[int, int] = (0, 0)
    live: bool = False
    frames_dropped: int = 0

    def read(self) -> Frame | None:
        """The next frame, or None at a clean end (end of file, or source closed)."""
        raise NotImplementedError

    def close(self) -> None:
        """Release the capture; safe to call twice."""
        raise NotImplementedError

    def __enter__(self) -> VideoSource:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def __iter__(self) -> Iterator[Frame]:
        while (frame := self.read()) is not None:
            yield frame


def _fps_of(cap: Any) -> float:
    fps = float(cap.get(cv2.CAP_PROP_FPS) or 0.0)
    return fps if math.isfinite(fps) and fps > 0 else DEFAULT_FPS


def _as_bgr(image: np.ndarray) -> np.ndarray:
    """Some cameras deliver gray (H, W) or BGRA frames; the pipeline wants (H, W, 3) BGR uint8."""
    if image.ndim == 2:
        return cv2.cvtColor(image, cv2.COLOR_GRAY2BGR)
    if image.shape[2] == 4:
        return cv2.cvtColor(image, cv2.COLOR_BGRA2BGR)
    return image


class FileSource(VideoSource):
    """A video file read frame by frame, never dropping (for `bench` and offline runs).

    Raises:
        InputFileError: the file is missing, or OpenCV cannot open it or decode its first frame.
    """

    live = False

    def __init__(self, path: str | Path, *, capture_factory: CaptureFactory = cv2.VideoCapture) -> None:
        self.path = Path(path)
        if not self.path.is_file():
            raise InputFileError(
                f"Video file not found: {self.path}. Check the path, or pass a camera index (--source 0) or a URL."
            )
        cap = capture_factory(str(self.path))
        ok, first = cap.read() if cap.isOpened() else (False, None)
        if not ok or first is None:
            cap.release()
            raise InputFileError(
                f"Cannot decode video {self.path}: OpenCV could not open it or read its first frame. "
                f"Re-encode it, e.g. `ffmpeg -i {self.path.name} -c:v libx264 out.mp4`."
            )
        self._cap = cap
        self._pending: np.ndarray | None = _as_bgr(first)  # the first frame, read above to validate the file
        self._next_index = 0
        self._closed = False
        self.fps = _fps_of(cap)
        self.size = (first.shape[1], first.shape[0])
        count = float(cap.get(cv2.CAP_PROP_FRAME_COUNT) or 0.0)
        self._frame_count = int(count) if math.isfinite(count) and count > 0 else 0

    @property
    def frame_count(self) -> int:
        """Frame count reported by the container; 0 when unknown (it can be approximate)."""
        return self._frame_count

    def read(self) -> Frame | None:
        """The next frame in order, or None at the end of the file (or after a mid-file decode failure)."""
        if self._closed:
            return None
        if self._pending is not None:
            image, self._pending = self._pending, None
        else:
            ok, image = self._cap.read()
            if not ok or image is None:
                if self._next_index < self._frame_count:
                    log.warning(
                        "%s: decoding stopped at frame %d of %d; treating it as the end of the video",
                        self.path,
                        self._next_index,
                        self._frame_count,
                    )
                self.close()
                return None
            image = _as_bgr(image)
        frame = Frame(image, self._next_index, self._next_index / self.fps * 1000.0)
        self._next_index += 1
        return frame

    def close(self) -> None:
        """Release the file; later reads return None."""
        if not self._closed:
            self._closed = True
            self._cap.release()


class LiveSource(VideoSource):
    """A camera (int index) or stream URL read on a daemon thread that keeps only the newest frame.

    Args:
        spec: camera index such as 0, or a URL (rtsp://, http://, https://).
        capture_factory: builds the capture from `spec` (cv2.VideoCapture; tests pass a fake).
        stall_timeout_s: `read` raises SourceError when no new frame arrives for this long.
        max_failed_reads: consecutive failed grabs after which the stream counts as stopped.

    Raises:
        SourceError: the device cannot be opened or delivers no first frame.
    """

    live = True

    def __init__(
        self,
        spec: int | str,
        *,
        capture_factory: CaptureFactory = cv2.VideoCapture,
        stall_timeout_s: float = 5.0,
        max_failed_reads: int = 30,
    ) -> None:
        self.name = f"camera {spec}" if isinstance(spec, int) else f"stream {spec}"
        self.stall_timeout_s = stall_timeout_s
        self.max_failed_reads = max_failed_reads
        self._cap = capture_factory(spec)
        self._t0 = time.monotonic()
        first = self._read_first() if self._cap.isOpened() else None
        if first is None:
            self._cap.release()
            fix = (
                "check the camera index with `v4l2-ctl --list-devices` and that no other program holds it"
                if isinstance(spec, int)
                else "check the URL and that the stream is up (try it in `ffplay`)"
            )
            raise SourceError(f"Cannot open {self.name}: {fix}, or pass --source FILE.")
        self.fps = _fps_of(self._cap)
        self.size = (first.shape[1], first.shape[0])
        self.frames_dropped = 0
        self._cond = threading.Condition()
        self._latest: Frame | None = Frame(first, 0, (time.monotonic() - self._t0) * 1000.0)
        self._grabbed = 1
        self._failure: str | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"edge-pct {self.name}", daemon=True)
        self._thread.start()

    def _read_first(self) -> np.ndarray | None:
        # Cameras may fail a few grabs while warming up; give them the same budget as a stall.
        deadline = time.monotonic() + self.stall_timeout_s
        for _ in range(self.max_failed_reads):
            ok, image = self._cap.read()
            if ok and image is not None:
                return _as_bgr(image)
            if time.monotonic() > deadline:
                break
            time.sleep(_FAILED_READ_SLEEP_S)
        return None

    def _run(self) -> None:
        # The reader thread owns the capture and releases it on exit: if close() gives up waiting while a
        # read() is blocked inside the driver, the capture is still released once that read returns.
        failures = 0
        try:
            while not self._stop.is_set():
                ok, image = self._cap.read()
                if ok and image is not None:
                    failures = 0
                    frame_image = _as_bgr(image)
                    with self._cond:
                        if self._latest is not None:
                            self.frames_dropped += 1  # replaced before anyone read it
                        self._latest = Frame(frame_image, self._grabbed, (time.monotonic() - self._t0) * 1000.0)
                        self._grabbed += 1
                        self._cond.notify_all()
                    continue
                failures += 1
                if failures >= self.max_failed_reads:
                    with self._cond:
                        self._failure = f"{failures} consecutive failed reads"
                        self._cond.notify_all()
                    return
                time.sleep(_FAILED_READ_SLEEP_S)
        finally:
            self._cap.release()

    def read(self, timeout_s: float | None = None) -> Frame | None:
        """The newest frame not returned yet; waits for one.

        Args:
            timeout_s: the most to wait for a new frame in seconds (default `stall_timeout_s`).

        Returns:
            the frame, or None once the source is closed.

        Raises:
            SourceError: the stream stopped delivering (failed reads, or no frame within the timeout).
        """
        timeout_s = self.stall_timeout_s if timeout_s is None else timeout_s
        deadline = time.monotonic() + timeout_s
        with self._cond:
            while self._latest is None and not self._stop.is_set():
                if self._failure is not None:
                    raise SourceError(
                        f"{self.name} stopped delivering frames ({self._failure}): "
                        "check the cable / network, or pass --source FILE."
                    )
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise SourceError(
                        f"{self.name} stopped delivering frames (none for {timeout_s:.1f} s): "
                        "check the cable / network, or pass --source FILE."
                    )
                self._cond.wait(remaining)
            if self._stop.is_set():  # closed: the reader may still have stored one last frame
                return None
            frame, self._latest = self._latest, None
            return frame

    def close(self) -> None:
        """Stop the reader thread, waiting at most `CLOSE_JOIN_TIMEOUT_S`; later reads return None."""
        self._stop.set()
        with self._cond:
            self._latest = None
            self._cond.notify_all()
        self._thread.join(CLOSE_JOIN_TIMEOUT_S)
        if self._thread.is_alive():
            log.warning("%s: reader thread still blocked in read(); the capture is released when it returns", self.name)


def open_source(
    spec: str | int | Path, *, capture_factory: CaptureFactory = cv2.VideoCapture, stall_timeout_s: float = 5.0
) -> VideoSource:
    """Source from a CLI `--source` value.

    Args:
        spec: an int or all-digit string -> camera index; a string with "://" -> stream URL; else a file path.
        capture_factory: passed to the source (tests pass a fake capture).
        stall_timeout_s: live sources only, see `LiveSource`.

    Raises:
        InputFileError: a file path that does not exist or cannot be decoded.
        SourceError: a camera or stream that cannot be opened.
    """
    if isinstance(spec, int) or (isinstance(spec, str) and spec.strip().isdigit()):
        return LiveSource(int(spec), capture_factory=capture_factory, stall_timeout_s=stall_timeout_s)
    if isinstance(spec, str) and "://" in spec:
        return LiveSource(spec, capture_factory=capture_factory, stall_timeout_s=stall_timeout_s)
    return FileSource(spec, capture_factory=capture_factory)
