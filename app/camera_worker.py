"""The app's capture + inference worker: a QObject that runs on its own QThread.

It opens the source, the pose backend and the detector (slow: the first run exports the default model), then reads,
runs `edge_pct.PoseEstimator` (the Python API), draws the skeletons with `edge_pct.stream.overlay` on the numpy
frame, writes the recording, and hands the GUI a QImage *copy* per frame plus its numbers (`FrameStats`, for the HUD
the window paints at screen resolution) through `frame_ready`: the GUI thread only paints. Frames are driven by a
single-shot QTimer on the worker's own event loop, so requests from the GUI (pause, step, snapshot, record, stop...)
are handled between frames. Public methods are the thread-safe requests: each emits a private queued signal that
runs on the worker thread. Video files are paced to their frame rate (`pace`); live sources deliver at their own
rate. A camera or stream that stops is retried with growing delays and a message; a file's end stops or loops
(`loop`). Any load error becomes `failed(title, text)` and the worker stops: the window shows it and stays usable.
"""

from __future__ import annotations

import dataclasses
import functools
import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from PyQt6.QtCore import QObject, QTimer, pyqtSignal, pyqtSlot
from PyQt6.QtGui import QImage

from edge_pct.api import PoseEstimator
from edge_pct.config import StreamConfig
from edge_pct.core.errors import ConfigError, EdgePctError, SourceError
from edge_pct.stream.overlay import draw_persons
from edge_pct.stream.pipeline import FrameResult
from edge_pct.stream.sources import VideoSource, open_source

from .recorder import VideoRecorder, save_snapshot

log = logging.getLogger(__name__)

LIVE_STALL_TIMEOUT_S = 3.0  # a camera silent this long counts as disconnected
RETRY_DELAYS_S = (1.0, 2.0, 4.0, 5.0)  # reconnect delays; the last one repeats
FPS_WINDOW = 30  # frames in the moving FPS estimate
MAX_PENDING_FRAMES = 2  # frames handed to the GUI but not painted yet; beyond it a paced session skips showing one

TITLES = {
    "source": "Cannot open the video source",
    "model": "Cannot load the pose model",
    "detector": "Cannot load the person detector",
    "run": "Processing stopped",
}
PRECISION_FIX = {
    "fp32": "export the .pt with `edge-pct export` (FP32 is the default)",
    "fp16": "build an FP16 engine: `edge-pct build --onnx model.onnx --precision fp16`",
    "int8": "calibrate and build: `edge-pct calibrate ...` then `edge-pct build --precision int8`",
}


@dataclass(frozen=True)
class WorkerConfig:
    """One session: what to open and how to run it.

    Attributes:
        source: camera index ("0"), file path or URL.
        model: pose model file; None is the shipped default.
        backend: "onnxruntime" | "torch" | "tensorrt"; None follows the model file.
        precision: "fp32" | "fp16" | "int8" the loaded model must run at; None accepts any.
        detector: "track" | "onnx" | "mediapipe"; None follows `detector_model` (none: "track").
        detector_model: detector model file or None.
        stream: pipeline settings (smoothing, detection schedule...).
        loop: restart a file at its end instead of stopping.
        pace: play files at their frame rate (False: as fast as possible, for scripts).
        max_frames: stop after this many frames (headless runs); None runs until stopped.
        show_boxes: draw each person's crop box.
        max_retries: reconnect attempts after the source is lost before the session fails (headless runs); None
            retries until stopped (the window, which shows the attempts).
    """

    source: str = "0"
    model: str | None = None
    backend: str | None = None
    precision: str | None = None
    detector: str | None = None
    detector_model: str | None = None
    stream: StreamConfig = field(default_factory=StreamConfig)
    loop: bool = False
    pace: bool = True
    max_frames: int | None = None
    show_boxes: bool = True
    max_retries: int | None = None


@dataclass(frozen=True)
class SessionInfo:
    """What was opened: source name, (width, height) px, frame rate, live or file, backend, precision, detector."""

    source: str
    size: tuple[int, int]
    fps: float
    live: bool
    backend: str
    precision: str
    detector: str


@dataclass(frozen=True)
class FrameStats:
    """Numbers of one processed frame: source frame index, loop FPS, stage ms (STAGES), persons, live drops, and
    persons seen but not posed (beyond stream.max_persons or the pose time budget)."""

    index: int
    fps: float
    stage_ms: dict[str, float]
    persons: int
    frames_dropped: int
    unposed: int = 0


def to_qimage(image: np.ndarray) -> QImage:
    """(H, W, 3) uint8 BGR -> a QImage that owns its pixels (safe to send to another thread)."""
    image = np.ascontiguousarray(image)
    h, w = image.shape[:2]
    return QImage(image.data, w, h, image.strides[0], QImage.Format.Format_BGR888).copy()


def render_overlay(image: np.ndarray, result: FrameResult, threshold: float, boxes: bool) -> np.ndarray:
    """Draw the poses (and each person's crop box) on image (H, W, 3) uint8 BGR in place; returns it."""
    return draw_persons(image, result.persons, threshold, boxes)


def _open_default_backend(model: str | None, backend: str | None) -> Any:
    from edge_pct.engines.model_files import open_backend

    return open_backend(model, backend)


def _create_default_detector(name: str | None, model: str | None, stream: Any) -> Any:
    from edge_pct.stream.detectors.factory import stream_detector

    return stream_detector(stream, name, model)


class CameraWorker(QObject):
    """Capture + inference for one `WorkerConfig`; move it to a QThread and connect `thread.started` to `start`.

    Signals:
        opened(SessionInfo): everything loaded, frames follow.
        frame_ready(QImage, FrameStats): one processed frame with its overlay (a copy the GUI may keep).
        message(str): status text (reconnecting, saved files...).
        failed(str, str): title and EdgePctError text of an error that stopped the session.
        recording(bool): recording started / stopped.
        stopped(str): the worker is done: "stopped", "end of file", "frame limit" or "failed"; emitted once.

    The factories default to `open_source`, `open_backend` and `create_detector`; tests pass fakes.
    """

    opened = pyqtSignal(object)
    frame_ready = pyqtSignal(QImage, object)
    message = pyqtSignal(str)
    failed = pyqtSignal(str, str)
    recording = pyqtSignal(bool)
    stopped = pyqtSignal(str)
    tokens_ready = pyqtSignal(object)  # token_view.TokenFrame of each frame while a token painter is set
    _command = pyqtSignal(str, object)  # GUI-thread request -> runs on the worker thread (queued)

    def __init__(
        self,
        cfg: WorkerConfig,
        *,
        source_factory: Callable[[str], VideoSource] | None = None,
        backend_factory: Callable[[str | None, str | None], Any] = _open_default_backend,
        detector_factory: Callable[[str | None, str | None, Any], Any] = _create_default_detector,
    ) -> None:
        super().__init__()
        self.cfg = cfg
        self._source_factory = source_factory or functools.partial(open_source, stall_timeout_s=LIVE_STALL_TIMEOUT_S)
        self._backend_factory = backend_factory
        self._detector_factory = detector_factory
        self._stop_event = threading.Event()
        self._source: VideoSource | None = None
        self._backend: Any = None
        self._detector: Any = None
        self._estimator: PoseEstimator | None = None
        self._info: SessionInfo | None = None
        self._timer: QTimer | None = None
        self._recorder: VideoRecorder | None = None
        self._last_image: np.ndarray | None = None
        self._token_painter: Any = None
        self._paused = False
        self._done = False
        self._frames = 0
        self._retries = 0
        self._next_due = 0.0
        self._times: deque[float] = deque(maxlen=FPS_WINDOW)
        self._pending = 0  # frames emitted and not yet acknowledged by `frame_shown` (guarded by _pending_lock)
        self._pending_lock = threading.Lock()
        self._command.connect(self._on_command)

    # -- thread-safe requests (call from any thread) -------------------------------------------------------------
    def set_paused(self, paused: bool) -> None:
        """Pause or resume processing."""
        self._command.emit("paused", paused)

    def step(self) -> None:
        """While paused: process exactly one more frame."""
        self._command.emit("step", None)

    def set_smoothing(self, on: bool) -> None:
        """One-Euro smoothing on / off (restarts the tracks)."""
        self._command.emit("smoothing", on)

    def set_loop(self, on: bool) -> None:
        """Loop a file at its end (True) or stop there."""
        self._command.emit("loop", on)

    def set_boxes(self, on: bool) -> None:
        """Draw each person's crop box (True) or not."""
        self._command.emit("boxes", on)

    def set_token_view(self, painter: Any) -> None:
        """Draw joints coloured by token with `painter` (a token_view.TokenPainter; None: the normal overlay); while
        set, each frame also goes out clean with its persons' tokens through `tokens_ready`, before `frame_ready`."""
        self._command.emit("tokens", painter)

    def save_snapshot(self, path: str) -> None:
        """Write the last overlay frame as a PNG at `path`; reported through `message` (or `failed` text)."""
        self._command.emit("snapshot", path)

    def start_recording(self, path: str) -> None:
        """Record the overlay video to `path` (.mp4 or .avi) until `stop_recording`."""
        self._command.emit("record", path)

    def stop_recording(self) -> None:
        """Finish the recording (renamed from its temp name)."""
        self._command.emit("record", None)

    def frame_shown(self) -> None:
        """The GUI took a `frame_ready` frame. A paced (interactive) session shows a frame only while fewer than
        MAX_PENDING_FRAMES wait for the GUI, so a slow display skips frames instead of falling behind the camera;
        processing and recording still see every frame. Unpaced runs (headless) show every frame."""
        with self._pending_lock:
            self._pending = max(0, self._pending - 1)

    def stop(self) -> None:
        """Stop and release everything; `stopped` follows. Also wakes a live read blocked on a silent camera."""
        if self._done:
            return
        self._stop_event.set()
        source = self._source
        if source is not None and source.live:
            source.close()  # LiveSource.close is thread-safe: the blocked read() returns None
        self._command.emit("stop", None)

    # -- worker thread ---------------------------------------------------------------------------------------------
    @pyqtSlot()
    def start(self) -> None:
        """Open source, model and detector, then start the frame loop (runs on the worker thread)."""
        self._timer = QTimer(self)
        self._timer.setSingleShot(True)
        self._timer.timeout.connect(self._tick)
        if self._stop_event.is_set():  # stopped before the thread got here: load nothing
            self._shutdown("stopped")
            return
        step = "source"
        try:
            self._source = self._source_factory(self.cfg.source)
            self.message.emit(f"Loading the pose model {self.cfg.model or '(default)'}...")
            step = "model"
            self._backend = self._open_backend()
            step = "detector"
            self._detector = self._detector_factory(
                self.cfg.detector, self.cfg.detector_model, self.cfg.stream
            )
            self._estimator = PoseEstimator.from_parts(self._backend, self._detector, self.cfg.stream)
        except Exception as e:  # a GUI reports every load failure: an exception escaping a slot aborts PyQt6
            self._fail(TITLES[step], e)
            return
        src = self._source
        self._info = SessionInfo(
            self.cfg.source,
            src.size,
            src.fps,
            src.live,
            self._backend.name,
            self._backend.precision,
            self._detector.name,
        )
        self.opened.emit(self._info)
        self._next_due = time.monotonic()
        self._timer.start(0)

    def _open_backend(self) -> Any:
        backend = self._backend_factory(self.cfg.model, self.cfg.backend)
        want = self.cfg.precision
        if want and backend.precision != want:
            raise ConfigError(
                f"The pose model {self.cfg.model or '(default)'} runs at {backend.precision} on {backend.name}, "
                f"not {want}: pick a {want} model ({PRECISION_FIX.get(want, '')}) or set Precision to auto"
            )
        return backend

    def _fail(self, title: str, error: BaseException) -> None:
        if isinstance(error, EdgePctError):
            text = str(error)
        else:
            log.error("%s", title, exc_info=error)
            text = f"{type(error).__name__}: {error}"
        self.failed.emit(title, text)
        self._shutdown("failed")

    @pyqtSlot(str, object)
    def _on_command(self, name: str, arg: object) -> None:
        if self._done:
            return
        if name == "stop":
            self._shutdown("stopped")
        elif name == "paused":
            self._set_paused(bool(arg))
        elif name == "step":
            if self._paused and self._estimator is not None:
                self._tick()
        elif name == "smoothing":
            self._set_stream(dataclasses.replace(self.cfg.stream, smoothing=bool(arg)))
        elif name == "loop":
            self.cfg = dataclasses.replace(self.cfg, loop=bool(arg))
        elif name == "boxes":
            self.cfg = dataclasses.replace(self.cfg, show_boxes=bool(arg))
        elif name == "tokens":
            self._token_painter = arg
        elif name == "snapshot":
            self._snapshot(str(arg))
        elif name == "record":
            self._record(None if arg is None else str(arg))

    def _set_paused(self, paused: bool) -> None:
        self._paused = paused
        if self._timer is None or self._estimator is None:
            return
        if paused:
            self._timer.stop()
        else:
            self._times.clear()  # the pause is not a slow frame
            self._next_due = time.monotonic()
            self._timer.start(0)

    def _set_stream(self, stream: StreamConfig) -> None:
        self.cfg = dataclasses.replace(self.cfg, stream=stream)
        if self._estimator is not None:
            self._estimator = PoseEstimator.from_parts(self._backend, self._detector, stream)

    def _snapshot(self, path: str) -> None:
        if self._last_image is None:
            self.message.emit("No frame to save yet")
            return
        try:
            self.message.emit(f"Saved snapshot {save_snapshot(path, self._last_image)}")
        except EdgePctError as e:
            self.message.emit(str(e))

    def _record(self, path: str | None) -> None:
        if path is None:
            self._finish_recording()
            return
        if self._recorder is not None:
            return
        if self._source is None:
            self.message.emit("Cannot start recording while the source is reconnecting")
            return
        try:
            self._recorder = VideoRecorder(path, self._source.fps)
        except EdgePctError as e:
            self.message.emit(str(e))
            return
        self.recording.emit(True)
        self.message.emit(f"Recording to {path}")

    def _finish_recording(self) -> None:
        recorder, self._recorder = self._recorder, None
        if recorder is None:
            return
        saved = recorder.close()
        self.recording.emit(False)
        self.message.emit(f"Saved recording {saved} ({recorder.frames} frames)" if saved else "Nothing recorded")

    @pyqtSlot()
    def _tick(self) -> None:
        """Read, process and hand over one frame, then schedule the next (unless paused)."""
        if self._done or self._stop_event.is_set():
            return
        if self._source is None:
            self._reconnect()
            return
        try:
            frame = self._source.read()
        except SourceError as e:
            self._lose_source(str(e))
            return
        if frame is None:
            if not self._stop_event.is_set():
                self._end_of_source()
            return
        try:
            self._process(frame.image, frame.index, frame.timestamp_ms / 1e3)
        except Exception as e:  # report it: an exception escaping a slot aborts PyQt6
            self._fail(TITLES["run"], e)
            return
        self._frames += 1
        if self.cfg.max_frames is not None and self._frames >= self.cfg.max_frames:
            self._shutdown("frame limit")
        elif not self._paused:
            self._schedule_next()

    def _process(self, image: np.ndarray, index: int, t_s: float) -> None:
        assert self._estimator is not None and self._info is not None and self._source is not None
        self._estimator(image, t_s)
        result = self._estimator.last
        now = time.monotonic()
        self._times.append(now)
        fps = (len(self._times) - 1) / (self._times[-1] - self._times[0]) if len(self._times) > 1 else 0.0
        stats = FrameStats(index, fps, result.stage_ms, len(result.persons), self._source.frames_dropped,
                           result.unposed)
        painter = self._token_painter
        if painter is None:
            render_overlay(image, result, self.cfg.stream.joint_threshold, self.cfg.show_boxes)
        else:
            self.tokens_ready.emit(painter.draw(image, np.array([p.joints for p in result.persons], np.float32)))
        self._last_image = image
        if self._recorder is not None:
            try:
                self._recorder.write(image)
            except EdgePctError as e:
                self._recorder.abort()
                self._recorder = None
                self.recording.emit(False)
                self.message.emit(str(e))
        with self._pending_lock:
            show = not self.cfg.pace or self._pending < MAX_PENDING_FRAMES
            self._pending += show
        if show:
            self.frame_ready.emit(to_qimage(image), stats)

    def _schedule_next(self) -> None:
        assert self._timer is not None and self._source is not None
        delay_ms = 0
        if self.cfg.pace and not self._source.live:
            now = time.monotonic()
            # Never catch up after a slow frame: a late frame resets the schedule instead of bunching frames.
            self._next_due = max(self._next_due + 1.0 / self._source.fps, now)
            delay_ms = int((self._next_due - now) * 1000)
        self._timer.start(delay_ms)

    def _end_of_source(self) -> None:
        assert self._source is not None and self._timer is not None and self._estimator is not None
        if self._source.live:  # a stream that ended cleanly: treat it like a disconnect
            self._lose_source(f"{self.cfg.source} ended.")
            return
        if not self.cfg.loop:
            self._shutdown("end of file")
            return
        self._source.close()
        try:
            self._source = self._source_factory(self.cfg.source)
        except Exception as e:  # e.g. the file vanished between loops
            self._fail(TITLES["source"], e)
            return
        self._estimator.reset()
        self._next_due = time.monotonic()
        self._timer.start(0)

    def _lose_source(self, reason: str) -> None:
        assert self._timer is not None
        if self._source is not None:
            self._source.close()
            self._source = None
        if self._stop_event.is_set():
            return
        if self.cfg.max_retries is not None and self._retries >= self.cfg.max_retries:
            self._fail(TITLES["source"], SourceError(
                f"{reason} Gave up after {self._retries} reconnect attempts, {self._frames} frames processed: check "
                "the camera or stream, or allow more attempts with --retries N"))
            return
        delay = RETRY_DELAYS_S[min(self._retries, len(RETRY_DELAYS_S) - 1)]
        self._retries += 1
        self.message.emit(f"{reason} Retrying in {delay:g} s (attempt {self._retries})...")
        self._timer.start(int(delay * 1000))

    def _reconnect(self) -> None:
        assert self._timer is not None and self._estimator is not None
        try:
            source = self._source_factory(self.cfg.source)
        except Exception as e:  # keep retrying whatever the driver raised; an exception escaping a slot aborts PyQt6
            self._lose_source(str(e) if isinstance(e, EdgePctError) else f"{type(e).__name__}: {e}.")
            return
        self._source, self._retries = source, 0
        self._estimator.reset()
        self.message.emit(f"Reconnected to {self.cfg.source}")
        self._timer.start(0)

    def _shutdown(self, reason: str) -> None:
        """Release everything once and emit `stopped(reason)`."""
        if self._done:
            return
        self._done = True
        if self._timer is not None:
            self._timer.stop()
        try:
            self._finish_recording()
        except Exception as e:  # the file system failed: still release the camera
            self.message.emit(f"Recording lost: {e}")
        for closable in (self._source, self._detector):
            if closable is not None:
                try:
                    closable.close()
                except Exception:  # releasing must not stop the rest of the shutdown
                    log.exception("closing %r failed", closable)
        self._source = self._detector = self._backend = self._estimator = None
        self.stopped.emit(reason)
