"""The app's token view, offscreen with pytest-qt: T colours each joint by its governing token on live frames, the
last (or paused) frame stays explorable (a click on a joint selects its token, ] steps the token's code and the
decoded pose is redrawn), a screenshot of the window shows it, and T again returns to the normal overlay."""

from __future__ import annotations

import dataclasses
import os

os.environ["QT_QPA_PLATFORM"] = "offscreen"  # before any QApplication exists

import numpy as np
import pytest

pytest.importorskip("PyQt6.QtWidgets", reason="PyQt6 (the `app` extra) or the Qt system libraries are missing")
os.environ.pop("QT_QPA_PLATFORM_PLUGIN_PATH", None)  # cv2's Qt5 plugin path would shadow PyQt6's platforms

import cv2  # noqa: E402
from PyQt6.QtCore import QPoint, Qt  # noqa: E402
from test_app import FPS, TIMEOUT_MS, H, W, _frame, _rgb, _window  # noqa: E402
from test_export import tiny_checkpoint  # noqa: E402

from edge_pct.app.main_window import screenshot  # noqa: E402
from edge_pct.app.token_view import TokenPainter, TokenStepper  # noqa: E402
from edge_pct.app.video_view import fit_rect  # noqa: E402
from edge_pct.tokens.explore import TokenExplorer  # noqa: E402


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory):
    return tiny_checkpoint(tmp_path_factory.mktemp("model") / "tiny.pt")


@pytest.fixture(scope="module")
def video(tmp_path_factory):
    path = tmp_path_factory.mktemp("video") / "walk.avi"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), FPS, (W, H))
    for i in range(12):
        writer.write(_frame(i))
    writer.release()
    return path


def _token_pixels(rgb: np.ndarray, colors: list[tuple[int, int, int]]) -> int:
    """Pixels within 30 of a token colour (the synthetic video is gray and white only)."""
    palette = np.array([c[::-1] for c in colors], np.int16)  # BGR -> RGB
    dist = np.abs(rgb[:, :, None, :].astype(np.int16) - palette[None, None]).max(-1)
    return int((dist < 30).any(-1).sum())


def test_token_view_colours_joints_and_steps_a_token_on_the_last_frame(qtbot, tmp_path, tiny_model, video):
    window = _window(qtbot, tmp_path, video, tiny_model, max_frames=6)
    window.actions_by_name["tokens"].trigger()
    assert window.token_dock.isVisible() and window.actions_by_name["tokens"].isChecked()
    with qtbot.waitSignal(window.session_ended, timeout=TIMEOUT_MS):
        window.start_session()
    stepper = window.stepper
    assert stepper is not None and stepper.has_person  # the last frame is explorable after the end
    colors = stepper.painter.colors
    assert len(window.token_panel.buttons) == len(colors) == 8  # the tiny tokenizer's M
    assert _token_pixels(_rgb(window.view.grab().toImage()), colors) > 20  # joints in token colours

    # a click on a joint selects the token that governs it
    joint = stepper.frame.joints[stepper.person][9]
    target = fit_rect(window.view.image.size(), window.view.rect())
    pos = QPoint(int(target.x() + joint[0] * target.width() / window.view.image.width()),
                 int(target.y() + joint[1] * target.height() / window.view.image.height()))
    qtbot.mouseClick(window.view, Qt.MouseButton.LeftButton, pos=pos)
    token = window.stepper.token
    assert token is not None and window.token_panel.buttons[token].isChecked()
    shown = window.view.image
    for _ in range(3):
        window.step_code(1)
    codes = window.stepper.codes()
    own = window.stepper.frame.tokens[window.stepper.person].codes
    assert codes[token] != own[token] and (np.delete(codes, token) == np.delete(own, token)).all()
    assert window.view.hud[0].startswith(f"token {token}: code {own[token]} -> {codes[token]} (step +3)")
    explorer = window.stepper.painter.explorer
    assert np.abs(explorer.decode(codes) - explorer.decode(own)).max() > 0  # another pose was decoded ...
    assert window.view.image is not shown  # ... and drawn (a random tiny decoder moves it by under a pixel)
    shot = cv2.imread(str(screenshot(window, tmp_path / "tokens.png")))
    assert shot is not None and _token_pixels(shot[:, :, ::-1], colors) > 20

    window.actions_by_name["tokens"].trigger()
    assert not window.token_dock.isVisible() and window.stepper is None


def test_the_stepper_decodes_only_the_stepped_token(tiny_model):
    from edge_pct.models.factory import load_classifier

    painter = TokenPainter(TokenExplorer(load_classifier(tiny_model).tokenizer))
    image = np.zeros((120, 160, 3), np.uint8)
    joints = np.stack([np.linspace(60, 100, 17), np.linspace(20, 100, 17)], 1)[None].astype(np.float32)
    frame = painter.draw(image, joints)
    assert image.any() and not frame.image.any()  # drawn on the frame, the TokenFrame keeps it clean
    stepper = TokenStepper(painter, frame)
    assert stepper.caption().startswith("Tokens: click")
    stepper.select(2)
    stepper.step(1)
    stepper.step(1)
    assert stepper.codes()[2] == painter.explorer.neighbour(frame.tokens[0].codes[2], 2)
    assert stepper.render().shape == image.shape
    empty = TokenStepper(painter, painter.draw(image.copy(), np.zeros((0, 17, 2), np.float32)))
    assert not empty.has_person and empty.caption() == "Tokens: no person in this frame"
    empty.step(1)  # nothing to step: no error
    assert empty.render().shape == image.shape


def test_pausing_with_the_token_view_on_explores_the_paused_frame(qtbot, tmp_path, tiny_model, video):
    window = _window(qtbot, tmp_path, video, tiny_model, pace=True)
    window.settings = dataclasses.replace(window.settings, loop=True)
    window.toggle_tokens()
    window.start_session()
    qtbot.waitUntil(lambda: window.frames_shown >= 2, timeout=TIMEOUT_MS)
    assert window.stepper is None  # playing: colours only
    window.toggle_pause()
    qtbot.waitUntil(lambda: window.stepper is not None and window.stepper.has_person, timeout=TIMEOUT_MS)
    window.select_token(3)
    window.step_code(-1)
    assert window.stepper.caption().startswith("token 3:") and "(step -1)" in window.stepper.caption()
    window.toggle_pause()  # resume: back to live colours
    assert window.stepper is None
