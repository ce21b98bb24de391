"""The settings panel: a form that shows and edits an `AppSettings`.

Two kinds of fields. Session fields (source, model, backend, precision, detector, detector model) need a reload:
they are applied together by the Apply button (`apply_requested`). View fields (smoothing, loop, HUD, boxes,
output folder) take effect at once (`view_changed`). The panel only edits values; the window decides what a
change does. The source picker takes a camera index, a video file or a URL.
"""

from __future__ import annotations

import dataclasses

from PyQt6.QtCore import pyqtSignal
from PyQt6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QInputDialog,
    QLineEdit,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from .settings import AUTO, BACKEND_CHOICES, DETECTOR_CHOICES, PRECISION_CHOICES, AppSettings, default_output_dir

VIDEO_FILTER = "Videos (*.mp4 *.avi *.mkv *.mov *.webm);;All files (*)"
MODEL_FILTER = "Pose models (*.pt *.onnx *.engine);;All files (*)"
DETECTOR_FILTER = "Detector models (*.onnx *.engine *.task);;All files (*)"


def _row(*widgets: QWidget) -> QWidget:
    box = QWidget()
    layout = QHBoxLayout(box)
    layout.setContentsMargins(0, 0, 0, 0)
    for w in widgets:
        layout.addWidget(w)
    return box


def _combo(choices: tuple[str, ...], tip: str) -> QComboBox:
    combo = QComboBox()
    combo.addItems(list(choices))
    combo.setToolTip(tip)
    return combo


class SettingsPanel(QWidget):
    """Form over AppSettings. Signals: apply_requested() (session fields), view_changed() (view fields)."""

    apply_requested = pyqtSignal()
    view_changed = pyqtSignal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._base = AppSettings()
        self.source = QLineEdit()
        self.source.setToolTip("Camera index (0, 1...), a video file, or a URL (rtsp://, http://)")
        self.model = QLineEdit()
        self.model.setPlaceholderText("shipped default model")
        self.backend = _combo(BACKEND_CHOICES, "auto: tensorrt (.engine), else openvino / onnxruntime")
        self.precision = _combo(PRECISION_CHOICES, "auto: whatever the model was built at; else it must match")
        self.detector = _combo(DETECTOR_CHOICES, "auto: from the detector model (none: track, no model needed)")
        self.detector_model = QLineEdit()
        self.detector_model.setPlaceholderText("none (track)")
        self.apply = QPushButton("Apply")
        self.apply.setToolTip("Reopen the source with these settings (Ctrl+Return)")
        self.smoothing = QCheckBox("Smoothing (One-Euro)")
        self.loop = QCheckBox("Loop video files")
        self.show_hud = QCheckBox("HUD")
        self.show_boxes = QCheckBox("Person boxes")
        self.output_dir = QLineEdit()
        self.output_dir.setToolTip("Folder of snapshots and recordings")
        self.output_dir.setPlaceholderText(str(default_output_dir()))
        # widget of each AppSettings field, by kind
        self._texts = {"source": self.source, "model": self.model, "detector_model": self.detector_model,
                       "output_dir": self.output_dir}  # fmt: skip
        self._checks = {"smoothing": self.smoothing, "loop": self.loop, "show_hud": self.show_hud,
                        "show_boxes": self.show_boxes}  # fmt: skip
        self._combos = {"backend": self.backend, "precision": self.precision, "detector": self.detector}

        form = QFormLayout()
        form.addRow("Source", self.source)
        form.addRow(
            "",
            _row(
                self._button("Camera...", self.pick_camera),
                self._button("File...", self.pick_file),
                self._button("URL...", self.pick_url),
            ),
        )
        form.addRow("Model", _row(self.model, self._button("...", self._pick_model)))
        form.addRow("Backend", self.backend)
        form.addRow("Precision", self.precision)
        form.addRow("Detector", self.detector)
        form.addRow("Det. model", _row(self.detector_model, self._button("...", self._pick_detector_model)))
        form.addRow("", self.apply)
        form.addRow("Output", _row(self.output_dir, self._button("...", self._pick_output_dir)))
        layout = QVBoxLayout(self)
        layout.addLayout(form)
        for box in (self.smoothing, self.loop, self.show_hud, self.show_boxes):
            layout.addWidget(box)
            box.toggled.connect(self.view_changed)
        layout.addStretch(1)
        self.apply.clicked.connect(self.apply_requested)
        self.source.returnPressed.connect(self.apply_requested)
        self.output_dir.editingFinished.connect(self.view_changed)

    def _button(self, text: str, slot: object) -> QPushButton:
        button = QPushButton(text)
        button.clicked.connect(slot)
        return button

    def set_settings(self, s: AppSettings) -> None:
        """Show `s` in the form (no signal is emitted)."""
        self._base = s
        for name, w in {**self._texts, **self._checks, **self._combos}.items():
            was = w.blockSignals(True)
            value = getattr(s, name)
            if isinstance(w, QLineEdit):
                w.setText(value)
            elif isinstance(w, QCheckBox):
                w.setChecked(value)
            else:
                w.setCurrentText(value)
            w.blockSignals(was)

    def settings(self) -> AppSettings:
        """The form's values as AppSettings (surrounding whitespace stripped; an empty source is camera 0)."""
        values: dict[str, object] = {name: w.text().strip() for name, w in self._texts.items()}
        values.update({name: w.isChecked() for name, w in self._checks.items()})
        values.update({name: w.currentText() or AUTO for name, w in self._combos.items()})
        values["source"] = values["source"] or "0"
        return dataclasses.replace(self._base, **values)

    # -- pickers: each fills its field; the source pickers apply at once --------------------------------------
    def pick_camera(self) -> None:
        """Ask for a camera index and apply it."""
        current = self.source.text().strip()
        index, ok = QInputDialog.getInt(self, "Camera", "Camera index:", int(current) if current.isdigit() else 0,
                                        0, 99)  # fmt: skip
        if ok:
            self.source.setText(str(index))
            self.apply_requested.emit()

    def pick_file(self) -> None:
        """Ask for a video file and apply it."""
        path, _ = QFileDialog.getOpenFileName(self, "Open video", "", VIDEO_FILTER)
        if path:
            self.source.setText(path)
            self.apply_requested.emit()

    def pick_url(self) -> None:
        """Ask for a stream URL and apply it."""
        current = self.source.text() if "://" in self.source.text() else "rtsp://"
        url, ok = QInputDialog.getText(self, "Stream URL", "URL (rtsp://, http://...):", QLineEdit.EchoMode.Normal,
                                       current)  # fmt: skip
        if ok and url.strip():
            self.source.setText(url.strip())
            self.apply_requested.emit()

    def _pick_model(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Pose model", "", MODEL_FILTER)
        if path:
            self.model.setText(path)

    def _pick_detector_model(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Detector model", "", DETECTOR_FILTER)
        if path:
            self.detector_model.setText(path)

    def _pick_output_dir(self) -> None:
        path = QFileDialog.getExistingDirectory(self, "Output folder", self.output_dir.text())
        if path:
            self.output_dir.setText(path)
            self.view_changed.emit()
