"""The PyQt6 camera app, offscreen with pytest-qt: a window plays a generated video with skeletons painted, bad
input shows a dialog and the window stays usable, settings round-trip through an INI file, pause / step / snapshot
/ record work, a lost camera is retried, closing stops the worker thread, and `edge-pct app --exit-after N
--screenshot PNG` runs headless (a bad source: one line, exit 2). A tiny random model on torch keeps it fast."""

from __future__ import annotations

import os

os.environ["QT_QPA_PLATFORM"] = "offscreen"  # before any QApplication exists: no display needed, none opened

import dataclasses
import json
import subprocess
import sys

import cv2
import numpy as np
import pytest

pytest.importorskip("PyQt6.QtWidgets", reason="PyQt6 (the `app` extra) or the Qt system libraries are missing")
os.environ.pop("QT_QPA_PLATFORM_PLUGIN_PATH", None)  # cv2's Qt5 plugin path would shadow PyQt6's platforms

from PyQt6.QtCore import Qt  # noqa: E402
from PyQt6.QtGui import QImage  # noqa: E402
from test_export import tiny_checkpoint  # noqa: E402

from edge_pct.app import camera_worker  # noqa: E402
from edge_pct.app.main_window import MainWindow  # noqa: E402
from edge_pct.app.settings import GEOMETRY_KEY, AppSettings, load_settings, open_settings, save_settings  # noqa: E402
from edge_pct.cli import main  # noqa: E402
from edge_pct.core.errors import SourceError  # noqa: E402
from edge_pct.stream.overlay import JOINT_COLORS  # noqa: E402
from edge_pct.stream.sources import Frame  # noqa: E402

W, H, FPS = 160, 120, 30.0
TIMEOUT_MS = 20_000


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory):
    return tiny_checkpoint(tmp_path_factory.mktemp("model") / "tiny.pt")


def _frame(i: int) -> np.ndarray:
    """Gray background with a light 'person' bar moving right: none of the skeleton colours."""
    img = np.full((H, W, 3), 90, np.uint8)
    cv2.rectangle(img, (60 + i, 20), (80 + i, 100), (230, 230, 230), -1)
    return img


@pytest.fixture(scope="module")
def video(tmp_path_factory):
    path = tmp_path_factory.mktemp("video") / "walk.avi"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), FPS, (W, H))
    for i in range(24):
        writer.write(_frame(i))
    writer.release()
    return path


def _window(qtbot, tmp_path, source, model, store=None, **options) -> MainWindow:
    # The synthetic videos show a stick figure YOLOX does not see as a person: the model-free detector crops it.
    settings = AppSettings(source=str(source), model=str(model), backend="torch", detector="track",
                           output_dir=str(tmp_path / "out"))
    options.setdefault("pace", False)
    window = MainWindow(settings, store, worker_options=options)
    qtbot.addWidget(window)  # closed (worker stopped) at teardown
    window.resize(800, 500)
    window.show()
    return window


def _rgb(image: QImage) -> np.ndarray:
    image = image.convertToFormat(QImage.Format.Format_RGB888)
    rows = np.frombuffer(image.constBits().asstring(image.sizeInBytes()), np.uint8).reshape(image.height(), -1)
    return rows[:, : image.width() * 3].reshape(image.height(), image.width(), 3)


def _skeleton_pixels(rgb: np.ndarray) -> int:
    """Pixels within 40 of a joint colour (the synthetic video is gray and white only)."""
    colors = np.array([c[::-1] for c in set(JOINT_COLORS)], np.int16)  # BGR -> RGB
    dist = np.abs(rgb[:, :, None, :].astype(np.int16) - colors[None, None]).max(-1)
    return int((dist < 40).any(-1).sum())


def test_window_plays_a_generated_video_with_skeletons_painted(qtbot, tmp_path, tiny_model, video):
    window = _window(qtbot, tmp_path, video, tiny_model, max_frames=12)
    before = _rgb(window.view.grab().toImage())
    with qtbot.waitSignal(window.session_ended, timeout=TIMEOUT_MS) as ended:
        window.start_session()
    assert ended.args == ["frame limit"] and window.frames_shown == 12
    after = _rgb(window.view.grab().toImage())
    assert (np.abs(after.astype(int) - before.astype(int)).max(-1) > 30).mean() > 0.3  # the video is painted
    assert _skeleton_pixels(before) == 0 and _skeleton_pixels(after) > 20  # ... with a skeleton on it
    assert window.view.image.size().width() == W  # the frame keeps the source resolution; the view scales it
    assert any(line.startswith("FPS") and "persons 1" in line for line in window.view.hud)
    assert window.session_summary() == {"backend": "torch", "precision": "fp32", "detector": "track"}
    assert window.worker_thread.isFinished()


@pytest.mark.parametrize(
    ("field", "value", "title"),
    [
        ("source", "missing.avi", "Cannot open the video source"),
        ("model", "missing.pt", "Cannot load the pose model"),
        ("detector_model", "missing.onnx", "Cannot load the person detector"),
    ],
)
def test_bad_input_shows_a_dialog_and_the_window_stays_usable(qtbot, tmp_path, tiny_model, video, field, value, title):
    window = _window(qtbot, tmp_path, video, tiny_model, max_frames=3)
    extra = {"detector": "onnx"} if field == "detector_model" else {}
    window.settings = dataclasses.replace(window.settings, **{field: str(tmp_path / value)}, **extra)
    with qtbot.waitSignal(window.session_failed, timeout=TIMEOUT_MS) as failed:
        window.start_session()
    assert failed.args[0] == title and "pass" in failed.args[1].lower()  # the reason names the fix
    qtbot.waitUntil(lambda: window.error_box is not None and window.error_box.isVisible())
    assert window.error_box.text() == failed.args[1] and window.isVisible()
    window.error_box.accept()
    qtbot.waitUntil(window.worker_thread.isFinished)
    # Still usable: fix the field in the settings panel, Apply, and frames come.
    window.panel.set_settings(dataclasses.replace(window.settings, **{field: getattr(AppSettings(), field)}))
    window.panel.source.setText(str(video))
    window.panel.model.setText(str(tiny_model))
    with qtbot.waitSignal(window.session_ended, timeout=TIMEOUT_MS) as ended:
        window.panel.apply.click()
    assert ended.args == ["frame limit"] and window.frames_shown == 3


def test_settings_round_trip_through_an_ini_file(qtbot, tmp_path):
    path = tmp_path / "app.ini"
    chosen = AppSettings(source="rtsp://cam/1", model="/m/pct.onnx", backend="onnxruntime", precision="fp16",
                         detector="onnx", detector_model="/m/yolox.onnx", smoothing=False, loop=True, show_hud=False,
                         show_boxes=False, output_dir="/tmp/out")  # fmt: skip
    save_settings(open_settings(path), chosen)
    assert load_settings(open_settings(path)) == chosen
    assert load_settings(open_settings(tmp_path / "new.ini")) == AppSettings()  # nothing stored: defaults
    store = open_settings(path)
    store.setValue("backend", "cuda")  # hand-edited nonsense falls back to the defaults
    store.setValue("smoothing", "maybe")
    assert load_settings(store) == dataclasses.replace(chosen, backend="auto", smoothing=True)

    # The window saves what the user changes (shortcut actions, panel) and its geometry on close.
    store = open_settings(tmp_path / "win.ini")
    window = MainWindow(AppSettings(), store)
    qtbot.addWidget(window)
    window.actions_by_name["hud"].trigger()
    window.actions_by_name["loop"].trigger()
    window.panel.detector.setCurrentText("track")
    window.panel.source.setText("2")
    window.apply_panel()
    window.close()
    reread = load_settings(open_settings(tmp_path / "win.ini"))
    assert reread == AppSettings(source="2", detector="track", show_hud=False, loop=True)
    assert open_settings(tmp_path / "win.ini").contains(GEOMETRY_KEY)


def test_closing_the_window_stops_the_worker_thread(qtbot, tmp_path, tiny_model, video):
    window = _window(qtbot, tmp_path, video, tiny_model, pace=True)  # real-time playback, no frame limit
    window.settings = dataclasses.replace(window.settings, loop=True)
    window.start_session()
    qtbot.waitUntil(lambda: window.frames_shown >= 3, timeout=TIMEOUT_MS)
    thread = window.worker_thread
    assert thread.isRunning()
    window.close()
    assert thread.isFinished()
    shown = window.frames_shown
    qtbot.wait(100)
    assert window.frames_shown == shown


def _visible(folder, pattern: str) -> list:
    """Files matching `pattern`, not the hidden temp files being written (pathlib's `*` matches dotfiles)."""
    return [p for p in folder.glob(pattern) if not p.name.startswith(".")]


def _settled(qtbot, window: MainWindow, quiet_ms: int = 200) -> int:
    """Wait until no frame arrived for `quiet_ms`; returns the frame count."""
    while True:
        shown = window.frames_shown
        qtbot.wait(quiet_ms)
        if window.frames_shown == shown:
            return shown


def test_pause_step_snapshot_and_record_from_the_keyboard(qtbot, tmp_path, tiny_model, video):
    window = _window(qtbot, tmp_path, video, tiny_model, pace=True)
    window.settings = dataclasses.replace(window.settings, loop=True)
    with qtbot.waitActive(window):  # shortcuts go to the active window
        window.activateWindow()
    window.start_session()
    qtbot.waitUntil(lambda: window.frames_shown >= 2, timeout=TIMEOUT_MS)
    qtbot.keyClick(window.view, Qt.Key.Key_Space)
    paused_at = _settled(qtbot, window)  # frames already on their way still arrive, then none
    qtbot.wait(200)
    assert window.frames_shown == paused_at and window.state_label.text() == "Paused"
    qtbot.keyClick(window.view, Qt.Key.Key_Right)
    qtbot.waitUntil(lambda: window.frames_shown == paused_at + 1, timeout=TIMEOUT_MS)

    out = tmp_path / "out"
    qtbot.keyClick(window.view, Qt.Key.Key_S)
    qtbot.waitUntil(lambda: len(_visible(out, "*.png")) == 1, timeout=TIMEOUT_MS)
    assert cv2.imread(str(_visible(out, "*.png")[0])).shape == (H, W, 3)  # the overlay frame, source resolution

    qtbot.keyClick(window.view, Qt.Key.Key_R)
    qtbot.waitUntil(lambda: "REC" in window.state_label.text(), timeout=TIMEOUT_MS)
    qtbot.keyClick(window.view, Qt.Key.Key_Space)  # resume
    qtbot.waitUntil(lambda: window.frames_shown >= paused_at + 8, timeout=TIMEOUT_MS)
    qtbot.keyClick(window.view, Qt.Key.Key_R)
    qtbot.waitUntil(lambda: len(_visible(out, "*.mp4")) == 1, timeout=TIMEOUT_MS)
    assert not list(out.glob(".*"))  # the temp file was renamed
    cap = cv2.VideoCapture(str(_visible(out, "*.mp4")[0]))
    assert cap.isOpened() and cap.get(cv2.CAP_PROP_FRAME_COUNT) >= 3
    cap.release()

    for key, field in ((Qt.Key.Key_H, "show_hud"), (Qt.Key.Key_B, "show_boxes"), (Qt.Key.Key_M, "smoothing")):
        qtbot.keyClick(window.view, key)
        assert getattr(window.settings, field) is False
    qtbot.waitUntil(lambda: window.view.hud == [], timeout=TIMEOUT_MS)  # the next frames come without the HUD


class _FakeCamera:
    """A live source delivering `frames` frames, then failing like an unplugged camera."""

    live, fps, size, frames_dropped = True, FPS, (W, H), 0

    def __init__(self, frames: int) -> None:
        self.left, self.index = frames, 0

    def read(self) -> Frame | None:
        if self.left == 0:
            raise SourceError("camera 0 stopped delivering frames (30 consecutive failed reads).")
        self.left -= 1
        self.index += 1
        return Frame(_frame(self.index), self.index, self.index * 33.3)

    def close(self) -> None:
        pass


def test_a_lost_camera_is_retried_with_a_message(qtbot, tmp_path, tiny_model, monkeypatch):
    monkeypatch.setattr(camera_worker, "RETRY_DELAYS_S", (0.05, 0.1))
    opened = []

    def factory(spec: str):
        opened.append(spec)
        if len(opened) == 2:  # the first reconnect attempt fails too
            raise SourceError("Cannot open camera 0: check the camera index.")
        return _FakeCamera(frames=4)

    window = _window(qtbot, tmp_path, "0", tiny_model, source_factory=factory)
    messages: list[str] = []
    window.statusBar().messageChanged.connect(messages.append)
    window.start_session()
    qtbot.waitUntil(lambda: window.frames_shown >= 6, timeout=TIMEOUT_MS)
    assert opened == ["0", "0", "0"]
    assert any("stopped delivering" in m and "Retrying in 0.05 s (attempt 1)" in m for m in messages)
    assert any("Retrying in 0.1 s (attempt 2)" in m for m in messages)
    assert any("Reconnected" in m for m in messages)


def test_headless_run_writes_a_screenshot_and_json(qapp, tmp_path, tiny_model, video, capsys):
    png, out = tmp_path / "shots" / "app.png", tmp_path / "run.json"
    argv = ["app", "--source", str(video), "--model", str(tiny_model), "--backend", "torch", "--exit-after", "5",
            "--screenshot", str(png), "--json", str(out)]  # fmt: skip
    assert main(argv) == 0
    res = json.loads(out.read_text())
    assert res["frames"] == 5 and res["end"] == "frame limit" and res["screenshot"] == str(png)
    shot = cv2.imread(str(png))
    assert shot is not None and shot.shape[0] > H and shot.shape[1] > W  # the whole window, not just the frame
    assert not list(png.parent.glob(".*"))


def test_headless_bad_input_is_one_line_and_exit_2(qapp, tmp_path, capsys):
    assert main(["app", "--source", str(tmp_path / "missing.avi"), "--exit-after", "3"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("edge-pct app: error: Cannot open the video source") and "not found" in err
    assert len(err.splitlines()) == 1
    assert main(["app", "--source", "x.avi", "--screenshot", str(tmp_path / "a.png")]) == 2
    assert "--exit-after" in capsys.readouterr().err


def test_without_pyqt6_the_app_command_names_the_extra():
    code = (
        "import sys\n"
        "sys.modules['PyQt6'] = None  # as if the `app` extra were not installed\n"
        "import edge_pct.app, edge_pct.app.__main__, edge_pct.app.launch  # importable without Qt\n"
        "from edge_pct.cli import main\n"
        "sys.exit(main(['app', '--exit-after', '1']))\n"
    )
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert res.returncode == 2
    assert res.stderr.strip() == "edge-pct app: error: 'PyQt6' is not installed: pip install 'edge-pct[app]'"


def test_the_hud_says_how_many_persons_the_budget_left_unposed():
    from app.camera_worker import FrameStats, SessionInfo
    from app.main_window import hud_lines

    fields = {f.name: "x" for f in dataclasses.fields(SessionInfo)}
    info = SessionInfo(**fields)
    seen = hud_lines(FrameStats(0, 30.0, {}, 32, 0, unposed=5), info)[0]
    assert "persons 32" in seen and "+5" in seen
    assert "+" not in hud_lines(FrameStats(0, 30.0, {}, 3, 0), info)[0]
