"""Start the camera app: `run_app`, called by `edge-pct app` and `python -m edge_pct.app` (`__main__.py`).

Interactive runs load the remembered settings (QSettings), let the command line override them for this run only,
and save what the user changes in the window. Headless runs (`--exit-after N`) ignore and never write the stored
settings, so scripts are reproducible: they process N frames as fast as possible, save a screenshot of the window
(`--screenshot`) and return; without a display they use Qt's offscreen platform. A session error there raises
the EdgePctError the CLI prints as one line (exit code 2). This module imports PyQt6 only inside `run_app`.
"""

from __future__ import annotations

import dataclasses
import os
import signal
import sys
from pathlib import Path
from typing import Any

from edge_pct.config import StreamConfig
from edge_pct.core.errors import EdgePctError, MissingDependencyError
from edge_pct.core.optional import require

QT_DEBIAN_LIBS = "libegl1 libgl1 libxkbcommon0 libfontconfig1 libfreetype6 libdbus-1-3 libglib2.0-0"


def check_qt() -> None:
    """Raise MissingDependencyError unless PyQt6 and the Qt system libraries it links load."""
    require("PyQt6", "app")
    try:
        import PyQt6.QtWidgets  # noqa: F401 - loads libQt6Gui, which needs the system libraries below
    except ImportError as e:
        raise MissingDependencyError(
            f"PyQt6 is installed but Qt cannot load ({e}): install Qt's system libraries, e.g. "
            f"`sudo apt-get install {QT_DEBIAN_LIBS}` (README, App)"
        ) from e


def _prepare_qt_environment(headless: bool) -> None:
    import cv2  # noqa: F401 - imported first: non-headless cv2 points QT_QPA_PLATFORM_PLUGIN_PATH at its Qt5 plugins

    os.environ.pop("QT_QPA_PLATFORM_PLUGIN_PATH", None)  # ... which break PyQt6 on a real display
    if headless and not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")):
        os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")


def run_app(
    source: str | None = None,
    *,
    model: str | None = None,
    backend: str | None = None,
    precision: str | None = None,
    detector: str | None = None,
    detector_model: str | None = None,
    smoothing: bool | None = None,
    loop: bool | None = None,
    stream: StreamConfig | None = None,
    exit_after: int | None = None,
    screenshot: str | Path | None = None,
    settings_path: str | Path | None = None,
    retries: int = 3,
) -> dict[str, Any]:
    """Run the app until its window closes (interactive) or N frames ran (`exit_after`, headless).

    Args:
        source ... loop: override the remembered settings for this run (None keeps them).
        stream: pipeline settings (`[stream]` of a config); its detector / detector_model are used when the
            arguments are None; smoothing comes from the app's own setting.
        exit_after: headless: stop after this many frames, save `screenshot`, return.
        screenshot: PNG path of the window screenshot (headless).
        retries: headless: reconnect attempts (1, 2, 4 s apart) after a lost source before the run fails (exit 2);
            the window retries until closed.
        settings_path: an INI file instead of the user's settings store (interactive runs).

    Returns:
        {source, frames, end, backend, precision, detector, screenshot}.

    Raises:
        MissingDependencyError: PyQt6 or the Qt libraries are missing.
        EdgePctError: headless only: the source, model or detector failed (the app shows a dialog otherwise).
    """
    check_qt()
    headless = exit_after is not None
    _prepare_qt_environment(headless)
    from PyQt6.QtCore import QTimer
    from PyQt6.QtWidgets import QApplication

    from .main_window import MainWindow
    from .main_window import screenshot as save_screenshot
    from .settings import AppSettings, load_settings, open_settings

    app = QApplication.instance() or QApplication([sys.argv[0], "-name", "edge-pct"])
    store = None if headless else open_settings(settings_path)
    # Precedence: command line, then the [stream] section of --config, then the remembered settings.
    detector = detector or getattr(stream, "detector", "") or None
    detector_model = detector_model or getattr(stream, "detector_model", "") or None
    overrides = {"source": source, "model": model, "backend": backend, "precision": precision, "detector": detector,
                 "detector_model": detector_model, "smoothing": smoothing, "loop": loop}  # fmt: skip
    base = load_settings(store) if store is not None else AppSettings()
    settings = dataclasses.replace(base, **{k: v for k, v in overrides.items() if v is not None})
    options = {"pace": not headless, "max_frames": exit_after, "max_retries": retries if headless else None}
    window = MainWindow(settings, store, stream, dialogs=not headless, worker_options=options)
    outcome: dict[str, Any] = {"source": settings.source, "end": None, "screenshot": None}

    def on_failed(title: str, text: str) -> None:
        outcome.setdefault("error", f"{title}: {text}")

    def on_ended(reason: str) -> None:
        outcome["end"] = reason
        if headless:
            if screenshot is not None and reason != "failed":
                try:
                    outcome["screenshot"] = str(save_screenshot(window, screenshot))
                except EdgePctError as e:
                    outcome["error"] = str(e)
            app.exit(0)

    window.session_failed.connect(on_failed)
    window.session_ended.connect(on_ended)
    window.show()
    window.start_session()
    previous = signal.signal(signal.SIGINT, lambda *_: window.close())  # Ctrl+C in the terminal closes cleanly
    wake = QTimer(interval=200)  # Python runs signal handlers only when it gets control: give it some
    wake.timeout.connect(lambda: None)
    wake.start()
    try:
        app.exec()
    finally:
        wake.stop()
        signal.signal(signal.SIGINT, previous)
        info = {"frames": window.frames_shown, **window.session_summary()}
        window.close()
        window.deleteLater()
    if headless and "error" in outcome:
        raise EdgePctError(outcome["error"])
    return {**outcome, **info}
