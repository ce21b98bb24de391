"""The app's main window: video view, settings panel, actions with keyboard shortcuts, status bar, and the worker.

The window owns one session at a time: a `CameraWorker` on its own QThread, built from the current AppSettings.
Changing the source, model, backend, precision or detector starts a new session; smoothing, loop, HUD and boxes
are sent to the running worker. Everything here runs on the GUI thread and only paints, shows state and
forwards requests: capture, inference and drawing happen in the worker. Errors from a session show in a
non-blocking dialog (reason + fix) and in the status bar; the window stays usable, e.g. to pick another source.
"""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path
from typing import Any

from PyQt6.QtCore import QSettings, Qt, QThread, pyqtSignal
from PyQt6.QtGui import QAction, QCloseEvent, QKeySequence
from PyQt6.QtWidgets import QDockWidget, QLabel, QMainWindow, QMessageBox, QWidget

from edge_pct.config import StreamConfig
from edge_pct.core.errors import InputFileError
from edge_pct.stream.pipeline import STAGES

from .camera_worker import CameraWorker, FrameStats, SessionInfo, WorkerConfig, to_qimage
from .recorder import timestamped_path
from .settings import AUTO, GEOMETRY_KEY, AppSettings, save_settings
from .settings_panel import SettingsPanel
from .token_panel import TokenPanel
from .video_view import VideoView

log = logging.getLogger(__name__)

STOP_WAIT_MS = 10_000  # the longest close() waits for the worker (a model export or camera open in progress)
MESSAGE_MS = 8_000  # how long a status bar message stays
OUTPUT_PREFIX = "edge-pct"
CHECKABLE = {"hud": "show_hud", "boxes": "show_boxes", "smoothing": "smoothing", "loop": "loop"}  # action: field
RECORD_SUFFIX = ".mp4"

SHORTCUTS = (  # (action name, keys, menu label, help text): one table for the actions and the help dialog
    ("pause", "Space", "Pause", "Pause / resume (after the end: play again)"),
    ("step", "Right", "Step", "Step one frame (pauses first)"),
    ("snapshot", "S", "Snapshot", "Save the overlay frame as a PNG in the output folder"),
    ("record", "R", "Record", "Start / stop recording the overlay video (.mp4) in the output folder"),
    ("hud", "H", "HUD", "Show / hide the HUD (FPS, stage ms, persons, backend)"),
    ("boxes", "B", "Person boxes", "Show / hide the person boxes"),
    ("smoothing", "M", "Smoothing", "Smoothing on / off"),
    ("loop", "L", "Loop video files", "Loop video files on / off"),
    ("tokens", "T", "Token colours", "Colour each joint by the token that governs it; paused: click a joint or token"),
    ("code_prev", "[", "Previous code", "Tokens on, paused: step the selected token to its previous code"),
    ("code_next", "]", "Next code", "Tokens on, paused: step the selected token to its next code"),
    ("apply", "Ctrl+Return", "Apply settings", "Apply the settings panel (reopens the source)"),
    ("restart", "F5", "Restart", "Restart the session"),
    ("open_file", "Ctrl+O", "Open video file...", "Open a video file"),
    ("open_camera", "Ctrl+K", "Open camera...", "Open a camera"),
    ("open_url", "Ctrl+U", "Open stream URL...", "Open a stream URL"),
    ("panel", "F9", "Settings panel", "Show / hide the settings panel"),
    ("fullscreen", "F11", "Full screen", "Full screen on / off (Esc leaves it)"),
    ("help", "F1", "Keyboard shortcuts", "This list"),
    ("quit", "Ctrl+Q", "Quit", "Quit"),
)


def hud_lines(stats: FrameStats, info: SessionInfo) -> list[str]:
    """The HUD text: FPS, per-stage latency (ms), persons (and those left unposed by the budget), backend /
    precision / detector."""
    stages = "  ".join(f"{k} {stats.stage_ms.get(k, 0.0):.1f}" for k in STAGES)
    fps = f"{stats.fps:5.1f}" if stats.fps > 0 else "   --"  # unknown until two frames were timed
    unposed = f" (+{stats.unposed} over budget, not posed)" if stats.unposed else ""
    return [
        f"FPS {fps}   persons {stats.persons}{unposed}",
        f"{stages} ms",
        f"{info.backend} {info.precision} | detector {info.detector}",
    ]


def worker_config(s: AppSettings, stream: StreamConfig, **kwargs: Any) -> WorkerConfig:
    """The WorkerConfig of AppSettings `s` ("auto" and "" become None); kwargs set the remaining fields."""

    def opt(value: str) -> str | None:
        return None if value in ("", AUTO) else value

    return WorkerConfig(
        source=s.source,
        model=opt(s.model),
        backend=opt(s.backend),
        precision=opt(s.precision),
        detector=opt(s.detector),
        detector_model=opt(s.detector_model),
        stream=dataclasses.replace(stream, smoothing=s.smoothing),
        loop=s.loop,
        show_boxes=s.show_boxes,
        **kwargs,
    )


class MainWindow(QMainWindow):
    """The camera app window.

    Args:
        settings: the initial choices.
        store: where changed settings are saved (None: nothing is saved, e.g. headless runs).
        stream: pipeline settings besides smoothing (default StreamConfig()).
        dialogs: show errors in message boxes (False: status bar only, for headless runs).
        worker_options: extra WorkerConfig fields (pace, max_frames) and CameraWorker factories (tests).

    Signals:
        session_ended(str): the worker stopped ("stopped", "end of file", "frame limit", "failed").
        session_failed(str, str): title and text of the error that ended a session.
    """

    session_ended = pyqtSignal(str)
    session_failed = pyqtSignal(str, str)

    def __init__(
        self,
        settings: AppSettings,
        store: QSettings | None = None,
        stream: StreamConfig | None = None,
        *,
        dialogs: bool = True,
        worker_options: dict[str, Any] | None = None,
    ) -> None:
        super().__init__()
        self.settings = settings
        self.store = store
        self.stream = stream or StreamConfig()
        self.dialogs = dialogs
        self.error_box: QMessageBox | None = None
        self.frames_shown = 0
        self._worker_options = dict(worker_options or {})
        self._worker: CameraWorker | None = None
        self._thread: QThread | None = None
        self._orphans: list[tuple[CameraWorker, QThread]] = []
        self._running = self._paused = self._recording = False
        self._info: SessionInfo | None = None
        self._token_painter: Any = None  # token_view.TokenPainter while the token view is on
        self._token_frame: Any = None  # the last token_view.TokenFrame
        self.stepper: Any = None  # token_view.TokenStepper of the paused frame

        self.view = VideoView()
        self.setCentralWidget(self.view)
        self.panel = SettingsPanel()
        self.panel.set_settings(settings)
        self.panel.apply_requested.connect(self.apply_panel)
        self.panel.view_changed.connect(self._panel_view_changed)
        self.dock = QDockWidget("Settings", self)
        self.dock.setObjectName("settings_dock")
        self.dock.setWidget(self.panel)
        self.addDockWidget(Qt.DockWidgetArea.RightDockWidgetArea, self.dock)
        self.token_panel = TokenPanel()
        self.token_panel.token_clicked.connect(self.select_token)
        self.token_panel.step_clicked.connect(self.step_code)
        self.token_dock = QDockWidget("Tokens", self)
        self.token_dock.setObjectName("token_dock")
        self.token_dock.setWidget(self.token_panel)
        self.addDockWidget(Qt.DockWidgetArea.RightDockWidgetArea, self.token_dock)
        self.token_dock.hide()
        self.view.clicked.connect(self._view_clicked)
        self.state_label, self.info_label = QLabel(), QLabel()
        self.state_label.setMinimumWidth(self.state_label.fontMetrics().horizontalAdvance("Playing | REC") + 12)
        self.statusBar().addPermanentWidget(self.state_label)
        self.statusBar().addPermanentWidget(self.info_label)
        self.actions_by_name = self._make_actions()
        self._make_menus()
        self._sync_checks()
        if store is not None and store.contains(GEOMETRY_KEY):
            self.restoreGeometry(store.value(GEOMETRY_KEY))
        else:
            self.resize(1280, 720)
        self.view.setFocus()  # not the source field: Space must pause, not type
        self._update_state()

    # -- actions, menus --------------------------------------------------------------------------------------------
    def _make_actions(self) -> dict[str, QAction]:
        slots = {
            "pause": self.toggle_pause, "step": self.step, "snapshot": self.snapshot, "record": self.toggle_record,
            "hud": self._toggle_view_field("show_hud"), "boxes": self._toggle_view_field("show_boxes"),
            "smoothing": self._toggle_view_field("smoothing"), "loop": self._toggle_view_field("loop"),
            "apply": self.apply_panel, "restart": self.start_session, "open_file": self.panel.pick_file,
            "open_camera": self.panel.pick_camera, "open_url": self.panel.pick_url,
            "tokens": self.toggle_tokens, "code_prev": lambda: self.step_code(-1),
            "code_next": lambda: self.step_code(1),
            "panel": lambda: self.dock.setVisible(not self.dock.isVisible()), "fullscreen": self.toggle_fullscreen,
            "help": self.show_shortcuts, "quit": self.close,
        }  # fmt: skip
        actions = {}
        for name, keys, label, text in SHORTCUTS:
            action = QAction(label, self)
            action.setShortcut(QKeySequence(keys))
            action.setToolTip(f"{text} ({keys})")
            action.setCheckable(name in CHECKABLE or name == "tokens")
            action.triggered.connect(slots[name])
            self.addAction(action)  # shortcuts work with the menu bar hidden (full screen)
            actions[name] = action
        leave = QAction("Leave full screen", self)
        leave.setShortcut(QKeySequence("Esc"))
        leave.triggered.connect(lambda: self.isFullScreen() and self.showNormal())
        self.addAction(leave)
        return actions

    def _make_menus(self) -> None:
        a = self.actions_by_name
        groups = {
            "&File": ("open_camera", "open_file", "open_url", None, "snapshot", "record", None, "quit"),
            "&Playback": ("pause", "step", "restart", "apply", None, "code_prev", "code_next"),
            "&View": ("hud", "boxes", "smoothing", "loop", "tokens", None, "panel", "fullscreen"),
            "&Help": ("help",),
        }
        for title, names in groups.items():
            menu = self.menuBar().addMenu(title)
            for name in names:
                if name is None:
                    menu.addSeparator()
                else:
                    menu.addAction(a[name])
        toolbar = self.addToolBar("Playback")
        toolbar.setObjectName("playback_toolbar")
        for name in ("pause", "step", "snapshot", "record"):
            toolbar.addAction(a[name])

    # -- sessions --------------------------------------------------------------------------------------------------
    @property
    def worker_thread(self) -> QThread | None:
        """The running session's thread (None before the first session)."""
        return self._thread

    def start_session(self) -> None:
        """(Re)open the source, model and detector of the current settings on a new worker thread."""
        self.stop_session()
        options = dict(self._worker_options)
        factories = {k: options.pop(k) for k in list(options) if k.endswith("_factory")}
        cfg = worker_config(self.settings, self.stream, **options)
        # No parents and no deleteLater: the worker stays alive until the next session replaces it (its thread has
        # finished by then, so deleting it from here is safe), which keeps `sender()` valid for its last signals.
        worker, thread = CameraWorker(cfg, **factories), QThread()
        worker.moveToThread(thread)
        thread.started.connect(worker.start)
        # Direct: quit() is thread-safe, and a queued call would wait for the GUI thread, which may be in wait().
        worker.stopped.connect(thread.quit, Qt.ConnectionType.DirectConnection)
        worker.opened.connect(self._on_opened)
        worker.frame_ready.connect(self._on_frame)
        worker.message.connect(self._on_message)
        worker.failed.connect(self._on_failed)
        worker.recording.connect(self._on_recording)
        worker.stopped.connect(self._on_stopped)
        worker.tokens_ready.connect(self._on_tokens)
        if self._token_painter is not None:
            worker.set_token_view(self._token_painter)
        self._worker, self._thread = worker, thread
        self._token_frame = self.stepper = None
        self._running, self._paused, self._recording, self._info = True, False, False, None
        self.setWindowTitle(f"edge-pct - {self.settings.source}")
        self.view.set_text(f"Opening {self.settings.source}...")
        self._update_state()
        thread.start()

    def stop_session(self) -> None:
        """Stop the worker and wait for its thread (at most STOP_WAIT_MS)."""
        worker, thread = self._worker, self._thread
        self._worker = None
        if worker is not None and thread is not None:
            worker.stop()
            if not thread.wait(STOP_WAIT_MS):
                log.warning("the worker did not stop within %d ms; leaving its thread behind", STOP_WAIT_MS)
                self._orphans.append((worker, thread))  # destroying a running QThread aborts the process
        self._running = self._recording = False
        self._update_state()

    def session_summary(self) -> dict[str, Any]:
        """{backend, precision, detector} of the last session that opened (None each before one did)."""
        info = self._info
        return {
            "backend": info.backend if info else None,
            "precision": info.precision if info else None,
            "detector": info.detector if info else None,
        }

    def _is_current(self) -> bool:
        # Queued signals of a stopped session may still arrive after a new one started: ignore them.
        return self._worker is not None and self.sender() is self._worker

    def _on_opened(self, info: SessionInfo) -> None:
        if not self._is_current():
            return
        self._info = info
        name = info.source if info.live else Path(info.source).name  # a file's folder is in the settings panel
        self.info_label.setText(
            f"{name} ({'live' if info.live else 'file'}, {info.size[0]}x{info.size[1]} @ {info.fps:.0f} fps) | "
            f"{info.backend} {info.precision} | detector {info.detector}"
        )
        self.statusBar().showMessage(f"Opened {info.source}", MESSAGE_MS)

    def _on_frame(self, image: Any, stats: FrameStats) -> None:
        worker = self.sender()
        if isinstance(worker, CameraWorker):
            worker.frame_shown()
        if not self._is_current():
            return
        self.view.set_frame(image, hud_lines(stats, self._info) if self.settings.show_hud and self._info else None)
        self.frames_shown += 1
        if self.stepper is not None or (self._token_painter is not None and self._paused):
            self._explore()  # a frame that was on its way when paused, or a single step: explore that one
        if stats.frames_dropped:
            self.state_label.setToolTip(f"{stats.frames_dropped} camera frames skipped to stay live")

    def _on_message(self, text: str) -> None:
        # Any session's: a stopped one still reports e.g. the recording it saved while stopping.
        self.statusBar().showMessage(text, MESSAGE_MS)

    def _on_failed(self, title: str, text: str) -> None:
        if not self._is_current():
            return
        log.error("%s: %s", title, text)
        self.statusBar().showMessage(f"{title}: {text}")
        self.view.set_text(f"{title}\n{text}", clear=True)
        self.session_failed.emit(title, text)
        if self.dialogs:
            self.error_box = QMessageBox(QMessageBox.Icon.Warning, title, text, QMessageBox.StandardButton.Ok, self)
            self.error_box.setInformativeText("Choose another source or model in the Settings panel and press Apply.")
            self.error_box.open()  # non-blocking: the window stays usable

    def _on_recording(self, on: bool) -> None:
        if self._is_current():
            self._recording = on
            self._update_state()

    def _on_stopped(self, reason: str) -> None:
        if not self._is_current():
            return
        if self._thread is not None:
            self._thread.wait(STOP_WAIT_MS)  # it is quitting already (stopped -> quit is direct)
        self._running = self._recording = False
        if reason == "end of file":
            self.statusBar().showMessage("End of the video: Space plays it again, L loops it", 0)
        self._update_state()
        if self._token_painter is not None:
            self._explore()  # the last frame stays explorable
        self.session_ended.emit(reason)

    def _sync_checks(self) -> None:
        for name, field in CHECKABLE.items():
            self.actions_by_name[name].setChecked(getattr(self.settings, field))

    def _update_state(self) -> None:
        state = "Stopped"
        if self._running:
            state = "Paused" if self._paused else "Playing"
        if self._recording:
            state += " | REC"
        self.state_label.setText(state)
        self.actions_by_name["pause"].setText("Resume" if self._paused and self._running else "Pause")
        self.actions_by_name["record"].setText("Stop recording" if self._recording else "Record")

    # -- user requests ---------------------------------------------------------------------------------------------
    def toggle_pause(self) -> None:
        """Pause / resume; after the end or a failure, start the session again."""
        if not self._running or self._worker is None:
            self.start_session()
            return
        self._paused = not self._paused
        self._worker.set_paused(self._paused)
        self._update_state()
        if self._paused and self._token_painter is not None:
            self._explore()
        elif not self._paused:
            self.stepper = None

    def step(self) -> None:
        """Process one frame (pauses first when playing)."""
        if self._worker is None or not self._running:
            return
        if not self._paused:
            self.toggle_pause()
        self._worker.step()

    def snapshot(self) -> None:
        """Save the current overlay frame as a PNG in the output folder."""
        if self._worker is not None and self._running:
            self._worker.save_snapshot(str(timestamped_path(self.settings.output_path(), OUTPUT_PREFIX, ".png")))

    def toggle_record(self) -> None:
        """Start recording the overlay video to the output folder, or stop and save it."""
        if self._worker is None or not self._running:
            return
        if self._recording:
            self._worker.stop_recording()
        else:
            self._worker.start_recording(
                str(timestamped_path(self.settings.output_path(), OUTPUT_PREFIX, RECORD_SUFFIX))
            )

    def apply_panel(self) -> None:
        """Take every field of the settings panel, save them, and reopen the session."""
        self._set_settings(self.panel.settings())
        self.start_session()

    def _panel_view_changed(self) -> None:
        new = self.panel.settings()
        self._set_settings(dataclasses.replace(self.settings, **{k: getattr(new, k) for k in _VIEW_FIELDS}))

    def _toggle_view_field(self, name: str) -> Any:
        def toggle() -> None:
            on = not getattr(self.settings, name)
            self._set_settings(dataclasses.replace(self.settings, **{name: on}))
            self.statusBar().showMessage(f"{name.replace('show_', '')}: {'on' if on else 'off'}", MESSAGE_MS)

        return toggle

    def _set_settings(self, new: AppSettings) -> None:
        """Adopt `new`, mirror it in the panel, save it, and send view changes to the running worker."""
        old, self.settings = self.settings, new
        self.panel.set_settings(new)
        self._sync_checks()
        if self.store is not None:
            save_settings(self.store, new)
        if self._worker is None:
            return
        if new.smoothing != old.smoothing:
            self._worker.set_smoothing(new.smoothing)
        if new.loop != old.loop:
            self._worker.set_loop(new.loop)
        if new.show_boxes != old.show_boxes:
            self._worker.set_boxes(new.show_boxes)

    # -- tokens ----------------------------------------------------------------------------------------------------
    def toggle_tokens(self) -> None:
        """Token view on / off: joints coloured by their governing token; paused, the token panel steps codes."""
        on = self._token_painter is None
        if on:
            from .token_view import TokenPainter, load_explorer

            try:
                explorer, source = load_explorer(self.settings.model if self.settings.model not in ("", AUTO)
                                                 else None)
            except Exception as e:  # an unloadable model: say so, the window stays as it was
                self.actions_by_name["tokens"].setChecked(False)
                self.statusBar().showMessage(f"Token view unavailable: {e}", MESSAGE_MS)
                return
            self._token_painter = TokenPainter(explorer)
            self.token_panel.set_tokens(self._token_painter.colors, source)
        else:
            self._token_painter = self.stepper = None
        self.actions_by_name["tokens"].setChecked(on)
        self.token_dock.setVisible(on)
        if self._worker is not None:
            self._worker.set_token_view(self._token_painter)
        self.statusBar().showMessage(f"token colours: {'on' if on else 'off'}", MESSAGE_MS)
        if on and (self._paused or not self._running):
            self._explore()

    def _on_tokens(self, frame: Any) -> None:
        if self._is_current():
            self._token_frame = frame

    def _explore(self) -> None:
        """Start exploring the last token frame (the paused or final one)."""
        if self._token_painter is None or self._token_frame is None:
            self.token_panel.show_state("Play a few frames with token colours on, then pause", None)
            return
        from .token_view import TokenStepper

        old = self.stepper
        self.stepper = TokenStepper(self._token_painter, self._token_frame)
        if old is not None and old.token is not None:
            self.stepper.select(old.token)
        self._show_tokens()

    def select_token(self, token: int) -> None:
        """Select a token of the paused person (the panel's buttons)."""
        if self.stepper is None:
            self._explore()
        if self.stepper is not None:
            self.stepper.select(token)
            self._show_tokens()

    def step_code(self, delta: int) -> None:
        """Step the selected token `delta` codes (keys [ and ])."""
        if self.stepper is None:
            self._explore()
        if self.stepper is not None and self.stepper.has_person:
            self.stepper.step(delta)
            self._show_tokens()

    def _view_clicked(self, x: float, y: float) -> None:
        if self.stepper is not None and self.stepper.select_at(x, y) is not None:
            self._show_tokens()

    def _show_tokens(self) -> None:
        assert self.stepper is not None
        caption = self.stepper.caption()
        self.view.set_frame(to_qimage(self.stepper.render()), [caption] if self.settings.show_hud else None)
        self.token_panel.show_state(caption, self.stepper.token)

    def toggle_fullscreen(self) -> None:
        """Full screen on / off."""
        if self.isFullScreen():
            self.showNormal()
        else:
            self.showFullScreen()

    def show_shortcuts(self) -> None:
        """A dialog listing the keyboard shortcuts."""
        rows = "".join(f"<tr><td><b>{keys}</b></td><td>{text}</td></tr>" for _, keys, _, text in SHORTCUTS)
        box = QMessageBox(QMessageBox.Icon.NoIcon, "Keyboard shortcuts", f"<table>{rows}</table>",
                          QMessageBox.StandardButton.Ok, self)  # fmt: skip
        box.open()

    def closeEvent(self, event: QCloseEvent | None) -> None:
        """Stop the worker (its thread finishes), save the geometry, close."""
        self.stop_session()
        if self.store is not None:
            self.store.setValue(GEOMETRY_KEY, self.saveGeometry())
            self.store.sync()
        super().closeEvent(event)


_VIEW_FIELDS = ("smoothing", "loop", "show_hud", "show_boxes", "output_dir")


def screenshot(widget: QWidget, path: str | Path) -> Path:
    """Save `widget.grab()` as a PNG at `path` (temp name, then rename); returns the path."""
    path = Path(path)
    tmp = path.with_name(f".{path.stem}.tmp.png")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        if not widget.grab().save(str(tmp), "PNG"):
            raise OSError("Qt could not write the PNG")
        tmp.replace(path)
    except OSError as e:
        tmp.unlink(missing_ok=True)
        raise InputFileError(f"Cannot write screenshot '{path}' ({e}): pick a writable folder") from e
    return path
