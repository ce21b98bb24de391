"""What the app remembers between runs: the `AppSettings` dataclass and its QSettings round trip.

One flat dataclass holds every user choice (source, pose model, backend, precision, detector, smoothing, end of
file behaviour, HUD, output folder). `load_settings` / `save_settings` map it to a QSettings store, key by key,
checking every stored value so a stale or hand-edited store can never crash the app: an unknown value falls back
to the default with a log line. Interactive runs use the platform store named by ORGANIZATION / APPLICATION
(an INI file, `~/.config/edge-pct/app.ini` on Linux); tests and scripts pass their own INI file to `open_settings`.
"""

from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass
from pathlib import Path

from PyQt6.QtCore import QSettings

log = logging.getLogger(__name__)

ORGANIZATION = "edge-pct"
APPLICATION = "app"
AUTO = "auto"  # "let edge-pct choose" in the backend / precision / detector pickers
BACKEND_CHOICES = (AUTO, "onnxruntime", "openvino", "openvino-fp32", "openvino-bf16", "torch", "tensorrt")
PRECISION_CHOICES = (AUTO, "fp32", "fp16", "bf16", "int8")
DETECTOR_CHOICES = (AUTO, "track", "onnx", "mediapipe")
_CHOICES = {"backend": BACKEND_CHOICES, "precision": PRECISION_CHOICES, "detector": DETECTOR_CHOICES}
GEOMETRY_KEY = "window/geometry"


def default_output_dir() -> Path:
    """Where snapshots and recordings go unless the user picked a folder."""
    return Path.home() / "edge-pct"


@dataclass(frozen=True)
class AppSettings:
    """Every choice of the app's settings panel.

    Attributes:
        source: camera index ("0"), video file path or stream URL, as `edge_pct.stream.sources.open_source` takes it.
        model: pose model .pt / .onnx / .engine; "" is the shipped default model.
        backend: one of BACKEND_CHOICES; "auto" follows the model file (a CPU graph: the fastest checked CPU runtime).
        precision: one of PRECISION_CHOICES; anything but "auto" must match the loaded model's precision.
        detector: one of DETECTOR_CHOICES; "auto" follows the detector model (none: "track").
        detector_model: YOLOX .onnx/.engine or PoseLandmarker .task; "" for none.
        smoothing: One-Euro filtering of the joints.
        loop: restart a video file at its end instead of stopping.
        show_hud: draw the FPS / latency box on the video.
        show_boxes: draw each person's crop box.
        output_dir: folder of snapshots and recordings; "" is `default_output_dir()`.
    """

    source: str = "0"
    model: str = ""
    backend: str = AUTO
    precision: str = AUTO
    detector: str = AUTO
    detector_model: str = ""
    smoothing: bool = True
    loop: bool = False
    show_hud: bool = True
    show_boxes: bool = True
    output_dir: str = ""

    def output_path(self) -> Path:
        """The output folder as a Path (the default when unset)."""
        return Path(self.output_dir).expanduser() if self.output_dir else default_output_dir()


def open_settings(path: str | Path | None = None) -> QSettings:
    """The user's QSettings store, or an INI file at `path` (tests, portable installs)."""
    if path is not None:
        return QSettings(str(path), QSettings.Format.IniFormat)
    return QSettings(QSettings.Format.IniFormat, QSettings.Scope.UserScope, ORGANIZATION, APPLICATION)


def _read_bool(store: QSettings, key: str, default: bool) -> bool:
    raw = store.value(key, default)
    if isinstance(raw, bool):
        return raw
    text = str(raw).strip().lower()
    if text in ("true", "1", "yes"):
        return True
    if text in ("false", "0", "no"):
        return False
    log.warning("settings: %s=%r is not a boolean; using %s", key, raw, default)
    return default


def load_settings(store: QSettings) -> AppSettings:
    """AppSettings from `store`; missing keys keep their defaults, invalid values fall back with a warning."""
    values: dict[str, object] = {}
    for f in dataclasses.fields(AppSettings):
        if not store.contains(f.name):
            continue
        if isinstance(f.default, bool):
            values[f.name] = _read_bool(store, f.name, f.default)
            continue
        value = str(store.value(f.name, f.default))
        if f.name in _CHOICES and value not in _CHOICES[f.name]:
            log.warning("settings: %s=%r is not one of %s; using %r", f.name, value, _CHOICES[f.name], f.default)
            continue
        values[f.name] = value
    return AppSettings(**values)


def save_settings(store: QSettings, settings: AppSettings) -> None:
    """Write every field of `settings` to `store` and flush it to disk."""
    for f in dataclasses.fields(AppSettings):
        store.setValue(f.name, getattr(settings, f.name))
    store.sync()
