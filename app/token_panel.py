"""The token panel: one coloured button per token (click: select it), code step buttons and the current state.

Only shows and forwards: the window keeps the state (`edge_pct.app.token_view.TokenStepper`) and tells the panel
what to show. Token colours are those of the video overlay and of `edge-pct tokens`' pictures.
"""

from __future__ import annotations

from PyQt6.QtCore import pyqtSignal
from PyQt6.QtWidgets import QGridLayout, QHBoxLayout, QLabel, QPushButton, QVBoxLayout, QWidget

COLUMNS = 6


class TokenPanel(QWidget):
    """Signals: token_clicked(int), step_clicked(int) (-1 previous code, +1 next code)."""

    token_clicked = pyqtSignal(int)
    step_clicked = pyqtSignal(int)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.buttons: list[QPushButton] = []
        self.state = QLabel("Pause to explore a frame's tokens")
        self.state.setWordWrap(True)
        self.source = QLabel()
        self.source.setWordWrap(True)
        self._grid = QGridLayout()
        self._grid.setSpacing(2)
        prev, nxt = QPushButton("< code  ["), QPushButton("]  code >")
        prev.clicked.connect(lambda: self.step_clicked.emit(-1))
        nxt.clicked.connect(lambda: self.step_clicked.emit(1))
        steps = QHBoxLayout()
        steps.addWidget(prev)
        steps.addWidget(nxt)
        layout = QVBoxLayout(self)
        layout.addWidget(self.state)
        layout.addLayout(self._grid)
        layout.addLayout(steps)
        layout.addWidget(self.source)
        layout.addStretch(1)

    def set_tokens(self, colors: list[tuple[int, int, int]], source: str) -> None:
        """One button per token, in its colour (BGR); `source` says which tokenizer runs."""
        for b in self.buttons:
            self._grid.removeWidget(b)
            b.deleteLater()
        self.buttons = []
        for m, (b, g, r) in enumerate(colors):
            button = QPushButton(f"t{m}")
            button.setCheckable(True)
            button.setStyleSheet(f"QPushButton {{ background: rgb({r},{g},{b}); color: black; padding: 2px; }}"
                                 "QPushButton:checked { border: 3px solid white; font-weight: bold; }")
            button.clicked.connect(lambda _=False, m=m: self.token_clicked.emit(m))
            self._grid.addWidget(button, m // COLUMNS, m % COLUMNS)
            self.buttons.append(button)
        self.source.setText(f"Tokenizer: {source}")

    def show_state(self, text: str, selected: int | None) -> None:
        """The state line and which token button is down."""
        self.state.setText(text)
        for m, b in enumerate(self.buttons):
            b.setChecked(m == selected)
